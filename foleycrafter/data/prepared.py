"""Prepared training data: clips cut to the model window, with everything training reads cached.

``prepare_dataset`` turns a folder of videos with their soundtracks into a folder that training
reads without decoding video again::

    data/my_clips/
      config.json            how it was made: rates, window, mel bands, frame counts, image
                             encoder width, the source folder
      index.jsonl            one record per clip: id, source video, start/duration (s), caption,
                             onset times (s, relative to the clip), where the onsets came from
      shard-00000.safetensors  "<id>.audio"           (window_samples,) int16, silence past the end
                               "<id>.log_mel"         (n_mels, window_columns) float16
                               "<id>.clip_embeds"     (num_frames, D) float16, per sampled frame
                               "<id>.detector_frames" (num_frames, S, S, 3) uint8, squashed to S x S
                               "<id>.loudness"        (window_columns,) float16 dBFS per mel column
                                                      (:func:`~foleycrafter.loudness.audio_loudness`,
                                                      the floor past the end; folders prepared
                                                      before it existed derive it from the audio)

Clips are consecutive model windows (10.24 s for Auffusion, 5.12 s for the bundled tiny model) of
each video; the last, shorter remainder is kept when it lasts at least ``min_clip_seconds``. Audio
past a clip's end is silence. Onset labels come from a captions file when it gives them, else from
the soundtrack with the one audio onset detector of this project (:mod:`foleycrafter.audio_onsets`),
and are turned into masks and frame labels at training time with the same timing code as inference.
Trainers refuse data prepared for another model (:func:`check_prepared_for_model`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..spectrogram import MelSpectrogram
from ..temporal import parse_onset_times
from ..timeline import DETECTOR_FRAMES, Timeline
from ..video import VIDEO_SUFFIXES, atomic_output, load_clip, read_audio_track, read_video_info

FORMAT_VERSION = 2
FIELDS = ("audio", "log_mel", "clip_embeds", "detector_frames", "loudness")
#: Side (px) of the squashed frames kept for the onset detector, unless asked otherwise.
DETECTOR_SIZE = 128


@dataclass
class ClipAnnotation:
    """What a captions file says about one video: a caption and, optionally, onset times (s)."""

    caption: str = ""
    onsets: list[float] | None = None


def read_annotations(path: str | os.PathLike) -> dict[str, ClipAnnotation]:
    """Captions (and optional onsets) per video file name, from CSV or JSONL.

    CSV: columns ``file,caption[,onsets]`` with onsets as seconds separated by spaces or ``;``
    (:func:`~foleycrafter.temporal.parse_onset_times`).
    JSONL: ``{"file": ..., "caption": ..., "onsets": [...]}`` per line. Keys are file names
    (``clip.mp4``) or stems (``clip``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Captions file not found: {path}")
    rows: list[dict] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error.msg}).") from None
    else:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    annotations = {}
    for number, row in enumerate(rows, 1):
        name = str(row.get("file") or "").strip()
        if not name:
            raise ValueError(f"{path}: entry {number} has no 'file'.")
        onsets = row.get("onsets")
        if isinstance(onsets, str):
            try:
                onsets = parse_onset_times(onsets)
            except ValueError as error:
                raise ValueError(f"{path}: entry {number} ({name}): {error}") from None
        annotations[name] = ClipAnnotation(
            str(row.get("caption") or ""), None if onsets is None else sorted(map(float, onsets))
        )
    return annotations


def clip_spans(duration: float, window_seconds: float, min_clip_seconds: float) -> list[tuple[float, float]]:
    """Consecutive ``(start, end)`` spans (s) of at most one window that cover a video."""
    spans, start = [], 0.0
    while start < duration - 1e-9:
        end = min(start + window_seconds, duration)
        if end - start >= min_clip_seconds:
            spans.append((start, end))
        start = end
    return spans


def embed_frames(frames: np.ndarray, image_encoder, feature_extractor, batch_size: int = 50) -> torch.Tensor:
    """CLIP ``image_embeds`` of each frame: uint8 (T, H, W, 3) -> (T, D) float32 on the CPU."""
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            pixels = feature_extractor(
                images=list(frames[start : start + batch_size]), return_tensors="pt"
            ).pixel_values
            pixels = pixels.to(device=image_encoder.device, dtype=image_encoder.dtype)
            out.append(image_encoder(pixel_values=pixels).image_embeds.float().cpu())
    return torch.cat(out)


