"""Random-weight models for the benchmarks: the Auffusion shape (SD-1.5 UNet config, as
``tests/test_full_shape.py`` builds it) or the tiny seeded models of ``foleycrafter.testing``.

Random weights cost the same to run as trained ones, and nothing has to be downloaded.
"""

from __future__ import annotations

import torch

from foleycrafter.testing import (
    TINY_CLIP_DIM,
    auffusion_shape_vae,
    tiny_components,
    tiny_controller,
    tiny_image_encoder,
    tiny_onset_detector,
    tiny_semantic_adapter,
    tiny_tokenizer,
)

# Mel image of one model window: 256 mel bands x 1024 columns (10.24 s); latents are 8x smaller.
N_MELS = 256
WINDOW_COLUMNS = 1024
# Tiny runs use a 2.56 s window: a quarter of the latent positions keeps the tiny models' attention
# (1024 tokens of head width 4, slow on CPU) from dominating the tests' time.
TINY_WINDOW_COLUMNS = 256
FULL_CROSS_DIM = 768  # CLIP ViT-L/14 text width (SD-1.5, Auffusion)
FULL_CLIP_DIM = 1024  # CLIP ViT-H/14 image embedding width (h94/IP-Adapter's encoder)


def window_columns(tiny: bool) -> int:
    """Mel columns of one model window."""
    return TINY_WINDOW_COLUMNS if tiny else WINDOW_COLUMNS


