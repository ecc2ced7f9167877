"""Event class accuracy: the stretch of audio judged per event, a clip's value, the report and --compare."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from foleycrafter.data import synthfoley as sf
from foleycrafter.eval import benchmark, report, running
from foleycrafter.eval.compare import compare_configuration, format_comparison
from foleycrafter.eval.event_classes import clip_event_classes, event_windows, score_event_classes

SR = 16000


# -- the stretches ---------------------------------------------------------------------------------------
def test_windows_run_from_just_before_an_event_to_the_next_or_half_a_second():
    # 50 ms before each event; up to 0.5 s after it, or 50 ms before the next event.
    assert event_windows([0.5, 0.7, 2.0], 3 * SR) == [(7200, 10400), (10400, 19200), (31200, 40000)]
    # The first event at the very start has no pre-roll; the audio's end cuts the last stretch, whose
    # start then moves back to make it 0.2 s.
    assert event_windows([0.0, 1.0], 18000) == [(0, 8000), (14800, 18000)]
    # A stretch is at least the classifier's 0.2 s (3200 samples): near the end its start moves back.
    assert event_windows([2.9], 3 * SR) == [(44800, 48000)]
    assert event_windows([0.01], 1000) == [(0, 1000)]  # shorter audio: all of it
    # Two events at the same instant are one sound: the same stretch.
    assert event_windows([1.0, 1.0, 1.3], 2 * SR) == [(15200, 20000), (15200, 20000), (20000, 28800)]
    # Other settings.
    assert event_windows([1.0], 2 * SR, pre_roll=0.0, span=0.25) == [(16000, 20000)]
    assert event_windows([1.0], 2 * 8000, sample_rate=8000, min_samples=100) == [(7600, 12000)]
    assert event_windows([], SR) == []


def test_windows_refuse_bad_events():
    with pytest.raises(ValueError, match="sorted"):
        event_windows([1.0, 0.5], SR * 2)
    with pytest.raises(ValueError, match="outside the audio"):
        event_windows([0.5, 1.0], SR)
    with pytest.raises(ValueError, match="outside the audio"):
        event_windows([-0.1], SR)
    with pytest.raises(ValueError, match="finite"):
        event_windows([float("nan")], SR)
    with pytest.raises(ValueError, match="span"):
        event_windows([0.1], SR, span=0)


# -- a clip's value, with a classifier whose answers are known --------------------------------------------
class LevelClassifier:
    """Says class ``round(10 * median |x|)`` of each stretch, and keeps the stretches it was given."""

    class_names = [f"class_{i}" for i in range(8)]

    def __init__(self):
        self.seen = []

    def predict(self, waveforms):
        self.seen += [np.asarray(w) for w in waveforms]
        return np.array([int(round(10 * np.median(np.abs(w)))) for w in waveforms])


def steps(*levels_per_second: float) -> np.ndarray:
    """Audio of constant level per second: what LevelClassifier hears as classes."""
    return np.concatenate([np.full(SR, level, np.float32) for level in levels_per_second])


def test_a_clips_value_is_the_fraction_of_its_events_heard_as_their_class():
    audio = steps(0.1, 0.3, 0.5)  # class 1, then 3, then 5
    events = [
        {"time": 0.2, "class_index": 1},
        {"time": 0.6, "class_index": 1},
        {"time": 1.2, "class_index": 3},
        {"time": 2.3, "class_index": 2},  # generated as class 5: wrong
    ]
    classifier = LevelClassifier()
    result = clip_event_classes(classifier, audio, events)
    assert result["event_class_accuracy"] == 0.75
    assert result["event_predicted_classes"] == ["class_1", "class_1", "class_3", "class_5"]
    windows = event_windows([e["time"] for e in events], audio.size)
    assert [len(w) for w in classifier.seen] == [b - a for a, b in windows]
    assert np.array_equal(classifier.seen[2], audio[windows[2][0] : windows[2][1]])
    assert clip_event_classes(classifier, audio, []) == {
        "event_class_accuracy": None,
        "event_predicted_classes": [],
    }
    with pytest.raises(ValueError, match="1-D"):
        clip_event_classes(classifier, audio[None], events)


def test_clips_without_events_have_no_value_and_are_left_out_of_the_mean():
    audio = steps(0.1, 0.3)
    records = [
        {"events": [{"time": 0.5, "class_index": 1}, {"time": 1.5, "class_index": 3}]},  # 1.0
        {"onsets": [0.5]},  # an ordinary clip: no events, no value
        {"events": [{"time": 0.5, "class_index": 2}, {"time": 1.5, "class_index": 3}]},  # 0.5
    ]
    rows = [{} for _ in records]
    assert score_event_classes(LevelClassifier(), rows, [audio] * 3, records) == 0.75  # not 0.5
    assert [row["event_class_accuracy"] for row in rows] == [1.0, None, 0.5]
    assert "event_predicted_classes" not in rows[1]
    assert score_event_classes(LevelClassifier(), [{}], [audio], [{"onsets": []}]) is None
    with pytest.raises(ValueError, match="rows"):
        score_event_classes(LevelClassifier(), rows, [audio], records)


# -- the report and --compare ------------------------------------------------------------------------------
def metrics(**values):
    return {name: None for name in running.METRIC_NAMES} | {"num_clips": 2} | values


def test_the_table_has_the_column_and_a_dash_where_no_clip_has_events(tmp_path):
    results = {
        "split": "validation",
        "ground_truth": {"metrics": metrics(event_class_accuracy=0.984)},
        "configurations": [
            {"configuration": {"name": "both_detected"}, "skipped": None, "metrics": metrics()},
            {
                "configuration": {"name": "semantic_empty_prompt"},
                "skipped": None,
                "metrics": metrics(event_class_accuracy=float("nan")),
            },
        ],
    }
    assert "event_class_accuracy" in running.METRIC_NAMES
    table = report.format_table(results).splitlines()
    column = table[0].index("event class acc")
    assert table[2][column:].startswith("0.984")
    assert table[3][column:].startswith("—") and table[4][column:].startswith("—")
    report.write_results(results, tmp_path / "r.json")
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["configurations"][1]["metrics"]["event_class_accuracy"] is None


def clip_rows(values, semantic=True):
    """Rows of clips with one onset each, all found, and the given event class accuracies."""
    return [
        {
            "id": f"clip_{i}",
            "reference_onsets": [1.0],
            "estimated_onsets": [1.0],
            "estimated_strengths": [1.0],
            "semantic_correct": semantic,
            "event_class_accuracy": value,
        }
        for i, value in enumerate(values)
    ]


def test_compare_bootstraps_event_class_accuracy_over_the_clips_that_have_events():
    # Half the clips are ordinary (no value): they must not count as 0 on either side.
    good = clip_rows([1.0, None, 0.75, None] * 10)
    bad = clip_rows([0.25, None, 0.0, None] * 10)
    compared = compare_configuration(good, bad, resamples=200)["event_class_accuracy"]
    assert compared["baseline"] == pytest.approx(0.875) and compared["candidate"] == pytest.approx(0.125)
    assert compared["high"] < 0 and compared["verdict"] == "worse"
    assert compare_configuration(bad, good, resamples=200)["event_class_accuracy"]["verdict"] == "better"
    same = compare_configuration(good, good, resamples=50)["event_class_accuracy"]
    assert same["difference"] == same["low"] == same["high"] == 0.0 and same["verdict"] == "within noise"
    # One event-bearing clip among many: resamples without it are left out, not failed.
    lonely = compare_configuration(
        clip_rows([1.0] + [None] * 9), clip_rows([0.0] + [None] * 9), resamples=100
    )
    assert lonely["event_class_accuracy"]["difference"] == -1.0
    text = format_comparison({"resamples": 200, "configurations": {"both_detected": {
        **compare_configuration(good, bad, resamples=200), "frechet_distance": {"baseline": None, "candidate": None}
    }}})  # fmt: skip
    assert "event class acc" in text and "worse" in text


def test_compare_says_not_measured_without_event_clips_or_from_older_files():
    ordinary = clip_rows([None] * 8)
    assert compare_configuration(ordinary, ordinary, resamples=20)["event_class_accuracy"]["verdict"] == (
        "not measured"
    )
    older = [{k: v for k, v in row.items() if k != "event_class_accuracy"} for row in clip_rows([1.0] * 8)]
    result = compare_configuration(older, clip_rows([1.0] * 8), resamples=20)
    assert result["event_class_accuracy"]["verdict"] == "not measured"
    assert result["semantic_accuracy"]["verdict"] == "within noise"


# -- the ceiling: the bundled classifier on real sequence audio ----------------------------------------------
@pytest.fixture(scope="module")
def bundled_classifier():
    from foleycrafter.eval.classifier import load_classifier

    return load_classifier()


def test_ground_truth_sequence_audio_scores_high(bundled_classifier):
    """Every event of fresh sequence clips is heard as its class in the synthesised ground truth;
    a whole-clip verdict can only be right for one of its objects."""
    clips = [sf.generate_sequence_clip(2024, i, "test", 16) for i in range(6)]
    rows = [{} for _ in clips]
    accuracy = score_event_classes(bundled_classifier, rows, [a for _, a, _ in clips], [r for *_, r in clips])
    assert accuracy >= 0.95, [row["event_class_accuracy"] for row in rows]
    assert sum(len(r["events"]) for *_, r in clips) >= 12


def test_eval_scores_event_classes_on_a_sequence_split(release_pipe, tmp_path, capsys):
    """The benchmark end to end on sequence clips: the ground-truth row's event class accuracy is high,
    every configuration has one per clip, and the printed table shows the column."""
    sf.generate_dataset(tmp_path, "test", 2, seed=11, size=32, layout="sequence")
    results = running.evaluate_model(
        release_pipe, tmp_path, configurations=["vocoder_ceiling"], sync_classifier=None
    )
    truth = results["ground_truth"]
    assert truth["metrics"]["event_class_accuracy"] >= 0.9
    records = sf.read_metadata(tmp_path / "test")
    for row, record in zip(truth["clips"], records):
        assert len(row["event_predicted_classes"]) == len(record["events"])
    entry = results["configurations"][0]
    assert entry["skipped"] is None
    values = [row["event_class_accuracy"] for row in entry["clips"]]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert entry["metrics"]["event_class_accuracy"] == pytest.approx(np.mean(values))
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    report.write_results(results, tmp_path / "r.json")
    assert benchmark.run(parser.parse_args(["--merge", str(tmp_path / "r.json")])) == 0
    assert "event class acc" in capsys.readouterr().out
