"""The images of a FreiHAND-layout dataset: counting and checking them, decoding and resizing
images and part masks, and the intrinsics of a resized image (the pixel convention is in
equihand.data.prepare)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from equihand.data.layout import image_path, parts_path
from equihand.errors import DataError

MAX_ASPECT = 1.05  # "square-ish": longer side at most 5% longer than the shorter one


_IMAGE_NAME = re.compile(r"^(\d{8})\.jpg$")


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


def part_mask_modulo(root: Path, split: str, n: int, m: int) -> int:
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


def rescale_intrinsics(K: np.ndarray, size: tuple[int, int], resolution: int) -> np.ndarray:
    """Intrinsics of the image resized from `size` (w, h) to resolution x resolution.

    Pixel centres are at integer coordinates, so u -> s * (u + 0.5) - 0.5 with s = R / w.
    """
    sx, sy = resolution / size[0], resolution / size[1]
    A = np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2], [0.0, 0.0, 1.0]])
    return A @ K
