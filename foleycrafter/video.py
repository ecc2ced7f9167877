"""Reading video files: metadata and frames sampled at chosen indices.

Frames are decoded one after another and only the sampled ones are kept, so memory grows with the
number of frames sampled, not with the video's length. OpenCV (``opencv-python-headless``) decodes;
it reads H.264/MPEG-4 with the FFmpeg build it ships, so no system FFmpeg is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoReadError(ValueError):
    """A video file cannot be read (missing, not a video, corrupt, no video stream)."""


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file.

    Attributes:
        path: the file.
        fps: frames per second as the container reports it (may be non-integer, e.g. 29.97).
        num_frames: number of video frames.
        width, height: frame size in pixels.
        duration: seconds, ``num_frames / fps``.
    """

    path: Path
    fps: float
    num_frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


@dataclass
class VideoClip:
    """Frames sampled from a video, with their timing.

    Attributes:
        frames: uint8 RGB array of shape (T, H, W, 3).
        frame_times: seconds, shape (T,): presentation time of each sampled frame.
        duration: seconds of video the frames were sampled from.
    """

    frames: np.ndarray
    frame_times: np.ndarray
    duration: float

    def __post_init__(self):
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(
                f"VideoClip.frames must have shape (T, H, W, 3) with T >= 1, got {tuple(frames.shape)}."
            )
        if frames.dtype != np.uint8:
            raise ValueError(f"VideoClip.frames must be uint8 RGB, got dtype {frames.dtype}.")
        if not (self.duration > 0):
            raise ValueError(f"VideoClip.duration must be positive seconds, got {self.duration}.")
        self.frames = frames
        self.frame_times = np.asarray(self.frame_times, dtype=np.float64)


def _open(path: str | os.PathLike):
    import cv2

    path = Path(path)
    if not str(path) or not path.is_file():
        raise VideoReadError(f"Video file not found: '{path}'. Check the path.")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoReadError(
            f"Cannot open '{path}' as a video: not a video file, or its codec is unsupported."
        )
    return capture


def read_video_info(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata without decoding its frames."""
    import cv2

    capture = _open(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if not (fps > 0) or num_frames <= 0 or width <= 0 or height <= 0:
        raise VideoReadError(
            f"'{path}' has no readable video stream (fps={fps}, frames={num_frames}, size={width}x{height})."
        )
    return VideoInfo(Path(path), fps, num_frames, width, height)


def read_frames(path: str | os.PathLike, indices: np.ndarray) -> np.ndarray:
    """Decode the frames at ``indices`` (frame numbers, may repeat, any order).

    Returns:
        uint8 RGB array (len(indices), H, W, 3). Only the wanted frames are kept in memory.
    """
    import cv2

    indices = np.asarray(indices, dtype=np.int64)
    wanted = np.unique(indices)
    capture = _open(path)
    kept: dict[int, np.ndarray] = {}
    try:
        position = 0
        for index in wanted:
            while position < index:
                if not capture.grab():
                    break
                position += 1
            ok, frame = capture.read()
            if not ok:
                break
            position += 1
            kept[int(index)] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if not kept:
        raise VideoReadError(f"'{path}': no frame could be decoded (corrupt or truncated file?).")
    # A container may announce more frames than it holds; the last decoded frame stands in for them.
    last = kept[max(kept)]
    return np.stack([kept.get(int(i), last) for i in indices])


def load_clip(path: str | os.PathLike, num_frames: int = 150, end_seconds: float | None = None) -> VideoClip:
    """Sample ``num_frames`` frames uniformly over a video (the release's sampling:
    ``np.linspace(0, n - 1, num_frames).astype(int)``), optionally over its first ``end_seconds`` only.
    """
    info = read_video_info(path)
    total = info.num_frames
    duration = info.duration
    if end_seconds is not None and end_seconds < duration:
        total = max(1, int(round(end_seconds * info.fps)))
        duration = float(end_seconds)
    indices = np.linspace(0, total - 1, num_frames).astype(int)
    frames = read_frames(path, indices)
    return VideoClip(frames=frames, frame_times=indices / info.fps, duration=duration)
