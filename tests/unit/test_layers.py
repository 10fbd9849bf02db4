"""Layering contract (DESIGN.md): gui -> jobs -> ml -> core, imports go downward only.

An AST check over every module: core/ imports no torch/timm/torchvision/cleanlab/onnx*/albumentations/
PySide6 and nothing from ml/jobs/gui; ml/ imports no PySide6 and nothing from jobs/gui; jobs/ imports
no PySide6 and nothing from gui; only gui/ (and app.py) import PySide6.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "labeltool"
ML_LIBS = {"torch", "torchvision", "timm", "cleanlab", "onnx", "onnxruntime", "albumentations", "safetensors"}
FORBIDDEN = {
    "core": ML_LIBS | {"PySide6", "labeltool.ml", "labeltool.jobs", "labeltool.gui", "labeltool.cli"},
    "ml": {"PySide6", "labeltool.jobs", "labeltool.gui", "labeltool.cli"},
    "jobs": {"PySide6", "labeltool.gui", "labeltool.cli"},
}


def imported_modules(path: Path, pkg: Path = PKG) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(pkg.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
    return names


def violations(layer: str, pkg: Path = PKG) -> list[str]:
    bad = []
    for path in sorted((pkg / layer).rglob("*.py")):
        for mod in imported_modules(path, pkg):
            for banned in FORBIDDEN[layer]:
                if mod == banned or mod.startswith(banned + "."):
                    bad.append(f"{path.relative_to(pkg.parent)} imports {mod}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_go_downward_only(layer: str) -> None:
    assert violations(layer) == []


def test_no_pyside_outside_gui() -> None:
    offenders = [
        str(p.relative_to(PKG.parent))
        for p in PKG.rglob("*.py")
        if "gui" not in p.relative_to(PKG).parts
        and any(m == "PySide6" or m.startswith("PySide6.") for m in imported_modules(p))
    ]
    assert offenders == []


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself works: a relative import from core into ml is detected."""
    fake = tmp_path / "labeltool" / "core" / "sub" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ...ml import something\nimport torch\nfrom . import fine\n")
    found = violations("core", tmp_path / "labeltool")
    assert sorted(v.split(" imports ")[1] for v in found) == ["labeltool.ml", "torch"]


def test_job_targets_are_named_once_in_the_job_kind_registry() -> None:
    import inspect
    import re

    from labeltool.jobs.kinds import JOB_KINDS

    for kind in JOB_KINDS:  # each resolves to a job (a generator function) in labeltool.jobs
        assert kind.target.startswith("labeltool.jobs."), kind
        assert inspect.isgeneratorfunction(kind.function()), kind
    target = re.compile(r"^labeltool\.jobs\.\w+:\w+$")
    spelled = []
    for path in PKG.rglob("*.py"):
        if path.name == "kinds.py" and path.parent.name == "jobs":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and target.match(node.value):
                spelled.append(f"{path.relative_to(PKG)}: {node.value}")
    assert spelled == [], "job targets belong in labeltool/jobs/kinds.py"


def test_sql_stays_in_the_store() -> None:
    """Only core/ talks to the database: no .execute(, .connection or SQL text in ml/, jobs/, gui/, cli/."""
    import re

    sql = re.compile(r"^\s*(SELECT\s.*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|"
                     r"CREATE\s+(TABLE|INDEX|TRIGGER)\b|PRAGMA\s)", re.DOTALL)
    found = []
    for path in PKG.rglob("*.py"):
        if path.relative_to(PKG).parts[0] == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "connection"):
                found.append(f"{path.relative_to(PKG)}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and sql.match(node.value):
                found.append(f"{path.relative_to(PKG)}:{node.lineno} SQL {node.value[:40]!r}")
    assert found == [], "SQL belongs in labeltool/core (core/queries.py for read-only queries)"
