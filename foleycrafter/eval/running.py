"""Evaluating a model on a SynthFoley split: generate audio for each clip under each configuration, score it.

This module owns the evaluating half of ``foleycrafter eval``: the configurations, loading the model
and the classifier, generating every clip (in this process or in a pool of worker processes; one
clip: :func:`generate_clip_audio`) and scoring it. :func:`evaluate_model` returns the results as a
JSON-ready dict; :mod:`foleycrafter.eval.report` turns them into the table and the JSON file, and
:mod:`foleycrafter.eval.benchmark` is the command.

For each named *configuration* (which adapters are on, which prompt, where the onsets come from)
the pipeline generates audio for every clip of the split from its mp4 (frames only; the
soundtrack is never read), and the generated audio is scored against the clip's ground truth:

* **Onsets.** The project's one audio onset detector
  (:func:`foleycrafter.audio_onsets.detect_audio_onsets`, the one that labels training data; here with
  ``min_interval_ms`` = its default, 100 ms, unless overridden) finds onsets in the generated
  audio; they are compared with the record's ground-truth onset times: precision, recall and F1
  with +-50 ms (micro-averaged over clips), average precision over detection strength with +-100 ms
  (all clips' onsets ranked together; the per-clip mean is reported too), onset-count accuracy
  (fraction of clips with exactly the right number), mean absolute timing error of the +-50 ms
  matches in ms. See :mod:`foleycrafter.eval.onset_metrics`.
* **Semantics.** The bundled :class:`~foleycrafter.eval.classifier.AudioClassifier` (trained on
  SynthFoley ground-truth audio) classifies the generated audio; semantic accuracy is the fraction
  predicted as the clip's class. On clips whose record lists ``events`` with their classes (SynthFoley
  ``--layout sequence``: two or three objects in turn), the same classifier also judges a short
  stretch of the audio around each event: *event class accuracy* is the fraction of a clip's events
  heard as their class, averaged over the clips that have events (others have none, and are left
  out, not counted as 0). See :mod:`foleycrafter.eval.event_classes`.
* **Fréchet distance** between the generated clips and the same clips' ground-truth wavs in that
  classifier's 64-d embedding space (:mod:`foleycrafter.eval.frechet`), squared embedding units.
  Few clips bias it upwards; compare values at equal clip counts only.

The same detector and classifier are also run once per split on the ground-truth audio itself
(the ``ground_truth`` entry): the ceiling every configuration is measured against.

Configurations (:data:`CONFIGURATIONS`, the rows of the README's results table):

================================  ========  ========  ===========  ==============  ==================================
name                              semantic  temporal  prompt       onsets          notes
================================  ========  ========  ===========  ==============  ==================================
``base_class_prompt``             0         0         the caption  --              base model only
``base_empty_prompt``             0         0         ""           --              base model only
``semantic_empty_prompt``         1.0       0         ""           --              needs the adapter
``temporal_gt_onsets``            0         model's   the caption  ground truth    needs the controller
``both_detected``                 1.0       model's   ""           video detector  the default
``both_detected_loudness``        1.0       model's   ""           video detector  + a rough ground-truth loudness curve
``both_detected_loudness_exact``  1.0       model's   ""           video detector  + the exact ground-truth curve
``both_detected_loudness_video``  1.0       model's   ""           video detector  + the loudness predictor's curve
``both_detected_region``          1.0       model's   ""           video detector  frames cropped to the heard object
``both_detected_region_mask``     1.0       model's   ""           video detector  the rest painted grey instead
``both_detected_region_other``    1.0       model's   ""           video detector  cropped to the silent object
``both_detected_release_timing``  1.0       model's   ""           video detector  ``timing="release"``, 8-10 s clips
``autoencoder_ceiling``           --        --        --           --              ground truth through VAE + vocoder
``autoencoder_ceiling_silence``   --        --        --           --              the same, silence after the clip's end
``vocoder_ceiling``               --        --        --           --              ground truth through the vocoder only
================================  ========  ========  ===========  ==============  ==================================

"model's" is the model's ``default_temporal_scale`` (the pipeline's default: 0.2 as in the release,
3.0 for the bundled tiny model), unless ``temporal_scale`` (``--temporal-scale``) overrides it.

A configuration the model cannot run (no temporal controller, no semantic adapter or image
encoder, no onset detector) is skipped with a note. Every clip ``i`` is generated with a CPU
generator seeded ``seed + i`` (its index in the split), so all configurations start from the same
noise for the same clip. Clips are generated at their exact duration (``record["duration"]``).
"""

from __future__ import annotations

