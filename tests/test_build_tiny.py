"""The reproduce command of the bundled tiny model, at a few clips and two steps per stage."""

from __future__ import annotations

import numpy as np
import torch

from foleycrafter.training import build_tiny


def test_build_tiny_runs_every_stage_exports_a_complete_model_and_resumes(tmp_path):
    from foleycrafter import FoleyCrafterPipeline

    work, out = tmp_path / "work", tmp_path / "model"
    splits = {"train": 6, "validation": 1, "test": 1}
    timings = build_tiny.build(work, out, quick=True, splits=splits)
    assert list(timings) == list(build_tiny.ORDER)

    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 25e6
    assert not list(out.rglob("*.bin")) and list(out.rglob("*.safetensors"))
    # The UNet and controller are stored as float16 and load back as float32.
    from safetensors import safe_open

    for name in build_tiny.STORED_AS_FLOAT16:
        with safe_open(next((out / name).glob("*.safetensors")), "pt") as f:
            assert {f.get_slice(key).get_dtype() for key in f.keys()} == {"F16"}, name
    pipe = FoleyCrafterPipeline.from_pretrained(out)
    assert pipe.unet.dtype == pipe.controlnet.dtype == pipe.loudness_controller.dtype == torch.float32
    for part in (
        "controlnet",
        "onset_detector",
        "image_encoder",
        "alignment_classifier",
        "loudness_controller",
    ):
        assert getattr(pipe, part) is not None, part
    assert pipe.has_semantic_adapter
    assert pipe.config.window_columns == build_tiny.WINDOW_COLUMNS
    # The exported VAE is the decoder stage's: the vae stage's encoder, a fine-tuned decoder.
    from diffusers import AutoencoderKL

    first = AutoencoderKL.from_pretrained(work / "vae" / "final" / "vae").state_dict()
    exported = pipe.vae.state_dict()
    assert all(torch.equal(exported[k], v) for k, v in first.items() if k.startswith("encoder."))
    assert any(not torch.equal(exported[k], v) for k, v in first.items() if k.startswith("decoder."))
    pipe.set_progress_bar_config(disable=True)
    video = next((work / "synthfoley" / "test").glob("*.mp4"))
    audio = pipe(video=str(video), num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert np.all(np.isfinite(audio.audios[0])) and audio.onset_probabilities is not None
    # The loudness controller trained on version-2 clips (their levels vary).
    from foleycrafter.data.synthfoley import read_metadata

    assert {r["generator_version"] for r in read_metadata(work / "synthfoley_v2" / "train")} == {2}
    assert {r["generator_version"] for r in read_metadata(work / "synthfoley" / "train")} == {1}
    loud = pipe(
        video=str(video),
        num_inference_steps=2,
        loudness="video",
        generator=torch.Generator().manual_seed(0),
    )
    assert loud.loudness_curves is not None and np.all(np.isfinite(loud.audios[0]))

    # The frame-aligned adapter trained on sequence clips (not exported: the bundle keeps the mean one).
    assert {r["layout"] for r in read_metadata(work / "synthfoley_sequences" / "train")} == {"sequence"}
    frame = FoleyCrafterPipeline.from_pretrained(work / "frame_aligned" / "final")
    assert frame.semantic_adapter_kind == "frame_aligned" and pipe.semantic_adapter_kind == "mean"

    # The second alignment classifier reads the frames through the audio-visual encoder's tower.
    from foleycrafter.models import AlignmentClassifier

    av = AlignmentClassifier.from_pretrained(work / "alignment_av" / "final" / "alignment_classifier")
    assert av.frame_tower is not None and pipe.alignment_classifier.frame_tower is None

    # A second run finds every stage done and retrains nothing.
    unet = work / "unet" / "final" / "unet" / "diffusion_pytorch_model.safetensors"
    stamp = unet.stat().st_mtime_ns
    again = build_tiny.build(work, tmp_path / "again", quick=True, splits=splits)
    assert unet.stat().st_mtime_ns == stamp
    assert again["unet"] < timings["unet"]

    # The trained stages' results carry the build to a new work folder (another machine): kept,
    # restored, and the stages they belong to are not trained again.
    finals = tmp_path / "finals"
    kept = build_tiny.keep_finals(work, finals)
    assert sorted(kept) == sorted(build_tiny.TRAINED_STAGES)
    assert build_tiny.keep_finals(work, finals) == []  # a final is kept once
    # Only finished stages' results, safetensors and configs: no pickled checkpoint state.
    assert not [p for p in finals.rglob("*") if p.suffix in (".bin", ".pkl", ".pt")]
    moved = tmp_path / "moved"
    assert build_tiny.restore_finals(finals, moved) == list(build_tiny.TRAINED_STAGES)
    build_tiny.build(
        moved, tmp_path / "moved-model", stages=("data", "clip", "prepare", "vae"), quick=True, splits=splits
    )
    restored_vae = moved / "vae" / "final" / "vae" / "diffusion_pytorch_model.safetensors"
    assert (
        restored_vae.read_bytes()
        == (work / "vae" / "final" / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    )
