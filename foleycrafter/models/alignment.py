"""The alignment classifier: is a noisy audio latent the sound of this video, in sync?

Diff-Foley (arXiv 2306.17203) guides sampling twice: classifier-free guidance, plus the gradient of
a classifier that tells real, synchronized (latent, video) pairs from shifted or mismatched ones.
The classifier sees the noisy latent ``z_t`` at its timestep, so its gradient is meaningful at every
denoising step, and it is small: the guidance gradient flows through it only, never through the
UNet (issue #17).

Time alignment is the contract: the latent's columns and the video's frames cover the same window,
the frames sampled uniformly over it (frame ``f`` of ``F`` at ``(f + 0.5) / F`` of the window, as
the pipeline samples them). The video features are resampled linearly onto the latent's columns,
so any frame count works with any window length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class AlignmentClassifier(ModelMixin, ConfigMixin):
    """Logit that a noisy audio latent and per-frame video features are a real, synchronized pair.

    Args:
        latent_channels: channels of the diffusion model's latents (C).
        video_dim: features per video frame (D), e.g. CLIP image embeddings.
        hidden_channels: width of the audio, video and fused paths.
        num_layers: temporal convolutions over the fused (audio, video) columns.
        kernel_size: their kernel, in latent columns (odd).
        frame_differences: also read each frame's change from the previous one. Per-frame CLIP
            embeddings hardly move within a clip (their spread is ~5 % of their norm) except around
            a sound event, where consecutive frames differ ~18x more than elsewhere (SynthFoley
            train windows): the timing is in the differences, the class in the frames.
        video_tower: the constructor arguments of a
            :class:`~foleycrafter.models.audio_visual.VideoTower` that turns the frame features into
            contrastively pretrained audio-visual ones first (CAVP's role in Diff-Foley), or ``None``
            to read the frame features as they are. Its weights are part of the classifier.
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 8,
        video_dim: int = 64,
        hidden_channels: int = 64,
        num_layers: int = 3,
        kernel_size: int = 5,
        frame_differences: bool = True,
        video_tower: dict | None = None,
    ):
        super().__init__()
        sizes = {
            "latent_channels": latent_channels,
            "video_dim": video_dim,
            "hidden_channels": hidden_channels,
            "num_layers": num_layers,
            "kernel_size": kernel_size,
        }
        for name, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AlignmentClassifier {name} must be a positive integer, got {value!r}.")
        if kernel_size % 2 == 0:
            raise ValueError(f"AlignmentClassifier kernel_size must be odd (centred), got {kernel_size}.")
        width = hidden_channels
        # Audio: local time-frequency features, then the frequency axis pooled, one vector per column.
        self.audio = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)
        )
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(width, width)
        # Not named like its config key: ModelMixin looks a config key up before a submodule.
        self.frame_tower = None
        read_dim = video_dim
        if video_tower is not None:
            from .audio_visual import VideoTower

            if video_tower.get("video_dim") != video_dim:
                raise ValueError(
                    f"AlignmentClassifier video_tower reads features of width {video_tower.get('video_dim')}, "
                    f"but video_dim is {video_dim}."
                )
            self.frame_tower = VideoTower(**video_tower)
            read_dim = video_tower["embed_dim"]
        self.video = nn.Linear(2 * read_dim + 1 if frame_differences else read_dim, width)
        layers = []
        for index in range(num_layers):
            layers += [
                nn.Conv1d(3 * width if index == 0 else width, width, kernel_size, padding=kernel_size // 2)
            ]
            layers += [nn.SiLU()]
        self.fused = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(
        self, latents: torch.Tensor, timesteps: torch.Tensor | float | int, video_features: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B,) that each pair is real and in sync (sigmoid: the probability).

        Args:
            latents: noisy latents (B, C, H, W) at ``timesteps``, in the diffusion model's units;
                W latent columns span the window.
            timesteps: (B,) or one value for all, the diffusion timestep of each latent.
            video_features: (B, F, D) per-frame features of the window's F frames, sampled
                uniformly over the same window.
        """
        self.check_inputs(latents, video_features)
        batch, _, _, columns = latents.shape
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], device=latents.device)
        timesteps = timesteps.to(latents.device).flatten().expand(batch)
        time = self.time_embedding(self.time_proj(timesteps).to(latents.dtype))  # (B, hidden)
        audio = self.audio(latents).mean(dim=2) + time[:, :, None]  # (B, hidden, W)
        if self.frame_tower is not None:
            video_features = self.frame_tower(video_features)
        video = self.video(self.video_inputs(video_features.to(latents.dtype))).transpose(
            1, 2
        )  # (B, hidden, F)
        # More frames than columns: average them (sampling would drop the one or two frames that
        # change at a contact); fewer: interpolate.
        mode = "area" if video.shape[-1] >= columns else "linear"
        video = F.interpolate(
            video, size=columns, mode=mode, **({"align_corners": False} if mode == "linear" else {})
        )
        # The product makes co-occurrence (an audio event where the picture changes) one layer away.
        fused = self.fused(torch.cat([audio, video, audio * video], dim=1))  # (B, hidden, W)
        return self.head(fused.mean(dim=2)).squeeze(-1)

    def video_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, D) frame features -> the video path's input, scale-free and of order 1 (a linear
        layer trained with Adam moves each weight by about the learning rate per step, so inputs
        of very different scales would learn at very different speeds): see
        :func:`~foleycrafter.models.audio_visual.frame_inputs`."""
        from .audio_visual import frame_inputs

        return frame_inputs(features, self.config.frame_differences)

    def check_inputs(self, latents: torch.Tensor, video_features: torch.Tensor) -> None:
        """Raise a ValueError naming the input when shapes do not fit this classifier."""
        channels, dim = self.config.latent_channels, self.config.video_dim
        if not torch.is_tensor(latents) or latents.dim() != 4 or latents.shape[1] != channels:
            shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(
                f"latents must be (batch, {channels}, height, columns), the diffusion model's latents; "
                f"got {shape}. Is this classifier trained for this model's VAE?"
            )
        if (
            not torch.is_tensor(video_features)
            or video_features.dim() != 3
            or video_features.shape[-1] != dim
        ):
            shape = (
                tuple(video_features.shape)
                if torch.is_tensor(video_features)
                else type(video_features).__name__
            )
            raise ValueError(
                f"video_features must be (batch, frames, {dim}), one feature vector per frame; got {shape}. "
                "Are they from the image encoder this classifier was trained with?"
            )
        if video_features.shape[0] != latents.shape[0]:
            raise ValueError(
                f"latents and video_features must have one row per pair; got {latents.shape[0]} latents "
                f"and {video_features.shape[0]} videos."
            )


def features_over_window(features: torch.Tensor, duration: float, window_seconds: float) -> torch.Tensor:
    """Per-frame features of a clip shorter than its window, laid out over the whole window.

    The classifier reads its F frames as spread uniformly over the window its latent spans, but the
    last window of a video shows frames over the video's remainder only: unstretched, its frames
    would sit at the wrong columns. Output frame ``f`` stands for time ``(f + 0.5) / F * window``
    and takes the clip's frame on screen at that time; past the clip's end it is zeros (no picture).

    Args:
        features: (F, D) or (B, F, D), frames sampled uniformly over ``duration`` seconds.
        duration: seconds the frames cover (at most ``window_seconds``; more is read as a full window).
        window_seconds: seconds the latent spans.
    Returns:
        A tensor of the input's shape.
    """
    if duration <= 0 or window_seconds <= 0:
        raise ValueError(
            f"duration and window_seconds must be positive seconds, got {duration} and {window_seconds}."
        )
    frames = features.shape[-2]
    if duration >= window_seconds:
        return features
    times = (torch.arange(frames, dtype=torch.float64) + 0.5) / frames * window_seconds
    inside = times < duration
    source = (times / duration * frames).floor().long().clamp(max=frames - 1)
    out = features.index_select(-2, source.to(features.device))
    return out * inside.to(device=features.device, dtype=features.dtype)[:, None]
