"""GPU-ready benchmark: the released-size pipeline on one device, every figure a GPU user asks for.

    .venv/bin/python bench/gpu.py --out gpu.json                       # on a machine with a GPU
    OMP_NUM_THREADS=1 .venv/bin/python bench/gpu.py --tiny --device cpu --out /tmp/gpu.json   # check, ~25 s

Every component has its released size and random weights built from the published configs
(``_models.full_pipeline``: SD-1.5 UNet and ControlNet, SD VAE, CLIP ViT-L/14 text encoder, CLIP
ViT-H/14 image encoder, HiFi-GAN, R(2+1)D-18 onset detector), built and initialised on the device;
nothing is downloaded. Random weights cost as much to run as trained ones. ``--tiny`` swaps in the
tests' tiny models (``foleycrafter.testing``), few steps and repeats: it checks that the script runs,
its figures mean nothing.

Sections (keys of the JSON; one that cannot run here holds ``{"skipped": reason}``, one that failed
``{"error": message}`` and the run goes on):

* ``sync_points``: where the pipeline would make the host wait for the device, per denoising step
  and per call. Always: the denoising loop of every sampler run on the ``meta`` device, where each
  read of a device value on the host is caught (``TorchDispatchMode``). On CUDA also
  ``torch.cuda.set_sync_debug_mode("warn")`` around real calls (ours end to end, ours and the
  stock pipeline's denoising).
* ``end_to_end``: per dtype (``--dtypes``, fp16 and bf16): seconds per clip (a 10 s 720p30 H.264
  test pattern, :data:`FULL`: frame decoding at a 256-pixel short side, CLIP, onset detection, text, 25 PNDM steps, VAE,
  vocoder, audio out), seconds per denoising step inside it, time per stage, peak memory.
* ``steps``: per dtype, one denoising step of ours and of diffusers' stock
  ``StableDiffusionControlNetPipeline`` over the same modules and inputs (as ``step_overhead.py``),
  from the difference of synchronised calls of N1 and N2 steps: the ratio ours / stock.
* ``offload``: ``enable_model_cpu_offload()`` against the pipeline kept on the device (time, memory).
* ``batching``: a 30 s clip (4 windows of 10.24 s), ``window_batch_size`` 1, 2, 4.
* ``compile``: ``torch.compile`` of the UNet and controller in place (what ``foleycrafter generate
  --compile`` does): the first call (compiling), then clips and steps compiled against eager
  (``torch.compiler.set_stance("force_eager")`` on the same modules), interleaved.

Timing: every call ends with a device synchronisation; cases are interleaved (A, B, B, A) after a
warm-up round and medians reported (``_common``). Memory on CUDA is the case's own peak:
``torch.cuda.max_memory_allocated`` during the call, minus what was allocated before it, plus the
case's weights then on the device (other pipelines kept on the device are left out). On a CPU it is
the process's peak RSS, labelled so: not device memory, and everything alive in the process.

Duration on one A100-class GPU (estimates, no GPU was available when this was written): setup
~45 s (CUDA start, two pipelines built on the device, two test videos); sync points ~10 s; end to
end 2 dtypes x (1 + 3) clips x ~4 s = ~32 s; steps 2 dtypes x 2 pipelines x 6 rounds x 16
evaluations x ~0.06 s = ~25 s; offload 2 cases x 3 calls x ~5 s + 6 moves = ~35 s; batching 3
sizes x 2 calls x 4 windows x ~4 s + warm-ups = ~115 s; compile ~100 s of compiling + 5 clips + steps
= ~135 s. Total ~6.5 min. ``--budget-min`` (8) bounds it on slower GPUs: before each section its
cost is estimated from the clip and step times measured so far, and a section that would end past
the budget is skipped with that reason (raise the budget to run it).
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

SECTIONS = ("sync_points", "end_to_end", "steps", "offload", "batching", "compile")
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
NO_DEVICE_EXIT = 2
# Pipeline method -> stage name; each stage ends with a device synchronisation, so its time is the
# device's, not just the time to queue its kernels.
STAGES = {
    "decode_frames": "decode frames",
    "encode_videos": "CLIP image encoder",
    "prepare_timestamp_masks": "onset detector",
    "encode_prompt": "text encoder",
    "denoise": "denoising loop",
    "decode_latents": "VAE decode",
    "mel_images_to_audio": "vocoder",
}
SAMPLERS = ("pndm", "dpm++", "ddim", "euler")
# Seconds the first compiled call is assumed to spend compiling, for the budget (inductor, SD-1.5
# UNet + ControlNet, on a GPU server's CPU; a guess until measured).
COMPILE_GUESS_S = 120.0


@dataclass(frozen=True)
class Plan:
    """What a run measures and how often. Clip lengths in seconds; ``video_size`` (width, height)."""

    steps: int
    clip_seconds: float
    long_seconds: float
    video_size: tuple[int, int]
    repeats: int
    warmup: int
    step_calls: tuple[int, int]
    step_repeats: int
    batch_sizes: tuple[int, ...]
    batching_repeats: int
    offload_repeats: int
    compile_repeats: int
    window_overlap: float = 1.0  # seconds, the pipeline's default
    frame_short_side: int | None = 256  # the CLI's default
    num_frames: int | None = None  # frames per window for CLIP and the detector (None: the model's, 150)
    batching_warmup: bool = True  # one-step calls at each new batch size first


# A 30 s clip is 4 windows of 10.24 s overlapping by >= 1 s.
FULL = Plan(25, 10.0, 30.0, (1280, 720), 3, 1, (2, 12), 5, (1, 2, 4), 2, 2, 2)
# Tiny windows are 2.56 s (overlap at most a quarter): a 2 s clip is one window, a 6 s clip three.
# 16 frames per window instead of 150 keep frame decoding and CLIP from filling the check's time.
TINY = Plan(
    3, 2.0, 6.0, (64, 48), 1, 1, (1, 3), 1, (1, 2, 4), 1, 1, 1, 0.5, num_frames=16, batching_warmup=False
)


# -- the device ---------------------------------------------------------------------------------
class Device:
    """Synchronisation and memory figures for one torch device (CUDA, or the CPU)."""

    def __init__(self, name: str):
        import torch

        device = torch.device(name)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.torch = device
        self.is_cuda = device.type == "cuda"

    @property
    def memory_kind(self) -> str:
        if self.is_cuda:
            return (
                "torch.cuda.max_memory_allocated during the call - allocated before it + the case's "
                "weights then on the device (MiB)"
            )
        return "process peak RSS (MiB; CPU run: not device memory, includes everything in the process)"

    def synchronize(self) -> None:
        import torch

        if self.is_cuda:
            torch.cuda.synchronize(self.torch)

    def start(self) -> int:
        """Before a measured call: wait for queued work, restart the peak record; returns the bytes
        allocated now (CUDA) or 0."""
        import torch

        self.synchronize()
        if self.is_cuda:
            torch.cuda.reset_peak_memory_stats(self.torch)
            return torch.cuda.memory_allocated(self.torch)
        _common.reset_peak_rss()
        return 0

    def peak(self) -> int | None:
        """Peak bytes since :meth:`start`: allocated by torch (CUDA) or the process's RSS (CPU)."""
        import torch

        if self.is_cuda:
            return torch.cuda.max_memory_allocated(self.torch)
        return _common.peak_rss_bytes()

    def resident_bytes(self, pipe) -> int:
        """Bytes of ``pipe``'s parameters and buffers now on this device."""
        import torch

        modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
        seen, total = set(), 0
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                if tensor.device == self.torch and tensor.data_ptr() not in seen:
                    seen.add(tensor.data_ptr())
                    total += tensor.numel() * tensor.element_size()
        return total

    def empty_cache(self) -> None:
        import torch

        if self.is_cuda:
            torch.cuda.empty_cache()


