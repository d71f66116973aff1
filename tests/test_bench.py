"""The benchmark suite (bench/run.py) runs end to end in --quick mode and writes sane CSVs.

No timing is asserted here: targets live in the suite's output (bench/README.md) only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equihand import metrics as m

pytestmark = pytest.mark.slow  # the benchmark scripts, run small

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

EXPECTED = {
    "throughput": {"backbone", "resolution", "model_images_per_s", "pipeline_images_per_s",
                   "ratio", "gather_s", "two_views_s", "load_1min", "threads", "date_utc"},
    "baseline": {"backbone", "resolution", "baseline_images_per_s", "pipeline_images_per_s",
                 "speedup", "speedup_min", "speedup_max", "rounds", "workers", "load_1min",
                 "model_default_images_per_s", "baseline_vs_model_default", "model_images_per_s",
                 "pipeline_vs_model"},
    "scaling": {"images", "epoch_s", "peak_rss_mb", "time_per_image_vs_smallest",
                "rss_vs_smallest_mb", "load_1min"},
    "metrics": {"method", "seconds_for_n", "speedup_vs_loop"},
    "study": {"study", "wall_s", "source"},
}  # fmt: skip
POSITIVE = {
    "throughput": ["model_images_per_s", "pipeline_images_per_s", "ratio"],
    "baseline": [
        "baseline_images_per_s",
        "pipeline_images_per_s",
        "speedup",
        "model_default_images_per_s",
        "model_images_per_s",
    ],
    "scaling": ["epoch_s", "peak_rss_mb", "time_per_image_vs_smallest"],
    "metrics": ["seconds_for_n", "speedup_vs_loop"],
}


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def quick_run(tiny_dataset, cache, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--threads", "1", "--device", "cpu",
         "--cache", str(cache), "--source", str(tiny_dataset), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


def test_quick_suite_writes_every_table(quick_run):
    out, stdout = quick_run
    for name, columns in EXPECTED.items():
        rows = _read(out / f"{name}.csv")
        assert rows, name
        assert columns <= set(rows[0]), (name, columns - set(rows[0]))
        assert f"## {name}" in stdout
        for row in rows:
            for key in POSITIVE.get(name, []):
                value = float(row[key])
                assert math.isfinite(value) and value > 0, (name, key, row[key])
    throughput = _read(out / "throughput.csv")
    assert {(r["backbone"], r["resolution"]) for r in throughput} == {
        ("resnet18", "32"),
        ("resnet18", "64"),
    }
    assert [int(r["images"]) for r in _read(out / "scaling.csv")] == [32, 64]
    for row in _read(out / "baseline.csv"):  # one round in quick mode: median = min = max
        assert float(row["speedup_min"]) == float(row["speedup"]) == float(row["speedup_max"])
        ratio = float(row["pipeline_images_per_s"]) / float(row["baseline_images_per_s"])
        assert float(row["speedup"]) == pytest.approx(ratio, abs=2e-3)


def test_scaling_reports_the_childs_own_peak_not_its_parents(cache, tmp_path):
    """A child started from a process with a large peak RSS reports its own peak: ru_maxrss
    would carry the parent's into the child across vfork/fork + exec."""
    sys.path.insert(0, str(BENCH))
    try:
        import scaling
    finally:
        sys.path.remove(str(BENCH))
    ballast_mb = 3072
    ballast = np.ones(ballast_mb * 2**20 // 8)  # touched: resident in this process
    rows = scaling.run([32], cache, threads=1, batch=8)
    del ballast
    peak = rows[0]["peak_rss_mb"]
    assert 100 < peak < ballast_mb, peak  # torch alone is a few hundred MB
    assert rows[0]["rss_before_training_mb"] <= peak


@pytest.mark.parametrize("text", ["resnet18:32", "resnet18:32px:128", "resnet18:32:128:1"])
def test_bench_cases_that_are_not_backbone_resolution_batch_are_refused(text):
    done = subprocess.run(
        [sys.executable, str(BENCH / "train_throughput.py"), "--cases", text],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"--cases: {text!r} is not backbone:resolution:batch" in done.stderr


def test_vectorised_metrics_agree_with_the_loop():
    sys.path.insert(0, str(BENCH))
    try:
        import metrics_speed
    finally:
        sys.path.remove(str(BENCH))
    pred, gt = metrics_speed.realistic_samples(300, seed=1)
    ref = m.per_sample_loop_reference(pred, gt)
    np.testing.assert_allclose(m.keypoint_errors(pred, gt), ref["errors"], rtol=0, atol=1e-12)
    aligned = m.procrustes_align(pred, gt)
    np.testing.assert_allclose(m.keypoint_errors(aligned, gt), ref["pa_errors"], atol=1e-9)
    epe, pa_epe = metrics_speed.vectorised_epe(pred, gt)
    assert epe == pytest.approx(ref["epe"], abs=1e-12)
    assert pa_epe == pytest.approx(ref["pa_epe"], abs=1e-9)
    rows, check = metrics_speed.run(400, 100, 1, 0)
    assert check["max_abs_diff_pa_m"] < 1e-9
    assert all(r["speedup_vs_loop"] > 0 for r in rows)


# --- the data-path optimisations the suite measures (equihand.data.cache, train.fit) --------


def test_row_reader_and_prefetcher_return_the_memory_mapped_rows(cache):
    from equihand.data.cache import Prefetcher, PreparedData

    data = PreparedData(cache)
    reader = data.reader("images")
    rng = np.random.default_rng(0)
    for rows in [np.array([0]), np.arange(5, 17), np.array([3, 3, 1, -1])]:
        np.testing.assert_array_equal(reader[rows], data.images[rows])
    for _ in range(20):
        rows = np.sort(rng.choice(len(reader), rng.integers(1, 30), replace=False))
        got = reader[rows]
        assert got.flags.c_contiguous and got.dtype == np.uint8
        np.testing.assert_array_equal(got, data.images[rows])
    assert reader[np.zeros(0, np.int64)].shape == (0, *data.images.shape[1:])
    with pytest.raises(IndexError):
        reader[np.array([len(reader)])]
    prefetcher = Prefetcher(reader)
    try:
        prefetcher.prefetch(np.arange(4))
        np.testing.assert_array_equal(prefetcher[np.arange(4)], data.images[:4])  # the read
        prefetcher.prefetch(np.arange(4))
        np.testing.assert_array_equal(prefetcher[np.arange(2, 6)], data.images[2:6])  # a miss
    finally:
        prefetcher.close()


def test_fit_announces_each_next_micro_batch(tmp_path):
    import torch

    from equihand.config import load_config
    from equihand.train.loop import Loop, fit

    config = load_config(None, ["progress=never", "device=cpu", "pretrain.epochs=3",
                                "pretrain.batch_size=4", "pretrain.accumulate=2"])  # fmt: skip
    used, announced = [], []

    def step_loss(model, positions):
        used.append(positions.tolist())
        return model(torch.ones(1, 1)).square().sum(), len(positions)

    loop = Loop("pretrain", config, config["pretrain"], 0, 19, tmp_path, step_loss)
    loop.prefetch = lambda positions: announced.append(positions.tolist())
    fit(loop, torch.nn.Linear(1, 1), torch.device("cpu"))
    assert len(used) == 3 * 2 * 2  # 3 epochs x 2 steps (19 // 8) x 2 micro-batches
    assert announced == used[1:]  # every micro-batch but the first was announced before it ran


def test_ddp_bench_times_one_process_and_two_ranks(cache, tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "ddp.py"), "--cache", str(cache), "--batch", "8",
         "--steps", "3", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _read(tmp_path / "ddp.csv")
    cores = os.cpu_count() or 1
    cases = {(r["device"], int(r["ranks"]), int(r["threads_per_rank"])) for r in rows}
    assert {("cpu", 1, 1), ("cpu", 1, cores), ("cpu", 2, max(1, cores // 2))} <= cases
    for row in rows:
        assert float(row["steps_per_s"]) > 0, row
        assert float(row["images_per_s"]) == pytest.approx(
            float(row["steps_per_s"]) * 2 * 8, rel=1e-2
        )
    assert "steps_per_s" in done.stdout


def test_compare_studies_pairs_runs_by_name(tmp_path):
    def study(name: str, epe: list[float]) -> Path:
        for seed, value in enumerate(epe):
            run = tmp_path / name / "evaluate" / f"none_resnet18_f1.0_s{seed}"
            run.mkdir(parents=True)
            metrics = {"objective": "none", "label_fraction": 1.0, "epe_cm": value}
            metrics |= {"auc": 0.1, "pa_epe_cm": 2.0}
            (run / "metrics.json").write_text(json.dumps(metrics))
        return tmp_path / name

    off, on = study("off", [100.0, 300.0]), study("on", [8.0, 9.0])
    (on / "evaluate" / "none_resnet18_f1.0_s5").mkdir()  # not in both: left out
    done = subprocess.run(
        [sys.executable, str(BENCH / "compare_studies.py"), str(off), str(on), "--names", "off",
         "on", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = _read(tmp_path / "compare_studies.csv")
    assert row["seeds"] == "2"
    assert row["EPE (cm) on - off"] == "-192 (-291 to -92)"
    assert row["AUC on - off"] == "+0 (+0 to +0)"


def test_calibration_bench_shows_the_old_bootstrap_overclaiming(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "calibration.py"), "--studies", "200", "--seeds", "3",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = _read(tmp_path / "calibration.csv")
    assert row["seeds"] == "3" and row["studies"] == "200"
    assert (
        float(row["t+Holm: family-wise"])
        < 0.1
        < 0.2
        < float(row["old bootstrap: max per comparison"])
    )
    assert 0.7 < float(row["found at that MDE"]) <= 1.0


def test_power_bench_is_the_reports_power_analysis_on_the_measured_sds(tmp_path):
    from equihand.analysis.calibration import MEASURED_PA_EPE as arms
    from equihand.analysis.stats import minimum_detectable_effect

    done = subprocess.run(
        [sys.executable, str(BENCH / "power.py"), "--seeds", "3", "6", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["comparison"]: r for r in _read(tmp_path / "power.csv")}
    assert len(rows) == 9  # the report's family: 6 objective comparisons, 3 label effects
    sd = math.hypot(arms[("invariant", 0.1)][1], arms[("none", 0.1)][1])
    mde = minimum_detectable_effect(sd, 3, 0.05 / 9, 0.8)
    row = rows["invariant vs none @ 0.1"]
    assert row["MDE at 3 seeds (cm, % of b)"].startswith(f"{mde:.2f} ")
    assert float(row["MDE at 6 seeds (cm, % of b)"].split()[0]) < mde  # more seeds, smaller MDE
    assert int(row["seeds for 3%"]) < int(row["seeds for 2%"])


def _log_job(rule: str, jobid: int, start: str, end: str, wildcards: str = "") -> str:
    """One job as a Snakemake 9 log writes it (start and finish stamps)."""
    lines = [f"[{start}]", f"localrule {rule}:", f"    jobid: {jobid}"]
    lines += [f"    wildcards: {wildcards}"] if wildcards else []
    lines += ["    threads: 2", f"[{end}]", f"Finished jobid: {jobid} (Rule: {rule})"]
    return "\n".join(lines)


def test_design_bench_reads_a_studys_sds_job_times_and_curves(tmp_path):
    from equihand.analysis.stats import minimum_detectable_effect

    study = tmp_path / "study"
    rng = np.random.default_rng(0)
    objectives, fractions, seeds = ("none", "invariant", "equivariant"), (0.1, 1.0), (0, 1, 2)
    runs = [
        {"objective": o, "backbone": "resnet18", "label_fraction": f, "seed": s,
         "pa_epe_cm": (2.4 if f < 1 else 1.8) - 0.02 * i + 0.03 * rng.standard_normal()}
        for i, o in enumerate(objectives) for f in fractions for s in seeds
    ]  # fmt: skip
    (study / "results" / "tables").mkdir(parents=True)
    pd_runs = pd.DataFrame(runs)
    pd_runs.to_csv(study / "results" / "tables" / "runs.csv", index=False)
    # a log: 10 s of data, pretraining 60 s, finetuning 40 s (10%) / 50 s (100%), evaluation 5 s
    t = [0]

    def stamp(seconds: int) -> str:
        t[0] += seconds
        h, m, s = t[0] // 3600, t[0] // 60 % 60, t[0] % 60
        return f"Mon Dec  7 {6 + h:02d}:{m:02d}:{s:02d} 2026"

    jobs, jobid = [], 0
    jobs.append(_log_job("prepare", 0, stamp(0), stamp(10)))
    for o in objectives[1:]:
        for s in seeds:
            jobid += 1
            w = f"objective={o}, backbone=resnet18, seed={s}"
            jobs.append(_log_job("pretrain", jobid, stamp(0), stamp(60), w))
    for o in objectives:
        for f in fractions:
            for s in seeds:
                w = f"objective={o}, backbone=resnet18, fraction={f}, seed={s}"
                jobid += 1
                jobs.append(_log_job("finetune", jobid, stamp(0), stamp(40 if f < 1 else 50), w))
                jobid += 1
                jobs.append(_log_job("evaluate", jobid, stamp(1), stamp(5), w))
    n = jobid + 1
    jobs.append(f"{n} of {n} steps (100%) done")
    jobs.append(f"Elapsed time: {t[0] // 3600}:{t[0] // 60 % 60:02d}:{t[0] % 60:02d}")
    log = study / ".snakemake" / "log" / "2026-12-07T060000.000000.snakemake.log"
    log.parent.mkdir(parents=True)
    head = (
        "  Date: 2026-12-07 06:00:00\n  Config file(s): ['/study/config/default.yaml']\n"
        "  Config MD5: 0f\nBuilding DAG of jobs...\n"
    )
    log.write_text(head + "\n".join(jobs) + "\n")
    for o in objectives:
        for s in seeds:
            run = study / "results" / "finetune" / f"{o}_resnet18_f0.1_s{s}"
            run.mkdir(parents=True)
            (run / "metrics.csv").write_text(
                "epoch,step,loss,val_pa_epe_cm\n0,250,1.0,3.0\n1,500,0.5,2.5\n2,750,0.4,2.6\n"
            )
    done = subprocess.run(
        [sys.executable, str(BENCH / "design.py"), "--study", str(study), "--seeds", "3", "6",
         "--design", "3:3", "6:3", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    power = {r["comparison"]: r for r in _read(tmp_path / "out" / "design_power.csv")}
    assert len(power) == 9 and {r["family"] for r in power.values()} == {"9"}
    pairs = pd_runs[pd_runs.label_fraction == 0.1].pivot(index="seed", columns="objective")
    d = pairs["pa_epe_cm"]["none"] - pairs["pa_epe_cm"]["invariant"]
    row = power["invariant vs none @ 0.1"]
    assert float(row["SD of d (cm)"]) == pytest.approx(d.std(ddof=1), abs=5e-4)
    mde = minimum_detectable_effect(d.std(ddof=1), 6, 0.05 / 9, 0.8)
    assert row["MDE 6"].startswith(f"{mde:.3f} ")
    cost = {r["part"]: r for r in _read(tmp_path / "out" / "design_cost.csv")}
    wall = t[0] / 60
    assert float(cost["measured wall time"]["total (min)"]) == pytest.approx(wall, abs=0.05)
    assert cost["pretrain"]["median s per job"] == "60"
    assert cost["finetune (<100% of the labels)"]["median s per job"] == "40"
    assert cost["evaluate"]["median s per job"] == "5"  # the 1 s before it is a gap
    # the design the study ran costs what it took; 3 more seeds at 10%: 3 x (2 pretrain + 3 x
    # (finetune + evaluate at 10%)) more
    assert float(cost["design: 3 seeds below 100%, 3 at 100%"]["total (min)"]) == pytest.approx(
        wall, abs=0.05
    )
    more = 3 * (2 * 60 + 3 * (40 + 5)) / 60
    assert float(cost["design: 6 seeds below 100%, 3 at 100%"]["total (min)"]) == pytest.approx(
        wall + more, abs=0.05
    )
    curves = _read(tmp_path / "out" / "design_curves.csv")
    assert [(r["step"], r["above the run's best (cm)"]) for r in curves[:3]] == [
        ("250", "+0.500"),
        ("500", "+0.000"),
        ("750", "+0.100"),
    ]


def test_findings_bench_lays_out_the_reports_numbers(tmp_path):
    from equihand.analysis.ablation import ablation_table
    from equihand.analysis.comparisons import comparisons
    from equihand.config import load_config

    rng = np.random.default_rng(1)
    runs = pd.DataFrame(
        [
            {"objective": o, "backbone": "resnet18", "label_fraction": f, "seed": s,
             "epe_cm": 8.0 + rng.standard_normal(), "pa_epe_cm": 2.0 + 0.1 * rng.standard_normal(),
             "auc": 0.1, "pa_auc": 0.5}
            for o in ("none", "invariant", "equivariant") for f in (0.1, 1.0) for s in (0, 1, 2)
        ]
    )  # fmt: skip
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    (results / "report").mkdir()
    ablation_table(runs).to_csv(results / "tables" / "ablation.csv", index=False)
    comps = comparisons(runs, load_config(None, [])["report"])
    comps.to_csv(results / "report" / "comparisons.csv", index=False)
    done = subprocess.run(
        [sys.executable, str(BENCH / "findings.py"), "--results", str(results), "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the probe did not run" in done.stdout  # said, not skipped silently
    arms = {
        r["test, mean ± std over seeds"]: r for r in _read(tmp_path / "out" / "findings_arms.csv")
    }
    cell = runs[(runs.objective == "invariant") & (runs.label_fraction == 0.1)]["pa_epe_cm"]
    row = arms["PA-EPE (cm), resnet18, 10% of the labels"]
    assert row["invariant"] == f"{cell.mean():.2f} ± {cell.std(ddof=1):.2f}" and row["seeds"] == "3"
    family = _read(tmp_path / "out" / "findings_family.csv")
    assert len(family) == len(comps) == 9
    first = comps.iloc[0]
    assert family[0]["mean d (cm)"] == f"{first.diff_cm:+.3f}"
    assert family[0]["verdict"] == first.verdict


def test_eval_noise_bench_recovers_a_planted_hand_by_seed_interaction(tmp_path):
    # d(i, s) = hand effect + seed effect + hand x seed (SD 0.2) + image noise (SD 0.5);
    # 50 hands x 20 images, 6 seeds: the hand x seed part of the mean's SD is
    # sqrt((0.2^2 + 0.5^2 / 20) / 50) = 0.0324 cm, the image-level one sqrt(0.29 / 1000) = 0.0170
    rng = np.random.default_rng(0)
    hands, per_hand, seeds = 50, 20, 6
    hand_id = np.repeat(np.arange(hands), per_hand)
    (tmp_path / "cache").mkdir()
    np.save(tmp_path / "cache" / "hand_id.npy", hand_id)
    mu = rng.normal(0, 0.3, hands)
    for s in range(seeds):
        base = 2.4 + rng.normal(0, 0.4, hands * per_hand)
        d = mu[hand_id] + rng.normal(0, 0.01) + rng.normal(0, 0.2, hands)[hand_id]
        d = d + rng.normal(0, 0.5, hands * per_hand)
        for arm, values in (("b_f0.1", base), ("a_f0.1", base + d), ("c_f1.0", base)):
            run = tmp_path / "evals" / f"{arm}_s{s}"
            run.mkdir(parents=True)
            pd.DataFrame({"row": np.arange(len(base)), "pa_epe_cm": values}).to_csv(
                run / "per_sample.csv", index=False
            )
    done = subprocess.run(
        [sys.executable, str(BENCH / "eval_noise.py"), "--evaluations", str(tmp_path / "evals"),
         "--cache", str(tmp_path / "cache"), "--more-hands", "4", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _read(tmp_path / "out" / "eval_noise.csv")
    assert [r["comparison"] for r in rows] == ["a_f0.1 vs b_f0.1"]  # c is at another fraction
    row = rows[0]
    assert (row["seeds"], row["images"], row["hands"]) == ("6", "1000", "50")
    # the residual variance has 49 x 5 degrees of freedom: its SD within ~10% (sqrt: ~5%)
    assert float(row["hand x seed part (cm)"]) == pytest.approx(0.0324, rel=0.12)
    assert float(row["image x seed part, if images were independent (cm)"]) == pytest.approx(
        0.0170, rel=0.08
    )
    floor = float(row["SD at infinitely many hands (cm)"]) ** 2
    part = float(row["hand x seed part (cm)"]) ** 2
    assert float(row["SD at 4 x the hands (cm)"]) == pytest.approx(
        math.sqrt(floor + part / 4), abs=2e-4
    )


def test_confirm_bench_drops_the_pilots_seeds_below_100_percent(tmp_path):
    from equihand.analysis.comparisons import comparisons
    from equihand.config import load_config

    rng = np.random.default_rng(2)
    runs = pd.DataFrame(
        [
            {"objective": o, "backbone": "resnet18", "label_fraction": f, "seed": s,
             "epe_cm": 8.0, "pa_epe_cm": 2.0 + 0.1 * rng.standard_normal(), "auc": 0.1,
             "pa_auc": 0.5, "path": ""}
            for o in ("none", "invariant", "equivariant") for f in (0.1, 1.0)
            for s in (range(8) if f < 1 else range(3))
        ]
    )  # fmt: skip
    (tmp_path / "results" / "tables").mkdir(parents=True)
    runs.to_csv(tmp_path / "results" / "tables" / "runs.csv", index=False)
    done = subprocess.run(
        [sys.executable, str(BENCH / "confirm.py"), "--results", str(tmp_path / "results"),
         "--studies", "20", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    family = _read(tmp_path / "out" / "confirm_family.csv")
    # 6 objective comparisons; the label effects have no common seed once the pilot is dropped
    assert [r["seeds"] for r in family] == ["5", "5", "5", "3", "3", "3"]
    expected = comparisons(runs[(runs.label_fraction == 1) | (runs.seed >= 3)],
                           load_config(None, [])["report"])  # fmt: skip
    assert family[1]["mean d (cm)"] == f"{expected.iloc[1].diff_cm:+.3f}"
    assert family[1]["p (Holm)"] == f"{expected.iloc[1].p_holm:.3f}"
    rates = _read(tmp_path / "out" / "confirm_calibration.csv")
    assert [r["analysis"] for r in rates] == ["every seed (the report)", "seeds after the pilot"]
    assert all(r["null studies"] == "20" for r in rates)
