"""The `foleycrafter` command: run as a subprocess on generated and real videos, with a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_video, video_packets_md5

from foleycrafter.cli import main
from foleycrafter.testing import synthetic_frames, write_video
from foleycrafter.video import read_audio_track, read_video_info, run_ffmpeg

SR = 16000
FAST = ("-preset", "ultrafast")
AAC_FRAME_SECONDS = 1024 / SR


def run_cli(*args, env_model=None, cwd=None):
    env = dict(os.environ)
    env.pop("FOLEYCRAFTER_MODEL", None)
    if env_model is not None:
        env["FOLEYCRAFTER_MODEL"] = str(env_model)
    return subprocess.run(
        [sys.executable, "-m", "foleycrafter.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {
        "silent_15": make_video(
            folder / "silent 14.96.mp4", seconds=2.0, fps=14.96, size=(64, 48), extra=FAST
        ),
        "sound_30": make_video(
            folder / "with sound 29.97.mp4",
            seconds=1.5,
            fps=29.97,
            size=(80, 60),
            audio_seconds=1.5,
            tone=330,
            extra=FAST,
        ),
        "odd_24": make_video(folder / "größe 24.mp4", seconds=2.5, fps=24, size=(96, 54), extra=FAST),
    }


def test_batch_folder_writes_each_video_with_its_generated_soundtrack(videos, native_model, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "generate",
        videos["silent_15"].parent,
        "-o",
        out,
        "--steps",
        "2",
        "--prompt",
        "a knock",
        env_model=native_model,
    )
    assert result.returncode == 0, result.stderr
    assert "3 written, 0 skipped, 0 failed" in result.stderr
    for source in videos.values():
        target = out / f"{source.stem}_foley.mp4"
        assert target.is_file(), result.stderr
        before, after = read_video_info(source), read_video_info(target)
        assert after.num_frames == before.num_frames
        assert after.video_codec == before.video_codec
        assert video_packets_md5(target) == video_packets_md5(source), "the video stream must be copied"
        audio = read_audio_track(target, sample_rate=SR)
        assert abs(len(audio) / SR - before.duration) <= AAC_FRAME_SECONDS
        assert np.abs(audio).max() > 1e-4
    # The original soundtrack (a 330 Hz sine) is replaced by the generated one.
    generated = read_audio_track(out / f"{videos['sound_30'].stem}_foley.mp4", sample_rate=SR)
    original = read_audio_track(videos["sound_30"], sample_rate=SR)
    n = min(len(generated), len(original))
    assert abs(np.corrcoef(generated[:n], original[:n])[0, 1]) < 0.5
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"


def test_wav_and_mp4_carry_the_same_audio(videos, native_model, tmp_path):
    video = videos["silent_15"]
    for name in ("a.wav", "a.mp4"):
        result = run_cli(
            "generate",
            video,
            "-o",
            tmp_path / name,
            "--steps",
            "2",
            "--seed",
            "7",
            "--onsets",
            "0.3,1.1",
            "--model",
            native_model,
        )
        assert result.returncode == 0, result.stderr
    wav = read_audio_track(tmp_path / "a.wav", sample_rate=SR)
    mp4 = read_audio_track(tmp_path / "a.mp4", sample_rate=SR)
    assert len(wav) == round(read_video_info(video).duration * SR)
    n = min(len(wav), len(mp4))
    # AAC is lossy and may shift by its priming delay; the waveforms still match closely.
    assert np.corrcoef(wav[:n], mp4[:n])[0, 1] > 0.9


def test_keep_original_audio_adds_a_second_track(videos, native_model, tmp_path):
    main(
        [
            "generate",
            str(videos["sound_30"]),
            "-o",
            str(tmp_path / "both.mp4"),
            "--steps",
            "1",
            "--model",
            str(native_model),
            "--keep-original-audio",
            "--quiet",
        ]
    )
    assert read_video_info(tmp_path / "both.mp4").audio_streams == 2


def test_sampler_and_steps_default_to_the_models_own(videos, native_model, tmp_path):
    """No --steps: the model folder's default_num_inference_steps; --scheduler swaps the sampler."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(native_model, model)
    index = json.loads((model / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    (model / "model_index.json").write_text(json.dumps({**index, "default_num_inference_steps": 2}))

    def audio(name, *options):
        target = tmp_path / f"{name}.wav"
        main(["generate", str(videos["silent_15"]), "-o", str(target), "--model", str(model), "--quiet", *options])  # fmt: skip
        return read_audio_track(target, sample_rate=SR)

    saved_default = audio("saved_default")
    np.testing.assert_array_equal(saved_default, audio("saved_2", "--steps", "2"))
    assert not np.allclose(saved_default, audio("saved_3", "--steps", "3"))
    # PNDM rebuilt from the saved config is the saved sampler; DPM-Solver++ is another.
    np.testing.assert_array_equal(saved_default, audio("pndm_2", "--scheduler", "pndm"))
    assert not np.allclose(saved_default, audio("dpm_2", "--scheduler", "dpm++"))


def test_real_clips(shared_media, native_model, tmp_path):
    result = run_cli(
        "generate", shared_media / "video" / "*.mp4", "-o", tmp_path, "--steps", "1", "--model", native_model
    )
    assert result.returncode == 0, result.stderr
    for source in sorted((shared_media / "video").glob("*.mp4")):
        target = tmp_path / f"{source.stem}_foley.mp4"
        info = read_video_info(source)
        assert read_video_info(target).num_frames == info.num_frames
        assert video_packets_md5(target) == video_packets_md5(source)
        assert abs(len(read_audio_track(target, sample_rate=SR)) / SR - info.duration) <= AAC_FRAME_SECONDS


# -- refusals: a clear message, exit code 2, nothing written ---------------------------------------
def test_existing_output_is_not_overwritten(videos, native_model, tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")
    code = main(
        [
            "generate",
            str(videos["silent_15"]),
            "-o",
            str(target),
            "--model",
            str(native_model),
            "--steps",
            "1",
        ]
    )
    assert code == 2
    assert target.read_bytes() == b"precious"
    assert (
        main(
            [
                "generate",
                str(videos["silent_15"]),
                "-o",
                str(target),
                "--model",
                str(native_model),
                "--steps",
                "1",
                "--overwrite",
                "--quiet",
            ]
        )
        == 0
    )
    assert read_video_info(target).num_frames == read_video_info(videos["silent_15"]).num_frames


def test_skip_existing_in_batch(videos, native_model, tmp_path, capsys):
    (tmp_path / f"{videos['odd_24'].stem}_foley.mp4").write_bytes(b"done before")
    code = main(
        [
            "generate",
            str(videos["odd_24"]),
            str(videos["silent_15"]),
            "-o",
            str(tmp_path),
            "--model",
            str(native_model),
            "--steps",
            "1",
            "--skip-existing",
            "--quiet",
        ]
    )
    assert code == 0
    assert "1 written, 1 skipped, 0 failed" in capsys.readouterr().err
    assert (tmp_path / f"{videos['odd_24'].stem}_foley.mp4").read_bytes() == b"done before"


def test_one_bad_file_does_not_stop_the_batch(videos, native_model, tmp_path, capsys):
    bad = tmp_path / "in" / "broken.mp4"
    bad.parent.mkdir()
    bad.write_text("this is not a video")
    good = bad.parent / "good.mp4"
    good.write_bytes(videos["silent_15"].read_bytes())
    code = main(
        [
            "generate",
            str(bad.parent),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(native_model),
            "--steps",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "1 written, 0 skipped, 1 failed" in err and "broken.mp4" in err
    assert (tmp_path / "out" / "good_foley.mp4").is_file()
    assert not (tmp_path / "out" / "broken_foley.mp4").exists()


def truncated_copy(folder: Path) -> Path:
    """An H.264 mp4 cut to a third of its bytes (its index at the end is lost)."""
    source = make_video(folder / "whole.mp4", seconds=2.0, fps=15, size=(64, 48), extra=FAST)
    data = source.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    return folder / "truncated.mp4"


@pytest.mark.parametrize(
    "make_input,message",
    [
        (lambda d: d / "missing.mp4", "input not found"),
        (lambda d: (d / "notes.mp4").write_text("hello") and d / "notes.mp4", "notes.mp4"),
        (lambda d: "", "empty"),
        (lambda d: truncated_copy(d), "truncated.mp4"),
    ],
)
def test_bad_inputs_are_one_line_errors(make_input, message, native_model, tmp_path, capsys):
    source = make_input(tmp_path)
    code = main(["generate", str(source), "-o", str(tmp_path / "out.mp4"), "--model", str(native_model)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("foleycrafter: error:") and "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_audio_only_input_is_refused(native_model, tmp_path, capsys):
    audio = tmp_path / "voice.m4a"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-y", str(audio)])
    assert main(["generate", str(audio), "-o", str(tmp_path / "x.mp4"), "--model", str(native_model)]) == 2
    assert "no video stream" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_output_over_the_input_is_refused(videos, native_model, capsys):
    before = videos["silent_15"].read_bytes()
    code = main(
        [
            "generate",
            str(videos["silent_15"]),
            "-o",
            str(videos["silent_15"]),
            "--model",
            str(native_model),
            "--overwrite",
        ]
    )
    assert code == 2 and "overwrite the input" in capsys.readouterr().err
    assert videos["silent_15"].read_bytes() == before


def test_bad_arguments_exit_2():
    result = run_cli("generate", "x.mp4", "--onsets", "0.5,abc")
    assert result.returncode == 2 and "seconds separated by commas" in result.stderr


def test_auto_dtype_is_bfloat16_only_on_cpus_that_compute_it(monkeypatch, native_model):
    import torch

    from foleycrafter import FoleyCrafterPipeline, runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: True)
    assert runtime.resolve_device_and_dtype("cpu", "auto") == (torch.device("cpu"), torch.bfloat16)
    assert runtime.resolve_device_and_dtype("cpu", "float32")[1] == torch.float32
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: False)
    assert runtime.resolve_device_and_dtype("cpu", "auto") == (torch.device("cpu"), torch.float32)

    # bfloat16 on CPU is laid out channels-last; float32 keeps the default layout.
    def channels_last(pipe):
        convs = (pipe.unet.conv_in, pipe.controlnet.conv_in, pipe.vae.decoder.conv_in)
        return [conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convs]

    cpu = torch.device("cpu")
    fp32 = runtime.place_pipeline(FoleyCrafterPipeline.from_pretrained(native_model), cpu, torch.float32)
    assert channels_last(fp32) == [False, False, False]
    bf16 = FoleyCrafterPipeline.from_pretrained(native_model, dtype=torch.bfloat16)
    bf16 = runtime.place_pipeline(bf16, cpu, torch.bfloat16)
    assert channels_last(bf16) == [True, True, True]


def test_missing_model_says_what_to_pass(videos, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("FOLEYCRAFTER_MODEL", raising=False)
    monkeypatch.setattr("foleycrafter.runtime.BUNDLED_MODEL", tmp_path / "absent")
    code = main(["generate", str(videos["silent_15"]), "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "--model FOLDER" in err and "--base" in err


def test_debug_shows_the_traceback(native_model, tmp_path, capsys):
    assert main(["--debug", "generate", str(tmp_path / "none.mp4"), "--model", str(native_model)]) == 2
    assert "Traceback" in capsys.readouterr().err


# -- onsets -----------------------------------------------------------------------------------------
def test_onsets_command_prints_json_and_draws_a_plot(videos, native_model, tmp_path):
    from foleycrafter.temporal import onsets_from_probabilities

    json_path = tmp_path / "onsets.json"
    result = run_cli("onsets", videos["odd_24"], "-o", json_path, "--model", native_model)
    assert result.returncode == 0, result.stderr
    report = json.loads(json_path.read_text())
    assert report["duration"] == pytest.approx(2.5, abs=0.05)
    assert len(report["frames"]["times"]) == len(report["frames"]["probabilities"]) == 150
    assert all(0 <= p <= 1 for p in report["frames"]["probabilities"])
    # One window (2.5 s): an onset at the weighted centre of each run of frames at >= 0.5.
    expected = onsets_from_probabilities(np.array(report["frames"]["probabilities"]), report["duration"])
    assert report["onsets"] == pytest.approx(expected)
    png = json_path.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Printed to stdout without -o.
    printed = run_cli("onsets", videos["odd_24"], "--no-plot", "--model", native_model)
    assert json.loads(printed.stdout)["onsets"] == report["onsets"]


def test_long_video_in_windows(native_model, tmp_path):
    """A 25 s clip: three overlapping windows, exact length, same seed -> same audio, in one batch too."""
    video = write_video(tmp_path / "long.mp4", synthetic_frames(125, 32, 48), 5.0)
    outputs = []
    for name, extra in (("a.wav", []), ("b.wav", []), ("c.wav", ["--window-batch-size", "3"])):
        arguments = ["generate", str(video), "-o", str(tmp_path / name), "--model", str(native_model)]
        assert main([*arguments, "--steps", "1", "--quiet", *extra]) == 0
        outputs.append(read_audio_track(tmp_path / name, sample_rate=SR))
    assert len(outputs[0]) == 25 * SR
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # Batched windows: the same noise and conditions, float32 rounding apart.
    np.testing.assert_allclose(outputs[2], outputs[0], atol=1e-2)
    assert np.abs(outputs[2] - outputs[0]).mean() < 1e-3  # the decoded track steps by 1/1024
    assert np.abs(outputs[0]).max() > 0.01


@pytest.mark.slow  # compiling even the tiny models takes about a minute
def test_compile_gives_the_same_sound(videos, native_model, tmp_path):
    outputs = []
    for name, options in (("eager.wav", []), ("compiled.wav", ["--compile"])):
        target = tmp_path / name
        main(["generate", str(videos["silent_15"]), "-o", str(target), "--model", str(native_model), "--steps", "2", "--dtype", "float32", "--quiet", *options])  # fmt: skip
        outputs.append(read_audio_track(target, sample_rate=SR))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-3)


def test_alignment_guidance_option(videos, native_model, model_with_alignment_classifier, tmp_path, capsys):
    """--alignment-guidance-scale steers with the model's classifier; a model without one is refused
    before any video is touched, with what to do."""
    video = str(videos["silent_15"])
    code = main(["generate", video, "-o", str(tmp_path / "refused.wav"), "--model", str(native_model),
                 "--quiet", "--steps", "2", "--alignment-guidance-scale", "1"])  # fmt: skip
    assert code != 0 and not (tmp_path / "refused.wav").exists()
    assert "needs a model with an alignment classifier" in capsys.readouterr().err

    def audio(name, scale):
        target = tmp_path / f"{name}.wav"
        main(["generate", video, "-o", str(target), "--model", str(model_with_alignment_classifier), "--quiet",
              "--steps", "2", "--alignment-guidance-scale", str(scale)])  # fmt: skip
        return read_audio_track(target, sample_rate=SR)

    plain = audio("plain", 0)
    assert np.abs(audio("guided", 100) - plain).max() > 1e-4


def _generated_audio(target, video, model, *options) -> np.ndarray:
    """`generate` a 2-step soundtrack for ``video`` into the wav ``target`` and read it back."""
    code = main(
        ["generate", video, "-o", str(target), "--model", str(model), "--quiet", "--steps", "2", *options]
    )
    assert code == 0
    return read_audio_track(target, sample_rate=SR)


def test_loudness_options(videos, native_model, model_with_loudness_controller, tmp_path, capsys):
    """--loudness (points in a file) and --loudness-from (a reference recording) steer with the model's
    loudness controller; a model without one, or both options at once, are refused with what to do."""
    video = str(videos["silent_15"])
    points = tmp_path / "swell.csv"
    points.write_text("seconds,dB\n0,-60\n1.9,-6\n")
    code = main(["generate", video, "-o", str(tmp_path / "refused.wav"), "--model", str(native_model),
                 "--quiet", "--steps", "2", "--loudness", str(points)])  # fmt: skip
    assert code != 0 and not (tmp_path / "refused.wav").exists()
    assert "needs a model with a loudness controller" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", video, "--loudness", str(points), "--loudness-from", str(videos["sound_30"])])
    assert "not allowed with argument" in capsys.readouterr().err

    def audio(name, *options):
        return _generated_audio(tmp_path / f"{name}.wav", video, model_with_loudness_controller, *options)

    plain = audio("plain")
    swell = audio("swell", "--loudness", str(points))
    assert np.abs(swell - plain).max() > 1e-4
    np.testing.assert_allclose(
        audio("off", "--loudness", str(points), "--loudness-scale", "0"), plain, atol=1e-6
    )
    # A 1.5 s reference for a 2 s video: its curve, then silence.
    referenced = audio("referenced", "--loudness-from", str(videos["sound_30"]))
    assert np.abs(referenced - plain).max() > 1e-4 and np.abs(referenced - swell).max() > 1e-4
    predicted = audio("predicted", "--loudness", "video")  # the model's loudness predictor
    assert np.abs(predicted - plain).max() > 1e-4
    # Points beyond the video's end are the user's mistake: named, nothing written.
    late = tmp_path / "late.json"
    late.write_text('{"times": [0, 5], "db": [-20, -10]}')
    code = main(["generate", video, "-o", str(tmp_path / "late.wav"), "--model", str(model_with_loudness_controller),
                 "--quiet", "--steps", "2", "--loudness", str(late)])  # fmt: skip
    assert code != 0 and not (tmp_path / "late.wav").exists()
    assert "within the clip" in capsys.readouterr().err


def test_loudness_gain_option(videos, native_model, tmp_path, capsys):
    """--loudness-gain applies the curve to the audio after the vocoder; with --loudness-scale 0 it
    needs no loudness controller. Without a curve, or out of [0, 1], it is refused."""
    from foleycrafter.loudness import audio_loudness, loudness_error_db
    from foleycrafter.timeline import Timeline

    video = str(videos["silent_15"])
    points = tmp_path / "fade.csv"
    points.write_text("seconds,dB\n0,-20\n1.9,-45\n")

    def audio(name, *options):
        return _generated_audio(tmp_path / f"{name}.wav", video, native_model, *options)

    timeline = Timeline(sample_rate=SR)
    plain = audio("plain")
    shaped = audio("shaped", "--loudness", str(points), "--loudness-scale", "0", "--loudness-gain", "1")
    columns = timeline.clip_columns(plain.size / SR)
    target = np.interp((np.arange(columns) + 0.5) / timeline.columns_per_second, [0, 1.9], [-20, -45])
    errors = [loudness_error_db(audio_loudness(a, timeline), target, floor_db=-80) for a in (plain, shaped)]
    assert errors[1] < 2.0 < errors[0]
    code = main(["generate", video, "-o", str(tmp_path / "no_curve.wav"), "--model", str(native_model),
                 "--quiet", "--loudness-gain", "1"])  # fmt: skip
    assert code != 0 and "give --loudness or --loudness-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", video, "--loudness", str(points), "--loudness-gain", "2"])
    assert "a number from 0 to 1" in capsys.readouterr().err


def test_visual_attention_options(videos, native_model, model_with_frame_aligned_adapter, tmp_path, capsys):
    """--visual-attention picks a frame-aligned adapter's mask; a model without one refuses it."""
    video = str(videos["odd_24"])
    model = str(model_with_frame_aligned_adapter[0])

    def audio(name, *options):
        target = tmp_path / f"{name}.wav"
        assert main(["generate", video, "-o", str(target), "--model", model, "--quiet", "--steps", "2", *options]) == 0  # fmt: skip
        return read_audio_track(target, sample_rate=SR)

    own = audio("own")
    assert np.abs(audio("all", "--visual-attention", "all") - own).max() > 1e-4
    np.testing.assert_allclose(
        audio("same", "--visual-attention", "framewise", "--visual-attention-window", "0.4"), own, atol=1e-5
    )
    code = main(["generate", video, "-o", str(tmp_path / "mean.wav"), "--model", str(native_model), "--quiet",
                 "--steps", "2", "--visual-attention", "causal"])  # fmt: skip
    assert code != 0 and not (tmp_path / "mean.wav").exists()
    assert "frame-aligned" in capsys.readouterr().err


def test_region_option(videos, native_model, tmp_path, capsys):
    """--region x0,y0,x1,y1 shows the model only that part of the picture; a bad box is refused."""
    video = str(videos["odd_24"])

    def audio(name, *options):
        target = tmp_path / f"{name}.wav"
        assert main(["generate", video, "-o", str(target), "--model", str(native_model), "--quiet", "--steps", "2", *options]) == 0  # fmt: skip
        return read_audio_track(target, sample_rate=SR)

    whole = audio("whole")
    assert np.abs(audio("left", "--region", "0,0,0.5,1") - whole).max() > 1e-4
    with pytest.raises(SystemExit):
        main(["generate", video, "--region", "0.7,0,0.5,1"])
    assert "x0 < x1" in capsys.readouterr().err
