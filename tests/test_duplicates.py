"""The duplicate audit: exact and near copies across patients found, distinct images not."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import duplicates
from pipeline.duplicates import audit_index, exact_digest, find_matches, fingerprint
from pipeline.schema.tables import DUPLICATE_COLUMNS
from pipeline.tables import read_rows
from tests.duplicate_cohort import near_copy, smooth_image, write_cohort


def test_planted_copies_are_grouped_by_patient_and_distinct_images_are_not(tmp_path):
    index, expected = write_cohort(tmp_path)
    audit = audit_index(index, read_rows(index))
    assert {frozenset(g) for g in audit.groups} == {frozenset(g) for g in expected.values()}
    kinds = {(audit.series[m.a][1], audit.series[m.b][1]): m.kind for m in audit.matches}
    assert kinds[("p00", "p01")] == "exact" and kinds[("p04", "p05")] == "exact"
    assert kinds[("p02", "p03")] == "near" and kinds[("p07", "p08")] == "exact"
    assert ("p06", "p07") in kinds or ("p06", "p08") in kinds
    assert not audit.unread


def test_a_copy_within_one_patient_is_not_a_duplicate(tmp_path):
    index, _ = write_cohort(tmp_path)
    rows = read_rows(index)
    for row in rows:
        row["patient_id"] = {"p01": "p00", "p03": "p02"}.get(row["patient_id"], row["patient_id"])
    audit = audit_index(index, rows)
    assert not any({"p00", "p02"} & set(g) for g in audit.groups)


def test_table_holds_keys_kind_and_distance_only(tmp_path):
    index, _ = write_cohort(tmp_path)
    table = audit_index(index, read_rows(index)).table()
    assert set(table[0]) == set(DUPLICATE_COLUMNS)
    near = next(r for r in table if r["patient_a"] == "p02")
    assert near["kind"] == "near" and 0 < float(near["distance"]) <= duplicates.NEAR_MAX_DISTANCE
    assert {r["group"] for r in table} == {1, 2, 3, 4}


def test_an_unreadable_volume_is_counted_not_fatal(tmp_path):
    index, _ = write_cohort(tmp_path)
    (tmp_path / "volumes" / "sp10.nii.gz").write_bytes(b"not a nifti")
    (tmp_path / "volumes" / "sp11.nii.gz").unlink()
    audit = audit_index(index, read_rows(index))
    assert [key for key, _ in audit.unread] == ["sp10", "sp11"]
    assert len(audit.series) == 22 and len(audit.groups) == 4


def test_exact_digest_sees_values_dtype_and_shape_not_byte_order():
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert exact_digest(a) == exact_digest(a.astype(">i2"))
    assert exact_digest(a) != exact_digest(a.astype(np.int32))
    assert exact_digest(a) != exact_digest(a.reshape(4, 3))
    b = a.copy()
    b[1, 1] += 1
    assert exact_digest(a) != exact_digest(b)


@pytest.mark.parametrize("copy", [
    lambda im, rng: np.clip(im.astype(int) + 30, 0, 255).astype(np.uint8),  # brighter
    lambda im, rng: (im.astype(float) * 0.7).astype(np.uint8),  # less contrast
    lambda im, rng: near_copy(im, rng),  # noise and 32 grey levels
    lambda im, rng: np.repeat(np.repeat(im, 2, axis=0), 2, axis=1),  # resized
])
def test_near_copies_are_found(copy):
    rng = np.random.default_rng(1)
    image = smooth_image(rng)
    matches = find_matches([fingerprint(image), fingerprint(copy(image, rng))], ["a", "b"])
    assert [m.kind for m in matches] == ["near"]


def test_distinct_images_and_flat_images_are_not_near():
    rng = np.random.default_rng(2)
    images = [smooth_image(rng) for _ in range(200)]
    prints = [fingerprint(im) for im in images]
    assert find_matches(prints, [f"p{i}" for i in range(200)]) == []
    flat = [fingerprint(np.full((8, 8), 7, np.uint8)), fingerprint(np.full((8, 8), 9, np.uint8))]
    assert flat[0].signature is None and find_matches(flat, ["a", "b"]) == []


def test_bucketed_search_finds_what_all_pairs_finds(monkeypatch):
    rng = np.random.default_rng(3)
    images = [smooth_image(rng, size=24) for _ in range(300)]
    images += [near_copy(images[i], rng) for i in range(0, 300, 10)]
    prints = [fingerprint(im) for im in images]
    patients = [f"p{i}" for i in range(len(images))]
    everything = find_matches(prints, patients)
    monkeypatch.setattr(duplicates, "ALL_PAIRS_MAX", 10)
    bucketed = find_matches(prints, patients)
    assert bucketed == everything
    assert {(m.a, m.b) for m in everything} >= {(i, 300 + k) for k, i in enumerate(range(0, 300, 10))}


def test_colour_images_as_ingest_stores_them_are_compared_by_their_picture():
    """(X, Y, 1, 1, 3): channels on NIfTI's fifth axis; a near copy is found, a colour swap is exact-distinct."""
    rng = np.random.default_rng(4)
    a, b = smooth_image(rng), smooth_image(rng)
    colour = np.stack([a, b, a // 2], axis=-1)[:, :, None, None, :]
    brighter = np.clip(colour.astype(int) + 25, 0, 255).astype(np.uint8)
    other = np.stack([b, a, b // 2], axis=-1)[:, :, None, None, :]
    prints = [fingerprint(colour), fingerprint(brighter), fingerprint(other), fingerprint(colour.copy())]
    assert all(p.signature is not None for p in prints)
    matches = find_matches(prints, ["p1", "p2", "p3", "p4"])
    kinds = {(m.a, m.b): m.kind for m in matches}
    assert kinds[(0, 3)] == "exact" and kinds[(0, 1)] == "near"
    assert all(2 not in pair for pair in kinds)
