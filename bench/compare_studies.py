"""Two runs of the same study grid side by side: each run's test measures, paired by run name.

    python bench/compare_studies.py A B [--names off on] [--out results/bench]

A, B: results folders of two studies that differ in one setting, e.g. the default study with
root refinement off (`snakemake --cores all --configfile config/default.yaml off.yaml --config
results_dir=results/refine-off` with off.yaml = `model: {root_refine: false}`) and on (`make
study`). Every run folder under A/evaluate that B/evaluate also has is compared (its
metrics.json, written by `equihand evaluate` on the test split); the table gives, per objective
and label fraction, the mean ± std over seeds of EPE, AUC and PA-EPE in each study and the mean
paired difference B - A with its range over seeds. Prints Markdown and writes
results/bench/compare_studies.csv.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import RESULTS, markdown, write_csv

MEASURES = {"epe_cm": "EPE (cm)", "auc": "AUC", "pa_epe_cm": "PA-EPE (cm)"}


def read_runs(results: Path) -> dict[str, dict]:
    folder = results / "evaluate"
    if not folder.is_dir():
        raise SystemExit(f"{results}: no evaluate/ folder (expected a study's results folder)")
    return {
        run.name: json.loads((run / "metrics.json").read_text())
        for run in sorted(folder.iterdir())
        if (run / "metrics.json").is_file()
    }


def compare(a: dict[str, dict], b: dict[str, dict], names: tuple[str, str]) -> list[dict]:
    cells = defaultdict(list)
    for run in sorted(a.keys() & b.keys()):
        cells[(a[run]["objective"], a[run]["label_fraction"])].append((a[run], b[run]))
    rows = []
    for (objective, fraction), pairs in cells.items():
        row = {"objective": objective, "label_fraction": fraction, "seeds": len(pairs)}
        for key, label in MEASURES.items():
            va = np.array([p[0][key] for p in pairs])
            vb = np.array([p[1][key] for p in pairs])
            diff = vb - va
            row[f"{label} {names[0]}"] = (
                f"{va.mean():.3g} ± {va.std(ddof=1) if len(va) > 1 else 0:.2g}"
            )
            row[f"{label} {names[1]}"] = (
                f"{vb.mean():.3g} ± {vb.std(ddof=1) if len(vb) > 1 else 0:.2g}"
            )
            row[f"{label} {names[1]} - {names[0]}"] = (
                f"{diff.mean():+.3g} ({diff.min():+.3g} to {diff.max():+.3g})"
            )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the first study's results folder")
    parser.add_argument("b", type=Path, help="the second study's results folder")
    parser.add_argument("--names", nargs=2, default=["A", "B"], help="labels of A and B")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV")
    args = parser.parse_args(argv)
    a, b = read_runs(args.a), read_runs(args.b)
    if not a.keys() & b.keys():
        raise SystemExit(f"{args.a} and {args.b} have no evaluated run in common")
    rows = compare(a, b, tuple(args.names))
    print(markdown(rows))
    print(f"\nwritten {write_csv(args.out / 'compare_studies.csv', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
