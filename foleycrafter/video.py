"""Video in, audio and video out: metadata, frames sampled at chosen indices, audio files, muxing.

Three tools, each used for what it does best:

- **PyAV** (``av``, FFmpeg's libraries as a Python API) answers every question about a file's
  container: its streams and their codecs, the frame rate, the size, the rotation, every video
  packet's presentation time (hence the exact frame count and the true times of variable-rate
  video), the container's duration, and why a file cannot be opened. :func:`read_video_info` opens
  the file once and demuxes it (reads packets, decodes nothing but the first frame, which is where
  PyAV exposes the display matrix); the :class:`VideoInfo` it returns carries those facts to every
  later step, which takes it instead of the path and never probes again. Facts come from the
  library's structures rather than from parsing a tool's text report, whose wording changes between
  FFmpeg versions.
- **OpenCV** (``opencv-python-headless``) decodes frames. It runs FFmpeg's decoders in-process and
  hands back one numpy frame at a time, so we can walk a file sequentially, ``grab()`` the frames we
  skip and ``retrieve()`` (convert to an image) only the ones we keep: memory grows with the number
  of frames sampled, not with the video's length or resolution. PyAV could decode too: converting
  to RGB at the target size in one swscale pass it was faster (150 frames at short side 256 from
  10 s of 720p H.264: 0.9 s of CPU against 1.25 s), but swscale's area scaling is not OpenCV's
  ``INTER_AREA`` (values differ by up to 85 levels at sharp edges), so frames would change; PyAV's
  full-size RGB is bit-identical to OpenCV's, and resizing that with OpenCV saves nothing. So
  OpenCV stays the decoder.
- **The ffmpeg binary** bundled with ``imageio-ffmpeg`` (no system FFmpeg needed) writes: ``.flac``
  files, and the generated audio muxed next to the *copied* video stream, with the stream mapping,
  dispositions and ``-t`` cut its command line states plainly. It also decodes soundtracks
  (:func:`read_audio_track`), resampling and mixing down with its own filters.

moviepy, the other video library the project could use, is not needed: it drives the same ffmpeg
binary through pipes of raw frames, fetches frames by time assuming a constant frame rate (wrong
for variable-rate files), and its writer re-encodes the video, which we must not do.

Decisions about what real files do:

- Rotation: ``VideoInfo.rotation`` is the stream's display matrix (or legacy ``rotate`` tag) as
  clockwise degrees; frames are turned upright here and ``width``/``height`` are the displayed size.
- Timing: ``VideoInfo.frame_times`` are the video packets' presentation times (sorted, from the
  first frame; frames an edit list hides are left out, as the decoder drops them too), so a time
  range maps to the right frames even at a variable rate. ``VideoInfo.duration`` is
  ``num_frames / fps``, the video's own length (the container's duration also covers a longer audio
  track). Sampled frames carry the decoder's presentation timestamps.
- Not a moving picture: a still image (a PNG or JPEG, even renamed ``.mp4``), a video stream with
  a single frame or with none, an audio file, a file whose only picture is cover art: each is a
  one-line :class:`VideoReadError` saying what the file is.
- Truncated or corrupt files: an unreadable header is a :class:`VideoReadError`. When the header
  reads but the data stops early, the header's frame count stands (the missing frames are given
  times at the nominal rate), frames before the cut decode, and asking for a frame past it is a
  :class:`VideoReadError` naming where decoding stopped, rather than a clip silently padded with
  the last good frame (a shortfall of a frame or two, which headers commonly announce, is padded).
  FFmpeg's own log lines about the damage may still appear on stderr.

Every output goes through :func:`atomic_output`: written to a hidden temporary file in the
destination folder and renamed over the destination only when complete, so a crash or an ffmpeg
error never leaves a half-written file, and an existing file is only replaced when asked.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import subprocess
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .timeline import DETECTOR_FRAMES

#: File kinds taken as videos (folders and globs are searched for these) and written as audio.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
AUDIO_SUFFIXES = (".wav", ".flac")


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


# ---------------------------------------------------------------------------------------------------
# Container facts (PyAV)


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


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video file, read once by :func:`read_video_info`; pass it instead of the path
    to :func:`load_clip`, :func:`read_frames` and :func:`mux_audio` so the file is not probed again.

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
        frame_times: seconds, float64 (num_frames,), read-only: every frame's presentation time
            from the first frame's, in display order (true times at a variable rate). Left out
            (None) when constructing one by hand, it is ``index / fps``. Not part of equality.
        duration: seconds of video, ``num_frames / fps``. With a constant rate this is exactly the
            video stream's length (the container's duration may include a longer audio track);
            with a variable rate ``fps`` is the average rate, so this is the stream's length as
            its header states it.
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
    frame_times: np.ndarray = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        times = np.arange(self.num_frames) / self.fps if self.frame_times is None else self.frame_times
        times = np.array(times, dtype=np.float64)  # an own copy, so read-only means unchanging
        if times.shape != (self.num_frames,):
            raise ValueError(
                f"VideoInfo.frame_times must have shape ({self.num_frames},), got {times.shape}."
            )
        times.flags.writeable = False
        object.__setattr__(self, "frame_times", times)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def _open_container(path: Path):
    """PyAV's demuxer on ``path`` (raises ``av.FFmpegError``). Every fact about a file is read
    through here, once per file."""
    import av

    # An absolute path: a name with ':' is not taken for a protocol ("http:...").
    return av.open(str(path.absolute()), mode="r", metadata_errors="replace")


@contextlib.contextmanager
def _opened(path: Path):
    """The open container of ``path``, closed afterwards; a one-line VideoReadError if it cannot be
    opened."""
    import av

    try:
        container = _open_container(path)
    except av.FFmpegError as error:
        if isinstance(error, PermissionError):
            raise VideoReadError(
                f"Cannot read '{path}': permission denied; check the file's permissions."
            ) from error
        reason = error.strerror or str(error)
        raise VideoReadError(
            f"Cannot read '{path}' as a video (FFmpeg: {reason}): it is not a video file, or it is "
            "truncated or corrupt; check the file, or re-encode or re-download it."
        ) from error
    try:
        yield container
    finally:
        container.close()


def _codec_name(stream) -> str:
    """FFmpeg's name of the codec ("h264", "mp3"), not of the decoder ("mp3float", "libdav1d")."""
    try:
        return stream.codec.canonical_name
    except (AttributeError, ValueError):  # no decoder for it in this build
        return "unknown"


