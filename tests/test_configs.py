"""Every params file shipped (params.yaml and configs/*.yaml) is valid for every stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import (
    ConfigError,
    DemoConfig,
    EvaluateConfig,
    ExplainConfig,
    ExternalConfig,
    ExternalSite,
    IngestConfig,
    ModelConfig,
    PreprocessConfig,
    SplitConfig,
    TrainConfig,
    load_params,
)

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]
STAGES = (DemoConfig, IngestConfig, SplitConfig, PreprocessConfig, ModelConfig, TrainConfig, EvaluateConfig, ExplainConfig,
          ExternalConfig)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_params_are_valid_for_every_stage(path):
    params = load_params(path)
    assert {"raw_dir", "manifest"} <= set(params["data"])
    for config in STAGES:
        config.from_params(params)


def test_a_typo_names_the_valid_keys(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("max_epochs:", "max_epoch:")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"under 'train' must be among .*'max_epochs'.*got unknown \['max_epoch'\]"):
        TrainConfig.from_params(load_params(tmp_path / "params.yaml"))


def test_bad_value_names_key_rule_and_value(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("spatial_dims: 3", "spatial_dims: 4")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"'preprocess.spatial_dims' must be one of \[2, 3\]; got 4"):
        PreprocessConfig.from_params(load_params(tmp_path / "params.yaml"))


def test_missing_params_file_says_where_to_run(tmp_path):
    with pytest.raises(ConfigError, match="Run the stage from the repository root"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("section_name", "config", "missing"),
    [("model", ModelConfig, "'model.arch'"), ("preprocess", PreprocessConfig, "'preprocess.roi'")],
)
def test_a_missing_required_key_is_named_not_a_type_error(section_name, config, missing):
    params = load_params(ROOT / "params.yaml")
    del params[section_name][missing.strip("'").split(".")[1]]
    with pytest.raises(ConfigError, match=rf"params keys \[.*{missing}.*\] must be set; they are missing\. "
                                          rf"Add them under '{section_name}:' in params.yaml"):
        config.from_params(params)


def _read_keys() -> list[tuple[str, str]]:
    """Every key under a section that a stage's config reads (``data`` is dvc.yaml's alone; ``external``
    is a list, with tests of its own below)."""
    params = load_params(ROOT / "params.yaml")
    return [(name, key) for name in params if name not in ("data", "external") for key in params[name]]


@pytest.mark.parametrize(("section_name", "key"), _read_keys(), ids=lambda v: str(v))
def test_deleting_any_key_fails_the_config_that_reads_it_naming_the_key(section_name, key):
    """params.yaml is the one source of defaults: no config falls back to a value of its own."""
    params = load_params(ROOT / "params.yaml")
    del params[section_name][key]
    readers = [config for config in STAGES if _reads(config, section_name, key)]
    assert readers, f"no config reads '{section_name}.{key}'"
    for config in readers:
        build = (lambda: config.from_params(params, environ={})) if config is IngestConfig else (
            lambda: config.from_params(params))
        with pytest.raises(ConfigError, match=rf"'{section_name}\.{key}'"):
            build()


def _reads(config: type, section_name: str, key: str) -> bool:
    if section_name == "base":
        return "seed" in config.__dataclass_fields__
    return SECTION_OF[config] == section_name and key in config.__dataclass_fields__


SECTION_OF = {DemoConfig: "demo", IngestConfig: "ingest", SplitConfig: "split", PreprocessConfig: "preprocess",
              ModelConfig: "model", TrainConfig: "train", EvaluateConfig: "evaluate", ExplainConfig: "explain",
              ExternalConfig: "external"}


def test_no_config_field_has_a_default():
    import dataclasses

    with_default = [f"{config.__name__}.{f.name}" for config in (*STAGES, ExternalSite) for f in dataclasses.fields(config)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_default == []


def test_every_shipped_params_file_declares_no_external_cohort():
    """`external` is in every shipped file, empty: the external stage then writes an empty index."""
    for path in FILES:
        assert load_params(path)["external"] == [], path.name
        assert ExternalConfig.from_params(load_params(path)).sites == ()


SITE = {"name": "site_b", "raw_dir": "/data/site_b/raw", "manifest": "/data/site_b/manifest.csv"}


def test_external_cohorts_are_read_in_order_with_every_key():
    params = load_params(ROOT / "params.yaml")
    params["external"] = [SITE, {**SITE, "name": "site-c_2"}]
    sites = ExternalConfig.from_params(params).sites
    assert [s.name for s in sites] == ["site_b", "site-c_2"] and sites[0].manifest == SITE["manifest"]


@pytest.mark.parametrize(("value", "message"), [
    ("delete", r"params key 'external' must be set; it is missing\. Add 'external: \[\]' to params.yaml"),
    (None, r"'external' must be a list of cohorts; got None"),
    ({"name": "site_b"}, r"'external' must be a list of cohorts"),
    (["site_b"], r"'external\[0\]' must be a mapping with name, raw_dir and manifest; got 'site_b'"),
    ([{**SITE, "path": "x"}], r"params keys under 'external\[0\]' must be among \['manifest', 'name', 'raw_dir'\]; "
                              r"got unknown \['path'\]"),
    ([{"name": "site_b", "raw_dir": "r"}], r"params keys \['external\[0\]\.manifest'\] must be set"),
    ([{**SITE, "name": "../etc"}], r"'external\[\]\.name' must be 1 to 64 letters, digits, '_' or '-'.*got '\.\./etc'"),
    ([{**SITE, "name": "index.json"}], r"'external\[\]\.name' must be 1 to 64 letters"),
    ([{**SITE, "raw_dir": ""}], r"'external\[site_b\]\.raw_dir' must be a path \(a non-empty string\); got ''"),
    ([SITE, SITE], r"'external' must name each site once; got \['site_b'\] more than once"),
])
def test_a_bad_external_declaration_names_the_key_and_the_rule(value, message):
    params = load_params(ROOT / "params.yaml")
    if value == "delete":
        del params["external"]
    else:
        params["external"] = value
    with pytest.raises(ConfigError, match=message):
        ExternalConfig.from_params(params)
