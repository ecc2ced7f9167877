"""SynthFoley sequence clips (--layout sequence): two or three objects in turn, each heard in its own segment."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from foleycrafter.data import synthfoley as sf

SR = sf.SAMPLE_RATE
ROOT = Path(__file__).resolve().parents[1]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


# --- plans: cheap, so many clips ------------------------------------------------------------------


def test_plan_is_deterministic_and_depends_on_seed_split_and_index():
    record = sf.plan_sequence_clip(4, 7, "validation", 32)
    assert record == sf.plan_sequence_clip(4, 7, "validation", 32)
    assert json.loads(json.dumps(record)) == record
    assert record["layout"] == "sequence" and record["generator_version"] == sf.GENERATOR_VERSION
    for other in (
        sf.plan_sequence_clip(4, 8, "validation", 32),
        sf.plan_sequence_clip(4, 7, "test", 32),
        sf.plan_sequence_clip(5, 7, "validation", 32),
    ):
        assert other["events"] != record["events"]
    # The frame size is only copied into the record.
    bigger = sf.plan_sequence_clip(4, 7, "validation", 64)
    assert {k: v for k, v in bigger.items() if k not in ("width", "height")} == {
        k: v for k, v in record.items() if k not in ("width", "height")
    }


def test_segments_cover_the_clip_in_order_with_distinct_classes_and_their_own_events():
    counts, first_classes = Counter(), {s: Counter() for s in sf.SPLITS}
    for split in sf.SPLITS:
        for index in range(40):
            r = sf.plan_sequence_clip(2, index, split, 32)
            ordinary = sf.plan_clip(2, index, split, 32)
            # Frame rate, duration, size, files and the first class are those of the ordinary clip.
            for key in (
                "fps",
                "fps_fraction",
                "duration",
                "num_frames",
                "num_samples",
                "id",
                "video",
                "audio",
            ):
                assert r[key] == ordinary[key], key
            segments = r["segments"]
            counts[len(segments)] += 1
            assert sf.MIN_SEGMENTS <= len(segments) <= sf.MAX_SEGMENTS
            assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(
                r["duration"], abs=1e-12
            )
            rate = Fraction(r["fps_fraction"])
            for before, after in zip(segments, segments[1:]):
                assert before["end"] == after["start"]
            for s in segments:
                assert s["end"] - s["start"] >= sf.MIN_SEGMENT_SECONDS - 1e-9
                assert abs(s["start"] * rate - round(s["start"] * rate)) < 1e-6  # cut at a frame time
                cls = sf.CLASSES[s["class_index"]]
                assert s["class_name"] == cls.name and s["caption"] in cls.captions
                assert 1 <= len(s["onsets"])
                if r["generator_version"] >= 2:
                    assert s["dynamics"] in sf.DYNAMICS
            classes = [s["class_index"] for s in segments]
            assert len(set(classes)) == len(classes)  # every segment its own class
            assert (r["class_index"], r["class_name"]) == (
                segments[0]["class_index"],
                segments[0]["class_name"],
            )
            assert r["class_index"] == ordinary["class_index"]
            first_classes[split][r["class_index"]] += 1
            assert r["caption"] == ", then ".join(s["caption"] for s in segments)
            assert "dynamics" not in r  # each segment has its own
            # Every event lies inside its segment (head and tail margins kept) and carries its class.
            events = r["events"]
            for s in segments:
                mine = [e for e in events if s["start"] <= e["time"] < s["end"]]
                assert [e["time"] for e in mine] == s["onsets"]
                assert all(
                    (e["class_index"], e["class_name"]) == (s["class_index"], s["class_name"]) for e in mine
                )
                assert s["onsets"][0] >= s["start"] + sf.HEAD_MARGIN - 1 / SR
                assert s["onsets"][-1] <= s["end"] - sf.TAIL_MARGIN + 1 / SR
                assert np.all(np.diff(s["onsets"]) >= sf.MIN_GAP - 1e-9)
            times = [e["time"] for e in events]
            assert r["onsets"] == sorted(times) == times and r["num_events"] == len(events)
            assert np.allclose(np.asarray(times) * SR, np.round(np.asarray(times) * SR))  # sample grid
            assert len(r["event_levels_db"]) == len(events)
    assert set(counts) == {2, 3}
    for split_counts in first_classes.values():  # the first class is balanced, as for ordinary clips
        assert set(split_counts) == set(range(len(sf.CLASSES)))
        assert max(split_counts.values()) - min(split_counts.values()) <= 1


def test_version_1_sequences_are_cut_and_timed_like_version_2():
    for index in range(6):
        old, new = (
            sf.plan_sequence_clip(0, index, "train", 32, version=1),
            sf.plan_sequence_clip(0, index, "train", 32),
        )
        assert old["generator_version"] == 1 and "event_levels_db" not in old
        assert all("dynamics" not in s for s in old["segments"])
        assert old["events"] == new["events"]
        assert [(s["start"], s["end"], s["caption"]) for s in old["segments"]] == [
            (s["start"], s["end"], s["caption"]) for s in new["segments"]
        ]


def test_segment_weights_cut_and_crossfade():
    record = {
        "num_samples": 3 * SR,
        "segments": [{"start": 0.0}, {"start": 1.0}, {"start": 2.5}],
    }
    weights = sf.segment_weights(record)
    assert weights.shape == (3, 3 * SR)
    assert np.allclose(weights.sum(axis=0), 1.0)
    half = round(0.01 * SR / 2)
    assert np.all(weights[0, : SR - half] == 1) and np.all(weights[0, SR + half :] == 0)
    assert np.all(weights[1, SR + half : round(2.5 * SR) - half] == 1)
    assert np.all(weights[2, : round(2.5 * SR) - half] == 0) and np.all(
        weights[2, round(2.5 * SR) + half :] == 1
    )
    ramp = weights[1, SR - half : SR + half]
    assert np.all(np.diff(ramp) > 0) and 0 < ramp[0] < 0.01 and 0.99 < ramp[-1] < 1


# --- clips -----------------------------------------------------------------------------------------


def test_generated_clip_shows_and_sounds_each_segment():
    frames, audio, record = sf.generate_sequence_clip(1, 3, "test", 32)
    again = sf.generate_sequence_clip(1, 3, "test", 32)
    assert again[2] == record == sf.plan_sequence_clip(1, 3, "test", 32)
    assert np.array_equal(again[0], frames) and np.array_equal(again[1], audio)
    assert frames.dtype == np.uint8 and frames.shape == (record["num_frames"], 32, 32, 3)
    assert audio.dtype == np.float32 and audio.shape == (record["num_samples"],)
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 0.95 + 1e-6
    noise = rms(audio[: round(sf.HEAD_MARGIN * SR) - 10])
    for segment in record["segments"]:
        start, end = round(segment["start"] * SR), round(segment["end"] * SR)
        # Sound in every segment, well above the background, rising at each of its events.
        assert np.abs(audio[start:end]).max() > 10 * noise, segment
        for onset in segment["onsets"]:
            n = round(onset * SR)
            assert rms(audio[n : n + SR // 100]) > 1.4 * rms(audio[n - 3 * SR // 100 : n]), (segment, onset)
        # Each segment shows its own scene: the backdrop in the top-left corner is its class's.
        cls = sf.CLASSES[segment["class_index"]]
        first = math.ceil(segment["start"] * record["fps"] - 1e-6)
        last = round(segment["end"] * record["fps"])
        corner = frames[first:last, 0, 0].astype(np.float64).mean(axis=0)
        assert np.abs(corner - np.asarray(cls.background) * 1.08).max() < 40, (cls.name, corner)
    # The picture cuts at each boundary: consecutive frames differ far more there than within a shot.
    change = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    for segment in record["segments"][1:]:
        cut = round(segment["start"] * record["fps"])
        assert change[cut - 1] > 3 * np.median(change), cut


def test_audio_is_the_sum_of_the_segments_soundtracks():
    """Each segment's soundtrack is an ordinary clip's (its class, its events only) weighted by its
    segment: rebuilt from the synthesiser and the weights, sample for sample."""
    from foleycrafter.data.synthfoley.sequences import _segment_record, _sequence_streams

    _, audio, record = sf.generate_sequence_clip(0, 5, "validation", 16)
    weights = sf.segment_weights(record)
    streams = _sequence_streams(0, 5, "validation")[2:]
    rebuilt = np.zeros(record["num_samples"])
    for number in range(len(record["segments"])):
        part = _segment_record(record, number)
        sound = sf.synthesize_audio(
            part["class_name"],
            part["onsets"],
            part["num_samples"],
            streams[2 * number],
            part["event_levels_db"],
        )
        rebuilt += weights[number] * sound
    assert np.array_equal(rebuilt.astype(np.float32), audio)


def test_dataset_and_command_line_write_sequence_clips_and_leave_other_layouts_alone(tmp_path):
    records = sf.generate_dataset(tmp_path, "validation", 2, seed=3, size=32, layout="sequence")
    assert sf.read_metadata(tmp_path / "validation") == records
    assert records == [sf.plan_sequence_clip(3, i, "validation", 32) for i in range(2)]
    assert sorted(p.name for p in (tmp_path / "validation").iterdir()) == sorted(
        ["metadata.jsonl"] + [r["video"] for r in records] + [r["audio"] for r in records]
    )
    assert "sequence" in sf.LAYOUTS
    # Ordinary clips carry none of the sequence fields, whatever was generated before.
    single = sf.generate_dataset(tmp_path / "single", "validation", 2, seed=3, size=32)
    assert single == [sf.plan_clip(3, i, "validation", 32) for i in range(2)]
    assert not {"layout", "segments", "events"} & set(single[0])

    cmd = [sys.executable, "-m", "foleycrafter.data.synthfoley", os.fspath(tmp_path / "cli")]
    cmd += [
        "--split",
        "validation",
        "--num-clips",
        "2",
        "--seed",
        "3",
        "--size",
        "32",
        "--layout",
        "sequence",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sf.read_metadata(tmp_path / "cli" / "validation") == records
    assert (tmp_path / "cli" / "validation" / records[0]["audio"]).read_bytes() == (
        tmp_path / "validation" / records[0]["audio"]
    ).read_bytes()
    with pytest.raises(ValueError, match="layout"):
        sf.generate_dataset(tmp_path / "bad", "validation", 1, layout="sequences")


def test_a_clip_too_short_for_two_segments_is_refused():
    from foleycrafter.data.synthfoley.sequences import _draw_cuts

    assert _draw_cuts(np.random.default_rng(0), 60, Fraction(30000, 1001)) == [0, 30, 60]
    with pytest.raises(ValueError, match="too few"):
        _draw_cuts(np.random.default_rng(0), 59, Fraction(30))
