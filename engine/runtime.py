"""What every command shares at run time: the device, the process group under torchrun, the data
folder (the built-in demo data when none is given) and the loaders built from the configs.

Commands (train, sample, evaluate, interpolate, compare, export, serve...) take these from here rather
than from each other: a command module imports the shared modules (runtime, images, report, io, config,
the model, checkpoints, metrics), not another command, but for the four compositions docs/architecture.md
names (trainer, sweep and compare -> evaluate; download -> official).
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import PIL
import torch
import torch.distributed as dist
from PIL import Image

from bicyclegan.pipelines import DatasetError, make_demo_dataset, make_loader
from bicyclegan.pipelines.atomic import stale_temps, usual_folder_mode, writer_tag
from bicyclegan.pipelines.demo import DATA_VERSION
from bicyclegan.pipelines.errors import alike, plural
from bicyclegan.pipelines.files import _SPLITS, ALIKE, find_layout, first_image_size
from bicyclegan.pipelines.loader import dali_available

from .config import DataConfig, ModelConfig, TrainConfig, check_named, refuse_unused_sizes, split_fields
from .errors import USER_ERRORS, CheckpointError, ConfigError, OutputError
from .io import file_sha256

if dist.is_available():
    # Imported before any process group exists: its functions' default arguments are the default
    # group of the moment (group=group.WORLD), so imported while one is up (the first optimiser
    # imports it, through torch._dynamo) it keeps that group alive after destroy_process_group. The
    # group's threads then end only in the interpreter's finalisation, and a gloo worker still
    # dropping a collective's tensors takes the GIL there: the rank aborted at exit now and then
    # (SIGABRT, "terminate called without an active exception").
    import torch.distributed.nn  # noqa: F401


def pick_device(name: str = "auto", local_rank: int = 0, world: int = 1) -> torch.device:
    """"auto": this rank's GPU when CUDA is available, else the CPU. Under torchrun (world > 1) a
    CUDA device is always this rank's GPU, cuda:LOCAL_RANK, whatever index was named: ranks that
    shared one GPU would make NCCL fail (e.g. a run begun with device=cuda:0, resumed under torchrun). name: a
    str or a torch.device (the Python API's callers pass either)."""
    name = name if isinstance(name, str) else str(name)
    if name == "auto":
        dev = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(name)
        except RuntimeError as e:
            raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from e
        if dev.type not in ("cpu", "cuda"):
            # (train refused it; sample, evaluate and interpolate took mps or meta to a traceback: "PyTorch is not
            # linked with support for mps devices", or the loader's "device must be 'cpu' or a CUDA device")
            raise ConfigError(f"device={name!r}: this package runs on the CPU or a CUDA GPU (no {dev.type}); use "
                              f"auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA GPU is available; use device=cpu or auto")
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
        # Checked alike by every process of the machine (torchrun's count of them), not by the ranks whose
        # GPU is missing alone: those would refuse while the others waited for them.
        gpus, here = torch.cuda.device_count(), os.environ.get("LOCAL_WORLD_SIZE")
        if int(here or local_rank + 1) > gpus:
            said = f"torchrun started {here} processes on this machine" if here else \
                f"this process is to train on cuda:{local_rank} (its LOCAL_RANK)"
            raise ConfigError(f"{said} and it has {gpus} GPU(s) visible: one GPU per process; use "
                              f"--nproc_per_node {gpus}, or device=cpu")
    elif dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r} but only {torch.cuda.device_count()} GPU(s) are visible")
    return dev


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({plural(torch.get_num_threads(), 'thread')}; no GPU)"


@contextlib.contextmanager
def device_settings(device: torch.device):
    """Settings for training on `device`, for the block: shapes are static (drop_last), so cuDNN may pick
    each convolution's algorithm once; `device` is the current CUDA device. The caller's are put back on
    the way out, however it is left: the Python API trains inside someone else's program (a notebook whose
    other work, its shapes changing, would have gone on benchmarking every new shape)."""
    if device.type != "cuda":
        yield
        return
    benchmark, current = torch.backends.cudnn.benchmark, torch.cuda.current_device()
    torch.backends.cudnn.benchmark = True
    # Triton launches and CUDA-graph capture streams use the current device: a single process
    # training on cuda:1 would otherwise capture on GPU 0 (torchrun ranks set theirs already).
    # A plain "cuda" means the current device already (set_device refuses it: torch 2.11).
    if device.index is not None:
        torch.cuda.set_device(device)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = benchmark
        torch.cuda.set_device(current)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where this rank trains (pick_device)
    owns_group: bool = False  # init_distributed started the process group (close() ends it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def main_decides(self, work) -> None:
        """Run `work` (checks and writes of the run folder) on rank 0 alone, and make its refusal every
        rank's: one broadcast of its error, or None, which the other ranks wait for (a barrier). They
        raise the same error marked from_rank0 (the command prints rank 0's alone), where before they
        went on into their next collective and waited there until torchrun killed them, each with a
        traceback, and rank 0's one line was lost among them."""
        error = None
        if self.main:
            try:
                work()
            except Exception as e:  # re-raised below, once the other ranks are told
                error = e
        if self.grouped:
            told = [_picklable(error, 0)]
            dist.broadcast_object_list(told, src=0)
            if not self.main and told[0] is not None:
                told[0].from_rank0 = True
                raise told[0]
        if error is not None:
            raise error

    def main_says(self, work):
        """work()'s value on rank 0, given to every rank (one broadcast; it must pickle): what rank 0 alone
        reads or computes once (which checkpoints a folder holds, the combined measures), so that every
        rank goes on with the same. Its refusal is every rank's, as main_decides'."""
        told = [None]
        self.main_decides(lambda: told.__setitem__(0, work()))
        if self.grouped:
            dist.broadcast_object_list(told, src=0)
        return told[0]

    def alike(self, error: Exception) -> Exception:
        """`error`, which every rank raises alike (the same check of the same result), marked so that rank 0
        alone prints it: under torchrun one line, not one per rank."""
        return alike(error, self.rank)

    def each_decides(self, work) -> None:
        """Run `work` on every rank, and make any rank's error every rank's (raise_any)."""
        error = None
        try:
            work()
        except Exception as e:  # re-raised by raise_any, once every rank has told its own
            error = e
        self.raise_any(error)

    @property
    def grouped(self) -> bool:
        """Whether there are other ranks to tell (a Dist made by hand, in tests, has no group)."""
        return self.world > 1 and dist.is_initialized()

    def agree(self, state: int) -> int:
        """The largest of every rank's `state` (one all-reduce of a number): what one rank alone saw (a
        stop signal, an error) every rank acts on at the same point, so none waits in a collective the
        others have left."""
        if not self.grouped:
            return state
        t = torch.tensor([state], dtype=torch.int32, device=self.device)  # (NCCL reduces device tensors)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def agree_each(self, state: int, mine: int) -> tuple[int, list[int]]:
        """agree's largest `state`, and every rank's `mine` (a number of 0 or more each, in rank order), in the one
        all-reduce: what each rank alone knows (its kept measures' save failed), told at a point all ranks pass
        together, not at a stop, which a rank may never reach."""
        if not self.grouped:
            return state, [mine if r == self.rank else 0 for r in range(self.world)]
        t = torch.zeros(self.world + 1, dtype=torch.int32, device=self.device)
        t[0], t[1 + self.rank] = state, mine
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t[0]), t[1:].tolist()

    def raise_any(self, error: Exception | None) -> None:
        """Every rank calls it with its error or None: the error of the first rank that had one is raised
        on every rank (one all-gather), marked from_rank0 where it is a copy (the rank it happened on
        prints it: under torchrun one line, not one per rank). An error that is a copy already (an
        inner raise_any's, main_decides') yields to the rank it happened on: taken first, rank 0's copy
        of rank 1's error had every rank raise a copy, and none printed it."""
        if self.grouped:
            told = [None] * self.world
            dist.all_gather_object(told, _picklable(error, self.rank))
            own = [r for r, e in enumerate(told) if e is not None and not getattr(e, "from_rank0", False)]
            first = own[0] if own else next((r for r, e in enumerate(told) if e is not None), None)
            if first is not None and first != self.rank:
                told[first].from_rank0 = True
                raise told[first]
        if error is not None:
            raise error

    def close(self) -> None:
        """End the process group if init_distributed started it (a caller's own group is left as it
        is). Every rank calls it once its collectives are done; torch warns at exit about a group left
        open."""
        atexit.unregister(self.close)  # (a group started later in this process is not ours)
        _DATA_LOG.removeFilter(_said_by_local_rank_0)
        if self.owns_group and dist.is_initialized():
            if dist.get_backend() == "gloo":
                # torch (before pytorch/pytorch#154976, of June 2025) ends a group holding the GIL while it joins the
                # group's threads, and a gloo thread still dropping the last collective's tensors waits for the
                # GIL to free their Python objects: each waited for the other for ever (torch 2.5.1: one rank
                # stuck in destroy_process_group in 8 runs of 63, a barrier before it too in 1 of 18; none in
                # 60 with this). A moment without the GIL lets the threads drop them first.
                time.sleep(0.2)
            dist.destroy_process_group()


