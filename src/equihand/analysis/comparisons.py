"""The report's family of paired comparisons of PA-EPE, tested and corrected together.

Two kinds of member (column `kind`), each d_s = PA-EPE(b, s) - PA-EPE(a, s) over the seeds both
ran (positive: `a` is better), paired t-test, t-interval and permutation p-value
(equihand.analysis.stats.paired):

- `objectives`: per backbone and label fraction, every objective against `none`, equivariant
  against invariant, and each contrastive objective with MIM against the same without and
  against `mim` alone (Zhu et al.'s claim is that the combination beats either half);
- `labels`: per backbone and objective, the largest label fraction (`a`, at `a_label_fraction`)
  against each smaller one (`b`, at `label_fraction`): what fewer labels cost.

All members of one report form one family: Holm's correction over all of them decides each
verdict, and the power analysis is at the level of Holm's first step
(equihand.analysis.stats.judge).
"""

from __future__ import annotations

import math

import pandas as pd

from equihand.analysis.stats import judge, paired, permutation_min_seeds
from equihand.vocabulary import MIM, NO_PRETRAINING, WITH_MIM, in_order, percent, study_objectives

OBJECTIVES, LABELS = "objectives", "labels"

# the columns of comparisons.csv
COLUMNS = (
    "kind backbone label_fraction a_label_fraction a b n_seeds seeds unpaired pa_epe_a_cm "
    "pa_epe_b_cm seed_std_a_cm seed_std_b_cm diff_cm improvement_pct sd_diff_cm confidence "
    "ci_low_cm ci_high_cm p_t p_perm perm_can_reject family_size p_holm beyond_noise mde_cm "
    "mde_pct target_gain_pct seeds_for_target verdict"
).split()

NO_TEST, CANNOT_TELL = "no test (one seed)", "cannot tell"


def _row(kind, backbone, a, fa, b, fb, values_a, values_b, rep: dict) -> dict:
    """The columns of one member before the family correction: PA-EPE `values_a` and `values_b`
    (Series indexed by seed) of the sides named `a` at fraction `fa` and `b` at `fb`."""
    p = paired(values_b, values_a, confidence=1 - rep["alpha"])
    xa, xb, n = p.y, p.x, p.n
    names = (f"{a} at {percent(fa)}", f"{b} at {percent(fb)}") if kind == LABELS else (a, b)
    only = [
        (name, sorted(set(v.index) - set(p.seeds)))
        for name, v in zip(names, (values_a, values_b), strict=True)
    ]
    only = [(o, s) for o, s in only if s]
    mean = (lambda x: float(x.mean())) if n else (lambda x: math.nan)
    std = (lambda x: float(x.std(ddof=1))) if n > 1 else (lambda x: math.nan)
    return {
        "kind": kind,
        "backbone": backbone,
        "label_fraction": float(fb),
        "a_label_fraction": float(fa),
        "a": a,
        "b": b,
        "n_seeds": n,
        "seeds": join(p.seeds),
        "unpaired": "; ".join(f"seed {join(s)} only for {o}" for o, s in only),
        "pa_epe_a_cm": mean(xa),
        "pa_epe_b_cm": mean(xb),
        "seed_std_a_cm": std(xa),
        "seed_std_b_cm": std(xb),
        "diff_cm": p.mean,
        "improvement_pct": 100 * p.mean / mean(xb) if n else math.nan,
        "sd_diff_cm": p.sd,
        "confidence": p.confidence,
        "ci_low_cm": p.ci_low,
        "ci_high_cm": p.ci_high,
        "p_t": p.p_t,
        "p_perm": p.p_perm,
        "perm_can_reject": n >= permutation_min_seeds(rep["alpha"]),
        "target_gain_pct": rep["target_gain_pct"],
    }


def objective_pairs(present: set) -> list[tuple[str, str]]:
    """The (a, b) objective comparisons a cell with objectives `present` allows."""
    order = in_order(present, study_objectives())
    candidates = [(o, NO_PRETRAINING) for o in order if o != NO_PRETRAINING]
    candidates += [("equivariant", "invariant")]
    combined = [o for o in order if o.endswith(WITH_MIM)]
    candidates += [(o, o.removesuffix(WITH_MIM)) for o in combined]
    candidates += [(o, MIM) for o in combined]
    return [(a, b) for a, b in candidates if {a, b} <= present]


