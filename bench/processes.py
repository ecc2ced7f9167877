"""Does `foleycrafter generate` on a folder go faster in several processes? One process against
``torchrun --nproc_per_node 2`` (the batch shared by the processes, ``foleycrafter/distributed.py``),
side by side.

    .venv/bin/python bench/processes.py [--clips 8] [--repeats 3] [--model checkpoints/foleycrafter-tiny]

Cases (each a whole ``foleycrafter generate FOLDER -o OUT --format wav`` command, model loading and
process start included, repetitions interleaved), on ``--clips`` SynthFoley clips of 2-4 s written
to a temporary folder:

* ``1 process, 1 thread``: ``OMP_NUM_THREADS=1``.
* ``1 process, 2 threads``: ``OMP_NUM_THREADS=2``: the same two cores used by threads instead.
* ``2 processes, 1 thread each``: ``torchrun --nproc_per_node 2 -m foleycrafter generate ...`` with
  ``OMP_NUM_THREADS=1`` in each process (each loads the model, each takes every other clip).

Wall seconds are what matters here (CPU seconds count both processes). The ratio is the first
case's wall time / this case's (> 1: faster). ``--threads`` is ignored: each case sets its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

DEFAULT_MODEL = _common.REPO / "checkpoints" / "foleycrafter-tiny"


def write_clips(folder: Path, count: int, seed: int = 0) -> list[float]:
    """``count`` SynthFoley test clips of 2 to 4 s (evenly spread) as ``clip_<k>.mp4``; returns
    their durations."""
    from foleycrafter.data.synthfoley import generate_clip, write_mp4, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    durations = []
    for k in range(count):
        seconds = 2.0 + 2.0 * k / max(1, count - 1)
        frames, audio, record = generate_clip(seed, k, "test", duration=seconds, fps=25)
        wav = folder / f".clip_{k}.wav"
        write_wav(wav, audio)
        write_mp4(folder / f"clip_{k}.mp4", frames, 25, wav)
        wav.unlink()
        durations.append(float(record["duration"]))
    return durations


def commands(model: str, clips: Path, out: Path, port: int = 29561) -> dict[str, tuple[list[str], int]]:
    """Case name -> (command, threads per process)."""
    generate = ["-m", "foleycrafter", "generate", str(clips), "-o", str(out), "--format", "wav"]
    generate += ["--model", model, "--overwrite", "--quiet"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    torchrun += ["--master_port", str(port)]
    return {
        "1 process, 1 thread": ([sys.executable, *generate], 1),
        "1 process, 2 threads": ([sys.executable, *generate], 2),
        "2 processes, 1 thread each": ([*torchrun, *generate], 1),
    }


def run_command(command: list[str], threads: int, out: Path, expected: int) -> None:
    env = dict(os.environ)
    for name in _common._THREAD_VARIABLES:
        env[name] = str(threads)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    written = len(list(out.glob("*.wav")))
    if written != expected:
        raise RuntimeError(f"{' '.join(command)} wrote {written} files, expected {expected}.")


def measure(model: str, clips: int, repeats: int, progress=None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        durations = write_clips(folder, clips)
        cases = {}
        for name, (command, threads) in commands(model, folder, Path(tmp) / "out").items():
            out = Path(tmp) / "out"

            def call(command=command, threads=threads, out=out):
                run_command(command, threads, out, clips)

            cases[name] = _common.timed(call)
        results = _common.interleaved(cases, repeats, progress=progress)
    rows = []
    for name, values in results.items():
        wall = _common.median(_common.column(values, "wall_s"))
        rows.append(
            {
                "case": name,
                "wall_s": wall,
                "cpu_s": _common.median(_common.column(values, "cpu_s")),
                "spread": _common.spread(_common.column(values, "wall_s")),
            }
        )
    for row in rows:
        row["speedup_wall"] = _common.ratio(rows[0]["wall_s"], row["wall_s"])
    return {"clips": clips, "seconds_of_video": sum(durations), "rows": rows, "raw": results}


def main(argv=None) -> dict:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="SynthFoley clips of 2-4 s in the folder (8)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (3)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="native model folder")
    args = parser.parse_args(argv)
    clips, repeats = (2, 1) if args.tiny else (args.clips, args.repeats)
    env = _common.environment(1)
    _common.print_header(f"processes: foleycrafter generate on {clips} clips of 2-4 s", env)
    result = measure(args.model, clips, repeats, progress=_common.log)
    print(f"   {result['seconds_of_video']:.1f} s of video, medians of {repeats} interleaved runs")
    _common.print_table(result["rows"], ["case", "wall_s", "cpu_s", "spread", "speedup_wall"])
    result["environment"] = env
    _common.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
