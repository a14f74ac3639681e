"""bicyclegan.pipelines on unusual files: pixel formats decoded alike by both backends, the pixel
limit, corrupt files refused alike, and one-line errors for bad arguments.

Expected pixels are computed here with numpy from the arrays the files were written from (or, for
CMYK, from PIL's raw CMYK decode and the CMYK -> RGB formula), never by the loaders' helpers.
"""
import io
import json
import logging
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipelines import BACKENDS, needs_dali, noise, write

import bicyclegan.pipelines as pipelines
from bicyclegan.pipelines import DatasetError, make_loader
from bicyclegan.pipelines.files import inspect_file

H, W = 12, 32  # each file: two 12 x 16 halves


SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(arr, depth, colour_type):
    """A PNG written by hand (PIL writes no 16-bit RGB): arr is H x W [x samples], filter 0."""
    dtype = ">u2" if depth == 16 else np.uint8
    raw = b"".join(b"\0" + row.astype(dtype).tobytes() for row in arr.reshape(arr.shape[0], -1))
    ihdr = struct.pack(">IIBBBBB", arr.shape[1], arr.shape[0], depth, colour_type, 0, 0, 0)
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def ramp16():
    y, x = np.mgrid[0:H, 0:W]
    return (x * 2011 + y * 389 + 77).astype(np.uint16)  # spans most of 0..65535


def make_file(kind, path):
    """Write a file of one pixel format; return the RGB image (float, H x W x 3) it must decode to."""
    rng = np.random.default_rng(sum(map(ord, kind)))
    if kind in ("I;16", "I;16B"):
        v = ramp16()
        order = "<u2" if kind == "I;16" else ">u2"
        Image.frombytes(kind, (W, H), v.astype(order).tobytes()).save(path)
        return np.repeat(v[..., None] / 257.0, 3, -1)
    if kind == "RGB;16":
        v = np.stack([ramp16(), ramp16()[::-1], 65535 - ramp16()], -1)
        path.write_bytes(png_bytes(v, 16, 2))
        return v / 257.0
    if kind in ("P", "P+transparency"):
        palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
        index = rng.integers(0, 16, (H, W), dtype=np.uint8)
        img = Image.fromarray(index, "P")
        img.putpalette(palette.tobytes())
        # an alpha per palette entry (a tRNS table): PIL reads it as bytes
        img.save(path, **({"transparency": bytes(range(0, 256, 16))} if kind == "P+transparency" else {}))
        return palette[index].astype(np.float64)
    if kind in ("LA", "RGBA"):
        arr = noise(rng, H, W, 2 if kind == "LA" else 4)
        Image.fromarray(arr, kind).save(path)
        colour = arr[..., :1].repeat(3, -1) if kind == "LA" else arr[..., :3]
        return colour.astype(np.float64)
    if kind == "CMYK":
        Image.fromarray(noise(rng, H, W, 4), "CMYK").save(path, quality=100)
        with Image.open(path) as img:
            c, m, y, k = np.moveaxis(np.asarray(img, np.float64), -1, 0)  # as decoded, before conversion
        return np.stack([(255 - c) * (255 - k), (255 - m) * (255 - k), (255 - y) * (255 - k)], -1) / 255
    if kind in ("L", "L.jpg"):
        y, x = np.mgrid[0:H, 0:W]
        arr = (x * 7 + y * 5).astype(np.uint8)  # smooth, so JPEG at quality 100 keeps it to a level
        Image.fromarray(arr, "L").save(path, **({"quality": 100} if kind == "L.jpg" else {}))
        return np.repeat(arr[..., None], 3, -1).astype(np.float64)
    if kind == "1":
        bits = rng.integers(0, 2, (H, W)).astype(bool)
        Image.fromarray(bits).save(path)
        return np.repeat(bits[..., None] * 255.0, 3, -1)
    raise AssertionError(kind)


