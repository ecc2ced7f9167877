"""Build the bundled tiny model (``checkpoints/foleycrafter-tiny``) from nothing, with the project's
own generator and trainers, on a CPU:

    python -m foleycrafter.training.build_tiny --work runs/tiny --out checkpoints/foleycrafter-tiny

Stages (each writes ``<work>/<stage>/`` and is skipped when its result exists, so an interrupted
build resumes where it stopped; a trainer interrupted mid-stage resumes from its last checkpoint;
``--finals DIR`` keeps every trained stage's result in a folder that can be committed, and restores
them into a new work folder, so a build can go on in pieces on machines whose disks do not last;
data and prepared clips are generated again, and a stage stopped part-way starts over: its
checkpoints hold pickled optimizer state, which is not kept):

    data      SynthFoley train / validation / test splits (seed 0)
    clip      CLIP text + vision towers, contrastive, on frames and captions
    prepare   the train split cut into 5.12 s windows: log-mel, CLIP embeddings, detector frames
              (onsets from the ground-truth annotations)
    vae       the mel-image autoencoder (8x), on 64-column crops
    decoder   its decoder fine-tuned on perturbed latents (the encoder frozen), to decode the UNet's
              inexact latents without a blotchy texture
    unet      the text-to-audio UNet (with Griffin-Lim as the vocoder: see VOCODER below)
    semantic  the IP-Adapter-style semantic adapter on the frozen base
    temporal  the ControlNet temporal controller on the frozen base + semantic adapter
    alignment the alignment classifier of double guidance (true / shifted / other clip's frames)
    audio_visual  a contrastive audio-visual encoder (CAVP: clips and stretches of clips contrasted)
    alignment_av  the alignment classifier again, reading the frames through that encoder's video
              tower (issue #17 compares the two; export takes ``alignment``)
    sequences SynthFoley sequence splits (two or three objects in turn) and the train split prepared
    frame_aligned  a frame-aligned semantic adapter (a token per frame, framewise attention) on the
              frozen base, trained on the sequence clips; not exported (issue #18 compares it first)
    dynamics  SynthFoley version 2 splits (per-event levels over 30 dB, swells and fades) and the
              train split prepared like ``prepare`` (with each clip's loudness curve)
    loudness  the loudness controller on the frozen base + adapters + temporal controller, on the
              version-2 clips
    loudness_predictor  the video loudness predictor (the onset detector's network), version-2 clips
    onset     the video onset detector (R(2+1)D family, 64 px)
    export    everything into one native pipeline folder, safetensors

The window is 512 mel columns (5.12 s) instead of Auffusion's 1024: the tiny model trains on
twice as many windows per second of data and generates a typical 2-6 s clip in one short window;
longer videos go through the pipeline's overlapping windows like any model.

VOCODER: Griffin-Lim (no weights). On a held-out clip its spectral convergence is 0.035 against
0.99 for a tiny HiFi-GAN trained 600 steps with ``foleycrafter train vocoder`` (session 1, see
``checkpoints/README.md``), so a trained vocoder does not pay at this budget. Nor is one needed for
the ceiling: the ground-truth mel of the 100 validation clips through Griffin-Lim alone keeps onset
F1 0.999 and semantic accuracy 1.00 (``foleycrafter eval --configurations vocoder_ceiling``), so
what the v1 stack lost (0.92 / 0.77 through VAE and vocoder) was lost in the VAE.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import torch

from ..runtime import cpu_model
from ..timeline import DETECTOR_FRAMES

logger = logging.getLogger(__name__)

WINDOW_COLUMNS = 512
NUM_FRAMES = DETECTOR_FRAMES  # per window, for CLIP and the detector: the pipeline's default
DETECTOR_SIZE = 64

SPLITS = {"train": 1000, "validation": 100, "test": 200}
#: SynthFoley version of the base data: the bundled model's base and adapters were trained and scored
#: on version-1 clips, so a rebuild regenerates exactly those.
BASE_DATA_VERSION = 1

# v1 was trained at 0.2 and run at 0.5 (chosen on 16 validation clips: onset F1 0.40 / 0.63 / 0.76
# and semantic accuracy 0.44 / 0.38 / 0.06 at 0.2 / 0.5 / 1.0): its larger residuals at 1.0 drowned
# the semantic adapter. v1's controller also suppressed the UNet's hallucinated events in proportion
# to its weight (far onsets 75 / 48 / 10 / 3 of about 100 at 0 / 0.2 / 0.5 / 1.0, results/diagnosis/),
# so v2 trains its controller at full weight...
TEMPORAL_TRAINING_SCALE = 1.0
# ...and runs it above that. On 50 validation clips (both adapters, detected onsets) the scales
# 1.0 / 1.5 / 2.0 / 2.5 / 3.0 / 4.0 / 5.0 gave onset F1 0.580 / 0.755 / 0.837 / 0.868 / 0.889 /
# 0.912 / 0.920, AP 0.465 / 0.697 / 0.833 / 0.884 / 0.916 / 0.950 / 0.963 and semantic accuracy
# 0.46 / 0.56 / 0.56 / 0.56 / 0.56 / 0.50 / 0.46 (results/validation_v2/v2d_both_detected_ts*.json):
# 3.0 is the largest scale that keeps the semantic accuracy. The exported default_temporal_scale.
DEFAULT_TEMPORAL_SCALE = 3.0

#: Exported components whose weights are stored as float16 (see :func:`export`).
STORED_AS_FLOAT16 = ("unet", "controlnet", "loudness_controller")

#: The per-frame video models' stage (onset detector, loudness predictor): R(2+1)D family, 64 px.
FRAME_MODEL_STAGE = {
    "max_steps": 300,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "lr_warmup_steps": 50,
    "weight_decay": 1e-4,
    "validation_fraction": 0.05,
    "detector": {"block_channels": [16, 16, 32, 32], "layers": [1, 1, 1, 1]},
    "log_every": 5,
}

# Per-stage training settings (TrainConfig fields). ``quick`` shrinks step counts for the test.
STAGES: dict[str, dict] = {
    "clip": {
        "max_steps": 600,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "lr_warmup_steps": 50,
        "frames_per_clip": 4,
        "validation_fraction": 0.05,
        "architecture": {
            "text": {
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
            },
            "vision": {
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
            },
            "projection_dim": 64,
        },
    },
    # v2: the v1 VAE (300 steps, 16-32-32-32, 4 latent channels) was the ceiling of everything:
    # ground truth through it scored semantic accuracy 0.77 and onset F1 0.92 on validation, while
    # through Griffin-Lim alone it scored 1.00 and 0.999 (`eval --configurations
    # autoencoder_ceiling,vocoder_ceiling`). Wider deep levels (cheap: the cost is in the
    # full-resolution first level), 8 latent channels, no mid-block attention (so that 64-column
    # crops train exactly the model that decodes whole windows), 10x the steps, cosine decay. Its
    # export records per-channel latent statistics (foleycrafter.latents): with a single scaling
    # factor, the first v2 UNet sampled every channel's mean near 0 where the data's lie up to 2.7
    # standard deviations away, a classless mid-level texture (semantic accuracy 0.38 with the
    # adapter, 0.58 with the class caption on validation; Frechet distance 730-970).
    "vae": {
        "max_steps": 3000,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "lr_warmup_steps": 100,
        "lr_schedule": "cosine",
        "crop_columns": 64,
        "log_every": 50,
        "kl_weight": 1e-6,
        "validation_fraction": 0.02,
        "architecture": {
            "block_out_channels": [16, 32, 64, 64],
            "latent_channels": 8,
            "mid_block_add_attention": False,
            "norm_num_groups": 8,
        },
    },
    # v2: the v2 VAE's decoder decoded the UNet's latents into a blotchy texture: latents perturbed by
    # noise of 0.2-0.4 (in the UNet's units) already look so, while a UNet's samples are never exact.
    # The decoder is fine-tuned to decode latents perturbed up to `latent_noise` into the clean image.
    "decoder": {
        "max_steps": 600,
        "batch_size": 8,
        "learning_rate": 3e-4,
        "lr_warmup_steps": 20,
        "lr_schedule": "cosine",
        "crop_columns": 64,
        "latent_noise": 0.5,
        "log_every": 50,
        "kl_weight": 1e-6,
        "validation_fraction": 0.02,
    },
    # v2: twice v1's 1200 steps, with cosine decay, on the v2 VAE's 8-channel latents. The extra
    # onsets of v1's audio were born in the generated mel, following the initial noise (UNet
    # hallucinations that the temporal controller suppresses only in part:
    # `python -m foleycrafter.eval.onset_sources`, results/diagnosis/). 1.5x v1's widths: at
    # [32, 64, 64] the class caption gave semantic accuracy 0.36 on 50 validation clips, at
    # [48, 96, 96] 0.50 (paired bootstrap +0.14, 95 % interval [+0.00, +0.30]; results/validation_v2/).
    "unet": {
        "max_steps": 2400,
        "batch_size": 8,
        "learning_rate": 5e-4,
        "lr_warmup_steps": 100,
        "lr_schedule": "cosine",
        "text_dropout": 0.1,
        "image_dropout": 0.0,
        "both_dropout": 0.0,
        "validation_fraction": 0.02,
        "validation_steps": 25,
        "architecture": {
            "block_out_channels": [48, 96, 96],
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "attention_head_dim": 8,
            "norm_num_groups": 8,
        },
    },
    "semantic": {
        "max_steps": 800,
        "batch_size": 8,
        "learning_rate": 5e-4,
        "lr_warmup_steps": 50,
        "lr_schedule": "cosine",
        # Trained with an empty prompt most of the time: the adapter must carry the class alone.
        "text_dropout": 0.5,
        "image_dropout": 0.05,
        "both_dropout": 0.05,
        "validation_fraction": 0.02,
    },
    "temporal": {
        "max_steps": 1200,
        "batch_size": 8,
        "learning_rate": 3e-4,
        "lr_warmup_steps": 50,
        "lr_schedule": "cosine",
        "text_dropout": 0.3,
        "conditioning_scale": TEMPORAL_TRAINING_SCALE,
        # The condition embedder runs at the mel image's full resolution (256 x 512): diffusers'
        # default widths (16, 32, 96, 256) would cost more than the tiny UNet; a +-1 column mask
        # needs few channels.
        "architecture": {"conditioning_embedding_out_channels": [4, 8, 16, 32]},
        "image_dropout": 0.05,
        "both_dropout": 0.05,
        "validation_fraction": 0.02,
    },
    # Diff-Foley's double guidance (issue #17): reads only the VAE's latents and the CLIP frames.
    "alignment": {
        "max_steps": 3000,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "weight_decay": 0.01,
        "lr_warmup_steps": 100,
        "lr_schedule": "cosine",
        "validation_fraction": 0.05,
    },
    # Issue #16: as the temporal controller, on the version-2 clips whose levels vary.
    "loudness": {
        "max_steps": 1200,
        "batch_size": 8,
        "learning_rate": 3e-4,
        "lr_warmup_steps": 50,
        "lr_schedule": "cosine",
        "text_dropout": 0.3,
        "conditioning_scale": 1.0,
        # Beside the temporal controller at the scale the exported model runs it at. No
        # split-and-merge: a merged clip's latents are encoded again at every step (no cache), which
        # made a step ten times slower here.
        "temporal_scale": DEFAULT_TEMPORAL_SCALE,
        "architecture": {"conditioning_embedding_out_channels": [4, 8, 16, 32]},
        "image_dropout": 0.05,
        "both_dropout": 0.05,
        "validation_fraction": 0.02,
    },
    # The loudness predictor is the onset detector's network: it trains with the same settings.
    "loudness_predictor": FRAME_MODEL_STAGE,
    "onset": FRAME_MODEL_STAGE,
}
# Issue #17: CAVP's two contrasts on the prepared clips, then the classifier once more on its features.
STAGES["audio_visual"] = {**STAGES["alignment"], "max_steps": 2000}
STAGES["alignment_av"] = STAGES["alignment"]
# Issue #18: as the semantic adapter, a token per frame instead of the mean, on sequence clips (where
# the class changes within a window, so the frames' times matter).
STAGES["frame_aligned"] = {
    **STAGES["semantic"],
    "adapter": "frame_aligned",
    "architecture": {"visual_attention": "framewise", "framewise_seconds": 0.5},
}
COMMON = {"checkpoint_every": 200, "checkpoints_total_limit": 1, "validate_every": 0, "log_every": 25}

ORDER = (
    "data",
    "clip",
    "prepare",
    "vae",
    "decoder",
    "unet",
    "semantic",
    "temporal",
    "alignment",
    "audio_visual",
    "alignment_av",
    "sequences",
    "frame_aligned",
    "dynamics",
    "loudness",
    "loudness_predictor",
    "onset",
    "export",
)
#: Stages run by another stage's trainer.
TRAINER_OF_STAGE = {"decoder": "vae", "frame_aligned": "semantic", "alignment_av": "alignment"}
#: Latent caches of the stages whose clips are not the base data's (their ids repeat the base's).
LATENT_CACHE_OF_STAGE = {
    "loudness": "latent_cache_v2.safetensors",
    "frame_aligned": "latent_cache_sequences.safetensors",
}


def _train(name: str, model: Path | None, data: Path, out: Path, quick: bool, **extra) -> Path:
    from . import TrainConfig, trainer_class

    if (out / "final").is_dir():
        return out / "final"
    settings = {**COMMON, **STAGES[name], **extra}
    if name in ("unet", "semantic", "temporal", "alignment", "alignment_av", "loudness", "frame_aligned"):
        # The VAE is frozen from here on: its latents of the prepared clips are computed once (the
        # version-2 and sequence clips have the same ids as version 1's, so they keep caches of their own).
        cache = LATENT_CACHE_OF_STAGE.get(name, "latent_cache.safetensors")
        settings["latent_cache"] = str(out.parent / cache)
    if quick:
        settings.update(max_steps=2, batch_size=2, checkpoint_every=0, validation_steps=2)
    resume = "latest" if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()) else None
    trainer = trainer_class(TRAINER_OF_STAGE.get(name, name))
    trainer(TrainConfig(**settings), model, data, out, resume_from=resume, progress=False).run()
    return out / "final"


def _prepare(videos: Path, prepared: Path, parts: Path, quick: bool) -> None:
    """Cut a SynthFoley split into the tiny model's windows with the stage-trained CLIP (onsets
    from the ground truth); skipped when ``prepared`` is complete."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from ..data.prepared import ClipAnnotation, prepare_dataset
    from ..data.synthfoley import read_metadata
    from ..timeline import Timeline

    if (prepared / "config.json").is_file():
        return
    annotations = {r["video"]: ClipAnnotation(r["caption"], r["onsets"]) for r in read_metadata(videos)}
    prepare_dataset(
        videos,
        prepared,
        CLIPVisionModelWithProjection.from_pretrained(parts / "image_encoder"),
        CLIPImageProcessor.from_pretrained(parts / "feature_extractor"),
        annotations=annotations,
        timeline=Timeline(window_columns=WINDOW_COLUMNS),
        num_frames=NUM_FRAMES if not quick else 16,
        detector_size=DETECTOR_SIZE if not quick else 32,
        overwrite=True,
        progress=False,
    )


