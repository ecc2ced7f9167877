"""The Gradio demo: upload a video, check and edit its onsets, generate its soundtrack.

    foleycrafter demo [--model FOLDER] [--port 7860]        # or: python demo/app.py ...

The page walks through what the pipeline does: the onset detector's times are drawn on a timeline
over the video and can be edited (added, removed, moved) as comma-separated seconds; generation then
conditions the temporal controller on exactly those times (``onsets=``). For a model with a loudness
controller, a loudness curve can be typed as ``seconds:dB`` points or taken from a reference
recording (simplified to points, then editable); it is drawn over the video and followed
(``loudness=``). The result is the video
with its new soundtrack (the video stream copied), the wav, a spectrogram with the onsets marked,
and how long each stage took.

Limits on what a visitor may upload live in :data:`MAX_UPLOAD_MB` and :data:`MAX_VIDEO_SECONDS`
(``--max-upload-mb`` / ``--max-seconds`` override them). The server binds 127.0.0.1 unless
``--host`` says otherwise, and publishes a public link only with ``--share``.

gradio is imported only when the app is built, so ``import foleycrafter`` and the rest of the
command line work without the ``demo`` extra.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arguments import positive_number
from .defaults import RELEASE_NUM_INFERENCE_STEPS, RELEASE_TEMPORAL_SCALE, VISUAL_ATTENTION_MODES
from .runtime import BUNDLED_MODEL, MODEL_ENV, default_model

logger = logging.getLogger(__name__)

# -- limits and defaults: the one place to change them ----------------------------------------------
MAX_UPLOAD_MB = 200.0
"""Largest upload the server accepts, in megabytes (``--max-upload-mb``)."""

MAX_VIDEO_SECONDS = 60.0
"""Longest video the demo generates for, in seconds (``--max-seconds``); longer videos are refused
with a message pointing to ``foleycrafter generate``, which has no limit."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
FRAME_SHORT_SIDE = 256  # pixels; as the CLI's default, so memory does not grow with the resolution
#: The drawing editors of the loudness curve and the region (a canvas each, kept in step with the
#: text fields that hold the values; loaded into the page's head).
EDITORS_SCRIPT = Path(__file__).with_name("demo_editors.js")
ADAPTERS_OWN = "the adapter's own"  # the Visual attention choice that keeps the adapter's mask
MODEL_CACHE_SIZE = 2  # pipelines kept loaded; a released-size model takes several GB
OUTPUT_MAX_AGE_SECONDS = 24 * 3600  # results older than this are removed when a new one is written

DEMO_ROOT = Path(tempfile.gettempdir()) / "foleycrafter-demo"
"""Examples and results live under the system's temporary folder, which gradio serves by default."""

INSTALL_HINT = 'pip install -c constraints.txt -e ".[demo]"'


@dataclass(frozen=True)
class ExampleClip:
    """A SynthFoley clip rendered at start-up as a bundled example (seconds for ``duration``)."""

    seed: int
    index: int
    class_index: int
    duration: float


EXAMPLE_CLIPS = (
    ExampleClip(seed=0, index=0, class_index=0, duration=4.0),  # hammer on metal
    ExampleClip(seed=0, index=1, class_index=6, duration=4.0),  # bouncing ball
)
EXAMPLE_SIZE = 192  # pixels per side: big enough to see the contact, quick to render at start-up


class DemoError(ValueError):
    """A problem with what the visitor gave; its message is shown in the page as it is."""


@dataclass(frozen=True)
class DemoOptions:
    """How the demo is served. Sizes in megabytes, durations in seconds."""

    model: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    share: bool = False
    max_upload_mb: float = MAX_UPLOAD_MB
    max_seconds: float = MAX_VIDEO_SECONDS
    device: str = "auto"
    examples: bool = True


# -- checks -----------------------------------------------------------------------------------------
def model_folder(text: str | None) -> Path:
    """The native FoleyCrafter folder named by ``text``, or a DemoError saying what to do."""
    text = (text or "").strip()
    if not text:
        raise DemoError(
            "No model folder given: type the path of a native FoleyCrafter folder (written by "
            "save_pretrained) under **Settings → Model folder**, or start the demo with `--model FOLDER`."
        )
    folder = Path(text).expanduser()
    if not folder.is_dir():
        if folder.resolve() == BUNDLED_MODEL.resolve():
            raise DemoError(
                f"The bundled model `{BUNDLED_MODEL}` does not exist yet (it is still being trained). "
                "Start the demo with `--model FOLDER`, or type the path of a native FoleyCrafter folder "
                "(written by save_pretrained) under **Settings → Model folder**."
            )
        raise DemoError(
            f"Model folder not found: `{folder}`. Type the path of a native FoleyCrafter folder "
            "(written by save_pretrained) under **Settings → Model folder**, or start the demo "
            "with `--model FOLDER`."
        )
    if not (folder / "model_index.json").is_file():
        raise DemoError(
            f"`{folder}` is not a FoleyCrafter model folder (it has no model_index.json). Pass a folder "
            "written by `FoleyCrafterPipeline.save_pretrained`, such as a trainer's `final/` folder."
        )
    return folder


