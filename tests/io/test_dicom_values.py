"""DICOM values as numbers or one-line text: malformed values become None, never an exception."""

from __future__ import annotations

import math

from pydicom.multival import MultiValue

from pipeline.io.dicom_values import first_item, floats, integer, number, one_line, uid_name


def test_numbers_are_finite_and_of_the_declared_count_or_none() -> None:
    assert floats(["0.5", "0.25"], 2) == (0.5, 0.25)
    assert floats(["0.5"], 2) is None and floats(["abc", "1"], 2) is None and floats(None, 2) is None
    assert floats([1.0, math.inf], 2) is None
    assert number(MultiValue(float, ["2.5", "3"])) == 2.5 and number("") is None and number("nan") is None
    assert integer("7.9") == 7 and integer("x") is None


def test_text_is_one_line_and_sequences_yield_their_first_item() -> None:
    assert one_line(MultiValue(str, ["ORIGINAL", "PRIMARY"])) == "ORIGINAL\\PRIMARY"
    assert one_line("GE,  MEDICAL\nSYSTEMS") == "GE MEDICAL SYSTEMS"
    assert first_item([]) is None and first_item(["a", "b"]) == "a" and first_item(5) is None
    assert uid_name("1.2.840.10008.5.1.4.1.1.2") == "CT Image Storage" and uid_name("") == ""
