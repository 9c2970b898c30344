"""PNG, JPEG and TIFF files: header checks before decoding, every mode to grey or RGB, orientation."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.io.raster import (
    ALPHA_NOTE,
    EQUAL_CHANNELS_NOTE,
    ORIENTATION_TAG,
    read_raster,
    read_raster_header,
)
from pipeline.io.scan import read_header
from tests.io.shipped import MAX_VOXELS


def _save(path: Path, array: np.ndarray, mode: str | None = None, **options: object) -> Path:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path, **options)
    return path


def _read(path: Path) -> tuple[np.ndarray, list[str]]:
    header, problem = read_raster_header(str(path), MAX_VOXELS)
    assert header is not None, problem
    return read_raster(str(path), header)


def _gradient(rows: int = 6, cols: int = 9) -> np.ndarray:
    return (np.arange(rows * cols).reshape(rows, cols) * 4).astype(np.uint8)


def test_grey_png_is_read_as_columns_by_rows_with_the_assumed_geometry_noted(tmp_path: Path) -> None:
    grey = _gradient()
    values, notes = _read(_save(tmp_path / "a.png", grey))
    assert values.shape == (9, 6) and values.dtype == np.int16  # as DICOM planes are stored
    np.testing.assert_array_equal(values, grey.T)
    assert notes == ["PNG file has no pixel spacing or orientation: 1 mm pixels and an axial plane assumed"]


def test_sixteen_bit_grey_keeps_its_values(tmp_path: Path) -> None:
    grey = (np.arange(30).reshape(5, 6) * 2000).astype(np.uint16)  # up to 58,000: beyond int16
    path = tmp_path / "a.png"
    Image.fromarray(grey).save(path)
    header, _ = read_raster_header(str(path), MAX_VOXELS)
    assert header is not None and header.mode.startswith("I;16")
    values, _ = read_raster(str(path), header)
    assert values.dtype == np.float32  # exact for every 16-bit value
    np.testing.assert_array_equal(values, grey.T)


def test_rgb_keeps_three_channels_and_equal_channels_become_grey(tmp_path: Path) -> None:
    rgb = np.stack([_gradient(), 255 - _gradient(), np.full((6, 9), 7, np.uint8)], axis=-1)
    values, notes = _read(_save(tmp_path / "c.png", rgb))
    assert values.shape == (9, 6, 3)
    np.testing.assert_array_equal(values, rgb.transpose(1, 0, 2))
    assert EQUAL_CHANNELS_NOTE not in notes
    grey_as_rgb = np.repeat(_gradient()[..., None], 3, axis=-1)
    values, notes = _read(_save(tmp_path / "g.png", grey_as_rgb))
    assert values.shape == (9, 6)
    np.testing.assert_array_equal(values, _gradient().T)
    assert EQUAL_CHANNELS_NOTE in notes


def test_alpha_is_composited_over_black_and_an_opaque_alpha_changes_nothing(tmp_path: Path) -> None:
    rgb = np.stack([_gradient(), 255 - _gradient(), np.full((6, 9), 200, np.uint8)], axis=-1)
    alpha = np.full((6, 9, 1), 255, np.uint8)
    alpha[0, 0] = 0
    alpha[1, 1] = 128
    values, notes = _read(_save(tmp_path / "a.png", np.concatenate([rgb, alpha], axis=-1)))
    assert ALPHA_NOTE in notes and values.shape == (9, 6, 3)
    assert values[0, 0].tolist() == [0, 0, 0]
    assert values[1, 1].tolist() == [round(int(v) * 128 / 255) for v in rgb[1, 1]]
    np.testing.assert_array_equal(values[5, 3], rgb[3, 5])
    opaque, notes = _read(_save(tmp_path / "o.png", np.concatenate([rgb, np.full((6, 9, 1), 255, np.uint8)], axis=-1)))
    assert ALPHA_NOTE not in notes
    np.testing.assert_array_equal(opaque, rgb.transpose(1, 0, 2))
    grey_alpha = np.stack([_gradient(), np.full((6, 9), 0, np.uint8)], axis=-1)
    values, notes = _read(_save(tmp_path / "la.png", grey_alpha))
    assert values.shape == (9, 6) and not values.any() and ALPHA_NOTE in notes


def test_palette_bilevel_and_cmyk_images_are_converted(tmp_path: Path) -> None:
    rgb = np.stack([_gradient(), 255 - _gradient(), np.full((6, 9), 9, np.uint8)], axis=-1)
    palette = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    palette.save(tmp_path / "p.png")
    values, _ = _read(tmp_path / "p.png")
    np.testing.assert_array_equal(values, np.asarray(palette.convert("RGB")).transpose(1, 0, 2))

    bits = _gradient() > 100
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    values, _ = _read(tmp_path / "b.png")
    np.testing.assert_array_equal(values, (bits.T * 255).astype(np.uint8))

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "k.tiff")
    values, notes = _read(tmp_path / "k.tiff")
    assert "CMYK converted to RGB" in notes and values.shape == (9, 6, 3)
    np.testing.assert_array_equal(values, np.asarray(Image.open(tmp_path / "k.tiff").convert("RGB")).transpose(1, 0, 2))


def test_exif_orientation_is_applied_so_the_image_is_the_one_a_viewer_shows(tmp_path: Path) -> None:
    grey = _gradient()
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6  # the camera was turned: display rotated 90 degrees clockwise
    path = tmp_path / "turned.png"
    Image.fromarray(grey).save(path, exif=exif)
    values, notes = _read(path)
    shown = np.rot90(grey, k=-1)  # what a viewer shows: (9 rows, 6 columns)
    np.testing.assert_array_equal(values, shown.T)
    assert any(note.startswith("EXIF Orientation 6 applied") for note in notes)

    jpeg = tmp_path / "turned.jpg"
    Image.fromarray(np.zeros((6, 9, 3), np.uint8) + 90).save(jpeg, exif=exif, quality=95)
    values, notes = _read(jpeg)
    assert values.shape[:2] == (6, 9)  # (columns, rows) of the upright 9 x 6 picture
    assert any(note.startswith("EXIF Orientation 6") for note in notes)


def test_a_multi_page_tiff_gives_its_first_page_noted(tmp_path: Path) -> None:
    pages = [Image.fromarray(_gradient()), Image.fromarray(255 - _gradient())]
    pages[0].save(tmp_path / "s.tif", save_all=True, append_images=pages[1:])
    values, notes = _read(tmp_path / "s.tif")
    np.testing.assert_array_equal(values, _gradient().T)
    assert "TIFF file holds 2 pages: the first is used" in notes


def _png_declaring(width: int, height: int) -> bytes:
    """A 1 x 1 grey PNG whose IHDR claims ``width`` x ``height`` (CRC fixed, data left tiny)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")


