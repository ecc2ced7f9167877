"""Alignment-classifier training (Diff-Foley's double guidance, issue #17).

The classifier learns to tell a real, synchronized (noisy latent, video) pair from two kinds of
fakes, on the noise levels diffusion samples at (timesteps uniform over training's range, the
latents noised by the frozen base's scheduler):

* half the pairs are true: the clip's latent with its own frames;
* a quarter are shifted: the clip's own frames rolled in time by 1/8 to 7/8 of the clip, so the
  picture still matches the sound's class but not its timing;
* a quarter are mismatched: another clip's frames.

The shifted fakes are what makes its gradient a timing signal rather than a second semantic
adapter. The frames are laid out over the latent's window as the pipeline lays them out
(:func:`foleycrafter.models.alignment.features_over_window`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.prepared import PreparedDataset, collate
from ..models.alignment import features_over_window
from .diffusion import DiffusionTrainer

TRUE, SHIFTED, OTHER = 0, 1, 2
KINDS = {TRUE: "true", SHIFTED: "shifted", OTHER: "other"}


class AlignmentTrainer(DiffusionTrainer):
    """Trains the pipeline's ``alignment_classifier`` (a new one, or the model's own to go on)."""

    name = "alignment"

    def build(self, device):
        from ..models import AlignmentClassifier

        pipe = self.load_base(device)
        classifier = pipe.components.get("alignment_classifier")
        encoder = self.video_encoder()
        if classifier is None or self.config.architecture or encoder is not None:
            torch.manual_seed(self.config.seed)
            classifier = AlignmentClassifier(
                latent_channels=int(pipe.vae.config.latent_channels),
                video_dim=int(self.train_set.config["clip_dim"]),
                video_tower=encoder.video_tower_config() if encoder is not None else None,
                **self.config.architecture,
            )
            if encoder is not None:
                classifier.frame_tower.load_state_dict(encoder.video.state_dict())
        classifier = classifier.to(device)
        classifier.requires_grad_(True)
        if classifier.frame_tower is not None:
            # CAVP's features are pretrained and stay as they are; the classifier learns to read them.
            classifier.frame_tower.requires_grad_(False)
        classifier.train()
        pipe.register_modules(alignment_classifier=classifier)
        return classifier

    def video_encoder(self):
        """The configured audio-visual encoder (``video_encoder``), or ``None``."""
        from ..models import AudioVisualEncoder

        if not self.config.video_encoder:
            return None
        folder = Path(self.config.video_encoder)
        if (folder / "audio_visual_encoder" / "config.json").is_file():
            folder = folder / "audio_visual_encoder"
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"video_encoder {self.config.video_encoder}: no audio-visual encoder there (expected "
                "config.json, or audio_visual_encoder/config.json); train one with `foleycrafter train "
                "audio_visual`."
            )
        encoder = AudioVisualEncoder.from_pretrained(folder)
        clip_dim = int(self.train_set.config["clip_dim"])
        if encoder.config.video_dim != clip_dim:
            raise ValueError(
                f"video_encoder {folder} reads CLIP embeddings of width {encoder.config.video_dim}, but this "
                f"data's are {clip_dim}: train it on data prepared with the same image encoder."
            )
        return encoder

    # -- pairs ---------------------------------------------------------------------------------------
    def pair_kinds(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Per clip: TRUE (half), SHIFTED or OTHER (a quarter each); OTHER needs a second clip."""
        draw = self.per_clip(lambda n: torch.rand(n, generator=generator), count)
        kinds = torch.full((count,), TRUE, dtype=torch.long)
        kinds[draw >= 0.5] = SHIFTED
        if count > 1:
            kinds[draw >= 0.75] = OTHER
        return kinds

    def video_features(
        self,
        clip_embeds: torch.Tensor,
        durations: list[float],
        kinds: torch.Tensor,
        shifts: torch.Tensor,
        partner_offset: int,
    ) -> torch.Tensor:
        """The classifier's video input (B, F, D) for each clip's pair kind.

        Args:
            clip_embeds: (B, F, D) CLIP embeddings of each clip's frames, sampled over its duration.
            durations: seconds each clip lasts (its frames' span).
            kinds: (B,) TRUE, SHIFTED or OTHER.
            shifts: (B,) frames to roll a SHIFTED clip's frames by (1 <= shift < F).
            partner_offset: an OTHER clip ``i`` shows clip ``(i + partner_offset) % B``'s frames.
        """
        window = self.timeline.window_seconds
        size = clip_embeds.shape[0]
        rows = []
        for i in range(size):
            source, frames = i, clip_embeds[i]
            if kinds[i] == SHIFTED:
                frames = torch.roll(frames, int(shifts[i]), dims=0)
            elif kinds[i] == OTHER:
                source = (i + partner_offset) % size
                frames = clip_embeds[source]
            rows.append(features_over_window(frames, float(durations[source]), window))
        return torch.stack(rows)

    def draw_pairs(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(video features (B, F, D), labels (B,): 1 for true pairs) for a training batch."""
        embeds = batch["clip_embeds"].float()
        size, frames = embeds.shape[:2]
        kinds = self.pair_kinds(size, generator)
        low, high = max(1, frames // 8), max(2, frames - frames // 8)
        shifts = self.per_clip(lambda n: torch.randint(low, high, (n,), generator=generator), size)
        offset = int(torch.randint(1, max(2, size), (1,), generator=generator))
        features = self.video_features(embeds, batch["duration"], kinds, shifts, offset)
        return features, (kinds == TRUE).float()

    def compute_loss(self, batch, generator):
        latents = self.latents(batch["log_mel"], generator, list(batch["id"]))
        noisy, timesteps, _ = self.noised(latents, generator)
        features, labels = self.draw_pairs(batch, generator)
        logits = self.model(noisy, timesteps, features.to(noisy))
        return F.binary_cross_entropy_with_logits(logits.float(), labels.to(logits.device))

    # -- output --------------------------------------------------------------------------------------
    def export(self, model, folder: Path, final: bool) -> None:
        if final:
            self.pipe.register_modules(alignment_classifier=model)
            self.pipe.save_pretrained(folder)
        else:
            model.save_pretrained(folder / "alignment_classifier")

    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Accuracy on the held-out clips for each pair kind at four noise levels (logit > 0 means
        "true"); the fakes are each clip's frames rolled by half the clip, and the next clip's."""
        steps = self.noise_scheduler.config.num_train_timesteps
        levels = [0, steps // 4, steps // 2, 3 * steps // 4]
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.config.batch_size, collate_fn=collate)
        generator = torch.Generator().manual_seed(self.config.seed)
        correct = {(kind, level): [] for kind in KINDS for level in levels}
        for batch in loader:
            embeds = batch["clip_embeds"].float()
            size, frames = embeds.shape[:2]
            latents = self.latents(batch["log_mel"], generator, list(batch["id"]))
            noise = torch.randn(latents.shape, generator=generator).to(latents)
            for kind in KINDS if size > 1 else (TRUE, SHIFTED):
                kinds = torch.full((size,), kind, dtype=torch.long)
                shifts = torch.full((size,), frames // 2, dtype=torch.long)
                features = self.video_features(embeds, batch["duration"], kinds, shifts, 1).to(latents)
                for level in levels:
                    timesteps = torch.full((size,), level, dtype=torch.long, device=latents.device)
                    noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
                    said_true = (model(noisy, timesteps, features) > 0).cpu()
                    correct[kind, level] += (said_true == (kind == TRUE)).tolist()
        metrics: dict = {"clips": len(dataset), "timesteps": levels}
        for kind, name in KINDS.items():
            for level in levels:
                if correct[kind, level]:
                    values = correct[kind, level]
                    metrics[f"accuracy_{name}_t{level}"] = sum(values) / len(values)
        everything = [v for values in correct.values() for v in values]
        metrics["accuracy"] = sum(everything) / len(everything) if everything else None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics
