"""What a row can become: series_choice, and files quarantined for unusable geometry."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from pipeline.io.ingest import ingest_cohort
from pipeline.io.manifest import ManifestError
from tests.io.cohorts import KEY, one_series_cohort, rows, set_header
from tests.io.shipped import ingest_settings


def test_series_choice_error_stops_and_names_the_row(cohort: dict) -> None:
    with pytest.raises(ManifestError, match=r"line 2: locator \(path\) must match one series .* got 2 \(planes: \[10, 2\]\)"):
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY,
                      **ingest_settings(series_choice="error"))


def test_unparseable_pixel_spacing_quarantines_unless_assumed(tmp_path: Path) -> None:
    raw, manifest, info = one_series_cohort(tmp_path)
    for path in info["paths"]:
        set_header(path, PixelSpacing=[7.25, 7.25])
        path.write_bytes(path.read_bytes().replace(b"7.25\\7.25", b"abc\\abc\\ "))
    summary = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, **ingest_settings())
    assert summary.n_volumes == 0 and summary.counts["quarantined"] == 4
    reasons = {r["reason"] for r in rows(tmp_path / "out" / "ledger.csv")}
    assert any("unusable geometry: PixelSpacing must be 2 finite number(s)" in r and "assume_missing_geometry" in r for r in reasons)
    assumed = ingest_cohort(raw, manifest, tmp_path / "out2", pseudonym_key=KEY,
                            **ingest_settings(assume_missing_geometry=True))
    assert assumed.n_volumes == 1
    assert "1 mm pixels assumed" in rows(tmp_path / "out2" / "index.csv")[0]["ingest_note"]


def test_an_absent_pixel_spacing_is_still_assumed_with_a_note(tmp_path: Path) -> None:
    raw, manifest, info = one_series_cohort(tmp_path)
    for path in info["paths"]:
        ds = pydicom.dcmread(path)
        del ds.PixelSpacing
        ds.save_as(path)
    assert ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, **ingest_settings()).n_volumes == 1
