"""The Gradio demo end to end: a real server on a loopback port, driven in headless Chromium.

The server runs in this process (a thread), with the tiny native model; the browser uploads a video,
detects onsets, edits one, generates, and the test fetches the result the page shows.

Needs gradio (the demo extra), Playwright's Python client and a Chromium at /usr/bin/chromium (no
browser download: ``playwright install`` is not used); each test skips with the reason otherwise.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_video

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
MAX_SECONDS = 3.0  # the server's duration limit, so a longer upload can be refused quickly
VIDEO_SECONDS = 2.0
STEPS = 2
TIMEOUT_MS = 60_000  # one generation (2 steps, tiny model) takes a few seconds; CI machines are slower


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(native_model):
    pytest.importorskip("gradio", reason="gradio is not installed (demo extra)")
    from foleycrafter.demo import DemoOptions, PipelineCache, serve

    cache = PipelineCache(device="cpu")
    options = DemoOptions(model=str(native_model), port=_free_port(), max_seconds=MAX_SECONDS, device="cpu")
    app = serve(options, block=False, cache=cache)
    yield f"http://127.0.0.1:{options.port}/", cache
    app.close()


@pytest.fixture()
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server[0], wait_until="domcontentloaded")
    page.wait_for_selector("#generate")
    yield page
    page.close()


@pytest.fixture(scope="module")
def test_video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("demo") / "clip.mp4", seconds=VIDEO_SECONDS, fps=15)


def _wait_for_text(page, selector: str, text: str, timeout: float | None = None) -> str:
    """Wait until ``selector`` shows ``text`` (``timeout`` ms; playwright's default if None); its text."""
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=timeout,
    )
    return page.inner_text(selector)


def _fill_until(page, selector: str, value: str, target: str, text: str, attempts: int = 4) -> str:
    """Type ``value`` into ``selector`` until ``target`` shows ``text``. A box in an accordion that
    has just opened may still be rendering (gradio fires its change event then, with the old
    value), and on a loaded machine that can swallow the first edit."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for attempt in range(attempts):
        page.fill(selector, value)
        try:
            return _wait_for_text(page, target, text, timeout=15000)
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise


def _open_settings(page) -> None:
    """Open the Settings accordion and let its components mount: a value typed into a slider while
    it mounts can be reset to the slider's initial value (seen on a loaded CI machine)."""
    page.get_by_role("button", name="Settings").click()
    page.locator("#steps input[type=number]").wait_for(state="visible")
    page.wait_for_timeout(500)


def _set_number(page, elem_id: str, value, attempts: int = 4) -> None:
    """Type ``value`` into a slider's number box, and again if it did not hold."""
    field = page.locator(f"#{elem_id} input[type=number]")
    for _ in range(attempts):
        field.fill(str(value))
        field.press("Enter")
        page.wait_for_timeout(300)
        if float(field.input_value()) == float(value):
            return
    raise AssertionError(f"the {elem_id} slider does not keep {value}: it shows {field.input_value()}")


def _upload(page, path: Path) -> None:
    page.set_input_files("#input-video input[type=file]", str(path))


def _generate_and_fetch(page, tmp_path: Path) -> tuple[str, Path]:
    page.click("#generate")
    status = _wait_for_text(page, "#status", "Done.")
    page.wait_for_function("document.querySelector('#output-video video')?.getAttribute('src')")
    source = page.get_attribute("#output-video video", "src")
    response = page.request.get(source)
    assert response.ok, f"the output video at {source} could not be fetched: HTTP {response.status}"
    result = tmp_path / "result.mp4"
    result.write_bytes(response.body())
    return status, result


def _assert_soundtrack(video: Path, duration: float) -> None:
    from foleycrafter.video import read_audio_track

    audio = read_audio_track(video, sample_rate=16000)
    assert np.sqrt(np.mean(audio**2)) > 1e-4, "the output video's soundtrack is silent"
    assert abs(len(audio) / 16000 - duration) < 0.1, (
        f"soundtrack lasts {len(audio) / 16000:.3f} s, not {duration}"
    )


