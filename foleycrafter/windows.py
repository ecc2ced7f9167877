"""Long videos: overlapping model windows joined with an equal-power crossfade.

The model renders one window of audio (10.24 s for Auffusion). A longer clip is cut into the fewest
equal windows (each at most one model window) whose neighbours overlap by ``min_overlap`` seconds; each
window gets its own onset mask and semantic embedding, and the audio of neighbouring windows is
crossfaded over their whole overlap with ``cos``/``sin`` gains (equal power: ``cos^2 + sin^2 = 1``,
so uncorrelated material keeps its loudness through the fade).

Window boundaries are fixed in samples first, so every window renders a whole number of samples
and the joined waveform has exactly ``round(duration * sample_rate)`` samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """One model window of a long clip.

    Attributes:
        start, stop: audio samples; the window covers ``[start, stop)``.
        sample_rate: Hz.
    """

    start: int
    stop: int
    sample_rate: int

    @property
    def start_seconds(self) -> float:
        return self.start / self.sample_rate

    @property
    def end_seconds(self) -> float:
        return self.stop / self.sample_rate

    @property
    def seconds(self) -> float:
        """Length in seconds (a whole number of samples)."""
        return (self.stop - self.start) / self.sample_rate


def plan_windows(
    total_samples: int, window_samples: int, sample_rate: int, min_overlap_seconds: float = 1.0
) -> list[Window]:
    """Cover ``[0, total_samples)`` with the fewest equal windows of at most ``window_samples`` that
    overlap their neighbours by ``min_overlap_seconds`` (the last overlap may be a few samples
    longer). A clip that fits one window gets exactly one, of its own length.

    Only neighbours overlap (the overlap is at most half a window), so every sample is the crossfade
    of at most two windows.

    Raises:
        ValueError: the length is not positive, or (for a clip longer than one window) the overlap
            is not in ``[0, a quarter of a window]``.
    """
    if total_samples <= 0:
        raise ValueError(f"A clip needs a positive length, got {total_samples} samples.")
    if total_samples <= window_samples:
        return [Window(0, total_samples, sample_rate)]  # no neighbours: the overlap plays no part
    overlap = int(round(min_overlap_seconds * sample_rate))
    if not 0 <= overlap <= window_samples // 4:
        raise ValueError(
            f"The window overlap must lie in [0, {window_samples / 4 / sample_rate:.2f}] s "
            f"(a quarter of a window), got {min_overlap_seconds} s."
        )
    count = math.ceil((total_samples - overlap) / (window_samples - overlap))
    length = math.ceil((total_samples + (count - 1) * overlap) / count)
    starts = [k * (length - overlap) for k in range(count - 1)] + [total_samples - length]
    return [Window(start, start + length, sample_rate) for start in starts]


def equal_power_fades(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Gains ``(fade_out, fade_in)`` over ``length`` samples with ``fade_out^2 + fade_in^2 = 1``."""
    phase = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1) * (np.pi / 2)
    return np.cos(phase).astype(np.float32), np.sin(phase).astype(np.float32)


def join_windows(segments: list[np.ndarray], windows: list[Window]) -> np.ndarray:
    """Join per-window waveforms into one, crossfading each overlap.

    Args:
        segments: float waveforms, ``segments[k]`` of exactly ``windows[k].stop - windows[k].start``
            samples.
        windows: the plan from :func:`plan_windows`.

    Returns:
        float32 waveform of ``windows[-1].stop`` samples.
    """
    if len(segments) != len(windows) or not segments:
        raise ValueError(f"Got {len(segments)} audio segments for {len(windows)} windows.")
    total = windows[-1].stop
    out = np.zeros(total, dtype=np.float32)
    for k, (segment, window) in enumerate(zip(segments, windows)):
        segment = np.asarray(segment, dtype=np.float32).copy()
        if segment.shape != (window.stop - window.start,):
            raise ValueError(
                f"Window {k} needs {window.stop - window.start} samples, its audio has {segment.shape}."
            )
        if k > 0:
            overlap = windows[k - 1].stop - window.start
            fade_in = equal_power_fades(overlap)[1]
            segment[:overlap] *= fade_in
        if k + 1 < len(windows):
            overlap = window.stop - windows[k + 1].start
            fade_out = equal_power_fades(overlap)[0]
            segment[len(segment) - overlap :] *= fade_out
        out[window.start : window.stop] += segment
    return out


def select_in_window(times, window: Window) -> list[float]:
    """Times (s) that fall inside ``window``, made relative to its start."""
    return [
        float(t) - window.start_seconds
        for t in times
        if window.start_seconds <= float(t) < window.end_seconds
    ]
