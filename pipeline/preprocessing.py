"""Build the tensor cache: index + split -> MONAI deterministic transforms -> memory maps.

Every indexed series ends up in exactly one place: a cached split, or ``excluded.csv``
with the reason (unreadable volume, 2D image for a 3D model, patient with no part, an
image that resampling to ``pixdim`` leaves a few voxels wide). An image the ROI crops to
less than half of its extent is cached and warned about, by series key.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import nibabel as nib
import numpy as np

from pipeline.cache import CacheWriter, write_meta
from pipeline.io.progress import Progress
from pipeline.rules import CHANNEL_MODES, check_choice
from pipeline.schema.tables import CACHE_ROW_COLUMNS, COLOUR_CHANNELS, INDEX_IMAGE, INDEX_KEYS, INGEST_SETTINGS_FILE, PARTS, SPLIT_REQUIRED
from pipeline.tables import TableError, read_rows, write_rows
from pipeline.transforms import LUMA_WEIGHTS, deterministic_transforms, resolve_intensity

# Index columns that describe the file rather than the patient or the scanner (geometry,
# ingest bookkeeping); everything else in the index (site, modality, manufacturer, kVp,
# the manifest's own columns, ...) is carried to predictions as a subgroup attribute.
#: Training images read to estimate a dataset-wide intensity range (``fixed_range`` with
#: no ``intensity_range`` given): enough for stable 0.5/99.5 percentiles, cheap to read.
RANGE_SAMPLE = 200
RANGE_PERCENTILES = (0.5, 99.5)
#: An image resampled to fewer voxels than this on a side is excluded: padded to the ROI
#: it would be a speck (a 1,920 px screenshot at an assumed 1 mm and pixdim 500 mm).
MIN_EXTENT_VOXELS = 4
#: An image whose extent the ROI crop keeps less of than this share is warned about.
MIN_KEPT_FRACTION = 0.5
#: Series keys named in the summary line's warning; the count covers them all.
WARN_KEYS_SHOWN = 5

INDEX_CORE = (
    "series_key", "patient_id", "label", "split", "image_path", "spacing", "shape", "channels", "n_source_files",
    "ingest_note",
)


@dataclass(frozen=True)
class CacheSummary:
    """What one preprocess run did; :meth:`line` is the stage's report.

    Attributes:
        cached: samples per part.
        excluded: series in ``excluded.csv``.
        seconds: wall time.
        in_channels: channels of every cached image, and why (``channels_reason``).
        cropped: series keys whose extent the ROI crop keeps less than half of.
    """

    cached: dict[str, int]
    excluded: int
    seconds: float
    in_channels: int
    channels_reason: str
    cropped: tuple[str, ...]

    def line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.cached.items())
        text = (
            f"preprocess: {sum(self.cached.values()) + self.excluded} series -> cached {parts}; "
            f"excluded {self.excluded} (see excluded.csv); {self.in_channels} channel(s): {self.channels_reason}; "
            f"{self.seconds:.1f} s"
        )
        if self.cropped:
            shown = ", ".join(self.cropped[:WARN_KEYS_SHOWN]) + (" ..." if len(self.cropped) > WARN_KEYS_SHOWN else "")
            text += (
                f"\npreprocess: warning: the ROI keeps under {MIN_KEPT_FRACTION:.0%} of {len(self.cropped)} image(s) "
                f"({shown}): raise preprocess.roi or pixdim, or set preprocess.resize: fit"
            )
        return text


def subgroup_columns(columns: Sequence[str]) -> list[str]:
    """Index columns carried through as subgroup attributes, in index order."""
    return [c for c in columns if c not in INDEX_CORE]


def build_cache(
    index_csv: str | Path,
    split_csv: str | Path,
    cache_dir: str | Path,
    *,
    spatial_dims: int,
    roi: Sequence[int],
    pixdim: Sequence[float],
    hu_window: tuple[float, float],
    channels: str,
    resize: str,
    intensity: str,
    intensity_range: tuple[float, float] | None,
    crop_foreground: bool | str,
) -> CacheSummary:
    """Transform every indexed series once and store it in its split's memory map.

    Args:
        index_csv: ``index.csv`` from ingest; ``image_path`` is relative to its folder.
        split_csv: ``split.csv`` from split (patient_id -> part).
        cache_dir: output folder (see :mod:`pipeline.cache` for the layout).
        spatial_dims: 2 or 3.
        roi: output size in voxels.
        pixdim: output spacing in mm (``resize: spacing``).
        hu_window: CT window mapped to [0, 1].
        channels: ``preprocess.channels``: ``auto``, ``gray`` or ``rgb``
            (:func:`resolve_channels`); recorded in meta.json as ``in_channels``.
        resize: ``preprocess.resize``: ``spacing`` or ``fit`` (:func:`pipeline.transforms.deterministic_transforms`).
        intensity: ``preprocess.intensity`` (see :func:`pipeline.transforms.resolve_intensity`).
        intensity_range: stored values mapped to [0, 1] by ``fixed_range``; None
            estimates it per modality from the training split (recorded in meta.json).
        crop_foreground: ``preprocess.crop_foreground``: true, false or auto.

    Returns:
        Counts per split and of excluded series, the channels chosen, the images warned about.
    """
    start, index_csv, cache_dir = time.perf_counter(), Path(index_csv), Path(cache_dir)
    rows = read_rows(index_csv, required=(*INDEX_KEYS, *INDEX_IMAGE))
    parts = {r["patient_id"]: r["split"] for r in read_rows(split_csv, required=SPLIT_REQUIRED)}
    extra = subgroup_columns(list(rows[0].keys()) if rows else [])
    planned, excluded = _plan(rows, parts, spatial_dims)
    in_channels, channels_reason = resolve_channels(channels, [r for part_rows in planned.values() for r in part_rows])
    ranges = dataset_ranges(index_csv.parent, planned["train"], intensity, intensity_range, in_channels)

    def transforms(modality: str) -> Any:
        return deterministic_transforms(spatial_dims=spatial_dims, pixdim=pixdim, roi=roi, hu_window=hu_window,
                                        modality=modality, in_channels=in_channels, resize=resize, intensity=intensity,
                                        value_range=ranges.get(modality), crop_foreground=crop_foreground)

    written = _Written(cache_dir=cache_dir, roi=roi, pixdim=pixdim, channels=in_channels, transforms=transforms,
                       extra=extra, excluded=excluded)
    cached, positives = _write_parts(planned, index_csv.parent, written)
    write_rows(cache_dir / "excluded.csv", excluded, ("series_key", "kind", "reason"))
    settings = {"spatial_dims": spatial_dims, "roi": list(roi), "pixdim": list(pixdim), "hu_window": list(hu_window),
                "in_channels": in_channels, "channels": channels, "channels_reason": channels_reason,
                "resize": resize, "intensity": intensity, "crop_foreground": crop_foreground}
    write_meta(cache_dir, _meta(settings, written, ranges, cached, positives, index_csv.parent))
    return CacheSummary(cached=cached, excluded=len(excluded), seconds=time.perf_counter() - start,
                        in_channels=in_channels, channels_reason=channels_reason, cropped=tuple(written.cropped))


def _plan(
    rows: Sequence[dict[str, str]], parts: Mapping[str, str], spatial_dims: int
) -> tuple[dict[str, list[dict[str, str]]], list[dict[str, str]]]:
    """Index rows by the part of their patient, and the rows excluded before any reading."""
    excluded: list[dict[str, str]] = []
    planned: dict[str, list[dict[str, str]]] = {p: [] for p in PARTS}
    for row in rows:
        part = parts.get(row["patient_id"])
        if part is None:
            excluded.append({"series_key": row["series_key"], "kind": "no part in split.csv",
                             "reason": "patient has no part in split.csv"})
        elif spatial_dims == 3 and len(row["shape"].split("x")) < 3:
            excluded.append(
                {"series_key": row["series_key"], "kind": "2D image for a 3D model",
                 "reason": f"2D image (shape {row['shape']}) cannot feed a 3D model; set preprocess.spatial_dims: 2"}
            )
        else:
            planned[part].append(row)
    return planned, excluded


@dataclass
class _Written:
    """Where and how the planned rows are cached, and what happened to them.

    ``transforms`` builds a modality's Compose, kept in ``pipelines`` on first use;
    ``excluded`` and ``cropped`` (series keys the ROI keeps under half of) grow as rows
    are cached.
    """

    cache_dir: Path
    roi: Sequence[int]
    pixdim: Sequence[float]
    channels: int
    transforms: Callable[[str], Any]
    extra: Sequence[str]
    excluded: list[dict[str, str]]
    pipelines: dict[str, Any] = field(default_factory=dict)
    cropped: list[str] = field(default_factory=list)


def _write_parts(
    planned: Mapping[str, Sequence[dict[str, str]]], root: Path, written: _Written
) -> tuple[dict[str, int], dict[str, int]]:
    """Cache every planned row part by part (failures go to ``written.excluded``); counts cached and positive."""
    cached: dict[str, int] = {}
    positives: dict[str, int] = {}
    progress = Progress(stage="preprocess", unit="series")
    for part, part_rows in planned.items():
        writer = CacheWriter(written.cache_dir, part, len(part_rows), written.roi, channels=written.channels)
        for done, row in enumerate(part_rows):
            progress(part, done, len(part_rows))
            _cache_row(writer, row, root, written)
        progress(part, len(part_rows), len(part_rows))
        positives[part] = sum(int(r["label"]) for r in writer.rows)
        cached[part] = writer.close((*CACHE_ROW_COLUMNS, *written.extra))
    return cached, positives


def _cache_row(writer: CacheWriter, row: dict[str, str], root: Path, written: _Written) -> None:
    """Transform one series into ``writer``, or record in ``written.excluded`` why it cannot
    be (one bad volume never stops the stage); an image the ROI crops to under
    :data:`MIN_KEPT_FRACTION` of its extent is cached and listed in ``written.cropped``."""
    modality = row["modality"] or "OT"
    try:
        if modality not in written.pipelines:
            written.pipelines[modality] = written.transforms(modality)
        result = written.pipelines[modality]({"image": str(root / row["image_path"])})
    except Exception as error:  # noqa: BLE001 - any failure is recorded, never fatal
        written.excluded.append({"series_key": row["series_key"], "kind": "transform failed",
                                 "reason": f"transform failed: {error!s:.300}"})
        return
    extent = result["extent"]
    if min(extent) < MIN_EXTENT_VOXELS:
        written.excluded.append({"series_key": row["series_key"], "kind": "too small after resampling",
                                 "reason": _too_small(row, extent, written.pixdim, written.roi)})
        return
    if kept_fraction(extent, written.roi) < MIN_KEPT_FRACTION:
        written.cropped.append(row["series_key"])
    out = result["image"]
    image = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float32)
    writer.add(image, {c: row.get(c, "") for c in (*CACHE_ROW_COLUMNS, *written.extra)})


def _meta(
    settings: Mapping[str, Any], written: _Written, ranges: Mapping[str, tuple[float, float]],
    cached: Mapping[str, int], positives: Mapping[str, int], ingested: Path,
) -> dict[str, Any]:
    """``meta.json``: the settings that made the cache (the model file keeps them) and its counts."""
    pipelines, excluded = written.pipelines, written.excluded
    return {
        "spatial_dims": settings["spatial_dims"],
        "roi": settings["roi"],
        "pixdim": settings["pixdim"],
        "hu_window": settings["hu_window"],
        # Channels of every cached image (the model's in_channels), the setting that
        # chose them and why: predict gives any new image the same channels.
        "in_channels": settings["in_channels"],
        "channels": settings["channels"],
        "channels_reason": settings["channels_reason"],
        "resize": settings["resize"],
        # The mode each modality got, and the setting that chose it (for a modality
        # the training data did not have: predict resolves it the same way).
        "intensity": {m: resolve_intensity(settings["intensity"], m) for m in pipelines},
        "intensity_setting": settings["intensity"],
        "intensity_range": {m: list(r) for m, r in ranges.items()},
        "crop_foreground": settings["crop_foreground"],
        "dtype": "float16",
        "counts": dict(cached),
        "positives": dict(positives),
        "excluded": len(excluded),
        "excluded_reasons": dict(Counter(e["kind"] for e in excluded)),
        "roi_crop_warnings": len(written.cropped),
        "subgroup_columns": list(written.extra),
        "transforms": {m: [type(t).__name__ for t in c.transforms] for m, c in pipelines.items()},
        **_ingest_settings(ingested),
    }


def _ingest_settings(ingested: Path) -> dict[str, Any]:
    """``{"ingest": settings}`` from ingest's settings file, recorded with the cache; an
    index made by hand (or by an older ingest) has none, and the meta then has no key."""
    path = ingested / INGEST_SETTINGS_FILE
    return {"ingest": json.loads(path.read_text())} if path.is_file() else {}


def resolve_channels(setting: str, rows: Sequence[dict[str, str]]) -> tuple[int, str]:
    """The channels every cached image gets for ``preprocess.channels``, and why, in words.

    ``auto`` gives RGB when any image to cache is colour (the grey ones are repeated to
    three equal channels, which an ImageNet stem answers as it answers grey), else grey;
    ``gray`` turns colour images grey (BT.601 luma), ``rgb`` repeats grey images. Every
    split's images count: the choice is about the cohort's files, not its labels.
    """
    check_choice("preprocess.channels", setting, CHANNEL_MODES)
    colour = 0
    for row in rows:
        value = row["channels"]
        if value not in ("1", str(COLOUR_CHANNELS)):
            raise TableError(
                f"index column 'channels' must be 1 or {COLOUR_CHANNELS}; got {value!r} for series "
                f"{row['series_key']!r}. Re-run ingest (dvc repro -f ingest)."
            )
        colour += value == str(COLOUR_CHANNELS)
    words = f"{colour} of {len(rows)} images colour"
    if setting == "auto":
        return (COLOUR_CHANNELS, f"auto: rgb, {words}") if colour else (1, f"auto: gray, {words}")
    return (COLOUR_CHANNELS if setting == "rgb" else 1), f"{setting}, {words}"


def kept_fraction(extent: Sequence[int], roi: Sequence[int]) -> float:
    """Share of an image of ``extent`` voxels that a centre crop to ``roi`` keeps."""
    return float(np.prod([min(1.0, r / e) for e, r in zip(extent, roi)]))


def _too_small(row: dict[str, str], extent: Sequence[int], pixdim: Sequence[float], roi: Sequence[int]) -> str:
    size = "x".join(map(str, extent))
    return (
        f"image must be at least {MIN_EXTENT_VOXELS} voxels on a side after resampling; got {size} at "
        f"preprocess.pixdim {list(pixdim)} mm (shape {row['shape']}, spacing {row.get('spacing', '?')} mm), "
        f"a speck in the {list(roi)} ROI. Lower preprocess.pixdim, or set preprocess.resize: fit"
    )


def dataset_ranges(
    root: Path, train_rows: Sequence[dict[str, str]], intensity: str, given: tuple[float, float] | None,
    in_channels: int,
) -> dict[str, tuple[float, float]]:
    """The ``fixed_range`` (low, high) per modality that maps to ``fixed_range``.

    One range for the whole dataset keeps absolute brightness comparable between images
    (a per-image rescale would make an opaque lung as bright as a clear one). Without a
    ``given`` range it is the pooled 0.5/99.5 percentiles of up to :data:`RANGE_SAMPLE`
    training images: statistics of the training split only, so val and test stay unseen.
    The values are those the transforms scale: the luma of a colour image when the model
    is grey (``in_channels`` 1), every channel's values when it is RGB.
    """
    by_modality: dict[str, list[dict[str, str]]] = {}
    for row in train_rows:
        modality = row["modality"] or "OT"
        if resolve_intensity(intensity, modality) == "fixed_range":
            by_modality.setdefault(modality, []).append(row)
    ranges = {}
    for modality, rows in by_modality.items():
        if given is not None:
            ranges[modality] = (float(given[0]), float(given[1]))
            continue
        step = max(1, len(rows) // RANGE_SAMPLE)
        values = [_voxels(root / r["image_path"], in_channels) for r in rows[::step]]
        values = [v for v in values if v is not None and v.size]
        if not values:
            continue  # every sampled file unreadable: each is excluded with its reason below
        low, high = (float(v) for v in np.percentile(np.concatenate(values), RANGE_PERCENTILES))
        ranges[modality] = (low, high if high > low else low + 1.0)
    return ranges


def _voxels(path: Path, in_channels: int) -> np.ndarray | None:
    """All voxel values of one file (its luma for a grey model), or None when it cannot be read (excluded later)."""
    try:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    except Exception:  # noqa: BLE001 - the transform step records the reason for this file
        return None
    if data.ndim == 5 and in_channels == 1:  # colour as ingest stores it: channels on the fifth axis
        data = data @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return data.ravel()
