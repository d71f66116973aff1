"""Optimisers and the learning-rate schedule of the training loops."""

from __future__ import annotations

import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: biases and normalisation parameters (1-D) are exempt."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "lars": False},
    ]


class LARS(torch.optim.Adam):
    """Adam with LARS's layer-wise trust ratio (You et al. 2017), as PeCLR uses it.

    Before Adam's step, each weight tensor's gradient (plus weight decay) is rescaled by
    eta * ||w|| / ||g + wd * w||; biases and normalisation parameters (`lars` False) are left
    alone. Weight decay is folded into the gradient, so Adam itself runs without it.
    """

    def __init__(self, groups: list[dict], lr: float, eta: float = 1e-3):
        self.eta = eta
        for g in groups:
            g["lars_weight_decay"] = g.pop("weight_decay", 0.0)
        super().__init__(groups, lr=lr, weight_decay=0.0)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if not group.get("lars"):
                continue
            wd = group["lars_weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=wd) if wd else p.grad
                w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                ratio = torch.where(
                    (w_norm > 0) & (g_norm > 0), self.eta * w_norm / g_norm, torch.ones_like(w_norm)
                )
                p.grad.copy_(g * ratio)
        return super().step(closure)


def build_optimizer(model: nn.Module, loop_cfg: dict) -> torch.optim.Optimizer:
    groups = parameter_groups(model, loop_cfg["weight_decay"])
    if loop_cfg["optimizer"] == "lars":
        return LARS(groups, lr=loop_cfg["lr"])
    return torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "lars"} for g in groups], lr=loop_cfg["lr"]
    )


def warmup_cosine(total_steps: int, warmup_steps: int):
    """Multiplier of the peak lr: linear warm-up from ~0, then a cosine down to 0."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(total_steps - warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer, total_steps: int, warmup_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps))
