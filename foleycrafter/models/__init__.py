"""FoleyCrafter's own models (each a diffusers ``ModelMixin`` + ``ConfigMixin``)."""

from .onset import OnsetDetector
from .vocoder import HifiGanVocoder

__all__ = ["HifiGanVocoder", "OnsetDetector"]
