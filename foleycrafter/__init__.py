"""FoleyCrafter: synchronized sound for silent video.

Semantic and temporal adapters on a frozen Auffusion text-to-audio diffusion model, as a diffusers
pipeline::

    from foleycrafter import FoleyCrafterPipeline
    pipe = FoleyCrafterPipeline.from_pretrained("my-foleycrafter")
    out = pipe(prompt="footsteps on gravel", video="clip.mp4")
    out.audios[0], out.sample_rate
"""

import importlib

__version__ = "0.1.0.dev0"

# Public names -> the module that defines them. Imported on first use, so that `foleycrafter --help`
# and light tools do not pay for importing torch, diffusers and transformers.
_EXPORTS = {
    "FoleyCrafterPipeline": ".pipeline",
    "FoleyCrafterPipelineOutput": ".pipeline",
    "HifiGanVocoder": ".models",
    "OnsetDetector": ".models",
    "CheckpointError": ".release",
    "Timeline": ".timeline",
    "VideoClip": ".video",
    "VideoReadError": ".video",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'foleycrafter' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
