"""Importing the reference implementation's saved networks ({epoch}_net_{G,E,D,D2}.pth state_dicts).

Our modules are arranged differently from the reference's (names differ: e.g. its
`model.submodule.down.1` is our `model.submodule.down`, its G_Unet_add_input's
`model.model.1.model.3.model.1` our `model.submodule.submodule.down`), but they register the same
tensors in the same order, so entries are matched by position and every shape is checked. Two
adjustments: files of PyTorch < 0.4 hold InstanceNorm running statistics, dropped as the
reference's loader drops them; the reference's E_ResNet registers fc and fcVar before conv, so
the file's entries follow our order of the top-level names where those agree. A "module." prefix
(a state_dict of an nn.DataParallel wrapper) is ignored. tests/test_official.py writes files with
the reference's own names in its registration order (tests/reference_nets.py, written from its
source) for the authors' pretrained models, the default G, E, D, D2 and the options that change
the numbering (where_add, upsample, norm, dropout, the other E and D), and checks that every
tensor lands in ours of the same role and that the imported networks compute the reference's
forward. Files are read weights-only: a .pth that holds anything but tensors is refused.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .config import DataConfig, ModelConfig, TrainConfig
from .errors import CheckpointError
from .io import read_torch_file
from .model import BicycleGAN

_NORM_STATS = (".running_mean", ".running_var", ".num_batches_tracked")


def _state_dict_file(path) -> dict:
    path = Path(path)
    sd = read_torch_file(path, what="weights file", error=CheckpointError)
    if isinstance(sd, dict) and isinstance(sd.get("nets"), dict) and "config" in sd:
        # (it said "does not hold a state_dict of tensors", as if the file were damaged)
        raise CheckpointError(f"{path} is a bicyclegan checkpoint (as train, download model and import-official "
                              f"write), not one of the reference's {{epoch}}_net_G/E/D/D2.pth files: use it as it "
                              f"is (sample, evaluate, export, train --init_from)")
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        what = (f"a {type(sd).__name__}" if not isinstance(sd, dict) else "an empty dict" if not sd else
                "a dict of " + ", ".join(sorted({type(v).__name__ for v in sd.values()})))
        raise CheckpointError(f"{path} does not hold a state_dict of tensors, as the reference's "
                              f"{{epoch}}_net_G/E/D/D2.pth files do: it holds {what}")
    return sd


def _parting(theirs: list, ours: list) -> str:
    """Where two lists of (name, tensor) of different lengths first part: the first position whose
    shapes differ, else the end of the shorter."""
    for (k_t, v_t), (k_o, v_o) in zip(theirs, ours):
        if v_t.shape != v_o.shape:
            return f"the file's {k_t} {tuple(v_t.shape)} where ours has {k_o} {tuple(v_o.shape)}"
    if len(theirs) < len(ours):
        k_o, v_o = ours[len(theirs)]
        return f"the file ends where ours has {k_o} {tuple(v_o.shape)}"
    k_t, v_t = theirs[len(ours)]
    return f"the file's {k_t} {tuple(v_t.shape)} beyond our last"


def load_official_into(net: torch.nn.Module, path) -> None:
    """Load a state_dict saved by the reference implementation into our network (matched by order)."""
    # A network saved while wrapped in nn.DataParallel has every name prefixed with "module.".
    theirs = [(k.removeprefix("module."), v) for k, v in _state_dict_file(path).items()]
    ours = net.state_dict()
    # Files saved by PyTorch < 0.4 hold running statistics for every InstanceNorm layer, buffers that
    # InstanceNorm no longer has (the reference drops them when loading); a network without such
    # buffers drops them too.
    if not any(k.endswith(_NORM_STATS) for k in ours):
        theirs = [(k, v) for k, v in theirs if not k.endswith(_NORM_STATS)]
    # BatchNorm's step count came with PyTorch 0.4.1: older files lack it (BatchNorm's own loading
    # fills it in, as for any file of that age).
    if not any(k.endswith(".num_batches_tracked") for k, _ in theirs):
        ours = {k: v for k, v in ours.items() if not k.endswith(".num_batches_tracked")}
    # Where top-level names agree (E's conv/fc/fcVar), follow our order of them: the reference's
    # E_ResNet registers fc before conv.
    tops = list(dict.fromkeys(k.split(".")[0] for k in ours))
    rank = {t: i for i, t in enumerate(tops)}
    theirs = [kv for _, kv in sorted(enumerate(theirs), key=lambda e: (rank.get(e[1][0].split(".")[0], 0), e[0]))]
    if len(theirs) != len(ours):
        raise CheckpointError(f"{path} holds {len(theirs)} tensors, the configured {type(net).__name__} has "
                              f"{len(ours)}; the first that differ: {_parting(theirs, list(ours.items()))}: "
                              f"the model options (netG/netE/netD, where_add, norm, upsample, nz, ngf...) do "
                              f"not match the network that was saved, or the file lacks a tensor or has one more")
    for (k_ours, v_ours), (k_theirs, v_theirs) in zip(ours.items(), theirs):
        if v_ours.shape != v_theirs.shape:
            raise CheckpointError(f"{path}: {k_theirs} has shape {tuple(v_theirs.shape)} but our {k_ours} "
                                  f"has {tuple(v_ours.shape)}; check the model options")
        if v_theirs.is_floating_point() and not torch.isfinite(v_theirs).all():
            raise CheckpointError(f"{path}: {k_theirs} holds non-finite values")
    net.load_state_dict({k: v for k, (_, v) in zip(ours, theirs)})


def import_official(model_cfg: ModelConfig, G, E=None, D=None, D2=None, *, variant: str = "bicycle",
                    data: DataConfig | None = None) -> BicycleGAN:
    """A BicycleGAN holding the weights of the reference's {epoch}_net_{G,E,D,D2}.pth files.

    data: how inputs are prepared for this model at test time (direction, load size, preprocess);
    default: load at the crop size, i.e. resize to the network's input, no flip."""
    data = data or DataConfig(load_size=max(model_cfg.size), no_flip=True)
    model = BicycleGAN(TrainConfig(model=model_cfg, data=data, variant=variant))
    model.imported = []  # the networks that hold the files' weights; the others are freshly initialised
    for name, path in (("G", G), ("E", E), ("D", D), ("D2", D2)):
        if path is not None:
            net = model.networks().get(name)
            if net is None:
                raise CheckpointError(f"variant {variant} has no {name} to load {path} into")
            load_official_into(net, path)
            model.imported.append(name)
    return model
