"""Trains one trainer for a few steps and writes what a test compares across process counts.

Run under `torchrun --nproc_per_node 2` (two CPU processes, gloo) or as a plain script (one
process). Arguments: MODEL DATA OUT [TRAINER [BATCH_SIZE [STEPS [ACCUMULATION [VALIDATION]]]]]
(default: onset, 1, 6, 1 forward per step, a quarter of the clips held out).

Writes each process's final weight hash (``weights-rank<i>.sha1``) and, from the main process, the
trainable parameters before and after training (``trainable-start.pt``, ``trainable-end.pt``)."""

import hashlib
import sys
from pathlib import Path

import torch

from foleycrafter.training import TrainConfig, trainer_class

#: Per trainer: settings of the comparison runs (float32; no split-and-merge, which pairs clips
#: within a process's batch).
SETTINGS = {
    "onset": {"learning_rate": 3e-3},
    "semantic": {"learning_rate": 1e-3, "mixed_precision": "no", "validation_steps": 1},
    "temporal": {
        "learning_rate": 1e-3,
        "mixed_precision": "no",
        "validation_steps": 1,
        "split_merge_probability": 0.0,
    },
    "lora": {"learning_rate": 1e-3, "mixed_precision": "no", "validation_steps": 1},
}


def trainable(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def main(
    model: str,
    data: str,
    out: str,
    name: str = "onset",
    batch_size: str = "1",
    steps: str = "6",
    accumulation: str = "1",
    validation: str = "0.25",
) -> None:
    config = TrainConfig(
        max_steps=int(steps),
        batch_size=int(batch_size),
        gradient_accumulation_steps=int(accumulation),
        checkpoint_every=0,
        validation_fraction=float(validation),
        **SETTINGS[name],
    )
    trainer = trainer_class(name)(config, model, data, out, progress=False)
    start = {}
    build = trainer.build

    def build_and_keep(device):
        module = build(device)
        start.update(trainable(module))
        return module

    trainer.build = build_and_keep
    trainer.run()
    module = trainer.accelerator.unwrap_model(trainer.model)
    weights = module.state_dict()
    digest = hashlib.sha1()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(weights[key].detach().cpu().contiguous().numpy().tobytes())
    rank = trainer.accelerator.process_index
    (Path(out) / f"weights-rank{rank}.sha1").write_text(digest.hexdigest())
    if trainer.accelerator.is_main_process:
        torch.save(start, Path(out) / "trainable-start.pt")
        torch.save(trainable(module), Path(out) / "trainable-end.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
