"""Evaluation: Fréchet distance, the SynthFoley audio classifier (and the bundled one), the benchmark."""

from __future__ import annotations

import argparse
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from launcher import torchrun

from foleycrafter.data import synthfoley as sf
from foleycrafter.eval import benchmark, report, running
from foleycrafter.eval.classifier import DEFAULT_CLASSIFIER, AudioClassifier, load_classifier, read_split
from foleycrafter.eval.frechet import (
    embedding_statistics,
    frechet_audio_distance,
    frechet_distance,
    frechet_distance_from_statistics,
)

SR = sf.SAMPLE_RATE


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These models are tiny: with a second thread they gain little, and on a shared 2-core machine a
    starved OpenMP thread makes every step wait (10x slower measured); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- Fréchet distance ------------------------------------------------------------------------------------
def test_frechet_distance_is_zero_for_identical_sets():
    x = np.random.default_rng(0).normal(size=(300, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, -1.0, 1.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    got = frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_grows_with_a_mean_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4)) * np.array([1.0, 2.0, 0.5, 1.0])
    shifts = [0.0, 0.5, 1.0, 2.0]
    distances = [frechet_distance(x, x + np.array([s, 0, 0, 0])) for s in shifts]
    # Same covariance: only the mean term remains, exactly |shift|^2.
    assert distances == pytest.approx([s * s for s in shifts], abs=1e-6)
    assert all(a < b for a, b in zip(distances, distances[1:]))


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 16)), rng.normal(size=(4, 16)) + 1.0
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    mean, cov = embedding_statistics(a[:1])
    assert mean.shape == (16,) and np.all(cov == 0)
    with pytest.raises(ValueError, match="embedding sizes"):
        frechet_distance(a, rng.normal(size=(3, 8)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((3, 2), np.nan), a[:, :2])


# -- the classifier --------------------------------------------------------------------------------------
def tiny_classifier(seed: int = 0) -> AudioClassifier:
    torch.manual_seed(seed)
    return AudioClassifier(class_names=["a", "b", "c"], n_mels=16, channels=(4, 8), embedding_dim=8).eval()


def test_classifier_shapes_lengths_and_round_trip(tmp_path):
    model = tiny_classifier()
    rng = np.random.default_rng(0)
    waveforms = [rng.normal(scale=0.1, size=n).astype(np.float32) for n in (800, 16000, 41000)]
    embeddings = model.embed(waveforms)
    assert embeddings.shape == (3, 8) and np.all(np.isfinite(embeddings))
    predicted = model.predict(waveforms)
    assert predicted.shape == (3,) and predicted.dtype == np.int64 and set(predicted) <= {0, 1, 2}
    probabilities = model.predict_proba(waveforms)
    assert probabilities.shape == (3, 3) and np.allclose(probabilities.sum(axis=1), 1.0)
    logits, batch_embeddings = model(torch.from_numpy(np.stack([waveforms[1], waveforms[1]])))
    assert logits.shape == (2, 3) and batch_embeddings.shape == (2, 8)
    # Embeddings do not depend on the level (the input is normalized to the loudest cell).
    assert np.allclose(model.embed([waveforms[2] * 0.1]), embeddings[2:], atol=1e-4)

    model.save_pretrained(tmp_path / "clf")
    assert (tmp_path / "clf" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_classifier(tmp_path / "clf")
    assert loaded.class_names == ["a", "b", "c"]
    assert np.allclose(loaded.embed(waveforms), embeddings, atol=1e-6)

    with pytest.raises(ValueError, match="1-D"):
        model.embed([np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="list of 1-D"):
        model.embed(waveforms[1])
    with pytest.raises(FileNotFoundError, match="no AudioClassifier"):
        load_classifier(tmp_path / "missing")


def test_frechet_audio_distance_uses_the_classifier_embedding():
    model = tiny_classifier()
    rng = np.random.default_rng(3)
    noise = [rng.normal(scale=0.1, size=SR).astype(np.float32) for _ in range(6)]
    tones = [
        (0.3 * np.sin(2 * np.pi * f * np.arange(SR) / SR)).astype(np.float32) for f in (300, 500, 700, 900)
    ]
    assert frechet_audio_distance(model, noise, noise) == pytest.approx(0.0, abs=1e-6)
    assert frechet_audio_distance(model, noise, tones) > 0


@pytest.fixture(scope="module")
def bundled_classifier():
    return load_classifier()


def test_bundled_classifier_recognizes_fresh_ground_truth_clips(bundled_classifier):
    """Two clips of every class from a seed the classifier never saw (it was trained on seed 0)."""
    assert bundled_classifier.class_names == list(sf.CLASS_NAMES)
    clips = [sf.generate_clip(seed=2024, index=i, split="test", size=16) for i in range(2 * len(sf.CLASSES))]
    labels = [record["class_index"] for _, _, record in clips]
    assert sorted(labels) == sorted(list(range(len(sf.CLASSES))) * 2)
    predicted = bundled_classifier.predict([audio for _, audio, _ in clips])
    assert predicted.tolist() == labels
    assert sum(p.numel() for p in bundled_classifier.parameters()) * 4 < 2_000_000


# -- the benchmark ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthfoley")
    sf.generate_dataset(root, "test", 3, seed=7, size=32)
    return root


@pytest.fixture(scope="module")
def model_folder(release_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    release_pipe.save_pretrained(folder)
    return folder


def test_configurations_match_the_issue_table():
    c = running.CONFIGURATIONS
    assert list(c) == [
        "base_class_prompt",
        "base_empty_prompt",
        "semantic_empty_prompt",
        "temporal_gt_onsets",
        "both_detected",
        "both_detected_loudness",
        "both_detected_loudness_exact",
        "both_detected_loudness_video",
        "both_detected_region",
        "both_detected_region_mask",
        "both_detected_region_other",
        "both_detected_release_timing",
        "autoencoder_ceiling",
        "autoencoder_ceiling_silence",
        "vocoder_ceiling",
    ]
    assert c["autoencoder_ceiling"].source == "reconstruct" and c["autoencoder_ceiling"].padding == "mirror"
    assert c["autoencoder_ceiling_silence"].padding == "silence"
    assert c["vocoder_ceiling"].source == "vocode"
    assert (c["base_class_prompt"].semantic_scale, c["base_class_prompt"].temporal_scale) == (0, 0)
    assert c["base_class_prompt"].prompt == "caption" and c["base_empty_prompt"].prompt == "empty"
    assert c["semantic_empty_prompt"].semantic_scale == 1.0 and c["semantic_empty_prompt"].temporal_scale == 0
    assert c["temporal_gt_onsets"].onsets == "ground_truth" and c["temporal_gt_onsets"].temporal_scale == 0.2
    assert c["both_detected"].onsets == "detector" and c["both_detected"].semantic_scale == 1.0
    release = c["both_detected_release_timing"]
    assert (
        release.timing == "release"
        and release.selects({"duration": 9.0})
        and not release.selects({"duration": 7.9})
    )
    overridden = running._resolve_configurations("base_empty_prompt,both_detected", 0.5)
    assert [x.temporal_scale for x in overridden] == [0.0, 0.5]
    with pytest.raises(ValueError, match="unknown configuration"):
        running._resolve_configurations(["nope"], None)


def test_configurations_the_model_cannot_run_are_named():
    bare = SimpleNamespace(
        has_semantic_adapter=False,
        image_encoder=None,
        controlnet=None,
        onset_detector=None,
        loudness_controller=None,
    )
    c = running.CONFIGURATIONS
    assert running._missing_parts(bare, c["base_empty_prompt"]) == []
    assert running._missing_parts(bare, c["semantic_empty_prompt"]) == ["semantic adapter"]
    assert running._missing_parts(bare, c["both_detected"]) == ["semantic adapter", "temporal controller"]
    no_detector = SimpleNamespace(
        has_semantic_adapter=True,
        image_encoder=object(),
        controlnet=object(),
        onset_detector=object(),
        loudness_controller=None,
    )
    assert running._missing_parts(no_detector, c["both_detected_loudness"]) == ["loudness controller"]
    no_detector.loudness_controller, no_detector.loudness_predictor = object(), None
    assert running._missing_parts(no_detector, c["both_detected_loudness_exact"]) == []
    assert running._missing_parts(no_detector, c["both_detected_loudness_video"]) == ["loudness predictor"]
    assert c["both_detected_loudness_exact"].loudness == "ground_truth"
    no_detector.onset_detector = None
    assert running._missing_parts(no_detector, c["temporal_gt_onsets"]) == []
    assert running._missing_parts(no_detector, c["both_detected"]) == ["video onset detector"]


def test_eval_end_to_end(model_folder, tiny_split, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    out = tmp_path / "results.json"
    args = parser.parse_args(
        [
            "--model", str(model_folder),
            "--data", str(tiny_split),
            "--configurations",
            "base_empty_prompt,temporal_gt_onsets,both_detected_release_timing,autoencoder_ceiling",
            "--max-clips", "2",
            "--steps", "2",
            "--scheduler", "dpm++",
            "--out", str(out),
            "--quiet",
        ]
    )  # fmt: skip
    assert benchmark.run(args) == 0
    table = capsys.readouterr().out
    assert "base_empty_prompt" in table and "temporal_gt_onsets" in table and "ground truth" in table

    results = json.loads(out.read_text())
    assert results["split"] == "test" and results["model"].endswith("tiny") and results["date"]
    assert results["settings"]["steps"] == 2 and results["settings"]["onset_tolerance_s"] == 0.05
    assert results["settings"]["scheduler"] == "dpm++ (DPMSolverMultistepScheduler)"
    # No --temporal-scale: the configurations that use the controller take the model's default.
    assert results["settings"]["model_default_temporal_scale"] == 0.2
    records = read_split(tiny_split, "test")[:2]
    by_name = {entry["configuration"]["name"]: entry for entry in results["configurations"]}
    assert list(by_name) == [
        "base_empty_prompt",
        "temporal_gt_onsets",
        "both_detected_release_timing",
        "autoencoder_ceiling",
    ]
    assert by_name["temporal_gt_onsets"]["configuration"]["temporal_scale"] == 0.2
    # The release-timing row needs 8-10 s clips; the tiny split may or may not have one.
    long_clips = [r for r in read_split(tiny_split, "test") if 8.0 <= r["duration"] <= 10.0]
    assert (by_name["both_detected_release_timing"]["skipped"] is None) == bool(long_clips)

    for name in ("base_empty_prompt", "temporal_gt_onsets", "autoencoder_ceiling"):
        entry = by_name[name]
        assert entry["skipped"] is None
        metrics = entry["metrics"]
        for key in running.METRIC_NAMES:
            assert key in metrics
        for key in ("f1", "precision", "recall", "average_precision", "count_accuracy", "semantic_accuracy"):
            assert 0.0 <= metrics[key] <= 1.0, (name, key, metrics[key])
        assert metrics["frechet_distance"] >= 0
        assert metrics["mean_timing_error_ms"] is None or 0 <= metrics["mean_timing_error_ms"] <= 50
        assert metrics["num_clips"] == 2 and metrics["num_reference"] == sum(r["num_events"] for r in records)
        assert [row["id"] for row in entry["clips"]] == [r["id"] for r in records]
        for row in entry["clips"]:
            assert row["reference_onsets"] == pytest.approx(row_record(records, row)["onsets"])
            assert row["predicted_class"] in sf.CLASS_NAMES and row["generation_seconds"] > 0

    # The ceiling: the same detector and classifier on the ground-truth audio.
    truth = results["ground_truth"]["metrics"]
    assert truth["f1"] >= 0.9 and truth["average_precision"] >= 0.9
    assert truth["semantic_accuracy"] == 1.0 and truth["num_clips"] == 2
    # Align Acc: the bundled sync classifier calls the ground truth in sync.
    assert truth["align_accuracy"] == 1.0, [
        row.get("sync_probability") for row in results["ground_truth"]["clips"]
    ]
    assert results["settings"]["sync_classifier"].endswith("synthfoley-sync-classifier")
    for name in ("base_empty_prompt", "autoencoder_ceiling"):
        rows = by_name[name]["clips"]
        assert all(0.0 <= row["sync_probability"] <= 1.0 for row in rows)
        in_sync = np.mean([row["sync_probability"] >= 0.5 for row in rows])
        assert by_name[name]["metrics"]["align_accuracy"] == pytest.approx(in_sync)


def row_record(records, row):
    return next(r for r in records if r["id"] == row["id"])


def test_set_scheduler_keeps_the_noise_schedule_and_names_bad_choices(model_folder):
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.schedulers import set_scheduler

    pipe = FoleyCrafterPipeline.from_pretrained(model_folder)
    saved = pipe.scheduler
    set_scheduler(pipe, "saved")
    assert pipe.scheduler is saved
    set_scheduler(pipe, "dpm++")
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    for key in ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "prediction_type"):
        assert pipe.scheduler.config[key] == saved.config[key], key
    with pytest.raises(ValueError, match="Unknown scheduler 'fast'.*dpm\\+\\+"):
        set_scheduler(pipe, "fast")


def test_eval_takes_the_models_default_steps(release_pipe, tiny_split):
    """Without ``steps`` the evaluation runs what a user gets: the model's saved step count."""
    from foleycrafter import FoleyCrafterPipeline

    pipe = FoleyCrafterPipeline(**release_pipe.components, default_num_inference_steps=2)
    pipe.set_progress_bar_config(disable=True)
    settings = dict(configurations=["base_empty_prompt"], max_clips=1, classifier=None)
    by_default = running.evaluate_model(pipe, tiny_split, **settings)
    assert by_default["settings"]["steps"] == 2
    explicit = running.evaluate_model(pipe, tiny_split, steps=2, **settings)
    assert by_default["configurations"][0]["metrics"]["f1"] == explicit["configurations"][0]["metrics"]["f1"]
    assert [row["estimated_onsets"] for row in by_default["configurations"][0]["clips"]] == [
        row["estimated_onsets"] for row in explicit["configurations"][0]["clips"]
    ]


def test_eval_in_two_worker_processes_matches_one_process(model_folder, tiny_split):
    import torch

    settings = dict(configurations=["temporal_gt_onsets"], max_clips=2, steps=2, classifier=None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each of 2 workers gets on a 2-core machine: the same arithmetic
    try:
        one = running.evaluate_model(model_folder, tiny_split, **settings)
    finally:
        torch.set_num_threads(threads)
    two = running.evaluate_model(model_folder, tiny_split, workers=2, **settings)
    rows_one, rows_two = one["configurations"][0]["clips"], two["configurations"][0]["clips"]
    assert len(rows_one) == len(rows_two) == 2
    if (os.cpu_count() or 1) <= 2:
        for a, b in zip(rows_one, rows_two):
            a.pop("generation_seconds"), b.pop("generation_seconds")
            assert a == b
    with pytest.raises(ValueError, match="workers > 1 .* pass a model folder"):
        from foleycrafter import FoleyCrafterPipeline

        running.evaluate_model(FoleyCrafterPipeline.from_pretrained(model_folder), tiny_split, workers=2)


def test_eval_reports_bad_inputs(tiny_split, tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        running.evaluate_model(tmp_path / "model", tmp_path, split="test")
    with pytest.raises(ValueError, match="max_clips"):
        running.evaluate_model(tmp_path / "model", tiny_split, max_clips=0)


def test_bundled_classifier_is_documented():
    readme = (DEFAULT_CLASSIFIER / "README.md").read_text()
    assert "python -m foleycrafter.eval.classifier train" in readme
    config = json.loads((DEFAULT_CLASSIFIER / "config.json").read_text())
    assert config["_class_name"] == "AudioClassifier" and config["class_names"] == list(sf.CLASS_NAMES)


def fake_results(*names, steps=25, date="2026-11-30T00:00:00+00:00", f1_truth=1.0):
    return {
        "model": "m",
        "dataset_root": "/d",
        "split": "test",
        "date": date,
        "settings": {"steps": steps, "seed": 42},
        "ground_truth": {"metrics": {"f1": f1_truth}, "clips": []},
        "configurations": [
            {"configuration": {"name": n}, "skipped": None, "metrics": {"f1": 0.5}, "clips": []}
            for n in names
        ],
    }


def test_results_of_separate_runs_merge_into_one_table(tmp_path, capsys):
    a = fake_results("both_detected")
    b = fake_results("base_empty_prompt", "temporal_gt_onsets", date="2026-12-01T00:00:00+00:00")
    merged = report.merge_results([a, b], names=["a.json", "b.json"])
    names = [e["configuration"]["name"] for e in merged["configurations"]]
    assert names == ["both_detected", "base_empty_prompt", "temporal_gt_onsets"]
    assert merged["date"] == b["date"] and merged["merged_from"] == ["a.json", "b.json"]
    assert len(a["configurations"]) == 1  # the inputs are left as they were

    with pytest.raises(ValueError, match="b.json was run with other settings than a.json: steps"):
        report.merge_results([a, fake_results("x", steps=10)], names=["a.json", "b.json"])
    with pytest.raises(ValueError, match="other clips"):
        report.merge_results([a, fake_results("x", f1_truth=0.9)])
    with pytest.raises(ValueError, match="'both_detected' is in both"):
        report.merge_results([a, fake_results("both_detected")])
    # A file written before a metric existed merges with one that has it (None: no clip has a value)...
    newer = fake_results("z")
    newer["ground_truth"]["metrics"]["event_class_accuracy"] = None
    assert len(report.merge_results([a, newer])["configurations"]) == 2
    # ...but a value there is a difference.
    newer["ground_truth"]["metrics"]["event_class_accuracy"] = 0.9
    with pytest.raises(ValueError, match="other clips"):
        report.merge_results([a, newer])

    # The command line: --merge needs no --data and writes the joined JSON.
    for name, part in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(part))
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    out = tmp_path / "all.json"
    args = parser.parse_args(
        ["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]
    )
    assert benchmark.run(args) == 0
    assert "temporal_gt_onsets" in capsys.readouterr().out
    assert len(json.loads(out.read_text())["configurations"]) == 3
    with pytest.raises(ValueError, match="--data is required"):
        benchmark.run(parser.parse_args([]))


def test_eval_under_torchrun_in_two_processes_matches_one_process(model_folder, tiny_split, tmp_path, capsys):
    """``torchrun --nproc_per_node 2 -m foleycrafter eval``: two CPU processes share the (clip,
    configuration) jobs; the main process alone prints and writes the rows one process writes."""
    import subprocess

    arguments = ["--model", str(model_folder), "--data", str(tiny_split)]
    arguments += ["--configurations", "base_empty_prompt,temporal_gt_onsets", "--max-clips", "3"]
    arguments += ["--steps", "2", "--classifier", "none", "--quiet"]
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    assert benchmark.run(parser.parse_args([*arguments, "--out", str(tmp_path / "one.json")])) == 0
    capsys.readouterr()

    launcher = torchrun(2, 29547)
    result = subprocess.run(
        [*launcher, "-m", "foleycrafter", "eval", *arguments, "--out", str(tmp_path / "two.json")],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote ") == 1 and result.stdout.count("temporal_gt_onsets") == 1, (
        result.stdout
    )
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    timings = {"generation_seconds", "generation_seconds_per_clip", "real_time_factor"}
    assert len(one["configurations"]) == len(two["configurations"]) == 2
    for a, b in zip(one["configurations"], two["configurations"]):
        assert len(a["clips"]) == 3
        assert [{k: v for k, v in row.items() if k not in timings} for row in a["clips"]] == [
            {k: v for k, v in row.items() if k not in timings} for row in b["clips"]
        ]
        assert {k: v for k, v in a["metrics"].items() if k not in timings} == {
            k: v for k, v in b["metrics"].items() if k not in timings
        }
    assert one["ground_truth"] == two["ground_truth"]


def test_eval_shares_jobs_and_fails_alike_in_every_process(monkeypatch):
    """The main process puts the gathered audio back in job order, the others return None; a
    failure in any process is raised in every process, naming it."""
    from foleycrafter import distributed
    from foleycrafter.distributed import Processes

    jobs = [({"duration": duration}, index) for index, duration in enumerate([3.0, 1.0, 2.0])]
    # Each fake "audio" is the job's index: the order of the result shows where each landed.
    monkeypatch.setattr(
        running,
        "_generate_all",
        lambda pipe, folder, mine, *rest: [(np.full(2, job[1]), 0.5) for job in mine],
    )
    shares = distributed.balance([3.0, 1.0, 2.0], 2)
    assert shares == [[0], [1, 2]]

    def gather_from(other_error):
        def all_gather(value, processes):
            rank = processes.rank
            other = ([(i, np.full(2, i), 0.5) for i in shares[1 - rank]], other_error)
            return [value, other] if rank == 0 else [other, value]

        return all_gather

    monkeypatch.setattr(distributed, "all_gather", gather_from(None))
    main = running._generate_shared(None, None, jobs, 1, "cpu", None, "saved", Processes(0, 2, 0))
    assert [int(audio[0]) for audio, _ in main] == [0, 1, 2]
    assert running._generate_shared(None, None, jobs, 1, "cpu", None, "saved", Processes(1, 2, 1)) is None

    monkeypatch.setattr(distributed, "all_gather", gather_from("RuntimeError: out of memory"))
    for rank in (0, 1):
        with pytest.raises(ValueError, match=f"process {1 - rank}: RuntimeError: out of memory"):
            running._generate_shared(None, None, jobs, 1, "cpu", None, "saved", Processes(rank, 2, rank))


def test_eval_scores_loudness_and_steers_with_a_rough_ground_truth_curve(
    model_with_loudness_controller, tiny_split
):
    """Every configuration reports how closely its audio's loudness follows the ground truth's; the
    loudness configuration hands the pipeline the same rough curve for a clip whatever the model."""
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.eval.classifier import read_split, read_wav
    from foleycrafter.loudness import audio_loudness

    results = running.evaluate_model(
        model_with_loudness_controller,
        tiny_split,
        configurations=["both_detected", "both_detected_loudness"],
        steps=2,
        classifier=None,
        sync_classifier=None,
    )
    truth = results["ground_truth"]["metrics"]
    assert truth["loudness_error_db"] is None and truth["loudness_correlation"] is None
    plain, steered = (entry["metrics"] for entry in results["configurations"])
    for metrics in (plain, steered):
        assert metrics["loudness_error_db"] > 0 and -1 <= metrics["loudness_correlation"] <= 1
    assert plain["loudness_error_db"] != steered["loudness_error_db"]
    row = results["configurations"][1]["clips"][0]
    assert set(row) >= {"loudness_error_db", "loudness_correlation"}

    pipe = FoleyCrafterPipeline.from_pretrained(model_with_loudness_controller)
    record = read_split(tiny_split, "test")[0]
    rough = running.clip_loudness_condition(pipe, record, "rough", seed=42)
    exact = running.clip_loudness_condition(pipe, record, "ground_truth", seed=42)
    assert rough.shape == exact.shape == (pipe.timeline().clip_columns(record["duration"]),)
    np.testing.assert_array_equal(rough, running.clip_loudness_condition(pipe, record, "rough", seed=42))
    measured = audio_loudness(read_wav(record["audio_path"])[0], pipe.timeline())
    np.testing.assert_allclose(exact[: measured.size], measured[: exact.size])
    assert 0 < np.abs(rough - exact).mean() < 10


def test_region_configurations_take_only_two_object_clips(model_folder, tiny_split, tmp_path):
    """On a split without two-object clips they are skipped with what to do; on one with them they
    run on the heard object's region."""
    from foleycrafter.data import synthfoley as sf

    results = running.evaluate_model(
        model_folder,
        tiny_split,
        configurations=["both_detected_region"],
        steps=1,
        classifier=None,
        sync_classifier=None,
    )
    assert "--layout two_objects" in results["configurations"][0]["skipped"]
    assert running.CONFIGURATIONS["both_detected_region"].selects({"duration": 3.0, "region": [0, 0, 1, 1]})
    pairs = tmp_path / "pairs"
    sf.generate_dataset(pairs, "test", 2, seed=7, size=32, layout="two_objects")
    results = running.evaluate_model(
        model_folder,
        pairs,
        configurations=["both_detected", "both_detected_region", "both_detected_region_mask"],
        steps=1,
        classifier=None,
        sync_classifier=None,
    )
    whole, cropped, masked = results["configurations"]
    assert all(
        entry["skipped"] is None and entry["metrics"]["num_clips"] == 2 for entry in (whole, cropped, masked)
    )
    assert masked["configuration"]["region_mode"] == "mask"
    # What the pipeline is handed: the heard object's box, in the configuration's mode.
    import torch

    seen = {}

    def pipe(**kwargs):
        seen.update(kwargs)
        return SimpleNamespace(audios=[np.zeros(16000, np.float32)])

    record = sf.read_metadata(pairs / "test")[0]
    record.update(video_path="v.mp4", audio_path="a.wav")
    running.generate_clip_audio(
        pipe, record, running.CONFIGURATIONS["both_detected_region_mask"], 1, 7.5, 0, {}, torch
    )
    assert seen["region"] == record["region"] and seen["region_mode"] == "mask"
    running.generate_clip_audio(
        pipe, record, running.CONFIGURATIONS["both_detected_region_other"], 1, 7.5, 0, {}, torch
    )
    x0, y0, x1, y1 = record["region"]
    assert seen["region"] == [1 - x1, y0, 1 - x0, y1] and seen["region_mode"] == "crop"
    assert {x0, 1 - x1} == {0.0, 0.5}  # the two halves, one each
