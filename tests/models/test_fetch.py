"""Finding a weight source's file: explicit path, hub cache, download with a timeout, checksums.

Downloads are exercised against servers started on 127.0.0.1 inside the test, so the
real ``urllib`` path runs without internet and nothing is fetched from outside.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models import DOWNLOAD_TIMEOUT_ENV, WeightsError, WeightsNotFoundError
from pipeline.models.fetch import download_timeout_s, resolve_checkpoint
from pipeline.models.sources import weight_source


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def file_server(tmp_path):
    """A local HTTP server for ``tmp_path/served``; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_stores_a_verified_file_in_the_hub_cache(torch_home, no_proxy, file_server):
    served, base = file_server
    (served / "resnet18-0000.pth").write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(b"weights" * 1000).hexdigest()
    row = dataclasses.replace(weight_source("imagenet", "resnet18"), url=f"{base}/resnet18-0000.pth",
                              sha256_prefix=digest[:8])

    found = resolve_checkpoint(row, timeout_s=5)

    assert found.how == "download" and found.sha256 == digest
    assert found.path == torch_home / "hub" / "checkpoints" / row.file_name
    assert found.path.read_bytes() == b"weights" * 1000
    assert resolve_checkpoint(row, timeout_s=5).how == "cache"


def test_download_with_wrong_checksum_leaves_nothing_behind(torch_home, no_proxy, file_server):
    served, base = file_server
    (served / "resnet18-0000.pth").write_bytes(b"tampered")
    row = dataclasses.replace(weight_source("imagenet", "resnet18"), url=f"{base}/resnet18-0000.pth")

    with pytest.raises(WeightsNotFoundError, match=r"has SHA-256 '[0-9a-f]{64}', expected 'f37072fd'"):
        resolve_checkpoint(row, timeout_s=5)

    assert list((torch_home / "hub" / "checkpoints").iterdir()) == []


def test_a_server_that_never_answers_times_out_instead_of_hanging(torch_home, no_proxy):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    row = dataclasses.replace(weight_source("imagenet", "resnet18"),
                              url=f"http://127.0.0.1:{silent.getsockname()[1]}/resnet18-f37072fd.pth")
    start = time.monotonic()
    try:
        with pytest.raises(WeightsNotFoundError, match=r"(no answer within 1 s|timed out).*copy the file"):
            resolve_checkpoint(row, timeout_s=1)
    finally:
        silent.close()
    assert time.monotonic() - start < 5


def test_download_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "2.5")
    assert download_timeout_s() == 2.5
    assert download_timeout_s(0) == 0
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=r"'PIPELINE_WEIGHTS_TIMEOUT_S' must be a number of seconds >= 0; got 'soon'"):
        download_timeout_s()


def test_explicit_path_missing_is_named(tmp_path):
    row = weight_source("imagenet", "resnet18")
    with pytest.raises(WeightsNotFoundError, match=r"weights file '.*nowhere.pth' must exist"):
        resolve_checkpoint(row, path=tmp_path / "nowhere.pth")


def test_explicit_path_with_published_name_is_checked_against_the_row(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    row = weight_source("imagenet", "resnet18")
    with pytest.raises(WeightsError, match="published for imagenet/resnet18"):
        resolve_checkpoint(row, path=path)
    expected = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert resolve_checkpoint(row, path=path, expected_sha256=expected).how == "path"


def test_a_bad_timeout_setting_is_a_config_error(monkeypatch):
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "-1")
    with pytest.raises(ConfigError, match=r"must be a number of seconds >= 0; got '-1'"):
        download_timeout_s()