def model_defaults(text: str | None) -> tuple[float, int]:
    """The ``(default_temporal_scale, default_num_inference_steps)`` the model folder names in its
    model_index.json (read without loading the model), else the release's (0.2, 25)."""
    from .pipeline import FoleyCrafterPipeline

    try:
        config = FoleyCrafterPipeline.load_config(model_folder(text))
    except (DemoError, OSError, ValueError):
        config = {}
    return (
        float(config.get("default_temporal_scale", RELEASE_TEMPORAL_SCALE)),
        int(config.get("default_num_inference_steps", RELEASE_NUM_INFERENCE_STEPS)),
    )


def on_folder(text: str | None, shown: str | None) -> tuple:
    """What the page shows when the model folder box changes: its banner, and, only if the folder
    differs from ``shown`` (the one whose defaults the sliders hold), its default temporal scale and
    steps (see :func:`model_defaults`); then ``text`` becomes the shown folder.

    Gradio also fires the box's change event when the settings accordion first renders it; the
    folder is then the same, and sliders a visitor has already moved stay where they are.
    """
    import gradio as gr

    if text == shown:
        return model_banner(text), gr.update(), gr.update(), shown
    return (model_banner(text), *model_defaults(text), text)


def model_banner(text: str | None) -> str:
    """One line of Markdown on whether the model folder is usable (it is not loaded here)."""
    try:
        folder = model_folder(text)
    except DemoError as error:
        return f"**Model missing.** {error}"
    return f"Model: `{folder}`"


def check_video(path: str | os.PathLike | None, max_upload_mb: float, max_seconds: float):
    """Read an upload's metadata, or raise a DemoError naming the file, the limit and what to do.

    Returns:
        the :class:`~foleycrafter.video.VideoInfo` (``duration`` in seconds).
    """
    from .video import VideoReadError, read_video_info

    if not path:
        raise DemoError("No video yet: upload a video file (mp4, mov, mkv, webm) or pick an example.")
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DemoError(f"The upload `{name}` is gone from the server; upload it again.")
    megabytes = path.stat().st_size / 1e6
    if megabytes > max_upload_mb:
        raise DemoError(
            f"`{name}` is {megabytes:.0f} MB; this demo takes videos up to {max_upload_mb:g} MB "
            "(`--max-upload-mb`). Trim or compress it, or use `foleycrafter generate`."
        )
    try:
        info = read_video_info(path)
    except VideoReadError as error:
        reason = str(error).replace(f"'{path}'", f"`{name}`").replace(str(path), name)
        raise DemoError(f"The upload `{name}` is not a readable video: {reason}") from None
    if not info.duration > 0:
        raise DemoError(f"`{name}` has no video frames; upload a video with at least one frame.")
    if info.duration > max_seconds + 1e-6:
        raise DemoError(
            f"`{name}` is {info.duration:.1f} s long; this demo takes videos up to {max_seconds:g} s "
            "(`--max-seconds`). Trim it, or use `foleycrafter generate`, which has no limit."
        )
    return info


def parse_onsets(text: str | None, duration: float) -> list[float] | None:
    """Onset times typed by a visitor, in seconds (:func:`foleycrafter.temporal.parse_onset_times`);
    a mistake becomes a DemoError for the page."""
    from .temporal import parse_onset_times

    try:
        return parse_onset_times(text, duration)
    except ValueError as error:
        raise DemoError(str(error)) from None


def detected_onsets(report: dict) -> list[float]:
    """The detector's onset times (seconds) as the page uses them: to 10 ms, each once.

    Sampling 150 frames from a shorter video repeats frames, and a repeated frame can start a run
    twice; rounding also makes generation use exactly the times the text field shows.
    """
    return sorted({round(float(t), 2) for t in report["onsets"]})


def format_onsets(times: list[float]) -> str:
    """Onset times (seconds) as the text field shows them: 10 ms steps, one mel column; ``"none"``
    for no onsets (an empty field would mean "detect them")."""
    return ", ".join(f"{t:.2f}" for t in times) if times else "none"


def _onset_summary(times: list[float] | None, source: str) -> str:
    if times is None:
        return "Onsets: none yet. **Detect onsets**, or type times; empty = detected when you generate."
    if not times:
        return f"Onsets ({source}): none, so the temporal controller is told there are no sound events."
    listed = ", ".join(f"{t:.2f}" for t in times)
    return f"Onsets ({source}): {len(times)} at {listed} s."


def _source(times: list[float] | None, report: dict | None) -> str:
    """Whether typed onset times are the detector's (as the text field shows them) or edited."""
    if times is not None and report is not None and times == detected_onsets(report):
        return "detected"
    return "edited"


def parse_loudness(text: str | None, duration: float):
    """The loudness field's points (``seconds:dB, ...``) for a video of ``duration`` seconds, or
    ``None`` when empty; a mistake is a :class:`DemoError` that says how to write them."""
    from .loudness import parse_loudness_points

    try:
        return parse_loudness_points(text, duration)
    except ValueError as error:
        raise DemoError(str(error)) from None


