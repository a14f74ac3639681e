"""The training loop: data, schedule, logging, sample grids, checkpoints, resume and divergence.

A run folder holds config.json (the resolved config), log.jsonl (one JSON line per log interval),
samples/ (PNG grids), report.html (curves, grids, evaluation; rewritten at each sample interval),
checkpoints/latest.pt, for the demo data eval.json and with tensorboard=True tensorboard/; with
eval_every eval_log.jsonl (one JSON line per evaluation) and with keep_best checkpoints/best.pt. A run
resumed from an earlier checkpoint moves the ones written past it to checkpoints/abandoned_after_step_<S>/.
Launched under torchrun, every rank trains on its shard and rank 0 writes the files.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import itertools
import json
import math
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from bicyclegan.pipelines import DatasetError
from bicyclegan.pipelines.errors import plural
from bicyclegan.pipelines.files import checks_unsaved, inspect_file

from .checkpoint import (
    AUTO,
    BEST,
    LATEST,
    STARTED_FROM,
    OlderFormatError,
    abandoned_folder,
    arithmetic,
    auto_resume,
    check_compatible,
    check_same_networks,
    check_weights_fit,
    config_differences,
    config_of,
    continue_option,
    epoch_name,
    find_checkpoint,
    newest_beside,
    older_run,
    peek_checkpoint,
    read_checkpoint,
    rng_kept,
    rng_state,
    save_checkpoint,
    saved_epochs,
    seed_rng,
    set_rng_state,
    write_state,
)
from .config import BEST as MEASURES
from .config import TrainConfig, check_bool, pow2_depth
from .errors import CheckpointError, ConfigError, DivergenceError, OutputError, RankLostError, WeightsError
from .images import save_grid
from .io import (
    absolute,
    atomic_write,
    check_writable,
    erase_code,
    make_folder,
    redrawn,
    remove_made,
    say,
    to_devnull,
    write_json,
    write_reason,
)
from .model import OPTIMIZER, BicycleGAN, spread_z
from .report import (
    INSTALL_HINT,
    TensorBoardLog,
    grid_step,
    grids_to_keep,
    read_eval_log,
    run_grids,
    tensorboard_writer,
    write_report,
)
from .runtime import (
    Dist,
    SaidOnce,
    build_loader,
    check_data_root,
    check_runnable,
    demo_data_made,
    demo_data_root,
    describe_device,
    device_settings,
    first_only,
    init_distributed,
    launch_env,
    lost_rank,
    pick_device,
    prepare_data_root,
)

try:
    import fcntl
except ImportError:  # Windows: the run folder's lock is not taken there (nothing else of the package needs it)
    fcntl = None

GRID_CANDIDATES = 64  # inputs read to find the sample grids' rows (of one size)
EVAL_LOG = "eval_log.jsonl"  # in the run folder: one JSON line per evaluation during training (eval_every)
EVAL_SEED = 0  # every evaluation of a run draws the same z (evaluate's default seed: its figures compare)
LOCK_FILE = ".lock"  # in the run folder: locked by the training that writes the folder (rank 0)
_HOLDERS = weakref.WeakValueDictionary()  # lock file -> the Trainer of this process that holds it


_LOCKS: set[int] = set()  # the descriptors of the run folders' locks this process holds


def _unlock(fd: int) -> None:
    # Unlocked, not just closed: loader workers forked since hold copies of the descriptor, and a
    # flock lasts while any copy is open (a finished training's folder stayed locked while its
    # trainer, and so its persistent workers, lived).
    _LOCKS.discard(fd)
    fcntl.flock(fd, fcntl.LOCK_UN)  # (taken only where fcntl is)
    os.close(fd)


def _locks_not_inherited() -> None:
    """In a forked child (a loader worker): its copies of the locks' descriptors point at /dev/null. A
    training killed by kill -9 unlocks nothing, and its orphaned workers, until they noticed (seconds),
    kept its folder locked: a --resume at once was refused as "in use by another training, still running".
    (dup2, not close: the number stays taken, so nothing the child opens later gets it and loses it.)"""
    for fd in _LOCKS:
        to_devnull(fd)
    _LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_locks_not_inherited)


def lr_factor(epoch: int, niter: int, niter_decay: int) -> float:
    """The reference's "linear" policy: constant for niter epochs, then linearly towards zero (and
    zero, never negative, past the schedule's end: a negative rate would climb the losses)."""
    return max(0.0, 1.0 - max(0, epoch + 1 - niter) / float(niter_decay + 1))


class Progress:
    """One status line: updated in place on a terminal, printed per log interval otherwise.
    Time left comes from the rate over the last few updates, so a slow stretch early on (or a
    compile) does not skew it for the rest of the run."""

    def __init__(self, total: int, enabled: bool = True, stream=None, window: int = 8, start: int = 0,
                 epochs: int = 1, notes: bool = True):
        """enabled: the status line; notes: the lines of note() (start-up, data), which a run without
        the line still prints (under torchrun rank 0 alone prints either). stream: default the
        sys.stderr of now (a default of sys.stderr itself was the one at import, past any redirect)."""
        self.total, self.enabled, self.epochs, self.notes = total, enabled, epochs, notes
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.erase = erase_code()  # ("": the line padded with spaces over the last one)
        self.shown = 0  # the width of the line on the terminal now
        # (the clock of intervals: a wall clock stepped back made images/s and the ETA huge)
        self.recent = collections.deque([(time.monotonic(), start)], maxlen=window + 1)
        self.on_broken = None  # called once if the stream's reader goes away (the Trainer: stop as on SIGTERM)

    def _write(self, text: str) -> None:
        """Write and flush; a pipe whose reader went away (`train ... | head`) raised BrokenPipeError out of
        the training step, which ended without a word, the steps since the last checkpoint lost, as a
        terminal closed (EIO, after its hang-up) did. Writes stop there (to /dev/null) and on_broken is
        called."""
        if not say(self.stream, text):
            self.enabled = self.notes = False
            if self.on_broken is not None:
                self.on_broken()

    def eta(self, step: int, now: float) -> float:
        t0, s0 = self.recent[0]
        rate = (step - s0) / max(now - t0, 1e-9)
        return (self.total - step) / rate if rate > 0 else 0.0

    def update(self, step: int, epoch: int, img_per_s: float, losses: dict) -> None:
        """epoch: the index of the epoch being trained, from 0 (log.jsonl's); shown from 1, the count
        the per-epoch checkpoints go by (the 10th epoch ends in epoch_10.pt)."""
        now = time.monotonic()
        self.recent.append((now, step))
        if not self.enabled:
            return
        frac = step / max(1, self.total)
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        eta = self.eta(step, now)
        # Significant digits: the KL term starts near 1e-7, which three decimals showed as 0.000
        loss_txt = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
        line = (f"epoch {epoch + 1}/{self.epochs} [{bar}] {step}/{self.total} {100 * frac:3.0f}% "
                f"{img_per_s:6.1f} img/s eta {int(eta) // 60}m{int(eta) % 60:02d}s | {loss_txt}")
        if not self.tty:
            self._write(line + "\n")
            return
        text, self.shown = redrawn(line, f" [{bar}]", self.stream, self.shown)  # (log.jsonl has it all)
        self._write(text)

    def note(self, text: str) -> None:
        if self.notes:
            # over the status line
            over = "\r" + (self.erase or " " * self.shown + "\r") if self.enabled and self.tty else ""
            self._write(over + text + "\n")
            self.shown = 0

    def close(self) -> None:
        if self.enabled and self.tty:
            self._write("\n")


MORE_NAMED = 5  # a damaged checkpoint's refusal names the one to resume from and at most this many others


def _opens(path: Path) -> bool:
    """Whether the checkpoint at `path` opens (its header; not its tensors nor their digest)."""
    try:
        peek_checkpoint(path, "step")
        return True
    except CheckpointError:
        return False


def train_launch(world: int, spec: str | None = None) -> str:
    """The command that trains in `world` processes, as a run of that many resumes (`bicyclegan train`
    alone is one process, which a run of several refuses); the launch's nodes from LOCAL_WORLD_SIZE. spec: the
    model class it trains (class_spec; its --model_cls: a resume without it is refused)."""
    if world == 1:
        return "bicyclegan train" + model_option(spec)
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or world)
    nodes = world // local if world % local == 0 else None
    if nodes == 1:
        return f"torchrun --nproc_per_node {world} -m bicyclegan.engine.cli train" + model_option(spec)
    return (f"torchrun {f'--nnodes {nodes} --nproc_per_node {local}' if nodes else f'({world} processes)'} "
            f"(and this launch's rendezvous options) -m bicyclegan.engine.cli train" + model_option(spec))


class TrainingStopped(Exception):
    """A training stopped by a signal, after writing its checkpoint (Trainer.train): raised as it is for
    SIGTERM and SIGHUP, and as the cause of a KeyboardInterrupt for SIGINT (`except KeyboardInterrupt as e:`
    e.__cause__). signal: the signal.Signals; step; epoch: its index, from 0 (the checkpoint's and
    log.jsonl's; the message counts from 1, as the progress line); checkpoint: the file written."""

    def __init__(self, sig: signal.Signals, step: int, epoch: int, checkpoint: Path, run_dir: Path,
                 launch: str = "bicyclegan train"):
        self.signal, self.step, self.epoch, self.checkpoint = sig, step, epoch, checkpoint
        self._args = sig, step, epoch, checkpoint, run_dir, launch
        super().__init__(f"stopped by {sig.name} at step {step} (epoch {epoch + 1}): checkpoint written to "
                         # (a Python caller's words first: the command stays last, to copy whole)
                         f"{checkpoint} (resume=True resumes it in Python); resume with {launch} --out "
                         f"{shlex.quote(str(run_dir))} --resume")

    def __reduce__(self):  # pickled (a process pool's result): made again from its fields, not its message
        return type(self), self._args


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP while a training runs (a context for Trainer.train): the first one is
    noted in `received`, a plain attribute the loop reads, which stops after the iteration in progress
    (under torchrun at the next log interval or evaluation, where the ranks agree). SIGHUP (the terminal closed: an
    ssh connection dropped) stops as SIGTERM does; it killed the run, the steps since the last checkpoint
    lost. Once one is received, a SIGINT aborts at once (KeyboardInterrupt, as without these handlers)
    and a SIGTERM or SIGHUP changes nothing: SLURM signals every process of a job step and torchrun its
    ranks as well, so a rank may receive two. Python runs signal handlers in the main thread alone, so
    only there are they installed; from another thread (a training thread of a notebook) the process's
    own handling stays, as it does for a signal whose handler was not set from Python (which could not
    be put back) and for one the process ignores (a script's background job starts with SIGINT
    ignored, which Python keeps: the script's Ctrl-C is not the job's; nohup ignores SIGHUP)."""

    # In the order a step says which stopped it where several came (under torchrun, counted over the ranks); Windows
    # has no SIGHUP.
    SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None), signal.SIGINT) if s is not None)

    def __init__(self):
        self.received = None  # the first signal.Signals (SIGTERM also for a stop asked without a signal)
        self.signalled = False  # received by a handler: a signal there is to pass on
        self._previous = {}
        self._held = self._pending = False  # inside holding(); a second SIGINT received there

    @contextlib.contextmanager
    def holding(self):
        """A second SIGINT received inside is raised when it ends, not where it came: in the middle of a
        checkpoint's write, torch's writer (C++) took the KeyboardInterrupt as an error (the process aborted, or
        stopped saying the checkpoint could not be written, the disk to blame), where Ctrl-C twice is to stop at
        once with the last checkpoint intact (which the write then is). A third one raises at once."""
        self._held, self._pending = True, False
        try:
            yield
        finally:
            self._held = False
        if self._pending:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) not in (None, signal.SIG_IGN):
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signalled = True
        if self.received is None:
            self.received = signal.Signals(signum)
        elif signum == signal.SIGINT:
            if self._held and not self._pending:
                self._pending = True
            else:  # (a third one inside holding(): a write that hangs is left at once all the same)
                raise KeyboardInterrupt

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


# --amp fp16's loss scale below this is divergence: the scale (65536 at the start, doubled after 2000 steps the
# GradScaler kept, halved at each it skipped) stays near 65504 / the largest gradient of a healthy run. Below 1 it
# shrinks the gradients and still finds them non-finite: it skips (nearly) every step and the networks never train,
# the losses finite (it fell to 1e-32 over 60 epochs of such a run, which exited 0).
AMP_SCALE_FLOOR = 1.0
# The option that weighs each loss (G_GAN2: bicycle's random-z branch; the other variants name theirs G_GAN), and
# how far above its default a weight is named in a divergence's message (--lambda_L1 1e25 made Adam's moments inf).
LOSS_WEIGHTS = {"G_L1": "lambda_L1", "G_GAN": "lambda_GAN", "G_GAN2": "lambda_GAN2", "z_L1": "lambda_z",
                "kl": "lambda_kl"}
WEIGHT_FAR = 1e3


def mean_over_ranks(sums: dict, count: int, world: int = 1, stop: signal.Signals | None = None,
                    amp: dict | None = None) -> tuple[dict[str, float], signal.Signals | None]:
    """The losses' means over a log interval of `count` steps (sums: name -> summed loss tensor),
    over every rank under torchrun: one small all-reduce, which every rank makes at the same steps,
    so that every rank logs, and judges divergence, alike (one rank raising alone would leave the
    others waiting in their next collective). One of the interval's two host syncs (the other: _log's
    check of the weights, BicycleGAN.nonfinite; none between intervals: tests/test_host_sync.py).
    stop: the signal this rank received (StopSignals), if any; returned with the means is the one
    every rank stops for: the ranks' counts of each signal ride in the same all-reduce (SIGTERM
    wins: a preemption). amp (--amp fp16, Trainer._amp_record): the GradScaler's record of the interval, name ->
    device tensor, read in the same transfer and returned beside the means (this rank's: the gradients are
    averaged, so every rank's scaler skips alike); its "amp_skipped" steps, whose losses `sums` left out, are
    left out of the count too (an interval of skipped steps alone has no means)."""
    names = list(sums)  # the same order on every rank: the same code made the losses
    total = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32) for k in names])
    if world > 1:
        sent = total.new_zeros(len(StopSignals.SIGNALS))
        if stop is not None:
            sent[StopSignals.SIGNALS.index(stop)] = 1  # a fill on the device: no copy, no sync
        total = torch.cat([total, sent])
        dist.all_reduce(total)
    amp = amp or {}
    values = (torch.cat([total, torch.stack([amp[k].float() for k in amp])]) if amp else total).tolist()
    if world > 1:
        counts = dict(zip(StopSignals.SIGNALS, values[len(names):]))
        stop = next((sig for sig in StopSignals.SIGNALS if counts[sig]), None)
    record = dict(zip(amp, values[len(values) - len(amp):]))
    kept = count - record.get("amp_skipped", 0)
    return {**({k: v / (kept * world) for k, v in zip(names, values)} if kept else {}), **record}, stop


def held_out(root: Path) -> str:
    """The split the grids and the evaluations read: val/ (the reference's datasets have train/ and val/),
    else test/, else train/."""
    return next((p for p in ("val", "test") if (root / p).is_dir()), "train")


def data_note(loader, batch_size: int, world: int) -> str:
    """The run's line on its training data (said at its start, and by train --dry-run): samples, batches an epoch
    (on each rank), what each epoch leaves out, the loader."""
    n, what = ((loader.num_threads, "thread") if loader.backend == "dali" else (loader.num_workers, "worker"))
    # Batches are whole (drop_last): the rest of each epoch's shuffled order is left out, which a user with
    # a dataset that batch_size x processes does not divide could not tell from the count of batches.
    left = len(loader.samples) - len(loader) * batch_size * world
    return (f"data: {plural(len(loader.samples), 'sample')}, {plural(len(loader), 'batch', 'batches')} an epoch"
            + (" on each rank" if world > 1 else "")
            + (f" ({left} left out each epoch, the end of its shuffled order: batches are whole)" if left else "")
            + f"; {loader.backend} loader, {plural(n, what)}")


def split_note(cfg: TrainConfig, root: Path) -> str:
    """Which split of `root` the run's sample grids and evaluations read (held_out), in a line (train --dry-run's)."""
    uses = ("the sample grids" + (" and the evaluations" if cfg.eval_every else "")
            + (f" (by which --keep_best {cfg.keep_best} picks best.pt)" if cfg.keep_best else ""))
    if (split := held_out(root)) != "train":
        return f"held-out split: {root / split}, for {uses}"
    return (f"{uses} use the training split: {root} has no val/ or test/ folder; a val/ folder beside train/, of the "
            f"same layout, gives them held-out images")


def _log_step(line: bytes) -> float | None:
    """The step of a log.jsonl line; None for a line of no step (another tool's, or edited: kept wherever a
    resume cuts); a blank or cut-short one (a kill or a full disk mid-write) is past every step, so the cut drops
    it."""
    try:
        row = json.loads(line)
    except ValueError:
        return math.inf
    return row.get("step") if isinstance(row, dict) else math.inf


def _check_resumed_shapes(path: Path) -> None:
    """The weights' shapes of the checkpoint resumed from (read without its tensors) against what its own config
    builds, before the run's model is built: a run folder someone gave you, its config and checkpoint saying ngf 1024
    and holding no weights, was built whole first (18 GB). G, and the other networks it holds (a downloaded model has
    no discriminators). How its config differs from the run's is the resume's own check to say, after; a file that
    cannot be read so is left to the resume's full read, which says what is wrong and names the run's others."""
    try:
        nets, config = peek_checkpoint(path, "nets", "config")
        own = config_of({"config": config}, path)
    except CheckpointError:
        return
    if isinstance(nets, dict):
        check_weights_fit({"nets": nets}, own, True, path, [n for n in own.trained_networks if n == "G" or n in nets])


def _lines_from_end(f, block: int = 1 << 20):
    """(offset, line) of the binary file f's lines, the last first (after a final newline: an empty one)."""
    pos, rest = f.seek(0, os.SEEK_END), b""
    while pos:
        pos -= (n := min(block, pos))
        f.seek(pos)
        first, *lines = (f.read(n) + rest).split(b"\n")  # (first: maybe the end of a line begun before pos)
        offset = pos + len(first) + 1 + sum(len(line) + 1 for line in lines)
        for line in reversed(lines):
            offset -= len(line) + 1
            yield offset, line
        rest = first
    yield 0, rest


def _keep_log_to(path: Path, step: int, what: str) -> bool:
    """Cut the log at `path` after its last line of a step up to `step` (_log_step): the lines after it (later
    steps, a blank or cut-short one) dropped, but a line of no step (another tool's, kept as of step 0); whether
    any was. Its lines are in step order (appended as the run goes, cut so at each resume), so it is read from its
    end back to that line: a resume read a long run's whole log, to drop a few lines or none, and wrote it again
    (500,000 lines: 8 s)."""
    kept, dropped, keep = [], False, 0  # kept: the lines of no step after the cut, the last first
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - 1, 0))
        ends = f.read(1) in (b"", b"\n")  # (in a newline, or empty)
        for offset, line in _lines_from_end(f):
            if (at := _log_step(line)) is None:  # (of no step: kept, as a line-by-line rewrite kept it)
                kept.append(line)
            elif at > step:
                dropped |= offset < size  # (not the nothing after a last newline)
            else:
                keep = offset + len(line)
                break
    if not dropped and ends:  # as it is
        return False

    def write(out):
        with open(path, "rb") as src:
            left = keep
            while left and (chunk := src.read(min(left, 1 << 24))):
                out.write(chunk)
                left -= len(chunk)
        out.write(b"\n" if keep else b"")
        out.writelines(line + b"\n" for line in reversed(kept))
    atomic_write(path, write, what=what)
    return dropped  # (not a last line kept whole, its newline not yet written)


