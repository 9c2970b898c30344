"""The methods paragraph follows the run: change a param or an input and the text changes."""

from __future__ import annotations

import json

import pytest

from pipeline.report.methods import ledger_counts
from pipeline.report.provenance import ProvenanceError
from pipeline.stages.evaluate import main
from tests.params import params_text
from tests.stages.test_evaluate import EVALUATE, PARAMS, TRAIN_SUMMARY, _predictions, output_args


def _run(tmp_path, name: str, params: str, *, ledger: bool = True) -> str:
    preds = tmp_path / "predictions.csv"
    if not preds.exists():
        _predictions(preds)
        (tmp_path / "ledger.csv").write_text(
            "path,status,reason\n" + "a.dcm,ingested,\n" * 7 + "b.txt,not_image,not DICOM or NIfTI\n"
            "c.dcm,quarantined,no pixel data\n"
        )
        (tmp_path / "train_summary.json").write_text(json.dumps({**TRAIN_SUMMARY, "best_epoch": 4}))
    (tmp_path / f"{name}.yaml").write_text(params)
    out = tmp_path / name
    args = [str(preds), *output_args(out), "--params", str(tmp_path / f"{name}.yaml"),
            "--train-summary", str(tmp_path / "train_summary.json")]
    assert main(args + (["--ledger", str(tmp_path / "ledger.csv")] if ledger else [])) == 0
    return (out / "methods.md").read_text()


def _params(*, ci_method: str, test_fraction: float, pixdim: list[float]) -> str:
    return params_text(
        base={"seed": 3}, evaluate={**EVALUATE, "ci_method": ci_method},
        split={"val_fraction": 0.2, "test_fraction": test_fraction},
        preprocess={"spatial_dims": 3, "roi": [64, 64, 32], "pixdim": pixdim, "hu_window": [-1000, 400]},
    )


def test_changing_a_param_changes_the_paragraph(tmp_path):
    before = _run(tmp_path, "before", _params(ci_method="bootstrap", test_fraction=0.3, pixdim=[5.0, 5.0, 6.25]))
    after = _run(tmp_path, "after", _params(ci_method="delong", test_fraction=0.25, pixdim=[2.0, 2.0, 3.0]))
    assert "test fraction 0.3," in before and "test fraction 0.25," in after
    assert "resampled to [5.0, 5.0, 6.25] mm" in before and "resampled to [2.0, 2.0, 3.0] mm" in after
    assert "stratified percentile bootstrap (200 resamples, seed 3)" in before and "DeLong variance" in after
    assert "Ingest examined 9 files under the raw folder (7 ingested, 1 not_image, 1 quarantined" in before
    assert "The evaluation comprised 24 val patients (12 positive" in before
    assert "resnet18 (3D) initialised from imagenet weights" in before and "up to 12 epochs" in before
    assert "| 12e | Calibration / model updating | Calibration section (platt) |" in before
    page = (tmp_path / "before" / "report.html").read_text()
    assert "Methods paragraph (generated from this run)" in page and "Ingest examined 9 files" in page


def test_a_ledger_not_given_is_stated_and_a_missing_one_stops(tmp_path):
    text = _run(tmp_path, "noledger", PARAMS, ledger=False)
    assert "The ingest ledger was not given to the evaluate stage" in text
    assert "| 11 | Missing data / exclusions | for the authors |" in text
    with pytest.raises(ProvenanceError, match="must exist when --ledger is given; it was not found. Run ingest"):
        ledger_counts(tmp_path / "absent.csv")
