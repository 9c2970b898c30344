"""The localise stage on a trained tiny model: a threshold without a cut on the score scale is a recorded reason."""

from __future__ import annotations

import json

import pytest

from pipeline.stages import localise
from tests.params import PARAMS_FILE
from tests.trained_runs import trained_runs


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    return trained_runs(tmp_path_factory)[3]


def test_no_cut_on_the_score_scale_gives_zero_cases_with_the_reason_not_a_failed_stage(run3d, tmp_path, capsys):
    # A recalibration map with a negative slope (a model ranking val backwards, as a tiny
    # 2-epoch run did on one CPU) leaves no cut on the model's scores: which test cases
    # are true positives is unknown. The stage must say so and write its file.
    reason = "the recalibration map fitted on val is not monotone (its slope is not positive)"
    threshold = tmp_path / "threshold.json"
    threshold.write_text(json.dumps({
        "threshold_score": None, "threshold_score_reason": reason, "threshold": 0.5,
        "threshold_scale": "calibrated probability (platt)", "rule": "youden", "chosen_on": "val",
        "n_patients": 4, "n_positive": 2, "aggregate": "max",
        "calibration": {"method": "platt", "regressor": "logit", "n_fitted": 4, "intercept": 0.1, "slope": -0.5,
                        "knots_x": [], "knots_y": []},
        "model_digest": None, "predictions_sha256": "0" * 64,
    }))
    lesions = tmp_path / "lesions.csv"
    lesions.write_text("patient_id,centre_x_mm,centre_y_mm,centre_z_mm,semi_x_mm,semi_y_mm,semi_z_mm\n")
    out = tmp_path / "localisation.json"
    code = localise.main([str(run3d.model), str(run3d.predictions), str(run3d.index_csv), str(lesions),
                          "--threshold-file", str(threshold), "--out", str(out), "--params", str(PARAMS_FILE)])
    assert code == 0
    found = json.loads(out.read_text())
    assert found["cases"] == 0 and found["true_positives"] == 0 and found["threshold_score"] is None
    assert found["note"].startswith("the validation-chosen operating point has no cut on the model's score scale")
    assert reason in found["note"] and reason in capsys.readouterr().out
