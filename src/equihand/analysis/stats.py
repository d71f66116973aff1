"""Paired comparisons over seeds, and the tests every verdict of the study rests on.

Pretraining seed s feeds finetuning (and probing) seed s, so two arms are compared seed by seed:
d_s = x_s - y_s over the seeds both ran (`paired`). For the mean of d:

- the paired t-test (`scipy.stats.ttest_1samp` on d, df = n - 1) and its t-interval: the
  headline test and interval;
- the exact sign-flip permutation test (`scipy.stats.permutation_test` over all 2^n sign
  assignments): the assumption-free check. Its smallest two-sided p-value is 2 / 2^n, so with
  fewer than `permutation_min_seeds(alpha)` seeds (6 at 5%) it cannot reject whatever the data;
- Holm's step-down correction over a family of tests (`holm`, statsmodels' `multipletests`);
- the paired t-test's power (`power`, `minimum_detectable_effect`, `seeds_needed`; the
  noncentral t of scipy.stats), which takes the sample SD of d as the true SD.

docs/statistics.md says why these and not the percentile bootstrap the report used before.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests

MIN_SEEDS_FOR_TEST = 2  # one seed says nothing about seed noise


@dataclass(frozen=True)
class Paired:
    """x - y over the seeds both ran, its paired t-test, t-interval and permutation p-value.

    The test fields are NaN with fewer than MIN_SEEDS_FOR_TEST seeds. When every seed gives the
    same difference (sd 0) the t statistic is infinite: p_t is 0 (1 if that difference is 0) and
    the interval is the point.
    """

    seeds: list  # the common seeds, sorted
    x: np.ndarray  # x's values on `seeds`
    y: np.ndarray  # y's values on `seeds`
    diff: np.ndarray  # x - y per seed, rounded to 1e-9 (a tie is 0, not float noise)
    confidence: float  # of the t-interval
    sd: float  # sample SD of diff (ddof 1)
    ci_low: float  # the t-interval of mean(diff), df = n - 1
    ci_high: float
    p_t: float  # two-sided paired t-test of mean(diff) = 0
    p_perm: float  # two-sided exact sign-flip permutation test of mean(diff) = 0

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean(self) -> float:
        return float(self.diff.mean()) if self.n else math.nan

    @property
    def has_test(self) -> bool:
        return self.n >= MIN_SEEDS_FOR_TEST


def paired(x, y, *, confidence: float) -> Paired:
    """Compare `x` and `y`, two pandas Series of one metric indexed by seed, on the seeds both
    have."""
    seeds = sorted(set(x.index) & set(y.index))
    xs, ys = x[seeds].to_numpy(float), y[seeds].to_numpy(float)
    d = np.round(xs - ys, 9)
    nan = math.nan
    if len(d) < MIN_SEEDS_FOR_TEST:
        return Paired(seeds, xs, ys, d, confidence, nan, nan, nan, nan, nan)
    sd = float(d.std(ddof=1))
    if sd == 0:  # every seed agrees exactly: t is infinite (or 0/0 for a tie)
        m = float(d[0])
        p = 1.0 if m == 0 else 0.0
        return Paired(seeds, xs, ys, d, confidence, 0.0, m, m, p, permutation_p(d))
    t = stats.ttest_1samp(d, 0.0)
    ci = t.confidence_interval(confidence)
    return Paired(
        seeds, xs, ys, d, confidence, sd, float(ci.low), float(ci.high), float(t.pvalue),
        permutation_p(d),
    )  # fmt: skip


def permutation_p(d: np.ndarray) -> float:
    """Two-sided exact sign-flip permutation p-value of mean(d) = 0 (all 2^n sign flips)."""
    res = stats.permutation_test(
        (np.asarray(d, float),),
        np.mean,
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="two-sided",
        vectorized=True,
    )
    return float(min(res.pvalue, 1.0))


def permutation_min_seeds(alpha: float) -> int:
    """The fewest seeds n at which the exact sign-flip test can reject at `alpha`."""
    return max(MIN_SEEDS_FOR_TEST, math.ceil(math.log2(2 / alpha)))


def holm(p_values, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction of one family: (corrected p-values, rejected at `alpha`).

    NaN p-values (comparisons without a test) are not family members: they stay NaN, unrejected.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted, reject = np.full(p.shape, math.nan), np.zeros(p.shape, dtype=bool)
    members = ~np.isnan(p)
    if members.any():
        reject[members], adjusted[members], _, _ = multipletests(
            p[members], alpha=alpha, method="holm"
        )
    return adjusted, reject


def power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test at `alpha` over `n` seeds for a true mean difference
    `effect` when the differences' SD is `sd`: P(|T| > t_crit) for T noncentral t with df n - 1
    and noncentrality effect / sd * sqrt(n) (scipy.stats.nct).

    The same number as statsmodels' TTestPower, whose lower tail (nct.cdf) turns NaN at large
    effects; here the lower tail is nct.sf at minus the noncentrality, which stays finite.
    """
    if n < MIN_SEEDS_FOR_TEST:
        return math.nan
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    df, nc = n - 1, abs(effect) / sd * math.sqrt(n)
    crit = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def minimum_detectable_effect(sd: float, n: int, alpha: float, target_power: float) -> float:
    """The smallest true |mean difference| the paired t-test at `alpha` over `n` seeds detects
    with probability `target_power`, taking `sd` as the true SD of the differences."""
    if n < MIN_SEEDS_FOR_TEST or not math.isfinite(sd):
        return math.nan
    return sd * _standardized_mde(n, alpha, target_power)