def test_a_declared_size_above_max_voxels_is_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(50_000, 50_000))  # 2.5e9 pixels in a 70-byte file
    header, problem = read_raster_header(str(path), MAX_VOXELS)
    assert header is None
    assert problem.startswith("image too large: the header declares 50000 x 50000 = 2,500,000,000 pixels; "
                              f"ingest.max_voxels is {MAX_VOXELS:,}")
    # Past twice the limit Pillow's own guard refuses before its header object exists.
    header, problem = read_raster_header(str(path), 1000)
    assert header is None and problem.startswith("image too large: the header declares more than 2,000 pixels")
    record = read_header(path, "bomb.png", max_voxels=1000)
    assert (record.kind, record.reason) == ("quarantined", problem)


def test_a_file_that_is_not_a_png_jpeg_or_tiff_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_bytes(b"Patient: Jane Doe\n")
    Image.fromarray(_gradient()).save(tmp_path / "bitmap.png", format="BMP")
    for name in ("notes.png", "bitmap.png"):
        record = read_header(tmp_path / name, name, max_voxels=MAX_VOXELS)
        assert record.kind == "quarantined"
        assert record.reason == "unreadable image file: UnidentifiedImageError: cannot identify image file '<file>'"
    good = read_header(_save(tmp_path / "ok.JPEG", _gradient()), "ok.JPEG", max_voxels=MAX_VOXELS)
    assert good.kind == "raster" and good.raster is not None
    assert (good.raster.format, good.raster.width, good.raster.height, good.raster.mode) == ("jpeg", 9, 6, "L")


def test_an_unsupported_mode_is_refused_naming_the_modes_read(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).convert("LAB").save(tmp_path / "lab.tif")
    header, problem = read_raster_header(str(tmp_path / "lab.tif"), MAX_VOXELS)
    assert header is None
    assert problem.startswith("image mode must be one of [") and "'RGB'" in problem and problem.endswith(
        "got 'LAB'. Convert the file to 8- or 16-bit grey or RGB")
