"""Onset metrics on hand-built cases whose values are worked out by hand (issue: perfect, shifted by
30 ms and 80 ms, missing and extra onsets)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from foleycrafter.audio_onsets import AudioOnsets
from foleycrafter.eval import (
    evaluate_onsets,
    match_clips,
    match_onsets,
    mean_timing_error_ms,
    onset_average_precision,
    onset_count_accuracy,
    onset_prf,
    pooled_onset_metrics,
)

REFERENCE = np.array([0.5, 1.2, 2.0, 3.1])
STRENGTHS = np.array([0.9, 0.7, 0.8, 0.6])


def test_perfect_estimate():
    assert onset_prf(REFERENCE, REFERENCE) == (1.0, 1.0, 1.0)
    assert onset_average_precision(REFERENCE, REFERENCE, STRENGTHS) == 1.0
    assert mean_timing_error_ms(REFERENCE, REFERENCE) == 0.0
    np.testing.assert_array_equal(
        match_onsets(REFERENCE, REFERENCE[::-1], 0.05), [[0, 3], [1, 2], [2, 1], [3, 0]]
    )


@pytest.mark.parametrize("shift", [0.03, -0.03])
def test_shifted_by_30_ms_is_within_50_ms(shift):
    estimated = REFERENCE + shift
    assert onset_prf(REFERENCE, estimated, tolerance=0.05) == (1.0, 1.0, 1.0)
    assert mean_timing_error_ms(REFERENCE, estimated, tolerance=0.05) == pytest.approx(30.0)
    assert onset_average_precision(REFERENCE, estimated, STRENGTHS, tolerance=0.1) == 1.0
    # A tighter tolerance than the shift matches nothing.
    assert onset_prf(REFERENCE, estimated, tolerance=0.025) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("shift", [0.08, -0.08])
def test_shifted_by_80_ms_fails_50_ms_but_matches_100_ms(shift):
    estimated = REFERENCE + shift
    assert onset_prf(REFERENCE, estimated, tolerance=0.05) == (0.0, 0.0, 0.0)
    assert math.isnan(mean_timing_error_ms(REFERENCE, estimated, tolerance=0.05))
    assert onset_prf(REFERENCE, estimated, tolerance=0.1) == (1.0, 1.0, 1.0)
    assert onset_average_precision(REFERENCE, estimated, STRENGTHS, tolerance=0.1) == 1.0
    assert onset_average_precision(REFERENCE, estimated, STRENGTHS, tolerance=0.05) == 0.0
    assert mean_timing_error_ms(REFERENCE, estimated, tolerance=0.1) == pytest.approx(80.0)


def test_tolerance_is_inclusive_despite_float_rounding():
    # 1.05 - 1.0 = 0.05000000000000004 in floating point; it still counts as 50 ms.
    assert len(match_onsets([1.0], [1.05], 0.05)) == 1
    assert len(match_onsets([1.0], [1.0501], 0.05)) == 0


def test_missing_onsets_lower_recall_exactly():
    precision, recall, f1 = onset_prf(REFERENCE, REFERENCE[:3])
    assert (precision, recall) == (1.0, 0.75)
    assert f1 == pytest.approx(2 * 0.75 / 1.75)  # 6/7
    # One of four references is never retrieved: AP = 3 steps of 1/4 recall at precision 1.
    assert onset_average_precision(REFERENCE, REFERENCE[:3], STRENGTHS[:3]) == pytest.approx(0.75)
    precision, recall, _ = onset_prf(REFERENCE, [])
    assert (precision, recall) == (1.0, 0.0)


def test_extra_onsets_lower_precision_exactly():
    estimated = np.concatenate([REFERENCE, [2.6, 4.0]])
    precision, recall, f1 = onset_prf(REFERENCE, estimated)
    assert precision == pytest.approx(4 / 6) and recall == 1.0
    assert f1 == pytest.approx(0.8)  # 2 * (2/3) * 1 / (5/3)


def test_one_estimate_cannot_match_two_references():
    # Both references lie within 50 ms of the single estimate; only one can claim it.
    pairs = match_onsets([1.0, 1.03], [1.015], 0.05)
    assert len(pairs) == 1
    assert onset_prf([1.0, 1.03], [1.015]) == pytest.approx((1.0, 0.5, 2 / 3))
    # Two estimates on one reference: one is a false positive.
    assert onset_prf([1.0], [1.0, 1.01]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert onset_average_precision([1.0], [1.0, 1.01], [0.9, 0.8]) == 1.0  # the duplicate ranks last


def test_matching_is_optimal_not_greedy():
    # Greedy nearest-first pairs (0.07, 0.04) (30 ms) and leaves 0.00 and 0.11 apart by 110 ms.
    pairs = match_onsets([0.0, 0.07], [0.04, 0.11], 0.05)
    np.testing.assert_array_equal(pairs, [[0, 0], [1, 1]])
    assert onset_prf([0.0, 0.07], [0.04, 0.11]) == (1.0, 1.0, 1.0)
    # Among equally many matches the total |dt| is smallest: 20 + 10 ms rather than 50 + 20 ms.
    np.testing.assert_array_equal(match_onsets([1.0, 1.04], [1.02, 1.05], 0.05), [[0, 0], [1, 1]])
    np.testing.assert_array_equal(match_onsets([1.0, 1.04], [1.05, 1.02], 0.05), [[0, 1], [1, 0]])


def test_empty_cases():
    assert onset_prf([], []) == (1.0, 1.0, 1.0)
    assert onset_prf([], [1.0]) == (0.0, 1.0, 0.0)
    assert onset_prf([1.0], []) == (1.0, 0.0, 0.0)
    assert onset_average_precision([], [], []) == 1.0
    assert onset_average_precision([], [1.0], [0.5]) == 0.0
    assert onset_average_precision([1.0], [], []) == 0.0
    assert match_onsets([], [1.0], 0.05).shape == (0, 2)
    assert math.isnan(mean_timing_error_ms([], []))


def test_average_precision_depends_on_where_false_positives_rank():
    reference = [1.0, 2.0, 3.0]
    estimated = [1.0, 2.0, 3.0, 5.0]  # 5.0 is a false positive
    # Ranked last: the three true positives come first at precision 1 -> AP = 1.
    assert onset_average_precision(reference, estimated, [0.9, 0.8, 0.7, 0.1]) == pytest.approx(1.0)
    # Ranked first: FP, then TPs at precision 1/2, 2/3, 3/4, each adding 1/3 recall:
    # AP = (1/2 + 2/3 + 3/4) / 3 = 23/36.
    assert onset_average_precision(reference, estimated, [0.9, 0.8, 0.7, 0.95]) == pytest.approx(23 / 36)
    # Ranked second: TP (1), FP, TP (2/3), TP (3/4): AP = (1 + 2/3 + 3/4) / 3 = 29/36.
    assert onset_average_precision(reference, estimated, [0.9, 0.5, 0.4, 0.6]) == pytest.approx(29 / 36)


def test_average_precision_ties_and_ranked_matching():
    # Equal strengths form one threshold (as sklearn): precision 1/2 at recall 1/2 -> AP = 1/4.
    assert onset_average_precision([1.0, 2.0], [1.0, 5.0], [0.5, 0.5]) == pytest.approx(0.25)
    # The strongest estimate claims the reference first, even if a weaker one is closer to it.
    assert onset_average_precision([1.0], [1.09, 1.0], [0.9, 0.5], tolerance=0.1) == 1.0
    assert onset_average_precision([1.0], [1.2, 1.0], [0.9, 0.5], tolerance=0.1) == pytest.approx(0.5)


def test_count_accuracy():
    assert onset_count_accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert onset_count_accuracy([0], [0]) == 1.0
    with pytest.raises(ValueError, match="clips"):
        onset_count_accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="at least one clip"):
        onset_count_accuracy([], [])
    with pytest.raises(ValueError, match="non-negative integer"):
        onset_count_accuracy([1.5], [1])


def test_evaluate_onsets_micro_averages_and_pools():
    clips = [
        # Clip A: 4 references, all found 10 ms late, strong.
        (REFERENCE, REFERENCE + 0.01, [0.9, 0.9, 0.9, 0.9]),
        # Clip B: 1 reference found exactly, plus 2 weak false positives.
        ([1.0], [1.0, 2.0, 3.0], [0.8, 0.2, 0.1]),
        # Clip C: nothing to find, nothing found.
        ([], [], []),
    ]
    result = evaluate_onsets(clips)
    # TP = 5, FP = 2, FN = 0 summed over clips.
    assert result["true_positives"] == 5 and result["false_positives"] == 2 and result["false_negatives"] == 0
    assert result["precision"] == pytest.approx(5 / 7) and result["recall"] == 1.0
    assert result["f1"] == pytest.approx(2 * (5 / 7) / (12 / 7))
    # Pooled ranking: the 5 true positives outrank both false positives -> AP = 1.
    assert result["average_precision"] == pytest.approx(1.0)
    # Per clip: A = 1, B = 1 (its FPs rank after its TP), C = 1 (empty).
    assert result["average_precision_clip_mean"] == pytest.approx(1.0)
    assert result["count_accuracy"] == pytest.approx(2 / 3)
    assert result["mean_timing_error_ms"] == pytest.approx((4 * 10.0 + 0.0) / 5)
    assert result["num_clips"] == 3 and result["num_reference"] == 5 and result["num_estimated"] == 7
    json.dumps(result)  # JSON-ready


def test_evaluate_onsets_pooled_ranking_across_clips():
    # A false positive in clip B outranks the true positive of clip A:
    # ranking FP (0.9), TP (0.5) -> precision 1/2 at recall 1 -> AP = 1/2; per clip: A = 1, B = 0.
    result = evaluate_onsets([([1.0], [1.0], [0.5]), ([], [2.0], [0.9])])
    assert result["average_precision"] == pytest.approx(0.5)
    assert result["average_precision_clip_mean"] == pytest.approx(0.5)
    assert result["precision"] == 0.5 and result["recall"] == 1.0


def test_clips_matched_once_pool_like_a_fresh_evaluation_of_any_resample():
    # What the bootstrap of `eval --compare` relies on: pooling per-clip matches over a resample
    # (clips repeated) gives what evaluating that resample from scratch gives.
    rng = np.random.default_rng(0)
    clips = []
    for _ in range(12):
        reference = np.sort(rng.uniform(0, 5, rng.integers(0, 5)))
        estimated = np.sort(
            np.concatenate([reference + rng.normal(0, 0.04, reference.size), rng.uniform(0, 5, 2)])
        )
        clips.append((reference, estimated, rng.uniform(0, 1, estimated.size)))
    matches = match_clips(clips)
    for sample in ([0, 0, 3, 7, 7, 7, 11], list(range(12)), [5]):
        fresh = evaluate_onsets([clips[i] for i in sample])
        pooled = pooled_onset_metrics([matches[i] for i in sample])
        for key in ("precision", "recall", "f1", "average_precision", "true_positives", "num_reference"):
            assert pooled[key] == fresh[key], key
    assert 0 < pooled_onset_metrics(matches)["average_precision"] < 1


def test_evaluate_onsets_accepts_detector_results_and_missing_strengths():
    detected = AudioOnsets(
        times=np.array([0.5, 1.2]),
        strengths=np.array([0.4, 0.3]),
        envelope=np.zeros(10),
        frame_times=np.zeros(10),
        threshold=np.zeros(10),
        sample_rate=16000,
        duration=2.0,
    )
    result = evaluate_onsets([([0.5, 1.2], detected), ([0.7], [0.7])])
    assert result["f1"] == 1.0 and result["average_precision"] == 1.0
    assert evaluate_onsets([([1.0], [5.0])])["mean_timing_error_ms"] is None


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="1-D"):
        onset_prf([[1.0]], [1.0])
    with pytest.raises(ValueError, match="finite"):
        onset_prf([1.0], [float("nan")])
    with pytest.raises(ValueError, match="tolerance"):
        onset_prf([1.0], [1.0], tolerance=0)
    with pytest.raises(ValueError, match="one value per estimated onset"):
        onset_average_precision([1.0], [1.0, 2.0], [0.5])
    with pytest.raises(ValueError, match="at least one clip"):
        evaluate_onsets([])
    with pytest.raises(ValueError, match="clip 0"):
        evaluate_onsets([[1.0]])


def test_average_precision_is_sklearns_when_every_reference_is_found():
    """With every reference matched by some estimate, the AP equals sklearn's on the TP/FP labels."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(200):
        reference = np.sort(rng.uniform(0, 10, rng.integers(1, 8)))
        false_positives = rng.uniform(0, 10, rng.integers(0, 6))
        false_positives = false_positives[np.abs(false_positives[:, None] - reference).min(axis=1) > 0.2]
        estimated = np.concatenate([reference + rng.uniform(-0.04, 0.04, reference.size), false_positives])
        # Coarse strengths in half the trials, so that ties occur.
        strengths = rng.random(estimated.size)
        if trial % 2:
            strengths = np.round(strengths * 4) / 4
        labels = np.arange(estimated.size) < reference.size
        expected = metrics.average_precision_score(labels, strengths)
        assert onset_average_precision(reference, estimated, strengths, 0.1) == pytest.approx(expected)