@functools.lru_cache(maxsize=4096)
def _standardized_mde(n: int, alpha: float, target_power: float) -> float:
    """The minimum detectable effect in units of the differences' SD (it scales with the SD)."""
    gap = lambda es: power(es, 1.0, n, alpha) - target_power  # noqa: E731
    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10))


def seeds_needed(effect: float, sd: float, alpha: float, target_power: float, cap: int) -> float:
    """The fewest seeds at which the paired t-test at `alpha` detects a true mean difference
    `effect` with probability `target_power` (NaN when more than `cap` would be needed)."""
    if not math.isfinite(sd) or not math.isfinite(effect):
        return math.nan
    for n in range(MIN_SEEDS_FOR_TEST, cap + 1):
        if sd * _standardized_mde(n, alpha, target_power) <= abs(effect):
            return n
    return math.nan


@dataclass(frozen=True)
class Judged:
    """One family member's corrected verdict and power (see `judge`)."""

    family_size: int  # the members with a test (at least MIN_SEEDS_FOR_TEST seeds)
    p_holm: float  # Holm-corrected p_t; NaN without a test
    rejected: bool  # the corrected test rejects mean(diff) = 0 at alpha
    mde: float  # minimum detectable |mean diff| at `power`, at alpha / family_size
    seeds_for_target: float  # seeds that detect the member's target effect (NaN: over the cap)


def judge(tests: list[Paired], targets: list[float], report: dict) -> list[Judged]:
    """Correct one family of paired tests with Holm at `report.alpha` and give each member's power.

    The power analysis is at alpha / family_size, the level Holm's first step applies: an effect
    of the minimum detectable size is found with at least `report.power` probability even when it
    is the family's only real effect. `targets`: per member, the |mean diff| to size seeds for.
    """
    alpha, target_power, cap = report["alpha"], report["power"], report["max_seeds"]
    p_holm, rejected = holm([t.p_t for t in tests], alpha)
    m = sum(t.has_test for t in tests)
    level = alpha / max(m, 1)
    return [
        Judged(
            family_size=m,
            p_holm=float(p),
            rejected=bool(r),
            mde=minimum_detectable_effect(t.sd, t.n, level, target_power),
            seeds_for_target=seeds_needed(effect, t.sd, level, target_power, cap),
        )
        for t, p, r, effect in zip(tests, p_holm, rejected, targets, strict=True)
    ]