def squash_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3), squashed as the onset detector resizes
    (bilinear with antialiasing, aspect ratio not kept)."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(
        pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def clip_loudness(segment: np.ndarray, duration: float, timeline: Timeline) -> np.ndarray:
    """A prepared clip's loudness curve: float32 ``(window_columns,)`` dBFS, the floor after ``duration``."""
    from ..loudness import LOUDNESS_FLOOR_DB, audio_loudness

    count = timeline.active_columns(duration)
    curve = np.full(timeline.window_columns, LOUDNESS_FLOOR_DB, dtype=np.float32)
    samples = min(len(segment), timeline.seconds_to_samples(duration))
    if samples > 0:
        measured = audio_loudness(segment[:samples], timeline)
        curve[: min(count, measured.size)] = measured[:count]
    return curve


def _clip_id(video: Path, start: float) -> str:
    digest = hashlib.sha1(f"{video.name}:{start:.3f}".encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in video.stem)[:40]
    return f"{stem}-{int(round(start * 1000)):07d}-{digest}"


def prepare_dataset(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    image_encoder,
    feature_extractor,
    annotations: dict[str, ClipAnnotation] | None = None,
    timeline: Timeline | None = None,
    n_mels: int = 256,
    num_frames: int = DETECTOR_FRAMES,
    detector_size: int = DETECTOR_SIZE,
    min_clip_seconds: float = 1.0,
    shard_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    audio_onset_detector=None,
) -> dict:
    """Cut videos into window-sized clips and cache what training reads (see the module docstring).

    Args:
        source: a folder of videos, or a list of video files.
        image_encoder, feature_extractor: the CLIP vision model and processor whose embeddings the
            semantic adapter trains on (the pipeline's).
        annotations: per-file captions/onsets from :func:`read_annotations`.
        timeline: rates and window (default Auffusion's: 16 kHz, hop 160, 1024 columns); those of
            the model that will train on the data (``foleycrafter prepare --model`` reads them with
            :func:`~foleycrafter.runtime.model_data_settings`), which trainers check.
        n_mels: mel bands of the log-mel (the model's vocoder's ``num_mels``).
        num_frames: frames sampled uniformly per clip (for CLIP and the detector).
        detector_size: side (px) of the squashed frames kept for onset-detector training.
        audio_onset_detector: ``waveform -> onset times (s)``; default :func:`detect_audio_onsets`.

    Returns:
        A summary dict: clips written, videos skipped with their reason.
    """
    from tqdm.auto import tqdm

    timeline = timeline or Timeline()
    annotations = annotations or {}
    if audio_onset_detector is None:
        from ..audio_onsets import detect_audio_onsets

        def audio_onset_detector(waveform):
            return detect_audio_onsets(waveform, sample_rate=timeline.sample_rate).times

    videos = _list_videos(source)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(out_dir.glob("shard-*.safetensors")) + [out_dir / "index.jsonl"]:
        stale.unlink(missing_ok=True)
    mel = MelSpectrogram(sample_rate=timeline.sample_rate, hop_length=timeline.hop_length, n_mels=n_mels)
    records, pending, skipped, shard_index = [], {}, [], 0

    def flush():
        nonlocal pending, shard_index
        if pending:
            with atomic_output(out_dir / f"shard-{shard_index:05d}.safetensors", overwrite=True) as temporary:
                save_file(pending, str(temporary))
            pending, shard_index = {}, shard_index + 1

    for video in tqdm(videos, desc="prepare", unit="video", disable=not progress):
        try:
            info = read_video_info(video)
            if not info.has_audio:
                raise ValueError("no audio stream to learn from")
            waveform = read_audio_track(info, sample_rate=timeline.sample_rate)
        except Exception as error:  # one bad video must not stop the preparation
            skipped.append({"video": str(video), "reason": " ".join(str(error).split())})
            continue
        note = annotations.get(video.name) or annotations.get(video.stem) or ClipAnnotation()
        for start, end in clip_spans(
            min(info.duration, len(waveform) / timeline.sample_rate),
            timeline.window_seconds,
            min_clip_seconds,
        ):
            first, last = timeline.seconds_to_samples(start), timeline.seconds_to_samples(end)
            segment = np.zeros(timeline.window_samples, dtype=np.float32)
            segment[: last - first] = waveform[first:last]
            if note.onsets is not None:
                onsets, onset_source = [t - start for t in note.onsets if start <= t < end], "given"
            else:
                onsets, onset_source = (
                    [float(t) for t in audio_onset_detector(segment[: last - first])],
                    "audio",
                )
            clip = load_clip(info, num_frames=num_frames, start_seconds=start, end_seconds=end)
            clip_id = _clip_id(video, start)
            with torch.no_grad():
                log_mel = mel(torch.from_numpy(segment))[0]
            pending[f"{clip_id}.audio"] = torch.from_numpy(
                np.round(np.clip(segment, -1, 1) * 32767).astype(np.int16)
            )
            pending[f"{clip_id}.log_mel"] = (
                log_mel[:, : timeline.window_columns].to(torch.float16).contiguous()
            )
            pending[f"{clip_id}.clip_embeds"] = embed_frames(
                clip.frames, image_encoder, feature_extractor
            ).to(torch.float16)
            pending[f"{clip_id}.detector_frames"] = squash_frames(clip.frames, detector_size)
            pending[f"{clip_id}.loudness"] = torch.from_numpy(
                clip_loudness(segment, end - start, timeline)
            ).to(torch.float16)
            records.append(
                {
                    "id": clip_id,
                    "source": str(video),
                    "start": start,
                    "duration": end - start,
                    "caption": note.caption,
                    "onsets": onsets,
                    "onset_source": onset_source,
                    "shard": f"shard-{shard_index:05d}.safetensors",
                }
            )
            if len(pending) >= len(FIELDS) * shard_size:
                flush()
    flush()
    if not records:
        raise ValueError(
            f"No clip could be prepared from {source}: "
            + "; ".join(f"{s['video']}: {s['reason']}" for s in skipped)
        )
    config = {
        "format_version": FORMAT_VERSION,
        "sample_rate": timeline.sample_rate,
        "hop_length": timeline.hop_length,
        "window_columns": timeline.window_columns,
        "n_mels": n_mels,
        "num_frames": num_frames,
        "detector_size": detector_size,
        "clip_dim": int(image_encoder.config.projection_dim),
        # Named in the command that prepares the data again when a trainer refuses it.
        "source": str(source) if isinstance(source, (str, os.PathLike)) else None,
    }
    with atomic_output(out_dir / "config.json", overwrite=True) as temporary:
        Path(temporary).write_text(json.dumps(config, indent=2), encoding="utf-8")
    with atomic_output(out_dir / "index.jsonl", overwrite=True) as temporary:
        Path(temporary).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return {
        "clips": len(records),
        "videos": len(videos) - len(skipped),
        "skipped": skipped,
        "out_dir": str(out_dir),
    }


