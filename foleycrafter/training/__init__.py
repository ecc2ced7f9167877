"""Training FoleyCrafter's adapters on your own clips: one trainer per adapter on a shared loop."""

from .config import TrainConfig
from .loop import Trainer

TRAINERS = {
    "semantic": "foleycrafter.training.diffusion:SemanticTrainer",
    "temporal": "foleycrafter.training.diffusion:TemporalTrainer",
    "loudness": "foleycrafter.training.diffusion:LoudnessTrainer",
    "lora": "foleycrafter.training.diffusion:LoraTrainer",
    "alignment": "foleycrafter.training.alignment:AlignmentTrainer",
    "audio_visual": "foleycrafter.training.audio_visual:AudioVisualTrainer",
    "onset": "foleycrafter.training.onset:OnsetTrainer",
    "loudness_predictor": "foleycrafter.training.onset:LoudnessPredictorTrainer",
    "vocoder": "foleycrafter.training.vocoder:VocoderTrainer",
    "clip": "foleycrafter.training.base_models:ClipTrainer",
    "vae": "foleycrafter.training.base_models:VaeTrainer",
    "unet": "foleycrafter.training.base_models:UnetTrainer",
}


def trainer_class(name: str) -> type[Trainer]:
    """The trainer for ``name`` (one of ``TRAINERS``)."""
    import importlib

    if name not in TRAINERS:
        raise ValueError(f"Unknown trainer {name!r}; choose one of {sorted(TRAINERS)}.")
    module, attribute = TRAINERS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


__all__ = ["TRAINERS", "TrainConfig", "Trainer", "trainer_class"]
