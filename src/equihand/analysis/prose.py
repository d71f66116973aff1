"""The report's sentences, each generated from the numbers: the question, the setup (from the
config), the statistics and how coarse they are, the answer per backbone and label fraction,
what fewer labels cost, and how the objectives compare with the references."""

from __future__ import annotations

import math

import pandas as pd

from equihand.analysis.comparisons import NOISE, join
from equihand.analysis.stats import bootstrap_settings, paired
from equihand.vocabulary import NO_PRETRAINING, percent

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


def _evidence(c) -> str:
    """How the difference `c` compares with seed noise, in words."""
    if c.n_seeds == 0:
        return "no seed ran for both objectives, so there is nothing to compare"
    paired = f" (seeds {c.seeds}; {c.unpaired})" if c.unpaired else ""
    if c.n_seeds == 1:
        return f"with one seed{paired} there is no CI, so this cannot be told apart from seed noise"
    verdict = "so this is " if c.beyond_noise else "which contains 0: "
    return (
        f"the {c.confidence:.0%} CI of the difference over {c.n_seeds} paired seeds{paired} is "
        f"{c.ci_low_cm:+.2f} to {c.ci_high_cm:+.2f} cm, {verdict}{NOISE[c.beyond_noise]}"
    )


def _delta(c) -> str:
    if c.n_seeds == 0 or c.diff_cm == 0:
        return f"{'not comparable with' if c.n_seeds == 0 else 'the same as'} `{c.b}`'s"
    word = "lower" if c.diff_cm > 0 else "higher"
    return f"{abs(c.improvement_pct):.1f}% ({abs(c.diff_cm):.2f} cm) {word} than `{c.b}`'s"


def answer(table: pd.DataFrame, comps: pd.DataFrame) -> list[str]:
    """One paragraph per backbone and label fraction, generated from the numbers."""
    paragraphs = []
    for (backbone, fraction), t in table.groupby(["backbone", "label_fraction"], sort=True):
        here = comps[(comps["backbone"] == backbone) & (comps["label_fraction"] == fraction)]
        best = t.loc[t["pa_epe_cm_mean"].idxmin()]
        s = [
            f"**{backbone}, {percent(fraction)} of the labels.** `{best.objective}` has the lowest "
            f"PA-EPE ({best.pa_epe_cm_mean:.2f} cm, mean of {_plural(best.n_seeds, 'seed')})."
        ]
        if NO_PRETRAINING not in set(t["objective"]):
            s.append("There are no `none` runs, so no gain over no pretraining can be given.")
        for c in here[here["b"] == NO_PRETRAINING].itertuples():
            s.append(f"`{c.a}`'s PA-EPE is {_delta(c)}; {_evidence(c)}.")
        eq_vs_inv = (here["a"] == "equivariant") & (here["b"] == "invariant")
        for c in here[eq_vs_inv].itertuples():
            if not c.beyond_noise:
                head = "This study cannot say whether the equivariant objective beats the "
                head += "invariant one"
            elif c.diff_cm > 0:
                head = "The equivariant objective beats the invariant one"
            else:
                head = "The invariant objective beats the equivariant one"
            s.append(f"{head}: the equivariant PA-EPE is {_delta(c)}; {_evidence(c)}.")
        for c in here[here["a"] == here["b"] + "+mim"].itertuples():
            s.append(f"Adding MIM to `{c.b}`: `{c.a}`'s PA-EPE is {_delta(c)}; {_evidence(c)}.")
        if len(here) and not here["beyond_noise"].any():
            s.append(
                "No difference here is larger than seed noise: this study cannot tell the "
                "objectives apart at this budget."
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


def label_effect_text(runs: pd.DataFrame, rep: dict) -> list[str]:
    """Per backbone and objective: what fewer labels cost, each smaller label fraction against
    the largest, paired by seed with the report's bootstrap CI (d_s = PA-EPE(small, s) -
    PA-EPE(largest, s); positive: fewer labels are worse)."""
    out = []
    for (backbone, objective), cell in runs.groupby(["backbone", "objective"], sort=False):
        fractions = sorted(set(cell["label_fraction"]))
        if len(fractions) < 2:
            continue
        by = {
            f: cell[cell["label_fraction"] == f].set_index("seed")["pa_epe_cm"] for f in fractions
        }
        top = by[fractions[-1]]
        parts = []
        for f in fractions[:-1]:
            p = paired(by[f], top, **bootstrap_settings(rep))
            if not p.seeds:
                continue
            d, lo, hi = p.diff, p.ci_low, p.ci_high
            if not p.has_ci:
                parts.append(f"{percent(f)}: {d.mean():+.2f} cm (1 seed, no CI)")
                continue
            verdict = (
                "fewer labels are worse beyond seed noise" if lo > 0
                else "fewer labels are better beyond seed noise" if hi < 0
                else "within seed noise"
            )  # fmt: skip
            parts.append(
                f"{percent(f)}: {d.mean():+.2f} cm over {len(p.seeds)} seeds, "
                f"{rep['confidence']:.0%} CI {lo:+.2f} to {hi:+.2f} cm ({verdict})"
            )
        if parts:
            out.append(
                f"`{objective}` ({backbone}) with fewer labels than {percent(fractions[-1])}, "
                f"PA-EPE minus that at {percent(fractions[-1])}: " + "; ".join(parts) + "."
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


def statistics_text(comps: pd.DataFrame, report: dict) -> list[str]:
    """How the comparisons are computed, and how coarse a bootstrap over so few seeds is."""
    conf = report["confidence"]
    text = [
        "For objectives a and b at the same backbone and label fraction, d_s = PA-EPE(b, s) − "
        "PA-EPE(a, s) for every seed s both ran (pretraining seed s feeds finetuning seed s, so "
        "seeds are paired); positive d means a is better. Gain is 100 · mean(d) / mean PA-EPE(b). "
        f"The {conf:.0%} CI is a percentile bootstrap of mean(d): the seeds are resampled with "
        f"replacement {report['bootstrap_samples']} times (generator seed {report['seed']}). Seed "
        "noise is each objective's standard deviation over seeds. A difference is called larger "
        "than seed noise only if its CI excludes 0."
    ]
    for n in sorted(set(comps["n_seeds"])):
        if n == 1:
            text.append("With 1 seed there is no CI, and no way to tell a gain from seed noise.")
        if n < 2:
            continue
        note = (
            f"With {n} seeds the bootstrap can draw only {math.comb(2 * n - 1, n)} distinct "
            "resamples, so the CI is coarse and likely narrower than the true uncertainty"
        )
        if n**-n > (1 - conf) / 2:  # the all-same-seed resamples fill each tail
            note += (
                f"; at {conf:.0%} it is the range of the {n} per-seed differences, so it excludes "
                "0 exactly when all per-seed differences share one nonzero sign"
            )
        text.append(note + ".")
    unpaired = [
        f"{c.a} vs {c.b} at {percent(c.label_fraction)}" for c in comps.itertuples() if c.unpaired
    ]
    if unpaired:
        text.append(
            f"Some seeds ran for only one objective ({join(unpaired)}): those comparisons use "
            "the common seeds only, so their gain can differ from the ablation table's."
        )
    return text
