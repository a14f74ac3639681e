"""Demo data (outline drawings -> filled shapes in K palettes) and the palette classifier."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bicyclegan.engine.metrics import classify_palette, classify_palettes, palette_coverage
from bicyclegan.pipelines import make_demo_dataset
from bicyclegan.pipelines.atomic import writer_tag
from bicyclegan.pipelines.demo import DEFAULT_SHADE, PALETTES


def load_phase(root, phase="train"):
    """(A, B, labels, names): A, B float N x 3 x H x W in [-1, 1], as the loader gives them."""
    meta = json.loads((root / phase / "palettes.json").read_text())
    names = sorted(meta["files"])
    x = np.stack([np.asarray(Image.open(root / phase / n).convert("RGB")) for n in names])
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
    w = x.shape[3] // 2
    return x[..., :w], x[..., w:], torch.tensor([meta["files"][n] for n in names]), names


@pytest.fixture(scope="module")
def demo64(tmp_path_factory):
    root = make_demo_dataset(tmp_path_factory.mktemp("demo64"), n_train=320, n_test=8, size=64)
    return load_phase(root)


def blur(x, k=3):
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)


# ------------------------------------------------------------------------------------ generation
def test_deterministic_per_seed(tmp_path):
    a = make_demo_dataset(tmp_path / "a", n_train=6, n_test=2, size=32, seed=3)
    b = make_demo_dataset(tmp_path / "b", n_train=9, n_test=2, size=32, seed=3)
    c = make_demo_dataset(tmp_path / "c", n_train=6, n_test=2, size=32, seed=4)
    for phase, n in (("train", 6), ("test", 2)):
        for i in range(n):
            name = f"{phase}/{i:05d}.png"
            # Image i does not depend on how many images the phase has.
            assert (a / name).read_bytes() == (b / name).read_bytes()
    assert any((a / f"train/{i:05d}.png").read_bytes() != (c / f"train/{i:05d}.png").read_bytes()
               for i in range(6))
    assert (a / "test/00000.png").read_bytes() != (a / "train/00000.png").read_bytes()


@pytest.mark.parametrize("size,hw", [(64, (64, 64)), ((48, 80), (48, 80)), (16, (16, 16)),
                                     ((16, 40), (16, 40))])
def test_layout_and_sizes(tmp_path, size, hw):
    root = make_demo_dataset(tmp_path, n_train=12, n_test=3, n_val=2, size=size, n_palettes=8)
    for phase, n in (("train", 12), ("test", 3), ("val", 2)):
        files = sorted(p.name for p in (root / phase).glob("*.png"))
        assert files == [f"{i:05d}.png" for i in range(n)]
        meta = json.loads((root / phase / "palettes.json").read_text())
        assert sorted(meta["files"]) == files
        assert meta["n_palettes"] == 8
        assert meta["palettes"][1] == {"background": PALETTES[1, 0].tolist(),
                                       "fill": PALETTES[1, 1].tolist()}
        for name in files:
            img = Image.open(root / phase / name)
            assert img.mode == "RGB" and img.size == (2 * hw[1], hw[0])  # PIL: (W, H)
            x = np.asarray(img)
            a, b = x[:, :hw[1]], x[:, hw[1]:]
            # Exact colours: A is a black outline, light grey inside, white outside; B only the
            # labelled palette's two colours.
            assert set(np.unique(a)) <= {0, DEFAULT_SHADE, 255} and (a == 0).any()
            bg, fill = PALETTES[meta["files"][name]]
            is_bg, is_fill = (b == bg).all(-1), (b == fill).all(-1)
            assert (is_bg | is_fill).all() and is_bg.any() and is_fill.any()
            # The outline lies on the filled shapes in B (B has no outline of its own), and A is
            # shaded exactly where B is filled, off the outline.
            on_line = (a == 0).all(-1)
            assert is_fill[on_line].all()
            assert np.array_equal((a == DEFAULT_SHADE).all(-1), is_fill & ~on_line)


def test_no_val_by_default_and_stale_files_removed(tmp_path):
    make_demo_dataset(tmp_path, n_train=5, n_test=2, size=16)
    make_demo_dataset(tmp_path, n_train=3, n_test=2, size=16)
    assert not (tmp_path / "val").exists()
    assert sorted(p.name for p in (tmp_path / "train").glob("*.png")) == [
        "00000.png", "00001.png", "00002.png"]


def test_a_count_of_0_removes_that_split_of_an_earlier_set(tmp_path):
    # evaluate defaults to val/ when there is one: a stale one (other size, other images) was read.
    make_demo_dataset(tmp_path, n_train=2, n_test=2, n_val=2, size=16)
    (tmp_path / "val" / "notes.txt").write_text("mine")
    make_demo_dataset(tmp_path, n_train=2, n_test=0, n_val=0, size=16)
    assert not (tmp_path / "test").exists()
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == ["notes.txt"]  # only the demo's own files go


def test_a_part_made_demo_folder_is_made_again_whole(tmp_path):
    # An interrupted first run left train/ with a cut PNG and no test/: the next run took it as made.
    from bicyclegan.engine import make_config
    from bicyclegan.engine.runtime import demo_data_root, prepare_data_root
    cfg = make_config("demo", out=str(tmp_path / "run"))
    root = demo_data_root(cfg.out, cfg.model.size, cfg.seed)
    (root / "train").mkdir(parents=True)
    (root / "train" / "00000.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    assert prepare_data_root(cfg) == root
    want = make_demo_dataset(tmp_path / "whole", size=cfg.model.size, seed=cfg.seed)
    for split in ("train", "test"):
        names = sorted(p.name for p in (root / split).iterdir())
        assert names == sorted(p.name for p in (want / split).iterdir()) and "palettes.json" in names
        assert all((root / split / n).read_bytes() == (want / split / n).read_bytes() for n in names)
    assert sorted(p.name for p in root.parent.iterdir()) == sorted([root.name, "whole"])  # no temporary folder


def test_the_demo_folder_is_written_in_a_temp_folder_of_its_own_removed_whatever_stops_it(tmp_path, monkeypatch):
    # The temp folder was .<root>.<pid>.tmp, removed first: a run on another machine sharing the disk with
    # the same pid lost the folder it was writing; a Ctrl-C while writing left it behind; and mkdtemp's 0700
    # would have reached the data
    import os

    import bicyclegan.engine.runtime as runtime
    from bicyclegan.engine import make_config
    cfg = make_config("demo", out=str(tmp_path / "run"))
    root = runtime.demo_data_root(cfg.out, cfg.model.size, cfg.seed)
    from bicyclegan.pipelines.atomic import writer_tag
    other = root.with_name(f".{root.name}.{writer_tag()}-zz9.tmp")  # (a thread's of this process, still writing)
    (other / "train").mkdir(parents=True)
    (other / "train" / "00000.png").write_bytes(b"another run's, still writing")
    write = runtime.make_demo_dataset
    made = []

    def stopped(out, **kw):
        made.append(Path(out).name)
        write(out, **kw)
        raise KeyboardInterrupt
    monkeypatch.setattr(runtime, "make_demo_dataset", stopped)
    with pytest.raises(KeyboardInterrupt):
        runtime.prepare_data_root(cfg)
    assert sorted(p.name for p in root.parent.iterdir()) == [other.name]  # no folder of this run's left
    # named for its writer (pid and host), so that a later run tells a killed run's part from a live one's
    assert made[0].startswith(f".{root.name}.{writer_tag()}-") and made[0].endswith(".tmp"), made
    monkeypatch.setattr(runtime, "make_demo_dataset", write)
    assert runtime.prepare_data_root(cfg) == root and runtime.demo_data_made(root)
    assert sorted(p.name for p in root.parent.iterdir()) == sorted([other.name, root.name])
    assert (other / "train" / "00000.png").read_bytes() == b"another run's, still writing"
    umask = os.umask(0)
    os.umask(umask)
    assert root.stat().st_mode & 0o777 == 0o777 & ~umask


def test_palettes_json_matches_images(demo64):
    A, B, labels, _ = demo64
    pal = torch.from_numpy(PALETTES[:4].astype(np.float32)) / 127.5 - 1
    assert torch.bincount(labels, minlength=4).min() > 40  # all K palettes, roughly balanced
    # Every pixel is exactly the background or the fill of the labelled palette; both occur.
    is_bg = (B == pal[labels, 0][:, :, None, None]).all(1)
    is_fill = (B == pal[labels, 1][:, :, None, None]).all(1)
    assert (is_bg | is_fill).all()
    assert is_bg.flatten(1).any(1).all() and is_fill.flatten(1).any(1).all()


def test_shade_255_is_a_bare_outline_drawing(tmp_path):
    shaded = load_phase(make_demo_dataset(tmp_path / "a", n_train=8, n_test=0, size=32))
    bare = load_phase(make_demo_dataset(tmp_path / "b", n_train=8, n_test=0, size=32, shade=255))
    assert set(bare[0].unique().tolist()) == {-1.0, 1.0}
    # Same layouts, labels and B; A differs only inside the shapes.
    assert torch.equal(shaded[1], bare[1]) and torch.equal(shaded[2], bare[2])
    differs = shaded[0] != bare[0]
    assert differs.any() and (bare[0][differs] == 1).all()
    assert (shaded[0][differs] == DEFAULT_SHADE / 127.5 - 1).all()
    # The metric reads both the same way.
    assert torch.equal(classify_palettes(bare[0], bare[1])[0], bare[2])


def test_make_demo_command_takes_the_shade(tmp_path, capsys):
    from bicyclegan.engine.cli import main
    assert main(["make-demo", str(tmp_path / "d"), "--size", "16", "--n_train", "2", "--n_test", "0",
                 "--shade", "200"]) == 0
    a = np.asarray(Image.open(tmp_path / "d" / "train" / "00000.png"))[:, :16]
    assert set(np.unique(a)) == {0, 200, 255}
    assert main(["make-demo", str(tmp_path / "e"), "--shade", "100"]) == 2
    assert "shade must be an integer grey level in 184..255" in capsys.readouterr().err
    # files the loaders refuse (over 50 M pixels): --size 100000 drew for minutes without a word first
    for size in (["--size", "100000"], ["--size", "16", "--width", "1600000"]):
        assert main(["make-demo", str(tmp_path / "f"), *size]) == 2
        assert "over the loaders' limit of 50,000,000 a file; use a smaller size" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
    # no pairs at all: "demo data written to f", and no f
    assert main(["make-demo", str(tmp_path / "f"), "--n_train", "0", "--n_test", "0"]) == 2
    assert capsys.readouterr().err == ("bicyclegan make-demo: ConfigError: --n_train 0 and --n_test 0: nothing to "
                                       "write; give a number of pairs to either\n")
    assert not (tmp_path / "f").exists()


def test_files_over_the_loaders_pixel_limit_are_refused_before_any_is_drawn(tmp_path, monkeypatch):
    from bicyclegan.pipelines import demo
    monkeypatch.setattr(demo, "MAX_PIXELS", 16 * 32)  # (the limit, lowered: a 16 px demo's files are 16 x 32)
    with pytest.raises(ValueError, match=r"size 17 x 17 makes files of 17 x 34 = 578 pixels, over the loaders' "
                                         r"limit of 512 a file"):
        make_demo_dataset(tmp_path / "d", n_train=1, n_test=0, size=17)
    assert not (tmp_path / "d").exists()
    make_demo_dataset(tmp_path / "d", n_train=1, n_test=0, size=16)


@pytest.mark.parametrize("frac,side", [(0.5, 16), (0.25, 8)])
def test_shape_size_sets_the_side_of_the_shapes(tmp_path, frac, side):
    root = make_demo_dataset(tmp_path, n_train=12, n_test=0, size=32, n_shapes=1, shapes=("rectangle",),
                             shape_size=(frac, frac))
    for f in sorted((root / "train").glob("*.png")):
        a = np.asarray(Image.open(f))[:, :32, 0]
        ys, xs = np.nonzero(a < 255)  # outline and shade: the rectangle, clipped by the border
        for extent in (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1):
            assert int(0.8 * side) <= extent <= side  # up to ~15 % may fall outside the image


@pytest.mark.parametrize("bad", [dict(size=15), dict(size=(16, 8)), dict(n_palettes=0),
                                 dict(n_palettes=9), dict(n_shapes=(2, 1)),
                                 dict(shapes=("star",)), dict(line_width=0), dict(shade=183),
                                 dict(shade=256), dict(shade=240.0),
                                 dict(shape_size=(0, 0.5)), dict(shape_size=(0.6, 0.5)),
                                 dict(shape_size=(0.5, 1.2)), dict(shape_size=(0.5,))])
def test_rejects_bad_arguments(tmp_path, bad):
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path, n_train=1, n_test=0, **bad)


# -------------------------------------------------------------------------------- classification
def test_palette_separation():
    colours = PALETTES.astype(float) / 255
    for region in (0, 1):
        d = np.linalg.norm(colours[:, None, region] - colours[None, :, region], axis=-1)
        np.fill_diagonal(d, np.inf)
        assert d.min() > 2 * 0.3  # > 2 * max_dist: at most one palette is ever within reach
    assert np.linalg.norm(colours[:, 0] - colours[:, 1], axis=-1).min() > 1.0


def test_classifies_ground_truth(demo64):
    A, B, labels, _ = demo64
    idx, dist = classify_palettes(A, B)
    assert torch.equal(idx, labels)
    assert dist.max() < 1e-6


@pytest.mark.parametrize("size,k", [((48, 80), 8), (16, 4), (32, 2)])
def test_classifies_ground_truth_other_sizes(tmp_path, size, k):
    A, B, labels, _ = load_phase(make_demo_dataset(tmp_path, n_train=64, n_test=0, size=size,
                                                   n_palettes=k, seed=1))
    assert torch.equal(classify_palettes(A, B, n_palettes=k)[0], labels)
    # A with a single grey channel works too.
    assert torch.equal(classify_palettes(A[:, :1], B, n_palettes=k)[0], labels)


def test_mild_degradations_still_classify(demo64):
    A, B, labels = (t[:128] for t in demo64[:3])
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(B.shape, generator=g)
    shift = torch.tensor([0.1, -0.1, 0.06]).view(1, 3, 1, 1)
    cases = {
        "blur3": blur(B, 3),
        "blur5": blur(B, 5),
        "noise": (B + noise).clamp(-1, 1),
        "shift": (B + shift).clamp(-1, 1),
        "all": (blur(B, 3) + noise + shift).clamp(-1, 1),
    }
    for name, b in cases.items():
        idx, _ = classify_palettes(A, b)
        assert (idx == labels).float().mean() == 1.0, name
    # A 2x downscale of both halves (a loader resizing 64 -> 32) keeps the outline readable.
    idx, _ = classify_palettes(F.avg_pool2d(A, 2), F.avg_pool2d(B, 2))
    assert (idx == labels).float().mean() >= 0.97


def test_gross_outputs_are_invalid(demo64):
    A, B, labels = (t[:128] for t in demo64[:3])
    n = len(A)
    g = torch.Generator().manual_seed(1)
    grey = torch.zeros_like(B)
    noise = torch.rand(B.shape, generator=g) * 2 - 1
    mean_palette = torch.from_numpy(PALETTES[:4].mean(0).astype(np.float32)) / 127.5 - 1
    averaged = torch.where(B == B[:, :, :1, :1], mean_palette[0].view(1, 3, 1, 1),
                           mean_palette[1].view(1, 3, 1, 1))
    for name, b in {"grey": grey, "noise": noise, "A": A, "average": averaged,
                    "blurred noise": blur(noise, 5)}.items():
        idx, _ = classify_palettes(A, b)
        assert (idx == -1).all(), name
    # Background of one palette with the fill of another.
    other = (labels + 1) % 4
    pal = torch.from_numpy(PALETTES[:4].astype(np.float32)) / 127.5 - 1
    inside = (B == pal[labels, 1][:, :, None, None]).all(1, keepdim=True)
    swapped = torch.where(inside, pal[other, 1][:, :, None, None], B)
    assert (classify_palettes(A, swapped)[0] == -1).all()
    # Left half one palette, right half another: invalid wherever both halves hold a fair share
    # of both regions.
    recoloured = torch.where(inside, pal[other, 1][:, :, None, None],
                             pal[other, 0][:, :, None, None])
    w = B.shape[3]
    half = torch.cat([B[..., : w // 2], recoloured[..., w // 2:]], dim=3)
    idx, _ = classify_palettes(A, half)
    inside_frac = inside[..., : w // 2].flatten(1).sum(1) / inside.flatten(1).sum(1)
    balanced = (inside_frac > 0.3) & (inside_frac < 0.7)
    assert balanced.sum() > n // 10
    assert (idx[balanced] == -1).all()


def test_no_shapes_is_invalid():
    blank = torch.ones(2, 3, 32, 32)
    b = torch.full((2, 3, 32, 32), -0.75)
    idx, dist = classify_palettes(blank, b)
    assert (idx == -1).all() and torch.isinf(dist).all()


def test_classify_palette_single(demo64):
    A, B, labels, _ = demo64
    k, d = classify_palette(A[0], B[0])
    assert k == int(labels[0]) and d < 1e-6
    k, d = classify_palette(A[0].numpy(), np.zeros((3, 64, 64), np.float32))
    assert k == -1 and d > 0.3
    with pytest.raises(ValueError):
        classify_palette(A[:2], B[:2])
    with pytest.raises(ValueError):
        classify_palettes(A[:2], B[:3])
    with pytest.raises(ValueError):
        classify_palettes(A[:1], B[:1, :, :32])


def test_one_A_pairs_with_many_outputs(demo64):
    A, B, labels, _ = demo64
    idx, _ = classify_palettes(A[:1], B[:1].expand(5, -1, -1, -1))
    assert (idx == labels[0]).all()
    idx, _ = classify_palettes(A[:3], B[[0, 0, 2, 1]], a_index=[0, 0, 2, 1])
    assert idx.tolist() == labels[[0, 0, 2, 1]].tolist()


# -------------------------------------------------------------------------------------- coverage
def recolour(B, labels, target):
    """B re-rendered in palette `target` (per image), using the known labels' fill region."""
    pal = torch.from_numpy(PALETTES.astype(np.float32)) / 127.5 - 1
    inside = (B == pal[labels, 1][:, :, None, None]).all(1, keepdim=True)
    return torch.where(inside, pal[target, 1][:, :, None, None], pal[target, 0][:, :, None, None])


