"""Fuzzing both loaders with damaged PNG and JPEG files (fixed seed, so every run sees the same files).

Each case is one aligned file, mutated from a valid one: bytes flipped, the file cut short, bytes
inserted, the header's size fields changed, chunks / marker segments dropped, duplicated, reordered
or given a wrong length (CRCs recomputed or not). Every case must end, on both backends, in a
correct batch (the right shape and range, A and B from that file's halves, the same pixels on both
backends) or a DatasetError naming the file: never another exception, a crash or a hang, and the two
backends must agree on which. Then all cases in one folder with skip_bad=True: the files each
backend skips are exactly those refused one by one, and every batch pairs halves of one file.

BICYCLEGAN_FUZZ_CASES sets the number of cases (default 600, about 10 s on a 2-core CPU).
"""
import faulthandler
import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipelines import BACKENDS, HAS_DALI, smooth

from bicyclegan.pipelines import DatasetError, make_loader

CASES = int(os.environ.get("BICYCLEGAN_FUZZ_CASES", "600"))
SEED = 2024
NAMES = ["torch", "dali"] if HAS_DALI else ["torch"]
KW = {"phase": "test", "preprocess": "crop", "load_size": 8, "crop_size": 8, "batch_size": 1,
      "num_workers": 0}


def _encoded(arr, fmt, **options):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **options)
    return buf.getvalue()


def base_files():
    """Valid A|B files (16 x 32): PNG RGB / grey / palette / interlace-free; JPEG baseline,
    progressive, grey, with restart markers."""
    rgb = np.concatenate([smooth(16, 16), 255 - smooth(16, 16)], 1)
    grey = rgb[..., 1]
    return [
        ("png", _encoded(rgb, "PNG")),
        ("png", _encoded(grey, "PNG")),
        ("png", _encoded(np.asarray(Image.fromarray(rgb).quantize(32).convert("RGB")), "PNG", optimize=True)),
        ("jpg", _encoded(rgb, "JPEG", quality=90)),
        ("jpg", _encoded(rgb, "JPEG", quality=75, progressive=True)),
        ("jpg", _encoded(grey, "JPEG", quality=90)),
    ]


def png_chunks(data):
    pos, chunks = 8, []
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    return chunks


def with_crc(chunk):
    return chunk[:-4] + struct.pack(">I", zlib.crc32(chunk[4:-4]))


def jpeg_segments(data):
    """The marker segments before the scan, and the rest (scan data and end marker)."""
    pos, segments = 2, []
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segments.append(data[pos:pos + 2 + length])
        pos += 2 + length
    return segments, data[pos:]


def mutate(ext, data, kind, rng):
    data = bytearray(data)
    if kind == "flip":
        for pos in rng.integers(0, len(data), rng.integers(1, 5)):
            data[pos] ^= int(rng.integers(1, 256))
        return bytes(data)
    if kind == "truncate":
        return bytes(data[: int(rng.integers(0, len(data)))])
    if kind == "insert":
        pos = int(rng.integers(0, len(data)))
        return bytes(data[:pos] + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
                     + data[pos:])
    if kind == "size":
        value = int(rng.choice([0, 1, 7, 17, 33, 65535, 1 << 20, (1 << 31) - 1, int(rng.integers(0, 1 << 16))]))
        if ext == "png":  # IHDR width or height, CRC fixed half the time
            field = 16 + 4 * int(rng.integers(0, 2))
            data[field:field + 4] = struct.pack(">I", value)
            if rng.random() < 0.5:
                data[8:33] = with_crc(bytes(data[8:33]))
            return bytes(data)
        segments, rest = jpeg_segments(bytes(data))
        sof = next(i for i, s in enumerate(segments) if s[1] in (0xC0, 0xC2))
        seg = bytearray(segments[sof])
        field = 5 + 2 * int(rng.integers(0, 2))  # height, then width
        seg[field:field + 2] = struct.pack(">H", value & 0xFFFF)
        segments[sof] = bytes(seg)
        return b"\xff\xd8" + b"".join(segments) + rest
    # kind == "chunk": damage the container structure
    if ext == "png":
        chunks = png_chunks(bytes(data))
        i = int(rng.integers(0, len(chunks)))
        op = rng.choice(["drop", "duplicate", "swap", "length", "type"])
        if op == "drop":
            del chunks[i]
        elif op == "duplicate":
            chunks.insert(i, chunks[i])
        elif op == "swap" and i + 1 < len(chunks):
            chunks[i], chunks[i + 1] = chunks[i + 1], chunks[i]
        elif op == "length":
            chunks[i] = struct.pack(">I", int(rng.integers(0, 1 << 16))) + chunks[i][4:]
        elif op == "type":
            chunks[i] = with_crc(chunks[i][:4] + bytes(rng.integers(65, 91, 4, dtype=np.uint8)) + chunks[i][8:])
        return bytes(data[:8]) + b"".join(chunks)
    segments, rest = jpeg_segments(bytes(data))
    i = int(rng.integers(0, len(segments)))
    op = rng.choice(["drop", "duplicate", "length", "table"])
    if op == "drop":
        del segments[i]
    elif op == "duplicate":
        segments.insert(i, segments[i])
    elif op == "length":
        segments[i] = segments[i][:2] + struct.pack(">H", int(rng.integers(0, 1 << 16))) + segments[i][4:]
    elif len(segments[i]) > 5:  # a byte inside a table (DQT, DHT, SOF...)
        seg = bytearray(segments[i])
        seg[int(rng.integers(4, len(seg)))] = int(rng.integers(0, 256))
        segments[i] = bytes(seg)
    return b"\xff\xd8" + b"".join(segments) + rest


