"""The Snakemake workflow end to end on the smoke config, in a temporary working directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

pytestmark = pytest.mark.slow  # whole smoke studies through Snakemake

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# `snakemake` after registering a toy objective (a contrastive loss that already exists)
WITH_TOY_OBJECTIVE = """
import sys
from equihand import vocabulary
vocabulary.register_objective("toy", "equihand.methods.objectives:invariant")
from snakemake.cli import main
sys.exit(main())
"""


def snakemake(
    workdir: Path,
    *args: str,
    configfiles: tuple[Path, ...] | None = None,
    prelude: str | None = None,
):
    """Run snakemake on the repository's workflow; `prelude`: Python run before it, in-process."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    program = [sys.executable, "-c", prelude] if prelude else [str(BIN / "snakemake")]
    cmd = [
        *program,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configfiles or (REPO / "config" / "smoke.yaml",)),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_smoke_study_prepares_the_default_data(smoke_run: Path):
    cache = smoke_run / "results" / "prepared" / "synth"
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["format_version"] == 1
    assert meta["resolution"] == 32
    splits = dict(np.load(cache / "splits.npz"))
    assert len(splits["test"]) == 16
    assert sum(len(splits[k]) for k in ("labeled", "val")) <= 96
    assert (smoke_run / "data" / "synth" / "contact_sheet.png").is_file()
    # every step writes the resolved config beside its outputs: the smoke values arrived
    assert yaml.safe_load((cache / "config.yaml").read_text())["prepare"]["resolution"] == 32
    synth_cfg = yaml.safe_load((smoke_run / "data" / "synth" / "config.yaml").read_text())
    assert synth_cfg["synth"]["n_train"] == 96
    for log in ("synth.log", "prepare_synth.log"):
        assert (smoke_run / "logs" / log).is_file()


def test_rerun_has_nothing_to_do(smoke_run: Path):
    result = snakemake(smoke_run, "-n")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_smoke_study_fills_every_cell_of_the_ablation(smoke_run: Path):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())["study"]
    table = pd.read_csv(smoke_run / "results" / "tables" / "ablation.csv")
    cells = {(o, f) for o in config["objectives"] for f in config["label_fractions"]}
    assert set(zip(table["objective"], table["label_fraction"], strict=True)) == cells
    for column in ("epe_cm_mean", "pa_epe_cm_mean", "auc_mean", "pa_auc_mean"):
        assert np.isfinite(table[column]).all(), column
    assert (table["n_seeds"] == len(config["seeds"])).all()
    assert (smoke_run / "results" / "tables" / "ablation.md").is_file()
    # none has no pretraining job; the others have one per seed
    assert not list((smoke_run / "results" / "pretrain").glob("none_*"))
    assert len(list((smoke_run / "results" / "pretrain").glob("*/model.pt"))) == 2


FIGURES = [
    "pa_epe_per_objective",
    "pck_curves",
    "label_efficiency",
    "per_joint_heatmap",
    "loss_curves",
    "qualitative_grid",
]


