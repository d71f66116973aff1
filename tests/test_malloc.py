"""equihand.train.runtime.keep_freed_memory: freed blocks stay in the process, reuse faults none."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from equihand.config import load_config
from equihand.errors import UserError
from equihand.train import runtime
from equihand.train.runtime import runtime_setup

# Allocates and frees a 64 MB tensor 14 times; prints the page faults of the last 4. (glibc's heap
# takes a few rounds to settle into reusing freed blocks of one size.)
FAULTS = textwrap.dedent(
    """
    import resource, sys, torch
    from equihand.config import load_config
    from equihand.train.runtime import runtime_setup
    runtime_setup(load_config(None, [f"train.malloc_keep_mb={sys.argv[1]}"]))
    def touch():
        torch.ones(16 * 2**20)  # 64 MB, written so that every page is mapped
    for _ in range(10):
        touch()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        touch()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def faults(keep_mb: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, str(keep_mb)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(runtime._mallopt() is None, reason="the C library has no mallopt (not glibc)")
def test_kept_blocks_are_not_faulted_in_again():
    pages = 4 * 64 * 2**20 // 4096  # what four fresh 64 MB blocks cost
    assert faults(0) > 0.9 * pages  # malloc's default: every block is mapped anew
    assert faults(1024) < 0.02 * pages  # kept: the second block reuses the first one's pages
    assert faults(32) > 0.9 * pages  # a threshold below the block size keeps nothing


def test_zero_leaves_malloc_alone_and_bad_values_are_named():
    assert runtime.keep_freed_memory(0) is False
    for bad in (-1, runtime.MAX_MB + 1):
        with pytest.raises(UserError, match=rf"train.malloc_keep_mb .*got {bad}"):
            runtime.keep_freed_memory(bad)


def test_schema_bounds_the_setting():
    config = load_config(None)
    assert config["train"]["malloc_keep_mb"] == 1024
    with pytest.raises(Exception, match="malloc_keep_mb"):
        runtime_setup(load_config(None, ["train.malloc_keep_mb=4096"]))
