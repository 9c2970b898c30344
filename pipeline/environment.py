"""Stop a stage at once when the interpreter running it lacks the project's packages.

``dvc repro`` runs each stage's ``python -m ...`` through ``PATH``. A user who forgot to
activate ``.venv`` gets the system ``python``, and without this check ingest blamed every
file (``quarantined: ModuleNotFoundError: No module named 'pydicom'``) and the run failed
two stages later. A missing package is not a file's fault: each stage module calls
:func:`require` before its other imports, and the stage ends with one line naming the
interpreter, what is missing and the fix, with exit status 2.

Presence is tested with ``importlib.util.find_spec`` (nothing is imported) and versions
with ``importlib.metadata`` (the installed metadata, not the module), so the check costs
milliseconds. This module imports the standard library only and must stay parseable by
an older ``python3``: it is exactly the interpreter it exists to catch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

MIN_PYTHON = (3, 10)
FIX = "activate the project's environment (source .venv/bin/activate) or create it (make setup), then rerun"

# Import name -> distribution name (pyproject.toml), for the message; the import name is
# what is tested. Each stage lists the third-party packages its own modules load
# (tests/stages/test_environment.py checks the lists against what a stage imports).
_DISTRIBUTIONS = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "pytorch_lightning": "pytorch-lightning",
    "libjpeg": "pylibjpeg-libjpeg",
    "openjpeg": "pylibjpeg-openjpeg",
    "rle": "pylibjpeg-rle",
    "PIL": "pillow",
}
# The pylibjpeg plugins decode compressed transfer syntaxes; without them every JPEG or
# RLE file of a cohort would be quarantined for a reason that is not the file's.
_DICOM = ("pydicom", "pylibjpeg", "libjpeg", "openjpeg", "rle")
STAGE_PACKAGES: dict[str, tuple[str, ...]] = {
    "demo": ("yaml", "numpy", "scipy", "nibabel", "pydicom"),
    # isal: the threaded gzip of ingest.volume_format nii.gz (a declared dependency; the
    # gzip module stands in when it is missing, at a fifth of the speed)
    # PIL: PNG, JPEG and TIFF inputs (pipeline/io/raster.py)
    "ingest": ("yaml", "numpy", "nibabel", "isal", "PIL", *_DICOM),
    "split": ("yaml", "numpy", "nibabel"),
    # MONAI reads the NIfTI volumes through nibabel, which no pipeline module imports.
    "preprocess": ("yaml", "numpy", "nibabel", "torch", "monai"),
    "train": ("yaml", "numpy", "sklearn", "torch", "monai", "pytorch_lightning", "dvclive"),
    "train_fold": ("yaml", "numpy", "sklearn", "torch", "monai", "pytorch_lightning", "dvclive"),
    "crossval": ("yaml", "numpy", "scipy", "sklearn", "matplotlib"),
    "evaluate": ("yaml", "numpy", "scipy", "sklearn", "matplotlib"),
    # Ingests the external cohorts as ingest does, scores them as predict does, evaluates
    # them as evaluate does: the three lists together (torch only when a site is declared).
    "external": ("yaml", "numpy", "scipy", "sklearn", "matplotlib", "nibabel", "isal", "PIL", *_DICOM, "torch", "monai"),
    # Reads the test series as predict does (ingest's code, hence its readers) and maps them.
    "localise": ("yaml", "numpy", "scipy", "sklearn", "matplotlib", "nibabel", "isal", "PIL", *_DICOM, "torch", "monai"),
    # The same reading and maps, and evaluate's operating point (sklearn, scipy: its recalibration).
    "explain": ("yaml", "numpy", "scipy", "sklearn", "matplotlib", "nibabel", "isal", "PIL", *_DICOM, "torch", "monai"),
}
# Commands a user runs on a trained model, outside the DVC graph: checked the same way.
COMMAND_PACKAGES: dict[str, tuple[str, ...]] = {
    # Reads new studies as ingest does and scores them as load_classifier does (matplotlib:
    # the 2D saliency overlays).
    "predict": ("yaml", "numpy", "matplotlib", "nibabel", "isal", "PIL", *_DICOM, "torch", "monai"),
    # Loads the model as predict does (inference imports the readers predict uses).
    "export": ("yaml", "numpy", "matplotlib", "nibabel", "isal", "PIL", *_DICOM, "torch", "monai"),
}
#: Packages a command imports only for one option, and checks itself when that option is
#: used: the extra [export] (onnx, onnxruntime) for --format onnx.
OPTIONAL_PACKAGES: dict[str, tuple[str, ...]] = {"export": ("onnx", "onnxruntime")}
# Stages whose results depend on the torch build: checkpoints, numerics and the resume
# fingerprint are only comparable within one torch release.
PINNED_TORCH_STAGES = ("train", "train_fold")
_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_PROJECT = "medimg-pipeline"


def missing_packages(names: tuple[str, ...]) -> list[str]:
    """The import names among ``names`` that this interpreter cannot find."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install: a package without a spec
            found = False
        if not found:
            missing.append(name)
    return missing


