"""The probe's results over runs: every `equihand probe` run's probe.csv read and checked, summed
up per encoder, feature and task (mean ± std over seeds), and the report's part-aware section
from the files `equihand part-aware` writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equihand.analysis.claims import CLAIM_COLUMNS, claim_sentences
from equihand.analysis.document import markdown_table
from equihand.errors import UserError
from equihand.probe.linear import COLUMNS
from equihand.probe.sets import OBJECT_TASKS, PART_TASKS, REGRESSION_TASKS
from equihand.vocabulary import encoders, in_order

INTRO = (
    "Do the encoders represent parts (fingers) better than whole hands? Each encoder is frozen; "
    "a linear probe reads its mean-pooled feature of the whole image (object level: gesture, "
    "binned in-plane orientation) or of a crop centred on one keypoint (part level: wrist or "
    "fingertip; finger identity), trained on the labeled split, its epoch chosen on the val split "
    "and scored on the test split (hand identities never shared between them); retrieval mAP "
    "ranks the other test items by cosine similarity. Supervised = the `none` run after pose "
    "finetuning on the most labels; random = an untrained encoder. The claims of Zhu et al. "
    "(part-aware SSL) are tested as paired differences over seeds: paired t-tests with their "
    "t-intervals, Holm-corrected over this section's comparisons as one family (apart from the "
    "ablation comparisons above), with the exact permutation p-values beside them in "
    "`part_aware_claims.csv`."
)


CAPTION = (
    "Frozen encoders probed at object level (whole image: gesture, orientation) and part level "
    "(keypoint crops: wrist/fingertip, finger identity): linear-probe test top-1 (epoch chosen on "
    "validation) and test retrieval mAP, backbone features; mean ± std over seeds."
)


def load_probe_runs(paths: list[Path]) -> pd.DataFrame:
    frames = []
    for path in paths:
        frame = _read_csv(path, "probe.csv", COLUMNS, "expected `equihand probe` output")
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
        ("p", family_text(claims_table)),
        *[("p", p) for p in claim_sentences(claims_table)],
        ("figure", Path(figure), CAPTION),
    ]


def family_text(claims: pd.DataFrame) -> str:
    """The probe family's size, level and how far its power reaches."""
    tested = claims[claims["n_seeds"] >= 2]
    if tested.empty:
        return "No comparison has two seeds, so no claim can be tested."
    seeds = sorted(set(tested["n_seeds"]))
    return (
        f"The family: {len(tested)} comparisons over {', '.join(map(str, seeds))} seeds, "
        f"Holm-corrected together; the minimum detectable differences (at `report.power`, Holm's "
        f"first-step level, from each comparison's SD over seeds) range from "
        f"{tested['mde'].min():.3f} to {tested['mde'].max():.3f} in the metric's units."
    )


def read_claims(path: Path) -> pd.DataFrame:
    return _read_csv(path, "claims CSV", CLAIM_COLUMNS, "written by `equihand part-aware`")


def _read_csv(path: Path, what: str, columns: list[str], hint: str) -> pd.DataFrame:
    """A CSV with at least `columns`, or a UserError naming the file (`what` it should be)."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable {what} ({e})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing}; {hint}")
    return table
