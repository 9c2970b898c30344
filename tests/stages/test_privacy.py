"""One scanner for planted identifiers across every ledger status and error path of ingest.

Identifiers are planted where a hospital export has them: DICOM headers (name, MRN,
birth date, accession number), folder and file names (also of files no manifest row
reaches, whose headers are never read), and manifest cells. The real stage runs in a
subprocess; every byte it writes (volumes decompressed), its stdout and its stderr are
searched.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom

from tests.io.dicom_builders import PHI, PYDICOM_FILES, write_ct_series
from tests.params import write_params

ROOT = Path(__file__).resolve().parents[2]
FOLDER = "Doe_Jane_MRN11112222"
PLANTED = (
    "Doe_Jane", "Doe^Jane", "MRN11112222", "11112222", "Testperson", "Gudrun", "4417023",
    "19510723", "1951-07-23", "99120455", "Saint Example",
)
"""Values that must appear nowhere: the folder's name and MRN, and PHI from dicom_builders."""


def _raw_with_every_status(tmp_path: Path) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    series = write_ct_series(raw / FOLDER / "CT", 6, seed=1, duplicate=(2,))  # ingested + skipped duplicate
    names = [p for p in series["paths"] if p is not None]
    os.rename(names[0], raw / FOLDER / "CT" / "Doe_Jane_19510723_00.dcm")
    (raw / FOLDER / "Doe_Jane_notes.txt").write_text("Doe^Jane 19510723 ACC-99120455")  # quarantined
    report = pydicom.dcmread(PYDICOM_FILES / "rtstruct.dcm", force=True)
    report.PatientName, report.PatientID = PHI["PatientName"], PHI["PatientID"]
    report.save_as(raw / FOLDER / "Doe_Jane_structures.dcm")  # not_image
    old = raw / f"{FOLDER}_old"  # unreferenced: no header of these is ever read
    old.mkdir()
    shutil.copyfile(names[1], old / "Doe_Jane_00.dcm")
    os.symlink(tmp_path / "nowhere", old / "Doe_Jane_link.dcm")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "patient_id,label,path,site,birth_date,accession\n"
        f"MRN11112222,1,{FOLDER},north,1951-07-23,ACC-99120455\n"
    )
    return raw, manifest


def _run(raw: Path, manifest: Path, out: Path, params: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIPELINE_PSEUDONYM_KEY": "privacy-test-key-0123"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.stages.ingest", str(raw), str(manifest), str(out), "--params", str(params)],
        cwd=ROOT, env=env, capture_output=True, check=False, text=True, timeout=300, errors="backslashreplace",
    )


def _written(out: Path) -> str:
    texts = []
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            texts.append((gzip.decompress(data) if path.name.endswith(".gz") else data).decode("latin-1"))
    return "\n".join(texts)


def test_no_planted_identifier_reaches_outputs_stdout_or_stderr(tmp_path: Path) -> None:
    raw, manifest = _raw_with_every_status(tmp_path)
    params = tmp_path / "params.yaml"
    write_params(params, ingest={"pseudonym_key": "params-key-123", "workers": 2})
    out = tmp_path / "out"
    done = _run(raw, manifest, out, params)
    assert done.returncode == 0, done.stderr
    assert "11 files = 6 ingested + 1 skipped + 1 quarantined + 1 not_image + 2 unreferenced" in done.stdout
    bad = tmp_path / "bad.csv"  # an error path: every cell wrong, every cell an identifier
    bad.write_text(f"patient_id,label,path,split\nMRN11112222,19510723,{FOLDER}_missing,1951-07-23\n")
    failed = _run(raw, bad, tmp_path / "out_bad", params)
    assert failed.returncode == 2 and "line 2:" in failed.stderr
    headerless = tmp_path / "headerless.csv"  # the header row deleted: the first row is data
    headerless.write_text(f"MRN11112222,1,{FOLDER}\n")
    missing_header = _run(raw, headerless, tmp_path / "out_headerless", params)
    assert missing_header.returncode == 2
    seen = "\n".join(
        [_written(out), done.stdout, done.stderr, failed.stdout, failed.stderr, missing_header.stdout, missing_header.stderr]
    )
    leaked = [value for value in PLANTED if value in seen]
    assert not leaked, f"identifiers written: {leaked}"
