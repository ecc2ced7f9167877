"""A small audio classifier for SynthFoley: semantic accuracy and the embedding of the Fréchet distance.

The benchmark asks two questions of generated audio that need a model of what the classes sound
like: *does it sound like the clip's class?* (semantic accuracy) and *is its distribution close to
the real one?* (Fréchet distance in an embedding space). :class:`AudioClassifier` answers both: a
small CNN over a log-mel spectrogram, pooled over time, gives a 64-d embedding and class logits.

Architecture (defaults in brackets)
-----------------------------------
1. **Log-mel.** :class:`~foleycrafter.spectrogram.MelSpectrogram` of 16 kHz audio with the project's
   STFT convention (n_fft 2048, hop 160 samples = 10 ms, Hann window of 1024) and ``n_mels`` [64]
   Slaney bands from 0 to 8 kHz. 64 bands are plenty to tell the classes apart and 4x cheaper than 256.
2. **Level normalization.** The clip's loudest log-mel value is subtracted, so the input does not
   depend on the playback level (generated audio is often quieter or louder than the ground
   truth), and values are floored 12 nepers (104 dB) below it.
3. **CNN.** ``len(channels)`` [4] blocks of 3x3 convolution -> BatchNorm -> ReLU -> 2x2 max pooling,
   with ``channels`` [16, 32, 64, 64]: 64 bands -> 4, time / 16.
4. **Pooling over time.** Mean and max over time of every (channel, band) feature, concatenated:
   the max keeps a single short event in a long, mostly silent clip from being averaged away, the
   mean keeps the overall texture. Any length of at least ``MIN_SAMPLES`` works.
5. **Embedding.** A linear layer to ``embedding_dim`` [64] (no non-linearity: its output is
   what :mod:`foleycrafter.eval.frechet` compares, and a ReLU would pile mass on zero), then
   ReLU -> dropout -> linear to the class logits.

Training (:func:`train_classifier`): SynthFoley ``train`` ground-truth wavs. The log-mel of every
clip is computed once, and once more for a phase-scrambled copy of it (the STFT magnitude kept, the
phase restarted at random and refined by 2 to 8 Griffin-Lim iterations: the smeared transients and
phasey ring of a phase-reconstructing vocoder). Each step takes random crops of 1 to 3 s that
contain at least one event (a quarter of them from the scrambled copies) and degrades them on the
log-mel, so that the classifier also works on generated audio, which is less clean than the ground
truth: white or brown noise mixed in 8 to 60 dB below the crop's loudest cell, a random smooth
equalizer curve (+-10 dB), a shift by up to 2 bands (pitch), blur in time and frequency, and
band/time masks. A random gain would change nothing: the model normalizes the level away. The
epoch with the best accuracy on the full ``validation`` clips is kept; ties go to the better
accuracy, then the lower loss, on a fixed harshly degraded copy of them (gain with clipping,
Griffin-Lim phase scrambling for half, noise at 0 to 25 dB SNR: a different implementation than the
training degradations). The held-out ``test`` clips are scored once at the end, clean and degraded.

Command line::

    python -m foleycrafter.eval.classifier train --data ROOT --out checkpoints/synthfoley-classifier
    python -m foleycrafter.eval.classifier evaluate --model checkpoints/synthfoley-classifier --data ROOT

The trained checkpoint is bundled in ``checkpoints/synthfoley-classifier`` (see its README).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from ..spectrogram import MelSpectrogram

SAMPLE_RATE = 16000
#: The classifier trained here on SynthFoley (bundled with the repository).
DEFAULT_CLASSIFIER = Path(__file__).resolve().parents[2] / "checkpoints" / "synthfoley-classifier"
#: Shortest waveform accepted (samples): shorter ones are zero-padded to this (0.2 s). The CNN needs
#: at least 16 mel columns and the STFT's reflect padding needs more than 944 samples.
MIN_SAMPLES = 3200
_FLOOR = 12.0  # nepers below the clip's loudest log-mel value that the input is floored at
_SCALE = 4.0  # the normalized log-mel is divided by this to bring it near unit range


def normalize_level(log_mel: torch.Tensor) -> torch.Tensor:
    """(B, bands, T) natural-log mel -> the classifiers' input: relative to each clip's loudest cell
    (the playback level carries no class or timing information), floored ``_FLOOR`` nepers below
    it, scaled to about unit range."""
    peak = log_mel.amax(dim=(1, 2), keepdim=True)
    return (log_mel - peak).clamp_min(-_FLOOR) / _SCALE + 1.0


class AudioClassifier(ModelMixin, ConfigMixin):
    """Log-mel CNN: 16 kHz waveform -> embedding (``embedding_dim``) -> class logits.

    Args:
        class_names: the classes, in logit order (SynthFoley's ``CLASS_NAMES`` for the bundled model).
        sample_rate: audio sample rate (Hz) the model expects.
        n_mels: mel bands of the input spectrogram.
        n_fft, hop_length, win_length: STFT size, hop and Hann window length (samples).
        channels: output channels of the convolution blocks (each halves bands and time).
        embedding_dim: size of the embedding (the Fréchet distance's space).
        dropout: dropout before the classification layer (training only).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        class_names: Sequence[str] = (),
        sample_rate: int = SAMPLE_RATE,
        n_mels: int = 64,
        n_fft: int = 2048,
        hop_length: int = 160,
        win_length: int = 1024,
        channels: Sequence[int] = (16, 32, 64, 64),
        embedding_dim: int = 64,
        dropout: float = 0.2,
    ):
        super().__init__()
        if len(class_names) < 2:
            raise ValueError(f"AudioClassifier needs at least two class names, got {list(class_names)!r}.")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be distinct, got {list(class_names)!r}.")
        if n_mels % (2 ** len(channels)):
            raise ValueError(
                f"n_mels ({n_mels}) must be divisible by 2 ** len(channels) = {2 ** len(channels)} "
                "(each block halves the bands)."
            )
        self.mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=win_length, n_mels=n_mels
        )
        blocks, previous = [], 1
        for width in channels:
            blocks += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*blocks)
        pooled = 2 * previous * (n_mels // 2 ** len(channels))  # mean and max of each (channel, band)
        self.embedding = nn.Linear(pooled, embedding_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(embedding_dim, len(class_names)))

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def min_columns(self) -> int:
        """Fewest mel columns the CNN accepts (one per halving)."""
        return 2 ** len(self.config.channels)

    # -- tensors -----------------------------------------------------------------------------------
    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` float waveforms at ``sample_rate`` -> ``(B, n_mels, samples // hop)`` log-mel."""
        return self.mel(waveforms)

    def embed_log_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` log-mel (T >= :attr:`min_columns`) -> ``(B, embedding_dim)`` embeddings."""
        if log_mel.dim() != 3 or log_mel.shape[1] != self.config.n_mels:
            raise ValueError(
                f"expected a log-mel of shape (B, {self.config.n_mels}, T), got {tuple(log_mel.shape)}."
            )
        if log_mel.shape[-1] < self.min_columns:
            raise ValueError(
                f"the log-mel has {log_mel.shape[-1]} columns; the classifier needs at least {self.min_columns}."
            )
        x = self.features(normalize_level(log_mel).unsqueeze(1))  # (B, C, bands, T')
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1).flatten(1)
        return self.embedding(pooled)

    def forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, samples)`` waveforms (at least :data:`MIN_SAMPLES` long) -> ``(logits (B, classes),
        embeddings (B, embedding_dim))``."""
        embeddings = self.embed_log_mel(self.log_mel(waveforms))
        return self.head(embeddings), embeddings

    # -- numpy convenience -------------------------------------------------------------------------
    @torch.no_grad()
    def _run(self, waveforms) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, classes), embeddings (N, D)) as float64 numpy, one clip at a time."""
        items = _as_waveform_list(waveforms)
        was_training = self.training
        self.eval()
        logits, embeddings = [], []
        try:
            for item in items:
                # One clip at a time: padding a batch to a common length would change the mean pooling.
                tensor = torch.from_numpy(_pad_to_min(item)).to(device=self.device, dtype=self.dtype)
                out_logits, out_embeddings = self(tensor[None])
                logits.append(out_logits[0].double().cpu().numpy())
                embeddings.append(out_embeddings[0].double().cpu().numpy())
        finally:
            self.train(was_training)
        width = len(self.config.class_names)
        return (
            np.stack(logits) if logits else np.zeros((0, width)),
            np.stack(embeddings) if embeddings else np.zeros((0, self.config.embedding_dim)),
        )

    def embed(self, waveforms) -> np.ndarray:
        """Embeddings of waveforms.

        Args:
            waveforms: a list of 1-D float arrays (float32, 16 kHz, full scale +-1) of any lengths, or one
                2-D array (N, samples). Clips shorter than :data:`MIN_SAMPLES` (0.2 s) are zero-padded.

        Returns:
            float64 ``(N, embedding_dim)``.
        """
        return self._run(waveforms)[1]

    def predict_proba(self, waveforms) -> np.ndarray:
        """Class probabilities, float64 ``(N, num_classes)`` (inputs as in :meth:`embed`)."""
        logits = self._run(waveforms)[0]
        logits = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, waveforms) -> np.ndarray:
        """Predicted class index per waveform, int64 ``(N,)`` (names: ``class_names[i]``)."""
        return self._run(waveforms)[0].argmax(axis=1).astype(np.int64) if len(waveforms) else np.zeros(0, int)

    def classify(self, waveforms) -> tuple[np.ndarray, np.ndarray]:
        """``(predicted class indices (N,), embeddings (N, D))`` in one pass."""
        logits, embeddings = self._run(waveforms)
        return logits.argmax(axis=1).astype(np.int64), embeddings


def load_classifier(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> AudioClassifier:
    """Load a saved :class:`AudioClassifier` (default: the bundled :data:`DEFAULT_CLASSIFIER`), in eval mode."""
    folder = Path(path) if path is not None else DEFAULT_CLASSIFIER
    if not (folder / "config.json").is_file():
        hint = (
            " The bundled classifier is not in this installation; train one with "
            "`python -m foleycrafter.eval.classifier train --data ROOT --out DIR`."
            if path is None
            else ""
        )
        raise FileNotFoundError(f"no AudioClassifier at {folder} (config.json missing).{hint}")
    return AudioClassifier.from_pretrained(folder).to(device).eval()


# -- audio files -------------------------------------------------------------------------------------
def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a PCM16 wav (as SynthFoley writes) -> (float32 mono samples in [-1, 1], sample rate in Hz).
    Several channels are averaged."""
    with wave.open(os.fspath(path), "rb") as f:
        if f.getsampwidth() != 2:
            raise ValueError(
                f"{path}: only 16-bit PCM wav files are supported, got {8 * f.getsampwidth()}-bit."
            )
        channels, rate = f.getnchannels(), f.getframerate()
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate


def read_split(dataset_root: str | os.PathLike, split: str) -> list[dict]:
    """The records of ``dataset_root/split/metadata.jsonl``, each with ``audio_path`` and
    ``video_path`` (absolute paths) added."""
    from ..data.synthfoley import read_metadata

    folder = Path(dataset_root) / split
    if not (folder / "metadata.jsonl").is_file():
        raise FileNotFoundError(
            f"{folder / 'metadata.jsonl'} not found: generate the split with "
            f"`python -m foleycrafter.data.synthfoley {dataset_root} --split {split} --num-clips N`."
        )
    records = read_metadata(folder)
    for record in records:
        record["audio_path"] = os.fspath(folder / record["audio"])
        record["video_path"] = os.fspath(folder / record["video"])
    return records


def _load_split_audio(
    dataset_root, split: str, max_clips: int | None = None
) -> tuple[list[dict], list[np.ndarray]]:
    records = read_split(dataset_root, split)[:max_clips]
    audios = []
    for record in records:
        audio, rate = read_wav(record["audio_path"])
        if rate != SAMPLE_RATE:
            raise ValueError(f"{record['audio_path']}: expected {SAMPLE_RATE} Hz audio, got {rate} Hz.")
        audios.append(audio)
    return records, audios


def _as_waveform_list(waveforms) -> list[np.ndarray]:
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 2:
        waveforms = list(waveforms)
    if isinstance(waveforms, np.ndarray) or torch.is_tensor(waveforms):
        raise ValueError("pass a list of 1-D waveforms (or one 2-D array), not a single 1-D waveform.")
    items = []
    for index, item in enumerate(waveforms):
        if torch.is_tensor(item):
            item = item.detach().cpu().numpy()
        array = np.asarray(item, dtype=np.float32)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(
                f"waveform {index} must be a non-empty 1-D array of samples, got shape {array.shape}."
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"waveform {index} contains NaN or infinite samples.")
        items.append(array)
    return items