def parse_region_box(text: str | None):
    """The region field's box (``x0,y0,x1,y1``, fractions of the width and height), or ``None``."""
    from .region import parse_region

    try:
        return parse_region(text)
    except ValueError as error:
        raise DemoError(str(error)) from None


def _timeline_report(duration: float, times: list[float], report: dict | None, threshold: float) -> dict:
    """A report for :func:`foleycrafter.plots.onset_plot`: the detector's curve when there is one,
    with the (possibly edited) onset times."""
    frames = report["frames"] if report else {"times": [], "probabilities": []}
    return {
        "duration": duration,
        "threshold": report["threshold"] if report else threshold,
        "onsets": list(times),
        "frames": frames,
    }


# -- models -----------------------------------------------------------------------------------------
class PipelineCache:
    """Pipelines loaded once per model folder, the most recently used kept (at most ``size``).

    A folder is reloaded when its ``model_index.json`` changes (a trainer wrote it again).
    """

    def __init__(self, device: str = "auto", size: int = MODEL_CACHE_SIZE):
        self.device = device
        self.size = size
        self._pipes: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path):
        from .runtime import load_pipeline

        folder = folder.resolve()
        key = (str(folder), (folder / "model_index.json").stat().st_mtime_ns)
        # One load at a time: two visitors asking for the same folder must not both load it.
        with self._lock:
            if key in self._pipes:
                self._pipes.move_to_end(key)
                return self._pipes[key]
            for old in [k for k in self._pipes if k[0] == key[0]]:
                del self._pipes[old]
            while len(self._pipes) >= self.size:
                self._pipes.popitem(last=False)
            pipe, _ = load_pipeline(str(folder), device=self.device)
            self._pipes[key] = pipe
            return pipe


# -- files ------------------------------------------------------------------------------------------
def _safe_stem(path: str | os.PathLike) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).stem).strip("_")
    return stem[:60] or "video"


def new_output_folder(root: Path | None = None) -> Path:
    """A fresh folder for one result under ``root`` (old results there are removed first)."""
    root = root or DEMO_ROOT / "outputs"
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - OUTPUT_MAX_AGE_SECONDS
    for old in root.glob("run-*"):
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # another server process removed it first
    return Path(tempfile.mkdtemp(prefix="run-", dir=root))


def spectrogram_picture(pipe, audio: np.ndarray, onsets: list[float]):
    """The generated waveform's log-mel as a picture (100 columns per second), onsets ticked."""
    import torch
    from PIL import Image

    from .plots import WIDTH, spectrogram_image
    from .spectrogram import MelSpectrogram, log_mel_to_image

    # From the waveform rather than the model's mel images: one picture of the whole result, also
    # for videos generated in several windows.
    mel = MelSpectrogram.from_vocoder_config(pipe.vocoder.config)
    with torch.no_grad():
        image = log_mel_to_image(mel(torch.from_numpy(np.asarray(audio, np.float32))[None]))
    picture = spectrogram_image(image[0].numpy(), onsets=onsets, timeline=pipe.timeline())
    if picture.width < WIDTH:
        # A short clip is a sliver at one column per 10 ms: widen it to the onset timeline's width,
        # nearest-neighbour so that the onset ticks stay sharp.
        picture = picture.resize((WIDTH, picture.height), Image.Resampling.NEAREST)
    return picture


