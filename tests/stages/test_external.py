"""The external stage on a real tiny cohort: a second demo site through the frozen model at the internal operating point.

The model and its internal predictions come from :mod:`tests.trained_runs` (3D); the
external site is a demo cohort of its own (another seed, another scanner, noisier).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from pipeline.config import EvaluateConfig, load_params
from pipeline.demo.cohort import make_cohort, site_seed
from pipeline.demo.dicom_writer import EXTERNAL_SITE
from pipeline.io.deid import pseudonym
from pipeline.io.ingest import ingest_cohort
from pipeline.predict import main as predict_main
from pipeline.report import operating_point, read_predictions
from pipeline.schema import ExternalIndexRecord, ExternalMetricsRecord
from pipeline.stages.external import main
from tests.io.shipped import ingest_settings
from tests.params import shipped_params
from tests.trained_runs import COHORT, KEY, trained_runs

ROOT = Path(__file__).resolve().parents[2]
EVALUATE = {"n_boot": 200}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def site(module_tmp):
    """A demo site of its own: raw folder and manifest."""
    root = module_tmp("site_c")
    summary = make_cohort(root / "raw", root / "manifest.csv", seed=site_seed(3, "site_c"), **COHORT,
                          sites=(EXTERNAL_SITE,))
    return summary


def write_params(path: Path, sites: list[dict], **evaluate: object) -> Path:
    params = shipped_params()
    params["ingest"]["pseudonym_key"] = KEY
    params["evaluate"].update({**EVALUATE, **evaluate})
    params["external"] = sites
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def validated(runs, site, module_tmp):
    """The stage run once on the 3D model with site_c declared."""
    run = runs[3]
    root = module_tmp("external")
    entry = {"name": "site_c", "raw_dir": str(site.raw_dir), "manifest": str(site.manifest_path)}
    params = write_params(root / "params.yaml", [entry])
    out = root / "reports" / "external"
    status = main([str(run.model), str(run.predictions), str(out), "--params", str(params)])
    assert status == 0
    return run, root, out, params


def test_the_dvc_stage_is_the_command_and_its_outs(tmp_path):
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["external"]
    argv = shlex.split(stage["cmd"])
    assert argv[:3] == ["python", "-m", "pipeline.stages.external"]
    model, predictions, out = argv[3:]
    assert {model, predictions} <= set(stage["deps"]) and stage["outs"] == [out]
    assert {"external", "ingest", "evaluate", "base.seed"} <= set(stage["params"])
    evaluate = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    assert out in evaluate["deps"] and f"--external {out}/index.json" in evaluate["cmd"]


def test_no_site_declared_writes_an_empty_index_without_loading_torch(runs, tmp_path):
    run = runs[3]
    params = write_params(tmp_path / "params.yaml", [])
    out = tmp_path / "out"
    code = (
        "import sys; from pipeline.stages.external import main; "
        f"status = main({[str(run.model), str(run.predictions), str(out), '--params', str(params)]!r}); "
        "sys.exit(status or (3 if 'torch' in sys.modules else 0))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "external: no external cohort declared (params external: [])" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["index.json"]
    assert ExternalIndexRecord.read(out / "index.json").sites == ()


def test_the_site_is_called_at_the_internal_operating_point(validated, site):
    run, root, out, params = validated
    record = ExternalMetricsRecord.read(out / "site_c" / "metrics.json")
    rule = operating_point(read_predictions(run.predictions, aggregate="max"),
                           EvaluateConfig.from_params(load_params(params)))
    used = record.operating_point
    assert (used.threshold, used.threshold_score, used.rule, used.chosen_on) == (
        rule.threshold, rule.threshold_score, rule.rule, "val")
    assert used.predictions_sha256 == hashlib.sha256(run.predictions.read_bytes()).hexdigest()
    m = record.metrics
    assert (m.threshold, m.threshold_source, m.calibration_fitted_on) == (rule.threshold, "val", "val")

    # Every number from the site's own predictions.csv: patients by their highest series.
    patients: dict[str, tuple[int, float]] = {}
    for row in read_csv(out / "site_c" / "predictions.csv"):
        if row["score"]:
            _, best = patients.get(row["patient_id"], (0, -1.0))
            patients[row["patient_id"]] = (int(row["label"]), max(best, float(row["score"])))
    labels = np.array([label for label, _ in patients.values()])
    scores = np.array([score for _, score in patients.values()])
    assert m.n_patients == len(patients) == 12 and m.n_positive == labels.sum() == 6
    assert m.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    called = rule.positive(scores)
    assert (m.confusion.tp, m.confusion.fp) == (int((called & (labels == 1)).sum()), int((called & (labels == 0)).sum()))
    assert m.sensitivity == pytest.approx(called[labels == 1].mean(), abs=1e-6)
    assert m.specificity == pytest.approx((~called[labels == 0]).mean(), abs=1e-6)


def test_the_site_is_scored_as_predict_scores_it_and_keyed_as_ingest_keys_it(validated, site, tmp_path, monkeypatch):
    run, root, out, params = validated
    rows = read_csv(out / "site_c" / "predictions.csv")
    with site.manifest_path.open(newline="") as handle:
        ids = {r["patient_id"] for r in csv.DictReader(handle)}
    assert {r["patient_id"] for r in rows} == {pseudonym(KEY, "patient", i) for i in ids}
    assert not any(i in (out / "site_c" / name).read_text() for name in ("predictions.csv", "ledger.csv",
                                                                         "metrics.json") for i in ids)
    monkeypatch.setenv("PIPELINE_PSEUDONYM_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    assert predict_main([str(run.model), str(site.manifest_path), "--raw-dir", str(site.raw_dir), "--out", "p.csv"]) == 0
    predicted = {(r["patient_id"], r["series_key"]): r["score"] for r in read_csv(tmp_path / "p.csv")}
    assert {(r["patient_id"], r["series_key"]): r["score"] for r in rows} == predicted

    ingest_cohort(site.raw_dir, site.manifest_path, tmp_path / "ingested", pseudonym_key=KEY, **ingest_settings())
    assert (out / "site_c" / "ledger.csv").read_text() == (tmp_path / "ingested" / "ledger.csv").read_text()


def test_the_site_records_what_it_read(validated, site):
    _, _, out, _ = validated
    record = ExternalMetricsRecord.read(out / "site_c" / "metrics.json")
    files = sorted(p for p in site.raw_dir.rglob("*") if p.is_file())
    assert record.data.raw_files == len(files) == sum(record.data.ledger.values())
    assert record.data.raw_bytes == sum(p.stat().st_size for p in files)
    assert record.data.manifest_sha256 == hashlib.sha256(site.manifest_path.read_bytes()).hexdigest()
    assert record.scoring.n_patients == record.scoring.n_patients_scored == 12
    assert record.scoring.n_series == record.scoring.n_series_scored + sum(record.scoring.not_scored.values())
    assert ExternalIndexRecord.read(out / "index.json").sites[0].metrics == "site_c/metrics.json"


def test_the_sites_labels_never_move_the_threshold(validated, site, tmp_path):
    """Never re-tuned: the same model and internal predictions with the site's labels flipped
    give the same operating point (and the mirror-image sensitivity and specificity)."""
    run, root, out, _ = validated
    flipped = tmp_path / "manifest.csv"
    lines = site.manifest_path.read_text().splitlines()
    rows = [lines[0]] + [",".join([c[0], str(1 - int(c[1])), *c[2:]]) for c in (line.split(",") for line in lines[1:])]
    flipped.write_text("\n".join(rows) + "\n")
    params = write_params(tmp_path / "params.yaml",
                          [{"name": "flipped", "raw_dir": str(site.raw_dir), "manifest": str(flipped)}])
    assert main([str(run.model), str(run.predictions), str(tmp_path / "out"), "--params", str(params)]) == 0
    before = ExternalMetricsRecord.read(out / "site_c" / "metrics.json")
    after = ExternalMetricsRecord.read(tmp_path / "out" / "flipped" / "metrics.json")
    assert after.operating_point == before.operating_point
    assert after.metrics.sensitivity == pytest.approx(1 - before.metrics.specificity, abs=1e-6)
    assert after.metrics.auc == pytest.approx(1 - before.metrics.auc, abs=1e-6)


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "site c", "raw_dir": "r", "manifest": "m.csv"}, r"'external\[\]\.name' must be 1 to 64 letters"),
    ({"name": "site_c", "raw_dir": "r"}, r"params keys \['external\[0\]\.manifest'\] must be set"),
    ({"name": "site_c", "raw_dir": "missing/raw", "manifest": "missing.csv"}, r"missing/raw"),
])
def test_bad_declarations_stop_the_stage_in_one_line(runs, tmp_path, capsys, entry, message):
    run = runs[3]
    params = write_params(tmp_path / "params.yaml", [entry])
    assert main([str(run.model), str(run.predictions), str(tmp_path / "out"), "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("external failed: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_a_site_with_one_class_stops_naming_the_site(runs, site, tmp_path, capsys):
    run = runs[3]
    negatives = tmp_path / "manifest.csv"
    lines = site.manifest_path.read_text().splitlines()
    negatives.write_text("\n".join([lines[0]] + [line for line in lines[1:] if line.split(",")[1] == "0"]) + "\n")
    params = write_params(tmp_path / "params.yaml",
                          [{"name": "site_c", "raw_dir": str(site.raw_dir), "manifest": str(negatives)}])
    assert main([str(run.model), str(run.predictions), str(tmp_path / "out"), "--params", str(params)]) == 2
    assert ("external failed: external site 'site_c' must have at least 2 positive and 2 negative scored patients"
            in capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
