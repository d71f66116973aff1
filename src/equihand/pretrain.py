"""`equihand pretrain`: self-supervised pretraining of an encoder on the unlabeled pool.

Reads only the images of the prepared cache (never a label, not even to crop): two views of
each image are drawn on the training device with their geometry recorded, encoded, projected,
and scored by the chosen objective (equihand.objectives). Writes `model.pt` (final checkpoint),
`metrics.csv` (one row per epoch) and `config.yaml` into the output folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equihand import augment, objectives
from equihand.config import validate, write_resolved
from equihand.data.cache import PreparedData
from equihand.errors import UserError
from equihand.models import build_contrastive_model
from equihand.train import Loop, add_run_arguments, finish, fit, place, runtime_setup

MODEL_NAME = "model.pt"


def load_images(images, positions: np.ndarray, device: torch.device, channels_last: bool):
    """uint8 rows of the memory-mapped cache -> float (B, 3, H, W) in [0, 1] on `device`."""
    batch = torch.from_numpy(np.ascontiguousarray(images[positions])).to(device, non_blocking=True)
    out = augment.to_float(batch)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out.contiguous()


def contrastive_loss(model, batch, aug_cfg, objective, temperature: float) -> torch.Tensor:
    """Two augmented views of `batch` (B, 3, H, W) -> one forward pass -> the objective."""
    with torch.no_grad():
        view1, geom1 = augment.augment_view(batch, aug_cfg)
        view2, geom2 = augment.augment_view(batch, aug_cfg)
    z1, z2 = model(torch.cat([view1, view2])).float().chunk(2)
    return objective(z1, z2, geom1, geom2, temperature=temperature, image_size=batch.shape[-1])


def pretrain(cache_dir: Path, out_dir: Path, config: dict) -> Path:
    cfg = config["pretrain"]
    if cfg["objective"] == "none":
        raise UserError("objective 'none' means no pretraining; finetune with --pretrained none")
    objective = objectives.get_objective(cfg["objective"])
    data = PreparedData(cache_dir)
    pool = data.split("pool")
    images = data.images  # the only array read: no labels during pretraining
    size = images.shape[1]
    aug_cfg = augment.AugmentConfig.from_config(config["augment"])
    device = runtime_setup(config)
    channels_last = config["train"]["channels_last"]

    torch.manual_seed(cfg["seed"])
    model = place(build_contrastive_model(config["model"]), device, config)

    def step_loss(model, positions):
        batch = load_images(images, pool[positions], device, channels_last)
        loss = contrastive_loss(model, batch, aug_cfg, objective, cfg["temperature"])
        return loss, 2 * len(positions)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_resolved(config, out_dir / "config.yaml")
    loop = Loop("pretrain", config, cfg, cfg["seed"], len(pool), out_dir, step_loss)
    model, history = fit(loop, model, device)
    extra = {"objective": cfg["objective"], "pool_size": len(pool), "resolution": size}
    return finish(loop, model, history, out_dir / MODEL_NAME, extra)


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument(
        "--objective", choices=objectives.ALL_OBJECTIVES[1:], help="overrides pretrain.objective"
    )
    parser.add_argument("--seed", type=int, help="overrides pretrain.seed")


def run(args, config: dict) -> None:
    if args.objective:
        config["pretrain"]["objective"] = args.objective
    if args.seed is not None:
        config["pretrain"]["seed"] = args.seed
    validate(config, "(command line)")
    path = pretrain(Path(args.data), Path(args.out), config)
    print(
        f"pretrained {config['model']['backbone']} with {config['pretrain']['objective']} -> {path}"
    )
