"""Long clips: the window plan and the equal-power crossfade."""

from __future__ import annotations

import numpy as np
import pytest

from foleycrafter.windows import Window, equal_power_fades, join_windows, plan_windows, select_in_window

SR = 16000
WINDOW = 163840  # 10.24 s


@pytest.mark.parametrize("seconds", [10.24, 10.25, 15.0, 31.7, 180.0])
def test_plan_covers_the_clip_with_equal_windows_and_the_overlap(seconds):
    total = round(seconds * SR)
    plan = plan_windows(total, WINDOW, SR, min_overlap_seconds=1.0)
    assert plan[0].start == 0 and plan[-1].stop == total
    lengths = {w.stop - w.start for w in plan}
    assert len(lengths) == 1 and lengths.pop() <= WINDOW
    for left, right in zip(plan, plan[1:]):
        overlap = left.stop - right.start
        assert SR <= overlap <= SR + len(plan)
    # Only neighbours overlap: every sample is covered by one or two windows.
    cover = np.zeros(total, dtype=int)
    for w in plan:
        cover[w.start : w.stop] += 1
    assert cover.min() == 1 and cover.max() <= 2
    if total > WINDOW:
        assert len(plan) == int(np.ceil((total - SR) / (WINDOW - SR)))


def test_short_clip_is_one_window_of_its_own_length():
    assert plan_windows(48000, WINDOW, SR) == [Window(0, 48000, SR)]


def test_overlap_limits():
    with pytest.raises(ValueError, match="a quarter of a window"):
        plan_windows(10 * WINDOW, WINDOW, SR, min_overlap_seconds=3.0)


def test_fades_are_equal_power_and_monotonic():
    fade_out, fade_in = equal_power_fades(1000)
    np.testing.assert_allclose(fade_out**2 + fade_in**2, 1.0, atol=1e-6)
    assert np.all(np.diff(fade_out) < 0) and np.all(np.diff(fade_in) > 0)


def test_joined_sine_has_no_discontinuity():
    """Windows cut from one continuous sine and rejoined: the crossfade keeps the waveform smooth."""
    total = round(25.3 * SR)
    plan = plan_windows(total, WINDOW, SR, min_overlap_seconds=1.0)
    t = np.arange(total) / SR
    signal = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    # Uncorrelated phase per window, as independent generations would be.
    segments = []
    for k, w in enumerate(plan):
        segments.append((0.5 * np.sin(2 * np.pi * 220 * t[w.start : w.stop] + 1.3 * k)).astype(np.float32))
    joined = join_windows(segments, plan)
    assert joined.shape == (total,)
    max_step = np.abs(np.diff(signal)).max()
    # No sample-to-sample jump larger than the sine's own steepest step (plus the fade's slope).
    assert np.abs(np.diff(joined)).max() <= 1.2 * max_step
    # Outside overlaps the audio is the window's own.
    first_overlap_start = plan[1].start
    np.testing.assert_array_equal(joined[:first_overlap_start], segments[0][:first_overlap_start])


def test_join_checks_lengths():
    plan = plan_windows(2 * WINDOW - SR, WINDOW, SR)
    assert len(plan) == 2
    with pytest.raises(ValueError, match="needs 163840 samples"):
        join_windows([np.zeros(WINDOW), np.zeros(10)], plan)


def test_select_in_window_shifts_times():
    window = Window(SR * 10, SR * 20, SR)
    assert select_in_window([1.0, 10.0, 12.5, 20.0], window) == [0.0, 2.5]
