"""What the losses and models need from torch.distributed when a run spans several ranks: the
rank and world size, projections gathered from every rank with a gradient-correct backward (with
which equihand.methods.objectives.nt_xent scores the global batch), and BatchNorm whose statistics
cover the global batch.

With no process group (or a world of one) every function here is the identity of today's
single-process code path: nothing is gathered, nothing is reduced, no module is replaced.

Gradients across ranks. DistributedDataParallel averages parameter gradients over the W ranks.
Rank r computes the loss of its own anchors, L_r, against the keys of every rank; the gathered
keys carry their gradient back to the rank that made them (torch.distributed.nn.functional's
all_gather sums, in its backward, the gradients every rank computed for a slice). So rank r's
gradient is that of L_r through its anchors plus that of sum_r' L_r' through its keys, and the
average over ranks is the gradient of mean_r L_r: with equal shares, the single-process loss of
the concatenated batch (tests/test_distributed.py checks values and gradients).
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn import functional as dist_fn


def world_size() -> int:
    """Ranks of the default process group; 1 when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """This process's rank in the default process group; 0 when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def _quiet(fn, *args, **kwargs):
    # torch 2.14 marks torch.distributed.nn.functional deprecated (FutureWarning) in favour of
    # the private _functional_collectives, whose all_gather backward needs reduce_scatter, which
    # gloo lacks; the autograd functions themselves are unchanged. Only that warning is hidden.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed.nn.functional.*")
        return fn(*args, **kwargs)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """cat over ranks (in rank order) of every rank's (b, ...) tensor -> (W * b, ...); the
    backward returns to each rank the gradient of its own rows, summed over all ranks' losses.
    Every rank must pass the same shape."""
    return torch.cat(_quiet(dist_fn.all_gather, x))


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The sum of `x` over ranks, differentiable (the backward sums the gradients likewise)."""
    return _quiet(dist_fn.all_reduce, x, op=dist.ReduceOp.SUM)


@torch.no_grad()
def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a detached scalar over ranks (logging; a non-finite loss anywhere shows up
    on every rank). With one rank: `value` itself."""
    if world_size() == 1:
        return value
    total = value.detach().float().clone()
    dist.all_reduce(total)
    return total / world_size()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (every rank's samples),
    for devices torch's SyncBatchNorm refuses (it runs on GPUs only; this one runs anywhere gloo
    does). The mean and the biased variance are sums reduced over ranks with an autograd-aware
    all-reduce, so the backward is the one of BatchNorm on the concatenated batch; the running
    statistics follow F.batch_norm's update (unbiased variance). Same parameters and buffers as
    BatchNorm1d/2d, so checkpoints do not see it. Eval mode and a world of one use F.batch_norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training or world_size() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = xf.numel() // xf.shape[1] * world_size()
        mean = sum_over_ranks(xf.sum(dims)) / count
        dev = xf - mean.view(shape)
        var = sum_over_ranks((dev * dev).sum(dims)) / count
        y = dev * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                if m is None:
                    m = 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / max(count - 1, 1)
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var), alpha=m)
        return y.to(x.dtype)


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of `model` computing its statistics over the global batch: torch's
    SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere. The same parameter and buffer tensors are
    kept (an optimiser built before still steps them); returns the model."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
            child, GlobalBatchNorm
        ):
            new = GlobalBatchNorm(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            for key, value in [*child._parameters.items(), *child._buffers.items()]:
                setattr(new, key, value)
            new.train(child.training)
            setattr(model, name, new)
        else:
            synchronise_batchnorm(child, device)
    return model
