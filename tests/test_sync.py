"""The evaluation sync classifier (Align Acc): shapes, save/load, training on a tiny SynthFoley set,
and its scores in the benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foleycrafter.data import synthfoley as sf
from foleycrafter.eval.sync import (
    SyncClassifier,
    align_accuracy,
    clip_frames,
    evaluate_pairs,
    train_sync_classifier,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthfoley")
    sf.generate_dataset(root, "train", 6, seed=11, size=32)
    sf.generate_dataset(root, "validation", 3, seed=12, size=32)
    return root


def test_shapes_probability_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SyncClassifier(channels=8)
    seconds = 2.0
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)
    frames = np.random.default_rng(1).integers(0, 256, (model.num_frames(seconds), 40, 48, 3), dtype=np.uint8)
    assert model.num_frames(seconds) == 25
    probability = model.probability(waveform, frames)
    assert 0.0 < probability < 1.0
    model.save_pretrained(tmp_path / "sync")
    loaded = SyncClassifier.from_pretrained(tmp_path / "sync")
    assert loaded.probability(waveform, frames) == pytest.approx(probability, abs=1e-6)
    judged = align_accuracy(loaded, [waveform, waveform], [frames, frames])
    assert judged["align_accuracy"] in (0.0, 1.0) and len(judged["probabilities"]) == 2
    with pytest.raises(ValueError, match="one frame array per waveform"):
        align_accuracy(loaded, [waveform], [])
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SyncClassifier(kernel_size=4)


def test_training_on_a_tiny_set_saves_and_reports_every_pair_kind(tiny_root, tmp_path):
    model, summary = train_sync_classifier(
        tiny_root, tmp_path / "sync", steps=6, batch_size=4, validate_every=3, test_split=None
    )
    assert summary["selected_step"] in (3, 6) and len(summary["history"]) == 2
    for key in ("accuracy_true", "accuracy_shifted", "accuracy_other", "balanced_accuracy"):
        assert 0.0 <= summary["validation"][key] <= 1.0
    assert summary["validation_degraded"]["clips"] == 3
    assert (tmp_path / "sync" / "config.json").is_file()
    assert (tmp_path / "sync" / "training_summary.json").is_file()
    record = sf.read_metadata(tiny_root / "validation")[0]
    frames = clip_frames(tiny_root / "validation" / record["video"], record["duration"], model)
    assert frames.shape == (model.num_frames(record["duration"]), 32, 32, 3) and frames.dtype == np.uint8
    # Whole clips: a true pair scores the same as itself, and the result keys are the pair kinds.
    audio = [np.zeros(int(record["duration"] * 16000), dtype=np.float32) + 0.01]
    result = evaluate_pairs(model, audio, [frames])
    assert set(result) == {"accuracy_true", "accuracy_shifted", "balanced_accuracy", "clips"}


def test_bundled_sync_classifier_tells_sync_from_shifted_on_fresh_clips():
    """Clips from a seed it never saw: most true pairs in sync, most pairs shifted by 1 s not."""
    from foleycrafter.data.prepared import squash_frames
    from foleycrafter.eval.sync import DEFAULT_SYNC_CLASSIFIER, load_sync_classifier

    if not (DEFAULT_SYNC_CLASSIFIER / "config.json").is_file():
        pytest.fail(f"the bundled sync classifier is missing: {DEFAULT_SYNC_CLASSIFIER}")
    model = load_sync_classifier()
    clips = [sf.generate_clip(seed=2025, index=i, split="test", size=64) for i in range(8)]
    audios = [audio for _, audio, _ in clips]
    frames = [
        squash_frames(
            video[np.linspace(0, len(video) - 1, model.num_frames(r["duration"])).astype(int)], 32
        ).numpy()
        for video, _, r in clips
    ]
    result = evaluate_pairs(model, audios, frames)
    assert result["accuracy_true"] >= 0.6 and result["accuracy_shifted"] >= 0.6, result
