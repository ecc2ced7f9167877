"""Per-denoising-step cost of FoleyCrafterPipeline against diffusers' stock
StableDiffusionControlNetPipeline running the very same UNet, ControlNet and IP-Adapter modules.

Both pipelines get the same prompt embeddings, image embedding (through the IP-Adapter path), the
same condition image for the controller, the same initial latents and the same scheduler type,
and stop at latents (``output_type="latent"``). A step's time is

    (time of a call with N2 steps - time of a call with N1 steps) / (model evaluations N2 - N1)

so that what a call does once (checks, preparing the condition, scheduler set-up) cancels. The
pipelines share one set of modules, so any difference is the pipeline's own per-step work.

That difference is far below the noise of a whole step on a shared machine, so the script also
splits each call into the time inside the model calls (the shared ControlNet and UNet forwards and
the controller's condition embedder, clocked by forward hooks) and the rest: the pipeline's own work (guidance arithmetic, scheduler
step, its Python), measured directly. The overhead is then also given as
``1 + (ours' own per-step time - stock's) / stock's per-step time``.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/step_overhead.py [--threads 1] [--tiny]
"""

from __future__ import annotations

import copy
import math
import time

import _common
import _models
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build(tiny: bool, dtype: torch.dtype, seed: int = 0) -> dict:
    """Both pipelines over one shared set of modules, and the inputs they are called with.

    Returns:
        {"ours", "stock" (pipelines), "inputs" (tensors), "dtype"}.
    """
    # Our pipeline installs diffusers' IPAdapterAttnProcessor2_0 and ImageProjection in the UNet
    # through diffusers' own `load_ip_adapter`; the stock pipeline below runs those same modules.
    found = _models.denoising_pipeline(tiny, dtype, seed)
    return pair(found["pipe"], tiny, dtype, seed)


