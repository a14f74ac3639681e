"""Finding the image files of a dataset, pairing them, and checking them before training.

Layouts:
  aligned     root/phase/**/*.jpg|png...: each file is A (left half) | B (right half)
  ab_folders  root/phase/A and root/phase/B (or root/A and root/B), paired by path without extension
  single      root/phase/A or root/A (no B/), or an explicit layout="single" folder: inputs only
Each file is checked once, at index time, the same way for both backends: its size from the header
against the pixel limit (before anything is decoded), then its integrity. DALI's decoders warn and
go on where data is corrupt, PIL's often too, so the strict checks here are what makes both backends
refuse (or skip) the same files: PNG chunk CRCs, the zlib stream and row filters; JPEG entropy data
decoded at 1/8 scale by libjpeg-turbo with its warnings as errors (simplejpeg; where it is not
installed, as after `pip install --no-deps`, PIL decodes JPEGs instead, which does not see corrupt
entropy data: a warning says so); other formats decoded by PIL.

The verdicts on files that passed are kept between runs (CheckCache), keyed by each file's size,
inode and change time, so a resumed run only stats the files it already knows. Under torchrun the
ranks split the checks and exchange their verdicts.
"""
import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import re
import stat
import struct
import time
import unicodedata
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

try:
    import simplejpeg
except ImportError:  # a setup that skipped the dependencies: JPEGs get PIL's weaker check
    simplejpeg = None

from .atomic import atomic_write, special_file
from .errors import NAMED_BAD, DatasetError, SeveralSizesError, alike, describe_bad, plural

log = logging.getLogger("bicyclegan.pipelines")
# A warning every process of a machine gives alike (the same files and checks, the same cores and
# /dev/shm), as `extra`: under torchrun a caller may let one process of the machine say it (the
# engine's init_distributed does: local rank 0), where each rank's line repeated it.
ALIKE = {"alike": True}

_SPLITS = ("train", "val", "test")  # the reference's datasets' split folders
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
# Images of formats the reference does not read either, left out with a word: a folder of JPEGs with a few
# TIFFs trained on the JPEGs alone, silently.
OTHER_FORMATS = (".tif", ".tiff", ".webp", ".gif", ".jp2", ".j2k", ".jxl", ".heic", ".heif", ".avif", ".pgm",
                 ".pbm", ".pnm")
MAX_PIXELS = 50_000_000  # per file (an aligned file holds both halves); make_loader(max_pixels=...)
_TAIL = 4096  # bytes searched for the JPEG end-of-image marker
# In a split folder while make-demo (demo.make_demo_dataset) writes it, and left there by one killed: its images
# are then too few, or part another seed's beside the old palettes.json.
DEMO_WRITING = ".demo-writing"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> samples per pixel, and the bit depths it allows
_PNG_TYPES = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)),
              6: (4, (8, 16))}
_ONCE = (b"IHDR", b"PLTE", b"IEND")  # critical chunks allowed once; IDAT may repeat, consecutively
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# What PIL reads and DALI's decoder reads alike (measured on DALI 2.4's CPU decoder); GIF, TGA, PCX...
# under an image extension pass PIL and stop a DALI epoch midway, so both loaders refuse them.
_BOTH_DECODE = ("PNG", "JPEG", "BMP", "PPM", "TIFF", "WEBP", "JPEG2000")
# The pixel modes of TIFF and JPEG 2000 content that DALI's decoder reads as PIL does (measured as
# above): it stops on 32-bit integer TIFFs and grey + alpha JPEG 2000, and misreads float, grey +
# alpha and CIELAB TIFFs (up to 254 grey levels off) where the checks had passed them.
_ALIKE_MODES = {"TIFF": ("1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I;16B"),
                "JPEG2000": ("L", "RGB", "RGBA", "I;16")}
_BITS_PER_SAMPLE = 258  # TIFF tag; 1 by default, but DALI's TIFF reader stops where it is left out


@dataclass(frozen=True)
class Sample:
    path: str            # aligned: the A|B file; ab_folders: the file in A/; single: the image
    b_path: str | None = None   # ab_folders: the file in B/


@dataclass
class Index:
    layout: str
    samples: list
    skipped: list       # [(path, reason)] dropped by skip_bad during the checks
    output_sizes: dict = field(default_factory=dict)  # (H, W) a batch comes out at -> the first file giving it


def to_rgb(img):
    """A PIL image as 8-bit RGB the way DALI's decoder gives it: alpha dropped, grey replicated,
    palettes expanded, 16-bit samples scaled (PIL's own conversion clips them to white)."""
    if img.mode in _SIXTEEN_BIT:
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))  # round(v / 257)
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when converting such a palette straight to RGB
    return img.convert("RGB")


# The pixels as stored, on both backends: Pillow (10 and later) applies a TIFF's Orientation tag as it loads it
# (and gives orientations 5-8 the swapped size before), DALI's decoder does not (nor does either apply a JPEG's
# EXIF orientation): turned back, else the backends differed by up to 255 levels, or a portrait TIFF's A|B halves
# were cut across. The transposition that undoes each of Pillow's.
_ORIENTATION = 274  # TIFF tag
_UNDO = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
         5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
         8: Image.Transpose.ROTATE_270}


