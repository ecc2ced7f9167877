"""Where do the extra onsets of generated audio come from? A diagnosis in three places.

The bundled tiny model's audio carries about twice as many onsets as the ground truth, many of them
far (> 150 ms) from any true onset. An extra onset can be born in three places, and each calls for a
different fix:

(a) the generated mel spectrogram itself (UNet + temporal controller paint an event the timestamp
    mask does not ask for);
(b) the vocoder (Griffin-Lim turns a smooth mel region into audio with a transient: phase
    artefacts, pre-echo);
(c) the audio onset detector (:func:`foleycrafter.audio_onsets.detect_audio_onsets`) reacting to
    something in generated audio that is no sound event (noise texture, level wobble).

This module measures each on a SynthFoley split, generating every clip with the **ground-truth**
onsets as the controller's condition (so the video onset detector's errors do not enter) and only
clips that fit one model window. Per clip and in total:

1. **Audio onsets** of the generated audio, each classified by its distance to the nearest true
   onset: ``matched`` (<= 50 ms), ``near`` (50-150 ms), ``far`` (> 150 ms); the same for the
   ground-truth audio (the detector's own false onsets on real audio).
2. **Mel-domain referee.** Onsets detected directly in the mel image (:func:`detect_mel_onsets`: the
   audio detector's spectral flux idea, computed on the mel columns), with its precision on the
   ground-truth mel of the same clips (it must rarely fire where there is no event, to be a fair
   referee). For every far audio onset: is there a mel-domain onset within 50 ms? Compared with the
   chance rate (the fraction of all times in the same far region that have one nearby). Mel
   onsets of the generated mel are also classified like audio onsets.
3. **Vocoder.** The generated mel re-rendered by a stronger Griffin-Lim (more iterations, same
   config otherwise); the ground-truth mel (computed as ``pipe.autoencode_audio(...,
   through_vae=False)`` computes it) rendered by the pipeline's vocoder and by the stronger one:
   far onsets of each (the vocoder's own false-onset rate on real mels). Also the ground-truth mel
   through the VAE (encode, decode; the benchmark's ``autoencoder_ceiling``) and the vocoder, with
   the referee on the VAE-decoded mel: what the VAE alone adds.
4. **Off-mask energy.** Mean column energy (dB) of the generated mel in columns farther than 150 ms
   from every true onset, against the same columns of the ground-truth mel; also in the other
   (on-mask) columns.
5. **Noise-following.** A few clips generated with seed 0 and again with seed 1: the Pearson
   correlation of per-column energy profiles (off-mask columns of both clips) between different
   clips with the same seed, against different clips with different seeds (and the same clip with
   different seeds). If extra events follow the initial noise, same-seed profiles correlate. Also
   the fraction of far mel onsets of one clip that recur (within 50 ms) in another clip.
6. **Temporal scale sweep.** Far onsets (audio and mel) at several controller weights, 0 = off.
7. **Detector masks.** The same clips and noise with the mask made by the video onset detector (the
   benchmark's default, ``both_detected``): how many far audio onsets sit at a mask onset the
   detector invented, and how many are in the mel without one.

Conventions: 100 mel columns per second (hop 160 at 16 kHz); column ``t`` is centred at
``(t + 0.5) / 100`` s. Mel spectrograms here are natural-log mel magnitudes ``(n_mels, T)``, low
frequencies first (as :func:`foleycrafter.spectrogram.image_to_log_mel` returns them). Column energy
is ``10 log10(mean over bands of magnitude^2)`` dB.

Run::

    python -m foleycrafter.eval.onset_sources --model checkpoints/foleycrafter-tiny \\
        --data runs/tiny2/synthfoley --split validation --num-clips 16 \\
        --out results/diagnosis/onset_sources_v1.json

The pure functions (classification, mel-domain detection, energies, correlations) come first and
work on plain arrays; the generation loop (:func:`run_diagnosis`) follows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

#: Mel columns per second (16 kHz audio, hop 160).
COLUMNS_PER_SECOND = 100.0
#: An onset within this many seconds of a true onset is ``matched``.
MATCH_SECONDS = 0.05
#: Beyond ``MATCH_SECONDS`` and up to this many seconds it is ``near``; farther it is ``far``.
NEAR_SECONDS = 0.15
ONSET_CLASSES = ("matched", "near", "far")


# -- onset classification ------------------------------------------------------------------------------
#: The onset lists counted per clip (matched / near / far): audio or mel, real or generated.
ONSET_SOURCES = (
    "ground_truth_audio",
    "ground_truth_mel_vocoder",
    "ground_truth_mel_strong_vocoder",
    "generated_audio",
    "generated_mel_strong_vocoder",
    "generated_mel_onsets",
    "generated_audio_remel_onsets",
    "ground_truth_vae_vocoder",
    "ground_truth_vae_mel_onsets",
)
#: The same with the video onset detector's mask instead of the ground-truth onsets.
DETECTED_ONSET_SOURCES = ("detected_mask_onsets", "detected_generated_audio", "detected_generated_mel_onsets")


def nearest_distances(times, reference) -> np.ndarray:
    """Distance (s) from each of ``times`` (N,) to the nearest of ``reference`` (M,) seconds.

    Returns float64 (N,); ``inf`` everywhere when ``reference`` is empty."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    reference = np.sort(np.asarray(reference, dtype=np.float64).reshape(-1))
    if reference.size == 0:
        return np.full(times.shape, np.inf)
    return np.abs(times[:, None] - reference[None, :]).min(axis=1)