def lost_rank(error: BaseException) -> str | None:
    """What `error` says, in short, if it is a collective's failure because another rank's process ended
    (gloo's transport: the connection closed or reset, a plain RuntimeError; NCCL: a DistBackendError);
    None for any other error."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not isinstance(error, getattr(dist, "DistBackendError", ())):
        if not (isinstance(error, RuntimeError) and "gloo/transport" in text
                and any(s in text for s in ("closed by peer", "reset by peer", "Broken pipe"))):
            return None
    # gloo's: "[.../pair.cc:553] Connection closed by peer [127.0.0.1]:58773. This is typically caused by..."
    return re.sub(r"^\[[^\]]*\]\s*", "", text).split(". This is typically")[0]


def _picklable(error: Exception | None, rank: int) -> Exception | None:
    """An error as another rank can be told it: the user errors as they are, any other (which may not
    pickle) as a RuntimeError naming it."""
    if error is None or isinstance(error, USER_ERRORS):
        return error
    told = RuntimeError(f"rank {rank} stopped: {type(error).__name__}: {error}")
    told.from_rank0 = getattr(error, "from_rank0", False)  # a copy of another rank's stays one
    return told


_DATA_LOG = logging.getLogger("bicyclegan.pipelines")


def _said_by_local_rank_0(record) -> bool:
    """A filter of the data's log on a torchrun process other than its machine's local rank 0: the warnings
    every process of the machine gives alike (pipelines' ALIKE: the files the checks left out, the loader
    workers that fit) are that rank's to say, once, not one per process."""
    return not getattr(record, "alike", False)


def made_alike(group: Dist, make):
    """make()'s result (evaluate's Evaluation, sample's or interpolate's run: an object with the `model` it
    opened), made on every rank of `group`: one rank's refusal is every rank's (else the others would wait for
    it in their first collective), and where it reads a checkpoint file, every rank must have read the same
    weights: a training still running replaces latest.pt, and ranks reading it moments apart would measure (or
    sample) two models as one."""
    made = []
    group.each_decides(lambda: made.append(make()))
    made = made[0]
    if group.grouped and made.model.source is not None:
        read = [None] * group.world
        dist.all_gather_object(read, (made.model.source["digest"], made.model.source["step"]))
        if len(set(read)) > 1:
            path = Path(made.model.source["path"])
            # (Python's sample, evaluate and interpolate have no epoch argument: they take the file, as
            # find_checkpoint's advice says)
            raise group.alike(CheckpointError(
                f"{path} changed while the {group.world} processes read it (steps "
                f"{', '.join(str(step) for _, step in read)}): a training still writing it? Use a checkpoint it "
                f"no longer writes (--epoch N or give its file, {path.parent / 'epoch_N.pt'})"))
    return made


_watched_parent = None  # the torchrun process watch_launcher watches (once per process)


