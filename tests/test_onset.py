"""Tests of the onset (timestamp) detector: released layout, time axis, preprocessing modes,
BatchNorm behaviour, strict release loading and the diffusers round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foleycrafter.models.onset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OnsetDetector,
    architecture_from_state_dict,
    split_conv_channels,
)
from foleycrafter.release import CheckpointError

TINY = dict(
    block_channels=(8, 8, 16, 16), layers=(1, 1, 1, 1), stem_mid_channels=8, stem_channels=8, head_hidden=16
)
# Small frames keep the tests fast; the network accepts any spatial size, preprocess makes 112.
SMALL = dict(TINY, resize_size=40, crop_size=32)


def tiny(preprocessing="clean", **overrides) -> OnsetDetector:
    torch.manual_seed(0)
    model = OnsetDetector(**{**SMALL, "preprocessing": preprocessing, **overrides})
    # Non-trivial BatchNorm parameters and running statistics, so that the modes differ.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def random_frames(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def buffers(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


# -- released layout -------------------------------------------------------------------------


def test_full_size_state_dict_matches_release_layout():
    torch.manual_seed(0)
    model = OnsetDetector()
    state = model.state_dict()
    assert tuple(state["net.model.stem.0.weight"].shape) == (45, 3, 1, 7, 7)
    assert tuple(state["net.model.stem.3.weight"].shape) == (64, 45, 3, 1, 1)
    assert "net.model.stem.4.running_var" in state
    for layer, (inp, out, mid) in {2: (64, 128, 230), 3: (128, 256, 460), 4: (256, 512, 921)}.items():
        assert split_conv_channels(inp, out) == mid
        prefix = f"net.model.layer{layer}.0."
        assert tuple(state[prefix + "conv1.0.0.weight"].shape) == (mid, inp, 1, 3, 3)
        assert tuple(state[prefix + "conv1.0.3.weight"].shape) == (out, mid, 3, 1, 1)
        # conv2 of the first block keeps the width derived from the block's input, as released.
        assert tuple(state[prefix + "conv2.0.0.weight"].shape) == (mid, out, 1, 3, 3)
        assert tuple(state[prefix + "downsample.0.weight"].shape) == (out, inp, 1, 1, 1)
        assert prefix + "downsample.1.num_batches_tracked" in state
        conv = model.net["model"].get_submodule(f"layer{layer}.0.conv1.0")
        assert conv[0].stride == (1, 2, 2) and conv[3].stride == (1, 1, 1)
        assert model.net["model"].get_submodule(f"layer{layer}.0.downsample.0").stride == (1, 2, 2)
    assert "net.model.layer1.0.downsample.0.weight" not in state
    assert tuple(state["net.model.layer1.1.conv2.0.3.weight"].shape) == (64, 144, 3, 1, 1)
    assert tuple(state["fc.0.weight"].shape) == (128, 512)
    assert tuple(state["fc.2.weight"].shape) == (1, 128)
    assert not any(k.startswith("net.model.fc") or "avgpool" in k for k in state)
    # Time is kept through all strided blocks; space shrinks 16x (stem 2x, layer2..4 2x each).
    features = model.net["model"].eval()(torch.randn(1, 3, 3, 32, 32))
    assert tuple(features.shape) == (1, 512, 3, 2, 2)
    assert tuple(model(torch.randn(1, 3, 3, 32, 32)).shape) == (1, 3)


@pytest.mark.parametrize("num_frames", [150, 7, 1])
def test_tiny_model_outputs_one_logit_per_frame(num_frames):
    model = tiny()
    logits = model(torch.randn(2, 3, num_frames, 32, 32))
    assert tuple(logits.shape) == (2, num_frames)
    assert torch.isfinite(logits).all()


def test_time_axis_is_kept_locally():
    model = tiny("clean")
    torch.manual_seed(1)
    x = torch.randn(1, 3, 40, 32, 32)
    changed = x.clone()
    changed[:, :, 20] += 3.0
    before, after = model(x), model(changed)
    # Temporal reach: stem 1 frame + 4 blocks x 2 temporal convs x 1 frame = 9 frames each side.
    far = torch.cat([torch.arange(0, 11), torch.arange(30, 40)])
    torch.testing.assert_close(after[:, far], before[:, far], rtol=0, atol=1e-6)
    assert (after[:, 20] - before[:, 20]).abs().item() > 1e-4


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="preprocessing"):
        OnsetDetector(**TINY, preprocessing="raw")
    with pytest.raises(ValueError, match="crop_size"):
        OnsetDetector(**TINY, resize_size=100, crop_size=112)
    with pytest.raises(ValueError, match="block_channels"):
        OnsetDetector(block_channels=(8, 8), layers=(1, 1, 1))
    with pytest.raises(ValueError, match="pixel_values"):
        tiny()(torch.randn(1, 3, 32, 32))


# -- preprocessing ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["release", "clean"])
def test_preprocess_constant_frame(mode):
    model = OnsetDetector(**TINY, preprocessing=mode)
    colour = np.array([200, 100, 30], dtype=np.uint8)
    frames = np.broadcast_to(colour, (5, 90, 160, 3)).copy()
    pixels = model.preprocess(frames)
    assert tuple(pixels.shape) == (1, 3, 5, 112, 112) and pixels.dtype == torch.float32
    scale = 255.0 if mode == "clean" else 1.0
    for channel in range(3):
        expected = (colour[channel] / scale - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(
            pixels[0, channel], torch.full((5, 112, 112), float(expected)), rtol=1e-5, atol=1e-4
        )


def test_release_preprocessing_skips_division_by_255():
    frames = random_frames(2, 3, 50, 70)  # (B, T, H, W, 3)
    release = OnsetDetector(**SMALL, preprocessing="release").preprocess(frames)
    clean = OnsetDetector(**SMALL, preprocessing="clean").preprocess(torch.from_numpy(frames))
    assert release.shape == clean.shape == (2, 3, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(release * std + mean, (clean * std + mean) * 255.0, rtol=1e-5, atol=1e-3)
    assert release.max() > 100.0 and clean.abs().max() < 3.0


def test_preprocess_matches_squash_resize_and_center_crop():
    frames = random_frames(1, 60, 90)
    model = OnsetDetector(**SMALL, preprocessing="clean")
    pixels = model.preprocess(frames)
    # An independent reference: resize the whole clip at once, crop 4 pixels from each side.
    image = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    resized = torch.nn.functional.interpolate(image, size=(40, 40), mode="bilinear", antialias=True)
    expected = (resized[:, :, 4:36, 4:36] - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels[0].permute(1, 0, 2, 3), expected)


def test_preprocess_accepts_reversed_channel_views():
    model = OnsetDetector(**SMALL)
    bgr = random_frames(3, 20, 30)
    torch.testing.assert_close(model.preprocess(bgr[..., ::-1]), model.preprocess(bgr[..., ::-1].copy()))


def test_preprocess_rejects_bad_frames():
    model = OnsetDetector(**TINY)
    with pytest.raises(TypeError, match="uint8"):
        model.preprocess(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.preprocess(np.zeros((2, 8, 8), dtype=np.uint8))


# -- BatchNorm behaviour ---------------------------------------------------------------------


def test_release_mode_uses_batch_statistics_without_mutating_buffers():
    model = tiny("release")
    state = buffers(model)
    x = torch.randn(1, 3, 6, 32, 32)
    eval_out = model(x)
    train_out = model.train()(x)
    model.eval()
    for key, value in buffers(model).items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    torch.testing.assert_close(eval_out, train_out)
    # Same as an ordinary model that was never put in eval mode (the released code's behaviour).
    reference = tiny("clean").train()
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(eval_out, reference(x))


def test_release_detect_runs_each_clip_alone():
    model = tiny("release")
    state = buffers(model)
    frames = random_frames(2, 6, 48, 48)
    together = model.detect(frames)
    assert tuple(together.shape) == (2, 6) and together.dtype == torch.float32
    assert ((together >= 0) & (together <= 1)).all()
    torch.testing.assert_close(together[0:1], model.detect(frames[0]))
    torch.testing.assert_close(together[1:2], model.detect(frames[1]))
    for key, value in buffers(model).items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    # Whereas one forward over both clips mixes their statistics.
    mixed = torch.sigmoid(model(model.preprocess(frames)))
    assert not torch.allclose(mixed, together, atol=1e-6)
    assert torch.equal(model.onsets(frames), together >= 0.5)


def test_clean_mode_eval_uses_running_statistics():
    model = tiny("clean")
    x = torch.randn(2, 3, 5, 32, 32)
    alone = model(x[:1])
    torch.testing.assert_close(model(x)[:1], alone)  # independent of the batch in eval mode
    with torch.no_grad():
        model.net["model"].stem[1].running_mean += 0.5
    assert not torch.allclose(model(x[:1]), alone)
    torch.testing.assert_close(
        model.detect(random_frames(2, 5, 40, 40))[:1], model.detect(random_frames(5, 40, 40))
    )
    # Train mode is ordinary BatchNorm: batch statistics, running statistics updated.
    tracked = model.net["model"].stem[1].num_batches_tracked.item()
    model.train()(x)
    assert model.net["model"].stem[1].num_batches_tracked.item() == tracked + 1


# -- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapped", [True, False])
def test_from_release_loads_wrapped_and_bare_files(tmp_path, wrapped):
    source = tiny("release")
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / "timestamp_detector.pth.tar"
    torch.save(
        {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3} if wrapped else state, path
    )
    loaded = OnsetDetector.from_release(path, **SMALL)
    assert loaded.config.preprocessing == "release" and not loaded.training
    frames = random_frames(2, 5, 48, 48)
    # Equal weights in a re-created module: kernels may round differently on other CPUs (~6e-8 seen).
    torch.testing.assert_close(loaded.detect(frames), source.detect(frames), rtol=0, atol=1e-6)
    clean = OnsetDetector.from_release(path, preprocessing="clean", **SMALL)
    torch.testing.assert_close(clean(torch.ones(1, 3, 2, 32, 32)), tiny("clean")(torch.ones(1, 3, 2, 32, 32)))


def test_from_release_casts_dtype(tmp_path):
    path = tmp_path / "detector.pth.tar"
    torch.save({"state_dict": tiny().state_dict(), "epoch": 1}, path)
    model = OnsetDetector.from_release(path, torch_dtype=torch.bfloat16, **SMALL)
    assert model.dtype == torch.bfloat16
    assert model.detect(random_frames(4, 40, 40)).dtype == torch.float32


@pytest.mark.parametrize(
    "change, key",
    [
        ("missing", "fc.2.bias"),
        ("extra", "net.model.layer5.0.conv1.0.0.weight"),
        ("shape", "net.model.layer2.0.conv1.0.3.weight"),
    ],
)
def test_from_release_rejects_mismatched_files(tmp_path, change, key):
    state = dict(tiny().state_dict())
    if change == "missing":
        del state[key]
    elif change == "extra":
        state[key] = torch.zeros(1)
    else:
        state[key] = torch.zeros(3, 3, 3, 1, 1)
    path = tmp_path / f"broken_{change}.pth.tar"
    torch.save({"state_dict": state, "epoch": 3}, path)
    with pytest.raises(CheckpointError) as info:
        OnsetDetector.from_release(path, **SMALL)
    assert path.name in str(info.value) and key in str(info.value)


def test_from_release_reads_widths_from_the_file(tmp_path):
    source = tiny("release")
    path = tmp_path / "tiny.pth.tar"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)
    loaded = OnsetDetector.from_release(path)
    assert list(loaded.config.block_channels) == [8, 8, 16, 16] and list(loaded.config.layers) == [1, 1, 1, 1]
    assert loaded.config.preprocessing == "release"
    assert architecture_from_state_dict(OnsetDetector().state_dict()) == {
        "block_channels": (64, 128, 256, 512),
        "layers": (2, 2, 2, 2),
        "stem_mid_channels": 45,
        "stem_channels": 64,
        "head_hidden": 128,
    }
    # Overrides that contradict the file are still an error, not a silent fix-up.
    with pytest.raises(CheckpointError, match="shape mismatches"):
        OnsetDetector.from_release(path, head_hidden=32)


def test_save_pretrained_round_trip(tmp_path):
    model = tiny("clean", threshold=0.3)
    model.save_pretrained(tmp_path / "detector")
    assert (tmp_path / "detector" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = OnsetDetector.from_pretrained(tmp_path / "detector")
    assert loaded.config.preprocessing == "clean" and loaded.config.threshold == 0.3
    assert list(loaded.config.block_channels) == [8, 8, 16, 16] and list(loaded.config.layers) == [1, 1, 1, 1]
    assert loaded.config.crop_size == 32
    frames = random_frames(2, 5, 48, 48)
    # The loaded weights are equal bit for bit but sit at other addresses (safetensors is mapped, not
    # copied), so some CPUs pick other kernels: ~6e-8 apart on an AVX2-only EPYC; a wrong weight is >1e-5.
    torch.testing.assert_close(loaded.detect(frames), model.detect(frames), rtol=0, atol=1e-6)
    release = tiny("release")
    release.save_pretrained(tmp_path / "release")
    reloaded = OnsetDetector.from_pretrained(tmp_path / "release")
    assert reloaded.config.preprocessing == "release"
    torch.testing.assert_close(reloaded.detect(frames), release.detect(frames), rtol=0, atol=1e-6)
