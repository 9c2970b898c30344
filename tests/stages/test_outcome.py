"""Every stage ends the same way: a summary line, or one line naming the bad input and status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lightning_fabric.utilities.exceptions import MisconfigurationException

from pipeline.cache import CacheError
from pipeline.models.weights import WeightsNotFoundError
from pipeline.stages import train
from pipeline.stages.outcome import TRACEBACK_ENV, input_errors, run_stage

REPO = Path(__file__).resolve().parents[2]


def test_a_summary_line_is_printed_and_the_status_is_0(capsys):
    assert run_stage("split", lambda: "split: 3 patients") == 0
    assert capsys.readouterr().out == "split: 3 patients\n"


@pytest.mark.parametrize(
    "error",
    [
        CacheError("cache 'x' must hold meta.json; it was not found. Run the preprocess stage."),
        FileNotFoundError("table 'index.csv' must exist"),
        WeightsNotFoundError("no ImageNet checkpoint; put resnet18-f37072fd.pth in the torch hub cache"),
        MisconfigurationException("You requested gpu: [0, 1, 2, 3] but you have 1 GPU"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(error, capsys):
    def body() -> str:
        raise error

    assert run_stage("train", body) == 2
    captured = capsys.readouterr()
    assert captured.err == f"train failed: {error}\n" and captured.out == ""


def test_a_bug_keeps_its_traceback():
    def body() -> str:
        return {}["missing"]

    with pytest.raises(KeyError):
        run_stage("train", body)


def test_the_traceback_of_bad_input_is_shown_on_request(monkeypatch):
    monkeypatch.setenv(TRACEBACK_ENV, "1")

    def body() -> str:
        raise CacheError("truncated")

    with pytest.raises(CacheError, match="truncated"):
        run_stage("train", body)


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
