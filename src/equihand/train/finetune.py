"""`equihand finetune`: supervised 2.5D hand pose training, from a pretrained encoder or scratch.

Uses a fixed, seeded fraction of the labeled split; geometric augmentation moves the keypoints
with the image (uv' = A uv; the root-relative depths are unchanged). After every epoch the model
is scored on the validation split (3D joint errors after recovering 3D from the 2.5D output with
the intrinsics and the reference-bone scale, equihand.methods.pose), and the weights of the epoch
with the lowest validation PA-EPE are kept. The test split is never read here. Writes `model.pt`,
`metrics.csv`, `config.yaml`.

With ``model.root_refine`` the model also learns the root depth
(equihand.methods.models.RootRefiner): its clamp range is recorded from the run's labeled images,
the loss adds ``finetune.root_weight`` x L1 of the refined root depth against the true one (bone
units; under augmentation the intrinsics follow the image, K' = A K, so the true depth is
unchanged), and 3D is placed with the refined root everywhere (validation, `equihand evaluate`,
pred.json).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from equihand import metrics
from equihand.config import validate, write_resolved
from equihand.data.cache import PreparedData
from equihand.methods import augment, pose
from equihand.methods.backbones import load_backbone_state
from equihand.methods.geometry import transform_points
from equihand.methods.models import build_pose_model
from equihand.outputs import check_folder, claim_folder
from equihand.train import launch
from equihand.train.batches import Labels, load_images, predict_xyz
from equihand.train.checkpoint import load_checkpoint
from equihand.train.loop import Loop, TrainingError, add_run_arguments, finish, fit
from equihand.train.runtime import place

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


def root_range(root: torch.Tensor, margin: float) -> tuple[float, float]:
    """The refiner's clamp range: [min / (1 + margin), max * (1 + margin)] of true root depths."""
    if len(root) == 0 or not bool(torch.isfinite(root).all()) or float(root.min()) <= 0:
        raise TrainingError(
            "model.root_refine needs finite, positive true root depths in the labeled images"
        )
    low, high = float(root.min()) / (1 + margin), float(root.max()) * (1 + margin)
    if high <= low:  # a single depth and margin 0
        raise TrainingError(
            f"model.root_refine: the labeled root depths span no range ({low:g}); "
            "set model.root_refine_margin above 0"
        )
    return low, high


def augments(cfg: dict, n_labeled: int) -> bool:
    """Whether a finetuning run on `n_labeled` images augments (finetune.augment and
    finetune.augment_max_labels)."""
    limit = cfg["augment_max_labels"]
    return bool(cfg["augment"]) and (limit == 0 or n_labeled <= limit)


def pose_loss(
    model, batch, uv, zr, aug_cfg, zr_weight: float, K=None, root=None, root_weight: float = 0.0
) -> torch.Tensor:
    """L1 on normalised 2D keypoints + weighted L1 on root-relative depth, after augmenting
    `batch` (and moving `uv` and the intrinsics `K` with it) when `aug_cfg` is given; for a model
    with a root refiner, given K and the true root depth `root` (bone units), + root_weight x L1
    of the refined root depth."""
    if aug_cfg is not None:
        with torch.no_grad():
            batch, geom = augment.augment_view(batch, aug_cfg)
            matrix = geom.matrix.to(uv.device)
            uv = transform_points(matrix, uv)
            K = None if K is None else matrix @ K
    pred = model(batch, K)
    loss_uv = F.l1_loss(pred["uv_norm"].float(), pose.uv_to_norm(uv, batch.shape[-1]))
    loss = loss_uv + zr_weight * F.l1_loss(pred["zr"].float(), zr)
    if "root" in pred:
        loss = loss + root_weight * F.l1_loss(pred["root"], root)
    return loss


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
    device = launch.setup(config)  # and the process group, on several ranks
    channels_last = config["train"]["channels_last"]
    aug = aug_cfg if augments(cfg, len(rows)) else None

    torch.manual_seed(cfg["seed"])
    refine = config["model"]["root_refine"]
    depth_range = None
    if refine:
        depth_range = root_range(
            labels.root[torch.from_numpy(rows)], config["model"]["root_refine_margin"]
        )
    model = build_pose_model(config["model"], depth_range)
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
        K = labels.K[idx].to(device) if refine else None
        root = labels.root[idx].to(device) if refine else None
        loss = pose_loss(model, batch, uv, zr, aug, cfg["zr_weight"], K, root, cfg["root_weight"])
        return loss, len(chosen)

    def evaluate(model):
        xyz = predict_xyz(model, images, val, labels, device, config, cfg["eval_batch_size"])
        pred, true = xyz.double().numpy(), labels.xyz[torch.from_numpy(val)].double().numpy()
        return {
            "val_epe_cm": metrics.epe_cm(metrics.keypoint_errors(pred, true)),
            "val_pa_epe_cm": metrics.epe_cm(metrics.aligned_errors(pred, true)),
        }

    if launch.is_main():
        out_dir = claim_folder(out_dir, "finetune", force=force)
        write_resolved(config, out_dir / "config.yaml")
    launch.barrier()  # the run folder is claimed before a rank looks for resume.pt
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
        "root_depth_range": list(depth_range) if depth_range is not None else None,
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
    try:
        path = finetune(Path(args.data), Path(args.out), config, pretrained, force=args.force)
        if launch.is_main():
            print(f"finetuned {config['model']['backbone']} ({args.pretrained}) -> {path}")
    finally:
        launch.teardown()