def classify_onsets(
    times, reference, match_s: float = MATCH_SECONDS, near_s: float = NEAR_SECONDS
) -> np.ndarray:
    """Label each onset of ``times`` (N,) seconds by its distance to the nearest ``reference`` onset.

    Not a one-to-one matching: two onsets next to one true onset are both ``matched``. The question
    here is where onsets appear, not how many true onsets were hit.

    Returns:
        (N,) array of ``"matched"`` (distance <= ``match_s``), ``"near"`` (<= ``near_s``) or ``"far"``.
    """
    distance = nearest_distances(times, reference)
    labels = np.full(distance.shape, "far", dtype=object)
    labels[distance <= near_s + 1e-9] = "near"
    labels[distance <= match_s + 1e-9] = "matched"
    return labels


def count_classes(labels) -> dict:
    """``{"total", "matched", "near", "far"}`` counts of :func:`classify_onsets` labels."""
    labels = list(labels)
    counts = {"total": len(labels)}
    counts.update({name: sum(1 for label in labels if label == name) for name in ONSET_CLASSES})
    return counts


def add_counts(total: dict, counts: Mapping) -> dict:
    """Add the integer entries of ``counts`` into ``total`` (in place) and return it."""
    for key, value in counts.items():
        total[key] = total.get(key, 0) + int(value)
    return total


def fraction_with_nearby(times, others, tolerance_s: float = MATCH_SECONDS) -> float:
    """Fraction of ``times`` (s) that have one of ``others`` (s) within ``tolerance_s``; NaN when
    ``times`` is empty."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.size == 0:
        return float("nan")
    return float(np.mean(nearest_distances(times, others) <= tolerance_s + 1e-9))


# -- columns and energies ------------------------------------------------------------------------------
def column_times(num_columns: int, columns_per_second: float = COLUMNS_PER_SECOND) -> np.ndarray:
    """Centre time (s) of each of ``num_columns`` mel columns: ``(t + 0.5) / columns_per_second``."""
    return (np.arange(int(num_columns)) + 0.5) / float(columns_per_second)


def active_column_count(duration: float, columns_per_second: float = COLUMNS_PER_SECOND) -> int:
    """Mel columns that cover ``duration`` seconds of audio (rounded up)."""
    return int(math.ceil(float(duration) * columns_per_second - 1e-9))


def _clip_columns(num_columns: int, duration: float, columns_per_second: float) -> np.ndarray:
    """bool (num_columns,): the columns that cover the clip's ``duration`` seconds."""
    return np.arange(num_columns) < min(num_columns, active_column_count(duration, columns_per_second))


def off_mask_columns(
    reference,
    num_columns: int,
    duration: float,
    exclusion_s: float = NEAR_SECONDS,
    columns_per_second: float = COLUMNS_PER_SECOND,
) -> np.ndarray:
    """Columns of the clip farther than ``exclusion_s`` from every true onset.

    Args:
        reference: true onset times (s).
        num_columns: width of the mel spectrogram (columns).
        duration: clip length (s); columns past it are never off-mask (nor on-mask).

    Returns:
        bool (num_columns,). The timestamp mask marks [onset, onset + 0.1 s), so these columns are
        all -1 in it, and also away from the first 50 ms of each event's decay.
    """
    far = nearest_distances(column_times(num_columns, columns_per_second), reference) > exclusion_s
    return _clip_columns(num_columns, duration, columns_per_second) & far


def on_mask_columns(
    reference,
    num_columns: int,
    duration: float,
    exclusion_s: float = NEAR_SECONDS,
    columns_per_second: float = COLUMNS_PER_SECOND,
) -> np.ndarray:
    """The clip's columns within ``exclusion_s`` of a true onset (the complement of
    :func:`off_mask_columns` inside the clip), bool (num_columns,)."""
    off = off_mask_columns(reference, num_columns, duration, exclusion_s, columns_per_second)
    return _clip_columns(num_columns, duration, columns_per_second) & ~off


def column_energy_db(log_mel) -> np.ndarray:
    """Per-column energy of a natural-log mel spectrogram ``(n_mels, T)``: ``10 log10(mean_b
    exp(2 log_mel[b, t]))`` dB, float64 (T,). A column at the log-mel floor (ln 1e-5) is -100 dB."""
    log_mel = np.asarray(log_mel, dtype=np.float64)
    if log_mel.ndim != 2:
        raise ValueError(f"log_mel must be (n_mels, T), got shape {log_mel.shape}.")
    # log-mean-exp of 2 L, stably.
    doubled = 2.0 * log_mel
    peak = doubled.max(axis=0)
    mean_power = np.log(np.mean(np.exp(doubled - peak[None, :]), axis=0)) + peak
    return mean_power * (10.0 / math.log(10.0))


def mean_over(values, columns) -> float:
    """Mean of ``values`` (T,) over the bool ``columns`` (T,); NaN when none is selected."""
    values = np.asarray(values, dtype=np.float64)
    columns = np.asarray(columns, dtype=bool)
    return float(values[columns].mean()) if columns.any() else float("nan")


# -- mel-domain onset detection ------------------------------------------------------------------------
@dataclass(frozen=True)
class MelOnsets:
    """Onsets found in a mel spectrogram by :func:`detect_mel_onsets`.

    Attributes:
        times: onset times (s), sorted, (N,).
        strengths: the flux at each onset's column, (N,).
        envelope: the flux per column, (T,).
        threshold: the threshold per column a peak had to reach, (T,).
    """

    times: np.ndarray
    strengths: np.ndarray
    envelope: np.ndarray
    threshold: np.ndarray

    def __len__(self) -> int:
        return int(self.times.size)


