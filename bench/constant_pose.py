"""The trivial reference for PA-EPE: one fixed training pose predicted for every test image.

Procrustes alignment removes rotation, translation and scale, so a model that has learned
nothing about the hand but outputs one plausible hand still scores a finite PA-EPE. This script
picks, among `--candidates` random labeled training poses, the one with the lowest PA-EPE on the
validation split and reports it on validation and test. A pose model is only better than chance
when its PA-EPE is below this. Usage:

    python bench/constant_pose.py --data results/prepared/synth [--candidates 200] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from equihand import metrics
from equihand.data.cache import PreparedData


def pa_epe_cm(pose: np.ndarray, true: np.ndarray) -> float:
    pred = np.broadcast_to(pose, true.shape).copy()
    aligned = metrics.procrustes_align(pred, true)
    return float(metrics.keypoint_errors(aligned, true).mean()) * metrics.CM_PER_M


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prepared cache folder")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = PreparedData(args.data)
    xyz = np.asarray(data.xyz, dtype=np.float64)
    labeled, val, test = (data.split(s) for s in ("labeled", "val", "test"))
    rng = np.random.default_rng(args.seed)
    candidates = rng.choice(labeled, min(args.candidates, len(labeled)), replace=False)
    scores = [pa_epe_cm(xyz[c], xyz[val]) for c in candidates]
    best = candidates[int(np.argmin(scores))]
    print("| split | images | constant-pose PA-EPE (cm) |")
    print("|---|---:|---:|")
    for name, rows in (("val", val), ("test", test)):
        print(f"| {name} | {len(rows)} | {pa_epe_cm(xyz[best], xyz[rows]):.2f} |")


if __name__ == "__main__":
    main()
