"""The folds pooled: out-of-fold AUC as scikit-learn computes it, test by the mean of the fold models."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.config import EvaluateConfig
from pipeline.report.crossval import CrossValidationError, evaluate_pooled, pool_folds
from pipeline.schema.crossval import FoldRecord
from tests.params import config

SETTINGS = config(
    EvaluateConfig, seed=0, aggregate="max", threshold="youden", target_sensitivity=0.9, ci_method="delong",
    n_boot=200, calibration_bins=5, subgroups=[], calibration="platt", reader_columns=[],
)
HEADER = ["patient_id", "series_key", "split", "label", "score", "site"]


def _write_folds(root, k: int = 3, n: int = 36, n_test: int = 12, seed: int = 0, slots: int = 5):
    """k fold folders in use (two series per patient), the rest of ``slots`` not in use."""
    rng = np.random.default_rng(seed)
    label = {f"P{i:02d}": int(i % 4 == 0) for i in range(n)}  # 3 positives in each of 3 folds
    test_label = {f"T{i:02d}": int(i % 2 == 0) for i in range(n_test)}
    truth: dict = {"oof": {}, "test": {}}
    for slot in range(slots):
        folder = root / str(slot)
        folder.mkdir(parents=True)
        in_use = slot < k
        record = FoldRecord(slot=slot, k=k, in_use=in_use, reason=None if in_use else f"split.folds is {k}",
                            samples={"train": 1, "val": 1, "test": 1} if in_use else {}, best_epoch=None,
                            best_val_auc=None)
        (folder / "fold.json").write_text(json.dumps(record.to_json()))
        if not in_use:
            continue
        with (folder / "predictions.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for i, (pid, y) in enumerate(label.items()):
                if i % k == slot:
                    for s in range(2):
                        score = float(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.001, 0.999))
                        writer.writerow([pid, f"{pid}-{s}", "val", y, score, "a" if i % 2 else "b"])
                        truth["oof"][pid] = (y, max(score, truth["oof"].get(pid, (y, -1.0))[1]))
            for pid, y in test_label.items():
                for s in range(2):
                    score = float(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0.001, 0.999))
                    writer.writerow([pid, f"{pid}-{s}", "test", y, score, "a"])
                    truth["test"].setdefault(f"{pid}-{s}", (pid, y, []))[2].append(score)
    return truth


def test_pooled_auc_is_the_out_of_fold_auc_and_test_is_the_folds_mean(tmp_path):
    truth = _write_folds(tmp_path / "folds")
    pooled = pool_folds(tmp_path / "folds", k=3)
    cv, evaluation, curves = evaluate_pooled(pooled, SETTINGS)
    labels, scores = zip(*truth["oof"].values())
    assert cv.k == 3 and cv.oof.n_patients == 36
    assert cv.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    lo, hi = cv.auc_ci95
    assert lo < cv.auc < hi
    # Test: each series the mean of the three fold models' scores, then the patient's max.
    patient: dict = {}
    for pid, y, fold_scores in truth["test"].values():
        assert len(fold_scores) == 3
        patient[pid] = (y, max(np.mean(fold_scores), patient.get(pid, (y, -1.0))[1]))
    labels, scores = zip(*patient.values())
    assert cv.test.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # Per fold: the AUC of the patients that fold held out; mean and SD over them.
    aucs = [f.auc for f in cv.folds]
    assert [f.fold for f in cv.folds] == [0, 1, 2] and sum(f.n_patients for f in cv.folds) == 36
    assert cv.auc_mean == pytest.approx(np.mean(aucs)) and cv.auc_sd == pytest.approx(np.std(aucs, ddof=1))
    for f in cv.folds:
        held = {pid: v for pid, v in truth["oof"].items() if int(pid[1:]) % 3 == f.fold}
        y, s = zip(*held.values())
        assert f.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    # The operating point is chosen on the pooled out-of-fold patients and used on test.
    assert cv.test.threshold == cv.oof.threshold and cv.calibration.method == "platt"
    assert set(curves) == {"fold 0", "fold 1", "fold 2", "pooled"}
    assert "site" in evaluation.subgroups and "fold" not in evaluation.subgroups


def test_pooled_rows_carry_their_fold(tmp_path):
    _write_folds(tmp_path / "folds")
    pooled = pool_folds(tmp_path / "folds", k=3)
    assert pooled.columns[-1] == "site" and "fold" in pooled.columns
    val = [r for r in pooled.rows if r["split"] == "val"]
    test = [r for r in pooled.rows if r["split"] == "test"]
    assert len(val) == 72 and len(test) == 24
    assert {r["fold"] for r in val} == {"0", "1", "2"} and {r["fold"] for r in test} == {""}


def test_folds_of_another_setting_are_refused(tmp_path):
    _write_folds(tmp_path / "folds", k=3)
    with pytest.raises(CrossValidationError, match=r"folds 0 to 3 in use \(split.folds: 4\).*dvc repro"):
        pool_folds(tmp_path / "folds", k=4)


def test_folds_that_scored_different_test_series_are_refused(tmp_path):
    _write_folds(tmp_path / "folds", k=2)
    path = tmp_path / "folds" / "1" / "predictions.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # fold 1 lost a test series
    with pytest.raises(CrossValidationError, match="must score the same test series; 1 were scored by fewer than 2"):
        pool_folds(tmp_path / "folds", k=2)
