"""DVC stage ``split``: patients -> train/val/test.

Usage: ``python -m pipeline.stages.split INDEX_CSV SPLIT_CSV [--duplicates DUPLICATES_CSV]``

Before assigning parts, every volume the index lists is audited for the same image
under different patients (pipeline/duplicates.py); ``split.duplicates`` says what then
happens, and ``--duplicates`` receives the list (always written when given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("split")

from pipeline.config import SplitConfig, load_params  # noqa: E402
from pipeline.duplicates import Audit, audit_index  # noqa: E402
from pipeline.schema.tables import DUPLICATE_COLUMNS, INDEX_KEYS, SPLIT_COLUMNS  # noqa: E402
from pipeline.errors import PipelineInputError  # noqa: E402
from pipeline.outputs import refuse_overlap  # noqa: E402
from pipeline.splits import PatientSplit, assign_folds, assign_splits, summarise  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402
from pipeline.tables import read_rows, write_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index", help="index.csv written by ingest")
    parser.add_argument("out", help="split.csv to write: patient_id, split, label")
    parser.add_argument("--duplicates", help="duplicates.csv to write: the duplicate pairs across patients")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return run_stage("split", lambda: write_split(args))


class DuplicateImageError(PipelineInputError):
    """The same image under different patients, with ``split.duplicates: refuse``."""


def write_split(args: argparse.Namespace) -> str:
    outputs = {"out": args.out, "duplicates": args.duplicates}
    refuse_overlap(outputs, {"index": args.index, "params": args.params}, stage="split")
    if args.duplicates and Path(args.duplicates).resolve() == Path(args.out).resolve():
        raise PipelineInputError(f"'duplicates' must differ from 'out'; both are {args.out!r}. Name two files.")
    config = SplitConfig.from_params(load_params(args.params))
    rows = read_rows(args.index, required=INDEX_KEYS)
    audit = audit_index(args.index, rows)
    if args.duplicates:
        write_rows(args.duplicates, audit.table(), DUPLICATE_COLUMNS)
    if audit.groups and config.duplicates == "refuse":
        raise DuplicateImageError(
            f"patients must not share an image with split.duplicates: refuse; got {len(audit.groups)} group(s): "
            + "; ".join(f"group {n}: {list(g)}" for n, g in enumerate(audit.groups, 1))
            + ". Check these patients in the manifest, or set split.duplicates: group to keep each group in one part."
        )
    if audit.groups and config.duplicates == "ignore":
        print(f"split: WARNING: {len(audit.groups)} group(s) of patients share an image (see "
              f"{args.duplicates or 'the duplicate audit'}); split.duplicates: ignore splits them as if distinct, "
              "and a copy on each side of the split inflates the test metrics.", file=sys.stderr)
    groups = audit.groups if config.duplicates == "group" else ()
    splits = assign_splits(
        rows, seed=config.seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction, groups=groups
    )
    folds = assign_folds(splits, k=config.folds, seed=config.seed, groups=groups) if config.folds else {}
    write_rows(args.out, ({"patient_id": s.patient_id, "split": s.split, "label": s.label,
                           "fold": folds.get(s.patient_id, "")} for s in splits), SPLIT_COLUMNS)
    counts = summarise(splits)
    return ("split: " + ", ".join(f"{part} {c['patients']} patients ({c['positive']} positive)" for part, c in counts.items())
            + fold_summary(splits, folds, config.folds) + "; " + duplicate_summary(audit, config.duplicates))


def fold_summary(splits: list[PatientSplit], folds: dict[str, int], k: int) -> str:
    """``; 5 folds of train+val: 12 (4 positive), ...`` or nothing with split.folds: 0."""
    if not k:
        return ""
    label = {s.patient_id: s.label for s in splits}
    sizes = [[p for p, f in folds.items() if f == fold] for fold in range(k)]
    return f"; {k} folds of train+val: " + ", ".join(f"{len(m)} ({sum(label[p] for p in m)} positive)" for m in sizes)


def duplicate_summary(audit: Audit, policy: str) -> str:
    """The audit's part of the summary line: groups, patients, pairs by kind, unread volumes."""
    audited = f"{len(audit.series)} images audited"
    if audit.groups:
        exact = sum(m.kind == "exact" for m in audit.matches)
        what = {"group": "each kept in one part", "refuse": "refused", "ignore": "ignored"}[policy]
        text = (f"duplicates: {len(audit.groups)} groups of {sum(map(len, audit.groups))} patients "
                f"({exact} exact, {len(audit.matches) - exact} near pairs), {what}; {audited}")
    else:
        text = f"duplicates: none across patients; {audited}"
    if audit.unread:
        keys = ", ".join(key for key, _ in audit.unread[:5]) + (", ..." if len(audit.unread) > 5 else "")
        text += f"; {len(audit.unread)} volumes unreadable, not audited ({keys}: {audit.unread[0][1]})"
    return text


if __name__ == "__main__":
    sys.exit(main())
