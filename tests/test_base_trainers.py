"""The base-model trainers chained as the tiny model is built: CLIP -> prepare -> VAE -> UNet -> pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from foleycrafter.training import TrainConfig, trainer_class
from foleycrafter.training.base_models import caption_tokenizer, copy_parts

TINY_CLIP = {
    "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    "projection_dim": 16,
}
TINY_VAE = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4}
TINY_UNET = {"block_out_channels": [16, 32], "norm_num_groups": 8, "attention_head_dim": 8}


def train(name, model, data, out, **settings):
    config = TrainConfig(
        **{
            "max_steps": 4,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "checkpoint_every": 0,
            "validation_fraction": 0.2,
            "validation_steps": 2,
            **settings,
        }
    )
    return trainer_class(name)(config, model, data, out, progress=False).run()


@pytest.fixture(scope="module")
def synthfoley(tmp_path_factory):
    from foleycrafter.data.synthfoley import generate_dataset

    root = tmp_path_factory.mktemp("synthfoley")
    generate_dataset(root, split="train", num_clips=6, seed=3, size=32)
    return root / "train"


def test_caption_tokenizer_covers_its_captions():
    tokenizer = caption_tokenizer(["a hammer strikes a metal plate", "a drum is hit"])
    ids = tokenizer(["a drum is hit"]).input_ids[0]
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "adrumishit"


def test_clip_vae_unet_chain_builds_a_pipeline(synthfoley, tmp_path, clip):
    from foleycrafter import FoleyCrafterPipeline
    from foleycrafter.data.prepared import prepare_dataset
    from foleycrafter.data.synthfoley import read_metadata

    clip_run = train("clip", None, synthfoley, tmp_path / "clip", architecture=TINY_CLIP, frames_per_clip=2)
    assert np.all(np.isfinite([h["loss"] for h in clip_run["history"]]))
    validation = clip_run["validation"]
    assert 0 <= validation["caption_retrieval_accuracy"] <= validation["class_retrieval_accuracy"] <= 1
    parts = tmp_path / "parts"
    copy_parts(
        tmp_path / "clip" / "final",
        parts,
        ("text_encoder", "tokenizer", "image_encoder", "feature_extractor"),
    )

    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from foleycrafter.data.prepared import ClipAnnotation
    from foleycrafter.timeline import Timeline

    annotations = {r["video"]: ClipAnnotation(r["caption"], r["onsets"]) for r in read_metadata(synthfoley)}
    prepare_dataset(
        synthfoley,
        tmp_path / "prepared",
        CLIPVisionModelWithProjection.from_pretrained(parts / "image_encoder"),
        CLIPImageProcessor.from_pretrained(parts / "feature_extractor"),
        annotations=annotations,
        timeline=Timeline(window_columns=512),
        num_frames=8,
        detector_size=32,
        progress=False,
    )
    vae_run = train(
        "vae", None, tmp_path / "prepared", tmp_path / "vae", architecture=TINY_VAE, crop_columns=128
    )
    assert vae_run["validation"]["mel_image_l1"] > 0
    # The exported per-channel statistics make the training windows' latents zero-mean and
    # unit-variance per channel, as the diffusion model sees them.
    from diffusers import AutoencoderKL

    from foleycrafter.data.prepared import PreparedDataset
    from foleycrafter.latents import normalize_latents
    from foleycrafter.spectrogram import log_mel_to_image

    vae = AutoencoderKL.from_pretrained(tmp_path / "vae" / "final" / "vae")
    assert vae.config.scaling_factor == 1.0 and len(vae.config.latents_mean) == vae.config.latent_channels
    data = PreparedDataset(tmp_path / "prepared")
    with torch.no_grad():
        images = torch.stack([log_mel_to_image(data[i]["log_mel"])[0] for i in range(len(data))])
        latents = normalize_latents(vae.config, vae.encode(images * 2 - 1).latent_dist.mean)
    # The statistics come from the training windows (the validation share held out), so nearly 0 / 1.
    assert latents.mean(dim=(0, 2, 3)).abs().max() < 0.5
    assert torch.all((latents.std(dim=(0, 2, 3)) - 1).abs() < 0.5)
    copy_parts(tmp_path / "vae" / "final", parts, ("vae",))
    unet_run = train("unet", parts, tmp_path / "prepared", tmp_path / "unet", architecture=TINY_UNET)
    assert np.all(np.isfinite([h["loss"] for h in unet_run["history"]]))

    pipe = FoleyCrafterPipeline.from_pretrained(tmp_path / "unet" / "final")
    assert type(pipe.vocoder).__name__ == "GriffinLimVocoder"
    assert pipe.image_encoder is not None and pipe.unet.config.cross_attention_dim == 32
    # The window the UNet was trained on (5.12 s here), so longer clips go through windows.
    assert pipe.config.window_columns == 512
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        prompt="a drum is hit",
        audio_length_in_s=6.0,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.audios[0].shape == (96000,) and np.all(np.isfinite(out.audios[0]))
    assert len(out.windows) == 2
    config = json.loads((tmp_path / "unet" / "final" / "model_index.json").read_text())
    assert config["_class_name"] == "FoleyCrafterPipeline"

    # fine_tune starts from the given model's UNet: one Adam step moves each weight by about the
    # learning rate, where a new UNet's weights would differ by their whole initialisation.
    with pytest.raises(ValueError, match="holds no UNet"):
        train("unet", parts, tmp_path / "prepared", tmp_path / "no_unet", fine_tune=True)
    with pytest.raises(ValueError, match="give one of them"):
        train(
            "unet",
            tmp_path / "unet" / "final",
            tmp_path / "prepared",
            tmp_path / "both",
            fine_tune=True,
            architecture=TINY_UNET,
        )
    train(
        "unet",
        tmp_path / "unet" / "final",
        tmp_path / "prepared",
        tmp_path / "tuned",
        fine_tune=True,
        max_steps=1,
        learning_rate=1e-4,
        lr_warmup_steps=0,
    )
    from diffusers import UNet2DConditionModel

    before = UNet2DConditionModel.from_pretrained(tmp_path / "unet" / "final" / "unet").state_dict()
    after = UNet2DConditionModel.from_pretrained(tmp_path / "tuned" / "final" / "unet").state_dict()
    assert before.keys() == after.keys()
    moved = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert 0 < moved < 3e-4


def test_latents_are_cached_per_clip_only_when_unchanged(synthfoley, tmp_path):
    """The frozen encoder's distribution is reused per clip id; a split-and-merged batch is encoded anew."""
    from foleycrafter.training.diffusion import DiffusionTrainer

    class Encoder:
        config = type("Config", (), {"scaling_factor": 1.0})()
        device, dtype = torch.device("cpu"), torch.float32
        calls = 0

        def encode(self, image):
            Encoder.calls += 1
            mean = image[:, :1, ::8, ::8]

            class Distribution:
                pass

            distribution = Distribution()
            distribution.mean, distribution.std = mean, torch.zeros_like(mean)
            return type("Output", (), {"latent_dist": distribution})()

    def trainer(cache_file=None):
        trainer = DiffusionTrainer.__new__(DiffusionTrainer)
        trainer.pipe = type("Pipe", (), {"vae": Encoder()})()
        trainer.pipe.vae.encoder = torch.nn.Linear(2, 2)
        trainer.pipe.vae.config = FrozenDict(scaling_factor=1.0)
        trainer.config = TrainConfig(latent_cache=cache_file)
        trainer.accelerator = SimpleNamespace(is_main_process=True)
        return trainer

    from types import SimpleNamespace

    from diffusers.configuration_utils import FrozenDict

    torch.manual_seed(0)
    mel = torch.randn(2, 16, 32) * 20 - 40
    generator = torch.Generator().manual_seed(0)
    first_trainer = trainer()
    first = first_trainer.latents(mel, generator, ["a", "b"])
    again = first_trainer.latents(mel * 0, generator, ["b", "a"])
    assert Encoder.calls == 1
    torch.testing.assert_close(again, first.flip(0))
    merged = first_trainer.latents(mel * 0, generator, None)
    assert Encoder.calls == 2 and not torch.allclose(merged, first)

    # Kept in a file between runs, for the same VAE only.
    cache_file = tmp_path / "latents.safetensors"
    writer = trainer(str(cache_file))
    writer._save_latent_cache = lambda every=256, save=writer._save_latent_cache: save(every=1)
    torch.manual_seed(0)
    writer.pipe.vae.encoder = torch.nn.Linear(2, 2)
    writer.latents(mel, generator, ["a", "b"])
    assert cache_file.is_file() and Encoder.calls == 3
    reader = trainer(str(cache_file))
    torch.manual_seed(0)
    reader.pipe.vae.encoder = torch.nn.Linear(2, 2)
    # The same VAE loaded from another folder (as each build stage copies it): diffusers records
    # the folder in the config's private keys, which do not make it another VAE.
    reader.pipe.vae.config = FrozenDict(scaling_factor=1.0, _name_or_path="elsewhere/vae")
    torch.testing.assert_close(reader.latents(mel * 0, generator, ["a", "b"]), first)
    assert Encoder.calls == 3, "read from the file, not encoded"
    other = trainer(str(cache_file))  # another VAE (different weights): the file is ignored
    other.latents(mel, generator, ["a"])
    assert Encoder.calls == 4


