"""Patient-level train/val/test assignment.

Splitting happens once, here, on patients, never on series or slices: two series of one
patient in different parts would leak the patient's anatomy into the test set and
inflate every metric downstream. The result is a versioned DVC output that the
DataModule only reads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.schema.tables import PARTS


class SplitError(PipelineInputError):
    """The index cannot be split without leaking or without a usable part."""


@dataclass(frozen=True)
class PatientSplit:
    """One patient's part and label (1 when any of their series is positive)."""

    patient_id: str
    split: str
    label: int


def patient_labels(rows: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """Label per patient: positive when any series is positive.

    Raises:
        SplitError: when a label is not 0 or 1 (rows named by position).
    """
    labels: dict[str, int] = {}
    bad = []
    for i, row in enumerate(rows):
        value = str(row.get("label", "")).strip()
        if value not in ("0", "1"):
            bad.append(f"row {i + 1} (patient {row.get('patient_id')!r}): label {value!r}")
            continue
        pid = row["patient_id"]
        labels[pid] = max(labels.get(pid, 0), int(value))
    if bad:
        raise SplitError("'label' must be 0 or 1 in every index row; got " + "; ".join(bad) + ". Fix the manifest.")
    return labels


def given_splits(rows: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Parts fixed by the manifest's ``split`` column, per patient.

    Rows with an empty ``split`` are left to the seeded rule. A patient given two parts
    is refused: that is exactly the leak this stage exists to prevent.

    Raises:
        SplitError: for an unknown part name or a patient with two parts, listing all.
    """
    seen: dict[str, set[str]] = defaultdict(set)
    bad_values = []
    for i, row in enumerate(rows):
        value = str(row.get("split") or "").strip().lower()
        if not value:
            continue
        if value not in PARTS:
            bad_values.append(f"row {i + 1}: {value!r}")
            continue
        seen[row["patient_id"]].add(value)
    if bad_values:
        raise SplitError(f"'split' must be one of {list(PARTS)} or empty; got " + "; ".join(bad_values) + ".")
    leaking = {pid: sorted(parts) for pid, parts in seen.items() if len(parts) > 1}
    if leaking:
        listed = "; ".join(f"{pid}: {parts}" for pid, parts in sorted(leaking.items()))
        raise SplitError(
            f"each patient must be in one part only; {len(leaking)} patient(s) are in several: {listed}. "
            "Give every series of a patient the same 'split' in the manifest."
        )
    return {pid: next(iter(parts)) for pid, parts in seen.items()}


def assign_splits(
    rows: Sequence[Mapping[str, str]],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    groups: Sequence[Sequence[str]] = (),
) -> list[PatientSplit]:
    """Assign every patient to train, val or test, stratified by label.

    Patients whose part the manifest fixes keep it. The others are shuffled per label
    with ``seed`` and cut by the fractions, rounding so that each part gets at least one
    patient of a class when that class has three or more free patients (a val or test
    part with one class only makes AUC undefined).

    Args:
        rows: index rows with ``patient_id``, ``label`` and optionally ``split``.
        seed: shuffling seed.
        val_fraction: share of free patients for validation.
        test_fraction: share of free patients for test.
        groups: patients that must share a part (the same image under several
            patients); each group moves as one unit, positive when any member is, and
            goes where the manifest fixes any of its members.

    Returns:
        One :class:`PatientSplit` per patient, sorted by patient id.

    Raises:
        SplitError: also when the manifest fixes members of one group to different parts.
    """
    if not rows:
        raise SplitError("the index must hold at least one series; got none. Check the ingest ledger for why.")
    labels = patient_labels(rows)
    fixed = given_splits(rows)
    units = _units(labels, groups)
    unit_fixed = _unit_parts(units, fixed)
    rng = np.random.default_rng(seed)
    parts = dict(fixed)
    for label in (0, 1):
        free = sorted(key for key, members in units.items()
                      if max(labels[p] for p in members) == label and key not in unit_fixed)
        order = [free[i] for i in rng.permutation(len(free))]
        n_val, n_test = _part_sizes(sum(len(units[k]) for k in order), val_fraction, test_fraction)
        placed = 0
        for key in order:
            part = "val" if placed < n_val else "test" if placed < n_val + n_test else "train"
            parts.update({pid: part for pid in units[key]})
            placed += len(units[key])
    for key, part in unit_fixed.items():
        parts.update({pid: part for pid in units[key]})
    # One part per patient holds by construction: ``parts`` is keyed by patient, and a
    # manifest giving a patient two parts was refused by given_splits.
    return [PatientSplit(pid, parts[pid], labels[pid]) for pid in sorted(labels)]


def _units(labels: Mapping[str, int], groups: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Units of assignment keyed by their first patient: a group, or one patient alone."""
    grouped = {pid for group in groups for pid in group}
    units = {pid: [pid] for pid in labels if pid not in grouped}
    for group in groups:
        members = sorted(pid for pid in group if pid in labels)
        if members:
            units[members[0]] = members
    return units


def _unit_parts(units: Mapping[str, list[str]], fixed: Mapping[str, str]) -> dict[str, str]:
    """The part the manifest fixes for each unit; a group fixed to two parts is refused."""
    unit_fixed: dict[str, str] = {}
    conflicts = []
    for key, members in units.items():
        given = {fixed[p] for p in members if p in fixed}
        if len(given) > 1:
            conflicts.append(", ".join(f"{p}: {fixed[p]}" for p in members if p in fixed))
        elif given:
            unit_fixed[key] = given.pop()
    if conflicts:
        raise SplitError(
            f"patients showing the same image must share one part; the manifest's 'split' puts "
            f"{len(conflicts)} such group(s) in several: " + "; ".join(f"[{c}]" for c in conflicts)
            + ". Give them one 'split' (see data/duplicates.csv), or set split.duplicates: ignore."
        )
    return unit_fixed


def _part_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
        while n_val + n_test >= n:
            # Keep at least one patient of the class for training.
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
    return n_val, n_test


def summarise(splits: Sequence[PatientSplit]) -> dict[str, dict[str, int]]:
    """Counts of patients per part and label, for the stage's summary line."""
    counts: dict[str, dict[str, int]] = {p: {"patients": 0, "positive": 0} for p in PARTS}
    for s in splits:
        counts[s.split]["patients"] += 1
        counts[s.split]["positive"] += s.label
    return counts


def assign_folds(
    splits: Sequence[PatientSplit], *, k: int, seed: int, groups: Sequence[Sequence[str]] = ()
) -> dict[str, int]:
    """Deal the patients outside test into ``k`` cross-validation folds, stratified by label.

    Test patients stay out of every fold (they are scored by the fold models' mean). The
    others, train and val alike, are shuffled per label with ``seed`` and each unit (a
    patient, or a group sharing an image, as in :func:`assign_splits`) goes to the fold
    with the fewest patients of its label so far, then the fewest patients: each fold
    ends with the same number of positives, give or take one.

    Returns:
        Patient id -> fold (0 to ``k - 1``) for every patient outside test.

    Raises:
        SplitError: a label with fewer than ``2 * k`` patients outside test, which would
            leave a fold with fewer than two of that class and its AUC interval undefined.
    """
    labels = {s.patient_id: s.label for s in splits if s.split != "test"}
    units = _units(labels, [[p for p in group if p in labels] for group in groups])
    unit_label = {key: max(labels[p] for p in members) for key, members in units.items()}
    for label in (0, 1):
        n = sum(len(units[key]) for key in units if unit_label[key] == label)
        n_units = sum(unit_label[key] == label for key in units)
        if n_units < 2 * k:
            raise SplitError(
                f"split.folds: {k} needs at least {2 * k} {'positive' if label else 'negative'} patients outside test "
                f"so that every fold holds two of each class (its AUC and DeLong interval need them); got {n} (in "
                f"{n_units} unit(s) after keeping duplicate groups together). Lower split.folds, or split.test_fraction."
            )
    rng = np.random.default_rng(seed)
    size = np.zeros((k, 2), dtype=np.int64)  # patients per fold and label
    folds: dict[str, int] = {}
    for label in (0, 1):
        keys = sorted(key for key in units if unit_label[key] == label)
        for key in (keys[i] for i in rng.permutation(len(keys))):
            fold = min(range(k), key=lambda f: (size[f, label], size[f].sum(), f))
            size[fold, label] += len(units[key])
            folds.update({pid: fold for pid in units[key]})
    return folds