KINDS = ["I;16", "I;16B", "RGB;16", "P", "P+transparency", "LA", "RGBA", "CMYK", "L", "L.jpg", "1"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nc", [3, 1])
@pytest.mark.parametrize("kind", KINDS)
def test_pixel_formats_decode_as_expected(tmp_path, kind, nc, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL warns on palettes with transparency converted straight to RGB
        check_format(tmp_path, kind, nc, backend, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("nc", [3, 1])
@pytest.mark.parametrize("kind", KINDS)
def test_pixel_formats_on_dali_gpu_decoding(tmp_path, kind, nc):
    pytest.importorskip("nvidia.dali", reason="DALI is not installed")
    check_format(tmp_path, kind, nc, "dali", "cuda")


def check_format(tmp_path, kind, nc, backend, device):
    ext = "jpg" if kind in ("CMYK", "L.jpg") else "png"
    (tmp_path / "test").mkdir()
    expect = make_file(kind, tmp_path / f"test/x.{ext}")
    tol = 1.0  # a grey level: PIL takes 16-bit samples' high byte where DALI rounds
    if nc == 1:  # ITU-R 601 luma, as PIL's L conversion and DALI's GRAY, of 8-bit RGB
        expect = (expect @ np.array([0.299, 0.587, 0.114]))[..., None]
        tol = 1.5  # two roundings: to 8-bit RGB, then to 8-bit grey
    (b,) = make_loader(tmp_path, phase="test", preprocess="none", batch_size=1, load_size=16, crop_size=16,
                       backend=backend, num_workers=0, input_nc=nc, output_nc=nc, device=device)
    for key, half in (("A", expect[:, :16]), ("B", expect[:, 16:])):
        got = (b[key][0].cpu().numpy().transpose(1, 2, 0) + 1) * 127.5
        assert got.shape == half.shape
        assert np.abs(got - half).max() <= tol + 1e-3, (kind, key)


def bomb_png(w=20000, h=6000):
    """A small file (1-bit, all zero) whose header declares w x h pixels."""
    raw = zlib.compress(b"\0" * ((w + 7) // 8 + 1) * h, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def good_files(root, n=3):
    rng = np.random.default_rng(0)
    return [write(root / f"train/{i}.png", noise(rng, 16, 32)) for i in range(n)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pixel_limit_from_the_header(tmp_path, backend, caplog):
    good = good_files(tmp_path)
    (tmp_path / "train/bomb.png").write_bytes(bomb_png())
    kw = {"batch_size": 1, "load_size": 16, "crop_size": 16, "backend": backend, "num_workers": 0,
          "shuffle": False}
    # the command line's option named too (it said make_loader(max_pixels=...) alone)
    with pytest.raises(DatasetError, match=r"bomb.png: 20000x6000 = 120,000,000 pixels, over the limit of "
                                           r"50,000,000 \(raise it with train's --max_pixels, or max_pixels= in "
                                           r"Python\)"):
        make_loader(tmp_path, **kw)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        loader = make_loader(tmp_path, skip_bad=True, **kw)
    assert [p for b in loader for p in b["paths"]] == good and "bomb.png" in caplog.text
    # the limit is the argument's: a 16 x 32 file is 512 pixels
    with pytest.raises(DatasetError, match="0.png: 32x16 = 512 pixels, over the limit of 511 "):
        make_loader(tmp_path, max_pixels=511, **kw)
    (tmp_path / "train/bomb.png").unlink()
    assert len(make_loader(tmp_path, max_pixels=512, **kw)) == 3


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    """The body of this file is garbage: only its header is read, so the limit is the reason."""
    good_files(tmp_path)
    data = bytearray(bomb_png())
    data[60:80] = b"\xff" * 20
    (tmp_path / "train/bomb.png").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="bomb.png: 20000x6000 = 120,000,000 pixels, over the limit"):
        make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0)


def jpeg_bytes(seed=0):
    buf = io.BytesIO()
    Image.fromarray(noise(np.random.default_rng(seed), 32, 64)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def corrupt(kind):
    """Files that DALI's decoder (and PIL's, for most) would decode into garbage with a warning."""
    data = jpeg_bytes()
    scan = data.index(b"\xff\xda")
    if kind == "jpeg_cut_end_kept":  # entropy data cut short, the end-of-image marker kept
        return data[: (scan + len(data)) // 2] + b"\xff\xd9"
    if kind == "jpeg_junk_before_end":  # bytes that belong to no marker segment
        return data[:-2] + b"\x00\x01\x02\x03" * 8 + b"\xff\xd9"
    if kind == "png_crc":
        png = bytearray(png_bytes(noise(np.random.default_rng(1), 16, 32), 8, 0))
        png[png.index(b"IDAT") + 8] ^= 0x01
        return bytes(png)
    if kind == "png_extra_rows":  # valid CRCs, the zlib stream holds more rows than the header says
        arr = noise(np.random.default_rng(1), 20, 32)
        png = png_bytes(arr, 8, 0)
        return png[:16] + struct.pack(">II", 32, 16) + png[24:29] + struct.pack(
            ">I", zlib.crc32(png[12:16] + struct.pack(">II", 32, 16) + png[24:29])) + png[33:]
    raise AssertionError(kind)


def refused_then_skipped(root, backend, message, good, caplog):
    """make_loader refuses the dataset with `message`; with skip_bad it reads exactly `good`."""
    kw = {"batch_size": 1, "load_size": 16, "crop_size": 16, "backend": backend, "num_workers": 0,
          "shuffle": False}
    with pytest.raises(DatasetError, match=re.escape(message)):
        make_loader(root, **kw)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        loader = make_loader(root, skip_bad=True, **kw)
    assert [p for b in loader for p in b["paths"]] == good
    return loader


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["jpeg_cut_end_kept", "jpeg_junk_before_end", "png_crc", "png_extra_rows"])
def test_corrupt_files_refused_or_skipped_alike(tmp_path, backend, kind, caplog):
    if kind.startswith("jpeg"):
        pytest.importorskip("simplejpeg", reason="the strict JPEG check needs simplejpeg")
    good = good_files(tmp_path)
    bad = tmp_path / f"train/bad.{kind[:3].replace('jpe', 'jpg')}"
    bad.write_bytes(corrupt(kind))
    loader = refused_then_skipped(tmp_path, backend, f"{bad.name}: corrupt {'JPEG' if 'jpeg' in kind else 'PNG'}",
                                  good, caplog)
    assert [p for p, _ in loader.skipped] == [str(bad)]


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


@pytest.mark.parametrize("h, w", [(13, 22), (1, 7), (7, 1), (1, 1), (2, 2), (9, 9)])
def test_interlaced_png_passes_the_checks(tmp_path, h, w):
    """Adam7: seven passes of sub-images (none for a pass with no pixel, e.g. of a 1-pixel side)."""
    arr = noise(np.random.default_rng(2), h, 2 * w, 1)
    rows = [row for x0, y0, dx, dy in ADAM7 for row in arr[y0::dy, x0::dx] if row.size]
    idat = zlib.compress(b"".join(b"\0" + row.tobytes() for row in rows))
    png = SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 2 * w, h, 8, 0, 0, 0, 1)) + chunk(b"IDAT", idat) \
        + chunk(b"IEND", b"")
    (tmp_path / "test").mkdir()
    (tmp_path / "test/i.png").write_bytes(png)
    (b,) = make_loader(tmp_path, phase="test", preprocess="crop", crop_size=(h, w), load_size=h,
                       batch_size=1, num_workers=0, backend="torch", input_nc=1, output_nc=1)
    assert torch.equal((b["A"][0, 0] * 127.5 + 127.5).round().to(torch.uint8), torch.from_numpy(arr[:, :w]))


def grey_png(ihdr=(16, 8, 8, 0, 0, 0, 0), before=(), between=(), after=(), rows=None, idat_parts=1,
             extra=b""):
    """A grey PNG (16 x 8 by default) with extra chunks placed around its IDAT chunks."""
    w, h, depth, ctype = ihdr[:4]
    row_bytes = (w * depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype, 1) + 7) // 8
    raw = b"".join(b"\0" + bytes(range(row_bytes)) for _ in range(h)) if rows is None else rows
    stream = zlib.compress(raw) + extra
    cut = [len(stream) * k // idat_parts for k in range(idat_parts + 1)]
    idats = [chunk(b"IDAT", stream[cut[k]:cut[k + 1]]) for k in range(idat_parts)]
    body = idats[0] + b"".join(between) + b"".join(idats[1:])
    return (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", *ihdr)) + b"".join(before) + body
            + b"".join(after) + chunk(b"IEND", b""))


PLTE = chunk(b"PLTE", bytes(range(48)))
TEXT = chunk(b"tEXt", b"Comment\0fine")
PNG_FAULTS = {
    "width 0": (grey_png(ihdr=(0, 8, 8, 0, 0, 0, 0), rows=b""),
                "corrupt PNG (IHDR: 0x8, bit depth 8, colour type 0, interlace 0)"),
    "height 0": (grey_png(ihdr=(16, 0, 8, 0, 0, 0, 0), rows=b""),
                 "corrupt PNG (IHDR: 16x0, bit depth 8, colour type 0, interlace 0)"),
    "bit depth 3": (grey_png(ihdr=(16, 8, 3, 0, 0, 0, 0)),
                    "corrupt PNG (IHDR: 16x8, bit depth 3, colour type 0, interlace 0)"),
    "palette of 16 bits": (grey_png(ihdr=(16, 8, 16, 3, 0, 0, 0), before=[PLTE]),
                           "corrupt PNG (IHDR: 16x8, bit depth 16, colour type 3, interlace 0)"),
    "colour type 1": (grey_png(ihdr=(16, 8, 8, 1, 0, 0, 0)),
                      "corrupt PNG (IHDR: 16x8, bit depth 8, colour type 1, interlace 0)"),
    "interlace 2": (grey_png(ihdr=(16, 8, 8, 0, 0, 0, 2)),
                    "corrupt PNG (IHDR: 16x8, bit depth 8, colour type 0, interlace 2)"),
    "palette without PLTE": (grey_png(ihdr=(16, 8, 8, 3, 0, 0, 0)), "corrupt PNG (no PLTE chunk for colour type 3)"),
    "PLTE in grey": (grey_png(before=[PLTE]), "corrupt PNG (a PLTE chunk for colour type 0)"),
    "PLTE in grey + alpha": (grey_png(ihdr=(16, 8, 8, 4, 0, 0, 0), before=[PLTE]),
                             "corrupt PNG (a PLTE chunk for colour type 4)"),
    "PLTE after IDAT": (grey_png(ihdr=(16, 8, 8, 2, 0, 0, 0), after=[PLTE]), "corrupt PNG (PLTE after IDAT)"),
    "IDAT split by tEXt": (grey_png(idat_parts=2, between=[TEXT]), "corrupt PNG (IDAT chunks not consecutive)"),
    "no IDAT": (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 8, 8, 0, 0, 0, 0)) + chunk(b"IEND", b""),
                "corrupt PNG (no IDAT chunk)"),
    "two IHDR": (grey_png(before=[chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 8, 8, 0, 0, 0, 0))]),
                 "corrupt PNG (chunk 'IHDR' out of place)"),
    "two PLTE": (grey_png(ihdr=(16, 8, 8, 3, 0, 0, 0), before=[PLTE, PLTE]), "corrupt PNG (chunk 'PLTE' out of place)"),
    "not a zlib stream": (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 8, 8, 0, 0, 0, 0))
                          + chunk(b"IDAT", b"not zlib data") + chunk(b"IEND", b""),
                          "corrupt PNG (image data: Error -3 while decompressing data: incorrect header check)"),
    "unknown critical chunk": (grey_png(before=[chunk(b"ABCD", b"")]), "corrupt PNG (unknown critical chunk 'ABCD')"),
    "private critical chunk": (grey_png(before=[chunk(b"Abcd", b"")]), "corrupt PNG (unknown critical chunk 'Abcd')"),
    "IHDR of 14 bytes": (SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBBB", 16, 8, 8, 0, 0, 0, 0, 0))
                         + grey_png()[33:], "corrupt PNG (IHDR of the wrong length)"),
    "first chunk not IHDR": (SIGNATURE + TEXT + grey_png()[8:],
                             "unreadable image (ValueError: PNG without an IHDR header)"),
    "row filter 5": (grey_png(rows=b"".join(bytes([k % 6]) + bytes(16) for k in range(8))),
                     "corrupt PNG (invalid row filter)"),
    "one row short": (grey_png(rows=b"".join(b"\0" + bytes(16) for _ in range(7))),
                      "corrupt PNG (image data does not hold exactly 16x8 pixels)"),
    "one byte long": (grey_png(rows=b"".join(b"\0" + bytes(16) for _ in range(8)) + b"\0"),
                      "corrupt PNG (image data does not hold exactly 16x8 pixels)"),
    "IDAT cut short": (grey_png()[:60], "truncated PNG (chunk 'IDAT' cut short)"),
    "no IEND": (grey_png()[:-12], "truncated PNG (no IEND chunk)"),
}