def mel_flux(
    log_mel,
    n_bands: int | None = 64,
    gamma: float = 100.0,
    lag_columns: int = 2,
    max_filter_bands: int = 1,
) -> np.ndarray:
    """Spectral flux of a natural-log mel spectrogram, as the audio detector computes it on its STFT.

    The mel magnitudes are summed into ``n_bands`` groups of adjacent bands (``None``: every band),
    compressed as ``C = log1p(gamma * band / loudest band of the clip)`` (the knee 40 dB below the
    loudest for gamma 100, so the level of quiet noise barely matters), and
    ``D[t] = mean_b max(0, C[b, t] - max(C[b', t - k] for k in 1..lag_columns, |b' - b| <=
    max_filter_bands))``: only a rise above the recent maximum of neighbouring bands counts.

    Args:
        log_mel: (n_mels, T) natural-log mel magnitudes.

    Returns:
        float64 (T,), 0 at column 0 (nothing precedes it).
    """
    log_mel = np.asarray(log_mel, dtype=np.float64)
    if log_mel.ndim != 2 or log_mel.shape[1] == 0:
        raise ValueError(f"log_mel must be a non-empty (n_mels, T) array, got shape {log_mel.shape}.")
    if lag_columns < 1:
        raise ValueError(f"lag_columns must be >= 1, got {lag_columns}.")
    magnitude = np.exp(log_mel)
    if n_bands is not None and n_bands < magnitude.shape[0]:
        groups = np.array_split(np.arange(magnitude.shape[0]), int(n_bands))
        magnitude = np.stack([magnitude[g].sum(axis=0) for g in groups])
    loudest = magnitude.max()
    compressed = np.log1p(gamma * magnitude / loudest) if loudest > 0 else np.zeros_like(magnitude)
    spread = maximum_filter1d(compressed, size=2 * int(max_filter_bands) + 1, axis=0, mode="nearest")
    columns = compressed.shape[1]
    # previous[:, t] = max of spread[:, t - lag_columns .. t - 1], the first column repeated before t = 0.
    padded = np.concatenate([np.repeat(spread[:, :1], lag_columns, axis=1), spread], axis=1)
    previous = np.max(
        np.stack([padded[:, lag_columns - k : lag_columns - k + columns] for k in range(1, lag_columns + 1)]),
        axis=0,
    )
    flux = np.maximum(0.0, compressed - previous).mean(axis=0)
    flux[0] = 0.0
    return flux


