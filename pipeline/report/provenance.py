"""Where the numbers came from: weights, training summary, params and data hashes.

A reader of the report must be able to tell which weights the model started from (a
silent fall-back to random initialisation changes what the study shows), which params
were used and which exact data files went in (the hashes DVC recorded in ``dvc.lock``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from pipeline.digests import sha256_file
from pipeline.errors import PipelineInputError
from pipeline.schema import TrainSummaryRecord

# Params whose values are secrets (the pseudonymisation key above all) are never copied
# into a report: with the key, anyone could re-identify the pseudonyms.
_SECRET_KEY = re.compile(r"(^|_)key$|secret|password|token|pseudonym", re.IGNORECASE)
REDACTED = "<redacted>"


class ProvenanceError(PipelineInputError):
    """A provenance file was given but cannot be read; the message names it and the fix."""


@dataclass(frozen=True)
class LockEntry:
    """One dependency or output recorded in ``dvc.lock``.

    Attributes:
        stage: stage name.
        kind: ``"dep"`` or ``"out"``.
        path: path relative to the repository.
        digest: content hash DVC recorded (``md5``, ``etag`` or ``checksum``); directories end in ``.dir``.
        size: bytes, when recorded.
        nfiles: files in a directory, when recorded.
    """

    stage: str
    kind: str
    path: str
    digest: str | None
    size: int | None
    nfiles: int | None


@dataclass(frozen=True)
class EvaluationProvenance:
    """What the report shows about inputs; ``None`` means the file was not given.

    Attributes:
        predictions_file: path as given; ``predictions_sha256`` its SHA-256.
        train_summary: ``train_summary.json``, read through its record.
        params: parsed params with secrets redacted.
        lock: entries of ``dvc.lock``.
        compare_file: the other predictions file of a comparison, with its SHA-256.
    """

    predictions_file: str
    predictions_sha256: str
    train_summary_file: str | None = None
    train_summary: TrainSummaryRecord | None = None
    params_file: str | None = None
    params: dict[str, Any] | None = None
    lock_file: str | None = None
    lock: list[LockEntry] | None = None
    compare_file: str | None = None
    compare_sha256: str | None = None
    notes: list[str] = field(default_factory=list)


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``params`` with secret-looking keys (``*_key``, ``*secret*``, ``pseudonym*``) replaced."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if _SECRET_KEY.search(str(key)):
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = redact_params(value)
        else:
            out[key] = value
    return out


def read_train_summary(path: str | Path) -> TrainSummaryRecord:
    """Read ``train_summary.json`` into its record.

    Raises:
        ProvenanceError: missing file, invalid JSON, or not an object.
        ArtifactError: a key the report needs is missing or of the wrong kind (the
            message names the file and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(
            f"train summary {str(path)!r} must exist when --train-summary is given; it was not found. "
            "Run the train stage, or leave the option out."
        )
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ProvenanceError(f"train summary {str(path)!r} must be valid JSON; got {err}.") from err
    if not isinstance(summary, dict):
        raise ProvenanceError(f"train summary {str(path)!r} must hold a JSON object; got {type(summary).__name__}.")
    return TrainSummaryRecord.from_json(summary, file=str(path))


def read_lock(path: str | Path, *, own_outputs: Sequence[str | Path]) -> list[LockEntry]:
    """List every dep and out with its hash from a ``dvc.lock`` (schema 2.0).

    Args:
        path: the lock file.
        own_outputs: the running stage's outputs. A stage whose entry records one of
            them as an out is the running stage itself (DVC lets one stage only write a
            path), whatever ``dvc.yaml`` calls it; it is left out, because during
            ``dvc repro`` its entry still describes the previous run (DVC writes a
            stage's entry after the stage finishes, upstream entries before).

    Raises:
        ProvenanceError: missing file or a file that is not a DVC lock file.
    """
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(
            f"lock file {str(path)!r} must exist when --lock is given; it was not found. "
            "It is written by dvc repro; leave the option out when running the stage by hand."
        )
    try:
        lock = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ProvenanceError(f"lock file {str(path)!r} must be valid YAML; got {err}.") from err
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        raise ProvenanceError(f"lock file {str(path)!r} must have a 'stages' mapping (DVC lock schema 2.0); got none.")
    # Lock paths are relative to the folder of dvc.yaml and dvc.lock.
    own = {Path(o).resolve() for o in own_outputs}
    entries: list[LockEntry] = []
    for stage, content in stages.items():
        outs = (content or {}).get("outs") or []
        if any((path.parent / str(item.get("path", ""))).resolve() in own for item in outs):
            continue
        for kind, key in (("dep", "deps"), ("out", "outs")):
            for item in (content or {}).get(key, []) or []:
                digest = next((item[k] for k in ("md5", "etag", "checksum") if item.get(k)), None)
                entries.append(
                    LockEntry(
                        stage=str(stage),
                        kind=kind,
                        path=str(item.get("path", "")),
                        digest=None if digest is None else str(digest),
                        size=item.get("size"),
                        nfiles=item.get("nfiles"),
                    )
                )
    return entries


def collect_provenance(
    predictions: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    params_file: str | Path | None = None,
    train_summary: str | Path | None = None,
    lock: str | Path | None = None,
    own_outputs: Sequence[str | Path] = (),
    compare: str | Path | None = None,
) -> EvaluationProvenance:
    """Read every provenance source that was given.

    Args:
        predictions: the evaluated predictions file.
        params: the parsed params (already loaded by the stage); secrets are redacted here.
        params_file: where ``params`` came from, for display.
        train_summary: ``train_summary.json`` written by train, or ``None``.
        lock: ``dvc.lock``, or ``None``. A lock file that does not exist yet (the first
            ``dvc repro`` writes it stage by stage) is noted in the report, not an error.
        own_outputs: the running stage's outputs; see :func:`read_lock`.
        compare: the other predictions file of a comparison, or ``None``.
    """
    # Inputs not given show as empty fields, which the report states in place; a note is
    # only for what the fields cannot say (a lock path given but absent).
    notes = []
    summary = read_train_summary(train_summary) if train_summary is not None else None
    if lock is not None and not Path(lock).is_file():
        notes.append(f"dvc.lock not found at {str(lock)!r}: data hashes are not shown. Run the stage through dvc repro.")
        lock = None
    return EvaluationProvenance(
        predictions_file=str(predictions),
        predictions_sha256=sha256_file(predictions),
        train_summary_file=None if train_summary is None else str(train_summary),
        train_summary=summary,
        params_file=None if params_file is None else str(params_file),
        params=None if params is None else redact_params(params),
        lock_file=None if lock is None else str(lock),
        lock=read_lock(lock, own_outputs=own_outputs) if lock is not None else None,
        compare_file=None if compare is None else str(compare),
        compare_sha256=None if compare is None else sha256_file(compare),
        notes=notes,
    )