@pytest.mark.parametrize("fault", list(PNG_FAULTS))
def test_png_structure_faults_are_named(tmp_path, fault):
    data, reason = PNG_FAULTS[fault]
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert inspect_file(str(path)) == (None, reason)


@pytest.mark.parametrize("h, bad_row", [(1200, None), (1200, 3), (1200, 1100), (1048, None)])
def test_png_rows_checked_beyond_the_first_mebibyte(tmp_path, h, bad_row):
    """The stream is inflated a mebibyte at a time: a bad row filter is found in any piece, and a
    piece may end inside the last row (1048 rows of 1001 bytes: the first MiB ends in row 1048)."""
    w = 1000
    rows = bytearray(b"".join(b"\x01" + bytes(w) for _ in range(h)))
    if bad_row is not None:
        rows[bad_row * (w + 1)] = 7
    (tmp_path / "big.png").write_bytes(grey_png(ihdr=(w, h, 8, 0, 0, 0, 0), rows=bytes(rows)))
    expect = ((w, h), None) if bad_row is None else (None, "corrupt PNG (invalid row filter)")
    assert inspect_file(str(tmp_path / "big.png")) == expect


@pytest.mark.parametrize("backend", BACKENDS)
def test_valid_png_variants_pass_and_decode(tmp_path, backend):
    """What the checks must not refuse: split IDAT, ancillary chunks anywhere, a suggested palette
    in an RGB file, a palette file with its PLTE, bytes after the end of the zlib stream (libpng
    warns and ignores them, as both decoders do)."""
    variants = {
        "trailing": grey_png(extra=bytes(range(200)), idat_parts=2),
        "split": grey_png(idat_parts=3),
        "text": grey_png(before=[TEXT], after=[TEXT], idat_parts=2),
        "rgb_plte": grey_png(ihdr=(16, 8, 8, 2, 0, 0, 0), before=[PLTE]),
        "palette": grey_png(ihdr=(16, 8, 4, 3, 0, 0, 0), before=[PLTE]),
    }
    (tmp_path / "test").mkdir()
    for name, data in variants.items():
        (tmp_path / f"test/{name}.png").write_bytes(data)
        assert inspect_file(str(tmp_path / f"test/{name}.png"))[1] is None, name
    got = make_loader(tmp_path, phase="test", preprocess="crop", load_size=8, crop_size=8, batch_size=1,
                      backend=backend, num_workers=0)
    batches = {Path(b["paths"][0]).stem: b["A"] for b in got}
    assert len(batches) == 5
    want = np.tile(np.arange(16, dtype=np.float32), (8, 1)) / 127.5 - 1  # each row holds bytes 0..15
    torch.testing.assert_close(batches["trailing"][0, 0], torch.from_numpy(want[:, :8]), rtol=0, atol=1e-6)
    assert torch.equal(batches["trailing"], batches["split"])


