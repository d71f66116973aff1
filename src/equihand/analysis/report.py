"""`equihand report`: the written ablation report, with paired bootstrap CIs over seeds.

Reads runs.csv (written by `equihand aggregate`) and the PNGs written by `equihand figures`, and
writes into --out: `ablation.md` (figures linked by a path relative to --out), `ablation.html`
(self-contained: figures embedded as base64 data URIs) and `comparisons.csv` (one row per paired
comparison: each objective vs none, and equivariant vs invariant, per backbone and label
fraction). Every sentence of the answer is generated from the numbers.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from pathlib import Path

import pandas as pd

from equihand.analysis.aggregate import (
    KEYS,
    METRICS,
    ablation_table,
    display_table,
    markdown_table,
    to_markdown,
)
from equihand.analysis.part_aware import report_blocks
from equihand.analysis.stats import bootstrap_settings, paired
from equihand.errors import UserError
from equihand.io import atomic_write_text
from equihand.outputs import check_files, claim_files
from equihand.vocabulary import FIGURES, NO_PRETRAINING, in_order, percent, study_objectives

COLUMNS = (
    "backbone label_fraction a b n_seeds seeds unpaired pa_epe_a_cm pa_epe_b_cm seed_std_a_cm "
    "seed_std_b_cm diff_cm improvement_pct confidence ci_low_cm ci_high_cm beyond_noise"
).split()
QUESTION = (
    "Which pretraining objective gives the best encoder for 3D hand pose estimation: none "
    "(finetuning without pretraining), invariant (SimCLR: augmented views of an image map to the "
    "same embedding) or equivariant (PeCLR: embeddings transform with the geometric "
    "augmentation)? Each encoder is pretrained without labels, finetuned on a fraction of the "
    "labeled images and scored on the test split. The headline metric is PA-EPE (mean joint "
    "error after Procrustes alignment, cm; lower is better), and a gain is the relative PA-EPE "
    "improvement over `none`, as in PeCLR."
)
NOISE = {True: "larger than seed noise", False: "within seed noise"}


def read_runs(path: Path) -> pd.DataFrame:
    """runs.csv as written by `equihand aggregate`, checked."""
    try:
        runs = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable runs.csv ({e})") from None
    missing = [c for c in [*KEYS, "seed", *METRICS] if c not in runs.columns]
    if missing or runs.empty:
        raise UserError(f"{path}: expected runs.csv of `equihand aggregate` (missing {missing})")
    if runs.duplicated([*KEYS, "seed"]).any():
        raise UserError(f"{path}: the same objective/backbone/label_fraction/seed appears twice")
    return runs


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
        "seeds": _join(p.seeds),
        "unpaired": "; ".join(f"seed {_join(s)} only for {o}" for o, s in only if s),
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


def _join(items) -> str:
    return ", ".join(str(i) for i in items)


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
    cells = _join(f"`{r.objective}` at {percent(r.label_fraction)}" for r in rows.itertuples())
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


def _comparison_table(comps: pd.DataFrame) -> pd.DataFrame:
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
        f"Objectives: {_join(f'`{o}`' for o in runs['objective'].unique())} (`none` = finetuning "
        f"from {c['model']['init']} initialisation).",
        f"Backbones: {_join(grid['backbone'])}.",
        f"Seeds: {_join(grid['seed'])} ({len(runs)} runs in all).",
        f"Label fractions of the labeled split: {_join(map(percent, grid['label_fraction']))}.",
        f"Pretraining: {_training(pre)}, temperature {pre['temperature']:g}.",
        f"Finetuning: {_training(ft)}; the checkpoint with the lowest validation PA-EPE is kept.",
        "Test data are read once per run, by `equihand evaluate`; all selection uses validation.",
    ]
    for column in ("objective", "backbone", "seed", "label_fraction"):
        lacking = sorted(set(c["study"][column + "s"]) - set(runs[column]))
        if lacking:
            items.append(
                f"Missing: the config's `study.{column}s` lists {_join(lacking)}, not in runs.csv."
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
            f"Some seeds ran for only one objective ({_join(unpaired)}): those comparisons use "
            "the common seeds only, so their gain can differ from the ablation table's."
        )
    return text


def find_figures(folder: Path) -> list[Path]:
    """The PNGs of FIGURES present in `folder`, in FIGURES' order."""
    found = [folder / f"{name}.png" for name in FIGURES if (folder / f"{name}.png").is_file()]
    if not found:
        raise UserError(
            f"{folder}: no figures found; expected PNGs named {_join(FIGURES)} "
            "(written by `equihand figures`)"
        )
    return found


