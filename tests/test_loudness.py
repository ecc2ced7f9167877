"""Loudness curves: measurement, hand-made points, files, roughening and the condition image."""

import json

import numpy as np
import pytest

from foleycrafter.loudness import (
    LOUDNESS_FLOOR_DB,
    MAX_BOOST_DB,
    audio_loudness,
    follow_loudness,
    loudness_error_db,
    loudness_from_points,
    loudness_points,
    loudness_to_condition,
    read_loudness_file,
    roughen_loudness,
    window_loudness,
)
from foleycrafter.timeline import Timeline

TIMELINE = Timeline()  # 16 kHz, hop 160: 100 columns per second


def test_audio_loudness_measures_rms_per_column():
    rng = np.random.default_rng(0)
    seconds = 2.0
    t = np.arange(int(seconds * 16000)) / 16000
    # A full-scale sine is -3.01 dBFS; the second half is 20 dB quieter.
    wave = np.sin(2 * np.pi * 440 * t) * np.where(t < 1.0, 1.0, 0.1)
    curve = audio_loudness(wave + 1e-6 * rng.standard_normal(t.size), TIMELINE)
    assert curve.shape == (200,) and curve.dtype == np.float32
    np.testing.assert_allclose(curve[10:90], -3.01, atol=0.05)
    np.testing.assert_allclose(curve[110:190], -23.01, atol=0.05)
    # The step falls where the mel frames straddle it (the 1024-sample window is 6.4 columns wide).
    assert -23.1 < curve[104] < curve[96] < -2.9


def test_audio_loudness_covers_recordings_longer_than_a_window():
    # A reference or a ground truth longer than the model's window is measured to its end, not cut
    # to one window and padded with silence.
    short_window = Timeline(window_columns=64)
    wave = _tone(2.0, 0.1)
    curve = audio_loudness(wave, short_window)
    assert curve.shape == (200,)
    np.testing.assert_allclose(curve[5:195], audio_loudness(wave, TIMELINE)[5:195], atol=1e-4)
    assert np.all(curve[100:195] > -30)


def test_audio_loudness_floor_and_empty():
    curve = audio_loudness(np.zeros(1600), TIMELINE)
    assert curve.shape == (10,) and np.all(curve == LOUDNESS_FLOOR_DB)
    with pytest.raises(ValueError, match="empty"):
        audio_loudness(np.zeros(0), TIMELINE)


def test_points_are_joined_by_lines_and_held_at_the_ends():
    curve = loudness_from_points([1.0, 2.0], [-40.0, -20.0], duration=3.0, timeline=TIMELINE)
    assert curve.shape == (TIMELINE.window_columns,)
    assert np.all(curve[:100] == -40.0)  # held before the first point
    np.testing.assert_allclose(curve[150], -40 + 20 * 0.505, atol=1e-4)  # column centre 1.505 s
    assert np.all(curve[200:300] == -20.0)  # held after the last point
    assert np.all(curve[300:] == LOUDNESS_FLOOR_DB)  # after the clip


@pytest.mark.parametrize(
    "points, message",
    [
        (([1.0, 0.5], [-20, -30]), "increase strictly"),
        (([0.0, 5.0], [-20, -30]), "within the clip"),
        (([0.0], [3.0]), "dBFS"),
        (([0.0], [-120.0]), "silence"),
        (([0.0, 1.0], [-20.0]), "as many times as levels"),
    ],
)
def test_bad_points_are_refused(points, message):
    with pytest.raises(ValueError, match=message):
        loudness_from_points(*points, duration=3.0, timeline=TIMELINE)


