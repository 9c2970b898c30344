"""Emptying a stage's output folder without ever wiping more than that folder.

Stages that rebuild an output folder (the demo's raw files, the cache, the checkpoints)
remove it first. A typo in ``dvc.yaml`` (``.`` or ``..``) or on the command line must not
take the repository with it, so the filesystem root, the home folder, the working
directory and its ancestors are refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def empty_folder(path: str | Path, *, name: str, example: str) -> Path:
    """Remove ``path`` if it exists and create it empty; return it.

    Args:
        path: the output folder.
        name: what the folder is, for errors (the argument or key that set it).
        example: a sensible value to suggest.

    Raises:
        ValueError: ``path`` is the root, the home folder, the working directory or one
            of its ancestors, or an existing file.
    """
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in (cwd, *cwd.parents):
        raise ValueError(
            f"{name!r} must be a folder of its own, since it is emptied first; got {str(path)!r} "
            f"(resolves to {str(resolved)!r}). Use e.g. {example}."
        )
    if resolved.exists() and not resolved.is_dir():
        raise ValueError(f"{name!r} must be a folder; got the file {str(path)!r}. Remove it or pick another path.")
    if resolved.exists():
        shutil.rmtree(resolved)
    resolved.mkdir(parents=True)
    return path
