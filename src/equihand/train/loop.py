"""The training loop shared by pretraining and finetuning, in the spirit of torchvision's
references: a short loop (`fit`) that owns the optimiser, the schedule, checkpoints and metrics,
and calls back into the step-specific loss. Its pieces are small functions: `schedule` (how many
steps), `resume` / `save_resume` (the resumable checkpoint), `SigtermFlag` (stop after a safe
checkpoint), `optimiser_step` (micro-batches, prefetch, one optimiser step) and `log_row`
(metrics.csv and selection on validation); equihand.train.order says which samples each
micro-batch reads.

On several ranks (equihand.train.launch) the same loop runs on each: the model trains through
DistributedDataParallel, each rank reads its share of every micro-batch, the logged loss is the
mean over ranks, SIGTERM on any rank stops all of them at the same step, and rank 0 alone writes
resume.pt, metrics.csv and the final checkpoint. On one rank none of this happens.

Determinism and resuming: the data order of epoch e is a permutation seeded by (seed, e), and the
global torch RNG is reseeded from (seed, step) before every optimiser step (and rank r > 0 from
(seed, step, r)), so augmentation draws depend only on the step. A run restarted from its
resumable checkpoint (`resume.pt`, written every `checkpoint_every` steps and on SIGTERM)
therefore continues exactly where it stopped: on the CPU its final weights are bitwise equal to
an uninterrupted run's.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from equihand import progress
from equihand.errors import UserError
from equihand.io import atomic_write_csv
from equihand.methods.collectives import mean_over_ranks, rank, world_size
from equihand.train import launch
from equihand.train.checkpoint import load_checkpoint, save_checkpoint
from equihand.train.optim import build_optimizer, build_scheduler
from equihand.train.order import BatchOrder, step_seed
from equihand.train.runtime import autocast

RESUME_NAME = "resume.pt"
METRICS_NAME = "metrics.csv"
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, what SLURM and Snakemake expect from a killed job


class TrainingError(UserError):
    """A run that cannot go on (non-finite loss, too little data, mismatching resume state)."""


class Preempted(SystemExit):
    """Raised after SIGTERM once the resumable checkpoint is safely written."""

    def __init__(self) -> None:
        super().__init__(SIGTERM_EXIT_CODE)


def add_run_arguments(parser) -> None:
    """The arguments every training/evaluation step shares: its data and its run folder."""
    parser.add_argument("--data", required=True, help="prepared cache folder (equihand prepare)")
    parser.add_argument(
        "--out", required=True, help="run folder: model.pt, metrics.csv, config.yaml"
    )


@dataclass
class History:
    """What the loop has logged: one row per finished epoch, plus the running epoch sums."""

    rows: list[dict] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0
    images: int = 0
    seconds: float = 0.0
    best: float = math.inf
    best_step: int = -1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _write_metrics(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(key for row in rows for key in row))
    atomic_write_csv(path, fields, ([row.get(key, "") for key in fields] for row in rows))


@dataclass
class Loop:
    """What `fit` needs to know about one training run."""

    kind: str  # "pretrain" or "finetune"
    config: dict  # the resolved config (saved in every checkpoint)
    loop_cfg: dict  # config[kind]
    seed: int
    n_items: int  # training samples; batches index 0..n_items-1
    out_dir: Path
    # loss of one forward pass on the given sample positions -> (loss, images seen)
    step_loss: Callable[[nn.Module, np.ndarray], tuple[torch.Tensor, int]]
    # optional validation after every epoch -> metrics dict; `select` names the key to minimise
    evaluate: Callable[[nn.Module], dict] | None = None
    select: str | None = None
    # optional: told the sample positions of the next micro-batch just before the current one's
    # step_loss runs, so that its data can be read in the background (it must not draw randoms)
    prefetch: Callable[[np.ndarray], None] | None = None


@dataclass
class State:
    """Everything a resumable checkpoint restores, besides the config and the RNG."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: History = field(default_factory=History)
    best_model: dict | None = None  # weights of the best validation score so far (loop.select)
    step: int = 0  # the next optimiser step to run


