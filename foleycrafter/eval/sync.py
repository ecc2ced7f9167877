"""Align Acc: an evaluation classifier of audio-visual synchrony for SynthFoley (issue #17).

Diff-Foley scores a model by the share of its (generated audio, video) pairs that an alignment
classifier calls real and in sync. The classifier that *guides* sampling
(:class:`foleycrafter.models.AlignmentClassifier`) cannot also judge: a guided model would score
itself. :class:`SyncClassifier` differs in everything it reads: clean audio as a log-mel (not a
model's latents, so it scores any model alike), raw pixels of the frames (not a model's CLIP
embeddings), its own seed and data order.

Architecture
------------
* **Audio.** 64-band log-mel of 16 kHz audio (10 ms hop), level-normalized like the
  :class:`~foleycrafter.eval.classifier.AudioClassifier` (relative to the clip's loudest cell), two
  convolutions pooled over frequency, averaged onto the frame grid (``frame_rate`` frames per
  second, 80 ms at the default 12.5).
* **Video.** Frames squashed to ``frame_size``² RGB with each frame's difference from the previous
  one (where a contact shows), two strided convolutions pooled over space.
* **Fusion.** Audio, video and their product per frame, ``num_layers`` temporal convolutions,
  mean and max over time, one logit. Any clip length of at least a few frames works.

Training (:func:`train_sync_classifier`) on SynthFoley ``train``: random 4 s crops; half true
pairs, a quarter with the audio taken from 0.4 to 2 s earlier or later in the same clip (audibly
out of sync: SynthFoley's events are 100 ms apart or more), a quarter with another clip's audio.
The audio is degraded on the log-mel as the AudioClassifier's is (noise, equalizer, pitch, blur,
masks; a quarter from Griffin-Lim-scrambled copies), so that generated audio in sync is not
mistaken for a fake. The step with the best balanced accuracy on whole ``validation`` clips is
kept; ``test`` is scored once at the end.

Command line::

    python -m foleycrafter.eval.sync train --data ROOT --out checkpoints/synthfoley-sync-classifier
    python -m foleycrafter.eval.sync evaluate --data ROOT --split test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from ..spectrogram import MelSpectrogram
from .classifier import normalize_level

#: The sync classifier trained here on SynthFoley (bundled with the repository).
DEFAULT_SYNC_CLASSIFIER = Path(__file__).resolve().parents[2] / "checkpoints" / "synthfoley-sync-classifier"
#: Pair kinds of training and validation.
TRUE, SHIFTED, OTHER = 0, 1, 2
KINDS = {TRUE: "true", SHIFTED: "shifted", OTHER: "other"}


class SyncClassifier(ModelMixin, ConfigMixin):
    """Logit that a waveform is the in-sync soundtrack of a clip's frames.

    Args:
        sample_rate, n_mels, n_fft, hop_length, win_length: the log-mel front end (Hz, samples).
        frame_rate: frames per second read from the video (the time grid of the fusion).
        frame_size: frames are squashed to this many pixels square.
        channels: width of the audio, video and fused paths.
        num_layers: temporal convolutions of the fused path.
        kernel_size: their kernel, in frames (odd).
    """

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 64,
        n_fft: int = 2048,
        hop_length: int = 160,
        win_length: int = 1024,
        frame_rate: float = 12.5,
        frame_size: int = 32,
        channels: int = 32,
        num_layers: int = 3,
        kernel_size: int = 5,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"SyncClassifier kernel_size must be odd, got {kernel_size}.")
        self.mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=win_length, n_mels=n_mels
        )
        width = channels
        self.audio = nn.Sequential(
            nn.Conv2d(1, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d((4, 1)),
            nn.Conv2d(width // 2, width, 3, padding=1),
            nn.ReLU(),
        )
        self.video = nn.Sequential(
            nn.Conv2d(6, width // 2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        layers = []
        for index in range(num_layers):
            layers += [
                nn.Conv1d(3 * width if index == 0 else width, width, kernel_size, padding=kernel_size // 2)
            ]
            layers += [nn.ReLU()]
        self.fused = nn.Sequential(*layers)
        self.head = nn.Linear(2 * width, 1)

    # -- inputs ----------------------------------------------------------------------------------------
    def num_frames(self, seconds: float) -> int:
        """Frames the classifier reads for ``seconds`` of video (at least 1)."""
        return max(1, int(round(seconds * self.config.frame_rate)))

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> level-normalized log-mel (B, n_mels, samples // hop)."""
        return normalize_level(self.mel(waveforms))

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, F, H, W, 3) frames -> float (B, F, 3, frame_size, frame_size) in [0, 1]."""
        b, f = frames.shape[:2]
        x = frames.reshape(b * f, *frames.shape[2:]).permute(0, 3, 1, 2).float() / 255.0
        size = self.config.frame_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.reshape(b, f, 3, size, size)

    # -- model -----------------------------------------------------------------------------------------
    def forward(self, normalized_log_mel: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (B,).

        Args:
            normalized_log_mel: (B, n_mels, T) from :meth:`log_mel`, T mel columns spanning the
                same time as the frames.
            pixels: (B, F, 3, S, S) from :meth:`pixels`, F frames sampled uniformly over that time.
        """
        b, frames = pixels.shape[:2]
        audio = self.audio(normalized_log_mel[:, None]).mean(dim=2)  # (B, C, T)
        audio = F.adaptive_avg_pool1d(audio, frames)  # (B, C, F)
        change = torch.diff(pixels, dim=1, prepend=pixels[:, :1])
        video = self.video(torch.cat([pixels, change], dim=2).flatten(0, 1))  # (B*F, C, s, s)
        video = video.mean(dim=(2, 3)).reshape(b, frames, -1).transpose(1, 2)  # (B, C, F)
        fused = self.fused(torch.cat([audio, video, audio * video], dim=1))
        return self.head(torch.cat([fused.mean(dim=2), fused.amax(dim=2)], dim=1)).squeeze(-1)

    @torch.no_grad()
    def probability(self, waveform: np.ndarray, frames: np.ndarray) -> float:
        """Probability that ``waveform`` (1-D float, ``sample_rate``) is the in-sync soundtrack of
        ``frames`` (uint8 (F, H, W, 3), sampled uniformly over the same time span)."""
        was_training = self.training
        self.eval()
        try:
            audio = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))[None].to(self.device)
            video = torch.from_numpy(np.ascontiguousarray(frames))[None].to(self.device)
            return float(torch.sigmoid(self(self.log_mel(audio), self.pixels(video)))[0])
        finally:
            self.train(was_training)


