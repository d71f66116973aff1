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
import json
import math
import multiprocessing
import os
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from equihand import config as config_module
from equihand import progress
from equihand.data.layout import (
    UNKNOWN_PART,
    N_JOINTS,
    PART_NAMES,
    SPLITS,
    annotation_path,
    image_path,
    parts_path,
)
from equihand.errors import DataError
from equihand.io import atomic_write_json
from equihand.outputs import MARKER, check_folder, replace_folder
from equihand.data.units import check_scale_bone

FORMAT_VERSION = 1
CHUNK = 64  # images per decoding task: bounds the memory in flight per worker
MAX_ASPECT = 1.05  # "square-ish": longer side at most 5% longer than the shorter one
UV_TOLERANCE_PX = 1.0  # a provided <split>_uv.json must agree with the projection of xyz by K
_IMAGE_NAME = re.compile(r"^(\d{8})\.jpg$")


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


# ---------------------------------------------------------------------------------------------
# validation of the annotation files


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "a single number"


def _describe(item) -> str:
    try:
        return _shape_text(np.asarray(item, dtype=np.float64).shape)
    except (ValueError, TypeError):
        return f"a ragged or non-numeric value ({str(item)[:40]})"


def _read_json_list(path: Path) -> list:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (required by the FreiHAND layout)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list, got {type(data).__name__}")
    return data


def _numeric_array(path: Path, data: list, shape: tuple[int, ...]) -> np.ndarray:
    """`data` as finite float64 (len(data), *shape), or a DataError naming the first bad entry."""
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.shape != (len(data), *shape):
        want = _shape_text(shape) + (" numbers" if shape else "")
        for i, item in enumerate(data):
            got = _describe(item)
            if got != _shape_text(shape):
                raise DataError(f"{path}[{i}]: expected {want}, got {got}")
        raise DataError(f"{path}: expected a list of {want}")  # pragma: no cover
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{path}[{i}]: expected finite numbers, got {data[i]}")
    return arr


def _int_array(path: Path, data: list, minimum: int, maximum: int | None = None) -> np.ndarray:
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise DataError(f"{path}[{i}]: expected an integer >= {minimum}, got {v!r}")
        if maximum is not None and v > maximum:
            raise DataError(f"{path}[{i}]: expected an integer <= {maximum}, got {v!r}")
    return np.asarray(data, dtype=np.int64).reshape(len(data))


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def project(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection: uv = (K @ xyz^T)^T divided by its third coordinate; (..., 21, 2)."""
    p = np.einsum("...ij,...kj->...ki", K, xyz)
    return p[..., :2] / p[..., 2:]


def load_annotations(root: Path, split: str, gesture_names: list[str] | None = None) -> dict:
    """Read and check one split's JSON annotations; returns float64/int64 arrays per key."""
    paths = {key: annotation_path(root, split, key) for key in ("xyz", "K", "scale")}
    lists = {key: _read_json_list(p) for key, p in paths.items()}
    n = len(lists["xyz"])
    if n == 0:
        raise DataError(f"{paths['xyz']}: expected at least one annotation, got an empty list")
    for key in ("K", "scale"):
        if len(lists[key]) != n:
            raise DataError(
                f"{paths[key]}: expected {n} entries (as many as {paths['xyz'].name}), "
                f"got {len(lists[key])}"
            )
    xyz = _numeric_array(paths["xyz"], lists["xyz"], (N_JOINTS, 3))
    bad = (xyz[..., 2] <= 0).any(axis=1)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(
            f"{paths['xyz']}[{i}]: expected every joint in front of the camera (z > 0), "
            f"got z = {xyz[i, :, 2].min():.4g} m"
        )
    K = _numeric_array(paths["K"], lists["K"], (3, 3))
    bad = (K[:, 0, 0] <= 0) | (K[:, 1, 1] <= 0)
    if bad.any():
        i = _first_bad(bad)
        raise DataError(
            f"{paths['K']}[{i}]: expected positive focal lengths, "
            f"got fx = {K[i, 0, 0]:.4g}, fy = {K[i, 1, 1]:.4g}"
        )
    bad = np.abs(K[:, 2] - np.array([0.0, 0.0, 1.0])).max(axis=1) > 1e-6
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{paths['K']}[{i}]: expected last row [0, 0, 1], got {K[i, 2]}")
    scale = _numeric_array(paths["scale"], lists["scale"], ())
    bad = scale <= 0
    if bad.any():
        i = _first_bad(bad)
        raise DataError(f"{paths['scale']}[{i}]: expected a positive scale, got {scale[i]}")
    check_scale_bone(xyz, scale, paths["xyz"], paths["scale"])
    ann = {"n": n, "xyz": xyz, "K": K, "scale": scale}

    def optional(key: str) -> tuple[Path, list] | None:
        path = annotation_path(root, split, key)
        if not path.exists():
            return None
        data = _read_json_list(path)
        if len(data) != n:
            raise DataError(
                f"{path}: expected {n} entries (as many as {paths['xyz'].name}), got {len(data)}"
            )
        return path, data

    if (found := optional("gesture")) is not None:
        top = len(gesture_names) - 1 if gesture_names else None
        ann["gesture"] = _int_array(*found, minimum=0, maximum=top)
    if (found := optional("hand_id")) is not None:
        ann["hand_id"] = _int_array(*found, minimum=0)
    if (found := optional("visibility")) is not None:
        vis = _numeric_array(*found, (N_JOINTS,))
        bad = ((vis != 0) & (vis != 1)).any(axis=1)
        if bad.any():
            i = _first_bad(bad)
            raise DataError(f"{found[0]}[{i}]: expected 21 flags 0 or 1, got {found[1][i]}")
        ann["visibility"] = vis.astype(bool)
    if (found := optional("uv")) is not None:
        uv = _numeric_array(*found, (N_JOINTS, 2))
        err = np.abs(uv - project(xyz, K)).max(axis=(1, 2))
        bad = err > UV_TOLERANCE_PX
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"{found[0]}[{i}]: expected the projection of {paths['xyz'].name}[{i}] by "
                f"{paths['K'].name}[{i}] (within {UV_TOLERANCE_PX} px), differs by {err[i]:.3g} px"
            )
    return ann


