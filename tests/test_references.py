"""Every module, function and file that the configs, docs, report captions and docstrings name
exists: a rename that leaves a stale reference behind fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEXTS = sorted(
    [
        *REPO.glob("config/*.yaml"),
        *REPO.glob("docs/*.md"),
        *REPO.glob("report/*.rst"),
        *REPO.glob("src/equihand/**/*.py"),
        *REPO.glob("bench/*.py"),
        REPO / "README.md",
        REPO / "bench/README.md",
        REPO / "src/equihand/schema.yaml",
    ]
)
# a quoted name is a value (the synthetic dataset's "generator" tag), not a reference
DOTTED = re.compile(r"(?<![\w/.\"'])equihand(?:\.[A-Za-z_]\w*)+")
FOLDERS = "src|bench|tests|config|rules|docs|tools|report|slurm|envs"
PATH = re.compile(rf"(?<![\w/.])((?:{FOLDERS})/[\w/.-]*\w\.(?:py|yaml|smk|md|rst|sh|txt))")


def resolves(dotted: str) -> bool:
    """Whether `dotted` is a module, or a module and attributes of it."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def stale(text: str) -> list[str]:
    names = [m for m in DOTTED.findall(text) if not resolves(m)]
    return sorted({*names, *(p for p in PATH.findall(text) if not (REPO / p).exists())})


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_module_and_file_exists(path):
    assert stale(path.read_text()) == [], path.relative_to(REPO)


def test_a_stale_reference_is_found():
    text = "see equihand.augment.swap_backgrounds and bench/budget_old.py, not equihand.metrics"
    assert stale(text) == ["bench/budget_old.py", "equihand.augment.swap_backgrounds"]
    assert stale("equihand.methods.augment.swap_backgrounds in config/default.yaml") == []


def test_figure_captions_have_one_source():
    """The report's caption files name the vocabulary's caption (the rule passes FIGURES as a
    param); none repeats its text."""
    from equihand.vocabulary import FIGURES

    for name, caption in FIGURES.items():
        text = (REPO / "report" / f"{name}.rst").read_text()
        assert f'{{{{ snakemake.params.captions["{name}"] }}}}' in text, name
        assert caption not in text, name
    assert "captions=vocabulary.FIGURES" in (REPO / "rules/analysis.smk").read_text()
