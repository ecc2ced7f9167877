"""The bundled tiny model (checkpoints/foleycrafter-tiny): complete, small, and the CLI's default."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from foleycrafter.runtime import BUNDLED_MODEL as DEFAULT_MODEL


def write_synthfoley_clip(folder, index, seconds, fps):
    """A SynthFoley test clip of ``seconds`` as ``folder/clip.mp4`` (with its soundtrack)."""
    from foleycrafter.data.synthfoley import generate_clip, write_mp4, write_wav

    frames, audio, record = generate_clip(0, index, "test", duration=seconds, fps=fps)
    write_wav(folder / "clip.wav", audio)
    write_mp4(folder / "clip.mp4", frames, record["fps_fraction"], folder / "clip.wav")
    return folder / "clip.mp4"


def test_bundled_model_is_native_safetensors_under_25_mb():
    files = [f for f in DEFAULT_MODEL.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 25 * 2**20
    assert not [f for f in files if f.suffix in (".bin", ".ckpt", ".pt", ".pth")]
    index = json.loads((DEFAULT_MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "FoleyCrafterPipeline"
    parts = ("controlnet", "onset_detector", "image_encoder", "vocoder", "unet", "vae", "text_encoder")
    # v2 carries every control the project ships: loudness, double guidance.
    parts += ("loudness_controller", "loudness_predictor", "alignment_classifier")
    for part in parts:
        assert index.get(part, [None])[0] is not None, part


def test_bundled_model_generates_finite_audio_of_the_clip_length(tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    video = write_synthfoley_clip(tmp_path, index=0, seconds=3.0, fps=25.0)
    pipe = FoleyCrafterPipeline.from_pretrained(DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.has_semantic_adapter
    assert pipe.config.default_temporal_scale == 3.0  # chosen on the validation split (build_tiny)
    out = pipe(video=str(video), num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert out.audios[0].shape == (48000,)
    assert np.all(np.isfinite(out.audios[0])) and np.abs(out.audios[0]).max() > 1e-3
    assert out.onset_probabilities is not None and out.timestamp_masks is not None
    # Every control the bundle carries runs: the loudness curve read off the video, double guidance.
    steered = pipe(
        video=str(video),
        num_inference_steps=2,
        loudness="video",
        alignment_guidance_scale=10.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert steered.loudness_curves is not None and np.all(np.isfinite(steered.audios[0]))


def test_cli_default_model_turns_a_video_into_a_video_with_sound(tmp_path):
    """`foleycrafter generate clip.mp4` with no --model uses the bundled model."""
    from foleycrafter.video import read_audio_track

    video = write_synthfoley_clip(tmp_path, index=1, seconds=2.5, fps=24.0)
    out = tmp_path / "out.mp4"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "foleycrafter.cli",
            "generate",
            str(video),
            "-o",
            str(out),
            "--steps",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    track = read_audio_track(out)
    assert abs(len(track) / 16000 - 2.5) < 0.05 and np.abs(track).max() > 1e-3


def test_readme_first_command_gives_the_example_clip_a_soundtrack(tmp_path):
    """The README's first generate command runs as written on a fresh clone: its input ships here."""
    from foleycrafter.video import read_audio_track, read_video_info

    repo = Path(__file__).resolve().parents[1]
    command = re.search(r"^\.venv/bin/foleycrafter (generate .+)$", (repo / "README.md").read_text(), re.M)
    arguments = shlex.split(command.group(1))
    video = repo / arguments[1]
    assert video.is_file() and video.stat().st_size < 500_000
    info = read_video_info(video)
    assert not info.has_audio and 3.0 < info.duration < 4.0  # silent: the command gives it its sound
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "foleycrafter.cli",
            *arguments[:1],
            str(video),
            *arguments[2:],
            "--steps",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    track = read_audio_track(tmp_path / arguments[arguments.index("-o") + 1])
    assert abs(len(track) / 16000 - info.duration) < 0.05 and np.abs(track).max() > 1e-3
