"""DVC stage ``localise``: does the Grad-CAM peak of each true-positive test case lie on its lesion?

Usage: the ``cmd`` of the localise stage in ``dvc.yaml``::

    python -m pipeline.stages.localise MODEL PREDICTIONS INDEX LESIONS
        --out reports/localisation.json [--params params.yaml] [--layer auto]

The true positives are the test series of PREDICTIONS with label 1 and a score at or
above the cut chosen on its validation patients by the function evaluate uses
(:func:`pipeline.report.operating_point.operating_point`, with the ``evaluate`` params),
so the stage runs before evaluate and the report shows its result. Each is read from
ingest's INDEX as ``predict`` reads it, scored again by MODEL (which must give the
score PREDICTIONS holds: :mod:`pipeline.rescoring`), and its
Grad-CAM map (:mod:`pipeline.explain`; ``auto``: the deepest stage with at least 8 cells
along each in-plane axis) is compared with its lesion in LESIONS (patient space, mm;
the demo writes it) by :mod:`pipeline.localisation`. LESIONS is keyed by the patient id
of the manifest and pseudonymised here with ``ingest.pseudonym_key``, as ingest does:
a cohort whose patients it does not list gets ``cases: 0`` and a note, never an error.
Writes ``localisation.json`` (:class:`pipeline.schema.localisation.LocalisationRecord`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("localise")

from pipeline.cli import run_stage  # noqa: E402
from pipeline.config import EvaluateConfig, IngestConfig, load_params  # noqa: E402
from pipeline.digests import sha256_file  # noqa: E402
from pipeline.io.index import patient_key  # noqa: E402
from pipeline.localisation import MARGIN_MM, read_lesion_truth, score_case, summarise  # noqa: E402
from pipeline.outputs import refuse_overlap, write_atomic  # noqa: E402
from pipeline.report.operating_point import operating_point, threshold_record  # noqa: E402
from pipeline.report.predictions import read_predictions  # noqa: E402
from pipeline.rescoring import check_rescored  # noqa: E402
from pipeline.schema.localisation import LocalisationRecord  # noqa: E402
from pipeline.schema.tables import PREDICTION_REQUIRED  # noqa: E402
from pipeline.tables import read_rows  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.localise", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file written by train (models/best.ckpt)")
    parser.add_argument("predictions", type=Path, help="that model's predictions.csv")
    parser.add_argument("index", type=Path, help="ingest's index.csv (the volumes it lists are read)")
    parser.add_argument("lesions", type=Path, help="lesion centres and semi-axes, LPS mm (the demo's lesions.csv)")
    parser.add_argument("--out", type=Path, required=True, help="localisation.json to write")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--layer", default="auto", help="ResNet stage of the map: auto or layer1..layer4")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_stage("localise", lambda: localise(args))


def localise(args: argparse.Namespace) -> str:
    from pipeline.explain import choose_layer, stage_cells
    from pipeline.inference import load_classifier
    from pipeline.predict_inputs import Case

    inputs = {"model": args.model, "predictions": args.predictions, "index": args.index, "lesions": args.lesions,
              "params": args.params}
    refuse_overlap({"out": args.out}, inputs, stage="localise")
    params = load_params(args.params)
    key = IngestConfig.from_params(params).pseudonym_key
    evaluate = EvaluateConfig.from_params(params)
    rule = operating_point(read_predictions(args.predictions, aggregate=evaluate.aggregate), evaluate)
    classifier = load_classifier(args.model, device="cpu")
    chosen = threshold_record(rule, model_digest=classifier.meta["digest"],
                              predictions_sha256=sha256_file(args.predictions))
    # No cut on the model's own scores (a recalibration map that is not monotone: a model
    # ranking val backwards): which test cases are true positives cannot be told here. A
    # recorded reason, not a failed repro.
    cut = rule.threshold_score
    no_cut = "" if cut is not None else (
        f"the validation-chosen operating point has no cut on the model's score scale ({chosen.threshold_score_reason})")
    predictions = read_rows(args.predictions, required=PREDICTION_REQUIRED)
    positives = [row for row in predictions if row["split"] == "test" and row["label"] == "1"
                 and cut is not None and float(row["score"]) >= cut]
    truth = read_lesion_truth(args.lesions, lambda patient: patient_key(key, patient))
    volumes = {row["series_key"]: row for row in read_rows(args.index, required=("series_key", "image_path"))}
    layer = choose_layer(classifier.network, classifier.input_shape, args.layer)
    cells = stage_cells(classifier.network, classifier.input_shape)[layer]

    note, outcomes = "", []
    if classifier.spatial_dims != 3:
        note = "the check needs a 3D model: lesion positions are 3D"
    else:
        known = [row for row in positives if row["patient_id"] in truth and row.get("series_key") in volumes]
        cases = [Case(row["patient_id"], str(args.predictions), series_key=row["series_key"],
                      image_path=str(args.index.parent / volumes[row["series_key"]]["image_path"]),
                      modality=volumes[row["series_key"]].get("modality", ""),
                      shape=volumes[row["series_key"]].get("shape", "")) for row in known]
        results = classifier.score_cases(cases, saliency=True, layer=layer, progress=False)
        for row, result in zip(known, results):
            if result.score is not None:
                check_rescored(result.score, float(row["score"]), row["series_key"], args.model, args.predictions)
        outcomes = [score_case(r.image, r.saliency, r.affine, truth[r.key]) for r in results if r.saliency is not None]
        unread = [r for r in results if r.saliency is None]
        if no_cut:
            note = no_cut
        elif not positives:
            note = "no true-positive test case at the validation-chosen threshold"
        elif unread:  # a case the stage could not read is counted, with its reason, never dropped
            note = f"{len(unread)} true-positive case(s) not scored: {unread[0].reason}"
        elif not outcomes:
            note = f"no lesion position in {str(args.lesions)!r} for the true-positive test patients"
    n, on_lesion, chance = summarise(outcomes)
    record = LocalisationRecord(split="test", cases=n, layer=layer, layer_cells=tuple(cells), peak_in_lesion=on_lesion,
                                chance=chance, margin_mm=MARGIN_MM, threshold_score=chosen.threshold_score,
                                true_positives=len(positives), flat_maps=sum(o.flat for o in outcomes),
                                operating_point=chosen, model_digest=classifier.meta["digest"], note=note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps(record.to_json(), indent=2) + "\n")
    if not n:
        return f"localise: 0 cases ({note}); {args.out}"
    ratio = f", {on_lesion / chance:.1f}x chance" if chance else ""
    flat = record.flat_maps
    flat_note = f"; {flat} map(s) flat (no positive evidence at {layer}), counted as misses" if flat else ""
    return (f"localise: Grad-CAM peak ({layer}, {'x'.join(map(str, cells))} cells) within {MARGIN_MM:g} mm of the "
            f"lesion in {on_lesion:.0%} of {n} true-positive test cases (chance {chance:.1%}{ratio}){flat_note}; {args.out}")


if __name__ == "__main__":
    sys.exit(main())
