"""The AUC comparison script runs both configurations on a cache and reports them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compares_project_and_tutorial_on_the_same_validation_split(tiny_cache, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["weights"] = "none"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "val_auc_vs_tutorial.py"), "--cache", str(tiny_cache),
         "--params", str(tmp_path / "params.yaml"), "--epochs", "2", "--batch", "6"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert (result["epochs"], result["batch"], result["n_val"]) == (2, 6, 12)
    assert result["project_weights"] == "none"
    for name in ("project", "tutorial"):
        # one logged AUC per epoch, and the best reported is the best of them: for the project
        # the checkpoint callback's score and DVCLive's log are two records of the same run
        line = next(line for line in lines if line.startswith(f"{name:9s} best val AUC"))
        curve = [float(v) for v in line.split("per epoch:")[1].split()]
        assert len(curve) == 2
        assert result[f"{name}_best_val_auc"] == pytest.approx(max(curve), abs=0.005)


def test_refuses_a_folder_that_is_not_a_cache(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "val_auc_vs_tutorial.py"), "--cache", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode != 0
    assert f"--cache {str(tmp_path)!r} must be a preprocess output folder" in done.stderr
