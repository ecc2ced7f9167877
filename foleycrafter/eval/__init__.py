"""Evaluation of generated audio against ground truth.

Onset metrics live in :mod:`foleycrafter.eval.onset_metrics`; they are re-exported here.
"""

from .onset_metrics import (
    DEFAULT_AP_TOLERANCE,
    DEFAULT_TOLERANCE,
    PRF,
    evaluate_onsets,
    match_onsets,
    mean_timing_error_ms,
    onset_average_precision,
    onset_count_accuracy,
    onset_prf,
)

__all__ = [
    "DEFAULT_AP_TOLERANCE",
    "DEFAULT_TOLERANCE",
    "PRF",
    "evaluate_onsets",
    "match_onsets",
    "mean_timing_error_ms",
    "onset_average_precision",
    "onset_count_accuracy",
    "onset_prf",
]