def _is_picture_format(name: str) -> bool:
    """Whether FFmpeg's demuxer ``name`` reads pictures: "png_pipe", "jpeg_pipe" (a picture found by
    its content, whatever the file is called), "image2" (by its suffix)."""
    return name.endswith("_pipe") or name.startswith("image2")


# Picture codecs, and how to name them: one frame of these (or from a picture demuxer) is a still image.
_PICTURE_CODECS = {
    "png": "PNG", "apng": "PNG", "mjpeg": "JPEG", "gif": "GIF", "webp": "WebP", "bmp": "BMP",
    "tiff": "TIFF", "jpegxl": "JPEG XL", "jpeg2000": "JPEG 2000", "qoi": "QOI",
}  # fmt: skip
_MAKE_A_VIDEO = "ffmpeg -loop 1 -i IN -t 5 -c:v libx264 -pix_fmt yuv420p OUT.mp4"


def _side_data_types(frame) -> set:
    """The kinds of side data a decoded frame carries. PyAV 18 made ``frame.side_data`` a mapping
    keyed by kind; before, iterating it gave the side data themselves, each with its ``type``."""
    return {getattr(data, "type", data) for data in frame.side_data}


def _demux_video(container, stream) -> tuple[list[int | None], int, float | None]:
    """Read every packet of ``stream`` (no decoding, except until the first frame comes out).

    Returns:
        the presentation timestamps (stream time base; None where a packet has none) of the
        packets shown, in file order; how many packets an edit list hides (flagged discard: the
        decoder needs them but drops their frames); the counter-clockwise rotation of the stream's
        display matrix, None without one. PyAV exposes a stream's display matrix only on decoded
        frames, so the first frame is decoded to read it.
    """
    import av
    from av.sidedata.sidedata import Type

    stamps: list[int | None] = []
    hidden = 0
    rotation = None
    to_decode = 0
    if stream.codec_context is not None:
        with contextlib.suppress(AttributeError, ValueError, av.FFmpegError):
            stream.codec_context.thread_count = 1  # the first frame comes out without waiting for threads
        to_decode = 32  # packets fed to the decoder at most, for the first frame
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None and packet.dts is None:
                continue  # the empty packet demux() ends with, to flush decoders
            if packet.is_discard:
                hidden += 1
            else:
                stamps.append(packet.pts if packet.pts is not None else packet.dts)
            if to_decode:
                to_decode -= 1
                try:
                    frames = stream.decode(packet)
                except av.FFmpegError:
                    frames, to_decode = [], 0  # cannot decode: no rotation but the legacy tag
                if frames:
                    to_decode = 0
                    if Type.DISPLAYMATRIX in _side_data_types(frames[0]):
                        rotation = float(frames[0].rotation)
    except av.FFmpegError:
        pass  # the data ends in damage: the packets before it stand
    return stamps, hidden, rotation


