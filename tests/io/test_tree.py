"""Walking the raw folder: every entry that is not a folder, and which of them may be opened."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.io.tree import not_regular, walk


def test_walk_lists_every_file_including_hidden_ones(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.dcm").write_bytes(b"1")
    (tmp_path / ".DS_Store").write_bytes(b"1")
    assert walk(tmp_path) == [".DS_Store", "a/b/x.dcm"]


def test_not_regular_names_why_each_special_entry_is_never_opened(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "inside").mkdir(parents=True)
    (raw / "inside" / "file.dcm").write_bytes(b"1")
    (tmp_path / "outside.txt").write_text("root:x:0:0")
    os.symlink(tmp_path / "outside.txt", raw / "to_outside")
    os.symlink(raw / "inside" / "file.dcm", raw / "to_inside")
    os.symlink(raw / "inside", raw / "to_folder")
    os.symlink(tmp_path / "nothing", raw / "broken")
    os.mkfifo(raw / "pipe")
    assert walk(raw) == ["broken", "inside/file.dcm", "pipe", "to_folder", "to_inside", "to_outside"]
    reasons = {rel: not_regular(str(raw), str(raw / rel)) for rel in walk(raw)}
    assert reasons == {
        "broken": "broken symbolic link (its target does not exist); not followed",
        "inside/file.dcm": "",
        "pipe": "not a regular file: a FIFO (named pipe); never opened",
        "to_folder": "symbolic link to a folder inside the raw folder; not followed, its files have rows of their own",
        "to_inside": "",
        "to_outside": "symbolic link to a target outside the raw folder; not followed (copy the file in instead)",
    }


def test_walk_gives_the_relative_posix_path_of_every_entry_whatever_its_name(tmp_path: Path) -> None:
    names = ["plain.dcm", "with space", "back\\slash", ".hidden", "-dash", "ü.dcm", os.fsdecode(b"M\xfcller.dcm")]
    for folder in ("", "a", "a/b c", "a/b c/.d", "ü"):
        for name in names:
            (tmp_path / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / name).write_bytes(b"1")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b c" / "loop")
    expected = []
    for folder, dirs, files in os.walk(tmp_path):  # the path of each entry, one at a time
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            expected.append(Path(os.path.relpath(os.path.join(folder, name), tmp_path)).as_posix())
    assert walk(tmp_path) == sorted(expected)
    assert len(expected) == 5 * len(names) + 1 and "a/b c/loop" in expected and "plain.dcm" in expected
