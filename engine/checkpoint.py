"""Checkpoints: networks, optimisers, step, RNG states and config in one file, written atomically.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one: a kill or a full disk mid-write never leaves a broken or half-written "latest".
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .model import BicycleGAN

FORMAT = "bicyclegan-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the run."""


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to `path` via a temp file + fsync + rename; on any error the old file stays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e} "
                                  f"(the previous checkpoint, if any, is intact)") from e
        raise


def save_checkpoint(model: BicycleGAN, path, *, step: int = 0, epoch: int = 0,
                    schedulers: dict | None = None, extra: dict | None = None) -> None:
    state = {
        "format": FORMAT,
        "config": model.cfg.to_dict(),
        "step": step,
        "epoch": epoch,
        "rng": rng_state(),
        "schedulers": {n: s.state_dict() for n, s in (schedulers or {}).items()},
        **model.training_state(),
        **(extra or {}),
    }
    atomic_save(state, path)


def _torch_load(path, weights_only: bool):
    """torch.load onto the CPU; a missing or unreadable file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {e}") from e


def read_checkpoint(path) -> dict:
    state = _torch_load(path, weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a bicyclegan checkpoint (no '{FORMAT}' marker); "
                              f"for the reference's *_net_G.pth files use import-official")
    return state


def load_checkpoint(path, device=None, **overrides) -> BicycleGAN:
    """A BicycleGAN rebuilt from the config stored in the checkpoint, with its weights.
    `overrides` replace ModelConfig fields that do not change the weights (e.g. impl="ref")."""
    state = read_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"])
    cfg.compile = "off"  # a training-speed option: sampling a few images would wait for compilation
    for k, v in overrides.items():
        setattr(cfg.model, k, v)
    model = BicycleGAN(TrainConfig.from_dict(cfg.to_dict()), device=device)
    model.load_training_state(state)
    return model


# Fields that may differ between a checkpoint and the run resuming from it.
RESUMABLE_CHANGES = {"niter", "niter_decay", "max_steps", "log_every", "sample_every", "save_every",
                     "num_workers", "backend", "device", "n_samples", "out", "dataroot",
                     "cuda_graph", "compile"}
MODEL_RESUMABLE_CHANGES = {"impl", "channels_last"}


def check_compatible(saved: dict, cfg: TrainConfig, path) -> None:
    """Refuse to resume a run whose networks or objective differ from the checkpoint's."""
    now = cfg.to_dict()
    diffs = [f"{k}: checkpoint {saved[k]!r} vs now {now[k]!r}" for k in now
             if k not in RESUMABLE_CHANGES and k != "model" and saved.get(k) != now[k]]
    diffs += [f"model.{k}: checkpoint {saved['model'].get(k)!r} vs now {v!r}" for k, v in now["model"].items()
              if k not in MODEL_RESUMABLE_CHANGES and saved["model"].get(k) != v]
    if diffs:
        raise CheckpointError(f"checkpoint {path} was written with another config; differences: "
                              + "; ".join(diffs))


def _load_state_dict_file(path) -> dict:
    sd = _torch_load(path, weights_only=True)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return sd


def load_official_into(net: torch.nn.Module, path) -> None:
    """Load a state_dict saved by the reference implementation into our network.

    Our modules are arranged differently (names differ: e.g. the reference's `model.submodule.down.1`
    is our `model.submodule.down`), but they register the same tensors in the same order, so
    entries are matched by position and each shape is checked. (Checked against the authors' code:
    G in three configurations, E resnet/conv and D give identical outputs after import.)"""
    theirs = list(_load_state_dict_file(path).items())
    ours = net.state_dict()
    # Where top-level names agree (E's conv/fc/fcVar), follow our order of them: the reference's
    # E_ResNet registers fc before conv.
    tops = list(dict.fromkeys(k.split(".")[0] for k in ours))
    rank = {t: i for i, t in enumerate(tops)}
    theirs = [kv for _, kv in sorted(enumerate(theirs), key=lambda e: (rank.get(e[1][0].split(".")[0], 0), e[0]))]
    if len(theirs) != len(ours):
        raise CheckpointError(f"{path} holds {len(theirs)} tensors, the configured {type(net).__name__} has "
                              f"{len(ours)}: the ModelConfig (netG/netE/netD, where_add, norm, upsample, "
                              f"nz, ngf...) does not match the network that was saved")
    for (k_ours, v_ours), (k_theirs, v_theirs) in zip(ours.items(), theirs):
        if v_ours.shape != v_theirs.shape:
            raise CheckpointError(f"{path}: {k_theirs} has shape {tuple(v_theirs.shape)} but our {k_ours} "
                                  f"has {tuple(v_ours.shape)}; check the ModelConfig")
    net.load_state_dict({k: v for k, (_, v) in zip(ours, theirs)})


def import_official(model_cfg, G, E=None, D=None, D2=None, variant: str = "bicycle") -> BicycleGAN:
    """A BicycleGAN holding the weights of the reference's {epoch}_net_{G,E,D,D2}.pth files."""
    cfg = TrainConfig(model=model_cfg, variant=variant)
    model = BicycleGAN(cfg)
    for name, path in (("G", G), ("E", E), ("D", D), ("D2", D2)):
        if path is not None:
            net = model.networks().get(name)
            if net is None:
                raise CheckpointError(f"variant {variant} has no {name} to load {path} into")
            load_official_into(net, path)
    return model
