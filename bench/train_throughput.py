"""Training throughput: the full step against the model's own forward/backward.

    python bench/train_throughput.py [--cache results/prepared/synth] [--backbone resnet18]
                                     [--batch 128] [--steps 5] [--device auto]

Rows (images/s counts every image the network sees; a contrastive pair is two images):
- model fwd/bwd: optimiser step of the contrastive model on pre-made random tensors on the device;
- pretrain step: cached uint8 rows -> device -> two augmented views -> fwd/bwd -> optimiser step,
  with the exact functions `equihand pretrain` uses;
- finetune step: cached rows -> one augmented view with keypoints -> fwd/bwd -> step.
Prints a Markdown table and writes results/bench/train_throughput.csv.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from equihand import augment, objectives
from equihand.config import load_config
from equihand.data.cache import PreparedData
from equihand.finetune import Labels, pose_loss
from equihand.models import build_contrastive_model, build_pose_model
from equihand.optim import build_optimizer
from equihand.pretrain import contrastive_loss, load_images
from equihand.train import autocast, resolve_device


def timed(step, steps: int, device) -> float:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - tic) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="results/prepared/synth")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch", type=int, default=128, help="images per view")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", default="results/bench/train_throughput.csv")
    args = parser.parse_args()

    config = load_config(None, [f"model.backbone={args.backbone}", f"device={args.device}"])
    device = resolve_device(config["device"])
    amp = config["train"]["amp"]
    data = PreparedData(args.cache)
    images, size = data.images, data.images.shape[1]
    rng = np.random.default_rng(0)
    aug_cfg = augment.AugmentConfig.from_config(config["augment"])
    objective = objectives.get_objective("equivariant")
    torch.manual_seed(0)

    def rows():
        return np.sort(rng.choice(len(images), args.batch, replace=False))

    model = (
        build_contrastive_model(config["model"]).to(device).to(memory_format=torch.channels_last)
    )
    opt = build_optimizer(model, config["pretrain"])
    random_views = torch.rand(2 * args.batch, 3, size, size, device=device).to(
        memory_format=torch.channels_last
    )

    def model_only():
        with autocast(device, amp):
            z = model(random_views).float()
        z.square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def pretrain_step():
        batch = load_images(images, rows(), device, True)
        with autocast(device, amp):
            loss = contrastive_loss(model, batch, aug_cfg, objective, 0.5)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    pose_model = build_pose_model(config["model"]).to(device).to(memory_format=torch.channels_last)
    pose_opt = build_optimizer(pose_model, config["finetune"])
    labels = Labels(data)

    def finetune_step():
        chosen = rows()
        idx = torch.from_numpy(chosen)
        batch = load_images(images, chosen, device, True)
        uv, zr = labels.uv[idx].to(device), labels.zr[idx].to(device)
        with autocast(device, amp):
            loss = pose_loss(pose_model, batch, uv, zr, aug_cfg, 1.0)
        loss.backward()
        pose_opt.step()
        pose_opt.zero_grad(set_to_none=True)

    def aug_only():
        batch = load_images(images, rows(), device, True)
        augment.augment_view(batch, aug_cfg)
        augment.augment_view(batch, aug_cfg)

    results = []
    base = None
    for name, fn, n_images in [
        ("model fwd/bwd (random tensors)", model_only, 2 * args.batch),
        ("pretrain step (data + 2 views + fwd/bwd)", pretrain_step, 2 * args.batch),
        ("  of which data + augmentation", aug_only, 2 * args.batch),
        ("finetune step (data + 1 view + fwd/bwd)", finetune_step, args.batch),
    ]:
        seconds = timed(fn, args.steps, device)
        ips = n_images / seconds
        base = base or ips
        results.append(
            {
                "what": name,
                "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
                "backbone": args.backbone,
                "resolution": size,
                "images_per_step": n_images,
                "seconds_per_step": round(seconds, 4),
                "images_per_s": round(ips, 1),
                "ratio_to_model": "" if name.startswith(" ") else round(ips / base, 3),
            }
        )
    keys = list(results[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in results:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results)


if __name__ == "__main__":
    main()
