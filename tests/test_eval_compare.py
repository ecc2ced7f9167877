"""Paired bootstrap comparison of two evaluation results (foleycrafter eval --compare)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from foleycrafter.eval import benchmark
from foleycrafter.eval.compare import compare_configuration, compare_results


def rows(num_clips=40, hit_rate=1.0, semantic=True, seed=0):
    """Per-clip rows of 3 true onsets 1 s apart; a fraction ``hit_rate`` of clips are generated exactly
    on time, the others 200 ms late (all misses)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_clips):
        reference = (rng.uniform(0.5, 1.5) + np.arange(3.0)).round(3).tolist()
        on_time = i < round(hit_rate * num_clips)
        estimated = [t + (0.0 if on_time else 0.2) for t in reference]
        row = {
            "id": f"clip_{i}",
            "reference_onsets": reference,
            "estimated_onsets": estimated,
            "estimated_strengths": [1.0, 0.8, 0.6],
        }
        if semantic:
            row["semantic_correct"] = on_time
        out.append(row)
    return out


def results_file(clip_rows, name="both_detected", split="test", frechet=10.0):
    return {
        "split": split,
        "settings": {"steps": 25},
        "configurations": [
            {
                "configuration": {"name": name},
                "skipped": None,
                "metrics": {"frechet_distance": frechet},
                "clips": clip_rows,
            }
        ],
    }


def test_identical_runs_are_within_noise():
    same = rows(hit_rate=0.7)
    result = compare_configuration(same, same, resamples=50)
    for metric in ("f1", "average_precision", "semantic_accuracy"):
        assert result[metric]["difference"] == 0.0
        assert result[metric]["low"] == result[metric]["high"] == 0.0
        assert result[metric]["verdict"] == "within noise"
    assert result["f1"]["baseline"] == pytest.approx(0.7)


def test_a_clear_loss_is_worse_and_a_clear_gain_is_better():
    good, bad = rows(hit_rate=0.9), rows(hit_rate=0.4)
    worse = compare_configuration(good, bad, resamples=200)
    assert worse["f1"]["difference"] == pytest.approx(0.4 - 0.9)
    assert worse["f1"]["high"] < 0 and worse["f1"]["verdict"] == "worse"
    assert worse["semantic_accuracy"]["verdict"] == "worse"
    assert compare_configuration(bad, good, resamples=200)["average_precision"]["verdict"] == "better"


def test_one_clip_of_forty_is_noise():
    """Changing one clip of 40 must not be called a loss: the interval straddles zero."""
    result = compare_configuration(rows(hit_rate=0.5), rows(hit_rate=0.475), resamples=500)
    assert result["f1"]["difference"] < 0
    assert result["f1"]["low"] < 0 < result["f1"]["high"] or result["f1"]["high"] == 0
    assert result["f1"]["verdict"] == "within noise"


def test_bad_pairs_are_refused_and_missing_metrics_reported():
    with pytest.raises(ValueError, match="different clips"):
        compare_configuration(
            rows(num_clips=5), [{**row, "id": "other_" + row["id"]} for row in rows(num_clips=5)]
        )
    no_classifier = compare_configuration(rows(semantic=False), rows(semantic=False), resamples=10)
    assert no_classifier["semantic_accuracy"]["verdict"] == "not measured"
    with pytest.raises(ValueError, match="same split"):
        compare_results(results_file(rows()), results_file(rows(), split="validation"))
    two = results_file(rows())
    two["configurations"] += results_file(rows(), name="temporal_gt_onsets")["configurations"]
    with pytest.raises(ValueError, match="share no evaluated configuration"):
        compare_results(two, results_file(rows(), name="semantic_empty_prompt"))


def test_a_max_clips_run_is_compared_on_the_clips_it_shares_with_a_longer_run():
    longer, shorter = rows(num_clips=40, hit_rate=0.5), rows(num_clips=40, hit_rate=0.5)[:10]
    result = compare_configuration(longer, shorter, resamples=20)
    # The first 10 clips are all on time in both: the longer run's late clips are not compared.
    assert result["f1"]["baseline"] == pytest.approx(1.0) and result["f1"]["difference"] == 0.0
    compared = compare_results(results_file(longer), results_file(shorter), resamples=20)
    assert compared["configurations"]["both_detected"]["clips"] == 10
    # Each file's Fréchet distance is of its own whole set: not shown for runs of different lengths.
    assert compared["configurations"]["both_detected"]["frechet_distance"] == {
        "baseline": None,
        "candidate": None,
    }


def test_two_single_configurations_of_different_names_are_paired():
    plain = results_file(rows(hit_rate=0.9))
    curve = results_file(rows(hit_rate=0.4), name="both_detected_loudness")
    compared = compare_results(plain, curve, resamples=50)
    (name,) = compared["configurations"]
    assert name == "both_detected -> both_detected_loudness"
    assert compared["configurations"][name]["f1"]["verdict"] == "worse"


def test_cli_compare_prints_the_verdicts_and_writes_json(tmp_path, capsys):
    baseline, candidate = tmp_path / "a.json", tmp_path / "b.json"
    baseline.write_text(json.dumps(results_file(rows(hit_rate=0.9))))
    candidate.write_text(json.dumps(results_file(rows(hit_rate=0.4), frechet=30.0)))
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    out = tmp_path / "comparison.json"
    args = parser.parse_args(["--compare", str(baseline), str(candidate), "--out", str(out)])
    assert benchmark.run(args) == 0
    printed = capsys.readouterr().out
    assert "onset F1 @ 50 ms" in printed and "worse" in printed and "+20.0" in printed
    written = json.loads(out.read_text())
    assert written["configurations"]["both_detected"]["f1"]["verdict"] == "worse"
    assert written["compared"] == [str(baseline), str(candidate)]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        benchmark.run(parser.parse_args(["--compare", str(tmp_path / "broken.json"), str(candidate)]))


def test_a_larger_loudness_error_is_worse():
    """The loudness error is the one compared metric where smaller is better; clips silent on both
    sides (no error) are left out of the means."""
    close, far = rows(), rows()
    for i, (a, b) in enumerate(zip(close, far)):
        a["loudness_error_db"], b["loudness_error_db"] = 2.0 + 0.1 * (i % 3), 6.0 + 0.1 * (i % 5)
    close[0]["loudness_error_db"] = far[0]["loudness_error_db"] = None
    compared = compare_configuration(close, far, resamples=200)["loudness_error_db"]
    assert compared["difference"] > 3.5 and compared["low"] > 0 and compared["verdict"] == "worse"
    assert compare_configuration(far, close, resamples=200)["loudness_error_db"]["verdict"] == "better"
    assert (
        compare_configuration(rows(), rows(), resamples=50)["loudness_error_db"]["verdict"] == "not measured"
    )
