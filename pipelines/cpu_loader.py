"""The CPU loader: a torch DataLoader over PIL/numpy transforms, with the reference's semantics.

Random crop offsets and flips come from a generator seeded by (seed, epoch, sample index), so a
batch does not depend on the number of workers or on which worker made it. The workers hand over
uint8 batches, a quarter of float32's bytes through shared memory, pinned memory and the copy to the
device: every step before the scaling to [-1, 1] works on 8-bit images, so scaling last, where the
batch is used (to_unit_float), changes no value. On a CUDA device the batches are pinned by the
DataLoader, copied ahead of use on a side stream and scaled there.
"""
import atexit
import contextlib
import functools
import gc
import logging
import multiprocessing.reduction
import multiprocessing.util
import os
import shutil
import signal
import sys
import threading
import time
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from . import sharding
from .base import PairedLoader
from .errors import DatasetError, none_decodes, plural
from .files import ALIKE, changed_since_checks, load_rgb, local_ranks, usable_cores

# A batch takes milliseconds to make: none for this long means a worker is stuck, and waiting on
# would hang training without a word.
WORKER_TIMEOUT_S = 600
SHARED_MEMORY = "/dev/shm"  # where the workers' batches travel to this process (Linux)
PREFETCH = 2  # batches each worker makes ahead: the DataLoader's prefetch_factor
# A forked worker reaches its init in milliseconds; one that has not in this long is stuck in the fork
# (_start_workers), and the workers are started again, at most WORKER_STARTS times in all.
WORKER_START_S = 30
WORKER_STARTS = 3

log = logging.getLogger("bicyclegan.pipelines")


def shared_memory_free(folder=None):
    """Free bytes in `folder` (default SHARED_MEMORY), or None where there is no such folder."""
    try:
        return shutil.disk_usage(folder or SHARED_MEMORY).free
    except OSError:
        return None


def batch_bytes(batch_size, channels, size):
    """Bytes of a batch as the workers hand it over: uint8, `channels` of A and B together, size (H, W)."""
    return batch_size * channels * size[0] * size[1]


def workers_that_fit(nbytes, free):
    """The most workers whose batches in flight (PREFETCH each, `nbytes` apiece) fit in `free` bytes
    of shared memory, a tenth of it left to whatever else uses it (another loader, NCCL's buffers)."""
    return free * 9 // 10 // (PREFETCH * nbytes)


# A worker hands each batch's shared memory over as a file descriptor, through a Unix socket that
# multiprocessing makes in its temporary folder (TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX). A socket's
# path holds at most this many bytes (sun_path less its NUL); a longer one fails in the worker's
# sending thread, unseen, and the loader waits WORKER_TIMEOUT_S for a batch that never comes.
SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
SOCKET_NAME = "/listener-XXXXXXXX"  # multiprocessing's name in that folder (8 random characters)


def socket_folder_too_long():
    """multiprocessing's temporary folder where the sockets' paths in it would be too long, else None
    (and None where file descriptors do not travel through sockets)."""
    if sys.platform == "win32" or not multiprocessing.reduction.HAVE_SEND_HANDLE:  # (Windows: pipes)
        return None
    folder = multiprocessing.util.get_temp_dir()  # made once a process, under TMPDIR; workers keep it
    return folder if len(os.fsencode(folder + SOCKET_NAME)) > SOCKET_PATH_MAX else None


def _mib(n):
    return f"{n / 2**20:.1f} MiB"


def draw_params(spec, size, rng):
    """(top, left, flip) for an image (half) of size (h, w) after resizing."""
    (rh, rw), (ch, cw) = size, spec.crop
    dy, dx = max(rh - ch, 0), max(rw - cw, 0)
    u = rng.random(3)
    if spec.augment:
        return min(int(u[0] * (dy + 1)), dy), min(int(u[1] * (dx + 1)), dx), spec.random_flip and u[2] < 0.5
    return dy // 2, dx // 2, False


