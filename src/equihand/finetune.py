"""`equihand finetune`: supervised 2.5D hand pose training, from a pretrained encoder or scratch.

Uses a fixed, seeded fraction of the labeled split; geometric augmentation moves the keypoints
with the image (uv' = A uv; the root-relative depths are unchanged). After every epoch the model
is scored on the validation split (3D joint errors after recovering 3D from the 2.5D output with
the intrinsics and the reference-bone scale, equihand.pose), and the weights of the epoch with the
lowest validation PA-EPE are kept. The test split is never read here. Writes `model.pt`,
`metrics.csv`, `config.yaml`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from equihand import augment, metrics, pose
from equihand.checkpoint import load_checkpoint
from equihand.config import validate, write_resolved
from equihand.data.cache import PreparedData
from equihand.models import build_pose_model, load_backbone_state
from equihand.outputs import check_folder, claim_folder
from equihand.pretrain import load_images
from equihand.train import (
    Loop,
    TrainingError,
    add_run_arguments,
    autocast,
    finish,
    fit,
    place,
    runtime_setup,
)

MODEL_NAME = "model.pt"
# The validation metric that picks the kept epoch: PA-EPE, the study's headline measure. The
# unaligned EPE also depends on the closed-form root depth, which an early, poorly trained model
# can push metres away, so it is logged but does not choose.
SELECT_ON = "val_pa_epe_cm"


def labeled_subset(labeled: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded prefix of a permutation of the labeled split: smaller fractions nest in larger."""
    order = np.random.default_rng([seed, 7_777]).permutation(len(labeled))
    n = max(1, math.ceil(fraction * len(labeled)))
    return np.sort(labeled[order[:n]])


class Labels:
    """The label arrays of a cache, as float32 tensors on the CPU."""

    def __init__(self, data: PreparedData):
        self.uv = torch.from_numpy(np.array(data.uv, dtype=np.float32))
        self.xyz = torch.from_numpy(np.array(data.xyz, dtype=np.float32))
        self.K = torch.from_numpy(np.array(data.K, dtype=np.float32))
        self.scale = torch.from_numpy(np.array(data.scale, dtype=np.float32))
        _, self.zr = pose.to_25d(self.xyz, self.K, self.scale)


def augments(cfg: dict, n_labeled: int) -> bool:
    """Whether a finetuning run on `n_labeled` images augments (finetune.augment and
    finetune.augment_max_labels)."""
    limit = cfg["augment_max_labels"]
    return bool(cfg["augment"]) and (limit == 0 or n_labeled <= limit)


def pose_loss(model, batch, uv, zr, aug_cfg, zr_weight: float) -> torch.Tensor:
    """L1 on normalised 2D keypoints + weighted L1 on root-relative depth, after augmenting
    `batch` (and moving `uv` with it) when `aug_cfg` is given."""
    if aug_cfg is not None:
        with torch.no_grad():
            batch, geom = augment.augment_view(batch, aug_cfg)
            uv = augment.transform_points(geom.matrix.to(uv.device), uv)
    pred = model(batch)
    loss_uv = F.l1_loss(pred["uv_norm"].float(), pose.uv_to_norm(uv, batch.shape[-1]))
    return loss_uv + zr_weight * F.l1_loss(pred["zr"].float(), zr)


