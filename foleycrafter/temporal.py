"""Temporal controller: when the video shows an event, the audio has one.

The controller is a diffusers ``ControlNetModel`` copied from the UNet's encoder
(``ControlNetModel.from_unet(unet, conditioning_channels=1)``) and conditioned on a *timestamp
mask*: one value per mel column, +1 where a sound event is on and -1 elsewhere, repeated over the
mel bands into a 1 x n_mels x window_columns image.

A mask comes from one of three places, each with a builder here:

* onset probabilities of the video's sampled frames (the onset detector), thresholded;
* a list of onset times in seconds (the user, or ground truth);
* a mask the caller built (validated and padded).

All seconds <-> mel-column arithmetic goes through :class:`~foleycrafter.timeline.Timeline`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Sequence

import numpy as np
import torch
from diffusers import ControlNetModel

from .models.onset import DEFAULT_ONSET_THRESHOLD, onset_frames
from .release import load_checked, load_torch_pickle, unwrap_state_dict
from .timeline import Timeline

DEFAULT_EVENT_SECONDS = 0.1


def onset_threshold(threshold: float | None, detector=None, name: str = "`onset_threshold`") -> float:
    """The onset threshold a call uses: ``threshold`` if given, else the detector's own
    (``detector.config.threshold``), else the release's 0.5. A frame is an onset when its
    probability is at or above it (:func:`~foleycrafter.models.onset.onset_frames`).

    Raises:
        ValueError: the threshold is not a probability strictly between 0 and 1.
    """
    if threshold is None:
        threshold = float(detector.config.threshold) if detector is not None else DEFAULT_ONSET_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {threshold!r}.")
    return float(threshold)


def parse_onset_times(text: str | None, duration: float | None = None) -> list[float] | None:
    """Onset times typed by a person (the command line's ``--onsets``, the demo's text field, a
    captions file's ``onsets`` column), in seconds.

    Args:
        text: times separated by commas, semicolons or spaces, each optionally ending in ``s``
            (``"0.5, 1.2s"``); ``"none"`` means no sound events; empty means "not given" (the
            onset detector decides).
        duration: the clip's length in seconds, if known: every time must lie in ``[0, duration)``.

    Returns:
        sorted, distinct times in seconds; ``[]`` for ``"none"``; ``None`` for an empty text.

    Raises:
        ValueError: an entry is not a number, is negative, or lies at or after ``duration``.
    """
    text = (text or "").strip()
    if not text:
        return None
    if text.lower() == "none":
        return []
    times = []
    for item in re.split(r"[,;\s]+", text):
        if not item:
            continue
        try:
            value = float(item.removesuffix("s"))
        except ValueError:
            raise ValueError(
                f"Onset times: `{item}` is not a number. Write seconds separated by commas, e.g. `0.5, 1.2`."
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"Onset times: `{item}` is not a time; times are seconds from the start (>= 0).")
        if duration is not None and value >= duration:
            raise ValueError(
                f"Onset times: {value:g} s is at or after the end of the video ({duration:.2f} s); "
                "remove it or move it earlier."
            )
        times.append(value)
    return sorted(set(times))


def controller_from_unet(unet, **kwargs) -> ControlNetModel:
    """A fresh temporal controller initialised from ``unet``'s encoder (1 conditioning channel).

    Extra keyword arguments go to ``ControlNetModel.from_unet`` (e.g. a smaller
    ``conditioning_embedding_out_channels`` for tiny models).
    """
    kwargs.setdefault("conditioning_channels", 1)
    return ControlNetModel.from_unet(unet, **kwargs)


def initialize_condition_embedding(
    controller: ControlNetModel, generator: torch.Generator | None = None
) -> None:
    """Re-initialise a new controller's condition embedder so that the mask reaches its output.

    With PyTorch's default initialisation, each of the embedder's narrow SiLU convolutions shrinks
    the difference between two masks ~3x: in v2's first controller (widths 4-8-16-32, six layers)
    two masks with different onsets gave outputs differing by 6e-4 of their size, the controller
    never learned where the events are, and its training loss stayed within 0.5 % of the semantic
    stage's. Kaiming-normal weights (zero biases) keep that difference at the scale of the output.
    The zero-initialised ``conv_out`` stays zero, so a new controller still starts as a no-op.
    """
    embedder = controller.controlnet_cond_embedding
    for conv in (embedder.conv_in, *embedder.blocks):
        with torch.no_grad():
            weight = torch.empty_like(conv.weight)
            torch.nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
            conv.weight.copy_(weight)
            conv.bias.zero_()


class _FixedEmbedding(torch.nn.Module):
    """Stands in for a controller's condition embedder and returns an embedding computed earlier."""

    def __init__(self, embedding: torch.Tensor):
        super().__init__()
        self.embedding = embedding

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.embedding


@contextlib.contextmanager
def condition_embedded_once(controller: ControlNetModel, condition: torch.Tensor):
    """Within the block, ``controller`` reuses one embedding of ``condition`` at every step.

    The condition (the mask image, (B, 1, n_mels, columns)) is the same at every denoising step,
    but ``ControlNetModel.forward`` embeds it again each time, at the mel image's full resolution:
    for a small UNet that is most of a step. The result is the same computation, done once.
    Only call the controller with this ``condition`` inside the block.
    """
    embedder = controller.controlnet_cond_embedding
    with torch.no_grad():
        embedding = embedder(condition)
    controller.controlnet_cond_embedding = _FixedEmbedding(embedding)
    try:
        yield
    finally:
        controller.controlnet_cond_embedding = embedder


def load_temporal_controller(
    path: str | os.PathLike, unet, torch_dtype: torch.dtype | None = None
) -> ControlNetModel:
    """Load the released ``temporal_adapter.ckpt`` into a controller built from ``unet``.

    The pickle is read with ``weights_only=True``; a ``{"state_dict": ...}`` wrapper and
    ``module.`` prefixes are removed; keys and shapes must match exactly. The condition
    embedder's widths are read from the file (the release has diffusers' defaults).
    """
    state_dict = unwrap_state_dict(load_torch_pickle(path), path)
    controller = controller_from_unet(unet, **_embedding_channels(state_dict))
    load_checked(controller, state_dict, path, "temporal controller (ControlNet built from this UNet)")
    if torch_dtype is not None:
        controller = controller.to(dtype=torch_dtype)
    return controller


def _embedding_channels(state_dict: dict) -> dict:
    """The condition embedder's widths, read off the file (the release uses diffusers' default
    (16, 32, 96, 256); smaller controllers in the same layout load too)."""
    prefix = "controlnet_cond_embedding."
    if prefix + "conv_in.weight" not in state_dict:
        return {}
    channels = [state_dict[prefix + "conv_in.weight"].shape[0]]
    index = 1
    while prefix + f"blocks.{index}.weight" in state_dict:
        channels.append(state_dict[prefix + f"blocks.{index}.weight"].shape[0])
        index += 2
    return {"conditioning_embedding_out_channels": tuple(int(c) for c in channels)}


def _probability_frames(probabilities, dtype: torch.dtype) -> np.ndarray:
    """Per-frame detector probabilities (a sequence, array or tensor) as a 1-D numpy array."""
    array = np.asarray(torch.as_tensor(probabilities, dtype=dtype).cpu())
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"onset probabilities must have shape (frames,), got {array.shape}.")
    return array


