"""Turn what a user gives ``predict`` into canonical volumes, through ingest itself.

Every input goes through :func:`pipeline.io.ingest.ingest_cohort`, so a new study is read
exactly as the training cohort was: the same DICOM grouping into series, the same choice
among several series (most slices), the same geometry checks and HU rescaling, the same
pseudonyms. A folder or file becomes a one-row manifest in a temporary folder (the raw
files are only read); a manifest is ingested as the ingest stage ingests it.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from pipeline.config import PSEUDONYM_KEY_ENV, IngestConfig, load_params
from pipeline.errors import PipelineInputError
from pipeline.io.deid import pseudonym
from pipeline.io.ingest import ingest_cohort
from pipeline.io.manifest import ManifestError, read_manifest
from pipeline.schema.tables import INDEX_FILE, INGEST_SCORING_SETTINGS, LEDGER_FILE
from pipeline.tables import read_rows

PROGRESS_ABOVE = 5  # inputs; fewer finish before a progress line would help
PROGRESS_EVERY_S = 5.0


@dataclass
class Case:
    """One series to score, or the reason there is none.

    Attributes:
        key: the input path as typed, or the patient pseudonym for a manifest row.
        source: the input argument it came from (a path, or the manifest's path).
        series_key: ingest's series key; "" when no series was built.
        image_path: the canonical NIfTI ingest wrote.
        modality: DICOM modality from ingest's index.
        shape: shape from ingest's index (``64x64x40``).
        label: the manifest's label ("" for paths).
        reason: why it cannot be scored ("" when it can).
    """

    key: str
    source: str
    series_key: str = ""
    image_path: str = ""
    modality: str = ""
    shape: str = ""
    label: str = ""
    reason: str = ""


@contextmanager
def scoring_session() -> Iterator[Path]:
    """A temporary folder for ingest's volumes, removed when scoring is done."""
    with tempfile.TemporaryDirectory(prefix="medimg-predict-") as folder:
        yield Path(folder)


def ingest_settings(params: str | Path | None, *, need_key: bool, recorded: Mapping[str, Any] | None) -> IngestConfig:
    """Ingest's settings: from ``params`` (its ``ingest`` block; the environment key wins),
    else those the model file recorded from its training data (``recorded``).

    Without a params file the key comes from ``PIPELINE_PSEUDONYM_KEY``; for folder and
    file inputs, whose rows are keyed by the path typed, a random key is used when none is
    set (series keys are then only meaningful within the run). A new manifest's encoding is
    detected (``auto``); one process reads (inputs come one at a time), and volumes are
    written uncompressed (read once, then deleted), as :func:`_ingest` does with any settings.

    Raises:
        PipelineInputError: ``need_key`` (a manifest) and no key in the environment or params;
            or no params and a model file that records no ingest settings.
    """
    if params is not None:
        return IngestConfig.from_params(load_params(params))
    if recorded is None or set(INGEST_SCORING_SETTINGS) - set(recorded):
        raise PipelineInputError(
            f"the model file must record the ingest settings {list(INGEST_SCORING_SETTINGS)} its training data "
            f"was read with; got {sorted(recorded or {})}. Give --params with the training run's params.yaml, "
            "or retrain with this version (dvc repro -f ingest train)."
        )
    key = os.environ.get(PSEUDONYM_KEY_ENV)
    if not key:
        if need_key:
            raise PipelineInputError(
                f"the pseudonym key must be the one ingest used, so that patient_id joins with the training "
                f"outputs; got none. Set {PSEUDONYM_KEY_ENV} or give --params params.yaml."
            )
        key = secrets.token_hex(16)
    return IngestConfig(
        pseudonym_key=key, workers=1, manifest_encoding="auto", volume_format="nii",
        **{name: recorded[name] for name in INGEST_SCORING_SETTINGS},
    )


def cases_from_paths(paths: Sequence[str | Path], session: Path, config: IngestConfig) -> list[Case]:
    """One case per folder or file; a bad input is a case with its reason, never an error."""
    cases = []
    for typed in paths:
        text = str(typed)
        path = Path(typed)
        if not path.exists():
            cases.append(Case(text, text, reason="input must be an existing folder or file; it was not found"))
            continue
        raw, locator = (path, ".") if path.is_dir() else (path.parent, path.name)
        if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
            cases.append(Case(text, text, reason="folder must hold DICOM, NIfTI, PNG, JPEG or TIFF files; it holds no file"))
            continue
        work = Path(tempfile.mkdtemp(prefix="input", dir=session))
        manifest = work / "manifest.csv"
        with manifest.open("w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows([("patient_id", "label", "path"), ("case", 0, locator)])
        try:
            _ingest(raw, manifest, work / "ingested", config)
        except ManifestError as error:  # about the one-row manifest written above: say what it found
            cases.append(Case(text, text, reason="; ".join(e.message for e in error.errors)[:500]))
            continue
        except PipelineInputError as error:
            cases.append(Case(text, text, reason=_one_line(error)))
            continue
        rows = read_rows(work / "ingested" / INDEX_FILE)
        if not rows:
            cases.append(Case(text, text, reason=_no_series(work / "ingested")))
        for row in rows:  # the label is the placeholder of the one-row manifest: not the user's
            cases.append(replace(_case(text, text, row, work / "ingested"), label=""))
        cases += _series_not_chosen(text, work / "ingested", {r["series_key"] for r in rows})
    return cases


def _series_not_chosen(text: str, out: Path, built: set[str]) -> list[Case]:
    """One case per other series ingest found in the input and left out, with ingest's reason.

    A study folder often holds a localizer or a second reconstruction beside the volume;
    ingest keeps one series per manifest row (most slices), and each series it passed over
    is reported, not dropped silently.
    """
    reasons: dict[str, str] = {}
    for row in read_rows(out / LEDGER_FILE):
        if row["status"] == "skipped" and row["series_key"] and row["series_key"] not in built:
            # "line 2" is the row of the one-row manifest written here, meaningless to the user.
            reasons.setdefault(row["series_key"], re.sub(r"^line \d+ matched", "the input matched", row["reason"]))
    return [Case(text, text, series_key=key, reason=f"series not chosen: {why}") for key, why in sorted(reasons.items())]


def cases_from_manifest(manifest: str | Path, raw_dir: str | Path, session: Path, config: IngestConfig, *,
                        out: Path | None = None, workers: int = 1) -> list[Case]:
    """Cases for every manifest row, keyed by the patient pseudonym ingest writes.

    Args:
        manifest, raw_dir: as the ingest stage takes them.
        session: the temporary folder of :func:`scoring_session`.
        config: ingest's settings and key.
        out: the empty folder ingest writes into (its ``ledger.csv`` is read afterwards by
            the external stage); a new one inside ``session`` by default.
        workers: ingest's processes (one for a few studies; ``ingest.workers`` for a cohort).

    Raises:
        ManifestError: the manifest has problems (every bad line listed), as in ingest.
    """
    out = Path(tempfile.mkdtemp(prefix="manifest", dir=session)) if out is None else Path(out)
    summary = _ingest(Path(raw_dir), Path(manifest), out, config, workers=workers)
    source = str(manifest)
    cases = [_case(row["patient_id"], source, row, out) for row in read_rows(out / INDEX_FILE)]
    missing = set(summary.rows_without_volume)
    if missing:
        why = _no_series(out)
        for row in read_manifest(manifest, Path(raw_dir).resolve(), encoding=config.manifest_encoding).rows:
            if row.line in missing:
                key = pseudonym(config.pseudonym_key, "patient", row.patient_id)
                cases.append(Case(key, source, label=str(row.label), reason=f"manifest line {row.line}: {why}"))
    return cases


def _ingest(raw: Path, manifest: Path, out: Path, config: IngestConfig, *, workers: int = 1):
    return ingest_cohort(
        raw, manifest, out,
        pseudonym_key=config.pseudonym_key,
        series_choice=config.series_choice,
        spacing_policy=config.spacing_policy,
        workers=workers,
        manifest_encoding=config.manifest_encoding,
        assume_missing_geometry=config.assume_missing_geometry,
        max_voxels=config.max_voxels,
        volume_format="nii",  # the session's volumes are read once and deleted: uncompressed is fastest
    )


def _case(key: str, source: str, row: dict[str, str], out: Path) -> Case:
    return Case(key, source, series_key=row["series_key"], image_path=str(out / row["image_path"]),
                modality=row.get("modality", ""), shape=row.get("shape", ""), label=row.get("label", ""))


def _no_series(out: Path) -> str:
    """Why ingest built no volume, from its ledger (statuses and the first reason; no paths)."""
    rows = [r for r in read_rows(out / LEDGER_FILE) if r["status"] not in ("ingested", "unreferenced")]
    if not rows:
        return "no image file found"
    counts = ", ".join(f"{n} {status}" for status, n in sorted(Counter(r["status"] for r in rows).items()))
    first = next((r["reason"] for r in rows if r["reason"]), "")
    return f"no usable image series ({counts}): {first[:300]}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:500]


class Progress:
    """``done/total`` on stderr: redrawn in place on a terminal, a line every few seconds elsewhere."""

    def __init__(self, total: int, *, enabled: bool | None = None, label: str = "predict") -> None:
        self.total = total
        self.done = 0
        self.label = label
        self.enabled = total > PROGRESS_ABOVE if enabled is None else enabled
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (not self.tty and now - self.last < PROGRESS_EVERY_S and self.done < self.total):
            return
        self.last = now
        text = f"{self.label}: {self.done}/{self.total} series scored, {now - self.start:.0f} s"
        print(("\r" + text) if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)
