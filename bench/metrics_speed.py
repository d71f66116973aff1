"""Speed of the vectorised FreiHAND metrics against the per-sample loop reference.

    python bench/metrics_speed.py [--n 100000] [--loop-n 5000] [--repeats 3] [--seed 0]

Builds `--n` random-but-realistic samples: model hands (equihand.data.hand_model, a bank of 500
posed hands) turned by uniformly random rotations and placed 0.5-0.9 m in front of the camera;
predictions are the truth plus a global error (depth offset, scale, a small rotation) and 1.5 cm
of per-joint noise. Times, on all `--n` samples, the vectorised EPE + PA-EPE
(`keypoint_errors` + `procrustes_align`) and the full `evaluate_keypoints` report (adds PCK,
AUC, medians, root-relative errors); and `per_sample_loop_reference` (EPE + PA-EPE with a Python
loop and one SVD per sample) on the first `--loop-n` samples only, extrapolated linearly to `--n`
(said so in the table). Vectorised timings are the best of `--repeats`. Checks that both give the
same errors on the loop subset. Prints a Markdown table and writes it as CSV to
results/bench/metrics_speed.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from equihand import metrics as m
from equihand.data import hand_model as hm

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT / "results" / "bench" / "metrics_speed.csv"
COLUMNS = ("method", "samples_timed", "seconds_timed", "seconds_for_n", "how", "speedup_vs_loop")
BANK = 500


def rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    w, x, y, z = rng.normal(size=(4, n))
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def realistic_samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt), each (n, 21, 3) metres."""
    rng = np.random.default_rng(seed)
    bank = np.empty((BANK, 21, 3))
    for i in range(BANK):
        fingers, thumb = hm.sample_pose(rng.choice(hm.GESTURE_NAMES), rng, noise_deg=8.0)
        xyz = hm.forward_kinematics(fingers, thumb, hm.HandShape.sample(rng))
        bank[i] = xyz - xyz.mean(axis=0)
    hands = bank[rng.integers(0, BANK, n)]
    place = np.stack(
        [rng.uniform(-0.1, 0.1, n), rng.uniform(-0.1, 0.1, n), rng.uniform(0.5, 0.9, n)], -1
    )
    gt = np.matmul(hands, rotations(n, rng).transpose(0, 2, 1)) + place[:, None]
    # prediction: a slightly wrong pose (small rotation by blending with identity), scale and
    # position, plus per-joint noise
    tilt = np.linalg.qr(np.eye(3) + 0.1 * rng.normal(size=(n, 3, 3)))[0]
    tilt *= np.sign(np.linalg.det(tilt))[:, None, None]  # keep det +1
    scale = rng.normal(1.0, 0.05, (n, 1, 1))
    offset = rng.normal(0, [0.01, 0.01, 0.04], (n, 1, 3))
    centre = gt.mean(axis=1, keepdims=True)
    pred = np.matmul(gt - centre, tilt.transpose(0, 2, 1)) * scale + centre + offset
    return pred + rng.normal(0, 0.015 / np.sqrt(3), gt.shape), gt


def vectorised_epe(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    err = m.keypoint_errors(pred, gt)
    pa = m.keypoint_errors(m.procrustes_align(pred, gt), gt)
    return float(err.mean(axis=0).mean()), float(pa.mean(axis=0).mean())


def best_of(repeats: int, fn, *args) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def run(n: int, loop_n: int, repeats: int, seed: int) -> tuple[list[dict], dict]:
    pred, gt = realistic_samples(n, seed)
    t_vec, (epe, pa_epe) = best_of(repeats, vectorised_epe, pred, gt)
    t_full, report = best_of(repeats, m.evaluate_keypoints, pred, gt)
    t_loop, ref = best_of(1, m.per_sample_loop_reference, pred[:loop_n], gt[:loop_n])
    loop_for_n = t_loop * n / loop_n
    sub = m.keypoint_errors(m.procrustes_align(pred[:loop_n], gt[:loop_n]), gt[:loop_n])
    check = {
        "max_abs_diff_pa_m": float(np.abs(sub - ref["pa_errors"]).max()),
        "epe_cm": report["epe_cm"],
        "pa_epe_cm": report["pa_epe_cm"],
        "auc": report["auc"],
        "pa_auc": report["pa_auc"],
    }
    assert abs(epe - report["epe"]) < 1e-12 and abs(pa_epe - report["pa_epe"]) < 1e-12
    rows = [
        ("per_sample_loop_reference (EPE + PA-EPE)", loop_n, t_loop, loop_for_n,
         f"timed on {loop_n:,}, extrapolated x{n / loop_n:g}"),
        ("vectorised EPE + PA-EPE", n, t_vec, t_vec, f"measured, best of {repeats}"),
        ("vectorised evaluate_keypoints (all metrics)", n, t_full, t_full,
         f"measured, best of {repeats}"),
    ]  # fmt: skip
    table = [
        {
            "method": name,
            "samples_timed": timed,
            "seconds_timed": round(secs, 3),
            "seconds_for_n": round(for_n, 3),
            "how": how,
            "speedup_vs_loop": round(loop_for_n / for_n, 1),
        }
        for name, timed, secs, for_n, how in rows
    ]
    return table, check


def markdown(rows: list[dict], n: int) -> str:
    head = (
        f"| method | samples timed | seconds timed | seconds for {n:,} | how | speed-up vs loop |"
    )
    rule = "|---|---:|---:|---:|---|---:|"
    body = [
        f"| {r['method']} | {r['samples_timed']:,} | {r['seconds_timed']:.3f} | "
        f"{r['seconds_for_n']:.3f} | {r['how']} | {r['speedup_vs_loop']:.1f}x |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples (default 100000)")
    parser.add_argument("--loop-n", type=int, default=5000, help="samples for the loop (5000)")
    parser.add_argument("--repeats", type=int, default=3, help="vectorised repeats, best kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="where the CSV goes")
    args = parser.parse_args(argv)
    if args.n < 1 or not 1 <= args.loop_n <= args.n or args.repeats < 1:
        parser.error("need --n >= 1, 1 <= --loop-n <= --n and --repeats >= 1")

    rows, check = run(args.n, args.loop_n, args.repeats, args.seed)
    print(
        f"equihand metrics speed ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__})\n"
    )
    print(markdown(rows, args.n))
    print(
        f"\nsamples: EPE {check['epe_cm']:.2f} cm, PA-EPE {check['pa_epe_cm']:.2f} cm, "
        f"AUC {check['auc']:.3f}, PA-AUC {check['pa_auc']:.3f}; vectorised vs loop on the "
        f"{args.loop_n:,} loop samples: max |PA error difference| "
        f"{check['max_abs_diff_pa_m']:.1e} m"
    )
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
