"""Does ``torch.compile`` speed up a denoising step? Eager against compiled, side by side.

One step is the temporal controller (ControlNet) and the UNet with the semantic adapter on a batch
of 2 (classifier-free guidance) at the Auffusion shape, in the layout the CLI uses on this CPU
(``--dtype``, bf16 by default, channels-last with bf16). The compiled step wraps the *same* modules
in ``torch.compile`` (inductor); its first call, which compiles, is timed apart. Then eager and
compiled steps are interleaved and their medians compared; the outputs of both are checked to agree
to bf16 rounding.

Run: .venv/bin/python bench/torch_compile.py --threads 2 [--dtype fp32] [--tiny]
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import _common
import _models
import torch
from efficiency import DTYPES, step_function, step_inputs


def measure(tiny: bool, dtype_name: str, repeats: int, progress=None) -> dict:
    dtype = DTYPES[dtype_name]
    built = _models.denoising_pipeline(tiny, dtype)
    pipe = built["pipe"]
    if dtype == torch.bfloat16:
        pipe.enable_channels_last()
    inputs = step_inputs(tiny, built["cross_dim"], built["clip_dim"], dtype)
    eager = step_function(pipe, inputs)
    compiled_models = SimpleNamespace(
        controlnet=torch.compile(pipe.controlnet), unet=torch.compile(pipe.unet)
    )
    compiled = step_function(compiled_models, inputs)
    reference = eager()  # also warms up the eager kernels
    start = time.perf_counter()
    result = compiled()
    compile_s = time.perf_counter() - start
    difference = (result.float() - reference.float()).abs().max().item()
    scale = reference.float().abs().max().item()
    calls = _common.interleaved(
        {"eager": _common.timed(eager), "compiled": _common.timed(compiled)},
        repeats=repeats,
        progress=progress,
    )
    rows = [
        {
            "case": name,
            "step_wall_s": _common.median(_common.column(values, "wall_s")),
            "step_cpu_s": _common.median(_common.column(values, "cpu_s")),
            "spread": _common.spread(_common.column(values, "wall_s")),
        }
        for name, values in calls.items()
    ]
    return {
        "dtype": dtype_name,
        "channels_last": dtype == torch.bfloat16,
        "compile_s": compile_s,
        "max_abs_difference": difference,
        "output_scale": scale,
        "rows": rows,
        "calls": calls,
        "speedup_wall": _common.ratio(rows[0]["step_wall_s"], rows[1]["step_wall_s"]),
        "speedup_cpu": _common.ratio(rows[0]["step_cpu_s"], rows[1]["step_cpu_s"]),
    }


def main(argv=None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (3)")
    args = parser.parse_args(argv)
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    env = _common.environment(args.threads)
    _common.print_header(f"torch.compile of one denoising step, {args.dtype}", env)
    result = measure(args.tiny, args.dtype, args.repeats, progress=_common.log)
    _common.print_table(result["rows"])
    print(
        f"first compiled call (compiling): {result['compile_s']:.1f} s; outputs differ by at most "
        f"{result['max_abs_difference']:.3g} (output scale {result['output_scale']:.3g})"
    )
    print(f"eager / compiled per step: wall {result['speedup_wall']:.2f}x, CPU {result['speedup_cpu']:.2f}x")
    _common.write_json(args.json, {"environment": env, **result})
    return result


if __name__ == "__main__":
    main()
