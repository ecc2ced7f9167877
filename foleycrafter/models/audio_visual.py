"""A contrastive audio-visual encoder in the spirit of Diff-Foley's CAVP (issue #17).

Diff-Foley pretrains its video features so that they agree with the sound twice over: a *semantic*
contrast between clips (a clip's video and its own audio against the other clips' audio) and a
*temporal* contrast between parts of one clip (each stretch of the video against the other
stretches of the same clip's audio), so that the features say what sounds and when. Its guidance
classifier then reads those features instead of generic image embeddings.

Here both towers are small temporal convolution stacks, one feature vector per video frame:

* the video tower reads the per-frame CLIP image embeddings the pipeline already computes (each
  frame at norm sqrt(D), with its change from the previous frame: what moves at a contact), so using
  it costs no second pass over the pixels;
* the audio tower reads the log-mel columns of the clip and pools them onto the same frames.

Unlike CAVP's video tower (a SlowOnly network on pixels), this one starts from CLIP embeddings; the
comparison with plain CLIP features (the classifier's other input) is what measures whether the
contrastive pretraining adds anything. The alignment classifier can carry the trained video tower
(:class:`~foleycrafter.models.alignment.AlignmentClassifier`'s ``video_tower``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def frame_inputs(features: torch.Tensor, differences: bool = True) -> torch.Tensor:
    """(B, F, D) frame features -> scale-free inputs of order 1: each frame scaled to norm sqrt(D)
    (zero frames stay zero) and, with ``differences``, each frame's change from the previous one and
    that change's norm, both divided by the clip's mean change norm (events stand out whatever the
    encoder's scale). Returns (B, F, D) or (B, F, 2D + 1)."""
    dim = features.shape[-1]
    frames = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-6) * dim**0.5
    if not differences:
        return frames
    change = torch.diff(frames, dim=1, prepend=frames[:, :1])
    size = change.norm(dim=-1, keepdim=True)
    typical = size.mean(dim=1, keepdim=True).clamp_min(1e-6)
    return torch.cat([frames, change / typical, size / typical], dim=-1)


