"""The real ``dvc repro`` on a tiny demo cohort, in a temporary copy of the repository."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    # A 288 mm field of view at 6 mm holds no 30-45 mm lesion (the demo's default) away
    # from other tissue: the tiny cohort keeps the hard setting's small lesions.
    "demo": {"n_patients": 20, "matrix": 48, "n_slices": 12, "pixel_spacing_mm": 6.0, "slice_thickness_mm": 10.0,
             "lesion_diameter_mm": [6, 15], "lung_lesion_fraction": 0.6},
    "preprocess": {"roi": [24, 24, 12], "pixdim": [12.0, 12.0, 10.0]},
    "train": {"max_epochs": 2, "batch_size": 4},
    "evaluate": {"n_boot": 200},
}


def _patient_max_scores(path: Path) -> dict[str, dict[str, tuple[int, float]]]:
    by_part: dict[str, dict[str, tuple[int, float]]] = {"val": {}, "test": {}}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            label, score = by_part[row["split"]].get(row["patient_id"], (int(row["label"]), float("-inf")))
            by_part[row["split"]][row["patient_id"]] = (label, max(score, float(row["score"])))
    return by_part


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PIPELINE_PSEUDONYM_KEY", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def repo(module_tmp) -> Path:
    # The repository and the second site side by side in one folder, removed with it.
    repo = module_tmp("e2e") / "repo"
    shutil.copytree(ROOT / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    # A second hospital's cohort for external validation, outside the repository as another
    # site's data would be: the demo's own patients and a noisier scanner of its own.
    site = repo.parent / "site_c"
    params["external"] = [{"name": "site_c", "raw_dir": str(site / "raw"), "manifest": str(site / "manifest.csv")}]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    written = run([sys.executable, "-m", "pipeline.stages.demo", str(site / "raw"), str(site / "manifest.csv"),
                   "--external-site", "site_c"], repo)
    assert written.returncode == 0, written.stderr
    # Like a clone: a git repository with a commit (DVCLive records the baseline rev).
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "tiny"]):
        assert run(args, repo).returncode == 0, args
    result = run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (repo / "repro.log").write_text(result.stdout + result.stderr)
    return repo


@pytest.mark.e2e
def test_repro_writes_the_reports(repo):
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    patient_scores = _patient_max_scores(repo / "reports" / "predictions.csv")
    for part in ("val", "test"):
        m = metrics[part]
        labels, scores = zip(*patient_scores[part].values())
        # The reported AUC is the one scikit-learn computes from predictions.csv (patients
        # scored by their highest series, evaluate.aggregate: max), not just any number.
        # metrics.json keeps six decimals (pipeline/report/writers.py): equal to half a unit there
        assert m["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=5e-7)
        assert m["n_patients"] == len(labels) and m["n_positive"] == sum(labels)
        lo, hi = m["auc_ci95"]
        assert lo <= m["auc"] <= hi
        assert m["n_positive"] >= 1 and m["n_patients"] > m["n_positive"]
    assert metrics["test"]["threshold"] == metrics["val"]["threshold"]
    roc = json.loads((repo / "reports" / "roc.json").read_text())
    assert roc, "roc.json is empty"
    assert (repo / "reports" / "roc.png").stat().st_size > 1000
    summary = json.loads((repo / "reports" / "train_summary.json").read_text())
    assert summary["weights"]["source"] == "none"  # auto without a checkpoint at hand
    assert summary["weights"]["warning"]


@pytest.mark.e2e
def test_localise_scores_the_true_positives_against_the_demo_lesions(repo):
    found = json.loads((repo / "reports" / "localisation.json").read_text())
    chosen = json.loads((repo / "reports" / "threshold.json").read_text())
    for key in ("threshold", "rule", "predictions_sha256", "model_digest"):  # the operating point evaluate chose
        assert found["operating_point"][key] == chosen[key], key
    html = (repo / "reports" / "report.html").read_text()
    assert "Does the map point at the lesion?" in html  # the check is in the report
    threshold = chosen["threshold_score"]
    if threshold is None:  # a 2-epoch model that ranks val backwards (it did on one CPU): no true positives known
        assert found["cases"] == found["true_positives"] == 0 and found["threshold_score"] is None
        assert "has no cut on the model's score scale" in found["note"]
        return
    with (repo / "reports" / "predictions.csv").open() as handle:
        positives = [r for r in csv.DictReader(handle)
                     if r["split"] == "test" and r["label"] == "1" and float(r["score"]) >= threshold]
    assert found["split"] == "test" and found["threshold_score"] == threshold
    if found["cases"]:
        assert f"{found['peak_in_lesion']:.0%}</b> of {found['cases']} true-positive test cases" in html
    assert found["true_positives"] == len(positives)
    assert found["cases"] == len(positives)  # every demo positive has its lesion in lesions.csv
    assert found["layer"] == "layer1" and found["layer_cells"] == [6, 6, 3]  # the finest stage of a 24x24x12 input
    if found["cases"]:
        assert 0 <= found["peak_in_lesion"] <= 1 and 0 < found["chance"] < 0.5
    else:
        assert found["peak_in_lesion"] is None and found["note"]


@pytest.mark.e2e
def test_the_report_shows_the_grad_cam_gallery_drawn_at_its_own_operating_point(repo):
    gallery = json.loads((repo / "reports" / "gallery" / "gallery.json").read_text())
    threshold = json.loads((repo / "reports" / "threshold.json").read_text())
    for key in ("threshold", "threshold_score", "rule", "predictions_sha256"):
        assert gallery["operating_point"][key] == threshold[key], key
    assert gallery["model_digest"] == threshold["model_digest"]
    drawn = [c for c in gallery["cases"] if c["image"]]
    assert len(drawn) == len(gallery["cases"]) and all(c["slice_index"] is not None for c in drawn)
    html = (repo / "reports" / "report.html").read_text()
    section = html[html.index("Where the model looks"):html.index("Metrics with 95% confidence intervals")]
    assert section.count("<img alt=") == len(drawn)
    assert "explain: " in (repo / "repro.log").read_text()


@pytest.mark.e2e
def test_no_identifier_from_the_manifest_reaches_the_outputs(repo):
    ids = set()
    for manifest in (repo / "data" / "demo" / "manifest.csv", repo.parent / "site_c" / "manifest.csv"):
        with manifest.open() as handle:
            ids |= {row["patient_id"] for row in csv.DictReader(handle)}
    for folder in ("data/ingested", "data/cache", "reports"):
        for path in (repo / folder).rglob("*"):
            if path.suffix in {".csv", ".json", ".html"}:
                text = path.read_text(errors="ignore")
                leaked = [i for i in ids if i in text]
                assert not leaked, f"{path} contains manifest ids {leaked[:3]}"


@pytest.mark.e2e
def test_second_repro_does_nothing(repo):
    status = run(["dvc", "status"], repo)
    assert status.returncode == 0
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], repo)
    assert again.returncode == 0
    assert "Running stage" not in again.stdout, again.stdout


#: The train_fold stages (one per slot of dvc.yaml's fold_slots): with split.folds: 0 each
#: re-runs on a model or train change and writes the same "not in use" fold.json.
FOLD_SLOTS = {f"train_fold@{slot}" for slot in yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["fold_slots"]}


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.mark.e2e
def test_the_external_site_is_called_at_the_internal_threshold(repo):
    """Never re-tuned: the site's operating point is the one evaluate chose on the internal val split."""
    reports = repo / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    threshold = json.loads((reports / "threshold.json").read_text())
    site = json.loads((reports / "external" / "site_c" / "metrics.json").read_text())
    used = site["operating_point"]
    assert used["threshold"] == threshold["threshold"] == metrics["val"]["threshold"] == metrics["test"]["threshold"]
    assert site["metrics"]["threshold"] == metrics["val"]["threshold"] and used["chosen_on"] == "val"
    assert used["threshold_score"] == threshold["threshold_score"] == metrics["val"]["threshold_score"]
    assert used["calibration"] == threshold["calibration"]
    summary = json.loads((reports / "train_summary.json").read_text())
    assert site["model_digest"] == threshold["model_digest"] == summary["model_digest"]
    assert json.loads((reports / "external" / "index.json").read_text())["sites"][0]["name"] == "site_c"

    patients = {}
    with (reports / "external" / "site_c" / "predictions.csv").open() as handle:
        for row in csv.DictReader(handle):
            assert row["score"], row["reason"]
            label, best = patients.get(row["patient_id"], (int(row["label"]), float("-inf")))
            patients[row["patient_id"]] = (label, max(best, float(row["score"])))
    labels, scores = zip(*patients.values())
    assert site["metrics"]["n_patients"] == len(patients) == TINY["demo"]["n_patients"]
    assert site["metrics"]["auc"] == round(roc_auc_score(labels, scores), 6)

    html = (reports / "report.html").read_text()
    section = html[html.index("<h2>External validation</h2>"):]
    section = section[:section.index("<h2>", 5)]
    assert "Internal test" in section and ">site_c<" in section and "internal threshold" in section
    assert f"{site['metrics']['auc']:.3f}" in section and f"<b>{metrics['test']['threshold']:.3f}</b>" in section
    print(f"\ne2e figures: internal test AUC {metrics['test']['auc']:.3f} (n={metrics['test']['n_patients']}), "
          f"site_c AUC {site['metrics']['auc']:.3f} (n={site['metrics']['n_patients']}), threshold "
          f"{metrics['val']['threshold']!r} (score >= {threshold['threshold_score']!r}); site_c sensitivity "
          f"{site['metrics']['sensitivity']}, specificity {site['metrics']['specificity']}")