#: Stages whose result is a trained model (``<work>/<stage>/final``), which ``--finals`` keeps.
TRAINED_STAGES = tuple(s for s in ORDER if s not in ("data", "prepare", "sequences", "dynamics", "export"))


def keep_finals(work: Path, finals: Path) -> list[str]:
    """Copy each finished trained stage's ``final`` folder (safetensors and configs) from ``work``
    into ``finals``, once: a stage's final never changes. Returns the stages copied."""
    return _copy_finals(work, finals)


def restore_finals(finals: Path, work: Path) -> list[str]:
    """Copy what :func:`keep_finals` kept into a work folder that lacks it (the build then skips
    those stages). Returns the stages restored."""
    return _copy_finals(finals, work)


def _copy_finals(source: Path, target: Path) -> list[str]:
    """Each trained stage's ``final`` folder that ``source`` has and ``target`` lacks, copied."""
    copied = []
    for name in TRAINED_STAGES:
        have, want = Path(source) / name / "final", Path(target) / name / "final"
        if have.is_dir() and not want.is_dir():
            _copy_atomically(have, want)
            copied.append(name)
    return copied


def _copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(target)


def build(
    work: Path,
    out: Path,
    stages: tuple[str, ...] = ORDER,
    quick: bool = False,
    splits: dict[str, int] | None = None,
    overwrite: bool = False,
    workers: int = 1,
    finals: Path | None = None,
) -> dict:
    """Run the stages in order (see the module docstring); returns per-stage wall seconds. With
    ``finals``, trained stages are restored from there first and kept there as each ends."""
    from ..data.synthfoley import generate_dataset
    from .base_models import copy_parts

    splits = splits or SPLITS
    work = Path(work)
    data, parts = work / "synthfoley", work / "parts"
    timings: dict[str, float] = {}

    def generate_splits(root: Path, version: int, layout: str = "single") -> None:
        for split, count in splits.items():
            if not (root / split / "metadata.jsonl").is_file():
                generate_dataset(
                    root,
                    split,
                    count,
                    seed=0,
                    workers=workers,
                    overwrite=True,
                    version=version,
                    layout=layout,
                )

    if finals is not None:
        restored = restore_finals(finals, work)
        if restored:
            logger.info("restored from %s: %s", finals, ", ".join(restored))

    def finish(name, start):
        if finals is not None and name in TRAINED_STAGES:
            keep_finals(work, finals)
        # Logged as each stage ends, so a build stopped part-way keeps the timings of what it did.
        timings[name] = time.monotonic() - start
        with open(work / "timings.jsonl", "a", encoding="utf-8") as f:
            record = {"stage": name, "seconds": round(timings[name], 1), "threads": torch.get_num_threads()}
            f.write(
                json.dumps({**record, "cpu": cpu_model(), "finished": time.strftime("%Y-%m-%d %H:%M")}) + "\n"
            )

    def stage(name):
        if name in stages:
            start = time.monotonic()
            logger.info("stage %s", name)
            return start
        return None

    if (start := stage("data")) is not None:
        generate_splits(data, BASE_DATA_VERSION)
        finish("data", start)
    if (start := stage("clip")) is not None:
        final = _train("clip", None, data / "train", work / "clip", quick)
        copy_parts(final, parts, ("text_encoder", "tokenizer", "image_encoder", "feature_extractor"))
        finish("clip", start)
    prepared = work / "prepared"
    if (start := stage("prepare")) is not None:
        _prepare(data / "train", prepared, parts, quick)
        finish("prepare", start)
    if (start := stage("vae")) is not None:
        copy_parts(_train("vae", None, prepared, work / "vae", quick), parts, ("vae",))
        finish("vae", start)
    if (start := stage("decoder")) is not None:
        # The encoder stays as the vae stage left it, so the UNet's latents do not depend on this stage.
        copy_parts(
            _train("decoder", work / "vae" / "final", prepared, work / "decoder", quick), parts, ("vae",)
        )
        finish("decoder", start)
    if (start := stage("unet")) is not None:
        _train("unet", parts, prepared, work / "unet", quick)
        finish("unet", start)
    if (start := stage("semantic")) is not None:
        _train("semantic", work / "unet" / "final", prepared, work / "semantic", quick)
        finish("semantic", start)
    if (start := stage("temporal")) is not None:
        _train("temporal", work / "semantic" / "final", prepared, work / "temporal", quick)
        finish("temporal", start)
    if (start := stage("alignment")) is not None:
        _train("alignment", work / "unet" / "final", prepared, work / "alignment", quick)
        finish("alignment", start)
    if (start := stage("audio_visual")) is not None:
        _train("audio_visual", None, prepared, work / "audio_visual", quick)
        finish("audio_visual", start)
    if (start := stage("alignment_av")) is not None:
        encoder = work / "audio_visual" / "final"
        _train(
            "alignment_av",
            work / "unet" / "final",
            prepared,
            work / "alignment_av",
            quick,
            video_encoder=str(encoder),
        )
        finish("alignment_av", start)
    sequences, prepared_sequences = work / "synthfoley_sequences", work / "prepared_sequences"
    if (start := stage("sequences")) is not None:
        generate_splits(sequences, BASE_DATA_VERSION, layout="sequence")
        _prepare(sequences / "train", prepared_sequences, parts, quick)
        finish("sequences", start)
    if (start := stage("frame_aligned")) is not None:
        _train("frame_aligned", work / "unet" / "final", prepared_sequences, work / "frame_aligned", quick)
        finish("frame_aligned", start)
    dynamics, prepared_dynamics = work / "synthfoley_v2", work / "prepared_v2"
    if (start := stage("dynamics")) is not None:
        generate_splits(dynamics, 2)
        _prepare(dynamics / "train", prepared_dynamics, parts, quick)
        finish("dynamics", start)
    if (start := stage("loudness")) is not None:
        _train("loudness", work / "temporal" / "final", prepared_dynamics, work / "loudness", quick)
        finish("loudness", start)
    if (start := stage("loudness_predictor")) is not None:
        _train("loudness_predictor", None, prepared_dynamics, work / "loudness_predictor", quick)
        finish("loudness_predictor", start)
    if (start := stage("onset")) is not None:
        _train("onset", None, prepared, work / "onset", quick)
        finish("onset", start)
    if (start := stage("export")) is not None:
        export(work, Path(out), overwrite=overwrite)
        finish("export", start)
    return timings


