"""Turning the released layouts into FoleyCrafter components.

Three folders, each a local path or a Hugging Face Hub id, load as they are published:

* the Auffusion base (``auffusion/auffusion-full-no-adapter``): a diffusers folder with ``unet/``,
  ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` and ``vocoder/`` (HiFi-GAN
  ``config.json`` + ``vocoder.pt``);
* the FoleyCrafter adapters (``ymzhang319/FoleyCrafter``): ``semantic/semantic_adapter.bin``,
  ``temporal_adapter.ckpt``, ``timestamp_detector.pth.tar`` (torch pickles);
* a CLIP vision encoder (``h94/IP-Adapter``, subfolder ``models/image_encoder``).

After loading, only the native format exists: ``FoleyCrafterPipeline.save_pretrained`` writes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .release import resolve_folder

BASE_PATTERNS = [
    "model_index.json",
    "unet/*",
    "vae/*",
    "text_encoder/*",
    "tokenizer/*",
    "scheduler/*",
    "vocoder/*",
]
SEMANTIC_FILE = "semantic/semantic_adapter.bin"
TEMPORAL_FILE = "temporal_adapter.ckpt"
DETECTOR_FILE = "timestamp_detector.pth.tar"
ADAPTER_PATTERNS = [SEMANTIC_FILE, TEMPORAL_FILE, DETECTOR_FILE, "vocoder/*"]
IMAGE_ENCODER_SUBFOLDER = "models/image_encoder"


def native_pipeline_class(name_or_path: str | os.PathLike, **hub_kwargs) -> str | None:
    """The ``_class_name`` in a folder's ``model_index.json`` (``None`` when it has none)."""
    folder = resolve_folder(name_or_path, allow_patterns=["model_index.json"], **hub_kwargs)
    index = folder / "model_index.json"
    if not index.is_file():
        return None
    with open(index, encoding="utf-8") as handle:
        return json.load(handle).get("_class_name")


def image_encoder_folder(name_or_path: str | os.PathLike, **hub_kwargs) -> Path:
    """The folder holding the CLIP vision ``config.json``: the given one, or its ``models/image_encoder``."""
    folder = resolve_folder(
        name_or_path,
        allow_patterns=[f"{IMAGE_ENCODER_SUBFOLDER}/*", "*.json", "*.safetensors", "*.bin"],
        **hub_kwargs,
    )
    for candidate in (folder, folder / IMAGE_ENCODER_SUBFOLDER, folder / "image_encoder"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"No CLIP vision encoder in {name_or_path}: expected config.json in it or in its "
        f"'{IMAGE_ENCODER_SUBFOLDER}' subfolder (the h94/IP-Adapter layout)."
    )


def load_image_encoder(name_or_path, torch_dtype: torch.dtype | None = None, **hub_kwargs):
    """A ``CLIPVisionModelWithProjection`` from a folder or hub id (see :func:`image_encoder_folder`)."""
    from transformers import CLIPVisionModelWithProjection

    folder = image_encoder_folder(name_or_path, **hub_kwargs)
    kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}
    return CLIPVisionModelWithProjection.from_pretrained(folder, **kwargs)


def _require(folder: Path, relative: str, what: str) -> Path:
    path = folder / relative
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: expected {path}.")
    return path


def load_release_pipeline(
    pipeline_class,
    base: str | os.PathLike,
    adapters: str | os.PathLike | None = None,
    image_encoder=None,
    torch_dtype: torch.dtype | None = None,
    **kwargs,
):
    """Build a ``pipeline_class`` from the released Auffusion base (+ FoleyCrafter adapters, + CLIP).

    Without ``adapters`` the result is a plain text-to-audio pipeline. Without ``image_encoder`` the
    semantic adapter is still loaded, and ``video_embeds`` must be given to use it.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer

    from .models import HifiGanVocoder, OnsetDetector
    from .temporal import load_temporal_controller

    hub_kwargs = {
        k: kwargs.pop(k) for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs
    }
    unknown = sorted(set(kwargs) - {"low_cpu_mem_usage", "use_safetensors", "variant"})
    if unknown:
        raise TypeError(f"Unexpected arguments for loading a released base: {unknown}.")
    base_folder = resolve_folder(base, allow_patterns=BASE_PATTERNS, **hub_kwargs)
    if not (base_folder / "unet").is_dir():
        raise FileNotFoundError(
            f"{base} is neither a native FoleyCrafter folder (model_index.json of FoleyCrafterPipeline) nor an "
            f"Auffusion-layout base folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/, vocoder/)."
        )
    dtype = {"dtype": torch_dtype} if torch_dtype is not None else {}
    vae = AutoencoderKL.from_pretrained(_require(base_folder, "vae", "Base VAE"), **dtype)
    unet = UNet2DConditionModel.from_pretrained(_require(base_folder, "unet", "Base UNet"), **dtype)
    text_encoder = CLIPTextModel.from_pretrained(
        _require(base_folder, "text_encoder", "Base text encoder"), **dtype
    )
    tokenizer = CLIPTokenizer.from_pretrained(_require(base_folder, "tokenizer", "Base tokenizer"))
    scheduler = PNDMScheduler.from_pretrained(_require(base_folder, "scheduler", "Base scheduler"))

    adapters_folder = (
        resolve_folder(adapters, allow_patterns=ADAPTER_PATTERNS, **hub_kwargs) if adapters else None
    )
    vocoder_folder = base_folder / "vocoder"
    if not (vocoder_folder / "vocoder.pt").is_file() and adapters_folder is not None:
        vocoder_folder = adapters_folder / "vocoder"
    vocoder = HifiGanVocoder.from_release(
        _require(vocoder_folder, "vocoder.pt", "HiFi-GAN vocoder").parent, torch_dtype=torch_dtype
    )

    controlnet = onset_detector = None
    if adapters_folder is not None:
        # The controller is copied from the UNet before the semantic adapter changes the UNet.
        controlnet = load_temporal_controller(
            _require(adapters_folder, TEMPORAL_FILE, "Temporal controller"), unet, torch_dtype
        )
        onset_detector = OnsetDetector.from_release(
            _require(adapters_folder, DETECTOR_FILE, "Onset (timestamp) detector"), torch_dtype=torch_dtype
        )

    encoder = image_encoder
    if isinstance(image_encoder, (str, os.PathLike)):
        encoder = load_image_encoder(image_encoder, torch_dtype=torch_dtype, **hub_kwargs)
    pipe = pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        vocoder=vocoder,
        controlnet=controlnet,
        image_encoder=encoder,
        # The release embeds frames with a default CLIPImageProcessor (224 x 224).
        feature_extractor=CLIPImageProcessor() if encoder is not None else None,
        onset_detector=onset_detector,
    )
    if adapters_folder is not None:
        pipe.load_semantic_adapter(_require(adapters_folder, SEMANTIC_FILE, "Semantic adapter"))
    return pipe
