"""`equihand evaluate`: score a finetuned checkpoint on a split with FreiHAND's metrics.

Writes into the output folder: `metrics.json` (equihand.metrics.evaluate_keypoints: EPE,
PA-EPE, AUC, PA-AUC in FreiHAND's units, root-relative EPE, 2D errors), `per_sample.csv` and
`per_joint.csv` (errors in cm, before and after Procrustes alignment), `pck.csv` (the PCK curves),
`pred.json` in FreiHAND's submission format ([xyz list, verts list], metres; no vertices), a grid
of qualitative predictions (`qualitative.png`, true skeleton white, predicted in colour) and the
resolved config. The test split is read here and nowhere in training.

A checkpoint whose model has a root refiner (``model.root_refine``) places its 3D with the refined
root depth; one written without it, or before the option existed, with the closed form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equihand import metrics
from equihand.config import explicit_settings, write_resolved
from equihand.data.cache import SPLIT_NAMES, PreparedData
from equihand.data.drawing import GRID_TILE_PX, qualitative_grid
from equihand.data.layout import JOINT_NAMES
from equihand.errors import UserError
from equihand.io import atomic_path, atomic_write_csv, atomic_write_json
from equihand.methods.models import build_pose_model
from equihand.outputs import check_folder, claim_folder
from equihand.train.batches import Labels, predict
from equihand.train.checkpoint import CheckpointError, load_checkpoint
from equihand.train.runtime import place, runtime_setup

GRID_SAMPLES = 16


def _setting(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_requested(checkpoint: Path, run_config: dict, requested: dict) -> None:
    """Refuse model settings the user asked for that the checkpoint contradicts: a model is
    evaluated as it was trained (its checkpoint's `model` section), never rebuilt otherwise."""
    for key, (value, source) in requested.items():
        if key.split(".")[0] != "model":
            continue
        trained = _setting(run_config, key)
        if value != trained:
            raise UserError(
                f"{source} contradicts the checkpoint {checkpoint}, trained with {key}={trained}: "
                "evaluate uses the checkpoint's own model settings; drop the setting"
            )


def evaluate(
    checkpoint: Path,
    cache_dir: Path,
    split: str,
    out_dir: Path,
    config: dict,
    *,
    force: bool = False,
    requested: dict | None = None,
) -> dict:
    """`requested`: the settings the user gave (config.explicit_settings); model ones must agree
    with the checkpoint's."""
    record = load_checkpoint(checkpoint, kind="finetune")
    run_config = record["config"]
    check_requested(checkpoint, run_config, requested or {})
    data = PreparedData(cache_dir)
    trained_px, cache_px = record["extra"].get("resolution"), data.images.shape[1]
    if trained_px is not None and trained_px != cache_px:
        raise UserError(
            f"{checkpoint} was trained on {trained_px} px images, but the cache {cache_dir} holds "
            f"{cache_px} px ones; evaluate on a cache prepared with prepare.resolution={trained_px}"
        )
    rows = data.split(split)
    labels = Labels(data)
    device = runtime_setup(config)
    model = build_pose_model(run_config["model"])
    try:
        model.load_state_dict(record["model"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(
            f"{checkpoint}: its weights do not fit the pose model its config describes "
            f"(model.root_refine={run_config['model'].get('root_refine', False)}): {detail}"
        ) from None
    model = place(model, device, run_config)
    batch_size = run_config["finetune"]["eval_batch_size"]
    uv_pred, xyz_pred = predict(model, data.images, rows, labels, device, run_config, batch_size)
    idx = torch.from_numpy(rows)
    xyz_true = labels.xyz[idx].double().numpy()
    uv_true = labels.uv[idx].double().numpy()
    xyz_pred, uv_pred = xyz_pred.double().numpy(), uv_pred.double().numpy()
    errors = metrics.keypoint_errors(xyz_pred, xyz_true), metrics.aligned_errors(xyz_pred, xyz_true)
    result = metrics.evaluate_keypoints(xyz_pred, xyz_true, uv_pred, uv_true, errors)
    result.update(
        {
            "checkpoint": str(checkpoint),
            "split": split,
            "n_samples": len(rows),
            "pretrained": record["extra"]["pretrained"],
            "objective": record["extra"]["objective"],
            "backbone": run_config["model"]["backbone"],
            "label_fraction": run_config["finetune"]["label_fraction"],
            "seed": run_config["finetune"]["seed"],
            "root_refine": model.refiner is not None,
        }
    )

    out_dir = claim_folder(out_dir, "evaluate", force=force)
    err, pa_err = (e * metrics.CM_PER_M for e in errors)
    atomic_write_csv(
        out_dir / "per_sample.csv",
        ["row", "epe_cm", "pa_epe_cm"],
        zip(rows.tolist(), err.mean(1).tolist(), pa_err.mean(1).tolist(), strict=True),
    )
    atomic_write_csv(
        out_dir / "per_joint.csv",
        ["joint", "name", "epe_cm", "pa_epe_cm"],
        zip(range(21), JOINT_NAMES, err.mean(0).tolist(), pa_err.mean(0).tolist(), strict=True),
    )
    pck = result["pck"]
    atomic_write_csv(
        out_dir / "pck.csv",
        ["threshold_mm", "pck", "pa_pck"],
        zip(
            (np.asarray(pck["thresholds_m"]) * 1000).tolist(),
            pck["pck"],
            pck["pa_pck"],
            strict=True,
        ),
    )
    atomic_write_json(out_dir / "pred.json", [xyz_pred.tolist(), [[] for _ in rows]])
    n = min(GRID_SAMPLES, len(rows))
    grid = qualitative_grid(
        np.asarray(data.images[rows[:n]]),
        uv_true[:n],
        uv_pred[:n],
        GRID_TILE_PX / data.images.shape[1],
    )
    with atomic_path(out_dir / "qualitative.png") as tmp:
        grid.save(tmp, format="PNG")
    # the model evaluated is the checkpoint's: record its settings, not the defaults
    write_resolved({**config, "model": run_config["model"]}, out_dir / "config.yaml")
    atomic_write_json(out_dir / "metrics.json", result, indent=2)
    return result


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a finetuning run's model.pt")
    parser.add_argument("--data", required=True, help="prepared cache folder")
    parser.add_argument("--split", default="test", choices=SPLIT_NAMES, help="default: test")
    parser.add_argument("--out", required=True, help="folder for metrics.json, pred.json, ...")


def run(args, config: dict) -> None:
    check_folder(args.out, "evaluate", force=args.force)  # before the work
    result = evaluate(
        Path(args.checkpoint),
        Path(args.data),
        args.split,
        Path(args.out),
        config,
        force=args.force,
        requested=explicit_settings(args.config, args.overrides),
    )
    print(
        f"{args.split}: EPE {result['epe_cm']:.2f} cm, PA-EPE {result['pa_epe_cm']:.2f} cm, "
        f"AUC {result['auc']:.3f}, PA-AUC {result['pa_auc']:.3f} -> {args.out}"
    )
