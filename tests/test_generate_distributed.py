"""`foleycrafter generate` shared by several processes (torchrun, CPU processes on gloo), and its
`--manifest` input: the plan, the shares, the gathered summary, per-row settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_video

from foleycrafter.cli import _one_line, main
from foleycrafter.distributed import Processes, balance, launched_processes
from foleycrafter.manifest import read_manifest
from foleycrafter.runtime import UsageError
from foleycrafter.video import VideoReadError, read_audio_track, read_video_info

SR = 16000
FAST = ("-preset", "ultrafast")
LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "FOLEYCRAFTER_MODEL")


def run_generate(*args, processes: int = 1) -> subprocess.CompletedProcess:
    """``python -m foleycrafter generate ...``, under torchrun when ``processes`` > 1 (one thread
    each, as the one-process run, so both compute alike)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    launcher = [sys.executable]
    if processes > 1:
        # --standalone: a rendezvous on a free local port, so parallel test runs do not collide.
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, "-m", "foleycrafter", "generate", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def wav(path: Path) -> np.ndarray:
    return read_audio_track(path, sample_rate=SR)


@pytest.fixture(scope="module")
def four_videos(tmp_path_factory) -> Path:
    """Four short videos of different lengths (1-2.5 s), so the shares are balanced by duration."""
    folder = tmp_path_factory.mktemp("four")
    for name, seconds in (("a", 1.0), ("b", 1.5), ("c", 2.0), ("d", 2.5)):
        make_video(folder / f"{name}.mp4", seconds=seconds, fps=12, size=(64, 48), extra=FAST)
    return folder


