"""Grouping headers into candidate series: localizers, orientations and duplicate objects apart."""

from __future__ import annotations

from pathlib import Path

from pipeline.io.series import group_series
from tests.io.dicom_builders import image_headers, write_ct_series, write_localizer


def test_a_localizer_in_the_same_folder_is_a_separate_candidate(tmp_path: Path) -> None:
    write_ct_series(tmp_path, 10)
    write_localizer(tmp_path, 2)
    candidates, _ = group_series(image_headers(tmp_path))
    assert sorted(c.n_planes for c in candidates) == [2, 10]


def test_one_series_uid_with_two_orientations_is_split(tmp_path: Path) -> None:
    info = write_ct_series(tmp_path / "a", 6)
    write_ct_series(tmp_path / "a", 3, seed=4, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), series_uid=info["series_uid"])
    candidates, _ = group_series(image_headers(tmp_path / "a"))
    assert sorted(c.n_planes for c in candidates) == [3, 6]


def test_a_duplicate_object_is_kept_once_and_recorded(tmp_path: Path) -> None:
    write_ct_series(tmp_path, 6, duplicate=(2,))
    candidates, skipped = group_series(image_headers(tmp_path))
    assert len(skipped) == 1 and "duplicate SOPInstanceUID" in next(iter(skipped.values()))
    assert candidates[0].n_planes == 6