def latent_shape(tiny: bool) -> tuple[int, int, int]:
    """(channels, height, width) of one window's latents."""
    return (4, N_MELS // 8, window_columns(tiny) // 8)


def denoiser(tiny: bool, seed: int = 0, device: str | torch.device | None = None) -> dict:
    """UNet with the semantic adapter's weights, temporal controller, and the widths around them.

    ``device``: where the full-size modules are built and initialised (the CPU by default; on a GPU
    random initialisation takes seconds instead of a minute). Tiny modules are always built on the CPU.

    Returns:
        {"unet", "controlnet", "semantic_adapter" (state dict, released layout), "cross_dim",
        "clip_dim"}; the adapter is not installed yet (a pipeline's ``load_semantic_adapter`` does it).
    """
    if tiny:
        unet = tiny_components(seed)["unet"]
        controlnet = tiny_controller(unet, seed)
        clip_dim = TINY_CLIP_DIM
    else:
        from diffusers import UNet2DConditionModel

        from foleycrafter.temporal import controller_from_unet

        torch.manual_seed(seed)
        with torch.device(device or "cpu"):
            unet = UNet2DConditionModel(cross_attention_dim=FULL_CROSS_DIM)  # SD-1.5: 320/640/1280/1280
            controlnet = controller_from_unet(unet)
        _randomize_zero_convs(controlnet, seed)
        clip_dim = FULL_CLIP_DIM
    return {
        "unet": unet.eval(),
        "controlnet": controlnet.eval(),
        "semantic_adapter": tiny_semantic_adapter(unet, clip_dim=clip_dim, seed=seed),
        "cross_dim": unet.config.cross_attention_dim,
        "clip_dim": clip_dim,
    }


def _randomize_zero_convs(controlnet, seed: int) -> None:
    """A fresh ControlNet's output convolutions are zero, so its residuals would be exactly zero and
    a comparison of two pipelines could not see whether they fed the controller the same condition.
    Small random values make it visible (the cost of a step does not change)."""
    generator = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for name, parameter in controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
                # Drawn on the CPU (the generator's device), whichever device holds the parameter.
                parameter.copy_(torch.randn(parameter.shape, generator=generator, device="cpu") * 0.02)


def light_parts(cross_dim: int, seed: int = 0) -> dict:
    """VAE, text encoder, tokenizer, scheduler and vocoder of the tiny model, with a text encoder of
    width ``cross_dim``: for benchmarks that pass prompt embeddings and stop at latents, where these
    parts never run but a pipeline must have them (the VAE's 4 levels give the 8x latent scale)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    parts = tiny_components(seed)
    del parts["unet"]
    torch.manual_seed(seed + 2)
    parts["text_encoder"] = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=cross_dim,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=4,
            vocab_size=len(parts["tokenizer"]),
            max_position_embeddings=77,
        )
    )
    return parts


def denoising_pipeline(tiny: bool, dtype: torch.dtype, seed: int = 0) -> dict:
    """Our pipeline around :func:`denoiser`'s modules (semantic adapter installed through
    diffusers' ``load_ip_adapter``) with :func:`light_parts` for the rest: for benchmarks that pass
    embeddings and stop at latents.

    Returns:
        {"pipe", "parts" (the light parts), "cross_dim", "clip_dim"}.
    """
    from foleycrafter import FoleyCrafterPipeline

    found = denoiser(tiny, seed)
    parts = light_parts(found["cross_dim"], seed)
    for name in ("vae", "text_encoder", "vocoder"):
        parts[name] = parts[name].to(dtype)
    pipe = FoleyCrafterPipeline(
        **parts,
        unet=found["unet"].to(dtype),
        controlnet=found["controlnet"].to(dtype),
        window_columns=window_columns(tiny),
    )
    pipe.load_semantic_adapter(found["semantic_adapter"])
    pipe.set_progress_bar_config(disable=True)
    return {"pipe": pipe, "parts": parts, "cross_dim": found["cross_dim"], "clip_dim": found["clip_dim"]}


def full_pipeline(tiny: bool, dtype: torch.dtype, seed: int = 0, device: str | torch.device | None = None):
    """The whole pipeline with every component at its released size (tiny with ``tiny``), each
    converted to ``dtype`` as soon as it is built so that no full fp32 copy of the whole model is
    ever alive at once.

    ``device``: where the pipeline ends up (default: the CPU). Full-size components are also built
    and randomly initialised there (seconds on a GPU), one at a time, so the device needs room for
    the finished ``dtype`` components plus the largest one in float32 (the UNet, 3.4 GB).

    Full size: SD-1.5 UNet and its ControlNet, the SD VAE (128/256/512/512), the CLIP ViT-L/14 text
    encoder (12 layers), the CLIP ViT-H/14 image encoder of h94/IP-Adapter (32 layers), the
    HiFi-GAN vocoder and the R(2+1)D-18 onset detector at their defaults.
    """
    from diffusers import PNDMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.models import HifiGanVocoder, OnsetDetector

    def cast(module):
        return module.to(dtype).eval()

    def built(factory):
        # Constructed (and so randomly initialised) on the target device, then cast.
        with torch.device(device or "cpu"):
            return cast(factory())

    if tiny:
        parts = tiny_components(seed)
        controlnet = tiny_controller(parts["unet"], seed)
        adapter = tiny_semantic_adapter(parts["unet"], seed=seed)
        pipe = FoleyCrafterPipeline(
            **{k: cast(v) if isinstance(v, torch.nn.Module) else v for k, v in parts.items()},
            controlnet=cast(controlnet),
            image_encoder=cast(tiny_image_encoder(seed)),
            onset_detector=cast(tiny_onset_detector(seed)),
            window_columns=TINY_WINDOW_COLUMNS,
        )
        pipe.load_semantic_adapter(adapter)
        pipe.set_progress_bar_config(disable=True)
        return pipe if device is None else pipe.to(device)

    found = denoiser(tiny=False, seed=seed, device=device)
    unet, controlnet = cast(found["unet"]), cast(found["controlnet"])
    adapter = found["semantic_adapter"]
    del found
    torch.manual_seed(seed + 1)
    vae = built(auffusion_shape_vae)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed + 2)
    text_encoder = built(
        lambda: CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                vocab_size=len(tokenizer),
            )
        )
    )
    torch.manual_seed(seed + 3)
    image_encoder = built(
        lambda: CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=1280,
                intermediate_size=5120,
                num_hidden_layers=32,
                num_attention_heads=16,
                patch_size=14,
                image_size=224,
                projection_dim=FULL_CLIP_DIM,
                hidden_act="gelu",
            )
        )
    )
    torch.manual_seed(seed + 4)
    vocoder = built(HifiGanVocoder)
    torch.manual_seed(seed + 5)
    onset_detector = built(OnsetDetector)
    pipe = FoleyCrafterPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, skip_prk_steps=True
        ),
        vocoder=vocoder,
        controlnet=controlnet,
        image_encoder=image_encoder,
        onset_detector=onset_detector,
    )
    pipe.load_semantic_adapter({g: {k: v.to(dtype) for k, v in d.items()} for g, d in adapter.items()})
    pipe.set_progress_bar_config(disable=True)
    # The adapter's projection is built where diffusers builds it; put everything on the device.
    return pipe if device is None else pipe.to(device)


def module_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of all parameters and buffers of ``modules`` (each tensor counted once)."""
    seen, total = set(), 0
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total