def test_smoke_study_draws_every_figure_and_writes_the_report(smoke_run: Path):
    from equihand.vocabulary import FIGURES as NAMES

    assert sorted(NAMES) == sorted(FIGURES)
    folder = smoke_run / "results" / "figures"
    for name in FIGURES:
        with Image.open(folder / f"{name}.png") as png:
            assert png.width > 200 and png.height > 200, name
            assert len(np.unique(np.asarray(png.convert("L")))) > 10, f"{name}.png is blank"
        assert (folder / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name
        assert (REPO / "report" / f"{name}.rst").is_file(), f"no caption for {name}"
    report = smoke_run / "results" / "report"
    md = (report / "ablation.md").read_text()
    assert "## Answer" in md and "../figures/pa_epe_per_objective.png" in md
    reference = json.loads((smoke_run / "results" / "tables" / "reference.json").read_text())
    assert f"scores a PA-EPE of {reference['test_pa_epe_cm']:.2f} cm" in md
    assert "data:image/png;base64," in (report / "ablation.html").read_text()
    comps = pd.read_csv(report / "comparisons.csv")
    assert set(comps.loc[comps["kind"] == "objectives", "a"]) == {"invariant", "equivariant"}
    assert np.isfinite(comps["diff_cm"]).all()
    # the smoke study runs one seed: no test, no interval, and the report says so
    assert (comps["verdict"] == "no test (one seed)").all() and comps["p_holm"].isna().all()
    assert "With 1 seed there is no test and no interval" in md
    assert (smoke_run / "logs" / "figures.log").is_file()


def test_smoke_study_probes_every_encoder_and_reports_the_part_aware_claims(smoke_run: Path):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())["study"]
    encoders = ["random", "supervised", *(o for o in config["objectives"] if o != "none")]
    runs = pd.read_csv(smoke_run / "results" / "tables" / "part_aware.csv")
    assert set(runs["encoder"]) == set(encoders)
    assert set(runs["task"]) == {"gesture", "orientation", "pose2d", "part", "finger"}
    assert set(runs["seed"]) == set(config["seeds"])
    # the contrastive encoders are scored on their projector output too
    projected = set(runs.loc[runs["feature"] == "projector", "encoder"])
    assert projected == {"invariant", "equivariant"}
    classified = runs[runs["task"] != "pose2d"]
    assert classified["test_top1"].between(0, 1).all()
    assert (runs.loc[runs["task"] == "pose2d", "test_r2"] <= 1).all()
    claims = pd.read_csv(smoke_run / "results" / "tables" / "part_aware_claims.csv")
    assert {
        "pose_beats_random",
        "equivariant_pose",
        "beats_random",
        "supervised_object",
        "ssl_part",
        "backbone_part",
    } <= set(claims["claim"])
    md = (smoke_run / "results" / "report" / "ablation.md").read_text()
    assert "## Part-aware probe" in md and "../figures/part_aware.png" in md
    assert "holds more hand pose than an untrained one" in md
    assert "of the labels against 100%" in md  # the label effect, paired by seed
    assert (claims["verdict"] == "no test").all()
    with Image.open(smoke_run / "results" / "figures" / "part_aware.png") as png:
        assert len(np.unique(np.asarray(png.convert("L")))) > 10
    assert (smoke_run / "logs" / "probe" / "random_resnet18_s0.log").is_file()


