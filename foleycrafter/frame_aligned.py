"""Frame-aligned semantic adapter: each moment of the audio attends to the video frames of that moment.

The released semantic adapter averages the window's CLIP frame embeddings into one vector (4
tokens), so every mel column sees the same summary of the whole window. This adapter keeps one token
per sampled frame instead, adds the frame's time as a sinusoidal position embedding (as VTA-LDM and
Diff-Foley add positions to time-aligned visual features), and lets each query of the UNet's
cross-attention see only the frames its time allows (FoleyGen's three visual attention masks):

* ``all``: every frame of the window;
* ``causal``: the frames shown at or before the query's time;
* ``framewise``: the frames shown within ``framewise_seconds / 2`` of the query's time.

In every mode a query also sees the frame on screen at its time, so none is left with nothing to
attend to (a query before the first frame's time, or a zero-width framewise window).

It plugs into diffusers exactly where an IP-Adapter does: :class:`FrameTokenProjection` is the UNet's
``encoder_hid_proj`` (``encoder_hid_dim_type="ip_image_proj"``), fed through ``added_cond_kwargs=
{"image_embeds": [frame_embeds, frame_seconds]}``, and :class:`FrameAlignedAttnProcessor` is the
decoupled cross-attention processor of every cross-attention layer, with the IP-Adapter's
``to_k_ip`` / ``to_v_ip`` weights (so the weights file keeps the IP-Adapter layout). A query's time
comes from its column in the feature map: the processors are told the latent's size once per call
(:class:`FrameAttention`, set by :func:`foleycrafter.semantic.set_frame_attention`), and the time
axis is the :class:`~foleycrafter.timeline.Timeline`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .defaults import VISUAL_ATTENTION_MODES
from .timeline import Timeline

__all__ = ["VISUAL_ATTENTION_MODES", "FrameAlignedAttnProcessor", "FrameAttention", "FrameTokenProjection"]
#: The native files, in a pipeline folder's ``semantic_adapter/`` (the mean adapter's is
#: ``ip_adapter.safetensors``): weights in the IP-Adapter layout, and the projection's config.
WEIGHT_NAME = "frame_aligned.safetensors"
CONFIG_NAME = "frame_aligned.json"


def check_visual_attention(mode, framewise_seconds=None) -> None:
    """Raise ``ValueError`` unless ``mode`` names a visual attention mask and the framewise window is
    non-negative seconds."""
    if mode not in VISUAL_ATTENTION_MODES:
        raise ValueError(f"visual_attention must be one of {VISUAL_ATTENTION_MODES}, got {mode!r}.")
    if framewise_seconds is not None and not (
        isinstance(framewise_seconds, (int, float))
        and math.isfinite(framewise_seconds)
        and framewise_seconds >= 0
    ):
        raise ValueError(
            f"the framewise attention window must be non-negative seconds, got {framewise_seconds!r}."
        )


def visual_attention_mask(
    query_seconds: torch.Tensor, token_seconds: torch.Tensor, mode: str, framewise_seconds: float = 0.0
) -> torch.Tensor | None:
    """Which frame tokens each query may attend to.

    Args:
        query_seconds: (Q,) the time of each query (s from the window's start).
        token_seconds: (B, F) when each frame comes on screen (s from the window's start), ascending
            along F.
        mode: one of :data:`VISUAL_ATTENTION_MODES`.
        framewise_seconds: the width of the ``framewise`` window (s), centred on the query.
    Returns:
        bool (B, Q, F), True where the query sees the token; ``None`` for ``all`` (no mask).
    """
    check_visual_attention(mode, framewise_seconds)
    if mode == "all":
        return None
    queries = query_seconds.to(token_seconds)[None, :, None]
    tokens = token_seconds[:, None, :]
    shown = tokens <= queries
    # The frame on screen at the query's time (the first frame for a query before it).
    on_screen = (shown.sum(dim=-1, keepdim=True) - 1).clamp(min=0)
    allowed = torch.zeros_like(shown).scatter_(-1, on_screen, True)
    if mode == "causal":
        return allowed | shown
    return allowed | ((tokens - queries).abs() <= framewise_seconds / 2 + 1e-9)


def feature_map_size(sequence: int, latent_height: int, latent_width: int) -> tuple[int, int, int]:
    """``(height, width, stride)`` of the UNet feature map flattened into ``sequence`` positions: the
    latent halved ``log2(stride)`` times (each halving rounds up, as diffusers' strided convolutions
    do)."""
    stride = 1
    while True:
        height, width = -(-latent_height // stride), -(-latent_width // stride)
        if height * width == sequence:
            return height, width, stride
        if height * width < sequence or stride > latent_height * latent_width:
            raise ValueError(
                f"A cross-attention layer has {sequence} queries, which is no level of a "
                f"{latent_height} x {latent_width} latent; the frame-aligned adapter was set up for "
                f"another latent size."
            )
        stride *= 2


@dataclass
class FrameAttention:
    """What the processors need to know of one generation call to place each query in time: the
    latent's size, the time axis, and the visual attention mask to apply."""

    timeline: Timeline
    latent_height: int
    latent_width: int
    mode: str = "framewise"
    framewise_seconds: float = 0.5
    _query_seconds: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        check_visual_attention(self.mode, self.framewise_seconds)

    def query_seconds(self, sequence: int) -> torch.Tensor:
        """(sequence,) the time of each position of a flattened (height x width) feature map."""
        if sequence not in self._query_seconds:
            height, width, stride = feature_map_size(sequence, self.latent_height, self.latent_width)
            columns = torch.from_numpy(self.timeline.feature_column_seconds(width, stride))
            self._query_seconds[sequence] = columns.repeat(height)
        return self._query_seconds[sequence]

    def mask(self, sequence: int, token_seconds: torch.Tensor) -> torch.Tensor | None:
        """bool (B, 1, sequence, F) for ``scaled_dot_product_attention``, or ``None`` (``all``)."""
        mask = visual_attention_mask(
            self.query_seconds(sequence).to(token_seconds.device),
            token_seconds,
            self.mode,
            self.framewise_seconds,
        )
        return None if mask is None else mask[:, None]


class FrameTokenProjection(ModelMixin, ConfigMixin):
    """Per-frame CLIP image embeddings and their times -> one cross-attention token per frame.

    ``token = LayerNorm(W e) + P(sin/cos(2 pi t / period))``: the embedding's projection (as the
    IP-Adapter's image projection, one token instead of four) plus a learned projection of
    sinusoidal features of the frame's time, with periods spaced geometrically between
    ``min_period_seconds`` and ``max_period_seconds``. The visual attention mode the adapter was
    trained with, and the framewise window, are part of its config (the pipeline's default).
    """

    config_name = CONFIG_NAME

    @register_to_config
    def __init__(
        self,
        clip_dim: int = 1024,
        cross_attention_dim: int = 768,
        time_channels: int = 32,
        min_period_seconds: float = 0.1,
        max_period_seconds: float = 20.0,
        visual_attention: str = "framewise",
        framewise_seconds: float = 0.5,
    ):
        super().__init__()
        check_visual_attention(visual_attention, framewise_seconds)
        if time_channels <= 0 or time_channels % 2:
            raise ValueError(f"time_channels must be a positive even number, got {time_channels!r}.")
        if not 0 < min_period_seconds < max_period_seconds:
            raise ValueError(
                "the time embedding's periods need 0 < min_period_seconds < max_period_seconds, got "
                f"{min_period_seconds!r} and {max_period_seconds!r}."
            )
        self.proj = torch.nn.Linear(clip_dim, cross_attention_dim)
        self.norm = torch.nn.LayerNorm(cross_attention_dim)
        self.time_proj = torch.nn.Linear(time_channels, cross_attention_dim)
        periods = torch.logspace(
            math.log10(min_period_seconds), math.log10(max_period_seconds), time_channels // 2
        )
        self.register_buffer("frequencies", 2 * math.pi / periods, persistent=False)

    def time_features(self, seconds: torch.Tensor) -> torch.Tensor:
        """(B, F) seconds -> (B, F, time_channels) sinusoidal features (computed in float32)."""
        phase = seconds.float()[..., None] * self.frequencies.float()
        return torch.cat([phase.sin(), phase.cos()], dim=-1)

    def forward(self, image_embeds: list[torch.Tensor]) -> list[torch.Tensor]:
        """``[embeds (B, F, clip_dim), seconds (B, F)]`` -> ``[tokens (B, F, cross_attention_dim),
        seconds (B, F)]`` (the seconds pass on to the attention processors for their masks)."""
        if not isinstance(image_embeds, (list, tuple)) or len(image_embeds) != 2:
            raise ValueError(
                "The frame-aligned semantic adapter takes image_embeds=[frame_embeds (B, F, D), "
                "frame_seconds (B, F)]; got something else (a mean-embedding adapter's input?)."
            )
        embeds, seconds = image_embeds
        if embeds.ndim != 3 or seconds.shape != embeds.shape[:2]:
            raise ValueError(
                f"frame embeddings must be (B, F, D) with seconds (B, F); got {tuple(embeds.shape)} and "
                f"{tuple(seconds.shape)}."
            )
        weight = self.proj.weight
        tokens = self.norm(self.proj(embeds.to(weight.dtype)))
        tokens = tokens + self.time_proj(self.time_features(seconds).to(weight.dtype))
        return [tokens, seconds]


class FrameAlignedAttnProcessor(torch.nn.Module):
    """Decoupled cross-attention over text tokens and frame tokens, the frame tokens masked by time.

    ``out = attention(q, text) + scale * attention(q, frames | mask)``, with the frames' keys and
    values from ``to_k_ip`` / ``to_v_ip`` (the IP-Adapter's names and shapes, so the weights file keeps
    that layout). ``encoder_hidden_states`` is ``(text_states, [tokens, token_seconds])``, as the UNet
    builds it from :class:`FrameTokenProjection`.
    """

    def __init__(self, hidden_size: int, cross_attention_dim: int, scale: float = 1.0):
        super().__init__()
        self.hidden_size, self.cross_attention_dim = hidden_size, cross_attention_dim
        self.to_k_ip = torch.nn.ModuleList([torch.nn.Linear(cross_attention_dim, hidden_size, bias=False)])
        self.to_v_ip = torch.nn.ModuleList([torch.nn.Linear(cross_attention_dim, hidden_size, bias=False)])
        self.scale = [float(scale)]
        self.frame_attention: FrameAttention | None = None

    @staticmethod
    def _heads(attn, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, attn.heads, width // attn.heads).transpose(1, 2)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        if not isinstance(encoder_hidden_states, tuple):
            raise ValueError(
                "This UNet carries a frame-aligned semantic adapter: its cross-attention needs the frame "
                "tokens (pass added_cond_kwargs={'image_embeds': [frame_embeds, frame_seconds]}), or detach "
                "the adapter (foleycrafter.semantic.detached_semantic_adapter)."
            )
        if self.frame_attention is None:
            raise RuntimeError(
                "The frame-aligned adapter's processors do not know the latent's size: call "
                "foleycrafter.semantic.set_frame_attention(unet, ...) before the UNet."
            )
        text, (tokens, token_seconds) = encoder_hidden_states
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        spatial = hidden_states.ndim == 4
        if spatial:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch, sequence, _ = hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, text.shape[1], batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)

        query = self._heads(attn, attn.to_q(hidden_states))
        key, value = self._heads(attn, attn.to_k(text)), self._heads(attn, attn.to_v(text))
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        if self.scale[0] != 0:
            tokens = tokens.to(query.dtype)
            frame_key = self._heads(attn, self.to_k_ip[0](tokens))
            frame_value = self._heads(attn, self.to_v_ip[0](tokens))
            mask = self.frame_attention.mask(sequence, token_seconds)
            frames = F.scaled_dot_product_attention(query, frame_key, frame_value, attn_mask=mask)
            out = out + self.scale[0] * frames
        out = out.transpose(1, 2).reshape(batch, sequence, -1).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if spatial:
            out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
