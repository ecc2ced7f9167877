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


def add_sampler_arguments(parser) -> None:
    """``--steps`` and ``--scheduler`` for an ``argparse`` parser; both default to the model's own
    (``None`` steps: its ``default_num_inference_steps``; ``"saved"``: its saved sampler)."""
    from .arguments import positive_int

    parser.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="denoising steps (default: the model's own, 25 for the released weights and the bundled model)",
    )
    parser.add_argument(
        "--scheduler",
        choices=list(SCHEDULERS),
        default="saved",
        help="sampler (default: the one saved with the model, PNDM for the released weights; "
        "--scheduler pndm --steps 25 samples as the release does with any model)",
    )