import datetime
import inspect
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..audio_onsets import detect_audio_onsets
from ..defaults import RELEASE_TEMPORAL_SCALE
from ..schedulers import set_scheduler
from .event_classes import score_event_classes
from .onset_metrics import (
    DEFAULT_AP_TOLERANCE,
    DEFAULT_TOLERANCE,
    evaluate_onsets,
    mean_timing_error_ms,
    onset_average_precision,
    onset_prf,
)

#: The audio onset detector's own default minimum interval (ms), so evaluation and training labels agree.
DEFAULT_MIN_INTERVAL_MS = float(inspect.signature(detect_audio_onsets).parameters["min_interval_ms"].default)
#: ``classifier=DEFAULT_CLASSIFIER`` means the bundled one in ``checkpoints/synthfoley-classifier``.
DEFAULT_CLASSIFIER = "bundled"

#: The metrics of every configuration's ``metrics`` (and of the ground-truth ceiling).
METRIC_NAMES = (
    "f1",
    "precision",
    "recall",
    "average_precision",
    "average_precision_clip_mean",
    "count_accuracy",
    "mean_timing_error_ms",
    "semantic_accuracy",
    "event_class_accuracy",
    "frechet_distance",
    "align_accuracy",
    "loudness_error_db",
    "loudness_correlation",
)


#: Where a configuration's audio comes from (see :class:`Configuration`).
SOURCES = ("generate", "reconstruct", "vocode")


@dataclass(frozen=True)
class Configuration:
    """How the pipeline is run for one row of the benchmark.

    Attributes:
        name: identifier (a key of :data:`CONFIGURATIONS` for the built-in ones).
        description: one line for the table's legend.
        semantic_scale: weight of the semantic adapter (0: off).
        temporal_scale: weight of the temporal controller (0: off).
        prompt: ``"caption"`` (the record's caption, e.g. "a hammer strikes a metal plate") or
            ``"empty"`` (``""``).
        onsets: where the temporal controller's onsets come from: ``"ground_truth"`` (the record's
            onset times), ``"detector"`` (the pipeline's video onset detector) or ``None`` (no controller).
        timing: the pipeline's timing convention, ``"exact"`` or ``"release"``.
        min_duration, max_duration: only clips whose duration (s) lies in this range, if set.
        source: ``"generate"`` (the pipeline generates from the video), ``"reconstruct"`` (the
            clip's ground-truth audio through the model's VAE and vocoder, no denoising: the
            ceiling of generation; the other fields are then unused) or ``"vocode"`` (its mel
            spectrogram through the vocoder alone: what the vocoder loses, apart from the VAE).
        loudness: a curve for the loudness controller: ``"ground_truth"`` (the clip's ground-truth
            audio's, :func:`~foleycrafter.loudness.audio_loudness`), ``"rough"`` (that curve roughened
            as a person would draw it, seeded by the clip), ``"video"`` (the model's loudness
            predictor reads it off the frames: ``loudness="video"``) or ``None`` (no controller).
        region: ``"ground_truth"``: the pipeline sees only the heard object's region of a
            two-object clip (its record's ``region``; clips without one are not selected),
            ``"other"``: only the silent object's (the other half of the frame, mirrored), or
            ``None`` (the whole picture).
        region_mode: how the region is shown (``"crop"`` or ``"mask"``, :mod:`foleycrafter.region`).
        padding: for ``"reconstruct"`` and ``"vocode"``, what follows the clip's end in its mel
            image up to the window's end: ``"mirror"`` (its own columns reflected, as generation
            goes on with sound there) or ``"silence"``
            (:meth:`~foleycrafter.pipeline.FoleyCrafterPipeline.audio_to_mel_image`).
    """

    name: str
    description: str
    semantic_scale: float = 0.0
    temporal_scale: float = 0.0
    prompt: str = "empty"
    onsets: str | None = None
    timing: str = "exact"
    min_duration: float | None = None
    max_duration: float | None = None
    source: str = "generate"
    padding: str = "mirror"
    loudness: str | None = None
    region: str | None = None
    region_mode: str = "crop"

    def __post_init__(self):
        if self.region not in (None, "ground_truth", "other"):
            raise ValueError(
                f"Configuration.region must be None, 'ground_truth' or 'other', got {self.region!r}."
            )
        if self.loudness not in (None, "ground_truth", "rough", "video"):
            raise ValueError(
                "Configuration.loudness must be None, 'ground_truth', 'rough' or 'video', "
                f"got {self.loudness!r}."
            )
        if self.source not in SOURCES:
            raise ValueError(
                f"Configuration.source must be one of {', '.join(SOURCES)}, got {self.source!r}."
            )
        if self.padding not in ("mirror", "silence"):
            raise ValueError(f"Configuration.padding must be 'mirror' or 'silence', got {self.padding!r}.")
        if self.prompt not in ("caption", "empty"):
            raise ValueError(f"Configuration.prompt must be 'caption' or 'empty', got {self.prompt!r}.")
        if self.onsets not in (None, "ground_truth", "detector"):
            raise ValueError(
                f"Configuration.onsets must be None, 'ground_truth' or 'detector', got {self.onsets!r}."
            )
        if self.temporal_scale > 0 and self.onsets is None:
            raise ValueError(f"configuration {self.name!r} uses the temporal controller but names no onsets.")

    def selects(self, record: Mapping) -> bool:
        """Whether the clip ``record`` belongs to this configuration (duration filter; a region
        configuration takes only clips that name their heard region)."""
        if self.region is not None and "region" not in record:
            return False
        duration = float(record["duration"])
        if self.min_duration is not None and duration < self.min_duration - 1e-9:
            return False
        return not (self.max_duration is not None and duration > self.max_duration + 1e-9)


