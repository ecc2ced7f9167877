"""The audio onset detector on synthetic percussive clips with known onsets, and the label mappings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from foleycrafter.audio_onsets import (
    AudioOnsets,
    detect_audio_onsets,
    onsets_to_frame_labels,
    onsets_to_mel_mask,
)
from foleycrafter.timeline import Timeline

SR = 16000
AUDIO_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "audio"


# -- synthetic sounds: each starts abruptly at sample 0 ---------------------------------------------


def _decaying_partials(rng, n, base_hz, ratios=(1.0, 2.76, 5.40), decay_s=0.6):
    """A struck bar or bell: inharmonic partials, each decaying exponentially, random phases."""
    t = np.arange(n) / SR
    return sum(
        np.exp(-t * (k + 1) / decay_s)
        * np.sin(2 * np.pi * base_hz * r * t + rng.uniform(0, 2 * np.pi))
        / (k + 1)
        for k, r in enumerate(ratios)
    )


def _drum(rng, n, base_hz):
    """A low membrane: two modes below 200 Hz, starting at zero phase (no click)."""
    t = np.arange(n) / SR
    return np.exp(-t / 0.25) * np.sin(2 * np.pi * base_hz * t) + 0.5 * np.exp(-t / 0.15) * np.sin(
        2 * np.pi * 1.59 * base_hz * t
    )


def _noise_burst(rng, n, decay_s=0.03):
    """A clap or a step: white noise with a fast exponential decay."""
    t = np.arange(n) / SR
    return rng.standard_normal(n) * np.exp(-t / decay_s)


SOUNDS = {
    "partials": lambda rng, n: _decaying_partials(rng, n, rng.uniform(300, 1500)),
    "drum": lambda rng, n: _drum(rng, n, rng.uniform(60, 120)),
    "noise_burst": lambda rng, n: _noise_burst(rng, n, rng.uniform(0.01, 0.06)),
}


def make_clip(onsets, duration, sound, seed=0, noise_rms=0.002, gains=None):
    """A clip of ``duration`` s: low background noise plus one ``sound`` event at each onset (s)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * SR))
    audio = noise_rms * rng.standard_normal(n)
    for k, onset in enumerate(onsets):
        start = int(round(onset * SR))
        event = SOUNDS[sound](rng, n - start)
        gain = gains[k] if gains is not None else rng.uniform(0.2, 0.6)
        audio[start:] += gain * event / np.abs(event).max()
    return audio


ONSETS = [0.3137, 0.8021, 1.4555, 2.2049, 2.6312]


# -- detection --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sound", sorted(SOUNDS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percussive_onsets_found_within_10_ms(sound, seed):
    result = detect_audio_onsets(make_clip(ONSETS, 3.0, sound, seed=seed), SR)
    assert len(result.times) == len(ONSETS), result.times
    errors_ms = np.abs(result.times - np.array(ONSETS)) * 1000
    assert errors_ms.max() <= 10.0, errors_ms


def test_mixed_sounds_and_loudness_differences():
    """Different sounds in one clip, 20 dB apart in level, each on the decay of the previous one."""
    rng = np.random.default_rng(5)
    n = 4 * SR
    audio = 0.001 * rng.standard_normal(n)
    onsets = [0.41, 0.93, 1.62, 2.35, 3.12]
    for onset, sound, gain in zip(
        onsets, ["partials", "noise_burst", "drum", "noise_burst", "partials"], [0.8, 0.08, 0.5, 0.6, 0.1]
    ):
        start = int(onset * SR)
        event = SOUNDS[sound](rng, n - start)
        audio[start:] += gain * event / np.abs(event).max()
    result = detect_audio_onsets(audio, SR)
    assert len(result.times) == len(onsets), result.times
    assert np.abs(result.times - onsets).max() <= 0.010


def test_no_onsets_in_silence_or_background_noise():
    rng = np.random.default_rng(0)
    n = 5 * SR
    white = rng.standard_normal(n)
    lowpassed = np.convolve(white, np.ones(8) / 8, mode="same")
    clips = {
        "digital silence": np.zeros(n),
        "faint noise": 1e-4 * white,
        "background noise": 0.003 * white,
        "loud noise": 0.1 * white,
        "low-passed noise": 0.01 * lowpassed / lowpassed.std(),
        "hum": 0.05 * np.sin(2 * np.pi * 50 * np.arange(n) / SR) + 0.002 * white,
    }
    for name, audio in clips.items():
        result = detect_audio_onsets(audio, SR)
        assert len(result.times) == 0, (name, result.times)


