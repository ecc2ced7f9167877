"""``FoleyCrafterPipeline``: text + silent video -> synchronized audio.

A Stable-Diffusion-style text-to-audio model (Auffusion) over 256-band mel images, steered by two
adapters while the base stays frozen:

* the semantic adapter (IP-Adapter decoupled cross-attention on the mean CLIP embedding of the
  video's frames), weighted by ``semantic_scale``;
* the temporal controller (a ControlNet on a +-1 timestamp mask from the onset detector or from
  onset times), weighted by ``temporal_scale``.

Loading: ``from_pretrained(folder)`` reads the native format written by ``save_pretrained``;
``from_pretrained(base, adapters=..., image_encoder=...)`` reads the released Auffusion and
FoleyCrafter files as they are published (see :mod:`foleycrafter.loaders`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.loaders import IPAdapterMixin, StableDiffusionLoraLoaderMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

# `models` is imported for its side effect too: diffusers resolves saved components named
# "foleycrafter.models.*" only among modules already imported.
from . import models, semantic, temporal  # noqa: F401
from .defaults import RELEASE_NUM_INFERENCE_STEPS, RELEASE_TEMPORAL_SCALE
from .release import resolve_folder
from .spectrogram import image_to_log_mel
from .timeline import TIMINGS, Timeline
from .video import VideoClip, load_clip, read_video_info
from .windows import join_windows, plan_windows, select_in_window

VideoInput = str | os.PathLike | VideoClip | np.ndarray | torch.Tensor
ONSET_MASKS = ("events", "frames")


@dataclass
class FoleyCrafterPipelineOutput(BaseOutput):
    """Output of :class:`FoleyCrafterPipeline`.

    Attributes:
        audios: one waveform per prompt, float32 in [-1, 1] at ``sample_rate``, of exactly
            ``round(duration * sample_rate)`` samples (numpy arrays, or tensors with ``output_type="pt"``).
        sample_rate: Hz.
        mel_images: the denoised mel images (B, 3, n_mels, window_columns) in [0, 1] (low
            frequencies at the bottom row); the latents (B, 4, n_mels/8, window_columns/8) with
            ``output_type="latent"``.
        onset_probabilities: per sampled video frame (T,) for each item whose mask came from the
            onset detector, else ``None`` for that item; ``None`` when no item used the detector.
        timestamp_masks: (B, window_columns) of +-1 used to condition the temporal controller, or
            ``None`` when the controller was not used.
        durations: seconds of audio per item.
        windows: ``(start, end)`` seconds of each model window. One per item for clips that fit one
            window; for a longer clip (one item), its overlapping windows, and then ``mel_images``,
            ``timestamp_masks`` and ``onset_probabilities`` hold one entry per window.
    """

    audios: list
    sample_rate: int
    mel_images: Any
    onset_probabilities: list | None
    timestamp_masks: np.ndarray | None
    durations: list[float]
    windows: list[tuple[float, float]] | None = None


class FoleyCrafterPipeline(DiffusionPipeline, IPAdapterMixin, StableDiffusionLoraLoaderMixin):
    r"""Video-to-audio generation with a frozen Auffusion base and FoleyCrafter's adapters.

    Components:
        vae (`AutoencoderKL`): mel image (3 x n_mels x columns, scaled to [-1, 1]) <-> latents.
        text_encoder (`CLIPTextModel`), tokenizer (`CLIPTokenizer`): the text prompt.
        unet (`UNet2DConditionModel`): the denoiser; the semantic adapter lives in its attention processors.
        scheduler: a diffusers scheduler (the release uses `PNDMScheduler`).
        vocoder (`HifiGanVocoder`): log-mel -> 16 kHz waveform; its config fixes sample rate and hop.
        controlnet (`ControlNetModel`, optional): the temporal controller.
        image_encoder (`CLIPVisionModelWithProjection`, optional), feature_extractor
            (`CLIPImageProcessor`, optional): video frames -> CLIP image embeddings.
        onset_detector (`OnsetDetector`, optional): video frames -> per-frame onset probabilities.
        window_columns (`int`): mel columns per model window (1024, i.e. 10.24 s for Auffusion).
        default_temporal_scale (`float`): the ``temporal_scale`` of calls that pass none: the weight
            at which this model's temporal controller was validated (0.2, the release's, unless the
            model folder's ``model_index.json`` says otherwise).
        default_num_inference_steps (`int`): the ``num_inference_steps`` of calls that pass none: the
            step count at which this model's saved sampler was evaluated (25, the release's PNDM
            steps, unless the folder names another).
    """

    # The temporal controller stays out of the chain (diffusers' ControlNet pipelines do the same):
    # it alternates with the UNet at every step, so chained it would be moved back to the device at
    # every step. Outside it gets a hook of its own and stays there until the call ends.
    model_cpu_offload_seq = "text_encoder->image_encoder->onset_detector->unet->vae->vocoder"
    _optional_components = ["controlnet", "image_encoder", "feature_extractor", "onset_detector"]
    _exclude_from_cpu_offload = []
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        vae,
        text_encoder,
        tokenizer,
        unet,
        scheduler,
        vocoder,
        controlnet=None,
        image_encoder=None,
        feature_extractor=None,
        onset_detector=None,
        window_columns: int = 1024,
        default_temporal_scale: float = RELEASE_TEMPORAL_SCALE,
        default_num_inference_steps: int = RELEASE_NUM_INFERENCE_STEPS,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            vocoder=vocoder,
            controlnet=controlnet,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            onset_detector=onset_detector,
        )
        if not (
            isinstance(default_temporal_scale, (int, float))
            and math.isfinite(default_temporal_scale)
            and default_temporal_scale >= 0
        ):
            raise ValueError(
                f"`default_temporal_scale` must be a finite number >= 0, got {default_temporal_scale!r}; "
                "check the model folder's model_index.json."
            )
        if not _is_positive_int(default_num_inference_steps):
            raise ValueError(
                f"`default_num_inference_steps` must be a positive integer, got "
                f"{default_num_inference_steps!r}; check the model folder's model_index.json."
            )
        self.register_to_config(
            window_columns=window_columns,
            default_temporal_scale=float(default_temporal_scale),
            default_num_inference_steps=default_num_inference_steps,
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    # -- speed ------------------------------------------------------------------------------------
    def enable_channels_last(self) -> None:
        """Store the convolutional models (UNet, temporal controller, VAE) channels-last (NHWC).

        On CPU in bfloat16, oneDNN's convolutions then skip a layout reorder on every call: a
        denoising step at the Auffusion shape ran about 1.3x faster (``bench/efficiency.py
        --channels-last``), while float32 gained nothing measurable. Outputs change only by
        rounding. The command line and the demo turn it on for bfloat16 on CPU.
        """
        for model in (self.unet, self.controlnet, self.vae):
            if model is not None:
                model.to(memory_format=torch.channels_last)

    # -- properties ---------------------------------------------------------------------------
    def timeline(self, timing: str = "exact") -> Timeline:
        """The time axis of this pipeline's models under a timing convention."""
        return Timeline(
            sample_rate=int(self.vocoder.config.sampling_rate),
            hop_length=int(self.vocoder.config.hop_size),
            window_columns=int(self.config.window_columns),
            vae_scale_factor=self.vae_scale_factor,
            timing=timing,
        )

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def n_mels(self) -> int:
        return int(self.vocoder.config.num_mels)

    @property
    def has_semantic_adapter(self) -> bool:
        return semantic.has_semantic_adapter(self.unet)

    # -- loading and saving -------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        adapters: str | os.PathLike | None = None,
        image_encoder=None,
        **kwargs,
    ) -> FoleyCrafterPipeline:
        """Load a pipeline.

        Args:
            pretrained_model_name_or_path: a native folder (written by :meth:`save_pretrained`) or hub
                id; or an Auffusion-layout base folder or hub id (e.g.
                ``"auffusion/auffusion-full-no-adapter"``).
            adapters: the released FoleyCrafter folder or hub id (``semantic/semantic_adapter.bin``,
                ``temporal_adapter.ckpt``, ``timestamp_detector.pth.tar``). Only with an Auffusion base.
            image_encoder: a CLIP vision folder or hub id (``"h94/IP-Adapter"``: its
                ``models/image_encoder`` subfolder is used), or a loaded
                ``CLIPVisionModelWithProjection``.
            kwargs: ``dtype`` (or ``torch_dtype``) and the usual diffusers loading arguments.
        """
        from .loaders import load_image_encoder, load_release_pipeline, native_pipeline_class

        # diffusers 0.42 names it `dtype`; `torch_dtype` is the older spelling users still pass.
        if "torch_dtype" in kwargs:
            kwargs["dtype"] = kwargs.pop("torch_dtype")
        index_class = native_pipeline_class(pretrained_model_name_or_path, **_hub_kwargs(kwargs))
        if index_class != cls.__name__:
            dtype = kwargs.pop("dtype", None)
            return load_release_pipeline(
                cls,
                pretrained_model_name_or_path,
                adapters=adapters,
                image_encoder=image_encoder,
                torch_dtype=dtype,
                **kwargs,
            )
        if adapters is not None:
            raise ValueError(
                f"{pretrained_model_name_or_path} is a native FoleyCrafter folder, which already holds its "
                f"adapters; `adapters=` is only for an Auffusion-layout base folder."
            )
        folder = resolve_folder(pretrained_model_name_or_path, **_hub_kwargs(kwargs))
        if isinstance(image_encoder, (str, os.PathLike)):
            image_encoder = load_image_encoder(image_encoder, torch_dtype=kwargs.get("dtype"))
        if image_encoder is not None:
            kwargs["image_encoder"] = image_encoder
        pipe = super().from_pretrained(folder, **kwargs)
        adapter_file = folder / semantic.NATIVE_SUBFOLDER / semantic.NATIVE_WEIGHT_NAME
        if adapter_file.is_file():
            pipe.load_semantic_adapter(adapter_file)
        return pipe

    def load_semantic_adapter(self, source: str | os.PathLike | dict) -> None:
        """Install a semantic adapter (a released ``.bin``, a native ``.safetensors``, or an
        ``{"image_proj", "ip_adapter"}`` dict) into the UNet, after checking it fits."""
        state_dict = source if isinstance(source, dict) else semantic.load_semantic_adapter_file(source)
        clip_dim = self.image_encoder.config.projection_dim if self.image_encoder is not None else None
        semantic.check_semantic_adapter(
            state_dict, self.unet, clip_dim, source if not isinstance(source, dict) else "state dict"
        )
        if self.feature_extractor is None and self.image_encoder is not None:
            from transformers import CLIPImageProcessor

            self.register_modules(feature_extractor=CLIPImageProcessor())
        # `image_encoder_folder=None`: the image encoder is a separate component of ours.
        with _quiet_diffusers():
            self.load_ip_adapter(state_dict, subfolder=None, weight_name=None, image_encoder_folder=None)

    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True, **kwargs):
        """Write the native format: a diffusers pipeline folder (safetensors) plus
        ``semantic_adapter/ip_adapter.safetensors`` (diffusers would otherwise drop it)."""
        if not safe_serialization:
            raise ValueError("FoleyCrafter writes safetensors only; drop safe_serialization=False.")
        adapter = semantic.semantic_adapter_state_dict(self.unet) if self.has_semantic_adapter else None
        with semantic.detached_semantic_adapter(self.unet):
            super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        if adapter is not None:
            semantic.save_semantic_adapter(
                adapter, Path(save_directory) / semantic.NATIVE_SUBFOLDER / semantic.NATIVE_WEIGHT_NAME
            )

    # -- inputs -------------------------------------------------------------------------------
    def check_inputs(
        self,
        prompt,
        video,
        negative_prompt,
        audio_length_in_s,
        num_inference_steps,
        guidance_scale,
        semantic_scale,
        temporal_scale,
        video_embeds,
        onsets,
        onset_probabilities,
        timestamp_mask,
        onset_threshold,
        timing,
        prompt_embeds,
        negative_prompt_embeds,
        output_type,
        callback_on_step_end_tensor_inputs,
        onset_mask=None,
        window_batch_size=1,
    ) -> None:
        if prompt is None and prompt_embeds is None:
            raise ValueError("Pass `prompt` (a string or a list of strings; '' for none) or `prompt_embeds`.")
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
        if prompt is not None and not (
            isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt))
        ):
            raise ValueError(f"`prompt` must be a string or a list of strings, got {type(prompt).__name__}.")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("Pass either `negative_prompt` or `negative_prompt_embeds`, not both.")
        batch = _batch_size(prompt, prompt_embeds)
        if isinstance(negative_prompt, list) and len(negative_prompt) != batch:
            raise ValueError(f"`negative_prompt` has {len(negative_prompt)} entries for {batch} prompts.")
        if isinstance(video, list) and len(video) != batch:
            raise ValueError(
                f"`video` is a list of {len(video)} videos for {batch} prompts; give one per prompt."
            )
        if not _is_positive_int(window_batch_size):
            raise ValueError(
                f"`window_batch_size` must be a positive integer (windows per batch), got {window_batch_size!r}."
            )
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(
                f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}."
            )
        for name, value in (
            ("guidance_scale", guidance_scale),
            ("semantic_scale", semantic_scale),
            ("temporal_scale", temporal_scale),
        ):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
        if not 0 < onset_threshold < 1:
            raise ValueError(f"`onset_threshold` must lie in (0, 1), got {onset_threshold!r}.")
        if timing not in TIMINGS:
            raise ValueError(f"`timing` must be one of {TIMINGS}, got {timing!r}.")
        if onset_mask is not None and onset_mask not in ONSET_MASKS:
            raise ValueError(f"`onset_mask` must be one of {ONSET_MASKS} or None, got {onset_mask!r}.")
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"`output_type` must be 'np', 'pt' or 'latent', got {output_type!r}.")
        if audio_length_in_s is not None and not (
            isinstance(audio_length_in_s, (int, float))
            and math.isfinite(audio_length_in_s)
            and audio_length_in_s > 0
        ):
            raise ValueError(
                f"`audio_length_in_s` must be a positive number of seconds, got {audio_length_in_s!r}."
            )
        given = [
            n
            for n, v in (
                ("onsets", onsets),
                ("onset_probabilities", onset_probabilities),
                ("timestamp_mask", timestamp_mask),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"Pass at most one of `onsets`, `onset_probabilities`, `timestamp_mask`; got {given}."
            )
        if given and self.controlnet is None:
            raise ValueError(
                f"`{given[0]}` was given but this pipeline has no temporal controller (controlnet) to use it."
            )
        if video_embeds is not None and not self.has_semantic_adapter:
            raise ValueError("`video_embeds` was given but no semantic adapter is loaded to use them.")
        if video is None and audio_length_in_s is None and (given or video_embeds is not None):
            raise ValueError("Without a `video`, pass `audio_length_in_s` to say how long the audio is.")
        if video is not None and not given and temporal_scale > 0 and self.controlnet is not None:
            if self.onset_detector is None:
                raise ValueError(
                    "The pipeline has a temporal controller but no onset detector: pass `onsets=[seconds, ...]` "
                    "or `timestamp_mask=...`, load an onset detector, or set `temporal_scale=0`."
                )
        if (
            video is not None
            and video_embeds is None
            and semantic_scale > 0
            and self.has_semantic_adapter
            and (self.image_encoder is None or self.feature_extractor is None)
        ):
            raise ValueError(
                "The pipeline has a semantic adapter but no image encoder: pass `image_encoder=` when loading, "
                "pass precomputed `video_embeds=`, or set `semantic_scale=0`."
            )
        if video is not None and not isinstance(video, list):
            _check_video_type(video, "video", audio_length_in_s)
        elif isinstance(video, list):
            for i, item in enumerate(video):
                if item is not None:  # an item without a video is generated from its text alone
                    _check_video_type(item, f"video[{i}]", audio_length_in_s)
        if callback_on_step_end_tensor_inputs is not None:
            unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
            if unknown:
                raise ValueError(
                    f"`callback_on_step_end_tensor_inputs` may only name {self._callback_tensor_inputs}, got {unknown}."
                )

    def clip_durations(self, video, batch_size: int, audio_length_in_s: float | None) -> list[float]:
        """Seconds of audio per item: ``audio_length_in_s``, else the video's duration, else one window."""
        items = video if isinstance(video, list) else [video] * batch_size
        durations = []
        for item in items:
            if audio_length_in_s is not None:
                durations.append(float(audio_length_in_s))
            elif item is None:
                durations.append(self.timeline().window_seconds)
            elif isinstance(item, VideoClip):
                durations.append(float(item.duration))
            else:
                durations.append(read_video_info(item).duration)
        return durations

    def prepare_clips(
        self,
        video,
        durations: list[float],
        num_frames: int,
        frame_short_side: int | None = None,
        start_seconds: float = 0.0,
    ) -> list[VideoClip | None]:
        """Each item's frames over ``[start_seconds, start_seconds + duration)``: a path is decoded here
        (``num_frames`` sampled uniformly, the release's choice); a clip or array is cut to that span."""
        items = video if isinstance(video, list) else [video] * len(durations)
        clips, cache = [], {}
        for item, duration in zip(items, durations):
            end_seconds = start_seconds + duration
            if item is None:
                clip = None
            elif isinstance(item, (str, os.PathLike)):
                key = (os.fspath(item), duration)
                if key not in cache:
                    info = read_video_info(item)
                    cache[key] = (
                        load_clip(
                            item,
                            num_frames=num_frames,
                            start_seconds=start_seconds,
                            end_seconds=min(end_seconds, info.duration),
                            short_side=frame_short_side,
                        )
                        if start_seconds < info.duration
                        else None
                    )
                clip = cache[key]
            else:
                clip = item if isinstance(item, VideoClip) else _frames_as_clip(item, duration)
                clip = _cut_clip(clip, start_seconds, end_seconds)
            clips.append(clip)
        return clips

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device,
        do_classifier_free_guidance: bool,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text -> CLIP text-encoder hidden states (B, max_length, hidden) for prompt and negative prompt."""
        if prompt_embeds is None:
            prompt_embeds = self._encode_text([prompt] if isinstance(prompt, str) else prompt, device)
        prompt_embeds = prompt_embeds.to(device=device, dtype=self.text_encoder.dtype)
        if not do_classifier_free_guidance:
            return prompt_embeds, None
        if negative_prompt_embeds is None:
            batch = prompt_embeds.shape[0]
            negative = negative_prompt if negative_prompt is not None else ""
            negative = [negative] * batch if isinstance(negative, str) else negative
            negative_prompt_embeds = self._encode_text(negative, device)
        return prompt_embeds, negative_prompt_embeds.to(device=device, dtype=self.text_encoder.dtype)

    def _encode_text(self, texts: list[str], device) -> torch.Tensor:
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(device))[0]

    def encode_videos(self, clips: list[VideoClip | None]) -> torch.Tensor:
        """Mean CLIP image embedding per item (B, 1, D); zeros for items without a video."""
        dim = self.image_encoder.config.projection_dim
        embeds = []
        for clip in clips:
            if clip is None:
                embeds.append(
                    torch.zeros(1, dim, device=self.image_encoder.device, dtype=self.image_encoder.dtype)
                )
            else:
                embeds.append(
                    semantic.encode_video_frames(clip.frames, self.image_encoder, self.feature_extractor)
                )
        return torch.stack(embeds)

    def detect_onsets(self, clip: VideoClip) -> np.ndarray:
        """Onset probability per sampled frame of ``clip`` (T,), from the onset detector."""
        probabilities = self.onset_detector.detect(clip.frames[None])
        return probabilities[0].float().cpu().numpy()

    def prepare_timestamp_masks(
        self,
        clips: list[VideoClip | None],
        durations: list[float],
        timeline: Timeline,
        onsets,
        onset_probabilities,
        timestamp_mask,
        onset_threshold: float,
        onset_mask: str = "events",
    ) -> tuple[np.ndarray, list | None]:
        """One +-1 mask per item (B, window_columns), and the detector's probabilities where used.

        Detector probabilities become a mask as ``onset_mask`` says: ``"events"`` turns each run of
        frames at or above the threshold into one onset time and marks it like a given onset
        (the masks the temporal controller trains on); ``"frames"`` gives each column its detector
        frame's decision (the release's construction)."""
        masks, detected = [], []
        for i, (clip, duration) in enumerate(zip(clips, durations)):
            probabilities = None
            if timestamp_mask is not None:
                mask = temporal.check_mask(_per_item(timestamp_mask, i, len(clips), ndim=1), timeline)
            elif onsets is not None:
                mask = temporal.mask_from_onset_times(
                    _per_item(onsets, i, len(clips), ndim=1), duration, timeline
                )
            else:
                if onset_probabilities is not None:
                    probabilities = np.asarray(
                        torch.as_tensor(
                            _per_item(onset_probabilities, i, len(clips), ndim=1), dtype=torch.float32
                        )
                    )
                elif clip is not None:
                    probabilities = self.detect_onsets(clip)
                if probabilities is None:
                    mask = -np.ones(timeline.window_columns, dtype=np.float32)
                elif onset_mask == "frames":
                    mask = temporal.mask_from_probabilities(
                        probabilities, duration, timeline, onset_threshold
                    )
                else:
                    mask = temporal.mask_from_onset_times(
                        temporal.onsets_from_probabilities(probabilities, duration, onset_threshold),
                        duration,
                        timeline,
                    )
            masks.append(mask)
            detected.append(probabilities)
        return np.stack(masks), (detected if any(p is not None for p in detected) else None)

    def prepare_latents(self, batch_size, dtype, device, generator, latents=None) -> torch.Tensor:
        timeline = self.timeline()
        shape = (
            batch_size,
            self.unet.config.in_channels,
            self.n_mels // self.vae_scale_factor,
            timeline.window_columns // self.vae_scale_factor,
        )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"Got {len(generator)} generators for a batch of {batch_size}; give one per prompt."
            )
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            if tuple(latents.shape) != shape:
                raise ValueError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}.")
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> mel images (B, 3, n_mels, columns) in [0, 1]."""
        latents = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        image = self.vae.decode(latents, return_dict=False)[0]
        return (image / 2 + 0.5).clamp(0, 1)

    def mel_images_to_audio(self, mel_images: torch.Tensor, durations: Sequence[float]) -> list[torch.Tensor]:
        """Mel images -> waveforms (float32, [-1, 1]), each cut to ``round(duration * sample_rate)`` samples."""
        log_mel = image_to_log_mel(mel_images.float()).to(
            device=self.vocoder.device, dtype=self.vocoder.dtype
        )
        waveforms = self.vocoder(log_mel).float()
        timeline = self.timeline()
        return [w[: timeline.seconds_to_samples(d)] for w, d in zip(waveforms, durations)]

    @torch.no_grad()
    def autoencode_audio(self, waveform: np.ndarray | torch.Tensor) -> np.ndarray:
        """Audio through this model's mel image, VAE (encode, decode) and vocoder, without denoising.

        What survives the round trip bounds what any generation by this model can sound like: the
        benchmark's ``autoencoder_ceiling`` row. The mel spectrogram is computed as training data
        is prepared (:class:`~foleycrafter.spectrogram.MelSpectrogram` at the vocoder's rate, hop
        and band count); the whole clip goes through the VAE at once (padded to its factor).

        Args:
            waveform: mono float audio (samples,) at ``self.sample_rate``, in [-1, 1].

        Returns:
            float32 (samples,), the same length.
        """
        from .spectrogram import MelSpectrogram, log_mel_to_image

        audio = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
        if audio.ndim != 1 or audio.numel() == 0:
            raise ValueError(f"waveform must be mono audio of shape (samples,), got {tuple(audio.shape)}.")
        timeline = self.timeline()
        mel = MelSpectrogram(
            sample_rate=timeline.sample_rate, hop_length=timeline.hop_length, n_mels=self.n_mels
        )
        image = log_mel_to_image(mel(audio))
        # The mel columns the clip covers, rounded up to a whole number of latent columns.
        latent_columns = math.ceil(math.ceil(audio.numel() / timeline.hop_length) / self.vae_scale_factor)
        columns = latent_columns * self.vae_scale_factor
        image = torch.nn.functional.pad(image[..., :columns], (0, max(0, columns - image.shape[-1])))
        device, dtype = self._execution_device, self.vae.dtype
        posterior = self.vae.encode((image * 2 - 1).to(device=device, dtype=dtype)).latent_dist
        latents = posterior.mean * self.vae.config.scaling_factor
        decoded = self.mel_images_to_audio(
            self.decode_latents(latents), [audio.numel() / timeline.sample_rate]
        )
        return decoded[0].cpu().numpy().astype(np.float32)

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        video: VideoInput | list[VideoInput] | None = None,
        negative_prompt: str | list[str] | None = None,
        audio_length_in_s: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 7.5,
        semantic_scale: float = 1.0,
        temporal_scale: float | None = None,
        video_embeds: torch.Tensor | None = None,
        onsets: Sequence[float] | list[Sequence[float]] | None = None,
        onset_probabilities: np.ndarray | torch.Tensor | None = None,
        timestamp_mask: np.ndarray | torch.Tensor | None = None,
        onset_threshold: float = 0.5,
        onset_mask: str | None = None,
        timing: str = "exact",
        num_frames: int = 150,
        frame_short_side: int | None = None,
        window_overlap: float = 1.0,
        window_batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> FoleyCrafterPipelineOutput | tuple:
        r"""Generate audio for a video (or for text alone).

        Args:
            prompt: text describing the sound (default '', the release's); one per output.
            video: a video file path, a :class:`~foleycrafter.video.VideoClip`, uint8 frames
                (T, H, W, 3) (then ``audio_length_in_s`` gives their duration), or a list (one per prompt;
                ``None`` for an item generated from its text alone).
            negative_prompt: text to steer away from (default '').
            audio_length_in_s: seconds of audio; default: the video's duration (at most one window,
                10.24 s), or the full window without a video.
            num_inference_steps: denoising steps; default: the model's ``default_num_inference_steps``
                (the release's 25 unless its folder names another, with the sampler saved beside it).
            guidance_scale: classifier-free guidance weight (release 7.5).
            semantic_scale: weight of the video's CLIP embedding (release 1.0; 0 disables the branch).
            temporal_scale: weight of the temporal controller (0 disables it); default: the model's
                ``default_temporal_scale`` (the release's 0.2 unless its folder names another).
            video_embeds: precomputed mean CLIP image embeddings (B, 1, D) or (B, D) instead of the video's.
            onsets: onset times in seconds (one list, or one list per prompt) instead of the detector.
            onset_probabilities: per-frame probabilities (T,) (or (B, T)) instead of running the detector.
            timestamp_mask: a ready +-1 mask (columns,) or (B, columns).
            onset_threshold: detector probability at or above which a frame counts as an onset (0.5).
            onset_mask: how detector probabilities become the timestamp mask: ``"events"`` (each run
                of onset frames becomes one onset at the run's probability-weighted centre, marked
                for 0.1 s like a given onset: the masks the temporal controller is trained on) or
                ``"frames"`` (each mel column takes its detector frame's decision, as the release
                does). Default: ``"frames"`` with ``timing="release"``, else ``"events"``.
            timing: ``"exact"`` (100 mel columns/s, as the vocoder renders) or ``"release"`` (the
                release's 102.4 columns/s mapping, for reproducing its outputs).
            num_frames: frames sampled uniformly over the video (per window) for CLIP and the detector
                (release 150).
            frame_short_side: resize decoded frames so their shorter side has this many pixels (keeps
                memory flat for high-resolution video); ``None`` keeps full frames as the release does.
            window_overlap: seconds of overlap (at least) between neighbouring windows of a video longer
                than one window (10.24 s); their audio is joined with an equal-power crossfade.
            window_batch_size: windows of such a video denoised together in one batch (1: one at a
                time). Batching draws the same initial noise, so the mel images are the same up to
                float rounding (in float32 and float64 so is the audio; bf16's coarser rounding can
                shift a Griffin-Lim vocoder's phases). It can pay where one window leaves the device
                idle (a small model; a GPU, unmeasured), and costs memory in proportion
                (bench/batching.py).
            generator, latents, prompt_embeds, negative_prompt_embeds: as in diffusers.
            output_type: ``"np"`` (numpy audio), ``"pt"`` (torch audio), or ``"latent"``.
            callback_on_step_end: called after each denoising step as
                ``callback(pipe, step, timestep, {name: tensor})``; may return replacements.

        Returns:
            :class:`FoleyCrafterPipelineOutput` (or a tuple ``(audios, sample_rate)`` with ``return_dict=False``).
        """
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        if prompt is None and prompt_embeds is None:
            prompt = ""  # video-to-audio needs no text: the release's default prompt
        if temporal_scale is None:
            temporal_scale = self.config.default_temporal_scale
        if num_inference_steps is None:
            num_inference_steps = self.config.default_num_inference_steps
        # 1. Check inputs
        self.check_inputs(
            prompt,
            video,
            negative_prompt,
            audio_length_in_s,
            num_inference_steps,
            guidance_scale,
            semantic_scale,
            temporal_scale,
            video_embeds,
            onsets,
            onset_probabilities,
            timestamp_mask,
            onset_threshold,
            timing,
            prompt_embeds,
            negative_prompt_embeds,
            output_type,
            callback_on_step_end_tensor_inputs,
            onset_mask,
            window_batch_size,
        )
        if onset_mask is None:
            onset_mask = "frames" if timing == "release" else "events"
        batch_size = _batch_size(prompt, prompt_embeds)
        device = self._execution_device
        do_cfg = guidance_scale > 1.0
        timeline = self.timeline(timing)

        # 2. Fix each item's duration; longer than one window -> overlapping windows, joined
        durations = self.clip_durations(video, batch_size, audio_length_in_s)
        if max(durations) > self.timeline().window_seconds + 1e-9:
            return self._generate_long(
                durations[0],
                prompt=prompt,
                video=video,
                negative_prompt=negative_prompt,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                semantic_scale=semantic_scale,
                temporal_scale=temporal_scale,
                video_embeds=video_embeds,
                onsets=onsets,
                onset_threshold=onset_threshold,
                onset_mask=onset_mask,
                timing=timing,
                num_frames=num_frames,
                frame_short_side=frame_short_side,
                window_overlap=window_overlap,
                window_batch_size=window_batch_size,
                generator=generator,
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                output_type=output_type,
                return_dict=return_dict,
                unsupported={
                    "a batch of prompts": batch_size > 1,
                    "latents": latents is not None,
                    "onset_probabilities": onset_probabilities is not None,
                    "timestamp_mask": timestamp_mask is not None,
                    "callback_on_step_end": callback_on_step_end is not None,
                    'output_type="latent"': output_type == "latent",
                },
            )

        # 3. Read the video(s): frames sampled over each item's duration
        clips = self.prepare_clips(video, durations, num_frames, frame_short_side)
        has_video = any(c is not None for c in clips)

        # 4. Encode the text
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, device, do_cfg, negative_prompt, prompt_embeds, negative_prompt_embeds
        )
        encoder_hidden_states = (
            torch.cat([negative_prompt_embeds, prompt_embeds]) if do_cfg else prompt_embeds
        )

        # 5. Semantic branch: mean CLIP embedding of the frames; the negative is all zeros (release)
        use_semantic = (
            self.has_semantic_adapter and semantic_scale > 0 and (has_video or video_embeds is not None)
        )
        added_cond_kwargs = None
        if use_semantic:
            if video_embeds is None:
                video_embeds = self.encode_videos(clips)
            video_embeds = _as_embeds(video_embeds, batch_size).to(device=device, dtype=self.unet.dtype)
            image_embeds = (
                torch.cat([torch.zeros_like(video_embeds), video_embeds]) if do_cfg else video_embeds
            )
            added_cond_kwargs = {"image_embeds": [image_embeds]}
            semantic.set_semantic_scale(self.unet, semantic_scale)

        # 6. Temporal branch: timestamp masks -> condition images (1 x n_mels x columns)
        use_temporal = self.controlnet is not None and temporal_scale > 0
        masks, probabilities, condition = None, None, None
        if use_temporal and (
            has_video or onsets is not None or onset_probabilities is not None or timestamp_mask is not None
        ):
            masks, probabilities = self.prepare_timestamp_masks(
                clips,
                durations,
                timeline,
                onsets,
                onset_probabilities,
                timestamp_mask,
                onset_threshold,
                onset_mask,
            )
            condition = temporal.mask_to_condition(masks, self.n_mels).to(
                device=device, dtype=self.controlnet.dtype
            )
            if do_cfg:
                condition = torch.cat([condition, condition])
        use_temporal = condition is not None

        # 7. Timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 8. Initial latents
        latents = self.prepare_latents(batch_size, self.unet.dtype, device, generator, latents)
        extra_step_kwargs = self._extra_step_kwargs(generator)

        # 9. Denoising loop (the image branch is detached when unused, so the UNet is exactly the base)
        adapter_off = (
            semantic.detached_semantic_adapter(self.unet) if not use_semantic else contextlib.nullcontext()
        )
        condition_once = (
            temporal.condition_embedded_once(self.controlnet, condition)
            if use_temporal
            else contextlib.nullcontext()
        )
        # Looked up once: a module's dtype walks all its parameters (~10 ms a step for a tiny UNet).
        unet_text = encoder_hidden_states.to(self.unet.dtype)
        if use_temporal:
            controller_dtype = self.controlnet.dtype
            controller_text = encoder_hidden_states.to(controller_dtype)
        with adapter_off, condition_once, self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                model_input = torch.cat([latents] * 2) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                down_residuals = mid_residual = None
                if use_temporal:
                    down_residuals, mid_residual = self.controlnet(
                        model_input.to(controller_dtype),
                        t,
                        encoder_hidden_states=controller_text,
                        controlnet_cond=condition,
                        conditioning_scale=float(temporal_scale),
                        return_dict=False,
                    )
                noise_pred = self.unet(
                    model_input,
                    t,
                    encoder_hidden_states=unet_text,
                    added_cond_kwargs=added_cond_kwargs,
                    down_block_additional_residuals=down_residuals,
                    mid_block_additional_residual=mid_residual,
                    return_dict=False,
                )[0]
                if do_cfg:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[
                    0
                ]

                if callback_on_step_end is not None:
                    local = {
                        "latents": latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                    }
                    outputs = callback_on_step_end(
                        self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    latents = outputs.pop("latents", latents)
                progress_bar.update()

        # 10. Decode: latents -> mel images -> waveforms cut to each item's duration
        if output_type == "latent":
            audios, mel_images = [], latents
        else:
            mel_images = self.decode_latents(latents)
            audios = self.mel_images_to_audio(mel_images, durations)
            if output_type == "np":
                audios = [a.cpu().numpy().astype(np.float32) for a in audios]
                mel_images = mel_images.float().cpu().numpy()
        self.maybe_free_model_hooks()

        if not return_dict:
            return audios, self.sample_rate
        return FoleyCrafterPipelineOutput(
            audios=audios,
            sample_rate=self.sample_rate,
            mel_images=mel_images,
            onset_probabilities=probabilities,
            timestamp_masks=masks if use_temporal else None,
            durations=durations,
            windows=[(0.0, d) for d in durations],
        )

    def _generate_long(
        self,
        duration: float,
        *,
        video,
        onsets,
        window_overlap,
        window_batch_size,
        unsupported,
        return_dict,
        output_type,
        **kwargs,
    ):
        """A clip longer than one window: generate overlapping windows (each with its own frames, onset
        mask and semantic embedding) and join them with an equal-power crossfade (see ``windows``).
        ``window_batch_size`` windows at a time go through the model as one batch."""
        refused = [name for name, present in unsupported.items() if present]
        if refused:
            raise ValueError(
                f"This clip is {duration:.2f} s long, so it is generated in windows of "
                f"{self.timeline().window_seconds:.2f} s, which does not support {', '.join(refused)}."
            )
        if isinstance(video, list):
            video = video[0]
        if isinstance(video, (np.ndarray, torch.Tensor)):
            video = _frames_as_clip(video, duration)
        generator = kwargs.pop("generator")
        if isinstance(generator, list):
            # One generator for the one clip: its windows draw their noise from it in turn, in one
            # batch or one by one alike.
            generator = generator[0]
        timeline = self.timeline()
        plan = plan_windows(
            timeline.seconds_to_samples(duration), timeline.window_samples, self.sample_rate, window_overlap
        )
        groups = [plan[k : k + window_batch_size] for k in range(0, len(plan), window_batch_size)]
        segments, mel_images, masks, probabilities = [], [], [], []
        for group in self.progress_bar(groups):
            out = self(
                video=[self._window_clip(video, w, kwargs) for w in group] if video is not None else None,
                audio_length_in_s=group[0].seconds,  # plan_windows makes every window equally long
                onsets=[select_in_window(onsets, w) for w in group] if onsets is not None else None,
                generator=generator,
                output_type="pt",
                return_dict=True,
                **_repeat_per_window(kwargs, len(group)),
            )
            segments.extend(audio.cpu().numpy() for audio in out.audios)
            mel_images.append(out.mel_images)
            for k in range(len(group)):
                masks.append(out.timestamp_masks[k] if out.timestamp_masks is not None else None)
                probabilities.append(
                    out.onset_probabilities[k] if out.onset_probabilities is not None else None
                )
        audio = join_windows(segments, plan)
        mel_images = torch.cat(mel_images)
        if output_type == "np":
            mel_images = mel_images.float().cpu().numpy()
        else:
            audio = torch.from_numpy(audio)
        if not return_dict:
            return [audio], self.sample_rate
        return FoleyCrafterPipelineOutput(
            audios=[audio],
            sample_rate=self.sample_rate,
            mel_images=mel_images,
            onset_probabilities=probabilities if any(p is not None for p in probabilities) else None,
            timestamp_masks=np.stack(masks) if all(m is not None for m in masks) else None,
            durations=[duration],
            windows=[(w.start_seconds, w.end_seconds) for w in plan],
        )

    def _window_clip(self, video, window, kwargs) -> VideoClip | None:
        """The frames of one window: decoded from a path over the window's span, or cut from a clip."""
        if isinstance(video, (str, os.PathLike)):
            return self.prepare_clips(
                video,
                [window.seconds],
                kwargs["num_frames"],
                kwargs["frame_short_side"],
                window.start_seconds,
            )[0]
        return _cut_clip(video, window.start_seconds, window.end_seconds)

    def _extra_step_kwargs(self, generator) -> dict:
        # Only some schedulers take a generator (e.g. DDIM's eta noise); PNDM does not.
        if "generator" in inspect.signature(self.scheduler.step).parameters:
            return {"generator": generator}
        return {}


# -- helpers ------------------------------------------------------------------------------------
class _quiet_diffusers:
    """Silence diffusers' warning that no image encoder is loaded by ``load_ip_adapter``: the image
    encoder is a separate component here, and its absence is reported by ``check_inputs`` when it matters."""

    def __enter__(self):
        from diffusers.utils import logging

        self._logger = logging.get_logger("diffusers.loaders.ip_adapter")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
        return False


def _is_positive_int(value) -> bool:
    """An int >= 1 that is not a bool (``True`` would pass for 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _batch_size(prompt, prompt_embeds) -> int:
    if prompt is not None:
        return 1 if isinstance(prompt, str) else len(prompt)
    return prompt_embeds.shape[0]


def _check_video_type(item, name: str, audio_length_in_s) -> None:
    if isinstance(item, (str, os.PathLike)):
        if not os.fspath(item):
            raise ValueError(f"`{name}` is an empty path; pass a video file path.")
        if not Path(item).is_file():
            raise ValueError(f"`{name}`: video file not found: '{item}'.")
        return
    if isinstance(item, VideoClip):
        return
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if item.ndim != 4 or item.shape[-1] != 3:
            raise ValueError(f"`{name}` frames must have shape (T, H, W, 3), got {tuple(item.shape)}.")
        if audio_length_in_s is None:
            raise ValueError(
                f"`{name}` is an array of frames: pass `audio_length_in_s` to say how long it lasts."
            )
        return
    raise ValueError(
        f"`{name}` must be a video file path, a VideoClip or a (T, H, W, 3) uint8 array, got {type(item).__name__}."
    )


def _frames_as_clip(frames, duration: float) -> VideoClip:
    """uint8 frames (T, H, W, 3) taken as spread uniformly over ``duration`` seconds."""
    frames = np.asarray(torch.as_tensor(frames).cpu())
    return VideoClip(
        frames=frames, frame_times=np.arange(len(frames)) * (duration / len(frames)), duration=duration
    )


def _cut_clip(clip: VideoClip, start: float, end: float) -> VideoClip | None:
    """The frames of ``clip`` shown in ``[start, end)`` s, with times relative to ``start``."""
    if start <= 0 and end >= clip.duration:
        return clip
    keep = (clip.frame_times >= start) & (clip.frame_times < end)
    if not keep.any():
        return None
    return VideoClip(
        frames=clip.frames[keep],
        frame_times=clip.frame_times[keep] - start,
        duration=min(end, clip.duration) - start,
    )


def _per_item(value, index: int, batch: int, ndim: int):
    """``value`` for item ``index``: either one value shared by all items or a per-item list/array."""
    array_like = isinstance(value, (np.ndarray, torch.Tensor))
    if array_like and value.ndim == ndim + 1:
        if value.shape[0] != batch:
            raise ValueError(f"Got {value.shape[0]} per-item entries for a batch of {batch}.")
        return value[index]
    if not array_like and len(value) and isinstance(value[0], (list, tuple, np.ndarray, torch.Tensor)):
        if len(value) != batch:
            raise ValueError(f"Got {len(value)} per-item entries for a batch of {batch}.")
        return value[index]
    return value


def _as_embeds(video_embeds: torch.Tensor, batch_size: int) -> torch.Tensor:
    embeds = torch.as_tensor(video_embeds)
    if embeds.ndim == 2:
        embeds = embeds[:, None]
    if embeds.ndim != 3 or embeds.shape[1] != 1:
        raise ValueError(
            f"`video_embeds` must have shape (B, 1, D) or (B, D), got {tuple(video_embeds.shape)}."
        )
    if embeds.shape[0] == 1 and batch_size > 1:
        embeds = embeds.expand(batch_size, -1, -1)
    if embeds.shape[0] != batch_size:
        raise ValueError(f"`video_embeds` has {embeds.shape[0]} rows for {batch_size} prompts.")
    return embeds


def _repeat_per_window(kwargs: dict, count: int) -> dict:
    """The one clip's prompt arguments repeated for ``count`` windows generated in one batch."""
    out = dict(kwargs)
    for name in ("prompt", "negative_prompt"):
        value = kwargs.get(name)
        if isinstance(value, list):
            out[name] = value[:1] * count
        elif name == "prompt" and value is not None:
            out[name] = [value] * count
    for name in ("prompt_embeds", "negative_prompt_embeds", "video_embeds"):
        value = kwargs.get(name)
        if value is not None:
            value = torch.as_tensor(value)
            if value.ndim >= 2 and value.shape[0] == 1:
                out[name] = value.expand(count, *value.shape[1:])
    return out


def _hub_kwargs(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