def load_sync_classifier(path=None, device="cpu") -> SyncClassifier:
    """A saved :class:`SyncClassifier` (default: the bundled one), in eval mode."""
    folder = Path(path) if path is not None else DEFAULT_SYNC_CLASSIFIER
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no SyncClassifier at {folder} (config.json missing); train one with "
            "`python -m foleycrafter.eval.sync train --data ROOT --out DIR`."
        )
    return SyncClassifier.from_pretrained(folder).to(device).eval()


def clip_frames(video_path, duration: float, model: SyncClassifier) -> np.ndarray:
    """The frames the classifier reads from a clip: ``model.num_frames(duration)`` sampled uniformly
    over ``[0, duration)`` seconds, squashed to ``frame_size``² (uint8 (F, S, S, 3))."""
    from ..data.prepared import squash_frames
    from ..video import load_clip

    clip = load_clip(video_path, num_frames=model.num_frames(duration), end_seconds=duration)
    return squash_frames(clip.frames, model.config.frame_size).numpy()


def align_accuracy(
    model: SyncClassifier, waveforms: Sequence[np.ndarray], frames: Sequence[np.ndarray]
) -> dict:
    """Align Acc: the share of (waveform, frames) pairs the classifier calls in sync (p >= 0.5), with
    each pair's probability."""
    if len(waveforms) != len(frames):
        raise ValueError(
            f"align_accuracy needs one frame array per waveform, got {len(waveforms)} and {len(frames)}."
        )
    probabilities = [model.probability(w, f) for w, f in zip(waveforms, frames)]
    return {
        "align_accuracy": float(np.mean([p >= 0.5 for p in probabilities])) if probabilities else None,
        "probabilities": probabilities,
    }


# -- data ----------------------------------------------------------------------------------------------
def _load_split(model: SyncClassifier, dataset_root, split: str, max_clips: int | None = None):
    from .classifier import read_split, read_wav

    records = read_split(dataset_root, split)[:max_clips]
    if not records:
        raise ValueError(f"the {split} split of {dataset_root} has no clips.")
    audios, frames = [], []
    for record in records:
        audio, rate = read_wav(record["audio_path"])
        if rate != model.config.sample_rate:
            raise ValueError(
                f"{record['audio_path']}: expected {model.config.sample_rate} Hz, got {rate} Hz."
            )
        audios.append(audio)
        frames.append(clip_frames(record["video_path"], record["duration"], model))
    return records, audios, frames


