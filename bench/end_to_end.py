"""End to end at the released size: a 10 s video in, audio out, release-equivalent settings against
the fast defaults of the command line on this machine.

Every component has its released size and random weights (SD-1.5 UNet and ControlNet, SD VAE, CLIP
ViT-L/14 text encoder, CLIP ViT-H/14 image encoder, HiFi-GAN, R(2+1)D-18 onset detector; see
``_models.full_pipeline``); the video is a 10 s 720p30 H.264 test pattern. Cases:

* ``release``: float32, every frame decoded at full size, 150 CLIP / detector frames, PNDM, default
  (NCHW) layout: what the release does.
* ``bf16``: bfloat16 (what ``--dtype auto`` picks on a CPU with native bfloat16), frames decoded
  with a 256-pixel short side (the CLI's default), PNDM, NCHW.
* ``fast``: as ``bf16``, channels-last (what the CLI adds for bfloat16 on CPU): the CLI's defaults
  for the released weights here.

A full-size step takes 10-30 s on one CPU core, so each call runs only ``--steps`` denoising steps.
A ``callback_on_step_end`` stamps the end of every model evaluation; the median interval is one
evaluation, and the time before the first and after the last stamp is the rest of the call (frame
decoding, CLIP, onset detection, text, VAE, vocoder). A call of N steps is then
``before + evaluations(N) * evaluation + after``, reported for PNDM at 25 steps (26 evaluations)
and, for ``fast``, DPM-Solver++ at 12 (12 evaluations, same model calls). Time per stage is
reported too. Cases run one after another (each needs minutes and several GB), not interleaved, so
the machine's drift between them enters the ratios; ``--repeats`` alternates them.

Run: .venv/bin/python bench/end_to_end.py --threads 2   (~20-25 min; ~13 GB of free RAM)
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from pathlib import Path

import _common

CASES = ("release", "bf16", "fast")
STAGES = {  # pipeline method -> stage name
    "decode_frames": "decode frames",
    "encode_videos": "CLIP image encoder",
    "prepare_timestamp_masks": "onset detector",
    "encode_prompt": "text encoder",
    "decode_latents": "VAE decode",
    "mel_images_to_audio": "vocoder",
}


def evaluations(scheduler_name: str, steps: int, pipe) -> int:
    """Model evaluations of a call of ``steps`` steps with the named sampler (built from ``pipe``'s)."""
    import diffusers

    from foleycrafter.schedulers import SCHEDULERS

    class_name, extra = SCHEDULERS[scheduler_name]
    scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **extra)
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def timed_call(pipe, video: str, steps: int, frame_short_side) -> dict:
    """One ``pipe(video=...)`` call of ``steps`` steps with stage times and per-evaluation stamps."""
    import torch

    stages: dict[str, float] = {}
    originals = {}
    for method, stage in STAGES.items():
        originals[method] = getattr(pipe, method)

        def wrapped(*args, _method=originals[method], _stage=stage, **kwargs):
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                stages[_stage] = stages.get(_stage, 0.0) + time.perf_counter() - start

        setattr(pipe, method, wrapped)
    stamps: list[float] = []

    def stamp(_pipe, _step, _timestep, _tensors):
        stamps.append(time.perf_counter())
        return {}

    try:
        cpu, start = _common.cpu_seconds(), time.perf_counter()
        out = pipe(
            video=video,
            prompt="",
            num_inference_steps=steps,
            frame_short_side=frame_short_side,
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=stamp,
        )
        end, cpu = time.perf_counter(), _common.cpu_seconds() - cpu
    finally:
        for method, original in originals.items():
            setattr(pipe, method, original)
    if not torch.isfinite(torch.as_tensor(out.audios[0])).all():
        raise RuntimeError("the pipeline produced non-finite audio")
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]
    evaluation = statistics.median(intervals)
    return {
        "wall_s": end - start,
        "cpu_s": cpu,
        "evaluations": len(stamps),
        "evaluation_s": evaluation,
        "evaluation_intervals_s": intervals,
        "before_s": stamps[0] - start - evaluation,
        "after_s": end - stamps[-1],
        "stages_s": stages,
    }


def projected(call: dict, evaluations_: int) -> float:
    """Wall seconds of the same call with ``evaluations_`` model evaluations."""
    return call["before_s"] + evaluations_ * call["evaluation_s"] + call["after_s"]