def _even_batch_hint(error, cfg, world):
    """The loader's "fill no batch" error with advice bicycle can take: its "use a batch_size of at
    most 1" (one pair) sent the user to batch 1, which bicycle refuses (its batch is halved between
    the branches), back and forth."""
    most = getattr(error, "batch_at_most", None)
    if cfg.variant != "bicycle" or most is None or (most >= 2 and most % 2 == 0):
        return error
    if most < 2:
        ranks = f" ({world} ranks of 2)" if world > 1 else ""
        advice = (f"; variant=bicycle needs a batch of at least 2 (the first half is encoded, the second "
                  f"lends its real B to D2), so at least {2 * world} samples{ranks}: add pairs or use "
                  f"another --variant")
    else:
        advice = f"; use an even batch_size (variant=bicycle) of at most {most - 1}"
    told = DatasetError(error.what + advice)
    told.from_rank0 = getattr(error, "from_rank0", False)
    return told


# -- where a run starts from: what Trainer refuses of its run folder and checkpoint, and train --dry-run too --
def _auto(resume) -> bool:
    """Whether `resume` is "auto" (AUTO), not a Path named so."""
    return type(resume) is str and resume == AUTO


def resumed_file(ckpt_path: Path, resume, epoch) -> Path | None:
    """The checkpoint that Trainer's resume and epoch resume from (ckpt_path: the run folder's latest.pt), None
    where they resume none; refuses what the options alone tell. Not checked to be there."""
    if _auto(resume):  # (a Path named auto stays a path)
        resume, epoch = auto_resume(ckpt_path.parent.parent, epoch)
    if not isinstance(resume, (str, os.PathLike)):
        resume = check_bool("resume", resume)  # ("no" was a path, 0 and 1 false and true)
    if isinstance(resume, (str, os.PathLike)):
        if epoch is not None:
            raise ConfigError("epoch picks one of the run's own checkpoints; it cannot be combined with "
                              "resuming from a checkpoint path")
        # a run folder: its latest.pt, as init_from takes it (it was "checkpoint RUN does not exist")
        return find_checkpoint(resume) if Path(resume).is_dir() else Path(resume)
    return find_checkpoint(ckpt_path, epoch) if epoch is not None else newest_beside(ckpt_path) if resume else None


def _starting_points(cfg: TrainConfig, ckpt_path: Path, resume, epoch) -> tuple[Path | None, Path | None]:
    """(the checkpoint resumed from, the one whose weights a new run starts from), each None where there is none,
    for Trainer's resume and epoch (ckpt_path: the run folder's latest.pt); refuses what the options alone
    tell, and another config read from the checkpoint's header (_check_config_early)."""
    resume_path = resumed_file(ckpt_path, resume, epoch)
    if resume_path is not None and resume_path.is_file():
        _check_config_early(cfg, resume_path)
    if resume_path is None and cfg.fresh_D and cfg.init_from is None:
        raise ConfigError("fresh_D=True gives a run that starts from a checkpoint's weights (init_from) new "
                          "discriminators; this run starts from none (its networks are all new)")
    # The checkpoint whose weights a new run starts from: init_from's (a run folder's latest.pt; a resumed
    # run has its own and ignores it); a step-0 resume's is its resume_path (_check_resumed).
    return resume_path, find_checkpoint(cfg.init_from) if resume_path is None and cfg.init_from else None


def _rounding_changes(state: dict, cfg: TrainConfig, model: BicycleGAN) -> str:
    """What a resume changes of how the step computes (memory format, compilation, the graph; the layers, device,
    torch and CPU threads as checkpoint.arithmetic records them), as "channels_last True (was False), ..."; ""
    where nothing changed. (Device and impl were the options' words: "device cpu (was auto)" for the same CPU,
    and nothing for "auto" on a GPU resumed as "auto" on a laptop.)"""
    saved, was = state["config"], state.get("arithmetic")  # (a dict: read_checkpoint checked it)
    now = cfg.to_dict()
    changed = []
    options = [("model", "channels_last"), (None, "compile"), (None, "cuda_graph")]
    if not isinstance(was, dict):  # (a checkpoint from before they were recorded: the options' words)
        options += [("model", "impl"), (None, "device")]
    for part, name in options:
        before = (saved.get(part) or {}).get(name) if part else saved.get(name)
        after = now[part][name] if part else now[name]
        if before is not None and before != after:
            changed.append(f"{name} {after} (was {before})")
    if isinstance(was, dict):
        for key, said in arithmetic(model).items():
            if was.get(key) is not None and said is not None and was[key] != said:
                name = "CPU threads" if key == "threads" else key
                changed.append(f"{name} {said} (was {was[key]})")
    return ", ".join(changed)


def _check_config_early(cfg: TrainConfig, resume_path: Path) -> None:
    """Refuse another config from the checkpoint's header, before the data's files are listed and checked:
    a mistyped option was refused after the checks (minutes, on a large dataset met for the first time)
    and after every file --skip_bad leaves out was listed. A file that cannot be peeked at is left to
    _read_resumed, whose full read says what is wrong with it."""
    try:
        step, saved = peek_checkpoint(resume_path, "step", "config")
    except CheckpointError:
        return
    if step and isinstance(saved, dict):  # a step-0 checkpoint lends its weights to a run of other options
        check_compatible(saved, cfg, resume_path)


def _check_not_other_folder(run_dir: Path) -> None:
    """Refuse an --out that holds a dataset, other runs or a report.html, and no run of its own: an empty loop variable
    (`--out runs/$name`) trained into the runs' parent folder, beside them; `for d in runs/*/; do ... --resume auto`
    started a training inside the demo's data, which make demo keeps beside its runs."""
    if not run_dir.is_dir() or any((run_dir / name).exists() for name in ("config.json", "log.jsonl", "checkpoints")):
        return
    if splits := [s for s in ("train", "val", "test") if (run_dir / s).is_dir()]:
        raise OutputError(f"--out {run_dir} holds a dataset ({', '.join(s + '/' for s in splits)}), not a run: give "
                          f"the run a folder of its own, e.g. {run_dir.parent / 'runs' / run_dir.name}")
    if (run_dir / "report.html").exists():  # (a run's own comes with its config.json: a page of the user's, say)
        raise OutputError(f"--out {run_dir} holds a report.html of no run there (no config.json, log.jsonl or "
                          f"checkpoints/), which the run's page would replace: give the run a folder of its own, or "
                          f"move the file away")
    with os.scandir(run_dir) as entries:
        runs = sorted(e.name for e in entries
                      if e.is_dir() and (Path(e.path, "config.json").exists() or Path(e.path, "checkpoints").is_dir()))
    if runs:
        shown = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        raise OutputError(f"--out {run_dir} holds other runs ({shown}), not a run of its own: give the run a folder "
                          f"of its own, e.g. {run_dir / 'new-run'}")


def _other_config(run_dir: Path, cfg: TrainConfig) -> str | None:
    """How the config.json of the run in run_dir differs from `cfg` in what decides the training's results: what a
    resume may not change (config_differences), the weights it started from (init_from, fresh_D) and the data
    folder (a resume compares the files themselves, which a run without a checkpoint did not record); None
    where it does not."""
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        diffs = config_differences(saved, cfg, was="config.json")
        pairs = [(k, saved.get(k), getattr(cfg, k)) for k in STARTED_FROM]
        if cfg.data.dataroot is not None:  # (the demo's data: where out, size and seed say, compared above)
            pairs.append(("data.dataroot", saved["data"].get("dataroot"), cfg.data.dataroot))
    except FileNotFoundError:
        return "it wrote no config.json"
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
        return f"its config.json cannot be read as a run's config ({type(e).__name__}: {e})"

    def same(was, now) -> bool:  # (paths as the run recorded them: absolute)
        return was == now or isinstance(was, str) and isinstance(now, str) and absolute(was) == absolute(now)
    diffs += [f"{k}: config.json {was!r} vs now {now!r}" for k, was, now in pairs if not same(was, now)]
    return "; ".join(diffs) or None


def _check_run_folder(run_dir: Path, resume_path: Path | None, restart: TrainConfig | None = None) -> bool:
    """Refuse a run folder that holds a run this one would not continue, and a checkpoint to resume from that
    is not there. restart: the config of a --resume auto run that resumes nothing, which starts again a run of
    the same config (_other_config) that stopped before its first checkpoint (a job killed then, and requeued,
    was refused on every restart); whether it does. Reads only (Trainer locks the folder first)."""
    ckpt_path = run_dir / "checkpoints" / LATEST
    started = [p for p in (ckpt_path, run_dir / "log.jsonl", run_dir / "config.json") if p.exists()]
    if started and (old := older_run(run_dir, elsewhere=True)) is not None:  # ("pass --resume": it cannot be)
        raise old
    how = continue_option(ckpt_path.parent)  # --resume, --epoch N (epoch checkpoints only) or None
    if started and resume_path is None:
        if how is None:
            # (not beside a best.pt, an evaluation's weights that a new start would mix with its own)
            fresh = restart is not None and not (ckpt_path.parent / BEST).exists()
            if fresh and (other := _other_config(run_dir, restart)) is None:
                return True
            raise CheckpointError(f"{run_dir} already holds a run that stopped before its first checkpoint "
                                  f"({started[0].name}, no checkpoint): nothing to resume; delete the folder "
                                  f"to start again there, or choose another --out"
                                  + (f" (--resume auto starts it again with the config it started with alone: "
                                     f"{other})" if fresh else ""))
        python = "resume=True" if how == "--resume" else f"resume=True, epoch={how.split()[-1]}"
        raise CheckpointError(f"{run_dir} already holds a run ({started[0].name}); pass {how} ({python} in Python) "
                              f"to continue it or choose another --out")
    if resume_path is not None and not resume_path.exists():
        if resume_path.resolve() == ckpt_path.resolve():  # the folder's own, not there: None or --epoch N
            why = (f" (the run kept per-epoch checkpoints only: continue it with {how})" if how else
                   " (the run there stopped before its first checkpoint: start it again in a new --out)"
                   if started else "")
        else:  # a path given (a typo: the folder's run was said to have stopped before its first checkpoint)
            go_on = "--resume with no path" if how == "--resume" else how  # (--epoch N takes no path)
            why = " (no such file" + (f"; {go_on} continues the run in {run_dir}" if how else "") + ")"
        raise CheckpointError(f"--resume: no checkpoint at {resume_path}{why}")
    if started and resume_path is not None and resume_path.resolve().parent != ckpt_path.parent.resolve():
        # A checkpoint from elsewhere into a folder holding a run (the same `--resume CKPT` command run
        # again, whose default --out held its first continuation): the resume dropped that run's log
        # and grids past the checkpoint's step, and its next save replaced the run's latest.pt.
        raise CheckpointError(f"{run_dir} already holds a run ({started[0].name}), and {resume_path} is "
                              f"not one of its checkpoints: continuing it there would drop that run's log past "
                              f"the checkpoint's step and replace its checkpoints; continue the run in "
                              f"{run_dir} with --resume (no path), or {resume_path} into a new --out")
    return False


def _read_resumed(resume_path: Path, ckpt_path: Path) -> dict:
    """The checkpoint resumed from; one of the run's own that cannot be read (damaged, truncated) is said
    with the run's others to resume from, where the line named the file alone, as if it were the only one."""
    try:
        return read_checkpoint(resume_path)
    except OlderFormatError:  # kept for the version that wrote it: not "or delete the run first"
        raise
    except CheckpointError as e:
        folder = ckpt_path.parent
        if resume_path.parent.resolve() != folder.resolve():
            raise
        # each with train()'s keywords for it: a Python caller has no flags to pass
        epochs = [(f"--resume --epoch {n}", f"epoch={n}", epoch_name(n)) for n in reversed(saved_epochs(folder))]
        best = [(f"--resume {shlex.quote(str(folder / BEST))}", f"resume={str(folder / BEST)!r}", BEST)
                ] if (folder / BEST).is_file() else []
        # The newest that opens, and a few more: each opened (a header: 23 ms) to name none that is damaged too, not
        # all of them (a run of 400 epoch files took 25 s to say so, and named them all on one line); best.pt next
        # to the newest (the one a --keep_best run would most likely go back to: it was last, beyond those named)
        others = [o for o in epochs[:1] + best + epochs[1:] if o[2] != resume_path.name]
        good, seen = [], 0
        for o in others:
            seen += 1
            if _opens(folder / o[2]):
                good.append(o)
                if len(good) > MORE_NAMED:
                    break
        if good:
            (cli, py, _), rest = good[0], [o[2] for o in good[1:]]
            more = len(others) - seen
            how = f"; resume from another of the run's checkpoints instead: {cli} ({py} in Python" + (
                f"; the others: {', '.join(rest)}" if rest else "") + (
                f" and {more} more, not opened to see whether they open" if more else "") + ")"
        else:
            # ("start it again" there was refused: the folder holds a run)
            how = (f"; the run kept no other checkpoint to resume from: start it again in a new --out, or delete "
                   f"{shlex.quote(str(folder.parent))} first (--save_epoch_freq N also keeps one every N epochs)")
        raise CheckpointError(f"{e}{how}") from e


