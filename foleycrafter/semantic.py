"""Semantic adapter: what the video shows steers what the audio sounds like.

The adapter is an IP-Adapter (decoupled cross-attention) and uses diffusers' machinery as it is:
``IPAdapterMixin.load_ip_adapter`` installs ``IPAdapterAttnProcessor2_0`` in every cross-attention
layer of the UNet and an ``ImageProjection`` (one CLIP image embedding -> 4 tokens) as the UNet's
``encoder_hid_proj``. This module adds what diffusers does not: reading the released file safely,
checking it against the UNet with messages a user can act on, writing it back out (a pipeline's
``save_pretrained`` drops IP-Adapter weights), and turning video frames into the one mean CLIP
embedding the release conditions on.

State-dict layout (the standard IP-Adapter layout, as released in ``semantic/semantic_adapter.bin``)::

    {"image_proj": {"proj.weight": [4 * cross_dim, clip_dim], "proj.bias", "norm.weight": [cross_dim],
                    "norm.bias"},
     "ip_adapter": {"1.to_k_ip.weight": [hidden, cross_dim], "1.to_v_ip.weight", "3.to_k_ip.weight", ...}}

The ``ip_adapter`` keys are numbered 1, 3, 5, ... over the UNet's cross-attention layers in the
order of ``unet.attn_processors``.

A second kind, the frame-aligned adapter (:mod:`foleycrafter.frame_aligned`: one token per frame
with its time, masked by time in attention), keeps the same layout with its own ``image_proj``
(``proj``, ``norm``, ``time_proj``) and a config file beside its weights. Natively the mean adapter
is ``semantic_adapter/ip_adapter.safetensors``, the frame-aligned one
``semantic_adapter/frame_aligned.safetensors`` + ``frame_aligned.json``; :func:`adapter_kind` tells
weights apart and :func:`native_adapter_file` finds a folder's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from diffusers.models.attention_processor import (
    AttnProcessor2_0,
    IPAdapterAttnProcessor,
    IPAdapterAttnProcessor2_0,
)
from safetensors.torch import load_file, save_file

from . import frame_aligned
from .frame_aligned import FrameAlignedAttnProcessor, FrameAttention, FrameTokenProjection
from .release import CheckpointError, layout_problems, load_torch_pickle, unwrap_state_dict

NUM_IMAGE_TOKENS = 4
NATIVE_SUBFOLDER = "semantic_adapter"
NATIVE_WEIGHT_NAME = "ip_adapter.safetensors"
#: The two kinds of semantic adapter: the release's mean embedding, and per-frame tokens.
ADAPTER_KINDS = ("mean", "frame_aligned")
_IP_PROCESSORS = (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0, FrameAlignedAttnProcessor)


def load_semantic_adapter_file(path: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """Read a semantic adapter file into ``{"image_proj": {...}, "ip_adapter": {...}}``.

    Accepts the released torch pickle (``.bin``/``.pt``/``.ckpt``, read with ``weights_only=True``)
    and the native safetensors file (keys prefixed ``image_proj.`` / ``ip_adapter.``).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"Checkpoint file not found: {path}")
        flat = load_file(str(path))
        nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            group, _, name = key.partition(".")
            if group not in nested or not name:
                raise CheckpointError(
                    f"{path}: unexpected key {key!r}; expected keys starting with 'image_proj.' or 'ip_adapter.'."
                )
            nested[group][name] = value
        return nested
    obj = load_torch_pickle(path)
    if not isinstance(obj, dict) or "image_proj" not in obj or "ip_adapter" not in obj:
        found = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not a semantic (IP-Adapter) checkpoint: expected a dict with 'image_proj' and "
            f"'ip_adapter', found {found}."
        )
    return {
        "image_proj": unwrap_state_dict(obj["image_proj"], f"{path} [image_proj]"),
        "ip_adapter": unwrap_state_dict(obj["ip_adapter"], f"{path} [ip_adapter]"),
    }


