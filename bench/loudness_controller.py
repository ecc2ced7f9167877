"""The loudness controller's cost: seconds per denoising step with the temporal controller alone
and with the loudness controller beside it, side by side on one SynthFoley clip.

    .venv/bin/python bench/loudness_controller.py --model MODEL_WITH_LOUDNESS_CONTROLLER [--threads 2]

Why a second controller and not a loudness channel added to the temporal one (issue #16 asks to
choose, measure and explain): a second controller keeps the released temporal controller's
weights and input as they are, so the released adapters work unchanged and a user can combine the
loudness controller with any temporal controller; a channel added to one controller costs nothing
per step but needs that controller retrained and makes the released one unusable with loudness.
The price of the choice is one more encoder pass per step: this script measures it.

Cases (whole ``pipe(video=..., prompt="")`` calls with the model loaded once, repetitions
interleaved): ``temporal`` (no curve: the loudness controller does not run) and
``temporal+loudness`` (a curve: both run). The per-step figure subtracts a one-step call's time
(frames, detector, decoding and vocoding) from both; the ratio is the second over the first (the
one-controller-with-two-channels design would cost what ``temporal`` costs).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from tiny_clip import write_clip  # noqa: E402


def measure(model, seconds: float, steps: int, repeats: int) -> dict:
    import torch

    from foleycrafter import FoleyCrafterPipeline

    pipe = FoleyCrafterPipeline.from_pretrained(model)
    if pipe.components.get("loudness_controller") is None:
        raise SystemExit(f"{model} has no loudness controller; train one with `foleycrafter train loudness`.")
    pipe.set_progress_bar_config(disable=True)
    curve = ([0.0, seconds], [-40.0, -10.0])
    with tempfile.TemporaryDirectory() as folder:
        video = str(write_clip(Path(folder), seconds))

        def run(count, loudness):
            def call():
                pipe(
                    video=video,
                    num_inference_steps=count,
                    loudness=loudness,
                    frame_short_side=256,
                    generator=torch.Generator().manual_seed(0),
                )

            return _common.timed(call)

        cases = {
            "temporal": run(steps, None),
            "temporal+loudness": run(steps, curve),
            "overhead": run(1, None),
        }
        results = _common.interleaved(cases, repeats, warmup=1, progress=_common.log)
    rows, overhead = _common.per_step_rows(results, ("temporal", "temporal+loudness"), steps)
    return {
        "clip_seconds": seconds,
        "steps": steps,
        "one_step_call_s": overhead,
        "rows": rows,
        "ratio_per_step": _common.ratio(rows[1]["s_per_step"], rows[0]["s_per_step"]),
    }


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a native model folder with a loudness_controller")
    _common.clip_step_options(parser)
    args = parser.parse_args()
    env = _common.clip_step_setup(args, "loudness controller")
    result = measure(args.model, args.seconds, args.steps, args.repeats)
    _common.print_table(result["rows"])
    print(f"seconds per step with / without the loudness controller: {result['ratio_per_step']:.2f}x")
    _common.write_json(args.json, {"environment": env, **result})


if __name__ == "__main__":
    main()
