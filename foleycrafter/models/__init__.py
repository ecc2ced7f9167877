"""FoleyCrafter's own models (each a diffusers ``ModelMixin`` + ``ConfigMixin``)."""

from .alignment import AlignmentClassifier
from .audio_visual import AudioVisualEncoder
from .griffin_lim import GriffinLimVocoder as GriffinLimVocoder
from .loudness import LoudnessPredictor
from .onset import OnsetDetector
from .vocoder import HifiGanVocoder

__all__ = [
    "AlignmentClassifier",
    "AudioVisualEncoder",
    "HifiGanVocoder",
    "LoudnessPredictor",
    "OnsetDetector",
]
