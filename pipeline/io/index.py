"""The index: one row per written volume, keyed by pseudonyms, free text redacted.

Columns: ``series_key``, ``patient_id`` (keyed hash), ``label``, [``split``], then the
columns ingest writes (:data:`pipeline.io.manifest.RESERVED_COLUMNS`: image path,
modality, spacing, shape, channels, technical metadata, source, notes), then the
manifest's subgroup columns. ``shape`` and ``spacing`` are spatial; ``channels`` is 3 for a
colour image (RGB), 1 for grey.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.io.build_volume import BuildResult
from pipeline.io.deid import TECHNICAL_KEYWORDS, Redactor, pseudonym, resolve_file_refs
from pipeline.io.dicom_values import uid_name
from pipeline.io.manifest import RESERVED_COLUMNS, Manifest
from pipeline.io.manifest_rows import ManifestRow
from pipeline.io.raster import RASTER_MODALITY
from pipeline.io.series_choice import Option
from pipeline.tables import write_rows

STRUCTURED_COLUMNS = frozenset(
    {"_line", "series_key", "patient_id", "label", "split", "image_path", "modality", "spacing", "shape", "channels", "kvp",
     "slice_thickness", "field_strength", "transfer_syntax", "source_format", "n_source_files"}
)
"""Index columns holding keys, codes or numbers; every other cell is free text and redacted."""

CT_AIR_HU = -500.0
"""A NIfTI volume (no modality in its header) whose minimum is below this is taken as CT:
air is about -1000 HU, and no other modality stores large negative values."""


def patient_key(key: str, patient_id: str) -> str:
    """The pseudonym written for a patient identifier."""
    return pseudonym(key, "patient", patient_id)


def index_row(
    manifest: Manifest, row: ManifestRow, option: Option, built: BuildResult, key: str, image_path: str
) -> dict[str, str]:
    """The index cells of one volume (``_line`` keeps the manifest order; it is not written).

    Args:
        manifest: for the split and subgroup columns.
        row: the manifest row the volume is for.
        option: the series or NIfTI file it was built from.
        built: what the build reported.
        key: the pseudonym key.
        image_path: the volume's path relative to the output folder.
    """
    values: dict[str, str] = {
        "_line": str(row.line),
        "series_key": built.series_key,
        "patient_id": patient_key(key, row.patient_id),
        "label": str(row.label),
    }
    if manifest.has_split:
        values["split"] = row.split or ""
    values["image_path"] = image_path
    notes = list(built.notes)
    modality, technical, syntax, source = _source(option, built, notes)
    values["modality"] = modality
    values["spacing"] = "x".join(f"{s:.4g}" for s in built.spacing)
    values["shape"] = "x".join(str(s) for s in built.shape)
    values["channels"] = str(built.channels)
    for column in TECHNICAL_KEYWORDS:
        values[column] = technical.get(column, "")
    values["transfer_syntax"] = syntax
    values["source_format"] = source
    values["n_source_files"] = str(len(option.files))
    values["ingest_note"] = "; ".join(notes)
    for column in manifest.extra_columns:
        values[column] = row.extras.get(column, "")
    return values


def _source(option: Option, built: BuildResult, notes: list[str]) -> tuple[str, dict[str, str], str, str]:
    """Modality, technical metadata, transfer syntax name and source format of a volume.

    A NIfTI file has no modality: CT is inferred from its values, with a note. An image
    file (PNG, JPEG, TIFF) has none either: :data:`pipeline.io.raster.RASTER_MODALITY`.
    """
    if option.candidate is not None:
        first = option.candidate.first
        return first.modality, first.technical, uid_name(first.transfer_syntax) or first.transfer_syntax, "dicom"
    if option.raster_header is not None:
        return RASTER_MODALITY, {}, "", option.raster_header.format
    modality = "CT" if built.minimum < CT_AIR_HU else "OT"
    if modality == "CT":
        notes.append(f"NIfTI has no modality; CT inferred from values below {CT_AIR_HU:g}")
    return modality, {}, "", "nifti"


def write_index(
    path: Path, manifest: Manifest, rows: list[dict[str, str]], redact: Redactor, tokenise: Callable[[str], str]
) -> None:
    """Write the index; free-text cells pass through ``redact``, paths they name through ``tokenise``.

    Even allow-listed technical values can carry an identifier (test files exist whose
    InstitutionName is the manufacturer's name); the tokens are deterministic, so a
    redacted value still groups correctly as a subgroup attribute. Formula-like cells
    are neutralised by :func:`pipeline.tables.write_rows`.
    """
    columns = ["series_key", "patient_id", "label"] + (["split"] if manifest.has_split else [])
    columns += [c for c in RESERVED_COLUMNS if c != "series_key"] + list(manifest.extra_columns)
    cleaned = (
        {k: v if k in STRUCTURED_COLUMNS else redact(resolve_file_refs(v, tokenise)) for k, v in row.items() if k in columns}
        for row in sorted(rows, key=lambda r: int(r["_line"]))
    )
    write_rows(path, cleaned, columns)
