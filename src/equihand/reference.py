"""`equihand reference`: the PA-EPE a pose model must beat to have learned anything.

Procrustes alignment removes rotation, translation and scale, so predicting one fixed, plausible
hand for every image already scores a finite PA-EPE. This step draws `report.reference_candidates`
random poses from the labeled training split, keeps the one with the lowest PA-EPE on the
validation split (the test split only scores the chosen pose) and writes `reference.json`:
the pose's row, its validation and test PA-EPE in cm and the split sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from equihand import metrics
from equihand.data.cache import PreparedData
from equihand.errors import UserError
from equihand.io import atomic_write_json
from equihand.outputs import check_files, claim_files


def constant_pose_pa_epe_cm(pose: np.ndarray, true: np.ndarray) -> float:
    """Mean PA-EPE (cm) of predicting `pose` (21, 3) for every sample of `true` (N, 21, 3)."""
    pred = np.broadcast_to(pose, true.shape).copy()
    aligned = metrics.procrustes_align(pred, true)
    return float(metrics.keypoint_errors(aligned, true).mean()) * metrics.CM_PER_M


def constant_pose_reference(cache_dir: Path, candidates: int, seed: int) -> dict:
    data = PreparedData(cache_dir)
    xyz = np.asarray(data.xyz, dtype=np.float64)
    labeled, val, test = (data.split(s) for s in ("labeled", "val", "test"))
    for name, rows in (("labeled", labeled), ("val", val), ("test", test)):
        if len(rows) == 0:
            raise UserError(f"{cache_dir}: the {name} split is empty; cannot build the reference")
    rng = np.random.default_rng([seed, 4_242])
    drawn = rng.choice(labeled, min(candidates, len(labeled)), replace=False)
    scores = [constant_pose_pa_epe_cm(xyz[row], xyz[val]) for row in drawn]
    best = int(drawn[int(np.argmin(scores))])
    return {
        "kind": "constant training pose, chosen on validation",
        "row": best,
        "candidates": len(drawn),
        "val_pa_epe_cm": float(min(scores)),
        "test_pa_epe_cm": constant_pose_pa_epe_cm(xyz[best], xyz[test]),
        "n_val": len(val),
        "n_test": len(test),
    }


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="prepared cache folder")
    parser.add_argument("--out", required=True, help="reference.json to write")


def run(args, config: dict) -> None:
    check_files([args.out], "reference", force=args.force)
    rep = config["report"]
    ref = constant_pose_reference(Path(args.data), rep["reference_candidates"], rep["seed"])
    claim_files([args.out], "reference", force=args.force)
    atomic_write_json(args.out, ref, indent=2)
    print(
        f"constant-pose reference: PA-EPE {ref['val_pa_epe_cm']:.2f} cm (val), "
        f"{ref['test_pa_epe_cm']:.2f} cm (test) -> {args.out}"
    )
