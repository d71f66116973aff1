"""How often each verdict rule fires with no effect, and how often it finds a planted one.

    python bench/calibration.py [--studies 2000] [--seeds 3 6 10] [--out results/bench]

Simulated studies through the report's own code (equihand.analysis.calibration; seed noise with
the SDs the default study measured): per seed count, the false-positive rate of the report's
verdicts (the largest over its 9 comparisons, and family-wise: any of them) for the rule in use
(paired t-test, Holm over the family) and for the percentile bootstrap the report used before
(95% interval of mean(d) excluding 0, 2,000 resamples); the same for the part-aware claims under
the rule in use; and the power to find `invariant` better than `none` at 10% when the true
difference is the minimum detectable effect the report states (80% at Holm's first-step level).
Prints Markdown and writes results/bench/calibration.csv.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from common import RESULTS, markdown, write_csv

from equihand.analysis import calibration as cal
from equihand.analysis.stats import minimum_detectable_effect
from equihand.config import load_config

FAMILY = 9  # the default report's comparisons: 6 between objectives, 3 label effects
TARGET = "objectives: invariant vs none @ 0.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 6, 10])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for calibration.csv")
    args = parser.parse_args()
    rep = load_config(None, [])["report"]
    null_pa, null_probe = cal.null_arms(cal.MEASURED_PA_EPE), cal.null_arms(cal.MEASURED_PROBE)
    rows = []
    for seeds in args.seeds:
        ours = cal.rates(
            cal.simulate(args.studies, 0, null_pa, seeds, cal.pa_epe_runs,
                         lambda r: cal.report_verdicts(r, rep))
        )  # fmt: skip
        boot = cal.rates(
            cal.simulate(args.studies, 0, null_pa, seeds, cal.pa_epe_runs,
                         lambda r: cal.bootstrap_verdicts(r, rep, n_boot=2000, seed=0))
        )  # fmt: skip
        probe = cal.rates(
            cal.simulate(args.studies, 1, null_probe, seeds, cal.probe_runs,
                         lambda r: cal.claim_verdicts(r, rep))
        )  # fmt: skip
        sd = math.hypot(
            cal.MEASURED_PA_EPE[("none", 0.1)][1], cal.MEASURED_PA_EPE[("invariant", 0.1)][1]
        )
        mde = minimum_detectable_effect(sd, seeds, rep["alpha"] / FAMILY, rep["power"])
        planted = dict(null_pa)
        mean, arm_sd = planted[("invariant", 0.1)]
        planted[("invariant", 0.1)] = (mean - mde, arm_sd)
        found = cal.simulate(args.studies, 2, planted, seeds, cal.pa_epe_runs,
                             lambda r: cal.report_verdicts(r, rep))[TARGET].mean()  # fmt: skip
        rows.append(
            {
                "seeds": seeds,
                "studies": args.studies,
                "t+Holm: max per comparison": f"{ours['max_member']:.3f}",
                "t+Holm: family-wise": f"{ours['family']:.3f}",
                "old bootstrap: max per comparison": f"{boot['max_member']:.3f}",
                "old bootstrap: family-wise": f"{boot['family']:.3f}",
                "probe claims (t+Holm): max / family-wise": (
                    f"{probe['max_member']:.3f} / {probe['family']:.3f}"
                ),
                "MDE inv vs none 10% (cm)": f"{mde:.3f}",
                "found at that MDE": f"{found:.3f}",
            }
        )
        print(f"{seeds} seeds done", flush=True)
    print(markdown(rows))
    print(f"wrote {write_csv(args.out / 'calibration.csv', rows)}")


if __name__ == "__main__":
    main()
