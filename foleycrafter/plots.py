"""Small pictures for people: onset timelines and spectrograms, drawn with Pillow (no plotting
library needed at run time)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 1000, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 50, 20, 20, 40


def _x(seconds: float, duration: float) -> float:
    return MARGIN_LEFT + (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) * seconds / max(duration, 1e-9)


def _y(probability: float) -> float:
    return HEIGHT - MARGIN_BOTTOM - (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM) * probability


def _time_axes(duration: float) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A white picture with the plot's frame and a time axis in seconds under it."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    draw.rectangle([left, top, right, bottom], outline="black")
    step = max(1, int(np.ceil(duration / 10)))
    for second in range(0, int(duration) + 1, step):
        x = _x(second, duration)
        draw.line([x, bottom, x, bottom + 5], fill="black")
        draw.text((x - 8, bottom + 8), f"{second}s", fill="black")
    return image, draw


def onset_plot(report: dict) -> Image.Image:
    """The detector's probability over time, the threshold (dashed) and the onsets (red lines).

    Args:
        report: as returned by :func:`foleycrafter.generation.detect_video_onsets`.
    """
    duration = float(report["duration"])
    image, draw = _time_axes(duration)
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    for value in (0.0, 0.5, 1.0):
        draw.text((8, _y(value) - 6), f"{value:.1f}", fill="black")
    threshold_y = _y(float(report["threshold"]))
    for x in range(left, right, 12):
        draw.line([x, threshold_y, min(x + 6, right), threshold_y], fill=(120, 120, 120))
    for onset in report["onsets"]:
        x = _x(onset, duration)
        draw.line([x, top, x, bottom], fill=(220, 30, 30), width=2)
    times, probabilities = report["frames"]["times"], report["frames"]["probabilities"]
    points = [(_x(t, duration), _y(p)) for t, p in zip(times, probabilities)]
    if len(points) > 1:
        draw.line(points, fill=(30, 80, 200), width=2)
    draw.text((left + 4, top + 2), f"onsets: {len(report['onsets'])}", fill="black")
    return image


def loudness_plot(duration: float, points=None, reference=None, floor_db: float = -80.0) -> Image.Image:
    """A loudness curve over the video: the points a generation will follow (red, joined by
    straight lines and held at the ends, as the pipeline reads them) over a reference curve (grey).

    Args:
        duration: the video's length (s).
        points: ``(times, levels)`` in seconds and dBFS, or ``None`` (no curve yet).
        reference: ``(times, levels)`` of a measured or predicted curve to draw beneath, or ``None``.
    """
    image, draw = _time_axes(duration)
    left, top = MARGIN_LEFT, MARGIN_TOP

    def y(level: float) -> float:
        return _y(1.0 - min(max(level, floor_db), 0.0) / floor_db)

    for level in (0, -20, -40, -60, -80):
        draw.text((4, y(level) - 6), f"{level}", fill="black")
    for curve, color, width in ((reference, (150, 150, 150), 1), (points, (220, 30, 30), 2)):
        if curve is None or not len(curve[0]):
            continue
        times, levels = (np.asarray(v, dtype=np.float64) for v in curve)
        grid = np.linspace(0.0, duration, 400)
        line = [(_x(t, duration), y(v)) for t, v in zip(grid, np.interp(grid, times, levels))]
        draw.line(line, fill=color, width=width)
        if curve is points:
            for t, v in zip(times, levels):
                draw.ellipse([_x(t, duration) - 3, y(v) - 3, _x(t, duration) + 3, y(v) + 3], fill=color)
    label = "loudness (dBFS)" if points is not None else "no loudness curve: the sound's level is free"
    draw.text((left + 4, top + 2), label, fill="black")
    return image


def spectrogram_image(mel_image, onsets=None, timeline=None) -> Image.Image:
    """A mel image (3, n_mels, columns) or (n_mels, columns) in [0, 1] (low frequencies at the bottom)
    as a picture, with red ticks at ``onsets`` (s) when given (placed with ``timeline``)."""
    array = np.asarray(mel_image, dtype=np.float32)
    if array.ndim == 3:
        array = array[0]
    # A perceptual ramp from dark blue through red to yellow makes quiet and loud parts both readable.
    value = np.clip(array, 0, 1)
    rgb = np.stack(
        [
            np.clip(1.6 * value, 0, 1),
            np.clip(2.0 * value - 0.8, 0, 1),
            np.clip(0.5 - np.abs(value - 0.3), 0, 1),
        ],
        -1,
    )
    image = Image.fromarray((rgb * 255).astype(np.uint8))
    if onsets is not None and timeline is not None:
        draw = ImageDraw.Draw(image)
        for onset in onsets:
            x = timeline.seconds_to_column(onset)
            draw.line([x, 0, x, 8], fill=(255, 255, 255), width=2)
    return image
