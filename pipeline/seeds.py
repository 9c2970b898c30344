"""Seeds derived from the run's seed and an epoch number, for draws that must survive a resume."""

from __future__ import annotations

import numpy as np


def epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit seed for ``epoch`` of a run seeded with ``seed``.

    Whatever draws from it (the shuffle, batch augmentation) depends on the epoch number
    alone, not on how many epochs this process ran before: a run resumed at epoch k draws
    what an uninterrupted run draws there. ``SeedSequence`` mixes the pair into
    independent streams; ``seed + epoch`` would give run seed 1 at epoch 0 the draws of
    run seed 0 at epoch 1.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])
