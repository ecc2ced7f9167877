"""Video metadata, frame sampling, audio files and muxing, on small videos made with ffmpeg."""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tracemalloc
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest

from foleycrafter.testing import write_video
from foleycrafter.video import (
    FFmpegError,
    OutputExistsError,
    VideoClip,
    VideoReadError,
    atomic_output,
    load_clip,
    mux_audio,
    read_audio_track,
    read_frames,
    read_video_info,
    run_ffmpeg,
    write_audio,
)

RATE = 16000
AAC_FRAME = 1024 / RATE  # seconds: one AAC frame of the generated track


def numbered_frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frame i is a flat grey of level 8 * i: a lossy codec keeps flat fields close."""
    levels = (np.arange(count) * 8 % 256).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


def tone(frequency: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(round(seconds * RATE)) / RATE)).astype(
        np.float32
    )


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def second_audio_track(path: Path) -> np.ndarray:
    out = mf.ffmpeg("-i", path, "-map", "0:a:1", "-ac", "1", "-ar", RATE, "-f", "f32le", "-").stdout
    return np.frombuffer(out, np.float32)


def assert_one_line_naming(error: pytest.ExceptionInfo, name: str) -> None:
    message = str(error.value)
    assert "\n" not in message and name in message, message


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "numbered é.mp4", numbered_frames(30), 14.96)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Test files, made once for the module."""
    folder = tmp_path_factory.mktemp("media")
    files = {}
    for fps in (14.96, 29.97, 24.6, 32.4):
        files[f"fps {fps}"] = mf.make_video(folder / f"fps_{fps}.mp4", fps=fps, seconds=2)
    # 2 s of video, 2.5 s of sound: the container runs longer than the video.
    files["with audio"] = mf.make_video(
        folder / "with_audio.mp4", size=(160, 96), fps=29.97, seconds=2, audio_seconds=2.5
    )
    files["upright"] = mf.make_video(folder / "upright.mp4", size=(96, 64), fps=25, seconds=1)
    for degrees in (90, 180, 270):
        files[f"rotated {degrees}"] = mf.rotate(files["upright"], folder / f"rot_{degrees}.mp4", degrees)
    files["odd mpeg4"] = mf.make_video(
        folder / "odd_mpeg4.mp4", size=(161, 97), codec="mpeg4", pix_fmt="yuv420p"
    )
    files["odd x264"] = mf.make_video(folder / "odd_444.mp4", size=(161, 97), pix_fmt="yuv444p")
    files["gray"] = mf.make_video(folder / "gray.mp4", pix_fmt="gray", fps=32.4)
    files["vfr"], _ = mf.make_vfr_video(folder / "vfr.mp4")
    files["audio m4a"] = mf.make_sound(folder / "sound.m4a", codec=("-c:a", "aac"))
    files["audio wav"] = mf.make_sound(folder / "sound.wav")
    files["text"] = folder / "notes.mp4"
    files["text"].write_text("not a video\n")
    files["empty file"] = folder / "empty.mp4"
    files["empty file"].write_bytes(b"")
    whole = files["with audio"].read_bytes()
    files["truncated"] = folder / "truncated.mp4"  # the index ('moov') is at the end: cut off
    files["truncated"].write_bytes(whole[: len(whole) // 2])
    faststart = mf.make_video(
        folder / "faststart.mp4",
        size=(160, 96),
        seconds=2,
        audio_seconds=2,
        extra=("-movflags", "+faststart"),
    )
    whole = faststart.read_bytes()
    files["truncated, index first"] = folder / "truncated_faststart.mp4"
    files["truncated, index first"].write_bytes(whole[: len(whole) // 2])
    return files


# ---------------------------------------------------------------------------------------------------
# Reading


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


@pytest.mark.parametrize("fps", [14.96, 29.97, 24.6, 32.4])
def test_real_world_frame_rates(media, fps):
    path = media[f"fps {fps}"]
    info = read_video_info(path)
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.num_frames == math.ceil(2 * fps)  # frames stamped in [0, 2) s
    assert info.duration == pytest.approx(info.num_frames / fps, abs=1e-3)
    assert (info.width, info.height, info.rotation) == (96, 64, 0)
    assert (info.video_codec, info.has_audio, info.audio_codec) == ("h264", False, None)
    # Sampled frames are exactly those of a plain full decode.
    every = mf.decode_all(path)
    assert len(every) == info.num_frames
    indices = np.array([info.num_frames - 1, 3, 0, 3, 17])
    np.testing.assert_array_equal(read_frames(path, indices), every[indices])
    clip = load_clip(path, num_frames=150)
    expected = np.linspace(0, info.num_frames - 1, 150).astype(int)
    np.testing.assert_array_equal(clip.frames, every[expected])
    np.testing.assert_allclose(clip.frame_times, expected / fps, atol=1e-3)
    assert clip.duration == pytest.approx(info.duration)


def test_audio_stream_and_video_duration(media):
    info = read_video_info(media["with audio"])
    assert (info.has_audio, info.audio_codec, info.video_codec) == (True, "aac", "h264")
    # The container lasts as long as the 2.5 s soundtrack; the video's duration is its frames'.
    assert info.container_duration == pytest.approx(2.5, abs=0.05)
    assert info.duration == pytest.approx(60 / 29.97, abs=1e-6)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_gives_upright_frames(media, degrees):
    info = read_video_info(media[f"rotated {degrees}"])
    # ffmpeg's display rotation is counter-clockwise; VideoInfo.rotation is clockwise.
    assert info.rotation == (360 - degrees) % 360
    assert (info.width, info.height) == ((64, 96) if degrees in (90, 270) else (96, 64))
    frames = read_frames(info.path, [0, 10])
    assert frames.shape == (2, info.height, info.width, 3)
    # Upright as ffmpeg displays it, and exactly as OpenCV's own orientation handling gives it.
    as_ffmpeg_shows = mf.ffmpeg_first_frame(info.path, info.width, info.height)
    assert np.abs(frames[0].astype(int) - as_ffmpeg_shows).mean() < 2
    np.testing.assert_array_equal(frames, mf.decode_all(info.path)[[0, 10]])
    # Not the unrotated picture.
    if degrees == 180:
        upright = read_frames(media["upright"], [0])[0]
        assert np.abs(frames[0].astype(int) - upright).mean() > 10
    small = read_frames(info.path, [0], short_side=32)
    assert min(small.shape[1:3]) == 32 and (small.shape[1] > small.shape[2]) == (info.height > info.width)


@pytest.mark.parametrize("name", ["odd mpeg4", "odd x264"])
def test_odd_sizes(media, name):
    info = read_video_info(media[name])
    assert (info.width, info.height) == (161, 97)
    every = mf.decode_all(info.path)
    np.testing.assert_array_equal(read_frames(info.path, [0, 7]), every[[0, 7]])
    assert read_frames(info.path, [0], short_side=48).shape == (1, 48, 80, 3)  # 161 * 48 / 97 = 79.7


def test_grayscale_becomes_three_equal_channels(media):
    info = read_video_info(media["gray"])
    assert info.fps == pytest.approx(32.4)
    frames = load_clip(info.path, num_frames=8).frames
    assert frames.shape == (8, 64, 96, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 1], frames[..., 2])
    assert frames.std() > 10  # a picture, not a flat field


def test_short_side_resizes_with_area_interpolation_and_never_upscales(media):
    import cv2

    path = media["fps 29.97"]
    full = read_frames(path, [4, 9])
    small = read_frames(path, [4, 9], short_side=32)
    assert small.shape == (2, 32, 48, 3)
    expected = np.stack([cv2.resize(f, (48, 32), interpolation=cv2.INTER_AREA) for f in full])
    assert np.abs(small.astype(int) - expected).max() <= 1  # resized before vs after colour conversion
    np.testing.assert_array_equal(read_frames(path, [4, 9], short_side=500), full)
    clip = load_clip(path, num_frames=5, short_side=16)
    assert clip.frames.shape == (5, 16, 24, 3)


def test_sampling_memory_stays_flat_at_720p(tmp_path):
    """150 frames at short side 128 from 10 s of 1280x720: never near 300 full frames in memory."""
    path = mf.make_video(
        tmp_path / "hd.mp4", size=(1280, 720), fps=30, seconds=10, source="testsrc2",
        extra=("-preset", "ultrafast", "-tune", "fastdecode"),
    )  # fmt: skip
    info = read_video_info(path)
    assert (info.num_frames, info.width, info.height) == (300, 1280, 720)
    full_frame = 1280 * 720 * 3
    tracemalloc.start()
    try:
        clip = load_clip(path, num_frames=150, short_side=128)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.frames.shape == (150, 128, 228, 3)
    assert clip.frames.nbytes < 5 * full_frame
    # The kept frames plus a couple of decoded ones; a full decode would be 300 frames (830 MB).
    assert clip.frames.nbytes <= peak < 10 * full_frame, peak / full_frame


def test_variable_frame_rate_times(tmp_path):
    path, times = mf.make_vfr_video(tmp_path / "vfr.mp4")
    info = read_video_info(path)
    assert info.num_frames == 60
    every = mf.decode_all(path)
    clip = load_clip(path, num_frames=60)
    np.testing.assert_allclose(clip.frame_times, times, atol=1e-3)  # not index / average fps
    np.testing.assert_array_equal(clip.frames, every)
    # [2, 3) s holds frames 40..49 (10 fps there); a constant-rate guess would pick others.
    part = load_clip(path, num_frames=5, start_seconds=2.0, end_seconds=3.0)
    expected = np.linspace(40, 49, 5).astype(int)
    np.testing.assert_allclose(part.frame_times, times[expected] - 2.0, atol=1e-3)
    np.testing.assert_array_equal(part.frames, every[expected])
    assert part.duration == pytest.approx(1.0)


def test_time_range_at_a_constant_rate(media):
    path = media["with audio"]
    every = mf.decode_all(path)
    clip = load_clip(path, num_frames=10, start_seconds=0.5, end_seconds=1.5)
    first, stop = math.ceil(0.5 * 29.97), math.ceil(1.5 * 29.97)  # frames stamped in [0.5, 1.5)
    expected = np.linspace(first, stop - 1, 10).astype(int)
    np.testing.assert_array_equal(clip.frames, every[expected])
    np.testing.assert_allclose(clip.frame_times, expected / 29.97 - 0.5, atol=1e-3)
    assert clip.duration == pytest.approx(1.0) and 0 <= clip.frame_times.min() < clip.frame_times.max() < 1
    # The end is clipped to the video.
    tail = load_clip(path, num_frames=4, start_seconds=1.5, end_seconds=9.0)
    assert tail.duration == pytest.approx(60 / 29.97 - 1.5)


def test_bad_arguments(media):
    path = media["fps 24.6"]
    with pytest.raises(ValueError, match="Empty time range"):
        load_clip(path, start_seconds=5.0)
    with pytest.raises(ValueError, match="num_frames"):
        load_clip(path, num_frames=0)
    with pytest.raises(ValueError, match="past the end"):
        read_frames(path, [0, 50])  # 50 frames: 0..49
    with pytest.raises(ValueError, match=">= 0"):
        read_frames(path, [-1])
    with pytest.raises(ValueError, match="short_side"):
        read_frames(path, [0], short_side=0)
    assert read_frames(path, []).shape == (0, 64, 96, 3)


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(VideoReadError, match="not found"):
        read_video_info(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        read_video_info(text)


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("text", "not a video file"),
        ("empty file", "not a video file"),
        ("truncated", "truncated or corrupt"),
        ("audio m4a", r"no video stream \(it holds only audio: aac\)"),
        ("audio wav", r"no video stream \(it holds only audio: pcm_s16le\)"),
    ],
)
def test_bad_inputs_have_one_line_messages(media, name, pattern):
    path = media[name]
    for read in (read_video_info, lambda p: load_clip(p, num_frames=4), lambda p: read_frames(p, [0])):
        with pytest.raises(VideoReadError, match=pattern) as error:
            read(path)
        assert_one_line_naming(error, path.name)


def test_bad_paths(tmp_path):
    with pytest.raises(VideoReadError, match="No video path given") as error:
        read_video_info("")
    assert "\n" not in str(error.value)
    with pytest.raises(VideoReadError, match="is a folder") as error:
        load_clip(tmp_path)
    assert_one_line_naming(error, str(tmp_path))
    with pytest.raises(VideoReadError, match=r"not found: .* Check the path") as error:
        read_frames(tmp_path / "nope 1.mp4", [0])
    assert_one_line_naming(error, "nope 1.mp4")


def test_truncated_file_with_a_readable_index(media):
    """The header is intact but half the data is gone: early frames decode, the whole clip does
    not, and the error says so instead of padding half a video with its last frame."""
    path = media["truncated, index first"]
    info = read_video_info(path)
    assert info.num_frames == 60
    assert read_frames(path, [0, 5]).shape == (2, 96, 160, 3)
    with pytest.raises(
        VideoReadError, match=r"truncated or corrupt: decoding stopped at frame \d+ of the 60"
    ) as error:
        load_clip(path)
    assert_one_line_naming(error, path.name)


def test_paths_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "dossier à clips"
    folder.mkdir()
    path = mf.make_video(folder / "vidéo 日本 1.mp4", seconds=1, audio_seconds=1)
    info = read_video_info(path)
    assert info.has_audio and info.num_frames == 30
    assert load_clip(path, num_frames=3).frames.shape == (3, 64, 96, 3)
    out = mux_audio(path, tone(880, 1), RATE, tmp_path / "sortie é" / "résultat 1.mp4")
    assert out.is_file() and read_video_info(out).num_frames == 30
    assert len(read_audio_track(out)) == pytest.approx(RATE * info.duration, abs=1024)


def test_clip_validates_frames():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        VideoClip(frames=np.zeros((4, 8, 8), np.uint8), frame_times=np.zeros(4), duration=1.0)
    with pytest.raises(ValueError, match="uint8"):
        VideoClip(frames=np.zeros((4, 8, 8, 3), np.float32), frame_times=np.zeros(4), duration=1.0)


# ---------------------------------------------------------------------------------------------------
# One probe per file; what is not a moving picture

READERS = (read_video_info, lambda p: load_clip(p, num_frames=4), lambda p: read_frames(p, [0]))


def write_picture(path: Path, image_format: str) -> Path:
    """A 64x48 picture saved as ``image_format`` (PNG, JPEG, GIF) whatever ``path``'s suffix."""
    from PIL import Image

    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, :32] = (200, 30, 30)
    picture[::4] = 255
    Image.fromarray(picture).save(path, format=image_format)
    return path


def test_a_probed_video_is_not_opened_again(media, tmp_path, monkeypatch):
    import foleycrafter.video as video

    opened = {"facts": 0, "decoding": 0}

    def counting(kind, function):
        def counted(*args, **kwargs):
            opened[kind] += 1
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr(video, "_open_container", counting("facts", video._open_container))
    monkeypatch.setattr(video, "_open_capture", counting("decoding", video._open_capture))
    path = media["with audio"]
    info = read_video_info(path)
    assert opened == {"facts": 1, "decoding": 0}
    # Everything after takes the info: a time range needs no rescan, muxing no probe.
    part = load_clip(info, num_frames=8, start_seconds=0.5, end_seconds=1.5)
    whole = load_clip(info, num_frames=8)
    frames = read_frames(info, [0, 59])
    out = mux_audio(info, tone(880, 1.0), RATE, tmp_path / "out.mp4", keep_original_audio=True)
    assert len(read_audio_track(info)) == pytest.approx(2.5 * RATE, abs=1100)
    assert opened == {"facts": 1, "decoding": 3}
    # Given a path, each call opens the file once for its facts.
    np.testing.assert_array_equal(
        load_clip(path, num_frames=8, start_seconds=0.5, end_seconds=1.5).frames, part.frames
    )
    np.testing.assert_array_equal(read_frames(path, [0, 59]), frames)
    assert opened == {"facts": 3, "decoding": 5}
    assert whole.duration == pytest.approx(info.duration)
    assert mf.stream_counts(out) == {"Video": 1, "Audio": 2}
    # A VideoInfo of a file that has since gone is still a clear error.
    moved = tmp_path / "gone.mp4"
    moved.write_bytes(path.read_bytes())
    gone = read_video_info(moved)
    moved.unlink()
    for read in (
        lambda i: load_clip(i, num_frames=2),
        lambda i: mux_audio(i, tone(1, 1), RATE, tmp_path / "x.mp4"),
    ):
        with pytest.raises(VideoReadError, match="not found"):
            read(gone)


def test_frame_times_travel_with_the_info(tmp_path):
    path, times = mf.make_vfr_video(tmp_path / "vfr.mp4")
    info = read_video_info(path)
    assert info.frame_times.dtype == np.float64 and info.frame_times.shape == (60,)
    np.testing.assert_allclose(info.frame_times, times, atol=1e-3)
    with pytest.raises(ValueError, match="read-only"):
        info.frame_times[0] = 1.0
    assert "frame_times=" not in repr(info)
    # Not part of equality; left out by hand, the times are index / fps.
    by_hand = dataclasses.replace(info, frame_times=None)
    assert by_hand == info
    np.testing.assert_allclose(by_hand.frame_times, np.arange(60) / info.fps)
    with pytest.raises(ValueError, match=r"shape \(60,\)"):
        dataclasses.replace(info, frame_times=np.zeros(3))


def test_frames_an_edit_list_hides_are_not_counted(tmp_path):
    source = mf.make_video(tmp_path / "long.mp4", seconds=3, extra=("-g", "30"))  # a keyframe each second
    cut = tmp_path / "cut.mp4"
    # Copied from 0.5 s: the file starts at the keyframe at 0 s and an edit list hides 0 .. 0.5 s.
    mf.ffmpeg("-ss", "0.5", "-i", source, "-c", "copy", cut)
    every = mf.decode_all(cut)
    info = read_video_info(cut)
    assert info.num_frames == len(every) == 75
    assert info.frame_times[0] == 0 and np.allclose(np.diff(info.frame_times), 1 / 30)
    np.testing.assert_array_equal(read_frames(info, [0, 40, 74]), every[[0, 40, 74]])


def test_matroska_frames_are_counted_from_packets(tmp_path):
    """Matroska stores no frame count, and its duration covers the longer soundtrack."""
    path = mf.make_video(tmp_path / "clip.mkv", fps=29.97, seconds=2, audio_seconds=3)
    info = read_video_info(path)
    assert info.num_frames == 60 == len(mf.decode_all(path))
    assert info.container_duration == pytest.approx(3, abs=0.05)
    assert info.duration == pytest.approx(60 / 29.97, abs=1e-3)


@pytest.mark.parametrize(
    "name,image_format,kind",
    [
        ("still.mp4", "PNG", "PNG"),
        ("photo.mp4", "JPEG", "JPEG"),
        ("photo.jpg", "JPEG", "JPEG"),
        ("one.gif", "GIF", "GIF"),
    ],
)
def test_still_images_are_not_videos(tmp_path, name, image_format, kind):
    path = write_picture(tmp_path / name, image_format)
    for read in READERS:
        with pytest.raises(
            VideoReadError, match=rf"is a still image \({kind}\), not a video.*ffmpeg -loop 1"
        ) as error:
            read(path)
        assert_one_line_naming(error, name)


@pytest.mark.parametrize("name", ["one frame.mp4", "one frame.mkv", "one frame opencv.mp4"])
def test_a_video_of_one_frame_is_refused(tmp_path, name):
    if "opencv" in name:
        path = write_video(tmp_path / name, numbered_frames(1), 25)
    else:
        path = mf.make_video(tmp_path / name, extra=("-frames:v", "1"))
    for read in READERS:
        with pytest.raises(VideoReadError, match="holds a single video frame") as error:
            read(path)
        assert_one_line_naming(error, name)


def test_a_video_stream_without_frames_is_refused(tmp_path):
    import cv2

    path = tmp_path / "no frames.avi"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48)).release()  # nothing written
    for read in READERS:
        with pytest.raises(VideoReadError, match="has a video stream with no frames in it") as error:
            read(path)
        assert_one_line_naming(error, path.name)
    # An encoder stopped before the first frame: an MP4 with no streams at all.
    nothing = tmp_path / "nothing.mp4"
    source = "testsrc2=size=64x48:rate=30:duration=1"
    mf.ffmpeg("-f", "lavfi", "-i", source, "-frames:v", "0", "-c:v", "libx264", nothing)
    with pytest.raises(VideoReadError, match=r"has no video stream \(it holds no streams at all") as error:
        read_video_info(nothing)
    assert_one_line_naming(error, nothing.name)