# ---------------------------------------------------------------------------------------------
# images


def _list_numbered(folder: Path, pattern: re.Pattern) -> set[int]:
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as it:
        return {int(m.group(1)) for e in it if (m := pattern.match(e.name))}


def count_images(root: Path, split: str, n: int) -> int:
    """The number of images M of a split: a positive multiple of n with files 0..M-1 all present."""
    folder = root / split / "rgb"
    found = _list_numbered(folder, _IMAGE_NAME)
    if not found:
        raise DataError(f"{folder}: expected images named %08d.jpg, found none")
    m = math.ceil((max(found) + 1) / n) * n
    missing = sorted(set(range(m)) - found)
    if missing:
        raise DataError(
            f"{image_path(root, split, missing[0])}: missing ({len(missing)} missing in all); "
            f"{folder} holds {len(found)} images numbered up to {max(found)}, but expected "
            f"a multiple of the {n} annotations (image i has annotation i % {n}) with no gaps"
        )
    return m


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, read from its header; checks that it is square-ish RGB."""
    try:
        with Image.open(path) as im:
            size, mode = im.size, im.mode
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from e
    if mode != "RGB":
        raise DataError(f"{path}: expected an RGB image, got mode {mode}")
    w, h = size
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise DataError(f"{path}: expected a square-ish image, got {w}x{h}")
    return w, h


def load_rgb(path: Path, size: tuple[int, int], size_source: str = "like the split's first image"):
    """Open one RGB image that must be `size` (w, h); a PIL image, or a DataError naming `path`."""
    try:
        with Image.open(path) as im:
            im.load()
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a decodable image ({e})") from e
    if im.mode != "RGB":
        raise DataError(f"{path}: expected an RGB image, got mode {im.mode}")
    if im.size != tuple(size):
        raise DataError(
            f"{path}: expected {size[0]}x{size[1]} {size_source}, got {im.size[0]}x{im.size[1]}"
        )
    return im


def decode_image(path: Path, size: tuple[int, int], resolution: int) -> np.ndarray:
    """Decode one RGB image of `size` (w, h) and resize it to (resolution, resolution, 3) uint8."""
    im = load_rgb(path, size).resize((resolution, resolution), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def decode_parts(path: Path, size: tuple[int, int], resolution: int, n_parts: int) -> np.ndarray:
    """Decode one part label map (values < n_parts) and resize it (nearest) to (R, R) uint8."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P"):
                raise DataError(f"{path}: expected an 8-bit label map, got mode {im.mode}")
            if im.size != tuple(size):
                raise DataError(
                    f"{path}: expected {size[0]}x{size[1]} like its image, "
                    f"got {im.size[0]}x{im.size[1]}"
                )
            labels = np.asarray(im, dtype=np.uint8)
            im = im.resize((resolution, resolution), Image.Resampling.NEAREST)
            small = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a decodable image ({e})") from e
    if labels.max() >= n_parts:
        raise DataError(f"{path}: expected part labels below {n_parts}, got {labels.max()}")
    return small


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


