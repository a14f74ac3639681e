"""The size rules of bicyclegan.pipelines.spec at their boundaries, against known answers and the
reference's own formulas (Python's round for preprocess='none', int(w * h / W) for scale_width)."""
import dataclasses

import numpy as np
import pytest
from test_pipelines import aligned, noise

from bicyclegan.pipelines import DatasetError, make_loader
from bicyclegan.pipelines.spec import as_hw, round_to_multiple_of_4


def test_round_to_multiple_of_4_is_the_references_round():
    for x in range(0, 64):
        assert round_to_multiple_of_4(x) == int(round(x / 4) * 4), x  # halves go to the even multiple


@pytest.mark.parametrize("value, expect", [(1, (1, 1)), (7, (7, 7)), ((2, 3), (2, 3)), ([5, 1], (5, 1))])
def test_sizes_as_height_width(value, expect):
    assert as_hw(value, "crop_size") == expect


@pytest.mark.parametrize("value", [0, -1, 1.5, True, None, (2,), (2, 3, 4), (0, 3), (3, 0), (2.0, 3), (2, True),
                                   "3", "33"])
def test_sizes_that_are_not_positive_int_pairs(value):
    with pytest.raises(ValueError) as info:
        as_hw(value, "crop_size")
    assert str(info.value) == f"crop_size must be a positive int or an (H, W) pair of them, got {value!r}"


def one_file(root, h, w, phase="test"):
    aligned(root / phase, [(noise(np.random.default_rng(0), h, w), noise(np.random.default_rng(1), h, w))])


def load(root, **kw):
    return make_loader(root, phase="test", batch_size=1, num_workers=0, backend="torch", **kw)


@pytest.mark.parametrize("load_size, crop_size", [((40, 30), (32, 32)), ((30, 40), (32, 32)),
                                                  ((40, 30), (20, 32)), ((30, 40), (32, 20))])
def test_load_size_smaller_than_crop_in_one_dimension(tmp_path, load_size, crop_size):
    one_file(tmp_path, 16, 16)
    with pytest.raises(ValueError) as info:
        load(tmp_path, load_size=load_size, crop_size=crop_size)
    assert str(info.value) == f"load_size {load_size} must be at least crop_size {crop_size}"


@pytest.mark.parametrize("size", [(40, 30), (30, 40)])
def test_load_size_equal_to_crop_size(tmp_path, size):
    one_file(tmp_path, 16, 16)
    (b,) = load(tmp_path, load_size=size, crop_size=size)
    assert b["A"].shape == (1, 3, *size)


@pytest.mark.parametrize("crop_size", [(20, 10), (10, 20)])
def test_crop_larger_than_the_image_in_one_dimension(tmp_path, crop_size):
    one_file(tmp_path, 16, 16)
    ch, cw = crop_size
    # crop resizes nothing: the file's own size is what is too small ("16x16 after resize" said a step it has not)
    with pytest.raises(DatasetError, match=f"(?m)size 16x16 \\(W x H\\) is smaller than crop_size {cw}x{ch} "
                                           f"\\(preprocess='crop' crops without resizing\\)$"):
        load(tmp_path, preprocess="crop", load_size=16, crop_size=crop_size)
    (b,) = load(tmp_path, preprocess="crop", load_size=16, crop_size=16)
    assert b["A"].shape == (1, 3, 16, 16)


def test_a_crop_larger_than_the_image_scaled_to_width_says_the_scaled_size(tmp_path):
    one_file(tmp_path, 8, 16)  # halves 16 wide, 8 high: scaled to width 32, 16 high
    with pytest.raises(DatasetError, match=r"(?m)size 16x8 \(W x H, 32x16 after resize\) is smaller than "
                                           r"crop_size 20x20$"):
        load(tmp_path, preprocess="scale_width_and_crop", load_size=32, crop_size=20)
    (b,) = load(tmp_path, preprocess="scale_width_and_crop", load_size=32, crop_size=16)
    assert b["A"].shape == (1, 3, 16, 16)


def test_scale_width_down_to_one_row_and_to_none(tmp_path):
    # one row 50 wide -> 56 wide: int(56 * 1 / 50) = 1 row; one row 100 wide -> int(0.56) = 0 rows
    one_file(tmp_path / "a", 1, 50)
    (b,) = load(tmp_path / "a", preprocess="scale_width", load_size=56, crop_size=8)
    assert b["A"].shape == (1, 3, 1, 56)
    one_file(tmp_path / "b", 1, 100)
    with pytest.raises(DatasetError, match="size 100x1 resizes to nothing under preprocess='scale_width'"):
        load(tmp_path / "b", preprocess="scale_width", load_size=56, crop_size=8)


def test_scale_width_to_one_column(tmp_path):
    # load W = 1: every image becomes 1 wide, int(1 * 4 / 4) = 1 high
    one_file(tmp_path, 4, 4)
    (b,) = load(tmp_path, preprocess="scale_width", load_size=(8, 1), crop_size=1)
    assert b["A"].shape == (1, 3, 1, 1)


@pytest.mark.parametrize("h, w", [(1, 6), (6, 2)])
def test_none_rounds_sizes_to_multiples_of_4(tmp_path, h, w):
    # 30 x 42 -> round(7.5) = 8, round(10.5) = 10 (both halves to even): 32 x 40
    one_file(tmp_path / "a", 30, 42)
    (b,) = load(tmp_path / "a", preprocess="none", load_size=8, crop_size=8)
    assert b["A"].shape == (1, 3, 32, 40)
    # one side of 1 or 2 pixels rounds to 0 (round(0.25) = round(0.5) = 0): nothing left
    one_file(tmp_path / "b", h, w)
    with pytest.raises(DatasetError, match=f"size {w}x{h} resizes to nothing under preprocess='none'"):
        load(tmp_path / "b", preprocess="none", load_size=8, crop_size=8)


def test_the_spec_is_immutable(tmp_path):
    """Workers and DALI graphs hold the loader's spec: nothing may change it under them."""
    one_file(tmp_path, 16, 16)
    spec = load(tmp_path, load_size=16, crop_size=16).spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.crop = (8, 8)
