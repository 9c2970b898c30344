"""The evaluate stage end to end on a small synthetic predictions.csv."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shlex
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import mannwhitneyu

from pipeline.metrics import delong_test
from pipeline.schema import EvaluateOutputs
from pipeline.stages.evaluate import main, output_paths, parse_args
from tests.params import params_text

ROOT = Path(__file__).resolve().parents[2]

#: train_summary.json as pipeline/training.py writes it (ImageNet weights found in the hub cache).
TRAIN_SUMMARY = {
    "weights": {
        "source": "imagenet", "requested": "auto", "arch": "resnet18", "spatial_dims": 3, "in_channels": 1,
        "stem_kernel": [7, 7, 7], "stem_stride": [2, 2, 2], "shortcut_type": "A", "file": "resnet18.pth",
        "sha256": "ab" * 32, "sha256_expected": None, "found": "cache", "url": "https://example.org/w",
        "licence": "BSD-3-Clause", "channel_adaptation": "sum", "inflated": True, "head": "new", "notes": "",
        "warning": None,
    },
    "model": {"arch": "resnet18", "spatial_dims": 3, "in_channels": 1, "num_classes": 1},
    "model_digest": "cd" * 32,
    "best_epoch": 2,
    "best_val_auc": 0.8,
    "resumed_from_epoch": None,
    "seconds": 12.5,
    "config": {
        "model": {"arch": "resnet18", "weights": "auto"},
        "train": {"max_epochs": 12, "batch_size": 8, "lr": 0.001, "weight_decay": 0.0001, "precision": "32",
                  "augment": False},
    },
    "cache": {"roi": [64, 64, 32], "pixdim": [5.0, 5.0, 6.25], "counts": {"train": 40, "val": 24, "test": 36}},
}

EVALUATE = {"aggregate": "max", "threshold": "sensitivity", "target_sensitivity": 0.8, "ci_method": "bootstrap",
            "n_boot": 200, "calibration_bins": 5, "subgroups": [], "calibration": "platt", "reader_columns": []}


def evaluate_params(**evaluate: object) -> str:
    """The shipped params with this file's evaluate settings (and a key that must never be printed)."""
    return params_text(base={"seed": 3}, ingest={"pseudonym_key": "do-not-print-this-key"},
                       evaluate={**EVALUATE, **evaluate})


PARAMS = evaluate_params()


def write_train_summary(path: Path, **weights: object) -> Path:
    """:data:`TRAIN_SUMMARY` with these ``weights`` keys replaced, written to ``path``."""
    path.write_text(json.dumps({**TRAIN_SUMMARY, "weights": {**TRAIN_SUMMARY["weights"], **weights}}))
    return path


def dvc_stage() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]


def output_args(folder: Path) -> list[str]:
    """The output options of the evaluate cmd in dvc.yaml, each path moved from reports/ into ``folder``."""
    tokens = shlex.split(dvc_stage()["cmd"])
    options = {"--" + f.name.replace("_", "-") for f in fields(EvaluateOutputs)}
    out: list[str] = []
    for option, value in zip(tokens, tokens[1:]):
        if option in options:
            out += [option, str(folder / Path(value).relative_to("reports"))]
    assert len(out) == 2 * len(options), "dvc.yaml must give every output option"
    return out


def outputs_in(folder: Path) -> EvaluateOutputs:
    """The record of :func:`output_args`, for calling the writers directly."""
    args = output_args(folder)
    return EvaluateOutputs(**{option[2:].replace("-", "_"): Path(path) for option, path in zip(args[::2], args[1::2])})


def _predictions(path, *, seed: int = 0, test_label: int | None = None) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["patient_id", "series_key", "split", "label", "score", "site", "manufacturer"])
        for i in range(60):
            split = "val" if i < 24 else "test"
            label = int(i % 2) if (split == "val" or test_label is None) else test_label
            for k in range(1 + i % 2):
                score = float(np.clip(0.5 + 0.3 * (label - 0.5) + rng.normal(0, 0.2), 0, 1))
                out.writerow([f"pt{i:03d}", f"pt{i:03d}-{k}", split, label, f"{score:.4f}", "AB"[i % 3 == 0],
                              "X" if i < 58 else "Y"])


def _setup(tmp_path, **kwargs):
    preds = tmp_path / "predictions.csv"
    _predictions(preds, **kwargs)
    (tmp_path / "params.yaml").write_text(PARAMS)
    return preds


def _declared(stage: dict) -> set[str]:
    """Every path a dvc.yaml stage declares it writes (outs, metrics and plots alike)."""
    return {next(iter(e)) if isinstance(e, dict) else e for key in ("outs", "metrics", "plots") for e in stage.get(key) or []}


