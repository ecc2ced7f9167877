"""SynthFoley: a procedural, deterministic synchronized audio-video dataset.

Every clip shows one sound class -- an object that repeatedly makes physical contact with a surface
-- and its soundtrack has one sound event per contact. The ground truth (class, caption, onset times
in seconds) is exact by construction, so models trained on the data and metrics computed on it have
no labelling noise.

Design
------
*Contact, not markers.* The onset of every event is visible only as physical contact: a hammer head
swings down and lands on a plate, a ball falls and touches the floor, a foot comes down on gravel,
two hands meet, a stone reaches the water surface. There is no flash, colour change or marker at the
onset. A video model must therefore learn what real Foley models must learn -- *when does an object
hit something* -- rather than decode a trivial cue. Motion is a function of continuous time (falls
under constant gravity, so the object is fastest at the moment of contact), evaluated at each frame
time ``k / fps``; any frame rate works and the contact instant is the same at all of them. The object
stays in contact for a short *dwell* of at least 70 ms (one frame at 15 fps), so every event has at
least one frame showing contact: the first frame at or after the onset. No frame before the onset
shows contact.

*Physically motivated sound.* Struck solids ring with a few inharmonic, exponentially decaying
normal modes (modal synthesis): a metal plate has many bright partials that ring for about a
second, a wood block a few heavily damped ones, a glass sparse high doublet modes (slow beating) that
ring for seconds, a drum membrane the Bessel-zero modes 1, 1.59, 2.14, 2.30, 2.65, ... with a
downward pitch glide (tension modulation right after the hit). Granular or turbulent sounds are
shaped, band-passed noise: footsteps on gravel are clusters of tiny grain clicks (heel then toe),
claps are short bright bursts, a bouncing ball is a low thump plus a short click, a stone in water is
a splash burst followed by bubbles whose pitch glides upward. Every event draws its own pitch,
decay and loudness (around a per-clip level), so no two events are identical, and every clip has
low background noise. All filters are causal, so no energy precedes an onset. Each event is one
audible onset: the parts of compound sounds (heel and toe, splash and bubbles) follow within ~80 ms,
so an onset detector sees one event per ground-truth onset rather than several.

*Dynamics (version 2).* Each event has a planned peak level between -36 and -6 dBFS
(``event_levels_db``): independent levels in half of the clips, a straight swell (``crescendo``) or
fade (``decrescendo``) over the events in the others. The picture shows it: a harder strike swings,
lifts or drops from proportionally higher in the same time, so it also lands faster; a louder stone
is bigger and throws its droplets further. Background noise sits at -74 to -62 dBFS, so the
softest events stay well above it. Version 1 clips (one level per clip, +-4 dB per event, and every
strike alike) are still generated exactly with ``version=1``.

*Determinism.* A clip depends only on ``(seed, split, index, version)`` (plus the frame size for the
pictures): the generator derives independent ``numpy.random.default_rng`` streams for the clip plan
(class, fps, duration, onsets, caption), the audio and the video from
``numpy.random.SeedSequence`` (version 2 adds a fourth, for the event levels). The audio and the
onsets do not depend on the frame size. Splits use
disjoint derived seeds; classes are balanced by assigning each block of ``len(CLASSES)``
consecutive indices a deterministic permutation of the classes.

Units: times in seconds, frame counts in frames, audio lengths in samples at :data:`SAMPLE_RATE`
(16 kHz mono, float32 in [-1, 1]). Frames are RGB ``uint8`` arrays ``(T, H, W, 3)``.

Files (:func:`generate_dataset`): ``<out>/<split>/<id>.mp4`` (H.264 yuv420p + AAC 16 kHz mono),
``<id>.wav`` (the exact ground-truth audio, PCM16; AAC is lossy) and ``metadata.jsonl`` (one record
per line, see :func:`plan_clip`). Command line::

    python -m foleycrafter.data.synthfoley OUT --split test --num-clips 200 --seed 0 [--version 1]

Modules (everything public is re-exported here, so ``from foleycrafter.data.synthfoley import X``
works for all of them):

* :mod:`.classes` -- the class table (:class:`SoundClass`, :data:`CLASSES`, :data:`CLASS_NAMES`).
* :mod:`.planning` -- dataset constants, seeds and clip plans (:func:`plan_clip`: class, fps,
  duration, onsets, caption).
* :mod:`.synthesis` -- the per-class sound synthesisers and :func:`synthesize_audio`.
* :mod:`.motion` -- heights above the contact surface as functions of time (:func:`contact_height`,
  :func:`swing_height`, :data:`CONTACT_DWELL`).
* :mod:`.painting` -- the per-class scenes and :func:`render_frames`.
* :mod:`.pairs` -- two-object clips: two objects side by side, one heard (:func:`generate_two_object_clip`).
* :mod:`.sequences` -- sequence clips: two or three objects in turn, each heard in its own segment
  (:func:`generate_sequence_clip`; records with ``segments`` and per-event classes, ``events``).
* :mod:`.writing` -- :func:`generate_clip`, the files (:func:`write_wav`, :func:`write_mp4`,
  :func:`generate_dataset`, :func:`read_metadata`).
* :mod:`.cli` -- the command line (:func:`main`); ``__main__`` runs it.
"""

from .classes import CLASS_NAMES, CLASSES, SoundClass
from .cli import main
from .motion import CONTACT_DWELL, contact_height, swing_height
from .painting import render_frames
from .pairs import generate_two_object_clip, plan_two_object_clip
from .planning import (
    DEFAULT_SIZE,
    DYNAMICS,
    EVENT_LEVEL_RANGE,
    FPS_CHOICES,
    GENERATOR_VERSION,
    GENERATOR_VERSIONS,
    HEAD_MARGIN,
    MAX_DURATION,
    MAX_EVENTS,
    MIN_DURATION,
    MIN_EVENTS,
    MIN_GAP,
    SAMPLE_RATE,
    SPLITS,
    TAIL_MARGIN,
    class_for_index,
    clip_id,
    event_strengths,
    plan_clip,
)
from .sequences import (
    MAX_SEGMENTS,
    MIN_SEGMENT_SECONDS,
    MIN_SEGMENTS,
    generate_sequence_clip,
    plan_sequence_clip,
    segment_weights,
)
from .synthesis import synthesize_audio
from .writing import LAYOUTS, generate_clip, generate_dataset, read_metadata, write_mp4, write_wav

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "CONTACT_DWELL",
    "DEFAULT_SIZE",
    "DYNAMICS",
    "EVENT_LEVEL_RANGE",
    "FPS_CHOICES",
    "GENERATOR_VERSION",
    "GENERATOR_VERSIONS",
    "LAYOUTS",
    "HEAD_MARGIN",
    "MAX_DURATION",
    "MAX_EVENTS",
    "MAX_SEGMENTS",
    "MIN_DURATION",
    "MIN_EVENTS",
    "MIN_GAP",
    "MIN_SEGMENTS",
    "MIN_SEGMENT_SECONDS",
    "SAMPLE_RATE",
    "SPLITS",
    "TAIL_MARGIN",
    "SoundClass",
    "class_for_index",
    "clip_id",
    "contact_height",
    "event_strengths",
    "generate_clip",
    "generate_dataset",
    "generate_sequence_clip",
    "generate_two_object_clip",
    "main",
    "plan_clip",
    "plan_sequence_clip",
    "plan_two_object_clip",
    "read_metadata",
    "render_frames",
    "segment_weights",
    "swing_height",
    "synthesize_audio",
    "write_mp4",
    "write_wav",
]
