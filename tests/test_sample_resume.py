"""`sample` run again after a stop (Ctrl-C, SIGTERM, kill -9, a preempted job) goes on where it stopped: the inputs
whose images a call of the same recipe (weights, inputs, options, seed) wrote whole are not made again, and the
folder is then byte for byte what one uninterrupted call writes. Any change of the recipe makes every image again.
Each call's work is counted by its calls of sample_columns (one per input made); the files are compared with those
of a straight call into another folder."""
import importlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL
import pytest
import torch
from PIL import Image

from bicyclegan.engine import BicycleGAN, interpolate, make_config, sample
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.pipelines import make_demo_dataset

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch",
            init_gain=1.0)
N = 6  # inputs
SAMPLING = importlib.import_module("bicyclegan.engine.sample")  # (the package's `sample` is the function)
IMAGES = importlib.import_module("bicyclegan.engine.images")


def tiny(root, seed=3):
    torch.manual_seed(seed)
    return BicycleGAN(make_config("reference", dataroot=str(root), **TINY), device="cpu", training=False)


@pytest.fixture
def setup(tmp_path):
    """(demo data of N val inputs, each PNG stored uncompressed: an image of the same size is a file of the same
    size; a checkpoint of tiny random networks reading it)."""
    root = make_demo_dataset(tmp_path / "demo", n_train=2, n_test=0, n_val=N, size=32)
    for f in (root / "val").glob("*.png"):
        Image.open(f).save(f, compress_level=0)
    return root, save_checkpoint(tiny(root), tmp_path / "m.pt")


