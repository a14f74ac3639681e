"""bicyclegan.pipelines: geometry, semantics and agreement of the torch and DALI loaders (CPU)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bicyclegan.pipelines import DatasetError, make_loader
from bicyclegan.pipelines.loader import dali_available

# The GPU machine may lack DALI (it is an extra): its DALI cases skip there instead of failing.
HAS_DALI = dali_available()
needs_dali = pytest.mark.skipif(not HAS_DALI, reason="NVIDIA DALI is not installed")
BACKENDS = ["torch", pytest.param("dali", marks=needs_dali)]
MODES = ["resize_and_crop", "crop", "scale_width_and_crop"]


# -- small datasets (also used by test_pipelines_errors.py) ---------------------------------------
def noise(rng, h, w, c=3):
    shape = (h, w, c) if c > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def smooth(h, w, phase=0.0):
    """A low-frequency RGB image: resizers agree on it to about one grey level."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([np.sin(x / 9 + phase), np.cos(y / 7 - phase), np.sin((x + y) / 13)], -1)
    return (img * 100 + 128).astype(np.uint8)


def write(path, arr, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(path)
    return str(path)


def aligned(folder, halves, ext="png"):
    """One A|B file per (A, B) pair of arrays, named 000.ext, 001.ext, ..."""
    return [write(f"{folder}/{i:03d}.{ext}", np.concatenate([a, b], 1)) for i, (a, b) in enumerate(halves)]


def batches(root, backend, **kw):
    kw = {"batch_size": 2, "load_size": (40, 44), "crop_size": (32, 36), "num_workers": 0, **kw}
    return list(make_loader(root, backend=backend, **kw))


@pytest.fixture(scope="module")
def same(tmp_path_factory):
    """Aligned files whose halves are identical noise (A == B)."""
    root = tmp_path_factory.mktemp("same")
    rng = np.random.default_rng(1)
    aligned(root / "train", [(a, a) for a in (noise(rng, 36, 40) for _ in range(6))])
    return root


@pytest.fixture(scope="module")
def negated(tmp_path_factory):
    """Aligned files with B = 255 - A (noise), so B == -A after every transform."""
    root = tmp_path_factory.mktemp("neg")
    rng = np.random.default_rng(2)
    aligned(root / "train", [(a, 255 - a) for a in (noise(rng, 36, 40) for _ in range(6))])
    return root


@pytest.fixture(scope="module")
def smooth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("smooth")
    aligned(root / "test", [(smooth(36, 40, p), smooth(36, 40, p + 1)) for p in range(5)])
    return root


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_crop_and_flip_shared_by_a_and_b(same, backend, mode):
    seen = set()
    for epoch in range(3):
        for b in batches(same, backend, preprocess=mode, seed=epoch):
            assert torch.equal(b["A"], b["B"])
            seen.update(x.numpy().tobytes() for x in b["A"])
    assert len(seen) > 6  # the crops and flips really vary between epochs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_halves_keep_their_relation(negated, backend, mode):
    # Without a resize the relation is exact; bicubic rounding moves each half by a grey level
    # at most, and a misaligned crop or flip would be off by about half the range on noise.
    tol = 0 if mode == "crop" else 2.01 / 127.5
    for b in batches(negated, backend, preprocess=mode):
        err = (b["A"] + b["B"]).abs()
        assert err.max() <= tol and err.mean() <= 0.5 / 127.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_happens_before_resize(tmp_path, backend):
    red, blue = np.zeros((30, 34, 3), np.uint8), np.zeros((30, 34, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    aligned(tmp_path / "train", [(red, blue)] * 2)
    b = batches(tmp_path, backend, load_size=64, crop_size=60)[0]
    assert torch.equal(b["A"][:, 0], torch.ones_like(b["A"][:, 0]))
    assert torch.equal(b["A"][:, 2], -torch.ones_like(b["A"][:, 2]))
    assert torch.equal(b["B"][:, 2], torch.ones_like(b["B"][:, 2]))


def test_torch_matches_reference_steps(smooth_set):
    """Eval: PIL split at w/2, bicubic resize to load_size, centre crop, x / 127.5 - 1."""
    b = batches(smooth_set, "torch", phase="test", batch_size=1, load_size=(40, 44), crop_size=(31, 35))[0]
    ab = Image.open(b["paths"][0]).convert("RGB")
    a = np.asarray(ab.crop((0, 0, 40, 36)).resize((44, 40), Image.BICUBIC))[4:35, 4:39]
    expect = torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(b["A"][0], expect, rtol=0, atol=1e-6)


@needs_dali
@pytest.mark.parametrize("mode", ["crop", "none", "resize_and_crop", "scale_width_and_crop"])
def test_backends_agree_in_eval(smooth_set, mode):
    kw = {"phase": "test", "preprocess": mode, "crop_size": (27, 31)}
    ref, dali = batches(smooth_set, "torch", **kw), batches(smooth_set, "dali", **kw)
    assert len(ref) == len(dali) == 3
    for r, d in zip(ref, dali):
        assert r["paths"] == d["paths"]
        for k in "AB":
            assert r[k].shape == d[k].shape
            diff = (r[k] - d[k]).abs()
            if mode in ("crop", "none"):
                assert diff.max() <= 1e-6
            else:  # PIL and DALI bicubic differ by rounding on smooth images
                assert diff.max() <= 2.01 / 127.5 and diff.mean() < 0.3 / 127.5


def varied_pairs(root, layout, n=11):
    """n noise pairs of varied sizes (H 16-27, W 18-31 a half) in `layout`: each its own crop range."""
    rng = np.random.default_rng(12)
    for i in range(n):
        h, w = int(rng.integers(16, 28)), int(rng.integers(18, 32))
        a, b = noise(rng, h, w), noise(rng, h, w)
        if layout == "aligned":
            write(root / f"train/{i:02d}.png", np.concatenate([a, b], 1))
        else:
            write(root / f"train/A/{i:02d}.png", a)
            if layout == "ab_folders":
                write(root / f"train/B/{i:02d}.png", b)



def flips(loader, seed, epoch, paths):
    """How many of `paths` the flip rule flips in `epoch` (draw_params: the sample's third draw < 0.5): a case that
    flips some samples and not others tells a flip rule reversed or dropped."""
    from bicyclegan.pipelines.sharding import sample_rng
    index = {s.path: i for i, s in enumerate(loader.samples)}
    return sum(int(sample_rng(seed, epoch, index[p]).random(3)[2] < 0.5) for p in paths)

@needs_dali
@pytest.mark.parametrize("layout, direction, input_nc, output_nc", [
    ("aligned", "AtoB", 3, 3), ("aligned", "BtoA", 1, 3), ("ab_folders", "BtoA", 3, 1), ("single", "AtoB", 1, 3)])
def test_backends_agree_on_crops_and_flips(tmp_path, layout, direction, input_nc, output_nc):
    """The same seed gives the same crops and flips on both backends, from each sample's generator
    (sharding.sample_rng): DALI drew them from its pipeline's own, so a run resumed on the other backend
    went on with other data. preprocess='crop' resizes nothing: the pixels are equal but for a float's
    last bit (DALI multiplies by 1/127.5). Sizes vary, so each sample has its own crop range in H and W
    (a draw taken for the other axis, or a flip rule reversed, moves most crops); two ranks, an uneven
    last batch, three epochs; grayscale sides as PIL's luma and DALI's round (a grey level apart)."""
    varied_pairs(tmp_path, layout)
    kw = {"batch_size": 2, "crop_size": (16, 18), "preprocess": "crop", "num_workers": 0, "seed": 7, "shuffle": True,
          "drop_last": False, "direction": direction, "input_nc": input_nc, "output_nc": output_nc}
    for rank in range(2):
        torch_, dali = (make_loader(tmp_path, backend=b, load_size=32, rank=rank, world_size=2, **kw)
                        for b in ("torch", "dali"))
        assert torch_.layout == layout and len(dali) == 3 and dali.num_samples in (5, 6)
        flipped = seen = 0
        for epoch in range(3):
            for r, d in zip(torch_, dali, strict=True):
                assert r["paths"] == d["paths"] and set(r) == set(d)
                for k in set(r) & {"A", "B"}:
                    # (PIL's luma and DALI's round a grey level apart at most; a shift or flip on noise is ~100)
                    tol = 1e-6 if r[k].shape[1] == 3 else 1.01 / 127.5
                    assert r[k].shape == d[k].shape and (r[k] - d[k]).abs().max() <= tol, (epoch, k)
                flipped, seen = flipped + flips(torch_, 7, epoch, r["paths"]), seen + len(r["paths"])
        assert 0 < flipped < seen  # (it counted the images that differ from their mirror image: all, on noise)



@needs_dali
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("layout, direction, input_nc", [("aligned", "AtoB", 3), ("ab_folders", "BtoA", 1)])
def test_dali_takes_the_torch_loaders_crops_and_flips_on_the_gpu(tmp_path, device, layout, direction, input_nc):
    """DALI's graph on the GPU ("mixed" decoding, its crops and flips GPU operators whose positions and mirror
    come from CPU nodes: the external source's float64 draws and the arithmetic on the files' shapes) takes
    the torch loader's crops and flips for one seed, as on its CPU operators: preprocess='crop' (no resize),
    shuffled, two epochs, a pass from batch 1 (a pipeline over the files from there on), a second rank."""
    varied_pairs(tmp_path, layout, n=7)
    kw = {"batch_size": 2, "crop_size": (16, 18), "load_size": 32, "preprocess": "crop", "num_workers": 0,
          "seed": 11, "shuffle": True, "drop_last": False, "direction": direction, "input_nc": input_nc,
          "world_size": 2}
    flipped = seen = 0
    for rank in range(2):
        ref = make_loader(tmp_path, backend="torch", rank=rank, **kw)
        dali = make_loader(tmp_path, backend="dali", rank=rank, device=device, **kw)
        for epoch, start in ((0, 0), (1, 0), (1, 1)):
            ref.set_epoch(epoch, start)
            dali.set_epoch(epoch, start)
            for r, d in zip(ref, dali, strict=True):
                assert r["paths"] == d["paths"] and d["A"].device.type == device
                for k in "AB":
                    # (grey as PIL's luma and DALI's round, a grey level apart; a shift or flip on noise is ~100)
                    tol = 1e-6 if r[k].shape[1] == 3 else 1.01 / 127.5
                    assert r[k].shape == d[k].shape and (r[k] - d[k].cpu()).abs().max() <= tol, (rank, epoch, k)
                flipped, seen = flipped + flips(ref, 11, epoch, r["paths"]), seen + len(r["paths"])
        dali.close()
    assert 0 < flipped < seen

@needs_dali
@pytest.mark.parametrize("mode", ["none", "resize_and_crop", "scale_width_and_crop"])
def test_backends_agree_on_crops_and_flips_where_they_resize(tmp_path, mode):
    """As above where the image is resized first (PIL's and DALI's bicubic filters differ by a grey
    level or two on smooth images), to heights that vary under scale_width_and_crop: images shifted
    by a pixel would differ by ~10 grey levels, flipped ones by most of the range. 'none' crops
    nothing: the flips alone."""
    for i in range(7):
        h = 36 if mode == "none" else 30 + 2 * i
        write(tmp_path / f"train/{i}.png", np.concatenate([smooth(h, 40, i), smooth(h, 40, i + 0.5)], 1))
    kw = {"batch_size": 3 if mode == "none" else 1, "load_size": (40, 44), "crop_size": (27, 31),
          "preprocess": mode, "num_workers": 0, "seed": 2}
    torch_, dali = (make_loader(tmp_path, backend=b, **kw) for b in ("torch", "dali"))
    for _ in range(3):
        for r, d in zip(torch_, dali, strict=True):
            assert r["paths"] == d["paths"]
            for k in "AB":
                assert r[k].shape == d[k].shape
                diff = (r[k] - d[k]).abs()
                assert diff.max() <= 2.01 / 127.5 and diff.mean() < 0.3 / 127.5


@needs_dali
def test_backends_agree_on_a_crop_that_float32_draws_would_move(tmp_path):
    """DALI's draws are float64, as the torch loader's: seed 30911's first draw for sample 0 of epoch 0,
    0.756999973..., puts the crop's top at row 756 of 0..999, and at 757 in float32 (one draw in ~50,000
    of a 1000 px range moves so)."""
    from bicyclegan.pipelines.sharding import sample_rng
    u = sample_rng(30911, 0, 0).random(3)
    assert int(u[0] * 1000) == 756 and int(np.float32(np.float32(u[0]) * np.float32(1000))) == 757  # (why this seed)
    rng = np.random.default_rng(5)
    file = write(tmp_path / "train/0.png", np.concatenate([noise(rng, 1031, 40), noise(rng, 1031, 40)], 1))
    kw = {"batch_size": 1, "load_size": 32, "crop_size": 32, "preprocess": "crop", "num_workers": 0, "seed": 30911}
    # draw_params' rule: rows 756..787 of each half, its columns from int(u[1] * 9), flipped where u[2] < 0.5
    left = int(u[1] * 9)
    want = np.asarray(Image.open(file))[756:788]
    for backend in ("torch", "dali"):
        loader = make_loader(tmp_path, backend=backend, **kw)
        loader.set_epoch(0)
        (got,) = list(loader)
        for k, half in (("A", want[:, :40]), ("B", want[:, 40:])):
            crop = half[:, left:left + 32][:, ::-1] if u[2] < 0.5 else half[:, left:left + 32]
            assert torch.equal(torch.round((got[k][0] + 1) * 127.5).to(torch.uint8),
                               torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)), (backend, k)


@needs_dali
def test_backends_ignore_exif_orientation(tmp_path):
    """As PIL and the reference: the stored pixels, not the EXIF-rotated view (DALI rotates by default)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise"
    rng = np.random.default_rng(7)
    (tmp_path / "train").mkdir()
    Image.fromarray(smooth(16, 32)).save(tmp_path / "train/x.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(noise(rng, 16, 32)).save(tmp_path / "train/y.jpg", quality=95)
    kw = {"augment": False, "preprocess": "none", "batch_size": 2}
    ref, dali = batches(tmp_path, "torch", **kw)[0], batches(tmp_path, "dali", **kw)[0]
    assert ref["A"].shape == dali["A"].shape == (2, 3, 16, 16)
    assert (ref["A"] - dali["A"]).abs().max() <= 1e-6  # libjpeg-turbo on both sides


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_ranges_and_non_square(negated, backend):
    loader = make_loader(negated, backend=backend, batch_size=4, load_size=(38, 50), crop_size=(24, 40),
                         num_workers=0)
    assert loader.backend == backend and len(loader) == 1
    (b,) = list(loader)
    assert set(b) == {"A", "B", "paths"} and len(b["paths"]) == 4
    for k in "AB":
        assert b[k].shape == (4, 3, 24, 40) and b[k].dtype == torch.float32
        assert b[k].is_contiguous() and -1 <= b[k].min() and b[k].max() <= 1
        assert b[k].min() < -0.9 and b[k].max() > 0.9


@pytest.mark.parametrize("backend", BACKENDS)
def test_direction_swaps(negated, backend):
    kw = {"preprocess": "crop", "seed": 5}
    for ab, ba in zip(batches(negated, backend, **kw), batches(negated, backend, direction="BtoA", **kw)):
        assert ab["paths"] == ba["paths"]
        assert torch.equal(ab["A"], ba["B"]) and torch.equal(ab["B"], ba["A"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_grayscale_and_rgba(tmp_path, backend):
    rng = np.random.default_rng(3)
    rgb, gray = noise(rng, 32, 64), noise(rng, 32, 64, c=1)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (32, 64, 1), dtype=np.uint8)], -1)
    write(tmp_path / "test/0_rgb.png", rgb)
    write(tmp_path / "test/1_gray.png", gray, "L")
    write(tmp_path / "test/2_rgba.png", rgba, "RGBA")
    kw = {"phase": "test", "preprocess": "none", "batch_size": 1}
    rgb_out, gray_out, rgba_out = (b["A"][0] for b in batches(tmp_path, backend, **kw))
    assert torch.equal(rgba_out, rgb_out)  # alpha is dropped, whatever its value
    assert torch.equal(gray_out[0], gray_out[1]) and torch.equal(gray_out[0], gray_out[2])
    one = batches(tmp_path, backend, input_nc=1, **kw)
    assert one[0]["A"].shape == (1, 1, 32, 32) and one[0]["B"].shape == (1, 3, 32, 32)
    luma = np.asarray(Image.fromarray(rgb[:, :32]).convert("L"), np.float32) / 127.5 - 1
    assert (one[0]["A"][0, 0] - torch.from_numpy(luma)).abs().max() <= 1.01 / 127.5
    assert torch.equal(one[1]["A"][0, 0], gray_out[0])
    assert batches(tmp_path, backend, output_nc=1, **kw)[0]["B"].shape == (1, 1, 32, 32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("under_phase", [True, False])
def test_ab_folders_pair_by_name(tmp_path, backend, under_phase):
    base = tmp_path / "train" if under_phase else tmp_path
    rng = np.random.default_rng(4)
    for name in ["b", "a", "c", "sub/d"]:  # B files carry another extension: pairing ignores it
        a = noise(rng, 30, 34)
        write(base / f"A/{name}.png", a)
        write(base / f"B/{name}.bmp", 255 - a)
    loader = make_loader(tmp_path, backend=backend, batch_size=2, load_size=30, crop_size=(24, 28),
                         preprocess="crop", num_workers=0)
    assert loader.layout == "ab_folders"
    got = list(loader)
    assert sorted(p for b in got for p in b["paths"]) == sorted(str(base / f"A/{n}.png") for n in "abc") + [
        str(base / "A/sub/d.png")]
    for b in got:
        assert torch.equal(b["B"], -b["A"])


def test_aligned_files_beside_a_and_b_folders_are_said_to_be_left_out(tmp_path, caplog):
    # A split holding A/ and B/ and A|B files too trained on the folders' pairs alone, without a word
    # of the 8 files beside them.
    rng = np.random.default_rng(6)
    for name in ("a", "b"):
        write(tmp_path / f"train/A/{name}.png", noise(rng, 16, 16))
        write(tmp_path / f"train/B/{name}.png", noise(rng, 16, 16))
    aligned(tmp_path / "train", [(noise(rng, 16, 16), noise(rng, 16, 16)) for _ in range(3)])
    (tmp_path / "train/.hidden.png").write_bytes(b"")  # (hidden files are never read: not counted)
    with caplog.at_level("WARNING", "bicyclegan.pipelines"):
        loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0)
    assert loader.layout == "ab_folders" and len(loader) == 2
    assert caplog.messages == [f"{tmp_path / 'train'} holds image files beside its A/ folder (000.png and 2 more), "
                               f"which are not read: the ab_folders layout reads A/ and B/ alone; move them into a "
                               f"split of their own to train on them"]
    caplog.clear()
    for i in range(3):
        os.remove(tmp_path / f"train/{i:03d}.png")
    with caplog.at_level("WARNING", "bicyclegan.pipelines"):
        make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0)
    assert caplog.messages == []  # (nothing beside them: nothing said)
    # A plain folder of inputs (the single layout) inside a folder of images: nothing of them is the dataset's (its
    # parent's 3 files were said to be beside "its A/ folder")
    inputs = tmp_path / "pictures" / "inputs"
    write(inputs / "x.png", noise(rng, 16, 16))
    aligned(tmp_path / "pictures", [(noise(rng, 16, 16), noise(rng, 16, 16)) for _ in range(3)])
    with caplog.at_level("WARNING", "bicyclegan.pipelines"):
        assert len(make_loader(inputs, batch_size=1, load_size=16, crop_size=16, num_workers=0, layout="single")) == 1
    assert caplog.messages == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_layout_has_no_b(tmp_path, backend):
    rng = np.random.default_rng(5)
    for i in range(3):
        write(tmp_path / f"test/A/{i}.png", noise(rng, 30, 34))
    loader = make_loader(tmp_path, phase="test", backend=backend, batch_size=2, load_size=32,
                         crop_size=32, num_workers=0)
    assert loader.layout == "single" and len(loader) == 2
    got = list(loader)
    assert set(got[0]) == {"A", "paths"} and got[0]["A"].shape == (2, 3, 32, 32)
    assert got[1]["A"].shape == (1, 3, 32, 32)  # eval keeps the last, partial batch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(6)
    aligned(root / "train", [(noise(rng, 8, 8), noise(rng, 8, 8)) for _ in range(11)])
    return root


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sharding_covers_each_file_once(tiny, backend, drop_last, world_size):
    batch_size = 2
    for epoch in range(2):
        seen, lengths = [], set()
        for rank in range(world_size):
            loader = make_loader(tiny, backend=backend, batch_size=batch_size, load_size=8, crop_size=8,
                                 rank=rank, world_size=world_size, drop_last=drop_last, num_workers=0)
            loader.set_epoch(epoch)
            got = list(loader)
            assert len(got) == len(loader)
            lengths.add(len(got))
            seen += [p for b in got for p in b["paths"]]
            assert all(b["A"].shape[0] == batch_size for b in got[: len(got) - (not drop_last)])
        assert len(seen) == len(set(seen))  # never twice
        if drop_last:
            assert len(seen) == 11 // (world_size * batch_size) * world_size * batch_size
            assert len(lengths) == 1  # every rank runs the same number of steps
        else:
            assert len(seen) == 11


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_per_seed_and_epoch(negated, backend):
    def run(seed, epochs=2, start=0, num_workers=0):
        loader = make_loader(negated, backend=backend, batch_size=2, load_size=40, crop_size=32,
                             seed=seed, num_workers=num_workers)
        loader.set_epoch(start)
        return [[(b["paths"], b["A"]) for b in loader] for _ in range(epochs)]

    def same(x, y):
        return all(p == q and torch.equal(a, b) for (p, a), (q, b) in zip(x, y))

    first, again, other = run(0), run(0), run(1)
    assert same(first[0], again[0]) and same(first[1], again[1])
    assert not same(first[0], first[1]) and not same(first[0], other[0])
    assert same(run(0, epochs=1, start=1)[0], first[1])  # set_epoch resumes exactly
    assert same(run(0, epochs=1, num_workers=2)[0], first[0])  # workers / threads do not matter


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_loading_never_draws_from_torchs_global_generator(negated, backend, num_workers):
    """The training's z draws come from torch's global generator: a loader drawing from it (the
    DataLoader's base seed, at each new iterator) moved them, and a resumed run, whose iterator
    starts afresh, drew where an unbroken one had not: resuming from an epoch checkpoint was not
    exact."""
    loader = make_loader(negated, backend=backend, batch_size=2, load_size=40, crop_size=32, num_workers=num_workers)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    for _ in range(2):
        for _ in loader:
            pass
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_epoch_started_mid_way_gives_the_rest_of_the_same_epoch(negated, backend, num_workers, monkeypatch):
    """set_epoch(e, k): the batches from k on of an uninterrupted epoch e, crops and flips included,
    then whole epochs again. Neither loader reads anything before batch k (resuming half-way through
    an edges2shoes epoch decoded ~25,000 pairs just to get there; near the end of a 20,000-batch epoch
    DALI ran for 30 s), and set_epoch(e, len) is an epoch with nothing left."""
    def loader():
        return make_loader(negated, backend=backend, batch_size=2, load_size=40, crop_size=32, seed=3,
                           num_workers=num_workers)

    whole = loader()
    whole.set_epoch(1)
    epoch1, epoch2 = ([(b["paths"], b["A"], b["B"]) for b in whole] for _ in range(2))
    decoded = []
    if backend == "torch" and num_workers == 0:
        from bicyclegan.pipelines import cpu_loader
        real = cpu_loader.PairedImageDataset._decode
        monkeypatch.setattr(cpu_loader.PairedImageDataset, "_decode",
                            lambda self, sample: decoded.append(sample.path) or real(self, sample))
    if backend == "dali":  # the files its pipelines read (it ran and dropped the batches before k)
        from bicyclegan.pipelines import dali_loader
        real_pairs = dali_loader.DaliLoader._pairs
        monkeypatch.setattr(dali_loader.DaliLoader, "_pairs",
                            lambda self, indices: decoded.extend(self.samples[i].path for i in indices)
                            or real_pairs(self, indices))
    part = loader()
    k = len(part) // 2
    part.set_epoch(1, k)
    rest, after = ([(b["paths"], b["A"], b["B"]) for b in part] for _ in range(2))
    assert len(rest) == len(part) - k and k > 0
    for (p, a, b), (q, c, d) in zip(rest, epoch1[k:], strict=True):
        assert p == q and torch.equal(a, c) and torch.equal(b, d)
    assert [p for p, _, _ in after] == [p for p, _, _ in epoch2]  # the next epoch is whole
    if decoded:
        assert sorted(decoded) == sorted(p for b, _, _ in rest + after for p in b)
    part.set_epoch(1, len(part))
    assert list(part) == [] and len(list(part)) == len(part)  # (then epoch 2, whole)
    with pytest.raises(ValueError, match=r"start_batch must be an int in \[0, "):
        part.set_epoch(0, len(part) + 1)


@needs_dali
def test_a_dali_pass_from_a_batch_with_nothing_random_leaves_whole_passes_whole(negated):
    """Nothing random (eval): DALI keeps its pipeline from one whole pass to the next. A pass from batch k
    builds one over the files from there on, never reuses the kept one (which starts at batch 0), and its
    own serves no whole pass after it (which would start at batch k)."""
    dali = make_loader(negated, backend="dali", batch_size=2, load_size=40, crop_size=32, augment=False,
                       shuffle=False, num_workers=0)
    whole = list(dali)
    for k in (1, 2):
        dali.set_epoch(1, k)
        for part in (list(dali), list(dali)[k:]):  # (then a whole pass again)
            assert len(part) == len(whole) - k
            for got, want in zip(part, whole[k:], strict=True):
                assert got["paths"] == want["paths"] and torch.equal(got["A"], want["A"])
                assert torch.equal(got["B"], want["B"])


def test_auto_backend_and_lazy_dali_import(tiny):
    loader = make_loader(tiny, batch_size=2, load_size=8, crop_size=8, num_workers=0)
    assert loader.backend == ("dali" if torch.cuda.is_available() and HAS_DALI else "torch")
    code = "import sys, bicyclegan.pipelines; assert 'nvidia.dali' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_batches_land_on_the_device(smooth_set, backend):
    if backend == "dali" and not HAS_DALI:
        pytest.skip("DALI is not installed")
    kw = {"phase": "test", "preprocess": "crop", "crop_size": (27, 31), "device": "cuda"}
    cpu = batches(smooth_set, "torch", device="cpu", **{k: v for k, v in kw.items() if k != "device"})
    for r, g in zip(cpu, batches(smooth_set, backend, **kw)):
        assert g["A"].is_cuda and r["paths"] == g["paths"]
        torch.testing.assert_close(g["A"].cpu(), r["A"], rtol=0, atol=1e-6)
    if backend == "torch":  # uint8 scaled on the side stream: the CPU's floats bit for bit (an ulp off passes atol)
        for r, g in zip(cpu, batches(smooth_set, "torch", memory_format=torch.channels_last, **kw), strict=True):
            for k in "AB":
                assert g[k].is_cuda and g[k].is_contiguous(memory_format=torch.channels_last)
                assert torch.equal(g[k].cpu(), r[k]), k


# -- uint8 from the workers, floats where the batch is used -----------------------------------------
def scaled_in_the_worker(arr):
    """The loader's values before its workers shipped uint8: the HxW(xC) uint8 array made float32 in
    numpy, then (x - 127.5) / 127.5 by torch on the CPU, channels first."""
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).sub_(127.5).div_(127.5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_to_unit_float_is_the_old_arithmetic_bit_for_bit(device):
    """Every byte value, both layouts; on CUDA too, where dividing by a Python number multiplies by
    its reciprocal instead (one ulp off for 126 of the 256 values)."""
    from bicyclegan.pipelines.cpu_loader import to_unit_float
    values = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8).expand(4, 3, 8, 8).contiguous()
    want = torch.stack([scaled_in_the_worker(v.numpy().transpose(1, 2, 0)) for v in values])
    for fmt in (torch.contiguous_format, torch.channels_last):
        got = to_unit_float(values.to(device), fmt)
        assert got.dtype == torch.float32 and got.is_contiguous(memory_format=fmt)
        assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_batches_equal_floats_scaled_in_the_worker(tmp_path, num_workers):
    """Random RGB pairs holding every byte value, through the loader with its uint8 hand-over: A and B
    as the old formula makes them from the files' pixels, bit for bit; A also through the grayscale
    path (input_nc=1: PIL's luma), B with 1 channel; laid out channels_last when asked."""
    rng = np.random.default_rng(11)
    halves = [(noise(rng, 16, 16), noise(rng, 16, 16)) for _ in range(4)]
    halves[0][0][:] = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)  # every value, in A and in luma
    aligned(tmp_path / "test", halves)
    kw = {"phase": "test", "preprocess": "none", "batch_size": 2, "num_workers": num_workers}
    want_rgb = [torch.stack([scaled_in_the_worker(h[i]) for h in halves]) for i in (0, 1)]
    for fmt in (torch.contiguous_format, torch.channels_last):
        got = batches(tmp_path, "torch", memory_format=fmt, **kw)
        assert all(b[k].is_contiguous(memory_format=fmt) for b in got for k in "AB")
        assert torch.equal(torch.cat([b["A"] for b in got]), want_rgb[0])
        assert torch.equal(torch.cat([b["B"] for b in got]), want_rgb[1])
    got = batches(tmp_path, "torch", input_nc=1, output_nc=1, **kw)
    for k, i in (("A", 0), ("B", 1)):
        want = torch.stack([scaled_in_the_worker(np.asarray(Image.fromarray(h[i]).convert("L"))) for h in halves])
        got_k = torch.cat([b[k] for b in got])
        assert got_k.dtype == torch.float32 and torch.equal(got_k, want)


def test_a_link_to_a_folder_above_is_not_followed(tmp_path, caplog):
    # train/up -> .. walked the dataset's root: val/'s images were read into the training data (each real
    # folder is read once, so train/ itself was not read twice, but val/ had not been seen). A link to a
    # folder elsewhere is still followed, and one to a sibling split is taken as asked for.
    rng = np.random.default_rng(7)
    train = aligned(tmp_path / "train", [(noise(rng, 16, 16), noise(rng, 16, 16)) for _ in range(2)])
    aligned(tmp_path / "val", [(noise(rng, 16, 16), noise(rng, 16, 16)) for _ in range(3)])
    other = aligned(tmp_path / "elsewhere", [(noise(rng, 16, 16), noise(rng, 16, 16))])
    os.symlink("..", tmp_path / "train/up")
    os.symlink(tmp_path, tmp_path / "train/root")
    os.symlink(tmp_path / "elsewhere", tmp_path / "train/more")
    with caplog.at_level("WARNING", "bicyclegan.pipelines"):
        loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0, shuffle=False,
                             drop_last=False)
    assert sorted(p for b in loader for p in b["paths"]) == sorted(train + [str(tmp_path / "train/more/000.png")])
    assert other  # (read through the link, under its own name)
    assert caplog.messages == [f"{tmp_path / 'train' / name} links to {tmp_path}, a folder above {tmp_path / 'train'}: "
                               f"not followed" for name in ("root", "up")]
    os.symlink(tmp_path / "val", tmp_path / "train/v")
    loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0)
    assert len(loader) == 2 + 1 + 3


def test_images_of_formats_not_read_are_said_to_be_left_out(tmp_path, caplog):
    # A folder of PNGs with a TIFF and a WebP among them trained on the PNGs alone, without a word (the
    # reference's extensions, kept; its os.walk skips the others silently too).
    rng = np.random.default_rng(8)
    kept = aligned(tmp_path / "train", [(noise(rng, 16, 16), noise(rng, 16, 16)) for _ in range(2)])
    pic = Image.fromarray(np.concatenate([noise(rng, 16, 16), noise(rng, 16, 16)], 1))
    pic.save(tmp_path / "train/b.webp")
    os.makedirs(tmp_path / "train/sub")
    pic.save(tmp_path / "train/sub/a.TIF")
    (tmp_path / "train/notes.txt").write_text("not an image")  # (not an image format: not counted)
    with caplog.at_level("WARNING", "bicyclegan.pipelines"):
        loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0, shuffle=False)
    assert [p for b in loader for p in b["paths"]] == kept
    assert caplog.messages == [f"left out 2 image files of .tif, .webp ({tmp_path / 'train/b.webp'} and 1 more): the "
                               f"extensions read are .jpg, .jpeg, .png, .ppm, .bmp, as the reference's; convert them "
                               f"to PNG to use them"]


def test_ab_folders_pair_names_equal_in_unicode_composed_form(tmp_path):
    # A/café.png written composed (NFC, as most systems do) and B/café.png decomposed (NFD, as macOS writes
    # names): "no partner" for two names that look the same. Paired by their composed form; two files of A/
    # equal in it (one of each form) are ambiguous, as 1.jpg and 1.png are.
    import unicodedata
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    rng = np.random.default_rng(9)
    a = noise(rng, 16, 16)
    write(tmp_path / f"train/A/{nfc}.png", a)
    write(tmp_path / f"train/B/{nfd}.png", 255 - a)
    loader = make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0, preprocess="crop")
    (batch,) = list(loader)
    assert batch["paths"] == [str(tmp_path / f"train/A/{nfc}.png")] and torch.equal(batch["B"], -batch["A"])
    write(tmp_path / f"train/A/{nfd}.png", a)
    with pytest.raises(DatasetError, match="ambiguous"):
        make_loader(tmp_path, batch_size=1, load_size=16, crop_size=16, num_workers=0, preprocess="crop")