def test_every_form_gives_the_same_points():
    expected = loudness_from_points([0.0, 2.0], [-30.0, -10.0], 2.5, TIMELINE)
    for given in (
        ([0.0, 2.0], [-30.0, -10.0]),
        {"times": [0.0, 2.0], "db": [-30.0, -10.0]},
        [[0.0, -30.0], [2.0, -10.0]],
    ):
        curve = window_loudness(loudness_points(given, 2.5, TIMELINE), 0.0, 2.5, TIMELINE)
        np.testing.assert_array_equal(curve, expected)
    # One value per column comes back exactly; a short array is held at its last value.
    values = np.linspace(-40.0, -10.0, 250)
    curve = window_loudness(loudness_points(values, 2.5, TIMELINE), 0.0, 2.5, TIMELINE)
    np.testing.assert_allclose(curve[:250], values, atol=1e-5)
    curve = window_loudness(loudness_points(np.full(100, -12.0), 2.5, TIMELINE), 0.0, 2.5, TIMELINE)
    assert np.all(curve[:250] == -12.0) and np.all(curve[250:] == LOUDNESS_FLOOR_DB)
    with pytest.raises(ValueError, match="has 300 mel columns"):
        loudness_points(np.full(400, -12.0), 3.0, TIMELINE)
    with pytest.raises(ValueError, match="'db'"):
        loudness_points({"times": [0.0]}, 2.5, TIMELINE)
    with pytest.raises(ValueError, match="not finite"):
        loudness_points(np.array([-10.0, np.nan]), 2.5, TIMELINE)
    with pytest.raises(ValueError, match="dB values per mel column"):
        loudness_points("loud", 2.5, TIMELINE)


def test_windows_of_a_long_clip_take_their_part_of_the_curve():
    """A 20 s clip's per-column curve, cut for a window starting at 9.24 s, is that stretch of it."""
    values = np.linspace(-60.0, 0.0, 2000)
    points = loudness_points(values, 20.0, TIMELINE)
    curve = window_loudness(points, 9.24, 10.24, TIMELINE)
    np.testing.assert_allclose(curve, values[924:1948], atol=1e-4)
    last = window_loudness(points, 18.0, 2.0, TIMELINE)
    np.testing.assert_allclose(last[:200], values[1800:2000], atol=1e-4)
    assert np.all(last[200:] == LOUDNESS_FLOOR_DB)


