"""`sample`: outputs of a trained model for a folder of inputs, as PNG files, one overview grid and
an HTML gallery (the reference's test.py, plus inputs without ground truth and a deterministic
centre crop)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

from bicyclegan.pipelines import DatasetError

from .errors import DivergenceError
from .images import grid_image, sample_columns, to_uint8, write_gallery
from .io import atomic_write, check_writable, save_image
from .runtime import build_loader, data_root_for, open_model

GRID_ROWS = 8  # inputs shown in the overview grid


def default_out(checkpoint, phase: str) -> Path:
    """<run>/results/<phase> for a checkpoint at <run>/checkpoints/*.pt."""
    return Path(checkpoint).resolve().parent.parent / "results" / phase


@torch.no_grad()
def sample(model, dataroot=None, *, out=None, phase: str = "test", n_samples: int = 5, num: int = 50,
           sync: bool = False, encode: bool = True, seed: int = 0, device: str = "auto",
           progress: bool = True) -> Path:
    """Write, for up to `num` inputs of dataroot/phase (default: the data the model was trained on),
    the input, the ground truth (when there is one), the encoded output G(A, mu of E(B)) (unless
    encode=False) and n_samples outputs with z ~ N(0, I) (sync: the same z list for every input),
    as images/*.png, grid.png (the first inputs) and index.html, into `out`.

    model: a BicycleGAN or a checkpoint path (out then defaults to <run>/results/<phase>).
    Returns the results folder."""
    if out is None:
        if not isinstance(model, (str, Path)):
            raise TypeError("sample: give `out` when passing a model object")
        out = default_out(model, phase)
    out = check_writable(out, "sample results")
    model = open_model(model, device)
    if bad := model.nonfinite():
        raise DivergenceError(f"the model holds non-finite weights ({bad}): nothing to sample")
    cfg = model.cfg
    root = data_root_for(cfg, dataroot)
    loader = build_loader(cfg.model, cfg.data, root, phase, device=model.device, batch_size=1,
                          shuffle=False, augment=False)
    total = min(num, len(loader))
    g = torch.Generator().manual_seed(seed)
    z_sync = torch.randn(n_samples, cfg.model.nz, generator=g)
    rows, grid = [], None
    for i, batch in enumerate(loader):
        if i >= num:
            break
        A = batch["A"].to(model.device)
        B = batch["B"].to(model.device) if "B" in batch else None
        z = z_sync if sync else torch.randn(n_samples, cfg.model.nz, generator=g)
        cols, names = sample_columns(model, A, B, z, encode=encode)
        stem = Path(batch["paths"][0]).stem
        files = []
        for name, img in zip(names, cols):
            rel = f"images/{stem}_{name.replace(' ', '_')}.png"
            atomic_write(out / rel, lambda f, img=img: Image.fromarray(to_uint8(img)[0]).save(f, format="PNG"),
                         what="sample image")
            files.append((name, rel))
        rows.append({"name": stem, "images": files})
        if i < GRID_ROWS:
            grid = cols if grid is None else [torch.cat([a, b]) for a, b in zip(grid, cols)]
        if progress:
            print(f"\rsampled {i + 1}/{total}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    if not rows:
        raise DatasetError(f"{root}/{phase}: no inputs found")
    save_image(grid_image(grid, names), out / "grid.png", what="sample grid")
    write_gallery(out, rows, f"{cfg.variant} on {root.name}/{phase}")
    return out
