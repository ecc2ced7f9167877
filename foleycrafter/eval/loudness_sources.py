"""Where does the loudness error of generated audio sit? A diagnosis for issue #16.

The bundled model's audio follows a given loudness curve only a little: with the ground truth's own
curve the benchmark's mean absolute error is about 13 dB against 15 dB with no curve. That error
can come from four places, each with its own fix:

(a) the round trip: the mel image, the VAE and the vocoder may not keep absolute levels, so even the
    ground truth comes back at other levels (the ``autoencoder_ceiling`` bounds every generation);
(b) the background: columns where the ground truth is silent (below -60 dBFS) but the generated
    audio is not, or the reverse; the metric counts a column where either is audible;
(c) the events' levels: the generated events exist but do not follow the requested peak levels
    (a regression of generated on requested peak level has slope near 0: no control);
(d) the controller's weight: a controller that has learned the right direction but too weakly
    (the error falls as ``loudness_scale`` rises).

Measured per configuration on the same clips and noise as the benchmark (clip ``i`` seeded
``seed + index``, the video onset detector's mask as in ``both_detected``):

* the benchmark's two numbers (:func:`foleycrafter.eval.running.loudness_scores`);
* the error split by the ground truth's level in each column (:data:`LEVEL_BANDS`): each band's
  share of the scored columns, its mean absolute and mean signed error (generated - truth), so a
  band's contribution to the total is ``share * mean absolute error``;
* event levels: each ground-truth event's peak (the curve's maximum within
  :data:`EVENT_WINDOW_SECONDS` after its onset) in the generated audio against the ground truth's,
  pooled over clips: slope and intercept of the least-squares line, Pearson correlation, mean
  absolute difference.

Configurations: ``vocoder`` (ground truth's mel straight to the vocoder), ``autoencoder`` (through
the VAE too), ``no_curve`` (the default generation), ``exact@S`` (the ground truth's own curve at
``loudness_scale`` S, for each S of the sweep), ``exact@S+gain<=B`` (the first of those with the
gain stage after it, raising by at most B dB: :func:`~foleycrafter.loudness.follow_loudness`, for
each B of ``boosts``; the same audio shaped, no generation of its own).

Run::

    python -m foleycrafter.eval.loudness_sources --model checkpoints/foleycrafter-tiny \\
        --data runs/tiny2/synthfoley_v2 --split validation --num-clips 24 --scales 1,2,4 \\
        --out results/diagnosis/loudness_sources_v2.json
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: The ground truth's level bands (dBFS, lower bound inclusive) the error is split by.
LEVEL_BANDS = (
    ("silent", -math.inf, -60.0),
    ("quiet", -60.0, -40.0),
    ("moderate", -40.0, -20.0),
    ("loud", -20.0, math.inf),
)
#: An event's peak is the curve's maximum over this long after its onset (seconds).
EVENT_WINDOW_SECONDS = 0.08
#: Columns below this level are inaudible (the benchmark's floor, :func:`~foleycrafter.loudness.loudness_error_db`).
AUDIBLE_DB = -60.0


def band_errors(generated, target, floor_db: float = AUDIBLE_DB) -> dict:
    """The benchmark's error split by the target's level in each column.

    Args:
        generated, target: dBFS per mel column ``(T,)`` (the shorter length is used).

    Returns:
        ``{band: {"columns", "share", "mean_abs_db", "mean_signed_db"}}`` over the scored columns
        (where either curve is above ``floor_db``; both floored there as the metric does). ``share``
        is the band's fraction of the scored columns; errors are ``nan`` for an empty band.
    """
    generated, target = np.asarray(generated, dtype=np.float64), np.asarray(target, dtype=np.float64)
    length = min(generated.size, target.size)
    generated, target = generated[:length], target[:length]
    scored = (generated > floor_db) | (target > floor_db)
    difference = np.maximum(generated, floor_db) - np.maximum(target, floor_db)
    total = int(scored.sum())
    out = {}
    for name, low, high in LEVEL_BANDS:
        columns = scored & (target >= low) & (target < high)
        count = int(columns.sum())
        out[name] = {
            "columns": count,
            "share": count / total if total else math.nan,
            "mean_abs_db": float(np.abs(difference[columns]).mean()) if count else math.nan,
            "mean_signed_db": float(difference[columns].mean()) if count else math.nan,
        }
    return out


def pool_band_errors(per_clip: Sequence[Mapping]) -> dict:
    """:func:`band_errors` of several clips pooled column-weighted (each clip's columns count once)."""
    out = {}
    total = sum(clip[name]["columns"] for clip in per_clip for name, _, _ in LEVEL_BANDS)
    for name, _, _ in LEVEL_BANDS:
        counts = np.array([clip[name]["columns"] for clip in per_clip], dtype=np.float64)
        count = float(counts.sum())

        def weighted(key, counts=counts, count=count, name=name):
            values = np.array([clip[name][key] if clip[name]["columns"] else 0.0 for clip in per_clip])
            return float((values * counts).sum() / count) if count else math.nan

        out[name] = {
            "columns": int(count),
            "share": count / total if total else math.nan,
            "mean_abs_db": weighted("mean_abs_db"),
            "mean_signed_db": weighted("mean_signed_db"),
        }
    return out


def event_peaks(curve, onsets, columns_per_second: float, window_seconds: float = EVENT_WINDOW_SECONDS):
    """Each event's peak level: the curve's maximum over ``window_seconds`` from its onset.

    Args:
        curve: dBFS per mel column ``(T,)``; column ``t`` centred at ``(t + 0.5) / columns_per_second`` s.
        onsets: event onset times (seconds).

    Returns:
        float64 ``(len(onsets),)`` dBFS; ``nan`` for an onset past the curve's end.
    """
    curve = np.asarray(curve, dtype=np.float64)
    peaks = []
    for onset in np.asarray(onsets, dtype=np.float64).reshape(-1):
        start = int(math.floor(onset * columns_per_second))
        stop = max(start + 1, int(math.ceil((onset + window_seconds) * columns_per_second)))
        window = curve[max(start, 0) : stop]
        peaks.append(float(window.max()) if window.size else math.nan)
    return np.asarray(peaks, dtype=np.float64)


def level_fit(requested, measured) -> dict:
    """How ``measured`` levels follow ``requested`` ones (dB, pooled events): least-squares slope and
    intercept (slope 1 = full control, 0 = none), Pearson correlation, mean absolute difference."""
    requested, measured = np.asarray(requested, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    keep = np.isfinite(requested) & np.isfinite(measured)
    requested, measured = requested[keep], measured[keep]
    if requested.size < 2 or requested.std() < 1e-9:
        return {"events": int(requested.size), "slope": math.nan, "intercept": math.nan,
                "pearson": math.nan, "mean_abs_db": math.nan}  # fmt: skip
    slope, intercept = np.polyfit(requested, measured, 1)
    pearson = float(np.corrcoef(requested, measured)[0, 1]) if measured.std() > 1e-9 else math.nan
    return {
        "events": int(requested.size),
        "slope": float(slope),
        "intercept": float(intercept),
        "pearson": pearson,
        "mean_abs_db": float(np.abs(measured - requested).mean()),
    }


def _curve(audio, duration: float):
    from ..loudness import audio_loudness, fit_to_clip
    from ..timeline import Timeline

    timeline = Timeline()  # 16 kHz, as the benchmark scores
    return fit_to_clip(audio_loudness(audio, timeline), duration, timeline), timeline.columns_per_second


def run_diagnosis(
    model: str,
    data: str,
    split: str = "validation",
    num_clips: int = 24,
    scales: Sequence[float] = (1.0, 2.0, 4.0),
    boosts: Sequence[float] = (),
    steps: int | None = None,
    guidance_scale: float = 7.5,
    seed: int = 42,
    log=print,
) -> dict:
    """Generate the first ``num_clips`` clips of ``data/split`` under every configuration (module
    docstring) and measure where their loudness error sits. Returns a JSON-ready dict."""
    import torch

    from ..loudness import follow_loudness
    from ..pipeline import FoleyCrafterPipeline
    from ..timeline import Timeline
    from .classifier import read_split, read_wav
    from .running import clip_loudness_condition, loudness_scores

    started = time.perf_counter()
    records = read_split(data, split)[:num_clips]
    if not records:
        raise ValueError(f"{data}/{split} holds no clip.")
    pipe = FoleyCrafterPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if pipe.loudness_controller is None:
        raise ValueError(f"{model} has no loudness controller: there is nothing to diagnose.")
    steps = int(steps or pipe.config.get("default_num_inference_steps", 25) or 25)
    configurations = ["vocoder", "autoencoder", "no_curve", *[f"exact@{float(s):g}" for s in scales]]
    shaped = f"exact@{float(scales[0]):g}" if scales else None
    configurations += [f"{shaped}+gain<={float(b):g}" for b in boosts if shaped]
    per_config = {
        name: {"clips": [], "bands": [], "requested": [], "measured": []} for name in configurations
    }
    for number, record in enumerate(records, 1):
        clip_started = time.perf_counter()
        duration = float(record["duration"])
        truth = read_wav(record["audio_path"])[0]
        target, columns_per_second = _curve(truth, duration)
        truth_peaks = event_peaks(target, record["onsets"], columns_per_second)
        clip_curve = None  # the exact curve, made once per clip for every scale
        audios = {}
        for name in configurations:
            if name in ("vocoder", "autoencoder"):
                audio = pipe.autoencode_audio(truth, through_vae=name == "autoencoder")
            elif "+gain<=" in name:
                boost = float(name.split("<=")[1])
                audio = follow_loudness(audios[shaped], clip_curve, Timeline(), max_boost_db=boost)
            else:
                kwargs = {
                    "prompt": "",
                    "video": record["video_path"],
                    "audio_length_in_s": duration,
                    "num_inference_steps": steps,
                    "guidance_scale": guidance_scale,
                    "generator": torch.Generator("cpu").manual_seed(int(seed) + int(record["index"])),
                }
                if name != "no_curve":
                    if clip_curve is None:
                        clip_curve = clip_loudness_condition(pipe, record, "exact", seed)
                    kwargs.update(loudness=clip_curve, loudness_scale=float(name.split("@")[1]))
                audio = np.asarray(pipe(**kwargs).audios[0], dtype=np.float32)
            audios[name] = audio
            generated, _ = _curve(audio, duration)
            entry = per_config[name]
            entry["clips"].append({"id": record["id"], **loudness_scores(audio, truth, duration)})
            entry["bands"].append(band_errors(generated, target))
            entry["requested"].extend(truth_peaks.tolist())
            entry["measured"].extend(event_peaks(generated, record["onsets"], columns_per_second).tolist())
        log(f"[{number}/{len(records)}] {record['id']} ({time.perf_counter() - clip_started:.1f} s)")
    results = {}
    for name, entry in per_config.items():
        errors = [c["loudness_error_db"] for c in entry["clips"] if c["loudness_error_db"] is not None]
        correlations = [
            c["loudness_correlation"] for c in entry["clips"] if c["loudness_correlation"] is not None
        ]
        results[name] = {
            "loudness_error_db": float(np.mean(errors)) if errors else math.nan,
            "loudness_correlation": float(np.mean(correlations)) if correlations else math.nan,
            "bands": pool_band_errors(entry["bands"]),
            "event_levels": level_fit(entry["requested"], entry["measured"]),
            "clips": entry["clips"],
        }
    return {
        "model": str(model),
        "data": str(data),
        "split": split,
        "settings": {
            "num_clips": len(records),
            "steps": steps,
            "guidance_scale": guidance_scale,
            "seed": seed,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "configurations": results,
    }


def summary(results: Mapping) -> str:
    """One line per configuration: the benchmark's numbers, each band's share and errors, the events' fit."""
    lines = [f"{results['settings']['num_clips']} clips of {results['split']}, {results['seconds']} s"]
    for name, entry in results["configurations"].items():
        fit = entry["event_levels"]
        lines.append(
            f"{name:14s} error {entry['loudness_error_db']:5.1f} dB  corr {entry['loudness_correlation']:.2f}  "
            f"events: slope {fit['slope']:.2f} r {fit['pearson']:.2f} |d| {fit['mean_abs_db']:.1f} dB"
        )
        for band, _, _ in LEVEL_BANDS:
            b = entry["bands"][band]
            lines.append(
                f"    {band:9s} share {b['share']:.2f}  |err| {b['mean_abs_db']:5.1f}  signed {b['mean_signed_db']:+5.1f}"
                f"  -> {b['share'] * b['mean_abs_db']:.1f} dB of the total"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="SynthFoley root (version 2: levels vary)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--num-clips", type=int, default=24)
    parser.add_argument("--scales", default="1,2,4", help="loudness_scale values of the exact curve")
    parser.add_argument(
        "--boosts", default="", help="the gain stage's largest raise (dB) after the first scale, e.g. 24,36"
    )
    parser.add_argument("--steps", type=int, default=None, help="default: the model's own")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import torch

    from .report import write_results

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; remove it or choose another --out.")
    results = run_diagnosis(
        args.model,
        args.data,
        split=args.split,
        num_clips=args.num_clips,
        scales=[float(s) for s in args.scales.split(",") if s.strip()],
        boosts=[float(b) for b in args.boosts.split(",") if b.strip()],
        steps=args.steps,
    )
    write_results(results, out)  # atomically, NaN as null
    print(summary(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
