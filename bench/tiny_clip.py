"""End to end with the bundled tiny model: a 4 s SynthFoley clip (mp4 in, audio out), release-equivalent
settings against the fast settings, side by side; and the issue's target of at most 10 s wall for
the 4 s clip.

    .venv/bin/python bench/tiny_clip.py [--threads 2] [--model checkpoints/foleycrafter-tiny]

Cases (each a whole ``pipe(video=..., prompt="")`` call, model loaded once, repetitions interleaved):

* ``release``: every frame decoded at full size, 150 CLIP / detector frames, PNDM at 25 steps,
  fp32: what the release does.
* ``fast``: what ``pipe(video=...)`` and the CLI do by default: the model's saved sampler at its
  ``default_num_inference_steps`` (``--fast-scheduler`` / ``--fast-steps`` override them), frames
  decoded at a 256-pixel short side, in ``--fast-dtype`` (default ``auto``: what the CLI picks here,
  bfloat16 laid out channels-last on a CPU with native bfloat16, else float32).

Wall seconds and CPU seconds are both reported; the ratio is release / fast (> 1: fast is faster).

``--control`` adds ``release_again``: a second pipeline loaded and run exactly as ``release``. Its
ratio to ``release`` is this machine's noise floor for the comparison (the two compute the same
thing), measured in the same run; a release / fast ratio inside it is no difference.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

DEFAULT_MODEL = _common.REPO / "checkpoints" / "foleycrafter-tiny"
TARGET_SECONDS = 10.0


def write_clip(folder: Path, seconds: float, seed: int = 0) -> Path:
    """A SynthFoley clip of ``seconds`` (test split, index 0, the given seed) as an mp4 with sound."""
    from foleycrafter.data.synthfoley import generate_clip, write_mp4, write_wav

    frames, audio, record = generate_clip(seed, 0, "test", duration=seconds)
    wav, mp4 = folder / "clip.wav", folder / "clip.mp4"
    write_wav(wav, audio)
    write_mp4(mp4, frames, record["fps_fraction"], wav)
    return mp4


def measure(
    model,
    seconds: float,
    repeats: int,
    fast_scheduler: str = "saved",
    fast_steps: int | None = None,
    fast_dtype: str = "auto",
    control: bool = False,
) -> dict:
    """Median wall / CPU seconds of the release-equivalent and fast settings on one clip of ``seconds``
    (with ``control``, also of a second copy of the release-equivalent pipeline: the noise floor)."""
    import torch

    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.defaults import RELEASE_NUM_INFERENCE_STEPS
    from foleycrafter.runtime import place_pipeline, resolve_device_and_dtype
    from foleycrafter.schedulers import set_scheduler

    steps = RELEASE_NUM_INFERENCE_STEPS

    def release_pipeline():
        pipe = FoleyCrafterPipeline.from_pretrained(model)
        pipe.set_progress_bar_config(disable=True)
        set_scheduler(pipe, "pndm")
        return pipe

    release = release_pipeline()
    device, dtype = resolve_device_and_dtype("cpu", fast_dtype)
    fast = place_pipeline(FoleyCrafterPipeline.from_pretrained(model, dtype=dtype), device, dtype)
    fast_dtype = str(dtype).removeprefix("torch.")
    fast.set_progress_bar_config(disable=True)
    set_scheduler(fast, fast_scheduler)
    fast_steps = fast_steps or int(fast.config.default_num_inference_steps)
    with tempfile.TemporaryDirectory() as folder:
        video = str(write_clip(Path(folder), seconds))

        def run(pipe, **kwargs):
            def call():
                out = pipe(video=video, generator=torch.Generator().manual_seed(0), **kwargs)
                assert out.audios[0].shape[-1] == round(seconds * out.sample_rate)

            return _common.timed(call)

        cases = {
            "release": run(release, num_inference_steps=steps, frame_short_side=None),
            "fast": run(fast, num_inference_steps=fast_steps, frame_short_side=256),
        }
        if control:
            cases["release_again"] = run(release_pipeline(), num_inference_steps=steps, frame_short_side=None)
        results = _common.interleaved(cases, repeats, warmup=1, progress=_common.log)
    rows = []
    for name, values in results.items():
        wall, cpu = _common.column(values, "wall_s"), _common.column(values, "cpu_s")
        rows.append(
            {
                "case": name,
                "wall_s": _common.median(wall),
                "cpu_s": _common.median(cpu),
                "spread": _common.spread(wall),
            }
        )
    speedup = _common.ratio(rows[0]["wall_s"], rows[1]["wall_s"])
    noise = {}
    if control:
        noise = {
            "noise_wall": _common.ratio(rows[0]["wall_s"], rows[2]["wall_s"]),
            "noise_cpu": _common.ratio(rows[0]["cpu_s"], rows[2]["cpu_s"]),
        }
    return {
        "clip_seconds": seconds,
        "release": f"{type(release.scheduler).__name__} x {steps}, full frames, float32",
        "fast": f"{fast_scheduler} ({type(fast.scheduler).__name__}) x {fast_steps}, 256 px frames, {fast_dtype}",
        "rows": rows,
        "speedup_wall": speedup,
        "speedup_cpu": _common.ratio(rows[0]["cpu_s"], rows[1]["cpu_s"]),
        **noise,
    }


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="a native model folder")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--fast-scheduler", default="saved", help="sampler of the fast case (default: the model's)"
    )
    parser.add_argument(
        "--fast-steps", type=int, default=None, help="steps of the fast case (default: the model's)"
    )
    parser.add_argument("--fast-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument(
        "--control", action="store_true", help="also time a second release-equivalent copy (the noise floor)"
    )
    args = parser.parse_args()
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    if not Path(args.model).is_dir():
        sys.exit(f"no model folder at {args.model}; pass --model (e.g. a folder written by build_tiny)")
    env = _common.environment(args.threads)
    _common.print_header(f"tiny model end to end, {args.seconds:g} s clip ({args.model})", env)
    result = measure(
        args.model,
        args.seconds,
        args.repeats,
        args.fast_scheduler,
        args.fast_steps,
        args.fast_dtype,
        control=args.control,
    )
    print(f"release = {result['release']};  fast = {result['fast']}")
    _common.print_table(result["rows"])
    print(f"speed-up release/fast: wall {result['speedup_wall']:.2f}x, CPU {result['speedup_cpu']:.2f}x")
    if args.control:
        print(
            f"noise floor release/release_again: wall {result['noise_wall']:.2f}x, CPU {result['noise_cpu']:.2f}x"
        )
    for row in result["rows"]:
        verdict = "meets" if row["wall_s"] <= TARGET_SECONDS else "misses"
        print(
            f"{row['case']}: {row['wall_s']:.1f} s wall for {args.seconds:g} s {verdict} the {TARGET_SECONDS:g} s target"
        )
    _common.write_json(args.json, {"environment": env, **result})


if __name__ == "__main__":
    main()