# PNG chunks PIL refuses past its limits (a compressed one decompressing past 1 MB: PngImagePlugin.MAX_TEXT_CHUNK;
# text past 64 MB in all: MAX_TEXT_MEMORY), which DALI skips and the pixels never use: a file with a large text
# comment or ICC profile passed the check (and DALI) and stopped a torch run mid-epoch. Dropped before PIL reads the
# file; a file's other chunks are kept as they are.
_UNUSED_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"iCCP")


def _png_chunks(data):
    """(type, start, end) of each chunk of PNG bytes in turn, its length, type, body and CRC data[start:end], to
    IEND or to the last chunk whose header the bytes hold (whose end may lie past them: a file cut short)."""
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, chunk = struct.unpack(">I4s", data[pos:pos + 8])
        yield chunk, pos, pos + 12 + length
        if chunk == b"IEND":
            return
        pos += 12 + length


def _png_without_unused(data):
    """PNG bytes without the _UNUSED_CHUNKS, or data itself where it has none (or is no whole PNG: PIL says why)."""
    chunks = list(_png_chunks(data))
    if not any(chunk in _UNUSED_CHUNKS for chunk, _, _ in chunks):
        return data
    return data[:len(_PNG_SIGNATURE)] + b"".join(data[a:b] for chunk, a, b in chunks if chunk not in _UNUSED_CHUNKS)


def load_rgb(path):
    """Decode a file fully as 8-bit RGB (see to_rgb), its pixels as stored."""
    source = path
    with open(path, "rb") as f:  # (a PNG read once, here: PIL decodes the bytes kept)
        head = f.read(len(_PNG_SIGNATURE))
        if head == _PNG_SIGNATURE:
            source = io.BytesIO(_png_without_unused(head + f.read()))
    try:
        with Image.open(source) as img:
            turned = img.format == "TIFF" and img.tag_v2.get(_ORIENTATION, 1)
            rgb = to_rgb(img)
            if turned in _UNDO and _ORIENTATION not in img.tag_v2:  # (a Pillow that applies it drops the tag)
                rgb = rgb.transpose(_UNDO[turned])
    except UnidentifiedImageError:
        if source is path:
            raise
        # (PIL names the buffer: "cannot identify image file <_io.BytesIO object at 0x...>")
        raise UnidentifiedImageError(f"cannot identify image file {path!r}") from None
    return rgb


def _list_images(folder, others=None):
    """{path relative to folder, without extension: [full paths]} of the image files under folder.
    Linked folders are followed (a dataset assembled from links loses nothing), each real folder
    once; hidden files and folders (thumbnail caches, macOS's ._ files) are left out. others: a list
    that gets the paths of images in other formats (OTHER_FORMATS), which are not read."""
    found, seen = {}, set()
    top = os.path.realpath(folder)

    def unreadable(e: OSError):  # (os.walk skipped such a folder: one unreadable split "held no images")
        raise DatasetError(f"cannot read folder {e.filename}: {e.strerror or e}") from None
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree, or a second link to one folder
            dirnames[:] = []
            continue
        if real != top and os.path.commonpath([real, top]) == real:
            # A link to a folder above this one (train/up -> ..): walked, it read the folders beside this
            # one, val/ into the training data. Not followed, as the reference's os.walk follows no link.
            log.warning("%s links to %s, a folder above %s: not followed", dirpath, real, folder, extra=ALIKE)
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        # The folder's path below `folder` once, not os.path.relpath per file (two abspaths each:
        # 60 % of listing 100,000 files).
        below = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMG_EXTENSIONS):
                full = os.path.join(dirpath, name)
                key = os.path.splitext(name if below == os.curdir else os.path.join(below, name))[0]
                found.setdefault(key, []).append(full)
            elif others is not None and name.lower().endswith(OTHER_FORMATS):
                others.append(os.path.join(dirpath, name))
    return found


def _images_in(folder):
    """The names of the image files directly in folder (not in its subfolders), as they come."""
    # hidden files left out, as _list_images leaves them: a root of macOS's ._x.jpg leftovers alone was
    # taken for a folder of images, and said to hold none, not to lack its split's folder
    if not folder.is_dir():
        return
    yield from (p.name for p in folder.iterdir()
                if p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith(".") and p.is_file())


def _has_images(folder):
    return any(_images_in(folder))


