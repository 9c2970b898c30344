"""dvc.yaml and the code agree: each stage's deps cover every pipeline/ module it imports.

DVC re-runs a stage when one of its deps changes; a module the stage imports but does not
list would let a code change leave stale outputs behind. The closure is found from the
source (every ``import`` statement, those inside functions included: the stages import
their libraries after checking the environment), not by importing.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# A foreach stage (train_fold) as its template: the deps and command of every slot.
STAGES = {name: stage.get("do", stage) for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}


def _module_file(name: str) -> Path | None:
    """The file of ``pipeline.x.y`` (module or package), or None outside pipeline/."""
    if name != "pipeline" and not name.startswith("pipeline."):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


#: Package markers every stage loads and none lists: they hold no stage logic. The
#: top-level one exports load_classifier lazily (on attribute access, which no stage makes),
#: so its imports are not followed.
MARKERS = ("pipeline/__init__.py", "pipeline/stages/__init__.py")


def import_closure(module: str) -> set[Path]:
    """Every pipeline/ file that importing ``module`` can load, parents' __init__ included."""
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a submodule loads its packages first
            path = _module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                if path.relative_to(ROOT).as_posix() not in MARKERS:
                    todo.extend(_imports(path))
    return seen


def _stage_module(cmd: str) -> str:
    words = shlex.split(cmd)
    return words[words.index("-m") + 1]


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == dep or rel.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_cover_the_import_closure_of_the_stage(name):
    stage = STAGES[name]
    deps = [d for d in stage.get("deps", []) if isinstance(d, str)]
    closure = import_closure(_stage_module(stage["cmd"]))
    assert closure, f"stage {name!r} runs no pipeline module"
    missing = sorted(p.relative_to(ROOT).as_posix() for p in closure if not _covered(p, deps))
    missing = [m for m in missing if m not in MARKERS]
    assert not missing, f"dvc.yaml stage {name!r} imports {missing} but does not list them in deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_pipeline_dep_exists(name):
    for dep in STAGES[name].get("deps", []):
        if isinstance(dep, str) and dep.startswith("pipeline"):
            assert (ROOT / dep).exists(), f"dvc.yaml stage {name!r} lists {dep!r}, which does not exist"


def test_the_closure_follows_imports_inside_functions():
    """The check itself: a stage's lazy imports (after the environment check) count."""
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure("pipeline.stages.train")}
    assert {"pipeline/training/run.py", "pipeline/cli.py", "pipeline/config/__init__.py"} <= closure


def test_one_train_fold_slot_per_fold_split_folds_allows():
    from pipeline.rules import MAX_FOLDS

    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert dvc_yaml["vars"][0]["fold_slots"] == list(range(MAX_FOLDS))
    assert dvc_yaml["stages"]["train_fold"]["foreach"] == "${fold_slots}"