def test_loudness_files(tmp_path):
    csv_file = tmp_path / "curve.csv"
    csv_file.write_text("time,db\n0, -30\n1.5s, -6 dB\n# a comment\n3,-40\n")
    assert read_loudness_file(csv_file) == ([0.0, 1.5, 3.0], [-30.0, -6.0, -40.0])
    json_file = tmp_path / "curve.json"
    json_file.write_text(json.dumps({"times": [0, 2], "db": [-20, -10]}))
    assert read_loudness_file(json_file) == ([0.0, 2.0], [-20.0, -10.0])
    json_file.write_text(json.dumps([[0, -20], [2, -10]]))
    assert read_loudness_file(json_file) == ([0.0, 2.0], [-20.0, -10.0])
    bad = tmp_path / "bad.csv"
    bad.write_text("0,-20\n1,loud\n")
    with pytest.raises(ValueError, match="line 2"):
        read_loudness_file(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_loudness_file(tmp_path / "missing.csv")


def test_roughened_curves_stay_close_and_keep_the_floor():
    rng = np.random.default_rng(0)
    seconds = 4.0
    t = np.arange(int(seconds * 16000)) / 16000
    # Four hits with exponential decays, 18 dB apart at most.
    envelope = np.zeros_like(t)
    for onset, gain in [(0.5, 1.0), (1.5, 0.3), (2.5, 0.125), (3.2, 0.6)]:
        after = t >= onset
        envelope[after] += gain * np.exp(-(t[after] - onset) / 0.15)
    wave = envelope * np.sin(2 * np.pi * 300 * t) + 1e-3 * rng.standard_normal(t.size)
    measured = audio_loudness(wave, TIMELINE)
    curve = np.full(TIMELINE.window_columns, LOUDNESS_FLOOR_DB, dtype=np.float32)
    curve[: measured.size] = measured
    errors, changed = [], 0
    for seed in range(20):
        rough = roughen_loudness(curve, measured.size, np.random.default_rng(seed), TIMELINE)
        assert rough.shape == curve.shape and np.all(rough[measured.size :] == LOUDNESS_FLOOR_DB)
        assert rough.max() <= 0 and rough.min() >= LOUDNESS_FLOOR_DB
        errors.append(np.abs(rough[: measured.size] - measured).mean())
        changed += not np.allclose(rough, curve)
    assert changed >= 18  # nearly every draw alters the curve...
    assert 0.3 < np.median(errors) < 8.0  # ...but keeps its shape (dB)
    # The same seed gives the same curve.
    np.testing.assert_array_equal(
        roughen_loudness(curve, measured.size, np.random.default_rng(3), TIMELINE),
        roughen_loudness(curve, measured.size, np.random.default_rng(3), TIMELINE),
    )


def test_condition_image_and_error():
    curves = np.array([[LOUDNESS_FLOOR_DB, -40.0, 0.0]])
    image = loudness_to_condition(curves, n_mels=4)
    assert image.shape == (1, 1, 4, 3)
    np.testing.assert_allclose(image[0, 0, 2].numpy(), [-1.0, 0.0, 1.0])
    assert loudness_error_db(np.array([-20.0, -70.0, -80.0]), np.array([-26.0, -80.0, -80.0])) == 6.0
    assert np.isnan(loudness_error_db(np.full(3, -80.0), np.full(3, -75.0)))


def _tone(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return amplitude * np.sin(2 * np.pi * 440 * t)


def test_gain_stage_puts_a_tone_on_a_ramp():
    tone = _tone(2.0, 0.05)  # -29 dBFS throughout
    ramp = np.linspace(-50.0, -15.0, 200)
    shaped = follow_loudness(tone, ramp, TIMELINE)
    assert shaped.shape == tone.shape and shaped.dtype == np.float32
    assert np.abs(audio_loudness(shaped, TIMELINE) - ramp).max() < 0.1
    # Half the way, in dB; strength 0 leaves the audio alone.
    half = audio_loudness(follow_loudness(tone, ramp, TIMELINE, 0.5), TIMELINE)
    np.testing.assert_allclose(half, (audio_loudness(tone, TIMELINE) + ramp) / 2, atol=0.1)
    np.testing.assert_array_equal(follow_loudness(tone, ramp, TIMELINE, 0.0), tone.astype(np.float32))


def test_gain_stage_steps_and_limits():
    tone = _tone(2.0, 0.05)
    steps = np.where(np.arange(200) < 100, -45.0, -15.0)
    measured = audio_loudness(follow_loudness(tone, steps, TIMELINE), TIMELINE)
    # Away from the step each side sits on its level; at the step the analysis window blurs it.
    np.testing.assert_allclose(measured[:90], -45.0, atol=0.2)
    np.testing.assert_allclose(measured[110:], -15.0, atol=0.2)
    # A faint stretch is raised by at most MAX_BOOST_DB, and silence stays silent: no sound is added.
    faint = np.concatenate([_tone(1.0, 1e-3), np.zeros(16000)])  # -63 dBFS, then silence
    raised = audio_loudness(follow_loudness(faint, np.full(200, -10.0), TIMELINE), TIMELINE)
    np.testing.assert_allclose(raised[10:90], audio_loudness(faint, TIMELINE)[10:90] + MAX_BOOST_DB, atol=0.1)
    assert np.all(raised[110:] == LOUDNESS_FLOOR_DB)
    # Full scale is the ceiling.
    assert np.abs(follow_loudness(_tone(1.0, 0.5), np.full(100, 0.0), TIMELINE)).max() <= 1.0
    with pytest.raises(ValueError, match="strength"):
        follow_loudness(tone, steps, TIMELINE, 1.5)
    with pytest.raises(ValueError, match="columns"):
        follow_loudness(tone, steps[:50], TIMELINE)


# --- the loudness controller in the pipeline ------------------------------------------------------


@pytest.fixture(scope="module")
def loudness_pipe(model_with_loudness_controller):
    from foleycrafter import FoleyCrafterPipeline

    pipe = FoleyCrafterPipeline.from_pretrained(model_with_loudness_controller)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe, **kwargs):
    import torch

    kwargs.setdefault("audio_length_in_s", 2.0)
    return pipe(prompt="a knock", num_inference_steps=2, generator=torch.Generator().manual_seed(0), **kwargs)


def test_loudness_controller_is_saved_and_loaded_natively(loudness_pipe, model_with_loudness_controller):
    from diffusers import ControlNetModel

    index = json.loads((model_with_loudness_controller / "model_index.json").read_text())
    assert index["loudness_controller"] == ["diffusers", "ControlNetModel"]
    assert isinstance(loudness_pipe.loudness_controller, ControlNetModel)
    assert loudness_pipe.loudness_controller.config.conditioning_channels == 1


def test_the_curve_steers_the_output_and_is_reported(loudness_pipe):
    timeline = loudness_pipe.timeline()
    plain = _generate(loudness_pipe)
    assert plain.loudness_curves is None
    swell = _generate(loudness_pipe, loudness=([0.0, 2.0], [-60.0, -10.0]))
    fade = _generate(loudness_pipe, loudness={"times": [0.0, 2.0], "db": [-10.0, -60.0]})
    np.testing.assert_allclose(
        swell.loudness_curves[0], loudness_from_points([0.0, 2.0], [-60.0, -10.0], 2.0, timeline), atol=1e-5
    )
    assert np.abs(swell.mel_images - plain.mel_images).max() > 1e-3
    assert np.abs(swell.mel_images - fade.mel_images).max() > 1e-3
    # Scale 0 switches the controller off: exactly the plain call.
    off = _generate(loudness_pipe, loudness=([0.0, 2.0], [-60.0, -10.0]), loudness_scale=0)
    np.testing.assert_array_equal(off.mel_images, plain.mel_images)
    assert off.loudness_curves is None


def test_a_batch_takes_one_curve_per_prompt(loudness_pipe):
    import torch

    curves = [np.full(200, -40.0), ([0.0, 1.0], [-20.0, -5.0])]
    out = loudness_pipe(
        prompt=["a knock", "a knock"],
        audio_length_in_s=2.0,
        num_inference_steps=2,
        loudness=curves,
        generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)],
    )
    assert out.loudness_curves.shape == (2, loudness_pipe.timeline().window_columns)
    assert np.all(out.loudness_curves[0, :200] == -40.0) and out.loudness_curves[1, 150] == -5.0
    single = _generate(loudness_pipe, loudness=np.full(200, -40.0))
    np.testing.assert_allclose(
        out.mel_images[0], single.mel_images[0], atol=2e-3
    )  # batched kernels round apart
    with pytest.raises(ValueError, match="3 per-item curves for a batch of 2"):
        loudness_pipe(prompt=["a", "b"], audio_length_in_s=2.0, loudness=[np.zeros(3) - 9] * 3)


