"""Double guidance's cost: seconds per denoising step with and without the alignment classifier's
gradient (issue #17 asks for at most 1.3x), side by side on one SynthFoley clip.

    .venv/bin/python bench/double_guidance.py --model MODEL_WITH_CLASSIFIER [--threads 2] [--scale 20]

Cases (whole ``pipe(video=..., prompt="")`` calls with the model loaded once, repetitions
interleaved): ``plain`` (alignment_guidance_scale 0) and ``guided`` (``--scale``). Each call decodes
the frames and runs the detector once, then ``--steps`` denoising steps; the per-step figure
subtracts a zero-step call's time (frames, detector, decoding and vocoding) from both. The ratio
is guided / plain (1.0: free).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from tiny_clip import write_clip  # noqa: E402


def measure(model, seconds: float, steps: int, scale: float, repeats: int) -> dict:
    import torch

    from foleycrafter import FoleyCrafterPipeline

    pipe = FoleyCrafterPipeline.from_pretrained(model)
    if pipe.components.get("alignment_classifier") is None:
        raise SystemExit(
            f"{model} has no alignment classifier; train one with `foleycrafter train alignment`."
        )
    pipe.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory() as folder:
        video = str(write_clip(Path(folder), seconds))

        def run(count, guidance):
            def call():
                pipe(
                    video=video,
                    num_inference_steps=count,
                    alignment_guidance_scale=guidance,
                    frame_short_side=256,
                    generator=torch.Generator().manual_seed(0),
                )

            return _common.timed(call)

        cases = {"plain": run(steps, 0.0), "guided": run(steps, scale), "overhead": run(1, 0.0)}
        results = _common.interleaved(cases, repeats, warmup=1, progress=_common.log)
    rows, overhead = _common.per_step_rows(results, ("plain", "guided"), steps)
    return {
        "clip_seconds": seconds,
        "steps": steps,
        "alignment_guidance_scale": scale,
        "one_step_call_s": overhead,
        "rows": rows,
        "ratio_per_step": _common.ratio(rows[1]["s_per_step"], rows[0]["s_per_step"]),
    }


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a native model folder with an alignment_classifier")
    _common.clip_step_options(parser)
    parser.add_argument(
        "--scale", type=float, default=20.0, help="alignment_guidance_scale of the guided case"
    )
    args = parser.parse_args()
    env = _common.clip_step_setup(args, "double guidance")
    result = measure(args.model, args.seconds, args.steps, args.scale, args.repeats)
    _common.print_table(result["rows"])
    print(f"seconds per step guided / plain: {result['ratio_per_step']:.2f}x (target <= 1.3x)")
    _common.write_json(args.json, {"environment": env, **result})


if __name__ == "__main__":
    main()