def watch_launcher(poll: float = 1.0) -> None:
    """Under torchrun (TORCHELASTIC_RUN_ID, which it sets for its workers alone: not mp.spawn's nor SLURM's),
    stop this process as a SIGTERM does once torchrun, its parent, is gone: a training at the next log
    interval, with its checkpoint (StopSignals); evaluate and compare at once, their writes being atomic.
    torchrun passes a SIGTERM, SIGINT or hang-up on to its workers, but killed (kill -9, the OOM killer) it
    sends them nothing, and they, each a session of its own, do not get its terminal's hang-up: they trained
    on, orphaned, holding their GPUs and writing into the run folder. Watched from a thread that reads
    getppid() every `poll` seconds, not with prctl(PR_SET_PDEATHSIG): that one is Linux's alone, its signal
    comes without a word of why, and it fires when the parent's *thread* that forked ends (torchrun forks
    from its main thread today, SubprocessContext._start under agent.run, but nothing promises it). A
    torchrun gone before this is called (the process's first seconds, its imports) is not seen: the group's
    start then waits for torchrun's store until its timeout."""
    global _watched_parent
    if _watched_parent is not None or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    parent = _watched_parent = os.getppid()

    def watch():
        while os.getppid() == parent:  # an orphan's parent becomes init (or the nearest subreaper)
            time.sleep(poll)
        if os.environ.get("LOCAL_RANK", "0") != "0":
            # The machine's one line is local rank 0's: the others stop a few polls later, or with the stop its
            # SIGTERM brings them to. Stopping at once, one of them could bring the training's shared stop about
            # before local rank 0 had seen its parent gone and said why (a CI run ended without the line).
            time.sleep(5 * poll)
        else:
            try:
                print(f"torchrun (pid {parent}), which started this process, is gone: stopping as on a SIGTERM "
                      f"(a training at its next log interval or evaluation, after saving its checkpoint)",
                      file=sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr went with torchrun (its terminal, a pipe): stop all the same
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bicyclegan-watch-torchrun", daemon=True).start()


# what the refusals of a launch's variables end with
_LAUNCH_HINT = "(a launch sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; torchrun sets them all)"


def _launch_number(name: str, default, low: int):
    """The environment's variable `name` of a launch, an integer >= low (a ConfigError naming it where it is not), or
    `default` where it is not set or empty."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ConfigError(f"{name}={text!r} in the environment: an integer >= {low} was expected {_LAUNCH_HINT}")
    return value


def launch_env() -> tuple[int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK) of this process as a launch set them (torchrun, or by hand): (0, 1, 0) for
    a single process. A value that cannot be is a ConfigError naming it: read with a bare int(), RANK=1 alone was
    a traceback (StopIteration, a TypeError, ZeroDivisionError for WORLD_SIZE=0) and RANK=5 of WORLD_SIZE=2 waited
    forever for ranks that never came."""
    world = _launch_number("WORLD_SIZE", 1, 1)
    rank, local = _launch_number("RANK", None, 0), _launch_number("LOCAL_RANK", 0, 0)
    if rank is None and world > 1:
        raise ConfigError(f"WORLD_SIZE={world} in the environment without RANK: this process's place among the "
                          f"{world} is not said {_LAUNCH_HINT}")
    if rank is not None and rank >= world:
        raise ConfigError(f"RANK={rank} in the environment, of WORLD_SIZE="
                          f"{os.environ.get('WORLD_SIZE', '1 (not set)')}: ranks are 0 to {world - 1} {_LAUNCH_HINT}")
    return rank or 0, world, local


def init_distributed(device: str = "auto") -> Dist:
    """This process's place in a torchrun launch (a single process otherwise) and the device it
    trains on (pick_device, `device` as in TrainConfig.device); starts the group: NCCL when the
    ranks train on GPUs, gloo on the CPU (also on a GPU host: NCCL cannot reduce CPU gradients).
    A process group the caller started already is used as it is: its rank and size count, not the
    environment's (which a launcher other than torchrun may not set). Under torchrun the process stops
    as on a SIGTERM should torchrun end before it (watch_launcher)."""
    watch_launcher()
    owns = False
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        local_rank = _launch_number("LOCAL_RANK", rank % gpus if gpus else 0, 0)
    else:
        rank, world, local_rank = launch_env()
        owns = world > 1
        if owns and not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
            raise ConfigError(f"WORLD_SIZE={world} in the environment without MASTER_ADDR and MASTER_PORT: the "
                              f"processes cannot meet {_LAUNCH_HINT}")
    dev = pick_device(device, local_rank, world)  # before the group: a bad device fails alone
    if world > 1 and dev.type == "cuda":
        # Triton launches, CUDA-graph capture streams and the loader's pinning thread all use the
        # *current* device: left at 0, every rank would launch its kernels on GPU 0.
        torch.cuda.set_device(local_rank)
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    info = Dist(rank, world, local_rank, dev, owns_group=owns)
    if world > 1 and local_rank != 0:
        _DATA_LOG.addFilter(_said_by_local_rank_0)  # (until close())
    if owns and dev.type != "cuda":
        # An error exit (a refusal, a bug) skips close(). gloo's worker thread may still be dropping
        # the last collective's tensors then, which takes the GIL: in an interpreter already finalising,
        # the thread exits through a C++ destructor and the process aborts ("terminate called without
        # an active exception", SIGABRT). Ended before finalising, the group joins its threads first.
        # (Not NCCL's: its teardown would wait at exit for a CUDA graph an error's traceback keeps alive.)
        atexit.register(info.close)
    return info


class SaidOnce(logging.Filter):
    """The data's warnings (bicyclegan.pipelines' log) said once, while applied (a context): each loader made
    for one split said the files skip_bad left out of it again (a training run's held-out split: the grids'
    and one at each --eval_every evaluation; evaluate --epoch all and compare: one per model measured). A
    warning whose text changed (another file left out) is said."""

    def __init__(self):
        super().__init__()
        self.said = set()

    def filter(self, record) -> bool:
        text = record.getMessage()
        if text in self.said:
            return False
        self.said.add(text)
        return True

    def __enter__(self):
        _DATA_LOG.addFilter(self)
        return self

    def __exit__(self, *exc):
        _DATA_LOG.removeFilter(self)


# -- data ------------------------------------------------------------------------------------------
def demo_data_root(out, size: tuple[int, int], seed: int) -> Path:
    """Where a run in folder `out` keeps its demo data: beside the run, shared by runs of one size,
    seed and version of the demo images."""
    return Path(out).resolve().parent / demo_data_name(size, seed)


def demo_data_name(size: tuple[int, int], seed: int) -> str:
    """The name of the demo data folder of runs of one size and seed (demo_data_root's)."""
    return f"demo_data_v{DATA_VERSION}_{size[0]}x{size[1]}_seed{seed}"


def prepare_data_root(cfg: TrainConfig, dist_info: Dist = Dist()) -> Path:
    """The training data folder: cfg.data.dataroot (as check_data_root passed it: the Trainer asks that
    before the run folder is made), or the demo data (written by rank 0 if missing)."""
    if cfg.data.dataroot is not None:
        return Path(cfg.data.dataroot)
    root = demo_data_root(cfg.out, cfg.model.size, cfg.seed)
    dist_info.main_decides(lambda: _make_demo_data(root, cfg))  # the other ranks wait for it
    return root


_HELD_OUT = ("val", "test")  # the splits beside train/ that sample grids, sample and evaluate read


def check_data_root(cfg: TrainConfig) -> Path:
    """cfg.data.dataroot, once it is a folder of training pairs that the run folder cfg.out lies outside
    of; it writes nothing, so the trainer asks it before the run folder is made."""
    root = Path(cfg.data.dataroot)
    if root.is_file():  # (it said "does not exist" of a file that does)
        raise DatasetError(f"--dataroot {root} is a file; give the dataset's folder (the one holding train/, "
                           f"or the folder of training pairs itself)")
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (--dataroot)")
    try:
        layout, folders = find_layout(root, "train")
    except DatasetError:
        # The loader's own line ends "choose one (--phase)", an option of the inference commands:
        # training always reads train/.
        if (splits := [s for s in _HELD_OUT if (root / s).is_dir()]) and not (root / "train").is_dir():
            raise DatasetError(f"missing folder {root / 'train'}: training reads the pairs in train/ of "
                               f"--dataroot, and {root} holds only {', '.join(s + '/' for s in splits)}; give "
                               f"the dataset whose train/ holds them, or the folder of training pairs itself"
                               ) from None
        raise
    if layout == "single":  # A/ without B/ is inputs alone, as sample reads them: no pairs to learn
        raise DatasetError(f"{folders[0]} has no B folder beside it: training needs pairs, A/ and B/ "
                           "(paired by file name) or aligned A|B files")
    other = {"A": "B", "B": "A"}.get(root.name)
    if layout == "aligned" and folders[0] == root and other and (root.parent / other).is_dir():
        # One half of A/ and B/ folders read alone: each of its images was split into an A | B pair,
        # and a run trained on halves of A's images without a word.
        raise DatasetError(f"--dataroot {root} is the {root.name}/ folder of A/ and B/ folders ("
                           f"{root.parent / other} beside it): read alone, each of its images would be "
                           f"split into A | B halves; give the folder that holds both, {root.parent}")
    check_out_apart(cfg.out, root, folders)
    return root


def resolved_out(out) -> Path:
    """The output folder `out` resolved, or an OutputError naming --out where its symbolic links loop (a
    traceback: Python 3.11 and 3.12 raise RuntimeError "Symlink loop", 3.13 OSError)."""
    try:
        return Path(out).resolve()
    except (RuntimeError, OSError) as e:
        raise OutputError(f"--out {out}: its symbolic links loop ({e}); give another folder") from e


def check_out_apart(out, root: Path, folders) -> None:
    """Refuse a run folder inside a folder of images the dataset is read from (the training pairs'
    `folders`, and the splits beside them, read with their subfolders): the run's sample grids landed
    among the data, and the next run or resume trained on them (or refused the changed count)."""
    run = resolved_out(out)
    read = [Path(f).resolve() for f in folders] + [(root / s).resolve() for s in _HELD_OUT if (root / s).is_dir()]
    if inside := next((f for f in read if f == run or f in run.parents), None):
        raise OutputError(f"--out {out} lies inside {inside}, whose images (with its subfolders') the dataset is "
                          f"read from: the run's sample grids would be read as images of the dataset by the next "
                          f"run or resume; choose --out outside it")


def demo_data_made(root: Path) -> bool:
    """Whether the demo data folder is there whole (palettes.json of test/ is written last)."""
    return (root / "test" / "palettes.json").is_file()


def _make_demo_data(root: Path, cfg: TrainConfig) -> None:
    if not demo_data_made(root):
        # Written beside it and renamed into place: an interrupted run leaves no part-made folder
        # that a later one would take for the whole (palettes.json of test/ is written last).
        # A folder of its own (mkdtemp's: two runs on machines sharing the disk may have one pid), removed
        # whatever stops the writing (a Ctrl-C left it behind).
        root.parent.mkdir(parents=True, exist_ok=True)
        for gone in stale_temps(root, ".tmp"):  # a killed run's (kill -9: no cleanup ran)
            shutil.rmtree(gone, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.{writer_tag()}-", suffix=".tmp", dir=root.parent))
        try:
            usual_folder_mode(tmp)
            make_demo_dataset(tmp, size=cfg.model.size, seed=cfg.seed)
            if not demo_data_made(root):  # else another run made it meanwhile
                shutil.rmtree(root, ignore_errors=True)  # part-made by an older version
                try:
                    os.replace(tmp, root)
                except OSError:  # made by another run between the two lines
                    pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_config(out, options: dict) -> TrainConfig | None:
    """The config of the run in folder `out` (its config.json) with `options` (flat, the command line's
    names) applied over it, or None when the folder holds no config. A demo run's data folder goes
    back to None, so that the resumed run is a demo run again (final evaluation included)."""
    path = Path(out) / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, ConfigError) as e:
        from .checkpoint import older_run
        # (its options given again met the same refusal, "or delete" it); resumed (--out the run itself) a new run
        # elsewhere is the way on, not started from it (--init_from)
        if (old := older_run(out, elsewhere=Path(options.get("out") or "").resolve() == Path(out).resolve())):
            raise old from None
        raise ConfigError(f"cannot read the run's config {path} ({type(e).__name__}: {e}); "
                          "give the run's options again together with --preset") from e
    return _with_options(cfg, options)


def checkpoint_config(path, options: dict) -> TrainConfig | None:
    """run_config's for a checkpoint outside a run (an import-official file, a run's latest.pt copied out of it):
    the config it stores with `options` over it; None where it cannot be read (the run's start says why). A run
    from such a file took the demo's (or reference's) preset and was refused for every network option it stores."""
    from .checkpoint import peek_checkpoint
    try:
        saved = peek_checkpoint(path, "config")[0]
        cfg = TrainConfig.from_dict(saved) if isinstance(saved, dict) else None
    except (CheckpointError, ValueError, TypeError, ConfigError):
        return None
    return None if cfg is None else _with_options(cfg, options)


def _with_options(cfg: TrainConfig, options: dict) -> TrainConfig:
    """A stored config with `options` over it; a demo run's data folder (made beside the run folder, known by its
    name: the run or the file may have moved since) goes back to None: the run makes its demo data where it goes."""
    if cfg.data.dataroot is not None and Path(cfg.data.dataroot).name == demo_data_name(cfg.model.size, cfg.seed):
        cfg.data.dataroot = None
    given = split_fields(options)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **given["model"]),
                               data=dataclasses.replace(cfg.data, **given["data"]), **given["train"])


