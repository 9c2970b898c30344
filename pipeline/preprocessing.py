"""Build the tensor cache: index + split -> MONAI deterministic transforms -> memory maps.

Every indexed series ends up in exactly one place: a cached split, or ``excluded.csv``
with the reason (unreadable volume, 2D image for a 3D model, patient with no part, an
image that resampling to ``pixdim`` leaves a few voxels wide). An image the ROI crops to
less than half of its extent is cached and warned about, by series key.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from pipeline.cache import ROW_COLUMNS, CacheWriter, write_meta
from pipeline.io.progress import Progress
from pipeline.rules import CHANNEL_MODES, check_choice
from pipeline.splits import PARTS
from pipeline.tables import TableError, read_rows, write_rows
from pipeline.transforms import COLOUR_CHANNELS, LUMA_WEIGHTS, deterministic_transforms, resolve_intensity

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
    intensity: str = "auto",
    intensity_range: tuple[float, float] | None = None,
    crop_foreground: bool | str = "auto",
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
        resize: ``preprocess.resize``: ``spacing`` or ``fit``
            (:func:`pipeline.transforms.deterministic_transforms`).
        intensity: ``preprocess.intensity`` (see :func:`pipeline.transforms.resolve_intensity`).
        intensity_range: stored values mapped to [0, 1] by ``fixed_range``; None
            estimates it per modality from the training split (recorded in meta.json).
        crop_foreground: ``preprocess.crop_foreground``: true, false or auto.

    Returns:
        Counts per split and of excluded series, the channels chosen, the images warned about.
    """
    start = time.perf_counter()
    index_csv, cache_dir = Path(index_csv), Path(cache_dir)
    rows = read_rows(index_csv, required=("series_key", "patient_id", "label", "image_path", "modality", "shape",
                                          "channels"))
    parts = {r["patient_id"]: r["split"] for r in read_rows(split_csv, required=("patient_id", "split"))}
    columns = list(rows[0].keys()) if rows else []
    extra = subgroup_columns(columns)

    excluded: list[dict[str, str]] = []
    planned: dict[str, list[dict[str, str]]] = {p: [] for p in PARTS}
    for row in rows:
        part = parts.get(row["patient_id"])
        n_dims = len(row["shape"].split("x"))
        if part is None:
            excluded.append({"series_key": row["series_key"], "kind": "no part in split.csv",
                             "reason": "patient has no part in split.csv"})
        elif spatial_dims == 3 and n_dims < 3:
            excluded.append(
                {"series_key": row["series_key"], "kind": "2D image for a 3D model",
                 "reason": f"2D image (shape {row['shape']}) cannot feed a 3D model; set preprocess.spatial_dims: 2"}
            )
        else:
            planned[part].append(row)

    in_channels, channels_reason = resolve_channels(channels, [r for part_rows in planned.values() for r in part_rows])
    pipelines = {}
    ranges = dataset_ranges(index_csv.parent, planned["train"], intensity, intensity_range, in_channels)
    cached: dict[str, int] = {}
    positives: dict[str, int] = {}
    cropped: list[str] = []
    progress = Progress(stage="preprocess", unit="series")
    for part, part_rows in planned.items():
        writer = CacheWriter(cache_dir, part, len(part_rows), roi, channels=in_channels)
        for done, row in enumerate(part_rows):
            progress(part, done, len(part_rows))
            modality = row["modality"] or "OT"
            try:
                if modality not in pipelines:
                    pipelines[modality] = deterministic_transforms(
                        spatial_dims=spatial_dims, pixdim=pixdim, roi=roi, hu_window=hu_window, modality=modality,
                        in_channels=in_channels, resize=resize, intensity=intensity, value_range=ranges.get(modality),
                        crop_foreground=crop_foreground,
                    )
                result = pipelines[modality]({"image": str(index_csv.parent / row["image_path"])})
            except Exception as error:  # noqa: BLE001 - any failure is recorded, never fatal
                excluded.append({"series_key": row["series_key"], "kind": "transform failed",
                                 "reason": f"transform failed: {error!s:.300}"})
                continue
            extent = result["extent"]
            if min(extent) < MIN_EXTENT_VOXELS:
                excluded.append({"series_key": row["series_key"], "kind": "too small after resampling",
                                 "reason": _too_small(row, extent, pixdim, roi)})
                continue
            if kept_fraction(extent, roi) < MIN_KEPT_FRACTION:
                cropped.append(row["series_key"])
            out = result["image"]
            image = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float32)
            writer.add(image, {c: row.get(c, "") for c in (*ROW_COLUMNS, *extra)})
        progress(part, len(part_rows), len(part_rows))
        positives[part] = sum(int(r["label"]) for r in writer.rows)
        cached[part] = writer.close((*ROW_COLUMNS, *extra))

    write_rows(cache_dir / "excluded.csv", excluded, ("series_key", "kind", "reason"))
    write_meta(
        cache_dir,
        {
            "spatial_dims": spatial_dims,
            "roi": list(roi),
            "pixdim": list(pixdim),
            "hu_window": list(hu_window),
            # Channels of every cached image (the model's in_channels), the setting that
            # chose them and why: predict gives any new image the same channels.
            "in_channels": in_channels,
            "channels": channels,
            "channels_reason": channels_reason,
            "resize": resize,
            # The mode each modality got, and the setting that chose it (for a modality
            # the training data did not have: predict resolves it the same way).
            "intensity": {m: resolve_intensity(intensity, m) for m in pipelines},
            "intensity_setting": intensity,
            "intensity_range": {m: list(r) for m, r in ranges.items()},
            "crop_foreground": crop_foreground,
            "dtype": "float16",
            "counts": cached,
            "positives": positives,
            "excluded": len(excluded),
            "excluded_reasons": dict(Counter(e["kind"] for e in excluded)),
            "roi_crop_warnings": len(cropped),
            "subgroup_columns": extra,
            "transforms": {m: [type(t).__name__ for t in c.transforms] for m, c in pipelines.items()},
        },
    )
    return CacheSummary(cached=cached, excluded=len(excluded), seconds=time.perf_counter() - start,
                        in_channels=in_channels, channels_reason=channels_reason, cropped=tuple(cropped))


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