def _chosen(predictions: Path, params: Path):  # noqa: ANN202 - a ThresholdRecord
    """The operating point the explain and localise stages record for these predictions (evaluate's choice)."""
    from pipeline.config import EvaluateConfig, load_params
    from pipeline.digests import sha256_file
    from pipeline.report import operating_point, read_predictions
    from pipeline.report.operating_point import threshold_record

    config = EvaluateConfig.from_params(load_params(params))
    rule = operating_point(read_predictions(predictions, aggregate=config.aggregate), config)
    return threshold_record(rule, model_digest=TRAIN_SUMMARY["model_digest"], predictions_sha256=sha256_file(predictions))


def _empty_gallery(path: Path, predictions: Path, params: Path) -> None:
    """A gallery.json as the explain stage writes it for these predictions, with no case drawn."""
    from pipeline.schema.gallery import GalleryRecord

    record = GalleryRecord(
        split="test", layer="layer4", layer_cells=(1, 1, 1), per_group=3, true_positives=0, false_positives=0,
        false_negatives=0, model_digest=TRAIN_SUMMARY["model_digest"], cases=(), note="",
        operating_point=_chosen(predictions, params),
    )
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record.to_json()))


def _no_lesion_check(path: Path, predictions: Path, params: Path) -> None:
    """A localisation.json as the localise stage writes it for these predictions on a cohort without lesion truth."""
    from pipeline.schema.localisation import LocalisationRecord

    chosen = _chosen(predictions, params)
    record = LocalisationRecord(
        split="test", cases=0, layer="layer2", layer_cells=(8, 8, 4), peak_in_lesion=None, chance=None, margin_mm=10.0,
        threshold_score=chosen.threshold_score, true_positives=3, flat_maps=0, operating_point=chosen,
        model_digest=TRAIN_SUMMARY["model_digest"], note="no lesion position for the true-positive test patients",
    )
    path.write_text(json.dumps(record.to_json()))


def test_dvc_yaml_declares_exactly_what_its_command_writes(tmp_path, monkeypatch, capsys):
    """The cmd of dvc.yaml, run as written: each output option is one declared out, every
    file lands inside one, and the top-level plots find the fields they draw."""
    stage = dvc_stage()
    argv = shlex.split(stage["cmd"])
    assert argv[:3] == ["python", "-m", "pipeline.stages.evaluate"]
    args = parse_args(argv[3:])
    assert {str(path) for path in output_paths(args).paths().values()} == _declared(stage)
    assert {str(args.predictions), str(args.train_summary), str(args.ledger)} <= set(stage["deps"])
    assert str(args.external.parent) in stage["deps"]  # the external stage's folder, index.json and sites
    assert str(args.cv.parent) in stage["deps"]  # the crossval stage's folder: cv.json and its figure
    assert str(args.gallery.parent) in stage["deps"]  # the explain stage's folder: gallery.json and its overlays
    assert str(args.localisation) in stage["deps"]

    monkeypatch.chdir(tmp_path)
    Path(args.predictions).parent.mkdir(parents=True)
    _predictions(Path(args.predictions))
    Path(args.params).write_text(PARAMS)
    Path(args.ledger).parent.mkdir(parents=True)
    Path(args.ledger).write_text("path,status,reason\na.dcm,ingested,\n")
    Path(args.train_summary).write_text(json.dumps(TRAIN_SUMMARY))
    args.external.parent.mkdir(parents=True)
    args.external.write_text(json.dumps({"sites": []}))
    args.cv.parent.mkdir(parents=True)  # as the crossval stage leaves it with split.folds: 0
    args.cv.write_text(json.dumps({"k": 0}))
    (args.cv.parent / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _empty_gallery(args.gallery, Path(args.predictions), Path(args.params))
    _no_lesion_check(args.localisation, Path(args.predictions), Path(args.params))
    inputs = {Path(p) for p in (args.predictions, args.params, args.ledger, args.train_summary, args.external,
                                args.cv, args.cv.parent / "roc.png", args.gallery, args.localisation)}
    assert main(argv[3:]) == 0
    assert f"Report: {args.report}" in capsys.readouterr().out
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()} - inputs
    declared = {Path(p) for p in _declared(stage)}
    assert all(path.exists() for path in declared)
    assert all(any(out == path or out in path.parents for out in declared) for path in written), written

    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    for plot in plots:
        if isinstance(plot, str):  # an image another stage writes (crossval's reports/cv/roc.png)
            assert plot.endswith(".png"), plot
            continue
        (spec,) = plot.values()
        for file, y_field in spec["y"].items():
            rows = json.loads(Path(file).read_text())
            assert rows and {spec["x"], y_field} <= set(rows[0]), (file, rows[:1])


