"""The benchmarks' core functions at tiny shapes, so that the scripts in bench/ keep working.

Only structures and equivalences are checked, never timings: those depend on the machine.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    """Import a bench/ script as a module (they are scripts, not a package)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        yield importlib.import_module


def test_interleaved_alternates_order_and_drops_warmup(bench):
    common = bench("_common")
    calls = []
    cases = {name: (lambda name=name: calls.append(name) or 1.0) for name in "AB"}
    results = common.interleaved(cases, repeats=3, warmup=1)
    assert calls == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert results == {"A": [1.0, 1.0, 1.0], "B": [1.0, 1.0, 1.0]}
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(common.ratio(1.0, 0.0))


def test_step_overhead_pipelines_agree_and_give_a_ratio(bench):
    step_overhead = bench("step_overhead")
    built = step_overhead.build(tiny=True, dtype=torch.float32)
    result = step_overhead.measure(built, n1=1, n2=3, repeats=1)
    # Same modules and inputs: the stock pipeline must compute exactly what ours does.
    assert result["max_abs_difference"] < 1e-5
    assert result["evaluations"] == (1, 4)  # PNDM without PRK steps repeats one timestep
    assert set(result["calls"]) == {"ours N=1", "stock N=1", "ours N=3", "stock N=3"}
    assert all(math.isfinite(r) and r > 0 for r in result["ratio"].values())
    # One interval between consecutive step ends: 3 in the 4-evaluation call, none in the 1-evaluation one.
    assert len(result["step_intervals"]["ours"]) == len(result["step_intervals"]["stock"]) == 3
    assert all(math.isfinite(r) and r > 0 for r in result["callback_ratio"].values())
    # Each call splits into time inside the model forwards and the pipeline's own time.
    for call in (c for cases in result["calls"].values() for c in cases):
        assert 0 < call["model_wall_s"] < call["wall_s"]
    assert all(math.isfinite(v) for d in result["own_per_step_s"].values() for v in d.values())
    assert all(math.isfinite(r) for r in result["own_ratio"].values())
    # A forward nested in another clocked one counts once: with a clock that ticks 1 s per reading,
    # only the outer forward reads it (0 s, 1 s); were the inner one clocked too, it would add up to 3 s.
    inner = torch.nn.Linear(2, 2)
    outer = torch.nn.Sequential(inner)
    clock = step_overhead.ModelClock(outer, inner)
    ticks = iter(range(100))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(step_overhead.time, "perf_counter", lambda: float(next(ticks)))
        patch.setattr(step_overhead._common, "cpu_seconds", lambda: 0.0)
        outer(torch.zeros(1, 2))
    assert clock.inside["wall_s"] == 1.0
    clock.remove()
    # The clock's hooks are gone afterwards.
    assert not built["ours"].unet._forward_hooks and not built["ours"].controlnet._forward_pre_hooks


def test_efficiency_counts_flops_including_cpu_attention(bench):
    efficiency = bench("efficiency")
    q = torch.randn(2, 3, 64, 8)
    # QK^T and AV: 2 * (2 * b * h * s * s * d) FLOPs; torch's counter has no CPU formula of its own.
    assert efficiency.count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) == (
        4 * 2 * 3 * 64 * 64 * 8
    )
    result = efficiency.measure(tiny=True, dtypes=["fp32"], repeats=1, gemm_size=16)
    assert result["flops_per_step"] > 0
    (row,) = result["rows"]
    assert row["dtype"] == "fp32"
    assert all(row[f"{t}: fraction_of_peak"] > 0 for t in ("wall", "cpu"))


def test_frame_reading_methods_pick_the_same_frames(bench, tmp_path):
    frame_reading = bench("frame_reading")
    from foleycrafter.video import load_clip

    path = frame_reading.make_video(tmp_path / "clip.mp4", seconds=1, width=64, height=48)
    # The release's way and ours must return the very same frames; only the cost differs.
    np.testing.assert_array_equal(frame_reading.read_all_then_pick(str(path), 8), load_clip(path, 8).frames)

    rows = frame_reading.measure(
        [("1s", 1, 64, 48)], tmp_path, num_frames=8, repeats=1, max_baseline_bytes=1e9
    )
    assert [r["method"] for r in rows] == list(frame_reading.METHODS)
    for row in rows:
        assert row["frames_in_video"] == 30
        assert row["output_shape"] == "8x48x64x3"
        assert row["tracemalloc_peak_mib"] > 0
    assert len(frame_reading.summarize(rows)) == 1


