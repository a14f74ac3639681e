"""The DALI loader: one graph for GPU ("mixed" JPEG/PNG decoding) and CPU (device_id=None).

Graph per sample: fn.readers.file (this rank's contiguous shard of the epoch's order) -> decode as
RGB -> split at w/2 with fn.crop (before any resize) -> [grayscale] -> bicubic fn.resize ->
fn.crop_mirror_normalize to float CHW in [-1, 1]. The crop position and flip are the CPU loader's
(cpu_loader.draw_params): an external source feeds each sample's three draws from
sharding.sample_rng(seed, epoch, index), the graph turns them into the anchor from the image's size,
and the same data nodes feed both halves, so A and B share their crop and flip. Being a function of
the sample, not of the pipeline's sequence, they let a pass start at any batch (a pipeline over the
files from there on: nothing before it is read) and a pipeline restarted past a bad file keep them.

The epoch's order comes from sharding.epoch_order (as in the CPU loader) rather than the reader's
own shuffle, which only shuffles within a shard through a buffer and cannot be addressed by epoch;
so a pipeline is built per epoch when anything is random (let go as its pass ends), and reused when
nothing is (for a pass over the files it lists: not one from a later batch, nor one where a file broke
or changed since it read it). This module imports DALI at import time: bicyclegan.pipelines imports it
only when DALI is asked for.
"""
import os

import numpy as np
import nvidia.dali.fn as fn
import nvidia.dali.math as dmath
import nvidia.dali.types as types
import torch
from nvidia.dali import Pipeline
from nvidia.dali.data_node import DataNode

from . import sharding
from .base import PairedLoader
from .errors import DatasetError, describe_bad, none_decodes, plural
from .files import changed_since_checks, load_rgb

_PREFETCH = 2
_DALI_FAILS = "cannot decode (DALI's decoder fails on it)"  # the reason of a file that PIL decodes


def _float(x):
    return fn.cast(x, dtype=types.FLOAT) if isinstance(x, DataNode) else float(x)