KINDS = ["flip", "truncate", "insert", "size", "chunk"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """[(case folder, file path)], and one folder holding all the files."""
    root = tmp_path_factory.mktemp("fuzz")
    bases = base_files()
    out = []
    for i in range(CASES):
        ext, data = bases[i % len(bases)]
        kind = KINDS[(i // len(bases)) % len(KINDS)]
        damaged = mutate(ext, data, kind, np.random.default_rng([SEED, i]))
        (root / f"one/{i}/test").mkdir(parents=True)
        (root / "all/test").mkdir(parents=True, exist_ok=True)
        for path in (root / f"one/{i}/test/{i:04d}.{ext}", root / f"all/test/{i:04d}.{ext}"):
            path.write_bytes(damaged)
        out.append((root / f"one/{i}", str(root / f"one/{i}/test/{i:04d}.{ext}")))
    return root, out


def outcome(folder, path, backend):
    """("ok", A, B) or ("refused", message): anything else fails the test."""
    try:
        batches = list(make_loader(folder, backend=backend, **KW))
    except DatasetError as err:
        assert os.path.basename(path) in str(err), str(err)
        return ("refused", str(err))
    (b,) = batches
    assert b["paths"] == [path]
    for key in "AB":
        assert b[key].shape == (1, 3, 8, 8) and b[key].dtype == torch.float32
        assert b[key].min() >= -1 and b[key].max() <= 1
    return ("ok", b["A"], b["B"])


def halves(path):
    """The centre 8 x 8 crops of the file's two halves, decoded by PIL directly, in [-1, 1]."""
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), np.float32) / 127.5 - 1
    h, w = arr.shape[0], arr.shape[1] // 2
    top, left = (h - 8) // 2, (w - 8) // 2
    return [torch.from_numpy(arr[top:top + 8, x + left:x + left + 8].transpose(2, 0, 1).copy())
            for x in (0, w)]


@pytest.fixture(scope="module")
def verdicts(cases):
    """Every case through both backends, under a watchdog: a hang ends the run with a traceback."""
    faulthandler.dump_traceback_later(max(120, CASES), exit=True)
    try:
        return [{backend: outcome(folder, path, backend) for backend in NAMES} for folder, path in cases[1]]
    finally:
        faulthandler.cancel_dump_traceback_later()


def test_every_case_is_a_correct_batch_or_a_named_refusal(cases, verdicts):
    refused = 0
    for (_, path), verdict in zip(cases[1], verdicts):
        kinds = {backend: v[0] for backend, v in verdict.items()}
        assert len(set(kinds.values())) == 1, (path, {k: v[1] if v[0] == "refused" else "ok"
                                                      for k, v in verdict.items()})
        if kinds["torch"] == "refused":
            refused += 1
            continue
        a, b = halves(path)  # the torch backend decodes with PIL: exactly these pixels
        torch.testing.assert_close(verdict["torch"][1][0], a, rtol=0, atol=1e-6, msg=path)
        torch.testing.assert_close(verdict["torch"][2][0], b, rtol=0, atol=1e-6, msg=path)
        if "dali" in verdict:  # another libjpeg-turbo / libpng build: within a grey level or two
            for i in (1, 2):
                assert (verdict["dali"][i] - verdict["torch"][i]).abs().max() <= 2.01 / 127.5, path
    # the damage is varied: some files survive it (flips in pixel data), most do not
    assert 0.3 * CASES < refused < 0.95 * CASES


@pytest.mark.parametrize("backend", BACKENDS)
def test_skip_bad_skips_exactly_the_refused_files(cases, verdicts, backend):
    root, one = cases
    refused = {os.path.basename(path) for (_, path), v in zip(one, verdicts) if v["torch"][0] == "refused"}
    loader = make_loader(root / "all", backend=backend, skip_bad=True, **{**KW, "batch_size": 4})
    assert {os.path.basename(p) for p, _ in loader.skipped} == refused
    by_name = {os.path.basename(path): v["torch"] for (_, path), v in zip(one, verdicts)}
    seen = []
    for b in loader:
        for j, path in enumerate(b["paths"]):
            _, a, bb = by_name[os.path.basename(path)]
            tol = 0 if backend == "torch" else 2.01 / 127.5
            assert (b["A"][j] - a[0]).abs().max() <= tol and (b["B"][j] - bb[0]).abs().max() <= tol, path
            seen.append(os.path.basename(path))
    assert sorted(seen) == sorted(set(by_name) - refused)
