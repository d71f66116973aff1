"""The GPU check: config/gpu.yaml's study on one GPU, one seed, in at most 8 minutes.

    python bench/gpu_check.py [--out results/gpu] [--budget-min 8]

Runs config/default.yaml with config/gpu.yaml on top (as Snakemake merges them), the same
`equihand` steps the workflow runs (synth -> prepare -> reference -> pretrain
invariant and equivariant -> finetune none / invariant / equivariant at each label fraction ->
evaluate on the test split), one process per step, through ``python -m equihand.cli`` so that it
needs no Snakemake (the GPU machine may not have it; ``PYTHONPATH=src`` is enough there). Prints
a table to record in docs/benchmarks.md: each run's images/s, wall time, best val PA-EPE and test
PA-EPE / EPE / AUC, next to the constant-pose reference. Steps whose output exists are skipped,
so a second call after a time-out continues. Exits non-zero when the budget runs out (naming the
step) or no CUDA device is seen.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "gpu.yaml"
DEFAULT = ROOT / "config" / "default.yaml"  # Snakemake loads it first, the study's file on top
OBJECTIVES = ("none", "invariant", "equivariant")


def merged(base: dict, top: dict) -> dict:
    """`top` over `base`, sections merged key by key (as Snakemake merges --configfile)."""
    out = dict(base)
    for key, value in top.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merged(base[key], value) if both_dicts else value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu")
    parser.add_argument("--budget-min", type=float, default=8.0)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="run on the CPU (to check the script itself with a small config; not the GPU numbers)",
    )
    args = parser.parse_args(argv)
    import torch
    import yaml

    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; this check is for a GPU machine", file=sys.stderr)
        return 2
    spec = merged(yaml.safe_load(DEFAULT.read_text()), yaml.safe_load(args.config.read_text()))
    fractions = spec["study"]["label_fractions"]
    deadline = time.monotonic() + args.budget_min * 60
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    config = out / "study_config.yaml"  # default.yaml with the study's file on top
    config.write_text(yaml.safe_dump(spec, sort_keys=False))
    times: dict[str, float] = {}

    def step(name: str, *cli: str, done: Path) -> None:
        if done.exists():
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"gpu_check: the {args.budget_min} min budget ran out before {name}")
        device = ["--set", "device=cpu"] if args.cpu else []
        cmd = [sys.executable, "-m", "equihand.cli", cli[0], "--config", str(config),
               "--set", "progress=never", *device, *cli[1:]]  # fmt: skip
        tic = time.monotonic()
        log = out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            try:
                done_ = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=left)
                code = done_.returncode
            except subprocess.TimeoutExpired:
                raise SystemExit(f"gpu_check: {name} ran past the budget; see {log}") from None
        times[name] = time.monotonic() - tic
        if code != 0:
            raise SystemExit(f"gpu_check: {name} failed ({code}); see {log}")
        print(f"{name}: {times[name]:.0f} s", flush=True)

    data, cache = out / "data" / "synth", out / "prepared" / "synth"
    step("synth", "synth", "--out", str(data), done=data / "training_xyz.json")
    step("prepare", "prepare", "--root", str(data), "--out", str(cache), done=cache / "meta.json")
    ref = out / "reference.json"
    step("reference", "reference", "--data", str(cache), "--out", str(ref), done=ref)
    for objective in OBJECTIVES[1:]:
        run = out / "pretrain" / objective
        step(f"pretrain_{objective}", "pretrain", "--data", str(cache), "--objective", objective,
             "--seed", "0", "--out", str(run), done=run / "model.pt")  # fmt: skip
    rows = []
    for fraction in fractions:
        for objective in OBJECTIVES:
            name = f"{objective}_f{fraction}"
            run, ev = out / "finetune" / name, out / "evaluate" / name
            pre = "none" if objective == "none" else str(out / "pretrain" / objective / "model.pt")
            step(f"finetune_{name}", "finetune", "--data", str(cache), "--pretrained", pre,
                 "--fraction", str(fraction), "--seed", "0", "--out", str(run),
                 done=run / "model.pt")  # fmt: skip
            step(f"evaluate_{name}", "evaluate", "--checkpoint", str(run / "model.pt"),
                 "--data", str(cache), "--out", str(ev), done=ev / "metrics.json")  # fmt: skip
            with open(run / "metrics.csv") as f:
                history = list(csv.DictReader(f))
            m = json.loads((ev / "metrics.json").read_text())
            rows.append((objective, fraction, float(history[-1]["images_per_s"]),
                         times.get(f"finetune_{name}", float("nan")),
                         min(float(h["val_pa_epe_cm"]) for h in history),
                         m["pa_epe_cm"], m["epe_cm"], m["auc"]))  # fmt: skip
    reference = json.loads(ref.read_text())
    device = "cpu" if args.cpu else torch.cuda.get_device_name()
    print(f"\nconstant-pose reference: val {reference['val_pa_epe_cm']:.2f} cm, "
          f"test {reference['test_pa_epe_cm']:.2f} cm; device {device}")  # fmt: skip
    print("\n| objective | fraction | finetune img/s | finetune s | best val PA-EPE | test PA-EPE "
          "| test EPE | AUC |\n|---|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for r in rows:
        print("| {} | {} | {:.0f} | {:.0f} | {:.2f} | {:.2f} | {:.2f} | {:.3f} |".format(*r))
    print("\nstep times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
