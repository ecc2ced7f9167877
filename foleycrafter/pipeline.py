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
from diffusers.utils import USE_PEFT_BACKEND, BaseOutput, scale_lora_layers, unscale_lora_layers
from diffusers.utils.torch_utils import randn_tensor

# `models` is imported for its side effect too: diffusers resolves saved components named
# "foleycrafter.models.*" only among modules already imported.
from . import frame_aligned, generation, models, semantic, temporal  # noqa: F401
from . import loudness as loudness_lib  # `loudness` is a call argument
from .defaults import RELEASE_NUM_INFERENCE_STEPS, RELEASE_TEMPORAL_SCALE
from .generation import VideoSource
from .latents import denormalize_latents, normalize_latents
from .models.alignment import features_over_window
from .region import REGION_MODES, check_region, region_clip
from .release import CheckpointError, resolve_folder
from .spectrogram import image_to_log_mel
from .timeline import TIMINGS, Timeline
from .video import VideoClip, VideoInfo

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
        loudness_curves: (B, window_columns) dBFS curves the loudness controller followed, or ``None``.
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
    loudness_curves: np.ndarray | None = None


class FoleyCrafterPipeline(DiffusionPipeline, IPAdapterMixin, StableDiffusionLoraLoaderMixin):
    r"""Video-to-audio generation with a frozen Auffusion base and FoleyCrafter's adapters.

    Components:
        vae (`AutoencoderKL`): mel image (3 x n_mels x columns, scaled to [-1, 1]) <-> latents.
        text_encoder (`CLIPTextModel`), tokenizer (`CLIPTokenizer`): the text prompt.
        unet (`UNet2DConditionModel`): the denoiser; the semantic adapter lives in its attention processors.
        scheduler: a diffusers scheduler (the release uses `PNDMScheduler`).
        vocoder (`HifiGanVocoder`): log-mel -> 16 kHz waveform; its config fixes sample rate and hop.
        controlnet (`ControlNetModel`, optional): the temporal controller.
        loudness_controller (`ControlNetModel`, optional): the loudness controller, conditioned on a
            loudness curve (dBFS per mel column, :mod:`foleycrafter.loudness`); its residuals add to
            the temporal controller's, as diffusers adds those of several ControlNets.
        loudness_predictor (`LoudnessPredictor`, optional): video frames -> per-frame loudness, the
            curve of ``loudness="video"``.
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
    _optional_components = [
        "controlnet",
        "loudness_controller",
        "loudness_predictor",
        "image_encoder",
        "feature_extractor",
        "onset_detector",
        "alignment_classifier",
    ]
    _exclude_from_cpu_offload = []
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]
    # The running call's settings (properties below), as diffusers pipelines keep them.
    _guidance_scale = 7.5
    _cross_attention_kwargs = None
    _num_timesteps = 0
    _interrupt = False

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
        alignment_classifier=None,
        loudness_controller=None,
        loudness_predictor=None,
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
            alignment_classifier=alignment_classifier,
            loudness_controller=loudness_controller,
            loudness_predictor=loudness_predictor,
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
        for model in (self.unet, self.controlnet, self.loudness_controller, self.vae):
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

    @property
    def semantic_adapter_kind(self) -> str | None:
        """``"mean"`` (the release's mean CLIP embedding), ``"frame_aligned"`` (a token per frame,
        :mod:`foleycrafter.frame_aligned`), or ``None`` without a semantic adapter."""
        return semantic.semantic_adapter_kind(self.unet)

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
        adapter_file = semantic.native_adapter_file(folder)
        if adapter_file is not None:
            pipe.load_semantic_adapter(adapter_file)
        return pipe

    def load_semantic_adapter(self, source: str | os.PathLike | dict) -> None:
        """Install a semantic adapter into the UNet, after checking it fits: a released ``.bin``, a
        native ``.safetensors`` of either kind (a frame-aligned one with its ``frame_aligned.json``
        beside it), a folder holding one (a pipeline folder or its ``semantic_adapter/``), or a
        mean-embedding ``{"image_proj", "ip_adapter"}`` dict."""
        if not isinstance(source, dict) and Path(source).is_dir():
            source = semantic.adapter_file_in(source)
        state_dict = source if isinstance(source, dict) else semantic.load_semantic_adapter_file(source)
        clip_dim = self.image_encoder.config.projection_dim if self.image_encoder is not None else None
        if not isinstance(source, dict) and semantic.adapter_kind(state_dict) == "frame_aligned":
            config = semantic.load_frame_aligned_config(source)
            if clip_dim is not None and config.get("clip_dim") != clip_dim:
                raise CheckpointError(
                    f"{source}: the frame-aligned adapter expects CLIP image embeddings of width "
                    f"{config.get('clip_dim')}, but the image encoder produces {clip_dim}. Use the image "
                    f"encoder the adapter was trained with."
                )
            self._ensure_feature_extractor()
            semantic.install_frame_aligned_adapter(self.unet, state_dict, config, source)
            return
        semantic.check_semantic_adapter(
            state_dict, self.unet, clip_dim, source if not isinstance(source, dict) else "state dict"
        )
        self._ensure_feature_extractor()
        # `image_encoder_folder=None`: the image encoder is a separate component of ours.
        with _quiet_diffusers():
            self.load_ip_adapter(state_dict, subfolder=None, weight_name=None, image_encoder_folder=None)

    def _ensure_feature_extractor(self) -> None:
        if self.feature_extractor is None and self.image_encoder is not None:
            from transformers import CLIPImageProcessor

            self.register_modules(feature_extractor=CLIPImageProcessor())

    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True, **kwargs):
        """Write the native format: a diffusers pipeline folder (safetensors) plus
        ``semantic_adapter/`` with the semantic adapter (diffusers would otherwise drop it):
        ``ip_adapter.safetensors``, or for a frame-aligned adapter ``frame_aligned.safetensors`` and
        ``frame_aligned.json``."""
        if not safe_serialization:
            raise ValueError("FoleyCrafter writes safetensors only; drop safe_serialization=False.")
        with semantic.detached_semantic_adapter(self.unet):
            super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        if self.has_semantic_adapter:
            semantic.save_semantic_adapter_folder(self.unet, Path(save_directory) / semantic.NATIVE_SUBFOLDER)

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
        num_frames=None,
        cross_attention_kwargs=None,
        alignment_guidance_scale=0.0,
        loudness=None,
        loudness_scale=1.0,
        region=None,
        region_mode="crop",
        visual_attention=None,
        visual_attention_window=None,
        loudness_gain=0.0,
    ) -> None:
        """Check the arguments of a call before any work, and without reading any file: a missing or
        unreadable video is reported when it is probed (a :class:`~foleycrafter.video.VideoReadError`)."""
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
        if num_frames is not None and not _is_positive_int(num_frames):
            raise ValueError(
                f"`num_frames` must be a positive integer (frames per window), got {num_frames!r}."
            )
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(
                f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}."
            )
        for name, value in (
            ("guidance_scale", guidance_scale),
            ("semantic_scale", semantic_scale),
            ("temporal_scale", temporal_scale),
            ("alignment_guidance_scale", alignment_guidance_scale),
            ("loudness_scale", loudness_scale),
        ):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
        if alignment_guidance_scale > 0:
            if self.alignment_classifier is None:
                raise ValueError(
                    "`alignment_guidance_scale` > 0 needs an alignment classifier: load a model that has "
                    "one (or pass `alignment_classifier=` to from_pretrained), or set it to 0."
                )
            if not _every_item_has_video(video):
                raise ValueError(
                    "`alignment_guidance_scale` > 0 guides the sound towards its video: every item needs a "
                    "`video`. Set it to 0 for items generated from text alone."
                )
            if self.image_encoder is None or self.feature_extractor is None:
                raise ValueError(
                    "`alignment_guidance_scale` > 0 needs the image encoder for the classifier's frame "
                    "features: pass `image_encoder=` when loading, or set it to 0."
                )
        if not isinstance(loudness_gain, (int, float)) or not 0 <= loudness_gain <= 1:
            raise ValueError(
                f"`loudness_gain` is the share of the way to the loudness curve the gain stage goes, in "
                f"[0, 1] (0: off), got {loudness_gain!r}."
            )
        if loudness_gain > 0 and loudness is None:
            raise ValueError("`loudness_gain` > 0 applies a loudness curve: pass `loudness` too.")
        if loudness_gain > 0 and output_type == "latent":
            raise ValueError("`loudness_gain` shapes the audio, which output_type='latent' does not make.")
        if loudness is not None and self.loudness_controller is None and loudness_scale > 0:
            raise ValueError(
                "`loudness` was given but this pipeline has no loudness controller to follow it: load a "
                "model that has one (`loudness_controller=` in from_pretrained), or drop `loudness`, or "
                "set `loudness_scale=0` and apply the curve to the audio alone with `loudness_gain`."
            )
        if loudness is not None and video is None and audio_length_in_s is None:
            raise ValueError("Without a `video`, pass `audio_length_in_s` to say how long the audio is.")
        wanted = loudness if isinstance(loudness, list) else [loudness]
        if any(isinstance(curve, str) for curve in wanted):
            if any(isinstance(curve, str) and curve != "video" for curve in wanted):
                raise ValueError(
                    f"`loudness` as text must be 'video' (the loudness predictor's curve), got {loudness!r}."
                )
            if self.loudness_predictor is None:
                raise ValueError(
                    "`loudness='video'` needs a loudness predictor: load a model that has one "
                    "(`foleycrafter train loudness_predictor` writes it), or give a curve."
                )
            if not _every_item_has_video(video):
                raise ValueError(
                    "`loudness='video'` predicts the curve from the video: every item needs a `video`."
                )
        if region is not None:
            if region_mode not in REGION_MODES:
                raise ValueError(f"`region_mode` must be one of {REGION_MODES}, got {region_mode!r}.")
            if not _every_item_has_video(video):
                raise ValueError(
                    "`region` says which part of the picture sounds: every item needs a `video`."
                )
            for i, item in enumerate(_per_item_region(region, batch)):
                if item is not None:
                    check_region(item, "region" if batch == 1 else f"region[{i}]")
        if onset_threshold is not None:
            temporal.onset_threshold(onset_threshold)
        if timing not in TIMINGS:
            raise ValueError(f"`timing` must be one of {TIMINGS}, got {timing!r}.")
        if onset_mask is not None and onset_mask not in ONSET_MASKS:
            raise ValueError(f"`onset_mask` must be one of {ONSET_MASKS} or None, got {onset_mask!r}.")
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"`output_type` must be 'np', 'pt' or 'latent', got {output_type!r}.")
        if cross_attention_kwargs is not None and not isinstance(cross_attention_kwargs, dict):
            raise ValueError(
                f"`cross_attention_kwargs` must be a dict (e.g. {{'scale': 0.5}} for LoRA), got "
                f"{type(cross_attention_kwargs).__name__}."
            )
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
        if visual_attention is not None or visual_attention_window is not None:
            if self.semantic_adapter_kind != "frame_aligned":
                raise ValueError(
                    "`visual_attention` / `visual_attention_window` choose the frames a frame-aligned semantic "
                    f"adapter attends to, but this pipeline's semantic adapter is {self.semantic_adapter_kind!r}; "
                    "drop them or load a frame-aligned adapter."
                )
            frame_aligned.check_visual_attention(
                visual_attention or self.unet.encoder_hid_proj.config.visual_attention,
                visual_attention_window,
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

    def check_windows(self, plans: list[generation.ItemPlan], **given) -> None:
        """Refuse what cannot be split over the windows of a clip longer than one model window.

        Args:
            given: ``name=present`` for the arguments that hold one value for a whole window
                (a batch of prompts, ``latents``, ``onset_probabilities``, ``timestamp_mask``).
        """
        long = next((plan for plan in plans if len(plan.windows) > 1), None)
        refused = [name for name, present in given.items() if present]
        if long is not None and refused:
            raise ValueError(
                f"This clip is {long.duration:.2f} s long, so it is generated in windows of "
                f"{self.timeline().window_seconds:.2f} s, which does not support {', '.join(refused)}."
            )

    # -- properties of the running call (as diffusers pipelines have them) --------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def cross_attention_kwargs(self) -> dict | None:
        return self._cross_attention_kwargs

    @property
    def num_timesteps(self) -> int:
        """Denoising steps of each window of the running (or last) call."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set to True (e.g. from a step callback) to skip the remaining denoising steps."""
        return self._interrupt

    # -- conditions -------------------------------------------------------------------------------
    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device,
        do_classifier_free_guidance: bool,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text -> CLIP text-encoder hidden states (B, max_length, hidden) for prompt and negative prompt.

        ``lora_scale`` weights LoRA layers loaded into the text encoder (peft backend), as in diffusers.
        """
        scaled = lora_scale is not None and USE_PEFT_BACKEND
        if scaled:
            scale_lora_layers(self.text_encoder, lora_scale)
        try:
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
        finally:
            if scaled:
                unscale_lora_layers(self.text_encoder, lora_scale)

    def _encode_text(self, texts: list[str], device) -> torch.Tensor:
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(device))[0]

    def decode_frames(self, windows, num_frames: int, frame_short_side: int | None) -> list[VideoClip | None]:
        """The sampled frames of each window (see :func:`foleycrafter.generation.decode_frames`)."""
        return generation.decode_frames(windows, num_frames, frame_short_side)

    def encode_videos(self, clips: list[VideoClip | None], per_frame: bool = False) -> torch.Tensor:
        """CLIP image embeddings per item: the mean (B, 1, D), or with ``per_frame`` each sampled
        frame's (B, F, D); zeros for items without a video."""
        encoded = [
            None
            if clip is None
            else semantic.frame_embeddings(clip.frames, self.image_encoder, self.feature_extractor)
            for clip in clips
        ]
        if not per_frame:
            encoded = [None if e is None else e.mean(dim=0, keepdim=True) for e in encoded]
        counts = {e.shape[0] for e in encoded if e is not None}
        if len(counts) > 1:
            raise ValueError(
                "The frame-aligned semantic adapter needs the same number of frames in every window of a "
                f"batch; got {sorted(counts)}. Pass `num_frames=` or `window_batch_size=1`."
            )
        count = counts.pop() if counts else 1
        empty = torch.zeros(
            count,
            self.image_encoder.config.projection_dim,
            device=self.image_encoder.device,
            dtype=self.image_encoder.dtype,
        )
        return torch.stack([empty if e is None else e for e in encoded])

    def alignment_video_features(self, clips: list[VideoClip], device) -> tuple[torch.Tensor, torch.Tensor]:
        """The alignment classifier's video input for a batch of windows, and the semantic adapter's.

        Each frame a window shows is encoded once (CLIP image embeddings, the frames sampled uniformly
        over the window). Returns, on ``device`` in the image encoder's dtype:

        * ``features`` (B, F, D): the frames laid out over the whole window; a window longer than the
          rest of its video has zeros past the video's end (:func:`features_over_window`);
        * ``frames`` (B, F, D): each frame's embedding as sampled, the semantic adapter's input (its
          mean for the mean-embedding adapter).
        """
        window_seconds = self.timeline().window_seconds
        embeddings = [
            semantic.frame_embeddings(clip.frames, self.image_encoder, self.feature_extractor)
            for clip in clips
        ]
        if len({e.shape[0] for e in embeddings}) > 1:
            raise ValueError(
                "Double guidance needs the same number of frames in every window of a batch; "
                f"got {[e.shape[0] for e in embeddings]}. Pass `num_frames=` or `window_batch_size=1`."
            )
        features = [
            features_over_window(e, clip.duration, window_seconds) for e, clip in zip(embeddings, clips)
        ]
        return torch.stack(features).to(device), torch.stack(embeddings).to(device)

    @torch.enable_grad()
    def alignment_guidance(
        self,
        noise_pred: torch.Tensor,
        latents: torch.Tensor,
        t: torch.Tensor,
        model_t: torch.Tensor,
        features: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        """Diff-Foley's second guidance: the noise prediction moved against the gradient of the
        alignment classifier's log-probability that (z_t, video) is a real, synchronized pair,
        ``eps - scale * sqrt(1 - alpha_bar_t) * grad log p(aligned | z_t)`` (classifier guidance in
        noise-prediction form). The gradient flows through the small classifier only, never the UNet.

        Args:
            noise_pred: the (classifier-free guided) noise prediction (B, C, H, W).
            latents: z_t (B, C, H, W); t / model_t: the timestep on the host / the device.
            features: (B, F, D) from :meth:`alignment_video_features`.
        """
        classifier = self.alignment_classifier
        z = self.scheduler.scale_model_input(latents, t).detach().to(classifier.dtype).requires_grad_(True)
        log_probability = torch.nn.functional.logsigmoid(classifier(z, model_t, features)).sum()
        (gradient,) = torch.autograd.grad(log_probability, z)
        sigma = (1 - self.scheduler.alphas_cumprod[int(t)]).sqrt()
        return noise_pred - scale * float(sigma) * gradient.to(noise_pred.dtype)

    def prepare_image_embeds(
        self,
        clips: list[VideoClip | None],
        video_embeds: torch.Tensor | None,
        semantic_scale: float,
        device,
        durations: Sequence[float] | None = None,
        visual_attention: str | None = None,
        visual_attention_window: float | None = None,
    ) -> dict | None:
        """The semantic adapter's input for a batch (``added_cond_kwargs`` of the UNet), or ``None``
        when the branch is off (no adapter, scale 0, or nothing to show it).

        Args:
            clips: each row's frames (``None``: no video for that row).
            video_embeds: precomputed CLIP embeddings (B, F, D) for the rows, else ``None``: each
                sampled frame's (F >= 1), spread uniformly over the row's duration; the mean-embedding
                adapter reads their mean.
            durations: each row's seconds (a row without a clip takes its frames' times from it).
            visual_attention, visual_attention_window: a frame-aligned adapter's mask and framewise
                window (s); ``None``: the adapter's own (its config).
        """
        has_video = any(c is not None for c in clips)
        if not (self.has_semantic_adapter and semantic_scale > 0 and (has_video or video_embeds is not None)):
            return None
        frame_aligned_adapter = self.semantic_adapter_kind == "frame_aligned"
        if video_embeds is None:
            video_embeds = self.encode_videos(clips, per_frame=frame_aligned_adapter)
        video_embeds = video_embeds.to(device=device, dtype=self.unet.dtype)
        if not frame_aligned_adapter:
            video_embeds = video_embeds.mean(dim=1, keepdim=True)
        # The negative is all zeros, as in the release.
        image_embeds = (
            torch.cat([torch.zeros_like(video_embeds), video_embeds])
            if self.do_classifier_free_guidance
            else video_embeds
        )
        semantic.set_semantic_scale(self.unet, semantic_scale)
        if not frame_aligned_adapter:
            return {"image_embeds": [image_embeds]}
        timeline = self.timeline()
        frames = video_embeds.shape[1]
        seconds = torch.stack(
            [
                torch.from_numpy(
                    timeline.frame_start_seconds(clip.duration if clip is not None else duration, frames)
                )
                for clip, duration in zip(clips, durations or [timeline.window_seconds] * len(clips))
            ]
        ).to(device=device, dtype=torch.float32)
        if self.do_classifier_free_guidance:
            seconds = torch.cat([seconds, seconds])
        config = self.unet.encoder_hid_proj.config
        semantic.set_frame_attention(
            self.unet,
            frame_aligned.FrameAttention(
                timeline,
                self.n_mels // self.vae_scale_factor,
                timeline.latent_columns,
                visual_attention or config.visual_attention,
                config.framewise_seconds if visual_attention_window is None else visual_attention_window,
            ),
        )
        return {"image_embeds": [image_embeds, seconds]}

    def detect_onsets(self, clip: VideoClip) -> np.ndarray:
        """Onset probability per sampled frame of ``clip`` (T,), from the onset detector."""
        probabilities = self.onset_detector.detect(clip.frames[None])
        return probabilities[0].float().cpu().numpy()

    def prepare_timestamp_masks(
        self,
        windows: list[generation.WindowInput],
        clips: list[VideoClip | None],
        timeline: Timeline,
        onset_probabilities: list | None,
        timestamp_masks: list | None,
        onset_threshold: float,
        onset_mask: str = "events",
    ) -> tuple[np.ndarray, list]:
        """One +-1 mask per row (B, window_columns), and the detector's probabilities per row
        (``None`` for rows whose mask did not come from them).

        Each row's mask comes from the first of: its given ``timestamp_masks`` entry, its window's
        given onsets, its given ``onset_probabilities`` entry, the onset detector on its frames;
        else no events (all -1). Detector probabilities become a mask as ``onset_mask`` says:
        ``"events"`` turns each run of onset frames into one onset time and marks it like a given
        onset (the masks the temporal controller trains on); ``"frames"`` gives each column its
        detector frame's decision (the release's construction)."""
        masks, detected = [], []
        for row, (window, clip) in enumerate(zip(windows, clips)):
            duration = window.duration
            probabilities = None
            if timestamp_masks is not None:
                mask = temporal.check_mask(timestamp_masks[row], timeline)
            elif window.onsets is not None:
                mask = temporal.mask_from_onset_times(window.onsets, duration, timeline)
            else:
                if onset_probabilities is not None:
                    probabilities = np.asarray(torch.as_tensor(onset_probabilities[row], dtype=torch.float32))
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
        return np.stack(masks), detected

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

    # -- denoising --------------------------------------------------------------------------------
    def denoise(
        self,
        latents: torch.Tensor,
        num_inference_steps: int,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        added_cond_kwargs: dict | None,
        condition: torch.Tensor | None,
        temporal_scale: float,
        generator,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        alignment_features: torch.Tensor | None = None,
        alignment_guidance_scale: float = 0.0,
        loudness_condition: torch.Tensor | None = None,
        loudness_scale: float = 1.0,
    ) -> torch.Tensor:
        """The denoising loop over one batch of windows: UNet (+ semantic adapter) and temporal
        controller, classifier-free guidance, one scheduler step per timestep.

        Args:
            latents: initial noise (B, C, n_mels / f, window_columns / f).
            prompt_embeds, negative_prompt_embeds: the rows' text states (B, L, H); a step callback
                may replace them (and ``latents``), as in diffusers.
            added_cond_kwargs: from :meth:`prepare_image_embeds` (``None``: the adapter is detached,
                so the UNet is exactly the base).
            condition: the controller's condition image (B or 2B, 1, n_mels, columns), or ``None``.
            alignment_features: the alignment classifier's video features (B, F, D) for double
                guidance (:meth:`alignment_guidance`), or ``None``.
            loudness_condition: the loudness controller's condition image (B or 2B, 1, n_mels,
                columns), or ``None``; its residuals add to the temporal controller's.

        Returns:
            the denoised latents.
        """
        device = latents.device
        # The scheduler keeps its timesteps on the CPU: its step reads the timestep's value on the
        # host (PNDM and DDIM index their CPU alphas with it, PNDM compares it with 0), which for a
        # timestep on a GPU would wait for the device at every step. The models get a device copy,
        # made once.
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        model_timesteps = timesteps.to(device)
        self._num_timesteps = len(timesteps)
        extra_step_kwargs = self._extra_step_kwargs(generator)
        do_cfg = self.do_classifier_free_guidance
        adapter_off = (
            semantic.detached_semantic_adapter(self.unet)
            if added_cond_kwargs is None
            else contextlib.nullcontext()
        )
        # Every controller that takes part, with its condition and weight; a module's dtype is
        # looked up once here (it walks all its parameters: ~10 ms a step for a tiny UNet).
        controllers = [
            (controller, controller.dtype, image, float(scale))
            for controller, image, scale in (
                (self.controlnet, condition, temporal_scale),
                (self.loudness_controller, loudness_condition, loudness_scale),
            )
            if image is not None and scale > 0
        ]
        conditions_once = contextlib.ExitStack()
        for controller, _, image, _ in controllers:
            conditions_once.enter_context(temporal.condition_embedded_once(controller, image))
        unet_dtype = self.unet.dtype

        def text_states():
            states = torch.cat([negative_prompt_embeds, prompt_embeds]) if do_cfg else prompt_embeds
            return {dtype: states.to(dtype) for dtype in {unet_dtype, *(c[1] for c in controllers)}}

        texts = text_states()
        with adapter_off, conditions_once, self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, (t, model_t) in enumerate(zip(timesteps, model_timesteps)):
                if self.interrupt:
                    continue
                model_input = torch.cat([latents] * 2) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                down_residuals = mid_residual = None
                for controller, dtype, image, scale in controllers:
                    down, mid = controller(
                        model_input.to(dtype),
                        model_t,
                        encoder_hidden_states=texts[dtype],
                        controlnet_cond=image,
                        conditioning_scale=scale,
                        return_dict=False,
                    )
                    if down_residuals is None:
                        down_residuals, mid_residual = down, mid
                    else:  # several controllers add up, as in diffusers' MultiControlNetModel
                        down_residuals = [a + b.to(a.dtype) for a, b in zip(down_residuals, down)]
                        mid_residual = mid_residual + mid.to(mid_residual.dtype)
                noise_pred = self.unet(
                    model_input,
                    model_t,
                    encoder_hidden_states=texts[unet_dtype],
                    added_cond_kwargs=added_cond_kwargs,
                    cross_attention_kwargs=self.cross_attention_kwargs,
                    down_block_additional_residuals=down_residuals,
                    mid_block_additional_residual=mid_residual,
                    return_dict=False,
                )[0]
                if do_cfg:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + self.guidance_scale * (noise_text - noise_uncond)
                if alignment_features is not None and alignment_guidance_scale > 0:
                    noise_pred = self.alignment_guidance(
                        noise_pred, latents, t, model_t, alignment_features, alignment_guidance_scale
                    )
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
                        self, i, model_t, {k: local[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    latents = outputs.pop("latents", latents)
                    new_prompt = outputs.pop("prompt_embeds", prompt_embeds)
                    new_negative = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                    if new_prompt is not prompt_embeds or new_negative is not negative_prompt_embeds:
                        prompt_embeds, negative_prompt_embeds = new_prompt, new_negative
                        texts = text_states()
                progress_bar.update()
        return latents

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> mel images (B, 3, n_mels, columns) in [0, 1]."""
        latents = denormalize_latents(self.vae.config, latents.to(self.vae.dtype))
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
    def autoencode_audio(
        self, waveform: np.ndarray | torch.Tensor, through_vae: bool = True, padding: str = "mirror"
    ) -> np.ndarray:
        """Audio through this model's mel image, VAE (encode, decode) and vocoder, without denoising.

        What survives the round trip bounds what any generation by this model can sound like: the
        benchmark's ``autoencoder_ceiling`` row (``vocoder_ceiling`` with ``through_vae=False``, which
        tells the VAE's losses from the vocoder's). The mel spectrogram is computed as training data
        is prepared (:class:`~foleycrafter.spectrogram.MelSpectrogram` at the vocoder's rate, hop
        and band count) and padded to whole windows (:meth:`audio_to_mel_image`); the whole image
        goes through the VAE at once.

        Args:
            waveform: mono float audio (samples,) at ``self.sample_rate``, in [-1, 1].
            through_vae: False skips the VAE: the mel image goes straight to the vocoder.
            padding: what follows the clip's end up to the window's: ``"mirror"`` or ``"silence"``
                (see :meth:`audio_to_mel_image`).

        Returns:
            float32 (samples,), the same length.
        """
        audio = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
        image = self.audio_to_mel_image(audio, padding=padding)
        image = image.to(device=self._execution_device, dtype=self.vae.dtype)
        if through_vae:
            image = self.autoencode_mel_image(image)
        decoded = self.mel_images_to_audio(image, [audio.numel() / self.timeline().sample_rate])
        return decoded[0].cpu().numpy().astype(np.float32)

    def audio_to_mel_image(
        self, waveform: np.ndarray | torch.Tensor, padding: str = "mirror"
    ) -> torch.Tensor:
        """The mel image of mono audio as :meth:`autoencode_audio` sends it on: computed as training
        data is prepared and padded to a whole number of windows, as generation renders them.

        Generation decodes whole windows and cuts the audio at the clip's end, so the image goes on
        past the end with more sound, not with a step down to silence. ``"mirror"`` (the default)
        continues the clip with its own columns reflected at its end (repeatedly, for a clip shorter
        than the padding), which keeps the spectrum continuous there. ``"silence"`` pads with the
        image's floor: the VAE smooths that step into a burst 30-60 ms before the clip's end, which
        the vocoder renders as an extra onset in most clips (43 of 45 extra onsets of the v2 tiny
        VAE on 100 validation clips; none with ``"mirror"``, which generation matches: v1's
        generated audio had 5 extra onsets in its last 100 ms over 200 test clips).

        Args:
            waveform: mono float audio (samples,) at ``self.sample_rate``, in [-1, 1].
            padding: ``"mirror"`` or ``"silence"``.

        Returns:
            float32 (1, 3, n_mels, columns) in [0, 1], on the CPU; ``columns`` a multiple of the
            model's window (``timeline().window_columns``), the clip in the first
            ``ceil(samples / hop_length)`` of them.
        """
        from .spectrogram import MelSpectrogram, log_mel_to_image

        if padding not in ("mirror", "silence"):
            raise ValueError(f"padding must be 'mirror' or 'silence', got {padding!r}.")
        audio = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
        if audio.ndim != 1 or audio.numel() == 0:
            raise ValueError(f"waveform must be mono audio of shape (samples,), got {tuple(audio.shape)}.")
        timeline = self.timeline()
        mel = MelSpectrogram(
            sample_rate=timeline.sample_rate, hop_length=timeline.hop_length, n_mels=self.n_mels
        )
        image = log_mel_to_image(mel(audio))
        clip_columns = min(math.ceil(audio.numel() / timeline.hop_length), image.shape[-1])
        window = timeline.window_columns
        columns = math.ceil(clip_columns / window) * window
        image = image[..., :clip_columns]
        if padding == "silence":
            return torch.nn.functional.pad(image, (0, columns - clip_columns))
        period = max(2 * clip_columns - 2, 1)
        position = torch.arange(columns) % period
        return image[..., torch.where(position < clip_columns, position, period - position)]

    @torch.no_grad()
    def autoencode_mel_image(self, image: torch.Tensor) -> torch.Tensor:
        """Mel images (B, 3, n_mels, columns) in [0, 1] through the VAE (encoded to the posterior
        mean, decoded): the same shape in [0, 1], on the VAE's device."""
        image = image.to(device=self._execution_device, dtype=self.vae.dtype)
        posterior = self.vae.encode(image * 2 - 1).latent_dist
        return self.decode_latents(normalize_latents(self.vae.config, posterior.mean))

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        video: VideoSource | list[VideoSource | None] | None = None,
        negative_prompt: str | list[str] | None = None,
        audio_length_in_s: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float = 7.5,
        semantic_scale: float = 1.0,
        temporal_scale: float | None = None,
        video_embeds: torch.Tensor | None = None,
        onsets: Sequence[float] | list[Sequence[float]] | None = None,
        onset_probabilities: np.ndarray | torch.Tensor | list | None = None,
        timestamp_mask: np.ndarray | torch.Tensor | list | None = None,
        onset_threshold: float | None = None,
        onset_mask: str | None = None,
        timing: str = "exact",
        num_frames: int | None = None,
        frame_short_side: int | None = None,
        window_overlap: float = 1.0,
        window_batch_size: int = 1,
        alignment_guidance_scale: float = 0.0,
        loudness=None,
        loudness_scale: float = 1.0,
        loudness_gain: float = 0.0,
        region=None,
        region_mode: str = "crop",
        visual_attention: str | None = None,
        visual_attention_window: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[Any, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> FoleyCrafterPipelineOutput | tuple:
        r"""Generate audio for a video (or for text alone).

        Args:
            prompt: text describing the sound (default '', the release's); one per output.
            video: per item, one of: a video file path (probed once, its frames decoded window by
                window: :mod:`foleycrafter.generation`), a probed file's
                :class:`~foleycrafter.video.VideoInfo`, a :class:`~foleycrafter.video.VideoClip`,
                uint8 frames (T, H, W, 3) (then ``audio_length_in_s`` gives their duration). One value
                is shared by every prompt; a list gives one per prompt (``None`` for an item generated
                from its text alone).
            negative_prompt: text to steer away from (default '').
            audio_length_in_s: seconds of audio; default: the video's duration, or one model window
                (10.24 s for Auffusion) without a video. Longer than one window: see ``window_overlap``.
            num_inference_steps: denoising steps; default: the model's ``default_num_inference_steps``
                (the release's 25 unless its folder names another, with the sampler saved beside it).
            guidance_scale: classifier-free guidance weight (release 7.5).
            semantic_scale: weight of the video's CLIP embedding (release 1.0; 0 disables the branch).
            temporal_scale: weight of the temporal controller (0 disables it); default: the model's
                ``default_temporal_scale`` (the release's 0.2 unless its folder names another).
            video_embeds: precomputed CLIP image embeddings instead of the video's: (B, F, D), each of F
                frames' spread over the audio (the mean-embedding adapter reads their mean, so (B, 1, D)
                or (B, D) is a clip's mean), for a frame-aligned adapter a token per frame.
            onsets: onset times in seconds instead of the detector: a sequence of numbers shared by
                every prompt, or a list with one sequence per prompt.
            onset_probabilities: per-frame probabilities instead of running the detector: (T,) shared,
                or (B, T) / a list of (T,) arrays, one per prompt.
            timestamp_mask: a ready +-1 mask: (columns,) shared, or (B, columns) / a list, one per prompt.
            onset_threshold: detector probability at or above which a frame counts as an onset;
                default: the onset detector's own (``onset_detector.config.threshold``, 0.5).
            onset_mask: how detector probabilities become the timestamp mask: ``"events"`` (each run
                of onset frames becomes one onset at the run's probability-weighted centre, marked
                for 0.1 s like a given onset: the masks the temporal controller is trained on) or
                ``"frames"`` (each mel column takes its detector frame's decision, as the release
                does). Default: ``"frames"`` with ``timing="release"``, else ``"events"``.
            timing: ``"exact"`` (100 mel columns/s, as the vocoder renders) or ``"release"`` (the
                release's 102.4 columns/s mapping, for reproducing its outputs).
            num_frames: frames sampled uniformly per window for CLIP and the detector; default: the
                model's ``timeline().detector_frames`` (the release's 150).
            frame_short_side: resize decoded frames so their shorter side has this many pixels (keeps
                memory flat for high-resolution video); ``None`` keeps full frames as the release does.
            window_overlap: seconds of overlap (at least) between neighbouring windows of a clip longer
                than one window; their audio is joined with an equal-power crossfade. Each window gets
                its own frames, onset mask and semantic embedding.
            window_batch_size: windows of such a clip denoised together in one batch (1: one at a
                time). Batching draws the same initial noise, so the mel images are the same up to
                float rounding (in float32 and float64 so is the audio; bf16's coarser rounding can
                shift a Griffin-Lim vocoder's phases). It can pay where one window leaves the device
                idle (a small model; a GPU, unmeasured), and costs memory in proportion
                (bench/batching.py).
            alignment_guidance_scale: weight of Diff-Foley's double guidance, the gradient of the
                pipeline's ``alignment_classifier`` at every step (:meth:`alignment_guidance`); 0 (the
                default) switches it off. Needs a video for every item.
            loudness: how loud each moment should be, for the pipeline's ``loudness_controller``: points
                ``(times, levels)`` (seconds from the clip's start, dBFS, joined by straight lines),
                a dict ``{"times": [...], "db": [...]}``, or one dBFS value per mel column of the
                clip (:func:`foleycrafter.loudness.loudness_points`); or ``"video"``: the pipeline's
                ``loudness_predictor`` reads it off each window's frames. Shared by every prompt, or a
                list with one per prompt. A long clip's windows each take their stretch of it.
            loudness_scale: weight of the loudness controller (0 switches it off).
            loudness_gain: a gain stage after the vocoder that moves the audio's level towards the
                curve, this share of the way in dB (0, the default: off; 1: onto the curve wherever
                the audio has sound, raising by at most 36 dB): volume automation as an editor
                would draw it, :func:`foleycrafter.loudness.follow_loudness`. It scales what the
                model generated and adds no sound. Works without a loudness controller
                (``loudness_scale=0``). Meant for measured curves: a rough drawing's line over the
                quiet gaps between events would raise them.
            region: the part of the picture that sounds: a box ``(x0, y0, x1, y1)`` in relative
                coordinates or a mask ``(H, W)`` (or ``(T, H, W)``, one per sampled frame, for a clip
                of one window); the semantic branch, the onset detector, the loudness predictor and
                double guidance then see only it (:mod:`foleycrafter.region`). Shared by every
                prompt, or a list with one per prompt (``None`` for the whole picture).
            region_mode: ``"crop"`` (frames cut to the region's bounding box) or ``"mask"`` (grey
                outside it).
            visual_attention: for a frame-aligned semantic adapter, which frames each moment of the
                audio attends to: ``"all"``, ``"causal"`` (frames up to that moment) or
                ``"framewise"`` (frames within ``visual_attention_window`` seconds around it);
                ``None``: the adapter's own (:mod:`foleycrafter.frame_aligned`).
            visual_attention_window: the framewise window (s); ``None``: the adapter's own.
            generator, latents, prompt_embeds, negative_prompt_embeds: as in diffusers. The windows of
                a long clip draw their noise from its generator in turn.
            output_type: ``"np"`` (numpy audio), ``"pt"`` (torch audio), or ``"latent"``.
            cross_attention_kwargs: passed to the UNet's attention processors; ``{"scale": s}`` weights
                loaded LoRA layers (UNet and text encoder), as in diffusers.
            callback_on_step_end: called after each denoising step as
                ``callback(pipe, step, timestep, {name: tensor})`` with the tensors named by
                ``callback_on_step_end_tensor_inputs`` (``latents``, ``prompt_embeds``,
                ``negative_prompt_embeds``); the tensors it returns replace them. Set
                ``pipe._interrupt = True`` in it to skip the remaining steps.

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

        # 1. Check inputs (no file is read yet)
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
            num_frames,
            cross_attention_kwargs,
            alignment_guidance_scale,
            loudness,
            loudness_scale,
            region,
            region_mode,
            visual_attention,
            visual_attention_window,
            loudness_gain,
        )
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = cross_attention_kwargs
        self._interrupt = False
        onset_threshold = temporal.onset_threshold(onset_threshold, self.onset_detector)
        if onset_mask is None:
            onset_mask = "frames" if timing == "release" else "events"
        num_frames = num_frames or self.timeline().detector_frames
        batch_size = _batch_size(prompt, prompt_embeds)
        device = self._execution_device
        mask_timeline = self.timeline(timing)
        videos = video if isinstance(video, list) else [video] * batch_size
        onsets = _per_item("onsets", onsets, batch_size, item_ndim=1)
        onset_probabilities = _per_item("onset_probabilities", onset_probabilities, batch_size, item_ndim=1)
        timestamp_mask = _per_item("timestamp_mask", timestamp_mask, batch_size, item_ndim=1)
        loudness = _per_item_loudness(loudness, batch_size)
        regions = _per_item_region(region, batch_size) if region is not None else None
        if video_embeds is not None:
            video_embeds = _as_embeds(video_embeds, batch_size)

        # 2. Plan each item's model windows (a video file is probed here, once)
        plans = generation.plan_items(
            videos, audio_length_in_s, onsets or [None] * batch_size, self.timeline(), window_overlap
        )
        self.check_windows(
            plans,
            **{
                "a batch of prompts": batch_size > 1,
                "latents": latents is not None,
                "onset_probabilities": onset_probabilities is not None,
                "timestamp_mask": timestamp_mask is not None,
                "a region mask per frame": regions is not None
                and any(r is not None and np.ndim(r) == 3 for r in regions),
            },
        )
        # Each item's curve as points in seconds, checked against its duration (now known)
        loudness_points = None
        if loudness is not None and (loudness_scale > 0 or loudness_gain > 0):
            loudness_points = [
                curve
                if curve is None or isinstance(curve, str)
                else loudness_lib.loudness_points(
                    curve, plan.duration, mask_timeline, "loudness" if batch_size == 1 else f"loudness[{i}]"
                )
                for i, (curve, plan) in enumerate(zip(loudness, plans))
            ]

        # 3. Encode the text, once per prompt
        lora_scale = (cross_attention_kwargs or {}).get("scale")
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt,
            device,
            self.do_classifier_free_guidance,
            negative_prompt,
            prompt_embeds,
            negative_prompt_embeds,
            lora_scale=lora_scale,
        )

        # 4-9. Each batch of windows: frames -> conditions -> noise -> denoised latents -> audio
        batches = generation.denoising_batches(plans, window_batch_size)
        mel_images, audios, masks, curves, probabilities = [], [], [], [], []
        for batch in self.progress_bar(batches) if len(batches) > 1 else batches:
            rows = [window.item for window in batch]
            # 4. Decode the frames each window shows
            clips = self.decode_frames(batch, num_frames, frame_short_side)
            if regions is not None:  # everything that reads the picture sees only the region
                clips = [region_clip(c, r, region_mode) for c, r in zip(clips, _rows(regions, rows))]
            # 5. Semantic condition: CLIP embeddings of the frames (their mean, or one token per frame).
            # Double guidance needs each frame's embedding too: computed once for both.
            alignment_features = frame_embeds = None
            if alignment_guidance_scale > 0:
                alignment_features, frame_embeds = self.alignment_video_features(clips, device)
            rows_embeds = video_embeds[rows] if video_embeds is not None else frame_embeds
            added_cond_kwargs = self.prepare_image_embeds(
                clips,
                rows_embeds,
                semantic_scale,
                device,
                [w.duration for w in batch],
                visual_attention,
                visual_attention_window,
            )
            # 6. Temporal condition: timestamp masks -> condition images (1 x n_mels x columns)
            batch_masks, batch_probabilities, condition = self.prepare_temporal_condition(
                batch,
                clips,
                mask_timeline,
                _rows(onset_probabilities, rows),
                _rows(timestamp_mask, rows),
                onset_threshold,
                onset_mask,
                temporal_scale,
                device,
            )
            # 6b. Loudness condition: each window's stretch of its item's curve
            batch_curves, loudness_condition = self.prepare_loudness_condition(
                batch, clips, _rows(loudness_points, rows), mask_timeline, device, loudness_scale
            )
            # 7. Initial noise
            batch_generator = _batch_generator(generator, rows)
            batch_latents = self.prepare_latents(
                len(batch), self.unet.dtype, device, batch_generator, latents
            )
            # 8. Denoise
            batch_latents = self.denoise(
                batch_latents,
                num_inference_steps,
                prompt_embeds[rows],
                negative_prompt_embeds[rows] if negative_prompt_embeds is not None else None,
                added_cond_kwargs,
                condition,
                temporal_scale,
                batch_generator,
                callback_on_step_end,
                callback_on_step_end_tensor_inputs,
                alignment_features,
                alignment_guidance_scale,
                loudness_condition,
                loudness_scale,
            )
            # 9. Latents -> mel images -> waveforms cut to each window's duration
            if output_type == "latent":
                mel_images.append(batch_latents)
            else:
                batch_mel_images = self.decode_latents(batch_latents)
                mel_images.append(batch_mel_images)
                batch_audios = self.mel_images_to_audio(batch_mel_images, [w.duration for w in batch])
                if loudness_gain > 0 and batch_curves is not None:
                    batch_audios = self.apply_loudness_gain(
                        batch_audios, batch_curves, _rows(loudness_points, rows), mask_timeline, loudness_gain
                    )
                audios.extend(batch_audios)
            masks.append(batch_masks)
            curves.append(batch_curves)
            probabilities.extend(batch_probabilities)

        # 10. Join each item's windows; output
        output = self.join_output(plans, audios, mel_images, masks, probabilities, output_type, curves)
        self.maybe_free_model_hooks()
        if not return_dict:
            return output.audios, self.sample_rate
        return output

    def prepare_temporal_condition(
        self,
        windows,
        clips,
        timeline: Timeline,
        onset_probabilities: list | None,
        timestamp_masks: list | None,
        onset_threshold: float,
        onset_mask: str,
        temporal_scale: float,
        device,
    ) -> tuple[np.ndarray | None, list, torch.Tensor | None]:
        """The temporal controller's input for a batch: ``(masks (B, columns), the detector's
        probabilities per row, condition image (B or 2B, 1, n_mels, columns))``, or
        ``(None, [None] * B, None)`` when the controller does not take part: none loaded, scale 0,
        or nothing to say where the events are (no frames, onsets, probabilities or mask)."""
        in_use = (
            self.controlnet is not None
            and temporal_scale > 0
            and (
                any(c is not None for c in clips)
                or any(w.onsets is not None for w in windows)
                or onset_probabilities is not None
                or timestamp_masks is not None
            )
        )
        if not in_use:
            return None, [None] * len(windows), None
        masks, probabilities = self.prepare_timestamp_masks(
            windows, clips, timeline, onset_probabilities, timestamp_masks, onset_threshold, onset_mask
        )
        condition = temporal.mask_to_condition(masks, self.n_mels).to(
            device=device, dtype=self.controlnet.dtype
        )
        if self.do_classifier_free_guidance:
            condition = torch.cat([condition, condition])
        return masks, probabilities, condition

    def predict_loudness(self, clip: VideoClip, duration: float, timeline: Timeline) -> np.ndarray:
        """The loudness predictor's curve for one window's frames: float32 ``(window_columns,)``
        dBFS, the floor after ``duration``."""
        from .models.loudness import levels_to_curve

        levels = self.loudness_predictor.predict(clip.frames)[0].numpy()
        curve = np.full(timeline.window_columns, loudness_lib.LOUDNESS_FLOOR_DB, dtype=np.float32)
        predicted = levels_to_curve(levels, duration, timeline)[: timeline.active_columns(duration)]
        curve[: predicted.size] = predicted
        return curve

    def prepare_loudness_condition(
        self, windows, clips, points: list | None, timeline: Timeline, device, loudness_scale: float = 1.0
    ) -> tuple[np.ndarray | None, torch.Tensor | None]:
        """The loudness controller's input for a batch: ``(curves (B, columns) in dBFS, condition
        image (B or 2B, 1, n_mels, columns))``, or ``(None, None)`` when no curve was given; the
        condition is ``None`` when ``loudness_scale`` is 0 (the curves then serve the gain stage
        alone). A window of an item without a curve gets a silent one; an item whose curve is
        ``"video"`` gets the loudness predictor's for its window's frames."""
        if points is None or all(p is None for p in points):
            return None, None

        def window_curve(window, clip, item_points):
            if item_points is None:
                return np.full(timeline.window_columns, loudness_lib.LOUDNESS_FLOOR_DB, dtype=np.float32)
            if isinstance(item_points, str):
                return self.predict_loudness(clip, window.duration, timeline)
            start = window.video_window.start_seconds
            return loudness_lib.window_loudness(item_points, start, window.duration, timeline)

        curves = np.stack([window_curve(*args) for args in zip(windows, clips, points)])
        if loudness_scale == 0 or self.loudness_controller is None:
            return curves, None
        condition = loudness_lib.loudness_to_condition(curves, self.n_mels).to(
            device=device, dtype=self.loudness_controller.dtype
        )
        if self.do_classifier_free_guidance:
            condition = torch.cat([condition, condition])
        return curves, condition

    def apply_loudness_gain(
        self,
        audios: list[torch.Tensor],
        curves: np.ndarray,
        points: list,
        timeline: Timeline,
        strength: float,
    ) -> list[torch.Tensor]:
        """The gain stage on a batch of windows' waveforms: each moves ``strength`` of the way to its
        window's curve (``curves``: (B, columns) dBFS on ``timeline``), measured on the audio's own
        mel columns (exact timing); a window of an item without a curve is left as it is. Windows
        are shaped before they are joined, so overlaps cross-fade two shaped stretches."""
        exact = self.timeline()
        shaped = []
        for audio, curve, item_points in zip(audios, curves, points):
            if item_points is None:
                shaped.append(audio)
                continue
            columns = exact.active_columns(audio.shape[-1] / exact.sample_rate)
            centres = (np.arange(columns) + 0.5) / exact.columns_per_second
            own = (np.arange(curve.size) + 0.5) / timeline.columns_per_second
            target = np.interp(centres, own, curve)
            wave = loudness_lib.follow_loudness(audio.float().cpu(), target, exact, strength)
            shaped.append(torch.from_numpy(wave).to(device=audio.device, dtype=audio.dtype))
        return shaped

    def join_output(self, plans, audios, mel_images, masks, probabilities, output_type, curves=()):
        """Per-window results -> :class:`FoleyCrafterPipelineOutput`: each item's windows joined into
        its waveform (:func:`foleycrafter.generation.join_items`); mel images, masks and
        probabilities kept per window."""
        mel_images = torch.cat(mel_images)
        if audios:
            if any(len(plan.windows) > 1 for plan in plans):
                joined = generation.join_items(plans, [a.cpu().numpy() for a in audios])
                audios = joined if output_type == "np" else [torch.from_numpy(a) for a in joined]
            elif output_type == "np":
                audios = [a.cpu().numpy().astype(np.float32) for a in audios]
        if output_type == "np":
            mel_images = mel_images.float().cpu().numpy()
        return FoleyCrafterPipelineOutput(
            audios=audios,
            sample_rate=self.sample_rate,
            mel_images=mel_images,
            onset_probabilities=probabilities if any(p is not None for p in probabilities) else None,
            timestamp_masks=np.concatenate(masks) if all(m is not None for m in masks) else None,
            loudness_curves=np.concatenate(curves) if curves and all(c is not None for c in curves) else None,
            durations=[plan.duration for plan in plans],
            windows=[window.video_window.span for plan in plans for window in plan.windows],
        )

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
        return
    if isinstance(item, (VideoClip, VideoInfo)):
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
        f"`{name}` must be a video file path, a VideoInfo, a VideoClip or a (T, H, W, 3) uint8 array, "
        f"got {type(item).__name__}."
    )


def _per_item(name: str, value, batch: int, item_ndim: int) -> list | None:
    """One value per item, from an argument documented as either shared or per item.

    Shared: an array or tensor of ``item_ndim`` dimensions, or a sequence of numbers. Per item: an
    array or tensor with one more dimension (its first is the batch), or a list whose entries are
    sequences or arrays (one per item). Anything else is passed on as shared, for the value's own
    check to judge.
    """
    if value is None:
        return None
    if isinstance(value, (np.ndarray, torch.Tensor)):
        per_item = value.ndim == item_ndim + 1
    else:
        per_item = len(value) > 0 and all(
            isinstance(v, (list, tuple, np.ndarray, torch.Tensor)) for v in value
        )
    if not per_item:
        return [value] * batch
    if len(value) != batch:
        raise ValueError(
            f"`{name}` has {len(value)} per-item entries for a batch of {batch}; give one per prompt."
        )
    return list(value)


def _per_item_region(region, batch: int) -> list:
    """One region per item: shared by every prompt, or (for a batch) a list of one per prompt."""
    if (
        batch > 1
        and isinstance(region, list)
        and len(region) == batch
        and all(r is None or np.ndim(r) >= 1 for r in region)
    ):
        return list(region)
    return [region] * batch


def _every_item_has_video(video) -> bool:
    return video is not None and not (isinstance(video, list) and any(item is None for item in video))


def _per_item_loudness(loudness, batch: int) -> list | None:
    """One curve per item from ``loudness``: shared by every prompt, or (for a batch of prompts) a
    list with one curve per prompt, or a (B, columns) array. A list of ``[seconds, dB]`` pairs is one
    curve only for a single prompt; a batch shares points given as a ``(times, levels)`` tuple or dict."""
    if loudness is None:
        return None
    if batch > 1:
        if (
            isinstance(loudness, (np.ndarray, torch.Tensor))
            and loudness.ndim == 2
            and loudness.shape[0] == batch
        ):
            return list(loudness)
        if (
            isinstance(loudness, list)
            and loudness
            and all(isinstance(v, (dict, list, tuple, str, np.ndarray, torch.Tensor)) for v in loudness)
        ):
            if len(loudness) != batch:
                raise ValueError(
                    f"`loudness` has {len(loudness)} per-item curves for a batch of {batch}; give one per prompt."
                )
            return list(loudness)
    return [loudness] * batch


def _rows(values: list | None, rows: list[int]) -> list | None:
    return None if values is None else [values[row] for row in rows]


def _batch_generator(generator, rows: list[int]):
    """The generator(s) a batch draws its noise from: one per prompt for a batch of prompts; the
    clip's own for the windows of one clip (they draw from it in turn, batched or not)."""
    if isinstance(generator, list) and len(set(rows)) < len(rows):
        return generator[rows[0]]
    return generator  # one per prompt: prepare_latents checks the count against the batch


def _as_embeds(video_embeds: torch.Tensor, batch_size: int) -> torch.Tensor:
    embeds = torch.as_tensor(video_embeds)
    if embeds.ndim == 2:
        embeds = embeds[:, None]
    if embeds.ndim != 3:
        raise ValueError(
            f"`video_embeds` must have shape (B, F, D) (F frames' embeddings, or F = 1 for a clip's mean) "
            f"or (B, D), got {tuple(video_embeds.shape)}."
        )
    if embeds.shape[0] == 1 and batch_size > 1:
        embeds = embeds.expand(batch_size, -1, -1)
    if embeds.shape[0] != batch_size:
        raise ValueError(f"`video_embeds` has {embeds.shape[0]} rows for {batch_size} prompts.")
    return embeds


def _hub_kwargs(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
