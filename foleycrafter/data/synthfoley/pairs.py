"""Two-object clips: two different objects side by side, each with its own events, and a
soundtrack of only one of them (for region focus: which object should sound).

A two-object clip is an ordinary clip (the *heard* one, :func:`~.planning.plan_clip` of the same
``(seed, split, index)``) and a *silent partner* of another class with its own onsets, planned from
an independent stream at the same duration and frame rate. Each scene is rendered at the full frame
size, halved, and the two halves are set side by side on one frame (the rows above and below them
are filled with the heard scene's backdrop colour at its top-left pixel). Which side is heard is
drawn per clip. The record says which (``heard_side``), where (``region``: the heard half as a
box ``(x0, y0, x1, y1)`` in relative coordinates) and what the partner is (``partner_class_name``,
``partner_onsets``).
"""

from __future__ import annotations

import cv2
import numpy as np

from .classes import CLASSES
from .painting import render_frames
from .planning import _NAMESPACE, DEFAULT_SIZE, GENERATOR_VERSION, _split_code, _streams, plan_clip
from .writing import generate_clip

#: Partners are planned as if at this index offset: their streams never meet an ordinary clip's.
PARTNER_OFFSET = 10**9


def plan_two_object_clip(
    seed: int, index: int, split: str = "train", size: int = DEFAULT_SIZE, version: int = GENERATOR_VERSION
) -> dict:
    """The record of a two-object clip (cheap; nothing rendered): the heard clip's record plus
    ``layout`` (``"two_objects"``), ``heard_side`` (``"left"`` / ``"right"``), ``region`` (the heard
    object's square, relative box ``(x0, y0, x1, y1)``), ``partner_class_name``,
    ``partner_class_index`` and ``partner_onsets`` (s)."""
    return _plan_pair(seed, index, split, size, version)[0]


def _plan_pair(seed, index, split, size, version) -> tuple[dict, dict]:
    if int(size) != size or size < 16 or size % 4:
        raise ValueError(f"a two-object clip's size must be a multiple of 4 pixels >= 16, got {size!r}")
    heard = plan_clip(seed, index, split, size, version=version)
    rng = np.random.default_rng(
        np.random.SeedSequence([_NAMESPACE, 2, int(seed), _split_code(split), int(index)])
    )
    others = [c for c in range(len(CLASSES)) if c != heard["class_index"]]
    partner_class = int(others[int(rng.integers(len(others)))])
    partner = plan_clip(
        seed,
        index + PARTNER_OFFSET,
        split,
        size,
        class_index=partner_class,
        duration=heard["duration"],
        fps=heard["fps"],
        version=version,
    )
    side = "left" if rng.random() < 0.5 else "right"
    low, high = (size - size // 2) // 2 / size, ((size - size // 2) // 2 + size // 2) / size
    record = {
        **heard,
        "layout": "two_objects",
        "heard_side": side,
        "region": [0.0, low, 0.5, high] if side == "left" else [0.5, low, 1.0, high],
        "partner_class_name": partner["class_name"],
        "partner_class_index": partner["class_index"],
        "partner_onsets": partner["onsets"],
    }
    return record, partner


def generate_two_object_clip(
    seed: int, index: int, split: str = "train", size: int = DEFAULT_SIZE, version: int = GENERATOR_VERSION
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(frames, audio, record)`` of a two-object clip: frames uint8 ``(T, size, size, 3)`` with the
    heard object's half on ``record["heard_side"]``; audio (16 kHz float32) of the heard object only."""
    record, partner = _plan_pair(seed, index, split, size, version)
    heard_frames, audio, _ = generate_clip(seed, index, split, size, version=version)
    partner_frames = render_frames(partner, _streams(seed, index + PARTNER_OFFSET, split)[2])
    half = size // 2
    top = (size - half) // 2
    frames = np.empty_like(heard_frames)
    frames[:] = heard_frames[:, :1, :1]  # the heard scene's backdrop above and below the halves
    halves = (
        (heard_frames, partner_frames) if record["heard_side"] == "left" else (partner_frames, heard_frames)
    )
    for column, scene in zip((0, half), halves):
        for k in range(len(frames)):
            frames[k, top : top + half, column : column + half] = cv2.resize(
                scene[k], (half, half), interpolation=cv2.INTER_AREA
            )
    return frames, audio, record