def test_stage_writes_every_output(tmp_path, capsys):
    preds = _setup(tmp_path)
    other = tmp_path / "other.csv"
    _predictions(other, seed=5)
    summary = write_train_summary(tmp_path / "train_summary.json")
    out = tmp_path / "reports"
    assert main([str(preds), *output_args(out), "--params", str(tmp_path / "params.yaml"), "--train-summary", str(summary),
                 "--compare", str(other)]) == 0
    assert "test AUC" in capsys.readouterr().out

    expected = {"metrics.json", "roc.json", "plots/roc/val.json", "roc.png", "calibration.png", "pr.png", "report.html",
                "methods.md", "threshold.json"} | {
        f"plots/{kind}/{split}.json" for kind in ("pr", "calibration", "confusion") for split in ("val", "test")
    }
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == expected
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = json.loads((out / "metrics.json").read_text())
    for split, n in (("test", 36), ("val", 24)):
        m = metrics[split]
        for key in ("auc", "auc_ci95", "threshold", "sensitivity", "specificity", "ppv", "npv", "brier", "ece",
                    "n_patients", "n_positive", "subgroups"):
            assert key in m, key
        assert m["n_patients"] == n and m["auc_ci_method"] == "bootstrap"
        assert m["auc_ci95"][0] <= m["auc"] <= m["auc_ci95"][1]
    assert metrics["val"]["sensitivity"] >= 0.8  # the rule holds where it was chosen
    assert metrics["test"]["threshold"] == metrics["val"]["threshold"]
    assert metrics["test"]["n_series"] == sum(1 + i % 2 for i in range(24, 60))
    level_y = metrics["test"]["subgroups"]["manufacturer"]["Y"]  # patients 58 and 59: one negative, one positive
    assert level_y["n_patients"] == 2 and level_y["auc_ci95"] is None and "interval undefined" in level_y["reason"]
    assert metrics["comparison"]["n_patients"] == 36

    threshold = json.loads((out / "threshold.json").read_text())
    val = metrics["val"]
    assert (threshold["threshold"], threshold["threshold_score"]) == (val["threshold"], val["threshold_score"])
    assert (threshold["rule"], threshold["chosen_on"], threshold["aggregate"]) == ("sensitivity>=0.8", "val", "max")
    assert (threshold["n_patients"], threshold["n_positive"]) == (24, 12)
    assert threshold["model_digest"] == TRAIN_SUMMARY["model_digest"]
    assert threshold["predictions_sha256"] == hashlib.sha256(preds.read_bytes()).hexdigest()
    fitted = metrics["calibration"]
    assert threshold["calibration"]["method"] == "platt" and threshold["calibration"]["regressor"] == fitted["regressor"]
    assert threshold["calibration"]["slope"] == pytest.approx(fitted["slope"], abs=1e-6)

    confusion = json.loads((out / "plots" / "confusion" / "test.json").read_text())
    assert len(confusion) == 36 and set(confusion[0]) == {"actual", "predicted"}
    c = metrics["test"]["confusion"]
    assert sum(r["actual"] == 1 and r["predicted"] == 1 for r in confusion) == c["tp"]

    page = (out / "report.html").read_text()
    assert "<img" in page and "data:image/png;base64," in page and "src=\"http" not in page
    assert "BSD-3-Clause" in page and "RANDOM INITIALISATION" not in page
    assert "do-not-print-this-key" not in page and "pt000" not in page
    assert "Data hashes are not shown" in page


@pytest.mark.parametrize(("calibration", "key", "said"), [
    ("none", "threshold", r"at threshold \d\.\d+e-0[67] chosen on val"),
    ("platt", "threshold_score", r"\(platt; score >= \d\.\d+e-0[67]\) chosen on val"),
])
def test_the_threshold_of_a_confident_model_is_written_exactly(tmp_path, capsys, calibration, key, said):
    """Scores near 1e-7 (a confident model's negatives and positives alike): the threshold
    on the model's scale in metrics.json (``threshold`` without recalibration,
    ``threshold_score`` with it), applied to predictions.csv, must give the confusion it reports."""
    preds = _setup(tmp_path)
    (tmp_path / "params.yaml").write_text(evaluate_params(calibration=calibration))
    lines = preds.read_text().splitlines()
    scaled = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[4] = format(float(cells[4]) * 1e-6, ".17g")
        scaled.append(",".join(cells))
    preds.write_text("\n".join(scaled) + "\n")
    out = tmp_path / "reports"
    assert main([str(preds), *output_args(out), "--params", str(tmp_path / "params.yaml")]) == 0
    assert re.search(said, capsys.readouterr().out)

    metrics = json.loads((out / "metrics.json").read_text())
    threshold = metrics["test"][key]
    assert 0 < threshold < 1e-6
    patients: dict[str, tuple[int, float]] = {}
    with preds.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "test":  # per patient, the max over series (evaluate.aggregate: max)
                _, score = patients.get(row["patient_id"], (0, 0.0))
                patients[row["patient_id"]] = (int(row["label"]), max(score, float(row["score"])))
    called = {pid: score >= threshold for pid, (_, score) in patients.items()}
    tp = sum(called[pid] and label == 1 for pid, (label, _) in patients.items())
    fp = sum(called[pid] and label == 0 for pid, (label, _) in patients.items())
    assert (tp, fp) == (metrics["test"]["confusion"]["tp"], metrics["test"]["confusion"]["fp"])
    assert 0 < fp < 18 and 0 < tp < 18  # not everyone called positive, as 0.0 would
    roc = json.loads((out / "roc.json").read_text())
    assert any(0 < (row["threshold"] or 0) < 1e-6 for row in roc)


