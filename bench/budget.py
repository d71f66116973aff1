"""The budget study: how the default study's settings were chosen, regenerated from the CLI.

    python bench/budget.py                      # every curve of bench/budget.yaml
    python bench/budget.py --only finetune      # learning curves only (or: pretrain)
    python bench/budget.py --cases NAME ...     # only these cases of the file
    python bench/budget.py --quick              # seconds: a tiny dataset and a few steps

Two curves, both scored on the validation split only (never the test split):

1. ``finetune``: learning curves. Each case is one ``equihand finetune`` run with the case's
   ``--set`` overrides on top of the study config, validated every ``log_every_steps``; the table
   shows val PA-EPE along the run, the best value, images/s and wall time, next to the constant
   training pose's val PA-EPE (``equihand reference``) that a model must beat.
2. ``pretrain``: the pretraining-budget curve. For each objective and number of pretraining
   epochs: ``equihand pretrain`` then ``equihand finetune`` with the case's fixed finetuning
   recipe (``none`` = the same finetuning from random weights), and the frozen encoder's
   pose-sensitivity (``equihand probe`` on the whole images: orientation bins and 2D keypoints
   regressed from frozen features), so the curve shows both what finetuning gains and whether
   the encoder learned anything about pose. With seeds, ``budget_differences`` compares the arms
   at each budget, paired by seed, with the report's own tests (``pretrain_differences``).

Every run is an ``equihand`` command whose log is kept beside its output
(``results/budget/<case>/...``); a run whose ``model.pt`` exists is not run again, so an
interrupted study continues where it stopped. Tables are printed and written to
``results/bench/budget_<curve>.csv`` (one row per validation point) and ``.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from common import RESULTS, ROOT, environment, markdown, write_csv

from equihand.analysis.comparisons import comparison_table, comparisons, correct
from equihand.config import load_config
from equihand.vocabulary import study_objectives

CASES = ROOT / "bench" / "budget.yaml"
WORK = ROOT / "results" / "budget"
CURVES = ("finetune", "pretrain")
OBJECTIVE_NAMES = set(study_objectives())  # the arms (not the probe's supervised reference)
# images one pretraining pass puts through the encoder per pool image (2 contrastive views, 1
# masked view)
VIEWS_PER_IMAGE = {"none": 0, "invariant": 2, "equivariant": 2, "mim": 1,
                   "invariant+mim": 3, "equivariant+mim": 3}  # fmt: skip
# --quick: a tiny dataset and a few steps, so that the whole script runs in about a minute
QUICK_SET = [
    "synth.n_train=160",
    "synth.n_eval=40",
    "synth.n_hands_train=8",
    "synth.n_hands_eval=2",
    "synth.image_size=64",
    "finetune.batch_size=8",
    "finetune.steps=4",
    "finetune.log_every_steps=2",
    "finetune.eval_batch_size=64",
    "pretrain.batch_size=16",
    "pretrain.max_steps=2",
    "probe.n_train=40",
    "probe.n_val=16",
    "probe.n_test=16",
    "probe.epochs=2",
    "probe.min_crop_px=3",
    "synth.workers=1",
    "prepare.workers=1",
    "train.threads=1",
]


def equihand(step: str, args: list[str], log: Path) -> None:
    """Run one `equihand` step, its output in `log`; a failure stops the study naming the log."""
    cmd = [str(Path(sys.executable).parent / "equihand"), step, *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        child = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        try:
            returncode = child.wait()
        finally:  # stopped (SIGTERM, Ctrl-C): stop the run too; it resumes on the next call
            if child.poll() is None:
                child.terminate()
                child.wait()
    if returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"budget: `equihand {step}` failed, see {log}:\n" + "\n".join(tail))


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


class Study:
    """The shared inputs (config, datasets, caches, references) and where runs go.

    A case reads the default data, or with ``data: NAME`` the dataset the spec's ``datasets``
    section defines as extra ``synth.*`` overrides (rendered once into ``data/NAME``)."""

    def __init__(self, spec: dict, work: Path, quick: bool):
        self.config = str(ROOT / spec.get("config", "config/default.yaml"))
        self.base = list(spec.get("set", [])) + (QUICK_SET if quick else [])
        self.datasets = {"": [], **spec.get("datasets", {})}
        self.work = work

    def args(self, extra: list[str], data: str = "") -> list[str]:
        if data not in self.datasets:
            raise SystemExit(f"budget: no dataset named {data!r} under `datasets`")
        return ["--config", self.config, *sets(self.base + self.datasets[data] + list(extra))]

    def settings(self, extra: list[str] = ()) -> dict:
        """The validated config a run with these extra overrides reads."""
        return load_config(self.config, [*self.base, *extra])

    def root(self, data: str = "") -> Path:
        return self.work / "data" / (data or ".") / "synth"

    def ensure_data(self, data: str = "") -> Path:
        root = self.root(data)
        if not (root / "training_xyz.json").exists():
            log = self.work / f"synth{'_' + data if data else ''}.log"
            equihand("synth", [*self.args([], data), "--out", str(root)], log)
        return root

    def cache(self, resolution: int, data: str = "") -> Path:
        """The prepared cache at `resolution` px, with its constant-pose reference."""
        name = f"{data + '_' if data else ''}{resolution}px"
        out = self.work / "prepared" / name
        if not (out / "meta.json").exists():
            root = self.ensure_data(data)
            args = self.args([f"prepare.resolution={resolution}"], data)
            equihand(
                "prepare",
                [*args, "--root", str(root), "--out", str(out)],
                out.parent / f"{name}.log",
            )
        ref = out.parent / f"reference_{name}.json"
        if not ref.exists():
            equihand(
                "reference",
                [*self.args([], data), "--data", str(out), "--out", str(ref)],
                out.parent / f"reference_{name}.log",
            )
        return out

    def reference(self, resolution: int, data: str = "") -> float:
        name = f"{data + '_' if data else ''}{resolution}px"
        self.cache(resolution, data)
        return json.loads((self.work / "prepared" / f"reference_{name}.json").read_text())[
            "val_pa_epe_cm"
        ]


def read_metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def finetune_run(
    study: Study,
    out: Path,
    resolution: int,
    overrides: list[str],
    pretrained: str = "none",
    data: str = "",
) -> tuple[list[dict], float]:
    """One finetuning run (skipped when its model.pt exists): its metric rows and wall time."""
    cache = study.cache(resolution, data)
    stamp = out / "wall_s.txt"
    if not (out / "model.pt").exists():
        tic = time.perf_counter()
        args = study.args([f"prepare.resolution={resolution}", *overrides], data)
        equihand(
            "finetune",
            [*args, "--data", str(cache), "--pretrained", pretrained, "--out", str(out)],
            out.parent / f"{out.name}.log",
        )
        stamp.write_text(f"{time.perf_counter() - tic:.1f}\n")
    return read_metrics(out), float(stamp.read_text())


def finetune_curves(study: Study, cases: list[dict]) -> list[dict]:
    rows = []
    for case in cases:
        res, data = case.get("resolution", 64), case.get("data", "")
        metrics, wall = finetune_run(
            study, study.work / "finetune" / case["name"], res, case.get("set", []), data=data
        )
        for m in metrics:
            rows.append(
                {
                    "case": case["name"],
                    "data": data or "default",
                    "resolution": res,
                    "step": int(m["step"]),
                    "val_pa_epe_cm": m["val_pa_epe_cm"],
                    "val_epe_cm": m["val_epe_cm"],
                    "reference_val_pa_epe_cm": study.reference(res, data),
                    "images_per_s": m["images_per_s"],
                    "wall_min": wall / 60,
                }
            )
    return rows


def finetune_table(rows: list[dict]) -> str:
    summary = []
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        best = min(mine, key=lambda r: r["val_pa_epe_cm"])
        summary.append(
            {
                "case": case,
                "px": mine[0]["resolution"],
                "steps": mine[-1]["step"],
                "val PA-EPE (cm) along the run": " / ".join(
                    f"{r['val_pa_epe_cm']:.2f}" for r in mine
                ),
                "best (cm)": round(best["val_pa_epe_cm"], 3),
                "best / reference": round(
                    best["val_pa_epe_cm"] / best["reference_val_pa_epe_cm"], 3
                ),
                "val EPE at best (cm)": round(best["val_epe_cm"], 1),
                "images/s": round(sum(r["images_per_s"] for r in mine) / len(mine)),
                "wall (min)": round(mine[0]["wall_min"], 1),
            }
        )
    return markdown(summary)


def probe_scores(
    study: Study,
    resolution: int,
    checkpoint: str,
    encoder: str,
    seed: int,
    out: Path,
    overrides: list[str],
    data: str = "",
) -> dict:
    """The frozen encoder's pose-sensitive probe scores (equihand probe on whole images)."""
    cache = study.cache(resolution, data)
    sets_dir = study.work / "probe_data" / f"{data + '_' if data else ''}{resolution}px"
    args = study.args([f"prepare.resolution={resolution}", *overrides], data)
    if not (sets_dir / "meta.json").exists():
        equihand(
            "probe-data",
            [*args, "--data", str(cache), "--raw", str(study.root(data)), "--out", str(sets_dir)],
            sets_dir.parent / f"{sets_dir.name}.log",
        )
    if not (out / "probe.csv").exists():
        equihand(
            "probe",
            [
                *args,
                "--probe-data",
                str(sets_dir),
                "--checkpoint",
                checkpoint,
                "--encoder",
                encoder,
                "--seed",
                str(seed),
                "--out",
                str(out),
            ],
            out.parent / f"{out.name}.log",
        )
    with open(out / "probe.csv") as f:
        found = list(csv.DictReader(f))
    scores = {}
    for row in found:
        if row["feature"] == "backbone" and row["task"] == "orientation":
            scores["orientation"] = float(row["val_top1"])
        if row["feature"] == "backbone" and row["task"] == "pose2d":
            scores["pose2d"] = float(row["val_r2"])
    return scores


def pretrain_curve(study: Study, cases: list[dict]) -> list[dict]:
    rows = []
    for case in cases:
        res, data = case.get("resolution", 64), case.get("data", "")
        ft_set = case.get("finetune_set", [])
        ft_config = study.settings(ft_set)  # what the case's finetuning runs read
        for seed in case.get("seeds", [0]):
            for objective in case["objectives"]:
                for epochs in [0] if objective == "none" else case["epochs"]:
                    name = f"{case['name']}/{objective}_e{epochs}_s{seed}"
                    pre = "none"
                    if objective != "none":
                        pre_out = study.work / "pretrain" / name
                        if not (pre_out / "model.pt").exists():
                            args = study.args(
                                [
                                    f"prepare.resolution={res}",
                                    f"pretrain.epochs={epochs}",
                                    *case.get("pretrain_set", []),
                                ],
                                data,
                            )
                            equihand(
                                "pretrain",
                                [
                                    *args,
                                    "--data",
                                    str(study.cache(res, data)),
                                    "--objective",
                                    objective,
                                    "--seed",
                                    str(seed),
                                    "--out",
                                    str(pre_out),
                                ],
                                pre_out.parent / f"{pre_out.name}.log",
                            )
                        pre = str(pre_out / "model.pt")
                    best = float("nan")  # a probe-only case (finetune: false) has none
                    if case.get("finetune", True):
                        metrics, _ = finetune_run(
                            study,
                            study.work / "pretrain_finetune" / name,
                            res,
                            [*ft_set, f"finetune.seed={seed}"],
                            pre,
                            data,
                        )
                        best = min(m["val_pa_epe_cm"] for m in metrics)
                    probe = probe_scores(  # `none`: an untrained (random-init) encoder
                        study,
                        res,
                        "random" if pre == "none" else pre,
                        "random" if pre == "none" else objective,
                        seed,
                        study.work / "probe" / name,
                        case.get("probe_set", []),
                        data,
                    )
                    meta = json.loads((study.cache(res, data) / "meta.json").read_text())
                    views = epochs * meta["counts"]["pool"] * VIEWS_PER_IMAGE[objective]
                    rows.append(
                        {
                            "case": case["name"],
                            "data": data or "default",
                            "objective": objective,
                            "seed": seed,
                            "pretrain_epochs": epochs,
                            "pretrain_views": views,
                            "backbone": ft_config["model"]["backbone"],
                            "label_fraction": ft_config["finetune"]["label_fraction"],
                            "best_val_pa_epe_cm": best,
                            "reference_val_pa_epe_cm": study.reference(res, data),
                            "probe_orientation_top1": probe.get("orientation", float("nan")),
                            "probe_pose2d_r2": probe.get("pose2d", float("nan")),
                        }
                    )
                    if objective == "none" and case.get("finetune", True):
                        # what a probe reads from an encoder trained on the pose labels: the
                        # finetuned `none` model's backbone (the check's upper reference)
                        ft = study.work / "pretrain_finetune" / name / "model.pt"
                        sup = probe_scores(
                            study, res, str(ft), "supervised", seed,
                            study.work / "probe" / f"{case['name']}/supervised_s{seed}",
                            case.get("probe_set", []), data,
                        )  # fmt: skip
                        rows.append(
                            {
                                **rows[-1],
                                "objective": "supervised (none, finetuned)",
                                "probe_orientation_top1": sup.get("orientation", float("nan")),
                                "probe_pose2d_r2": sup.get("pose2d", float("nan")),
                            }
                        )
    return rows


def pretrain_table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["objective"], r["pretrain_epochs"]), []).append(r)
    summary = []
    for (case, objective, epochs), mine in groups.items():

        def mean(key: str, mine=mine) -> float:
            return round(sum(r[key] for r in mine) / len(mine), 3)

        summary.append(
            {
                "case": case,
                "objective": objective,
                "pretrain epochs": epochs,
                "views": mine[0]["pretrain_views"],
                "seeds": len(mine),
                "best val PA-EPE (cm)": mean("best_val_pa_epe_cm"),
                "probe val orientation top-1": mean("probe_orientation_top1"),
                "probe val pose2d R2": mean("probe_pose2d_r2"),
            }
        )
    return markdown(summary)


def pretrain_differences(rows: list[dict], report: dict) -> pd.DataFrame:
    """The objective comparisons at each pretraining budget, paired by seed, as one family.

    Per finetuned case and budget (pretraining epochs), the report's own comparison code
    (equihand.analysis.comparisons: paired t-test, t-interval, permutation p, MDE) on the best
    validation PA-EPE of `none` and of each objective pretrained for that many epochs; then Holm
    over every comparison of every case and budget together (`report.alpha`, `report.power`).
    """
    parts = []
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case and r["objective"] in OBJECTIVE_NAMES]
        mine = [r for r in mine if not math.isnan(r["best_val_pa_epe_cm"])]
        budgets = sorted({r["pretrain_epochs"] for r in mine} - {0})
        for epochs in budgets:
            keep = [r for r in mine if r["pretrain_epochs"] in (0, epochs)]
            runs = pd.DataFrame(keep)[["backbone", "label_fraction", "objective", "seed"]]
            runs["pa_epe_cm"] = [r["best_val_pa_epe_cm"] for r in keep]
            part = comparisons(runs, report)
            views = max(r["pretrain_views"] for r in mine if r["pretrain_epochs"] == epochs)
            parts.append(part.assign(case=case, pretrain_epochs=epochs, pretrain_views=views))
    if not parts:
        return pd.DataFrame()
    return correct(pd.concat(parts, ignore_index=True), report)


