"""The verdicts' error rates, measured by simulating studies through the report's own code.

With no effect at all (seed noise only, the SDs the default study measured), no verdict of the
report or of the part-aware claims may fire in more than 6% of 2,000 simulated studies at the
nominal 5%, and the family as a whole (any verdict) not either; an effect of the size the power
analysis calls detectable must be found at the power it predicts. The same check on the
percentile bootstrap the report used before fires in about 25% of null studies: the check can
fail.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from equihand.analysis import calibration as cal
from equihand.analysis.stats import minimum_detectable_effect, paired, power
from equihand.config import load_config

pytestmark = pytest.mark.slow  # thousands of simulated studies

REPO = Path(__file__).resolve().parents[1]
N_STUDIES = 2000
NOMINAL, LIMIT = 0.05, 0.06


@pytest.fixture(scope="module")
def default():
    config = load_config(REPO / "config" / "default.yaml", [])
    assert config["report"]["alpha"] == NOMINAL
    return config["report"], len(config["study"]["seeds"])


def test_report_verdicts_keep_their_false_positive_rate(default):
    rep, seeds = default
    fired = cal.simulate(
        N_STUDIES, 0, cal.null_arms(cal.MEASURED_PA_EPE), seeds, cal.pa_epe_runs,
        lambda runs: cal.report_verdicts(runs, rep),
    )  # fmt: skip
    rates = cal.rates(fired)
    assert fired.shape == (N_STUDIES, 9)  # 6 objective comparisons + 3 label effects
    assert rates["max_member"] <= LIMIT, rates["per_member"]
    assert rates["family"] <= LIMIT, rates["family"]


def test_probe_claims_keep_their_false_positive_rate(default):
    rep, seeds = default
    fired = cal.simulate(
        N_STUDIES, 1, cal.null_arms(cal.MEASURED_PROBE), seeds, cal.probe_runs,
        lambda runs: cal.claim_verdicts(runs, rep),
    )  # fmt: skip
    rates = cal.rates(fired)
    assert fired.shape[1] > 20
    assert rates["max_member"] <= LIMIT, rates["per_member"]
    assert rates["family"] <= LIMIT, rates["family"]


def test_an_effect_of_the_detectable_size_is_found_at_the_predicted_power(default):
    rep, seeds = default
    arms = cal.null_arms(cal.MEASURED_PA_EPE)
    family = 9
    # plant `invariant` better than `none` at 10% by the MDE the report would state for it
    sd = math.hypot(
        cal.MEASURED_PA_EPE[("none", 0.1)][1], cal.MEASURED_PA_EPE[("invariant", 0.1)][1]
    )
    mde = minimum_detectable_effect(sd, seeds, NOMINAL / family, rep["power"])
    mean, arm_sd = arms[("invariant", 0.1)]
    arms[("invariant", 0.1)] = (mean - mde, arm_sd)
    fired = cal.simulate(
        N_STUDIES, 2, arms, seeds, cal.pa_epe_runs, lambda runs: cal.report_verdicts(runs, rep)
    )
    found = fired["objectives: invariant vs none @ 0.1"].mean()
    # the shift also makes `equivariant vs invariant` and invariant's label effect real; both are
    # found almost always (asserted), so Holm tests the planted one at alpha / (family - 2)
    others = ["objectives: equivariant vs invariant @ 0.1", "labels: invariant vs invariant @ 0.1"]
    assert (fired[others].mean() > 0.9).all()
    predicted = power(mde, sd, seeds, NOMINAL / (family - 2))
    assert found >= rep["power"] - 0.03  # the stated power holds
    assert found == pytest.approx(predicted, abs=0.04)  # 2,000 studies: SE of a rate ~0.008
    untouched = fired.drop(columns=["objectives: invariant vs none @ 0.1", *others])
    assert untouched.mean().max() <= LIMIT


def test_the_old_percentile_bootstrap_fails_the_same_check(default):
    rep, seeds = default
    fired = cal.simulate(
        500, 3, cal.null_arms(cal.MEASURED_PA_EPE), seeds, cal.pa_epe_runs,
        lambda runs: cal.bootstrap_verdicts(runs, rep, n_boot=2000, seed=0),
    )  # fmt: skip
    rates = cal.rates(fired)
    assert rates["max_member"] > 0.2 and rates["family"] > 0.5  # 25% and 86% measured


def _stop_when_p_below(studies: int, seed: int, cap: int) -> float:
    """The share of null studies (one paired comparison, no effect, d ~ N(0, 0.041 cm)) whose
    paired t-test rejects at the nominal level when seeds are added one by one after a 3-seed
    pilot until p < 0.05 or `cap` seeds: optional stopping on the difference itself."""
    rng = np.random.default_rng(seed)
    rejected = 0
    for _ in range(studies):
        d = list(rng.normal(0.0, 0.041, 3))
        while len(d) < cap and stats.ttest_1samp(d, 0.0).pvalue >= NOMINAL:
            d.append(rng.normal(0.0, 0.041))
        s = pd.Series(d)
        rejected += paired(s, pd.Series(0.0, index=s.index), confidence=0.95).p_t < NOMINAL
    return rejected / studies


def test_the_powered_designs_procedure_keeps_its_false_positive_rate(default):
    # config/powered.yaml chose its seeds at 10% from a 3-seed pilot's SDs (the report's power
    # analysis, 3% of none's PA-EPE) and its report tests every seed, the pilot's included.
    # Simulated end to end through the report's code, that keeps the family's rate; so does the
    # confirmatory analysis on the seeds after the pilot (bench/confirm.py).
    rep, seeds = default
    arms = cal.null_arms(cal.MEASURED_PA_EPE)
    for seed, reuse in ((6, True), (7, False)):
        fired = cal.simulate_pilot_design(N_STUDIES, seed, arms, rep, seeds, 12, 3.0, reuse)
        rates = cal.rates(fired)
        assert rates["max_member"] <= LIMIT, (reuse, rates["per_member"])
        assert rates["family"] <= LIMIT, (reuse, rates["family"])
    # the check can fail: adding seeds until p < 0.05 fires far above the nominal rate
    assert _stop_when_p_below(N_STUDIES, 5, 10) > 0.1
