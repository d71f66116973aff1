"""The training loops: checkpoints, schedule, resuming after SIGTERM/SIGKILL, label hygiene."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_config
from torch import nn

from equihand import cli
from equihand.data.cache import PreparedData
from equihand.errors import DataError, UserError
from equihand.methods.models import build_contrastive_model
from equihand.train import runtime
from equihand.train.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from equihand.train.finetune import augments, finetune, labeled_subset
from equihand.train.loop import Loop, TrainingError, fit
from equihand.train.optim import LARS, build_optimizer, parameter_groups, warmup_cosine
from equihand.train.pretrain import pretrain


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- checkpoints


def payload(kind: str = "pretrain") -> dict:
    """What a run saves: weights of the config's backbone, the config, the run's record."""
    config = tiny_config()
    model = build_contrastive_model(config["model"])
    return {"kind": kind, "model": model.state_dict(), "config": config, "extra": {}}


def test_checkpoint_round_trip(tmp_path):
    saved = payload()
    path = save_checkpoint(tmp_path / "c.pt", saved)
    record = load_checkpoint(path, kind="pretrain")
    assert record["format_version"] == FORMAT_VERSION
    w = "encoder.backbone.conv1.weight"
    assert torch.equal(record["model"][w], saved["model"][w])
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b"not a checkpoint at all"), "not a readable checkpoint"),
        (lambda p: torch.save({"weights": torch.zeros(3)}, p), "not an equihand checkpoint"),
        (
            lambda p: torch.save({"format": "equihand-checkpoint", "format_version": 99}, p),
            "format version 99",
        ),
        (
            lambda p: save_checkpoint(p, {"kind": "finetune"}),
            "expected 'pretrain'",
        ),
        (lambda p: p.write_text("hello world\n"), "not a readable checkpoint"),
        (lambda p: torch.save([1, 2], p, pickle_protocol=4), "not a readable checkpoint"),
        (lambda p: p.write_bytes(pickle.dumps(pickle.Pickler)), "never loads"),
        (lambda p: save_checkpoint(p, {"kind": "pretrain"}), "without model weights"),
        (lambda p: save_checkpoint(p, {**payload(), "config": None}), "without its run's config"),
        (lambda p: save_checkpoint(p, {**payload(), "kind": "other"}), "unknown checkpoint kind"),
        (
            lambda p: save_checkpoint(
                p, {**payload(), "config": tiny_config("model.backbone=resnet34")}
            ),
            "config says model.backbone=resnet34 but its weights hold resnet18",
        ),
        (lambda p: p.mkdir(), "is a folder"),
    ],
)
def test_checkpoint_errors_are_clear(tmp_path, make, message):
    path = tmp_path / "c.pt"
    make(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path, kind="pretrain")
    assert str(path) in str(info.value)
    assert "weights_only" not in str(info.value)  # never advise loading untrusted pickles


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- optimiser


def test_warmup_cosine():
    f = warmup_cosine(total_steps=10, warmup_steps=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5)
    assert f(10) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(2, 10))


def test_weight_decay_and_lars_skip_biases_and_norms():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    decay, no_decay = parameter_groups(model, 0.1)
    assert [p.ndim for p in decay["params"]] == [2]
    assert all(p.ndim == 1 for p in no_decay["params"])
    opt = build_optimizer(model, {"optimizer": "lars", "lr": 0.1, "weight_decay": 0.1})
    assert isinstance(opt, LARS)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(8, 4)).pow(2).sum().backward()
    bias_grad = model[0].bias.grad.clone()
    opt.step()
    assert torch.equal(model[0].bias.grad, bias_grad)  # not rescaled
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# --------------------------------------------------------------------------- the loop


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))


def test_non_finite_loss_names_the_step(tmp_path):
    config = tiny_config()
    cfg = {**config["pretrain"], "batch_size": 2, "epochs": 5}

    def step_loss(model, positions):
        bad = torch.tensor(float("nan")) if step_loss.calls == 3 else torch.tensor(1.0)
        step_loss.calls += 1
        return model.w.sum() * bad, len(positions)

    step_loss.calls = 0
    loop = Loop("pretrain", config, cfg, 0, 8, tmp_path, step_loss)
    with pytest.raises(TrainingError, match="loss is nan at step 3"):
        fit(loop, Tiny(), torch.device("cpu"))


def test_too_little_data_is_a_clear_error(tmp_path):
    config = tiny_config()
    loop = Loop("pretrain", config, config["pretrain"], 0, 3, tmp_path, lambda m, p: None)
    with pytest.raises(TrainingError, match="fewer than one optimiser step"):
        fit(loop, Tiny(), torch.device("cpu"))


# --------------------------------------------------------------------------- pretraining


def test_pretraining_reads_no_label(cache, tmp_path, monkeypatch):
    blind = tmp_path / "blind"
    shutil.copytree(cache, blind)
    for name in ("xyz", "uv", "K", "scale", "hand_id", "gesture", "visibility", "parts"):
        (blind / f"{name}.npy").unlink(missing_ok=True)
    read = []
    original = PreparedData.__getattr__

    def spy(self, name):
        read.append(name)
        return original(self, name)

    monkeypatch.setattr(PreparedData, "__getattr__", spy)
    config = tiny_config("pretrain.max_steps=2")
    path = pretrain(blind, tmp_path / "run", config)
    assert load_checkpoint(path, kind="pretrain")["final"]
    assert set(read) == {"images"}


@pytest.mark.parametrize("objective", ["invariant", "equivariant"])
def test_pretraining_loss_decreases(cache, tmp_path, objective):
    config = tiny_config(
        f"pretrain.objective={objective}", "pretrain.epochs=6", "pretrain.lr=0.003"
    )
    pretrain(cache, tmp_path / "run", config)
    with open(tmp_path / "run" / "metrics.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < losses[0]


def _run(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "equihand.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


RESUME_ARGS = [
    a for o in [*TINY, "pretrain.epochs=2", "pretrain.checkpoint_every=2"] for a in ("--set", o)
]


@pytest.fixture(scope="module")
def straight_run(cache, tmp_path_factory) -> Path:
    """An uninterrupted pretraining run, the reference for the resumed ones."""
    out = tmp_path_factory.mktemp("straight")
    proc = _run(["pretrain", *RESUME_ARGS, "--data", str(cache), "--out", str(out)])
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return out / "model.pt"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_pretraining_resumes_bitwise(cache, straight_run, tmp_path, sig):
    out = tmp_path / "interrupted"
    args = ["pretrain", *RESUME_ARGS, "--data", str(cache), "--out", str(out)]
    proc = _run(args)
    _wait_for(out / "resume.pt", proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert not (out / "model.pt").exists()
    step = load_checkpoint(out / "resume.pt")["step"]
    assert 2 <= step < 12

    again = _run(args)
    assert again.wait(timeout=300) == 0, again.communicate()
    a = load_checkpoint(straight_run)["model"]
    b = load_checkpoint(out / "model.pt")["model"]
    assert state_equal(a, b)
    assert not (out / "resume.pt").exists()


def test_resume_with_a_different_config_is_refused(cache, tmp_path):
    out = tmp_path / "run"
    config = tiny_config("pretrain.max_steps=2")
    pretrain(cache, out, config)
    save_checkpoint(
        out / "resume.pt",
        {**load_checkpoint(out / "model.pt"), "final": False, "optimizer": {}, "scheduler": {}},
    )
    with pytest.raises(TrainingError, match="different 'pretrain' config"):
        pretrain(cache, out, tiny_config("pretrain.max_steps=2", "pretrain.lr=0.5"))


# --------------------------------------------------------------------------- finetuning


def test_label_fractions_nest():
    labeled = np.arange(100, 200)
    small, big = labeled_subset(labeled, 0.1, 3), labeled_subset(labeled, 0.5, 3)
    assert len(small) == 10 and len(big) == 50
    assert set(small) <= set(big)
    assert not np.array_equal(small, labeled_subset(labeled, 0.1, 4))


def test_finetune_from_pretrained_selects_on_validation(cache, tmp_path):
    config = tiny_config("pretrain.max_steps=2")
    pre = pretrain(cache, tmp_path / "pre", config)
    path = finetune(cache, tmp_path / "ft", config, pre)
    record = load_checkpoint(path, kind="finetune")
    with open(tmp_path / "ft" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    val = [float(r["val_pa_epe_cm"]) for r in rows]
    extra = record["extra"]
    assert extra["selected_on"] == "val_pa_epe_cm"
    assert extra["best_val"] == pytest.approx(min(val))
    assert extra["best_step"] == int(rows[int(np.argmin(val))]["step"])
    assert extra["pretrained"] == str(pre)
    assert record["config"]["finetune"]["label_fraction"] == 1.0
    assert (tmp_path / "ft" / "config.yaml").is_file()


def test_finetune_starts_from_the_pretrained_encoder(cache, tmp_path, monkeypatch):
    from equihand.train import finetune as ft

    config = tiny_config("pretrain.max_steps=2", "finetune.max_steps=1")
    pre = pretrain(cache, tmp_path / "pre", config)
    seen = {}
    original = ft.fit

    def spy(loop, model, device):
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        return original(loop, model, device)

    monkeypatch.setattr(ft, "fit", spy)
    finetune(cache, tmp_path / "ft", config, pre)
    pre_state = load_checkpoint(pre)["model"]
    shared = [k for k in pre_state if k.startswith("encoder.backbone.") and "fc" not in k]
    assert shared
    assert all(torch.equal(pre_state[k], seen["state"][k]) for k in shared)


def test_cli_pretrain_and_finetune(cache, tmp_path):
    sets = [
        a for o in [*TINY, "pretrain.max_steps=2", "finetune.max_steps=2"] for a in ("--set", o)
    ]
    pre = tmp_path / "pre"
    assert cli.main(["pretrain", *sets, "--data", str(cache), "--out", str(pre)]) == 0
    args = ["finetune", *sets, "--data", str(cache), "--out", str(tmp_path / "ft")]
    assert cli.main([*args, "--pretrained", str(pre / "model.pt"), "--fraction", "0.5"]) == 0
    assert cli.main([*args, "--pretrained", "none", "--fraction", "0"]) == 2
    assert cli.main([*args, "--pretrained", str(tmp_path / "missing.pt")]) == 2


def test_gradient_accumulation_counts_optimiser_steps(cache, tmp_path):
    config = tiny_config("pretrain.batch_size=4", "pretrain.accumulate=2")
    path = pretrain(cache, tmp_path / "run", config)
    pool = PreparedData(cache).split("pool")
    record = load_checkpoint(path)
    assert record["step"] == len(pool) // 8
    assert record["extra"]["history"]["rows"][0]["step"] == len(pool) // 8


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_fixed_finetuning_steps_and_step_logging(cache, tmp_path, fraction):
    # finetune.steps gives every label fraction the same number of optimiser steps, and
    # log_every_steps logs (and validates) every k steps plus once at the end
    config = tiny_config(
        "finetune.steps=7", "finetune.log_every_steps=3", f"finetune.label_fraction={fraction}"
    )
    path = finetune(cache, tmp_path / "ft", config, None)
    with open(tmp_path / "ft" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [3, 6, 7]
    assert all(float(r["val_pa_epe_cm"]) > 0 for r in rows)
    assert load_checkpoint(path, kind="finetune")["step"] == 7


def test_augmentation_only_below_the_label_limit(cache, tmp_path):
    # augment_max_labels: a run on more labeled images than the limit trains on plain images,
    # exactly as augment=false does; one at or under the limit augments
    assert augments({"augment": True, "augment_max_labels": 0}, 10_000)
    assert augments({"augment": True, "augment_max_labels": 100}, 100)
    assert not augments({"augment": True, "augment_max_labels": 100}, 101)
    assert not augments({"augment": False, "augment_max_labels": 0}, 1)
    common = ("finetune.steps=3", "finetune.label_fraction=1.0")
    n = len(PreparedData(cache).split("labeled"))
    weights = {}
    for name, extra in [
        ("plain", "finetune.augment=false"),
        ("over", f"finetune.augment_max_labels={n - 1}"),
        ("under", f"finetune.augment_max_labels={n}"),
    ]:
        path = finetune(cache, tmp_path / name, tiny_config(*common, extra), None)
        record = torch.load(path, weights_only=True)
        weights[name] = record["model"]
        assert record["extra"]["augmented"] is (name == "under")
    assert all(torch.equal(v, weights["over"][k]) for k, v in weights["plain"].items())
    assert any(not torch.equal(v, weights["under"][k]) for k, v in weights["plain"].items())


# --- CPU bf16 autocast ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cpuinfo, native",
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n", False),
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),  # Arm
        ("processor\t: 0\nFeatures\t: fp asimd\n", False),
        ("model name : something bf16-ish\n", False),  # only the flag lists count
        ("", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert runtime.cpu_has_native_bf16(cpuinfo) is native


@pytest.mark.parametrize("native", [True, False])
def test_cpu_amp_follows_the_config_and_the_cpu(monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert runtime.uses_bf16(cpu, {"amp": True, "cpu_amp": "auto"}) is native
    assert runtime.uses_bf16(cpu, {"amp": True, "cpu_amp": "always"}) is True
    assert runtime.uses_bf16(cpu, {"amp": True, "cpu_amp": "never"}) is False
    assert runtime.uses_bf16(cpu, {"amp": False, "cpu_amp": "always"}) is False
    with runtime.autocast(cpu, {"amp": True, "cpu_amp": "always"}):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with runtime.autocast(cpu, {"amp": True, "cpu_amp": "never"}):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_bf16_finetuning_is_deterministic_and_differs_from_float32(cache, tmp_path):
    runs = {}
    for name, mode in [("a", "always"), ("b", "always"), ("fp32", "never")]:
        config = tiny_config(f"train.cpu_amp={mode}", "finetune.steps=4", "finetune.batch_size=8")
        path = finetune(cache, tmp_path / name, config, None)
        runs[name] = torch.load(path, weights_only=True)["model"]
    for key, value in runs["a"].items():
        assert torch.equal(value, runs["b"][key]), key
    assert any(not torch.equal(v, runs["fp32"][k]) for k, v in runs["a"].items())


def test_background_swap_pretrains_on_the_cache_masks(cache, tmp_path):
    config = tiny_config("pretrain.max_steps=2", "pretrain.background_swap_p=1.0")
    path = pretrain(cache, tmp_path / "run", config)
    assert load_checkpoint(path, kind="pretrain")["config"]["pretrain"]["background_swap_p"] == 1.0


def test_background_swap_needs_masks(cache, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(cache, bare)
    (bare / "parts.npy").unlink()  # as prepare leaves a dataset without part masks
    meta = json.loads((bare / "meta.json").read_text())
    meta["files"].remove("parts.npy")
    (bare / "meta.json").write_text(json.dumps(meta))
    config = tiny_config("pretrain.max_steps=2", "pretrain.background_swap_p=0.5")
    with pytest.raises(UserError, match=r"no parts\.npy.*background_swap_p: 0"):
        pretrain(bare, tmp_path / "run", config)
    unknown = tmp_path / "unknown"
    shutil.copytree(cache, unknown)
    parts = np.load(unknown / "parts.npy", mmap_mode="r+")
    parts[:] = 255
    parts.flush()
    del parts
    with pytest.raises(DataError, match=r"parts\.npy: row \d+ has no part mask"):
        pretrain(unknown, tmp_path / "run2", config)
