"""Sound synthesis: one synthesiser per class, and the soundtrack of a clip (:func:`synthesize_audio`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import signal

from .planning import SAMPLE_RATE

# ---------------------------------------------------------------------------------------------------
# Audio: one synthesiser per class. Each returns an event (float64, starts at the onset, length <= n).

_T60 = math.log(1000.0)  # amplitude factor exp(-_T60 * t / T60) is -60 dB at t = T60
_NYQUIST_GUARD = 0.45 * SAMPLE_RATE  # partials above this are dropped


def _time(n: int) -> np.ndarray:
    return np.arange(n) / SAMPLE_RATE


def _filter(x: np.ndarray, kind: str, cutoff, order: int = 2) -> np.ndarray:
    """Causal Butterworth filter (no energy moves before the onset)."""
    sos = signal.butter(order, cutoff, btype=kind, fs=SAMPLE_RATE, output="sos")
    return signal.sosfilt(sos, x)


def _modes(rng, n_max, freqs, amps, t60s) -> np.ndarray:
    """Sum of exponentially decaying sinusoids (modal synthesis) with random phases."""
    freqs, amps, t60s = (np.asarray(v, dtype=np.float64) for v in (freqs, amps, t60s))
    keep = freqs < _NYQUIST_GUARD
    freqs, amps, t60s = freqs[keep], amps[keep], t60s[keep]
    n = min(n_max, math.ceil(float(t60s.max()) * SAMPLE_RATE))
    t = _time(n)[:, None]
    phases = rng.uniform(0, 2 * np.pi, size=len(freqs))
    return (amps * np.exp(-_T60 * t / t60s) * np.sin(2 * np.pi * freqs * t + phases)).sum(axis=1)


def _burst(rng, n_max, tau, attack=0.0005, length=None) -> np.ndarray:
    """White noise with a fast attack and an exponential decay (time constant ``tau`` s)."""
    n = min(n_max, math.ceil((length if length is not None else 7 * tau) * SAMPLE_RATE))
    t = _time(n)
    env = (1 - np.exp(-t / attack)) * np.exp(-t / tau) if attack > 0 else np.exp(-t / tau)
    return rng.standard_normal(n) * env


def _pad_add(a: np.ndarray, b: np.ndarray, offset: int = 0) -> np.ndarray:
    n = max(len(a), offset + len(b))
    out = np.zeros(n)
    out[: len(a)] += a
    out[offset : offset + len(b)] += b
    return out


def _hammer_metal(rng, n_max):
    f0 = rng.uniform(280, 650)
    ratios = np.array([1.0, 1.51, 2.26, 2.83, 3.41, 4.17, 4.88, 5.62, 6.49, 7.30, 8.21, 9.05])
    freqs = f0 * ratios * (1 + rng.uniform(-0.03, 0.03, len(ratios)))
    amps = rng.uniform(0.5, 1.0, len(ratios)) / np.arange(1, len(ratios) + 1) ** 0.4
    t60s = rng.uniform(0.6, 1.6) * (f0 / freqs) ** 0.6
    ring = _modes(rng, n_max, freqs, amps, t60s)
    click = _filter(_burst(rng, n_max, rng.uniform(0.001, 0.003)), "highpass", 2000)
    return _pad_add(ring / np.abs(ring).max(), 0.6 * click / np.abs(click).max())


def _stick_wood(rng, n_max):
    f0 = rng.uniform(450, 1000)
    ratios = np.array([1.0, 2.57, 4.20])
    freqs = f0 * ratios * (1 + rng.uniform(-0.03, 0.03, 3))
    amps = np.array([1.0, 0.45, 0.2]) * rng.uniform(0.6, 1.0, 3)
    t60 = rng.uniform(0.08, 0.22)
    ring = _modes(rng, n_max, freqs, amps, [t60, 0.5 * t60, 0.35 * t60])
    click = _filter(_burst(rng, n_max, 0.001), "bandpass", [1000, 5000])
    return _pad_add(ring / np.abs(ring).max(), 0.5 * click / np.abs(click).max())


def _spoon_glass(rng, n_max):
    f0 = rng.uniform(1100, 2300)
    # Bending modes n = 2, 3, 4 of a cylindrical shell: f_n ~ n (n^2 - 1) / sqrt(n^2 + 1).
    shell = np.array([n * (n * n - 1) / math.sqrt(n * n + 1) for n in (2, 3, 4)])
    base = f0 * shell / shell[0] * (1 + rng.uniform(-0.02, 0.02, 3))
    split = 1 + rng.uniform(0.0005, 0.002, 3)  # slightly unsymmetric glass: doublets beat
    freqs = np.concatenate([base, base * split])
    amps = np.tile(np.array([1.0, 0.5, 0.25]) * rng.uniform(0.6, 1.0, 3), 2) * np.repeat([1.0, 0.7], 3)
    t60 = rng.uniform(0.8, 2.0)
    t60s = np.tile(t60 * np.array([1.0, 0.6, 0.4]), 2)
    ring = _modes(rng, n_max, freqs, amps, t60s)
    click = _filter(_burst(rng, n_max, 0.0007), "highpass", 3000)
    return _pad_add(ring / np.abs(ring).max(), 0.3 * click / np.abs(click).max())


_MEMBRANE = np.array([1.0, 1.594, 2.136, 2.296, 2.653, 2.918, 3.156, 3.501])  # Bessel-zero ratios


def _drum(rng, n_max):
    f0 = rng.uniform(90, 200)
    freqs = f0 * _MEMBRANE * (1 + rng.uniform(-0.01, 0.01, len(_MEMBRANE)))
    amps = np.array([1.0, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.25]) * rng.uniform(0.5, 1.0, len(_MEMBRANE))
    t60s = rng.uniform(0.3, 0.8) * (f0 / freqs) ** 0.8
    glide, tau = rng.uniform(0.05, 0.2), rng.uniform(0.02, 0.06)
    n = min(n_max, math.ceil(float(t60s.max()) * SAMPLE_RATE))
    t = _time(n)[:, None]
    # Frequency f (1 + glide exp(-t / tau)): the head's tension is highest just after the hit.
    phase = 2 * np.pi * freqs * (t + glide * tau * (1 - np.exp(-t / tau)))
    phase = phase + rng.uniform(0, 2 * np.pi, len(freqs))
    ring = (amps * np.exp(-_T60 * t / t60s) * np.sin(phase)).sum(axis=1)
    click = _filter(_burst(rng, n_max, 0.003), "lowpass", 3000)
    return _pad_add(ring / np.abs(ring).max(), 0.4 * click / np.abs(click).max())


def _footsteps_gravel(rng, n_max):
    # Heel then toe, each a dense cluster of tiny grain clicks (pebbles shifting) that dies out within
    # ~0.1 s, so one step is one audible event.
    length = rng.uniform(0.14, 0.22)
    n = min(n_max, math.ceil(length * SAMPLE_RATE))
    out = np.zeros(n)
    toe = rng.uniform(0.025, 0.06)
    count = int(rng.integers(60, 121))
    heel = rng.random(count) < 0.55
    starts = np.where(heel, rng.exponential(0.015, count), toe + rng.exponential(0.02, count))
    starts[0] = 0.0  # the heel lands: the first grain is at the onset
    amps = rng.uniform(0.2, 1.0, count) * np.exp(-starts / 0.035) * np.where(heel, 1.0, rng.uniform(0.5, 0.8))
    amps[0] = 1.0
    for start, amp in zip(starts, amps):
        i = int(start * SAMPLE_RATE)
        if i >= n:
            continue
        grain = amp * _burst(rng, n - i, rng.uniform(0.0005, 0.0015), attack=0.0002, length=0.006)
        out[i : i + len(grain)] += grain
    crunch = _filter(out, "bandpass", [rng.uniform(400, 900), rng.uniform(3000, 6000)])
    t = _time(n)
    thud = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 150) * t) * np.exp(-t / 0.02)
    return crunch / np.abs(crunch).max() + thud


def _clap(rng, n_max):
    tau = rng.uniform(0.006, 0.018)
    fc = rng.uniform(900, 2200)
    burst = _burst(rng, n_max, tau, attack=0.0003)
    body = _filter(burst, "bandpass", [fc / 1.8, min(fc * 2.2, 7000)]) + 0.3 * _filter(burst, "highpass", 500)
    second = 0.5 * _burst(rng, n_max, tau * 0.7, attack=0.0003)  # palms and fingers land apart
    body = _pad_add(
        body,
        _filter(second, "bandpass", [fc / 1.5, min(fc * 2.5, 7000)]),
        int(rng.uniform(0.002, 0.005) * SAMPLE_RATE),
    )
    room = 0.06 * _filter(_burst(rng, n_max, 0.06, attack=0.002), "lowpass", 4000)
    body = body / np.abs(body).max()
    return _pad_add(body, room)


def _ball_bounce(rng, n_max):
    f0, tau = rng.uniform(70, 150), rng.uniform(0.03, 0.08)
    n = min(n_max, math.ceil(6 * tau * SAMPLE_RATE))
    t = _time(n)
    thump = np.sin(2 * np.pi * f0 * (t + 0.5 * 0.01 * (1 - np.exp(-t / 0.01)))) * np.exp(-t / tau)
    click = _filter(_burst(rng, n_max, rng.uniform(0.002, 0.005)), "lowpass", rng.uniform(1500, 3000))
    shell = _modes(rng, n_max, [rng.uniform(400, 800)], [1.0], [rng.uniform(0.05, 0.12)])
    out = _pad_add(thump, 0.35 * click / np.abs(click).max())
    return _pad_add(out, 0.15 * shell)


def _stone_water(rng, n_max):
    plop = _filter(_burst(rng, n_max, rng.uniform(0.003, 0.008), attack=0.0003), "lowpass", 4000)
    splash = _filter(_burst(rng, n_max, rng.uniform(0.04, 0.1), attack=0.005), "bandpass", [300, 3500])
    out = _pad_add(0.7 * plop / np.abs(plop).max(), 0.5 * splash / np.abs(splash).max())
    for k in range(int(rng.integers(2, 6))):
        # Bubbles: Minnaert resonance, pitch rising as the bubble nears the surface.
        delay = rng.uniform(0.01, 0.05) if k == 0 else rng.uniform(0.0, 0.08)
        i = int(delay * SAMPLE_RATE)
        if i >= n_max:
            continue
        f, rise, tau = rng.uniform(350, 1400), rng.uniform(2.0, 8.0), rng.uniform(0.02, 0.07)
        n = min(n_max - i, math.ceil(6 * tau * SAMPLE_RATE))
        t = _time(n)
        bubble = np.sin(2 * np.pi * f * (t + 0.5 * rise * t * t)) * np.exp(-t / tau)
        bubble *= 1 - np.exp(-t / 0.002)
        amp = rng.uniform(0.6, 0.9) if k == 0 else rng.uniform(0.2, 0.5)
        out = _pad_add(out, amp * bubble, i)
    return out


_SYNTHS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "hammer_metal": _hammer_metal,
    "stick_wood": _stick_wood,
    "spoon_glass": _spoon_glass,
    "drum": _drum,
    "footsteps_gravel": _footsteps_gravel,
    "clap": _clap,
    "ball_bounce": _ball_bounce,
    "stone_water": _stone_water,
}


def synthesize_audio(
    class_name: str,
    onsets: Sequence[float],
    num_samples: int,
    rng: np.random.Generator,
    event_levels_db: Sequence[float] | None = None,
) -> np.ndarray:
    """The soundtrack of a clip: one event of ``class_name`` starting at each onset, plus noise.

    Args:
        class_name: one of :data:`CLASS_NAMES`.
        onsets: event start times in seconds (each becomes sample ``round(t * SAMPLE_RATE)``).
        num_samples: length of the result in samples.
        rng: the random stream (consumed).
        event_levels_db: each event's peak level (dBFS), version 2; ``None`` draws them as version 1
            did (the clip's level, -14 to -6 dBFS, +-4 dB per event).

    Returns:
        float32 ``(num_samples,)`` at :data:`SAMPLE_RATE`, peak at most 0.95 (never clipped). Each
        event has its own pitch, decay and loudness; background noise is low-passed white noise at -62 to -50 dBFS RMS (version 2: -74 to -62).
    """
    synth = _SYNTHS[class_name]
    noise = _filter(rng.standard_normal(num_samples), "lowpass", rng.uniform(1000, 4000), order=1)
    # Version 2's softest events peak at -36 dBFS: its background sits lower, so they stay well above it.
    floor = (-62, -50) if event_levels_db is None else (-74, -62)
    noise *= 10 ** (rng.uniform(*floor) / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    out = noise
    if event_levels_db is not None and len(event_levels_db) != len(onsets):
        raise ValueError(f"event_levels_db has {len(event_levels_db)} levels for {len(onsets)} onsets.")
    level = rng.uniform(-14, -6) if event_levels_db is None else 0.0  # version 1: the clip's loudness
    for number, onset in enumerate(onsets):
        start = int(round(onset * SAMPLE_RATE))
        if start >= num_samples:
            continue
        event = synth(rng, num_samples - start)[: num_samples - start]
        if event_levels_db is None:
            gain = 10 ** ((level + rng.uniform(-4, 4)) / 20)
        else:
            gain = 10 ** (event_levels_db[number] / 20)
        out[start : start + len(event)] += gain * event / np.abs(event).max()
    peak = float(np.abs(out).max())
    if peak > 0.95:
        out *= 0.95 / peak
    return out.astype(np.float32)