def adapter_kind(state_dict: dict[str, dict[str, torch.Tensor]]) -> str:
    """``"frame_aligned"`` when the weights have a time projection, else ``"mean"``."""
    return "frame_aligned" if "time_proj.weight" in state_dict["image_proj"] else "mean"


def _weights_in(folder: Path) -> Path | None:
    found = [
        folder / name for name in (NATIVE_WEIGHT_NAME, frame_aligned.WEIGHT_NAME) if (folder / name).is_file()
    ]
    if len(found) > 1:
        raise CheckpointError(
            f"{folder} holds both a mean-embedding ({NATIVE_WEIGHT_NAME}) and a frame-aligned "
            f"({frame_aligned.WEIGHT_NAME}) semantic adapter; a pipeline carries one. Remove the one not "
            f"wanted."
        )
    return found[0] if found else None


def native_adapter_file(folder: str | os.PathLike) -> Path | None:
    """The semantic adapter weights of a native pipeline folder, or ``None`` when it has none."""
    return _weights_in(Path(folder) / NATIVE_SUBFOLDER)


def adapter_file_in(folder: str | os.PathLike) -> Path:
    """The semantic adapter weights in ``folder``: a pipeline folder, or its ``semantic_adapter/``."""
    folder = Path(folder)
    found = native_adapter_file(folder) or _weights_in(folder)
    if found is None:
        raise CheckpointError(
            f"{folder} holds no semantic adapter: expected {NATIVE_SUBFOLDER}/{NATIVE_WEIGHT_NAME} or "
            f"{NATIVE_SUBFOLDER}/{frame_aligned.WEIGHT_NAME} (or those files directly)."
        )
    return found


def load_frame_aligned_config(weights: str | os.PathLike) -> dict:
    """The projection config stored beside a frame-aligned adapter's weights."""
    config = Path(weights).with_name(frame_aligned.CONFIG_NAME)
    if not config.is_file():
        raise CheckpointError(
            f"{weights} is a frame-aligned semantic adapter, whose config {config.name} should lie beside "
            f"it, but {config} does not exist. Copy the adapter's whole semantic_adapter/ folder."
        )
    return FrameTokenProjection.load_config(config.parent, config_name=config.name)


def _cross_attention_layers(unet) -> Iterator[tuple[str, torch.nn.Module]]:
    """The UNet's cross-attention modules, in ``attn_processors`` order."""
    modules = dict(unet.named_modules())
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        yield name, modules[name.rsplit(".processor", 1)[0]]


def expected_semantic_shapes(unet, clip_dim: int) -> dict[str, dict[str, tuple[int, ...]]]:
    """The key -> shape layout a semantic adapter for ``unet`` and a ``clip_dim`` image encoder has."""
    cross_dim = unet.config.cross_attention_dim
    image_proj = {
        "proj.weight": (NUM_IMAGE_TOKENS * cross_dim, clip_dim),
        "proj.bias": (NUM_IMAGE_TOKENS * cross_dim,),
        "norm.weight": (cross_dim,),
        "norm.bias": (cross_dim,),
    }
    ip_adapter = {}
    for number, (_, attention) in zip(range(1, 10**6, 2), _cross_attention_layers(unet)):
        shape = (attention.to_k.out_features, attention.to_k.in_features)
        ip_adapter[f"{number}.to_k_ip.weight"] = shape
        ip_adapter[f"{number}.to_v_ip.weight"] = shape
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def check_semantic_adapter(
    state_dict: dict[str, dict[str, torch.Tensor]], unet, clip_dim: int | None, source: str | os.PathLike
) -> None:
    """Raise :class:`CheckpointError` unless the mean-embedding adapter fits ``unet`` (and an image
    encoder whose ``image_embeds`` have ``clip_dim`` features, when given) exactly."""
    if adapter_kind(state_dict) != "mean":
        raise CheckpointError(
            f"{source} is a frame-aligned semantic adapter (its image projection has a time embedding), "
            f"not the mean-embedding kind: load it from its file or folder, with {frame_aligned.CONFIG_NAME}."
        )
    cross_dim = unet.config.cross_attention_dim
    norm = state_dict["image_proj"].get("norm.weight")
    if norm is not None and norm.shape[0] != cross_dim:
        raise CheckpointError(
            f"{source}: the semantic adapter was trained for a UNet with cross-attention width "
            f"{norm.shape[0]}, but this UNet's cross-attention width is {cross_dim}. Use the adapter that "
            f"belongs to this base model."
        )
    proj = state_dict["image_proj"].get("proj.weight")
    if proj is not None and clip_dim is not None and proj.shape[-1] != clip_dim:
        raise CheckpointError(
            f"{source}: the semantic adapter expects CLIP image embeddings of width {proj.shape[-1]}, but the "
            f"image encoder produces {clip_dim}. Use the image encoder the adapter was trained with."
        )
    if clip_dim is None:
        clip_dim = proj.shape[-1] if proj is not None else 0
    expected = expected_semantic_shapes(unet, clip_dim)
    for group in ("image_proj", "ip_adapter"):
        have = {k: tuple(v.shape) for k, v in state_dict[group].items()}
        problems = layout_problems(have, expected[group])
        if problems:
            raise CheckpointError(
                f"{source} does not match this UNet's semantic adapter layout [{group}]: "
                + "; ".join(problems)
                + "."
            )


