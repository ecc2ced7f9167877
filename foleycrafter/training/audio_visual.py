"""Contrastive audio-visual pretraining (CAVP, issue #17): :class:`~foleycrafter.models.AudioVisualEncoder`
on prepared clips' CLIP frame embeddings and log-mel columns.

The loss is CAVP's pair: the semantic contrast between the clips of a batch plus the temporal
contrast between stretches of each clip (:meth:`AudioVisualEncoder.contrastive_losses`). The audio
tower reads only a clip's own columns (a window's padding after a short clip is silence, which
would tell the temporal contrast nothing), pooled onto the clip's frames. Validation reports the
two retrieval accuracies those losses train: a clip's audio found among the held-out batch's by its
video, and a stretch's audio found among its own clip's stretches.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.prepared import PreparedDataset, collate
from .loop import Trainer

#: Stretches per clip in the temporal contrast (a 5 s window: ~0.6 s each, about one event).
SEGMENTS = 8


class AudioVisualTrainer(Trainer):
    """Trains the audio-visual encoder (``--model`` optional: a folder with ``audio_visual_encoder/``
    to go on with; otherwise a new one sized from ``architecture``)."""

    name = "audio_visual"
    fields = ("log_mel", "clip_embeds")
    shared_settings = ("window_columns", "sample_rate", "hop_length", "n_mels", "clip_dim")

    def build(self, device):
        from ..models import AudioVisualEncoder

        folder = self.model_path / "audio_visual_encoder" if self.model_path is not None else None
        if folder is not None and (folder / "config.json").is_file() and not self.config.architecture:
            encoder = AudioVisualEncoder.from_pretrained(folder)
        else:
            settings = {
                "video_dim": int(self.train_set.config["clip_dim"]),
                "n_mels": int(self.train_set.config["n_mels"]),
                **self.config.architecture,
            }
            torch.manual_seed(self.config.seed)
            encoder = AudioVisualEncoder(**settings)
        self.timeline = self.train_set.timeline
        return encoder.to(device)

    def features(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(video, audio) per-frame features (B, F, E) of a batch, each clip's audio from its own
        columns only."""
        device = next(model.parameters()).device
        columns = [self.timeline.active_columns(float(d)) for d in batch["duration"]]
        return model(batch["clip_embeds"].float().to(device), batch["log_mel"].float().to(device), columns)

    def compute_loss(self, batch, generator):
        encoder = self.accelerator.unwrap_model(self.model)
        video, audio = self.features(self.model, batch)
        semantic, temporal = encoder.contrastive_losses(video, audio, SEGMENTS)
        return semantic + temporal

    def export(self, model, folder: Path, final: bool) -> None:
        model.save_pretrained(folder / "audio_visual_encoder")

    @torch.no_grad()
    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Retrieval on the held-out clips (in batches of the training size): ``clip_retrieval``, the
        share of clips whose own audio is the nearest to their video among the batch's, and
        ``stretch_retrieval``, the share of stretches whose own audio is the nearest among their
        clip's; with the chance levels of each."""
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.config.batch_size, collate_fn=collate)
        clip_hits, stretch_hits, clip_chance = [], [], []
        for batch in loader:
            video, audio = self.features(model, batch)
            clip_video, clip_audio = F.normalize(video.mean(1), dim=-1), F.normalize(audio.mean(1), dim=-1)
            found = (clip_video @ clip_audio.T).argmax(dim=1).cpu()
            clip_hits += (found == torch.arange(len(found))).tolist()
            clip_chance += [1 / len(found)] * len(found)
            edges = torch.linspace(0, video.shape[1], SEGMENTS + 1).round().long().tolist()
            parts_v = torch.stack([video[:, a:b].mean(1) for a, b in zip(edges, edges[1:])], dim=1)
            parts_a = torch.stack([audio[:, a:b].mean(1) for a, b in zip(edges, edges[1:])], dim=1)
            nearest = (parts_v @ parts_a.transpose(1, 2)).argmax(dim=2).cpu()
            stretch_hits += (nearest == torch.arange(SEGMENTS)).flatten().tolist()
        metrics = {
            "clips": len(dataset),
            "clip_retrieval": sum(clip_hits) / len(clip_hits) if clip_hits else None,
            "clip_retrieval_chance": sum(clip_chance) / len(clip_chance) if clip_chance else None,
            "stretch_retrieval": sum(stretch_hits) / len(stretch_hits) if stretch_hits else None,
            "stretch_retrieval_chance": 1 / SEGMENTS,
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics
