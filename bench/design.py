"""Choosing the next design from a study that ran: what each comparison of the report's family
could detect at other seed counts (from the study's own paired seed SDs), what each design costs
(from the study's own job times), and how far along its finetuning curves were still moving.

    python bench/design.py [--study .] [--target-pct 3] [--seeds 3 4 5 6 8 10]
                           [--design 3:3 6:3 ...] [--out results/bench]

--study: the working folder of a completed Snakemake run of the study (its
results/tables/runs.csv, results/finetune/*/metrics.csv and .snakemake/log/); --results_dir when
the config moved results elsewhere. Three tables, each also written as CSV to --out:

- `design_power`: per member of the report's family (equihand.analysis.comparisons.comparisons:
  the report's own code, so the same pairing, family and Holm level alpha / m), the measured SD of
  the paired differences, the minimum detectable effect at 80% power at each of --seeds, and the
  seeds that detect --target-pct of the compared arm's PA-EPE. The SD is a sample SD from the
  seeds that ran: with 3 seeds it is itself uncertain (a 95% interval of 0.52x to 6.3x the true
  SD), so the seed counts are a pilot's estimate, not a guarantee.
- `design_cost`: each rule's median seconds per job, read from the Snakemake log's start and
  finish times (every job, not only those with a `benchmark:`; of every part of a run resumed
  across sessions, bench/study_time.py), and the predicted wall time of
  each --design `small:full` (seeds at the label fractions below 1, seeds at 1): the jobs that do
  not scale with seeds at their measured total, plus the per-seed jobs at their medians. Jobs
  ran one at a time (each takes every core), so wall time is their sum plus the scheduler's gaps,
  which are counted in the fixed part.
- `design_curves`: per objective and label fraction, the mean over seeds of the validation PA-EPE
  at each validation step (finetune metrics.csv), and that mean minus the run's final best: where
  the curve is flat a shorter run would lose little (a shorter run also has a shorter schedule, so
  this is a guide for a measured rerun, not its result).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import pandas as pd
from common import RESULTS, markdown, write_csv
from study_time import latest_runs

from equihand.analysis.comparisons import LABELS, comparisons
from equihand.analysis.stats import minimum_detectable_effect, seeds_needed
from equihand.config import load_config
from equihand.errors import UserError

# the jobs whose number grows with the seeds: rule -> whether it runs per label fraction
PER_SEED = {"pretrain": False, "finetune": True, "evaluate": True, "probe": False}


def complete_run(study: Path) -> tuple[list[dict], str, float]:
    """The jobs, the logs and the wall seconds of the study's latest whole run: one completed
    Snakemake log, or a run resumed across sessions in several parts (bench/study_time.py)."""
    runs = [
        run
        for run in latest_runs(study / ".snakemake" / "log", studies=None).values()
        if run["parts"][0]["from_data"]
    ]
    if not runs:
        raise UserError(f"{study}/.snakemake/log: no Snakemake log of a completed run")
    run = max(runs, key=lambda r: r["parts"][-1]["started"])
    jobs = [job for part in run["parts"] for job in part["jobs"]]
    return jobs, run["source"], run["wall_s"]


def power_table(runs: pd.DataFrame, rep: dict, seeds: list[int], pct: float) -> list[dict]:
    comps = comparisons(runs, rep)
    m = int(comps["family_size"].max())
    alpha = rep["alpha"] / m
    rows = []
    for c in comps.itertuples():
        name = (
            f"{c.a}: {c.a_label_fraction:g} vs {c.label_fraction:g}"
            if c.kind == LABELS
            else f"{c.a} vs {c.b} @ {c.label_fraction:g}"
        )
        target = pct / 100 * c.pa_epe_b_cm
        row = {
            "comparison": name,
            "seeds ran": c.n_seeds,
            "mean d (cm)": f"{c.diff_cm:+.3f}",
            "SD of d (cm)": f"{c.sd_diff_cm:.3f}",
            f"{pct:g}% of b (cm)": f"{target:.3f}",
        }
        for n in seeds:
            mde = minimum_detectable_effect(c.sd_diff_cm, n, alpha, rep["power"])
            row[f"MDE {n}"] = f"{mde:.3f} ({100 * mde / c.pa_epe_b_cm:.1f}%)"
        need = seeds_needed(target, c.sd_diff_cm, alpha, rep["power"], rep["max_seeds"])
        row[f"seeds for {pct:g}%"] = "more than the cap" if math.isnan(need) else int(need)
        row["family"] = m
        rows.append(row)
    return rows


def cost_table(jobs: list[dict], elapsed: float, objectives: list[str], designs) -> list[dict]:
    per: dict[tuple, list[float]] = {}
    for j in jobs:
        if j["rule"] in PER_SEED:
            small = PER_SEED[j["rule"]] and float(j["wildcards"]["fraction"]) < 1
            per.setdefault((j["rule"], small), []).append(j["s"])
    fixed = elapsed - sum(s for v in per.values() for s in v)
    median = {k: statistics.median(v) for k, v in per.items()}
    pretrained = [o for o in objectives if o != "none"]
    encoders = len(pretrained) + 1 + ("none" in objectives)  # random, supervised, pretrained

    def predicted(n_small: int, n_full: int) -> float:
        n_any = max(n_small, n_full)
        s = fixed + median.get(("pretrain", False), 0) * len(pretrained) * n_any
        for rule in (r for r, per_fraction in PER_SEED.items() if per_fraction):
            s += median.get((rule, True), 0) * len(objectives) * n_small
            s += median.get((rule, False), 0) * len(objectives) * n_full
        return s + median.get(("probe", False), 0) * encoders * n_any

    rows = []
    for (rule, small), seconds in sorted(per.items()):
        part = f"{rule} (<100% of the labels)" if small else rule
        rows.append(_cost_row(part, len(seconds), median[(rule, small)], sum(seconds)))
    rows.append(_cost_row("everything else, and the gaps", "", None, fixed))
    rows.append(_cost_row("measured wall time", len(jobs), None, elapsed))
    for n_small, n_full in designs:
        part = f"design: {n_small} seeds below 100%, {n_full} at 100%"
        rows.append(_cost_row(part, "", None, predicted(n_small, n_full)))
    return rows


def _cost_row(part: str, jobs, median: float | None, total_s: float) -> dict:
    return {
        "part": part,
        "jobs": jobs,
        "median s per job": "" if median is None else f"{median:.0f}",
        "total (min)": f"{total_s / 60:.1f}",
    }


def curve_table(results: Path, select: str) -> list[dict]:
    curves = []
    for path in sorted((results / "finetune").glob("*/metrics.csv")):
        # objective_backbone_fFRACTION_sSEED; a backbone may hold '_', an objective never does
        objective = path.parent.name.split("_", 1)[0]
        fraction = path.parent.name.rsplit("_", 2)[1]
        m = pd.read_csv(path)
        if select not in m:
            raise UserError(f"{path}: no column {select!r}; was it written by equihand finetune?")
        m = m.dropna(subset=[select])
        m = m.assign(objective=objective, fraction=fraction.removeprefix("f"))
        curves.append(m.assign(above_best=m[select] - m[select].min()))
    if not curves:
        raise UserError(f"{results}/finetune: no metrics.csv")
    keys = ["objective", "fraction", "step"]
    table = pd.concat(curves).groupby(keys, sort=False)[[select, "above_best"]].mean()
    return [
        {
            "objective": objective,
            "label fraction": fraction,
            "step": step,
            "val PA-EPE (cm)": f"{r[select]:.3f}",
            "above the run's best (cm)": f"{r['above_best']:+.3f}",
        }
        for (objective, fraction, step), r in table.iterrows()
    ]


def design(n: str) -> tuple[int, int]:
    small, _, full = n.partition(":")
    return int(small), int(full or small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("."), help="the study's working folder")
    parser.add_argument("--results-dir", default="results", help="results_dir, below --study")
    parser.add_argument("--target-pct", type=float, default=3.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6, 8, 10])
    parser.add_argument("--design", type=design, nargs="+", default=[(3, 3), (6, 3), (8, 3)])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV files")
    args = parser.parse_args()
    config = load_config(None, [])
    results = args.study / args.results_dir
    runs_csv = results / "tables" / "runs.csv"
    if not runs_csv.is_file():
        raise SystemExit(f"{runs_csv}: missing; run the study (equihand aggregate writes it)")
    runs = pd.read_csv(runs_csv)
    jobs, logs, elapsed = complete_run(args.study)
    objectives = sorted(set(runs["objective"]))
    sections = {
        "design_power": power_table(runs, config["report"], args.seeds, args.target_pct),
        "design_cost": cost_table(jobs, elapsed, objectives, args.design),
        "design_curves": curve_table(results, "val_pa_epe_cm"),
    }
    print(f"study: {args.study.resolve()} ({logs}, {elapsed / 60:.1f} min)\n")
    for name, rows in sections.items():
        print(f"## {name}\n\n{markdown(rows)}\n")
        write_csv(args.out / f"{name}.csv", rows)


if __name__ == "__main__":
    main()
