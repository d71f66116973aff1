"""The budget study (bench/budget.py) runs its curves end to end on tiny data, from the CLI.

The numbers of --quick mean nothing; what is checked is that every case becomes CLI runs whose
metrics reach the tables, that a finished run is not run again, and that bad case files are
refused naming the key.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # the budget study's runner, end to end

ROOT = Path(__file__).resolve().parents[1]

CASES = """
config: config/default.yaml
set: [finetune.augment_max_labels=0]
datasets:
  flat: [synth.background_contrast=0.0]
finetune:
  - name: tiny
    resolution: 32
    set: [finetune.augment=false]
pretrain:
  - name: curve
    resolution: 32
    objectives: [none, equivariant]
    epochs: [1]
    seeds: [0]
    finetune_set: [finetune.label_fraction=0.5]
  - name: screen
    data: flat
    resolution: 32
    objectives: [invariant]
    epochs: [1]
    finetune: false
"""


def budget(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "budget.py"), "--quick", "--work",
         str(tmp_path / "work"), "--results", str(tmp_path / "tables"), *args],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip


def rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("budget")
    (tmp / "cases.yaml").write_text(CASES)
    done = budget(tmp, "--file", str(tmp / "cases.yaml"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (tmp / "stdout.txt").write_text(done.stdout)
    return tmp


def test_learning_curves_come_from_finetune_runs(study):
    curve = rows(study / "tables" / "budget_finetune_quick.csv")
    assert [int(r["step"]) for r in curve] == [2, 4]  # validated every 2 of 4 steps (quick)
    assert {r["case"] for r in curve} == {"tiny"}
    assert all(float(r["val_pa_epe_cm"]) > 0 for r in curve)
    assert all(float(r["reference_val_pa_epe_cm"]) > 0 for r in curve)
    run = study / "work" / "quick" / "finetune" / "tiny"
    assert (run / "model.pt").is_file()
    log = (run.parent / "tiny.log").read_text()
    assert log.startswith("$ ") and "finetune.augment=false" in log  # the command, re-typeable
    assert "## finetune" in (study / "stdout.txt").read_text()


def test_pretraining_curve_probes_random_pretrained_and_supervised(study):
    table = rows(study / "tables" / "budget_pretrain_quick.csv")
    by = {(r["case"], r["objective"]): r for r in table}
    assert set(by) == {
        ("curve", "none"),
        ("curve", "supervised (none, finetuned)"),
        ("curve", "equivariant"),
        ("screen", "invariant"),
    }
    assert int(by[("curve", "none")]["pretrain_views"]) == 0
    # one epoch of the pool, two views per image
    pool = int(by[("curve", "equivariant")]["pretrain_views"]) // 2
    assert pool > 0
    for r in table:
        assert -10 < float(r["probe_pose2d_r2"]) <= 1
        assert 0 <= float(r["probe_orientation_top1"]) <= 1
    assert float(by[("curve", "equivariant")]["best_val_pa_epe_cm"]) > 0
    assert by[("screen", "invariant")]["best_val_pa_epe_cm"] == "nan"  # probe only
    assert by[("screen", "invariant")]["data"] == "flat"
    assert (study / "work" / "quick" / "data" / "flat" / "synth" / "training_xyz.json").is_file()


def test_pretraining_curve_differences_reach_their_table(study):
    diffs = rows(study / "tables" / "budget_differences_quick.csv")
    # the finetuned case only; one seed: a member without a test, and it says so
    assert [(r["case"], r["pretrain_epochs"], r["a"], r["b"]) for r in diffs] == [
        ("curve", "1", "equivariant", "none")
    ]
    assert diffs[0]["verdict"] == "no test (one seed)"
    assert "## pretrain: differences by budget" in (study / "stdout.txt").read_text()


def test_a_rerun_reuses_finished_runs(study):
    model = study / "work" / "quick" / "finetune" / "tiny" / "model.pt"
    before = model.stat().st_mtime_ns
    done = budget(study, "--file", str(study / "cases.yaml"), "--only", "finetune")
    assert done.returncode == 0, done.stderr[-2000:]
    assert model.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "text, message",
    [
        ("config: config/default.yaml\nbogus: 1\n", "unknown key 'bogus'"),
        ("finetune:\n  - name: a\n    data: nope\n", "no dataset named 'nope'"),
    ],
)
def test_bad_case_files_are_refused_naming_the_key(tmp_path, text, message):
    (tmp_path / "cases.yaml").write_text(text)
    done = budget(tmp_path, "--file", str(tmp_path / "cases.yaml"))
    assert done.returncode != 0 and message in done.stderr


GPU_TINY = """
synth: {n_train: 96, n_eval: 16, n_hands_train: 8, n_hands_eval: 2, image_size: 64, workers: 1}
prepare: {resolution: 32, workers: 1}
study: {label_fractions: [0.5, 1.0]}
pretrain: {epochs: 1, batch_size: 16}
finetune: {steps: 4, batch_size: 8, log_every_steps: 2, eval_batch_size: 32}
train: {threads: 1}
"""


def test_gpu_check_refuses_a_machine_without_cuda_and_runs_its_steps_on_the_cpu(tmp_path):
    import torch

    script = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--out", str(tmp_path / "o")]
    env_src = {"PYTHONPATH": str(ROOT / "src")}
    if not torch.cuda.is_available():
        refused = subprocess.run(script, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert refused.returncode == 2 and "no CUDA device" in refused.stderr
    config = tmp_path / "gpu_tiny.yaml"  # config/gpu.yaml's shape at a size the CPU runs at once
    config.write_text(GPU_TINY)
    done = subprocess.run(
        [*script, "--cpu", "--config", str(config)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
        env={**os.environ, **env_src},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 3 * 2  # header, rule, 3 objectives x 2 fractions
    assert "constant-pose reference" in done.stdout
    # the default study's settings lie under the file's, as under Snakemake
    used = yaml.safe_load((tmp_path / "o" / "study_config.yaml").read_text())
    assert used["synth"]["roll_deg"] == 30.0 and used["synth"]["n_train"] == 96
