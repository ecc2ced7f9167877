"""Value types for the command lines (``argparse`` ``type=``), shared by ``cli``, ``eval`` and
``schedulers``: each turns bad text into a message that says what was expected."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A whole number >= 1 (steps, frames, batch sizes)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A number >= 0 (scales, seconds)."""
    return _number(text, lambda value: value >= 0, "a number >= 0")


def fraction(text: str) -> float:
    """A number in [0, 1] (shares, strengths)."""
    return _number(text, lambda value: 0 <= value <= 1, "a number from 0 to 1")


def positive_number(text: str) -> float:
    """A number > 0 (seconds, sizes)."""
    return _number(text, lambda value: value > 0, "a number > 0")


def _number(text: str, accept, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")  # accepted by no bound: reported like any value out of range
    if not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