def transform(img, spec, params, nc):
    """PIL image -> uint8 tensor C x H x W: grayscale, resize, crop, flip (to_unit_float scales it)."""
    if nc == 1:
        img = img.convert("L")
    rh, rw = spec.resized_size(img.height, img.width)
    if (rh, rw) != (img.height, img.width):
        img = img.resize((rw, rh), Image.BICUBIC)
    arr = np.asarray(img)
    top, left, flip = params
    if spec.crops:
        arr = arr[top:top + spec.crop[0], left:left + spec.crop[1]]
    if flip:
        arr = arr[:, ::-1]
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.require(arr, requirements="CW"))  # PIL's pixels are read-only


def to_unit_float(pixels, memory_format=torch.contiguous_format):
    """uint8 pixels -> float32 in [-1, 1] on their device, in `memory_format`: (p - 127.5) / 127.5 in
    float32, the loader's values since it scaled in the workers. The divisor is a tensor on the
    device, not a Python number: CUDA divides by a scalar as a multiplication by its reciprocal, which
    is one ulp off for 126 of the 256 values."""
    out = torch.empty(pixels.shape, dtype=torch.float32, device=pixels.device, memory_format=memory_format)
    out.copy_(pixels).sub_(127.5)
    return out.div_(torch.full((), 127.5, device=pixels.device))


def _unit_float_batch(batch, memory_format):
    return {k: to_unit_float(v, memory_format) if k in ("A", "B") else v for k, v in batch.items()}


class _Changed(Exception):
    """A sample whose files decode but no longer fit what the checks found: replaced since."""


class PairedImageDataset(Dataset):
    """Items are keyed (sample index, epoch); the epoch seeds the sample's crop and flip."""

    def __init__(self, samples, layout, spec, seed, skip_bad, output_sizes):
        self.samples, self.layout, self.spec = samples, layout, spec
        self.seed, self.skip_bad = seed, skip_bad
        self.output_sizes = set(output_sizes)  # the (H, W) the checks found: a batch's items share one

    def __len__(self):
        return len(self.samples)

    def _check(self, sample, a, b):
        """The checks' size rules on the decoded images: a file replaced by one of another size after
        the checks made a batch of unequal tensors (torch.stack's traceback, from a worker)."""
        sizes = {sample.path: a.size, sample.b_path: b.size if b is not None else None}
        if why := changed_since_checks(sample, self.layout, self.spec, sizes, self.output_sizes):
            raise _Changed(why)

    def _decode(self, sample):
        """(A, B or None) as PIL RGB images, before the direction swap."""
        if self.layout == "single":
            a = load_rgb(sample.path)
            self._check(sample, a, None)
            return a, None
        if self.layout == "ab_folders":
            a, b = load_rgb(sample.path), load_rgb(sample.b_path)
            self._check(sample, a, b)
            return a, b
        ab = load_rgb(sample.path)
        self._check(sample, ab, None)
        w2 = ab.width // 2  # split before resizing, so A's edge is never blended with B's
        return ab.crop((0, 0, w2, ab.height)), ab.crop((w2, 0, ab.width, ab.height))

    def _item(self, index, epoch, a, b):
        if b is not None and self.spec.direction == "BtoA":
            a, b = b, a
        size = self.spec.resized_size(a.height, a.width)
        params = draw_params(self.spec, size, sharding.sample_rng(self.seed, epoch, index))
        item = {"A": transform(a, self.spec, params, self.spec.input_nc), "paths": self.samples[index].path}
        if b is not None:
            item["B"] = transform(b, self.spec, params, self.spec.output_nc)
        return item

    def __getitem__(self, key):
        """The item, or {"error": message}: a worker's exception would reach the user wrapped in
        its traceback, so errors travel as data and the main process raises them."""
        index, epoch = key
        skipped = []
        for step in range(len(self.samples)):
            i = (index + step) % len(self.samples)
            try:
                a, b = self._decode(self.samples[i])
            except Exception as err:  # PIL's decode errors have several types
                path = self.samples[i].path
                reason = (f"changed since the checks: {err}" if isinstance(err, _Changed)
                          else f"cannot decode ({type(err).__name__}: {err})")
                if not self.skip_bad:  # (the sample's files: the message names its first, whichever failed)
                    return {"error": f"{path}: {reason}", "files": [p for p in (path, self.samples[i].b_path) if p]}
                skipped.append((path, reason))
                continue
            item = self._item(i, epoch, a, b)
            item["skipped"] = skipped
            return item
        return {"error": none_decodes(skipped)}


