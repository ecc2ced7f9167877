"""Pure functions of foleycrafter.eval.onset_sources on synthetic arrays (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foleycrafter.eval import onset_sources as osrc
from foleycrafter.spectrogram import LOG_MEL_MIN


def test_classify_onsets_by_distance_to_nearest_truth():
    truth = [1.0, 2.0]
    times = [1.03, 1.05, 1.1, 1.15, 1.2, 2.0, 3.0]
    labels = osrc.classify_onsets(times, truth)
    assert list(labels) == ["matched", "matched", "near", "near", "far", "matched", "far"]
    assert osrc.count_classes(labels) == {"total": 7, "matched": 3, "near": 2, "far": 2}


def test_classify_onsets_without_truth_is_all_far_and_empty_is_empty():
    assert list(osrc.classify_onsets([0.5, 1.0], [])) == ["far", "far"]
    assert osrc.count_classes(osrc.classify_onsets([], [1.0])) == {
        "total": 0,
        "matched": 0,
        "near": 0,
        "far": 0,
    }


def test_add_counts_and_fraction_with_nearby():
    total = osrc.add_counts({}, {"far": 2, "total": 3})
    osrc.add_counts(total, {"far": 1, "total": 1})
    assert total == {"far": 3, "total": 4}
    assert osrc.fraction_with_nearby([0.0, 1.0, 2.0, 3.0], [0.04, 2.06]) == pytest.approx(0.25)
    assert math.isnan(osrc.fraction_with_nearby([], [1.0]))


def test_off_and_on_mask_columns():
    # 100 columns per second, centres at 5, 15, ... ms; one onset at 0.5 s, clip of 1 s in 2 s of columns.
    off = osrc.off_mask_columns([0.5], num_columns=200, duration=1.0)
    on = osrc.on_mask_columns([0.5], num_columns=200, duration=1.0)
    assert off.shape == (200,) and not off[100:].any() and not on[100:].any()
    # Column 35 is centred at 0.355 s (0.145 s away): on; column 34 at 0.345 s: off.
    assert on[35] and not off[35] and off[34] and not on[34]
    assert on[64] and off[65]
    assert int(on.sum()) == 30 and int(off.sum()) == 70
    assert osrc.off_mask_columns([], 10, 0.05).tolist() == [True] * 5 + [False] * 5


def test_column_energy_db_and_mean_over():
    log_mel = np.full((256, 4), LOG_MEL_MIN)
    log_mel[:, 1] = 0.0  # magnitude 1 in every band: 0 dB
    log_mel[:128, 2] = math.log(10.0)  # magnitude 10 in half the bands: 10 log10(100 / 2) dB
    energy = osrc.column_energy_db(log_mel)
    assert energy == pytest.approx([-100.0, 0.0, 10 * math.log10(50.0), -100.0], abs=1e-6)
    assert osrc.mean_over(energy, [False, True, True, False]) == pytest.approx(10 * math.log10(50.0) / 2)
    assert math.isnan(osrc.mean_over(energy, [False] * 4))


def _synthetic_log_mel(onset_columns, num_columns=300, noise=0.0, seed=0):
    """Quiet floor plus decaying broadband events starting at the given columns."""
    rng = np.random.default_rng(seed)
    magnitude = np.full((256, num_columns), 1e-3)
    for start in onset_columns:
        decay = np.exp(-np.arange(num_columns - start) / 8.0)
        magnitude[:, start:] += decay[None, :]
    log_mel = np.log(magnitude)
    return log_mel + noise * rng.standard_normal(log_mel.shape)


def test_detect_mel_onsets_finds_events_at_their_columns():
    onsets = osrc.detect_mel_onsets(_synthetic_log_mel([50, 120, 200]), offset_s=0.0)
    # The rise is complete at the event's column: its centre (t + 0.5) / 100.
    assert onsets.times == pytest.approx([0.505, 1.205, 2.005], abs=0.011)
    assert onsets.envelope.shape == (300,) and onsets.threshold.shape == (300,)
    assert len(onsets) == 3 and np.all(onsets.strengths > 0.5)


def test_detect_mel_onsets_ignores_stationary_noise_and_the_padding():
    quiet = osrc.detect_mel_onsets(_synthetic_log_mel([], noise=0.05))
    assert len(quiet) == 0
    # An event past num_columns (the window padding) is not analysed.
    late = osrc.detect_mel_onsets(_synthetic_log_mel([60, 250]), offset_s=0.0, num_columns=200)
    assert late.times == pytest.approx([0.605], abs=0.011)


def test_pick_peaks_enforces_minimum_interval_keeping_the_stronger():
    envelope = np.zeros(100)
    envelope[[20, 25, 60]] = [0.5, 1.0, 0.8]
    peaks, threshold = osrc.pick_peaks(envelope, peak_window=1, min_interval=10)
    assert peaks.tolist() == [25, 60]
    assert threshold.shape == (100,)


def test_referee_scores():
    scores = osrc.referee_scores([0.51, 1.0, 2.2], [0.5, 2.0])
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 2)
    assert scores["num_mel_onsets"] == 3 and scores["truths_found"] == 1


def test_chance_of_nearby():
    region = np.zeros(100, dtype=bool)
    region[:50] = True  # 0.005 .. 0.495 s
    # Onset at 0.25 s: columns centred within 50 ms are 0.205 .. 0.295 s, 10 of the 50.
    assert osrc.chance_of_nearby([0.25], region) == pytest.approx(0.2)
    assert osrc.chance_of_nearby([], region) == 0.0
    assert math.isnan(osrc.chance_of_nearby([0.25], np.zeros(5, dtype=bool)))


def test_pearson():
    x = np.arange(10.0)
    assert osrc.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert osrc.pearson(x, -x) == pytest.approx(-1.0)
    assert math.isnan(osrc.pearson(x, np.ones(10)))
    assert math.isnan(osrc.pearson([1.0, 2.0], [2.0, 1.0]))
    with pytest.raises(ValueError):
        osrc.pearson([1.0, 2.0, 3.0], [1.0, 2.0])


def test_profile_correlations_separate_noise_from_clip_content():
    # Each profile = the seed's noise pattern + the clip's own pattern: different clips with the same
    # seed share the noise part, the same clip with two seeds shares its own part.
    rng = np.random.default_rng(0)
    noise = {seed: rng.standard_normal(400) for seed in (0, 1)}
    content = {clip: rng.standard_normal(400) for clip in "abc"}
    profiles = {(clip, seed): 2.0 * noise[seed] + content[clip] for clip in "abc" for seed in (0, 1)}
    keep = {clip: np.ones(400, dtype=bool) for clip in "abc"}
    result = osrc.profile_correlations(profiles, keep)
    assert len(result["same_seed"]["values"]) == 6  # 3 pairs x 2 seeds
    assert len(result["different_seed"]["values"]) == 6  # 3 pairs x 2 seed orders
    assert len(result["same_clip_different_seed"]["values"]) == 3
    # Expected correlations: 4 / 5 for a shared noise part, 1 / 5 for a shared clip part, 0 otherwise.
    assert result["same_seed"]["mean"] == pytest.approx(0.8, abs=0.05)
    assert result["different_seed"]["mean"] == pytest.approx(0.0, abs=0.1)
    assert result["same_clip_different_seed"]["mean"] == pytest.approx(0.2, abs=0.1)


def test_profile_correlations_use_columns_kept_in_both_clips():
    base = np.zeros(10)
    a = base.copy()
    a[:5] = [1, 2, 3, 4, 5]
    b = base.copy()
    b[:5] = [5, 4, 3, 2, 1]
    b[5:] = 100.0 * np.arange(5)  # would dominate if the columns were not restricted
    keep = {"a": np.arange(10) < 5, "b": np.ones(10, dtype=bool)}
    result = osrc.profile_correlations({("a", 0): a, ("b", 0): b}, keep)
    assert result["same_seed"]["values"] == [-1.0]
    assert math.isnan(result["different_seed"]["mean"])


def test_recurrence_rates_count_same_time_onsets_by_seed_relation():
    region = np.ones(300, dtype=bool)
    onsets = {
        ("a", 0): (np.array([0.5, 1.5]), region),
        ("b", 0): (np.array([0.52, 2.5]), region),
        ("a", 1): (np.array([1.0]), region),
        ("b", 1): (np.array([2.0]), region),
    }
    rates = osrc.recurrence_rates(onsets)
    # Same seed: a0 -> b0 finds 0.5 (1 of 2), b0 -> a0 finds 0.52 (1 of 2), a1 -> b1 0 of 1, b1 -> a1 0 of 1.
    assert rates["num_same_seed"] == 6 and rates["same_seed"] == pytest.approx(2 / 6)
    # Different seeds: a0 -> b1, b1 -> a0, b0 -> a1, a1 -> b0: nothing within 50 ms.
    assert rates["num_different_seed"] == 6 and rates["different_seed"] == 0.0
    assert 0.0 < rates["chance_same_seed"] < 0.1


def test_recurrence_rates_skip_onsets_outside_the_other_clips_region():
    region_a = np.ones(300, dtype=bool)
    region_b = np.ones(300, dtype=bool)
    region_b[40:60] = False  # clip b has a true event around 0.5 s
    onsets = {("a", 0): (np.array([0.5, 1.5]), region_a), ("b", 0): (np.array([1.5]), region_b)}
    rates = osrc.recurrence_rates(onsets)
    assert rates["num_same_seed"] == 2  # a's 0.5 s is not considered; a's 1.5 s and b's 1.5 s are
    assert rates["same_seed"] == 1.0


def test_mask_onset_times_are_run_starts():
    mask = -np.ones(512)
    mask[0:10] = 1.0
    mask[50:60] = 1.0
    mask[61:71] = 1.0
    assert osrc.mask_onset_times(mask).tolist() == pytest.approx([0.0, 0.5, 0.61])
    assert osrc.mask_onset_times(-np.ones(8)).size == 0
