"""`equihand probe`: how well one frozen encoder represents whole hands and their parts.

The encoder is a pretraining checkpoint (its backbone, and its projection head when it has one),
a finetuning checkpoint (the supervised encoder: the pose model's backbone) or ``random`` (a
fresh initialisation from --seed). Its mean-pooled features of the probe sets
(equihand.probe.probe_data) are scored per task (gesture, orientation: object level; part, finger:
part level) by

- a linear probe: features standardised with the train split's statistics, a linear layer
  trained with SGD (momentum 0.9, cosine schedule) for ``probe.epochs``; the epoch with the best
  val top-1 is chosen and its test top-1 reported (the test split never chooses anything);
- retrieval on the test split: cosine similarity of every query with every other item (the query
  is not in its own gallery), average precision with positives = same class; ``map`` is the mean
  over queries, ``class_map`` the mean over classes of their queries' mean.

The regression task (``pose2d``: centred, scale-normalised 2D keypoints, equihand.probe.probe_data)
is scored by ridge regression on the standardised features instead: the penalty is chosen from
``probe.ridge_alphas`` by val R^2 and the test R^2 reported (1 - squared error / the squared
error of predicting the train split's mean pose; 0 = no pose read, 1 = perfect). It is the
probe's pose-sensitive check: it asks whether the frozen features hold the hand's shape and
in-plane rotation.

``test_majority`` is the top-1 of always answering the test split's most frequent class.

For encoders with a projection head the projector output is scored beside the backbone feature.
Writes ``probe.csv`` (one row per feature and task) and ``config.yaml`` into --out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from equihand.config import write_resolved
from equihand.errors import UserError
from equihand.io import atomic_path
from equihand.methods.models import Encoder, ProjectionHead, load_backbone_state
from equihand.outputs import check_folder, claim_folder
from equihand.probe import probe_data
from equihand.train.checkpoint import load_checkpoint
from equihand.train.loop import place, runtime_setup
from equihand.train.pretrain import load_images

COLUMNS = (
    "encoder backbone seed feature task level n_classes n_train n_val n_test test_majority "
    "best_epoch val_top1 test_top1 map class_map alpha val_r2 test_r2"
).split()


# --- encoders ----------------------------------------------------------------------------------


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


# --- scores ------------------------------------------------------------------------------------


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


# --- the step ----------------------------------------------------------------------------------


def task_sets(arrays: dict, meta: dict, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, split ids) of one task of the probe data."""
    if meta["tasks"][task]["level"] == "object":
        return arrays["object_images"], arrays[task], arrays["object_split"]
    return arrays[f"{task}_images"], arrays[f"{task}_labels"], arrays[f"{task}_split"]


def probe(
    data_dir: Path,
    checkpoint: str,
    encoder_name: str,
    seed: int,
    out_dir: Path,
    config: dict,
    *,
    force: bool = False,
) -> pd.DataFrame:
    cfg = config["probe"]
    arrays, meta = probe_data.load(data_dir)
    device = runtime_setup(config)
    model = load_encoder(checkpoint, config["model"], seed)
    splits = meta["splits"]
    rows, cache = [], {}
    for task, info in meta["tasks"].items():
        images, labels, split = task_sets(arrays, meta, task)
        key = "object" if info["level"] == "object" else task  # object tasks share the images
        if key not in cache:
            cache[key] = extract(model, images, cfg["feature_batch_size"], device, config)
        feats = cache[key]
        for feature, f in feats.items():
            x = {s: f[split == i] for i, s in enumerate(splits)}
            y = {s: labels[split == i] for i, s in enumerate(splits)}
            row = {
                "encoder": encoder_name,
                "backbone": model.encoder.backbone_name,
                "seed": seed,
                "feature": feature,
                "task": task,
                "level": info["level"],
                "n_classes": len(info["classes"]),
                **{f"n_{s}": len(y[s]) for s in splits},
            }
            if info.get("kind") == "regression":
                rows.append({**row, **ridge_probe(x, y, cfg["ridge_alphas"])})
                continue
            scores = linear_probe(x, y, len(info["classes"]), cfg, seed)
            m, cm = mean_ap(retrieval_ap(x["test"], y["test"]), y["test"])
            rows.append(
                {
                    **row,
                    # top-1 of always answering the most frequent test class
                    "test_majority": np.bincount(y["test"]).max() / len(y["test"]),
                    **scores,
                    "map": m,
                    "class_map": cm,
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    out_dir = claim_folder(out_dir, "probe", force=force)
    write_resolved(config, out_dir / "config.yaml")
    with atomic_path(out_dir / "probe.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    return table


def add_arguments(parser) -> None:
    parser.add_argument("--probe-data", required=True, help="folder of `equihand probe-data`")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="model.pt of `equihand pretrain` or `equihand finetune`, or `random`",
    )
    parser.add_argument("--encoder", required=True, help="the encoder's name in the tables")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (random init, probes)")
    parser.add_argument("--out", required=True, help="folder for probe.csv and config.yaml")


def run(args, config: dict) -> None:
    if args.checkpoint != "random" and not Path(args.checkpoint).is_file():
        raise UserError(f"--checkpoint {args.checkpoint}: no such file (or pass `random`)")
    check_folder(args.out, "probe", force=args.force)  # before the work
    table = probe(
        Path(args.probe_data),
        args.checkpoint,
        args.encoder,
        args.seed,
        Path(args.out),
        config,
        force=args.force,
    )
    best = table[table["feature"] == "backbone"].set_index("task")
    scores = best["test_top1"].fillna(best["test_r2"])
    print(
        f"probed {args.encoder} (seed {args.seed}): "
        + ", ".join(f"{t} {v:.3f}" for t, v in scores.items())
        + f" -> {Path(args.out) / 'probe.csv'}"
    )
