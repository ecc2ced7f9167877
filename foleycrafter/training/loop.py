"""The training loop every trainer shares, on ``accelerate``.

A trainer says what trains and how its loss is computed; this loop does the rest the same way for
all of them: processes/devices and mixed precision (``accelerate launch`` or ``torchrun`` just
work), gradient accumulation and clipping, AdamW with warm-up (then constant or cosine), checkpoints
(``output/checkpoints/checkpoint-<step>``: the accelerate state to resume from, plus the trained
component in its loadable form) with a total limit, ``--resume-from latest``, periodic validation,
a progress bar with the loss, and tensorboard logging when it is installed. Before anything else it
refuses prepared data made for another model than ``--model`` (:attr:`Trainer.shared_settings`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..data.prepared import PreparedDataset, check_prepared_for_model, collate
from .config import TrainConfig, learning_rate_factor

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL = "final"


class Trainer:
    """Base class. Subclasses set ``name`` and ``fields`` and implement :meth:`build`,
    :meth:`compute_loss` and :meth:`export`; they may override :meth:`validate`."""

    name = "base"
    fields: tuple[str, ...] = ()
    #: Settings of the prepared data (keys of its ``config.json``) that the trained component
    #: depends on and the model folder fixes; :meth:`run` refuses data where they differ. Trainers
    #: that build their model from the data list only what the model folder still fixes.
    shared_settings: tuple[str, ...] = ()

    def __init__(
        self,
        config: TrainConfig,
        model: str | os.PathLike,
        data: str | os.PathLike,
        output_dir: str | os.PathLike,
        resume_from: str | None = None,
        progress: bool = True,
    ):
        self.config = config
        self.model_path = Path(model) if model is not None else None
        self.data_path = Path(data)
        self.output_dir = Path(output_dir)
        self.resume_from = resume_from
        self.progress = progress
        self.history: list[dict] = []

    # -- to implement ---------------------------------------------------------------------------
    def make_datasets(self) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
        """(train, validation) datasets; by default the prepared data split by clip-id hash."""
        dataset = PreparedDataset(self.data_path, fields=self.fields)
        return dataset.split(self.config.validation_fraction, seed=self.config.seed)

    def build(self, device: torch.device) -> torch.nn.Module:
        """Load frozen parts onto ``device`` and return the module whose trainable parameters train."""
        raise NotImplementedError

    def compute_loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def export(self, model: torch.nn.Module, folder: Path, final: bool) -> None:
        """Write the trained component into ``folder`` in the form the pipeline loads."""
        raise NotImplementedError

    def validate(self, model: torch.nn.Module, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        return {}

    @staticmethod
    def collate(items: list[dict]) -> dict:
        return collate(items)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed
        from tqdm.auto import tqdm

        config = self.config
        # First, from config files alone: data of another window, rate or image encoder would train
        # without a word and fail at the first validation (or generate from windows never seen).
        check_prepared_for_model(self.data_path, self.model_path, self.shared_settings)
        log_with = "tensorboard" if _has_tensorboard() else None
        self.accelerator = accelerator = Accelerator(
            # Without CUDA, several processes (torchrun) are several CPU processes talking over gloo.
            cpu=not torch.cuda.is_available(),
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            mixed_precision=config.mixed_precision,
            log_with=log_with,
            project_config=ProjectConfiguration(
                project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")
            ),
        )
        set_seed(config.seed)
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "train_config.json").write_text(
                json.dumps(
                    {
                        "trainer": self.name,
                        "model": str(self.model_path or ""),
                        "data": str(self.data_path),
                        **config.to_dict(),
                    },
                    indent=2,
                )
            )
        train_set, validation_set = self.make_datasets()
        if len(train_set) == 0:
            raise ValueError(
                f"{self.data_path}: no clips left for training after holding out validation clips."
            )
        self.train_set, self.validation_set = train_set, validation_set

        model = self.build(accelerator.device)
        parameters = [p for p in model.parameters() if p.requires_grad]
        if not parameters:
            raise RuntimeError(f"The {self.name} trainer has nothing to train (no parameter requires grad).")
        optimizer = torch.optim.AdamW(
            parameters,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
        )
        warmup = max(0, config.lr_warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: learning_rate_factor(s, warmup, config.max_steps, config.lr_schedule)
        )
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=config.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            num_workers=config.num_workers,
            drop_last=len(train_set) >= config.batch_size * accelerator.num_processes,
            generator=torch.Generator().manual_seed(config.seed),
        )
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        self.model = model

        step = 0
        if self.resume_from:
            checkpoint = self.find_checkpoint(self.resume_from)
            if checkpoint is not None:
                accelerator.load_state(str(checkpoint))
                step = int(checkpoint.name.split("-")[-1])
                logger.info("resumed from %s at step %d", checkpoint, step)
        if log_with and accelerator.is_main_process:
            accelerator.init_trackers(f"foleycrafter-{self.name}")

        generator = torch.Generator(device="cpu").manual_seed(
            config.seed + step * 7919 + accelerator.process_index
        )
        progress = tqdm(
            total=config.max_steps,
            initial=step,
            desc=f"train {self.name}",
            disable=not (self.progress and accelerator.is_main_process),
        )
        running = []
        model.train()
        while step < config.max_steps:
            for batch in loader:
                with accelerator.accumulate(model):
                    loss = self.compute_loss(batch, generator)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"The {self.name} loss became {loss.item()} at step {step}; lower the learning rate."
                        )
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                running.append(loss.detach().float().item())
                if not accelerator.sync_gradients:
                    continue
                step += 1
                mean_loss = sum(running) / len(running)
                running = []
                self.history.append({"step": step, "loss": mean_loss})
                progress.update(1)
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                if step % max(1, config.log_every) == 0:
                    if log_with:
                        accelerator.log({"loss": mean_loss, "lr": scheduler.get_last_lr()[0]}, step=step)
                    if not self.progress and accelerator.is_main_process:
                        # Without a progress bar (background runs), the log file shows the loss.
                        recent = [h["loss"] for h in self.history[-config.log_every :]]
                        logger.info(
                            "%s step %d/%d loss %.4f", self.name, step, config.max_steps, np.mean(recent)
                        )
                if (
                    config.checkpoint_every
                    and step % config.checkpoint_every == 0
                    and step < config.max_steps
                ):
                    self.save_checkpoint(step)
                if config.validate_every and step % config.validate_every == 0 and step < config.max_steps:
                    self.run_validation(step)
                if step >= config.max_steps:
                    break
        progress.close()
        self.save_checkpoint(step)
        metrics = self.run_validation(step)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self.export(accelerator.unwrap_model(model), self.output_dir / FINAL, final=True)
            (self.output_dir / "history.json").write_text(
                json.dumps({"history": self.history, "validation": metrics}, indent=2)
            )
        accelerator.wait_for_everyone()
        if log_with:
            accelerator.end_training()
        return {
            "step": step,
            "history": self.history,
            "validation": metrics,
            "final": str(self.output_dir / FINAL),
        }

    # -- checkpoints and validation ------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> Path:
        accelerator = self.accelerator
        folder = self.output_dir / CHECKPOINTS / f"checkpoint-{step}"
        accelerator.wait_for_everyone()
        accelerator.save_state(str(folder))
        if accelerator.is_main_process:
            self.export(accelerator.unwrap_model(self.model), folder, final=False)
            self._apply_total_limit()
        accelerator.wait_for_everyone()
        return folder

    def _apply_total_limit(self) -> None:
        limit = self.config.checkpoints_total_limit
        if not limit:
            return
        checkpoints = sorted(
            (self.output_dir / CHECKPOINTS).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
        )
        for old in checkpoints[: max(0, len(checkpoints) - limit)]:
            shutil.rmtree(old, ignore_errors=True)

    def find_checkpoint(self, resume_from: str) -> Path | None:
        """``"latest"`` (None when there is none yet) or a checkpoint folder path."""
        if resume_from == "latest":
            checkpoints = sorted(
                (self.output_dir / CHECKPOINTS).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
            )
            return checkpoints[-1] if checkpoints else None
        path = Path(resume_from)
        if not path.is_dir() or not path.name.startswith("checkpoint-"):
            raise FileNotFoundError(
                f"--resume-from {resume_from}: expected 'latest' or a checkpoint-<step> folder."
            )
        return path

    def run_validation(self, step: int) -> dict:
        accelerator = self.accelerator
        metrics = {}
        if accelerator.is_main_process and len(self.validation_set):
            model = accelerator.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            with torch.no_grad():
                metrics = self.validate(
                    model, self.validation_set, self.output_dir / "validation" / f"step-{step}", step
                )
            model.train(was_training)
            if metrics and accelerator.trackers:
                accelerator.log(
                    {f"validation/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))},
                    step=step,
                )
        accelerator.wait_for_everyone()
        return metrics


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