def test_palette_coverage(demo64):
    A, B, labels, _ = demo64
    A, B, labels = A[:6], B[:6], labels[:6]
    k = 4
    same = torch.stack([B] * 5, dim=1)  # N x n x 3 x H x W: every output the true palette
    r = palette_coverage(A, same)
    assert r["coverage"] == pytest.approx(1 / k) and r["validity"] == 1.0
    assert r["histogram"] == (torch.bincount(labels, minlength=k) * 5).tolist()
    assert (r["n_inputs"], r["n_outputs"], r["n_palettes"]) == (6, 30, 4)

    every = torch.stack([recolour(B, labels, torch.full_like(labels, p)) for p in range(k)], 1)
    r = palette_coverage(A, every)
    assert r["coverage"] == 1.0 and r["validity"] == 1.0 and r["histogram"] == [6] * k

    # Per-input lists of different lengths; invalid outputs count against validity only.
    grey = torch.zeros(1, 3, 64, 64)
    outputs = [torch.cat([every[0, :2], grey]), every[1, :1], grey.expand(2, -1, -1, -1)]
    r = palette_coverage(A[:3], outputs)
    assert r["coverage"] == pytest.approx((2 / k + 1 / k + 0) / 3)
    assert r["validity"] == pytest.approx(3 / 6)
    assert r["histogram"] == [2, 1, 0, 0]
    # With 8 palettes available, a palette outside the first K is not valid for K = 2.
    r = palette_coverage(A[:1], every[:1], n_palettes=2)
    assert r["histogram"] == [1, 1] and r["validity"] == 0.5 and r["coverage"] == 1.0


