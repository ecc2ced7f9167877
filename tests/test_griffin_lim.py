"""Griffin-Lim vocoder: the HiFi-GAN forward contract, determinism, saving, reconstruction quality
of a harmonic test signal from its own log-mel, and use inside the pipeline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from foleycrafter.models import GriffinLimVocoder, HifiGanVocoder
from foleycrafter.spectrogram import MelSpectrogram

RATE = 16000
HOP = 160


def harmonic_signal(seconds: float = 1.5) -> torch.Tensor:
    """Three decaying notes (four partials each) starting at 0.1, 0.5 and 0.9 s: (samples,) float32."""
    t = torch.arange(int(seconds * RATE), dtype=torch.float64) / RATE
    signal = torch.zeros_like(t)
    for onset, fundamental in ((0.1, 220.0), (0.5, 330.0), (0.9, 523.25)):
        envelope = torch.where(t >= onset, torch.exp(-(t - onset) * 4.0), torch.zeros_like(t))
        for partial, amplitude in ((1, 0.5), (2, 0.25), (3, 0.12), (5, 0.06)):
            signal += (
                0.4 * amplitude * envelope * torch.sin(2 * math.pi * fundamental * partial * (t - onset))
            )
    return signal.float()


def spectral_convergence(reference: torch.Tensor, generated: torch.Tensor) -> float:
    """||S_ref - S_gen||_F / ||S_ref||_F on 1024-point STFT magnitudes (hop 256)."""
    window = torch.hann_window(1024)
    spectra = [
        torch.stft(x.float(), 1024, 256, window=window, return_complex=True).abs()
        for x in (reference, generated)
    ]
    return float(torch.linalg.vector_norm(spectra[0] - spectra[1]) / torch.linalg.vector_norm(spectra[0]))


@pytest.fixture(scope="module")
def harmonic():
    signal = harmonic_signal()
    with torch.no_grad():
        return signal, MelSpectrogram()(signal)


def test_same_contract_as_hifigan():
    vocoder = GriffinLimVocoder(n_iter=2)
    log_mel = torch.randn(2, 256, 13, generator=torch.Generator().manual_seed(0)) - 5
    out = vocoder(log_mel)
    assert out.shape == (2, 13 * HOP) and out.dtype == torch.float32
    assert vocoder(log_mel[0]).shape == (1, 13 * HOP)
    assert out.abs().max() <= 1 and torch.isfinite(out).all()
    # The keys the pipeline reads, with the same meaning as the HiFi-GAN's.
    hifigan = HifiGanVocoder(
        upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),)
    )
    for key in ("sampling_rate", "hop_size", "num_mels", "n_fft", "win_size", "fmin", "fmax"):
        assert vocoder.config[key] == hifigan.config[key], key
    assert vocoder.sample_rate == RATE and vocoder.hop_length == HOP
    # Device and dtype follow the input; half precision is computed in float32 and cast back.
    assert vocoder(log_mel.double()).dtype == torch.float64
    assert vocoder(log_mel.half()).dtype == torch.float16
    with pytest.raises(ValueError, match="256 mel bands"):
        vocoder(torch.zeros(1, 80, 20))
    with pytest.raises(ValueError, match="too short"):
        vocoder(torch.zeros(1, 256, 5))


def test_deterministic(harmonic):
    _, log_mel = harmonic
    torch.manual_seed(1)
    first = GriffinLimVocoder(n_iter=4)(log_mel)
    torch.manual_seed(2)  # the global RNG does not matter
    second = GriffinLimVocoder(n_iter=4)(log_mel)
    assert torch.equal(first, second)


def test_an_item_renders_alike_alone_and_in_a_batch(harmonic):
    log_mel = harmonic[1].reshape(256, -1)
    vocoder = GriffinLimVocoder(n_iter=4)
    other = torch.flip(log_mel, dims=[-1])
    alone = vocoder(log_mel[None])[0]
    assert torch.allclose(vocoder(torch.stack([other, log_mel]))[1], alone, atol=1e-6)
    assert torch.allclose(vocoder(torch.stack([log_mel, other]))[0], alone, atol=1e-6)


def test_mel_inversion_is_non_negative_and_consistent(harmonic):
    _, log_mel = harmonic
    vocoder = GriffinLimVocoder()
    magnitude = vocoder.mel_to_magnitude(log_mel)
    assert magnitude.shape == (1, 1025, log_mel.shape[-1]) and magnitude.min() >= 0
    mel = log_mel.exp()
    residual = torch.linalg.vector_norm(vocoder.mel_basis @ magnitude - mel) / torch.linalg.vector_norm(mel)
    assert residual < 0.01


def test_reconstructs_a_harmonic_signal(harmonic):
    signal, log_mel = harmonic
    scores = {n: spectral_convergence(signal, GriffinLimVocoder(n_iter=n)(log_mel)[0]) for n in (0, 4, 32)}
    # Measured: 0.78 (0 iterations: random phase), 0.22 (4), 0.06 (32).
    assert scores[32] < 0.3, scores
    assert scores[32] < scores[4] < scores[0], scores
    # The rendering is aligned with the mel columns: its own log-mel matches the input's.
    rebuilt = MelSpectrogram()(GriffinLimVocoder()(log_mel)[0])
    loud = log_mel > log_mel.max() - 6  # bands within 6 nepers (52 dB) of the peak
    assert (rebuilt - log_mel)[loud].abs().mean() < 0.3


def test_onset_stays_on_its_column():
    """A burst at 0.5 s is rendered starting at 0.5 s, not a column early or late."""
    t = torch.arange(RATE, dtype=torch.float64) / RATE
    burst = torch.where(
        t >= 0.5, torch.exp(-(t - 0.5) * 30.0) * torch.sin(2 * math.pi * 440 * t), 0 * t
    ).float()
    out = GriffinLimVocoder()(MelSpectrogram()(burst))[0]
    energy = out.reshape(-1, HOP).square().sum(1)  # per 10 ms hop
    first_loud = int(torch.nonzero(energy > 0.1 * energy.max())[0])
    assert abs(first_loud - 50) <= 1, first_loud


def test_save_and_load_round_trip(tmp_path, harmonic):
    _, log_mel = harmonic
    vocoder = GriffinLimVocoder(n_iter=3, momentum=0.9, power=1.2)
    vocoder.save_pretrained(tmp_path / "vocoder")
    assert (tmp_path / "vocoder" / "diffusion_pytorch_model.safetensors").is_file()
    config = json.loads((tmp_path / "vocoder" / "config.json").read_text())
    assert config["_class_name"] == "GriffinLimVocoder" and config["n_iter"] == 3
    loaded = GriffinLimVocoder.from_pretrained(tmp_path / "vocoder")
    assert loaded.config.momentum == 0.9 and loaded.config.power == 1.2
    assert torch.equal(loaded(log_mel), vocoder(log_mel))


def test_works_in_the_pipeline(release_pipe, clip, tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    pipe = FoleyCrafterPipeline(**{**release_pipe.components, "vocoder": GriffinLimVocoder(n_iter=4)})
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt="", video=clip, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.sample_rate == RATE
    assert out.audios[0].shape == (round(clip.duration * RATE),) and np.isfinite(out.audios[0]).all()
    # A native save records the vocoder's class, and loading brings the Griffin-Lim vocoder back.
    pipe.save_pretrained(tmp_path / "native")
    loaded = FoleyCrafterPipeline.from_pretrained(tmp_path / "native")
    assert isinstance(loaded.vocoder, GriffinLimVocoder) and loaded.vocoder.config.n_iter == 4
