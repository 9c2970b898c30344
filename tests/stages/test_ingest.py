from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import yaml

from pipeline.config import DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV
from tests.params import config, write_params
from pipeline.stages.ingest import main
from tests.io.dicom_builders import write_ct_series, write_localizer


@pytest.fixture
def workspace(tmp_path: Path) -> dict:
    raw = tmp_path / "raw"
    write_ct_series(raw / "a1", 6, seed=1)
    write_localizer(raw / "a1", 1, seed=2)
    write_ct_series(raw / "b2", 5, seed=3)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("patient_id,label,path,site\nP1,1,a1,north\nP2,0,b2,south\n")
    params = tmp_path / "params.yaml"
    write_params(params, ingest={"pseudonym_key": "params-key-123", "series_choice": "most_slices",
                                 "spacing_policy": "reject", "workers": 1})
    return {"raw": raw, "manifest": manifest, "params": params, "out": tmp_path / "out"}


def test_stage_writes_outputs_and_prints_one_summary_line(
    workspace: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    code = main([str(workspace["raw"]), str(workspace["manifest"]), str(workspace["out"]), "--params", str(workspace["params"])])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == [
        "ingest: 12 files = 11 ingested + 1 skipped + 0 quarantined + 0 not_image + 0 unreferenced; "
        "2 volumes for 2/2 manifest rows, 2 patients"
    ]
    index = list(csv.DictReader((workspace["out"] / "index.csv").open()))
    assert [r["site"] for r in index] == ["north", "south"]
    assert all((workspace["out"] / r["image_path"]).is_file() for r in index)


def test_the_environment_key_overrides_the_params_key(
    workspace: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [str(workspace["raw"]), str(workspace["manifest"]), str(workspace["out"]), "--params", str(workspace["params"])]
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    main(args)
    from_params = [r["patient_id"] for r in csv.DictReader((workspace["out"] / "index.csv").open())]
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "environment-key-456")
    main(args)
    from_env = [r["patient_id"] for r in csv.DictReader((workspace["out"] / "index.csv").open())]
    assert from_params != from_env and len(set(from_env)) == 2


def test_a_manifest_error_exits_2_with_every_bad_line(
    workspace: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    workspace["manifest"].write_text("patient_id,label,path\nP1,3,a1\n,0,b2\n")
    code = main([str(workspace["raw"]), str(workspace["manifest"]), str(workspace["out"]), "--params", str(workspace["params"])])
    assert code == 2
    error = capsys.readouterr().err
    assert "line 2: 'label' (column 2) must be 0 or 1; got a number of 1 digit(s)" in error
    assert "line 3: 'patient_id' (column 1) must not be empty" in error
    assert "P1" not in error and "a1" not in error


def test_a_short_key_is_refused_with_the_fix(workspace: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "short")
    code = main([str(workspace["raw"]), str(workspace["manifest"]), str(workspace["out"]), "--params", str(workspace["params"])])
    assert code == 2
    assert f"Set {PSEUDONYM_KEY_ENV} in the environment" in capsys.readouterr().err


def test_the_public_demo_key_is_flagged_and_a_private_key_is_not(
    workspace: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [str(workspace["raw"]), str(workspace["manifest"]), str(workspace["out"]), "--params", str(workspace["params"])]
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, DEMO_PSEUDONYM_KEY)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "the pseudonym key is the public demo key" in err and "dvc repro -f ingest" in err
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-private-key-789")
    assert main(args) == 0
    assert "public demo key" not in capsys.readouterr().err


def test_params_yaml_ships_the_key_the_stage_knows_as_public() -> None:
    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    assert params["ingest"]["pseudonym_key"] == DEMO_PSEUDONYM_KEY


def test_a_non_string_key_is_refused_without_echoing_it() -> None:
    from pipeline.config import ConfigError, IngestConfig

    with pytest.raises(ConfigError, match=r"'ingest.pseudonym_key' must be a string; got a int .*Quote it") as caught:
        config(IngestConfig, pseudonym_key=12345678)
    assert "12345678" not in str(caught.value)


def test_workers_auto_uses_every_core_and_progress_goes_to_stderr_with_the_store(
    workspace: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipeline.config import IngestConfig

    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    assert config(IngestConfig, pseudonym_key="k" * 8, workers="auto").workers == len(os.sched_getaffinity(0))
    write_params(workspace["params"], ingest={"pseudonym_key": "params-key-123", "workers": "auto", "volume_format": "nii"})
    args = [str(workspace["raw"]), str(workspace["manifest"]), str(workspace["out"]), "--params", str(workspace["params"])]
    assert main([*args, "--store", str(tmp_path / "store")]) == 0
    captured = capsys.readouterr()
    assert "ingest: headers: 12/12 files" in captured.err and "ingest: volumes: 11/11 files" in captured.err
    assert captured.out.count("\n") == 1  # the summary alone
    index = list(csv.DictReader((workspace["out"] / "index.csv").open()))
    assert all(r["image_path"].endswith(".nii") and (workspace["out"] / r["image_path"]).is_file() for r in index)
    assert main([*args, "--store", str(workspace["raw"] / "store")]) == 2
    assert "'store' must not be inside 'raw_dir'" in capsys.readouterr().err


@pytest.mark.parametrize(("key", "value", "message"), [
    ("workers", "many", r"'ingest.workers' must be 'auto' or an integer >= 1; got 'many'"),
    ("volume_format", "nii.bz2", r"'ingest.volume_format' must be one of \['nii', 'nii.gz'\]; got 'nii.bz2'"),
])
def test_bad_workers_or_format_is_refused_with_the_choices(key: str, value: str, message: str) -> None:
    from pipeline.config import ConfigError, IngestConfig

    with pytest.raises(ConfigError, match=message):
        config(IngestConfig, pseudonym_key="k" * 8, **{key: value})
