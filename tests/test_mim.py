"""Masked image modelling: masks, the masked-pixel loss, the decoder at real sizes, and the mim,
invariant+mim and equivariant+mim pretraining runs (tiny, CPU)."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import TINY, tiny_config

from equihand import cli
from equihand.config import ConfigError
from equihand.errors import UserError
from equihand.methods import mim, objectives
from equihand.methods.backbones import Encoder, load_backbone_state
from equihand.methods.models import MaskedModel, build_masked_model, build_pose_model
from equihand.train.checkpoint import load_checkpoint
from equihand.train.finetune import finetune
from equihand.train.pretrain import pretrain

# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize(
    ("grid", "ratio", "count"),
    [(4, 0.6, 10), (4, 0.5, 8), (4, 0.75, 12), (8, 0.6, 38), (2, 0.1, 1), (2, 0.95, 3)],
)
def test_mask_covers_the_configured_ratio_exactly(grid, ratio, count):
    assert mim.masked_count(grid * grid, ratio) == count
    mask = mim.random_patch_mask(64, grid, ratio, torch.Generator().manual_seed(0))
    assert mask.shape == (64, grid, grid) and mask.dtype == torch.bool
    assert mask.flatten(1).sum(1).tolist() == [count] * 64  # every image, exactly
    assert len({tuple(m.flatten().tolist()) for m in mask}) > 1  # drawn per image


def test_mask_depends_only_on_the_generator():
    first, second = (
        mim.random_patch_mask(4, 4, 0.6, torch.Generator().manual_seed(3)) for _ in range(2)
    )
    assert torch.equal(first, second)


def test_masked_patches_take_the_mean_visible_colour():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    mask = mim.random_patch_mask(2, 2, 0.5)  # 4 px patches, 2 of 4 masked
    out = mim.mask_images(images, mask, 4)
    hidden = mim.pixel_mask(mask, 4).expand_as(images)
    assert torch.equal(out[~hidden], images[~hidden])  # visible pixels untouched
    for i in range(2):
        visible = images[i][:, ~hidden[i, 0]]  # (3, n_visible)
        expected = visible.mean(1)[:, None].expand(3, 32)
        torch.testing.assert_close(out[i][:, hidden[i, 0]], expected)


# --------------------------------------------------------------------------- loss


def test_per_patch_normalisation_by_hand():
    # one 2 x 4 image, 2 px patches: patch 0 holds 0 (red), 1 (green), 2 (blue) everywhere;
    # patch 1 is constant 5.
    target = torch.zeros(1, 3, 2, 4)
    target[0, :, :, :2] = torch.tensor([0.0, 1.0, 2.0])[:, None, None]
    target[0, :, :, 2:] = 5.0
    patches = mim.patchify(target, 2)
    assert patches.shape == (1, 2, 12)
    assert patches[0, 0].tolist() == [0.0, 1.0, 2.0] * 4  # (row, column, channel) order
    # mean 1; squared deviations sum to 8, unbiased variance 8 / 11 (MAE's torch.var)
    norm = mim.normalise_patches(patches)
    expected = (torch.tensor([0.0, 1.0, 2.0] * 4) - 1) / math.sqrt(8 / 11 + 1e-6)
    torch.testing.assert_close(norm[0, 0], expected)
    assert torch.equal(norm[0, 1], torch.zeros(12))  # a flat patch normalises to 0, not NaN
    # predicting 0 on the first patch: mean squared normalised target = (8 / (8/11)) / 12
    mask = torch.tensor([[[True, False]]])
    loss = mim.reconstruction_loss(torch.zeros_like(target), target, mask, 2)
    assert loss.item() == pytest.approx(11 / 12, rel=1e-5)


def _loss_case():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    mask = mim.random_patch_mask(2, 4, 0.5)
    return pred, target, mask


def test_loss_counts_masked_pixels_only():
    pred, target, mask = _loss_case()
    loss = mim.reconstruction_loss(pred, target, mask, 4)
    hidden = mim.pixel_mask(mask, 4).expand_as(target)
    for tensor in (target, pred):  # change everything that is visible
        changed = tensor.clone()
        changed[~hidden] = torch.rand(int((~hidden).sum())) * 7
        args = (changed, target) if tensor is pred else (pred, changed)
        assert torch.equal(mim.reconstruction_loss(*args, mask, 4), loss)
    changed = target.clone()
    b, r, c = [int(i[0]) for i in torch.nonzero(mask, as_tuple=True)]  # first masked patch
    changed[b, 1, 4 * r + 1, 4 * c + 2] += 0.5  # one pixel of it
    assert mim.reconstruction_loss(pred, changed, mask, 4) != loss


def test_loss_gradient_reaches_masked_pixels_only():
    pred, target, mask = _loss_case()
    pred.requires_grad_(True)
    mim.reconstruction_loss(pred, target, mask, 4).backward()
    hidden = mim.pixel_mask(mask, 4).expand_as(target)
    assert torch.all(pred.grad[~hidden] == 0)
    assert torch.all(pred.grad[hidden] != 0)


def test_combined_objectives_add_the_weighted_mim_loss():
    pred, target, mask = _loss_case()
    recon = mim.Reconstruction(pred, target, mask, 4, weight=0.3)
    z1, z2 = torch.randn(2, 8), torch.randn(2, 8)
    geom = SimpleNamespace(angle=torch.tensor([0.2, -0.1]), shift=torch.ones(2, 2))
    kw = {"temperature": 0.5, "image_size": 16}
    reference = mim.reconstruction_loss(pred, target, mask, 4)
    for name in ("invariant", "equivariant"):
        combined = objectives.get_objective(f"{name}+mim").loss(
            z1, z2, geom, geom, **kw, recon=recon
        )
        alone = objectives.get_objective(name).loss(z1, z2, geom, geom, **kw)
        torch.testing.assert_close(combined, alone + 0.3 * reference)
    mim_only = objectives.get_objective("mim").loss(None, None, None, None, **kw, recon=recon)
    torch.testing.assert_close(mim_only, reference)


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("size", [32, 64])
def test_decoder_reconstructs_the_image_size_from_the_last_map(size):
    torch.manual_seed(0)
    model = build_masked_model({"backbone": "resnet18"}, contrastive=True).eval()
    images = torch.rand(2, 3, size, size)
    fmap = model.encoder.feature_map(images)
    assert fmap.shape == (2, 512, size // 32, size // 32)  # 1 x 1 at the 32 px cache
    # the unpooled map pools to exactly what the contrastive encoder sees
    torch.testing.assert_close(fmap.mean((2, 3)), model.encoder(images))
    out = model(images[:1], images)
    assert out["pred"].shape == (1, 3, size, size) and out["z"].shape == (2, 128)
    assert set(MaskedModel(Encoder(), model.decoder)(images)) == {"pred"}


def test_bad_settings_name_the_key_and_sizes(cache, tmp_path):
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match=r"pretrain\.mim\.mask_ratio"):
            tiny_config(f"pretrain.mim.mask_ratio={ratio}")
    config = tiny_config("pretrain.objective=mim", "pretrain.mim.patch_size=5")
    with pytest.raises(UserError, match=r"pretrain\.mim\.patch_size=5 .*32 px"):
        pretrain(cache, tmp_path / "run", config)
    config = tiny_config("pretrain.objective=mim")
    config["pretrain"]["mim"] = {"mask_ratio": 1.2}  # unvalidated dict: the step still checks
    with pytest.raises(UserError, match=r"pretrain\.mim\.mask_ratio .*1\.2"):
        pretrain(cache, tmp_path / "run", config)
    with pytest.raises(UserError, match=r"divisible by 32.* 48 px"):
        mim.check_settings(0.6, 8, 48)
    with pytest.raises(UserError, match=r"patch_size=32 .*32 px"):
        mim.check_settings(0.6, 32, 32)


# --------------------------------------------------------------------------- pretraining


def _losses(run) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("objective", ["mim", "equivariant+mim"])
def test_pretraining_loss_decreases(cache, tmp_path, objective):
    config = tiny_config(
        f"pretrain.objective={objective}",
        "pretrain.epochs=6",
        "pretrain.max_steps=6",
        "pretrain.log_every_steps=1",
    )
    pretrain(cache, tmp_path / "run", config)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 6
    assert sum(losses[-2:]) / 2 < losses[0] - 0.1  # about -0.3 (mim) and -0.4 at lr 1e-3
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["pretrain"]["mim"] == {"mask_ratio": 0.6, "patch_size": 8, "weight": 1.0}


def test_same_seed_same_loss_on_cpu(cache, tmp_path):
    config = [
        "pretrain.objective=invariant+mim",
        "pretrain.max_steps=2",
        "pretrain.log_every_steps=1",
    ]
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        pretrain(cache, run, tiny_config(*config))
    assert _losses(runs[0]) == _losses(runs[1])
    a, b = (load_checkpoint(run / "model.pt")["model"] for run in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pretrain(cache, tmp_path / "c", tiny_config(*config, "pretrain.seed=1"))
    assert _losses(tmp_path / "c") != _losses(runs[0])


def test_checkpoint_loads_into_the_pose_model(cache, tmp_path):
    config = tiny_config("pretrain.objective=equivariant+mim", "pretrain.max_steps=1")
    pre = pretrain(cache, tmp_path / "pre", config)
    state = load_checkpoint(pre, kind="pretrain")["model"]
    assert any(k.startswith("decoder.") for k in state)
    assert any(k.startswith("projection.") for k in state)
    pose = build_pose_model(config["model"])
    load_backbone_state(pose, state)  # strict on the backbone; decoder and projection dropped
    backbone = pose.encoder.backbone.state_dict()
    assert backbone and all(
        torch.equal(state[f"encoder.backbone.{k}"], v) for k, v in backbone.items()
    )
    # and the finetuning step itself takes it, recording the objective
    ft = finetune(cache, tmp_path / "ft", tiny_config("finetune.max_steps=1"), pre)
    assert load_checkpoint(ft)["extra"]["objective"] == "equivariant+mim"


def test_cli_pretrain_mim(cache, tmp_path):
    sets = [a for o in [*TINY, "pretrain.max_steps=1"] for a in ("--set", o)]
    out = tmp_path / "pre"
    args = ["pretrain", *sets, "--data", str(cache), "--out", str(out), "--objective", "mim"]
    assert cli.main(args) == 0
    state = load_checkpoint(out / "model.pt", kind="pretrain")
    assert state["config"]["pretrain"]["objective"] == "mim"
    assert not any(k.startswith("projection.") for k in state["model"])  # mim has no projector
    bad = ["--set", "pretrain.mim.patch_size=6"]
    assert cli.main([*args[:-2], *bad, "--objective", "mim"]) == 2