def files(folder):
    """Every file below `folder`: relative name -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def made(monkeypatch):
    """The inputs each call makes: call it to count those made since the last count."""
    calls = []
    real = SAMPLING.sample_columns
    monkeypatch.setattr(SAMPLING, "sample_columns", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])

    def count():
        n = len(calls)
        calls.clear()
        return n
    return count


def stopped(call, after: int):
    """call() stopped by a Ctrl-C once `after` inputs are written (as the stop tests of test_commands.py do)."""
    real = IMAGES.count_line

    def stop(label, done, total):
        if done == after:
            raise KeyboardInterrupt
    IMAGES.count_line = stop  # (write_shares')
    try:
        with pytest.raises(KeyboardInterrupt):
            call(progress=True)
    finally:
        IMAGES.count_line = real


KW = dict(phase="val", num=N, n_samples=2, seed=3, device="cpu")


def invert_keeping_size_and_time(f):
    """Another image in `f` of the same size and time, as `cp -p` or `rsync -a` leave a replaced file."""
    st = f.stat()
    Image.fromarray(255 - np.asarray(Image.open(f))).save(f, compress_level=0)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("after, options", [
    (4, {}),
    (1, dict(sync=True, aspect_ratio=1.5)),  # the grid's rows: one written before, the others made
    (5, dict(n_samples=3, spread=True, encode=False)),
    (N, {}),  # stopped as the last input was written: nothing made again
])
def test_a_stopped_sample_run_again_makes_the_missing_inputs_alone_and_writes_a_straight_calls_files(
        setup, tmp_path, made, capsys, after, options):
    root, ckpt = setup
    kw = {**KW, **options}
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **kw))
    made()
    stopped(lambda **p: sample(ckpt, root, out=tmp_path / "r", **kw, **p), after)
    assert made() == after and not (tmp_path / "r" / "index.html").exists()
    capsys.readouterr()
    assert files(sample(ckpt, root, out=tmp_path / "r", progress=True, **kw)) == straight
    assert made() == N - after
    assert (f"{after} of {N} inputs already sampled into {tmp_path / 'r'} by an earlier call of the same weights, "
            f"inputs and options: sampling the other {N - after}") in capsys.readouterr().err
    # the same command once more: every input written, nothing made, the same files
    assert files(sample(ckpt, root, out=tmp_path / "r", progress=False, **kw)) == straight and made() == 0


def test_an_input_stopped_part_way_through_its_images_is_made_again(setup, tmp_path, made, monkeypatch):
    # Ctrl-C while an input's images are written: none of them is put in place (AtomicWrites), no temp file is left;
    # that input is not taken as written.
    root, ckpt = setup
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    real = SAMPLING.AtomicWrites.add

    def stopping(group, path, write):
        if Path(path).name == "00003_random_z1.png":
            raise KeyboardInterrupt
        return real(group, path, write)
    monkeypatch.setattr(SAMPLING.AtomicWrites, "add", stopping)
    made()
    with pytest.raises(KeyboardInterrupt):
        sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    assert made() == 5  # (the next input is made while an input's images are written; its own are not begun)
    assert not [p for p in (tmp_path / "r" / "images").iterdir() if p.name.startswith(("00003", ".00003", "00004",
                                                                                          ".00004"))]
    monkeypatch.setattr(SAMPLING.AtomicWrites, "add", real)
    assert files(sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)) == straight
    assert made() == N - 3


def test_inputs_written_before_wherever_they_lie_are_not_made_again(setup, tmp_path, made):
    # Those written form no run from the first (another number of torchrun's processes, each its share's first
    # inputs; a file broken since the checks): each input missing is made, its own codes, no other.
    root, ckpt = setup
    straight = files(sample(ckpt, root, out=tmp_path / "r", progress=False, **KW))
    made()
    for gone in ("00001_encoded.png", *(f"00004_{c}.png" for c in ("input", "ground_truth", "encoded", "random_z1",
                                                                   "random_z2"))):
        (tmp_path / "r" / "images" / gone).unlink()
    assert files(sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)) == straight
    assert made() == 2


def test_the_inputs_to_make_are_read_in_one_pass_from_each_first_one(setup, tmp_path, monkeypatch):
    # The loader's pass starts at the first input to make and goes on through the next ones; another starts only
    # past inputs written before (a pass's start is a DALI pipeline's reset, workers' restart): a straight call
    # reads in one pass from input 0, a call missing inputs 1 and 4 in two, from each.
    root, ckpt = setup
    starts = []
    build = SAMPLING.build_loader

    def counting(*args, **kwargs):
        loader = build(*args, **kwargs)
        real = loader.set_epoch
        loader.set_epoch = lambda epoch, start_batch=0: (starts.append(start_batch), real(epoch, start_batch))[1]
        return loader
    monkeypatch.setattr(SAMPLING, "build_loader", counting)
    sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    assert starts == [0]
    for gone in ("00001_encoded.png", "00004_input.png"):
        (tmp_path / "r" / "images" / gone).unlink()
    starts.clear()
    sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    assert starts == [1, 4]


def test_a_call_of_fewer_inputs_than_the_split_records_its_own_alone(setup, tmp_path):
    # With skip_bad the loader lists (and checks) every file of the split, so that --num good ones are found; the
    # record holds the inputs the call samples, whose contents alone are read for it (not those of every file of
    # a large split, for a call of a few).
    root, ckpt = setup
    sample(ckpt, root, out=tmp_path / "r", progress=False, skip_bad=True, **{**KW, "num": 2})
    inputs = json.loads((tmp_path / "r" / ".sample.json").read_text())["inputs"]
    assert [names[0::2] for names in inputs] == [["00000.png"], ["00001.png"]]


def test_another_num_keeps_the_inputs_both_calls_have(setup, tmp_path, made):
    # An input's codes and file names do not depend on --num: a call of 3 after one of 6 stopped at 4 makes none
    # (the 4th's images pruned as before), then one of 6 the other 3.
    root, ckpt = setup
    stopped(lambda **p: sample(ckpt, root, out=tmp_path / "r", **KW, **p), 4)
    made()
    for num, want in ((3, 0), (N, 3)):
        kw = {**KW, "num": num}
        got = files(sample(ckpt, root, out=tmp_path / "r", progress=False, **kw))
        assert made() == want, num
        assert got == files(sample(ckpt, root, out=tmp_path / f"straight{num}", progress=False, **kw)), num
        made()


def _other_weights(root, ckpt):
    save_checkpoint(tiny(root, seed=4), ckpt)  # the same path, new weights (a run trained further)


def _another_first_input(root, ckpt):
    # A file that sorts first: every input after it has another place (its codes) and maybe another file name.
    (root / "val" / "000.png").write_bytes((root / "val" / "00003.png").read_bytes())


CHANGES = {  # name: the options of the call after the first, or a change made to the files
    "weights": _other_weights,
    "inputs": _another_first_input,
    "seed": dict(seed=4),
    "n_samples": dict(n_samples=3),
    "sync": dict(sync=True),
    "spread": dict(spread=True),
    "no_encode": dict(encode=False),
    "aspect_ratio": dict(aspect_ratio=2.0),
    "direction": dict(direction="BtoA"),
    "preprocess": dict(preprocess="resize_and_crop", load_size=64),
    # the whole A|B image read as the input: the same files, the same input.png, random_z1.png... names
    "layout": dict(layout="single"),
}


def takes_none_then_goes_on(call, straight, made, capsys, out):
    """call(progress=...) into `out`, a folder of another recipe's images, takes none of them: stopped after 2
    inputs it made 2 (and left no earlier gallery), and run again the other 4 alone, none of the earlier images of
    theirs taken; its files are then `straight` (a straight call's)."""
    made()
    stopped(call, 2)
    assert made() == 2 and not {"index.html", "grid.png"} & set(files(out))  # (an earlier one's dropped)
    capsys.readouterr()
    got = files(call(progress=True))
    assert made() == N - 2 and f"2 of {N} inputs already sampled" in capsys.readouterr().err
    assert got == straight


@pytest.mark.parametrize("change", CHANGES)
def test_a_call_of_another_recipe_makes_every_image_again(setup, tmp_path, made, capsys, change):
    # After a call, one of another checkpoint at the same path, other input files, an option or a seed.
    root, ckpt = setup
    sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    how = CHANGES[change]
    kw = {**KW, **how} if isinstance(how, dict) else (how(root, ckpt), KW)[1]
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **kw))
    takes_none_then_goes_on(lambda **p: sample(ckpt, root, out=tmp_path / "r", **kw, **p), straight, made, capsys,
                            tmp_path / "r")