def test_windows_of_a_long_clip_follow_their_stretch(loudness_pipe):
    timeline = loudness_pipe.timeline()
    seconds = timeline.window_seconds * 1.6
    points = ([0.0, seconds], [-70.0, -5.0])
    out = _generate(loudness_pipe, audio_length_in_s=seconds, loudness=points)
    assert len(out.windows) == 2 and out.loudness_curves.shape[0] == 2
    for (start, end), curve in zip(out.windows, out.loudness_curves):
        expected = window_loudness(loudness_points(points, seconds, timeline), start, end - start, timeline)
        np.testing.assert_allclose(curve, expected, atol=1e-5)


def test_bad_loudness_is_refused_early(loudness_pipe, native_model):
    from foleycrafter import FoleyCrafterPipeline

    with pytest.raises(ValueError, match="dBFS"):
        _generate(loudness_pipe, loudness=([0.0, 1.0], [-20.0, 6.0]))
    with pytest.raises(ValueError, match="within the clip"):
        _generate(loudness_pipe, loudness=([0.0, 3.0], [-20.0, -10.0]))
    with pytest.raises(ValueError, match="loudness_scale"):
        _generate(loudness_pipe, loudness=np.full(10, -20.0), loudness_scale=-1)
    released = FoleyCrafterPipeline.from_pretrained(native_model)
    assert released.loudness_controller is None
    with pytest.raises(ValueError, match="no loudness controller"):
        _generate(released, loudness=np.full(10, -20.0))