CONFIGURATIONS: dict[str, Configuration] = {
    c.name: c
    for c in (
        Configuration("base_class_prompt", "base only, class-correct text prompt", prompt="caption"),
        Configuration("base_empty_prompt", "base only, empty prompt"),
        Configuration("semantic_empty_prompt", "+ semantic adapter, empty prompt", semantic_scale=1.0),
        Configuration(
            "temporal_gt_onsets",
            "+ temporal controller, ground-truth onsets (caption prompt)",
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            prompt="caption",
            onsets="ground_truth",
        ),
        Configuration(
            "both_detected",
            "+ both, detected onsets (the default)",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
        ),
        Configuration(
            "both_detected_loudness",
            "+ both, detected onsets, and a rough version of the ground truth's loudness curve",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            loudness="rough",
        ),
        Configuration(
            "both_detected_loudness_exact",
            "+ both, detected onsets, and the ground truth's exact loudness curve",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            loudness="ground_truth",
        ),
        Configuration(
            "both_detected_loudness_video",
            "+ both, detected onsets, and the loudness curve the model's predictor reads off the video",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            loudness="video",
        ),
        Configuration(
            "both_detected_region",
            "+ both, detected onsets, the frames cropped to the heard object (two-object clips)",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            region="ground_truth",
        ),
        Configuration(
            "both_detected_region_mask",
            "the same with the rest of the frame painted grey instead of cropped",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            region="ground_truth",
            region_mode="mask",
        ),
        Configuration(
            "both_detected_region_other",
            "the frames cropped to the object that is not heard: what a region on the wrong object does",
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            region="other",
        ),
        Configuration(
            "both_detected_release_timing",
            'same, timing="release", 8-10 s clips',
            semantic_scale=1.0,
            temporal_scale=RELEASE_TEMPORAL_SCALE,
            onsets="detector",
            timing="release",
            min_duration=8.0,
            max_duration=10.0,
        ),
        Configuration(
            "autoencoder_ceiling",
            "ground-truth audio through the model's VAE and vocoder, no denoising (the ceiling)",
            source="reconstruct",
        ),
        Configuration(
            "autoencoder_ceiling_silence",
            "the same with silence after the clip's end instead of its mirror image (diagnosis)",
            source="reconstruct",
            padding="silence",
        ),
        Configuration(
            "vocoder_ceiling",
            "ground-truth mel spectrogram through the model's vocoder only (no VAE)",
            source="vocode",
        ),
    )
}


