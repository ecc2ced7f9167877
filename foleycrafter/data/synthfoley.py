"""SynthFoley: a procedural, deterministic synchronized audio-video dataset.

Every clip shows one sound class -- an object that repeatedly makes physical contact with a surface
-- and its soundtrack has one sound event per contact. The ground truth (class, caption, onset times
in seconds) is exact by construction, so models trained on the data and metrics computed on it have
no labelling noise.

Design
------
*Contact, not markers.* The onset of every event is visible only as physical contact: a hammer head
swings down and lands on a plate, a ball falls and touches the floor, a foot comes down on gravel,
two hands meet, a stone reaches the water surface. There is no flash, colour change or marker at the
onset. A video model must therefore learn what real Foley models must learn -- *when does an object
hit something* -- rather than decode a trivial cue. Motion is a function of continuous time (falls
under constant gravity, so the object is fastest at the moment of contact), evaluated at each frame
time ``k / fps``; any frame rate works and the contact instant is the same at all of them. The object
stays in contact for a short *dwell* of at least 70 ms (one frame at 15 fps), so every event has at
least one frame showing contact: the first frame at or after the onset. No frame before the onset
shows contact.

*Physically motivated sound.* Struck solids ring with a few inharmonic, exponentially decaying
normal modes (modal synthesis): a metal plate has many bright partials that ring for about a
second, a wood block a few heavily damped ones, a glass sparse high doublet modes (slow beating) that
ring for seconds, a drum membrane the Bessel-zero modes 1, 1.59, 2.14, 2.30, 2.65, ... with a
downward pitch glide (tension modulation right after the hit). Granular or turbulent sounds are
shaped, band-passed noise: footsteps on gravel are clusters of tiny grain clicks (heel then toe),
claps are short bright bursts, a bouncing ball is a low thump plus a short click, a stone in water is
a splash burst followed by bubbles whose pitch glides upward. Every event draws its own pitch,
decay and loudness (around a per-clip level), so no two events are identical, and every clip has
low background noise. All filters are causal, so no energy precedes an onset. Each event is one
audible onset: the parts of compound sounds (heel and toe, splash and bubbles) follow within ~80 ms,
so an onset detector sees one event per ground-truth onset rather than several.

*Determinism.* A clip depends only on ``(seed, split, index)`` (plus the frame size for the
pictures): the generator derives independent ``numpy.random.default_rng`` streams for the clip plan
(class, fps, duration, onsets, caption), the audio and the video from
``numpy.random.SeedSequence``. The audio and the onsets do not depend on the frame size. Splits use
disjoint derived seeds; classes are balanced by assigning each block of ``len(CLASSES)``
consecutive indices a deterministic permutation of the classes.

Units: times in seconds, frame counts in frames, audio lengths in samples at :data:`SAMPLE_RATE`
(16 kHz mono, float32 in [-1, 1]). Frames are RGB ``uint8`` arrays ``(T, H, W, 3)``.

Files (:func:`generate_dataset`): ``<out>/<split>/<id>.mp4`` (H.264 yuv420p + AAC 16 kHz mono),
``<id>.wav`` (the exact ground-truth audio, PCM16; AAC is lossy) and ``metadata.jsonl`` (one record
per line, see :func:`plan_clip`). Command line::

    python -m foleycrafter.data.synthfoley OUT --split test --num-clips 200 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import subprocess
import sys
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from scipy import signal

GENERATOR_VERSION = 1
SAMPLE_RATE = 16000
#: Frame rates a clip may have (29.97 is exactly 30000/1001).
FPS_CHOICES: tuple[Fraction, ...] = (
    Fraction(15),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
)
SPLITS = ("train", "validation", "test")
MIN_EVENTS, MAX_EVENTS = 1, 6
MIN_DURATION, MAX_DURATION = 2.0, 10.0  # seconds
MIN_GAP = 0.25  # seconds between consecutive onsets, at least
HEAD_MARGIN = 0.15  # no onset earlier than this (seconds)
TAIL_MARGIN = 0.3  # no onset later than duration - this (seconds)
DEFAULT_SIZE = 128  # frame width = height, pixels
CONTACT_DWELL = 0.07  # seconds an object stays in contact (>= one frame period at 15 fps)

_NAMESPACE = 0x5F01E  # mixed into every SeedSequence so SynthFoley streams differ from other uses


@dataclass(frozen=True)
class SoundClass:
    """One SynthFoley class.

    Attributes:
        name: identifier, e.g. ``"hammer_metal"``.
        captions: caption templates; a clip uses one, chosen by its seed.
        color: RGB of the moving object's contact part (hammer head, ball, shoe, ...).
        target_color: RGB of the surface it contacts (plate, floor, gravel, ...).
        background: base RGB of the backdrop (jittered per clip).
        description: what is seen and heard.
    """

    name: str
    captions: tuple[str, ...]
    color: tuple[int, int, int]
    target_color: tuple[int, int, int]
    background: tuple[int, int, int]
    description: str


CLASSES: tuple[SoundClass, ...] = (
    SoundClass(
        "hammer_metal",
        (
            "a hammer strikes a metal plate",
            "hammering on a sheet of metal",
            "a metal plate is hit with a hammer",
            "clanging hammer blows on metal",
        ),
        color=(40, 70, 210),
        target_color=(175, 180, 190),
        background=(70, 55, 45),
        description="a hammer with a blue head swings down onto a grey plate; bright inharmonic ringing",
    ),
    SoundClass(
        "stick_wood",
        (
            "a stick knocks on a wood block",
            "tapping a wooden block with a stick",
            "wooden knocks of a stick on a block",
        ),
        color=(235, 210, 50),
        target_color=(150, 80, 30),
        background=(35, 75, 65),
        description="a yellow stick taps a brown wood block; short hollow knock",
    ),
    SoundClass(
        "spoon_glass",
        (
            "a spoon taps a glass",
            "clinking a glass with a spoon",
            "a spoon rings against a drinking glass",
        ),
        color=(225, 225, 235),
        target_color=(110, 200, 225),
        background=(55, 35, 75),
        description="a silver spoon swings sideways against a cyan glass; high ringing with slow beats",
    ),
    SoundClass(
        "drum",
        (
            "a drumstick hits a drum",
            "someone plays a drum",
            "drum beats from a stick on a drum",
        ),
        color=(245, 150, 40),
        target_color=(235, 228, 205),
        background=(30, 30, 45),
        description="an orange drumstick hits the beige head of a red drum; membrane modes with a pitch drop",
    ),
    SoundClass(
        "footsteps_gravel",
        (
            "footsteps on gravel",
            "a person walks on gravel",
            "feet crunching on gravel",
        ),
        color=(160, 40, 175),
        target_color=(125, 115, 100),
        background=(110, 150, 185),
        description="two purple shoes step in place on speckled gravel; granular crunch",
    ),
    SoundClass(
        "clap",
        (
            "hands clapping",
            "a person claps their hands",
            "a pair of hands clapping",
        ),
        color=(235, 175, 135),
        target_color=(235, 175, 135),
        background=(40, 70, 100),
        description="two hands in blue sleeves meet in the middle; short bright burst",
    ),
    SoundClass(
        "ball_bounce",
        (
            "a ball bounces on the floor",
            "a bouncing ball hits the ground",
            "a rubber ball bouncing",
        ),
        color=(250, 120, 10),
        target_color=(55, 150, 70),
        background=(85, 85, 100),
        description="an orange ball falls and bounces on a green floor; low thump and a click",
    ),
    SoundClass(
        "stone_water",
        (
            "a stone drops into water",
            "stones splashing into a pond",
            "a rock plops into water",
        ),
        color=(90, 75, 65),
        target_color=(30, 90, 170),
        background=(170, 200, 225),
        description="dark stones fall into blue water with ripples; splash and rising bubbles",
    ),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)


# ---------------------------------------------------------------------------------------------------
# Seeds and clip plans


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


def _check_seed(seed: int, index: int) -> None:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if int(index) != index or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")


def class_for_index(seed: int, index: int, split: str = "train") -> int:
    """The class index of clip ``index``: each block of ``len(CLASSES)`` consecutive indices holds
    every class once, in a permutation drawn from ``(seed, split, block)``."""
    _check_seed(seed, index)
    n = len(CLASSES)
    block, slot = divmod(int(index), n)
    ss = np.random.SeedSequence([_NAMESPACE, 1, int(seed), _split_code(split), block])
    return int(np.random.default_rng(ss).permutation(n)[slot])


def clip_id(seed: int, index: int, split: str = "train") -> str:
    """File stem of a clip, e.g. ``"test_0_000012"``."""
    return f"{split}_{int(seed)}_{int(index):06d}"


def _streams(seed: int, index: int, split: str) -> tuple[np.random.Generator, ...]:
    ss = np.random.SeedSequence([_NAMESPACE, 0, int(seed), _split_code(split), int(index)])
    return tuple(np.random.default_rng(child) for child in ss.spawn(3))  # plan, audio, video


def _draw_onsets(rng: np.random.Generator, duration: float, count: int) -> list[float]:
    """``count`` sorted onsets on the sample grid in [HEAD, duration - TAIL], gaps >= MIN_GAP."""
    first = math.ceil(HEAD_MARGIN * SAMPLE_RATE)
    last = math.floor((duration - TAIL_MARGIN) * SAMPLE_RATE)
    gap = math.ceil(MIN_GAP * SAMPLE_RATE)
    count = max(1, min(count, 1 + (last - first) // gap))
    free = last - first - (count - 1) * gap
    picks = np.sort(rng.integers(0, free + 1, size=count))
    samples = first + picks + gap * np.arange(count)
    return [int(s) / SAMPLE_RATE for s in samples]


def plan_clip(
    seed: int,
    index: int,
    split: str = "train",
    size: int = DEFAULT_SIZE,
    *,
    class_index: int | None = None,
    duration: float | None = None,
    fps: float | None = None,
) -> dict:
    """The ground-truth record of a clip, without rendering it (cheap).

    Args:
        seed, index, split: identify the clip; the record depends only on these (and ``size``, which
            is only copied into ``width``/``height``).
        size: frame width = height in pixels (even).
        class_index, duration, fps: optional overrides (tests, tools); the dataset never uses them.
            ``duration`` (seconds) is snapped to a whole number of frames; ``fps`` must be one of
            :data:`FPS_CHOICES` (29.97 means 30000/1001).

    Returns:
        A JSON-serialisable dict: ``id``, ``split``, ``index``, ``seed``, ``class_name``,
        ``class_index``, ``caption``, ``onsets`` (sorted, seconds, on the 16 kHz sample grid),
        ``num_events``, ``duration`` (seconds, exactly ``num_frames / fps``), ``fps`` (float),
        ``fps_fraction`` (e.g. ``"30000/1001"``), ``num_frames``, ``sample_rate``, ``num_samples``
        (``round(duration * sample_rate)``), ``width``, ``height``, ``video`` and ``audio`` (file
        names in the split folder), ``generator_version``.
    """
    _check_seed(seed, index)
    if int(size) != size or size < 16 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 16, got {size!r}")
    rng = _streams(seed, index, split)[0]
    cls = class_for_index(seed, index, split) if class_index is None else int(class_index)
    if not 0 <= cls < len(CLASSES):
        raise ValueError(f"class_index must be in [0, {len(CLASSES)}), got {class_index!r}")
    # Always draw in the same order, so overrides leave the other choices unchanged.
    rate = FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))]
    seconds = float(rng.uniform(MIN_DURATION, MAX_DURATION))
    count = int(rng.integers(MIN_EVENTS, MAX_EVENTS + 1))
    caption_choice = int(rng.integers(1 << 30))
    onset_rng = np.random.default_rng(rng.integers(1 << 62))
    if fps is not None:
        matches = [r for r in FPS_CHOICES if abs(float(r) - float(fps)) < 0.01]
        if not matches:
            raise ValueError(f"fps must be one of {[float(r) for r in FPS_CHOICES]}, got {fps!r}")
        rate = matches[0]
    if duration is not None:
        if not MIN_DURATION - 1e-9 <= duration <= MAX_DURATION + 1e-9:
            raise ValueError(f"duration must be in [{MIN_DURATION}, {MAX_DURATION}] s, got {duration!r}")
        seconds = float(duration)
    low, high = math.ceil(MIN_DURATION * rate - 1e-9), math.floor(MAX_DURATION * rate + 1e-9)
    num_frames = min(max(round(seconds * rate), low), high)
    exact = Fraction(num_frames) / rate
    clip_duration = float(exact)
    onsets = _draw_onsets(onset_rng, clip_duration, count)
    sound = CLASSES[cls]
    name = clip_id(seed, index, split)
    return {
        "id": name,
        "split": split,
        "index": int(index),
        "seed": int(seed),
        "class_name": sound.name,
        "class_index": cls,
        "caption": sound.captions[caption_choice % len(sound.captions)],
        "onsets": onsets,
        "num_events": len(onsets),
        "duration": clip_duration,
        "fps": float(rate),
        "fps_fraction": f"{rate.numerator}/{rate.denominator}"
        if rate.denominator != 1
        else str(rate.numerator),
        "num_frames": int(num_frames),
        "sample_rate": SAMPLE_RATE,
        "num_samples": int(round(exact * SAMPLE_RATE)),
        "width": int(size),
        "height": int(size),
        "video": f"{name}.mp4",
        "audio": f"{name}.wav",
        "generator_version": GENERATOR_VERSION,
    }


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
    class_name: str, onsets: Sequence[float], num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """The soundtrack of a clip: one event of ``class_name`` starting at each onset, plus noise.

    Args:
        class_name: one of :data:`CLASS_NAMES`.
        onsets: event start times in seconds (each becomes sample ``round(t * SAMPLE_RATE)``).
        num_samples: length of the result in samples.
        rng: the random stream (consumed).

    Returns:
        float32 ``(num_samples,)`` at :data:`SAMPLE_RATE`, peak at most 0.95 (never clipped). Each
        event has its own pitch, decay and loudness (peak at the clip's level, -14 to -6 dBFS, +-4 dB);
        background noise is low-passed white noise at -62 to -50 dBFS RMS.
    """
    synth = _SYNTHS[class_name]
    noise = _filter(rng.standard_normal(num_samples), "lowpass", rng.uniform(1000, 4000), order=1)
    noise *= 10 ** (rng.uniform(-62, -50) / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    out = noise
    level = rng.uniform(-14, -6)  # the clip's loudness; events vary around it
    for onset in onsets:
        start = int(round(onset * SAMPLE_RATE))
        if start >= num_samples:
            continue
        event = synth(rng, num_samples - start)[: num_samples - start]
        gain = 10 ** ((level + rng.uniform(-4, 4)) / 20)
        out[start : start + len(event)] += gain * event / np.abs(event).max()
    peak = float(np.abs(out).max())
    if peak > 0.95:
        out *= 0.95 / peak
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Motion: heights above the contact surface as functions of continuous time.


def contact_height(
    t: float, onsets: Sequence[float], *, dwell: float, fall: float, rest: float | None = 1.0
) -> float:
    """Height (0 = touching) at time ``t`` (s) of an object that strikes at each onset.

    The object touches the surface from each onset for ``dwell`` seconds. Between contacts it moves
    under constant gravity ``k = 1 / fall**2`` (height units per s^2, halved): with ``rest`` set, it
    rises to ``rest``, holds, and falls from ``rest`` in ``fall`` seconds (a short gap gives a lower
    arc); with ``rest=None`` it flies in free ballistic arcs between contacts (a bouncing ball).
    Falls end at full speed exactly at the onset, so no frame before an onset shows contact.
    """
    k = 1.0 / (fall * fall)
    i = int(np.searchsorted(onsets, t, side="right")) - 1
    if i >= 0 and t < onsets[i] + dwell:
        return 0.0
    a = t - (onsets[i] + dwell) if i >= 0 else math.inf  # since the last contact
    b = onsets[i + 1] - t if i + 1 < len(onsets) else math.inf  # until the next contact
    if rest is None:
        return k * a * b if math.isfinite(a * b) else math.inf
    if a + b < 2 * fall:
        return k * a * b * rest
    up = rest - k * rest * (fall - a) ** 2 if a < fall else rest
    down = rest - k * rest * (fall - b) ** 2 if b < fall else rest
    return min(up, down)


def swing_height(t: float, onsets: Sequence[float], *, swing: float, lift: float) -> float:
    """Height of a foot planted between steps: before each onset it lifts off (at most ``swing`` s
    early, less if its previous step was recent) on a parabola of peak ``lift`` and lands at the onset."""
    j = int(np.searchsorted(onsets, t, side="left"))  # next onset at or after t
    if j >= len(onsets):
        return 0.0
    previous = onsets[j - 1] if j > 0 else -math.inf
    span = min(swing, onsets[j] - previous - 0.06)
    b = onsets[j] - t
    if b <= 0 or b >= span:
        return 0.0
    return 4 * lift * min(1.0, span / swing) * (b / span) * (1 - b / span)


# ---------------------------------------------------------------------------------------------------
# Drawing: scenes in a 128 x 128 unit space scaled to the frame size.

_SHIFT = 4  # cv2 sub-pixel bits: smooth motion at small sizes


class _Pen:
    def __init__(self, img: np.ndarray, unit: float):
        self.img, self.unit = img, unit

    def _pts(self, pts) -> np.ndarray:
        xy = np.asarray(pts, dtype=np.float64) * self.unit - 0.5
        return np.round(xy * (1 << _SHIFT)).astype(np.int32)

    def _len(self, v: float) -> int:
        return max(1, int(round(v * self.unit * (1 << _SHIFT))))

    def poly(self, pts, color) -> None:
        cv2.fillPoly(self.img, [self._pts(pts)], color, cv2.LINE_AA, _SHIFT)

    def rect(self, x0, y0, x1, y1, color) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color)

    def bar(self, p0, p1, half_width, color) -> None:
        """A rectangle of half-width ``half_width`` along the segment p0 -> p1."""
        (x0, y0), (x1, y1) = p0, p1
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length * half_width, (x1 - x0) / length * half_width
        self.poly([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], color)

    def circle(self, center, radius, color) -> None:
        cv2.circle(self.img, tuple(self._pts(center)), self._len(radius), color, -1, cv2.LINE_AA, _SHIFT)

    def ellipse(self, center, axes, color, angle=0.0, thickness=-1) -> None:
        axes = (self._len(axes[0]), self._len(axes[1]))
        if thickness > 0:
            thickness = max(1, int(round(thickness * self.unit)))
        cv2.ellipse(
            self.img, tuple(self._pts(center)), axes, angle, 0, 360, color, thickness, cv2.LINE_AA, _SHIFT
        )


def _jitter(rng, color, amount) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _shade(color, factor) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in color)


def _mix(a, b, w) -> tuple[int, int, int]:
    return tuple(int(round((1 - w) * x + w * y)) for x, y in zip(a, b))


_SKIN = (225, 170, 130)


class _Scene:
    """A static layer (drawn once) and moving objects drawn at each frame time (seconds)."""

    def __init__(self, cls: SoundClass, rng: np.random.Generator, size: int, onsets, duration: float):
        self.cls, self.size, self.unit = cls, size, size / 128.0
        self.onsets = np.asarray(onsets, dtype=np.float64)
        self.duration = duration
        self.color = _jitter(rng, cls.color, 6)
        self.target = _jitter(rng, cls.target_color, 6)
        background = _jitter(rng, cls.background, 14)
        rows = np.linspace(1.08, 0.92, size)[:, None, None]  # gentle vertical light gradient
        self.static = np.clip(np.asarray(background, np.float64) * rows, 0, 255).astype(np.uint8)
        self.static = np.ascontiguousarray(np.broadcast_to(self.static, (size, size, 3)))
        self.layout(rng)
        self.draw_static(_Pen(self.static, self.unit), rng)

    def layout(self, rng) -> None:
        raise NotImplementedError

    def draw_static(self, pen: _Pen, rng) -> None:
        raise NotImplementedError

    def draw(self, pen: _Pen, t: float) -> None:
        raise NotImplementedError

    def frame(self, t: float) -> np.ndarray:
        img = self.static.copy()
        self.draw(_Pen(img, self.unit), t)
        return img


class _Swinger(_Scene):
    """A tool rotating about a pivot (a hand) whose tip lands on the target at each onset."""

    def angle(self, t: float) -> float:
        return self.rest_angle + self.swing * contact_height(
            t, self.onsets, dwell=CONTACT_DWELL, fall=self.fall
        )

    def tip(self, angle: float) -> tuple[float, float]:
        px, py = self.pivot
        return px + self.side * self.length * math.cos(angle), py - self.length * math.sin(angle)

    def place(self, contact: tuple[float, float]) -> None:
        """Put the pivot so the tip centre is at ``contact`` when the angle is ``rest_angle``."""
        cx, cy = contact
        a = self.rest_angle
        self.pivot = (cx - self.side * self.length * math.cos(a), cy + self.length * math.sin(a))

    def draw_hand(self, pen: _Pen) -> None:
        px, py = self.pivot
        pen.bar((px, py), (px - self.side * 60, py + 40), 6, self.sleeve)
        pen.circle((px, py), 6.5, _SKIN)


class _HammerScene(_Swinger):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-8, 8), rng.uniform(-6, 6)
        self.plate = (16 + dx, 86 + dy, 88 + dx, 94 + dy)
        self.a, self.b, self.length = 9 * s, 6 * s, 56 * s  # head half-height, half-width; handle
        self.side, self.rest_angle = -1, 0.0  # tip left of the pivot, handle horizontal at contact
        self.swing, self.fall = rng.uniform(0.75, 1.0), rng.uniform(0.18, 0.26)
        self.place((46 + dx + rng.uniform(-4, 4), self.plate[1] - self.a))
        self.sleeve = _jitter(rng, (70, 70, 80), 10)

    def draw_static(self, pen, rng):
        x0, y0, x1, y1 = self.plate
        pen.rect(0, y1 + 6, 128, 128, _shade(self.cls.background, 0.55))  # bench
        pen.rect(x0 + 4, y1, x0 + 10, y1 + 6, (50, 50, 55))
        pen.rect(x1 - 10, y1, x1 - 4, y1 + 6, (50, 50, 55))
        pen.rect(x0, y0, x1, y1, self.target)

    def draw(self, pen, t):
        angle = self.angle(t)
        c = self.tip(angle)
        d = (-self.side * math.cos(angle), math.sin(angle))  # from the head towards the pivot
        n = (self.side * math.sin(angle), math.cos(angle))  # along the head, pointing down at rest
        pen.bar(c, self.pivot, 2.2, (125, 75, 35))
        self.draw_hand(pen)
        a, b = self.a, self.b
        pen.poly(
            [
                (c[0] + sb * b * d[0] + sa * a * n[0], c[1] + sb * b * d[1] + sa * a * n[1])
                for sb, sa in ((1, 1), (1, -1), (-1, -1), (-1, 1))
            ],
            self.color,
        )


class _StickWoodScene(_Swinger):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-8, 8), rng.uniform(-6, 6)
        self.block = (50 + dx - 22 * s, 80 + dy, 50 + dx + 22 * s, 100 + dy)
        self.r, self.length = 4 * s, 58 * s
        self.side, self.rest_angle = -1, -0.3  # tip left of the pivot, pointing down at contact
        self.swing, self.fall = rng.uniform(0.5, 0.75), rng.uniform(0.12, 0.18)
        self.place((50 + dx + rng.uniform(-5, 5), self.block[1] - self.r))
        self.sleeve = _jitter(rng, (190, 190, 200), 10)

    def draw_static(self, pen, rng):
        x0, y0, x1, y1 = self.block
        pen.rect(0, y1, 128, 128, _shade(self.cls.background, 0.6))  # table
        pen.rect(x0, y0, x1, y1, self.target)
        pen.rect(x0 + 4, y0 + 8, x1 - 4, y0 + 11, _shade(self.target, 0.6))  # slot of the block

    def draw(self, pen, t):
        tip = self.tip(self.angle(t))
        pen.bar(tip, self.pivot, 1.6, self.color)
        pen.circle(tip, self.r, self.color)
        self.draw_hand(pen)


class _SpoonGlassScene(_Scene):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-6, 6), rng.uniform(-6, 6)
        self.glass = (48 + dx - 13 * s, 46 + dy, 48 + dx + 13 * s, 100 + dy)
        self.bowl = (7 * s, 4.5 * s)
        self.contact_y = self.glass[1] + rng.uniform(10, 20)
        self.reach, self.fall = rng.uniform(20, 28), rng.uniform(0.1, 0.15)

    def draw_static(self, pen, rng):
        x0, y0, x1, y1 = self.glass
        pen.rect(0, y1, 128, 128, _shade(self.cls.background, 0.6))  # table
        pen.rect(x0, y0, x1, y1, self.target)
        pen.rect(x0 + 3, y0 + 22, x1 - 3, y1 - 3, _mix(self.target, (240, 240, 255), 0.3))  # water inside

    def draw(self, pen, t):
        offset = self.reach * contact_height(t, self.onsets, dwell=CONTACT_DWELL, fall=self.fall)
        cx = self.glass[2] + self.bowl[0] + offset
        cy = self.contact_y
        pen.bar((cx, cy), (cx + 48, cy - 10), 1.5, self.color)
        pen.ellipse((cx, cy), self.bowl, self.color)
        pen.circle((cx + 48, cy - 10), 6.5, _SKIN)


class _DrumScene(_Swinger):
    def layout(self, rng):
        s, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-6, 6), rng.uniform(-5, 5)
        self.head = (70 + dx, 78 + dy, 30 * s, 7 * s)  # centre x, y, semi-axes of the drum head
        self.r, self.length = 3.5 * s, 56 * s
        self.side, self.rest_angle = 1, -0.35  # tip right of the pivot
        self.swing, self.fall = rng.uniform(0.6, 0.8), rng.uniform(0.12, 0.18)
        self.place((self.head[0] - 6 + rng.uniform(-4, 4), self.head[1] - self.r))
        self.sleeve = _jitter(rng, (40, 110, 60), 10)

    def draw_static(self, pen, rng):
        hx, hy, ax, ay = self.head
        body = (200, 35, 45)
        pen.rect(0, hy + 40, 128, 128, _shade(self.cls.background, 0.5))  # floor
        pen.ellipse((hx, hy + 36), (ax, ay), _shade(body, 0.7))
        pen.rect(hx - ax, hy, hx + ax, hy + 36, body)
        for k in range(5):  # lugs
            x = hx - ax + (k + 0.5) * 2 * ax / 5
            pen.rect(x - 1.5, hy + 8, x + 1.5, hy + 28, (200, 200, 205))
        pen.ellipse((hx, hy), (ax, ay), self.target)

    def draw(self, pen, t):
        tip = self.tip(self.angle(t))
        pen.bar(tip, self.pivot, 1.6, self.color)
        pen.circle(tip, self.r, self.color)
        self.draw_hand(pen)


class _FootstepsScene(_Scene):
    def layout(self, rng):
        s, dx = rng.uniform(0.9, 1.1), rng.uniform(-8, 8)
        self.ground = 96 + rng.uniform(-5, 5)
        self.feet_x = (44 + dx, 84 + dx)
        self.shoe = (14 * s, 11 * s)  # half-width, height
        self.lift, self.swing = rng.uniform(14, 22), rng.uniform(0.3, 0.4)
        first = int(rng.integers(2))
        self.steps = [self.onsets[(np.arange(len(self.onsets)) + first) % 2 == f] for f in (0, 1)]
        self.trousers = _jitter(rng, (45, 55, 85), 10)

    def draw_static(self, pen, rng):
        pen.rect(0, self.ground, 128, 128, self.target)
        count = int(180 * (128 - self.ground) / 32)
        xs, ys = rng.uniform(0, 128, count), rng.uniform(self.ground + 2, 128, count)
        for x, y in zip(xs, ys):  # pebbles
            pen.circle((x, y), rng.uniform(0.8, 1.8), _shade(self.target, rng.uniform(0.7, 1.3)))

    def draw(self, pen, t):
        w, h = self.shoe
        for x, steps in zip(self.feet_x, self.steps):
            bottom = self.ground - swing_height(t, steps, swing=self.swing, lift=self.lift)
            pen.rect(x - 8, -2, x + 8, bottom - h + 2, self.trousers)
            pen.rect(x - w, bottom - h, x + w - 4, bottom, self.color)
            pen.ellipse((x + w - 5, bottom - h / 2), (5, h / 2), self.color)


class _ClapScene(_Scene):
    def layout(self, rng):
        s = rng.uniform(0.9, 1.1)
        self.center = (64 + rng.uniform(-6, 6), 60 + rng.uniform(-6, 6))
        self.hand = (7 * s, 15 * s)  # semi-axes
        self.open, self.fall = rng.uniform(16, 26), rng.uniform(0.1, 0.15)
        self.sleeve = _jitter(rng, (50, 90, 210), 10)

    def draw_static(self, pen, rng):
        pen.rect(0, 110, 128, 128, _shade(self.cls.background, 0.6))

    def draw(self, pen, t):
        gap = self.open * contact_height(t, self.onsets, dwell=CONTACT_DWELL, fall=self.fall)
        cx, cy = self.center
        hw, hh = self.hand
        for side in (-1, 1):
            hx = cx + side * (gap + hw)
            pen.bar((hx + side * hw * 0.6, cy + hh * 0.6), (hx + side * 70, cy + 55), 8, self.sleeve)
            pen.ellipse((hx, cy), (hw, hh), self.color)
            pen.ellipse(
                (hx + side * hw * 0.3, cy + hh * 0.1), (hw * 0.45, hh * 0.4), self.color, angle=side * 25
            )


class _BallScene(_Scene):
    def layout(self, rng):
        self.r = 9 * rng.uniform(0.85, 1.15)
        self.floor = 100 + rng.uniform(-5, 5)
        self.x = 64 + rng.uniform(-14, 14)
        self.fall = rng.uniform(0.34, 0.42)  # seconds to fall from the top of the frame to the floor
        self.contacts = np.concatenate([[-1.0 - CONTACT_DWELL], self.onsets, [self.duration + 1.0]])

    def draw_static(self, pen, rng):
        pen.rect(0, self.floor, 128, 128, self.target)
        pen.rect(0, self.floor, 128, self.floor + 1.5, _shade(self.target, 1.2))

    def draw(self, pen, t):
        h = contact_height(t, self.contacts, dwell=CONTACT_DWELL, fall=self.fall, rest=None)
        r = self.r
        if h == 0.0:  # squash while touching the floor
            i = int(np.searchsorted(self.contacts, t, side="right")) - 1
            q = 0.22 * math.sin(math.pi * (t - self.contacts[i]) / CONTACT_DWELL)
            pen.ellipse((self.x, self.floor - r * (1 - q)), (r * (1 + q), r * (1 - q)), self.color)
            return
        bottom = self.floor - h * (self.floor + 2 * r)
        if bottom > -1:
            pen.circle((self.x, bottom - r), r, self.color)
            pen.ellipse(
                (self.x - r * 0.35, bottom - r * 1.4),
                (r * 0.3, r * 0.2),
                _mix(self.color, (255, 255, 255), 0.4),
            )


class _StoneWaterScene(_Scene):
    def layout(self, rng):
        self.surface = 84 + rng.uniform(-6, 6)
        self.fall = rng.uniform(0.4, 0.5)
        self.stones = []
        for _ in self.onsets:
            r = rng.uniform(5, 8)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
            radii = r * rng.uniform(0.8, 1.15, 9)
            shape = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
            shape[:, 1] -= shape[:, 1].max()  # origin at the lowest point
            drops = [(rng.uniform(-35, 35), rng.uniform(-110, -60)) for _ in range(int(rng.integers(4, 7)))]
            self.stones.append((rng.uniform(22, 106), shape, drops))

    def draw_static(self, pen, rng):
        pen.rect(
            0, self.surface - 14, 128, self.surface, _mix(self.cls.background, (60, 110, 60), 0.5)
        )  # far shore

    def draw(self, pen, t):
        water = self.target
        gravity = 400.0  # units / s^2 for droplets
        for onset, (x, shape, _) in zip(self.onsets, self.stones):
            tau = t - onset
            if tau < -self.fall or tau > 1.5:
                continue
            travel = self.surface + 20
            if tau < 0:  # free fall from above the frame, reaching the surface at the onset
                bottom = self.surface - travel * (tau / self.fall) ** 2
                color = self.color
            else:  # water brakes it hard, then it sinks slowly and fades into the water
                speed = 2 * travel / self.fall
                bottom = self.surface + speed * 0.02 * (1 - math.exp(-tau / 0.02)) + 12 * tau
                color = _mix(self.color, water, min(1.0, 0.3 + tau / 1.5))
            pen.poly(shape + (x, bottom), color)
        img = pen.img
        row = int(round(self.surface * self.unit))
        img[row:] = (0.25 * img[row:] + 0.75 * np.asarray(water, np.float64)).astype(np.uint8)
        pen.rect(0, self.surface, 128, self.surface + 1.2, _mix(water, (255, 255, 255), 0.35))
        for onset, (x, _, drops) in zip(self.onsets, self.stones):
            tau = t - onset
            if 0 <= tau < 0.9:  # ripples spreading on the surface
                for lag in (0.0, 0.25):
                    if tau > lag:
                        radius = 4 + 45 * (tau - lag)
                        light = _mix(water, (230, 240, 255), max(0.0, 0.8 - (tau - lag)))
                        pen.ellipse((x, self.surface + 1.5), (radius, radius * 0.18), light, thickness=1)
            if 0 <= tau < 0.5:  # droplets thrown up by the splash
                for vx, vy in drops:
                    y = self.surface + vy * tau + 0.5 * gravity * tau * tau
                    if y < self.surface:
                        pen.circle((x + vx * tau, y), 1.3, (235, 245, 255))


_SCENES: dict[str, type[_Scene]] = {
    "hammer_metal": _HammerScene,
    "stick_wood": _StickWoodScene,
    "spoon_glass": _SpoonGlassScene,
    "drum": _DrumScene,
    "footsteps_gravel": _FootstepsScene,
    "clap": _ClapScene,
    "ball_bounce": _BallScene,
    "stone_water": _StoneWaterScene,
}


def render_frames(record: dict, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    """The pictures of a planned clip.

    Args:
        record: from :func:`plan_clip` (uses ``class_name``, ``onsets``, ``duration``, ``fps``,
            ``num_frames``, ``width``).
        rng: the random stream (consumed): scene jitter and per-frame pixel noise.
        noise: standard deviation of the per-pixel Gaussian noise, in 8-bit levels.

    Returns:
        uint8 RGB ``(num_frames, size, size, 3)``; frame ``k`` shows time ``k / fps`` seconds.
    """
    rate = Fraction(record["fps_fraction"])
    cls = CLASSES[CLASS_NAMES.index(record["class_name"])]
    size = int(record["width"])
    scene = _SCENES[cls.name](cls, rng, size, record["onsets"], record["duration"])
    frames = np.empty((record["num_frames"], size, size, 3), np.uint8)
    for k in range(record["num_frames"]):
        img = scene.frame(float(Fraction(k) / rate)).astype(np.float32)
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise
        frames[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames


def generate_clip(
    seed: int,
    index: int,
    split: str = "train",
    size: int = DEFAULT_SIZE,
    **overrides,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Generate one clip; the result depends only on the arguments.

    Args:
        seed: dataset seed (non-negative int).
        index: clip number within the split (non-negative int).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        size: frame width = height in pixels (even).
        **overrides: ``class_index``, ``duration`` (s), ``fps`` -- see :func:`plan_clip`.

    Returns:
        ``(frames, audio, record)``: frames uint8 ``(num_frames, size, size, 3)`` RGB, frame ``k`` at
        ``k / fps`` s; audio float32 ``(num_samples,)`` at 16 kHz in [-1, 1], sample ``n`` at
        ``n / 16000`` s; record as in :func:`plan_clip`.
    """
    record = plan_clip(seed, index, split, size, **overrides)
    _, audio_rng, video_rng = _streams(seed, index, split)
    audio = synthesize_audio(record["class_name"], record["onsets"], record["num_samples"], audio_rng)
    frames = render_frames(record, video_rng)
    return frames, audio, record


# ---------------------------------------------------------------------------------------------------
# Files


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM (``round(x * 32767)``) with :mod:`wave`."""
    pcm = np.round(np.clip(np.asarray(audio, np.float64), -1, 1) * 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def write_mp4(
    path: str | os.PathLike, frames: np.ndarray, fps: Fraction | str | float, audio_path: str | os.PathLike
) -> None:
    """Encode RGB ``frames`` (T, H, W, 3) uint8 as H.264 yuv420p at ``fps`` (exact, e.g.
    ``"30000/1001"``), muxed with the wav at ``audio_path`` as AAC 16 kHz mono. Single-threaded and
    bit-exact flags, so the same input and the same ffmpeg give the same bytes."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, str) else Fraction(fps)
    # fmt: off
    cmd = [
        _ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}",
        "-i", "pipe:0", "-i", os.fspath(audio_path),
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
        "-c:a", "aac", "-b:a", "64k", "-ar", str(SAMPLE_RATE), "-ac", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact", "-movflags", "+faststart",
        "-f", "mp4", os.fspath(path),
    ]
    # fmt: on
    done = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"ffmpeg failed ({done.returncode}) writing {path}: {' | '.join(tail)}")


