"""Loudness curves: how loud each moment of the soundtrack should be, in dB per mel column.

A curve is a float32 array on the :class:`~foleycrafter.timeline.Timeline`'s mel-column axis, in
dBFS: RMS relative to 1.0 (a full-scale sine is -3 dB, a full-scale square wave 0 dB).
Columns after the clip's end hold :data:`LOUDNESS_FLOOR_DB` (silence), like a timestamp mask's -1.

Curves come from three places:

* a person: points ``(seconds, dB)`` joined by straight lines (:func:`loudness_from_points`), or
  one value per column; on the command line a CSV or JSON file (:func:`read_loudness_file`);
* a reference recording (:func:`audio_loudness`);
* the video itself, through a loudness predictor (a later model, same family as the onset detector).

Why RMS and not BS.1770: the measure is the RMS of the waveform in the very frames the mel
spectrogram uses (a 1024-sample Hann window at every 160-sample hop), so column ``i`` of a curve
describes exactly column ``i`` of the mel image the model draws. BS.1770 short-term (3 s) and
momentary (400 ms) loudness integrate over windows 6 to 40 times longer than a footstep, which
would smear the envelopes a Foley artist shapes; their K-weighting only reweights the spectrum,
which the semantic condition already decides. The reference is the waveform's RMS and nothing
newer: Video-Foley's controller is conditioned on the same quantity.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .timeline import Timeline

#: The quietest level a curve holds (dBFS): silence, and every column after the clip's end.
LOUDNESS_FLOOR_DB = -80.0
#: The mel spectrogram's analysis window (samples), over which a column's RMS is measured.
ANALYSIS_WINDOW = 1024


def audio_loudness(
    audio: np.ndarray | torch.Tensor,
    timeline: Timeline,
    *,
    window_length: int = ANALYSIS_WINDOW,
    floor_db: float = LOUDNESS_FLOOR_DB,
) -> np.ndarray:
    """The loudness curve of a recording: RMS in dBFS of each mel column's analysis frame.

    Column ``i``'s frame is the Hann window of ``window_length`` samples centred on sample
    ``i * hop + hop / 2``, as in :mod:`foleycrafter.spectrogram` (reflect padding at the edges).

    Args:
        audio: mono waveform ``(samples,)`` at ``timeline.sample_rate``, in [-1, 1].
        timeline: gives the sample rate and hop.
        window_length: analysis frame (samples).
        floor_db: levels below this are raised to it.

    Returns:
        float32 ``(clip_columns(samples / sample_rate),)``: dBFS per mel column, however many model
        windows the recording spans.
    """
    wave = np.asarray(torch.as_tensor(audio, dtype=torch.float64).cpu()).reshape(-1)
    if wave.size == 0:
        raise ValueError("audio_loudness: the recording is empty (0 samples).")
    duration = wave.size / timeline.sample_rate
    count = timeline.clip_columns(duration)
    hop = timeline.hop_length
    half = window_length // 2
    padded = np.pad(wave, (half, half + hop * count), mode="reflect" if wave.size > half else "constant")
    window = np.hanning(window_length + 2)[1:-1]  # no zero end points: every sample counts
    starts = np.arange(count) * hop + hop // 2
    frames = np.lib.stride_tricks.sliding_window_view(padded, window_length)[starts]
    power = (frames**2 * window).sum(axis=1) / window.sum()
    return np.maximum(10 * np.log10(np.maximum(power, 1e-20)), floor_db).astype(np.float32)


#: How far :func:`follow_loudness` raises a stretch of audio (dB). The bundled model's events come out
#: 10-30 dB under the levels asked for; on 16 version-2 validation clips with the exact curve the
#: gain stage left 4.2 / 3.0 / 2.7 / 2.7 dB of error at limits of 24 / 36 / 48 / 60 dB
#: (results/diagnosis/loudness_gain_boosts_v2_validation.json, curves cut at 5.12 s by a measuring
#: bug since fixed; on test clips with whole curves 36 dB leaves 2.0 dB). Beyond the knee, what a larger limit
#: raises is mostly the model's background noise rather than a sound.
MAX_BOOST_DB = 36.0


def follow_loudness(
    audio: np.ndarray | torch.Tensor,
    target_db: np.ndarray,
    timeline: Timeline,
    strength: float = 1.0,
    *,
    max_boost_db: float = MAX_BOOST_DB,
    iterations: int = 2,
) -> np.ndarray:
    """A gain stage: scale a waveform, moment by moment, so that its loudness follows a curve.

    The gain (dB) is set per mel column and joined by straight lines between the columns' centres
    (10 ms apart at 16 kHz), so it shapes envelopes without clicks. A column's loudness is measured
    over a 1024-sample window that spans several columns, so one pass undershoots where the curve
    changes quickly; each further pass measures again and corrects what is left. The gain can only
    scale what is there: it never adds a sound, and raises by at most ``max_boost_db``.

    Args:
        audio: mono waveform ``(samples,)`` at ``timeline.sample_rate``.
        target_db: dBFS per mel column of ``timeline`` (at least ``clip_columns`` of the audio's
            duration values; later ones are ignored).
        strength: 0 leaves the audio as it is, 1 moves every column to the curve (as far as the
            boost limit allows); in between, that fraction of the way, in dB.
        max_boost_db: the most any column is raised.
        iterations: measuring and correcting passes.

    Returns:
        float32 ``(samples,)``, clipped to [-1, 1].
    """
    wave = np.asarray(torch.as_tensor(audio, dtype=torch.float64).cpu()).reshape(-1)
    count = timeline.clip_columns(wave.size / timeline.sample_rate)
    target_db = np.asarray(target_db, dtype=np.float64).reshape(-1)
    if target_db.size < count:
        raise ValueError(
            f"follow_loudness: the curve has {target_db.size} columns, the {wave.size}-sample audio {count}."
        )
    if not 0 <= strength <= 1:
        raise ValueError(f"follow_loudness: strength must lie in [0, 1], got {strength!r}.")
    if strength == 0 or count == 0:
        return wave.astype(np.float32)
    start_db = audio_loudness(wave, timeline).astype(np.float64)  # (count,): clip_columns, as above
    wanted_db = start_db + strength * (target_db[:count] - start_db)
    centres = np.arange(count) * timeline.hop_length + timeline.hop_length / 2
    samples = np.arange(wave.size)
    gain_db = np.zeros(count)
    shaped, measured_db = wave, start_db
    for done in range(1, iterations + 1):
        gain_db = np.minimum(gain_db + wanted_db - measured_db, max_boost_db)
        shaped = wave * 10 ** (np.interp(samples, centres, gain_db) / 20)
        if done < iterations:  # the last pass's result is not measured again
            measured_db = audio_loudness(shaped, timeline)
    return np.clip(shaped, -1.0, 1.0).astype(np.float32)


LoudnessPoints = tuple[np.ndarray, np.ndarray]


def loudness_points(loudness, duration: float, timeline: Timeline, name: str = "loudness") -> LoudnessPoints:
    """Validate a caller's curve for a whole clip and turn it into points ``(seconds, dBFS)``.

    Args:
        loudness: one of: points as a ``(times, levels)`` pair of sequences, a dict
            ``{"times": [...], "db": [...]}`` or a list of ``(seconds, dB)`` pairs; or one value per
            mel column of the clip (``timeline.columns_per_second`` per second, at most
            ``clip_columns(duration)`` values; a shorter array holds its last value to the end).
            Times are seconds from the clip's start, within ``[0, duration]``, strictly increasing;
            levels are dBFS in ``[LOUDNESS_FLOOR_DB, 0]``.
        duration: the clip's length (s).

    Returns:
        ``(times, levels)`` float64 arrays; between points the level is joined by straight lines in
        dB, before the first and after the last it is held (:func:`window_loudness`).

    Raises:
        ValueError: naming ``name``, what was expected and what to do.
    """
    if isinstance(loudness, dict):
        missing = {"times", "db"} - set(loudness)
        if missing:
            raise ValueError(
                f"{name} as a dict needs the keys 'times' (seconds) and 'db' (dBFS); missing {sorted(missing)}."
            )
        return _checked_points(loudness["times"], loudness["db"], duration, name)
    if isinstance(loudness, tuple) and len(loudness) == 2 and all(np.ndim(part) == 1 for part in loudness):
        return _checked_points(loudness[0], loudness[1], duration, name)
    try:
        array = np.asarray(torch.as_tensor(loudness).cpu(), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"{name} must be dB values per mel column or (seconds, dB) points; got {type(loudness).__name__}."
        ) from None
    if array.ndim == 2 and array.shape[1] == 2:
        return _checked_points(array[:, 0], array[:, 1], duration, name)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name} must be one dB value per mel column, (seconds, dB) points or "
            f"{{'times': [...], 'db': [...]}}; got an array of shape {tuple(array.shape)}."
        )
    count = max(1, timeline.clip_columns(duration))
    if array.size > count:
        raise ValueError(
            f"{name} has {array.size} values, but the {duration:.2f} s clip has {count} mel columns "
            f"({timeline.columns_per_second:g} per second). Give one value per column, or points in seconds."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds values that are not finite numbers; give dBFS levels.")
    _check_levels(array, name)
    return (np.arange(array.size) + 0.5) / timeline.columns_per_second, array


def _checked_points(times, levels, duration: float, name: str) -> LoudnessPoints:
    try:
        times = np.asarray(list(times), dtype=np.float64)
        levels = np.asarray(list(levels), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: points must be numbers (seconds, dB).") from None
    if times.ndim != 1 or times.size == 0 or times.shape != levels.shape:
        raise ValueError(
            f"{name} needs as many times as levels (at least one of each); got {times.size} "
            f"times and {levels.size} levels."
        )
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(levels))):
        raise ValueError(f"{name}: points must be finite numbers (seconds, dB).")
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"{name}: point times must increase strictly; got {times.tolist()}.")
    if times[0] < 0 or times[-1] > duration + 1e-9:
        raise ValueError(
            f"{name}: point times must lie within the clip [0, {duration:.3f}] s; got {times.tolist()}."
        )
    _check_levels(levels, name)
    return times, levels


def window_loudness(points: LoudnessPoints, start: float, duration: float, timeline: Timeline) -> np.ndarray:
    """One model window's curve from a clip's points.

    Args:
        points: ``(times, levels)`` from :func:`loudness_points` (seconds from the clip's start, dBFS).
        start: the window's start in the clip (s).
        duration: seconds of audio the window renders; later columns hold :data:`LOUDNESS_FLOOR_DB`.

    Returns:
        float32 ``(window_columns,)`` in dBFS: the points joined by straight lines, sampled at each
        column's centre.
    """
    times, levels = points
    count = timeline.active_columns(duration)
    centres = start + (np.arange(count) + 0.5) / timeline.columns_per_second
    curve = np.full(timeline.window_columns, LOUDNESS_FLOOR_DB, dtype=np.float32)
    curve[:count] = np.interp(centres, times, levels)
    return curve


def loudness_from_points(
    times: Sequence[float], levels_db: Sequence[float], duration: float, timeline: Timeline
) -> np.ndarray:
    """A window's curve through hand-placed points ``(seconds, dBFS)`` of a clip that fits one window:
    :func:`loudness_points` then :func:`window_loudness` from 0 s. Returns float32 ``(window_columns,)``."""
    return window_loudness(loudness_points((times, levels_db), duration, timeline), 0.0, duration, timeline)


def _check_levels(levels: np.ndarray, name: str) -> None:
    high = levels[levels > 0]
    if high.size:
        raise ValueError(
            f"{name}: levels are dBFS (0 = full scale, quieter is negative); got {float(high.max()):g} dB. "
            "Give negative levels, e.g. -20 for a moderate sound."
        )
    if np.any(levels < LOUDNESS_FLOOR_DB - 1e-6):
        raise ValueError(
            f"{name}: levels below {LOUDNESS_FLOOR_DB:g} dBFS are silence here; got {float(levels.min()):g} dB."
        )


def read_loudness_file(path: str | Path) -> tuple[list[float], list[float]]:
    """Read a hand-made curve: points ``(seconds, dB)`` from a CSV or JSON file.

    * CSV: two columns per row, seconds then dBFS; a header row (any non-numeric first row) is skipped.
    * JSON: ``{"times": [...], "db": [...]}`` or ``[[seconds, dB], ...]``.

    Returns:
        ``(times, levels)`` in file order (checked against a clip by :func:`check_loudness`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Loudness file {path} does not exist. Give a CSV or JSON file of (seconds, dB) points."
        )
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Loudness file {path} is not valid JSON: {error}.") from None
        if isinstance(data, dict) and {"times", "db"} <= set(data):
            times, levels = data["times"], data["db"]
        elif isinstance(data, list) and all(isinstance(row, list) and len(row) == 2 for row in data):
            times, levels = [row[0] for row in data], [row[1] for row in data]
        else:
            raise ValueError(
                f'Loudness file {path}: expected {{"times": [...], "db": [...]}} or [[seconds, dB], ...].'
            )
        return _as_numbers(times, path), _as_numbers(levels, path)
    times, levels = [], []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [cell.strip() for cell in row if cell.strip()]
        if not cells or cells[0].startswith("#"):
            continue
        if len(cells) != 2:
            raise ValueError(
                f"Loudness file {path}, line {number}: expected two values (seconds, dB), got {row}."
            )
        try:
            time, level = float(cells[0].removesuffix("s")), float(cells[1].removesuffix("dB").strip())
        except ValueError:
            if not times and number == 1:
                continue  # a header
            raise ValueError(
                f"Loudness file {path}, line {number}: {row} are not numbers (seconds, dB)."
            ) from None
        times.append(time)
        levels.append(level)
    if not times:
        raise ValueError(f"Loudness file {path} holds no (seconds, dB) points.")
    return times, levels


def _as_numbers(values, path: Path) -> list[float]:
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        raise ValueError(f"Loudness file {path}: times and levels must be numbers.") from None


def reference_loudness(path: str | os.PathLike, timeline: Timeline) -> np.ndarray:
    """The loudness curve of a reference recording (any audio or video file with a soundtrack):
    float32 ``(clip_columns(its duration),)`` dBFS, from :func:`audio_loudness` of its first audio
    stream, resampled to ``timeline.sample_rate`` and mixed to mono."""
    from .video import read_audio_track

    return audio_loudness(read_audio_track(path, sample_rate=timeline.sample_rate), timeline)


def fit_to_clip(curve: np.ndarray, duration: float, timeline: Timeline) -> np.ndarray:
    """A per-column curve made exactly as long as a clip of ``duration`` seconds: cut where the
    reference is longer, extended with :data:`LOUDNESS_FLOOR_DB` (silence) where it is shorter."""
    count = max(1, timeline.clip_columns(duration))
    out = np.full(count, LOUDNESS_FLOOR_DB, dtype=np.float32)
    out[: min(count, len(curve))] = np.asarray(curve, dtype=np.float32)[:count]
    return out


def parse_loudness_points(text: str | None, duration: float | None = None) -> LoudnessPoints | None:
    """Points typed by a person (the demo's field): ``"0:-40, 1.5:-10, 3:-30"``, i.e. ``seconds:dB``
    pairs separated by commas, semicolons or new lines (``s`` and ``dB`` suffixes allowed).

    Returns:
        ``(times, levels)`` sorted by time, checked like :func:`loudness_points` when ``duration``
        is given; ``None`` for an empty text (no curve: the loudness controller is not used).
    """
    text = (text or "").strip()
    if not text:
        return None
    times, levels = [], []
    for item in re.split(r"[,;\n]+", text):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            time = float(parts[0].strip().removesuffix("s"))
            level = float(parts[1].strip().removesuffix("dB").removesuffix("db").strip())
        except ValueError:
            raise ValueError(
                f"Loudness points: `{item}` is not `seconds:dB`. Write e.g. `0:-40, 1.5:-10` "
                "(times in seconds, levels in dBFS: 0 is full scale, -20 moderate, -60 faint)."
            ) from None
        times.append(time)
        levels.append(level)
    order = np.argsort(times, kind="stable")
    points = np.asarray(times, dtype=np.float64)[order], np.asarray(levels, dtype=np.float64)[order]
    if duration is None:
        return points
    return _checked_points(points[0], points[1], duration, "Loudness points")


def format_loudness_points(points: LoudnessPoints) -> str:
    """``(times, levels)`` as the text :func:`parse_loudness_points` reads (0.01 s, 0.1 dB)."""
    return ", ".join(f"{t:.2f}:{level:.1f}" for t, level in zip(*points))


def simplify_curve(
    curve: np.ndarray, timeline: Timeline, tolerance_db: float = 2.0, max_points: int = 40
) -> LoudnessPoints:
    """Few points whose straight lines stay within ``tolerance_db`` of a per-column curve
    (Ramer-Douglas-Peucker in time and dB, a point added where the lines stray furthest), at most
    ``max_points``: a measured or predicted curve as a person can read and edit it.

    Returns:
        ``(times, levels)``: seconds of the column centres and their levels (dBFS).
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size == 0:
        raise ValueError("simplify_curve: the curve is empty.")
    chosen = {0, curve.size - 1}
    while len(chosen) < max_points:
        anchors = np.array(sorted(chosen))
        straight = np.interp(np.arange(curve.size), anchors, curve[anchors])
        error = np.abs(curve - straight)
        worst = int(np.argmax(error))
        if error[worst] <= tolerance_db:
            break
        chosen.add(worst)
    anchors = np.array(sorted(chosen))
    return (anchors + 0.5) / timeline.columns_per_second, curve[anchors]


def roughen_loudness(
    curve: np.ndarray,
    active_columns: int,
    rng: np.random.Generator,
    timeline: Timeline,
    *,
    max_smoothing_seconds: float = 0.25,
    max_jitter_seconds: float = 0.05,
    quantise_db: Sequence[float] = (0.0, 3.0, 6.0),
    max_points: int = 12,
) -> np.ndarray:
    """A rough, hand-drawn-like version of a measured curve, for training the loudness controller.

    A person draws few points, slightly off in time and level. Each call draws, from ``rng``: a
    moving-average smoothing of up to ``max_smoothing_seconds``; a time shift of up to
    ``max_jitter_seconds``; a level step from ``quantise_db`` (0 = none); and, half of the time, a
    redrawing of the curve through 3 to ``max_points`` points placed at its extremes.

    Args:
        curve: ``(window_columns,)`` dBFS from :func:`audio_loudness` (padded with the floor).
        active_columns: columns covered by the clip; the rest stays at the floor.

    Returns:
        float32 ``(window_columns,)`` dBFS.
    """
    curve = np.asarray(curve, dtype=np.float64).copy()
    active = curve[:active_columns]
    width = int(rng.integers(1, max(2, round(max_smoothing_seconds * timeline.columns_per_second)) + 1))
    if width > 1 and active.size:
        padded = np.pad(active, (width // 2, width - 1 - width // 2), mode="edge")
        active = np.convolve(padded, np.ones(width) / width, mode="valid")
    shift = int(
        rng.integers(-1, 2) * rng.integers(0, round(max_jitter_seconds * timeline.columns_per_second) + 1)
    )
    if shift and active.size:
        active = np.roll(active, shift)
        if shift > 0:
            active[:shift] = active[shift]
        else:
            active[shift:] = active[shift - 1]
    if rng.random() < 0.5 and active.size > 2:
        count = int(rng.integers(3, max_points + 1))
        # Points where a person would put them: the curve's turning points, plus both ends.
        turning = np.flatnonzero(np.diff(np.sign(np.diff(active))) != 0) + 1
        picks = rng.choice(turning, size=min(turning.size, count - 2), replace=False) if turning.size else []
        anchors = np.unique(np.concatenate([[0, active.size - 1], np.asarray(picks, dtype=np.int64)]))
        active = np.interp(np.arange(active.size), anchors, active[anchors])
    step = float(rng.choice(np.asarray(quantise_db, dtype=np.float64)))
    if step > 0:
        active = np.round(active / step) * step
    curve[:active_columns] = np.clip(active, LOUDNESS_FLOOR_DB, 0.0)
    return curve.astype(np.float32)


def loudness_to_condition(curves: np.ndarray | torch.Tensor, n_mels: int) -> torch.Tensor:
    """(B, columns) curves in dBFS -> a controller's condition image (B, 1, n_mels, columns) in [-1, 1].

    The floor maps to -1 and full scale to +1, so silence looks like a timestamp mask's "off".
    """
    curves = torch.as_tensor(np.asarray(curves), dtype=torch.float32)
    if curves.ndim == 1:
        curves = curves[None]
    scaled = 1 + 2 * curves.clamp(LOUDNESS_FLOOR_DB, 0.0) / -LOUDNESS_FLOOR_DB
    return scaled[:, None, None, :].expand(-1, 1, n_mels, -1).contiguous()


def new_loudness_controller(unet, generator: torch.Generator, **architecture):
    """A fresh loudness controller: a copy of ``unet``'s encoder (without its semantic adapter) with a
    one-channel condition embedder, initialised so that curves reach its last block
    (:func:`~foleycrafter.temporal.initialize_condition_embedding`); its outputs start at zero, so
    the model is unchanged until it learns. ``architecture`` goes to ``ControlNetModel.from_unet``."""
    from .semantic import detached_semantic_adapter
    from .temporal import controller_from_unet, initialize_condition_embedding

    with torch.no_grad(), detached_semantic_adapter(unet):
        controller = controller_from_unet(unet, **architecture)
    initialize_condition_embedding(controller, generator)
    return controller


def loudness_error_db(generated: np.ndarray, target: np.ndarray, floor_db: float = -60.0) -> float:
    """Mean absolute difference (dB) between two curves over the columns where either is above
    ``floor_db`` (below it both are inaudible under the background, so level differences there mean
    nothing). ``nan`` when no column is."""
    generated, target = np.asarray(generated, dtype=np.float64), np.asarray(target, dtype=np.float64)
    length = min(generated.size, target.size)
    generated, target = generated[:length], target[:length]
    audible = (generated > floor_db) | (target > floor_db)
    if not audible.any():
        return math.nan
    return float(np.abs(np.maximum(generated, floor_db) - np.maximum(target, floor_db))[audible].mean())