#: How a mismatch names each setting a trainer checks (keys of a prepared ``config.json``).
SETTING_NAMES = {
    "window_columns": "window (mel columns)",
    "sample_rate": "sample rate (Hz)",
    "hop_length": "hop (audio samples per mel column)",
    "n_mels": "mel bands",
    "clip_dim": "CLIP embedding width",
}


def check_prepared_for_model(
    data: str | os.PathLike,
    model: str | os.PathLike | None,
    keys: Sequence[str],
) -> None:
    """Refuse prepared data that was made for another model than the one about to train on it.

    Data cut to another window, at another rate or with another image encoder trains without an
    error and fails only at validation (or, worse, generates from a model trained on windows it
    never sees), so trainers call this before anything is loaded or written.

    Args:
        data: the prepared folder (a folder without ``config.json`` is left to the dataset to refuse).
        model: the model folder; its settings are read with
            :func:`~foleycrafter.runtime.model_data_settings` (nothing is checked when it is None or
            not a local folder).
        keys: the settings that must agree, keys of the prepared ``config.json`` (see
            :data:`SETTING_NAMES`); a key the model folder does not fix is not compared.

    Raises:
        ValueError: one message naming each differing setting with both values, and the command
            that prepares the data for this model.
    """
    from ..runtime import model_data_settings

    config_path = Path(data) / "config.json"
    if not keys or not config_path.is_file():
        return
    wanted = model_data_settings(model) if model is not None and Path(model).is_dir() else {}
    config = json.loads(config_path.read_text(encoding="utf-8"))
    differences = [
        f"{SETTING_NAMES.get(key, key)} is {config[key]} in the data but {wanted[key]} in the model"
        for key in keys
        if key in wanted and key in config and int(config[key]) != int(wanted[key])
    ]
    if differences:
        raise ValueError(
            f"{data} was prepared for another model than {model}: {'; '.join(differences)}. "
            f"Prepare it for this model and train again: {_prepare_command(data, model, config)}"
        )


