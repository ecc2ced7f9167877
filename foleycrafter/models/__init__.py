"""FoleyCrafter's own models (each a diffusers ``ModelMixin`` + ``ConfigMixin``)."""

from .griffin_lim import GriffinLimVocoder as GriffinLimVocoder
from .onset import OnsetDetector
from .vocoder import HifiGanVocoder

__all__ = ["HifiGanVocoder", "OnsetDetector"]
