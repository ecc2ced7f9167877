"""Data preparation and the four trainers, on tiny components and tiny generated clips, on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from launcher import torchrun
from media_factory import make_struck_clip as make_clip

from foleycrafter.data.prepared import PreparedDataset, clip_spans, prepare_dataset, read_annotations

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    make_clip(folder / "bells.mp4", 3.0, 0.7, 880, "red")
    make_clip(folder / "drums.mp4", 3.0, 0.9, 220, "blue")
    make_clip(folder / "long.mp4", 12.0, 1.1, 440, "green")
    (folder / "captions.csv").write_text(
        "file,caption,onsets\nbells.mp4,a bell rings,0.2 0.9 1.6 2.3\ndrums.mp4,a drum is hit,0.2;1.1;2.0\n"
    )
    return folder


@pytest.fixture(scope="module")
def prepared(clips, release_pipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "data"
    summary = prepare_dataset(
        clips,
        out,
        release_pipe.image_encoder,
        release_pipe.feature_extractor,
        annotations=read_annotations(clips / "captions.csv"),
        detector_size=32,
        num_frames=20,
        progress=False,
    )
    assert summary["clips"] == 4 and summary["skipped"] == []
    return out


def test_clip_spans_cover_the_video_in_windows():
    assert clip_spans(3.0, 10.24, 1.0) == [(0.0, 3.0)]
    spans = clip_spans(25.0, 10.24, 1.0)
    assert spans[0] == (0.0, 10.24) and spans[-1][1] == 25.0 and len(spans) == 3
    assert clip_spans(10.5, 10.24, 1.0) == [(0.0, 10.24)]  # a 0.26 s remainder is dropped


def test_prepared_data_holds_what_training_reads(prepared):
    dataset = PreparedDataset(prepared)
    assert len(dataset) == 4
    by_source = {Path(r["source"]).name: r for r in dataset.records}
    assert by_source["bells.mp4"]["onsets"] == [0.2, 0.9, 1.6, 2.3]
    assert (
        by_source["bells.mp4"]["onset_source"] == "given"
        and by_source["bells.mp4"]["caption"] == "a bell rings"
    )
    long_clips = [r for r in dataset.records if Path(r["source"]).name == "long.mp4"]
    assert [round(r["start"], 2) for r in long_clips] == [0.0, 10.24]
    assert all(r["onset_source"] == "audio" for r in long_clips)
    # Spectral-flux onsets of the soundtrack: bursts at 0.2 + k * 1.1 s (relative to each clip).
    first = long_clips[0]
    expected = [0.2 + 1.1 * k for k in range(10) if 0.2 + 1.1 * k < 10.24]
    assert len(first["onsets"]) == len(expected)
    assert np.max(np.abs(np.array(first["onsets"]) - expected)) < 0.03
    item = dataset[0]
    assert item["audio"].shape == (163840,) and item["audio"].abs().max() <= 1
    assert item["log_mel"].shape == (256, 1024) and item["log_mel"].dtype == torch.float32
    assert item["clip_embeds"].shape == (20, 16)
    assert item["detector_frames"].shape == (20, 32, 32, 3) and item["detector_frames"].dtype == torch.uint8
    # Columns after a 3 s clip hold silence.
    short = dataset[[r["id"] for r in dataset.records].index(by_source["bells.mp4"]["id"])]
    assert short["log_mel"][:, 320:].max() < short["log_mel"][:, :300].max() - 5


def test_prepare_refuses_to_overwrite(clips, prepared, release_pipe):
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_dataset(
            clips, prepared, release_pipe.image_encoder, release_pipe.feature_extractor, progress=False
        )


def run_trainer(name, native_model, prepared, out, resume_from=None, **overrides):
    from foleycrafter.training import TrainConfig, trainer_class

    settings = dict(
        max_steps=24,
        batch_size=2,
        learning_rate=2e-3,
        checkpoint_every=12,
        checkpoints_total_limit=1,
        validate_every=0,
        validation_fraction=0.25,
        validation_steps=2,
        seed=0,
    )
    settings.update(overrides)
    trainer = trainer_class(name)(
        TrainConfig(**settings), native_model, prepared, out, resume_from=resume_from, progress=False
    )
    return trainer.run()


def losses(summary):
    return np.array([h["loss"] for h in summary["history"]])


def assert_learns(summary):
    values = losses(summary)
    assert np.all(np.isfinite(values))
    assert values[-8:].mean() < values[:8].mean(), values


def test_semantic_trainer(native_model, prepared, tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    summary = run_trainer("semantic", native_model, prepared, tmp_path / "run")
    assert_learns(summary)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-24"
    assert (checkpoint / "semantic_adapter" / "ip_adapter.safetensors").is_file()
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint-12").exists(), "total limit 1"
    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "run" / "final")
    assert pipe.has_semantic_adapter
    # The checkpoint's adapter also loads into a pipeline on its own.
    base = FoleyCrafterPipeline.from_pretrained(native_model)
    base.load_semantic_adapter(checkpoint / "semantic_adapter" / "ip_adapter.safetensors")
    validation = tmp_path / "run" / "validation" / "step-24"
    assert list(validation.glob("*.wav")) and list(validation.glob("*.png"))


def test_frame_aligned_semantic_trainer(native_model, prepared, tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    summary = run_trainer(
        "semantic",
        native_model,
        prepared,
        tmp_path / "run",
        adapter="frame_aligned",
        architecture={"visual_attention": "causal", "time_channels": 8},
    )
    assert_learns(summary)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-24" / "semantic_adapter"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["frame_aligned.json", "frame_aligned.safetensors"]
    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "run" / "final")
    assert pipe.semantic_adapter_kind == "frame_aligned"
    assert pipe.unet.encoder_hid_proj.config.visual_attention == "causal"
    # A controller trains beside it (the frozen adapter reads each frame with its time).
    temporal = run_trainer(
        "temporal", tmp_path / "run" / "final", prepared, tmp_path / "temporal", max_steps=4
    )
    assert np.isfinite(losses(temporal)).all()
    with pytest.raises(ValueError, match="adapter must be"):
        run_trainer("semantic", native_model, prepared, tmp_path / "bad", adapter="per_frame")


def test_temporal_trainer_and_resume(native_model, prepared, tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    first = run_trainer(
        "temporal", native_model, prepared, tmp_path / "run", max_steps=12, split_merge_probability=0.5
    )
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-12" / "controlnet" / "config.json").is_file()
    resumed = run_trainer(
        "temporal",
        native_model,
        prepared,
        tmp_path / "run",
        max_steps=24,
        checkpoints_total_limit=2,
        split_merge_probability=0.5,
        resume_from="latest",
    )
    assert resumed["history"][0]["step"] == 13, "resuming continues from the saved step"
    assert np.all(np.isfinite(losses(first))) and np.all(np.isfinite(losses(resumed)))
    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "run" / "final")
    assert pipe.controlnet is not None


def test_temporal_trainer_trains_at_its_conditioning_scale(native_model, prepared, tmp_path):
    """At conditioning_scale 0 the controller's residuals are multiplied away: it receives no gradient
    and ends as it started, while at 1 it moves."""
    from foleycrafter import FoleyCrafterPipeline

    start = FoleyCrafterPipeline.from_pretrained(native_model).controlnet.state_dict()
    for scale in (0.0, 1.0):
        out = tmp_path / f"scale-{scale}"
        run_trainer("temporal", native_model, prepared, out, max_steps=2, conditioning_scale=scale)
        trained = FoleyCrafterPipeline.from_pretrained(out / "final").controlnet.state_dict()
        assert trained.keys() == start.keys()
        unchanged = all(torch.equal(trained[key], start[key]) for key in start)
        assert unchanged == (scale == 0.0), scale


def test_prepared_loudness_is_cached_and_derived_for_older_folders(prepared, tmp_path):
    """The cached curve is the clip audio's; a folder prepared before curves existed derives the same."""
    import shutil

    from safetensors.torch import load_file, save_file

    from foleycrafter.data.prepared import clip_loudness

    dataset = PreparedDataset(prepared, fields=("audio", "loudness"))
    item = dataset[0]
    assert item["loudness"].shape == (1024,) and item["loudness"].dtype == torch.float32
    expected = clip_loudness(item["audio"].numpy(), item["duration"], dataset.timeline)
    np.testing.assert_allclose(item["loudness"].numpy(), expected, atol=0.1)  # float16 steps of 1/16 dB
    assert item["loudness"][dataset.timeline.active_columns(item["duration"]) :].max() == -80.0
    older = tmp_path / "older"
    shutil.copytree(prepared, older)
    for shard in older.glob("shard-*.safetensors"):
        tensors = load_file(shard)
        save_file({k: v for k, v in tensors.items() if not k.endswith(".loudness")}, shard)
    derived = PreparedDataset(older, fields=("loudness",))[0]["loudness"]
    np.testing.assert_allclose(derived.numpy(), expected, atol=1e-5)


