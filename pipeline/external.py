"""External validation: other sites' cohorts through the frozen model, at the internal operating point.

For each site declared in ``external`` (:class:`pipeline.config.ExternalSite`):

1. its manifest and raw folder are ingested by ingest's own code with the internal
   cohort's settings and pseudonym key, as ``predict`` ingests a manifest
   (:func:`pipeline.predict_inputs.cases_from_manifest`);
2. every series is prepared with the preprocess settings the model file records and
   scored by that model (:meth:`pipeline.inference.Classifier.score_cases`): the one code
   path of ``predict``, never a second copy of the transforms;
3. series scores are combined per patient as for the internal cohort, and the patients
   are called positive by the :class:`~pipeline.report.operating_point.DecisionRule` that
   :func:`~pipeline.report.operating_point.operating_point` chooses on the internal
   validation split of ``predictions.csv``: the same function evaluate applies, so the
   same recalibration map and threshold. Nothing is fitted on a site's data.

Outputs (names in :mod:`pipeline.schema.external`): per site ``metrics.json``,
``predictions.csv`` (patients pseudonymised as ingest keys them), ingest's ``ledger.csv``;
and ``index.json`` listing the sites, written also when none is declared. Torch is loaded
only when there is a site to score.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import EvaluateConfig, ExternalSite, IngestConfig
from pipeline.digests import sha256_file
from pipeline.io.tree import not_regular, walk
from pipeline.outputs import staged_folder, write_atomic
from pipeline.report.external import evaluate_site
from pipeline.report.operating_point import DecisionRule, operating_point, threshold_record
from pipeline.report.predictions import patients_of, read_predictions
from pipeline.report.writers import jsonable
from pipeline.schema import (
    ExternalIndexRecord,
    ExternalMetricsRecord,
    SiteData,
    SiteEntry,
    SitePaths,
    SiteScoring,
)
from pipeline.schema.external import INDEX_FILE, PREDICTION_COLUMNS, SITE_FILES
from pipeline.schema.tables import LEDGER_FILE as INGEST_LEDGER
from pipeline.tables import read_rows, write_rows

if TYPE_CHECKING:
    from pipeline.inference import Classifier

@dataclass(frozen=True)
class ExternalSummary:
    """What the stage did: the rule applied and each site's record."""

    out_dir: Path
    rule: DecisionRule
    sites: tuple[ExternalMetricsRecord, ...]

    def line(self) -> str:
        """The stage's summary line."""
        if not self.sites:
            return f"external: no external cohort declared (params external: []); wrote {self.out_dir / INDEX_FILE}"
        cut = self.rule.threshold_score
        at = f"threshold {self.rule.threshold:.4g}" + ("" if cut is None else f" (score >= {cut:.4g})")
        parts = []
        for record in self.sites:
            m, s = record.metrics, record.scoring
            lo, hi = m.auc_ci95
            parts.append(
                f"{record.site}: AUC {m.auc:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {m.n_patients} patients "
                f"({m.n_positive} positive), sensitivity {_fmt(m.sensitivity)}, specificity {_fmt(m.specificity)}"
                + (f", {s.n_series - s.n_series_scored} series not scored" if s.n_series > s.n_series_scored else "")
            )
        return (f"external: {len(self.sites)} site(s) at the internal {at} chosen on val, never re-tuned; "
                + "; ".join(parts) + f". Results in {self.out_dir}")


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def validate_external(
    sites: tuple[ExternalSite, ...],
    *,
    model: str | Path,
    predictions: str | Path,
    out_dir: str | Path,
    ingest: IngestConfig,
    evaluate: EvaluateConfig,
) -> ExternalSummary:
    """Score and evaluate every site; write ``out_dir`` whole (replaced only when complete).

    Args:
        sites: the declared cohorts (may be empty: then only the index is written).
        model: the model file written by train (``models/best.ckpt``).
        predictions: the internal ``predictions.csv`` of that model, whose validation
            patients give the operating point.
        out_dir: the stage's output folder (``reports/external``).
        ingest: ingest's settings and pseudonym key, those of the internal cohort.
        evaluate: the ``evaluate`` settings: aggregation, recalibration, threshold rule and
            the interval settings, as for the internal test split.

    Raises:
        PipelineInputError: bad predictions, a site's manifest or raw folder, a model file
            that is refused, a site that cannot be evaluated (each message says which).
    """
    out_dir = Path(out_dir)
    table = read_predictions(predictions, aggregate=evaluate.aggregate)
    rule = operating_point(table, evaluate)
    predictions_sha256 = sha256_file(Path(predictions))
    records: list[ExternalMetricsRecord] = []
    with staged_folder(out_dir, name="out_dir", example="reports/external", contents=_ours(out_dir)) as temp:
        if sites:
            from pipeline.inference import load_classifier  # torch: only when there is something to score

            classifier = load_classifier(model)
            for site in sites:
                records.append(_site(site, classifier, rule, predictions_sha256, temp, ingest, evaluate))
        entries = tuple(_entry(site.name) for site in sites)
        write_atomic(temp / INDEX_FILE, json.dumps(ExternalIndexRecord(sites=entries).to_json(), indent=2) + "\n")
    return ExternalSummary(out_dir=out_dir, rule=rule, sites=tuple(records))


