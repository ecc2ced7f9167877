"""The training loop every trainer shares, on ``accelerate``.

A trainer says what trains and how its loss is computed; this loop does the rest the same way for
all of them: processes/devices and mixed precision (``accelerate launch`` or ``torchrun`` just
work), gradient accumulation and clipping, AdamW with warm-up (then constant or cosine), checkpoints
(``output/checkpoints/checkpoint-<step>``: the accelerate state to resume from, plus the trained
component in its loadable form) with a total limit, ``--resume-from latest``, periodic validation,
a progress bar with the loss, and tensorboard logging when it is installed. Before anything else it
refuses prepared data made for another model than ``--model`` (:attr:`Trainer.shared_settings`).

Resuming continues exactly where the run stopped: a run interrupted after step k and resumed from
its checkpoint ends with the weights of an uninterrupted run (bit for bit on a CPU with the same
seed and thread count). What makes it so:

* the data order of epoch e is a function of (seed, e) alone (:class:`EpochShuffle`, and the data
  loader's own generator, which seeds its workers, is re-seeded per epoch), so the resumed run
  recomputes the interrupted epoch's order and skips the batches already trained on;
* a checkpoint holds, besides accelerate's state (weights, optimizer, scheduler, and each process's
  global python / numpy / torch RNG states), each process's state of the generator that draws the
  trainers' noise, timesteps and dropout masks (``loop_state_<process>.pt``);
* validation runs with the RNG states forked, so validating (or not) never shifts training's draws.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..data.prepared import PreparedDataset, check_prepared_for_model, collate
from .config import TrainConfig, learning_rate_factor

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL = "final"
#: Per-process file in a checkpoint folder with the loop's own state (``.format(process_index)``).
LOOP_STATE = "loop_state_{}.pt"


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed for ``stream`` of epoch ``epoch`` (0-based) of a run seeded with ``seed``;
    nearby seeds and epochs give unrelated streams."""
    words = np.random.SeedSequence([seed % 2**32, seed // 2**32 % 2**32, epoch, stream]).generate_state(2)
    return int(words[0]) << 31 ^ int(words[1])


class EpochShuffle(torch.utils.data.Sampler):
    """Dataset indices in an order drawn from (seed, epoch) alone, unlike a ``RandomSampler`` whose
    order depends on every epoch drawn before it: a resumed run can recompute any epoch's order.

    Accelerate calls :meth:`set_epoch` at the start of each pass over a prepared data loader, and
    gives every process the same sampler (the processes then take turns with its batches)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.size, generator=generator).tolist())


@contextlib.contextmanager
def preserved_rng_states():
    """Run the body with the global python, numpy and torch (CPU and CUDA) RNG states restored after
    it, so that what it draws does not change what training draws next."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class Trainer:
    """Base class. Subclasses set ``name`` and ``fields`` and implement :meth:`build`,
    :meth:`compute_loss` and :meth:`export`; they may override :meth:`validate`."""

    name = "base"
    fields: tuple[str, ...] = ()
    #: Settings of the prepared data (keys of its ``config.json``) that the trained component
    #: depends on and the model folder fixes; :meth:`run` refuses data where they differ. Trainers
    #: that build their model from the data list only what the model folder still fixes.
    shared_settings: tuple[str, ...] = ()
    #: Whether the trainer draws its per-clip randomness with :meth:`per_clip` only (then the
    #: processes share one generator stream and train like one process with their global batch).
    global_batch_draws: bool = False

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

    def per_clip(self, draw, count: int) -> torch.Tensor:
        """This process's ``count`` rows of ``draw(n)`` (a tensor of ``n`` rows drawn from the
        shared generator) over the global batch: one process of batch ``N * count`` draws the same
        rows in the same order. Every process must call it alike (same ``count``: accelerate gives
        all processes batches of one size)."""
        # Before (or without) an accelerator, e.g. a trainer's parts used on their own: one process.
        accelerator = getattr(self, "accelerator", None)
        processes = getattr(accelerator, "num_processes", 1)
        if processes == 1 or not self.global_batch_draws:
            return draw(count)
        index = accelerator.process_index
        return draw(count * processes)[index * count : (index + 1) * count]

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
        sampler = EpochShuffle(len(train_set), config.seed)
        # The loader's generator only seeds its worker processes; it is re-seeded every epoch (and
        # keeps the global torch RNG out of it: a DataLoader without one draws from it per pass).
        loader_generator = torch.Generator()
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=config.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=config.num_workers,
            drop_last=len(train_set) >= config.batch_size * accelerator.num_processes,
            generator=loader_generator,
        )
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        self.model = model
        # Accelerate ends an accumulation early at the end of each pass over the data, so an epoch
        # is this many optimizer steps, each of up to ``gradient_accumulation_steps`` batches.
        steps_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)

        # Draws the trainers' noise, timesteps, dropout masks and augmentations. With
        # ``global_batch_draws`` every process holds the same stream and takes its own rows of each
        # per-clip draw over the global batch (:meth:`per_clip`), so N processes of batch b draw what
        # one process of batch N * b would; otherwise each process has its own stream.
        self.generator = torch.Generator(device="cpu").manual_seed(
            config.seed + (0 if self.global_batch_draws else accelerator.process_index)
        )
        step = 0
        if self.resume_from:
            checkpoint = self.find_checkpoint(self.resume_from)
            if checkpoint is not None:
                accelerator.load_state(str(checkpoint))
                step = int(checkpoint.name.split("-")[-1])
                self._load_loop_state(checkpoint, step)
                logger.info("resumed from %s at step %d", checkpoint, step)
        if log_with and accelerator.is_main_process:
            accelerator.init_trackers(f"foleycrafter-{self.name}")

        generator = self.generator
        # Where the run stands in the data: the epoch and the batches of it already trained on.
        epoch, skip = divmod(step, steps_per_epoch)
        skip *= config.gradient_accumulation_steps
        progress = tqdm(
            total=config.max_steps,
            initial=step,
            desc=f"train {self.name}",
            disable=not (self.progress and accelerator.is_main_process),
        )
        running = []
        model.train()
        while step < config.max_steps:
            loader.set_epoch(epoch)
            sampler.set_epoch(epoch)
            loader_generator.manual_seed(epoch_seed(config.seed, epoch, stream=1))
            batches = accelerator.skip_first_batches(loader, skip) if skip else loader
            skip = 0
            for batch in batches:
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
            epoch += 1
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
        self._share_main_buffers()
        accelerator.save_state(str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"step": step, "generator": self.generator.get_state()},
            folder / LOOP_STATE.format(accelerator.process_index),
        )
        if accelerator.is_main_process:
            self.export(accelerator.unwrap_model(self.model), folder, final=False)
            self._apply_total_limit()
        accelerator.wait_for_everyone()
        return folder

    def _share_main_buffers(self) -> None:
        """Give every process the main process's buffers (BatchNorm running statistics).

        Each process updates them with its own batch; DDP copies the main process's over the others
        at the start of every forward, so training never sees the difference, but after the last
        forward the processes would hold (and a checkpoint of the main process's alone would hide)
        different modules. The same copy now makes them one module, as the next forward would."""
        if self.accelerator.num_processes == 1 or not torch.distributed.is_initialized():
            return
        for buffer in self.accelerator.unwrap_model(self.model).buffers():
            torch.distributed.broadcast(buffer.data, src=0)

    def _load_loop_state(self, checkpoint: Path, step: int) -> None:
        path = checkpoint / LOOP_STATE.format(self.accelerator.process_index)
        if not path.is_file():
            # A checkpoint of an older version (or of fewer processes): training goes on, with
            # other noise draws than an uninterrupted run would have made.
            logger.warning(
                "%s: no %s; the noise generator restarts from a seed, so this run will not match an "
                "uninterrupted one exactly.",
                checkpoint,
                path.name,
            )
            self.generator.manual_seed(self.config.seed + step * 7919 + self.accelerator.process_index)
            return
        state = torch.load(path, weights_only=True)
        if state["step"] != step:
            raise ValueError(
                f"{path}: saved at step {state['step']} but its folder says step {step}; the checkpoint "
                "was assembled from two runs. Resume from another checkpoint."
            )
        self.generator.set_state(state["generator"])

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
            with torch.no_grad(), preserved_rng_states():
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
