"""The ablation table: means and spreads over seeds, improvement over `none`, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from equihand.analysis.aggregate import aggregate
from equihand.errors import UserError


def _write(folder: Path, objective: str, seed: int, pa_epe: float, fraction=0.1) -> Path:
    path = folder / f"{objective}_{fraction}_{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    metrics = {
        "objective": objective,
        "backbone": "resnet18",
        "label_fraction": fraction,
        "seed": seed,
        "epe_cm": 10.0 + seed,
        "pa_epe_cm": pa_epe,
        "auc": 0.5,
        "pa_auc": 0.8,
    }
    path.write_text(json.dumps(metrics))
    return path


def test_means_spreads_and_improvement(tmp_path):
    paths = [
        _write(tmp_path, "none", 0, 2.0),
        _write(tmp_path, "none", 1, 4.0),
        _write(tmp_path, "equivariant", 0, 1.5),
        _write(tmp_path, "equivariant", 1, 2.5),
        _write(tmp_path, "invariant", 0, 3.3),
    ]
    table = aggregate(paths, tmp_path / "tables")
    assert list(table["objective"]) == ["none", "invariant", "equivariant"]
    row = table.set_index("objective")
    assert row.loc["none", "pa_epe_cm_mean"] == pytest.approx(3.0)
    assert row.loc["none", "pa_epe_cm_std"] == pytest.approx(2**0.5)  # sample std of 2, 4
    assert row.loc["equivariant", "pa_epe_improvement_pct"] == pytest.approx(100 * (3 - 2) / 3)
    assert row.loc["invariant", "pa_epe_improvement_pct"] == pytest.approx(-10.0)
    assert row.loc["invariant", "pa_epe_cm_std"] == 0.0 and row.loc["invariant", "n_seeds"] == 1
    assert row.loc["none", "epe_cm_mean"] == pytest.approx(10.5)
    saved = pd.read_csv(tmp_path / "tables" / "ablation.csv")
    assert len(saved) == 3
    md = (tmp_path / "tables" / "ablation.md").read_text()
    assert "| equivariant | resnet18 | 0.1 | 10.50 ± 0.71 | 2.00 ± 0.71" in md
    assert "+33.3%" in md
    assert r"\begin{tabular}" in (tmp_path / "tables" / "ablation.tex").read_text()


def test_duplicate_runs_and_bad_files_are_errors(tmp_path):
    a = _write(tmp_path / "a", "none", 0, 2.0)
    b = _write(tmp_path / "b", "none", 0, 2.0)
    with pytest.raises(UserError, match="appears twice"):
        aggregate([a, b], tmp_path / "t")
    bad = tmp_path / "bad.json"
    bad.write_text('{"objective": "none"}')
    with pytest.raises(UserError, match="missing keys"):
        aggregate([bad], tmp_path / "t")