def _resolve(root, phase, layout):
    """(layout, folders) for a dataset root; folders is (dir,) or (A dir, B dir)."""
    root = Path(root)
    if not root.is_dir():  # (a file was said not to exist)
        raise DatasetError(f"dataset folder {root} {'is a file, not a folder' if root.exists() else 'does not exist'}")
    for base in (root / phase, root):
        a, b = base / "A", base / "B"
        if layout != "aligned" and a.is_dir():
            if layout == "ab_folders" and not b.is_dir():
                raise DatasetError(f"missing folder {b} (layout='ab_folders' pairs {a} with it)")
            if layout == "ab_folders" or (layout is None and b.is_dir()):
                return "ab_folders", (a, b)
            return "single", (a,)
        if layout != "ab_folders" and (base.is_dir() if base != root else _has_images(root)):
            if base == root and (splits := sorted(d for d in _SPLITS if (root / d).is_dir())):
                # A stray image beside the splits would make the root a plain folder of them all.
                raise DatasetError(f"missing folder {root / phase}: {root} holds the splits "
                                   f"{', '.join(splits)}; choose one (--phase)")
            return layout or "aligned", (base,)
    # (e.g. train/ alone: no val/ to sample); a split that is there but of another layout is said below
    if not (root / phase).is_dir() and (splits := sorted(d for d in _SPLITS if (root / d).is_dir())):
        raise DatasetError(f"missing folder {root / phase}: {root} holds the splits {', '.join(splits)}; "
                           "choose one (--phase)")
    want = "A/ and B/ folders" if layout == "ab_folders" else "images or an A/ folder"
    if (root / phase).is_dir():  # (a split of another layout: it is there, what it lacks is A/ and B/)
        raise DatasetError(f"{root / phase} has no {want} (layout={layout!r}; looked in it and in {root})")
    # Files of other kinds alone (GIFs, which the reference skips too): "missing folder root/test" hid that
    # the folder was read as one of inputs and why none of its files is one.
    others = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if others and layout != "ab_folders":
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise DatasetError(f"{root} holds no images of the extensions read ({', '.join(IMG_EXTENSIONS)}), only "
                           f"other files ({others[0]}{more}), and no folder {phase}/ or A/")
    raise DatasetError(f"missing folder {root / phase} (looked for {want} in it and in {root})")


def find_layout(root, phase, layout=None):
    """(layout, folders) that make_loader reads root/phase with: layout None detects it (see the
    module's docstring); folders is (dir,) or (A dir, B dir). A DatasetError where there is none."""
    layout, folders = _resolve(root, phase, layout)
    _refuse_demo_being_written(folders)
    return layout, folders


def _refuse_demo_being_written(folders):
    """A DatasetError for a folder make-demo is writing or was interrupted writing (its marker is there): read, it
    trained on the images written so far, and evaluate measured palettes against another seed's labels."""
    for folder in folders:
        if (folder / DEMO_WRITING).exists():
            raise DatasetError(f"{folder} holds {DEMO_WRITING}: make-demo was interrupted writing it (or is writing "
                               f"it now), so its images are not the whole demo data; run the make-demo command again")


def _by_nfc(files):
    """_list_images' {name: [paths]} keyed by each name's NFC form (names equal in it merged)."""
    merged = {}
    for key, paths in files.items():
        merged.setdefault(unicodedata.normalize("NFC", key), []).extend(paths)
    return merged


def _pair(folders, layout, skip_bad):
    """Samples (aligned and single: by path, the reference's order; ab_folders: by name without extension)
    and the files left unpaired or ambiguous."""
    others = []
    listed = [_list_images(f, others) for f in folders]
    for folder, files in zip(folders, listed):
        if not files:
            raise DatasetError(f"folder {folder} holds no images (extensions {', '.join(IMG_EXTENSIONS)})")
    if others:
        kinds = sorted({os.path.splitext(p)[1].lower() for p in others})
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        log.warning("left out %s of %s (%s%s): the extensions read are %s, as the reference's; convert them to "
                    "PNG to use them", plural(len(others), "image file"), ", ".join(kinds), others[0], more,
                    ", ".join(IMG_EXTENSIONS), extra=ALIKE)
    bad = []
    if layout == "ab_folders":  # pairs are found by name: 1.jpg and 1.png in A/ have no one partner
        # By the names' composed Unicode form (NFC): macOS writes names decomposed (NFD), so a "café" copied
        # from elsewhere into A/ had no partner in a B/ written there, two names that look the same.
        listed = [_by_nfc(files) for files in listed]
        for files in listed:
            for paths in files.values():
                if len(paths) > 1:
                    bad += [(p, "ambiguous: several files share this name without extension") for p in paths]
        a, b = listed
        bad += [(a[k][0], f"no partner in {folders[1]}") for k in sorted(a.keys() - b.keys())]
        bad += [(b[k][0], f"no partner in {folders[0]}") for k in sorted(b.keys() - a.keys())]
        keys = sorted(k for k in a.keys() & b.keys() if len(a[k]) == 1 and len(b[k]) == 1)
        samples = [Sample(a[k][0], b[k][0]) for k in keys]
    else:  # each file is a sample of its own, 1.jpg and 1.png too
        # In the reference's order: its full paths sorted, extension included ("a b.jpg", "a-b.jpg",
        # "a.jpg", "a.png"); the names without extension put "a.jpg" before "a b.jpg", and so
        # --max_dataset_size and sample's first --num took other files than the reference's.
        samples = [Sample(p) for p in sorted(p for paths in listed[0].values() for p in paths)]
    if bad and not skip_bad:
        # The rule itself, since a user whose B files are named otherwise (x.jpg and x_B.png) got a
        # list of "no partner" lines and no word on what a partner is.
        raise DatasetError(f"cannot pair the files of {folders[0].parent} (A/ and B/ pair files by name, the "
                           f"extension aside: A/x.jpg with B/x.png):\n{describe_bad(bad)}"
                           "\n(--skip_bad, or skip_bad=True in Python, leaves them out)")
    return samples, bad


