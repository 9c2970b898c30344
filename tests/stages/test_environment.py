"""Each stage checks its interpreter first: a missing package ends it with one line, never a file's blame."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.environment import COMMAND_PACKAGES, OPTIONAL_PACKAGES, STAGE_PACKAGES, pinned_torch, problems, torch_problem
from tests.stages.test_evaluate import output_args

REPO = Path(__file__).resolve().parents[2]


def _stage_args(stage: str, tmp_path: Path) -> list[str]:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "scan.dcm").write_bytes(b"\0" * 132 + b"DICM")
    (tmp_path / "manifest.csv").write_text("patient_id,label,path\nP1,1,scan.dcm\n")
    out = tmp_path / "out"
    return {
        "demo": [str(out), str(tmp_path / "m.csv")],
        "ingest": [str(raw), str(tmp_path / "manifest.csv"), str(out)],
        "split": [str(tmp_path / "index.csv"), str(out)],
        "preprocess": [str(tmp_path / "index.csv"), str(tmp_path / "split.csv"), str(out)],
        "train": [str(tmp_path / "cache"), str(out), str(tmp_path / "p.csv"), str(tmp_path / "s.json"), str(tmp_path / "l")],
        "evaluate": [str(tmp_path / "predictions.csv"), *output_args(out)],
        "external": [str(tmp_path / "best.ckpt"), str(tmp_path / "predictions.csv"), str(out)],
        "localise": [str(tmp_path / "best.ckpt"), str(tmp_path / "predictions.csv"), str(tmp_path / "index.csv"),
                     str(tmp_path / "lesions.csv"), "--out", str(out)],
        "train_fold": ["0", str(tmp_path / "cache"), str(tmp_path / "split.csv"), str(out), str(tmp_path / "r")],
        "crossval": [str(tmp_path / "folds"), str(out)],
        "explain": [str(tmp_path / "best.ckpt"), str(tmp_path / "predictions.csv"), str(tmp_path / "index.csv"), str(out)],
    }[stage]


@pytest.mark.parametrize("stage", sorted(STAGE_PACKAGES))
def test_an_interpreter_without_the_packages_stops_the_stage_in_one_line(stage, tmp_path):
    # -S leaves out every site-packages folder: the project imports from the checkout,
    # its dependencies do not, as with a system python that never had them installed.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-m", f"pipeline.stages.{stage}", *_stage_args(stage, tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"{stage} failed: the interpreter {sys.executable!r} cannot run this stage: "
                                  "it lacks the packages pyyaml, numpy")
    assert done.stderr.endswith(
        "Fix: activate the project's environment (source .venv/bin/activate) or create it (make setup), then rerun.\n"
    )
    assert not (tmp_path / "out").exists()


COMMAND_ARGS = {
    "predict": lambda tmp_path: [str(tmp_path / "best.ckpt"), str(tmp_path), "--out", str(tmp_path / "out")],
    "export": lambda tmp_path: [str(tmp_path / "best.ckpt"), str(tmp_path / "out"), "--format", "onnx"],
}


@pytest.mark.parametrize("command", sorted(COMMAND_PACKAGES))
def test_a_command_in_an_interpreter_without_the_packages_is_one_line_too(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-m", f"pipeline.{command}", *COMMAND_ARGS[command](tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"{command} failed: the interpreter {sys.executable!r} cannot run this command: "
                                  "it lacks the packages pyyaml, numpy")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", sorted(COMMAND_PACKAGES))
def test_a_command_lists_every_package_its_modules_import(command):
    imported = _imports(command, module=f"pipeline.{command}")
    listed = {*COMMAND_PACKAGES[command], *OPTIONAL_PACKAGES.get(command, ())}
    assert imported and imported <= listed, sorted(imported - listed)


def test_the_project_environment_passes_every_stage():
    every = [*STAGE_PACKAGES, *COMMAND_PACKAGES]
    assert {stage: problems(stage) for stage in every} == {stage: [] for stage in every}


def _module_file(name: str) -> Path | None:
    path = REPO.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _nodes_run_on_import(tree: ast.AST):  # noqa: ANN202 - a generator of nodes
    """Every node of ``tree`` except the bodies of module-level ``__getattr__`` (PEP 562).

    ``pipeline/__init__.py`` exports ``load_classifier`` lazily through ``__getattr__``:
    what it imports is loaded only when that name is used, never by a stage.
    """
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            lazy = isinstance(child, ast.FunctionDef) and child.name == "__getattr__" and isinstance(node, ast.Module)
            if not lazy:
                todo.append(child)


def _imports(stage: str, module: str | None = None) -> set[str]:
    """Top-level names of every package the stage's pipeline modules import, read from their source.

    The closure follows imports inside functions too (ingest's workers import pydicom
    there), so it is what the stage can import, found without importing torch.
    """
    seen: set[Path] = set()
    todo = [module or f"pipeline.stages.{stage}"]
    names: set[str] = set()
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for file in filter(None, (_module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1))):
            if file in seen:
                continue
            seen.add(file)
            for node in _nodes_run_on_import(ast.parse(file.read_text())):
                if isinstance(node, ast.Import):
                    found = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    # `from pipeline.stages import demo` imports a module by a from-name
                    found = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                else:
                    continue
                for name in found:
                    if name.split(".")[0] == "pipeline":
                        todo.extend([name] if _module_file(name) else [])
                    else:
                        names.add(name.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("stage", sorted(STAGE_PACKAGES))
def test_each_stage_lists_every_package_its_modules_import(stage):
    imported = _imports(stage)
    assert imported and imported <= set(STAGE_PACKAGES[stage]), sorted(imported - set(STAGE_PACKAGES[stage]))


@pytest.mark.parametrize(
    ("installed", "problem"),
    [
        ("2.13.0", None),
        ("2.13.0+cpu", None),
        ("2.13.0+cu128", None),  # a CUDA build of the pinned release
        ("2.12.1", "torch 2.12.1 is installed but pyproject.toml pins torch==2.13.0"),
        ("2.13.0rc1", "torch 2.13.0rc1 is installed but pyproject.toml pins torch==2.13.0"),
        ("2.13.1+cu126", "torch 2.13.1\\+cu126 is installed"),
    ],
)
def test_train_needs_the_pinned_torch_release_whatever_its_build(installed, problem):
    found = torch_problem(installed, "2.13.0")
    assert found is None if problem is None else re.match(problem, found or "")


def test_the_pin_is_read_from_pyproject_and_the_installed_torch_meets_it():
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned_torch() or "")
    assert torch_problem(importlib.metadata.version("torch"), pinned_torch()) is None
