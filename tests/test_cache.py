from __future__ import annotations

import numpy as np
import pytest

from pipeline.cache import CacheError, CacheWriter, open_split


def test_round_trip_memory_mapped(tmp_path):
    writer = CacheWriter(tmp_path, "train", 3, (4, 4, 2), channels=1)
    images = [np.full((1, 4, 4, 2), v, dtype=np.float32) for v in (0.0, 0.5, 1.0)]
    for i, image in enumerate(images):
        writer.add(image, {"patient_id": f"p{i}", "series_key": f"s{i}", "label": i % 2, "site": "a"})
    assert writer.close(("patient_id", "series_key", "label", "site")) == 3
    split = open_split(tmp_path, "train")
    assert isinstance(split.images, np.memmap)
    assert split.images.dtype == np.float16 and split.images.shape == (3, 1, 4, 4, 2)
    assert np.allclose(split.images[1], 0.5)
    assert split.labels.tolist() == [0, 1, 0]
    assert split.rows[2]["site"] == "a"


def test_fewer_samples_than_planned_are_truncated(tmp_path):
    writer = CacheWriter(tmp_path, "val", 3, (2, 2), channels=1)
    writer.add(np.ones((1, 2, 2), np.float32), {"patient_id": "p", "series_key": "s", "label": 1})
    assert writer.close(("patient_id", "series_key", "label")) == 1
    assert open_split(tmp_path, "val").images.shape == (1, 1, 2, 2)


def test_truncation_keeps_every_sample_in_order_across_copy_chunks(tmp_path):
    writer = CacheWriter(tmp_path, "train", 40, (3, 2), channels=1)
    for i in range(37):  # three planned series were excluded
        writer.add(np.full((1, 3, 2), i / 64, np.float32), {"patient_id": f"p{i}", "series_key": f"s{i}", "label": i % 2})
    assert writer.close(("patient_id", "series_key", "label")) == 37
    split = open_split(tmp_path, "train")
    assert split.images.shape == (37, 1, 3, 2) and split.images.dtype == np.float16
    assert [float(split.images[i, 0, 0, 0]) for i in range(37)] == [i / 64 for i in range(37)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv", "train.npy"]


def test_wrong_shape_is_named(tmp_path):
    writer = CacheWriter(tmp_path, "val", 1, (2, 2), channels=1)
    with pytest.raises(CacheError, match=r"series 's9' must have shape \(1, 2, 2\); got \(1, 3, 2\)"):
        writer.add(np.ones((1, 3, 2), np.float32), {"series_key": "s9"})


def test_rows_and_array_disagree(tmp_path):
    writer = CacheWriter(tmp_path, "test", 2, (2, 2), channels=1)
    for i in range(2):
        writer.add(np.ones((1, 2, 2), np.float32), {"patient_id": "p", "series_key": f"s{i}", "label": 0})
    writer.close(("patient_id", "series_key", "label"))
    (tmp_path / "test.csv").write_text("patient_id,series_key,label\np,s0,0\n")
    with pytest.raises(CacheError, match="one row per image; got 1 rows for 2 images"):
        open_split(tmp_path, "test")


def test_missing_split_says_run_preprocess(tmp_path):
    with pytest.raises(CacheError, match="Run the preprocess stage"):
        open_split(tmp_path, "train")
