"""The explain stage's Grad-CAM gallery, read back for the report and checked against this evaluation.

A gallery chosen at another operating point, from other predictions, or drawn by
another model than the evaluation it is shown beside is refused (a stale output of an
earlier run), as :func:`pipeline.report.external.read_external` refuses a stale site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineInputError
from pipeline.report.operating_point import DecisionRule, stale_reasons
from pipeline.schema.gallery import GalleryRecord


class GalleryResultsError(PipelineInputError):
    """The gallery does not belong beside this evaluation, or one of its images is missing."""


@dataclass(frozen=True)
class GalleryResults:
    """The gallery as the report shows it.

    Attributes:
        file: the ``gallery.json`` read (as given).
        record: its content.
        images: PNG bytes by file name, one per case with an image.
    """

    file: str
    record: GalleryRecord
    images: dict[str, bytes]


def read_gallery(
    path: str | Path, rule: DecisionRule, *, predictions_sha256: str, model_digest: str | None
) -> GalleryResults:
    """Read ``gallery.json`` and its overlays, checked against this evaluation.

    Args:
        path: ``reports/gallery/gallery.json``.
        rule: this evaluation's operating point.
        predictions_sha256: SHA-256 of this evaluation's predictions file.
        model_digest: the model those predictions came from (``train_summary.json``);
            ``None`` when unknown (not checked then).

    Raises:
        ArtifactError: the file missing or lacking a key.
        GalleryResultsError: chosen at another operating point, from other predictions, by
            another model, or an overlay it lists is missing.
    """
    path = Path(path)
    record = GalleryRecord.read(path)
    stale = stale_reasons(record.operating_point, rule, predictions_sha256=predictions_sha256,
                          made_by=record.model_digest, model_digest=model_digest, verb="drawn")
    if stale:
        raise GalleryResultsError(
            f"the Grad-CAM gallery {str(path)!r} must be drawn at this evaluation's operating point; it was not: "
            f"{'; '.join(stale)}. It is stale: run the explain stage again (dvc repro explain)."
        )
    images = {}
    for case in record.cases:
        if not case.image:
            continue
        try:
            images[case.image] = (path.parent / case.image).read_bytes()
        except OSError as error:
            raise GalleryResultsError(
                f"the Grad-CAM gallery {str(path)!r} lists the overlay {case.image!r}, which must be beside it; it "
                f"cannot be read ({error.strerror}). Run the explain stage again (dvc repro explain)."
            ) from None
    return GalleryResults(file=str(path), record=record, images=images)
