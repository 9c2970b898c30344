"""Building one volume: a file that fails is named in the result and quarantined, never raised."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.io.build_volume import BuildJob, build_volume
from pipeline.io.deid import path_token
from pipeline.io.ingest import ingest_cohort
from tests.io.cohorts import KEY, one_series_cohort, rows, set_header
from tests.io.dicom_builders import site_packages
from tests.io.shipped import ingest_settings


def test_a_rescale_overflow_quarantines_the_file_that_declares_it(tmp_path: Path) -> None:
    raw, manifest, info = one_series_cohort(tmp_path)
    bad = info["paths"][2]
    set_header(bad, RescaleSlope=1e20)
    ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, **ingest_settings())
    ledger = {r["path"]: r for r in rows(tmp_path / "out" / "ledger.csv")}
    row = ledger[path_token(KEY, bad.relative_to(raw).as_posix())]
    assert row["status"] == "quarantined" and "Rescale Slope 1e+20" in row["reason"]
    others = [ledger[path_token(KEY, p.relative_to(raw).as_posix())] for p in info["paths"] if p != bad]
    assert all(r["status"] == "skipped" and f"series not built: {path_token(KEY, 'p/' + bad.name)}:" in r["reason"] for r in others)
    assert "the volume" not in " ".join(r["reason"] for r in others)


def test_a_nifti_that_cannot_be_a_volume_is_reported_with_its_shape_not_raised(tmp_path: Path) -> None:
    shutil.copyfile(site_packages() / "nibabel" / "tests" / "data" / "functional.nii", tmp_path / "f.nii")
    result = build_volume(BuildJob("k1", str(tmp_path), str(tmp_path / "out" / "k1.nii"), nifti="f.nii"))
    assert result.failed_path == "f.nii" and result.series_key == "k1"
    assert result.failure.startswith("image must be 2D or 3D; got shape 17x21x3x20")
    assert not (tmp_path / "out").exists()