def test_loudness_trainer(native_model, prepared, tmp_path):
    """Trains a new loudness controller beside the frozen temporal one, validates with the loudness
    error in dB, and saves a pipeline that has both."""
    from foleycrafter import FoleyCrafterPipeline

    result = run_trainer(
        "loudness",
        native_model,
        prepared,
        tmp_path / "run",
        max_steps=3,
        split_merge_probability=0.5,
        validation_steps=1,
        architecture={"conditioning_embedding_out_channels": [4, 8, 8, 16]},
    )
    assert np.all(np.isfinite(losses(result)))
    validation = result["validation"]
    assert validation["loudness_error_db"] >= 0 and validation["loudness_error_db_off"] >= 0
    assert (
        tmp_path / "run" / "checkpoints" / "checkpoint-3" / "loudness_controller" / "config.json"
    ).is_file()
    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "run" / "final")
    assert pipe.loudness_controller is not None and pipe.controlnet is not None
    trained = pipe.loudness_controller.state_dict()
    # A new controller's output convolutions start at zero; training has moved them.
    assert any(trained[k].abs().max() > 0 for k in trained if k.startswith("controlnet_down_blocks"))


def test_onset_trainer_reports_precision_and_recall(native_model, prepared, tmp_path):
    from foleycrafter.models import OnsetDetector

    summary = run_trainer(
        "onset", native_model, prepared, tmp_path / "run", max_steps=30, batch_size=3, learning_rate=3e-3
    )
    assert_learns(summary)
    assert set(summary["validation"]) >= {"precision", "recall"}
    detector = OnsetDetector.from_pretrained(tmp_path / "run" / "final" / "onset_detector")
    assert detector.config.preprocessing == "clean"


