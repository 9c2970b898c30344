"""Configs of the stages that make, read, split and prepare the images: demo to preprocess.

Each field is read from ``params.yaml`` (no field has a default: see
:mod:`pipeline.config.checks`) and checked in ``__post_init__``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.config.checks import (
    check_bool,
    check_codec,
    check_float_tuple,
    check_int_tuple,
    check_ordered_pair,
    check_range,
    fields_of,
    require,
    section,
)
from pipeline.errors import ConfigError
from pipeline.rules import (
    CHANNEL_MODES,
    DUPLICATE_POLICIES,
    INTENSITY_MODES,
    RESIZE_MODES,
    SERIES_CHOICES,
    SPACING_POLICIES,
    SPATIAL_DIMS,
    VOLUME_FORMATS,
    check_choice,
    check_folds,
)

PSEUDONYM_KEY_ENV = "PIPELINE_PSEUDONYM_KEY"
#: The key params.yaml ships for the synthetic demo. It is public, so pseudonyms made with
#: it can be reversed by hashing every candidate ID: fine for fake patients only.
DEMO_PSEUDONYM_KEY = "demo-cohort-not-a-secret"


@dataclass(frozen=True)
class BaseConfig:
    seed: int

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "BaseConfig":
        return cls(seed=require(section(params, "base"), "base", "seed"))


def _seed(params: Mapping[str, Any]) -> int:
    return BaseConfig.from_params(params).seed


@dataclass(frozen=True)
class DemoConfig:
    """The synthetic cohort written by the ``demo`` stage.

    Attributes:
        seed: base seed; every patient draws from ``seed`` and its index, so the cohort
            is identical on every machine.
        n_patients: number of patients; about half carry a lesion.
        nifti_fraction: share of patients written as NIfTI instead of DICOM.
        matrix: in-plane size of each slice, pixels.
        n_slices: axial slices per series.
        pixel_spacing_mm: in-plane pixel size, mm.
        slice_thickness_mm: slice spacing and thickness, mm.
        lesion_diameter_mm: range of the usual lesion diameters, mm (a tenth of the
            lesions are 3-6 mm regardless). Larger lesions make a positive control: a
            cohort any working set-up must learn, to tell a broken pipeline from a hard task.
        lung_lesion_fraction: share of lesions placed in a lung (high contrast); the
            rest sit in soft tissue at +50 to +90 HU.

    The field of view (``matrix * pixel_spacing_mm``) and the z extent
    (``n_slices * slice_thickness_mm``) have floors, because the phantom's anatomy scales
    with the field of view while lesions keep their size in mm.
    """

    seed: int
    n_patients: int
    nifti_fraction: float
    matrix: int
    n_slices: int
    pixel_spacing_mm: float
    slice_thickness_mm: float
    lesion_diameter_mm: tuple[float, float]
    lung_lesion_fraction: float

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)
        low, high = check_float_tuple("demo.lesion_diameter_mm", self.lesion_diameter_mm, length=2)
        if not 3.0 <= low <= high <= 50.0:
            raise ConfigError(
                f"'demo.lesion_diameter_mm' must be [low, high] with 3 <= low <= high <= 50 (mm); got "
                f"{list(self.lesion_diameter_mm)!r}."
            )
        object.__setattr__(self, "lesion_diameter_mm", (low, high))
        check_range("demo.lung_lesion_fraction", self.lung_lesion_fraction, low=0.0, high=1.0)
        check_range("demo.n_patients", self.n_patients, low=8, integer=True)
        check_range("demo.nifti_fraction", self.nifti_fraction, low=0.0, high=1.0)
        check_range("demo.matrix", self.matrix, low=32, integer=True)
        check_range("demo.n_slices", self.n_slices, low=8, integer=True)
        check_range("demo.pixel_spacing_mm", self.pixel_spacing_mm, low=0.0, low_open=True)
        check_range("demo.slice_thickness_mm", self.slice_thickness_mm, low=0.0, low_open=True)
        self._check_extent()

    def _check_extent(self) -> None:
        min_fov_mm, min_extent_mm = 200.0, 60.0
        fov = self.matrix * self.pixel_spacing_mm
        if fov < min_fov_mm:
            raise ConfigError(
                f"'demo.matrix' x 'demo.pixel_spacing_mm' must be at least {min_fov_mm:g} mm so a chest and "
                f"a 15 mm lesion fit; got {self.matrix} x {self.pixel_spacing_mm} = {fov:g} mm. "
                "Raise one of them."
            )
        extent = self.n_slices * self.slice_thickness_mm
        if extent < min_extent_mm:
            raise ConfigError(
                f"'demo.n_slices' x 'demo.slice_thickness_mm' must be at least {min_extent_mm:g} mm so a "
                f"lesion fits between the lung base and the top slice; got {self.n_slices} x "
                f"{self.slice_thickness_mm} = {extent:g} mm. Raise one of them."
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "DemoConfig":
        return cls(seed=_seed(params), **fields_of(section(params, "demo"), cls, "demo", skip=frozenset({"seed"})))


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class IngestConfig:
    """How raw DICOM/NIfTI files become canonical volumes and an index.

    Attributes:
        pseudonym_key: secret for the keyed hash of patient identifiers. The environment
            variable ``PIPELINE_PSEUDONYM_KEY`` overrides ``ingest.pseudonym_key`` so a
            hospital keeps its key out of git.
        series_choice: rule when one manifest row matches several series:
            ``most_slices`` (largest volume; localizers and secondary captures lose) or
            ``error`` (stop and list them).
        spacing_policy: non-uniform slice spacing inside a series: ``reject`` the series
            (recorded in the ledger) or ``resample`` it onto the median spacing
            (recorded too).
        workers: processes reading headers and pixels in parallel; ``auto`` (the value
            in ``workers`` after construction is then the number of cores this process
            may use, ``os.sched_getaffinity``).
        manifest_encoding: ``auto`` (UTF-8 with or without BOM, UTF-16/32 with BOM)
            or a Python codec name for other manifests (``cp1252``).
        assume_missing_geometry: ingest DICOM files whose geometry values are present
            but unparseable with 1 mm / axial assumed, instead of quarantining them.
        max_voxels: a file whose header declares more voxels (Rows x Columns x frames,
            or the NIfTI shape) is quarantined from its header alone, before any
            allocation; 2**31 is above any clinical CT or MR.
        volume_format: ``nii`` (uncompressed, the fastest write and read) or ``nii.gz``
            (gzip level 1: less disk, slower); see benchmarks/README.md.
    """

    pseudonym_key: str
    series_choice: str
    spacing_policy: str
    workers: int | str
    manifest_encoding: str
    assume_missing_geometry: bool
    max_voxels: int
    volume_format: str

    def __post_init__(self) -> None:
        # The value is a secret: errors say what is wrong with it, never what it is.
        if not isinstance(self.pseudonym_key, str):
            raise ConfigError(
                f"'ingest.pseudonym_key' must be a string; got a {type(self.pseudonym_key).__name__} (YAML read "
                f"an unquoted value). Quote it in params.yaml, or better set {PSEUDONYM_KEY_ENV} in the environment."
            )
        if len(self.pseudonym_key) < 8:
            raise ConfigError(
                f"'ingest.pseudonym_key' must be a string of at least 8 characters; got {len(self.pseudonym_key)} "
                f"characters. Set {PSEUDONYM_KEY_ENV} in the environment (preferred) or the params key."
            )
        check_choice("ingest.series_choice", self.series_choice, SERIES_CHOICES)
        check_choice("ingest.spacing_policy", self.spacing_policy, SPACING_POLICIES)
        if self.workers == "auto":
            object.__setattr__(self, "workers", available_cores())
        elif isinstance(self.workers, str):
            raise ConfigError(f"'ingest.workers' must be 'auto' or an integer >= 1; got {self.workers!r}.")
        check_range("ingest.workers", self.workers, low=1, integer=True)
        check_choice("ingest.volume_format", self.volume_format, VOLUME_FORMATS)
        check_codec("ingest.manifest_encoding", self.manifest_encoding)
        check_bool("ingest.assume_missing_geometry", self.assume_missing_geometry)
        check_range("ingest.max_voxels", self.max_voxels, low=1, integer=True)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> "IngestConfig":
        values = dict(section(params, "ingest"))
        if environ.get(PSEUDONYM_KEY_ENV):
            values["pseudonym_key"] = environ[PSEUDONYM_KEY_ENV]
        if "pseudonym_key" not in values:
            raise ConfigError(
                f"'ingest.pseudonym_key' must be set; it is missing. Set {PSEUDONYM_KEY_ENV} in the "
                "environment or add the key under 'ingest:' in params.yaml."
            )
        return cls(**fields_of(values, cls, "ingest"))


@dataclass(frozen=True)
class SplitConfig:
    """Patient-level split, stratified by label.

    Attributes:
        seed: shuffling seed.
        val_fraction: share of patients for validation (threshold selection, early stop).
        test_fraction: share of patients held out for the final report.
        duplicates: what to do with the same image under different patients (see
            pipeline/duplicates.py): ``group`` keeps them in one part, ``refuse`` stops,
            ``ignore`` warns and splits as if they were distinct.
        folds: 0 for the one split above; ``k`` >= 2 also deals the patients outside test
            into ``k`` folds (patient level, stratified by label, seeded, duplicate groups
            kept in one fold) and trains one model per fold (the ``train_fold`` stages).
    """

    seed: int
    val_fraction: float
    test_fraction: float
    duplicates: str
    folds: int

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)
        check_range("split.val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_range("split.test_fraction", self.test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_choice("split.duplicates", self.duplicates, DUPLICATE_POLICIES)
        check_folds("split.folds", self.folds)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                "'split.val_fraction' + 'split.test_fraction' must be below 1 so that some patients "
                f"train; got {self.val_fraction} + {self.test_fraction}. Lower one of them."
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "SplitConfig":
        return cls(seed=_seed(params), **fields_of(section(params, "split"), cls, "split", skip=frozenset({"seed"})))


@dataclass(frozen=True)
class PreprocessConfig:
    """Deterministic MONAI transforms applied once, results cached.

    Attributes:
        spatial_dims: 3 for volumes, 2 for images (a 3D volume is reduced to its axial
            slice of largest body area when 2D is asked for).
        roi: output size, (H, W) or (H, W, D) voxels.
        pixdim: target voxel size in mm, same length as ``roi`` (``resize: spacing``).
        resize: ``spacing`` (resample to ``pixdim``, then crop/pad to ``roi``: physical
            scale kept) or ``fit`` (scale each image so its foreground's longer side fills
            ``roi``, aspect kept, the rest padded: photographs and screenshots without a
            pixel spacing).
        channels: ``auto`` (``rgb`` when the cohort has colour images, else ``gray``),
            ``gray`` (colour turned grey, BT.601 luma) or ``rgb`` (grey repeated to three
            channels); the cache's meta.json records the choice as ``in_channels``.
        hu_window: (low, high) HU mapped to [0, 1] by ``ct_window``.
        intensity: ``auto`` (CT: ``ct_window``; US/CR/DX/MG/XA/RF/SC: ``fixed_range``;
            others: ``percentile``), ``ct_window``, ``fixed_range`` (one range for the
            dataset) or ``percentile`` (each image's own 0.5-99.5 percentiles).
        intensity_range: (low, high) stored values for ``fixed_range``; null estimates
            it from the training split (pooled 0.5/99.5 percentiles, in meta.json).
        crop_foreground: crop to the thresholded body: true, false, or ``auto`` (CT, MR,
            PET, NM only).
    """

    spatial_dims: int
    roi: tuple[int, ...]
    pixdim: tuple[float, ...]
    resize: str
    channels: str
    hu_window: tuple[float, float]
    intensity: str
    intensity_range: tuple[float, float] | None
    crop_foreground: bool | str

    def __post_init__(self) -> None:
        check_choice("preprocess.spatial_dims", self.spatial_dims, SPATIAL_DIMS)
        object.__setattr__(self, "roi", check_int_tuple("preprocess.roi", self.roi, length=self.spatial_dims, low=8))
        object.__setattr__(
            self, "pixdim", check_float_tuple("preprocess.pixdim", self.pixdim, length=self.spatial_dims)
        )
        check_choice("preprocess.resize", self.resize, RESIZE_MODES)
        check_choice("preprocess.channels", self.channels, CHANNEL_MODES)
        object.__setattr__(self, "hu_window", check_ordered_pair("preprocess.hu_window", self.hu_window))
        check_choice("preprocess.intensity", self.intensity, INTENSITY_MODES)
        if self.intensity_range is not None:
            hint = " Or null to estimate it from the training split."
            object.__setattr__(
                self, "intensity_range", check_ordered_pair("preprocess.intensity_range", self.intensity_range, hint=hint)
            )
        if not (isinstance(self.crop_foreground, bool) or self.crop_foreground == "auto"):
            raise ConfigError(f"'preprocess.crop_foreground' must be true, false or auto; got {self.crop_foreground!r}.")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "PreprocessConfig":
        return cls(**fields_of(section(params, "preprocess"), cls, "preprocess"))