# Metadata past PIL's limits (PngImagePlugin.MAX_TEXT_CHUNK, 1 MB decompressed; MAX_TEXT_MEMORY, 64 MB of text in
# all), which neither the check nor DALI reads: a torch run stopped mid-epoch on such a file ("Decompressed data
# too large"), after the check had passed it.
BIG = b"a" * (3 << 20)
LARGE_METADATA = {
    "ztxt_before": dict(before=[chunk(b"zTXt", b"Comment\0\0" + zlib.compress(BIG))]),
    "itxt_after": dict(after=[chunk(b"iTXt", b"Comment\0\1\0\0\0" + zlib.compress(BIG))], idat_parts=2),
    "iccp": dict(before=[chunk(b"iCCP", b"profile\0\0" + zlib.compress(BIG))]),
    "text_memory": dict(before=[chunk(b"tEXt", b"Comment%d\0" % k + b"a" * (1 << 20)) for k in range(70)]),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_png_metadata_over_pils_limits_passes_and_decodes(tmp_path, backend):
    (tmp_path / "test").mkdir()
    for name, chunks in LARGE_METADATA.items():
        (tmp_path / f"test/{name}.png").write_bytes(grey_png(**chunks))
        assert inspect_file(str(tmp_path / f"test/{name}.png")) == ((16, 8), None), name
    got = make_loader(tmp_path, phase="test", preprocess="none", load_size=8, crop_size=8, batch_size=1,
                      backend=backend, num_workers=0)
    batches = {Path(b["paths"][0]).stem: b for b in got}
    assert sorted(batches) == sorted(LARGE_METADATA)
    want = torch.from_numpy(np.tile(np.arange(16, dtype=np.float32), (8, 1)) / 127.5 - 1)  # rows of bytes 0..15
    for name, b in batches.items():
        torch.testing.assert_close(b["A"][0], want[:, :8].expand(3, 8, 8), rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(b["B"][0], want[:, 8:].expand(3, 8, 8), rtol=0, atol=1e-6, msg=name)


def test_a_png_pil_cannot_identify_is_named_by_its_path(tmp_path):
    # load_rgb hands PIL a PNG's bytes (its unused chunks dropped): PIL's error named the buffer,
    # "cannot identify image file <_io.BytesIO object at 0x...>"
    from bicyclegan.pipelines.files import load_rgb
    path = str(tmp_path / "x.png")
    Path(path).write_bytes(SIGNATURE + b"xx")
    with pytest.raises(Image.UnidentifiedImageError, match=f"^cannot identify image file {re.escape(repr(path))}$"):
        load_rgb(path)


def test_bmp_and_ppm_pass_and_decode(tmp_path):
    arr = noise(np.random.default_rng(4), 8, 16)
    for ext in ("bmp", "ppm"):
        write(tmp_path / f"test/{ext}.{ext}", arr)
        assert inspect_file(str(tmp_path / f"test/{ext}.{ext}")) == ((16, 8), None)
    batches = list(make_loader(tmp_path, phase="test", preprocess="none", load_size=8, crop_size=8, batch_size=1,
                               backend="torch", num_workers=0))
    for b in batches:
        assert np.array_equal(np.rint((b["A"][0].numpy().transpose(1, 2, 0) + 1) * 127.5), arr[:, :8])


def test_bilevel_png_of_odd_width(tmp_path):
    """17 one-bit pixels a row fill three bytes (the last one partly)."""
    bits = np.random.default_rng(5).integers(0, 2, (5, 17)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert inspect_file(str(tmp_path / "b.png")) == ((17, 5), None)


def test_jpeg_truncation_is_named(tmp_path):
    data = jpeg_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-100])
    assert inspect_file(str(tmp_path / "cut.jpg")) == (None, "truncated JPEG (no end-of-image marker)")


@pytest.mark.parametrize("argument, value, message", [
    ("seed", -1, "seed must be an int >= 0, got -1"),
    ("seed", 1.5, "seed must be an int >= 0, got 1.5"),
    ("batch_size", 0, "batch_size must be an int >= 1, got 0"),
    ("batch_size", True, "batch_size must be an int >= 1, got True"),
    ("num_workers", -1, "num_workers must be an int >= 0, got -1"),
    ("max_pixels", 0, "max_pixels must be an int >= 1, got 0"),
    ("max_dataset_size", 0, "max_dataset_size must be an int >= 1, got 0"),
    ("world_size", 0, "world_size must be an int >= 1, got 0"),
    ("rank", 2, r"rank must be an int in \[0, world_size=2\), got 2"),
    ("rank", -1, r"rank must be an int in \[0, world_size=2\), got -1"),
    ("layout", "pairs", r"layout must be one of \('aligned', 'ab_folders', 'single'\) or None"),
    ("backend", "cuda", r"backend must be one of \('auto', 'dali', 'torch'\), got 'cuda'"),
    ("phase", "", "phase must be the name of a folder under root"),
    ("preprocess", "resize", "preprocess must be one of"),
    ("direction", "AB", "direction must be one of"),
    ("input_nc", 2, "input_nc must be 1"),
    ("crop_size", 0, "crop_size must be a positive int"),
    ("max_pixels", 10**12, r"max_pixels=1,000,000,000,000 is over PIL's own limit"),
    ("seed", 2**70, r"seed must be below 2\^63, got 1180591620717411303424"),
    ("seed", 2**63, r"seed must be below 2\^63, got 9223372036854775808"),
    ("flip", "no", "flip must be True or False, got 'no'"),
    ("augment", "no", r"augment must be True or False or None \(by phase\), got 'no'"),
    ("shuffle", 0, r"shuffle must be True or False or None \(by phase\), got 0"),
    ("drop_last", "yes", r"drop_last must be True or False or None \(by phase\), got 'yes'"),
    ("skip_bad", "no", "skip_bad must be True or False, got 'no'"),  # was taken as True: files skipped
    ("input_nc", "3", r"input_nc must be 1 \(grayscale\) or 3 \(RGB\), got '3'$"),  # was "got 3"
    ("device", "gpu", "device must be a torch device such as 'cpu' or 'cuda:0', got 'gpu'"),
    # (batches came on the CPU, said nowhere: a Mac's 'mps' failed later, in the model)
    ("device", "mps", "device must be 'cpu' or a CUDA device such as 'cuda:0' .*, got 'mps': move the batches "),
    ("device", "meta", "device must be 'cpu' or a CUDA device such as 'cuda:0' .*, got 'meta'"),
    ("memory_format", torch.preserve_format,
     "memory_format must be torch.contiguous_format or torch.channels_last, got torch.preserve_format"),
    pytest.param("device", "cuda", "device='cuda', but torch sees no CUDA device here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")),
])
def test_bad_arguments_are_one_line_errors(tmp_path, argument, value, message):
    good_files(tmp_path)
    kw = {"batch_size": 1, "load_size": 16, "crop_size": 16, "num_workers": 0, "world_size": 2,
          argument: value}
    with pytest.raises(ValueError, match=message) as info:
        make_loader(tmp_path, **kw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("root", [None, 3])
def test_a_root_that_is_no_path_is_named(root):
    # It was pathlib's "expected str, bytes or os.PathLike object, not NoneType", naming no argument.
    with pytest.raises(ValueError, match=f"^root must be the dataset folder's path, got {type(root).__name__}$"):
        make_loader(root, batch_size=1, load_size=16, crop_size=16)


def test_option_lists_are_exported_and_used(tmp_path):
    assert pipelines.PREPROCESS == ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
    assert pipelines.DIRECTIONS == ("AtoB", "BtoA")
    assert pipelines.LAYOUTS == ("aligned", "ab_folders", "single")
    assert pipelines.BACKENDS == ("auto", "dali", "torch")
    good_files(tmp_path, n=2)
    for mode in pipelines.PREPROCESS:
        make_loader(tmp_path, preprocess=mode, batch_size=1, load_size=16, crop_size=16, num_workers=0)
    for direction in pipelines.DIRECTIONS:
        make_loader(tmp_path, direction=direction, batch_size=1, load_size=16, crop_size=16, num_workers=0)


@pytest.mark.parametrize("backend, device, cores, local_ranks, expected", [
    ("torch", "cuda", 16, None, 15),   # the GPU machine: every core but the main process's
    ("torch", "cuda", 96, "8", 11),    # eight GPUs on 96 cores: 12 each, less the rank's own
    ("torch", "cuda", 64, None, 16),   # at most 16
    ("torch", "cuda:1", 2, "2", 1),    # never none
    ("torch", "cuda", 16, "", 15),     # not a count: one rank
    ("torch", "cpu", 16, None, 4),     # training on the CPU keeps its cores
    ("dali", "cuda", 16, None, 4),     # DALI's threads only read files for the GPU decoder
    ("dali", "cpu", 2, None, 2),
    ("torch", "cpu", 2, "2", 1),       # torchrun on the CPU: the ranks share the cores
    ("torch", "cpu", 16, "2", 4),
    ("dali", "cuda", 16, "8", 2),
    ("torch", "cpu", 2, "4", 1),       # never none
])
def test_default_worker_count(monkeypatch, backend, device, cores, local_ranks, expected):
    monkeypatch.setattr(pipelines.files.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    if local_ranks is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_ranks)
    assert pipelines.loader.default_workers(backend, device) == expected


def test_make_loader_uses_the_default_worker_count(tmp_path):
    good_files(tmp_path)
    loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, backend="torch", device="cpu")
    assert loader.num_workers == min(4, len(os.sched_getaffinity(0)))


