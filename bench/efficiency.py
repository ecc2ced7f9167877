"""How much of this machine's matrix-multiply peak one denoising step reaches.

One step is what the pipeline's loop runs per timestep: the temporal controller (ControlNet) and
the UNet with the semantic adapter, on a batch of 2 (classifier-free guidance) at the Auffusion
shape (latent 4x32x128). Its FLOPs are counted once with ``torch.utils.flop_counter``; the
achieved rate (FLOPs / median step time) is set against the rate of a large square GEMM measured
in the same run, interleaved with the steps, in each dtype.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/efficiency.py [--threads 1] [--tiny]
"""

from __future__ import annotations

import _common
import _models
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # On CPU, scaled_dot_product_attention runs `_scaled_dot_product_flash_attention_for_cpu`,
    # which torch's FLOP counter has no formula for: without this, attention would count as free.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def count_flops(fn) -> int:
    """FLOPs (multiply and add counted separately) of the matrix products, convolutions and
    attention that ``fn()`` runs; element-wise work (norms, activations) is not counted."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return int(counter.get_total_flops())


def step_function(pipe, inputs: dict):
    """A callable running one denoising step's models as the pipeline's loop does."""

    def step():
        with torch.no_grad():
            down, mid = pipe.controlnet(
                inputs["sample"],
                inputs["timestep"],
                encoder_hidden_states=inputs["encoder_hidden_states"],
                controlnet_cond=inputs["condition"],
                conditioning_scale=0.2,
                return_dict=False,
            )
            return pipe.unet(
                inputs["sample"],
                inputs["timestep"],
                encoder_hidden_states=inputs["encoder_hidden_states"],
                added_cond_kwargs={"image_embeds": [inputs["image_embeds"]]},
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                return_dict=False,
            )[0]

    return step


def op_profile(fn, top: int = 12) -> list[dict]:
    """Where a call's time goes: the ``top`` aten operators by self CPU time (one profiled call).

    Returns:
        [{"op", "calls", "self_cpu_s", "share"}], share of the total self CPU time.
    """
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events) or 1
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_s": e.self_cpu_time_total / 1e6,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:top]
    ]


def step_inputs(
    tiny: bool, cross_dim: int, clip_dim: int, dtype: torch.dtype, batch: int = 2, seed: int = 0
) -> dict:
    """Random inputs of one step (the Auffusion shape unless ``tiny``); ``batch`` 2 = one item under
    guidance."""
    generator = torch.Generator().manual_seed(seed)
    columns = _models.window_columns(tiny)
    mask = torch.where(torch.rand(batch, 1, 1, columns, generator=generator) < 0.2, 1.0, -1.0)
    return {
        "sample": torch.randn(batch, *_models.latent_shape(tiny), generator=generator).to(dtype),
        "timestep": torch.tensor(500),
        "encoder_hidden_states": torch.randn(batch, 77, cross_dim, generator=generator).to(dtype),
        "image_embeds": torch.randn(batch, 1, clip_dim, generator=generator).to(dtype),
        "condition": mask.expand(-1, -1, _models.N_MELS, -1).contiguous().to(dtype),
    }


def gemm_function(n: int, dtype: torch.dtype, inner_repeats: int):
    """A callable returning ``{"wall_s", "cpu_s"}`` of one (n x n) @ (n x n) product (the mean of
    ``inner_repeats`` back-to-back products, so that one call lasts long enough to time)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(dtype)
    b = torch.randn(n, n, generator=generator).to(dtype)
    out = torch.empty(n, n, dtype=dtype)

    def products():
        for _ in range(inner_repeats):
            torch.mm(a, b, out=out)

    timed = _common.timed(products)

    def gemm() -> dict:
        return {key: value / inner_repeats for key, value in timed().items()}

    return gemm


