"""Results of earlier ingest runs, kept between runs so unchanged series are not read again.

Ingest's output folder is replaced whole on every run (DVC clears it, and the stage
writes it aside), so what a run learned lives here instead, in a folder of its own
(``data/ingest-store``, a ``persist: true, cache: false`` out in dvc.yaml):

* ``headers.bin``: header records of the files runs read, keyed by the file's path and
  ``lstat`` (size, mtime, ctime, inode, mode). A file whose ``lstat`` is unchanged is not
  opened again. ``headers-added.bin`` holds the records read since ``headers.bin`` was
  last written: a run that adds a few series writes only those (a rewrite of every
  record cost a re-ingest more than its new series did), and the two are merged into
  one ``headers.bin`` once the added and no-longer-used records pass a quarter of it
  (:data:`COMPACT_SHARE`), so the pair holds at most that much beyond one cohort.
* ``volumes/<ab>/<name>.nii[.gz]`` + ``<name>.json``: a built volume and what its build
  reported (shape, spacing, notes). ``<name>`` is a keyed hash of everything the build
  reads: the series' plan, the ``lstat`` of each file it reads (which also stands for
  the file's header: header records are keyed by it), the params that shape the
  result, the source of ``pipeline/io`` and the library versions. Any change gives
  another name, so an entry is either exactly right or never looked up. Each file is
  stat'ed once per run, before it is read, so a file changed while a run reads it
  matches nothing in the next run.

Why ``lstat`` and not content hashes: a stat costs microseconds, hashing costs reading
every byte (about what ingest itself costs for uncompressed DICOM). The price: a file
rewritten in place with its size and both timestamps restored would be taken as
unchanged (ctime cannot be set back without changing the clock); a copy or checkout of
an unchanged file is read again (new ctime and inode), which costs time, not correctness.

Names are HMACs under the pseudonym key: a new key matches nothing (pseudonyms would
differ), and no name holds an identifier. The contents do: header records hold the
values the redactor must find in free text (patient names among them), as the raw
export does, so the store belongs where the raw data is and is never pushed (``cache:
false``). ``headers.bin`` is signed with the key: a file altered or written under
another key is ignored, never unpickled.

Every file is written under a temporary name and renamed into place, the volume before
its ``.json``: a run killed at any moment leaves complete entries or none. Volume
entries the latest run did not use are removed at its end, so the store holds one
cohort's volumes (and header records for at most a quarter more files).
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

STORE_LAYOUT = "ingest-store-1"
"""Bumped when the layout below changes; part of every name."""

HEADERS_FILE = "headers.bin"
HEADERS_ADDED_FILE = "headers-added.bin"
COMPACT_SHARE = 0.25
"""Records added or no longer used, as a share of ``headers.bin``'s, above which a save
rewrites ``headers.bin`` whole instead of writing only ``headers-added.bin``."""
VOLUMES = "volumes"
_TEMP = ".tmp-"
_DIGEST = hashlib.sha256().digest_size


def code_fingerprint(extra: tuple[str, ...] = ()) -> str:
    """A hash of ``pipeline/io``'s source and the versions of the libraries that shape outputs.

    A change to the code that reads or writes volumes must never be served from an
    entry an older version made.
    """
    import nibabel
    import numpy
    import pydicom

    digest = hashlib.sha256(STORE_LAYOUT.encode())
    folder = Path(__file__).resolve().parent
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    versions = (sys.version, numpy.__version__, nibabel.__version__, pydicom.__version__, *extra)
    digest.update(repr(versions).encode())
    return digest.hexdigest()


def file_state(full: str | Path) -> tuple[int, ...] | None:
    """What says a file is unchanged: mode, size, mtime, ctime (ns) and inode; ``None`` if gone."""
    try:
        stat = os.lstat(full)
    except OSError:
        return None
    return (stat.st_mode, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


class IngestStore:
    """One store folder, opened for one run with its key and settings.

    Args:
        root: the store folder (created if absent).
        key: the pseudonym key; every name and the header file's signature derive from it.
        settings: everything besides the inputs that shapes a result (params, format,
            :func:`code_fingerprint`); entries made under other settings are not found.
    """

    def __init__(self, root: str | Path, key: str, settings: tuple[str, ...]) -> None:
        self.root = Path(root)
        self._key = key.encode("utf-8")
        self._salt = json.dumps([STORE_LAYOUT, *settings])
        self._used: set[str] = set()
        self.hits = 0
        self._base: dict[tuple, object] = {}
        """The records of ``headers.bin`` as :meth:`load_headers` found them."""
        self.states: dict[str, tuple[int, ...] | None] = {}
        """:func:`file_state` of each file as this run first saw it (before reading it)."""
        (self.root / VOLUMES).mkdir(parents=True, exist_ok=True)
        _remove_stale(self.root)

    def name(self, description: str) -> str:
        """The entry name for ``description``: an HMAC, so it reveals nothing and needs the key."""
        message = (self._salt + "\0" + description).encode("utf-8", "surrogatepass")
        return hmac.digest(self._key, message, "sha256").hex()[:40]

    def load_headers(self) -> dict[tuple, object]:
        """The header records earlier runs kept, by ``(path, file_state)``; empty when none fits.

        A file that is missing, altered or signed under another key or settings counts as
        empty: its files are read again. The two files are checked each on its own; every
        record is keyed by the state of the file it describes, so any pair is correct.
        """
        self._base = self._load(HEADERS_FILE)
        added = self._load(HEADERS_ADDED_FILE)
        return {**self._base, **added} if added else dict(self._base)

    def save_headers(self, records: dict[tuple, object]) -> None:
        """Keep ``records`` (by ``(path, file_state)``) for the next run, in place of the last ones.

        Records ``headers.bin`` lacks go to ``headers-added.bin``; when they and the
        ``headers.bin`` records this run did not use pass :data:`COMPACT_SHARE` of it,
        ``headers.bin`` is rewritten with ``records`` alone and the added file removed.
        """
        base = self._base
        added = {key: record for key, record in records.items() if key not in base}
        unused = len(base) - (len(records) - len(added))
        if len(added) + unused > COMPACT_SHARE * len(base):
            self._dump(HEADERS_FILE, records)
            _unlink(self.root / HEADERS_ADDED_FILE)  # after: killed in between, both are still right
            self._base = dict(records)
        else:
            self._dump(HEADERS_ADDED_FILE, added)

    def _load(self, name: str) -> dict[tuple, object]:
        try:
            blob = (self.root / name).read_bytes()
        except OSError:
            return {}
        signature, payload = blob[:_DIGEST], blob[_DIGEST:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            return {}  # another key, other settings, or altered: read the files again
        # Thousands of small objects at once: the cyclic collector would scan the heap
        # several times over while they are made, and none of them forms a cycle.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return pickle.loads(payload)
        finally:
            if collecting:
                gc.enable()

    def _dump(self, name: str, records: dict[tuple, object]) -> None:
        payload = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
        _write_atomic(self.root / name, self._sign(payload) + payload)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, self._salt.encode() + payload, hashlib.sha256).digest()

    def fetch(self, name: str, suffix: str, dest: str | Path) -> dict | None:
        """Place entry ``name``'s volume at ``dest`` and return its build report, or ``None``.

        The volume is hard-linked when the store and ``dest`` share a disk (no copy, no
        extra space), else copied. An entry whose volume no longer has the size and mtime
        it was stored with (written through a link) is dropped.
        """
        volume, meta = self._paths(name, suffix)
        try:
            report = json.loads(meta.read_text(encoding="utf-8"))
            stat = os.stat(volume)
        except (OSError, ValueError):
            return None
        if [stat.st_size, stat.st_mtime_ns] != report.get("_file"):
            _unlink(meta)
            return None
        try:
            os.link(volume, dest)
        except OSError:
            shutil.copyfile(volume, dest)
        self._used.add(name)
        self.hits += 1
        return {k: v for k, v in report.items() if k != "_file"}

    def keep(self, name: str, suffix: str, source: str | Path, report: dict) -> None:
        """Add the volume at ``source`` with its build ``report`` (JSON-able) as entry ``name``."""
        volume, meta = self._paths(name, suffix)
        volume.parent.mkdir(parents=True, exist_ok=True)
        temp = volume.parent / f"{_TEMP}{os.getpid()}-{name}{suffix}"
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, volume)
        stat = os.stat(volume)
        _write_atomic(meta, json.dumps({**report, "_file": [stat.st_size, stat.st_mtime_ns]}).encode())
        self._used.add(name)

    def prune(self) -> int:
        """Remove the volume entries this run did not use; returns how many."""
        removed = 0
        for meta in (self.root / VOLUMES).glob("*/*.json"):
            if meta.stem in self._used:
                continue
            for path in meta.parent.glob(meta.stem + ".*"):
                _unlink(path)
            removed += 1
        return removed

    def _paths(self, name: str, suffix: str) -> tuple[Path, Path]:
        folder = self.root / VOLUMES / name[:2]
        return folder / f"{name}{suffix}", folder / f"{name}.json"


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.parent / f"{_TEMP}{os.getpid()}-{path.name}"
    temp.write_bytes(data)
    os.replace(temp, path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _remove_stale(root: Path) -> None:
    """Remove temporary files of store writers that are no longer running (killed runs)."""
    for temp in [*root.glob(f"{_TEMP}*"), *root.glob(f"{VOLUMES}/*/{_TEMP}*")]:
        pid = temp.name[len(_TEMP):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            _unlink(temp)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
