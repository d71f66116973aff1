"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, validated.

A checkpoint is a dict that carries everything needed to resume or evaluate a run:

- ``format`` = "equihand-checkpoint" and ``format_version`` (FORMAT_VERSION),
- ``kind``: "pretrain" or "finetune", and ``final`` (False for a resumable mid-run state),
- ``step`` (optimiser steps done), ``model``, ``optimizer``, ``scheduler`` state dicts,
- ``rng``: torch's CPU generator state (the loops also reseed per step, see equihand.train),
- ``config``: the resolved config of the run, and ``extra``: loop-specific bookkeeping.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from equihand.errors import UserError
from equihand.io import atomic_path

FORMAT = "equihand-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A file that is not a readable equihand checkpoint of a known format version."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format fields) to `path` via a temporary file and a rename."""
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(record, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, corrupted or not a torch file): "
            f"{first}"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not an equihand checkpoint")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this equihand reads version "
            f"{FORMAT_VERSION}"
        )
    if kind is not None and record.get("kind") != kind:
        raise CheckpointError(f"{path} is a {record.get('kind')!r} checkpoint; expected {kind!r}")
    return record
