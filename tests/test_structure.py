"""The package's shape: steps (the CLI's step table) import library modules, never each other,
and no module grows past ~350 lines."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from equihand.cli import STEPS, step_module

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "equihand"
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
STEP_MODULES = {step_module(step) for step in STEPS}


def imported_modules(path: Path) -> set[str]:
    """The equihand modules a file imports (`from equihand.x import y` counts y when y is a
    module), at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES}


def test_every_step_of_the_cli_is_a_module_of_the_package():
    assert STEP_MODULES <= set(MODULES)
    for module in STEP_MODULES:
        assert importlib.util.find_spec(module) is not None, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_step(module):
    """Steps share code only through library modules (only the CLI knows the steps, by name)."""
    steps = imported_modules(MODULES[module]) & STEP_MODULES - {module}
    assert not steps, f"{module} imports the step module(s) {sorted(steps)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_a_reader_holds(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it (at most {MAX_LINES})"
