from __future__ import annotations

from pathlib import Path

import pytest

from tests.io.cohorts import demo_like_cohort


@pytest.fixture
def cohort(tmp_path: Path) -> dict:
    """Demo-shaped raw folder: random names, a scout beside the axial series, mess."""
    return demo_like_cohort(tmp_path)
