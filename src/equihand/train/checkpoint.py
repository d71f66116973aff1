"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, validated.

A checkpoint is a dict that carries everything needed to resume or evaluate a run:

- ``format`` = "equihand-checkpoint" and ``format_version`` (FORMAT_VERSION),
- ``kind``: "pretrain" or "finetune", and ``final`` (False for a resumable mid-run state),
- ``step`` (optimiser steps done), ``model``, ``optimizer``, ``scheduler`` state dicts,
- ``rng``: torch's CPU generator state (the loops also reseed per step, see equihand.train.loop),
- ``config``: the resolved config of the run, and ``extra``: loop-specific bookkeeping.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from equihand.errors import UserError
from equihand.io import atomic_path
from equihand.methods.backbones import backbone_of

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


KINDS = ("pretrain", "finetune")
FINETUNE_EXTRA = ("pretrained", "objective")  # what evaluate reports


def _read(path: Path) -> Any:
    """torch.load(weights_only=True), every failure as one CheckpointError."""
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a pickle protocol: not ours
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False: never for a file one does not trust
        raise CheckpointError(
            f"{path} is not a readable checkpoint: not a torch file of tensors and plain data "
            "(equihand never loads other pickled objects)"
        ) from None
    except MemoryError:
        raise
    except Exception as e:  # a text file, a truncated zip, ... : whatever torch trips on
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if "weights_only" in first:
            first = ""
        detail = f"{type(e).__name__}{': ' + first if first else ''}"
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, corrupted or not a torch file; "
            f"{detail})"
        ) from None


def _check_contents(path: Path, record: dict) -> None:
    """The fields every reader relies on, and weights that are the backbone the config names."""
    model, config = record.get("model"), record.get("config")
    if not isinstance(model, dict) or not model:
        raise CheckpointError(f"{path}: equihand checkpoint without model weights ('model')")
    if not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointError(f"{path}: its 'model' holds something other than tensors")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: equihand checkpoint without its run's config ('config')")
    backbone = config["model"].get("backbone")
    found = backbone_of(model)
    if found != backbone:
        raise CheckpointError(
            f"{path}: its config says model.backbone={backbone} but its weights hold {found} "
            "(an edited or damaged checkpoint)"
        )
    if record.get("final", True) and not isinstance(record.get("extra"), dict):
        raise CheckpointError(f"{path}: equihand checkpoint without its run's record ('extra')")
    if record.get("final", True) and record["kind"] == "finetune":
        missing = [k for k in FINETUNE_EXTRA if k not in record["extra"]]
        if missing:
            raise CheckpointError(f"{path}: finetune checkpoint whose 'extra' lacks {missing}")


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint (tensors on the CPU); every problem is a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; expected a model.pt file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    record = _read(path)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not an equihand checkpoint")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this equihand reads version "
            f"{FORMAT_VERSION}"
        )
    found = record.get("kind")
    if found not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {found!r}; expected one of {KINDS}")
    if kind is not None and found != kind:
        raise CheckpointError(
            f"{path} is a {found!r} checkpoint; expected {kind!r} (`equihand {kind}` writes those)"
        )
    _check_contents(path, record)
    return record
