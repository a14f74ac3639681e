"""Built-in demo data: outline drawings -> filled shapes in one of K palettes, and a palette classifier.

The demo task measures multimodality without pretrained networks. A is a black outline drawing of a
few random shapes (ellipses, rectangles, triangles) on white; B is the same shapes filled, with no
outline, in the fill colour of a palette on that palette's background colour. The palette is drawn
independently of A, so K different B's fit every A and the only ambiguity is the palette: a model
that covers the output distribution produces all K palettes for one A, a collapsed one produces one.

Palettes (RGB levels 32 and 224, away from tanh saturation): the first four backgrounds are the
even-parity corners of the colour cube (black, yellow, magenta, cyan) and each fill is the
complement of its background (white, blue, green, red), so every background is sqrt(2) cube edges
from every other background and likewise for fills. Palettes 4-7 use the other four corners
(white/black, blue/yellow, green/magenta, red/cyan). Any two palettes differ by at least one cube
edge (0.75 in [0, 1] RGB) in both background and fill, and the average of the palettes is grey,
which matches none: blurry averaging reads as invalid, not as a palette.

`classify_palettes` recovers the filled region from A alone: pixels darker than near-white are
outline; a 4-connected flood from the image border over non-outline pixels is the background; the
rest is inside a shape. The generator guarantees that this is exact for its own data (shapes clipped
by the image border get an outline along it, and layouts with background enclosed by shapes are
redrawn). Colour distances are Euclidean in [0, 1] RGB.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

__all__ = [
    "DEFAULT_N_PALETTES", "PALETTES", "make_demo_dataset",
    "classify_palettes", "classify_palette", "palette_coverage",
]

_LO, _HI = 32, 224
# (background, fill) per palette, uint8 RGB; index = palette label.
PALETTES = np.array([
    [[_LO, _LO, _LO], [_HI, _HI, _HI]],
    [[_HI, _HI, _LO], [_LO, _LO, _HI]],
    [[_HI, _LO, _HI], [_LO, _HI, _LO]],
    [[_LO, _HI, _HI], [_HI, _LO, _LO]],
    [[_HI, _HI, _HI], [_LO, _LO, _LO]],
    [[_LO, _LO, _HI], [_HI, _HI, _LO]],
    [[_LO, _HI, _LO], [_HI, _LO, _HI]],
    [[_HI, _LO, _LO], [_LO, _HI, _HI]],
], dtype=np.uint8)
DEFAULT_N_PALETTES = 4

_PHASE_IDS = {"train": 0, "test": 1, "val": 2}
_SHAPES = ("ellipse", "rectangle", "triangle")
_MIN_BACKGROUND = 0.3   # fraction of the image left as background
_MIN_CORE = 4           # pixels a shape keeps inside its outline plus a 1 px band
_MAX_TRIES = 200
_CHUNK = 256            # images classified at once


def _check_k(n_palettes: int) -> int:
    if not 1 <= n_palettes <= len(PALETTES):
        raise ValueError(f"n_palettes must be in 1..{len(PALETTES)}, got {n_palettes}")
    return n_palettes


# ----------------------------------------------------------------------------------------- masks
def _flood_from_border(free: torch.Tensor) -> torch.Tensor:
    """Pixels of `free` (bool, N x H x W) 4-connected to the image border through `free` pixels."""
    reach = torch.zeros_like(free)
    for edge in (reach[:, 0, :], reach[:, -1, :], reach[:, :, 0], reach[:, :, -1]):
        edge.fill_(True)
    reach &= free
    while True:
        grown = reach.clone()
        grown[:, 1:, :] |= reach[:, :-1, :]
        grown[:, :-1, :] |= reach[:, 1:, :]
        grown[:, :, 1:] |= reach[:, :, :-1]
        grown[:, :, :-1] |= reach[:, :, 1:]
        grown &= free
        if torch.equal(grown, reach):
            return reach
        reach = grown


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Square (2r+1) dilation of a bool N x H x W mask; outside the image counts as False."""
    if radius == 0:
        return mask
    out = F.max_pool2d(mask[:, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return out[:, 0] > 0


def _erode_np(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square (2r+1) erosion of a bool H x W mask; outside the image counts as False."""
    h, w = mask.shape
    p = np.pad(mask, radius, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out &= p[dy:dy + h, dx:dx + w]
    return out


# ------------------------------------------------------------------------------------ generation
def _shape_mask(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    sh = int(rng.integers(max(6, round(0.3 * h)), max(7, round(0.6 * h)) + 1))
    sw = int(rng.integers(max(6, round(0.3 * w)), max(7, round(0.6 * w)) + 1))
    # Up to ~15% of a shape may fall outside the image, so shapes also touch and cross the border.
    y0 = int(rng.integers(-int(0.15 * sh), h - int(0.85 * sh) + 1))
    x0 = int(rng.integers(-int(0.15 * sw), w - int(0.85 * sw) + 1))
    y1, x1 = y0 + sh - 1, x0 + sw - 1
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    if kind == "ellipse":
        draw.ellipse([x0, y0, x1, y1], fill=255)
    elif kind == "rectangle":
        draw.rectangle([x0, y0, x1, y1], fill=255)
    else:  # apex on one side of the box, base along the opposite side: area is half the box
        t = float(rng.random())
        side = int(rng.integers(4))
        if side == 0:
            pts = [(x0 + t * (x1 - x0), y0), (x0, y1), (x1, y1)]
        elif side == 1:
            pts = [(x0 + t * (x1 - x0), y1), (x0, y0), (x1, y0)]
        elif side == 2:
            pts = [(x0, y0 + t * (y1 - y0)), (x1, y0), (x1, y1)]
        else:
            pts = [(x1, y0 + t * (y1 - y0)), (x0, y0), (x0, y1)]
        draw.polygon(pts, fill=255)
    return np.asarray(img) > 0


def _render_pair(rng: np.random.Generator, h: int, w: int, n_palettes: int,
                 n_shapes: tuple[int, int], line_width: int, shapes: Sequence[str]):
    """One (A, B, palette) triple: A, B uint8 H x W x 3."""
    palette = int(rng.integers(n_palettes))
    for _ in range(_MAX_TRIES):
        n = int(rng.integers(n_shapes[0], n_shapes[1] + 1))
        masks = []
        for _ in range(n):
            for _ in range(_MAX_TRIES):
                m = _shape_mask(rng, shapes[int(rng.integers(len(shapes)))], h, w)
                if _erode_np(m, line_width + 1).sum() >= _MIN_CORE:
                    masks.append(m)
                    break
        if len(masks) < n:
            continue
        union = np.logical_or.reduce(masks)
        background = ~union
        if background.mean() < _MIN_BACKGROUND:
            continue
        # Background enclosed by shapes would be read as "inside" from A: redraw such layouts.
        reach = _flood_from_border(torch.from_numpy(background)[None])[0].numpy()
        if not np.array_equal(reach, background):
            continue
        break
    else:
        raise RuntimeError(f"could not lay out shapes on a {h}x{w} image; try fewer shapes")
    outline = np.logical_or.reduce([m & ~_erode_np(m, line_width) for m in masks])
    a = np.where(outline[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)
    bg, fill = PALETTES[palette]
    b = np.where(union[..., None], fill, bg).astype(np.uint8)
    return a, b, palette


def make_demo_dataset(root, *, n_train: int = 512, n_test: int = 64, n_val: int = 0,
                      size: int | tuple[int, int] = 64, n_palettes: int = DEFAULT_N_PALETTES,
                      seed: int = 0, n_shapes: int | tuple[int, int] = (1, 3),
                      line_width: int | None = None,
                      shapes: Sequence[str] = _SHAPES) -> Path:
    """Write the demo data in the aligned layout: root/<phase>/NNNNN.png, each A|B side by side.

    size: int or (H, W), each >= 16; files are H x 2W. n_shapes: shapes per image, int or
    inclusive (lo, hi). line_width: outline width in px, default 1 below 48 px and 2 from 48 px
    (a 2 px line survives a 2x downscale by the loader as a dark line). Image i of a phase depends
    only on (seed, phase, i, size, n_palettes, n_shapes, line_width, shapes), not on the counts.
    Also writes root/<phase>/palettes.json: {"n_palettes", "palettes": [{"background", "fill"}],
    "files": {name: palette index}}. Stale NNNNN.png files beyond the count are removed.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(h, w) < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    _check_k(n_palettes)
    lo_hi = (n_shapes, n_shapes) if isinstance(n_shapes, int) else tuple(n_shapes)
    if not 1 <= lo_hi[0] <= lo_hi[1]:
        raise ValueError(f"n_shapes must be >= 1 and lo <= hi, got {n_shapes}")
    unknown = set(shapes) - set(_SHAPES)
    if not shapes or unknown:
        raise ValueError(f"shapes must be a non-empty subset of {_SHAPES}, got {shapes}")
    lw = line_width if line_width is not None else (1 if min(h, w) < 48 else 2)
    if lw < 1:
        raise ValueError(f"line_width must be >= 1, got {line_width}")

    root = Path(root)
    meta_palettes = [{"background": p[0].tolist(), "fill": p[1].tolist()}
                     for p in PALETTES[:n_palettes]]
    for phase, count in (("train", n_train), ("test", n_test), ("val", n_val)):
        if count <= 0:
            continue
        out = root / phase
        out.mkdir(parents=True, exist_ok=True)
        labels = {}
        for i in range(count):
            rng = np.random.default_rng([seed, _PHASE_IDS[phase], i])
            a, b, palette = _render_pair(rng, h, w, n_palettes, lo_hi, lw, tuple(shapes))
            name = f"{i:05d}.png"
            Image.fromarray(np.concatenate([a, b], axis=1), "RGB").save(out / name)
            labels[name] = palette
        for stale in out.glob("[0-9][0-9][0-9][0-9][0-9].png"):
            if stale.name not in labels:
                stale.unlink()
        meta = {"n_palettes": n_palettes, "palettes": meta_palettes, "files": labels}
        (out / "palettes.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return root


# -------------------------------------------------------------------------------- classification
def _as_batch(x) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4:
        raise ValueError(f"expected N x C x H x W (or C x H x W), got shape {tuple(t.shape)}")
    return (t + 1) / 2  # [-1, 1] -> [0, 1]


def _regions(a: torch.Tensor, band: int, min_pixels: int, outline_level: float):
    """Background and interior masks (N x H x W) from A in [0, 1], away from the outline.

    The band around the outline shrinks per image (band, band-1, ..., 0) until both regions keep
    min_pixels; `ok` is False where even band 0 leaves a region too small (e.g. no shapes).
    """
    outline = a.mean(1) < outline_level
    background = _flood_from_border(~outline)
    inside = ~background & ~outline
    n = a.shape[0]
    bg_sel = torch.zeros_like(background)
    in_sel = torch.zeros_like(inside)
    ok = torch.zeros(n, dtype=torch.bool)
    for r in range(band, -1, -1):
        near = _dilate(outline, r)
        bg_r, in_r = background & ~near, inside & ~near
        fits = ((bg_r.flatten(1).sum(1) >= min_pixels) & (in_r.flatten(1).sum(1) >= min_pixels)
                & ~ok)
        bg_sel[fits], in_sel[fits] = bg_r[fits], in_r[fits]
        ok |= fits
    return bg_sel, in_sel, ok


def _classify(b: torch.Tensor, bg_mask: torch.Tensor, in_mask: torch.Tensor, ok: torch.Tensor,
              n_palettes: int, max_dist: float, min_purity: float, min_contrast: float):
    pal = torch.from_numpy(PALETTES[:n_palettes].astype(np.float32) / 255)  # K x 2 x 3
    flat = b.flatten(2)  # N x 3 x HW

    def region_stats(mask):
        m = mask.flatten(1)[:, None].expand_as(flat)
        return torch.nanmedian(flat.masked_fill(~m, float("nan")), dim=2).values  # N x 3

    bg_col, in_col = region_stats(bg_mask), region_stats(in_mask)
    d_bg = torch.cdist(bg_col, pal[:, 0])  # N x K
    d_in = torch.cdist(in_col, pal[:, 1])
    k = torch.argmin((d_bg.square() + d_in.square()).nan_to_num(float("inf")), dim=1)
    rows = torch.arange(len(k))
    score = torch.maximum(d_bg[rows, k], d_in[rows, k])
    score = torch.where(ok, score, torch.full_like(score, float("inf")))

    def purity(mask, colour):  # fraction of region pixels near the assigned palette colour
        near = (flat - colour[:, :, None]).square().sum(1) <= (1.5 * max_dist) ** 2
        m = mask.flatten(1)
        return (near & m).sum(1) / m.sum(1).clamp(min=1)

    valid = (ok & (score <= max_dist)
             & (purity(bg_mask, pal[k, 0]) >= min_purity)
             & (purity(in_mask, pal[k, 1]) >= min_purity)
             & ((bg_col - in_col).norm(dim=1) >= min_contrast))
    return torch.where(valid, k, torch.full_like(k, -1)), score


def classify_palettes(A, B, *, a_index=None, n_palettes: int = DEFAULT_N_PALETTES,
                      band: int = 2, max_dist: float = 0.3, min_purity: float = 0.75,
                      min_contrast: float = 0.3, outline_level: float = 0.9, min_pixels: int = 4):
    """Palette index per image of B (or -1 when it matches none) and its distance.

    A, B: tensors or arrays in [-1, 1], N x C x H x W (A may have 1 or 3 channels). B[j] is
    paired with A[j], or with A[a_index[j]] when a_index (ints, len N_B) is given, which lets
    many outputs share one A whose regions are then computed once; a single A pairs with all.
    Returns (index LongTensor N_B, distance FloatTensor N_B): the larger of the background and
    fill distances (median colour of the region vs palette colour, Euclidean in [0, 1] RGB) to
    the nearest palette; inf where A has no usable regions. Valid iff both distances
    <= max_dist, at least min_purity of each region's pixels lie within 1.5 * max_dist of the
    palette colour (so images mixing palettes are invalid), and the two median colours differ by
    >= min_contrast. Pixels within `band` px of the outline are ignored (the band narrows for
    small shapes); outline pixels of A are those with mean < outline_level in [0, 1].
    """
    _check_k(n_palettes)
    a, b = _as_batch(A), _as_batch(B)
    if b.shape[1] != 3:
        raise ValueError(f"B must have 3 channels, got {b.shape[1]}")
    if a.shape[2:] != b.shape[2:]:
        raise ValueError(f"A {tuple(a.shape)} and B {tuple(b.shape)} differ in size")
    if a_index is not None:
        a_index = torch.as_tensor(a_index, dtype=torch.long)
    elif a.shape[0] in (1, b.shape[0]):
        a_index = torch.arange(b.shape[0]) if a.shape[0] > 1 else torch.zeros(
            b.shape[0], dtype=torch.long)
    if a_index is None or a_index.shape != (b.shape[0],):
        raise ValueError(f"A {tuple(a.shape)} and B {tuple(b.shape)} do not pair up")
    bg, inside, ok = _regions(a, band, min_pixels, outline_level)
    results = [  # in chunks: the region statistics take a float copy of the images
        _classify(b[j:j + _CHUNK], bg[i], inside[i], ok[i], n_palettes, max_dist, min_purity,
                  min_contrast)
        for j, i in ((j, a_index[j:j + _CHUNK]) for j in range(0, max(len(b), 1), _CHUNK))]
    return torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results])


def classify_palette(A, B, **kwargs) -> tuple[int, float]:
    """One image: (palette index or -1, distance); A, B are C x H x W in [-1, 1]."""
    idx, dist = classify_palettes(A, B, **kwargs)
    if len(idx) != 1:
        raise ValueError("classify_palette takes one image; use classify_palettes for batches")
    return int(idx[0]), float(dist[0])


def palette_coverage(A, outputs, *, n_palettes: int = DEFAULT_N_PALETTES, **kwargs) -> dict:
    """Multimodality of samples: outputs[i] holds the n_i outputs generated for A[i].

    A: N x C x H x W; outputs: N x n x 3 x H x W or a sequence of N (n_i x 3 x H x W), in
    [-1, 1]. Returns {"coverage": mean over inputs of distinct valid palettes / K, "validity":
    fraction of all outputs that are valid, "histogram": valid outputs per palette (list of K),
    "n_inputs", "n_outputs", "n_palettes"}. kwargs go to classify_palettes.
    """
    groups = [torch.as_tensor(o).detach().to("cpu", torch.float32) for o in outputs]
    if len(groups) != len(A):
        raise ValueError(f"{len(A)} inputs but {len(groups)} output lists")
    counts = torch.tensor([len(g) for g in groups])
    if int(counts.sum()) == 0:
        raise ValueError("no outputs")
    idx, _ = classify_palettes(A, torch.cat(groups), a_index=torch.repeat_interleave(counts),
                               n_palettes=n_palettes, **kwargs)
    distinct = [len(set(p.tolist()) - {-1}) for p in torch.split(idx, counts.tolist())]
    valid = idx[idx >= 0]
    return {
        "coverage": float(np.mean(distinct)) / n_palettes,
        "validity": float(len(valid)) / len(idx),
        "histogram": torch.bincount(valid, minlength=n_palettes).tolist(),
        "n_inputs": len(groups),
        "n_outputs": int(len(idx)),
        "n_palettes": n_palettes,
    }