def test_alignment_trainer(native_model, prepared, tmp_path):
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.models import AlignmentClassifier

    summary = run_trainer("alignment", native_model, prepared, tmp_path / "run", batch_size=3)
    assert np.all(np.isfinite(losses(summary)))
    validation = summary["validation"]
    assert validation["clips"] == 1 and 0.0 <= validation["accuracy"] <= 1.0
    # One clip held out: no "other" clip to pair it with, true and shifted at four noise levels.
    assert {f"accuracy_{kind}_t0" for kind in ("true", "shifted")} <= set(validation)
    assert "accuracy_other_t0" not in validation
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-24"
    AlignmentClassifier.from_pretrained(checkpoint / "alignment_classifier")
    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "run" / "final")
    assert isinstance(pipe.alignment_classifier, AlignmentClassifier)
    assert pipe.alignment_classifier.config.latent_channels == pipe.vae.config.latent_channels
    # Training again from that model goes on with its classifier.
    again = run_trainer("alignment", tmp_path / "run" / "final", prepared, tmp_path / "again", max_steps=1)
    assert np.isfinite(losses(again)).all()


def test_audio_visual_encoder_then_an_alignment_classifier_reading_it(native_model, prepared, tmp_path):
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.models import AudioVisualEncoder

    summary = run_trainer(
        "audio_visual",
        None,
        prepared,
        tmp_path / "cavp",
        batch_size=3,
        architecture={"embed_dim": 8, "hidden_channels": 16, "num_layers": 2},
    )
    assert_learns(summary)
    validation = summary["validation"]
    assert validation["clips"] == 1 and validation["stretch_retrieval_chance"] == 1 / 8
    assert 0.0 <= validation["stretch_retrieval"] <= 1.0 and validation["clip_retrieval"] == 1.0  # one clip
    encoder = AudioVisualEncoder.from_pretrained(tmp_path / "cavp" / "final" / "audio_visual_encoder")
    # The alignment classifier carries its video tower, frozen, and saves and loads it natively.
    run = run_trainer(
        "alignment", native_model, prepared, tmp_path / "run", batch_size=3, max_steps=4,
        video_encoder=str(tmp_path / "cavp" / "final"),
    )  # fmt: skip
    assert np.isfinite(losses(run)).all()
    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "run" / "final")
    tower = pipe.alignment_classifier.frame_tower
    for key, value in encoder.video.state_dict().items():
        torch.testing.assert_close(tower.state_dict()[key], value)
    pipe.set_progress_bar_config(disable=True)
    frames = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    out = pipe(
        video=frames, audio_length_in_s=1.0, onsets=[0.3], num_inference_steps=2, alignment_guidance_scale=5.0
    )
    assert np.isfinite(out.audios[0]).all()
    with pytest.raises(FileNotFoundError, match="no audio-visual encoder there"):
        run_trainer("alignment", native_model, prepared, tmp_path / "bad", video_encoder=str(tmp_path))