def test_memory_reports_weights_and_peaks(bench):
    memory = bench("memory")
    result = memory.run_pipeline(tiny=True, dtype_name="fp32")
    assert result["weights_bytes"] > 0
    assert result["audio_samples"] == 256 * 160  # one tiny window (256 mel columns, hop 160)
    assert result["peak_rss_process"] >= result["rss_loaded"] > 0
    if result["peak_rss_generate"] is not None:  # Linux: per-stage peaks too
        assert result["peak_rss_generate"] == max(result["stage_peaks"].values())
        assert {"text encoder", "ControlNet + UNet steps", "VAE decode", "vocoder"} <= set(
            result["stage_peaks"]
        )


def test_clip_frames_curve_and_skip(bench, tmp_path):
    clip_frames = bench("clip_frames")
    frame_reading = bench("frame_reading")
    assert "skipped" in clip_frames.measure(tmp_path / "absent", model=None)

    frame_reading.make_video(tmp_path / "a.mp4", seconds=1, width=64, height=48)
    result = clip_frames.measure(tmp_path, model=tmp_path / "no-model", ks=(150, 8, 4))
    assert "RANDOM" in result["model"]
    (row,) = result["videos"]
    assert row["similarity"][150] == pytest.approx(1.0)
    assert all(-1.0 <= s <= 1.0 + 1e-9 for s in row["similarity"].values())
    assert result["seconds_per_frame"] > 0


def test_end_to_end_projects_each_case_from_its_stamps(bench, tmp_path):
    end_to_end = bench("end_to_end")
    frame_reading = bench("frame_reading")
    video = frame_reading.make_video(tmp_path / "v.mp4", seconds=1, width=64, height=48)
    result = end_to_end.measure(tiny=True, steps=2, repeats=1, video=str(video))
    assert [row["case"] for row in result["rows"]] == list(end_to_end.CASES)
    assert result["pndm25_evaluations"] == 26 and result["dpm12_evaluations"] == 12
    for (call,) in result["calls"].values():
        assert call["evaluations"] == 3  # PNDM at 2 steps evaluates one timestep twice
        # The projection of the steps actually run gives back the call's own wall time.
        assert end_to_end.projected(call, call["evaluations"]) == pytest.approx(call["wall_s"])
        assert call["stages_s"]["CLIP image encoder"] > 0 and call["stages_s"]["VAE decode"] > 0
    for row in result["rows"]:
        assert row["pndm25_s"] > row["before_s"] > 0
    assert result["speedup_fast"] > 0 and result["fast_dpm12_s"] < result["rows"][2]["pndm25_s"]


def test_batching_compares_the_same_first_item_and_windows(bench, native_model):
    batching = bench("batching")
    step = batching.measure_step(tiny=True, dtype_name="fp32", item_counts=[3], repeats=1)
    assert [(row["case"], row["items"]) for row in step["rows"]] == [("1 item", 1), ("3 items", 3)]
    assert step["first_item_max_abs_difference"] <= 1e-4 * step["output_scale"]
    assert step["rows"][0]["speedup_wall"] == 1 and step["rows"][1]["wall_per_item_s"] > 0
    clip = batching.measure_long_clip(native_model, 11.0, [2], repeats=1, dtype_name="float32", steps=2)
    assert clip["windows"] == 2 and [row["items"] for row in clip["rows"]] == [2, 2]
    assert clip["mel_max_abs_difference"][1] == 0 and clip["mel_max_abs_difference"][2] < 1e-3
    assert clip["audio_max_abs_difference"][2] < 1e-2 < clip["audio_peak"]


@pytest.mark.slow  # compiling even the tiny models takes about a minute
def test_compiled_step_matches_eager(bench):
    result = bench("torch_compile").measure(tiny=True, dtype_name="fp32", repeats=1)
    assert result["max_abs_difference"] <= 1e-3 * max(result["output_scale"], 1.0)
    assert [row["case"] for row in result["rows"]] == ["eager", "compiled"] and result["compile_s"] > 0


