"""Dataset constants, seeds and clip plans.

A clip plan (:func:`plan_clip`) is the ground-truth record of a clip -- class, frame rate, duration,
onset times, caption, file names -- drawn from ``(seed, split, index)`` without rendering anything.
:func:`_streams` derives the clip's independent random streams (plan, audio, video).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .classes import CLASSES

#: The newest generator; clips of every version in :data:`GENERATOR_VERSIONS` stay reproducible.
#: Version 2 adds dynamics: per-event levels over a 30 dB range, sequences that swell or fade, and
#: strikes whose visible swing grows with their loudness.
GENERATOR_VERSION = 2
GENERATOR_VERSIONS = (1, 2)
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
#: How a version-2 clip's event levels evolve: independent, rising, or falling over the clip.
DYNAMICS = ("varied", "crescendo", "decrescendo")
#: Peak level (dBFS) of the softest and the loudest possible event, version 2.
EVENT_LEVEL_RANGE = (-36.0, -6.0)

_NAMESPACE = 0x5F01E  # mixed into every SeedSequence so SynthFoley streams differ from other uses


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


def _dynamics_stream(seed: int, index: int, split: str) -> np.random.Generator:
    """Version 2's own stream (a fourth child), so version 1's three streams stay unchanged."""
    ss = np.random.SeedSequence([_NAMESPACE, 0, int(seed), _split_code(split), int(index)])
    return np.random.default_rng(ss.spawn(4)[3])


def _draw_event_levels(rng: np.random.Generator, count: int) -> tuple[str, list[float]]:
    """A dynamics shape and each event's peak level (dBFS) within :data:`EVENT_LEVEL_RANGE`.

    ``varied``: independent levels. ``crescendo`` / ``decrescendo``: a straight line from a soft
    start (-36 to -26 dB) to a loud end (-14 to -6 dB), or back, each event within +-2 dB of it.
    """
    low, high = EVENT_LEVEL_RANGE
    shape = DYNAMICS[int(rng.choice(len(DYNAMICS), p=[0.5, 0.25, 0.25]))]
    if shape == "varied" or count < 2:
        levels = rng.uniform(low, high, size=count)
    else:
        soft, loud = rng.uniform(low, low + 10), rng.uniform(high - 8, high)
        ramp = np.linspace(soft, loud, count) if shape == "crescendo" else np.linspace(loud, soft, count)
        levels = ramp + rng.uniform(-2, 2, size=count)
    return shape, [round(float(level), 2) for level in np.clip(levels, low, high)]


def event_strengths(record: dict) -> list[float] | None:
    """How hard each event of a clip is struck, from 0.35 (softest level) to 1 (loudest): the
    factor its visible approach (swing, lift, drop) is scaled by. ``None`` for version 1 clips."""
    levels = record.get("event_levels_db")
    if levels is None:
        return None
    low, high = EVENT_LEVEL_RANGE
    return [0.35 + 0.65 * (level - low) / (high - low) for level in levels]


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
    version: int = GENERATOR_VERSION,
) -> dict:
    """The ground-truth record of a clip, without rendering it (cheap).

    Args:
        seed, index, split: identify the clip; the record depends only on these (and ``size``, which
            is only copied into ``width``/``height``).
        size: frame width = height in pixels (even).
        class_index, duration, fps: optional overrides (tests, tools); the dataset never uses them.
            ``duration`` (seconds) is snapped to a whole number of frames; ``fps`` must be one of
            :data:`FPS_CHOICES` (29.97 means 30000/1001).
        version: generator version (:data:`GENERATOR_VERSIONS`); a clip of an older version is
            exactly what that version generated.

    Returns:
        A JSON-serialisable dict: ``id``, ``split``, ``index``, ``seed``, ``class_name``,
        ``class_index``, ``caption``, ``onsets`` (sorted, seconds, on the 16 kHz sample grid),
        ``num_events``, ``duration`` (seconds, exactly ``num_frames / fps``), ``fps`` (float),
        ``fps_fraction`` (e.g. ``"30000/1001"``), ``num_frames``, ``sample_rate``, ``num_samples``
        (``round(duration * sample_rate)``), ``width``, ``height``, ``video`` and ``audio`` (file
        names in the split folder), ``generator_version``. Version 2 adds ``dynamics`` (one of
        :data:`DYNAMICS`) and ``event_levels_db`` (each event's peak level in dBFS, in onset order).
    """
    if version not in GENERATOR_VERSIONS:
        raise ValueError(f"version must be one of {GENERATOR_VERSIONS}, got {version!r}")
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
    record = {
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
        "generator_version": int(version),
    }
    if version >= 2:
        record["dynamics"], record["event_levels_db"] = _draw_event_levels(
            _dynamics_stream(seed, index, split), len(onsets)
        )
    return record
