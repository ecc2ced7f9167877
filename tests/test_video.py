"""Video metadata and frame sampling."""

from __future__ import annotations

import numpy as np
import pytest

from foleycrafter.testing import write_video
from foleycrafter.video import VideoClip, VideoReadError, load_clip, read_frames, read_video_info


def numbered_frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frame i is a flat grey of level 8 * i: a lossy codec keeps flat fields close."""
    levels = (np.arange(count) * 8 % 256).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "numbered é.mp4", numbered_frames(30), 14.96)


def test_metadata(numbered_video):
    info = read_video_info(numbered_video)
    assert info.num_frames == 30
    assert info.fps == pytest.approx(14.96, abs=0.01)
    assert (info.width, info.height) == (48, 32)
    assert info.duration == pytest.approx(30 / 14.96, abs=0.01)


def test_frames_at_indices_in_any_order_with_repeats(numbered_video):
    frames = read_frames(numbered_video, np.array([5, 0, 29, 5]))
    assert frames.shape == (4, 32, 48, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(frames.reshape(4, -1).mean(1), [40, 0, 232, 40], atol=3)


def test_clip_samples_uniformly_like_the_release(numbered_video):
    clip = load_clip(numbered_video, num_frames=150)
    assert clip.frames.shape == (150, 32, 48, 3)
    expected = np.linspace(0, 29, 150).astype(int)
    np.testing.assert_allclose(clip.frame_times, expected / 14.96, atol=1e-3)
    every_frame = read_frames(numbered_video, np.arange(30))
    np.testing.assert_array_equal(clip.frames, every_frame[expected])
    first_second = load_clip(numbered_video, num_frames=10, end_seconds=1.0)
    assert first_second.duration == 1.0 and first_second.frame_times.max() < 1.0


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(VideoReadError, match="not found"):
        read_video_info(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        read_video_info(text)


def test_clip_validates_frames():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        VideoClip(frames=np.zeros((4, 8, 8), np.uint8), frame_times=np.zeros(4), duration=1.0)
    with pytest.raises(ValueError, match="uint8"):
        VideoClip(frames=np.zeros((4, 8, 8, 3), np.float32), frame_times=np.zeros(4), duration=1.0)


@pytest.mark.parametrize("name,duration,fps", [("avsync_0.mp4", 4.14, 14.96), ("avsync_1.mp4", 5.01, 29.97)])
def test_real_clips(shared_media, name, duration, fps):
    path = shared_media / "video" / name
    info = read_video_info(path)
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.duration == pytest.approx(duration, abs=0.1)
    clip = load_clip(path)
    assert clip.frames.shape == (150, info.height, info.width, 3)
    # Real footage: frames vary over the clip.
    assert np.abs(clip.frames[0].astype(int) - clip.frames[-1].astype(int)).mean() > 1


def test_pipeline_on_a_real_clip(shared_media, release_pipe):
    import torch

    path = shared_media / "video" / "avsync_0.mp4"
    info = read_video_info(path)
    out = release_pipe(
        prompt="", video=path, num_inference_steps=2, generator=torch.Generator().manual_seed(42)
    )
    assert out.audios[0].shape == (round(info.duration * 16000),)
    assert out.onset_probabilities[0].shape == (150,)
