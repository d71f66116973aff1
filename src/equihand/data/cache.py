"""Reading a cache written by ``equihand prepare`` (formats: see equihand.data.prepare).

Usage::

    data = PreparedData("results/prepared/synth")
    rows = data.split("labeled")                  # sorted int64 row indices
    images, xyz = data.images[rows[:8]], data.xyz[rows[:8]]  # memory-mapped, read on demand
    batch = data.reader("images")[rows[:8]]      # the same rows, read with pread (training)

A training loop that visits every row should read through `reader`: pages of a memory-mapped
file that a process has touched count in its resident memory (RSS) until the kernel drops
them, so an epoch over a 100k-image cache through ``data.images`` grows the process by the
whole file; `RowReader` reads each batch's rows into a fresh array instead (the kernel's page
cache still keeps the file, shared and reclaimable, outside the process).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from equihand.errors import DataError

FORMAT_VERSION = 1
SPLIT_NAMES = ("pool", "labeled", "val", "test")


class RowReader:
    """Rows of a C-ordered ``.npy`` array read with ``os.preadv``, not memory-mapped.

    ``reader[positions]`` (an int array) returns the same array as ``np.load(path)[positions]``
    (a fresh, contiguous copy); runs of consecutive positions are read in one call. Slices and
    single ints go through the memory map. Thread-safe: preadv keeps no file position.
    """

    def __init__(self, array: np.memmap):
        if not array.flags.c_contiguous:
            raise DataError(f"{array.filename}: expected a C-ordered array")
        self._array = array
        self.shape, self.dtype = array.shape, array.dtype
        self._row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
        self._fd = os.open(array.filename, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, positions):
        if isinstance(positions, (slice, int, np.integer)):
            return self._array[positions]
        positions = np.asarray(positions)
        if positions.ndim != 1 or positions.dtype.kind not in "iu":
            return self._array[positions]
        n = len(self)
        positions = np.where(positions < 0, positions + n, positions)
        if len(positions) and (positions.min() < 0 or positions.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        out = np.empty((len(positions), *self.shape[1:]), self.dtype)
        if len(positions) == 0:
            return out
        flat = out.reshape(len(positions), -1).view(np.uint8)
        # split into runs of consecutive rows: one preadv per run
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [len(positions)]])
        for first, last in zip(starts.tolist(), stops.tolist(), strict=True):
            offset = self._array.offset + int(positions[first]) * self._row_bytes
            view = memoryview(flat[first:last]).cast("B")
            done = os.preadv(self._fd, [view], offset)
            if done != len(view):
                raise DataError(f"{self._array.filename}: short read; rerun `equihand prepare`")
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


class Prefetcher:
    """``reader[rows]`` that has the next batch read on a background thread while a step runs.

    ``prefetch(rows)`` starts reading `rows`; a following ``[rows]`` with the same rows returns
    that read, any other rows are read at once. The result is the reader's either way, so
    training stays bit-identical; only the time of the read moves (preadv releases the GIL).
    """

    def __init__(self, reader: RowReader):
        self._reader = reader
        self.shape, self.dtype = reader.shape, reader.dtype
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="equihand-prefetch")
        self._pending: tuple[np.ndarray, Future] | None = None

    def __len__(self) -> int:
        return len(self._reader)

    def prefetch(self, rows: np.ndarray) -> None:
        rows = np.array(rows)  # a copy: the caller may reuse its array
        self._pending = (rows, self._pool.submit(self._reader.__getitem__, rows))

    def __getitem__(self, rows):
        pending, self._pending = self._pending, None
        if pending is not None and np.array_equal(pending[0], rows):
            return pending[1].result()
        return self._reader[rows]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class PreparedData:
    """A prepared cache: ``data.<name>`` is ``<name>.npy`` opened with ``mmap_mode="r"``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DataError(
                f"{self.path}: not a prepared cache (no meta.json); run `equihand prepare` first"
            )
        try:
            self.meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{meta_path}: not valid JSON ({e}); rerun `equihand prepare`") from e
        version = self.meta.get("format_version") if isinstance(self.meta, dict) else None
        if version != FORMAT_VERSION:
            raise DataError(
                f"{meta_path}: cache format_version {version!r}, expected {FORMAT_VERSION}; "
                "rerun `equihand prepare`"
            )
        self._arrays: dict[str, np.ndarray] = {}
        self._splits: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.meta["n_images"])

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._arrays:
            if f"{name}.npy" not in self.meta.get("files", []):
                raise AttributeError(f"{self.path} has no array {name!r}")
            file = self.path / f"{name}.npy"
            try:
                self._arrays[name] = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise DataError(f"{file}: unreadable ({e}); rerun `equihand prepare`") from e
        return self._arrays[name]

    def reader(self, name: str) -> RowReader:
        """``<name>.npy`` for batch reads that do not map the file (see `RowReader`)."""
        return RowReader(getattr(self, name))

    def has(self, name: str) -> bool:
        """Whether the cache holds ``<name>.npy`` (``parts`` only for datasets with masks)."""
        return f"{name}.npy" in self.meta.get("files", [])

    def split(self, name: str) -> np.ndarray:
        """Sorted int64 row indices of split `name` (pool, labeled, val or test)."""
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        if self._splits is None:
            file = self.path / "splits.npz"
            try:
                with np.load(file) as z:
                    self._splits = {k: z[k] for k in z.files}
            except (OSError, ValueError) as e:
                raise DataError(f"{file}: unreadable ({e}); rerun `equihand prepare`") from e
        return self._splits[name]

    def __repr__(self) -> str:
        return f"PreparedData({str(self.path)!r}, n={len(self)})"
