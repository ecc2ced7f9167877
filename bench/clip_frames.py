"""CLIP video embedding from fewer frames: how close the mean image embedding over k frames comes to
the release's mean over 150, and what a frame costs.

For each real video in ``../shared/media/video`` (skipped with a message where absent), k frames
are sampled as the pipeline samples 150 (``np.linspace(0, n - 1, k).astype(int)``), each distinct
frame is embedded once, and the cosine similarity between the k-frame and the 150-frame mean
``image_embeds`` is reported for every k.

The figures only mean something with a trained encoder: a random one maps every frame to nearly the
same direction. ``--model`` names a CLIPVisionModelWithProjection folder (default: the bundled tiny
model's ``checkpoints/foleycrafter-tiny/image_encoder``); where it is missing, a random tiny encoder
is used and the output says so.

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/clip_frames.py [--threads 1] [--tiny] [--model DIR]
"""

from __future__ import annotations

import time
from pathlib import Path

import _common
import numpy as np
import torch

DEFAULT_MODEL = _common.REPO / "checkpoints" / "foleycrafter-tiny" / "image_encoder"
DEFAULT_MEDIA = _common.REPO.parent / "shared" / "media" / "video"
DEFAULT_KS = (150, 64, 32, 16, 8, 4)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def load_encoder(model: Path | None) -> tuple[object, object, str]:
    """(image encoder, image processor, description). A folder with a saved
    ``CLIPVisionModelWithProjection`` (its processor from a sibling ``feature_extractor`` folder
    when there is one, else CLIP's defaults); ``None`` or a missing folder: a random tiny encoder."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    if model is not None and (Path(model) / "config.json").is_file():
        encoder = CLIPVisionModelWithProjection.from_pretrained(model).eval()
        processor_folder = Path(model).parent / "feature_extractor"
        processor = (
            CLIPImageProcessor.from_pretrained(processor_folder)
            if (processor_folder / "preprocessor_config.json").is_file()
            else CLIPImageProcessor()
        )
        c = encoder.config
        return (
            encoder,
            processor,
            (
                f"{model} ({c.num_hidden_layers} layers, width {c.hidden_size}, "
                f"{c.image_size}px, embedding {c.projection_dim})"
            ),
        )
    from foleycrafter.testing import tiny_image_encoder

    where = f"{model} not found" if model is not None else "no model given"
    return (
        tiny_image_encoder().eval(),
        CLIPImageProcessor(),
        f"RANDOM tiny CLIP encoder ({where}): similarities are meaningless, timing is of a tiny model",
    )


def embed_frames(
    frames: np.ndarray, encoder, processor, batch_size: int = 50
) -> tuple[np.ndarray, list[float]]:
    """CLIP ``image_embeds`` of each frame (N, D) float64, and the seconds per frame of each batch
    (preprocessing + encoder forward)."""
    embeds, per_frame = [], []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            chunk = list(frames[start : start + batch_size])
            begin = time.perf_counter()
            pixels = processor(images=chunk, return_tensors="pt").pixel_values
            out = encoder(pixel_values=pixels.to(encoder.dtype)).image_embeds
            per_frame.append((time.perf_counter() - begin) / len(chunk))
            embeds.append(out.double().numpy())
    return np.concatenate(embeds), per_frame


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def similarity_curve(path: Path, encoder, processor, ks=DEFAULT_KS, reference: int = 150) -> dict:
    """Cosine similarity of the k-frame mean embedding to the ``reference``-frame mean, per k.

    Returns:
        {"video", "frames_in_video", "distinct_frames_embedded", "similarity": {k: cosine},
        "seconds_per_frame" (median over batches), "decode_s"}.
    """
    from foleycrafter.video import read_frames, read_video_info

    info = read_video_info(path)
    picks = {k: np.linspace(0, info.num_frames - 1, k).astype(int) for k in sorted({*ks, reference})}
    distinct = np.unique(np.concatenate(list(picks.values())))
    start = time.perf_counter()
    frames = read_frames(path, distinct)
    decode_s = time.perf_counter() - start
    embeds, per_frame = embed_frames(frames, encoder, processor)
    row_of = {int(index): row for row, index in enumerate(distinct)}

    def mean_of(k):
        # Repeated indices (videos shorter than k frames) count as often as they are picked, as in
        # the pipeline, whose sampled clip holds them repeated.
        return embeds[[row_of[int(i)] for i in picks[k]]].mean(axis=0)

    target = mean_of(reference)
    return {
        "video": Path(path).name,
        "frames_in_video": info.num_frames,
        "distinct_frames_embedded": len(distinct),
        "similarity": {k: cosine(mean_of(k), target) for k in ks},
        "seconds_per_frame": _common.median(per_frame),
        "decode_s": decode_s,
    }


def find_videos(media: Path) -> list[Path]:
    return (
        sorted(p for p in Path(media).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if Path(media).is_dir()
        else []
    )


def measure(media: Path, model: Path | None, ks=DEFAULT_KS, progress=None) -> dict:
    """Curves for every video in ``media``.

    Returns:
        {"skipped": reason} when there are no videos; else {"model" (what was used), "ks", "videos":
        [similarity_curve rows], "mean_similarity": {k: mean over videos}, "seconds_per_frame"}.
    """
    videos = find_videos(media)
    if not videos:
        return {"skipped": f"no videos in {media}"}
    encoder, processor, description = load_encoder(model)
    if progress:
        progress(f"encoder: {description}")
    rows = []
    for path in videos:
        if progress:
            progress(f"  {path.name} ...")
        rows.append(similarity_curve(path, encoder, processor, ks))
    return {
        "model": description,
        "ks": list(ks),
        "videos": rows,
        "mean_similarity": {k: float(np.mean([r["similarity"][k] for r in rows])) for k in ks},
        "seconds_per_frame": _common.median([r["seconds_per_frame"] for r in rows]),
    }


def main(argv=None) -> dict:
    p = _common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"CLIP vision folder ({DEFAULT_MODEL})")
    p.add_argument("--media", type=Path, default=DEFAULT_MEDIA, help=f"folder of videos ({DEFAULT_MEDIA})")
    p.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="frame counts to compare")
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    _common.quiet_libraries()
    env = _common.environment(args.threads)
    _common.print_header("CLIP video embedding: mean over k frames vs over 150", env)
    model = None if args.tiny else args.model
    result = measure(args.media, model, tuple(int(k) for k in args.ks.split(",")), progress=_common.log)
    if "skipped" in result:
        print(f"skipped: {result['skipped']} (real videos are needed; nothing to measure)")
        _common.write_json(args.json, {"environment": env, **result})
        return result
    print(f"encoder: {result['model']}")
    rows = [
        {
            "video": r["video"],
            "frames": r["frames_in_video"],
            **{f"k={k}": r["similarity"][k] for k in result["ks"]},
        }
        for r in result["videos"]
    ]
    rows.append(
        {"video": "mean", "frames": "", **{f"k={k}": result["mean_similarity"][k] for k in result["ks"]}}
    )
    _common.print_table(rows)
    spf = result["seconds_per_frame"]
    print(f"CLIP time per frame (preprocess + forward, batches of 50): {spf * 1e3:.3g} ms")
    print(
        "frames saved vs 150: "
        + ", ".join(f"k={k}: {(150 - k) * spf:.3g} s" for k in result["ks"] if k < 150)
    )
    _common.write_json(args.json, {"environment": env, "tiny": args.tiny, **result})
    return result


if __name__ == "__main__":
    main()
