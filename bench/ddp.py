"""Data-parallel pretraining speed: optimiser steps/s of the real `equihand pretrain` on one
process and on 2 gloo ranks on this machine's CPU (and on 1 GPU when torch sees one), at the same
global batch.

    python bench/ddp.py [--cache results/prepared/synth] [--backbone resnet18] [--batch 64]
        [--steps 12] [--out results/bench]

Each case pretrains (`pretrain()`, equivariant) for `--steps` optimiser steps into a temporary
folder, logging every step; its steps/s is the median, over the steps after the first two
(warm-up), of metrics.csv's images/s (rank 0's clock, every rank's images) / (2 x batch). The
2 ranks get one torch thread each (`torchrun`-style variables set by torch.multiprocessing, gloo
on 127.0.0.1); one process is timed with 1 and with all cores' threads, the fair comparison on a
small machine: on 2 cores, 2 ranks of 1 thread compete with 1 process of 2 threads, and pay for
the gradient all-reduce, the projections' all-gather and the synchronised BatchNorm on top.
Prints a Markdown table and writes results/bench/ddp.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp
from common import RESULTS, environment, markdown, write_csv

from equihand.config import load_config
from equihand.train import launch
from equihand.train.pretrain import pretrain

WARMUP_STEPS = 2


def overrides(args, threads: int, device: str) -> list[str]:
    return [
        "progress=never",
        f"device={device}",
        f"model.backbone={args.backbone}",
        f"pretrain.batch_size={args.batch}",
        "pretrain.epochs=100000",  # max_steps decides
        f"pretrain.max_steps={args.steps}",
        "pretrain.log_every_steps=1",
        "pretrain.checkpoint_every=1000000",
        f"train.threads={threads}",
    ]


def _rank(rank: int, world: int, port: int, cache: Path, out: Path, settings: list[str]) -> None:
    os.environ |= launch.local_env(rank, world, port)
    try:
        pretrain(cache, out, load_config(None, settings))
    finally:
        launch.teardown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps_per_s(run: Path, batch: int) -> float:
    with open(run / "metrics.csv") as f:
        rates = [float(row["images_per_s"]) for row in csv.DictReader(f)][WARMUP_STEPS:]
    if not rates:
        raise SystemExit(f"--steps must be above {WARMUP_STEPS} (the warm-up steps)")
    return statistics.median(rates) / (2 * batch)


def measure(args, ranks: int, threads: int, device: str, tmp: Path) -> dict:
    out = tmp / f"{device}-{ranks}x{threads}"
    settings = overrides(args, threads, device)
    if ranks == 1:
        pretrain(Path(args.cache), out, load_config(None, settings))
    else:
        mp.spawn(
            _rank,
            args=(ranks, free_port(), Path(args.cache), out, settings),
            nprocs=ranks,
            join=True,
        )
    rate = steps_per_s(out, args.batch)
    return {
        "device": device,
        "ranks": ranks,
        "threads_per_rank": threads,
        "backbone": args.backbone,
        "global_batch": args.batch,
        "steps_per_s": round(rate, 3),
        "images_per_s": round(rate * 2 * args.batch, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="results/prepared/synth")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch", type=int, default=64, help="global batch (per view)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for ddp.csv")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    cases = [(1, 1, "cpu"), (1, cores, "cpu"), (2, max(1, cores // 2), "cpu")]
    if torch.cuda.is_available():
        cases.append((1, cores, "cuda"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(args, r, t, d, Path(tmp)) for r, t, d in cases]
    env = environment(cores)
    rows = [{**row, "load_1min": env["load_1min"], "date_utc": env["date_utc"]} for row in rows]
    print(markdown(rows))
    print(f"\nwritten {write_csv(args.out / 'ddp.csv', rows)}")


if __name__ == "__main__":
    main()
