"""The claims of the part-aware probe, each tested as paired comparisons over seeds
(equihand.analysis.stats.paired) of the encoders' probe scores, and the sentence that sums up
each claim.

The claims of Zhu et al. tested here, each as paired differences over seeds (paired t-test,
t-interval, exact permutation p-value; equihand.analysis.stats; `report.*` settings), after a
sanity check (0: e - random, top-1 of gesture, part and finger, for every trained encoder e) and
the pose-sensitive checks the default study needs (P: e - random on orientation top-1 and pose2d
R^2, for every trained encoder e; E: equivariant - invariant, and equivariant+mim -
invariant+mim, on the same two, which tests PeCLR's argument that invariance to rotation
discards the orientation that equivariance keeps):

1. object level, supervised is best: supervised - e, gesture (and orientation) top-1, for every
   other encoder e;
2. part level, self-supervised beats supervised: e - supervised, part and finger top-1, for each
   self-supervised encoder e;
3. contrastive + MIM is best at part level: X+mim - X and X+mim - mim, part and finger top-1;
4. part level, the backbone beats the projector: backbone - projector, part and finger retrieval
   mAP, for every encoder with a projection head.

All the comparisons of one part-aware table form one family: their paired t-tests
(equihand.analysis.stats) are Holm-corrected together at `report.alpha`. A comparison supports a
claim when its corrected test rejects and the difference lies on the predicted side of 0,
contradicts it when the test rejects on the other side, and otherwise the study cannot tell; over
one seed it has no test and says nothing either way.
"""

from __future__ import annotations

import pandas as pd

from equihand.analysis.stats import MIN_SEEDS_FOR_TEST, judge, paired, permutation_min_seeds
from equihand.probe.sets import OBJECT_TASKS, PART_TASKS
from equihand.vocabulary import (
    RANDOM_ENCODER,
    SUPERVISED_ENCODER,
    WITH_MIM,
    encoders,
    pretraining_objectives,
    rank,
)

# the pose-sensitive frozen checks: (task, metric)
POSE_CHECKS = (("orientation", "test_top1"), ("pose2d", "test_r2"))


EQUIVARIANT_PAIRS = (("equivariant", "invariant"), ("equivariant+mim", "invariant+mim"))


CLAIMS = {
    "pose_beats_random": (
        "every trained encoder holds more hand pose than an untrained one (orientation top-1, "
        "2D pose R^2)"
    ),
    "equivariant_pose": (
        "equivariant pretraining keeps more pose than invariant pretraining (PeCLR's argument; "
        "orientation top-1, 2D pose R^2)"
    ),
    "beats_random": "every trained encoder beats an untrained (random-init) one",
    "supervised_object": "supervised encoders are best at object-level recognition",
    "ssl_part": "self-supervised encoders beat the supervised one at part-level recognition",
    "cl_mim_part": "contrastive + MIM is better at part level than either alone",
    "backbone_part": "at part level the backbone feature beats the projector output (retrieval)",
}


_EMPTY = pd.DataFrame(columns=["test_top1", "test_r2", "map"], dtype=float)
NO_CI = "no test"  # the verdict of a comparison over one seed
CANNOT_TELL = "cannot tell"


CLAIM_COLUMNS = (
    "claim backbone task metric a b feature n_seeds mean_a mean_b diff sd_diff confidence ci_low "
    "ci_high p_t p_perm perm_can_reject family_size p_holm mde verdict"
).split()


def claim_row(runs, claim, backbone, task, metric, a, b, feature_a, feature_b, rep) -> dict | None:
    """metric(a) - metric(b) paired by seed (equihand.analysis.stats.paired), before the family's
    correction; None when either side is missing. `runs`: (encoder, feature, task, backbone) ->
    that probe's rows indexed by seed."""

    def values(enc, feat):
        return runs.get((enc, feat, task, backbone), _EMPTY)[metric]

    p = paired(values(a, feature_a), values(b, feature_b), confidence=1 - rep["alpha"])
    if not p.seeds:
        return None
    feature = feature_a if feature_a == feature_b else f"{feature_a} - {feature_b}"
    return {
        "claim": claim, "backbone": backbone, "task": task, "metric": metric, "a": a, "b": b,
        "feature": feature, "n_seeds": p.n, "mean_a": float(p.x.mean()),
        "mean_b": float(p.y.mean()), "diff": p.mean, "sd_diff": p.sd,
        "confidence": p.confidence, "ci_low": p.ci_low, "ci_high": p.ci_high, "p_t": p.p_t,
        "p_perm": p.p_perm, "perm_can_reject": p.n >= permutation_min_seeds(rep["alpha"]),
    }  # fmt: skip


def correct(table: pd.DataFrame, rep: dict) -> pd.DataFrame:
    """Holm-correct every comparison of `table` as one family; the verdicts and each one's
    minimum detectable effect (at Holm's first-step level, equihand.analysis.stats.judge)."""
    table = table.copy()
    tests = [_Test(r) for r in table.itertuples()]
    judged = judge(tests, [0.0] * len(tests), rep | {"max_seeds": MIN_SEEDS_FOR_TEST})
    table["family_size"] = [j.family_size for j in judged]
    table["p_holm"] = [j.p_holm for j in judged]
    table["mde"] = [j.mde for j in judged]
    rejected = pd.Series([j.rejected for j in judged], index=table.index, dtype=bool)
    table["verdict"] = CANNOT_TELL
    table.loc[rejected & (table["diff"] > 0), "verdict"] = "supports"
    table.loc[rejected & (table["diff"] < 0), "verdict"] = "contradicts"
    table.loc[table["n_seeds"] < MIN_SEEDS_FOR_TEST, "verdict"] = NO_CI
    return table