# -- entry point ---------------------------------------------------------------------------------------
def evaluate_model(
    model_folder,
    dataset_root: str | os.PathLike,
    split: str = "test",
    configurations: Sequence[str | Configuration] | None = None,
    max_clips: int | None = None,
    steps: int | None = None,
    guidance_scale: float = 7.5,
    seed: int = 42,
    device: str = "cpu",
    classifier=DEFAULT_CLASSIFIER,
    sync_classifier=DEFAULT_CLASSIFIER,
    min_interval_ms: float = DEFAULT_MIN_INTERVAL_MS,
    temporal_scale: float | None = None,
    pipeline_kwargs: Mapping | None = None,
    dtype=None,
    scheduler: str = "saved",
    workers: int = 1,
    log: Callable[[str], None] | None = None,
    processes=None,
) -> dict | None:
    """Run the benchmark for one model on one split.

    Args:
        model_folder: a native FoleyCrafter folder (``save_pretrained``) or hub id, or an already loaded
            :class:`~foleycrafter.pipeline.FoleyCrafterPipeline`.
        dataset_root: SynthFoley root holding ``<split>/metadata.jsonl`` with the mp4 and wav files.
        split: ``"train"``, ``"validation"`` or ``"test"`` (the benchmark's numbers use ``"test"``).
        configurations: names from :data:`CONFIGURATIONS` or :class:`Configuration` objects, in the
            table's order (``None``: all built-in ones).
        max_clips: evaluate the first N clips of the split (``None``: all). A configuration with a
            duration filter takes the first N clips that pass it.
        steps: denoising steps per clip (``None``: the model's ``default_num_inference_steps``, as the
            pipeline uses).
        guidance_scale: classifier-free guidance weight.
        seed: clip ``i`` is generated with a CPU ``torch.Generator`` seeded ``seed + i``.
        device: ``"cpu"``, ``"cuda"``, ... for the pipeline and the classifier.
        classifier: an :class:`~foleycrafter.eval.classifier.AudioClassifier`, a folder holding one,
            :data:`DEFAULT_CLASSIFIER` (the bundled one), or ``None`` (no semantic accuracy or
            Fréchet distance; they are reported as ``None``).
        sync_classifier: a :class:`~foleycrafter.eval.sync.SyncClassifier`, a folder holding one,
            :data:`DEFAULT_CLASSIFIER` (the bundled ``checkpoints/synthfoley-sync-classifier``), or
            ``None``: Align Acc, the share of (audio, video) pairs it calls in sync (``None`` without).
        min_interval_ms: the onset detector's minimum interval between onsets (ms).
        temporal_scale: overrides the temporal scale of every configuration that uses the controller;
            ``None``: the built-in configurations take the model's ``default_temporal_scale`` (the
            pipeline's default, so ``both_detected`` measures what a user gets).
        pipeline_kwargs: extra arguments for every pipeline call (e.g. ``{"onset_threshold": 0.4}``);
            they override the configuration's.
        dtype: torch dtype to load the model in (``None``: the saved one).
        scheduler: sampler name from :data:`foleycrafter.schedulers.SCHEDULERS` (``"saved"``: the model's).
        workers: generate in this many processes, each loading the model from ``model_folder`` (which
            must then be a folder or hub id); the results are the same as with 1.
        log: called with one line per generated clip (``None``: silent).
        processes: a :class:`~foleycrafter.distributed.Processes` of a launcher's processes
            (``torchrun``/``accelerate launch``) inside :func:`~foleycrafter.distributed.process_group`;
            every process calls this with the same arguments (each on its own ``device``) and
            generates its share of the (clip, configuration) jobs, balanced by clip duration; the
            main process gathers the audio and scores it. ``None``: one process.

    Returns:
        A JSON-ready dict: ``model``, ``dataset_root``, ``split``, ``date`` (ISO 8601, UTC),
        ``settings`` (steps, guidance scale, seed, device, tolerances, detector settings, classifier,
        ...), ``ground_truth`` (the detector's and classifier's scores on the ground-truth audio of the
        evaluated clips: ``metrics`` and per-clip ``clips``), and ``configurations``: one entry per
        configuration, in order, with ``configuration`` (its settings), ``skipped`` (``None`` or why),
        ``metrics`` (the :data:`METRIC_NAMES` plus ``num_clips``, onset counts, and timings) and
        ``clips`` (per-clip rows: id, class, duration, reference and estimated onsets, per-clip
        P/R/F1, AP, timing error, predicted class, event class accuracy (``None`` for a clip without
        ``events``) and the class predicted for each event, generation seconds). ``None`` in the processes
        other than the main one when ``processes`` has several.
    """
    from .classifier import read_split, read_wav

    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be a positive number of clips, got {max_clips!r}.")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    if workers > 1 and not isinstance(model_folder, (str, os.PathLike)):
        raise ValueError("workers > 1 loads the model in each process: pass a model folder, not a pipeline.")
    if temporal_scale is not None and not (math.isfinite(temporal_scale) and temporal_scale > 0):
        raise ValueError(f"temporal_scale must be a positive number, got {temporal_scale!r}.")
    chosen = _resolve_configurations(configurations, temporal_scale)
    records = read_split(dataset_root, split)
    if not records:
        raise ValueError(f"the {split} split of {dataset_root} has no clips.")
    pipe, model_name = _load_pipeline(model_folder, device, dtype)
    set_scheduler(pipe, scheduler)
    if steps is None:
        steps = int(pipe.config.default_num_inference_steps)
    if temporal_scale is None:
        model_scale = float(pipe.config.default_temporal_scale)
        chosen = [
            replace(c, temporal_scale=model_scale)
            if c.temporal_scale > 0 and CONFIGURATIONS.get(c.name) is c
            else c
            for c in chosen
        ]
    model_classifier, classifier_name = _load_classifier(classifier, device)
    sync, sync_name = _load_sync_classifier(sync_classifier, device)
    if pipe.sample_rate != 16000:
        raise ValueError(f"the benchmark scores 16 kHz audio; this model generates {pipe.sample_rate} Hz.")

    reference_audio: dict[str, np.ndarray] = {}

    def ground_truth(record) -> np.ndarray:
        if record["id"] not in reference_audio:
            reference_audio[record["id"]] = read_wav(record["audio_path"])[0]
        return reference_audio[record["id"]]

    frames_of: dict[str, np.ndarray] = {}

    def frames(record) -> np.ndarray:
        """The frames the sync classifier reads of the record's video (decoded once)."""
        from .sync import clip_frames

        if record["id"] not in frames_of:
            frames_of[record["id"]] = clip_frames(record["video_path"], float(record["duration"]), sync)
        return frames_of[record["id"]]

    def scores(rows, audios, selected, reference) -> dict:
        metrics = _aggregate(rows, audios, model_classifier, reference)
        if model_classifier is not None:
            metrics["event_class_accuracy"] = score_event_classes(model_classifier, rows, audios, selected)
        if reference is not None:
            for row, audio, truth, record in zip(rows, audios, reference, selected):
                row.update(loudness_scores(audio, truth, float(record["duration"])))
            for name in ("loudness_error_db", "loudness_correlation"):
                values = [row[name] for row in rows if row[name] is not None]
                metrics[name] = float(np.mean(values)) if values else None
        if sync is not None:
            from .sync import align_accuracy

            judged = align_accuracy(sync, audios, [frames(r) for r in selected])
            for row, probability in zip(rows, judged["probabilities"]):
                row["sync_probability"] = round(float(probability), 5)
            metrics["align_accuracy"] = judged["align_accuracy"]
        return metrics

    base_records = records[:max_clips]
    detector_settings = {"min_interval_ms": float(min_interval_ms)}
    truth_rows = [_score_clip(record, ground_truth(record), detector_settings) for record in base_records]
    results = {
        "model": model_name,
        "dataset_root": os.fspath(Path(dataset_root).resolve()),
        "split": split,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "steps": steps,
            "scheduler": f"{scheduler} ({type(pipe.scheduler).__name__})",
            "guidance_scale": guidance_scale,
            "seed": seed,
            "device": str(device),
            "max_clips": max_clips,
            "temporal_scale_override": temporal_scale,
            "model_default_temporal_scale": float(pipe.config.default_temporal_scale),
            "pipeline_kwargs": dict(pipeline_kwargs or {}),
            "onset_tolerance_s": DEFAULT_TOLERANCE,
            "ap_tolerance_s": DEFAULT_AP_TOLERANCE,
            "onset_detector": "foleycrafter.audio_onsets.detect_audio_onsets",
            "onset_detector_settings": detector_settings,
            "classifier": classifier_name,
            "sync_classifier": sync_name,
            "frechet_reference": "the ground-truth wavs of the same clips",
        },
        "ground_truth": {
            "description": "the onset detector and classifier on the ground-truth audio (the ceiling)",
            "metrics": scores(truth_rows, [ground_truth(r) for r in base_records], base_records, None),
            "clips": truth_rows,
        },
        "configurations": [],
    }
    if dtype is not None:
        results["settings"]["dtype"] = str(dtype).removeprefix("torch.")

    plans = []  # (entry, configuration, clips) of the configurations that run
    for configuration in chosen:
        entry = {"configuration": asdict(configuration), "skipped": None, "metrics": None, "clips": []}
        results["configurations"].append(entry)
        missing = _missing_parts(pipe, configuration)
        if missing:
            entry["skipped"] = f"the model has no {' and no '.join(missing)}"
            continue
        if (
            configuration.min_duration is None
            and configuration.max_duration is None
            and not configuration.region
        ):
            selected = base_records
        else:
            selected = [r for r in records if configuration.selects(r)][:max_clips]
        if not selected:
            entry["skipped"] = (
                f"the {split} split has no two-object clips (generate them with --layout two_objects)"
                if configuration.region
                else f"no clip of the {split} split lasts {configuration.min_duration}-{configuration.max_duration} s"
            )
            continue
        plans.append((entry, configuration, selected))

    jobs = [
        (record, configuration, steps, guidance_scale, seed, dict(pipeline_kwargs or {}))
        for _, configuration, selected in plans
        for record in selected
    ]
    if processes is not None and processes.distributed:
        generated = _generate_shared(pipe, model_folder, jobs, workers, device, dtype, scheduler, processes)
        if generated is None:
            return None
        generated = iter(generated)
    else:
        generated = iter(_generate_all(pipe, model_folder, jobs, workers, device, dtype, scheduler))
    for entry, configuration, selected in plans:
        audios, rows = [], []
        for number, record in enumerate(selected, 1):
            audio, seconds = next(generated)
            row = _score_clip(record, audio, detector_settings)
            row["generation_seconds"] = round(seconds, 3)
            rows.append(row)
            audios.append(audio)
            if log is not None:
                log(
                    f"{configuration.name} {number}/{len(selected)} {record['id']}: "
                    f"F1 {row['f1']:.2f}, {row['num_estimated']}/{row['num_reference']} onsets, {seconds:.1f} s"
                )
        metrics = scores(rows, audios, selected, [ground_truth(r) for r in selected])
        metrics["generation_seconds_per_clip"] = float(np.mean([r["generation_seconds"] for r in rows]))
        # Seconds of compute per second of audio.
        metrics["real_time_factor"] = float(
            sum(r["generation_seconds"] for r in rows) / sum(float(r["duration"]) for r in selected)
        )
        entry["metrics"] = metrics
        entry["clips"] = rows
    return results


