"""The CSV artifacts between stages: their file names inside a stage's folder, and columns.

Each writer and each reader imports the names from here, so a column cannot be written
under one name and required under another. The index written by ingest has more columns
than any reader needs (technical DICOM attributes, the manifest's subgroup columns: see
``pipeline.io.manifest.RESERVED_COLUMNS``); what every reader may
rely on: :data:`INDEX_KEYS` everywhere, :data:`INDEX_IMAGE` where images are read.
"""

from __future__ import annotations

#: Parts a patient is assigned to by the split stage (``split.csv``'s ``split`` column).
PARTS: tuple[str, ...] = ("train", "val", "test")
#: Parts the trained model scores (``predictions.csv``); train is not scored.
SCORED_PARTS: tuple[str, ...] = ("val", "test")

# ingest's output folder (``data/ingested`` in dvc.yaml)
VOLUME_DIR = "volumes"
#: Values per voxel of a colour volume (RGB, on NIfTI's fifth axis); a grey one has 1.
COLOUR_CHANNELS = 3
INDEX_FILE = "index.csv"
LEDGER_FILE = "ledger.csv"
#: The ingest settings that decide which voxels a series gives (JSON): preprocess records
#: them in the cache, train in the model file, so predict ingests new studies alike.
INGEST_SETTINGS_FILE = "settings.json"
INGEST_SCORING_SETTINGS: tuple[str, ...] = ("series_choice", "spacing_policy", "assume_missing_geometry", "max_voxels")
INGESTED_CONTENTS: tuple[str, ...] = (VOLUME_DIR, INDEX_FILE, LEDGER_FILE, INGEST_SETTINGS_FILE)
#: Columns of ``index.csv`` that identify a series and its volume; ingest writes them on every row.
INDEX_KEYS: tuple[str, ...] = ("patient_id", "label", "series_key", "image_path")
#: What the image's reader needs besides (the intensity rule per modality, the 2D/3D check,
#: the channels: 3 for a colour image, 1 for grey).
INDEX_IMAGE: tuple[str, ...] = ("modality", "shape", "channels")
#: ``ledger.csv``: one row per file under the raw folder.
LEDGER_COLUMNS: tuple[str, ...] = ("path", "status", "reason", "series_key")
LEDGER_STATUSES: tuple[str, ...] = ("ingested", "skipped", "quarantined", "not_image", "unreferenced")
"""``ingested``: part of a written volume. ``skipped``: readable but not used (another
series chosen, duplicate, spacing rejected). ``quarantined``: unreadable or broken.
``not_image``: a valid non-image object (SR, RTSTRUCT, DICOMDIR, the manifest).
``unreferenced``: matched by no manifest row."""

#: ``split.csv``: each patient's part (the split stage writes more columns, readers need these).
SPLIT_REQUIRED: tuple[str, ...] = ("patient_id", "split")
#: What split writes: one row per patient. ``fold`` is the cross-validation fold (0 to
#: split.folds - 1) of a patient outside test, empty for test patients and when
#: split.folds is 0.
SPLIT_COLUMNS: tuple[str, ...] = (*SPLIT_REQUIRED, "label", "fold")
#: ``duplicates.csv``: one row per pair of images found alike across patients.
DUPLICATE_COLUMNS: tuple[str, ...] = ("group", "kind", "distance", "patient_a", "series_a", "patient_b", "series_b")

#: The row table of each cached split (``<part>.csv`` in the cache); subgroup columns follow.
CACHE_ROW_COLUMNS: tuple[str, ...] = ("patient_id", "series_key", "label")

#: ``predictions.csv`` as train writes it; the manifest's subgroup columns follow.
PREDICTION_COLUMNS: tuple[str, ...] = ("patient_id", "series_key", "split", "label", "score")
#: What evaluate needs of a predictions file (another group's model may have no series_key).
PREDICTION_OPTIONAL: tuple[str, ...] = ("series_key",)
PREDICTION_REQUIRED: tuple[str, ...] = tuple(c for c in PREDICTION_COLUMNS if c not in PREDICTION_OPTIONAL)

#: The CSV ``python -m pipeline.predict`` writes: one row per input series.
PREDICT_COLUMNS: tuple[str, ...] = (
    "input", "patient_id", "series_key", "label", "score", "positive", "threshold", "reason",
)
