"""What both loaders share: the samples, epoch bookkeeping, this rank's share of each epoch."""
import logging
import operator

import torch

from . import sharding
from .errors import DatasetError, alike, plural

log = logging.getLogger("bicyclegan.pipelines")


def _index(value):
    """value as an int where it is an integer (int, numpy integer), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


class PairedLoader:
    """An iterable of batches {"A", "B", "paths"} ("B" absent for the single layout), with len.

    Epochs: each pass over the loader is one epoch, numbered from 0; set_epoch(e) makes the next
    pass epoch e (set_epoch(e, k): from its batch k on, for a run resumed mid-epoch). An epoch's
    order, crops and flips are a function of (seed, epoch, rank, world_size) only, so a resumed run
    sees the same data as an uninterrupted one.
    """

    backend = None
    closed = False  # close(): its background work (worker processes, a DALI pipeline's threads) ended

    def __init__(self, index, spec, *, batch_size, rank, world_size, seed, shuffle, drop_last,
                 device, skip_bad, memory_format):
        self.layout = index.layout
        self.samples = index.samples
        self.spec = spec
        self.batch_size = batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle, self.drop_last, self.skip_bad = shuffle, drop_last, skip_bad
        self.device = torch.device(device)
        self.memory_format = memory_format  # of the batches' A and B
        self.skipped = list(index.skipped)  # [(path, reason)], the checks' and the loaders'
        self.output_sizes = index.output_sizes  # (H, W) of the batches -> a file giving it
        self.shard = sharding.Shard(len(self.samples), batch_size, rank, world_size, seed, shuffle,
                                    drop_last)
        self._next_epoch, self._next_start = 0, 0
        if len(self) == 0:
            # Said as what to change: "on each of 1 rank(s) with drop_last=True" left a user with a
            # small dataset to work out that the batch was larger than the data.
            most = len(self.samples) // world_size
            fill = "fills" if len(self.samples) == 1 else "fill"
            what = (f"{plural(len(self.samples), 'sample')} {fill} no batch of batch_size={batch_size}"
                    + (f" on each of {world_size} ranks" if world_size > 1 else "")
                    + (" (an incomplete batch is left out: drop_last=True)" if drop_last else ""))
            # Every rank counts the same samples (the ranks exchange the files' verdicts): refused alike
            error = alike(DatasetError(
                what + (f"; use a batch_size of at most {most}" if most else "; there are fewer samples than ranks")),
                rank)
            # For a caller with its own rule on the batch (bicycle: even), to give its own advice.
            error.what, error.batch_at_most = what, most
            raise error

    def close(self):
        """End the loader's background work now, not whenever the garbage collector gets to it: a caller's
        program goes on after its loader (a notebook's next cell). Idempotent; iterating afterwards is an
        error. `with make_loader(...) as loader:` closes it however the block ends."""
        if not self.closed:
            self.closed = True
            self._free()

    def _free(self):
        """The backend's part of close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_open(self):
        if self.closed:
            raise ValueError(f"this {self.backend} loader is closed (close() ended its workers): make another "
                             f"with make_loader to read on")

    def set_epoch(self, epoch, start_batch=0):
        """Make the next pass epoch `epoch`, from its batch `start_batch` on: the batches an
        uninterrupted pass yields from there (a run resumed mid-epoch)."""
        e, start = _index(epoch), _index(start_batch)  # numpy integers too; 1.7 and True are not
        if e is None or e < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        if start is None or not 0 <= start <= len(self):
            raise ValueError(f"start_batch must be an int in [0, {len(self)}] (batches per epoch), got {start_batch!r}")
        self._next_epoch, self._next_start = e, start

    def _begin_epoch(self):
        """(epoch, first batch) of the pass that starts now; the next pass is the next epoch, whole."""
        self._check_open()
        epoch, start = self._next_epoch, self._next_start
        self._next_epoch, self._next_start = epoch + 1, 0
        return epoch, start

    @property
    def num_samples(self):
        return self.shard.num_samples

    def __len__(self):
        return self.shard.num_batches

    def _record_skips(self, skipped):
        known = {path for path, _ in self.skipped}
        for path, reason in skipped:
            if path not in known:
                known.add(path)
                self.skipped.append((path, reason))
                log.warning("skipped %s (%s): %d file(s) skipped so far; the next good sample "
                            "takes its place", path, reason, len(self.skipped))

    def __repr__(self):
        return (f"{type(self).__name__}({plural(len(self.samples), 'sample')}, layout={self.layout}, "
                f"batch_size={self.batch_size}, rank={self.rank}/{self.world_size}, "
                f"device={self.device}, {plural(len(self), 'batch', 'batches')} per epoch)")