def measure(
    tiny: bool,
    dtypes: list[str],
    repeats: int,
    gemm_size: int = 2048,
    channels_last: bool = False,
    profile: bool = False,
    progress=None,
) -> dict:
    """FLOPs of one step, and per dtype: median step time, achieved FLOP/s, GEMM peak FLOP/s and the
    fraction of it reached.

    Returns:
        {"flops_per_step", "gemm_size", "channels_last", "rows": [{"dtype", and for "wall" and "cpu"
        time: "<time>: step_s", "<time>: step_gflops", "<time>: gemm_gflops" (median), "<time>:
        fraction_of_peak" (of the median GEMM rate), "<time>: gemm_best_gflops", "<time>:
        fraction_of_best", "<time>: step_spread", "<time>: gemm_spread", and with ``profile``
        "profile" (see :func:`op_profile`)}]} (rates in GFLOP/s).
    """
    built = _models.denoising_pipeline(tiny, torch.float32)
    pipe = built["pipe"]
    flops = None
    rows = []
    for name in dtypes:
        dtype = DTYPES[name]
        pipe.unet.to(dtype)
        pipe.controlnet.to(dtype)
        inputs = step_inputs(tiny, built["cross_dim"], built["clip_dim"], dtype)
        if channels_last:
            # oneDNN's convolutions prefer NHWC; this tries whether the layout alone helps.
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.controlnet.to(memory_format=torch.channels_last)
            for key in ("sample", "condition"):
                inputs[key] = inputs[key].contiguous(memory_format=torch.channels_last)
        step = step_function(pipe, inputs)
        # The first step (under the counter, which only looks at shapes) also warms up the kernels.
        counted = count_flops(step)
        flops = counted if flops is None else flops
        gemm = gemm_function(gemm_size, dtype, inner_repeats=2 if tiny else 16)
        gemm()  # warm-up
        calls = _common.interleaved(
            {"step": _common.timed(step), "gemm": gemm}, repeats=repeats, progress=progress
        )
        row = {"dtype": name}
        for key, label in (("wall_s", "wall"), ("cpu_s", "cpu")):
            step_s = _common.median(_common.column(calls["step"], key))
            gemm_s = _common.median(_common.column(calls["gemm"], key))
            step_rate = _common.ratio(flops, step_s) / 1e9
            gemm_rate = _common.ratio(2 * gemm_size**3, gemm_s) / 1e9
            # This machine's bf16 GEMM rate is bimodal (some calls run ~2x faster, presumably when
            # the neighbouring vCPU leaves the core's matrix unit alone): the best call bounds the
            # peak from below better than the median does.
            gemm_best = _common.ratio(2 * gemm_size**3, min(_common.column(calls["gemm"], key))) / 1e9
            row.update(
                {
                    f"{label}: step_s": step_s,
                    f"{label}: step_gflops": step_rate,
                    f"{label}: gemm_gflops": gemm_rate,
                    f"{label}: fraction_of_peak": _common.ratio(step_rate, gemm_rate),
                    f"{label}: gemm_best_gflops": gemm_best,
                    f"{label}: fraction_of_best": _common.ratio(step_rate, gemm_best),
                    f"{label}: step_spread": _common.spread(_common.column(calls["step"], key)),
                    f"{label}: gemm_spread": _common.spread(_common.column(calls["gemm"], key)),
                }
            )
        if profile:
            row["profile"] = op_profile(step)
        rows.append(row)
    return {"flops_per_step": flops, "gemm_size": gemm_size, "channels_last": channels_last, "rows": rows}


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated, of fp32,bf16 (both)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (3)")
    p.add_argument("--gemm-size", type=int, default=2048, help="n of the n x n x n GEMM (2048)")
    p.add_argument("--channels-last", action="store_true", help="run the models in NHWC layout")
    p.add_argument("--profile", action="store_true", help="one more step per dtype under torch.profiler")
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    env = _common.environment(args.threads)
    shape = (
        "tiny models" if args.tiny else "Auffusion shape: SD-1.5 UNet + ControlNet, latent 4x32x128, batch 2"
    )
    _common.print_header(f"efficiency of one denoising step ({shape})", env)
    result = measure(
        args.tiny,
        args.dtypes.split(","),
        args.repeats,
        gemm_size=256 if args.tiny else args.gemm_size,
        channels_last=args.channels_last,
        profile=args.profile,
        progress=_common.log,
    )
    print(
        f"FLOPs per step (UNet + ControlNet, matmul/conv/attention only): {result['flops_per_step'] / 1e12:.4g} TFLOP"
        + ("  [channels_last]" if args.channels_last else "")
    )
    _common.print_table([{k: v for k, v in row.items() if k != "profile"} for row in result["rows"]])
    for row in result["rows"]:
        if "profile" in row:
            print(f"{row['dtype']}: operators by self CPU time in one step")
            _common.print_table(row["profile"])
    for row in result["rows"]:
        for label in ("wall", "cpu"):
            print(
                f"{row['dtype']} ({label} time): step reaches {row[f'{label}: fraction_of_peak']:.1%} of the "
                f"median {result['gemm_size']}^3 GEMM rate ({row[f'{label}: step_gflops']:.4g} of "
                f"{row[f'{label}: gemm_gflops']:.4g} GFLOP/s), {row[f'{label}: fraction_of_best']:.1%} of the "
                f"best GEMM call ({row[f'{label}: gemm_best_gflops']:.4g} GFLOP/s)"
            )
    _common.write_json(args.json, {"environment": env, "tiny": args.tiny, **result})
    return result


if __name__ == "__main__":
    main()
