"""DVC versions the study's checkpoints: dvc.yaml's stages call Snakemake, `dvc push` sends the
checkpoints to a remote (a local folder, and S3 served by moto on 127.0.0.1), and a fresh clone
gets them back with `equihand pull` (`dvc pull` that verifies every object's md5 before checking
out) and regenerates evaluation, tables, figures and report without a single training job. Broken
remotes (unreachable, an object missing, an object whose bytes do not match its hash) fail with a
clear message and leave the workspace as it was.

Everything happens in a temporary git repository holding a copy of this working tree (tracked
files and new, not ignored ones), trained once per module with `dvc repro report@smoke` (~2 min).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from equihand.vocabulary import FIGURES

pytestmark = pytest.mark.slow  # real DVC remotes, git and whole smoke studies

# equihand figures' PNGs and the part-aware probe's (equihand part-aware)
N_FIGURES = len(FIGURES) + 1

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = Path("results") / "smoke"
# dvc.yaml versions one study, `make study` as committed; these tests point it at `make smoke`'s,
# as its comment tells a user to
SMOKE_STUDY = {
    "config": "config/smoke.yaml",
    "args": "--config results_dir=results/smoke data_dir=data/smoke",
    "raw": "data/smoke/synth",
    "results": "results/smoke",
}
CHECKPOINT_DIRS = ("pretrain", "finetune")
BUCKET = "equihand-test"


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "CI": "true",  # no progress bars in logs
        # git commits in the temporary repositories
        "GIT_AUTHOR_NAME": "equihand tests",
        "GIT_AUTHOR_EMAIL": "tests@equihand.invalid",
        "GIT_COMMITTER_NAME": "equihand tests",
        "GIT_COMMITTER_EMAIL": "tests@equihand.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(tmp),  # no user-level git or DVC config
        "DVC_NO_ANALYTICS": "1",
        # moto accepts any credentials; DVC and boto3 read them from the environment
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def run(cwd: Path, *cmd: str, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result


def dvc(cwd: Path, *args: str, env: dict, **kw) -> subprocess.CompletedProcess:
    return run(cwd, BIN / "dvc", *args, env=env, **kw)


def git(cwd: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return ok(run(cwd, "git", *args, env=env))


def copy_working_tree(dest: Path) -> None:
    """This repo's tracked files and its new, not ignored ones (as a commit would have them)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():  # skip tracked files deleted in the working tree
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def checkpoints(root: Path) -> dict[str, str]:
    """md5 of every file in the checkpoint folders, by path relative to `root`."""
    return {
        str(p.relative_to(root)): md5(p)
        for d in CHECKPOINT_DIRS
        for p in sorted((root / RESULTS / d).rglob("*"))
        if p.is_file()
    }


def snapshot(root: Path) -> dict[str, str]:
    """md5 of every file of the workspace, .git and DVC's own folder aside."""
    return {
        str(p.relative_to(root)): md5(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".git", ".dvc"} & set(p.relative_to(root).parts)
    }


def lock_outs(root: Path, stage: str) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for o in lock["stages"][stage]["outs"]}


def last_job_stats(log: str) -> dict[str, int]:
    """Jobs per rule of the last Snakemake run in `log` (its "Job stats:" table)."""
    table = log[log.rindex("Job stats:") :].splitlines()[3:]
    rows = [re.match(r"^(\w+)\s+(\d+)$", line) for line in table]
    counts = {}
    for row in rows:
        if row is None or row.group(1) == "total":
            break
        counts[row.group(1)] = int(row.group(2))
    return counts


def remote_object(remote: Path, md5_hash: str) -> Path:
    return remote / "files" / "md5" / md5_hash[:2] / md5_hash[2:]


def cache_object(root: Path, md5_hash: str) -> Path:
    return remote_object(root / ".dvc" / "cache", md5_hash)


