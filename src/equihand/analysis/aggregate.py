"""`equihand aggregate`: the ablation table from every evaluation's metrics.json.

One row per objective x backbone x label fraction: EPE, PA-EPE (cm), AUC and PA-AUC as mean and
standard deviation over seeds (ddof=1; 0 for a single seed), the number of seeds, and the
relative PA-EPE improvement over `none` (same backbone and fraction) in percent, PeCLR's
headline measure: 100 * (PA-EPE_none - PA-EPE) / PA-EPE_none. Written as CSV, Markdown and LaTeX,
and as metrics.json (the same numbers per cell, for `dvc metrics show`); the table itself is
equihand.analysis.ablation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from equihand.analysis.ablation import ablation_table, load_runs, to_latex, to_markdown, to_metrics
from equihand.io import atomic_write_text
from equihand.outputs import check_files, claim_files

OUTPUTS = ("runs.csv", "ablation.csv", "ablation.md", "ablation.tex", "metrics.json")


def aggregate(paths: list[Path], out_dir: Path, *, force: bool = False) -> pd.DataFrame:
    out_dir = Path(out_dir)
    outputs = [out_dir / name for name in OUTPUTS]
    check_files(outputs, "aggregate", force=force)
    runs = load_runs(paths)
    table = ablation_table(runs)
    claim_files(outputs, "aggregate", force=force)
    atomic_write_text(out_dir / "runs.csv", runs.to_csv(index=False))
    atomic_write_text(out_dir / "ablation.csv", table.to_csv(index=False))
    atomic_write_text(out_dir / "ablation.md", to_markdown(table))
    atomic_write_text(out_dir / "ablation.tex", to_latex(table))
    metrics = json.dumps(to_metrics(table), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(out_dir / "metrics.json", metrics + "\n")
    return table


def add_arguments(parser) -> None:
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files")
    parser.add_argument(
        "--out", required=True, help="folder for ablation.{csv,md,tex}, runs.csv, metrics.json"
    )


def run(args, config: dict) -> None:
    table = aggregate([Path(p) for p in args.metrics], Path(args.out), force=args.force)
    print(to_markdown(table))