def initial_semantic_adapter(unet, clip_dim: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Starting weights for training a new adapter: ``to_k_ip``/``to_v_ip`` copied from each layer's
    text ``to_k``/``to_v`` (so image tokens start out read like text tokens, as IP-Adapter does), and
    a small random image projection with a unit LayerNorm."""
    generator = torch.Generator().manual_seed(seed)
    shapes = expected_semantic_shapes(unet, clip_dim)
    cross_dim = unet.config.cross_attention_dim
    image_proj = {
        "proj.weight": torch.randn(shapes["image_proj"]["proj.weight"], generator=generator) * clip_dim**-0.5,
        "proj.bias": torch.zeros(NUM_IMAGE_TOKENS * cross_dim),
        "norm.weight": torch.ones(cross_dim),
        "norm.bias": torch.zeros(cross_dim),
    }
    ip_adapter = {}
    for number, (_, attention) in zip(range(1, 10**6, 2), _cross_attention_layers(unet)):
        ip_adapter[f"{number}.to_k_ip.weight"] = attention.to_k.weight.detach().float().cpu().clone()
        ip_adapter[f"{number}.to_v_ip.weight"] = attention.to_v.weight.detach().float().cpu().clone()
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def install_frame_aligned_adapter(
    unet,
    state_dict: dict[str, dict[str, torch.Tensor]],
    config: dict,
    source: str | os.PathLike = "state dict",
) -> None:
    """Install a frame-aligned adapter (weights in the IP-Adapter layout, the projection's ``config``)
    in ``unet``, replacing any semantic adapter there; the weights must fit exactly."""
    projection = FrameTokenProjection.from_config(config)
    if projection.config.cross_attention_dim != unet.config.cross_attention_dim:
        raise CheckpointError(
            f"{source}: the frame-aligned adapter was made for a UNet with cross-attention width "
            f"{projection.config.cross_attention_dim}, but this UNet's is {unet.config.cross_attention_dim}."
        )
    have = {k: tuple(v.shape) for k, v in state_dict["image_proj"].items()}
    want = {k: tuple(v.shape) for k, v in projection.state_dict().items()}
    ip_want = expected_semantic_shapes(unet, projection.config.clip_dim)["ip_adapter"]
    ip_have = {k: tuple(v.shape) for k, v in state_dict["ip_adapter"].items()}
    for group, problems in (
        ("image_proj", layout_problems(have, want)),
        ("ip_adapter", layout_problems(ip_have, ip_want)),
    ):
        if problems:
            raise CheckpointError(
                f"{source} does not match this UNet's frame-aligned adapter layout [{group}]: "
                + "; ".join(problems)
                + "."
            )
    projection.load_state_dict(state_dict["image_proj"])
    reference = next(unet.parameters())
    processors = {}
    layers = dict(_cross_attention_layers(unet))
    number = 1
    for name, processor in unet.attn_processors.items():
        if name not in layers:
            processors[name] = AttnProcessor2_0() if isinstance(processor, _IP_PROCESSORS) else processor
            continue
        attention = layers[name]
        frame = FrameAlignedAttnProcessor(attention.to_k.out_features, attention.to_k.in_features)
        frame.to_k_ip[0].weight.data.copy_(state_dict["ip_adapter"][f"{number}.to_k_ip.weight"])
        frame.to_v_ip[0].weight.data.copy_(state_dict["ip_adapter"][f"{number}.to_v_ip.weight"])
        processors[name] = frame.to(device=reference.device, dtype=reference.dtype)
        number += 2
    # (diffusers empties the dict it is given)
    unet.set_attn_processor(processors)
    unet.encoder_hid_proj = projection.to(device=reference.device, dtype=reference.dtype)
    unet.register_to_config(encoder_hid_dim_type="ip_image_proj")


def initial_frame_aligned_adapter(
    unet, clip_dim: int, seed: int = 0, **config
) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Starting weights and config for training a frame-aligned adapter: keys and values of the frame
    tokens copied from each layer's text ``to_k`` / ``to_v`` (as :func:`initial_semantic_adapter`),
    a random projection; ``config`` sets the projection's other options (e.g. ``visual_attention``)."""
    torch.manual_seed(seed)
    projection = FrameTokenProjection(
        clip_dim=clip_dim, cross_attention_dim=unet.config.cross_attention_dim, **config
    )
    generator = torch.Generator().manual_seed(seed)
    image_proj = {k: v.detach().clone() for k, v in projection.state_dict().items()}
    image_proj["proj.weight"] = (
        torch.randn(image_proj["proj.weight"].shape, generator=generator) * clip_dim**-0.5
    )
    image_proj["proj.bias"] = torch.zeros_like(image_proj["proj.bias"])
    ip_adapter = initial_semantic_adapter(unet, clip_dim, seed)["ip_adapter"]
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}, dict(projection.config)


def has_semantic_adapter(unet) -> bool:
    return any(isinstance(p, _IP_PROCESSORS) for p in unet.attn_processors.values())


def semantic_adapter_kind(unet) -> str | None:
    """``"mean"``, ``"frame_aligned"``, or ``None`` when ``unet`` carries no semantic adapter."""
    if not has_semantic_adapter(unet):
        return None
    return "frame_aligned" if isinstance(unet.encoder_hid_proj, FrameTokenProjection) else "mean"


def semantic_clip_dim(unet) -> int:
    """The CLIP embedding width the installed semantic adapter reads."""
    if semantic_adapter_kind(unet) == "frame_aligned":
        return unet.encoder_hid_proj.config.clip_dim
    return unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features


def semantic_adapter_state_dict(unet) -> dict[str, dict[str, torch.Tensor]]:
    """The adapter installed in ``unet``, in the standard IP-Adapter layout (for the mean kind,
    loadable with diffusers' ``load_ip_adapter`` and by this package)."""
    kind = semantic_adapter_kind(unet)
    if kind is None or unet.encoder_hid_proj is None:
        raise ValueError("This UNet has no semantic adapter loaded.")
    if kind == "frame_aligned":
        image_proj = {
            key: value.detach().clone() for key, value in unet.encoder_hid_proj.state_dict().items()
        }
    else:
        projection = unet.encoder_hid_proj.image_projection_layers[0]
        image_proj = {
            key.replace("image_embeds", "proj"): value.detach().clone()
            for key, value in projection.state_dict().items()
        }
    ip_adapter = {}
    number = 1
    for processor in unet.attn_processors.values():
        if isinstance(processor, _IP_PROCESSORS):
            ip_adapter[f"{number}.to_k_ip.weight"] = processor.to_k_ip[0].weight.detach().clone()
            ip_adapter[f"{number}.to_v_ip.weight"] = processor.to_v_ip[0].weight.detach().clone()
            number += 2
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def save_semantic_adapter_folder(unet, folder: str | os.PathLike) -> Path:
    """Write the adapter ``unet`` carries into ``folder`` (a pipeline's ``semantic_adapter/``) in its
    kind's native files; returns the weights file."""
    folder = Path(folder)
    if semantic_adapter_kind(unet) == "frame_aligned":
        path = folder / frame_aligned.WEIGHT_NAME
        save_semantic_adapter(semantic_adapter_state_dict(unet), path)
        unet.encoder_hid_proj.save_config(folder)
        return path
    path = folder / NATIVE_WEIGHT_NAME
    save_semantic_adapter(semantic_adapter_state_dict(unet), path)
    return path


def set_frame_attention(unet, frame_attention: FrameAttention) -> None:
    """Tell the frame-aligned adapter's processors the latent's size, the time axis and the visual
    attention mask of the coming UNet calls (no-op for other adapters)."""
    for processor in unet.attn_processors.values():
        if isinstance(processor, FrameAlignedAttnProcessor):
            processor.frame_attention = frame_attention


def save_semantic_adapter(state_dict: dict[str, dict[str, torch.Tensor]], path: str | os.PathLike) -> None:
    """Write an adapter as one safetensors file with ``image_proj.`` / ``ip_adapter.`` prefixes (the
    layout diffusers' ``load_ip_adapter`` reads from safetensors)."""
    flat = {
        f"{group}.{key}": value.detach().to("cpu").contiguous()
        for group in ("image_proj", "ip_adapter")
        for key, value in state_dict[group].items()
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(path))


@contextlib.contextmanager
def detached_semantic_adapter(unet):
    """Temporarily give ``unet`` its plain attention processors and no image projection (so that its
    ``save_pretrained`` writes the base UNet only), then put the adapter back."""
    if not has_semantic_adapter(unet):
        yield
        return
    processors = dict(unet.attn_processors)
    projection, hid_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
    unet.set_attn_processor(
        {name: AttnProcessor2_0() if isinstance(p, _IP_PROCESSORS) else p for name, p in processors.items()}
    )
    unet.encoder_hid_proj = None
    unet.register_to_config(encoder_hid_dim_type=None)
    try:
        yield
    finally:
        unet.set_attn_processor(processors)
        unet.encoder_hid_proj = projection
        unet.register_to_config(encoder_hid_dim_type=hid_type)


def set_semantic_scale(unet, scale: float) -> None:
    """Set the weight of the image branch in every decoupled cross-attention layer."""
    for processor in unet.attn_processors.values():
        if isinstance(processor, _IP_PROCESSORS):
            processor.scale = [float(scale)] * len(processor.scale)


@torch.no_grad()
def encode_video_frames(
    frames: np.ndarray,
    image_encoder,
    feature_extractor,
    batch_size: int = 50,
) -> torch.Tensor:
    """The release's video embedding: the mean CLIP ``image_embeds`` of the sampled frames.

    Args:
        frames: uint8 RGB array (T, H, W, 3).
        batch_size: frames per image-encoder forward (memory bound only; the result is the same).

    Returns:
        Tensor (1, D) on the image encoder's device and dtype, D = ``image_encoder.config.projection_dim``.
    """
    return frame_embeddings(frames, image_encoder, feature_extractor, batch_size).mean(dim=0, keepdim=True)


def frame_embeddings(
    frames: np.ndarray, image_encoder, feature_extractor, batch_size: int = 50
) -> torch.Tensor:
    """CLIP ``image_embeds`` of each frame: uint8 RGB frames (T, H, W, 3) -> (T, D), on the image
    encoder's device and dtype."""
    device, dtype = image_encoder.device, image_encoder.dtype
    embeds = []
    for start in range(0, len(frames), batch_size):
        chunk = list(frames[start : start + batch_size])
        pixels = feature_extractor(images=chunk, return_tensors="pt").pixel_values
        embeds.append(image_encoder(pixel_values=pixels.to(device=device, dtype=dtype)).image_embeds)
    return torch.cat(embeds)
