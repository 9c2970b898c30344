"""Provenance: a dvc.lock written by DVC itself, the files' hashes, secrets kept out, bad files named."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pytest
import yaml

from pipeline.report.provenance import REDACTED, ProvenanceError, collect_provenance, read_lock, read_train_summary
from pipeline.schema import ArtifactError
from pipeline.stages.evaluate import main
from tests.stages.test_evaluate import PARAMS, TRAIN_SUMMARY, _predictions, output_args


@pytest.fixture(scope="module")
def dvc_repo(module_tmp):
    """Two stages run by ``dvc repro``: prepare (file -> folder), then a report writing metrics.json."""
    repo = module_tmp("dvc")
    (repo / "source.txt").write_text("hello\n")
    stages = {
        "prepare": {"cmd": "mkdir -p data/raw && cp source.txt data/raw/a.txt && cp source.txt data/raw/b.txt",
                    "deps": ["source.txt"], "outs": ["data/raw"]},
        "any_name": {"cmd": "mkdir -p reports && echo '{\"auc\": 0.5}' > reports/metrics.json", "deps": ["data/raw"],
                     "metrics": [{"reports/metrics.json": {"cache": False}}]},
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    for args in (["init", "--no-scm", "-q"], ["repro", "-q"]):
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return repo


def test_a_lock_written_by_dvc_gives_each_path_its_hash(dvc_repo):
    entries = read_lock(dvc_repo / "dvc.lock", own_outputs=[])
    got = {(e.stage, e.kind, e.path): e for e in entries}
    assert list(got) == [("prepare", "dep", "source.txt"), ("prepare", "out", "data/raw"),
                         ("any_name", "dep", "data/raw"), ("any_name", "out", "reports/metrics.json")]
    assert got["prepare", "dep", "source.txt"].digest == hashlib.md5(b"hello\n").hexdigest()
    assert got["prepare", "dep", "source.txt"].size == 6
    folder = got["prepare", "out", "data/raw"]
    assert folder.digest.endswith(".dir") and (folder.nfiles, folder.size) == (2, 12)
    assert got["any_name", "dep", "data/raw"].digest == folder.digest
    metrics = (dvc_repo / "reports" / "metrics.json").read_bytes()
    assert got["any_name", "out", "reports/metrics.json"].digest == hashlib.md5(metrics).hexdigest()


def test_the_running_stage_is_left_out_by_its_outputs(dvc_repo, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the lock's paths are relative to its own folder, not to here
    entries = read_lock(dvc_repo / "dvc.lock", own_outputs=[dvc_repo / "reports" / "metrics.json"])
    assert {e.stage for e in entries} == {"prepare"}


def test_provenance_hashes_the_inputs_and_redacts_secrets(tmp_path):
    predictions, other = tmp_path / "predictions.csv", tmp_path / "other.csv"
    predictions.write_bytes(b"patient_id,split,label,score\n")
    other.write_bytes(b"something else\n")
    params = {"ingest": {"pseudonym_key": "k", "workers": 2}, "nested": {"deep": {"api_token": "t", "n": 1}}}
    prov = collect_provenance(predictions, params=params, params_file="params.yaml", compare=other,
                              lock=tmp_path / "dvc.lock")
    assert prov.predictions_sha256 == hashlib.sha256(predictions.read_bytes()).hexdigest()
    assert prov.compare_sha256 == hashlib.sha256(b"something else\n").hexdigest()
    assert prov.params == {"ingest": {"pseudonym_key": REDACTED, "workers": 2},
                           "nested": {"deep": {"api_token": REDACTED, "n": 1}}}
    assert params["ingest"]["pseudonym_key"] == "k"  # the caller's params are not changed
    assert prov.lock is None and prov.notes == [
        f"dvc.lock not found at {str(tmp_path / 'dvc.lock')!r}: data hashes are not shown. Run the stage through dvc repro."
    ]


@pytest.mark.parametrize(("content", "message"), [
    (None, r"lock file '.*' must exist when --lock is given; it was not found\. It is written by dvc repro"),
    ("stages: [unclosed", r"lock file '.*' must be valid YAML; got "),
    ("schema: '2.0'\n", r"lock file '.*' must have a 'stages' mapping \(DVC lock schema 2\.0\); got none\."),
])
def test_a_bad_lock_file_is_named(tmp_path, content, message):
    lock = tmp_path / "dvc.lock"
    if content is not None:
        lock.write_text(content)
    with pytest.raises(ProvenanceError, match=message):
        read_lock(lock, own_outputs=[])


@pytest.mark.parametrize(("content", "message"), [
    (None, r"train summary '.*' must exist when --train-summary is given; it was not found\. Run the train stage"),
    ("{not json", r"train summary '.*' must be valid JSON; got "),
    ("[1, 2]", r"train summary '.*' must hold a JSON object; got list\."),
])
def test_a_bad_train_summary_is_named(tmp_path, content, message):
    path = tmp_path / "train_summary.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProvenanceError, match=message):
        read_train_summary(path)


def test_the_stage_names_the_key_a_train_summary_lacks_in_one_line(tmp_path, capsys):
    predictions = tmp_path / "predictions.csv"
    _predictions(predictions)
    (tmp_path / "params.yaml").write_text(PARAMS)
    summary = tmp_path / "train_summary.json"
    summary.write_text(json.dumps({k: v for k, v in TRAIN_SUMMARY.items() if k != "best_val_auc"}))
    args = [str(predictions), *output_args(tmp_path / "out"), "--params", str(tmp_path / "params.yaml"),
            "--train-summary", str(summary)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"evaluate failed: train summary '{re.escape(str(summary))}' must have the key 'best_val_auc'; "
                        r"it is missing\. It is written by the train stage: run it again \(dvc repro train\), or leave "
                        r"--train-summary out\.\n", err), err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArtifactError):
        read_train_summary(summary)
