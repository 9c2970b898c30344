"""The report's figures: valid PNGs of the stated size and resolution, the same bytes on every run."""

from __future__ import annotations

import io
import struct
import zlib

import matplotlib.image
import pytest

from pipeline.report.evaluation import evaluate_table
from pipeline.report.figures import calibration_png, pr_png, roc_png
from tests.report.test_html import _config, _table

DPI = 110
# Figure sizes in inches, as drawn; the tight bounding box trims the margins a little.
SIZES = {"roc": (5.2, 5.0), "pr": (5.2, 5.0), "calibration": (5.2, 6.0)}
DRAW = {"roc": roc_png, "pr": pr_png, "calibration": calibration_png}


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, data)`` of every chunk, each CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(png):
        (length,) = struct.unpack(">I", png[i : i + 4])
        kind, data = png[i + 4 : i + 8], png[i + 8 : i + 8 + length]
        (crc,) = struct.unpack(">I", png[i + 8 + length : i + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        out.append((kind, data))
        i += 12 + length
    return out


@pytest.fixture(scope="module")
def evaluation():
    return evaluate_table(_table(), _config(reader_columns=("reader_1",)))


@pytest.mark.parametrize("name", sorted(DRAW))
def test_each_figure_is_a_valid_png_of_its_size_and_resolution(evaluation, name):
    png = DRAW[name](evaluation.curves, evaluation.metrics)
    chunks = _chunks(png)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height = struct.unpack(">II", chunks[0][1][:8])
    full_w, full_h = (round(inches * DPI) for inches in SIZES[name])
    assert 0.8 * full_w <= width <= full_w and 0.8 * full_h <= height <= full_h, (width, height)
    (phys,) = [data for kind, data in chunks if kind == b"pHYs"]
    per_metre_x, per_metre_y, unit = struct.unpack(">IIB", phys)
    assert unit == 1 and per_metre_x == per_metre_y == round(DPI / 0.0254)
    # No text chunk (matplotlib's Software line): the bytes depend on the data only.
    assert not {b"tEXt", b"iTXt", b"zTXt"} & set(kinds)
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert pixels.shape == (height, width, 4) and pixels[..., :3].std() > 0.05  # decodes, and is not blank


def test_the_same_evaluation_draws_the_same_bytes(evaluation):
    for draw in DRAW.values():
        assert draw(evaluation.curves, evaluation.metrics) == draw(evaluation.curves, evaluation.metrics)


def test_readers_and_recalibration_change_what_is_drawn(evaluation):
    no_readers = evaluate_table(_table(), _config())
    # Same scores, same threshold: only the readers' points differ.
    assert no_readers.metrics.test.threshold == evaluation.metrics.test.threshold
    assert roc_png(no_readers.curves, no_readers.metrics) != roc_png(evaluation.curves, evaluation.metrics)
    assert pr_png(no_readers.curves, no_readers.metrics) == pr_png(evaluation.curves, evaluation.metrics)
    # Platt adds the curve after recalibration to the one before.
    plain = evaluate_table(_table(), _config(calibration="none"))
    assert calibration_png(plain.curves, plain.metrics) != calibration_png(evaluation.curves, evaluation.metrics)
