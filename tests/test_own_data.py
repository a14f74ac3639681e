"""A researcher's own data through the whole workflow (train, then sample, evaluate, interpolate,
export): the options a run was trained with, stored in its checkpoint, honoured by every later
command. Images whose content tells A from B in numbers: A a constant grey, B a colour gradient."""
import re

import numpy as np
import pytest
from PIL import Image
from tiny import tiny_cfg

from bicyclegan.engine import ConfigError, OutputError, evaluate, sample
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import DatasetError

GREY = 51  # every A pixel


def a_image(h, w):
    return np.full((h, w, 3), GREY, np.uint8)


def b_image(h, w, k):
    """A red gradient along x, green 200, blue 10 k (k tells the files apart)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w).round().astype(np.uint8)[None]
    img[..., 1], img[..., 2] = 200, 10 * k
    return img


def ab_folders(root, splits, h=32, w=32):
    """root/<split>/A and root/<split>/B of n pairs each; splits: {split: (n, with_B)}."""
    for split, (n, with_b) in splits.items():
        for side in "AB" if with_b else "A":
            (root / split / side).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(a_image(h, w)).save(root / split / "A" / f"{k:02d}.png")
            if with_b:
                Image.fromarray(b_image(h, w, k)).save(root / split / "B" / f"{k:02d}.png")
    return root


@pytest.fixture
def inputs_only_val(tmp_path):
    """Training pairs, and a val/ split of inputs without ground truth (val/A, no val/B)."""
    return ab_folders(tmp_path / "data", {"train": (4, True), "val": (3, False)})


def test_a_held_out_split_of_inputs_alone_gives_grids_without_ground_truth(tmp_path, inputs_only_val):
    # The trainer took val/ for its grids and stopped with a KeyError ('B') traceback before step 1.
    out = tmp_path / "run"
    Trainer(tiny_cfg(out, inputs_only_val, max_steps=1, n_samples=2), progress=False).train()
    grid = Image.open(out / "samples" / "latest.png")
    # 32 px tiles shown at 64 px, 2 px apart: input + 2 random z = 3 columns (no ground truth, no encoded)
    assert grid.width == 3 * (64 + 2) + 2
    rgb = np.asarray(grid.convert("RGB"))
    assert (rgb[-2 - 32, 2 + 32] == GREY).all()  # the last row's input: val/A's grey


def test_metrics_that_need_ground_truth_are_refused_on_a_split_of_inputs_alone(tmp_path, inputs_only_val):
    # val/A without val/B was detected as inputs alone only when the first batch was measured: after the
    # metric networks loaded (a missing weights file named first), and in training at the first evaluation.
    out = tmp_path / "run"
    Trainer(tiny_cfg(out, inputs_only_val, max_steps=1), progress=False).train()
    with pytest.raises(DatasetError, match="no B images"):
        evaluate(out / "checkpoints" / "latest.pt", metrics="fid", num=2, n_samples=2, device="cpu",
                 fid_weights=tmp_path / "no-such-weights.pth")
    with pytest.raises(DatasetError, match=r"--eval_every 1.*no B images"):
        Trainer(tiny_cfg(tmp_path / "run2", inputs_only_val, max_steps=1, eval_every=1, eval_metrics="fid",
                         eval_num=2, fid_weights=str(tmp_path / "no-such-weights.pth")), progress=False)
    with pytest.raises(ConfigError, match=r"keep_best=encoded_l1 .*holds inputs alone"):  # (it kept no best.pt)
        Trainer(tiny_cfg(tmp_path / "run3", inputs_only_val, max_steps=1, eval_every=1, keep_best="encoded_l1"),
                progress=False)
    assert not (tmp_path / "run2").exists() and not (tmp_path / "run3").exists()  # refused before any folder


def test_inference_on_a_dataset_of_a_training_split_alone_names_the_split_to_choose(tmp_path):
    # A run on data without val/ or test/ (its grids and evaluations read train/): sample, as the README's
    # next step, read test/ by default and said only "missing folder .../test (looked for images or an A/
    # folder in it and in ...)", not which splits there are or how to choose one.
    data = ab_folders(tmp_path / "data", {"train": (4, True)})
    out = tmp_path / "run"
    Trainer(tiny_cfg(out, data, max_steps=1), progress=False).train()
    with pytest.raises(DatasetError, match=re.escape(f"missing folder {data / 'test'}: {data} holds the splits "
                                                     "train; choose one (--phase)")):
        sample(out / "checkpoints" / "latest.pt", out=tmp_path / "s", device="cpu", progress=False)
    done = sample(out / "checkpoints" / "latest.pt", phase="train", out=tmp_path / "s", num=1, n_samples=1,
                  device="cpu", progress=False)
    assert (done / "images" / "00_ground_truth.png").is_file()


def test_a_run_folder_among_the_datasets_images_is_refused_before_it_is_made(tmp_path):
    # --out inside train/ (or val/) trained, and wrote its sample grids among the images: the resume
    # then refused "3 batches per epoch, the data now gives 4", and a new run trained on the grids.
    data = ab_folders(tmp_path / "data", {"train": (4, True), "val": (2, True)})
    for out, folder in ((data / "train" / "A" / "run", data / "train" / "A"),
                        (data / "val" / "runs" / "r", data / "val")):
        with pytest.raises(OutputError, match=re.escape(f"--out {out} lies inside {folder}, whose images")):
            Trainer(tiny_cfg(out, data, max_steps=1), progress=False)
        assert not out.exists()
    assert not (data / "val" / "runs").exists()  # refused before any folder was made
    plain = tmp_path / "pairs"  # a folder of aligned pairs given itself: the run folder may not be in it
    plain.mkdir()
    Image.fromarray(np.concatenate([a_image(32, 32), b_image(32, 32, 0)], axis=1)).save(plain / "0.png")
    with pytest.raises(OutputError, match=f"lies inside {plain}, whose images"):
        Trainer(tiny_cfg(plain / "run", plain, max_steps=1), progress=False)
    Trainer(tiny_cfg(data / "run", data, max_steps=1), progress=False)  # beside the splits: nothing is read there


@pytest.mark.parametrize("side", ["A", "B"])
def test_one_half_of_a_and_b_folders_given_as_the_dataset_is_refused(tmp_path, side):
    # data/train/A read alone was a folder of aligned files: each A image split into a "pair" of its halves,
    # trained on without a word (its 32 px images have even widths).
    data = ab_folders(tmp_path / "data", {"train": (4, True)})
    with pytest.raises(DatasetError, match=re.escape(f"--dataroot {data / 'train' / side} is the {side}/ folder of A/ "
                                                     f"and B/ folders") + r".*give the folder that holds both, "
                       + re.escape(str(data / "train"))):
        Trainer(tiny_cfg(tmp_path / "run", data / "train" / side, max_steps=1), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_dataroot_training_cannot_read_is_named_as_what_it_is(tmp_path):
    data = ab_folders(tmp_path / "data", {"test": (2, True)})
    # a file said "does not exist"; a dataset without train/ said "choose one (--phase)", an option train lacks
    one = data / "test" / "A" / "00.png"
    with pytest.raises(DatasetError, match=re.escape(f"--dataroot {one} is a file; give the dataset's folder")):
        Trainer(tiny_cfg(tmp_path / "run", one, max_steps=1), progress=False)
    with pytest.raises(DatasetError, match=re.escape(f"missing folder {data / 'train'}: training reads the pairs in "
                                                     f"train/ of --dataroot, and {data} holds only test/; give")) as e:
        Trainer(tiny_cfg(tmp_path / "run", data, max_steps=1), progress=False)
    assert "--phase" not in str(e.value)


def test_too_few_pairs_for_a_bicycle_batch_get_advice_bicycle_can_take(tmp_path):
    # One pair: the loader said "use a batch_size of at most 1", and batch 1 was then refused by
    # bicycle ("must be even ... use 2"): the user went back and forth between the two messages.
    one = ab_folders(tmp_path / "one", {"train": (1, True)})
    with pytest.raises(DatasetError, match=r"^1 sample fills no batch of batch_size=2 \(.*\); variant=bicycle needs "
                                           r"a batch of at least 2 .* so at least 2 samples: add pairs or use "
                                           r"another --variant"):
        Trainer(tiny_cfg(tmp_path / "run", one, batch_size=2, max_steps=1), progress=False)
    # three pairs and batch 4: the largest batch bicycle can take is 2, not 3
    three = ab_folders(tmp_path / "three", {"train": (3, True)})
    with pytest.raises(DatasetError, match=r"; use an even batch_size \(variant=bicycle\) of at most 2$"):
        Trainer(tiny_cfg(tmp_path / "run", three, batch_size=4, max_steps=1), progress=False)
    Trainer(tiny_cfg(tmp_path / "run", three, batch_size=2, max_steps=1), progress=False)
    # the other variants take any batch: the loader's own advice stands
    with pytest.raises(DatasetError, match=r"; use a batch_size of at most 3$"):
        Trainer(tiny_cfg(tmp_path / "run2", three, batch_size=4, variant="cvae", max_steps=1), progress=False)
    assert not (tmp_path / "run2").exists()
