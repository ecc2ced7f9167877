"""Region focus: boxes and masks, crop and mask modes, the pipeline's use, two-object clips."""

import numpy as np
import pytest

from foleycrafter.region import apply_region, box_outline, check_region, parse_region, region_clip
from foleycrafter.video import VideoClip


def frames_with_quadrants(count=4, height=40, width=60):
    """Frames whose four quadrants have distinct colours (10, 20, 30, 40), per frame + k."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for k in range(count):
        frames[k, : height // 2, : width // 2] = 10 + k
        frames[k, : height // 2, width // 2 :] = 20 + k
        frames[k, height // 2 :, : width // 2] = 30 + k
        frames[k, height // 2 :, width // 2 :] = 40 + k
    return frames


def test_a_box_crops_or_masks_exactly_its_pixels():
    frames = frames_with_quadrants()
    right_half = apply_region(frames, (0.5, 0.0, 1.0, 1.0), "crop")
    assert right_half.shape == (4, 40, 30, 3)
    assert set(np.unique(right_half[0])) == {20, 40}
    masked = apply_region(frames, (0.5, 0.0, 1.0, 1.0), "mask")
    assert masked.shape == frames.shape
    assert np.all(masked[:, :, :30] == 128) and np.array_equal(masked[:, :, 30:], frames[:, :, 30:])
    # Fractions round outwards to whole pixels: a box never loses the object's edge.
    assert apply_region(frames, (0.1, 0.1, 0.2, 0.2), "crop").shape == (4, 4, 6, 3)


def test_masks_per_clip_or_per_frame_are_resized_to_the_frames():
    frames = frames_with_quadrants()
    mask = np.zeros((4, 6), bool)
    mask[2:, :3] = True  # bottom-left quadrant, at another resolution
    cropped = apply_region(frames, mask, "crop")
    assert cropped.shape == (4, 20, 30, 3) and set(np.unique(cropped[1])) == {31}
    moving = np.zeros((4, 4, 6), bool)
    for k in range(4):
        moving[k, k % 2 * 2 :, :3] = True  # top-left, then bottom-left, ...
    masked = apply_region(frames, moving, "mask")
    assert set(np.unique(masked[0])) == {10, 30, 128} and set(np.unique(masked[1])) == {31, 128}
    assert apply_region(frames, moving, "crop").shape == (4, 40, 30, 3)  # one box: the union
    with pytest.raises(ValueError, match="3 frames for 4 sampled frames"):
        apply_region(frames, moving[:3], "mask")


@pytest.mark.parametrize(
    "region, message",
    [
        ((0.5, 0.0, 0.4, 1.0), "x0 < x1"),
        ((0.0, 0.0, 1.2, 1.0), "within 0..1"),
        ((0.0, 0.0, 1.0), "4 numbers"),
        (np.zeros((4, 4), bool), "selects no pixel"),
        (np.zeros((2, 2, 2, 2)), "shape"),
    ],
)
def test_bad_regions_are_refused(region, message):
    with pytest.raises(ValueError, match=message):
        check_region(region)


def test_typed_regions_and_the_preview():
    assert parse_region("") is None
    np.testing.assert_array_equal(parse_region("0.5, 0, 1,1"), [0.5, 0, 1, 1])
    with pytest.raises(ValueError, match="four numbers"):
        parse_region("left half")
    picture = box_outline(np.zeros((40, 60, 3), np.uint8), (0.5, 0.0, 1.0, 1.0))
    assert tuple(picture[20, 30]) == (230, 40, 40) and tuple(picture[20, 10]) == (0, 0, 0)
    clip = VideoClip(frames=frames_with_quadrants(), frame_times=np.arange(4) / 10, duration=0.4)
    assert region_clip(clip, None) is clip and region_clip(None, (0, 0, 1, 1)) is None
    cut = region_clip(clip, (0, 0, 0.5, 0.5))
    assert cut.frames.shape == (4, 20, 30, 3) and np.array_equal(cut.frame_times, clip.frame_times)


# --- the pipeline -------------------------------------------------------------------------------------


def test_the_region_is_what_the_semantic_branch_sees(release_pipe):
    import torch

    frames = frames_with_quadrants(count=20, height=48, width=64)
    frames[:, :, 32:] = np.random.default_rng(0).integers(0, 255, (20, 48, 32, 3), dtype=np.uint8)
    clip = VideoClip(frames=frames, frame_times=np.arange(20) / 10, duration=2.0)

    def run(**kwargs):
        out = release_pipe(
            video=clip,
            num_inference_steps=2,
            onsets=[0.5],
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        )
        return out.mel_images

    whole = run()
    left = run(region=(0.0, 0.0, 0.5, 1.0))
    assert np.abs(left - whole).max() > 1e-4
    # Cropping the frames by hand gives the same sound: the region is all the branch sees.
    by_hand = release_pipe(
        video=VideoClip(
            frames=np.ascontiguousarray(frames[:, :, :32]), frame_times=clip.frame_times, duration=2.0
        ),
        num_inference_steps=2,
        onsets=[0.5],
        generator=torch.Generator().manual_seed(0),
    ).mel_images
    np.testing.assert_allclose(left, by_hand, atol=1e-5)
    assert np.abs(run(region=(0.0, 0.0, 0.5, 1.0), region_mode="mask") - left).max() > 1e-4
    with pytest.raises(ValueError, match="region_mode"):
        run(region=(0, 0, 1, 1), region_mode="blur")
    with pytest.raises(ValueError, match="x0 < x1"):
        run(region=(0.6, 0, 0.5, 1))
    with pytest.raises(ValueError, match="every item needs a `video`"):
        release_pipe(prompt="", audio_length_in_s=1.0, region=(0, 0, 1, 1))


# --- two-object clips --------------------------------------------------------------------------------


def test_two_object_clips_show_two_objects_and_sound_like_one():
    import cv2

    from foleycrafter.data import synthfoley as sf

    sides = set()
    for index in range(6):
        frames, audio, record = sf.generate_two_object_clip(0, index, "test", 64)
        assert record["layout"] == "two_objects" and record["partner_class_index"] != record["class_index"]
        _, single_audio, single = sf.generate_clip(0, index, "test", 64)
        np.testing.assert_array_equal(audio, single_audio)  # the heard object's own soundtrack
        assert single["onsets"] == record["onsets"]
        # The region is exactly the heard object's half-size picture.
        heard = apply_region(frames, record["region"], "crop")
        expected = np.stack(
            [
                cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA)
                for f in sf.generate_clip(0, index, "test", 64)[0]
            ]
        )
        np.testing.assert_array_equal(heard, expected)
        sides.add(record["heard_side"])
    assert sides == {"left", "right"}
    again = sf.generate_two_object_clip(0, 2, "test", 64)
    assert again[2] == sf.plan_two_object_clip(0, 2, "test", 64)