def pair(ours, tiny: bool, dtype: torch.dtype, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """The stock ControlNet pipeline over ``ours``' UNet, controller, VAE, text encoder and tokenizer,
    and the inputs both are called with (random, seeded; on ``device``).

    Returns:
        {"ours", "stock" (pipelines), "inputs" (tensors), "dtype"}.
    """
    from diffusers import StableDiffusionControlNetPipeline

    from foleycrafter.temporal import mask_to_condition

    stock = StableDiffusionControlNetPipeline(
        vae=ours.vae,
        text_encoder=ours.text_encoder,
        tokenizer=ours.tokenizer,
        unet=ours.unet,
        controlnet=ours.controlnet,
        scheduler=copy.deepcopy(ours.scheduler),  # each pipeline keeps its own timestep state
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    stock.set_progress_bar_config(disable=True)

    generator = torch.Generator().manual_seed(seed + 100)
    cross_dim = ours.unet.config.cross_attention_dim
    clip_dim = ours.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features
    mask = torch.where(torch.rand(_models.window_columns(tiny), generator=generator) < 0.2, 1.0, -1.0)
    inputs = {
        "prompt_embeds": torch.randn(1, 77, cross_dim, generator=generator),
        "negative_prompt_embeds": torch.randn(1, 77, cross_dim, generator=generator),
        "video_embeds": torch.randn(1, 1, clip_dim, generator=generator),
        # Our controller's condition image for that mask, handed to the stock pipeline as `image`.
        "condition": mask_to_condition(mask.numpy(), _models.N_MELS),
        "latents": torch.randn(1, *_models.latent_shape(tiny), generator=generator),
    }
    inputs = {name: tensor.to(device=device, dtype=dtype) for name, tensor in inputs.items()}
    inputs["mask"] = mask.numpy()
    return {"ours": ours, "stock": stock, "inputs": inputs, "dtype": dtype}


class StepClock:
    """A ``callback_on_step_end`` that stamps the end of every denoising step (wall and CPU time).

    The interval between two consecutive stamps is exactly one iteration of the pipeline's loop,
    with no fixed cost in it: a second estimate of the per-step time, from the same calls."""

    def __init__(self):
        self.stamps: list[tuple[float, float]] = []

    def __call__(self, pipe, step, timestep, tensors) -> dict:
        self.stamps.append((time.perf_counter(), _common.cpu_seconds()))
        return {}

    def intervals(self) -> list[dict]:
        """``{"wall_s", "cpu_s"}`` of each step after the first."""
        return [{"wall_s": b[0] - a[0], "cpu_s": b[1] - a[1]} for a, b in zip(self.stamps, self.stamps[1:])]


class ModelClock:
    """Forward hooks that add up the wall and CPU time spent inside the given modules' forwards (a
    pipeline's model calls), so that the rest of a call is the pipeline's own work. A forward
    nested in another clocked forward counts once, in the outer one."""

    def __init__(self, *modules: torch.nn.Module):
        self.inside = {"wall_s": 0.0, "cpu_s": 0.0}
        self._depth = 0
        self._started = (0.0, 0.0)
        self._handles = []
        for module in modules:
            self._handles.append(module.register_forward_pre_hook(self._enter))
            self._handles.append(module.register_forward_hook(self._leave))

    def _enter(self, module, args):
        self._depth += 1
        if self._depth == 1:
            self._started = (time.perf_counter(), _common.cpu_seconds())

    def _leave(self, module, args, output):
        self._depth -= 1
        if self._depth == 0:
            wall, cpu = self._started
            self.inside["wall_s"] += time.perf_counter() - wall
            self.inside["cpu_s"] += _common.cpu_seconds() - cpu

    def reset(self) -> None:
        self.inside = {"wall_s": 0.0, "cpu_s": 0.0}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def call_ours(built: dict, steps: int, clock: StepClock | None = None) -> torch.Tensor:
    """One call of our pipeline with ``steps`` inference steps; returns the final latents."""
    x = built["inputs"]
    pipe = built["ours"]
    return pipe(
        prompt_embeds=x["prompt_embeds"],
        negative_prompt_embeds=x["negative_prompt_embeds"],
        video_embeds=x["video_embeds"],
        timestamp_mask=x["mask"],
        audio_length_in_s=pipe.timeline().window_seconds,
        num_inference_steps=steps,
        guidance_scale=7.5,
        semantic_scale=1.0,
        temporal_scale=0.2,
        latents=x["latents"],
        output_type="latent",
        callback_on_step_end=clock,
    ).mel_images


def call_stock(built: dict, steps: int, clock: StepClock | None = None) -> torch.Tensor:
    """One call of the stock ControlNet pipeline with the same inputs; returns the final latents."""
    x = built["inputs"]
    # The stock pipeline splits given IP-Adapter embeddings into (negative, positive) halves under
    # guidance; ours uses a zero embedding as the negative, so hand it exactly that.
    image_embeds = torch.cat([torch.zeros_like(x["video_embeds"]), x["video_embeds"]])
    return built["stock"](
        prompt_embeds=x["prompt_embeds"],
        negative_prompt_embeds=x["negative_prompt_embeds"],
        ip_adapter_image_embeds=[image_embeds],
        image=x["condition"],
        height=_models.N_MELS,
        width=built["ours"].config.window_columns,
        num_inference_steps=steps,
        guidance_scale=7.5,
        controlnet_conditioning_scale=0.2,
        latents=x["latents"],
        output_type="latent",
        callback_on_step_end=clock,
    ).images


def evaluations(pipe, steps: int) -> int:
    """Model evaluations (UNet + ControlNet calls) a call with ``steps`` inference steps makes: the
    length of the scheduler's timestep list (PNDM without PRK steps repeats one timestep)."""
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps)
    return len(scheduler.timesteps)


def measure(built: dict, n1: int, n2: int, repeats: int, progress=None) -> dict:
    """Per-step time of both pipelines, from interleaved calls with ``n1`` and ``n2`` steps.

    A first call of each (``n1`` steps) warms the allocator and kernels up and checks that the two
    pipelines compute the same thing (``max_abs_difference`` of their latents).

    Returns:
        {"n1", "n2", "evaluations": (e1, e2), "calls": {case: [{"wall_s", "cpu_s"}, ...]},
        "per_step_s": {"wall_s"|"cpu_s": {"ours", "stock"}} (seconds per model evaluation),
        "ratio": {"wall_s"|"cpu_s": ours / stock}, "max_abs_difference",
        "spread": {"wall_s"|"cpu_s": largest (max - min) / median over the cases},
        "step_intervals": {"ours", "stock": [{"wall_s", "cpu_s"} between consecutive step ends]},
        "callback_per_step_s" and "callback_ratio": the same figures from those intervals' medians,
        "own_per_step_s": {"wall_s"|"cpu_s": {"ours", "stock"}} (time per evaluation outside the
        model forwards), "model_per_step_s" (inside them), "own_ratio" (1 + (own ours - own stock)
        / stock's per-step time)}.
    """
    if not n2 > n1 >= 1:
        raise ValueError(f"need n2 > n1 >= 1 steps, got n1={n1}, n2={n2}")
    e1, e2 = evaluations(built["ours"], n1), evaluations(built["ours"], n2)
    with torch.no_grad():
        a, b = call_ours(built, n1), call_stock(built, n1)
    difference = float((a.float() - b.float()).abs().max())
    clocks = {"ours": [], "stock": []}
    controller = built["ours"].controlnet
    # The condition embedder counts as model work: ours runs it once per call before the loop
    # (temporal.condition_embedded_once), the stock pipeline inside every ControlNet forward.
    models = ModelClock(built["ours"].unet, controller, controller.controlnet_cond_embedding)

    def case(call, name, steps):
        def run():
            clock = StepClock()
            clocks[name].append(clock)
            models.reset()
            timed = _common.timed(lambda: call(built, steps, clock))()
            return {**timed, **{f"model_{key}": value for key, value in models.inside.items()}}

        return run

    cases = {
        f"ours N={n1}": case(call_ours, "ours", n1),
        f"stock N={n1}": case(call_stock, "stock", n1),
        f"ours N={n2}": case(call_ours, "ours", n2),
        f"stock N={n2}": case(call_stock, "stock", n2),
    }
    try:
        calls = _common.interleaved(cases, repeats=repeats, progress=progress)
    finally:
        models.remove()
    steps = {name: [i for clock in clocks[name] for i in clock.intervals()] for name in clocks}
    per_step, ratios, spreads, callback_step, callback_ratio = {}, {}, {}, {}, {}
    own_step, model_step, own_ratio = {}, {}, {}
    for key in ("wall_s", "cpu_s"):

        def m(case, key=key):
            return _common.median(_common.column(calls[case], key))

        def own(case, key=key):
            # Each call's own time (outside the model forwards), then the median over repetitions.
            return _common.median([c[key] - c[f"model_{key}"] for c in calls[case]])

        def per_evaluation(figure):
            return {
                name: (figure(f"{name} N={n2}") - figure(f"{name} N={n1}")) / (e2 - e1)
                for name in ("ours", "stock")
            }

        per_step[key] = per_evaluation(m)
        own_step[key] = per_evaluation(own)
        model_step[key] = per_evaluation(lambda case, key=key: m(case, f"model_{key}"))
        own_ratio[key] = 1 + _common.ratio(
            own_step[key]["ours"] - own_step[key]["stock"], per_step[key]["stock"]
        )
        ratios[key] = _common.ratio(per_step[key]["ours"], per_step[key]["stock"])
        spreads[key] = max(_common.spread(_common.column(v, key)) for v in calls.values())
        callback_step[key] = {name: _common.median(_common.column(v, key)) for name, v in steps.items()}
        callback_ratio[key] = _common.ratio(callback_step[key]["ours"], callback_step[key]["stock"])
    return {
        "n1": n1,
        "n2": n2,
        "evaluations": (e1, e2),
        "calls": calls,
        "per_step_s": per_step,
        "ratio": ratios,
        "max_abs_difference": difference,
        "spread": spreads,
        "step_intervals": steps,
        "callback_per_step_s": callback_step,
        "callback_ratio": callback_ratio,
        "own_per_step_s": own_step,
        "model_per_step_s": model_step,
        "own_ratio": own_ratio,
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="model dtype (bf16)")
    p.add_argument("--steps", default="1,3", help="N1,N2 inference steps per call (1,3)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repetitions per case (2)")
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    n1, n2 = (int(s) for s in args.steps.split(","))
    env = _common.environment(args.threads)
    shape = "tiny" if args.tiny else "Auffusion (SD-1.5 UNet + ControlNet, latent 4x32x128, batch 2)"
    _common.print_header(
        f"step overhead: FoleyCrafterPipeline vs StableDiffusionControlNetPipeline, {shape}", env
    )

    start = time.perf_counter()
    built = build(args.tiny, DTYPES[args.dtype])
    _common.log(f"built in {time.perf_counter() - start:.0f} s; timing ...")
    result = measure(built, n1, n2, args.repeats, progress=_common.log)
    rows = [
        {
            "case": name,
            "wall s (median)": _common.median(_common.column(v, "wall_s")),
            "wall spread": _common.spread(_common.column(v, "wall_s")),
            "cpu s (median)": _common.median(_common.column(v, "cpu_s")),
            "cpu spread": _common.spread(_common.column(v, "cpu_s")),
            "runs": len(v),
        }
        for name, v in result["calls"].items()
    ]
    _common.print_table(rows)
    e1, e2 = result["evaluations"]
    print(
        f"model evaluations per call: N={n1}: {e1}, N={n2}: {e2} ({args.dtype}, "
        f"same modules; max |latents ours - stock| after N={n1}: {result['max_abs_difference']:.3g})"
    )
    for key, label in (("wall_s", "wall"), ("cpu_s", "CPU")):
        step = result["per_step_s"][key]
        print(
            f"per step ({label} time): ours {step['ours']:.4g} s, stock {step['stock']:.4g} s"
            f"  ->  ratio ours/stock = {result['ratio'][key]:.4f}  (target <= 1.02)"
        )
        cb = result["callback_per_step_s"][key]
        print(
            f"  cross-check from {len(result['step_intervals']['ours'])} step-end intervals per pipeline: "
            f"ours {cb['ours']:.4g} s, stock {cb['stock']:.4g} s -> ratio {result['callback_ratio'][key]:.4f}"
        )
        own, inside = result["own_per_step_s"][key], result["model_per_step_s"][key]
        print(
            f"  split: inside the model forwards ours {inside['ours']:.4g} s, stock {inside['stock']:.4g} s; "
            f"the pipeline's own work ours {own['ours'] * 1e3:.3g} ms, stock {own['stock'] * 1e3:.3g} ms per step"
            f"  ->  overhead 1 + (own ours - own stock) / stock step = {result['own_ratio'][key]:.4f}"
        )
        if not math.isfinite(result["ratio"][key]) or result["spread"][key] > 0.04:
            print(
                f"  note: repetitions varied by up to {result['spread'][key]:.0%} of their median in {label} time; "
                "differences between the pipelines smaller than that are not resolved."
            )
    _common.write_json(args.json, {"environment": env, "dtype": args.dtype, "tiny": args.tiny, **result})
    return result


if __name__ == "__main__":
    main()
