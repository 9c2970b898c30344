"""Incremental ingest: what the store reuses, and that the result is a fresh run's, byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io.ingest import ingest_cohort
from pipeline.io.store import HEADERS_ADDED_FILE, HEADERS_FILE, IngestStore
from pipeline.outputs import OutputOverlapError
from tests.io.dicom_builders import PHI, write_ct_series, write_localizer
from tests.io.shipped import ingest_settings

KEY = "store-test-key-0123"


class Calls:
    """Records progress calls: the first count of a phase is what the store supplied."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.calls.append((phase, done, total))

    def first(self, phase: str) -> tuple[int, int]:
        return next((done, total) for p, done, total in self.calls if p == phase)


def _cohort(tmp_path: Path, n: int) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    lines = ["patient_id,label,path"]
    for i in range(n):
        folder = raw / f"Testperson_{i}"
        if not folder.exists():
            write_ct_series(folder, 4, seed=i)
        if i == 0 and not (folder / "loc").exists():
            write_localizer(folder / "loc", 1, seed=50)
        lines.append(f"MRN-{i:04d},{i % 2},Testperson_{i}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return raw, manifest


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _flip_last_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))


def _run(raw: Path, manifest: Path, out: Path, store: Path | None, key: str = KEY, **kw) -> Calls:
    calls = Calls()
    ingest_cohort(raw, manifest, out, pseudonym_key=key, store_dir=store, progress=calls, **ingest_settings(**kw))
    return calls


@pytest.mark.parametrize("volume_format", ["nii", "nii.gz"])
def test_reingest_after_adding_series_reads_only_the_new_ones_and_equals_a_fresh_run(
    tmp_path: Path, volume_format: str
) -> None:
    raw, manifest = _cohort(tmp_path, 3)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store, volume_format=volume_format)
    raw, manifest = _cohort(tmp_path, 5)  # two patients added

    again = _run(raw, manifest, tmp_path / "again", store, volume_format=volume_format, workers=2)
    _run(raw, manifest, tmp_path / "fresh", None, volume_format=volume_format)

    assert again.first("headers") == (3 * 4 + 1, 5 * 4 + 1)  # only the 8 new files read
    assert again.first("volumes") == (12, 20)  # the 3 old series linked, not built
    incremental, fresh = _snapshot(tmp_path / "again"), _snapshot(tmp_path / "fresh")
    assert sorted(incremental) == sorted(fresh) and len(fresh) == 3 + 5  # index, ledger, settings, 5 volumes
    for name in fresh:
        assert incremental[name] == fresh[name], name


def test_a_changed_file_or_param_is_read_again_and_still_equals_a_fresh_run(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 3)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    changed = sorted((raw / "Testperson_1").iterdir())[0]
    changed.write_bytes(changed.read_bytes())  # same bytes, new mtime: taken as changed

    again = _run(raw, manifest, tmp_path / "again", store)
    assert again.first("headers") == (12, 13)
    assert again.first("volumes") == (8, 12)
    _run(raw, manifest, tmp_path / "fresh", None)
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "fresh")

    other = _run(raw, manifest, tmp_path / "resampled", store, spacing_policy="resample")
    assert other.first("headers") == (0, 13) and other.first("volumes") == (0, 12)


def test_a_new_pseudonym_key_reuses_nothing(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 2)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    other = _run(raw, manifest, tmp_path / "again", store, key="another-key-4567")
    assert other.first("headers") == (0, 9) and other.first("volumes") == (0, 8)
    _run(raw, manifest, tmp_path / "fresh", None, key="another-key-4567")
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "fresh")
    assert _snapshot(tmp_path / "again") != _snapshot(tmp_path / "first")


def test_store_names_hold_no_identifier_and_unused_entries_go(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 3)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    names = [p.relative_to(store).as_posix() for p in store.rglob("*")]
    assert len([n for n in names if n.endswith(".nii")]) == 3
    identifiers = [*PHI.values(), "Testperson", "MRN-", "loc"]
    assert not [n for n in names if any(value.lower() in n.lower() for value in identifiers)]

    manifest.write_text("patient_id,label,path\nMRN-0000,0,Testperson_0\n")
    _run(raw, manifest, tmp_path / "second", store)
    assert len(list(store.rglob("*.nii"))) == 1


def test_a_killed_writer_leaves_nothing_that_is_used_and_is_cleaned(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 2)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    entry = next(store.rglob("*.json"))
    leftover = entry.parent / f".tmp-{pid}-{entry.stem}.nii"
    leftover.write_bytes(b"half a volume")
    entry.unlink()  # killed between the volume's rename and its report's: incomplete

    again = _run(raw, manifest, tmp_path / "again", store)
    assert not leftover.exists()
    assert again.first("volumes") == (4, 8)  # the incomplete entry was built again
    _run(raw, manifest, tmp_path / "fresh", None)
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "fresh")


def test_an_altered_or_foreign_header_file_is_ignored_not_loaded(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 2)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    _flip_last_byte(store / HEADERS_FILE)
    assert IngestStore(store, KEY, ()).load_headers() == {}
    again = _run(raw, manifest, tmp_path / "again", store)
    assert again.first("headers") == (0, 9)


