"""Sampling 150 frames from a video: ``foleycrafter.video.load_clip`` against decoding every frame.

The release reads every frame of the video into a list and then picks 150 of them
(``np.linspace(0, n - 1, 150)``), so its memory grows with the video's length and resolution.
``load_clip`` walks the file once, converts only the frames it keeps, and can shrink them on the
way (``short_side``), so its memory is ~150 output frames whatever the video.

Test videos (testsrc2 pattern, H.264, 30 fps) are generated with the ffmpeg binary of
imageio-ffmpeg into a temporary folder. Every measurement runs in a fresh Python process, so that
the peak resident memory (``VmHWM``) belongs to that read alone; Python-side allocations (numpy
frames included) are also traced with ``tracemalloc``.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/frame_reading.py [--threads 1] [--tiny]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import _common

# (label, seconds, width, height) of the generated videos.
FULL_VIDEOS = [
    ("10s 360p", 10, 640, 360),
    ("10s 720p", 10, 1280, 720),
    ("3min 360p", 180, 640, 360),
    ("3min 720p", 180, 1280, 720),
]
TINY_VIDEOS = [("2s 64p", 2, 96, 64), ("6s 64p", 6, 96, 64)]
FPS = 30
METHODS = ("ours", "ours short_side=256", "all frames")


def make_video(path: Path, seconds: float, width: int, height: int, fps: int = FPS, threads: int = 1) -> Path:
    """Write a testsrc2 pattern video (H.264, yuv420p) with imageio-ffmpeg's binary, unless a
    file of that name exists already (``--media-dir`` reuse)."""
    import imageio_ffmpeg

    if path.is_file():
        return path
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    source = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        + ["-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
        + ["-threads", str(threads), str(partial)],
        check=True,
    )
    partial.rename(path)
    return path


def read_all_then_pick(path: str, num_frames: int):
    """What the release does: decode every frame (RGB) into a list, then pick ``num_frames`` by
    ``np.linspace(0, n - 1, num_frames).astype(int)``. Same decoder (OpenCV's FFmpeg) as ours, so
    the comparison is about what is kept, not about decoders."""
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    indices = np.linspace(0, len(frames) - 1, num_frames).astype(int)
    return np.stack([frames[i] for i in indices])


def read_once(method: str, path: str, num_frames: int) -> dict:
    """Time and memory of one read of ``num_frames`` frames from ``path`` by ``method``.

    Returns:
        {"seconds" (wall, the read only), "cpu_seconds" (CPU time of the read, ffmpeg probes
        included), "tracemalloc_peak" (bytes allocated through Python at the
        peak), "rss_increase" (bytes: peak resident size during the read minus resident size just
        before it; None where the peak cannot be reset), "shape" (of the frames returned)}.
    """
    import cv2

    from foleycrafter.video import load_clip

    # OpenCV's own loops (resize, colour conversion) would otherwise use every core; the decoder's
    # threads follow OPENCV_FFMPEG_THREADS, which --threads sets.
    cv2.setNumThreads(int(os.environ.get("OPENCV_FFMPEG_THREADS", "1")))
    if method == "ours":
        read = lambda: load_clip(path, num_frames=num_frames).frames  # noqa: E731
    elif method.startswith("ours short_side="):
        side = int(method.split("=", 1)[1])
        read = lambda: load_clip(path, num_frames=num_frames, short_side=side).frames  # noqa: E731
    elif method == "all frames":
        read = lambda: read_all_then_pick(path, num_frames)  # noqa: E731
    else:
        raise ValueError(f"unknown method {method!r}; one of {METHODS}")
    _common.release_free_memory()
    before = _common.rss_bytes()
    resettable = _common.reset_peak_rss()
    tracemalloc.start()
    cpu, start = _common.cpu_seconds(), time.perf_counter()
    frames = read()
    seconds, cpu = time.perf_counter() - start, _common.cpu_seconds() - cpu
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _common.peak_rss_bytes()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "tracemalloc_peak": traced_peak,
        "rss_increase": (peak - before) if resettable and before is not None else None,
        "shape": list(frames.shape),
    }


def read_in_subprocess(method: str, path: str, num_frames: int) -> dict:
    """:func:`read_once` in a fresh interpreter (clean peak RSS, nothing cached from earlier reads)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import frame_reading; "
        "print(json.dumps(frame_reading.read_once(sys.argv[2], sys.argv[3], int(sys.argv[4]))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), method, path, str(num_frames)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"reading {path} ({method}) failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(
    videos: list[tuple[str, float, int, int]],
    folder: Path,
    num_frames: int,
    repeats: int,
    max_baseline_bytes: float,
    threads: int = 1,
    progress=None,
) -> list[dict]:
    """For each video, the three methods interleaved ``repeats`` times, each read in a subprocess.

    "all frames" is not run where it would hold more than ``max_baseline_bytes`` of frames; its row
    then gives that estimate (frames x height x width x 3 bytes) instead of a measurement.

    Returns:
        one row per (video, method): {"video", "frames_in_video", "method", "seconds" (median wall),
        "seconds_spread", "cpu_seconds" (median), "rss_increase_mib" (median), "tracemalloc_peak_mib" (median), "note"}.
    """
    from foleycrafter.video import read_video_info

    rows = []
    for label, seconds, width, height in videos:
        path = make_video(
            folder / f"testsrc2_{seconds}s_{width}x{height}.mp4", seconds, width, height, threads=threads
        )
        info = read_video_info(path)
        all_frames_bytes = info.num_frames * info.width * info.height * 3
        methods = [m for m in METHODS if m != "all frames" or all_frames_bytes <= max_baseline_bytes]
        if progress:
            progress(f"{label}: {info.num_frames} frames {info.width}x{info.height}")
        samples: dict[str, list[dict]] = {m: [] for m in methods}

        def case(method, path=path, samples=samples):
            def run() -> dict:
                sample = read_in_subprocess(method, str(path), num_frames)
                samples[method].append(sample)
                return {"wall_s": sample["seconds"], "cpu_s": sample["cpu_seconds"]}

            return run

        _common.interleaved({m: case(m) for m in methods}, repeats=repeats, progress=progress)
        for method in METHODS:
            row = {"video": label, "frames_in_video": info.num_frames, "method": method}
            if method not in samples:
                row["note"] = f"not run: would hold {all_frames_bytes / 2**30:.1f} GiB of frames"
                row["rss_increase_mib"] = None
                rows.append(row)
                continue
            runs = samples[method]
            rss = [s["rss_increase"] for s in runs if s["rss_increase"] is not None]
            row.update(
                {
                    "seconds": _common.median([s["seconds"] for s in runs]),
                    "seconds_spread": _common.spread([s["seconds"] for s in runs]),
                    "cpu_seconds": _common.median([s["cpu_seconds"] for s in runs]),
                    "rss_increase_mib": _common.mib(_common.median(rss)) if rss else None,
                    "tracemalloc_peak_mib": _common.mib(
                        _common.median([s["tracemalloc_peak"] for s in runs])
                    ),
                    "output_shape": "x".join(map(str, runs[0]["shape"])),
                }
            )
            rows.append(row)
    return rows


def summarize(rows: list[dict]) -> list[str]:
    """Lines comparing the methods per video (time and memory ratios) and ours across lengths."""
    lines = []
    by_video: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_video.setdefault(row["video"], {})[row["method"]] = row
    for video, methods in by_video.items():
        ours, base = methods["ours"], methods["all frames"]
        if "seconds" in base:
            lines.append(
                f"{video}: all frames / ours: wall time x{_common.ratio(base['seconds'], ours['seconds']):.2f}, "
                f"CPU time x{_common.ratio(base['cpu_seconds'], ours['cpu_seconds']):.2f}, "
                f"peak RSS increase x{_common.ratio(base['rss_increase_mib'] or 0, ours['rss_increase_mib'] or 0):.1f}"
            )
        else:
            lines.append(f"{video}: all frames {base['note']}; ours {ours['rss_increase_mib']:.0f} MiB")
    return lines


def main(argv=None) -> list[dict]:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="interleaved repetitions per method (2)")
    p.add_argument("--num-frames", type=int, default=150, help="frames to sample (150, the release's)")
    p.add_argument(
        "--max-baseline-gib",
        type=float,
        default=5.0,
        help="skip 'all frames' where it would hold more than this many GiB of frames (5)",
    )
    p.add_argument(
        "--media-dir",
        type=Path,
        default=None,
        help="keep/reuse the generated videos here (default: a temp dir)",
    )
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    env = _common.environment(args.threads)
    _common.print_header(f"frame reading: {args.num_frames} frames, load_clip vs decode-all-then-pick", env)
    videos = TINY_VIDEOS if args.tiny else FULL_VIDEOS
    with tempfile.TemporaryDirectory(prefix="foleycrafter-bench-") as temporary:
        folder = args.media_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        rows = measure(
            videos,
            folder,
            args.num_frames,
            args.repeats,
            args.max_baseline_gib * 2**30,
            threads=args.threads,
            progress=_common.log,
        )
    _common.print_table(
        rows,
        [
            "video",
            "frames_in_video",
            "method",
            "seconds",
            "seconds_spread",
            "cpu_seconds",
            "rss_increase_mib",
            "tracemalloc_peak_mib",
            "output_shape",
            "note",
        ],
    )
    for line in summarize(rows):
        print(line)
    _common.write_json(args.json, {"environment": env, "tiny": args.tiny, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