def data_root_for(cfg: TrainConfig, dataroot=None) -> Path:
    """Inference data: the folder given, else the one the model was trained on (stored in its config)."""
    check_named("dataroot", dataroot)  # ("" was the model's own folder, said as "names none; pass --dataroot")
    root = dataroot or cfg.data.dataroot
    if root is None:
        raise DatasetError("no dataset folder: this model's config names none; pass --dataroot")
    root = Path(root)
    if root.is_file():
        raise DatasetError(f"--dataroot {root} is a file; give the dataset's folder (e.g. {root.parent.parent} for "
                           f"an aligned file in <root>/<split>/, or a folder of input images)")
    if not root.is_dir():
        (h, w), seed = cfg.model.size, cfg.seed
        if dataroot is None and root.name == demo_data_name(cfg.model.size, seed):
            # a demo run copied without the data beside it, which the user never chose: "pass --dataroot" named
            # no folder they had; the demo data is made again alike
            again = f"bicyclegan make-demo {shlex.quote(str(root))} --size {h}" + (f" --width {w}" if w != h else "") \
                + (f" --seed {seed}" if seed else "")
            raise DatasetError(f"dataset folder {root} does not exist: the run's demo data, which `{again}` makes "
                               f"again (or pass --dataroot)")
        raise DatasetError(f"dataset folder {root} does not exist (pass --dataroot)")
    return root


