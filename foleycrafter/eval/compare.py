"""Is one evaluation worse than another beyond noise? A paired bootstrap over clips.

Two ``foleycrafter eval`` results files of the same clips (the same split, clip ids and seeds, e.g.
one sampler against another) are compared configuration by configuration. For each metric the
difference ``candidate - baseline`` is recomputed on ``resamples`` bootstrap samples of the clips,
drawn with replacement and shared by both sides (paired, so a clip that is hard for both counts
for both). The 95 % interval of those differences says whether a change is noise:

* ``worse``: the whole interval lies below zero (the candidate loses beyond noise);
* ``better``: the whole interval lies above zero;
* ``within noise``: the interval contains zero.

A run limited with ``--max-clips N`` can be compared with a longer run of the same split: clip ``i``
is generated with seed ``seed + i`` whatever the limit, so the first ``N`` clips of both are the same
clips with the same seeds, and they are what is compared. Two files of one configuration each are
compared with each other even when the configurations' names differ (e.g. ``both_detected``
against ``both_detected_loudness``: the same clips with and without a loudness curve).

Metrics: onset F1 at +-50 ms and average precision at +-100 ms (micro-averaged over the resampled
clips, as the benchmark computes them), semantic accuracy, event class accuracy (the mean over the
resampled clips that have events, e.g. SynthFoley sequence clips; clips without events have no value
and are left out, and a metric no clip has is "not measured"), Align Acc and the loudness error in
dB (lower is better: its verdicts read the other way). The Fréchet distance is a statistic
of the whole set and is shown without an interval. Scores are recomputed from the rows' stored
onset times (rounded to 10 µs), so a match at the tolerance's edge can differ from the file's table.

Command line::

    foleycrafter eval --compare results/tiny_test/both_detected.json results/tiny_test_dpmpp12/both_detected.json
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .onset_metrics import match_clips, pooled_onset_metrics

#: Metrics with a bootstrap interval: (name in the results, what it is).
COMPARED_METRICS = (
    ("f1", "onset F1 @ 50 ms"),
    ("average_precision", "onset AP @ 100 ms"),
    ("semantic_accuracy", "semantic accuracy"),
    ("event_class_accuracy", "event class acc"),
    ("align_accuracy", "Align Acc"),
    ("loudness_error_db", "loudness error dB"),
)


#: Metrics where a smaller value is the better one (their verdicts flip).
LOWER_IS_BETTER = frozenset({"loudness_error_db"})


def _mean_of_measured(values: np.ndarray | None, sample: np.ndarray) -> float | None:
    """Mean of ``values[sample]`` over its clips that have a value (not NaN); ``None`` if none has."""
    if values is None:
        return None
    picked = values[sample]
    picked = picked[~np.isnan(picked)]
    return float(picked.mean()) if picked.size else None


def _sample_metrics(
    matches, correct, events, in_sync, loudness, sample: np.ndarray
) -> dict[str, float | None]:
    """The compared metrics over the clips ``sample`` (indices, with repeats) of one side."""
    onsets = pooled_onset_metrics([matches[i] for i in sample])
    return {
        "f1": onsets["f1"],
        "average_precision": onsets["average_precision"],
        "semantic_accuracy": None if correct is None else float(np.mean(correct[sample])),
        "event_class_accuracy": _mean_of_measured(events, sample),
        "align_accuracy": None if in_sync is None else float(np.mean(in_sync[sample])),
        "loudness_error_db": _mean_of_measured(loudness, sample),
    }


def _side(rows: Sequence[dict]):
    """One side's clips matched once (the resamples pool them), its semantic hits, its clips' event
    class accuracies, the sync classifier's verdicts and the loudness errors, where scored (``None``:
    not scored; NaN: a clip without a value)."""
    matches = match_clips(
        [(row["reference_onsets"], row["estimated_onsets"], row.get("estimated_strengths")) for row in rows]
    )

    def per_clip(values):
        return None if any(v is None for v in values) else np.asarray(values, dtype=np.float64)

    correct = per_clip([row.get("semantic_correct") for row in rows])
    probabilities = [row.get("sync_probability") for row in rows]
    in_sync = None if any(p is None for p in probabilities) else per_clip([p >= 0.5 for p in probabilities])
    # A clip silent on both sides has no loudness error (NaN): the resamples' means skip it.
    loudness = _per_clip_or_nan(rows, "loudness_error_db")
    # A clip without events (or a results file from before the metric: not scored) has no event
    # class accuracy; a side where no clip has one is "not measured".
    events = _per_clip_or_nan(rows, "event_class_accuracy")
    if events is not None and np.isnan(events).all():
        events = None
    return matches, correct, events, in_sync, loudness


def _per_clip_or_nan(rows: Sequence[dict], key: str) -> np.ndarray | None:
    """``row[key]`` of every row as floats with ``None`` as NaN; ``None`` if any row lacks ``key``."""
    if any(key not in row for row in rows):
        return None
    return np.array([np.nan if row[key] is None else row[key] for row in rows], dtype=np.float64)


def compare_configuration(
    baseline: Sequence[dict], candidate: Sequence[dict], resamples: int = 1000, seed: int = 0
) -> dict[str, dict]:
    """Paired bootstrap of ``candidate - baseline`` over clips for the :data:`COMPARED_METRICS`.

    Args:
        baseline, candidate: per-clip rows of one configuration (``clips`` of a results entry),
            for the same clips in the same order; where one side holds more clips and the other's
            are its first ones (a ``--max-clips`` run), the shared first clips are compared.
        resamples: bootstrap samples.
        seed: seed of the resampling.

    Returns:
        ``{metric: {"baseline", "candidate", "difference", "low", "high", "verdict"}}`` where
        ``low``/``high`` bound the 95 % interval of the difference; a metric missing on either side
        (e.g. no classifier, or no clip with events for the event class accuracy) has ``None``
        values and verdict ``"not measured"``.
    """
    shared = min(len(baseline), len(candidate))
    baseline, candidate = list(baseline)[:shared], list(candidate)[:shared]
    ids = [row["id"] for row in baseline]
    if ids != [row["id"] for row in candidate]:
        raise ValueError(
            "the two results scored different clips; compare runs of the same split and --max-clips."
        )
    if not ids:
        raise ValueError("no clips to compare.")
    base_side, cand_side = _side(baseline), _side(candidate)
    everything = np.arange(len(ids))
    base_full, cand_full = _sample_metrics(*base_side, everything), _sample_metrics(*cand_side, everything)
    rng = np.random.default_rng(seed)
    differences: dict[str, list[float]] = {name: [] for name, _ in COMPARED_METRICS}
    for _ in range(resamples):
        sample = rng.integers(0, len(ids), len(ids))
        base, cand = _sample_metrics(*base_side, sample), _sample_metrics(*cand_side, sample)
        for name, _ in COMPARED_METRICS:
            if base[name] is not None and cand[name] is not None:
                differences[name].append(cand[name] - base[name])
    result = {}
    for name, _ in COMPARED_METRICS:
        # No resample held a clip with a value (possible only with a handful of such clips): no interval.
        if base_full[name] is None or cand_full[name] is None or not differences[name]:
            result[name] = dict.fromkeys(("baseline", "candidate", "difference", "low", "high"))
            result[name]["verdict"] = "not measured"
            continue
        low, high = np.percentile(differences[name], [2.5, 97.5])
        if name in LOWER_IS_BETTER:
            verdict = "worse" if low > 0 else "better" if high < 0 else "within noise"
        else:
            verdict = "worse" if high < 0 else "better" if low > 0 else "within noise"
        result[name] = {
            "baseline": base_full[name],
            "candidate": cand_full[name],
            "difference": cand_full[name] - base_full[name],
            "low": float(low),
            "high": float(high),
            "verdict": verdict,
        }
    return result


def compare_results(baseline: dict, candidate: dict, resamples: int = 1000, seed: int = 0) -> dict:
    """Compare every configuration the two results files share (see :func:`compare_configuration`).

    Returns:
        ``{"baseline_settings", "candidate_settings", "configurations": {name: {metric: ...,
        "frechet_distance": {"baseline", "candidate"}}}}``.

    Raises:
        ValueError: the files are of different splits or share no configuration.
    """
    if baseline.get("split") != candidate.get("split"):
        raise ValueError(
            f"the baseline is on the {baseline.get('split')!r} split and the candidate on "
            f"{candidate.get('split')!r}; compare runs of the same split."
        )
    base_entries = {e["configuration"]["name"]: e for e in baseline["configurations"] if not e["skipped"]}
    cand_entries = {e["configuration"]["name"]: e for e in candidate["configurations"] if not e["skipped"]}
    shared = [name for name in base_entries if name in cand_entries]
    if not shared and len(base_entries) == len(cand_entries) == 1:
        # One configuration on each side: the user paired them by choosing the files.
        (base_name,), (cand_name,) = base_entries, cand_entries
        name = f"{base_name} -> {cand_name}"
        base_entries, cand_entries, shared = (
            {name: base_entries[base_name]},
            {name: cand_entries[cand_name]},
            [name],
        )
    if not shared:
        raise ValueError(
            f"the files share no evaluated configuration (baseline: {', '.join(base_entries) or 'none'}; "
            f"candidate: {', '.join(cand_entries) or 'none'})."
        )
    configurations = {}
    for name in shared:
        compared = compare_configuration(
            base_entries[name]["clips"], cand_entries[name]["clips"], resamples=resamples, seed=seed
        )
        counts = len(base_entries[name]["clips"]), len(cand_entries[name]["clips"])
        compared["clips"] = min(counts)
        # A statistic of each file's whole set: comparable only when both scored the same clips.
        compared["frechet_distance"] = {
            side: entries[name]["metrics"].get("frechet_distance") if counts[0] == counts[1] else None
            for side, entries in (("baseline", base_entries), ("candidate", cand_entries))
        }
        configurations[name] = compared
    return {
        "baseline_settings": baseline["settings"],
        "candidate_settings": candidate["settings"],
        "resamples": resamples,
        "configurations": configurations,
    }


def format_comparison(
    comparison: dict, names: Sequence[str | os.PathLike] = ("baseline", "candidate")
) -> str:
    """A plain-text table of :func:`compare_results`: one line per configuration and metric."""
    lines = [f"baseline:  {os.fspath(names[0])}", f"candidate: {os.fspath(names[1])}"]
    lines.append(
        f"{'configuration':30s} {'metric':20s} {'baseline':>9s} {'candidate':>9s} {'diff':>7s}  "
        f"95 % interval (paired bootstrap, {comparison['resamples']} resamples)"
    )
    for name, metrics in comparison["configurations"].items():
        for metric, title in COMPARED_METRICS:
            m = metrics[metric]
            if m["difference"] is None:
                lines.append(f"{name:30s} {title:20s} {'—':>9s} {'—':>9s} {'—':>7s}  not measured")
                continue
            lines.append(
                f"{name:30s} {title:20s} {m['baseline']:9.3f} {m['candidate']:9.3f} {m['difference']:+7.3f}  "
                f"[{m['low']:+.3f}, {m['high']:+.3f}] {m['verdict']}"
            )
        if metrics.get("clips") is not None:
            lines.append(f"{name:30s} {'clips compared':20s} {metrics['clips']:9d}")
        fd = metrics["frechet_distance"]
        if fd["baseline"] is not None and fd["candidate"] is not None:
            lines.append(
                f"{name:30s} {'Fréchet distance':20s} {fd['baseline']:9.1f} {fd['candidate']:9.1f} "
                f"{fd['candidate'] - fd['baseline']:+7.1f}  (no interval: a statistic of the whole set)"
            )
    return "\n".join(lines)
