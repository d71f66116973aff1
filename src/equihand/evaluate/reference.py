"""`equihand reference`: the PA-EPE, EPE and AUC a pose model must beat to have learned anything.

Procrustes alignment removes rotation, translation and scale, so predicting one fixed, plausible
hand for every image already scores a finite PA-EPE. This step draws `report.reference_candidates`
random poses from the labeled training split, keeps the one with the lowest PA-EPE on the
validation split (the test split only scores the chosen pose) and writes `reference.json`:
the pose's row, its validation and test PA-EPE in cm and the split sizes.

The unaligned measures (EPE, AUC) also need the hand's place in the camera frame. Their
reference, under ``"unaligned"`` in `reference.json`, knows no image content but what a model is
given besides the image, each sample's intrinsics K and reference-bone length s: it predicts the
mean root-relative training pose placed with its root at the mean training root depth on the
camera ray through the image centre. Both means are taken over the labeled split in
reference-bone units and multiplied by s, as the 2.5D models' output is:

    X_j = s * (Z_mean * K^-1 (c, 1) + P_mean_j),  c = the image centre in pixels

(Z_mean: mean of Z_0 / s; P_mean: mean of (X_j - X_0) / s). Its EPE (cm) and AUC (0-50 mm) are
computed on the validation and test splits with FreiHAND's definitions (equihand.metrics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equihand import metrics
from equihand.data.cache import PreparedData
from equihand.errors import UserError
from equihand.io import atomic_write_json
from equihand.methods import pose
from equihand.outputs import check_files, claim_files


def constant_pose_pa_epe_cm(pose: np.ndarray, true: np.ndarray) -> float:
    """Mean PA-EPE (cm) of predicting `pose` (21, 3) for every sample of `true` (N, 21, 3)."""
    pred = np.broadcast_to(pose, true.shape).copy()
    return metrics.epe_cm(metrics.aligned_errors(pred, true))


def mean_pose_prediction(
    mean_pose: np.ndarray, mean_root: float, K: np.ndarray, scale: np.ndarray, size: int
) -> np.ndarray:
    """The mean pose (21, 3) and root depth (bone units) placed on the ray through the centre of
    a `size`-pixel square image, for each sample's K (N, 3, 3) and scale (N,): (N, 21, 3) m."""
    centre = np.full((len(K), 1, 2), (size - 1) / 2.0)  # pixel-centre convention: -0.5 .. size-0.5
    ray = pose.rays(torch.from_numpy(centre), torch.from_numpy(K)).numpy()  # (N, 1, 3), z = 1
    return scale[:, None, None] * (mean_root * ray + mean_pose[None])


def unaligned_measures(pred: np.ndarray, true: np.ndarray) -> dict:
    """EPE (cm) and AUC (0-50 mm) of `pred` against `true`, (N, 21, 3) metres."""
    err = metrics.keypoint_errors(pred, true)
    return {
        "epe_cm": float(err.mean(axis=0).mean()) * metrics.CM_PER_M,
        "auc": metrics.auc(metrics.pck_curve(err)),
    }


def mean_pose_reference(data: PreparedData, labeled, val, test) -> dict:
    """The unaligned reference of the module docstring, scored on `val` and `test` rows."""
    xyz = torch.from_numpy(np.asarray(data.xyz, dtype=np.float64))
    K = np.asarray(data.K, dtype=np.float64)
    scale = np.asarray(data.scale, dtype=np.float64)
    s = torch.from_numpy(scale)
    rel = ((xyz - xyz[:, pose.ROOT : pose.ROOT + 1]) / s[:, None, None]).numpy()
    root = pose.true_root_depth(xyz, s).numpy()
    mean_pose, mean_root = rel[labeled].mean(axis=0), float(root[labeled].mean())
    size = data.images.shape[1]
    out = {
        "kind": "mean training pose at the mean training root depth on the image centre's ray",
        "mean_root_depth_bones": mean_root,
    }
    for name, rows in (("val", val), ("test", test)):
        pred = mean_pose_prediction(mean_pose, mean_root, K[rows], scale[rows], size)
        for key, value in unaligned_measures(pred, xyz.numpy()[rows]).items():
            out[f"{name}_{key}"] = value
    return out


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
        "unaligned": mean_pose_reference(data, labeled, val, test),
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
    un = ref["unaligned"]
    print(
        f"constant-pose reference: PA-EPE {ref['val_pa_epe_cm']:.2f} cm (val), "
        f"{ref['test_pa_epe_cm']:.2f} cm (test); mean pose at the mean depth: EPE "
        f"{un['test_epe_cm']:.2f} cm, AUC {un['test_auc']:.3f} (test) -> {args.out}"
    )
