"""`equihand probe`: how well one frozen encoder represents whole hands and their parts.

The encoder is a pretraining checkpoint (its backbone, and its projection head when it has one),
a finetuning checkpoint (the supervised encoder: the pose model's backbone) or ``random`` (a
fresh initialisation from --seed). Its mean-pooled features of the probe sets
(equihand.probe.sets) are scored per task (gesture, orientation: object level; part, finger:
part level) by

- a linear probe: features standardised with the train split's statistics, a linear layer
  trained with SGD (momentum 0.9, cosine schedule) for ``probe.epochs``; the epoch with the best
  val top-1 is chosen and its test top-1 reported (the test split never chooses anything);
- retrieval on the test split: cosine similarity of every query with every other item (the query
  is not in its own gallery), average precision with positives = same class; ``map`` is the mean
  over queries, ``class_map`` the mean over classes of their queries' mean.

The regression task (``pose2d``: centred, scale-normalised 2D keypoints, equihand.probe.sets)
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

from equihand.config import write_resolved
from equihand.errors import UserError
from equihand.io import atomic_path
from equihand.outputs import check_folder, claim_folder
from equihand.probe import sets
from equihand.probe.linear import (
    COLUMNS,
    extract,
    linear_probe,
    load_encoder,
    mean_ap,
    retrieval_ap,
    ridge_probe,
    task_sets,
)
from equihand.train.runtime import runtime_setup


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
    arrays, meta = sets.load(data_dir)
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
