"""make_loader: the one entry point that checks a dataset and returns the loader of a backend."""
import importlib.util
import math
import os

import torch
from PIL import Image

from .files import MAX_PIXELS, core_share, find_samples
from .spec import BACKENDS, LAYOUTS, RESIZING, LoaderSpec, as_hw


def dali_available():
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except ModuleNotFoundError:  # find_spec imports the parent, and there may be no nvidia package at all
        return False


def make_loader(root, *, batch_size, load_size, crop_size, phase="train", direction="AtoB",
                flip=True, backend="auto", rank=0, world_size=1, seed=0,
                preprocess="resize_and_crop", input_nc=3, output_nc=3, layout=None, augment=None,
                shuffle=None, drop_last=None, num_workers=None, device=None, skip_bad=False,
                max_dataset_size=None, max_pixels=MAX_PIXELS, memory_format=torch.contiguous_format):
    """A loader of batches {"A": N x input_nc x H x W, "B": N x output_nc x H x W, "paths": [str]}.

    Tensors are float32 in [-1, 1] on `device`, laid out in `memory_format` (torch.contiguous_format
    or torch.channels_last); "A" is always the network input (direction BtoA swaps the halves or
    folders here, not in the model); the single layout gives no "B". See README, "Data".

    root, phase: the dataset folder and its split (layouts in files.py); layout None detects it.
    load_size, crop_size: int or (H, W). preprocess: as the reference's --preprocess.
    augment: random crop and flip (default phase == "train"); otherwise a centre crop, no flip.
    shuffle, drop_last: default phase == "train". seed, rank, world_size: see PairedLoader. When
    torch.distributed is initialized and rank, world_size are this process's own, make_loader is a
    collective call (every rank of the group makes it): the ranks split the file checks.
    backend: "dali" (GPU decode, or CPU operators without a GPU), "torch" (DataLoader + PIL), or
    "auto": DALI when it is installed and the device is a GPU, else torch.
    num_workers: DataLoader workers / DALI threads (default: default_workers, for the torch loader at
    most as many as /dev/shm holds the batches of: cpu_loader.workers_that_fit).
    device: where batches land (default the current CUDA device if any, else the CPU).
    skip_bad: leave out (with a logged warning, listed in loader.skipped) files that fail the
    checks or fail to decode, instead of raising DatasetError; a file that fails at decode time is
    replaced by the next good sample so batch shapes and counts stay fixed.
    max_dataset_size: use only the first this-many samples, in the order of their full paths (extension included;
    a nested folder's files together; A/ and B/ folders: by the path below them pairing the files, extension aside).
    max_pixels: the largest W x H of one file, read from its header before anything is decoded;
    larger files are a DatasetError (or skipped with skip_bad).
    """
    _check_arguments(root=root, batch_size=batch_size, rank=rank, world_size=world_size, seed=seed,
                     num_workers=num_workers, max_pixels=max_pixels, max_dataset_size=max_dataset_size,
                     backend=backend, layout=layout, phase=phase, flip=flip, skip_bad=skip_bad, augment=augment,
                     shuffle=shuffle, drop_last=drop_last, device=device, memory_format=memory_format)
    check_load_size(load_size, preprocess, max_pixels)
    train = phase == "train"
    spec = LoaderSpec(
        load=as_hw(load_size, "load_size"), crop=as_hw(crop_size, "crop_size"), preprocess=preprocess,
        augment=train if augment is None else augment, flip=flip, direction=direction,
        input_nc=input_nc, output_nc=output_nc)
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if backend == "auto":
        backend = "dali" if device.type == "cuda" and dali_available() else "torch"
    if backend == "dali" and not dali_available():
        raise ImportError("backend='dali' needs NVIDIA DALI: pip install 'bicyclegan[dali]'")
    workers = default_workers(backend, device) if num_workers is None else num_workers
    index = find_samples(root, phase=phase, layout=layout, spec=spec, batch_size=batch_size,
                         max_dataset_size=max_dataset_size, skip_bad=skip_bad, max_pixels=max_pixels,
                         rank=rank, world_size=world_size)
    common = dict(batch_size=batch_size, rank=rank, world_size=world_size, seed=seed,
                  shuffle=train if shuffle is None else shuffle,
                  drop_last=train if drop_last is None else drop_last, device=device,
                  skip_bad=skip_bad, memory_format=memory_format)
    if backend == "dali":
        from .dali_loader import DaliLoader

        return DaliLoader(index, spec, num_threads=max(1, workers), **common)
    from .cpu_loader import TorchLoader

    return TorchLoader(index, spec, num_workers=workers, workers_given=num_workers is not None, **common)


