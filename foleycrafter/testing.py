"""Tiny, seeded components and folders in the released layouts, for tests and benchmarks.

Nothing here touches the network: every part is built from a small config with a fixed seed. The
``write_release_*`` functions save them exactly as the public files are laid out (torch pickles,
``.bin`` weights, weight-norm vocoder keys, ``module.`` prefixes), so that tests exercise the real
loading code.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import numpy as np
import torch

from .models import HifiGanVocoder, OnsetDetector
from .semantic import expected_semantic_shapes
from .temporal import controller_from_unet

TINY_CROSS_DIM = 32
TINY_CLIP_DIM = 16


def tiny_tokenizer():
    """A CLIP tokenizer over single characters (no merges): enough for any lowercase prompt."""
    from transformers import CLIPTokenizer

    symbols = string.ascii_lowercase + string.digits + string.punctuation
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_components(seed: int = 0, cross_attention_dim: int = TINY_CROSS_DIM) -> dict:
    """Base components of a tiny Auffusion-shaped model (256 mel bands, 8x VAE, 1024-column window)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        # Attention only at the coarser level: 16 x 64 latent positions keep a CPU step fast.
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(4, 4, 4, 4),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        sample_size=256,
    )
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=cross_attention_dim,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    torch.manual_seed(seed + 3)
    vocoder = HifiGanVocoder(
        upsample_initial_channel=16,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
    )
    return {
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "unet": unet,
        "scheduler": scheduler,
        "vocoder": vocoder,
    }


def auffusion_shape_vae():
    """A VAE of the released size (Stable Diffusion's: 128/256/512/512 channels, 8x), random weights
    from the current torch seed; for full-shape tests and benchmarks."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
    )


def tiny_controller(unet, seed: int = 0):
    """A temporal controller copied from ``unet``, with its zero-initialised outputs randomised so
    that it has a visible effect in tests."""
    controller = controller_from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16))
    return _randomize_outputs(controller, seed)


def tiny_loudness_controller(unet, seed: int = 0):
    """A loudness controller as :func:`~foleycrafter.loudness.new_loudness_controller` makes it
    (seeded, so the same in any test order), with its zero-initialised outputs randomised. ``unet``
    must not carry a semantic adapter's projection (detach it first)."""
    from .loudness import new_loudness_controller

    controller = new_loudness_controller(
        unet, torch.Generator().manual_seed(seed), conditioning_embedding_out_channels=(4, 8, 8, 16)
    )
    return _randomize_outputs(controller, seed)


def _randomize_outputs(controller, seed: int):
    generator = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for name, parameter in controller.named_parameters():
            if name.startswith(
                ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
            ):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return controller


def tiny_image_encoder(seed: int = 0, projection_dim: int = TINY_CLIP_DIM):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed + 20)
    return CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
            projection_dim=projection_dim,
        )
    )


def tiny_onset_detector(seed: int = 0, preprocessing: str = "release") -> OnsetDetector:
    torch.manual_seed(seed + 30)
    return OnsetDetector(
        block_channels=(8, 8, 16, 16),
        layers=(1, 1, 1, 1),
        stem_mid_channels=8,
        stem_channels=8,
        head_hidden=16,
        preprocessing=preprocessing,
    )


def tiny_semantic_adapter(unet, clip_dim: int = TINY_CLIP_DIM, seed: int = 0) -> dict:
    """Random weights in the released IP-Adapter layout for ``unet``."""
    generator = torch.Generator().manual_seed(seed + 40)
    shapes = expected_semantic_shapes(unet, clip_dim)
    state = {
        group: {key: torch.randn(shape, generator=generator) * 0.2 for key, shape in layout.items()}
        for group, layout in shapes.items()
    }
    state["image_proj"]["norm.weight"] = 1.0 + 0.1 * state["image_proj"]["norm.weight"]
    return state