def default_phase(root) -> str:
    """The split inference commands read by default: the validation split (val/, as the paper and the
    reference's test.py and video.py use) when there is one, else test/."""
    return "val" if (Path(root) / "val").is_dir() else "test"


def check_runnable(cfg: TrainConfig, device: torch.device) -> None:
    """Options this machine cannot run, refused before a run folder is written (they failed at the
    first step or the first batch, after it, and the folder then blocked the rerun), and those no training
    starts with (TrainConfig.check_trainable)."""
    cfg.check_trainable()
    from bicyclegan.kernels._impl import runs_triton, triton_available
    if cfg.cuda_graph and device.type != "cuda":
        raise ConfigError(f"cuda_graph=True captures the step on a CUDA device; this run trains on "
                          f"{device} (leave --cuda_graph out there)")
    if cfg.model.impl == "triton" and not runs_triton(device):
        where = ("triton is not installed (pip install 'bicyclegan[triton]')" if not triton_available() else
                 f"this run trains on {device}")
        raise ConfigError(f"impl=triton runs the Triton kernels on a CUDA device (or on the CPU under "
                          f"TRITON_INTERPRET=1, slowly), and {where}; use --impl auto or ref")
    if cfg.data.backend == "dali" and not dali_available():
        raise ConfigError("backend=dali needs NVIDIA DALI: pip install 'bicyclegan[dali]' (or --backend torch)")
    check_tuning_table(cfg.model.impl, device)
    from .model import layer_impl
    check_fallback_mode(layer_impl(cfg, device), device)


def check_fallback_mode(impl: str, device: torch.device) -> None:
    """The kernels' fallback mode ($BICYCLEGAN_KERNELS, or set_fallback_mode), read now: a bad value, and 'strict'
    where the layers run impl="auto" on a device the kernels cannot run on, raised at the first layer's forward (a
    traceback; a training's folder written, which then refused the rerun). impl: what the layers run (layer_impl)."""
    from bicyclegan.kernels._impl import get_fallback_mode, runs_triton
    try:
        mode = get_fallback_mode()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if mode == "strict" and impl == "auto" and not runs_triton(device):
        why = ("triton is not importable (pip install 'bicyclegan[triton]')" if device.type == "cuda" else
               "the kernels run on a CUDA device, or on the CPU under TRITON_INTERPRET=1, slowly")
        raise ConfigError(f"the kernels' fallback mode is 'strict' ($BICYCLEGAN_KERNELS=strict or "
                          f"set_fallback_mode('strict')), which refuses impl=auto's PyTorch reference, and the layers "
                          f"would run it on {device}: {why}; ask for the reference (train's --impl ref, impl='ref' in "
                          f"Python: ModelConfig's, load_checkpoint's), or leave strict mode")


def check_tuning_table(impl: str, device: torch.device) -> None:
    """The kernels read a $BICYCLEGAN_KERNEL_TUNING table at their first launch: a broken one stopped a training
    there, its folder written (which then refused the rerun), and was a 500 for every request serve took. Read
    now (TuningTableError) where the kernels will run."""
    from bicyclegan.kernels._impl import runs_triton
    if impl != "ref" and runs_triton(device):
        from bicyclegan.kernels._configs import check_env_table
        check_env_table()


def inference_data(cfg: TrainConfig, dataroot=None, phase: str | None = None, layout: str | None = None,
                   skip_bad: bool | None = None, num: int | None = None):
    """(root, phase, layout, data) of what an inference command reads: the folder given, else the
    training data; the split given, else default_phase; the layout given, else detected, where a
    folder without the split's folder and without A/ is a plain folder of inputs (layout "single",
    as the reference's --dataset_mode single): never halves of single images taken for A|B pairs, and
    a warning where its images look like the model's A|B pairs (_pairs_read_as_inputs); but for the
    model's own training folder, read as pairs as the training read it;
    the model's DataConfig, with skip_bad when given (else as the run had it). num: the command reads
    only the first num inputs, so only they are checked (a split of 20,000 files was checked whole,
    and one bad file anywhere stopped a one-image call); with skip_bad every file is, so that num
    good ones are found."""
    root = data_root_for(cfg, dataroot)
    # A split is a folder of the dataset folder (its results folder is named after it): '..' or an absolute path
    # read another folder and put the results outside <run>/results (results/../data/test), '.' into it
    if phase and (Path(phase).is_absolute() or not Path(phase).parts or ".." in Path(phase).parts):
        raise ConfigError(f"phase={phase!r} is not a split of the dataset folder (a folder in it: val, test): "
                          f"give the folder to read as dataroot (--dataroot)")
    phase = phase or default_phase(root)
    if layout is None and not (root / phase).is_dir() and not (root / "A").is_dir():
        if cfg.data.dataroot is not None and Path(cfg.data.dataroot).resolve() == root.resolve():
            # The model's own training folder of A|B files directly in it (train reads no other flat folder): read
            # as the training read it; as a plain folder, `sample RUN` fed G each whole pair, B in it.
            layout = "aligned"
        else:
            layout = "single"
            if why := _pairs_read_as_inputs(cfg, root):
                _warn_once(why)
    # The training's --max_dataset_size is the training set's: an evaluation of a run trained on its first 48
    # images read 48 of the test split, whatever --num, unsaid (the reference's test.py takes its own, unlimited)
    data = dataclasses.replace(cfg.data, max_dataset_size=None)
    data = data if skip_bad is None else dataclasses.replace(data, skip_bad=skip_bad)  # (bool("no") was True)
    if data.backend == "dali" and not dali_available():  # a model trained where DALI was
        data = dataclasses.replace(data, backend="auto")
    return root, phase, layout, first_only(data, num)


