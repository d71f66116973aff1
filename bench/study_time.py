"""Whole-study wall times: the latest measured ones from Snakemake's own logs, or a fresh run.

    python bench/study_time.py [--run smoke|default|powered]

Reading (the default): `.snakemake/log/*.snakemake.log` of the repo, each of which names its
config files and its config's MD5 and ends, when the run completed, with "N of N steps (100%)
done" and "Elapsed time". For each config (default, smoke, powered) the latest whole run: one
completed log whose run began at the data step (`prepare`), or a run resumed across sessions --
a completed log and the earlier logs of the same config MD5 back to the one that ran `prepare`
(no completed log of that MD5 in between). A resumed run's wall time is the sum of its parts,
each from its start to its last finished job (the jobs a stopped part left unfinished ran again
in the next part and count there); its steps are the jobs its parts finished. Where no whole run
is logged, the completed run with the most steps. Also sums the per-job seconds of the repo's
`benchmarks/` files (synth, prepare, pretrain, finetune, probe: the jobs that have a
`benchmark:`). Running: Snakemake on the repo's Snakefile in a fresh temporary working folder
(its own results/, data/, logs/, benchmarks/ and .snakemake/, so nothing in the repo is
touched), timed end to end.
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

CONFIGS = {"default": [], "smoke": ["config/smoke.yaml"], "powered": ["config/powered.yaml"]}
_DONE = re.compile(r"^(\d+) of \1 steps \(100%\) done", re.M)
_ELAPSED = re.compile(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.M)
_CONFIGS = re.compile(r"Config file\(s\): \[(.*)\]")
_DATE = re.compile(r"Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_MD5 = re.compile(r"Config MD5: (\w+)")
# the data step: a run from scratch starts here
_PREPARE = re.compile(r"^(?:local)?rule prepare:$", re.M)
_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def _time(stamp: str) -> datetime.datetime:
    """A Snakemake log's 'Mon Dec  7 06:52:04 2026' time."""
    return datetime.datetime.strptime(" ".join(stamp.split()), "%a %b %d %H:%M:%S %Y")


def job_times(log: Path) -> list[dict]:
    """Every finished job of one Snakemake log: rule, wildcards, seconds from start to finish,
    and the finish time."""
    started, jobs, stamp, current = {}, [], None, None
    for line in log.read_text(errors="replace").splitlines():
        if m := _STAMP.match(line):
            stamp = _time(m[1])
        elif m := _START.match(line):
            current = {"rule": m[1], "start": stamp, "wildcards": {}}
        elif (m := _JOBID.match(line)) and current is not None:
            started[m[1]] = current
        elif (m := _WILDCARDS.match(line)) and current is not None:
            current["wildcards"] = dict(kv.split("=", 1) for kv in m[1].split(", "))
        elif m := _FINISHED.match(line):
            job = started.pop(m[1], None)
            if job is not None and job["rule"] == m[2]:
                seconds = (stamp - job["start"]).total_seconds()
                job |= {"s": seconds, "end": stamp}
                jobs.append({k: job[k] for k in ("rule", "wildcards", "s", "end")})
    return jobs


def log_part(path: Path) -> dict | None:
    """One Snakemake log of a run (None for a log without a config, e.g. of a lint): its config
    name and MD5, start, finished jobs, whether it started the data step (`prepare`), whether it
    completed, and its wall seconds (elapsed if it completed, else to its last finished job)."""
    text = path.read_text(errors="replace")
    configs, md5, date = _CONFIGS.search(text), _MD5.search(text), _DATE.search(text)
    if not (configs and date):
        return None
    files = [Path(f.strip().strip("'\"")).name for f in configs.group(1).split(",") if f.strip()]
    extra = [f for f in files if f != "default.yaml"]
    start = datetime.datetime.strptime(date.group(1), "%Y-%m-%d %H:%M:%S")
    jobs = job_times(path)
    done, elapsed = _DONE.search(text), _ELAPSED.search(text)
    if done and elapsed:
        hours, minutes, seconds = elapsed.groups()
        wall = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    else:
        wall = max(((j["end"] - start).total_seconds() for j in jobs), default=0.0)
    return {
        "study": "default" if not extra else Path(extra[0]).stem if len(extra) == 1 else None,
        "md5": md5.group(1) if md5 else None,
        "started": date.group(1),
        "jobs": jobs,
        "steps": int(done.group(1)) if done else len(jobs),
        "completed": bool(done and elapsed),
        "from_data": bool(_PREPARE.search(text)),
        "wall_s": round(wall, 1),
        "source": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
    }


def parse_log(path: Path) -> dict | None:
    """The config name, step count, start date and seconds of a completed Snakemake run."""
    part = log_part(path)
    if part is None or not part["completed"]:
        return None
    return {k: part[k] for k in ("study", "steps", "wall_s", "started", "source")}


def whole_run(parts: list[dict], last: int) -> list[dict] | None:
    """The parts of the run that completed in `parts[last]`, oldest first: back through earlier
    logs of the same config MD5 to the one that started the data step; None where the chain
    meets a completed run of that MD5 first or no part started the data step (not a whole run)."""
    chain = [parts[last]]
    for earlier in reversed(parts[:last]):
        if chain[0]["from_data"]:
            break
        if earlier["md5"] != parts[last]["md5"] or earlier["md5"] is None:
            continue
        if earlier["completed"]:
            return None
        chain.insert(0, earlier)
    return chain if chain[0]["from_data"] else None


def latest_runs(
    log_dir: Path = ROOT / ".snakemake" / "log", studies: tuple | None = tuple(CONFIGS)
) -> dict[str | None, dict]:
    """Per config name (of `studies`; None: every config), its latest whole run (one log or
    resumed parts), else its completed run with the most steps; each with its logs (`parts`)."""
    parts = [p for p in map(log_part, sorted(log_dir.glob("*.snakemake.log"))) if p]
    whole: dict[str, dict] = {}
    most: dict[str, dict] = {}
    for i, part in enumerate(parts):  # names sort by start time
        if not part["completed"] or (studies is not None and part["study"] not in studies):
            continue
        if (chain := whole_run(parts, i)) is not None:
            whole[part["study"]] = _combined(chain)
        old = most.get(part["study"])
        if old is None or part["steps"] >= old["steps"]:
            most[part["study"]] = _combined([part])
    return most | whole


def _combined(chain: list[dict]) -> dict:
    sources = ", ".join(p["source"] for p in chain)
    return {
        "study": chain[-1]["study"],
        "steps": sum(len(p["jobs"]) for p in chain) if len(chain) > 1 else chain[0]["steps"],
        "wall_s": round(sum(p["wall_s"] for p in chain), 1),
        "started": chain[0]["started"],
        "source": sources if len(chain) == 1 else f"{len(chain)} resumed parts: {sources}",
        "parts": chain,
    }


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
            row = {k: v for k, v in logged[name].items() if k != "parts"}
            row["source"] = f"read from {row['source']}"
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
