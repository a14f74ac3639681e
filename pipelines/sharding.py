"""Which samples each rank reads in an epoch, and the seeds of its random draws.

Shared by both backends so they shard identically: the epoch's order is one permutation of all
samples (the same on every rank, from seed and epoch), trimmed to a multiple of world_size *
batch_size when drop_last, then cut into world_size contiguous shards: rank r reads
[r * n // world, (r + 1) * n // world) (DALI's reader is given that shard's files alone).
"""
import math
from dataclasses import dataclass

import numpy as np

_SHUFFLE, _SAMPLE = 0x5F1, 0x5A3


def epoch_order(n, *, seed, epoch, shuffle, drop_last, batch_size, world_size):
    """Sample indices of one epoch across all ranks, before sharding."""
    if shuffle:
        order = np.random.default_rng([_SHUFFLE, seed, epoch]).permutation(n)
    else:
        order = np.arange(n)
    if drop_last:
        order = order[: n // (world_size * batch_size) * world_size * batch_size]
    return order


def shard_range(n, rank, world_size):
    return rank * n // world_size, (rank + 1) * n // world_size


def sample_rng(seed, epoch, index):
    """The generator of one sample's crop and flip (both backends'): a function of the sample, not of the
    worker or the pipeline."""
    return np.random.default_rng([_SAMPLE, seed, epoch, index])


@dataclass(frozen=True)
class Shard:
    """One rank's share of every epoch of n samples."""

    n: int
    batch_size: int
    rank: int
    world_size: int
    seed: int
    shuffle: bool
    drop_last: bool

    def global_order(self, epoch):
        return epoch_order(self.n, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
                           drop_last=self.drop_last, batch_size=self.batch_size,
                           world_size=self.world_size)

    def order(self, epoch):
        """Sample indices this rank reads in `epoch`, in order."""
        order = self.global_order(epoch)
        lo, hi = shard_range(len(order), self.rank, self.world_size)
        return order[lo:hi]

    @property
    def num_samples(self):
        """Samples this rank reads per epoch (ranks differ by at most one without drop_last)."""
        n = self.n
        if self.drop_last:
            n = n // (self.world_size * self.batch_size) * self.world_size * self.batch_size
        lo, hi = shard_range(n, self.rank, self.world_size)
        return hi - lo

    @property
    def num_batches(self):
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)
