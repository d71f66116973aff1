"""The pretraining-budget curve's differences (bench/budget.py `pretrain_differences`): the
report's comparison code per budget, paired by seed, Holm over every budget together."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from equihand.config import load_config

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def budget():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("budget")
    finally:
        sys.path.remove(str(BENCH))


def _rows(effects: dict, seeds: int, noise: float = 0.01) -> list[dict]:
    """Curve rows: `none` at 2.4 cm plus seed noise; objective o at budget e is `none` minus
    effects[(o, e)] plus its own noise; a supervised reference row and a probe-only case too."""
    rng = np.random.default_rng(0)
    base = dict(case="b", data="default", backbone="resnet18", label_fraction=0.1)
    rows = []
    for seed in range(seeds):
        none = 2.4 + rng.normal(0, 0.05)
        rows.append({**base, "objective": "none", "seed": seed, "pretrain_epochs": 0,
                     "pretrain_views": 0, "best_val_pa_epe_cm": none})  # fmt: skip
        rows.append({**rows[-1], "objective": "supervised (none, finetuned)"})
        for (objective, epochs), gain in effects.items():
            value = none - gain + rng.normal(0, noise)
            rows.append({**base, "objective": objective, "seed": seed, "pretrain_epochs": epochs,
                         "pretrain_views": epochs * 100, "best_val_pa_epe_cm": value})  # fmt: skip
        rows.append({**base, "case": "screen", "objective": "invariant", "seed": seed,
                     "pretrain_epochs": 6, "pretrain_views": 600,
                     "best_val_pa_epe_cm": math.nan})  # fmt: skip
    return rows


def test_each_budget_is_compared_and_the_family_spans_every_budget(budget):
    report = load_config(None)["report"]
    effects = {("invariant", 2): 0.0, ("equivariant", 2): 0.0,
               ("invariant", 6): 0.0, ("equivariant", 6): 0.3}  # fmt: skip
    diffs = budget.pretrain_differences(_rows(effects, seeds=6), report)
    members = list(zip(diffs["pretrain_epochs"], diffs["a"], diffs["b"], strict=True))
    assert members == [
        (2, "invariant", "none"), (2, "equivariant", "none"), (2, "equivariant", "invariant"),
        (6, "invariant", "none"), (6, "equivariant", "none"), (6, "equivariant", "invariant"),
    ]  # fmt: skip
    assert set(diffs["case"]) == {"b"}  # the probe-only case has no finetuning to compare
    assert (diffs["n_seeds"] == 6).all() and (diffs["family_size"] == 6).all()
    assert list(diffs["pretrain_views"]) == [200] * 3 + [600] * 3
    # Holm over all six members at once, not per budget
    holm = multipletests(diffs["p_t"], alpha=report["alpha"], method="holm")[1]
    np.testing.assert_allclose(diffs["p_holm"], holm)
    verdicts = dict(zip(members, diffs["verdict"], strict=True))
    assert verdicts[(6, "equivariant", "none")] == "equivariant better"
    assert verdicts[(6, "equivariant", "invariant")] == "equivariant better"
    assert verdicts[(2, "invariant", "none")] == "cannot tell"
    assert (diffs["mde_cm"] > 0).all()
    text = budget.differences_table(diffs)
    assert "equivariant vs none (10%)" in text and "| 6 | 600 |" in text


def test_one_seed_gives_no_test(budget):
    report = load_config(None)["report"]
    diffs = budget.pretrain_differences(_rows({("equivariant", 1): 0.1}, seeds=1), report)
    assert list(diffs["verdict"]) == ["no test (one seed)"]