def test_double_guidance_times_both_cases_per_step(bench, native_model, model_with_alignment_classifier):
    result = bench("double_guidance").measure(
        model_with_alignment_classifier, seconds=2.0, steps=3, scale=5.0, repeats=1
    )
    assert [row["case"] for row in result["rows"]] == ["plain", "guided"]
    assert result["ratio_per_step"] > 0 and result["one_step_call_s"] > 0
    with pytest.raises(SystemExit, match="has no alignment classifier"):
        bench("double_guidance").measure(native_model, seconds=2.0, steps=3, scale=5.0, repeats=1)


def test_loudness_controller_times_both_cases_per_step(bench, native_model, model_with_loudness_controller):
    result = bench("loudness_controller").measure(
        model_with_loudness_controller, seconds=2.0, steps=3, repeats=1
    )
    assert [row["case"] for row in result["rows"]] == ["temporal", "temporal+loudness"]
    # One repeat of a 3-step call on a loaded machine: the per-step figures (a difference of two
    # timings) may come out negative, so only their presence is checked, not their sign.
    assert all(row["wall_s"] > 0 for row in result["rows"]) and result["one_step_call_s"] > 0
    assert np.isfinite(result["ratio_per_step"])
    with pytest.raises(SystemExit, match="has no loudness controller"):
        bench("loudness_controller").measure(native_model, seconds=2.0, steps=3, repeats=1)


def test_frame_aligned_times_every_mask_against_the_mean_adapter(
    bench, native_model, model_with_frame_aligned_adapter
):
    result = bench("frame_aligned").measure(native_model, None, seconds=2.0, steps=3, repeats=1)
    cases = ["mean", "frame_aligned/all", "frame_aligned/causal", "frame_aligned/framewise"]
    assert [row["case"] for row in result["rows"]] == cases
    assert all(row["wall_s"] > 0 for row in result["rows"]) and result["rows"][0]["ratio_per_step"] == 1.0
    # A trained adapter can be timed too; a model whose own adapter is frame-aligned is refused.
    folder = model_with_frame_aligned_adapter[0]
    timed = bench("frame_aligned").measure(native_model, folder, seconds=2.0, steps=3, repeats=1)
    assert timed["adapter"] == str(folder)
    with pytest.raises(SystemExit, match="give a model with the mean one"):
        bench("frame_aligned").measure(folder, None, seconds=2.0, steps=3, repeats=1)


def test_tiny_clip_control_times_a_second_release_copy(bench, native_model):
    result = bench("tiny_clip").measure(native_model, 2.0, repeats=1, control=True)
    assert [row["case"] for row in result["rows"]] == ["release", "fast", "release_again"]
    assert all(row["wall_s"] > 0 and row["cpu_s"] > 0 for row in result["rows"])
    assert result["noise_wall"] > 0 and result["noise_cpu"] > 0


def test_scripts_import_without_side_effects(bench):
    # Each script must be importable (tests use its functions) and expose main().
    for name in (
        "step_overhead",
        "frame_reading",
        "efficiency",
        "memory",
        "clip_frames",
        "end_to_end",
        "tiny_clip",
        "torch_compile",
        "batching",
        "gpu",
        "processes",
        "double_guidance",
        "loudness_controller",
        "frame_aligned",
    ):
        assert callable(bench(name).main)
    assert sys.modules["_common"].REPO == BENCH.parent


