"""Sampler choice by name, for the command line, the evaluation and the demo.

The saved scheduler (PNDM for Auffusion and the release) is the reference; any other is built from
its config, so the noise schedule (betas, prediction type, timestep spacing) stays the model's own.
In Python, swap it the diffusers way: ``pipe.scheduler = DPMSolverMultistepScheduler.from_config(
pipe.scheduler.config)``.
"""

from __future__ import annotations

#: name -> (diffusers class name, extra config). "saved" keeps the model's own scheduler.
SCHEDULERS: dict[str, tuple[str | None, dict]] = {
    "saved": (None, {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
}


def set_scheduler(pipe, name: str) -> None:
    """Replace ``pipe.scheduler`` by the sampler called ``name`` (a key of :data:`SCHEDULERS`),
    built from the current scheduler's config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    class_name, extra = SCHEDULERS[name]
    if class_name is None:
        return
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **extra)