def _shifted(audio: np.ndarray, seconds: float, rate: int) -> np.ndarray:
    """The waveform rolled by ``seconds`` (circularly: the same sounds, at the wrong times)."""
    return np.roll(audio, int(round(seconds * rate)))


@torch.no_grad()
def evaluate_pairs(
    model: SyncClassifier, audios, frames, shift_seconds: float = 1.0, degrade_seed: int | None = None
) -> dict:
    """Accuracy on whole clips for true pairs, the audio rolled by ``shift_seconds``, and the next
    clip's audio (trimmed or zero-padded to the clip); with ``degrade_seed`` every waveform first
    gets one seeded harsh degradation (the AudioClassifier's ``degrade``)."""
    if degrade_seed is not None:
        from .classifier import _degraded_copies

        audios = _degraded_copies(audios, degrade_seed)
    rate = model.config.sample_rate
    correct = {kind: [] for kind in KINDS}
    for index, (audio, picture) in enumerate(zip(audios, frames)):
        other = audios[(index + 1) % len(audios)]
        other = np.pad(other, (0, max(0, len(audio) - len(other))))[: len(audio)]
        candidates = {TRUE: audio, SHIFTED: _shifted(audio, shift_seconds, rate), OTHER: other}
        for kind, waveform in candidates.items():
            if kind == OTHER and len(audios) < 2:
                continue
            correct[kind].append((model.probability(waveform, picture) >= 0.5) == (kind == TRUE))
    result = {
        f"accuracy_{name}": float(np.mean(correct[kind])) for kind, name in KINDS.items() if correct[kind]
    }
    result["balanced_accuracy"] = float(
        np.mean(
            [
                result[f"accuracy_{KINDS[TRUE]}"],
                np.mean([v for k, v in result.items() if k != "accuracy_true"]),
            ]
        )
    )
    result["clips"] = len(audios)
    return result


