"""A model file scoring a series again must give the score its predictions file holds for it.

The stages that re-read test cases with the model (explain's gallery, localise's check)
describe the predictions evaluate reports on; a model file from another run (a stale
output, a retrained model beside an old predictions.csv) would describe another model
under this one's numbers. Comparing each re-scored series with its recorded score is
what ties the two together.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.calibration import probability_logit
from pipeline.errors import PipelineInputError

#: A re-scored series may differ from its predictions.csv score by this much on the logit
#: scale (float round-off between the train stage's batches and these); more means another
#: model. The logit, not the probability: an overconfident model's scores of 1e-50 differ
#: by less than any absolute tolerance whatever model made them.
LOGIT_TOLERANCE = 1e-3


class StaleScoresError(PipelineInputError):
    """The model file does not give a series the score the predictions file holds: they come from different runs."""


def check_rescored(score: float, recorded: float, series_key: str, model: str | Path, predictions: str | Path) -> None:
    """Raise :class:`StaleScoresError` unless ``score`` is ``recorded`` within :data:`LOGIT_TOLERANCE` (logit scale)."""
    if abs(float(probability_logit(score) - probability_logit(recorded))) > LOGIT_TOLERANCE:
        raise StaleScoresError(
            f"model {str(model)!r} must give series {series_key!r} the score {str(predictions)!r} holds for it "
            f"({recorded:.6g}); it gives {score:.6g}. The model file and the predictions come from different runs "
            "(a stale output): run dvc repro."
        )