def _write_silent_mp4(path: Path, frames: np.ndarray, fps: str) -> None:
    from .video import atomic_output, run_ffmpeg

    height, width = frames.shape[1:3]
    # Another server may be writing the same example: each writes its own temporary file and the
    # rename is atomic, so whichever finishes last leaves an identical, complete file.
    with atomic_output(path, overwrite=True) as temporary:
        run_ffmpeg(
            ["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
            + ["-r", fps, "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast"]
            + ["-crf", "20", "-movflags", "+faststart", "-f", "mp4", temporary.absolute()],
            input=np.ascontiguousarray(frames, dtype=np.uint8).tobytes(),
            what=f"writing the example '{path.name}'",
        )


def example_videos(folder: Path | None = None, clips=EXAMPLE_CLIPS) -> list[tuple[Path, str]]:
    """Silent SynthFoley videos for the example list, rendered once into ``folder`` (a cache).

    Returns:
        ``(video path, caption)`` pairs; empty when they cannot be made (the demo works without).
    """
    from .data.synthfoley import CLASSES, GENERATOR_VERSION, generate_clip, plan_clip

    folder = folder or DEMO_ROOT / "examples"
    examples = []
    for clip in clips:
        name = CLASSES[clip.class_index].name
        path = folder / f"synthfoley-v{GENERATOR_VERSION}-{name}-{clip.seed}-{clip.index}-{EXAMPLE_SIZE}.mp4"
        overrides = {"class_index": clip.class_index, "duration": clip.duration}
        try:
            if path.is_file():
                record = plan_clip(clip.seed, clip.index, "test", EXAMPLE_SIZE, **overrides)
            else:
                frames, _, record = generate_clip(clip.seed, clip.index, "test", EXAMPLE_SIZE, **overrides)
                _write_silent_mp4(path, frames, record["fps_fraction"])
        except Exception as error:  # an example is a convenience; the demo runs without it
            logger.warning("could not make the example %s: %s", path.name, error)
            continue
        examples.append((path, record["caption"]))
    return examples


# -- the app ----------------------------------------------------------------------------------------
def _error_text(error: BaseException) -> str:
    if isinstance(error, DemoError):
        return str(error)
    return " ".join((str(error).strip() or type(error).__name__).split())


def _error_markdown(error: BaseException, headline: str = "Error") -> str:
    """``error`` for the status line, after a headline saying which step failed."""
    return f"**{headline}.** {_error_text(error)}"


def build_app(options: DemoOptions, cache: PipelineCache | None = None):
    """The Gradio Blocks app (not launched); see :func:`serve`."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local demo does not report usage
    try:
        import gradio as gr
    except ImportError as error:
        raise DemoError(f"The demo needs gradio ({error}); install the demo extra: {INSTALL_HINT}") from None
    import torch

    from .generation import detect_video_onsets
    from .plots import loudness_plot
    from .video import FFmpegError, mux_audio, write_audio

    cache = cache or PipelineCache(options.device)
    limits = (options.max_upload_mb, options.max_seconds)
    examples = example_videos() if options.examples else []

    def fail(error: BaseException, headline: str) -> str:
        """The page's message for ``error``; unexpected ones are logged with their traceback."""
        if not isinstance(error, DemoError):
            logger.exception("demo request failed: %s", headline)
        # Toasts show plain text: drop the Markdown code marks.
        gr.Warning(_error_text(error).replace("`", ""), title=headline)
        return _error_markdown(error, headline)

    def detect(video: str, folder_text: str, threshold: float, region=None, region_mode: str = "crop"):
        info = check_video(video, *limits)
        pipe = cache.get(model_folder(folder_text))
        if pipe.onset_detector is None:
            raise DemoError(
                "This model has no onset detector; type onset times (seconds, separated by commas) instead."
            )
        report = detect_video_onsets(
            pipe.onset_detector,
            info,
            pipe.timeline(),  # the model's windows, as generation walks them
            threshold=float(threshold),
            short_side=FRAME_SHORT_SIDE,
            region=region,
            region_mode=region_mode,
        )
        return info, report

    def _plot(duration, times, report, threshold):
        from .plots import onset_plot

        return onset_plot(_timeline_report(duration, times, report, threshold))

    # Handlers: each returns a message for the status line instead of raising, so that a bad input
    # shows in the page and the next request is served as usual.
    def on_video(video, threshold):
        if not video:
            return "", None, None, "", _onset_summary(None, "")
        try:
            info = check_video(video, *limits)
        except Exception as error:
            return fail(error, "Cannot use this video"), None, None, "", _onset_summary(None, "")
        plot = _plot(info.duration, [], None, threshold)
        status = (
            f"Video `{Path(video).name}`: {info.duration:.2f} s, {info.fps:g} fps, "
            f"{info.width}×{info.height}. Next: **Detect onsets** (or type them), then **Generate**."
        )
        return status, None, plot, "", _onset_summary(None, "")

    # gradio finds the progress bar by the type of a parameter's default; it injects its own per request.
    step_progress, tqdm_progress = gr.Progress(), gr.Progress(track_tqdm=True)

    def on_detect(video, folder_text, threshold, region_text, region_mode, progress=step_progress):
        try:
            progress(0.1, desc="Loading the model")
            started = time.perf_counter()
            info, report = detect(video, folder_text, threshold, parse_region_box(region_text), region_mode)
        except Exception as error:
            return fail(error, "Could not detect onsets"), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        seconds = time.perf_counter() - started
        times = detected_onsets(report)
        status = (
            f"Detected {len(times)} onset(s) in {seconds:.1f} s. Edit the times if you like "
            "(add, remove, move), then **Generate**."
        )
        return (
            status,
            report,
            _plot(info.duration, times, report, threshold),
            format_onsets(times),
            _onset_summary(times, "detected"),
        )

    def on_edit(text, video, report, threshold):
        if not video:
            return gr.skip(), gr.skip()
        try:
            info = check_video(video, *limits)
            times = parse_onsets(text, info.duration)
        except Exception as error:
            return gr.skip(), _error_markdown(error, "Check the onset times")
        return _plot(info.duration, times or [], report, threshold), _onset_summary(
            times, _source(times, report)
        )

    def on_loudness_edit(text, video):
        if not video:
            return gr.skip(), gr.skip()
        try:
            info = check_video(video, *limits)
            points = parse_loudness(text, info.duration)
        except Exception as error:
            return gr.skip(), _error_markdown(error, "Check the loudness points")
        note = "" if points is None else f"Loudness: {len(points[0])} point(s), followed when you generate."
        return loudness_plot(info.duration, points), note

    def on_reference(reference, video, folder_text):
        """The reference recording's loudness, simplified to points the visitor can edit."""
        from .loudness import fit_to_clip, format_loudness_points, reference_loudness, simplify_curve

        try:
            if not reference:
                raise DemoError("Choose a reference recording (an audio or video file with sound) first.")
            info = check_video(video, *limits)
            timeline = cache.get(model_folder(folder_text)).timeline()
            curve = fit_to_clip(reference_loudness(reference, timeline), info.duration, timeline)
            measured = ((np.arange(curve.size) + 0.5) / timeline.columns_per_second, curve)
            points = simplify_curve(curve, timeline)
        except Exception as error:
            return fail(error, "Cannot use this reference"), gr.skip(), gr.skip()
        status = (
            f"Loudness of `{Path(reference).name}` (grey) as {len(points[0])} points (red); edit them or "
            "**Generate**."
        )
        return status, format_loudness_points(points), loudness_plot(info.duration, points, measured)

    def on_region(text, video):
        """The video's middle frame with the region's box drawn on it."""
        from .region import box_outline
        from .video import load_clip

        if not video:
            return gr.skip(), gr.skip()
        try:
            info = check_video(video, *limits)
            box = parse_region_box(text)
            frame = load_clip(info, num_frames=3, short_side=FRAME_SHORT_SIDE).frames[1]
        except Exception as error:
            return gr.skip(), _error_markdown(error, "Check the region")
        if box is None:
            return frame, "No region: the whole picture sounds."
        return box_outline(frame, box), "Only the boxed part of the picture is seen when generating."

    def on_predicted(video, folder_text):
        """The loudness predictor's curve of the video, simplified to points the visitor can edit."""
        from .generation import predict_video_loudness
        from .loudness import format_loudness_points, simplify_curve

        try:
            info = check_video(video, *limits)
            pipe = cache.get(model_folder(folder_text))
            if pipe.loudness_predictor is None:
                raise DemoError(
                    "This model has no loudness predictor: type loudness points, or take them from a "
                    "reference recording (`foleycrafter train loudness_predictor` makes a predictor)."
                )
            timeline = pipe.timeline()
            curve = predict_video_loudness(
                pipe.loudness_predictor, info, timeline, short_side=FRAME_SHORT_SIDE
            )
            predicted = ((np.arange(curve.size) + 0.5) / timeline.columns_per_second, curve)
            points = simplify_curve(curve, timeline)
        except Exception as error:
            return fail(error, "Cannot predict the loudness"), gr.skip(), gr.skip()
        status = f"Predicted loudness of the video (grey) as {len(points[0])} points (red); edit them or **Generate**."
        return status, format_loudness_points(points), loudness_plot(info.duration, points, predicted)

    def on_generate(
        video,
        prompt,
        negative_prompt,
        semantic_scale,
        temporal_scale,
        alignment_scale,
        steps,
        guidance_scale,
        seed,
        threshold,
        folder_text,
        onsets_text,
        report,
        loudness_text,
        loudness_scale,
        region_text,
        region_mode,
        visual_attention=ADAPTERS_OWN,
        visual_attention_window=0.5,
        loudness_gain=0.0,
        progress=tqdm_progress,
    ):
        unchanged = (gr.skip(),) * 7
        try:
            started = time.perf_counter()
            info = check_video(video, *limits)
            times = parse_onsets(onsets_text, info.duration)
            loudness = parse_loudness(loudness_text, info.duration)
            region = parse_region_box(region_text)
            if seed is None:
                raise DemoError("Settings → Seed is empty; enter a whole number, e.g. 42.")
            folder = model_folder(folder_text)
            progress(0.02, desc="Loading the model")
            pipe = cache.get(folder)
            if float(alignment_scale) > 0 and pipe.components.get("alignment_classifier") is None:
                raise DemoError(
                    f"Settings → Alignment guidance is {float(alignment_scale):g}, but the model `{folder}` "
                    "has no alignment classifier: set it to 0, or choose a model folder that has one "
                    "(`foleycrafter train alignment` writes it)."
                )
            if loudness is not None and float(loudness_scale) > 0 and pipe.loudness_controller is None:
                raise DemoError(
                    f"Loudness points are given, but the model `{folder}` has no loudness controller: clear "
                    "the points, or choose a model folder that has one (`foleycrafter train loudness` writes it), "
                    "or set the loudness scale to 0 and apply the points with the gain alone."
                )
            frame_attention = {}
            if visual_attention != ADAPTERS_OWN:
                if pipe.semantic_adapter_kind != "frame_aligned":
                    raise DemoError(
                        f"Settings → Visual attention is {visual_attention}, but the model `{folder}`'s semantic "
                        f"adapter is {pipe.semantic_adapter_kind or 'absent'}, not frame-aligned: set it back to "
                        f"“{ADAPTERS_OWN}”, or choose a model folder with a frame-aligned adapter."
                    )
                frame_attention = {
                    "visual_attention": visual_attention,
                    "visual_attention_window": float(visual_attention_window),
                }
            loaded = time.perf_counter()
            source, plot = _source(times, report), gr.skip()
            if times is None:
                progress(0.05, desc="Detecting onsets")
                # Detected in the region, as the pipeline's own detection would be.
                info, report = detect(video, folder_text, threshold, region, region_mode)
                times, source = detected_onsets(report), "detected"
                plot = _plot(info.duration, times, report, threshold)
            detected = time.perf_counter()
            progress(0.1, desc="Generating")
            result = pipe(
                prompt=prompt or "",
                negative_prompt=negative_prompt or "",
                video=info,
                num_inference_steps=int(steps),
                guidance_scale=float(guidance_scale),
                semantic_scale=float(semantic_scale),
                temporal_scale=float(temporal_scale),
                alignment_guidance_scale=float(alignment_scale),
                onsets=times,
                loudness=loudness
                if pipe.loudness_controller is not None or float(loudness_gain) > 0
                else None,
                loudness_scale=float(loudness_scale),
                loudness_gain=float(loudness_gain),
                region=region,
                region_mode=region_mode,
                frame_short_side=FRAME_SHORT_SIDE,
                **frame_attention,
                generator=torch.Generator(device="cpu").manual_seed(int(seed)),
            )
            generated = time.perf_counter()
            progress(0.95, desc="Writing the video")
            audio, rate = result.audios[0], result.sample_rate
            out = new_output_folder()
            stem = _safe_stem(video)
            wav = write_audio(out / f"{stem}_foley.wav", audio, rate)
            picture = spectrogram_picture(pipe, audio, times)
            try:
                muxed = str(mux_audio(info, audio, rate, out / f"{stem}_foley.mp4"))
                mux_note = ""
            except FFmpegError as error:
                # The sound is made; only the container refused this video stream. Keep the wav.
                logger.warning("muxing failed: %s", error.stderr or error)
                muxed = None
                mux_note = f" The video could not take the new soundtrack ({error}); download the wav."
        except Exception as error:
            return (fail(error, "Could not generate"),) + unchanged
        written = time.perf_counter()
        unused = " (not used: temporal scale 0)" if float(temporal_scale) == 0 else ""
        if result.loudness_curves is not None:
            unused += f", following {len(loudness[0])} loudness point(s)"
            if float(loudness_gain) > 0:
                unused += f" with a gain of {float(loudness_gain):g} towards them"
        if frame_attention:
            unused += f", visual attention {frame_attention['visual_attention']}" + (
                f" ({float(visual_attention_window):g} s)" if visual_attention == "framewise" else ""
            )
        if region is not None:
            unused += f", seeing only the region {', '.join(f'{v:g}' for v in region)} ({region_mode})"
        status = (
            f"**Done.** Generated {len(audio) / rate:.2f} s of sound in {written - started:.1f} s "
            f"(model {loaded - started:.1f} s, onsets {detected - loaded:.1f} s, generation "
            f"{generated - detected:.1f} s for {int(steps)} steps, writing {written - generated:.1f} s); "
            f"{len(times)} {source} onset(s){unused}, seed {int(seed)}.{mux_note}"
        )
        return (
            status,
            muxed,
            str(wav),
            picture,
            report,
            plot,
            format_onsets(times),
            _onset_summary(times, source),
        )

    default_temporal_scale, default_steps = model_defaults(options.model)
    with gr.Blocks(title="FoleyCrafter demo", analytics_enabled=False) as app:
        gr.Markdown(
            "# FoleyCrafter: sound for silent video\n"
            "Upload a video (or pick an example), **Detect onsets** to see when the model thinks something "
            "makes a sound, edit those times if you like, and **Generate** a synchronized soundtrack. "
            f"Videos up to {options.max_seconds:g} s and {options.max_upload_mb:g} MB."
        )
        banner = gr.Markdown(model_banner(options.model), elem_id="model-banner")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload"], elem_id="input-video", height=320)
            with gr.Column(scale=1):
                prompt = gr.Textbox(
                    label="Prompt", placeholder="e.g. a hammer hitting metal", elem_id="prompt"
                )
                negative_prompt = gr.Textbox(label="Negative prompt", placeholder="e.g. speech, music")
                if examples:
                    gr.Examples(
                        [[str(path), caption] for path, caption in examples],
                        inputs=[video, prompt],
                        label="Examples (SynthFoley clips, rendered at start-up)",
                        cache_examples=False,
                    )
                with gr.Accordion("Settings", open=False):
                    with gr.Row():
                        semantic_scale = gr.Slider(
                            0,
                            2,
                            value=1.0,
                            step=0.05,
                            label="Semantic scale",
                            info="how much the picture shapes the sound (0 = off)",
                        )
                        temporal_scale = gr.Slider(
                            0,
                            2,
                            value=default_temporal_scale,
                            step=0.05,
                            label="Temporal scale",
                            info="how strongly the sound follows the onsets (0 = off)",
                        )
                        alignment_scale = gr.Slider(
                            0,
                            100,
                            value=0.0,
                            step=1,
                            label="Alignment guidance",
                            elem_id="alignment-scale",
                            info="steer each step towards what the model's alignment classifier calls in "
                            "sync with the video (Diff-Foley; 0 = off; needs a model with a classifier)",
                        )
                    with gr.Row():
                        steps = gr.Slider(1, 100, value=default_steps, step=1, label="Steps", elem_id="steps")
                        guidance_scale = gr.Slider(0, 15, value=7.5, step=0.5, label="Guidance scale")
                    with gr.Row():
                        threshold = gr.Slider(
                            0.05,
                            0.95,
                            value=0.5,
                            step=0.01,
                            label="Onset threshold",
                            elem_id="threshold",
                            info="detector probability at or above which a frame starts an onset",
                        )
                        seed = gr.Number(value=42, precision=0, label="Seed")
                    with gr.Row():
                        visual_attention = gr.Radio(
                            [ADAPTERS_OWN, *VISUAL_ATTENTION_MODES],
                            value=ADAPTERS_OWN,
                            label="Visual attention",
                            elem_id="visual-attention",
                            info="for a frame-aligned semantic adapter: which frames each moment of the sound "
                            "sees (all, up to that moment, or within the window around it)",
                        )
                        visual_attention_window = gr.Slider(
                            0,
                            5,
                            value=0.5,
                            step=0.05,
                            label="Framewise window (s)",
                            elem_id="visual-attention-window",
                        )
                    folder = gr.Textbox(
                        value=options.model,
                        label="Model folder",
                        elem_id="model-folder",
                        info="a native FoleyCrafter folder (written by save_pretrained)",
                    )
        plot = gr.Image(
            label="Onsets over the video (red: the times used; blue: detector probability; "
            "dashed: threshold)",
            type="pil",
            format="png",
            interactive=False,
            elem_id="onset-plot",
            height=260,
        )
        with gr.Row(equal_height=True):
            detect_button = gr.Button("1. Detect onsets", elem_id="detect", scale=1)
            onsets = gr.Textbox(
                label="Onset times (seconds, separated by commas)",
                placeholder="e.g. 0.5, 1.2, 2.8",
                info="Add, remove or move times. Empty: detected when you generate. 'none': no sound events.",
                elem_id="onsets",
                scale=3,
            )
            generate_button = gr.Button("2. Generate", variant="primary", elem_id="generate", scale=1)
        onset_summary = gr.Markdown(_onset_summary(None, ""), elem_id="onset-summary")
        with gr.Accordion("Loudness (for models with a loudness controller)", open=False):
            loudness_picture = gr.Image(
                label="Loudness over the video (red: the points the sound will follow; grey: the reference)",
                type="pil",
                format="png",
                interactive=False,
                elem_id="loudness-plot",
                height=260,
            )
            with gr.Row(equal_height=True):
                loudness_points = gr.Textbox(
                    label="Loudness points (seconds:dB, separated by commas)",
                    placeholder="e.g. 0:-40, 1.5:-10, 3:-30",
                    info="Joined by straight lines; 0 dB is full scale, -20 moderate, -60 faint. Empty: the "
                    "model chooses the levels.",
                    elem_id="loudness-points",
                    scale=3,
                )
                loudness_scale = gr.Slider(
                    0,
                    2,
                    value=1.0,
                    step=0.05,
                    label="Loudness scale",
                    elem_id="loudness-scale",
                    info="how strongly the sound follows the points (0 = off)",
                    scale=1,
                )
                loudness_gain = gr.Slider(
                    0,
                    1,
                    value=0.0,
                    step=0.05,
                    label="Gain to the curve",
                    elem_id="loudness-gain",
                    info="after generating, turn the sound up or down towards the points (1 = onto them "
                    "where there is sound, at most +36 dB; 0 = off): for a reference's curve, not a rough sketch",
                    scale=1,
                )
            with gr.Row(equal_height=True):
                reference = gr.File(
                    label="Reference recording (audio or video with sound)",
                    elem_id="loudness-reference",
                    scale=3,
                )
                with gr.Column(scale=1):
                    reference_button = gr.Button(
                        "Use the reference's loudness", elem_id="loudness-from-reference"
                    )
                    predicted_button = gr.Button("Predict it from the video", elem_id="loudness-from-video")
            gr.Markdown(
                "Or draw it: press and drag to sketch a stretch of the curve, drag a red point to move it, "
                "click to add one, double-click one to remove it (time across, 0 to -80 dB down)."
            )
            gr.HTML("", elem_id="loudness-editor")
            loudness_note = gr.Markdown("", elem_id="loudness-note")
        with gr.Accordion("Region (which object sounds)", open=False):
            with gr.Row(equal_height=True):
                region_box = gr.Textbox(
                    label="Region x0,y0,x1,y1 (fractions of the width and height, from the top left)",
                    placeholder="e.g. 0.5,0,1,1 for the right half",
                    info="Empty: the whole picture. The model then sees only this part of every frame.",
                    elem_id="region",
                    scale=3,
                )
                region_mode = gr.Radio(
                    ["crop", "mask"], value="crop", label="Shown as", elem_id="region-mode", scale=1
                )
            gr.Markdown("Or drag a box over the object on the video's current frame (a click clears it).")
            gr.HTML("", elem_id="region-editor")
            region_preview = gr.Image(
                label="The region on the video's middle frame",
                type="numpy",
                interactive=False,
                elem_id="region-preview",
                height=240,
            )
            region_note = gr.Markdown("", elem_id="region-note")
        status = gr.Markdown("", elem_id="status")
        with gr.Row():
            with gr.Column(scale=1):
                out_video = gr.Video(
                    label="Video with the generated sound",
                    interactive=False,
                    elem_id="output-video",
                    height=320,
                )
            with gr.Column(scale=1):
                spectrogram = gr.Image(
                    label="Spectrogram of the generated sound (white ticks: onsets)",
                    type="pil",
                    format="png",
                    interactive=False,
                    elem_id="spectrogram",
                    height=200,
                )
                out_wav = gr.File(label="Generated sound (wav)", interactive=False, elem_id="output-wav")
        report = gr.State(None)

        # One handler, so that the banner and the model's defaults arrive together.
        shown_folder = gr.State(options.model)
        folder.change(
            on_folder,
            [folder, shown_folder],
            [banner, temporal_scale, steps, shown_folder],
            queue=False,
        )
        video.change(
            on_video,
            [video, threshold],
            [status, report, plot, onsets, onset_summary],
            concurrency_limit=None,
        )
        # Detection and generation share one slot: one model, and on a CPU one job at a time is fastest.
        detect_button.click(
            on_detect,
            [video, folder, threshold, region_box, region_mode],
            [status, report, plot, onsets, onset_summary],
            concurrency_id="model",
            concurrency_limit=1,
        )
        onsets.change(
            on_edit, [onsets, video, report, threshold], [plot, onset_summary], concurrency_limit=None
        )
        region_box.change(
            on_region, [region_box, video], [region_preview, region_note], concurrency_limit=None
        )
        loudness_points.change(
            on_loudness_edit,
            [loudness_points, video],
            [loudness_picture, loudness_note],
            concurrency_limit=None,
        )
        predicted_button.click(
            on_predicted,
            [video, folder],
            [status, loudness_points, loudness_picture],
            concurrency_id="model",
            concurrency_limit=1,
        )
        reference_button.click(
            on_reference,
            [reference, video, folder],
            [status, loudness_points, loudness_picture],
            concurrency_id="model",
            concurrency_limit=1,
        )
        generate_button.click(
            on_generate,
            [
                video,
                prompt,
                negative_prompt,
                semantic_scale,
                temporal_scale,
                alignment_scale,
                steps,
                guidance_scale,
                seed,
                threshold,
                folder,
                onsets,
                report,
                loudness_points,
                loudness_scale,
                region_box,
                region_mode,
                visual_attention,
                visual_attention_window,
                loudness_gain,
            ],
            [status, out_video, out_wav, spectrogram, report, plot, onsets, onset_summary],
            concurrency_id="model",
            concurrency_limit=1,
        )
    return app


def _theme():
    import gradio as gr

    # System fonts: the default theme fetches web fonts from Google, which an offline or firewalled
    # machine would wait for.
    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


def serve(options: DemoOptions, block: bool = True, cache: PipelineCache | None = None):
    """Build and launch the app on ``options.host:options.port``.

    Args:
        block: wait until the server stops (the command line); False returns at once with the
            running app (tests: stop it with ``app.close()``).
    """
    app = build_app(options, cache)
    app.queue()
    app.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        max_file_size=f"{options.max_upload_mb:g}mb",
        prevent_thread_lock=not block,
        quiet=not block,
        theme=_theme(),
        head=f"<script>{EDITORS_SCRIPT.read_text(encoding='utf-8')}</script>",
        footer_links=[],
    )
    return app


