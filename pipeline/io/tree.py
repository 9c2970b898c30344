"""Which entries a raw folder holds, and which of them may be opened as files.

Every entry that is not a folder counts, hidden files included: a ledger that hides
``.DS_Store`` would not add up. So does anything that is not a regular file inside the
raw folder (a symbolic link whose target lies outside it or is missing, a FIFO, a
socket, a device); it gets a ledger row but is never opened: opening a FIFO blocks
forever, and a link to ``/etc/passwd`` is not data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def walk(raw_dir: str | Path) -> list[str]:
    """Every entry under ``raw_dir`` that is not a folder, as sorted POSIX paths relative to it.

    Hidden files count too, and so do symbolic links (to files or folders, broken or
    not), FIFOs, sockets and devices, and a folder that cannot be listed: each gets a
    ledger row, and :func:`not_regular` says which must not be opened. Links to folders
    are not descended into, so a file is found once, under its own path.
    """
    root = str(raw_dir)
    found = []

    def unlisted(error: OSError) -> None:
        if error.filename and os.path.abspath(error.filename) != os.path.abspath(root):
            found.append(Path(os.path.relpath(error.filename, root)).as_posix())

    for folder, dirs, files in os.walk(root, followlinks=False, onerror=unlisted):
        linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        # One relative path per folder; a name is one component, joined by string (a
        # path object per file cost more than the listing on a 10,000-file export).
        inside = os.path.relpath(folder, root)
        prefix = "" if inside == os.curdir else Path(inside).as_posix() + "/"
        found.extend(prefix + name for name in files + linked)
    return sorted(found)


def not_regular(root: str, full: str) -> str:
    """Why ``full`` must not be opened as a file of the raw folder ``root``; '' when it may.

    Only ``lstat``/``stat``/``realpath`` are used: none of them opens the entry.
    """
    mode = os.lstat(full).st_mode
    if stat.S_ISLNK(mode):
        target = os.path.realpath(full)
        real_root = os.path.realpath(root)
        if not os.path.exists(target):
            return "broken symbolic link (its target does not exist); not followed"
        if os.path.commonpath([target, real_root]) != real_root:
            return "symbolic link to a target outside the raw folder; not followed (copy the file in instead)"
        mode = os.stat(full).st_mode
        if stat.S_ISDIR(mode):
            return "symbolic link to a folder inside the raw folder; not followed, its files have rows of their own"
    if stat.S_ISDIR(mode):
        return "folder that cannot be listed (permission denied?); its files are not counted"
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
        kind = next((words for test, words in kinds if test(mode)), "not a regular file")
        return f"not a regular file: {kind}; never opened"
    return ""