# -- writing the released layouts ---------------------------------------------------------------
def vocoder_release_state_dict(vocoder: HifiGanVocoder) -> dict:
    """The vocoder's weights as the release stores them: a ``weight_g``/``weight_v`` pair per conv."""
    state = {}
    for key, value in vocoder.state_dict().items():
        if key.endswith(".weight"):
            prefix = key[: -len("weight")]
            norm = value.flatten(1).norm(dim=1).reshape(-1, *([1] * (value.ndim - 1)))
            state[prefix + "weight_g"] = norm.clone()
            state[prefix + "weight_v"] = value.clone()
        else:
            state[key] = value.clone()
    return state


def write_release_base(folder: str | os.PathLike, components: dict) -> Path:
    """Save base components in the Auffusion layout (``.bin`` weights, HiFi-GAN ``vocoder.pt``)."""
    folder = Path(folder)
    for name in ("unet", "vae", "text_encoder"):
        components[name].save_pretrained(folder / name, safe_serialization=False)
    components["tokenizer"].save_pretrained(folder / "tokenizer")
    components["scheduler"].save_pretrained(folder / "scheduler")
    vocoder = components["vocoder"]
    (folder / "vocoder").mkdir(parents=True, exist_ok=True)
    config = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in vocoder.config.items()
        if not k.startswith("_")
    }
    config.update(
        {
            "resblock": str(config["resblock"]),
            "segment_size": 5120,
            "num_gpus": 0,
            "batch_size": 16,
            "learning_rate": 0.0002,
            "adam_b1": 0.8,
            "adam_b2": 0.99,
            "lr_decay": 0.999,
            "seed": 1234,
        }
    )
    (folder / "vocoder" / "config.json").write_text(json.dumps(config, indent=2))
    torch.save({"generator": vocoder_release_state_dict(vocoder)}, folder / "vocoder" / "vocoder.pt")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.21.0",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def write_release_adapters(
    folder: str | os.PathLike, semantic_adapter: dict, controller, onset_detector: OnsetDetector
) -> Path:
    """Save adapters in the FoleyCrafter layout, with the wrappers and prefixes the release has."""
    folder = Path(folder)
    (folder / "semantic").mkdir(parents=True, exist_ok=True)
    torch.save(semantic_adapter, folder / "semantic" / "semantic_adapter.bin")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in controller.state_dict().items()}},
        folder / "temporal_adapter.ckpt",
    )
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in onset_detector.state_dict().items()}, "epoch": 7},
        folder / "timestamp_detector.pth.tar",
    )
    return folder


def write_image_encoder(folder: str | os.PathLike, image_encoder) -> Path:
    """Save a CLIP vision encoder in the ``h94/IP-Adapter`` layout (``models/image_encoder``)."""
    folder = Path(folder)
    image_encoder.save_pretrained(folder / "models" / "image_encoder")
    return folder


def write_release_folders(root: str | os.PathLike, seed: int = 0) -> tuple[Path, Path, Path]:
    """Write a tiny base, adapters and image-encoder folder under ``root``; returns their paths."""
    root = Path(root)
    components = tiny_components(seed)
    controller = tiny_controller(components["unet"], seed)
    semantic_adapter = tiny_semantic_adapter(components["unet"], seed=seed)
    base = write_release_base(root / "auffusion", components)
    adapters = write_release_adapters(
        root / "foleycrafter", semantic_adapter, controller, tiny_onset_detector(seed)
    )
    encoder = write_image_encoder(root / "ip-adapter", tiny_image_encoder(seed))
    return base, adapters, encoder


def synthetic_frames(num_frames: int = 30, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3): a square that jumps to a new place every few frames."""
    rng = np.random.default_rng(seed)
    frames = np.full((num_frames, height, width, 3), 40, dtype=np.uint8)
    for t in range(num_frames):
        y, x = (t // 5 * 7) % (height - 8), (t // 5 * 11) % (width - 8)
        frames[t, y : y + 8, x : x + 8] = rng.integers(100, 255, size=3, dtype=np.uint8)
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB to an MPEG-4 file with OpenCV (tests only)."""
    import cv2

    path = Path(path)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
