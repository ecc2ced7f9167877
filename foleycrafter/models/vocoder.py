"""HiFi-GAN generator: log-mel spectrogram -> waveform.

Auffusion (and so FoleyCrafter) renders its denoised mel image to audio with a HiFi-GAN v1
generator. It is written here as a diffusers model so that it saves and loads like every other
component (``save_pretrained`` / ``from_pretrained``, safetensors), and so that the released
``vocoder/config.json`` + ``vocoder/vocoder.pt`` load as they are (:meth:`HifiGanVocoder.from_release`).

The released weights are stored with weight normalization (``weight_g`` / ``weight_v`` pairs).
Weight norm only matters for training; the native model holds plain weights, and the release
pairs are folded into them once at load time. Each released convolution therefore costs one
tensor instead of two, and no parametrization hooks run at inference.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..release import CheckpointError, load_checked, load_torch_pickle, unwrap_state_dict

RELEASE_CONFIG_NAME = "config.json"
RELEASE_WEIGHTS_NAME = "vocoder.pt"
NATIVE_WEIGHTS_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

# Slope of the leaky ReLUs inside the network; the one before conv_post uses torch's default
# (0.01) because the original HiFi-GAN code calls F.leaky_relu without a slope there.
LRELU_SLOPE = 0.1


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    return dilation * (kernel_size - 1) // 2


class ResBlock1(nn.Module):
    """HiFi-GAN v1/v2 residual block: per dilation, a dilated conv then an undilated conv."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            residual = conv1(F.leaky_relu(x, LRELU_SLOPE))
            x = x + conv2(F.leaky_relu(residual, LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN v3 residual block: one dilated conv per dilation (parameters ``convs.M``)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


_RESBLOCKS = {"1": ResBlock1, "2": ResBlock2}


class HifiGanVocoder(ModelMixin, ConfigMixin):
    """HiFi-GAN generator turning a log-mel spectrogram into a waveform.

    Config defaults are the released Auffusion / FoleyCrafter vocoder (16 kHz, hop 160, 256 mels).
    ``n_fft``, ``win_size``, ``fmin`` and ``fmax`` do not change the network; they record the
    spectrogram the weights were trained on (see
    :meth:`foleycrafter.spectrogram.MelSpectrogram.from_vocoder_config`).

    Args:
        num_mels: mel bands of the input spectrogram.
        upsample_rates: time upsampling factor of each stage; their product must equal ``hop_size``.
        upsample_kernel_sizes: transposed-conv kernel size of each stage (>= its rate).
        upsample_initial_channel: channels after ``conv_pre``; halved by each stage.
        resblock: ``"1"`` (HiFi-GAN v1/v2 block) or ``"2"`` (the lighter v3 block).
        resblock_kernel_sizes: kernel sizes (odd) of the parallel residual blocks of every stage.
        resblock_dilation_sizes: dilations of each of those residual blocks.
        sampling_rate: output sample rate (Hz).
        hop_size: output samples per input mel column.
        n_fft, win_size: STFT size and window (samples) of the training spectrogram.
        fmin, fmax: mel range (Hz) of the training spectrogram; ``fmax=None`` means ``sampling_rate / 2``.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        num_mels: int = 256,
        upsample_rates: Sequence[int] = (5, 4, 4, 2),
        upsample_kernel_sizes: Sequence[int] = (11, 8, 8, 4),
        upsample_initial_channel: int = 512,
        resblock: str = "1",
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        sampling_rate: int = 16000,
        hop_size: int = 160,
        n_fft: int = 2048,
        win_size: int = 1024,
        fmin: float = 0.0,
        fmax: float | None = None,
    ):
        super().__init__()
        # JSON turns the tuples into lists; build from tuples either way.
        upsample_rates = tuple(int(u) for u in upsample_rates)
        upsample_kernel_sizes = tuple(int(k) for k in upsample_kernel_sizes)
        resblock_kernel_sizes = tuple(int(k) for k in resblock_kernel_sizes)
        resblock_dilation_sizes = tuple(tuple(int(d) for d in ds) for ds in resblock_dilation_sizes)
        resblock = str(resblock)
        self._validate(
            num_mels,
            upsample_rates,
            upsample_kernel_sizes,
            upsample_initial_channel,
            resblock,
            resblock_kernel_sizes,
            resblock_dilation_sizes,
            hop_size,
        )

        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(num_mels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block_class = _RESBLOCKS[resblock]
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            in_channels = upsample_initial_channel >> i
            out_channels = upsample_initial_channel >> (i + 1)
            # Padding chosen so that each stage outputs exactly rate * input length.
            excess = kernel - rate
            padding, output_padding = (excess // 2, 0) if excess % 2 == 0 else (excess // 2 + 1, 1)
            self.ups.append(
                nn.ConvTranspose1d(
                    in_channels,
                    out_channels,
                    kernel,
                    stride=rate,
                    padding=padding,
                    output_padding=output_padding,
                )
            )
            for block_kernel, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block_class(out_channels, block_kernel, dilations))
        self.conv_post = nn.Conv1d(upsample_initial_channel >> len(upsample_rates), 1, 7, padding=3)

    @staticmethod
    def _validate(
        num_mels,
        upsample_rates,
        upsample_kernel_sizes,
        upsample_initial_channel,
        resblock,
        resblock_kernel_sizes,
        resblock_dilation_sizes,
        hop_size,
    ) -> None:
        if num_mels <= 0:
            raise ValueError(f"num_mels must be positive, got {num_mels}.")
        if resblock not in _RESBLOCKS:
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}.")
        if not upsample_rates or len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError(
                f"upsample_rates {list(upsample_rates)} and upsample_kernel_sizes "
                f"{list(upsample_kernel_sizes)} must be non-empty and of equal length."
            )
        if math.prod(upsample_rates) != hop_size:
            raise ValueError(
                f"The product of upsample_rates {list(upsample_rates)} is {math.prod(upsample_rates)}, but "
                f"hop_size is {hop_size}: the vocoder must render exactly hop_size samples per mel column."
            )
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes):
            if rate < 1 or kernel < rate:
                raise ValueError(
                    f"Each upsample kernel must be >= its rate >= 1, got kernel {kernel}, rate {rate}."
                )
            if (kernel - rate) % 2 and rate < 2:
                raise ValueError(
                    f"Upsample kernel {kernel} with rate {rate}: an odd kernel - rate needs rate >= 2 "
                    f"(output_padding 1 must be smaller than the stride)."
                )
        if upsample_initial_channel % (2 ** len(upsample_rates)):
            raise ValueError(
                f"upsample_initial_channel ({upsample_initial_channel}) must be divisible by "
                f"2 ** {len(upsample_rates)}: each upsample stage halves the channels."
            )
        if not resblock_kernel_sizes or len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError(
                f"resblock_kernel_sizes {list(resblock_kernel_sizes)} and resblock_dilation_sizes "
                f"{[list(d) for d in resblock_dilation_sizes]} must be non-empty and of equal length."
            )
        if any(k < 1 or k % 2 == 0 for k in resblock_kernel_sizes):
            raise ValueError(
                f"resblock_kernel_sizes must be odd (length-preserving convs), got {list(resblock_kernel_sizes)}."
            )
        if any(not ds or min(ds) < 1 for ds in resblock_dilation_sizes):
            raise ValueError(
                f"resblock dilations must be positive, got {[list(d) for d in resblock_dilation_sizes]}."
            )

    # -- audio facts -----------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        """Output audio samples per input mel column."""
        return int(self.config.hop_size)

    @property
    def sample_rate(self) -> int:
        """Output sample rate (Hz)."""
        return int(self.config.sampling_rate)

    # -- inference -------------------------------------------------------------------------
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Render a log-mel spectrogram to audio.

        Args:
            log_mel: ``(B, num_mels, T)`` or ``(num_mels, T)`` natural-log mel magnitudes, one
                column per ``hop_size`` samples (the :class:`~foleycrafter.spectrogram.MelSpectrogram`
                convention). Cast to the model's device and dtype.

        Returns:
            ``(B, T * hop_size)`` waveform in [-1, 1] at ``sampling_rate`` (``B = 1`` for an
            unbatched input), on the model's device and in its dtype.
        """
        if not torch.is_tensor(log_mel) or log_mel.dim() not in (2, 3):
            shape = tuple(log_mel.shape) if torch.is_tensor(log_mel) else type(log_mel).__name__
            raise ValueError(
                f"HifiGanVocoder expects a (B, num_mels, T) or (num_mels, T) log-mel, got {shape}."
            )
        if log_mel.dim() == 2:
            log_mel = log_mel.unsqueeze(0)
        if log_mel.shape[1] != self.config.num_mels:
            raise ValueError(
                f"HifiGanVocoder expects {self.config.num_mels} mel bands, got a log-mel of shape "
                f"{tuple(log_mel.shape)} (expected (B, num_mels, T))."
            )
        weight = self.conv_pre.weight
        x = self.conv_pre(log_mel.to(device=weight.device, dtype=weight.dtype))
        for i, upsample in enumerate(self.ups):
            x = upsample(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x).squeeze(1)

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_release(
        cls, folder: str | os.PathLike, torch_dtype: torch.dtype | None = None
    ) -> HifiGanVocoder:
        """Load the released vocoder folder (``config.json`` + ``vocoder.pt``) as it is.

        ``config.json`` is the HiFi-GAN training config; keys that do not describe the network or
        its audio (``batch_size``, ``learning_rate``, ``segment_size``, ``num_gpus``, ...) are
        ignored. ``vocoder.pt`` is read with ``weights_only=True`` (``{"generator": state_dict}``
        or a bare state dict); its weight-norm pairs are folded into plain weights and the result
        must match the model exactly.

        Args:
            folder: the release's ``vocoder`` folder.
            torch_dtype: dtype to cast the model to (default: float32, as stored).

        Raises:
            FileNotFoundError: the folder, ``config.json`` or ``vocoder.pt`` is missing.
            CheckpointError: the config or weights are unreadable, unsafe to unpickle, or do not
                match the architecture (names the file and the offending keys).
        """
        folder = Path(folder)
        config_path = folder / RELEASE_CONFIG_NAME
        weights_path = folder / RELEASE_WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: a released HiFi-GAN vocoder folder holds {RELEASE_CONFIG_NAME} and "
                    f"{RELEASE_WEIGHTS_NAME}."
                )
        model = cls(**read_release_config(config_path))
        state_dict = unwrap_state_dict(
            load_torch_pickle(weights_path), weights_path, wrapper_keys=("generator", "state_dict", "model")
        )
        state_dict = fold_weight_norm(state_dict, weights_path)
        load_checked(model, state_dict, weights_path, "HiFi-GAN vocoder")
        model.eval()
        if torch_dtype is not None:
            model = model.to(torch_dtype)
        return model

    @classmethod
    def load(cls, folder: str | os.PathLike, torch_dtype: torch.dtype | None = None) -> HifiGanVocoder:
        """Load either layout: a released folder (:meth:`from_release`) or a native
        ``save_pretrained`` folder (``from_pretrained``)."""
        if is_release_folder(folder):
            return cls.from_release(folder, torch_dtype=torch_dtype)
        return cls.from_pretrained(folder, dtype=torch_dtype)


def is_release_folder(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds a released vocoder (``vocoder.pt``) and no native diffusers weights."""
    folder = Path(folder)
    return (folder / RELEASE_WEIGHTS_NAME).is_file() and not any(
        (folder / name).is_file() for name in NATIVE_WEIGHTS_NAMES
    )


def read_release_config(path: str | os.PathLike) -> dict:
    """The :class:`HifiGanVocoder` arguments in a released HiFi-GAN ``config.json``.

    Training-only keys are dropped; missing architecture keys take the released defaults.

    Raises:
        CheckpointError: the file is not a JSON object.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"Cannot read {path} as a JSON vocoder config: {error}") from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(raw).__name__}.")
    accepted = set(inspect.signature(HifiGanVocoder.__init__).parameters) - {"self"}
    return {key: value for key, value in raw.items() if key in accepted}


