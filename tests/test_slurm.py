"""`snakemake --profile slurm` on a real one-node SLURM cluster (tests/slurm_cluster.py: munged,
slurmctld and slurmd from Debian's packages, no accounting database, two GPU gres on a node
without GPUs): the smoke study end to end, what each job asked SLURM for, results identical to a
local run, and a training job cancelled mid-run that is retried and resumes from its checkpoint.

The cluster needs the `slurm-wlm` and `munge` packages and root (.ci/run installs them); without
them every test here fails, naming what is missing. About 5 minutes in all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from slurm_cluster import Cluster, ClusterError

from equihand.outputs import MARKER
from equihand.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # a real slurmctld + slurmd (Debian packages)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMOKE = REPO / "config" / "smoke.yaml"
PROFILE = yaml.safe_load((REPO / "slurm" / "profile.yaml").read_text())
TRAINING = ("pretrain", "finetune")
# What the smoke study asks of the test node (2 CPUs): one thread per job, little memory, a GPU
# for each training job. The same file is given to the local run the SLURM run is compared with.
CLUSTER_CONFIG = {
    "study": {
        "resources": {
            "pretrain": {"threads": 1, "mem_mb": 1500, "runtime": 30, "gpu": 1},
            "finetune": {"threads": 1, "mem_mb": 1500, "runtime": 20, "gpu": 1},
            "evaluate": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpu": 0},
            "probe": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpu": 0},
        }
    }
}
# Snakemake asks SLURM for job states every few seconds instead of the profile's 40+ (speed only)
FAST_POLLING = (
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    try:
        running = Cluster(tmp_path_factory.mktemp("slurm")).start()
    except ClusterError as e:
        pytest.fail(f"cannot start the test SLURM cluster: {e}", pytrace=False)
    yield running
    running.stop()


def snakemake_cmd(workdir: Path, configfiles, *args: str) -> list[str]:
    files = [str(f) for f in configfiles]
    return [str(BIN / "snakemake"), "--directory", str(workdir), "--configfile", *files, *args]


def slurm_env(cluster: Cluster) -> dict:
    env = cluster.env
    return {**env, "PATH": f"{BIN}:{env['PATH']}", "CI": "true"}


def snakemake_slurm(cluster, workdir, configfiles, *args, popen: Path | None = None):
    """`snakemake --profile slurm ...` typed in the repo root, on the test cluster.

    Waits for it and returns the CompletedProcess, or with `popen` (a file for its output)
    starts it and returns the Popen.
    """
    cmd = snakemake_cmd(workdir, configfiles, "--profile", "slurm", *FAST_POLLING, *args)
    kw = dict(cwd=REPO, env=slurm_env(cluster), text=True)
    if popen is not None:
        with open(popen, "w") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
    return subprocess.run(cmd, capture_output=True, timeout=900, **kw)


def write_cluster_config(folder: Path) -> Path:
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(CLUSTER_CONFIG))
    return path


def job_rule(job: dict) -> str:
    """The rule of a job the Snakemake SLURM executor submitted (it goes in --comment)."""
    return re.match(r"rule_([a-z_]+?)(?:_wildcards_|$)", job["Comment"]).group(1)


def test_job_rule_reads_rule_names_with_underscores():
    assert job_rule({"Comment": "rule_probe_data"}) == "probe_data"
    assert job_rule({"Comment": "rule_part_aware"}) == "part_aware"
    comment = "rule_probe_wildcards_encoder=random_backbone=resnet18_seed=0"
    assert job_rule({"Comment": comment}) == "probe"


def job_stats(log: str) -> dict[str, int]:
    """Jobs per rule in Snakemake's "Job stats:" table."""
    counts = {}
    for line in log[log.index("Job stats:") :].splitlines()[3:]:
        row = re.match(r"^(\w+)\s+(\d+)$", line)
        if row is None or row.group(1) == "total":
            break
        counts[row.group(1)] = int(row.group(2))
    return counts


