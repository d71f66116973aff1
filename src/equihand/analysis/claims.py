"""The claims of the part-aware probe, each tested as paired comparisons over seeds
(equihand.analysis.stats.paired) of the encoders' probe scores, and the sentence that sums up
each claim.

The claims of Zhu et al. tested here, each as paired differences over seeds with a percentile
bootstrap CI (equihand.analysis.stats; `report.*` settings), after a sanity check (0: e - random,
top-1 of gesture, part and finger, for every trained encoder e) and the pose-sensitive checks the
default study needs (P: e - random on orientation top-1 and pose2d R^2, for every trained encoder
e; E: equivariant - invariant, and equivariant+mim - invariant+mim, on the same two, which tests
PeCLR's argument that invariance to rotation discards the orientation that equivariance keeps):

1. object level, supervised is best: supervised - e, gesture (and orientation) top-1, for every
   other encoder e;
2. part level, self-supervised beats supervised: e - supervised, part and finger top-1, for each
   self-supervised encoder e;
3. contrastive + MIM is best at part level: X+mim - X and X+mim - mim, part and finger top-1;
4. part level, the backbone beats the projector: backbone - projector, part and finger retrieval
   mAP, for every encoder with a projection head.

A comparison supports a claim when its CI lies entirely on the predicted side of 0, contradicts it
when it lies entirely on the other side, and is within seed noise otherwise; over one seed it has
no CI (a CI needs at least two) and says nothing either way.
"""

from __future__ import annotations

import pandas as pd

from equihand.analysis.stats import MIN_SEEDS_FOR_CI, bootstrap_settings, paired
from equihand.probe.sets import OBJECT_TASKS, PART_TASKS
from equihand.vocabulary import (
    RANDOM_ENCODER,
    SUPERVISED_ENCODER,
    encoders,
    pretraining_objectives,
    rank,
)

# the pose-sensitive frozen checks: (task, metric)
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


NO_CI = "no CI"  # the verdict of a comparison over one seed


CLAIM_COLUMNS = (
    "claim backbone task metric a b feature n_seeds mean_a mean_b diff confidence ci_low ci_high "
    "verdict"
).split()


def claim_row(runs, claim, backbone, task, metric, a, b, feature_a, feature_b, rep) -> dict | None:
    """metric(a) - metric(b) paired by seed (equihand.analysis.stats.paired); None when either side
    is missing. The verdict says which side of 0 the CI lies on; without a CI (one seed), none."""

    def values(enc, feat):
        sel = runs[(runs["encoder"] == enc) & (runs["feature"] == feat) & (runs["task"] == task)]
        return sel[sel["backbone"] == backbone].set_index("seed")[metric]

    p = paired(values(a, feature_a), values(b, feature_b), **bootstrap_settings(rep))
    if not p.seeds:
        return None
    lo, hi = p.ci_low, p.ci_high
    verdict = (
        NO_CI if not p.has_ci
        else "supports" if lo > 0
        else "contradicts" if hi < 0
        else "within seed noise"
    )  # fmt: skip
    feature = feature_a if feature_a == feature_b else f"{feature_a} - {feature_b}"
    return {
        "claim": claim, "backbone": backbone, "task": task, "metric": metric, "a": a, "b": b,
        "feature": feature, "n_seeds": len(p.seeds), "mean_a": float(p.x.mean()),
        "mean_b": float(p.y.mean()), "diff": float(p.diff.mean()),
        "confidence": rep["confidence"], "ci_low": lo, "ci_high": hi, "verdict": verdict,
    }  # fmt: skip


def claims(runs: pd.DataFrame, rep: dict) -> pd.DataFrame:
    """Every paired comparison of the four claims that the runs allow (see the module doc)."""
    present = set(runs["encoder"])
    has_projector = sorted(
        set(runs.loc[runs["feature"] == "projector", "encoder"]), key=_encoder_key
    )
    tasks = set(runs["task"])
    rows = []
    for backbone in sorted(set(runs["backbone"])):

        def add(claim, task, metric, a, b, fa="backbone", fb="backbone", backbone=backbone):
            if task in tasks and {a, b} <= present:
                row = claim_row(runs, claim, backbone, task, metric, a, b, fa, fb, rep)
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
            for e in (e for e in pretraining_objectives() if e.endswith("+mim")):
                add("cl_mim_part", task, "test_top1", e, e.removesuffix("+mim"))
                add("cl_mim_part", task, "test_top1", e, "mim")
            for e in has_projector:
                add("backbone_part", task, "map", e, e, "backbone", "projector")
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


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
                f"**cannot be tested here**: a CI needs at least {MIN_SEEDS_FOR_CI} seeds, and "
                "every comparison has one"
            )
        elif k == n - no_ci:
            verdict = "**holds here**: every comparison's CI lies on the predicted side of 0"
        elif against == n - no_ci:
            verdict = "**is reversed here**: every comparison's CI lies on the other side of 0"
        elif k == 0 and against == 0:
            verdict = "**cannot be told from seed noise here**: every CI contains 0"
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
            verdict += f"; {no_ci} of the {n} have one seed, so no CI"
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
        f"[{get('ci_low'):+.3f}, {get('ci_high'):+.3f}]"
        if get("n_seeds") >= MIN_SEEDS_FOR_CI
        else "(one seed, no CI)"
    )
    return (
        f"{what} on {get('task')} "
        f"{get('metric').replace('test_top1', 'top-1').replace('test_r2', 'R²')} "
        f"{get('diff'):+.3f} {ci}"
    )