def test_another_crop_size_makes_every_image_again(setup, tmp_path, made, capsys):
    # crop_size changes the loader's crop alone, not the model's config: inputs resized to 64 and cropped to the
    # model's 32, then to 64 (the whole input), are images of other pixels under the same names.
    root, ckpt = setup
    kw = {**KW, "preprocess": "resize_and_crop", "load_size": 64}
    sample(ckpt, root, out=tmp_path / "r", progress=False, **kw)
    kw["crop_size"] = 64
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **kw))
    assert Image.open(tmp_path / "straight" / "images" / "00000_input.png").size == (64, 64)
    takes_none_then_goes_on(lambda **p: sample(ckpt, root, out=tmp_path / "r", **kw, **p), straight, made, capsys,
                            tmp_path / "r")


def test_a_b_file_changed_since_makes_its_input_again_alone(setup, tmp_path, made):
    # Inputs of A/ and B/ folders: B's image, the ground truth, is encoded into G(A, E(B)). Changed since (its
    # size and time kept), its input's images are made again, the others kept.
    root, ckpt = setup
    data = tmp_path / "data"
    for side in ("A", "B"):
        (data / "val" / side).mkdir(parents=True)
    for f in sorted((root / "val").glob("*.png")):
        ab = Image.open(f)
        w, h = ab.size
        ab.crop((0, 0, w // 2, h)).save(data / "val" / "A" / f.name, compress_level=0)
        ab.crop((w // 2, 0, w, h)).save(data / "val" / "B" / f.name, compress_level=0)
    sample(ckpt, data, out=tmp_path / "r", progress=False, **KW)
    invert_keeping_size_and_time(data / "val" / "B" / "00002.png")
    straight = files(sample(ckpt, data, out=tmp_path / "straight", progress=False, **KW))
    made()
    got = files(sample(ckpt, data, out=tmp_path / "r", progress=False, **KW))
    assert made() == 1 and got == straight


def test_rank_0_removes_the_earlier_recipes_images_of_every_ranks_inputs(setup, tmp_path):
    # Under torchrun rank 0 alone removes, before any image is written, the images of another recipe under the
    # names this call writes: every rank's inputs', not its own share's (rank 0 of 2 writes inputs 0-2 of 6).
    # Stopped after its first input (the count's 2: one a rank), the folder holds none of the earlier call's images,
    # which a call after would have taken as this recipe's (the record says so). (Rank 0 of 2 in one process: a Dist
    # without a group.)
    from bicyclegan.engine.runtime import Dist
    root, ckpt = setup
    sample(ckpt, root, out=tmp_path / "r", progress=False, **{**KW, "seed": 4})
    stopped(lambda **p: sample(ckpt, root, out=tmp_path / "r", dist=Dist(rank=0, world=2), **KW, **p), 2)
    assert sorted({p.name[:5] for p in (tmp_path / "r" / "images").iterdir()}) == ["00000"]


def test_an_input_file_changed_since_is_made_again_alone(setup, tmp_path, made):
    # Input 2 drawn again in other colours: a file of the same size, its time put back (tar -x, cp -p, rsync -a):
    # only its contents tell it from the one sampled. The others keep their names and codes.
    root, ckpt = setup
    sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    invert_keeping_size_and_time(root / "val" / "00002.png")
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    made()
    assert files(sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)) == straight
    assert made() == 1


def test_a_model_object_is_told_by_its_weights(setup, tmp_path, made, capsys):
    # A model passed as an object (a notebook's): the same object goes on; trained between two calls, its images
    # are new.
    root, _ = setup
    model = tiny(root)
    stopped(lambda **p: sample(model, root, out=tmp_path / "r", **KW, **p), 4)
    made()
    assert files(sample(model, root, out=tmp_path / "r", progress=False, **KW)) == files(
        sample(model, root, out=tmp_path / "before", progress=False, **KW))
    assert made() == N - 4 + N
    with torch.no_grad():
        next(model.G.parameters()).add_(0.5)
    straight = files(sample(model, root, out=tmp_path / "straight", progress=False, **KW))
    takes_none_then_goes_on(lambda **p: sample(model, root, out=tmp_path / "r", **KW, **p), straight, made, capsys,
                            tmp_path / "r")


@pytest.mark.parametrize("damage", ["cut", "not a record", "inputs not a list", "inputs not lists", "other inputs"])
def test_a_record_damaged_since_is_taken_for_none(setup, tmp_path, made, capsys, damage):
    # Written by rename, the record is whole; one cut or rewritten since (a disk's fault, a hand) is no record.
    root, ckpt = setup
    call = lambda **p: sample(ckpt, root, out=tmp_path / "r", **KW, **p)  # noqa: E731
    stopped(call, 4)
    record = tmp_path / "r" / ".sample.json"
    text = record.read_text()
    saved = json.loads(text)
    record.write_text({"cut": text[:len(text) // 2], "not a record": "[1, 2]",
                       "inputs not a list": json.dumps({**saved, "inputs": 4}),
                       "inputs not lists": json.dumps({**saved, "inputs": list(range(N))}),
                       "other inputs": json.dumps({**saved, "inputs": saved["inputs"][1:]})}[damage])
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    takes_none_then_goes_on(call, straight, made, capsys, tmp_path / "r")


def test_an_image_whose_write_was_killed_is_not_taken_as_written(setup, tmp_path, made):
    # kill -9 in the middle of writing an image: what is left is its temporary file (the name it is written under
    # before the rename), never a part of it under its own name. The run again makes that input again and leaves
    # no temporary file, also one of a file written whole before (a write of it killed later).
    root, ckpt = setup
    out = tmp_path / "r"
    code = f"""
import os, signal, importlib
m = importlib.import_module("bicyclegan.engine.sample")
real = m.AtomicWrites.add
def dying(group, path, write):
    if path.name != "00002_encoded.png":
        return real(group, path, write)
    def half(f):
        f.write(b"\\x89PNG\\r\\n\\x1a\\n half an image")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(group, path, half)
m.AtomicWrites.add = dying
m.sample({str(ckpt)!r}, {str(root)!r}, out={str(out)!r}, progress=False, **{KW!r})
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = sorted(p.name for p in (out / "images").iterdir())
    assert "00002_encoded.png" not in left and [n for n in left if n.startswith(".00002_encoded.png.")], left
    assert {f"0000{i}_{c}.png" for i in range(2) for c in ("input", "ground_truth", "encoded", "random_z1",
                                                         "random_z2")} <= set(left)
    (out / "images" / ".00000_input.png.kill0.tmp").write_bytes(b"x")  # (an earlier write of a file kept, killed)
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    made()
    assert files(sample(ckpt, root, out=out, progress=False, **KW)) == straight
    assert made() == N - 2


def test_a_kill_between_an_inputs_renames_leaves_it_to_be_made_again(setup, tmp_path, made):
    # An input's images are renamed into place together once every one is on the disk (AtomicWrites): killed after
    # two of its renames, that input has two whole images in place and its others' temp files, and is not taken as
    # written; the run again makes it and leaves no temp file.
    root, ckpt = setup
    out = tmp_path / "r"
    code = f"""
import os, signal
from pathlib import Path
replace, renamed = os.replace, []
def dying(src, dst, **kw):
    if Path(dst).name.startswith("00002_"):
        if len(renamed) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        renamed.append(dst)
    return replace(src, dst, **kw)
os.replace = dying
from bicyclegan.engine import sample
sample({str(ckpt)!r}, {str(root)!r}, out={str(out)!r}, progress=False, **{KW!r})
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = sorted(p.name for p in (out / "images").iterdir())
    placed, temps = [n for n in left if n.startswith("00002_")], [n for n in left if n.startswith(".00002_")]
    assert len(placed) == 2 and len(temps) == 3 and all(n.endswith(".tmp") for n in temps), left
    assert all(Image.open(out / "images" / n).convert("RGB").size == (32, 32) for n in placed)  # whole
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    made()
    assert files(sample(ckpt, root, out=out, progress=False, **KW)) == straight
    assert made() == N - 2


def test_every_image_is_renamed_after_its_fsync_returned(setup, tmp_path, monkeypatch):
    # (through sample: its images are written by AtomicWrites, whose order test_reliability checks)
    root, ckpt = setup
    fsynced, late, fsync, replace = set(), [], os.fsync, os.replace

    def fsyncing(fd):
        fsync(fd)
        fsynced.add(os.fstat(fd).st_ino)

    def renaming(src, dst, **kw):
        if os.stat(src).st_ino not in fsynced:
            late.append(Path(dst).name)
        return replace(src, dst, **kw)
    monkeypatch.setattr(os, "fsync", fsyncing)
    monkeypatch.setattr(os, "replace", renaming)
    out = sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    assert late == [] and len(list((out / "images").iterdir())) == N * 5


def test_an_inputs_images_are_fsynced_several_at_once_by_threads_that_end_with_the_call(setup, tmp_path, monkeypatch):
    # The gain of AtomicWrites: an input's fsyncs wait on the disk together (SYNCERS threads), their waits ended by
    # one commit of the journal; one at a time, each waited for its own. (A slow disk: each fsync takes 0.1 s.) The
    # pools' threads end with the call: a caller's process is left no idle threads of it.
    import threading
    import time
    root, ckpt = setup
    lock, busy, most, fsync = threading.Lock(), [0], [0], os.fsync

    def slow(fd):
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # (a folder's)
            return fsync(fd)
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        try:
            time.sleep(0.1)
            return fsync(fd)
        finally:
            with lock:
                busy[0] -= 1
    monkeypatch.setattr(os, "fsync", slow)
    sample(ckpt, root, out=tmp_path / "r", progress=False, **dict(KW, num=1))
    assert most[0] > 1  # (the input's 5 images: up to 5 at once, as the threads start)
    assert not [t.name for t in threading.enumerate() if t.name.startswith(("sample-write", "sample-fsync"))]

def test_ctrl_c_while_an_inputs_images_are_written_ends_their_writes_before_the_call_ends(setup, tmp_path,
                                                                                          monkeypatch):
    # Ctrl-C in the caller's thread while the writers' threads encode an input's images: the call raises once they
    # ended (none writes after it), and what they wrote is removed (the group was left without its commit).
    import threading
    import time
    root, ckpt = setup
    real, ended, begun = SAMPLING.AtomicWrites.add, [], threading.Event()

    def slow(group, path, write):
        def encoding(f):  # (its temp file made: the group's discard removes it as it ends)
            begun.set()
            time.sleep(0.3)
            write(f)
        try:
            return real(group, path, encoding)
        finally:
            ended.append(time.monotonic())

    def interrupted(jobs):
        begun.wait()
        raise KeyboardInterrupt
    monkeypatch.setattr(SAMPLING.AtomicWrites, "add", slow)
    monkeypatch.setattr(SAMPLING, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    returned = time.monotonic()
    assert ended and max(ended) <= returned
    assert not [p.name for p in (tmp_path / "r").rglob("*") if p.name.endswith((".png", ".tmp"))]  # (images/ removed)

def test_a_stop_while_waiting_for_the_input_in_flight_lets_it_land(setup, tmp_path, monkeypatch):
    # The second input made before the first's images are written, a stop lands in the wait for them (land): the
    # first input's images end in place, as at a stop while the next input is made. They were discarded, so that a
    # stop kept the input or not by the timing (test_shell's SIGHUP case failed on a loaded machine: no image).
    import threading
    import time
    root, ckpt = setup
    real_columns, real_add, made, n = SAMPLING.sample_columns, SAMPLING.AtomicWrites.add, threading.Event(), []
    first, lock = [], threading.Lock()

    def columns(*a, **kw):
        n.append(1)
        try:
            return real_columns(*a, **kw)
        finally:
            if len(n) == 2:
                made.set()

    def add(group, path, write):
        with lock:
            stopping = not first and path.name.startswith("00000_")
            first.append(1)
        if stopping:  # the first input's first image, once the second input is made
            made.wait(30)
            time.sleep(0.3)  # (the caller's thread now waits in land())
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
            time.sleep(0.2)
        return real_add(group, path, write)

    def stop(signum, frame):
        raise KeyboardInterrupt
    monkeypatch.setattr(SAMPLING, "sample_columns", columns)
    monkeypatch.setattr(SAMPLING.AtomicWrites, "add", add)
    before = signal.signal(signal.SIGUSR1, stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    finally:
        signal.signal(signal.SIGUSR1, before)
    names = sorted(p.name for p in (tmp_path / "r" / "images").iterdir())
    assert names and all(name.startswith("00000_") and name.endswith(".png") for name in names), names


def test_an_image_that_cannot_be_written_is_named_as_a_sample_image(setup, tmp_path, replace_fails):
    # The command's one-line error (OutputError: exit 2), naming the image: its rename failed (a failing disk).
    from bicyclegan.engine.errors import OutputError
    root, ckpt = setup
    replace_fails("00001_encoded.png")
    name = re.escape(str(tmp_path / "r" / "images" / "00001_encoded.png"))
    with pytest.raises(OutputError, match=rf"^cannot write sample image {name}: Input/output error"):
        sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)

def test_interpolate_into_the_folder_of_a_stopped_sample_leaves_none_of_its_images_taken(setup, tmp_path, made,
                                                                                         capsys):
    # interpolate writes <stem>_input.png too: stopped after its first input, sample's other images of that input
    # stayed beside it. Its start drops sample's record: the next sample takes nothing as written.
    root, ckpt = setup
    out = tmp_path / "r"
    call = lambda **p: sample(ckpt, root, out=out, **KW, **p)  # noqa: E731
    stopped(call, 4)
    stopped(lambda **p: interpolate(ckpt, root, out=out, phase="val", num=3, segments=1, frames=1, mp4=False,
                                    device="cpu", **p), 1)
    assert (out / "images" / "00000_strip.png").is_file() and (out / "images" / "00000_encoded.png").is_file()
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    takes_none_then_goes_on(call, straight, made, capsys, out)


def test_the_command_stopped_says_the_same_command_goes_on_and_then_how_many_inputs_it_kept(setup, tmp_path, capsys,
                                                                                           monkeypatch):
    from bicyclegan.engine.cli import main
    root, ckpt = setup
    argv = ["sample", str(ckpt), "--dataroot", str(root), "--phase", "val", "--num", str(N), "--device", "cpu",
            "--out", str(tmp_path / "r")]

    def stop(label, done, total):
        if done == 4:
            raise KeyboardInterrupt
    monkeypatch.setattr(IMAGES, "count_line", stop)
    assert main(argv) == 130
    assert capsys.readouterr().err == "interrupted; the images written so far are whole: the same command goes on " \
                                      "from them\n"
    monkeypatch.undo()
    assert main(argv) == 0
    assert (f"4 of {N} inputs already sampled into {tmp_path / 'r'} by an earlier call of the same weights, inputs "
            f"and options: sampling the other 2 (to sample them all again, remove {tmp_path / 'r' / '.sample.json'})"
            ) in capsys.readouterr().err


def test_an_input_gone_since_the_checks_is_left_out_as_before(setup, tmp_path, monkeypatch):
    # Its contents, for the record, cannot be read: the loader's skip_bad leaves it out as it did (no traceback of
    # the record's reading), and the call after it, the file back, makes it alone.
    root, ckpt = setup
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    build = SAMPLING.build_loader
    gone = root / "val" / "00001.png"
    kept = gone.read_bytes()

    def removing(*args, **kwargs):  # the file removed once the loader has checked it
        loader = build(*args, **kwargs)
        gone.unlink()
        return loader
    monkeypatch.setattr(SAMPLING, "build_loader", removing)
    got = files(sample(ckpt, root, out=tmp_path / "r", progress=False, skip_bad=True, **KW))
    assert {k for k in straight if k.startswith("images/")} - {k for k in got if k.startswith("images/")} == {
        f"images/00001_{c}.png" for c in ("input", "ground_truth", "encoded", "random_z1", "random_z2")}
    monkeypatch.setattr(SAMPLING, "build_loader", build)
    gone.write_bytes(kept)
    calls = []
    real = SAMPLING.sample_columns
    monkeypatch.setattr(SAMPLING, "sample_columns", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    got = files(sample(ckpt, root, out=tmp_path / "r", progress=False, skip_bad=True, **KW))
    assert len(calls) == 1
    assert {k: v for k, v in got.items() if k.startswith("images/")} == {
        k: v for k, v in straight.items() if k.startswith("images/")}


def test_an_input_renamed_since_makes_those_after_it_again(setup, tmp_path, made):
    # An input's file names depend on the names before it: a/1.png and b/1.png wrote 1_* and 1-2_*; a/1.png renamed
    # a/0.png, b/1.png writes 1_* (the files a/1.png's images were written under), and is made again.
    root, ckpt = setup
    data = tmp_path / "data"
    for sub, name, src in (("a", "1", 0), ("b", "1", 1), ("c", "2", 2)):
        (data / "val" / sub).mkdir(parents=True)
        (data / "val" / sub / f"{name}.png").write_bytes((root / "val" / f"0000{src}.png").read_bytes())
    kw = {**KW, "num": 3}
    first = sample(ckpt, data, out=tmp_path / "r", progress=False, **kw)
    assert {p.name for p in (first / "images").glob("*_input.png")} == {"1_input.png", "1-2_input.png", "2_input.png"}
    made()
    sample(ckpt, data, out=tmp_path / "r", progress=False, **kw)
    assert made() == 0  # (nothing renamed yet)
    (data / "val" / "a" / "1.png").rename(data / "val" / "a" / "0.png")
    straight = files(sample(ckpt, data, out=tmp_path / "straight", progress=False, **kw))
    made()
    assert files(sample(ckpt, data, out=tmp_path / "r", progress=False, **kw)) == straight
    assert made() == 3


def test_images_read_by_another_loader_backend_are_not_taken(setup, tmp_path, made, capsys, monkeypatch):
    # backend "auto" (the config's, recorded as such) reads with DALI where it is installed and on a GPU, else
    # with PIL: their decoding and bicubic filters differ (README: up to 29 of 255 at sharp edges). A call whose
    # loader was the other one (DALI installed since, the job sent to another machine) takes none of its images.
    root, ckpt = setup
    build = SAMPLING.build_loader

    def dali_read(*args, **kwargs):  # (the torch loader's pixels, as DALI's loader says of itself)
        loader = build(*args, **kwargs)
        loader.backend = "dali"
        return loader
    monkeypatch.setattr(SAMPLING, "build_loader", dali_read)
    sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    monkeypatch.setattr(SAMPLING, "build_loader", build)
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    takes_none_then_goes_on(lambda **p: sample(ckpt, root, out=tmp_path / "r", **KW, **p), straight, made, capsys,
                            tmp_path / "r")


def test_an_image_cut_short_since_is_made_again(setup, tmp_path, made):
    # Every image this code writes is whole (atomic_write), but a results folder copied by a cp or scp that was
    # stopped holds a file cut short, here one of grid.png's rows: taken as written, the call ended in PIL's
    # traceback (its gallery dropped already, and so at every call after), where it was made again before.
    root, ckpt = setup
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    stopped(lambda **p: sample(ckpt, root, out=tmp_path / "r", **KW, **p), 4)
    for name, keep in (("00001_encoded.png", 40), ("00002_input.png", 0)):
        cut = tmp_path / "r" / "images" / name
        cut.write_bytes(cut.read_bytes()[:keep])
    made()
    assert files(sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)) == straight
    assert made() == N - 4 + 2


@pytest.mark.parametrize("module", [PIL, torch], ids=["pillow", "torch"])
def test_images_of_another_pillow_or_torch_are_not_taken(setup, tmp_path, made, capsys, monkeypatch, module):
    # Pillow decodes and resizes the inputs and encodes the PNG files (its zlib's bytes), torch computes the
    # outputs (its kernels' last bits): a call after an upgrade of either takes none of the images the earlier
    # version wrote.
    root, ckpt = setup
    with monkeypatch.context() as m:
        m.setattr(module, "__version__", "1.0.0")
        sample(ckpt, root, out=tmp_path / "r", progress=False, **KW)
    straight = files(sample(ckpt, root, out=tmp_path / "straight", progress=False, **KW))
    takes_none_then_goes_on(lambda **p: sample(ckpt, root, out=tmp_path / "r", **KW, **p), straight, made, capsys,
                            tmp_path / "r")


def test_images_that_cannot_be_removed_are_a_refusal_naming_the_file(setup, tmp_path, monkeypatch, capsys):
    # A results folder shared with another user, its images/ theirs (not writable here): the images of another
    # recipe there cannot be removed. Said as an output error naming the file (exit 2), as the first image's
    # write said it before, not a traceback.
    from bicyclegan.engine.cli import main
    root, ckpt = setup
    sample(ckpt, root, out=tmp_path / "r", progress=False, **{**KW, "seed": 4})
    images = tmp_path / "r" / "images"
    real = Path.unlink

    def refused(self, *a, **kw):
        if self.parent == images:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **kw)
    monkeypatch.setattr(Path, "unlink", refused)
    assert main(["sample", str(ckpt), "--dataroot", str(root), "--phase", "val", "--num", str(N), "--n_samples", "2",
                 "--seed", "3", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert re.search(f"cannot remove {re.escape(str(images))}/0000[0-5]_[a-z_0-9]+[.]png, an earlier call's image: "
                     f"Permission denied", err) and "Traceback" not in err, err


def test_a_file_named_images_in_the_folder_is_refused_in_a_line(setup, tmp_path, capsys):
    # The results folder holds a file named images where the images' folder goes: a refusal (exit 2) that names
    # it, not a traceback of the first round's removal of earlier images; the file is left as it was.
    from bicyclegan.engine.cli import main
    root, ckpt = setup
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "images").write_text("mine")
    assert main(["sample", str(ckpt), "--dataroot", str(root), "--phase", "val", "--num", "2", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "r" / "images") in err and "Traceback" not in err, err
    assert (tmp_path / "r" / "images").read_text() == "mine"
