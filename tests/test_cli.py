"""Every command ends the same way: a summary line, or one line naming the bad input and status 2.

Only :class:`~pipeline.errors.PipelineInputError` counts as bad input; anything else, a
``ValueError`` raised by our own code included, is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cache import CachedSplit, CacheError, open_split
from pipeline.cli import TRACEBACK_ENV, run_stage
from pipeline.demo.nifti_writer import write_nifti
from pipeline.errors import PipelineInputError
from pipeline.stages import train
from pipeline.tables import read_rows

REPO = Path(__file__).resolve().parents[1]


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
        (lambda tmp: _raise(PipelineInputError("'x' must be y; got z. Do w.")), r"'x' must be y; got z\. Do w\."),
    ],
    ids=["CacheError", "TableNotFoundError", "PipelineInputError"],
)
def test_bad_input_prints_one_line_and_exits_2(body, message, tmp_path, capsys):
    assert run_stage("train", lambda: body(tmp_path)) == 2
    captured = capsys.readouterr()
    assert re.fullmatch(rf"train failed: {message}\n", captured.err) and captured.out == ""


_CORRUPT = CachedSplit(images=np.zeros((1, 1, 2, 2, 2), np.float16), rows=[{"label": "x"}])


def _programmer_error() -> str:
    """A ``raise ValueError`` statement inside pipeline/: a caller's bug, not the user's input."""
    write_nifti(Path("unused.nii.gz"), np.zeros((2, 4, 4)), geometry=None, orientation="XYZ")  # type: ignore[arg-type]
    return "unreachable"


@pytest.mark.parametrize(
    ("bug", "kind", "message"),
    [
        (lambda: {}["missing"], KeyError, "missing"),
        (lambda: np.zeros(2) + np.zeros(3), ValueError, "broadcast"),
        (lambda: _raise(ValueError("from a library")), ValueError, "from a library"),
        (lambda: _CORRUPT.labels, ValueError, "invalid literal for int"),
        (_programmer_error, ValueError, r"'orientation' must be one of"),
    ],
    ids=["KeyError", "numpy ValueError", "ValueError from a library", "int() failing inside pipeline/",
         "ValueError raised by a raise statement in pipeline/"],
)
def test_a_bug_keeps_its_traceback(bug, kind, message, capsys):
    with pytest.raises(kind, match=message):
        run_stage("train", bug)
    assert capsys.readouterr().err == ""


def test_the_traceback_of_bad_input_is_shown_on_request(monkeypatch, tmp_path):
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(CacheError, match="must exist"):
        run_stage("train", lambda: open_split(tmp_path, "train"))


def test_a_stage_process_prints_one_line_for_bad_input(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.stages.split", str(tmp_path / "index.csv"),
                           str(tmp_path / "split.csv"), "--duplicates", str(tmp_path / "dups.csv")],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert re.fullmatch(r"split failed: table '.*index.csv' must exist; it was not found\. .*\n", done.stderr)


def test_stages_that_never_load_torch_do_not_import_it():
    for stage in ("demo", "ingest", "split", "evaluate", "external"):  # external: until a site is scored
        code = f"import sys, pipeline.stages.{stage}; sys.exit('torch' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0, stage


def test_the_train_stage_names_a_bad_setting_and_exits_2(tmp_path, capsys):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["device_cache"] = "yes"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    outs = [str(tmp_path / name) for name in ("cache", "models", "predictions.csv", "summary.json", "live")]
    assert train.main([*outs, "--params", str(tmp_path / "params.yaml")]) == 2
    assert "train failed: 'train.device_cache' must be true, false or auto; got 'yes'." in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