def _prepare_command(data, model, config: dict) -> str:
    """The ``foleycrafter prepare`` command that makes ``data`` again for ``model``, with the
    options it was made with that the folder records."""
    command = f"foleycrafter prepare {config.get('source') or 'SOURCE'} --out {data} --model {model}"
    if config.get("num_frames", DETECTOR_FRAMES) != DETECTOR_FRAMES:
        command += f" --num-frames {config['num_frames']}"
    if config.get("detector_size", DETECTOR_SIZE) != DETECTOR_SIZE:
        command += f" --detector-size {config['detector_size']}"
    index = Path(data) / "index.jsonl"
    if index.is_file() and any(
        record.get("caption") or record.get("onset_source") == "given"
        for record in map(json.loads, filter(str.strip, index.read_text(encoding="utf-8").splitlines()))
    ):
        # Without the captions file the clips would lose their captions and given onsets.
        command += " --captions CAPTIONS"
    return command + " --overwrite"


def _list_videos(source) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if folder.is_dir():
            videos = sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
            if not videos:
                raise FileNotFoundError(f"{folder} contains no videos ({', '.join(VIDEO_SUFFIXES)}).")
            return videos
        source = [source]
    videos = [Path(p) for p in source]
    missing = [str(p) for p in videos if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Video files not found: {', '.join(missing[:5])}")
    return videos


class PreparedDataset(torch.utils.data.Dataset):
    """Clips of a prepared folder.

    Each item is a dict: ``id``, ``caption``, ``onsets`` (s, relative to the clip), ``duration`` (s),
    and the requested ``fields``: ``audio`` (window_samples,) float32 in [-1, 1], ``log_mel``
    (n_mels, window_columns) float32, ``clip_embeds`` (num_frames, D) float32, ``detector_frames``
    (num_frames, S, S, 3) uint8, ``loudness`` (window_columns,) float32 dBFS.
    """

    def __init__(
        self, folder: str | os.PathLike, fields: Sequence[str] = FIELDS, ids: Sequence[str] | None = None
    ):
        self.folder = Path(folder)
        config_path = self.folder / "config.json"
        if not config_path.is_file() or not (self.folder / "index.jsonl").is_file():
            raise FileNotFoundError(
                f"{self.folder} is not a prepared dataset (config.json and index.jsonl missing); "
                f"make one with `foleycrafter prepare VIDEOS --out {self.folder}`."
            )
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        if self.config.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.folder}: prepared-data format {self.config.get('format_version')} is not {FORMAT_VERSION}; prepare it again."
            )
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise ValueError(f"Unknown fields {unknown}; choose from {FIELDS}.")
        self.fields = tuple(fields)
        records = [
            json.loads(line)
            for line in (self.folder / "index.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        if ids is not None:
            wanted = set(ids)
            records = [r for r in records if r["id"] in wanted]
        self.records = records

    @property
    def timeline(self) -> Timeline:
        return Timeline(
            sample_rate=self.config["sample_rate"],
            hop_length=self.config["hop_length"],
            window_columns=self.config["window_columns"],
            detector_frames=self.config["num_frames"],
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        item = {k: record[k] for k in ("id", "caption", "onsets", "duration")}
        with safe_open(str(self.folder / record["shard"]), framework="pt") as shard:
            stored = set(shard.keys()) if "loudness" in self.fields else ()
            for field in self.fields:
                key = f"{record['id']}.{field}"
                if field == "loudness" and key not in stored:  # prepared before curves were cached
                    audio = shard.get_tensor(f"{record['id']}.audio").float().numpy() / 32767
                    item[field] = torch.from_numpy(clip_loudness(audio, record["duration"], self.timeline))
                    continue
                tensor = shard.get_tensor(key)
                if field == "audio":
                    tensor = tensor.float() / 32767
                item[field] = tensor if field == "detector_frames" else tensor.float()
        return item

    def split(self, validation_fraction: float, seed: int = 0) -> tuple[PreparedDataset, PreparedDataset]:
        """A deterministic train/validation split by hashing clip ids (stable as data is added); at
        least one clip is held out when ``validation_fraction > 0`` and there are two or more."""
        if not 0 <= validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in [0, 1), got {validation_fraction}.")

        def bucket(clip_id: str) -> float:
            return int(hashlib.sha1(f"{seed}:{clip_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

        validation = {r["id"] for r in self.records if bucket(r["id"]) < validation_fraction}
        if validation_fraction > 0 and not validation and len(self.records) > 1:
            # A small dataset still validates on one clip: the one hashed lowest.
            validation = {min((r["id"] for r in self.records), key=bucket)}
        train = [r["id"] for r in self.records if r["id"] not in validation]
        return PreparedDataset(self.folder, self.fields, train), PreparedDataset(
            self.folder, self.fields, validation
        )


def collate(items: list[dict]) -> dict:
    """Stack tensor fields; keep captions, onsets, ids and durations as lists."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
