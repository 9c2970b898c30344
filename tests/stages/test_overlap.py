"""Every stage refuses, before writing anything, an output that is, contains or lies inside an input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.stages import demo, evaluate, ingest, preprocess, split, train
from tests.io.dicom_builders import write_ct_series
from tests.params import params_text, write_params
from tests.stages.test_evaluate import PARAMS as EVALUATE_PARAMS
from tests.stages.test_evaluate import _predictions, output_args
from tests.test_preprocessing import make_index

INGEST_PARAMS = params_text(ingest={"pseudonym_key": "params-key-123", "series_choice": "most_slices",
                                     "spacing_policy": "reject", "workers": 1})
SPLIT_PARAMS = params_text(base={"seed": 1}, split={"val_fraction": 0.2, "test_fraction": 0.3})


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(capsys, stage: str, out: str, relation: str, inp: str, *paths: Path) -> None:
    err = capsys.readouterr().err
    assert re.fullmatch(rf"{stage} failed: '{re.escape(out)}' must not {relation} '{re.escape(inp)}'; got .*"
                        rf"Give '{re.escape(out)}' a path of its own, outside every input.*\n", err), err
    assert err.count("\n") == 1
    for path in paths:
        assert str(path) in err


def _raw(folder: Path) -> None:
    write_ct_series(folder / "a1", 4, seed=1)
    write_ct_series(folder / "b2", 3, seed=2)


@pytest.mark.parametrize(
    ("layout", "relation", "inp"),
    [
        ("raw inside out", "contain", "raw_dir"),  # the reported case: `ingest X/volumes manifest.csv X`
        ("out is raw", "be", "raw_dir"),
        ("out inside raw", "be inside", "raw_dir"),
        ("manifest inside out", "contain", "manifest"),
        ("out links to raw's parent", "contain", "raw_dir"),
    ],
)
def test_ingest_refuses_and_every_raw_file_is_still_there(tmp_path, capsys, layout, relation, inp):
    x = tmp_path / "X"
    raw, manifest, out = x / "volumes", tmp_path / "manifest.csv", x
    if layout == "out is raw":
        out = raw
    elif layout == "out inside raw":
        out = raw / "out"
    elif layout == "manifest inside out":
        raw, out, manifest = tmp_path / "raw", tmp_path / "out", tmp_path / "out" / "manifest.csv"
        out.mkdir()
    elif layout == "out links to raw's parent":
        out = tmp_path / "link"
        out.symlink_to(x)
    _raw(raw)
    manifest.write_text("patient_id,label,path\nP1,1,a1\nP2,0,b2\n")
    (tmp_path / "params.yaml").write_text(INGEST_PARAMS)
    before = _tree(tmp_path)

    assert ingest.main([str(raw), str(manifest), str(out), "--params", str(tmp_path / "params.yaml")]) == 2
    _refused(capsys, "ingest", "out_dir", relation, inp, out)
    assert _tree(tmp_path) == before and len([p for p in before if p.endswith(".dcm")]) == 7


def test_demo_refuses_a_raw_folder_holding_its_params(tmp_path, capsys):
    raw = tmp_path / "cohort"
    raw.mkdir()
    params = raw / "params.yaml"
    write_params(params, base={"seed": 3}, demo={
        "n_patients": 8, "nifti_fraction": 0.25, "matrix": 48, "n_slices": 12, "pixel_spacing_mm": 5.0,
        "slice_thickness_mm": 5.0, "lesion_diameter_mm": [6, 15], "lung_lesion_fraction": 0.6})
    before = _tree(tmp_path)
    assert demo.main([str(raw), str(tmp_path / "manifest.csv"), "--params", str(params)]) == 2
    _refused(capsys, "demo", "raw_dir", "contain", "params", raw, params)
    assert _tree(tmp_path) == before


def test_split_refuses_to_overwrite_the_index(tmp_path, capsys):
    index, _ = make_index(tmp_path)
    (tmp_path / "params.yaml").write_text(SPLIT_PARAMS)
    before = _tree(tmp_path)
    assert split.main([str(index), str(index), "--params", str(tmp_path / "params.yaml")]) == 2
    _refused(capsys, "split", "out", "be", "index", index)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(("cache", "relation", "inp"), [
    ("ingested", "contain", "index"),
    ("ingested/cache", "be inside", "index folder"),
])
def test_preprocess_refuses_a_cache_over_ingest_output(tmp_path, capsys, cache, relation, inp):
    index, split_csv = make_index(tmp_path)
    params = tmp_path / "params.yaml"
    write_params(params, preprocess={"spatial_dims": 3, "roi": [16, 16, 8], "pixdim": [5.0, 5.0, 10.0],
                                     "hu_window": [-1000, 400]})
    before = _tree(tmp_path)
    assert preprocess.main([str(index), str(split_csv), str(tmp_path / cache), "--params", str(params)]) == 2
    _refused(capsys, "preprocess", "cache_dir", relation, inp, tmp_path / cache)
    assert _tree(tmp_path) == before


def test_train_refuses_a_model_folder_holding_the_cache(tmp_path, capsys):
    cache = tmp_path / "runs" / "cache"
    cache.mkdir(parents=True)
    (cache / "meta.json").write_text("{}\n")
    outs = [str(cache), str(tmp_path / "runs"), str(tmp_path / "p.csv"), str(tmp_path / "s.json"), str(tmp_path / "live")]
    before = _tree(tmp_path)
    assert train.main([*outs, "--params", "params.yaml"]) == 2
    _refused(capsys, "train", "model_dir", "contain", "cache_dir", tmp_path / "runs", cache)
    assert _tree(tmp_path) == before


def test_evaluate_refuses_to_write_over_an_input_in_its_folder(tmp_path, capsys):
    reports = tmp_path / "reports"
    reports.mkdir()
    predictions = reports / "predictions.csv"
    _predictions(predictions)
    (tmp_path / "params.yaml").write_text(EVALUATE_PARAMS)
    summary = reports / "metrics.json"  # a train summary kept where evaluate writes its metrics
    summary.write_text(json.dumps({"best_epoch": 2}))
    before = _tree(tmp_path)
    args = [str(predictions), *output_args(reports), "--params", str(tmp_path / "params.yaml"),
            "--train-summary", str(summary)]
    assert evaluate.main(args) == 2
    _refused(capsys, "evaluate", "metrics", "be", "train_summary", summary)
    assert _tree(tmp_path) == before
