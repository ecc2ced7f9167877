"""FoleyCrafter: synchronized sound for silent video.

Semantic and temporal adapters on a frozen Auffusion text-to-audio diffusion model, as a diffusers
pipeline::

    from foleycrafter import FoleyCrafterPipeline
    pipe = FoleyCrafterPipeline.from_pretrained("my-foleycrafter")
    out = pipe(prompt="footsteps on gravel", video="clip.mp4")
    out.audios[0], out.sample_rate
"""

__version__ = "0.1.0.dev0"

from .models import HifiGanVocoder, OnsetDetector
from .pipeline import FoleyCrafterPipeline, FoleyCrafterPipelineOutput
from .release import CheckpointError
from .timeline import Timeline
from .video import VideoClip, VideoReadError

__all__ = [
    "CheckpointError",
    "FoleyCrafterPipeline",
    "FoleyCrafterPipelineOutput",
    "HifiGanVocoder",
    "OnsetDetector",
    "Timeline",
    "VideoClip",
    "VideoReadError",
]
