"""The command lines' value types: good text becomes a value, bad text a message saying what was expected."""

from __future__ import annotations

import argparse

import pytest

from foleycrafter.arguments import non_negative, positive_int, positive_number


def test_good_values_are_parsed():
    assert positive_int("3") == 3
    assert non_negative("0") == 0.0 and non_negative("2.5") == 2.5
    assert positive_number("0.25") == 0.25


@pytest.mark.parametrize(
    "parse, text, expected",
    [
        (positive_int, "0", "positive whole number"),
        (positive_int, "-2", "positive whole number"),
        (positive_int, "two", "positive whole number"),
        (positive_int, "1.5", "positive whole number"),
        (non_negative, "-0.1", "number >= 0"),
        (non_negative, "nan", "number >= 0"),
        (non_negative, "loud", "number >= 0"),
        (positive_number, "0", "number > 0"),
        (positive_number, "x", "number > 0"),
    ],
)
def test_bad_values_say_what_was_expected(parse, text, expected):
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a {expected}, got '{text}'"):
        parse(text)