def _pad_to_min(waveform: np.ndarray) -> np.ndarray:
    if waveform.size >= MIN_SAMPLES:
        return np.ascontiguousarray(waveform)
    return np.pad(waveform, (0, MIN_SAMPLES - waveform.size))


# -- augmentation --------------------------------------------------------------------------------------
class _Augmenter:
    """Random degradations of ground-truth audio (see the module docstring), driven by one generator."""

    def __init__(self, generator: torch.Generator):
        self.g = generator

    def _uniform(self, low: float, high: float, size=()) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=self.g)

    def _chance(self, p: float) -> bool:
        return bool(torch.rand((), generator=self.g) < p)

    def degrade(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> a harsh degraded copy (B, samples), for measuring robustness: a random gain
        of -20 to +8 dB with clipping at full scale, phase scrambling (2 to 8 Griffin-Lim iterations)
        for half of the items, and white/brown noise at 0 to 25 dB SNR for all."""
        b, n = batch.shape
        gain = 10 ** (self._uniform(-20, 8, (b, 1)) / 20)
        batch = (batch * gain).clamp(-1, 1)  # loud draws clip at full scale, as a careless render would
        scramble = torch.rand(b, generator=self.g) < 0.5
        if scramble.any():
            iterations = int(torch.randint(2, 9, (), generator=self.g))
            batch = batch.clone()
            batch[scramble] = self._griffin_lim(batch[scramble], iterations)
        white = torch.randn(b, n, generator=self.g)
        brown = _brown_noise(torch.randn(b, n, generator=self.g))
        mix = torch.rand(b, 1, generator=self.g)
        noise = mix * white / white.std(dim=1, keepdim=True) + (1 - mix) * brown / (
            brown.std(dim=1, keepdim=True) + 1e-8
        )
        signal_rms = batch.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-5)
        snr_db = self._uniform(0, 25, (b, 1))
        return batch + noise * signal_rms * 10 ** (-snr_db / 20)

    def _griffin_lim(self, batch: torch.Tensor, iterations: int) -> torch.Tensor:
        """Keep each item's STFT magnitude, restart from random phase and run a few Griffin-Lim
        iterations: the smeared transients and phasey ring of a phase-reconstructing vocoder."""
        n_fft, hop = 512, 128
        window = torch.hann_window(n_fft)
        spec = torch.stft(batch, n_fft, hop, window=window, return_complex=True)
        magnitude = spec.abs()
        phase = torch.rand(magnitude.shape, generator=self.g) * 2 * math.pi
        estimate = torch.polar(magnitude, phase)
        for _ in range(iterations):
            audio = torch.istft(estimate, n_fft, hop, window=window, length=batch.shape[1])
            rebuilt = torch.stft(audio, n_fft, hop, window=window, return_complex=True)
            estimate = magnitude * rebuilt / rebuilt.abs().clamp_min(1e-12)
        return torch.istft(estimate, n_fft, hop, window=window, length=batch.shape[1])

    def log_mel(self, log_mel: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, bands, T) log-mel -> degraded log-mel.

        ``noise``: log-mel spectrograms of long noise recordings (bands, T_noise >= T), each scaled so
        its 95th percentile is 0; with it, 70 % of the items get a random crop of one of them mixed
        in at 8 to 60 dB below the item's loudest cell (magnitudes added: a good approximation
        where one of the two dominates, which is where it matters)."""
        b, bands, t = log_mel.shape
        out = log_mel.clone()
        for i in range(b):
            x = out[i]
            if noise and self._chance(0.7):
                source = noise[int(torch.randint(0, len(noise), (), generator=self.g))]
                start = int(torch.randint(0, source.shape[1] - t + 1, (), generator=self.g))
                level = x.max() - float(self._uniform(8, 60)) * math.log(10) / 20
                x = torch.logaddexp(x, source[:, start : start + t] + level)
            if self._chance(0.5):  # a smooth random equalizer: +-10 dB (1.15 nepers) over a few knots
                knots = self._uniform(-1.15, 1.15, (1, 1, 5))
                curve = F.interpolate(knots, size=bands, mode="linear", align_corners=True)[0, 0]
                x = x + curve[:, None]
            if self._chance(0.3):  # pitch: shift by up to 2 bands, repeating the edge band
                shift = int(torch.randint(-2, 3, (), generator=self.g))
                if shift > 0:
                    x = torch.cat([x[:1].expand(shift, t), x[:-shift]])
                elif shift < 0:
                    x = torch.cat([x[-shift:], x[-1:].expand(-shift, t)])
            if self._chance(0.25):  # blur: a diffusion model's mel is smoother than a real one
                x = F.avg_pool2d(x[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
            if self._chance(0.4):  # one band mask of up to 6 bands at the clip's floor
                width = int(torch.randint(1, 7, (), generator=self.g))
                start = int(torch.randint(0, bands - width + 1, (), generator=self.g))
                x = x.clone()
                x[start : start + width] = x.min()
            if self._chance(0.3):  # one time mask of up to 8 % of the crop
                width = int(torch.randint(1, max(2, int(0.08 * t)), (), generator=self.g))
                start = int(torch.randint(0, t - width + 1, (), generator=self.g))
                x = x.clone()
                x[:, start : start + width] = x.min()
            out[i] = x
        return out


def _brown_noise(white: torch.Tensor, half_width: int = 400) -> torch.Tensor:
    """Brown-ish noise from white noise (B, n): its running sum minus the running sum's centred moving
    average over ``2 * half_width + 1`` samples (a high-pass at about 20 Hz that keeps it from
    drifting), the moving average by differences of a cumulative sum."""
    n = white.shape[1]
    walk = torch.cumsum(white, dim=1)
    total = F.pad(torch.cumsum(walk, dim=1), (1, 0))
    right = (torch.arange(n) + half_width + 1).clamp_max(n)
    left = (torch.arange(n) - half_width).clamp_min(0)
    return walk - (total[:, right] - total[:, left]) / (right - left)


def _sample_crops(
    log_mels: list[torch.Tensor],
    onset_columns: list[np.ndarray],
    indices: Sequence[int],
    length: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    """One crop of ``length`` mel columns per clip index, each holding at least one event's start:
    an onset is drawn, and the crop starts between ``length - 30`` columns (0.3 s) before it and 2
    columns (20 ms) before it, so at least 0.3 s of the event is in view when the clip allows.
    Shorter clips are padded with the log-mel floor (silence)."""
    bands = log_mels[0].shape[0]
    batch = torch.full((len(indices), bands, length), math.log(1e-5))
    for row, index in enumerate(indices):
        mel = log_mels[index]
        columns = mel.shape[1]
        if columns <= length:
            batch[row, :, :columns] = mel
            continue
        onset = int(rng.choice(onset_columns[index]))
        low = max(0, onset - length + 30)
        high = min(columns - length, max(low, onset - 2))
        start = int(rng.integers(low, high + 1)) if high >= low else columns - length
        batch[row] = mel[:, start : start + length]
    return batch


@torch.no_grad()
def _log_mels(model: AudioClassifier, audios: list[np.ndarray]) -> list[torch.Tensor]:
    return [model.log_mel(torch.from_numpy(_pad_to_min(a))[None])[0] for a in audios]


@torch.no_grad()
def _noise_bank(log_mel, sample_rate: int, seconds: float, generator: torch.Generator) -> list[torch.Tensor]:
    """Log-mels of white and brown noise, each shifted so that its 95th percentile is 0.

    ``log_mel``: the model's front end, (B, samples) -> (B, bands, T) natural-log mel (before any
    level normalization)."""
    n = int(seconds * sample_rate)
    white = torch.randn(n, generator=generator)
    brown = _brown_noise(torch.randn(1, n, generator=generator))[0]
    bank = []
    for noise in (white, brown):
        mel = log_mel((noise / noise.abs().max())[None])[0]
        bank.append(mel - torch.quantile(mel.flatten()[::7], 0.95))
    return bank


def _degraded_copies(audios: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """A fixed, seeded augmented copy of each clip (full length): validation of robustness."""
    augmenter = _Augmenter(torch.Generator().manual_seed(seed))
    return [augmenter.degrade(torch.from_numpy(a)[None])[0].numpy() for a in audios]


def accuracy(model: AudioClassifier, audios: list[np.ndarray], labels: Sequence[int]) -> float:
    """Fraction of ``audios`` whose predicted class index equals ``labels``."""
    if len(audios) == 0:
        raise ValueError("accuracy needs at least one clip.")
    return float(np.mean(model.predict(audios) == np.asarray(labels)))


# -- training ------------------------------------------------------------------------------------------
def train_classifier(
    dataset_root: str | os.PathLike,
    out_dir: str | os.PathLike | None,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-3,
    crop_seconds: tuple[float, float] = (1.0, 3.0),
    label_smoothing: float = 0.05,
    max_train_clips: int | None = None,
    test_split: str | None = "test",
    log=None,
) -> tuple[AudioClassifier, dict]:
    """Train an :class:`AudioClassifier` on SynthFoley ground-truth audio.

    Args:
        dataset_root: folder with ``train/`` and ``validation/`` (and ``test/``) SynthFoley splits.
        out_dir: where to ``save_pretrained`` the selected model and write ``training_summary.json``
            (``None``: do not save).
        epochs: passes over the training clips (one random crop of each clip per pass).
        seed: seeds torch and numpy (crops, augmentations, initial weights, batch order).
        batch_size: crops per optimizer step.
        learning_rate: peak AdamW learning rate (one-cycle cosine schedule with 5 % warm-up).
        weight_decay: AdamW weight decay.
        crop_seconds: (shortest, longest) crop in seconds; each batch draws one length.
        label_smoothing: of the cross-entropy loss.
        max_train_clips: use only the first N training clips (quick experiments).
        test_split: split scored once with the selected model (``None``: skip); never used for selection.
        log: called with one line of progress per epoch (``None``: silent).

    Returns:
        ``(model, summary)``: the selected model (eval mode) and a JSON-ready dict with the data
        (root, clip counts, seeds from the metadata), the settings, per-epoch history, the selected
        epoch, validation accuracy (clean and augmented), test accuracy (clean, augmented, per
        class), and the training time in seconds.
    """
    from ..data.synthfoley import CLASS_NAMES

    started = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_records, train_audio = _load_split_audio(dataset_root, "train", max_train_clips)
    val_records, val_audio = _load_split_audio(dataset_root, "validation")
    for records, split in ((train_records, "train"), (val_records, "validation")):
        if not records:
            raise ValueError(f"the {split} split of {dataset_root} has no clips.")
    train_labels = np.array([r["class_index"] for r in train_records])
    val_labels = np.array([r["class_index"] for r in val_records])
    val_degraded = _degraded_copies(val_audio, seed + 1)

    model = AudioClassifier(class_names=list(CLASS_NAMES))
    augmenter = _Augmenter(torch.Generator().manual_seed(seed + 2))
    # The log-mels are computed once: the waveform-domain degradations are applied to fixed copies
    # (a phase-scrambled version of every clip) and the rest is done on the log-mel, which keeps a
    # CPU epoch at seconds rather than minutes.
    columns_per_second = model.config.sample_rate / model.config.hop_length
    train_onsets = [np.round(np.asarray(r["onsets"]) * columns_per_second).astype(int) for r in train_records]
    clean_mels = _log_mels(model, train_audio)
    scrambled_mels = _log_mels(
        model,
        [
            augmenter._griffin_lim(
                torch.from_numpy(a)[None], int(torch.randint(2, 9, (), generator=augmenter.g))
            )[0].numpy()
            for a in train_audio
        ],
    )
    noise_bank = _noise_bank(
        model.log_mel, model.config.sample_rate, 30.0, torch.Generator().manual_seed(seed + 4)
    )
    del train_audio
    steps_per_epoch = math.ceil(len(train_records) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=epochs * steps_per_epoch, pct_start=0.05
    )
    history, best, best_state = [], None, None
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(train_records))
        losses = []
        for step in range(steps_per_epoch):
            indices = order[step * batch_size : (step + 1) * batch_size]
            length = int(rng.uniform(*crop_seconds) * columns_per_second)
            # A quarter of the crops come from the phase-scrambled copies.
            mels = [(scrambled_mels if rng.random() < 0.25 else clean_mels)[i] for i in indices]
            crops = _sample_crops(mels, [train_onsets[i] for i in indices], range(len(indices)), length, rng)
            log_mel = augmenter.log_mel(crops, noise_bank)
            logits = model.head(model.embed_log_mel(log_mel))
            loss = F.cross_entropy(
                logits, torch.from_numpy(train_labels[indices]), label_smoothing=label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        clean = accuracy(model, val_audio, val_labels)
        probabilities = model.predict_proba(val_degraded)
        degraded = float(np.mean(probabilities.argmax(axis=1) == val_labels))
        degraded_loss = float(-np.mean(np.log(probabilities[np.arange(len(val_labels)), val_labels] + 1e-12)))
        entry = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "val_accuracy": clean,
            "val_accuracy_augmented": degraded,
            "val_loss_augmented": degraded_loss,
            "seconds": round(time.time() - started, 1),
        }
        history.append(entry)
        if log is not None:
            log(
                f"epoch {epoch:3d}  loss {entry['loss']:.4f}  val acc {clean:.3f}  "
                f"val acc (augmented) {degraded:.3f}  val loss (augmented) {degraded_loss:.4f}  "
                f"{entry['seconds']:.0f} s"
            )

        def rank(e):
            return (e["val_accuracy"], e["val_accuracy_augmented"], -e["val_loss_augmented"])

        if best is None or rank(entry) > rank(best):
            best = entry
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()

    summary = {
        "data": {
            "root": os.fspath(dataset_root),
            "train_clips": len(train_records),
            "validation_clips": len(val_records),
            "dataset_seeds": sorted({int(r["seed"]) for r in train_records + val_records}),
            "generator_version": sorted({r.get("generator_version") for r in train_records}, key=str),
        },
        "settings": {
            "epochs": epochs,
            "seed": seed,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "crop_seconds": list(crop_seconds),
            "label_smoothing": label_smoothing,
        },
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "selected_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "val_accuracy_augmented": best["val_accuracy_augmented"],
        "history": history,
    }
    if test_split is not None:
        summary["test"] = evaluate_classifier(model, dataset_root, test_split, seed=seed + 3)
    summary["training_seconds"] = round(time.time() - started, 1)
    if out_dir is not None:
        out_dir = Path(out_dir)
        model.save_pretrained(out_dir)
        with open(out_dir / "training_summary.json", "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    return model, summary


def evaluate_classifier(
    model: AudioClassifier, dataset_root: str | os.PathLike, split: str = "test", seed: int = 3
) -> dict:
    """Accuracy of ``model`` on the ground-truth wavs of a split: ``accuracy`` (clean),
    ``accuracy_augmented`` (one seeded degraded copy per clip, see :class:`_Augmenter`),
    ``per_class`` accuracy, ``clips`` and ``split``."""
    records, audios = _load_split_audio(dataset_root, split)
    if not records:
        raise ValueError(f"the {split} split of {dataset_root} has no clips.")
    labels = np.array([r["class_index"] for r in records])
    predicted = model.predict(audios)
    per_class = {
        name: float(np.mean(predicted[labels == i] == i)) if np.any(labels == i) else None
        for i, name in enumerate(model.class_names)
    }
    return {
        "split": split,
        "clips": len(records),
        "accuracy": float(np.mean(predicted == labels)),
        "accuracy_augmented": accuracy(model, _degraded_copies(audios, seed), labels),
        "per_class": per_class,
    }


# -- command line --------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m foleycrafter.eval.classifier train --data ROOT --out DIR`` (or ``evaluate``)."""
    parser = argparse.ArgumentParser(
        prog="python -m foleycrafter.eval.classifier",
        description="Train or evaluate the SynthFoley audio classifier (semantic accuracy, Fréchet distance).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train on ROOT/train, select on ROOT/validation, score ROOT/test"
    )
    train.add_argument("--data", required=True, help="SynthFoley root with train/, validation/ (and test/)")
    train.add_argument("--out", required=True, help="output folder (config.json + safetensors)")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    train.add_argument("--max-train-clips", type=int, default=None)
    train.add_argument("--test-split", default="test", help="split scored at the end ('none' to skip)")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    evaluate = commands.add_parser("evaluate", help="accuracy of a saved classifier on a split")
    evaluate.add_argument("--model", default=None, help=f"classifier folder (default: {DEFAULT_CLASSIFIER})")
    evaluate.add_argument("--data", required=True, help="SynthFoley root")
    evaluate.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            if args.threads:
                torch.set_num_threads(args.threads)
            test_split = None if args.test_split.lower() == "none" else args.test_split
            _, summary = train_classifier(
                args.data,
                args.out,
                epochs=args.epochs,
                seed=args.seed,
                batch_size=args.batch_size,
                learning_rate=args.lr,
                max_train_clips=args.max_train_clips,
                test_split=test_split,
                log=print,
            )
            print(
                f"selected epoch {summary['selected_epoch']}: validation accuracy {summary['val_accuracy']:.3f}"
                + (f", {test_split} accuracy {summary['test']['accuracy']:.3f}" if test_split else "")
                + f"; {summary['training_seconds']:.0f} s; saved to {args.out}"
            )
        else:
            result = evaluate_classifier(load_classifier(args.model), args.data, args.split)
            print(json.dumps(result, indent=2))
    except (FileNotFoundError, ValueError) as error:
        print(f"classifier: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
