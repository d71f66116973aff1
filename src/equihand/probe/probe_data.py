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

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image

from equihand.config import write_resolved
from equihand.data.cache import PreparedData
from equihand.data.layout import FINGERS, SPLITS, image_path
from equihand.data.prepare import load_rgb
from equihand.errors import DataError, UserError
from equihand.io import atomic_write_json
from equihand.outputs import check_folder, replace_folder
from equihand.progress import bar

# task -> (level, selected joints, class names); the label of joint k is its position in the list
TASKS = {
    "gesture": ("object", None, None),
    "orientation": ("object", None, None),
    "pose2d": ("object", None, None),  # a regression target, not classes
    "part": ("part", (0, 4, 8, 12, 16, 20), ("wrist", *(f"{f}_tip" for f in FINGERS))),
    "finger": ("part", (3, 6, 10, 14, 18), FINGERS),
}
REGRESSION_TASKS = ("pose2d",)  # scored by ridge regression (R^2), not by a classifier
PART_TASKS = tuple(t for t, (level, _, _) in TASKS.items() if level == "part")
PROBE_SPLITS = {"train": "labeled", "val": "val", "test": "test"}  # probe split -> cache split
ORIENTATION_JOINTS = (0, 9)  # wrist -> middle-finger MCP
META = "meta.json"


def orientation_angles(uv: np.ndarray) -> np.ndarray:
    """In-plane hand direction of (N, 21, 2) keypoints, degrees in [0, 360).

    atan2 of the wrist -> middle-MCP vector in image coordinates (u right, v down): 270 is a hand
    pointing straight up.
    """
    a, b = ORIENTATION_JOINTS
    d = uv[:, b] - uv[:, a]
    return np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 360.0


def pose2d_targets(uv: np.ndarray) -> np.ndarray:
    """(N, 21, 2) keypoints -> (N, 42) 2D pose: centred on their mean and divided by their RMS
    distance from it, so it holds the hand's shape and in-plane rotation but not where in the
    image the hand is or how large (which even an untrained encoder can read off the blob)."""
    centred = uv - uv.mean(axis=1, keepdims=True)
    size = np.sqrt((centred**2).sum(axis=2).mean(axis=1))
    return (centred / np.maximum(size, 1e-9)[:, None, None]).reshape(len(uv), -1).astype(np.float32)


def orientation_edges(train_angles: np.ndarray, n_bins: int) -> np.ndarray:
    """The n_bins - 1 inner bin edges: quantiles of the train split's angles (equal classes)."""
    return np.quantile(train_angles, np.linspace(0, 1, n_bins + 1)[1:-1])


def orientation_bins(angles: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Angles -> bin in [0, len(edges)]; bin b covers [edges[b - 1], edges[b])."""
    return np.searchsorted(edges, angles, side="right").astype(np.int64)


def crop_sides(points: np.ndarray, factor: float) -> np.ndarray:
    """(K, 2) keypoints of one image -> (K,) crop sides: factor x distance to the nearest other."""
    if len(points) < 2:
        raise ValueError("a crop side needs at least two keypoints")
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return factor * dist.min(axis=1)


def crop_box(center: np.ndarray, side: float) -> tuple[float, float, float, float]:
    """The square (left, top, right, bottom) in PIL coordinates centred on a keypoint.

    Keypoints use the pixel-centre convention (pixel i covers [i - 0.5, i + 0.5]), PIL's pixel i
    covers [i, i + 1]: the keypoint is at PIL coordinate u + 0.5.
    """
    cx, cy = float(center[0]) + 0.5, float(center[1]) + 0.5
    h = side / 2.0
    return (cx - h, cy - h, cx + h, cy + h)


def cut_crop(image: Image.Image, box: tuple[float, ...], resolution: int) -> np.ndarray:
    """The `box` of `image` resized to (resolution, resolution, 3) uint8; outside is black.

    The keypoint the box is centred on lands at pixel-centre coordinate (resolution - 1) / 2.
    """
    out = image.transform(
        (resolution, resolution), Image.Transform.EXTENT, box, Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.uint8)


def select_crops(
    uv: np.ndarray, visible: np.ndarray, size: tuple[int, int], joints, factor: float, min_px: float
) -> list[tuple[int, np.ndarray, float]]:
    """(label, centre, side) of the usable crops of one image (full-size uv (21, 2))."""
    points = uv[list(joints)]
    sides = crop_sides(points, factor)
    w, h = size
    keep = []
    for label, (joint, point, side) in enumerate(zip(joints, points, sides, strict=True)):
        inside = -0.5 <= point[0] <= w - 0.5 and -0.5 <= point[1] <= h - 0.5
        if visible[joint] and inside and side >= min_px:
            keep.append((label, point, float(side)))
    return keep


def sample_rows(data: PreparedData, cfg: dict) -> dict[str, np.ndarray]:
    """Sorted cache rows of each probe split, subsampled with probe.seed."""
    rng = np.random.default_rng(cfg["seed"])
    rows = {}
    for split, cache_split in PROBE_SPLITS.items():
        pool = data.split(cache_split)
        n = min(cfg[f"n_{split}"], len(pool))
        if n == 0:
            raise DataError(f"{data.path}: the {cache_split} split is empty; the probe needs it")
        rows[split] = np.sort(rng.choice(pool, size=n, replace=False))
    if data.has("hand_id"):
        hands = {s: set(np.asarray(data.hand_id)[r].tolist()) - {-1} for s, r in rows.items()}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            if hands[a] & hands[b]:
                raise DataError(
                    f"{data.path}: hand identities {sorted(hands[a] & hands[b])[:5]} appear in "
                    f"both the probe's {a} and {b} splits; rebuild the cache with "
                    "`equihand prepare`"
                )
    return rows


def full_size_uv(uv: np.ndarray, resolution: int, size: tuple[int, int]) -> np.ndarray:
    """Keypoints of the R x R cache image -> the W x H original (inverse of the cache resize)."""
    scale = np.array([size[0] / resolution, size[1] / resolution])
    return (uv + 0.5) * scale - 0.5


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


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and meta.json of a probe-data folder, checked."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
        arrays = {name: np.load(folder / f"{name}.npy") for name in meta["arrays"]}
    except FileNotFoundError as e:
        raise UserError(
            f"{folder}: not a probe-data folder ({e.filename} missing); run `equihand probe-data`"
        ) from None
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}: unreadable probe data ({e})") from None
    except (KeyError, TypeError) as e:
        raise UserError(f"{folder / META}: not written by `equihand probe-data` ({e!r})") from None
    return arrays, meta


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="prepared cache (`equihand prepare`)")
    parser.add_argument("--raw", required=True, help="the raw dataset folder the cache came from")
    parser.add_argument("--out", required=True, help="folder for the arrays and meta.json")


def run(args, config: dict) -> None:
    out = write(Path(args.data), Path(args.raw), Path(args.out), config, force=args.force)
    _, meta = load(out)
    text = ", ".join(f"{t}: {sum(c.values())}" for t, c in meta["counts"].items())
    print(f"wrote probe sets to {out} ({text})")
