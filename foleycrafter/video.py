"""Video in, audio and video out: metadata, frames sampled at chosen indices, audio files, muxing.

Two tools, each used for what it does best:

- **OpenCV** (``opencv-python-headless``) decodes frames. It runs FFmpeg's decoders in-process and
  hands back one numpy frame at a time, so we can walk a file sequentially, ``grab()`` the frames we
  skip and ``retrieve()`` (convert to an image) only the ones we keep: memory grows with the number
  of frames sampled, not with the video's length or resolution. It also reports each decoded
  frame's presentation timestamp, which is what variable-frame-rate files need.
- **The ffmpeg binary** bundled with ``imageio-ffmpeg`` (no system FFmpeg needed) answers what OpenCV
  cannot: whether the file has an audio stream and its codec, the video codec, the rotation
  (display matrix), the container's duration, and why a file cannot be opened. We read its
  ``ffmpeg -hide_banner -i FILE`` report (there is no ffprobe in the wheel). It also writes
  ``.flac`` files and muxes the generated audio next to the *copied* video stream.

moviepy, the other video library the project could use, is not needed: it drives the same ffmpeg
binary through pipes of raw frames, fetches frames by time assuming a constant frame rate (wrong
for variable-rate files), and its writer re-encodes the video, which we must not do.

Decisions about what real files do:

- Rotation: ``VideoInfo.rotation`` is FFmpeg's display matrix (or legacy ``rotate`` tag) as
  clockwise degrees; frames are turned upright here and ``width``/``height`` are the displayed size.
- Timing: ``VideoInfo.duration`` is ``num_frames / fps``, the video's own length (the container's
  duration also covers a longer audio track). Frame times are the decoder's presentation
  timestamps, so variable-frame-rate files get their true times; time ranges are mapped to frames
  with the packets' timestamps.
- Truncated or corrupt files: an unreadable header is a :class:`VideoReadError`. When the header
  reads but the data stops early, frames before the cut decode, and asking for a frame past it is a
  :class:`VideoReadError` naming where decoding stopped, rather than a clip silently padded with
  the last good frame (a shortfall of a frame or two, which headers commonly announce, is padded).
  FFmpeg's own log lines about the damage may still appear on stderr.

Every output goes through :func:`atomic_output`: written to a hidden temporary file in the
destination folder and renamed over the destination only when complete, so a crash or an ffmpeg
error never leaves a half-written file, and an existing file is only replaced when asked.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import secrets
import subprocess
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoReadError(ValueError):
    """A media file cannot be read: missing, not a video, no video (or audio) stream, corrupt."""


class OutputExistsError(FileExistsError):
    """The output file exists and replacing it was not asked for (``overwrite=False``)."""


class FFmpegError(RuntimeError):
    """The ffmpeg binary is missing or failed; ``stderr`` holds its full report."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


# ---------------------------------------------------------------------------------------------------
# ffmpeg


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``$IMAGEIO_FFMPEG_EXE`` if set, else the one shipped with
    ``imageio-ffmpeg``."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise FFmpegError(
            f"No ffmpeg binary found ({error}); install imageio-ffmpeg (pip install imageio-ffmpeg) "
            "or set IMAGEIO_FFMPEG_EXE to an ffmpeg executable."
        ) from error


# ffmpeg's closing lines that only say "it failed"; the reason is on an earlier line.
_GENERIC_FFMPEG_LINES = (
    "conversion failed",
    "at least one output file must be specified",
    "error opening input file ",
    "error opening output file ",
    "terminating thread",
    "task finished with error code",
    "error closing file",
    "error writing trailer",
    "nothing was written",
    "last message repeated",
)
_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*")


