"""Typed, frozen configuration for each DVC stage.

Each stage's ``main()`` loads ``params.yaml`` once, builds its dataclass with
``<Config>.from_params(params)`` and passes *fields* down to the library. Nothing below
``pipeline/stages`` reads ``params.yaml`` or ``sys.argv``. ``params.yaml`` is the one
place defaults live: no field here has a default, and a missing key stops the stage
naming it (:func:`pipeline.config.checks.fields_of`).
"""

from pipeline.config.checks import check_range, load_params, require, section
from pipeline.config.cohort import (
    DEMO_PSEUDONYM_KEY,
    PSEUDONYM_KEY_ENV,
    BaseConfig,
    DemoConfig,
    IngestConfig,
    PreprocessConfig,
    SplitConfig,
    available_cores,
)
from pipeline.config.external import ExternalConfig, ExternalSite
from pipeline.config.learning import EvaluateConfig, ExplainConfig, ModelConfig, TrainConfig
from pipeline.errors import ConfigError

__all__ = [
    "DEMO_PSEUDONYM_KEY",
    "PSEUDONYM_KEY_ENV",
    "BaseConfig",
    "ConfigError",
    "DemoConfig",
    "EvaluateConfig",
    "ExplainConfig",
    "ExternalConfig",
    "ExternalSite",
    "IngestConfig",
    "ModelConfig",
    "PreprocessConfig",
    "SplitConfig",
    "TrainConfig",
    "available_cores",
    "check_range",
    "load_params",
    "require",
    "section",
]
