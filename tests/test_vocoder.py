"""HiFi-GAN vocoder: shapes, release loading (weight-norm folding, strict checks, safe unpickling)
and native round trips, on tiny same-layout models."""

from __future__ import annotations

import collections
import json

import pytest
import torch

from foleycrafter.models.vocoder import HifiGanVocoder, fold_weight_norm, is_release_folder
from foleycrafter.release import CheckpointError

TINY = dict(
    num_mels=256,
    upsample_rates=(5, 4, 4, 2),
    upsample_kernel_sizes=(11, 8, 8, 4),
    upsample_initial_channel=16,
    resblock="1",
    resblock_kernel_sizes=(3, 7),
    resblock_dilation_sizes=((1, 3), (1, 3)),
)
# Keys of the released HiFi-GAN training config that do not describe the network.
TRAINING_KEYS = dict(
    batch_size=16,
    learning_rate=0.0002,
    adam_b1=0.8,
    adam_b2=0.99,
    lr_decay=0.999,
    seed=1234,
    segment_size=5120,
    num_freq=1025,
    fmax_for_loss=None,
    num_workers=4,
    num_gpus=0,
    dist_config={"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1},
)
RELEASE_AUDIO = dict(sampling_rate=16000, hop_size=160, n_fft=2048, win_size=1024, fmin=0, fmax=None)


class NotATensor:
    """A custom class: unpickling it would need arbitrary code."""

    def __init__(self, value=1):
        self.value = value


class SneakyDict(collections.OrderedDict):
    """An OrderedDict subclass of our own: not a plain container."""


def tiny_vocoder(**overrides) -> HifiGanVocoder:
    torch.manual_seed(0)
    return HifiGanVocoder(**{**TINY, **overrides}).eval()


def log_mel(batch: int = 2, frames: int = 12) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, 256, frames, generator=generator) * 2 - 5


def weight_norm_state_dict(plain: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """A release-style state dict (weight_g / weight_v per conv) and the plain weights it means."""
    generator = torch.Generator().manual_seed(2)
    release, expected = {}, {}
    for key, value in plain.items():
        if not key.endswith(".weight"):
            release[key] = torch.randn(value.shape, generator=generator)
            expected[key] = release[key]
            continue
        name = key[: -len(".weight")]
        v = torch.randn(value.shape, generator=generator)
        g = torch.rand((value.shape[0], 1, 1), generator=generator) + 0.5
        release[name + ".weight_v"], release[name + ".weight_g"] = v, g
        # Norm over every dim but 0 (torch weight_norm's default dim=0, for Conv1d and ConvTranspose1d).
        norm = v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
        expected[key] = g * v / norm
    return release, expected


def write_release(folder, state_dict, wrap=True, config_overrides=None):
    folder.mkdir(parents=True, exist_ok=True)
    config = {**TINY, **RELEASE_AUDIO, **TRAINING_KEYS, **(config_overrides or {})}
    config["upsample_rates"] = list(config["upsample_rates"])
    (folder / "config.json").write_text(json.dumps(config))
    torch.save({"generator": state_dict} if wrap else state_dict, folder / "vocoder.pt")
    return folder


@pytest.fixture()
def release(tmp_path):
    reference = tiny_vocoder()
    release_sd, expected = weight_norm_state_dict(reference.state_dict())
    folder = write_release(tmp_path / "vocoder", release_sd)
    return folder, release_sd, expected


def test_shapes_range_and_parameter_names():
    model = tiny_vocoder()
    mel = log_mel(batch=2, frames=12)
    with torch.no_grad():
        audio = model(mel)
        single = model(mel[1])
    assert audio.shape == (2, 12 * 160)
    assert audio.dtype == torch.float32
    assert audio.abs().max() <= 1.0 and audio.std() > 0
    assert single.shape == (1, 12 * 160)
    assert torch.allclose(single[0], audio[1], atol=1e-6)
    assert (model.hop_length, model.sample_rate) == (160, 16000)
    names = set(model.state_dict())
    for name in (
        "conv_pre.weight",
        "ups.3.weight",
        "resblocks.7.convs1.1.weight",
        "resblocks.0.convs2.0.bias",
    ):
        assert name in names
    assert len(model.resblocks) == 4 * 2
    assert not any("weight_g" in n or "weight_v" in n for n in names)


def test_bad_inputs_and_configs_raise():
    model = tiny_vocoder()
    with pytest.raises(ValueError, match="num_mels"):
        model(torch.zeros(2, 80, 10))
    with pytest.raises(ValueError, match="num_mels"):
        model(torch.zeros(10))
    with pytest.raises(ValueError, match="hop_size"):
        HifiGanVocoder(**{**TINY, "upsample_rates": (5, 4, 4, 4)})
    with pytest.raises(ValueError, match="resblock"):
        HifiGanVocoder(**{**TINY, "resblock": "3"})


def test_release_defaults_match_released_size():
    # The released generator has about 13.7 M parameters (54.8 MB of float32 with weight norm).
    assert sum(p.numel() for p in HifiGanVocoder().parameters()) == 13_672_065


def test_from_release_folds_weight_norm(release):
    folder, release_sd, expected = release
    assert is_release_folder(folder)
    model = HifiGanVocoder.from_release(folder)
    assert not model.training
    assert model.config.upsample_initial_channel == 16 and model.config.sampling_rate == 16000
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=1e-6, atol=1e-7)
    # ... and the same as torch's own weight norm computes from the pair.
    torch.testing.assert_close(
        loaded["ups.0.weight"],
        torch._weight_norm(release_sd["ups.0.weight_v"], release_sd["ups.0.weight_g"], 0),
        rtol=1e-6,
        atol=1e-7,
    )
    # Outputs equal a model holding the expected plain weights.
    reference = tiny_vocoder()
    reference.load_state_dict(expected)
    with torch.no_grad():
        torch.testing.assert_close(model(log_mel()), reference(log_mel()), rtol=1e-5, atol=1e-6)