def _pos(u, d):
    """Normalised crop position that DALI turns into the integer anchor min(floor(u * (d + 1)), d), the
    CPU loader's: u is float64, as there (in float32, 2 in 10^5 anchors of a 1000 px range moved by one)."""
    scale = dmath.max(d, 1) if isinstance(d, DataNode) else max(d, 1)
    if u is None:  # centre
        return (d // 2) / scale
    # DALI takes the position as float32 and rounds position * d: k / d within float32's precision gives k
    return fn.cast(dmath.min(dmath.floor(u * (d + 1)), d) / scale, dtype=types.FLOAT)


class _Draws:
    """An external source of each sample's three draws from sharding.sample_rng, which the graph takes
    as cpu_loader.draw_params does (the first two for the crop, the third's `< 0.5` for the flip), for a
    pipeline over `positions` (dataset indices; the reader's shard 0 of 1, batches of `batch_size`, its
    last one padded with the last sample): iteration i is the reader's batch i. DALI calls it ahead of
    the batches it runs, also past the end, for batches never taken (the reader wraps to its start):
    the last sample's draws there. It holds no loader (a loader -> pipeline -> loader cycle)."""

    def __init__(self, positions, batch_size, seed, epoch):
        self.positions, self.batch_size, self.seed, self.epoch = positions, batch_size, seed, epoch

    def __call__(self, info):
        n, first = len(self.positions), info.iteration * self.batch_size
        indices = [self.positions[min(first + j, n - 1)] for j in range(self.batch_size)]
        # (one float64 array a batch: DALI takes it in one copy)
        return np.array([sharding.sample_rng(self.seed, self.epoch, int(i)).random(3) for i in indices])


def _utf8(path):
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _cause(err):
    """DALI's line of what failed, after its operator's traceback ("encountered:"), else its error's last line
    (which is "Current pipeline object is no longer valid." of any failure)."""
    lines = [line.strip() for line in str(err).strip().splitlines()]
    after = lines[lines.index("encountered:") + 1:] if "encountered:" in lines else []
    return next((line for line in after if line), lines[-1] if lines else "")


class _Changed(RuntimeError):
    """A batch with a file that no longer fits the checks (_check_sizes), recovered from as DALI's errors are."""


class DaliLoader(PairedLoader):
    backend = "dali"

    def __init__(self, index, spec, *, num_threads, **kwargs):
        super().__init__(index, spec, **kwargs)
        self.num_threads = num_threads
        self._gpu = self.device.type == "cuda"
        self._device_id = (self.device.index if self.device.index is not None
                           else torch.cuda.current_device()) if self._gpu else None
        self._pipe = None       # reusable only while deterministic and left at an epoch boundary
        self._reads = None      # the samples (dataset indices) self._pipe's reader lists
        self._seen = None       # the files of its list's start as they were before it read them: _stat
        self._bad = set()       # indices of samples that failed to decode (skip_bad)
        self._dali_only = set()  # those of them that PIL decodes (DALI's decoder fails on them): kept replaced
        self._retry = set()     # those of them that failed before this pass, not yet looked at again: _known_bad
        self._random = spec.augment or self.shuffle
        self._active = None     # the pass that owns self._pipe (one pass at a time)
        self._fitting = set()   # file sizes (H, W [, B's H, W]) that fit the checks' rules: _check_sizes
        # DALI's reader takes file names as UTF-8 text: a name that is not (b'caf\xe9.png', which Python reads
        # with a surrogate) stopped the first epoch with "Unsupported argument type with name files".
        unnamed = [p for s in self.samples for p in (s.path, s.b_path) if p is not None and not _utf8(p)]
        if unnamed:
            n = len(unnamed)
            shown = ", ".join(repr(os.fsencode(p)) for p in unnamed[:3]) + (f" and {n - 3} more" if n > 3 else "")
            raise DatasetError(f"{plural(n, 'file name')} {'is' if n == 1 else 'are'} not UTF-8, which DALI's "
                               f"reader cannot take: {shown}; rename the files (e.g. convmv -f latin1 -t utf8), "
                               f"or read the data with backend='torch' (--backend torch)")

    # -- graph ------------------------------------------------------------------------------
    def _free(self):
        self._pipe = self._active = None  # the pipeline's threads end with it (the last reference)

    def _decode(self, encoded):
        # EXIF orientation is ignored, as by PIL and the reference
        img = fn.decoders.image(encoded, device="mixed" if self._gpu else "cpu", output_type=types.RGB,
                                adjust_orientation=False)
        return img, fn.peek_image_shape(encoded, adjust_orientation=False)  # H, W, C

    def _half(self, img, h, w, x):
        return fn.crop(img, crop_h=_float(h), crop_w=_float(w), crop_pos_x=x, crop_pos_y=0.0)

    def _finish(self, img, size, nc, pos, mirror):
        spec = self.spec
        if nc == 1:
            img = fn.color_space_conversion(img, image_type=types.RGB, output_type=types.GRAY)
        if spec.preprocess != "crop":
            rh, rw = spec.resized_size(*size)
            img = fn.resize(img, resize_y=_float(rh), resize_x=_float(rw), interp_type=types.INTERP_CUBIC)
        kwargs = {"crop": spec.crop, "crop_pos_y": pos[0], "crop_pos_x": pos[1]} if pos else {}
        return fn.crop_mirror_normalize(img, dtype=types.FLOAT, output_layout="CHW", mean=127.5,
                                        std=127.5, mirror=mirror, **kwargs)

    def _build(self, positions, epoch):
        """A built pipeline over the samples `positions` (dataset indices) of `epoch`, returning A, [B,] the
        files' shapes, labels (indices into `positions`)."""
        self._seen = self._stat(positions)  # (before any read)
        pipe = Pipeline(batch_size=self.batch_size, num_threads=self.num_threads,
                        device_id=self._device_id, prefetch_queue_depth=_PREFETCH)
        paths = self._pairs(positions)
        # dont_use_mmap: the reader mapped each file into memory, and a read past the end of a file truncated
        # meanwhile (rewritten in place) killed the process with SIGBUS; plain reads cost nothing measurable here.
        reader = {"shard_id": 0, "num_shards": 1, "random_shuffle": False, "dont_use_mmap": True,
                  "stick_to_shard": True, "pad_last_batch": True, "labels": list(range(len(paths)))}
        with pipe:
            enc_a, label = fn.readers.file(files=[a for a, _ in paths], name="A", **reader)
            img, shape = self._decode(enc_a)
            h, w, shapes = shape[0], shape[1], [shape]
            if self.layout == "aligned":
                w = w // 2
                a, b = self._half(img, h, w, 0.0), self._half(img, h, w, 1.0)
            elif self.layout == "ab_folders":
                enc_b, _ = fn.readers.file(files=[b for _, b in paths], name="B", **reader)
                b, b_shape = self._decode(enc_b)
                a, shapes = img, shapes + [b_shape]
            else:
                a, b = img, None
            if b is not None and self.spec.direction == "BtoA":
                a, b = b, a   # sizes are equal where the geometry depends on them (checked)
            size = self.spec.resized_size(h, w)
            pos, draw, mirror = None, (None, None), 0
            if self.spec.augment and (self.spec.crops or self.spec.random_flip):  # (else a centre crop, no flip)
                u = fn.external_source(source=_Draws(positions, self.batch_size, self.seed, epoch), batch_info=True)
                draw = u[0], u[1]
                if self.spec.random_flip:
                    mirror = fn.cast(u[2] < 0.5, dtype=types.INT32)
            if self.spec.crops:
                d = (size[0] - self.spec.crop[0], size[1] - self.spec.crop[1])
                pos = tuple(_pos(u, dd) for u, dd in zip(draw, d))
            outs = [self._finish(a, size, self.spec.input_nc, pos, mirror)]
            if b is not None:
                outs.append(self._finish(b, size, self.spec.output_nc, pos, mirror))
            pipe.set_outputs(*outs, *shapes, label)  # the files' sizes: _check_sizes
        pipe.build()
        self._reads = positions
        return pipe

    # -- iteration --------------------------------------------------------------------------
    def _tensor(self, tensor_list):
        t = tensor_list.as_tensor()
        if not self._gpu:
            return torch.from_numpy(np.array(t)).contiguous(memory_format=self.memory_format)
        from nvidia.dali.plugin.pytorch import feed_ndarray

        out = torch.empty(t.shape(), dtype=torch.float32, device=self.device)  # feed_ndarray fills it densely
        feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream(self.device))
        return out.contiguous(memory_format=self.memory_format)

    def _stat(self, positions):
        """(inode, size, ctime) of the files of a list's first batches, which a pipeline reads again past the
        list's end (prefetch): a pass that reuses it takes those reads as its first batches. The change time, as
        the check cache's: cp -p over a file (in place) keeps its inode, its size and its mtime."""
        stats = []
        for path in (p for i in positions[:(_PREFETCH + 1) * self.batch_size]
                     for p in (self.samples[i].path, self.samples[i].b_path) if p is not None):
            try:
                st = os.stat(path)
                stats.append((st.st_ino, st.st_size, st.st_ctime_ns))
            except OSError:
                stats.append(None)
        return stats

    def _pairs(self, indices):
        return [(self.samples[i].path, self.samples[i].b_path) for i in indices]

    def _find_bad(self, indices):
        bad = []
        for i in indices:
            sample, sizes = self.samples[i], {}
            paths = list(filter(None, (sample.path, sample.b_path)))
            for path in paths:
                try:
                    sizes[path] = load_rgb(path).size
                except Exception as err:  # PIL's decode errors have several types
                    bad.append((i, path, f"cannot decode ({type(err).__name__}: {err})"))
            # decodes, but at another size than the checks found (replaced since): a batch of unequal
            # images, which DALI cannot hand over as one tensor
            if len(sizes) == len(paths) and (why := changed_since_checks(
                    sample, self.layout, self.spec, sizes, self.output_sizes)):
                bad.append((i, sample.path, f"changed since the checks: {why}"))
        return bad

    def _check_sizes(self, shapes, labels, positions):
        """Raises _Changed for a batch holding a file replaced since the checks by one that decodes and
        fits the batch (an odd width, which DALI splits one pixel off the middle): named as a file that
        fails is (_recover). shapes: the batch's (H, W, C) of A [and B]; a size the checks' rules took
        once is not judged again."""
        hw = [np.array(s.as_tensor())[:, :2] for s in shapes]
        for j, label in enumerate(labels):
            key = tuple(int(v) for x in hw for v in x[j])
            if key in self._fitting:
                continue
            sample = self.samples[positions[label]]
            sizes = {path: (int(x[j][1]), int(x[j][0])) for path, x in zip((sample.path, sample.b_path), hw)}
            if changed_since_checks(sample, self.layout, self.spec, sizes, self.output_sizes):
                raise _Changed(sample.path)
            self._fitting.add(key)

    def _named_by_dali(self, err, indices):
        """The files that DALI's error says it failed to decode (where PIL decodes them)."""
        failed = {line.rsplit(" : ", 1)[-1].strip() for line in str(err).splitlines()
                  if "Failed to decode sample" in line}
        return [(i, path, _DALI_FAILS) for i in indices
                for path in filter(None, (self.samples[i].path, self.samples[i].b_path)) if path in failed]

    def _known_bad(self, i):
        """Whether sample i is replaced: one that failed in an earlier pass is tried again the first time this pass
        meets it (rewritten whole since, it is read again, as by the torch loader, which tries each file as it
        comes); one that PIL decodes and DALI's decoder fails on stays replaced."""
        if i in self._retry:
            self._retry.discard(i)
            if not self._find_bad([i]):
                self._bad.discard(i)
        return i in self._bad

    def _substitute(self, i):
        """The next sample after i (cyclically) that decodes."""
        n = len(self.samples)
        for step in range(1, n):
            j = (i + step) % n
            if self._known_bad(j):
                continue
            if bad := self._find_bad([j]):
                self._record_skips([(p, r) for _, p, r in bad])
                self._bad.add(j)
                continue
            return j
        reasons = dict(self.skipped)  # (every sample but i is in self._bad, and i failed: all recorded)
        tried = [self.samples[(i + step) % n].path for step in range(n)]
        raise DatasetError(none_decodes([(p, reasons.get(p, "cannot decode")) for p in tried]))

    def _recover(self, err, order, start, listed):
        """After a failed batch (order[start:]'s first, of a pipeline over order[listed:]): name the bad files, or
        with skip_bad replace them in `order`. DALI reads ahead (prefetch), and past its list's end that list's
        start again: a file there that broke after its batch, and that the pass reads no more, failed a good
        batch ("DALI failed on a batch read from" its files, the broken one not named). The pass goes on over
        the rest, as the torch loader's, whose next pass meets the file (skip_bad: replaced from there on)."""
        ahead = (_PREFETCH + 1) * self.batch_size
        window, left = order[start:start + ahead], set(order[start:].tolist())
        behind = [i for i in order[listed:listed + ahead] if i not in left]
        bad = self._find_bad(window) or self._named_by_dali(err, window)
        passed = [] if bad else self._find_bad(behind) or self._named_by_dali(err, behind)
        if not bad and not passed:
            names = "\n".join(f"  {p}" for p, _ in self._pairs(window))
            raise DatasetError(f"DALI failed on a batch read from:\n{names}\n{_cause(err)}") from None
        if bad and not self.skip_bad:
            error = DatasetError(f"cannot decode:\n{describe_bad([(p, r) for _, p, r in bad])}")
            error.files = [p for _, p, _ in bad]
            raise error from None
        if self.skip_bad:
            self._record_skips([(p, r) for _, p, r in bad + passed])
            self._bad.update(i for i, _, _ in bad + passed)
            self._dali_only.update(i for i, _, r in bad + passed if r == _DALI_FAILS)
        return self._replace_bad(order)

    def _replace_bad(self, order):
        if not self._bad:
            return order
        return np.array([self._substitute(i) if self._known_bad(i) else i for i in order])

    def __iter__(self):
        self._check_open()  # (now: iter() of a closed loader is the error)
        return self._epoch()

    def _epoch(self):
        # The pass takes its epoch at its first batch, as the torch loader's: taken at iter(), an iterator made
        # before set_epoch(e) read the epoch before, and of two made before either ran, the first run the later.
        epoch, start = self._begin_epoch()
        if start == len(self):  # (a reader of no files is an error)
            if self._active is not None:  # a pass, if empty, ends an earlier one, as any other: its pipeline too
                self._free()
            return
        # The files replaced are looked at again as this rank's shard meets them (_known_bad), and its shard alone
        # is replaced: on the training's thread before the pass's first batch, a decode of each replaced file and
        # of its substitute; those of the whole epoch's order were every rank's, each rank's world times its own.
        self._retry = self._bad - self._dali_only
        mine, done = self._replace_bad(self.shard.order(epoch)), start * self.batch_size
        token = object()
        # A pass left unfinished (an iterator still alive) left the pipeline mid-shard: rebuilt, and
        # that pass is over (it raises if resumed), as it would otherwise read this pass's batches. A pass
        # from batch `start` reads the files from there on alone (its crops and flips are the samples'). A
        # kept pipeline serves a pass over the files its reader lists alone: not one from batch k, nor one
        # where a file broken since gave a substitute a substitute; nor one after a file of its list's start
        # changed since it was read (the last pass's reads past its end: this pass would take it as it was).
        base = done
        positions = mine[base:]  # labels index this list
        if (self._pipe is None or self._random or self._active is not None
                or not np.array_equal(self._reads, positions) or self._stat(positions) != self._seen):
            self._pipe = None
            self._pipe = self._build(positions, epoch)
        self._active = token
        finished = False
        try:
            for _ in range(len(self) - start):
                self._check_open()  # (a pass left open across close(): its pipeline is gone)
                if self._active is not token:
                    raise RuntimeError("a newer pass over this DALI loader has started; one pass at a time "
                                       "(this iterator is over)")
                while True:
                    try:
                        outs = self._pipe.run()
                        n = min(self.batch_size, len(mine) - done)
                        labels = np.array(outs[-1].as_tensor()).reshape(-1)[:n]
                        images = 1 if self.layout == "single" else 2
                        self._check_sizes(outs[images:-1], labels, positions)
                        # in the try: a batch of images of unequal sizes (a file replaced since the checks)
                        # fails here, not in run()
                        tensors = [self._tensor(o) for o in outs[:images]]
                        break
                    except RuntimeError as err:
                        self._pipe = None   # a DALI pipeline is unusable after an error
                        mine = self._recover(err, mine, done, base)
                        base = done
                        positions = mine[base:]
                        self._pipe = self._build(positions, epoch)
                if not np.array_equal(labels, np.arange(done - base, done - base + n)):
                    # (_Draws fed each sample's crop and flip by this order: they would be another sample's)
                    raise RuntimeError(f"DALI's reader gave the samples {labels.tolist()} of its list where "
                                       f"{done - base}..{done - base + n - 1} were due")
                batch = {"A": tensors[0][:n]}
                if self.layout != "single":
                    batch["B"] = tensors[1][:n]
                batch["paths"] = [self.samples[positions[j]].path for j in labels]
                done += n
                yield batch
            finished = True  # its pipeline at its list's start again: kept for a pass over that list
        finally:
            if self._active is token:  # else a newer pass owns the pipeline: leave it alone
                self._active = None
                # a random pass's pipeline serves no other (each builds its own): its threads and memory go now
                if not finished or self._random:
                    if self._gpu and self._pipe is not None:
                        # the last batch's copy out of DALI's memory (feed_ndarray: asynchronous on torch's stream)
                        # done before that memory goes back to DALI's pool: once a pass, it waits for the work queued
                        # on the stream (the pass's last steps)
                        torch.cuda.current_stream(self.device).synchronize()
                    self._pipe = None