def _ours(out_dir: Path) -> tuple[str, ...]:
    """Names an existing output folder may hold: the index and folders holding only a site's files."""
    if not out_dir.is_dir():
        return (INDEX_FILE,)
    sites = [e.name for e in out_dir.iterdir() if e.is_dir() and set(os.listdir(e)) <= set(SITE_FILES)]
    return (INDEX_FILE, *sites)


def _entry(name: str) -> SiteEntry:
    paths = SitePaths.of(".", name)
    return SiteEntry(name=name, metrics=paths.metrics.as_posix(), predictions=paths.predictions.as_posix(),
                     ledger=paths.ledger.as_posix())


def _site(
    site: ExternalSite,
    classifier: Classifier,
    rule: DecisionRule,
    predictions_sha256: str,
    out: Path,
    ingest: IngestConfig,
    evaluate: EvaluateConfig,
) -> ExternalMetricsRecord:
    """Ingest, score and evaluate one site; write its three files under ``out``."""
    from pipeline.predict_inputs import cases_from_manifest, scoring_session

    paths = SitePaths.of(out, site.name)
    paths.folder.mkdir(parents=True)
    print(f"external: {site.name}: ingesting {site.manifest} ({site.raw_dir})", flush=True)
    with scoring_session() as session:
        ingested = session / "ingested"
        cases = cases_from_manifest(site.manifest, site.raw_dir, session, ingest, out=ingested, workers=ingest.workers)
        results = classifier.score_cases(cases, progress=None)
        shutil.copyfile(ingested / INGEST_LEDGER, paths.ledger)
    rows = [{"patient_id": c.key, "series_key": r.series_key, "label": c.label,
             "score": "" if r.score is None else format(r.score, ".17g"), "reason": r.reason}
            for c, r in zip(cases, results)]
    write_rows(paths.predictions, rows, PREDICTION_COLUMNS)
    scored = [(c.key, int(c.label), r.score) for c, r in zip(cases, results) if r.score is not None]
    ids, labels, scores = (list(v) for v in zip(*scored)) if scored else ([], [], [])
    table = patients_of(ids, labels, scores, group=site.name, aggregate=evaluate.aggregate)
    record = ExternalMetricsRecord(
        site=site.name,
        metrics=evaluate_site(table, rule, evaluate, site=site.name),
        operating_point=threshold_record(rule, model_digest=classifier.meta["digest"],
                                         predictions_sha256=predictions_sha256),
        model_digest=classifier.meta["digest"],
        data=_data(site, paths),
        scoring=SiteScoring(
            n_series=len(rows), n_series_scored=len(scored), n_patients=len({c.key for c in cases}),
            n_patients_scored=int(table.label.size),
            not_scored=dict(sorted(Counter(r.reason for r in results if r.score is None).items())),
        ),
    )
    write_site_metrics(paths.metrics, record)
    return record


def write_site_metrics(path: Path, record: ExternalMetricsRecord) -> None:
    """A site's ``metrics.json``: its metrics rounded as evaluate's are, the operating point with every digit."""
    data = record.to_json()
    data["metrics"] = jsonable(data["metrics"])
    write_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _data(site: ExternalSite, paths: SitePaths) -> SiteData:
    """The manifest's and the raw files' content digests, and the ledger's counts per status."""
    raw = Path(site.raw_dir)
    digest, n_bytes, names = hashlib.sha256(), 0, walk(raw)
    for name in names:
        full = raw / name
        why = not_regular(str(raw), str(full))
        content = f"not opened: {why}" if why else sha256_file(full)
        n_bytes += 0 if why else full.stat().st_size
        digest.update(f"{name}\0{content}\n".encode("utf-8", "surrogateescape"))
    ledger = Counter(row["status"] for row in read_rows(paths.ledger))
    return SiteData(manifest_sha256=sha256_file(Path(site.manifest)), raw_files=len(names), raw_bytes=n_bytes,
                    raw_sha256=digest.hexdigest(), ledger=dict(sorted(ledger.items())))

