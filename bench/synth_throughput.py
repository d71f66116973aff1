"""Throughput of `equihand synth`: time `synthesize` for n training images at a given size.

    python bench/synth_throughput.py [--n 2000] [--size 224] [--workers 0] [--n-eval 20]

The dataset goes to a temporary folder that is deleted afterwards. Prints a Markdown table
(images, size, workers, seconds, images/s, projected seconds for 20,000 images, dataset bytes on
disk) and writes the same row as CSV to results/bench/synth_throughput.csv. The time covers the
whole call: rendering, encoding, annotations and the contact sheet.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from equihand import progress
from equihand.config import load_config
from equihand.data.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT / "results" / "bench" / "synth_throughput.csv"
PROJECTED_IMAGES = 20_000
COLUMNS = (
    "images",
    "size",
    "workers",
    "seconds",
    "images_per_s",
    f"projected_s_{PROJECTED_IMAGES}",
    "dataset_bytes",
)


def disk_bytes(root: Path) -> int:
    """Bytes the files under `root` take on disk (allocated blocks where the OS reports them)."""
    total = 0
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
    return total


def run(n: int, size: int, workers: int, n_eval: int, seed: int) -> dict:
    config = load_config(
        None,
        [
            f"synth.n_train={n}",
            f"synth.n_eval={n_eval}",
            f"synth.image_size={size}",
            f"synth.workers={workers}",
            f"synth.seed={seed}",
            "progress=never",
        ],
    )
    progress.set_mode("never")
    with tempfile.TemporaryDirectory(prefix="equihand-bench-") as tmp:
        start = time.perf_counter()
        out = synthesize(Path(tmp) / "synth", config)
        seconds = time.perf_counter() - start
        nbytes = disk_bytes(out)
    images = n + n_eval
    rate = images / seconds
    return {
        "images": images,
        "size": size,
        "workers": workers or os.cpu_count() or 1,
        "seconds": round(seconds, 2),
        "images_per_s": round(rate, 1),
        f"projected_s_{PROJECTED_IMAGES}": round(PROJECTED_IMAGES / rate, 1),
        "dataset_bytes": nbytes,
    }


def markdown(row: dict) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    body = "| " + " | ".join(str(row[c]) for c in COLUMNS) + " |"
    return "\n".join([head, rule, body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="training images (default 2000)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (224)")
    parser.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    parser.add_argument("--n-eval", type=int, default=20, help="evaluation images (20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="where the CSV row goes")
    args = parser.parse_args(argv)
    if args.n < 1 or args.n_eval < 1 or args.workers < 0:
        parser.error("--n and --n-eval must be >= 1 and --workers >= 0")

    row = run(args.n, args.size, args.workers, args.n_eval, args.seed)
    print(
        f"equihand synth throughput ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()})\n"
    )
    print(markdown(row))
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
