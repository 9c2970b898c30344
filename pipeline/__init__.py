"""Medical imaging transfer-learning pipeline: DICOM/NIfTI to a fine-tuned ResNet and an ROC/AUC report."""

from __future__ import annotations

from typing import Any

__all__ = ["load_classifier"]


def __getattr__(name: str) -> Any:
    # Lazy: `import pipeline` (every stage, the torch-free io package) must not load torch.
    if name == "load_classifier":
        from pipeline.inference import load_classifier

        return load_classifier
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