# -- configurations, model and classifier --------------------------------------------------------------
def _resolve_configurations(configurations, temporal_scale: float | None) -> list[Configuration]:
    if configurations is None:
        configurations = list(CONFIGURATIONS)
    if isinstance(configurations, str):
        configurations = [c for c in configurations.split(",") if c.strip()]
    chosen, seen = [], set()
    for item in configurations:
        if isinstance(item, str):
            name = item.strip()
            if name not in CONFIGURATIONS:
                raise ValueError(f"unknown configuration {name!r}; choose from {', '.join(CONFIGURATIONS)}.")
            item = CONFIGURATIONS[name]
        elif not isinstance(item, Configuration):
            raise ValueError(f"a configuration is a name or a Configuration, got {type(item).__name__}.")
        if item.name in seen:
            raise ValueError(f"configuration {item.name!r} is listed twice.")
        seen.add(item.name)
        if temporal_scale is not None and item.temporal_scale > 0:
            item = replace(item, temporal_scale=float(temporal_scale))
        chosen.append(item)
    if not chosen:
        raise ValueError("no configuration to evaluate.")
    return chosen


def _load_pipeline(model_folder, device, dtype):
    from ..pipeline import FoleyCrafterPipeline

    if isinstance(model_folder, FoleyCrafterPipeline):
        name = getattr(model_folder, "name_or_path", None) or model_folder.config.get("_name_or_path", "")
        pipe = model_folder
    else:
        if model_folder is None:
            raise ValueError("no model given: pass a native FoleyCrafter folder.")
        name = os.fspath(model_folder)
        if os.path.isdir(name):
            name = os.fspath(Path(name).resolve())
        kwargs = {"dtype": dtype} if dtype is not None else {}
        pipe = FoleyCrafterPipeline.from_pretrained(model_folder, **kwargs)
        pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), str(name or "<in-memory pipeline>")


