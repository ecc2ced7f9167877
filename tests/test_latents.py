"""The diffusion model's latent space: per-channel statistics when the VAE has them, else its factor."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import FrozenDict

from foleycrafter.latents import denormalize_latents, normalize_latents


def test_a_vae_with_channel_statistics_maps_its_latents_to_zero_mean_unit_variance():
    generator = torch.Generator().manual_seed(0)
    means, stds = torch.tensor([2.0, -3.0, 0.5]), torch.tensor([0.5, 2.0, 1.0])
    latents = torch.randn(64, 3, 4, 8, generator=generator) * stds.view(1, 3, 1, 1) + means.view(1, 3, 1, 1)
    config = FrozenDict(scaling_factor=1.0, latents_mean=means.tolist(), latents_std=stds.tolist())
    normalized = normalize_latents(config, latents)
    assert torch.all(normalized.mean(dim=(0, 2, 3)).abs() < 0.1)
    assert torch.all((normalized.std(dim=(0, 2, 3)) - 1).abs() < 0.1)
    torch.testing.assert_close(denormalize_latents(config, normalized), latents)
    # SDXL's convention: the factor applies after the statistics.
    scaled = FrozenDict(scaling_factor=0.5, latents_mean=means.tolist(), latents_std=stds.tolist())
    torch.testing.assert_close(normalize_latents(scaled, latents), normalized * 0.5)


def test_a_vae_without_statistics_only_scales_as_the_release_does():
    latents = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    for config in (FrozenDict(scaling_factor=0.18215), FrozenDict(scaling_factor=0.18215, latents_mean=None)):
        torch.testing.assert_close(normalize_latents(config, latents), latents * 0.18215)
        torch.testing.assert_close(denormalize_latents(config, latents), latents / 0.18215)