def test_a_volume_written_through_its_link_is_not_served(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 1)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    volume = next((tmp_path / "first" / "volumes").iterdir())
    with volume.open("r+b") as handle:  # shares the store's inode when linked
        handle.seek(400)
        handle.write(b"\x7f\x7f")
    os.utime(volume, ns=(0, 10**18))
    shutil.rmtree(tmp_path / "first")
    _run(raw, manifest, tmp_path / "again", store)
    _run(raw, manifest, tmp_path / "fresh", None)
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "fresh")


def test_the_store_may_not_overlap_the_inputs_or_the_output(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 1)
    with pytest.raises(OutputOverlapError, match="'store' must not be inside 'raw_dir'"):
        _run(raw, manifest, tmp_path / "out", raw / "store")
    with pytest.raises(OutputOverlapError, match="'store' must not be inside 'out_dir'"):
        _run(raw, manifest, tmp_path / "out", tmp_path / "out" / "store")


def test_an_unchanged_run_leaves_the_header_file_alone_and_a_changed_one_rewrites_it(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 2)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    before = os.stat(store / HEADERS_FILE)
    again = _run(raw, manifest, tmp_path / "again", store)
    assert again.first("headers") == (9, 9)
    after = os.stat(store / HEADERS_FILE)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    raw, manifest = _cohort(tmp_path, 3)
    _run(raw, manifest, tmp_path / "third", store)
    assert os.stat(store / HEADERS_FILE).st_ino != before.st_ino  # replaced, with the new files' records
    assert _run(raw, manifest, tmp_path / "fourth", store).first("headers") == (13, 13)


def test_a_small_addition_writes_only_its_records_and_a_large_one_merges_them(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 8)  # 33 files
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    base = os.stat(store / HEADERS_FILE)
    assert not (store / HEADERS_ADDED_FILE).exists()

    raw, manifest = _cohort(tmp_path, 9)  # 4 new files, at most a quarter of 33: only they are written
    assert _run(raw, manifest, tmp_path / "second", store).first("headers") == (33, 37)
    assert (os.stat(store / HEADERS_FILE).st_ino, os.stat(store / HEADERS_FILE).st_mtime_ns) == (
        base.st_ino, base.st_mtime_ns)
    # 4 records against 33 (the series share their values, so the first 4 weigh the most)
    assert os.path.getsize(store / HEADERS_ADDED_FILE) < os.path.getsize(store / HEADERS_FILE) / 2
    again = _run(raw, manifest, tmp_path / "third", store)
    assert again.first("headers") == (37, 37)  # both files read back

    raw, manifest = _cohort(tmp_path, 11)  # 4 + 8 added pass a quarter of 33: one file again
    assert _run(raw, manifest, tmp_path / "fourth", store).first("headers") == (37, 45)
    assert os.stat(store / HEADERS_FILE).st_ino != base.st_ino
    assert not (store / HEADERS_ADDED_FILE).exists()
    assert _run(raw, manifest, tmp_path / "fifth", store).first("headers") == (45, 45)
    _run(raw, manifest, tmp_path / "fresh", None)
    assert _snapshot(tmp_path / "fifth") == _snapshot(tmp_path / "fresh")


def test_an_altered_added_file_costs_only_its_records(tmp_path: Path) -> None:
    raw, manifest = _cohort(tmp_path, 8)
    store = tmp_path / "store"
    _run(raw, manifest, tmp_path / "first", store)
    raw, manifest = _cohort(tmp_path, 9)
    _run(raw, manifest, tmp_path / "second", store)
    _flip_last_byte(store / HEADERS_ADDED_FILE)
    again = _run(raw, manifest, tmp_path / "again", store)
    assert again.first("headers") == (33, 37)  # the 4 added files read again, nothing unpickled from it
    _run(raw, manifest, tmp_path / "fresh", None)
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "fresh")


def test_a_file_changed_while_a_run_reads_it_matches_nothing_in_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.io import worker_pool

    raw, manifest = _cohort(tmp_path, 2)
    store = tmp_path / "store"
    victim = sorted((raw / "Testperson_1").iterdir())[0]
    original = worker_pool.read_headers

    def change_after_the_stat(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if victim.exists() and not (tmp_path / "done").exists():
            (tmp_path / "done").touch()
            victim.write_bytes(victim.read_bytes())  # after its lstat was taken, before it is read
        return original(*args, **kwargs)

    monkeypatch.setattr(worker_pool, "read_headers", change_after_the_stat)
    _run(raw, manifest, tmp_path / "first", store)
    monkeypatch.setattr(worker_pool, "read_headers", original)
    again = _run(raw, manifest, tmp_path / "again", store)
    assert again.first("headers") == (8, 9)  # the changed file is read again
    assert again.first("volumes") == (4, 8)  # and its series built again
    _run(raw, manifest, tmp_path / "fresh", None)
    assert _snapshot(tmp_path / "again") == _snapshot(tmp_path / "fresh")