def test_one_class_test_split_stops_the_stage(tmp_path, capsys):
    preds = _setup(tmp_path, test_label=0)
    assert main([str(preds), *output_args(tmp_path / "reports"), "--params", str(tmp_path / "params.yaml")]) == 2
    assert "evaluate failed: split 'test' must contain both classes; got 36 patient(s), all negative" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "reports" / "metrics.json").exists()


def test_bad_scores_stop_the_stage_naming_lines(tmp_path, capsys):
    preds = _setup(tmp_path)
    lines = preds.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[4], "inf")
    lines[9] = lines[9].replace(lines[9].split(",")[4], "NaN")
    preds.write_text("\n".join(lines) + "\n")
    assert main([str(preds), *output_args(tmp_path / "reports"), "--params", str(tmp_path / "params.yaml")]) == 2
    assert re.search(r"evaluate failed: .*'score' must be a finite number \(a probability, logit or rating\).*line\(s\) 5, 10",
                     capsys.readouterr().err, flags=re.DOTALL)


def test_a_reader_column_is_compared_with_the_model_on_the_same_patients(tmp_path):
    """Another group's file: one row per patient, logits, no series_key, a radiologist's 1-5 rating."""
    rng = np.random.default_rng(12)
    rows, truth = [], {"val": [], "test": []}
    for i in range(80):
        split, label = ("val" if i < 30 else "test"), i % 2
        logit = 1.5 * (label - 0.5) + rng.normal(0, 1.0)
        rating = int(np.clip(np.round(3 + 1.6 * (label - 0.5) + rng.normal(0, 1.0)), 1, 5))
        cell = "" if i in (31, 44, 57) else str(rating)  # three test patients were not read
        rows.append([f"case{i}", split, label, f"{logit:.6f}", cell])
        if cell:
            truth[split].append((label, logit, rating))
    preds = tmp_path / "predictions.csv"
    with preds.open("w", newline="") as handle:
        csv.writer(handle).writerows([["patient_id", "split", "label", "score", "radiologist_a"], *rows])
    (tmp_path / "params.yaml").write_text(evaluate_params(calibration="platt", reader_columns=["radiologist_a"]))
    out = tmp_path / "reports"
    assert main([str(preds), *output_args(out), "--params", str(tmp_path / "params.yaml")]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    reader = metrics["test"]["readers"]["radiologist_a"]
    label, logit, rating = (np.array(v) for v in zip(*truth["test"]))
    n_pos, n_neg = int(label.sum()), int(label.size - label.sum())
    reader_auc = mannwhitneyu(rating[label == 1], rating[label == 0]).statistic / (n_pos * n_neg)
    model_auc = mannwhitneyu(logit[label == 1], logit[label == 0]).statistic / (n_pos * n_neg)
    assert (reader["n"], reader["n_missing"], reader["n_positive"]) == (47, 3, n_pos)
    assert reader["auc"] == pytest.approx(reader_auc, abs=1e-6)
    assert reader["model_auc"] == pytest.approx(model_auc, abs=1e-6)
    assert reader["delta_auc_vs_model"] == pytest.approx(reader_auc - model_auc, abs=1e-6)
    assert reader["p_value"] == pytest.approx(delong_test(label, rating, logit).p_value, abs=1e-6)
    assert reader["auc_ci95"][0] <= reader["auc"] <= reader["auc_ci95"][1]
    cuts = [p["cut"] for p in reader["operating_points"]]
    assert cuts == sorted(set(rating.tolist()), reverse=True)
    first = reader["operating_points"][0]
    assert first["sensitivity"] == pytest.approx(np.mean(rating[label == 1] >= cuts[0]), abs=1e-6)
    assert metrics["val"]["readers"]["radiologist_a"]["n"] == 30
    assert "radiologist_a" not in metrics["test"]["subgroups"]
    assert metrics["test"]["brier_uncalibrated"] is None and metrics["test"]["brier"] is not None

    page = (out / "report.html").read_text()
    assert "Readers compared with the model" in page and "radiologist_a" in page and "case3" not in page