def output_files(workdir: Path) -> set[str]:
    return {
        str(p.relative_to(workdir))
        for top in ("data", "results", "logs")
        for p in (workdir / top).rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_study")
    config = write_cluster_config(tmp_path_factory.mktemp("slurm_config"))
    # the jobs the study has (a dry run, no cluster): each must become one SLURM job
    dry = subprocess.run(
        snakemake_cmd(tmp_path_factory.mktemp("dry"), (SMOKE, config), "-n"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=local_env(),
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = job_stats(dry.stdout + dry.stderr)
    planned.pop("all")  # no command: Snakemake runs it itself
    tic = time.monotonic()
    result = snakemake_slurm(cluster, workdir, (SMOKE, config))
    seconds = time.monotonic() - tic
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = [j for j in cluster.jobs() if j["JobName"] == run_id]
    print(f"smoke study on SLURM: {seconds:.0f} s, {len(jobs)} jobs")
    return SimpleNamespace(
        workdir=workdir,
        config=config,
        log=log,
        jobs=jobs,
        planned=planned,
        files=output_files(workdir),
    )


@pytest.fixture(scope="module")
def local_run(slurm_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local_study")
    cmd = snakemake_cmd(workdir, (SMOKE, slurm_run.config), "--cores", "2")
    result = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=local_env(),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return workdir


def local_env() -> dict:
    """No cluster: the local run and the dry runs."""
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    return {**env, "PATH": f"{BIN}:{env['PATH']}", "CI": "true"}


# -- the profile ---------------------------------------------------------------------------------


def test_profile_is_found_from_the_repo_root_and_sends_jobs_to_slurm(tmp_path):
    assert PROFILE["executor"] == "slurm"
    # the status command that works without an accounting database (sacct fails there)
    assert PROFILE["slurm-status-command"] == "squeue"
    assert PROFILE["retries"] >= 1
    defaults = PROFILE["default-resources"]
    assert defaults["mem_mb"] <= 4000 and defaults["runtime"] <= 60
    assert not {"gpu", "gpus", "gres", "gpu_model"} & set(defaults)
    result = subprocess.run(
        snakemake_cmd(tmp_path, (SMOKE,), "--profile", "slurm", "-n"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=local_env(),
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Using profile slurm" in out and "Job stats:" in out


def test_the_test_cluster_has_no_accounting(cluster):
    # what the profile's squeue status command is for: sacct fails on such a cluster
    sacct = cluster.run("sacct", check=False)
    assert sacct.returncode != 0 or "disabled" in sacct.stdout + sacct.stderr


# -- the smoke study on SLURM --------------------------------------------------------------------


def test_every_job_of_the_smoke_study_ran_as_a_slurm_job(slurm_run):
    counts = pd.Series([job_rule(j) for j in slurm_run.jobs]).value_counts().to_dict()
    assert counts == slurm_run.planned
    assert counts["pretrain"] == 2 and counts["finetune"] == 6 and counts["evaluate"] == 6
    for job in slurm_run.jobs:
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job


def _minutes(limit: str) -> int:
    """SLURM's [days-]hours:minutes:seconds in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, _ = (int(x) for x in clock.split(":"))
    return 1440 * int(days or 0) + 60 * hours + minutes


def _megabytes(memory: str) -> int:
    """SLURM's 1500M / 2G in MB."""
    number, unit = int(memory[:-1]), memory[-1]
    return number * {"M": 1, "G": 1024, "T": 1024**2}[unit]


def test_training_jobs_ask_for_a_gpu_and_the_small_rules_stay_cheap(slurm_run):
    resources = CLUSTER_CONFIG["study"]["resources"]
    for job in slurm_run.jobs:
        rule = job_rule(job)
        asked_gpu = "gres:gpu:1" in job.get("TresPerJob", "")
        granted_gpu = job["JOB_GRES"] == "gpu:1"  # what SLURM allocated
        if rule in resources:
            want = resources[rule]
        else:
            want = PROFILE["default-resources"] | PROFILE["set-resources"].get(rule, {})
            want = {**want, "gpu": 0, "threads": 1}
        assert asked_gpu == granted_gpu == bool(want["gpu"]), (rule, job)
        assert (asked_gpu, rule) == (rule in TRAINING, rule), job
        assert _megabytes(job["MinMemoryNode"]) == want["mem_mb"], (rule, job)
        assert _minutes(job["TimeLimit"]) == want["runtime"], (rule, job)
        assert job["NumCPUs"] == str(want["threads"]), (rule, job)


def test_slurm_results_match_a_local_run(slurm_run, local_run):
    """Same files; same numbers (both runs train with one thread per job, so bit for bit)."""
    local = output_files(local_run)
    assert slurm_run.files == local
    for rel in sorted(local):
        ours, theirs = slurm_run.workdir / rel, local_run / rel
        if rel.startswith("logs/"):
            continue
        if rel.endswith("model.pt"):
            a = load_checkpoint(ours)["model"]
            b = load_checkpoint(theirs)["model"]
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), rel
        elif rel.endswith("metrics.csv") and "/evaluate/" not in rel:
            # training curves: identical but for the measured speed
            a, b = pd.read_csv(ours), pd.read_csv(theirs)
            pd.testing.assert_frame_equal(
                a.drop(columns="images_per_s"), b.drop(columns="images_per_s"), check_exact=True
            )
        elif rel.endswith("config.yaml"):
            # resolved configs: identical but for the worker processes of synth and prepare
            a, b = yaml.safe_load(ours.read_text()), yaml.safe_load(theirs.read_text())
            for config in (a, b):
                for section in ("synth", "prepare"):
                    config.get(section, {}).pop("workers", None)
            assert a == b, rel
        elif rel.endswith(MARKER):
            # the steps' claims on a shared folder: a set, appended in the order the jobs ran
            assert sorted(ours.read_text().splitlines()) == sorted(
                theirs.read_text().splitlines()
            ), rel
        else:
            assert ours.read_bytes() == theirs.read_bytes(), rel
    table = pd.read_csv(slurm_run.workdir / "results" / "tables" / "ablation.csv")
    assert len(table) == 6 and table["pa_epe_cm_mean"].notna().all()


def test_rerun_under_slurm_has_nothing_to_do(cluster, slurm_run):
    result = snakemake_slurm(cluster, slurm_run.workdir, (SMOKE, slurm_run.config), "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


# -- preemption ----------------------------------------------------------------------------------


def cancel_after_a_checkpoint(cluster, workdir, configs, target, comment, output: Path):
    """Build `target` (a training job's model.pt) under `snakemake --profile slurm`, scancel its
    job (SIGTERM, as on preemption) once resume.pt exists, and wait for Snakemake to retry it to
    the end. Checks the two attempts (CANCELLED, then COMPLETED) and the restart; returns the
    resume.pt seen before the cancel, the job log then, the cancelled job id, Snakemake's output
    and the attempts."""
    run_dir = workdir / Path(target).parent
    log = workdir / "logs" / "pretrain" / f"{run_dir.name}.log"
    proc = snakemake_slurm(cluster, workdir, configs, target, popen=output)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "resume.pt").exists():
            assert proc.poll() is None, output.read_text()[-4000:]
            assert time.monotonic() < deadline, "no resume.pt after 300 s"
            time.sleep(0.2)
        resumable = load_checkpoint(run_dir / "resume.pt")
        first_log = log.read_text()
        (running,) = [
            j for j in cluster.jobs() if j["Comment"] == comment and j["JobState"] == "RUNNING"
        ]
        cluster.run("scancel", running["JobId"])
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = output.read_text()
    assert proc.returncode == 0, out[-6000:]
    attempts = [j for j in cluster.jobs() if j["Comment"] == comment]
    assert [j["JobState"] for j in attempts] == ["CANCELLED", "COMPLETED"], attempts
    assert "Trying to restart job" in out, out[-4000:]
    return SimpleNamespace(
        resumable=resumable,
        first_log=first_log,
        cancelled=running["JobId"],
        output=out,
        attempts=attempts,
    )


def test_cancelled_training_job_is_retried_and_resumes_from_its_checkpoint(
    cluster, slurm_run, tmp_path
):
    """scancel sends SIGTERM (SIGKILL KillWait s later), as SLURM does when it preempts a job.

    equihand saves resume.pt and exits 143; SLURM marks the job CANCELLED; Snakemake (the
    profile's retries) submits it again, and the new job starts from resume.pt's step.
    """
    steps = 150
    longer = tmp_path / "longer.yaml"
    longer.write_text(
        yaml.safe_dump(
            {
                "progress": "always",  # the log shows where the progress bar starts
                "pretrain": {"epochs": 1000, "max_steps": steps, "checkpoint_every": 10},
            }
        )
    )
    target = "results/pretrain/invariant_resnet18_s7/model.pt"  # relative to the workdir
    run_dir = slurm_run.workdir / Path(target).parent
    configs = (SMOKE, slurm_run.config, longer)
    comment = "rule_pretrain_wildcards_invariant_resnet18_7"
    run = cancel_after_a_checkpoint(
        cluster, slurm_run.workdir, configs, target, comment, tmp_path / "snakemake.out"
    )
    saved = run.resumable["step"]
    assert 0 < saved < steps
    assert run.attempts[0]["JobId"] == run.cancelled
    # the second attempt's progress bar starts where the first one's resume.pt left off
    log = (slurm_run.workdir / "logs" / "pretrain" / "invariant_resnet18_s7.log").read_text()
    started = int(re.search(rf"(\d+)/{steps}\b", log).group(1))
    assert saved <= started < steps, log[:2000]
    final = load_checkpoint(slurm_run.workdir / target)
    assert final["final"] and final["step"] == steps
    assert not (run_dir / "resume.pt").exists()
    print(f"cancelled at step >= {saved}; the retry resumed at step {started} of {steps}")


# -- data parallelism ----------------------------------------------------------------------------


def test_a_two_task_training_job_runs_two_ranks_and_resumes_on_two_after_a_cancel(
    cluster, slurm_run, tmp_path
):
    """study.resources.pretrain.tasks: 2 -> one SLURM job of 2 tasks (one fake GPU each) whose
    shell starts both ranks with srun; each rank logs its rank, rank 0 alone writes; scancel
    (SIGTERM to every task, as on preemption) stops both ranks at the same step after rank 0
    saved resume.pt, and the retried job resumes from it on 2 ranks."""
    steps = 150
    ranked = tmp_path / "ranks.yaml"
    two_tasks = {"threads": 1, "mem_mb": 3000, "runtime": 30, "gpu": 2, "tasks": 2}
    ranked.write_text(
        yaml.safe_dump(
            {
                "progress": "always",
                "pretrain": {"epochs": 1000, "max_steps": steps, "checkpoint_every": 10},
                "study": {"resources": {"pretrain": two_tasks}},
            }
        )
    )
    target = "results/pretrain/invariant_resnet18_s8/model.pt"
    run_dir = slurm_run.workdir / Path(target).parent
    log_path = slurm_run.workdir / "logs" / "pretrain" / "invariant_resnet18_s8.log"
    configs = (SMOKE, slurm_run.config, ranked)
    comment = "rule_pretrain_wildcards_invariant_resnet18_8"
    run = cancel_after_a_checkpoint(
        cluster, slurm_run.workdir, configs, target, comment, tmp_path / "snakemake.out"
    )
    saved, attempts, first_log = run.resumable["step"], run.attempts, run.first_log
    assert 0 < saved < steps
    assert run.resumable["extra"]["world_size"] == 2
    assert all(j["NumTasks"] == "2" for j in attempts), attempts
    log = log_path.read_text()
    for text in (first_log, log):  # both attempts ran 2 ranks, each logging its rank
        assert len(re.findall(r"equihand: rank 0 of 2 on ", text)) == 1, text[-3000:]
        assert len(re.findall(r"equihand: rank 1 of 2 on ", text)) == 1, text[-3000:]
    # rank 0 alone writes and reports: one progress bar, one closing line, one metrics row a step
    assert len(re.findall(r"pretrained resnet18 with invariant", log)) == 1, log[-3000:]
    started = int(re.search(rf"(\d+)/{steps}\b", log).group(1))
    assert saved <= started < steps, log[:2000]
    final = load_checkpoint(run_dir / "model.pt")
    assert final["final"] and final["step"] == steps
    assert not (run_dir / "resume.pt").exists()
    one_task = slurm_run.workdir / "results" / "pretrain" / "invariant_resnet18_s0"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in one_task.iterdir())
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["step"].is_unique, metrics
    print(f"2 ranks cancelled at step >= {saved}; the retry resumed at step {started} of {steps}")
