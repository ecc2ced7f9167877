"""Reporting the results of ``foleycrafter eval``: the printed table, the JSON file, joining results files.

The results are the dict :func:`foleycrafter.eval.running.evaluate_model` returns (or such dicts read
back from their JSON files). This module owns what is made of them, and generates nothing:

* :func:`format_table` -- the plain-text table the command prints: one row per configuration, after
  the ground-truth ceiling.
* :func:`write_results`, :func:`read_results` -- a results file: JSON (NaN written as ``null``) and back.
* :func:`merge_results` -- results of separate runs (e.g. one configuration each) joined into one
  (``foleycrafter eval --merge``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# -- the table -----------------------------------------------------------------------------------------
_COLUMNS = (
    ("clips", "num_clips", "{:d}"),
    ("F1@50ms", "f1", "{:.3f}"),
    ("P", "precision", "{:.3f}"),
    ("R", "recall", "{:.3f}"),
    ("AP@100ms", "average_precision", "{:.3f}"),
    ("count acc", "count_accuracy", "{:.3f}"),
    ("timing err ms", "mean_timing_error_ms", "{:.1f}"),
    ("semantic acc", "semantic_accuracy", "{:.3f}"),
    ("event class acc", "event_class_accuracy", "{:.3f}"),
    ("Frechet", "frechet_distance", "{:.2f}"),
    ("Align Acc", "align_accuracy", "{:.3f}"),
    ("loud err dB", "loudness_error_db", "{:.1f}"),
    ("loud corr", "loudness_correlation", "{:.2f}"),
    ("s/clip", "generation_seconds_per_clip", "{:.1f}"),
)


def format_table(results: dict) -> str:
    """The results as a plain-text table: one row per configuration (and the ground-truth ceiling)."""
    header = ["configuration"] + [title for title, _, _ in _COLUMNS]
    lines = [[f"ground truth ({results['split']}, ceiling)"] + _cells(results["ground_truth"]["metrics"])]
    for entry in results["configurations"]:
        name = entry["configuration"]["name"]
        if entry["skipped"]:
            lines.append([name, f"skipped: {entry['skipped']}"])
        else:
            lines.append([name] + _cells(entry["metrics"]))
    widths = [
        max(len(header[i]), *(len(line[i]) for line in lines if len(line) == len(header)))
        for i in range(len(header))
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    for line in lines:
        out.append(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
            if len(line) == len(header)
            else "  ".join(line)
        )
    return "\n".join(out)


def _cells(metrics: dict) -> list[str]:
    cells = []
    for _, key, fmt in _COLUMNS:
        value = metrics.get(key)
        # NaN as well as None: a metric no clip has a value for (e.g. event class accuracy without
        # sequence clips) is absent, not a number.
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        cells.append("—" if missing else fmt.format(value))
    return cells


# -- joining results files -----------------------------------------------------------------------------
#: What must agree between results files for their rows to share one table.
_MERGE_KEYS = ("model", "dataset_root", "split")


def _shared_metrics(metrics: dict, other: dict) -> dict:
    """``metrics`` without those the ``other`` run's ground-truth row lacks: a metric added after a
    file was written (absent there, ``None`` here) says nothing about which clips were scored."""
    known = other["ground_truth"]["metrics"]
    return {k: v for k, v in metrics.items() if k in known or v is not None}


def merge_results(parts: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """Join results of separate runs (e.g. one configuration each) into one: their configurations in
    the given order. The runs must share model, dataset, split, settings (except the date) and the
    ground-truth ceiling (the same clips), else a ValueError names the first difference.
    """
    if not parts:
        raise ValueError("nothing to merge: give at least one results file.")
    names = list(names) if names is not None else [f"results #{i + 1}" for i in range(len(parts))]
    first = parts[0]
    merged = {**first, "configurations": [], "settings": dict(first["settings"])}
    seen: dict[str, str] = {}
    for name, part in zip(names, parts):
        for key in _MERGE_KEYS:
            if part.get(key) != first.get(key):
                raise ValueError(f"{name} has {key} {part.get(key)!r}, {names[0]} has {first.get(key)!r}.")
        if part["settings"] != first["settings"]:
            differing = sorted(
                k for k in set(part["settings"]) | set(first["settings"])
                if part["settings"].get(k) != first["settings"].get(k)
            )  # fmt: skip
            raise ValueError(f"{name} was run with other settings than {names[0]}: {', '.join(differing)}.")
        if _shared_metrics(part["ground_truth"]["metrics"], first) != _shared_metrics(
            first["ground_truth"]["metrics"], part
        ):
            raise ValueError(f"{name} scored other clips than {names[0]} (their ground-truth rows differ).")
        for entry in part["configurations"]:
            configuration = entry["configuration"]["name"]
            if configuration in seen:
                raise ValueError(
                    f"configuration {configuration!r} is in both {seen[configuration]} and {name}."
                )
            seen[configuration] = name
            merged["configurations"].append(entry)
    merged["date"] = max(part["date"] for part in parts)
    merged["merged_from"] = [os.fspath(n) for n in names]
    return merged


# -- results files -------------------------------------------------------------------------------------
def write_results(results: dict, path: str | os.PathLike) -> None:
    """Write ``results`` as JSON (NaN becomes ``null``), creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(_json_safe(results), f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def read_results(path) -> dict:
    """A results file of ``foleycrafter eval`` (:func:`write_results`); ValueError if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a results file of foleycrafter eval (not JSON: {error}).") from None
    if not isinstance(results, dict) or "configurations" not in results:
        raise ValueError(f"{path} is not a results file of foleycrafter eval (it has no configurations).")
    return results