# ------------------------------------------------------------------ the thresholds, on constructed images
def painted(B, labels, bg, fill):
    """B's two regions (known from its palette) painted per pixel: bg, fill N x 3 x H x W in [0, 1]."""
    pal = torch.from_numpy(PALETTES.astype(np.float32)) / 127.5 - 1  # as load_phase reads the files
    inside = (B == pal[labels, 1][:, :, None, None]).all(1, keepdim=True)
    return torch.where(inside, fill, bg) * 2 - 1


def towards_grey(colour, d):
    """Colours (N x 3 x ...) in [0, 1] moved by d along the red axis, towards 0.5: at distance d."""
    step = torch.zeros_like(colour)
    step[:, 0] = d * torch.sign(0.5 - colour[:, 0])
    return colour + step


def test_the_distance_and_purity_thresholds_are_the_documented_ones(demo64):
    # Valid iff both median colours lie within max_dist (0.3) of the palette's, and at least
    # min_purity (0.75) of each region's pixels within 1.5 * max_dist (0.45) of it.
    A, B, labels = (t[:24] for t in demo64[:3])
    pal = torch.from_numpy(PALETTES.astype(np.float32)) / 255
    bg = pal[labels, 0][:, :, None, None].expand_as(B)
    fill = pal[labels, 1][:, :, None, None].expand_as(B)
    assert torch.equal(classify_palettes(A, painted(B, labels, bg, fill))[0], labels)
    # both regions 0.35 away: outside 0.3, inside 0.45 (and valid once max_dist is 0.4)
    far = painted(B, labels, towards_grey(bg, 0.35), towards_grey(fill, 0.35))
    idx, dist = classify_palettes(A, far)
    assert (idx == -1).all() and torch.allclose(dist, torch.full_like(dist, 0.35), atol=1e-5)
    assert torch.equal(classify_palettes(A, far, max_dist=0.4)[0], labels)
    for b in (painted(B, labels, bg, towards_grey(fill, 0.35)), painted(B, labels, towards_grey(bg, 0.35), fill)):
        idx, dist = classify_palettes(A, b)  # one region out of reach is enough: the larger distance
        assert (idx == -1).all() and torch.allclose(dist, torch.full_like(dist, 0.35), atol=1e-5)
    # 40 % of one region's pixels 0.55 away (beyond 0.45, within 0.45 ** 0.5): the medians are exact,
    # the purity 0.6 < 0.75; 10 % away leaves 0.9
    g = torch.Generator().manual_seed(0)
    for share, want in ((0.4, torch.full_like(labels, -1)), (0.1, labels)):
        off = torch.rand(B[:, :1].shape, generator=g) < share
        for region in ("bg", "fill"):
            b = painted(B, labels, torch.where(off, towards_grey(bg, 0.55), bg) if region == "bg" else bg,
                        torch.where(off, towards_grey(fill, 0.55), fill) if region == "fill" else fill)
            idx, dist = classify_palettes(A, b)
            assert torch.equal(idx, want), (share, region)
            assert dist.max() < 1e-6


