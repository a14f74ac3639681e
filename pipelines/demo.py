"""Built-in demo data: outline drawings -> filled shapes in one of K palettes.

The demo task measures multimodality without pretrained networks. A is a black outline drawing of a
few random shapes (ellipses, rectangles, triangles) on white, their insides grey; B is the same
shapes filled, with no outline, in the fill colour of a palette on that palette's background colour.
The palette is drawn independently of A, so K different B's fit every A and the only ambiguity is
the palette: a model that covers the output distribution produces all K palettes for one A, a
collapsed one produces one.

Palettes (RGB levels 32 and 224, away from tanh saturation): the first four backgrounds are the
even-parity corners of the colour cube (black, yellow, magenta, cyan) and each fill is the
complement of its background (white, blue, green, red), so every background is sqrt(2) cube edges
from every other background and likewise for fills. Palettes 4-7 use the other four corners
(white/black, blue/yellow, green/magenta, red/cyan). Any two palettes differ by at least one cube
edge (0.75 in [0, 1] RGB) in both background and fill, and the average of the palettes is grey,
which matches none: blurry averaging reads as invalid, not as a palette.

Which palette an output shows is measured by bicyclegan.engine.metrics.palette, which recovers the
filled region from A alone: pixels darker than OUTLINE_LEVEL are outline; flood_from_border over the
non-outline pixels is the background; the rest is inside a shape. The generator guarantees that
this is exact for its own data (shapes clipped by the image border get an outline along it, and
layouts with background enclosed by shapes are redrawn).

Why A's insides are grey: from a bare outline (shade=255), whether a pixel is inside a shape is a
global question (is it enclosed?), which a small U-Net learns slowly; on the demo's CPU budget it
spent most of its training there, and its outputs were blurred, mixed fills. The shade answers it
locally, so training goes to what the demo is about, the palette chosen by z. (In the search of
docs/demo.md a light grey of 232 helped a little, 192 much more.)
"""
from __future__ import annotations

import contextlib
import filecmp
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from .atomic import TempFiles, is_stale, temp_beside
from .errors import DatasetError
from .files import DEMO_WRITING, MAX_PIXELS

if TYPE_CHECKING:  # (imported where used: see flood_from_border)
    import torch

# In a split folder while make_demo_dataset writes it: the folder is demo data though palettes.json
# (written last) is not there yet, so that a run interrupted there can be run again; the loaders refuse it.
_WRITING = DEMO_WRITING

__all__ = ["DATA_VERSION", "DEFAULT_N_PALETTES", "DEFAULT_SHADE", "DEFAULT_SHAPE_SIZE", "OUTLINE_LEVEL",
           "PALETTES", "check_n_palettes", "flood_from_border", "make_demo_dataset"]

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
# Bumped whenever the default images change, so a run never trains on demo data an older version
# left in the same folder (the engine names the folder after it).
DATA_VERSION = 2
DEFAULT_SHADE = 192     # grey level of A inside the shapes (see above)
DEFAULT_SHAPE_SIZE = (0.45, 0.75)  # a shape's bounding box side, as fractions of the image side
# The metric reads pixels of A darker than OUTLINE_LEVEL (mean of [0, 1] RGB) as outline. Above the
# 0.5 of a 1 px outline averaged with white by a 2x downscale (so a resized outline stays closed),
# below the shade with a margin.
OUTLINE_LEVEL = 0.65

_PHASE_IDS = {"train": 0, "test": 1, "val": 2}
_SHAPES = ("ellipse", "rectangle", "triangle")
# The shade stays >= 0.07 above OUTLINE_LEVEL, so the metric never reads it as outline (184).
_MIN_SHADE = math.ceil((OUTLINE_LEVEL + 0.07) * 255)
_MIN_BACKGROUND = 0.3   # fraction of the image left as background
_MIN_CORE = 4           # pixels a shape keeps inside its outline plus a 1 px band
_MAX_TRIES = 200


def check_n_palettes(n_palettes: int) -> int:
    if not 1 <= n_palettes <= len(PALETTES):
        raise ValueError(f"n_palettes must be in 1..{len(PALETTES)}, got {n_palettes}")
    return n_palettes


