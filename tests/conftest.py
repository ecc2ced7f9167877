"""Shared fixtures: tiny seeded models written in the released layouts, loaded through the real code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests never reach the network: a hub id that is not a local folder must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"shared media folder not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def release_folders(tmp_path_factory):
    """(base, adapters, image_encoder) folders in the released layouts, tiny and seeded."""
    from foleycrafter.testing import write_release_folders

    return write_release_folders(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def release_pipe(release_folders):
    from foleycrafter import FoleyCrafterPipeline

    base, adapters, encoder = release_folders
    pipe = FoleyCrafterPipeline.from_pretrained(base, adapters=adapters, image_encoder=encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def native_model(release_pipe, tmp_path_factory):
    """The tiny release-layout pipeline saved in the native format (a `--model` folder)."""
    folder = tmp_path_factory.mktemp("model") / "foleycrafter-test"
    release_pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def model_with_alignment_classifier(native_model, tmp_path_factory):
    """``native_model`` with a small random alignment classifier (seed 0), saved natively."""
    import torch

    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.models import AlignmentClassifier

    pipe = FoleyCrafterPipeline.from_pretrained(native_model)
    torch.manual_seed(0)
    classifier = AlignmentClassifier(
        latent_channels=pipe.vae.config.latent_channels,
        video_dim=pipe.image_encoder.config.projection_dim,
        hidden_channels=8,
        num_layers=1,
    )
    pipe.register_modules(alignment_classifier=classifier)
    folder = tmp_path_factory.mktemp("model") / "with-alignment-classifier"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def model_with_loudness_controller(native_model, tmp_path_factory):
    """``native_model`` with a random tiny loudness controller and loudness predictor (seed 1),
    saved natively."""
    import torch

    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.models import LoudnessPredictor
    from foleycrafter.testing import tiny_loudness_controller

    pipe = FoleyCrafterPipeline.from_pretrained(native_model)
    torch.manual_seed(1)
    predictor = LoudnessPredictor(block_channels=(4, 4, 8, 8), head_hidden=16, resize_size=32, crop_size=28)
    pipe.register_modules(
        loudness_controller=tiny_loudness_controller(pipe.unet, seed=1), loudness_predictor=predictor
    )
    folder = tmp_path_factory.mktemp("model") / "with-loudness-controller"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def model_with_frame_aligned_adapter(native_model, tmp_path_factory):
    """``native_model`` with a random frame-aligned semantic adapter (framewise, 0.4 s; seed 3)
    instead of its own, saved natively: ``(folder, the adapter's weights)``."""
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.semantic import initial_frame_aligned_adapter, install_frame_aligned_adapter

    pipe = FoleyCrafterPipeline.from_pretrained(native_model)
    weights, config = initial_frame_aligned_adapter(
        pipe.unet,
        pipe.image_encoder.config.projection_dim,
        seed=3,
        visual_attention="framewise",
        framewise_seconds=0.4,
    )
    install_frame_aligned_adapter(pipe.unet, weights, config)
    folder = tmp_path_factory.mktemp("model") / "frame-aligned"
    pipe.save_pretrained(folder)
    return folder, weights


@pytest.fixture(scope="session")
def clip():
    """A 3.3 s clip of synthetic frames (what a video file would give after sampling)."""
    from foleycrafter.testing import synthetic_frames
    from foleycrafter.video import VideoClip

    frames = synthetic_frames(num_frames=50)
    return VideoClip(frames=frames, frame_times=np.arange(50) / 15.0, duration=3.3)
