"""Vocoder training: a HiFi-GAN generator fitted to prepared clips, measured against Griffin-Lim.

The generator learns to turn the stored log-mel columns back into the clip's audio. There is no
discriminator: the loss is the L1 distance between log-mel spectrograms (the mel of the output
against the mel of the real audio) plus a multi-resolution STFT loss (spectral convergence and
log-magnitude L1 at three resolutions, as in Parallel WaveGAN). Without adversarial terms the
audio is smoother than a GAN's, but the objective is stable and cheap on a CPU, and what decides
whether a trained vocoder is worth shipping is measured directly: validation reports the spectral
convergence of the trained generator and of :class:`~foleycrafter.models.GriffinLimVocoder` on the
same held-out clips.

Training reads random segments of :data:`SEGMENT_COLUMNS` mel columns (32 columns = 5120 samples
at hop 160, HiFi-GAN's ``segment_size``) from each clip's first ``duration`` seconds. Mel column
``c`` describes audio samples ``[c * hop, (c + 1) * hop)`` (the analysis window is centered on
that hop), so a segment of columns ``[c, c + n)`` pairs with samples ``[c * hop, (c + n) * hop)``.

The generator starts from the model folder's ``vocoder/`` when that holds a HiFi-GAN (native or
released layout): it is fine-tuned, in its own architecture. Otherwise (no vocoder, or a
Griffin-Lim one) a new generator of :data:`DEFAULT_GENERATOR` size is built for the audio
settings of the folder's vocoder config, or of the prepared data when there is none. The generator
trains with plain weights (no weight normalization), in the form the pipeline loads.

Without a discriminator the generator needs thousands of steps, not hundreds: the default one fit a
single segment to spectral convergence 0.17 in 1500 steps (0.06 s each, one thread), while
Griffin-Lim scores about 0.04 on such tonal clips with no training at all. Suggested settings:
``learning_rate`` 2e-3, ``adam_beta1`` 0.8, ``adam_beta2`` 0.99 (HiFi-GAN's betas).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.prepared import PreparedDataset
from ..spectrogram import MelSpectrogram
from .loop import Trainer

SEGMENT_COLUMNS = 32
"""Mel columns per training segment (5120 samples at hop 160: HiFi-GAN's ``segment_size``)."""

DEFAULT_GENERATOR = {
    "upsample_initial_channel": 128,
    "resblock": "1",
    "resblock_kernel_sizes": (3, 7),
    "resblock_dilation_sizes": ((1, 3), (1, 3)),
}
"""Size of a new generator: HiFi-GAN v1's layout scaled down (512 -> 128 channels, 3 -> 2 residual
blocks of 2 dilations), 0.56 M parameters (2.2 MB in float32), 41 % of them in ``conv_pre``. Fitting
one 32-column segment alone (lr 2e-3), 128 channels reached spectral convergence 0.44 after 1000
steps and 0.17 after 1500, where 64 channels (0.2 M parameters) were at 0.81 after 1000 steps
and needed 3000 to reach 0.35: the extra width pays for itself in steps. The upsampling plan is the release's (5, 4, 4, 2)
for hop 160."""

STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))
"""(n_fft, hop, window) samples of the multi-resolution STFT loss: 32 ms, 64 ms and 16 ms windows
at 16 kHz, so that neither time nor frequency resolution alone is rewarded."""

SC_N_FFT = 1024
SC_HOP = 256
"""STFT (samples) on which validation measures spectral convergence: independent of the vocoders'
own 2048-point analysis, so that neither is graded in its own terms."""

_AUDIO_KEYS = ("num_mels", "sampling_rate", "hop_size", "n_fft", "win_size", "fmin", "fmax")
_MAGNITUDE_FLOOR = 1e-7  # added to |S|^2: keeps sqrt and log finite (and differentiable) in silence


