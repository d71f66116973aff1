"""The probe's sets: its tasks, how its images are sampled from the prepared cache, the object-
level labels (binned in-plane orientation, 2D pose) and the part crops' geometry, and reading a
`equihand probe-data` folder back (`load`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from equihand.data.cache import PreparedData
from equihand.data.layout import FINGERS
from equihand.errors import DataError, UserError

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
# the classified object-level tasks
OBJECT_TASKS = tuple(
    t for t, (level, _, _) in TASKS.items() if level == "object" and t not in REGRESSION_TASKS
)
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
