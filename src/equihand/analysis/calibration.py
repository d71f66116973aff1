"""Simulated studies judged by the report's own code: how often a verdict fires with no effect
(false-positive rate) and how often it finds a planted one (power).

A simulated study draws every run's score as its arm's mean plus normal seed noise with the arm's
seed-to-seed SD, then passes the runs through the very functions the report and the part-aware
step use (`equihand.analysis.comparisons.comparisons`, `equihand.analysis.claims.claims`). The
SDs below were measured by the default study (docs/study.md, commit 13f0c7f, seeds 0, 1, 2).
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import pandas as pd

from equihand.analysis.claims import claims
from equihand.analysis.comparisons import comparisons
from equihand.analysis.stats import MIN_SEEDS_FOR_TEST

# (objective, label fraction) -> (mean test PA-EPE, SD over seeds), cm (docs/study.md)
MEASURED_PA_EPE = {
    ("none", 0.1): (2.38, 0.05),
    ("invariant", 0.1): (2.33, 0.02),
    ("equivariant", 0.1): (2.35, 0.04),
    ("none", 1.0): (1.83, 0.01),
    ("invariant", 1.0): (1.79, 0.01),
    ("equivariant", 1.0): (1.79, 0.01),
}

# (encoder, task) -> (mean, SD over seeds) of the probe's test score (top-1; R^2 for pose2d)
MEASURED_PROBE = {
    ("random", "gesture"): (0.108, 0.019), ("random", "orientation"): (0.326, 0.025),
    ("random", "part"): (0.420, 0.002), ("random", "finger"): (0.310, 0.010),
    ("random", "pose2d"): (0.018, 0.005),
    ("supervised", "gesture"): (0.507, 0.021), ("supervised", "orientation"): (0.598, 0.019),
    ("supervised", "part"): (0.462, 0.009), ("supervised", "finger"): (0.338, 0.015),
    ("supervised", "pose2d"): (0.664, 0.006),
    ("invariant", "gesture"): (0.158, 0.021), ("invariant", "orientation"): (0.395, 0.018),
    ("invariant", "part"): (0.463, 0.002), ("invariant", "finger"): (0.336, 0.005),
    ("invariant", "pose2d"): (0.117, 0.052),
    ("equivariant", "gesture"): (0.168, 0.016), ("equivariant", "orientation"): (0.434, 0.012),
    ("equivariant", "part"): (0.475, 0.008), ("equivariant", "finger"): (0.331, 0.011),
    ("equivariant", "pose2d"): (0.113, 0.009),
}  # fmt: skip


PROJECTED = ("invariant", "equivariant")  # the encoders with a projection head


def null_arms(arms: dict) -> dict:
    """The same arms with no effect: every mean set to the overall mean, SDs kept."""
    mean = float(np.mean([m for m, _ in arms.values()]))
    return {k: (mean, sd) for k, (_, sd) in arms.items()}


def draw(rng: np.random.Generator, arms: dict, seeds: int) -> dict:
    """arm -> `seeds` scores, each its mean plus N(0, SD) seed noise."""
    return {k: m + sd * rng.standard_normal(seeds) for k, (m, sd) in arms.items()}


def pa_epe_runs(scores: dict) -> pd.DataFrame:
    """runs.csv rows (`equihand aggregate`'s columns the report reads) from drawn PA-EPEs."""
    rows = [
        {"objective": o, "backbone": "resnet18", "label_fraction": f, "seed": s, "epe_cm": 8.0,
         "pa_epe_cm": float(v), "auc": 0.1, "pa_auc": 0.5, "path": ""}
        for (o, f), values in scores.items() for s, v in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def probe_runs(scores: dict) -> pd.DataFrame:
    """Probe rows (the columns the claims read) from drawn scores; pose2d's is R^2, the rest
    top-1 with a retrieval mAP of the same value for the backbone and projector features."""
    rows = []
    for (encoder, task), values in scores.items():
        for s, v in enumerate(values):
            r2 = task == "pose2d"
            features = ("backbone", "projector") if encoder in PROJECTED else ("backbone",)
            for feature in features:
                rows.append(
                    {"encoder": encoder, "backbone": "resnet18", "seed": s, "feature": feature,
                     "task": task, "test_top1": np.nan if r2 else float(v),
                     "map": np.nan if r2 else float(v), "test_r2": float(v) if r2 else np.nan}
                )  # fmt: skip
    return pd.DataFrame(rows)


def report_verdicts(runs: pd.DataFrame, rep: dict) -> pd.Series:
    """Member -> whether the report calls it larger than seed noise."""
    comps = comparisons(runs, rep)
    return pd.Series(comps["beyond_noise"].to_numpy(), index=_members(comps))


def _members(comps: pd.DataFrame) -> pd.Index:
    key = comps["kind"] + ": " + comps["a"] + " vs " + comps["b"] + " @ "
    return pd.Index(key + comps["label_fraction"].astype(str))


def claim_verdicts(runs: pd.DataFrame, rep: dict) -> pd.Series:
    """Comparison -> whether the part-aware step calls it (supports or contradicts)."""
    table = claims(runs, rep)
    key = table["claim"] + ": " + table["a"] + " vs " + table["b"] + " " + table["task"] + " "
    key += table["feature"]
    return pd.Series(table["verdict"].isin(["supports", "contradicts"]).to_numpy(), index=key)


def simulate(
    n_studies: int,
    seed: int,
    arms: dict,
    seeds: int,
    to_runs: Callable[[dict], pd.DataFrame],
    verdicts: Callable[[pd.DataFrame], pd.Series],
) -> pd.DataFrame:
    """One row per simulated study, one boolean column per member: did the verdict fire."""
    rng = np.random.default_rng(seed)
    # statsmodels' Holm calls gc.collect(); freezing the objects alive now keeps it cheap
    gc.freeze()
    try:
        return pd.DataFrame([verdicts(to_runs(draw(rng, arms, seeds))) for _ in range(n_studies)])
    finally:
        gc.unfreeze()


def rates(fired: pd.DataFrame) -> dict:
    """Per-member firing rates, the largest of them, and the family-wise rate (any fired)."""
    per = fired.mean()
    return {
        "per_member": per,
        "max_member": float(per.max()),
        "family": float(fired.any(axis=1).mean()),
    }


def bootstrap_verdicts(runs: pd.DataFrame, rep: dict, n_boot: int, seed: int) -> pd.Series:
    """The rule the report used before (a verdict when the 95% percentile bootstrap interval of
    mean(d) excludes 0), on the report's own members: kept only to show the calibration check
    catches it (with 3 seeds that interval is [min, max] of the differences)."""
    comps = comparisons(runs, rep)
    pa = runs.set_index(["objective", "label_fraction", "seed"])["pa_epe_cm"].sort_index()
    rng = np.random.default_rng(seed)
    fired = []
    for c in comps.itertuples():
        d = (pa[(c.b, c.label_fraction)] - pa[(c.a, c.a_label_fraction)]).to_numpy()
        means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
        lo, hi = np.quantile(means, [0.025, 0.975])
        fired.append(bool(lo > 0 or hi < 0))
    return pd.Series(fired, index=_members(comps))


def pilot_then_more_seeds(
    rng: np.random.Generator,
    arms: dict,
    rep: dict,
    pilot: int,
    cap: int,
    target_pct: float,
    reuse_pilot: bool,
) -> pd.Series:
    """One simulated study of the powered design's procedure, judged by the report's code.

    A pilot of `pilot` seeds runs every arm; from its own paired SDs the report's power analysis
    gives the seeds that detect `target_pct`% of b's PA-EPE for each objective comparison below
    100% of the labels, and the largest of them (at most `cap`) is run there
    (`study.small_fraction_seeds`). The final report compares either every seed
    (`reuse_pilot`, what config/powered.yaml did) or, below 100%, only the seeds after the pilot
    (whose number was chosen before they ran); at 100% the pilot's seeds stay.
    """
    scores = draw(rng, arms, cap)
    runs = pa_epe_runs(scores)
    comps = comparisons(runs[runs["seed"] < pilot], {**rep, "target_gain_pct": target_pct})
    small = comps[(comps["kind"] == "objectives") & (comps["label_fraction"] < 1)]
    need = small["seeds_for_target"].fillna(cap).clip(upper=cap)
    # the seeds after the pilot must be enough for a test of their own
    n = max(pilot + MIN_SEEDS_FOR_TEST, int(need.max()))
    full = runs["label_fraction"] >= 1
    keep = (full & (runs["seed"] < pilot)) | (~full & (runs["seed"] < n))
    if not reuse_pilot:
        keep &= full | (runs["seed"] >= pilot)
    return report_verdicts(runs[keep], rep)


def simulate_pilot_design(
    n_studies: int, seed: int, arms: dict, rep: dict, pilot: int, cap: int, target_pct: float,
    reuse_pilot: bool,
) -> pd.DataFrame:  # fmt: skip
    """`simulate` for the powered design's procedure (`pilot_then_more_seeds`)."""
    rng = np.random.default_rng(seed)
    gc.freeze()  # as in `simulate`: statsmodels' Holm calls gc.collect()
    try:
        return pd.DataFrame(
            [
                pilot_then_more_seeds(rng, arms, rep, pilot, cap, target_pct, reuse_pilot)
                for _ in range(n_studies)
            ]
        )
    finally:
        gc.unfreeze()