def test_cover_art_is_not_the_video(media, tmp_path):
    cover = write_picture(tmp_path / "cover.png", "PNG")
    song = tmp_path / "song.m4a"
    mf.ffmpeg(
        "-f", "lavfi", "-i", "sine=duration=1", "-i", cover,
        "-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "png", "-disposition:v", "attached_pic", song,
    )  # fmt: skip
    for read in READERS:
        with pytest.raises(
            VideoReadError, match=r"has no video stream besides a cover picture \(it holds only audio: aac\)"
        ) as error:
            read(song)
        assert_one_line_naming(error, song.name)
    # A video with cover art: the video stream is the one read.
    video = tmp_path / "with cover.mp4"
    mf.ffmpeg(
        "-i", media["with audio"], "-i", cover,
        "-map", "0", "-map", "1", "-c", "copy", "-c:v:1", "png", "-disposition:v:1", "attached_pic", video,
    )  # fmt: skip
    info = read_video_info(video)
    assert (info.num_frames, info.video_codec, info.width, info.height, info.audio_codec) == (
        60,
        "h264",
        160,
        96,
        "aac",
    )
    np.testing.assert_array_equal(read_frames(info, [0, 59]), mf.decode_all(media["with audio"])[[0, 59]])


def test_cli_refuses_a_still_image_and_writes_nothing(tmp_path, native_model, capsys):
    from foleycrafter.cli import main

    still = write_picture(tmp_path / "still.mp4", "PNG")
    out = tmp_path / "out" / "still.wav"
    assert main(["generate", str(still), "-o", str(out), "--model", str(native_model)]) == 2
    err = capsys.readouterr().err
    assert "still.mp4' is a still image (PNG)" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["still.mp4"]