def check_device(name: str) -> str | None:
    """The one-line reason ``name`` cannot be benchmarked here, or None."""
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        return (
            f"bench/gpu.py: --device {name} was asked for, but torch {torch.__version__} ({build}) sees no "
            "CUDA device; run it on a machine with an NVIDIA GPU and a CUDA build of torch, or check the "
            "script here with --tiny --device cpu."
        )
    if not name.startswith(("cuda", "cpu")):
        return f"bench/gpu.py: --device {name} is not supported; use cuda, cuda:N or cpu."
    return None


def device_info(device: Device) -> dict:
    """Name, driver and CUDA versions, memory of the device (or the CPU's model for a CPU run)."""
    import torch

    from foleycrafter.runtime import cpu_model

    if not device.is_cuda:
        return {
            "device": "cpu",
            "device_name": cpu_model(),
            "driver": "n/a (CPU run)",
            "cuda": "n/a (CPU run)",
        }
    props = torch.cuda.get_device_properties(device.torch)
    return {
        "device": str(device.torch),
        "device_name": torch.cuda.get_device_name(device.torch),
        "driver": _nvidia_driver(device.torch.index),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "compute_capability": f"{props.major}.{props.minor}",
        "total_memory_mib": props.total_memory / 2**20,
        "multiprocessors": props.multi_processor_count,
        "native_bf16": _native_bf16(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }


def _nvidia_driver(index: int) -> str:
    try:
        result = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no nvidia-smi)"
    return result.stdout.strip() or "unknown"


def _native_bf16() -> bool:
    import torch

    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch: no emulation argument
        return torch.cuda.is_bf16_supported()


