"""make_loader: the one entry point that checks a dataset and returns the loader of a backend."""
import importlib.util
import os

import torch

from .files import find_samples
from .spec import LoaderSpec, as_hw

BACKENDS = ("auto", "dali", "torch")


def dali_available():
    return importlib.util.find_spec("nvidia.dali") is not None


def make_loader(root, *, batch_size, load_size, crop_size, phase="train", direction="AtoB",
                flip=True, backend="auto", rank=0, world_size=1, seed=0,
                preprocess="resize_and_crop", input_nc=3, output_nc=3, layout=None, augment=None,
                shuffle=None, drop_last=None, num_workers=None, device=None, skip_bad=False,
                max_dataset_size=None):
    """A loader of batches {"A": N x input_nc x H x W, "B": N x output_nc x H x W, "paths": [str]}.

    Tensors are float32 in [-1, 1]; "A" is always the network input (direction BtoA swaps the
    halves or folders here, not in the model); the single layout gives no "B". See README, "Data".

    root, phase: the dataset folder and its split (layouts in files.py); layout None detects it.
    load_size, crop_size: int or (H, W). preprocess: as the reference's --preprocess.
    augment: random crop and flip (default phase == "train"); otherwise a centre crop, no flip.
    shuffle, drop_last: default phase == "train". seed, rank, world_size: see PairedLoader.
    backend: "dali" (GPU decode, or CPU operators without a GPU), "torch" (DataLoader + PIL), or
    "auto": DALI when it is installed and the device is a GPU, else torch.
    num_workers: DataLoader workers / DALI threads (default min(4, CPUs)).
    device: where batches land (default the current CUDA device if any, else the CPU).
    skip_bad: leave out (with a logged warning, listed in loader.skipped) files that fail the
    checks or fail to decode, instead of raising DatasetError; a file that fails at decode time is
    replaced by the next good sample so batch shapes and counts stay fixed.
    max_dataset_size: use only the first this-many samples (sorted by name), as the reference.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
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
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    index = find_samples(root, phase=phase, layout=layout, spec=spec, batch_size=batch_size,
                         max_dataset_size=max_dataset_size, skip_bad=skip_bad)
    common = dict(batch_size=batch_size, rank=rank, world_size=world_size, seed=seed,
                  shuffle=train if shuffle is None else shuffle,
                  drop_last=train if drop_last is None else drop_last, device=device,
                  skip_bad=skip_bad)
    if backend == "dali":
        from .dali_loader import DaliLoader

        return DaliLoader(index, spec, num_threads=max(1, workers), **common)
    from .cpu_loader import TorchLoader

    return TorchLoader(index, spec, num_workers=workers, **common)
