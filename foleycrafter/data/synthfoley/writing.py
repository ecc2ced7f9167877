"""Whole clips (:func:`generate_clip`) and their files: wav, mp4 and ``metadata.jsonl`` of a split."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import wave
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .painting import render_frames
from .planning import DEFAULT_SIZE, GENERATOR_VERSION, SAMPLE_RATE, _split_code, _streams, plan_clip
from .synthesis import synthesize_audio


def generate_clip(
    seed: int,
    index: int,
    split: str = "train",
    size: int = DEFAULT_SIZE,
    **overrides,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Generate one clip; the result depends only on the arguments.

    Args:
        seed: dataset seed (non-negative int).
        index: clip number within the split (non-negative int).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        size: frame width = height in pixels (even).
        **overrides: ``class_index``, ``duration`` (s), ``fps``, ``version`` -- see :func:`plan_clip`.

    Returns:
        ``(frames, audio, record)``: frames uint8 ``(num_frames, size, size, 3)`` RGB, frame ``k`` at
        ``k / fps`` s; audio float32 ``(num_samples,)`` at 16 kHz in [-1, 1], sample ``n`` at
        ``n / 16000`` s; record as in :func:`plan_clip`.
    """
    record = plan_clip(seed, index, split, size, **overrides)
    _, audio_rng, video_rng = _streams(seed, index, split)
    audio = synthesize_audio(
        record["class_name"],
        record["onsets"],
        record["num_samples"],
        audio_rng,
        record.get("event_levels_db"),
    )
    frames = render_frames(record, video_rng)
    return frames, audio, record


# ---------------------------------------------------------------------------------------------------
# Files


#: What a clip shows: one object, two side by side with one of them heard, or two or three in turn.
LAYOUTS = ("single", "two_objects", "sequence")


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM (``round(x * 32767)``) with :mod:`wave`."""
    pcm = np.round(np.clip(np.asarray(audio, np.float64), -1, 1) * 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def write_mp4(
    path: str | os.PathLike, frames: np.ndarray, fps: Fraction | str | float, audio_path: str | os.PathLike
) -> None:
    """Encode RGB ``frames`` (T, H, W, 3) uint8 as H.264 yuv420p at ``fps`` (exact, e.g.
    ``"30000/1001"``), muxed with the wav at ``audio_path`` as AAC 16 kHz mono. Single-threaded and
    bit-exact flags, so the same input and the same ffmpeg give the same bytes."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    t, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, str) else Fraction(fps)
    # fmt: off
    cmd = [
        _ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}",
        "-i", "pipe:0", "-i", os.fspath(audio_path),
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
        "-c:a", "aac", "-b:a", "64k", "-ar", str(SAMPLE_RATE), "-ac", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact", "-movflags", "+faststart",
        "-f", "mp4", os.fspath(path),
    ]
    # fmt: on
    done = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"ffmpeg failed ({done.returncode}) writing {path}: {' | '.join(tail)}")


def _write_clip(job: tuple[int, int, str, int, str, int, str]) -> dict:
    from .pairs import generate_two_object_clip
    from .sequences import generate_sequence_clip

    seed, index, split, size, folder, version, layout = job
    cv2.setNumThreads(1)
    if layout == "two_objects":
        frames, audio, record = generate_two_object_clip(seed, index, split, size, version)
    elif layout == "sequence":
        frames, audio, record = generate_sequence_clip(seed, index, split, size, version)
    else:
        frames, audio, record = generate_clip(seed, index, split, size, version=version)
    folder = Path(folder)
    wav, mp4 = folder / record["audio"], folder / record["video"]
    tmp_wav, tmp_mp4 = folder / f".{wav.name}.partial", folder / f".{mp4.name}.partial"
    try:
        write_wav(tmp_wav, audio)
        os.replace(tmp_wav, wav)
        write_mp4(tmp_mp4, frames, record["fps_fraction"], wav)
        os.replace(tmp_mp4, mp4)
    finally:
        for tmp in (tmp_wav, tmp_mp4):
            if tmp.exists():
                tmp.unlink()
    return record


def _clear_split(folder: Path) -> None:
    """Remove what a previous run wrote (clips, metadata, partial files); leave anything else."""
    for item in folder.iterdir():
        if item.is_file() and (
            item.suffix in (".mp4", ".wav") or item.name == "metadata.jsonl" or item.name.endswith(".partial")
        ):
            item.unlink()


def generate_dataset(
    out_dir: str | os.PathLike,
    split: str = "train",
    num_clips: int = 100,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    workers: int = 1,
    overwrite: bool = False,
    version: int = GENERATOR_VERSION,
    layout: str = "single",
) -> list[dict]:
    """Write ``num_clips`` clips of ``split`` to ``out_dir/<split>/``.

    Files: ``<id>.mp4`` (video + AAC soundtrack), ``<id>.wav`` (exact ground-truth audio, PCM16) and
    ``metadata.jsonl`` (the records of :func:`plan_clip`, one per line, in index order, written
    last). Every file is written under a temporary name in the same folder, then renamed.

    Args:
        out_dir: dataset root.
        split: ``"train"``, ``"validation"`` or ``"test"`` (disjoint derived seeds).
        num_clips: clips with indices ``0 .. num_clips - 1``; classes balanced (counts differ by <= 1).
        seed: dataset seed.
        size: frame width = height in pixels.
        workers: processes (1: in this process).
        overwrite: replace the clips and metadata of an existing non-empty split folder; otherwise
            such a folder raises :class:`FileExistsError`.
        version: generator version (:data:`GENERATOR_VERSIONS`); older versions stay reproducible.
        layout: ``"single"`` (one object per clip), ``"two_objects"`` (two side by side, one heard:
            :mod:`.pairs`) or ``"sequence"`` (two or three objects in turn, each heard in its own
            segment: :mod:`.sequences`).

    Returns:
        The records, in index order.
    """
    _split_code(split)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    plan_clip(seed, 0, split, size, version=version)  # validates the arguments before touching the disk
    folder = Path(out_dir) / split
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it")
        _clear_split(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (int(seed), i, split, int(size), os.fspath(folder), int(version), layout)
        for i in range(int(num_clips))
    ]
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=context) as pool:
            records = list(pool.map(_write_clip, jobs, chunksize=1))
    else:
        records = [_write_clip(job) for job in jobs]
    tmp = folder / ".metadata.jsonl.partial"
    with open(tmp, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, sort_keys=True) + "\n")
    os.replace(tmp, folder / "metadata.jsonl")
    return records


def read_metadata(split_dir: str | os.PathLike) -> list[dict]:
    """The records of a written split folder (``metadata.jsonl``), in index order."""
    with open(Path(split_dir) / "metadata.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