def _load_classifier(classifier, device):
    from .classifier import DEFAULT_CLASSIFIER as BUNDLED
    from .classifier import AudioClassifier, load_classifier

    if classifier is None:
        return None, None
    if isinstance(classifier, AudioClassifier):
        return classifier.to(device).eval(), getattr(
            classifier, "name_or_path", None
        ) or "<in-memory classifier>"
    path = BUNDLED if classifier == DEFAULT_CLASSIFIER else Path(classifier)
    return load_classifier(path, device), os.fspath(Path(path).resolve())


def _load_sync_classifier(sync_classifier, device):
    from .sync import DEFAULT_SYNC_CLASSIFIER, SyncClassifier, load_sync_classifier

    if sync_classifier is None:
        return None, None
    if isinstance(sync_classifier, SyncClassifier):
        return sync_classifier.to(device).eval(), "<in-memory sync classifier>"
    path = DEFAULT_SYNC_CLASSIFIER if sync_classifier == DEFAULT_CLASSIFIER else Path(sync_classifier)
    return load_sync_classifier(path, device), os.fspath(Path(path).resolve())


def _missing_parts(pipe, configuration: Configuration) -> list[str]:
    """What the pipeline lacks to run ``configuration`` (empty: it can run)."""
    missing = []
    if configuration.semantic_scale > 0:
        if not pipe.has_semantic_adapter:
            missing.append("semantic adapter")
        elif pipe.image_encoder is None:
            missing.append("image encoder (for the semantic adapter)")
    if configuration.temporal_scale > 0:
        if pipe.controlnet is None:
            missing.append("temporal controller")
        elif configuration.onsets == "detector" and pipe.onset_detector is None:
            missing.append("video onset detector")
    if configuration.loudness is not None and pipe.loudness_controller is None:
        missing.append("loudness controller")
    if configuration.loudness == "video" and pipe.loudness_predictor is None:
        missing.append("loudness predictor")
    return missing


