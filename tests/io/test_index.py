"""The index: one row per volume, free text redacted, formulas neutralised."""

from __future__ import annotations

from pathlib import Path

from pipeline.io.build_volume import BuildResult
from pipeline.io.index import index_row, patient_key
from pipeline.io.ingest import ingest_cohort
from pipeline.io.manifest import Manifest
from pipeline.io.manifest_rows import ManifestRow
from pipeline.io.series_choice import Option
from tests.io.cohorts import KEY, one_series_cohort, rows
from tests.io.shipped import ingest_settings


def test_index_cells_that_look_like_formulas_are_neutralised(tmp_path: Path) -> None:
    raw, manifest, _ = one_series_cohort(tmp_path)
    ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, **ingest_settings())
    assert rows(tmp_path / "out" / "index.csv")[0]["site"] == "'=cmd|' /C calc'!A0"


def _nifti_row(minimum: float) -> dict[str, str]:
    manifest = Manifest(Path("m.csv"), (), has_split=True, extra_columns=("site",), dropped_columns=(), errors=())
    row = ManifestRow(7, "MRN-1", 1, "val", "a.nii.gz", None, None, {"site": "north"})
    option = Option("k1", 5, ["a.nii.gz"], nifti="a.nii.gz")
    built = BuildResult("k1", shape=(6, 7, 5), spacing=(1.0, 1.0, 2.5), minimum=minimum)
    return index_row(manifest, row, option, built, KEY, "volumes/k1.nii")


def test_a_nifti_volume_is_ct_only_when_it_holds_air_and_the_guess_is_noted() -> None:
    ct, other = _nifti_row(-1000.0), _nifti_row(0.0)
    assert ct["modality"] == "CT" and ct["ingest_note"] == "NIfTI has no modality; CT inferred from values below -500"
    assert other["modality"] == "OT" and other["ingest_note"] == ""
    assert ct["patient_id"] == patient_key(KEY, "MRN-1") != "MRN-1"
    assert (ct["_line"], ct["split"], ct["image_path"], ct["site"]) == ("7", "val", "volumes/k1.nii", "north")
    assert (ct["shape"], ct["spacing"], ct["source_format"], ct["transfer_syntax"]) == ("6x7x5", "1x1x2.5", "nifti", "")