def _write_clip(job: tuple[int, int, str, int, str]) -> dict:
    seed, index, split, size, folder = job
    cv2.setNumThreads(1)
    frames, audio, record = generate_clip(seed, index, split, size)
    folder = Path(folder)
    wav, mp4 = folder / record["audio"], folder / record["video"]
    tmp_wav, tmp_mp4 = folder / f".{wav.name}.partial", folder / f".{mp4.name}.partial"
    try:
        write_wav(tmp_wav, audio)
        os.replace(tmp_wav, wav)
        write_mp4(tmp_mp4, frames, record["fps_fraction"], wav)
        os.replace(tmp_mp4, mp4)
    finally:
        for tmp in (tmp_wav, tmp_mp4):
            if tmp.exists():
                tmp.unlink()
    return record


def _clear_split(folder: Path) -> None:
    """Remove what a previous run wrote (clips, metadata, partial files); leave anything else."""
    for item in folder.iterdir():
        if item.is_file() and (
            item.suffix in (".mp4", ".wav") or item.name == "metadata.jsonl" or item.name.endswith(".partial")
        ):
            item.unlink()


def generate_dataset(
    out_dir: str | os.PathLike,
    split: str = "train",
    num_clips: int = 100,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    workers: int = 1,
    overwrite: bool = False,
) -> list[dict]:
    """Write ``num_clips`` clips of ``split`` to ``out_dir/<split>/``.

    Files: ``<id>.mp4`` (video + AAC soundtrack), ``<id>.wav`` (exact ground-truth audio, PCM16) and
    ``metadata.jsonl`` (the records of :func:`plan_clip`, one per line, in index order, written
    last). Every file is written under a temporary name in the same folder, then renamed.

    Args:
        out_dir: dataset root.
        split: ``"train"``, ``"validation"`` or ``"test"`` (disjoint derived seeds).
        num_clips: clips with indices ``0 .. num_clips - 1``; classes balanced (counts differ by <= 1).
        seed: dataset seed.
        size: frame width = height in pixels.
        workers: processes (1: in this process).
        overwrite: replace the clips and metadata of an existing non-empty split folder; otherwise
            such a folder raises :class:`FileExistsError`.

    Returns:
        The records, in index order.
    """
    _split_code(split)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips!r}")
    plan_clip(seed, 0, split, size)  # validates the arguments before touching the disk
    folder = Path(out_dir) / split
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it")
        _clear_split(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(int(seed), i, split, int(size), os.fspath(folder)) for i in range(int(num_clips))]
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=context) as pool:
            records = list(pool.map(_write_clip, jobs, chunksize=1))
    else:
        records = [_write_clip(job) for job in jobs]
    tmp = folder / ".metadata.jsonl.partial"
    with open(tmp, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, sort_keys=True) + "\n")
    os.replace(tmp, folder / "metadata.jsonl")
    return records


def read_metadata(split_dir: str | os.PathLike) -> list[dict]:
    """The records of a written split folder (``metadata.jsonl``), in index order."""
    with open(Path(split_dir) / "metadata.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: Sequence[str] | None = None, prog: str = "synthfoley") -> int:
    """Command line: ``python -m foleycrafter.data.synthfoley OUT --split test --num-clips 200``.

    Returns the exit status (0, or 2 for bad arguments or a split folder that already exists)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate SynthFoley clips (mp4 + wav + metadata.jsonl) into OUT/<split>/.",
    )
    parser.add_argument("out_dir", help="dataset root folder")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--num-clips", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="frame width = height (pixels, even)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing split folder's clips")
    args = parser.parse_args(argv)
    try:
        records = generate_dataset(
            args.out_dir, args.split, args.num_clips, args.seed, args.size, args.workers, args.overwrite
        )
    except (FileExistsError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    seconds = sum(r["duration"] for r in records)
    print(
        f"wrote {len(records)} clips ({seconds / 60:.1f} min) to {Path(args.out_dir) / args.split} "
        f"(seed {args.seed}, {len(CLASSES)} classes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