def fold_weight_norm(
    state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike
) -> dict[str, torch.Tensor]:
    """Replace every ``X.weight_g`` / ``X.weight_v`` pair by the plain ``X.weight`` it stands for.

    ``weight = v * (g / ||v||)`` with the norm over all dimensions except 0, which is what
    ``torch.nn.utils.weight_norm`` (default ``dim=0``) computes, for ``Conv1d`` (dim 0 = output
    channels) and ``ConvTranspose1d`` (dim 0 = input channels) alike. Other entries pass through;
    a lone ``weight_g`` or ``weight_v`` is left for the strict key check to report.

    Raises:
        CheckpointError: a ``weight_g`` does not hold one gain per slice of its ``weight_v``.
    """
    folded: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_g") and key[: -len("_g")] + "_v" in state_dict:
            continue
        if key.endswith(".weight_v") and key[: -len("_v")] + "_g" in state_dict:
            name = key[: -len(".weight_v")]
            direction = value
            gain = state_dict[name + ".weight_g"]
            if direction.dim() < 1 or gain.numel() != direction.shape[0]:
                raise CheckpointError(
                    f"{source}: {name}.weight_g has shape {tuple(gain.shape)}, expected one gain per "
                    f"slice of {name}.weight_v {tuple(direction.shape)}."
                )
            dtype = torch.promote_types(direction.dtype, torch.float32)
            direction = direction.to(dtype)
            gain = gain.to(dtype).reshape((-1,) + (1,) * (direction.dim() - 1))
            if direction.dim() == 1:
                norm = direction.abs()
            else:
                norm = torch.linalg.vector_norm(direction, dim=tuple(range(1, direction.dim())), keepdim=True)
            folded[name + ".weight"] = direction * (gain / norm)
            continue
        folded[key] = value
    return folded
