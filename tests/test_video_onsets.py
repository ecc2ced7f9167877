"""Scoring the video onset detector on SynthFoley clips (foleycrafter.eval.video_onsets)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from foleycrafter.eval.video_onsets import evaluate_video_onsets
from foleycrafter.timeline import Timeline


class SmearedDetector:
    """Fires on the 7 grid frames centred on each true onset, like a detector whose response is
    smeared over neighbouring frames (probability 1 in the middle, 0.6 at the edges)."""

    def __init__(self, onsets, duration):
        self.onsets, self.duration = onsets, duration
        self.calls = 0

    def detect(self, frames):
        self.calls += 1
        count = frames.shape[1]
        probabilities = torch.zeros(1, count)
        for t in self.onsets:
            k = math.floor(t / self.duration * count)
            for offset in range(-3, 4):
                if 0 <= k + offset < count:
                    probabilities[0, k + offset] = 1.0 if offset == 0 else 0.6
        return probabilities


def test_centre_placement_finds_what_first_frame_placement_misses(tmp_path):
    from foleycrafter.data.synthfoley import generate_clip, write_mp4, write_wav

    frames, audio, record = generate_clip(0, 3, "test", duration=3.0, fps=25.0)
    write_wav(tmp_path / "clip.wav", audio)
    write_mp4(tmp_path / "clip.mp4", frames, record["fps_fraction"], tmp_path / "clip.wav")
    record = {**record, "video_path": str(tmp_path / "clip.mp4")}
    pipe = SimpleNamespace(
        onset_detector=SmearedDetector(record["onsets"], record["duration"]), timeline=lambda: Timeline()
    )
    results = evaluate_video_onsets(pipe, [record])
    assert pipe.onset_detector.calls == 1  # one pass per clip serves both placements
    centre, first = results["centre"], results["first"]
    assert centre["num_estimated"] == first["num_estimated"] == len(record["onsets"])
    # 150 frames over 3 s: 20 ms each. The centre lands within half a frame; the first frame of a
    # 7-frame run is 3 frames (60 ms) early, outside the +-50 ms tolerance.
    assert centre["f1"] == 1.0 and abs(centre["median_signed_error_ms"]) <= 10.0
    assert first["f1"] == 0.0 and first["median_signed_error_ms"] is None

    with pytest.raises(ValueError, match="no onset detector"):
        evaluate_video_onsets(SimpleNamespace(onset_detector=None), [record])
    with pytest.raises(ValueError, match="no clips"):
        evaluate_video_onsets(pipe, [])
    assert np.isfinite(centre["mean_timing_error_ms"])