# -- several processes ------------------------------------------------------------------------------
def test_two_processes_write_what_one_process_writes(four_videos, native_model, tmp_path):
    common = ("--format", "wav", "--steps", "2", "--model", native_model)
    one = run_generate(four_videos, "-o", tmp_path / "one", *common)
    assert one.returncode == 0, one.stderr
    two = run_generate(four_videos, "-o", tmp_path / "two", *common, processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    # Printed once, by the main process, for the whole batch.
    assert two.stderr.count("4 written, 0 skipped, 0 failed.") == 1, two.stderr
    # Shared by duration (2.5 + 1.0 s and 2.0 + 1.5 s): two videos each.
    assert two.stderr.count("[process 0/2] wrote") == 2 and two.stderr.count("[process 1/2] wrote") == 2
    for name in "abcd":
        expected = wav(tmp_path / "one" / f"{name}_foley.wav")
        np.testing.assert_array_equal(wav(tmp_path / "two" / f"{name}_foley.wav"), expected)
        assert np.abs(expected).max() > 1e-4
    assert not list((tmp_path / "two").glob(".*tmp*")), "no temporary files left behind"


def test_a_failing_video_in_one_share_and_a_rerun_that_skips_what_exists(four_videos, native_model, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "c"):
        (inputs / f"{name}.mp4").write_bytes((four_videos / f"{name}.mp4").read_bytes())
    broken = inputs / "broken.mp4"
    broken.write_text("this is not a video")
    with pytest.raises(VideoReadError) as refused:
        read_video_info(broken)
    out = tmp_path / "out"
    common = (inputs, "-o", out, "--format", "wav", "--steps", "2", "--model", native_model)

    first = run_generate(*common, processes=2)
    # Each process exits 1, as one process would, and so does torchrun. torchrun reports each code,
    # but once one process has exited it may stop a slower one (SIGTERM, -15) before that one exits
    # by itself; no process exits with any other code.
    assert first.returncode == 1, first.stderr[-3000:]
    codes = re.findall(r"exitcode\s*:\s*(-?\d+) \(pid", first.stderr)
    assert "1" in codes and set(codes) <= {"1", "-15"}, first.stderr[-3000:]
    assert first.stderr.count("2 written, 0 skipped, 1 failed.") == 1, first.stderr[-3000:]
    # The unreadable video (duration 0) went to process 1 (c: 2.0 s on 0, a: 1.0 s on 1); the main
    # process reports it with the reason one process gives.
    assert f"  failed: {broken.resolve()}: {_one_line(refused.value)}" in first.stderr
    assert first.stderr.count("[process 0/2] wrote") == 1 and first.stderr.count("[process 1/2] wrote") == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_foley.wav", "c_foley.wav"]

    kept = out / "c_foley.wav"
    kept_stamp, kept_audio = kept.stat().st_mtime_ns, wav(kept)
    redone_audio = wav(out / "a_foley.wav")
    (out / "a_foley.wav").unlink()
    rerun = run_generate(*common, "--skip-existing", processes=2)
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    assert rerun.stderr.count("1 written, 1 skipped, 1 failed.") == 1, rerun.stderr[-3000:]
    assert rerun.stderr.count(" wrote ") == 1 and f"wrote {out / 'a_foley.wav'}" in rerun.stderr
    assert kept.stat().st_mtime_ns == kept_stamp
    np.testing.assert_array_equal(wav(kept), kept_audio)
    np.testing.assert_array_equal(wav(out / "a_foley.wav"), redone_audio)


def test_python_dash_m_foleycrafter_is_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "foleycrafter", "generate", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--manifest" in result.stdout


# -- the plan ----------------------------------------------------------------------------------------
def test_balance_is_longest_first_and_deterministic():
    assert balance([1.0, 1.5, 2.0, 2.5], 2) == [[0, 3], [1, 2]]
    # A three-minute clip weighs as much as many short ones.
    assert balance([180.0] + [5.0] * 36, 2) == [[0], list(range(1, 37))]
    # Equal weights (unreadable videos weigh 0): spread by count.
    assert balance([0.0] * 5, 2) == [[0, 2, 4], [1, 3]]
    assert balance([3.0], 3) == [[0], [], []]
    weights = list(np.random.default_rng(0).uniform(0.5, 60, 40))
    shares = balance(weights, 3)
    assert sorted(i for share in shares for i in share) == list(range(40))
    loads = [sum(weights[i] for i in share) for share in shares]
    assert max(loads) - min(loads) <= max(weights)
    assert balance(weights, 3) == shares


def test_launcher_environment():
    assert launched_processes({}) == Processes()
    assert launched_processes({"WORLD_SIZE": "1", "RANK": "0"}) == Processes()
    assert launched_processes({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Processes(3, 4, 1)
    with pytest.raises(UsageError, match="RANK is not"):
        launched_processes({"WORLD_SIZE": "2"})
    with pytest.raises(UsageError, match="WORLD_SIZE='two'"):
        launched_processes({"WORLD_SIZE": "two"})
    with pytest.raises(UsageError, match="RANK=2"):
        launched_processes({"WORLD_SIZE": "2", "RANK": "2"})


# -- the manifest ------------------------------------------------------------------------------------
def test_manifest_rows_set_each_videos_prompt_and_seed(four_videos, native_model, tmp_path):
    manifest = tmp_path / "videos.csv"
    manifest.write_text(
        f"file,prompt,seed\n{four_videos / 'a.mp4'},a knock,7\n{os.path.relpath(four_videos / 'b.mp4', tmp_path)},,\n"
    )
    common = ["--steps", "2", "--model", str(native_model), "--quiet", "--prompt", "rain"]
    assert main(["generate", "--manifest", str(manifest), "-o", str(tmp_path / "out"), "--format", "wav", *common]) == 0  # fmt: skip

    def alone(video: str, name: str, *options: str) -> np.ndarray:
        target = tmp_path / name
        assert main(["generate", str(four_videos / video), "-o", str(target), *common, *options]) == 0
        return wav(target)

    a = wav(tmp_path / "out" / "a_foley.wav")
    np.testing.assert_array_equal(a, alone("a.mp4", "a7.wav", "--seed", "7", "--prompt", "a knock"))
    assert not np.array_equal(a, alone("a.mp4", "a42.wav"))  # the command line's seed and prompt
    # An empty cell: the command line's value (--prompt rain, --seed 42).
    np.testing.assert_array_equal(wav(tmp_path / "out" / "b_foley.wav"), alone("b.mp4", "b42.wav"))


def test_manifest_jsonl(four_videos, tmp_path):
    manifest = tmp_path / "videos.jsonl"
    rows = [
        {"file": str(four_videos / "a.mp4"), "onsets": [1.2, 0.5], "seed": 3, "negative_prompt": "music"},
        {"file": str(four_videos / "b.mp4"), "onsets": "none", "prompt": None},
    ]
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    first, second = read_manifest(manifest)
    assert (first.onsets, first.seed, first.negative_prompt, first.prompt) == ([0.5, 1.2], 3, "music", None)
    assert (second.file, second.onsets, second.line) == ((four_videos / "b.mp4").resolve(), [], 2)


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("m.csv", "file,seed\n{a},7\n{b},abc\n", "line 3, column 'seed': expected a whole number, got 'abc'"),
        ("m.csv", "file,promt\n{a},x\n", "line 1 (the header): expected the columns"),
        ("m.csv", "file\n{a}\nmissing.mp4\n", "line 3, column 'file': expected an existing video file"),
        ("m.csv", "prompt,file\n,{a}\nx,\n", "line 3, column 'file': expected the video's path"),
        ("m.csv", "file,onsets\n{a},0.5 x\n", "line 2, column 'onsets': Onset times: `x` is not a number"),
        ("m.csv", "file,prompt\n{a},x,y\n", "line 2: more cells than the header's 2 columns"),
        ("m.csv", "file\n{a}\n{a}\n", "line 3, column 'file'"),
        ("m.csv", "file\n", "no rows"),
        ("m.jsonl", '{{"file": "{a}"}}\n{{"file": \n', "line 2: not valid JSON"),
        (
            "m.jsonl",
            '{{"file": "{a}", "seed": 1.5}}\n',
            "line 1, column 'seed': expected a whole number, got 1.5",
        ),
        ("m.jsonl", '{{"file": "{a}", "onsets": [-1]}}\n', "line 1, column 'onsets': expected seconds"),
        ("m.jsonl", '{{"file": "{a}", "sed": 1}}\n', "line 1: unknown key(s) 'sed'"),
        ("m.txt", "file\n{a}\n", "expected a .csv or .jsonl file"),
    ],
)
def test_a_bad_manifest_is_a_one_line_error(four_videos, native_model, tmp_path, capsys, name, text, message):
    manifest = tmp_path / name
    manifest.write_text(text.format(a=four_videos / "a.mp4", b=four_videos / "b.mp4"))
    code = main(["generate", "--manifest", str(manifest), "-o", str(tmp_path / "out"), "--model", str(native_model)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"foleycrafter: error: {manifest}") or err.startswith(
        "foleycrafter: error: --manifest"
    )
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_manifest_or_videos_not_both(four_videos, tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"file\n{four_videos / 'a.mp4'}\n")
    assert main(["generate", str(four_videos / "b.mp4"), "--manifest", str(manifest)]) == 2
    assert "pass one" in capsys.readouterr().err
    assert main(["generate"]) == 2
    assert "no videos given" in capsys.readouterr().err
