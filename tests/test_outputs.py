"""Outputs never touch inputs, and appear complete or not at all (pipeline/outputs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import PipelineInputError
from pipeline.folders import FolderError
from pipeline.outputs import (
    OutputOverlapError,
    atomic_file,
    clean_stale,
    refuse_overlap,
    staged_folder,
    temp_sibling,
    write_atomic,
)

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("out", "inp", "relation"),
    [
        ("x", "x", "be"),
        ("x", "x/volumes", "contain"),  # the reported case: raw inside the output
        ("x/volumes/out", "x/volumes", "be inside"),
        ("x", "x/sub/deeper/manifest.csv", "contain"),
        ("x/./volumes/../volumes", "x/volumes", "be"),
    ],
)
def test_an_output_overlapping_an_input_is_refused_with_both_paths(tmp_path, out, inp, relation):
    (tmp_path / "x" / "volumes").mkdir(parents=True)
    with pytest.raises(OutputOverlapError, match=rf"^'out_dir' must not {relation} 'raw_dir'; got out_dir '.*' "
                                                 rf"\(resolves to .*\) and raw_dir .*Give 'out_dir' a path of its own"):
        refuse_overlap({"out_dir": tmp_path / out}, {"raw_dir": tmp_path / inp}, stage="ingest")


def test_disjoint_and_sibling_paths_pass(tmp_path):
    # "data/raw2" starts with "data/raw" as a string but is not inside it.
    refuse_overlap({"out": tmp_path / "data" / "raw2", "other": None},
                   {"raw": tmp_path / "data" / "raw", "manifest": tmp_path / "m.csv", "lock": None}, stage="ingest")


def test_symlinks_are_resolved_before_comparing(tmp_path):
    raw = tmp_path / "real" / "volumes"
    raw.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputOverlapError, match=r"'out_dir' must not contain 'raw_dir'"):
        refuse_overlap({"out_dir": tmp_path / "link"}, {"raw_dir": raw}, stage="ingest")
    with pytest.raises(OutputOverlapError, match=r"'out_dir' must not be inside 'raw_dir'"):
        refuse_overlap({"out_dir": tmp_path / "link" / "volumes" / "new"}, {"raw_dir": raw}, stage="ingest")


def test_one_file_under_two_names_is_the_same_file(tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("series_key\n")
    os.link(index, tmp_path / "alias.csv")  # a hard link: no path comparison can see it
    with pytest.raises(OutputOverlapError, match=r"'out' must not be 'index'"):
        refuse_overlap({"out": tmp_path / "alias.csv"}, {"index": index}, stage="split")


def test_the_error_is_a_checked_input_error():
    assert issubclass(OutputOverlapError, PipelineInputError) and issubclass(FolderError, PipelineInputError)


def test_a_staged_folder_replaces_the_output_only_when_complete(tmp_path):
    out = tmp_path / "data" / "cache"
    with staged_folder(out, name="cache_dir", example="data/cache") as temp:
        assert temp == tmp_path / "data" / f".cache.tmp-{os.getpid()}" and not out.exists()
        (temp / "train.npy").write_bytes(b"new")
    assert _tree(out) == {"train.npy": b"new"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["cache"]


def test_a_failure_leaves_the_previous_output_and_no_temporary_folder(tmp_path):
    out = tmp_path / "cache"
    out.mkdir()
    (out / "train.npy").write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="killed"):
        with staged_folder(out, name="cache_dir", example="data/cache") as temp:
            (temp / "train.npy").write_bytes(b"half")
            raise RuntimeError("killed")
    assert _tree(out) == {"train.npy": b"previous"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_what_a_dead_run_left_is_removed_and_a_live_runs_is_kept(tmp_path):
    out = tmp_path / "ingested"
    out.mkdir()
    (out / "index.csv").write_text("complete\n")
    dead = tmp_path / f".ingested.tmp-{_dead_pid()}"
    (dead / "volumes").mkdir(parents=True)
    (dead / "volumes" / "half.nii.gz").write_bytes(b"\x1f\x8b")
    live = tmp_path / f".ingested.tmp-{os.getppid()}"  # our parent is running
    live.mkdir()
    unrelated = tmp_path / ".ingested.tmp-notapid"
    unrelated.mkdir()
    with staged_folder(out, name="out_dir", example="data/ingested") as temp:
        (temp / "index.csv").write_text("new\n")
    assert not dead.exists() and live.exists() and unrelated.exists()
    assert (out / "index.csv").read_text() == "new\n"


def test_a_previous_output_moved_aside_by_a_killed_run_is_put_back(tmp_path):
    # Killed between "move the old output aside" and "move the new one in".
    out = tmp_path / "cache"
    aside = tmp_path / f".cache.old-{_dead_pid()}"
    aside.mkdir()
    (aside / "meta.json").write_text("{}")
    clean_stale(out)
    assert _tree(out) == {"meta.json": b"{}"} and not aside.exists()


def test_the_folder_guards_still_hold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FolderError, match=r"'cache_dir' must be a folder of its own, since it is emptied first"):
        with staged_folder(Path("."), name="cache_dir", example="data/cache"):
            pass
    (tmp_path / "models").write_text("a file")
    with pytest.raises(FolderError, match=r"'model_dir' must be a folder; got the file"):
        with staged_folder(tmp_path / "models", name="model_dir", example="models"):
            pass
    assert (tmp_path / "keep.txt").read_text() == "precious"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_a_folder_holding_other_files_is_not_replaced(tmp_path):
    out = tmp_path / "ingested"
    (out / "volumes").mkdir(parents=True)
    (out / ".DS_Store").write_bytes(b"\0")  # a desktop's litter alone would not stop it
    (out / "Doe_Jane_notes.txt").write_text("someone's work")
    with pytest.raises(FolderError, match=r"'out_dir' must hold only this stage's outputs \(volumes, index.csv, "
                                          r"ledger.csv\), since it is replaced whole; got '.*' holding 1 other entry\. "
                                          r"Move them elsewhere") as error:
        with staged_folder(out, name="out_dir", example="data/ingested", contents=("volumes", "index.csv", "ledger.csv")):
            pass
    assert "Doe_Jane" not in str(error.value)
    assert (out / "Doe_Jane_notes.txt").exists()
    (out / "Doe_Jane_notes.txt").unlink()
    with staged_folder(out, name="out_dir", example="data/ingested", contents=("volumes", "index.csv", "ledger.csv")):
        pass


def test_an_atomic_file_keeps_the_old_content_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / "reports" / "metrics.json"
    write_atomic(path, json.dumps({"auc": 0.7}))
    with pytest.raises(RuntimeError):
        with atomic_file(path) as temp:
            temp.write_text('{"auc": 0.')
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"auc": 0.7}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]
    stale = path.parent / f".metrics.json.tmp-{_dead_pid()}"
    stale.write_text("{")
    write_atomic(path, b"{}")
    assert path.read_bytes() == b"{}" and not stale.exists()
    with pytest.raises(FolderError, match=r"must be a file to write; got a folder"):
        with atomic_file(tmp_path / "reports"):
            pass


def test_temp_siblings_are_named_after_the_output_and_the_process(tmp_path):
    assert temp_sibling(tmp_path / "split.csv") == tmp_path / f".split.csv.tmp-{os.getpid()}"
    assert temp_sibling(tmp_path / "cache", "old") == tmp_path / f".cache.old-{os.getpid()}"


def test_dvc_does_not_hash_what_a_killed_run_left_inside_an_output(tmp_path):
    (tmp_path / ".dvcignore").write_text((REPO / ".dvcignore").read_text())
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "test.json").write_text("[]\n")
    (plots / ".test.json.tmp-4242").write_text("[")
    (plots / ".pr.old-4242").mkdir()
    (plots / ".pr.old-4242" / "val.json").write_text("[]\n")
    for args in (["init", "--no-scm", "-q"], ["add", "-q", "plots"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp_path, check=True, capture_output=True)
    recorded = (tmp_path / "plots.dvc").read_text()
    assert "nfiles: 1" in recorded