def test_detect_edit_generate(page, server, native_model, test_video, tmp_path):
    from foleycrafter.demo import format_onsets
    from foleycrafter.generation import detect_video_onsets

    _, cache = server
    assert page.locator("#model-banner").inner_text().startswith("Model:")
    assert page.get_by_text("hammering on a sheet of metal").count() == 1  # the rendered example
    _upload(page, test_video)
    assert "2.00 s" in _wait_for_text(page, "#status", "fps")

    # The tiny detector is random: pick a threshold at which it finds onsets in this video, and
    # compute what the page must show with the same detector.
    pipe = cache.get(Path(native_model))
    detector, timeline = pipe.onset_detector, pipe.timeline()
    probabilities = detect_video_onsets(detector, test_video, timeline, 0.5, short_side=256)["frames"][
        "probabilities"
    ]
    threshold = math.floor(float(np.median(probabilities)) * 100) / 100  # the slider's 0.01 steps
    found = detect_video_onsets(detector, test_video, timeline, threshold, short_side=256)["onsets"]
    expected = sorted({round(t, 2) for t in found})  # shown to 10 ms, each time once
    assert expected, "test setup: the detector should find onsets at the median probability"

    _open_settings(page)
    _set_number(page, "steps", STEPS)
    _set_number(page, "threshold", threshold)
    page.click("#detect")
    _wait_for_text(page, "#status", "Detected")
    assert page.input_value("#onsets textarea") == format_onsets(expected)
    assert page.locator("#onset-plot img").count() == 1

    # Move the first onset to 0.5 s (or 0.6 s if that one is taken), as a visitor would.
    times = list(expected)
    times[0] = 0.6 if 0.5 in times else 0.5
    edited = format_onsets(sorted(set(times)))
    page.fill("#onsets textarea", edited)
    summary = _wait_for_text(page, "#onset-summary", "edited")
    assert f"{len(set(times))} at" in summary

    status, result = _generate_and_fetch(page, tmp_path)
    assert f"{len(set(times))} edited onset(s)" in status
    assert f"for {STEPS} steps" in status
    assert page.input_value("#onsets textarea") == edited
    _assert_soundtrack(result, VIDEO_SECONDS)
    assert page.locator("#spectrogram img").count() == 1
    wav_link = page.locator("#output-wav a[href*='clip_foley.wav']").first.get_attribute("href")
    wav = page.request.get(wav_link)
    assert wav.ok and wav.body()[:4] == b"RIFF", f"the wav download at {wav_link} is not a wav file"
    (tmp_path / "result.wav").write_bytes(wav.body())
    _assert_soundtrack(tmp_path / "result.wav", VIDEO_SECONDS)

    page.wait_for_timeout(500)  # let the onset plot redraw before the picture
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)


def test_bad_inputs_are_reported_and_the_server_keeps_serving(page, native_model, test_video, tmp_path):
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("these are notes, not a video\n")
    _upload(page, not_a_video)
    status = _wait_for_text(page, "#status", "Cannot use this video.")
    assert "The upload notes.mp4 is not a readable video" in status

    page.click("#generate")  # with the unreadable upload: the same message, no crash
    assert "notes.mp4 is not a readable video" in _wait_for_text(page, "#status", "Could not generate.")

    too_long = make_video(tmp_path / "long.mp4", seconds=MAX_SECONDS + 1, fps=15)
    page.locator("#input-video button[aria-label='Clear']").click()
    _upload(page, too_long)
    status = _wait_for_text(page, "#status", "Cannot use this video.")
    assert (
        f"long.mp4 is {MAX_SECONDS + 1:.1f} s long; this demo takes videos up to {MAX_SECONDS:g} s" in status
    )

    page.locator("#input-video button[aria-label='Clear']").click()
    _upload(page, test_video)
    _wait_for_text(page, "#status", "fps")
    _open_settings(page)
    banner = _fill_until(
        page, "#model-folder textarea", str(tmp_path / "no-model"), "#model-banner", "Model missing"
    )
    assert "Model folder not found" in banner
    page.click("#detect")
    assert "Model folder not found" in _wait_for_text(page, "#status", "Could not detect onsets.")

    _fill_until(page, "#model-folder textarea", str(native_model), "#model-banner", "Model:")
    # The banner and the model's defaults arrive together: the steps slider now shows its 25.
    assert page.input_value("#steps input[type=number]") == "25"
    _set_number(page, "steps", STEPS)
    # Alignment guidance with a model that has no classifier: said plainly, nothing generated.
    _set_number(page, "alignment-scale", 5)
    page.click("#generate")
    status = _wait_for_text(page, "#status", "Could not generate.")
    assert "Alignment guidance is 5" in status and "has no alignment classifier" in status
    _set_number(page, "alignment-scale", 0)
    page.fill("#onsets textarea", "0.3, 1.1")
    _wait_for_text(page, "#onset-summary", "edited")
    status, result = _generate_and_fetch(page, tmp_path)
    assert "2 edited onset(s)" in status and f"for {STEPS} steps" in status
    _assert_soundtrack(result, VIDEO_SECONDS)


