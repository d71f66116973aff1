"""`equihand part-aware`: the part-aware table, figure and claims from every `equihand probe` run.

Reads the probe.csv files, writes ``<table>.csv`` (every run's rows), ``<table>.md`` (mean ± std
over seeds per encoder and feature), ``<table>_claims.csv`` (the paired comparisons below) and
the figure ``<figure>.png`` / ``.pdf``.

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

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from equihand.analysis.aggregate import markdown_table
from equihand.analysis.figures import save_figure
from equihand.analysis.stats import MIN_SEEDS_FOR_CI, bootstrap_settings, paired
from equihand.errors import UserError
from equihand.io import atomic_path, atomic_write_text
from equihand.outputs import check_files, claim_files
from equihand.probe.probe import COLUMNS
from equihand.vocabulary import (
    RANDOM_ENCODER,
    SUPERVISED_ENCODER,
    encoders,
    in_order,
    pretraining_objectives,
    rank,
)

OBJECT_TASKS, PART_TASKS = ("gesture", "orientation"), ("part", "finger")
REGRESSION_TASKS = ("pose2d",)  # ridge regression, scored by test R^2 (equihand.probe.probe)
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
INTRO = (
    "Do the encoders represent parts (fingers) better than whole hands? Each encoder is frozen; "
    "a linear probe reads its mean-pooled feature of the whole image (object level: gesture, "
    "binned in-plane orientation) or of a crop centred on one keypoint (part level: wrist or "
    "fingertip; finger identity), trained on the labeled split, its epoch chosen on the val split "
    "and scored on the test split (hand identities never shared between them); retrieval mAP "
    "ranks the other test items by cosine similarity. Supervised = the `none` run after pose "
    "finetuning on the most labels; random = an untrained encoder. The claims of Zhu et al. "
    "(part-aware SSL) are tested as paired differences over seeds with bootstrap CIs."
)
CAPTION = (
    "Frozen encoders probed at object level (whole image: gesture, orientation) and part level "
    "(keypoint crops: wrist/fingertip, finger identity): linear-probe test top-1 (epoch chosen on "
    "validation) and test retrieval mAP, backbone features; mean ± std over seeds."
)


def load_probe_runs(paths: list[Path]) -> pd.DataFrame:
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise UserError(f"{path}: not a readable probe.csv ({e})") from None
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise UserError(f"{path}: missing columns {missing}; expected `equihand probe` output")
        frames.append(frame[COLUMNS])
    if not frames:
        raise UserError("no probe.csv given")
    runs = pd.concat(frames, ignore_index=True)
    dup = runs.duplicated(["encoder", "backbone", "seed", "feature", "task"])
    if dup.any():
        row = runs[dup].iloc[0]
        raise UserError(
            f"encoder {row['encoder']} / {row['backbone']} / seed {row['seed']} appears in more "
            "than one probe.csv"
        )
    return sort_encoders(runs)


def sort_encoders(df: pd.DataFrame) -> pd.DataFrame:
    order = in_order(df["encoder"], encoders())
    key = df["encoder"].map({e: i for i, e in enumerate(order)})
    return (
        df.assign(_k=key)
        .sort_values(["_k", "backbone", "feature", "task", "seed"])
        .drop(columns="_k")
        .reset_index(drop=True)
    )


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per encoder, backbone, feature and task."""
    g = runs.groupby(["encoder", "backbone", "feature", "task"], sort=False)
    out = g.agg(
        level=("level", "first"),
        n_seeds=("seed", "nunique"),
        top1=("test_top1", "mean"),
        top1_std=("test_top1", "std"),
        map=("map", "mean"),
        map_std=("map", "std"),
        r2=("test_r2", "mean"),
        r2_std=("test_r2", "std"),
    ).reset_index()
    return out.fillna({"top1_std": 0.0, "map_std": 0.0, "r2_std": 0.0})


