"""Sequence clips: two or three different objects act in turn, each in its own stretch of the clip.

A sequence clip is cut into 2 or 3 consecutive *segments*, as an edited video cuts from one shot to
the next: each segment shows ONE object of its own class (every segment a different class) making
its own events, and the soundtrack is each segment's sound within that segment. The ground truth
therefore says, for every instant and every event, which class is seen and heard -- what
frame-aligned semantics (issue #18) are trained and measured on.

Planning (:func:`plan_sequence_clip`, cheap). The clip's frame rate, duration, size, id and first
class are those of the ordinary clip of the same ``(seed, split, index, version)``
(:func:`~.planning.plan_clip`), so classes stay balanced over a split. Everything else is drawn
from the clip's own streams (``SeedSequence([namespace, 3, seed, split, index])``, never used by
another layout): the number of segments (3 only if each can last :data:`MIN_SEGMENT_SECONDS`),
the cuts (on the frame grid, every segment at least :data:`MIN_SEGMENT_SECONDS` long), the other
classes (distinct), and per segment its caption, 1 to :data:`MAX_SEGMENT_EVENTS` onsets (on the
sample grid, :data:`~.planning.HEAD_MARGIN` after the segment's start, :data:`~.planning.TAIL_MARGIN`
before its end, :data:`~.planning.MIN_GAP` apart) and, from version 2 on, its dynamics and event
levels (from a child stream of their own, so versions 1 and 2 cut and time a clip alike).

Rendering (:func:`generate_sequence_clip`). Each segment is an ordinary clip record with that
segment's class and events at the clip's full duration, painted by :func:`~.painting.render_frames`
and voiced by :func:`~.synthesis.synthesize_audio` (each from its own stream); the frames of each
segment are cut from its own rendering, and the audio is the sum of the segments' soundtracks, each
weighted by its segment (crossfaded over :data:`CROSSFADE_SECONDS` at a cut). A ringing tail ends at
the cut with its picture, so no sound is heard whose object is not in view.

Records. The record of :func:`~.planning.plan_clip` with ``layout`` ``"sequence"``, ``onsets`` (all
events, sorted, s), ``num_events``, ``class_name`` / ``class_index`` of the first segment (readers of
one-class records keep working; the clip-level semantic accuracy scores the first object),
``caption`` (the segments' captions joined by ", then "), version 2's ``event_levels_db`` (every
event's, in onset order; no clip-level ``dynamics``: each segment has its own), and:

* ``segments``: ``[{"start", "end", "class_name", "class_index", "caption", "onsets"}, ...]`` in
  time order (seconds; ``end`` of one is ``start`` of the next, the first starts at 0 and the last
  ends at ``duration``; each boundary is a frame time), plus ``dynamics`` from version 2 on;
* ``events``: ``[{"time", "class_name", "class_index"}, ...]``, one per onset, sorted by time.

Generator version. No new version: a version fixes what a given ``(seed, split, index)`` produces,
and this layout changes nothing that versions 1 and 2 produce -- ordinary and two-object clips stay
byte-identical, and a sequence clip is new output told apart by its record's ``layout``, as
two-object clips were. Its ``generator_version`` (1 or 2) says how its segments sound and move. A new
version number would only be needed if an existing layout's output changed.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .classes import CLASSES
from .painting import render_frames
from .planning import (
    _NAMESPACE,
    DEFAULT_SIZE,
    GENERATOR_VERSION,
    MIN_EVENTS,
    SAMPLE_RATE,
    _draw_event_levels,
    _draw_onsets,
    _split_code,
    plan_clip,
)
from .synthesis import synthesize_audio

#: How many segments a sequence clip has, at least and at most.
MIN_SEGMENTS, MAX_SEGMENTS = 2, 3
#: Shortest segment (s): room for an event after HEAD_MARGIN and its first TAIL_MARGIN of sound,
#: with slack, and long enough for a classifier to hear it.
MIN_SEGMENT_SECONDS = 1.0
#: Most events in one segment (a 1 s segment holds 3 at MIN_GAP).
MAX_SEGMENT_EVENTS = 4
#: Length of the crossfade between two segments' soundtracks at a cut (s): long enough not to click,
#: far shorter than HEAD_MARGIN and TAIL_MARGIN, so no event's onset or first 0.3 s is touched.
CROSSFADE_SECONDS = 0.01
#: Joins the segments' captions into the clip's caption.
CAPTION_JOINER = ", then "

_LAYOUT_CODE = 3  # this layout's entry in the SeedSequence (0: clips, 1: classes, 2: partners)


def _sequence_streams(seed: int, index: int, split: str) -> tuple[np.random.Generator, ...]:
    """Plan, levels, then (audio, video) per possible segment: fixed in number, so the segments'
    streams do not depend on how many there are."""
    ss = np.random.SeedSequence([_NAMESPACE, _LAYOUT_CODE, int(seed), _split_code(split), int(index)])
    return tuple(np.random.default_rng(child) for child in ss.spawn(2 + 2 * MAX_SEGMENTS))


def _draw_cuts(rng: np.random.Generator, num_frames: int, rate: Fraction) -> list[int]:
    """Segment boundaries as frame numbers ``[0, ..., num_frames]``: 2 or 3 segments (3 only when
    each can last MIN_SEGMENT_SECONDS), each at least that long, at uniformly drawn places."""
    shortest = math.ceil(MIN_SEGMENT_SECONDS * rate - 1e-9)  # frames
    count = MIN_SEGMENTS + int(rng.integers(MAX_SEGMENTS - MIN_SEGMENTS + 1))
    room = num_frames // shortest  # segments that fit
    if room < MIN_SEGMENTS:  # never for plan_clip's durations (>= 2 s): a guard for changed constants
        raise ValueError(
            f"a sequence clip needs {MIN_SEGMENTS} segments of >= {MIN_SEGMENT_SECONDS} s; "
            f"{num_frames} frames at {rate} fps are too few"
        )
    count = min(count, room)
    free = num_frames - count * shortest
    picks = np.sort(rng.integers(0, free + 1, size=count - 1))
    return [0, *(int(p) + shortest * (k + 1) for k, p in enumerate(picks)), int(num_frames)]


def plan_sequence_clip(
    seed: int, index: int, split: str = "train", size: int = DEFAULT_SIZE, version: int = GENERATOR_VERSION
) -> dict:
    """The record of a sequence clip (cheap; nothing rendered): see the module docstring for the
    fields (``layout``, ``segments``, ``events``, all ``onsets``, ...). Times in seconds."""
    base = plan_clip(seed, index, split, size, version=version)
    rng, level_rng = _sequence_streams(seed, index, split)[:2]
    rate = Fraction(base["fps_fraction"])
    cuts = _draw_cuts(rng, base["num_frames"], rate)
    first = base["class_index"]
    others = [c for c in range(len(CLASSES)) if c != first]
    chosen = rng.choice(len(others), size=len(cuts) - 2, replace=False)
    classes = [first, *(int(others[int(i)]) for i in chosen)]

    segments, events, levels = [], [], []
    for number, cls in enumerate(classes):
        start, end = Fraction(cuts[number]) / rate, Fraction(cuts[number + 1]) / rate
        first_sample, last_sample = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        sound = CLASSES[cls]
        caption = sound.captions[int(rng.integers(len(sound.captions)))]
        count = int(rng.integers(MIN_EVENTS, MAX_SEGMENT_EVENTS + 1))
        # Drawn as a clip of the segment's length, then moved to the segment's first sample: on the
        # sample grid, HEAD_MARGIN after the cut and TAIL_MARGIN before the next one.
        local = _draw_onsets(
            np.random.default_rng(rng.integers(1 << 62)), (last_sample - first_sample) / SAMPLE_RATE, count
        )
        onsets = [(first_sample + round(t * SAMPLE_RATE)) / SAMPLE_RATE for t in local]
        segment = {
            "start": float(start),
            "end": float(end),
            "class_name": sound.name,
            "class_index": cls,
            "caption": caption,
            "onsets": onsets,
        }
        if version >= 2:
            segment["dynamics"], segment_levels = _draw_event_levels(level_rng, len(onsets))
            levels += segment_levels
        segments.append(segment)
        events += [{"time": t, "class_name": sound.name, "class_index": cls} for t in onsets]

    record = {
        **base,
        "layout": "sequence",
        "caption": CAPTION_JOINER.join(s["caption"] for s in segments),
        "onsets": [e["time"] for e in events],
        "num_events": len(events),
        "segments": segments,
        "events": events,
    }
    record.pop("dynamics", None)
    if version >= 2:
        record["event_levels_db"] = levels
    return record


def _segment_record(record: dict, number: int) -> dict:
    """Segment ``number`` as an ordinary clip record at the clip's full duration (what
    :func:`render_frames` and :func:`synthesize_audio` take): its class, events and levels."""
    segment = record["segments"][number]
    before = sum(len(s["onsets"]) for s in record["segments"][:number])
    part = {
        **record,
        "class_name": segment["class_name"],
        "class_index": segment["class_index"],
        "caption": segment["caption"],
        "onsets": segment["onsets"],
        "num_events": len(segment["onsets"]),
    }
    if "event_levels_db" in record:
        part["event_levels_db"] = record["event_levels_db"][before : before + len(segment["onsets"])]
    return part


def segment_weights(record: dict) -> np.ndarray:
    """How much of each segment's soundtrack is heard at each sample: float64
    ``(num_segments, num_samples)``, 1 inside a segment and 0 outside, with raised-cosine
    crossfades of :data:`CROSSFADE_SECONDS` centred on each cut (the rows sum to 1 everywhere)."""
    n = int(record["num_samples"])
    segments = record["segments"]
    weights = np.zeros((len(segments), n))
    half = round(CROSSFADE_SECONDS * SAMPLE_RATE / 2)
    edges = [round(s["start"] * SAMPLE_RATE) for s in segments] + [n]
    for number in range(len(segments)):
        weights[number, edges[number] : edges[number + 1]] = 1.0
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(2 * half) + 0.5) / (2 * half))  # rises 0 -> 1
    for number, cut in enumerate(edges[1:-1], start=1):
        low, high = max(cut - half, 0), min(cut + half, n)
        rising = ramp[low - (cut - half) : 2 * half - ((cut + half) - high)]
        weights[number - 1, low:high] = 1.0 - rising
        weights[number, low:high] = rising
    return weights


def generate_sequence_clip(
    seed: int, index: int, split: str = "train", size: int = DEFAULT_SIZE, version: int = GENERATOR_VERSION
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(frames, audio, record)`` of a sequence clip: frames uint8 ``(num_frames, size, size, 3)``,
    frame ``k`` at ``k / fps`` s showing the object of the segment holding that time; audio float32
    ``(num_samples,)`` at 16 kHz, each segment's object's events only, within its segment; record
    as in :func:`plan_sequence_clip`."""
    record = plan_sequence_clip(seed, index, split, size, version)
    streams = _sequence_streams(seed, index, split)[2:]
    rate = Fraction(record["fps_fraction"])
    frames = np.empty((record["num_frames"], size, size, 3), np.uint8)
    audio = np.zeros(record["num_samples"], np.float64)
    weights = segment_weights(record)
    for number, segment in enumerate(record["segments"]):
        audio_rng, video_rng = streams[2 * number], streams[2 * number + 1]
        part = _segment_record(record, number)
        sound = synthesize_audio(
            part["class_name"], part["onsets"], part["num_samples"], audio_rng, part.get("event_levels_db")
        )
        audio += weights[number] * sound
        first, last = round(Fraction(segment["start"]) * rate), round(Fraction(segment["end"]) * rate)
        # The scene is painted only up to its segment's last frame: later ones would be thrown away.
        frames[first:last] = render_frames({**part, "num_frames": last}, video_rng)[first:last]
    # Every segment's soundtrack peaks at <= 0.95 and the weights sum to 1, so the sum does too.
    return frames, audio.astype(np.float32), record
