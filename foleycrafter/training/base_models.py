"""Trainers for the base models themselves, to build a small Auffusion-compatible stack from scratch
(the bundled tiny model): a CLIP (text and vision towers, contrastive), the mel-image VAE and the
text-to-audio UNet. They write "parts" folders that the next step reads with ``--model``:

    clip  -> text_encoder/, tokenizer/, image_encoder/, feature_extractor/
    vae   -> vae/ (from scratch; or, given a model folder with vae/, its decoder fine-tuned with
             the encoder frozen, so the latents a UNet was trained on stay as they were)
    unet  -> unet/, scheduler/ and, at the end, a complete native pipeline folder (the parts given
             with --model, plus a Griffin-Lim vocoder when the parts have no vocoder)

Model sizes come from the recipe's ``architecture`` mapping.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..latents import denormalize_latents, normalize_latents
from ..spectrogram import log_mel_to_image
from .diffusion import DiffusionTrainer
from .loop import Trainer

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
#: One VAE training crop in this many starts at the window's first column (see VaeTrainer.crop).
EDGE_CROP_ODDS = 4


def caption_tokenizer(captions: list[str], model_max_length: int = 77):
    """A CLIP tokenizer over the characters the captions use (lower-cased), without merges: small, and
    enough for a text encoder to tell a closed set of captions apart."""
    from transformers import CLIPTokenizer

    symbols = sorted({c for caption in captions for c in caption.lower() if not c.isspace()})
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


class FrameCaptionDataset(torch.utils.data.Dataset):
    """Clips of a SynthFoley-style split folder (``metadata.jsonl`` + videos) as (frames, caption)
    pairs. Frames are decoded once, at ``short_side`` pixels, and kept in memory."""

    def __init__(self, folder: str | Path, frames_per_clip: int, short_side: int = 128, records=None):
        from ..video import load_clip

        self.folder = Path(folder)
        metadata = self.folder / "metadata.jsonl"
        if records is None:
            if not metadata.is_file():
                raise FileNotFoundError(
                    f"{self.folder} has no metadata.jsonl; the clip trainer reads a SynthFoley split folder "
                    "(`foleycrafter synthfoley OUT --split train`)."
                )
            records = [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()]
        self.records = records
        self.frames = [
            load_clip(self.folder / r["video"], num_frames=frames_per_clip, short_side=short_side).frames
            for r in records
        ]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return {
            "id": self.records[index]["id"],
            "caption": self.records[index]["caption"],
            "frames": self.frames[index],
        }

    def split(self, fraction: float, seed: int) -> tuple[FrameCaptionDataset, FrameCaptionDataset]:
        order = np.random.default_rng(seed).permutation(len(self))
        held = set(order[: max(1, int(round(fraction * len(self))))].tolist()) if fraction > 0 else set()
        return self._subset([i for i in range(len(self)) if i not in held]), self._subset(sorted(held))

    def _subset(self, indices: list[int]) -> FrameCaptionDataset:
        subset = FrameCaptionDataset.__new__(FrameCaptionDataset)
        subset.folder = self.folder
        subset.records = [self.records[i] for i in indices]
        subset.frames = [self.frames[i] for i in indices]
        return subset


class ClipTrainer(Trainer):
    """Text and vision towers trained contrastively on (frame, caption) pairs; exported as the
    pipeline's ``text_encoder``/``tokenizer`` and ``image_encoder``/``feature_extractor``."""

    name = "clip"

    def make_datasets(self):
        dataset = FrameCaptionDataset(self.data_path, self.config.frames_per_clip)
        self.tokenizer = caption_tokenizer([r["caption"] for r in dataset.records])
        return dataset.split(self.config.validation_fraction, self.config.seed)

    @staticmethod
    def collate(items):
        return {
            "caption": [item["caption"] for item in items],
            "frames": [item["frames"] for item in items],
        }

    def build(self, device):
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        architecture = dict(self.config.architecture)
        text = {
            "vocab_size": len(self.tokenizer),
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
            **architecture.get("text", {}),
        }
        vision = {"image_size": 224, "patch_size": 32, **architecture.get("vision", {})}
        config = CLIPConfig(
            text_config=text, vision_config=vision, projection_dim=architecture.get("projection_dim", 64)
        )
        torch.manual_seed(self.config.seed)
        self.processor = CLIPImageProcessor()
        self.clip = CLIPModel(config).to(device)
        return self.clip

    def compute_loss(self, batch, generator):
        device = self.accelerator.device
        frames, captions = [], []
        for clip_frames, caption in zip(batch["frames"], batch["caption"]):
            pick = int(torch.randint(len(clip_frames), (1,), generator=generator))
            frames.append(clip_frames[pick])
            captions.append(caption)
        pixels = self.processor(images=frames, return_tensors="pt").pixel_values.to(device)
        tokens = self.tokenizer(
            captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        )
        # Several clips share a caption: treat every same-caption pair as a positive (soft targets),
        # not as the negatives the standard CLIP loss would make them.
        output = self.model(input_ids=tokens.input_ids.to(device), pixel_values=pixels, return_dict=True)
        logits = output.logits_per_image
        same = torch.tensor([[a == b for b in captions] for a in captions], dtype=logits.dtype, device=device)
        targets = same / same.sum(dim=1, keepdim=True)
        return 0.5 * (
            torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
            + torch.sum(-targets.T * F.log_softmax(logits.T, dim=1), dim=1).mean()
        )

    def export(self, model, folder: Path, final: bool) -> None:
        from transformers import CLIPTextModel, CLIPVisionModelWithProjection

        text = CLIPTextModel(model.config.text_config)
        # transformers 5 flattened CLIPTextModel (no `.text_model` wrapper); 4.x still has it.
        getattr(text, "text_model", text).load_state_dict(model.text_model.state_dict())
        vision_config = model.config.vision_config
        vision_config.projection_dim = model.config.projection_dim
        vision = CLIPVisionModelWithProjection(vision_config)
        vision.vision_model.load_state_dict(model.vision_model.state_dict())
        vision.visual_projection.load_state_dict(model.visual_projection.state_dict())
        text.save_pretrained(folder / "text_encoder")
        self.tokenizer.save_pretrained(folder / "tokenizer")
        vision.save_pretrained(folder / "image_encoder")
        self.processor.save_pretrained(folder / "feature_extractor")

    def validate(self, model, dataset, folder: Path, step: int) -> dict:
        """Caption retrieval accuracy: how often a held-out frame's best-matching caption (among the
        distinct captions) is its own; with class names in the records, also how often it belongs to
        the frame's class (paraphrases of one class cannot be told apart from a frame, so caption
        retrieval tops out near 1 / paraphrases per class)."""
        captions = sorted({r["caption"] for r in dataset.records})
        class_of = {r["caption"]: r.get("class_name") for r in dataset.records}
        device = self.accelerator.device
        tokens = self.tokenizer(
            captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        )
        text = F.normalize(_features(model.get_text_features(input_ids=tokens.input_ids.to(device))), dim=-1)
        correct = same_class = 0
        for index in range(len(dataset)):
            item = dataset[index]
            pixels = self.processor(
                images=[item["frames"][len(item["frames"]) // 2]], return_tensors="pt"
            ).pixel_values
            image = F.normalize(_features(model.get_image_features(pixel_values=pixels.to(device))), dim=-1)
            best = captions[int((image @ text.T).argmax())]
            correct += int(best == item["caption"])
            same_class += int(class_of[best] is not None and class_of[best] == class_of[item["caption"]])
        metrics = {"caption_retrieval_accuracy": correct / max(len(dataset), 1)}
        if all(name is not None for name in class_of.values()):
            metrics["class_retrieval_accuracy"] = same_class / max(len(dataset), 1)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics


def _features(output) -> torch.Tensor:
    """Projected CLIP features: a tensor in transformers 4, ``pooler_output`` of an output in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class VaeTrainer(Trainer):
    """The mel-image autoencoder (AutoencoderKL, 8x): L1 reconstruction + a small KL term, on random
    crops of ``crop_columns`` mel columns (convolutional, so crops train the whole-image model)."""

    name = "vae"
    fields = ("log_mel",)

    def build(self, device):
        from diffusers import AutoencoderKL

        torch.manual_seed(self.config.seed)
        if self.model_path is not None:
            # Fine-tune the decoder of a saved VAE: the encoder (and its quant_conv) stays frozen, so
            # the latents a UNet was trained on, and their statistics, do not change.
            if self.config.architecture:
                raise ValueError(
                    "The vae trainer got both --model (a VAE whose decoder it fine-tunes) and an "
                    "architecture (a new VAE); give one of them."
                )
            if not (self.model_path / "vae" / "config.json").is_file():
                raise FileNotFoundError(
                    f"{self.model_path} has no vae/config.json: the vae trainer fine-tunes the decoder "
                    "of the VAE in a model folder given with --model, or trains a new one without --model."
                )
            self.vae = AutoencoderKL.from_pretrained(self.model_path / "vae").to(device)
            self.vae.encoder.requires_grad_(False)
            self.vae.quant_conv.requires_grad_(False)
            return self.vae
        settings = {
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": 4,
            "block_out_channels": (16, 32, 32, 32),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "layers_per_block": 1,
            "norm_num_groups": 8,
            **self.config.architecture,
        }
        self.vae = AutoencoderKL(**settings).to(device)
        return self.vae

    @property
    def columns_per_second(self) -> float:
        """Mel columns per second of the prepared data."""
        return self.train_set.config["sample_rate"] / self.train_set.config["hop_length"]

    def crop(self, log_mel: torch.Tensor, durations: list[float], generator: torch.Generator) -> torch.Tensor:
        width = self.config.crop_columns
        if not width or width >= log_mel.shape[-1]:
            return log_mel
        hop = self.columns_per_second
        crops = []
        for mel, duration in zip(log_mel, durations):
            # Crops reach up to half their width past the clip's end, and one in EDGE_CROP_ODDS starts
            # at the window's first column: generation decodes whole windows, whose clips start at the
            # image's edge and end in silence padding. A VAE trained on inner crops only overshot at
            # both (an onset in the first 20 ms or last 40 ms of 15 of 16 validation clips).
            last = max(0, min(int(duration * hop) + width // 2, mel.shape[-1]) - width)
            start = int(torch.randint(last + 1, (1,), generator=generator))
            if int(torch.randint(EDGE_CROP_ODDS, (1,), generator=generator)) == 0:
                start = 0
            crops.append(mel[:, start : start + width])
        return torch.stack(crops)

    def compute_loss(self, batch, generator):
        mel = self.crop(batch["log_mel"], batch["duration"], generator)
        image = log_mel_to_image(mel).to(self.accelerator.device) * 2 - 1
        distribution = self.model.encode(image).latent_dist
        noise = torch.randn(distribution.mean.shape, generator=generator).to(distribution.mean)
        latents = distribution.mean + distribution.std * noise
        if self.config.latent_noise:
            # Generated latents are never exact, and a decoder that only saw the encoder's output
            # turns small errors into a blotchy texture: it learns to decode perturbed latents
            # (noise in the diffusion model's units, its level drawn per clip) into the clean image.
            config = self.model.config
            level = torch.rand(len(latents), 1, 1, 1, generator=generator) * self.config.latent_noise
            perturbation = torch.randn(latents.shape, generator=generator) * level
            latents = denormalize_latents(
                config, normalize_latents(config, latents) + perturbation.to(latents)
            )
        reconstruction = self.model.decode(latents).sample
        kl = distribution.kl().mean() / image[0].numel()
        return F.l1_loss(reconstruction, image) + self.config.kl_weight * kl

    def export(self, model, folder: Path, final: bool) -> None:
        if final:
            mean, std = self.latent_statistics(model)
            model.register_to_config(latents_mean=mean, latents_std=std, scaling_factor=1.0)
        model.save_pretrained(folder / "vae")

    @torch.no_grad()
    def latent_statistics(self, model, max_windows: int = 64) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the posterior means of training windows (whole
        windows, silence padding included, as the UNet trains on them), for the VAE's config
        (:mod:`foleycrafter.latents`): the UNet then trains on latents of zero mean and unit variance
        per channel, where the noise schedule holds. A single factor (Stable Diffusion's 0.18215
        or 1 / the overall standard deviation) leaves each channel's offset in the data, and this
        VAE's channels sit up to 2.7 standard deviations from zero."""
        device = self.accelerator.device
        step = max(1, len(self.train_set) // max_windows)
        latents = []
        for index in range(0, len(self.train_set), step):
            image = log_mel_to_image(self.train_set[index]["log_mel"]).to(device) * 2 - 1
            latents.append(model.encode(image).latent_dist.mean[0])
        latents = torch.stack(latents).float()
        std = latents.std(dim=(0, 2, 3)).clamp_min(1e-6)
        return latents.mean(dim=(0, 2, 3)).tolist(), std.tolist()

    def validate(self, model, dataset, folder: Path, step: int) -> dict:
        """Mean absolute error of whole held-out mel images through the autoencoder, in [0, 1] units."""
        errors = []
        for index in range(min(8, len(dataset))):
            image = log_mel_to_image(dataset[index]["log_mel"]).to(self.accelerator.device)
            reconstruction = model.decode(model.encode(image * 2 - 1).latent_dist.mean).sample
            errors.append(float((((reconstruction + 1) / 2).clamp(0, 1) - image).abs().mean()))
        metrics = {"mel_image_l1": float(np.mean(errors))}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics


class UnetTrainer(DiffusionTrainer):
    """The text-to-audio UNet, from scratch (or from ``--model``'s with ``fine_tune``), on VAE
    latents of mel images with caption dropout."""

    name = "unet"
    fields = ("log_mel", "clip_embeds")
    # The data sets the window; the parts given with --model still fix their vocoder's audio
    # convention and the width of their image encoder's embeddings, when they have them.
    shared_settings = ("sample_rate", "hop_length", "n_mels", "clip_dim")

    def load_base(self, device):
        from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        from ..pipeline import FoleyCrafterPipeline

        parts = self.model_path
        if parts is None or not (parts / "vae").is_dir() or not (parts / "text_encoder").is_dir():
            raise ValueError(
                "The unet trainer needs --model: a folder with the trained vae/, text_encoder/ and tokenizer/."
            )
        vae = AutoencoderKL.from_pretrained(parts / "vae")
        text_encoder = CLIPTextModel.from_pretrained(parts / "text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(parts / "tokenizer")
        torch.manual_seed(self.config.seed)
        settings = {
            "sample_size": 32,
            "in_channels": vae.config.latent_channels,
            "out_channels": vae.config.latent_channels,
            "block_out_channels": (32, 64),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "layers_per_block": 1,
            "attention_head_dim": 8,
            "norm_num_groups": 8,
            **self.config.architecture,
            "cross_attention_dim": text_encoder.config.hidden_size,
        }
        if self.config.fine_tune:
            if self.config.architecture:
                raise ValueError(
                    "The unet trainer got both fine_tune (start from --model's UNet) and an "
                    "architecture (a new UNet); give one of them."
                )
            if not (parts / "unet" / "config.json").is_file():
                raise ValueError(
                    f"fine_tune=true starts from --model's unet/, but {parts / 'unet'} holds no UNet: "
                    "give a model folder with one, or drop fine_tune to train a new UNet."
                )
            unet = UNet2DConditionModel.from_pretrained(parts / "unet")
        else:
            unet = UNet2DConditionModel(**settings)
        schedule = {
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "num_train_timesteps": 1000,
        }
        scheduler = PNDMScheduler(**schedule, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
        pipe = FoleyCrafterPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            vocoder=self._vocoder(parts, self.train_set.config),
            **self._vision(parts),
            # The model generates windows of the length it was trained on.
            window_columns=int(self.train_set.config["window_columns"]),
        )
        for module in (vae, text_encoder):
            module.requires_grad_(False).eval()
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.noise_scheduler = DDPMScheduler(**schedule)
        self.timeline = pipe.timeline()
        with torch.no_grad():
            self.empty_text = pipe._encode_text([""], device)
        return pipe

    @staticmethod
    def _vocoder(parts: Path, data: dict):
        """The parts' vocoder, else Griffin-Lim in the audio convention of the prepared ``data``
        (its config), which then defines the model's."""
        from ..models import GriffinLimVocoder, HifiGanVocoder

        if (parts / "vocoder" / "config.json").is_file():
            config = json.loads((parts / "vocoder" / "config.json").read_text())
            cls = GriffinLimVocoder if config.get("_class_name") == "GriffinLimVocoder" else HifiGanVocoder
            return cls.from_pretrained(parts / "vocoder")
        return GriffinLimVocoder(
            num_mels=int(data["n_mels"]),
            sampling_rate=int(data["sample_rate"]),
            hop_size=int(data["hop_length"]),
        )

    @staticmethod
    def _vision(parts: Path) -> dict:
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        if not (parts / "image_encoder").is_dir():
            return {}
        return {
            "image_encoder": CLIPVisionModelWithProjection.from_pretrained(parts / "image_encoder"),
            "feature_extractor": CLIPImageProcessor.from_pretrained(parts / "feature_extractor"),
        }

    def build(self, device):
        pipe = self.load_base(device)
        pipe.unet.requires_grad_(True).train()
        return pipe.unet

    compute_loss = DiffusionTrainer.text_to_audio_loss

    def export(self, model, folder: Path, final: bool) -> None:
        if final:
            self.pipe.save_pretrained(folder)
        else:
            model.save_pretrained(folder / "unet")


def copy_parts(source: Path, destination: Path, names: tuple[str, ...]) -> None:
    """Copy part folders (e.g. the CLIP towers) next to others, for the next trainer's --model."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, destination / name, dirs_exist_ok=True)
