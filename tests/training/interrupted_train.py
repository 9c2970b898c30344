"""Child process for tests/training/test_resume.py: train the tiny run and SIGKILL itself.

``python -m tests.training.interrupted_train ROOT KILL_AT_EPOCH`` trains the run of
``tests.training.tiny_run.tiny_configs`` on ``ROOT/cache`` and kills its own process, with no
chance to clean up (what an out-of-memory kill or a preempted job gets), as epoch
``KILL_AT_EPOCH`` starts: after the previous epoch's checkpoints and logs are written
and before any step of the next. Killing from inside the run makes the moment exact on
any CPU; a parent polling for a file would race the run on a fast machine and wait
behind it on a slow one.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl

from pipeline.training import train_and_predict
from tests.training.tiny_run import run_paths, tiny_configs

MAX_EPOCHS = 5


class KillAtEpochStart(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def main(root: Path, kill_at: int) -> None:
    model, train = tiny_configs(max_epochs=MAX_EPOCHS)
    train_and_predict(root / "cache", **run_paths(root), model=model, train=train,
                      extra_callbacks=[KillAtEpochStart(kill_at)])
    raise SystemExit(f"the run finished without reaching epoch {kill_at}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
