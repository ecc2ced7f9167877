"""The generation layer (video file -> windows -> conditions -> denoise -> join -> write) and the
pipeline's diffusers conventions (callbacks, properties, cross_attention_kwargs)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from foleycrafter import FoleyCrafterPipeline, generation, video
from foleycrafter.cli import main
from foleycrafter.testing import synthetic_frames, write_video
from foleycrafter.timeline import Timeline
from foleycrafter.video import VideoReadError, read_video_info

STEPS = 2


def run(pipe, source, seed=0, **kwargs):
    kwargs.setdefault("prompt", "a hammer hits metal")
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(video=source, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """12 s of small frames: two windows of the 10.24 s model window."""
    folder = tmp_path_factory.mktemp("long")
    return write_video(folder / "long clip.mp4", synthetic_frames(120, height=24, width=32), 10.0)


def _counting(monkeypatch, name):
    calls = []
    original = getattr(video, name)

    def counted(*args, **kwargs):
        calls.append(args[0] if args else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(video, name, counted)
    return calls


def test_one_generate_of_a_long_video_probes_the_file_once(native_model, long_video, tmp_path, monkeypatch):
    probes = _counting(monkeypatch, "_open_container")
    decodes = _counting(monkeypatch, "_open_capture")
    out = tmp_path / "out.mp4"
    code = main(
        ["generate", str(long_video), "-o", str(out), "--model", str(native_model), "--steps", "1", "--quiet"]
        + ["--onsets", "1.0,11.0", "--device", "cpu", "--dtype", "float32"]
    )
    assert code == 0 and out.is_file()
    assert len(probes) == 1  # cli's early check, planning, decoding and muxing share one probe
    assert len(decodes) == 2  # the decoder opens the file once per window
    written = read_video_info(out)
    assert written.has_audio and written.num_frames == 120


def test_check_inputs_touches_no_file_system(release_pipe, monkeypatch):
    probes = _counting(monkeypatch, "_open_container")
    arguments = dict(
        prompt="x",
        video="no/such/file.mp4",
        negative_prompt=None,
        audio_length_in_s=None,
        num_inference_steps=1,
        guidance_scale=7.5,
        semantic_scale=1.0,
        temporal_scale=0.2,
        video_embeds=None,
        onsets=[0.5],
        onset_probabilities=None,
        timestamp_mask=None,
        onset_threshold=None,
        timing="exact",
        prompt_embeds=None,
        negative_prompt_embeds=None,
        output_type="np",
        callback_on_step_end_tensor_inputs=["latents"],
    )
    release_pipe.check_inputs(**arguments)  # a missing file is not its business
    assert probes == []
    with pytest.raises(VideoReadError, match="no/such/file.mp4"):
        release_pipe(prompt="x", video="no/such/file.mp4", num_inference_steps=1)


def test_a_probed_file_gives_the_audio_of_its_path(release_pipe, long_video):
    by_path = run(release_pipe, str(long_video), audio_length_in_s=3.0, onsets=[1.0])
    by_info = run(release_pipe, read_video_info(long_video), audio_length_in_s=3.0, onsets=[1.0])
    np.testing.assert_array_equal(by_info.audios[0], by_path.audios[0])  # the same call on the same frames


def test_detection_and_generation_walk_the_same_windows(release_pipe, long_video):
    out = run(release_pipe, str(long_video), num_inference_steps=1)
    detections = generation.detect_in_windows(
        release_pipe.onset_detector, long_video, release_pipe.timeline()
    )
    assert len(out.windows) == len(detections) == 2
    for (start, end), detection in zip(out.windows, detections):
        assert start == detection.start_seconds and end == pytest.approx(detection.end_seconds)
    # The detector saw in each window the frames generation conditioned on.
    for k, detection in enumerate(detections):
        np.testing.assert_allclose(out.onset_probabilities[k], detection.probabilities, atol=1e-6)


def test_detection_in_a_region_sees_what_generation_sees(release_pipe, long_video):
    """With a region, the file-level detector (CLI ``onsets``, the demo) and generation's own
    detection read the same cropped frames."""
    region = (0.0, 0.0, 0.5, 1.0)
    out = run(release_pipe, str(long_video), num_inference_steps=1, region=region)
    detections = generation.detect_in_windows(
        release_pipe.onset_detector, long_video, release_pipe.timeline(), region=region
    )
    whole = generation.detect_in_windows(release_pipe.onset_detector, long_video, release_pipe.timeline())
    for k, detection in enumerate(detections):
        np.testing.assert_allclose(out.onset_probabilities[k], detection.probabilities, atol=1e-6)
    assert any(np.abs(a.probabilities - b.probabilities).max() > 1e-4 for a, b in zip(detections, whole))


def test_windows_of_a_clip_are_planned_without_decoding(long_video, monkeypatch):
    decodes = _counting(monkeypatch, "_open_capture")
    info = read_video_info(long_video)
    plans = generation.plan_items([info], None, [[1.0, 11.0]], Timeline())
    assert decodes == []
    (plan,) = plans
    assert plan.duration == pytest.approx(12.0) and len(plan.windows) == 2
    second = plan.windows[1]
    assert second.onsets == pytest.approx([11.0 - second.video_window.start_seconds])
    assert plan.windows[0].onsets == [1.0]


@pytest.mark.parametrize(
    "onsets,per_item",
    [([0.5, 1.5], False), ((0.5, 1.5), False), ([[0.5], [1.5]], True), (np.array([[0.5], [1.5]]), True)],
)
def test_shared_or_per_item_onsets_follow_the_documented_types(release_pipe, clip, onsets, per_item):
    out = release_pipe(
        prompt=["a", "b"], video=clip, onsets=onsets, num_inference_steps=1, output_type="latent"
    )
    first, second = out.timestamp_masks
    assert (not np.array_equal(first, second)) == per_item


def test_per_item_values_must_match_the_batch(release_pipe, clip):
    with pytest.raises(ValueError, match="`onsets` has 3 per-item entries for a batch of 2"):
        release_pipe(prompt=["a", "b"], video=clip, onsets=[[0.5], [1.0], [1.5]], num_inference_steps=1)


# -- diffusers conventions -------------------------------------------------------------------------
def test_callback_sees_the_call_and_its_replacements_are_read_back(release_pipe, clip):
    seen = []

    def watch(pipe, step, timestep, tensors):
        seen.append(
            (pipe.guidance_scale, pipe.do_classifier_free_guidance, pipe.num_timesteps, sorted(tensors))
        )
        return {}

    names = ["latents", "prompt_embeds", "negative_prompt_embeds"]
    plain = run(release_pipe, clip, guidance_scale=3.0, num_inference_steps=3, onsets=[1.0])
    watched = run(
        release_pipe,
        clip,
        guidance_scale=3.0,
        num_inference_steps=3,
        onsets=[1.0],
        callback_on_step_end=watch,
        callback_on_step_end_tensor_inputs=names,
    )
    count = release_pipe.num_timesteps  # PNDM runs 4 model steps for 3 inference steps
    assert count >= 3 and seen == [(3.0, True, count, sorted(names))] * count
    np.testing.assert_array_equal(watched.audios[0], plain.audios[0])

    def silence_the_text(pipe, step, timestep, tensors):
        return {"prompt_embeds": torch.zeros_like(tensors["prompt_embeds"])}

    replaced = run(
        release_pipe,
        clip,
        guidance_scale=3.0,
        num_inference_steps=3,
        onsets=[1.0],
        callback_on_step_end=silence_the_text,
        callback_on_step_end_tensor_inputs=["prompt_embeds"],
    )
    assert np.abs(replaced.mel_images - plain.mel_images).max() > 1e-3


def test_interrupt_skips_the_remaining_steps(release_pipe, clip):
    steps = []

    def stop(pipe, step, timestep, tensors):
        steps.append(step)
        pipe._interrupt = True
        return {}

    run(release_pipe, clip, num_inference_steps=4, onsets=[1.0], callback_on_step_end=stop)
    assert steps == [0]


def test_cross_attention_scale_weights_a_unet_lora(release_pipe, clip):
    from peft import LoraConfig

    pipe = FoleyCrafterPipeline(**{**release_pipe.components, "unet": copy.deepcopy(release_pipe.unet)})
    pipe.set_progress_bar_config(disable=True)
    base = run(pipe, clip, onsets=[1.0])
    torch.manual_seed(0)
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v"])
    )
    off = run(pipe, clip, onsets=[1.0], cross_attention_kwargs={"scale": 0.0})
    full = run(pipe, clip, onsets=[1.0])
    np.testing.assert_allclose(off.mel_images, base.mel_images, atol=1e-5)
    assert np.abs(full.mel_images - base.mel_images).max() > 1e-3
    with pytest.raises(ValueError, match="cross_attention_kwargs"):
        run(pipe, clip, cross_attention_kwargs=0.5)


def test_one_file_named_for_several_prompts_is_probed_and_decoded_once(release_pipe, long_video, monkeypatch):
    probes = _counting(monkeypatch, "_open_container")
    decodes = _counting(monkeypatch, "_open_capture")
    out = release_pipe(
        prompt=["a", "b"],
        video=[str(long_video), str(long_video)],
        audio_length_in_s=2.0,
        onsets=[0.5],
        num_inference_steps=1,
        generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)],
    )
    assert len(probes) == 1 and len(decodes) == 1
    assert [a.shape for a in out.audios] == [(32000,), (32000,)]
