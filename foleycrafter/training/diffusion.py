"""Trainers on the diffusion objective: the semantic adapter, the temporal and loudness controllers,
LoRA on the UNet.

The base (VAE, text encoder, UNet) stays frozen in all of them; only the adapter's parameters learn,
from the noise-prediction loss on prepared clips (mel image -> VAE latents). Condition dropout
(text, image, both) teaches the unconditional branch classifier-free guidance needs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.prepared import PreparedDataset
from ..latents import normalize_latents
from ..spectrogram import log_mel_to_image
from ..temporal import mask_from_onset_times, mask_to_condition
from .loop import Trainer

logger = logging.getLogger(__name__)


class DiffusionTrainer(Trainer):
    """Shared parts: the frozen base pipeline, latents, text embeddings with dropout, noising."""

    fields = ("log_mel", "clip_embeds")
    # The base renders the model's windows at its vocoder's rate, hop and bands; the semantic
    # adapter (trained, or frozen under the temporal controller) reads the image encoder's embeddings.
    shared_settings = ("window_columns", "sample_rate", "hop_length", "n_mels", "clip_dim")
    # Noise, timesteps and dropout are per-clip draws over the global batch: N processes of batch b
    # train like one process of batch N * b (split-and-merge still pairs clips within a process).
    global_batch_draws = True

    def load_base(self, device: torch.device):
        from diffusers import DDPMScheduler

        from ..pipeline import FoleyCrafterPipeline

        if self.model_path is None:
            raise ValueError(
                f"The {self.name} trainer needs --model: the native FoleyCrafter folder it adapts."
            )
        pipe = FoleyCrafterPipeline.from_pretrained(self.model_path)
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False)
                module.eval()
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.timeline = pipe.timeline()
        with torch.no_grad():
            self.empty_text = pipe._encode_text([""], device)
        self.set_frame_attention()
        return pipe

    # -- conditions ------------------------------------------------------------------------------
    def dropout_masks(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per clip: drop the text? drop the image? (exclusive draws with the configured rates)."""
        draw = self.per_clip(lambda n: torch.rand(n, generator=generator), batch_size)
        c = self.config
        drop_text = draw < c.text_dropout
        drop_image = (draw >= c.text_dropout) & (draw < c.text_dropout + c.image_dropout)
        drop_both = (draw >= c.text_dropout + c.image_dropout) & (
            draw < c.text_dropout + c.image_dropout + c.both_dropout
        )
        return drop_text | drop_both, drop_image | drop_both

    def text_embeddings(self, captions: list[str], drop: torch.Tensor) -> torch.Tensor:
        device = self.accelerator.device
        with torch.no_grad():
            embeds = self.pipe._encode_text(list(captions), device)
        return torch.where(drop.to(device)[:, None, None], self.empty_text.expand_as(embeds), embeds)

    def image_embeddings(self, clip_embeds: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """(B, T, D) per-frame CLIP embeddings -> (B, 1, D) clip means; zeros where dropped (the
        negative the pipeline uses)."""
        mean = clip_embeds.mean(dim=1, keepdim=True)
        return torch.where(drop.to(mean.device)[:, None, None], torch.zeros_like(mean), mean)

    def semantic_inputs(
        self, clip_embeds: torch.Tensor, durations: list[float], drop: torch.Tensor, like: torch.Tensor
    ) -> dict | None:
        """The UNet's ``added_cond_kwargs`` for the semantic adapter it carries (``None`` without one):
        the clips' mean embeddings, or for a frame-aligned adapter each frame's with its time (s);
        zeros where dropped. ``clip_embeds`` (B, T, D); ``like``: a tensor of the device and dtype."""
        from ..semantic import semantic_adapter_kind

        kind = semantic_adapter_kind(self.pipe.unet)
        if kind is None:
            return None
        if kind == "mean":
            return {"image_embeds": [self.image_embeddings(clip_embeds, drop).to(like)]}
        embeds = torch.where(
            drop.to(clip_embeds.device)[:, None, None], torch.zeros_like(clip_embeds), clip_embeds
        )
        frames = embeds.shape[1]
        seconds = torch.stack(
            [torch.from_numpy(self.timeline.frame_start_seconds(float(d), frames)) for d in durations]
        )
        return {"image_embeds": [embeds.to(like), seconds.to(device=like.device, dtype=torch.float32)]}

    def set_frame_attention(self) -> None:
        """Tell a frame-aligned adapter's processors the window's latent size (no-op otherwise)."""
        from ..frame_aligned import FrameAttention
        from ..semantic import semantic_adapter_kind, set_frame_attention

        if semantic_adapter_kind(self.pipe.unet) != "frame_aligned":
            return
        config = self.pipe.unet.encoder_hid_proj.config
        latent_size = (self.pipe.n_mels // self.pipe.vae_scale_factor, self.timeline.latent_columns)
        set_frame_attention(
            self.pipe.unet,
            FrameAttention(self.timeline, *latent_size, config.visual_attention, config.framewise_seconds),
        )

    def masks(self, onsets: list[list[float]], durations: list[float]) -> torch.Tensor:
        masks = [mask_from_onset_times(o, d, self.timeline) for o, d in zip(onsets, durations)]
        return mask_to_condition(np.stack(masks), self.pipe.n_mels)

    def unchanged_ids(self, batch: dict) -> list[str] | None:
        """Clip ids whose mel images are as prepared (latents may be cached), or None after a
        split-and-merge changed some."""
        return None if batch.get("merged") else list(batch["id"])

    def split_merge(self, batch: dict, generator: torch.Generator) -> dict:
        """Diff-Foley's temporal split-and-merge: clip i is cut at a random time and continued with
        clip j (from the same time on); captions, frame embeddings and onsets are joined alike."""
        if self.config.split_merge_probability <= 0 or len(batch["id"]) < 2:
            return batch
        batch = dict(batch)
        size = len(batch["id"])
        chosen = self.per_clip(lambda n: torch.rand(n, generator=generator), size)
        chosen = chosen < self.config.split_merge_probability
        partners = torch.randperm(size, generator=generator)
        log_mel, embeds = batch["log_mel"].clone(), batch["clip_embeds"].clone()
        curves = batch["loudness"].clone() if "loudness" in batch else None
        captions, onsets, durations = list(batch["caption"]), list(batch["onsets"]), list(batch["duration"])
        for i in torch.nonzero(chosen).flatten().tolist():
            j = int(partners[i])
            if j == i:
                continue
            length = min(durations[i], durations[j])
            cut = float(torch.empty(1).uniform_(0.25, 0.75, generator=generator)) * length
            column = self.timeline.seconds_to_column(cut)
            frame = int(cut / length * embeds.shape[1])
            log_mel[i, :, column:] = batch["log_mel"][j, :, column:]
            embeds[i, frame:] = batch["clip_embeds"][j, frame:]
            if curves is not None:
                curves[i, column:] = batch["loudness"][j, column:]
            onsets[i] = [t for t in onsets[i] if t < cut] + [t for t in onsets[j] if cut <= t < length]
            captions[i] = " and ".join(c for c in (captions[i], captions[j]) if c)
            durations[i] = length
        batch.update(
            log_mel=log_mel,
            clip_embeds=embeds,
            caption=captions,
            onsets=onsets,
            duration=durations,
            merged=bool(chosen.any()),
        )
        if curves is not None:
            batch["loudness"] = curves
        return batch

    # -- diffusion -----------------------------------------------------------------------------
    def latents(
        self, log_mel: torch.Tensor, generator: torch.Generator, ids: list[str] | None = None
    ) -> torch.Tensor:
        """Scaled VAE latents (B, 4, n_mels/8, columns/8), sampled from the encoder's distribution.

        With ``ids`` (clips unchanged by augmentation) the frozen encoder's mean and std are cached
        per clip: encoding costs more than a small UNet's training step, and they never change."""
        vae = self.pipe.vae
        cache = self._latent_cache()
        missing = [i for i, clip_id in enumerate(ids or []) if clip_id not in cache]
        if ids is None or missing:
            rows = list(range(len(log_mel))) if ids is None else missing
            image = log_mel_to_image(log_mel[rows].float()).to(device=vae.device, dtype=vae.dtype) * 2 - 1
            with torch.no_grad():
                distribution = vae.encode(image).latent_dist
            if ids is None:
                mean, std = distribution.mean, distribution.std
            else:
                for row, i in enumerate(missing):
                    cache[ids[i]] = (distribution.mean[row].cpu(), distribution.std[row].cpu())
                self._save_latent_cache()
        if ids is not None:
            mean = torch.stack([cache[clip_id][0] for clip_id in ids]).to(vae.device)
            std = torch.stack([cache[clip_id][1] for clip_id in ids]).to(vae.device)
        noise = self.per_clip(lambda n: torch.randn((n, *mean.shape[1:]), generator=generator), len(mean))
        noise = noise.to(mean)
        return normalize_latents(vae.config, mean + std * noise)

    def _latent_cache(self) -> dict:
        """id -> (mean, std) of the frozen encoder; read once from ``config.latent_cache`` when that
        file exists and was written with this VAE (its fingerprint is stored with it)."""
        if "_latents" not in self.__dict__:
            self._latents, self._latents_saved = {}, 0
            path = self.config.latent_cache
            if path and os.path.isfile(path):
                from safetensors import safe_open

                with safe_open(path, framework="pt") as f:
                    if (f.metadata() or {}).get("vae") == self._vae_fingerprint():
                        for key in f.keys():
                            if key.endswith(".mean"):
                                clip_id = key[: -len(".mean")]
                                self._latents[clip_id] = (f.get_tensor(key), f.get_tensor(clip_id + ".std"))
                    else:
                        logger.warning("%s was written with another VAE; encoding the clips again.", path)
                self._latents_saved = len(self._latents)
        return self._latents

    def _save_latent_cache(self, every: int = 256) -> None:
        """Write the cache to ``config.latent_cache`` once ``every`` new clips have been encoded."""
        path = self.config.latent_cache
        if (
            not path
            or len(self._latents) - self._latents_saved < every
            or not self.accelerator.is_main_process
        ):
            return
        from safetensors.torch import save_file

        tensors = {}
        for clip_id, (mean, std) in self._latents.items():
            tensors[f"{clip_id}.mean"], tensors[f"{clip_id}.std"] = mean.contiguous(), std.contiguous()
        partial = f"{path}.partial"
        save_file(tensors, partial, metadata={"vae": self._vae_fingerprint()})
        os.replace(partial, path)
        self._latents_saved = len(self._latents)

    def _vae_fingerprint(self) -> str:
        import hashlib

        # Private keys (``_name_or_path``: the folder it was loaded from) do not change the latents.
        config = {k: v for k, v in self.pipe.vae.config.items() if not k.startswith("_")}
        digest = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode())
        for parameter in self.pipe.vae.encoder.parameters():
            digest.update(parameter.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def noised(self, latents: torch.Tensor, generator: torch.Generator):
        """(noisy latents, timesteps, target) for the scheduler's prediction type."""
        count = latents.shape[0]
        noise = self.per_clip(lambda n: torch.randn((n, *latents.shape[1:]), generator=generator), count)
        noise = noise.to(latents)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = self.per_clip(lambda n: torch.randint(0, steps, (n,), generator=generator), count)
        timesteps = timesteps.to(latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return noisy, timesteps, target

    def text_to_audio_loss(self, batch, generator):
        """Noise-prediction loss of the trained UNet on text alone (caption dropout; a zero image
        embedding when the UNet carries a semantic adapter, which is the pipeline's negative)."""
        drop_text, _ = self.dropout_masks(len(batch["id"]), generator)
        latents = self.latents(batch["log_mel"], generator, self.unchanged_ids(batch))
        noisy, timesteps, target = self.noised(latents, generator)
        added = None
        if self.pipe.has_semantic_adapter:
            from ..semantic import semantic_clip_dim

            size = latents.shape[0]
            zeros = torch.zeros(size, 1, semantic_clip_dim(self.pipe.unet))
            added = self.semantic_inputs(
                zeros, list(batch["duration"]), torch.ones(size, dtype=torch.bool), latents
            )
        prediction = self.model(
            noisy,
            timesteps,
            encoder_hidden_states=self.text_embeddings(batch["caption"], drop_text),
            added_cond_kwargs=added,
            return_dict=False,
        )[0]
        return F.mse_loss(prediction.float(), target.float())

    def controller_inputs(self, batch: dict, generator: torch.Generator):
        """What a controller trains on: ``(batch after split-and-merge, noisy latents, timesteps,
        target, text states with dropout, which clips drop their image)``."""
        batch = self.split_merge(batch, generator)
        drop_text, drop_image = self.dropout_masks(len(batch["id"]), generator)
        latents = self.latents(batch["log_mel"], generator, self.unchanged_ids(batch))
        noisy, timesteps, target = self.noised(latents, generator)
        return batch, noisy, timesteps, target, self.text_embeddings(batch["caption"], drop_text), drop_image

    def export_component(self, model, folder: Path, final: bool, component: str) -> None:
        """The whole pipeline at the end; only the trained component (its subfolder) in checkpoints."""
        if final:
            self.pipe.save_pretrained(folder)
        else:
            model.save_pretrained(folder / component)

    def controlled_loss(
        self, noisy, timesteps, target, text, clip_embeds, durations, drop_image, down, mid
    ) -> torch.Tensor:
        """Noise-prediction loss of the frozen UNet (with its semantic adapter, if any) steered by a
        controller's residuals ``down`` and ``mid``."""
        added = self.semantic_inputs(clip_embeds, durations, drop_image, noisy)
        prediction = self.pipe.unet(
            noisy,
            timesteps,
            encoder_hidden_states=text,
            added_cond_kwargs=added,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
        return F.mse_loss(prediction.float(), target.float())

    def generate_like(self, item: dict, **settings):
        """Generate a validation clip from a prepared clip's own conditions (caption, frame embeddings,
        onsets, duration) with the recipe's sampling settings; ``settings`` add or override."""
        arguments = dict(
            prompt=item["caption"],
            video_embeds=item["clip_embeds"][None] if self.pipe.has_semantic_adapter else None,
            onsets=item["onsets"] if self.pipe.controlnet is not None else None,
            audio_length_in_s=item["duration"],
            num_inference_steps=self.config.validation_steps,
            guidance_scale=self.config.validation_guidance_scale,
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        return self.pipe(**{**arguments, **settings})

    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Generate the first validation clips; write a wav and a spectrogram PNG of each."""
        from ..plots import spectrogram_image
        from ..video import write_audio

        folder.mkdir(parents=True, exist_ok=True)
        losses = []
        for index in range(min(2, len(dataset))):
            item = dataset[index]
            out = self.generate_like(item, temporal_scale=self.config.conditioning_scale)
            write_audio(folder / f"{item['id']}.wav", out.audios[0], out.sample_rate, overwrite=True)
            spectrogram_image(out.mel_images[0], onsets=item["onsets"], timeline=self.timeline).save(
                folder / f"{item['id']}.png"
            )
            generated = torch.from_numpy(out.mel_images[0][0])
            reference = log_mel_to_image(item["log_mel"])[0, 0]
            losses.append(float(F.l1_loss(generated, reference)))
        return {"mel_l1": float(np.mean(losses))} if losses else {}


class SemanticTrainer(DiffusionTrainer):
    """Trains the image projection and the ``to_k_ip``/``to_v_ip`` layers (IP-Adapter layout)."""

    name = "semantic"

    def build(self, device):
        from ..semantic import (
            initial_frame_aligned_adapter,
            initial_semantic_adapter,
            install_frame_aligned_adapter,
            set_semantic_scale,
        )

        pipe = self.load_base(device)
        clip_dim = int(self.train_set.config["clip_dim"])
        # A model's adapter of the asked-for kind is trained on; otherwise a new one starts.
        if pipe.semantic_adapter_kind != self.config.adapter:
            if pipe.has_semantic_adapter:
                logger.info(
                    "replacing the model's %s semantic adapter by a new %s one",
                    pipe.semantic_adapter_kind,
                    self.config.adapter,
                )
            if self.config.adapter == "frame_aligned":
                weights, config = initial_frame_aligned_adapter(
                    pipe.unet, clip_dim, seed=self.config.seed, **self.config.architecture
                )
                install_frame_aligned_adapter(pipe.unet, weights, config)
            else:
                pipe.load_semantic_adapter(
                    initial_semantic_adapter(pipe.unet, clip_dim, seed=self.config.seed)
                )
        set_semantic_scale(pipe.unet, 1.0)
        self.set_frame_attention()
        for name, parameter in pipe.unet.named_parameters():
            parameter.requires_grad_(".processor." in name or name.startswith("encoder_hid_proj."))
        pipe.unet.train()
        return pipe.unet

    def compute_loss(self, batch, generator):
        batch = self.split_merge(batch, generator)
        drop_text, drop_image = self.dropout_masks(len(batch["id"]), generator)
        latents = self.latents(batch["log_mel"], generator, self.unchanged_ids(batch))
        noisy, timesteps, target = self.noised(latents, generator)
        prediction = self.model(
            noisy,
            timesteps,
            encoder_hidden_states=self.text_embeddings(batch["caption"], drop_text),
            added_cond_kwargs=self.semantic_inputs(
                batch["clip_embeds"], batch["duration"], drop_image, latents
            ),
            return_dict=False,
        )[0]
        return F.mse_loss(prediction.float(), target.float())

    def export(self, model, folder: Path, final: bool) -> None:
        from ..semantic import NATIVE_SUBFOLDER, save_semantic_adapter_folder

        if final:
            self.pipe.save_pretrained(folder)
        else:
            save_semantic_adapter_folder(model, folder / NATIVE_SUBFOLDER)


class TemporalTrainer(DiffusionTrainer):
    """Trains the ControlNet on the onset masks of the clips' real soundtracks (UNet and semantic
    adapter frozen); a new controller starts as a copy of the UNet's encoder."""

    name = "temporal"

    def build(self, device):
        from ..semantic import detached_semantic_adapter
        from ..temporal import controller_from_unet, initialize_condition_embedding

        pipe = self.load_base(device)
        if pipe.controlnet is None:
            # Copied from the plain UNet, as the release's controller was.
            with torch.no_grad(), detached_semantic_adapter(pipe.unet):
                controller = controller_from_unet(pipe.unet, **self.config.architecture)
            initialize_condition_embedding(controller, torch.Generator().manual_seed(self.config.seed))
            controller.to(device)
            pipe.register_modules(controlnet=controller)
        pipe.controlnet.requires_grad_(True)
        pipe.controlnet.train()
        return pipe.controlnet

    def compute_loss(self, batch, generator):
        batch, noisy, timesteps, target, text, drop_image = self.controller_inputs(batch, generator)
        condition = self.masks(batch["onsets"], batch["duration"]).to(noisy)
        down, mid = self.model(
            noisy,
            timesteps,
            encoder_hidden_states=text,
            controlnet_cond=condition,
            conditioning_scale=self.config.conditioning_scale,
            return_dict=False,
        )
        return self.controlled_loss(
            noisy, timesteps, target, text, batch["clip_embeds"], batch["duration"], drop_image, down, mid
        )

    def export(self, model, folder: Path, final: bool) -> None:
        self.export_component(model, folder, final, "controlnet")


class LoudnessTrainer(DiffusionTrainer):
    """Trains the loudness controller on rough versions of the clips' measured loudness curves
    (:func:`~foleycrafter.loudness.roughen_loudness`), beside the model's frozen temporal controller
    (at the model's ``default_temporal_scale``, as generation uses it), so it learns what the onset
    mask does not say: how loud."""

    name = "loudness"
    fields = ("log_mel", "clip_embeds", "loudness")

    def build(self, device):
        from ..loudness import new_loudness_controller

        pipe = self.load_base(device)
        if pipe.loudness_controller is None:
            controller = new_loudness_controller(
                pipe.unet, torch.Generator().manual_seed(self.config.seed), **self.config.architecture
            )
            pipe.register_modules(loudness_controller=controller.to(device))
        pipe.loudness_controller.requires_grad_(True)
        pipe.loudness_controller.train()
        return pipe.loudness_controller

    def rough_curves(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        """Each clip's measured curve, roughened as a person would draw it (a fifth stay exact)."""
        from ..loudness import loudness_to_condition, roughen_loudness

        seeds = self.per_clip(
            lambda n: torch.randint(0, 2**31 - 1, (n,), generator=generator), len(batch["id"])
        )
        curves = []
        for curve, duration, seed in zip(batch["loudness"], batch["duration"], seeds.tolist()):
            rng = np.random.default_rng(seed)
            curve = curve.numpy()
            if rng.random() >= 0.2:
                curve = roughen_loudness(curve, self.timeline.active_columns(duration), rng, self.timeline)
            curves.append(curve)
        return loudness_to_condition(np.stack(curves), self.pipe.n_mels)

    def compute_loss(self, batch, generator):
        batch, noisy, timesteps, target, text, drop_image = self.controller_inputs(batch, generator)
        condition = self.rough_curves(batch, generator).to(noisy)
        down, mid = self.model(
            noisy,
            timesteps,
            encoder_hidden_states=text,
            controlnet_cond=condition,
            conditioning_scale=self.config.conditioning_scale,
            return_dict=False,
        )
        temporal_scale = self.config.temporal_scale
        if temporal_scale is None:
            temporal_scale = float(self.pipe.config.default_temporal_scale)
        if self.pipe.controlnet is not None and temporal_scale > 0:
            masks = self.masks(batch["onsets"], batch["duration"]).to(noisy)
            with torch.no_grad():
                temporal_down, temporal_mid = self.pipe.controlnet(
                    noisy,
                    timesteps,
                    encoder_hidden_states=text,
                    controlnet_cond=masks,
                    conditioning_scale=temporal_scale,
                    return_dict=False,
                )
            down = [a + b for a, b in zip(down, temporal_down)]
            mid = mid + temporal_mid
        return self.controlled_loss(
            noisy, timesteps, target, text, batch["clip_embeds"], batch["duration"], drop_image, down, mid
        )

    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Generate the first validation clips with and without their measured curve; report how far
        (dB) each generation's own curve lies from it (:func:`~foleycrafter.loudness.loudness_error_db`)."""
        from ..loudness import audio_loudness, loudness_error_db
        from ..video import write_audio

        folder.mkdir(parents=True, exist_ok=True)
        errors = {"loudness_error_db": [], "loudness_error_db_off": []}
        for index in range(min(2, len(dataset))):
            item = dataset[index]
            count = self.timeline.active_columns(item["duration"])
            target = item["loudness"].numpy()[:count]
            for key, scale in (
                ("loudness_error_db", self.config.conditioning_scale),
                ("loudness_error_db_off", 0),
            ):
                out = self.generate_like(item, loudness=target, loudness_scale=scale)
                errors[key].append(loudness_error_db(audio_loudness(out.audios[0], self.timeline), target))
                if scale:
                    write_audio(folder / f"{item['id']}.wav", out.audios[0], out.sample_rate, overwrite=True)
        return {key: float(np.nanmean(values)) for key, values in errors.items() if values}

    def export(self, model, folder: Path, final: bool) -> None:
        self.export_component(model, folder, final, "loudness_controller")


class LoraTrainer(DiffusionTrainer):
    """LoRA on the UNet's attention projections (peft), on the text-to-audio objective."""

    name = "lora"
    # Text to audio: the clips' CLIP embeddings are not read.
    shared_settings = ("window_columns", "sample_rate", "hop_length", "n_mels")

    def build(self, device):
        from peft import LoraConfig

        pipe = self.load_base(device)
        config = LoraConfig(
            r=self.config.lora_rank,
            lora_alpha=self.config.lora_alpha,
            target_modules=list(self.config.lora_target_modules),
            init_lora_weights="gaussian",
        )
        pipe.unet.add_adapter(config)
        pipe.unet.train()
        return pipe.unet

    compute_loss = DiffusionTrainer.text_to_audio_loss

    def export(self, model, folder: Path, final: bool) -> None:
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        from ..pipeline import FoleyCrafterPipeline

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
        FoleyCrafterPipeline.save_lora_weights(
            folder / "lora" if not final else folder, unet_lora_layers=layers, safe_serialization=True
        )
