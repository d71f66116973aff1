"""Where a finetuned model's unaligned 3D error comes from: the root depth or the hand's shape.

    python bench/root_error.py RUN ... [--cache results/prepared/synth] [--split val]
        [--out results/bench]

RUN: finetuned run folders (model.pt); e.g. results/finetune/*_f1.0_s*. For each, on the
validation split (never the test split: this is analysis, not a result), the unaligned EPE and
AUC (FreiHAND's 0-5 cm PCK) of the 3D placed five ways, each from the model's own 2.5D output
(predicted 2D joints uv, relative depths zr) with one part swapped for the truth:

    as evaluated      the model's root depth (refined when the model has a refiner)
    closed form       the clamped closed-form root of the predicted 2.5D, no learned correction
    mean depth        one root depth for every image: the labeled images' mean (a constant)
    true 2D           the closed form from the true 2D joints and the predicted zr
    true root         the true root depth: what the 2.5D output reaches with a perfect root
    true root + 2D    the true root and true 2D joints: the error left by zr alone

plus the root depth's error (cm, and % of the true depth), the true depths' spread, the 2D error
and the error of the hand's apparent 2D size (which, with the known bone length, is what places
the hand in depth: a root read from the predicted 2D joints cannot be better than it). The AUC of
"true root" bounds what any root refinement can reach with the model's 2.5D. Prints a Markdown
table and writes results/bench/root_error.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, markdown, write_csv

from equihand import metrics
from equihand.data.cache import PreparedData
from equihand.methods import pose
from equihand.methods.models import build_pose_model
from equihand.train.batches import Labels, load_images
from equihand.train.checkpoint import load_checkpoint
from equihand.train.runtime import autocast


@torch.no_grad()
def outputs(model, data: PreparedData, rows: np.ndarray, labels: Labels, batch: int, train: dict):
    """uv (pixels), zr, root (the model's), root_closed: (N, ...) float64 tensors."""
    model.eval()
    size = data.images.shape[1]
    parts = {"uv": [], "zr": [], "root": [], "root_closed": []}
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        images = load_images(data.images, chunk, torch.device("cpu"), channels_last=False)
        with autocast(torch.device("cpu"), train):  # as equihand evaluate runs it
            out = model(images, labels.K[torch.from_numpy(chunk)])
        out = {k: v.float() for k, v in out.items()}
        uv = pose.norm_to_uv(out["uv_norm"].double(), size)
        K = labels.K[torch.from_numpy(chunk)].double()
        closed = pose.root_depth(pose.rays(uv, K), out["zr"].double())
        parts["uv"].append(uv)
        parts["zr"].append(out["zr"].double())
        parts["root"].append(out["root"].double() if "root" in out else closed)
        parts["root_closed"].append(out["root_closed"].double() if "root" in out else closed)
    return {k: torch.cat(v) for k, v in parts.items()}


def hand_size_2d(uv: torch.Tensor) -> torch.Tensor:
    """(N, 21, 2) pixels -> (N,) mean distance of the joints from their centroid."""
    return (uv - uv.mean(dim=1, keepdim=True)).norm(dim=-1).mean(dim=1)


def measure(run: Path, cache: Path, split: str) -> dict:
    record = load_checkpoint(run / "model.pt", kind="finetune")
    model_cfg = record["config"]["model"]
    model = build_pose_model(model_cfg)
    model.load_state_dict(record["model"])
    data = PreparedData(cache)
    rows = data.split(split)
    labels = Labels(data)
    idx = torch.from_numpy(rows)
    config = record["config"]
    out = outputs(model, data, rows, labels, config["finetune"]["eval_batch_size"], config["train"])
    K, scale = labels.K[idx].double(), labels.scale[idx].double()
    uv_true, true_xyz = labels.uv[idx].double(), labels.xyz[idx].double()
    root_true = labels.root[idx].double()
    mean_root = labels.root[torch.from_numpy(data.split("labeled"))].double().mean()
    closed_true_uv = pose.root_depth(pose.rays(uv_true, K), out["zr"])
    placings = {
        "as evaluated": (out["uv"], out["root"]),
        "closed form": (out["uv"], out["root_closed"]),
        "true 2D": (uv_true, closed_true_uv),
        "mean depth": (out["uv"], mean_root.expand_as(root_true)),
        "true root": (out["uv"], root_true),
        "true root + 2D": (uv_true, root_true),
    }
    gt = true_xyz.numpy()
    row = {
        "run": run.name,
        "refiner": model.refiner is not None,
        "n": len(rows),
        "true_depth_mean_cm": float((root_true * scale).mean() * metrics.CM_PER_M),
        "true_depth_sd_cm": float((root_true * scale).std() * metrics.CM_PER_M),
    }
    # apparent hand size (mean 2D joint distance from the joints' centroid): what sets the root
    # depth, given the bone length; its relative error bounds any depth read from the 2D joints
    size_true, size_pred = hand_size_2d(uv_true), hand_size_2d(out["uv"])
    row["epe_2d_px"] = float((out["uv"] - uv_true).norm(dim=-1).mean())
    row["size_2d_px"] = float(size_true.mean())
    row["size_err_pct"] = float(((size_pred / size_true) - 1).abs().mean() * 100)
    row["true_depth_sd_pct"] = float((root_true * scale).std() / (root_true * scale).mean() * 100)
    depth_err = ((out["root"] - root_true) * scale).abs()
    row["root_err_cm"] = float(depth_err.mean() * metrics.CM_PER_M)
    row["root_err_pct"] = float((depth_err / (root_true * scale)).mean() * 100)
    for name, (uv, root) in placings.items():
        xyz = pose.from_25d(uv, out["zr"], K, scale, root).numpy()
        errors = metrics.keypoint_errors(xyz, gt)
        key = name.replace(" + ", "_").replace(" ", "_")
        row[f"epe_cm[{key}]"] = float(errors.mean() * metrics.CM_PER_M)
        row[f"auc[{key}]"] = metrics.auc(metrics.pck_curve(errors))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finetuned run folders (model.pt)")
    parser.add_argument("--cache", type=Path, default=Path("results/prepared/synth"))
    parser.add_argument("--split", default="val", choices=["val", "labeled"])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for root_error.csv")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "model.pt").is_file():
            parser.error(f"{run}: no model.pt (expected a finetuned run folder)")
    torch.set_num_threads(1)
    rows = [measure(run, args.cache, args.split) for run in args.runs]
    print(
        markdown(
            [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
        )
    )
    if len(rows) > 1:
        mean = {"run": f"mean of {len(rows)}"}
        for key, value in rows[0].items():
            if isinstance(value, float):
                mean[key] = round(float(np.mean([r[key] for r in rows])), 3)
        print("\n" + markdown([mean]))
    print(f"\nwritten {write_csv(args.out / 'root_error.csv', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