def pick_peaks(
    envelope,
    peak_window: int = 3,
    median_window: int = 21,
    delta: float = 0.03,
    noise_factor: float = 8.0,
    min_interval: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a detection function, in the audio detector's manner (all lengths in columns).

    A column is a peak when it is the maximum within ``+-peak_window``, positive, and at least the
    larger of the centred moving median over ``median_window`` plus ``delta`` and the clip-wide
    floor ``median + noise_factor * 1.4826 * MAD``. Of peaks closer than ``min_interval``, the
    stronger is kept.

    Returns:
        (peak column indices sorted (N,), threshold per column (T,)).
    """
    envelope = np.asarray(envelope, dtype=np.float64)
    if envelope.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    local = median_filter(envelope, size=int(median_window), mode="nearest") + delta
    centre = np.median(envelope)
    sigma = 1.4826 * np.median(np.abs(envelope - centre))
    threshold = np.maximum(local, centre + noise_factor * sigma)
    is_max = envelope >= maximum_filter1d(envelope, size=2 * int(peak_window) + 1, mode="nearest")
    candidates = np.flatnonzero(is_max & (envelope > 0) & (envelope >= threshold))
    kept: list[int] = []
    for index in candidates[np.argsort(-envelope[candidates], kind="stable")]:
        if all(abs(int(index) - other) >= min_interval for other in kept):
            kept.append(int(index))
    return np.array(sorted(kept), dtype=int), threshold


#: Seconds added to a flux peak column's centre to place the onset: the analysis window (64 ms
#: Hann) reaches a sound before its centre does, so the flux peaks early. Measured on the
#: ground-truth mels of the first 60 clips (<= 5.12 s) of the SynthFoley train split (runs/tiny2):
#: 207 true onsets, median offset 14.6 ms (10-90 %: 10.7-18.9 ms).
MEL_ONSET_OFFSET_S = 0.015


def detect_mel_onsets(
    log_mel,
    columns_per_second: float = COLUMNS_PER_SECOND,
    offset_s: float = MEL_ONSET_OFFSET_S,
    n_bands: int | None = 64,
    gamma: float = 100.0,
    lag_columns: int = 2,
    delta: float = 0.03,
    noise_factor: float = 8.0,
    min_interval_s: float = 0.1,
    num_columns: int | None = None,
) -> MelOnsets:
    """Onsets read directly off a mel spectrogram: :func:`mel_flux` + :func:`pick_peaks`.

    Args:
        log_mel: (n_mels, T) natural-log mel magnitudes (low frequencies first).
        offset_s: added to each peak column's centre time (see :data:`MEL_ONSET_OFFSET_S`).
        num_columns: analyse only the first this many columns (the clip's, not the window padding).

    Returns:
        :class:`MelOnsets` with times in seconds.
    """
    log_mel = np.asarray(log_mel, dtype=np.float64)
    if num_columns is not None:
        log_mel = log_mel[:, : int(num_columns)]
    flux = mel_flux(log_mel, n_bands=n_bands, gamma=gamma, lag_columns=lag_columns)
    peaks, threshold = pick_peaks(
        flux,
        peak_window=3,
        median_window=int(round(0.2 * columns_per_second)) | 1,
        delta=delta,
        noise_factor=noise_factor,
        min_interval=max(1, int(round(min_interval_s * columns_per_second))),
    )
    times = column_times(flux.size, columns_per_second)[peaks] + offset_s
    return MelOnsets(times=times, strengths=flux[peaks], envelope=flux, threshold=threshold)


def mask_onset_times(mask, columns_per_second: float = COLUMNS_PER_SECOND) -> np.ndarray:
    """Start times (s) of the events of a +-1 timestamp mask (T,): the columns where a run of +1
    begins, at ``column / columns_per_second`` (the mask marks [onset, onset + 0.1 s))."""
    on = np.asarray(mask, dtype=np.float64).reshape(-1) > 0
    starts = np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))
    return starts / float(columns_per_second)


def referee_scores(mel_times, reference, tolerance_s: float = MATCH_SECONDS) -> dict:
    """How well mel-domain onsets ``mel_times`` (s) find the true onsets ``reference`` (s).

    Returns ``precision`` (fraction of mel onsets within ``tolerance_s`` of a true onset),
    ``recall`` (fraction of true onsets with a mel onset within it) and the counts."""
    mel_times = np.asarray(mel_times, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    hits = int(np.sum(nearest_distances(mel_times, reference) <= tolerance_s + 1e-9))
    found = int(np.sum(nearest_distances(reference, mel_times) <= tolerance_s + 1e-9))
    return {
        "num_mel_onsets": int(mel_times.size),
        "num_reference": int(reference.size),
        "mel_onsets_near_truth": hits,
        "truths_found": found,
        "precision": hits / mel_times.size if mel_times.size else float("nan"),
        "recall": found / reference.size if reference.size else float("nan"),
    }


def chance_of_nearby(
    onset_times, region, tolerance_s: float = MATCH_SECONDS, columns_per_second: float = COLUMNS_PER_SECOND
) -> float:
    """Fraction of the columns in ``region`` (bool (T,)) whose centre has one of ``onset_times`` (s)
    within ``tolerance_s``: the rate at which a time drawn at random in that region would "have a
    mel onset nearby" by chance. NaN for an empty region."""
    region = np.asarray(region, dtype=bool)
    if not region.any():
        return float("nan")
    times = column_times(region.size, columns_per_second)[region]
    return float(np.mean(nearest_distances(times, onset_times) <= tolerance_s + 1e-9))


# -- noise-following -----------------------------------------------------------------------------------
def pearson(a, b) -> float:
    """Pearson correlation of two equal-length 1-D arrays; NaN if fewer than 3 values or one is constant."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"pearson needs arrays of equal length, got {a.size} and {b.size}.")
    if a.size < 3:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 0 else float("nan")


def profile_correlations(profiles: Mapping, keep: Mapping) -> dict:
    """Correlations of per-column energy profiles between generated clips, by seed relation.

    Args:
        profiles: ``{(clip, seed): (T,) energy profile}``, every clip under the same set of seeds.
        keep: ``{clip: bool (T,)}``, the columns usable for that clip (off-mask, inside the clip).
            A pair of clips is compared on the columns usable in both.

    Returns:
        ``same_seed`` (different clips, same seed), ``different_seed`` (the same pairs of different
        clips, one with each seed) and ``same_clip_different_seed`` (one clip, two seeds): each
        ``{"mean", "values"}``, the mean over pairs (NaN pairs, e.g. too few columns, left out).
    """
    clips = sorted({clip for clip, _ in profiles})
    seeds = sorted({seed for _, seed in profiles})
    groups: dict[str, list[float]] = {"same_seed": [], "different_seed": [], "same_clip_different_seed": []}
    for a, b in itertools.combinations(clips, 2):
        columns = np.asarray(keep[a], dtype=bool) & np.asarray(keep[b], dtype=bool)
        for s, t in itertools.product(seeds, seeds):
            value = pearson(profiles[(a, s)][columns], profiles[(b, t)][columns])
            groups["same_seed" if s == t else "different_seed"].append(value)
    for clip in clips:
        columns = np.asarray(keep[clip], dtype=bool)
        for s, t in itertools.combinations(seeds, 2):
            groups["same_clip_different_seed"].append(
                pearson(profiles[(clip, s)][columns], profiles[(clip, t)][columns])
            )
    return {
        name: {
            "mean": float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
            "values": [round(v, 4) for v in values],
        }
        for name, values in groups.items()
    }


def recurrence_rates(onsets: Mapping, tolerance_s: float = MATCH_SECONDS) -> dict:
    """How often an onset of one generated clip recurs at the same time in another.

    Args:
        onsets: ``{(clip, seed): (times (s), region bool (T,))}``: a clip's far onsets and its
            off-mask columns; clip ``a``'s onsets count only where clip ``b``'s region holds them too
            (there ``b`` had no true event to place one).

    Returns:
        ``same_seed`` / ``different_seed``: the fraction of such onsets of ``a`` with an onset of ``b``
        within ``tolerance_s`` (pooled over ordered pairs of different clips), ``num`` onsets
        considered, and ``chance_*`` the same rate for random times of the shared region.
    """
    keys = sorted(onsets)
    found = {"same_seed": [0, 0], "different_seed": [0, 0]}
    chance: dict[str, list[float]] = {"same_seed": [], "different_seed": []}
    for key_a, key_b in itertools.permutations(keys, 2):
        if key_a[0] == key_b[0]:
            continue
        group = "same_seed" if key_a[1] == key_b[1] else "different_seed"
        times_a, region_a = onsets[key_a]
        times_b, region_b = onsets[key_b]
        shared = np.asarray(region_a, dtype=bool) & np.asarray(region_b, dtype=bool)
        columns = np.clip((np.asarray(times_a) * COLUMNS_PER_SECOND).astype(int), 0, shared.size - 1)
        considered = np.asarray(times_a)[shared[columns]] if len(times_a) else np.zeros(0)
        found[group][0] += int(np.sum(nearest_distances(considered, times_b) <= tolerance_s + 1e-9))
        found[group][1] += int(considered.size)
        rate = chance_of_nearby(times_b, shared, tolerance_s)
        if np.isfinite(rate):
            chance[group].append(rate)
    return {
        **{name: (hit / n if n else float("nan")) for name, (hit, n) in found.items()},
        **{f"num_{name}": n for name, (_, n) in found.items()},
        **{f"chance_{name}": float(np.mean(v)) if v else float("nan") for name, v in chance.items()},
    }


# -- generation ----------------------------------------------------------------------------------------
def _select_records(data, split: str, num_clips: int, max_duration: float) -> list[dict]:
    from .classifier import read_split

    records = [r for r in read_split(data, split) if float(r["duration"]) <= max_duration + 1e-9]
    return records[:num_clips]


def _generate(
    pipe, record, seed: int, temporal_scale: float, steps: int, guidance_scale: float, truth_onsets=True
):
    """One clip as the benchmark's ``generate_clip_audio`` makes it, with ground-truth onsets
    (``truth_onsets=False``: the pipeline's video onset detector makes the mask, as in ``both_detected``).

    Returns (audio (samples,) float32, mel image (3, n_mels, window_columns) in [0, 1], mask or None)."""
    import torch

    kwargs = {
        "prompt": "",
        "video": record["video_path"],
        "audio_length_in_s": float(record["duration"]),
        "num_inference_steps": steps,
        "guidance_scale": guidance_scale,
        "semantic_scale": 1.0,
        "temporal_scale": float(temporal_scale),
        "generator": torch.Generator("cpu").manual_seed(int(seed)),
    }
    if temporal_scale > 0 and truth_onsets:
        kwargs["onsets"] = list(record["onsets"])
    out = pipe(**kwargs)
    audio = np.asarray(out.audios[0], dtype=np.float32)
    mask = None if out.timestamp_masks is None else np.asarray(out.timestamp_masks[0])
    return audio, np.asarray(out.mel_images[0], dtype=np.float32), mask


def _image_log_mel(image) -> np.ndarray:
    """(3, n_mels, T) mel image -> (n_mels, T) natural-log mel, low frequencies first."""
    import torch

    from ..spectrogram import image_to_log_mel

    return image_to_log_mel(torch.as_tensor(np.asarray(image, dtype=np.float32))[None])[0].double().numpy()


def _render(vocoder, image, num_samples: int) -> np.ndarray:
    """Mel image (3, n_mels, T) or (1, 3, n_mels, T) -> float32 audio cut to ``num_samples``."""
    import torch

    from ..spectrogram import image_to_log_mel

    image = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if image.dim() == 3:
        image = image[None]
    with torch.no_grad():
        audio = vocoder(image_to_log_mel(image)).float()[0]
    return audio[:num_samples].numpy().astype(np.float32)


def _waveform_log_mel(pipe, audio) -> np.ndarray:
    """(n_mels, columns) natural-log mel of a waveform, computed as training data is (clamped like
    the mel image)."""
    import torch

    from ..spectrogram import LOG_MEL_MAX, LOG_MEL_MIN, MelSpectrogram

    timeline = pipe.timeline()
    mel = MelSpectrogram(sample_rate=timeline.sample_rate, hop_length=timeline.hop_length, n_mels=pipe.n_mels)
    log_mel = mel(torch.as_tensor(np.asarray(audio, dtype=np.float32)))[0]
    return log_mel.clamp(LOG_MEL_MIN, LOG_MEL_MAX).double().numpy()


def _audio_onsets(audio) -> np.ndarray:
    from ..audio_onsets import detect_audio_onsets

    return np.asarray(detect_audio_onsets(audio, 16000).times, dtype=np.float64)


def _rounded(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def _strong_vocoder(pipe, n_iter: int):
    from ..models.griffin_lim import GriffinLimVocoder

    config = {k: v for k, v in dict(pipe.vocoder.config).items() if not k.startswith("_")}
    config["n_iter"] = int(n_iter)
    return GriffinLimVocoder(**config).eval()


def run_diagnosis(
    model: str,
    data: str,
    split: str = "validation",
    num_clips: int = 16,
    max_duration: float = 5.12,
    steps: int = 25,
    guidance_scale: float = 7.5,
    temporal_scale: float = 0.5,
    seed: int = 42,
    strong_iterations: int = 128,
    noise_clips: int = 6,
    noise_seeds: Sequence[int] = (0, 1),
    sweep_scales: Sequence[float] = (0.0, 0.2, 1.0),
    detected: bool = True,
    log=print,
) -> dict:
    """Generate the clips and measure everything the module docstring lists.

    Args:
        model: a FoleyCrafter model folder.
        data: SynthFoley root with ``<split>/metadata.jsonl``.
        num_clips: the first this many clips of the split lasting at most ``max_duration`` seconds.
        temporal_scale: controller weight of the main run (clip ``i`` seeded ``seed + index``).
        strong_iterations: Griffin-Lim iterations of the stronger vocoder.
        noise_clips, noise_seeds: the noise-following experiment (the first ``noise_clips`` clips).
        sweep_scales: extra temporal scales for the sweep (the main scale is reused).
        detected: also generate each clip with the video onset detector's mask (the benchmark's
            ``both_detected``) and trace its far onsets to false mask onsets.

    Returns:
        A JSON-ready dict (see ``totals``, ``noise_following``, ``temporal_scale_sweep``, ``clips``).
    """
    import torch

    from ..pipeline import FoleyCrafterPipeline
    from .classifier import read_wav

    started = time.perf_counter()
    records = _select_records(data, split, num_clips, max_duration)
    if not records:
        raise ValueError(f"no clip of {data}/{split} lasts at most {max_duration} s.")
    pipe = FoleyCrafterPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    strong = _strong_vocoder(pipe, strong_iterations)

    totals = {name: {} for name in ONSET_SOURCES + (DETECTED_ONSET_SOURCES if detected else ())}
    referee_totals = {"num_mel_onsets": 0, "num_reference": 0, "mel_onsets_near_truth": 0, "truths_found": 0}
    far_in_mel, far_in_remel, orientation = [0, 0], 0, []
    vae_far_in_mel, detected_far, vae_check = [0, 0], {}, float("nan")
    chance_rates, energies, clips, vocoder_check = [], [], [], 0.0
    generated_by_clip = {}
    for number, record in enumerate(records, 1):
        clip_started = time.perf_counter()
        truth = np.asarray(record["onsets"], dtype=np.float64)
        duration = float(record["duration"])
        audio_truth, rate = read_wav(record["audio_path"])
        if rate != 16000:
            raise ValueError(f"{record['audio_path']}: expected 16 kHz audio, got {rate} Hz.")
        num_samples = audio_truth.size

        # Ground truth: audio, mel, mel through both vocoders.
        truth_image = pipe.audio_to_mel_image(audio_truth)
        truth_log_mel = _image_log_mel(truth_image[0])
        columns = active_column_count(duration)
        truth_mel_onsets = detect_mel_onsets(truth_log_mel, num_columns=columns).times
        referee = referee_scores(truth_mel_onsets, truth)
        add_counts(referee_totals, {k: referee[k] for k in referee_totals})
        vocoded_truth = _render(pipe.vocoder, truth_image, num_samples)
        # The VAE alone: the ground-truth mel image encoded and decoded (the autoencoder_ceiling row).
        vae_image = pipe.autoencode_mel_image(truth_image).float().cpu()
        vae_audio = _render(pipe.vocoder, vae_image, num_samples)
        vae_mel_onsets = detect_mel_onsets(_image_log_mel(vae_image[0]), num_columns=columns).times
        if number == 1:  # the same audio as the benchmark's vocoder_ceiling / autoencoder_ceiling rows
            reference = pipe.autoencode_audio(audio_truth, through_vae=False)
            vocoder_check = float(np.max(np.abs(reference - vocoded_truth)))
            reference = pipe.autoencode_audio(audio_truth, through_vae=True)
            vae_check = float(np.max(np.abs(reference - vae_audio)))
        rows = {
            "ground_truth_audio": _audio_onsets(audio_truth),
            "ground_truth_mel_vocoder": _audio_onsets(vocoded_truth),
            "ground_truth_mel_strong_vocoder": _audio_onsets(_render(strong, truth_image, num_samples)),
            "ground_truth_vae_vocoder": _audio_onsets(vae_audio),
            "ground_truth_vae_mel_onsets": vae_mel_onsets,
        }

        # Generated.
        index = int(record["index"])
        audio, image, mask = _generate(pipe, record, seed + index, temporal_scale, steps, guidance_scale)
        log_mel = _image_log_mel(image)
        generated_by_clip[record["id"]] = (audio, image, mask)
        rerendered = _render(pipe.vocoder, image, audio.size)
        rows["generated_audio"] = _audio_onsets(audio)
        rows["generated_mel_strong_vocoder"] = _audio_onsets(_render(strong, image, audio.size))
        mel_onsets = detect_mel_onsets(log_mel, num_columns=columns).times
        rows["generated_mel_onsets"] = mel_onsets
        # The mel of the rendered audio (what the vocoder actually produced), same referee.
        resynthesized = detect_mel_onsets(_waveform_log_mel(pipe, audio), num_columns=columns).times
        rows["generated_audio_remel_onsets"] = resynthesized
        # The benchmark's default: the mask from the video onset detector instead of the truth.
        if detected:
            audio_d, image_d, mask_d = _generate(
                pipe, record, seed + index, temporal_scale, steps, guidance_scale, truth_onsets=False
            )
            detected_mask_onsets = mask_onset_times(mask_d) if mask_d is not None else np.zeros(0)
            rows["detected_mask_onsets"] = detected_mask_onsets
            rows["detected_generated_audio"] = _audio_onsets(audio_d)
            rows["detected_generated_mel_onsets"] = detect_mel_onsets(
                _image_log_mel(image_d), num_columns=columns
            ).times

        row = {
            "id": record["id"],
            "index": index,
            "class_name": record["class_name"],
            "duration": duration,
            "true_onsets": _rounded(truth),
            "vocoder_rerender_max_abs_diff": float(np.max(np.abs(rerendered - audio))),
            "referee_on_ground_truth_mel": referee,
            "mask_on_columns": None if mask is None else int(np.sum(mask > 0)),
        }
        for name, times in rows.items():
            labels = classify_onsets(times, truth)
            counts = count_classes(labels)
            add_counts(totals[name], counts)
            row[name] = {"counts": counts, "times": _rounded(times), "labels": list(labels)}

        # Far audio onsets: in the mel?
        far_audio = rows["generated_audio"][classify_onsets(rows["generated_audio"], truth) == "far"]
        in_mel = int(np.sum(nearest_distances(far_audio, mel_onsets) <= MATCH_SECONDS + 1e-9))
        in_remel = int(np.sum(nearest_distances(far_audio, resynthesized) <= MATCH_SECONDS + 1e-9))
        far_vae = rows["ground_truth_vae_vocoder"][
            classify_onsets(rows["ground_truth_vae_vocoder"], truth) == "far"
        ]
        vae_far_in_mel[0] += int(np.sum(nearest_distances(far_vae, vae_mel_onsets) <= MATCH_SECONDS + 1e-9))
        vae_far_in_mel[1] += int(far_vae.size)
        if detected:
            audio_d_times = rows["detected_generated_audio"]
            far_d = audio_d_times[classify_onsets(audio_d_times, truth) == "far"]
            near_mask = nearest_distances(far_d, rows["detected_mask_onsets"]) <= MATCH_SECONDS + 1e-9
            near_mel = nearest_distances(far_d, rows["detected_generated_mel_onsets"]) <= MATCH_SECONDS + 1e-9
            add_counts(
                detected_far,
                {
                    "far_audio_onsets": far_d.size,
                    "at_a_false_mask_onset": int(near_mask.sum()),
                    "in_the_mel": int(near_mel.sum()),
                    "in_the_mel_not_at_a_mask_onset": int(np.sum(near_mel & ~near_mask)),
                },
            )
        far_in_mel[0] += in_mel
        far_in_mel[1] += int(far_audio.size)
        far_in_remel += in_remel
        off = off_mask_columns(truth, log_mel.shape[1], duration)
        on = on_mask_columns(truth, log_mel.shape[1], duration)
        chance = chance_of_nearby(mel_onsets, off)
        if np.isfinite(chance):
            chance_rates.append(chance)
        row["far_audio_onsets_with_mel_onset"] = in_mel
        row["far_audio_onsets_with_remel_onset"] = in_remel
        row["chance_of_mel_onset_nearby_off_mask"] = chance

        # Orientation: the generated mel's mean spectrum should match the truth's, not its mirror image.
        band_generated = log_mel[:, :columns].mean(axis=1)
        band_truth = truth_log_mel[:, :columns].mean(axis=1)
        orientation.append((pearson(band_generated, band_truth), pearson(band_generated[::-1], band_truth)))

        # Energies (dB), generated vs ground truth on the same columns.
        energy_generated = column_energy_db(log_mel)
        energy_truth = column_energy_db(truth_log_mel)
        width = min(energy_generated.size, energy_truth.size)
        off_w, on_w = off[:width], on[:width]
        energy = {
            "off_mask_columns": int(off_w.sum()),
            "on_mask_columns": int(on_w.sum()),
            "generated_off_mask_db": mean_over(energy_generated[:width], off_w),
            "ground_truth_off_mask_db": mean_over(energy_truth[:width], off_w),
            "generated_on_mask_db": mean_over(energy_generated[:width], on_w),
            "ground_truth_on_mask_db": mean_over(energy_truth[:width], on_w),
        }
        energies.append(energy)
        row["energy"] = energy
        row["seconds"] = round(time.perf_counter() - clip_started, 2)
        clips.append(row)
        log(
            f"[{number}/{len(records)}] {record['id']} ({record['class_name']}, {duration:.2f} s): "
            f"audio onsets {row['generated_audio']['counts']} vs truth {truth.size}; far in mel "
            f"{in_mel}/{far_audio.size}; {row['seconds']} s"
        )

    def pooled_energy(key: str) -> float:
        # Column-weighted mean over clips.
        weight = "off_mask_columns" if "off_mask" in key else "on_mask_columns"
        pairs = [(e[key], e[weight]) for e in energies if e[weight] > 0]
        return float(sum(v * w for v, w in pairs) / sum(w for _, w in pairs)) if pairs else float("nan")

    referee_totals["precision"] = referee_totals["mel_onsets_near_truth"] / max(
        1, referee_totals["num_mel_onsets"]
    )
    referee_totals["recall"] = referee_totals["truths_found"] / max(1, referee_totals["num_reference"])
    results = {
        "description": "where the extra onsets of generated audio come from (module docstring of "
        "foleycrafter.eval.onset_sources)",
        "settings": {
            "model": model,
            "data": os.fspath(data),
            "split": split,
            "num_clips": len(records),
            "max_duration_s": max_duration,
            "steps": steps,
            "guidance_scale": guidance_scale,
            "semantic_scale": 1.0,
            "temporal_scale": temporal_scale,
            "onsets": "ground truth",
            "prompt": "",
            "seed": f"{seed} + record index",
            "vocoder": dict((k, v) for k, v in dict(pipe.vocoder.config).items() if not k.startswith("_")),
            "strong_vocoder_n_iter": strong_iterations,
            "match_s": MATCH_SECONDS,
            "near_s": NEAR_SECONDS,
            "mel_onset_offset_s": MEL_ONSET_OFFSET_S,
            "audio_onset_detector": "foleycrafter.audio_onsets.detect_audio_onsets(audio, 16000)",
            "torch_threads": torch.get_num_threads(),
        },
        "checks": {
            "mean_spectrum_correlation_with_truth": float(np.nanmean([o[0] for o in orientation])),
            "mean_spectrum_correlation_with_truth_if_flipped": float(np.nanmean([o[1] for o in orientation])),
            "ground_truth_render_vs_autoencode_audio_max_abs_diff": vocoder_check,
            "ground_truth_vae_render_vs_autoencode_audio_max_abs_diff": vae_check,
            "generated_rerender_vs_pipeline_audio_max_abs_diff": max(
                c["vocoder_rerender_max_abs_diff"] for c in clips
            ),
        },
        "totals": {
            **totals,
            "mel_referee_on_ground_truth_mel": referee_totals,
            "far_audio_onsets_with_mel_onset_within_50ms": {
                "count": far_in_mel[0],
                "of": far_in_mel[1],
                "fraction": far_in_mel[0] / far_in_mel[1] if far_in_mel[1] else float("nan"),
                "chance_rate_off_mask": float(np.mean(chance_rates)) if chance_rates else float("nan"),
                "with_onset_in_mel_of_the_audio": far_in_remel,
            },
            "vae_far_audio_onsets_with_vae_mel_onset_within_50ms": {
                "count": vae_far_in_mel[0],
                "of": vae_far_in_mel[1],
            },
            "detected_onsets_far_audio_onsets": detected_far or None,
            "energy_db": {
                key: pooled_energy(key)
                for key in (
                    "generated_off_mask_db",
                    "ground_truth_off_mask_db",
                    "generated_on_mask_db",
                    "ground_truth_on_mask_db",
                )
            },
        },
    }

    # Noise-following: the first noise_clips clips under each noise seed.
    noise_records = records[:noise_clips]
    profiles, keep, far_onsets, noise_rows = {}, {}, {}, []
    for record in noise_records:
        truth = np.asarray(record["onsets"], dtype=np.float64)
        duration = float(record["duration"])
        for noise_seed in noise_seeds:
            audio, image, _ = _generate(pipe, record, noise_seed, temporal_scale, steps, guidance_scale)
            log_mel = _image_log_mel(image)
            columns = active_column_count(duration)
            off = off_mask_columns(truth, log_mel.shape[1], duration)
            profiles[(record["id"], noise_seed)] = column_energy_db(log_mel)
            keep[record["id"]] = off
            mel_times = detect_mel_onsets(log_mel, num_columns=columns).times
            far_mel = mel_times[classify_onsets(mel_times, truth) == "far"]
            far_onsets[(record["id"], noise_seed)] = (far_mel, off)
            audio_times = _audio_onsets(audio)
            noise_rows.append(
                {
                    "id": record["id"],
                    "seed": noise_seed,
                    "far_mel_onsets": _rounded(far_mel),
                    "audio_onsets": count_classes(classify_onsets(audio_times, truth)),
                }
            )
        log(f"noise-following: {record['id']} done")
    results["noise_following"] = {
        "clips": [r["id"] for r in noise_records],
        "seeds": list(noise_seeds),
        "profile": "column energy (dB) over columns > 150 ms from every true onset of both clips",
        "correlations": profile_correlations(profiles, keep),
        "far_mel_onset_recurrence_within_50ms": recurrence_rates(far_onsets),
        "rows": noise_rows,
    }

    # Temporal-scale sweep on the same clips and noise.
    sweep = {}
    scales = sorted(set(float(s) for s in sweep_scales) | {float(temporal_scale)})
    for scale in scales:
        audio_counts, mel_counts = {}, {}
        for record in records:
            truth = np.asarray(record["onsets"], dtype=np.float64)
            if scale == float(temporal_scale):
                audio, image, _ = generated_by_clip[record["id"]]
            else:
                audio, image, _ = _generate(
                    pipe, record, seed + int(record["index"]), scale, steps, guidance_scale
                )
            mel_times = detect_mel_onsets(
                _image_log_mel(image), num_columns=active_column_count(float(record["duration"]))
            ).times
            add_counts(audio_counts, count_classes(classify_onsets(_audio_onsets(audio), truth)))
            add_counts(mel_counts, count_classes(classify_onsets(mel_times, truth)))
        sweep[f"{scale:g}"] = {"audio_onsets": audio_counts, "mel_onsets": mel_counts}
        log(f"temporal_scale {scale:g}: audio {audio_counts}, mel {mel_counts}")
    results["temporal_scale_sweep"] = sweep
    results["clips"] = clips
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def summary(results: Mapping) -> str:
    """A few lines of the main numbers of :func:`run_diagnosis`'s results."""
    totals = results["totals"]
    lines = [f"{results['settings']['num_clips']} clips, {results['seconds']} s"]
    for name in ONSET_SOURCES + DETECTED_ONSET_SOURCES:
        if name not in totals:
            continue
        c = totals[name]
        lines.append(
            f"  {name:34s} total {c.get('total', 0):4d}  matched {c.get('matched', 0):4d}  "
            f"near {c.get('near', 0):4d}  far {c.get('far', 0):4d}"
        )
    r = totals["mel_referee_on_ground_truth_mel"]
    lines.append(
        f"  mel referee on ground-truth mel: precision {r['precision']:.3f}, recall {r['recall']:.3f}"
    )
    f = totals["far_audio_onsets_with_mel_onset_within_50ms"]
    lines.append(
        f"  far audio onsets with a mel onset <= 50 ms: {f['count']}/{f['of']} = {f['fraction']:.3f} "
        f"(chance {f['chance_rate_off_mask']:.3f}); "
        f"in the mel of the rendered audio: {f['with_onset_in_mel_of_the_audio']}/{f['of']}"
    )
    v = totals["vae_far_audio_onsets_with_vae_mel_onset_within_50ms"]
    lines.append(f"  VAE round trip: far audio onsets with a VAE-mel onset <= 50 ms: {v['count']}/{v['of']}")
    if totals.get("detected_onsets_far_audio_onsets"):
        lines.append(f"  detected-onset masks: {totals['detected_onsets_far_audio_onsets']}")
    e = totals["energy_db"]
    lines.append(
        f"  energy off-mask: generated {e['generated_off_mask_db']:.1f} dB vs truth "
        f"{e['ground_truth_off_mask_db']:.1f} dB; on-mask {e['generated_on_mask_db']:.1f} vs "
        f"{e['ground_truth_on_mask_db']:.1f} dB"
    )
    n = results["noise_following"]
    corr = n["correlations"]
    lines.append(
        f"  profile correlation: same seed {corr['same_seed']['mean']:.3f}, different seed "
        f"{corr['different_seed']['mean']:.3f}, same clip/different seed "
        f"{corr['same_clip_different_seed']['mean']:.3f}"
    )
    rec = n["far_mel_onset_recurrence_within_50ms"]
    lines.append(
        f"  far mel onset recurrence: same seed {rec['same_seed']:.3f} (chance {rec['chance_same_seed']:.3f}), "
        f"different seed {rec['different_seed']:.3f} (chance {rec['chance_different_seed']:.3f})"
    )
    for scale, entry in results["temporal_scale_sweep"].items():
        a, m = entry["audio_onsets"], entry["mel_onsets"]
        lines.append(
            f"  temporal_scale {scale}: audio far {a.get('far', 0)}/{a.get('total', 0)}, "
            f"mel far {m.get('far', 0)}/{m.get('total', 0)}"
        )
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="SynthFoley root")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--num-clips", type=int, default=16)
    parser.add_argument("--max-duration", type=float, default=5.12)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--temporal-scale", type=float, default=0.5)
    parser.add_argument("--strong-iterations", type=int, default=128)
    parser.add_argument("--noise-clips", type=int, default=6)
    parser.add_argument("--sweep", default="0,0.2,1.0", help="extra temporal scales ('' for none)")
    parser.add_argument("--no-detected", action="store_true", help="skip the video-detector masks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    results = run_diagnosis(
        args.model,
        args.data,
        split=args.split,
        num_clips=args.num_clips,
        max_duration=args.max_duration,
        steps=args.steps,
        temporal_scale=args.temporal_scale,
        strong_iterations=args.strong_iterations,
        noise_clips=args.noise_clips,
        sweep_scales=[float(s) for s in args.sweep.split(",") if s.strip()],
        detected=not args.no_detected,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(results), indent=1) + "\n", encoding="utf-8")
    print(summary(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