def differences_table(diffs: pd.DataFrame) -> str:
    if diffs.empty:
        return "(no finetuned pretraining case)"
    layout = comparison_table(diffs).drop(columns=["backbone"])
    layout.insert(0, "views", diffs["pretrain_views"].to_numpy())
    layout.insert(0, "pretrain epochs", diffs["pretrain_epochs"].to_numpy())
    layout.insert(0, "case", diffs["case"].to_numpy())
    return markdown(layout.to_dict("records"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=CASES, help="the cases (YAML)")
    parser.add_argument("--only", nargs="+", choices=CURVES, help="only these curves")
    parser.add_argument("--cases", nargs="+", help="only the cases of these names")
    parser.add_argument("--work", type=Path, default=WORK, help="where the runs go")
    parser.add_argument("--quick", action="store_true", help="tiny data, a few steps")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where tables go")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = yaml.safe_load(args.file.read_text())
    for key in spec:
        if key not in ("config", "set", "datasets", *CURVES):
            raise SystemExit(
                f"{args.file}: unknown key {key!r}; expected config, set, datasets, "
                + ", ".join(CURVES)
            )
    known = {c["name"] for curve in CURVES for c in spec.get(curve, [])}
    unknown = sorted(set(args.cases or []) - known)
    if unknown:
        raise SystemExit(
            f"{args.file}: no case named {', '.join(unknown)}; cases: {', '.join(sorted(known))}"
        )
    work = args.work / "quick" if args.quick else args.work
    study = Study(spec, work, args.quick)
    env = environment(threads=0)
    for curve in args.only or CURVES:
        cases = [c for c in spec.get(curve, []) if not args.cases or c["name"] in args.cases]
        if not cases:
            continue
        rows = (
            finetune_curves(study, cases) if curve == "finetune" else pretrain_curve(study, cases)
        )
        table = finetune_table(rows) if curve == "finetune" else pretrain_table(rows)
        name = f"budget_{curve}{'_quick' if args.quick else ''}"
        write_csv(args.results / f"{name}.csv", [{**env, **r} for r in rows])
        (args.results / f"{name}.md").write_text(table + "\n")
        print(f"\n## {curve}\n\n{table}\n", flush=True)
        if curve == "pretrain":
            diffs = pretrain_differences(rows, study.settings()["report"])
            name = f"budget_differences{'_quick' if args.quick else ''}"
            write_csv(args.results / f"{name}.csv", diffs.to_dict("records"))
            text = differences_table(diffs)
            (args.results / f"{name}.md").write_text(text + "\n")
            print(f"\n## pretrain: differences by budget (val PA-EPE)\n\n{text}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
