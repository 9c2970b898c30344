"""Configs built as a stage builds them: from the repository's params.yaml, with overrides.

params.yaml is the one place defaults live (config dataclasses have none), so a test that
needs a config takes the shipped values and changes only what it is about.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config import (
    DemoConfig,
    EvaluateConfig,
    ExplainConfig,
    IngestConfig,
    ModelConfig,
    PreprocessConfig,
    SplitConfig,
    TrainConfig,
    load_params,
)

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"
SECTIONS = {
    DemoConfig: "demo",
    IngestConfig: "ingest",
    SplitConfig: "split",
    PreprocessConfig: "preprocess",
    ModelConfig: "model",
    TrainConfig: "train",
    EvaluateConfig: "evaluate",
    ExplainConfig: "explain",
}
C = TypeVar("C")


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    return load_params(PARAMS_FILE)


def shipped_params() -> dict[str, Any]:
    """A fresh copy of the repository's params.yaml."""
    return copy.deepcopy(_shipped())


def config(cls: type[C], **overrides: Any) -> C:
    """``cls.from_params`` on params.yaml with ``overrides`` in its section (``seed`` in base)."""
    params = shipped_params()
    name = SECTIONS[cls]
    if "seed" in overrides:
        params["base"]["seed"] = overrides.pop("seed")
    params[name].update({k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()})
    if cls is IngestConfig:
        return IngestConfig.from_params(params, environ={})  # type: ignore[return-value]
    return cls.from_params(params)  # type: ignore[attr-defined]


def params_text(**sections: dict[str, Any]) -> str:
    """params.yaml as shipped, each named section updated with the values given, as YAML."""
    import yaml

    params = shipped_params()
    for name, values in sections.items():
        params.setdefault(name, {}).update(values)
    return yaml.safe_dump(params, sort_keys=False)


def write_params(path: Path, **sections: dict[str, Any]) -> Path:
    """Write :func:`params_text` to ``path``."""
    path.write_text(params_text(**sections))
    return path
