"""Per-frame video models: the onset detector (binary cross-entropy on onset labels) and the
loudness predictor (regression of each frame's level), on the same frames and network.

The release never said how its detector was supervised (FoleyCrafter issue #21). Here each sampled
frame is labelled 1 when an onset of the clip's soundtrack falls in the time that frame covers
(:func:`foleycrafter.audio_onsets.onsets_to_frame_labels`, the frame grid of inference), 0
otherwise; positives are rare, so they are weighted by #negatives / #positives unless configured.
The detector trains in "clean" mode (inputs in 0..1, running BatchNorm statistics).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..audio_onsets import onsets_to_frame_labels
from ..data.prepared import PreparedDataset, collate
from .loop import Trainer


class FrameModelTrainer(Trainer):
    """What the per-frame video models' trainers share: the data they check and a new network's size."""

    # Detection walks a video in the model's windows: clips of another length would teach the
    # network another number of frames per second than it sees there.
    shared_settings = ("window_columns", "sample_rate", "hop_length")

    def network_settings(self, **defaults) -> dict:
        """A new network's constructor arguments: the recipe's ``detector`` settings over
        ``defaults``, sized to the prepared frames (squashed to ``detector_size``, centre-cropped by
        the release's 112 / 128) unless the recipe says otherwise."""
        settings = {**defaults, **self.config.detector}
        size = int(self.train_set.config["detector_size"])
        settings.setdefault("resize_size", size)
        settings.setdefault("crop_size", min(size, int(round(size * 112 / 128))))
        return settings


class OnsetTrainer(FrameModelTrainer):
    name = "onset"
    fields = ("detector_frames",)

    def build(self, device):
        from ..models import OnsetDetector

        folder = self.model_path / "onset_detector" if self.model_path is not None else None
        if folder is not None and (folder / "config.json").is_file() and not self.config.detector:
            detector = OnsetDetector.from_pretrained(folder)
        else:
            torch.manual_seed(self.config.seed)
            detector = OnsetDetector(**self.network_settings(preprocessing="clean"))
        if detector.config.preprocessing != "clean":
            # The release's batch-statistics quirk never learns running statistics: train clean.
            settings = {k: v for k, v in detector.config.items() if not k.startswith("_")}
            clean = OnsetDetector(**{**settings, "preprocessing": "clean"})
            clean.load_state_dict(detector.state_dict())
            detector = clean
        self.positive_weight = self.config.positive_weight or self._balanced_weight()
        self.detector = detector.to(device)
        return self.detector

    def _balanced_weight(self) -> float:
        positives = total = 0
        frames = int(self.train_set.config["num_frames"])
        for record in self.train_set.records:
            labels = onsets_to_frame_labels(record["onsets"], frames, record["duration"])
            positives += float(labels.sum())
            total += frames
        return float((total - positives) / max(positives, 1.0))

    def labels(self, batch: dict, num_frames: int) -> torch.Tensor:
        return torch.from_numpy(
            np.stack(
                [onsets_to_frame_labels(o, num_frames, d) for o, d in zip(batch["onsets"], batch["duration"])]
            )
        )

    def compute_loss(self, batch, generator):
        detector = self.accelerator.unwrap_model(self.model)
        pixels = detector.preprocess(batch["detector_frames"])
        logits = self.model(pixels)
        labels = self.labels(batch, logits.shape[1]).to(logits)
        weight = torch.tensor(self.positive_weight, device=logits.device, dtype=logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight)

    def export(self, model, folder: Path, final: bool) -> None:
        model.save_pretrained(folder / "onset_detector")

    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Frame-level precision and recall at the detector's threshold on the held-out clips."""
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.config.batch_size, collate_fn=collate)
        true_positive = predicted = actual = 0
        for batch in loader:
            probabilities = torch.sigmoid(model(model.preprocess(batch["detector_frames"]))).cpu()
            labels = self.labels(batch, probabilities.shape[1]) > 0.5
            hits = probabilities >= model.config.threshold
            true_positive += int((hits & labels).sum())
            predicted += int(hits.sum())
            actual += int(labels.sum())
        precision = true_positive / predicted if predicted else float(actual == 0)
        recall = true_positive / actual if actual else 1.0
        folder.mkdir(parents=True, exist_ok=True)
        metrics = {"precision": precision, "recall": recall, "clips": len(dataset)}
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics


class LoudnessPredictorTrainer(FrameModelTrainer):
    """The loudness predictor: the squared error of each frame's normalised level (0 at the floor,
    1 at full scale) against the loudest column of the clip's curve that the frame covers
    (:func:`~foleycrafter.models.loudness.frame_levels`); validation reports the error in dB."""

    name = "loudness_predictor"
    fields = ("detector_frames", "loudness")

    def build(self, device):
        from ..models import LoudnessPredictor

        folder = self.model_path / "loudness_predictor" if self.model_path is not None else None
        if folder is not None and (folder / "config.json").is_file() and not self.config.detector:
            predictor = LoudnessPredictor.from_pretrained(folder)
        else:
            torch.manual_seed(self.config.seed)
            predictor = LoudnessPredictor(**self.network_settings())
        self.timeline = self.train_set.timeline
        self.predictor = predictor.to(device)
        return self.predictor

    def targets(self, batch: dict, num_frames: int) -> torch.Tensor:
        """(B, num_frames) levels in dBFS: each frame's loudest column."""
        from ..models.loudness import frame_levels

        return torch.from_numpy(
            np.stack(
                [
                    frame_levels(curve.numpy(), duration, num_frames, self.timeline)
                    for curve, duration in zip(batch["loudness"], batch["duration"])
                ]
            )
        )

    def compute_loss(self, batch, generator):
        predictor = self.accelerator.unwrap_model(self.model)
        logits = self.model(predictor.preprocess(batch["detector_frames"]))
        target = predictor.to_target(self.targets(batch, logits.shape[1]).to(logits.device))
        return F.mse_loss(torch.sigmoid(logits.float()), target)

    def export(self, model, folder: Path, final: bool) -> None:
        model.save_pretrained(folder / "loudness_predictor")

    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Mean absolute error (dB) of the predicted frame levels on the held-out clips, and that of
        the best constant (each clip's mean level), the baseline a prediction must beat."""
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.config.batch_size, collate_fn=collate)
        errors, constant = [], []
        for batch in loader:
            levels = model.to_db(model(model.preprocess(batch["detector_frames"]))).cpu()
            target = self.targets(batch, levels.shape[1])
            errors.append((levels - target).abs().flatten())
            constant.append((target - target.mean(dim=1, keepdim=True)).abs().flatten())
        folder.mkdir(parents=True, exist_ok=True)
        metrics = {
            "frame_error_db": float(torch.cat(errors).mean()) if errors else float("nan"),
            "constant_error_db": float(torch.cat(constant).mean()) if constant else float("nan"),
            "clips": len(dataset),
        }
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics
