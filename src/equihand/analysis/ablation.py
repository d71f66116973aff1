"""The ablation table: one row per objective x backbone x label fraction, from the runs'
metrics.json (`equihand evaluate`): EPE, PA-EPE (cm), AUC and PA-AUC as mean and standard
deviation over seeds (ddof=1; 0 for a single seed), the number of seeds, and the relative PA-EPE
improvement over `none` (same backbone and fraction) in percent, PeCLR's headline measure:
100 * (PA-EPE_none - PA-EPE) / PA-EPE_none. Shown as Markdown and LaTeX, and flat per cell for
`dvc metrics show`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from equihand.analysis.document import markdown_table
from equihand.errors import UserError
from equihand.vocabulary import NO_PRETRAINING, cell_name, fraction_text, rank, study_objectives

KEYS = ["objective", "backbone", "label_fraction"]
METRICS = {"epe_cm": "EPE (cm)", "pa_epe_cm": "PA-EPE (cm)", "auc": "AUC", "pa_auc": "PA-AUC"}


def load_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per evaluated run (metrics.json files written by `equihand evaluate`)."""
    records = []
    for path in paths:
        try:
            m = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a readable metrics.json ({e})") from None
        missing = [k for k in [*KEYS, "seed", *METRICS] if k not in m]
        if missing:
            raise UserError(f"{path}: missing keys {missing}; was it written by equihand evaluate?")
        records.append({k: m[k] for k in [*KEYS, "seed", *METRICS]} | {"path": str(path)})
    if not records:
        raise UserError("no metrics.json given")
    runs = pd.DataFrame(records)
    dup = runs.duplicated([*KEYS, "seed"], keep=False)
    if dup.any():
        raise UserError(f"the same run appears twice: {sorted(runs.loc[dup, 'path'])}")
    return runs


def ablation_table(runs: pd.DataFrame) -> pd.DataFrame:
    grouped = runs.groupby(KEYS, sort=False)
    table = grouped[list(METRICS)].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table = table.fillna({c: 0.0 for c in table.columns if c.endswith("_std")})
    table["n_seeds"] = grouped.size()
    table = table.reset_index()
    base = table[table["objective"] == NO_PRETRAINING].set_index(["backbone", "label_fraction"])
    ref = [
        base["pa_epe_cm_mean"].get((b, f), float("nan"))
        for b, f in zip(table["backbone"], table["label_fraction"], strict=True)
    ]
    table["pa_epe_improvement_pct"] = (
        100.0 * (pd.Series(ref) - table["pa_epe_cm_mean"]) / pd.Series(ref)
    )
    order = study_objectives()
    table["_o"] = table["objective"].map(lambda o: rank(o, order))
    table = table.sort_values(["backbone", "label_fraction", "_o"]).drop(columns="_o")
    return table.reset_index(drop=True)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    out = table[KEYS].copy()
    out["label_fraction"] = [fraction_text(f) for f in table["label_fraction"]]
    for key, name in METRICS.items():
        digits = 2 if key.endswith("cm") else 3
        out[name] = [
            f"{m:.{digits}f} ± {s:.{digits}f}"
            for m, s in zip(table[f"{key}_mean"], table[f"{key}_std"], strict=True)
        ]
    out["seeds"] = table["n_seeds"].astype(int)
    out["PA-EPE vs none"] = [
        "" if pd.isna(v) or o == NO_PRETRAINING else f"{v:+.1f}%"
        for v, o in zip(table["pa_epe_improvement_pct"], table["objective"], strict=True)
    ]
    return out


def to_markdown(table: pd.DataFrame) -> str:
    return markdown_table(display_table(table))


def to_latex(table: pd.DataFrame) -> str:
    shown = display_table(table).replace({"±": r"$\\pm$", "%": r"\\%"}, regex=True)
    cols = "l" * len(KEYS) + "r" * (len(shown.columns) - len(KEYS))
    body = [" & ".join(str(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    head = " & ".join(shown.columns) + r" \\"
    return "\n".join(
        [
            rf"\begin{{tabular}}{{{cols}}}",
            r"\toprule",
            head,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            "",
        ]
    ).replace("_", r"\_")


def to_metrics(table: pd.DataFrame) -> dict:
    """The table as {cell: {metric: value}} for `dvc metrics show` (dvc.yaml's `metrics:`).

    Cells are named like the run folders without the seed (`equivariant_resnet18_f0.1`); values
    are the means and spreads over seeds, the seed count and the improvement over `none`
    (null where there is no `none` baseline).
    """
    columns = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    columns += ["n_seeds", "pa_epe_improvement_pct"]
    metrics = {}
    for row in table.to_dict("records"):
        cell = cell_name(row["objective"], row["backbone"], row["label_fraction"])
        metrics[cell] = {
            c: None if pd.isna(row[c]) else (int(row[c]) if c == "n_seeds" else float(row[c]))
            for c in columns
        }
    return metrics
