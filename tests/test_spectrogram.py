"""The spectrogram must match Auffusion's convention exactly: checked against librosa/numpy."""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from foleycrafter.spectrogram import (
    LOG_MEL_MAX,
    LOG_MEL_MIN,
    MelSpectrogram,
    image_to_log_mel,
    log_mel_to_image,
    mel_filterbank,
)

AUDIO_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "audio"
SR, N_FFT, HOP, WIN, N_MELS = 16000, 2048, 160, 1024, 256


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
    """Auffusion's log-mel computed independently with numpy + librosa (float64)."""
    waveform = np.asarray(waveform, dtype=np.float64)
    pad = (N_FFT - HOP) // 2
    padded = np.pad(waveform, (pad, pad), mode="reflect")
    spectrum = librosa.stft(padded, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window="hann", center=False)
    magnitude = np.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    basis = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0, fmax=8000, dtype=np.float64)
    return np.log(np.maximum(basis @ magnitude, 1e-5))


def sine(freq_hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


@pytest.mark.filterwarnings("ignore::UserWarning")  # librosa warns about empty low bands at 256 mels
@pytest.mark.parametrize(
    "sample_rate, n_fft, n_mels, fmin, fmax",
    [(16000, 2048, 256, 0.0, 8000.0), (22050, 1024, 80, 30.0, 11000.0), (16000, 2048, 256, 0.0, None)],
)
def test_filterbank_matches_librosa(sample_rate, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == (n_mels, n_fft // 2 + 1)
    assert np.abs(ours.numpy() - theirs).max() < 1e-6


def test_filterbank_rejects_bad_range():
    with pytest.raises(ValueError, match="fmin < fmax"):
        mel_filterbank(16000, 2048, 256, fmin=9000.0, fmax=8000.0)


def assert_matches_reference(ours: np.ndarray, reference: np.ndarray, exact: bool) -> None:
    """float64 inputs must match the float64 reference to 1e-4 everywhere (in practice ~1e-10).

    float32 inputs carry the FFT's rounding noise, about 1e-7 of the frame's loudest bins, which
    is large in log units for bins 60 dB or more below them (the side lobes of a pure tone). Those
    bins are held to a looser bound; every band within 60 dB of its frame's peak must match to 1e-4.
    """
    assert ours.shape == reference.shape
    error = np.abs(ours - reference)
    if exact:
        assert error.max() < 1e-4
        return
    audible = reference > reference.max(axis=0, keepdims=True) - math.log(1e3)
    assert audible.mean() > 0.1  # a pure tone leaves few bands within 60 dB; noise leaves nearly all
    assert error[audible].max() < 1e-4
    assert error.max() < 0.05


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mel_spectrogram_matches_reference_on_noise_and_sine(dtype):
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal(SR).clip(-3, 3) / 3).astype(np.float32)
    tone = (sine(440.0, 1.0) + sine(3000.0, 1.0, 0.2)).astype(np.float32)
    mel = MelSpectrogram()
    ours = mel(torch.from_numpy(np.stack([noise, tone])).to(dtype))
    assert ours.dtype == dtype
    assert ours.shape == (2, N_MELS, SR // HOP)
    for got, waveform in zip(ours.numpy(), (noise, tone)):
        assert_matches_reference(got, reference_log_mel(waveform), exact=dtype == torch.float64)


def test_shapes_batch_and_unbatched():
    mel = MelSpectrogram()
    batch = torch.rand(3, 16123) * 2 - 1
    out = mel(batch)
    assert out.shape == (3, N_MELS, 16123 // HOP)
    single = mel(batch[1])
    assert single.shape == (1, N_MELS, 16123 // HOP)
    assert torch.allclose(single[0], out[1], atol=1e-5)
    assert out.min() >= LOG_MEL_MIN - 1e-6


def test_buffers_not_in_state_dict_and_follow_device():
    mel = MelSpectrogram()
    assert mel.state_dict() == {}
    assert {name for name, _ in mel.named_buffers()} == {"mel_basis", "window"}
    assert tuple(mel.mel_basis.shape) == (N_MELS, N_FFT // 2 + 1)
    assert np.abs(mel.mel_basis.numpy() - mel_filterbank().numpy()).max() < 1e-8


def test_from_vocoder_config():
    config = {
        "sampling_rate": 16000,
        "n_fft": 2048,
        "hop_size": 160,
        "win_size": 1024,
        "num_mels": 256,
        "fmin": 0,
        "fmax": None,
        "batch_size": 16,
    }
    mel = MelSpectrogram.from_vocoder_config(config)
    assert (mel.sample_rate, mel.n_fft, mel.hop_length, mel.win_length, mel.n_mels) == (
        16000,
        2048,
        160,
        1024,
        256,
    )
    assert mel.fmax == 8000.0
    assert torch.equal(mel.mel_basis, MelSpectrogram().mel_basis)


def test_wrong_ranks_and_lengths_raise():
    mel = MelSpectrogram()
    with pytest.raises(ValueError, match="samples"):
        mel(torch.zeros(1, 2, 16000))
    with pytest.raises(ValueError, match="too short"):
        mel(torch.zeros(500))
    with pytest.raises(ValueError, match="n_mels"):
        log_mel_to_image(torch.zeros(5))
    with pytest.raises(ValueError, match="n_mels"):
        image_to_log_mel(torch.zeros(2, 256, 10, 1, 1))


def test_image_round_trip_and_range():
    torch.manual_seed(0)
    log_mel = torch.empty(2, N_MELS, 50, dtype=torch.float64).uniform_(LOG_MEL_MIN, LOG_MEL_MAX)
    image = log_mel_to_image(log_mel)
    assert image.shape == (2, 3, N_MELS, 50)
    assert image.min() >= 0 and image.max() <= 1
    assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 0], image[:, 2])
    assert (image_to_log_mel(image) - log_mel).abs().max() < 1e-6
    # float32 resolves [0, 1] to ~6e-8, i.e. ~1e-6 in log-mel units (range 16.8): allow a few ulps.
    image32 = log_mel_to_image(log_mel.float())
    assert image32.dtype == torch.float32
    assert (image_to_log_mel(image32).double() - log_mel).abs().max() < 4e-6
    # The mapping itself: linear, LOG_MEL_MIN -> 0 and LOG_MEL_MAX -> 1, low band at the bottom row.
    expected = (log_mel[0, 0] - LOG_MEL_MIN) / (LOG_MEL_MAX - LOG_MEL_MIN)
    assert (image[0, 0, -1] - expected).abs().max() < 1e-12
    # Out-of-range values clamp to black / white.
    extreme = torch.tensor([[-50.0, 50.0]])
    assert torch.equal(log_mel_to_image(extreme)[0, :, 0], torch.tensor([[0.0, 1.0]] * 3))
    assert torch.allclose(
        image_to_log_mel(log_mel_to_image(extreme))[0, 0], torch.tensor([LOG_MEL_MIN, LOG_MEL_MAX])
    )
    # Unbatched inputs are accepted.
    assert log_mel_to_image(log_mel[0]).shape == (1, 3, N_MELS, 50)
    assert image_to_log_mel(image[0]).shape == (1, N_MELS, 50)
    assert math.isclose(LOG_MEL_MIN, math.log(1e-5)) and math.isclose(LOG_MEL_MAX, math.log(200))


def test_low_frequency_sine_lights_bottom_rows():
    image = log_mel_to_image(MelSpectrogram()(torch.from_numpy(sine(200.0, 1.0)).float()))
    row_energy = image[0, 0].mean(dim=1)
    brightest = int(row_energy.argmax())
    assert brightest >= N_MELS - 30  # 200 Hz is mel band ~13 of 256, i.e. near the bottom row
    assert row_energy[-30:].mean() > row_energy[:100].mean() + 0.2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_real_clips_match_reference(dtype):
    soundfile = pytest.importorskip("soundfile")
    clips = sorted(AUDIO_DIR.glob("*.wav")) if AUDIO_DIR.is_dir() else []
    if not clips:
        pytest.skip(f"no test clips in {AUDIO_DIR}")
    mel = MelSpectrogram()
    for clip in clips:
        audio, sample_rate = soundfile.read(clip, dtype="float32", always_2d=True)
        assert sample_rate == SR
        audio = audio.mean(axis=1)
        ours = mel(torch.from_numpy(audio).to(dtype))[0].numpy()
        expected = reference_log_mel(audio)
        assert ours.shape == expected.shape == (N_MELS, len(audio) // HOP)
        assert_matches_reference(ours, expected, exact=dtype == torch.float64)
