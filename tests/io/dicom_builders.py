"""Build test series from the real DICOM headers shipped in the pydicom wheel.

Nothing here is committed data: each helper copies a real file's header from the
installed wheel into ``tmp_path`` and changes only geometry, UIDs and pixel values, so
tests exercise the same encodings a scanner writes.
"""

from __future__ import annotations

import copy
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PHI = {
    "PatientName": "Testperson^Gudrun",
    "PatientID": "MRN-4417023",
    "PatientBirthDate": "19510723",
    "AccessionNumber": "ACC-99120455",
    "InstitutionName": "Hospital of Saint Example",
}
"""Identifier values planted in built series; none may appear under OUT_DIR."""


def site_packages() -> Path:
    return Path(pydicom.__file__).parent.parent


def template(name: str = "CT_small.dcm") -> pydicom.Dataset:
    """A real header from the pydicom wheel, with its pixels decoded once."""
    return pydicom.dcmread(PYDICOM_FILES / name)


def write_ct_series(
    folder: Path,
    n_slices: int = 12,
    *,
    spacing: float = 2.5,
    z0: float = -40.0,
    seed: int = 0,
    missing: tuple[int, ...] = (),
    duplicate: tuple[int, ...] = (),
    intercepts: tuple[float, ...] | None = None,
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    series_uid: str | None = None,
    phi: bool = True,
    image_type: str = "ORIGINAL\\PRIMARY\\AXIAL",
) -> dict:
    """Write an axial CT series from CT_small's header under random file names.

    InstanceNumbers are shuffled too, so neither names nor instance numbers give the
    order: only ImagePositionPatient does. Each slice's stored pixels encode its slice
    index (``stored[0, 0] == 1000 + index``) so tests can read the order back.

    Returns:
        ``{"series_uid", "paths" (list in true slice order, None for missing),
        "hu" (list of (rows, cols) HU arrays in true order), "positions"}``.
    """
    rng = np.random.default_rng(seed)
    names = random.Random(seed)
    base = template()
    series_uid = series_uid or generate_uid()
    row = np.asarray(orientation[:3])
    col = np.asarray(orientation[3:])
    normal = np.cross(row, col)
    origin = np.asarray([-158.1, -179.0, 0.0])
    instance_numbers = list(range(1, n_slices + 1))
    names.shuffle(instance_numbers)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = []
    hu: list[np.ndarray] = []
    positions = []
    for index in range(n_slices):
        position = origin + normal * (z0 + spacing * index)
        positions.append(position)
        stored = rng.integers(0, 2500, size=(base.Rows, base.Columns), dtype=np.int16)
        stored[0, 0] = 1000 + index
        intercept = intercepts[index] if intercepts else -1024.0
        hu.append(stored.astype(np.float64) * 1.0 + intercept)
        if index in missing:
            paths.append(None)
            continue
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = instance_numbers[index]
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.SliceThickness = spacing
        ds.RescaleIntercept = intercept
        ds.ImageType = image_type.split("\\")
        if phi:
            for keyword, value in PHI.items():
                setattr(ds, keyword, value)
        ds.PixelData = stored.tobytes()
        path = folder / f"{names.getrandbits(48):012x}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        if index in duplicate:
            shutil.copyfile(path, folder / f"{names.getrandbits(48):012x}.dcm")
    return {"series_uid": series_uid, "paths": paths, "hu": hu, "positions": positions}


def write_localizer(folder: Path, n_slices: int = 2, *, seed: int = 1) -> list[Path]:
    """A sagittal localizer series (own SeriesInstanceUID) beside an axial series."""
    info = write_ct_series(
        folder,
        n_slices,
        spacing=10.0,
        seed=seed,
        orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
        image_type="ORIGINAL\\PRIMARY\\LOCALIZER",
    )
    return [p for p in info["paths"] if p is not None]


def truncate(path: Path, keep_fraction: float = 0.6) -> None:
    """Cut a file as an interrupted transfer would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


def hu_of(path: Path) -> np.ndarray:
    """pydicom's own HU: ``pixel_array * slope + intercept``."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def voxel_world_lps(affine_ras: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Patient (LPS) coordinates of every voxel centre, ``shape + (3,)``."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1).astype(np.float64)
    if len(shape) == 2:
        grid = np.concatenate([grid, np.zeros(shape + (1,))], axis=-1)
    world = grid @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    return world * np.array([-1.0, -1.0, 1.0])


def expected_from_slices(world_lps: np.ndarray, files: list[Path], tolerance: float = 0.05) -> np.ndarray:
    """HU at each world point, looked up independently in the source slices' geometry.

    For each point, find the slice whose plane contains it and the pixel
    (row, column) under it using that slice's own IPP/IOP/PixelSpacing. Raises when a
    point lies on no slice: the written geometry would then be wrong.
    """
    out = np.full(world_lps.shape[:-1], np.nan)
    for path in files:
        ds = pydicom.dcmread(path)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
        iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
        row_cos, col_cos = iop[:3], iop[3:]
        normal = np.cross(row_cos, col_cos)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        delta = world_lps - ipp
        on_plane = np.abs(delta @ normal) < tolerance
        column = np.rint(delta @ row_cos / dc).astype(int)
        row = np.rint(delta @ col_cos / dr).astype(int)
        inside = on_plane & (column >= 0) & (column < ds.Columns) & (row >= 0) & (row < ds.Rows)
        values = hu_of(path)
        out[inside] = values[row[inside], column[inside]]
    if np.isnan(out).any():
        raise AssertionError(f"{int(np.isnan(out).sum())} voxels lie on no source slice")
    return out


def image_headers(folder: Path) -> dict:
    """The DICOM image headers under ``folder`` (relative path -> header), as the scan reads them."""
    from pipeline.io.scan import read_header
    from pipeline.io.tree import walk
    from tests.io.shipped import MAX_VOXELS

    headers = {}
    for rel in walk(folder):
        record = read_header(folder / rel, rel, max_voxels=MAX_VOXELS)
        if record.kind == "dicom":
            headers[rel] = record.dicom
    return headers
