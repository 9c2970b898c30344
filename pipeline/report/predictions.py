"""Read ``predictions.csv``, reject bad rows by line number, and aggregate series to patients.

The train stage writes one row per series; a study's unit of analysis is the patient, so
every metric is computed after aggregating a patient's series (``max``: the patient is
as suspicious as their most suspicious series; ``mean``: an average). Counting series as
independent cases would shrink every confidence interval for no reason.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.rules import AGGREGATES, check_choice
# series_key is used when present (one row per series, as the train stage writes); a file
# from another group's model may have one row per patient and no such column.
from pipeline.schema.tables import PREDICTION_OPTIONAL, PREDICTION_REQUIRED, SCORED_PARTS

MAX_SUBGROUP_LEVELS = 20
# Columns that would put identifying data into a report if used as subgroups; ingest
# should never let them through, and the report refuses them if it does.
PHI_COLUMNS = frozenset(
    {
        "patientname",
        "patientid",
        "patientbirthdate",
        "birthdate",
        "accessionnumber",
        "institutionname",
        "institutionaddress",
        "referringphysicianname",
        "otherpatientids",
    }
)
_SHOWN_LINES = 10


class PredictionsError(PipelineInputError):
    """``predictions.csv`` breaks a rule; the message names the rule, the lines and the fix."""


@dataclass(frozen=True)
class PatientTable:
    """One row per patient after aggregation; every array has shape ``(P,)``.

    Attributes:
        patient_id: pseudonymised identifiers (never written to outputs).
        split: ``"val"`` or ``"test"``.
        label: 0/1.
        score: aggregated score, any finite real number (a probability, a logit, a rating).
        n_series: rows (series) that contributed to the score.
        attributes: subgroup column -> level per patient (a patient whose series
            disagree gets the sorted levels joined by ``"+"``).
        aggregate: ``"max"`` or ``"mean"``.
        n_rows: rows read from the file (series).
    """

    patient_id: np.ndarray
    split: np.ndarray
    label: np.ndarray
    score: np.ndarray
    n_series: np.ndarray
    attributes: dict[str, np.ndarray]
    aggregate: str
    n_rows: int

    def select(self, split: str) -> "PatientTable":
        """The patients of one split, in the same order."""
        mask = self.split == split
        return PatientTable(
            patient_id=self.patient_id[mask],
            split=self.split[mask],
            label=self.label[mask],
            score=self.score[mask],
            n_series=self.n_series[mask],
            attributes={k: v[mask] for k, v in self.attributes.items()},
            aggregate=self.aggregate,
            n_rows=int(self.n_series[mask].sum()),
        )


def _lines(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:_SHOWN_LINES])
    more = f" and {len(lines) - _SHOWN_LINES} more" if len(lines) > _SHOWN_LINES else ""
    return f"line(s) {shown}{more}"


def read_predictions(path: str | Path, *, aggregate: str) -> PatientTable:
    """Read, validate and aggregate a predictions file.

    Every rule is checked on every row before failing, and the message lists the
    offending line numbers (1 is the header), so a user fixes the file in one pass.

    Args:
        path: CSV with columns ``patient_id, split, label, score``, optionally
            ``series_key``, and any number of extra (subgroup, reader) columns. Scores
            may be any finite numbers; probability-only metrics check their range later.
        aggregate: how a patient's series scores combine, one of
            :data:`pipeline.rules.AGGREGATES` (``"max"`` or ``"mean"``).

    Returns:
        A :class:`PatientTable` ordered by split then patient identifier.

    Raises:
        ConfigError: an unknown ``aggregate``.
        PredictionsError: missing file or columns, no rows, labels not 0/1, scores NaN,
            infinite or not numbers, splits other than val/test, or a patient whose series
            disagree on label or split.
    """
    check_choice("aggregate", aggregate, AGGREGATES)
    path = Path(path)
    header, rows, bad = _read_rows(path)
    col = {h: i for i, h in enumerate(header)}
    series = _parse_rows(path, rows, col, bad)
    extra = [h for h in header if h not in PREDICTION_REQUIRED + PREDICTION_OPTIONAL]
    return _by_patient(series, {c: [values[col[c]] for _, values in rows] for c in extra}, aggregate)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], dict[str, list[int]]]:
    """The header, the data rows as ``(line, stripped cells)``, and rules broken so far -> lines."""
    if not path.is_file():
        raise PredictionsError(
            f"predictions file {str(path)!r} must exist; it was not found. Run the train stage first (dvc repro train)."
        )
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise PredictionsError(f"predictions file {str(path)!r} must have a header row; the file is empty.")
        header = [h.strip() for h in header]
        missing = [c for c in PREDICTION_REQUIRED if c not in header]
        if missing:
            raise PredictionsError(
                f"predictions file {str(path)!r} must have columns {list(PREDICTION_REQUIRED)}; missing {missing}, "
                f"found {header}."
            )
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            raise PredictionsError(f"predictions file {str(path)!r} must have unique column names; got {duplicated} twice.")
        rows: list[tuple[int, list[str]]] = []
        bad: dict[str, list[int]] = defaultdict(list)
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                bad[f"rows must have {len(header)} fields"].append(line)
                continue
            rows.append((line, [v.strip() for v in values]))
    if not rows and not bad:
        raise PredictionsError(f"predictions file {str(path)!r} must have at least one data row; it has none.")
    return header, rows, bad


@dataclass(frozen=True)
class _Series:
    """The rows of the file, one entry per series, in file order."""

    patient_id: list[str]
    split: list[str]
    label: list[int]
    score: list[float]
    line: list[int]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _parse_rows(path: Path, rows: list[tuple[int, list[str]]], col: dict[str, int], bad: dict[str, list[int]]) -> _Series:
    """Every rule checked on every row; one error listing the lines of each broken rule."""
    series = _Series([], [], [], [], [])
    for line, values in rows:
        s, lab = _number(values[col["score"]]), _number(values[col["label"]])
        if not math.isfinite(s):
            bad["'score' must be a finite number (a probability, logit or rating)"].append(line)
        if lab not in (0.0, 1.0):
            bad["'label' must be 0 or 1"].append(line)
        if values[col["split"]] not in SCORED_PARTS:
            bad[f"'split' must be one of {list(SCORED_PARTS)}"].append(line)
        if not values[col["patient_id"]]:
            bad["'patient_id' must not be empty"].append(line)
        series.patient_id.append(values[col["patient_id"]])
        series.split.append(values[col["split"]])
        series.label.append(int(lab) if lab in (0.0, 1.0) else -1)
        series.score.append(s)
        series.line.append(line)
    if bad:
        problems = "; ".join(f"{rule}: {_lines(found)}" for rule, found in bad.items())
        raise PredictionsError(
            f"predictions file {str(path)!r} has rows breaking the rules: {problems}. "
            "Fix or remove these rows and run the stage again."
        )
    return series


def _by_patient(series: _Series, extra: dict[str, list[str]], aggregate: str) -> PatientTable:
    """One row per patient: the series' scores combined, their extra columns' levels joined."""
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, pid in enumerate(series.patient_id):
        by_patient[pid].append(i)
    conflicts: list[str] = []
    out_pid, out_split, out_label, out_score, out_n = [], [], [], [], []
    out_attr: dict[str, list[str]] = {c: [] for c in extra}
    for pid, idx in by_patient.items():
        for what, values in (("split", series.split), ("label", series.label)):
            seen = sorted({values[i] for i in idx}, key=str)
            if len(seen) > 1:
                conflicts.append(f"patient {pid!r} has {what} {seen} on {_lines([series.line[i] for i in idx])}")
        scores = [series.score[i] for i in idx]
        out_pid.append(pid)
        out_split.append(series.split[idx[0]])
        out_label.append(series.label[idx[0]])
        out_score.append(max(scores) if aggregate == "max" else sum(scores) / len(scores))
        out_n.append(len(idx))
        for c, cells in extra.items():
            out_attr[c].append("+".join(sorted({cells[i] or "(missing)" for i in idx})))
    if conflicts:
        raise PredictionsError(
            "each patient must have one split and one label across their series; got "
            + "; ".join(conflicts[:_SHOWN_LINES])
            + (f" and {len(conflicts) - _SHOWN_LINES} more" if len(conflicts) > _SHOWN_LINES else "")
            + ". A patient in two splits leaks data between them: fix the split stage output."
        )
    # val, test, then any other group (an external site's patients), each by identifier
    order = sorted(range(len(out_pid)), key=lambda i: (
        SCORED_PARTS.index(out_split[i]) if out_split[i] in SCORED_PARTS else len(SCORED_PARTS), out_pid[i]))
    pick = np.asarray(order, dtype=int)
    return PatientTable(
        patient_id=np.asarray(out_pid, dtype=object)[pick],
        split=np.asarray(out_split, dtype=object)[pick],
        label=np.asarray(out_label, dtype=np.int8)[pick],
        score=np.asarray(out_score, dtype=float)[pick],
        n_series=np.asarray(out_n, dtype=int)[pick],
        attributes={c: np.asarray(v, dtype=object)[pick] for c, v in out_attr.items()},
        aggregate=aggregate,
        n_rows=len(series.line),
    )


def patients_of(
    patient_id: list[str], label: list[int], score: list[float], *, group: str, aggregate: str
) -> PatientTable:
    """One row per patient from checked series (an external site's scored series), as :func:`read_predictions` aggregates.

    Args:
        patient_id, label, score: one entry per series; scores finite, labels 0/1.
        group: the value of ``split`` every patient gets (the site's name).
        aggregate: ``max`` or ``mean``, as for the internal predictions.

    Raises:
        ConfigError: an unknown ``aggregate``.
        PredictionsError: a patient whose series disagree on the label.
    """
    check_choice("aggregate", aggregate, AGGREGATES)
    n = len(patient_id)
    series = _Series(list(patient_id), [group] * n, list(label), list(score), list(range(2, n + 2)))
    return _by_patient(series, {}, aggregate)


def subgroup_columns(
    table: PatientTable, *, requested: tuple[str, ...], readers: tuple[str, ...]
) -> tuple[list[str], dict[str, str]]:
    """Decide which extra columns are reported as subgroups.

    Args:
        table: the aggregated patients.
        requested: ``evaluate.subgroups``; when empty, every extra column with 2 to
            ``MAX_SUBGROUP_LEVELS`` levels is used (identifiers and continuous columns
            such as age have more levels and are skipped).
        readers: ``evaluate.reader_columns``: a rating is compared with the model, never
            detected as a subgroup.

    Returns:
        ``(columns, skipped)``: the columns used, and column -> reason for the others.

    Raises:
        PredictionsError: a requested column does not exist or names identifying data.
    """
    skipped: dict[str, str] = {}
    if requested:
        unknown = [c for c in requested if c not in table.attributes]
        if unknown:
            raise PredictionsError(
                f"'evaluate.subgroups' must name columns of the predictions file; got unknown {unknown}, "
                f"available {sorted(table.attributes)}."
            )
        phi = [c for c in requested if _normalise(c) in PHI_COLUMNS]
        if phi:
            raise PredictionsError(
                f"'evaluate.subgroups' must not name identifying columns; got {phi}. Remove them from params.yaml."
            )
        return list(requested), skipped
    used = []
    for c, values in table.attributes.items():
        n_levels = len(set(values.tolist()))
        if c in readers:
            skipped[c] = "reader column (evaluate.reader_columns); compared with the model, not a subgroup"
        elif _normalise(c) in PHI_COLUMNS:
            skipped[c] = "identifying column; never reported"
        elif n_levels < 2:
            skipped[c] = f"{n_levels} level; nothing to compare"
        elif n_levels > MAX_SUBGROUP_LEVELS:
            skipped[c] = f"{n_levels} levels (more than {MAX_SUBGROUP_LEVELS}); name it in evaluate.subgroups to force it"
        else:
            used.append(c)
    return used, skipped


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())
