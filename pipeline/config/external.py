"""Config of the external-validation stage: the cohorts of other sites, declared in params.

``external`` in ``params.yaml`` is a list (``[]`` by default); each entry names a cohort
and where its raw files and manifest are, read exactly as ``data.raw_dir`` and
``data.manifest`` are read by ingest (same ingest settings, same pseudonym key). The
entries have no field defaults (see :mod:`pipeline.config.checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.config.checks import fields_of
from pipeline.errors import ConfigError
from pipeline.rules import check_site_name

_EXAMPLE = "external: [{name: site_b, raw_dir: /data/site_b/raw, manifest: /data/site_b/manifest.csv}]"


@dataclass(frozen=True)
class ExternalSite:
    """One external cohort.

    Attributes:
        name: the site's name, its folder under ``reports/external/`` (letters, digits, ``_``, ``-``).
        raw_dir: its folder of DICOM/NIfTI files (as ``data.raw_dir``).
        manifest: its manifest CSV (as ``data.manifest``): patient_id, label, a locator column.
    """

    name: str
    raw_dir: str
    manifest: str

    def __post_init__(self) -> None:
        check_site_name("external[].name", self.name)
        for key in ("raw_dir", "manifest"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"'external[{self.name}].{key}' must be a path (a non-empty string); got {value!r}. {_EXAMPLE}"
                )


@dataclass(frozen=True)
class ExternalConfig:
    """The external cohorts, in the order declared; empty when none is.

    Attributes:
        sites: one :class:`ExternalSite` per entry of ``external``, names distinct.
    """

    sites: tuple[ExternalSite, ...]

    def __post_init__(self) -> None:
        names = [site.name for site in self.sites]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"'external' must name each site once; got {repeated} more than once. Rename one.")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ExternalConfig":
        if "external" not in params:
            raise ConfigError(
                "params key 'external' must be set; it is missing. Add 'external: []' to params.yaml (no external "
                f"cohort), or list them: {_EXAMPLE}."
            )
        entries = params["external"]
        if not isinstance(entries, list):
            raise ConfigError(f"'external' must be a list of cohorts; got {entries!r}. {_EXAMPLE}, or [] for none.")
        sites = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ConfigError(f"'external[{i}]' must be a mapping with name, raw_dir and manifest; got {entry!r}.")
            sites.append(ExternalSite(**fields_of(entry, ExternalSite, f"external[{i}]")))
        return cls(sites=tuple(sites))
