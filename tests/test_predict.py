"""``python -m pipeline.predict`` and ``Classifier`` on a real tiny cohort, 2D and 3D.

The runs come from :mod:`tests.trained_runs`: demo DICOM/NIfTI files, ingest, split,
preprocess, one epoch of training. Scores from predict must be the ones the train stage
wrote to predictions.csv for the same patients: same reading, same transforms, same model.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from pipeline.io.deid import pseudonym
from pipeline.predict import main
from tests.trained_runs import KEY, trained_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def trained_scores(run) -> dict[str, float]:
    return {r["patient_id"]: float(r["score"]) for r in read_csv(run.predictions)}


def manifest_folders(run) -> dict[str, str]:
    """Patient pseudonym -> the manifest's path for that patient (folder or NIfTI file)."""
    return {pseudonym(KEY, "patient", r["patient_id"]): r["path"] for r in read_csv(run.manifest)}


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_manifest_scores_match_the_training_predictions(runs, spatial_dims, tmp_path, monkeypatch, capsys):
    run = runs[spatial_dims]
    monkeypatch.setenv("PIPELINE_PSEUDONYM_KEY", KEY)
    monkeypatch.chdir(tmp_path)  # no params.yaml, no reports/metrics.json here
    out = tmp_path / "p.csv"
    status = main([str(run.model), str(run.manifest), "--raw-dir", str(run.raw_dir), "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    rows = {r["patient_id"]: r for r in read_csv(out)}
    expected = trained_scores(run)
    assert len(expected) >= 4
    for patient, score in expected.items():
        assert abs(float(rows[patient]["score"]) - score) < 1e-5, patient
    assert all(r["reason"] == "" and r["positive"] == "" for r in rows.values())
    assert "no threshold" in capsys.readouterr().out


def test_a_single_patient_folder_gets_its_training_score(runs):
    from pipeline import load_classifier

    run = runs[3]
    folders = manifest_folders(run)
    clf = load_classifier(run.model, threshold=0.5)
    patients = [p for p in trained_scores(run) if not folders[p].endswith(".nii.gz")][:2]
    for patient in patients:
        result = clf(str(run.raw_dir / folders[patient]))
        assert result.reason == ""
        assert abs(result.score - trained_scores(run)[patient]) < 1e-5
        assert result.positive == (result.score >= 0.5)
    batch = clf([str(run.raw_dir / folders[p]) for p in patients])
    assert [r.score for r in batch] == pytest.approx([clf(str(run.raw_dir / folders[p])).score for p in patients],
                                                     abs=1e-6)


def test_a_single_dicom_file_feeds_the_2d_model(runs):
    from pipeline import load_classifier

    run = runs[2]
    folders = manifest_folders(run)
    folder = next(run.raw_dir / f for f in folders.values() if not f.endswith(".nii.gz"))
    one_file = sorted(p for p in folder.rglob("*") if p.is_file())[0]
    result = load_classifier(run.model)(one_file)
    assert result.reason == "" and 0.0 <= result.score <= 1.0 and result.positive is None


def test_bad_inputs_are_rows_with_their_reason(runs, tmp_path, monkeypatch, capsys):
    run = runs[3]
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    folders = manifest_folders(run)
    nifti = next(run.raw_dir / f for f in folders.values() if f.endswith(".nii.gz"))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"val": {"threshold": 0.25, "threshold_score": 0.25},
                                   "test": {"threshold": 0.25, "threshold_score": 0.25}}))
    out = tmp_path / "p.csv"
    status = main([str(run.model), "missing/folder", str(empty), str(text), str(nifti), "--out", str(out),
                   "--metrics", str(metrics)])
    assert status == 0, capsys.readouterr().err
    rows = {r["input"]: r for r in read_csv(out)}
    assert "not found" in rows["missing/folder"]["reason"]
    assert rows[str(empty)]["reason"] and rows[str(empty)]["score"] == ""
    assert rows[str(text)]["reason"] and rows[str(text)]["score"] == ""
    scored = rows[str(nifti)]
    assert scored["reason"] == "" and scored["threshold"] == "0.25"
    assert scored["positive"] == str(int(float(scored["score"]) >= 0.25))


