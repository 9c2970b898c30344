"""PNG, JPEG and TIFF files as 2D images: header check and pixel reading, with Pillow.

Many 2D studies (photographs, screenshots, public sets, radiographs exported for
research) arrive as image files instead of DICOM. Each such file under a manifest path is
one 2D image, accounted for in the ledger like any DICOM file:

* **Size first.** The header's width x height is checked against ``ingest.max_voxels``
  before a pixel is decoded (:func:`read_raster_header`), and Pillow's own
  decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is set to the same limit while a
  file is open, so a 100-byte PNG declaring 10^10 pixels is refused from its header.
* **Modes.** 8- and 16-bit grey (``L``, ``I;16``), 32-bit integer and float grey (TIFF
  ``I``, ``F``), bilevel (``1``, read as 0/255), RGB, palette (``P``: mapped to RGB, or
  to grey when the palette is grey), CMYK and YCbCr (converted to RGB by Pillow). An
  alpha channel (``LA``, ``RGBA``, ``PA``) is composited over black, noted, so that
  transparent pixels, whose colour values are arbitrary, read as background. A colour
  image whose channels are all equal is stored grey (as for DICOM,
  :mod:`pipeline.io.pixels`). Pillow reads 16-bit colour PNG as 8 bits per channel.
* **Orientation.** An EXIF Orientation tag (cameras write it instead of rotating the
  pixels) is applied, so the image is the one a viewer shows; noted.
* **Pages.** A multi-page TIFF gives its first page, noted.
* **Geometry.** An image file has no patient geometry: 1 mm pixels in an axial plane
  are assumed and noted, as for a DICOM file without PixelSpacing. DPI and pHYs
  resolution fields describe printing, not anatomy, and are ignored.
* **Modality.** :data:`RASTER_MODALITY` (``OT``, DICOM's "other"): the file does not say.
* **Nothing but pixels.** PNG text chunks, EXIF, XMP and ICC profiles can hold names
  and are never copied anywhere; only the orientation tag is read.

This module imports numpy and Pillow only (no torch).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

RASTER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
"""File name endings read as image files (matched ignoring case)."""

RASTER_MODALITY = "OT"
"""Modality recorded for an image file: DICOM's "other" (PS3.3 C.7.3.1.1.1), as ingest
records for a DICOM object without Modality. With ``preprocess.intensity: auto`` it maps
each image by its own percentiles; set ``fixed_range`` for 8-bit files whose brightness
is diagnostic."""

FORMATS: dict[str, str] = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}
"""Pillow format name -> ``source_format`` in the index. MPO is a JPEG with extra pictures
(some cameras), which Pillow's JPEG decoder opens as such; its first picture is the image."""

DECODERS: tuple[str, ...] = ("PNG", "JPEG", "TIFF")
"""The only Pillow decoders ingest uses: a file named ``.png`` is never handed to another."""