def collate(items):
    for item in items:
        if "error" in item:
            return item  # the batch fails with its first failed item
    batch = {k: torch.stack([it[k] for it in items]) for k in ("A", "B") if k in items[0]}
    batch["paths"] = [it["paths"] for it in items]
    batch["skipped"] = [s for it in items for s in it["skipped"]]
    return batch


class _EpochSampler(Sampler):
    """Yields (index, epoch) keys of this rank's share of epoch `epoch` (set before each pass).

    It holds the Shard, not the loader: a loader -> DataLoader -> sampler -> loader cycle would
    leave the workers to the cyclic garbage collector, whose DataLoader shutdown waits seconds.
    """

    def __init__(self, shard):
        self.shard, self.epoch, self.start = shard, None, 0  # the loader sets them before each pass

    def __iter__(self):
        # Starting mid-epoch leaves out the samples before `start` unread: no decoding to get there.
        return iter([(int(i), self.epoch) for i in self.shard.order(self.epoch)[self.start:]])

    def __len__(self):
        return self.shard.num_samples - self.start


def prefetch_to(batches, device, memory_format):
    """Copy each batch to the CUDA device and scale it to floats on a side stream while the previous
    one is in use."""
    stream = torch.cuda.Stream(device)

    def start(batch):
        with torch.cuda.stream(stream):
            out = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = _unit_float_batch(out, memory_format)
            done = torch.cuda.Event()
            done.record(stream)
        return out, done

    def ready(pending):
        # Wait for this batch's copy only (an event), not for the whole side stream, which by now also
        # holds the next batch's copy.
        batch, done = pending
        current = torch.cuda.current_stream(device)
        current.wait_event(done)
        for v in batch.values():
            if torch.is_tensor(v):
                v.record_stream(current)
        return batch

    pending = None
    for batch in batches:
        nxt = start(batch)
        if pending is not None:
            yield ready(pending)
        pending = nxt
    if pending is not None:
        yield ready(pending)


# The workers leave them to the loading process (Windows has no SIGHUP: the package did not import there)
STOP_SIGNALS = {s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None}
_WAITS_FOR_SIGNALS = hasattr(signal, "sigwaitinfo")  # Linux (not macOS)


def _worker_init(loader_pid, started, worker_id):
    """In a worker just forked with the collector off: freeze what came from the parent (in this
    process alone), then collect as usual, the worker's own garbage only. loader_pid: the process
    that iterates the loader (see _leave_signals_to); started: the loader's flags of its workers'
    starts, this one's set (see TorchLoader._start_workers)."""
    gc.freeze()
    gc.enable()
    _leave_signals_to(loader_pid)
    atexit.register(_end_unfinalised)
    started[worker_id] = 1


def _end_unfinalised():
    """The exit function a worker's init registers: the process ends there, with os._exit, as a forked
    worker ends, not through the interpreter's finalisation (exit functions registered later still run
    first). A worker the spawn method started (macOS's default; any process's after set_start_method or
    under torch.multiprocessing.spawn) finalised its interpreter, and its queue's feeder thread, which
    torch does not wait for (cancel_join_thread), may still be handing a batch over then, in torch's C++
    with the GIL let go. Taking the GIL back in a finalising interpreter, that thread ends through a C++
    destructor and the worker aborts ("terminate called without an active exception"): the loader's
    close() raised "DataLoader worker ... is killed by signal: Aborted", in some one close of ten. The
    code is 0: torch's worker loop ends by returning (its errors travel to the loader as data), and the
    loader takes an exit it did not ask for alike, whatever its code."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # (None, or closed: nothing to flush)
            pass
    os._exit(0)


def _leave_signals_to(loader_pid):
    """SIGINT, SIGTERM and SIGHUP end this worker only when `loader_pid` sends them (DataLoader's terminate,
    multiprocessing's exit), as torch's own SIGTERM handler does for its parent's. Sent to the whole
    process group (a terminal's Ctrl-C, torchrun's signal to each rank's group, SLURM's to every
    process of a job), they are the loading process's to act on: a training that stops cleanly
    needs batches until it does (under torchrun, up to the next log interval), and a worker that
    died of them broke the loader (torch: "DataLoader worker ... is killed by signal"). A worker
    whose loading process is gone ends by torch's own watchdog. Without sigwaitinfo (macOS), which would tell the
    loading process's signal from the group's, the worker ignores them all: a SIGTERM or SIGHUP to the group (a
    closed terminal) killed the workers mid-step, and the training with a traceback and no checkpoint; such a
    worker ends by the loader's shutdown (its queue's end) or torch's watchdog."""
    if not _WAITS_FOR_SIGNALS:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        return
    # Blocked in this thread (since the fork: TorchLoader._batches), and so in every thread started
    # after (the only one at the fork): the signals wait for sigwaitinfo alone.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def wait():
        while signal.sigwaitinfo(STOP_SIGNALS).si_pid != loader_pid:
            pass
        os._exit(0)  # torch's handler's exit for its parent's SIGTERM
    threading.Thread(target=wait, name="worker signals", daemon=True).start()