def test_a_2d_image_is_refused_by_the_3d_model_with_its_reason(runs):
    from pipeline import load_classifier

    run = runs[3]
    folder = next(run.raw_dir / f for f in manifest_folders(run).values() if not f.endswith(".nii.gz"))
    one_file = sorted(p for p in folder.rglob("*") if p.is_file())[0]
    result = load_classifier(run.model)(one_file)
    assert result.score is None
    assert "must be 3D for this 3D model" in result.reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MANIFEST", "--out", "p.csv"], r"--raw-dir must be given with a manifest input"),
        (["MANIFEST", "--raw-dir", "RAW"], r"the following arguments are required: --out"),
        (["MANIFEST", "--raw-dir", "RAW", "--out", "p.csv", "--batch-size", "0"], r"--batch-size must be"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(runs, tmp_path, monkeypatch, capsys, args, message):
    run = runs[2]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_PSEUDONYM_KEY", KEY)
    argv = [str(run.model)] + [str(run.manifest) if a == "MANIFEST" else str(run.raw_dir) if a == "RAW" else a
                               for a in args]
    with pytest.raises(SystemExit) if "required" in message else _returns() as caught:
        status = main(argv)
    err = capsys.readouterr().err
    assert (caught.value.code if caught else status) == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("predict failed: ")
    assert re.search(message, err), err
    assert not (tmp_path / "p.csv").exists()


class _returns:
    """Context for a call that must return (not exit); ``value`` stays None."""

    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        return False


def test_a_manifest_without_the_key_is_refused(runs, tmp_path, monkeypatch, capsys):
    run = runs[2]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPELINE_PSEUDONYM_KEY", raising=False)
    status = main([str(run.model), str(run.manifest), "--raw-dir", str(run.raw_dir), "--out", "p.csv"])
    assert status == 2
    assert "pseudonym key must be the one ingest used" in capsys.readouterr().err


def test_the_threshold_comes_from_reports_metrics_json_unless_given(runs, tmp_path, monkeypatch, capsys):
    run = runs[2]
    monkeypatch.chdir(tmp_path)
    nifti = str(next(run.raw_dir.rglob("*.nii.gz")))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps({"val": {"threshold": 0.125, "threshold_score": 0.125}}))
    assert main([str(run.model), nifti, "--out", "a.csv"]) == 0
    assert read_csv(tmp_path / "a.csv")[0]["threshold"] == "0.125"
    assert "from reports/metrics.json" in capsys.readouterr().out
    assert main([str(run.model), nifti, "--out", "b.csv", "--threshold", "0.99"]) == 0
    row = read_csv(tmp_path / "b.csv")[0]
    assert row["threshold"] == "0.99" and row["positive"] == "0"
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps({"test": {}}))
    assert main([str(run.model), nifti, "--out", "c.csv"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "must be evaluate's metrics.json with val.threshold_score" in err and "give --threshold" in err


def test_a_recalibrated_threshold_is_applied_on_the_model_score_scale(runs, tmp_path, monkeypatch, capsys):
    """With evaluate.calibration platt (the default) val.threshold is a calibrated probability;
    the model's score must be compared with val.threshold_score, the same cut on its own scale."""
    run = runs[2]
    monkeypatch.chdir(tmp_path)
    nifti = str(next(run.raw_dir.rglob("*.nii.gz")))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"val": {"threshold": 0.999999, "threshold_score": 1e-12,
                                           "threshold_scale": "calibrated probability (platt)",
                                           "calibration_method": "platt"}}))
    assert main([str(run.model), nifti, "--out", "a.csv", "--metrics", str(metrics)]) == 0
    row = read_csv(tmp_path / "a.csv")[0]
    assert row["threshold"] == "1e-12" and float(row["score"]) >= 1e-12 and row["positive"] == "1"
    metrics.write_text(json.dumps({"val": {"threshold": 0.4, "threshold_score": None, "calibration_method": "isotonic"}}))
    assert main([str(run.model), nifti, "--out", "b.csv", "--metrics", str(metrics)]) == 2
    err = capsys.readouterr().err
    assert "val.threshold_score must be a number; got null" in err and "Give --threshold" in err


def test_every_series_of_a_study_folder_gets_a_row(runs, tmp_path, capsys):
    run = runs[3]
    folders = [str(run.raw_dir / f) for f in manifest_folders(run).values() if not f.endswith(".nii.gz")]
    out = tmp_path / "p.csv"
    assert main([str(run.model), *folders, "--out", str(out), "--batch-size", "3"]) == 0
    rows = read_csv(out)
    for folder in folders:
        mine = [r for r in rows if r["input"] == folder]
        scored = [r for r in mine if r["score"]]
        assert len(scored) == 1, folder
        for other in mine:
            if other is not scored[0]:
                assert other["reason"].startswith("series not chosen: the input matched")
                assert f"kept {scored[0]['series_key']} by most_slices" in other["reason"]
    assert len(rows) > len(folders)  # the demo writes localizers beside some volumes
    assert f"predict: {len(folders)}/{len(folders)} series scored" in capsys.readouterr().err


def test_the_model_file_carries_ingest_settings_and_predict_needs_them(runs):
    """Without params, predict reads new studies with the ingest settings the model records
    (from its training data); a model file without them is refused, naming the fix."""
    from pipeline.inference import load_classifier
    from pipeline.errors import PipelineInputError
    from pipeline.predict_inputs import ingest_settings

    recorded = load_classifier(runs[3].model).preprocess["ingest"]
    assert recorded["series_choice"] == "most_slices" and recorded["spacing_policy"] == "reject"
    config = ingest_settings(None, need_key=False, recorded={**recorded, "series_choice": "error"})
    assert config.series_choice == "error" and config.max_voxels == recorded["max_voxels"]
    with pytest.raises(PipelineInputError, match=r"model file must record the ingest settings .*retrain"):
        ingest_settings(None, need_key=False, recorded=None)