GREY_MODES = frozenset({"1", "L", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
COLOUR_MODES = frozenset({"RGB", "CMYK", "YCbCr"})
ALPHA_MODES = frozenset({"LA", "RGBA", "PA"})
PALETTE_MODES = frozenset({"P"})
READ_MODES = GREY_MODES | COLOUR_MODES | ALPHA_MODES | PALETTE_MODES

ORIENTATION_TAG = 0x0112
"""EXIF Orientation (TIFF tag 274): 1 is upright; 2-8 mirror and/or rotate."""

ASSUMED_GEOMETRY_NOTE = "{format} file has no pixel spacing or orientation: 1 mm pixels and an axial plane assumed"
ALPHA_NOTE = "alpha channel composited over black"
EQUAL_CHANNELS_NOTE = "colour image with three equal channels stored as one grey channel (lossless)"


@dataclass(frozen=True)
class RasterHeader:
    """What the header of a PNG, JPEG or TIFF file says, before any pixel is decoded.

    Attributes:
        format: ``png``, ``jpeg`` or ``tiff`` (:data:`FORMATS`).
        width, height: the stored size in pixels (before an EXIF rotation).
        mode: Pillow's mode (``L``, ``I;16``, ``RGB``, ``RGBA``, ``P``...).
        pages: pictures in the file (a multi-page TIFF has several).
    """

    format: str
    width: int
    height: int
    mode: str
    pages: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@contextmanager
def _pillow_limit(pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb guard at ``pixels`` while a file is open, then restored.

    Pillow refuses more than twice ``Image.MAX_IMAGE_PIXELS`` as it parses the header
    and warns above it; the exact limit is ours (:func:`read_raster_header`). The global
    is set per call because ingest reads each file in one thread of a worker process.
    """
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(1, pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def read_raster_header(full: str, max_voxels: int) -> tuple[RasterHeader | None, str]:
    """The header of an image file, or ``None`` and why it cannot be ingested.

    Only the header is parsed (Pillow opens lazily); a file declaring more than
    ``max_voxels`` pixels is refused here, before anything is allocated.

    Raises:
        OSError, ValueError, SyntaxError...: what Pillow raises for a file it cannot
            identify; the scan turns it into the file's quarantine reason.
    """
    from PIL import Image

    with _pillow_limit(max_voxels):
        try:
            with Image.open(full, formats=DECODERS) as image:
                header = RasterHeader(
                    format=FORMATS[str(image.format)],
                    width=int(image.width),
                    height=int(image.height),
                    mode=str(image.mode),
                    pages=int(getattr(image, "n_frames", 1) or 1),
                )
        except Image.DecompressionBombError:
            return None, _too_large(f"more than {2 * max_voxels:,}", max_voxels)
    if header.width < 1 or header.height < 1:
        return None, f"image size must be positive; got {header.width} x {header.height} pixels"
    if header.pixels > max_voxels:
        return None, _too_large(f"{header.width} x {header.height} = {header.pixels:,}", max_voxels)
    if header.mode not in READ_MODES:
        return None, (
            f"image mode must be one of {sorted(READ_MODES)}; got {header.mode!r}. "
            "Convert the file to 8- or 16-bit grey or RGB"
        )
    return header, ""


def _too_large(declared: str, max_voxels: int) -> str:
    return (
        f"image too large: the header declares {declared} pixels; ingest.max_voxels is {max_voxels:,}. "
        "Raise ingest.max_voxels in params.yaml if the image is real"
    )


def read_raster(full: str, header: RasterHeader) -> tuple[np.ndarray, list[str]]:
    """Decode an image file checked by :func:`read_raster_header`.

    Args:
        full: the file's path.
        header: its header from the scan; a file that now declares more pixels than
            then is refused by Pillow's guard instead of decoded.

    Returns:
        ``(image, notes)``: ``(columns, rows)`` grey or ``(columns, rows, 3)`` RGB, in
        the ``(columns, rows)`` order and the dtype ingest gives DICOM planes: int16
        when every value fits, else float32 (exact for 16-bit values). So a PNG and a
        DICOM secondary capture of the same pixels give the same volume, byte for byte,
        and the duplicate audit sees them as one. Notes say what was assumed or converted.
    """
    from PIL import Image

    notes = [ASSUMED_GEOMETRY_NOTE.format(format=header.format.upper())]
    with _pillow_limit(header.pixels), Image.open(full, formats=DECODERS) as image:
        if header.pages > 1:
            notes.append(f"{header.format.upper()} file holds {header.pages} pages: the first is used")
        image.seek(0)
        image = _upright(image, notes)
        pixels = _values(image, notes)
    if pixels.ndim == 3 and all(np.array_equal(pixels[..., 0], pixels[..., c]) for c in (1, 2)):
        pixels = pixels[..., 0]
        notes.append(EQUAL_CHANNELS_NOTE)
    # (rows, columns[, 3]) as decoded -> (columns, rows[, 3]), the order of DICOM planes in a volume.
    return np.ascontiguousarray(_as_planes_are(pixels).swapaxes(0, 1)), notes


def _as_planes_are(pixels: np.ndarray) -> np.ndarray:
    """int16 when every value fits (as :mod:`pipeline.io.pixels` stores DICOM), else float32."""
    if pixels.dtype == np.uint8 or (
        np.issubdtype(pixels.dtype, np.integer) and pixels.size and -32768 <= int(pixels.min()) and int(pixels.max()) <= 32767
    ):
        return pixels.astype(np.int16)
    return pixels.astype(np.float32)


def _upright(image: object, notes: list[str]) -> object:
    """The image as a viewer shows it: its EXIF Orientation applied (a copy), noted."""
    from PIL import ImageOps

    orientation = image.getexif().get(ORIENTATION_TAG, 1)  # type: ignore[attr-defined]
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        notes.append(f"EXIF Orientation {orientation} applied (mirrored and/or rotated as a viewer shows it)")
        return ImageOps.exif_transpose(image)  # type: ignore[arg-type]
    return image


def _values(image: object, notes: list[str]) -> np.ndarray:
    """Pixel values ``(rows, columns)`` grey or ``(rows, columns, 3)`` RGB, native byte order."""
    mode = image.mode  # type: ignore[attr-defined]
    if mode == "1":
        image = image.convert("L")  # type: ignore[attr-defined]
    elif mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info  # type: ignore[attr-defined]
        image = image.convert("RGBA" if transparent else "RGB")  # type: ignore[attr-defined]
    elif mode in ("CMYK", "YCbCr"):
        image = image.convert("RGB")  # type: ignore[attr-defined]
        notes.append(f"{mode} converted to RGB")
    array = np.asarray(image)
    array = array.astype(array.dtype.newbyteorder("="), copy=False)
    if image.mode in ("LA", "RGBA"):  # type: ignore[attr-defined]
        array = _over_black(array, notes)
    return array


def _over_black(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """Colour and alpha ``(rows, columns, k + 1)`` -> the colour composited over black (uint8)."""
    colour, alpha = array[..., :-1], array[..., -1:]
    if (alpha == 255).all():
        out = colour
    else:
        notes.append(ALPHA_NOTE)
        # Rounded to the nearest level, in integers: (c * a + 127) // 255.
        out = ((colour.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out