# -- command line -----------------------------------------------------------------------------------
def build_parser(prog: str = "foleycrafter demo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the FoleyCrafter demo page: upload a video, edit its onsets, generate its sound.",
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"a native FoleyCrafter folder (default: ${MODEL_ENV}, else checkpoints/foleycrafter-tiny); "
        "the page says so when it is missing, and another folder can be typed there",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: this machine only; 0.0.0.0 serves the network)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--share", action="store_true", help="also publish a temporary public gradio.live link"
    )
    parser.add_argument(
        "--max-upload-mb",
        type=positive_number,
        default=MAX_UPLOAD_MB,
        help=f"largest upload in MB (default {MAX_UPLOAD_MB:g})",
    )
    parser.add_argument(
        "--max-seconds",
        type=positive_number,
        default=MAX_VIDEO_SECONDS,
        help=f"longest video in seconds (default {MAX_VIDEO_SECONDS:g})",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    parser.add_argument(
        "--no-examples", action="store_true", help="do not render the SynthFoley example videos at start-up"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "foleycrafter demo") -> int:
    args = build_parser(prog).parse_args(argv)
    from .runtime import quiet_libraries

    quiet_libraries()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        model=args.model or default_model(),
        host=args.host,
        port=args.port,
        share=args.share,
        max_upload_mb=args.max_upload_mb,
        max_seconds=args.max_seconds,
        device=args.device,
        examples=not args.no_examples,
    )
    try:
        serve(options)
    except DemoError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
