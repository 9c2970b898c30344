"""The real ``dvc repro`` on a 2D cohort as teams have them (issue 16), in a temporary copy.

A folder of PNG and JPEG files of mixed sizes (grey and colour, one 1,920 x 1,080
screenshot, one damaged file) with a manifest, plus an RGB ultrasound-like DICOM export
without pixel spacing, go through ingest, split, preprocess (``resize: fit``,
``channels: auto``), train and evaluate. Tiny, so it runs in a minute or two on a CPU.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from PIL import Image, PngImagePlugin
from pydicom.uid import generate_uid

from tests.duplicate_cohort import smooth_image
from tests.io.dicom_builders import PHI, PYDICOM_FILES
from tests.test_e2e import ROOT, run
from tests.io.dicom_builders import PHI, PYDICOM_FILES

RAW = "data/clinic/raw"
MANIFEST = "data/clinic/manifest.csv"
SETTINGS = {
    "data": {"raw_dir": RAW, "manifest": MANIFEST},
    "preprocess": {"spatial_dims": 2, "roi": [48, 48], "pixdim": [1.0, 1.0], "resize": "fit", "channels": "auto"},
    "model": {"weights": "none"},
    "train": {"max_epochs": 2, "batch_size": 4},
    "evaluate": {"n_boot": 200},
}
NAMED_FILE = "Doe_Jane_visit2.png"


def _scene(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A distinct smooth picture (tests.duplicate_cohort's, so no two are near copies), rows x cols, 20-220."""
    return np.asarray(Image.fromarray(smooth_image(rng, size=64)).resize((cols, rows), Image.BILINEAR), np.float64)


def _disc(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    cy, cx, r = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.3, 0.7) * cols, min(rows, cols) * rng.uniform(0.1, 0.2)
    return (y - cy) ** 2 + (x - cx) ** 2 < r * r


def _picture(rng: np.random.Generator, rows: int, cols: int, positive: bool, colour: bool) -> np.ndarray:
    """A photograph-like picture, RGB or grey uint8; a positive one holds a bright (red) disc."""
    scene = _scene(rng, rows, cols)
    picture = np.stack([scene, scene * 0.8, scene * 0.6] if colour else [scene] * 3, axis=-1)
    if positive:
        picture[_disc(rng, rows, cols)] = (240, 60, 60) if colour else (245, 245, 245)
    picture = np.clip(picture + rng.normal(0, 4, picture.shape), 0, 255).astype(np.uint8)
    return picture if colour else picture[..., 0]


