"""Vocoder trainer: aligned training segments, a short training run on tiny prepared clips, the
exported generator, and validation against Griffin-Lim."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_struck_clip as make_clip

from foleycrafter.data.prepared import PreparedDataset, prepare_dataset, read_annotations
from foleycrafter.models import GriffinLimVocoder, HifiGanVocoder
from foleycrafter.spectrogram import MelSpectrogram
from foleycrafter.training import TrainConfig, trainer_class
from foleycrafter.training.vocoder import (
    DEFAULT_GENERATOR,
    SEGMENT_COLUMNS,
    VocoderTrainer,
    random_segments,
    spectral_convergence,
)

HOP = 160
RATE = 16000


@pytest.fixture(scope="module")
def prepared(release_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocoder_clips")
    make_clip(folder / "low.mp4", 2.0, 0.6, 220, "red", amplitude=0.4, decay=8, harmonic=0.2)
    make_clip(folder / "mid.mp4", 2.5, 0.8, 330, "blue", amplitude=0.4, decay=8, harmonic=0.2)
    make_clip(folder / "high.mp4", 2.0, 0.5, 660, "green", amplitude=0.4, decay=8, harmonic=0.2)
    (folder / "captions.csv").write_text(
        "file,caption,onsets\nlow.mp4,low,0.2\nmid.mp4,mid,0.2\nhigh.mp4,high,0.2\n"
    )
    out = tmp_path_factory.mktemp("vocoder_prepared") / "data"
    summary = prepare_dataset(
        folder,
        out,
        release_pipe.image_encoder,
        release_pipe.feature_extractor,
        annotations=read_annotations(folder / "captions.csv"),
        num_frames=4,
        detector_size=16,
        progress=False,
    )
    assert summary["clips"] == 3
    return out


def tiny_model_folder(root: Path, vocoder) -> Path:
    """A model folder holding only ``vocoder/`` (all the vocoder trainer reads)."""
    vocoder.save_pretrained(root / "vocoder")
    return root


def test_segments_pair_mel_columns_with_their_samples(prepared):
    dataset = PreparedDataset(prepared, fields=("audio", "log_mel"))
    items = [dataset[i] for i in range(len(dataset))]
    audio = torch.stack([item["audio"] for item in items])
    log_mel = torch.stack([item["log_mel"] for item in items])
    durations = [item["duration"] for item in items]
    mel = MelSpectrogram()
    generator = torch.Generator().manual_seed(0)
    errors, shifted_errors = [], []
    for _ in range(4):
        mel_segments, audio_segments = random_segments(
            audio, log_mel, durations, SEGMENT_COLUMNS, HOP, RATE, generator
        )
        assert mel_segments.shape == (3, 256, SEGMENT_COLUMNS)
        assert audio_segments.shape == (3, SEGMENT_COLUMNS * HOP)
        for index, (mel_segment, audio_segment) in enumerate(zip(mel_segments, audio_segments)):
            # Where the segment was cut: inside the clip's real audio, same start for both.
            starts = [
                c
                for c in range(log_mel.shape[-1] - SEGMENT_COLUMNS + 1)
                if torch.equal(audio[index, c * HOP : (c + SEGMENT_COLUMNS) * HOP], audio_segment)
            ]
            assert starts and starts[0] + SEGMENT_COLUMNS <= math.floor(durations[index] * RATE / HOP)
            assert torch.equal(mel_segment, log_mel[index, :, starts[0] : starts[0] + SEGMENT_COLUMNS])
            # The mel recomputed from the audio segment matches the stored columns away from the
            # segment's edges (where its own reflect padding replaces the real context).
            recomputed = mel(audio_segment)[0]
            inner = slice(4, SEGMENT_COLUMNS - 4)
            loud = mel_segment[:, inner] > mel_segment.max() - 6
            errors.append(float((recomputed[:, inner] - mel_segment[:, inner])[loud].abs().mean()))
            later = slice(5, SEGMENT_COLUMNS - 3)  # the stored columns one hop later
            shifted_errors.append(float((recomputed[:, inner] - mel_segment[:, later])[loud].abs().mean()))
    assert max(errors) < 0.02, errors  # float16 storage and int16 audio, nothing more
    assert min(shifted_errors) > 5 * max(errors), (errors, shifted_errors)


def run_vocoder_trainer(model, prepared, out, **overrides):
    settings = dict(
        max_steps=30,
        batch_size=2,
        learning_rate=3e-3,
        adam_beta1=0.8,
        adam_beta2=0.99,
        checkpoint_every=15,
        checkpoints_total_limit=1,
        validation_fraction=0.1,  # holds out one of the three clips
        seed=0,
    )
    settings.update(overrides)
    trainer = trainer_class("vocoder")(TrainConfig(**settings), model, prepared, out, progress=False)
    return trainer.run()


def test_training_run_exports_a_generator_and_compares_it_with_griffin_lim(prepared, tmp_path):
    torch.manual_seed(0)
    start = HifiGanVocoder(
        upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),)
    )
    model = tiny_model_folder(tmp_path / "model", start)
    summary = run_vocoder_trainer(model, prepared, tmp_path / "run")

    losses = np.array([h["loss"] for h in summary["history"]])
    assert len(losses) == 30 and np.all(np.isfinite(losses))
    assert losses[-8:].mean() < losses[:8].mean(), losses

    trained = HifiGanVocoder.from_pretrained(tmp_path / "run" / "final" / "vocoder")
    assert trained.config.upsample_initial_channel == 32, "fine-tunes the model folder's generator"
    assert not torch.equal(trained.conv_pre.weight, start.conv_pre.weight)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-30" / "vocoder" / "config.json").is_file()

    validation = summary["validation"]
    assert set(validation) == {"spectral_convergence", "griffin_lim_spectral_convergence"}
    assert all(math.isfinite(v) and v > 0 for v in validation.values())
    # Measured: Griffin-Lim 0.035 on the held-out clip; the generator after 30 steps about 2 (it
    # needs thousands of steps to come near, see foleycrafter.training.vocoder).
    assert validation["griffin_lim_spectral_convergence"] < 0.3
    written = json.loads((tmp_path / "run" / "validation" / "step-30" / "metrics.json").read_text())
    assert written["spectral_convergence"] == validation["spectral_convergence"]
    assert list((tmp_path / "run" / "validation" / "step-30").glob("*.wav"))

    # The public function gives the same numbers on the held-out clip.
    dataset = PreparedDataset(prepared, fields=("audio", "log_mel"))
    _, held_out = dataset.split(0.1, seed=0)
    assert len(held_out) == 1
    assert spectral_convergence(trained, held_out) == pytest.approx(
        validation["spectral_convergence"], rel=1e-5
    )


def test_new_generator_unless_the_model_has_a_hifigan(prepared, tmp_path):
    def initial(model):
        trainer = VocoderTrainer(TrainConfig(), model, prepared, tmp_path / "unused", progress=False)
        trainer.train_set = PreparedDataset(prepared, fields=VocoderTrainer.fields)
        return trainer.initial_vocoder()

    # A Griffin-Lim model: a new default-sized generator with its audio settings.
    folder = tiny_model_folder(tmp_path / "griffin_lim", GriffinLimVocoder())
    vocoder = initial(folder)
    assert isinstance(vocoder, HifiGanVocoder)
    assert vocoder.config.upsample_initial_channel == DEFAULT_GENERATOR["upsample_initial_channel"]
    assert vocoder.config.hop_size == HOP and vocoder.config.num_mels == 256
    # No vocoder at all: the prepared data's rates.
    assert initial(tmp_path / "empty").config.sampling_rate == RATE
    # A mismatch between the model's vocoder and the data is refused before anything is written.
    other = tiny_model_folder(tmp_path / "other", GriffinLimVocoder(num_mels=128))
    trainer = VocoderTrainer(TrainConfig(), other, prepared, tmp_path / "refused", progress=False)
    with pytest.raises(ValueError, match="mel bands is 256 in the data but 128 in the model"):
        trainer.run()
    assert not (tmp_path / "refused").exists()
