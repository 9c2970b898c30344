"""Typed, frozen configuration for each DVC stage.

Each stage's ``main()`` loads ``params.yaml`` once, builds its dataclass with
``<Config>.from_params(params)`` and passes *fields* down to the library. Nothing below
``pipeline/stages`` reads ``params.yaml`` or ``sys.argv``.

Every check raises :class:`ConfigError` with the key, the rule, the value received and
a hint, so a user editing ``params.yaml`` sees what to change.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from pipeline.errors import ConfigError

PSEUDONYM_KEY_ENV = "PIPELINE_PSEUDONYM_KEY"
DUPLICATE_POLICIES = ("group", "refuse", "ignore")
#: The key params.yaml ships for the synthetic demo. It is public, so pseudonyms made with
#: it can be reversed by hashing every candidate ID: fine for fake patients only.
DEMO_PSEUDONYM_KEY = "demo-cohort-not-a-secret"


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` into a dict; a missing or non-mapping file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"params file {str(path)!r} must exist; it was not found. "
            "Run the stage from the repository root, where params.yaml lives."
        )
    with path.open() as handle:
        params = yaml.safe_load(handle) or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"params file {str(path)!r} must hold a mapping of sections; got {type(params).__name__}."
        )
    return params


def section(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """Return ``params[name]``, failing with a hint when the section is missing."""
    value = params.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"params section {name!r} must be a mapping; got {value!r}. "
            f"Add a '{name}:' block to params.yaml (see the README for its keys)."
        )
    return value


def require(values: Mapping[str, Any], prefix: str, key: str) -> Any:
    """Return ``values[key]``; a missing key names its full dotted path."""
    if key not in values:
        raise ConfigError(
            f"params key '{prefix}.{key}' must be set; it is missing. "
            f"Add it under '{prefix}:' in params.yaml."
        )
    return values[key]


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{name!r} must be one of {list(choices)}; got {value!r}.")


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Check a number against an interval; ``*_open`` excludes that end."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        wanted = "an integer" if integer else "a number"
        raise ConfigError(f"{name!r} must be {wanted}; got {value!r}.")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigError(f"{name!r} must be in {interval}; got {value!r}.")


def check_int_tuple(name: str, value: Any, *, length: int | None = None, low: int = 1) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name!r} must be a non-empty list of integers; got {value!r}.")
    if length is not None and len(value) != length:
        raise ConfigError(f"{name!r} must have {length} entries; got {len(value)}: {value!r}.")
    for item in value:
        check_range(name, item, low=low, integer=True)
    return tuple(int(v) for v in value)


def check_float_tuple(name: str, value: Any, *, length: int) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ConfigError(f"{name!r} must be a list of {length} numbers; got {value!r}.")
    for item in value:
        check_range(name, item)
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class BaseConfig:
    seed: int

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "BaseConfig":
        return cls(seed=require(section(params, "base"), "base", "seed"))


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
    n_patients: int = 120
    nifti_fraction: float = 0.2
    matrix: int = 128
    n_slices: int = 40
    pixel_spacing_mm: float = 2.5
    slice_thickness_mm: float = 5.0
    lesion_diameter_mm: tuple[float, float] = (6.0, 15.0)
    lung_lesion_fraction: float = 0.6

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)
        low, high = check_float_tuple("demo.lesion_diameter_mm", self.lesion_diameter_mm, length=2)
        if not 3.0 <= low <= high <= 50.0:
            raise ConfigError(
                f"'demo.lesion_diameter_mm' must be [low, high] with 3 <= low <= high <= 50 (mm); got "
                f"{list(self.lesion_diameter_mm)!r}. The default is [6, 15]."
            )
        object.__setattr__(self, "lesion_diameter_mm", (low, high))
        check_range("demo.lung_lesion_fraction", self.lung_lesion_fraction, low=0.0, high=1.0)
        check_range("demo.n_patients", self.n_patients, low=8, integer=True)
        check_range("demo.nifti_fraction", self.nifti_fraction, low=0.0, high=1.0)
        check_range("demo.matrix", self.matrix, low=32, integer=True)
        check_range("demo.n_slices", self.n_slices, low=8, integer=True)
        check_range("demo.pixel_spacing_mm", self.pixel_spacing_mm, low=0.0, low_open=True)
        check_range("demo.slice_thickness_mm", self.slice_thickness_mm, low=0.0, low_open=True)
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
        demo = section(params, "demo")
        return cls(seed=BaseConfig.from_params(params).seed, **_known(demo, cls, "demo", skip={"seed"}))


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
    series_choice: str = "most_slices"
    spacing_policy: str = "reject"
    workers: int | str = "auto"
    manifest_encoding: str = "auto"
    assume_missing_geometry: bool = False
    max_voxels: int = 2**31
    volume_format: str = "nii"

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
        check_choice("ingest.series_choice", self.series_choice, ("most_slices", "error"))
        check_choice("ingest.spacing_policy", self.spacing_policy, ("reject", "resample"))
        if self.workers == "auto":
            object.__setattr__(self, "workers", available_cores())
        elif isinstance(self.workers, str):
            raise ConfigError(f"'ingest.workers' must be 'auto' or an integer >= 1; got {self.workers!r}.")
        check_range("ingest.workers", self.workers, low=1, integer=True)
        check_choice("ingest.volume_format", self.volume_format, ("nii", "nii.gz"))
        _check_codec("ingest.manifest_encoding", self.manifest_encoding)
        if not isinstance(self.assume_missing_geometry, bool):
            raise ConfigError(
                f"'ingest.assume_missing_geometry' must be true or false; got {self.assume_missing_geometry!r}."
            )
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
        return cls(**_known(values, cls, "ingest"))


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
    """

    seed: int
    val_fraction: float = 0.2
    test_fraction: float = 0.3
    duplicates: str = "group"

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)
        check_range("split.val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_range("split.test_fraction", self.test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_choice("split.duplicates", self.duplicates, DUPLICATE_POLICIES)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                "'split.val_fraction' + 'split.test_fraction' must be below 1 so that some patients "
                f"train; got {self.val_fraction} + {self.test_fraction}. Lower one of them."
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "SplitConfig":
        return cls(seed=BaseConfig.from_params(params).seed, **_known(section(params, "split"), cls, "split", skip={"seed"}))


@dataclass(frozen=True)
class PreprocessConfig:
    """Deterministic MONAI transforms applied once, results cached.

    Attributes:
        spatial_dims: 3 for volumes, 2 for images (a 3D volume is reduced to its axial
            slice of largest body area when 2D is asked for).
        roi: output size, (H, W) or (H, W, D) voxels.
        pixdim: target voxel size in mm, same length as ``roi``.
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
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    intensity: str = "auto"
    intensity_range: tuple[float, float] | None = None
    crop_foreground: bool | str = "auto"

    def __post_init__(self) -> None:
        check_choice("preprocess.spatial_dims", self.spatial_dims, (2, 3))
        object.__setattr__(self, "roi", check_int_tuple("preprocess.roi", self.roi, length=self.spatial_dims, low=8))
        object.__setattr__(
            self, "pixdim", check_float_tuple("preprocess.pixdim", self.pixdim, length=self.spatial_dims)
        )
        low, high = check_float_tuple("preprocess.hu_window", self.hu_window, length=2)
        if low >= high:
            raise ConfigError(f"'preprocess.hu_window' must be [low, high] with low < high; got {[low, high]}.")
        object.__setattr__(self, "hu_window", (low, high))
        check_choice("preprocess.intensity", self.intensity, ("auto", "ct_window", "fixed_range", "percentile"))
        if self.intensity_range is not None:
            low, high = check_float_tuple("preprocess.intensity_range", self.intensity_range, length=2)
            if low >= high:
                raise ConfigError(
                    f"'preprocess.intensity_range' must be [low, high] with low < high, or null to estimate it "
                    f"from the training split; got {[low, high]}."
                )
            object.__setattr__(self, "intensity_range", (low, high))
        if not (isinstance(self.crop_foreground, bool) or self.crop_foreground == "auto"):
            raise ConfigError(f"'preprocess.crop_foreground' must be true, false or auto; got {self.crop_foreground!r}.")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "PreprocessConfig":
        return cls(**_known(section(params, "preprocess"), cls, "preprocess"))


@dataclass(frozen=True)
class ModelConfig:
    """The backbone; see :func:`pipeline.models.build_backbone`.

    Attributes:
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        weights: ``none``, ``imagenet``, ``medicalnet``, ``auto`` or a checkpoint path.
        weights_sha256: expected SHA-256 (8 to 64 leading hex digits) of the checkpoint;
            overrides the published checksum of a named source (optional).
        freeze_until_epoch: epochs during which the stem and ``layer1`` stay frozen
            (0 trains everything from the start).
        backbone_lr_scale: learning rate of the pretrained layers relative to the head.
        stem_kernel_depth: 3D only: stem kernel size along depth (odd; MedicalNet needs 7).
        stem_stride_depth: 3D only: stem stride along depth; 1 keeps more depth on thin
            volumes, 2 matches the in-plane stride.
    """

    arch: str
    weights: str
    weights_sha256: str | None = None
    freeze_until_epoch: int = 0
    backbone_lr_scale: float = 1.0
    stem_kernel_depth: int = 7
    stem_stride_depth: int = 2

    def __post_init__(self) -> None:
        check_choice("model.arch", self.arch, ("resnet18", "resnet34", "resnet50"))
        if not isinstance(self.weights, str) or not self.weights:
            raise ConfigError(
                f"'model.weights' must be 'none', 'imagenet', 'medicalnet', 'auto' or a file path; got {self.weights!r}."
            )
        if self.weights_sha256 is not None and not (
            isinstance(self.weights_sha256, str)
            and 8 <= len(self.weights_sha256) <= 64
            and all(c in "0123456789abcdefABCDEF" for c in self.weights_sha256)
        ):
            raise ConfigError(
                f"'model.weights_sha256' must be 8 to 64 hexadecimal digits of the file's SHA-256 or null; "
                f"got {self.weights_sha256!r}. Compute it with `sha256sum FILE`."
            )
        check_range("model.freeze_until_epoch", self.freeze_until_epoch, low=0, integer=True)
        check_range("model.backbone_lr_scale", self.backbone_lr_scale, low=0.0, low_open=True)
        check_range("model.stem_kernel_depth", self.stem_kernel_depth, low=1, integer=True)
        if self.stem_kernel_depth % 2 == 0:
            raise ConfigError(
                f"'model.stem_kernel_depth' must be odd so the padding keeps depth centred; got "
                f"{self.stem_kernel_depth}. Use 7 (MedicalNet's) or 3."
            )
        check_range("model.stem_stride_depth", self.stem_stride_depth, low=1, integer=True)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ModelConfig":
        return cls(**_known(section(params, "model"), cls, "model"))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the Lightning Trainer.

    Attributes:
        seed: seeds Python, NumPy, torch and the on-device augmentation.
        max_epochs: epochs to train; the best epoch by validation AUC is kept.
        batch_size: samples per step.
        lr: AdamW learning rate of the head.
        weight_decay: AdamW weight decay.
        precision: Lightning precision, ``32``, ``bf16-mixed`` or ``16-mixed``; ``auto``
            picks bf16-mixed where the GPU or CPU computes bf16 natively and fp32 on a CPU
            without it (AVX2 only), where bf16 is emulated and many times slower.
        accelerator: ``cpu``, ``gpu`` or ``auto``.
        devices: devices per node (``auto`` or an integer).
        strategy: Lightning strategy, ``auto`` or ``ddp``.
        num_nodes: nodes for multi-node DDP.
        num_workers: DataLoader processes (0 reads the memory map in the main process).
        device_cache: hold the train and val splits on the training device and gather
            each batch there, so the host does no per-step reading. ``auto``: on a
            CUDA GPU when both fit in a quarter of its free memory; ``true``: always (on
            a CPU that is RAM, growing with the cohort); ``false``: stream from the cache.
        augment: random flips, intensity shift and noise on each training batch.
        augment_shift_voxels: largest random translation per axis, voxels (0: none).
        resume: continue from ``last.ckpt`` when a previous run was interrupted.
        channels_last: store weights and batches channels-last (NDHWC). Faster on recent
            NVIDIA GPUs with mixed precision (1.27x on an H200, issue 6); slower on
            CPU, hence off by default. See benchmarks/README.md.
        compile: wrap the backbone in ``torch.compile`` (a minute of compilation at the
            start; pays off on a GPU over long runs, not on CPU).
    """

    seed: int
    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    precision: str = "32"
    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    num_workers: int = 0
    device_cache: bool | str = "auto"
    augment: bool = True
    augment_shift_voxels: int = 0
    resume: bool = True
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)
        check_range("train.max_epochs", self.max_epochs, low=1, integer=True)
        check_range("train.batch_size", self.batch_size, low=1, integer=True)
        check_range("train.lr", self.lr, low=0.0, low_open=True)
        check_range("train.weight_decay", self.weight_decay, low=0.0)
        object.__setattr__(self, "precision", str(self.precision))
        check_choice("train.precision", self.precision, ("auto", "32", "bf16-mixed", "16-mixed"))
        check_choice("train.accelerator", self.accelerator, ("cpu", "gpu", "auto"))
        if self.devices != "auto":
            check_range("train.devices", self.devices, low=1, integer=True)
        check_choice("train.strategy", self.strategy, ("auto", "ddp", "ddp_spawn"))
        check_range("train.num_nodes", self.num_nodes, low=1, integer=True)
        check_range("train.num_workers", self.num_workers, low=0, integer=True)
        if not (isinstance(self.device_cache, bool) or self.device_cache == "auto"):  # 1/0 are not booleans here
            raise ConfigError(f"'train.device_cache' must be true, false or auto; got {self.device_cache!r}.")
        check_choice("train.augment", self.augment, (True, False))
        check_range("train.augment_shift_voxels", self.augment_shift_voxels, low=0, integer=True)
        check_choice("train.resume", self.resume, (True, False))
        check_choice("train.channels_last", self.channels_last, (True, False))
        check_choice("train.compile", self.compile, (True, False))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "TrainConfig":
        return cls(seed=BaseConfig.from_params(params).seed, **_known(section(params, "train"), cls, "train", skip={"seed"}))