def _run_gpu_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(BENCH / "gpu.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _has_numbers(value) -> bool:
    """Whether ``value`` (JSON) holds at least one finite number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_numbers(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_numbers(v) for v in value)
    return False


def test_gpu_script_tiny_on_cpu_reports_every_section(bench, tmp_path):
    out = tmp_path / "gpu.json"
    run = _run_gpu_script("--tiny", "--device", "cpu", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "device: " in run.stdout and "CUDA" in run.stdout
    result = json.loads(out.read_text())
    gpu = bench("gpu")
    for section in gpu.SECTIONS:
        entry = result[section]
        assert "error" not in entry, entry
        # Each section (or each of its cases) has figures, or says why it was skipped.
        cases = entry.values() if "skipped" not in entry else [entry]
        for case in (c for c in cases if isinstance(c, dict)):
            assert "error" not in case, case
            assert isinstance(case.get("skipped"), str) or _has_numbers(case), (section, case)
    assert result["end_to_end"]["fp16"]["skipped"].startswith("needs CUDA")
    assert result["end_to_end"]["bf16"]["wall_s"] > 0 and result["end_to_end"]["bf16"]["step_s"] > 0
    assert result["offload"]["skipped"].startswith("needs CUDA")
    assert math.isfinite(result["steps"]["bf16"]["ours_over_stock"])
    assert [row["windows"] for row in result["batching"].values()] == [3, 3, 3]
    assert "not device memory" in result["memory_kind"]
    # No sampler's denoising loop reads a device value on the host at every step.
    loops = result["sync_points"]["meta_denoising_loop"]
    assert set(loops) == set(gpu.SAMPLERS)
    assert all(row["per_step"] == 0 for found in loops.values() for row in found["reads"]), loops


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_script_without_cuda_exits_2_with_one_line(tmp_path):
    run = _run_gpu_script("--device", "cuda", "--out", str(tmp_path / "gpu.json"), timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0] and "--device cpu" in lines[0]
    assert not (tmp_path / "gpu.json").exists()


def test_gpu_meta_audit_catches_host_reads_of_device_values(bench):
    from diffusers import PNDMScheduler

    gpu = bench("gpu")
    scheduler = PNDMScheduler(skip_prk_steps=True)
    # Timesteps on the device, as diffusers' pipelines keep them: PNDM's step reads them on the host.
    scheduler.set_timesteps(3, device="meta")
    sample = torch.zeros(1, 4, 2, 2, device="meta")
    counts = gpu.meta_reads(lambda: scheduler.step(sample, scheduler.timesteps[0], sample))
    assert counts and all("scheduling_pndm.py" in where for _, where in counts)
    # Twice the reads with one more evaluation: all of them are per step, none per call.
    rows = gpu.split_counts(counts, counts + counts, 1, 2)
    assert all(row["per_call"] == 0 for row in rows)
    assert sum(row["per_step"] for row in rows) == sum(counts.values())


def test_auto_dtype_keeps_float32_when_torch_is_held_to_avx2():
    # bench/README.md (CPU kinds): on AVX2 bfloat16 is emulated, 4x slower for the bundled model. Torch
    # held to that level (as in some containers, or when emulating such CPUs) must make `--dtype
    # auto` keep float32, whatever /proc/cpuinfo says.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = "from foleycrafter.runtime import resolve_device_and_dtype as r; print(r('cpu', 'auto')[1])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "torch.float32"


def _cpuinfo(vendor: str, *flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx2 {' '.join(flags)}\n"


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [
        (_cpuinfo("GenuineIntel", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"), True),  # Sapphire Rapids
        (_cpuinfo("AuthenticAMD", "avx512f", "avx512_bf16"), True),  # EPYC Zen 4: measured 2.0x
        (_cpuinfo("GenuineIntel", "avx512f", "avx512_bf16"), False),  # Cooper Lake: emulated 0.8x
        (_cpuinfo("AuthenticAMD"), False),  # Zen 2/3: AVX2 only
        ("", False),
    ],
)
def test_auto_dtype_picks_bfloat16_where_it_was_measured_faster(monkeypatch, cpuinfo, expected):
    from foleycrafter import runtime

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert runtime.cpu_has_native_bfloat16(cpuinfo) is expected
    # Held below the level that makes it fast, torch computes bfloat16 slowly: float32.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert runtime.cpu_has_native_bfloat16(cpuinfo) is False


def test_processes_script_help_and_commands(bench, tmp_path):
    """bench/processes.py: its --help, and the three commands it times (no model run: seconds)."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "processes.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "--clips" in result.stdout
    cases = bench("processes").commands("MODEL", tmp_path / "clips", tmp_path / "out")
    assert [threads for _, threads in cases.values()] == [1, 2, 1]
    command, _ = cases["2 processes, 1 thread each"]
    assert command[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    assert command[command.index("generate") - 2 :][:3] == ["-m", "foleycrafter", "generate"]
