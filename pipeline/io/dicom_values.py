"""DICOM element values as numbers and one-line text, tolerant of what writers put there.

Each converter returns ``None`` for a value that is absent, malformed or not finite,
never raises: a header that says ``PixelSpacing = 'abc'`` is judged by the caller
(:func:`pipeline.io.dicom_header.geometry_problem`), not by an exception.
"""

from __future__ import annotations

import math


def floats(value: object, length: int) -> tuple[float, ...] | None:
    """Exactly ``length`` finite numbers (a multi-valued element), else ``None``."""
    if value is None:
        return None
    try:
        items = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(items) != length or not all(math.isfinite(v) for v in items):
        return None
    return tuple(items)


def number(value: object) -> float | None:
    """One finite number (the first of a multi-valued element), else ``None``."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]  # type: ignore[index]
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError):
        return None
    return result if math.isfinite(result) else None


def integer(value: object) -> int | None:
    """:func:`number`, truncated to an integer."""
    result = number(value)
    return int(result) if result is not None else None


def one_line(value: object) -> str:
    """A value as one line of text: multi-values joined by ``\\``, commas and runs of spaces as one space."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    return " ".join(str(value).replace(",", " ").split())


def first_item(sequence: object) -> object | None:
    """The first item of a sequence element, or ``None`` when it is empty or unreadable."""
    try:
        return sequence[0] if sequence else None  # type: ignore[index]
    except Exception:
        return None


def uid_name(uid: str) -> str:
    """pydicom's name for a UID ('CT Image Storage'), or '' when it has none."""
    from pydicom.uid import UID

    try:
        return UID(uid).name if uid else ""
    except Exception:
        return ""