def _check_resumed(state: dict, cfg: TrainConfig, resume_path: Path, run_dir: Path, world: int) -> None:
    """Refuse the checkpoint resumed from (its contents: state) where the run cannot continue it, from what
    is known before the data is read (the batches an epoch and the samples are the Trainer's to compare); set
    cfg's init_from and fresh_D as the run records them: a step-0 checkpoint (import-official, download model)
    lends its weights to a new run, as init_from does (_check_start_from), a later one continues its run."""
    if state["step"] == 0:
        if (run_dir / "log.jsonl").exists():
            raise CheckpointError(f"{run_dir} already holds a run; continue it with --resume (no path), or "
                                  f"start from {resume_path} in a new --out")
        _check_start_from(state, cfg, resume_path)
        return
    if cfg.fresh_D and not state["config"].get("fresh_D"):  # else dropped below without a word
        raise ConfigError(f"fresh_D=True gives a new run new discriminators, and {resume_path} (step "
                          f"{state['step']}) continues a run, which keeps its own: for new ones start a new run "
                          f"from its weights with init_from (--init_from)")
    for k in STARTED_FROM:  # the weights this run started from are its checkpoint's to say
        setattr(cfg, k, state["config"].get(k, getattr(TrainConfig, k)))
    check_compatible(state["config"], cfg, resume_path)
    saved = state.get("world", world)
    if saved != world:
        raise CheckpointError(
            f"{resume_path} was written by a run of {saved} process(es), this one has {world}: "
            f"resuming replays each rank's share of the data and its random draws, which needs the same "
            f"number ("
            + ("one process: bicyclegan train, without torchrun" if saved == 1 else
               f"torchrun with {saved} processes in all, e.g. --nproc_per_node {saved} on one machine")
            + f"); with another number, start a new run from its weights: --init_from "
            f"{shlex.quote(str(resume_path))}{model_option(state.get('model_spec'))} --out NEW (step 0, the learning "
            f"rate's schedule anew)")


def _check_start_from(state: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse the checkpoint at `path` (its contents: state) as the weights of a new run of `cfg` where its
    networks are not this run's, and set cfg's init_from and fresh_D as the run records them. A new run from
    a checkpoint's weights has its own options and starts at step 0 (fine-tuning, or a new schedule or batch
    size). Taken: G and E, and D and D2 unless fresh_D (or the checkpoint's were never trained: import-official
    without them). Not taken: the optimisers (Adam's moments followed another schedule, and a different lr or
    betas would be fought by them), the AMP scaler, the step and epoch, the random streams (this run's seed
    draws its own) and the log interval. The moving average of G (ema) starts afresh from the checkpoint's G:
    the source's average followed its run, and this one reaches back over this run's steps only (as any run's)."""
    imported = state.get("imported")  # import-official's checkpoints say which networks hold weights
    fresh_d = cfg.fresh_D or (imported is not None and not {"D", "D2"} & set(imported))
    taken = [n for n in cfg.trained_networks if not (fresh_d and n in ("D", "D2"))]
    # Before the networks' options: a variant without an encoder records the default nef and netE it never
    # built (the command line refuses them for it), which were named as differences to match first.
    if missing := [n for n in taken if state["nets"].get(n) is None]:
        variant = state["config"].get("variant")
        raise CheckpointError(f"{path} holds no {' or '.join(missing)} (its run trained none), which this run "
                              + (f"trains: variant {variant} has no encoder to start {cfg.variant}'s from; start "
                                 f"this run afresh, or from a checkpoint of a variant with one" if "E" in missing
                                 else "trains: pass --fresh_D for new discriminators"))
    check_same_networks(state["config"], cfg, path, discriminators_free=fresh_d)
    # Where the weights came from, in config.json, the report and every checkpoint of the run.
    cfg.init_from, cfg.fresh_D = str(Path(path).resolve()), fresh_d


def _check_length(cfg: TrainConfig, total_steps: int, step: int) -> None:
    """Refuse a run whose length (total_steps: max_steps, else the schedule's iterations) ends before the step
    its checkpoint reached."""
    if total_steps < step:
        if cfg.max_steps is not None:
            raise ConfigError(f"max_steps={cfg.max_steps} is below the step the checkpoint reached "
                              f"({step}): nothing to train; give a larger --max_steps")
        # Without max_steps the schedule sets the length: named are its options, not max_steps (never given).
        raise ConfigError(f"niter {cfg.niter} + niter_decay {cfg.niter_decay} epochs are {total_steps} "
                          f"iterations of this data, below the step the checkpoint reached ({step}): "
                          f"nothing to train; give a longer schedule (--niter_decay, --niter)")


def _check_starting_point(cfg: TrainConfig, resume_path: Path | None, init_path: Path | None, run_dir: Path,
                          world: int) -> tuple[dict | None, int]:
    """The checkpoint the run resumes (resume_path) or takes its weights from (init_path) read whole, its digest
    checked, and refused where the run cannot go on from it, with a max_steps below its step: (its contents, the step
    the run starts at). Run by the Trainer and train --dry-run alike, in this order, once the run folder is judged and
    before the data's files are listed and checked (minutes on a large dataset: the Trainer read the checkpoint after
    them, and refused a --max_steps below its step, or a damaged file, only then). Sets cfg's init_from and fresh_D as
    the run records them (_check_resumed, _check_start_from)."""
    step, state = 0, None
    if resume_path is not None:
        _check_resumed_shapes(resume_path)  # (from the weights' shapes alone, before a model is built)
        state = _read_resumed(resume_path, run_dir / "checkpoints" / LATEST)
        _check_resumed(state, cfg, resume_path, run_dir, world)
        step = state["step"]
    elif init_path is not None:
        state = read_checkpoint(init_path)
        _check_start_from(state, cfg, init_path)
    if cfg.max_steps is not None:  # (without it the length is the data's: epochs of its batches)
        _check_length(cfg, cfg.max_steps, step)
    return state, step


# -- what the data gives the run: the Trainer's checks once its loader is made, and train --dry-run's too --
def _training_loader(cfg: TrainConfig, root: Path, device: torch.device, rank: int, world: int):
    """The run's loader of root/train (every file checked), its refusal with bicycle's advice on the batch."""
    try:
        return build_loader(cfg.model, cfg.data, root, "train", device=device, batch_size=cfg.batch_size,
                            seed=cfg.seed, rank=rank, world=world,
                            memory_format=torch.channels_last if cfg.model.channels_last else torch.contiguous_format)
    except DatasetError as e:
        raise _even_batch_hint(e, cfg, world) from None


def _grid_loader(cfg: TrainConfig, root: Path, device: torch.device):
    """The sample grids' inputs, one at a time (a preprocess that keeps sizes, none or scale_width, may give several
    sizes, and a grid's rows are those of the first input's size), from the held-out split (held_out). Only the
    first GRID_CANDIDATES inputs are read, so only they are checked (as inference_data does): on a dataset without
    val/ or test/ the whole training set was checked a second time at every start (100,000 files: 7.9 s more, with
    the checks cached)."""
    loader = build_loader(cfg.model, first_only(cfg.data, GRID_CANDIDATES), root, held_out(root), device=device,
                          batch_size=1, shuffle=False, augment=False)
    # A size the U-Net cannot take was G's ValueError, a traceback at the first grid, after training up to it and
    # before its checkpoint.
    try:
        _check_unet_sizes(cfg, loader, grid_of=root / held_out(root))
    except ConfigError:
        loader.close()
        raise
    return loader


def _total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The run's length: max_steps, else the schedule's epochs of this data."""
    return cfg.max_steps if cfg.max_steps is not None else (cfg.niter + cfg.niter_decay) * steps_per_epoch


def _check_graphable(cfg: TrainConfig, loader) -> None:
    if cfg.cuda_graph and len(loader.output_sizes) > 1:
        raise ConfigError(f"cuda_graph=True replays one captured shape, and preprocess={cfg.data.preprocess} "
                          f"keeps the images' {len(loader.output_sizes)} sizes; use a cropping "
                          f"preprocess or leave --cuda_graph out")


def samples_digest(samples: list, root: Path) -> str:
    """A digest of the training files' names (relative to the data folder) and sizes, in the loader's order (which
    the epochs' permutations index): the same for a copy of the dataset elsewhere (a cluster job's local disk);
    another dataset of as many files differs, in its sizes where the names are alike (the reference's datasets
    are all named 1_AB.jpg, 2_AB.jpg, ...)."""
    digest = hashlib.sha256()
    for s in samples:
        for p in (s.path, s.b_path):
            if p is not None:
                try:
                    size = os.stat(p).st_size
                except OSError:  # (gone since the checks: the loader says so, naming it)
                    size = -1
                digest.update(os.fsencode(os.path.relpath(p, root)) + b"\0%d\0" % size)
    return digest.hexdigest()


def _check_same_data(state: dict, path: Path, loader, root: Path, digest: str) -> None:
    """Refuse to continue the run of checkpoint `path` (its contents: state, past step 0) on data that reorders its
    epochs: another count of batches an epoch or of samples, or other samples' names or sizes (digest: the data's
    samples_digest, made once by the caller)."""
    saved, now = state.get("steps_per_epoch"), len(loader)
    if saved is not None and saved != now:
        raise CheckpointError(
            f"{path} was written with {saved} batches per epoch, the data now gives "
            f"{now} ({root}): resuming replays the epoch's order, which needs "
            f"the same images and batch size")
    # The epoch's order is a permutation of the samples: another count reorders every epoch, also where
    # the batches an epoch come out the same (7 pairs and 6 at batch 2: a resume onto other data went on).
    samples = state.get("samples")  # absent from checkpoints written before it was kept
    if samples is not None and samples != len(loader.samples):
        raise CheckpointError(
            f"{path} was written by a run of {samples} training samples, the data now holds "
            f"{len(loader.samples)} ({root}): resuming replays the epoch's order, which needs "
            f"the same images; to train on this data, start a new run from its weights with --init_from")
    # As many files, other ones (another dataset of the same size, resumed with another --dataroot): the run went
    # on, each epoch's order now another dataset's.
    saved_digest = state.get("samples_digest")  # absent from checkpoints written before it was kept
    if saved_digest is not None and saved_digest != digest:
        raise CheckpointError(
            f"{path} was written by a run on other training files: the names or sizes of the {samples} samples in "
            f"{root} (relative to it) are not the run's; resuming replays the epoch's order, which needs the same "
            f"images (a copy of the dataset elsewhere is fine); to train on this data, start a new run from its "
            f"weights with --init_from")


def _check_schedule(cfg: TrainConfig, total_steps: int, steps_per_epoch: int, step: int, world: int) -> None:
    """Refuse a run that ends before its checkpoint's step, or runs past the learning-rate schedule."""
    _check_length(cfg, total_steps, step)
    epochs = cfg.niter + cfg.niter_decay
    if total_steps > epochs * steps_per_epoch:
        # Past the schedule the rate is 0: the iterations would change nothing (the reference's
        # rule alone would even turn the rate negative there).
        raise ConfigError(
            f"max_steps={cfg.max_steps} runs past the learning-rate schedule: niter {cfg.niter} + niter_decay "
            f"{cfg.niter_decay} epochs are {epochs * steps_per_epoch} iterations of this data "
            f"({steps_per_epoch} an epoch{' on each rank' if world > 1 else ''}), where the rate "
            f"reaches 0; lower --max_steps or raise --niter / --niter_decay")


def _check_unet_sizes(cfg: TrainConfig, loader, grid_of: Path | None = None) -> None:
    """Refuse the loader's images of a size the U-Net cannot take: the training images', or with grid_of (the
    held-out folder the sample grids read) the grids' inputs, whose rows take the first input's size."""
    m = 2 ** cfg.model.unet_depth
    sizes = list(loader.output_sizes.items())[:1 if grid_of else None]
    if odd := [(size, path) for size, path in sizes if size[0] % m or size[1] % m]:
        (h, w), path = odd[0]
        if grid_of is not None:
            what = f"the sample grids' inputs from {grid_of}"
            instead = ", or held-out images of the training images' size"
        else:
            # Images of one size under preprocess none: the U-Net can take them as they are, its depth derived
            # from that size (--load_size and --crop_size alone, which the words "other sizes" pointed to, do
            # not change a netG=unet_256's depth).
            own = (f"; or, at the images' own size, --netG unet --crop_size {h} --crop_width {w} (a U-Net of "
                   f"{pow2_depth(h, w)} levels)" if cfg.data.preprocess == "none" and cfg.model.num_downs is None
                   and len(loader.output_sizes) == 1 and pow2_depth(h, w) >= 2 else "")
            what, instead = "the training images", f" or other load/crop sizes{own}"
        raise ConfigError(
            f"preprocess={cfg.data.preprocess} makes {what} {w}x{h} (W x H; e.g. {path}), and "
            f"this U-Net (num_downs {cfg.model.unet_depth}) takes sides that are multiples of {m}: use a "
            f"cropping preprocess (resize_and_crop, crop, scale_width_and_crop){instead}")


def _check_data_fits(cfg: TrainConfig, loader, root: Path, state: dict | None, resume_path: Path | None, step: int,
                     world: int, digest: str | None = None) -> None:
    """What the run refuses once its loader has checked the files of root/train, by the Trainer and train --dry-run
    alike, in this order: one captured shape of several sizes, a resume (state, past step 0) onto data that reorders
    its epochs (digest: the data's samples_digest, made here where None), a length that ends before `step` or past
    the schedule, and sizes the U-Net cannot take."""
    _check_graphable(cfg, loader)
    if step:
        _check_same_data(state, resume_path, loader, root, digest or samples_digest(loader.samples, root))
    _check_schedule(cfg, _total_steps(cfg, len(loader)), len(loader), step, world)
    _check_unet_sizes(cfg, loader)


def _nonfinite_in(state: dict) -> dict[str, int]:
    """BicycleGAN.nonfinite(optimizers=True)'s counts of a checkpoint's contents, its model not built: train
    --dry-run's (the Trainer counts them on its device once its model holds them)."""
    groups = {n: list(sd.values()) for n, sd in state["nets"].items()}
    if isinstance(state.get("ema"), dict):
        groups["G_ema"] = list(state["ema"].values())
    for n, opt in (state.get("optimizers") or {}).items():
        groups[n + OPTIMIZER] = [t for st in opt["state"].values() for t in st.values()]
    # Counted where a tensor's sum is not finite alone (a finite sum has no NaN or inf in it): 0.25 s a gigabyte on
    # one CPU thread, where counting every tensor's took 4.5 s
    counts = {n: sum(int((~torch.isfinite(t)).sum()) for t in ts
                     if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t.sum()))
              for n, ts in groups.items()}
    return {n: c for n, c in counts.items() if c}


def _diverged_checkpoint(path: Path, bad: dict[str, int], spec: str | None) -> DivergenceError:
    """The refusal of a resume from the checkpoint at `path`, which holds non-finite values (bad: nonfinite's
    counts), by a run of the class `spec` names (class_spec): the Trainer's once loaded, and train --dry-run's."""
    return DivergenceError(f"{path} holds {BicycleGAN.describe_nonfinite(bad)}: the run diverged before this "
                           f"checkpoint was saved, and a resume from it would not train; go on in a new run from its "
                           f"weights: --init_from {shlex.quote(str(path))}{model_option(spec)} --out NEW")


# -- the evaluations during training (eval_every): made ready and checked by the Trainer and train --dry-run --
def _evaluation(model, cfg: TrainConfig, root: Path, dist):
    """An evaluation of the grids' split (held_out) with the run's evaluation options."""
    from .evaluate import Evaluation
    try:
        return Evaluation(model, root, phase=held_out(root), num=cfg.eval_num, metrics=cfg.eval_metrics,
                          lpips_backbone=cfg.lpips_backbone, lpips_linear=cfg.lpips_linear,
                          fid_weights=cfg.fid_weights, dist=dist,
                          keep_loader=False)  # (run at --eval_every: the files checked again then)
    except (ConfigError, DatasetError, WeightsError) as e:  # (its advice names evaluate's options: train's too)
        raise type(e)(f"the evaluations during training (--eval_every {cfg.eval_every}): {e}") from e


