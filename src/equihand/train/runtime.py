"""Where and how a step computes: the device, torch's threads, malloc's thresholds, the memory
layout of models and images, and bf16 autocast where the CPU (or a GPU) computes it natively.
Shared by the training steps, evaluation and the probe.

malloc's thresholds (`keep_freed_memory`, `train.malloc_keep_mb`): glibc's malloc serves every
block above its mmap threshold (128 kB, rising to at most 32 MB) with a fresh ``mmap`` and hands
it back to the kernel on ``free``, so a training step that allocates and frees activations of up
to ~100 MB has the kernel zero and map the same pages again every step (bench/README.md measures
the cost). Raising the mmap and trim thresholds (``mallopt``) keeps those blocks in the heap for
the next step: the numbers computed are the same; the process holds its peak memory instead of
giving it back between steps. Only glibc has ``mallopt``: elsewhere (macOS, musl) the setting
does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from equihand.errors import UserError

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MAX_MB = 2047  # mallopt takes an int of bytes


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


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "mallopt", None)


def keep_freed_memory(megabytes: int) -> bool:
    """Let freed blocks up to `megabytes` stay in the process (0: leave malloc as it is).

    Returns whether the setting was applied (False where the C library has no mallopt)."""
    if not megabytes:
        return False
    if not 0 < megabytes <= MAX_MB:
        raise UserError(f"train.malloc_keep_mb must be between 0 and {MAX_MB}, got {megabytes}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    size = ctypes.c_int(megabytes * 2**20)
    for name, option in (
        ("M_MMAP_THRESHOLD", M_MMAP_THRESHOLD),
        ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD),
    ):
        if mallopt(option, size) != 1:
            raise UserError(f"train.malloc_keep_mb={megabytes}: the C library refused {name}")
    return True


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