def test_loudness_points_and_reference(page, model_with_loudness_controller, test_video, tmp_path):
    """Typed points are drawn and checked as they are typed; a model without a loudness controller is
    refused with what to do; a reference recording becomes editable points; the points steer."""
    from foleycrafter.video import write_audio

    _upload(page, test_video)
    _wait_for_text(page, "#status", "fps")
    page.get_by_role("button", name="Loudness (for models with a loudness controller)").click()
    page.locator("#loudness-points textarea").wait_for(state="visible")
    page.wait_for_timeout(500)
    note = _fill_until(
        page, "#loudness-points textarea", "0:loud", "#loudness-note", "Check the loudness points"
    )
    assert "0:loud is not seconds:dB" in note  # Markdown shows the code marks as code
    _fill_until(page, "#loudness-points textarea", "0:-50, 1.5:-10", "#loudness-note", "2 point(s)")
    _open_settings(page)
    _set_number(page, "steps", STEPS)
    page.click("#generate")  # the server's model has no loudness controller
    status = _wait_for_text(page, "#status", "Could not generate.")
    assert "has no loudness controller" in status and "clear the points" in status

    _fill_until(
        page, "#model-folder textarea", str(model_with_loudness_controller), "#model-banner", "Model:"
    )
    _set_number(page, "steps", STEPS)
    status, result = _generate_and_fetch(page, tmp_path)
    assert "following 2 loudness point(s)" in status
    _assert_soundtrack(result, VIDEO_SECONDS)
    # The gain stage moves the generated sound onto the points, which the controller alone does not.
    from foleycrafter.loudness import audio_loudness, loudness_error_db
    from foleycrafter.timeline import Timeline
    from foleycrafter.video import read_audio_track

    timeline = Timeline()
    columns = timeline.clip_columns(VIDEO_SECONDS)
    target = np.interp((np.arange(columns) + 0.5) / timeline.columns_per_second, [0, 1.5], [-50, -10])

    def error(path):
        return loudness_error_db(audio_loudness(read_audio_track(path, sample_rate=16000), timeline), target)

    free = error(result)
    page.get_by_role(
        "button", name="Loudness (for models with a loudness controller)"
    ).scroll_into_view_if_needed()
    _set_number(page, "loudness-gain", 1)
    previous = page.get_attribute("#output-video video", "src")
    page.click("#generate")
    _wait_for_text(page, "#status", "with a gain of 1 towards them")
    page.wait_for_function(
        "src => document.querySelector('#output-video video')?.getAttribute('src') !== src", arg=previous
    )
    shaped = tmp_path / "shaped.mp4"
    shaped.write_bytes(page.request.get(page.get_attribute("#output-video video", "src")).body())
    assert error(shaped) < free - 3

    # A reference that swells from silence: its curve arrives as points that rise.
    t = np.arange(int(VIDEO_SECONDS * 16000)) / 16000
    reference = write_audio(
        tmp_path / "swell.wav", 0.5 * (t / t[-1]) ** 2 * np.sin(2 * np.pi * 440 * t), 16000
    )
    page.set_input_files("#loudness-reference input[type=file]", str(reference))
    page.wait_for_timeout(500)
    page.click("#loudness-from-reference")
    status = _wait_for_text(page, "#status", "points (red)")
    assert "swell.wav" in status
    from foleycrafter.loudness import parse_loudness_points

    times, levels = parse_loudness_points(page.input_value("#loudness-points textarea"))
    assert len(times) >= 3 and levels[-1] > levels[1] + 20 and times[-1] <= VIDEO_SECONDS
    _wait_for_text(page, "#loudness-note", "point(s)")

    # The model's loudness predictor reads a curve off the video: points replace the reference's.
    page.click("#loudness-from-video")
    _wait_for_text(page, "#status", "Predicted loudness of the video")
    times, levels = parse_loudness_points(page.input_value("#loudness-points textarea"))
    assert len(times) >= 2 and np.all(levels <= 0) and np.all(levels >= -80)


