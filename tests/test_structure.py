"""The package's shape: steps (the CLI's step table) import library modules, never each other,
and no module grows past ~350 lines."""

from __future__ import annotations

import ast
import graphlib
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


# Data flows one way: a module imports only modules of its own layer or below. The top-level
# modules (config, errors, io, outputs, metrics, vocabulary, ...) are the floor every layer uses.
LAYERS = ("data", "methods", "train", "evaluate", "probe", "analysis")


def layer(module: str) -> int:
    """0 for equihand's top-level modules, 1 + the index in LAYERS for a subpackage's."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) + 1 if len(parts) > 1 and parts[1] in LAYERS else 0


def upward(module: str, imported: set[str]) -> list[str]:
    return sorted(name for name in imported if layer(name) > layer(module))


def test_layer_is_the_subpackage_and_top_level_modules_are_the_floor():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS), "every subpackage has its place in LAYERS"
    assert layer("equihand.config") == layer("equihand.metrics") == layer("equihand") == 0
    assert layer("equihand.train") == layer("equihand.train.finetune")
    assert layer("equihand.train.finetune") < layer("equihand.evaluate.evaluate")
    # an upward import is found
    assert upward("equihand.train.finetune", {"equihand.evaluate.score", "equihand.io"}) == [
        "equihand.evaluate.score"
    ]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    above = upward(module, imported_modules(MODULES[module]))
    assert not above, f"{module} (layer {layer(module)}) imports {above} from a layer above it"


def test_no_two_modules_import_each_other_even_for_types():
    graph = {m: imported_modules(p) - {m} for m, p in MODULES.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")
