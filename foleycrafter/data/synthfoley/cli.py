"""The command line: ``python -m foleycrafter.data.synthfoley OUT --split test --num-clips 200``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .classes import CLASSES
from .planning import DEFAULT_SIZE, GENERATOR_VERSION, GENERATOR_VERSIONS, SPLITS
from .writing import LAYOUTS, generate_dataset


def main(argv: Sequence[str] | None = None, prog: str = "synthfoley") -> int:
    """Command line: ``python -m foleycrafter.data.synthfoley OUT --split test --num-clips 200``.

    Returns the exit status (0, or 2 for bad arguments or a split folder that already exists)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate SynthFoley clips (mp4 + wav + metadata.jsonl) into OUT/<split>/.",
    )
    parser.add_argument("out_dir", help="dataset root folder")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--num-clips", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="frame width = height (pixels, even)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing split folder's clips")
    parser.add_argument(
        "--version",
        type=int,
        choices=GENERATOR_VERSIONS,
        default=GENERATOR_VERSION,
        help="generator version (2 adds event dynamics; 1 reproduces older datasets)",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="single",
        help="one object per clip, two side by side with only one heard (for region focus), or "
        "'sequence': two or three objects in turn, each heard in its own segment (frame-aligned semantics)",
    )
    args = parser.parse_args(argv)
    try:
        records = generate_dataset(
            args.out_dir,
            args.split,
            args.num_clips,
            args.seed,
            args.size,
            args.workers,
            args.overwrite,
            version=args.version,
            layout=args.layout,
        )
    except (FileExistsError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    seconds = sum(r["duration"] for r in records)
    print(
        f"wrote {len(records)} clips ({seconds / 60:.1f} min) to {Path(args.out_dir) / args.split} "
        f"(seed {args.seed}, {len(CLASSES)} classes, generator version {args.version})"
    )
    return 0