def mask_from_probabilities(
    probabilities: np.ndarray | torch.Tensor,
    duration: float,
    timeline: Timeline,
    threshold: float = DEFAULT_ONSET_THRESHOLD,
) -> np.ndarray:
    """Timestamp mask from per-frame onset probabilities.

    Column ``i`` takes the decision of detector frame ``int(i / (columns_per_second * duration) * T)``
    (``Timeline.column_to_detector_frame``): +1 where that probability is >= ``threshold`` (the
    release's comparison), -1 elsewhere and after the clip's end.

    Args:
        probabilities: shape (T,), the detector's sigmoid outputs for T frames sampled uniformly
            over the clip.
        duration: clip length in seconds.

    Returns:
        float32 array (window_columns,) of +-1.
    """
    probabilities = _probability_frames(probabilities, torch.float32)
    mask = -np.ones(timeline.window_columns, dtype=np.float32)
    frames = timeline.column_to_detector_frame(duration, num_frames=probabilities.size)
    mask[: frames.size] = np.where(onset_frames(probabilities[frames], threshold), 1.0, -1.0)
    return mask


def mask_from_onset_times(
    onset_times: Sequence[float],
    duration: float,
    timeline: Timeline,
    event_seconds: float = DEFAULT_EVENT_SECONDS,
) -> np.ndarray:
    """Timestamp mask with an event of ``event_seconds`` starting at each onset time.

    Args:
        onset_times: seconds from the start of the clip; each must lie in [0, duration).
        duration: clip length in seconds; columns after it stay -1.
        event_seconds: how long each event is marked "on".

    Returns:
        float32 array (window_columns,) of +-1.
    """
    times = np.asarray(list(onset_times), dtype=np.float64)
    if times.ndim != 1 or not np.all(np.isfinite(times)):
        raise ValueError(f"onsets must be a list of finite times in seconds, got {onset_times!r}.")
    outside = times[(times < 0) | (times >= duration)]
    if outside.size:
        raise ValueError(
            f"onset times must lie within the clip [0, {duration:.3f}) s; got {outside.tolist()}. "
            f"Remove them or check their unit (seconds)."
        )
    if not event_seconds > 0:
        raise ValueError(f"event_seconds must be positive, got {event_seconds}.")
    mask = -np.ones(timeline.window_columns, dtype=np.float32)
    end_column = timeline.active_columns(duration)
    for start in times:
        first = timeline.seconds_to_column(start)
        last = max(first + 1, timeline.seconds_to_column(start + event_seconds))
        mask[first : min(last, end_column)] = 1.0
    return mask


