"""Evaluation of generated audio against ground truth.

Onset metrics live in :mod:`foleycrafter.eval.onset_metrics`; they are re-exported here.
"""

from .onset_metrics import (
    DEFAULT_AP_TOLERANCE,
    DEFAULT_TOLERANCE,
    PRF,
    ClipMatches,
    evaluate_onsets,
    match_clips,
    match_onsets,
    mean_timing_error_ms,
    onset_average_precision,
    onset_count_accuracy,
    onset_prf,
    pooled_onset_metrics,
)

__all__ = [
    "DEFAULT_AP_TOLERANCE",
    "DEFAULT_TOLERANCE",
    "PRF",
    "ClipMatches",
    "evaluate_onsets",
    "match_clips",
    "match_onsets",
    "mean_timing_error_ms",
    "onset_average_precision",
    "onset_count_accuracy",
    "onset_prf",
    "pooled_onset_metrics",
]

# The benchmark (evaluating in .running, reporting in .report, the command in .benchmark), the Fréchet
# distance and the audio classifier. The classifier (and the benchmark's pipeline) need torch and
# diffusers, so those names are imported on first use: `foleycrafter --help` and the onset metrics
# stay light.
from .frechet import frechet_audio_distance, frechet_distance  # noqa: E402

_LAZY = {
    "AudioClassifier": ".classifier",
    "load_classifier": ".classifier",
    "train_classifier": ".classifier",
    "CONFIGURATIONS": ".running",
    "Configuration": ".running",
    "evaluate_model": ".running",
    "format_table": ".report",
    "write_results": ".report",
}
__all__ += ["frechet_audio_distance", "frechet_distance", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
