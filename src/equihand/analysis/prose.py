"""The report's sentences, each generated from the numbers: the question, the setup (from the
config), the statistics and how coarse they are, the answer per backbone and label fraction,
what fewer labels cost, and how the objectives compare with the references."""

from __future__ import annotations

import math

import pandas as pd

from equihand.analysis.comparisons import LABELS, OBJECTIVES, join
from equihand.vocabulary import MIM, NO_PRETRAINING, WITH_MIM, percent

QUESTION = (
    "Which pretraining objective gives the best encoder for 3D hand pose estimation: none "
    "(finetuning without pretraining), invariant (SimCLR: augmented views of an image map to the "
    "same embedding) or equivariant (PeCLR: embeddings transform with the geometric "
    "augmentation)? Each encoder is pretrained without labels, finetuned on a fraction of the "
    "labeled images and scored on the test split. The headline metric is PA-EPE (mean joint "
    "error after Procrustes alignment, cm; lower is better), and a gain is the relative PA-EPE "
    "improvement over `none`, as in PeCLR."
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def _evidence(c, rep: dict) -> str:
    """What the family's corrected test says of member `c`, with its interval and power."""
    if c.n_seeds == 0:
        return "no seed ran for both, so there is nothing to compare"
    paired = f" (seeds {c.seeds}; {c.unpaired})" if c.unpaired else ""
    if c.n_seeds == 1:
        return (
            f"with one seed{paired} there is no test and no interval, so this cannot be told "
            "apart from seed noise"
        )
    perm = f"exact permutation p {_p(c.p_perm)}"
    if not c.perm_can_reject:
        perm += f", which cannot go below {2 / 2**c.n_seeds:.2f} at {c.n_seeds} seeds"
    verdict = (
        "the corrected test rejects, so this is larger than seed noise"
        if c.beyond_noise
        else "the corrected test does not reject, so the study cannot tell"
    )
    text = (
        f"over {c.n_seeds} paired seeds{paired} the {c.confidence:.0%} t-interval of the "
        f"difference is {c.ci_low_cm:+.3f} to {c.ci_high_cm:+.3f} cm (paired t p {_p(c.p_t)}, "
        f"{perm}; Holm-corrected p {_p(c.p_holm)} over the report's {c.family_size} "
        f"comparisons): {verdict}. {_power(c, rep)}"
    )
    return text


def _power(c, rep: dict) -> str:
    """The member's minimum detectable effect and the seeds a target effect needs."""
    if c.mde_cm == 0:
        return "Every seed gave the same difference, so any nonzero effect is detectable"
    seeds = (
        f"more than {rep['max_seeds']} seeds"
        if math.isnan(c.seeds_for_target)
        else _plural(int(c.seeds_for_target), "seed")
    )
    text = (
        f"With this seed-to-seed SD of the differences ({c.sd_diff_cm:.3f} cm) the design "
        f"detects {c.mde_cm:.3f} cm ({c.mde_pct:.1f}%) with {rep['power']:.0%} power; "
        f"{c.target_gain_pct:g}% would take {seeds}"
    )
    if abs(c.diff_cm) < c.mde_cm and c.beyond_noise:
        text += (
            f"; the observed difference is below that, so a rerun would detect a true effect of "
            f"this size with less than {rep['power']:.0%} power"
        )
    elif abs(c.diff_cm) < c.mde_cm:
        text += "; the observed difference is smaller than the design can detect"
    if c.kind == OBJECTIVES and c.b == NO_PRETRAINING and c.mde_pct > rep["reference_gain_pct"]:
        text += (
            f"; it cannot detect even the {rep['reference_gain_pct']:g}% gain PeCLR reports on "
            "FreiHAND"
        )
    return text


def _delta(c) -> str:
    if c.n_seeds == 0 or c.diff_cm == 0:
        return f"{'not comparable with' if c.n_seeds == 0 else 'the same as'} `{c.b}`'s"
    word = "lower" if c.diff_cm > 0 else "higher"
    return f"{abs(c.improvement_pct):.1f}% ({abs(c.diff_cm):.3f} cm) {word} than `{c.b}`'s"


def answer(table: pd.DataFrame, comps: pd.DataFrame, rep: dict) -> list[str]:
    """One paragraph per backbone and label fraction, generated from the numbers."""
    paragraphs = []
    comps = comps[comps["kind"] == OBJECTIVES]
    for (backbone, fraction), t in table.groupby(["backbone", "label_fraction"], sort=True):
        here = comps[(comps["backbone"] == backbone) & (comps["label_fraction"] == fraction)]
        best = t.loc[t["pa_epe_cm_mean"].idxmin()]
        s = [
            f"**{backbone}, {percent(fraction)} of the labels.** `{best.objective}` has the lowest "
            f"mean PA-EPE ({best.pa_epe_cm_mean:.2f} cm, mean of {_plural(best.n_seeds, 'seed')})."
        ]
        if NO_PRETRAINING not in set(t["objective"]):
            s.append("There are no `none` runs, so no gain over no pretraining can be given.")
        for c in here[here["b"] == NO_PRETRAINING].itertuples():
            s.append(f"`{c.a}`'s PA-EPE is {_delta(c)}; {_evidence(c, rep)}.")
        eq_vs_inv = (here["a"] == "equivariant") & (here["b"] == "invariant")
        for c in here[eq_vs_inv].itertuples():
            if not c.beyond_noise:
                head = "This study cannot tell whether the equivariant objective beats the "
                head += "invariant one"
            elif c.diff_cm > 0:
                head = "The equivariant objective beats the invariant one"
            else:
                head = "The invariant objective beats the equivariant one"
            s.append(f"{head}: the equivariant PA-EPE is {_delta(c)}; {_evidence(c, rep)}.")
        for c in here[here["a"] == here["b"] + WITH_MIM].itertuples():
            s.append(
                f"Adding MIM to `{c.b}`: `{c.a}`'s PA-EPE is {_delta(c)}; {_evidence(c, rep)}."
            )
        for c in here[(here["b"] == MIM) & (here["a"] != MIM)].itertuples():
            s.append(
                f"Adding `{c.a.removesuffix(WITH_MIM)}` to MIM: `{c.a}`'s PA-EPE is {_delta(c)}; "
                f"{_evidence(c, rep)}."
            )
        if len(here) and not here["beyond_noise"].any():
            s.append(
                "No corrected test rejects here: this study cannot tell the objectives apart at "
                "this budget."
            )
        paragraphs.append(" ".join(s))
    return paragraphs


def reference_text(table: pd.DataFrame, reference: dict) -> str:
    """How the objectives compare with the constant-pose reference (`equihand reference`)."""
    ref = reference["test_pa_epe_cm"]
    head = (
        f"For reference, predicting one fixed training pose for every test image (the best of "
        f"{reference['candidates']} on validation) scores a PA-EPE of {ref:.2f} cm. "
    )
    none = (
        "No objective gets below it at any label fraction: no encoder has learned the hand "
        "pose at this budget, so the differences above are between models at chance level."
    )
    return head + _cells_text(table[table["pa_epe_cm_mean"] < ref], none, "Mean PA-EPE below it")


def _cells_text(rows: pd.DataFrame, none: str, some: str) -> str:
    """`none` when no (objective, label fraction) row passes, else `some` and the rows."""
    if rows.empty:
        return none
    cells = join(f"`{r.objective}` at {percent(r.label_fraction)}" for r in rows.itertuples())
    return f"{some}: {cells}."


def references_line(reference: dict) -> str:
    """The references of the table's columns, printed beside it."""
    line = (
        f"References on the test split (`equihand reference`): one fixed training pose, PA-EPE "
        f"{reference['test_pa_epe_cm']:.2f} cm"
    )
    un = reference.get("unaligned")
    if un is not None:
        line += (
            f"; the mean training pose at the mean training root depth on the ray through the "
            f"image centre, EPE {un['test_epe_cm']:.2f} cm and AUC {un['test_auc']:.3f}"
        )
    return line + "."


def unaligned_reference_text(table: pd.DataFrame, reference: dict) -> str | None:
    """How the objectives' EPE and AUC compare with the unaligned reference (None without one)."""
    un = reference.get("unaligned")
    if un is None:
        return None
    epe, auc = un["test_epe_cm"], un["test_auc"]
    head = (
        f"For the unaligned measures, predicting the mean training pose at the mean training "
        f"root depth on the ray through the image centre (with each image's intrinsics and bone "
        f"length, which the models are given too) scores an EPE of {epe:.2f} cm and an AUC of "
        f"{auc:.3f}. "
    )
    better = table[(table["epe_cm_mean"] < epe) & (table["auc_mean"] > auc)]
    none = (
        "No objective has a lower mean EPE and a higher mean AUC at any label fraction: no "
        "model places the hand in 3D better than where a hand usually is."
    )
    return head + _cells_text(better, none, "Mean EPE below it and mean AUC above it")


def label_effect_text(comps: pd.DataFrame, rep: dict) -> list[str]:
    """Per backbone and objective: what fewer labels cost, the family's `labels` members
    (d_s = PA-EPE(smaller fraction, s) - PA-EPE(largest, s); positive: fewer labels are worse)."""
    out = []
    for c in comps[comps["kind"] == LABELS].itertuples():
        if c.n_seeds == 0:
            continue
        if c.n_seeds == 1:
            out.append(
                f"`{c.a}` ({c.backbone}) at {percent(c.label_fraction)} of the labels against "
                f"{percent(c.a_label_fraction)}: {c.diff_cm:+.2f} cm PA-EPE (1 seed, no test)."
            )
            continue
        what = (
            "fewer labels are worse" if c.beyond_noise and c.diff_cm > 0
            else "fewer labels are better" if c.beyond_noise
            else "the study cannot tell"
        )  # fmt: skip
        out.append(
            f"`{c.a}` ({c.backbone}) at {percent(c.label_fraction)} of the labels against "
            f"{percent(c.a_label_fraction)}: PA-EPE {c.diff_cm:+.3f} cm over {c.n_seeds} seeds, "
            f"{c.confidence:.0%} t-interval {c.ci_low_cm:+.3f} to {c.ci_high_cm:+.3f} cm, "
            f"exact permutation p {_p(c.p_perm)}, Holm-corrected p {_p(c.p_holm)}, minimum "
            f"detectable effect {c.mde_cm:.3f} cm ({what})."
        )
    if out:
        out.insert(
            0,
            "What the labels are worth: pretraining can only show a label-efficiency gain where "
            "fewer labels cost accuracy without it (`none` below).",
        )
    return out


def _training(t: dict) -> str:
    if t.get("steps"):
        length = f"{t['steps']} optimiser steps at every label fraction"
    else:
        length = _plural(t["epochs"], "epoch")
    steps = f" (at most {t['max_steps']} steps)" if t["max_steps"] else ""
    batch = f"batch {t['batch_size']} x {t['accumulate']}, {t['optimizer']} at lr {t['lr']:g}"
    return f"{length}{steps}, {batch}"


def setup(runs: pd.DataFrame, config: dict) -> list[str]:
    """The study setup as bullet points, from the config and the runs actually present."""
    c, pre, ft, prep = config, config["pretrain"], config["finetune"], config["prepare"]
    if c["dataset"] == "synth":
        data = (
            f"synthetic hands (`equihand synth`): {c['synth']['n_train']} training and "
            f"{c['synth']['n_eval']} test images of {c['synth']['image_size']} px"
        )
    else:
        data = "FreiHAND: its training set, and its evaluation set as the test split"
    grid = {k: sorted(set(runs[k])) for k in ("backbone", "seed", "label_fraction")}
    items = [
        f"Dataset: {data}; models train at {prep['resolution']} px.",
        f"Splits: {prep['val_fraction']:g} of the training hand groups are held out for "
        f"validation and {prep['labeled_fraction']:g} are labeled; pretraining reads no labels.",
        f"Objectives: {join(f'`{o}`' for o in runs['objective'].unique())} (`none` = finetuning "
        f"from {c['model']['init']} initialisation).",
        f"Backbones: {join(grid['backbone'])}.",
        f"Seeds: {join(grid['seed'])} ({len(runs)} runs in all).",
        f"Label fractions of the labeled split: {join(map(percent, grid['label_fraction']))}.",
        f"Pretraining: {_training(pre)}, temperature {pre['temperature']:g}.",
        f"Finetuning: {_training(ft)}; the checkpoint with the lowest validation PA-EPE is kept.",
        "Test data are read once per run, by `equihand evaluate`; all selection uses validation.",
    ]
    for column in ("objective", "backbone", "seed", "label_fraction"):
        lacking = sorted(set(c["study"][column + "s"]) - set(runs[column]))
        if lacking:
            items.append(
                f"Missing: the config's `study.{column}s` lists {join(lacking)}, not in runs.csv."
            )
    return items


def statistics_text(comps: pd.DataFrame, rep: dict) -> list[str]:
    """How the comparisons are tested and corrected, which claims form the family, and what the
    power analysis assumes (docs/statistics.md says why)."""
    alpha, conf = rep["alpha"], 1 - rep["alpha"]
    tested = comps[comps["n_seeds"] >= 2]
    text = [
        "For arms a and b, d_s = PA-EPE(b, s) − PA-EPE(a, s) for every seed s both ran "
        "(pretraining seed s feeds finetuning seed s, so seeds are paired); positive d means a is "
        "better. Gain is 100 · mean(d) / mean PA-EPE(b). Each difference is tested with the "
        f"paired t-test (df = seeds − 1; its {conf:.0%} t-interval is printed) and, as the "
        "assumption-free check, the exact sign-flip permutation test over all 2^n sign "
        "assignments.",
        f"The {_plural(len(tested), 'comparison')} with at least two seeds form one family: "
        + (join(_member(c) for c in tested.itertuples()) or "none")
        + f". Their t-test p-values are corrected together with Holm's step-down method at "
        f"{alpha:g}, and a difference is called larger than seed noise only when its corrected "
        "p-value is below it; otherwise the study cannot tell, whatever the mean says. The "
        "t-intervals are per comparison, not adjusted for the family.",
        f"Power: from each comparison's own SD of d over seeds, taken as the true SD, the minimum "
        f"detectable effect (MDE) is the smallest true difference the paired t-test detects with "
        f"{rep['power']:.0%} probability at {alpha:g} / {max(len(tested), 1)} (the level of "
        "Holm's first step, so it holds even when that comparison is the family's only real "
        f"effect), and 'seeds for {rep['target_gain_pct']:g}%' is how many seeds would detect a "
        f"difference of {rep['target_gain_pct']:g}% of b's PA-EPE. An SD from few seeds is itself "
        "uncertain, so both are estimates.",
    ]
    small = sorted(set(tested.loc[~tested["perm_can_reject"], "n_seeds"]))
    if small:
        text.append(
            f"With {join(small)} seeds the permutation test cannot reject at {alpha:g} whatever "
            f"the data (its smallest two-sided p is 2 / 2^n: {2 / 2 ** small[0]:.3f} at "
            f"{small[0]}); those p-values are marked * and the verdicts rest on the t-test alone."
        )
    if (comps["n_seeds"] == 1).any():
        text.append("With 1 seed there is no test and no interval: those rows say 'no test'.")
    unpaired = [_member(c) for c in comps.itertuples() if c.unpaired]
    if unpaired:
        text.append(
            f"Some seeds ran for only one arm ({join(unpaired)}): those comparisons use the "
            "common seeds only, so their gain can differ from the ablation table's."
        )
    return text


def _member(c) -> str:
    if c.kind == LABELS:
        return f"{c.a} {percent(c.a_label_fraction)} vs {percent(c.label_fraction)}"
    return f"{c.a} vs {c.b} at {percent(c.label_fraction)}"
