"""Datasets built inside the project.

* :mod:`foleycrafter.data.synthfoley` -- SynthFoley, a procedural, deterministic synchronized
  audio-video dataset with ground-truth onsets and classes (``python -m foleycrafter.data.synthfoley``).
* :mod:`foleycrafter.data.prepared` -- prepared training data: clips cut to the model window, with
  everything training reads cached.

Submodules are imported on use, so importing this package stays cheap.
"""