def build(tiny: bool, case: str):
    import _models
    import torch

    dtype = torch.float32 if case == "release" else torch.bfloat16
    pipe = _models.full_pipeline(tiny, dtype)
    if case == "fast":
        pipe.enable_channels_last()
    return pipe


def measure(tiny: bool, steps: int, repeats: int, video: str, progress=None) -> dict:
    calls: dict[str, list[dict]] = {case: [] for case in CASES}
    pndm_evaluations = dpm_evaluations = None
    for round_index in range(repeats):
        order = CASES if round_index % 2 == 0 else CASES[::-1]
        for case in order:
            pipe = build(tiny, case)
            if pndm_evaluations is None:
                pndm_evaluations = evaluations("pndm", 25, pipe)
                dpm_evaluations = evaluations("dpm++", 12, pipe)
            short_side = None if case == "release" else 256
            calls[case].append(timed_call(pipe, video, steps, short_side))
            if progress:
                call = calls[case][-1]
                progress(
                    f"  {case}: {call['wall_s']:.1f} s wall for {call['evaluations']} evaluations "
                    f"({call['evaluation_s']:.2f} s each), before {call['before_s']:.1f} s, after {call['after_s']:.1f} s"
                )
            del pipe
            gc.collect()
            _common.release_free_memory()
    rows = []
    for case in CASES:
        call = {
            key: _common.median([c[key] for c in calls[case]])
            for key in ("wall_s", "cpu_s", "evaluation_s", "before_s", "after_s")
        }
        stages = {
            stage: _common.median([c["stages_s"].get(stage, 0.0) for c in calls[case]])
            for stage in STAGES.values()
        }
        rows.append(
            {
                "case": case,
                "evaluation_s": call["evaluation_s"],
                "before_s": call["before_s"],
                "after_s": call["after_s"],
                "pndm25_s": projected(call, pndm_evaluations),
                **{stage: seconds for stage, seconds in stages.items()},
            }
        )
    by_case = {row["case"]: row for row in rows}
    fast_dpm12 = projected(
        {k: by_case["fast"][k] for k in ("before_s", "evaluation_s", "after_s")}, dpm_evaluations
    )
    release = by_case["release"]["pndm25_s"]
    return {
        "steps_run": steps,
        "pndm25_evaluations": pndm_evaluations,
        "dpm12_evaluations": dpm_evaluations,
        "rows": rows,
        "calls": calls,
        "fast_dpm12_s": fast_dpm12,
        "speedup_bf16": _common.ratio(release, by_case["bf16"]["pndm25_s"]),
        "speedup_fast": _common.ratio(release, by_case["fast"]["pndm25_s"]),
        "speedup_fast_dpm12": _common.ratio(release, fast_dpm12),
        "step_speedup_fast": _common.ratio(
            by_case["release"]["evaluation_s"], by_case["fast"]["evaluation_s"]
        ),
    }


def main(argv=None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="denoising steps run per call (default 3)")
    parser.add_argument("--repeats", type=int, default=1, help="calls per case, alternating (default 1)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="video length (default 10; 2 with --tiny: one window)"
    )
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2: one evaluation interval is needed")
    args.seconds = args.seconds or (2.0 if args.tiny else 10.0)
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    import frame_reading

    env = _common.environment(args.threads)
    _common.print_header(
        f"end to end, {args.seconds:g} s video, {'tiny' if args.tiny else 'released'} sizes", env
    )
    with tempfile.TemporaryDirectory() as folder:
        width, height = (160, 90) if args.tiny else (1280, 720)
        video = frame_reading.make_video(
            Path(folder) / "video.mp4", args.seconds, width, height, threads=args.threads
        )
        result = measure(args.tiny, args.steps, args.repeats, str(video), progress=_common.log)
    _common.print_table(result["rows"])
    release = result["rows"][0]["pndm25_s"]
    print(
        f"projected to PNDM 25 steps ({result['pndm25_evaluations']} evaluations): release {release:.1f} s; "
        f"release / bf16 {result['speedup_bf16']:.2f}x; release / fast {result['speedup_fast']:.2f}x "
        f"(per evaluation {result['step_speedup_fast']:.2f}x)"
    )
    print(
        f"fast with DPM-Solver++ at 12 steps ({result['dpm12_evaluations']} evaluations): "
        f"{result['fast_dpm12_s']:.1f} s, release / that {result['speedup_fast_dpm12']:.2f}x"
    )
    _common.write_json(args.json, {"environment": env, **result})
    return result


if __name__ == "__main__":
    main()
