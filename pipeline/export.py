"""Export a trained model to ONNX or TorchScript, with its preprocessing metadata beside it.

Usage::

    python -m pipeline.export models/best.ckpt --format onnx model.onnx
    python -m pipeline.export models/best.ckpt --format torchscript model.pt

The exported graph takes ``image`` (B, C, *roi) float32 in [0, 1], C the model's
``in_channels`` (1 grey, 3 RGB), made by the preprocess settings recorded in ``OUT.json``
(spacing or fit, channels, orientation, window, ROI, 2D slice rule), and
returns ``logit`` (B,); the probability is ``sigmoid(logit)``. The input normalisation of
the weights is inside the graph. The export is checked against PyTorch on a random batch
(ONNX with onnxruntime when installed) and the largest difference is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from pipeline.environment import require

# Before torch and the model code: an interpreter without the project's packages ends the
# command with one line naming it and the fix, as for the stages and predict.
require("export")

import torch  # noqa: E402

from pipeline.errors import PipelineInputError  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
INSTALL_HINT = "pip install -e .[export]"


class ExportError(PipelineInputError):
    """The export cannot be made here (a missing package) or does not match PyTorch."""


def metadata_path(out: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``: the settings travel with the file they describe."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def export_model(model: str | Path, fmt: str, out: str | Path, *, threshold: float | None = None) -> float:
    """Write ``out`` and its metadata JSON; returns the largest logit difference to PyTorch.

    Raises:
        ExportError: unknown format, ``onnx`` not installed, or a mismatch above 1e-4.
        ModelFileError: the model file is refused (see :func:`pipeline.load_classifier`).
    """
    from pipeline.inference import load_classifier

    if fmt not in FORMATS:
        raise ExportError(f"'--format' must be one of {list(FORMATS)}; got {fmt!r}.")
    if fmt == "onnx":
        _require_onnx()
    classifier = load_classifier(model, threshold=threshold, device="cpu")
    module = LogitModule(classifier).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(2, *classifier.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module(example).numpy()
        if fmt == "onnx":
            got = _to_onnx(module, example, out)
        else:
            traced = torch.jit.trace(module, example)
            traced.save(str(out))
            got = torch.jit.load(str(out))(example).numpy()
    difference = float(abs(got - expected).max()) if got is not None else float("nan")
    if difference > TOLERANCE:
        raise ExportError(
            f"the {fmt} export must give PyTorch's logits within {TOLERANCE}; got a difference of {difference:.3g}. "
            "Report this with the torch and onnx versions."
        )
    metadata_path(out).write_text(json.dumps(_metadata(classifier, fmt, out), indent=2) + "\n")
    return difference


class LogitModule(torch.nn.Module):
    """Network and input normalisation as one module: prepared image (B, C, *roi) -> logit (B,)."""

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.network = classifier.network.cpu()
        self.normalization = classifier.normalization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization is not None:
            x = self.normalization.apply(x)
        return self.network(x).squeeze(-1)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401 - the exporter needs it at hand
    except ImportError:
        raise ExportError(
            f"ONNX export needs the 'onnx' package; it is not installed in {sys.executable!r}. "
            f"Install the export extra: {INSTALL_HINT}"
        ) from None


def _to_onnx(module: Any, example: Any, out: Path) -> Any:
    """Write the ONNX file; returns onnxruntime's logits for ``example``, or None without it."""
    with warnings.catch_warnings():
        # The TorchScript-based exporter is the one that handles MONAI's ResNet without
        # onnxscript; its deprecation notice is about torch's roadmap, not this export.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module, (example,), str(out), dynamo=False, input_names=["image"], output_names=["logit"],
            dynamic_axes={"image": {0: "batch"}, "logit": {0: "batch"}}, opset_version=17,
        )
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": example.numpy()})[0]


def _metadata(classifier: Any, fmt: str, out: Path) -> dict[str, Any]:
    meta = classifier.meta
    return {
        "file": out.name,
        "format": fmt,
        "input": {"name": "image", "shape": ["batch", *classifier.input_shape], "dtype": "float32",
                  "values": "[0, 1]: the output of the preprocess transforms described under 'preprocess'"},
        "output": {"name": "logit", "shape": ["batch"], "probability": "1 / (1 + exp(-logit))"},
        "normalization_in_graph": meta["normalization"],
        "threshold": classifier.threshold,
        "preprocess": meta["preprocess"],
        "network": meta["network"],
        "weights": meta["weights"],
        "model_digest": meta["digest"],
        "model_format_version": meta["format_version"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file written by train (models/best.ckpt)")
    parser.add_argument("out", type=Path, help="file to write (e.g. model.onnx or model.pt)")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--threshold", type=float, default=None, help="decision threshold to record in the JSON")
    args = parser.parse_args(argv)

    def body() -> str:
        difference = export_model(args.model, args.fmt, args.out, threshold=args.threshold)
        checked = "not checked (onnxruntime not installed)" if difference != difference else \
            f"max |logit difference| to PyTorch {difference:.2g}"
        return f"export: wrote {args.out} ({args.fmt}; {checked}) and {metadata_path(args.out)}"

    return run_stage("export", body)


if __name__ == "__main__":
    sys.exit(main())