def test_without_simplejpeg_pil_checks_the_jpegs_and_says_so(tmp_path, monkeypatch, caplog):
    """An install without dependencies (the GPU machine's `pip install --no-deps`) lacks simplejpeg:
    the package must still import and check JPEGs, with PIL, warning once that the check is weaker;
    its verdicts are cached apart from the strict check's."""
    from bicyclegan.pipelines import files
    files_dir = tmp_path / "train"
    files_dir.mkdir()
    (files_dir / "good.jpg").write_bytes(jpeg_bytes())
    (files_dir / "cut.jpg").write_bytes(jpeg_bytes()[:-100])
    (files_dir / "entropy.jpg").write_bytes(corrupt("jpeg_cut_end_kept"))
    data = jpeg_bytes()
    sof = data.index(b"\xff\xc0")
    (files_dir / "header.jpg").write_bytes(data[:sof + 5] + b"\x00\x00" + data[sof + 7:])  # height 0
    strict = files.simplejpeg  # None where this test runs without it: the fallback part still runs
    if strict is not None:
        assert inspect_file(str(files_dir / "entropy.jpg"))[1].startswith("corrupt JPEG (libjpeg-turbo: ")

    monkeypatch.setattr(files, "simplejpeg", None)
    files._warn_pil_jpeg.cache_clear()
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        assert inspect_file(str(files_dir / "good.jpg")) == ((64, 32), None)
        assert inspect_file(str(files_dir / "cut.jpg")) == (None, "truncated JPEG (no end-of-image marker)")
        assert inspect_file(str(files_dir / "header.jpg"))[1].startswith("unreadable image (")
        assert inspect_file(str(files_dir / "entropy.jpg")) == ((64, 32), None)  # what PIL cannot see
    warned = [r.getMessage() for r in caplog.records if "simplejpeg is not installed" in r.getMessage()]
    assert len(warned) == 1 and "pip install simplejpeg" in warned[0]

    cache = files.CheckCache(files_dir)
    cache.new["good.jpg"] = [1, 2, 3, 64, 32]
    cache.save()
    assert json.loads(Path(cache.path).read_text())["version"] == f"{files.CHECKS_VERSION}+pil"
    assert files.CheckCache(files_dir).entries == {"good.jpg": [1, 2, 3, 64, 32]}
    if strict is not None:
        monkeypatch.setattr(files, "simplejpeg", strict)
        assert files.CheckCache(files_dir).entries == {}  # the strict check does not trust PIL's verdicts