def test_gain_stage_in_the_pipeline(loudness_pipe, native_model):
    from foleycrafter import FoleyCrafterPipeline

    timeline = loudness_pipe.timeline()
    plain = _generate(loudness_pipe, loudness=np.full(200, -40.0))
    level = float(np.median(audio_loudness(plain.audios[0], timeline)))
    # A swell and a fade within the gain's reach of what the model drew.
    points = ([0.0, 1.0, 2.0], [level - 15.0, level + 10.0, level - 15.0])
    curve = window_loudness(loudness_points(points, 2.0, timeline), 0.0, 2.0, timeline)[:200]
    follow = _generate(loudness_pipe, loudness=points, loudness_gain=1.0)
    free = _generate(loudness_pipe, loudness=points)
    np.testing.assert_array_equal(follow.mel_images, free.mel_images)  # the gain acts on the audio only
    after = loudness_error_db(audio_loudness(follow.audios[0], timeline), curve, floor_db=-80.0)
    before = loudness_error_db(audio_loudness(free.audios[0], timeline), curve, floor_db=-80.0)
    assert after < 1.5 < before
    # Across the windows of a long clip, joined after shaping.
    seconds = timeline.window_seconds * 1.6
    long_points = ([0.0, seconds], [level - 10.0, level + 5.0])
    long = _generate(loudness_pipe, audio_length_in_s=seconds, loudness=long_points, loudness_gain=1.0)
    columns = timeline.clip_columns(seconds)
    target = np.interp((np.arange(columns) + 0.5) / 100, *long_points)
    assert loudness_error_db(audio_loudness(long.audios[0], timeline), target, floor_db=-80.0) < 1.5
    # Without a loudness controller: the gain alone, with the controller's scale at 0.
    released = FoleyCrafterPipeline.from_pretrained(native_model)
    released.set_progress_bar_config(disable=True)
    alone = _generate(released, loudness=points, loudness_scale=0, loudness_gain=1.0)
    assert loudness_error_db(audio_loudness(alone.audios[0], timeline), curve, floor_db=-80.0) < 1.5
    with pytest.raises(ValueError, match="pass `loudness` too"):
        _generate(loudness_pipe, loudness_gain=1.0)
    with pytest.raises(ValueError, match="loudness_gain"):
        _generate(loudness_pipe, loudness=points, loudness_gain=2.0)
    with pytest.raises(ValueError, match="latent"):
        _generate(loudness_pipe, loudness=points, loudness_gain=0.5, output_type="latent")
    with pytest.raises(ValueError, match="loudness_scale=0"):
        _generate(released, loudness=points, loudness_gain=1.0)


def test_typed_points_and_simplified_curves():
    from foleycrafter.loudness import format_loudness_points, parse_loudness_points, simplify_curve
    from foleycrafter.plots import loudness_plot

    assert parse_loudness_points("  ") is None
    times, levels = parse_loudness_points("1.5s:-10dB; 0:-40\n3:-30", duration=3.0)
    assert times.tolist() == [0.0, 1.5, 3.0] and levels.tolist() == [-40.0, -10.0, -30.0]
    assert format_loudness_points((times, levels)) == "0.00:-40.0, 1.50:-10.0, 3.00:-30.0"
    np.testing.assert_array_equal(parse_loudness_points(format_loudness_points((times, levels)))[1], levels)
    with pytest.raises(ValueError, match="is not `seconds:dB`"):
        parse_loudness_points("0:-40, loud")
    with pytest.raises(ValueError, match="within the clip"):
        parse_loudness_points("0:-40, 5:-10", duration=3.0)
    # A swell then a fade, sampled per column: a handful of points within 2 dB of every column.
    curve = np.concatenate([np.linspace(-60, -10, 150), np.linspace(-10, -40, 150)])
    points = simplify_curve(curve, TIMELINE, tolerance_db=2.0)
    assert 3 <= len(points[0]) <= 6
    redrawn = np.interp((np.arange(300) + 0.5) / 100, *points)
    assert np.abs(redrawn - curve).max() <= 2.0
    assert (
        len(simplify_curve(np.random.default_rng(0).normal(-30, 10, 500), TIMELINE, max_points=12)[0]) == 12
    )
    pixels = np.asarray(loudness_plot(3.0, (times, levels), points)).reshape(-1, 3).astype(int)
    red = np.abs(pixels - (220, 30, 30)).max(axis=1) < 10
    grey = np.abs(pixels - (150, 150, 150)).max(axis=1) < 10
    assert red.sum() > 500 and grey.sum() > 200  # the points' lines over the reference
    empty = np.asarray(loudness_plot(3.0)).reshape(-1, 3).astype(int)
    assert (np.abs(empty - (220, 30, 30)).max(axis=1) < 10).sum() == 0


