"""``equihand prepare``: validate a FreiHAND-layout dataset and build the training cache.

The cache is one folder of ``.npy`` files (open them with ``np.load(path, mmap_mode="r")`` or
:class:`equihand.data.cache.PreparedData`), one row per image, training images first
(file order), then evaluation images:

=====================  ================  ==================================================
file                   dtype, shape      content
=====================  ================  ==================================================
images.npy             uint8 (N,R,R,3)   RGB, resized to R = prepare.resolution (bilinear,
                                         antialiased)
xyz.npy                float32 (N,21,3)  joints, camera frame, metres (FreiHAND joint order)
K.npy                  float32 (N,3,3)   intrinsics for the R x R image (see below)
uv.npy                 float32 (N,21,2)  projection of xyz with K.npy, pixels of the R image
scale.npy              float32 (N,)      ||xyz[9] - xyz[10]||, metres
source_split.npy       int8 (N,)         0 training, 1 evaluation
image_index.npy        int64 (N,)        file number in <split>/rgb
annotation_index.npy   int64 (N,)        row of <split>_*.json (image_index % n_annotations)
hand_id.npy            int64 (N,)        hand identity, -1 where unknown
gesture.npy            int64 (N,)        gesture class, -1 where unknown
visibility.npy         bool (N,21)       joint not self-occluded, all True where unknown
parts.npy              uint8 (N,R,R)     part labels (nearest resize), only if the dataset
                                         has part masks; 255 in a split without them
splits.npz             int64 arrays      pool, labeled, val, test: sorted rows of the cache
meta.json                                format_version, counts, sizes, names, file list
config.yaml                              the resolved config the cache was built with
=====================  ================  ==================================================

Pixel convention: pixel (column i, row j) has its centre at (u, v) = (i, j) and covers
[i - 0.5, i + 0.5]; this is what ``uv = K @ xyz`` means in FreiHAND (and in matplotlib's
``imshow``, and in ``grid_sample(align_corners=False)``). Resizing a W x H image to R x R with
s = R / W maps u to s * (u + 0.5) - 0.5 (the image's outer edges stay its edges), so the cached
intrinsics are ``K' = A @ K`` with ``A = [[sx, 0, (sx-1)/2], [0, sy, (sy-1)/2], [0, 0, 1]]``: the
first two rows of K multiplied by s, plus a shift of the principal point by (s - 1) / 2 pixels.

Splits (deterministic from prepare.seed): test = every evaluation image. Training images are
grouped by hand identity (``training_hand_id.json``) when present, else by annotation index, so
FreiHAND's four versions of one sample never straddle splits; groups are shuffled and dealt to
val, labeled and unlabeled; pool = unlabeled (+ labeled when prepare.pool_includes_labeled).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np

from equihand import config as config_module
from equihand import progress
from equihand.data.annotations import load_annotations, project, read_synth_meta, synth_names
from equihand.data.images import (
    count_images,
    decode_image,
    decode_parts,
    image_size,
    part_mask_modulo,
    rescale_intrinsics,
)
from equihand.data.layout import (
    N_JOINTS,
    PART_NAMES,
    SPLITS,
    UNKNOWN_PART,
    image_path,
    parts_path,
)
from equihand.data.splits import make_splits
from equihand.errors import DataError
from equihand.io import atomic_write_json
from equihand.outputs import MARKER, check_folder, replace_folder

FORMAT_VERSION = 1
CHUNK = 64  # images per decoding task: bounds the memory in flight per worker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", help="dataset folder (default: <data_dir>/<dataset>)")
    parser.add_argument("--out", help="cache folder (default: <results_dir>/prepared/<dataset>)")


def run(args: argparse.Namespace, config: dict) -> None:
    root = Path(args.root) if args.root else Path(config["data_dir"]) / config["dataset"]
    out = (
        Path(args.out) if args.out else Path(config["results_dir"]) / "prepared" / config["dataset"]
    )
    meta = prepare(root, out, config, force=args.force)
    counts = meta["counts"]
    print(
        f"prepared {meta['n_images']} images of {root} at {meta['resolution']} px -> {out} "
        f"(pool {counts['pool']}, labeled {counts['labeled']}, val {counts['val']}, "
        f"test {counts['test']})",
        file=sys.stderr,
    )


def _decode_chunk(task: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """Worker: decode images [start, stop) of a split (and their part masks, if any)."""
    root, split, start, stop, size, resolution, parts_modulo, n_parts = task
    images = np.stack(
        [decode_image(image_path(root, split, i), size, resolution) for i in range(start, stop)]
    )
    parts = None
    if parts_modulo:
        parts = np.stack(
            [
                decode_parts(parts_path(root, split, i % parts_modulo), size, resolution, n_parts)
                for i in range(start, stop)
            ]
        )
    return images, parts


def prepare(root: str | Path, out: str | Path, config: dict, *, force: bool = False) -> dict:
    """Validate the dataset at `root` and write the cache to `out` atomically; returns meta."""
    root, out = Path(root), Path(out)
    cfg = config["prepare"]
    resolution = cfg["resolution"]
    if not root.is_dir():
        raise DataError(
            f"dataset folder {root} does not exist; run `equihand synth` or `equihand download` "
            "first, or pass --root"
        )
    check_folder(out, "prepare", force=force)  # before the work
    synth_meta = read_synth_meta(root)
    gesture_names = synth_names(synth_meta, "gesture_names", root / "synth_meta.json")
    part_names = synth_names(synth_meta, "part_names", root / "synth_meta.json")
    n_parts = len(part_names) if part_names else len(PART_NAMES)

    # 1. everything that can be checked without decoding images
    info = {}
    for split in SPLITS:
        ann = load_annotations(root, split, gesture_names)
        m = count_images(root, split, ann["n"])
        size = image_size(image_path(root, split, 0))
        parts_modulo = part_mask_modulo(root, split, ann["n"], m)
        info[split] = {"ann": ann, "m": m, "size": size, "parts_modulo": parts_modulo}
    has_parts = any(info[s]["parts_modulo"] for s in SPLITS)

    # 2. per-image labels (small: built in memory)
    columns: dict[str, list[np.ndarray]] = {}
    for code, split in enumerate(SPLITS):
        ann, m, size = info[split]["ann"], info[split]["m"], info[split]["size"]
        image_index = np.arange(m, dtype=np.int64)
        a = image_index % ann["n"]
        K = rescale_intrinsics(ann["K"], size, resolution)[a]
        xyz = ann["xyz"][a]
        unknown = np.full(m, -1, dtype=np.int64)
        rows = {
            "xyz": xyz.astype(np.float32),
            "K": K.astype(np.float32),
            "uv": project(xyz, K).astype(np.float32),
            "scale": ann["scale"][a].astype(np.float32),
            "source_split": np.full(m, code, dtype=np.int8),
            "image_index": image_index,
            "annotation_index": a,
            "hand_id": ann["hand_id"][a] if "hand_id" in ann else unknown,
            "gesture": ann["gesture"][a] if "gesture" in ann else unknown,
            "visibility": (
                ann["visibility"][a] if "visibility" in ann else np.ones((m, N_JOINTS), bool)
            ),
        }
        for key, value in rows.items():
            columns.setdefault(key, []).append(value)
    labels = {key: np.concatenate(parts) for key, parts in columns.items()}

    m_train = info["training"]["m"]
    n_total = m_train + info["evaluation"]["m"]
    train_ann = info["training"]["ann"]
    if "hand_id" in train_ann:
        groups, grouping = labels["hand_id"][:m_train], "hand_id"
    else:
        groups, grouping = labels["annotation_index"][:m_train], "annotation_index"
    splits = make_splits(groups, m_train, n_total, cfg)

    # 3. the cache, built in a temporary sibling folder
    with replace_folder(out, "prepare", force=force) as tmp:
        files = []
        for key, value in labels.items():
            np.save(tmp / f"{key}.npy", value)
            files.append(f"{key}.npy")
        np.savez(tmp / "splits.npz", **splits)
        files.append("splits.npz")
        _write_images(root, tmp, info, n_total, resolution, has_parts, n_parts, cfg["workers"])
        files += ["images.npy"] + (["parts.npy"] if has_parts else [])
        meta = {
            "format_version": FORMAT_VERSION,
            "dataset": config["dataset"],
            "source": str(root),
            "resolution": resolution,
            "n_images": n_total,
            "counts": {
                **{s: {"images": info[s]["m"], "annotations": info[s]["ann"]["n"]} for s in SPLITS},
                **{name: len(idx) for name, idx in splits.items()},
            },
            "original_size": {s: list(info[s]["size"]) for s in SPLITS},
            "pixel_convention": "pixel (i, j) has its centre at (u, v) = (i, j)",
            "grouping": grouping,
            "seed": cfg["seed"],
            "gesture_names": gesture_names,
            "part_names": (part_names or list(PART_NAMES)) if has_parts else None,
            "files": sorted([*files, "meta.json", "config.yaml", MARKER]),
        }
        config_module.write_resolved(config, tmp / "config.yaml")
        atomic_write_json(tmp / "meta.json", meta, indent=2)
    return meta


def _write_images(
    root: Path,
    tmp: Path,
    info: dict,
    n_total: int,
    resolution: int,
    has_parts: bool,
    n_parts: int,
    workers: int,
) -> None:
    """Decode every image in ordered chunks into memory-mapped images.npy (and parts.npy)."""
    images = np.lib.format.open_memmap(
        tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n_total, resolution, resolution, 3)
    )
    parts = None
    if has_parts:
        parts = np.lib.format.open_memmap(
            tmp / "parts.npy", mode="w+", dtype=np.uint8, shape=(n_total, resolution, resolution)
        )
    tasks, offsets = [], []
    offset = 0
    for split in SPLITS:
        m, size, modulo = info[split]["m"], info[split]["size"], info[split]["parts_modulo"]
        if parts is not None and not modulo:
            parts[offset : offset + m] = UNKNOWN_PART
        for start in range(0, m, CHUNK):
            stop = min(start + CHUNK, m)
            tasks.append((root, split, start, stop, size, resolution, modulo, n_parts))
            offsets.append(offset + start)
        offset += m

    workers = workers or os.cpu_count() or 1
    bar = progress.bar(total=n_total, desc="prepare", unit="img")
    try:
        if workers == 1:
            results = map(_decode_chunk, tasks)
            _fill(results, offsets, images, parts, bar)
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            with ctx.Pool(min(workers, len(tasks))) as pool:
                _fill(pool.imap(_decode_chunk, tasks), offsets, images, parts, bar)
    finally:
        bar.close()
    images.flush()
    del images
    if parts is not None:
        parts.flush()
        del parts


def _fill(results, offsets, images, parts, bar) -> None:
    for start, (chunk, part_chunk) in zip(offsets, results, strict=True):
        images[start : start + len(chunk)] = chunk
        if part_chunk is not None:
            parts[start : start + len(chunk)] = part_chunk
        bar.update(len(chunk))
