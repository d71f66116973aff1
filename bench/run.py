"""The benchmark suite: how close training runs to the model's own compute, and how its cost
grows with the data. One Markdown table per section; each written as CSV under results/bench/.

    python bench/run.py [--quick] [--only NAME ...] [--study] [--smoke] [--threads N]

Sections (see bench/README.md):
  throughput  pretraining step images/s: full pipeline (cached uint8 -> two augmented views ->
              fwd/bwd -> step) against the same model on pre-made tensors, ResNet-18/50 at the
              default cache resolution and at FreiHAND's 224 px          (train_throughput.py)
  baseline    the same pipeline against per-sample torchvision v2 transforms in DataLoader
              workers reading JPEG files, rounds of fresh processes              (baseline.py)
  scaling     one pretraining epoch's time and peak RSS on 1k / 10k / 100k-image caches
                                                                                   (scaling.py)
  metrics     EPE/PA-EPE for 100k samples: vectorised against a per-sample loop
                                                                              (metrics_speed.py)
  study       whole-study wall times: read from Snakemake's logs; `--smoke` runs the smoke
              study, `--study` the whole default one (~40 min), in a temporary folder
                                                                                (study_time.py)
`--quick` runs every section on tiny sizes (seconds; what tests/test_bench.py runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline
import metrics_speed
import scaling
import study_time
import train_throughput
from common import RESULTS, load_average, markdown, write_csv

SECTIONS = ("throughput", "baseline", "scaling", "metrics", "study")

# (backbone, resolution, images per view): the default cache's 32 px at the default config's
# batch; 224 px at a batch that keeps a ResNet-50 step near 10 s on two cores
FULL = {
    "cases": [
        ("resnet18", 32, 128),
        ("resnet50", 32, 128),
        ("resnet18", 224, 16),
        ("resnet50", 224, 16),
    ],
    "steps": 6,
    "rounds": 3,
    "scaling_sizes": [1000, 10_000, 100_000],
    "scaling_batch": 0,  # the config's
    "metrics_n": 100_000,
    "metrics_loop_n": 5000,
}
QUICK = {
    "cases": [("resnet18", 32, 8), ("resnet18", 64, 4)],
    "steps": 1,
    "rounds": 1,
    "scaling_sizes": [32, 64],
    "scaling_batch": 8,
    "metrics_n": 2000,
    "metrics_loop_n": 200,
}

COLUMNS = {
    "throughput": [
        "backbone", "resolution", "batch_per_view", "model_images_per_s",
        "pipeline_images_per_s", "ratio", "gather_s", "two_views_s", "load_1min",
    ],
    "baseline": [
        "backbone", "resolution", "batch_per_view", "workers", "baseline_images_per_s",
        "pipeline_images_per_s", "speedup", "speedup_min", "speedup_max",
        "baseline_vs_model_default", "pipeline_vs_model", "load_1min",
    ],
    "scaling": [
        "images", "epoch_s", "images_per_s", "time_per_image_vs_smallest", "peak_rss_mb",
        "rss_vs_smallest_mb", "load_1min",
    ],
    "metrics": ["method", "samples_timed", "seconds_timed", "seconds_for_n", "how",
                "speedup_vs_loop"],
    "study": ["study", "steps", "wall_s", "wall_min", "started", "source"],
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--study", action="store_true", help="run the whole default study")
    parser.add_argument("--smoke", action="store_true", help="run the smoke study")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = every core)")
    parser.add_argument("--steps", type=int, help="timed steps per throughput case")
    parser.add_argument("--cache", type=Path, default=Path("results/prepared/synth"))
    parser.add_argument("--source", type=Path, default=Path("data/synth"), help="JPEG dataset")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV files")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    steps = args.steps or plan["steps"]
    sections = args.only or list(SECTIONS)
    print(f"equihand bench: {', '.join(sections)}; load average {load_average():.2f}")
    for name in sections:
        tic = time.perf_counter()
        print(f"\n## {name}", flush=True)
        if name == "throughput":
            rows = train_throughput.run(
                plan["cases"], args.cache, args.source, steps, args.threads, args.device
            )
        elif name == "baseline":
            rows = baseline.run(
                plan["cases"], args.cache, args.source, steps, args.threads, args.device,
                rounds=plan["rounds"],
            )  # fmt: skip
        elif name == "scaling":
            rows = scaling.run(
                plan["scaling_sizes"], args.cache, args.threads, plan["scaling_batch"],
                parallel=args.quick,
            )  # fmt: skip
        elif name == "metrics":
            rows, _ = metrics_speed.run(plan["metrics_n"], plan["metrics_loop_n"], 3, 0)
            rows = [
                r | {"n": plan["metrics_n"], "load_1min": round(load_average(), 2)} for r in rows
            ]
        else:
            runs = (["default"] if args.study else []) + (["smoke"] if args.smoke else [])
            rows = study_time.run(runs, args.threads)
        print(markdown(rows, COLUMNS[name]))
        path = write_csv(args.out / f"{name}.csv", rows)
        print(f"({time.perf_counter() - tic:.0f} s; wrote {path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
