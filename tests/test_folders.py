from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.folders import empty_folder


def test_empties_an_output_folder_and_recreates_it(tmp_path):
    out = tmp_path / "cache"
    (out / "old").mkdir(parents=True)
    (out / "old" / "stale.npy").write_text("x")
    assert empty_folder(out, name="cache_dir", example="data/cache") == out
    assert out.is_dir() and not any(out.iterdir())


@pytest.mark.parametrize("target", [".", ".."])
def test_refuses_the_working_directory_and_its_parents(tmp_path, monkeypatch, target):
    work = tmp_path / "repo"
    work.mkdir()
    (work / "keep.txt").write_text("precious")
    monkeypatch.chdir(work)
    with pytest.raises(ValueError, match=rf"'cache_dir' must be a folder of its own, since it is emptied first; "
                                         rf"got '\{target}'.*Use e.g. data/cache"):
        empty_folder(Path(target), name="cache_dir", example="data/cache")
    assert (work / "keep.txt").exists()


def test_refuses_a_file(tmp_path):
    path = tmp_path / "models"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match=r"'model_dir' must be a folder; got the file .*Remove it or pick another path"):
        empty_folder(path, name="model_dir", example="models")
    assert path.read_text() == "not a folder"