def dtype_skip(name: str, device: Device) -> str | None:
    """Why dtype ``name`` is not measured on ``device``, or None."""
    if name == "fp16" and not device.is_cuda:
        return "needs CUDA (float16 is the GPU dtype; CPU float16 kernels are emulated)"
    if name == "bf16" and device.is_cuda and not _native_bf16():
        return "this GPU has no native bfloat16 (compute capability < 8.0)"
    return None


# -- measuring ----------------------------------------------------------------------------------
def measured(call, device: Device, pipe=None):
    """Wrap ``call`` (returning None or a dict of extra figures): calling the result runs it once and
    returns ``{"wall_s", "cpu_s", "peak_mib", **extra}``; the call is synchronised at both ends."""

    def run() -> dict:
        before = device.start()
        resident = device.resident_bytes(pipe) if device.is_cuda and pipe is not None else 0
        cpu, wall = _common.cpu_seconds(), time.perf_counter()
        extra = call()
        device.synchronize()
        result = {"wall_s": time.perf_counter() - wall, "cpu_s": _common.cpu_seconds() - cpu}
        peak = device.peak()
        result["peak_mib"] = _common.mib(None if peak is None else peak - before + resident)
        result.update(extra or {})
        return result

    return run


@contextlib.contextmanager
def stage_clock(pipe, device: Device, synchronize: bool = True):
    """Within the block, ``pipe``'s stage methods (:data:`STAGES`) add their wall time (synchronised
    at each stage's end unless ``synchronize`` is False) to the yielded ``{"stages_s": {stage: s},
    "calls": {stage: n}}``."""
    record = {"stages_s": {}, "calls": {}}
    for method, stage in STAGES.items():
        original = getattr(pipe, method)

        def wrapped(*args, _original=original, _stage=stage, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                if synchronize:
                    device.synchronize()
                record["stages_s"][_stage] = record["stages_s"].get(_stage, 0.0) + time.perf_counter() - start
                record["calls"][_stage] = record["calls"].get(_stage, 0) + 1

        setattr(pipe, method, wrapped)  # an instance attribute over the class's method
    try:
        yield record
    finally:
        for method in STAGES:
            delattr(pipe, method)


def clip_call(
    pipe,
    video: str,
    plan: Plan,
    device: Device,
    steps: int | None = None,
    window_batch_size: int = 1,
    synchronize_stages: bool = True,
):
    """A callable running ``pipe(video=...)`` once as ``plan`` says (``steps``: other than its
    ``steps``), returning its stage times, windows and the seconds per denoising step inside it
    (denoising-loop time / (evaluations x batches); with batched windows, per batched step).
    ``synchronize_stages=False`` for the sync audit, which must not count the clock's own waits."""
    import numpy as np
    import torch

    def call() -> dict:
        with stage_clock(pipe, device, synchronize_stages) as record:
            out = pipe(
                video=video,
                prompt="",
                num_inference_steps=steps or plan.steps,
                frame_short_side=plan.frame_short_side,
                num_frames=plan.num_frames,
                window_batch_size=window_batch_size,
                window_overlap=plan.window_overlap,
                generator=torch.Generator().manual_seed(0),
            )
        evaluations = pipe.num_timesteps  # model evaluations per denoising call
        loops = record["calls"].get("denoising loop", 0)
        return {
            "stages_s": record["stages_s"],
            "windows": len(out.windows),
            "evaluations": evaluations,
            "step_s": _common.ratio(record["stages_s"].get("denoising loop", math.nan), evaluations * loops),
            # Random weights may overflow in float16; the time is still the time, but say so.
            "finite_audio": bool(all(np.isfinite(a).all() for a in out.audios)),
        }

    return call


def _returning_nothing(call, *args):
    """``call(*args)`` as a callable whose result (a device tensor) is dropped: :func:`measured`
    synchronises after it, and reading the tensor here would add a synchronisation of its own."""

    def run() -> None:
        call(*args)

    return run


def step_seconds(calls: dict, who: str, steps: tuple[int, int], evaluations: tuple[int, int]) -> float:
    """Seconds per model evaluation of ``who``: (median wall of its call of N2 steps - of N1) /
    (evaluations N2 - N1), from ``calls["{who} N={n}"]``; what a call does once cancels."""
    wall = [_common.median(_common.column(calls[f"{who} N={n}"], "wall_s")) for n in steps]
    return (wall[1] - wall[0]) / (evaluations[1] - evaluations[0])


def summarize(calls: list[dict]) -> dict:
    """Medians over repetitions of :func:`measured` results (peak: the largest)."""
    summary = {
        "wall_s": _common.median(_common.column(calls, "wall_s")),
        "cpu_s": _common.median(_common.column(calls, "cpu_s")),
        "spread": _common.spread(_common.column(calls, "wall_s")),
        "peak_mib": max((c["peak_mib"] for c in calls if c.get("peak_mib") is not None), default=None),
        "repeats": len(calls),
    }
    if calls and "step_s" in calls[0]:
        summary["step_s"] = _common.median(_common.column(calls, "step_s"))
        summary["windows"] = calls[0]["windows"]
        summary["evaluations"] = calls[0]["evaluations"]
        summary["finite_audio"] = all(c["finite_audio"] for c in calls)
        stages = calls[0]["stages_s"]
        summary["stages_s"] = {s: _common.median([c["stages_s"].get(s, 0.0) for c in calls]) for s in stages}
    return summary


class Budget:
    """Wall-clock budget of the run: a section starts only if its estimated cost fits."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def skip_reason(self, estimate_s: float) -> str | None:
        if math.isnan(estimate_s) or self.elapsed() + estimate_s <= self.seconds:
            return None
        return (
            f"time budget (estimated {estimate_s:.0f} s, {self.elapsed():.0f} s of the "
            f"{self.seconds:.0f} s used; raise --budget-min to run it)"
        )


# -- sync points --------------------------------------------------------------------------------
def _where(stack, depth: int = 3) -> str:
    """The innermost frames of ``stack`` outside torch, the standard library and this file, as
    'path:line function' (paths relative to the checkout or to site-packages)."""
    own = Path(__file__).name
    shown = []
    for frame in reversed(stack):
        path = frame.filename.replace(str(_common.REPO) + "/", "").split("site-packages/")[-1]
        # Still absolute: the standard library (warnings, contextlib) or a frozen module.
        if path.startswith(("torch/", "/", "<")) or path.endswith(own):
            continue
        shown.append(f"{path}:{frame.lineno} {frame.name}")
        if len(shown) == depth:
            break
    return " <- ".join(shown) or "unknown"


def split_counts(first: collections.Counter, second: collections.Counter, e1: int, e2: int) -> list[dict]:
    """Per-location counts of two calls with ``e1`` and ``e2`` model evaluations -> per evaluation
    and per call (the part that does not grow with the steps)."""
    rows = []
    for key in sorted(set(first) | set(second)):
        per_step = (second[key] - first[key]) / (e2 - e1)
        what, where = key
        rows.append(
            {"what": what, "where": where, "per_step": per_step, "per_call": first[key] - per_step * e1}
        )
    return rows


def meta_reads(call) -> collections.Counter:
    """Run ``call`` and count, by where they happen, the operations that need a ``meta`` tensor's
    value on the host (``.item()``, ``bool()``, indexing with it, ``nonzero``, copies to the CPU):
    on a GPU each would wait for the device. They get placeholder values, so the code goes on."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    aten = torch.ops.aten
    reads = {
        aten._local_scalar_dense.default: "value read on the host (.item(), bool(), int(), indexing)",
        aten.is_nonzero.default: "bool() of a tensor",
        aten.nonzero.default: "nonzero (output size depends on values)",
        aten.equal.default: "torch.equal",
    }
    counts: collections.Counter = collections.Counter()

    class Catch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            on_meta = [
                a
                for a in tree_leaves((args, kwargs))
                if isinstance(a, torch.Tensor) and a.device.type == "meta"
            ]
            if on_meta and func in reads:
                counts[(reads[func], _where(traceback.extract_stack()))] += 1
                if func is aten._local_scalar_dense.default:
                    return 0.5 if on_meta[0].dtype.is_floating_point else 1
                if func is aten.nonzero.default:
                    return torch.zeros(1, on_meta[0].dim(), dtype=torch.long, device="meta")
                return True
            if on_meta and func in (aten._to_copy.default, aten.copy_.default):
                target = kwargs.get("device") if func is aten._to_copy.default else args[0].device
                if target is not None and torch.device(target).type == "cpu":
                    counts[("copy to the CPU", _where(traceback.extract_stack()))] += 1
            return func(*args, **kwargs)

    with torch.no_grad(), Catch():
        call()
    return counts


def meta_audit(samplers=SAMPLERS, steps=(2, 4)) -> dict:
    """The denoising loop (:meth:`FoleyCrafterPipeline.denoise`, tiny models, classifier-free
    guidance, semantic adapter and temporal controller on) with its models and tensors on the
    ``meta`` device, for each sampler: the host reads of device values per step and per call."""
    import _models
    import numpy as np
    import torch

    from foleycrafter.schedulers import set_scheduler
    from foleycrafter.temporal import mask_to_condition

    built = _models.denoising_pipeline(tiny=True, dtype=torch.float32)
    pipe = built["pipe"]
    meta = torch.device("meta")
    pipe.unet.to(meta)
    pipe.controlnet.to(meta)
    pipe._guidance_scale = 7.5  # what a call sets: guidance on
    mask = np.where(np.arange(_models.window_columns(True)) % 50 < 10, 1.0, -1.0).astype(np.float32)
    condition = mask_to_condition(mask[None], _models.N_MELS).to(meta)

    def denoise(n):
        def call():
            embeds = pipe.prepare_image_embeds([None], torch.ones(1, 1, built["clip_dim"]), 1.0, meta)
            text = torch.ones(1, 77, built["cross_dim"], device=meta)
            latents = torch.ones(1, *_models.latent_shape(True), device=meta)
            pipe.denoise(latents, n, text, text, embeds, torch.cat([condition, condition]), 0.2, None)

        return call

    result = {}
    for sampler in samplers:
        set_scheduler(pipe, sampler)
        counts, evaluations = [], []
        for n in steps:
            counts.append(meta_reads(denoise(n)))
            evaluations.append(pipe.num_timesteps)
        result[sampler] = {
            "evaluations": evaluations,
            "reads": split_counts(counts[0], counts[1], evaluations[0], evaluations[1]),
        }
    return result


def cuda_syncs(call) -> collections.Counter:
    """Run ``call`` under ``torch.cuda.set_sync_debug_mode("warn")`` and count the synchronising
    operations it makes, by where they happen."""
    import torch

    counts: collections.Counter = collections.Counter()

    def record(message, category, filename, lineno, file=None, line=None):
        # torch warns "called a synchronizing CUDA operation"; other warnings are not counted.
        if "synchroniz" in str(message):
            counts[("synchronizing CUDA operation", _where(traceback.extract_stack()[:-1]))] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record  # catch_warnings puts the original back
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return counts


def sync_points(pipe, tiny: bool, video: str, device: Device, plan: Plan, progress) -> dict:
    result = {
        "meta_denoising_loop": meta_audit(),
        "method": (
            "meta_denoising_loop: each sampler's loop on the meta device, every host read of a device "
            "value caught; cuda: torch.cuda.set_sync_debug_mode('warn') around real calls. "
            "per_step = (count at N2 - count at N1) / (evaluations N2 - N1); per_call = the rest."
        ),
    }
    progress("  sync points in the denoising loop (meta device): done")
    if not device.is_cuda:
        result["cuda"] = {"skipped": "needs CUDA (torch.cuda.set_sync_debug_mode)"}
        return result
    import step_overhead

    cuda = {}
    counts, evaluations = [], []
    for n in (2, 4):
        counts.append(cuda_syncs(clip_call(pipe, video, plan, device, steps=n, synchronize_stages=False)))
        evaluations.append(pipe.num_timesteps)
    cuda["ours, end to end"] = split_counts(counts[0], counts[1], *evaluations)
    built = step_overhead.pair(pipe, tiny, pipe.unet.dtype, device=device.torch)
    for name, call in (
        ("ours, denoising only", step_overhead.call_ours),
        ("stock", step_overhead.call_stock),
    ):
        counts = [cuda_syncs(_returning_nothing(call, built, n)) for n in (2, 4)]
        e = [step_overhead.evaluations(built["ours"], n) for n in (2, 4)]
        cuda[name] = split_counts(counts[0], counts[1], *e)
    result["cuda"] = cuda
    progress("  sync points on CUDA: done")
    return result


# -- sections -----------------------------------------------------------------------------------
def end_to_end(pipes: dict, video: str, device: Device, plan: Plan, progress) -> dict:
    cases = {
        name: measured(clip_call(pipe, video, plan, device), device, pipe) for name, pipe in pipes.items()
    }
    calls = _common.interleaved(cases, plan.repeats, warmup=plan.warmup, progress=progress)
    return {name: {**summarize(values), "calls": values} for name, values in calls.items()}


def steps(pipes: dict, tiny: bool, device: Device, plan: Plan, progress) -> dict:
    """Per dtype: seconds per denoising step of ours and of the stock pipeline, same modules."""
    import step_overhead

    n1, n2 = plan.step_calls
    result = {}
    for name, pipe in pipes.items():
        built = step_overhead.pair(pipe, tiny, pipe.unet.dtype, device=device.torch)
        e1, e2 = (step_overhead.evaluations(pipe, n) for n in (n1, n2))
        ours, stock = step_overhead.call_ours(built, n1), step_overhead.call_stock(built, n1)
        difference = float((ours.float() - stock.float()).abs().max())
        cases = {
            f"{who} N={n}": measured(_returning_nothing(call, built, n), device)
            for n in (n1, n2)
            for who, call in (("ours", step_overhead.call_ours), ("stock", step_overhead.call_stock))
        }
        calls = _common.interleaved(cases, plan.step_repeats, warmup=1, progress=progress)

        def per_step(who, calls=calls, evaluations=(e1, e2)):
            return step_seconds(calls, who, (n1, n2), evaluations)

        result[name] = {
            "ours_step_s": per_step("ours"),
            "stock_step_s": per_step("stock"),
            "ours_over_stock": _common.ratio(per_step("ours"), per_step("stock")),
            "evaluations": [e1, e2],
            "max_abs_latent_difference": difference,
            "calls": calls,
        }
    return result


def offload(pipe, video: str, device: Device, plan: Plan, progress) -> dict:
    if not device.is_cuda:
        return {"skipped": "needs CUDA (model CPU offload moves each model between the CPU and the GPU)"}
    state = {"offloaded": False}

    def place(offloaded: bool) -> None:
        if state["offloaded"] == offloaded:
            return
        if offloaded:
            pipe.enable_model_cpu_offload(device=device.torch)
        else:
            pipe.remove_all_hooks()
            pipe.to(device.torch)
        state["offloaded"] = offloaded
        device.empty_cache()

    clip = clip_call(pipe, video, plan, device)

    def case(offloaded: bool):
        run = measured(clip, device, pipe)

        def call():
            place(offloaded)  # outside the timed call
            return run()

        return call

    try:
        calls = _common.interleaved(
            {"on the device": case(False), "model CPU offload": case(True)},
            plan.offload_repeats,
            warmup=1,
            progress=progress,
        )
    finally:
        place(False)
    rows = {name: {**summarize(values), "calls": values} for name, values in calls.items()}
    rows["offload_over_resident_time"] = _common.ratio(
        rows["model CPU offload"]["wall_s"], rows["on the device"]["wall_s"]
    )
    return rows


def batching(pipe, video: str, device: Device, plan: Plan, progress) -> dict:
    def run(size: int, steps: int):
        return clip_call(pipe, video, plan, device, steps, size)

    runs = {size: run(size, plan.steps) for size in plan.batch_sizes}
    for size in plan.batch_sizes if plan.batching_warmup else ():  # new batch shapes: one step first
        run(size, 1)()
    cases = {f"window_batch_size={size}": measured(runs[size], device, pipe) for size in plan.batch_sizes}
    calls = _common.interleaved(cases, plan.batching_repeats, progress=progress)
    rows = {name: {**summarize(values), "calls": values} for name, values in calls.items()}
    first = rows[next(iter(rows))]
    for row in rows.values():
        row["per_window_s"] = row["wall_s"] / row["windows"]
        row["speedup_vs_first"] = _common.ratio(first["wall_s"], row["wall_s"])
    return rows


def compile_section(pipe, tiny: bool, video: str, device: Device, plan: Plan, progress) -> dict:
    import step_overhead
    import torch

    if tiny and not device.is_cuda:
        return {"skipped": "--tiny on a CPU: compiling even the tiny models takes about a minute here"}
    if not hasattr(torch.compiler, "set_stance"):
        return {"skipped": f"needs torch >= 2.6 (torch.compiler.set_stance); this is {torch.__version__}"}
    for module in (pipe.unet, pipe.controlnet):  # as runtime.load_pipeline(compile=True) does
        module.compile()
    clip = clip_call(pipe, video, plan, device)
    first = measured(clip, device, pipe)()
    progress(f"  first compiled clip (compiling): {first['wall_s']:.1f} s")
    built = step_overhead.pair(pipe, tiny, pipe.unet.dtype, device=device.torch)
    n1, n2 = plan.step_calls
    e1, e2 = (step_overhead.evaluations(pipe, n) for n in (n1, n2))

    def eager(call):
        def run():
            with torch.compiler.set_stance("force_eager"):
                return call()

        return run

    cases = {}
    for mode in ("eager", "compiled"):
        wrap = eager if mode == "eager" else (lambda call: call)
        cases[f"{mode} clip"] = wrap(measured(clip, device, pipe))
        for n in (n1, n2):
            cases[f"{mode} N={n}"] = wrap(
                measured(_returning_nothing(step_overhead.call_ours, built, n), device)
            )
    calls = _common.interleaved(cases, plan.compile_repeats, warmup=1, progress=progress)

    def per_step(mode):
        return step_seconds(calls, mode, (n1, n2), (e1, e2))

    rows = {
        mode: {**summarize(calls[f"{mode} clip"]), "step_s": per_step(mode)} for mode in ("eager", "compiled")
    }
    return {
        **rows,
        "first_compiled_clip_s": first["wall_s"],
        "clip_speedup": _common.ratio(rows["eager"]["wall_s"], rows["compiled"]["wall_s"]),
        "step_speedup": _common.ratio(rows["eager"]["step_s"], rows["compiled"]["step_s"]),
        "calls": calls,
    }


# -- run ----------------------------------------------------------------------------------------
def run_section(result: dict, name: str, function, progress, budget: Budget, estimate_s: float = math.nan):
    """``result[name] = function()``, or the reason it was skipped, or the error it raised (the
    run goes on: a short GPU slot should not be lost to one section)."""
    reason = budget.skip_reason(estimate_s)
    if reason:
        result[name] = {"skipped": reason}
        progress(f"{name}: skipped: {reason}")
        return
    progress(f"{name} ...")
    start = time.perf_counter()
    try:
        result[name] = function()
    except Exception as error:  # noqa: BLE001 - recorded, and the other sections still run
        result[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        progress(f"{name}: FAILED {type(error).__name__}: {error}")
    result.setdefault("section_seconds", {})[name] = time.perf_counter() - start


def measure(
    device_name: str, tiny: bool, dtypes: list[str], plan: Plan, budget_min: float, threads: int, progress
) -> dict:
    """Every section (see the module's docstring) on ``device_name``; returns the JSON's content."""
    import _models
    import diffusers
    import frame_reading
    import torch
    import transformers

    budget = Budget(budget_min)
    device = Device(device_name)
    info = device_info(device)
    result = {
        "environment": {
            **_common.environment(threads),
            **info,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
        },
        "settings": {**asdict(plan), "tiny": tiny, "dtypes": dtypes, "budget_min": budget_min},
        "memory_kind": device.memory_kind,
    }
    pipes, skipped = {}, {}
    for name in dtypes:
        reason = dtype_skip(name, device)
        if reason:
            skipped[name] = {"skipped": reason}
            continue
        start = time.perf_counter()
        pipes[name] = _models.full_pipeline(tiny, getattr(torch, DTYPES[name]), device=device.torch)
        progress(f"built the {name} pipeline on {device.torch} in {time.perf_counter() - start:.1f} s")
    primary = next(iter(pipes), None)
    result["primary_dtype"] = primary
    with tempfile.TemporaryDirectory() as folder:
        width, height = plan.video_size
        video = str(
            frame_reading.make_video(
                Path(folder) / "clip.mp4", plan.clip_seconds, width, height, threads=threads
            )
        )
        long_video = str(
            frame_reading.make_video(
                Path(folder) / "long.mp4", plan.long_seconds, width, height, threads=threads
            )
        )
        if primary is None:
            for name in SECTIONS:
                result[name] = {"skipped": f"no dtype of {dtypes} can run on {device.torch}"}
            result["total_seconds"] = budget.elapsed()
            return result
        pipe = pipes[primary]
        run_section(
            result,
            "sync_points",
            lambda: sync_points(pipe, tiny, video, device, plan, progress),
            progress,
            budget,
        )
        run_section(
            result, "end_to_end", lambda: end_to_end(pipes, video, device, plan, progress), progress, budget
        )
        result["end_to_end"] = {**skipped, **result["end_to_end"]}
        clip_s, step_s, windows = _timings(result["end_to_end"].get(primary, {}), plan, pipe)
        n1, n2 = plan.step_calls
        run_section(
            result,
            "steps",
            lambda: steps(pipes, tiny, device, plan, progress),
            progress,
            budget,
            len(pipes) * 2 * (plan.step_repeats + 1) * (n1 + n2 + 2) * step_s,
        )
        result["steps"] = {**skipped, **result["steps"]}
        run_section(
            result,
            "offload",
            lambda: offload(pipe, video, device, plan, progress),
            progress,
            budget,
            2 * (plan.offload_repeats + 1) * 1.5 * clip_s + 12,
        )
        run_section(
            result,
            "batching",
            lambda: batching(pipe, long_video, device, plan, progress),
            progress,
            budget,
            windows * clip_s * len(plan.batch_sizes) * (plan.batching_repeats + 0.5),
        )
        run_section(
            result,
            "compile",
            lambda: compile_section(pipe, tiny, video, device, plan, progress),
            progress,
            budget,
            math.nan if tiny else COMPILE_GUESS_S + (2 * plan.compile_repeats + 3) * clip_s,
        )
    result["total_seconds"] = budget.elapsed()
    return result


def _timings(row: dict, plan: Plan, pipe) -> tuple[float, float, int]:
    """(seconds per clip, per step, windows of the long clip) for the budget; NaN when unknown."""
    clip_s = row.get("wall_s", math.nan)
    step_s = row.get("step_s", math.nan)
    window = pipe.timeline().window_seconds
    windows = max(1, math.ceil((plan.long_seconds - plan.window_overlap) / (window - plan.window_overlap)))
    return clip_s, step_s, windows


def table(result: dict) -> list[dict]:
    """The readable rows: one per measured case, skip or failure."""
    rows = []

    def note(entry: dict) -> str:
        return f"skipped: {entry['skipped']}" if "skipped" in entry else f"FAILED {entry['error']}"

    for section in SECTIONS[1:]:
        entries = result.get(section, {})
        if "skipped" in entries or "error" in entries:
            rows.append({"section": section, "case": "-", "note": note(entries)})
            continue
        for case, entry in entries.items():
            if not isinstance(entry, dict) or case == "calls":
                continue
            row = {"section": section, "case": case}
            if "skipped" in entry or "error" in entry:
                row["note"] = note(entry)
            elif section == "steps":
                row["step_s"] = entry["ours_step_s"]
                row["note"] = (
                    f"stock {entry['stock_step_s']:.4g} s/step; ours/stock {entry['ours_over_stock']:.3f}"
                )
            elif "wall_s" in entry:
                row.update(clip_s=entry["wall_s"], step_s=entry.get("step_s"), peak_mib=entry.get("peak_mib"))
                if section == "batching":
                    row["note"] = f"{entry['per_window_s']:.4g} s/window, x{entry['speedup_vs_first']:.2f}"
                if entry.get("finite_audio") is False:
                    row["note"] = (row.get("note", "") + " non-finite audio (random weights)").strip()
            else:
                continue
            rows.append(row)
    compiled = result.get("compile", {})
    if "clip_speedup" in compiled:
        rows.append(
            {
                "section": "compile",
                "case": "first compiled clip",
                "clip_s": compiled["first_compiled_clip_s"],
                "note": f"eager/compiled: clip x{compiled['clip_speedup']:.2f}, step x{compiled['step_speedup']:.2f}",
            }
        )
    offloaded = result.get("offload", {})
    if "offload_over_resident_time" in offloaded:
        ratio = offloaded["offload_over_resident_time"]
        rows.append({"section": "offload", "case": "offload / on device", "note": f"time x{ratio:.2f}"})
    return rows


def print_sync_points(sync: dict) -> None:
    if "meta_denoising_loop" not in sync:
        print(f"sync points: {sync.get('skipped') or sync.get('error')}")
        return
    for sampler, found in sync["meta_denoising_loop"].items():
        per_step = [r for r in found["reads"] if r["per_step"]]
        print(
            f"sync points in the denoising loop, {sampler}: {len(per_step)} per step"
            + "".join(f"\n    {r['per_step']:g}/step {r['what']} at {r['where']}" for r in per_step)
        )
    cuda = sync.get("cuda", {})
    if "skipped" in cuda:
        print(f"sync points on CUDA: {cuda['skipped']}")
        return
    for case, rows in cuda.items():
        print(f"CUDA synchronisations, {case}:")
        for r in rows:
            print(f"    {r['per_step']:g}/step, {r['per_call']:g}/call  {r['where']}")


def main(argv=None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.set_defaults(threads=None)
    parser.add_argument("--device", default="cuda", help="torch device: cuda (default), cuda:N or cpu")
    parser.add_argument("--out", type=Path, default=None, help="write the results to this JSON file")
    parser.add_argument(
        "--dtypes", default="fp16,bf16", help=f"comma-separated, of {', '.join(DTYPES)} (fp16,bf16)"
    )
    parser.add_argument(
        "--budget-min", type=float, default=8.0, help="skip sections that would end later (8)"
    )
    args = parser.parse_args(argv)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown:
        parser.error(f"--dtypes: unknown {', '.join(unknown)}; choose from {', '.join(DTYPES)}")
    # Threads: one for the tiny check (the test machine is shared); on a GPU host, the CPU-side work
    # (frame decoding, CLIP preprocessing, the pipeline's Python) may use every core.
    threads = args.threads or (1 if args.tiny else os.cpu_count() or 1)
    _common.set_threads(threads)
    problem = check_device(args.device)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(NO_DEVICE_EXIT)
    _common.quiet_libraries()
    warnings.filterwarnings("ignore", message=".*upcast.*")  # diffusers' note on fp16 VAEs
    plan = TINY if args.tiny else FULL
    result = measure(args.device, args.tiny, dtypes, plan, args.budget_min, threads, _common.log)
    env = result["environment"]
    _common.print_header(
        f"GPU benchmark, {'tiny models (figures meaningless)' if args.tiny else 'released sizes'}",
        {k: env.get(k) for k in ("date_utc", "commit", "uncommitted", "torch", "diffusers", "threads")},
    )
    print(
        f"device: {env['device_name']} ({env['device']}); driver {env['driver']}; CUDA {env['cuda']}"
        + (f"; cuDNN {env['cudnn']}; {env['total_memory_mib']:.0f} MiB" if "cudnn" in env else "")
    )
    print(f"memory: {result['memory_kind']}")
    print_sync_points(result.get("sync_points", {}))
    _common.print_table(table(result), ["section", "case", "clip_s", "step_s", "peak_mib", "note"])
    print(
        f"total {result['total_seconds']:.0f} s; sections: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result.get("section_seconds", {}).items())
    )
    _common.write_json(args.out or args.json, result)
    return result


if __name__ == "__main__":
    main()
