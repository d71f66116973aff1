"""The one paired-by-seed comparison the report and the part-aware claims share."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from equihand.analysis.stats import bootstrap_ci, bootstrap_settings, paired

BOOT = {"n_boot": 2000, "confidence": 0.95, "seed": 0}


def test_paired_uses_the_common_seeds_and_rounds_ties_to_zero():
    x = pd.Series([1.3, 2.0, 5.0], index=[2, 0, 7])
    y = pd.Series([1.0, 1.0, 1.1], index=[0, 1, 2])
    p = paired(x, y, **BOOT)
    assert p.seeds == [0, 2]
    assert list(p.x) == [2.0, 1.3] and list(p.y) == [1.0, 1.1]
    assert list(p.diff) == pytest.approx([1.0, 0.2])
    assert (p.ci_low, p.ci_high) == bootstrap_ci(p.diff, **BOOT)
    assert p.has_ci and p.beyond_noise
    tie = paired(pd.Series([0.1 + 0.2]), pd.Series([0.3]), **BOOT)
    assert tie.diff[0] == 0.0


def test_one_seed_has_no_ci_and_is_never_beyond_noise():
    p = paired(pd.Series([2.0]), pd.Series([1.0]), **BOOT)
    assert not p.has_ci and not p.beyond_noise
    assert math.isnan(p.ci_low) and math.isnan(p.ci_high)
    assert paired(pd.Series([2.0], index=[0]), pd.Series([1.0], index=[1]), **BOOT).seeds == []


def test_bootstrap_settings_read_the_report_section():
    report = {"bootstrap_samples": 500, "confidence": 0.9, "seed": 3, "qualitative_seed": 0}
    assert bootstrap_settings(report) == {"n_boot": 500, "confidence": 0.9, "seed": 3}
