"""The section "Where the model looks": the Grad-CAM gallery of the explain stage."""

from __future__ import annotations

from pipeline.report.gallery import GalleryResults
from pipeline.report.html.markup import esc, img
from pipeline.schema.gallery import GALLERY_GROUPS, GalleryCase


def _caption(case: GalleryCase) -> str:
    where = "" if case.slice_index is None else f", axial slice {case.slice_index}"
    flat = ("; <b>flat map</b>: no positive evidence at this layer, nothing highlighted"
            + (" (the middle slice)" if case.slice_index is not None else "")) if case.flat else ""
    # .3g: an overconfident model's probabilities of 1e-50 are still ranked, and shown so
    return (f"#{case.rank}: patient <code>{esc(case.patient_id[:12])}</code>, score {case.score:.3g} "
            f"(patient {case.patient_score:.3g}){where}{flat}")


def _figure(case: GalleryCase, gallery: GalleryResults) -> str:
    if not case.image:
        return f"<figure><figcaption>#{case.rank}: not drawn: {esc(case.reason)}</figcaption></figure>"
    return (f"<figure>{img(gallery.images[case.image], f'{case.group} {case.rank}')}"
            f"<figcaption>{_caption(case)}</figcaption></figure>")


def gallery_section(gallery: GalleryResults) -> str:
    """Per group (true positives, false positives, false negatives) the overlays, with how they were chosen."""
    r = gallery.record
    op = r.operating_point
    cut = "" if op.threshold_score is None else f" (score &ge; {op.threshold_score:.4g})"
    counts = {"true_positive": r.true_positives, "false_positive": r.false_positives,
              "false_negative": r.false_negatives}
    parts = [
        "<h2>Where the model looks (Grad-CAM, test split)</h2>",
        f"<p>Test patients at the operating point chosen on validation: {esc(op.threshold_scale)} "
        f"&ge; {op.threshold:.4g} (rule {esc(op.rule)}){cut}. Up to {r.per_group} patients per group, each drawn from "
        f"its highest-scored series on the axial slice where the map peaks (radiological view: anterior up, the "
        f"patient's right on the left). Maps: MONAI's GradCAM of the positive logit at <code>{esc(r.layer)}</code> "
        f"({'x'.join(map(str, r.layer_cells))} cells over the model input), upsampled to the input grid; red is "
        "the most evidence for the positive class. Grad-CAM shows the region that raised this model's score, not a "
        "lesion's outline, and is no proof that the model uses the finding a reader would.</p>",
    ]
    if r.note:
        parts.append(f"<div class='note'>{esc(r.note)}</div>")
    for group, words in GALLERY_GROUPS.items():
        cases = [c for c in r.cases if c.group == group]
        parts.append(f"<h3>{esc(words[0].upper() + words[1:])}: {len(cases)} of {counts[group]}</h3>")
        if cases:
            parts.append("<div class='figs gallery'>" + "".join(_figure(c, gallery) for c in cases) + "</div>")
    return "\n".join(parts)