def schedule(loop: Loop) -> tuple[int, int]:
    """(optimiser steps per epoch, total steps) of `loop`; TrainingError when an epoch is empty."""
    cfg = loop.loop_cfg
    launch.check_batch(loop.kind, cfg["batch_size"])
    per_step = cfg["batch_size"] * cfg["accumulate"]
    steps_per_epoch = loop.n_items // per_step
    if steps_per_epoch == 0:
        raise TrainingError(
            f"{loop.kind}: {loop.n_items} training images are fewer than one optimiser step "
            f"(batch_size {cfg['batch_size']} x accumulate {cfg['accumulate']})"
        )
    total = cfg.get("steps") or cfg["epochs"] * steps_per_epoch
    if cfg["max_steps"]:
        total = min(total, cfg["max_steps"])
    return steps_per_epoch, total


def resume(loop: Loop, state: State) -> None:
    """Restore `state` and the torch RNG from `out_dir/resume.pt` when it exists; refuse one
    written with a different config for this step or the model."""
    path = loop.out_dir / RESUME_NAME
    if not path.exists():
        return
    saved = load_checkpoint(path, kind=loop.kind)
    for key in (loop.kind, "model"):
        if saved["config"].get(key) != loop.config.get(key):
            raise TrainingError(
                f"{path} was written with a different '{key}' config; delete it to "
                "start over or restore the config it was made with"
            )
    ranks = saved["extra"].get("world_size", 1)
    if ranks != world_size():
        raise TrainingError(
            f"{path} was written by a run on {ranks} rank(s); this one has {world_size()}: "
            f"relaunch it on {ranks} or delete {path} to start over"
        )
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    state.history = History(**saved["extra"]["history"])
    state.best_model = saved["extra"].get("best_model")
    state.step = saved["step"]


def save_resume(loop: Loop, state: State, step: int) -> None:
    """Write `out_dir/resume.pt`: the run as it stands before optimiser step `step`."""
    if not launch.is_main():
        return
    extra = {"history": state.history.to_dict(), "world_size": world_size()}
    if state.best_model is not None:
        extra["best_model"] = state.best_model
    save_checkpoint(
        loop.out_dir / RESUME_NAME,
        {
            "kind": loop.kind,
            "final": False,
            "step": step,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "config": loop.config,
            "extra": extra,
        },
    )