def _png_rows(w, h, depth, samples, interlaced):
    """Byte length of each filtered row (filter byte included), in stream order."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    rows = []
    for x0, y0, dx, dy in passes:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            rows += [1 + (pw * depth * samples + 7) // 8] * ph
    return np.array(rows, dtype=np.int64)


def _png_problem(data):
    """Why PNG bytes are not a whole, uncorrupted PNG, or None."""
    ihdr, idat, seen = None, [], []
    for chunk, pos, end in _png_chunks(data):
        if end > len(data):
            return f"truncated PNG (chunk {chunk.decode('latin-1')!r} cut short)"
        if zlib.crc32(data[pos + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"corrupt PNG (CRC mismatch in chunk {chunk.decode('latin-1')!r})"
        if (ihdr is None) != (chunk == b"IHDR") or chunk in seen and chunk in _ONCE:
            return f"corrupt PNG (chunk {chunk.decode('latin-1')!r} out of place)"
        if chunk[:1].isupper() and chunk not in _ONCE + (b"IDAT",):
            return f"corrupt PNG (unknown critical chunk {chunk.decode('latin-1')!r})"
        if chunk == b"IHDR":
            ihdr = data[pos + 8:end - 4]
        elif chunk == b"IDAT":
            if idat and seen[-1] != b"IDAT":
                return "corrupt PNG (IDAT chunks not consecutive)"
            idat.append(data[pos + 8:end - 4])
        elif chunk == b"PLTE" and idat:
            return "corrupt PNG (PLTE after IDAT)"
        seen.append(chunk)
    if not seen or seen[-1] != b"IEND":
        return "truncated PNG (no IEND chunk)"
    if not idat:
        return "corrupt PNG (no IDAT chunk)"
    if len(ihdr) != 13:
        return "corrupt PNG (IHDR of the wrong length)"
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    if ctype not in _PNG_TYPES or depth not in _PNG_TYPES[ctype][1] or interlace > 1 or not w or not h:
        return f"corrupt PNG (IHDR: {w}x{h}, bit depth {depth}, colour type {ctype}, interlace {interlace})"
    if (ctype == 3 and b"PLTE" not in seen) or (ctype in (0, 4) and b"PLTE" in seen):
        return f"corrupt PNG ({'no' if ctype == 3 else 'a'} PLTE chunk for colour type {ctype})"
    rows = _png_rows(w, h, depth, _PNG_TYPES[ctype][0], interlace)
    starts = np.concatenate([[0], np.cumsum(rows)])  # each row's filter byte; the last: the end
    inflate, done = zlib.decompressobj(), 0
    try:
        for piece in _inflate(inflate, idat):
            # the filter bytes that fall in this piece (in pieces: a large image is never held whole)
            firsts = starts[np.searchsorted(starts, done):np.searchsorted(starts, done + len(piece))]
            if len(firsts) and np.frombuffer(piece, np.uint8)[firsts - done].max() > 4:
                return "corrupt PNG (invalid row filter)"
            done += len(piece)
            if done > starts[-1]:
                break
    except zlib.error as err:
        return f"corrupt PNG (image data: {err})"
    # Bytes after the end of the zlib stream are left alone: libpng, PIL and DALI ignore them.
    if done != starts[-1] or not inflate.eof:
        return f"corrupt PNG (image data does not hold exactly {w}x{h} pixels)"
    return None


def _inflate(inflate, parts, piece=1 << 20):
    for part in parts:
        while part and not inflate.eof:
            yield inflate.decompress(part, piece)
            part = inflate.unconsumed_tail
    yield inflate.flush()


def _jpeg_problem(data):
    """Why JPEG bytes are not a whole, uncorrupted JPEG, or None: libjpeg-turbo's warnings (corrupt
    entropy data, which DALI and PIL decode into garbage) count as errors here."""
    if b"\xff\xd9" not in data[-_TAIL:] and not _jpeg_has_end(data):
        return "truncated JPEG (no end-of-image marker)"
    if _unmarked_cmyk(data):
        return ("CMYK JPEG without an Adobe marker: PIL reads its inks as stored, DALI's decoder inverted (as "
                "Adobe's files store them); convert it to RGB or PNG")
    if simplejpeg is None:
        _warn_pil_jpeg()
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.draft("L", (max(1, img.width // 8), max(1, img.height // 8)))  # decode at 1/8 scale
                img.load()
        except (OSError, SyntaxError, ValueError) as err:
            return f"corrupt JPEG (PIL: {err})"
        return None
    try:
        # grey at 1/8 scale: every coefficient is still entropy-decoded, but little else is done
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8)
    except ValueError as err:
        return f"corrupt JPEG (libjpeg-turbo: {err})"
    return None


def _unmarked_cmyk(data):
    """Whether a JPEG's frame has four components (CMYK) and its header no Adobe (APP14) segment: the one
    CMYK JPEG the two decoders read apart (up to 255 levels, all black on DALI where PIL gave the picture)."""
    adobe, components = False, None
    for marker, pos, _ in _jpeg_header(data):
        if marker == 0xEE and data[pos + 4:pos + 9] == b"Adobe":
            adobe = True
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 < len(data):  # a frame
            components = data[pos + 9]
    return components == 4 and not adobe


def _jpeg_header(data):
    """(marker, position, length) of each segment of a JPEG's header, to its first scan (start of scan: 0xDA,
    the last one given); fill bytes skipped."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        yield marker, pos, length
        if marker == 0xDA:
            return
        pos += 2 + length