def _pairs_read_as_inputs(cfg: TrainConfig, root: Path) -> str | None:
    """What to say where a folder detected as plain inputs looks like a split of A|B files (--dataroot data/val
    for --dataroot data --phase val: each whole pair was G's input, B in it, and evaluate measured no B), for a
    model that learnt from such files: its first image is twice the model's aspect wide (a square model's W = 2H),
    or the folder is a split beside the model's own train/. A warning, not a refusal: wide photos are inputs too."""
    if not _trained_on_aligned(cfg):
        return None
    first = first_image_size(root)
    (h, w), folder = cfg.model.size, root.resolve()
    # (1 % off: the reference's datasets are exactly 2:1, 512 x 256, maps 1200 x 600)
    wide = first is not None and abs(first[1][0] * h - 2 * w * first[1][1]) <= 0.01 * 2 * w * first[1][1]
    name, parent = folder.name, folder.parent
    split = name in _SPLITS and any((parent / s).is_dir() for s in _SPLITS if s != name)
    own = split and cfg.data.dataroot is not None and Path(cfg.data.dataroot).resolve() == parent
    if not (wide or own):
        return None
    seen = (f"its first image, {first[0]}, is {first[1][0]} x {first[1][1]}, as an A|B pair of this model's "
            f"{w} x {h} inputs" if wide else f"it is a split of {parent}, the model's training data")
    given = root.parent if root.name == name else parent  # (as typed, but for --dataroot . and the like)
    ways = (f"--dataroot {shlex.quote(str(given))} --phase {shlex.quote(name)} to read the split, or "
            if split else "") + "--layout aligned to read A|B files"
    return (f"{root} is read as a plain folder of inputs, each whole image an input, but {seen}: for pairs give "
            f"{ways}; --layout single reads it as inputs without this warning")


def _trained_on_aligned(cfg: TrainConfig) -> bool:
    """Whether the model learnt from aligned A|B files as far as its config tells (the layout is not stored):
    the demo data and the reference's weights (dataroot None: the reference trains on aligned files alone) did; a
    folder that is here, by its train/'s layout; one not here (another machine's) is taken for aligned, the
    reference's datasets' layout."""
    if cfg.data.dataroot is None:
        return True
    try:
        return find_layout(cfg.data.dataroot, "train")[0] == "aligned"
    except (DatasetError, OSError):
        return True


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    # Once a process (sweep and compare read the folder once for each model), and under torchrun by local rank 0
    # alone (ALIKE: every process reads the same folder)
    _DATA_LOG.warning("%s", message, extra=ALIKE)


def with_data_settings(cfg: TrainConfig, *, direction: str | None = None, load_size: int | None = None,
                       crop_size: int | None = None, preprocess: str | None = None) -> tuple[TrainConfig, ModelConfig]:
    """(cfg, net_in) of an inference command given data settings (sample's, interpolate's and serve's
    --direction, --load_size, --crop_size, --preprocess): the model's config with those over its stored
    data settings, and the ModelConfig the loader prepares inputs for. crop_size changes the loader's
    crop only: the networks keep their depth whatever the size (checked by ModelConfig)."""
    given = {k: v for k, v in dict(direction=direction, load_size=load_size, preprocess=preprocess).items()
             if v is not None}
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **given))
    refuse_unused_sizes(cfg.data.preprocess, {"load_size": load_size, "crop_size": crop_size},
                        "as given" if preprocess else "as the model was trained")
    try:
        net_in = (dataclasses.replace(cfg.model, crop_size=crop_size, crop_width=None, num_downs=cfg.model.unet_depth)
                  if crop_size is not None else cfg.model)
    except ConfigError as e:
        if "num_downs" not in str(e):
            raise
        # (ModelConfig's advice, "or set num_downs <= 4", is a training's: the weights fix this model's depth)
        side = 2 ** cfg.model.unet_depth
        near = max(side, round(crop_size / side) * side)
        raise ConfigError(f"crop_size={crop_size}: this model's U-Net ({cfg.model.unet_depth} levels) takes sides "
                          f"that are multiples of {side}, such as {near}") from None
    cfg.data.check_fits(net_in)
    return cfg, net_in


def first_only(data, num: int | None):
    """`data` (a DataConfig) listing only the first `num` inputs, for a reader that takes no more, so
    that only they are checked; with skip_bad every file is, so that `num` good ones are found."""
    if num and num > 0 and not data.skip_bad:
        return dataclasses.replace(data, max_dataset_size=min(num, data.max_dataset_size or num))
    return data


def data_label(root: Path, phase: str) -> str:
    """What a gallery's title calls the inputs: "edges2shoes/val", or a plain folder's own name (of its
    full path: --dataroot . was an empty name)."""
    name = Path(root).resolve().name
    return f"{name}/{phase}" if (Path(root) / phase).is_dir() else name


def gallery_title(model, root: Path, phase: str) -> str:
    """A gallery's title: the variant, the inputs and the checkpoint read, with its step ("bicycle on
    edges2shoes/val · latest.pt, step 6000"): results/test/ holds whichever latest.pt a call read, and the title
    said nothing of which once the run had trained on."""
    title = f"{model.cfg.variant} on {data_label(root, phase)}"
    src = model.source
    return title + (f" · {Path(src['path']).name}, step {src['step']}" if src else "")


def results_name(root: Path, phase: str, trained_on=None) -> str:
    """What an inference command's results folder is named after: the split it read (val, test), or
    for a plain folder of inputs the folder's own name, so that they never share the split's folder
    (both were <run>/results/test); one named like a split (photos/test), or like a results folder of the commands
    (test_sweep, test_epoch_5, test_best, test_sync, interpolate_test: sample into a folder of that name replaced
    the sweep's page, or interpolate's results) gets its parent's name too.
    trained_on: the data folder the model records (its config's dataroot; None: none, an imported model's). Another
    folder's results are named after it, <its name>_<split>, and 8 hex digits of its absolute path: `evaluate RUN
    --dataroot OTHER` wrote RUN/results/test/eval.json over the run's own evaluation of its test split, and two
    datasets of one name (v1/facades, v2/facades) are kept apart; the same folder gets the same name again (a stopped
    evaluate goes on from its kept measures)."""
    name = _results_name(root, phase)
    folder = Path(root).resolve()
    if trained_on is None or Path(trained_on).resolve() == folder:
        return name
    name = f"{folder.name}_{name}" if (root / phase).is_dir() else name
    name = f"{name}_{hashlib.sha256(os.fsencode(folder)).hexdigest()[:8]}"
    return f"inputs_{name}" if RESULTS_LIKE.fullmatch(name) else name  # (interpolate_x/test: not interpolate's)