def test_snakemake_report_collects_figures_and_tables(smoke_run: Path):
    out = smoke_run / "report.html"
    result = snakemake(smoke_run, "--report", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    html = out.read_text(errors="replace")
    names = ["ablation.csv", "ablation.html", "part_aware.csv", "part_aware.png"]
    for name in [*names, *(f"{n}.png" for n in FIGURES)]:
        assert name in html, name


def test_changing_prepare_params_reruns_prepare_not_synth(smoke_run: Path, tmp_path: Path):
    change = tmp_path / "change.yaml"
    change.write_text("prepare:\n  resolution: 16\n")
    result = snakemake(smoke_run, "-n", configfiles=(REPO / "config" / "smoke.yaml", change))
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "rule prepare:" in out
    assert "rule finetune:" in out
    assert "rule synth:" not in out


def test_invalid_config_fails_before_any_job(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("synth:\n  n_train: 0\n")
    result = snakemake(tmp_path, configfiles=(bad,))
    assert result.returncode != 0
    assert "n_train" in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "configfile, jobs",
    [
        # 2 objectives x 3 seeds pretrain; 3 objectives x 2 fractions x 3 seeds finetune and
        # evaluate; 4 encoders (random, supervised, 2 pretrained) x 3 seeds probe
        (
            "default.yaml",
            {"pretrain": 6, "finetune": 18, "evaluate": 18, "probe": 12, "part_aware": 1},
        ),
        # the MIM arms on top: 5 objectives x 3 seeds pretrain, 6 x 2 x 3 finetune, 7 x 3 probe
        (
            "extended.yaml",
            {"pretrain": 15, "finetune": 36, "evaluate": 36, "probe": 21, "part_aware": 1},
        ),
        # PeCLR with and without MIM at 10% only: 2 x 3 pretrain, finetune and evaluate; the
        # probe of the random encoder and the 2 pretrained ones (no `none` run: no supervised)
        (
            "mim.yaml",
            {"pretrain": 6, "finetune": 6, "evaluate": 6, "probe": 9, "part_aware": 1},
        ),
        # 9 seeds at 10% (2 objectives pretrain, 3 finetune), 3 at 100%, the probe on 3
        (
            "powered.yaml",
            {"pretrain": 18, "finetune": 36, "evaluate": 36, "probe": 12, "part_aware": 1},
        ),
        ("gpu.yaml", {"synth": 1, "pretrain": 6, "finetune": 18, "evaluate": 18, "probe": 12}),
        ("smoke.yaml", {"finetune": 6, "evaluate": 6, "probe": 4, "report": 1}),
        ("freihand.yaml", {"download": 1, "pretrain": 12, "finetune": 36, "evaluate": 36}),
    ],
)
def test_every_config_builds_its_dag(tmp_path: Path, configfile: str, jobs: dict):
    result = snakemake(tmp_path, "-n", configfiles=(REPO / "config" / configfile,))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    stats = out[out.index("Job stats:") :]
    for rule, count in jobs.items():
        assert re.search(rf"^{rule}\s+{count}$", stats, re.MULTILINE), (rule, stats[:600])


def test_small_fraction_seeds_add_runs_below_the_largest_fraction(tmp_path: Path):
    more = tmp_path / "more.yaml"
    more.write_text("study:\n  small_fraction_seeds: [3, 4, 5]\n")
    result = snakemake(tmp_path, "-n", configfiles=(REPO / "config" / "default.yaml", more))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    stats = out[out.index("Job stats:") :]
    # 2 objectives x 6 seeds pretrain; 3 objectives x (6 seeds at 10% + 3 at 100%) finetune and
    # evaluate; the probe on seeds 0-2 only
    for rule, count in {"pretrain": 12, "finetune": 27, "evaluate": 27, "probe": 12}.items():
        assert re.search(rf"^{rule}\s+{count}$", stats, re.MULTILINE), (rule, stats[:600])
    assert "none_resnet18_f0.1_s5" in out and "none_resnet18_f1.0_s5" not in out


def test_a_registered_objective_joins_the_smoke_dag(tmp_path: Path):
    """Adding an objective is one loss function and one registry entry: registered (here, in the
    process that runs Snakemake), it is a valid config value and gets its own rules."""
    toy = tmp_path / "toy.yaml"
    toy.write_text("study:\n  objectives: [none, invariant, toy]\n")
    configfiles = (REPO / "config" / "smoke.yaml", toy)
    refused = snakemake(tmp_path, "-n", configfiles=configfiles)
    assert refused.returncode != 0
    assert "'toy'" in refused.stdout + refused.stderr

    result = snakemake(tmp_path, "-n", configfiles=configfiles, prelude=WITH_TOY_OBJECTIVE)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    stats = out[out.index("Job stats:") :]
    # pretraining for invariant and toy; finetuning and evaluation for 3 objectives x 2
    # fractions; probes of random, supervised, invariant and toy (one seed)
    jobs = {"pretrain": 2, "finetune": 6, "evaluate": 6, "probe": 4}
    for rule, count in jobs.items():
        assert re.search(rf"^{rule}\s+{count}$", stats, re.MULTILINE), (rule, stats[:600])
    for path in (
        "results/pretrain/toy_resnet18_s0/model.pt",
        "results/finetune/toy_resnet18_f0.5_s0/model.pt",
        "results/evaluate/toy_resnet18_f1.0_s0/metrics.json",
        "results/probe/toy_resnet18_s0/probe.csv",
    ):
        assert path in out, path


def test_data_parallel_jobs_start_their_ranks_with_srun(tmp_path: Path):
    """study.resources.<rule>.tasks above 1: the job's shell starts its ranks with srun (the
    SLURM executor's `mpi` resource runs that shell once in the allocation); one task as ever."""
    ranks = tmp_path / "ranks.yaml"
    ranks.write_text(
        "study:\n  resources:\n    pretrain: {tasks: 2, nodes: 1, gpu: 2, threads: 3}\n"
    )
    result = snakemake(tmp_path, "-n", "-p", configfiles=(REPO / "config" / "smoke.yaml", ranks))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    launch = "srun --ntasks=2 --nodes=1 --cpus-per-task=3 --gpus-per-task=1 --kill-on-bad-exit=1"
    assert f"{launch} equihand pretrain" in out
    assert "equihand finetune" in out
    assert not re.search(r"srun[^\n]*equihand finetune", out)

    for bad, message in (
        ("evaluate: {tasks: 2}", "only pretrain and finetune run on several ranks"),
        ("pretrain: {tasks: 3, nodes: 2}", "tasks 3 is not a multiple of nodes 2"),
        ("pretrain: {tasks: 2, gpu: 1}", "gpu 1 must be 0 or equal tasks 2"),
    ):
        ranks.write_text(f"study:\n  resources:\n    {bad}\n")
        refused = snakemake(tmp_path, "-n", configfiles=(REPO / "config" / "smoke.yaml", ranks))
        assert refused.returncode != 0
        assert message in refused.stdout + refused.stderr, bad


def test_jobs_find_equihand_without_an_activated_venv(tmp_path: Path):
    """`.venv/bin/snakemake` with the venv not on PATH: the Snakefile puts it there for jobs."""
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    cmd = [
        str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory",
        str(tmp_path), "--configfile", str(REPO / "config" / "smoke.yaml"), "--cores", "1",
        "--until", "synth",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "data" / "synth" / "contact_sheet.png").is_file()