@pytest.mark.e2e
def test_predict_decides_at_the_threshold_recorded_with_the_model(repo):
    threshold = json.loads((repo / "reports" / "threshold.json").read_text())
    result = run([sys.executable, "-m", "pipeline.predict", "models/best.ckpt", "data/demo/manifest.csv", "--raw-dir",
                  "data/demo/raw", "--out", str(repo.parent / "p.csv")], repo)
    assert result.returncode == 0, result.stderr
    cut = threshold["threshold_score"]
    with (repo.parent / "p.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["score"]]
    assert rows
    if cut is None:  # two epochs can leave a model that ranks val backwards: a Platt map with a negative slope
        assert "WARNING: reports/threshold.json not used" in result.stderr and threshold["threshold_score_reason"]
        assert all(r["threshold"] == "" and r["positive"] == "" for r in rows)
    else:
        assert "from reports/threshold.json" in result.stdout and "WARNING" not in result.stderr
        assert all(float(r["threshold"]) == cut for r in rows)
        assert all(r["positive"] == str(int(float(r["score"]) >= cut)) for r in rows)


@pytest.mark.e2e
def test_exp_run_with_a_new_lr_reruns_only_train_and_what_reads_the_model(repo):
    result = run(["dvc", "exp", "run", "-S", "train.lr=0.0003"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # crossval is not among them: the slots not in use wrote the same fold.json again
    assert stages_run(result.stdout) == {"train", "external", "explain", "evaluate", "localise", *FOLD_SLOTS}
    diff = run(["dvc", "metrics", "diff", "--all"], repo)
    assert diff.returncode == 0 and "test.auc" in diff.stdout, diff.stdout + diff.stderr
    shown = run(["dvc", "metrics", "show"], repo)
    assert shown.returncode == 0 and "test.auc_ci95_low" in shown.stdout
    plots = run(["dvc", "plots", "show", "--json"], repo)
    assert plots.returncode == 0
    rendered = json.loads(plots.stdout)
    assert not rendered.get("errors"), rendered.get("errors")
    assert {"ROC", "Precision-Recall", "Calibration", "Confusion-Matrix"} <= set(rendered["data"])


@pytest.mark.e2e
def test_a_param_that_changes_no_data_still_refreshes_the_report(repo):
    result = run(["dvc", "exp", "run", "-S", "ingest.workers=1"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # ingest re-runs and writes the same files, so nothing between it and the report does;
    # external reads the ingest settings for its cohort (and writes the same files)
    assert stages_run(result.stdout) == {"ingest", "external", "evaluate"}
    html = (repo / "reports" / "report.html").read_text()
    assert re.search(r"\ningest:\n(?:  .*\n)*?  workers: 1\n", html), "report params not refreshed"


@pytest.mark.e2e
def test_weights_none_and_a_checkpoint_file(repo):
    from tests.models.resnet_checkpoints import resnet_state_dict

    result = run(["dvc", "exp", "run", "-S", "model.weights=none"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((repo / "reports" / "train_summary.json").read_text())
    assert summary["weights"]["source"] == "none" and not summary["weights"]["warning"]

    import torch

    checkpoint = repo.parent / "site-resnet18.pth"
    torch.save(resnet_state_dict("resnet18", seed=0), checkpoint)
    result = run(["dvc", "exp", "run", "-S", f"model.weights={checkpoint}"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    weights = json.loads((repo / "reports" / "train_summary.json").read_text())["weights"]
    assert weights["source"] == "file"
    assert weights["file"] == checkpoint.name and len(weights["sha256"]) == 64
    assert "site-resnet18.pth" in (repo / "reports" / "report.html").read_text()


def _declared_outs(repo: Path) -> list[str]:
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    outs = []
    for stage in dvc_yaml["stages"].values():
        # A foreach stage: its template once per item of the list it loops over.
        items = dvc_yaml["vars"][0][stage["foreach"][2:-1]] if "foreach" in stage else [None]
        for item in items:
            for kind in ("outs", "metrics", "plots"):
                for entry in stage.get("do", stage).get(kind, []):
                    path = (entry if isinstance(entry, str) else next(iter(entry))).replace("${item}", str(item))
                    outs.append(re.sub(r"\$\{(\w+)\.(\w+)\}", lambda m: str(params[m[1]][m[2]]), path))
    return outs


@pytest.mark.e2e
def test_exp_run_with_folds_trains_one_model_per_fold_and_pools_them(repo):
    result = run(["dvc", "exp", "run", "-S", "split.folds=2"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = stages_run(result.stdout)
    assert {"split", "train_fold@0", "train_fold@1", "crossval", "evaluate"} <= ran, ran
    assert "train_fold: fold 1 of 2: best epoch" in result.stdout
    assert "train_fold: slot 2 not in use (split.folds is 2)" in result.stdout
    # The split's own train/val/test parts stay as they were: the model predict uses is unchanged.
    assert "train" not in ran
    with (repo / "data" / "split.csv").open() as handle:
        split = {r["patient_id"]: r for r in csv.DictReader(handle)}
    assert {r["fold"] for r in split.values() if r["split"] == "test"} == {""}
    assert {r["fold"] for r in split.values() if r["split"] != "test"} == {"0", "1"}

    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    cv = metrics["cv"]
    assert cv["k"] == 2 and [f["fold"] for f in cv["folds"]] == [0, 1]
    assert sum(f["n_patients"] for f in cv["folds"]) == cv["oof"]["n_patients"] == sum(
        r["split"] != "test" for r in split.values())
    patients = _patient_max_scores(repo / "reports" / "cv" / "predictions.csv")
    labels, scores = zip(*patients["val"].values())  # val: the pooled out-of-fold rows
    assert cv["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=5e-7)
    assert cv["test"]["n_patients"] == metrics["test"]["n_patients"]
    assert cv["test"]["threshold"] == cv["oof"]["threshold"]
    for slot in (0, 1):
        fold = json.loads((repo / "cv" / "folds" / str(slot) / "fold.json").read_text())
        assert fold["in_use"] and fold["k"] == 2 and (repo / "cv" / "models" / str(slot) / "best.ckpt").is_file()
    assert not json.loads((repo / "cv" / "folds" / "2" / "fold.json").read_text())["in_use"]
    assert not list((repo / "cv" / "models").glob("*.fold-cache")), "the fold caches were left behind"

    html = (repo / "reports" / "report.html").read_text()
    section = html[html.index("<h2>Cross-validation</h2>"):]
    assert "pooled out-of-fold" in section and f"{cv['auc']:.3f}" in section
    assert "2 folds" in (repo / "reports" / "methods.md").read_text()
    plots = run(["dvc", "plots", "show", "--json"], repo)
    assert plots.returncode == 0 and not json.loads(plots.stdout).get("errors")
    print(f"\ne2e cross-validation: pooled out-of-fold AUC {cv['auc']:.3f} on {cv['oof']['n_patients']} patients, "
          f"folds {[round(f['auc'], 3) for f in cv['folds']]}, test by the folds' mean {cv['test']['auc']:.3f}")


@pytest.mark.e2e
def test_every_file_the_pipeline_writes_is_a_declared_out(repo):
    """What a stage writes outside its declared outs is neither cached nor cleaned by DVC."""
    outs = _declared_outs(repo)
    inputs = {"dvc.yaml", "dvc.lock", "params.yaml", ".gitignore", ".dvcignore", "repro.log"}
    # dvc_plots/ is where `dvc plots show` renders image plots: DVC's, not a stage's.
    not_stages = {".git", ".dvc", "pipeline", "dvc_plots"}
    stray = []
    for path in repo.rglob("*"):
        rel = path.relative_to(repo).as_posix()
        ignored = rel in inputs or path.name == ".gitignore" or rel.split("/")[0] in not_stages
        if not path.is_file() or ignored:
            continue
        if not any(rel == out or rel.startswith(out.rstrip("/") + "/") for out in outs):
            stray.append(rel)
    assert not stray, f"written but not declared in dvc.yaml: {sorted(stray)[:10]}"