class _Test:
    """A claims row read as the fields `judge` uses."""

    def __init__(self, r):
        self.p_t, self.sd, self.n = r.p_t, r.sd_diff, r.n_seeds
        self.has_test = r.n_seeds >= MIN_SEEDS_FOR_TEST


def claims(runs: pd.DataFrame, rep: dict) -> pd.DataFrame:
    """Every paired comparison of the four claims that the runs allow (see the module doc)."""
    present = set(runs["encoder"])
    has_projector = sorted(
        set(runs.loc[runs["feature"] == "projector", "encoder"]), key=_encoder_key
    )
    tasks = set(runs["task"])
    by_probe = {
        key: g.set_index("seed")
        for key, g in runs.groupby(["encoder", "feature", "task", "backbone"])
    }
    rows = []
    for backbone in sorted(set(runs["backbone"])):

        def add(claim, task, metric, a, b, fa="backbone", fb="backbone", backbone=backbone):
            if task in tasks and {a, b} <= present:
                row = claim_row(by_probe, claim, backbone, task, metric, a, b, fa, fb, rep)
                if row is not None:
                    rows.append(row)

        for task, metric in POSE_CHECKS:
            for e in sorted(present - {RANDOM_ENCODER}, key=_encoder_key):
                add("pose_beats_random", task, metric, e, RANDOM_ENCODER)
            for a, b in EQUIVARIANT_PAIRS:
                add("equivariant_pose", task, metric, a, b)
        for task in ("gesture", *PART_TASKS):
            for e in sorted(present - {RANDOM_ENCODER}, key=_encoder_key):
                add("beats_random", task, "test_top1", e, RANDOM_ENCODER)
        for task in OBJECT_TASKS:
            for e in sorted(present - {SUPERVISED_ENCODER}, key=_encoder_key):
                add("supervised_object", task, "test_top1", SUPERVISED_ENCODER, e)
        for task in PART_TASKS:
            for e in (e for e in pretraining_objectives() if e in present):
                add("ssl_part", task, "test_top1", e, SUPERVISED_ENCODER)
            for e in (e for e in pretraining_objectives() if e.endswith(WITH_MIM)):
                add("cl_mim_part", task, "test_top1", e, e.removesuffix(WITH_MIM))
                add("cl_mim_part", task, "test_top1", e, "mim")
            for e in has_projector:
                add("backbone_part", task, "map", e, e, "backbone", "projector")
    return correct(pd.DataFrame(rows, columns=CLAIM_COLUMNS), rep)


def _encoder_key(name: str) -> tuple[int, str]:
    return (rank(name, encoders()), name)


def claim_sentences(table: pd.DataFrame) -> list[str]:
    """One plain sentence per claim, counted from the comparisons' verdicts."""
    out = []
    for claim, text in CLAIMS.items():
        rows = table[table["claim"] == claim]
        if rows.empty:
            out.append(f"*{_sentence_case(text)}*: not tested (the study lacks the encoders).")
            continue
        n, no_ci = len(rows), int((rows["verdict"] == NO_CI).sum())
        k = int((rows["verdict"] == "supports").sum())
        against = int((rows["verdict"] == "contradicts").sum())
        if no_ci == n:
            verdict = (
                f"**cannot be tested here**: a test needs at least {MIN_SEEDS_FOR_TEST} seeds, "
                "and every comparison has one"
            )
        elif k == n - no_ci:
            verdict = (
                "**holds here**: every comparison's corrected test rejects on the predicted side"
            )
        elif against == n - no_ci:
            verdict = (
                "**is reversed here**: every comparison's corrected test rejects the other way"
            )
        elif k == 0 and against == 0:
            verdict = (
                "**cannot be told from seed noise here**: no comparison's corrected test rejects"
            )
        elif k == 0:
            verdict = (
                f"**is not supported here**: none of the {n} comparisons supports it and "
                f"{against} contradict it"
            )
        else:
            verdict = (
                f"**holds only in part**: {k} of {n} comparisons support it and {against} "
                "contradict it"
            )
        if 0 < no_ci < n:
            verdict += f"; {no_ci} of the {n} have one seed, so no test"
        worst = rows.loc[rows["diff"].idxmin()]
        out.append(
            f"*{_sentence_case(text)}* {verdict} (the {n} comparisons: "
            f"{', '.join(_describe(r) for r in rows.itertuples())}; the least favourable is "
            f"{_describe(worst)})."
        )
    return out


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _describe(r) -> str:
    get = r.get if isinstance(r, pd.Series) else lambda k: getattr(r, k)
    what = f"{get('a')} vs {get('b')}" if get("a") != get("b") else get("a")
    ci = (
        f"[{get('ci_low'):+.3f}, {get('ci_high'):+.3f}], Holm p {get('p_holm'):.3f}"
        if get("n_seeds") >= MIN_SEEDS_FOR_TEST
        else "(one seed, no test)"
    )
    return (
        f"{what} on {get('task')} "
        f"{get('metric').replace('test_top1', 'top-1').replace('test_r2', 'R²')} "
        f"{get('diff'):+.3f} {ci}"
    )
