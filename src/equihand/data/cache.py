"""Reading a cache written by ``equihand prepare`` (formats: see equihand.data.prepare).

Usage::

    data = PreparedData("results/prepared/synth")
    rows = data.split("labeled")                  # sorted int64 row indices
    images, xyz = data.images[rows[:8]], data.xyz[rows[:8]]  # memory-mapped, read on demand
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from equihand.errors import DataError

FORMAT_VERSION = 1
SPLIT_NAMES = ("pool", "labeled", "val", "test")


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
