"""The weights record: what a random and a loaded backbone say about their weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pipeline.models import WeightsProvenance
from pipeline.models.adapt import Transferred
from pipeline.models.fetch import ResolvedFile
from pipeline.models.network import NetworkLayout
from pipeline.models.provenance import USER_FILE_LICENCE, loaded_provenance, random_provenance
from pipeline.models.sources import weight_source

LAYOUT = NetworkLayout("resnet18", 3, 1, 1, (7, 7, 7), (2, 2, 2), "A", False)


def test_a_random_backbone_records_its_layout_and_why():
    record = random_provenance(LAYOUT, requested="auto", warning="no file").to_dict()
    assert record["source"] == "none" and record["requested"] == "auto" and record["warning"] == "no file"
    assert record["stem_kernel"] == [7, 7, 7] and record["shortcut_type"] == "A"
    assert record["file"] is None and record["head"] == "new"
    json.dumps(record)  # plain values only: it goes into train_summary.json


def test_a_named_source_records_its_row_and_the_file_loaded():
    row = weight_source("medicalnet", "resnet18")
    found = ResolvedFile(Path("/somewhere/resnet_18_23dataset.pth"), "ab" * 32, None, "cache")
    fitted = Transferred(state={}, channel_adaptation="none", inflated=False, head="new")
    record = loaded_provenance(LAYOUT, requested="medicalnet", row=row, found=found, fitted=fitted)
    assert record.source == "medicalnet" and record.requested == "medicalnet"
    assert record.file == "resnet_18_23dataset.pth"  # no folder: paths differ per machine
    assert record.url == row.url and record.licence == row.licence and record.notes == row.notes
    assert record.found == "cache" and "not checked against a known SHA-256" in record.warning


def test_a_user_file_is_recorded_as_file_with_an_unknown_licence():
    found = ResolvedFile(Path("mine.pt"), "cd" * 32, "cdcdcdcd", "path")
    fitted = Transferred(state={}, channel_adaptation="sum", inflated=True, head="pretrained")
    record = loaded_provenance(LAYOUT, requested="mine.pt", row=None, found=found, fitted=fitted)
    assert record.source == "file" and record.requested == "file" and record.licence == USER_FILE_LICENCE
    assert (record.channel_adaptation, record.inflated, record.head) == ("sum", True, "pretrained")
    assert record.url is None and record.warning is None and record.sha256_expected == "cdcdcdcd"


def test_the_record_keeps_its_key_order():
    names = [f.name for f in dataclasses.fields(WeightsProvenance)]
    assert list(random_provenance(LAYOUT, requested="none").to_dict()) == names
    assert names[:8] == ["source", "requested", "arch", "spatial_dims", "in_channels", "stem_kernel", "stem_stride",
                         "shortcut_type"]