def _eval_samples(cfg: TrainConfig) -> int:
    """The random z per input of the evaluations during training: eval_samples. A model without z (pix2pix,
    nz 0) draws one output per input whatever eval_samples says, and its lines say 1 (compared with
    eval_samples, such a run was refused its own resume); Evaluation.run refuses it more than 1."""
    return cfg.eval_samples if cfg.model.nz else 1


def _eval_protocol(cfg: TrainConfig, ev) -> dict:
    """What makes two evaluations' figures comparable, as eval_log.jsonl's lines say it."""
    return {"split": ev.phase, "metrics": list(ev.chosen), "n_inputs": ev.n_inputs,
            "n_samples": _eval_samples(cfg), "seed": EVAL_SEED}


def _eval_rows(run_dir: Path) -> list[dict]:
    """The lines of the run's evaluation log, as its report reads them (a line cut short by a kill, or without a
    whole step, left out: such a line was kept, as of step 0, and a resume stopped on its missing step)."""
    return read_eval_log(run_dir / EVAL_LOG)


def _evaluations_kept(run_dir: Path, step: int, resume_path: Path | None, steps_per_epoch: int
                      ) -> tuple[list[dict], dict | None]:
    """The run's evaluation lines and what its best.pt holds (None: none, or a new run's) as a run resumed from
    `step` (0: a new run) keeps them once it set aside what was written past its checkpoint (Trainer._truncate_log):
    known before that, so that _check_evaluations refuses before the run folder is changed."""
    if not step:
        return _eval_rows(run_dir), None
    folder = run_dir / "checkpoints"
    best_path = folder / BEST
    best = peek_checkpoint(best_path, "best")[0] if best_path.exists() and best_path not in _later_checkpoints(
        folder, step, resume_path, steps_per_epoch) else None
    return [row for row in _eval_rows(run_dir) if row["step"] <= step], best


def _check_tensorboard(run_dir: Path, implied: bool) -> None:
    """Refuse a run that logs to TensorBoard without its package; implied: the run's own choice (it logged there
    before), which --no-tensorboard turns off."""
    try:
        tensorboard_writer()
    except ConfigError as e:
        if not implied:
            raise
        raise ConfigError(f"{run_dir} logs to TensorBoard ({run_dir / 'tensorboard'}), which needs the tensorboard "
                          f"package: {INSTALL_HINT}; or resume with "
                          f"--no-tensorboard (tensorboard=False in Python)") from e


def _check_evaluations(cfg: TrainConfig, ev, rows: list[dict], best: dict | None, run_dir: Path, root: Path) -> None:
    """Refuse keep_best's measure outside the evaluations' metrics (or encoded_l1 without B), evaluations that
    would not compare with those of the run's log so far (rows), and a best.pt (best: what it holds) kept by
    another measure than keep_best."""
    chosen = ev.chosen
    if set(chosen) <= {"l1", "lpips"}:  # (the others measure any model's outputs)
        # Both measure the outputs' diversity (no pair: one output per input) and l1 the encoded output too: a
        # model without z and without E had an eval_log.jsonl of nulls, every evaluation's time for nothing.
        diversity = cfg.model.nz > 0 and _eval_samples(cfg) > 1
        encoded = "l1" in chosen and ev.model.E is not None and ev.has_B
        if not (diversity or encoded):
            why = ("a model without z (nz 0) has one output per input" if not cfg.model.nz
                   else "eval_samples=1 draws one output per input")
            lack = ("" if "l1" not in chosen else "; and no encoded L1 without an encoder E" if ev.model.E is None
                    else f"; and no encoded L1 without B images in {root / ev.phase}")
            raise ConfigError(f"eval_every={cfg.eval_every}: the evaluations would measure nothing "
                              f"({', '.join(chosen)}): no diversity where {why}{lack}; "
                              + ("--eval_samples 2 or more, " if cfg.model.nz else "")
                              + f"add fid (--eval_metrics {','.join([*chosen, 'fid'])}), or leave --eval_every out")
    if cfg.keep_best and (metric := MEASURES[cfg.keep_best][0]) not in chosen:
        given = cfg.eval_metrics or "none: evaluate's default for this data"
        raise ConfigError(f"keep_best={cfg.keep_best} is measured by the metric {metric}, and this run's "
                          f"evaluations measure {', '.join(chosen)} (eval_metrics={given}): "
                          + ("palette needs the demo data" if metric == "palette" else f"add {metric}"))
    if cfg.keep_best == "encoded_l1" and not ev.has_B:  # no B to encode: no measure, no best.pt
        raise ConfigError(f"keep_best=encoded_l1 measures G(A, E(B)) against B, and the evaluations' split "
                          f"{root / ev.phase} holds inputs alone (no B images): give it a "
                          f"B/ folder, or leave --keep_best out")
    now = _eval_protocol(cfg, ev)
    if rows and (then := {k: rows[-1].get(k) for k in now}) != now:
        raise ConfigError(
            f"the run's evaluations so far ({run_dir / EVAL_LOG}, up to step {rows[-1]['step']}) measured "
            + ", ".join(f"{k} {then[k]}" for k in now if then[k] != now[k]) + "; this run's would measure "
            + ", ".join(f"{k} {now[k]}" for k in now if then[k] != now[k]) + " (--eval_metrics, --eval_num, "
            f"--eval_samples): one log would hold figures that do not compare; resume with the run's options, "
            f"or move {EVAL_LOG} and checkpoints/{BEST} away to evaluate afresh")
    if cfg.keep_best and best and best["measure"] != cfg.keep_best:
        raise ConfigError(f"keep_best={cfg.keep_best}, and the run's checkpoints/{BEST} (step {best['step']}) "
                          f"was kept by {best['measure']}: resume with --keep_best {best['measure']}, "
                          f"or move {BEST} away to keep the best by {cfg.keep_best} from here")


def _later_checkpoints(folder: Path, step: int, resume_path: Path, steps_per_epoch: int) -> list[Path]:
    """The checkpoints in `folder` written past `step`, the one resumed from (resume_path) continued from there:
    later epoch_N.pt, and latest.pt and best.pt of a later or unreadable step."""
    later = [folder / epoch_name(e) for e in saved_epochs(folder) if e * steps_per_epoch > step
             and (folder / epoch_name(e)).resolve() != resume_path.resolve()]
    for path in (folder / LATEST, folder / BEST):
        if path.exists() and path.resolve() != resume_path.resolve():
            try:
                saved = peek_checkpoint(path, "step")[0]
            except CheckpointError:
                saved = None  # unreadable: kept aside rather than replaced (latest.pt) or refused
            if saved is None or saved > step:
                later.append(path)
    return later


# -- the run folder's lock --
def _in_use(run_dir: Path) -> CheckpointError:
    return CheckpointError(f"{run_dir} is in use by another training, still running: wait for it "
                           f"to end (then continue the run with --resume), or choose another --out", transient=True)


def _idle_holder(lock: Path):
    """The Trainer of this process that holds the lock file `lock` and never trained (a notebook cell run again,
    the old one still held by its variable): a new Trainer of the folder takes its place (_lock_run_folder)."""
    holder = _HOLDERS.get(str(lock.resolve()))
    return holder if holder is not None and not holder._training else None