def _frame_rate(stream) -> float:
    """The stream's average frame rate (what its header or the packets give), 0.0 if unknown."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) < 1e5:
            return float(rate)
    return 0.0


def _probe(path: Path) -> VideoInfo:
    """Open ``path`` once with PyAV, demux its video stream and return its facts, or raise a
    one-line VideoReadError for anything that is not a moving picture."""
    import av

    with _opened(path) as container:
        audio_codecs = tuple(_codec_name(s) for s in container.streams.audio)
        streams = container.streams.video
        cover = any(s.disposition & av.stream.Disposition.attached_pic for s in streams)
        streams = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            if audio_codecs:
                what = f" (it holds only audio: {', '.join(audio_codecs)})"
            elif not container.streams:
                what = " (it holds no streams at all: an empty or unfinished recording)"
            else:
                what = ""
            besides = " besides a cover picture" if cover else ""
            raise VideoReadError(f"'{path}' has no video stream{besides}{what}; pass a video file.")
        stream = streams[0]
        codec = _codec_name(stream)
        format_name = container.format.name
        announced = stream.frames  # the header's frame count; 0 when the container keeps none
        duration = container.duration / 1e6 if container.duration and container.duration > 0 else None
        context = stream.codec_context
        width, height = (context.width, context.height) if context is not None else (0, 0)
        stamps, hidden, matrix = _demux_video(container, stream)
        time_base = stream.time_base
        fps = _frame_rate(stream)
        tag = stream.metadata.get("rotate")

    if stamps and time_base and all(stamp is not None for stamp in stamps):
        times = np.sort(np.asarray(stamps, dtype=np.float64)) * float(time_base)
        if times[0] < 0 <= times[-1]:
            # Negative times are frames an edit list hides; the decoder drops them too.
            times = times[times >= 0]
        times -= times[0]
        if not fps and len(times) > 1 and times[-1] > 0:
            fps = (len(times) - 1) / times[-1]
    else:
        times = np.arange(len(stamps)) / fps if fps else np.zeros(len(stamps))
    if announced > len(stamps) + hidden and fps and len(times):
        # The header announces frames whose data is missing (a truncated file): they count, at the
        # nominal rate, so that asking for them says the file is cut rather than quietly ending early.
        missing = announced - len(stamps) - hidden
        times = np.concatenate([times, times[-1] + np.arange(1, missing + 1) / fps])

    if matrix is not None:
        rotation = round(-matrix / 90) * 90 % 360  # the display matrix turns counter-clockwise
    else:
        try:
            rotation = round(float(tag) / 90) * 90 % 360  # the legacy "rotate" tag is clockwise
        except (TypeError, ValueError):
            rotation = 0

    if len(times) == 1 and (_is_picture_format(format_name) or codec in _PICTURE_CODECS):
        kind = _PICTURE_CODECS.get(codec, codec.upper())
        raise VideoReadError(
            f"'{path}' is a still image ({kind}), not a video: there is no motion to make sound for; "
            f"pass a video file, or make one from the picture ({_MAKE_A_VIDEO})."
        )
    if len(times) == 0:
        raise VideoReadError(
            f"'{path}' has a video stream with no frames in it (an empty or unfinished recording); "
            "pass a video that has frames."
        )
    if len(times) == 1:
        raise VideoReadError(
            f"'{path}' holds a single video frame, a still picture rather than a moving one; pass a "
            "video with more frames."
        )
    if not (fps > 0) or width <= 0 or height <= 0:
        raise VideoReadError(
            f"'{path}' has no readable video stream (fps={fps:g}, frames={len(times)}, "
            f"size={width}x{height}); re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4."
        )
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=path,
        fps=fps,
        num_frames=len(times),
        width=width,
        height=height,
        rotation=rotation,
        has_audio=bool(audio_codecs),
        audio_streams=len(audio_codecs),
        video_codec=codec,
        audio_codec=audio_codecs[0] if audio_codecs else None,
        container_duration=duration,
        frame_times=times,
    )


def read_video_info(path: str | os.PathLike | VideoInfo) -> VideoInfo:
    """Read a video's metadata: the file is opened once with PyAV and its video packets are read
    (demuxed, not decoded; only the first frame is decoded, for its display matrix).

    The frame count and ``frame_times`` come from the packets themselves, so they are right in
    every container (Matroska/WebM and MPEG-TS store no count; a longer audio track inflates an
    estimate from the duration) and at variable frame rates. A :class:`VideoInfo` passed in is
    returned as it is.

    Raises:
        VideoReadError: empty path, missing file, a folder, not a video, no video stream (an audio
            file, cover art only), a still image, a video stream with one frame or none, a header
            that cannot be read (truncated or corrupt file).
    """
    if isinstance(path, VideoInfo):
        return path
    return _probe(_check_input(path))


# ---------------------------------------------------------------------------------------------------
# Decoding frames (OpenCV)


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
    # We rotate frames ourselves from the container's facts, so the result does not depend on whether this
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

    path = _check_input(info.path)  # a VideoInfo may outlive its file
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
    # The decoder's timestamps give variable-rate files their true times; when they come back
    # missing or out of order, the packets' times (read with the info) stand in.
    if not (np.all(np.isfinite(kept_times)) and kept_times[0] >= 0 and np.all(np.diff(kept_times) > 0)):
        kept_times = info.frame_times[wanted]
    times[:] = kept_times[inverse]
    return frames, times


def read_frames(
    video: str | os.PathLike | VideoInfo, indices: np.ndarray | Sequence[int], short_side: int | None = None
) -> np.ndarray:
    """Decode the frames at ``indices`` (frame numbers from 0, may repeat, any order).

    The file is decoded once, front to back; skipped frames are not converted to images and only
    the wanted ones are kept, so memory is ``len(indices)`` output frames whatever the video's length.

    Args:
        video: a path, or its :func:`read_video_info` (then the file is not probed again).
        short_side: if given, each kept frame is resized (area interpolation) so that its shorter
            side is this many pixels; frames already smaller are left as they are.

    Returns:
        uint8 RGB array (len(indices), H, W, 3), upright (rotation metadata applied); grayscale
        sources come out with three equal channels.

    Raises:
        VideoReadError: the file cannot be read, or it ends well before a wanted frame (truncated).
        ValueError: an index is negative or not below ``read_video_info(video).num_frames``.
    """
    return _decode(read_video_info(video), indices, short_side)[0]


def load_clip(
    video: str | os.PathLike | VideoInfo,
    num_frames: int = DETECTOR_FRAMES,
    start_seconds: float = 0.0,
    end_seconds: float | None = None,
    short_side: int | None = None,
) -> VideoClip:
    """Sample ``num_frames`` frames uniformly by index over the frames shown in
    ``[start_seconds, end_seconds)``: ``np.linspace(i0, i1 - 1, num_frames).astype(int)`` where
    ``i0..i1-1`` are those frames. Over a whole video this is the release's sampling.

    Which frames fall in the range is decided from the packets' timestamps
    (``VideoInfo.frame_times``), so a variable-frame-rate video is cut at the right frames.

    Args:
        video: a path, or its :func:`read_video_info` (then the file is not probed again: cutting
            a long video into windows reads its facts once).
        num_frames: frames to return (indices repeat when the range holds fewer).
        start_seconds, end_seconds: the time range, seconds; ``end_seconds`` defaults to (and is
            clipped to) the video's duration.
        short_side: see :func:`read_frames`.

    Returns:
        a VideoClip: ``frames`` (num_frames, H, W, 3) RGB uint8; ``frame_times`` (num_frames,) in
        seconds from ``start_seconds``, from the decoder's presentation timestamps (true times for
        variable-rate files; the packets' times when the decoder gives none); ``duration`` =
        ``min(end_seconds, video duration) - start_seconds``.
    """
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames}.")
    info = read_video_info(video)
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
        times = info.frame_times
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
    video: str | os.PathLike | VideoInfo,
    waveform,
    sample_rate: int,
    out_path: str | os.PathLike,
    keep_original_audio: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``out_path`` (.mp4, .mov or .mkv): the video stream of ``video`` copied bit for
    bit (not re-encoded) with ``waveform`` as its first, default audio track (AAC).

    The generated audio is cut or padded with silence to the video's duration
    (``read_video_info(video).duration``), so the output lasts as long as the video. The
    original soundtrack (first audio stream) is dropped, or kept as a second, non-default track
    with ``keep_original_audio=True`` (copied when the container takes its codec, else AAC; cut to
    the video's duration). Subtitle and data streams are not carried over.

    Args:
        video: a path, or its :func:`read_video_info` (then the file is not probed again).
        waveform: mono samples (samples,), float in [-1, 1] or int16, at ``sample_rate`` Hz.

    Raises:
        ValueError: unsupported output suffix, or ``out_path`` is the input (even with overwrite).
        OutputExistsError: ``out_path`` exists and ``overwrite`` is False.
        VideoReadError: the input cannot be read as a video.
        FFmpegError: ffmpeg failed (the message carries its reason); nothing is left at ``out_path``.
    """
    info = video if isinstance(video, VideoInfo) else None
    video_path, out_path = _check_input(info.path if info else video), Path(out_path)
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
    if info is None:
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


def read_audio_track(path: str | os.PathLike | VideoInfo, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of a video or audio file (by the ffmpeg binary).

    Args:
        path: a path, or a video's :func:`read_video_info` (then the file is not probed again).

    Returns:
        mono float32 samples (samples,) in [-1, 1] at ``sample_rate`` Hz (channels averaged,
        resampled by ffmpeg when the stream's rate differs).

    Raises:
        VideoReadError: the file cannot be read or has no audio stream.
    """
    info = path if isinstance(path, VideoInfo) else None
    path = _check_input(info.path if info else path)
    rate = _check_rate(sample_rate)
    if info is not None:
        has_audio = info.has_audio
    else:
        with _opened(path) as container:
            has_audio = bool(container.streams.audio)
    if not has_audio:
        raise VideoReadError(f"'{path}' has no audio stream; pass a file with a soundtrack.")
    result = run_ffmpeg(
        ["-loglevel", "error", "-i", path.absolute(), "-map", "0:a:0", "-ac", "1", "-ar", str(rate)]
        + ["-f", "f32le", "pipe:1"],
        what=f"decoding the audio of '{path}'",
    )
    return np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
