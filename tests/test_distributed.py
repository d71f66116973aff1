"""Data parallelism on real gloo process groups on 127.0.0.1 (torch.multiprocessing, no mocks):
the all-gathered NT-Xent and the global BatchNorm against the single-process computation on the
concatenated batch (values and gradients), and pretraining on 2 ranks against one process at the
same global batch and seed."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import tiny_config
from torch import nn
from torch.multiprocessing.spawn import ProcessRaisedException

from equihand.errors import UserError
from equihand.methods import collectives, objectives
from equihand.outputs import MARKER
from equihand.train import launch
from equihand.train.checkpoint import load_checkpoint, save_checkpoint
from equihand.train.order import BatchOrder
from equihand.train.pretrain import pretrain

pytestmark = pytest.mark.slow  # real torch.distributed process groups

TIMEOUT = timedelta(seconds=120)
# (objective, images per rank, projection width, temperature)
CASES = [
    ("invariant", 1, 4, 0.5),
    ("invariant", 3, 16, 0.1),
    ("equivariant", 2, 8, 0.5),
    ("equivariant", 4, 128, 0.2),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, world: int, *args) -> None:
    mp.spawn(fn, args=(world, free_port(), *args), nprocs=world, join=True)


def join(rank: int, world: int, port: int) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=TIMEOUT
    )


def global_batch(case, world: int):
    """The whole batch of a case (float64, the same on every rank): z1, z2, geom1, geom2."""
    _, b, d, _ = case
    g = torch.Generator().manual_seed(b * 1000 + d)
    n = world * b
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    z2 = torch.randn(n, d, generator=g, dtype=torch.float64)
    geoms = [
        SimpleNamespace(
            angle=torch.rand(n, generator=g, dtype=torch.float64) - 0.5,
            shift=4 * torch.randn(n, 2, generator=g, dtype=torch.float64),
        )
        for _ in range(2)
    ]
    return z1, z2, *geoms


def loss_and_grads(case, z1, z2, geom1, geom2):
    name, _, _, temperature = case
    z1, z2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = getattr(objectives, name)(z1, z2, geom1, geom2, temperature=temperature, image_size=32)
    loss.backward()
    return loss.detach(), z1.grad, z2.grad


def _loss_rank(rank: int, world: int, port: int, out: Path) -> None:
    join(rank, world, port)
    results = []
    for case in CASES:
        b = case[1]
        z1, z2, g1, g2 = global_batch(case, world)
        mine = slice(rank * b, (rank + 1) * b)
        share = [SimpleNamespace(angle=g.angle[mine], shift=g.shift[mine]) for g in (g1, g2)]
        results.append(loss_and_grads(case, z1[mine], z2[mine], *share))
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_nt_xent_on_two_ranks_is_the_loss_of_the_concatenated_batch(tmp_path):
    # Rank r's loss is that of its own anchors against every rank's projections; its gradient
    # reaches every rank's rows through the all-gather. DDP averages gradients over the W ranks,
    # so the mean of the ranks' losses and their gradients / W must be the single-process loss
    # and gradient of the concatenated batch. float64: agreement to 1e-12.
    world = 2
    spawn(_loss_rank, world, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    for i, case in enumerate(CASES):
        loss, g1, g2 = loss_and_grads(case, *global_batch(case, world))
        got = torch.stack([ranks[r][i][0] for r in range(world)]).mean()
        torch.testing.assert_close(got, loss, rtol=0, atol=1e-12, msg=f"loss of {case}")
        for k, full in ((1, g1), (2, g2)):
            gathered = torch.cat([ranks[r][i][k] for r in range(world)]) / world
            torch.testing.assert_close(gathered, full, rtol=0, atol=1e-12, msg=f"grad of {case}")


def _batchnorm_rank(rank: int, world: int, port: int, out: Path) -> None:
    join(rank, world, port)
    results = []
    for make, shape in ((nn.BatchNorm1d, (6, 5)), (nn.BatchNorm2d, (4, 3, 5, 5))):
        torch.manual_seed(0)
        bn = make(shape[1])
        x = torch.randn(world * shape[0], *shape[1:])
        w = torch.randn_like(x)
        mine = slice(rank * shape[0], (rank + 1) * shape[0])
        model = collectives.synchronise_batchnorm(nn.Sequential(bn), torch.device("cpu"))
        assert isinstance(model[0], collectives.GlobalBatchNorm)
        xr = x[mine].clone().requires_grad_()
        y = model(xr)
        (y * w[mine]).sum().backward()
        results.append((y.detach(), xr.grad, bn.weight.grad, bn.bias.grad, model[0].running_var))
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_global_batchnorm_is_batchnorm_of_the_concatenated_batch(tmp_path):
    world = 2
    spawn(_batchnorm_rank, world, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    for i, (make, shape) in enumerate(((nn.BatchNorm1d, (6, 5)), (nn.BatchNorm2d, (4, 3, 5, 5)))):
        torch.manual_seed(0)
        bn = make(shape[1])
        x = torch.randn(world * shape[0], *shape[1:])
        w = torch.randn_like(x)
        x.requires_grad_()
        y = bn(x)
        (y * w).sum().backward()
        close = dict(rtol=1e-5, atol=1e-5)  # float32; sums in another order
        torch.testing.assert_close(torch.cat([r[i][0] for r in ranks]), y.detach(), **close)
        torch.testing.assert_close(torch.cat([r[i][1] for r in ranks]), x.grad, **close)
        for k, full in ((2, bn.weight.grad), (3, bn.bias.grad)):  # each rank: its share's part
            torch.testing.assert_close(sum(r[i][k] for r in ranks), full, **close)
        torch.testing.assert_close(ranks[0][i][4], bn.running_var, **close)


def _identity_rank(rank: int, world: int, port: int, out: Path) -> None:
    z1, z2, _, _ = global_batch(CASES[2], world)
    alone = objectives.nt_xent(z1, z2, 0.5)  # no process group yet
    join(rank, world, port)
    same = torch.equal(objectives.nt_xent(z1, z2, 0.5), alone)
    model = nn.Sequential(nn.BatchNorm1d(4))
    wrapped = launch.wrap(model, torch.device("cpu"), tiny_config())
    torch.save((same, wrapped is model, type(model[0]) is nn.BatchNorm1d), out / "one.pt")
    dist.destroy_process_group()


def test_a_world_of_one_is_the_single_process_path(tmp_path):
    spawn(_identity_rank, 1, tmp_path)
    assert torch.load(tmp_path / "one.pt") == (True, True, True)


def test_ranks_from_the_launchers_environment():
    assert launch.ranks_from_env({}) == launch.Ranks()
    assert launch.ranks_from_env({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) == launch.Ranks()
    torchrun = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1"}
    assert launch.ranks_from_env(torchrun | {"MASTER_PORT": "1234"}) == launch.Ranks(
        1, 4, 1, "n1", 1234
    )
    slurm = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
    slurm |= {"SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "4242"}
    hosts = {"gpu[07-08]": "gpu07"}
    assert launch.ranks_from_env(slurm, hosts.__getitem__) == launch.Ranks(5, 8, 1, "gpu07", 24242)
    with pytest.raises(UserError, match="RANK=4 is not a rank of WORLD_SIZE=4"):
        launch.ranks_from_env(torchrun | {"RANK": "4"})
    with pytest.raises(UserError, match="SLURM_PROCID=x is not an integer"):
        launch.ranks_from_env(slurm | {"SLURM_PROCID": "x"})


def test_each_rank_reads_its_share_of_the_global_batch():
    cfg = {"batch_size": 8, "accumulate": 2}
    one = BatchOrder(3, 64, cfg, 4)
    two = [BatchOrder(3, 64, cfg, 4, rank, 2) for rank in range(2)]
    for step in range(6):
        for micro in range(2):
            shares = [order.positions(step, micro) for order in two]
            assert all(len(s) == 4 for s in shares)
            assert np.array_equal(np.concatenate(shares), one.positions(step, micro))


# ------------------------------------------------------------------ pretraining on two ranks

# augmentation off: each rank draws its own views (seeded by (seed, step, rank)), so with random
# augmentation two ranks see other views than one process; without it the runs are comparable.
# float32 (no bf16 autocast): bf16 rounds a batch of 4 and one of 8 differently, by ~1e-3
SAME_VIEWS = [
    "train.amp=false",
    "augment.rotation_deg=0",
    "augment.scale=[1.0, 1.0]",
    "augment.translate=0",
    "augment.jitter_p=0",
    "pretrain.max_steps=3",
    "pretrain.log_every_steps=1",
    "pretrain.checkpoint_every=2",
    "pretrain.lr=0.0001",
]


def _pretrain_rank(rank: int, world: int, port: int, cache: Path, out: Path, extra) -> None:
    os.environ |= launch.local_env(rank, world, port)
    try:
        pretrain(cache, out, tiny_config(*SAME_VIEWS, *extra))
    finally:
        launch.teardown()


def losses(run: Path) -> torch.Tensor:
    with open(run / "metrics.csv") as f:
        return torch.tensor([float(row["loss"]) for row in csv.DictReader(f)])


@pytest.fixture(scope="module")
def one_process(cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    pretrain(cache, out, tiny_config(*SAME_VIEWS))
    return out


def test_two_ranks_pretrain_like_one_process(cache, one_process, tmp_path):
    # Same config (global batch 8: 4 per rank), same seed, synchronised BatchNorm, float32: the
    # same losses up to float32 rounding (sums in another order), and after 3 steps the same
    # weights: Adam moves a coordinate by at most ~lr per step whatever its gradient, so a
    # coordinate whose gradient is at rounding level may differ by up to steps x lr (measured:
    # 7.6e-5 at most, in < 0.01% of the coordinates); every other one agrees to 1e-5. A wrong
    # gradient (negatives of one rank only, unsynchronised statistics) moves most coordinates.
    out = tmp_path / "two"
    spawn(_pretrain_rank, 2, cache, out, [])
    torch.testing.assert_close(losses(out), losses(one_process), rtol=1e-5, atol=1e-5)
    a = load_checkpoint(out / "model.pt")["model"]
    b = load_checkpoint(one_process / "model.pt")["model"]
    assert a.keys() == b.keys()
    steps_times_lr = 3 * 1e-4
    apart, total = 0, 0
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=steps_times_lr, msg=key)
        if a[key].is_floating_point():
            apart += int(((a[key] - b[key]).abs() > 1e-5).sum())
            total += a[key].numel()
    assert apart / total < 1e-3, f"{apart} of {total} weights differ by more than 1e-5"
    assert not (out / "resume.pt").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())


def test_without_synchronised_batchnorm_each_rank_normalises_its_share(
    cache, one_process, tmp_path
):
    # each BatchNorm then sees 4 images, not 8: the very first loss already differs, and most
    # weights end up apart by far more than the rounding test_two_ranks_pretrain_like_one_process
    # allows
    out = tmp_path / "local-bn"
    spawn(_pretrain_rank, 2, cache, out, ["train.sync_batchnorm=false"])
    assert (losses(out)[0] - losses(one_process)[0]).abs() > 1e-3
    a = load_checkpoint(out / "model.pt")["model"]
    b = load_checkpoint(one_process / "model.pt")["model"]
    weights = [key for key in a if a[key].is_floating_point()]
    apart = sum(int(((a[k] - b[k]).abs() > 1e-5).sum()) for k in weights)
    total = sum(a[k].numel() for k in weights)
    print(f"without synchronised BatchNorm: {apart} of {total} weights apart by > 1e-5")
    assert apart / total > 0.1


def test_resume_on_another_number_of_ranks_is_refused(cache, one_process, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(one_process, out)
    record = load_checkpoint(out / "model.pt")
    resumable = {**record, "final": False, "step": 1, "rng": torch.get_rng_state()}
    resumable["extra"] = {"history": record["extra"]["history"], "world_size": 2}
    resumable["optimizer"], resumable["scheduler"] = {}, {}
    save_checkpoint(out / "resume.pt", resumable)
    with pytest.raises(UserError, match=r"written by a run on 2 rank\(s\); this one has 1"):
        pretrain(cache, out, tiny_config(*SAME_VIEWS))


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(cache, tmp_path):
    with pytest.raises(ProcessRaisedException, match=r"pretrain.batch_size 9 .* over 2 ranks"):
        spawn(_pretrain_rank, 2, cache, tmp_path / "run", ["pretrain.batch_size=9"])


# ------------------------------------------------------------------ a rank that dies

DYING_RANK = """
import os, sys
from pathlib import Path
import torch
from torch import nn
from conftest import tiny_config
from equihand.train import launch
from equihand.train.loop import Loop, fit