# -- data ---------------------------------------------------------------------------------------
def random_segments(
    audio: torch.Tensor,
    log_mel: torch.Tensor,
    durations: Sequence[float],
    columns: int,
    hop_length: int,
    sample_rate: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut one aligned (log-mel, audio) segment at a random place in each clip.

    Args:
        audio: ``(B, window_samples)`` waveforms in [-1, 1].
        log_mel: ``(B, n_mels, window_columns)`` log-mel of those waveforms, ``window_samples =
            window_columns * hop_length``.
        durations: seconds of real audio at the start of each clip (silence follows).
        columns: segment length in mel columns.
        hop_length: samples per mel column.
        sample_rate: Hz.
        generator: CPU generator that draws the start columns.

    Returns:
        ``(B, n_mels, columns)`` log-mel segments and ``(B, columns * hop_length)`` audio segments:
        columns ``[c, c + columns)`` with samples ``[c * hop, (c + columns) * hop)``. The start
        ``c`` is uniform over the positions that stay within the clip's full columns of real audio
        (0 when the clip is shorter than a segment).
    """
    total = log_mel.shape[-1]
    if total < columns:
        raise ValueError(f"Clips of {total} mel columns are shorter than a {columns}-column segment.")
    if audio.shape[-1] < total * hop_length:
        raise ValueError(
            f"{audio.shape[-1]} audio samples do not cover {total} mel columns of {hop_length} samples."
        )
    mel_segments, audio_segments = [], []
    for index, duration in enumerate(durations):
        active = min(total, int(math.floor(float(duration) * sample_rate / hop_length + 1e-9)))
        start = int(torch.randint(0, max(active - columns, 0) + 1, (1,), generator=generator))
        mel_segments.append(log_mel[index, :, start : start + columns])
        audio_segments.append(audio[index, start * hop_length : (start + columns) * hop_length])
    return torch.stack(mel_segments), torch.stack(audio_segments)


# -- losses -------------------------------------------------------------------------------------
def stft_magnitude(waveform: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """(B, samples) -> (B, n_fft // 2 + 1, frames) magnitude, centered Hann-window STFT, floored."""
    window = torch.hann_window(win_length, device=waveform.device, dtype=waveform.dtype)
    spectrum = torch.stft(
        waveform, n_fft, hop_length, win_length, window=window, center=True, return_complex=True
    )
    return torch.sqrt(spectrum.real.square() + spectrum.imag.square() + _MAGNITUDE_FLOOR)


def multi_resolution_stft_loss(
    generated: torch.Tensor,
    target: torch.Tensor,
    resolutions: Sequence[tuple[int, int, int]] = STFT_RESOLUTIONS,
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1.

    Args:
        generated, target: ``(B, samples)`` waveforms.
        resolutions: ``(n_fft, hop, window)`` in samples.

    Returns:
        A scalar. Spectral convergence is ``||S_t - S_g||_F / ||S_t||_F`` over the whole batch, so
        one silent segment does not divide by (almost) zero.
    """
    generated, target = generated.float(), target.float()
    total = generated.new_zeros(())
    for n_fft, hop, win in resolutions:
        wanted = stft_magnitude(target, n_fft, hop, win)
        produced = stft_magnitude(generated, n_fft, hop, win)
        convergence = torch.linalg.vector_norm(wanted - produced) / torch.linalg.vector_norm(wanted)
        total = total + convergence + F.l1_loss(produced.log(), wanted.log())
    return total / len(resolutions)


# -- evaluation ---------------------------------------------------------------------------------
def audio_settings(vocoder_config: Mapping) -> dict:
    """The spectrogram and audio keys of a vocoder config (what any vocoder of this project takes)."""
    return {key: vocoder_config[key] for key in _AUDIO_KEYS if key in vocoder_config}


def clip_columns(duration: float, sample_rate: int, hop_length: int, total: int) -> int:
    """Mel columns that cover ``duration`` seconds (a partial last column counts), at most ``total``."""
    return min(total, max(1, math.ceil(float(duration) * sample_rate / hop_length - 1e-9)))


def spectral_convergence(
    vocoder: torch.nn.Module, dataset: PreparedDataset, max_clips: int | None = None
) -> float:
    """Mean spectral convergence of a vocoder's rendering of prepared clips.

    For each clip the vocoder renders the stored log-mel columns that cover its ``duration``
    (``ceil(duration * rate / hop)`` columns), and the result is compared with the clip's audio of
    the same length: ``||S_ref - S_gen||_F / ||S_ref||_F`` on linear STFT magnitudes
    (:data:`SC_N_FFT` / :data:`SC_HOP` samples, Hann window). 0 is perfect; a silent output scores 1.
    Magnitudes ignore phase, so a rendering that is right up to phase scores well, as it sounds.

    Args:
        vocoder: a ``log_mel (B, num_mels, T) -> (B, T * hop_size)`` module with ``config``
            (``sampling_rate``, ``hop_size``), e.g. :class:`~foleycrafter.models.HifiGanVocoder` or
            :class:`~foleycrafter.models.GriffinLimVocoder`; run on its device, in its dtype.
        dataset: prepared clips with the ``audio`` and ``log_mel`` fields.
        max_clips: score only the first clips (default: all).

    Returns:
        The mean over clips whose reference is not silent (silent clips have no defined score);
        NaN when there is none.
    """
    hop = int(vocoder.config.hop_size)
    rate = int(vocoder.config.sampling_rate)
    device, dtype = vocoder.device, vocoder.dtype
    window = torch.hann_window(SC_N_FFT)
    count = len(dataset) if max_clips is None else min(len(dataset), int(max_clips))
    scores = []
    for index in range(count):
        item = dataset[index]
        log_mel = item["log_mel"]
        columns = clip_columns(item["duration"], rate, hop, log_mel.shape[-1])
        reference = item["audio"][: columns * hop].float()
        with torch.no_grad():
            generated = vocoder(log_mel[None, :, :columns].to(device=device, dtype=dtype))[0]
        generated = generated.float().cpu()
        spectra = [
            torch.stft(x, SC_N_FFT, SC_HOP, window=window, center=True, return_complex=True).abs()
            for x in (reference, generated)
        ]
        energy = torch.linalg.vector_norm(spectra[0])
        if energy > 0:
            scores.append(float(torch.linalg.vector_norm(spectra[0] - spectra[1]) / energy))
    return sum(scores) / len(scores) if scores else float("nan")


# -- the trainer --------------------------------------------------------------------------------
def _upsample_plan(hop_size: int) -> dict:
    """Upsampling stages whose rates multiply to ``hop_size``: the release's for hop 160, else the
    prime factors of the hop, the smallest merged until at most 4 stages remain (each stage halves
    the channels), largest first, with kernels twice the rate."""
    if hop_size == 160:
        return {"upsample_rates": (5, 4, 4, 2), "upsample_kernel_sizes": (11, 8, 8, 4)}
    factors, rest, divisor = [], int(hop_size), 2
    while rest > 1:
        while rest % divisor == 0:
            factors.append(divisor)
            rest //= divisor
        divisor += 1
    if not factors:
        raise ValueError(f"A vocoder needs a hop of at least 2 samples, got {hop_size}.")
    while len(factors) > 4:
        factors.sort()
        factors = [factors[0] * factors[1], *factors[2:]]
    factors.sort(reverse=True)
    return {"upsample_rates": tuple(factors), "upsample_kernel_sizes": tuple(2 * f for f in factors)}


class VocoderTrainer(Trainer):
    """Trains a HiFi-GAN generator on prepared clips (see the module docstring)."""

    name = "vocoder"
    fields = ("audio", "log_mel")
    # The model's vocoder (when it has one) fixes the audio convention; the window does not matter
    # to a vocoder, which renders any number of columns.
    shared_settings = ("sample_rate", "hop_length", "n_mels")

    def build(self, device):
        vocoder = self.initial_vocoder()
        self.mel = MelSpectrogram.from_vocoder_config(vocoder.config).to(device)
        self._griffin_lim_score = None
        self.vocoder = vocoder.to(device).train()
        self.vocoder.requires_grad_(True)
        return self.vocoder

    def initial_vocoder(self):
        """The model folder's HiFi-GAN, or a new :data:`DEFAULT_GENERATOR`-sized one."""
        from ..models.vocoder import HifiGanVocoder, is_release_folder

        folder = self.model_path / "vocoder"
        config_path = folder / "config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            class_name = config.get("_class_name")
            if class_name == "HifiGanVocoder" or (class_name is None and is_release_folder(folder)):
                return HifiGanVocoder.load(folder)
            # Another vocoder (Griffin-Lim): keep its audio settings, grow a generator for them.
            audio = audio_settings(config)
        else:
            data = self.train_set.config
            audio = {
                "num_mels": int(data["n_mels"]),
                "sampling_rate": int(data["sample_rate"]),
                "hop_size": int(data["hop_length"]),
            }
        torch.manual_seed(self.config.seed)
        return HifiGanVocoder(**DEFAULT_GENERATOR, **_upsample_plan(int(audio.get("hop_size", 160))), **audio)

    def compute_loss(self, batch, generator):
        config = self.vocoder.config
        log_mel, audio = random_segments(
            batch["audio"],
            batch["log_mel"],
            batch["duration"],
            SEGMENT_COLUMNS,
            int(config.hop_size),
            int(config.sampling_rate),
            generator,
        )
        generated = self.model(log_mel).float()
        audio = audio.float()
        # The mel target is recomputed from the audio segment rather than cut from the stored
        # columns: both analyses then see the segment's edges through the same reflect padding, so
        # the generator is not asked to reproduce context it never received. Inside the segment the
        # two agree (see the tests).
        mel_loss = F.l1_loss(self.mel(generated), self.mel(audio))
        return mel_loss + multi_resolution_stft_loss(generated, audio)

    def export(self, model, folder: Path, final: bool) -> None:
        model.save_pretrained(folder / "vocoder")

    def griffin_lim(self, model):
        """A :class:`~foleycrafter.models.GriffinLimVocoder` for the trained model's audio settings."""
        from ..models.griffin_lim import GriffinLimVocoder

        return GriffinLimVocoder(**audio_settings(model.config)).to(model.device)

    def validate(self, model, dataset: PreparedDataset, folder: Path, step: int) -> dict:
        """Spectral convergence of the trained generator and of Griffin-Lim on the held-out clips;
        writes ``metrics.json`` and the generator's rendering of the first clip (``<id>.wav``)."""
        from ..video import write_audio

        trained = spectral_convergence(model, dataset)
        if self._griffin_lim_score is None:
            # Griffin-Lim has no weights: its score does not change during training.
            self._griffin_lim_score = spectral_convergence(self.griffin_lim(model), dataset)
        metrics = {
            "spectral_convergence": trained,
            "griffin_lim_spectral_convergence": self._griffin_lim_score,
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(
            json.dumps({**metrics, "clips": len(dataset), "step": step}, indent=2)
        )
        if len(dataset):
            item = dataset[0]
            rate, hop = int(model.config.sampling_rate), int(model.config.hop_size)
            columns = clip_columns(item["duration"], rate, hop, item["log_mel"].shape[-1])
            with torch.no_grad():
                waveform = model(
                    item["log_mel"][None, :, :columns].to(device=model.device, dtype=model.dtype)
                )
            write_audio(folder / f"{item['id']}.wav", waveform[0].float().cpu().numpy(), rate, overwrite=True)
        return metrics