def test_vae_crops_cover_the_window_edge_and_the_silence_after_the_clip():
    """Generation decodes whole windows: the VAE must see the image's first column and the clip's
    end followed by silence padding, not only crops inside the clip."""
    from foleycrafter.training.base_models import EDGE_CROP_ODDS, VaeTrainer

    trainer = VaeTrainer.__new__(VaeTrainer)
    trainer.config = TrainConfig(crop_columns=64)
    trainer.train_set = type("Data", (), {"config": {"sample_rate": 16000, "hop_length": 160}})()
    mel = torch.arange(512, dtype=torch.float32).expand(2, 8, 512)  # column index as the value
    generator = torch.Generator().manual_seed(0)
    starts = [int(trainer.crop(mel, [3.0, 3.0], generator)[0, 0, 0]) for _ in range(400)]
    # A 3 s clip covers 300 columns: starts lie in [0, 300 + 32 - 64], the first column often.
    assert min(starts) == 0 and max(starts) <= 268 and max(starts) > 240
    assert abs(starts.count(0) / len(starts) - 1 / EDGE_CROP_ODDS) < 0.08
    assert trainer.crop(mel, [3.0, 3.0], generator).shape == (2, 8, 64)


def test_vae_decoder_fine_tune_on_perturbed_latents_keeps_the_encoder(synthfoley, release_pipe, tmp_path):
    """Given a model folder with a VAE, the vae trainer fine-tunes its decoder only (here on latents
    perturbed by noise): the latents a UNet was trained on, and their statistics, stay as they were."""
    from diffusers import AutoencoderKL

    from foleycrafter.data.prepared import prepare_dataset

    prepare_dataset(
        synthfoley,
        tmp_path / "prepared",
        release_pipe.image_encoder,
        release_pipe.feature_extractor,
        num_frames=4,
        detector_size=16,
        progress=False,
    )
    train("vae", None, tmp_path / "prepared", tmp_path / "vae", architecture=TINY_VAE, crop_columns=64)
    before = AutoencoderKL.from_pretrained(tmp_path / "vae" / "final" / "vae")
    run = train(
        "vae",
        tmp_path / "vae" / "final",
        tmp_path / "prepared",
        tmp_path / "robust",
        crop_columns=64,
        latent_noise=0.5,
    )
    assert np.all(np.isfinite([h["loss"] for h in run["history"]]))
    after = AutoencoderKL.from_pretrained(tmp_path / "robust" / "final" / "vae")
    old, new = before.state_dict(), after.state_dict()
    encoder = [k for k in old if k.startswith(("encoder.", "quant_conv."))]
    decoder = [k for k in old if k.startswith(("decoder.", "post_quant_conv."))]
    assert encoder and decoder
    assert all(torch.equal(old[k], new[k]) for k in encoder)
    assert any(not torch.equal(old[k], new[k]) for k in decoder)
    np.testing.assert_allclose(after.config.latents_mean, before.config.latents_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.config.latents_std, before.config.latents_std, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="give one of them"):
        train("vae", tmp_path / "vae" / "final", tmp_path / "prepared", tmp_path / "x", architecture=TINY_VAE)
    with pytest.raises(FileNotFoundError, match="has no vae/config.json"):
        train("vae", tmp_path / "prepared", tmp_path / "prepared", tmp_path / "y")
