"""The promises of a fresh clone: two README commands, pins that agree, the top-level layout."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(lines):
    return dict(
        re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$", line.strip()).groups()
        for line in lines
        if re.match(r"^[A-Za-z0-9_.\-\[\]]+==", line.strip())
    )


def test_readme_starts_with_the_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```")]
    assert [line.split("#")[0].strip() for line in block] == ["make study", "make test"]


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_conda_env_pins_the_same_versions_as_requirements():
    reqs = _pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs" / "equihand.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip) == reqs
    assert "python=3.11" in env["dependencies"]


def test_required_pins():
    reqs = _pins((REPO / "requirements.txt").read_text().splitlines())
    assert reqs["torch"] == "2.14.1"
    assert reqs["torchvision"] == "0.29.1"
    assert reqs["snakemake"] == "9.27.1"
    assert reqs["snakemake-executor-plugin-slurm"] == "2.8.0"
    lock = {
        re.sub(r"[-_.]+", "-", k).lower(): v
        for k, v in _pins((REPO / "requirements.lock").read_text().splitlines()).items()
    }
    for name, version in reqs.items():
        assert lock[re.sub(r"[-_.]+", "-", name).lower()] == version, name


def test_top_level_layout():
    for path in (
        "Snakefile",
        "rules",
        "src/equihand",
        "config",
        "results",
        "dvc.yaml",
        "envs",
        "tests",
        ".ci/run",
        "Makefile",
    ):
        assert (REPO / path).exists(), path