def _results_name(root: Path, phase: str) -> str:
    """results_name of the model's own data, or any of a model that records none."""
    if (root / phase).is_dir():
        return phase
    folder = Path(root).resolve()
    if not RESULTS_LIKE.fullmatch(name := folder.name):
        return name
    name = f"{folder.parent.name}_{name}"  # (interpolate/test: interpolate_test, interpolate's own again)
    return name if not RESULTS_LIKE.fullmatch(name) else f"inputs_{name}"


# The names of the results folders the commands give a split's results (sample's <phase>[_sync][_epoch_N|_best],
# the sweep's <phase>_sweep) and interpolate's of any: what a plain folder of inputs must not be named after.
RESULTS_LIKE = re.compile(r"interpolate_.*|(train|val|test)(_sync)?(_epoch_\d+|_best|_sweep)?")


def inputs_folder(root, phase: str) -> Path:
    """The folder an inference command reads its inputs from: root/phase, else (a plain folder of
    inputs, or A/ and B/ in root) root itself."""
    return Path(root) / phase if (Path(root) / phase).is_dir() else Path(root)


def made_from(model, opened: bool, cfg, loader, *, weights: str | None = None, **options) -> dict:
    """What a call's results are made from but its inputs, as a stopped call's saved work records it (JSON's values),
    for the call run again to take that work where it is the same (sample's images, evaluate's measures): the code,
    the versions of torch and Pillow (which decodes and resizes the inputs), the device's kind (their arithmetic
    differs in the last bits), the weights (opened: the checkpoint file this call read, by the digest of its contents
    it was checked against; a model object by its networks' tensors, which may have trained since it was read), the
    model's config `cfg` (with the call's data settings), the loader's layout and backend (the config's "auto" is DALI
    or PIL as installed: their pixels differ; DALI's version where it reads, as Pillow's), and the caller's options.
    The device's kind is also its processor: a CPU's vector instructions as torch's kernels use them (AVX2 and AVX-512
    sum in lanes of another width), a GPU's name and cuDNN's version (their kernels differ): a preempted job run again
    on another cluster node of another kind takes none of the work. weights: weights_digest(model, opened) where the
    caller has it already (a model object's is a pass over all its tensors: compare's, which names a folder by it)."""
    from . import __version__
    recipe = {"format": 1, "bicyclegan": __version__, "torch": torch.__version__, "pillow": PIL.__version__,
              "device": model.device.type, "processor": _processor(model.device),
              "weights": weights_digest(model, opened) if weights is None else weights, "config": cfg.to_dict(),
              "layout": loader.layout, "backend": loader.backend, **options}
    if loader.backend == "dali":
        import nvidia.dali
        recipe["dali"] = nvidia.dali.__version__
    return json.loads(json.dumps(recipe))  # (as read back: tuples are lists)


def weights_digest(model, opened: bool) -> str:
    """The model's weights as made_from records them: where `opened` (read from its checkpoint file by this call), the
    file's digest, checked as it was read (no second pass over the file); else its networks' tensors' (a model object,
    which may have trained since it was read)."""
    from .checkpoint import digest
    return model.source["digest"] if opened else digest(
        {"G": model.sampler.state_dict(), "E": None if model.E is None else model.E.state_dict()})


def _processor(device: torch.device) -> str | None:
    """What made_from records of the device's arithmetic beside its type (None for another type than cpu, cuda)."""
    if device.type == "cpu":
        return torch.backends.cpu.get_cpu_capability()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, cuDNN {torch.backends.cudnn.version()}"
    return None


def input_state(s, folder: Path) -> list:
    """An input (a loader's sample) as a stopped call's saved work records it: each of its files' name below the
    folder read and the digest of its contents (a file replaced keeping its size and time, as tar and rsync -a do,
    is another)."""
    state = []
    for path in (s.path, s.b_path):
        if path is not None:
            try:
                contents = file_sha256(path)
            except OSError:  # (gone since the loader's checks: its reading says so, or skip_bad leaves it out)
                contents = None
            state += [os.path.relpath(path, folder), contents]
    return state


def input_label(path, root, phase: str) -> str:
    """What a gallery calls an input: its file, below the folder read (sub/1.png, 1.jpg). The names of
    its output files cannot say it (1-2_input.png for the second input of stem 1, whichever it is, and
    a file named 1-2.png then writes 1-2-2_input.png)."""
    try:
        return Path(path).resolve().relative_to(inputs_folder(root, phase).resolve()).as_posix()
    except ValueError:  # (a linked folder resolves elsewhere)
        return Path(path).name


def check_apart(out, root, phase: str) -> Path:
    """`out`, unless its images/ folder is (or is inside) the inputs' folder (root/phase, else root: read
    with every folder below it): the call's images would be read as inputs by the next call (sample
    --dataroot . put its default ./results/... among the inputs, and its next call failed on grid.png),
    or be written among the inputs themselves (--dataroot work/images --out work)."""
    read = inputs_folder(root, phase).resolve()
    images = resolved_out(out) / "images"
    if images == read or read in images.parents:
        raise OutputError(f"results folder {out} would put its images/ among the inputs ({read}, read with "
                          "its subfolders); choose --out outside it")
    # The dataset's other splits: --out in its train/ put grid.png and images/ among the training pairs, which the
    # next training read as pairs of the data (or refused, of another size), as train's own --out there is refused.
    splits = [Path(root) / s for s in ("train", *_HELD_OUT)] if read != Path(root).resolve() else []
    if inside := next((f.resolve() for f in splits if f.is_dir() and (f.resolve() == images.parent
                                                                      or f.resolve() in images.parents)), None):
        raise OutputError(f"results folder {out} lies inside {inside}, a split of the dataset {root} (read with its "
                          "subfolders): its images would be read as images of the data; choose --out outside it")
    if os.path.lexists(images) and not images.is_dir():  # (its first image's write said "File exists")
        raise OutputError(f"results folder {out} holds a file, {Path(out) / 'images'}, where the results' images/ "
                          f"folder goes; move it away or choose another --out")
    return Path(out)


