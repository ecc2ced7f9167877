"""Small test videos and sounds made with the ffmpeg binary bundled with imageio-ffmpeg.

Independent of the code under test: it calls the binary directly, and its reference decoders use
plain OpenCV / ffmpeg calls.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

FFMPEG_QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def ffmpeg_path() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the bundled ffmpeg; raise with its stderr on failure."""
    result = subprocess.run(
        [ffmpeg_path(), *FFMPEG_QUIET, *map(str, args)],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(map(str, args))} failed:\n{result.stderr.decode()}")
    return result


def make_video(
    path: Path,
    *,
    size: tuple[int, int] = (96, 64),
    fps: float = 30.0,
    seconds: float = 1.0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    source: str = "testsrc2",
    audio_seconds: float | None = None,
    tone: float = 440.0,
    extra: tuple = (),
) -> Path:
    """A ``size`` (width, height) test pattern at ``fps``; with a sine soundtrack when
    ``audio_seconds`` is given (it may be longer than the video)."""
    width, height = size
    # testsrc2 wants even sizes: draw at an even size, then scale to the asked one.
    even = (width + width % 2, height + height % 2)
    args = ["-f", "lavfi", "-i", f"{source}=size={even[0]}x{even[1]}:rate={fps}:duration={seconds}"]
    if audio_seconds is not None:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=44100:duration={audio_seconds}"]
        args += ["-c:a", "aac"]
    args += ["-vf", f"scale={width}:{height}", "-c:v", codec, "-pix_fmt", pix_fmt, *extra, path]
    ffmpeg(*args)
    return path


def make_vfr_video(path: Path) -> tuple[Path, np.ndarray]:
    """60 frames: 30 fps for the first second, then 10 fps (ends at 4 s). Returns (path, frame times)."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=2",
        "-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'",
        "-fps_mode", "passthrough", "-c:v", "libx264", "-bf", "0", "-pix_fmt", "yuv420p", path,
    )  # fmt: skip
    times = np.where(np.arange(60) < 30, np.arange(60) / 30, 1 + (np.arange(60) - 30) / 10)
    return path, times


def rotate(source: Path, path: Path, degrees_counterclockwise: int) -> Path:
    """``source`` with a display matrix turning it by ``degrees_counterclockwise``; stream copied."""
    ffmpeg("-display_rotation", degrees_counterclockwise, "-i", source, "-c", "copy", path)
    return path


def make_sound(path: Path, seconds: float = 1.0, codec: tuple = ()) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", *codec, path)
    return path


def decode_all(path: Path) -> np.ndarray:
    """Every frame, RGB, by a plain OpenCV read loop (OpenCV's own orientation handling)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def ffmpeg_first_frame(path: Path, width: int, height: int) -> np.ndarray:
    """The first frame as ffmpeg itself displays it (rotation applied), RGB (height, width, 3)."""
    out = ffmpeg("-i", path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-").stdout
    return np.frombuffer(out, np.uint8).reshape(height, width, 3)


def stream_counts(path: Path) -> dict[str, int]:
    """Number of video and audio streams ffmpeg sees in ``path``."""
    stderr = subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True
    ).stderr
    streams = [line for line in stderr.splitlines() if line.strip().startswith("Stream #0:")]
    return {kind: sum(f": {kind}: " in line for line in streams) for kind in ("Video", "Audio")}


def video_packets_md5(path: Path) -> str:
    """MD5 of the video packets' bytes (stream copied, not decoded)."""
    out = ffmpeg("-i", path, "-map", "0:v:0", "-c", "copy", "-f", "md5", "-").stdout.decode()
    return out.strip()


def make_struck_clip(
    path: Path,
    seconds: float,
    period: float,
    pitch: float,
    colour: str,
    amplitude: float = 0.6,
    decay: float = 25.0,
    harmonic: float = 0.0,
) -> Path:
    """A flat-colour 15 fps video whose soundtrack is a note struck every ``period`` s from 0.2 s on
    (onsets at 0.2 + k * period), decaying at ``decay`` 1/s, with an optional second harmonic."""
    note = f"({amplitude}*sin(2*PI*{pitch}*t)+{harmonic}*sin(2*PI*{2 * pitch}*t))"
    audio = f"aevalsrc='{note}*exp(-{decay}*mod(t-0.2+{period},{period}))*gte(t,0.2)':s=16000:d={seconds}"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c={colour}:size=64x48:rate=15:duration={seconds}",
        "-f", "lavfi", "-i", audio,
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path