def test_the_package_imports_without_simplejpeg():
    code = ("import sys; sys.modules['simplejpeg'] = None\n"  # an import of it now raises ImportError
            "import bicyclegan.engine, bicyclegan.pipelines\n"
            "from bicyclegan.pipelines import files\n"
            "print(files.simplejpeg)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "None", r.stderr[-2000:]


def _bmp16(arr):
    """A 16-bit (5-5-5) BMP written by hand: PIL writes none."""
    h, w = arr.shape[:2]
    r, g, b = (arr[..., i].astype(np.uint16) >> 3 for i in range(3))
    rows = ((r << 10) | (g << 5) | b)[::-1].astype("<u2").tobytes()  # w even: rows need no padding
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 0, len(rows), 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + len(rows), 0, 0, 14 + len(dib)) + dib + rows


def _pnm(arr, maxval):
    return f"P6\n# a comment\n{arr.shape[1]} {arr.shape[0]}\n{maxval}\n".encode() + (
        arr.astype(np.int64) * maxval // 255).astype(np.uint8).tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, reason", [
    ("gif", "GIF content: not decoded alike by both loaders"),
    ("tga", "TGA content: not decoded alike by both loaders"),
    ("bmp16", "16-bit BMP: DALI's decoder refuses or misreads its 5-bit channels"),
    ("pnm100", "PNM with maximum value 100: DALI's decoder reads only 255 and 65535 correctly"),
    ("pnm1", "PNM with maximum value 1: DALI's decoder reads only 255 and 65535 correctly"),
    # Measured on DALI 2.4: 32-bit integer TIFFs and grey + alpha JPEG 2000 stopped its epoch; float,
    # grey + alpha and CIELAB TIFFs came out up to 254 grey levels off PIL's reading; a 1-bit TIFF
    # as PIL writes it (BitsPerSample left to its default) stopped it too.
    ("tiff_I", "TIFF of pixel mode I: DALI's decoder refuses or misreads it"),
    ("tiff_F", "TIFF of pixel mode F: DALI's decoder refuses or misreads it"),
    ("tiff_LA", "TIFF of pixel mode LA: DALI's decoder refuses or misreads it"),
    ("tiff_LAB", "TIFF of pixel mode LAB: DALI's decoder refuses or misreads it"),
    ("tiff_1", "TIFF without a BitsPerSample tag: DALI's decoder refuses it"),
    ("jp2_LA", "JPEG 2000 of pixel mode LA: DALI's decoder refuses or misreads it"),
    # PIL read a CMYK JPEG without Adobe's marker as the picture, DALI all black; an ASCII PNM trained on the
    # torch backend and stopped a DALI epoch
    ("cmyk_unmarked", "CMYK JPEG without an Adobe marker: PIL reads its inks as stored, DALI's decoder inverted"),
    ("pnm_ascii", "ASCII PNM (P3): DALI's decoder cannot read it"),
])
def test_content_only_pil_reads_is_refused_or_skipped_alike(tmp_path, backend, kind, reason, caplog):
    # PIL read these (so the checks passed them) and DALI's decoder stopped its epoch midway, naming
    # no file (GIF, TGA, 5-5-5 BMP), or decoded a PNM of maximum value 100 as if it were 255.
    good = good_files(tmp_path)
    arr = noise(np.random.default_rng(3), 16, 32)
    bad = tmp_path / "train" / {"gif": "bad.png", "tga": "bad.bmp", "bmp16": "bad.bmp", "cmyk_unmarked": "bad.jpg"}.get(
        kind, "bad.png" if kind[:4] in ("tiff", "jp2_") else "bad.ppm")
    if kind == "cmyk_unmarked":
        buf = io.BytesIO()
        Image.fromarray(np.concatenate([arr, arr[..., :1]], 2), "CMYK").save(buf, "JPEG", quality=95)
        data = buf.getvalue()
        at = data.index(b"\xff\xee\x00\x0eAdobe")  # PIL's APP14 segment (14 bytes), cut out
        bad.write_bytes(data[:at] + data[at + 16:])
    elif kind == "pnm_ascii":
        bad.write_bytes(f"P3\n{arr.shape[1]} {arr.shape[0]}\n255\n".encode() + " ".join(map(str, arr.ravel())).encode())
    elif kind in ("gif", "tga"):
        Image.fromarray(arr).save(bad, kind.upper())
    elif kind[:4] in ("tiff", "jp2_"):
        grey = arr[..., 0]
        img = {"I": Image.fromarray(grey.astype(np.int32) * 257), "F": Image.fromarray(grey.astype(np.float32)),
               "LA": Image.fromarray(arr[..., :2], "LA"), "LAB": Image.fromarray(arr).convert("LAB"),
               "1": Image.fromarray(grey > 127)}[kind.split("_")[1]]
        img.save(bad, "TIFF" if kind.startswith("tiff") else "JPEG2000")
    else:
        bad.write_bytes(_bmp16(arr) if kind == "bmp16" else _pnm(arr, int(kind[3:])))
    assert Image.open(bad).size == (32, 16)  # PIL reads it
    refused_then_skipped(tmp_path, backend, f"{bad.name}: {reason}", good, caplog)


