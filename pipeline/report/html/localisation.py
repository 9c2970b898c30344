"""The section "Does the map point at the lesion?": the localise stage's check of the Grad-CAM peaks."""

from __future__ import annotations

from pipeline.report.html.markup import esc
from pipeline.schema.localisation import LocalisationRecord


def localisation_section(record: LocalisationRecord) -> str:
    """The share of true-positive test cases whose map peaks on their lesion, beside what a random peak scores."""
    r = record
    cells = "x".join(map(str, r.layer_cells))
    parts = ["<h2>Does the map point at the lesion? (Grad-CAM peak, test split)</h2>"]
    how = (f"Each true-positive test case (label 1, score at or above the validation-chosen cut"
           + ("" if r.threshold_score is None else f" {r.threshold_score:.4g}")
           + f"; {r.true_positives} series) is mapped by MONAI's GradCAM at <code>{esc(r.layer)}</code> ({cells} "
           f"cells over the model input) and counted as a hit when the map's peak lies inside its lesion or within "
           f"{r.margin_mm:g} mm of its edge. Lesion positions are the cohort's recorded ground truth (the demo's "
           "<code>lesions.csv</code>), never an input to training. Chance is the share of the body within the same "
           "reach of the lesion: what a peak dropped at random in the body would score.")
    if not r.cases or r.peak_in_lesion is None or r.chance is None:
        parts.append(f"<p>{how}</p><div class='note'>No case checked: {esc(r.note or 'none given')}.</div>")
        return "\n".join(parts)
    ratio = f" ({r.peak_in_lesion / r.chance:.1f}x chance)" if r.chance else ""
    flat = (f" {r.flat_maps} of the {r.cases} maps were flat (no positive evidence anywhere at this layer) and count "
            "as misses.") if r.flat_maps else ""
    parts.append(
        f"<p>Peak on the lesion in <b>{r.peak_in_lesion:.0%}</b> of {r.cases} true-positive test "
        f"cases{ratio}; chance {r.chance:.1%}.</p>"
    )
    parts.append(f"<p>{how}{flat}</p>")
    if r.note:
        parts.append(f"<div class='note'>{esc(r.note)}</div>")
    return "\n".join(parts)