def test_alignment_pairs_are_true_shifted_or_another_clips(native_model, prepared):
    from foleycrafter.training import TrainConfig, trainer_class
    from foleycrafter.training.alignment import OTHER, SHIFTED, TRUE

    trainer = trainer_class("alignment")(TrainConfig(), native_model, prepared, "unused", progress=False)
    trainer.load_base("cpu")
    window = trainer.timeline.window_seconds
    embeds = torch.randn(3, 8, 4)
    durations = [window, window, window / 2]
    kinds = torch.tensor([TRUE, SHIFTED, OTHER])
    features = trainer.video_features(embeds, durations, kinds, torch.tensor([0, 3, 0]), partner_offset=2)
    torch.testing.assert_close(features[0], embeds[0])
    torch.testing.assert_close(features[1], torch.roll(embeds[1], 3, dims=0))
    # Clip 2 shows clip (2 + 2) % 3 = 1's frames, laid out over that clip's (full) window.
    torch.testing.assert_close(features[2], embeds[1])
    # A half-window clip's own frames fill the first half of the window, zeros after.
    own = trainer.video_features(embeds, durations, torch.full((3,), TRUE), torch.zeros(3), 1)[2]
    assert own[:4].abs().sum() > 0 and own[4:].abs().sum() == 0
    drawn = trainer.pair_kinds(4000, torch.Generator().manual_seed(0))
    shares = [float((drawn == kind).float().mean()) for kind in (TRUE, SHIFTED, OTHER)]
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.25], atol=0.03)
    assert (trainer.pair_kinds(1, torch.Generator().manual_seed(0)) != OTHER).all()