def test_outputs_without_contrast_are_invalid_whatever_max_dist():
    # With max_dist 0.7 a uniform grey is within reach of every palette's two colours (their midpoint
    # is ~0.5 grey, each half of a > 1.0 separation away); its regions differ by 0 < min_contrast 0.3.
    A = torch.ones(3, 3, 32, 32)
    A[:, :, 8, 8:24] = A[:, :, 23, 8:24] = A[:, :, 8:24, 8] = A[:, :, 8:24, 23] = -1  # a square outline
    grey = torch.zeros(3, 3, 32, 32)
    idx, dist = classify_palettes(A, grey, max_dist=0.7)
    assert (idx == -1).all() and (dist <= 0.7).all()
    assert (classify_palettes(A, grey, max_dist=0.7, min_contrast=0)[0] >= 0).all()  # contrast alone


def test_pixels_within_the_band_of_the_outline_are_ignored():
    # A square outline (rows and columns 8 and 23 of 32): its 14 x 14 inside has a 10 x 10 core more
    # than 2 px from the outline. A halo over the other 96 inside pixels in a colour 0.55 off the
    # fill is ignored with band 2 (the default); with band 0 it leaves a purity of 100 / 196 < 0.75.
    A = torch.ones(1, 3, 32, 32)
    A[:, :, 8, 8:24] = A[:, :, 23, 8:24] = A[:, :, 8:24, 8] = A[:, :, 8:24, 23] = -1
    bg, fill = torch.from_numpy(PALETTES[0].astype(np.float32)) / 255
    off = fill.clone()
    off[0] -= 0.55
    b = bg[:, None, None].repeat(1, 32, 32)
    b[:, 9:23, 9:23] = off[:, None, None]
    b[:, 11:21, 11:21] = fill[:, None, None]
    b = b[None] * 2 - 1
    assert classify_palettes(A, b)[0].tolist() == [0]
    assert classify_palettes(A, b, band=0)[0].tolist() == [-1]


