"""Every stage ends the same way: a summary line, or one line naming the bad input and status 2."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from lightning_fabric.utilities.exceptions import MisconfigurationException

from pipeline.cache import CachedSplit, CacheError, open_split
from pipeline.models import WeightsNotFoundError
from pipeline.stages import train
from pipeline.stages.outcome import TRACEBACK_ENV, input_errors, run_stage
from pipeline.tables import read_rows

REPO = Path(__file__).resolve().parents[2]


def test_a_summary_line_is_printed_and_the_status_is_0(capsys):
    assert run_stage("split", lambda: "split: 3 patients") == 0
    assert capsys.readouterr().out == "split: 3 patients\n"


def _raise(error: BaseException) -> str:
    raise error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lambda tmp: open_split(tmp, "train"), r"cache split '.*train.npy' must exist; .* Run the preprocess stage\."),
        (lambda tmp: read_rows(tmp / "index.csv"), r"table '.*index.csv' must exist; .*dvc repro\)\."),
        # these two classes count wherever they are raised (Lightning raises the second)
        (lambda tmp: _raise(WeightsNotFoundError("put resnet18-f37072fd.pth in the hub cache")), r"put resnet18"),
        (lambda tmp: _raise(MisconfigurationException("You requested gpu: [0, 1] but have 1")), r"You requested gpu"),
    ],
    ids=["CacheError", "FileNotFoundError", "WeightsError", "MisconfigurationException"],
)
def test_bad_input_prints_one_line_and_exits_2(body, message, tmp_path, capsys):
    assert run_stage("train", lambda: body(tmp_path)) == 2
    captured = capsys.readouterr()
    assert re.fullmatch(rf"train failed: {message}.*\n", captured.err, flags=re.DOTALL) and captured.out == ""
    assert captured.err.count("\n") == 1


_CORRUPT = CachedSplit(images=np.zeros((1, 1, 2, 2, 2), np.float16), rows=[{"label": "x"}])


@pytest.mark.parametrize(
    "bug",
    [lambda: {}["missing"], lambda: np.zeros(2) + np.zeros(3), lambda: _raise(ValueError("from a library")),
     lambda: _CORRUPT.labels],
    ids=["KeyError", "numpy ValueError", "ValueError raised outside pipeline/", "int() failing inside pipeline/"],
)
def test_a_bug_keeps_its_traceback(bug):
    with pytest.raises((KeyError, ValueError)):
        run_stage("train", bug)


def test_the_traceback_of_bad_input_is_shown_on_request(monkeypatch, tmp_path):
    monkeypatch.setenv(TRACEBACK_ENV, "1")

    with pytest.raises(CacheError, match="must exist"):
        run_stage("train", lambda: open_split(tmp_path, "train"))


def test_stages_that_never_load_torch_do_not_import_it_to_catch_its_errors():
    for stage in ("demo", "ingest", "split", "evaluate"):
        code = f"import sys, pipeline.stages.{stage}; sys.exit('torch' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0, stage
    assert MisconfigurationException in input_errors()  # loaded here, so looked up


def test_the_train_stage_names_a_bad_setting_and_exits_2(tmp_path, capsys):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["device_cache"] = "yes"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    outs = [str(tmp_path / name) for name in ("cache", "models", "predictions.csv", "summary.json", "live")]
    assert train.main([*outs, "--params", str(tmp_path / "params.yaml")]) == 2
    assert "train failed: 'train.device_cache' must be true, false or auto; got 'yes'." in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
