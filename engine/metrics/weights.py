"""What the metric networks (LPIPS's AlexNet, FID's InceptionV3) share: where torch.hub keeps their
canonical weights files, reading those files safely with every tensor's shape checked, and running
the networks at full float32 precision on any device."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..errors import WeightsError
from ..io import read_torch_file


def hub_checkpoint(name: str) -> Path:
    """Where torch.hub (and torchvision, pytorch-fid) keep a downloaded weights file of that name."""
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def weights_path(path, default_name: str) -> Path:
    """`path`, or the default file of that name in torch.hub's cache, unchecked (weights_file checks it; an
    evaluation's protocol records the file's state)."""
    return Path(path) if path is not None else hub_checkpoint(default_name)


def weights_file(path, default_name: str, url: str, option: str, what: str) -> Path:
    """`path`, or the default file in torch.hub's cache; a missing file is a WeightsError saying where
    to get it and where to put it (or which option takes another file)."""
    p = weights_path(path, default_name)
    if not p.is_file():
        where = f"download {url} into {p.parent}/ (torch.hub's cache) or give" if path is None else "give"
        state = ("is a folder, not a weights file" if p.is_dir() else "is not a regular file (a device, a pipe)"
                 if p.exists() else "does not exist")  # (/dev/null "did not exist")
        raise WeightsError(f"{what}: {p} {state}; {where} the file with --{option} PATH (Python: {option}=)")
    return p


def read_weights(path: Path, what: str) -> dict:
    """A state_dict from a torch file, loaded without running any code in it (weights_only)."""
    state = read_torch_file(path, what=what, error=WeightsError)
    if not isinstance(state, dict):
        raise WeightsError(f"{what} {path} holds a {type(state).__name__}, not a state_dict")
    return state


def take(state: dict, want: dict[str, torch.Size], path: Path, what: str) -> dict:
    """The tensors named in `want` with exactly those shapes, or a WeightsError naming the file."""
    missing = [k for k in want if k not in state]
    if missing:
        raise WeightsError(f"{what} {path} lacks {len(missing)} of the expected tensors "
                           f"(e.g. {missing[0]}); expected {what} in the canonical layout")
    wrong = [k for k, s in want.items() if tuple(state[k].shape) != tuple(s)]
    if wrong:
        k = wrong[0]
        raise WeightsError(f"{what} {path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(want[k])}")
    return {k: state[k] for k in want}


@contextlib.contextmanager
def full_precision(x: torch.Tensor):
    """cuDNN may run float32 convolutions in TF32 (10-bit mantissa) on recent GPUs, which would make a
    metric's value depend on the device: off while the metric network runs on CUDA tensors."""
    if x.device.type != "cuda":
        yield
        return
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = old
