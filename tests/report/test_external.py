"""External sites at the internal operating point: the same code as the test split, checked against it in the report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.external import write_site_metrics
from pipeline.report import ExternalError, operating_point, read_predictions
from pipeline.report.external import evaluate_site, read_external
from pipeline.report.evaluation import evaluate_table
from pipeline.report.operating_point import threshold_record
from pipeline.report.predictions import patients_of
from pipeline.errors import PipelineInputError
from pipeline.schema import ArtifactError, ExternalIndexRecord, ExternalMetricsRecord, SiteData, SiteEntry, SiteScoring
from pipeline.config import EvaluateConfig
from pipeline.stages.evaluate import main
from tests.params import config
from tests.report.test_evaluation import _table
from tests.stages.test_evaluate import PARAMS, TRAIN_SUMMARY, _predictions, output_args, write_train_summary

SETTINGS = config(EvaluateConfig, seed=0, aggregate="max", threshold="youden", target_sensitivity=0.9,
                  ci_method="delong", n_boot=200, calibration_bins=5, subgroups=[], calibration="platt",
                  reader_columns=[])


def test_a_site_gets_the_numbers_the_test_split_gets_from_the_same_patients():
    """The site block is the test block's code at the same rule: the test patients as a 'site' match it."""
    table = _table(seed=3)
    ev = evaluate_table(table, SETTINGS)
    test = table.select("test")
    site = patients_of(list(test.patient_id), list(test.label), list(test.score), group="site_x", aggregate="max")
    m = evaluate_site(site, ev.operating_point, SETTINGS, site="site_x")
    t = ev.metrics.test
    for name in ("auc", "auc_ci95", "threshold", "threshold_score", "sensitivity", "specificity", "ppv", "npv",
                 "confusion", "brier", "ece", "calibration_slope", "brier_uncalibrated", "n_patients", "n_positive"):
        assert getattr(m, name) == getattr(t, name), name
    assert m.calibration_fitted_on == "val" and m.threshold_source == "val"


def test_series_are_combined_per_patient_as_for_the_internal_cohort():
    site = patients_of(["a", "a", "b", "c"], [1, 1, 0, 0], [0.2, 0.9, 0.4, 0.1], group="s", aggregate="max")
    assert site.patient_id.tolist() == ["a", "b", "c"] and site.score.tolist() == [0.9, 0.4, 0.1]
    assert site.n_series.tolist() == [2, 1, 1] and set(site.split.tolist()) == {"s"}
    mean = patients_of(["a", "a"], [1, 1], [0.2, 0.9], group="s", aggregate="mean")
    assert mean.score.tolist() == [pytest.approx(0.55)]


def write_site(folder: Path, name: str, *, predictions: Path, settings: EvaluateConfig, digest: str, seed: int = 9,
               sha: str | None = None) -> None:
    """A site's metrics.json as the external stage writes it, for synthetic patients, and the index."""
    rule = operating_point(read_predictions(predictions, aggregate="max"), settings)
    rng = np.random.default_rng(seed)
    label = np.arange(30) % 2
    score = np.clip(0.5 + 0.2 * (label - 0.5) + rng.normal(0, 0.2, 30), 0, 1)
    table = patients_of([f"x{i}" for i in range(30)], label.tolist(), score.tolist(), group=name, aggregate="max")
    record = ExternalMetricsRecord(
        site=name, metrics=evaluate_site(table, rule, settings, site=name),
        operating_point=threshold_record(rule, model_digest=digest,
                                         predictions_sha256=sha or hashlib.sha256(predictions.read_bytes()).hexdigest()),
        model_digest=digest,
        data=SiteData(manifest_sha256="0" * 64, raw_files=30, raw_bytes=1, raw_sha256="1" * 64, ledger={"ingested": 30}),
        scoring=SiteScoring(n_series=31, n_series_scored=30, n_patients=31, n_patients_scored=30,
                            not_scored={"transform failed: x": 1}),
    )
    (folder / name).mkdir(parents=True)
    write_site_metrics(folder / name / "metrics.json", record)
    index = folder / "index.json"
    entries = ExternalIndexRecord.read(index).sites if index.exists() else ()
    entry = SiteEntry(name=name, metrics=f"{name}/metrics.json", predictions=f"{name}/predictions.csv",
                      ledger=f"{name}/ledger.csv")
    index.write_text(json.dumps(ExternalIndexRecord(sites=(*entries, entry)).to_json()))


def _evaluate_settings() -> EvaluateConfig:
    """The evaluate settings of tests/stages/test_evaluate.py's PARAMS."""
    import yaml

    from pipeline.config import EvaluateConfig as Config

    return Config.from_params(yaml.safe_load(PARAMS))


