"""The loudness predictor: how loud the soundtrack is at each video frame, from the frames alone.

Video-Foley's Video2RMS idea in this project's onset-detector family: the same time-keeping
R(2+1)D network (:class:`~foleycrafter.models.onset.OnsetDetector`, never striding in time) with
its per-frame head read as a level instead of an onset logit. ``sigmoid(head)`` is the level's
place between :data:`~foleycrafter.loudness.LOUDNESS_FLOOR_DB` (0) and full scale (1). It is
trained on each prepared clip's loudness curve, taken per frame as the loudest column the frame
covers (:func:`frame_levels`): a strike is a short peak, and a frame that shows it should say how
loud it got. Without a curve from the user, its prediction lets the video drive the dynamics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config

from ..loudness import LOUDNESS_FLOOR_DB
from ..timeline import Timeline
from .onset import OnsetDetector


class LoudnessPredictor(ModelMixin, ConfigMixin):
    """Per-frame loudness (dBFS) of the sound a video shows.

    Args:
        block_channels, layers, stem_mid_channels, stem_channels, head_hidden, resize_size,
            crop_size: the network's sizes, as for :class:`~foleycrafter.models.onset.OnsetDetector`
            (which it is, in ``"clean"`` preprocessing).
        floor_db: the quietest level it predicts (dBFS; silence).
    """

    @register_to_config
    def __init__(
        self,
        block_channels: Sequence[int] = (16, 16, 32, 32),
        layers: Sequence[int] = (1, 1, 1, 1),
        stem_mid_channels: int = 45,
        stem_channels: int = 64,
        head_hidden: int = 128,
        resize_size: int = 64,
        crop_size: int = 56,
        floor_db: float = LOUDNESS_FLOOR_DB,
    ):
        super().__init__()
        if not floor_db < 0:
            raise ValueError(f"LoudnessPredictor floor_db must be negative (dBFS), got {floor_db}.")
        self.network = OnsetDetector(
            block_channels=block_channels,
            layers=layers,
            stem_mid_channels=stem_mid_channels,
            stem_channels=stem_channels,
            head_hidden=head_hidden,
            resize_size=resize_size,
            crop_size=crop_size,
            preprocessing="clean",
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) from :meth:`preprocess` -> (B, T) logits of the normalised level
        (``sigmoid`` gives 0 at the floor, 1 at full scale; :meth:`to_db` gives dBFS)."""
        return self.network(pixel_values)

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB frames (T, H, W, 3) or (B, T, H, W, 3) -> network input (see the onset detector's)."""
        return self.network.preprocess(frames)

    def to_db(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> levels in dBFS, within ``[floor_db, 0]``."""
        return float(self.config.floor_db) * (1 - torch.sigmoid(logits.float()))

    def to_target(self, levels_db: torch.Tensor) -> torch.Tensor:
        """Levels in dBFS -> the normalised level the head learns (0 at the floor, 1 at full scale)."""
        floor = float(self.config.floor_db)
        return 1 - levels_db.float().clamp(floor, 0.0) / floor

    @torch.no_grad()
    def predict(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Levels (dBFS) of every frame: float32 (B, T) on the CPU, for uint8 RGB frames (T, H, W, 3)
        sampled uniformly over a clip (or a batch (B, T, H, W, 3))."""
        return self.to_db(self(self.preprocess(frames).to(self.dtype))).cpu()


def frame_levels(curve: np.ndarray, duration: float, num_frames: int, timeline: Timeline) -> np.ndarray:
    """A clip's per-column loudness curve on a grid of ``num_frames`` frames spread uniformly over it:
    for each frame, the loudest column whose centre lies in the time it covers (the column nearest
    the frame's centre when none does). Returns float32 ``(num_frames,)`` dBFS."""
    curve = np.asarray(curve, dtype=np.float32)
    count = min(curve.size, timeline.active_columns(duration))
    if count == 0:
        return np.full(num_frames, LOUDNESS_FLOOR_DB, dtype=np.float32)
    centres = (np.arange(count) + 0.5) / timeline.columns_per_second
    frame = np.minimum((centres / duration * num_frames).astype(np.int64), num_frames - 1)
    levels = np.full(num_frames, -np.inf, dtype=np.float32)
    np.maximum.at(levels, frame, curve[:count])
    empty = ~np.isfinite(levels)
    if empty.any():
        # Frames shorter than a column: the column under the frame's centre.
        nearest = (np.flatnonzero(empty) + 0.5) * duration / num_frames * timeline.columns_per_second
        levels[empty] = curve[np.clip(nearest.astype(np.int64), 0, count - 1)]
    return levels


def levels_to_curve(levels: np.ndarray, duration: float, timeline: Timeline) -> np.ndarray:
    """Per-frame levels (frames spread uniformly over a clip of ``duration`` seconds) -> a
    per-column curve of the clip: straight lines between the frames' centres, held at the ends.
    Returns float32 ``(clip_columns(duration),)`` dBFS."""
    levels = np.asarray(levels, dtype=np.float64).reshape(-1)
    frame_times = (np.arange(levels.size) + 0.5) * duration / levels.size
    centres = (np.arange(timeline.clip_columns(duration)) + 0.5) / timeline.columns_per_second
    return np.interp(centres, frame_times, levels).astype(np.float32)


__all__ = ["LoudnessPredictor", "frame_levels", "levels_to_curve"]
