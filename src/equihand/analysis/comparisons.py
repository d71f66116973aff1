"""The report's paired comparisons: per backbone and label fraction, each objective against
`none`, equivariant against invariant and each contrastive objective with MIM against the same
without, paired by seed with a bootstrap CI of the PA-EPE difference (equihand.analysis.stats)."""

from __future__ import annotations

import math

import pandas as pd

from equihand.analysis.stats import paired
from equihand.vocabulary import NO_PRETRAINING, in_order, percent, study_objectives

# the columns of comparisons.csv
COLUMNS = (
    "backbone label_fraction a b n_seeds seeds unpaired pa_epe_a_cm pa_epe_b_cm seed_std_a_cm "
    "seed_std_b_cm diff_cm improvement_pct confidence ci_low_cm ci_high_cm beyond_noise"
).split()


NOISE = {True: "larger than seed noise", False: "within seed noise"}


def compare(runs: pd.DataFrame, a: str, b: str, *, n_boot=10000, confidence=0.95, seed=0) -> dict:
    """Objective `a` against `b` on the runs of one backbone and label fraction, paired by seed.

    d_s = PA-EPE(b, s) - PA-EPE(a, s) over the seeds both have (positive: `a` is better); the
    mean of d, the improvement 100 * mean(d) / mean PA-EPE(b), a percentile bootstrap CI of mean(d)
    (seed indices resampled with replacement; none for fewer than 2 seeds) and each objective's
    standard deviation over seeds. `beyond_noise` is true only if the CI excludes 0.
    """
    cell = runs[["backbone", "label_fraction"]].drop_duplicates()
    if len(cell) != 1:
        raise ValueError("compare() takes the runs of one backbone and label fraction")
    pa = {o: runs[runs["objective"] == o].set_index("seed")["pa_epe_cm"] for o in (a, b)}
    p = paired(pa[b], pa[a], n_boot=n_boot, confidence=confidence, seed=seed)
    xa, xb, d, n = p.y, p.x, p.diff, len(p.seeds)
    only = [(o, sorted(set(pa[o].index) - set(p.seeds))) for o in (a, b)]
    mean = (lambda x: float(x.mean())) if n else (lambda x: math.nan)
    std = (lambda x: float(x.std(ddof=1))) if n > 1 else (lambda x: math.nan)
    return {
        "backbone": cell["backbone"].iloc[0],
        "label_fraction": float(cell["label_fraction"].iloc[0]),
        "a": a,
        "b": b,
        "n_seeds": n,
        "seeds": join(p.seeds),
        "unpaired": "; ".join(f"seed {join(s)} only for {o}" for o, s in only if s),
        "pa_epe_a_cm": mean(xa),
        "pa_epe_b_cm": mean(xb),
        "seed_std_a_cm": std(xa),
        "seed_std_b_cm": std(xb),
        "diff_cm": mean(d),
        "improvement_pct": 100 * mean(d) / mean(xb) if n else math.nan,
        "confidence": confidence,
        "ci_low_cm": float(p.ci_low),
        "ci_high_cm": float(p.ci_high),
        "beyond_noise": p.beyond_noise,
    }


def comparisons(runs: pd.DataFrame, *, n_boot=10000, confidence=0.95, seed=0) -> pd.DataFrame:
    """Per backbone and label fraction: every objective vs none, equivariant vs invariant, and
    each contrastive objective with masked image modelling vs the same objective without."""
    rows = []
    for _, cell in runs.groupby(["backbone", "label_fraction"], sort=True):
        present = set(cell["objective"])
        order = in_order(present, study_objectives())
        candidates = [(o, NO_PRETRAINING) for o in order if o != NO_PRETRAINING]
        candidates += [("equivariant", "invariant")]
        candidates += [(o, o.removesuffix("+mim")) for o in order if o.endswith("+mim")]
        pairs = [(a, b) for a, b in candidates if {a, b} <= present]
        for a, b in pairs:
            rows.append(compare(cell, a, b, n_boot=n_boot, confidence=confidence, seed=seed))
    return pd.DataFrame(rows, columns=COLUMNS)


def join(items) -> str:
    return ", ".join(str(i) for i in items)


def comparison_table(comps: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {
            "backbone": c.backbone,
            "labels": percent(c.label_fraction),
            "a vs b": f"{c.a} vs {c.b}",
            "seeds": c.n_seeds,
            "PA-EPE a / b (cm)": f"{c.pa_epe_a_cm:.2f} / {c.pa_epe_b_cm:.2f}",
            "mean d (cm)": f"{c.diff_cm:+.2f}",
            "gain": f"{c.improvement_pct:+.1f}%",
            "CI of d (cm)": f"{c.ci_low_cm:+.2f} to {c.ci_high_cm:+.2f}" if c.n_seeds > 1 else "–",
            "seed std a / b (cm)": (
                f"{c.seed_std_a_cm:.2f} / {c.seed_std_b_cm:.2f}" if c.n_seeds > 1 else "–"
            ),
            "verdict": NOISE[c.beyond_noise] if c.n_seeds > 1 else "no CI",
        }
        for c in comps.itertuples()
    ]
    return pd.DataFrame(rows)