def write_threshold_file(path: Path, *, threshold_score: float | None, model_digest: str | None) -> Path:
    """A threshold.json as evaluate writes it (pipeline.schema.ThresholdRecord), Platt-recalibrated."""
    from pipeline.schema import CalibrationMap, ThresholdRecord

    record = ThresholdRecord(
        threshold_score=threshold_score, threshold_score_reason=None if threshold_score is not None else "not monotone",
        threshold=0.999999, threshold_scale="calibrated probability (platt)", rule="youden", chosen_on="val",
        n_patients=4, n_positive=2, aggregate="max",
        calibration=CalibrationMap(method="platt", regressor="logit", n_fitted=4, intercept=0.5, slope=2.0,
                                   knots_x=(), knots_y=()),
        model_digest=model_digest, predictions_sha256="0" * 64,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.to_json()))
    return path


def model_digest(run) -> str:
    from pipeline.modelfile import read_model_file

    return read_model_file(run.model).meta["digest"]


def test_reports_threshold_json_is_used_by_default_and_before_metrics_json(runs, tmp_path, monkeypatch, capsys):
    run = runs[2]
    monkeypatch.chdir(tmp_path)
    nifti = str(next(run.raw_dir.rglob("*.nii.gz")))
    write_threshold_file(tmp_path / "reports" / "threshold.json", threshold_score=1e-12, model_digest=model_digest(run))
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps({"val": {"threshold": 0.5, "threshold_score": 0.75}}))
    assert main([str(run.model), nifti, "--out", "a.csv"]) == 0
    row = read_csv(tmp_path / "a.csv")[0]
    assert row["threshold"] == "1e-12" and row["positive"] == "1"  # threshold_score, not the calibrated 0.999999
    captured = capsys.readouterr()
    assert "from reports/threshold.json" in captured.out and "WARNING" not in captured.err
    # --metrics named on the command line wins over the default threshold.json
    assert main([str(run.model), nifti, "--out", "b.csv", "--metrics", "reports/metrics.json"]) == 0
    assert read_csv(tmp_path / "b.csv")[0]["threshold"] == "0.75"


def test_another_models_threshold_file_is_refused_when_named_and_skipped_when_default(runs, tmp_path, monkeypatch,
                                                                                    capsys):
    from pipeline import load_classifier
    from pipeline.inference import ThresholdFileError

    run = runs[2]
    monkeypatch.chdir(tmp_path)
    nifti = str(next(run.raw_dir.rglob("*.nii.gz")))
    other = "ab" * 32
    path = write_threshold_file(tmp_path / "reports" / "threshold.json", threshold_score=0.5, model_digest=other)
    mine = model_digest(run)
    assert main([str(run.model), nifti, "--out", "a.csv", "--threshold-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("predict failed: threshold file ")
    assert f"chosen on the scores of model {other[:12]}..., and this model file is {mine[:12]}..." in err
    assert not (tmp_path / "a.csv").exists()

    assert main([str(run.model), nifti, "--out", "b.csv"]) == 0  # the working folder's file, not the user's choice
    captured = capsys.readouterr()
    assert "predict: WARNING: reports/threshold.json not used: threshold file" in captured.err
    assert "no threshold (reports/threshold.json is not this model's" in captured.out
    row = read_csv(tmp_path / "b.csv")[0]
    assert row["threshold"] == "" and row["positive"] == "" and row["score"] != ""

    with pytest.raises(ThresholdFileError, match=r"must come from the model it is applied to"):
        load_classifier(run.model, threshold_file=path)
    assert load_classifier(run.model, threshold_file=path, threshold=0.3).threshold == 0.3


def test_a_threshold_file_naming_no_model_is_used_with_a_warning(runs, tmp_path, monkeypatch, capsys):
    from pipeline import load_classifier

    run = runs[2]
    monkeypatch.chdir(tmp_path)
    nifti = str(next(run.raw_dir.rglob("*.nii.gz")))
    path = write_threshold_file(tmp_path / "t.json", threshold_score=0.25, model_digest=None)
    assert main([str(run.model), nifti, "--out", "a.csv", "--threshold-file", str(path)]) == 0
    assert read_csv(tmp_path / "a.csv")[0]["threshold"] == "0.25"
    assert "names no model (evaluate ran without --train-summary)" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="names no model"):
        assert load_classifier(run.model, threshold_file=path).threshold == 0.25
    write_threshold_file(path, threshold_score=None, model_digest=model_digest(run))
    assert main([str(run.model), nifti, "--out", "b.csv", "--threshold-file", str(path)]) == 2
    assert "threshold_score is null (not monotone). Give --threshold" in capsys.readouterr().err
