"""Benchmark inputs: prepared caches in the layout equihand.data.cache reads, made from a real
cache (tiled to any size) or from a dataset's JPEG files (decoded at any resolution)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from equihand.data.cache import FORMAT_VERSION
from equihand.data.images import decode_image


def jpeg_files(source: Path, n: int | None = None) -> list[Path]:
    """The first `n` training JPEGs of a FreiHAND-layout dataset folder."""
    files = sorted((Path(source) / "training" / "rgb").glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"{source}/training/rgb holds no JPEG files")
    return files[:n] if n else files


def decode_jpegs(files: list[Path], resolution: int) -> np.ndarray:
    """(N, R, R, 3) uint8: the files decoded and resized as `equihand prepare` does."""
    from PIL import Image

    with Image.open(files[0]) as im:
        size = im.size
    return np.stack([decode_image(f, size, resolution) for f in files])


def write_cache(out: Path, images: np.ndarray, chunk: int = 4096) -> Path:
    """A minimal prepared cache at `out`: images.npy (written in chunks, so a tiled 100k-image
    array never sits in memory), splits.npz with every row in the pool, meta.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(
        out / "images.npy", mode="w+", dtype=np.uint8, shape=images.shape
    )
    for start in range(0, len(images), chunk):
        array[start : start + chunk] = images[start : start + chunk]
    array.flush()
    del array
    n = len(images)
    empty = np.zeros(0, np.int64)
    np.savez(out / "splits.npz", pool=np.arange(n), labeled=empty, val=empty, test=empty)
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": "bench",
        "resolution": int(images.shape[1]),
        "n_images": n,
        "files": ["images.npy", "splits.npz", "meta.json"],
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


class Tiled:
    """A read-only view of `base` repeated to `n` rows (row i is base[i % len(base)])."""

    def __init__(self, base: np.ndarray, n: int):
        self.base, self.shape = base, (n, *base.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        idx = np.arange(*rows.indices(self.shape[0])) % len(self.base)
        return np.asarray(self.base[idx])


def tiled_cache(base_cache: Path, n: int, out: Path) -> Path:
    """A cache of `n` images: the images of `base_cache` repeated (same layout, same pixels)."""
    base = np.load(Path(base_cache) / "images.npy", mmap_mode="r")
    return write_cache(out, Tiled(base, n))
