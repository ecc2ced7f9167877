"""Run under `torchrun --nproc_per_node 2`: trains the onset detector for a few steps in two CPU
processes (gloo) and writes each process's final weight hash, so a test can check they agree."""

import hashlib
import sys
from pathlib import Path

from foleycrafter.training import TrainConfig, trainer_class


def main(model: str, data: str, out: str) -> None:
    config = TrainConfig(
        max_steps=6, batch_size=1, learning_rate=3e-3, checkpoint_every=0, validation_fraction=0.25
    )
    trainer = trainer_class("onset")(config, model, data, out, progress=False)
    trainer.run()
    weights = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    digest = hashlib.sha1()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(weights[key].detach().cpu().contiguous().numpy().tobytes())
    rank = trainer.accelerator.process_index
    (Path(out) / f"weights-rank{rank}.sha1").write_text(digest.hexdigest())


if __name__ == "__main__":
    main(*sys.argv[1:4])
