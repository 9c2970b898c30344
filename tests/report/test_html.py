"""The report page: every section in order, the figures it was given, data values escaped."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from pipeline.config import EvaluateConfig
from pipeline.report.evaluation import evaluate_table
from pipeline.report.html import render_html
from pipeline.report.predictions import PatientTable
from pipeline.report.provenance import collect_provenance
from tests.stages.test_evaluate import write_train_summary

HOSTILE_LEVEL = "<script>alert('site')</script>"
HOSTILE_COLUMN = 'scanner"><img src=x onerror=alert(1)>'
SECTIONS = [
    "Main result (test set)", "Cohort", "Figures", "Metrics with 95% confidence intervals", "Subgroups",
    "Calibration before and after recalibration", "Readers compared with the model", "Comparison with another model",
    "Methods", "Provenance",
]


def _config(**overrides) -> EvaluateConfig:
    settings = dict(seed=0, aggregate="max", threshold="youden", target_sensitivity=0.9, ci_method="delong",
                    n_boot=200, calibration_bins=5, subgroups=(), calibration="platt", reader_columns=())
    return EvaluateConfig(**{**settings, **overrides})


def _table() -> PatientTable:
    rng = np.random.default_rng(7)
    n = 90
    label = (np.arange(n) % 2).astype(np.int8)
    score = np.clip(0.45 + 0.3 * (label - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    rating = np.clip(np.round(3 + 2 * (label - 0.5) + rng.normal(0, 1, n)), 1, 5).astype(int).astype(str)
    return PatientTable(
        patient_id=np.array([f"secret-id-{i:03d}" for i in range(n)], dtype=object),
        split=np.array(["val"] * 40 + ["test"] * 50, dtype=object), label=label, score=score,
        n_series=np.ones(n, int),
        attributes={HOSTILE_COLUMN: np.array([HOSTILE_LEVEL, "plain"] * 45, dtype=object),
                    "reader_1": rating.astype(object)},
        aggregate="max", n_rows=n,
    )


@pytest.fixture
def page(tmp_path) -> tuple[str, dict[str, bytes]]:
    table = _table()
    other = PatientTable(**{**table.__dict__, "score": np.random.default_rng(1).random(table.score.size)})
    evaluation = evaluate_table(table, _config(reader_columns=("reader_1",)), other=other)
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("hashed only\n")
    provenance = collect_provenance(
        predictions, params={"ingest": {"pseudonym_key": "k-123"}, "evaluate": {"note": "<b>bold</b>"}},
        params_file="params.yaml", train_summary=write_train_summary(tmp_path / "s.json", warning="check <weights>"),
        compare=predictions,
    )
    figures = {"roc": b"ROC-PNG", "calibration": b"CAL-PNG", "pr": b"PR-PNG"}
    return render_html(evaluation, provenance, figures), figures


def test_every_section_is_there_in_reading_order(page):
    html, _ = page
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings == SECTIONS
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</main></body></html>\n")


def test_the_figures_given_are_embedded_in_order_with_their_captions(page):
    html, figures = page
    embedded = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert [name for name, _ in embedded] == ["roc", "calibration", "pr"]
    assert [base64.b64decode(data) for _, data in embedded] == [figures[n] for n in ("roc", "calibration", "pr")]
    assert "Reliability diagram" in html and "dotted lines show the prevalence" in html


def test_values_from_the_data_are_escaped_and_nothing_is_fetched(page):
    html, _ = page
    assert HOSTILE_LEVEL not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#x27;site&#x27;)&lt;/script&gt;" in html  # the level, shown as text
    assert "scanner&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "check &lt;weights&gt;" in html
    assert "<script" not in html and "<link" not in html and not re.search(r"(src|href)=\"https?:", html)
    assert "k-123" not in html and "secret-id" not in html  # the pseudonym key and the identifiers stay out


def test_the_main_result_states_the_numbers_of_metrics_json(tmp_path):
    evaluation = evaluate_table(_table(), _config(calibration="none"))
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("hashed only\n")
    html = render_html(evaluation, collect_provenance(predictions), {})
    t = evaluation.metrics.test
    c = t.confusion
    assert f"On <b>{t.n_patients}</b> held-out test patients ({t.n_positive} positive, {t.n_negative} negative)" in html
    assert f"AUC of <b>{t.auc:.3f}</b>" in html and f"At the threshold <b>{t.threshold:.4g}</b>" in html
    assert f"it detects {c.tp} of {c.tp + c.fn} positive patients and correctly clears {c.tn} of {c.tn + c.fp}" in html
    # Sections that were not asked for are left out, and so are figures not given.
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings == [s for s in SECTIONS if s not in ("Readers compared with the model",
                                                         "Comparison with another model")]
    assert "<img" not in html
    assert "Weight provenance unknown: the training summary was not given" in html


@pytest.mark.parametrize(("source", "banner"), [
    ("none", "trained from RANDOM INITIALISATION"),
    ("imagenet", None),
])
def test_random_initialisation_is_stated_at_the_top(tmp_path, source, banner):
    evaluation = evaluate_table(_table(), _config())
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("hashed only\n")
    summary = write_train_summary(tmp_path / "s.json", source=source)
    html = render_html(evaluation, collect_provenance(predictions, train_summary=summary), {})
    top = html[: html.index("<h2>")]
    assert (banner in top) if banner else ('<div class="banner">' not in top)
    assert f"weights: {source}." in top
