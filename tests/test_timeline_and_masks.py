"""The time axis and timestamp masks: exact timing (100 columns/s) and the release's 102.4/s."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foleycrafter.temporal import (
    check_mask,
    mask_from_onset_times,
    mask_from_probabilities,
    mask_to_condition,
    mask_to_onset_times,
    onsets_from_probabilities,
)
from foleycrafter.timeline import Timeline

EXACT = Timeline()
RELEASE = Timeline(timing="release")


def release_time_condition(preds: np.ndarray, duration: float, max_frame_nums: int = 150) -> list[int]:
    """The released inference code's mask, transcribed literally as the reference."""
    condition = [
        -1 if preds[int(i / (1024 / 10 * duration) * max_frame_nums)] < 0.5 else 1
        for i in range(int(1024 / 10 * duration))
    ]
    return condition + [-1] * (1024 - len(condition))


def test_rates_and_lengths():
    assert EXACT.columns_per_second == 100.0
    assert RELEASE.columns_per_second == pytest.approx(102.4)
    assert EXACT.window_samples == 163840
    assert EXACT.window_seconds == pytest.approx(10.24)
    assert EXACT.latent_columns == 128
    assert EXACT.seconds_to_samples(3.3) == 52800
    assert EXACT.seconds_to_column(1.23) == 123
    assert RELEASE.seconds_to_column(1.23) == 125
    assert EXACT.column_to_seconds(250) == pytest.approx(2.5)
    assert EXACT.active_columns(3.3) == 330
    assert EXACT.active_columns(3.301) == 331
    assert RELEASE.active_columns(3.3) == int(102.4 * 3.3)
    assert EXACT.active_columns(20.0) == 1024


def test_timeline_rejects_bad_values():
    with pytest.raises(ValueError, match="timing"):
        Timeline(timing="fast")
    with pytest.raises(ValueError, match="multiple of the VAE factor"):
        Timeline(window_columns=1020)
    with pytest.raises(ValueError, match="positive integer"):
        Timeline(hop_length=0)


def test_detector_frame_indices_are_the_release_sampling():
    np.testing.assert_array_equal(EXACT.detector_frame_indices(301), np.linspace(0, 300, 150).astype(int))
    # Fewer frames than samples: frames repeat, none is out of range.
    indices = EXACT.detector_frame_indices(40)
    assert indices.min() == 0 and indices.max() == 39 and len(indices) == 150


@pytest.mark.parametrize("duration", [1.0, 2.37, 4.14, 5.01, 8.0, 9.99, 10.0])
def test_release_timing_reproduces_the_release_mask_exactly(duration):
    rng = np.random.default_rng(int(duration * 100))
    probabilities = rng.random(150)
    probabilities[rng.integers(0, 150, 5)] = 0.5  # the release counts exactly 0.5 as an onset
    ours = mask_from_probabilities(probabilities, duration, RELEASE)
    np.testing.assert_array_equal(
        ours, np.array(release_time_condition(probabilities, duration), dtype=np.float32)
    )


def test_exact_timing_places_a_detected_event_where_the_vocoder_renders_it():
    duration = 10.0
    probabilities = np.zeros(150)
    probabilities[120] = 0.9  # frame 120 of 150 over 10 s covers 8.0 .. 8.067 s
    exact_on = np.flatnonzero(mask_from_probabilities(probabilities, duration, EXACT) > 0)
    release_on = np.flatnonzero(mask_from_probabilities(probabilities, duration, RELEASE) > 0)
    assert exact_on[0] / 100 == pytest.approx(8.0, abs=0.011)
    # The release's columns start 2.4 % late in audio time: 8.0 s * 1.024 = 8.19 s.
    assert release_on[0] / 100 == pytest.approx(8.19, abs=0.011)