class SigtermFlag:
    """While entered, SIGTERM only sets `requested` (the loop stops after a safe checkpoint)."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> SigtermFlag:
        self._previous = signal.signal(signal.SIGTERM, self._request)
        return self

    def _request(self, *_) -> None:
        self.requested = True

    def __exit__(self, *_) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def optimiser_step(
    loop: Loop,
    state: State,
    net: nn.Module,
    order: BatchOrder,
    step: int,
    total: int,
    device: torch.device,
) -> tuple[float, int]:
    """One optimiser step over `accumulate` micro-batches (each announced to `loop.prefetch`
    while the one before it runs) through `net` (the model, or its DDP wrapper); returns (mean
    loss over ranks, images seen by all ranks)."""
    accumulate = loop.loop_cfg["accumulate"]
    step_loss, step_images = 0.0, 0
    for micro in range(accumulate):
        positions = order.positions(step, micro)
        if loop.prefetch is not None:
            following = order.following(step, micro)
            if following[0] < total:
                loop.prefetch(order.positions(*following))
        with launch.accumulating(net, last=micro == accumulate - 1):
            with autocast(device, loop.config["train"]):
                loss, n_images = loop.step_loss(net, positions)
            value = mean_over_ranks(loss.detach())  # so that every rank stops on a bad loss
            if not torch.isfinite(value):
                raise TrainingError(
                    f"{loop.kind}: loss is {value.item()} at step {step} "
                    f"(epoch {step // order.steps_per_epoch}); "
                    "lower the learning rate or check the data"
                )
            (loss / accumulate).backward()
        step_loss += value.item() / accumulate
        step_images += n_images * world_size()
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return step_loss, step_images


def log_due(cfg: dict, step: int, steps_per_epoch: int, total: int) -> bool:
    """Whether a metrics row follows optimiser step `step`: every `log_every_steps` steps (at
    each epoch's end when 0) and after the last step."""
    if cfg["log_every_steps"]:
        due = (step + 1) % cfg["log_every_steps"] == 0
    else:
        due = step % steps_per_epoch == steps_per_epoch - 1
    return due or step == total - 1


def log_row(loop: Loop, state: State, step: int, epoch: int) -> None:
    """Append a metrics row (the mean loss and speed since the last row, the validation metrics
    when `loop.evaluate` is set), keep the best weights on `loop.select`, rewrite metrics.csv."""
    history = state.history
    row = {
        "epoch": epoch,
        "step": step + 1,
        "loss": history.loss_sum / history.loss_count,
        "lr": state.scheduler.get_last_lr()[0],
        "images_per_s": history.images / history.seconds,
    }
    if loop.evaluate is not None:
        metrics = loop.evaluate(state.model)
        state.model.train()
        row.update(metrics)
        if loop.select and metrics[loop.select] < history.best:
            history.best, history.best_step = metrics[loop.select], step + 1
            state.best_model = copy.deepcopy(state.model.state_dict())
    history.rows.append(row)
    history.loss_sum, history.loss_count = 0.0, 0
    history.images, history.seconds = 0, 0.0
    if launch.is_main():
        _write_metrics(loop.out_dir / METRICS_NAME, history.rows)


def fit(loop: Loop, model: nn.Module, device: torch.device) -> tuple[nn.Module, History]:
    """Train `model` as `loop` says, resuming from `out_dir/resume.pt` if it exists.

    Returns the final model (the best one on validation when `loop.select` is set) and the
    history; the caller writes the final checkpoint. metrics.csv is written after every epoch.
    """
    cfg = loop.loop_cfg
    steps_per_epoch, total = schedule(loop)
    net = launch.wrap(model, device, loop.config)  # model itself on one rank
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, total, round(cfg["warmup_epochs"] * steps_per_epoch))
    state = State(model, optimizer, scheduler)
    loop.out_dir.mkdir(parents=True, exist_ok=True)
    resume(loop, state)
    me, main = rank(), launch.is_main()
    order = BatchOrder(loop.seed, loop.n_items, cfg, steps_per_epoch, me, world_size())
    history = state.history
    with (
        SigtermFlag() as sigterm,
        progress.bar(
            total=total, initial=state.step, desc=loop.kind, unit="step", quiet=not main
        ) as bar,
    ):
        model.train()
        for step in range(state.step, total):
            torch.manual_seed(step_seed(loop.seed, step, me))  # draws depend on the step
            tic = time.perf_counter()
            loss, images = optimiser_step(loop, state, net, order, step, total, device)
            history.seconds += time.perf_counter() - tic
            history.loss_sum += loss
            history.loss_count += 1
            history.images += images
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{history.images / history.seconds:.0f}")
            if log_due(cfg, step, steps_per_epoch, total):
                log_row(loop, state, step, step // steps_per_epoch)
            stop = launch.any_rank(sigterm.requested)  # all ranks stop at the same step
            if stop or (step + 1) % cfg["checkpoint_every"] == 0:
                save_resume(loop, state, step + 1)
                if stop:
                    launch.barrier()  # rank 0 has written resume.pt
                    raise Preempted()
    if loop.select and state.best_model is not None:
        model.load_state_dict(state.best_model)
    return model, history


def finish(loop: Loop, model: nn.Module, history: History, path: Path, extra: dict) -> Path:
    """Write the final checkpoint and remove the resumable one (rank 0 only)."""
    if not launch.is_main():
        return path
    save_checkpoint(
        path,
        {
            "kind": loop.kind,
            "final": True,
            "step": history.rows[-1]["step"] if history.rows else 0,
            "model": model.state_dict(),
            "config": loop.config,
            "extra": {"history": history.to_dict(), **extra},
        },
    )
    (loop.out_dir / RESUME_NAME).unlink(missing_ok=True)
    return path