def _jpeg_has_end(data):
    """Whether the image's end-of-image marker lies anywhere after its first scan: a file with more
    after the JPEG (a phone's motion photo holds a video) has it far from the end. Entropy-coded data
    never holds FF D9 (an FF there is followed by 00 or a restart marker), and the search starts
    after the header segments, where an embedded thumbnail keeps its own."""
    return any(marker == 0xDA and data.find(b"\xff\xd9", pos + 2 + length) != -1
               for marker, pos, length in _jpeg_header(data))


def _other_problem(data, img):
    """Why a file of neither PNG nor JPEG content (`img`: PIL's lazy open of it) is refused, or None: a
    format DALI's decoder does not read, or reads differently from PIL (16-bit BMPs, PNM maximum values
    other than 255 or 65535, TIFF and JPEG 2000 pixel modes outside _ALIKE_MODES)."""
    fmt = img.format
    if fmt not in _BOTH_DECODE:
        return (f"{fmt} content: not decoded alike by both loaders (they take PNG, JPEG, BMP, PPM/PGM/PBM, "
                "TIFF, WebP, JPEG 2000); convert it to PNG")
    if fmt in _ALIKE_MODES and img.mode not in _ALIKE_MODES[fmt]:
        return (f"{'JPEG 2000' if fmt == 'JPEG2000' else fmt} of pixel mode {img.mode}: DALI's decoder refuses "
                "or misreads it; convert it to PNG")
    if fmt == "TIFF" and _BITS_PER_SAMPLE not in img.tag_v2:
        return "TIFF without a BitsPerSample tag: DALI's decoder refuses it; convert it to PNG"
    if fmt == "BMP" and len(data) >= 30:
        header = int.from_bytes(data[14:18], "little")
        bits = int.from_bytes(data[24:26] if header == 12 else data[28:30], "little")
        if bits == 16:
            return "16-bit BMP: DALI's decoder refuses or misreads its 5-bit channels; convert it to PNG"
    if fmt == "PPM" and data[:2] in (b"P2", b"P3"):  # (ASCII: a torch run trained on it, a DALI one stopped)
        return f"ASCII PNM ({data[:2].decode()}): DALI's decoder cannot read it; convert it to PNG (or binary P5/P6)"
    if fmt == "PPM" and data[:2] in (b"P5", b"P6"):
        fields = re.sub(rb"#[^\n]*", b"", data[:1024]).split()[:4]
        if len(fields) == 4 and fields[3].isdigit() and int(fields[3]) not in (255, 65535):
            return (f"PNM with maximum value {int(fields[3])}: DALI's decoder reads only 255 and 65535 "
                    "correctly; convert it to PNG")
    return None


@functools.lru_cache(maxsize=None)
def _warn_pil_jpeg():
    log.warning("simplejpeg is not installed: JPEG files are checked by decoding them with PIL, which "
                "passes corrupt entropy data (decoded into garbage) that the strict check refuses; "
                "pip install simplejpeg", extra=ALIKE)


def _size(data, path):
    """(W, H) from the header, with nothing decoded (PNG, JPEG) or PIL's lazy open (others)."""
    if data.startswith(_PNG_SIGNATURE):
        if data[12:16] != b"IHDR" or len(data) < 24:
            raise ValueError("PNG without an IHDR header")
        return struct.unpack(">II", data[16:24])
    if data.startswith(b"\xff\xd8") and simplejpeg is not None:
        h, w = simplejpeg.decode_jpeg_header(data)[:2]
        return w, h
    with Image.open(path) as img:
        if img.format == "TIFF":  # (as stored: Pillow's size is the turned picture's, see load_rgb)
            return img.tag_v2[256], img.tag_v2[257]
        return img.size


