"""Slow tier: the pipeline at the released shapes (random weights from the published configs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def test_auffusion_shape_pipeline_runs_one_step(clip):
    from diffusers import PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.models import HifiGanVocoder, OnsetDetector
    from foleycrafter.temporal import controller_from_unet
    from foleycrafter.testing import auffusion_shape_vae, tiny_semantic_adapter, tiny_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768)  # SD-1.5 defaults: 320/640/1280/1280
    vae = auffusion_shape_vae()
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=1, vocab_size=len(tokenizer)
        )
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=4,
            projection_dim=1024,
        )
    )
    pipe = FoleyCrafterPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, skip_prk_steps=True
        ),
        vocoder=HifiGanVocoder(),
        controlnet=controller_from_unet(unet),
        image_encoder=image_encoder,
        feature_extractor=None,
        onset_detector=OnsetDetector(),
    )
    pipe.load_semantic_adapter(tiny_semantic_adapter(unet, clip_dim=1024))
    pipe.set_progress_bar_config(disable=True)
    assert len([k for k in pipe.unet.attn_processors if k.endswith("attn2.processor")]) == 16

    out = pipe(
        prompt="a dog barks", video=clip, num_inference_steps=1, generator=torch.Generator().manual_seed(0)
    )
    assert out.mel_images.shape == (1, 3, 256, 1024)
    assert out.audios[0].shape == (round(clip.duration * 16000),)
    assert np.all(np.isfinite(out.audios[0]))
