"""``foleycrafter generate --manifest FILE``: the videos of a batch, each with its own settings.

CSV (a header row, then one row per video)::

    file,prompt,negative_prompt,onsets,seed
    clips/dog.mp4,a dog barking,,,7
    clips/door.mp4,a door slams,music,"0.5, 1.2",
    clips/rain.mp4

JSONL (one object per line)::

    {"file": "clips/dog.mp4", "prompt": "a dog barking", "seed": 7}
    {"file": "clips/door.mp4", "prompt": "a door slams", "onsets": [0.5, 1.2]}

Only ``file`` is required: a video path, relative to the manifest's folder unless absolute. The
other columns (keys) may be left out or left empty (JSON: ``null`` or ``""``): the video then takes
the command line's ``--prompt``, ``--negative-prompt``, ``--onsets`` and ``--seed``. ``onsets`` are
seconds as ``--onsets`` takes them (JSONL: a list of numbers too; ``none``/``[]``: no sound events);
``seed`` is a whole number.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .runtime import UsageError

#: The columns (JSONL keys) a manifest may have; ``file`` is the one required.
COLUMNS = ("file", "prompt", "negative_prompt", "onsets", "seed")


@dataclass(frozen=True)
class ManifestRow:
    """One video of a manifest; ``None``: not given (the command line's value applies).

    Attributes:
        file: the video, resolved (absolute).
        line: the manifest's line the row starts on (1 = the first line), for messages.
        prompt, negative_prompt: texts.
        onsets: onset times in seconds, sorted; ``[]``: no sound events.
        seed: the random seed of this video's noise.
    """

    file: Path
    line: int
    prompt: str | None = None
    negative_prompt: str | None = None
    onsets: list[float] | None = None
    seed: int | None = None


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """The rows of a ``.csv`` or ``.jsonl`` manifest, in file order.

    Raises:
        UsageError: the file is missing or of another kind; a row (named by its line, and the
            column at fault) lacks ``file``, names a missing file or a file listed before, has a
            column not in :data:`COLUMNS`, or a value that is not what the column takes; no rows.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"--manifest {path}: file not found; pass a .csv or .jsonl file listing the videos.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        entries = _csv_entries(path)
    elif suffix in (".jsonl", ".ndjson"):
        entries = _jsonl_entries(path)
    else:
        raise UsageError(
            f"--manifest {path}: expected a .csv or .jsonl file (one row per video, columns "
            f"{', '.join(COLUMNS)}); rename it with the suffix of its format."
        )
    rows: list[ManifestRow] = []
    first_line: dict[Path, int] = {}
    for line, entry in entries:
        row = _row(path, line, entry)
        if row.file in first_line:
            raise UsageError(
                f"{path} line {line}, column 'file': {row.file} is already listed on line "
                f"{first_line[row.file]}; list each video once."
            )
        first_line[row.file] = line
        rows.append(row)
    if not rows:
        raise UsageError(f"--manifest {path}: no rows; list one video per row (column 'file').")
    return rows


def _csv_entries(path: Path) -> list[tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        unknown = [name for name in header if name not in COLUMNS]
        if "file" not in header or unknown:
            found = ", ".join(repr(name) for name in header) or "nothing"
            raise UsageError(
                f"{path} line 1 (the header): expected the columns {', '.join(COLUMNS)} (only 'file' "
                f"required), found {found}; fix the header row."
            )
        entries = []
        line = reader.line_num + 1
        for record in reader:
            if None in record:
                raise UsageError(
                    f"{path} line {line}: more cells than the header's {len(header)} columns; quote "
                    'cells that contain commas (e.g. "0.5, 1.2").'
                )
            entries.append((line, record))
            line = reader.line_num + 1
    return entries


def _jsonl_entries(path: Path) -> list[tuple[int, dict]]:
    entries = []
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{path} line {line}: not valid JSON ({error.msg}); write one object per line, "
                'e.g. {"file": "clip.mp4", "seed": 7}.'
            ) from None
        if not isinstance(record, dict):
            raise UsageError(
                f"{path} line {line}: expected a JSON object with the keys {', '.join(COLUMNS)}, got "
                f"{type(record).__name__}."
            )
        unknown = [key for key in record if key not in COLUMNS]
        if unknown:
            raise UsageError(
                f"{path} line {line}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
                f"{', '.join(COLUMNS)} (only 'file' required)."
            )
        entries.append((line, record))
    return entries


def _row(path: Path, line: int, entry: dict) -> ManifestRow:
    def fail(column: str, expected: str, value) -> UsageError:
        return UsageError(f"{path} line {line}, column '{column}': expected {expected}, got {value!r}.")

    def given(column: str):
        value = entry.get(column)
        return None if value is None or (isinstance(value, str) and value.strip() == "") else value

    name = given("file")
    if name is None:
        raise fail("file", "the video's path (the one required column)", entry.get("file"))
    if not isinstance(name, str):
        raise fail("file", "a path (text)", name)
    video = Path(name.strip()).expanduser()
    if not video.is_absolute():
        video = path.parent / video  # the manifest travels with its videos, wherever it is run from
    if not video.is_file():
        raise fail("file", f"an existing video file (relative paths start at {path.parent})", name)

    texts = {}
    for column in ("prompt", "negative_prompt"):
        value = given(column)
        if value is not None and not isinstance(value, str):
            raise fail(column, "text", value)
        texts[column] = value

    onsets = given("onsets")
    if onsets is not None:
        onsets = _onsets(onsets, f"{path} line {line}, column 'onsets'")

    seed = given("seed")
    if seed is not None:
        if isinstance(seed, str):
            try:
                seed = int(seed.strip())
            except ValueError:
                raise fail("seed", "a whole number", seed) from None
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise fail("seed", "a whole number", seed)
    return ManifestRow(file=video.resolve(), line=line, onsets=onsets, seed=seed, **texts)


def _onsets(value, where: str) -> list[float]:
    """Onset times (s, sorted, distinct) from a cell: text as ``--onsets`` takes it, or a JSON list."""
    from .temporal import parse_onset_times

    expected = 'seconds from the start, e.g. "0.5, 1.2" or [0.5, 1.2] ("none" or []: no sound events)'
    if isinstance(value, list):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not numbers or not all(math.isfinite(v) and v >= 0 for v in value):
            raise UsageError(f"{where}: expected {expected}, got {value!r}.")
        return sorted({float(v) for v in value})
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected {expected}, got {value!r}.")
    try:
        return parse_onset_times(value)
    except ValueError as error:
        raise UsageError(f"{where}: {error}") from None