def comparisons(runs: pd.DataFrame, rep: dict) -> pd.DataFrame:
    """Every member of the report's family (see the module doc), Holm-corrected together."""
    rows = []
    for (backbone, fraction), cell in runs.groupby(["backbone", "label_fraction"], sort=True):
        pa = {o: g.set_index("seed")["pa_epe_cm"] for o, g in cell.groupby("objective")}
        for a, b in objective_pairs(set(pa)):
            rows.append(_row(OBJECTIVES, backbone, a, fraction, b, fraction, pa[a], pa[b], rep))
    for (backbone, objective), cell in runs.groupby(["backbone", "objective"], sort=False):
        by = {f: g.set_index("seed")["pa_epe_cm"] for f, g in cell.groupby("label_fraction")}
        top = max(by)
        for f in sorted(by)[:-1]:
            rows.append(_row(LABELS, backbone, objective, top, objective, f, by[top], by[f], rep))
    table = pd.DataFrame(rows, columns=COLUMNS)
    return correct(table, rep)


def correct(table: pd.DataFrame, rep: dict) -> pd.DataFrame:
    """Holm-correct the members of `table` as one family; each member's power and verdict."""
    tests = [_Test(r) for r in table.itertuples()]
    targets = [r.target_gain_pct / 100 * r.pa_epe_b_cm for r in table.itertuples()]
    judged = judge(tests, targets, rep)
    table = table.copy()
    table["family_size"] = [j.family_size for j in judged]
    table["p_holm"] = [j.p_holm for j in judged]
    table["beyond_noise"] = [j.rejected for j in judged]
    table["mde_cm"] = [j.mde for j in judged]
    table["mde_pct"] = 100 * table["mde_cm"] / table["pa_epe_b_cm"]
    table["seeds_for_target"] = [j.seeds_for_target for j in judged]
    table["verdict"] = [verdict(r) for r in table.itertuples()]
    return table


class _Test:
    """A comparisons.csv row read as the fields `judge` uses."""

    def __init__(self, r):
        self.p_t, self.sd, self.n = r.p_t, r.sd_diff_cm, r.n_seeds
        self.has_test = r.n_seeds >= 2


def verdict(r) -> str:
    """`a better`, `b better` (the corrected test rejects), `cannot tell` or `no test`."""
    if r.n_seeds < 2:
        return NO_TEST
    if not r.beyond_noise:
        return CANNOT_TELL
    if r.kind == LABELS:
        return "fewer labels worse" if r.diff_cm > 0 else "fewer labels better"
    return f"{r.a} better" if r.diff_cm > 0 else f"{r.b} better"


def join(items) -> str:
    return ", ".join(str(i) for i in items)


def _p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3f}" if p >= 0.001 else "<0.001"


def comparison_table(comps: pd.DataFrame) -> pd.DataFrame:
    """The family as the report prints it, one row per member."""

    def what(c):
        if c.kind == LABELS:
            return f"{c.a}: {percent(c.a_label_fraction)} vs {percent(c.label_fraction)}"
        return f"{c.a} vs {c.b} ({percent(c.label_fraction)})"

    rows = [
        {
            "backbone": c.backbone,
            "a vs b": what(c),
            "seeds": c.n_seeds,
            "PA-EPE a / b (cm)": f"{c.pa_epe_a_cm:.2f} / {c.pa_epe_b_cm:.2f}",
            "mean d (cm)": f"{c.diff_cm:+.3f}",
            "gain": f"{c.improvement_pct:+.1f}%",
            f"{c.confidence:.0%} t-interval (cm)": (
                f"{c.ci_low_cm:+.3f} to {c.ci_high_cm:+.3f}" if c.n_seeds > 1 else "–"
            ),
            "p (t)": _p(c.p_t),
            "p (permutation)": _p(c.p_perm) + ("" if c.perm_can_reject or c.n_seeds < 2 else "*"),
            "p (Holm)": _p(c.p_holm),
            "MDE (cm, %)": f"{c.mde_cm:.3f}, {c.mde_pct:.1f}%" if c.n_seeds > 1 else "–",
            f"seeds for {c.target_gain_pct:g}%": _seeds(c.seeds_for_target, c.n_seeds),
            "verdict": c.verdict,
        }
        for c in comps.itertuples()
    ]
    return pd.DataFrame(rows)


def _seeds(n: float, ran: int) -> str:
    if ran < 2:
        return "–"
    return "more than the cap" if math.isnan(n) else str(int(n))
