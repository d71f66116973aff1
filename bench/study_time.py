"""Whole-study wall times: the latest measured ones from Snakemake's own logs, or a fresh run.

    python bench/study_time.py [--run smoke|default]

Reading (the default): `.snakemake/log/*.snakemake.log` of the repo, each of which names its
config files and ends, when the run completed, with "N of N steps (100%) done" and "Elapsed
time"; for each config (default, smoke) the completed run with the most steps (the whole DAG,
not a partial rerun), the latest of those on a tie. Also sums the per-job seconds of the repo's
`benchmarks/` files (synth, prepare, pretrain, finetune: the jobs that have a `benchmark:`).
Running: Snakemake on the repo's Snakefile in a fresh temporary working folder (its own
results/, data/, logs/, benchmarks/ and .snakemake/, so nothing in the repo is touched), timed
end to end.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, environment, markdown, write_csv

CONFIGS = {"default": [], "smoke": ["config/smoke.yaml"]}
_DONE = re.compile(r"^(\d+) of \1 steps \(100%\) done", re.M)
_ELAPSED = re.compile(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.M)
_CONFIGS = re.compile(r"Config file\(s\): \[(.*)\]")
_DATE = re.compile(r"Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def parse_log(path: Path) -> dict | None:
    """The config name, step count, start date and seconds of a completed Snakemake run."""
    text = path.read_text(errors="replace")
    done, elapsed, configs = _DONE.search(text), _ELAPSED.search(text), _CONFIGS.search(text)
    if not (done and elapsed and configs):
        return None
    files = [Path(f.strip().strip("'\"")).name for f in configs.group(1).split(",") if f.strip()]
    extra = [f for f in files if f != "default.yaml"]
    name = "default" if not extra else Path(extra[0]).stem if len(extra) == 1 else None
    hours, minutes, seconds = elapsed.groups()
    date = _DATE.search(text)
    return {
        "study": name,
        "steps": int(done.group(1)),
        "wall_s": round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 1),
        "started": date.group(1) if date else "",
        "source": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
    }


def latest_runs(log_dir: Path = ROOT / ".snakemake" / "log") -> dict[str, dict]:
    best: dict[str, dict] = {}
    for path in sorted(log_dir.glob("*.snakemake.log")):  # names sort by start time
        run = parse_log(path)
        if run and run["study"] in CONFIGS:
            old = best.get(run["study"])
            if old is None or run["steps"] >= old["steps"]:
                best[run["study"]] = run
    return best


def benchmark_sums(folder: Path = ROOT / "benchmarks") -> dict:
    """Seconds per rule summed over the job files in `folder` (and their latest date)."""
    sums: dict[str, float] = {}
    newest = 0.0
    for path in sorted(folder.rglob("*.tsv")):
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        rule = path.parent.name if path.parent != folder else path.stem.split("_")[0]
        sums[rule] = sums.get(rule, 0.0) + sum(float(r["s"]) for r in rows[-1:])
        newest = max(newest, path.stat().st_mtime)
    date = datetime.datetime.fromtimestamp(newest, datetime.UTC) if newest else None
    return {"per_rule_s": sums, "newest": date.strftime("%Y-%m-%d %H:%M") if date else ""}


def run_study(name: str, cores: str = "all") -> dict:
    """Run the study `name` in a fresh temporary working folder; its wall seconds."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory(prefix=f"equihand-{name}-") as tmp:
        command = [os.path.join(bin_dir, "snakemake"), "-s", str(ROOT / "Snakefile")]
        command += ["--directory", tmp, "--cores", cores]
        for file in CONFIGS[name]:
            command += ["--configfile", str(ROOT / file)]
        command += ["--config", f"results_dir={tmp}/results", f"data_dir={tmp}/data"]
        started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
        tic = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - tic
        if done.returncode:
            raise RuntimeError(f"{name} study failed:\n{done.stderr[-3000:]}")
        steps = _DONE.search(done.stdout + done.stderr)
    return {
        "study": name,
        "steps": int(steps.group(1)) if steps else "",
        "wall_s": round(seconds, 1),
        "started": started,
        "source": "measured now (fresh temporary folder)",
    }


def run(run_names: list[str], threads: int = 0) -> list[dict]:
    rows = []
    logged = latest_runs()
    for name in CONFIGS:
        if name in run_names:
            row = run_study(name)
        elif name in logged:
            row = logged[name] | {"source": f"read from {logged[name]['source']}"}
        else:
            row = {"study": name, "steps": "", "wall_s": "", "started": "", "source": "no log"}
        row["wall_min"] = round(row["wall_s"] / 60, 1) if row["wall_s"] != "" else ""
        rows.append(row | environment(threads or os.cpu_count() or 1))
    sums = benchmark_sums()
    for rule, seconds in sums["per_rule_s"].items():
        rows.append(
            {
                "study": f"default, jobs of rule {rule}",
                "wall_s": round(seconds, 1),
                "wall_min": round(seconds / 60, 1),
                "started": sums["newest"],
                "source": "sum of benchmarks/ files",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="*", choices=list(CONFIGS), default=[])
    parser.add_argument("--csv", type=Path, default=RESULTS / "study_time.csv")
    args = parser.parse_args(argv)
    rows = run(args.run)
    print(markdown(rows, ["study", "steps", "wall_s", "wall_min", "started", "source"]))
    print(f"wrote {write_csv(args.csv, rows)}")


if __name__ == "__main__":
    main()
