"""Datasets built inside the project.

* :mod:`foleycrafter.data.synthfoley` -- SynthFoley, a procedural, deterministic synchronized
  audio-video dataset with ground-truth onsets and classes (``python -m foleycrafter.data.synthfoley``).

Submodules are imported on use, so importing this package stays cheap.
"""