def default_workers(backend, device):
    """The torch loader feeding a GPU: a worker per CPU core this process may use, less one for the
    main process, shared among the ranks on this machine (torchrun's LOCAL_WORLD_SIZE), at most 16:
    decoding and resizing a 256 px pair takes ~4 ms of one core, so two workers make about 30
    batches of 16 a second, which a graphed step on a recent GPU may outrun. Otherwise
    min(4, the ranks' share of the cores): DALI's threads only read files for its GPU decoder, and training on
    the CPU needs the cores for itself (two ranks on 2 cores each ran 2 workers, 6 processes on 2 cores)."""
    share = core_share()
    if backend == "torch" and torch.device(device).type == "cuda":
        return max(1, min(16, share - 1))
    return max(1, min(4, share))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_load_size(load_size, preprocess: str, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse a resize to more pixels than the loaders take of a file (max_pixels, at least their default): a
    load_size of 100000 was a MemoryError in a loader worker (30 GB a picture). scale_width's is counted square."""
    h, w = as_hw(load_size, "load_size")
    limit = max(max_pixels, MAX_PIXELS)
    square = preprocess != "resize_and_crop" or h == w
    n = h * w if preprocess == "resize_and_crop" else w * w
    if preprocess in RESIZING and n > limit:
        raise ValueError(f"load_size={load_size} resizes images to {n:,} pixels{' (a square one)' * square}, over the "
                         f"{limit:,} the loaders take of a picture; use load_size <= {math.isqrt(limit)}, or raise "
                         f"max_pixels")


def _check_arguments(*, root, batch_size, rank, world_size, seed, num_workers, max_pixels, max_dataset_size,
                     backend, layout, phase, flip, skip_bad, augment, shuffle, drop_last, device, memory_format):
    """One-line ValueErrors for arguments that cannot work, before any file is read."""
    if not isinstance(root, (str, os.PathLike)):  # (None was pathlib's TypeError, naming no argument)
        raise ValueError(f"root must be the dataset folder's path, got {type(root).__name__}")
    minimum = {"batch_size": 1, "world_size": 1, "seed": 0, "max_pixels": 1}
    given = {"batch_size": batch_size, "world_size": world_size, "seed": seed, "max_pixels": max_pixels}
    if num_workers is not None:
        minimum["num_workers"], given["num_workers"] = 0, num_workers
    if max_dataset_size is not None:
        minimum["max_dataset_size"], given["max_dataset_size"] = 1, max_dataset_size
    for name, value in given.items():
        if not _is_int(value) or value < minimum[name]:
            raise ValueError(f"{name} must be an int >= {minimum[name]}, got {value!r}")
    if seed >= 2 ** 63:  # torch's generators take 64-bit seeds (DALI's took any)
        raise ValueError(f"seed must be below 2^63, got {seed!r}")
    # A string such as "no" is true: only True and False (None: the phase's default) are taken.
    for name, value, optional in (("flip", flip, False), ("skip_bad", skip_bad, False), ("augment", augment, True),
                                  ("shuffle", shuffle, True), ("drop_last", drop_last, True)):
        if not (isinstance(value, bool) or (optional and value is None)):
            raise ValueError(f"{name} must be True or False{' or None (by phase)' if optional else ''}, "
                             f"got {value!r}")
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from err
        if device.type not in ("cpu", "cuda"):  # (batches of 'mps' or 'meta' came on the CPU, without a word)
            raise ValueError(f"device must be 'cpu' or a CUDA device such as 'cuda:0' (where the loaders hand their "
                             f"batches), got {str(device)!r}: move the batches yourself")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r}, but torch sees no CUDA device here (use 'cpu')")
    if memory_format not in (torch.contiguous_format, torch.channels_last):
        raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, got {memory_format!r}")
    if not _is_int(rank) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        raise ValueError(f"max_pixels={max_pixels:,} is over PIL's own limit (PIL.Image.MAX_IMAGE_PIXELS = "
                         f"{Image.MAX_IMAGE_PIXELS:,}), under which files are decoded: raise that too")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} or None (detect), got {layout!r}")
    if not isinstance(phase, str) or not phase:
        raise ValueError(f"phase must be the name of a folder under root (e.g. 'train'), got {phase!r}")
