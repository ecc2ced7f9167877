"""Motion: when objects touch their surface, as functions of continuous time (seconds)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# ---------------------------------------------------------------------------------------------------
# Motion: heights above the contact surface as functions of continuous time.

CONTACT_DWELL = 0.07  # seconds an object stays in contact (>= one frame period at 15 fps)


def contact_height(
    t: float,
    onsets: Sequence[float],
    *,
    dwell: float,
    fall: float,
    rest: float | None = 1.0,
    strengths: Sequence[float] | None = None,
) -> float:
    """Height (0 = touching) at time ``t`` (s) of an object that strikes at each onset.

    The object touches the surface from each onset for ``dwell`` seconds. Between contacts it moves
    under constant gravity ``k = 1 / fall**2`` (height units per s^2, halved): with ``rest`` set, it
    rises to ``rest``, holds, and falls from ``rest`` in ``fall`` seconds (a short gap gives a lower
    arc); with ``rest=None`` it flies in free ballistic arcs between contacts (a bouncing ball).
    Falls end at full speed exactly at the onset, so no frame before an onset shows contact.
    With ``strengths`` (one factor per onset), the whole way towards onset ``i`` is scaled by
    ``strengths[i]`` (after the last onset, by the last factor): a harder strike comes from higher,
    in the same time, so it also lands faster.
    """
    k = 1.0 / (fall * fall)
    i = int(np.searchsorted(onsets, t, side="right")) - 1
    if i >= 0 and t < onsets[i] + dwell:
        return 0.0
    if strengths is not None:
        scale = float(strengths[min(i + 1, len(onsets) - 1)])
        return scale * contact_height(t, onsets, dwell=dwell, fall=fall, rest=rest)
    a = t - (onsets[i] + dwell) if i >= 0 else math.inf  # since the last contact
    b = onsets[i + 1] - t if i + 1 < len(onsets) else math.inf  # until the next contact
    if rest is None:
        return k * a * b if math.isfinite(a * b) else math.inf
    if a + b < 2 * fall:
        return k * a * b * rest
    up = rest - k * rest * (fall - a) ** 2 if a < fall else rest
    down = rest - k * rest * (fall - b) ** 2 if b < fall else rest
    return min(up, down)


def swing_height(
    t: float, onsets: Sequence[float], *, swing: float, lift: float, strengths: Sequence[float] | None = None
) -> float:
    """Height of a foot planted between steps: before each onset it lifts off (at most ``swing`` s
    early, less if its previous step was recent) on a parabola of peak ``lift`` and lands at the onset.
    With ``strengths``, the lift before onset ``i`` is scaled by ``strengths[i]`` (a harder step)."""
    j = int(np.searchsorted(onsets, t, side="left"))  # next onset at or after t
    if j >= len(onsets):
        return 0.0
    previous = onsets[j - 1] if j > 0 else -math.inf
    span = min(swing, onsets[j] - previous - 0.06)
    b = onsets[j] - t
    if b <= 0 or b >= span:
        return 0.0
    if strengths is not None:
        lift = lift * float(strengths[j])
    return 4 * lift * min(1.0, span / swing) * (b / span) * (1 - b / span)
