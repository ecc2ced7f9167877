"""Semantic adapter: released layout in and out, checks, and the video embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor

from foleycrafter import CheckpointError
from foleycrafter.semantic import (
    check_semantic_adapter,
    encode_video_frames,
    expected_semantic_shapes,
    load_semantic_adapter_file,
    save_semantic_adapter,
)
from foleycrafter.testing import (
    TINY_CLIP_DIM,
    synthetic_frames,
    tiny_components,
    tiny_image_encoder,
    tiny_semantic_adapter,
)


@pytest.fixture(scope="module")
def unet():
    return tiny_components(0)["unet"]


def test_layout_numbers_cross_attention_layers_with_odd_keys(unet):
    shapes = expected_semantic_shapes(unet, clip_dim=TINY_CLIP_DIM)
    cross_layers = [n for n in unet.attn_processors if n.endswith("attn2.processor")]
    numbers = sorted({int(k.split(".")[0]) for k in shapes["ip_adapter"]})
    assert numbers == list(range(1, 2 * len(cross_layers), 2))
    assert shapes["image_proj"]["proj.weight"] == (4 * 32, TINY_CLIP_DIM)
    assert shapes["image_proj"]["norm.weight"] == (32,)
    hidden = {shape[0] for shape in shapes["ip_adapter"].values()}
    assert hidden == {16}  # the tiny UNet has cross-attention only at width 16
    assert all(shape[1] == 32 for shape in shapes["ip_adapter"].values())


def test_release_pickle_and_native_safetensors_round_trip(unet, tmp_path):
    adapter = tiny_semantic_adapter(unet)
    torch.save(adapter, tmp_path / "semantic_adapter.bin")
    from_pickle = load_semantic_adapter_file(tmp_path / "semantic_adapter.bin")
    save_semantic_adapter(from_pickle, tmp_path / "ip_adapter.safetensors")
    from_native = load_semantic_adapter_file(tmp_path / "ip_adapter.safetensors")
    for group in ("image_proj", "ip_adapter"):
        assert from_native[group].keys() == adapter[group].keys()
        for key in adapter[group]:
            assert torch.equal(from_native[group][key], adapter[group][key])
    check_semantic_adapter(from_native, unet, TINY_CLIP_DIM, "x")


def test_native_file_loads_with_stock_diffusers_ip_adapter_loader(unet, tmp_path):
    """What we write is a plain IP-Adapter file: diffusers' own loader takes it."""
    from diffusers import StableDiffusionPipeline

    components = tiny_components(0)
    pipe = StableDiffusionPipeline(
        **{k: components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")},
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    adapter = tiny_semantic_adapter(components["unet"])
    save_semantic_adapter(adapter, tmp_path / "ip_adapter.safetensors")
    pipe.load_ip_adapter(
        str(tmp_path), subfolder="", weight_name="ip_adapter.safetensors", image_encoder_folder=None
    )
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    assert torch.equal(projection.image_embeds.weight, adapter["image_proj"]["proj.weight"])


def test_wrong_clip_width_and_wrong_layer_count_are_named(unet):
    adapter = tiny_semantic_adapter(unet, clip_dim=24)
    with pytest.raises(CheckpointError, match="CLIP image embeddings of width 24.*produces 16"):
        check_semantic_adapter(adapter, unet, TINY_CLIP_DIM, "semantic_adapter.bin")
    adapter = tiny_semantic_adapter(unet)
    adapter["ip_adapter"]["99.to_k_ip.weight"] = torch.zeros(16, 32)
    with pytest.raises(
        CheckpointError, match=r"semantic_adapter.bin.*1 unexpected keys \(first: 99.to_k_ip.weight"
    ):
        check_semantic_adapter(adapter, unet, TINY_CLIP_DIM, "semantic_adapter.bin")


def test_not_an_adapter_file_is_refused(tmp_path):
    torch.save({"state_dict": {"a": torch.zeros(1)}}, tmp_path / "x.bin")
    with pytest.raises(CheckpointError, match="not a semantic"):
        load_semantic_adapter_file(tmp_path / "x.bin")


def test_video_embedding_is_the_mean_of_frame_embeddings():
    encoder = tiny_image_encoder(0)
    processor = CLIPImageProcessor()
    frames = synthetic_frames(num_frames=7)
    mean = encode_video_frames(frames, encoder, processor, batch_size=3)
    assert mean.shape == (1, TINY_CLIP_DIM)
    with torch.no_grad():
        each = [
            encoder(pixel_values=processor(images=[f], return_tensors="pt").pixel_values).image_embeds
            for f in frames
        ]
    torch.testing.assert_close(mean, torch.cat(each).mean(0, keepdim=True), atol=1e-5, rtol=1e-5)
    # Different footage, different embedding.
    other = encode_video_frames(np.full_like(frames, 200), encoder, processor)
    assert (other - mean).abs().max() > 1e-3
