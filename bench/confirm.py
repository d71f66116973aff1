"""A powered study's verdicts on the seeds its design did not see, and what reusing the pilot costs.

    python bench/confirm.py [--results results] [--pilot 3] [--studies 2000] [--out results/bench]

config/powered.yaml chose its number of seeds at the small label fraction from the paired seed
SDs of a pilot (the default study's seeds 0, 1, 2) and then ran more seeds there. Its report
compares every seed, the pilot's included: a design whose size depends on the data it then tests
is no longer a fixed-size test. Two tables, each also written as CSV to --out:

- `confirm_family`: the report's comparisons (equihand.analysis.comparisons, the report's own
  code) on results/tables/runs.csv with the pilot's seeds dropped below 100% of the labels: a
  confirmatory test, since those seeds' number was chosen before they ran. At 100% the pilot's
  seeds stay (their number was fixed in advance); the label effects, which pair a fraction's
  seeds with the other's, then have no common seed and leave the family.
- `confirm_calibration`: the false-positive rate of both analyses, by simulating --studies null
  studies of the whole procedure (pilot, the report's power analysis choosing the seeds, the
  report's verdicts; equihand.analysis.calibration.pilot_then_more_seeds) at the seed SDs the
  default study measured: the largest member's rate and the family's (any verdict).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from common import RESULTS, markdown, write_csv

from equihand.analysis import calibration as cal
from equihand.analysis.comparisons import comparison_table, comparisons
from equihand.config import load_config

RUNS = "tables/runs.csv"


def after_pilot(runs: pd.DataFrame, pilot: int) -> pd.DataFrame:
    """The runs without the pilot's seeds (seed < `pilot`) below 100% of the labels."""
    return runs[(runs["label_fraction"] >= 1) | (runs["seed"] >= pilot)]


def calibration_rows(rep: dict, pilot: int, cap: int, target_pct: float, studies: int) -> list:
    rows = []
    arms = cal.null_arms(cal.MEASURED_PA_EPE)
    for seed, reuse in ((0, True), (1, False)):
        fired = cal.simulate_pilot_design(studies, seed, arms, rep, pilot, cap, target_pct, reuse)
        rates = cal.rates(fired)
        rows.append(
            {
                "analysis": "every seed (the report)" if reuse else "seeds after the pilot",
                "null studies": studies,
                "largest member's rate": f"{rates['max_member']:.3f}",
                "member": rates["per_member"].idxmax(),
                "family rate (any verdict)": f"{rates['family']:.3f}",
                "nominal": f"{rep['alpha']:.2f}",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="results_dir")
    parser.add_argument("--pilot", type=int, default=3, help="the pilot's seeds: 0 .. pilot - 1")
    parser.add_argument("--cap", type=int, default=12, help="most seeds the simulated design runs")
    parser.add_argument("--target-pct", type=float, default=3.0, help="the design's target, %")
    parser.add_argument("--studies", type=int, default=2000, help="simulated null studies")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV files")
    args = parser.parse_args()
    path = args.results / RUNS
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run the study first (`make study`)")
    rep = load_config(None, [])["report"]
    comps = comparisons(after_pilot(pd.read_csv(path), args.pilot), rep)
    tested = comps[comps["n_seeds"] >= 2]
    sections = {"confirm_family": comparison_table(tested).to_dict("records")}
    if args.studies:
        sections["confirm_calibration"] = calibration_rows(
            rep, args.pilot, args.cap, args.target_pct, args.studies
        )
    for name, rows in sections.items():
        print(f"## {name}\n\n{markdown(rows)}\n")
        write_csv(args.out / f"{name}.csv", rows)


if __name__ == "__main__":
    main()