def _no_workers(num_workers, given, why, fix):
    """0 workers where none can work (why): the default count becomes 0, said in a line with the fix;
    a count the caller gave is refused."""
    if given:
        raise DatasetError(f"num_workers={num_workers}: {why}; use --num_workers 0 (loading in this process), "
                           f"or {fix}")
    log.warning(f"{why}: loading in this process, not the default {num_workers} worker(s); {fix}", extra=ALIKE)
    return 0


@contextlib.contextmanager
def _quiet_about_workers():
    """Without torch's warning of more workers than cores, which the loader says in one line of its own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
        yield


def _batch_error(batch):
    """The DatasetError of a worker's batch that failed, naming its files. Made here, not in a local of the pass
    (TorchLoader._batches): the error's traceback holds the pass's frame, and a local there holding the error made
    a cycle, which kept the loader and its workers until a garbage collection, whose shutdown of them then took
    5 s a worker (torch's join timeout: measured 10 s for 2 workers, where close() takes 0.01 s)."""
    error = DatasetError(batch["error"])
    error.files = batch.get("files", [])
    return error


class TorchLoader(PairedLoader):
    backend = "torch"

    def __init__(self, index, spec, *, num_workers, workers_given=True, **kwargs):
        super().__init__(index, spec, **kwargs)
        if num_workers:
            num_workers = self._fit_socket_path(num_workers, workers_given)
        if num_workers:
            num_workers = self._fit_shared_memory(num_workers, workers_given)
        self.num_workers = num_workers
        # Shared memory the workers inherit (a forked one's) or are handed as they start (a spawned one's)
        self._started = multiprocessing.RawArray("b", num_workers) if num_workers else None
        self._sampler = _EpochSampler(self.shard)
        dataset = PairedImageDataset(self.samples, self.layout, spec, self.seed, self.skip_bad, self.output_sizes)
        if workers_given and num_workers > (cores := usable_cores()):
            log.warning("num_workers=%d is more than the %d cores this process may use: kept as given", num_workers,
                        cores, extra=ALIKE)
        with _quiet_about_workers():  # (torch's UserWarning of it, twice, with its source lines)
            self._loader = DataLoader(
                dataset, batch_size=self.batch_size, sampler=self._sampler, drop_last=self.drop_last,
                # Its own generator for the workers' base seed, drawn whenever an iterator is made (each
                # epoch without workers, once with persistent ones): drawn from torch's global generator,
                # that draw moved the training's z draws, and differently in a resumed run, whose
                # iterator starts afresh. Nothing of the data depends on it (crops: sample_rng).
                generator=torch.Generator().manual_seed((self.seed * 1_000_003 + self.rank) % 2**63),
                num_workers=num_workers, collate_fn=collate, pin_memory=self.device.type == "cuda",
                persistent_workers=num_workers > 0, timeout=WORKER_TIMEOUT_S if num_workers else 0,
                prefetch_factor=PREFETCH if num_workers else None,
                worker_init_fn=functools.partial(_worker_init, os.getpid(), self._started) if num_workers else None)

    def _free(self):
        # The persistent workers (and a CUDA pin thread) live in the DataLoader's iterator, which torch shuts
        # down in its finaliser alone: a pass left half-way (a break, an error) keeps it referenced.
        it, self._loader._iterator = self._loader._iterator, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()  # (torch's teardown, idempotent: workers joined, queues closed)

    @staticmethod
    def _fit_socket_path(num_workers, given):
        """No workers where their batches cannot reach this process (socket_folder_too_long)."""
        folder = socket_folder_too_long()
        if folder is None:
            return num_workers
        return _no_workers(num_workers, given, "the temporary folder's path is too long for the Unix sockets loader "
                           f"workers hand their batches over through ({folder}{SOCKET_NAME}: "
                           f"{len(os.fsencode(folder + SOCKET_NAME))} bytes, at most {SOCKET_PATH_MAX})",
                           "set TMPDIR to a shorter folder, e.g. TMPDIR=/tmp")

    def _fit_shared_memory(self, num_workers, given):
        """The workers to start: a batch that finds no room in SHARED_MEMORY is lost (torch logs 'No
        space left on device' and the loader waits WORKER_TIMEOUT_S for it; containers often get 64
        MiB, Docker's default). The default count is lowered to the workers that fit; a count the
        caller gave is kept with a warning, unless not even one batch fits, where every worker's
        first batch would be lost."""
        free = shared_memory_free()
        if free is None:
            if not sys.platform.startswith("linux"):
                return num_workers  # the platform's own means, not checked here
            # multiprocessing's locks live there too: a worker cannot even start (a bare FileNotFoundError)
            return _no_workers(num_workers, given, f"there is no {SHARED_MEMORY}, through which loader workers "
                               "hand over their batches", "mount a tmpfs there")
        channels = self.spec.input_nc + (self.spec.output_nc if self.layout != "single" else 0)
        # The largest batch: without a crop they keep the files' sizes (batch_size 1 where those differ)
        nbytes = batch_bytes(self.batch_size, channels, max(self.output_sizes, key=lambda hw: hw[0] * hw[1]))
        ranks = local_ranks()  # each checks before any has started its workers: a share each
        fit = workers_that_fit(nbytes, free // ranks)
        if fit >= num_workers:
            return num_workers
        has = f"{SHARED_MEMORY} has {_mib(free)} free{f' for {ranks} ranks' if ranks > 1 else ''}"
        room = (f"{has}, room for the batches of {fit} loader worker(s) ({PREFETCH} each of {_mib(nbytes)}, "
                "a tenth of it left free)")
        fix = "docker run --shm-size=2g gives a container more"
        if not given:
            log.warning(f"{room}: {'loading in this process' if fit == 0 else f'using {fit}'}, not the default "
                        f"{num_workers} worker(s); --num_workers N sets the count, {fix}", extra=ALIKE)
            return fit
        if free // ranks < nbytes:
            raise DatasetError(f"num_workers={num_workers}: {has}, less than one batch{' each' if ranks > 1 else ''} "
                               f"({_mib(nbytes)}): every worker's first batch would be lost (the loader "
                               f"waiting {WORKER_TIMEOUT_S // 60} minutes for it); use --num_workers 0 (loading in "
                               f"this process), or {fix}")
        log.warning(f"num_workers={num_workers}: {room}: a batch that finds no room is lost, and the loader waits "
                    f"{WORKER_TIMEOUT_S // 60} minutes for it; lower --num_workers or the batch size, or {fix}",
                    extra=ALIKE)
        return num_workers

    def _batches(self, token):
        # The first pass forks the workers (then kept). What this process holds must never be collected
        # in them: a worker's collector would run the finalisers of the parent's garbage, e.g. a dropped
        # DALI pipeline, whose destructor then waits for ever for threads that do not exist in the child
        # (seen: a test run hung in a worker); a collection there would also write to every object of a
        # large sample list, unsharing its pages. So the workers are forked with the collector off, and
        # each freezes what it inherited before turning it on (_worker_init). The parent's own collector
        # state and freeze are left as they were (Python 3.12 starts with objects frozen already, so
        # "nothing frozen yet" cannot tell a caller's freeze from none).
        # They are forked with SIGINT and SIGTERM blocked too, which their init leaves to this process
        # (_leave_signals_to): torch sets its own SIGTERM handler in a worker first, which ended one that
        # a signal to the whole group reached before its init. A signal here meanwhile waits for the block's end.
        batches = self._start_workers() if self.num_workers and self._loader._iterator is None else self._iter()
        try:
            for batch in batches:
                if "error" in batch:
                    raise _batch_error(batch)
                if skipped := batch.pop("skipped"):
                    self._record_skips(skipped)
                yield batch
                self._check_open()  # before the next batch is asked of workers close() ended
                self._check_pass(token)  # (before: the workers' iterator a newer pass ran to its end said stop)
        except RuntimeError as err:
            if not str(err).startswith("DataLoader timed out"):
                raise
            raise DatasetError(
                f"no batch from the {self.num_workers} loader worker process(es) in {WORKER_TIMEOUT_S} s: "
                "one is stuck (reading a file from a file system that stopped answering?), or a batch found no "
                f"room in {SHARED_MEMORY} (torch's 'No space left on device' above)") from None

    def _iter(self):
        was_enabled = gc.isenabled()
        gc.disable()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if _WAITS_FOR_SIGNALS else None
        try:
            with _quiet_about_workers():
                return iter(self._loader)
        finally:
            if was_enabled:
                gc.enable()
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _start_workers(self):
        """iter(self._loader), which starts the workers, once each forked worker has reached its init. A fork
        while another thread of this process was making a Python thread state (gloo's, as it lets go of a
        collective's tensors) left the child locked for ever before any of its Python ran (CPython before 3.12
        and 3.11.10, gh-112275): the loader then waited WORKER_TIMEOUT_S for its batches and failed (seen in
        a torchrun launch of the tests). A worker stuck so is killed and the workers started again."""
        for attempt in range(1, WORKER_STARTS + 1):
            self._started[:] = [0] * self.num_workers
            it = self._iter()
            forked = [i for i, w in enumerate(it._workers) if type(w._popen).__module__ == "multiprocessing.popen_fork"]
            end = time.monotonic() + WORKER_START_S
            while (stuck := [i for i in forked if not self._started[i]]) and time.monotonic() < end:
                time.sleep(0.01)
            if not stuck:
                return it
            self._stop_workers(it, [it._workers[i] for i in stuck])
            if attempt < WORKER_STARTS:
                log.warning(f"{plural(len(stuck), 'loader worker process', 'loader worker processes')} did not "
                            f"start in {WORKER_START_S} s (a fork that locked up: Python before 3.12, other threads "
                            f"running, e.g. a process group's); starting the workers again ({attempt} of "
                            f"{WORKER_STARTS - 1} retries)", extra=ALIKE)
        raise DatasetError(f"the loader's worker processes did not start, {WORKER_STARTS} times in a row (forks "
                           f"that locked up); use --num_workers 0 (loading in this process), or Python 3.12 or later")

    def _stop_workers(self, it, stuck):
        """End iterator `it`'s workers, those in `stuck` killed (no Python runs in them to end otherwise)."""
        from torch.utils.data._utils import signal_handling
        if it._worker_pids_set:  # (torch's check of its workers' deaths, which would take the kill for a failure)
            signal_handling._remove_worker_pids(id(it))
            it._worker_pids_set = False
        for w in stuck:
            w.kill()
        self._free()  # (the rest, as close() ends them; a new iterator starts the workers again)

    def __iter__(self):
        self._check_open()  # (now: iter() of a closed loader is the error, as before)
        return self._pass()

    def _pass(self):
        """A pass begins at its first batch, as the DALI loader's: its epoch is taken then (iter() took it at
        once, and the sampler read it only at the first batch: two iterators made before either ran both
        read the later epoch), and an older pass's iterator is over (_check_pass)."""
        epoch, start = self._begin_epoch()
        self._sampler.epoch, self._sampler.start = epoch, start * self.batch_size
        self._active = token = object()
        if self.device.type == "cuda":
            yield from prefetch_to(self._batches(token), self.device, self.memory_format)
        else:
            for batch in self._batches(token):
                yield _unit_float_batch(batch, self.memory_format)

    def _check_pass(self, token):
        """One pass at a time, as the DALI loader: the sampler and the workers' iterator are the loader's, so
        two iterators open at once gave both the newer pass's epoch, or split its batches between them, the
        older epoch never read (a newer pass started after a `break` left the older iterator yielding)."""
        if self._active is not token:
            raise RuntimeError("a newer pass over this loader has started; one pass at a time (this iterator is "
                               "over)")
