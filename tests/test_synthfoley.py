"""SynthFoley generator: determinism, clip rules, audible and visible events, files, splits, command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import wave
from collections import Counter
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from foleycrafter.data import synthfoley as sf

SR = sf.SAMPLE_RATE
ROOT = Path(__file__).resolve().parents[1]


def color_mask(frame: np.ndarray, rgb, tol: int = 40) -> np.ndarray:
    return np.abs(frame.astype(np.int16) - np.asarray(rgb, np.int16)).max(axis=-1) < tol


def vertical_gap(frame: np.ndarray, cls: sf.SoundClass) -> int | None:
    """Pixels between the lowest row of the moving object and the top of the surface below it
    (<= 0: touching or overlapping); None when the object is not in view above the surface."""
    target = color_mask(frame, cls.target_color)
    counts = target.sum(axis=1)
    top = int(np.nonzero(counts >= max(3, counts.max() // 3))[0].min())  # ignore stray edge pixels
    columns = target[top : top + 2].any(axis=0)
    obj = color_mask(frame, cls.color)[: top + 4] & columns
    rows = np.nonzero(obj.sum(axis=1) >= 2)[0]
    return None if len(rows) == 0 else top - int(rows.max()) - 1


def hands_gap(frame: np.ndarray, cls: sf.SoundClass) -> int:
    """Columns without skin between the leftmost and rightmost skin pixels (0: the hands touch)."""
    columns = np.nonzero(color_mask(frame, cls.color).sum(axis=0) >= 2)[0]
    return int(columns.max() - columns.min() + 1 - len(np.unique(columns)))


def side_gap(frame: np.ndarray, cls: sf.SoundClass) -> int | None:
    """Pixels between the surface's right edge and the object's left edge in rows holding both."""
    obj, target = color_mask(frame, cls.color), color_mask(frame, cls.target_color)
    gaps = [
        int(np.nonzero(obj[y])[0].min() - np.nonzero(target[y])[0].max() - 1)
        for y in range(frame.shape[0])
        if obj[y].sum() >= 2 and target[y].sum() >= 2
    ]
    return min(gaps) if gaps else None


def contact_frame(onset: float, fps: float) -> int:
    """First frame at or after the onset: the first one that can show contact."""
    return math.ceil(onset * fps - 1e-9)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def ffmpeg(*args) -> bytes:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


# --- plans: cheap, so many clips ------------------------------------------------------------------


def test_clip_rules_hold_over_many_plans():
    fps_seen, counts_seen = set(), set()
    for split in sf.SPLITS:
        for index in range(48):
            r = sf.plan_clip(7, index, split, 64)
            assert json.loads(json.dumps(r)) == r
            rate = Fraction(r["fps_fraction"])
            assert rate in sf.FPS_CHOICES and r["fps"] == float(rate)
            assert r["num_frames"] == round(r["duration"] * r["fps"])
            assert abs(r["duration"] - r["num_frames"] / r["fps"]) < 1e-12
            assert sf.MIN_DURATION <= r["duration"] <= sf.MAX_DURATION
            assert r["num_samples"] == round(r["duration"] * SR)
            onsets = np.asarray(r["onsets"])
            assert 1 <= len(onsets) == r["num_events"] <= 6
            assert np.all(np.diff(onsets) >= sf.MIN_GAP - 1e-9)
            assert onsets[0] >= sf.HEAD_MARGIN - 1e-9 and onsets[-1] <= r["duration"] - sf.TAIL_MARGIN + 1e-9
            assert np.allclose(onsets * SR, np.round(onsets * SR))  # on the audio sample grid
            cls = sf.CLASSES[r["class_index"]]
            assert cls.name == r["class_name"] and r["caption"] in cls.captions
            assert r["id"] == Path(r["video"]).stem == Path(r["audio"]).stem
            fps_seen.add(rate)
            counts_seen.add(len(onsets))
    assert fps_seen == set(sf.FPS_CHOICES) and counts_seen == set(range(1, 7))


def test_classes_balanced_and_splits_disjoint():
    n = len(sf.CLASSES)
    assert n >= 8 and len(set(sf.CLASS_NAMES)) == n
    assert len({c.color for c in sf.CLASSES}) == n  # every class has its own object colour
    plans = {s: [sf.plan_clip(0, i, s) for i in range(5 * n + 3)] for s in sf.SPLITS}
    for records in plans.values():
        counts = Counter(r["class_index"] for r in records)
        assert set(counts) == set(range(n)) and max(counts.values()) - min(counts.values()) <= 1
        first_block = [r["class_index"] for r in records[:n]]
        assert sorted(first_block) == list(range(n))
    train, validation, test = (plans[s] for s in sf.SPLITS)
    for a, b in ((train, validation), (train, test), (validation, test)):
        assert [r["onsets"] for r in a] != [r["onsets"] for r in b]
        assert not {r["id"] for r in a} & {r["id"] for r in b}
    assert [r["class_index"] for r in train[:n]] != [r["class_index"] for r in validation[:n]]
    assert sf.plan_clip(1, 0, "test")["onsets"] != sf.plan_clip(0, 0, "test")["onsets"]


def test_motion_profile_touches_only_at_onsets():
    onsets = [0.5, 0.75, 2.0]
    h = lambda t: sf.contact_height(t, onsets, dwell=0.07, fall=0.2)  # noqa: E731
    assert h(0.0) == 1.0 and h(0.5) == 0.0 and h(0.5 + 0.069) == 0.0 and h(2.05) == 0.0
    assert 0 < h(0.4999) < 0.01 and h(0.3) == 1.0 and 0 < h(0.65) < 1.0 and h(3.0) == 1.0
    ts = np.linspace(0, 3, 3001)
    values = np.array([h(t) for t in ts])
    assert np.all(values >= 0) and np.max(np.abs(np.diff(values))) < 0.02  # continuous
    touching = ts[values == 0]
    assert all(any(o - 1e-9 <= t <= o + 0.07 + 1e-9 for o in onsets) for t in touching)


# --- clips -----------------------------------------------------------------------------------------


def test_generate_clip_is_deterministic():
    frames, audio, record = sf.generate_clip(3, 5, "train", 32, duration=2.0)
    frames2, audio2, record2 = sf.generate_clip(3, 5, "train", 32, duration=2.0)
    assert record == record2
    assert np.array_equal(frames, frames2) and np.array_equal(audio, audio2)
    other_frames, other_audio, _ = sf.generate_clip(4, 5, "train", 32, duration=2.0)
    assert not np.array_equal(audio[: len(other_audio)], other_audio[: len(audio)])
    assert not np.array_equal(frames[: len(other_frames)], other_frames[: len(frames)])
    _, test_audio, test_record = sf.generate_clip(3, 5, "test", 32, duration=2.0)
    assert test_record["onsets"] != record["onsets"] or not np.array_equal(test_audio, audio)
    # The soundtrack and the onsets do not depend on the picture size.
    _, audio_big, record_big = sf.generate_clip(3, 5, "train", 48, duration=2.0)
    assert np.array_equal(audio_big, audio) and record_big["onsets"] == record["onsets"]


def test_every_class_generates_valid_clips():
    for c, cls in enumerate(sf.CLASSES):
        frames, audio, r = sf.generate_clip(2, c, "validation", 32, class_index=c, duration=2.5)
        assert r["class_name"] == cls.name
        assert frames.dtype == np.uint8 and frames.shape == (r["num_frames"], 32, 32, 3)
        assert r["num_frames"] == round(r["duration"] * r["fps"])
        assert audio.dtype == np.float32 and audio.shape == (r["num_samples"],)
        assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 0.95 + 1e-6
        # Something moves: frames differ by far more than the pixel noise.
        change = np.abs(frames.astype(np.int16) - frames[:1]).reshape(len(frames), -1).max(axis=1)
        assert change.max() > 100, cls.name


def test_audio_energy_rises_at_every_onset():
    isolated = 0
    for c, cls in enumerate(sf.CLASSES):
        for seed in range(5):
            _, audio, r = sf.generate_clip(seed, c, "train", 16, class_index=c)
            assert np.abs(audio).max() <= 0.95 + 1e-6  # never clipped
            assert rms(audio[: round(sf.HEAD_MARGIN * SR)]) < 0.005  # low background noise
            previous = -math.inf
            for onset in r["onsets"]:
                n = round(onset * SR)
                after, before = rms(audio[n : n + SR // 100]), rms(audio[n - 3 * SR // 100 : n])
                assert after > 1.4 * before, (cls.name, seed, onset)  # > 3 dB even over a ringing tail
                if onset - previous >= 1.0:
                    assert after > 8 * before, (cls.name, seed, onset)  # > 18 dB over the noise
                    isolated += 1
                previous = onset
    assert isolated >= 40


GAPS = {"hammer_metal": vertical_gap, "stick_wood": vertical_gap, "ball_bounce": vertical_gap}
GAPS.update({"spoon_glass": side_gap, "clap": hands_gap})


@pytest.mark.parametrize("name", sorted(GAPS))
def test_contact_is_visible_at_the_onset(name):
    """Measured from the pixels: touching in the first frame at/after each onset, apart 0.2 s before."""
    c = sf.CLASS_NAMES.index(name)
    cls, gap = sf.CLASSES[c], GAPS[name]
    checked_before = 0
    for seed in range(3):
        frames, _, r = sf.generate_clip(seed, c, "test", 64, class_index=c)
        previous = -math.inf
        for onset in r["onsets"]:
            at = gap(frames[contact_frame(onset, r["fps"])], cls)
            assert at is not None and -3 <= at <= 1, (seed, onset, at)  # touching
            early = round((onset - 0.2) * r["fps"])
            if onset - previous >= 0.5 and early >= 0:
                before = gap(frames[early], cls)
                assert before is None or before >= 4, (seed, onset, before)  # clearly apart 0.2 s before
                checked_before += 1
            previous = onset
    assert checked_before >= 3


# --- files and command line ------------------------------------------------------------------------


def read_wav(path: Path) -> np.ndarray:
    with wave.open(os.fspath(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, SR)
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32767


def test_generate_dataset_writes_clips_and_refuses_to_overwrite(tmp_path):
    records = sf.generate_dataset(tmp_path, "test", 3, seed=1, size=64)
    folder = tmp_path / "test"
    assert sf.read_metadata(folder) == records
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [r["id"] for r in records]
    assert len({r["class_index"] for r in records}) == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["metadata.jsonl"] + [r["video"] for r in records] + [r["audio"] for r in records]
    )
    for r in records:
        _, audio, record = sf.generate_clip(1, r["index"], "test", 64)
        assert record == r
        wav = read_wav(folder / r["audio"])
        assert len(wav) == r["num_samples"] and np.abs(wav - audio).max() <= 1 / 32767
        cap = cv2.VideoCapture(os.fspath(folder / r["video"]))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == r["num_frames"]
        assert abs(cap.get(cv2.CAP_PROP_FPS) - r["fps"]) < 1e-3
        decoded = 0
        while cap.read()[0]:
            decoded += 1
        assert decoded == r["num_frames"]
        # The muxed soundtrack is the wav (AAC, so approximately) and in sync with it.
        track = np.frombuffer(
            ffmpeg("-i", folder / r["video"], "-f", "s16le", "-ac", 1, "-ar", SR, "-"), "<i2"
        )
        track = track.astype(np.float32) / 32767
        assert abs(len(track) - len(wav)) <= 1024
        n = min(len(track), len(wav))
        lags = range(-40, 41)
        corr = [np.dot(wav[100 : n - 100], track[100 + k : n - 100 + k]) for k in lags]
        assert abs(lags[int(np.argmax(corr))]) <= 1
        assert np.corrcoef(wav[: n - 100], track[: n - 100])[0, 1] > 0.9
    with pytest.raises(FileExistsError):
        sf.generate_dataset(tmp_path, "test", 2, seed=1, size=64)
    again = sf.generate_dataset(tmp_path, "test", 2, seed=1, size=64, overwrite=True)
    assert again == records[:2] and len(list(folder.glob("*.mp4"))) == 2
    validation = sf.generate_dataset(tmp_path, "validation", 2, seed=1, size=64)
    assert [r["onsets"] for r in validation] != [r["onsets"] for r in records[:2]]


def test_mp4_encoding_is_byte_identical(tmp_path):
    frames, audio, r = sf.generate_clip(0, 1, "train", 32, duration=2.0, fps=29.97)
    assert r["fps_fraction"] == "30000/1001"
    sf.write_wav(tmp_path / "a.wav", audio)
    sf.write_mp4(tmp_path / "a.mp4", frames, r["fps_fraction"], tmp_path / "a.wav")
    sf.write_mp4(tmp_path / "b.mp4", frames.copy(), r["fps_fraction"], tmp_path / "a.wav")
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_command_line(tmp_path):
    cmd = [sys.executable, "-m", "foleycrafter.data.synthfoley", os.fspath(tmp_path)]
    cmd += ["--split", "validation", "--num-clips", "2", "--seed", "3", "--size", "32"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 clips" in done.stdout
    records = sf.read_metadata(tmp_path / "validation")
    assert [r["index"] for r in records] == [0, 1] and all(r["seed"] == 3 for r in records)
    assert len(list((tmp_path / "validation").glob("*.mp4"))) == 2
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "overwrite" in refused.stderr
    assert all(r["generator_version"] == sf.GENERATOR_VERSION for r in records)
    older = subprocess.run(
        [*cmd[:3], os.fspath(tmp_path / "v1"), *cmd[4:], "--version", "1"], env=env, cwd=tmp_path
    )
    assert older.returncode == 0
    assert [r["generator_version"] for r in sf.read_metadata(tmp_path / "v1" / "validation")] == [1, 1]
    pairs = subprocess.run(
        [*cmd[:3], os.fspath(tmp_path / "pairs"), *cmd[4:], "--layout", "two_objects"], env=env
    )
    assert pairs.returncode == 0
    assert {r["layout"] for r in sf.read_metadata(tmp_path / "pairs" / "validation")} == {"two_objects"}


# --- version 2: dynamics ---------------------------------------------------------------------------


def test_version_1_clips_keep_their_records_and_differ_from_version_2():
    old = sf.plan_clip(0, 4, "train", 32, version=1)
    assert old["generator_version"] == 1 and "event_levels_db" not in old and "dynamics" not in old
    new = sf.plan_clip(0, 4, "train", 32)
    assert new["generator_version"] == sf.GENERATOR_VERSION == 2
    # Version 2 only adds fields: class, timing and caption are version 1's.
    assert {
        k: v for k, v in new.items() if k not in ("generator_version", "dynamics", "event_levels_db")
    } == {k: v for k, v in old.items() if k != "generator_version"}
    _, audio_old, _ = sf.generate_clip(0, 4, "train", 16, version=1)
    _, audio_new, _ = sf.generate_clip(0, 4, "train", 16)
    assert not np.array_equal(audio_old, audio_new)
    with pytest.raises(ValueError, match="version"):
        sf.plan_clip(0, 4, "train", 32, version=3)


def test_version_2_levels_span_24_db_and_swell_or_fade():
    records = [sf.plan_clip(0, i, "train", 16) for i in range(64)]
    levels = [level for r in records for level in r["event_levels_db"]]
    assert all(len(r["event_levels_db"]) == r["num_events"] for r in records)
    low, high = sf.EVENT_LEVEL_RANGE
    assert min(levels) >= low and max(levels) <= high and max(levels) - min(levels) >= 24
    shapes = Counter(r["dynamics"] for r in records)
    assert set(shapes) == set(sf.DYNAMICS) and shapes["varied"] > shapes["crescendo"]
    for r in records:
        first, last = r["event_levels_db"][0], r["event_levels_db"][-1]
        if r["dynamics"] == "crescendo" and r["num_events"] >= 2:
            assert last > first + 8
        if r["dynamics"] == "decrescendo" and r["num_events"] >= 2:
            assert first > last + 8


def test_version_2_levels_are_heard():
    """Each event's measured level (RMS in its first 100 ms) follows its planned peak level."""
    from foleycrafter.loudness import audio_loudness
    from foleycrafter.timeline import Timeline

    planned, measured = [], []
    for index in range(16):
        _, audio, r = sf.generate_clip(1, index, "train", 16)
        curve = audio_loudness(audio, Timeline())
        for onset, level in zip(r["onsets"], r["event_levels_db"]):
            column = int(onset * 100)
            planned.append(level)
            measured.append(curve[column : column + 10].max())
    slope, _ = np.polyfit(planned, measured, 1)
    assert np.corrcoef(planned, measured)[0, 1] > 0.9 and 0.8 < slope < 1.2