def pinned_torch() -> str | None:
    """The torch version ``pyproject.toml`` pins (``torch==X``), or ``None`` when it pins none.

    The checkout's ``pyproject.toml`` is read first (what ``dvc repro`` runs with); an
    installed copy of the package falls back to its recorded requirements.
    """
    if _PYPROJECT.is_file():
        requirements = re.findall(r'"([^"]+)"', _PYPROJECT.read_text(encoding="utf-8"))
    else:
        try:
            requirements = importlib.metadata.requires(_PROJECT) or []
        except importlib.metadata.PackageNotFoundError:
            return None
    for requirement in requirements:
        match = re.fullmatch(r"\s*torch\s*==\s*([^\s;,]+)\s*(;.*)?", requirement)
        if match:
            return match.group(1)
    return None


def torch_problem(installed: str | None, pinned: str | None) -> str | None:
    """Why ``installed`` torch does not satisfy the pin, or ``None`` when it does.

    The local build label is ignored: ``2.13.0+cu128`` (a CUDA build) and ``2.13.0+cpu``
    are the pinned release ``2.13.0``; ``2.12.1`` or ``2.13.0rc1`` are not.
    """
    if pinned is None or installed is None:
        return None
    if installed.split("+", 1)[0] == pinned.split("+", 1)[0]:
        return None
    return (
        f"torch {installed} is installed but pyproject.toml pins torch=={pinned} (a CUDA build of that "
        f"release, e.g. {pinned}+cu128, also passes)"
    )


def problems(stage: str) -> list[str]:
    """Everything wrong with this interpreter for ``stage``, as phrases; empty when fine."""
    found = []
    if sys.version_info[:2] < MIN_PYTHON:
        found.append(f"Python {'.'.join(map(str, sys.version_info[:3]))} is older than the "
                     f"{'.'.join(map(str, MIN_PYTHON))} the project requires")
    missing = missing_packages({**STAGE_PACKAGES, **COMMAND_PACKAGES}[stage])
    if missing:
        names = ", ".join(_DISTRIBUTIONS.get(name, name) for name in missing)
        found.append(f"it lacks the package{'s' if len(missing) > 1 else ''} {names}")
    elif stage in PINNED_TORCH_STAGES:
        try:
            installed = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            installed = None
        problem = torch_problem(installed, pinned_torch())
        if problem:
            found.append(problem)
    return found


def require(stage: str) -> None:
    """Exit with status 2 and one line on stderr unless this interpreter can run ``stage``.

    Called by each stage module before its other imports, so that nothing is read or
    written, and no traceback is shown, when the environment is wrong.
    """
    found = problems(stage)
    if found:
        print(
            f"{stage} failed: the interpreter {sys.executable!r} cannot run this "
            f"{'command' if stage in COMMAND_PACKAGES else 'stage'}: {'; '.join(found)}. "
            f"Fix: {FIX}.",
            file=sys.stderr,
        )
        sys.exit(2)
