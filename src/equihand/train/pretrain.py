"""`equihand pretrain`: self-supervised pretraining of an encoder on the unlabeled pool.

Reads only the images of the prepared cache (never a label, not even to crop): two views of
each image are drawn on the training device with their geometry recorded, encoded, projected,
and scored by the chosen objective (equihand.methods.objectives). Masked objectives (mim and the
contrastive+mim sums) also mask patches of the first view and reconstruct them with a pixel
decoder on the same backbone (equihand.methods.mim); mim alone draws one view and has no projection
head. Writes `model.pt` (final checkpoint), `metrics.csv` (one row per epoch) and
`config.yaml` into the output folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equihand import vocabulary
from equihand.config import load_schema, validate, write_resolved
from equihand.data.cache import Prefetcher, PreparedData
from equihand.data.layout import UNKNOWN_PART
from equihand.errors import DataError, UserError
from equihand.methods import augment, mim, objectives
from equihand.methods.models import build_contrastive_model, build_masked_model
from equihand.outputs import check_folder, claim_folder
from equihand.train import launch
from equihand.train.batches import load_images
from equihand.train.loop import Loop, add_run_arguments, finish, fit
from equihand.train.runtime import place

MODEL_NAME = "model.pt"


def foreground_reader(data: PreparedData, cache_dir: Path):
    """The cache's part masks, which pretrain.background_swap_p needs."""
    if not data.has("parts"):
        raise UserError(
            f"pretrain.background_swap_p > 0 needs foreground masks, but the cache {cache_dir} has "
            "no parts.npy (its dataset has no part masks); set pretrain.background_swap_p: 0"
        )
    return data.reader("parts")


def load_foreground(parts, rows: np.ndarray, device: torch.device, cache_dir: Path):
    """Part labels of cache rows -> (B, H, W) bool, True on the hand and arm (label > 0)."""
    labels = np.ascontiguousarray(parts[rows])
    if (labels == UNKNOWN_PART).any():
        bad = int(rows[np.flatnonzero((labels == UNKNOWN_PART).any(axis=(1, 2)))[0]])
        raise DataError(
            f"{cache_dir}/parts.npy: row {bad} has no part mask (value {UNKNOWN_PART}), so its "
            "background cannot be swapped; set pretrain.background_swap_p: 0 for this dataset"
        )
    return torch.from_numpy(labels > 0).to(device)


def views_of(batch, foreground, aug_cfg, swap_p: float):
    """One augmented view of `batch` (B, 3, H, W), its background first swapped with probability
    `swap_p` (foreground (B, H, W) bool, or None when swap_p is 0)."""
    if swap_p > 0:
        batch = augment.swap_backgrounds(batch, foreground, swap_p)
    return augment.augment_view(batch, aug_cfg)


def contrastive_loss(
    model, batch, aug_cfg, objective, temperature: float, foreground=None, swap_p: float = 0.0
) -> torch.Tensor:
    """Two augmented views of `batch` (B, 3, H, W) -> one forward pass -> the objective."""
    with torch.no_grad():
        view1, geom1 = views_of(batch, foreground, aug_cfg, swap_p)
        view2, geom2 = views_of(batch, foreground, aug_cfg, swap_p)
    z1, z2 = model(torch.cat([view1, view2])).float().chunk(2)
    return objective(z1, z2, geom1, geom2, temperature=temperature, image_size=batch.shape[-1])


def mim_settings(cfg: dict, image_size: int) -> dict:
    """``pretrain.mim`` with schema defaults for missing keys, checked against the image size.

    The section has no schema default of its own, so configs of the other objectives (and the
    workflow's parameters for them) do not change; a masked run records it in its config.
    """
    schema = load_schema()["properties"]["pretrain"]["properties"]["mim"]["properties"]
    settings = {key: sub["default"] for key, sub in schema.items()} | (cfg.get("mim") or {})
    mim.check_settings(settings["mask_ratio"], settings["patch_size"], image_size)
    return settings


def masked_loss(
    model,
    batch,
    aug_cfg,
    spec: vocabulary.ObjectiveEntry,
    temperature: float,
    settings: dict,
    foreground=None,
    swap_p: float = 0.0,
) -> torch.Tensor:
    """Masked objectives: mask patches of a view of `batch` (B, 3, H, W), reconstruct them and,
    when the objective is also contrastive, project two unmasked views in the same pass."""
    b, size, patch = batch.shape[0], batch.shape[-1], settings["patch_size"]
    with torch.no_grad():
        view1, geom1 = views_of(batch, foreground, aug_cfg, swap_p)
        view2, geom2 = (
            views_of(batch, foreground, aug_cfg, swap_p) if spec.contrastive else (None, None)
        )
        mask = mim.random_patch_mask(b, size // patch, settings["mask_ratio"], device=batch.device)
        masked = mim.mask_images(view1, mask, patch)
    if spec.contrastive:
        out = model(masked, torch.cat([view1, view2]))
        z1, z2 = out["z"].float().chunk(2)
    else:
        out, z1, z2 = model(masked), None, None
    recon = mim.Reconstruction(out["pred"].float(), view1, mask, patch, settings["weight"])
    return spec.loss(z1, z2, geom1, geom2, temperature=temperature, image_size=size, recon=recon)


def pretrain(cache_dir: Path, out_dir: Path, config: dict, *, force: bool = False) -> Path:
    cfg = config["pretrain"]
    if cfg["objective"] == vocabulary.NO_PRETRAINING:
        raise UserError("objective 'none' means no pretraining; finetune with --pretrained none")
    spec = objectives.get_objective(cfg["objective"])
    data = PreparedData(cache_dir)
    pool = data.split("pool")
    # the only array read (no labels during pretraining), with pread rather than the memory
    # map, so that an epoch does not grow the process by the whole file (data.cache.RowReader),
    # and a batch ahead, on a background thread (data.cache.Prefetcher)
    images = Prefetcher(data.reader("images"))
    size = images.shape[1]
    swap_p = cfg["background_swap_p"]
    parts = foreground_reader(data, cache_dir) if swap_p > 0 else None
    aug_cfg = augment.AugmentConfig.from_config(config["augment"])
    device = launch.setup(config)  # and the process group, on several ranks
    channels_last = config["train"]["channels_last"]

    if spec.masked:
        cfg["mim"] = mim_settings(cfg, size)  # defaults resolved into the run's config
    passes = 2 * spec.contrastive + spec.masked  # backbone inputs per pool image

    torch.manual_seed(cfg["seed"])
    if spec.masked:
        model = build_masked_model(config["model"], contrastive=spec.contrastive)
    else:
        model = build_contrastive_model(config["model"])
    model = place(model, device, config)

    def step_loss(model, positions):
        rows = pool[positions]
        batch = load_images(images, rows, device, channels_last)
        fg = None if parts is None else load_foreground(parts, rows, device, cache_dir)
        if spec.masked:
            loss = masked_loss(
                model, batch, aug_cfg, spec, cfg["temperature"], cfg["mim"], fg, swap_p
            )
        else:
            loss = contrastive_loss(
                model, batch, aug_cfg, spec.loss, cfg["temperature"], fg, swap_p
            )
        return loss, passes * len(positions)

    if launch.is_main():
        out_dir = claim_folder(out_dir, "pretrain", force=force)
        write_resolved(config, out_dir / "config.yaml")
    launch.barrier()  # the run folder is claimed before a rank looks for resume.pt
    loop = Loop("pretrain", config, cfg, cfg["seed"], len(pool), out_dir, step_loss)
    loop.prefetch = lambda positions: images.prefetch(pool[positions])
    try:
        model, history = fit(loop, model, device)
    finally:
        images.close()
        if parts is not None:
            parts.close()
    extra = {"objective": cfg["objective"], "pool_size": len(pool), "resolution": size}
    return finish(loop, model, history, out_dir / MODEL_NAME, extra)


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument(
        "--objective",
        choices=vocabulary.pretraining_objectives(),
        help="overrides pretrain.objective",
    )
    parser.add_argument("--seed", type=int, help="overrides pretrain.seed")


def run(args, config: dict) -> None:
    if args.objective:
        config["pretrain"]["objective"] = args.objective
    if args.seed is not None:
        config["pretrain"]["seed"] = args.seed
    validate(config, "(command line)")
    check_folder(args.out, "pretrain", force=args.force)  # before the work
    try:
        path = pretrain(Path(args.data), Path(args.out), config, force=args.force)
        if launch.is_main():
            model, objective = config["model"]["backbone"], config["pretrain"]["objective"]
            print(f"pretrained {model} with {objective} -> {path}")
    finally:
        launch.teardown()