def display_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: encoder x feature; columns: top-1 per task and mAP of the part tasks."""
    s = summary(runs)
    tasks = [t for t in (*OBJECT_TASKS, *PART_TASKS) if t in set(s["task"])]
    rows = []
    for (enc, bb, feat), cell in s.groupby(["encoder", "backbone", "feature"], sort=False):
        by = cell.set_index("task")
        row = {"encoder": enc, "backbone": bb, "feature": feat, "seeds": int(by["n_seeds"].max())}
        for t in tasks:
            if t in by.index:
                row[f"{t} top-1"] = f"{by.at[t, 'top1']:.3f} ± {by.at[t, 'top1_std']:.3f}"
        for t in (t for t in REGRESSION_TASKS if t in by.index):
            row[f"{t} R²"] = f"{by.at[t, 'r2']:.3f} ± {by.at[t, 'r2_std']:.3f}"
        for t in (t for t in PART_TASKS if t in by.index):
            row[f"{t} mAP"] = f"{by.at[t, 'map']:.3f} ± {by.at[t, 'map_std']:.3f}"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def chance_text(runs: pd.DataFrame) -> str:
    """Top-1 without looking at the image, per task: uniform guess and most frequent class."""
    parts = []
    for task in (*OBJECT_TASKS, *PART_TASKS):
        sel = runs[runs["task"] == task]
        if not sel.empty:
            n, majority = sel["n_classes"].iloc[0], sel["test_majority"].iloc[0]
            parts.append(f"{task} {1 / n:.3f} / {majority:.3f} ({n} classes)")
    return (
        "Top-1 without looking at the image (uniform guess / always the most frequent test "
        "class): " + ", ".join(parts) + "."
    )


def report_blocks(table: Path, figure: Path) -> list[tuple]:
    """The ablation report's section (equihand.analysis.report.render blocks) from this step's
    outputs."""
    table = Path(table)
    runs = load_probe_runs([table.with_suffix(".csv")])
    claims_table = read_claims(table.with_name(table.name + "_claims.csv"))
    if not Path(figure).is_file():
        raise UserError(f"{figure}: missing; written by `equihand part-aware`")
    shown = display_table(runs)
    return [
        ("h2", "Part-aware probe"),
        ("p", INTRO),
        ("p", chance_text(runs)),
        ("table", markdown_table(shown), shown),
        *[("p", p) for p in claim_sentences(claims_table)],
        ("figure", Path(figure), CAPTION),
    ]


# --- claims ------------------------------------------------------------------------------------


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


# --- figure ------------------------------------------------------------------------------------


def plot(runs: pd.DataFrame) -> plt.Figure:
    data = runs[runs["feature"] == "backbone"].copy()
    data["level task"] = data["level"] + ": " + data["task"]
    order = in_order(data["encoder"], encoders())
    hue_order = [f"object: {t}" for t in OBJECT_TASKS] + [f"part: {t}" for t in PART_TASKS]
    hue_order = [h for h in hue_order if h in set(data["level task"])]
    palette = dict(zip(hue_order, sns.color_palette("Paired", 4)[: len(hue_order)], strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for ax, (metric, label) in zip(
        axes, [("test_top1", "linear-probe test top-1"), ("map", "test retrieval mAP")], strict=True
    ):
        sns.barplot(data, x="encoder", y=metric, hue="level task", order=order,
                    hue_order=hue_order, palette=palette, errorbar="sd", capsize=0.1,
                    ax=ax)  # fmt: skip
        ax.set(xlabel="encoder", ylabel=label, title=label)
        ax.tick_params(axis="x", rotation=30)
        ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    fig.suptitle(
        "Object level vs part level per encoder (backbone features; mean ± std over seeds)"
    )
    return fig


# --- the step ----------------------------------------------------------------------------------


def output_paths(table: Path, figure: Path) -> list[Path]:
    """The files of `write`: the table's .csv, .md and _claims.csv, the figure's .png and .pdf."""
    table, figure = Path(table), Path(figure)
    return [
        table.with_suffix(".csv"),
        table.with_suffix(".md"),
        table.with_name(table.name + "_claims.csv"),
        figure.with_name(figure.name + ".png"),
        figure.with_name(figure.name + ".pdf"),
    ]


def write(
    paths: list[Path], table: Path, figure: Path, config: dict, *, force: bool = False
) -> pd.DataFrame:
    table, figure = Path(table), Path(figure)
    outputs = output_paths(table, figure)
    check_files(outputs, "part-aware", force=force)
    runs = load_probe_runs(paths)
    claims_table = claims(runs, config["report"])
    claim_files(outputs, "part-aware", force=force)
    with atomic_path(table.with_suffix(".csv")) as tmp:
        runs.to_csv(tmp, index=False, float_format="%.6f")
    atomic_write_text(table.with_suffix(".md"), markdown_table(display_table(runs)))
    with atomic_path(table.with_name(table.name + "_claims.csv")) as tmp:
        claims_table.to_csv(tmp, index=False, float_format="%.6f")
    with plt.rc_context():
        sns.set_theme(style="whitegrid", context="paper")
        save_figure(plot(runs), figure.parent, figure.name)
    return claims_table


def read_claims(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable claims CSV ({e})") from None
    missing = [c for c in CLAIM_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing}; written by `equihand part-aware`")
    return table


def add_arguments(parser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="probe.csv of `equihand probe`")
    parser.add_argument(
        "--table", required=True, help="table path without suffix (.csv, .md, _claims.csv)"
    )
    parser.add_argument("--figure", required=True, help="figure path without suffix (.png, .pdf)")


def run(args, config: dict) -> None:
    table = write(
        [Path(p) for p in args.runs], Path(args.table), Path(args.figure), config, force=args.force
    )
    for sentence in claim_sentences(table):
        print(sentence)
