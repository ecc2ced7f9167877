"""Where a model comes from and where it runs: shared by the command line, the demo and eval.

One owner for each of these choices, so the three entry points cannot drift apart:

* the default model location: ``$FOLEYCRAFTER_MODEL``, else the bundled
  ``checkpoints/foleycrafter-tiny`` (:func:`default_model`, :func:`model_location`);
* the device and precision ``auto`` picks (:func:`resolve_device_and_dtype`) and the memory layout
  that suits them (:func:`place_pipeline`);
* loading a pipeline from those choices (:func:`load_pipeline`);
* keeping the libraries' chatter off the terminal (:func:`quiet_libraries`).

Kept free of heavy imports at module level: the command line imports it before torch loads.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: The bundled model, beside the package in a source checkout.
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "checkpoints" / "foleycrafter-tiny"
#: Environment variable naming the default model folder (or hub id).
MODEL_ENV = "FOLEYCRAFTER_MODEL"

RELEASED_WEIGHTS_HINT = "--base auffusion/auffusion-full-no-adapter --adapters ymzhang319/FoleyCrafter --image-encoder h94/IP-Adapter"


class UsageError(ValueError):
    """A problem with what the user asked for (the command line's exit code 2)."""


def default_model() -> str:
    """``$FOLEYCRAFTER_MODEL`` if set, else the bundled model's folder (which may be absent)."""
    return os.environ.get(MODEL_ENV) or str(BUNDLED_MODEL)


def model_location(
    model: str | None = None, base: str | None = None, adapters=None, image_encoder=None
) -> str:
    """The folder or hub id to load: ``base`` (the released layout) or ``model``, else the default.

    Raises:
        UsageError: ``adapters``/``image_encoder`` without ``base``, or no model given while the
            bundled model is absent and ``$FOLEYCRAFTER_MODEL`` is unset.
    """
    if base:
        return base
    if adapters or image_encoder:
        raise UsageError("--adapters and --image-encoder go with --base (the released Auffusion layout).")
    location = model or os.environ.get(MODEL_ENV) or (str(BUNDLED_MODEL) if BUNDLED_MODEL.is_dir() else None)
    if location is None:
        raise UsageError(
            "no model given and the bundled model (checkpoints/foleycrafter-tiny) is not in this installation. "
            f"Pass --model FOLDER (a native FoleyCrafter folder), or the released weights with {RELEASED_WEIGHTS_HINT}."
        )
    return location


def quiet_libraries() -> None:
    """Keep the terminal for our own messages: the libraries' info/warning chatter (e.g. about
    optional torchvision) is shown only when asked for (the command line's --debug)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def cpu_model() -> str:
    """The CPU's model name, for timings (comparable only on one kind of CPU)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_has_native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether bfloat16 is faster than float32 on this CPU, by what was measured (bench/README.md),
    and torch may use the instructions that make it so.

    * AMX (Intel Sapphire Rapids and later): a released-size step 1.7x faster in bfloat16.
    * AVX512-BF16 on AMD (EPYC, Zen 4 and later): a released-size step 2.0x faster (CPU time), the
      bundled model's 4 s clip 1.1x.
    * AVX512-BF16 on Intel without AMX (Cooper Lake): not measured on such a CPU; emulated on a
      Sapphire Rapids held to that level, a released-size step was ~1.2x slower: float32.
    * AVX2 only: bfloat16 is emulated, 4x slower for the bundled model: float32.

    ``cpuinfo``: the text of ``/proc/cpuinfo`` (read when ``None``; elsewhere than Linux: False).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    if "amx_bf16" in flags:
        return _torch_may_use("AMX")
    if "avx512_bf16" in flags and fields.get("vendor_id") == "AuthenticAMD":
        return _torch_may_use("AVX512_CORE_BF16")
    return False


def _torch_may_use(level: str) -> bool:
    """Whether torch's kernels are free to use an instruction ``level`` (``"AMX"`` or
    ``"AVX512_CORE_BF16"``) that the CPU has: ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA`` (set
    in some containers, or to emulate an older CPU) can hold them lower."""
    import torch

    if torch.backends.cpu.get_cpu_capability() in {"DEFAULT", "NO AVX", "AVX", "AVX2"}:
        return False
    isa = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if isa in {"ALL", "DEFAULT"} or "AMX" in isa:
        return True
    return level == "AVX512_CORE_BF16" and (
        "AVX512_CORE_BF16" in isa or "AVX512_CORE_FP16" in isa or "AVX10" in isa
    )


def resolve_device_and_dtype(device: str = "auto", dtype: str = "auto"):
    """``(torch.device, torch.dtype)`` for the names a user gives.

    ``device="auto"``: CUDA when available, else the CPU. ``dtype="auto"``: float16 on CUDA; on the
    CPU bfloat16 where it was measured faster (AMX, or AVX512-BF16 on AMD:
    :func:`cpu_has_native_bfloat16`), else float32.

    Raises:
        UsageError: a CUDA device was named but none is available.
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device} was asked for, but no CUDA device is available; use --device cpu."
        )
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "float16"
        else:
            dtype = "bfloat16" if cpu_has_native_bfloat16() else "float32"
    return torch.device(device), getattr(torch, dtype)


def place_pipeline(pipe, device, dtype):
    """Move ``pipe`` to ``device`` with the layout that is fastest there: channels-last for
    bfloat16 on CPU (see :meth:`FoleyCrafterPipeline.enable_channels_last`)."""
    import torch

    pipe = pipe.to(device)
    if device.type == "cpu" and dtype == torch.bfloat16:
        pipe.enable_channels_last()
    return pipe


def load_pipeline(
    model: str | None = None,
    *,
    base: str | None = None,
    adapters: str | None = None,
    image_encoder: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    scheduler: str = "saved",
    compile: bool = False,
    progress: bool = True,
):
    """Load a :class:`~foleycrafter.pipeline.FoleyCrafterPipeline` as the entry points do.

    Args:
        model: a native folder or hub id (default: :func:`model_location`'s choice).
        base, adapters, image_encoder: the released layout instead (``base`` with ``adapters``).
        device, dtype: names for :func:`resolve_device_and_dtype`.
        scheduler: ``"saved"`` or a sampler name of :mod:`foleycrafter.schedulers`.
        compile: ``torch.compile`` the UNet and temporal controller in place.
        progress: show the denoising progress bar.

    Returns:
        ``(pipe, device)``.
    """
    from .pipeline import FoleyCrafterPipeline
    from .schedulers import set_scheduler

    torch_device, torch_dtype = resolve_device_and_dtype(device, dtype)
    location = model_location(model, base, adapters, image_encoder)
    if base:
        pipe = FoleyCrafterPipeline.from_pretrained(
            location, adapters=adapters, image_encoder=image_encoder, dtype=torch_dtype
        )
    else:
        pipe = FoleyCrafterPipeline.from_pretrained(location, dtype=torch_dtype)
    pipe = place_pipeline(pipe, torch_device, torch_dtype)
    set_scheduler(pipe, scheduler)
    if compile:
        # In place, so the modules keep their classes and configs; every window has the same shape,
        # so one compilation serves a whole batch.
        for module in (pipe.unet, pipe.controlnet):
            if module is not None:
                module.compile()
    pipe.set_progress_bar_config(disable=not progress, leave=False)
    return pipe, torch_device


def model_data_settings(folder: str | os.PathLike) -> dict:
    """What training data must share with the model in ``folder``, read from its config files
    without loading it. Keys are those of a prepared folder's ``config.json``:

    * ``window_columns``: mel columns per model window (``model_index.json``; 1024, the pipeline's
      default, when the index does not say);
    * ``sample_rate`` (Hz), ``hop_length`` (audio samples per mel column) and ``n_mels`` (mel
      bands): the vocoder's (``vocoder/config.json``, native or released);
    * ``clip_dim``: the width of the image encoder's embeddings (``image_encoder/config.json``).

    A key is left out when its file is absent, e.g. ``window_columns`` for a folder of parts (the
    base-model trainers') that is not yet a pipeline.
    """
    import json

    folder = Path(folder)

    def read(relative: str) -> dict:
        path = folder / relative
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    settings = {}
    index = read("model_index.json")
    if index:
        settings["window_columns"] = int(index.get("window_columns", 1024))
    vocoder = read("vocoder/config.json")
    for key, vocoder_key in (
        ("sample_rate", "sampling_rate"),
        ("hop_length", "hop_size"),
        ("n_mels", "num_mels"),
    ):
        if vocoder_key in vocoder:
            settings[key] = int(vocoder[vocoder_key])
    projection_dim = read("image_encoder/config.json").get("projection_dim")
    if projection_dim is not None:
        settings["clip_dim"] = int(projection_dim)
    return settings


def model_timeline(folder: str | os.PathLike):
    """The time axis of the model in ``folder``: its window (``window_columns``) and its vocoder's
    sample rate and hop (:func:`model_data_settings`); Auffusion's for whatever the folder does not
    say (any folder that is not a native pipeline's)."""
    from .timeline import Timeline

    settings = model_data_settings(folder)
    return Timeline(
        **{key: settings[key] for key in ("sample_rate", "hop_length", "window_columns") if key in settings}
    )


def load_onset_detector(
    model: str | None = None, *, adapters: str | None = None, device: str = "auto", dtype: str = "auto"
):
    """The onset detector of a native model folder, or of the released adapters (``adapters``), and
    the timeline of the model's windows (the tiny model's are 5.12 s), so detection walks the video
    in the windows generation uses.

    Returns:
        ``(detector, timeline)``, the detector on ``device`` in eval mode.
    """
    from .loaders import DETECTOR_FILE
    from .models import OnsetDetector
    from .release import resolve_folder
    from .timeline import Timeline

    torch_device, torch_dtype = resolve_device_and_dtype(device, dtype)
    if adapters:
        folder = resolve_folder(adapters, allow_patterns=[DETECTOR_FILE])
        detector = OnsetDetector.from_release(folder / DETECTOR_FILE, torch_dtype=torch_dtype)
        timeline = Timeline()
    else:
        folder = resolve_folder(model_location(model))
        if not (folder / "onset_detector").is_dir():
            raise UsageError(f"{folder} has no onset_detector; pass a model folder with one, or --adapters.")
        detector = OnsetDetector.from_pretrained(folder / "onset_detector", dtype=torch_dtype)
        timeline = model_timeline(folder)
    return detector.to(torch_device).eval(), timeline
