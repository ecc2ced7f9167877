"""The loudness diagnosis's pure measurements (foleycrafter.eval.loudness_sources), on hand-built curves."""

import math

import numpy as np
import pytest

from foleycrafter.eval.loudness_sources import (
    LEVEL_BANDS,
    band_errors,
    event_peaks,
    level_fit,
    pool_band_errors,
)
from foleycrafter.loudness import loudness_error_db


def test_band_errors_split_the_benchmark_error_by_the_targets_level():
    # 10 columns: 4 silent in the target (-80) of which 2 generated audible (-50), 3 quiet (-50), 3 loud (-10).
    target = np.array([-80, -80, -80, -80, -50, -50, -50, -10, -10, -10], dtype=np.float64)
    generated = np.array([-80, -80, -50, -50, -45, -45, -45, -16, -16, -16], dtype=np.float64)
    bands = band_errors(generated, target)
    assert set(bands) == {name for name, _, _ in LEVEL_BANDS}
    # Scored: the 2 audible-in-generated silent columns, 3 quiet, 3 loud = 8.
    assert bands["silent"]["columns"] == 2 and bands["silent"]["share"] == pytest.approx(2 / 8)
    assert bands["silent"]["mean_abs_db"] == pytest.approx(10.0)  # -50 against the floor of -60
    assert bands["silent"]["mean_signed_db"] == pytest.approx(10.0)
    assert bands["quiet"]["mean_signed_db"] == pytest.approx(5.0)
    assert bands["loud"]["mean_signed_db"] == pytest.approx(-6.0)
    assert bands["moderate"]["columns"] == 0 and math.isnan(bands["moderate"]["mean_abs_db"])
    # The shares weight the bands' errors into the benchmark's number.
    total = sum(b["share"] * b["mean_abs_db"] for b in bands.values() if b["columns"])
    assert total == pytest.approx(loudness_error_db(generated, target))


def test_pooled_bands_weight_each_column_once():
    a = band_errors(np.array([-30.0, -30.0]), np.array([-35.0, -35.0]))  # 2 moderate columns, +5
    b = band_errors(np.array([-40.0]), np.array([-30.0]))  # 1 moderate column, -10
    pooled = pool_band_errors([a, b])
    assert pooled["moderate"]["columns"] == 3
    assert pooled["moderate"]["mean_signed_db"] == pytest.approx((5 + 5 - 10) / 3)
    assert pooled["moderate"]["mean_abs_db"] == pytest.approx(20 / 3)
    assert pooled["moderate"]["share"] == pytest.approx(1.0)


def test_event_peaks_take_the_maximum_just_after_each_onset():
    curve = np.full(100, -70.0)
    curve[21] = -12.0  # within 80 ms of an onset at 0.2 s (columns 20-27)
    curve[35] = -5.0  # outside that window
    curve[60] = -30.0
    peaks = event_peaks(curve, [0.2, 0.6, 2.0], columns_per_second=100)
    assert peaks[0] == -12.0 and peaks[1] == -30.0
    assert math.isnan(peaks[2])  # past the curve's end


def test_level_fit_tells_full_control_from_none():
    requested = np.array([-36.0, -24.0, -12.0, -6.0])
    full = level_fit(requested, requested - 3.0)
    assert full["slope"] == pytest.approx(1.0) and full["intercept"] == pytest.approx(-3.0)
    assert full["pearson"] == pytest.approx(1.0) and full["mean_abs_db"] == pytest.approx(3.0)
    none = level_fit(requested, np.full(4, -20.0))
    assert none["slope"] == pytest.approx(0.0, abs=1e-9) and math.isnan(none["pearson"])
    assert level_fit([-20.0, float("nan")], [-20.0, -10.0])["events"] == 1


def test_diagnosis_shapes_the_exact_curves_audio_with_the_gain_stage(
    model_with_loudness_controller, tmp_path
):
    from foleycrafter.data import synthfoley as sf
    from foleycrafter.eval.loudness_sources import run_diagnosis

    sf.generate_dataset(tmp_path, "test", 1, seed=7, size=32, version=2)
    results = run_diagnosis(
        str(model_with_loudness_controller), str(tmp_path), split="test", num_clips=1, scales=[1.0],
        boosts=[6.0, 60.0], steps=2, log=lambda *_: None,
    )  # fmt: skip
    found = results["configurations"]
    assert list(found) == [
        "vocoder",
        "autoencoder",
        "no_curve",
        "exact@1",
        "exact@1+gain<=6",
        "exact@1+gain<=60",
    ]
    errors = [found[name]["loudness_error_db"] for name in ("exact@1", "exact@1+gain<=6", "exact@1+gain<=60")]
    # The tiny random model is far too loud for the near-silent ground truth: the gain stage turns it
    # down (cuts are not limited), and a larger boost limit never does worse.
    assert errors[0] > 20 and errors[1] < 5 and errors[2] <= errors[1] + 1e-6
