"""The video onset detector: which video frames show a sound-making event.

FoleyCrafter's timestamp detector is CondFoleyGen's onset baseline: an R(2+1)D-18 video ResNet
(each 3-D convolution split into a spatial 1x3x3 and a temporal 3x1x1 convolution) changed so that
it never strides in time. The first block of layer2, layer3 and layer4 strides only in space (its
temporal convolution has stride 1 and its 1x1x1 shortcut strides (1, 2, 2)), every temporal
convolution is zero-padded to keep the length, and pooling averages over space only. A small head
(Linear -> ReLU -> Linear) then gives one logit per input frame. The module names reproduce the
released state dict exactly (``net.model.stem.0.weight``, ``net.model.layer2.0.conv1.0.3.weight``,
``fc.0.weight``, ...), so ``timestamp_detector.pth.tar`` loads strictly.

Release quirks, and why there are two preprocessing modes
---------------------------------------------------------
The released inference code runs the detector in a way that its training code does not imply:

1. Frames enter as floats in 0..255: they are resized, cropped and ImageNet-normalized without
   dividing by 255 first, so the network sees values about 255 times too large.
2. The detector is never put in eval mode, so every BatchNorm normalizes with the statistics of
   the current batch (one clip of 150 frames) instead of its running statistics.

The two largely cancel: batch statistics make the first BatchNorm almost blind to the input scale.
Which behaviour the released weights actually prefer can only be told with the weights, so both are
kept and named:

* ``preprocessing="release"`` reproduces the released behaviour: 0..255 inputs, and BatchNorm
  always normalizes with the current batch's statistics (whether the module is in train or eval
  mode) without ever reading or updating the running statistics. Because batch statistics mix
  whatever is in the batch, :meth:`OnsetDetector.detect` runs each clip on its own in this mode.
  This is the default of :meth:`OnsetDetector.from_release`.
* ``preprocessing="clean"``: inputs in 0..1 and ordinary BatchNorm (running statistics in eval
  mode, batch statistics and running-statistics updates in train mode), as in training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from ..release import load_checked, load_torch_pickle, unwrap_state_dict

PREPROCESSING_MODES = ("release", "clean")

#: Probability at or above which a frame is an onset, unless a detector's config or a call says otherwise.
DEFAULT_ONSET_THRESHOLD = 0.5

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Frames are converted to float and resized this many at a time, so that a long high-resolution
# clip never exists as one full-size float tensor.
_RESIZE_CHUNK = 32


def onset_frames(probabilities, threshold: float):
    """The one onset rule: a frame is an onset when its probability is at or above ``threshold``
    (the release's comparison). Works on numpy arrays and torch tensors alike (boolean, same shape)."""
    return probabilities >= threshold


def split_conv_channels(in_channels: int, out_channels: int) -> int:
    """Channels between the spatial and the temporal half of a (2+1)-D convolution.

    Chosen (as in the R(2+1)D paper) so that the pair has about as many weights as one 3x3x3
    convolution: ``(in * out * 27) // (in * 9 + 3 * out)``; 230, 460 and 921 for the first blocks of
    layer2, layer3 and layer4 of the full-size network.
    """
    return (in_channels * out_channels * 27) // (in_channels * 9 + 3 * out_channels)


class BatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` that can be switched to use only the current batch's statistics.

    With ``batch_statistics_only`` set (release mode) it normalizes with the mean and variance of
    the batch it is given, in train and eval mode alike, and never updates ``running_mean`` /
    ``running_var`` / ``num_batches_tracked``: the released code never called ``eval()``, but
    inference must not mutate the loaded weights. Otherwise it is an ordinary ``nn.BatchNorm3d``.
    Parameter and buffer names are the standard ones, so state dicts are unchanged.
    """

    def __init__(self, num_features: int, batch_statistics_only: bool = False):
        super().__init__(num_features)
        self.batch_statistics_only = batch_statistics_only

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.batch_statistics_only:
            return super().forward(input)
        # No running buffers are passed, so F.batch_norm has nothing to update.
        return F.batch_norm(
            input, None, None, self.weight, self.bias, training=True, momentum=0.0, eps=self.eps
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", batch_statistics_only={self.batch_statistics_only}"


class _SplitConv3d(nn.Sequential):
    """A (2+1)-D convolution: 1x3x3 spatial conv -> BatchNorm -> ReLU -> 3x1x1 temporal conv.

    Child indices 0, 1, 3 hold the weights (2 is the ReLU), as in the released state dict. Only the
    spatial conv strides; the temporal conv has stride 1 and padding 1 so the frame count is kept.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, spatial_stride: int = 1):
        super().__init__(
            nn.Conv3d(
                in_channels,
                mid_channels,
                kernel_size=(1, 3, 3),
                stride=(1, spatial_stride, spatial_stride),
                padding=(0, 1, 1),
                bias=False,
            ),
            BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_channels, out_channels, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
        )


class _ResidualBlock(nn.Module):
    """Basic two-convolution residual block of the video ResNet (keys ``conv1``, ``conv2``,
    ``downsample``)."""

    def __init__(self, in_channels: int, out_channels: int, spatial_stride: int = 1):
        super().__init__()
        # Both convolutions of a block use the width derived from the block's input channels (the
        # released first blocks of layer2..4 have 230/460/921 in conv2 as well as conv1).
        mid_channels = split_conv_channels(in_channels, out_channels)
        self.conv1 = nn.Sequential(
            _SplitConv3d(in_channels, out_channels, mid_channels, spatial_stride),
            BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            _SplitConv3d(out_channels, out_channels, mid_channels),
            BatchNorm3d(out_channels),
        )
        self.relu = nn.ReLU(inplace=True)
        if spatial_stride != 1 or in_channels != out_channels:
            # The shortcut strides in space only, like the main path.
            self.downsample = nn.Sequential(
                nn.Conv3d(
                    in_channels,
                    out_channels,
                    kernel_size=1,
                    stride=(1, spatial_stride, spatial_stride),
                    bias=False,
                ),
                BatchNorm3d(out_channels),
            )
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class _TimeKeepingResNet(nn.Module):
    """R(2+1)D-18 trunk without pooling or classifier: (B, 3, T, H, W) -> (B, C, T, H/16, W/16)."""

    def __init__(
        self,
        block_channels: Sequence[int],
        layers: Sequence[int],
        stem_mid_channels: int,
        stem_channels: int,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(
                3, stem_mid_channels, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
            ),
            BatchNorm3d(stem_mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid_channels, stem_channels, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
            BatchNorm3d(stem_channels),
            nn.ReLU(inplace=True),
        )
        in_channels = stem_channels
        self.layer_names = []
        for index, (channels, depth) in enumerate(zip(block_channels, layers)):
            # Every layer but the first halves the spatial size in its first block, never time.
            stride = 1 if index == 0 else 2
            blocks = [_ResidualBlock(in_channels, channels, stride)]
            blocks += [_ResidualBlock(channels, channels) for _ in range(depth - 1)]
            name = f"layer{index + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.layer_names.append(name)
            in_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


class OnsetDetector(ModelMixin, ConfigMixin):
    """Per-frame onset detector (CondFoleyGen's time-keeping R(2+1)D-18 and a per-frame head).

    Args:
        block_channels: output channels of layer1..layerN (released: 64, 128, 256, 512).
        layers: residual blocks per layer (released: 2, 2, 2, 2).
        stem_mid_channels: channels between the stem's spatial and temporal convs (released: 45).
        stem_channels: stem output channels (released: 64).
        head_hidden: hidden width of the per-frame head (released: 128).
        resize_size: frames are resized (squashed) to ``resize_size x resize_size`` pixels.
        crop_size: then center-cropped to ``crop_size x crop_size`` pixels.
        preprocessing: ``"release"`` or ``"clean"`` (see the module docstring): the input pixel
            scale and the BatchNorm behaviour.
        threshold: probability at or above which a frame counts as an onset (:func:`onset_frames`);
            the default threshold of every use of this detector.
    """

    @register_to_config
    def __init__(
        self,
        block_channels: Sequence[int] = (64, 128, 256, 512),
        layers: Sequence[int] = (2, 2, 2, 2),
        stem_mid_channels: int = 45,
        stem_channels: int = 64,
        head_hidden: int = 128,
        resize_size: int = 128,
        crop_size: int = 112,
        preprocessing: str = "release",
        threshold: float = DEFAULT_ONSET_THRESHOLD,
    ):
        super().__init__()
        if preprocessing not in PREPROCESSING_MODES:
            raise ValueError(
                f"OnsetDetector preprocessing must be one of {PREPROCESSING_MODES}, got {preprocessing!r}."
            )
        block_channels = tuple(block_channels)
        layers = tuple(layers)
        if not block_channels or len(block_channels) != len(layers):
            raise ValueError(
                f"OnsetDetector needs one entry of block_channels per entry of layers, got "
                f"block_channels={block_channels} and layers={layers}."
            )
        sizes = {
            "block_channels": block_channels,
            "layers": layers,
            "stem_mid_channels": (stem_mid_channels,),
            "stem_channels": (stem_channels,),
            "head_hidden": (head_hidden,),
            "resize_size": (resize_size,),
            "crop_size": (crop_size,),
        }
        for name, values in sizes.items():
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
                raise ValueError(f"OnsetDetector {name} must be positive integers, got {values}.")
        if crop_size > resize_size:
            raise ValueError(
                f"OnsetDetector crop_size ({crop_size}) cannot exceed resize_size ({resize_size})."
            )
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"OnsetDetector threshold is a probability in [0, 1], got {threshold}.")

        # A ModuleDict gives the released key prefix ``net.model.`` without an extra class.
        self.net = nn.ModuleDict(
            {"model": _TimeKeepingResNet(block_channels, layers, stem_mid_channels, stem_channels)}
        )
        self.fc = nn.Sequential(
            nn.Linear(block_channels[-1], head_hidden), nn.ReLU(inplace=True), nn.Linear(head_hidden, 1)
        )
        self._init_weights()
        for module in self.modules():
            if isinstance(module, BatchNorm3d):
                module.batch_statistics_only = preprocessing == "release"

    def _init_weights(self) -> None:
        # Random initialization for untrained models (tests, training from scratch); released
        # weights overwrite all of it.
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # -- network ---------------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Per-frame onset logits.

        Args:
            pixel_values: float tensor (B, 3, T, H, W) as made by :meth:`preprocess` (normally
                H = W = ``crop_size`` pixels); any T >= 1 frames.

        Returns:
            logits (B, T), one per input frame (sigmoid > ``threshold`` means an onset).

        Note:
            In ``"release"`` mode BatchNorm uses the statistics of this whole batch, so a clip's
            logits depend on the other clips in it; :meth:`detect` avoids that.
        """
        if pixel_values.ndim != 5 or pixel_values.shape[1] != 3:
            raise ValueError(
                f"OnsetDetector expects pixel_values of shape (B, 3, T, H, W), got {tuple(pixel_values.shape)}."
            )
        features = self.net["model"](pixel_values)
        features = features.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C): average over space only
        return self.fc(features).squeeze(-1)

    # -- inputs ----------------------------------------------------------------------------------
    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Video frames -> network input.

        Each frame is resized (squashed, aspect ratio not kept; bilinear with antialiasing,
        ``align_corners=False``) to ``resize_size x resize_size`` pixels, center-cropped to
        ``crop_size x crop_size`` pixels and normalized with the ImageNet mean/std. In ``"clean"``
        mode pixel values are first divided by 255; in ``"release"`` mode they stay in 0..255 (the
        release quirk, see the module docstring).

        Args:
            frames: uint8 RGB frames, numpy array or tensor, shape (T, H, W, 3) for one clip or
                (B, T, H, W, 3) for a batch of clips of equal length.

        Returns:
            float32 tensor (B, 3, T, crop_size, crop_size) on the model's device.
        """
        if isinstance(frames, np.ndarray):
            # Views such as ``bgr[..., ::-1]`` have negative strides, which torch cannot wrap.
            frames = np.ascontiguousarray(frames)
        frames = torch.as_tensor(frames)
        if frames.dtype != torch.uint8:
            # Float input would leave the pixel scale (0..1 or 0..255) ambiguous.
            raise TypeError(
                f"OnsetDetector.preprocess expects uint8 RGB frames (0..255), got dtype {frames.dtype}."
            )
        if frames.ndim == 4:
            frames = frames.unsqueeze(0)
        if frames.ndim != 5 or frames.shape[-1] != 3 or 0 in frames.shape:
            raise ValueError(
                "OnsetDetector.preprocess expects non-empty RGB frames of shape (T, H, W, 3) or "
                f"(B, T, H, W, 3), got {tuple(frames.shape)}."
            )
        batch, num_frames = frames.shape[:2]
        resize, crop = self.config.resize_size, self.config.crop_size
        top = int(round((resize - crop) / 2.0))
        device = self.device
        # Kept out of the module's buffers so that a cast to half precision never rounds them.
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        flat = frames.reshape(batch * num_frames, *frames.shape[2:])
        chunks = []
        for start in range(0, flat.shape[0], _RESIZE_CHUNK):
            chunk = flat[start : start + _RESIZE_CHUNK].to(device).permute(0, 3, 1, 2).float()
            if self.config.preprocessing == "clean":
                chunk = chunk / 255.0
            chunk = F.interpolate(
                chunk, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True
            )
            chunk = chunk[:, :, top : top + crop, top : top + crop]
            chunks.append((chunk - mean) / std)
        pixels = torch.cat(chunks).reshape(batch, num_frames, 3, crop, crop)
        return pixels.permute(0, 2, 1, 3, 4).contiguous()

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def detect(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Onset probability of every frame.

        Args:
            frames: uint8 RGB frames (T, H, W, 3) or (B, T, H, W, 3), as for :meth:`preprocess`
                (the release samples T = 150 frames uniformly over the clip).

        Returns:
            float32 tensor (B, T) on the CPU, probabilities in [0, 1].

        In ``"release"`` mode each clip of the batch goes through the network on its own, as in
        the released code: BatchNorm uses batch statistics there, and clips must not share them.
        In ``"clean"`` mode the batch runs at once (set eval mode for running statistics).
        """
        pixel_values = self.preprocess(frames).to(self.dtype)
        if self.config.preprocessing == "release":
            logits = torch.cat([self(clip.unsqueeze(0)) for clip in pixel_values])
        else:
            logits = self(pixel_values)
        return torch.sigmoid(logits.float()).cpu()

    def onsets(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Boolean (B, T) tensor: which frames are onsets under ``threshold`` (:func:`onset_frames`)."""
        return onset_frames(self.detect(frames), self.config.threshold)

    # -- released weights ------------------------------------------------------------------------
    @classmethod
    def from_release(
        cls, path: str | os.PathLike, torch_dtype: torch.dtype | None = None, **config_overrides
    ) -> OnsetDetector:
        """Load the released ``timestamp_detector.pth.tar``.

        The release ships no config: widths and depths are read off the file's tensor shapes
        (:func:`architecture_from_state_dict`), so the full-size release and smaller detectors in
        the same layout both load. Everything else takes the release defaults.

        Args:
            path: the torch pickle ``{"state_dict": ..., "epoch": int}`` (keys may carry a
                ``module.`` prefix), or a bare state dict saved with ``torch.save``.
            torch_dtype: cast the loaded model to this dtype (default: keep float32).
            config_overrides: constructor arguments replacing those, e.g.
                ``preprocessing="clean"``; ``preprocessing`` defaults to ``"release"``.

        Returns:
            the model in eval mode.

        Raises:
            CheckpointError: the file is unreadable or unsafe, or its keys or shapes do not match
                the network exactly (named in the message).
        """
        state_dict = unwrap_state_dict(load_torch_pickle(path), path)
        config = {"preprocessing": "release", **architecture_from_state_dict(state_dict), **config_overrides}
        model = cls(**config)
        load_checked(model, state_dict, path, "onset detector")
        if torch_dtype is not None:
            model = model.to(torch_dtype)
        return model.eval()


def architecture_from_state_dict(state_dict) -> dict:
    """Widths and depths of a detector in the released key layout, read from its tensor shapes.

    Returns only what the keys make certain (an empty dict when the layout is not recognised, so
    that the strict key check reports what is wrong).
    """
    try:
        layers, block_channels = [], []
        for index in range(1, 5):
            blocks = {int(k.split(".")[3]) for k in state_dict if k.startswith(f"net.model.layer{index}.")}
            if not blocks:
                break
            layers.append(max(blocks) + 1)
            block_channels.append(int(state_dict[f"net.model.layer{index}.0.conv1.1.weight"].shape[0]))
        return {
            "block_channels": tuple(block_channels),
            "layers": tuple(layers),
            "stem_mid_channels": int(state_dict["net.model.stem.0.weight"].shape[0]),
            "stem_channels": int(state_dict["net.model.stem.3.weight"].shape[0]),
            "head_hidden": int(state_dict["fc.0.weight"].shape[0]),
        }
    except (KeyError, ValueError, IndexError):
        return {}
