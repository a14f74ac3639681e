"""`bicyclegan sample`: outputs of a trained model for a folder of inputs, as PNG files, a grid and
an HTML gallery (the reference's test.py, plus inputs without ground truth and a deterministic
centre crop)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from .checkpoint import load_checkpoint
from .sample import grid_image, save_image, to_uint8, write_gallery
from .trainer import build_loader, demo_root, pick_device


def data_root_for(model, dataroot) -> Path:
    cfg = model.cfg
    root = Path(dataroot or cfg.dataroot or demo_root(cfg))
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist (pass --dataroot)")
    return root


@torch.no_grad()
def run_sample(args) -> int:
    device = pick_device(args.device)
    model = load_checkpoint(args.checkpoint, device=device).eval()
    cfg = model.cfg
    root = data_root_for(model, args.dataroot)
    out = Path(args.out) if args.out else Path(args.checkpoint).resolve().parent.parent / "results" / args.phase
    (out / "images").mkdir(parents=True, exist_ok=True)
    loader = build_loader(cfg, root, args.phase, device, batch_size=1, shuffle=False)
    g = torch.Generator().manual_seed(args.seed)
    z_sync = torch.randn(args.n_samples, cfg.model.nz, generator=g)
    rows, grid_cols = [], None
    for i, batch in enumerate(loader):
        if i >= args.num:
            break
        A = batch["A"].to(device)
        B = batch.get("B")
        B = None if B is None else B.to(device)
        z = z_sync if args.sync else torch.randn(args.n_samples, cfg.model.nz, generator=g)
        images = [("input", A)]
        if B is not None:
            images.append(("ground truth", B))
            if model.E is not None:
                images.append(("encoded", model.G(A, model.encode(B))))
        for k in range(args.n_samples):
            images.append((f"random z{k + 1}", model.G(A, z[k:k + 1].to(device))))
        stem = Path(batch["paths"][0]).stem
        files = []
        for caption, img in images:
            name = f"images/{stem}_{caption.replace(' ', '_')}.png"
            Image.fromarray(to_uint8(img)[0]).save(out / name)
            files.append((caption, name))
        rows.append({"name": stem, "images": files})
        if i < 8:  # the first rows also make one overview grid
            grid_cols = [[t] for _, t in images] if grid_cols is None else [c + [t] for c, (_, t) in
                                                                             zip(grid_cols, images)]
        print(f"\rsampled {i + 1}/{min(args.num, len(loader))}", end="", flush=True)
    print()
    if not rows:
        raise ValueError(f"{root}/{args.phase}: no inputs found")
    names = [c for c, _ in rows[0]["images"]]
    save_image(grid_image([torch.cat(c) for c in grid_cols], names), out / "grid.png")
    page = write_gallery(out, rows, f"{Path(args.checkpoint).name}: {cfg.variant} on {root.name}/{args.phase}")
    print(f"{len(rows)} inputs -> {out}\ngallery: {page}\ngrid: {out / 'grid.png'}")
    return 0