@torch.no_grad()
def predict(model, images, rows, labels: Labels, device, config, batch_size):
    """Predicted 2D joints (N, 21, 2) in cache pixels and 3D joints (N, 21, 3) in metres for
    cache rows, without augmentation (3D from the 2.5D output with each row's K and scale)."""
    model.eval()
    size = images.shape[1]
    uvs, xyzs = [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = load_images(images, chunk, device, config["train"]["channels_last"])
        with autocast(device, config["train"]):
            pred = model(batch)
        uv = pose.norm_to_uv(pred["uv_norm"].float().cpu(), size)
        idx = torch.from_numpy(chunk)
        uvs.append(uv)
        xyzs.append(pose.from_25d(uv, pred["zr"].float().cpu(), labels.K[idx], labels.scale[idx]))
    return torch.cat(uvs), torch.cat(xyzs)


def predict_xyz(model, images, rows, labels: Labels, device, config, batch_size):
    return predict(model, images, rows, labels, device, config, batch_size)[1]


def finetune(
    cache_dir: Path, out_dir: Path, config: dict, pretrained: Path | None, *, force: bool = False
) -> Path:
    cfg = config["finetune"]
    data = PreparedData(cache_dir)
    rows = labeled_subset(data.split("labeled"), cfg["label_fraction"], cfg["seed"])
    val = data.split("val")
    if len(val) == 0:
        raise TrainingError(f"{cache_dir}: the validation split is empty")
    images = data.images
    size = images.shape[1]
    labels = Labels(data)
    aug_cfg = augment.AugmentConfig.from_config(config["augment"])
    device = runtime_setup(config)
    channels_last = config["train"]["channels_last"]
    aug = aug_cfg if augments(cfg, len(rows)) else None

    torch.manual_seed(cfg["seed"])
    model = build_pose_model(config["model"])
    source, objective = "scratch", "none"
    if pretrained is not None:
        state = load_checkpoint(pretrained, kind="pretrain")
        if state["config"]["model"]["backbone"] != config["model"]["backbone"]:
            raise TrainingError(
                f"{pretrained} holds a {state['config']['model']['backbone']} encoder; the config "
                f"asks for {config['model']['backbone']}"
            )
        load_backbone_state(model, state["model"])
        source, objective = str(pretrained), state["config"]["pretrain"]["objective"]
    model = place(model, device, config)

    def step_loss(model, positions):
        chosen = rows[positions]
        idx = torch.from_numpy(chosen)
        batch = load_images(images, chosen, device, channels_last)
        uv, zr = labels.uv[idx].to(device), labels.zr[idx].to(device)
        return pose_loss(model, batch, uv, zr, aug, cfg["zr_weight"]), len(chosen)

    def evaluate(model):
        xyz = predict_xyz(model, images, val, labels, device, config, cfg["eval_batch_size"])
        pred, true = xyz.double().numpy(), labels.xyz[torch.from_numpy(val)].double().numpy()
        aligned = metrics.procrustes_align(pred, true)
        return {
            "val_epe_cm": float(metrics.keypoint_errors(pred, true).mean()) * metrics.CM_PER_M,
            "val_pa_epe_cm": float(metrics.keypoint_errors(aligned, true).mean())
            * metrics.CM_PER_M,
        }

    out_dir = claim_folder(out_dir, "finetune", force=force)
    write_resolved(config, out_dir / "config.yaml")
    loop = Loop(
        "finetune", config, cfg, cfg["seed"], len(rows), out_dir, step_loss, evaluate, SELECT_ON
    )
    model, history = fit(loop, model, device)
    extra = {
        "pretrained": source,
        "objective": objective,
        "labeled_images": len(rows),
        "augmented": aug is not None,
        "resolution": size,
        "selected_on": SELECT_ON,
        "best_val": history.best,
        "best_step": history.best_step,
    }
    return finish(loop, model, history, out_dir / MODEL_NAME, extra)


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument(
        "--pretrained",
        required=True,
        help="a pretraining run's model.pt, or 'none' to train from the random initialisation",
    )
    parser.add_argument("--fraction", type=float, help="overrides finetune.label_fraction")
    parser.add_argument("--seed", type=int, help="overrides finetune.seed")


def run(args, config: dict) -> None:
    if args.fraction is not None:
        config["finetune"]["label_fraction"] = args.fraction
    if args.seed is not None:
        config["finetune"]["seed"] = args.seed
    validate(config, "(command line)")
    check_folder(args.out, "finetune", force=args.force)  # before the work
    pretrained = None if args.pretrained == "none" else Path(args.pretrained)
    path = finetune(Path(args.data), Path(args.out), config, pretrained, force=args.force)
    print(f"finetuned {config['model']['backbone']} ({args.pretrained}) -> {path}")
