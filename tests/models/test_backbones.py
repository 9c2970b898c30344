"""build_backbone: strict loading, exact 2D logits, grayscale, 3D inflation, provenance."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.errors import PipelineInputError
from pipeline.models import DOWNLOAD_TIMEOUT_ENV, WeightsError, WeightsNotFoundError, build_backbone
from pipeline.models.sources import IMAGENET_MEAN, IMAGENET_STD, weight_source
from tests.models.resnet_checkpoints import SPEC, resnet_state_dict


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_features(state: dict[str, torch.Tensor], arch: str, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet forward written with functional ops over a state dict: ``(B, 3, H, W) -> (B, F)``.

    Independent of MONAI: stem 7x7 stride 2 pad 3, max-pool 3/2/1, stride on the first
    block's 3x3 conv of layers 2-4, 1x1-conv shortcut, global average pool.
    """
    block, layers = SPEC[arch]

    def bn(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(
            t, state[f"{name}.running_mean"], state[f"{name}.running_var"],
            state[f"{name}.weight"], state[f"{name}.bias"], training=False, eps=1e-5,
        )

    x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for index, blocks in enumerate(layers):
        for b in range(blocks):
            p = f"layer{index + 1}.{b}"
            stride = 2 if index > 0 and b == 0 else 1
            if block == "basic":
                out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
                out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            else:
                out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"]), f"{p}.bn1"))
                out = F.relu(bn(F.conv2d(out, state[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
                out = bn(F.conv2d(out, state[f"{p}.conv3.weight"]), f"{p}.bn3")
            shortcut = x
            if f"{p}.downsample.0.weight" in state:
                shortcut = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + shortcut)
    return x.mean(dim=(2, 3))


def reference_logits(state: dict[str, torch.Tensor], arch: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(reference_features(state, arch, x), state["fc.weight"], state["fc.bias"])


def pooled_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the head, ``(B, F)``, caught with a forward pre-hook."""
    caught: list[torch.Tensor] = []
    handle = model.fc.register_forward_pre_hook(lambda _m, args: caught.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return caught[0]


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_2d_loads_strictly_and_matches_reference_logits(arch, place_checkpoint):
    state = resnet_state_dict(arch, seed=1)
    row = weight_source("imagenet", arch)
    path = place_checkpoint(row.file_name, state)

    bb = build_backbone(arch=arch, spatial_dims=2, in_channels=3, num_classes=1000, weights="imagenet",
                        weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    loaded = bb.model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = bb.model.eval()(x)
    torch.testing.assert_close(got, reference_logits(state, arch, x), rtol=1e-4, atol=1e-4)
    record = bb.provenance.to_dict()
    assert record["source"] == "imagenet" and record["found"] == "cache" and record["head"] == "pretrained"
    assert record["file"] == row.file_name and record["sha256"] == _sha256(path)
    assert record["url"] == f"https://download.pytorch.org/models/{row.file_name}"
    assert bb.normalization.mean == IMAGENET_MEAN and bb.normalization.std == IMAGENET_STD


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_a_stride_one_stem_keeps_the_imagenet_weights_and_twice_the_resolution(spatial_dims, place_checkpoint):
    state = resnet_state_dict("resnet18", seed=1)
    path = place_checkpoint("resnet18-f37072fd.pth", state)
    built = {stride: build_backbone(arch="resnet18", spatial_dims=spatial_dims, in_channels=1, num_classes=1,
                                    weights="imagenet", weights_sha256=_sha256(path), stem_kernel_depth=7,
                                    stem_stride_depth=1, stem_stride=stride).model.eval() for stride in (1, 2)}

    one, two = built[1], built[2]
    assert one.conv1.stride == (1,) * spatial_dims and two.conv1.stride[:2] == (2, 2)
    assert all(torch.equal(one.state_dict()[k], two.state_dict()[k]) for k in state if not k.startswith("fc."))
    size = (32,) * spatial_dims
    x = torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cells = {stride: model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.act(model.bn1(
            model.conv1(x)))))))).shape[2:4] for stride, model in built.items()}
    assert cells == {1: (2, 2), 2: (1, 1)}


@pytest.mark.parametrize("stride", [0, 3, True, 1.0])
def test_a_stem_stride_other_than_one_or_two_is_refused(stride):
    with pytest.raises(PipelineInputError, match="'stem_stride' must be 1 or 2; got"):
        build_backbone(arch="resnet18", spatial_dims=2, in_channels=1, num_classes=1, weights="none",
                       weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=stride)


def test_new_head_is_sized_from_the_backbone_and_backbone_weights_kept(place_checkpoint):
    state = resnet_state_dict("resnet50", seed=2)
    path = place_checkpoint("resnet50-0676ba61.pth", state)

    bb = build_backbone(arch="resnet50", spatial_dims=2, in_channels=3, num_classes=2, weights="imagenet",
                        weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    assert bb.model.fc.in_features == 2048 and bb.model.fc.out_features == 2
    assert bb.provenance.head == "new"
    assert torch.equal(bb.model.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    head = {id(p) for p in bb.head_parameters()}
    assert head == {id(bb.model.fc.weight), id(bb.model.fc.bias)}
    assert not head & {id(p) for p in bb.backbone_parameters()}
    assert len(bb.head_parameters()) + len(bb.backbone_parameters()) == len(list(bb.model.parameters()))


def test_grayscale_stem_sums_rgb_kernel_and_equals_rgb_on_a_grey_image(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=3)
    path = place_checkpoint("resnet18-f37072fd.pth", state)

    bb = build_backbone(arch="resnet18", spatial_dims=2, in_channels=1, num_classes=1000, weights="imagenet",
                        weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    torch.testing.assert_close(bb.model.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    grey = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = bb.model.eval()(grey)
    torch.testing.assert_close(got, reference_logits(state, "resnet18", grey.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)
    assert bb.provenance.channel_adaptation == "sum"
    assert bb.normalization.mean == pytest.approx((sum(IMAGENET_MEAN) / 3,))
    assert bb.normalization.std == pytest.approx((sum(IMAGENET_STD) / 3,))


def test_other_channel_counts_repeat_and_rescale_the_stem(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=4)
    path = place_checkpoint("resnet18-f37072fd.pth", state)
    rgb = state["conv1.weight"]

    five = build_backbone(arch="resnet18", spatial_dims=2, in_channels=5, num_classes=2, weights="imagenet",
                          weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)
    six = build_backbone(arch="resnet18", spatial_dims=2, in_channels=6, num_classes=2, weights="imagenet",
                         weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    torch.testing.assert_close(five.model.conv1.weight, torch.cat([rgb, rgb[:, :2]], dim=1) * (3 / 5))
    assert five.normalization.mean == IMAGENET_MEAN + IMAGENET_MEAN[:2]
    assert five.provenance.channel_adaptation == "repeat"
    # With a multiple of 3 channels, an input equal on all channels gets the RGB response.
    torch.testing.assert_close(six.model.conv1.weight.sum(dim=1), rgb.sum(dim=1))


def test_3d_inflation_keeps_depth_sums_and_bn_and_sets_the_stem(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=5)
    path = place_checkpoint("resnet18-f37072fd.pth", state)

    bb = build_backbone(arch="resnet18", spatial_dims=3, in_channels=3, num_classes=2, weights="imagenet",
                        weights_sha256=_sha256(path), stem_kernel_depth=5, stem_stride_depth=1, stem_stride=2)
    model = bb.model.eval()

    assert model.conv1.weight.shape == (64, 3, 7, 7, 5) and model.conv1.stride == (2, 2, 1)
    assert model.conv1.padding == (3, 3, 2)
    loaded = model.state_dict()
    for key, value in state.items():
        if key.endswith(".weight") and value.ndim == 4:
            assert loaded[key].shape == value.shape + (value.shape[-1] if key != "conv1.weight" else 5,)
            torch.testing.assert_close(loaded[key].sum(dim=-1), value, rtol=1e-5, atol=1e-6)
        elif not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert bb.provenance.inflated and bb.provenance.stem_kernel == (7, 7, 5)
    assert bb.provenance.stem_stride == (2, 2, 1)

    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    volume = image.unsqueeze(-1).repeat(1, 1, 1, 1, 16)
    with torch.no_grad():
        stem_3d = model.bn1(model.conv1(volume))[..., 8]
        stem_2d = F.batch_norm(F.conv2d(image, state["conv1.weight"], stride=2, padding=3),
                               state["bn1.running_mean"], state["bn1.running_var"],
                               state["bn1.weight"], state["bn1.bias"], training=False)
    # Away from the depth ends an inflated conv reproduces the 2D conv exactly.
    torch.testing.assert_close(stem_3d, stem_2d, rtol=1e-4, atol=1e-4)


def test_3d_features_of_a_repeated_image_approach_the_2d_features_as_depth_grows(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=5)
    path = place_checkpoint("resnet18-f37072fd.pth", state)
    bb = build_backbone(arch="resnet18", spatial_dims=3, in_channels=3, num_classes=2, weights="imagenet",
                        weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=1, stem_stride=2)
    model = bb.model.eval()
    gen = torch.Generator().manual_seed(2)
    images = F.interpolate(torch.rand(4, 3, 4, 4, generator=gen), size=(32, 32), mode="bilinear")

    with torch.no_grad():
        features_2d = reference_features(state, "resnet18", images)
        errors, centred = [], None
        for depth in (32, 64):
            features_3d = pooled_features(model, images.unsqueeze(-1).repeat(1, 1, 1, 1, depth))
            errors.append(((features_3d - features_2d).norm(dim=1) / features_2d.norm(dim=1)).max().item())
            centred = F.cosine_similarity(
                (features_3d - features_3d.mean(0)).unsqueeze(1),
                 (features_2d - features_2d.mean(0)).unsqueeze(0), dim=-1
            )

    # The gap is the zero padding at the two depth ends (every deep layer's receptive
    # field spans the whole depth here), so its share, and the error, about halves when
    # depth doubles: measured 0.38 -> 0.19 on these weights.
    assert errors[1] < 0.6 * errors[0]
    assert errors[1] < 0.3
    # Each volume's features pick out its own image among the four (centred cosine 0.98).
    assert torch.equal(centred.argmax(dim=1), torch.arange(4))
    assert centred.diagonal().min() > 0.95


def test_3d_demo_shape_forward_gives_logits():
    bb = build_backbone(arch="resnet18", spatial_dims=3, in_channels=1, num_classes=2, weights="none",
                        weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)
    with torch.no_grad():
        logits = bb.model.eval()(torch.randn(2, 1, 64, 64, 32))
    assert logits.shape == (2, 2)
    assert bb.provenance.to_dict()["source"] == "none" and bb.normalization is None


def test_published_name_with_wrong_checksum_is_rejected(place_checkpoint):
    place_checkpoint("resnet18-f37072fd.pth", resnet_state_dict("resnet18", seed=6))

    with pytest.raises(WeightsError, match=r"must have SHA-256 starting with 'f37072fd'.*got '[0-9a-f]{64}'"):
        build_backbone(arch="resnet18", spatial_dims=2, in_channels=3, num_classes=2, weights="imagenet",
                       weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)


def test_file_path_with_wrong_expected_sha256_is_rejected(tmp_path):
    path = tmp_path / "mine.pt"
    torch.save(resnet_state_dict("resnet18", seed=7), path)

    with pytest.raises(WeightsError, match="must have SHA-256 starting with 'deadbeef'"):
        build_backbone(arch="resnet18", spatial_dims=2, in_channels=3, num_classes=2, weights=str(path),
                       weights_sha256="deadbeef", stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)


def test_layout_mismatch_is_an_error_not_a_partial_load(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=8, downsample_bias=True)
    path = place_checkpoint("resnet18-f37072fd.pth", state)

    with pytest.raises(WeightsError, match=r"must match the model's keys and shapes exactly.*3 unexpected"):
        build_backbone(arch="resnet18", spatial_dims=2, in_channels=3, num_classes=2, weights="imagenet",
                       weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)


def test_missing_checkpoint_offline_names_file_folder_url_within_seconds(torch_home, monkeypatch):
    import time

    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "3")
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as caught:
        build_backbone(arch="resnet18", spatial_dims=2, in_channels=1, num_classes=2, weights="imagenet",
                       weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)
    elapsed = time.monotonic() - start

    message = str(caught.value)
    assert "'resnet18-f37072fd.pth'" in message
    assert str(torch_home / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "copy the file onto this machine" in message
    assert elapsed < 10


def test_auto_falls_back_to_random_init_loudly_and_records_it(torch_home, monkeypatch):
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "0")

    with pytest.warns(UserWarning, match=r"'auto'.*'resnet18-f37072fd.pth'.*RANDOM weights"):
        bb = build_backbone(arch="resnet18", spatial_dims=3, in_channels=1, num_classes=2, weights="auto",
                            weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    record = bb.provenance.to_dict()
    assert record["source"] == "none" and record["requested"] == "auto"
    assert "RANDOM" in record["warning"] and "downloads are disabled" in record["warning"]
    assert bb.normalization is None


def test_auto_fallback_warning_reaches_stderr_once(torch_home, monkeypatch):
    """A stage run (no logging set up) must print the fallback once, not once per channel."""
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, "0")
    code = ("from pipeline.models import build_backbone; "
            "build_backbone(arch='resnet18', spatial_dims=2, in_channels=1, num_classes=1, weights='auto', "
            "weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RANDOM weights") == 1


def test_auto_uses_imagenet_when_the_file_is_at_hand(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=9)
    path = place_checkpoint("resnet18-f37072fd.pth", state)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb = build_backbone(arch="resnet18", spatial_dims=3, in_channels=1, num_classes=2, weights="auto",
                            weights_sha256=_sha256(path), stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    assert bb.provenance.source == "imagenet" and bb.provenance.requested == "auto"
    assert bb.provenance.warning is None and bb.provenance.inflated


def test_medicalnet_file_is_unwrapped_and_loaded_in_3d(place_checkpoint):
    state = resnet_state_dict("resnet18", seed=10, depth_kernels=True, in_channels=1, shortcut="A")
    del state["fc.weight"], state["fc.bias"]
    state["conv_seg.0.weight"] = torch.randn(32, 512, 3, 3, 3)
    wrapped = {"epoch": 200, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    place_checkpoint("resnet_18_23dataset.pth", wrapped)

    bb = build_backbone(arch="resnet18", spatial_dims=3, in_channels=1, num_classes=2, weights="medicalnet",
                        weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)

    assert torch.equal(bb.model.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    assert not any("downsample" in k for k in bb.model.state_dict())
    record = bb.provenance.to_dict()
    assert record["source"] == "medicalnet" and record["shortcut_type"] == "A"
    assert record["sha256_expected"] is None and "not checked" in record["warning"]
    assert "dilated" in record["notes"] and record["licence"].startswith("MIT")
    assert bb.normalization.kind == "volume_zscore"


def test_user_file_in_3d_layout_round_trips(tmp_path):
    first = build_backbone(arch="resnet18", spatial_dims=3, in_channels=1, num_classes=2, weights="none",
                           stem_kernel_depth=3, stem_stride_depth=1, stem_stride=2, weights_sha256=None)
    path = tmp_path / "finetuned.pt"
    torch.save(first.model.state_dict(), path)

    again = build_backbone(arch="resnet18", spatial_dims=3, in_channels=1, num_classes=2, weights=str(path),
                           weights_sha256=_sha256(path), stem_stride_depth=1, stem_stride=2, stem_kernel_depth=7)

    assert again.provenance.source == "file" and again.provenance.stem_kernel == (7, 7, 3)
    assert again.provenance.head == "pretrained" and again.provenance.warning is None
    x = torch.randn(1, 1, 32, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(again.model.eval()(x), first.model.eval()(x))


def test_pickled_objects_are_refused_by_weights_only_loading(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"conv1.weight": torch.zeros(1), "why": Path("/etc")}, path)

    with pytest.raises(WeightsError, match="readable with weights_only=True"):
        build_backbone(arch="resnet18", spatial_dims=2, in_channels=3, num_classes=2, weights=str(path),
                       weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "resnet101"}, r"'arch' must be one of \['resnet18', 'resnet34', 'resnet50'\]; got 'resnet101'"),
        ({"weights": "medicalnet", "spatial_dims": 2}, "must be used with spatial_dims 3"),
        ({"stem_kernel_depth": 4, "spatial_dims": 3}, "'stem_kernel_depth' must be an odd integer"),
        ({"weights": "medicalnet", "spatial_dims": 3, "stem_kernel_depth": 3}, "must be 7 for medicalnet"),
        ({"weights_sha256": "xyz"}, "'weights_sha256' must be 8 to 64 hexadecimal digits"),
        ({"weights": "imagenet21k"}, r"got 'imagenet21k', which is neither a known name nor an existing file"),
        ({"weights": "missing/resnet18.pth"}, r"weights file 'missing/resnet18.pth' must exist; it was not found"),
    ],
)
def test_bad_arguments_are_named(kwargs, match, torch_home):
    args = {"arch": "resnet18", "spatial_dims": 2, "in_channels": 1, "num_classes": 2, "weights": "none",
            "weights_sha256": None, "stem_kernel_depth": 7, "stem_stride_depth": 2, "stem_stride": 2, **kwargs}
    with pytest.raises(PipelineInputError, match=match):
        build_backbone(**args)


def test_the_model_settings_have_no_second_default_here():
    """Every model.* setting build_backbone takes comes from params.yaml; only the timeout (an env var) has one."""
    parameters = inspect.signature(build_backbone).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert [n for n, p in parameters.items() if p.default is not inspect.Parameter.empty] == ["download_timeout_s"]
