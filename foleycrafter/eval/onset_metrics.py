"""Onset metrics: how well the onsets of generated audio line up with the ground truth.

All times are in seconds, tolerances too; reference = ground truth, estimated = onsets detected in
generated audio (by :func:`foleycrafter.audio_onsets.detect_audio_onsets`).

* :func:`match_onsets` -- one-to-one matching within a tolerance (optimal: the most pairs, then the
  smallest total ``|dt|``).
* :func:`onset_prf` -- precision, recall and F1 at a tolerance (the benchmark uses +-50 ms).
* :func:`onset_average_precision` -- average precision over detection strength (the benchmark
  uses +-100 ms).
* :func:`onset_count_accuracy` -- fraction of clips with exactly the right number of onsets.
* :func:`mean_timing_error_ms` -- mean ``|dt|`` of matched pairs, in milliseconds.
* :func:`evaluate_onsets` -- all of the above over a set of clips; built on :func:`match_clips`
  (each clip matched once) and :func:`pooled_onset_metrics` (F1 and AP pooled over any set of them).

Conventions for empty inputs: a ratio whose denominator is zero is 1 (nothing to get wrong): with no
reference onsets recall is 1, with no estimated onsets precision is 1; so no reference and no
estimate gives P = R = F1 = 1, while a clip with only one of the two gives F1 = 0.

Tolerances are inclusive, ``|dt| <= tolerance``, with 1 ns of slack so that float rounding (1.05 -
1.0 = 0.05000000000000004) does not decide a match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

DEFAULT_TOLERANCE = 0.05
DEFAULT_AP_TOLERANCE = 0.1

_SLACK = 1e-9  # seconds


class PRF(NamedTuple):
    """Precision, recall and F1, each in [0, 1]."""

    precision: float
    recall: float
    f1: float


def match_onsets(reference, estimated, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """Match reference to estimated onsets one-to-one, within ``tolerance`` seconds.

    The matching is optimal: it has the largest possible number of pairs with ``|dt| <=
    tolerance``, and among those the smallest total ``|dt|`` (a bipartite assignment solved with
    ``scipy.optimize.linear_sum_assignment``). Greedy nearest-first matching can pair fewer onsets:
    with reference [0.00, 0.07] and estimated [0.04, 0.11] at +-50 ms, greedy takes the closest
    pair (0.07, 0.04) first and leaves 0.00 and 0.11 unmatched; the optimum pairs (0.00, 0.04) and
    (0.07, 0.11).

    Args:
        reference: reference onset times (s), any order.
        estimated: estimated onset times (s), any order.
        tolerance: largest ``|dt|`` (s) of a pair.

    Returns:
        int array (pairs, 2) of (reference index, estimated index), sorted by reference index.
    """
    reference = _times(reference, "reference")
    estimated = _times(estimated, "estimated")
    tolerance = _tolerance(tolerance)
    if reference.size == 0 or estimated.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    distance = np.abs(reference[:, None] - estimated[None, :])
    allowed = distance <= tolerance + _SLACK
    if not allowed.any():
        return np.zeros((0, 2), dtype=np.int64)
    # A pair out of tolerance costs more than all allowed pairs together, so the assignment first
    # avoids such pairs (maximising the number of matches) and then minimises the total |dt|.
    forbidden = tolerance * (min(reference.size, estimated.size) + 1) + 1.0
    rows, columns = linear_sum_assignment(np.where(allowed, distance, forbidden))
    keep = allowed[rows, columns]
    pairs = np.stack([rows[keep], columns[keep]], axis=1).astype(np.int64)
    return pairs[np.argsort(pairs[:, 0], kind="stable")]


def onset_prf(reference, estimated, tolerance: float = DEFAULT_TOLERANCE) -> PRF:
    """Precision, recall and F1 of estimated onsets against reference onsets.

    A true positive is a pair of :func:`match_onsets`; precision = TP / estimated, recall =
    TP / reference, F1 their harmonic mean. Empty cases: see the module docstring (no reference
    and no estimate -> (1, 1, 1)).

    Args:
        reference: reference onset times (s).
        estimated: estimated onset times (s).
        tolerance: largest ``|dt|`` (s) of a match; the benchmark uses 0.05.
    """
    true_positives = len(match_onsets(reference, estimated, tolerance))
    return _prf(true_positives, _times(estimated, "estimated").size, _times(reference, "reference").size)


def onset_average_precision(
    reference, estimated_times, strengths, tolerance: float = DEFAULT_AP_TOLERANCE
) -> float:
    """Average precision of estimated onsets ranked by detection strength.

    Estimates are taken in order of decreasing strength; each is a true positive if a reference
    onset not yet matched lies within ``tolerance`` (the nearest such is taken), otherwise a false
    positive. With precision ``P_k`` and recall ``R_k`` after the k-th threshold,
    ``AP = sum_k (R_k - R_{k-1}) * P_k`` -- the step-wise area under the precision-recall curve,
    as ``sklearn.metrics.average_precision_score`` computes it (no interpolation). Estimates with
    equal strength form one threshold, as in sklearn.

    Assumptions (this is the onset AP of CondFoleyGen / FoleyCrafter in spirit; their script differs
    in details): recall is relative to *all* reference onsets, so a reference that no estimate
    matches is never retrieved and caps the reachable recall (their script appends missed references
    with score 0, which lets the lowest threshold reach recall 1); and a single tolerance is used
    for matching.

    Empty cases: no reference and no estimate -> 1.0; no reference but some estimates, or
    references but no estimate -> 0.0.

    Args:
        reference: reference onset times (s).
        estimated_times: estimated onset times (s).
        strengths: one detection strength per estimate (larger = more confident).
        tolerance: largest ``|dt|`` (s) of a match; the benchmark uses 0.1.
    """
    reference = _times(reference, "reference")
    hits, strengths = _ranked_hits(reference, estimated_times, strengths, _tolerance(tolerance))
    return _average_precision(strengths, hits, reference.size)


def onset_count_accuracy(reference_counts, estimated_counts) -> float:
    """Fraction of clips whose estimated number of onsets equals the reference number.

    Args:
        reference_counts: onsets per clip in the ground truth (non-negative integers).
        estimated_counts: onsets per clip detected, same length.
    """
    reference_counts = _counts(reference_counts, "reference_counts")
    estimated_counts = _counts(estimated_counts, "estimated_counts")
    if reference_counts.size != estimated_counts.size:
        raise ValueError(
            f"reference_counts has {reference_counts.size} clips but estimated_counts has "
            f"{estimated_counts.size}."
        )
    if reference_counts.size == 0:
        raise ValueError("count accuracy needs at least one clip.")
    return float(np.mean(reference_counts == estimated_counts))


def mean_timing_error_ms(reference, estimated, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """Mean ``|dt|`` in milliseconds over the pairs of :func:`match_onsets`; NaN if none match."""
    reference = _times(reference, "reference")
    estimated = _times(estimated, "estimated")
    pairs = match_onsets(reference, estimated, tolerance)
    if len(pairs) == 0:
        return float("nan")
    return float(np.mean(np.abs(reference[pairs[:, 0]] - estimated[pairs[:, 1]])) * 1000.0)


class ClipMatches(NamedTuple):
    """One clip's onsets matched against its references; metrics over any set of clips pool these
    (so a bootstrap over clips matches each clip once, see :func:`pooled_onset_metrics`)."""

    num_reference: int
    num_estimated: int
    #: one-to-one matches within the F1 tolerance, and their ``|dt|`` (s)
    true_positives: int
    errors: np.ndarray
    #: the estimates in order of decreasing strength: matched within the AP tolerance, and strength
    hits: np.ndarray
    strengths: np.ndarray


def match_clips(
    clips: Sequence, tolerance: float = DEFAULT_TOLERANCE, ap_tolerance: float = DEFAULT_AP_TOLERANCE
) -> list[ClipMatches]:
    """Match each clip's estimates to its references (``clips`` as in :func:`evaluate_onsets`)."""
    tolerance = _tolerance(tolerance)
    ap_tolerance = _tolerance(ap_tolerance)
    matches = []
    for index, clip in enumerate(clips):
        reference, estimated, strengths = _unpack_clip(clip, index)
        pairs = match_onsets(reference, estimated, tolerance)
        hits, ranked_strengths = _ranked_hits(reference, estimated, strengths, ap_tolerance)
        matches.append(
            ClipMatches(
                num_reference=int(reference.size),
                num_estimated=int(estimated.size),
                true_positives=len(pairs),
                errors=np.abs(reference[pairs[:, 0]] - estimated[pairs[:, 1]]),
                hits=hits,
                strengths=ranked_strengths,
            )
        )
    return matches


