"""The VAE's latent space as the diffusion model sees it.

The diffusion model works on latents of zero mean and unit variance, where its noise schedule holds.
A VAE says how to get there in its config, as diffusers' SDXL-family pipelines read it: per channel
``latents_mean`` and ``latents_std`` when it has them, then ``scaling_factor``. The released
Auffusion VAE has only ``scaling_factor`` (0.18215, as Stable Diffusion's). The bundled tiny
model's VAE v2 has all three: its latent channels sit far from zero (means up to 2.7 of their
standard deviations away), and a single factor left those offsets in the UNet's data: its samples
had every channel's mean near 0, a mid-level texture with no class (``build_tiny``).
"""

from __future__ import annotations

import torch


def _channel_statistics(config, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is None or std is None:
        return None
    shape = (1, len(mean), 1, 1)
    return (
        torch.tensor(mean, device=like.device, dtype=like.dtype).view(shape),
        torch.tensor(std, device=like.device, dtype=like.dtype).view(shape),
    )


def normalize_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    """VAE latents (B, C, H, W), as the encoder gives them, -> the diffusion model's latents."""
    statistics = _channel_statistics(vae_config, latents)
    if statistics is not None:
        mean, std = statistics
        latents = (latents - mean) / std
    return latents * vae_config.scaling_factor


def denormalize_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    """The diffusion model's latents (B, C, H, W) -> VAE latents, as the decoder takes them."""
    latents = latents / vae_config.scaling_factor
    statistics = _channel_statistics(vae_config, latents)
    if statistics is not None:
        mean, std = statistics
        latents = latents * std + mean
    return latents