def first_image_size(folder):
    """(name, (W, H)) of the first image file directly in folder by name, its size from the header as the checks
    read it (_size: a JPEG's first 64 KiB, PIL's lazy open past them), or None where there is none or it cannot be
    read: for a hint that needs one file's size, not its checks."""
    name = min(_images_in(Path(folder)), default=None)
    if name is None:
        return None
    path = os.path.join(folder, name)
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)
        try:
            return name, tuple(_size(data, path))
        except ValueError:  # (a JPEG whose header lies past the bytes read: EXIF with a large thumbnail)
            with Image.open(path) as img:
                return name, img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _over_limit(w, h, max_pixels):
    if w * h > max_pixels:
        # Said for both callers: the command line's user read only make_loader's argument, not train's option.
        return (f"{w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                "(raise it with train's --max_pixels, or max_pixels= in Python)")
    return None


def inspect_file(path, max_pixels=MAX_PIXELS):
    """((W, H), None) for an image file that passes the checks, or (None, reason)."""
    try:
        # A named pipe opened here waited for a writer for ever, and a link to a device (/dev/zero) was
        # read until memory ran out: only a regular file is an image file.
        if not stat.S_ISREG(os.stat(path).st_mode):  # (followed: a link to an image is one)
            return None, f"not a regular file ({special_file(os.path.realpath(path)) or 'a folder'})"
        with open(path, "rb") as f:
            data = f.read()
        if not data:
            return None, "zero-byte file"
        w, h = _size(data, path)
        if over := _over_limit(w, h, max_pixels):
            return None, over
        if data.startswith(_PNG_SIGNATURE):
            problem = _png_problem(data)
        elif data.startswith(b"\xff\xd8"):
            problem = _jpeg_problem(data)
        else:
            with Image.open(path) as img:
                problem = _other_problem(data, img)
            if not problem:
                load_rgb(path)
        return (None, problem) if problem else ((w, h), None)
    except Exception as err:  # PIL and simplejpeg raise several types (OSError, SyntaxError, ValueError...)
        if os.path.islink(path) and not os.path.exists(path):  # said as such, not as a missing file
            return None, f"broken link (to {os.readlink(path)}, which does not exist)"
        return None, f"unreadable image ({type(err).__name__}: {err})"


CHECKS_VERSION = 4  # raise it when inspect_file's checks change: cached verdicts are then redone
CHECK_PART = 1024  # files submitted to the checking threads at a time
_SETTLE_NS = 5 * 10**9  # a file changed this recently may change again within one timestamp tick


_saving_checks = True  # False within checks_unsaved()


@contextlib.contextmanager
def checks_unsaved():
    """Within it, the file checks read the check cache and save nothing to it: a dry run (train --dry-run)
    checks the files as the run would, and writes nothing."""
    global _saving_checks
    before, _saving_checks = _saving_checks, False
    try:
        yield
    finally:
        _saving_checks = before


def _checks_version():
    # Verdicts of PIL's JPEG check and of the strict one do not stand in for each other.
    return CHECKS_VERSION if simplejpeg is not None else f"{CHECKS_VERSION}+pil"


_UNSAVED = set()  # the cache folders whose files could not be written, said once a process
# More files than this to check (not in the check cache) are said first: 50,000 new files took tens of seconds to
# minutes without a word, a run that looked hung before its first line.
CHECKS_SAID = 1000
_CHECKING_SAID = set()  # the folders whose checks were said, once a process


def _cached(folder, suffix: str) -> str | None:
    """The file of the check cache's folder (see CheckCache) for the data folder `folder`, named after it with
    `suffix`; None where the cache is off."""
    where = os.environ.get("BICYCLEGAN_CHECK_CACHE", "")
    if where.lower() == "off":
        return None
    if not where:
        where = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bicyclegan",
                             "checked")
    return os.path.join(where, hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:24] + suffix)


