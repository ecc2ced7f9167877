"""Does denoising several windows (or clips) in one UNet batch pay? Per-item time, batched against
one at a time, side by side.

    .venv/bin/python bench/batching.py --threads 2 [--dtype fp32] [--items 1,2,4] [--tiny]

Two measurements:

* ``step``: one denoising step (temporal controller + UNet with the semantic adapter) on 1, 2, 4
  items (batches of 2, 4, 8 under classifier-free guidance) at the Auffusion shape, in the layout
  the CLI uses on this CPU (bf16 laid out channels-last; ``--dtype fp32`` for float32 NCHW). Random
  weights from the published configs (``_models``). Time per item against one item alone.
* ``long_clip`` (with the bundled model, ``--model``; skipped when absent): a whole
  ``pipe(video=...)`` call on a ``--seconds`` long SynthFoley clip, which the pipeline cuts into
  overlapping windows, with ``window_batch_size`` 1 (one window at a time) and each of ``--items``
  (windows per batch), in the CLI's defaults (``--dtype auto``, 256-pixel frames, the model's
  sampler and steps). Also checks that the batched audio equals the one-at-a-time audio up to
  rounding.

Ratios are one item's time / the batched per-item time (> 1: batching is faster).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import _models  # noqa: E402
import torch  # noqa: E402
from efficiency import DTYPES, step_function, step_inputs  # noqa: E402
from tiny_clip import DEFAULT_MODEL  # noqa: E402


def write_long_clip(folder: Path, seconds: float, seed: int = 0) -> Path:
    """An mp4 of ``seconds`` made of SynthFoley test clips (at most 10 s each, the generator's
    limit) played one after another, all at 25 fps."""
    import math

    import numpy as np

    from foleycrafter.data.synthfoley import generate_clip, write_mp4, write_wav

    pieces = math.ceil(seconds / 10.0)
    clips = [generate_clip(seed, k, "test", duration=seconds / pieces, fps=25) for k in range(pieces)]
    wav, mp4 = folder / "long.wav", folder / "long.mp4"
    write_wav(wav, np.concatenate([audio for _, audio, _ in clips]))
    write_mp4(mp4, np.concatenate([frames for frames, _, _ in clips]), 25, wav)
    return mp4


def _rows(results: dict, items: dict[str, int]) -> list[dict]:
    """Median wall/CPU seconds per call and per item, and the per-item ratio against the first case."""
    rows = []
    for name, values in results.items():
        wall = _common.median(_common.column(values, "wall_s"))
        cpu = _common.median(_common.column(values, "cpu_s"))
        rows.append(
            {
                "case": name,
                "items": items[name],
                "wall_s": wall,
                "cpu_s": cpu,
                "wall_per_item_s": wall / items[name],
                "cpu_per_item_s": cpu / items[name],
                "spread": _common.spread(_common.column(values, "wall_s")),
            }
        )
    for row in rows:
        row["speedup_wall"] = _common.ratio(rows[0]["wall_per_item_s"], row["wall_per_item_s"])
        row["speedup_cpu"] = _common.ratio(rows[0]["cpu_per_item_s"], row["cpu_per_item_s"])
    return rows


def measure_step(tiny: bool, dtype_name: str, item_counts: list[int], repeats: int, progress=None) -> dict:
    """Per-item time of one denoising step with 1 and each of ``item_counts`` items in the batch."""
    dtype = DTYPES[dtype_name]
    built = _models.denoising_pipeline(tiny, dtype)
    pipe = built["pipe"]
    if dtype == torch.bfloat16:
        pipe.enable_channels_last()
    counts = sorted({1, *item_counts})
    # Every batch starts with the same item, so that its output can be compared with the item alone.
    largest = step_inputs(tiny, built["cross_dim"], built["clip_dim"], dtype, batch=2 * counts[-1])
    cases, items, outputs = {}, {}, {}
    for count in counts:
        name = f"{count} item{'s' if count > 1 else ''}"
        inputs = {key: value[: 2 * count] if value.ndim else value for key, value in largest.items()}
        step = step_function(pipe, inputs)
        outputs[name] = step()  # warm-up; the first item's inputs are the same in every batch
        cases[name], items[name] = _common.timed(step), count
    single = outputs[next(iter(outputs))].float()
    difference = max((out[:2].float() - single).abs().max().item() for out in outputs.values())
    results = _common.interleaved(cases, repeats, progress=progress)
    return {
        "dtype": dtype_name,
        "channels_last": dtype == torch.bfloat16,
        "rows": _rows(results, items),
        "calls": results,
        "first_item_max_abs_difference": difference,
        "output_scale": single.abs().max().item(),
    }


def measure_long_clip(
    model,
    seconds: float,
    item_counts: list[int],
    repeats: int,
    dtype_name: str = "auto",
    steps: int | None = None,
    progress=None,
) -> dict:
    """Whole-pipeline seconds per window for a clip cut into windows, with windows batched or not."""
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.runtime import place_pipeline, resolve_device_and_dtype

    device, dtype = resolve_device_and_dtype("cpu", dtype_name)
    pipe = place_pipeline(FoleyCrafterPipeline.from_pretrained(model, dtype=dtype), device, dtype)
    pipe.set_progress_bar_config(disable=True)
    sizes = sorted({1, *item_counts})
    outputs = {}  # windows per batch -> (audio, mel images) of its last call
    with tempfile.TemporaryDirectory() as folder:
        video = str(write_long_clip(Path(folder), seconds))

        def run(size):
            def call():
                out = pipe(
                    video=video,
                    window_batch_size=size,
                    num_inference_steps=steps,
                    generator=torch.Generator().manual_seed(0),
                )
                outputs[size] = (out.audios[0], out.mel_images)
                return out

            return call

        windows = len(run(1)().windows)  # also the warm-up
        cases = {
            f"{size} window{'s' if size > 1 else ''} per batch": _common.timed(run(size)) for size in sizes
        }
        results = _common.interleaved(cases, repeats, progress=progress)
    items = dict.fromkeys(cases, windows)
    reference_audio, reference_mel = outputs[1]
    return {
        "clip_seconds": seconds,
        "windows": windows,
        "dtype": str(dtype).removeprefix("torch."),
        "sampler": f"{type(pipe.scheduler).__name__} x {steps or pipe.config.default_num_inference_steps}",
        "rows": _rows(results, items),
        "calls": results,
        # Against one window at a time: the mel images (in [0, 1]) and the audio (peak 1).
        "mel_max_abs_difference": {
            size: float(abs(outputs[size][1] - reference_mel).max()) for size in sizes
        },
        "mel_mean_abs_difference": {
            size: float(abs(outputs[size][1] - reference_mel).mean()) for size in sizes
        },
        "audio_max_abs_difference": {
            size: float(abs(outputs[size][0] - reference_audio).max()) for size in sizes
        },
        "audio_peak": float(abs(reference_audio).max()),
    }


def main(argv=None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16", help="of the step measurement")
    parser.add_argument("--items", default="2,4", help="items (windows) per batch to compare with 1")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (3)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="native model folder for long_clip")
    parser.add_argument("--seconds", type=float, default=30.0, help="long clip length (s)")
    args = parser.parse_args(argv)
    item_counts = [int(n) for n in args.items.split(",") if n.strip()]
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    env = _common.environment(args.threads)
    shape = "tiny shape" if args.tiny else "Auffusion shape"
    _common.print_header(f"batching: one denoising step, {shape}, {args.dtype}", env)
    step = measure_step(args.tiny, args.dtype, item_counts, args.repeats, progress=_common.log)
    _common.print_table(
        step["rows"], ["case", "wall_s", "cpu_s", "wall_per_item_s", "speedup_wall", "speedup_cpu", "spread"]
    )
    print(
        f"first item in a batch vs alone: max |difference| {step['first_item_max_abs_difference']:.3g} "
        f"(output scale {step['output_scale']:.3g})"
    )
    result = {"environment": env, "step": step}
    if Path(args.model).is_dir():
        seconds = min(args.seconds, 11.0) if args.tiny else args.seconds
        print(f"\nlong clip: {seconds:g} s with the model in {args.model}")
        long_clip = measure_long_clip(args.model, seconds, item_counts, args.repeats, progress=_common.log)
        print(f"{long_clip['windows']} windows, {long_clip['dtype']}, {long_clip['sampler']}")
        _common.print_table(
            long_clip["rows"],
            ["case", "wall_s", "cpu_s", "wall_per_item_s", "speedup_wall", "speedup_cpu", "spread"],
        )
        for key in ("mel_max_abs_difference", "mel_mean_abs_difference", "audio_max_abs_difference"):
            values = ", ".join(f"{size} per batch {v:.3g}" for size, v in long_clip[key].items())
            print(f"{key.replace('_', ' ')} from one window at a time: {values}")
        result["long_clip"] = long_clip
    else:
        print(f"\nlong clip: skipped, no model folder at {args.model}")
    _common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
