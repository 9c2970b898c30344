"""Small cohorts for ingest tests, and readers of what ingest wrote."""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from tests.io.dicom_builders import PHI, PYDICOM_FILES, truncate, write_ct_series, write_localizer

KEY = "test-key-0123456789"


def rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV that ingest wrote."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def all_output_bytes(out: Path) -> bytes:
    """Every byte under ``out``, gzip files decompressed: what a leak check must search."""
    blob = b""
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            blob += gzip.decompress(data) if path.suffix == ".gz" else data
    return blob


def demo_like_cohort(tmp_path: Path) -> dict:
    """Demo-shaped raw folder: random names, a scout beside the axial series, mess."""
    raw = tmp_path / "raw"
    axial = write_ct_series(raw / "f3a9", 10, seed=1)
    write_localizer(raw / "f3a9", 2, seed=2)
    second = write_ct_series(raw / "0b1c", 8, seed=3, duplicate=(1,))
    cut = raw / "0b1c" / "cut_copy.dcm"
    shutil.copyfile(second["paths"][0], cut)
    truncate(cut)
    (raw / "0b1c" / "Thumbs.db").write_bytes(b"\x00junk")
    shutil.copyfile(PYDICOM_FILES / "rtstruct.dcm", raw / "0b1c" / "structures.dcm")
    volume = np.arange(6 * 7 * 5, dtype=np.int16).reshape(6, 7, 5) - 1000
    nib.save(nib.Nifti1Image(volume, np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])), raw / "77e1.nii.gz")
    write_ct_series(raw / "not_listed", 3, seed=9)
    manifest = raw / "manifest.csv"
    manifest.write_text(
        "patient_id,label,path,split,site\n"
        f"{PHI['PatientID']},1,f3a9,train,site_a\n"
        "PX-2,0,0b1c,test,site_b\n"
        "PX-3,1,77e1.nii.gz,val,site_a\n"
    )
    return {"raw": raw, "manifest": manifest, "out": tmp_path / "out", "axial": axial}


def one_series_cohort(tmp_path: Path, n: int = 4) -> tuple[Path, Path, dict]:
    """One CT series of ``n`` slices and a one-row manifest whose subgroup cell looks like a formula."""
    raw = tmp_path / "raw"
    info = write_ct_series(raw / "p", n, seed=4)
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,label,path,site\nA,1,p,=cmd|' /C calc'!A0\n")
    return raw, manifest, info


def set_header(path: Path, **values: object) -> None:
    """Rewrite DICOM attributes of the file at ``path``."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def raw_folder(tmp_path: Path) -> Path:
    """A raw folder with three one-file folders ``p1``, ``p2``, ``p3`` for manifest paths."""
    raw = tmp_path / "raw"
    for name in ("p1", "p2", "p3"):
        (raw / name).mkdir(parents=True)
        (raw / name / "x.dcm").write_bytes(b"")
    return raw


def write_manifest(tmp_path: Path, text: str) -> Path:
    """``text`` as ``manifest.csv`` in ``tmp_path``."""
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path
