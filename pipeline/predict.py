"""Score new images with a trained model: one CSV row per series.

Usage::

    python -m pipeline.predict models/best.ckpt INPUT... --out predictions.csv
        [--raw-dir DIR] [--params params.yaml]
        [--threshold-file reports/threshold.json | --metrics reports/metrics.json | --threshold T]
        [--saliency DIR [--saliency-layer auto|layer1..layer4]]

An INPUT is a DICOM folder (any layout; series assembled by ingest's code), a NIfTI file,
a single DICOM, PNG, JPEG or TIFF file, or a manifest CSV (read as ingest reads it; needs
``--raw-dir``).
Manifest rows are keyed by ``patient_id`` pseudonymised with ingest's key
(``PIPELINE_PSEUDONYM_KEY``, else ``ingest.pseudonym_key`` of ``--params``), so they join
with ``reports/predictions.csv``; folders and files are keyed by the path as typed.

The decision threshold is ``--threshold``, else the one evaluate chose on val: from
``--threshold-file`` (evaluate's ``threshold.json``, refused when it was chosen on another
model's scores) or ``--metrics`` (``val.threshold_score``), else from
``reports/threshold.json`` or ``reports/metrics.json`` when present (another model's
``reports/threshold.json`` is then skipped with a warning: no decisions).

Columns: ``input``, ``patient_id``, ``series_key``, ``label``, ``score`` (probability),
``positive`` (1/0 at the threshold; empty without one), ``threshold``, ``reason`` (why a
series was not scored; empty when it was), and with ``--saliency`` the map's file name.
A bad input file is a row with its reason;
bad arguments exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli import run_stage
from pipeline.environment import require
from pipeline.schema.tables import PREDICT_COLUMNS

DEFAULT_METRICS = Path("reports/metrics.json")
DEFAULT_THRESHOLD_FILE = Path("reports/threshold.json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as every stage fails
        print(f"predict failed: {message}. See python -m pipeline.predict --help.", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m pipeline.predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file written by train (models/best.ckpt)")
    parser.add_argument("inputs", nargs="+", help="DICOM folders, NIfTI files, DICOM/PNG/JPEG/TIFF files or manifest CSVs")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--raw-dir", type=Path, default=None, help="raw folder a manifest's paths are relative to")
    parser.add_argument("--params", type=Path, default=None,
                        help="params file for ingest's key and settings (default: params.yaml if present)")
    parser.add_argument("--threshold-file", type=Path, default=None,
                        help="evaluate's threshold.json: the val-chosen threshold, checked to belong to the model "
                             f"(default: {DEFAULT_THRESHOLD_FILE} if present)")
    parser.add_argument("--metrics", type=Path, default=None,
                        help=f"evaluate's metrics.json for the val-chosen threshold (default: {DEFAULT_METRICS} if present "
                             f"and {DEFAULT_THRESHOLD_FILE} is not)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold on the score (overrides --threshold-file and --metrics)")
    parser.add_argument("--batch-size", type=int, default=8, help="series per forward pass (default 8)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the GPU when there is one")
    parser.add_argument("--saliency", type=Path, default=None,
                        help="folder for Grad-CAM maps: <series_key>.nii.gz (3D, world-aligned) or .png (2D overlay)")
    parser.add_argument("--saliency-layer", default="auto",
                        help="ResNet stage for Grad-CAM: auto (deepest with >= 8 cells in-plane) or layer1..layer4")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before predict's imports (numpy, torch, MONAI): a wrong interpreter is one line
    # naming it and the fix, as for the stages.
    require("predict")
    return run_stage("predict", lambda: predict(args))


def predict(args: argparse.Namespace) -> str:
    from pipeline.errors import PipelineInputError
    from pipeline.inference import load_classifier
    from pipeline.outputs import atomic_file, refuse_overlap
    from pipeline.predict_inputs import cases_from_manifest, cases_from_paths, ingest_settings, scoring_session
    from pipeline.tables import write_rows

    manifests = [i for i in args.inputs if i.lower().endswith(".csv")]
    if manifests and args.raw_dir is None:
        raise PipelineInputError(
            f"--raw-dir must be given with a manifest input; got manifest {manifests[0]!r} and no --raw-dir. "
            "Give the folder the manifest's paths are relative to (e.g. --raw-dir data/demo/raw)."
        )
    if args.batch_size < 1:
        raise PipelineInputError(f"--batch-size must be an integer >= 1; got {args.batch_size}.")
    refuse_overlap({"out": args.out}, {"model": args.model, **{f"input {i}": p for i, p in enumerate(args.inputs)}},
                   stage="predict")
    params = args.params if args.params is not None else (Path("params.yaml") if Path("params.yaml").is_file() else None)
    classifier = load_classifier(args.model, device=args.device)
    threshold, source, why_none = _threshold(args, classifier.meta["digest"])
    classifier.threshold = threshold
    config = ingest_settings(params, need_key=bool(manifests), recorded=classifier.preprocess.get("ingest"))

    with scoring_session() as session:
        cases = []
        for item in args.inputs:
            if item in manifests:
                cases += cases_from_manifest(item, args.raw_dir, session, config)
            else:
                cases += cases_from_paths([item], session, config)
        results = classifier.score_cases(cases, batch_size=args.batch_size, saliency=args.saliency is not None,
                                         layer=args.saliency_layer)
    maps = _write_saliency(args.saliency, results) if args.saliency is not None else {}
    rows = [
        {"input": c.source if c.source in manifests else c.key,
         "patient_id": c.key if c.source in manifests else "", "series_key": r.series_key, "label": c.label,
         "score": "" if r.score is None else format(r.score, ".17g"),
         "positive": "" if r.positive is None else int(r.positive),
         "threshold": "" if threshold is None else repr(float(threshold)), "reason": r.reason,
         "saliency": maps.get(id(r), "")}
        for c, r in zip(cases, results)
    ]
    with atomic_file(args.out) as temp:
        write_rows(temp, rows, PREDICT_COLUMNS + (("saliency",) if args.saliency is not None else ()))
    scored = [r for r in results if r.score is not None]
    at = f"{sum(bool(r.positive) for r in scored)} positive at threshold {threshold:.4g} from {source}" \
        if threshold is not None else f"no threshold ({why_none})"
    layers = sorted({r.saliency_layer for r in scored if r.saliency_layer})
    maps_line = f"; Grad-CAM maps from {', '.join(layers)} in {args.saliency}" if layers else ""
    return (f"predict: {len(results)} series from {len(args.inputs)} inputs -> {len(scored)} scored ({at}), "
            f"{len(results) - len(scored)} not scored (see 'reason'); wrote {args.out}{maps_line}")


def _threshold(args: argparse.Namespace, model_digest: str) -> tuple[float | None, str, str]:
    """``(threshold, where it came from, why there is none)`` for the model of ``model_digest``.

    A file named on the command line that cannot be applied stops predict; the default
    ``reports/threshold.json`` of another model is skipped with a warning (it is the
    working folder's, not the user's choice), and no decision is made.
    """
    from pipeline.inference import ThresholdFileError, read_threshold, threshold_for_model

    if args.threshold is not None:
        return args.threshold, "--threshold", ""
    named = args.threshold_file is not None
    path = args.threshold_file if named else (DEFAULT_THRESHOLD_FILE if DEFAULT_THRESHOLD_FILE.is_file() else None)
    if path is not None and (named or args.metrics is None):
        try:
            recorded = threshold_for_model(path, model_digest)
        except ThresholdFileError as error:
            if named:
                raise
            print(f"predict: WARNING: {path} not used: {error}", file=sys.stderr)
            return None, "", f"{path} is not this model's; give --threshold or --threshold-file for decisions"
        if not recorded.checked:
            print(f"predict: WARNING: {path} names no model (evaluate ran without --train-summary), so it could "
                  f"not be checked against {args.model}", file=sys.stderr)
        return recorded.value, str(path), ""
    metrics = args.metrics if args.metrics is not None else (DEFAULT_METRICS if DEFAULT_METRICS.is_file() else None)
    if metrics is not None:
        return read_threshold(metrics), str(metrics), ""
    return None, "", "give --threshold, --threshold-file or --metrics for decisions"


def _write_saliency(folder: Path, results: list) -> dict[int, str]:
    """Write each scored series' map, named by its series key (a keyed hash: no identifier)."""
    from pipeline.explain import save_saliency

    written = {}
    for n, r in enumerate(results):
        if r.saliency is not None:
            name = r.series_key or f"series{n}"
            written[id(r)] = save_saliency(folder, name, r.image, r.saliency, r.affine).name
    return written


if __name__ == "__main__":
    sys.exit(main())