def test_lora_trainer(native_model, prepared, clip, tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    summary = run_trainer("lora", native_model, prepared, tmp_path / "run")
    assert_learns(summary)
    pipe = FoleyCrafterPipeline.from_pretrained(native_model)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(prompt="a bell rings", video=clip, num_inference_steps=2)
    before = pipe(generator=torch.Generator().manual_seed(0), **kwargs).audios[0]
    pipe.load_lora_weights(tmp_path / "run" / "final")
    after = pipe(generator=torch.Generator().manual_seed(0), **kwargs).audios[0]
    assert np.abs(after - before).max() > 1e-5


def test_recipes_parse():
    from foleycrafter.training import TrainConfig

    for recipe in sorted((REPO / "adapters").glob("*.yaml")):
        TrainConfig.from_sources(recipe)
    with pytest.raises(ValueError, match="Unknown training settings"):
        TrainConfig.from_sources(None, {"learnig_rate": 1.0})


def test_learning_rate_schedules():
    from foleycrafter.training import TrainConfig
    from foleycrafter.training.config import learning_rate_factor

    warm = [learning_rate_factor(s, 4, 20, "cosine") for s in range(4)]
    assert warm == [0.25, 0.5, 0.75, 1.0]
    assert [learning_rate_factor(s, 4, 20, "constant") for s in (4, 19, 50)] == [1.0, 1.0, 1.0]
    cosine = [learning_rate_factor(s, 4, 20, "cosine") for s in (4, 12, 20, 30)]
    np.testing.assert_allclose(cosine, [1.0, 0.5, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine"):
        TrainConfig(lr_schedule="linear")


def test_two_processes_agree(native_model, prepared, tmp_path):
    """torchrun with two CPU processes (gloo): both end with the same weights."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            *torchrun(2, 29533),
            str(REPO / "tests" / "two_process_train.py"),
            str(native_model),
            str(prepared),
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    hashes = [(tmp_path / "run" / f"weights-rank{rank}.sha1").read_text() for rank in (0, 1)]
    assert hashes[0] == hashes[1]
    # Both processes trained: the weights moved away from the starting point.
    assert json.loads((tmp_path / "run" / "history.json").read_text())["history"][-1]["step"] == 6


# Largest |2-process - 1-process| of a trainable weight after 3 steps, relative to the largest
# change of any weight from the start. Measured on a CPU in float32: onset 0 (bit for bit),
# lora 7e-5, temporal 6e-4, semantic 1e-3. Not zero for the diffusion trainers: the global batch's
# gradient is summed in another order (two per-process means averaged by the all-reduce vs one
# mean over the batch), and Adam's normalised update turns a last-bit difference of a near-zero
# gradient into a visible share of a step. A real mismatch (other clips, noise or normalisation)
# is of the order of the change itself: the onset detector against one process of batch 2 is 1.8x.
TWO_PROCESS_BOUND = 1e-2


@pytest.mark.parametrize(
    "name, port",
    [
        ("semantic", 29541),
        ("onset", 29542),
        pytest.param("temporal", 29543, marks=pytest.mark.slow),
        pytest.param("lora", 29544, marks=pytest.mark.slow),
    ],
)
def test_two_processes_train_like_one(name, port, native_model, prepared, tmp_path):
    """Two processes of batch 1 end with the weights of one process of global batch 2: the same
    clips per step (all 4 clips train, 2 steps an epoch, 3 steps cross an epoch), and for the
    diffusion trainers the same per-clip noise, timesteps and dropout (drawn over the global batch).

    The onset detector's BatchNorm normalises with each process's own batch statistics (no
    SyncBatchNorm on CPUs; on GPUs accelerate does not convert either), so its one-process
    reference is batch 1 accumulated over 2 forwards, which normalises per clip the same way;
    against one process of batch 2 it differs by more than its whole change."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    script = str(REPO / "tests" / "two_process_train.py")
    one = ("1", "2") if name == "onset" else ("2", "1")
    runs = {"two": (torchrun(2, port), ("1", "1")), "one": ([sys.executable], one)}
    for run, (launcher, (batch_size, accumulation)) in runs.items():
        arguments = [str(native_model), str(prepared), str(tmp_path / run), name, batch_size, "3"]
        result = subprocess.run(
            [*launcher, script, *arguments, accumulation, "0"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    start = torch.load(tmp_path / "one" / "trainable-start.pt")
    one = torch.load(tmp_path / "one" / "trainable-end.pt")
    two = torch.load(tmp_path / "two" / "trainable-end.pt")
    assert one.keys() == two.keys() == start.keys() and one
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    gap = max(float((one[k] - two[k]).abs().max()) for k in one)
    print(f"{name}: moved {moved:.3e}, two-vs-one gap {gap:.3e} ({gap / moved:.2e} of the change)")
    assert moved > 0
    assert gap <= TWO_PROCESS_BOUND * moved, (gap, moved)


def test_two_processes_resume_exactly(native_model, prepared, tmp_path):
    """torchrun with two CPU processes: interrupted after step 3 (mid-epoch: each process takes
    one of the 3 clips per step, 2 steps per epoch) and resumed, both processes end with the
    weights of an uninterrupted two-process run."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = torchrun(2, 29534)
    for mode in ("whole", "resumed"):
        script = [str(REPO / "tests" / "two_process_resume.py"), mode, str(native_model), str(prepared)]
        result = subprocess.run(
            [*launcher, *script, str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
        )
        assert result.returncode == 0, result.stderr[-3000:]
    hashes = {
        (run, rank): (tmp_path / run / f"weights-rank{rank}.sha1").read_text()
        for run in ("whole", "resumed")
        for rank in (0, 1)
    }
    assert len(set(hashes.values())) == 1, hashes


# Onset times read by hand off a 5 ms RMS envelope of each real soundtrack: the steep rises
# (15 dB and more within 20-40 ms). avsync_0's first event swells from 0.355 s to its peak at 0.44 s.
HAND_LABELLED_ONSETS = {
    "avsync_0.mp4": [0.38, 2.23],
    "avsync_1.mp4": [0.08, 0.84, 1.20, 1.82, 2.32, 3.00, 3.44, 4.18],
}


def test_prepare_labels_real_clips_like_a_hand_check(shared_media, release_pipe, tmp_path):
    summary = prepare_dataset(
        shared_media / "video",
        tmp_path / "data",
        release_pipe.image_encoder,
        release_pipe.feature_extractor,
        num_frames=10,
        detector_size=32,
        progress=False,
    )
    assert summary["clips"] == 2
    for record in PreparedDataset(tmp_path / "data").records:
        expected = HAND_LABELLED_ONSETS[Path(record["source"]).name]
        assert record["onset_source"] == "audio"
        assert len(record["onsets"]) == len(expected), record["onsets"]
        assert np.max(np.abs(np.array(record["onsets"]) - expected)) <= 0.05, record["onsets"]


def test_train_command(native_model, prepared, tmp_path, capsys):
    from foleycrafter.cli import main

    code = main(
        [
            "train",
            "onset",
            "--config",
            str(REPO / "adapters" / "onset.yaml"),
            "--model",
            str(native_model),
            "--data",
            str(prepared),
            "--out",
            str(tmp_path / "run"),
            "--max-steps",
            "3",
            "--batch-size",
            "2",
            "--set",
            "checkpoint_every=0",
            "--set",
            "detector={block_channels: [4, 4, 8, 8], layers: [1, 1, 1, 1]}",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 3 and np.isfinite(summary["final_loss"])
    assert (tmp_path / "run" / "final" / "onset_detector" / "config.json").is_file()
    # A misspelt setting is an error that names it, not a silent default.
    assert (
        main(
            [
                "train",
                "onset",
                "--model",
                str(native_model),
                "--data",
                str(prepared),
                "--out",
                str(tmp_path / "x"),
                "--set",
                "learnig_rate=1",
            ]
        )
        == 2
    )
    assert "learnig_rate" in capsys.readouterr().err


# -- prepared data must be the model's ----------------------------------------------------------
@pytest.fixture(scope="module")
def model_512(native_model, tmp_path_factory):
    """The tiny native model with a 512-column (5.12 s) window, as the bundled model has."""
    import shutil

    folder = tmp_path_factory.mktemp("model_512") / "foleycrafter-512"
    shutil.copytree(native_model, folder)
    index = folder / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "window_columns": 512}))
    return folder


@pytest.fixture(scope="module")
def prepared_512(clips, model_512, tmp_path_factory):
    """``foleycrafter prepare`` for the 512-column model, through the command line."""
    from foleycrafter.cli import main

    out = tmp_path_factory.mktemp("prepared_512") / "data"
    code = main(
        ["prepare", str(clips), "--out", str(out), "--model", str(model_512)]
        + ["--captions", str(clips / "captions.csv"), "--num-frames", "8", "--detector-size", "16"]
        + ["--device", "cpu", "--dtype", "float32", "--quiet"]
    )
    assert code == 0
    return out


def test_prepare_cuts_the_windows_of_the_model_it_prepares_for(prepared_512):
    dataset = PreparedDataset(prepared_512)
    assert dataset.config["window_columns"] == 512
    assert (dataset.config["sample_rate"], dataset.config["hop_length"], dataset.config["n_mels"]) == (
        16000,
        160,
        256,
    )
    item = dataset[0]
    assert item["log_mel"].shape == (256, 512) and item["audio"].shape == (512 * 160,)
    # The 12 s video in 5.12 s windows: 0-5.12, 5.12-10.24 and the 1.76 s remainder.
    long_clips = sorted(r["start"] for r in dataset.records if Path(r["source"]).name == "long.mp4")
    assert [round(start, 2) for start in long_clips] == [0.0, 5.12, 10.24]


def test_prepare_reads_the_bundled_models_window():
    from foleycrafter.runtime import BUNDLED_MODEL, model_data_settings

    if not BUNDLED_MODEL.is_dir():
        pytest.skip("the bundled model is not in this checkout")
    settings = model_data_settings(BUNDLED_MODEL)
    assert settings["window_columns"] == 512 and settings["n_mels"] == 256
    assert settings["sample_rate"] == 16000 and settings["hop_length"] == 160 and settings["clip_dim"] > 0


def test_trainer_refuses_data_prepared_for_another_window(clips, model_512, prepared, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError) as refused:
        run_trainer("semantic", model_512, prepared, out, max_steps=1)
    message = str(refused.value)
    assert "window (mel columns) is 1024 in the data but 512 in the model" in message
    # The command that prepares the data again, with the options the folder records.
    assert message.endswith(
        f"foleycrafter prepare {clips} --out {prepared} --model {model_512} "
        "--num-frames 20 --detector-size 32 --captions CAPTIONS --overwrite"
    )
    assert not out.exists(), "refused before anything was written"


def test_prepare_then_train_semantic_on_the_command_line(model_512, prepared_512, tmp_path, capsys):
    """The new user's path: data prepared for the model trains it up to its validation."""
    from foleycrafter.cli import main

    out = tmp_path / "run"
    code = main(
        ["train", "semantic", "--model", str(model_512), "--data", str(prepared_512), "--out", str(out)]
        + ["--set", "max_steps=1", "--set", "validation_steps=2", "--batch-size", "2", "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 1 and np.isfinite(summary["validation"]["mel_l1"])
    assert [p.name for p in (out / "validation").iterdir()] == ["step-1"]
    assert len(list((out / "validation" / "step-1").glob("*.wav"))) == 1


# -- resuming continues exactly where the run stopped (#21) -------------------------------------
class Interrupted(Exception):
    """Stands for the job being killed right after it saved a checkpoint."""


def trained_tensors(run: Path) -> dict:
    """Every tensor a run exported in ``final/`` (the trained component in its loadable form) and
    the last checkpoint's accelerate state (the module as trained), by file and key."""
    from safetensors.torch import load_file

    last = max((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    files = sorted((run / "final").rglob("*.safetensors")) + sorted(last.glob("model*.safetensors"))
    assert files, f"nothing exported in {run}"
    return {
        f"{file.relative_to(run)}:{key}": tensor for file in files for key, tensor in load_file(file).items()
    }


@pytest.mark.parametrize(
    "name, stop, overrides",
    [
        ("temporal", 4, dict(split_merge_probability=0.5, validate_every=2, validation_steps=1)),
        ("onset", 4, dict(learning_rate=3e-3, validate_every=2)),
        # 2 batches per step: an epoch is a step of 2 batches and one of the third (accelerate ends
        # an accumulation at the end of the data), so step 3 ends 2 batches into epoch 1.
        ("onset", 3, dict(learning_rate=3e-3, gradient_accumulation_steps=2)),
    ],
)
def test_resuming_continues_exactly_where_the_run_stopped(
    name, stop, overrides, native_model, prepared, tmp_path, monkeypatch
):
    """Interrupted after the checkpoint of step ``stop`` and resumed, a run ends with the weights
    (and the losses) of a run never interrupted, bit for bit: the same noise draws, the same data
    order (3 training clips, one per batch: the run stops in the middle of epoch 1, which has its
    own shuffled order) and validations that do not shift either."""
    from foleycrafter.training.loop import Trainer

    settings = dict(
        max_steps=7, batch_size=1, checkpoint_every=stop, checkpoints_total_limit=None, **overrides
    )
    assert len(PreparedDataset(prepared).split(0.25, seed=0)[0]) == 3, "the epoch layout above"
    whole = run_trainer(name, native_model, prepared, tmp_path / "whole", **settings)

    save = Trainer.save_checkpoint

    def save_then_stop(self, step):
        folder = save(self, step)
        if step == stop:
            raise Interrupted(step)
        return folder

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "save_checkpoint", save_then_stop)
        with pytest.raises(Interrupted):
            run_trainer(name, native_model, prepared, tmp_path / "resumed", **settings)
    resumed = run_trainer(
        name, native_model, prepared, tmp_path / "resumed", resume_from="latest", **settings
    )

    assert [h["step"] for h in resumed["history"]] == list(range(stop + 1, 8))
    assert resumed["history"] == whole["history"][stop:]
    expected, actual = trained_tensors(tmp_path / "whole"), trained_tensors(tmp_path / "resumed")
    assert expected.keys() == actual.keys()
    differing = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not differing, differing
    # The trained weights moved: an equality of untrained weights would prove nothing.
    assert whole["history"][0]["loss"] != whole["history"][-1]["loss"]


def test_loudness_predictor_trainer(native_model, prepared, tmp_path):
    """Learns per-frame levels from the prepared curves and reports its error against the best constant's."""
    from foleycrafter.models import LoudnessPredictor

    result = run_trainer(
        "loudness_predictor",
        None,
        prepared,
        tmp_path / "run",
        max_steps=16,
        learning_rate=3e-3,
        detector={"block_channels": [4, 4, 8, 8], "layers": [1, 1, 1, 1], "head_hidden": 16},
    )
    assert_learns(result)
    metrics = result["validation"]
    assert 0 < metrics["frame_error_db"] < 80 and metrics["constant_error_db"] >= 0 and metrics["clips"] >= 1
    predictor = LoudnessPredictor.from_pretrained(tmp_path / "run" / "final" / "loudness_predictor")
    assert predictor.config.resize_size == 32  # the prepared frames' size
