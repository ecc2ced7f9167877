"""Run under `torchrun --nproc_per_node 2` with ``whole`` or ``resumed`` first: trains the onset
detector in two CPU processes (gloo) without a break, or interrupted after the checkpoint of step 3
and resumed, and writes each process's final weight hash, so a test can check all four agree.

One launch per run: a run that ends closes the process group (accelerate's ``end_training``); the
interrupted run never gets there, so the resumed run follows it in the same processes."""

import hashlib
import sys
from pathlib import Path

from foleycrafter.training import TrainConfig, trainer_class
from foleycrafter.training.loop import Trainer


class Interrupted(Exception):
    """Stands for the job being killed right after it saved a checkpoint."""


def train(model: str, data: str, out: Path, resume_from: str | None = None) -> str:
    config = TrainConfig(
        max_steps=6, batch_size=1, learning_rate=3e-3, checkpoint_every=3, validation_fraction=0.25
    )
    trainer = trainer_class("onset")(config, model, data, out, resume_from=resume_from, progress=False)
    trainer.run()
    weights = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    digest = hashlib.sha1()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(weights[key].detach().cpu().contiguous().numpy().tobytes())
    (out / f"weights-rank{trainer.accelerator.process_index}.sha1").write_text(digest.hexdigest())
    return digest.hexdigest()


def main(mode: str, model: str, data: str, out: str) -> None:
    if mode == "whole":
        train(model, data, Path(out) / "whole")
        return
    save = Trainer.save_checkpoint

    def save_then_stop(self, step):
        folder = save(self, step)
        if step == 3:
            raise Interrupted(step)
        return folder

    Trainer.save_checkpoint = save_then_stop
    try:
        train(model, data, Path(out) / "resumed")
    except Interrupted:
        pass
    finally:
        Trainer.save_checkpoint = save
    train(model, data, Path(out) / "resumed", resume_from="latest")


if __name__ == "__main__":
    main(*sys.argv[1:5])
