"""Shared fixtures: a tiny synthetic dataset and its prepared cache, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from equihand.config import load_config
from equihand.data.prepare import prepare
from equihand.data.synth import synthesize

TINY = [
    "progress=never",
    "device=cpu",
    "synth.n_train=64",
    "synth.n_eval=8",
    "synth.image_size=64",
    "synth.n_hands_train=8",
    "synth.n_hands_eval=2",
    "synth.workers=1",
    "prepare.resolution=32",
    "prepare.workers=1",
    "prepare.val_fraction=0.25",
    "prepare.labeled_fraction=0.5",
    "pretrain.batch_size=8",
    "pretrain.epochs=1",
    "pretrain.checkpoint_every=2",
    "finetune.batch_size=8",
    "finetune.epochs=3",
    "finetune.eval_batch_size=16",
    "train.threads=1",
    # where the tiny tests' settings differ from the recipe (the schema's defaults): epoch-based,
    # unrefined, unswapped training on uniformly oriented hands, as the tests were written for
    "synth.roll_deg=180",
    "synth.tilt_deg=180",
    "model.root_refine=false",
    "pretrain.background_swap_p=0",
    "pretrain.warmup_epochs=1",
    "finetune.steps=0",
    "finetune.log_every_steps=0",
    "finetune.warmup_epochs=1",
    "finetune.augment_max_labels=0",
    "probe.n_train=1000",
    "probe.n_val=300",
    "probe.n_test=600",
]


def tiny_config(*extra: str) -> dict:
    return load_config(None, [*TINY, *extra])


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A FreiHAND-layout synthetic dataset (64 + 8 images at 64 px)."""
    root = tmp_path_factory.mktemp("data") / "synth"
    synthesize(root, tiny_config())
    return root


@pytest.fixture(scope="session")
def cache(tiny_dataset, tmp_path_factory) -> Path:
    """The prepared 32 px cache of `tiny_dataset`."""
    out = tmp_path_factory.mktemp("prepared") / "synth"
    prepare(tiny_dataset, out, tiny_config())
    return out
