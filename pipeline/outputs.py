"""Stage outputs that never touch inputs and are never seen half-written.

Two rules every stage follows:

1. **Outputs never touch inputs.** Before it writes anything, a stage calls
   :func:`refuse_overlap`: an output that is, contains or lies inside one of its inputs
   is refused, because outputs are replaced whole and the input would go with them
   (``ingest X/volumes manifest.csv X`` once removed the raw folder). Paths are compared
   resolved (symlinks followed) and by file identity (device, inode), which also catches
   one folder under two spellings: a bind mount, a case-insensitive disk, a hard link.
2. **Outputs appear complete or not at all.** A stage writes into a temporary sibling
   (``.<name>.tmp-<pid>`` in the same folder, so the final move is a rename on one disk)
   and moves it into place when complete: :func:`staged_folder` for a folder,
   :func:`atomic_file` for a file. A stage killed at any moment leaves the previous
   output (or none) in place, never a ledger, index or cache that a later stage or
   ``dvc repro`` could take for complete. The next run removes what a dead run left
   (:func:`clean_stale`); ``.dvcignore`` keeps DVC from hashing such leftovers.

Only the standard library is imported, so any stage may use this module before its
heavy imports.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from pipeline.errors import PipelineInputError
from pipeline.folders import FolderError, replaceable_folder

_KINDS = ("tmp", "old")  # a folder being written; a previous output moved aside
# Files a desktop drops into any folder it shows: not someone's work, never a reason to refuse.
_OS_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


class OutputOverlapError(PipelineInputError):
    """An output path that is, contains or lies inside one of the stage's inputs."""


def refuse_overlap(
    outputs: Mapping[str, str | Path | None],
    inputs: Mapping[str, str | Path | None],
    *,
    stage: str,
) -> None:
    """Raise unless every output is disjoint from every input.

    Args:
        outputs: argument name -> output path (``None`` entries are skipped).
        inputs: argument name -> input path (``None`` entries are skipped).
        stage: the stage, for the fix (``dvc.yaml`` lists its paths).

    Raises:
        OutputOverlapError: naming both arguments, both paths and the fix.
    """
    for out_name, out in outputs.items():
        for in_name, inp in inputs.items():
            if out is None or inp is None:
                continue
            relation = _relation(Path(out), Path(inp))
            if relation is None:
                continue
            raise OutputOverlapError(
                f"{out_name!r} must not {relation} {in_name!r}; got {out_name} {str(out)!r} "
                f"(resolves to {str(Path(out).resolve())!r}) and {in_name} {str(inp)!r} "
                f"(resolves to {str(Path(inp).resolve())!r}). The {stage} stage replaces its outputs whole, "
                f"so the input, or part of it, would be lost. Give {out_name!r} a path of its own, outside every input "
                "(the paths in dvc.yaml are safe)."
            )


def _relation(out: Path, inp: Path) -> str | None:
    """``"be"``, ``"contain"`` or ``"be inside"`` when ``out`` overlaps ``inp``; else ``None``."""
    out, inp = out.resolve(), inp.resolve()
    if out == inp:
        return "be"
    if out in inp.parents:
        return "contain"
    if inp in out.parents:
        return "be inside"
    out_chain, in_chain = _identities(out), _identities(inp)
    if out_chain[0] is not None and out_chain[0] == in_chain[0]:
        return "be"
    if out_chain[0] is not None and out_chain[0] in in_chain[1:]:
        return "contain"
    if in_chain[0] is not None and in_chain[0] in out_chain[1:]:
        return "be inside"
    return None


def _identities(path: Path) -> list[tuple[int, int] | None]:
    """(device, inode) of ``path`` (``None`` if absent), then of each existing ancestor."""
    chain: list[tuple[int, int] | None] = []
    for each in (path, *path.parents):
        try:
            stat = each.stat()
        except OSError:
            if each == path:
                chain.append(None)
            continue
        chain.append((stat.st_dev, stat.st_ino))
    return chain


def temp_sibling(path: Path, kind: str = "tmp") -> Path:
    """``.<name>.<kind>-<pid>`` next to ``path``: hidden, on the same disk, owned by this process."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}"


def clean_stale(path: Path) -> None:
    """Remove the temporary siblings of ``path`` left by runs that are no longer running.

    A previous output moved aside (``.old-<pid>``) by a run killed before the new one
    took its place is moved back when ``path`` is absent: it was complete.
    """
    if not path.parent.is_dir():
        return
    for entry in sorted(path.parent.iterdir()):
        for kind in _KINDS:
            prefix = f".{path.name}.{kind}-"
            pid = entry.name[len(prefix):]
            if not entry.name.startswith(prefix) or not pid.isdigit() or _running(int(pid)):
                continue
            if kind == "old" and not os.path.lexists(path):
                os.replace(entry, path)
            else:
                # A pool worker of the dead run may still be finishing a file in it: what
                # cannot be removed now is hidden, ignored by DVC, and removed next time.
                _remove(entry, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether another live process has this id (then its temporary files are its own)."""
    if pid == os.getpid():
        return False
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def _remove(path: Path, *, ignore_errors: bool = False) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    try:
        path.unlink(missing_ok=True)
    except OSError:
        if not ignore_errors:
            raise


def publish_folder(temp: Path, final: Path) -> None:
    """Move the complete folder ``temp`` to ``final``, replacing what is there.

    The previous output is renamed aside first and removed last, so at every moment
    ``final`` is either the previous complete output, absent, or the new one.
    """
    if os.path.lexists(final):
        old = temp_sibling(final, "old")
        os.replace(final, old)
        os.replace(temp, final)
        _remove(old)
    else:
        os.replace(temp, final)


@contextmanager
def staged_folder(
    path: str | Path, *, name: str, example: str, contents: tuple[str, ...] | None = None
) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``path`` when the block completes.

    On an exception (or a kill) ``path`` is left as it was; the temporary folder is
    removed now, or by the next run after a kill.

    Args:
        path: the output folder; its guards are those of
            :func:`pipeline.folders.replaceable_folder` (never the root, home, cwd).
        name: the argument that set it, for errors.
        example: a sensible value to suggest.
        contents: when given, the only names an existing ``path`` may hold: a folder
            holding anything else was not written by this stage and is refused rather
            than replaced.

    Raises:
        FolderError: ``path`` may not be replaced.
    """
    final = replaceable_folder(path, name=name, example=example)
    if contents is not None and final.is_dir():
        foreign = [entry for entry in final.iterdir() if entry.name not in (*contents, *_OS_LITTER)]
        if foreign:
            # Counted, not named: a stray file name may be a patient's.
            raise FolderError(
                f"{name!r} must hold only this stage's outputs ({', '.join(contents)}), since it is replaced "
                f"whole; got {str(path)!r} holding {len(foreign)} other entr{'y' if len(foreign) == 1 else 'ies'}. "
                f"Move them elsewhere or pick another folder, e.g. {example}."
            )
    clean_stale(final)
    temp = temp_sibling(final)
    temp.mkdir(parents=True)
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    publish_folder(temp, final)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block completes.

    The file is flushed to disk before the rename, so ``path`` holds either the old
    content or the complete new one, even after a power cut.

    Example::

        with atomic_file(predictions_csv) as temp:
            write_rows(temp, rows, columns)

    Raises:
        FolderError: ``path`` is an existing folder.
    """
    final = Path(path)
    if final.is_dir():
        raise FolderError(f"{str(path)!r} must be a file to write; got a folder. Remove it or pick another path.")
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    temp = temp_sibling(final)
    try:
        yield temp
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as temp:
        temp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
