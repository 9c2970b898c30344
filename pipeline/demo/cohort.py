"""The synthetic demo cohort: a fresh clone runs the whole pipeline on it.

:func:`make_cohort` writes ``n_patients`` chest CTs under ``raw_dir`` and a manifest
``patient_id,label,path,site``. About half carry a lesion (label 1). The files look like
a hospital export, on purpose: two scanner sites with their own vendor tags, pixel
storage and noise; fake but realistic PHI in every header; random folder and file names,
some without extension; InstanceNumber against the z order in some series; a scout
series beside the CT in about a third of the DICOM folders; and a share of patients
delivered as NIfTI in assorted axis orders. Each of these is something the ingest stage
must handle.

Determinism: the cohort plan (labels, sites, formats, identifiers) comes from one stream
seeded by ``seed``; each patient's anatomy, lesion, noise and file names come from
streams seeded by ``(seed, index)``; UIDs are hashes of the same. No clock is read, so
the same parameters give the same bytes, and DVC sees no change on a rerun.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.demo.dicom_writer import SITES, PatientHeader, Site, hex_names, write_ct_series, write_localizer
from pipeline.demo.geometry import AxialGeometry
from pipeline.demo.nifti_writer import ORIENTATIONS, write_nifti
from pipeline.demo.phantom import DEFAULT_PHANTOM, Lesion, PhantomParams, render_phantom
from pipeline.folders import empty_folder

MANIFEST_COLUMNS: tuple[str, ...] = ("patient_id", "label", "path", "site")

#: Columns of the demo's lesion ground truth (:func:`write_lesion_truth`): the centre and
#: semi-axes in patient space (DICOM LPS, mm), so they hold whatever grid a stage resamples to.
LESION_COLUMNS: tuple[str, ...] = (
    "patient_id", "tissue", "diameter_mm", "centre_x_mm", "centre_y_mm", "centre_z_mm",
    "semi_x_mm", "semi_y_mm", "semi_z_mm",
)

#: Share of DICOM patients with a scout series, and with InstanceNumber running against z.
LOCALIZER_FRACTION = 1 / 3
REVERSED_FRACTION = 0.3

_FAMILY = ("SMITH", "GARCIA", "MUELLER", "NGUYEN", "ROSSI", "KOWALSKI", "OKAFOR", "TANAKA",
           "JANSEN", "SILVA", "DUBOIS", "ANDERSSON", "MURPHY", "PATEL", "COHEN", "LARSEN")
_GIVEN = {"F": ("ANNA", "MARIA", "FATIMA", "YUKI", "SARAH", "INGRID", "CHIARA", "AMARA"),
          "M": ("JOHN", "AHMED", "LUCAS", "KENJI", "PIOTR", "DAVID", "MATEO", "OLU")}


@dataclass(frozen=True)
class PatientRecord:
    """What was written for one patient (the manifest row plus what the tests check).

    Attributes:
        patient_id: fake MRN, ``MRN`` + 7 digits; equals the files' PatientID.
        label: 1 when a lesion was drawn.
        path: manifest path, relative to ``raw_dir`` (folder for DICOM, file for NIfTI).
        site: ``Site.name``.
        fmt: ``dicom`` or ``nifti``.
        orientation: NIfTI voxel axis order (e.g. ``LPS``); ``""`` for DICOM.
        n_localizer_frames: scout images in the folder, 0 when none.
        reversed_instances: InstanceNumber decreases along +z.
        geometry: the voxel grid in patient space.
        lesion: the lesion drawn, or ``None``.
        n_files: files written for this patient.
        n_bytes: their size, bytes.
    """

    patient_id: str
    label: int
    path: str
    site: str
    fmt: str
    orientation: str
    n_localizer_frames: int
    reversed_instances: bool
    geometry: AxialGeometry
    lesion: Lesion | None
    n_files: int
    n_bytes: int


@dataclass(frozen=True)
class CohortSummary:
    """The cohort written by :func:`make_cohort`."""

    raw_dir: Path
    manifest_path: Path
    records: tuple[PatientRecord, ...]

    @property
    def n_patients(self) -> int:
        return len(self.records)

    @property
    def n_positive(self) -> int:
        return sum(r.label for r in self.records)

    @property
    def n_nifti(self) -> int:
        return sum(r.fmt == "nifti" for r in self.records)

    @property
    def n_localizer(self) -> int:
        return sum(r.n_localizer_frames > 0 for r in self.records)

    @property
    def n_files(self) -> int:
        return sum(r.n_files for r in self.records)

    @property
    def n_bytes(self) -> int:
        return sum(r.n_bytes for r in self.records)

    def line(self) -> str:
        """One line for the stage log."""
        n_dicom = self.n_patients - self.n_nifti
        return (
            f"demo: {self.n_patients} patients ({self.n_positive} with a lesion): {n_dicom} DICOM "
            f"({self.n_localizer} with a scout), {self.n_nifti} NIfTI; {self.n_files} files, "
            f"{self.n_bytes / 1e6:.1f} MB in {self.raw_dir}; manifest {self.manifest_path}"
        )


@dataclass(frozen=True)
class _Plan:
    index: int
    patient_id: str
    label: int
    site: Site
    fmt: str
    orientation: str
    n_localizer_frames: int
    reversed_instances: bool
    name: str
    header: PatientHeader


def make_cohort(
    raw_dir: Path,
    manifest_path: Path,
    *,
    seed: int,
    n_patients: int,
    nifti_fraction: float,
    matrix: int,
    n_slices: int,
    pixel_spacing_mm: float,
    slice_thickness_mm: float,
    phantom: PhantomParams = DEFAULT_PHANTOM,
    sites: tuple[Site, ...] = SITES,
) -> CohortSummary:
    """Write the demo cohort under ``raw_dir`` and its manifest at ``manifest_path``.

    ``raw_dir`` is emptied first so a rerun leaves no stale files (DVC removes outputs
    before a run anyway; this makes a manual run behave the same).

    Args:
        raw_dir: folder for the raw files; created, or cleared if it exists.
        manifest_path: CSV with columns :data:`MANIFEST_COLUMNS`.
        seed: the cohort seed; see the module docstring.
        n_patients: patients to write; ``n_patients // 2`` get a lesion.
        nifti_fraction: share of patients written as NIfTI (rounded to whole patients).
        matrix: rows and columns of each slice.
        n_slices: slices per volume.
        pixel_spacing_mm: in-plane pixel size, mm.
        slice_thickness_mm: slice thickness and spacing, mm.
        phantom: phantom constants (tune learnability there).
        sites: the scanner sites patients are spread over (the two internal ones; one
            site, e.g. :data:`~pipeline.demo.dicom_writer.EXTERNAL_SITE`, for an external cohort).

    Returns:
        A summary with one :class:`PatientRecord` per patient, in manifest order.
    """
    raw_dir, manifest_path = Path(raw_dir), Path(manifest_path)
    empty_folder(raw_dir, name="raw_dir", example="data/demo/raw")
    plans = _plan_cohort(seed, n_patients, nifti_fraction, sites)
    shape = (n_slices, matrix, matrix)
    records = [
        _write_patient(raw_dir, plan, seed, shape, pixel_spacing_mm, slice_thickness_mm, phantom) for plan in plans
    ]
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with manifest_path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for record in records:
            writer.writerow([record.patient_id, record.label, record.path, record.site])
    return CohortSummary(raw_dir=raw_dir, manifest_path=manifest_path, records=tuple(records))


def patient_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """The independent random streams of patient ``index``: anatomy, lesion, noise, files."""
    children = np.random.SeedSequence([seed, 1, index]).spawn(4)
    return {name: np.random.default_rng(child) for name, child in zip(("anatomy", "lesion", "noise", "files"), children)}


def site_seed(seed: int, name: str) -> int:
    """The cohort seed of a demo external site ``name``: its own patients, whatever ``seed`` made the internal ones."""
    return int.from_bytes(hashlib.sha256(f"demo-external/{seed}/{name}".encode()).digest()[:4], "big")


def _plan_cohort(seed: int, n_patients: int, nifti_fraction: float, sites: tuple[Site, ...]) -> list[_Plan]:
    """Decide who is positive, at which site, in which format, with what mess.

    Counts are exact (a permutation picks who), so even an 8-patient test cohort has
    positives and negatives, both sites, a NIfTI, a scout and a reversed series.
    """
    rng = np.random.default_rng([seed, 0])

    def chosen(count: int, out_of: int) -> np.ndarray:
        flags = np.zeros(out_of, dtype=bool)
        flags[rng.permutation(out_of)[:count]] = True
        return flags

    labels = chosen(n_patients // 2, n_patients)
    at_site_b = chosen(n_patients // 2, n_patients)
    nifti = chosen(round(n_patients * nifti_fraction), n_patients)
    n_dicom = int((~nifti).sum())
    at_least_one = 1 if n_dicom else 0
    localizer = chosen(max(at_least_one, round(n_dicom * LOCALIZER_FRACTION)), n_dicom)
    reverse = chosen(max(at_least_one, round(n_dicom * REVERSED_FRACTION)), n_dicom)
    ids = rng.choice(9_000_000, size=n_patients, replace=False) + 1_000_000
    names = hex_names(rng, n_patients)

    plans: list[_Plan] = []
    dicom_index = nifti_index = 0
    for index in range(n_patients):
        patient_id = f"MRN{int(ids[index]):07d}"
        header = _fake_header(rng, patient_id)
        if nifti[index]:
            fmt, orientation = "nifti", ORIENTATIONS[nifti_index % len(ORIENTATIONS)]
            n_frames, reversed_instances = 0, False
            nifti_index += 1
        else:
            fmt, orientation = "dicom", ""
            n_frames = int(rng.integers(1, 3)) if localizer[dicom_index] else 0
            reversed_instances = bool(reverse[dicom_index])
            dicom_index += 1
        plans.append(
            _Plan(
                index=index,
                patient_id=patient_id,
                label=int(labels[index]),
                site=sites[int(at_site_b[index]) % len(sites)],
                fmt=fmt,
                orientation=orientation,
                n_localizer_frames=n_frames,
                reversed_instances=reversed_instances,
                name=names[index],
                header=header,
            )
        )
    return plans


def _write_patient(
    raw_dir: Path,
    plan: _Plan,
    seed: int,
    shape: tuple[int, int, int],
    pixel_spacing_mm: float,
    slice_thickness_mm: float,
    phantom: PhantomParams,
) -> PatientRecord:
    streams = patient_streams(seed, plan.index)
    volume = render_phantom(
        shape=shape,
        pixel_spacing_mm=pixel_spacing_mm,
        slice_spacing_mm=slice_thickness_mm,
        with_lesion=bool(plan.label),
        noise_sd_hu=plan.site.noise_sd_hu,
        anatomy_rng=streams["anatomy"],
        lesion_rng=streams["lesion"],
        noise_rng=streams["noise"],
        params=phantom,
    )
    files = streams["files"]
    _, rows, cols = shape
    # The table moves: each patient's slab starts somewhere else along z, and the
    # reconstruction centre wanders a few mm in plane.
    origin = (
        round(-0.5 * (cols - 1) * pixel_spacing_mm + files.uniform(-5.0, 5.0), 2),
        round(-0.5 * (rows - 1) * pixel_spacing_mm + files.uniform(-5.0, 5.0), 2),
        round(files.uniform(-300.0, -100.0), 2),
    )
    geometry = AxialGeometry(
        shape=shape, origin_lps_mm=origin, pixel_spacing_mm=pixel_spacing_mm, slice_spacing_mm=slice_thickness_mm
    )
    if plan.fmt == "nifti":
        relative = f"{plan.name}.nii.gz"
        write_nifti(raw_dir / relative, volume.hu, geometry=geometry, orientation=plan.orientation)
        paths = [raw_dir / relative]
    else:
        relative = plan.name
        folder = raw_dir / relative
        taken: set[str] = set()
        uid_key = ("demo", str(seed), str(plan.index))
        paths = write_ct_series(
            folder,
            volume.hu,
            geometry=geometry,
            patient=plan.header,
            site=plan.site,
            uid_key=uid_key,
            reverse_instances=plan.reversed_instances,
            rng=files,
            taken_names=taken,
        )
        if plan.n_localizer_frames:
            paths += write_localizer(
                folder,
                volume.hu,
                geometry=geometry,
                patient=plan.header,
                site=plan.site,
                uid_key=uid_key,
                n_frames=plan.n_localizer_frames,
                rng=files,
                taken_names=taken,
            )
    return PatientRecord(
        patient_id=plan.patient_id,
        label=plan.label,
        path=relative,
        site=plan.site.name,
        fmt=plan.fmt,
        orientation=plan.orientation,
        n_localizer_frames=plan.n_localizer_frames,
        reversed_instances=plan.reversed_instances,
        geometry=geometry,
        lesion=volume.lesion,
        n_files=len(paths),
        n_bytes=sum(p.stat().st_size for p in paths),
    )


def _fake_header(rng: np.random.Generator, patient_id: str) -> PatientHeader:
    """Invented but plausible PHI: names, dates and numbers that look like a real export."""
    sex = "F" if rng.random() < 0.5 else "M"
    family = _FAMILY[int(rng.integers(len(_FAMILY)))]
    given = _GIVEN[sex][int(rng.integers(len(_GIVEN[sex])))]
    study = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 9 * 365)))
    birth = study - dt.timedelta(days=int(rng.integers(35 * 365, 86 * 365)))
    years = study.year - birth.year - ((study.month, study.day) < (birth.month, birth.day))
    seconds = int(rng.integers(7 * 3600, 19 * 3600))
    referring_sex = "F" if rng.random() < 0.5 else "M"
    referring = f"{_FAMILY[int(rng.integers(len(_FAMILY)))]}^{_GIVEN[referring_sex][int(rng.integers(8))]}"
    return PatientHeader(
        patient_id=patient_id,
        name=f"{family}^{given}",
        birth_date=birth.strftime("%Y%m%d"),
        study_date=study.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}",
        sex=sex,
        age=f"{years:03d}Y",
        accession=f"ACC{int(rng.integers(0, 10**9)):09d}",
        referring=referring,
    )


def write_lesion_truth(path: Path, records: tuple[PatientRecord, ...]) -> int:
    """Write where each drawn lesion is (:data:`LESION_COLUMNS`); returns the rows written.

    Demo ground truth for the localisation check (``pipeline.stages.localise``), never an
    input to training: no stage before it reads the file. Axial grids only, so the
    lesion's semi-axes along (slice, row, column) lie along LPS z, y and x.
    """
    rows = []
    for record in records:
        lesion = record.lesion
        if lesion is None:
            continue
        k, r, c = lesion.centre_index
        x, y, z, _ = record.geometry.index_to_lps() @ np.array([c, r, k, 1.0])
        semi_z, semi_y, semi_x = lesion.semi_axes_mm
        rows.append([record.patient_id, lesion.tissue, f"{lesion.diameter_mm:.3f}",
                     *(f"{v:.3f}" for v in (x, y, z, semi_x, semi_y, semi_z))])
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LESION_COLUMNS)
        writer.writerows(rows)
    return len(rows)