def results_dir(checkpoint, name: str) -> Path:
    """Where an inference command's results go by default: <run>/results/<name> for
    <run>/checkpoints/latest.pt (<name>_epoch_N for epoch_N.pt), results/<stem>/<name> for any other
    checkpoint <stem>.pt (the reference's ./results/<name>/), so two models never share a folder."""
    from .checkpoint import run_folder
    ckpt = Path(checkpoint).resolve()
    if ckpt.is_dir():  # a run folder (or its checkpoints/) stands for its latest.pt (checkpoint.find_checkpoint)
        ckpt = run_folder(ckpt) / "checkpoints" / "latest.pt"
    if ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent / "results" / (name if ckpt.stem == "latest" else f"{name}_{ckpt.stem}")
    # (A checkpoint named ...pt has the stem '..': its results went to ./test, over the user's own files there.)
    return Path("results") / (ckpt.stem if ckpt.stem not in (".", "..") else ckpt.name) / name


def load_hw(data: DataConfig, size: tuple[int, int]):
    """resize_and_crop's resize for a crop of `size` (H, W): load_size x load_size for a square crop
    (the reference's); for a non-square crop (crop_width), load_size on the crop's long side and the
    crop's aspect ratio on the other, so that images of that aspect are cropped, not stretched (a
    square resize stretched a 2:1 image to 1:1 and the crop then kept half its height)."""
    h, w = size
    if data.preprocess != "resize_and_crop" or h == w:
        return data.load_size
    long = data.load_size
    return (long, round(long * w / h)) if h > w else (round(long * h / w), long)


def build_loader(model: ModelConfig, data: DataConfig, root, phase: str, *, device, batch_size: int,
                 seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool | None = None,
                 augment: bool | None = None, layout: str | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format):
    """The loader of `root/phase` prepared as `data` says, at `model`'s input size and channels.

    shuffle/augment default to phase == "train": inference gets every file once, in path order (the reference's),
    centre-cropped and unflipped. layout: as make_loader's (None: detected); memory_format: as make_loader's."""
    kw = {} if shuffle is None else {"shuffle": shuffle, "drop_last": shuffle}
    if (pil := Image.MAX_IMAGE_PIXELS) is not None and data.max_pixels > pil:  # (make_loader's ValueError: a traceback)
        raise ConfigError(f"max_pixels={data.max_pixels:,} is over PIL's own limit (PIL.Image.MAX_IMAGE_PIXELS = "
                          f"{pil:,}), under which files are decoded: in Python, raise that too (the bicyclegan "
                          f"commands check each file's size from its header against max_pixels, and turn PIL's "
                          f"limit off)")
    return make_loader(
        root, batch_size=batch_size, load_size=load_hw(data, model.size), crop_size=model.size, phase=phase,
        direction=data.direction, flip=not data.no_flip, backend=data.backend, rank=rank,
        world_size=world, seed=seed, num_workers=data.num_workers, preprocess=data.preprocess,
        input_nc=model.input_nc, output_nc=model.output_nc, device=device, skip_bad=data.skip_bad,
        max_dataset_size=data.max_dataset_size, max_pixels=data.max_pixels, augment=augment, layout=layout,
        memory_format=memory_format, **kw)


def halves_found(layout: str | None, loader) -> bool:
    """check_input_size's `halved`: the loader reads each file as an A|B pair (aligned) in a layout found, not
    given (the layout an inference command was given: None where it detects one)."""
    return layout is None and loader.layout == "aligned"


def check_input_size(A: torch.Tensor, path, model: ModelConfig, preprocess: str, halved: bool = False) -> None:
    """Refuse, naming the file, an input whose sides the generator cannot take (multiples of 2^(U-Net
    depth); only preprocess none leaves other sizes): G's own ValueError was a traceback in interpolate
    and an HTTP 500 in serve. halved: A is half of an A|B file, in the layout found (aligned, a split
    folder's), not one given: there a file of the model's shape, not a pair's (twice as wide), is likely an
    input alone, which only --layout single reads whole (the advice to crop read its halves on, as pairs)."""
    depth = model.unet_depth
    h, w = A.shape[-2:]
    if h % 2 ** depth or w % 2 ** depth:
        side, (mh, mw) = 2 ** depth, model.size
        crop = f"a preprocess that crops (resize_and_crop) or images whose sides are multiples of {side}"
        # (1 % off, or the odd pixel of a file 2w + 1 wide; a pair of the model's inputs is 2 x its width)
        if halved and preprocess == "none" and abs(2 * w * mh - mw * h) <= max(0.01 * mw * h, mh):
            why = (f": it is half of its file, read as an A|B pair (the layout found for a split folder), "
                   f"but the file is of the model's {mw} x {mh} shape, not a pair's; if the folder holds inputs "
                   f"alone, give --layout single" + ("" if not (2 * w % side or h % side) else f", and {crop}"))
        else:
            why = f"; use {crop}"
        raise ConfigError(f"{path} is {w}x{h} after preprocess={preprocess}, not a multiple of {side} "
                          f"(2^{depth}, the generator's depth){why}")


def open_model(model, device="auto"):
    """A BicycleGAN for inference: `model` itself, or the checkpoint at that path loaded onto `device`."""
    from .checkpoint import load_checkpoint
    from .model import BicycleGAN
    check_model_source(model)
    if isinstance(model, BicycleGAN):
        # Used where it is: another device named was ignored without a word (device="cuda" sampled on the CPU)
        if device not in (None, "auto") and (want := pick_device(device)) != model.device and not (
                want.type == model.device.type == "cuda" and want.index is None):
            raise ConfigError(f"device={device!r} given with a model on {model.device}: move the model first "
                              f"(model.to({str(want)!r})), or leave device out")
        return model
    return load_checkpoint(model, device=pick_device(device))


def check_model_source(model, name: str = "model") -> None:
    """Refuse what is neither a BicycleGAN nor a path (a dict, a config, None: pathlib's TypeError, naming no
    argument, or an AttributeError)."""
    from .model import BicycleGAN
    if not isinstance(model, (BicycleGAN, str, os.PathLike)):
        raise TypeError(f"{name} must be a BicycleGAN or a checkpoint's path (a file or a run folder), got "
                        f"{type(model).__name__}")