def test_version_2_strikes_look_as_hard_as_they_sound():
    """A loud clap opens the hands wider before it than a soft one; the contact instants stay put."""
    c = sf.CLASS_NAMES.index("clap")
    record = sf.plan_clip(2, 0, "train", 128, class_index=c, duration=4.0)
    record.update(
        onsets=[1.0, 2.5], num_events=2, event_levels_db=[sf.EVENT_LEVEL_RANGE[0], sf.EVENT_LEVEL_RANGE[1]]
    )
    assert sf.event_strengths(record) == pytest.approx([0.35, 1.0])
    frames = sf.render_frames(record, np.random.default_rng(0))
    times = np.arange(len(frames)) / record["fps"]
    cls = sf.CLASSES[c]

    def widest(onset):
        return max(hands_gap(frames[k], cls) for k in np.flatnonzero((times > onset - 0.6) & (times < onset)))

    soft, loud = widest(1.0), widest(2.5)
    assert loud > 1.8 * soft > 0
    for onset in record["onsets"]:
        assert hands_gap(frames[int(np.ceil(onset * record["fps"] - 1e-9))], cls) == 0


def test_strengths_scale_the_approach_and_keep_the_contacts():
    onsets = [0.5, 1.5]
    plain = lambda t: sf.contact_height(t, onsets, dwell=0.07, fall=0.2)  # noqa: E731
    scaled = lambda t: sf.contact_height(t, onsets, dwell=0.07, fall=0.2, strengths=[0.5, 0.8])  # noqa: E731
    for t in (0.0, 0.4, 0.45):
        assert scaled(t) == pytest.approx(0.5 * plain(t))
    for t in (1.0, 1.45, 2.0):  # towards the second onset, then after the last one
        assert scaled(t) == pytest.approx(0.8 * plain(t))
    assert scaled(0.5) == scaled(1.55) == 0.0
    feet = dict(swing=0.3, lift=10.0)
    assert sf.swing_height(1.4, onsets, **feet, strengths=[1.0, 0.5]) == pytest.approx(
        0.5 * sf.swing_height(1.4, onsets, **feet)
    )
