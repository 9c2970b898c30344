"""The contract between stages: each artifact's file names, columns and typed records, once.

A stage receives its paths from ``dvc.yaml`` (its ``cmd``) and hands them down as one of
the records below; no library function chooses a file name. Readers and writers of a
JSON artifact share one record, so a key cannot be written under one name and read
under another. This module imports neither torch nor anything of the pipeline but the
error base: every stage, and any tool reading the outputs, may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

# --------------------------------------------------------------------------------------
# evaluate: output paths
# --------------------------------------------------------------------------------------

#: Curves written per split as DVC plot files, ``<folder>/<split>.json`` (one file per
#: curve and split: DVC's templates draw one line per file and revision).
PLOT_KINDS: tuple[str, ...] = ("roc", "pr", "calibration", "confusion")
#: The split whose ROC is the headline curve, written to :attr:`EvaluateOutputs.roc`.
HEADLINE_SPLIT = "test"


def _out(help_text: str) -> object:
    return field(metadata={"help": help_text})


@dataclass(frozen=True)
class EvaluateOutputs:
    """Every path the evaluate stage writes, each one given on its command line in ``dvc.yaml``.

    The field names are the stage's options (``roc_png`` is ``--roc-png``), and each value
    is one ``outs``/``metrics``/``plots`` entry of the stage in ``dvc.yaml``.
    """

    metrics: Path = _out("metrics.json: every number of the evaluation, per split")
    roc: Path = _out(f"DVC plot JSON of the {HEADLINE_SPLIT} split's ROC curve (the headline curve)")
    roc_plots: Path = _out(f"folder of the other splits' ROC curves, <split>.json (the {HEADLINE_SPLIT} one is --roc)")
    pr_plots: Path = _out("folder of precision-recall curves, <split>.json")
    calibration_plots: Path = _out("folder of reliability curves after recalibration, <split>.json")
    confusion_plots: Path = _out("folder of (actual, predicted) rows per patient, <split>.json")
    roc_png: Path = _out("ROC figure (PNG)")
    pr_png: Path = _out("precision-recall figure (PNG)")
    calibration_png: Path = _out("reliability diagram with the score histogram (PNG)")
    report: Path = _out("report.html: the self-contained page for clinicians and reviewers")
    methods: Path = _out("methods.md: the methods paragraph and TRIPOD+AI checklist of this run")

    def __post_init__(self) -> None:
        for name, value in self.paths().items():
            object.__setattr__(self, name, Path(value))

    def paths(self) -> dict[str, Path]:
        """Field name -> path, in declaration order: the stage's declared outputs."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def plot_file(self, kind: str, split: str) -> Path:
        """The DVC plot file of one curve (one of :data:`PLOT_KINDS`) and one split."""
        if kind == "roc" and split == HEADLINE_SPLIT:
            return self.roc
        return getattr(self, f"{kind}_plots") / f"{split}.json"
