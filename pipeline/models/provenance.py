"""The record of where a backbone's weights came from, written to ``train_summary.json``,
sealed into the model file and shown in the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipeline.models.adapt import Transferred
from pipeline.models.fetch import ResolvedFile
from pipeline.models.network import NetworkLayout
from pipeline.models.sources import WeightSource
from pipeline.rules import NAMED_WEIGHTS

USER_FILE_LICENCE = "unknown: a user-supplied file; record its licence yourself"


@dataclass(frozen=True)
class WeightsProvenance:
    """Where a backbone's weights came from.

    Attributes:
        source: ``imagenet``, ``medicalnet``, ``file`` or ``none`` (random initialisation).
        requested: what ``model.weights`` asked for (``auto``, a source name, or ``file``).
        arch: the architecture built.
        spatial_dims: 2 or 3.
        in_channels: input channels of the model.
        stem_kernel: stem kernel size per spatial axis.
        stem_stride: stem stride per spatial axis.
        shortcut_type: MONAI shortcut type (``A`` or ``B``).
        file: file name of the checkpoint (no folder: paths differ per machine).
        sha256: SHA-256 of the file actually loaded.
        sha256_expected: the digest or prefix it was checked against (``None``: unchecked).
        found: ``path``, ``cache`` or ``download``.
        url: where the file is published.
        licence: licence and data terms of the weights.
        channel_adaptation: ``none``, ``sum`` (grey) or ``repeat``.
        inflated: 2D kernels inflated to 3D.
        head: ``pretrained`` (published head kept) or ``new``.
        notes: layout differences between the source and this model.
        warning: set when something is off, e.g. ``auto`` fell back to random weights.
    """

    source: str
    requested: str
    arch: str
    spatial_dims: int
    in_channels: int
    stem_kernel: tuple[int, ...]
    stem_stride: tuple[int, ...]
    shortcut_type: str
    file: str | None = None
    sha256: str | None = None
    sha256_expected: str | None = None
    found: str | None = None
    url: str | None = None
    licence: str | None = None
    channel_adaptation: str = "none"
    inflated: bool = False
    head: str = "new"
    notes: str = ""
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _layout_fields(layout: NetworkLayout) -> dict[str, Any]:
    return {"arch": layout.arch, "spatial_dims": layout.spatial_dims, "in_channels": layout.in_channels,
            "stem_kernel": layout.stem_kernel, "stem_stride": layout.stem_stride, "shortcut_type": layout.shortcut_type}


def random_provenance(layout: NetworkLayout, *, requested: str, warning: str | None = None) -> WeightsProvenance:
    """The record of a randomly initialised backbone (``none``, or ``auto`` with no file at hand)."""
    return WeightsProvenance(source="none", requested=requested, warning=warning, **_layout_fields(layout))


def loaded_provenance(
    layout: NetworkLayout, *, requested: str, row: WeightSource | None, found: ResolvedFile, fitted: Transferred
) -> WeightsProvenance:
    """The record of a backbone loaded from ``found``: a named source's ``row``, or a user's file (``None``)."""
    return WeightsProvenance(
        source=row.source if row else "file",
        requested=requested if requested in NAMED_WEIGHTS else "file",
        file=found.path.name,
        sha256=found.sha256,
        sha256_expected=found.expected,
        found=found.how,
        url=row.url if row else None,
        licence=row.licence if row else USER_FILE_LICENCE,
        channel_adaptation=fitted.channel_adaptation,
        inflated=fitted.inflated,
        head=fitted.head,
        notes=row.notes if row else "",
        warning=None if found.expected else f"{found.path.name!r} was not checked against a known SHA-256.",
        **_layout_fields(layout),
    )