def equihand_pull(cwd: Path, *args: str, env: dict, **kw) -> subprocess.CompletedProcess:
    return run(cwd, BIN / "equihand", "pull", *args, env=env, **kw)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single `equihand pull: error: ...` line a failed pull prints, and nothing else."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("equihand pull: error: "), result.stderr
    print(lines[0])  # what the user reads (pytest -rP shows it)
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _free_disk(tmp_path):
    """Each clone holds the checkpoints twice (workspace and cache): drop it after its test."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return _env(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def s3(env):
    """An S3 endpoint (moto's server, a real HTTP server on 127.0.0.1) with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


@pytest.fixture(scope="module")
def origin(tmp_path_factory, env) -> Path:
    """A git repository with this working tree, the smoke study trained by `dvc repro`."""
    root = tmp_path_factory.mktemp("dvc") / "origin"
    copy_working_tree(root)
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    spec["vars"][0]["study"] = SMOKE_STUDY
    (root / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(root, "init", "-q", "-b", "main", env=env)
    git(root, "add", "-A", env=env)
    git(root, "commit", "-q", "-m", "equihand", env=env)
    ok(dvc(root, "repro", env=env))
    git(root, "add", "-A", env=env)
    git(root, "commit", "-q", "-m", "smoke study trained", env=env)
    return root


@pytest.fixture(scope="module")
def remotes(origin, s3, env, tmp_path_factory) -> dict[str, Path | str]:
    """The trained checkpoints pushed to a local-folder remote (default) and to S3."""
    endpoint, _ = s3
    folder = tmp_path_factory.mktemp("remote") / "store"
    # what README tells a user to type
    ok(dvc(origin, "remote", "add", "-d", "local", str(folder), env=env))
    ok(dvc(origin, "remote", "modify", "local", "verify", "true", env=env))
    ok(dvc(origin, "remote", "add", "s3", f"s3://{BUCKET}/equihand", env=env))
    ok(dvc(origin, "remote", "modify", "s3", "endpointurl", endpoint, env=env))
    ok(dvc(origin, "remote", "modify", "s3", "verify", "true", env=env))
    git(origin, "commit", "-q", "-am", "remotes", env=env)
    ok(dvc(origin, "push", env=env))
    ok(dvc(origin, "push", "-r", "s3", env=env))
    return {"local": folder, "s3": endpoint}


def clone(origin: Path, dest: Path, env: dict) -> Path:
    git(dest.parent, "clone", "-q", str(origin), dest.name, env=env)
    return dest


# -- dvc.yaml ----------------------------------------------------------------------------------


def _study_paths(config_file: str, args: str) -> dict:
    """Where Snakemake puts a study's raw data and results (config files, then --config)."""
    from equihand.config import load_config

    overrides = args.split("--config", 1)[1].split() if "--config" in args else []
    config = load_config(None, [])
    for path in ("config/default.yaml", config_file):
        config |= yaml.safe_load((REPO / path).read_text())
    config |= dict(o.split("=", 1) for o in overrides)
    return {
        "raw": f"{config['data_dir']}/{config['dataset']}",
        "results": config["results_dir"],
    }


@pytest.mark.parametrize("study", ["committed", "smoke"])
def test_dvc_yaml_study_paths_are_where_snakemake_writes(study):
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    chosen = spec["vars"][0]["study"] if study == "committed" else SMOKE_STUDY
    assert _study_paths(chosen["config"], chosen["args"]) == {
        "raw": chosen["raw"],
        "results": chosen["results"],
    }
    if study == "smoke":  # the same study as `make smoke`
        assert chosen["args"].removeprefix("--config ") in (REPO / "Makefile").read_text()


def test_dvc_yaml_stages_call_snakemake_and_read_the_config_files():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for stage in spec["stages"].values():
        for cmd in stage["cmd"].split("&&"):
            assert cmd.strip().startswith("snakemake --cores all --configfile ${study.config}")
        # parameters are the config files themselves: no params.yaml copy
        assert stage["params"] == [{"config/default.yaml": None}, {"${study.config}": None}]
    assert not (REPO / "params.yaml").exists()
    # the checkpoint outputs survive a rerun of their stage: Snakemake decides what reruns
    assert all(next(iter(o.values()))["persist"] for o in spec["stages"]["train"]["outs"])
    # the figures dvc plots shows are the ones equihand draws
    plotted = [next(iter(p)) for p in spec["stages"]["report"]["plots"]]
    figures = sorted(Path(p).stem for p in plotted if p.endswith(".png"))
    assert figures == sorted([*FIGURES, "part_aware"])  # part_aware: `equihand part-aware`


def test_aggregate_writes_the_metrics_dvc_shows(tmp_path):
    from equihand.analysis.aggregate import aggregate

    paths = []
    for objective, pa_epe in (("none", 4.0), ("equivariant", 3.0)):
        for seed in (0, 1):
            path = tmp_path / f"{objective}_{seed}" / "metrics.json"
            path.parent.mkdir()
            metrics = {"objective": objective, "backbone": "resnet18", "label_fraction": 0.1}
            metrics |= {"seed": seed, "epe_cm": 9.0, "pa_epe_cm": pa_epe + seed}
            metrics |= {"auc": 0.5, "pa_auc": 0.7}
            path.write_text(json.dumps(metrics))
            paths.append(path)
    table = aggregate(paths, tmp_path / "tables")
    shown = json.loads((tmp_path / "tables" / "metrics.json").read_text())
    assert set(shown) == {"none_resnet18_f0.1", "equivariant_resnet18_f0.1"}
    cell = shown["equivariant_resnet18_f0.1"]
    row = table.set_index("objective").loc["equivariant"]
    assert cell["pa_epe_cm_mean"] == pytest.approx(3.5) == row["pa_epe_cm_mean"]
    assert cell["n_seeds"] == 2
    assert cell["pa_epe_improvement_pct"] == pytest.approx(100 * (4.5 - 3.5) / 4.5)


# -- the promised flow -------------------------------------------------------------------------


def test_repro_records_checkpoints_metrics_and_params(origin, env):
    outs = lock_outs(origin, "train")
    assert set(outs) == {
        "data/smoke/synth",
        f"{RESULTS}/prepared",
        f"{RESULTS}/pretrain",
        f"{RESULTS}/finetune",
    }
    lock = yaml.safe_load((origin / "dvc.lock").read_text())["stages"]["train"]
    smoke = yaml.safe_load((origin / "config" / "smoke.yaml").read_text())
    assert lock["params"]["config/smoke.yaml"] == smoke
    assert len(list((origin / RESULTS / "finetune").glob("*/model.pt"))) == 6
    status = ok(dvc(origin, "status", env=env)).stdout
    assert "train" not in status and "report" not in status, status
    # git has dvc.lock, and none of the data or checkpoints (DVC's cache holds those)
    tracked = git(origin, "ls-files", env=env).stdout.split()
    assert "dvc.lock" in tracked
    assert not [
        t for t in tracked if t.startswith(("results/", "data/")) and t != "results/.gitkeep"
    ]


def test_push_sends_every_checkpoint_to_both_remotes(origin, remotes, s3):
    _, client = s3
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="equihand/")
    in_s3 = {o["Key"].split("/", 1)[1] for page in pages for o in page.get("Contents", [])}
    for rel, digest in checkpoints(origin).items():
        assert remote_object(remotes["local"], digest).is_file(), rel
        assert f"files/md5/{digest[:2]}/{digest[2:]}" in in_s3, rel


@pytest.mark.parametrize("remote", ["local", "s3"])
def test_fresh_clone_pulls_checkpoints_and_regenerates_the_rest_without_training(
    origin, remotes, env, tmp_path, remote
):
    work = clone(origin, tmp_path / "clone", env)
    assert not (work / RESULTS).exists()
    pulled = ok(equihand_pull(work, "-r", remote, env=env)).stdout
    assert f"match dvc.lock (remote '{remote}'" in pulled, pulled
    assert checkpoints(work) == checkpoints(origin)
    if remote == "local":
        # the DVC way: the report stage runs Snakemake (train@smoke is up to date)
        out = ok(dvc(work, "repro", "report", env=env))
        assert "'train' didn't change, skipping" in out.stdout, out.stdout
    else:
        # what README shows for Snakemake alone: restore timestamps, then run
        args = ["--cores", "2", "--configfile", "config/smoke.yaml", "--config"]
        args += ["results_dir=results/smoke", "data_dir=data/smoke"]
        until = ["--until", "finetune"]
        trap = last_job_stats(ok(run(work, BIN / "snakemake", *args, "-n", env=env)).stdout)
        print(f"without --touch after dvc pull, Snakemake would run {trap}")
        ok(run(work, BIN / "snakemake", *args, "--touch", *until, env=env))
        assert checkpoints(work) == checkpoints(origin)  # touched, not rewritten
        out = ok(run(work, BIN / "snakemake", *args, env=env))
    log = out.stdout + out.stderr
    # not a single training job: the run that did the work scheduled none, none wrote its
    # benchmark or its log (--touch only touches them), no checkpoint changed
    ran = last_job_stats(log)
    assert not {"pretrain", "finetune", "synth", "prepare"} & set(ran), ran
    assert {"evaluate", "aggregate", "figures", "report"} <= set(ran), ran
    assert ran["evaluate"] == 6, ran
    for rule in ("pretrain", "finetune"):
        assert not (work / "benchmarks" / rule).exists(), rule
        assert all(p.stat().st_size == 0 for p in (work / "logs").glob(f"{rule}/*")), rule
    assert checkpoints(work) == checkpoints(origin)
    # evaluation, tables, figures and report are back, with the same numbers
    for rel in ("tables/ablation.csv", "tables/metrics.json", "report/ablation.html"):
        assert (work / RESULTS / rel).is_file(), rel
    assert len(list((work / RESULTS / "figures").glob("*.png"))) == N_FIGURES
    for rel in ("tables/ablation.csv", "tables/metrics.json"):
        assert (work / RESULTS / rel).read_bytes() == (origin / RESULTS / rel).read_bytes(), rel
    for path in (origin / RESULTS / "evaluate").rglob("metrics.json"):
        rel = path.relative_to(origin)
        assert (work / rel).read_bytes() == path.read_bytes(), rel
    # a second run has nothing to do: the timestamps are consistent now
    again = ok(
        run(
            work,
            BIN / "snakemake",
            "-n",
            "--configfile",
            "config/smoke.yaml",
            "--config",
            "results_dir=results/smoke",
            "data_dir=data/smoke",
            env=env,
        )
    )
    assert "Nothing to be done" in again.stdout + again.stderr


def test_metrics_and_plots_show_the_ablation(origin, env, tmp_path):
    shown = json.loads(ok(dvc(origin, "metrics", "show", "--json", env=env)).stdout)
    # {"": {"data": {path: {"data": {...}}}}} in DVC 3 (workspace)
    data = next(iter(shown.values()))["data"]
    smoke = data[f"{RESULTS}/tables/metrics.json"]["data"]
    table = pd.read_csv(origin / RESULTS / "tables" / "ablation.csv")
    assert len(smoke) == len(table) == 6
    for row in table.itertuples():
        cell = smoke[f"{row.objective}_{row.backbone}_f{row.label_fraction}"]
        assert cell["pa_epe_cm_mean"] == pytest.approx(row.pa_epe_cm_mean)
    out = tmp_path / "plots"
    ok(dvc(origin, "plots", "show", "-o", str(out), env=env))
    html = (out / "index.html").read_text()
    assert "PA-EPE by label fraction" in html and '"field": "objective"' in html
    assert len(list((out / "static").glob("*.png"))) == N_FIGURES


# -- errors ------------------------------------------------------------------------------------


def test_unreachable_remote_is_a_clear_error_and_changes_nothing(origin, remotes, env, tmp_path):
    work = clone(origin, tmp_path / "clone", env)
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    ok(dvc(work, "remote", "add", "dead", f"s3://{BUCKET}/equihand", env=env))
    ok(dvc(work, "remote", "modify", "dead", "endpointurl", dead, env=env))
    # botocore retries a refused connection with back-off (~1.5 min for a push): try once
    impatient = {**env, "AWS_MAX_ATTEMPTS": "1"}
    before = snapshot(work)
    pulled = dvc(work, "pull", "-r", "dead", env=impatient, timeout=300)
    assert pulled.returncode != 0
    assert "failed to connect to s3" in pulled.stderr, pulled.stderr
    assert f'Could not connect to the endpoint URL: "{dead}/' in pulled.stderr, pulled.stderr
    assert snapshot(work) == before
    error = one_line_error(equihand_pull(work, "-r", "dead", env=impatient, timeout=300))
    assert f"cannot reach DVC remote 'dead' (s3://{BUCKET}/equihand)" in error, error
    assert f'Could not connect to the endpoint URL: "{dead}/' in error, error
    assert snapshot(work) == before
    before = snapshot(origin)
    ok(dvc(origin, "remote", "add", "--local", "dead", f"s3://{BUCKET}/x", env=env))
    ok(dvc(origin, "remote", "modify", "--local", "dead", "endpointurl", dead, env=env))
    pushed = dvc(origin, "push", "-r", "dead", env=impatient, timeout=300)
    ok(dvc(origin, "remote", "remove", "--local", "dead", env=env))
    assert pushed.returncode != 0
    assert f'Could not connect to the endpoint URL: "{dead}/' in pushed.stderr, pushed.stderr
    assert snapshot(origin) == before


def _broken_copy(remotes, tmp_path: Path, name: str) -> Path:
    broken = tmp_path / name
    shutil.copytree(remotes["local"], broken)
    return broken


def _a_finetuned_model(origin: Path) -> tuple[str, str]:
    """Path (relative to the repo) and md5 of one finetuned checkpoint."""
    model = sorted((origin / RESULTS / "finetune").glob("*/model.pt"))[0]
    return str(model.relative_to(origin)), md5(model)


def test_missing_object_is_a_clear_error_and_changes_nothing(origin, remotes, env, tmp_path):
    broken = _broken_copy(remotes, tmp_path, "missing")
    rel, digest = _a_finetuned_model(origin)
    remote_object(broken, digest).unlink()
    work = clone(origin, tmp_path / "clone", env)
    ok(dvc(work, "remote", "add", "broken", str(broken), env=env))
    before = snapshot(work)
    error = one_line_error(equihand_pull(work, "-r", "broken", env=env))
    assert f"DVC remote 'broken' ({broken}) has 1 object(s) missing: {rel} (md5 {digest})" in (
        error
    ), error
    assert "dvc push -r broken" in error, error
    assert snapshot(work) == before
    pulled = dvc(work, "pull", "-r", "broken", env=env)
    assert pulled.returncode != 0
    assert "failed to pull data from the cloud" in pulled.stderr, pulled.stderr
    assert digest in pulled.stderr and "No such file" in pulled.stderr, pulled.stderr
    assert snapshot(work) == before  # not even the objects that were there were checked out


@pytest.mark.parametrize("where", ["local", "s3"])
def test_object_whose_hash_does_not_match_is_refused_and_changes_nothing(
    origin, remotes, s3, env, tmp_path, where
):
    rel, digest = _a_finetuned_model(origin)
    good = (origin / rel).read_bytes()
    bad = good[:-100] + b"x" * 100  # same size, other bytes
    work = clone(origin, tmp_path / "clone", env)
    if where == "local":  # a corrupted copy of the remote, `verify true` as README shows
        broken = _broken_copy(remotes, tmp_path, "corrupt")
        obj = remote_object(broken, digest)
        obj.chmod(0o644)
        obj.write_bytes(bad)
        ok(dvc(work, "remote", "add", "broken", str(broken), env=env))
        ok(dvc(work, "remote", "modify", "broken", "verify", "true", env=env))
        remote, targets, on_remote = "broken", [], str(obj)
    else:  # the S3 remote itself, restored below; only the finetuning checkpoints
        remote, targets = "s3", [f"{RESULTS}/finetune"]
        key = f"equihand/files/md5/{digest[:2]}/{digest[2:]}"
        on_remote = f"s3://{BUCKET}/{key}"
        s3[1].put_object(Bucket=BUCKET, Key=key, Body=bad)
    before = snapshot(work)
    try:
        error = one_line_error(equihand_pull(work, "-r", remote, *targets, env=env))
    finally:
        if where == "s3":
            s3[1].put_object(Bucket=BUCKET, Key=key, Body=good)
    # names the remote, the output, both hashes, and how to repair the remote
    assert f"DVC remote '{remote}' (" in error, error
    actual = hashlib.md5(bad).hexdigest()
    assert f"md5 hash does not match: {rel} (expected md5 {digest}, got {actual})" in error
    assert f"delete {on_remote} on the remote, then `dvc push -r {remote}`" in error, error
    # nothing reached the workspace, and the corrupted object is not kept in the cache
    assert snapshot(work) == before
    assert not (work / RESULTS).exists()
    assert not cache_object(work, digest).exists()
    if where == "local":
        # plain `dvc pull` refuses the object too, but checks out the intact outputs and says
        # only "Is your cache up to date?" (the object is named in its -v log only)
        pulled = dvc(work, "pull", "-r", remote, env=env)
        assert pulled.returncode != 0
        assert "Checkout failed for following targets" in pulled.stderr, pulled.stderr[-3000:]
        assert f"{RESULTS}/finetune" in pulled.stderr and digest not in pulled.stderr
        assert sorted(p.name for p in (work / RESULTS).iterdir()) == ["prepared", "pretrain"]
        assert not cache_object(work, digest).exists()
    # from the intact remote the same clone gets the right checkpoint
    intact = "local" if where == "local" else "s3"
    ok(equihand_pull(work, "-r", intact, *targets, env=env))
    assert md5(work / rel) == digest
    assert {k: v for k, v in checkpoints(work).items() if "finetune" in k} == {
        k: v for k, v in checkpoints(origin).items() if "finetune" in k
    }


def test_pull_never_overwrites_a_checkpoint_that_differs(origin, remotes, env, tmp_path):
    work = clone(origin, tmp_path / "clone", env)
    ok(dvc(work, "pull", env=env))
    # equihand pull gives the workspace dvc pull gives
    other = clone(origin, tmp_path / "other", env)
    ok(equihand_pull(other, env=env))
    assert snapshot(other) == snapshot(work)
    # a corrupted copy in the local cache is fetched again, not blamed on the remote
    rel, digest = _a_finetuned_model(origin)
    cached = cache_object(other, digest)
    cached.chmod(0o644)
    cached.write_bytes(b"bit rot")
    shutil.rmtree(other / RESULTS / "finetune")
    again = ok(equihand_pull(other, env=env))
    rot = hashlib.md5(b"bit rot").hexdigest()
    said = f"the local cache's copy of {rel} had md5 {rot}, expected {digest}: removed"
    assert said in again.stderr, again.stderr
    assert md5(cached) == md5(other / rel) == digest
    assert snapshot(other) == snapshot(work)
    shutil.rmtree(other)
    model = sorted((work / RESULTS / "finetune").glob("*/model.pt"))[0]
    model.chmod(0o644)
    model.write_bytes(model.read_bytes() + b"retrained")
    before = snapshot(work)
    status = ok(dvc(work, "status", "train", env=env)).stdout
    assert "modified" in status and f"{RESULTS}/finetune" in status, status
    pulled = dvc(work, "pull", env=env)
    assert pulled.returncode != 0
    assert "unsaved files" in pulled.stderr and str(model) in pulled.stderr, pulled.stderr
    assert snapshot(work) == before
    error = one_line_error(equihand_pull(work, env=env))
    assert "unsaved files" in error and str(model) in error, error
    assert snapshot(work) == before
