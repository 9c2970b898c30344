"""Which files each manifest row selects: by path, by UID, or both (they narrow each other).

A row must select at least one file, and no file may be selected by two rows; every
row breaking either rule is reported at once (:class:`pipeline.io.manifest_rows.RowError`).
"""

from __future__ import annotations

import bisect

from pipeline.io.manifest import Manifest
from pipeline.io.manifest_rows import ManifestRow, RowError
from pipeline.io.scan import FileRecord


def files_under(files: list[str], rel: str | None) -> list[str]:
    """The paths of ``files`` (sorted, as :func:`pipeline.io.tree.walk` returns them) that are ``rel`` or lie below it.

    Two binary searches per manifest row instead of a scan of every file: a hospital export
    has thousands of rows and hundreds of thousands of files.
    """
    if rel is None or rel == "":
        return files
    stem = rel.rstrip("/")
    below = files[bisect.bisect_left(files, stem + "/") : bisect.bisect_left(files, stem + "0")]  # "0" follows "/"
    at = bisect.bisect_left(files, rel)
    return ([rel] if at < len(files) and files[at] == rel else []) + below


def resolve_rows(
    manifest: Manifest, reach: dict[int, list[str]], records: dict[str, FileRecord], manifest_rel: str | None
) -> tuple[dict[int, list[str]], list[RowError]]:
    """Files each row selects; rows matching nothing or overlapping are errors.

    Args:
        manifest: the checked manifest.
        reach: each row's line -> the files under its ``path`` (:func:`files_under`).
        records: the header record of every file a row can reach.
        manifest_rel: the manifest's own path inside the raw folder, never selected.
    """
    errors: list[RowError] = []
    selected: dict[int, list[str]] = {}
    owner: dict[str, int] = {}
    by_series, by_study = _by_uid(records)
    for row in manifest.rows:
        if row.series_uid or row.study_uid:
            pool = by_series.get(row.series_uid, []) if row.series_uid else by_study.get(row.study_uid, [])
            if row.path is not None:
                within = set(reach[row.line])
                pool = [p for p in pool if p in within]
            paths = [p for p in pool if p != manifest_rel and _uid_match(records[p], row)]
        else:
            paths = [p for p in reach[row.line] if p != manifest_rel]
        problem = _selection_problem(row, paths, owner)
        if problem is not None:
            errors.append(problem)
            continue
        for path in paths:
            owner[path] = row.line
        selected[row.line] = paths
    return selected, errors


def _by_uid(records: dict[str, FileRecord]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Files by series and by study UID, built once: a UID row looks its files up instead of testing every file."""
    by_series: dict[str, list[str]] = {}
    by_study: dict[str, list[str]] = {}
    for path in sorted(records):
        by_series.setdefault(records[path].series_uid, []).append(path)
        by_study.setdefault(records[path].study_uid, []).append(path)
    return by_series, by_study


def _selection_problem(row: ManifestRow, paths: list[str], owner: dict[str, int]) -> RowError | None:
    """Why ``row`` may not select ``paths``: none at all, or files an earlier row selects."""
    if not paths:
        where = "under its path" if row.path is not None else "in the raw folder"
        return RowError(row.line, f"locator ({row.describe()}) must match at least one file; none {where} does.")
    clash = sorted({owner[p] for p in paths if p in owner})
    if clash:
        return RowError(row.line, f"locator ({row.describe()}) must not select files another row selects; "
                        f"it overlaps line(s) {clash}. Make the paths or UIDs disjoint.")
    return None


def _uid_match(record: FileRecord, row: ManifestRow) -> bool:
    if row.series_uid and record.series_uid != row.series_uid:
        return False
    if row.study_uid and record.study_uid != row.study_uid:
        return False
    return True
