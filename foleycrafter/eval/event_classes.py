"""Event class accuracy: is each ground-truth event heard as its own class?

The clip-level semantic accuracy asks one question of a whole clip; a clip in which several objects
act in turn (SynthFoley's ``--layout sequence``) needs one per event. Its record lists every event
with its class (``events``: ``[{"time", "class_name", "class_index"}, ...]``); for each, the audio
classifier (:class:`~foleycrafter.eval.classifier.AudioClassifier`) classifies a stretch of the
generated audio around the event's time (:func:`event_windows`), and the clip's *event class
accuracy* is the fraction of its events classified as their class. A clip without ``events`` has
no value (``None``): it is left out of the mean over clips, never counted as 0.

The stretch (:func:`event_windows`) runs from :data:`PRE_ROLL_SECONDS` (50 ms, the onset F1's
tolerance) before the event to the earliest of :data:`SPAN_SECONDS` (0.5 s) after it and the same
pre-roll before the next event (of any class), so the stretches of a clip never overlap:

* starting a little early keeps an event generated up to the onset tolerance early whole (its
  attack carries most of what tells the classes apart), at the cost of 50 ms of the previous
  event's tail at most;
* ending before the next event keeps that event (perhaps of another class) out;
* 0.5 s holds the attack and the first ring or bounce of every class; longer stretches add more of a
  long ring (a glass, a plate), and the classifier pools mean and max over time either way;
* a stretch is at least :data:`~foleycrafter.eval.classifier.MIN_SAMPLES` (0.2 s, the classifier's
  shortest input, which it would otherwise zero-pad) when the audio allows: SynthFoley's events are
  at least 0.25 s apart, so this only lengthens stretches near the end of audio, by moving the start
  back.

On the ground-truth audio of 32 validation sequence clips (seed 5) the bundled classifier hears 181
of their 182 events as their class with these stretches (without the pre-roll: 178; with it, any
span from 0.3 to 1 s gave 181), where a whole-clip verdict matches the first object in only half of
them; ``tests/test_eval_event_classes.py`` checks a few clips. The ceiling a generation is measured
against is near 1, and ``foleycrafter eval`` reports it in its ground-truth row.

Units: times in seconds, windows in samples at the classifier's sample rate (16 kHz).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .classifier import MIN_SAMPLES, SAMPLE_RATE

#: How long before an event its stretch of audio starts (s): the onset F1's tolerance.
PRE_ROLL_SECONDS = 0.05
#: Longest stretch after an event (s).
SPAN_SECONDS = 0.5


def event_windows(
    times: Sequence[float],
    num_samples: int,
    sample_rate: int = SAMPLE_RATE,
    pre_roll: float = PRE_ROLL_SECONDS,
    span: float = SPAN_SECONDS,
    min_samples: int = MIN_SAMPLES,
) -> list[tuple[int, int]]:
    """The stretch of audio classified for each event (see the module docstring).

    Args:
        times: event times in seconds, sorted (ties allowed).
        num_samples: length of the audio in samples.
        sample_rate: samples per second of the audio.
        pre_roll: seconds before each event that its stretch starts (>= 0).
        span: longest stretch after an event, seconds (> 0).
        min_samples: shortest stretch in samples, when the audio is that long.

    Returns:
        One ``(start, stop)`` sample range per event (``audio[start:stop]``, ``stop > start``), in
        the order of ``times``.

    Raises:
        ValueError: ``times`` not sorted or not finite, or an event at or after the audio's end.
    """
    values = np.asarray(times, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError(f"event times must be a 1-D sequence of finite seconds, got {times!r}.")
    if np.any(np.diff(values) < 0):
        raise ValueError(f"event times must be sorted, got {times!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples!r}.")
    if not (pre_roll >= 0 and span > 0):
        raise ValueError(f"pre_roll must be >= 0 and span > 0 seconds, got {pre_roll!r} and {span!r}.")
    onsets = [round(t * sample_rate) for t in values]
    back, ahead = round(pre_roll * sample_rate), round(span * sample_rate)
    windows = []
    for number, onset in enumerate(onsets):
        if not 0 <= onset < num_samples:
            raise ValueError(
                f"event {number} at {values[number]:.3f} s lies outside the audio "
                f"({num_samples} samples = {num_samples / sample_rate:.3f} s)."
            )
        # The next event at a later sample ends the stretch; one at the same sample is the same sound.
        later = [o for o in onsets[number + 1 :] if o > onset]
        stop = min(onset + ahead, num_samples, later[0] - back if later else math.inf)
        start = max(0, onset - back)
        stop = max(stop, onset + 1)
        if stop - start < min_samples:
            stop = min(num_samples, start + min_samples)
            start = max(0, stop - min_samples)
        windows.append((int(start), int(stop)))
    return windows


def clip_event_classes(classifier, audio: np.ndarray, events: Sequence[Mapping]) -> dict:
    """The classifier's verdict on each event of one clip.

    Args:
        classifier: anything with ``predict(list of 1-D waveforms) -> (N,) class indices`` and
            ``class_names`` (an :class:`~foleycrafter.eval.classifier.AudioClassifier`), at 16 kHz.
        audio: the clip's audio, 1-D float at 16 kHz.
        events: the record's ``events``: dicts with ``time`` (s) and ``class_index``, sorted by time.

    Returns:
        ``{"event_class_accuracy": fraction right, "event_predicted_classes": [name per event]}``;
        accuracy ``None`` for no events.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D samples, got shape {audio.shape}.")
    if not events:
        return {"event_class_accuracy": None, "event_predicted_classes": []}
    windows = event_windows([float(e["time"]) for e in events], audio.size)
    predicted = np.asarray(classifier.predict([audio[a:b] for a, b in windows]), dtype=np.int64)
    truth = np.array([int(e["class_index"]) for e in events])
    names = classifier.class_names
    return {
        "event_class_accuracy": float(np.mean(predicted == truth)),
        "event_predicted_classes": [names[int(p)] for p in predicted],
    }


def score_event_classes(classifier, rows: list[dict], audios: Sequence[np.ndarray], records) -> float | None:
    """Event class accuracy of every clip and over the clips that have events.

    Sets each row's ``event_class_accuracy`` (``None`` when its record has no ``events``) and, for
    clips with events, ``event_predicted_classes``.

    Args:
        classifier: as in :func:`clip_event_classes`.
        rows, audios, records: per-clip result rows, audio (1-D, 16 kHz) and ground-truth records,
            in the same order.

    Returns:
        The mean of the clips' values over the clips with events; ``None`` if no clip has any.
    """
    if not len(rows) == len(audios) == len(records):
        raise ValueError(f"got {len(rows)} rows, {len(audios)} audios and {len(records)} records.")
    values = []
    for row, audio, record in zip(rows, audios, records):
        events = record.get("events")
        if events is None:
            row["event_class_accuracy"] = None
            continue
        row.update(clip_event_classes(classifier, audio, events))
        if row["event_class_accuracy"] is not None:
            values.append(row["event_class_accuracy"])
    return float(np.mean(values)) if values else None