def test_make_demo_into_a_dataset_of_other_images_is_refused_and_leaves_it_alone(tmp_path, capsys):
    # A user's dataset whose files are named as the demo's: make-demo overwrote 00000.png and 00001.png
    # with demo pairs and removed the rest as "stale", and wrote a palettes.json that made it demo data.
    from bicyclegan.engine.cli import main
    from bicyclegan.pipelines import DatasetError
    mine = tmp_path / "mine"
    (mine / "train").mkdir(parents=True)
    (mine / "val").mkdir()
    for split in ("train", "val"):
        for i in range(4):
            Image.new("RGB", (8, 4), (i, 0, 0)).save(mine / split / f"{i:05d}.png")
    before = {f: f.read_bytes() for f in mine.rglob("*") if f.is_file()}
    assert main(["make-demo", str(mine), "--size", "16", "--n_train", "2", "--n_test", "1"]) == 2
    err = capsys.readouterr().err
    assert "DatasetError: " in err and f"{mine / 'train'} holds files and no palettes.json: it is not demo data" in err
    assert {f: f.read_bytes() for f in mine.rglob("*") if f.is_file()} == before
    # val/ alone (n_val=0 clears it): refused too, naming it
    for f in (mine / "train").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"mine/val holds files and no palettes.json"):
        make_demo_dataset(mine, n_train=2, n_test=1, size=16)
    assert sorted(f.name for f in (mine / "val").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    # demo data written before is written again, and an empty folder is filled
    (tmp_path / "d" / "train").mkdir(parents=True)
    assert main(["make-demo", str(tmp_path / "d"), "--size", "16", "--n_train", "3", "--n_test", "1"]) == 0
    assert main(["make-demo", str(tmp_path / "d"), "--size", "16", "--n_train", "2", "--n_test", "1"]) == 0
    assert sorted(f.name for f in (tmp_path / "d" / "train").iterdir()) == ["00000.png", "00001.png", "palettes.json"]


def test_a_make_demo_interrupted_mid_split_is_run_again(tmp_path, monkeypatch):
    """A split the demo was interrupted writing (images, no palettes.json yet) is the demo's own: the
    same command run again finishes it, rather than being refused as a folder of other images."""
    import bicyclegan.pipelines.demo as demo
    render, calls = demo._render_pair, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render(*args)

    monkeypatch.setattr(demo, "_render_pair", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / "d", n_train=4, n_test=1, size=16)
    train = tmp_path / "d" / "train"
    assert sorted(f.name for f in train.iterdir()) == [".demo-writing", "00000.png", "00001.png"]
    monkeypatch.setattr(demo, "_render_pair", render)
    make_demo_dataset(tmp_path / "d", n_train=4, n_test=1, size=16)
    assert sorted(f.name for f in train.iterdir()) == [f"{i:05d}.png" for i in range(4)] + ["palettes.json"]
    assert sorted(f.name for f in (tmp_path / "d" / "test").iterdir()) == ["00000.png", "palettes.json"]


def test_a_make_demo_killed_rewriting_a_set_leaves_no_old_palettes_beside_new_images(tmp_path, monkeypatch):
    # make-demo --seed 0 over a --seed 1 set, killed (-9) in test/: part of its images were seed 0's, palettes.json
    # still seed 1's, and evaluate measured the palette metrics against the wrong labels. (The kill: the files left as
    # they are where the third test image is drawn.)
    import bicyclegan.pipelines.demo as demo
    from bicyclegan.pipelines import DatasetError, make_loader
    kw = {"n_train": 2, "n_test": 4, "size": 16}
    old, new = make_demo_dataset(tmp_path / "s1", seed=1, **kw), make_demo_dataset(tmp_path / "s0", seed=0, **kw)
    root = make_demo_dataset(tmp_path / "d", seed=1, **kw)
    render, calls = demo._render_pair, []

    def killed(*args):
        calls.append(1)
        if len(calls) == 2 + 3:
            raise SystemExit("killed")  # (nothing of the writer's cleanup is looked at: only the files)
        return render(*args)
    monkeypatch.setattr(demo, "_render_pair", killed)
    with pytest.raises(SystemExit):
        make_demo_dataset(root, seed=0, **kw)
    test = root / "test"
    assert (test / "00000.png").read_bytes() == (new / "test" / "00000.png").read_bytes()
    assert (test / "00003.png").read_bytes() == (old / "test" / "00003.png").read_bytes()
    assert sorted(f.name for f in test.iterdir() if not f.name.endswith(".tmp")) == [
        ".demo-writing", "00000.png", "00001.png", "00002.png", "00003.png"]  # no palettes.json
    with pytest.raises(DatasetError, match="test holds .demo-writing: make-demo was interrupted writing it"):
        make_loader(root, phase="test", batch_size=1, load_size=16, crop_size=16, num_workers=0)
    # the same command again: seed 0's set whole
    monkeypatch.setattr(demo, "_render_pair", render)
    make_demo_dataset(root, seed=0, **kw)
    for split in ("train", "test"):
        names = sorted(f.name for f in (new / split).iterdir())
        assert sorted(f.name for f in (root / split).iterdir()) == names
        assert all((root / split / n).read_bytes() == (new / split / n).read_bytes() for n in names)


def test_make_demo_of_the_same_data_again_leaves_the_set_readable_throughout(tmp_path, monkeypatch):
    # An array job's "make-demo, then train" into one folder: a job's train ran while another job wrote the same
    # images again, and must not find the split marked as being written, nor without its palettes.json.
    kw = {"n_train": 3, "n_test": 2, "size": 16}
    root = make_demo_dataset(tmp_path / "d", **kw)
    before = {f: f.read_bytes() for f in root.rglob("*") if f.is_file()}
    save, seen = Image.Image.save, []

    def save_and_look(self, f, *a, **k):
        save(self, f, *a, **k)
        split = Path(f).parent
        seen.append(sorted(g.name for g in split.iterdir() if not g.name.endswith(".tmp")))
    monkeypatch.setattr(Image.Image, "save", save_and_look)
    make_demo_dataset(root, **kw)
    assert seen == [["00000.png", "00001.png", "00002.png", "palettes.json"]] * 3 + [
        ["00000.png", "00001.png", "palettes.json"]] * 2
    assert {f: f.read_bytes() for f in root.rglob("*") if f.is_file()} == before


def test_make_demo_writers_of_one_folder_at_once_all_succeed_with_the_same_data(tmp_path, monkeypatch):
    # An array job's "prepare the data, then train": make-demo jobs into one folder at once shared one temp name per
    # image (.00002.png.tmp, renamed away by another writer) and the marker (removed by the first one done): 3 of 4
    # failed with a DatasetError. Here another writer runs whole while this one's image 2 is written but not yet in
    # place, and train/ holds a temp file of a killed writer and one of a writer still at work.
    want = make_demo_dataset(tmp_path / "alone", n_train=4, n_test=2, size=16)
    root = tmp_path / "d"
    (root / "train").mkdir(parents=True)
    dead = root / "train" / f".00003.png.{2 ** 22 + 17}-{writer_tag().split('-')[1]}-k1ll3d.tmp"  # (no such pid)
    alive = root / "train" / f".00001.png.{writer_tag()}-zz9.tmp"  # (a thread's of this process, still writing)
    dead.write_bytes(b"cut")
    alive.write_bytes(b"being written")
    save, others = Image.Image.save, []

    def save_then_another_writer(self, f, *a, **k):
        save(self, f, *a, **k)
        if Path(f).name.startswith(".00002.png.") and not others:
            others.append("writing")  # (once: the other writer's own image 2 starts no third)
            others[0] = make_demo_dataset(root, n_train=4, n_test=2, size=16)
    monkeypatch.setattr(Image.Image, "save", save_then_another_writer)
    assert make_demo_dataset(root, n_train=4, n_test=2, size=16) == root
    assert others == [root]
    for split in ("train", "test"):
        names = sorted(f.name for f in (want / split).iterdir())
        assert sorted(f.name for f in (root / split).iterdir() if f != alive) == names  # no marker, no temp file
        assert all((root / split / n).read_bytes() == (want / split / n).read_bytes() for n in names)
    assert alive.read_bytes() == b"being written"


@pytest.mark.parametrize("at", ["image", "palettes.json"])
def test_a_make_demo_the_disk_cannot_take_is_one_line_and_leaves_no_cut_file(tmp_path, monkeypatch, capsys, at):
    # A full disk: a traceback (make-demo, and train without --dataroot), the cut temp file left behind.
    import errno

    from bicyclegan.engine.cli import main
    save, write_text = Image.Image.save, Path.write_text

    def full(f, *a, **k):  # a part written, then the disk is full
        Path(f).write_bytes(b"\x89PNG cut")
        raise OSError(errno.ENOSPC, "No space left on device")
    def temp_of(f, name):  # (a temp file named for its writer: .<name>.<pid>-<host>-<letters>.tmp)
        return Path(f).name.startswith(f".{name}.{writer_tag()}-") and Path(f).name.endswith(".tmp")
    if at == "image":
        monkeypatch.setattr(Image.Image, "save", lambda self, f, *a, **k: full(f) if temp_of(f, "00002.png")
                            else save(self, f, *a, **k))
    else:
        monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: full(self) if temp_of(self, "palettes.json")
                            else write_text(self, *a, **k))
    root = tmp_path / "d"
    assert main(["make-demo", str(root), "--size", "16", "--n_train", "4", "--n_test", "1"]) == 2
    err = capsys.readouterr().err
    cut = re.escape(str(root / "train" / f".{'00002.png' if at == 'image' else 'palettes.json'}.{writer_tag()}-"))
    assert re.fullmatch(f"bicyclegan make-demo: DatasetError: cannot write the demo dataset into "
                        f"{re.escape(str(root))}: No space left on device \\({cut}\\w+\\.tmp\\); run the command "
                        f"again once it can be written\n", err), err
    left = sorted(f.name for f in (root / "train").iterdir())
    assert left == [".demo-writing", "00000.png", "00001.png"] + (["00002.png", "00003.png"] if at != "image" else [])
    monkeypatch.undo()  # the disk has room again: the same command makes the whole set
    assert main(["make-demo", str(root), "--size", "16", "--n_train", "4", "--n_test", "1"]) == 0
    assert sorted(f.name for f in (root / "train").iterdir()) == [f"{i:05d}.png" for i in range(4)] + ["palettes.json"]
