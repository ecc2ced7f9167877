"""``python -m foleycrafter.train ADAPTER ...``: the training entry point, also for several processes::

    accelerate launch -m foleycrafter.train semantic --config adapters/semantic.yaml --data D --out O
    torchrun --nproc_per_node 2 -m foleycrafter.train onset --config adapters/onset.yaml --data D --out O

``foleycrafter train ...`` runs the same code.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .training import TRAINERS

    parser.add_argument("adapter", choices=sorted(TRAINERS), help="what to train")
    parser.add_argument("--config", help="YAML recipe (see adapters/*.yaml)")
    parser.add_argument(
        "--model",
        help="the native FoleyCrafter folder whose base stays frozen (clip/vae/unet: the folder of parts "
        "trained so far, if any)",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="a folder written by `foleycrafter prepare` (clip: a SynthFoley split folder)",
    )
    parser.add_argument(
        "--out", required=True, help="output folder: checkpoints/, final/, logs/, validation/"
    )
    parser.add_argument("--resume-from", help="'latest' or a checkpoint-<step> folder")
    parser.add_argument("--max-steps", type=int, help="override the recipe's max_steps")
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch_size")
    parser.add_argument("--learning-rate", type=float, help="override the recipe's learning_rate")
    parser.add_argument(
        "--mixed-precision", choices=["no", "fp16", "bf16"], help="override the recipe's mixed_precision"
    )
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe setting (YAML value)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import yaml

    from .training import TrainConfig, trainer_class

    overrides = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "mixed_precision": args.mixed_precision,
        "seed": args.seed,
    }
    for item in args.set:
        key, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"--set {item}: expected KEY=VALUE.")
        overrides[key.strip()] = yaml.safe_load(value)
    config = TrainConfig.from_sources(args.config, overrides)
    trainer = trainer_class(args.adapter)(
        config, args.model, args.data, args.out, resume_from=args.resume_from, progress=not args.quiet
    )
    summary = trainer.run()
    if trainer.accelerator.is_main_process:
        last = summary["history"][-1]["loss"] if summary["history"] else None
        print(
            json.dumps(
                {
                    "step": summary["step"],
                    "final_loss": last,
                    "validation": summary["validation"],
                    "final": summary["final"],
                }
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m foleycrafter.train", description="Train a FoleyCrafter adapter."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
