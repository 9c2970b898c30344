"""Fit the classifier on the cache, keep the best epoch by validation AUC, and predict.

One job per module:

- :mod:`~pipeline.training.run_folder`: the model folder's fingerprint; resume or start over;
- :mod:`~pipeline.training.fit`: the system, the Trainer and the fit (best and last checkpoints);
- :mod:`~pipeline.training.predictions`: val and test scores from the best checkpoint,
  through ``Trainer.predict``;
- :mod:`~pipeline.training.writers`: ``predictions.csv`` and ``train_summary.json``;
- :mod:`~pipeline.training.run`: :func:`train_and_predict`, the four in order.

Outputs (paths chosen by the stage, wired in dvc.yaml):

- ``MODEL_DIR/best.ckpt`` and ``MODEL_DIR/last.ckpt`` (Lightning checkpoints),
  ``MODEL_DIR/fingerprint.json`` (what the checkpoints were trained on, for resume);
- ``predictions.csv``: ``patient_id``, ``series_key``, ``split``, ``label``, ``score``
  and the subgroup columns, for val and test;
- ``train_summary.json``: weight provenance, best epoch, best validation AUC, the
  configuration, and whether the run resumed;
- DVCLive metrics and plots under the DVCLive folder.
"""

from __future__ import annotations

from pipeline.training.predictions import predict_rows
from pipeline.training.run import train_and_predict
from pipeline.training.writers import TrainSummary

__all__ = ["TrainSummary", "predict_rows", "train_and_predict"]