@dataclass(frozen=True)
class EvaluateConfig:
    """How predictions become the report.

    Attributes:
        aggregate: per-patient score from several series, ``max`` or ``mean``.
        threshold: ``youden`` or ``sensitivity`` (pick the highest threshold reaching
            ``target_sensitivity`` on validation).
        target_sensitivity: used when ``threshold`` is ``sensitivity``.
        ci_method: ``delong`` or ``bootstrap`` for the AUC interval.
        n_boot: bootstrap resamples.
        calibration_bins: bins of the reliability curve and the ECE.
        subgroups: columns of predictions.csv reported per level (AUC with CI); empty
            means every extra column with 2 to 20 levels.
        calibration: ``none``, ``platt`` or ``isotonic``: the map from scores to
            probabilities fitted on validation and applied to test; thresholded metrics
            use the calibrated score.
        reader_columns: columns of predictions.csv holding a reader's rating (any
            numbers, higher meaning more suspicious), each compared with the model on
            the same patients (paired DeLong test).
        seed: bootstrap seed.
    """

    seed: int
    aggregate: str = "max"
    threshold: str = "youden"
    target_sensitivity: float = 0.9
    ci_method: str = "delong"
    n_boot: int = 2000
    calibration_bins: int = 10
    subgroups: tuple[str, ...] = field(default_factory=tuple)
    calibration: str = "platt"
    reader_columns: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_choice("evaluate.aggregate", self.aggregate, ("max", "mean"))
        check_choice("evaluate.threshold", self.threshold, ("youden", "sensitivity"))
        check_range("evaluate.target_sensitivity", self.target_sensitivity, low=0.0, high=1.0, low_open=True)
        check_choice("evaluate.ci_method", self.ci_method, ("delong", "bootstrap"))
        check_range("evaluate.n_boot", self.n_boot, low=100, integer=True)
        check_range("evaluate.calibration_bins", self.calibration_bins, low=2, integer=True)
        if not isinstance(self.subgroups, (list, tuple)) or not all(isinstance(s, str) for s in self.subgroups):
            raise ConfigError(f"'evaluate.subgroups' must be a list of column names; got {self.subgroups!r}.")
        object.__setattr__(self, "subgroups", tuple(self.subgroups))
        check_choice("evaluate.calibration", self.calibration, ("none", "platt", "isotonic"))
        readers = self.reader_columns
        if not isinstance(readers, (list, tuple)) or not all(isinstance(s, str) and s for s in readers):
            raise ConfigError(f"'evaluate.reader_columns' must be a list of column names; got {readers!r}.")
        if len(set(readers)) != len(readers):
            raise ConfigError(f"'evaluate.reader_columns' must not repeat a column; got {list(readers)!r}.")
        object.__setattr__(self, "reader_columns", tuple(readers))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "EvaluateConfig":
        return cls(
            seed=BaseConfig.from_params(params).seed,
            **_known(section(params, "evaluate"), cls, "evaluate", skip={"seed"}),
        )


def _check_codec(name: str, value: Any) -> None:
    """``auto`` or a codec Python knows (``cp1252``, ``latin-1``, ``utf-16``)."""
    import codecs

    try:
        if value != "auto":
            codecs.lookup(value)
    except (LookupError, TypeError):
        raise ConfigError(
            f"{name!r} must be 'auto' or a Python codec name such as 'cp1252' or 'latin-1'; got {value!r}."
        ) from None


def _known(values: Mapping[str, Any], cls: type, prefix: str, skip: set[str] = frozenset()) -> dict[str, Any]:
    """Keep the keys ``cls`` declares; an unknown key is a typo and stops with the valid ones."""
    fields = {name: f for name, f in cls.__dataclass_fields__.items() if name not in skip}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"params keys under {prefix!r} must be among {sorted(fields)}; got unknown {unknown}. "
            "Check the spelling in params.yaml."
        )
    missing = [
        f"{prefix}.{name}" for name, f in fields.items()
        if name not in values and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ConfigError(
            f"params keys {missing} must be set; they are missing. Add them under '{prefix}:' in params.yaml."
        )
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
