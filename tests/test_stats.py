"""The paired tests, Holm's correction and the power analysis every verdict rests on."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import TTestPower

from equihand.analysis.stats import (
    Paired,
    holm,
    judge,
    minimum_detectable_effect,
    paired,
    permutation_min_seeds,
    permutation_p,
    power,
    seeds_needed,
)

REP = {"alpha": 0.05, "power": 0.8, "max_seeds": 200}


def test_paired_uses_the_common_seeds_and_rounds_ties_to_zero():
    x = pd.Series([1.3, 2.0, 5.0], index=[2, 0, 7])
    y = pd.Series([1.0, 1.0, 1.1], index=[0, 1, 2])
    p = paired(x, y, confidence=0.95)
    assert p.seeds == [0, 2] and p.n == 2
    assert list(p.x) == [2.0, 1.3] and list(p.y) == [1.0, 1.1]
    assert list(p.diff) == pytest.approx([1.0, 0.2])
    assert p.has_test
    tie = paired(pd.Series([0.1 + 0.2]), pd.Series([0.3]), confidence=0.95)
    assert tie.diff[0] == 0.0


def test_t_test_and_interval_are_scipys_with_n_minus_1_degrees_of_freedom():
    d = np.array([0.30, 0.35, 0.82, 0.10])
    p = paired(pd.Series(d + 1.0), pd.Series(np.ones(4)), confidence=0.9)
    ref = scipy_stats.ttest_rel(d + 1.0, np.ones(4))
    assert p.p_t == pytest.approx(ref.pvalue)
    half = scipy_stats.t.ppf(0.95, df=3) * d.std(ddof=1) / 2  # sqrt(4) = 2
    assert (p.ci_low, p.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert p.sd == pytest.approx(d.std(ddof=1)) and p.mean == pytest.approx(d.mean())


def test_the_old_bootstrap_range_is_not_the_t_interval():
    # the example: the percentile bootstrap of 3 values is their [min, max]
    d = np.array([0.330, 0.346, 0.822])
    p = paired(pd.Series(d), pd.Series(np.zeros(3)), confidence=0.95)
    assert p.ci_low < 0 < p.ci_high  # the t-interval is far wider and contains 0
    assert p.p_t > 0.05


def test_exact_permutation_p_is_the_share_of_sign_flips_at_least_as_extreme():
    assert permutation_p(np.array([0.1, 0.2, 0.3])) == pytest.approx(2 / 8)
    assert permutation_p(np.arange(1, 7) / 10) == pytest.approx(2 / 64)
    # by hand over all 2^3 flips of [1, 2, -0.5]: |mean| >= 2.5/3 for 4 of the 8
    assert permutation_p(np.array([1.0, 2.0, -0.5])) == pytest.approx(4 / 8)
    assert permutation_min_seeds(0.05) == 6 and permutation_min_seeds(0.01) == 8
    assert 2 / 2**5 > 0.05 >= 2 / 2**6


def test_one_seed_has_no_test_and_identical_differences_have_p_zero():
    one = paired(pd.Series([2.0]), pd.Series([1.0]), confidence=0.95)
    assert not one.has_test and math.isnan(one.p_t) and math.isnan(one.ci_low)
    assert paired(pd.Series([2.0], index=[0]), pd.Series([1.0], index=[1]), confidence=0.95).n == 0
    same = paired(pd.Series([2.0, 3.0, 4.0]), pd.Series([1.0, 2.0, 3.0]), confidence=0.95)
    assert same.sd == 0 and same.p_t == 0 and (same.ci_low, same.ci_high) == (1.0, 1.0)
    zero = paired(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]), confidence=0.95)
    assert zero.p_t == 1.0


def test_holm_matches_the_step_down_by_hand_and_skips_untested_members():
    p = [0.01, math.nan, 0.04, 0.03, 0.005]
    adjusted, reject = holm(p, 0.05)
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, made monotone: 0.02, 0.03, 0.06, 0.06
    assert adjusted[[4, 0, 3, 2]] == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert math.isnan(adjusted[1]) and list(reject) == [True, False, False, False, True]


def test_power_is_statsmodels_ttest_power_where_that_is_finite():
    for n, alpha in [(2, 0.05), (3, 0.05 / 9), (6, 0.05), (10, 0.01)]:
        for es in (0.2, 1.0, 2.0):
            assert power(es, 1.0, n, alpha) == pytest.approx(
                TTestPower().power(es, n, alpha), abs=1e-12
            )
    assert math.isnan(TTestPower().power(3.0, 10, 0.01))  # statsmodels' lower tail
    assert power(0.0, 1.0, 5, 0.05) == pytest.approx(0.05)  # under the null: alpha
    assert power(50.0, 1.0, 3, 0.05 / 9) == pytest.approx(1.0)  # where statsmodels gives NaN


def test_minimum_detectable_effect_has_the_stated_power_and_scales_with_the_sd():
    mde = minimum_detectable_effect(0.03, 3, 0.05, 0.8)
    assert power(mde, 0.03, 3, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert minimum_detectable_effect(0.06, 3, 0.05, 0.8) == pytest.approx(2 * mde)
    assert minimum_detectable_effect(0.03, 10, 0.05, 0.8) < mde
    assert math.isnan(minimum_detectable_effect(0.03, 1, 0.05, 0.8))
    # the seeds needed are the fewest with enough power
    n = seeds_needed(0.05, 0.03, 0.05, 0.8, 200)
    assert power(0.05, 0.03, n, 0.05) >= 0.8 > power(0.05, 0.03, n - 1, 0.05)
    assert math.isnan(seeds_needed(0.001, 1.0, 0.05, 0.8, 50))


def test_judge_corrects_the_family_and_gives_power_at_holms_first_level():
    rng = np.random.default_rng(0)
    tests = [
        paired(pd.Series(rng.normal(m, 0.1, 4)), pd.Series(np.zeros(4)), confidence=0.95)
        for m in (1.0, 0.0, 0.05)
    ]
    tests.append(paired(pd.Series([1.0]), pd.Series([0.0]), confidence=0.95))
    judged = judge(tests, [0.1] * 4, REP)
    assert [j.family_size for j in judged] == [3] * 4
    assert judged[0].rejected and not judged[1].rejected and not judged[3].rejected
    assert math.isnan(judged[3].p_holm)
    assert judged[0].mde == pytest.approx(minimum_detectable_effect(tests[0].sd, 4, 0.05 / 3, 0.8))
    assert judged[0].seeds_for_target == seeds_needed(0.1, tests[0].sd, 0.05 / 3, 0.8, 200)
    assert isinstance(tests[0], Paired)