def test_region_box(page, native_model, test_video, tmp_path):
    """A typed box is drawn on the video's middle frame and checked; generation sees only it."""
    _upload(page, test_video)
    _wait_for_text(page, "#status", "fps")
    page.get_by_role("button", name="Region (which object sounds)").click()
    page.locator("#region textarea").wait_for(state="visible")
    page.wait_for_timeout(500)
    note = _fill_until(page, "#region textarea", "0.8,0,0.5,1", "#region-note", "Check the region")
    assert "x0 < x1" in note
    _fill_until(page, "#region textarea", "0.5,0,1,1", "#region-note", "Only the boxed part")
    page.wait_for_function("document.querySelector('#region-preview img')?.getAttribute('src')")
    _open_settings(page)
    _set_number(page, "steps", STEPS)
    status, result = _generate_and_fetch(page, tmp_path)
    assert "seeing only the region 0.5, 0, 1, 1 (crop)" in status
    _assert_soundtrack(result, VIDEO_SECONDS)


def test_visual_attention(page, native_model, model_with_frame_aligned_adapter, test_video, tmp_path):
    """A visual attention mask is refused for a mean-embedding adapter, with what to do, and used by a
    frame-aligned one."""
    _upload(page, test_video)
    _wait_for_text(page, "#status", "fps")
    _open_settings(page)
    _fill_until(page, "#model-folder textarea", str(native_model), "#model-banner", "Model:")
    _set_number(page, "steps", STEPS)
    page.locator("#visual-attention").get_by_label("causal").check()
    page.click("#generate")
    status = _wait_for_text(page, "#status", "Could not generate.")
    assert "Visual attention is causal" in status and "not frame-aligned" in status

    folder = str(model_with_frame_aligned_adapter[0])
    _fill_until(page, "#model-folder textarea", folder, "#model-banner", "Model:")
    _set_number(page, "steps", STEPS)
    page.locator("#visual-attention").get_by_label("framewise").check()
    _set_number(page, "visual-attention-window", 1.5)
    status, result = _generate_and_fetch(page, tmp_path)
    assert "visual attention framewise (1.5 s)" in status
    _assert_soundtrack(result, VIDEO_SECONDS)


def _canvas(page, editor: str):
    """The editor's canvas, visible, and its box on the page (CSS pixels)."""
    canvas = page.locator(f"#{editor} canvas")
    canvas.wait_for(state="visible")
    canvas.scroll_into_view_if_needed()  # the mouse acts at viewport coordinates
    page.wait_for_timeout(300)
    return canvas.bounding_box()


def _drag(page, start, end, steps: int = 12) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def test_drawing_the_loudness_curve_and_the_region(page, test_video):
    """The editors write what is drawn into the text fields the server reads: a freehand stroke
    becomes points, a point dragged moves, a double click removes one; a box dragged over the frame
    becomes the region, a click clears it."""
    from foleycrafter.loudness import parse_loudness_points

    _upload(page, test_video)
    _wait_for_text(page, "#status", "fps")
    page.wait_for_function("document.querySelector('#input-video video')?.duration > 0")
    page.get_by_role("button", name="Loudness (for models with a loudness controller)").click()

    def at(t, db):
        """Where (t s, db dB) is drawn: the plot area is the canvas less a 42 px axis on the left and
        10 / 10 / 24 px margins. Read afresh: typing elsewhere may have scrolled the page."""
        box = _canvas(page, "loudness-editor")
        width, height = box["width"] - 52, box["height"] - 34
        return box["x"] + 42 + t / VIDEO_SECONDS * width, box["y"] + 10 + (-db) / 80 * height

    # A rising stroke over the first half becomes points that rise.
    _drag(page, at(0.1, -70), at(1.0, -10))
    page.wait_for_function("document.querySelector('#loudness-points textarea').value.length > 0")
    _wait_for_text(page, "#loudness-note", "point(s)")
    times, levels = parse_loudness_points(page.input_value("#loudness-points textarea"), VIDEO_SECONDS)
    assert len(times) >= 3 and np.all(np.diff(times) > 0)
    assert levels[0] < -55 and levels[-1] > -25 and times[-1] == pytest.approx(1.0, abs=0.1)

    # Typed points are drawn; dragging one moves it and the field follows.
    _fill_until(page, "#loudness-points textarea", "0.5:-60, 1.5:-20", "#loudness-note", "2 point(s)")
    page.wait_for_timeout(400)
    _drag(page, at(1.5, -20), at(1.5, -50), steps=6)
    page.wait_for_function("document.querySelector('#loudness-points textarea').value !== '0.5:-60, 1.5:-20'")
    times, levels = parse_loudness_points(page.input_value("#loudness-points textarea"), VIDEO_SECONDS)
    assert list(times) == pytest.approx([0.5, 1.5], abs=0.05) and levels[1] == pytest.approx(-50, abs=3)
    page.mouse.dblclick(*at(0.5, -60))
    page.wait_for_function("!document.querySelector('#loudness-points textarea').value.includes('0.5:')")
    times, _ = parse_loudness_points(page.input_value("#loudness-points textarea"), VIDEO_SECONDS)
    assert list(times) == pytest.approx([1.5], abs=0.05)

    page.get_by_role("button", name="Region (which object sounds)").click()
    box = _canvas(page, "region-editor")
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    _drag(page, (centre[0] - 30, centre[1] - 30), (centre[0] + 30, centre[1] + 30))
    page.wait_for_function("document.querySelector('#region textarea').value.split(',').length === 4")
    x0, y0, x1, y1 = (float(v) for v in page.input_value("#region textarea").split(","))
    assert x0 < 0.5 < x1 and y0 < 0.5 < y1 and x1 - x0 < 0.9
    _wait_for_text(page, "#region-note", "Only the boxed part")
    page.mouse.click(*centre)
    page.wait_for_function("document.querySelector('#region textarea').value === ''")
    _wait_for_text(page, "#region-note", "whole picture")