class CheckCache:
    """The sizes of the files under one folder that passed inspect_file, by path, kept in a JSON file
    under $BICYCLEGAN_CHECK_CACHE (default $XDG_CACHE_HOME/bicyclegan/checked, else
    ~/.cache/bicyclegan/checked; "off" turns it off). An entry holds only while the file's size,
    inode and change time are those it was checked with: rewriting, replacing or touching a file
    (the change time moves even when a copy keeps the modification time) has it checked again.
    Failed files are never cached, so they are checked (and reported) on every run."""

    def __init__(self, folder):
        self.base = os.path.realpath(folder)
        self.prefix = os.path.join(str(folder), "")
        self.entries, self.new = {}, {}
        self.path = _cached(folder, ".json")
        if self.path is None:
            return
        try:
            with open(self.path) as f:
                saved = json.load(f)
            if (saved.get("version") == _checks_version() and saved.get("folder") == self.base
                    and isinstance(saved["files"], dict)):  # (a damaged body is as no file: checked again)
                self.entries = saved["files"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # none yet, or unreadable: everything is checked again and the file rewritten

    def _key(self, path):
        """The path below the folder (the listing's paths all start with it)."""
        path = str(path)
        return path[len(self.prefix):] if path.startswith(self.prefix) else os.path.relpath(path, self.base)

    @staticmethod
    def stamp(path):
        st = os.stat(path)
        return [st.st_size, st.st_ino, st.st_ctime_ns]

    def lookup(self, path, max_pixels):
        """(W, H) or a reason when `path` is known unchanged, else None (check it)."""
        if self.path is None:
            return None
        try:
            size, ino, ctime, w, h = self.entries.get(self._key(path))
            if [size, ino, ctime] != self.stamp(path) or not all(type(v) is int and v > 0 for v in (w, h)):
                return None
        except (TypeError, ValueError, OSError):  # unknown, a damaged entry, or gone now
            return None
        return _over_limit(w, h, max_pixels) or (w, h)

    def save(self, listed=()):
        """Write the entries, old and new, atomically (a concurrent run may win; both are right).
        listed: the keys of this run's listing; an old entry of a file outside it that is gone is
        dropped, else every renamed or regenerated dataset left its old names in the file for good
        (a 10,000-file folder re-exported three times: 40,000 entries, all read at every start).
        Only when something new is saved: a run with nothing new checked writes nothing (and does
        not stat the entries outside a partial listing, as a one-image `sample` of a large folder
        would), and nothing within checks_unsaved(). Raises OSError naming the file when it cannot be written."""
        if self.path is None or not self.new or not _saving_checks:
            return
        listed = set(listed)
        # Outside the listing (max_dataset_size lists a part) only a file that is gone is forgotten.
        kept = {k: v for k, v in self.entries.items()
                if k in listed or os.path.lexists(os.path.join(self.base, k))}
        text = json.dumps({"version": _checks_version(), "folder": self.base,
                           "files": {**kept, **self.new}}, separators=(",", ":"))
        atomic_write(self.path, lambda f: f.write(text.encode()), what="file checks' cache", error=OSError)


def _process_group(rank, world_size):
    """torch.distributed when make_loader's rank and world_size are this process's own in the
    default process group (every rank then builds its loader, so the checks can be split), else None."""
    if world_size < 2:
        return None
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist if (dist.get_rank(), dist.get_world_size()) == (rank, world_size) else None


def usable_cores():
    """CPU cores this process may run on: a taskset or cgroup cpuset counts, not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_ranks():
    """Training processes on this machine that share its cores and /dev/shm (torchrun's LOCAL_WORLD_SIZE)."""
    ranks = os.environ.get("LOCAL_WORLD_SIZE", "1")
    return max(1, int(ranks)) if ranks.isdigit() else 1


def core_share():
    """This process's share of the cores it may use among the ranks on this machine (usable_cores, local_ranks),
    at least 1: what its loader workers and writer threads are sized by."""
    return max(1, usable_cores() // local_ranks())


def _check_share(paths, cache, max_pixels, folder, world_size):
    """The verdicts on `paths`, in order ((W, H) or a reason), and the cacheable ones among them,
    {position: [size, ino, ctime_ns, W, H]}: cached verdicts where the files are unchanged,
    inspect_file for the rest (more than CHECKS_SAID of them said first; folder: theirs, world_size: the processes
    that share its files' checks)."""
    verdicts = [cache.lookup(p, max_pixels) for p in paths]
    todo = [i for i, v in enumerate(verdicts) if v is None]
    if len(todo) > CHECKS_SAID and folder not in _CHECKING_SAID:
        _CHECKING_SAID.add(folder)
        why = ("the check cache is off: BICYCLEGAN_CHECK_CACHE=off" if cache.path is None else
               "not in the check cache; a dry run saves none" if not _saving_checks else
               "the first time; later runs read the check cache")
        share = f", this process's share of {world_size}" if world_size > 1 else ""
        log.warning("checking %d files in %s (%s%s) ...", len(todo), folder, why, share, extra=ALIKE)

    def check(i):
        try:
            stamp = cache.stamp(paths[i])
        except OSError:
            stamp = None  # inspect_file names the problem
        return stamp, inspect_file(paths[i], max_pixels)
    started, new = time.time_ns(), {}
    with ThreadPoolExecutor(max_workers=min(16, usable_cores() * 4)) as pool:
        # In parts: pool.map submits its whole input at once, and a future per file of 100,000 held
        # 190 MB until the last was done.
        for lo in range(0, len(todo), CHECK_PART):
            part = todo[lo:lo + CHECK_PART]
            for i, (stamp, (wh, reason)) in zip(part, pool.map(check, part)):
                verdicts[i] = wh or reason
                # stamp taken before the read: a change during the check shows as another stamp next time
                if wh is not None and stamp is not None and stamp[2] < started - _SETTLE_NS:
                    new[i] = [*stamp, *wh]
    return verdicts, new


def _check_files(paths, folder, max_pixels, rank=0, world_size=1):
    """{path: (W, H) or reason} for every path. Under torch.distributed (see _process_group) each
    rank checks every world_size-th path and the verdicts are exchanged, so the ranks of a large
    launch share the work instead of each doing all of it; rank 0 saves the cache."""
    cache = CheckCache(folder)
    dist = _process_group(rank, world_size)
    if dist is None:
        rank, world_size = 0, 1
    mine = _check_share(paths[rank::world_size], cache, max_pixels, folder, world_size)
    every = [mine]
    if dist is not None:
        # The split assumes the same listing everywhere (as the loader's sharding does): compare it.
        listing = hashlib.sha256("\n".join(cache._key(p) for p in paths).encode("utf-8", "surrogateescape")).hexdigest()
        gathered = [None] * world_size
        dist.all_gather_object(gathered, (len(paths), listing, mine))
        if len({(n, digest) for n, digest, _ in gathered}) > 1:
            counts = ", ".join(f"rank {r}: {n}" for r, (n, _, _) in enumerate(gathered))
            raise alike(DatasetError(f"the ranks see different files in {folder} ({counts} files; names differ "
                                     "where the counts agree): every rank must read the same dataset"), rank)
        every = [share for _, _, share in gathered]
    sizes = {}
    for r, (verdicts, new) in enumerate(every):
        share = paths[r::world_size]
        sizes.update(zip(share, verdicts))
        cache.new.update((cache._key(share[i]), entry) for i, entry in new.items())
    if rank == 0:  # one writer: the ranks of a node share one cache file
        try:
            cache.save(cache._key(p) for p in paths)
        except OSError as err:  # a read-only home, a full disk: the run goes on, checking again next time
            folder = os.path.dirname(cache.path)
            if folder not in _UNSAVED:  # (said at each of a training's three loaders, and at every command)
                _UNSAVED.add(folder)
                log.warning("could not save the file checks' cache (%s): the files are checked again at each start; "
                            "BICYCLEGAN_CHECK_CACHE=FOLDER keeps it in a folder you can write, =off turns it off",
                            err)
    return sizes


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


def changed_since_checks(sample, layout, spec, sizes, output_sizes) -> str | None:
    """Why a sample's files, as decoded now (sizes: path -> (W, H)), no longer fit what the checks found,
    or None: the checks' own rules, and an output size the checks found in some file (a batch's images
    share one). Both loaders ask it of a file that fails at run time (a dataset re-exported while a
    run trains made a batch of unequal tensors: a traceback naming no file)."""
    if problem := _problem(sample, layout, spec, sizes):
        return problem[1]
    w, h = sizes[sample.path]
    size = spec.output_size(h, w // 2 if layout == "aligned" else w)
    if size not in output_sizes:
        return f"size {w}x{h} gives {size[1]}x{size[0]} (W x H), which the checks found in no file"
    return None


def _list_bad(bad, where, limit=NAMED_BAD) -> str | None:
    """Where more bad files than describe_bad's `limit` lines are found, a text file listing every one (path,
    a tab, the reason; a line each) in the check cache's folder, named after the data folder: 851 of 861
    damaged files were "... and 851 more", and only Python's loader.skipped held their names. None where the
    cache is off, within checks_unsaved() (a dry run writes nothing: it wrote this list, and the cache's folder)
    or the file cannot be written (the line says the count alone)."""
    if len(bad) <= limit or not _saving_checks or (path := _cached(where, ".bad.txt")) is None:
        return None
    path = Path(path)
    text = "".join(f"{p}\t{' '.join(str(r).split())}\n" for p, r in bad)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(text.encode("utf-8", "surrogateescape")), what="list of bad files")
    except OSError:
        return None
    return str(path)


def find_samples(root, *, phase, layout, spec, batch_size, max_dataset_size=None, skip_bad=False,
                 max_pixels=MAX_PIXELS, rank=0, world_size=1):
    """The checked samples of a dataset: raises DatasetError, or with skip_bad logs and drops.
    rank, world_size: see _check_files (under torch.distributed the ranks split the checks)."""
    layout, folders = find_layout(root, phase, layout)
    samples, bad = _pair(folders, layout, skip_bad)
    # (An A/ folder's: a plain folder of inputs, the single layout's too, has no A/ to be beside: its parent's
    # images, ~/Pictures's for ~/Pictures/inputs, were named as if they belonged to the dataset.)
    from_a = layout == "ab_folders" or folders[0] not in (Path(root), Path(root) / phase)
    if layout != "aligned" and from_a and (beside := sorted(_images_in(folders[0].parent))):
        # Aligned A|B files beside A/ and B/ folders are not read (the folders decide the layout): said,
        # where a split of both kinds trained on its folders' pairs alone without a word.
        more = f" and {len(beside) - 1} more" if len(beside) > 1 else ""
        log.warning("%s holds image files beside its A/ folder (%s%s), which are not read: the %s layout reads "
                    "%s alone; move them into a split of their own to train on them", folders[0].parent,
                    beside[0], more, layout, " and ".join(f"{f.name}/" for f in folders), extra=ALIKE)
    n_listed = len(samples)
    if max_dataset_size is not None:
        samples = samples[:max_dataset_size]
    paths = [p for s in samples for p in (s.path, s.b_path) if p is not None]
    sizes = _check_files(paths, folders[0].parent if layout == "ab_folders" else folders[0], max_pixels,
                         rank, world_size)
    good = []
    for sample in samples:
        problem = _problem(sample, layout, spec, sizes)
        (bad.append(problem) if problem else good.append(sample))
    where = folders[0].parent if layout == "ab_folders" else folders[0]  # (a B/ file was said to be in A/)
    said = describe_bad(bad, listed=_list_bad(bad, where)) if bad else ""
    if len(bad) > NAMED_BAD and not _saving_checks:  # (the line of those left out names no list)
        said += " (a run lists them all in a file beside the check cache; a dry run writes nothing)"
    if bad and not skip_bad:
        raise alike(DatasetError(f"{len(bad)} bad file(s) in {where}:\n{said}"
                                  "\n(--skip_bad, or skip_bad=True in Python, leaves them out)"), rank)
    if bad:
        log.warning("skipped %d bad file(s) in %s:\n%s", len(bad), where, said, extra=ALIKE)
    if not good:
        cut = (f" (max_dataset_size={max_dataset_size} took the first {len(samples)} of its {n_listed} samples, "
               f"all bad: the rest were not looked at)" if n_listed > len(samples) else "")
        raise alike(DatasetError(f"no usable images left in {where}{cut}"), rank)
    outputs = {}
    for s in good:  # from the headers read above: the networks' size checks need no decoding
        w, h = sizes[s.path]
        outputs.setdefault(spec.output_size(h, w // 2 if layout == "aligned" else w), s.path)
    if len(outputs) > 1 and batch_size > 1:
        (a_size, a_path), (b_size, b_path) = list(outputs.items())[:2]
        raise SeveralSizesError(
            f"preprocess={spec.preprocess!r} keeps image sizes, and a batch needs one size: "
            f"{a_path} gives {a_size[1]}x{a_size[0]} but {b_path} gives {b_size[1]}x{b_size[0]} "
            "(W x H); use a cropping preprocess or batch_size=1")
    return Index(layout, good, bad, outputs)

