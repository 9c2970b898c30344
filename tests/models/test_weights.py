"""Weight rows, resolution (cache, download, timeout), unwrapping and tensor surgery.

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
import torch.nn.functional as F

from pipeline.models import DOWNLOAD_TIMEOUT_ENV, WEIGHT_SOURCES, WeightsError, WeightsNotFoundError
from pipeline.models.weights import (
    Normalization,
    adapt_input_channels,
    download_timeout_s,
    inflate_kernel,
    load_state_dict,
    resolve_checkpoint,
    weight_source,
)


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


def test_every_arch_has_one_imagenet_and_one_medicalnet_row():
    pairs = [(row.source, row.arch) for row in WEIGHT_SOURCES]
    assert len(pairs) == len(set(pairs))
    for arch in ("resnet18", "resnet34", "resnet50"):
        imagenet = weight_source("imagenet", arch)
        assert imagenet.url.endswith("/" + imagenet.file_name)
        assert imagenet.file_name == f"{arch}-{imagenet.sha256_prefix}.pth"
        assert imagenet.normalization.kind == "mean_std" and imagenet.spatial_dims == 2
        medicalnet = weight_source("medicalnet", arch)
        assert medicalnet.spatial_dims == 3 and medicalnet.in_channels == 1
        assert medicalnet.url.endswith("/" + medicalnet.file_name)
    with pytest.raises(ValueError, match=r"must be one of \[.*'imagenet/resnet18'.*\]; got imagenet/resnet101"):
        weight_source("imagenet", "resnet101")


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


def test_medicalnet_wrapping_and_module_prefix_are_removed(tmp_path):
    path = tmp_path / "resnet_10.pth"
    inner = {"module.conv1.weight": torch.ones(2, 1, 7, 7, 7), "module.bn1.bias": torch.zeros(2)}
    torch.save({"state_dict": inner, "epoch": 3}, path)

    state = load_state_dict(path, state_dict_key="state_dict", key_prefix="module.")

    assert sorted(state) == ["bn1.bias", "conv1.weight"]
    assert torch.equal(state["conv1.weight"], torch.ones(2, 1, 7, 7, 7))


def test_a_model_object_instead_of_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.ones(1)], path)
    with pytest.raises(WeightsError, match="must hold a mapping of parameter names to tensors; got list"):
        load_state_dict(path)


def test_grey_stem_gives_the_rgb_response_to_a_grey_image():
    kernel = torch.randn(8, 3, 7, 7)
    grey = torch.rand(1, 1, 20, 20)

    summed, how = adapt_input_channels(kernel, 1)

    assert how == "sum" and summed.shape == (8, 1, 7, 7)
    torch.testing.assert_close(F.conv2d(grey, summed), F.conv2d(grey.repeat(1, 3, 1, 1), kernel))


def test_inflated_kernel_sums_to_the_2d_kernel_over_depth():
    kernel = torch.randn(4, 2, 3, 3)
    inflated = inflate_kernel(kernel, 5)
    assert inflated.shape == (4, 2, 3, 3, 5)
    torch.testing.assert_close(inflated.sum(-1), kernel)
    torch.testing.assert_close(inflated[..., 0], inflated[..., 4])


def test_normalization_adapts_to_channels_and_applies():
    rgb = Normalization("mean_std", (0.4, 0.5, 0.6), (0.1, 0.2, 0.3))
    grey = rgb.adapted(1)
    assert grey.mean == pytest.approx((0.5,)) and grey.std == pytest.approx((0.2,))
    assert rgb.adapted(4).mean == (0.4, 0.5, 0.6, 0.4)
    torch.testing.assert_close(grey.apply(torch.full((2, 1, 3, 3), 0.7)), torch.ones(2, 1, 3, 3))

    volume = torch.zeros(1, 1, 8, 8, 8)
    volume[..., 2:6, 2:6, 2:6] = torch.rand(4, 4, 4) + 1.0
    out = Normalization("volume_zscore").apply(volume)
    inside = out[volume > 0]
    assert inside.mean().abs() < 1e-5 and (inside.std(unbiased=False) - 1).abs() < 1e-4
    with pytest.raises(ValueError, match="'kind' must be 'mean_std' or 'volume_zscore'; got 'minmax'"):
        Normalization("minmax")


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