def _ffmpeg_reason(stderr: str) -> str:
    """The most telling line of an ffmpeg error report: its last line that is not a generic
    "failed" line, without the ``[component @ 0x...]`` prefix."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if not line.lower().startswith(_GENERIC_FFMPEG_LINES):
            return line.removeprefix("Error opening input files: ").removeprefix("Error opening input: ")
    return lines[-1] if lines else "no error message"


def run_ffmpeg(
    args: Sequence[str | os.PathLike], input: bytes | None = None, check: bool = True, what: str = "running"
) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -hide_banner -nostdin ARGS`` (no shell) and capture its output.

    Args:
        args: ffmpeg arguments; paths should be absolute so that a name starting with ``-`` or
            containing ``:`` is not taken for an option or a protocol.
        input: bytes fed to ffmpeg's stdin (for ``-i pipe:0``); stdin is closed otherwise.
        check: raise :class:`FFmpegError` when ffmpeg exits with an error.
        what: what ffmpeg was doing, for the error message ("muxing 'out.mp4'").

    Returns:
        the completed process: ``stdout`` as bytes, ``stderr`` as text.
    """
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", *map(os.fspath, args)]
    try:
        result = subprocess.run(
            command,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
        )
    except OSError as error:
        raise FFmpegError(f"Cannot run ffmpeg at '{command[0]}': {error}.") from error
    result.stderr = result.stderr.decode("utf-8", errors="replace")
    if check and result.returncode != 0:
        raise FFmpegError(
            f"ffmpeg failed {what}: {_ffmpeg_reason(result.stderr)}",
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return result


@dataclass(frozen=True)
class _Probe:
    """What ``ffmpeg -i FILE`` reports about a file. ``error`` is set when ffmpeg cannot open it."""

    error: str | None = None
    container: str = ""  # FFmpeg's demuxer names, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "matroska,webm"
    duration: float | None = None  # container duration, seconds (all streams, centisecond precision)
    video_codec: str | None = None  # first video stream that is not an attached picture (cover art)
    fps: float | None = None
    rotation: int = 0  # clockwise degrees that turn stored frames upright
    cover_art_only: bool = False
    audio_codecs: tuple[str, ...] = ()


_INPUT = re.compile(r"^Input #0, (.+?), from '")
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio|Subtitle|Data|Attachment): (\w+)(.*)$")
_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_DISPLAY_MATRIX = re.compile(r"display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_ROTATE_TAG = re.compile(r"^\s*rotate\s*: (-?\d+(?:\.\d+)?)\s*$")
_FPS = re.compile(r", (\d+(?:\.\d+)?) fps")


def _probe(path: Path) -> _Probe:
    stat = path.stat()
    # A path is probed again for every window of a long video and by every reader of it: run
    # ffmpeg once per version of the file.
    return _probe_cached(str(path.absolute()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _probe_cached(path: str, mtime_ns: int, size: int) -> _Probe:
    stderr = run_ffmpeg(["-i", path], check=False).stderr
    lines = stderr.splitlines()
    if not any(line.startswith("Input #0") for line in lines):
        return _Probe(error=_ffmpeg_reason(stderr))
    container = next((m.group(1) for line in lines if (m := _INPUT.match(line))), "")
    duration = video_codec = fps = None
    rotation = None
    cover_art = False
    audio_codecs: list[str] = []
    in_chosen_video = False
    for line in lines:
        if match := _DURATION.match(line):
            hours, minutes, seconds = match.groups()
            duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        elif match := _STREAM.match(line):
            kind, codec, rest = match.groups()
            in_chosen_video = False
            if kind == "Audio":
                audio_codecs.append(codec)
            elif kind == "Video" and "(attached pic)" in rest:
                cover_art = True
            elif kind == "Video" and video_codec is None:
                video_codec, in_chosen_video = codec, True
                if fps_match := _FPS.search(rest):
                    fps = float(fps_match.group(1))
        elif in_chosen_video and (match := _DISPLAY_MATRIX.search(line)):
            # FFmpeg reports the display matrix as a counter-clockwise angle.
            rotation = round(-float(match.group(1)) / 90) * 90 % 360
        elif in_chosen_video and rotation is None and (match := _ROTATE_TAG.match(line)):
            # The legacy "rotate" tag (older phones/muxers) is a clockwise angle.
            rotation = round(float(match.group(1)) / 90) * 90 % 360
    return _Probe(
        container=container,
        duration=duration if duration and duration > 0 else None,
        video_codec=video_codec,
        fps=fps,
        rotation=rotation or 0,
        cover_art_only=cover_art and video_codec is None,
        audio_codecs=tuple(audio_codecs),
    )


def _check_input(path: str | os.PathLike) -> Path:
    """``path`` as a Path, if it names an existing file; a one-line VideoReadError otherwise."""
    if path is None or os.fspath(path) == "":
        raise VideoReadError("No video path given (empty path); pass the path of a video file.")
    path = Path(path)
    if path.is_dir():
        raise VideoReadError(f"'{path}' is a folder, not a video file; pass the path of one video file.")
    if not path.is_file():
        raise VideoReadError(f"Video file not found: '{path}'. Check the path.")
    return path


def _probe_media(path: Path) -> _Probe:
    probe = _probe(path)
    if probe.error is not None:
        raise VideoReadError(
            f"Cannot read '{path}' as a video (ffmpeg: {probe.error}): it is not a video file, or it is "
            "truncated or corrupt; check the file, or re-encode or re-download it."
        )
    return probe


# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file.

    Attributes:
        path: the file.
        fps: frames per second (the average rate for a variable-rate file; may be non-integer,
            e.g. 29.97).
        num_frames: number of video frames.
        width, height: size of the frames as displayed, in pixels (after rotation: a phone video
            stored 1920x1080 with a 90 degree rotation has width 1080, height 1920).
        rotation: clockwise degrees (0, 90, 180, 270) the stored frames are turned to display them;
            frames read here are already upright.
        has_audio: whether the file has an audio stream.
        audio_streams: how many audio streams it has.
        video_codec, audio_codec: FFmpeg codec names ("h264", "aac", ...); audio_codec is the first
            audio stream's, None without audio.
        container_duration: seconds, as the container reports it (covers all streams, so it can be
            longer than the video when the audio runs on), None when unknown.
        duration: seconds of video, ``num_frames / fps``. With a constant rate this is exactly the
            video stream's length (the container's duration is rounded to 10 ms and may include a
            longer audio track); with a variable rate ``fps`` is the average rate, so this is the
            stream's length as its header states it.
    """

    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int = 0
    has_audio: bool = False
    audio_streams: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    container_duration: float | None = None

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


def _open_capture(path: Path):
    """An OpenCV capture of ``path`` and the rotation (clockwise degrees) OpenCV applies itself."""
    import cv2

    # Name the FFmpeg backend: other backends would read '%d' in a file name as an image sequence.
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        return None, 0
    # We rotate frames ourselves from FFmpeg's report, so the result does not depend on whether this
    # OpenCV build understands the file's rotation metadata; if it cannot be switched off, we only
    # add what OpenCV leaves out.
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    applied = 0
    if capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) > 0:
        applied = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
    return capture, applied


def _unsupported_codec(path: Path, codec: str | None) -> VideoReadError:
    return VideoReadError(
        f"OpenCV cannot decode the video stream of '{path}' (codec {codec}); re-encode it to H.264, "
        "e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4."
    )


def read_video_info(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata without decoding its frames.

    The frame count comes from the header of MP4/MOV (its sample table) and AVI files; other
    containers (Matroska/WebM, MPEG-TS, raw streams) store none, and OpenCV would estimate it from
    the container's duration, which a longer audio track inflates, so their video packets are
    counted instead (demuxing only, no decoding).

    Raises:
        VideoReadError: empty path, missing file, a folder, not a video, no video stream (an audio
            file), a header that cannot be read (truncated or corrupt file).
    """
    return _read_info(path)[0]


def _read_info(path: str | os.PathLike) -> tuple[VideoInfo, np.ndarray | None]:
    """The video's info, and its frames' presentation times when they had to be scanned."""
    import cv2

    path = _check_input(path)
    probe = _probe_media(path)
    if probe.video_codec is None:
        audio = f" (it holds only audio: {', '.join(probe.audio_codecs)})" if probe.audio_codecs else ""
        cover = " besides a cover picture" if probe.cover_art_only else ""
        raise VideoReadError(f"'{path}' has no video stream{cover}{audio}; pass a video file.")
    capture, _ = _open_capture(path)
    if capture is None:
        raise _unsupported_codec(path, probe.video_codec)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    container = probe.duration
    if not (fps > 0 and math.isfinite(fps)):
        fps = probe.fps or 0.0
    if not (fps > 0) and container and num_frames > 0:
        fps = num_frames / container
    times = None
    if num_frames <= 0 or not (probe.container.startswith("mov,") or probe.container == "avi"):
        times = _scan_frame_times(path)
        if times is not None and len(times):
            num_frames = len(times)
    if num_frames <= 0 and fps > 0:
        num_frames = round((container or 0) * fps)
    elif fps > 0 and container and num_frames / fps > container + 2 / fps + 0.01:
        # More frames than the container can hold: the count is an estimate gone wrong.
        num_frames = max(1, round(container * fps))
    if not (fps > 0) or num_frames <= 0 or width <= 0 or height <= 0:
        raise VideoReadError(
            f"'{path}' has no readable video stream (fps={fps:g}, frames={num_frames}, size={width}x{height}); "
            "re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4."
        )
    if probe.rotation in (90, 270):
        width, height = height, width
    info = VideoInfo(
        path=path,
        fps=fps,
        num_frames=num_frames,
        width=width,
        height=height,
        rotation=probe.rotation,
        has_audio=bool(probe.audio_codecs),
        audio_streams=len(probe.audio_codecs),
        video_codec=probe.video_codec,
        audio_codec=probe.audio_codecs[0] if probe.audio_codecs else None,
        container_duration=container,
    )
    return info, times


def _scan_frame_times(path: Path) -> np.ndarray | None:
    """Presentation times (seconds from the first frame, sorted) of every video packet, read by
    demuxing only (no decoding), or None if ffmpeg reports no timestamps."""
    stat = path.stat()
    # Windowed generation cuts one long video many times: demux it once.
    return _scan_frame_times_cached(str(path.absolute()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _scan_frame_times_cached(path: str, mtime_ns: int, size: int) -> np.ndarray | None:
    """``_scan_frame_times`` keyed on the file's modification time and size too, so that a file
    rewritten in place is scanned again."""
    result = run_ffmpeg(
        ["-loglevel", "error", "-i", path, "-map", "0:V:0", "-c", "copy", "-f", "framecrc", "-"],
        check=False,
    )
    time_base = None
    pts = []
    for line in result.stdout.decode("ascii", errors="replace").splitlines():
        if line.startswith("#tb 0:"):
            num, den = line.split(":", 1)[1].strip().split("/")
            time_base = int(num) / int(den)
        elif line and not line.startswith("#"):
            fields = line.split(",")
            if len(fields) >= 3 and fields[2].strip().lstrip("-").isdigit():
                pts.append(int(fields[2]))
    pts = [p for p in pts if p != -(2**63)]  # AV_NOPTS_VALUE
    if time_base is None or not pts:
        return None
    times = np.sort(np.asarray(pts, dtype=np.float64)) * time_base
    if times[0] < 0 <= times[-1]:
        # Negative times are frames an edit list hides; the decoder drops them too.
        times = times[times >= 0]
    times = times - times[0]
    times.flags.writeable = False  # shared by the cache
    return times


def _target_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) scaled so the shorter side is ``short_side``; never upscaled."""
    if short_side is None or min(height, width) <= short_side:
        return height, width
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def _decode(info: VideoInfo, indices: np.ndarray, short_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Frames at ``indices`` (RGB uint8 (N, H, W, 3)) and their presentation times (seconds, (N,)),
    decoded in one sequential pass that keeps only the wanted frames."""
    import cv2

    path = info.path
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if short_side is not None and (int(short_side) != short_side or short_side < 1):
        raise ValueError(f"short_side must be a positive number of pixels, got {short_side}.")
    if indices.size and indices.min() < 0:
        raise ValueError(f"Frame indices must be >= 0, got {int(indices.min())}.")
    if indices.size and indices.max() >= info.num_frames:
        raise ValueError(
            f"Frame index {int(indices.max())} is past the end of '{path}' ({info.num_frames} frames)."
        )
    out_h, out_w = _target_size(info.height, info.width, short_side)
    frames = np.empty((len(indices), out_h, out_w, 3), dtype=np.uint8)
    times = np.empty(len(indices), dtype=np.float64)
    if not indices.size:
        return frames, times

    wanted, inverse = np.unique(indices, return_inverse=True)
    kept_times = np.full(len(wanted), np.nan)
    capture, applied = _open_capture(path)
    if capture is None:
        raise _unsupported_codec(path, info.video_codec)
    turn = (info.rotation - applied) % 360
    # Frames come out of the decoder in stored orientation; resize there, then turn upright.
    stored_size = (out_h, out_w) if turn in (90, 270) else (out_w, out_h)  # cv2's (width, height)
    rotate_code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    position = 0  # index of the frame the next grab() returns
    decoded = 0  # how many of ``wanted`` were decoded
    try:
        for index in wanted:
            while position < index and capture.grab():
                position += 1
            if position < index or not capture.grab():
                break
            position += 1
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                break
            kept_times[decoded] = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if frame.shape[1::-1] != stored_size:
                frame = cv2.resize(frame, stored_size, interpolation=cv2.INTER_AREA)
            if frame.ndim == 2 or frame.shape[2] == 1:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            elif frame.shape[2] == 4:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if turn:
                frame = cv2.rotate(frame, rotate_code[turn])
            frames[inverse == decoded] = frame
            decoded += 1
    finally:
        capture.release()

    if decoded < len(wanted):
        # Headers may announce a frame or two more than the stream holds (edit lists, estimated
        # counts): the last frame stands in for those. A larger shortfall means the file is cut.
        slack = max(2, info.num_frames // 100)
        if decoded == 0 or position < info.num_frames - slack:
            raise VideoReadError(
                f"'{path}' is truncated or corrupt: decoding stopped at frame {position} of the "
                f"{info.num_frames} its header announces; re-encode or re-download it."
            )
        last = decoded - 1
        for j in range(decoded, len(wanted)):
            frames[inverse == j] = frames[inverse == last][0]
            kept_times[j] = kept_times[last] + (wanted[j] - wanted[last]) / info.fps
    # The decoder's timestamps give variable-rate files their true times; when a file has none
    # (they come back missing or out of order), fall back to the nominal rate.
    if not (np.all(np.isfinite(kept_times)) and kept_times[0] >= 0 and np.all(np.diff(kept_times) > 0)):
        kept_times = wanted / info.fps
    times[:] = kept_times[inverse]
    return frames, times


def read_frames(
    path: str | os.PathLike, indices: np.ndarray | Sequence[int], short_side: int | None = None
) -> np.ndarray:
    """Decode the frames at ``indices`` (frame numbers from 0, may repeat, any order).

    The file is decoded once, front to back; skipped frames are not converted to images and only
    the wanted ones are kept, so memory is ``len(indices)`` output frames whatever the video's length.

    Args:
        short_side: if given, each kept frame is resized (area interpolation) so that its shorter
            side is this many pixels; frames already smaller are left as they are.

    Returns:
        uint8 RGB array (len(indices), H, W, 3), upright (rotation metadata applied); grayscale
        sources come out with three equal channels.

    Raises:
        VideoReadError: the file cannot be read, or it ends well before a wanted frame (truncated).
        ValueError: an index is negative or not below ``read_video_info(path).num_frames``.
    """
    return _decode(read_video_info(path), indices, short_side)[0]


def load_clip(
    path: str | os.PathLike,
    num_frames: int = 150,
    start_seconds: float = 0.0,
    end_seconds: float | None = None,
    short_side: int | None = None,
) -> VideoClip:
    """Sample ``num_frames`` frames uniformly by index over the frames shown in
    ``[start_seconds, end_seconds)``: ``np.linspace(i0, i1 - 1, num_frames).astype(int)`` where
    ``i0..i1-1`` are those frames. Over a whole video this is the release's sampling.

    Which frames fall in the range is decided from the file's packet timestamps, so a
    variable-frame-rate video is cut at the right frames.

    Args:
        num_frames: frames to return (indices repeat when the range holds fewer).
        start_seconds, end_seconds: the time range, seconds; ``end_seconds`` defaults to (and is
            clipped to) the video's duration.
        short_side: see :func:`read_frames`.

    Returns:
        a VideoClip: ``frames`` (num_frames, H, W, 3) RGB uint8; ``frame_times`` (num_frames,) in
        seconds from ``start_seconds``, from the decoder's presentation timestamps (true times for
        variable-rate files; ``index / fps`` when the file carries none); ``duration`` =
        ``min(end_seconds, video duration) - start_seconds``.
    """
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames}.")
    info, times = _read_info(path)
    start = float(start_seconds)
    end = info.duration if end_seconds is None else min(float(end_seconds), info.duration)
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start_seconds must be >= 0, got {start_seconds}.")
    if not (end > start):
        raise ValueError(
            f"Empty time range [{start:g}, {end:g}) s for '{info.path}' ({info.duration:.2f} s long)."
        )
    first, stop = 0, info.num_frames
    if start > 0 or end < info.duration:
        if times is None:
            times = _scan_frame_times(info.path)
        if times is None or not len(times):
            times = np.arange(info.num_frames) / info.fps
        times = times[: info.num_frames]
        # Half a millisecond of slack: a frame stamped 0.9996 s belongs to a range starting at 1 s.
        first = int(np.searchsorted(times, start - 5e-4))
        stop = int(np.searchsorted(times, end - 5e-4))
        first = min(first, len(times) - 1)
        stop = max(stop, first + 1)
    indices = np.linspace(first, stop - 1, int(num_frames)).astype(int)
    frames, frame_times = _decode(info, indices, short_side)
    return VideoClip(frames=frames, frame_times=frame_times - start, duration=end - start)


# ---------------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; rename it over ``path`` on success.

    The temporary file is hidden and keeps the suffix (``.clip.tmp-1a2b3c4d.mp4`` for
    ``clip.mp4``, so tools that pick a format from the suffix still work) and lives in the same
    folder, so the final ``os.replace`` is atomic. If the body raises, the temporary file is
    removed and ``path`` is untouched. Missing parent folders are created.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (checked before and after
            writing).
        IsADirectoryError: ``path`` is a folder.
    """
    if path is None or os.fspath(path) == "":
        raise ValueError("No output path given (empty path).")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; give an output file name.")
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"'{path}' exists; pass --overwrite to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"Nothing was written for '{path}'.")
        if not overwrite and os.path.lexists(path):
            raise OutputExistsError(f"'{path}' exists; pass --overwrite to replace it.")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _mono(waveform) -> np.ndarray:
    """``waveform`` as a 1-D float32 array in [-1, 1] (int16 input is scaled by 1/32768)."""
    if hasattr(waveform, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        waveform = waveform.detach().cpu().numpy()
    samples = np.asarray(waveform)
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"waveform must be mono audio of shape (samples,), got shape {samples.shape}.")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if not np.issubdtype(samples.dtype, np.floating):
        raise ValueError(f"waveform must be float in [-1, 1] or int16, got dtype {samples.dtype}.")
    return np.clip(np.nan_to_num(samples.astype(np.float32)), -1.0, 1.0)


def _check_rate(sample_rate) -> int:
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate}.")
    return int(sample_rate)


def write_audio(path: str | os.PathLike, waveform, sample_rate: int, overwrite: bool = False) -> Path:
    """Write mono audio as 16-bit PCM ``.wav`` or 16-bit ``.flac``.

    Args:
        waveform: samples, shape (samples,) (or (1, samples)); float in [-1, 1] (values outside are
            clipped, NaN becomes 0) or int16. A torch tensor is accepted.
        sample_rate: Hz, e.g. 16000.
        overwrite: replace an existing file (otherwise OutputExistsError).

    Returns:
        ``path``, written atomically (see :func:`atomic_output`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".wav", ".flac"):
        raise ValueError(
            f"Cannot write audio to '{path}': use a file name ending in .wav or .flac "
            "(or mux_audio to put the audio on a video)."
        )
    rate = _check_rate(sample_rate)
    samples = _mono(waveform)
    pcm = np.round(samples * 32767.0).astype("<i2").tobytes()
    with atomic_output(path, overwrite=overwrite) as temporary:
        if suffix == ".wav":
            with wave.open(str(temporary), "wb") as file:
                file.setnchannels(1)
                file.setsampwidth(2)
                file.setframerate(rate)
                file.writeframes(pcm)
        else:
            run_ffmpeg(
                ["-loglevel", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
                + ["-c:a", "flac", "-f", "flac", "-y", temporary.absolute()],
                input=pcm,
                what=f"writing '{path}'",
            )
    return path


# Output containers, and the audio codecs each takes as they are (others are re-encoded to AAC).
_MUX_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
_COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
    "matroska": None,  # Matroska holds any codec.
}


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def mux_audio(
    video_path: str | os.PathLike,
    waveform,
    sample_rate: int,
    out_path: str | os.PathLike,
    keep_original_audio: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``out_path`` (.mp4, .mov or .mkv): the video stream of ``video_path`` copied bit for
    bit (not re-encoded) with ``waveform`` as its first, default audio track (AAC).

    The generated audio is cut or padded with silence to the video's duration
    (``read_video_info(video_path).duration``), so the output lasts as long as the video. The
    original soundtrack (first audio stream) is dropped, or kept as a second, non-default track
    with ``keep_original_audio=True`` (copied when the container takes its codec, else AAC; cut to
    the video's duration). Subtitle and data streams are not carried over.

    Args:
        waveform: mono samples (samples,), float in [-1, 1] or int16, at ``sample_rate`` Hz.

    Raises:
        ValueError: unsupported output suffix, or ``out_path`` is the input (even with overwrite).
        OutputExistsError: ``out_path`` exists and ``overwrite`` is False.
        VideoReadError: the input cannot be read as a video.
        FFmpegError: ffmpeg failed (the message carries its reason); nothing is left at ``out_path``.
    """
    video_path, out_path = _check_input(video_path), Path(out_path)
    container = _MUX_FORMATS.get(out_path.suffix.lower())
    if container is None:
        raise ValueError(
            f"Cannot write a video to '{out_path}': use a file name ending in .mp4, .mov or .mkv "
            "(or write_audio for .wav/.flac)."
        )
    if _same_file(video_path, out_path):
        raise ValueError(
            f"Refusing to write over the input video '{video_path}'; choose another output file name."
        )
    info = read_video_info(video_path)
    rate = _check_rate(sample_rate)
    samples = _mono(waveform)
    length = round(info.duration * rate)
    samples = np.pad(samples[:length], (0, max(0, length - len(samples))))

    keep = keep_original_audio and info.has_audio
    args = ["-loglevel", "error", "-y", "-i", video_path.absolute()]
    args += ["-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
    args += ["-map", "0:V:0", "-map", "1:a:0"] + (["-map", "0:a:0"] if keep else [])
    args += ["-c:v", "copy", "-c:a:0", "aac", "-b:a:0", "128k", "-disposition:a:0", "default"]
    args += ["-metadata:s:a:0", "title=FoleyCrafter"]
    if keep:
        copyable = _COPYABLE_AUDIO[container]
        codec = "copy" if copyable is None or info.audio_codec in copyable else "aac"
        args += ["-c:a:1", codec, "-disposition:a:1", "0", "-metadata:s:a:1", "title=Original"]
        # The original track may run past the last frame; the video's own end is the output's end.
        args += ["-t", f"{info.duration:.6f}"]
    if container in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]
    with atomic_output(out_path, overwrite=overwrite) as temporary:
        run_ffmpeg(
            args + ["-f", container, temporary.absolute()],
            input=samples.astype("<f4").tobytes(),
            what=f"writing '{out_path}'",
        )
    return out_path


def read_audio_track(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of a video or audio file.

    Returns:
        mono float32 samples (samples,) in [-1, 1] at ``sample_rate`` Hz (channels averaged,
        resampled by ffmpeg when the stream's rate differs).

    Raises:
        VideoReadError: the file cannot be read or has no audio stream.
    """
    path = _check_input(path)
    rate = _check_rate(sample_rate)
    probe = _probe_media(path)
    if not probe.audio_codecs:
        raise VideoReadError(f"'{path}' has no audio stream; pass a file with a soundtrack.")
    result = run_ffmpeg(
        ["-loglevel", "error", "-i", path.absolute(), "-map", "0:a:0", "-ac", "1", "-ar", str(rate)]
        + ["-f", "f32le", "pipe:1"],
        what=f"decoding the audio of '{path}'",
    )
    return np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
