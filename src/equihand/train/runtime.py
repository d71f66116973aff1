"""Where and how a step computes: the device, torch's threads, malloc's thresholds, the memory
layout of models and images, and bf16 autocast where the CPU (or a GPU) computes it natively.
Shared by the training steps, evaluation and the probe."""

from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from equihand.errors import UserError
from equihand.train.allocator import keep_freed_memory


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("config device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def runtime_setup(config: dict) -> torch.device:
    """Apply `train.threads` and `train.malloc_keep_mb`; return the device of `config["device"]`."""
    if config["train"]["threads"]:
        torch.set_num_threads(config["train"]["threads"])
    keep_freed_memory(config["train"]["malloc_keep_mb"])
    return resolve_device(config["device"])


def place(model: nn.Module, device: torch.device, config: dict) -> nn.Module:
    """Move a model to the device, in channels_last layout when `train.channels_last`."""
    model = model.to(device)
    if config["train"]["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model


# /proc/cpuinfo flags of CPUs with native bf16 arithmetic (x86: AVX512-BF16, AMX; Arm: BF16)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@functools.cache
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once per process (autocast asks at every step); "" where absent."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes in bf16 natively (read from /proc/cpuinfo; False elsewhere).

    Without it, oneDNN emulates bf16 and autocast is slower than float32 (not worth it)."""
    if cpuinfo is None:
        cpuinfo = _cpuinfo()
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def uses_bf16(device: torch.device, train_cfg: dict) -> bool:
    """Whether training and inference on `device` run under bf16 autocast (`train.amp`,
    `train.cpu_amp`)."""
    if not train_cfg["amp"]:
        return False
    if device.type == "cuda":
        return True
    mode = train_cfg.get("cpu_amp", "auto")
    return mode == "always" or (mode == "auto" and cpu_has_native_bf16())


def autocast(device: torch.device, train_cfg: dict):
    """bf16 autocast where `uses_bf16` says so, else a no-op (float32)."""
    if uses_bf16(device, train_cfg):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
