"""Video file -> audio: the one path a video takes to sound.

::

    file ──probe once──> VideoInfo ............................................ video.read_video_info
      ──plan──> model windows (overlapping, equal) ............................ windows.plan_windows
      ──decode per window──> VideoClip (the window's sampled frames) .......... walk_windows -> video.load_clip
      ──conditions──> timestamp mask, CLIP embedding per window ............... pipeline (temporal, semantic)
      ──denoise──> mel image -> waveform per window ........................... pipeline
      ──join──> one waveform, equal-power crossfades, exact length ............ windows.join_windows
      ──write──> wav / flac, or muxed into the video (stream copied) .......... write_result -> video

A file is probed once; its :class:`~foleycrafter.video.VideoInfo` travels with it to every window's
decoding and to muxing. The command line, the demo, ``eval``, the ``onsets`` command and
``FoleyCrafterPipeline.__call__`` all walk a video with :func:`walk_windows`, so detection and
generation see the same windows and the same frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .timeline import Timeline
from .video import AUDIO_SUFFIXES, VideoClip, VideoInfo, load_clip, mux_audio, read_video_info, write_audio
from .windows import Window, join_windows, plan_windows, select_in_window

#: What ``video=`` may be for one item: a file, a probed file, decoded frames with their times, or
#: uint8 frames (T, H, W, 3) spread evenly over ``audio_length_in_s``.
VideoSource = str | os.PathLike | VideoInfo | VideoClip | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class VideoWindow:
    """One model window of a clip.

    Attributes:
        window: the window's audio samples ``[start, stop)`` in the whole clip.
        duration: seconds of audio the model renders for it: the clip's own duration when it fits
            one window, else the window's length.
        owned: ``(low, high)`` seconds this window answers for where windows overlap: each moment
            belongs to the window whose middle is nearer (``-inf``/``inf`` at the ends).
    """

    window: Window
    duration: float
    owned: tuple[float, float]

    @property
    def start_seconds(self) -> float:
        return self.window.start_seconds

    @property
    def span(self) -> tuple[float, float]:
        """``(start, end)`` seconds of the window in the clip."""
        return (self.start_seconds, self.start_seconds + self.duration)


# -- sources -----------------------------------------------------------------------------------
def open_source(video: VideoSource | None, audio_length_in_s: float | None = None):
    """``video`` ready to be cut into windows: a path is probed (once: the returned
    :class:`VideoInfo` is what later steps take); uint8 frames become a :class:`VideoClip` spread
    evenly over ``audio_length_in_s`` seconds.

    Returns:
        a ``VideoInfo``, a ``VideoClip`` or ``None``.
    """
    if video is None or isinstance(video, (VideoInfo, VideoClip)):
        return video
    if isinstance(video, (str, os.PathLike)):
        return read_video_info(video)
    frames = np.asarray(torch.as_tensor(video).cpu())
    return VideoClip(
        frames=frames,
        frame_times=np.arange(len(frames)) * (audio_length_in_s / len(frames)),
        duration=audio_length_in_s,
    )


def source_duration(source, audio_length_in_s: float | None, timeline: Timeline) -> float:
    """Seconds of audio for one item: ``audio_length_in_s``, else the video's duration, else one
    model window (text alone)."""
    if audio_length_in_s is not None:
        return float(audio_length_in_s)
    if source is None:
        return timeline.window_seconds
    return float(source.duration)


def frames_between(source, start: float, end: float, num_frames: int, short_side: int | None):
    """The frames of ``source`` shown in ``[start, end)`` s, with times relative to ``start``, or
    ``None`` where the video has none (it ended before ``start``, or there is no video).

    A probed file is decoded here (``num_frames`` sampled uniformly by index over the frames in
    the range: the release's sampling); a clip is cut.
    """
    if source is None:
        return None
    if isinstance(source, VideoInfo):
        if start >= source.duration:
            return None
        return load_clip(
            source,
            num_frames=num_frames,
            start_seconds=start,
            end_seconds=min(end, source.duration),
            short_side=short_side,
        )
    if start <= 0 and end >= source.duration:
        return source
    keep = (source.frame_times >= start) & (source.frame_times < end)
    if not keep.any():
        return None
    return VideoClip(
        frames=source.frames[keep],
        frame_times=source.frame_times[keep] - start,
        duration=min(end, source.duration) - start,
    )


# -- windows -----------------------------------------------------------------------------------
def plan_video_windows(duration: float, timeline: Timeline, window_overlap: float = 1.0) -> list[VideoWindow]:
    """The model windows of ``duration`` seconds of audio (nothing is decoded).

    A clip that fits one window gets one, of its own length; a longer one the fewest equal windows
    that overlap by at least ``window_overlap`` seconds (:func:`~foleycrafter.windows.plan_windows`).
    """
    plan = plan_windows(
        timeline.seconds_to_samples(duration), timeline.window_samples, timeline.sample_rate, window_overlap
    )
    windows = []
    for index, window in enumerate(plan):
        low = (plan[index - 1].end_seconds + window.start_seconds) / 2 if index > 0 else -np.inf
        high = (window.end_seconds + plan[index + 1].start_seconds) / 2 if index + 1 < len(plan) else np.inf
        seconds = duration if len(plan) == 1 else window.seconds
        windows.append(VideoWindow(window=window, duration=seconds, owned=(low, high)))
    return windows


def walk_windows(
    source,
    duration: float,
    timeline: Timeline,
    window_overlap: float = 1.0,
    num_frames: int | None = None,
    short_side: int | None = None,
) -> Iterator[tuple[VideoWindow, VideoClip | None]]:
    """Each model window of ``source`` with its frames, decoded one window at a time.

    Args:
        source: from :func:`open_source` (a ``VideoInfo``, a ``VideoClip`` or ``None``).
        duration: seconds of audio to cover.
        timeline: the model's time axis (its window length and frames per window).
        num_frames: frames sampled per window (default: ``timeline.detector_frames``, the release's 150).
        short_side: decode frames with this shorter side in pixels (``None``: full size).
    """
    num_frames = timeline.detector_frames if num_frames is None else num_frames
    for video_window in plan_video_windows(duration, timeline, window_overlap):
        yield video_window, window_frames(source, video_window, num_frames, short_side)


def window_frames(source, video_window: VideoWindow, num_frames: int, short_side: int | None):
    """The frames ``source`` shows during ``video_window`` (see :func:`frames_between`)."""
    start = video_window.start_seconds
    return frames_between(source, start, start + video_window.duration, num_frames, short_side)


@dataclass(frozen=True)
class WindowInput:
    """One window of one item, as the pipeline denoises it.

    Attributes:
        item: index of the prompt (batch item) the window belongs to.
        source: the item's video (a probed ``VideoInfo``, a ``VideoClip``) or ``None``.
        video_window: the window.
        onsets: given onset times (s from the window's start) for it, or ``None`` when none were
            given (the detector, or no temporal condition, decides).
    """

    item: int
    source: VideoInfo | VideoClip | None
    video_window: VideoWindow
    onsets: list[float] | None

    @property
    def duration(self) -> float:
        return self.video_window.duration


@dataclass(frozen=True)
class ItemPlan:
    """One item's audio: its duration (s) and its model windows."""

    duration: float
    windows: list[WindowInput]


def plan_items(
    videos: Sequence[VideoSource | None],
    audio_length_in_s: float | None,
    onsets: Sequence[Sequence[float] | None],
    timeline: Timeline,
    window_overlap: float = 1.0,
) -> list[ItemPlan]:
    """Each item's duration and windows. Files are probed here, once each; nothing is decoded.

    Args:
        videos: one video per item (the same file or object may repeat: it is probed once).
        onsets: one list of onset times (s from the clip's start) or ``None`` per item. A clip of
            several windows gives each window the onsets that fall in it.
    """
    sources: dict[object, object] = {}
    plans = []
    for item, (video, item_onsets) in enumerate(zip(videos, onsets)):
        key = os.fspath(video) if isinstance(video, (str, os.PathLike)) else id(video)
        if key not in sources:
            sources[key] = open_source(video, audio_length_in_s)
        source = sources[key]
        duration = source_duration(source, audio_length_in_s, timeline)
        video_windows = plan_video_windows(duration, timeline, window_overlap)
        windows = []
        for video_window in video_windows:
            if item_onsets is None:
                window_onsets = None
            elif len(video_windows) == 1:
                window_onsets = list(item_onsets)  # checked against the clip's duration later
            else:
                window_onsets = select_in_window(item_onsets, video_window.window)
            windows.append(WindowInput(item, source, video_window, window_onsets))
        plans.append(ItemPlan(duration, windows))
    return plans


def decode_frames(
    windows: Sequence[WindowInput], num_frames: int, short_side: int | None
) -> list[VideoClip | None]:
    """The frames of each window (``None`` where it has no video); a video that several windows
    share over the same span is decoded once."""
    decoded: dict[tuple, VideoClip | None] = {}
    clips = []
    for window in windows:
        key = (id(window.source), window.video_window.start_seconds, window.duration)
        if key not in decoded:
            decoded[key] = window_frames(window.source, window.video_window, num_frames, short_side)
        clips.append(decoded[key])
    return clips


def denoising_batches(plans: list[ItemPlan], window_batch_size: int) -> list[list[WindowInput]]:
    """Windows grouped into the batches the model denoises together.

    Items that fit one window each go through as one batch, one row per prompt (as diffusers
    batches prompts). A clip of several windows goes ``window_batch_size`` windows at a time.
    """
    if all(len(plan.windows) == 1 for plan in plans):
        return [[plan.windows[0] for plan in plans]]
    return [
        plan.windows[k : k + window_batch_size]
        for plan in plans
        for k in range(0, len(plan.windows), window_batch_size)
    ]


def join_items(plans: list[ItemPlan], audios: list[np.ndarray]) -> list[np.ndarray]:
    """Per-window waveforms (in the order of the plans' windows) joined into one per item."""
    joined, position = [], 0
    for plan in plans:
        segments = audios[position : position + len(plan.windows)]
        position += len(plan.windows)
        if len(plan.windows) == 1:
            joined.append(segments[0])
        else:
            joined.append(join_windows(segments, [w.video_window.window for w in plan.windows]))
    return joined


# -- whole files -------------------------------------------------------------------------------
def write_result(
    video: VideoInfo,
    audio,
    sample_rate: int,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
    keep_original_audio: bool = False,
) -> Path:
    """Write ``audio`` as ``.wav``/``.flac``, or mux it into a copy of ``video`` (``.mp4``, ``.mov``,
    ``.mkv``: the video stream copied, the audio fitted to the video's length). Atomic: a crash
    leaves no half file, and an existing file is replaced only with ``overwrite``."""
    output = Path(output)
    if output.suffix.lower() in AUDIO_SUFFIXES:
        return write_audio(output, audio, sample_rate, overwrite=overwrite)
    return mux_audio(
        video, audio, sample_rate, output, keep_original_audio=keep_original_audio, overwrite=overwrite
    )


def generate_file(
    pipe,
    video: str | os.PathLike | VideoInfo,
    output: str | os.PathLike,
    *,
    overwrite: bool = False,
    keep_original_audio: bool = False,
    **call_arguments,
):
    """Generate sound for a video file and write it to ``output`` (see :func:`write_result`).

    The file is probed once (or not at all when ``video`` is already a ``VideoInfo``).
    ``call_arguments`` go to ``pipe(...)`` (prompt, scales, onsets, generator, ...).

    Returns:
        the pipeline's output (its ``audios[0]`` is what was written).
    """
    info = video if isinstance(video, VideoInfo) else read_video_info(video)
    result = pipe(video=info, **call_arguments)
    write_result(
        info,
        result.audios[0],
        result.sample_rate,
        output,
        overwrite=overwrite,
        keep_original_audio=keep_original_audio,
    )
    return result


# -- onset detection over a file ---------------------------------------------------------------
@dataclass(frozen=True)
class WindowDetection:
    """The onset detector's output on one model window of a video.

    Attributes:
        start_seconds, end_seconds: the window's span in the video (s).
        duration: seconds of video its frames cover (less than the span where the video ends first).
        frame_times: (T,) times of its sampled frames in the video (s).
        probabilities: (T,) onset probability of each frame.
        owned: ``(low, high)`` seconds this window answers for (see :class:`VideoWindow`).
    """

    start_seconds: float
    end_seconds: float
    duration: float
    frame_times: np.ndarray
    probabilities: np.ndarray
    owned: tuple[float, float]

    def onsets(self, threshold: float, position: str = "centre") -> list[float]:
        """Onset times (s in the video) of this window's runs of onset frames (see
        :func:`~foleycrafter.temporal.onsets_from_probabilities`) that lie in the part it owns."""
        from .temporal import onsets_from_probabilities

        times = (
            np.array(onsets_from_probabilities(self.probabilities, self.duration, threshold, position))
            + self.start_seconds
        )
        low, high = self.owned
        return times[(times >= low) & (times < high)].tolist()


def detect_in_windows(
    detector,
    video: str | os.PathLike | VideoInfo,
    timeline: Timeline,
    short_side: int | None = None,
    window_overlap: float = 1.0,
    num_frames: int | None = None,
    region=None,
    region_mode: str = "crop",
) -> list[WindowDetection]:
    """Run the onset detector over a video file, window by window as generation does.

    Args:
        video: a path (probed here) or its ``VideoInfo``.
        timeline: the model's time axis (``pipe.timeline()``): its windows and frames per window.
        short_side: decode frames with this shorter side in pixels (``None``: full size, as the
            pipeline's default).
        region, region_mode: the detector sees only this part of the frames, as generation's does
            (:mod:`foleycrafter.region`).
    """
    from .region import region_clip

    info = video if isinstance(video, VideoInfo) else read_video_info(video)
    detections = []
    for video_window, clip in walk_windows(
        info, info.duration, timeline, window_overlap, num_frames, short_side
    ):
        clip = region_clip(clip, region, region_mode)
        detections.append(
            WindowDetection(
                start_seconds=video_window.start_seconds,
                end_seconds=video_window.window.end_seconds,
                duration=clip.duration,
                frame_times=clip.frame_times + video_window.start_seconds,
                probabilities=detector.detect(clip.frames[None])[0].float().numpy(),
                owned=video_window.owned,
            )
        )
    return detections


def predict_video_loudness(
    predictor,
    video: str | os.PathLike | VideoInfo,
    timeline: Timeline,
    short_side: int | None = None,
    window_overlap: float = 1.0,
) -> np.ndarray:
    """The loudness predictor's curve of a whole video file, window by window as generation walks
    it (each mel column from the window that owns its time).

    Returns:
        float32 ``(timeline.clip_columns(duration),)`` dBFS per mel column of the video.
    """
    from .models.loudness import levels_to_curve

    info = video if isinstance(video, VideoInfo) else read_video_info(video)
    centres = (np.arange(timeline.clip_columns(info.duration)) + 0.5) / timeline.columns_per_second
    curve = np.zeros(centres.size, dtype=np.float32)
    for video_window, clip in walk_windows(info, info.duration, timeline, window_overlap, None, short_side):
        levels = predictor.predict(clip.frames)[0].numpy()
        window_curve = levels_to_curve(levels, clip.duration, timeline)
        low, high = video_window.owned
        owned = np.flatnonzero((centres >= low) & (centres < high))
        local = np.clip(
            np.floor((centres[owned] - video_window.start_seconds) * timeline.columns_per_second).astype(int),
            0,
            window_curve.size - 1,
        )
        curve[owned] = window_curve[local]
    return curve


def detect_video_onsets(
    detector,
    video: str | os.PathLike | VideoInfo,
    timeline: Timeline,
    threshold: float | None = None,
    short_side: int | None = None,
    window_overlap: float = 1.0,
    position: str = "centre",
    region=None,
    region_mode: str = "crop",
) -> dict:
    """Onsets of a video file, detected window by window as generation does (:func:`detect_in_windows`).

    Args:
        threshold: probability at or above which a frame is an onset; default: the detector's own
            (:func:`~foleycrafter.temporal.onset_threshold`).

    Returns:
        A JSON-ready dict: ``video``, ``duration`` (s), ``threshold``, ``onsets`` (s, one per run of
        onset frames, placed as :func:`~foleycrafter.temporal.onsets_from_probabilities` places them
        with ``position``), ``frames`` (``times`` in s and ``probabilities`` of every sampled frame,
        each from the window that owns it), ``windows`` (``[start, end]`` s).
    """
    from .temporal import onset_threshold

    threshold = onset_threshold(threshold, detector)
    info = video if isinstance(video, VideoInfo) else read_video_info(video)
    windows = detect_in_windows(
        detector, info, timeline, short_side, window_overlap, region=region, region_mode=region_mode
    )
    times, probabilities, onsets = [], [], []
    for window in windows:
        low, high = window.owned
        keep = (window.frame_times >= low) & (window.frame_times < high)
        times.extend(window.frame_times[keep].tolist())
        probabilities.extend(window.probabilities[keep].tolist())
        onsets.extend(window.onsets(threshold, position))
    return {
        "video": str(info.path),
        "duration": info.duration,
        "threshold": threshold,
        "onsets": onsets,
        "frames": {"times": times, "probabilities": probabilities},
        "windows": [[window.start_seconds, window.end_seconds] for window in windows],
    }
