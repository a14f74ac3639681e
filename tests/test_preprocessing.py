"""Preprocessing checked against what it must produce, on images built so that any other behaviour
shows: pixel values that encode their own coordinates (x, y) and which half they come from.

Expected values are computed here by hand (numpy slicing, the luma formula, sizes worked out in
the comments) or by calling PIL directly for the reference's bicubic resize; the random draw of a
sample is taken from its generator (sharding.sample_rng, the input of the crop) and turned into an
offset here, never by the loader's helpers.
"""
import numpy as np
import pytest
import torch
from PIL import Image
from test_pipelines import BACKENDS, aligned, noise

from bicyclegan.pipelines import make_loader, sharding

A_TAG, B_TAG = 10, 200


def coords(h, w, tag):
    """Channel 0 = x, channel 1 = y, channel 2 = tag (which half)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.full((h, w), tag)], -1).astype(np.uint8)


def pixels(t):
    """A C x H x W tensor in [-1, 1] back to integer pixel values, H x W x C."""
    return np.rint((t.numpy() + 1) * 127.5).astype(np.int64).transpose(1, 2, 0)


def run(root, backend, **kw):
    kw = {"batch_size": 1, "num_workers": 0, "shuffle": False, "drop_last": False, **kw}
    return list(make_loader(root, backend=backend, **kw))


@pytest.fixture(scope="module")
def coord_set(tmp_path_factory):
    """8 aligned files of two 30 x 34 coordinate halves (tags 10 | 200), for train and test."""
    root = tmp_path_factory.mktemp("coords")
    for phase in ("train", "test"):
        aligned(root / phase, [(coords(30, 34, A_TAG), coords(30, 34, B_TAG))] * 8)
    return root


def window(top, left, h, w, flip, tag, image=(30, 34)):
    """What a crop of coords(*image) at (top, left) of size (h, w), maybe mirrored, must hold."""
    out = coords(*image, tag)[top:top + h, left:left + w].astype(np.int64)
    return out[:, ::-1] if flip else out


def test_torch_crop_offset_and_flip_follow_the_draw(coord_set):
    # crop 24 x 27 of 30 x 34: dy = 6, dx = 7; offsets floor(u * (d + 1)), flip when u < 0.5
    flips = set()
    for epoch in range(3):
        loader = make_loader(coord_set, backend="torch", batch_size=1, num_workers=0, preprocess="crop",
                             load_size=30, crop_size=(24, 27), shuffle=False, seed=3)
        loader.set_epoch(epoch)
        for index, b in enumerate(loader):
            u = sharding.sample_rng(3, epoch, index).random(3)
            top, left, flip = int(u[0] * 7), int(u[1] * 8), bool(u[2] < 0.5)
            flips.add(flip)
            assert np.array_equal(pixels(b["A"][0]), window(top, left, 24, 27, flip, A_TAG))
            assert np.array_equal(pixels(b["B"][0]), window(top, left, 24, 27, flip, B_TAG))
    assert flips == {True, False}


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_is_horizontal_and_crops_are_windows(coord_set, backend):
    """Every output is a window of its half, mirrored left-right or not, never upside down; A and B
    share the window; the offsets spread over the range they may take."""
    tops, lefts, flips = set(), set(), set()
    for seed in range(3):
        for b in run(coord_set, backend, preprocess="crop", load_size=30, crop_size=(24, 27), seed=seed):
            a = pixels(b["A"][0])
            flip = bool(a[0, 0, 0] > a[0, -1, 0])  # x decreasing along a row: mirrored
            left, top = int(a[0, -1 if flip else 0, 0]), int(a[0, 0, 1])
            assert 0 <= top <= 6 and 0 <= left <= 7
            assert np.array_equal(a, window(top, left, 24, 27, flip, A_TAG))
            assert np.array_equal(pixels(b["B"][0]), window(top, left, 24, 27, flip, B_TAG))
            tops.add(top), lefts.add(left), flips.add(flip)
    assert flips == {True, False} and len(tops) >= 4 and len(lefts) >= 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_flip_when_disabled(coord_set, backend):
    for b in run(coord_set, backend, preprocess="crop", load_size=30, crop_size=(24, 27), flip=False):
        a = pixels(b["A"][0])
        assert a[0, 0, 0] < a[0, -1, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_centre_crop_at_test_time(coord_set, backend):
    # 30 x 34 -> 23 x 27: dy = 7, dx = 7, so the window starts at (3, 3); never mirrored
    for b in run(coord_set, backend, phase="test", preprocess="crop", load_size=30, crop_size=(23, 27)):
        assert np.array_equal(pixels(b["A"][0]), window(3, 3, 23, 27, False, A_TAG))
        assert np.array_equal(pixels(b["B"][0]), window(3, 3, 23, 27, False, B_TAG))


def pil_resize(arr, hw, method):
    return np.asarray(Image.fromarray(arr).resize((hw[1], hw[0]), method)).astype(np.int64)


FILTERS = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST, "box": Image.BOX, "lanczos": Image.LANCZOS}


@pytest.fixture(scope="module")
def noise_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(11)
    a, b = noise(rng, 18, 22), noise(rng, 18, 22)
    aligned(root / "test", [(a, b)])
    return root, a, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [(40, 50), (13, 17)])  # up, as the reference (256 -> 286), and down
def test_resize_is_bicubic_of_each_half(noise_pair, backend, size):
    root, a, b = noise_pair
    (out,) = run(root, backend, phase="test", preprocess="resize_and_crop", load_size=size, crop_size=size)
    for key, half in (("A", a), ("B", b)):
        got, bicubic = pixels(out[key][0]), pil_resize(half, size, Image.BICUBIC)
        others = {name: np.abs(got - pil_resize(half, size, f)).mean() for name, f in FILTERS.items()}
        if backend == "torch":
            assert np.array_equal(got, bicubic)  # split at w/2 first: no column of the other half leaks in
        else:  # DALI's cubic filter rounds differently; it must still be nearest to bicubic by far
            assert np.abs(got - bicubic).mean() < 1.0
        assert min(others.values()) > 3 * max(np.abs(got - bicubic).mean(), 1.0), others


@pytest.mark.parametrize("backend", BACKENDS)
def test_btoa_swaps_halves_and_their_channel_counts(coord_set, backend):
    kw = {"phase": "test", "preprocess": "crop", "load_size": 30, "crop_size": (30, 34)}
    (ab,) = run(coord_set, backend, max_dataset_size=1, **kw)
    assert pixels(ab["A"][0])[0, 0, 2] == A_TAG and pixels(ab["B"][0])[0, 0, 2] == B_TAG
    (ba,) = run(coord_set, backend, max_dataset_size=1, direction="BtoA", input_nc=1, output_nc=3, **kw)
    # A is now the B half in grey (one channel), B the A half in colour
    luma = coords(30, 34, B_TAG) @ np.array([0.299, 0.587, 0.114])
    assert ba["A"].shape == (1, 1, 30, 34) and ba["B"].shape == (1, 3, 30, 34)
    assert np.abs(pixels(ba["A"][0])[..., 0] - luma).max() <= 1.0
    assert np.array_equal(pixels(ba["B"][0]), coords(30, 34, A_TAG).astype(np.int64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_grayscale_is_itu_601_luma(tmp_path, backend):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [40, 80, 160], [0, 0, 0]])
    half = np.repeat(np.repeat(colours[None].astype(np.uint8), 8, 0), 4, 1)  # 8 x 24: 4 columns a colour
    aligned(tmp_path / "test", [(half, half)])
    (b,) = run(tmp_path, backend, phase="test", preprocess="none", load_size=8, crop_size=8, input_nc=1)
    got = pixels(b["A"][0])[0, ::4, 0]
    # 0.299 R + 0.587 G + 0.114 B: 76.2, 149.7, 29.1, 255, 77.2, 0 (not the mean, not one channel)
    assert np.abs(got - np.array([76.245, 149.685, 29.07, 255, 77.16, 0])).max() <= 1.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode, size", [
    ("resize_and_crop", (24, 20)),
    ("crop", (24, 20)),
    ("scale_width", (33, 56)),           # W = load W = 56, H = int(56 * 30 / 50) = 33
    ("scale_width_and_crop", (24, 20)),
    ("none", (32, 48)),                  # round(30 / 4) = 8 (7.5 to even), round(50 / 4) = 12 (12.5 to even)
])
def test_output_size_of_each_mode(tmp_path, backend, mode, size):
    rng = np.random.default_rng(12)
    a, b = noise(rng, 30, 50), noise(rng, 30, 50)
    aligned(tmp_path / "test", [(a, b)])
    (out,) = run(tmp_path, backend, phase="test", preprocess=mode, load_size=(40, 56), crop_size=(24, 20))
    assert out["A"].shape == out["B"].shape == (1, 3, *size)
    if mode in ("scale_width", "none"):  # the whole image, resized bicubically to that size
        expect, got = pil_resize(a, size, Image.BICUBIC), pixels(out["A"][0])
        assert (np.array_equal(got, expect) if backend == "torch" else np.abs(got - expect).mean() < 1.0)


def test_resized_crop_positions_are_in_resized_pixels(tmp_path):
    """resize_and_crop crops the resized image: a 30 x 34 half resized to 40 x 44 and cropped to the
    top-left corner (a draw with u = 0) is the PIL bicubic resize's corner."""
    a = coords(30, 34, A_TAG)
    aligned(tmp_path / "train", [(a, a)])
    loader = make_loader(tmp_path, backend="torch", batch_size=1, num_workers=0, load_size=(40, 44),
                         crop_size=(31, 35), flip=False, seed=0)
    u = sharding.sample_rng(0, 0, 0).random(3)
    top, left = int(u[0] * 10), int(u[1] * 10)  # dy = 40 - 31 = 9, dx = 44 - 35 = 9
    (b,) = list(loader)
    expect = pil_resize(a, (40, 44), Image.BICUBIC)[top:top + 31, left:left + 35]
    assert np.array_equal(pixels(b["A"][0]), expect)
    assert torch.equal(b["A"], b["B"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_offsets_reach_both_ends_after_a_resize(coord_set, backend):
    """resize_and_crop to the image's own size (a resize that keeps every pixel), then a crop one
    pixel smaller: offsets 0 and 1 are the only ones possible, and both must occur."""
    seen = set()
    for seed in range(3):
        for b in run(coord_set, backend, load_size=(30, 34), crop_size=(29, 33), flip=False, seed=seed):
            a = pixels(b["A"][0])
            top, left = int(a[0, 0, 1]), int(a[0, 0, 0])
            assert np.array_equal(a, window(top, left, 29, 33, False, A_TAG))
            seen.add((top, left))
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_offsets_of_a_tall_image(tmp_path, backend):
    """34 x 20 (taller than wide) cropped to 30 x 16: dy = dx = 4, each from its own dimension
    (H with H, W with W: mixing them up gives a negative range here)."""
    aligned(tmp_path / "train", [(coords(34, 20, A_TAG), coords(34, 20, B_TAG))] * 8)
    seen = set()
    for b in run(tmp_path, backend, preprocess="crop", load_size=34, crop_size=(30, 16), flip=False, seed=1):
        a = pixels(b["A"][0])
        top, left = int(a[0, 0, 1]), int(a[0, 0, 0])
        assert 0 <= top <= 4 and 0 <= left <= 4
        assert np.array_equal(a, window(top, left, 30, 16, False, A_TAG, image=(34, 20)))
        seen.add((top, left))
    assert len(seen) > 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank, world_size", [(0, 1), (0, 2), (1, 2)])
def test_eval_epochs_repeat_with_a_partial_last_batch(coord_set, backend, rank, world_size):
    """Evaluation (no shuffle, centre crops): every pass reads this rank's files in the same order,
    from its first, whatever the last batch of the previous pass held (7 files, batches of 2)."""
    loader = make_loader(coord_set, backend=backend, phase="test", batch_size=2, num_workers=0,
                         max_dataset_size=7, load_size=30, crop_size=(24, 28), rank=rank, world_size=world_size)
    passes = [[p for b in loader for p in b["paths"]] for _ in range(3)]
    files = sorted(str(coord_set / f"test/{i:03d}.png") for i in range(7))
    mine = files[rank * 7 // world_size:(rank + 1) * 7 // world_size]  # contiguous shards
    assert passes[0] == passes[1] == passes[2] == mine


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_offsets_and_flips_are_uniform(tmp_path, backend):
    """200 draws of a 3 x 4 crop of 5 x 6 halves: offsets 0, 1, 2 in each direction a third of the
    time each, a flip half of the time (bands of about 2.5 standard deviations; the seeds are fixed)."""
    aligned(tmp_path / "train", [(coords(5, 6, A_TAG), coords(5, 6, B_TAG))] * 40)
    tops, lefts, flips = [], [], []
    for seed in range(5):
        (b,) = run(tmp_path, backend, preprocess="crop", load_size=5, crop_size=(3, 4), batch_size=40, seed=seed)
        for a in b["A"]:
            a = pixels(a)
            flip = bool(a[0, 0, 0] > a[0, -1, 0])
            tops.append(int(a[0, 0, 1])), lefts.append(int(a[0, -1 if flip else 0, 0])), flips.append(flip)
    for offsets in (tops, lefts):
        assert all(0.24 < offsets.count(k) / 200 < 0.43 for k in (0, 1, 2)), np.bincount(offsets)
    assert 0.4 < np.mean(flips) < 0.6