def _run(tmp_path: Path, external: Path | None) -> tuple[int, Path]:
    preds = tmp_path / "predictions.csv"
    if not preds.exists():
        _predictions(preds)
    (tmp_path / "params.yaml").write_text(PARAMS)
    summary = write_train_summary(tmp_path / "train_summary.json")
    out = tmp_path / ("reports" if external is None else "reports-ext")
    argv = [str(preds), *output_args(out), "--params", str(tmp_path / "params.yaml"), "--train-summary", str(summary)]
    return main(argv + ([] if external is None else ["--external", str(external)])), out


def test_no_site_declared_gives_a_section_saying_so_and_changes_no_number(tmp_path):
    index = tmp_path / "external" / "index.json"
    index.parent.mkdir()
    index.write_text(json.dumps({"sites": []}))
    (status_a, plain), (status_b, with_index) = _run(tmp_path, None), _run(tmp_path, index)
    assert status_a == status_b == 0
    for name in ("metrics.json", "threshold.json", "methods.md"):
        assert (plain / name).read_bytes() == (with_index / name).read_bytes(), name
    page = (with_index / "report.html").read_text()
    assert "<h2>External validation</h2>" in page and "No external cohort is declared" in page
    assert "External validation" not in (plain / "report.html").read_text()


def test_each_site_is_shown_beside_the_internal_test_at_the_internal_threshold(tmp_path):
    preds = tmp_path / "predictions.csv"
    _predictions(preds)
    folder = tmp_path / "external"
    for name, seed in (("site_b", 1), ("site_c", 2)):
        write_site(folder, name, predictions=preds, settings=_evaluate_settings(), digest=TRAIN_SUMMARY["model_digest"],
                   seed=seed)
    status, out = _run(tmp_path, folder / "index.json")
    assert status == 0
    page = (out / "report.html").read_text()
    section = page[page.index("<h2>External validation</h2>"):]
    section = section[:section.index("<h2>", 5)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "internal threshold" in section and f"<b>{metrics['test']['threshold']:.3f}</b>" in section
    assert "never re-tuned on external data" in section
    order = [section.index(s) for s in ("Internal test", ">site_b<", ">site_c<")]
    assert order == sorted(order)
    site_c = ExternalMetricsRecord.read(folder / "site_c" / "metrics.json").metrics
    assert f"{site_c.auc:.3f}" in section and f"{100 * site_c.sensitivity:.1f}%" in section
    assert f"{metrics['test']['auc']:.3f}" in section
    assert "30 of 31 series; 1 patient(s) without a scored series, not evaluated" in section
    assert "x1<" not in page  # no identifier of a site's patients


@pytest.mark.parametrize(("change", "said"), [
    ("sha", r"chosen on predictions 000000000000\.\.\., these are"),
    ("digest", r"scored by model efefefefefef\.\.\., these predictions are model cdcdcdcdcdcd\.\.\.'s"),
    ("rule", r"threshold .* \(sensitivity>=0\.5, platt\), this evaluation's .* \(sensitivity>=0\.8, platt\)"),
])
def test_results_of_another_operating_point_are_refused_as_stale(tmp_path, capsys, change, said):
    preds = tmp_path / "predictions.csv"
    _predictions(preds)
    settings = _evaluate_settings()
    if change == "rule":
        from dataclasses import replace

        settings = replace(settings, target_sensitivity=0.5)
    write_site(tmp_path / "external", "site_b", predictions=preds, settings=settings,
               digest="ef" * 32 if change == "digest" else TRAIN_SUMMARY["model_digest"],
               sha="0" * 64 if change == "sha" else None)
    status, out = _run(tmp_path, tmp_path / "external" / "index.json")
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("evaluate failed: external site 'site_b' ")
    assert "must be evaluated at this evaluation's operating point" in err and "dvc repro external" in err
    import re

    assert re.search(said, err), err
    assert not (out / "report.html").exists()


def test_a_missing_site_file_names_it(tmp_path):
    preds = tmp_path / "p.csv"
    _predictions(preds)
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"sites": [{"name": "a", "metrics": "a/metrics.json", "predictions": "a/p.csv",
                                            "ledger": "a/l.csv"}]}))
    rule = operating_point(read_predictions(preds, aggregate="max"), SETTINGS)
    with pytest.raises(ArtifactError, match=r"external site metrics '.*a/metrics\.json' must exist.*dvc repro external"):
        read_external(index, rule, predictions_sha256="0" * 64, model_digest=None)
    assert issubclass(ExternalError, PipelineInputError)