# -- the worker pool -----------------------------------------------------------------------------------
def _generate_all(pipe, model_folder, jobs, workers, device, dtype, scheduler):
    """Yield ``(audio, seconds)`` for each job, in order: in this process, or in ``workers``
    processes that each load the model once (CPU cores are shared out between them)."""
    import torch

    if workers <= 1 or not jobs:
        for job in jobs:
            started = time.perf_counter()
            audio = generate_clip_audio(pipe, *job, torch)
            yield audio, time.perf_counter() - started
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    init = (os.fspath(model_folder), device, dtype, scheduler, threads)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
        yield from pool.map(_generate_in_worker, jobs, chunksize=1)


def _generate_shared(pipe, model_folder, jobs, workers, device, dtype, scheduler, processes):
    """``(audio, seconds)`` of every job, in order, in the main process (``None`` in the others):
    each process generates its share of the jobs, balanced by clip duration (s), and every process
    gathers every share. A clip's audio does not depend on which process makes it or in what order
    (its noise is seeded from the clip's index).

    Raises:
        ValueError: in every process, when generation failed in any of them (naming each failure):
            the others must not wait for audio that will never come, and all exit alike.
    """
    from ..distributed import all_gather, balance

    share = balance([float(job[0]["duration"]) for job in jobs], processes.world_size)[processes.rank]
    mine, error = [], None
    try:
        outputs = _generate_all(
            pipe, model_folder, [jobs[i] for i in share], workers, device, dtype, scheduler
        )
        mine = [(index, audio, seconds) for index, (audio, seconds) in zip(share, outputs)]
    except Exception as failure:  # reported by every process below, so none waits at the gather
        error = f"{type(failure).__name__}: {failure}"
    gathered = all_gather((mine, error), processes)
    errors = [f"process {rank}: {message}" for rank, (_, message) in enumerate(gathered) if message]
    if errors:
        raise ValueError("generation failed in " + "; ".join(errors))
    if not processes.is_main:
        return None
    by_index = {index: (audio, seconds) for part, _ in gathered for index, audio, seconds in part}
    return [by_index[index] for index in range(len(jobs))]


_WORKER_PIPE = None


def _init_worker(model_folder, device, dtype, scheduler, threads) -> None:
    import torch

    global _WORKER_PIPE
    torch.set_num_threads(threads)
    _WORKER_PIPE, _ = _load_pipeline(model_folder, device, dtype)
    set_scheduler(_WORKER_PIPE, scheduler)


def _generate_in_worker(job) -> tuple[np.ndarray, float]:
    import torch

    started = time.perf_counter()
    audio = generate_clip_audio(_WORKER_PIPE, *job, torch)
    return audio, time.perf_counter() - started


# -- generating one clip -------------------------------------------------------------------------------
def generate_clip_audio(
    pipe, record, configuration, steps, guidance_scale, seed, pipeline_kwargs, torch
) -> np.ndarray:
    """The audio of one clip (``record``) under ``configuration``: the pipeline generates it from the
    clip's video, or (``source="reconstruct"`` / ``"vocode"``) the clip's ground truth goes through the
    VAE and vocoder / the vocoder alone."""
    if configuration.source in ("reconstruct", "vocode"):
        from .classifier import read_wav

        return pipe.autoencode_audio(
            read_wav(record["audio_path"])[0],
            through_vae=configuration.source == "reconstruct",
            padding=configuration.padding,
        )
    kwargs = {
        "prompt": record["caption"] if configuration.prompt == "caption" else "",
        "video": record["video_path"],
        "audio_length_in_s": float(record["duration"]),
        "num_inference_steps": steps,
        "guidance_scale": guidance_scale,
        "semantic_scale": configuration.semantic_scale,
        "temporal_scale": configuration.temporal_scale,
        "timing": configuration.timing,
        # The same noise for the same clip in every configuration: differences come from the settings.
        "generator": torch.Generator("cpu").manual_seed(int(seed) + int(record["index"])),
    }
    if configuration.temporal_scale > 0 and configuration.onsets == "ground_truth":
        kwargs["onsets"] = list(record["onsets"])
    if configuration.loudness == "video":
        kwargs["loudness"] = "video"
    elif configuration.loudness is not None:
        kwargs["loudness"] = clip_loudness_condition(pipe, record, configuration.loudness, seed)
    if configuration.region is not None:
        x0, y0, x1, y1 = record["region"]
        # Two-object clips put the objects in mirrored halves (synthfoley.pairs).
        box = [x0, y0, x1, y1] if configuration.region == "ground_truth" else [1 - x1, y0, 1 - x0, y1]
        kwargs.update(region=box, region_mode=configuration.region_mode)
    kwargs.update(pipeline_kwargs or {})
    audio = pipe(**kwargs).audios[0]
    audio = np.asarray(audio.cpu().numpy() if hasattr(audio, "cpu") else audio, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"the model generated non-finite audio for {record['id']} ({configuration.name}).")
    return audio


