"""How well a model's video onset detector finds the ground-truth onsets of a SynthFoley split.

The detector runs once per clip as generation runs it (the model's windows, 150 frames each, the
pipeline's threshold), its onsets are placed by :func:`foleycrafter.temporal.onsets_from_probabilities` at
each ``position`` (``"centre"``: the run's probability-weighted centre, what the pipeline uses;
``"first"``: the run's first frame), and each placement is scored against the clips' ground-truth
onset times with the benchmark's metrics (precision, recall, F1 at +-50 ms, mean timing error).
Median signed error (estimated - true, ms) shows a bias that F1 alone hides.

This is the ceiling of the ``both_detected`` row of ``foleycrafter eval``: the temporal controller
cannot place a sound better than the onset it is given.

Command line::

    python -m foleycrafter.eval.video_onsets --model checkpoints/foleycrafter-tiny \\
        --data runs/tiny/synthfoley --split validation --max-clips 50
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from ..generation import detect_in_windows
from ..models.onset import DEFAULT_ONSET_THRESHOLD
from ..temporal import ONSET_POSITIONS
from .onset_metrics import DEFAULT_TOLERANCE, evaluate_onsets, match_onsets


def evaluate_video_onsets(
    pipe,
    records: Sequence[dict],
    threshold: float = DEFAULT_ONSET_THRESHOLD,
    positions: Sequence[str] = ONSET_POSITIONS,
) -> dict:
    """Score the pipeline's onset detector on ``records`` (SynthFoley metadata rows with
    ``video_path`` and ``onsets`` in seconds).

    Returns:
        ``{position: metrics}``: :func:`~foleycrafter.eval.onset_metrics.evaluate_onsets`'s dict plus
        ``median_signed_error_ms`` (estimated - true, over the +-50 ms matches; ``None`` if none).
    """
    if pipe.onset_detector is None:
        raise ValueError("this model has no onset detector to evaluate.")
    if not records:
        raise ValueError("no clips to evaluate.")
    clips = {position: [] for position in positions}
    for record in records:
        windows = detect_in_windows(
            pipe.onset_detector,
            record["video_path"],
            pipe.timeline(),
            short_side=None,  # the pipeline's default: full frames
        )
        for position in positions:
            estimated = [t for window in windows for t in window.onsets(threshold, position)]
            clips[position].append((record["onsets"], estimated))
    results = {}
    for position, pairs in clips.items():
        metrics = evaluate_onsets([(reference, estimated, None) for reference, estimated in pairs])
        signed = []
        for reference, estimated in pairs:
            for i, j in match_onsets(reference, estimated, DEFAULT_TOLERANCE):
                signed.append(estimated[j] - reference[i])
        metrics["median_signed_error_ms"] = float(np.median(signed) * 1e3) if signed else None
        results[position] = metrics
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from ..pipeline import FoleyCrafterPipeline
    from ..runtime import default_model
    from .classifier import read_split

    parser = argparse.ArgumentParser(prog="python -m foleycrafter.eval.video_onsets", description=__doc__)
    parser.add_argument("--model", default=default_model(), help="native FoleyCrafter folder")
    parser.add_argument("--data", required=True, help="SynthFoley dataset root")
    parser.add_argument("--split", default="validation", help="split (default: validation)")
    parser.add_argument("--max-clips", type=int, default=None, help="only the first N clips")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_ONSET_THRESHOLD,
        help=f"detector threshold ({DEFAULT_ONSET_THRESHOLD})",
    )
    parser.add_argument("--out", help="also write the metrics as JSON here")
    args = parser.parse_args(argv)
    try:
        pipe = FoleyCrafterPipeline.from_pretrained(args.model)
        records = read_split(args.data, args.split)[: args.max_clips]
        results = evaluate_video_onsets(pipe, records, threshold=args.threshold)
    except (FileNotFoundError, ValueError) as error:
        print(f"video_onsets: error: {error}", file=sys.stderr)
        return 2
    print(f"video onset detector, {len(records)} {args.split} clips, threshold {args.threshold}:")
    print("position  P      R      F1     timing err ms  median signed ms")
    for position, m in results.items():
        timing = m["mean_timing_error_ms"]
        signed = m["median_signed_error_ms"]
        print(
            f"{position:8s}  {m['precision']:.3f}  {m['recall']:.3f}  {m['f1']:.3f}  "
            f"{'—' if timing is None else f'{timing:.1f}':13s}  {'—' if signed is None else f'{signed:+.1f}'}"
        )
    if args.out:
        from .report import write_results

        write_results({"model": args.model, "split": args.split, "positions": results}, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
