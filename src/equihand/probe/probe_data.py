"""`equihand probe-data`: the image sets of the part-aware probe (equihand.probe.probe).

Object level: whole images of the prepared cache, labelled by gesture class and by the bin of
the hand's in-plane orientation (the image-plane direction wrist -> middle-finger MCP), in
``probe.orientation_bins`` bins whose edges are quantiles of the train split's angles (so the
classes are equally common; FreiHAND-like hands point up within a few tens of degrees).

Object-level regression: ``pose2d``, the 21 2D keypoints centred on their mean and scaled to unit
RMS size (shape and in-plane rotation, not position or size), regressed from frozen features.

Part level: square crops centred on visible keypoints, cut from the raw dataset's full-size
images and resized to the cache resolution, so an encoder sees each part alone:

- ``part``: the wrist and the five fingertips (6 classes),
- ``finger``: the thumb's IP joint and the PIP joint of the other four fingers, labelled by
  finger identity (5 classes).

A crop's side is ``probe.crop_factor`` x the distance (full-size pixels) from its keypoint to the
nearest other keypoint of the same task in that image (Zhu et al. use 0.5); crops smaller than
``probe.min_crop_px`` and keypoints that are hidden or outside the image are dropped.

Splits (never mixed; hand identities are disjoint across them): train = the cache's labeled
split, val = its val split (the probe's epoch is chosen there), test = its test split, each
subsampled to at most ``probe.n_train`` / ``n_val`` / ``n_test`` images with ``probe.seed``.
Writes one ``<array>.npy`` per array (images, labels, split ids, hand ids, cache rows and crop
boxes per task), ``meta.json`` (tasks, class names, counts, the array list) and ``config.yaml``
into --out, atomically.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np

from equihand.config import write_resolved
from equihand.data.cache import PreparedData
from equihand.data.images import load_rgb
from equihand.data.layout import SPLITS, image_path
from equihand.errors import DataError
from equihand.io import atomic_write_json
from equihand.outputs import check_folder, replace_folder
from equihand.probe.sets import (
    META,
    PART_TASKS,
    REGRESSION_TASKS,
    TASKS,
    crop_box,
    cut_crop,
    full_size_uv,
    load,
    orientation_angles,
    orientation_bins,
    orientation_edges,
    pose2d_targets,
    sample_rows,
    select_crops,
)
from equihand.progress import bar


def build(cache_dir: Path, raw_dir: Path, config: dict) -> tuple[dict, dict]:
    """Arrays and metadata of the probe sets (see the module docstring)."""
    cfg = config["probe"]
    data = PreparedData(cache_dir)
    res = int(data.meta["resolution"])
    rows = sample_rows(data, cfg)
    all_rows = np.concatenate(list(rows.values()))
    split_id = np.concatenate([np.full(len(r), i, np.int8) for i, r in enumerate(rows.values())])
    uv_cache = np.asarray(data.uv)[all_rows]
    angles = orientation_angles(uv_cache)
    edges = orientation_edges(angles[split_id == 0], cfg["orientation_bins"])
    arrays = {
        "object_images": np.asarray(data.images[all_rows]),
        "object_split": split_id,
        "object_row": all_rows,
        "object_hand": np.asarray(data.hand_id)[all_rows],
        "gesture": np.asarray(data.gesture)[all_rows],
        "orientation": orientation_bins(angles, edges),
        "pose2d": pose2d_targets(uv_cache),
    }
    bounds = [0.0, *edges.tolist(), 360.0]
    tasks = {
        "orientation": [f"{lo:.0f}-{hi:.0f}deg" for lo, hi in pairwise(bounds)],
        "pose2d": [],  # no classes: ridge regression (equihand.probe.probe)
    }
    gesture_names = data.meta.get("gesture_names")
    if gesture_names and (arrays["gesture"] >= 0).all():
        tasks = {"gesture": list(gesture_names), **tasks}
    crops = {
        t: {k: [] for k in ("images", "labels", "split", "hand", "row", "box")} for t in PART_TASKS
    }
    visible = np.asarray(data.visibility)[all_rows]
    source = np.asarray(data.source_split)[all_rows]
    index = np.asarray(data.image_index)[all_rows]
    for i in bar(range(len(all_rows)), desc="probe crops", total=len(all_rows)):
        split = SPLITS[int(source[i])]
        size = tuple(data.meta["original_size"][split])
        path = image_path(raw_dir, split, int(index[i]))
        image = load_rgb(path, size, f"(the size the cache {cache_dir} recorded)")
        uv = full_size_uv(uv_cache[i], res, size)
        for task in PART_TASKS:
            joints = TASKS[task][1]
            for label, point, side in select_crops(
                uv, visible[i], size, joints, cfg["crop_factor"], cfg["min_crop_px"]
            ):
                box = crop_box(point, side)
                c = crops[task]
                c["images"].append(cut_crop(image, box, res))
                c["labels"].append(label)
                c["split"].append(split_id[i])
                c["hand"].append(arrays["object_hand"][i])
                c["row"].append(all_rows[i])
                c["box"].append(box)
    counts = {}
    for task in PART_TASKS:
        c = crops[task]
        if not c["labels"]:
            raise DataError(
                f"no usable {task} crops in {cache_dir} (probe.crop_factor={cfg['crop_factor']}, "
                f"probe.min_crop_px={cfg['min_crop_px']}): lower min_crop_px"
            )
        arrays[f"{task}_images"] = np.stack(c["images"]).astype(np.uint8)
        arrays[f"{task}_labels"] = np.asarray(c["labels"], np.int64)
        arrays[f"{task}_split"] = np.asarray(c["split"], np.int8)
        arrays[f"{task}_hand"] = np.asarray(c["hand"], np.int64)
        arrays[f"{task}_row"] = np.asarray(c["row"], np.int64)
        arrays[f"{task}_box"] = np.asarray(c["box"], np.float32)
        tasks[task] = list(TASKS[task][2])
        counts[task] = {s: int((arrays[f"{task}_split"] == i).sum()) for i, s in enumerate(rows)}
    counts["object"] = {s: len(r) for s, r in rows.items()}
    meta = {
        "cache": str(cache_dir),
        "raw": str(raw_dir),
        "resolution": res,
        "splits": list(rows),
        "tasks": {
            t: {
                "level": TASKS[t][0],
                "kind": "regression" if t in REGRESSION_TASKS else "classification",
                "classes": names,
            }
            for t, names in tasks.items()
        },
        "counts": counts,
    }
    return arrays, meta


def write(
    cache_dir: Path, raw_dir: Path, out_dir: Path, config: dict, *, force: bool = False
) -> Path:
    check_folder(out_dir, "probe-data", force=force)  # before the work
    arrays, meta = build(cache_dir, raw_dir, config)
    meta["arrays"] = sorted(arrays)
    with replace_folder(out_dir, "probe-data", force=force) as tmp:
        for name, value in arrays.items():  # .npy, not .npz: the same bytes on every run
            np.save(tmp / f"{name}.npy", value)
        atomic_write_json(tmp / META, meta, indent=2)
        write_resolved(config, tmp / "config.yaml")
    return Path(out_dir)


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="prepared cache (`equihand prepare`)")
    parser.add_argument("--raw", required=True, help="the raw dataset folder the cache came from")
    parser.add_argument("--out", required=True, help="folder for the arrays and meta.json")


def run(args, config: dict) -> None:
    out = write(Path(args.data), Path(args.raw), Path(args.out), config, force=args.force)
    _, meta = load(out)
    text = ", ".join(f"{t}: {sum(c.values())}" for t, c in meta["counts"].items())
    print(f"wrote probe sets to {out} ({text})")
