"""Waveform <-> log-mel <-> mel image, in the Auffusion convention.

The diffusion model never sees audio: it denoises a picture of a log-mel spectrogram, and the
HiFi-GAN vocoder turns log-mel back into audio. Both ends must agree on the exact spectrogram
the released weights were trained with (STFT padding, window, mel scale and normalization, log
floor, image value range and orientation), otherwise the models silently receive inputs they
were never trained on. This module is the single definition of that convention, written in torch
so it runs batched on whatever device and dtype the caller uses.

Convention (see ``docs/formats.md``, "Spectrogram convention"): 16 kHz mono audio; STFT with
n_fft 2048, hop 160 samples, a periodic Hann window of 1024 samples, no centering, the signal
reflect-padded by (n_fft - hop) / 2 samples on each side; magnitude sqrt(re^2 + im^2 + 1e-9);
256 Slaney mel bands from 0 to 8000 Hz with Slaney area normalization; natural log of the mel
energies floored at 1e-5. One mel column per hop, i.e. 100 columns per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

LOG_MEL_MIN = math.log(1e-5)
"""Lowest log-mel value (the log of the mel floor); black in the mel image."""

LOG_MEL_MAX = math.log(200.0)
"""Log-mel value mapped to white in the mel image; louder values are clipped there."""

_MEL_FLOOR = 1e-5
_MAGNITUDE_EPS = 1e-9

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above it.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    # np.maximum keeps the log finite on the linear branch, whose values np.where discards anyway.
    logarithmic = (
        _SLANEY_BREAK_MEL + np.log(np.maximum(hz, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    )
    return np.where(hz >= _SLANEY_BREAK_HZ, logarithmic, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, logarithmic, linear)


def _mel_filterbank_float64(sample_rate, n_fft, n_mels, fmin, fmax) -> np.ndarray:
    if sample_rate <= 0 or n_fft <= 0 or n_mels <= 0:
        raise ValueError(
            f"sample_rate, n_fft and n_mels must be positive, got {sample_rate}, {n_fft} and {n_mels}."
        )
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax:
        raise ValueError(f"Mel filterbank needs 0 <= fmin < fmax, got fmin={fmin} Hz, fmax={fmax} Hz.")

    bin_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    # offsets[m, k]: how far edge m lies above FFT bin k (Hz).
    offsets = edges_hz[:, None] - bin_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights


def mel_filterbank(
    sample_rate: int = 16000,
    n_fft: int = 2048,
    n_mels: int = 256,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Slaney-scale, Slaney-normalized triangular mel filterbank.

    Band ``m`` is a triangle over FFT bin frequencies rising from mel point ``m`` to ``m + 1`` and
    falling to ``m + 2`` (``n_mels + 2`` points equally spaced on the Slaney mel scale between
    ``fmin`` and ``fmax``), scaled by ``2 / (f[m + 2] - f[m])`` so every band has the same area.
    This is the filterbank Auffusion's HiFi-GAN was trained with (the one ``librosa.filters.mel``
    builds with its defaults).

    Args:
        sample_rate: audio sample rate (Hz).
        n_fft: FFT size (samples); the filterbank covers its ``n_fft // 2 + 1`` frequency bins.
        n_mels: number of mel bands.
        fmin: lowest band edge (Hz).
        fmax: highest band edge (Hz); ``None`` means the Nyquist frequency ``sample_rate / 2``.

    Returns:
        float32 tensor of shape ``(n_mels, n_fft // 2 + 1)`` on the CPU: the weight of each FFT
        bin (magnitude, not power) in each mel band.
    """
    return torch.from_numpy(
        _mel_filterbank_float64(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float32)
    )