# --- the loudness predictor -------------------------------------------------------------------------


def test_frame_levels_take_each_frames_loudest_column_and_curves_come_back():
    from foleycrafter.models.loudness import frame_levels, levels_to_curve

    curve = np.full(300, -60.0, dtype=np.float32)
    curve[105] = -6.0  # a 10 ms peak at 1.05 s
    levels = frame_levels(curve, 3.0, 30, TIMELINE)  # 10 frames per second: frame k covers [k/10, (k+1)/10)
    assert levels.shape == (30,) and levels[10] == -6.0 and np.all(np.delete(levels, 10) == -60.0)
    # More frames than columns: each frame takes the column under its centre.
    short = frame_levels(np.linspace(-60, 0, 10, dtype=np.float32), 0.1, 40, TIMELINE)
    assert short.shape == (40,) and np.all(np.diff(short) >= 0) and short[0] == -60.0
    back = levels_to_curve(np.array([-60.0, -20.0, -40.0]), 3.0, TIMELINE)
    # Frame centres at 0.5, 1.5 and 2.5 s; column i's centre at (i + 0.5) / 100 s.
    np.testing.assert_allclose(back[[49, 149, 249]], [-60.0, -20.0, -40.0], atol=0.5)
    assert back[0] == -60.0 and back[299] == -40.0 and back[99] == pytest.approx(-40.0, abs=0.5)


def test_loudness_predictor_levels_stay_in_range_and_round_trip(tmp_path):
    import torch

    from foleycrafter.models import LoudnessPredictor

    torch.manual_seed(0)
    predictor = LoudnessPredictor(block_channels=(4, 4, 8, 8), head_hidden=16, resize_size=32, crop_size=28)
    frames = np.random.default_rng(0).integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)
    levels = predictor.eval().predict(frames)
    assert levels.shape == (1, 12) and levels.min() >= -80 and levels.max() <= 0
    assert predictor.to_target(torch.tensor([-80.0, -40.0, 0.0, 5.0])).tolist() == [0.0, 0.5, 1.0, 1.0]
    predictor.save_pretrained(tmp_path / "predictor")
    loaded = LoudnessPredictor.from_pretrained(tmp_path / "predictor").eval()
    torch.testing.assert_close(loaded.predict(frames), levels)
    with pytest.raises(ValueError, match="floor_db must be negative"):
        LoudnessPredictor(floor_db=0.0)


def test_loudness_from_the_video(loudness_pipe, clip):
    """loudness="video": each window's curve is the predictor's for its frames."""
    from foleycrafter import FoleyCrafterPipeline

    out = _generate(loudness_pipe, video=clip, audio_length_in_s=None, loudness="video")
    timeline = loudness_pipe.timeline()
    assert out.loudness_curves.shape == (1, timeline.window_columns)
    active = timeline.active_columns(clip.duration)
    curve = out.loudness_curves[0]
    assert np.all(curve[active:] == LOUDNESS_FLOOR_DB) and np.all(curve[:active] > LOUDNESS_FLOOR_DB)
    assert np.all(curve[:active] <= 0) and curve[:active].std() > 0  # the frames differ, so do the levels
    with pytest.raises(ValueError, match="must be 'video'"):
        _generate(loudness_pipe, video=clip, audio_length_in_s=None, loudness="loud")
    with pytest.raises(ValueError, match="every item needs a `video`"):
        _generate(loudness_pipe, loudness="video")
    without = FoleyCrafterPipeline(**{**loudness_pipe.components, "loudness_predictor": None})
    with pytest.raises(ValueError, match="needs a loudness predictor"):
        without(prompt="", video=clip, loudness="video")
