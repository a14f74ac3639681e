"""Finding the image files of a dataset, pairing them, and checking them cheaply before training.

Layouts (DESIGN.md, README):
  aligned     root/phase/**/*.jpg|png...: each file is A (left half) | B (right half)
  ab_folders  root/phase/A and root/phase/B (or root/A and root/B), paired by path without extension
  single      root/phase/A or root/A (no B/), or an explicit layout="single" folder: inputs only
The checks read headers only (size, format) and the last bytes of JPEG/PNG files (truncation);
images are decoded later, in the loaders, where a decode error names its file too.
"""
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import DatasetError, describe_bad

log = logging.getLogger("bicyclegan.pipelines")

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
LAYOUTS = ("aligned", "ab_folders", "single")
_TAIL = 4096  # bytes searched for the JPEG end-of-image marker / the PNG IEND chunk


@dataclass(frozen=True)
class Sample:
    path: str            # aligned: the A|B file; ab_folders: the file in A/; single: the image
    b_path: str | None = None   # ab_folders: the file in B/


@dataclass
class Index:
    layout: str
    samples: list
    skipped: list       # [(path, reason)] dropped by skip_bad during the checks


def load_rgb(path):
    """Decode a file fully as RGB (alpha dropped, grayscale replicated), like the reference."""
    with Image.open(path) as img:
        return img.convert("RGB")


def _list_images(folder):
    """{path relative to folder, without extension: [full paths]} of the image files under folder."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(IMG_EXTENSIONS):
                full = os.path.join(dirpath, name)
                key = os.path.splitext(os.path.relpath(full, folder))[0]
                found.setdefault(key, []).append(full)
    return found


def _has_images(folder):
    return folder.is_dir() and any(p.suffix.lower() in IMG_EXTENSIONS for p in folder.iterdir())


def _resolve(root, phase, layout):
    """(layout, folders) for a dataset root; folders is (dir,) or (A dir, B dir)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} or None, got {layout!r}")
    for base in (root / phase, root):
        a, b = base / "A", base / "B"
        if layout != "aligned" and a.is_dir():
            if layout == "ab_folders" and not b.is_dir():
                raise DatasetError(f"missing folder {b} (layout='ab_folders' pairs {a} with it)")
            if layout == "ab_folders" or (layout is None and b.is_dir()):
                return "ab_folders", (a, b)
            return "single", (a,)
        if layout != "ab_folders" and (base.is_dir() if base != root else _has_images(root)):
            return layout or "aligned", (base,)
    want = "A/ and B/ folders" if layout == "ab_folders" else "images or an A/ folder"
    raise DatasetError(f"missing folder {root / phase} (looked for {want} in it and in {root})")


def _pair(folders, layout, skip_bad):
    """Samples (sorted by key) and the files left unpaired or ambiguous."""
    listed = [_list_images(f) for f in folders]
    for folder, files in zip(folders, listed):
        if not files:
            raise DatasetError(f"folder {folder} holds no images (extensions {', '.join(IMG_EXTENSIONS)})")
    bad = []
    for files in listed:
        for paths in files.values():
            if len(paths) > 1:
                bad += [(p, "ambiguous: several files share this name without extension") for p in paths]
    if layout == "ab_folders":
        a, b = listed
        bad += [(a[k][0], f"no partner in {folders[1]}") for k in sorted(a.keys() - b.keys())]
        bad += [(b[k][0], f"no partner in {folders[0]}") for k in sorted(b.keys() - a.keys())]
        keys = sorted(k for k in a.keys() & b.keys() if len(a[k]) == 1 and len(b[k]) == 1)
        samples = [Sample(a[k][0], b[k][0]) for k in keys]
    else:
        samples = [Sample(p[0]) for _, p in sorted(listed[0].items()) if len(p) == 1]
    if bad and not skip_bad:
        raise DatasetError(f"cannot pair the files of {folders[0].parent}:\n{describe_bad(bad)}"
                           "\n(pass skip_bad=True to leave them out)")
    return samples, bad


def _tail_problem(path, fmt, size):
    marker = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}.get(fmt)
    if marker is None:
        return None
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL))
        if marker not in f.read():
            return f"truncated {fmt} (no {'end-of-image marker' if fmt == 'JPEG' else 'IEND chunk'})"
    return None


def read_header(path):
    """((W, H), None) from the header of an image file, or (None, reason) when it is unusable."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return None, "zero-byte file"
        with Image.open(path) as img:
            wh, fmt = img.size, img.format
        return (None, problem) if (problem := _tail_problem(path, fmt, size)) else (wh, None)
    except Exception as err:  # PIL raises several types (OSError, SyntaxError, ValueError...)
        return None, f"unreadable image ({type(err).__name__}: {err})"


def _problem(sample, layout, spec, sizes):
    """Why a sample cannot be loaded, or None; sizes maps path -> (W, H) or a reason."""
    for path in (sample.path, sample.b_path):
        if isinstance(sizes.get(path), str):
            return path, sizes[path]
    w, h = sizes[sample.path]
    if layout == "aligned":
        if w % 2:
            return sample.path, f"odd width {w}: cannot split into equal A | B halves"
        w //= 2
    if layout == "ab_folders" and spec.preprocess != "resize_and_crop" and sizes[sample.b_path] != (w, h):
        bw, bh = sizes[sample.b_path]
        return sample.path, f"size {w}x{h} differs from its partner {sample.b_path} ({bw}x{bh})"
    problem = spec.size_problem(h, w)
    return (sample.path, problem) if problem else None


def find_samples(root, *, phase, layout, spec, batch_size, max_dataset_size=None, skip_bad=False):
    """The checked samples of a dataset: raises DatasetError, or with skip_bad logs and drops."""
    layout, folders = _resolve(root, phase, layout)
    samples, bad = _pair(folders, layout, skip_bad)
    if max_dataset_size is not None:
        samples = samples[:max_dataset_size]
    paths = [p for s in samples for p in (s.path, s.b_path) if p is not None]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 4)) as pool:
        sizes = {p: wh or reason for p, (wh, reason) in zip(paths, pool.map(read_header, paths))}
    good = []
    for sample in samples:
        problem = _problem(sample, layout, spec, sizes)
        (bad.append(problem) if problem else good.append(sample))
    if bad and not skip_bad:
        raise DatasetError(f"{len(bad)} bad file(s) in {folders[0]}:\n{describe_bad(bad)}"
                           "\n(pass skip_bad=True to leave them out)")
    if bad:
        log.warning("skipped %d bad file(s) in %s:\n%s", len(bad), folders[0], describe_bad(bad))
    if not good:
        raise DatasetError(f"no usable images left in {folders[0]}")
    if not spec.crops and batch_size > 1:
        _check_same_output_size(good, layout, spec, sizes)
    return Index(layout, good, bad)


def _check_same_output_size(samples, layout, spec, sizes):
    """Without a crop, batching needs every sample to come out at one size."""
    first = {}
    for s in samples:
        w, h = sizes[s.path]
        out = spec.output_size(h, w // 2 if layout == "aligned" else w)
        first.setdefault(out, s.path)
        if len(first) > 1:
            (a_size, a_path), (b_size, b_path) = first.items()
            raise DatasetError(
                f"preprocess={spec.preprocess!r} keeps image sizes, and a batch needs one size: "
                f"{a_path} gives {a_size[1]}x{a_size[0]} but {b_path} gives {b_size[1]}x{b_size[0]} "
                "(W x H); use a cropping preprocess or batch_size=1")