def pooled_onset_metrics(matches: Sequence[ClipMatches]) -> dict:
    """Precision, recall and F1 micro-averaged over the clips (TP, FP and FN summed first), and
    the average precision of all their estimates ranked together by strength."""
    true_positives = sum(m.true_positives for m in matches)
    num_reference = sum(m.num_reference for m in matches)
    num_estimated = sum(m.num_estimated for m in matches)
    precision, recall, f1 = _prf(true_positives, num_estimated, num_reference)
    average_precision = _average_precision(
        np.concatenate([m.strengths for m in matches]) if matches else np.zeros(0),
        np.concatenate([m.hits for m in matches]) if matches else np.zeros(0, dtype=bool),
        num_reference,
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "average_precision": average_precision,
        "num_reference": int(num_reference),
        "num_estimated": int(num_estimated),
        "true_positives": int(true_positives),
    }


def evaluate_onsets(
    clips: Sequence, tolerance: float = DEFAULT_TOLERANCE, ap_tolerance: float = DEFAULT_AP_TOLERANCE
) -> dict:
    """All onset metrics over a set of clips.

    Args:
        clips: one entry per clip, ``(reference_times, estimated_times, strengths)``; strengths may
            be omitted or ``None`` (all estimates then rank equally), and the estimate may instead
            be an :class:`~foleycrafter.audio_onsets.AudioOnsets` (its ``times`` and ``strengths``).
        tolerance: match tolerance (s) for precision, recall, F1 and timing error.
        ap_tolerance: match tolerance (s) for average precision.

    Returns:
        A JSON-ready dict:

        * ``precision``, ``recall``, ``f1`` -- micro-averaged: TP, FP and FN summed over clips first.
        * ``average_precision`` -- over the estimates of all clips ranked together by strength (each
          clip's estimates matched against that clip's references), recall relative to all
          references; ``average_precision_clip_mean`` -- the per-clip AP averaged over clips, as the
          released evaluation script reports it.
        * ``count_accuracy`` -- fraction of clips with the exact number of onsets.
        * ``mean_timing_error_ms`` -- mean ``|dt|`` over all matched pairs (``None`` if none).
        * ``num_clips``, ``num_reference``, ``num_estimated``, ``true_positives``,
          ``false_positives``, ``false_negatives``, ``tolerance_s``, ``ap_tolerance_s``.
    """
    if len(clips) == 0:
        raise ValueError("evaluate_onsets needs at least one clip.")
    matches = match_clips(clips, tolerance, ap_tolerance)
    pooled = pooled_onset_metrics(matches)
    errors = np.concatenate([m.errors for m in matches])
    return {
        "precision": pooled["precision"],
        "recall": pooled["recall"],
        "f1": pooled["f1"],
        "average_precision": pooled["average_precision"],
        "average_precision_clip_mean": float(
            np.mean([_average_precision(m.strengths, m.hits, m.num_reference) for m in matches])
        ),
        "count_accuracy": onset_count_accuracy(
            [m.num_reference for m in matches], [m.num_estimated for m in matches]
        ),
        "mean_timing_error_ms": float(errors.mean() * 1000.0) if errors.size else None,
        "num_clips": len(clips),
        "num_reference": pooled["num_reference"],
        "num_estimated": pooled["num_estimated"],
        "true_positives": pooled["true_positives"],
        "false_positives": pooled["num_estimated"] - pooled["true_positives"],
        "false_negatives": pooled["num_reference"] - pooled["true_positives"],
        "tolerance_s": _tolerance(tolerance),
        "ap_tolerance_s": _tolerance(ap_tolerance),
    }


