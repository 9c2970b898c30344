"""The preprocess stage: index and split in, a complete cache folder out; bad input is one line."""

from __future__ import annotations

import json

from pipeline.cache import open_split
from pipeline.stages import preprocess
from tests.params import write_params
from tests.test_preprocessing import make_index

GEOMETRY = {"spatial_dims": 3, "roi": [16, 16, 8], "pixdim": [5.0, 5.0, 10.0]}


def test_preprocess_writes_the_cache_from_params_and_prints_its_summary(tmp_path, capsys):
    index, split = make_index(tmp_path)
    params = write_params(tmp_path / "params.yaml", preprocess=GEOMETRY)
    cache = tmp_path / "cache"
    assert preprocess.main([str(index), str(split), str(cache), "--params", str(params)]) == 0
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["roi"] == [16, 16, 8] and meta["counts"] == {"train": 2, "val": 2, "test": 2}
    assert open_split(cache, "val").images.shape == (2, 1, 16, 16, 8)
    assert (cache / "excluded.csv").is_file()
    out = capsys.readouterr().out
    assert "preprocess: 9 series -> cached train 2, val 2, test 2; excluded 3 (see excluded.csv)" in out, out


def test_a_bad_roi_ends_the_stage_with_one_line_and_no_cache(tmp_path, capsys):
    index, split = make_index(tmp_path)
    params = write_params(tmp_path / "params.yaml", preprocess={**GEOMETRY, "roi": [16, 16]})
    cache = tmp_path / "cache"
    assert preprocess.main([str(index), str(split), str(cache), "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("preprocess failed: ") and "roi" in err and len(err.splitlines()) == 1
    assert not cache.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".cache.")]


def test_a_cache_inside_the_ingested_folder_is_refused(tmp_path, capsys):
    index, split = make_index(tmp_path)
    params = write_params(tmp_path / "params.yaml", preprocess=GEOMETRY)
    before = sorted(p.name for p in index.parent.iterdir())
    assert preprocess.main([str(index), str(split), str(index.parent / "cache"), "--params", str(params)]) == 2
    assert "cache_dir" in capsys.readouterr().err
    assert sorted(p.name for p in index.parent.iterdir()) == before
