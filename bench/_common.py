"""Shared helpers for the benchmarks: thread settings, interleaved timing, medians, memory probes,
printing.

Why interleave: on a shared machine the speed of a core drifts by tens of percent over minutes
(other jobs, frequency scaling). Timing all repetitions of A and then all of B would turn that
drift into a fake difference between A and B; alternating them exposes both to the same drift,
and medians drop the odd repetition that a neighbour's burst slowed down.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Environment variables that size the thread pools of the native libraries we use. They are read
# when a library starts, so they are also set for every subprocess a benchmark launches.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FFMPEG_THREADS")


# -- command line -------------------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--threads``, ``--tiny``, ``--json``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch, OpenMP/MKL and the video decoder (1)"
    )
    p.add_argument("--tiny", action="store_true", help="tiny shapes: checks the script runs, in seconds")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return p


def clip_step_options(parser: argparse.ArgumentParser) -> None:
    """The options of the per-step benches on one SynthFoley clip: ``--seconds``, ``--steps``,
    ``--repeats`` (see :func:`clip_step_setup`)."""
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (s)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)


def clip_step_setup(args: argparse.Namespace, title: str) -> dict:
    """Parsed options of a per-step bench -> its environment, header printed: ``--tiny`` shrinks the
    clip, steps and repeats; threads are set and the libraries quieted."""
    if args.tiny:
        args.steps, args.repeats, args.seconds = 3, 1, 2.0
    set_threads(args.threads)
    quiet_libraries()
    env = environment(args.threads)
    print_header(f"{title}, {args.seconds:g} s clip, {args.steps} steps ({args.model})", env)
    return env


def set_threads(threads: int) -> None:
    """Use ``threads`` threads in torch, OpenMP, MKL and OpenCV's FFmpeg decoder, here and in
    subprocesses started from now on."""
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules or _importable("torch"):
        import torch

        torch.set_num_threads(threads)
        try:
            # Inter-op threads only run independent graph branches (unused by eager models); one is
            # enough, and it may only be set before the first parallel region, hence the guard.
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def quiet_libraries() -> None:
    """Keep diffusers' and transformers' warnings about building random models (dtype casts, token
    ids of the tiny tokenizer, missing torchvision) out of the benchmark's output."""
    import logging

    for name in ("diffusers", "transformers"):
        if _importable(name):
            __import__(f"{name}.utils")
            sys.modules[f"{name}.utils"].logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- timing -------------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children, seconds.

    Why CPU time next to wall time: on a machine shared with other jobs, a single-threaded run is
    descheduled for a varying part of the wall time, which CPU time does not count. It still
    varies with cache and memory contention, but far less than wall time.
    """
    import resource

    # process_time has nanosecond resolution (os.times only counts 10 ms clock ticks).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], object]) -> Callable[[], dict]:
    """Wrap ``fn`` so that calling it returns ``{"wall_s", "cpu_s"}``: its wall time
    (``time.perf_counter``) and CPU time (:func:`cpu_seconds`), seconds."""

    def run() -> dict:
        cpu, wall = cpu_seconds(), time.perf_counter()
        fn()
        return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}

    return run


def interleaved(
    cases: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list]:
    """Run each case ``repeats`` times, interleaved (A, B, B, A, A, B, ...), and collect what each
    call returns (a number of seconds, or a dict of figures such as :func:`timed` gives).

    The order flips every round so that no case always runs right after the same neighbour (which
    may have warmed or trashed the caches for it). ``warmup`` rounds run first and are discarded.

    Returns:
        {case name: [value of repetition 1, 2, ...]}.
    """
    names = list(cases)
    results: dict[str, list] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            value = cases[name]()
            if round_index >= warmup:
                results[name].append(value)
            if progress is not None:
                tag = "warm-up" if round_index < warmup else f"{round_index - warmup + 1}/{repeats}"
                progress(f"  [{tag}] {name}: {_short(value)}")
    return results


def _short(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def column(values: Sequence[dict], key: str) -> list[float]:
    """``[v[key] for v in values]``: one figure out of a list of :func:`timed` results."""
    return [float(v[key]) for v in values]


def median(values: Sequence[float]) -> float:
    """Median of ``values`` (NaN when empty)."""
    return float(statistics.median(values)) if len(values) else math.nan


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of ``values``: how noisy the repetitions were (0 for one value)."""
    if len(values) < 2:
        return 0.0
    m = median(values)
    return (max(values) - min(values)) / m if m else math.nan


def per_step_rows(results: dict, names: Sequence[str], steps: int) -> tuple[list[dict], float]:
    """Rows of whole-call timings per case (median wall seconds, seconds per denoising step, spread)
    and the one-step call's median: the per-step figure subtracts that call (frames, detector,
    decoding, vocoding) from each case's ``steps``-step calls, ``results`` from :func:`interleaved`
    with an ``"overhead"`` case."""
    overhead = median(column(results["overhead"], "wall_s"))
    rows = []
    for name in names:
        wall = column(results[name], "wall_s")
        rows.append(
            {
                "case": name,
                "wall_s": median(wall),
                "s_per_step": (median(wall) - overhead) / (steps - 1),
                "spread": spread(wall),
            }
        )
    return rows, overhead


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is 0 or either is NaN."""
    if not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


# -- memory -------------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux), in KiB, or None where unavailable."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def rss_bytes() -> int | None:
    """Resident set size of this process now, bytes (Linux ``VmRSS``)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int:
    """Highest resident set size of this process since it started or since :func:`reset_peak_rss`,
    bytes (Linux ``VmHWM``; elsewhere ``getrusage``, which cannot be reset)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Restart the peak-RSS record at the current RSS (Linux >= 4.0: ``clear_refs`` 5), so that the
    next :func:`peak_rss_bytes` covers only what runs from now on. Returns False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so that
    RSS reflects live objects rather than memory the allocator keeps for reuse."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# -- reporting ----------------------------------------------------------------------------------
def environment(threads: int) -> dict:
    """Facts a figure needs next to it: when, where, with what."""
    from foleycrafter.runtime import cpu_model

    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
    }
    if _importable("torch"):
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    info.update(_git_state())
    return info


def _git_state() -> dict:
    """The commit measured, and which package files differed from it (uncommitted work changes
    what a benchmark measures)."""
    import subprocess

    def git(*args):
        result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return {}
    changed = [
        line.split(maxsplit=1)[-1] for line in git("status", "--porcelain", "--", "foleycrafter").splitlines()
    ]
    return {"commit": commit, "uncommitted": ",".join(changed) or "none"}


def print_header(title: str, env: dict) -> None:
    print(f"== {title}")
    print("   " + ", ".join(f"{k}={v}" for k, v in env.items()))
    sys.stdout.flush()


def print_table(rows: list[dict], columns: Sequence[str] | None = None) -> None:
    """Print ``rows`` (dicts) as an aligned text table; floats get 4 significant digits."""
    if not rows:
        return
    columns = list(columns or rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    sys.stdout.flush()


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def mib(n_bytes: float | None) -> float | None:
    """Bytes -> MiB (None stays None)."""
    return None if n_bytes is None else n_bytes / 2**20


def write_json(path: Path | None, result: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2, default=str))
        print(f"(results written to {path})")


def log(message: str) -> None:
    """Progress to stderr, so that stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)