# -- internals -----------------------------------------------------------------------------------


def _times(values, name: str, what: str = "onset times in seconds") -> np.ndarray:
    """float64 (N,) of finite values (times in seconds unless ``what`` says otherwise)."""
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values if values is not None else [], dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of {what}, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain finite {what}, got {array.tolist()}.")
    return array


def _tolerance(tolerance: float) -> float:
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number of seconds, got {tolerance}.")
    return float(tolerance)


def _counts(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.all((array >= 0) & (array == np.round(array)))):
        raise ValueError(f"{name} must be a 1-D sequence of non-negative integer counts, got {values!r}.")
    return array.astype(np.int64)


def _unpack_clip(clip, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(reference, estimated, strengths or None) of one entry of ``evaluate_onsets(clips)``."""
    if not isinstance(clip, (tuple, list)) or len(clip) not in (2, 3):
        raise ValueError(
            f"clip {index} must be (reference_times, estimated_times[, strengths]), got {type(clip).__name__}."
        )
    reference, estimated = clip[0], clip[1]
    strengths = clip[2] if len(clip) == 3 else None
    if hasattr(estimated, "times") and hasattr(estimated, "strengths"):  # an AudioOnsets result
        estimated, strengths = estimated.times, estimated.strengths if strengths is None else strengths
    return (
        _times(reference, f"clip {index} reference"),
        _times(estimated, f"clip {index} estimated"),
        strengths,
    )


def _ratio(numerator: int, denominator: int) -> float:
    # 0 / 0 means there was nothing to get wrong (see the module docstring).
    return numerator / denominator if denominator else 1.0


def _prf(true_positives: int, num_estimated: int, num_reference: int) -> PRF:
    precision = _ratio(true_positives, num_estimated)
    recall = _ratio(true_positives, num_reference)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return PRF(float(precision), float(recall), float(f1))


def _ranked_hits(
    reference: np.ndarray, estimated, strengths, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each estimate, in order of decreasing strength: (is a true positive, its strength)."""
    estimated = _times(estimated, "estimated_times")
    if strengths is None:
        strengths = np.ones(estimated.size)
    strengths = _times(strengths, "strengths", "detection strengths")
    if strengths.size != estimated.size:
        raise ValueError(
            f"strengths must have one value per estimated onset: {strengths.size} strengths for "
            f"{estimated.size} onsets."
        )
    order = np.argsort(-strengths, kind="stable")
    free = np.ones(reference.size, dtype=bool)
    hits = np.zeros(estimated.size, dtype=bool)
    for rank, index in enumerate(order):
        distance = np.where(free, np.abs(reference - estimated[index]), np.inf)
        if distance.size and distance.min() <= tolerance + _SLACK:
            free[int(np.argmin(distance))] = False
            hits[rank] = True
    return hits, strengths[order]


def _average_precision(strengths: np.ndarray, hits: np.ndarray, num_reference: int) -> float:
    """sum_k (R_k - R_{k-1}) P_k over distinct strength thresholds (see onset_average_precision)."""
    if num_reference == 0:
        return 1.0 if strengths.size == 0 else 0.0
    if strengths.size == 0:
        return 0.0
    order = np.argsort(-strengths, kind="stable")
    strengths, hits = strengths[order], hits[order]
    true_positives = np.cumsum(hits)
    # One point per distinct threshold: the last estimate of each run of equal strengths.
    last = np.flatnonzero(np.append(strengths[1:] != strengths[:-1], True))
    precision = true_positives[last] / (last + 1)
    recall = true_positives[last] / num_reference
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))