def _parts_modulo(root: Path, split: str, n: int, m: int) -> int:
    """0 when a split has no part masks; else p such that image i's mask is parts/(i % p)."""
    folder = root / split / "parts"
    found = _list_numbered(folder, re.compile(r"^(\d{8})\.png$"))
    if not found:
        return 0
    for p in (m, n):
        if found >= set(range(p)) and len(found) == p:
            return p
    expected = f"{m} (one per image)" if m == n else f"{m} (one per image) or {n} (per annotation)"
    missing = sorted(set(range(n)) - found)
    where = parts_path(root, split, missing[0]) if missing else folder
    raise DataError(f"{where}: expected {expected} part masks numbered from 0, found {len(found)}")


# ---------------------------------------------------------------------------------------------
# intrinsics and splits


def rescale_intrinsics(K: np.ndarray, size: tuple[int, int], resolution: int) -> np.ndarray:
    """Intrinsics of the image resized from `size` (w, h) to resolution x resolution.

    Pixel centres are at integer coordinates, so u -> s * (u + 0.5) - 0.5 with s = R / w.
    """
    sx, sy = resolution / size[0], resolution / size[1]
    A = np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2], [0.0, 0.0, 1.0]])
    return A @ K


def make_splits(groups: np.ndarray, n_test_start: int, n_total: int, cfg: dict) -> dict:
    """Deal training rows to val / labeled / unlabeled by group; test = the evaluation rows.

    `groups` holds one group key per training row (rows 0..len(groups)-1); the evaluation rows
    are [n_test_start, n_total).
    """
    keys = np.unique(groups)
    n_groups = len(keys)
    if n_groups < 2:
        raise DataError(
            f"the training split has {n_groups} group(s) (hand identities or samples); "
            "expected at least 2 to hold out a validation split"
        )
    order = np.random.default_rng(cfg["seed"]).permutation(n_groups)
    n_val = min(max(1, round(cfg["val_fraction"] * n_groups)), n_groups - 1)
    n_lab = min(max(1, round(cfg["labeled_fraction"] * n_groups)), n_groups - n_val)
    val_keys = keys[order[:n_val]]
    lab_keys = keys[order[n_val : n_val + n_lab]]
    unl_keys = keys[order[n_val + n_lab :]]
    rows = np.arange(len(groups), dtype=np.int64)
    val = rows[np.isin(groups, val_keys)]
    labeled = rows[np.isin(groups, lab_keys)]
    unlabeled = rows[np.isin(groups, unl_keys)]
    pool = (
        np.sort(np.concatenate([unlabeled, labeled])) if cfg["pool_includes_labeled"] else unlabeled
    )
    test = np.arange(n_test_start, n_total, dtype=np.int64)
    return {"pool": pool, "labeled": labeled, "val": val, "test": test}


# ---------------------------------------------------------------------------------------------
# the whole step


def _read_synth_meta(root: Path) -> dict:
    path = root / "synth_meta.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _names(meta: dict, key: str, path: Path) -> list[str] | None:
    names = meta.get(key)
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise DataError(f"{path}: expected '{key}' to be a list of names, got {names!r}")
    return names


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
    synth_meta = _read_synth_meta(root)
    gesture_names = _names(synth_meta, "gesture_names", root / "synth_meta.json")
    part_names = _names(synth_meta, "part_names", root / "synth_meta.json")
    n_parts = len(part_names) if part_names else len(PART_NAMES)

    # 1. everything that can be checked without decoding images
    info = {}
    for split in SPLITS:
        ann = load_annotations(root, split, gesture_names)
        m = count_images(root, split, ann["n"])
        size = image_size(image_path(root, split, 0))
        parts_modulo = _parts_modulo(root, split, ann["n"], m)
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
