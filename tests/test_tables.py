from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.tables import neutralise, read_rows, write_rows


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+SUM(A1:A2)", "'+SUM(A1:A2)"),
        ("-2+3", "'-2+3"),
        ("@HYPERLINK(\"x\")", "'@HYPERLINK(\"x\")"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-3.5", "-3.5"),
        ("+1e-4", "+1e-4"),
        ("-1000", "-1000"),
        ("site_a", "site_a"),
        ("'=already", "'=already"),
        ("", ""),
    ],
)
def test_formula_cells_get_a_leading_apostrophe_and_numbers_do_not(cell: str, written: str) -> None:
    assert neutralise(cell) == written
    assert neutralise(neutralise(cell)) == written


def test_write_rows_neutralises_index_and_prediction_cells(tmp_path: Path) -> None:
    index_row = {"series_key": "ab12", "patient_id": "cd34", "label": 1, "site": "=cmd|' /C calc'!A0", "hu_min": -1024}
    prediction_row = {"series_key": "ab12", "probability": "-0.25", "subgroup": "@SUM(1,2)", "note": "-x"}
    write_rows(tmp_path / "index.csv", [index_row], list(index_row))
    write_rows(tmp_path / "predictions.csv", [prediction_row], list(prediction_row))
    index = read_rows(tmp_path / "index.csv")[0]
    predictions = read_rows(tmp_path / "predictions.csv")[0]
    assert index["site"] == "'=cmd|' /C calc'!A0" and index["hu_min"] == "-1024" and index["label"] == "1"
    assert predictions["probability"] == "-0.25"
    assert predictions["subgroup"] == "'@SUM(1,2)" and predictions["note"] == "'-x"


def test_write_rows_survives_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    name = b"M\xfcller.dcm".decode("utf-8", "surrogateescape")
    write_rows(tmp_path / "t.csv", [{"reason": f"cannot read {name}"}], ["reason"])
    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["reason"] == "cannot read M\\udcfcller.dcm"