# ----------------------------------------------------------------------------------------- masks
def flood_from_border(free: torch.Tensor) -> torch.Tensor:
    """Pixels of `free` (bool, N x H x W) 4-connected to the image border through `free` pixels."""
    # (torch here and in _render_pair, not at the top: the `bicyclegan` command's parser reads DEFAULT_SHADE, and its
    # --help and refusals need no torch)
    import torch
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
def _shape_mask(rng: np.random.Generator, kind: str, h: int, w: int,
                shape_size: tuple[float, float]) -> np.ndarray:
    lo, hi = shape_size
    sh = int(rng.integers(max(6, round(lo * h)), max(7, round(hi * h)) + 1))
    sw = int(rng.integers(max(6, round(lo * w)), max(7, round(hi * w)) + 1))
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
                 n_shapes: tuple[int, int], line_width: int, shapes: Sequence[str], shade: int,
                 shape_size: tuple[float, float]):
    """One (A, B, palette) triple: A, B uint8 H x W x 3."""
    import torch
    palette = int(rng.integers(n_palettes))
    for _ in range(_MAX_TRIES):
        n = int(rng.integers(n_shapes[0], n_shapes[1] + 1))
        masks = []
        for _ in range(n):
            for _ in range(_MAX_TRIES):
                m = _shape_mask(rng, shapes[int(rng.integers(len(shapes)))], h, w, shape_size)
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
        reach = flood_from_border(torch.from_numpy(background)[None])[0].numpy()
        if not np.array_equal(reach, background):
            continue
        break
    else:
        raise RuntimeError(f"could not lay out shapes on a {h}x{w} image; try fewer shapes")
    outline = np.logical_or.reduce([m & ~_erode_np(m, line_width) for m in masks])
    a = np.where(outline, 0, np.where(union, shade, 255)).astype(np.uint8)[..., None].repeat(3, axis=2)
    bg, fill = PALETTES[palette]
    b = np.where(union[..., None], fill, bg).astype(np.uint8)
    return a, b, palette


