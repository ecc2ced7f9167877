"""The frame-aligned semantic adapter's cost: seconds per denoising step with the release's mean
embedding (4 tokens) and with a token per frame under each visual attention mask, side by side on
one SynthFoley clip.

    .venv/bin/python bench/frame_aligned.py [--model MODEL] [--adapter FOLDER] [--threads 2]

Cases (whole ``pipe(video=..., prompt="")`` calls, models loaded once, repetitions interleaved):
``mean`` (the model as it is), and ``frame_aligned/all``, ``/causal``, ``/framewise`` (the same model
with a frame-aligned adapter instead: ``--adapter`` or, by default, a new one of the model's
geometry, since the cost does not depend on the weights). The per-step figure subtracts a one-step
call's time (frames, CLIP, detector, decoding, vocoding) from each; ratios are over ``mean``
(issue #18's table asks for at most 1.15 with the framewise mask).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from tiny_clip import write_clip  # noqa: E402

MODES = ("all", "causal", "framewise")


def load_pipelines(model, adapter):
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.semantic import initial_frame_aligned_adapter, install_frame_aligned_adapter

    mean = FoleyCrafterPipeline.from_pretrained(model)
    if mean.semantic_adapter_kind != "mean":
        raise SystemExit(
            f"{model}'s semantic adapter is {mean.semantic_adapter_kind}; give a model with the mean one."
        )
    frame = FoleyCrafterPipeline.from_pretrained(model)
    if adapter:
        frame.load_semantic_adapter(adapter)
    else:
        weights, config = initial_frame_aligned_adapter(frame.unet, frame.image_encoder.config.projection_dim)
        install_frame_aligned_adapter(frame.unet, weights, config)
    for pipe in (mean, frame):
        pipe.set_progress_bar_config(disable=True)
    return mean, frame


def measure(model, adapter, seconds: float, steps: int, repeats: int) -> dict:
    import torch

    mean, frame = load_pipelines(model, adapter)
    with tempfile.TemporaryDirectory() as folder:
        video = str(write_clip(Path(folder), seconds))

        def run(pipe, count, **options):
            def call():
                pipe(
                    video=video,
                    num_inference_steps=count,
                    frame_short_side=256,
                    generator=torch.Generator().manual_seed(0),
                    **options,
                )

            return _common.timed(call)

        cases = {"mean": run(mean, steps)}
        cases.update({f"frame_aligned/{mode}": run(frame, steps, visual_attention=mode) for mode in MODES})
        cases["overhead"] = run(mean, 1)
        results = _common.interleaved(cases, repeats, warmup=1, progress=_common.log)
    names = ["mean", *(f"frame_aligned/{mode}" for mode in MODES)]
    rows, overhead = _common.per_step_rows(results, names, steps)
    for row in rows:
        row["ratio_per_step"] = _common.ratio(row["s_per_step"], rows[0]["s_per_step"])
    return {
        "clip_seconds": seconds,
        "steps": steps,
        "frames_per_window": int(frame.timeline().detector_frames),
        "adapter": str(adapter) if adapter else "new (random) frame-aligned adapter",
        "one_step_call_s": overhead,
        "rows": rows,
    }


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="checkpoints/foleycrafter-tiny", help="a native model folder (mean adapter)"
    )
    parser.add_argument(
        "--adapter", default=None, help="a frame-aligned adapter (folder or file); default: a new one"
    )
    _common.clip_step_options(parser)
    args = parser.parse_args()
    env = _common.clip_step_setup(args, "frame-aligned semantic adapter")
    result = measure(args.model, args.adapter, args.seconds, args.steps, args.repeats)
    _common.print_table(result["rows"])
    _common.write_json(args.json, {"environment": env, **result})


if __name__ == "__main__":
    main()
