"""The project's checkpoint format: networks, optimisers, step, RNG states and config in one file.

Safe to open: a checkpoint holds only tensors and plain values (dicts, lists, numbers, strings), so
it is read with torch.load(weights_only=True), which refuses to unpickle anything that could run
code. Trustworthy: a SHA-256 digest of the contents is written inside the file and checked on
every load, so flipped or lost bytes are an error, not silently wrong weights. Written atomically
(engine/io.py), and never with non-finite weights. (The reference's own files: official.py.)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from bicyclegan.kernels._impl import runs_triton

from .config import TrainConfig, check_bool
from .errors import CheckpointError, ConfigError, DivergenceError
from .io import atomic_write, read_torch_file, signals_held
from .model import BicycleGAN
from .networks import built_shapes

FORMAT = "bicyclegan-checkpoint-v2"
_OLD_FORMATS = ("bicyclegan-checkpoint-v1",)
_REQUIRED = {"format": str, "digest": str, "config": dict, "step": int, "epoch": int, "nets": dict}


# -- RNG state as tensors and plain values (weights-only loadable) ----------------------------------
def rng_state(device: torch.device, host: bool = False) -> dict:
    """The random generators' states: torch's CPU one and, training on a GPU, that GPU's (the one whose draws
    are the run's z; not every GPU's by index, which a host of fewer GPUs, or a run resumed on another, could
    not put back where they were drawn); host=True: numpy's and Python's too (the caller's, which rng_kept
    keeps). A checkpoint holds the run's alone: nothing of a run draws from numpy's or Python's, never seeded,
    whose states made the files (and their digests) of two identical runs differ."""
    state = {"torch": torch.get_rng_state()}
    if host:
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, py_gauss = random.getstate()
        state["numpy"] = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)}
        state["python"] = {"version": version, "internal": list(internal), "gauss": py_gauss}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Put back what rng_state saved; its GPU generator's state goes to `device`, the run's GPU now. (An older
    checkpoint's numpy and Python states go back too: inside rng_kept, as every resume is.)"""
    torch.set_rng_state(state["torch"])
    if (n := state.get("numpy")) is not None:
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if (p := state.get("python")) is not None:
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    device = torch.device(device)
    cuda = state.get("cuda")
    if isinstance(cuda, list):  # an earlier version's: every GPU's state, by index
        cuda = cuda[device.index or 0] if device.type == "cuda" and (device.index or 0) < len(cuda) else None
    if cuda is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda, device)


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed the generators a run on `device` draws from: torch's CPU one and, on a GPU, that GPU's. Not
    torch.manual_seed, which reseeds every GPU's: a notebook's other GPUs keep their streams."""
    torch.default_generator.manual_seed(seed)
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.init()  # (default_generators is filled at CUDA's initialisation)
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)


@contextlib.contextmanager
def rng_kept(device: torch.device):
    """The caller's random generators (those rng_state covers: torch's CPU one and `device`'s, numpy's,
    Python's) as they were, however the block is left: the Python API seeds and draws from them as the
    command does (a run's draws are resumable only from those generators), inside someone else's program."""
    state = rng_state(device, host=True)
    try:
        yield
    finally:
        set_rng_state(state, device)


# -- integrity -------------------------------------------------------------------------------------
def _feed(h, obj) -> None:
    """Hash obj canonically: tensors by dtype, shape and bytes; containers in key order."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"V{obj!r}".encode())


def digest(state: dict) -> str:
    """SHA-256 of everything in a checkpoint but its own digest."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "digest"})
    return h.hexdigest()


# -- writing and reading ---------------------------------------------------------------------------
# The engine's entries beside save_checkpoint's own, which readers interpret: a training's (its data, its log
# interval, its ranks'), an import's, a download's, the moving average's (absent with ema 0).
ENGINE_ENTRIES = frozenset({"model_class", "model_spec", "steps_per_epoch", "samples", "samples_digest", "backend",
                            "world", "log_interval", "best", "eval_owed", "rank_rng", "rank_log_interval", "imported",
                            "source", "ema", "ema_steps", "digest"})


def save_checkpoint(model: BicycleGAN, path, *, step: int = 0, epoch: int = 0, extra: dict | None = None,
                    own: dict | None = None) -> Path:
    """Write `model` (networks, optimisers, scaler, EMA), the step, epoch, RNG states and config; `extra`: entries
    of the caller's beside them (a name of the checkpoint's own entries or of ENGINE_ENTRIES is refused:
    ValueError); `own`: the engine's (the trainer's, an import's), of ENGINE_ENTRIES.

    Refuses (DivergenceError) to write non-finite weights or optimizer state (Adam's inf moments froze weights for
    good, and a resume kept them): the file at `path` stays as it was."""
    bad = model.nonfinite(optimizers=True)
    if bad:
        raise DivergenceError(f"refusing to write checkpoint {path}: {model.describe_nonfinite(bad)}")
    state = {"format": FORMAT, "config": model.cfg.to_dict(), "step": int(step), "epoch": int(epoch),
             "rng": rng_state(model.device), "arithmetic": arithmetic(model), **model.training_state()}
    if stray := set(own or {}) - ENGINE_ENTRIES:
        raise ValueError(f"own={sorted(stray)}: not the engine's entries (ENGINE_ENTRIES); a caller's go in extra")
    if clash := sorted(set(extra or {}) & (set(state) | ENGINE_ENTRIES)):
        # (extra={"config": ...} replaced the model's config: a file its loader refused, the model's config lost)
        raise ValueError(f"extra={{{', '.join(map(repr, clash))}: ...}}: the checkpoint's own "
                         f"entr{'y' if len(clash) == 1 else 'ies'} (it holds {', '.join(sorted(state))}, and the "
                         f"engine's {', '.join(sorted(ENGINE_ENTRIES - set(state)))} where they apply); give yours "
                         f"other names, e.g. one key of your own for them all")
    return write_state({**state, **(own or {}), **(extra or {})}, path)


def arithmetic(model: BicycleGAN) -> dict:
    """What decides how a step rounds beyond the config: torch's version, the device it ran on (a GPU by its
    name), the layers built (impl "auto" resolves per device) and the CPU's threads (its reductions split
    by them). A resume that changes one parts from an uninterrupted run in the last digits: said then
    (a resume on another torch or with other threads was silent, its options the same strings)."""
    cuda = model.device.type == "cuda"
    return {"torch": str(torch.__version__), "device": torch.cuda.get_device_name(model.device) if cuda else "cpu",
            "impl": model.impl, "threads": None if cuda else torch.get_num_threads()}


def write_state(state: dict, path) -> Path:
    """Write a checkpoint's contents (save_checkpoint's, or read_checkpoint's with an entry changed) with
    their digest, atomically: the file at `path` is the old one or the new one, whole."""
    state["digest"] = digest(state)
    with signals_held():  # (import-official's, download model's: a SIGTERM inside torch.save read as a full disk)
        return atomic_write(path, lambda f: torch.save(state, f), what="checkpoint", error=CheckpointError)


def read_checkpoint(path) -> dict:
    """The checked contents of a checkpoint file (or of a run folder's checkpoints/latest.pt, as
    load_checkpoint takes it); CheckpointError says why one cannot be used."""
    path = find_checkpoint(path)  # a run folder was "checkpoint runs/x does not exist"
    try:
        state = read_torch_file(path, what="checkpoint", error=CheckpointError)
    except CheckpointError:
        if (old := _old_format_in(path)) is not None:
            # (its numpy random state is refused by the weights-only loader: "could run code" told nothing of it)
            raise _older_format(path, old) from None
        raise
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a bicyclegan checkpoint (no format marker); for the "
                              f"reference's *_net_G.pth files use import-official")
    if state["format"] in _OLD_FORMATS:
        raise _older_format(path, state["format"])
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {state['format']!r}; this version reads {FORMAT}")
    for key, typ in _REQUIRED.items():
        if not isinstance(state.get(key), typ):
            raise CheckpointError(f"{path} is incomplete: '{key}' is missing or not a {typ.__name__}")
    if (short := next(_short_tensors(state), None)) is not None:
        raise _expanded(path, short)
    if digest(state) != state["digest"]:
        raise CheckpointError(f"{path} is damaged: its contents do not match the digest written with it "
                              f"(changed or corrupted bytes); use another checkpoint")
    return state


def _short_tensors(obj, where: str = ""):
    """Where the tensors of `obj` are whose storage holds fewer bytes than their shape takes (expanded, stride 0):
    the digest's read makes each whole, and the model built for them is as large (a 31 KB file of expanded
    weights, its config saying ngf 256, built 267 M parameters)."""
    if isinstance(obj, torch.Tensor):
        if obj.numel() * obj.element_size() > obj.untyped_storage().nbytes():
            yield where
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _short_tensors(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _short_tensors(v, f"{where}[{i}]")


def _expanded(path, where: str) -> CheckpointError:
    return CheckpointError(f"{path} is damaged: its tensor {where} holds fewer values than its shape (stored "
                           f"expanded, as no checkpoint of ours is); use another checkpoint")


class OlderFormatError(CheckpointError):
    """A checkpoint of an older bicyclegan format: kept (never replaced by a command's output, nor its run deleted
    on our advice) for the version that wrote it."""


def _older_format(path, fmt: str) -> CheckpointError:
    return OlderFormatError(f"{path} is a checkpoint of an older bicyclegan format ({fmt}, written before 2026-11-30), "
                            f"which this version does not read: use it with the version that wrote it, or start a new "
                            f"run")


def older_run(run_dir, elsewhere: bool = False) -> CheckpointError | None:
    """The refusal for a run folder whose checkpoints are of an older format (its config.json holds that version's
    fields), None for any other folder: its commands said "unknown TrainConfig fields", to give its options again,
    to pass --resume, or to delete it. Its latest.pt decides, else its epoch_N.pt (a run of epoch checkpoints
    only, or one whose latest.pt is damaged); another file there (an old checkpoint copied in) says nothing of
    the run. elsewhere: the command would write into the folder (a new run there), which another --out avoids."""
    folder = Path(run_dir, "checkpoints")
    latest = [folder / LATEST] if (folder / LATEST).is_file() else []
    for path in [*latest, *(folder / epoch_name(e) for e in reversed(saved_epochs(folder)))]:
        try:
            peek_checkpoint(path)
            return None  # (one of this format says the run's: 2,000 epoch files were each opened, 23 ms apiece)
        except OlderFormatError:
            return OlderFormatError(f"{run_dir} is a run of an older bicyclegan version (its checkpoints, e.g. "
                                    f"{path.name}, are of a format written before 2026-11-30), which this version "
                                    f"neither continues nor starts from: use it with the version that wrote it"
                                    + (", or start a new run in another --out" if elsewhere else ""))
        except CheckpointError:
            continue
    return None


def _old_format_in(path) -> str | None:
    """The older format named in a checkpoint file that cannot be loaded weights-only (_OLD_FORMATS: v1 kept
    numpy arrays), found in its pickle's bytes without unpickling them; None where none is."""
    try:
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    except (OSError, zipfile.BadZipFile, StopIteration, KeyError):
        return None
    return next((f for f in _OLD_FORMATS if f.encode() in data), None)


