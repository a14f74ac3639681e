"""bicyclegan.pipelines on bad input: clear DatasetErrors naming files, or counted skips."""
import collections
import gc
import io
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipelines import BACKENDS, aligned, needs_dali, noise, write

from bicyclegan.pipelines import DatasetError, cpu_loader, make_loader


def load(root, backend="torch", **kw):
    kw = {"batch_size": 2, "load_size": 32, "crop_size": 32, "num_workers": 0, **kw}
    return make_loader(root, backend=backend, **kw)


def good_set(root, n=5, h=16, w=32):
    rng = np.random.default_rng(0)
    return aligned(root / "train", [(noise(rng, h, w // 2), noise(rng, h, w // 2)) for _ in range(n)])


def broken_png():
    """A PNG with one byte of its compressed data flipped (its IDAT CRC no longer matches)."""
    buf = io.BytesIO()
    Image.fromarray(noise(np.random.default_rng(1), 16, 32)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[data.index(b"IDAT") + 10] ^= 0xFF
    return bytes(data)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match=f"^dataset folder {tmp_path / 'nowhere'} does not exist$"):
        load(tmp_path / "nowhere")
    (tmp_path / "an.png").write_bytes(b"")  # an image given for the folder: it exists (it was "does not exist")
    with pytest.raises(DatasetError, match=f"^dataset folder {tmp_path / 'an.png'} is a file, not a folder$"):
        load(tmp_path / "an.png")
    (tmp_path / "an.png").unlink()
    with pytest.raises(DatasetError, match="missing folder .*train"):
        load(tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train/notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="train holds no images"):
        load(tmp_path)
    (tmp_path / "val/A").mkdir(parents=True)
    with pytest.raises(DatasetError, match="B"):
        load(tmp_path, phase="val", layout="ab_folders")


def test_a_split_make_demo_was_killed_writing_is_refused_naming_it(tmp_path):
    # make-demo killed (kill -9) while it wrote train/ leaves its marker there beside the images written so far (part
    # another seed's, or too few): train read the rest as the whole set without a word, evaluate palettes.json's old
    # labels against new images.
    from bicyclegan.pipelines.files import find_layout
    good_set(tmp_path, n=4)
    (tmp_path / "train" / ".demo-writing").touch()
    said = (f"^{re.escape(str(tmp_path / 'train'))} holds .demo-writing: make-demo was interrupted writing it "
            r"\(or is writing it now\), so its images are not the whole demo data; run the make-demo command again$")
    with pytest.raises(DatasetError, match=said):
        load(tmp_path)
    with pytest.raises(DatasetError, match=said):  # (train's own check of --dataroot, before its run folder is made)
        find_layout(tmp_path, "train")
    with pytest.raises(DatasetError, match=said):  # the split given as the folder itself, as inference commands may
        load(tmp_path / "train", layout="single")
    (tmp_path / "train" / ".demo-writing").unlink()  # written whole: read
    assert len(load(tmp_path).samples) == 4


@pytest.mark.parametrize("where", ["train", "train/more"])
def test_a_folder_that_cannot_be_read_is_said_not_taken_for_one_without_images(tmp_path, monkeypatch, where):
    # os.walk skips a folder it cannot list: an unreadable split "held no images", an unreadable subfolder's images
    # were left out without a word
    good_set(tmp_path)
    (tmp_path / "train" / "more").mkdir()
    blocked, real = str(tmp_path / where), os.scandir

    def scandir(path="."):
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DatasetError, match=f"^cannot read folder {re.escape(blocked)}: Permission denied$"):
        load(tmp_path)


def test_a_missing_split_beside_others_is_named_even_with_an_image_at_the_root(tmp_path):
    # preview.jpg at the root made it a plain folder, walked whole: train/ and val/ were read as
    # "test" (an evaluation on training images, reported as the test split).
    rng = np.random.default_rng(0)
    for rel in ("preview.png", "train/0.png", "val/0.png"):
        write(tmp_path / rel, noise(rng, 8, 16))
    with pytest.raises(DatasetError, match=f"missing folder {tmp_path / 'test'}: {tmp_path} holds the splits "
                                           r"train, val; choose one \(--phase\)"):
        load(tmp_path, phase="test")
    assert [Path(p).name for b in load(tmp_path, phase="val") for p in b["paths"]] == ["0.png"]
    plain = tmp_path / "photos"  # no split folders: the root's images (and its subfolders') are the inputs
    write(plain / "a.png", noise(rng, 8, 16))
    write(plain / "2024/b.png", noise(rng, 8, 16))
    assert sorted(Path(p).name for b in load(plain, phase="test") for p in b["paths"]) == ["a.png", "b.png"]



def test_files_come_in_the_references_order_extension_included(tmp_path):
    # The reference sorts its full paths: " " (32) and "-" (45) sort before "." (46), "." before "/" (47).
    # By name without extension "a.png" came first of its four, and --max_dataset_size 2 kept other files.
    rng = np.random.default_rng(0)
    names = ["a.png", "a-b.png", "a b.png", "a.jpg", "a/c.png", "a_c.png"]
    for name in names:
        write(tmp_path / "test" / name, noise(rng, 8, 16))
    want = ["a b.png", "a-b.png", "a.jpg", "a.png", "a/c.png", "a_c.png"]  # by hand, from the codes above
    got = [os.path.relpath(p, tmp_path / "test") for b in load(tmp_path, phase="test") for p in b["paths"]]
    assert got == want
    firsts = load(tmp_path, phase="test", max_dataset_size=2)
    assert [os.path.basename(p) for b in firsts for p in b["paths"]] == want[:2]

def test_a_split_that_is_there_in_another_layout_is_not_called_missing_beside_the_splits(tmp_path):
    # train/ of aligned images read with --layout ab_folders: it lacks A/ and B/, and is no split to
    # choose instead of itself (it said "... holds the splits train; choose one (--phase)").
    write(tmp_path / "train/0.png", noise(np.random.default_rng(0), 8, 16))
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'train'} has no A/ and B/ folders (layout="
                                                     f"'ab_folders'; looked in it and in {tmp_path})")):
        load(tmp_path, phase="train", layout="ab_folders")
    with pytest.raises(DatasetError, match=re.escape(f"missing folder {tmp_path / 'train/val'} (looked for A/ and B/ "
                                                     f"folders in it and in {tmp_path / 'train'})")):
        load(tmp_path / "train", phase="val", layout="ab_folders")  # (no split folders there: missing it is)


@pytest.mark.parametrize("case", ["zero", "garbage", "truncated_jpeg", "truncated_png", "odd", "narrow"])
def test_bad_files_are_named_up_front(tmp_path, case, caplog):
    paths = good_set(tmp_path)
    bad = tmp_path / "train" / f"bad.{'png' if 'png' in case or case in ('odd', 'narrow') else 'jpg'}"
    buf = io.BytesIO()
    # large enough that cutting it in half cuts the compressed data, not the header
    Image.fromarray(noise(np.random.default_rng(2), 64, 128)).save(buf, "PNG" if "png" in case else "JPEG")
    content = {
        "zero": b"",
        "garbage": b"this is not an image" * 10,
        "truncated_jpeg": buf.getvalue()[: len(buf.getvalue()) // 2],
        "truncated_png": buf.getvalue()[: len(buf.getvalue()) // 2],
    }
    if case in content:
        bad.write_bytes(content[case])
    else:
        write(bad, noise(np.random.default_rng(3), 16, 33 if case == "odd" else 1))
    reason = {"zero": "zero-byte", "garbage": "unreadable", "truncated_jpeg": "truncated JPEG",
              "truncated_png": "truncated PNG", "odd": "odd width 33", "narrow": "odd width 1"}[case]
    with pytest.raises(DatasetError, match=f"(?s){bad.name}: {reason}.*skip_bad"):
        load(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        loader = load(tmp_path, skip_bad=True, drop_last=False, shuffle=False)
    assert loader.skipped[0][0] == str(bad) and len(loader.skipped) == 1
    assert "skipped 1 bad file" in caplog.text
    assert [p for b in loader for p in b["paths"]] == paths


def test_more_bad_files_than_a_message_names_are_all_listed_in_a_file(tmp_path, monkeypatch, caplog):
    # 851 of 861 damaged files were "... and 851 more": no command said which
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(tmp_path / "cache"))
    good_set(tmp_path / "data")
    bad = sorted(tmp_path / "data" / "train" / f"bad{i:02d}.png" for i in range(13))
    for path in bad:
        path.write_bytes(b"")
    from bicyclegan.pipelines.files import checks_unsaved
    with checks_unsaved(), pytest.raises(DatasetError, match=r"\.\.\. and 3 more \(a run lists them all in a file "
                                                            r"beside the check cache; a dry run writes nothing\)\n"):
        load(tmp_path / "data")  # a dry run's: written nowhere
    assert not (tmp_path / "cache").exists()
    with pytest.raises(DatasetError) as e:
        load(tmp_path / "data")
    listed = next((tmp_path / "cache").glob("*.bad.txt"))
    assert f"  ... and 3 more (all 13 listed in {listed})" in str(e.value)
    assert listed.read_text().splitlines() == [f"{p}\tzero-byte file" for p in bad]
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        load(tmp_path / "data", skip_bad=True)
    assert f"(all 13 listed in {listed})" in caplog.text
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", "off")  # no cache, no file: the count alone
    with pytest.raises(DatasetError, match=r"\.\.\. and 3 more\n"):
        load(tmp_path / "data")


def test_more_workers_than_cores_is_one_line_of_ours(tmp_path, monkeypatch, caplog):
    # torch's UserWarning said it twice, each with its source line
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    good_set(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"), warnings.catch_warnings():
        warnings.simplefilter("error")
        loader = load(tmp_path, num_workers=2)
        try:
            assert len(list(loader)) == 2
        finally:
            loader.close()
    assert caplog.messages == ["num_workers=2 is more than the 1 cores this process may use: kept as given"]


def test_crop_larger_than_image(tmp_path):
    good_set(tmp_path, h=16, w=32)
    with pytest.raises(DatasetError, match="smaller than crop_size"):
        load(tmp_path, preprocess="crop", crop_size=20)


def test_sizes_must_match_without_crop(tmp_path):
    good_set(tmp_path, n=2)
    write(tmp_path / "train/big.png", noise(np.random.default_rng(4), 24, 40))
    with pytest.raises(DatasetError, match="big.png gives 20x24"):
        load(tmp_path, preprocess="none")
    assert len(load(tmp_path, preprocess="none", batch_size=1)) == 3


def test_a_bad_b_file_is_said_to_be_in_the_split_not_in_a(tmp_path, caplog):
    # The list named train/B/y.png under the header "1 bad file(s) in .../train/A".
    rng = np.random.default_rng(5)
    for name in ["x", "y"]:
        write(tmp_path / f"train/A/{name}.png", noise(rng, 16, 16))
        write(tmp_path / f"train/B/{name}.png", noise(rng, 16, 16))
    (tmp_path / "train/B/y.png").write_bytes(broken_png())
    with pytest.raises(DatasetError) as info:
        load(tmp_path, load_size=16, crop_size=16)
    assert str(info.value).startswith(f"1 bad file(s) in {tmp_path / 'train'}:\n  {tmp_path / 'train/B/y.png'}: ")
    with caplog.at_level("WARNING", "bicyclegan.pipelines"):
        load(tmp_path, load_size=16, crop_size=16, skip_bad=True, batch_size=1)
    assert caplog.messages[0].startswith(f"skipped 1 bad file(s) in {tmp_path / 'train'}:\n")


def test_mismatched_ab_names(tmp_path):
    rng = np.random.default_rng(5)
    for name in ["x", "y", "only_a"]:
        write(tmp_path / f"train/A/{name}.png", noise(rng, 16, 16))
    for name in ["x", "y", "only_b"]:
        write(tmp_path / f"train/B/{name}.png", noise(rng, 16, 16))
    write(tmp_path / "train/A/y.jpg", noise(rng, 16, 16))
    with pytest.raises(DatasetError) as info:
        load(tmp_path, load_size=16, crop_size=16)
    for name in ["A/only_a.png: no partner", "B/only_b.png: no partner", "A/y.png: ambiguous", "A/y.jpg"]:
        assert name in str(info.value)
    assert str(info.value).startswith(f"cannot pair the files of {tmp_path / 'train'} (A/ and B/ pair files by "
                                      "name, the extension aside: A/x.jpg with B/x.png):\n")  # the rule, said
    loader = load(tmp_path, load_size=16, crop_size=16, skip_bad=True, batch_size=1)
    assert [b["paths"] for b in loader] == [[str(tmp_path / "train/A/x.png")]]
    assert len(loader.skipped) == 4


def test_ab_sizes_must_match_where_geometry_needs_it(tmp_path):
    rng = np.random.default_rng(6)
    write(tmp_path / "train/A/x.png", noise(rng, 16, 16))
    write(tmp_path / "train/B/x.png", noise(rng, 16, 18))
    with pytest.raises(DatasetError, match="differs from its partner"):
        load(tmp_path, load_size=16, crop_size=16, preprocess="crop", batch_size=1)
    assert len(load(tmp_path, load_size=16, crop_size=16, batch_size=1)) == 1


def test_too_few_files_for_a_batch(tmp_path):
    good_set(tmp_path, n=3)
    # 3 samples on 2 ranks: 1 each after the cut to whole batches, so a batch of 1 is the largest that works
    with pytest.raises(DatasetError, match=r"^3 samples fill no batch of batch_size=2 on each of 2 ranks \(an "
                                           r"incomplete batch is left out: drop_last=True\); use a batch_size of "
                                           r"at most 1$") as refused:
        load(tmp_path, batch_size=2, world_size=2)
    assert not refused.value.from_rank0  # rank 0 prints it under torchrun ...
    with pytest.raises(DatasetError, match="fill no batch") as refused:
        load(tmp_path, batch_size=2, rank=1, world_size=2)
    assert refused.value.from_rank0  # ... for every rank: each counts the same samples
    with pytest.raises(DatasetError, match=r"^3 samples fill no batch of batch_size=4 \(.*\); use a batch_size "
                                           r"of at most 3$"):
        load(tmp_path, batch_size=4)


class _Finalised:
    """Garbage in a reference cycle (only the cyclic collector frees it) whose finaliser says where it ran."""

    def __init__(self, marker):
        self.marker, self.me = marker, self

    def __del__(self):
        with open(self.marker, "a") as f:
            f.write(f"{os.getpid()}\n")


def test_workers_never_collect_the_parents_garbage(tmp_path, monkeypatch):
    """The torch loader's workers are forked: a collection in one must not finalise what the parent
    dropped (a DALI pipeline's destructor hung a worker for ever, waiting for threads that exist only
    in the parent). Every worker collects before each item here; the garbage is finalised once, in
    the parent."""
    good_set(tmp_path, n=4)
    marker = tmp_path / "finalised"
    loader = load(tmp_path, num_workers=2)
    real = cpu_loader.PairedImageDataset.__getitem__

    def collecting(self, key):
        gc.collect()
        return real(self, key)
    monkeypatch.setattr(cpu_loader.PairedImageDataset, "__getitem__", collecting)
    frozen = gc.get_freeze_count()  # not 0 on Python 3.12, which starts with objects frozen
    gc.disable()  # nor may the parent collect it before the workers are forked
    try:
        _Finalised(marker)
        assert sum(b["A"].shape[0] for b in loader) == 4
        assert not gc.isenabled()  # the caller's collector state is left as it was
    finally:
        gc.enable()
    gc.collect()
    assert marker.read_text().split() == [str(os.getpid())]
    assert gc.get_freeze_count() == frozen  # nothing of the parent's stays frozen
    gc.freeze()  # a caller's own freeze is left as it was
    try:
        frozen = gc.get_freeze_count()
        list(load(tmp_path, num_workers=1))
        # still frozen, and nothing more (objects freed meanwhile leave the frozen set)
        assert frozen // 2 < gc.get_freeze_count() <= frozen and gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_worker_collects_its_own_garbage(tmp_path, monkeypatch):
    """What a worker makes and drops in a cycle is collected there (its collector runs again after
    the fork, and only the inherited objects are frozen)."""
    good_set(tmp_path, n=2)
    marker = tmp_path / "finalised"
    real = cpu_loader.PairedImageDataset.__getitem__

    def dropping(self, key):
        (tmp_path / f"collector_on_{os.getpid()}_{key}").write_text(str(gc.isenabled()))
        _Finalised(marker)
        gc.collect()
        return real(self, key)
    monkeypatch.setattr(cpu_loader.PairedImageDataset, "__getitem__", dropping)
    assert sum(b["A"].shape[0] for b in load(tmp_path, num_workers=1, batch_size=1)) == 2
    pids = marker.read_text().split()
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert [p.read_text() for p in tmp_path.glob("collector_on_*")] == ["True", "True"]


def _child_pids():
    """The processes this one started itself (Linux /proc)."""
    me, found = os.getpid(), []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(d.name))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_started_by_a_forkserver_give_the_same_batches(tmp_path):
    """Python 3.14 starts processes with a forkserver by default (macOS: spawn): then the dataset
    reaches the workers pickled, nothing is inherited, and the batches must be those of forked workers."""
    import multiprocessing
    good_set(tmp_path, n=6)
    forked = [b["A"] for b in load(tmp_path, num_workers=2, shuffle=True, seed=3)]
    before = multiprocessing.get_start_method()
    multiprocessing.set_start_method("forkserver", force=True)
    try:
        loader = load(tmp_path, num_workers=2, shuffle=True, seed=3)
        served = [b["A"] for b in loader]
        assert not set(_child_pids()) & {w.pid for w in loader._loader._iterator._workers}  # not forked by us
    finally:
        multiprocessing.set_start_method(before, force=True)
    assert len(served) == len(forked) == 3
    for a, b in zip(forked, served):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_stuck_worker_is_an_error_not_a_hang(tmp_path, monkeypatch):
    """A worker that never delivers (as one reading from a file system that stopped answering) ends
    the pass with a DatasetError saying so, after WORKER_TIMEOUT_S, instead of waiting for ever."""
    good_set(tmp_path, n=4)
    monkeypatch.setattr(cpu_loader, "WORKER_TIMEOUT_S", 1)
    loader = load(tmp_path, num_workers=1)
    real = cpu_loader.PairedImageDataset.__getitem__

    def stuck(self, key):
        time.sleep(2.5)
        return real(self, key)
    monkeypatch.setattr(cpu_loader.PairedImageDataset, "__getitem__", stuck)
    t0 = time.perf_counter()
    with pytest.raises(DatasetError, match=r"no batch from the 1 loader worker process\(es\) in 1 s: one is stuck "
                                           r".*, or a batch found no room in /dev/shm"):
        list(loader)
    assert time.perf_counter() - t0 < 2.5  # the timeout, not the worker, ended the wait


def shared_memory(monkeypatch, free):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(cpu_loader.shutil, "disk_usage", lambda path: usage(free, 0, free))


# A batch of 2 pairs of 3 x 32 x 32 uint8 halves: 12 KiB; a worker holds 2 (24 KiB), in 0.9 of the free
# space: N workers fit from N x 24 KiB / 0.9 bytes free on.
BATCH = 2 * (3 + 3) * 32 * 32


def fit_from(workers, batch=BATCH):
    return -(-workers * 2 * batch * 10 // 9)  # the least free bytes that hold them


def shm_lines(caplog):
    return [r.getMessage() for r in caplog.records if "/dev/shm" in r.getMessage()]


def test_given_workers_that_shared_memory_cannot_hold_are_warned_of(tmp_path, monkeypatch, caplog):
    """Workers hand their batches over through /dev/shm; where it cannot hold what they make ahead
    (Docker's default is 64 MiB), a batch is lost and the loader waits 10 minutes for it: a count the
    caller gave is kept, with a warning with the numbers when the loader is made."""
    good_set(tmp_path, n=4)
    assert fit_from(2) == 54614
    for free, warned in ((fit_from(2) - 1, True), (fit_from(2), False)):
        shared_memory(monkeypatch, free)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            assert load(tmp_path, num_workers=2).num_workers == 2
            load(tmp_path, num_workers=0)  # no workers, nothing in shared memory
        assert len(shm_lines(caplog)) == int(warned), (free, shm_lines(caplog))
    shared_memory(monkeypatch, 2**20)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        load(tmp_path, num_workers=2, batch_size=4, load_size=128, crop_size=128)  # 0.4 MiB a batch
    assert shm_lines(caplog) == [
        "num_workers=2: /dev/shm has 1.0 MiB free, room for the batches of 1 loader worker(s) (2 each of 0.4 MiB, "
        "a tenth of it left free): a batch that finds no room is lost, and the loader waits 10 minutes for it; "
        "lower --num_workers or "
        "the batch size, or docker run --shm-size=2g gives a container more"]
    # the single layout hands over A alone (3 channels): half the bytes, so twice the workers fit
    for free, warned in ((fit_from(2, BATCH // 2) - 1, True), (fit_from(2, BATCH // 2), False)):
        shared_memory(monkeypatch, free)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            load(tmp_path, num_workers=2, layout="single", load_size=(32, 64), crop_size=32)
        assert len(shm_lines(caplog)) == int(warned), (free, shm_lines(caplog))


def test_given_workers_without_room_for_one_batch_are_refused(tmp_path, monkeypatch):
    """Not even one batch fits: every worker would die at its first batch, so the loader is not made."""
    good_set(tmp_path, n=4)
    shared_memory(monkeypatch, BATCH - 1)
    with pytest.raises(DatasetError, match=r"^num_workers=1: /dev/shm has 0.0 MiB free, less than one batch "
                                           r"\(0.0 MiB\): every worker's first batch would be lost \(the loader "
                                           r"waiting 10 minutes for it\); use --num_workers 0 .* --shm-size"):
        load(tmp_path, num_workers=1)
    shared_memory(monkeypatch, BATCH)  # one batch fits: a worker may keep up (warned, not refused)
    assert load(tmp_path, num_workers=1).num_workers == 1
    assert load(tmp_path, num_workers=0).num_workers == 0
    # torchrun's ranks on one machine: each has its share, and the message says whose free space it is
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    shared_memory(monkeypatch, 2 * BATCH - 1)
    with pytest.raises(DatasetError, match=r"^num_workers=1: /dev/shm has 0.0 MiB free for 2 ranks, less than one "
                                           r"batch each \(0.0 MiB\): "):
        load(tmp_path, num_workers=1)
    shared_memory(monkeypatch, 2 * BATCH)
    assert load(tmp_path, num_workers=1).num_workers == 1


def test_no_shared_memory_folder_on_linux_means_no_workers(tmp_path, monkeypatch, caplog):
    """Linux without /dev/shm (a container run with --ipc=none): multiprocessing cannot make the
    DataLoader's locks there, and iterating failed with a bare '[Errno 2] No such file or directory'
    after the model was built. The default count is 0, said in one line; a count given is refused.
    Elsewhere (no /dev/shm on macOS or Windows) the platform's own means serve: not checked."""
    from bicyclegan.pipelines import files as files_module
    monkeypatch.setattr(files_module, "usable_cores", lambda: 2)
    good_set(tmp_path, n=4)

    def missing(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    monkeypatch.setattr(cpu_loader.shutil, "disk_usage", missing)
    monkeypatch.setattr(sys, "platform", "linux")
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        made = load(tmp_path, num_workers=None)
    assert made.num_workers == 0 and sum(b["A"].shape[0] for b in made) == 4
    assert shm_lines(caplog) == ["there is no /dev/shm, through which loader workers hand over their batches: "
                                 "loading in this process, not the default 2 worker(s); mount a tmpfs there"]
    with pytest.raises(DatasetError, match=r"^num_workers=2: there is no /dev/shm, .*; use --num_workers 0 "):
        load(tmp_path, num_workers=2)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert load(tmp_path, num_workers=None).num_workers == 2


def test_a_temporary_folder_too_long_for_the_workers_sockets_means_no_workers(tmp_path):
    """Workers hand each batch over as a file descriptor through a Unix socket in multiprocessing's
    folder under TMPDIR, whose path may hold 107 bytes: with a longer TMPDIR (a deep scratch folder)
    the worker's send failed unseen and the loader waited 10 minutes for the first batch. Run in a
    child process with such a TMPDIR: the default count is 0, said in a line, and batches come; a
    count given is refused naming TMPDIR. A TMPDIR that fits keeps the workers."""
    import subprocess
    good_set(tmp_path / "data", n=4)
    child = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "from bicyclegan.pipelines import DatasetError, make_loader\n"
        "kw = dict(batch_size=2, load_size=32, crop_size=32, backend='torch')\n"
        "made = make_loader(sys.argv[1], num_workers=None, **kw)\n"
        "print('workers', made.num_workers, 'samples', sum(b['A'].shape[0] for b in made))\n"
        "try:\n"
        "    make_loader(sys.argv[1], num_workers=1, **kw)\n"
        "    print('given: accepted')\n"
        "except DatasetError as e:\n"
        "    print('given:', e)\n")

    def run(tmpdir):
        tmpdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"TMPDIR": str(tmpdir)}
        done = subprocess.run([sys.executable, "-c", child, str(tmp_path / "data")], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, done.stderr

    deep = tmp_path / ("t" * max(1, 110 - len(os.fsencode(str(tmp_path)))))  # with pymp-XXXXXXXX/: > 107
    out, err = run(deep)
    assert "workers 0 samples 4" in out
    assert "the temporary folder's path is too long for the Unix sockets loader workers hand their batches " \
           f"over through ({deep}/pymp-" in err and "set TMPDIR to a shorter folder" in err
    assert "loading in this process, not the default" in err
    assert "given: num_workers=1: the temporary folder's path is too long" in out and "--num_workers 0" in out
    short = Path("/tmp") / f"bg{os.getpid()}"
    try:
        out, err = run(short)
    finally:
        short.rmdir() if short.exists() and not any(short.iterdir()) else None
    assert "workers 0" not in out and "samples 4" in out and "given: accepted" in out, out + err


def test_default_workers_are_those_shared_memory_holds(tmp_path, monkeypatch, caplog):
    """num_workers not given: at most the workers whose batches fit, said in one line naming the two
    ways to change it; the loader works with them."""
    from bicyclegan.pipelines import files as files_module
    monkeypatch.setattr(files_module, "usable_cores", lambda: 2)  # default on the CPU: min(4, cores)
    good_set(tmp_path, n=4)
    for free, workers in ((fit_from(2), 2), (fit_from(2) - 1, 1), (fit_from(1), 1), (fit_from(1) - 1, 0)):
        shared_memory(monkeypatch, free)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            made = load(tmp_path, num_workers=None)
        assert made.num_workers == workers, free
        lines = shm_lines(caplog)
        if free == fit_from(2):
            assert lines == []
            continue
        assert len(lines) == 1 and "\n" not in lines[0]
        assert lines[0].startswith(f"/dev/shm has {free / 2**20:.1f} MiB free, room for the batches of {workers} "
                                   "loader worker(s) (2 each of 0.0 MiB, a tenth of it left free): ")
        how = "loading in this process" if workers == 0 else f"using {workers}"
        assert lines[0].endswith(f"{how}, not the default 2 worker(s); --num_workers N sets the count, "
                                 "docker run --shm-size=2g gives a container more")
    shared_memory(monkeypatch, fit_from(1))
    made = load(tmp_path, num_workers=None)
    assert made.num_workers == 1 and sum(b["A"].shape[0] for b in made) == 4  # the chosen worker loads
    # torchrun's ranks on one machine check before any starts its workers: each gets its share (of 6 cores, whose
    # share is 3 workers a rank of 2, 2 of 3: the memory is what lowers them)
    monkeypatch.setattr(files_module, "usable_cores", lambda: 6)
    shared_memory(monkeypatch, 2 * fit_from(2))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert load(tmp_path, num_workers=None).num_workers == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        assert load(tmp_path, num_workers=None).num_workers == 1
    assert f"{2 * fit_from(2) / 2**20:.1f} MiB free for 3 ranks, room for the batches of 1 " in caplog.text


def test_batches_of_the_files_sizes_are_counted_too(tmp_path, monkeypatch):
    """Without a crop (preprocess none, scale_width) the batches have the files' sizes, and a worker
    whose batch finds no room hangs (torch logs 'No space left on device', the batch never comes):
    the largest size counts. 32 x 32 halves under none: as BATCH; a 64 x 64 file at batch 1 counts
    1 x 6 x 64 x 64 bytes, not its 32 x 32 neighbour's; other shapes their area, not a side squared."""
    from bicyclegan.pipelines import files as files_module
    monkeypatch.setattr(files_module, "usable_cores", lambda: 2)  # default on the CPU: min(4, cores)
    good_set(tmp_path, n=4, h=32, w=64)
    shared_memory(monkeypatch, fit_from(1))
    assert load(tmp_path, preprocess="none", num_workers=None).num_workers == 1
    shared_memory(monkeypatch, BATCH - 1)
    with pytest.raises(DatasetError, match=r"^num_workers=1: /dev/shm has .* less than one batch"):
        load(tmp_path, preprocess="scale_width", num_workers=1)
    write(tmp_path / "train/big.png", noise(np.random.default_rng(2), 64, 128))
    shared_memory(monkeypatch, fit_from(1, 6 * 64 * 64))
    assert load(tmp_path, preprocess="none", batch_size=1, num_workers=None).num_workers == 1
    shared_memory(monkeypatch, fit_from(1, 6 * 64 * 64) - 1)
    assert load(tmp_path, preprocess="none", batch_size=1, num_workers=None).num_workers == 0
    # the halves' area counts, not a side or their sum: a tall 96 x 16 and a wide 16 x 96 half count
    # 1536 pixels, more than 32 x 32; a thin 8 x 120 one 960, less
    (tmp_path / "train/big.png").unlink()
    for h, w, largest in ((96, 16, 96 * 16), (16, 96, 96 * 16), (8, 120, 32 * 32)):
        write(tmp_path / "train/other.png", noise(np.random.default_rng(3), h, 2 * w))
        shared_memory(monkeypatch, fit_from(1, 6 * largest))
        assert load(tmp_path, preprocess="none", batch_size=1, num_workers=None).num_workers == 1, (h, w)
        shared_memory(monkeypatch, fit_from(1, 6 * largest) - 1)
        assert load(tmp_path, preprocess="none", batch_size=1, num_workers=None).num_workers == 0, (h, w)


# LOADERS_CLOSED: a test that keeps `pytest.raises(...) as info` holds its own frame in a cycle (the error's
# traceback holds the frame, whose locals hold info), and with it the loaders of its locals: those with workers,
# left to a garbage collection, were shut down 5 s a worker (torch's join timeout, where close() takes 0.01 s),
# 10 to 40 s of waiting in whichever later test the collection ran. Closed at the test's end, they end at once.
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("num_workers", [0, 2])
def test_decode_error_at_run_time(tmp_path, backend, num_workers, caplog):
    """A file that passed the checks and broke afterwards (rewritten on disk) fails at decode time."""
    paths = good_set(tmp_path, n=7)
    name = os.path.basename(paths[3])
    kw = {"num_workers": num_workers, "shuffle": False, "drop_last": True}
    strict, lenient = load(tmp_path, backend, **kw), load(tmp_path, backend, skip_bad=True, **kw)
    with strict, lenient:  # closed at the end (LOADERS_CLOSED)
        with open(paths[3], "wb") as f:
            f.write(broken_png())
        with pytest.raises(DatasetError, match=f"{name}: cannot decode") as info:
            list(strict)
        assert "Traceback" not in str(info.value) and len(str(info.value).splitlines()) <= 2
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            for _ in range(2):  # the bad file is replaced by the next good one, every epoch
                got = [b for b in lenient]
                assert [p for b in got for p in b["paths"]] == paths[:3] + [paths[4]] + paths[4:6]
                assert len(got) == len(lenient) == 3 and all(b["A"].shape[0] == 2 for b in got)
        assert lenient.skipped == [(paths[3], lenient.skipped[0][1])]
        assert caplog.text.count(f"skipped {paths[3]}") == 1


@needs_dali
def test_dali_keeps_the_crops_of_an_epoch_where_a_file_broke(tmp_path, caplog):
    """A file broken after the checks, met mid-epoch under skip_bad: DALI restarts its pipeline past the
    batch, and every other sample keeps the crop and flip it has in the uninterrupted pass (the restarted
    pipeline drew from a seed of its own: every crop after the file differed). The file's place takes the
    next good sample by path order, with that sample's own crop and flip of the epoch (as in its own
    place), as on the torch loader; a pass from a later batch (a resume of the epoch) gives the same."""
    paths = good_set(tmp_path, n=9)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": True, "drop_last": False,
          "seed": 4, "skip_bad": True}
    dali, ref = load(tmp_path, "dali", **kw), load(tmp_path, "torch", **kw)
    dali.set_epoch(1)
    whole = list(dali)
    order = [p for b in whole for p in b["paths"]]
    slot = 5  # in batch 2 of 5: batches before it and after
    bad, sub = order[slot], paths[(paths.index(order[slot]) + 1) % len(paths)]
    with open(bad, "wb") as f:
        f.write(broken_png())
    for loader in (dali, ref):
        loader.set_epoch(1)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        got, want = list(dali), list(ref)
    assert dali.skipped == [(bad, dali.skipped[0][1])]
    assert [p for b in got for p in b["paths"]] == order[:slot] + [sub] + order[slot + 1:]

    def crops(batches, k):
        return [x for b in batches for x in b[k]]
    for k in "AB":
        expect = crops(whole, k)
        expect[slot] = expect[order.index(sub)]
        assert [i for i, (x, y) in enumerate(zip(crops(got, k), expect, strict=True)) if not torch.equal(x, y)] == []
        assert all((x - z).abs().max() <= 1e-6 for x, z in zip(crops(got, k), crops(want, k), strict=True))
    dali.set_epoch(1, 3)
    assert all(torch.equal(x, y) for x, y in zip(crops(list(dali), "A"), crops(got[3:], "A"), strict=True))



@needs_dali
@pytest.mark.parametrize("first", [1, 7])  # among the list's first batches (which a kept pipeline reads again past
def test_dali_keeps_no_pipeline_over_files_a_new_substitute_replaced(tmp_path, first):  # its end: _stat), or after
    """Nothing random: DALI keeps its pipeline from one whole pass to the next. 001 broke (skip_bad: 002 reads in
    its place), then 002 broke too: the next pass reads 003 in both places, so the kept pipeline, whose reader
    lists 002, is not the pass's. Reused, it failed on 002 and the pass ended in "DALI failed on a batch read
    from" (002 not among the files it named); the batches are the torch loader's. The same of 007 and 008."""
    paths = good_set(tmp_path, n=10)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": False, "augment": False,
          "drop_last": False, "skip_bad": True}
    dali, ref = load(tmp_path, "dali", **kw), load(tmp_path, "torch", **kw)
    with open(paths[first], "wb") as f:
        f.write(broken_png())
    for _ in range(2):  # (the first restarts past the file and keeps nothing; the second keeps its pipeline)
        assert [p for b in dali for p in b["paths"]] == [paths[first + 1 if i == first else i] for i in range(10)]
    with open(paths[first + 1], "wb") as f:
        f.write(broken_png())
    got, want = list(dali), list(ref)
    assert [p for b in got for p in b["paths"]] == [paths[first + 2 if i in (first, first + 1) else i]
                                                     for i in range(10)]
    for g, w in zip(got, want, strict=True):
        assert all((g[k] - w[k]).abs().max() <= 1e-6 for k in "AB")
    assert [p for p, _ in dali.skipped] == [paths[first], paths[first + 1]]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_skip_bad_with_every_file_broken_since_the_checks_names_the_files_tried(tmp_path, backend, shuffle):
    # DALI said "no sample could be decoded" alone; the torch loader listed every file's path in one line (all of a
    # dataset's files, where its folder was gone from under a run): one a line, with the reason, at most 10, in the
    # order tried: from the epoch's first sample on (shuffled: not the first file; DS13)
    paths = good_set(tmp_path, n=12)
    loader = load(tmp_path, backend, shuffle=shuffle, seed=1, skip_bad=True)
    with loader:  # (LOADERS_CLOSED)
        k = paths.index(next(iter(loader))["paths"][0])
        assert (k != 0) == shuffle
        loader.set_epoch(0)
        for path in paths:
            open(path, "wb").close()
        with pytest.raises(DatasetError) as info:
            list(loader)
        lines = [f"  {p}: cannot decode (UnidentifiedImageError: cannot identify image file {p!r})"
                 for p in paths[k:] + paths[:k]]
        assert str(info.value) == "\n".join(["no sample could be decoded; tried:", *lines[:10], "  ... and 2 more"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_skip_bad_reads_a_file_again_once_it_decodes_again(tmp_path, backend):
    # DALI replaced a file that once failed to decode for the rest of the run, where the torch loader, which tries
    # each file as it comes, read it again once it was rewritten whole (a dataset re-exported while a run trains)
    paths = good_set(tmp_path, n=6)
    data = Path(paths[1]).read_bytes()
    loader = load(tmp_path, backend, batch_size=2, crop_size=(12, 10), preprocess="crop", shuffle=True, seed=1,
                  drop_last=False, skip_bad=True)

    def epoch_0():
        loader.set_epoch(0)
        return list(loader)
    with loader:  # (LOADERS_CLOSED)
        whole = epoch_0()
        order = [p for b in whole for p in b["paths"]]
        Path(paths[1]).write_bytes(broken_png())
        assert [p for b in epoch_0() for p in b["paths"]] == [paths[2] if p == paths[1] else p for p in order]
        Path(paths[1]).write_bytes(data)
        again = epoch_0()
        assert [p for b in again for p in b["paths"]] == order
        assert all((a[x] - b[x]).abs().max() <= 1e-6 for a, b in zip(again, whole, strict=True) for x in "AB")
        assert [p for p, _ in loader.skipped] == [paths[1]]


@needs_dali
def test_dali_under_skip_bad_looks_again_at_the_replaced_files_of_its_own_shard_alone(tmp_path, monkeypatch):
    """A rank's pass decoded every file it had replaced (one that decodes again is read again) and replaced them in
    the whole epoch's order, every rank's (a decode of each substitute), on the training's thread before its first
    batch: under torchrun each rank world times its own share. Files broken in rank 0's shard of epoch 0 that lie in
    rank 1's of epoch 1 are not decoded in rank 0's epoch 1, and its batches are still the torch loader's."""
    from bicyclegan.pipelines import dali_loader
    paths = good_set(tmp_path, n=12)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": True, "seed": 3,
          "drop_last": False, "skip_bad": True, "rank": 0, "world_size": 2}
    dali, ref = load(tmp_path, "dali", **kw), load(tmp_path, "torch", **kw)
    order0, order1 = (dali.shard.global_order(e) for e in (0, 1))  # (sharding's, both loaders')
    moved = [paths[i] for i in order0[:6] if i in order1[6:]][:2]  # (rank 0 reads the first 6 of an epoch's 12)
    assert len(moved) == 2
    for path in moved:
        Path(path).write_bytes(broken_png())
    decoded = collections.Counter()
    real = dali_loader.load_rgb

    def counted(path):
        decoded[path] += 1
        return real(path)
    monkeypatch.setattr(dali_loader, "load_rgb", counted)
    with dali, ref:
        for epoch in (0, 1):
            decoded.clear()
            for got, want in zip(dali, ref, strict=True):
                assert got["paths"] == want["paths"] and all((got[x] - want[x]).abs().max() <= 1e-6 for x in "AB")
            assert all(decoded[p] for p in moved) if epoch == 0 else not any(decoded[p] for p in moved), decoded
        assert sorted(p for p, _ in dali.skipped) == sorted(moved)


@needs_dali
def test_dali_survives_files_rewritten_in_place_as_it_reads_them(tmp_path):
    """Files rewritten in place (truncated, then written: a dataset re-exported while a run trains) as DALI read
    them: its reader mapped them into memory, and a read past a file's new end killed the process with SIGBUS
    ("Bus error", no word of the file). Now each pass ends, or raises a DatasetError (skip_bad: all the files
    were half-written at once)."""
    paths = good_set(tmp_path, n=8, h=256, w=512)
    script = f"""if True:
        import threading
        from bicyclegan.pipelines import DatasetError, make_loader
        paths = {paths!r}
        data = {{p: open(p, "rb").read() for p in paths}}
        loader = make_loader({str(tmp_path)!r}, backend="dali", batch_size=2, load_size=64, crop_size=64,
                             num_workers=2, shuffle=False, augment=False, skip_bad=True)
        stop = threading.Event()

        def rewrite():
            while not stop.is_set():
                for p in paths:
                    with open(p, "wb") as f:
                        f.write(data[p][:len(data[p]) // 2])
                        f.flush()
                        f.write(data[p][len(data[p]) // 2:])
        writer = threading.Thread(target=rewrite)
        writer.start()
        try:
            for _ in range(12):
                try:
                    list(loader)
                except DatasetError:
                    pass
        finally:
            stop.set()
            writer.join()
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _stored_png(arr):
    """A PNG stored without compression: its size is its picture's dimensions' alone, whatever its pixels."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


@needs_dali
@pytest.mark.parametrize("how", ["replaced", "rewritten in place", "replaced keeping its mtime", "its B replaced",
                                 "its second batch replaced", "rewritten in place keeping its mtime"])
def test_dali_reads_a_file_changed_between_passes_as_it_is_now(tmp_path, how):
    """Nothing random: DALI keeps its pipeline from one pass to the next, which has read the next pass's first
    files past its list's end (its first 2 batches here). A file among them rewritten between the passes
    was delivered as it had been (broken: the pass went through; another picture: the old one), where the torch
    loader reads it as it is now: whether the file is replaced by a rename, rewritten in place at its size (its inode
    and size unchanged), replaced keeping its mtime (rsync -t: its size and mtime unchanged), rewritten in place
    keeping its mtime (cp -p over the file: inode, size and mtime unchanged; its ctime alone moves), is a B file
    (train/A, train/B) or is in the list's second batch (DS06-DS10)."""
    rng = np.random.default_rng(3)
    if how == "its B replaced":
        (tmp_path / "train/A").mkdir(parents=True)
        (tmp_path / "train/B").mkdir()
        for i in range(7):
            Path(tmp_path / f"train/A/{i:03d}.png").write_bytes(_stored_png(noise(rng, 16, 16)))
            Path(tmp_path / f"train/B/{i:03d}.png").write_bytes(_stored_png(noise(rng, 16, 16)))
        changed, size = str(tmp_path / "train/B/000.png"), (16, 16)
    else:
        paths = [str(tmp_path / f"train/{i:03d}.png") for i in range(7)]
        Path(tmp_path / "train").mkdir()
        for path in paths:
            Path(path).write_bytes(_stored_png(noise(rng, 16, 32)))
        changed, size = paths[3 if how == "its second batch replaced" else 0], (16, 32)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": False, "augment": False,
          "drop_last": False}
    dali, ref = load(tmp_path, "dali", **kw), load(tmp_path, "torch", **kw)
    with dali, ref:
        list(dali)
        time.sleep(0.2)  # (DALI's reads past the end have been made)
        data, was = _stored_png(noise(np.random.default_rng(7), *size)), os.stat(changed)
        assert len(data) == was.st_size
        if how.startswith("rewritten in place"):
            time.sleep(0.01)  # (a later mtime, where its clock is coarse)
            with open(changed, "r+b") as f:
                f.write(data)
            if how.endswith("keeping its mtime"):
                os.utime(changed, ns=(was.st_atime_ns, was.st_mtime_ns))
            assert (os.stat(changed).st_ino, os.stat(changed).st_size) == (was.st_ino, was.st_size)
        else:
            Path(changed + ".new").write_bytes(data)
            if how == "replaced keeping its mtime":
                os.utime(changed + ".new", ns=(was.st_atime_ns, was.st_mtime_ns))
            os.replace(changed + ".new", changed)
        for got, want in zip(dali, ref, strict=True):
            assert got["paths"] == want["paths"] and all((got[x] - want[x]).abs().max() <= 1e-6 for x in "AB")


@needs_dali
def test_dali_failing_on_a_file_that_decodes_by_the_time_it_is_looked_at_says_dalis_line_of_it(tmp_path, monkeypatch):
    # A file DALI failed on that decodes when the loader looks (moved away and back: a dataset re-exported while a
    # run trains): the error listed the batch's files and DALI's last line, "Current pipeline object is no longer
    # valid.", not its line of the file
    from bicyclegan.pipelines.dali_loader import DaliLoader
    paths = good_set(tmp_path, n=4)
    loader = load(tmp_path, "dali", shuffle=False)
    os.rename(paths[1], paths[1] + ".away")
    real = DaliLoader._find_bad

    def back(self, indices):
        if os.path.exists(paths[1] + ".away"):
            os.rename(paths[1] + ".away", paths[1])
        return real(self, indices)
    monkeypatch.setattr(DaliLoader, "_find_bad", back)
    with loader, pytest.raises(DatasetError) as info:
        list(loader)
    lines = str(info.value).splitlines()
    assert lines[:5] == ["DALI failed on a batch read from:", *(f"  {p}" for p in paths)]
    assert len(lines) == 6 and lines[5].endswith(f"{paths[1]}: No such file or directory"), lines[5]


@needs_dali
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("skip_bad", [False, True])
@pytest.mark.parametrize("how", ["emptied", "removed"])
def test_dali_a_file_broken_after_its_batch_fails_no_batch_of_the_pass(tmp_path, monkeypatch, shuffle, skip_bad,
                                                                       how):
    """The first file of a pass emptied or removed after its batch (a dataset re-exported while a run trains):
    DALI's reader reads its list's start again past the list's end (prefetch), and that read failed the pass's
    last batch, with "DALI failed on a batch read from" naming the last batch's files, not the broken one (skip_bad
    too). The pass is the torch loader's, whole; the next pass names the file, or with skip_bad reads the next good
    one in its place. (Emptied: the reader's mapping of it failed; read without one, only a removed file fails
    there.) The next pass fails no batch on it where the last one did: replaced from its start (DS23)."""
    from bicyclegan.pipelines.dali_loader import DaliLoader
    good_set(tmp_path, n=7)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": shuffle, "drop_last": False,
          "seed": 3, "skip_bad": skip_bad}
    dali, ref = load(tmp_path, "dali", **kw), load(tmp_path, "torch", **kw)
    real, recovered = DaliLoader._recover, []
    monkeypatch.setattr(DaliLoader, "_recover", lambda self, *a: (recovered.append(1), real(self, *a))[1])
    with dali, ref:
        first = next(iter(ref))["paths"][0]
        ref.set_epoch(0)
        for k, (got, want) in enumerate(zip(dali, ref, strict=True)):
            if k == 0:
                open(first, "wb").close() if how == "emptied" else os.remove(first)
            assert got["paths"] == want["paths"] and all((got[x] - want[x]).abs().max() <= 1e-6 for x in "AB")
        if not skip_bad:
            for loader in (dali, ref):
                with pytest.raises(DatasetError, match=f"{re.escape(first)}: cannot decode") as info:
                    list(loader)
                assert first in info.value.files
            return
        assert len(recovered) == (how == "removed")  # (emptied: read without a mapping, it fails no read past the end)
        for got, want in zip(dali, ref, strict=True):
            assert got["paths"] == want["paths"] and all((got[x] - want[x]).abs().max() <= 1e-6 for x in "AB")
        assert [p for p, _ in dali.skipped] == [p for p, _ in ref.skipped] == [first] and len(recovered) == 1


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("preprocess, size, reason", [
    ("crop", (8, 18),  # a half
     "size 9x8 (W x H) is smaller than crop_size 16x16 (preprocess='crop' crops without resizing)"),
    ("none", (8, 18), "size 18x8 gives 8x8 (W x H), which the checks found in no file"),
    ("crop", (16, 33), "odd width 33: cannot split into equal A | B halves"),
])
def test_a_file_replaced_by_another_size_after_the_checks_is_named(tmp_path, num_workers, preprocess, size, reason,
                                                                 caplog):
    """A file rewritten at another size after the checks (a dataset re-exported during training) made
    a batch of unequal tensors: torch.stack's RuntimeError, with a worker's traceback."""
    paths = good_set(tmp_path, n=4)  # 16 x 32 files: 16 x 16 halves
    kw = {"num_workers": num_workers, "shuffle": False, "drop_last": True, "load_size": 16, "crop_size": 16,
          "preprocess": preprocess}
    strict, lenient = load(tmp_path, **kw), load(tmp_path, skip_bad=True, **kw)
    with strict, lenient:  # closed at the end (LOADERS_CLOSED)
        write(paths[1], noise(np.random.default_rng(1), *size))
        with pytest.raises(DatasetError) as info:
            list(strict)
        assert str(info.value) == f"{paths[1]}: changed since the checks: {reason}"
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            got = [p for b in lenient for p in b["paths"]]
        assert got == [paths[0], paths[2], paths[2], paths[3]]  # replaced by the next good sample


def test_a_loader_whose_pass_raised_ends_its_workers_once_dropped(tmp_path):
    """The pass's error was a local of the pass whose frame its traceback holds: that cycle kept the loader and
    its workers until a garbage collection, whose shutdown of them then took 5 s a worker (torch's join timeout,
    where close() takes 0.01 s), in whichever later code the collection ran."""
    import multiprocessing
    paths = good_set(tmp_path, n=4)
    loader = load(tmp_path, num_workers=2, shuffle=False, drop_last=True, load_size=16, crop_size=16)
    before = set(multiprocessing.active_children())
    write(paths[1], noise(np.random.default_rng(1), 16, 33))
    was_enabled = gc.isenabled()
    gc.disable()  # (a collection would end them too, slowly: not what is asked)
    try:
        with pytest.raises(DatasetError, match="changed since the checks"):
            list(loader)
        workers = set(multiprocessing.active_children()) - before
        assert len(workers) == 2
        del loader
        end = time.monotonic() + 15  # (at once, here 0.1 s: the time a loaded machine may take)
        while any(w.is_alive() for w in workers) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(w.is_alive() for w in workers)
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


@needs_dali
@pytest.mark.parametrize("preprocess, size, reason", [
    ("crop", (8, 18), "size 9x8 (W x H) is smaller than crop_size 16x16 (preprocess='crop' crops without resizing)"),
    ("none", (8, 18), "size 18x8 gives 8x8 (W x H), which the checks found in no file"),
    ("crop", (16, 33), "odd width 33: cannot split into equal A | B halves"),
])
def test_dali_names_a_file_replaced_by_another_size_after_the_checks(tmp_path, preprocess, size, reason):
    """The same on DALI's loader: with crop it listed the whole batch ("DALI failed on a batch read
    from"), with none a raw traceback (IsDenseTensor) from handing over unequal images as one tensor,
    and an odd width it split one pixel off the middle without a word."""
    paths = good_set(tmp_path, n=4)
    kw = {"shuffle": False, "drop_last": True, "load_size": 16, "crop_size": 16, "preprocess": preprocess}
    strict, lenient = load(tmp_path, "dali", **kw), load(tmp_path, "dali", skip_bad=True, **kw)
    write(paths[1], noise(np.random.default_rng(1), *size))
    with pytest.raises(DatasetError) as info:
        list(strict)
    assert str(info.value) == f"cannot decode:\n  {paths[1]}: changed since the checks: {reason}"
    got = [p for b in lenient for p in b["paths"]]
    assert got == [paths[0], paths[2], paths[2], paths[3]]  # replaced by the next good sample


@needs_dali
def test_dali_names_a_b_file_replaced_by_another_size_after_the_checks(tmp_path):
    # A/ and B/ folders: a B rewritten 2 px wider after the checks, which DALI's crop took without an
    # error (the pair no longer of one geometry); B's size is judged as A's, the pair named by its A.
    rng = np.random.default_rng(0)
    a = [write(tmp_path / f"train/A/{i}.png", noise(rng, 16, 16)) for i in range(4)]
    b = [write(tmp_path / f"train/B/{i}.png", noise(rng, 16, 16)) for i in range(4)]
    kw = {"shuffle": False, "drop_last": True, "load_size": 16, "crop_size": 16, "preprocess": "crop"}
    strict, lenient = load(tmp_path, "dali", **kw), load(tmp_path, "dali", skip_bad=True, **kw)
    write(b[1], noise(rng, 16, 18))
    with pytest.raises(DatasetError) as info:
        list(strict)
    assert str(info.value) == (f"cannot decode:\n  {a[1]}: changed since the checks: size 16x16 differs from "
                               f"its partner {b[1]} (18x16)")
    assert [p for batch in lenient for p in batch["paths"]] == [a[0], a[2], a[2], a[3]]


@needs_dali
def test_dali_names_an_input_replaced_by_another_size_after_the_checks(tmp_path):
    # Inputs alone (an A/ folder without B/): one image and one size a sample, judged as the pairs'.
    rng = np.random.default_rng(0)
    a = [write(tmp_path / f"train/A/{i}.png", noise(rng, 16, 16)) for i in range(4)]
    kw = {"shuffle": False, "drop_last": True, "load_size": 16, "crop_size": 16, "preprocess": "scale_width"}
    strict, lenient = load(tmp_path, "dali", **kw), load(tmp_path, "dali", skip_bad=True, **kw)
    assert strict.layout == "single"
    write(a[1], noise(rng, 16, 18))  # width 18 scaled to 16: 16 x 14, a size the checks found in no file
    with pytest.raises(DatasetError) as info:
        list(strict)
    assert str(info.value) == (f"cannot decode:\n  {a[1]}: changed since the checks: size 18x16 gives 16x14 (W x H), "
                               "which the checks found in no file")
    assert [p for batch in lenient for p in batch["paths"]] == [a[0], a[2], a[2], a[3]]


def test_a_root_of_hidden_leftovers_alone_lacks_its_split(tmp_path):
    # macOS leaves ._name.jpg beside files copied from it: the root was taken for a folder of images,
    # and "holds no images" hid that the split's folder is what is missing.
    (tmp_path / "._0001.jpg").write_bytes(b"\x00\x05\x16\x07")
    with pytest.raises(DatasetError, match=f"^missing folder {tmp_path / 'train'} "):
        load(tmp_path)


def test_a_folder_of_gifs_alone_is_refused_naming_the_extensions_read(tmp_path):
    # GIFs are skipped, as the reference's loader skips them; a folder of them alone was "missing folder
    # <folder>/train (looked for images or an A/ folder ...)", not that its files are of none of the extensions.
    rng = np.random.default_rng(0)
    for name in ("b.gif", "a.GIF"):
        Image.fromarray(noise(rng, 16, 16)).save(tmp_path / name, format="GIF")
    with pytest.raises(DatasetError) as info:
        load(tmp_path)
    assert str(info.value) == (f"{tmp_path} holds no images of the extensions read (.jpg, .jpeg, .png, .ppm, .bmp), "
                               "only other files (a.GIF and 1 more), and no folder train/ or A/")


def test_a_broken_link_is_named_as_one(tmp_path):
    # It was "unreadable image (FileNotFoundError: ...)" for a file that is there, as a link.
    paths = good_set(tmp_path, n=3)
    os.remove(paths[1])
    os.symlink(tmp_path / "moved-away.png", paths[1])
    with pytest.raises(DatasetError, match=f"{paths[1]}: broken link \\(to {tmp_path / 'moved-away.png'}, which "
                                           f"does not exist\\)"):
        load(tmp_path, load_size=16, crop_size=16)


def test_a_named_pipe_or_a_link_to_a_device_is_refused_not_read(tmp_path):
    """A named pipe with an image's name: opening it waited for a writer for ever (the checks hung,
    --skip_bad and --dry-run too); a link to a device was read as a file (to /dev/zero: until memory
    ran out). Each is named as what it is, and --skip_bad leaves it out and counts it."""
    paths = good_set(tmp_path, n=4)
    os.remove(paths[1])
    os.mkfifo(paths[1])
    os.remove(paths[2])
    os.symlink("/dev/null", paths[2])  # (not /dev/zero, which a regression would read until memory ran out)
    done = threading.Event()

    def unblock():  # a reader of the pipe gets an end of file, so that a regression fails here, not hangs
        while not done.wait(0.2):
            try:
                os.close(os.open(paths[1], os.O_WRONLY | os.O_NONBLOCK))  # (no reader: ENXIO)
            except OSError:
                pass
    threading.Thread(target=unblock, daemon=True).start()
    try:
        with pytest.raises(DatasetError) as info:
            load(tmp_path, load_size=16, crop_size=16)
    finally:
        done.set()
    said = str(info.value)
    assert f"{paths[1]}: not a regular file (a named pipe)" in said, said
    assert f"{paths[2]}: not a regular file (a character device)" in said, said
    loader = load(tmp_path, load_size=16, crop_size=16, skip_bad=True, drop_last=False, shuffle=False)
    assert sorted(path for path, _ in loader.skipped) == [str(paths[1]), str(paths[2])]
    assert [p for b in loader for p in b["paths"]] == [str(paths[0]), str(paths[3])]


@needs_dali
def test_dali_refuses_a_file_name_that_is_not_utf8_by_name_and_torch_reads_it(tmp_path):
    # b'caf\xe9.png' (Latin-1): Python reads it as 'caf\udce9.png', which DALI's reader cannot take as a
    # file name; the first epoch stopped with DALI's "Unsupported argument type with name files", after
    # every check had passed (train --dry-run too). Refused when the loader is made, naming the file.
    paths = good_set(tmp_path, n=4)
    latin = os.path.join(os.path.dirname(os.fsencode(paths[2])), b"caf\xe9.png")
    os.rename(paths[2], latin)
    with pytest.raises(DatasetError) as info:
        load(tmp_path, "dali", load_size=16, crop_size=16)
    assert str(info.value) == (f"1 file name is not UTF-8, which DALI's reader cannot take: {latin!r}; rename the "
                               f"files (e.g. convmv -f latin1 -t utf8), or read the data with backend='torch' "
                               f"(--backend torch)")
    got = [p for b in load(tmp_path, load_size=16, crop_size=16, drop_last=False, shuffle=False) for p in b["paths"]]
    assert os.fsdecode(latin) in got and len(got) == 4


def test_a_bad_file_whose_name_holds_a_newline_is_one_line_of_the_list(tmp_path):
    # Printed as it is, "bad\nname.png" broke its line of the list in two.
    good_set(tmp_path, n=2)
    odd = tmp_path / "train" / "bad\nname ü.png"
    odd.write_bytes(broken_png())
    with pytest.raises(DatasetError) as info:
        load(tmp_path, load_size=16, crop_size=16)
    lines = str(info.value).splitlines()
    assert lines[0] == f"1 bad file(s) in {tmp_path / 'train'}:" and len(lines) == 3, lines
    assert lines[1].startswith(f"  {str(odd)!r}: ") and "\\n" in lines[1]


def test_no_usable_image_among_the_first_max_dataset_size_says_the_rest_were_not_looked_at(tmp_path):
    # "no usable images left" where 2 files of 5 were bad: the 2 that max_dataset_size took.
    paths = good_set(tmp_path, n=5)
    for p in paths[:2]:
        with open(p, "wb") as f:
            f.write(broken_png())
    with pytest.raises(DatasetError) as info:
        load(tmp_path, load_size=16, crop_size=16, skip_bad=True, max_dataset_size=2)
    assert str(info.value) == (f"no usable images left in {tmp_path / 'train'} (max_dataset_size=2 took the first 2 "
                               f"of its 5 samples, all bad: the rest were not looked at)")
    for p in paths[2:]:
        os.remove(p)
    with pytest.raises(DatasetError) as info:
        load(tmp_path, load_size=16, crop_size=16, skip_bad=True, max_dataset_size=2)
    assert str(info.value) == f"no usable images left in {tmp_path / 'train'}"  # (all of them looked at)


@needs_dali
@pytest.mark.parametrize("skip_bad", [False, True])
def test_dali_a_file_broken_after_its_batch_in_a_pass_from_a_later_batch_fails_no_batch(tmp_path, skip_bad):
    """As above, in a pass from batch 3 (a resume mid-epoch): the pipeline lists the files from there on, and reads
    that list's start again past its end; the file broken is the pass's first, past the first 3 batches of the
    epoch's order (_recover looks behind at the list's start, not the order's: DS18, DS37)."""
    good_set(tmp_path, n=16)  # (5 batches in the pass: its reader reads the list's start again after the removal)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": False, "drop_last": False,
          "skip_bad": skip_bad}
    dali, ref = load(tmp_path, "dali", **kw), load(tmp_path, "torch", **kw)
    with dali, ref:
        for loader in (dali, ref):
            loader.set_epoch(0, 3)
        first = None
        for k, (got, want) in enumerate(zip(dali, ref, strict=True)):
            if k == 0:
                first = got["paths"][0]
                os.remove(first)
            assert got["paths"] == want["paths"] and all((got[x] - want[x]).abs().max() <= 1e-6 for x in "AB")
        assert first == str(tmp_path / "train" / "006.png")
        if not skip_bad:
            with pytest.raises(DatasetError, match=f"{re.escape(first)}: cannot decode"):
                list(dali)
            return
        for got, want in zip(dali, ref, strict=True):
            assert got["paths"] == want["paths"] and all((got[x] - want[x]).abs().max() <= 1e-6 for x in "AB")
        assert [p for p, _ in dali.skipped] == [p for p, _ in ref.skipped] == [first]


@needs_dali
def test_dali_keeps_a_file_only_its_decoder_fails_on_replaced_and_fails_no_batch_on_it_again(tmp_path, monkeypatch):
    """skip_bad: a file that PIL decodes and DALI's decoder fails on (its error names it: "Failed to decode sample")
    is replaced from there on, as one that PIL fails on; unlike one that PIL fails on, it is not read again at the
    next pass (PIL's decode of it says nothing of DALI's): that pass fails no batch on it (DS25, DS27)."""
    from bicyclegan.pipelines.dali_loader import DaliLoader
    paths = good_set(tmp_path, n=6)
    target, failed, real = paths[1], [], DaliLoader._build

    def build(self, positions, epoch):  # DALI's decoder failing on `target` (a fault of its own, faked)
        pipe = real(self, positions, epoch)
        run = pipe.run

        def failing():
            outs = run()
            if any(self.samples[positions[j]].path == target for j in np.array(outs[-1].as_tensor()).reshape(-1)):
                failed.append(1)
                raise RuntimeError(f"Critical error in pipeline:\nError in thread 0: [/opt/dali/decoder.cc:81] "
                                   f"Failed to decode sample 1 : {target}\nCurrent pipeline object is no longer valid.")
            return outs
        pipe.run = failing
        return pipe
    monkeypatch.setattr(DaliLoader, "_build", build)
    kw = {"batch_size": 2, "crop_size": (12, 10), "preprocess": "crop", "shuffle": False, "augment": False,
          "drop_last": False, "skip_bad": True}
    with load(tmp_path, "dali", **kw) as dali:
        for _ in range(2):
            assert [p for b in dali for p in b["paths"]] == [paths[2] if p == target else p for p in paths]
        assert dali.skipped == [(target, "cannot decode (DALI's decoder fails on it)")] and len(failed) == 1
