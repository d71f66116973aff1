"""The tables of the README's "What the study found", from a study's results.

    python bench/findings.py [--results results] [--out results/bench]

Reads what the study wrote (results/tables/ablation.csv, results/report/comparisons.csv,
results/tables/part_aware_claims.csv when the probe ran) and prints three Markdown tables, each
also written as CSV to --out:

- `findings_arms`: per objective, test PA-EPE, EPE and AUC as mean ± std over seeds at each label
  fraction (the ablation table, one column per objective);
- `findings_family`: the report's family of comparisons as the report prints it
  (equihand.analysis.comparisons.comparison_table: t-interval, t, permutation and Holm p-values,
  minimum detectable effect, verdict);
- `findings_probe`: the part-aware probe's claims, each with its Holm p-value and verdict.

Nothing is recomputed: the numbers are the report's, laid out for the README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from common import RESULTS, markdown, write_csv

from equihand.analysis.comparisons import comparison_table
from equihand.vocabulary import in_order, percent, study_objectives

ARMS = "tables/ablation.csv"
FAMILY = "report/comparisons.csv"
PROBE = "tables/part_aware_claims.csv"


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run the study first (`make study`)")
    return pd.read_csv(path)


def arms_table(ablation: pd.DataFrame) -> list[dict]:
    objectives = in_order(set(ablation["objective"]), study_objectives())
    rows = []
    for (backbone, fraction), cell in ablation.groupby(["backbone", "label_fraction"]):
        cell = cell.set_index("objective")
        seeds = sorted(set(cell["n_seeds"].astype(int)))
        where = f"{backbone}, {percent(fraction)} of the labels"
        for label, key, digits in (("PA-EPE (cm)", "pa_epe_cm", 2), ("EPE (cm)", "epe_cm", 2),
                                   ("AUC", "auc", 3)):  # fmt: skip
            row = {"test, mean ± std over seeds": f"{label}, {where}"}
            for o in objectives:
                if o in cell.index:
                    mean, std = cell.at[o, f"{key}_mean"], cell.at[o, f"{key}_std"]
                    row[o] = f"{mean:.{digits}f} ± {std:.{digits}f}"
            row["seeds"] = "/".join(map(str, seeds))
            rows.append(row)
    return rows


def probe_table(claims: pd.DataFrame) -> list[dict]:
    return [
        {
            "claim": c.claim,
            "task": c.task,
            "a vs b": f"{c.a} vs {c.b} ({c.feature})",
            "seeds": c.n_seeds,
            "mean a - b": f"{c.diff:+.3f}",
            "p (Holm)": "–" if pd.isna(c.p_holm) else f"{c.p_holm:.3f}",
            "MDE": "–" if pd.isna(c.mde) else f"{c.mde:.3f}",
            "verdict": c.verdict,
        }
        for c in claims.itertuples()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="results_dir")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV files")
    args = parser.parse_args()
    sections = {
        "findings_arms": arms_table(_read(args.results / ARMS)),
        "findings_family": comparison_table(_read(args.results / FAMILY)).to_dict("records"),
    }
    if (args.results / PROBE).is_file():
        sections["findings_probe"] = probe_table(_read(args.results / PROBE))
    else:
        print(f"({args.results / PROBE}: none, the probe did not run)\n")
    for name, rows in sections.items():
        print(f"## {name}\n\n{markdown(rows)}\n")
        write_csv(args.out / f"{name}.csv", rows)


if __name__ == "__main__":
    main()