def old_import(state: dict) -> bool:
    """Whether a checkpoint's contents may be an import's (import-official, download model) written before imports
    recorded their networks ("imported"): step 0 and no "steps_per_epoch", which every checkpoint of train has. (So
    is a step-0 save_checkpoint() of the Python API's: which networks such a file's import took cannot be told.)"""
    return state.get("imported") is None and not state.get("step") and state.get("steps_per_epoch") is None


def peek_checkpoint(path, *keys) -> tuple:
    """The plain values `keys` of a checkpoint (step, an extra's entry; None where absent) without reading
    its tensors (memory-mapped) or checking its digest: bookkeeping about a file, maybe of gigabytes,
    that is not loaded."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError:
            head = b""
        # (a text or an image said torch's advice for its memory-mapped loading: "torch.save your checkpoint with
        # _use_new_zipfile_serialization=True")
        why = (f"not a torch file: it begins {head!r}" if head and not head.startswith(b"PK\x03\x04") else
               f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
        if (old := _old_format_in(path)) is not None:  # (an UnpicklingError's "move it away" said of a run's own)
            raise _older_format(path, old) from None
        raise CheckpointError(f"{path} cannot be read ({why}); move it away") from e
    if isinstance(state, dict) and state.get("format") in _OLD_FORMATS:
        raise _older_format(path, state["format"])
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a bicyclegan checkpoint of format {FORMAT}; move it away")
    return tuple(state.get(k) for k in keys)


def is_checkpoint(path) -> bool:
    """Whether `path` is a file holding a checkpoint of train or import-official (read without its tensors), of
    this format or an older one (which the refusal to read it says to keep): what a command's output file must not
    replace (export's --out, evaluate's --json)."""
    try:
        return Path(path).is_file() and peek_checkpoint(path) == ()
    except OlderFormatError:
        return True
    except CheckpointError:  # anything else (an earlier export, results): it may be replaced
        return False


def epochs_done(step: int, epoch: int, steps_per_epoch: int | None) -> int:
    """The epochs a checkpoint's weights were trained for. Its `epoch` is where a resumed run goes on:
    epoch_N.pt says N, and a run's last latest.pt the epoch it ended in (559 after 560 epochs, beside
    epoch_560.pt of the same step); the steps say it alike for both, where the epoch's length is known
    (trainer checkpoints; not import-official's)."""
    return step // steps_per_epoch if steps_per_epoch else epoch


def config_of(state: dict, path) -> TrainConfig:
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: its stored config is not valid for this version: {e}") from e
    return _where_the_data_went(cfg, path)


def _where_the_data_went(cfg: TrainConfig, path) -> TrainConfig:
    """cfg, with the data folder its run's config.json names now where the one the checkpoint names is gone: a run
    resumed with --dataroot after its data moved records the new folder, and its checkpoints from before the move
    (epoch_N.pt, best.pt) still named the old one (`sample RUN` worked, `sample RUN --epoch 2` did not)."""
    old, run = cfg.data.dataroot, run_of_checkpoint(path)
    if old is None or os.path.isdir(old) or run is None:
        return cfg
    try:
        now = json.loads((run / "config.json").read_text())["data"]["dataroot"]
    except (OSError, ValueError, KeyError, TypeError):
        return cfg
    if isinstance(now, str) and os.path.isdir(now):
        cfg.data.dataroot = now
    return cfg


def peek_config(path) -> TrainConfig:
    """The config stored in a checkpoint, read as peek_checkpoint reads (no tensors, no digest check): what a
    command checks its options against before it loads anything."""
    return config_of({"config": peek_checkpoint(path, "config")[0]}, path)


def encoder_trained(state: dict, cfg) -> bool:
    """Whether a checkpoint's E encodes as the model's: not where its variant has none, an import-official without
    an E file, or a cLR-GAN an earlier version trained without the latent regression (E's only signal): an encoder
    as initialised, whose "encoded" outputs would pass for the model's (a training run from it trains one)."""
    return ("E" in cfg.trained_networks and "E" in state.get("imported", ["E"])
            and not (cfg.variant == "clr" and cfg.lambda_z == 0 and not cfg.init_from))


def load_checkpoint(path, device=None, *, training: bool = False, **model_overrides) -> BicycleGAN:
    """A BicycleGAN rebuilt from the config stored in the checkpoint, with its weights.

    training=False (inference: sample, evaluate, export) builds and loads G (its moving average
    when there is one) and E only, in eval mode; training=True everything, optimisers included.
    `model_overrides` replace ModelConfig fields that do not change the weights (impl, channels_last).
    For inference a stored impl="triton" that `device` cannot run becomes "auto".
    path: a checkpoint file, or a run folder (its checkpoints/latest.pt), as every command takes it."""
    training = check_bool("training", training)
    if device is not None:  # "auto" as every command takes it ("Expected one of cpu, cuda, ..." from torch before)
        from .runtime import pick_device
        device = pick_device(device)
    # A run folder was "checkpoint runs/x does not exist" for sample(), evaluate() and the other
    # functions, while export_generator() and the commands took it.
    path = find_checkpoint(path)
    state = read_checkpoint(path)
    cfg = config_of(state, path)
    cfg.compile = "off"  # a training-speed option: sampling a few images would wait for compilation
    for k, v in model_overrides.items():
        if k not in MODEL_RESUMABLE_CHANGES:
            raise ConfigError(f"load_checkpoint: {k} changes the networks; only "
                              f"{', '.join(sorted(MODEL_RESUMABLE_CHANGES))} may be overridden")
        setattr(cfg.model, k, v)
    if not training and "impl" not in model_overrides and cfg.model.impl == "triton" and \
            not runs_triton(device if device is not None else "cpu"):  # None: built on the CPU
        # impl changes speed, not weights: a model trained with the kernels on a GPU still samples where
        # they cannot run (a CPU machine), as the data falls back from DALI (runtime.inference_data);
        # kept as it was, every forward raised. Training (resume) refuses it with advice instead.
        cfg.model.impl = "auto"
    if training:  # (before the weights' check, which would name the networks such a config builds no more)
        BicycleGAN.check_trainable(cfg)
    check_weights_fit(state, cfg, training, path)
    # Built on the CPU, its initial weights replaced below: drawn from a fork of torch's generator, so that the
    # caller's next draws are those it would have had (sample, evaluate and the others load models this way).
    with torch.random.fork_rng(devices=[]):
        model = BicycleGAN(cfg, device=device, training=training)  # (which checks the config changed above)
    try:
        model.load_training_state(state, strict=training)
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: its weights do not fit its own config: {str(e).splitlines()[0]}") from e
    model.source = {"path": str(path), "digest": state["digest"], "step": state["step"],
                    "epoch": epochs_done(state["step"], state["epoch"], state.get("steps_per_epoch"))}
    if not training and not encoder_trained(state, cfg):
        model.E = None
    if not training:  # model.generate() from Python ran dropout and moved BatchNorm's running statistics
        model.eval()
    return model


def check_weights_fit(state: dict, cfg: TrainConfig, training: bool, path, names=None) -> None:
    """The checkpoint's weights against what its config builds, before the model is built: a 3 KB file whose
    config said ngf 1024 and which held no weights took 18 GB (and two minutes) to be refused. names: the networks
    checked (default: those a model of `training` builds)."""
    if names is None:
        names = [n for n in cfg.trained_networks if training or n in ("G", "E")]  # (what BicycleGAN builds)
    if missing := sorted(n for n in names if not isinstance(state["nets"].get(n), dict)):
        raise CheckpointError(f"{path}: its weights do not fit its own config: checkpoint lacks networks {missing}")
    for name, shapes in built_shapes(cfg.model, names).items():
        for key, shape in shapes.items():
            if not isinstance(t := state["nets"][name].get(key), torch.Tensor) or t.shape != shape:
                held = f"is {tuple(t.shape)}" if isinstance(t, torch.Tensor) else "is missing"
                raise CheckpointError(f"{path}: its weights do not fit its own config: {name}.{key} {held} where "
                                      f"its config builds {tuple(shape)}")
            if next(_short_tensors(t), None) is not None:  # (the shape alone, of a stride-0 tensor, fits)
                raise _expanded(path, f"{name}.{key}")


# Fields that may differ between a checkpoint and the run resuming from it.
# The evaluations' options change no weight: the trainer refuses, instead, a resume that would log
# evaluations of another protocol beside the run's earlier ones, or keep best.pt by another measure.
RESUMABLE_CHANGES = {"niter", "niter_decay", "max_steps", "log_every", "sample_every", "keep_grids", "save_every",
                     "save_epoch_freq", "device", "n_samples", "out", "cuda_graph", "compile", "eval_every",
                     "eval_metrics", "eval_num", "eval_samples", "keep_best", "lpips_backbone", "lpips_linear",
                     "fid_weights"}
DATA_RESUMABLE_CHANGES = {"dataroot", "num_workers", "backend", "skip_bad", "max_pixels"}
MODEL_RESUMABLE_CHANGES = {"impl", "channels_last"}
# How a run began (the weights it started from): a resumed run keeps its checkpoint's, so they are
# not compared (a run of an older version has none).
STARTED_FROM = ("init_from", "fresh_D")


def config_differences(saved: dict, cfg: TrainConfig, was: str = "checkpoint") -> list[str]:
    """What of `cfg` a resume may not change differs from the run's config `saved` (its checkpoint's, or
    config.json's: `was` names it), each as "field: checkpoint X vs now Y"."""
    now, default = cfg.to_dict(), TrainConfig().to_dict()
    diffs = []
    for part, allowed in ((None, RESUMABLE_CHANGES), ("data", DATA_RESUMABLE_CHANGES),
                          ("model", MODEL_RESUMABLE_CHANGES)):
        # A field the checkpoint's version did not have yet (sync_bn) had its default there.
        theirs = {**default, **saved} if part is None else {**default[part], **saved.get(part, {})}
        ours = now if part is None else now[part]
        prefix = "" if part is None else f"{part}."
        diffs += [f"{prefix}{k}: {was} {theirs.get(k)!r} vs now {v!r}" for k, v in ours.items()
                  if k not in allowed and k not in ("model", "data", *STARTED_FROM) and theirs.get(k) != v]
    return diffs


def check_compatible(saved: dict, cfg: TrainConfig, path) -> None:
    """Refuse to resume a run whose networks, data preparation or objective differ from the checkpoint's."""
    if diffs := config_differences(saved, cfg):
        may = sorted(RESUMABLE_CHANGES | DATA_RESUMABLE_CHANGES | MODEL_RESUMABLE_CHANGES)
        raise CheckpointError(f"checkpoint {path} was written with another config; differences: "
                              + "; ".join(diffs) + f" (a resumed run continues the same training: only "
                              f"{', '.join(may)} may change; for others, start a new run from its weights with "
                              f"--init_from)")


# -- which checkpoint: a run's latest, its best or one of its per-epoch checkpoints -----------------
LATEST = "latest.pt"
BEST = "best.pt"  # the checkpoint of the run's best evaluation so far (--keep_best)


def epoch_name(epoch: int) -> str:
    """The file name of the checkpoint kept after `epoch` complete epochs (--save_epoch_freq)."""
    return f"epoch_{epoch}.pt"


def epoch_of(name: str) -> int | None:
    """N of a file named as epoch_name names it (epoch_N.pt), else None: a copy named epoch_05.pt was listed as
    epoch 5 and then opened as epoch_5.pt, which is not there."""
    return int(m[1]) if (m := re.fullmatch(r"epoch_(0|[1-9][0-9]*)\.pt", name)) else None


def saved_epochs(folder) -> list[int]:
    """The N of the folder's epoch_N.pt files (epoch_of)."""
    return sorted(n for p in Path(folder).glob("epoch_*.pt") if (n := epoch_of(p.name)) is not None)


def run_of_checkpoint(path) -> Path | None:
    """The run folder of <run>/checkpoints/X.pt or of <run>/checkpoints/abandoned_after_step_<N>/X.pt (set aside
    by a resume that went back: still the run's), named from any folder (epoch_1.pt from inside checkpoints/); None
    for a checkpoint outside a run."""
    folder = Path(os.path.abspath(path)).parent
    if folder.name.startswith(ABANDONED):
        folder = folder.parent
    return folder.parent if folder.name == "checkpoints" else None


# In a run's checkpoints/ folder: a run resumed from an earlier checkpoint moves the checkpoints of the
# continuation it abandons (past the step it went back to) into abandoned_after_step_<step>[_<k>]/.
ABANDONED = "abandoned_after_step_"


def abandoned_folder(folder, step: int) -> Path:
    """A folder not yet there, in `folder`, for the checkpoints a run resumed at `step` leaves behind:
    abandoned_after_step_<step>, then _2, _3... for a run that went back to that step again."""
    path, k = Path(folder) / f"{ABANDONED}{step}", 1
    while path.exists():
        k += 1
        path = Path(folder) / f"{ABANDONED}{step}_{k}"
    return path


def resume_point(folder) -> tuple[bool, int | None]:
    """Whether the run whose checkpoints are in `folder` can be continued, and from which: (True, None) from its
    latest.pt (or a later checkpoint beside it: newest_beside), (True, N) from its newest epoch_N.pt (a run with
    --save_epoch_freq stopped before its first latest.pt), (False, None) where it holds no checkpoint."""
    if (Path(folder) / LATEST).exists():
        return True, None
    epochs = saved_epochs(folder)
    return (True, epochs[-1]) if epochs else (False, None)


def newest_beside(latest: Path) -> Path:
    """The checkpoint a plain resume continues the run from: its `latest` (RUN/checkpoints/latest.pt), or the
    epoch_N.pt or best.pt beside it of a later step (a run killed after writing one of those and before its next
    latest.pt, written every save_every steps alone, went back to the older latest.pt and set the newer checkpoint
    aside as another continuation's); latest.pt on a tie, then the epoch's. Of the epochs' the newest alone is
    read (their steps grow with N; a run keeping hundreds read each), its header alone (peek_checkpoint); a file
    whose step cannot be read is passed over, and an unreadable latest.pt kept (the resume's read says what is
    wrong)."""
    def step_of(path: Path) -> int | None:
        try:
            return peek_checkpoint(path, "step")[0] if path.is_file() else None
        except CheckpointError:
            return None
    newest, at = latest, step_of(latest)
    for path in [*(latest.parent / epoch_name(n) for n in saved_epochs(latest.parent)[-1:]), latest.parent / BEST]:
        if at is not None and (step := step_of(path)) is not None and step > at:
            newest, at = path, step
    return newest


def continue_option(folder) -> str | None:
    """The `bicyclegan train` option that continues the run whose checkpoints are in `folder` (resume_point):
    "--resume", "--epoch N", or None when it holds no checkpoint."""
    can, epoch = resume_point(folder)
    return None if not can else "--resume" if epoch is None else f"--epoch {epoch}"


# resume="auto" (`train --resume auto`): continue the run if it saved, else start it
AUTO = "auto"


def auto_resume(run, epoch: int | None = None) -> tuple[bool, int | None]:
    """(resume, epoch) for resume="auto" in the run folder `run`: its newest checkpoint (latest.pt, else its newest
    epoch_N.pt) where it holds one, else (False, None): a new run. One command for a job a scheduler may start
    again (torchrun --max-restarts, a SLURM requeue), where --resume failed on the first start (no checkpoint)
    and a plain start on every later one (a run there)."""
    if epoch is not None:
        raise ConfigError(f"--epoch {epoch} (epoch={epoch!r}) picks one of the run's checkpoints; --resume auto "
                          f"(resume=\"auto\") picks its newest itself: give one")
    if Path(AUTO).exists():  # (the string was a path before "auto" meant this)
        raise ConfigError(f"--resume auto (resume=\"auto\") continues or starts the run in {run}, and a file named "
                          f"{AUTO!r} is in this folder too: name it ./{AUTO} to resume from it")
    return resume_point(Path(run) / "checkpoints")


def _no_epochs_yet(run: Path) -> str:
    """Why a run folder holds no epoch_N.pt: it keeps none, or keeps one every N epochs and has not got to the
    first (a --preset edges2shoes run stopped before epoch 5 was told to train with --save_epoch_freq N)."""
    try:
        every = json.loads((run / "config.json").read_text()).get("save_epoch_freq")
    except (OSError, ValueError, AttributeError):
        every = None
    if isinstance(every, int) and every > 0:
        return f"the run keeps one every {every} epochs (--save_epoch_freq {every}) and has not finished epoch {every}"
    return "the run kept no per-epoch checkpoints (train with --save_epoch_freq N)"


def run_folder(folder) -> Path:
    """The run of a folder given as one: the folder itself where it holds checkpoints/ (a run trained with --out
    checkpoints was taken for its own checkpoints/ folder), else its parent where it is named checkpoints (the folder
    a user looks into to see the epochs: `evaluate RUN/checkpoints --epoch all` took it, `sample RUN/checkpoints`
    said "not a run folder")."""
    folder = Path(folder)
    return folder.parent if folder.name == "checkpoints" and not (folder / "checkpoints").is_dir() else folder


def find_checkpoint(path, epoch: int | str | None = None) -> Path:
    """The checkpoint to read: `path` itself, or for a run folder (or its checkpoints/: run_folder) its
    checkpoints/latest.pt; with `epoch`, the epoch_<epoch>.pt beside that file, or with epoch="best" its best.pt.
    CheckpointError says which epochs there are."""
    if not isinstance(path, (str, os.PathLike)):  # (None was pathlib's TypeError, naming no argument)
        raise TypeError(f"a checkpoint is given by its path (a file or a run folder), got {type(path).__name__}")
    path = run_folder(path) if Path(path).is_dir() else Path(path)
    folder = path / "checkpoints" if path.is_dir() else path.parent
    if path.is_dir() and not folder.is_dir():  # a dataset given where the model goes, say
        raise CheckpointError(f"{path} is not a run folder (it has no checkpoints/ folder): give a folder that "
                              f"train wrote (its --out) or a checkpoint file (RUN/checkpoints/latest.pt, NAME.pt); "
                              f"a dataset goes in --dataroot")
    found = (folder / BEST if epoch == "best" else folder / epoch_name(epoch) if epoch is not None else
             folder / LATEST if path.is_dir() else path)
    if not found.is_file():
        if epoch == "best":
            raise CheckpointError(f"no {BEST} in {folder}: the run kept none (train with --eval_every N --keep_best "
                                  f"MEASURE keeps the checkpoint of its best evaluation)")
        if epoch is None and path.is_dir():
            have = saved_epochs(folder)
            raise CheckpointError(f"run folder {path} holds no checkpoints/{LATEST}: " + (
                f"the run kept per-epoch checkpoints only (epochs {', '.join(map(str, have))}): pick one with "
                # (sample, evaluate, interpolate in Python have no epoch argument: they take the file)
                f"--epoch N or give its file, {folder / 'epoch_N.pt'} (in Python: epoch=N to train, the file "
                f"elsewhere)" if have else "the run stopped before its first checkpoint"))
        if epoch is None:
            raise CheckpointError(f"checkpoint {found} does not exist")
        if not path.exists() and not (path.parent.name == "checkpoints" and path.parent.is_dir()):
            # a run folder mistyped, or not made yet: "the run kept no per-epoch checkpoints" spoke of
            # its parent folder as of a run (a run's own latest.pt may be missing beside its epoch files)
            where = path.parent.parent if path.parent.name == "checkpoints" else path
            raise CheckpointError(f"no checkpoint for epoch {epoch}: {where} does not exist (give the run's folder, "
                                  f"the --out train wrote)")
        have = saved_epochs(folder)
        # One of a continuation the run abandoned (moved aside when it went back to an earlier checkpoint).
        aside = sorted(folder.glob(f"{ABANDONED}*/{epoch_name(epoch)}"), key=lambda p: p.stat().st_mtime)
        raise CheckpointError(f"no checkpoint for epoch {epoch} in {folder}: " + (
            f"epochs saved there: {', '.join(map(str, have))}" if have else _no_epochs_yet(folder.parent)) + (
            f"; {' and '.join(map(str, aside))} belong{'s' if len(aside) == 1 else ''} to a continuation the run "
            f"abandoned when it was resumed from an earlier checkpoint: give that file to sample or evaluate it, "
            f"or to train on from it in a new run folder (train --resume FILE --out NEW; resume=FILE, a new out in "
            f"Python)" if aside else ""))
    return found


# ModelConfig fields that a run may change when it starts from a checkpoint's weights (fine-tuning):
# none of them shapes a tensor (the U-Net depth that num_downs and the size decide is compared itself).
_FINE_TUNE_FREE = {"impl", "channels_last", "crop_size", "crop_width", "num_downs", "use_dropout",
                   "init_type", "init_gain"}


# The discriminators' own options: free when the checkpoint's discriminators were never trained.
_D_OPTIONS = {"ndf", "netD", "netD2", "num_Ds", "conditional_D", "use_same_D"}


def check_same_networks(saved: dict, cfg: TrainConfig, path, discriminators_free: bool = False) -> None:
    """Refuse to start a run from a checkpoint whose networks differ from the run's; data, schedule,
    image size and dropout may change (fine-tuning), the networks may not, nor the variant but with new
    discriminators (a D's role is its variant's: cvae's judges encoded outputs, clr's random ones): cVAE-GAN's
    G and E, then BicycleGAN, the ablation's natural next step, was refused.
    discriminators_free: the checkpoint's D and D2 are untrained (import-official without them), or new
    (--fresh_D), so the run may choose its own."""
    theirs = config_of({"config": saved}, path)
    free = _FINE_TUNE_FREE | (_D_OPTIONS if discriminators_free else set())
    differ = {k: getattr(theirs.model, k) for k, v in vars(cfg.model).items()
              if k not in free and getattr(theirs.model, k) != v}
    diffs = [f"{k}: checkpoint {theirs_v!r} vs now {getattr(cfg.model, k)!r}" for k, theirs_v in differ.items()]
    if theirs.model.unet_depth != cfg.model.unet_depth:
        diffs.append(f"U-Net depth: checkpoint {theirs.model.unet_depth} vs now {cfg.model.unet_depth}")
        differ["num_downs"] = theirs.model.unet_depth
    if theirs.variant != cfg.variant and not discriminators_free:
        diffs.append(f"variant: checkpoint {theirs.variant!r} vs now {cfg.variant!r}")
        differ["variant"] = theirs.variant
    if diffs:
        # The checkpoint's values as options: an option given by hand is the likely cause (a preset's are
        # right for its dataset, not for a checkpoint trained otherwise).
        options = " ".join(f"--{'' if v else 'no-'}{k}" if isinstance(v, bool) else f"--{k} {v}"
                           for k, v in differ.items())
        d_differs = not discriminators_free and bool(differ.keys() & {*_D_OPTIONS, "variant"})
        raise CheckpointError(f"{path} holds other networks than this run's: " + "; ".join(diffs)
                              + f" (start from it with its model options: {options}, the same make_config fields "
                                "in Python, or leave out the options that set these"
                              + ("; --fresh_D trains new discriminators of this run's options and variant"
                                 if d_differs else "")
                              + ")")