def _check_not_in_use(run_dir: Path) -> None:
    """Refuse a run folder whose lock another training holds, as Trainer._lock_run_folder does, reading only: a
    shared lock, which a descriptor open for reading takes, is refused where an exclusive one is held, and is let
    go at once. A Trainer of this process that never trained would give the run its place (_idle_holder)."""
    path = run_dir / LOCK_FILE
    if _idle_holder(path) is not None or fcntl is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: no training holds the folder (and an unreadable one is the run's to find)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(run_dir) from None
    except OSError:  # a file system without locks: the run trains unguarded
        pass
    finally:
        os.close(fd)  # (the shared lock with it)


def _check_run_writable(run_dir: Path) -> None:
    check_writable(run_dir, "the run folder")
    # The folders a run continued writes into, which a copied or shared run folder may not let it: found at
    # the first save (the steps since lost), or by a resume that had set aside its later checkpoints first.
    for sub, what in (("checkpoints", "the run's checkpoints"), ("samples", "the run's sample grids")):
        if (run_dir / sub).is_dir():
            check_writable(run_dir / sub, what, "make it writable to continue the run there")


def check_start(cfg: TrainConfig, resume: bool | str | Path = False, epoch: int | None = None,
                world: int = 1, say: Callable[[str], None] | None = None) -> TrainConfig:
    """What Trainer(cfg, resume, epoch) in `world` processes refuses before its first step, by the same functions
    in its words, reading only (train --dry-run): the device and what this machine cannot run, the data folder,
    the run folder (another training holding it included) and the checkpoint it resumes or starts from, the
    data's files as its loaders check them (the check cache read, not written), the steps and image sizes they
    give, and the evaluations' options (eval_every) against the run's evaluation log and best.pt. Returns the
    config as the run records it (init_from and fresh_D: a resumed run's from its checkpoint, a new run from a
    checkpoint's weights that file's). Left to the run: the demo data where it is not made yet (the run makes
    it; with it the checks that read the data, the evaluations' weights files included) and TensorBoard's
    package. say: called with the lines on the data a run says at its start (data_note), and its held-out split."""
    cfg = TrainConfig.own_copy(cfg, "check_start")  # (the caller's unchanged)
    rank, _, local_rank = launch_env()
    rank = rank if world > 1 else 0
    # init_distributed's device (pick_device), without starting the process group
    device = pick_device(cfg.device, local_rank, world)
    check_runnable(cfg, device)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / "checkpoints" / LATEST
    resume_path, init_path = _starting_points(cfg, ckpt_path, resume, epoch)
    if cfg.data.dataroot is not None:
        check_data_root(cfg)
    # (the Trainer's _check_run_folder, in its order: the lock is taken once the folder is known to be writable)
    _check_run_writable(run_dir)  # (creates nothing)
    _check_not_other_folder(run_dir)
    _check_not_in_use(run_dir)
    restarting = _check_run_folder(run_dir, resume_path, cfg if _auto(resume) else None)
    state, step = _check_starting_point(cfg, resume_path, init_path, run_dir, world)
    if cfg.data.dataroot is not None:
        root = Path(cfg.data.dataroot)
    elif not demo_data_made(root := demo_data_root(cfg.out, cfg.model.size, cfg.seed)):
        if say:
            say(f"data: the demo data, which the run makes in {root} first")
        return cfg  # the run makes it
    with checks_unsaved(), _training_loader(cfg, root, device, rank, world) as loader:
        _check_data_fits(cfg, loader, root, state, resume_path, step, world)
        if step and (bad := _nonfinite_in(state)):  # (the Trainer's _load, once its model holds the checkpoint)
            raise _diverged_checkpoint(resume_path, bad, state.get("model_spec"))
        if rank == 0:
            _grid_loader(cfg, root, device).close()  # (built for its checks of the files)
        if cfg.eval_every:
            rows, best = ([], None) if restarting else _evaluations_kept(run_dir, step, resume_path, len(loader))
            with torch.random.fork_rng(devices=[]):  # (its weights are never used: the caller's generator untouched)
                model = BicycleGAN(cfg, device=device, training=False)  # (G and E: what an evaluation runs)
            ev = _evaluation(model, cfg, root, Dist())
            _check_evaluations(cfg, ev, rows, best, run_dir, root)
        if say:
            say(data_note(loader, cfg.batch_size, world))
            say(split_note(cfg, root))
    return cfg


class Trainer:
    """Train `cfg` into the run folder cfg.out. resume=True continues it from its latest checkpoint
    (newest_beside; epoch=N: from checkpoints/epoch_N.pt); resume=PATH from that checkpoint; resume="auto" from its
    newest checkpoint where it has one, else starts it (auto_resume), again where a run of its config stopped there
    before its first checkpoint (_check_run_folder). cfg.init_from (any checkpoint, or a run folder's latest.pt) and a
    resume=PATH at step 0 (import-official, download model) only lend their weights: a new run with its own options,
    from step 0 (fine-tuning; see _check_start_from). A resumed run ignores init_from: it keeps the one its checkpoint
    records.
    tensorboard=True also logs to <run>/tensorboard; None (the default) only where a continued run logged
    there before. model_cls: the model trained, BicycleGAN or a subclass of it (its own loss terms, its own
    train_step; None: BicycleGAN), built from cfg; its checkpoints record its name, and a resume with another one
    says so.
    on_log: called with each row of log.jsonl as it is written (rank 0's; a dict: step, epoch, lr, img_per_s and
    the interval's mean losses, "diverged" on a divergence's), for a tracker of one's own; an error it raises is
    said once, and the training goes on."""

    def __init__(self, cfg: TrainConfig, resume: bool | str | Path = False, progress: bool = True,
                 epoch: int | None = None, tensorboard: bool | None = None, model_cls: type | None = None,
                 on_log: Callable[[dict], None] | None = None):
        if model_cls is None:
            model_cls = BicycleGAN
        elif not (isinstance(model_cls, type) and issubclass(model_cls, BicycleGAN)):
            raise TypeError(f"model_cls must be BicycleGAN or a subclass of it, got {model_cls!r}")
        if on_log is not None and not callable(on_log):
            raise TypeError(f"on_log must be a function of a log row (a dict), got {on_log!r}")
        self._model_cls, self._on_log = model_cls, on_log
        self._lock = None  # rank 0 holds the run folder until train() ends
        self._training = self._superseded = False  # superseded: a later Trainer took the folder over
        self._made_folder, self._made_lock_file = None, False  # what a failed start removes again
        self._restarting = False  # rank 0's: a run that never saved, started again (_check_run_folder)
        self._stop = None  # train()'s StopSignals: a Trainer trains once
        self._stop_requested = False  # request_stop() before train()
        self._on_log_failed = False  # (its error said once)
        self._said = SaidOnce()  # the data's warnings, while it starts and while it trains
        progress, tensorboard = check_bool("progress", progress), check_bool("tensorboard", tensorboard, optional=True)
        # The caller's device settings and random generators, which the start changes (the run's seeds), are
        # put back when it ends; train() puts the run's in place while it trains (self._rng: as the start left
        # them), and the caller's back after.
        try:
            with self._said:
                cfg = TrainConfig.own_copy(cfg, "train")  # our own: the data root gets resolved below
                self.dist = init_distributed(cfg.device)
                self.rank, self.world, self.main = self.dist.rank, self.dist.world, self.dist.main
                self.device = self.dist.device
                with device_settings(self.device), rng_kept(self.device):
                    self._setup(cfg, resume, progress, epoch, tensorboard)
        except BaseException:
            self._release(failed=True)
            if getattr(self, "loader", None) is not None:
                self.loader.close()  # its workers, which a later check's refusal left running
            raise

    def _setup(self, cfg, resume, progress, epoch, tensorboard) -> None:
        self.run_dir = Path(cfg.out)
        self.ckpt_path = self.run_dir / "checkpoints" / LATEST

        def start():
            check_runnable(cfg, self.device)
            self.resume_path, self.init_path = _starting_points(cfg, self.ckpt_path, resume, epoch)
            if cfg.data.dataroot is not None:  # a data folder the run cannot train on, before the run folder is made
                check_data_root(cfg)
        # Every rank judges the same options and files alike, so refuses alike: each_decides makes the refusal
        # rank 0's one line under torchrun, where each rank printed its own (a bad --epoch, say).
        self.dist.each_decides(start)
        self._restart_cfg = cfg if _auto(resume) and self.resume_path is None else None
        # Rank 0 alone holds the folder and so judges it; every rank stops on its refusal.
        self.dist.main_decides(self._check_run_folder)
        # The checkpoint resumed or started from, read and judged before the data (as the dry run does).
        started = [None]
        self.dist.each_decides(lambda: started.__setitem__(0, _check_starting_point(
            cfg, self.resume_path, self.init_path, self.run_dir, self.world)))
        state, step = started[0]
        self.is_demo = cfg.data.dataroot is None
        self.data_root = prepare_data_root(cfg, self.dist)
        # Absolute (sample/evaluate find the data through it from any folder), its links kept: a dataset reached
        # through a link (data -> data_v2) was recorded as the link's target, which re-pointing the link left stale
        cfg.data.dataroot = absolute(self.data_root)
        self.cfg = cfg

        seed_rng(cfg.seed, self.device)  # identical initial weights on every rank
        self.model = self._model_cls(cfg, device=self.device)
        self.model.cfg = cfg  # the run's own copy, whose init_from and fresh_D a resume sets: its checkpoints record it
        # Every rank builds its loader: the ranks split the file checks between them (pipelines/files.py).
        # Its batches come in the layout the networks use (train_step's conversion is then a no-op).
        self.loader = _training_loader(cfg, self.data_root, self.device, self.rank, self.world)
        # (now, with the file checks, not in the first save: a million files take seconds)
        self._samples_digest = samples_digest(self.loader.samples, self.data_root)
        self._divergence_logged = False  # (log.jsonl has the line that says so)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = _total_steps(cfg, self.steps_per_epoch)
        self.step, self.epoch = 0, 0
        # The losses summed since the last log line, and over how many steps: kept in checkpoints, so
        # that a resumed run's first line averages the same steps as an uninterrupted run's.
        self.log_sums, self.log_count = {}, 0
        self.log_skipped = 0  # (--amp fp16: the steps the GradScaler skipped, then each network's: _leave_out)
        self.saved_step = None  # step of the checkpoint on disk, if any
        self.saved_path = None  # and which file it is: latest.pt, an epoch's, or the one resumed from
        self.latest_written = None  # the step of this run's last latest.pt (every rank's)
        self.rng_to_restore = None
        self.graphed = None  # the captured step (cuda_graph), made from the first batch
        self.evaluation = None  # this rank's evaluate.Evaluation of the held-out split (eval_every)
        self.best = None  # what checkpoints/best.pt holds: {"measure", "value", "step"} (rank 0's)
        self.eval_owed = None  # the step whose evaluation a stop skipped, until one is made (rank 0's)

        def fit():
            _check_data_fits(cfg, self.loader, self.data_root, state, self.resume_path, step, self.world,
                             self._samples_digest)
            if self.resume_path is not None:
                self._load(state)
            elif self.init_path is not None:
                self._take_weights(state, self.init_path)
        # The data fitted to the checkpoint and this run (the steps it leaves, the images' sizes), and the checkpoint
        # loaded: judged alike by every rank, as start's (and no collective among them).
        self.dist.each_decides(fit)
        # The checkpoint's contents, loaded: let go before the grids' and evaluations' set-up (the reference model's
        # is a gigabyte, with Adam's moments; read in fit, it was let go there).
        state = started[0] = None
        # Rank 0 alone draws the grids (the other ranks need not read, and check, the sample files) and
        # writes the TensorBoard log.
        self.sample_A = self.sample_B = self.sample_z = self.tb = None
        # None: as the run did. A continued run logs on where it logged: the stop's line says to resume with
        # --resume alone, which left the rest of the run out of its TensorBoard log without a word.
        implied = tensorboard is None and self.saved_step is not None and (self.run_dir / "tensorboard").is_dir()

        def rank0_checks():
            self.sample_A, self.sample_B, self.sample_z = self._fixed_samples()
            if cfg.eval_every:
                self._prepare_validation()  # every check and weights file before step 1
            if tensorboard or implied:
                _check_tensorboard(self.run_dir, implied)
        self.dist.main_decides(rank0_checks)
        if cfg.eval_every and self.world > 1:
            # Every rank measures a share of each evaluation: the others' made ready as rank 0's was
            # (whose refusal, said once, all have heard above).
            self.dist.each_decides(lambda: self.main or self._make_evaluation())
        # Grid data URIs and the log's curves, so a report rewrite encodes only the grids shown anew and parses only the
        # log lines added; made before the resume's own rewrite (_drop_later_views), which parsed a long log whole once
        # more (500,000 lines: 15 s of the resume)
        self.report_cache = {}
        # The start's first writes to a run folder it did not make, once every check above passed: a resume
        # refused by a check after them (the grids' files, the evaluations' options, TensorBoard's package)
        # had set aside the later checkpoints, cut the logs and replaced latest.pt, then refused to train.
        if self.saved_step is not None:
            self.dist.main_decides(self._truncate_log)
        elif self._restarting:
            self.dist.main_decides(self._start_again)
        if tensorboard or implied:
            def make_tensorboard_log():  # (its event file opened as the training begins: _say_start)
                self.tb = TensorBoardLog(self.run_dir / "tensorboard", cfg.to_dict(),
                                         purge_step=self.step + 1 if self.resume_path is not None
                                         or self._restarting else None)
            self.dist.main_decides(make_tensorboard_log)
        seed_rng(cfg.seed * 1000 + self.rank, self.device)  # each rank draws its own z
        # A resumed run draws on from where the checkpoint's generators were (the loaders draw nothing
        # from torch's generator, so nothing between here and the first step moves them).
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore, self.device)
        elif self.saved_step is not None:
            # A checkpoint holding rank 0's generators alone: they would give every rank rank 0's z
            # draws, so this rank starts a stream of its own.
            seed_rng((cfg.seed * 1000 + self.rank) * 1_000_003 + self.step, self.device)
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)  # begun by the run's end (max_steps)
        self.progress = Progress(self.total_steps, progress and self.main, start=self.step, notes=self.main,
                                 epochs=self.epochs)
        self.progress.on_broken = self.request_stop
        self._rng = rng_state(self.device)  # the run's generators, from here on train()'s alone

    def _check_run_folder(self) -> None:
        _check_run_writable(self.run_dir)
        _check_not_other_folder(self.run_dir)
        self._made_folder = make_folder(self.run_dir)  # (its parents too: all removed again by a failed start)
        self._lock_run_folder()  # before the run in it is judged: then no other training's to change
        self._restarting = _check_run_folder(self.run_dir, self.resume_path, self._restart_cfg)

    def _lock_run_folder(self) -> None:
        """Hold an exclusive lock on the run folder: a second training started into the same --out (a
        repeated command, another shell, another host) interleaved its log lines and checkpoints with
        this one's. The lock is a file's: over NFS flock is a byte-range lock, and an exclusive one
        needs a descriptor open for writing, which a folder's never is (the folder's own lock failed
        there, so trainings on a shared disk, where two jobs collide, went unguarded)."""
        path = self.run_dir / LOCK_FILE
        if (idle := _idle_holder(path)) is not None:  # this one takes its place; it no longer trains
            idle._release()
            idle._superseded = True
        if fcntl is None:  # (Windows: unguarded, as on a file system without locks)
            return
        self._made_lock_file = not path.exists()
        read_only = False
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # (the umask decides: a group's run folder)
        except PermissionError:  # another member's lock file, not writable here: flock needs no write access
            fd, read_only = os.open(path, os.O_RDONLY), True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._made_folder, self._made_lock_file = None, False  # the other training's, whoever made them
            raise _in_use(self.run_dir) from None
        except OSError:  # a file system without locks (some network mounts): train unguarded, as before
            os.close(fd)
            if read_only:  # (NFS: its locks need a descriptor open for writing)
                print(f"note: {path} is not writable here and this file system locks only files open for writing: "
                      f"the run folder is not locked against a second training (its owner can make it group-"
                      f"writable: chmod g+w {shlex.quote(str(path))})", file=sys.stderr)
            return
        # Closed by _release, or when the trainer is dropped untrained (a start refused after this point
        # by the caller, an interrupt before train()).
        self._lock = weakref.finalize(self, _unlock, fd)
        _LOCKS.add(fd)
        _HOLDERS[str(path.resolve())] = self

    def _release(self, failed: bool = False) -> None:
        """Let go of the run folder; after a failed start, remove the lock file and the folders again
        where this start made them (every refusal left an empty --out behind, and the folders above it
        that --out named and the start made), the file while still holding its lock."""
        if failed and self._made_lock_file:
            (self.run_dir / LOCK_FILE).unlink(missing_ok=True)
        if self._lock is not None:
            self._lock()  # unlocks and closes the descriptor, once
        if failed and self._made_folder is not None:  # (None too for a start refused before its run folder)
            remove_made(self.run_dir, self._made_folder)  # (the empty ones: what was written stays)

    def _load(self, state: dict) -> None:
        """The checkpoint resumed from, once _check_resumed and _check_data_fits passed it: a step-0 one lends its
        weights alone."""
        if state["step"] == 0:
            self._take_weights(state, self.resume_path)
            return
        self.model.load_training_state(state)
        if bad := self.model.nonfinite(optimizers=True):
            # (Adam's inf moments, which an earlier version saved unchecked: the resume trained a save interval of
            # frozen weights, then named this same file the last good checkpoint. The weights alone are sound.)
            raise _diverged_checkpoint(self.resume_path, bad, class_spec(self._model_cls))
        self.step, self.epoch = state["step"], state["epoch"]
        self.saved_step, self.saved_path = self.step, self.resume_path
        if self.main:
            self._say_resumed_otherwise(state)
        # This rank's own generators and log interval: rank 0's are the file's "rng" and "log_interval", the others'
        # in its rank_ lists (None in a checkpoint from before they were kept: _setup seeds a stream of the rank's).
        self.rng_to_restore = state["rng"]
        if self.rank > 0:
            self.rng_to_restore = (state.get("rank_rng") or [None] * self.world)[self.rank - 1]
        interval = (state.get("log_interval") if self.rank == 0 else
                    (state.get("rank_log_interval") or [None] * self.world)[self.rank - 1])
        if interval:  # absent from checkpoints written before it was kept: the first line is shorter
            self.log_sums = {k: v.to(self.device) for k, v in interval["sums"].items()}
            self.log_count = interval["count"]
            if "skipped" in interval:
                self.log_skipped = interval["skipped"].to(self.device)

    def _say_resumed_otherwise(self, state: dict) -> None:
        """The notes on what the resume from `state` changes, and allows: the model class, the loader, the
        arithmetic."""
        if (trained := state.get("model_class", class_name(BicycleGAN))) != class_name(self._model_cls):
            # (a subclass's run resumed without it: its own loss terms dropped without a word)
            print(f"note: the run trained a {trained} and resumes with a {class_name(self._model_cls)} (model_cls in "
                  f"Python, --model_cls on the command line, which refuses this resume): from here the objective is "
                  f"the latter's",
                  file=sys.stderr)
        if state.get("backend", self.loader.backend) != self.loader.backend:
            # Allowed (a run may move to a machine without DALI): the order, crops and flips are the same,
            # the two backends' bicubic filters are not.
            print(f"note: the run trained with the {state['backend']} loader and resumes with the "
                  f"{self.loader.backend} one: from here its resized images differ from those of an "
                  f"uninterrupted run by the two bicubic filters (a grey level or two, more at sharp edges; the "
                  f"order, crops and flips are the same, and without a resize the values may differ in a float's "
                  f"last bit)", file=sys.stderr)
        if changed := _rounding_changes(state, self.cfg, self.model):
            # Allowed (the same training), and said: a resume is otherwise exact to the bit
            print(f"note: the run resumes with {changed}: the same training, whose arithmetic may round otherwise "
                  f"from here (its losses and weights then part from an uninterrupted run's in the last digits)",
                  file=sys.stderr)

    def _take_weights(self, state: dict, path: Path) -> None:
        """A new run from the weights of the checkpoint at `path`, once _check_start_from passed them (and set
        cfg.fresh_D): G and E, and D and D2 unless fresh_D, into this run's networks (see _check_start_from
        for what is taken and what is not)."""
        # This run's networks: its own D and D2 where they start fresh (of its own D options); a network the
        # checkpoint has and this run does not (D of a run with lambda_GAN 0 now) is left out.
        nets = {n: net.state_dict() if self.cfg.fresh_D and n in ("D", "D2") else state["nets"][n]
                for n, net in self.model.networks().items()}
        try:
            self.model.load_training_state({"nets": nets, "optimizers": {}, "scaler": {}})
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{path} does not fit this run: {str(e).splitlines()[0]}") from e
        self.init_path = path

    def _truncate_log(self):
        """Drop what was written after the checkpoint we resume from, log lines and sample grids: they
        will be written again (a grid of the discarded steps would show in the report as the latest).
        The checkpoint becomes the run's latest.pt; the checkpoints written past it are moved aside
        (_set_aside_later_checkpoints). Rank 0's (main_decides)."""
        moved = self._set_aside_later_checkpoints()
        later = False  # whether anything of the steps past the checkpoint was written
        for grid in run_grids(self.run_dir):
            if grid_step(grid) > self.step:
                grid.unlink()
                later = True
        for name, what in (("log.jsonl", "training log"), (EVAL_LOG, "evaluation log")):
            if (self.run_dir / name).exists():
                later |= _keep_log_to(self.run_dir / name, self.step, what)
        if later:
            self._drop_later_views()
        # best.pt of the discarded steps, which holds weights this run will not have had, is set aside above.
        best = self.run_dir / "checkpoints" / BEST
        if best.exists():
            self.best = peek_checkpoint(best, "best")[0]
        elif BEST in moved and self.cfg.keep_best:
            self._best_from_resumed()
        if self.resume_path.resolve() != self.ckpt_path.resolve():
            # Now, not at the first save: a run gone back to an earlier checkpoint (--epoch N) and killed
            # before it was continued by a plain --resume from the later latest.pt, past the log lines
            # dropped above (the next save would have replaced it anyway).
            with open(self.resume_path, "rb") as src:
                atomic_write(self.ckpt_path, lambda f: shutil.copyfileobj(src, f), what="checkpoint",
                             error=CheckpointError)

    def _start_again(self) -> None:
        """What a run of this config that stopped before its first checkpoint wrote (its log lines, evaluations,
        grids and the views of them), which this one, started again in its folder by --resume auto, writes anew:
        removed, where the new lines were appended to the old. Rank 0's (main_decides)."""
        for grid in run_grids(self.run_dir):
            grid.unlink()
        for name in ("log.jsonl", EVAL_LOG):
            (self.run_dir / name).unlink(missing_ok=True)
        self._drop_later_views()
        print(f"note: {self.run_dir} holds a run of this config that stopped before its first checkpoint: --resume "
              f"auto starts it again, its log, evaluations and grids replaced", file=sys.stderr)

    def _drop_later_views(self) -> None:
        """What showed the steps past the checkpoint resumed from: samples/latest.png (the abandoned steps' grid
        to the byte), eval.json (a demo run's final evaluation, of weights set aside) and report.html (their
        step, curves and grids, the grids' links broken), which stayed until the next grid, or for good should
        the resumed run end before it. latest.png becomes the newest grid kept; the report is written again."""
        latest, kept = self.run_dir / "samples" / "latest.png", run_grids(self.run_dir)
        if kept:
            with open(kept[-1], "rb") as src:
                atomic_write(latest, lambda f: shutil.copyfileobj(src, f), what="sample grid")
        else:
            latest.unlink(missing_ok=True)
        (self.run_dir / "eval.json").unlink(missing_ok=True)
        write_report(self.run_dir, cache=self.report_cache)  # (the run's own: its next rewrite parses no line again)

    def _best_from_resumed(self) -> None:
        """best.pt again from the checkpoint resumed from, where its step's evaluation was marked best: a
        run gone back to that step set aside the later best.pt, and the next evaluation, however worse,
        became best.pt while the log still marked this step's (a better value, whose weights the run has).
        The checkpoint's contents with the mark best.pt carries (rank 0's, as _truncate_log)."""
        key = self.cfg.keep_best
        rows = _eval_rows(self.run_dir)  # (as cut above to this step's)
        row = next((r for r in reversed(rows) if r["step"] == self.step), None)
        if row is None or row.get("best") != key or not isinstance(row.get(key), (int, float)):
            return
        state = read_checkpoint(self.resume_path)
        state["best"] = {"measure": key, "value": row[key], "step": self.step}
        write_state(state, self.run_dir / "checkpoints" / BEST)
        self.best = state["best"]

    def _set_aside_later_checkpoints(self) -> list[str]:
        """Move the checkpoints written past the step resumed from (a run gone back to its epoch_N.pt: the
        later epoch_M.pt, latest.pt and best.pt of the continuation it abandons) into a folder of their
        own, checkpoints/abandoned_after_step_<step>/, and say so. Left in place, epoch_M.pt stayed until
        this run wrote it again: `--resume --epoch M` went on along the abandoned continuation, and
        `evaluate --epoch all` mixed the two; latest.pt was overwritten and best.pt deleted. Rank 0's."""
        folder = self.ckpt_path.parent
        later = _later_checkpoints(folder, self.step, self.resume_path, self.steps_per_epoch)
        if not later:
            return []
        aside = abandoned_folder(folder, self.step)
        try:
            aside.mkdir()
            for path in later:  # renames within the folder: nothing is copied, nothing lost
                os.replace(path, aside / path.name)
        except OSError as e:
            raise CheckpointError(f"cannot move the checkpoints written past step {self.step} "
                                  f"({', '.join(p.name for p in later)}) to {aside}: {e.strerror or e}; "
                                  f"nothing was trained") from e
        print(f"note: {self.resume_path.name} is at step {self.step}; the checkpoints written past it "
              f"({', '.join(p.name for p in later)}) are moved to {aside}, so that those in {folder} are this "
              f"run's (train on from one of them with --resume FILE --out NEW; resume=FILE, a new out in Python)",
              file=sys.stderr)
        return [path.name for path in later]

    def _prepare_validation(self) -> None:
        """Rank 0's: the evaluation of the grids' split made ready (every option checked, the metric
        networks loaded), keep_best's measure among its metrics, and, resuming, the same protocol as the
        evaluations the run logged so far and best.pt kept by the same measure."""
        self._make_evaluation()
        if self.resume_path is not None:
            self.eval_owed = peek_checkpoint(self.resume_path, "eval_owed")[0]
        # (a run started again replaces the evaluations logged: _start_again)
        rows, best = ([], None) if self._restarting else _evaluations_kept(
            self.run_dir, self.saved_step or 0, self.resume_path, self.steps_per_epoch)
        if self.eval_owed is not None and rows and rows[-1]["step"] >= self.eval_owed:
            # Made already, by a resume from this checkpoint killed before its next save: made again, the
            # step had two lines, and the second no longer marked best.pt's (a tie keeps the earlier).
            self.eval_owed = None
        _check_evaluations(self.cfg, self.evaluation, rows, best, self.run_dir, self.data_root)

    def _make_evaluation(self) -> None:
        """This rank's evaluation of the grids' split: every rank measures a share of each (validate)."""
        self.evaluation = _evaluation(self.model, self.cfg, self.data_root, self.dist)

    def validate(self, owed_only: bool = False, stop: signal.Signals | None = None) -> signal.Signals | None:
        """Evaluate the model on the held-out split and, where keep_best's measure improved, write
        checkpoints/best.pt. Every rank calls it at the same steps and measures its share of the inputs;
        rank 0 writes the results (under main_decides, so that a full disk stops every rank), and every
        rank takes part in writing best.pt (save gathers their random generators). owed_only: evaluate
        only if the checkpoint resumed from was saved with its evaluation skipped by a stop. stop: the signal
        the ranks agreed to stop for (a rank other than 0 may have received it alone). Returns the signal
        that skipped the evaluation, `stop` or one received before or during it (under torchrun agreed by
        every rank: the training stops at this step, as one process does), else None."""
        go = [not owed_only or self.eval_owed is not None]
        if self.dist.grouped:  # (rank 0 read what the checkpoint and the log owe)
            dist.broadcast_object_list(go, src=0)
        if not go[0]:
            return None
        result = [None]

        def measure():
            result[0] = self._measure(stop)
        try:
            self.dist.each_decides(measure)  # one rank's error (a file changed since the checks) is every rank's
        except DatasetError as e:
            raise self._evaluation_stopped_on_data(e) from e
        if result[0] is None and stop is None:
            # Given up for a signal (on every rank alike: Evaluation.run agrees on it before each batch).
            # Which one, SIGTERM winning as in mean_over_ranks: the ranks stop here, not at the next log
            # interval, where the evaluation owed for this step would be made at that step's weights.
            stop = signal.Signals(self.dist.agree(int(self._stop.received or 0)))
        if self.dist.main_says(lambda: self._record(result[0], stop)):  # keep_best's measure improved
            self.save(self.run_dir / "checkpoints" / BEST, best=self.best)
        return stop if result[0] is None else None

    def _evaluation_stopped_on_data(self, e: DatasetError) -> DatasetError:
        """The error of validate() stopped by the data error `e`: the evaluation's split, not the training data, and
        this step's evaluation, not the next step (the training's data error said both), the step saved first.
        --skip_bad covers it: Evaluation reads it with the run's data options."""
        ev = self.evaluation
        split = ev.root / ev.phase
        if self.saved_step != self.step:
            # This step trained well: its checkpoint, the evaluation owed as a stop leaves it (the resumed
            # run makes it first), where the steps since the last save were lost with the split's file.
            self.eval_owed = self.step
            self.save()
        what = f"the evaluation at step {self.step} (--eval_every {self.cfg.eval_every})"
        if not split.is_dir():  # (the pipelines' "choose one (--phase)" is no option of train's)
            error = DatasetError(f"{what} found no {split}: the held-out split was moved or deleted during the "
                                 f"run; put it back and {self._how_on()} (the evaluation is made first)")
            error.from_rank0 = getattr(e, "from_rank0", False)
        else:
            where = (f"the held-out split {split} (the training data was not the problem)" if ev.phase != "train"
                     else f"{split}, the training data, which it evaluates for want of a val/ or test/ split")
            error = self._data_error(e, f"{what} stopped on {where}", "to leave such files out of the evaluations too")
        error.held_out = True
        return error

    def request_stop(self) -> None:
        """Stops the training as a SIGTERM does (after the iteration in progress, under torchrun at the next log
        interval or evaluation, its checkpoint written; train() raises TrainingStopped), from any thread: a training
        in a notebook's thread, which no signal reaches (Python handles them in the main thread alone), could be
        left only by restarting the kernel, the steps since its last checkpoint lost. Asked before train(), it stops
        after the first iteration; asked after the last one (or of a run with nothing left to train), train()
        returns as it would have. The progress output's reader gone (`train ... | head`) asks it too: the run ends
        as a command whose pipe closes does, but with its work kept."""
        self._stop_requested = True
        if self._stop is not None and self._stop.received is None:
            self._stop.received = signal.SIGTERM

    def _stopping(self, agreed: signal.Signals | None) -> signal.Signals | None:
        return agreed or (self._stop and self._stop.received)  # (no StopSignals outside train())

    def _measure(self, agreed: signal.Signals | None) -> dict | None:
        """Every rank's part of validate(): the evaluation of the model as it is now (its share of the inputs
        under torchrun), or None where a stop signal came before or during it (a preemption gives seconds,
        an evaluation may take minutes)."""
        if agreed or (self.world == 1 and self._stopping(agreed)):  # known alike on every rank: no loader made
            return None
        if bad := self.model.nonfinite():  # said as the log interval's check says it
            raise self._diverged(self.model.describe_nonfinite(bad))
        # Outside the captured step (cuda_graph), as a grid is drawn; compiled networks run eagerly, as
        # `evaluate CKPT` runs them, not compiled again for eval mode and its batch sizes (torch >= 2.6).
        stance = getattr(torch.compiler, "set_stance", None)
        try:
            with stance("force_eager") if stance and self.cfg.compile != "off" else contextlib.nullcontext():
                return self.evaluation.run(_eval_samples(self.cfg), EVAL_SEED,
                                           stop=lambda: self._stopping(agreed) is not None)
        except DivergenceError as e:
            raise self._diverged(str(e)) from e

    def _record(self, result: dict | None, agreed: signal.Signals | None) -> bool:
        """Rank 0's part of validate(): the evaluation's line in eval_log.jsonl, TensorBoard, the progress
        note and the report; for a result of None, the evaluation owed. Returns whether keep_best's
        measure improved."""
        from .evaluate import improves, json_safe
        cfg, ev = self.cfg, self.evaluation
        if result is None:
            return self._owe(f"{agreed.name} received")
        self.eval_owed = None
        key = cfg.keep_best
        improved = key is not None and improves(key, result.get(key), self.best and self.best["value"])
        row = {"step": self.step, "epoch": self.epoch, "split": ev.phase,
               **{k: v for k, v in json_safe(result).items() if k not in ("variant", "dataroot", "phase")}}
        if improved:
            # The line first: should best.pt then fail, the run stops before this step's checkpoint, and
            # a resume drops the line with the step.
            row["best"] = key
            self.best = {"measure": key, "value": result[key], "step": self.step}
        path = self.run_dir / EVAL_LOG
        try:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            raise OutputError(f"cannot write the evaluation log {path} at step {self.step}: "
                              f"{write_reason(e, self.run_dir)}; {self._last_good()}") from e
        if self.tb:
            self.tb.log_eval(result, self.step)
        figures = ", ".join(f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, float))
        self.progress.note(f"evaluation at step {self.step} ({ev.phase}/, {plural(result['n_inputs'], 'input')} x "
                           f"{result['n_samples']} z): {figures}"
                           + (f"; best {key} so far: checkpoints/{BEST}" if improved else ""))
        self.write_report()
        return improved

    def _owe(self, why: str) -> bool:
        """An evaluation skipped for a stop: the checkpoints say so, and the run resumed from one makes it
        before its first iteration (else no line would ever hold this step's figures)."""
        self.eval_owed = self.step
        self.progress.note(f"evaluation at step {self.step} skipped ({why}): the resumed run makes it first")
        return False

    def _fixed_samples(self):
        """The same inputs and z for every grid of the run, from held-out data when there is some (held_out)."""
        self.grid_split = held_out(self.data_root)
        rows = []
        with _grid_loader(self.cfg, self.data_root, self.device) as loader:
            for batch in itertools.islice(loader, GRID_CANDIDATES):
                if not rows or batch["A"].shape == rows[0]["A"].shape:
                    rows.append(batch)
                if len(rows) == min(8, self.cfg.batch_size * 4):
                    break
        z = spread_z(self.cfg.n_samples, self.cfg.model.nz, 1234).to(self.device)
        # A held-out split of inputs alone (val/A without val/B) has no ground truth: the grids show the
        # inputs and their outputs, as sample does for such a folder.
        B = torch.cat([b["B"] for b in rows]).to(self.device) if "B" in rows[0] else None
        return torch.cat([b["A"] for b in rows]).to(self.device), B, z

    def _data_error(self, e: DatasetError, what: str, skip: str, then: str | None = None,
                    unsaved: str = "") -> DatasetError:
        """The data error `e` as the run stopped on it: `what` stopped, on which data; then (after `unsaved`: why
        the step it stopped after is not saved, if it is not) what is intact and how to go on, with --skip_bad
        (`skip`: what it does) where the run does not leave bad files out yet, or `then` in their place."""
        then = then or self._intact() + ("" if self.cfg.data.skip_bad else f" (with --skip_bad {skip})")
        error = DatasetError(f"{what}: {e}\n{unsaved}{then}")
        error.from_rank0 = getattr(e, "from_rank0", False)  # (another rank's, which that rank prints)
        return error

    def _last_good(self) -> str:
        if self.saved_step is None:
            return "no checkpoint was written before it"
        return f"the last good checkpoint is {self.saved_path} (step {self.saved_step})"

    def _how_on(self, skip_bad: bool = False) -> str:
        """How to go on from _last_good (skip_bad: a resume with --skip_bad)."""
        # (a folder whose run never saved is refused to a new run, "start the run again" alone was refused)
        if self.saved_step is None:
            return f"delete {shlex.quote(str(self.run_dir))} and start the run again"
        other = self.saved_path != self.ckpt_path
        python = [f"resume={str(self.saved_path)!r}"] * other + ["cfg.data.skip_bad=True"] * skip_bad
        # (--model_cls after the path: --resume takes the word after it)
        return ("resume it with --resume" + (f" {shlex.quote(str(self.saved_path))}" if other else "")
                + " --skip_bad" * skip_bad + model_option(class_spec(self._model_cls))
                + (f" ({', '.join(python)} in Python)" if python else ""))

    def _init_from(self, path: Path) -> str:
        """The options of a new run of this model class from the weights of the checkpoint at `path`."""
        return f"--init_from {shlex.quote(str(path))}{model_option(class_spec(self._model_cls))}"

    def _resumes_skipping(self, files: list) -> bool:
        """Whether `--resume --skip_bad` takes the run on after `files` failed as a batch was read: the resume refuses
        training files of other names or sizes (samples_digest), and its checks leave out (with --skip_bad) a file that
        fails them, changing the samples, so `files` must pass them again (a file that then fails to decode, as it did
        here, is replaced by the next good sample as the run goes)."""
        return (all(inspect_file(f, self.cfg.data.max_pixels)[1] is None for f in files)
                and samples_digest(self.loader.samples, self.data_root) == self._samples_digest)

    def _intact(self) -> str:
        """_last_good, and how to go on from it (the line a run stopped by an error ends with)."""
        return f"{self._last_good()}: {self._how_on()}"

    def _after_step(self) -> str:
        """"after step N (epoch E)" of the last step finished, N, and the epoch that step trained in ("the end of
        epoch E" where it ended one): once the loader has run out, self.epoch is already the next one's, and a
        stop in the next epoch's first step said "after step 8 (epoch 3)" of a step of epoch 2."""
        if self.step == 0:
            return "before its first step"
        done, rest = divmod(self.step, self.steps_per_epoch)
        return f"after step {self.step} ({f'epoch {done + 1}' if rest else f'the end of epoch {done}'})"

    def _diverged(self, what: str, losses=()) -> DivergenceError:
        """The error of a divergence: `what`, the last good checkpoint, and how to go on. losses: the non-finite
        losses `what` names (none: the weights, the optimisers' state or the loss scale), whose weights far above
        their defaults are named."""
        cfg = self.cfg
        # (--amp off only where it is on: said to a run in full precision, it sent users after what they had)
        amp = " (or --amp off)" if cfg.amp != "off" else ""
        weights = [(loss, opt, getattr(cfg, opt), getattr(TrainConfig, opt)) for loss, opt in LOSS_WEIGHTS.items()
                   if (loss in losses or not losses) and getattr(cfg, opt) > WEIGHT_FAR * getattr(TrainConfig, opt)]
        said = "".join(f"; --{opt} {v:g} ({loss}'s weight) is over {WEIGHT_FAR:g} times its default {d:g}"
                       for loss, opt, v, d in weights)
        if self.saved_step is None:
            how = (f"delete {shlex.quote(str(self.run_dir))} and start the run again with a lower --lr{amp}"
                   + (", or that weight nearer its default" if said else ""))
        else:
            # A resume keeps the run's --lr, --amp and loss weights (it refuses others): "try a lower --lr" was
            # advice a resume refused. A new run from the last good weights takes them.
            init = self._init_from(self.saved_path)
            how = (f"go on from it in a new run from its weights (a resume keeps the run's options): {init} "
                   f"--lr {cfg.lr / 10:g} --out NEW{amp}"
                   + "".join(f", or {init} --{opt} {d:g} --out NEW" for _, opt, _, d in weights))
        return DivergenceError(f"training diverged at step {self.step} (epoch {self.epoch + 1}): {what}{said}; "
                               f"{self._last_good()}; {how}")

    def save(self, path: Path | None = None, epoch: int | None = None, best: dict | None = None):
        """Write checkpoints/latest.pt, or `path` with `epoch` (a per-epoch checkpoint) or `best` (best.pt:
        the measure, its value and the step). Every rank calls it (it gathers their generators); rank 0
        writes."""
        interval = {"count": self.log_count, "sums": {k: torch.as_tensor(v).detach().cpu().clone()
                                                      for k, v in self.log_sums.items()},
                    **({"skipped": self.log_skipped.cpu()} if torch.is_tensor(self.log_skipped) else {})}
        extra = {"model_class": class_name(self._model_cls), "model_spec": class_spec(self._model_cls),
                 "steps_per_epoch": self.steps_per_epoch, "samples": len(self.loader.samples),
                 "samples_digest": self._samples_digest,
                 "backend": self.loader.backend, "world": self.world,
                 "log_interval": interval, **({"best": best} if best else {}),
                 **({"eval_owed": self.eval_owed} if self.eval_owed is not None else {})}
        if self.world > 1 and (bad := self.model.nonfinite(optimizers=True)):
            # The ranks' weights are one (averaged gradients): each finds this and stops here, where
            # rank 0 alone refusing to write (save_checkpoint's check, which one process relies on: write())
            # left the others waiting in the next step's all-reduce.
            raise self._diverged(self.model.describe_nonfinite(bad))
        if self.world > 1:
            # Each rank's own generators (its z draws), so a resumed run draws what every rank of an
            # uninterrupted one would have; the file's "rng" is rank 0's.
            states = [None] * self.world
            dist.all_gather_object(states, (rng_state(self.device), interval))
            extra["rank_rng"] = [rng for rng, _ in states[1:]]
            extra["rank_log_interval"] = [own for _, own in states[1:]]
        # A non-finite loss of a step not skipped, found by a save before the log interval did: kept in the file,
        # it stopped every run resumed from it at the same step. Every rank reads every rank's (gathered) sums.
        if bad := {k: float(v) for own in [interval, *extra.get("rank_log_interval", [])]
                   for k, v in own["sums"].items() if not math.isfinite(v)}:
            raise self._diverged("non-finite " + ", ".join(f"{k} = {v}" for k, v in bad.items())
                                 + " in the losses of the log interval so far", bad)

        def record():
            if path is None:
                self.latest_written = self.step
            # An epoch's checkpoint is a good one too (a run with epoch checkpoints only has no latest.pt); of the two
            # written at one step, latest.pt is named (the one --resume reads).
            if path is None or self.saved_step != self.step:
                self.saved_step, self.saved_path = self.step, path or self.ckpt_path

        def write():
            try:
                with self._stop.holding() if self._stop else contextlib.nullcontext():
                    save_checkpoint(self.model, path or self.ckpt_path, step=self.step,
                                    epoch=self.epoch if epoch is None else epoch, own=extra)
            except DivergenceError as e:
                raise self._diverged(str(e)) from e
            except CheckpointError as e:  # (a full disk): at which step, and the run's way on, as the log's says
                said = str(e).removesuffix("; the previous one is intact")
                raise CheckpointError(f"training stopped at step {self.step}: {said}\n{self._intact()}") from e
            # Rank 0's record once the file is in place: main_decides' broadcast may yet fail (another rank gone
            # meanwhile), and recorded past it, the line named the checkpoint before (--resume epoch_N.pt set this
            # newer latest.pt aside).
            record()
        # A failed write (a full disk) stops every rank: alone, rank 0 left the others in the next step's
        # all-reduce (gloo failed them with a traceback, NCCL until torchrun killed them).
        self.dist.main_decides(write)
        # Every rank's record (an error on any rank names it), set past main_decides, which raised on every rank had
        # the write failed.
        if not self.main:
            record()

    def sample(self):
        """The sample grid of this step and the report: rank 0 draws and writes them, every rank calls it
        (a failed write stops every rank, as save's). Weights gone non-finite since the last log interval stop
        the run here, as a save's check does (every rank finds it: the weights are one), not in a black grid
        shown as the report's latest."""
        if bad := self.model.nonfinite():
            raise self._diverged(self.model.describe_nonfinite(bad))

        def draw():
            try:
                path = save_grid(self.model, self.sample_A, self.sample_B, self.sample_z,
                                 self.run_dir / "samples" / f"step_{self.step:07d}.png",
                                 self.run_dir / "samples" / "latest.png")
            except OutputError as e:  # (as a checkpoint's or the log's: which step, and what to go on from)
                raise OutputError(f"{e} (at step {self.step}); {self._intact()}") from e
            if self.cfg.keep_grids:
                self._thin_grids()
            if self.tb:
                self.tb.log_grid(self.step, path)
            self.write_report()
        self.dist.main_decides(draw)

    def _thin_grids(self) -> None:
        """keep_grids: a grid every sample interval of a long run filled the disk (a 256 px grid is 2-3 MB: the
        reference's edges2shoes schedule wrote ~3,000 of them). A grid that cannot be removed stays (it is one more
        picture, not a lost one)."""
        grids = run_grids(self.run_dir)
        keep = set(grids_to_keep([grid_step(g) for g in grids], self.cfg.keep_grids))
        for g in grids:
            if grid_step(g) not in keep:
                with contextlib.suppress(OSError):
                    g.unlink()

    def write_report(self) -> None:
        """Rank 0's (called within main_decides' work, or after the group ended)."""
        if self.main:
            write_report(self.run_dir, cache=self.report_cache,
                         status={"step": self.step, "total_steps": self.total_steps, "epoch": self.epoch,
                                 "epochs": self.epochs, "grid_split": self.grid_split})  # (_fixed_samples')

    def _leave_out(self, losses: dict, skipped: torch.Tensor) -> dict:
        """--amp fp16: the losses of a step the GradScaler skipped (non-finite gradients of one network or more,
        `skipped` 1 for each: no weight changed) are left out of the interval's sums, and the step counted in
        log_skipped (the steps, then each network's). Such a step's NaN loss stopped the run at the next log
        interval, and a checkpoint that held it stopped every resume at the same step. Device tensors: no sync."""
        dropped = skipped.amax() > 0
        self.log_skipped = self.log_skipped + torch.cat([dropped[None].to(skipped.dtype), skipped])
        return {k: torch.where(dropped, 0.0, v) for k, v in losses.items()}

    def _amp_record(self) -> dict | None:
        """mean_over_ranks' amp: the steps the GradScaler skipped in this interval ("amp_skipped", a log.jsonl
        column), each network's, and its scale now; None without one (amp other than fp16)."""
        scaler = self.model.scaler
        scale = scaler._get_scale_async() if scaler is not None and scaler.is_enabled() else None
        if scale is None or not torch.is_tensor(self.log_skipped):  # (a train_step of one's own that says nothing)
            return None
        return {"amp_skipped": self.log_skipped[0], "amp_scale": scale,
                **{f"amp_skipped_{n}": c for n, c in zip(self.model.optimizers, self.log_skipped[1:])}}

    def _starved(self, amp: dict) -> str | None:
        """What is wrong where the fp16 loss scale fell below AMP_SCALE_FLOOR (amp: _amp_record's, read)."""
        if amp["amp_scale"] >= AMP_SCALE_FLOOR:
            return None
        nets = {n: int(amp[f"amp_skipped_{n}"]) for n in self.model.optimizers}
        worst = [n for n, c in nets.items() if c and c == max(nets.values())]
        return (f"the fp16 loss scale fell to {amp['amp_scale']:.3g} (below {AMP_SCALE_FLOOR:g}): the GradScaler "
                f"found non-finite fp16 gradients at {int(amp['amp_skipped'])} of this interval's {self.log_count} "
                f"steps (" + ", ".join(f"of {n} at {c}" for n, c in nets.items() if c) + ") and skipped them, "
                f"leaving the weights as they were: {', '.join(worst) or 'the networks'} no longer train"
                + ("s" if len(worst) == 1 else ""))

    def _log(self, log, avg: dict, lr: float, ips: float, amp: dict | None = None) -> None:
        if amp:  # (log.jsonl's column of the steps the fp16 GradScaler skipped, left out of the means)
            avg["amp_skipped"] = int(amp["amp_skipped"])
        bad = {k: v for k, v in avg.items() if not math.isfinite(v)}
        starved = None if bad or not amp else self._starved(amp)
        nets = {} if bad or starved else self.model.nonfinite()
        self._write_row(log, avg, lr, ips, diverged=bool(bad or starved or nets))
        self.progress.update(self.step, self.epoch, ips, avg)
        if bad:
            raise self._diverged("non-finite " + ", ".join(f"{k} = {v}" for k, v in bad.items()), bad)
        if starved:
            raise self._diverged(starved)
        if nets:
            raise self._diverged(self.model.describe_nonfinite(nets))

    def _log_divergence(self, log, ips: float) -> None:
        """A divergence found between log intervals (by a save, an evaluation or a grid: each checks the weights)
        left the run folder as it was at the last log interval, a page that looked alive: the interval so far is
        logged, marked, and the page says so, as the log interval's check does. On every rank alike (each found
        it), without the losses' all-reduce: rank 0's means."""
        if self._divergence_logged or not self.log_count and not self.step:
            return
        lr = self.cfg.lr * lr_factor(self.epoch, self.cfg.niter, self.cfg.niter_decay)
        if not self.log_count:
            # Found by a check right after this step's log line (a save's of Adam's state, --log_every 1): that
            # line is marked by one more of its step, with no losses, as the page and a resume read a divergence
            self._write_row(log, {}, lr, None, diverged=True)  # (no steps since that line: no speed, not 0)
            return
        amp = {"amp_skipped": self.log_skipped[0]} if torch.is_tensor(self.log_skipped) else None
        avg, _ = mean_over_ranks(self.log_sums, self.log_count, amp=amp)  # (world 1: no all-reduce)
        if amp:
            avg["amp_skipped"] = int(avg["amp_skipped"])
        self._write_row(log, avg, lr, ips, diverged=True)

    def _write_row(self, log, avg: dict, lr: float, ips: float | None, diverged: bool) -> None:
        """log.jsonl's line of the interval (rank 0's), TensorBoard's; the report too for a diverged one. ips None:
        no speed (a line of no steps)."""
        def write():  # (log: rank 0's open log.jsonl)
            # JSON has no NaN: a non-finite loss is written as null beside "diverged".
            row = {"step": self.step, "epoch": self.epoch, "lr": lr,
                   **({"img_per_s": round(ips, 2)} if ips is not None else {}),
                   **{k: (v if math.isfinite(v) else None) for k, v in avg.items()},
                   **({"diverged": True} if diverged else {})}
            try:
                log.write(json.dumps(row) + "\n")
                log.flush()
            except OSError as e:
                # A full disk or a folder gone read-only: one line naming the file and where to resume
                # from, as the checkpoints' and grids' writes say (a bare OSError came with a traceback).
                with contextlib.suppress(OSError):
                    log.close()  # now, or the close in train() tries the line again and raises over this
                raise OutputError(f"cannot write the training log {self.run_dir / 'log.jsonl'} at step "
                                  f"{self.step}: {write_reason(e, self.run_dir)}; {self._last_good()}") from e
            if self.tb:  # (its scalars skip "diverged")
                self.tb.log_row({**row, **{k: v for k, v in avg.items() if not math.isfinite(v)}})
            if self._on_log is not None:
                try:
                    self._on_log(row)
                except Exception as e:  # (a tracker's network hiccup is no reason to end a training)
                    if not self._on_log_failed:
                        self._on_log_failed = True
                        self.progress.note(f"note: on_log raised {type(e).__name__}: {e} (at step {self.step}; "
                                           f"the training goes on, log.jsonl has every row; said once)")
        self.dist.main_decides(write)  # rank 0's failure stops every rank (see save)
        if diverged:
            self._divergence_logged = True
            self.write_report()  # the page says so (it was left at the last sample interval)

    def train(self) -> Path:
        """Train to the run's last step; returns the run folder. While it trains, from the main thread,
        SIGINT, SIGTERM and SIGHUP stop it cleanly (StopSignals): after the iteration in progress (under torchrun
        at the next log interval or evaluation) it writes checkpoints/latest.pt and the report, then raises
        TrainingStopped (SIGTERM, SIGHUP) or a KeyboardInterrupt caused by one (SIGINT); a signal during start-up
        stops it after its first iteration, one during a save once the save is done, and a second SIGINT
        aborts at once (latest.pt is then the one before). Called from another thread, it leaves the
        process's signal handling as it is (Python's: a KeyboardInterrupt in the main thread alone).
        A Trainer trains once: to go on after a stop, a new one with resume=True."""
        if self._superseded:
            raise CheckpointError(f"this Trainer gave {self.run_dir} to a later Trainer made for the same folder "
                                  f"before it trained: train that one")
        if self._stop is not None:  # its folder, let go of when it ended, may be another training's by now
            raise CheckpointError(f"this Trainer has trained already ({self.run_dir}, to step {self.step}) and let go "
                                  f"of the folder: to train on, make a new Trainer (resume=True continues from the "
                                  f"run's checkpoint)")
        self._training = True
        self._stop = StopSignals()
        if self._stop_requested:  # (request_stop before train)
            self._stop.received = signal.SIGTERM
        run = None
        try:
            with self._stop, self._said, device_settings(self.device), rng_kept(self.device):
                set_rng_state(self._rng, self.device)
                run = self._train()
        finally:  # whatever stops it, before the loop too (config.json unwritable, a broken stderr pipe)
            self._training = False
            if self.tb and (run is None or not self.is_demo):
                # Closed as the training ends, also by an error or a stop (left to the Trainer's collection, a Python
                # caller's process kept its writer thread and open file); not a demo run's that ended: its final
                # evaluation logs to it, then closes it (closed here, its figures went to a second event file).
                self.tb.close()
            self.loader.close()  # its workers end with the training (a Trainer trains once)
            self._release()
        passed = self._stop.received if self._stop.signalled else None
        if self.dist.grouped:
            # Under torchrun one rank's signal after the last log interval reached that rank alone: it ended of it
            # here while the others went on into end_group's barrier, which failed them (RankLostError, exit 2, on a
            # complete run). Every rank passes on the signal one of them received (the largest: SIGTERM winning, as
            # validate's), so they end alike.
            passed = signal.Signals(agreed) if (agreed := self.dist.agree(int(passed or 0))) else None
        if passed is not None:
            # Received after the last iteration's check (during the final save): the run is complete, and the
            # signal goes to the handler it would have found without ours (SIGTERM's default ends the process;
            # SIGINT's raises KeyboardInterrupt: an empty one, in a notebook, said nothing of the run). A stop asked
            # without a signal (request_stop, a reader gone) has none to pass on: raised as a SIGTERM, it killed
            # the notebook's kernel.
            if passed == signal.SIGINT and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                raise KeyboardInterrupt(f"interrupted after the last iteration: the run is complete ({self.run_dir}, "
                                        f"step {self.step})" + ("; its evaluation was not made (train(cfg, "
                                                                "resume=True) makes it)" if self.is_demo else ""))
            signal.raise_signal(passed)
        return run

    def _say_start(self) -> None:
        """config.json, the lines that say what trains on what and from where, and a resumed run's page made its own."""
        cfg = self.cfg

        def begin():
            write_json(self.run_dir / "config.json", cfg.to_dict(), what="run config")
            if self.tb:  # the start made the log; its event file is opened as the training begins (TensorBoardLog.open)
                self.tb.open()
        self.dist.main_decides(begin)
        self.progress.note(f"training on {describe_device(self.device)}"
                           + (f", {self.world} processes" if self.world > 1 else "")
                           + f": {plural(self.total_steps, 'iteration')} of batch {cfg.batch_size} -> {self.run_dir}"
                           # (a resumed run's length is its total: "5 iterations ..., from step 4" ran one)
                           + (f", from step {self.step} ({self.saved_path}), {self.total_steps - self.step} to go"
                              if self.saved_step is not None else "")
                           + (f", from the weights of {self.init_path}" if self.init_path is not None else ""))
        if self.model.impl != cfg.model.impl:  # (engine/model.py's layer_impl)
            self.progress.note("impl auto: torch's layers, since this step runs eagerly on CUDA, where the host's "
                               "launches set the pace and the Triton kernels' cost more; they run in a CUDA graph "
                               "(--cuda_graph) or compiled step, or with --impl triton")
        if cfg.amp == "fp16" and self.device.type == "cpu":  # (a user's flag from a GPU's command line)
            self.progress.note("--amp fp16 on the CPU: many times slower than --amp off there (8 to 13 times the "
                               "step measured on the demo's networks, about 30 times on the reference's), for "
                               "nothing; mixed precision pays on a GPU (bf16 runs at about off's speed on a CPU)")
        self.progress.note(data_note(self.loader, cfg.batch_size, self.world))
        if cfg.eval_every and held_out(self.data_root) == "train":
            # (the evaluations, and --keep_best's best.pt with them, measured the training data without a word)
            self.progress.note(split_note(cfg, self.data_root))
        if self.saved_step is not None and self.step >= self.total_steps and self.main:
            # A finished run resumed trains nothing: said, with how to train on.
            if cfg.max_steps is None:
                longer = "more epochs (--niter_decay, --niter: the learning-rate schedule's length)"
            else:  # (--max_steps none: the whole schedule, where a short look with --max_steps was kept by resumes)
                full = (cfg.niter + cfg.niter_decay) * self.steps_per_epoch
                longer = "a larger --max_steps" + (f", or --max_steps none for the whole schedule "
                                                   f"({plural(full, 'iteration')})" if full > self.step else "")
            print(f"note: {self.run_dir} has already trained its {plural(self.total_steps, 'iteration')}: "
                  f"nothing to train; to train on, resume it with {longer}", file=sys.stderr)
        if cfg.compile in ("default", "max-autotune"):
            self.progress.note(f"compile={cfg.compile}: the first iterations compile the networks (a minute or more)")
        if self.resume_path is not None and (self.run_dir / "report.html").is_file():
            # The page says this run's length from its start: rewritten by sample or evaluate before this run's first
            # grid, it kept the one of the run resumed ("step 265 of 100000" in a run of 400)
            self.write_report()

    def _say_stop_step(self) -> int:
        """The step at which the ranks will stop for the signal this one received, said: the next log interval or
        evaluation, the only steps where they agree."""
        cfg = self.cfg
        told = min(self.total_steps, (self.step // cfg.log_every + 1) * cfg.log_every)
        where = "log interval"
        if cfg.eval_every and (at := (self.step // cfg.eval_every + 1) * cfg.eval_every) < told:
            told, where = at, "evaluation"
        self.progress.note(f"{self._stop.received.name}: stopping at step {told}, the next {where} "
                           f"(where the {self.world} processes agree), then saving")
        return told

    def _epoch_kept(self) -> int | None:
        """N where self.step ends epoch N and save_epoch_freq keeps its epoch_N.pt, else None."""
        done, rest = divmod(self.step, self.steps_per_epoch)
        kept = self.step and not rest and self.cfg.save_epoch_freq and done % self.cfg.save_epoch_freq == 0
        return done if kept else None

    def _epoch_checkpoint_owed(self) -> bool:
        """Whether the run resumed at the last step of an epoch (self.epoch, not yet counted done) whose epoch_N.pt
        save_epoch_freq keeps and the folder lacks."""
        done = self._epoch_kept()
        return (self.saved_step == self.step and done == self.epoch + 1
                and not (self.run_dir / "checkpoints" / epoch_name(done)).exists())

    def _train(self) -> Path:
        cfg = self.cfg
        self._say_start()
        log = open(self.run_dir / "log.jsonl", "a") if self.main else None
        t_last, step_last, aside = time.monotonic(), self.step, 0.0

        def img_per_s(now: float) -> float:  # since the last log line, the time of grids and saves set aside
            return (self.step - step_last) * cfg.batch_size * self.world / max(now - t_last - aside, 1e-9)
        stop = told = None  # stop: the signal every rank stops for (StopSignals), agreed by mean_over_ranks
        started = self.step
        try:
            if cfg.eval_every and self.resume_path is not None:
                # The one a stop skipped, at the step it was owed for; a stop during it: no step trained.
                stop = self.validate(owed_only=True)
                t_last = time.monotonic()  # (its time is not the first interval's training)
                if self.world == 1:  # (one process stops after it too; the ranks agree at a log interval)
                    stop = self._stop.received
            if self.dist.main_says(self._epoch_checkpoint_owed):  # (rank 0's folder: every rank saves, or none)
                # Resumed at an epoch's end whose checkpoint a kill lost (latest.pt is written before it): the loop
                # goes on to the next epoch, so its end's save would never come again (same state: nothing drawn)
                self.save(self.run_dir / "checkpoints" / epoch_name(self.epoch + 1), epoch=self.epoch + 1)
            while self.step < self.total_steps and stop is None:
                lr = cfg.lr * lr_factor(self.epoch, cfg.niter, cfg.niter_decay)
                self.model.set_lr(lr)
                # Resuming mid-epoch starts at the batch the run stopped before (the loader skips the
                # others unread where it can); afterwards each epoch is whole.
                self.loader.set_epoch(self.epoch, self.step - self.epoch * self.steps_per_epoch)
                it = iter(self.loader)
                for batch in it:
                    if cfg.cuda_graph and self.graphed is None:
                        from .graph import GraphedTrainStep
                        self.graphed = GraphedTrainStep(self.model, batch)
                    losses = self.graphed(batch) if self.graphed else self.model.train_step(batch)
                    self.step += 1
                    if self.model.amp_skipped is not None:  # (fp16, which the graphed step refuses)
                        losses = self._leave_out(losses, self.model.amp_skipped)
                    for k, v in losses.items():
                        self.log_sums[k] = self.log_sums.get(k, 0) + v
                    self.log_count += 1
                    if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                        now = time.monotonic()
                        ips, aside = img_per_s(now), 0.0
                        avg, stop = mean_over_ranks(self.log_sums, self.log_count, self.world, self._stop.received,
                                                    amp := self._amp_record())
                        self._log(log, avg, lr, ips, {k: avg.pop(k) for k in amp or {}})
                        t_last, step_last = now, self.step
                        if self.step % cfg.log_every == 0:  # a run's last step off the grid keeps its
                            # interval for the run that resumes it
                            self.log_sums, self.log_count, self.log_skipped = {}, 0, 0
                    # Images/s is the training's: the time of grids, evaluations and saves is set aside (an
                    # interval with an evaluation read a sixth of the others: a sawtooth that was not the speed)
                    t_aside = time.monotonic()
                    if self.step % cfg.sample_every == 0:
                        self.sample()
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        # Before the step's checkpoint: a resume from it never loses one. A signal before
                        # or during it stops every rank at this step.
                        stop = self.validate(stop=stop)
                    if self.step % cfg.save_every == 0:
                        self.save()
                    if done := self._epoch_kept():  # (>= 1: a step was trained)
                        # stored as the start of the next epoch, so resuming from it skips no batch
                        self.save(self.run_dir / "checkpoints" / epoch_name(done), epoch=done)
                    aside += time.monotonic() - t_aside
                    if self.world == 1:  # one process stops after any iteration: nothing to agree on
                        stop = self._stop.received
                    elif self._stop.received and not told and stop is None:
                        # (where one's signal rode in this step's all-reduce, they have agreed: nothing to say)
                        told = self._say_stop_step()
                    if self.step >= self.total_steps or stop is not None:
                        break
                else:
                    self.epoch += 1
            skipped = None  # (the signal that skipped the last step's evaluation)
            if cfg.eval_every and self.step % cfg.eval_every and self.step == self.total_steps and self.step > started:
                skipped = self.validate(stop=stop)  # the trained model's (not again for a finished run resumed)
            # Once a step unless save_every has just written it (not twice in a stop's seconds), or the evaluation a
            # stop skipped is owed, which that checkpoint, written before it, does not say.
            if self.latest_written != self.step or skipped is not None:
                self.save()
            if stop is not None:
                # The page's status at the stop (a grid would take time a preemption may not give).
                self.dist.main_decides(self.write_report)
            elif self.step % cfg.sample_every:  # else the loop has just drawn this step's grid
                self.sample()
        except DivergenceError:
            # Found by a grid, an evaluation or a save (the log interval's check logs its own line first)
            self._log_divergence(log, img_per_s(time.monotonic()))
            raise
        except DatasetError as e:  # a file broken or replaced since the checks: which step, what is intact
            if getattr(e, "held_out", False):  # an evaluation's, said as such by validate
                raise
            raise self._stopped_on_data(e) from e
        except RuntimeError as e:
            if self.world == 1 or not (saw := lost_rank(e)):
                raise
            # Another rank's own error (a data error, a bug, out of memory) ended it in the middle of a
            # collective: that rank prints it; this one's traceback would only bury it.
            raise RankLostError(f"training stopped {self._after_step()}: another of the "
                                f"{self.world} processes ended during it, and prints its own error (rank "
                                f"{self.rank} saw: {saw})\n{self._intact()}") from e
        finally:
            self.progress.close()
            if log:
                log.close()
        if stop is not None:
            stopped = TrainingStopped(stop, self.step, self.epoch, self.ckpt_path, self.run_dir,
                                      train_launch(self.world, class_spec(self._model_cls)))
            if stop == signal.SIGINT:
                raise KeyboardInterrupt(str(stopped)) from stopped
            raise stopped
        return self.run_dir

    def _stopped_on_data(self, e: DatasetError) -> DatasetError:
        """The error of a training stopped by the data error `e` (a file broken or replaced since the checks) as it
        read the batch after self.step: which step, what is intact and how to go on."""
        what = f"training stopped at step {self.step + 1} (epoch {self.epoch + 1}) on its data"
        # Step self.step finished and the failing batch trained nothing: saved as a signal's stop saves it (the
        # steps since the last --save_every were lost), unless a checkpoint of it is there already (or it is step
        # 0: nothing trained). One process only: with several, the others may have gone on into the next step, whose
        # collectives (sync BN, the gradients' all-reduce) this one cannot join without its batch, and save()
        # gathers from every rank; or met a data error of their own there (the dataset's disk gone: this rank cannot
        # tell). The ranks could agree to stop only at a collective made before each step's own: a host round trip
        # every step, which the training does without (README "Reliability").
        unsaved = ""
        if self.world == 1 and self.step and self.saved_step != self.step:
            try:
                self.save()
            except (CheckpointError, DivergenceError) as failed:  # the data error stays the one said
                # (the cause's own words: the wrapper repeats the step and the advice, said below anyway)
                said = str(failed.__cause__ or failed).splitlines()[0].removesuffix("; the previous one is intact")
                unsaved = f"step {self.step} could not be saved ({said}); "
        elif self.step and self.saved_step != self.step:  # (the line named the last checkpoint without a word of them)
            since = (self.saved_step or 0) + 1
            steps = f"steps {since} to {self.step}" if since < self.step else f"step {self.step}"
            others = "other process" if self.world == 2 else f"other {self.world - 1} processes"
            unsaved = (f"{steps} since {'the last checkpoint' if self.saved_step else 'the start'} could not be saved "
                       f"(the {others} may have gone on into step {self.step + 1}, whose collectives this one cannot "
                       f"join without its batch, and a checkpoint needs every process); ")
        # A resume trains on the same files (another set is refused: its epochs' order differs): --resume --skip_bad
        # is the way on only where the files are still the run's (a decoder failing on what the checks pass, a read
        # that failed once); else the files put back, or a new run from the weights.
        then, files = None, getattr(e, "files", [])  # (none: an error of no file's, as a stalled worker's)
        if self.saved_step is not None and files and not self.cfg.data.skip_bad and self._resumes_skipping(files):
            then = (f"{self._last_good()}: {self._how_on(skip_bad=True)} to go on without such files (they have "
                    f"the names and sizes the run checked, and pass the checks again: the resume takes them, and "
                    f"replaces one that fails to decode by the next good sample)")
        elif self.saved_step is not None:
            then = (f"{self._last_good()}: put the files back as they were and {self._how_on()} (a resumed run "
                    f"trains on the same files), or leave such files out in a new run from its weights: "
                    f"{self._init_from(self.saved_path)} --skip_bad --out NEW")
        return self._data_error(e, what, "to leave such files out", then, unsaved)

    def evaluate(self) -> dict:
        """The evaluation of the trained model on the test split, written to <run>/eval.json and with
        tensorboard=True to the run's event file, which it closes (train() leaves it open for it on the demo
        data)."""
        from .evaluate import evaluate, json_safe
        # The demo table's protocol (README); a model without z (pix2pix, nz 0): its one output per input
        # (evaluate refuses n_samples for it, which would change nothing).
        nz = self.cfg.model.nz
        # (seconds to minutes without a word after the run's last line: the run, or a notebook's cell, looked hung)
        n = "10 z per input, then 100 z for the palette shares" if nz else "one output per input"
        what = "the demo's table" if self.is_demo else "the model"
        self.progress.note(f"measuring {what} on the test split ({n})...")
        result = evaluate(self.model, self.data_root, n_samples=10 if nz else None)
        if "histogram" in result and nz:
            # The shares from 10 z per input moved by up to 6 points between z draws (the palette
            # boundaries differ per input); 100 z per input pin them to about a point, in seconds. (Without z,
            # the one output per input's histogram is already the whole story.)
            many = evaluate(self.model, self.data_root, n_samples=100, metrics="palette", seed=1)
            result.update(shares_n_samples=100, shares_histogram=many["histogram"])
        write_json(self.run_dir / "eval.json", json_safe(result), what="evaluation results")
        if self.tb:
            self.tb.log_eval(result, self.step, "final")
            self.tb.close()
        self.write_report()
        return result


def stopped_by(error: BaseException) -> TrainingStopped | None:
    """The TrainingStopped that `error` is or was caused by (a SIGINT's KeyboardInterrupt), else None."""
    for e in (error, error.__cause__):
        if isinstance(e, TrainingStopped):
            return e
    return None


def end_group(trainer: Trainer) -> None:
    """Ends a torchrun run's process group (cmd_train and train(): after a run or a stop)."""
    if trainer.graphed is not None:
        # NCCL's teardown waits for every graph that captured one of its all-reduces to be freed.
        trainer.graphed = None
        gc.collect()
        torch.cuda.synchronize(trainer.device)
    if trainer.dist.grouped and trainer.dist.owns_group:
        # Every rank here before any ends the group: the last collective may be rank 0's broadcast
        # (main_decides), which rank 0 leaves once sent; a straight 2-rank gloo run under load once
        # hung at its end, rank 0 in the group's teardown (not reproduced alone: a precaution).
        dist.barrier()
    trainer.dist.close()


def class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def class_spec(cls: type) -> str:
    """`cls` as --model_cls names it, MODULE:CLASS (checkpoints record it as model_spec: class_name's one dot
    between module and class cannot be told from a package's or a nested class's)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def model_option(spec: str | None) -> str:
    """The --model_cls option, with its leading space, of a command that trains the class `spec` names
    (class_spec); "" for BicycleGAN, the command's own. A class of a script run as __main__ or of a function's is
    no module's to import: MODULE:CLASS, to fill in."""
    if spec is None or spec == class_spec(BicycleGAN):
        return ""
    module, _, name = spec.partition(":")
    return " --model_cls " + (shlex.quote(spec) if module != "__main__" and "<locals>" not in name else "MODULE:CLASS")


def _let_go(error: BaseException) -> None:
    """A stop's traceback lets go of the training: a notebook keeps the last one (to show it, for %debug), whose
    frames held the Trainer, its model and optimizers and the last batch until the next error (179 MB of a model
    of the reference's widths on the CPU; a GPU's memory, where train(cfg, resume=True) then built a second model
    beside it). Its frames' variables are dropped (a stop is no bug to inspect), those still running excepted."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def train(cfg: TrainConfig, *, resume: bool | str | Path = False, epoch: int | None = None,
          progress: bool = True, evaluate: bool = True, tensorboard: bool | None = None,
          model_cls: type | None = None, on_log: Callable[[dict], None] | None = None) -> Path:
    """Train `cfg` (resume=True: continue the run in cfg.out, from its checkpoint of `epoch` if
    given; resume=PATH: from that checkpoint (a run folder: its latest.pt), e.g. a downloaded model to
    fine-tune; resume="auto": continue the run from its newest checkpoint where it has one, else start it;
    cfg.init_from: a new run from the weights of any checkpoint or run folder, see _check_start_from). On the
    demo data the run ends with the palette evaluation in <run>/eval.json (evaluate=False skips it; the evaluations
    every cfg.eval_every iterations, which the demo preset makes, the last step's included, are the config's:
    eval_every=0 leaves them out).
    tensorboard=True also logs to <run>/tensorboard (needs the tensorboard package); None: only where a
    continued run logged there before (False: not even then). Under torchrun the process group this started is
    ended on return. Returns the run folder.
    model_cls, on_log: as Trainer's (a subclass of BicycleGAN to train; a function called with each log row).
    A SIGINT, SIGTERM or SIGHUP stops the run after writing its checkpoint (Trainer.train, README
    "Reliability"): SIGTERM and SIGHUP raise TrainingStopped, SIGINT a KeyboardInterrupt caused by one
    (stopped_by tells either apart from other errors); the process group is ended, the evaluation
    skipped."""
    evaluate = check_bool("evaluate", evaluate)
    trainer = Trainer(cfg, resume=resume, progress=progress, epoch=epoch, tensorboard=tensorboard, model_cls=model_cls,
                      on_log=on_log)
    try:
        run = trainer.train()
    except BaseException as e:
        if stopped_by(e) is not None:  # every rank stopped at one step: the group ends as after a run
            end_group(trainer)
            del trainer
            _let_go(e)
        raise
    end_group(trainer)  # the evaluation below is rank 0's alone: no collective
    if trainer.main and trainer.is_demo and evaluate:
        trainer.evaluate()
    return run
