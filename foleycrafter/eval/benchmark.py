"""``foleycrafter eval``, the SynthFoley benchmark command: its :func:`add_arguments` and :func:`run`.

The work is done elsewhere: :mod:`foleycrafter.eval.running` generates audio for every clip of a
split under each configuration and scores it (what is measured, and the configurations, are
described there); :mod:`foleycrafter.eval.report` prints the table, writes the JSON and joins
results files (``--merge``); :mod:`foleycrafter.eval.compare` compares two results files
(``--compare``).

Command line (``foleycrafter eval``)::

    foleycrafter eval --model M --data ROOT --split test --configurations a,b --max-clips N \\
        --steps S --out results.json
    foleycrafter eval --merge a.json b.json --out all.json
    foleycrafter eval --compare baseline.json candidate.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ..arguments import positive_int
from ..runtime import MODEL_ENV, model_location, resolve_device_and_dtype
from ..schedulers import add_sampler_arguments
from .report import format_table, merge_results, read_results, write_results
from .running import CONFIGURATIONS, DEFAULT_CLASSIFIER, DEFAULT_MIN_INTERVAL_MS, evaluate_model

#: The bundled tiny model, the default of ``foleycrafter eval`` when ``--model`` is not given.


# -- command line --------------------------------------------------------------------------------------
def _kwarg(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE (VALUE in JSON, e.g. onset_threshold=0.4), got {text!r}"
        )
    name, value = text.split("=", 1)
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value  # a bare string


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``foleycrafter eval`` (see :func:`run`)."""
    parser.add_argument(
        "--model",
        help=f"native FoleyCrafter folder to evaluate (default: ${MODEL_ENV}, else checkpoints/foleycrafter-tiny)",
    )
    parser.add_argument(
        "--data", help="SynthFoley dataset root (holding <split>/metadata.jsonl); required unless --merge"
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="RESULTS_JSON",
        help="generate nothing: join results files of the same model, split and settings (e.g. one "
        "run per configuration) into one table (and --out)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("BASELINE_JSON", "CANDIDATE_JSON"),
        help="generate nothing: is the candidate worse than the baseline beyond noise? A paired "
        "bootstrap over the clips of two results files of the same split (e.g. two samplers)",
    )
    parser.add_argument(
        "--configurations",
        default=",".join(CONFIGURATIONS),
        help=f"comma-separated configurations (default: all): {', '.join(CONFIGURATIONS)}",
    )
    parser.add_argument("--max-clips", type=positive_int, default=None, help="only the first N clips")
    add_sampler_arguments(parser)
    parser.add_argument(
        "--guidance-scale", type=float, default=7.5, help="classifier-free guidance (default 7.5)"
    )
    parser.add_argument("--seed", type=int, default=42, help="clip i uses seed + i (default 42)")
    parser.add_argument(
        "--temporal-scale",
        type=float,
        default=None,
        help="temporal controller weight of the configurations that use it (default: the model's "
        "default_temporal_scale, as the pipeline uses)",
    )
    parser.add_argument(
        "--pipeline-arg",
        type=_kwarg,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra pipeline argument for every clip, VALUE in JSON (repeatable), e.g. onset_threshold=0.4",
    )
    parser.add_argument(
        "--classifier",
        default=DEFAULT_CLASSIFIER,
        help="AudioClassifier folder (default: the bundled checkpoints/synthfoley-classifier); 'none' skips "
        "semantic accuracy and the Fréchet distance",
    )
    parser.add_argument(
        "--sync-classifier",
        default=DEFAULT_CLASSIFIER,
        help="SyncClassifier folder for Align Acc (default: the bundled "
        "checkpoints/synthfoley-sync-classifier); 'none' skips it",
    )
    parser.add_argument(
        "--min-interval-ms",
        type=float,
        default=DEFAULT_MIN_INTERVAL_MS,
        help=f"audio onset detector's minimum interval between onsets (default {DEFAULT_MIN_INTERVAL_MS:g})",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto (cuda if available; default cpu)"
    )
    parser.add_argument(
        "--dtype",
        choices=["saved", "float32", "bfloat16", "float16"],
        default="saved",
        help="precision to load the model in (default: the saved one, float32 for the tiny model)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="generate in N processes (CPU: the cores are shared between them; same results as 1)",
    )
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no per-clip progress on stderr")


def run(args: argparse.Namespace) -> int:
    """Run ``foleycrafter eval``: print the table, write the JSON; returns the exit code (0).
    Problems with the inputs raise ``ValueError`` / ``FileNotFoundError``."""
    if args.compare:
        from .compare import compare_results, format_comparison

        baseline, candidate = (read_results(path) for path in args.compare)
        comparison = compare_results(baseline, candidate)
        print(format_comparison(comparison, args.compare))
        if args.out:
            write_results({"compared": [os.fspath(p) for p in args.compare], **comparison}, args.out)
            print(f"wrote {args.out}")
        return 0
    if args.merge:
        results = merge_results([read_results(path) for path in args.merge], names=args.merge)
    else:
        from ..distributed import launched_processes, process_group

        # Under torchrun / accelerate launch the processes share the generation; the main process
        # scores, prints and writes, the others return with the same code.
        processes = launched_processes()
        with process_group(processes):
            results = _evaluate_from_args(args, processes)
        if results is None:
            return 0
    print(format_table(results))
    if args.out:
        write_results(results, args.out)
        print(f"wrote {args.out}")
    return 0


def _evaluate_from_args(args: argparse.Namespace, processes=None) -> dict | None:
    import torch

    from ..distributed import Processes, local_device

    if not args.data:
        raise ValueError("--data is required: the SynthFoley dataset root (holding <split>/metadata.jsonl).")
    model = model_location(args.model)
    classifier = None if str(args.classifier).lower() == "none" else args.classifier
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    return evaluate_model(
        model,
        args.data,
        split=args.split,
        configurations=args.configurations,
        max_clips=args.max_clips,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        seed=args.seed,
        device=str(resolve_device_and_dtype(local_device(args.device, processes or Processes()))[0]),
        classifier=classifier,
        sync_classifier=None if str(args.sync_classifier).lower() == "none" else args.sync_classifier,
        min_interval_ms=args.min_interval_ms,
        temporal_scale=args.temporal_scale,
        pipeline_kwargs=dict(args.pipeline_arg),
        scheduler=args.scheduler,
        dtype=None if args.dtype == "saved" else getattr(torch, args.dtype),
        workers=args.workers,
        log=log,
        processes=processes,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m foleycrafter.eval.benchmark`` (the same as ``foleycrafter eval``)."""
    parser = argparse.ArgumentParser(
        prog="foleycrafter eval", description="Evaluate a model on a SynthFoley split."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    # As `foleycrafter` does: the libraries' info chatter would bury the table (set before they load).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"foleycrafter eval: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