def check_mask(mask: np.ndarray | torch.Tensor | Sequence[float], timeline: Timeline) -> np.ndarray:
    """Validate a caller's mask: values in {-1, +1}, at most ``window_columns`` long (shorter masks are
    padded with -1). Accepts (columns,) or a (1, n_mels, columns) / (1, 1, n_mels, columns) image."""
    array = np.asarray(torch.as_tensor(mask, dtype=torch.float32).cpu())
    if array.ndim > 1:
        # An image: every mel row of a column carries the same value, so row 0 says it all.
        array = array.reshape(-1, array.shape[-1])[0]
    if array.ndim != 1:
        raise ValueError(f"timestamp_mask must have shape (columns,), got {tuple(np.shape(mask))}.")
    if array.size > timeline.window_columns:
        raise ValueError(
            f"timestamp_mask has {array.size} columns; one model window holds {timeline.window_columns}."
        )
    if not np.all(np.isin(array, (-1.0, 1.0))):
        raise ValueError("timestamp_mask values must be +1 (event on) or -1 (off).")
    out = -np.ones(timeline.window_columns, dtype=np.float32)
    out[: array.size] = array
    return out


def mask_to_condition(masks: np.ndarray | torch.Tensor, n_mels: int) -> torch.Tensor:
    """(B, columns) masks -> the controller's condition image (B, 1, n_mels, columns)."""
    masks = torch.as_tensor(np.asarray(masks), dtype=torch.float32)
    if masks.ndim == 1:
        masks = masks[None]
    return masks[:, None, None, :].expand(-1, 1, n_mels, -1).contiguous()


def mask_to_onset_times(mask: np.ndarray, timeline: Timeline) -> list[float]:
    """Start times (s) of the "on" runs of a mask (its rising edges)."""
    on = np.asarray(mask) > 0
    starts = np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))
    return [timeline.column_to_seconds(int(c)) for c in starts]


ONSET_POSITIONS = ("centre", "first")


def onsets_from_probabilities(
    probabilities: np.ndarray | torch.Tensor,
    duration: float,
    threshold: float = DEFAULT_ONSET_THRESHOLD,
    position: str = "centre",
) -> list[float]:
    """Onset times (s) from per-frame detector probabilities: one per run of frames at or above
    ``threshold``, at the run's probability-weighted centre on the uniform frame grid (frame ``k``
    covers ``[k, k + 1) * duration / T`` seconds, so frame ``k`` stands for time
    ``(k + 0.5) * duration / T``).

    Why the centre and not the run's first frame: a detector's response is smeared over the
    frames around the contact (2-4 frames for the bundled model), so the first frame above the
    threshold comes early; on SynthFoley validation clips the centre is within +-20 ms of the truth
    for most onsets where the first frame is 30 ms early on median.

    Args:
        probabilities: shape (T,), sigmoid outputs for T frames sampled uniformly over the clip.
        duration: clip length in seconds.
        threshold: probability at or above which a frame is part of an onset.
        position: ``"centre"`` (the default, as above) or ``"first"`` (the run's first frame, for
            comparison: ``python -m foleycrafter.eval.video_onsets`` measures both).

    Returns:
        sorted onset times in seconds, each in ``[0, duration)``.
    """
    probabilities = _probability_frames(probabilities, torch.float64)
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}.")
    if position not in ONSET_POSITIONS:
        raise ValueError(f"position must be one of {ONSET_POSITIONS}, got {position!r}.")
    on = onset_frames(probabilities, threshold)
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    frame_seconds = duration / probabilities.size
    times = []
    for start, stop in zip(starts, stops):
        weights = probabilities[start:stop]
        if position == "first":
            frame = float(start)
        else:
            frame = float((np.arange(start, stop) * weights).sum() / weights.sum())
        times.append((frame + 0.5) * frame_seconds)
    return times
