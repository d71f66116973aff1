"""One training command on several ranks: torch.distributed data parallelism, as launched by
`torchrun --nproc-per-node N` or as N tasks of a SLURM job step (`srun`).

Ranks come from the launcher's environment (`ranks_from_env`): torchrun's RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT, else SLURM's SLURM_PROCID, SLURM_NTASKS and
SLURM_LOCALID with the rendezvous on the job's first node (MASTER_ADDR when given, else the first
name of `scontrol show hostnames "$SLURM_JOB_NODELIST"`; MASTER_PORT when given, else one derived
from SLURM_JOB_ID). Anything else, or a world of one, is one process: no process group, no
DistributedDataParallel wrapper, no collective -- exactly the single-process code path.

On W > 1 ranks: NCCL on CUDA (each rank on the GPU of its LOCAL_RANK), gloo on the CPU; every
collective times out after `train.dist_timeout_s`, so a rank that dies fails the others instead
of leaving them waiting. The model is wrapped in DistributedDataParallel, its BatchNorm layers
synchronised when `train.sync_batchnorm` (equihand.methods.collectives), and rank 0 alone writes
(`is_main`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from equihand.errors import UserError
from equihand.methods import collectives
from equihand.train.runtime import runtime_setup

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a launch: rank, world size, rank on its node, rendezvous."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise UserError(f"{name} is not set (needed to place this process among the ranks)")
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{name}={value} is not an integer") from None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (`scontrol show hostnames`)."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        ).stdout
    except FileNotFoundError:
        raise UserError(
            f"SLURM_JOB_NODELIST={nodelist!r} needs `scontrol` to find the first node, and it is "
            "not on PATH; set MASTER_ADDR"
        ) from None
    except subprocess.CalledProcessError as e:
        raise UserError(
            f"scontrol show hostnames {nodelist!r} failed: {e.stderr.strip()}; set MASTER_ADDR"
        ) from None
    hosts = out.split()
    if not hosts:
        raise UserError(f"SLURM_JOB_NODELIST={nodelist!r} names no host; set MASTER_ADDR")
    return hosts[0]


def ranks_from_env(env: Mapping[str, str] = os.environ, resolve=first_host) -> Ranks:
    """This process's `Ranks` from torchrun's or SLURM's variables (see the module doc)."""
    if env.get("WORLD_SIZE"):
        names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
        rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
        local = _int(env, "LOCAL_RANK", rank)
        addr = env.get("MASTER_ADDR") or "127.0.0.1"
        port = _int(env, "MASTER_PORT", DEFAULT_PORT)
    elif _int(env, "SLURM_NTASKS", 1) > 1:
        names = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
        rank, world = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
        local = _int(env, "SLURM_LOCALID", rank)
        addr = env.get("MASTER_ADDR") or resolve(env.get("SLURM_JOB_NODELIST", ""))
        port = _int(env, "MASTER_PORT", 20000 + _int(env, "SLURM_JOB_ID", 0) % 20000)
    else:
        return Ranks()
    if world < 1:
        raise UserError(f"{names[1]}={world}: the world size must be at least 1")
    if not 0 <= rank < world:
        raise UserError(f"{names[0]}={rank} is not a rank of {names[1]}={world} (0..{world - 1})")
    if local < 0:
        raise UserError(f"{names[2]}={local} must be >= 0")
    return Ranks(rank, world, local, addr, port)


def local_env(rank: int, world: int, port: int) -> dict[str, str]:
    """torchrun's variables for rank `rank` of `world` ranks on this machine (rendezvous on
    127.0.0.1:`port`): what a process started without torchrun (torch.multiprocessing) sets in
    its environment before `setup` to join the others."""
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def setup(config: dict, env: Mapping[str, str] = os.environ) -> torch.device:
    """`runtime_setup`, then, on W > 1 ranks, the process group (once per process); returns
    this rank's device."""
    device = runtime_setup(config)
    ranks = ranks_from_env(env)
    if ranks.world == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        if dist.get_world_size() != ranks.world:
            raise UserError(
                f"a process group of {dist.get_world_size()} ranks exists; the environment says "
                f"{ranks.world}"
            )
        return device
    # under torchrun the agent already serves the rendezvous store at MASTER_ADDR:MASTER_PORT,
    # which env:// joins (TORCHELASTIC_USE_AGENT_STORE); under srun rank 0 serves it
    tcp = f"tcp://{ranks.master_addr}:{ranks.master_port}"
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method="env://" if env.get("WORLD_SIZE") else tcp,
        rank=ranks.rank,
        world_size=ranks.world,
        timeout=timedelta(seconds=config["train"]["dist_timeout_s"]),
    )
    print(
        f"equihand: rank {ranks.rank} of {ranks.world} on {socket.gethostname()} ({device})",
        file=sys.stderr,
        flush=True,
    )
    return device


def teardown() -> None:
    """Leave the process group, if there is one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this process writes the run's files (rank 0, or the only process)."""
    return collectives.rank() == 0


def barrier() -> None:
    if collectives.world_size() > 1:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """Whether `flag` is set on any rank (e.g. SIGTERM, which may reach ranks a step apart)."""
    if collectives.world_size() == 1:
        return flag
    value = torch.tensor([int(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def wrap(model: nn.Module, device: torch.device, config: dict) -> nn.Module:
    """The module a run trains through: `model` itself on one rank; on several, its BatchNorm
    synchronised when `train.sync_batchnorm`, in DistributedDataParallel. Parameters stay the
    model's own, so optimisers and checkpoints use `model`."""
    if collectives.world_size() == 1:
        return model
    if config["train"]["sync_batchnorm"]:
        model = collectives.synchronise_batchnorm(model, device)
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def accumulating(net: nn.Module, last: bool):
    """The context of a micro-batch's forward and backward: DDP's `no_sync` for all but the last
    micro-batch of an optimiser step (gradients are all-reduced once, after the last)."""
    if isinstance(net, DistributedDataParallel) and not last:
        return net.no_sync()
    return nullcontext()


def check_batch(kind: str, batch_size: int) -> None:
    """The global micro-batch must split evenly over the ranks."""
    world = collectives.world_size()
    if batch_size % world:
        raise UserError(
            f"{kind}.batch_size {batch_size} (the global micro-batch) does not split evenly over "
            f"{world} ranks; make it a multiple of {world}"
        )
