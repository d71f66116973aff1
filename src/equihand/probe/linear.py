"""Reading one frozen encoder: its features of the probe sets, linear probes (SGD, the epoch
chosen on val), ridge regression (the penalty chosen on val) and retrieval mAP on the test split;
`equihand probe` describes each."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from equihand.methods.backbones import Encoder, load_backbone_state
from equihand.methods.models import ProjectionHead
from equihand.train.batches import load_images
from equihand.train.checkpoint import load_checkpoint
from equihand.train.runtime import place

# the columns of probe.csv: one row per encoder, seed, feature and task
COLUMNS = (
    "encoder backbone seed feature task level n_classes n_train n_val n_test test_majority "
    "best_epoch val_top1 test_top1 map class_map alpha val_r2 test_r2"
).split()


class FrozenEncoder(nn.Module):
    """A backbone (+ projection head), frozen: images -> {"backbone": ..., "projector": ...}."""

    def __init__(self, encoder: Encoder, projection: nn.Module | None):
        super().__init__()
        self.encoder, self.projection = encoder, projection
        self.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.encoder(images)
        out = {"backbone": h}
        if self.projection is not None:
            out["projector"] = self.projection(h)
        return out


def load_encoder(checkpoint: str, model_cfg: dict, seed: int) -> FrozenEncoder:
    """``random`` (initialised from `seed` with `model_cfg`) or a pretrain/finetune checkpoint."""
    if checkpoint == "random":
        torch.manual_seed(seed)
        return FrozenEncoder(Encoder(model_cfg["backbone"], "random"), None)
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]["model"]
    encoder = Encoder(cfg["backbone"], "random")
    state = ckpt["model"]
    load_backbone_state(encoder, state)
    projection = None
    head = {
        k.removeprefix("projection."): v for k, v in state.items() if k.startswith("projection.")
    }
    if head:
        projection = ProjectionHead(
            encoder.feature_dim, cfg.get("projection_hidden", 512), cfg.get("projection_dim", 128)
        )
        projection.load_state_dict(head, strict=True)
    return FrozenEncoder(encoder, projection)


def extract(model: FrozenEncoder, images: np.ndarray, batch_size: int, device, config) -> dict:
    """uint8 (N, R, R, 3) -> {feature name: float32 (N, d)}."""
    out: dict[str, list[np.ndarray]] = {}
    model = place(model, device, config)
    for start in range(0, len(images), batch_size):
        rows = slice(start, start + batch_size)
        feats = model(load_images(images, rows, device, config["train"]["channels_last"]))
        for name, f in feats.items():
            out.setdefault(name, []).append(f.float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def retrieval_ap(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Average precision of every item as a query against all the others (cosine similarity).

    The query is excluded from its own gallery; ties in similarity are broken by gallery order
    (a stable sort). Queries without any other item of their class get NaN.
    """
    f = np.asarray(features, np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels)
    n = len(labels)
    ap = np.full(n, np.nan)
    for start in range(0, n, 1024):
        q = np.arange(start, min(start + 1024, n))
        sim = f[q] @ f.T
        sim[np.arange(len(q)), q] = -np.inf  # the query itself goes last ...
        order = np.argsort(-sim, axis=1, kind="stable")[:, : n - 1]  # ... and is cut off
        hits = labels[order] == labels[q, None]
        ranks = np.arange(1, n, dtype=np.float64)
        precision_at_hit = np.cumsum(hits, axis=1) / ranks * hits
        n_pos = hits.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap[q] = np.where(n_pos > 0, precision_at_hit.sum(axis=1) / n_pos, np.nan)
    return ap


def mean_ap(ap: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean over queries, mean over classes of the class's query mean), NaN queries ignored."""
    ok = ~np.isnan(ap)
    if not ok.any():
        return float("nan"), float("nan")
    per_class = [ap[ok & (labels == c)].mean() for c in np.unique(labels[ok])]
    return float(ap[ok].mean()), float(np.mean(per_class))


def linear_probe(
    x: dict[str, np.ndarray], y: dict[str, np.ndarray], n_classes: int, cfg: dict, seed: int
) -> dict:
    """Train on x["train"], choose the epoch on x["val"], report x["test"] at that epoch."""
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
    xs = {s: torch.from_numpy((v - mean) / std).float() for s, v in x.items()}
    ys = {s: torch.from_numpy(v).long() for s, v in y.items()}
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = nn.Linear(xs["train"].shape[1], n_classes)
    opt = torch.optim.SGD(
        layer.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=cfg["weight_decay"]
    )
    n = len(ys["train"])
    steps_per_epoch = -(-n // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["epochs"] * steps_per_epoch)
    best = {"val_top1": -1.0}
    for epoch in range(1, cfg["epochs"] + 1):
        for idx in torch.randperm(n, generator=generator).split(cfg["batch_size"]):
            loss = nn.functional.cross_entropy(layer(xs["train"][idx]), ys["train"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            acc = {
                s: (layer(xs[s]).argmax(1) == ys[s]).float().mean().item() for s in ("val", "test")
            }
        if acc["val"] > best["val_top1"]:
            best = {"best_epoch": epoch, "val_top1": acc["val"], "test_top1": acc["test"]}
    return best


def r2_score(pred: np.ndarray, true: np.ndarray, mean: np.ndarray) -> float:
    """1 - sum of squared errors / that of predicting `mean` (pooled over every output)."""
    return float(1.0 - ((pred - true) ** 2).sum() / ((true - mean) ** 2).sum())


def ridge_probe(x: dict[str, np.ndarray], y: dict[str, np.ndarray], alphas: list[float]) -> dict:
    """Ridge regression on standardised features: the alpha with the best val R^2, its test R^2."""
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
    xs = {s: (v.astype(np.float64) - mean) / std for s, v in x.items()}
    y_mean = y["train"].mean(0)
    gram = xs["train"].T @ xs["train"]
    rhs = xs["train"].T @ (y["train"] - y_mean)
    best = {"val_r2": -np.inf}
    for alpha in alphas:
        w = np.linalg.solve(gram + alpha * np.eye(len(gram)), rhs)
        r2 = {s: r2_score(xs[s] @ w + y_mean, y[s], y_mean) for s in ("val", "test")}
        if r2["val"] > best["val_r2"]:
            best = {"alpha": alpha, "val_r2": r2["val"], "test_r2": r2["test"]}
    return best


def task_sets(arrays: dict, meta: dict, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, split ids) of one task of the probe data."""
    if meta["tasks"][task]["level"] == "object":
        return arrays["object_images"], arrays[task], arrays["object_split"]
    return arrays[f"{task}_images"], arrays[f"{task}_labels"], arrays[f"{task}_split"]