def clip_loudness_condition(pipe, record, kind: str, seed: int) -> np.ndarray:
    """The curve a ``loudness`` configuration gives the pipeline for ``record``: its ground-truth
    audio's (dBFS per mel column of the clip), roughened for ``"rough"`` with a generator seeded by
    ``seed`` and the clip's index (the same curve for every model)."""
    from ..loudness import audio_loudness, fit_to_clip, roughen_loudness
    from .classifier import read_wav

    timeline = pipe.timeline()
    curve = fit_to_clip(
        audio_loudness(read_wav(record["audio_path"])[0], timeline), record["duration"], timeline
    )
    if kind == "rough":
        rng = np.random.default_rng([int(seed), int(record["index"]), 0x10D])
        curve = roughen_loudness(curve, curve.size, rng, timeline)
    return curve


def loudness_scores(audio: np.ndarray, reference: np.ndarray, duration: float) -> dict:
    """How closely ``audio``'s loudness curve follows ``reference``'s over a clip: the mean absolute
    difference in dB over the columns where either is audible (above -60 dBFS), and the Pearson
    correlation of the two curves (``None`` for a flat curve)."""
    from ..loudness import audio_loudness, fit_to_clip, loudness_error_db
    from ..timeline import Timeline

    timeline = Timeline()  # the benchmark scores 16 kHz audio
    generated = fit_to_clip(audio_loudness(audio, timeline), duration, timeline)
    target = fit_to_clip(audio_loudness(reference, timeline), duration, timeline)
    error = loudness_error_db(generated, target)
    flat = generated.std() < 1e-6 or target.std() < 1e-6
    return {
        "loudness_error_db": None if math.isnan(error) else round(error, 4),
        "loudness_correlation": None if flat else round(float(np.corrcoef(generated, target)[0, 1]), 5),
    }


# -- scoring -------------------------------------------------------------------------------------------
def _score_clip(record, audio: np.ndarray, detector_settings: dict) -> dict:
    """One clip's onset scores: the detector on ``audio`` against the record's ground-truth onsets."""
    onsets = detect_audio_onsets(audio, 16000, **detector_settings)
    reference = np.asarray(record["onsets"], dtype=np.float64)
    prf = onset_prf(reference, onsets.times, DEFAULT_TOLERANCE)
    error = mean_timing_error_ms(reference, onsets.times, DEFAULT_TOLERANCE)
    return {
        "id": record["id"],
        "index": int(record["index"]),
        "class_name": record["class_name"],
        "class_index": int(record["class_index"]),
        "duration": float(record["duration"]),
        "reference_onsets": reference.tolist(),
        "estimated_onsets": [round(float(t), 5) for t in onsets.times],
        "estimated_strengths": [round(float(s), 5) for s in onsets.strengths],
        "num_reference": int(reference.size),
        "num_estimated": len(onsets),
        "precision": prf.precision,
        "recall": prf.recall,
        "f1": prf.f1,
        "average_precision": onset_average_precision(
            reference, onsets.times, onsets.strengths, DEFAULT_AP_TOLERANCE
        ),
        "count_correct": bool(len(onsets) == reference.size),
        "mean_timing_error_ms": None if math.isnan(error) else error,
        "_onsets": onsets,  # removed by _aggregate
    }


def _aggregate(rows, audios, classifier, reference=None) -> dict:
    """Onset metrics over the clips' ``rows``; with a classifier also semantic accuracy (and each row's
    ``predicted_class`` / ``semantic_correct``) and, given ``reference`` audio, the Fréchet distance
    of ``audios`` to it."""
    from .frechet import frechet_distance

    onsets = evaluate_onsets([(row["reference_onsets"], row.pop("_onsets")) for row in rows])
    metrics = {name: onsets[name] for name in METRIC_NAMES if name in onsets}
    metrics["semantic_accuracy"] = None
    metrics["event_class_accuracy"] = None  # set by the caller, which has the records' events
    metrics["frechet_distance"] = None
    metrics["align_accuracy"] = None
    metrics["loudness_error_db"] = metrics["loudness_correlation"] = None
    if classifier is not None:
        predictions, embeddings = classifier.classify(audios)
        for row, predicted in zip(rows, predictions):
            row["predicted_class"] = classifier.class_names[int(predicted)]
            row["semantic_correct"] = bool(int(predicted) == row["class_index"])
        metrics["semantic_accuracy"] = float(np.mean([row["semantic_correct"] for row in rows]))
        if reference is not None:
            metrics["frechet_distance"] = frechet_distance(embeddings, classifier.embed(reference))
    for key in (
        "num_clips",
        "num_reference",
        "num_estimated",
        "true_positives",
        "false_positives",
        "false_negatives",
    ):
        metrics[key] = onsets[key]
    return metrics