def test_onset_text():
    from foleycrafter.demo import DemoError, format_onsets, parse_onsets

    assert parse_onsets("  ", 2.0) is None  # empty: the detector decides
    assert parse_onsets("None", 2.0) == []
    assert parse_onsets("1.2, 0.5;0.5  0.7s", 2.0) == [0.5, 0.7, 1.2]
    assert format_onsets([0.5, 1.234]) == "0.50, 1.23"
    assert format_onsets([]) == "none"  # an empty field would mean "detect them"
    for text, message in (("0.5, x", "`x` is not a number"), ("-1", ">= 0"), ("2", "at or after the end")):
        with pytest.raises(DemoError, match=message):
            parse_onsets(text, 2.0)


def test_model_and_video_checks(tmp_path, test_video):
    from foleycrafter.demo import (
        DemoError,
        check_video,
        model_banner,
        model_defaults,
        model_folder,
        on_folder,
    )
    from foleycrafter.runtime import BUNDLED_MODEL as DEFAULT_MODEL

    if not DEFAULT_MODEL.is_dir():
        with pytest.raises(DemoError, match="does not exist yet"):
            model_folder(str(DEFAULT_MODEL))
    with pytest.raises(DemoError, match="Model folder not found"):
        model_folder(str(tmp_path / "missing"))
    with pytest.raises(DemoError, match="no model_index.json"):
        model_folder(str(tmp_path))
    assert model_banner("").startswith("**Model missing.**")
    # The temporal and steps sliders start at the model's own defaults, read without loading the model.
    (tmp_path / "model_index.json").write_text(
        '{"default_temporal_scale": 0.5, "default_num_inference_steps": 12}'
    )
    assert model_defaults(str(tmp_path)) == (0.5, 12)
    (tmp_path / "model_index.json").write_text("{}")
    assert model_defaults(str(tmp_path)) == (0.2, 25)
    assert model_defaults(str(tmp_path / "missing")) == (0.2, 25)
    # A change event with the folder already shown (gradio fires one when the box first renders)
    # leaves the sliders alone; a new folder brings its defaults.
    banner, temporal, steps, shown = on_folder(str(tmp_path), str(tmp_path))
    assert temporal == steps == {"__type__": "update"} and shown == str(tmp_path)
    assert on_folder(str(tmp_path / "missing"), str(tmp_path))[1:] == (0.2, 25, str(tmp_path / "missing"))
    (tmp_path / "model_index.json").write_text("{not json")
    assert model_defaults(str(tmp_path)) == (0.2, 25)

    assert check_video(test_video, max_upload_mb=1, max_seconds=60).duration == pytest.approx(VIDEO_SECONDS)
    with pytest.raises(DemoError, match="up to 0.001 MB"):
        check_video(test_video, max_upload_mb=0.001, max_seconds=60)
    with pytest.raises(DemoError, match="up to 1 s"):
        check_video(test_video, max_upload_mb=1, max_seconds=1)
    with pytest.raises(DemoError, match="No video yet"):
        check_video(None, max_upload_mb=1, max_seconds=60)
