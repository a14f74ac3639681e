"""Sampling: grids of outputs (rows = inputs; columns = input, ground truth, encoded, random z) and
an HTML gallery of per-image results."""
from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .model import BicycleGAN


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> N x H x W x 3 uint8 (grayscale repeated to RGB)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x[:, :3].permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def sample_columns(model: BicycleGAN, A, B=None, z=None, n_samples: int = 5) -> tuple[list, list[str]]:
    """The columns of a sample grid as lists of N x C x H x W tensors, and their titles.
    z: n_samples x nz codes shared by every row (None: drawn now)."""
    was_training = model.training
    model.eval()
    try:
        cols, names = [A], ["input"]
        if B is not None:
            cols.append(B)
            names.append("ground truth")
            if model.E is not None:
                cols.append(model.G(A, model.encode(B)))
                names.append("encoded")
        if z is None:
            z = model.z_random(n_samples)
        for i in range(z.shape[0]):
            cols.append(model.G(A, z[i:i + 1].expand(A.shape[0], -1)))
            names.append(f"z{i + 1}")
    finally:
        model.train(was_training)
    return cols, names


def grid_image(cols: list, names: list[str], pad: int = 2) -> Image.Image:
    """Lay columns side by side with a title row; every cell keeps its pixel size (no resampling)."""
    imgs = [to_uint8(c) for c in cols]
    n, h, w, _ = imgs[0].shape
    title_h = 12
    scale = max(1, 64 // max(h, 1))  # tiny demo images are shown enlarged (nearest) to be seen
    ch, cw = h * scale, w * scale
    W = len(imgs) * (cw + pad) + pad
    H = title_h + n * (ch + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, (col, name) in enumerate(zip(imgs, names)):
        x0 = pad + j * (cw + pad)
        draw.text((x0, 0), name[: max(3, cw // 5)], fill=(0, 0, 0))
        for i in range(n):
            tile = Image.fromarray(col[i])
            if scale > 1:
                tile = tile.resize((cw, ch), Image.NEAREST)
            canvas.paste(tile, (x0, title_h + pad + i * (ch + pad)))
    return canvas


def save_image(img: Image.Image, path) -> None:
    """PNG via temp file + rename, so a viewer never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


def save_grid(model, A, B, z, path) -> Path:
    cols, names = sample_columns(model, A, B, z)
    save_image(grid_image(cols, names), path)
    return Path(path)


def write_gallery(out_dir, rows: list[dict], title: str) -> Path:
    """index.html with one row per input: {"name": str, "images": [(caption, relative path)]}."""
    out_dir = Path(out_dir)
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif} td{text-align:center;font-size:12px} "
             "img{image-rendering:pixelated;min-width:96px}</style>",
             f"<h1>{html.escape(title)}</h1><table>"]
    for row in rows:
        cells = "".join(f"<td><img src='{html.escape(p)}'><br>{html.escape(c)}</td>" for c, p in row["images"])
        parts.append(f"<tr><th>{html.escape(row['name'])}</th>{cells}</tr>")
    parts.append("</table>")
    path = out_dir / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
