"""README.md's "Train on your own clips" commands, run as written (from README.md itself) on a fresh
folder of SynthFoley clips with the bundled tiny model: each exits 0 and writes ``final/``.

Only what a real run cannot afford here is added to each command: ``--set max_steps=2 --set
batch_size=2`` and ``--quiet``; the one validation at the end of each run still runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foleycrafter.data.synthfoley import generate_dataset

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: Added to every `foleycrafter train` command: a handful of steps on a handful of clips.
SHORT_RUN = ["--set", "max_steps=2", "--set", "batch_size=2", "--set", "validation_steps=2", "--quiet"]


def readme_training_commands() -> tuple[dict[str, str], list[list[str]]]:
    """(shell variables, commands) of the README's code block holding `foleycrafter prepare my_clips/`.

    Variables are ``NAME=value`` lines; commands are the ``foleycrafter ...`` lines, with optional
    ``[...]`` groups kept (the test supplies what they name) and comments removed."""
    text = README.read_text(encoding="utf-8")
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    block = next((b for b in blocks if "foleycrafter prepare my_clips/" in b), None)
    assert block is not None, "README.md: no code block with `foleycrafter prepare my_clips/`"
    variables, commands = {}, []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if match := re.fullmatch(r"([A-Z_]+)=(\S+)", line):
            variables[match[1]] = match[2]
        elif line.startswith("foleycrafter "):
            line = re.sub(r"\[([^\]]*)\]", r"\1", line)
            for name, value in variables.items():
                line = line.replace(f"${name}", value).replace(f"${{{name}}}", value)
            commands.append(shlex.split(line))
    return variables, commands


def test_readme_parses_into_prepare_then_seven_trainers():
    variables, commands = readme_training_commands()
    assert variables.get("MODEL") == "checkpoints/foleycrafter-tiny"
    assert [c[1] for c in commands] == ["prepare"] + ["train"] * 7
    assert [c[2] for c in commands[1:]] == [
        "semantic",
        "temporal",
        "onset",
        "lora",
        "alignment",
        "loudness",
        "loudness_predictor",
    ]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.fixture(scope="module")
def fresh_tree(tmp_path_factory) -> Path:
    """A folder laid out like a checkout a user works in: ``my_clips/`` (4 SynthFoley clips with
    a ``captions.csv`` beside them), and the repository's ``adapters/`` and bundled model."""
    root = tmp_path_factory.mktemp("readme")
    records = generate_dataset(root / "synthfoley", split="train", num_clips=4, seed=3, size=64)
    clips = root / "my_clips"
    (root / "synthfoley" / "train").rename(clips)
    lines = ["file,caption,onsets"]
    for record in records:
        onsets = " ".join(f"{t:.4f}" for t in record["onsets"])
        lines.append(f"{record['video']},{record['caption']},{onsets}")
    (root / "captions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "adapters").symlink_to(REPO / "adapters", target_is_directory=True)
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "foleycrafter-tiny").symlink_to(
        REPO / "checkpoints" / "foleycrafter-tiny", target_is_directory=True
    )
    return root


def test_readme_training_commands_run_as_written(fresh_tree):
    """prepare, then semantic, temporal (on the semantic run's final/), onset, lora, alignment,
    loudness (on the temporal run's final/) and the loudness predictor, in the README's order;
    ~80 s on one busy CPU thread."""
    _, commands = readme_training_commands()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    timings = {}
    for command in commands:
        argv = [sys.executable, "-m", "foleycrafter", *command[1:]]
        argv += SHORT_RUN if command[1] == "train" else ["--quiet"]
        start = time.perf_counter()
        result = subprocess.run(argv, cwd=fresh_tree, capture_output=True, text=True, env=env, timeout=300)
        timings[" ".join(command[1:3])] = round(time.perf_counter() - start, 1)
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stderr[-3000:]}"
        out = fresh_tree / _option(command, "--out")
        if command[1] == "prepare":
            assert (out / "index.jsonl").is_file() and (out / "config.json").is_file()
            assert len((out / "index.jsonl").read_text().splitlines()) >= 4
        else:
            final = out / "final"
            assert final.is_dir() and any(final.iterdir()), f"{shlex.join(command)}: no {final}"
            assert any((out / "validation").iterdir()), f"{shlex.join(command)}: no validation"
    print(timings)
    # The temporal run trained on top of the semantic run's pipeline, as the README says.
    temporal = next(c for c in commands if c[1:3] == ["train", "temporal"])
    assert _option(temporal, "--model") == "runs/sem/final"
    assert (fresh_tree / "runs" / "tmp" / "final" / "controlnet").is_dir()
    assert (fresh_tree / "runs" / "loud" / "final" / "loudness_controller").is_dir()
    assert (fresh_tree / "runs" / "loud" / "final" / "controlnet").is_dir()
