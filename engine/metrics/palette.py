"""The demo's metric: which of the K palettes an output shows, and how many an input's outputs cover.

The demo data (bicyclegan.pipelines.demo) has K right answers per input, one per palette; a
model that covers the output distribution produces all of them from one A as z varies. The
filled region is recovered from A alone: pixels darker than OUTLINE_LEVEL are outline (the grey
inside the shapes is lighter), the pixels 4-connected to the border through non-outline pixels are
background (flood_from_border, the rule the generator guarantees for its own data), the rest is
inside a shape. Colour distances are Euclidean in [0, 1] RGB.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bicyclegan.pipelines.demo import DEFAULT_N_PALETTES, OUTLINE_LEVEL, PALETTES, check_n_palettes, flood_from_border

_CHUNK = 256            # images classified at once


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Square (2r+1) dilation of a bool N x H x W mask; outside the image counts as False."""
    if radius == 0:
        return mask
    out = F.max_pool2d(mask[:, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return out[:, 0] > 0


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
    background = flood_from_border(~outline)
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
                      min_contrast: float = 0.3, outline_level: float = OUTLINE_LEVEL, min_pixels: int = 4):
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
    check_n_palettes(n_palettes)
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
    return coverage_of(torch.split(idx, counts.tolist()), n_palettes)


def coverage_of(indices, n_palettes: int) -> dict:
    """palette_coverage's figures from the palette indices (classify_palettes') of each input's outputs, a
    sequence of N (a LongTensor of n_i each): evaluate classifies each batch's as it is made, and keeps those
    alone, not the images."""
    check_n_palettes(n_palettes)
    if not sum(len(p) for p in indices):
        raise ValueError("no outputs")
    distinct = [len(set(p.tolist()) - {-1}) for p in indices]
    idx = torch.cat(list(indices))
    valid = idx[idx >= 0]
    return {
        "coverage": float(np.mean(distinct)) / n_palettes,
        "validity": float(len(valid)) / len(idx),
        "histogram": torch.bincount(valid, minlength=n_palettes).tolist(),
        "n_inputs": len(indices),
        "n_outputs": int(len(idx)),
        "n_palettes": n_palettes,
    }