def test_detector_runs_become_onsets_at_their_weighted_centres():
    probabilities = np.zeros(100)
    probabilities[[20, 21, 22]] = [0.6, 1.0, 0.6]  # symmetric: the middle frame
    probabilities[[50, 51]] = [1.0, 0.5]  # weighted 2:1 towards frame 50
    probabilities[80] = 0.49  # below the threshold
    # 100 frames over 5 s: frame k stands for (k + 0.5) * 0.05 s.
    assert onsets_from_probabilities(probabilities, 5.0) == pytest.approx(
        [21.5 * 0.05, (50 + 1 / 3 + 0.5) * 0.05]
    )
    assert onsets_from_probabilities(probabilities, 5.0, threshold=0.45) == pytest.approx(
        [21.5 * 0.05, (50 + 1 / 3 + 0.5) * 0.05, 80.5 * 0.05]
    )
    # A run reaching the last frame still gives an onset inside the clip.
    last = onsets_from_probabilities(np.r_[np.zeros(9), 0.9], 1.0)
    assert last == pytest.approx([0.95]) and last[0] < 1.0
    assert onsets_from_probabilities(np.zeros(10), 1.0) == []
    with pytest.raises(ValueError, match="shape"):
        onsets_from_probabilities(np.zeros((2, 10)), 1.0)
    with pytest.raises(ValueError, match="duration"):
        onsets_from_probabilities(np.zeros(10), 0.0)


def test_onset_times_mark_event_columns_and_stop_at_the_clip_end():
    mask = mask_from_onset_times([0.0, 2.95], duration=3.0, timeline=EXACT, event_seconds=0.1)
    np.testing.assert_array_equal(np.flatnonzero(mask > 0), np.r_[0:10, 295:300])
    assert mask.shape == (1024,) and mask.dtype == np.float32
    assert mask_to_onset_times(mask, EXACT) == [0.0, 2.95]


@pytest.mark.parametrize("times", [[-0.1], [3.0], [float("nan")]])
def test_onset_times_outside_the_clip_are_errors(times):
    with pytest.raises(ValueError, match="onset"):
        mask_from_onset_times(times, duration=3.0, timeline=EXACT)


def test_user_masks_are_validated_and_padded():
    short = np.array([1, 1, -1, -1], dtype=np.float32)
    padded = check_mask(short, EXACT)
    assert padded.shape == (1024,) and np.all(padded[4:] == -1) and np.all(padded[:2] == 1)
    image = mask_to_condition(padded, 256)
    assert image.shape == (1, 1, 256, 1024)
    np.testing.assert_array_equal(check_mask(image, EXACT), padded)
    with pytest.raises(ValueError, match=r"\+1 \(event on\) or -1"):
        check_mask(np.zeros(10), EXACT)
    with pytest.raises(ValueError, match="1100 columns"):
        check_mask(-np.ones(1100), EXACT)


def test_condition_image_repeats_the_mask_over_mel_bands():
    masks = np.stack([mask_from_onset_times([1.0], 3.0, EXACT), -np.ones(1024, np.float32)])
    image = mask_to_condition(masks, 256)
    assert image.shape == (2, 1, 256, 1024)
    assert torch.equal(image[0, 0, 0], image[0, 0, 255])
    assert image[0, 0, 0, 100] == 1 and image[1].max() == -1


def test_a_new_controllers_condition_embedder_passes_the_mask_on(release_pipe):
    """Two masks with different onsets must reach the embedder's last block as different features:
    with PyTorch's default initialisation the difference shrank ~3x per layer (v2's first controller
    never learned timing); after initialize_condition_embedding it stays at the features' scale, and
    the zero-initialised output still makes the new controller a no-op."""
    import torch.nn.functional as F

    from foleycrafter.temporal import (
        controller_from_unet,
        initialize_condition_embedding,
        mask_from_onset_times,
        mask_to_condition,
    )

    timeline = release_pipe.timeline()
    masks = [
        mask_to_condition(np.stack([mask_from_onset_times(onsets, 5.0, timeline)]), release_pipe.n_mels)
        for onsets in ([0.5, 2.0], [1.2, 3.5])
    ]
    from foleycrafter.semantic import detached_semantic_adapter

    torch.manual_seed(0)
    with torch.no_grad(), detached_semantic_adapter(release_pipe.unet):
        controller = controller_from_unet(
            release_pipe.unet, conditioning_embedding_out_channels=(4, 8, 16, 32)
        )
    embedder = controller.controlnet_cond_embedding

    def last_block(mask):
        with torch.no_grad():
            h = F.silu(embedder.conv_in(mask.float()))
            for block in embedder.blocks:
                h = F.silu(block(h))
        return h

    def passed_on():
        first, second = last_block(masks[0]), last_block(masks[1])
        return float((first - second).abs().mean() / first.abs().mean())

    default = passed_on()
    initialize_condition_embedding(controller, torch.Generator().manual_seed(0))
    assert passed_on() > max(0.05, 10 * default), (default, passed_on())
    assert torch.count_nonzero(embedder.conv_out.weight) == 0