def make_demo_dataset(root, *, n_train: int = 512, n_test: int = 64, n_val: int = 0,
                      size: int | tuple[int, int] = 64, n_palettes: int = DEFAULT_N_PALETTES,
                      seed: int = 0, n_shapes: int | tuple[int, int] = (1, 2),
                      line_width: int | None = None,
                      shapes: Sequence[str] = _SHAPES, shade: int = DEFAULT_SHADE,
                      shape_size: tuple[float, float] = DEFAULT_SHAPE_SIZE) -> Path:
    """Write the demo data in the aligned layout: root/<phase>/NNNNN.png, each A|B side by side.

    size: int or (H, W), each >= 16; files are H x 2W. n_shapes: shapes per image, int or
    inclusive (lo, hi). line_width: outline width in px, default 1 below 48 px and 2 from 48 px
    (a 2 px line survives a 2x downscale by the loader as a dark line). shade: grey level of A
    inside the shapes, _MIN_SHADE (184)..255 (255: a bare outline drawing). shape_size: (lo, hi), the range of
    a shape's bounding-box sides as fractions of the image's. Image i of a phase depends only on
    (seed, phase, i, size, n_palettes, n_shapes, line_width, shapes, shade, shape_size), not on the
    counts.
    Also writes root/<phase>/palettes.json: {"n_palettes", "palettes": [{"background", "fill"}],
    "files": {name: palette index}}. Stale NNNNN.png files beyond the count are removed. A split folder
    holding files but no palettes.json (not demo data) is refused with a DatasetError, before anything is written;
    one this function was interrupted writing (its marker, .demo-writing, is there) is written again. The marker is
    made, and the old palettes.json removed, before a split's first image changes; the loaders refuse a marked split.
    Writers of the same data into one folder at once (make-demo jobs of an array) each write temp files of
    their own, so all of them succeed.
    """
    if isinstance(root, str) and not root.strip():  # ("" wrote train/, val/ and test/ into the current folder)
        raise ValueError(f"root={root!r} names no folder; give one")
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(h, w) < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if h * 2 * w > MAX_PIXELS:  # (--size 100000 drew for minutes without a word, files train would then refuse)
        raise ValueError(f"size {h} x {w} makes files of {h} x {2 * w} = {h * 2 * w:,} pixels, over the loaders' "
                         f"limit of {MAX_PIXELS:,} a file; use a smaller size")
    check_n_palettes(n_palettes)
    lo_hi = (n_shapes, n_shapes) if isinstance(n_shapes, int) else tuple(n_shapes)
    if not 1 <= lo_hi[0] <= lo_hi[1]:
        raise ValueError(f"n_shapes must be >= 1 and lo <= hi, got {n_shapes}")
    unknown = set(shapes) - set(_SHAPES)
    if not shapes or unknown:
        raise ValueError(f"shapes must be a non-empty subset of {_SHAPES}, got {shapes}")
    lw = line_width if line_width is not None else (1 if min(h, w) < 48 else 2)
    if lw < 1:
        raise ValueError(f"line_width must be >= 1, got {line_width}")
    size_range = tuple(float(f) for f in shape_size)
    if len(size_range) != 2 or not 0 < size_range[0] <= size_range[1] <= 1:
        raise ValueError(f"shape_size must be (lo, hi) fractions of the image side with 0 < lo <= hi <= 1, "
                         f"got {shape_size!r}")
    if isinstance(shade, bool) or not isinstance(shade, int) or not _MIN_SHADE <= shade <= 255:
        raise ValueError(f"shade must be an integer grey level in {_MIN_SHADE}..255 (darker reads as "
                         f"outline), got {shade!r}")

    root = Path(root)
    for phase in ("train", "test", "val"):
        # A split folder that holds files but no palettes.json is not demo data written here: its
        # NNNNN.png would be overwritten and the rest of them removed (a make-demo into a dataset of
        # the user's, whose files are often named so, destroyed it). Our own temporary files aside.
        # A split this function was interrupted writing holds its marker, and is written again.
        out = root / phase
        if out.is_dir() and not (out / "palettes.json").is_file() and not (out / _WRITING).is_file() and any(
                not f.name.endswith(".tmp") for f in out.iterdir()):
            raise DatasetError(f"{out} holds files and no palettes.json: it is not demo data, and writing the "
                               f"demo there would overwrite or remove its images; give a new folder")
    meta_palettes = [{"background": p[0].tolist(), "fill": p[1].tolist()}
                     for p in PALETTES[:n_palettes]]
    writing = None  # the temporary file being written
    try:
        for phase, count in (("train", n_train), ("test", n_test), ("val", n_val)):
            out = root / phase
            if count <= 0 and not out.is_dir():
                continue
            out.mkdir(parents=True, exist_ok=True)
            for temp in (out / t for ts in TempFiles(out).by_name.values() for t in ts):
                if is_stale(temp):  # a killed writer's (kill -9), not one still writing
                    temp.unlink(missing_ok=True)
            labels, marked = {}, False
            for i in range(count):
                rng = np.random.default_rng([seed, _PHASE_IDS[phase], i])
                a, b, palette = _render_pair(rng, h, w, n_palettes, lo_hi, lw, tuple(shapes), shade, size_range)
                name = f"{i:05d}.png"
                # Whole files only: an interrupted run leaves no cut PNG behind. The temp is named for its writer
                # (one name for all: another make-demo into the folder at once renamed it away under this one).
                writing = _temp_for(out / name)
                Image.fromarray(np.concatenate([a, b], axis=1), "RGB").save(writing, format="PNG")
                if not marked and _differs(writing, out / name):
                    marked = _mark(out)
                os.replace(writing, out / name)
                labels[name] = palette
            # A smaller count (0 included) leaves no image of an earlier, larger set behind.
            for stale in out.glob("[0-9][0-9][0-9][0-9][0-9].png"):
                if stale.name not in labels:
                    marked = marked or _mark(out)
                    stale.unlink(missing_ok=True)
            if not count:
                (out / "palettes.json").unlink(missing_ok=True)
                (out / _WRITING).unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # (empty only: the user's files, or another writer's, keep it)
                    out.rmdir()
                continue
            meta = {"n_palettes": n_palettes, "palettes": meta_palettes, "files": labels}
            writing = _temp_for(out / "palettes.json")
            writing.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
            os.replace(writing, out / "palettes.json")
            # (missing: another writer of the same data at once finished first; palettes.json marks it now)
            (out / _WRITING).unlink(missing_ok=True)
    except OSError as e:
        # A full disk or a folder that cannot be written: a traceback, the cut temp file left. The split's marker
        # stays: the command run again writes it anew. Only this writer's own temp file goes.
        if writing is not None:
            with contextlib.suppress(OSError):
                writing.unlink(missing_ok=True)
        raise DatasetError(f"cannot write the demo dataset into {root}: {e.strerror or e} "
                           f"({e.filename or writing}); run the command again once it can be written") from e
    return root


def _differs(new: Path, old: Path) -> bool:
    """Whether the file `new` would change `old` (missing: it would)."""
    try:
        return not filecmp.cmp(new, old, shallow=False)
    except FileNotFoundError:
        return True


def _mark(out: Path) -> bool:
    """Mark the split `out` as being written (True) and remove its old palettes.json: left beside part-new images by a
    kill (-9), it labelled them wrong. Only before its first image changes: a writer of the same data at once (an
    array job's) finds every image the same, and the split stays readable (the loaders refuse a marked one)."""
    (out / _WRITING).touch()  # (first: a kill between the two leaves a split make-demo writes again)
    (out / "palettes.json").unlink(missing_ok=True)
    return True


def _temp_for(path: Path) -> Path:
    """An empty temp file beside `path` for a write to it, named for this writer (atomic.temp_beside)."""
    fd, tmp = temp_beside(path)
    os.close(fd)
    return Path(tmp)
