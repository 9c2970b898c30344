"""``pipeline.load_classifier`` is exported lazily: ``import pipeline`` stays free of torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_pipeline_loads_no_torch_until_load_classifier_is_used():
    script = (
        "import sys, pipeline\n"
        "assert 'torch' not in sys.modules, 'import pipeline loaded torch'\n"
        "f = pipeline.load_classifier\n"
        "assert 'torch' in sys.modules and f.__module__ == 'pipeline.inference'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_unknown_attribute_is_still_an_attribute_error():
    import pipeline

    with pytest.raises(AttributeError, match=r"module 'pipeline' has no attribute 'load_model'"):
        pipeline.load_model  # noqa: B018 - the access is the test
