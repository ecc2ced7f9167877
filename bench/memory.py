"""Peak resident memory of the whole pipeline at full size, against the bytes of its weights.

Each dtype runs in a fresh Python process that builds every component at its released size with
random weights (SD-1.5 UNet and ControlNet, SD VAE, CLIP ViT-L/14 text encoder, CLIP ViT-H/14 image
encoder, HiFi-GAN vocoder, R(2+1)D-18 onset detector), then generates one 10.24 s window from 150
video frames with one denoising step (text encoding, onset detection, ControlNet + UNet, VAE decode,
vocoder). The peak is taken over the generation only (the build's transient copies are excluded by
resetting the kernel's peak record after it); the process's resident size after the build, before
generating, is given too.

The 150-frame CLIP embedding is passed precomputed (``video_embeds``): the image encoder's weights
are loaded and counted, but running ViT-H on 150 frames would take ~10 min on one core. Its
activations (batches of 50 frames) are far smaller than the UNet's.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/memory.py [--threads 1] [--tiny]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common

DTYPES = ("fp32", "bf16")


class StagePeaks:
    """Peak RSS per stage of a pipeline call, by wrapping the pipeline's stage methods: entering a
    stage closes the previous one (its peak is read, then the kernel's record is reset)."""

    # Stage methods in the order __call__ runs them; the denoising loop runs between the end of
    # prepare_latents and decode_latents.
    STAGES = {
        "encode_prompt": "text encoder",
        "prepare_timestamp_masks": "onset detector + masks",
        "decode_latents": "VAE decode",
        "mel_images_to_audio": "vocoder",
    }

    def __init__(self, pipe):
        self.peaks: dict[str, int] = {}
        self.current = "other"
        for method, stage in self.STAGES.items():
            setattr(pipe, method, self._wrap(getattr(pipe, method), stage, after="other"))
        pipe.prepare_latents = self._wrap(pipe.prepare_latents, "other", after="ControlNet + UNet steps")

    def switch(self, stage: str) -> None:
        peak = _common.peak_rss_bytes()
        self.peaks[self.current] = max(self.peaks.get(self.current, 0), peak)
        _common.reset_peak_rss()
        self.current = stage

    def _wrap(self, method, stage: str, after: str):
        def run(*args, **kwargs):
            self.switch(stage)
            try:
                return method(*args, **kwargs)
            finally:
                self.switch(after)

        return run


def run_pipeline(tiny: bool, dtype_name: str, steps: int = 1, vae_tiling: bool = False) -> dict:
    """Build the pipeline in ``dtype_name`` and generate once; measure memory (in this process).

    Returns:
        {"dtype", "weights_bytes" (parameters + buffers of every component), "rss_baseline" (bytes,
        after imports, before building), "rss_loaded" (after building), "peak_rss_generate" (peak
        during generation; None where the peak cannot be reset), "peak_rss_process" (peak over the
        whole process, build included), "stage_peaks" ({stage: peak RSS bytes while it ran}),
        "build_s", "generate_s", "audio_samples"}.
    """
    import _models
    import numpy as np
    import torch

    from foleycrafter.testing import synthetic_frames

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    _common.release_free_memory()
    baseline = _common.rss_bytes()
    start = time.perf_counter()
    pipe = _models.full_pipeline(tiny, dtype)
    if vae_tiling:
        # diffusers' tiled decode (overlapping tiles, blended), with the tile size it takes from
        # SD-1.5's VAE config (sample_size 512); the bench's VAE config leaves the default 32.
        pipe.vae.enable_tiling()
        pipe.vae.tile_sample_min_size = 512
        pipe.vae.tile_latent_min_size = 512 // pipe.vae_scale_factor
    build_s = time.perf_counter() - start
    modules = [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
    weights = _models.module_bytes(*modules)
    frames = synthetic_frames(num_frames=150, height=144, width=256)
    video_embeds = torch.randn(
        1, 1, pipe.image_encoder.config.projection_dim, generator=torch.Generator().manual_seed(0)
    )
    _common.release_free_memory()
    loaded = _common.rss_bytes()
    build_peak = _common.peak_rss_bytes()
    resettable = _common.reset_peak_rss()
    stages = StagePeaks(pipe) if resettable else None
    start = time.perf_counter()
    out = pipe(
        prompt="a dog barks",
        video=frames,
        audio_length_in_s=pipe.timeline().window_seconds,
        video_embeds=video_embeds,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    generate_s = time.perf_counter() - start
    if stages is not None:
        stages.switch("other")
        peak = max(stages.peaks.values())
    else:
        peak = _common.peak_rss_bytes()
    if not np.all(np.isfinite(out.audios[0])):
        raise RuntimeError("the pipeline produced non-finite audio")
    return {
        "dtype": dtype_name,
        "weights_bytes": weights,
        "rss_baseline": baseline,
        "rss_loaded": loaded,
        "peak_rss_generate": peak if resettable else None,
        "peak_rss_process": max(build_peak, peak),
        "stage_peaks": stages.peaks if stages is not None else {},
        "build_s": build_s,
        "generate_s": generate_s,
        "audio_samples": int(out.audios[0].shape[0]),
    }


def run_in_subprocess(tiny: bool, dtype_name: str, steps: int, vae_tiling: bool = False) -> dict:
    """:func:`run_pipeline` in a fresh interpreter, so that nothing of another dtype's run is resident."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import _common, memory; _common.quiet_libraries(); "
        "print(json.dumps(memory.run_pipeline(sys.argv[2] == '1', sys.argv[3], int(sys.argv[4]), sys.argv[5] == '1')))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(Path(__file__).parent),
            "1" if tiny else "0",
            dtype_name,
            str(steps),
            "1" if vae_tiling else "0",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"the {dtype_name} run failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(tiny: bool, dtypes=DTYPES, steps: int = 1, progress=None, vae_tiling: bool = False) -> list[dict]:
    """One subprocess per dtype; rows with figures in MiB and peak / weights ratios."""
    rows = []
    for name in dtypes:
        if progress:
            progress(f"running the {name} pipeline in a subprocess ...")
        r = run_in_subprocess(tiny, name, steps, vae_tiling)
        peak = r["peak_rss_generate"] if r["peak_rss_generate"] is not None else r["peak_rss_process"]
        rows.append(
            {
                "dtype": name + (" + VAE tiling" if vae_tiling else ""),
                "weights_mib": _common.mib(r["weights_bytes"]),
                "rss_baseline_mib": _common.mib(r["rss_baseline"]),
                "rss_loaded_mib": _common.mib(r["rss_loaded"]),
                "peak_generate_mib": _common.mib(r["peak_rss_generate"]),
                "peak_process_mib": _common.mib(r["peak_rss_process"]),
                "peak_over_weights": _common.ratio(peak, r["weights_bytes"]),
                "peak_minus_baseline_over_weights": _common.ratio(
                    peak - r["rss_baseline"], r["weights_bytes"]
                ),
                "build_s": r["build_s"],
                "generate_s": r["generate_s"],
                "stage_peaks_mib": {k: _common.mib(v) for k, v in r["stage_peaks"].items()},
            }
        )
    return rows


def main(argv=None) -> list[dict]:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated, of fp32,bf16 (both)")
    p.add_argument("--steps", type=int, default=1, help="denoising steps (1)")
    p.add_argument("--vae-tiling", action="store_true", help="decode with diffusers' VAE tiling")
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    env = _common.environment(args.threads)
    shape = "tiny models" if args.tiny else "full size, random weights"
    _common.print_header(f"peak memory of one generation ({shape}, {args.steps} step(s))", env)
    rows = measure(
        args.tiny, args.dtypes.split(","), args.steps, progress=_common.log, vae_tiling=args.vae_tiling
    )
    _common.print_table([{k: v for k, v in row.items() if k != "stage_peaks_mib"} for row in rows])
    for row in rows:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in row["stage_peaks_mib"].items())
        print(f"{row['dtype']}: peak RSS per stage (MiB): {stages}")
    for row in rows:
        print(
            f"{row['dtype']}: weights {row['weights_mib']:.0f} MiB; resident after loading {row['rss_loaded_mib']:.0f} MiB; "
            f"peak while generating {row['peak_generate_mib'] or row['peak_process_mib']:.0f} MiB "
            f"= {row['peak_over_weights']:.2f} x weights ({row['peak_minus_baseline_over_weights']:.2f} x without "
            f"the {row['rss_baseline_mib']:.0f} MiB of interpreter and libraries)"
        )
    _common.write_json(args.json, {"environment": env, "tiny": args.tiny, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