# ---------------------------------------------------------------------------------------------------
# Writing


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_atomic_output(tmp_path):
    target = tmp_path / "new" / "deeper" / "song.wav"
    with atomic_output(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".wav"
        assert temporary.name.startswith(".song.tmp-") and not temporary.exists()
        temporary.write_bytes(b"done")
        assert not target.exists()  # nothing at the destination until the body succeeds
    assert target.read_bytes() == b"done" and leftovers(target.parent) == []

    with pytest.raises(OutputExistsError, match=r"song.wav' exists; pass --overwrite to replace it") as error:
        with atomic_output(target):
            pass
    assert isinstance(error.value, FileExistsError)

    with pytest.raises(RuntimeError, match="crash"):
        with atomic_output(target, overwrite=True) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"done" and leftovers(target.parent) == []

    with atomic_output(target, overwrite=True) as temporary:
        temporary.write_bytes(b"again")
    assert target.read_bytes() == b"again"

    with pytest.raises(IsADirectoryError):
        with atomic_output(tmp_path):
            pass


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_audio_round_trip(tmp_path, suffix):
    waveform = tone(440, 1.0, amplitude=0.9)
    waveform[:10] = [1.5, -1.5, 1.0, -1.0, 0.0, np.nan, 0.25, -0.25, 1e-5, 2.0]
    path = write_audio(tmp_path / f"out{suffix}", waveform, RATE)
    assert path == tmp_path / f"out{suffix}" and leftovers(tmp_path) == []
    back = read_audio_track(path, sample_rate=RATE)
    expected = np.clip(np.nan_to_num(waveform), -1, 1)
    assert back.shape == expected.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, expected, atol=1.5 / 32768)
    report = run_ffmpeg(["-i", path], check=False).stderr
    assert "16000 Hz, mono, s16" in report
    with pytest.raises(OutputExistsError):
        write_audio(path, waveform, RATE)
    write_audio(path, np.zeros(100, np.int16), RATE, overwrite=True)
    assert len(read_audio_track(path)) == 100