config = tiny_config("train.dist_timeout_s=60", "pretrain.epochs=50")
device = launch.setup(config)
rank, calls = int(os.environ["RANK"]), []

def step_loss(net, positions):
    calls.append(1)
    if rank == 1 and len(calls) == 3:
        os._exit(3)  # dies between two steps' collectives, as a crashed rank does
    x = torch.ones(len(positions), 4)
    return net(x).pow(2).mean(), len(positions)

torch.manual_seed(0)
loop = Loop("pretrain", config, config["pretrain"], 0, 64, Path(sys.argv[1]), step_loss)
fit(loop, nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), device)
"""


def test_a_rank_that_dies_takes_the_others_down(tmp_path):
    port = free_port()
    tests = Path(__file__).parent
    path = [str(tests), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env |= {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DYING_RANK, str(tmp_path / "run")],
            env=env | {"RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    tic = time.monotonic()
    outs = [proc.communicate(timeout=180)[0] for proc in procs]
    assert procs[1].returncode == 3, outs[1][-2000:]
    assert procs[0].returncode != 0, outs[0][-2000:]
    # gloo sees the dead peer's closed connection at once; the 60 s timeout covers a hung one
    assert time.monotonic() - tic < 120


# ------------------------------------------------------------------ the command under torchrun


def test_the_pretrain_command_runs_under_torchrun(cache, tmp_path):
    # the very command a user types, started by torchrun (its agent serves the rendezvous): both
    # ranks announce themselves, rank 0 alone prints and writes, and the run is complete
    out = tmp_path / "run"
    tests = Path(__file__).parent
    path = [str(tests.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    cmd = [
        str(Path(sys.executable).parent / "torchrun"),
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "equihand.cli",
        "pretrain",
        "--data",
        str(cache),
        "--out",
        str(out),
        "--objective",
        "equivariant",
        *[f"--set={item}" for item in ("progress=never", "device=cpu", "train.threads=1")],
        *[f"--set={item}" for item in ("pretrain.batch_size=8", "pretrain.max_steps=2")],
        "--set=prepare.resolution=32",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for r in range(2):
        assert len(re.findall(rf"equihand: rank {r} of 2 on ", log)) == 1, log[-4000:]
    assert log.count("pretrained resnet18 with equivariant") == 1, log[-4000:]
    record = load_checkpoint(out / "model.pt")
    assert record["final"] and record["step"] == 2
    written = sorted(p.name for p in out.iterdir())
    assert written == [MARKER, "config.yaml", "metrics.csv", "model.pt"]