def test_events_below_the_silence_level_are_no_onsets():
    """The same clicks at -70 dBFS (below silence_db = -60) are ignored, at -40 dBFS found."""
    clip = make_clip(ONSETS, 3.0, "noise_burst", seed=7, noise_rms=1e-3, gains=[1.0] * len(ONSETS))
    clip /= np.abs(clip).max()
    assert len(detect_audio_onsets(10 ** (-70 / 20) * clip, SR).times) == 0
    assert len(detect_audio_onsets(10 ** (-40 / 20) * clip, SR).times) == len(ONSETS)
    assert len(detect_audio_onsets(10 ** (-70 / 20) * clip, SR, silence_db=-90).times) == len(ONSETS)


@pytest.mark.parametrize("frequency", [110.0, 440.0, 2500.0])
def test_a_long_ringing_partial_is_one_onset(frequency):
    rng = np.random.default_rng(1)
    n = 4 * SR
    t = np.arange(n) / SR
    audio = 0.001 * rng.standard_normal(n)
    start = int(0.5 * SR)
    audio[start:] += 0.7 * np.exp(-t[: n - start] / 1.5) * np.sin(2 * np.pi * frequency * t[: n - start])
    result = detect_audio_onsets(audio, SR)
    assert len(result.times) == 1 and abs(result.times[0] - 0.5) <= 0.010, result.times