class MelSpectrogram(torch.nn.Module):
    """Waveform -> natural-log mel spectrogram, exactly as Auffusion's vocoder expects it.

    The filterbank and window are non-persistent float64 buffers: they follow ``.to(device)`` but
    are not part of any state dict (they are derived from the arguments, never trained), and each
    call casts them to the waveform's dtype. Casting the module itself to half precision would
    round them; there is no need to, since the computation follows the input's dtype anyway.

    Args:
        sample_rate: audio sample rate (Hz).
        n_fft: FFT size (samples).
        hop_length: samples between consecutive mel columns.
        win_length: length of the periodic Hann window (samples, <= n_fft; centered in the FFT).
        n_mels: number of mel bands.
        fmin, fmax: mel band range (Hz); ``fmax=None`` means ``sample_rate / 2``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 160,
        win_length: int = 1024,
        n_mels: int = 256,
        fmin: float = 0.0,
        fmax: float | None = None,
    ):
        super().__init__()
        if hop_length <= 0 or win_length <= 0:
            raise ValueError(
                f"hop_length and win_length must be positive, got {hop_length} and {win_length}."
            )
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) cannot exceed n_fft ({n_fft}).")
        if hop_length > n_fft:
            raise ValueError(f"hop_length ({hop_length}) cannot exceed n_fft ({n_fft}).")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = self.sample_rate / 2.0 if fmax is None else float(fmax)
        # Auffusion pads (n_fft - hop) / 2 on each side; when that is odd the extra sample goes to
        # the right so the column count stays exactly samples // hop_length.
        self.pad_left = (self.n_fft - self.hop_length) // 2
        self.pad_right = self.n_fft - self.hop_length - self.pad_left
        # Kept in float64 and cast per call: rounding the window to float32 leaks about 1e-7 of a
        # loud tone into quiet bins, which would cap the accuracy of float64 inputs.
        basis = _mel_filterbank_float64(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer(
            "window", torch.hann_window(self.win_length, periodic=True, dtype=torch.float64), persistent=False
        )

    @classmethod
    def from_vocoder_config(cls, config: Mapping) -> MelSpectrogram:
        """The spectrogram a HiFi-GAN vocoder expects, from its config (a mapping, or the vocoder).

        Reads the keys ``sampling_rate``, ``n_fft``, ``hop_size``, ``win_size``, ``num_mels``,
        ``fmin`` and ``fmax`` (``fmax`` None or absent means ``sampling_rate / 2``).
        """
        if not isinstance(config, Mapping) and isinstance(getattr(config, "config", None), Mapping):
            config = config.config
        if not isinstance(config, Mapping):
            raise TypeError(f"Expected a vocoder config mapping, got {type(config).__name__}.")
        required = ("sampling_rate", "n_fft", "hop_size", "win_size", "num_mels")
        missing = [key for key in required if key not in config]
        if missing:
            raise ValueError(f"Vocoder config lacks the spectrogram keys {missing}.")
        return cls(
            sample_rate=int(config["sampling_rate"]),
            n_fft=int(config["n_fft"]),
            hop_length=int(config["hop_size"]),
            win_length=int(config["win_size"]),
            n_mels=int(config["num_mels"]),
            fmin=float(config.get("fmin") or 0.0),
            fmax=None if config.get("fmax") is None else float(config["fmax"]),
        )

    def num_columns(self, num_samples: int) -> int:
        """Mel columns computed from ``num_samples`` audio samples (``num_samples // hop_length``)."""
        return num_samples // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram of a waveform.

        Args:
            waveform: float audio in [-1, 1] at ``sample_rate``, shape ``(samples,)`` or
                ``(B, samples)``; more than ``(n_fft - hop_length) / 2`` samples long.

        Returns:
            ``(B, n_mels, samples // hop_length)`` natural log of the mel magnitudes (floored at
            ln 1e-5), ``B = 1`` for an unbatched input; column ``t`` describes the audio around
            ``t * hop_length / sample_rate`` seconds. Same device as the input; same dtype except
            that half-precision inputs are computed and returned in float32 (the FFT needs it).
        """
        if not torch.is_tensor(waveform) or not waveform.is_floating_point():
            raise ValueError("MelSpectrogram expects a floating-point torch tensor waveform.")
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() != 2:
            raise ValueError(
                f"MelSpectrogram expects a waveform of shape (samples,) or (batch, samples), got "
                f"{tuple(waveform.shape)}; mix multichannel audio down to mono first."
            )
        num_samples = waveform.shape[-1]
        if num_samples <= max(self.pad_left, self.pad_right) or num_samples < self.hop_length:
            raise ValueError(
                f"Waveform of {num_samples} samples is too short: reflect padding needs more than "
                f"{max(self.pad_left, self.pad_right)} samples ({self.hop_length} per mel column)."
            )
        dtype = torch.promote_types(waveform.dtype, torch.float32)
        waveform = waveform.to(dtype)
        padded = F.pad(waveform.unsqueeze(1), (self.pad_left, self.pad_right), mode="reflect").squeeze(1)
        spectrum = torch.stft(
            padded,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window.to(device=waveform.device, dtype=dtype),
            center=False,
            return_complex=True,
        )
        # The epsilon keeps sqrt differentiable at zero; it is part of the trained convention.
        magnitude = torch.sqrt(spectrum.real.square() + spectrum.imag.square() + _MAGNITUDE_EPS)
        mel = torch.matmul(self.mel_basis.to(device=waveform.device, dtype=dtype), magnitude)
        return torch.log(torch.clamp(mel, min=_MEL_FLOOR))


def log_mel_to_image(log_mel: torch.Tensor) -> torch.Tensor:
    """The diffusion model's picture of a log-mel spectrogram.

    Args:
        log_mel: ``(B, n_mels, T)`` or ``(n_mels, T)`` natural-log mel magnitudes.

    Returns:
        ``(B, 3, n_mels, T)`` in [0, 1]: log-mel clamped to [LOG_MEL_MIN, LOG_MEL_MAX] and rescaled
        linearly, the same in all three channels, flipped vertically so row ``n_mels - 1`` (the
        bottom row) is the lowest mel band.
    """
    if not torch.is_tensor(log_mel) or log_mel.dim() not in (2, 3):
        shape = tuple(log_mel.shape) if torch.is_tensor(log_mel) else type(log_mel).__name__
        raise ValueError(f"log_mel_to_image expects a (B, n_mels, T) or (n_mels, T) tensor, got {shape}.")
    if log_mel.dim() == 2:
        log_mel = log_mel.unsqueeze(0)
    scaled = (log_mel.clamp(LOG_MEL_MIN, LOG_MEL_MAX) - LOG_MEL_MIN) / (LOG_MEL_MAX - LOG_MEL_MIN)
    return scaled.unsqueeze(1).repeat(1, 3, 1, 1).flip(2)


def image_to_log_mel(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`log_mel_to_image` (exact on the clamped range).

    Args:
        image: ``(B, C, n_mels, T)`` or ``(C, n_mels, T)`` mel image in [0, 1], low frequencies at
            the bottom row; only channel 0 is read (the three channels are copies).

    Returns:
        ``(B, n_mels, T)`` natural-log mel magnitudes in [LOG_MEL_MIN, LOG_MEL_MAX] for image
        values in [0, 1].
    """
    if not torch.is_tensor(image) or image.dim() not in (3, 4) or image.shape[-3] < 1:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(
            f"image_to_log_mel expects a (B, 3, n_mels, T) or (3, n_mels, T) tensor, got {shape}."
        )
    if image.dim() == 3:
        image = image.unsqueeze(0)
    return image[:, 0].flip(1) * (LOG_MEL_MAX - LOG_MEL_MIN) + LOG_MEL_MIN
