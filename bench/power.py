"""What the default design can detect, before it runs: the power analysis of the report's family
from the seed-to-seed SDs the default study measured.

    python bench/power.py [--seeds 3 6 10] [--out results/bench]

For each of the report's 9 comparisons (6 between objectives, 3 label effects) the SD of the
paired difference is taken as hypot(SD_a, SD_b) of the two arms' measured seed SDs
(equihand.analysis.calibration.MEASURED_PA_EPE; independent arms: pairing by seed can only lower
it), and the paired t-test's minimum detectable effect at 80% power is computed at Holm's
first-step level alpha / 9 (what a member needs when it is the family's smallest p-value), with
the seeds that would detect 2% and 3% of the compared arm's PA-EPE (equihand.analysis.stats,
the functions the report calls). Prints Markdown and writes results/bench/power.csv.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from common import RESULTS, markdown, write_csv

from equihand.analysis.calibration import MEASURED_PA_EPE as ARMS
from equihand.analysis.stats import minimum_detectable_effect, seeds_needed
from equihand.config import load_config

OBJECTIVE_PAIRS = [("invariant", "none"), ("equivariant", "none"), ("equivariant", "invariant")]


def members() -> list[tuple[str, tuple, tuple]]:
    """(name, arm a, arm b) of the report's family, b the arm the difference is relative to."""
    out = [
        (f"{a} vs {b} @ {fraction:g}", (a, fraction), (b, fraction))
        for fraction in (0.1, 1.0)
        for a, b in OBJECTIVE_PAIRS
    ]
    out += [(f"{o}: 10% vs 100%", (o, 0.1), (o, 1.0)) for o in ("none", "invariant", "equivariant")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 6, 10])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for power.csv")
    args = parser.parse_args()
    rep = load_config(None, [])["report"]
    family = members()
    alpha = rep["alpha"] / len(family)
    rows = []
    for name, a, b in family:
        sd = math.hypot(ARMS[a][1], ARMS[b][1])
        base = ARMS[b][0]
        row = {"comparison": name, "PA-EPE b - a (cm)": f"{ARMS[b][0] - ARMS[a][0]:+.2f}",
               "SD of diff (cm)": f"{sd:.3f}"}  # fmt: skip
        for n in args.seeds:
            mde = minimum_detectable_effect(sd, n, alpha, rep["power"])
            row[f"MDE at {n} seeds (cm, % of b)"] = f"{mde:.2f} ({100 * mde / base:.0f}%)"
        for pct in (2.0, 3.0):
            need = seeds_needed(pct / 100 * base, sd, alpha, rep["power"], rep["max_seeds"])
            row[f"seeds for {pct:g}%"] = (
                "more than " + str(rep["max_seeds"]) if math.isnan(need) else str(int(need))
            )
        rows.append(row)
    print(markdown(rows))
    print(f"wrote {write_csv(args.out / 'power.csv', rows)}")


if __name__ == "__main__":
    main()
