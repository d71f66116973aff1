"""``equihand score``: score a FreiHAND submission ``pred.json`` against local ground truth.

    equihand score --pred pred.json --gt DIR [--split evaluation] [--out metrics.json]

``pred.json`` is FreiHAND's submission format: ``[xyz_list, verts_list]`` with ``xyz_list`` N
entries of 21 x 3 joint positions in metres (camera frame, FreiHAND joint order) and
``verts_list`` N x V x 3 mesh vertices (may be empty lists). The ground truth is
``<DIR>/<split>_xyz.json`` of a dataset in the FreiHAND layout (`--gt` may also name that file).

Computes the official keypoint measures (equihand.metrics): EPE, PA-EPE (cm), AUC and
PA-AUC over 0-50 mm, plus root-relative EPE, per-joint errors and the PCK curves. Prints a short
table and, with ``--out``, writes the full metrics dict as JSON (atomically).

Out of scope: the mesh measures of the official eval (vertex errors and F-scores at 5 and 15 mm);
``verts_list`` is checked to be a list and otherwise ignored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from equihand.data.layout import N_JOINTS, SPLITS, annotation_path
from equihand.data.units import suspected_factor, unit_of
from equihand.errors import DataError, UserError
from equihand.io import atomic_write_json
from equihand.metrics import evaluate_keypoints
from equihand.outputs import check_files, claim_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, type=Path, help="pred.json: [xyz_list, verts]")
    parser.add_argument(
        "--gt",
        required=True,
        type=Path,
        help="dataset root in the FreiHAND layout (holding <split>_xyz.json), or that file",
    )
    parser.add_argument(
        "--split", default="evaluation", choices=SPLITS, help="which split (evaluation)"
    )
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}); expected {what}") from None


def _first_bad_entry(items: list, path: Path) -> UserError:
    """The error for the first entry of `items` that is not a numeric 21 x 3 array."""
    for i, item in enumerate(items):
        try:
            shape = np.asarray(item, dtype=np.float64).shape
        except (TypeError, ValueError):
            shape = None
        if shape != (N_JOINTS, 3):
            found = "a ragged or non-numeric value" if shape is None else f"shape {shape}"
            return UserError(
                f"{path}: xyz entry {i} has {found}; expected ({N_JOINTS}, 3) "
                f"(21 joints x xyz in metres)"
            )
    return UserError(f"{path}: xyz_list is not an array of shape (N, {N_JOINTS}, 3)")


def load_ground_truth(gt: Path, split: str) -> tuple[np.ndarray, Path]:
    """Ground-truth joints ``(N, 21, 3)`` metres from a FreiHAND-layout root (or the file)."""
    path = gt if gt.is_file() else annotation_path(gt, split, "xyz")
    if not path.is_file():
        raise UserError(
            f"ground truth not found: {path} (expected --gt to be a dataset root in the FreiHAND "
            f"layout holding {path.name}, or that file)"
        )
    data = _read_json(path, f"ground truth joints ({split}_xyz.json)")
    try:
        xyz = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        xyz = None
    if xyz is None or xyz.ndim != 3 or xyz.shape[1:] != (N_JOINTS, 3) or len(xyz) == 0:
        found = "a ragged or non-numeric list" if xyz is None else f"shape {xyz.shape}"
        raise DataError(f"{path}: ground truth has {found}; expected (N, {N_JOINTS}, 3) metres")
    if not np.isfinite(xyz).all():
        bad = int(np.flatnonzero(~np.isfinite(xyz).all(axis=(1, 2)))[0])
        raise DataError(f"{path}: ground-truth entry {bad} contains NaN or inf")
    return xyz, path


def load_predictions(path: Path, n_expected: int, gt_path: Path) -> tuple[np.ndarray, int]:
    """Validated predicted joints ``(N, 21, 3)`` metres and the number of vertex entries."""
    data = _read_json(path, "a FreiHAND submission [xyz_list, verts_list]")
    if not isinstance(data, list) or len(data) != 2:
        found = f"a list of length {len(data)}" if isinstance(data, list) else type(data).__name__
        raise UserError(
            f"{path}: expected a 2-element list [xyz_list, verts_list] (FreiHAND submission "
            f"format), found {found}"
        )
    xyz_list, verts_list = data
    if not isinstance(xyz_list, list):
        raise UserError(
            f"{path}: xyz_list (element 0) must be a list, found {type(xyz_list).__name__}"
        )
    if not isinstance(verts_list, list):
        raise UserError(
            f"{path}: verts_list (element 1) must be a list (may be empty), "
            f"found {type(verts_list).__name__}"
        )
    if len(xyz_list) != n_expected:
        raise UserError(
            f"{path}: xyz_list has {len(xyz_list)} samples but the ground truth {gt_path} has "
            f"{n_expected}; predictions must cover every sample, in order"
        )
    try:
        xyz = np.asarray(xyz_list, dtype=np.float64)  # JSON null becomes NaN here
    except (TypeError, ValueError):
        raise _first_bad_entry(xyz_list, path) from None
    if xyz.shape != (n_expected, N_JOINTS, 3):
        raise _first_bad_entry(xyz_list, path)
    finite = np.isfinite(xyz).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise UserError(
            f"{path}: xyz entry {int(bad[0])} contains NaN, inf or null "
            f"({len(bad)} of {n_expected} entries do); expected finite coordinates in metres"
        )
    return xyz, len(verts_list)


def hand_size(xyz: np.ndarray) -> np.ndarray:
    """Each hand's mean distance of its joints from their centroid, (N,), in xyz's unit."""
    return np.linalg.norm(xyz - xyz.mean(axis=1, keepdims=True), axis=-1).mean(axis=1)


def check_hand_size(xyz: np.ndarray, gt_xyz: np.ndarray, pred: Path, gt: Path) -> None:
    """Refuse predictions whose hands are 100x or 1000x the ground truth's (or 1/100, 1/1000).

    The hand's size, unlike its distance from the camera, stays close to the truth even for a
    poor model, so a ratio near a metric factor means a unit mix-up, not a bad prediction.
    """
    ratio = float(np.median(hand_size(xyz)) / np.median(hand_size(gt_xyz)))
    if (factor := suspected_factor(ratio)) is None:
        return
    odd, other = (pred, gt) if factor > 0 else (gt, pred)
    raise UserError(
        f"{odd}: looks like {unit_of(factor)}: its hands are about {abs(factor)}x the size of "
        f"those in {other} (median ratio {ratio:.4g}); FreiHAND expects metres "
        f"(divide by {abs(factor)})"
    )


def table(metrics: dict) -> str:
    rows = [
        ("EPE (cm)", f"{metrics['epe_cm']:.2f}"),
        ("PA-EPE (cm)", f"{metrics['pa_epe_cm']:.2f}"),
        ("AUC 0-50 mm", f"{metrics['auc']:.3f}"),
        ("PA-AUC 0-50 mm", f"{metrics['pa_auc']:.3f}"),
    ]
    return "\n".join(["| metric | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])


def score(pred: Path, gt: Path, split: str = "evaluation") -> dict:
    """Validate `pred` against the ground truth under `gt` and return the metrics dict."""
    gt_xyz, gt_path = load_ground_truth(Path(gt), split)
    xyz, n_verts = load_predictions(Path(pred), len(gt_xyz), gt_path)
    check_hand_size(xyz, gt_xyz, Path(pred), gt_path)
    metrics = evaluate_keypoints(xyz, gt_xyz)
    metrics["pred"] = str(pred)
    metrics["ground_truth"] = str(gt_path)
    metrics["split"] = split
    metrics["n_verts_entries_ignored"] = n_verts
    return metrics


def run(args: argparse.Namespace, config: dict) -> None:
    if args.out is not None:
        check_files([args.out], "score", force=args.force)
    metrics = score(args.pred, args.gt, args.split)
    print(f"{metrics['n_samples']} samples: {metrics['pred']} vs {metrics['ground_truth']}")
    print(table(metrics))
    if metrics["n_verts_entries_ignored"]:
        print("(vertices ignored: mesh errors and F-scores are not computed)")
    if args.out is not None:
        claim_files([args.out], "score", force=args.force)
        atomic_write_json(args.out, metrics, indent=1)
        print(f"wrote {args.out}")