def test_from_release_bare_state_dict_and_dtype(tmp_path):
    release_sd, expected = weight_norm_state_dict(tiny_vocoder().state_dict())
    folder = write_release(tmp_path / "bare", release_sd, wrap=False)
    model = HifiGanVocoder.from_release(folder, torch_dtype=torch.float64)
    assert model.conv_pre.weight.dtype == torch.float64
    torch.testing.assert_close(
        model.conv_pre.weight, expected["conv_pre.weight"].double(), rtol=1e-6, atol=1e-7
    )
    assert model(log_mel().float()).dtype == torch.float64


def test_load_dispatches_on_layout(release, tmp_path):
    folder, _, _ = release
    from_release = HifiGanVocoder.load(folder)
    native = tmp_path / "native"
    from_release.save_pretrained(native)
    assert not is_release_folder(native)
    reloaded = HifiGanVocoder.load(native)
    with torch.no_grad():
        # Equal weights at other addresses (mapped from safetensors): other CPUs may round differently.
        torch.testing.assert_close(reloaded(log_mel()), from_release(log_mel()), rtol=0, atol=5e-7)


def test_native_round_trip(tmp_path):
    model = tiny_vocoder(resblock="2", resblock_dilation_sizes=((1, 2), (2, 6)))
    model.save_pretrained(tmp_path / "native")
    config = json.loads((tmp_path / "native" / "config.json").read_text())
    assert config["upsample_rates"] == [5, 4, 4, 2]  # tuples are saved as lists
    assert (tmp_path / "native" / "diffusion_pytorch_model.safetensors").is_file()
    reloaded = HifiGanVocoder.from_pretrained(tmp_path / "native")
    assert reloaded.config.resblock == "2"
    with torch.no_grad():
        torch.testing.assert_close(reloaded(log_mel()), model(log_mel()), rtol=0, atol=5e-7)


def test_resblock_2():
    model = tiny_vocoder(resblock="2", resblock_dilation_sizes=((1, 2), (2, 6)))
    names = set(model.state_dict())
    assert "resblocks.0.convs.1.weight" in names
    assert not any("convs1" in n for n in names)
    with torch.no_grad():
        audio = model(log_mel(batch=1, frames=7))
    assert audio.shape == (1, 7 * 160) and audio.abs().max() <= 1


@pytest.mark.parametrize("frames", [1, 5, 9])
def test_odd_kernel_minus_rate_gives_exact_lengths(frames):
    model = tiny_vocoder(upsample_rates=(5, 4, 2, 4), upsample_kernel_sizes=(10, 9, 5, 8))
    assert [up.output_padding[0] for up in model.ups] == [1, 1, 1, 0]
    x = torch.randn(1, 16, frames)
    for up in model.ups:
        y = up(x)
        assert y.shape[-1] == x.shape[-1] * up.stride[0]
        x = torch.randn(1, up.out_channels, y.shape[-1])
    with torch.no_grad():
        assert model(log_mel(batch=1, frames=frames)).shape == (1, frames * 160)


def test_missing_key_raises(tmp_path, release):
    _, release_sd, _ = release
    broken = dict(release_sd)
    del broken["conv_post.bias"]
    folder = write_release(tmp_path / "missing", broken)
    with pytest.raises(CheckpointError, match=r"vocoder\.pt.*conv_post\.bias"):
        HifiGanVocoder.from_release(folder)


def test_unexpected_key_raises(tmp_path, release):
    _, release_sd, _ = release
    folder = write_release(tmp_path / "unexpected", {**release_sd, "mpd.extra.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"vocoder\.pt.*mpd\.extra\.weight"):
        HifiGanVocoder.from_release(folder)


def test_wrong_shape_raises(tmp_path, release):
    _, release_sd, _ = release
    broken = dict(release_sd)
    broken["conv_pre.bias"] = torch.zeros(17)
    folder = write_release(tmp_path / "shape", broken)
    with pytest.raises(CheckpointError, match=r"vocoder\.pt.*conv_pre\.bias"):
        HifiGanVocoder.from_release(folder)


def test_config_must_match_weights(tmp_path, release):
    _, release_sd, _ = release
    folder = write_release(tmp_path / "config", release_sd, config_overrides={"upsample_initial_channel": 32})
    with pytest.raises(CheckpointError, match="shape mismatches"):
        HifiGanVocoder.from_release(folder)


def test_bad_gain_shape_raises():
    with pytest.raises(CheckpointError, match=r"ups\.0\.weight_g"):
        fold_weight_norm(
            {"ups.0.weight_g": torch.ones(3, 1, 1), "ups.0.weight_v": torch.ones(4, 2, 2)}, "x.pt"
        )


@pytest.mark.parametrize("payload", ["custom_class", "ordered_dict_subclass"])
def test_unsafe_pickle_refused(tmp_path, release, payload):
    folder, release_sd, _ = release
    if payload == "custom_class":
        obj = {"generator": release_sd, "extra": NotATensor()}
    else:
        obj = {"generator": SneakyDict(release_sd)}
    torch.save(obj, folder / "vocoder.pt")
    with pytest.raises(CheckpointError, match=r"Refusing to load .*vocoder\.pt"):
        HifiGanVocoder.from_release(folder)


def test_missing_files_raise(tmp_path, release):
    folder, _, _ = release
    (folder / "vocoder.pt").unlink()
    assert not is_release_folder(folder)
    with pytest.raises(FileNotFoundError, match=r"vocoder\.pt not found"):
        HifiGanVocoder.from_release(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        HifiGanVocoder.from_release(folder)
