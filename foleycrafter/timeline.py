"""The one place where the time axis is defined.

Every length in FoleyCrafter follows from a few numbers: the audio sample rate, the STFT hop (one
mel column per hop), the model window in mel columns, the VAE's downsampling factor and the number
of video frames the onset detector sees. :class:`Timeline` derives all conversions between seconds,
audio samples, mel columns, latent columns and detector frames from them, so that no other module
does this arithmetic.

Two timing conventions exist:

* ``"exact"`` (default): one mel column per vocoder hop, i.e. ``sample_rate / hop_length`` columns
  per second (100 /s for Auffusion). Events land where the vocoder renders them.
* ``"release"``: the released FoleyCrafter inference code maps mel columns to time as if the
  1024-column window spanned exactly 10 s (102.4 columns/s). Events drift late by 2.4 % (about
  0.24 s at 10 s). Kept so that release outputs can be reproduced exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TIMINGS = ("exact", "release")
#: Video frames sampled per model window for CLIP and the onset detector (the release's 150).
DETECTOR_FRAMES = 150


@dataclass(frozen=True)
class Timeline:
    """Time-axis constants and conversions.

    Args:
        sample_rate: audio samples per second (Hz).
        hop_length: audio samples per mel column.
        window_columns: mel columns in one model window (the width of the mel image).
        vae_scale_factor: mel columns (and mel bands) per latent column.
        detector_frames: video frames sampled per window for the onset detector and CLIP.
        timing: ``"exact"`` or ``"release"`` (see the module docstring).
        release_window_seconds: the nominal window length the release assumes (10 s).
    """

    sample_rate: int = 16000
    hop_length: int = 160
    window_columns: int = 1024
    vae_scale_factor: int = 8
    detector_frames: int = DETECTOR_FRAMES
    timing: str = "exact"
    release_window_seconds: float = 10.0

    def __post_init__(self):
        if self.timing not in TIMINGS:
            raise ValueError(f"timing must be one of {TIMINGS}, got {self.timing!r}.")
        for name in ("sample_rate", "hop_length", "window_columns", "vae_scale_factor", "detector_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Timeline.{name} must be a positive integer, got {value!r}.")
        if self.window_columns % self.vae_scale_factor:
            raise ValueError(
                f"Timeline.window_columns ({self.window_columns}) must be a multiple of the VAE factor "
                f"({self.vae_scale_factor})."
            )

    # -- rates -------------------------------------------------------------------------------
    @property
    def columns_per_second(self) -> float:
        """Mel columns per second under this timeline's timing convention."""
        if self.timing == "release":
            return self.window_columns / self.release_window_seconds
        return self.sample_rate / self.hop_length

    @property
    def window_samples(self) -> int:
        """Audio samples the vocoder renders for one full window."""
        return self.window_columns * self.hop_length

    @property
    def window_seconds(self) -> float:
        """Duration of audio one window renders (10.24 s for Auffusion)."""
        return self.window_samples / self.sample_rate

    @property
    def latent_columns(self) -> int:
        return self.window_columns // self.vae_scale_factor

    def with_timing(self, timing: str) -> Timeline:
        return Timeline(
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            window_columns=self.window_columns,
            vae_scale_factor=self.vae_scale_factor,
            detector_frames=self.detector_frames,
            timing=timing,
            release_window_seconds=self.release_window_seconds,
        )

    # -- conversions -------------------------------------------------------------------------
    def seconds_to_samples(self, seconds: float) -> int:
        """Number of audio samples in ``seconds`` (rounded to the nearest sample)."""
        return int(round(seconds * self.sample_rate))

    def seconds_to_column(self, seconds: float) -> int:
        """Index of the mel column that contains time ``seconds``."""
        return int(math.floor(seconds * self.columns_per_second + 1e-9))

    def column_to_seconds(self, column: float) -> float:
        """Start time (s) of mel column ``column``."""
        return column / self.columns_per_second

    def active_columns(self, duration: float) -> int:
        """Mel columns that cover a clip of ``duration`` seconds (the rest of the window is padding).

        In release timing this is ``int(102.4 * duration)``, as the released code computes it.
        """
        if self.timing == "release":
            count = int(self.columns_per_second * duration)
        else:
            count = int(math.ceil(duration * self.columns_per_second - 1e-9))
        return max(0, min(self.window_columns, count))

    def clip_columns(self, duration: float) -> int:
        """Mel columns that cover a clip of ``duration`` seconds, however many windows it spans."""
        return max(0, int(math.ceil(duration * self.columns_per_second - 1e-9)))

    def detector_frame_indices(self, num_video_frames: int, num_samples: int | None = None) -> np.ndarray:
        """Indices of the video frames sampled for the detector and CLIP (the release's choice).

        ``np.linspace(0, n - 1, detector_frames).astype(int)``: uniform over all frames, whatever the
        frame rate; frames repeat when the video has fewer frames than samples.
        """
        if num_video_frames <= 0:
            raise ValueError(f"A video needs at least one frame, got {num_video_frames}.")
        count = self.detector_frames if num_samples is None else num_samples
        return np.linspace(0, num_video_frames - 1, count).astype(int)

    def frame_start_seconds(self, duration: float, num_frames: int) -> np.ndarray:
        """When each of ``num_frames`` frames sampled over a ``duration``-second clip comes on screen,
        in seconds from the clip's start: frame ``f`` covers ``[f, f + 1) * duration / num_frames``,
        the span :meth:`column_to_detector_frame` gives it. Shape ``(num_frames,)``."""
        if not (duration > 0) or num_frames <= 0:
            raise ValueError(
                f"need a positive duration and frame count, got {duration!r} s and {num_frames!r}."
            )
        return np.arange(num_frames, dtype=np.float64) * (duration / num_frames)

    def feature_column_seconds(self, width: int, stride: int) -> np.ndarray:
        """The time (s) at the centre of each column of a feature map over one window's latent:
        ``width`` columns, each ``stride`` latent columns wide (the UNet halves the width per level,
        so a level's stride is 1, 2, 4, ...). Shape ``(width,)``."""
        mel_columns = stride * self.vae_scale_factor
        return (np.arange(width, dtype=np.float64) + 0.5) * mel_columns / self.columns_per_second

    def column_to_detector_frame(self, duration: float, num_frames: int | None = None) -> np.ndarray:
        """For each active mel column, the index of the detector frame that decides it.

        The detector frames are taken as covering the clip uniformly, ``num_frames / duration`` per
        second; column ``i`` maps to frame ``int(i / (columns_per_second * duration) * num_frames)``.
        Under release timing this is exactly the released code's mapping.

        Returns:
            int array of shape ``(active_columns(duration),)``.
        """
        num_frames = self.detector_frames if num_frames is None else num_frames
        count = self.active_columns(duration)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        columns = np.arange(count, dtype=np.float64)
        frames = (columns / (self.columns_per_second * duration) * num_frames).astype(np.int64)
        return np.clip(frames, 0, num_frames - 1)


AUFFUSION_TIMELINE = Timeline()
