"""The released FoleyCrafter's generation settings: the defaults of models that do not name their own.

A model folder may save its own in ``model_index.json`` (``default_temporal_scale``,
``default_num_inference_steps``) and its own sampler in ``scheduler/``; the pipeline, the command
line, the demo and the evaluation all fall back to these values. Kept free of heavy imports so the
command line can read them before torch and diffusers load.
"""

#: Weight of the temporal controller (the release's ``controlnet_conditioning_scale``).
RELEASE_TEMPORAL_SCALE = 0.2
#: Denoising steps (the release runs its PNDM sampler for 25).
RELEASE_NUM_INFERENCE_STEPS = 25

#: A frame-aligned semantic adapter's visual attention masks (:mod:`foleycrafter.frame_aligned`).
VISUAL_ATTENTION_MODES = ("all", "causal", "framewise")