def _temporal_stack(in_channels: int, width: int, num_layers: int, kernel_size: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(num_layers):
        layers += [
            nn.Conv1d(in_channels if index == 0 else width, width, kernel_size, padding=kernel_size // 2)
        ]
        layers += [nn.SiLU()]
    return nn.Sequential(*layers)


class VideoTower(nn.Module):
    """Per-frame CLIP embeddings (B, F, video_dim) -> per-frame features (B, F, embed_dim), unit norm."""

    def __init__(
        self, video_dim: int, embed_dim: int, hidden_channels: int, num_layers: int, kernel_size: int
    ):
        super().__init__()
        self.convs = _temporal_stack(2 * video_dim + 1, hidden_channels, num_layers, kernel_size)
        self.out = nn.Linear(hidden_channels, embed_dim)

    def forward(self, frame_embeds: torch.Tensor) -> torch.Tensor:
        hidden = self.convs(frame_inputs(frame_embeds.float()).transpose(1, 2)).transpose(1, 2)
        return F.normalize(self.out(hidden), dim=-1)


class AudioTower(nn.Module):
    """Log-mel columns (B, n_mels, T) -> per-frame features (B, num_frames, embed_dim), unit norm:
    the columns' features averaged onto ``num_frames`` frames spread uniformly over them."""

    def __init__(self, n_mels: int, embed_dim: int, hidden_channels: int, num_layers: int, kernel_size: int):
        super().__init__()
        self.convs = _temporal_stack(n_mels, hidden_channels, num_layers, kernel_size)
        self.out = nn.Linear(hidden_channels, embed_dim)

    def forward(self, log_mel: torch.Tensor, num_frames: int) -> torch.Tensor:
        hidden = F.adaptive_avg_pool1d(self.convs(log_mel.float()), num_frames).transpose(1, 2)
        return F.normalize(self.out(hidden), dim=-1)


class AudioVisualEncoder(ModelMixin, ConfigMixin):
    """A video tower and an audio tower whose per-frame features agree on what sounds and when.

    Args:
        video_dim: width of the CLIP image embeddings the video tower reads (D).
        n_mels: mel bands of the log-mel columns the audio tower reads.
        embed_dim: width of the shared feature space (E).
        hidden_channels, num_layers, kernel_size: each tower's temporal convolutions (kernel in
            frames for the video, in mel columns for the audio; odd).
        temperature: the contrastive softmax's initial temperature (learned, as in CLIP).
    """

    @register_to_config
    def __init__(
        self,
        video_dim: int = 64,
        n_mels: int = 256,
        embed_dim: int = 64,
        hidden_channels: int = 128,
        num_layers: int = 3,
        kernel_size: int = 5,
        temperature: float = 0.07,
    ):
        super().__init__()
        for name, value in (
            ("video_dim", video_dim),
            ("n_mels", n_mels),
            ("embed_dim", embed_dim),
            ("hidden_channels", hidden_channels),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AudioVisualEncoder {name} must be a positive integer, got {value!r}.")
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"AudioVisualEncoder kernel_size must be odd (centred), got {kernel_size!r}.")
        if not temperature > 0:
            raise ValueError(f"AudioVisualEncoder temperature must be positive, got {temperature!r}.")
        self.video = VideoTower(video_dim, embed_dim, hidden_channels, num_layers, kernel_size)
        self.audio = AudioTower(n_mels, embed_dim, hidden_channels, num_layers, kernel_size)
        self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    def video_tower_config(self) -> dict:
        """The constructor arguments of this encoder's :class:`VideoTower` (for a model that carries it)."""
        c = self.config
        return {
            "video_dim": c.video_dim,
            "embed_dim": c.embed_dim,
            "hidden_channels": c.hidden_channels,
            "num_layers": c.num_layers,
            "kernel_size": c.kernel_size,
        }

    def forward(
        self, frame_embeds: torch.Tensor, log_mel: torch.Tensor, columns: list[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(video (B, F, E), audio (B, F, E))`` unit-norm features of F frames.

        Args:
            frame_embeds: (B, F, video_dim) CLIP embeddings of frames sampled uniformly over each clip.
            log_mel: (B, n_mels, T) each clip's log-mel columns from its start.
            columns: how many of the T columns are each clip's own (the rest, a window's padding
                after a short clip, is not read); ``None``: all of them.
        """
        frames = frame_embeds.shape[1]
        if columns is None:
            audio = self.audio(log_mel, frames)
        else:
            audio = torch.cat(
                [self.audio(m[None, :, : max(1, int(c))], frames) for m, c in zip(log_mel, columns)]
            )
        return self.video(frame_embeds), audio

    def contrastive_losses(
        self, video: torch.Tensor, audio: torch.Tensor, segments: int = 8
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CAVP's two InfoNCE losses (symmetric cross-entropy) on features from :meth:`forward`:

        * semantic: each clip's mean video feature against every clip's mean audio feature;
        * temporal: within each clip, ``segments`` equal stretches of frames, each stretch's video
          against the same clip's stretches of audio (the others are the negatives).

        Returns ``(semantic, temporal)`` scalar losses."""
        scale = self.log_inverse_temperature.exp().clamp(max=100)
        clip_video = F.normalize(video.mean(dim=1), dim=-1)
        clip_audio = F.normalize(audio.mean(dim=1), dim=-1)
        semantic = _symmetric_cross_entropy(scale * clip_video @ clip_audio.T)
        frames = video.shape[1]
        count = max(1, min(segments, frames))
        edges = torch.linspace(0, frames, count + 1).round().long().tolist()

        def stretches(x):
            return F.normalize(
                torch.stack([x[:, a:b].mean(dim=1) for a, b in zip(edges, edges[1:])], dim=1), dim=-1
            )

        video_parts, audio_parts = stretches(video), stretches(audio)
        logits = scale * video_parts @ audio_parts.transpose(1, 2)  # (B, S, S)
        temporal = _symmetric_cross_entropy(logits.reshape(-1, count, count))
        return semantic, temporal


def _symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean of the cross-entropies of rows and of columns against the diagonal; ``logits`` (N, N) or
    (B, N, N)."""
    if logits.dim() == 2:
        logits = logits[None]
    batch, size, _ = logits.shape
    target = torch.arange(size, device=logits.device).expand(batch, size).reshape(-1)
    rows = F.cross_entropy(logits.reshape(-1, size), target)
    columns = F.cross_entropy(logits.transpose(1, 2).reshape(-1, size), target)
    return (rows + columns) / 2


__all__ = ["AudioTower", "AudioVisualEncoder", "VideoTower", "frame_inputs"]