def test_beating_partials_are_one_onset():
    """Two partials 6 Hz apart beat (the level swings by tens of dB); that is not a new onset."""
    n = 4 * SR
    t = np.arange(n) / SR
    audio = 0.001 * np.random.default_rng(2).standard_normal(n)
    tail = t[: n - SR // 2]
    audio[SR // 2 :] += (
        0.4 * np.exp(-tail / 1.5) * (np.sin(2 * np.pi * 440 * tail) + np.sin(2 * np.pi * 446 * tail))
    )
    assert len(detect_audio_onsets(audio, SR).times) == 1


def test_minimum_interval_between_onsets():
    # Bursts 60 ms apart: closer than the 100 ms default (a mask event's width), one onset (the
    # first, stronger one).
    close = make_clip([1.0, 1.06], 2.0, "noise_burst", gains=[0.8, 0.4])
    result = detect_audio_onsets(close, SR)
    assert len(result.times) == 1 and abs(result.times[0] - 1.0) <= 0.005
    # 130 ms apart: two onsets.
    apart = make_clip([1.0, 1.13], 2.0, "noise_burst", gains=[0.8, 0.8])
    assert len(detect_audio_onsets(apart, SR).times) == 2
    # A smaller minimum interval separates bursts 70 ms apart.
    assert (
        len(
            detect_audio_onsets(
                make_clip([1.0, 1.07], 2.0, "noise_burst", gains=[0.8, 0.8]), SR, min_interval_ms=50
            ).times
        )
        == 2
    )
    # A larger minimum interval keeps the stronger onset of each close pair.
    onsets = [0.5, 0.65, 1.5, 1.67]
    audio = make_clip(onsets, 2.5, "noise_burst", gains=[0.2, 0.8, 0.8, 0.2])
    assert len(detect_audio_onsets(audio, SR).times) == 4
    result = detect_audio_onsets(audio, SR, min_interval_ms=200)
    np.testing.assert_allclose(result.times, [0.65, 1.5], atol=0.005)
    assert np.all(np.diff(result.times) >= 0.2)


def test_numpy_and_torch_inputs_give_the_same_onsets():
    audio = make_clip(ONSETS, 3.0, "partials", seed=3).astype(np.float32)
    expected = detect_audio_onsets(audio, SR).times
    for variant in (
        audio.astype(np.float64),
        torch.from_numpy(audio),
        torch.from_numpy(audio)[None],  # (1, samples)
        np.stack([audio, audio]),  # (channels, samples)
    ):
        np.testing.assert_allclose(detect_audio_onsets(variant, SR).times, expected, atol=1e-6)


def test_onsets_do_not_depend_on_the_clip_level():
    audio = make_clip(ONSETS, 3.0, "noise_burst", seed=4)
    loud = detect_audio_onsets(audio, SR)
    quiet = detect_audio_onsets(0.05 * audio, SR)  # -26 dB
    np.testing.assert_allclose(quiet.times, loud.times, atol=0.002)
    np.testing.assert_allclose(quiet.strengths, loud.strengths, rtol=0.05)


def test_result_fields_and_units():
    audio = make_clip(ONSETS, 3.0, "drum", seed=5)
    result = detect_audio_onsets(audio, SR)
    assert isinstance(result, AudioOnsets) and len(result) == len(ONSETS)
    assert result.sample_rate == SR and result.duration == pytest.approx(3.0)
    assert np.all(np.diff(result.times) > 0) and np.all((result.times >= 0) & (result.times < 3.0))
    assert result.strengths.shape == result.times.shape and np.all(result.strengths > 0)
    # 5 ms hop: frame n is centred on n * 80 samples.
    assert result.envelope.shape == result.frame_times.shape == result.threshold.shape
    assert result.envelope.shape == (1 + audio.size // 80,)
    np.testing.assert_allclose(np.diff(result.frame_times), 0.005)
    assert np.all(result.envelope >= 0)
    # Each strength is the detection function at a frame where it reached the threshold.
    for strength in result.strengths:
        frame = int(np.flatnonzero(result.envelope == strength)[0])
        assert strength >= result.threshold[frame]
    # Without refinement the onsets are flux-peak frame centres, about a quarter frame early.
    raw = detect_audio_onsets(audio, SR, refine=False)
    np.testing.assert_allclose(raw.times * 200, np.round(raw.times * 200), atol=1e-6)
    assert np.all((raw.times - ONSETS < 0.0) & (raw.times - ONSETS > -0.017))


def test_sound_already_playing_at_the_start_or_cut_at_the_end_is_no_onset():
    n = 2 * SR
    t = np.arange(n) / SR
    ringing = 0.5 * np.exp(-t / 3.0) * np.sin(2 * np.pi * 660 * t) + 0.001 * np.random.default_rng(
        0
    ).standard_normal(n)
    # Cut while loud at both ends (the clip ends mid-sound).
    assert len(detect_audio_onsets(ringing[SR // 4 :], SR).times) == 0


def test_bad_inputs_are_rejected():
    audio = np.zeros(SR)
    with pytest.raises(ValueError, match="empty"):
        detect_audio_onsets(np.zeros(0), SR)
    with pytest.raises(ValueError, match="NaN"):
        detect_audio_onsets(np.full(SR, np.nan), SR)
    with pytest.raises(ValueError, match=r"\(samples, channels\)"):
        detect_audio_onsets(np.zeros((SR, 2)), SR)
    with pytest.raises(ValueError, match="shape"):
        detect_audio_onsets(np.zeros((1, 1, SR)), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        detect_audio_onsets(audio, 0)
    with pytest.raises(ValueError, match="hop_ms"):
        detect_audio_onsets(audio, SR, hop_ms=0)
    with pytest.raises(ValueError, match="rise_fraction"):
        detect_audio_onsets(audio, SR, rise_fraction=1.5)
    # Shorter than one frame still works (and finds nothing in silence).
    assert len(detect_audio_onsets(np.zeros(100), SR).times) == 0


def test_the_package_does_not_import_librosa():
    code = (
        "import sys, foleycrafter.audio_onsets, foleycrafter.eval.onset_metrics; "
        "assert 'librosa' not in sys.modules, 'librosa imported'; "
        "assert 'diffusers' not in sys.modules, 'diffusers imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- labels on the video-frame grid and the mel-column mask -----------------------------------------


def test_frame_labels_map_times_to_frames():
    labels = onsets_to_frame_labels([1.0], num_frames=150, duration=10.0)
    assert labels.dtype == np.float32 and labels.shape == (150,)
    assert np.flatnonzero(labels).tolist() == [15]
    # Frame k covers [k d / T, (k + 1) d / T): 1/15 s per frame here.
    labels = onsets_to_frame_labels([0.0, 0.0666, 0.0667, 9.99], 150, 10.0)
    assert np.flatnonzero(labels).tolist() == [0, 1, 149]
    labels = onsets_to_frame_labels([1.0, 9.95], 150, 10.0, width_frames=3)
    assert np.flatnonzero(labels).tolist() == [15, 16, 17, 149]
    assert onsets_to_frame_labels([], 150, 10.0).sum() == 0
    # Float rounding does not move a boundary time to the previous frame (0.3 / 3 * 150 < 15 in floats).
    assert np.flatnonzero(onsets_to_frame_labels([0.3], 150, 3.0)).tolist() == [15]
    # Non-integer frame rates and clip lengths: 4.14 s, 150 frames.
    assert np.flatnonzero(onsets_to_frame_labels([2.07], 150, 4.14)).tolist() == [75]


def test_frame_labels_use_the_inference_frame_grid():
    """A label at the time of mel column c lands on the frame that decides column c at inference."""
    for timeline, duration in ((Timeline(), 7.3), (Timeline(timing="release"), 10.0)):
        frame_of_column = timeline.column_to_detector_frame(duration, num_frames=150)
        for column in range(0, len(frame_of_column), 37):
            time = timeline.column_to_seconds(column)
            labels = onsets_to_frame_labels([time], 150, duration)
            assert np.flatnonzero(labels).tolist() == [frame_of_column[column]]


def test_frame_labels_reject_bad_input():
    with pytest.raises(ValueError, match="within the clip"):
        onsets_to_frame_labels([10.0], 150, 10.0)
    with pytest.raises(ValueError, match="within the clip"):
        onsets_to_frame_labels([-0.1], 150, 10.0)
    with pytest.raises(ValueError, match="num_frames"):
        onsets_to_frame_labels([1.0], 0, 10.0)
    with pytest.raises(ValueError, match="duration"):
        onsets_to_frame_labels([1.0], 150, 0.0)
    with pytest.raises(ValueError, match="width_frames"):
        onsets_to_frame_labels([1.0], 150, 10.0, width_frames=0)
    with pytest.raises(ValueError, match="finite"):
        onsets_to_frame_labels([float("nan")], 150, 10.0)


def test_mel_mask_is_the_inference_mask():
    from foleycrafter.temporal import DEFAULT_EVENT_SECONDS, mask_from_onset_times

    times = [0.31, 1.0, 4.257]
    for timeline in (Timeline(), Timeline(timing="release")):
        np.testing.assert_array_equal(
            onsets_to_mel_mask(times, 5.0, timeline),
            mask_from_onset_times(times, 5.0, timeline, DEFAULT_EVENT_SECONDS),
        )
        np.testing.assert_array_equal(
            onsets_to_mel_mask(np.array(times), 5.0, timeline, event_seconds=0.25),
            mask_from_onset_times(times, 5.0, timeline, 0.25),
        )
    with pytest.raises(ValueError, match="within the clip"):
        onsets_to_mel_mask([6.0], 5.0)


def test_detected_onsets_to_labels_end_to_end():
    audio = make_clip(ONSETS, 3.0, "noise_burst", seed=6)
    times = detect_audio_onsets(audio, SR).times
    labels = onsets_to_frame_labels(times, 45, 3.0)  # 15 frames per second
    assert np.flatnonzero(labels).tolist() == [int(t * 15) for t in ONSETS]
    mask = onsets_to_mel_mask(times, 3.0)
    for onset in ONSETS:
        assert mask[int(onset * 100)] == 1.0 or mask[int(onset * 100) + 1] == 1.0


# -- real recordings --------------------------------------------------------------------------------


@pytest.mark.skipif(not AUDIO_DIR.is_dir(), reason=f"shared audio not found at {AUDIO_DIR}")
@pytest.mark.parametrize("name", ["audiocaps_GIOApFAWDOc_160.wav", "audiocaps_YniwgMbB6tpQ_01.wav"])
def test_real_recordings(name):
    soundfile = pytest.importorskip("soundfile")
    path = AUDIO_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    audio, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    result = detect_audio_onsets(audio.T, sample_rate)
    duration = audio.shape[0] / sample_rate
    assert result.duration == pytest.approx(duration)
    assert np.all(np.isfinite(result.times)) and np.all(np.diff(result.times) > 0)
    assert np.all((result.times >= 0) & (result.times < duration))
    assert np.all(np.diff(result.times) >= 0.05 - 1e-9)
    assert np.all(np.isfinite(result.envelope)) and np.all(np.isfinite(result.strengths))
