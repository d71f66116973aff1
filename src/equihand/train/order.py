"""Which samples each micro-batch of a training run reads, on which rank, and the seed of each
optimiser step's random draws.

Epoch e visits the run's `n_items` samples in a permutation seeded by (seed, e), `batch_size` at
a time, `accumulate` micro-batches per optimiser step. `batch_size` is the global micro-batch:
on W ranks (equihand.train.launch) rank r reads the r-th of W equal, disjoint, contiguous slices
of the micro-batch's sorted positions, so the ranks' shares concatenated in rank order are the
batch one process would read, and the global batch of an optimiser step is
batch_size x accumulate whatever the number of ranks.
"""

from __future__ import annotations

import numpy as np


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The torch seed of optimiser step `step` of a run with seed `seed`, on rank `rank` (each
    rank draws its own augmentations; rank 0's seed is the single-process one)."""
    entropy = [seed, step] if rank == 0 else [seed, step, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, 1_000_003, epoch]).permutation(n)


class BatchOrder:
    """The sample positions of every micro-batch of a run, for one rank of `world`."""

    def __init__(
        self,
        seed: int,
        n_items: int,
        loop_cfg: dict,
        steps_per_epoch: int,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.seed, self.n_items = seed, n_items
        self.batch_size, self.accumulate = loop_cfg["batch_size"], loop_cfg["accumulate"]
        self.steps_per_epoch = steps_per_epoch
        self.rank, self.share = rank, loop_cfg["batch_size"] // world
        self.orders: dict[int, np.ndarray] = {}

    def positions(self, step: int, micro: int) -> np.ndarray:
        """Sorted sample positions this rank reads in micro-batch `micro` of optimiser step
        `step` (the whole micro-batch on one rank)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch not in self.orders:  # positions are asked for in order: drop earlier epochs
            for done in [e for e in self.orders if e < epoch]:
                del self.orders[done]
            self.orders[epoch] = epoch_order(self.seed, epoch, self.n_items)
        first = (within * self.accumulate + micro) * self.batch_size
        batch = np.sort(self.orders[epoch][first : first + self.batch_size])
        if self.share == self.batch_size:
            return batch
        return batch[self.rank * self.share : (self.rank + 1) * self.share]

    def following(self, step: int, micro: int) -> tuple[int, int]:
        """(step, micro) of the micro-batch after `micro` of `step`."""
        return (step, micro + 1) if micro + 1 < self.accumulate else (step + 1, 0)