def export(work: Path, out: Path, overwrite: bool = False) -> Path:
    """The temporal stage's pipeline (base + both adapters) with the trained detector, alignment
    classifier and (once their stages have run) loudness controller and predictor, saved natively."""
    from diffusers import AutoencoderKL, ControlNetModel

    from ..models import AlignmentClassifier, LoudnessPredictor, OnsetDetector
    from ..pipeline import FoleyCrafterPipeline

    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it.")
        shutil.rmtree(out)
    pipe = FoleyCrafterPipeline.from_pretrained(work / "temporal" / "final")
    pipe.register_modules(
        # The parts' VAE: its decoder may have been fine-tuned after the UNet stage copied it.
        vae=AutoencoderKL.from_pretrained(work / "parts" / "vae"),
        onset_detector=OnsetDetector.from_pretrained(work / "onset" / "final" / "onset_detector"),
        alignment_classifier=AlignmentClassifier.from_pretrained(
            work / "alignment" / "final" / "alignment_classifier"
        ),
    )
    loudness = work / "loudness" / "final" / "loudness_controller"
    if loudness.is_dir():
        pipe.register_modules(loudness_controller=ControlNetModel.from_pretrained(loudness))
    predictor = work / "loudness_predictor" / "final" / "loudness_predictor"
    if predictor.is_dir():
        pipe.register_modules(loudness_predictor=LoudnessPredictor.from_pretrained(predictor))
    pipe.register_to_config(default_temporal_scale=DEFAULT_TEMPORAL_SCALE)
    # The UNet and its ControlNet copy are most of the bytes: stored as float16 (from_pretrained
    # loads them back as float32) the v2 stack fits the 25 MB bundle; in float32 it would not.
    for name in STORED_AS_FLOAT16:
        if getattr(pipe, name) is not None:
            getattr(pipe, name).to(torch.float16)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    pipe.save_pretrained(partial)
    partial.rename(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    logger.info("exported %s (%.1f MB)", out, size / 1e6)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m foleycrafter.training.build_tiny",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--work", default="runs/tiny", help="working folder (data, runs); resumable")
    parser.add_argument("--out", default="checkpoints/foleycrafter-tiny", help="the model folder to write")
    parser.add_argument(
        "--stages", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=1, help="processes generating the SynthFoley clips")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--finals",
        default=None,
        help="a folder keeping each trained stage's result across machines: restored into --work "
        "first, updated as stages end; with --stages none it is only updated from --work",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip() and s.strip() != "none")
    unknown = sorted(set(stages) - set(ORDER))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {','.join(ORDER)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    finals = Path(args.finals) if args.finals else None
    timings = build(
        Path(args.work), Path(args.out), stages, overwrite=args.overwrite, workers=args.workers, finals=finals
    )
    if finals is not None:
        kept = keep_finals(Path(args.work), finals)
        logger.info("kept in %s: %s", finals, ", ".join(kept) or "nothing new")
    print(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
