"""Keep freed memory in the process, so that a CPU training step does not fault it in again.

glibc's malloc serves every block above its mmap threshold (128 kB, rising to at most 32 MB) with
a fresh ``mmap`` and hands it back to the kernel on ``free``. A training step at FreiHAND's 224 px
allocates and frees activations of up to ~100 MB, so every step the kernel zeroes and maps the
same pages again: ~180,000 page faults and half a second of system time per ResNet-18 step of
32 images measured on a 2-core machine (bench/README.md). Raising the mmap and trim thresholds
(``mallopt``) keeps those blocks in the heap for the next step. The numbers computed are the
same; the process holds its peak memory instead of giving it back between steps.

Only glibc has ``mallopt``: elsewhere (macOS, musl) this does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from equihand.errors import UserError

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MAX_MB = 2047  # mallopt takes an int of bytes


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