TIFF_WEBP_JP2 = {
    "tiff": lambda img: {"format": "TIFF"},
    "tiff_lzw": lambda img: {"format": "TIFF", "compression": "tiff_lzw"},
    "tiff_1bit_group4": lambda img: {"format": "TIFF", "compression": "group4"},  # BitsPerSample written
    "tiff_16bit": lambda img: {"format": "TIFF"},
    "webp_lossless": lambda img: {"format": "WEBP", "lossless": True},
    "jp2_lossless": lambda img: {"format": "JPEG2000", "irreversible": False},
    # An Orientation tag, which Pillow applies and DALI does not: the pixels as stored on both (Pillow's turned 3
    # was 252 levels off DALI's; 6 cut the A|B halves across the turned picture)
    **{f"tiff_orientation_{o}": lambda img, o=o: {"format": "TIFF", "tiffinfo": {274: o}} for o in (3, 6)},
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(TIFF_WEBP_JP2))
def test_tiff_webp_and_jpeg2000_content_decode_to_their_pixels(tmp_path, backend, kind):
    # The content README promises both decoders read alike: the pixels written, on either backend
    # (the refusals of the TIFF and JPEG 2000 modes DALI misreads must not reach these).
    arr = noise(np.random.default_rng(9), H, W)
    if kind == "tiff_1bit_group4":
        arr = np.repeat((arr[..., :1] > 127).astype(np.uint8) * 255, 3, axis=2)
        img = Image.fromarray(arr[..., 0] > 127)
    elif kind == "tiff_16bit":
        arr = np.repeat(arr[..., :1], 3, axis=2)
        img = Image.fromarray(arr[..., 0].astype(np.uint16) * 257)  # v * 257 / 257 = v exactly
    else:
        img = Image.fromarray(arr)
    (tmp_path / "train").mkdir()
    img.save(tmp_path / "train/x.png", **TIFF_WEBP_JP2[kind](img))
    (batch,) = make_loader(tmp_path, batch_size=1, load_size=(H, W // 2), crop_size=(H, W // 2), preprocess="crop",
                           backend=backend, num_workers=0, augment=False)
    got = torch.cat([batch["A"][0], batch["B"][0]], 2) * 127.5 + 127.5  # DALI's scaling may be an ulp off
    assert torch.equal(got.round().to(torch.uint8), torch.from_numpy(arr).permute(2, 0, 1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_jpeg_with_data_after_its_end_passes_and_a_cut_one_with_a_thumbnail_does_not(tmp_path, backend):
    # A phone's motion photo is a JPEG with a video after it: its end-of-image marker lies far from
    # the end of the file. A cut JPEG whose header holds a thumbnail (with an FF D9 of its own) is
    # still truncated.
    pytest.importorskip("simplejpeg", reason="the strict JPEG check needs simplejpeg")
    data = jpeg_bytes()
    (tmp_path / "test").mkdir()
    (tmp_path / "test/motion.jpg").write_bytes(data + b"\0\0\0\x18ftypmp42" + bytes(8000))
    assert inspect_file(str(tmp_path / "test/motion.jpg")) == ((64, 32), None)
    filled = data[:2] + b"\xff\xff" + data[2:] + bytes(8000)  # fill bytes before a marker are allowed
    (tmp_path / "filled.jpg").write_bytes(filled)
    assert inspect_file(str(tmp_path / "filled.jpg")) == ((64, 32), None)
    thumb = jpeg_bytes(1)
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumb) + 8) + b"Exif\0\0" + thumb
    cut = (data[:2] + app1 + data[2:])[:-500] + bytes(5000)
    (tmp_path / "cut.jpg").write_bytes(cut)
    assert inspect_file(str(tmp_path / "cut.jpg")) == (None, "truncated JPEG (no end-of-image marker)")
    (tmp_path / "test/plain.jpg").write_bytes(data)
    got = {Path(b["paths"][0]).stem: b["A"] for b in make_loader(
        tmp_path, phase="test", preprocess="none", load_size=32, crop_size=32, batch_size=1, backend=backend,
        num_workers=0)}
    assert torch.equal(got["motion"], got["plain"])


def test_linked_folders_are_followed_once_and_hidden_files_left_out(tmp_path):
    # os.walk did not follow links: a dataset assembled from linked parts lost them silently. Hidden
    # folders (thumbnail caches) joined the data; a macOS ._ file stopped the whole load.
    rng = np.random.default_rng(6)
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    for rel in ("train/part1/0.png", "train/.thumbs/0.png", "train/.hidden.png"):
        write(root / rel, noise(rng, 8, 16))
    write(elsewhere / "0.png", noise(rng, 8, 16))
    (root / "train/._0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    (root / "train/part2").symlink_to(elsewhere, target_is_directory=True)
    (root / "train/loop").symlink_to(root / "train", target_is_directory=True)  # a cycle
    loader = make_loader(root, preprocess="none", load_size=8, crop_size=8, batch_size=1, backend="torch",
                         num_workers=0, shuffle=False)
    assert [os.path.relpath(p, root / "train") for b in loader for p in b["paths"]] == ["part1/0.png", "part2/0.png"]


def test_set_epoch_takes_whole_numbers_only(tmp_path):
    good_files(tmp_path, n=4)
    loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, backend="torch", num_workers=0)
    loader.set_epoch(np.int64(2), np.int64(1))  # numpy integers are whole numbers
    assert len(list(loader)) == 3
    for epoch, start, message in ((-1, 0, "epoch must be an int >= 0, got -1"), (1.7, 0, "epoch must be an int"),
                                  (True, 0, "epoch must be an int"), (0, 1.0, "start_batch must be an int")):
        with pytest.raises(ValueError, match=message):
            loader.set_epoch(epoch, start)


def test_a_rank_left_without_a_batch_says_there_are_fewer_samples_than_ranks(tmp_path):
    good_files(tmp_path, n=1)
    with pytest.raises(DatasetError, match=r"^1 sample fills no batch of batch_size=1 on each of 2 ranks; there are "
                                           r"fewer samples than ranks$"):
        make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, backend="torch", num_workers=0, rank=0,
                    world_size=2, drop_last=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pass_started_while_an_earlier_iterator_lives_reads_the_whole_epoch(tmp_path, backend):
    # DALI reused its deterministic pipeline mid-shard: after peeking at one batch, the next pass
    # skipped two samples, read one twice and wrapped around.
    import gc
    good = good_files(tmp_path, n=5)
    loader = make_loader(tmp_path, batch_size=2, load_size=16, crop_size=16, backend=backend, num_workers=0,
                         shuffle=False, augment=False, drop_last=False)
    peek = iter(loader)
    assert next(peek)["paths"] == good[:2]
    full = iter(loader)
    got = next(full)["paths"]
    del peek  # the earlier pass's clean-up must not take the pipeline from under this one
    gc.collect()
    got += [p for b in full for p in b["paths"]]
    assert got == good
    peek, again = iter(loader), iter(loader)
    next(peek)
    assert [p for b in again for p in b["paths"]] == good
    # One pass at a time: the older one is over (the torch loader's gave the newer pass's epoch, or with workers
    # took its batches from it, without a word)
    with pytest.raises(RuntimeError, match="a newer pass over this (DALI )?loader has started"):
        next(peek)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pass_with_no_batch_left_ends_an_earlier_pass_too(tmp_path, backend):
    # set_epoch(e, len) starts a pass with nothing left: DALI's returned before it took the loader, and an earlier
    # iterator went on reading (the torch loader's is over, as after any newer pass)
    good_files(tmp_path, n=5)
    with make_loader(tmp_path, batch_size=2, load_size=16, crop_size=16, backend=backend, num_workers=0,
                     shuffle=False, augment=False, drop_last=False) as loader:
        left = iter(loader)
        next(left)
        loader.set_epoch(0, len(loader))
        assert list(loader) == []
        with pytest.raises(RuntimeError, match="^a newer pass over this (DALI )?loader has started"):
            next(left)
        assert len(list(loader)) == len(loader)  # (then a whole pass)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pass_takes_its_epoch_at_its_first_batch_not_at_iter(tmp_path, backend):
    # DALI's iter() took the epoch at once (the torch loader's pass at its first batch): an iterator made before
    # set_epoch(2) read epoch 0, and of two made before either ran, the one run first read the later epoch
    good_files(tmp_path, n=6)
    kw = {"batch_size": 2, "load_size": 16, "crop_size": 16, "backend": backend, "num_workers": 0, "seed": 3}
    with make_loader(tmp_path, **kw) as straight:
        epochs = [[p for b in straight for p in b["paths"]] for _ in range(4)]
    assert len({tuple(e) for e in epochs}) == 4  # (shuffled: the epochs tell apart)
    with make_loader(tmp_path, **kw) as loader:
        early = iter(loader)
        loader.set_epoch(1)
        assert [p for b in early for p in b["paths"]] == epochs[1]
        first, second = iter(loader), iter(loader)
        assert [p for b in second for p in b["paths"]] == epochs[2]
        assert [p for b in first for p in b["paths"]] == epochs[3]
    with pytest.raises(ValueError, match=f"this {backend} loader is closed"):  # (at iter(), not its first batch; DS29)
        iter(loader)


@needs_dali
def test_dali_lets_go_of_a_random_passs_pipeline_as_the_pass_ends_and_keeps_a_deterministic_one(tmp_path, monkeypatch):
    # A shuffled pass's pipeline (its threads, on a GPU its memory) was held until the next pass built its own; only
    # a pass with nothing random reuses the last pass's pipeline (one build for every pass)
    import weakref

    from bicyclegan.pipelines.dali_loader import DaliLoader
    built, real = [], DaliLoader._build

    def build(self, positions, epoch):
        built.append(weakref.ref(pipe := real(self, positions, epoch)))
        return pipe
    monkeypatch.setattr(DaliLoader, "_build", build)
    good_files(tmp_path, n=5)
    for shuffle in (True, False):
        built.clear()
        loader = make_loader(tmp_path, batch_size=2, load_size=16, crop_size=16, backend="dali", num_workers=1,
                             shuffle=shuffle, augment=False, drop_last=False)
        for _ in range(3):
            assert len(list(loader)) == 3
            assert [r() is None for r in built] == [shuffle] * len(built)
        assert len(built) == (3 if shuffle else 1)
    # a deterministic pass closed part-way (a `break`, its iterator let go) lets its pipeline go too: left mid-list, it
    # gave the next pass the batches after the break (the labels' check: a RuntimeError) (DS35)
    whole = [b["paths"] for b in loader]
    part = iter(loader)
    next(part)
    part.close()
    assert [r() is None for r in built] == [True] + [False] * (len(built) - 1)
    assert [b["paths"] for b in loader] == whole


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_iterators_of_the_torch_loader_open_at_once_are_one_pass_at_a_time(tmp_path, num_workers):
    # iter(L) twice, then alternating: the first gave epoch 1's batches (the sampler is the loader's), or with
    # workers the two split epoch 1's batches between them; epoch 0 was never read. Said now, as DALI says it.
    good_files(tmp_path, n=7)
    kw = {"batch_size": 2, "load_size": 16, "crop_size": 16, "backend": "torch", "seed": 3}
    with make_loader(tmp_path, num_workers=0, **kw) as straight:
        epochs = [[p for b in straight for p in b["paths"]] for _ in range(2)]
    assert epochs[0] != epochs[1]  # (shuffled: the two epochs tell apart)
    with make_loader(tmp_path, num_workers=num_workers, **kw) as loader:
        first, second = iter(loader), iter(loader)  # (a pass begins at its first batch, as DALI's)
        got = next(first)["paths"]
        assert [p for b in second for p in b["paths"]] == epochs[1]  # the newer pass is epoch 1, whole
        assert got == epochs[0][:2]
        with pytest.raises(RuntimeError, match=r"^a newer pass over this loader has started; one pass at a time"):
            next(first)
        left = iter(loader)  # a pass left after one batch (a `break`), then a new one
        next(left)
        assert len([b for b in loader]) == len(loader)
        with pytest.raises(RuntimeError, match="a newer pass over this loader has started"):
            next(left)


def test_every_seed_below_2_63_makes_a_torch_loader(tmp_path):
    # The loader's own generator was seeded with seed * 1_000_003 + rank: from about 9.2e12 that
    # overflowed torch's 64-bit seed ("Overflow when unpacking long long"), where DALI took it.
    good_files(tmp_path, n=2)
    for seed in (2**63 - 1, 10**13):
        loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, backend="torch", num_workers=0,
                             seed=seed)
        assert len(list(loader)) == 2
