from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, DemoConfig
from tests.params import config, shipped_params, write_params
from pipeline.demo.cohort import make_cohort
from pipeline.stages import demo

# A 240 mm field of view holds no 30-45 mm lesion (the shipped default) away from other
# tissue: tiny cohorts keep the hard setting's small lesions.
TINY = {"n_patients": 8, "nifti_fraction": 0.25, "matrix": 48, "n_slices": 12, "pixel_spacing_mm": 5.0,
        "slice_thickness_mm": 5.0, "lesion_diameter_mm": [6, 15], "lung_lesion_fraction": 0.6}


def _params(tmp_path: Path, **demo_overrides) -> Path:
    path = tmp_path / "params.yaml"
    return write_params(path, base={"seed": 3}, demo={**TINY, **demo_overrides})


def test_main_writes_the_cohort_and_prints_one_summary_line(tmp_path, capsys):
    params = _params(tmp_path)
    demo.main([str(tmp_path / "raw"), str(tmp_path / "out" / "manifest.csv"), "--params", str(params)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo: 8 patients (4 with a lesion)")
    with (tmp_path / "out" / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and all((tmp_path / "raw" / row["path"]).exists() for row in rows)


def test_module_runs_from_the_command_line_with_params_yaml_in_cwd(tmp_path):
    _params(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.stages.demo", "data/raw", "data/manifest.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "8 patients" in done.stdout
    assert (tmp_path / "data" / "manifest.csv").is_file()


def test_bad_param_stops_the_stage_with_the_key_named(tmp_path, capsys):
    params = _params(tmp_path, matrix=16)
    assert demo.main([str(tmp_path / "raw"), str(tmp_path / "m.csv"), "--params", str(params)]) == 2
    assert "demo failed: 'demo.matrix' must be in [32, inf]; got 16" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


def test_lesion_params_reach_the_phantom(tmp_path, monkeypatch):
    written = []

    def recording(*args, **kwargs):  # the real make_cohort; keeps its summary for the asserts
        written.append(make_cohort(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(demo, "make_cohort", recording)
    params = _params(tmp_path, lesion_diameter_mm=[20, 24], lung_lesion_fraction=1.0, n_slices=24)
    demo.main([str(tmp_path / "raw"), str(tmp_path / "m.csv"), "--params", str(params)])
    lesions = [r.lesion for r in written[0].records if r.lesion is not None]
    assert len(lesions) == 4 and all(lesion.tissue == "lung" for lesion in lesions)
    # a tenth of lesions are drawn 3-6 mm whatever the range; the rest come from it
    assert all(20 <= lesion.diameter_mm <= 24 or lesion.diameter_mm <= 6 for lesion in lesions)
    assert sum(20 <= lesion.diameter_mm <= 24 for lesion in lesions) >= 3


def test_from_params_reads_every_key_and_names_a_missing_one():
    params = shipped_params()
    params["base"]["seed"], params["demo"]["n_patients"] = 5, 40
    demo_config = DemoConfig.from_params(params)
    assert (demo_config.seed, demo_config.n_patients, demo_config.matrix) == (5, 40, params["demo"]["matrix"])
    del params["demo"]["matrix"]
    with pytest.raises(ConfigError, match=r"params keys \['demo.matrix'\] must be set; they are missing"):
        DemoConfig.from_params(params)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_patients": 4}, r"'demo.n_patients' must be in \[8, inf\]; got 4"),
        ({"n_patients": 10.5}, r"'demo.n_patients' must be an integer; got 10.5"),
        ({"nifti_fraction": 1.5}, r"'demo.nifti_fraction' must be in \[0.0, 1.0\]; got 1.5"),
        ({"pixel_spacing_mm": 0.0}, r"'demo.pixel_spacing_mm' must be in \(0.0, inf\]; got 0.0"),
        ({"matrix": 64, "pixel_spacing_mm": 2.5}, r"'demo.matrix' x 'demo.pixel_spacing_mm' must be at least 200 mm"),
        ({"n_slices": 8, "slice_thickness_mm": 5.0}, r"'demo.n_slices' x 'demo.slice_thickness_mm' must be at least 60 mm.*got 8 x 5.0 = 40"),
        ({"lesion_diameter_mm": [15, 6]}, r"'demo.lesion_diameter_mm' must be \[low, high\] with 3 <= low <= high <= 50 \(mm\); got \[15, 6\]"),
        ({"lesion_diameter_mm": [2, 6]}, r"'demo.lesion_diameter_mm' must be \[low, high\].*got \[2, 6\]"),
        ({"lesion_diameter_mm": [6]}, r"'demo.lesion_diameter_mm' must be a list of 2 numbers; got \[6\]"),
        ({"lung_lesion_fraction": -0.1}, r"'demo.lung_lesion_fraction' must be in \[0.0, 1.0\]; got -0.1"),
    ],
)
def test_config_errors_name_key_rule_and_value(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(DemoConfig, seed=0, **overrides)


def test_unknown_or_missing_params_are_named():
    with pytest.raises(ConfigError, match=r"params keys under 'demo' must be among .*got unknown \['n_patient'\]"):
        DemoConfig.from_params({"base": {"seed": 0}, "demo": {"n_patient": 10}})
    with pytest.raises(ConfigError, match=r"params section 'demo' must be a mapping"):
        DemoConfig.from_params({"base": {"seed": 0}})
    with pytest.raises(ConfigError, match=r"params key 'base.seed' must be set"):
        DemoConfig.from_params({"base": {}, "demo": {}})


def test_an_external_site_is_a_cohort_of_its_own_with_a_noisier_scanner(tmp_path, capsys):
    import hashlib

    import pydicom

    from pipeline.demo.dicom_writer import EXTERNAL_SITE, SITES

    params = _params(tmp_path)
    assert demo.main([str(tmp_path / "raw"), str(tmp_path / "m.csv"), "--params", str(params)]) == 0
    before = {p.relative_to(tmp_path / "raw"): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (tmp_path / "raw").rglob("*") if p.is_file()}
    assert demo.main([str(tmp_path / "site" / "raw"), str(tmp_path / "site" / "m.csv"), "--params", str(params),
                      "--external-site", "site_z"]) == 0
    with (tmp_path / "m.csv").open() as handle:
        internal = list(csv.DictReader(handle))
    with (tmp_path / "site" / "m.csv").open() as handle:
        external = list(csv.DictReader(handle))
    assert len(external) == 8 and {r["site"] for r in external} == {"site_z"}
    assert {r["site"] for r in internal} == {s.name for s in SITES}
    assert not {r["patient_id"] for r in internal} & {r["patient_id"] for r in external}
    assert sum(int(r["label"]) for r in external) == 4
    dicom = next(p for p in (tmp_path / "site" / "raw").rglob("*") if p.is_file() and not p.name.endswith(".nii.gz"))
    header = pydicom.dcmread(dicom, stop_before_pixels=True)
    assert header.Manufacturer == EXTERNAL_SITE.manufacturer
    assert EXTERNAL_SITE.noise_sd_hu > max(s.noise_sd_hu for s in SITES)
    # writing the external site leaves the internal cohort as it was: written again, the same bytes
    assert demo.main([str(tmp_path / "raw"), str(tmp_path / "m.csv"), "--params", str(params)]) == 0
    assert before == {p.relative_to(tmp_path / "raw"): hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in (tmp_path / "raw").rglob("*") if p.is_file()}
    assert demo.main([str(tmp_path / "x"), str(tmp_path / "x.csv"), "--params", str(params),
                      "--external-site", "a/b"]) == 2
    assert "'--external-site' must be 1 to 64 letters" in capsys.readouterr().err
