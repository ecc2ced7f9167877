"""Training recipes: one dataclass, filled from a YAML file (``adapters/*.yaml``) and the command line.

Unknown keys are errors (a misspelt ``learnig_rate`` must not silently train with the default).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

LR_SCHEDULES = ("constant", "cosine")


def learning_rate_factor(step: int, warmup_steps: int, max_steps: int, schedule: str) -> float:
    """The learning rate's multiplier at optimizer step ``step`` (0-based): a linear warm-up over
    ``warmup_steps``, then 1 (``"constant"``) or a half cosine reaching 0 at ``max_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainConfig:
    """Everything a trainer needs to know, with the units it is in.

    Attributes:
        max_steps: optimizer steps to train (after gradient accumulation).
        batch_size: clips per process per forward.
        gradient_accumulation_steps: forwards per optimizer step.
        learning_rate, weight_decay, adam_beta1, adam_beta2, max_grad_norm: AdamW and clipping.
        lr_warmup_steps: linear warm-up, then ``lr_schedule``.
        lr_schedule: after the warm-up, ``"constant"`` or ``"cosine"`` (half a cosine from the
            learning rate down to 0 at ``max_steps``: a long from-scratch run ends sharper).
        mixed_precision: "no", "fp16" (CUDA) or "bf16".
        seed: for data order, noise and dropout.
        checkpoint_every: optimizer steps between checkpoints (0: only at the end).
        checkpoints_total_limit: keep at most this many checkpoints (None: all).
        validate_every: optimizer steps between validations (0: only at the end).
        validation_fraction: share of clips held out (by id hash) for validation.
        log_every: optimizer steps between log lines / tensorboard points.
        text_dropout, image_dropout, both_dropout: condition dropout probabilities (per clip), so that
            classifier-free guidance works: text -> "", image -> zero embedding, both.
        split_merge_probability: Diff-Foley's temporal split-and-merge augmentation: with this
            probability a clip is joined in time with another (conditions joined the same way).
        num_workers: data-loader worker processes.
        lora_rank, lora_alpha, lora_target_modules: LoRA on the UNet (the lora trainer).
        detector: constructor arguments of a new onset detector (the onset trainer, when the model
            has none), e.g. {"block_channels": [16, 16, 32, 32], "layers": [1, 1, 1, 1]}.
        positive_weight: weight of onset frames in the detector's BCE (None: #negatives/#positives).
        architecture: constructor arguments of a model trained from scratch (the clip, vae and unet
            trainers), e.g. {"block_out_channels": [32, 64], ...} for the UNet; for the temporal
            trainer, extra arguments of a new controller (``ControlNetModel.from_unet``), e.g.
            {"conditioning_embedding_out_channels": [4, 8, 16, 32]}.
        kl_weight: weight of the VAE's KL term.
        crop_columns: train the VAE / vocoder on random crops of this many mel columns (0: whole clips).
        latent_noise: the VAE trainer perturbs the latents it decodes with Gaussian noise of a
            standard deviation drawn per clip from [0, latent_noise], in the diffusion model's units
            (:mod:`foleycrafter.latents`), so the decoder learns to decode inexact latents.
        frames_per_clip: frames per clip the clip trainer pairs with the caption.
        validation_steps, validation_guidance_scale: sampling settings of validation generations.
        conditioning_scale: the temporal trainer's weight on the controller's residuals. Train at
            the ``temporal_scale`` inference will use: a controller trained at 1.0 and run at the
            pipeline's default 0.2 steers with a fifth of what it learned.
        temporal_scale: the loudness trainer's weight on the model's frozen temporal controller beside
            the loudness controller (``None``: the model's ``default_temporal_scale``); the scale
            generation will run it at.
        adapter: the semantic trainer's kind of adapter: ``"mean"`` (the release's, on the mean CLIP
            embedding) or ``"frame_aligned"`` (a token per frame with its time, attention masked by
            time: :mod:`foleycrafter.frame_aligned`); a frame-aligned adapter's options
            (``visual_attention``, ``framewise_seconds``, ``time_channels``) go in ``architecture``.
        video_encoder: the alignment trainer's contrastively pretrained audio-visual encoder (a folder
            holding ``audio_visual_encoder/``, or that folder; ``foleycrafter train audio_visual``):
            the classifier carries its video tower, frozen, and reads the frames through it.
            ``None``: the classifier reads the CLIP frame embeddings as they are.
        fine_tune: the unet trainer starts from the UNet in ``--model``'s ``unet/`` (to adapt a trained
            base to new clips, e.g. levels it has not heard) instead of a new one built from
            ``architecture``.
        latent_cache: a safetensors file keeping the frozen VAE's latent distribution of every
            prepared clip between runs (diffusion trainers); clips are encoded once per VAE, which
            on a CPU costs more than a small UNet's training step. Ignored if written by another VAE.
    """

    max_steps: int = 1000
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    lr_warmup_steps: int = 0
    lr_schedule: str = "constant"
    mixed_precision: str = "no"
    seed: int = 0
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = 3
    validate_every: int = 0
    validation_fraction: float = 0.1
    log_every: int = 10
    text_dropout: float = 0.05
    image_dropout: float = 0.05
    both_dropout: float = 0.05
    split_merge_probability: float = 0.0
    num_workers: int = 0
    lora_rank: int = 8
    lora_alpha: float = 8.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    detector: dict = field(default_factory=dict)
    positive_weight: float | None = None
    architecture: dict = field(default_factory=dict)
    kl_weight: float = 1e-6
    crop_columns: int = 0
    latent_noise: float = 0.0
    frames_per_clip: int = 4
    validation_steps: int = 25
    validation_guidance_scale: float = 7.5
    conditioning_scale: float = 1.0
    temporal_scale: float | None = None
    latent_cache: str | None = None
    adapter: str = "mean"
    video_encoder: str | None = None
    fine_tune: bool = False

    def __post_init__(self):
        if self.adapter not in ("mean", "frame_aligned"):
            raise ValueError(f"adapter must be 'mean' or 'frame_aligned', got {self.adapter!r}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}."
            )
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}.")
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("text_dropout", "image_dropout", "both_dropout", "split_merge_probability"):
            if not 0 <= float(getattr(self, name)) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)!r}.")
        if self.text_dropout + self.image_dropout + self.both_dropout > 1:
            raise ValueError("text_dropout + image_dropout + both_dropout must not exceed 1.")

    @classmethod
    def from_sources(
        cls, path: str | os.PathLike | None = None, overrides: dict | None = None
    ) -> TrainConfig:
        """A config from a YAML recipe (optional) with ``overrides`` applied on top."""
        values: dict = {}
        if path is not None:
            import yaml

            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"Training config not found: {path}")
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}.")
            values.update(loaded)
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown training settings {unknown} (in {path or 'the overrides'}); known: {sorted(known)}."
            )
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
