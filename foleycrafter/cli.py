"""The ``foleycrafter`` command line.

    foleycrafter generate clip.mp4 --prompt "a dog barking" -o clip_foley.mp4
    foleycrafter generate videos/ -o out/
    torchrun --nproc_per_node 2 -m foleycrafter generate videos/ -o out/   # shared by 2 processes
    foleycrafter onsets clip.mp4
    foleycrafter demo                     # the Gradio page (needs the demo extra)

Errors are one line on stderr (``--debug`` shows the traceback). Exit codes: 0 success, 1 a
generation failed (or some files of a batch failed), 2 bad arguments or inputs.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import fraction, non_negative, positive_int
from .defaults import VISUAL_ATTENTION_MODES
from .runtime import MODEL_ENV, UsageError, quiet_libraries
from .schedulers import add_sampler_arguments
from .timeline import DETECTOR_FRAMES
from .video import AUDIO_SUFFIXES, VIDEO_SUFFIXES

if TYPE_CHECKING:
    from .distributed import Processes
    from .manifest import ManifestRow

#: Frames are decoded at this short side for the onsets command (the generate command's default).
ONSETS_SHORT_SIDE = 256
#: Mel bands of Auffusion's spectrograms: prepared data's when the model's vocoder does not say.
AUFFUSION_MEL_BANDS = 256


# -- arguments ---------------------------------------------------------------------------------
def _region_box(text: str):
    from .region import parse_region

    try:
        return parse_region(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _onset_times(text: str) -> list[float] | None:
    """``--onsets``: seconds separated by commas ("none": no sound events)."""
    from .temporal import parse_onset_times

    try:
        return parse_onset_times(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="a native FoleyCrafter folder (written by save_pretrained) or hub id; default: the bundled "
        f"model in checkpoints/foleycrafter-tiny (or ${MODEL_ENV})",
    )
    group.add_argument(
        "--base", help="released layout: the Auffusion base folder or hub id (with --adapters)"
    )
    group.add_argument("--adapters", help="released layout: the FoleyCrafter adapters folder or hub id")
    group.add_argument(
        "--image-encoder", help="released layout: the CLIP vision folder or hub id (h94/IP-Adapter)"
    )
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    group.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "float16", "bfloat16"],
        help="weights' precision (default: float16 on CUDA; on CPU bfloat16 on CPUs with AMX, where it is "
        "faster, else float32)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foleycrafter",
        description="Give silent video synchronized sound: neural Foley with FoleyCrafter.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    generate = commands.add_parser(
        "generate",
        help="generate sound for videos (video in, video with sound out)",
        description="Generate a soundtrack for each video. Output: the input video with the generated audio "
        "(the video stream is copied, not re-encoded), or a .wav/.flac file.",
        epilog='Examples:\n  foleycrafter generate clip.mp4 --prompt "a dog barking" -o clip_foley.mp4\n'
        "  foleycrafter generate videos/ -o out/ --skip-existing\n"
        "  foleycrafter generate --manifest videos.csv -o out/     # file,prompt,negative_prompt,onsets,seed\n"
        "  accelerate launch -m foleycrafter generate videos/ -o out/   # shared by the processes (GPUs)\n"
        "  foleycrafter generate clip.mp4 --onsets 0.5,1.2,2.8 -o clip.wav",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument(
        "inputs", nargs="*", metavar="VIDEO", help="video files, folders of videos, or glob patterns"
    )
    generate.add_argument(
        "--manifest",
        metavar="FILE",
        help="instead of VIDEO: a .csv or .jsonl file with a row per video (file; optional prompt, "
        "negative_prompt, onsets, seed, which replace the options for that video); relative paths "
        "start at the manifest's folder",
    )
    generate.add_argument(
        "-o",
        "--output",
        help="output file (.mp4/.mov/.mkv/.wav/.flac) for one input, or a folder; default: "
        "<name>_foley.<format> beside each input",
    )
    generate.add_argument(
        "--format",
        choices=["mp4", "wav", "flac"],
        default="mp4",
        help="format when -o is a folder or omitted",
    )
    generate.add_argument("--prompt", default="", help="text describing the sound (default: none)")
    generate.add_argument("--negative-prompt", default="", help="text describing what to avoid")
    generate.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed (default 42, as the release); each video's noise starts afresh from it, so "
        "a video sounds the same whatever else is in the batch and however many processes share it",
    )
    add_sampler_arguments(generate)
    generate.add_argument(
        "--guidance-scale", type=non_negative, default=7.5, help="text guidance (default 7.5)"
    )
    generate.add_argument(
        "--semantic-scale",
        type=non_negative,
        default=1.0,
        help="how much the picture shapes the sound (default 1.0; 0 = off)",
    )
    generate.add_argument(
        "--alignment-guidance-scale",
        type=non_negative,
        default=0.0,
        help="Diff-Foley's double guidance: steer every denoising step towards what the model's alignment "
        "classifier calls in sync with the video (default 0 = off; needs a model with an "
        "alignment_classifier, e.g. from `foleycrafter train alignment`)",
    )
    generate.add_argument(
        "--temporal-scale",
        type=non_negative,
        default=None,
        help="how strongly sound follows detected onsets (default: the model's own, 0.2 for the "
        "released weights, 3.0 for the bundled tiny model; 0 = off)",
    )
    generate.add_argument(
        "--onsets",
        type=_onset_times,
        help="onset times in seconds, e.g. 0.5,1.2 (replace the onset detector; 'none': no sound events)",
    )
    loudness = generate.add_mutually_exclusive_group()
    loudness.add_argument(
        "--loudness",
        metavar="FILE",
        help='how loud each moment should be: a .csv (rows: seconds, dBFS) or .json ({"times": [...], '
        '"db": [...]}) of points joined by straight lines, or "video" (the model\'s loudness predictor reads '
        "it off the frames); needs a model with a loudness controller",
    )
    loudness.add_argument(
        "--loudness-from",
        metavar="REF",
        help="follow the loudness of a reference recording (audio or video file): its RMS per mel "
        "column, cut or padded with silence to each video's length",
    )
    generate.add_argument(
        "--loudness-scale",
        type=non_negative,
        default=1.0,
        help="how strongly the sound follows --loudness / --loudness-from (default 1.0; 0 = off)",
    )
    generate.add_argument(
        "--loudness-gain",
        type=fraction,
        default=0.0,
        help="a gain stage after the vocoder: move the audio's level this share of the way to the curve "
        "of --loudness / --loudness-from (default 0 = off; 1 = onto the curve wherever there is sound, "
        "raising by at most 36 dB), as volume automation would; it adds no sound. With --loudness-scale 0 "
        "it needs no loudness controller",
    )
    generate.add_argument(
        "--region",
        type=_region_box,
        metavar="X0,Y0,X1,Y1",
        help="the part of the picture that sounds, as fractions of the width and height from the top "
        "left (e.g. 0.5,0,1,1 for the right half): the semantic branch and the onset detector see only it",
    )
    generate.add_argument(
        "--region-mode",
        choices=["crop", "mask"],
        default="crop",
        help="how the region is shown to them: cut out (crop, default) or the rest painted grey (mask)",
    )
    generate.add_argument(
        "--visual-attention",
        choices=list(VISUAL_ATTENTION_MODES),
        default=None,
        help="for a model with a frame-aligned semantic adapter: which frames each moment of the sound "
        "attends to: all, causal (up to that moment) or framewise (within --visual-attention-window); "
        "default: the adapter's own",
    )
    generate.add_argument(
        "--visual-attention-window",
        type=non_negative,
        default=None,
        metavar="SECONDS",
        help="the framewise attention window in seconds, centred on each moment (default: the adapter's own)",
    )
    generate.add_argument(
        "--timing",
        choices=["exact", "release"],
        default="exact",
        help="mel-column timing: exact (100/s) or the release's 102.4/s",
    )
    generate.add_argument(
        "--frame-short-side",
        type=positive_int,
        default=256,
        help="decode frames with this shorter side in pixels, to bound memory (default 256)",
    )
    generate.add_argument(
        "--full-frames",
        action="store_true",
        help="decode frames at full resolution instead, as the release does (slower, more memory)",
    )
    generate.add_argument(
        "--window-batch-size",
        type=positive_int,
        default=1,
        help="for videos longer than one model window (10.24 s): windows denoised together in one batch "
        "(default 1; same result up to rounding, more memory; meant for GPUs, where it is unmeasured; "
        "on a CPU it gains nothing at the released size, 1.2-1.3x with the tiny model: bench/README.md)",
    )
    generate.add_argument(
        "--keep-original-audio",
        action="store_true",
        help="keep the input's soundtrack as a second audio track",
    )
    generate.add_argument(
        "--compile",
        action="store_true",
        help="compile the UNet and temporal controller with torch.compile: the first video waits for "
        "the compiler (~2 min at the released size on a CPU), later steps run ~1.1x faster; pays off "
        "for batches of more than ~15 videos (bench/README.md)",
    )
    generate.add_argument("--overwrite", action="store_true", help="replace existing output files")
    generate.add_argument(
        "--skip-existing", action="store_true", help="skip inputs whose output already exists"
    )
    generate.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_arguments(generate)
    generate.set_defaults(handler=run_generate)

    onsets = commands.add_parser(
        "onsets",
        help="detect onsets in a video: times as JSON and a plot",
        description="Run the onset detector on a video. Prints JSON (onset times in seconds and each sampled "
        "frame's probability) or writes it with -o, and draws a plot PNG.",
    )
    onsets.add_argument("input", metavar="VIDEO", help="a video file")
    onsets.add_argument("-o", "--output", help="JSON file to write (default: print to stdout)")
    onsets.add_argument(
        "--plot", help="plot PNG to write (default: <name>_onsets.png beside the JSON, or the video)"
    )
    onsets.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    onsets.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability at or above which a frame is an onset (default: the detector's, 0.5)",
    )
    onsets.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_model_arguments(onsets)
    onsets.set_defaults(handler=run_onsets)

    prepare = commands.add_parser(
        "prepare",
        help="cut your clips into training data (mel images, CLIP embeddings, onset labels, frames)",
        description="Prepare a folder of videos with their soundtracks for training: each video is cut into "
        "model windows and everything training reads is cached in safetensors shards. Onsets come from "
        "the captions file when it has them, else from the soundtrack (spectral flux). The windows, "
        "sample rate, hop and mel bands are those of the model the data is for (--model, default the "
        "bundled model: 5.12 s windows), whose trainers refuse data prepared for another model. With "
        "--image-encoder and no --model (the released layout) they are Auffusion's release ones: 10.24 s windows "
        "(1024 mel columns) at 16 kHz, hop 160, 256 mel bands.",
        epilog="Example:\n  foleycrafter prepare clips/ --out data --model checkpoints/foleycrafter-tiny "
        "--captions captions.csv\n  foleycrafter train semantic --model checkpoints/foleycrafter-tiny "
        "--data data --out runs/semantic",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("source", help="a folder of videos (searched recursively)")
    prepare.add_argument("--out", required=True, help="the prepared-data folder to write")
    prepare.add_argument(
        "--captions", help="CSV (file,caption[,onsets]) or JSONL ({file, caption, onsets}) per video"
    )
    prepare.add_argument(
        "--num-frames",
        type=positive_int,
        default=DETECTOR_FRAMES,
        help=f"frames sampled per clip (default {DETECTOR_FRAMES}, the release's)",
    )
    prepare.add_argument(
        "--detector-size",
        type=positive_int,
        default=128,
        help="side of the frames kept for the onset detector (px)",
    )
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing prepared folder")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_arguments(prepare)
    prepare.set_defaults(handler=run_prepare)

    train = commands.add_parser(
        "train",
        help="train an adapter (semantic, temporal, loudness, onset, loudness_predictor, alignment, lora) on prepared data",
        description="Train one adapter with the base model frozen. Several processes: "
        "`accelerate launch -m foleycrafter.train ...` or `torchrun --nproc_per_node N -m foleycrafter.train ...`.",
    )
    from .train import add_arguments as add_train_arguments

    evaluate = commands.add_parser(
        "eval",
        help="score a model on SynthFoley: onset F1/AP, semantic accuracy, Frechet distance",
        description="Generate audio for every clip of a SynthFoley split under each configuration and score it "
        "against the ground truth. Prints a table and writes JSON.",
    )
    from .eval.benchmark import add_arguments as add_eval_arguments

    add_eval_arguments(evaluate)
    evaluate.set_defaults(handler=run_eval)

    synthfoley = commands.add_parser(
        "synthfoley",
        add_help=False,
        help="generate SynthFoley clips: synchronized test videos with ground-truth onsets and classes",
        description="See `foleycrafter synthfoley --help`.",
    )
    synthfoley.add_argument("arguments", nargs=argparse.REMAINDER)

    demo = commands.add_parser(
        "demo",
        add_help=False,
        help="serve the Gradio demo page: upload a video, edit its onsets, generate (needs .[demo])",
        description="See `foleycrafter demo --help`.",
    )
    demo.add_argument("arguments", nargs=argparse.REMAINDER)
    demo.set_defaults(handler=run_demo)

    add_train_arguments(train)
    train.set_defaults(handler=run_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["synthfoley"]:
        # The generator has its own argument parser (also `python -m foleycrafter.data.synthfoley`).
        from .data.synthfoley import main as synthfoley_main

        return synthfoley_main(argv[1:], prog="foleycrafter synthfoley")
    if argv[:1] == ["demo"]:
        return run_demo(argparse.Namespace(arguments=argv[1:]))
    if "--debug" not in argv:
        # Before the parser is built: building it imports the trainers, and with them transformers,
        # whose log level is fixed when it is first imported.
        quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("foleycrafter: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the one place that turns any failure into one line and an exit code
        if args.debug:
            traceback.print_exc()
        # One write, so the lines of processes failing together do not interleave.
        sys.stderr.write(f"foleycrafter: error: {_process_label()}{_one_line(error)}\n")
        return 2 if _is_user_error(error) else 1


def _process_label() -> str:
    """``"[process 1/2] "`` under a launcher with several processes (each may print its error)."""
    from .distributed import launched_processes

    try:
        return launched_processes().label
    except UsageError:  # a broken launcher environment: that error is the one being printed
        return ""


def _is_user_error(error: Exception) -> bool:
    from .release import CheckpointError
    from .video import OutputExistsError, VideoReadError

    return isinstance(
        error, (UsageError, VideoReadError, OutputExistsError, CheckpointError, FileNotFoundError, ValueError)
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


# -- inputs and outputs ------------------------------------------------------------------------
@dataclass
class Job:
    """One video to give sound: where it is, where its result goes, and (from a ``--manifest``) its
    own settings, whose given values replace the command line's."""

    video: Path
    output: Path
    settings: ManifestRow | None = None


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files, folders (their videos, sorted) and glob patterns -> video paths, in order, once each."""
    found: list[Path] = []
    for pattern in patterns:
        if not pattern:
            raise UsageError("an input path is empty; pass a video file, a folder or a glob pattern.")
        path = Path(pattern).expanduser()
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise UsageError(f"folder {path} contains no videos ({', '.join(VIDEO_SUFFIXES)}).")
            found.extend(videos)
        elif path.is_file():
            found.append(path)
        elif any(c in pattern for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
            videos = [p for p in matches if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
            if not videos:
                raise UsageError(f"no videos match {pattern!r}.")
            found.extend(videos)
        else:
            raise UsageError(f"input not found: {pattern}")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def plan_jobs(videos: list[Path], output: str | None, fmt: str) -> list[Job]:
    suffixes = VIDEO_SUFFIXES[:3] + AUDIO_SUFFIXES
    out = Path(output).expanduser() if output else None
    single_file = (
        out is not None
        and len(videos) == 1
        and not out.is_dir()
        and out.suffix != ""
        and not output.endswith(os.sep)
    )
    if out is not None and len(videos) > 1 and out.suffix.lower() in suffixes and not out.is_dir():
        raise UsageError(f"{len(videos)} inputs need an output folder, but -o {output} looks like a file.")
    jobs = []
    for video in videos:
        if single_file:
            if out.suffix.lower() not in suffixes:
                raise UsageError(f"-o {output}: unsupported output format; use one of {', '.join(suffixes)}.")
            target = out
        else:
            folder = out if out is not None else video.parent
            target = folder / f"{video.stem}_foley.{fmt}"
        if target.resolve() == video.resolve():
            raise UsageError(f"the output {target} would overwrite the input video; choose another -o.")
        jobs.append(Job(video, target))
    targets = [j.output.resolve() for j in jobs]
    clashes = {str(t) for t in targets if targets.count(t) > 1}
    if clashes:
        raise UsageError(
            f"several inputs would write the same output ({', '.join(sorted(clashes))}); use separate -o folders."
        )
    return jobs


# -- commands ----------------------------------------------------------------------------------
def run_generate(args) -> int:
    """``foleycrafter generate``: in one process, or shared by the processes a launcher started
    (``torchrun``/``accelerate launch``: each process generates its share of the videos, the main
    process prints the batch's summary, and every process exits with the code one process would)."""
    from .distributed import launched_processes, process_group

    if args.overwrite and args.skip_existing:
        raise UsageError("--overwrite and --skip-existing contradict each other; pass one.")
    processes = launched_processes()
    with process_group(processes):
        return _generate(args, processes)


def _generate(args, processes: Processes) -> int:
    import torch
    from tqdm.auto import tqdm

    from .distributed import local_device
    from .generation import generate_file
    from .runtime import load_pipeline
    from .video import OutputExistsError, read_video_info

    jobs = generate_jobs(args)
    batch = len(jobs) > 1
    pending = []
    skipped = []
    for job in jobs:
        # The one early look; writing checks again at the moment it renames its finished file.
        if job.output.exists() and not args.overwrite:
            if args.skip_existing:
                skipped.append(job)
                continue
            if not batch:
                raise OutputExistsError(
                    f"{job.output} exists; pass --overwrite to replace it (or --skip-existing)."
                )
        pending.append(job)
    if not pending:
        if processes.is_main:
            print(f"Nothing to do: {len(skipped)} output(s) exist (--skip-existing).", file=sys.stderr)
        return 0
    mine = my_share(pending, processes, batch)
    if not mine:
        # One video, and another process has it (its exit code is the run's); or fewer videos
        # than processes: this one only joins the batch's summary.
        return _batch_summary(jobs, skipped, [], [], processes) if batch else 0
    # One video: probed before the model loads, so a bad input fails at once; the probe travels on.
    probed = {mine[0].video: read_video_info(mine[0].video)} if not batch else {}
    if not processes.is_main:
        # One set of loading bars for the run: every process's would interleave on one terminal.
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    pipe, _ = load_pipeline(
        args.model,
        base=args.base,
        adapters=args.adapters,
        image_encoder=args.image_encoder,
        device=local_device(args.device, processes),
        dtype=args.dtype,
        scheduler=args.scheduler,
        compile=args.compile,
        progress=not args.quiet and processes.is_main,
    )
    if args.alignment_guidance_scale > 0 and pipe.components.get("alignment_classifier") is None:
        raise UsageError(
            f"--alignment-guidance-scale {args.alignment_guidance_scale} needs a model with an alignment "
            f"classifier, and {args.model or 'the default model'} has none: train one with `foleycrafter "
            "train alignment --model ... --data ... --out ...` and pass its final/ folder as --model, "
            "or leave the option at 0."
        )
    if (args.visual_attention or args.visual_attention_window is not None) and (
        pipe.semantic_adapter_kind != "frame_aligned"
    ):
        raise UsageError(
            f"--visual-attention / --visual-attention-window choose the frames a frame-aligned semantic adapter "
            f"attends to, and {args.model or 'the default model'}'s semantic adapter is "
            f"{pipe.semantic_adapter_kind or 'absent'}: drop them, or train one with `foleycrafter train semantic "
            "--set adapter=frame_aligned ...`."
        )
    loudness_source = _loudness_source(args, pipe)
    failures: list[tuple[Job, str]] = []
    written = []
    progress = tqdm(
        mine, desc="videos", unit="video", disable=args.quiet or not batch or not processes.is_main
    )
    for job in progress:
        started = time.perf_counter()
        settings = _video_settings(job, args)
        try:
            info = probed.get(job.video) or read_video_info(job.video)
            generate_file(
                pipe,
                info,
                job.output,
                overwrite=args.overwrite,
                keep_original_audio=args.keep_original_audio,
                prompt=settings["prompt"],
                negative_prompt=settings["negative_prompt"],
                num_inference_steps=args.steps,
                guidance_scale=args.guidance_scale,
                semantic_scale=args.semantic_scale,
                temporal_scale=args.temporal_scale,
                alignment_guidance_scale=args.alignment_guidance_scale,
                loudness=loudness_source(info.duration) if loudness_source else None,
                loudness_scale=args.loudness_scale,
                loudness_gain=args.loudness_gain,
                region=args.region,
                region_mode=args.region_mode,
                visual_attention=args.visual_attention,
                visual_attention_window=args.visual_attention_window,
                onsets=settings["onsets"],
                timing=args.timing,
                frame_short_side=None if args.full_frames else args.frame_short_side,
                window_batch_size=args.window_batch_size,
                # A generator per video, seeded afresh: its audio does not depend on which videos
                # came before it, so neither on the order nor on how many processes share the batch.
                generator=torch.Generator(device="cpu").manual_seed(settings["seed"]),
            )
            written.append(job)
            if not args.quiet:
                print(
                    f"{processes.label}wrote {job.output} ({time.perf_counter() - started:.1f} s)",
                    file=sys.stderr,
                )
        except KeyboardInterrupt:
            raise
        except Exception as error:
            if not batch:
                raise
            if args.debug:
                traceback.print_exc()
            failures.append((job, _one_line(error)))
    if batch:
        return _batch_summary(jobs, skipped, written, failures, processes)
    return 1 if failures else 0


def generate_jobs(args) -> list[Job]:
    """The jobs of ``generate``: its VIDEO arguments, or its ``--manifest``'s rows (with their
    settings), in order, with their output paths."""
    if args.manifest:
        if args.inputs:
            raise UsageError(
                f"both VIDEO arguments and --manifest {args.manifest} were given; pass one (list every "
                "video in the manifest)."
            )
        from .manifest import read_manifest

        rows = read_manifest(args.manifest)
        jobs = plan_jobs([row.file for row in rows], args.output, args.format)
        return [Job(job.video, job.output, row) for job, row in zip(jobs, rows)]
    if not args.inputs:
        raise UsageError("no videos given: pass video files, folders or glob patterns, or --manifest FILE.")
    return plan_jobs(expand_inputs(args.inputs), args.output, args.format)


def _loudness_source(args, pipe):
    """``duration (s) -> curve`` for ``--loudness`` / ``--loudness-from``, read once before the
    videos; ``None`` when neither was given. Refuses a model without a loudness controller unless
    ``--loudness-scale 0`` (the curve then serves ``--loudness-gain`` alone), and ``--loudness-gain``
    without a curve."""
    if not (args.loudness or args.loudness_from):
        if args.loudness_gain > 0:
            raise UsageError(
                "--loudness-gain applies a loudness curve: give --loudness or --loudness-from too."
            )
        return None
    option = "--loudness" if args.loudness else "--loudness-from"
    if pipe.components.get("loudness_controller") is None and args.loudness_scale > 0:
        raise UsageError(
            f"{option} needs a model with a loudness controller, and {args.model or 'the default model'} "
            "has none: train one with `foleycrafter train loudness --model ... --data ... --out ...` and "
            "pass its final/ folder as --model, or apply the curve to the audio alone with "
            "--loudness-scale 0 --loudness-gain 1."
        )
    from .loudness import fit_to_clip, read_loudness_file, reference_loudness

    if args.loudness == "video":
        if pipe.components.get("loudness_predictor") is None:
            raise UsageError(
                f"--loudness video needs a model with a loudness predictor, and {args.model or 'the default model'} "
                "has none: train one with `foleycrafter train loudness_predictor`, or give a curve file."
            )
        return lambda duration: "video"
    if args.loudness:
        points = read_loudness_file(args.loudness)
        return lambda duration: points
    timeline = pipe.timeline(args.timing)
    curve = reference_loudness(args.loudness_from, timeline)
    return lambda duration: fit_to_clip(curve, duration, timeline)


def _video_settings(job: Job, args) -> dict:
    """Prompt, negative prompt, onsets and seed for one video: its manifest row's where given,
    else the command line's."""
    chosen = {
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "onsets": args.onsets,
        "seed": args.seed,
    }
    if job.settings is not None:
        for name in chosen:
            value = getattr(job.settings, name)
            if value is not None:
                chosen[name] = value
    return chosen


def my_share(pending: list[Job], processes: Processes, batch: bool) -> list[Job]:
    """The jobs this process generates: all of them for one process; else its share of a plan
    every process computes alike, balanced by the videos' durations.

    Each process probes every pending video (demuxing, no decoding) for its duration; a video
    that cannot be probed weighs 0 and fails again, with the same message, where it is generated.
    The processes then compare their plans (one exchange, which also holds every process back
    until all have looked at the existing outputs, so no process sees another's new file).

    Raises:
        UsageError: the processes planned differently (they see different files, or were given
            different arguments).
    """
    if not processes.distributed:
        return pending
    from .distributed import all_gather, balance
    from .video import read_video_info

    if batch:
        durations = []
        for job in pending:
            try:
                durations.append(float(read_video_info(job.video).duration))
            except Exception:  # reported with the video's failure when its process generates it
                durations.append(0.0)
        shares = balance(durations, processes.world_size)
    else:
        shares = [[0]] + [[] for _ in range(processes.world_size - 1)]
    plan = [[(str(pending[i].video), str(pending[i].output)) for i in share] for share in shares]
    fingerprint = hashlib.sha256(json.dumps(plan).encode()).hexdigest()
    if len(set(all_gather(fingerprint, processes))) > 1:
        raise UsageError(
            "the processes planned different batches: every process must see the same videos at the "
            "same paths (on several machines, a shared folder) and the same existing outputs, and get "
            "the same arguments; rerun once the files are in place."
        )
    return [pending[i] for i in shares[processes.rank]]


def _batch_summary(
    jobs: list[Job],
    skipped: list[Job],
    written: list[Job],
    failures: list[tuple[Job, str]],
    processes: Processes,
) -> int:
    """Gather every process's outcome, print the batch's summary once (the main process) and
    return the batch's exit code, the same in every process: 1 if any video failed, else 0."""
    from .distributed import all_gather

    outcomes = all_gather((len(written), [(str(job.video), reason) for job, reason in failures]), processes)
    order = {str(job.video): index for index, job in enumerate(jobs)}
    failed = sorted(
        (f for _, process_failures in outcomes for f in process_failures), key=lambda f: order[f[0]]
    )
    if processes.is_main:
        done = sum(count for count, _ in outcomes)
        print(f"{done} written, {len(skipped)} skipped, {len(failed)} failed.", file=sys.stderr)
        for video, reason in failed:
            print(f"  failed: {video}: {reason}", file=sys.stderr)
    return 1 if failed else 0


def run_onsets(args) -> int:
    from .generation import detect_video_onsets
    from .runtime import load_onset_detector
    from .temporal import onset_threshold
    from .video import atomic_output, read_video_info

    video = expand_inputs([args.input])
    if len(video) != 1:
        raise UsageError("onsets takes one video file.")
    video = video[0]
    json_path = Path(args.output) if args.output else None
    plot_path = None
    if not args.no_plot:
        plot_path = (
            Path(args.plot)
            if args.plot
            else (json_path.with_suffix(".png") if json_path else video.with_name(f"{video.stem}_onsets.png"))
        )
    for path in (json_path, plot_path):
        if path is not None and path.exists() and not args.overwrite:
            raise UsageError(f"{path} exists; pass --overwrite to replace it.")
    info = read_video_info(video)  # before the model loads: a bad input fails at once
    detector, timeline = load_onset_detector(
        args.model, adapters=args.adapters, device=args.device, dtype=args.dtype
    )
    threshold = onset_threshold(args.threshold, detector, name="--threshold")
    report = detect_video_onsets(detector, info, timeline, threshold=threshold, short_side=ONSETS_SHORT_SIDE)
    text = json.dumps(report, indent=2)
    if json_path is None:
        print(text)
    else:
        with atomic_output(json_path, overwrite=args.overwrite) as temporary:
            Path(temporary).write_text(text + "\n", encoding="utf-8")
    if plot_path is not None:
        from .plots import onset_plot

        with atomic_output(plot_path, overwrite=args.overwrite) as temporary:
            onset_plot(report).save(temporary, format="PNG")
        print(f"wrote {plot_path}", file=sys.stderr)
    return 0


def run_prepare(args) -> int:
    from .data.prepared import prepare_dataset, read_annotations
    from .release import resolve_folder
    from .runtime import model_data_settings, model_location, model_timeline, resolve_device_and_dtype
    from .timeline import Timeline

    device, dtype = resolve_device_and_dtype(args.device, args.dtype)
    if args.image_encoder:
        from transformers import CLIPImageProcessor

        from .loaders import load_image_encoder

        encoder, processor = load_image_encoder(args.image_encoder, torch_dtype=dtype), CLIPImageProcessor()
        folder = resolve_folder(args.model) if args.model else None
    else:
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        folder = resolve_folder(model_location(args.model, args.base, args.adapters, args.image_encoder))
        if not (folder / "image_encoder").is_dir():
            raise UsageError(f"{folder} has no image_encoder; pass --image-encoder (a CLIP vision folder).")
        encoder = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", dtype=dtype)
        processor = (
            CLIPImageProcessor.from_pretrained(folder / "feature_extractor")
            if (folder / "feature_extractor").is_dir()
            else CLIPImageProcessor()
        )
    if folder is None:
        # The released layout (an image encoder and no model): Auffusion's release windows.
        timeline, n_mels, target = Timeline(), AUFFUSION_MEL_BANDS, "the released layout (Auffusion)"
    else:
        # The windows the model trains and generates in: its trainers refuse any other.
        timeline, target = model_timeline(folder), str(folder)
        n_mels = model_data_settings(folder).get("n_mels", AUFFUSION_MEL_BANDS)
    if not args.quiet:
        print(
            f"Preparing {timeline.window_seconds:g} s windows ({timeline.window_columns} mel columns, "
            f"{timeline.sample_rate} Hz, hop {timeline.hop_length}, {n_mels} mel bands) for {target}.",
            file=sys.stderr,
        )
    annotations = read_annotations(args.captions) if args.captions else None
    summary = prepare_dataset(
        args.source,
        args.out,
        encoder.to(device).eval(),
        processor,
        annotations=annotations,
        timeline=timeline,
        n_mels=n_mels,
        num_frames=args.num_frames,
        detector_size=args.detector_size,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(json.dumps(summary, indent=2))
    return 0


def run_eval(args) -> int:
    from .eval.benchmark import run

    return run(args)


def run_demo(args) -> int:
    # The demo parses its own flags (it also runs as `python demo/app.py`); gradio is imported there.
    from .demo import main as demo_main

    return demo_main(args.arguments, prog="foleycrafter demo")


def run_train(args) -> int:
    from .train import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