def _ultrasound(rng: np.random.Generator, positive: bool) -> np.ndarray:
    """An RGB ultrasound-like frame, 120 x 160: a grey fan of tissue, a colour annotation, Doppler colour when positive."""
    y, x = np.mgrid[0:120, 0:160]
    fan = (np.hypot(x - 80, y) < 115) & (np.abs(x - 80) < y * 0.9)
    tissue = _scene(rng, 120, 160) * rng.gamma(4.0, 0.25, (120, 160))
    frame = np.repeat(np.where(fan, tissue, 0)[..., None], 3, axis=-1)
    if positive:
        frame[_disc(rng, 120, 160) & fan] = (220, 40, 40)
    frame[5:15, 5:40] = (255, 255, 0)  # an on-screen annotation in colour
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_clinic(folder: Path) -> dict[str, int]:
    """Pictures and an ultrasound DICOM export with a manifest; returns what was written."""
    rng = np.random.default_rng(11)
    raw = folder / "raw"
    (raw / "photos").mkdir(parents=True)
    (raw / "us").mkdir()
    lines = ["patient_id,label,path,site"]
    sizes = [(180, 240), (300, 300), (1080, 1920), (200, 150), (256, 256), (400, 320)]
    for i in range(18):
        rows, cols = sizes[i % len(sizes)]
        positive = i % 2 == 1
        picture = _picture(rng, rows, cols, positive, colour=i % 3 == 0)
        name = NAMED_FILE if i == 0 else f"img_{i:02d}.{'jpg' if i % 4 == 2 else 'png'}"
        if name.endswith(".png"):
            info = PngImagePlugin.PngInfo()
            info.add_text("Author", PHI["PatientName"])  # a name in a text chunk: never copied
            Image.fromarray(picture).save(raw / "photos" / name, pnginfo=info)
        else:
            Image.fromarray(picture).save(raw / "photos" / name, quality=92)
        lines.append(f"PH-{i:03d},{int(positive)},photos/{name},clinic_a")
    (raw / "photos" / "img_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    lines.append("PH-900,0,photos/img_broken.png,clinic_a")
    template = pydicom.dcmread(PYDICOM_FILES / "SC_rgb_small_odd.dcm")
    for i in range(10):
        ds = template.copy()
        frame = _ultrasound(rng, i % 2 == 1)
        ds.Rows, ds.Columns = frame.shape[:2]
        ds.PixelData = frame.tobytes()
        ds.Modality = "US"
        for keyword in ("PixelSpacing", "ImagerPixelSpacing", "SliceThickness"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.SeriesInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID = generate_uid()
        ds.PatientName, ds.PatientID = PHI["PatientName"], f"US-{i:03d}"
        ds.save_as(raw / "us" / f"frame{i:02d}.dcm", enforce_file_format=True)
        lines.append(f"US-{i:03d},{i % 2},us/frame{i:02d}.dcm,clinic_b")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return {"files": 18 + 1 + 10, "rows": 18 + 1 + 10, "colour_pictures": 6}


@pytest.fixture(scope="module")
def repo(module_tmp) -> Path:
    repo = module_tmp("repo2d")
    shutil.copytree(ROOT / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in SETTINGS.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_clinic(repo / "data" / "clinic")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "2d"]):
        assert run(args, repo).returncode == 0, args
    result = run(["dvc", "repro", "evaluate"], repo)  # the demo stage has nothing to give this cohort
    (repo / "repro.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return repo


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.e2e
def test_every_picture_and_dicom_file_is_in_the_ledger_and_the_counts_add_up(repo):
    ledger = _rows(repo / "data" / "ingested" / "ledger.csv")
    n_files = sum(1 for p in (repo / RAW).rglob("*") if p.is_file())
    assert len(ledger) == n_files == 29
    statuses = [r["status"] for r in ledger]
    assert statuses.count("ingested") == 28 and statuses.count("quarantined") == 1
    line = next(x for x in (repo / "repro.log").read_text().splitlines() if x.startswith("ingest: "))
    assert line.startswith("ingest: 29 files = 28 ingested + 0 skipped + 1 quarantined + 0 not_image + 0 unreferenced; "
                           "28 volumes for 28/29 manifest rows")
    index = _rows(repo / "data" / "ingested" / "index.csv")
    kinds = {(r["source_format"], r["modality"], r["channels"]) for r in index}
    assert kinds == {("png", "OT", "1"), ("png", "OT", "3"), ("jpeg", "OT", "1"), ("jpeg", "OT", "3"),
                     ("dicom", "US", "3")}
    assert all("1 mm pixels" in r["ingest_note"] for r in index)


@pytest.mark.e2e
def test_colour_reaches_the_model_and_every_image_fills_the_roi(repo):
    meta = json.loads((repo / "data" / "cache" / "meta.json").read_text())
    assert meta["in_channels"] == 3 and meta["resize"] == "fit"
    assert meta["channels_reason"].startswith("auto: rgb, ")
    assert meta["excluded"] == 0 and meta["roi_crop_warnings"] == 0
    shapes = {r["series_key"]: [int(v) for v in r["shape"].split("x")] for r in _rows(repo / "data" / "ingested" / "index.csv")}
    seen = set()
    for part in ("train", "val", "test"):
        images = np.load(repo / "data" / "cache" / f"{part}.npy", mmap_mode="r")
        assert images.shape[1:] == (3, 48, 48)
        for image, row in zip(images, _rows(repo / "data" / "cache" / f"{part}.csv")):
            # fit: the longer side fills the ROI, the shorter keeps the aspect ratio; the rest is padding (exact 0)
            shape = shapes[row["series_key"]]
            expected = [round(48 * s / max(shape)) for s in shape]
            content = np.abs(np.asarray(image, dtype=np.float32)).max(axis=0) > 0
            spans = [int(np.ptp(np.flatnonzero(content.any(axis=1 - a)))) + 1 for a in (0, 1)]
            assert all(abs(got - want) <= 2 for got, want in zip(spans, expected)), (shape, spans, expected)
            seen.add(tuple(shape))
    assert {(1920, 1080), (240, 180)} <= seen  # a 1,920 px screenshot and a 180 px photograph among them
    summary = json.loads((repo / "reports" / "train_summary.json").read_text())
    assert summary["model"]["in_channels"] == 3


@pytest.mark.e2e
def test_the_report_is_written_and_no_identifier_reaches_the_outputs(repo):
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    for part in ("val", "test"):
        assert 0.0 <= metrics[part]["auc"] <= 1.0 and metrics[part]["n_positive"] >= 1
    print(f"e2e 2D cohort: val AUC {metrics['val']['auc']:.3f} ({metrics['val']['n_patients']} patients), "
          f"test AUC {metrics['test']['auc']:.3f} ({metrics['test']['n_patients']} patients)")
    leaks = [PHI["PatientName"], "Doe_Jane", "PH-000", "US-001"]
    for folder in ("data/ingested", "data/cache", "reports", "data/split.csv", "data/duplicates.csv"):
        target = repo / folder
        for path in [target] if target.is_file() else target.rglob("*"):
            if path.is_file() and path.suffix in {".csv", ".json", ".html", ".md"}:
                text = path.read_text(errors="ignore")
                assert not [x for x in leaks if x in text], path
