"""Emptying or replacing a stage's output folder without ever wiping more than that folder.

Stages that rebuild an output folder (the demo's raw files, the cache, the checkpoints)
remove it first, or replace it whole (:mod:`pipeline.outputs`). A typo in ``dvc.yaml``
(``.`` or ``..``) or on the command line must not take the repository with it, so the
filesystem root, the home folder, the working directory and its ancestors are refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.errors import PipelineInputError


class FolderError(PipelineInputError):
    """An output folder that must not be emptied or replaced (the root, home, cwd, a file)."""


def replaceable_folder(path: str | Path, *, name: str, example: str) -> Path:
    """Check that ``path`` may be emptied or replaced as a whole; return it resolved.

    Args:
        path: the output folder (it need not exist).
        name: what the folder is, for errors (the argument or key that set it).
        example: a sensible value to suggest.

    Raises:
        FolderError: ``path`` is the root, the home folder, the working directory or one
            of its ancestors, or an existing file.
    """
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in (cwd, *cwd.parents):
        raise FolderError(
            f"{name!r} must be a folder of its own, since it is emptied first; got {str(path)!r} "
            f"(resolves to {str(resolved)!r}). Use e.g. {example}."
        )
    if resolved.exists() and not resolved.is_dir():
        raise FolderError(f"{name!r} must be a folder; got the file {str(path)!r}. Remove it or pick another path.")
    return resolved


def empty_folder(path: str | Path, *, name: str, example: str) -> Path:
    """Remove ``path`` if it exists and create it empty; return it.

    Args:
        path: the output folder.
        name: what the folder is, for errors (the argument or key that set it).
        example: a sensible value to suggest.

    Raises:
        FolderError: see :func:`replaceable_folder`.
    """
    resolved = replaceable_folder(path, name=name, example=example)
    if resolved.exists():
        shutil.rmtree(resolved)
    resolved.mkdir(parents=True)
    return Path(path)
