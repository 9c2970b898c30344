"""Split and evaluate write each file aside and rename it into place; a dead run's leftovers go."""

from __future__ import annotations

import subprocess
import sys

from pipeline.stages import evaluate, split
from pipeline.schema.tables import SPLIT_COLUMNS
from tests.params import write_params
from tests.stages.test_evaluate import _setup, output_args
from tests.test_preprocessing import make_index


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_split_replaces_its_file_whole_and_removes_a_dead_runs_leftover(tmp_path, capsys):
    index, _ = make_index(tmp_path)
    write_params(tmp_path / "params.yaml", base={"seed": 1}, split={"val_fraction": 0.2, "test_fraction": 0.3})
    out = tmp_path / "parts" / "split.csv"
    out.parent.mkdir()
    (out.parent / f".split.csv.tmp-{_dead_pid()}").write_text("patient_id,spl")
    assert split.main([str(index), str(out), "--params", str(tmp_path / "params.yaml")]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["split.csv"]
    assert out.read_text().startswith(",".join(SPLIT_COLUMNS) + "\n")


def test_evaluate_leaves_only_complete_files_and_removes_a_dead_runs_leftovers(tmp_path, capsys):
    predictions = _setup(tmp_path)
    out = tmp_path / "reports"
    (out / "plots" / "pr").mkdir(parents=True)
    dead = _dead_pid()
    (out / "plots" / "pr" / f".test.json.tmp-{dead}").write_text('[{"recall": 0.')
    (out / f".report.html.tmp-{dead}").write_text("<html")
    assert evaluate.main([str(predictions), *output_args(out), "--params", str(tmp_path / "params.yaml")]) == 0
    assert [p.name for p in out.rglob(".*")] == []
    assert (out / "report.html").read_text(encoding="utf-8").rstrip().endswith("</html>")