# -- training ------------------------------------------------------------------------------------------
def train_sync_classifier(
    dataset_root,
    out_dir,
    steps: int = 3000,
    seed: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    crop_seconds: float = 4.0,
    shift_seconds: tuple[float, float] = (0.4, 2.0),
    validate_every: int = 250,
    max_train_clips: int | None = None,
    test_split: str | None = "test",
    log=None,
) -> tuple[SyncClassifier, dict]:
    """Train a :class:`SyncClassifier` on SynthFoley (see the module docstring); returns the selected
    model (eval mode) and a JSON-ready summary (settings, history, validation and test accuracy per
    pair kind, clean and degraded). ``out_dir``: where to save both (``None``: nowhere)."""
    from ..training.config import learning_rate_factor
    from .classifier import _Augmenter, _noise_bank

    started = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SyncClassifier()
    rate, hop = model.config.sample_rate, model.config.hop_length
    records, audios, frames = _load_split(model, dataset_root, "train", max_train_clips)
    _, val_audios, val_frames = _load_split(model, dataset_root, "validation")
    augmenter = _Augmenter(torch.Generator().manual_seed(seed + 2))
    # Log-mels once, of each clip and of a Griffin-Lim-scrambled copy; crops are cut from them.
    with torch.no_grad():
        clean = [model.mel(torch.from_numpy(a)[None])[0] for a in audios]
        scrambled = [
            model.mel(augmenter._griffin_lim(torch.from_numpy(a)[None], int(rng.integers(2, 9))))[0]
            for a in audios
        ]
    noise = _noise_bank(model.mel, rate, 30.0, torch.Generator().manual_seed(seed + 4))
    columns_per_second = rate / hop
    crop_frames = model.num_frames(crop_seconds)
    crop_columns = int(round(crop_frames / model.config.frame_rate * columns_per_second))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-3)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: learning_rate_factor(s, warmup, steps, "cosine")
    )
    history, best, best_state = [], None, None
    losses = []
    for step in range(1, steps + 1):
        model.train()
        indices = rng.integers(0, len(records), batch_size)
        kinds = rng.choice([TRUE, TRUE, SHIFTED, OTHER], size=batch_size)
        mels, pictures, labels = [], [], []
        for index, kind in zip(indices, kinds):
            source = scrambled if rng.random() < 0.25 else clean
            duration = records[index]["duration"]
            start = float(rng.uniform(0, max(0.0, duration - crop_seconds)))
            first_frame = int(round(start * model.config.frame_rate))
            picture = _window(frames[index], first_frame, crop_frames)
            audio_index, audio_start = int(index), start
            if kind == SHIFTED:
                shift = float(rng.uniform(*shift_seconds)) * rng.choice([-1, 1])
                audio_start = (start + shift) % max(duration, 1e-3)
            elif kind == OTHER:
                audio_index = int((index + rng.integers(1, len(records))) % len(records))
                audio_start = float(rng.uniform(0, max(0.0, records[audio_index]["duration"] - crop_seconds)))
            mels.append(
                _window(source[audio_index].T, int(round(audio_start * columns_per_second)), crop_columns).T
            )
            pictures.append(picture)
            labels.append(float(kind == TRUE))
        normalized = normalize_level(augmenter.log_mel(torch.stack(mels), noise))
        logits = model(normalized, model.pixels(torch.from_numpy(np.stack(pictures))))
        loss = F.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % validate_every == 0 or step == steps:
            validation = evaluate_pairs(model, val_audios, val_frames)
            entry = {
                "step": step,
                "loss": float(np.mean(losses)),
                **validation,
                "seconds": round(time.time() - started, 1),
            }
            losses = []
            history.append(entry)
            if log is not None:
                log(json.dumps(entry))
            if best is None or entry["balanced_accuracy"] > best["balanced_accuracy"]:
                best = entry
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    summary = {
        "data": {
            "root": os.fspath(dataset_root),
            "train_clips": len(records),
            "validation_clips": len(val_audios),
        },
        "settings": {
            "steps": steps,
            "seed": seed,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "crop_seconds": crop_seconds,
            "shift_seconds": list(shift_seconds),
        },
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "selected_step": best["step"],
        "validation": {k: v for k, v in best.items() if k.startswith(("accuracy", "balanced"))},
        "validation_degraded": evaluate_pairs(model, val_audios, val_frames, degrade_seed=seed + 5),
        "history": history,
    }
    if test_split is not None:
        _, test_audios, test_frames = _load_split(model, dataset_root, test_split)
        summary["test"] = evaluate_pairs(model, test_audios, test_frames)
        summary["test_degraded"] = evaluate_pairs(model, test_audios, test_frames, degrade_seed=seed + 6)
    summary["training_seconds"] = round(time.time() - started, 1)
    if out_dir is not None:
        out_dir = Path(out_dir)
        model.save_pretrained(out_dir)
        (out_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return model, summary


def _window(array, start: int, length: int):
    """``length`` rows of ``array`` (frames, or log-mel columns as rows) from ``start`` on; past the
    end the last frame repeats (a still picture), and log-mel rows continue at the clip's floor
    (silence)."""
    rows = array[start : start + length]
    missing = length - len(rows)
    if missing <= 0:
        return rows
    if isinstance(rows, torch.Tensor):
        floor = array.min()
        return torch.cat([rows, torch.full((missing, *rows.shape[1:]), float(floor), dtype=rows.dtype)])
    last = rows[-1:] if len(rows) else array[-1:]
    return np.concatenate([rows, np.repeat(last, missing, axis=0)])


# -- command line --------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m foleycrafter.eval.sync",
        description="Train or evaluate the SynthFoley sync classifier (Align Acc).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train on ROOT/train, select on ROOT/validation, score ROOT/test"
    )
    train.add_argument("--data", required=True, help="SynthFoley root with train/, validation/ (and test/)")
    train.add_argument("--out", required=True, help="output folder (config.json + safetensors)")
    train.add_argument("--steps", type=int, default=3000)
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--max-train-clips", type=int, default=None)
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    evaluate = commands.add_parser("evaluate", help="accuracy per pair kind of a saved classifier on a split")
    evaluate.add_argument(
        "--model", default=None, help=f"classifier folder (default: {DEFAULT_SYNC_CLASSIFIER})"
    )
    evaluate.add_argument("--data", required=True, help="SynthFoley root")
    evaluate.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            if args.threads:
                torch.set_num_threads(args.threads)
            _, summary = train_sync_classifier(
                args.data,
                args.out,
                steps=args.steps,
                seed=args.seed,
                max_train_clips=args.max_train_clips,
                log=print,
            )
            print(json.dumps({k: summary[k] for k in ("selected_step", "validation", "training_seconds")}))
        else:
            model = load_sync_classifier(args.model)
            _, audios, frames = _load_split(model, args.data, args.split)
            print(json.dumps(evaluate_pairs(model, audios, frames), indent=2))
    except (FileNotFoundError, ValueError) as error:
        print(f"sync: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