def test_write_audio_reads_back_with_soundfile(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    waveform = tone(300, 0.5)
    for suffix in (".wav", ".flac"):
        data, rate = soundfile.read(write_audio(tmp_path / f"a{suffix}", waveform, RATE), dtype="float32")
        assert rate == RATE and data.ndim == 1
        np.testing.assert_allclose(data, waveform, atol=1.5 / 32768)


def test_write_audio_rejects_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"\.wav or \.flac"):
        write_audio(tmp_path / "out.mp3", tone(440, 0.1), RATE)
    with pytest.raises(ValueError, match="mono"):
        write_audio(tmp_path / "out.wav", np.zeros((2, 100), np.float32), RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        write_audio(tmp_path / "out.wav", tone(440, 0.1), 0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_mux_replaces_the_soundtrack_and_copies_the_video(media, tmp_path, suffix):
    source = media["with audio"]
    info = read_video_info(source)
    # Longer than the video: cut to the video's duration.
    out = mux_audio(source, tone(880, 3.0), RATE, tmp_path / f"out{suffix}")
    assert mf.stream_counts(out) == {"Video": 1, "Audio": 1}
    assert mf.video_packets_md5(out) == mf.video_packets_md5(source)
    muxed = read_video_info(out)
    assert (muxed.num_frames, muxed.video_codec, muxed.audio_codec) == (info.num_frames, "h264", "aac")
    assert (muxed.width, muxed.height) == (info.width, info.height)
    audio = read_audio_track(out)
    assert abs(len(audio) / RATE - info.duration) <= AAC_FRAME
    assert dominant_frequency(audio) == pytest.approx(880, abs=5)  # the generated track, not the 440 Hz
    assert leftovers(tmp_path) == []


def test_mux_pads_short_audio_and_keeps_the_original_as_second_track(media, tmp_path):
    source = media["with audio"]
    info = read_video_info(source)
    out = mux_audio(source, tone(880, 1.0), RATE, tmp_path / "both.mp4", keep_original_audio=True)
    assert mf.stream_counts(out) == {"Video": 1, "Audio": 2}
    assert mf.video_packets_md5(out) == mf.video_packets_md5(source)
    generated, original = read_audio_track(out), second_audio_track(out)
    assert abs(len(generated) / RATE - info.duration) <= AAC_FRAME
    assert np.abs(generated[: RATE // 2]).max() > 0.3 and np.abs(generated[-RATE // 4 :]).max() < 0.01
    assert dominant_frequency(original) == pytest.approx(440, abs=5)
    # The 2.5 s original is cut at the video's end.
    assert abs(len(original) / RATE - info.duration) <= 2 * AAC_FRAME
    assert read_video_info(out).container_duration == pytest.approx(info.duration, abs=0.1)
    # Nothing to keep without an original soundtrack.
    silent = mux_audio(
        media["fps 24.6"], tone(880, 3.0), RATE, tmp_path / "one.mkv", keep_original_audio=True
    )
    assert mf.stream_counts(silent) == {"Video": 1, "Audio": 1}


def test_mux_keeps_rotation(media, tmp_path):
    out = mux_audio(media["rotated 90"], tone(500, 1.0), RATE, tmp_path / "rotated.mp4")
    info = read_video_info(out)
    assert (info.rotation, info.width, info.height) == (270, 64, 96)


def test_mux_never_writes_over_the_input(media, tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(media["with audio"].read_bytes())
    before = source.read_bytes()
    link = tmp_path / "link.mp4"
    os.link(source, link)
    for out in (source, tmp_path / "sub" / ".." / "clip.mp4", str(source), link):
        with pytest.raises(ValueError, match="over the input video") as error:
            mux_audio(source, tone(880, 1), RATE, out, overwrite=True)
        assert "\n" not in str(error.value)
    assert source.read_bytes() == before and leftovers(tmp_path) == []


def test_mux_refuses_an_existing_output_unless_asked(media, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="out.mp4' exists; pass --overwrite"):
        mux_audio(media["with audio"], tone(880, 1), RATE, out)
    assert out.read_bytes() == b"keep me"
    mux_audio(media["with audio"], tone(880, 1), RATE, out, overwrite=True)
    assert read_video_info(out).has_audio
    with pytest.raises(ValueError, match=r"\.mp4, \.mov or \.mkv"):
        mux_audio(media["with audio"], tone(880, 1), RATE, tmp_path / "out.avi")
    with pytest.raises(VideoReadError, match="no video stream"):
        mux_audio(media["audio wav"], tone(880, 1), RATE, tmp_path / "other.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_ffmpeg_failure_leaves_no_half_file(media, tmp_path, monkeypatch):
    """An ffmpeg that dies halfway through writing: clear error, old output intact, no temp file."""
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -c:v copy "*)\n'
        '  for last; do :; done\n  printf partial > "$last"\n'
        '  echo "[aost#0:1 @ 0x1] some detail" >&2\n'
        '  echo "[out#0/mp4 @ 0x2] Error writing: No space left on device" >&2\n'
        '  echo "Conversion failed!" >&2\n  exit 1;;\nesac\n'
        f'exec "{mf.ffmpeg_path()}" "$@"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.mp4").write_bytes(b"old")
    for name, overwrite in (("new.mp4", False), ("old.mp4", True)):
        with pytest.raises(FFmpegError, match=r"Error writing: No space left on device$") as error:
            mux_audio(media["with audio"], tone(880, 1), RATE, out_dir / name, overwrite=overwrite)
        assert_one_line_naming(error, name)
    assert sorted(p.name for p in out_dir.iterdir()) == ["old.mp4"]
    assert (out_dir / "old.mp4").read_bytes() == b"old"


def test_run_ffmpeg_and_read_audio_track_errors(media, tmp_path):
    with pytest.raises(FFmpegError, match="ffmpeg failed probing: .*No such file or directory"):
        run_ffmpeg(["-i", tmp_path / "missing.mp4", "-f", "null", "-"], what="probing")
    with pytest.raises(VideoReadError, match="has no audio stream") as error:
        read_audio_track(media["fps 14.96"])
    assert_one_line_naming(error, "fps_14.96.mp4")
    with pytest.raises(VideoReadError, match="not found"):
        read_audio_track(tmp_path / "missing.wav")
    sound = read_audio_track(media["audio m4a"], sample_rate=8000)
    assert len(sound) == pytest.approx(8000, abs=1100) and dominant_frequency(sound, 8000) == pytest.approx(
        440, abs=5
    )


# ---------------------------------------------------------------------------------------------------
# Real clips

REAL_CLIPS = [
    ("avsync_0.mp4", 4.14, 14.96, (480, 360), "mp3"),
    ("avsync_1.mp4", 5.01, 29.97, (640, 360), "aac"),
]


@pytest.mark.parametrize("name,duration,fps,size,audio_codec", REAL_CLIPS)
def test_real_clips(shared_media, name, duration, fps, size, audio_codec):
    path = shared_media / "video" / name
    info = read_video_info(path)
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.duration == pytest.approx(duration, abs=0.1)
    assert (info.width, info.height, info.rotation) == (*size, 0)
    assert (info.has_audio, info.video_codec, info.audio_codec) == (True, "h264", audio_codec)
    clip = load_clip(path)
    assert clip.frames.shape == (150, info.height, info.width, 3)
    # Real footage: frames vary over the clip.
    assert np.abs(clip.frames[0].astype(int) - clip.frames[-1].astype(int)).mean() > 1
    assert load_clip(path, num_frames=16, short_side=128).frames.shape[1] == 128


@pytest.mark.parametrize("name", [clip[0] for clip in REAL_CLIPS])
def test_mux_a_tone_onto_real_clips(shared_media, tmp_path, name):
    path = shared_media / "video" / name
    info = read_video_info(path)
    out = mux_audio(
        path, tone(660, info.duration), RATE, tmp_path / f"foley {name}", keep_original_audio=True
    )
    assert mf.stream_counts(out) == {"Video": 1, "Audio": 2}
    assert mf.video_packets_md5(out) == mf.video_packets_md5(path)
    muxed = read_video_info(out)
    assert (muxed.num_frames, muxed.video_codec, muxed.audio_codec) == (info.num_frames, "h264", "aac")
    audio = read_audio_track(out)
    assert abs(len(audio) / RATE - info.duration) <= AAC_FRAME
    assert dominant_frequency(audio) == pytest.approx(660, abs=5)


def test_pipeline_on_a_real_clip(shared_media, release_pipe):
    import torch

    path = shared_media / "video" / "avsync_0.mp4"
    info = read_video_info(path)
    out = release_pipe(
        prompt="", video=path, num_inference_steps=2, generator=torch.Generator().manual_seed(42)
    )
    assert out.audios[0].shape == (round(info.duration * 16000),)
    assert out.onset_probabilities[0].shape == (150,)