def _inline_html(text: str) -> str:
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render(blocks: list[tuple], out_dir: Path) -> tuple[str, str]:
    """Markdown and self-contained HTML of the same blocks: (kind, *content)."""
    md, body = [], []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            md.append(f"{'#' * int(kind[1])} {content[0]}\n")
            body.append(f"<{kind}>{_inline_html(content[0])}</{kind}>")
        elif kind == "p":
            md.append(content[0] + "\n")
            body.append(f"<p>{_inline_html(content[0])}</p>")
        elif kind == "ul":
            md.append("".join(f"- {item}\n" for item in content[0]))
            body.append(
                "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in content[0]) + "</ul>"
            )
        elif kind == "table":
            md.append(content[0])
            body.append(content[1].to_html(index=False, border=0))
        elif kind == "figure":
            png, caption = content
            rel = Path(os.path.relpath(png.resolve(), out_dir.resolve())).as_posix()
            md.append(f"![{png.stem}]({rel})\n\n*{caption}*\n")
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(caption)}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse;font-size:90%}td,th{padding:.2em .6em;"
        "border-bottom:1px solid #ccc;text-align:right}img{max-width:100%}"
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(blocks[0][1])}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    return "\n".join(md), page


def read_reference(path: Path) -> dict:
    try:
        reference = json.loads(Path(path).read_text())
        float(reference["test_pa_epe_cm"]), int(reference["candidates"])
        if "unaligned" in reference:  # absent from references written before it existed
            float(reference["unaligned"]["test_epe_cm"]), float(reference["unaligned"]["test_auc"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            f"{path}: not a reference.json written by `equihand reference` ({e!r})"
        ) from None
    return reference


OUTPUTS = ("ablation.md", "ablation.html", "comparisons.csv")


def write_report(
    runs_csv: Path,
    figures_dir: Path,
    out_dir: Path,
    config: dict,
    reference: Path | None = None,
    part_aware: tuple[Path, Path] | None = None,
    *,
    force: bool = False,
) -> pd.DataFrame:
    """Write ablation.md, ablation.html and comparisons.csv into `out_dir`; return comparisons.

    `part_aware`: (table path without suffix, figure PNG) of `equihand part-aware`, for its section.
    """
    outputs = [Path(out_dir) / name for name in OUTPUTS]
    check_files(outputs, "report", force=force)
    runs, figures = read_runs(runs_csv), find_figures(figures_dir)
    probe_blocks = report_blocks(*part_aware) if part_aware is not None else []
    ref = read_reference(reference) if reference is not None else None
    rep = config["report"]
    table = ablation_table(runs)
    comps = comparisons(
        runs, n_boot=rep["bootstrap_samples"], confidence=rep["confidence"], seed=rep["seed"]
    )
    blocks = [
        ("h1", "Self-supervised pretraining for 3D hand pose: ablation report"),
        ("h2", "Question"),
        ("p", QUESTION),
        ("h2", "Setup"),
        ("ul", setup(runs, config)),
        ("h2", "Ablation table"),
        ("p", "Mean ± standard deviation over seeds; the last column is the gain over none."),
        ("table", to_markdown(table), display_table(table)),
        *([("p", references_line(ref))] if ref is not None else []),
        ("h2", "Statistics"),
        *[("p", p) for p in statistics_text(comps, rep)],
        ("table", markdown_table(_comparison_table(comps)), _comparison_table(comps))
        if len(comps)
        else ("p", "No two objectives ran with the same backbone and label fraction."),
        ("h2", "Answer"),
        *[("p", p) for p in answer(table, comps)],
        *[("p", p) for p in label_effect_text(runs, rep)],
        *([("p", reference_text(table, ref))] if ref is not None else []),
        *(
            [("p", text)]
            if ref is not None and (text := unaligned_reference_text(table, ref))
            else []
        ),
        ("h2", "Figures"),
        *[("figure", png, FIGURES[png.stem]) for png in figures],
        *probe_blocks,
    ]
    md, page = render(blocks, Path(out_dir))
    claim_files(outputs, "report", force=force)
    atomic_write_text(Path(out_dir) / "ablation.md", md)
    atomic_write_text(Path(out_dir) / "ablation.html", page)
    atomic_write_text(Path(out_dir) / "comparisons.csv", comps.to_csv(index=False))
    return comps


def add_arguments(parser) -> None:
    parser.add_argument("--runs", required=True, help="runs.csv written by `equihand aggregate`")
    parser.add_argument("--figures", required=True, help="folder of `equihand figures` PNGs")
    parser.add_argument("--reference", help="reference.json of `equihand reference` (optional)")
    parser.add_argument(
        "--part-aware",
        nargs=2,
        metavar=("TABLE", "FIGURE"),
        help="table path without suffix and figure PNG of `equihand part-aware` (optional)",
    )
    parser.add_argument(
        "--out", required=True, help="folder for ablation.{md,html}, comparisons.csv"
    )


def run(args, config: dict) -> None:
    out = Path(args.out)
    reference = Path(args.reference) if args.reference else None
    part_aware = tuple(Path(p) for p in args.part_aware) if args.part_aware else None
    write_report(
        Path(args.runs), Path(args.figures), out, config, reference, part_aware, force=args.force
    )
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.html'}, {out / 'comparisons.csv'}")
