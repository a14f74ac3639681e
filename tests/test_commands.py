"""The inference commands (sample, evaluate, interpolate, export) against answers computed here from
the networks themselves and the image files: which z each output gets (the seed, one list per input,
the batch not mattering), the encoded output from B, the networks in eval mode and the moving average
of G wherever a model keeps one. Tiny networks on 32 px demo images (docs/mutation-engine.md, "The
inference commands", lists the mistakes each test catches)."""
import argparse
import importlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bicyclegan.engine import (
    BicycleGAN,
    ConfigError,
    build_generator,
    evaluate,
    interpolate,
    make_config,
    sample,
    sample_columns,
)
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import build_parser, main
from bicyclegan.engine.export import export_generator
from bicyclegan.engine.metrics import classify_palettes
from bicyclegan.pipelines import make_demo_dataset

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch")
NZ = 8


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=2, n_test=0, n_val=3, size=32)


def tiny(root, **kw):
    torch.manual_seed(3)  # init_gain 1: outputs across the range (at 0.02 every pixel is about 128)
    return BicycleGAN(make_config("reference", dataroot=str(root), **{**TINY, "init_gain": 1.0, **kw}), device="cpu",
                      training=False)


def pair(root, i):
    """A and B of val/0000i.png (an aligned 64 x 32 file, A on the left), read with PIL alone."""
    ab = np.asarray(Image.open(root / "val" / f"{i:05d}.png").convert("RGB"), dtype=np.float32)
    t = torch.from_numpy(ab).permute(2, 0, 1)[None] / 127.5 - 1
    return t[..., :32], t[..., 32:]


def pixels(x):
    """A [-1, 1] output as the saved image's pixels (H x W x 3, float)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()


def png(path):
    return np.asarray(Image.open(path), dtype=np.float32)


@pytest.fixture(scope="module")
def batchnorm_model(demo_root):
    """BatchNorm in G and E (at 32 px the U-Net has no dropout level), no moving average: G samples,
    and only in eval mode (the running statistics) are its outputs a function of A and z alone."""
    return tiny(demo_root, norm="batch")


def test_sample_draws_each_inputs_codes_from_the_seed_and_runs_the_networks_in_eval_mode(batchnorm_model, demo_root,
                                                                                         tmp_path):
    model = batchnorm_model.train()  # as a model object starts: the command must switch it
    out = sample(model, demo_root, out=tmp_path / "s", phase="val", n_samples=2, num=2, seed=7, progress=False)
    assert model.training and model.G.training  # left as it was
    G, E = model.G, model.E
    g = torch.Generator().manual_seed(7)
    torch.randn(2, NZ, generator=g)  # the sync list, drawn first
    for i in range(2):
        z = torch.randn(2, NZ, generator=g)  # this input's own codes
        A, B = pair(demo_root, i)
        name = f"{i:05d}"
        assert np.array_equal(png(out / "images" / f"{name}_input.png"), pixels(A))
        assert np.array_equal(png(out / "images" / f"{name}_ground_truth.png"), pixels(B))
        with torch.no_grad():
            G.eval(), E.eval()
            want = {"encoded": G(A, E(B)[0]), "random_z1": G(A, z[:1]), "random_z2": G(A, z[1:])}
        for col, x in want.items():
            assert np.abs(png(out / "images" / f"{name}_{col}.png") - pixels(x)).max() <= 1, (name, col)
    out = sample(model, demo_root, out=tmp_path / "n", phase="val", n_samples=1, num=1, encode=False, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "00000_ground_truth.png", "00000_input.png", "00000_random_z1.png"]


def test_one_inputs_codes_go_through_the_generator_together(batchnorm_model, demo_root, tmp_path):
    # sample ran G once per code for its one input at a time: 5 codes took 6.5 times one forward of all
    # 5 (32 px, CPU). The encoded output, then the 5 codes as one batch of 5; the outputs as above.
    model = batchnorm_model.eval()
    sizes = []
    hook = model.G.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    try:
        out = sample(model, demo_root, out=tmp_path / "s", phase="val", n_samples=5, num=1, seed=7, progress=False)
    finally:
        hook.remove()
    assert sizes == [1, 5]
    g = torch.Generator().manual_seed(7)
    torch.randn(5, NZ, generator=g)  # the sync list, drawn first
    z, (A, _) = torch.randn(5, NZ, generator=g), pair(demo_root, 0)
    with torch.no_grad():
        for j in range(5):
            want = pixels(model.G(A, z[j:j + 1]))
            assert np.abs(png(out / "images" / f"00000_random_z{j + 1}.png") - want).max() <= 1, j


def test_evaluate_measures_the_outputs_computed_here(batchnorm_model, demo_root):
    model = batchnorm_model.train()  # as a model object starts: the command must switch it
    r = evaluate(model, demo_root, phase="val", n_samples=3, num=3, seed=5, batch_size=2, metrics="l1,palette",
                 device="cpu")
    # input i gets z[i]: its row of one draw, padded to a multiple of 16 values (3 x NZ 8 = 24 of 32)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(5))[:, :3 * NZ].reshape(3, 3, NZ)
    G, E = model.G.eval(), model.E.eval()
    div, rec, As, Bs, encs = [], [], [], [], []
    with torch.no_grad():
        for i in range(3):
            A, B = pair(demo_root, i)
            outs = [G(A, z[i, j:j + 1]) for j in range(3)]
            div.append(np.mean([(outs[j + 1] - outs[j]).abs().mean().item() for j in range(2)]))
            enc = G(A, E(B)[0])
            rec.append((enc - B).abs().mean().item())
            As.append(A), Bs.append(B), encs.append(enc)
    assert (r["n_inputs"], r["n_samples"]) == (3, 3)
    assert r["diversity_l1"] == pytest.approx(np.mean(div), rel=1e-5)
    assert r["encoded_l1"] == pytest.approx(np.mean(rec), rel=1e-5)
    A, B, enc = torch.cat(As), torch.cat(Bs), torch.cat(encs)
    want, _ = classify_palettes(A, B)
    got, _ = classify_palettes(A, enc)
    assert r["encoded_palette_match"] == pytest.approx((got == want).float().mean().item())
    assert r["encoded_palette_match"] < 1  # random networks: the test tells B's palette from the output's


@pytest.fixture(scope="module")
def ema_checkpoint(demo_root, tmp_path_factory):
    """A model whose moving average of G is another network than G: (checkpoint, the average)."""
    model = tiny(demo_root, ema=0.5)
    torch.manual_seed(11)
    average = build_generator(model.cfg.model).eval()
    assert (average(*pair(demo_root, 0)[:1], torch.zeros(1, NZ)) - model.G(*pair(demo_root, 0)[:1], torch.zeros(1, NZ))
            ).abs().max() > 0.5  # G and its average differ well beyond a level
    model.G_ema.load_state_dict(average.state_dict())
    return save_checkpoint(model, tmp_path_factory.mktemp("ema") / "m.pt"), average, model


def test_every_command_samples_with_the_moving_average(ema_checkpoint, demo_root, tmp_path):
    ckpt, average, model = ema_checkpoint
    A, B = pair(demo_root, 0)
    z = torch.randn(2, NZ, generator=torch.Generator().manual_seed(0))
    out = sample(ckpt, out=tmp_path / "s", phase="val", n_samples=1, num=1, seed=0, device="cpu", progress=False)
    g = torch.Generator().manual_seed(0)
    torch.randn(1, NZ, generator=g)  # the sync list
    with torch.no_grad():
        want = average(A, torch.randn(1, NZ, generator=g))
    assert np.abs(png(out / "images" / "00000_random_z1.png") - pixels(want)).max() <= 1
    # interpolate: one segment of one frame is the two codes themselves (frames 0 and 1).
    out = interpolate(ckpt, out=tmp_path / "i", num=1, segments=1, frames=1, seed=0, mp4=False, device="cpu",
                      progress=False)
    strip = np.asarray(Image.open(out / "images" / "00000_strip.png"), dtype=np.float32)
    with torch.no_grad():
        for k in range(2):  # tiles of 128 px (32 px enlarged 4x), 2 px apart; the input first
            tile = strip[::4, (k + 1) * 130: (k + 1) * 130 + 128: 4]
            assert np.abs(tile - pixels(average(A, z[k:k + 1]))).max() <= 1, k
    # export, from the checkpoint and from the model object
    with torch.no_grad():
        want = average(A, z[:1])
    for src in (ckpt, model):
        export_generator(src, tmp_path / "g.pt2", batch=1, verify=False)
        got = torch.export.load(tmp_path / "g.pt2").module()(A, z[:1])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_export_writes_the_eval_mode_generator(batchnorm_model, tmp_path):
    A = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = torch.randn(1, NZ, generator=torch.Generator().manual_seed(2))
    export_generator(batchnorm_model.train(), tmp_path / "g.pt2", batch=1, verify=False)
    got = torch.export.load(tmp_path / "g.pt2").module()(A, z)
    with torch.no_grad():
        torch.testing.assert_close(got, batchnorm_model.G.eval()(A, z), atol=1e-5, rtol=0)


def test_a_slerp_path_keeps_the_codes_norm_and_visits_its_ends():
    # Two orthogonal unit codes: halfway along the great circle is (1, 1) / sqrt(2), of norm 1 (a
    # straight line would pass (1, 1) / 2); the first frame is the first code, the last the last.
    from bicyclegan.engine.interpolate import path_codes
    s = 2 ** -0.5
    zs = path_codes(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), 2, "slerp")
    torch.testing.assert_close(zs, torch.tensor([[1.0, 0.0], [s, s], [0.0, 1.0], [-s, s], [-1.0, 0.0]]))


def test_the_overview_grid_shows_the_first_eight_inputs(batchnorm_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    size = {n: Image.open(sample(batchnorm_model, folder, out=tmp_path / str(n), n_samples=1, num=n,
                                 progress=False) / "grid.png").size for n in (7, 8, 9)}
    assert size[9] == size[8] != size[7]  # 8 rows, one per input, at most


def test_sync_results_go_to_their_own_folder(ema_checkpoint, tmp_path, monkeypatch):
    ckpt, _, _ = ema_checkpoint
    monkeypatch.chdir(tmp_path)  # a checkpoint outside a run folder: results/<stem>/<phase>[_sync]
    kw = dict(phase="val", n_samples=1, num=1, device="cpu", progress=False)
    assert sample(ckpt, **kw).resolve() == tmp_path / "results" / "m" / "val"
    assert sample(ckpt, sync=True, **kw).resolve() == tmp_path / "results" / "m" / "val_sync"


def test_an_encoded_path_runs_the_networks_in_eval_mode_through_the_first_segments_plus_one_images(
        batchnorm_model, demo_root, tmp_path):
    model = batchnorm_model.train()  # as a model object starts: the command must switch it
    out = interpolate(model, demo_root, out=tmp_path / "i", num=1, segments=2, frames=1, path="encoded", mp4=False,
                      progress=False)
    meta = json.loads((out / "path.json").read_text())
    assert meta["refs"] == ["00000.png", "00001.png", "00002.png"]
    strip = np.asarray(Image.open(out / "images" / "00000_strip.png"), dtype=np.float32)
    assert strip.shape[1] == 4 * 130 - 2  # the input and 2 x 1 + 1 frames
    A, _ = pair(demo_root, 0)
    with torch.no_grad():
        G, E = model.G.eval(), model.E.eval()
        for k in range(3):
            want = G(A, E(pair(demo_root, k)[1])[0])
            assert np.abs(strip[::4, (k + 1) * 130: (k + 1) * 130 + 128: 4] - pixels(want)).max() <= 1, k


def test_a_one_channel_model_on_the_demo_data_is_measured_without_palettes(demo_root):
    """The palettes are colours: by default a model drawing grey images gets l1 alone (the palette
    classifier raised a ValueError about B's channels), and asked for palettes it is refused by name."""
    gray = tiny(demo_root, output_nc=1)
    r = evaluate(gray, phase="val", n_samples=2, num=3, device="cpu")
    assert r["metrics"] == ["l1"] and "coverage" not in r and r["n_inputs"] == 3
    with pytest.raises(ConfigError, match=r"^metrics=palette classifies colour outputs; this model draws 1-channel "
                                          r"images \(output_nc\): use metrics l1, lpips or fid$"):
        evaluate(gray, phase="val", n_samples=2, num=3, device="cpu", metrics="l1,palette")
    assert evaluate(tiny(demo_root), phase="val", n_samples=2, num=3, device="cpu")["metrics"] == ["l1", "palette"]


@pytest.mark.parametrize("command, gallery", [("sample", ["index.html", "grid.png"]),
                                              ("interpolate", ["index.html", "path.json"])])
def test_a_call_stopped_part_way_leaves_no_earlier_gallery_posing_as_its_own(demo_root, tmp_path, monkeypatch,
                                                                              command, gallery):
    """A second call into a results folder, stopped (Ctrl-C) after its first input: the first call's
    index.html listed that input's new images among its own old ones, as if whole."""
    run = {"sample": sample, "interpolate": interpolate}[command]
    kw = dict(out=tmp_path / "r", num=3, device="cpu") | (dict(segments=1, frames=1, mp4=False)
                                                          if command == "interpolate" else dict(n_samples=1))
    run(tiny(demo_root), progress=False, seed=1, **kw)
    assert all((tmp_path / "r" / name).is_file() for name in gallery)
    # A call refused before its first file leaves the earlier result whole.
    (tmp_path / "odd").mkdir()
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(tmp_path / "odd" / "0.png")
    with pytest.raises(ConfigError, match="not a multiple of 32"):
        run(tiny(demo_root), tmp_path / "odd", progress=False, **kw)
    assert all((tmp_path / "r" / name).is_file() for name in gallery)

    def stop(what, done, total):
        if done == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(importlib.import_module("bicyclegan.engine.images"), "count_line", stop)  # (write_shares')
    with pytest.raises(KeyboardInterrupt):
        run(tiny(demo_root), progress=True, seed=2, **kw)
    assert not [name for name in gallery if (tmp_path / "r" / name).exists()]


@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_the_next_call_removes_the_images_of_a_call_stopped_part_way(demo_root, tmp_path, monkeypatch, command):
    # Only a finished call listed its images (.images.json): a SIGTERM'd `sample --num 64` left 442 images in
    # images/, and the next call into the folder, of 4 inputs, kept them all beside its own 20.
    run = {"sample": sample, "interpolate": interpolate}[command]
    kw = dict(out=tmp_path / "r", device="cpu", seed=1) | (dict(segments=1, frames=1, mp4=False)
                                                           if command == "interpolate" else dict(n_samples=1))
    run(tiny(demo_root), num=1, progress=False, **kw)
    one = sorted(p.name for p in (tmp_path / "r" / "images").iterdir())

    def stop(what, done, total):
        if done == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(importlib.import_module("bicyclegan.engine.images"), "count_line", stop)  # (write_shares')
    with pytest.raises(KeyboardInterrupt):
        run(tiny(demo_root), num=3, progress=True, **kw)
    assert any(p.name.startswith("00001") for p in (tmp_path / "r" / "images").iterdir())  # its second input's
    monkeypatch.undo()
    run(tiny(demo_root), num=1, progress=False, **kw)
    assert sorted(p.name for p in (tmp_path / "r" / "images").iterdir()) == one


def test_sample_and_interpolate_into_one_folder_leave_the_last_calls_files_alone(demo_root, tmp_path):
    # Each removed its own kind's files only: interpolate after sample left sample's grid.png beside its gallery,
    # sample after interpolate left path.json (the other's images went: one list of the images written).
    out = tmp_path / "r"
    (out / "images").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")  # no file a command did not write is touched
    (out / "images" / "mine.png").write_bytes(b"")
    kw = dict(out=out, num=2, device="cpu", progress=False)
    sampled = ["grid.png", ".sample.json", *[f"images/0000{i}_{c}.png" for i in range(2)
                                             for c in ("encoded", "ground_truth", "input", "random_z1")]]
    interpolated = ["path.json", *[f"images/0000{i}{end}" for i in range(2) for end in (".gif", "_input.png",
                                                                                           "_strip.png")]]
    for command, want in (("sample", sampled), ("interpolate", interpolated), ("sample", sampled)):
        if command == "sample":
            sample(tiny(demo_root), n_samples=1, **kw)
        else:
            interpolate(tiny(demo_root), segments=1, frames=1, mp4=False, **kw)
        got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert got == sorted([".images.json", "index.html", "notes.txt", "images/mine.png", *want]), command


def test_sample_writes_with_as_many_threads_as_its_share_of_the_usable_cores():
    # min(8, os.cpu_count()): a job given 4 cores of a 128-core GPU machine wrote with 8 threads, and each of
    # torchrun's 8 ranks of a 16-core machine with 8 (64 threads encoding PNGs on 16 cores)
    import subprocess
    import sys
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = "import os, importlib; {} print(importlib.import_module('bicyclegan.engine.sample').WRITERS)"
    mine = len(os.sched_getaffinity(0))
    for one_core, ranks, want in ((True, 1, 1), (False, 64, 1), (False, 1, min(8, mine))):
        pin = "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});" if one_core else ""
        env = {**os.environ, "LOCAL_WORLD_SIZE": str(ranks)}
        got = subprocess.run([sys.executable, "-c", code.format(pin)], env=env, capture_output=True, text=True,
                             check=True).stdout
        assert int(got) == want, (one_core, ranks, got)  # (one core of this process's: one thread)


@pytest.mark.parametrize("failing", [None, "00001_random_z2.png"])
def test_sample_writes_an_inputs_images_at_once_and_none_after_one_that_failed(demo_root, tmp_path, monkeypatch,
                                                                               failing):
    # One at a time, each image's fsync and PNG encoding (atomic_write) were 60 % of a CPU sample's time (200 inputs
    # x 23 images, 32 px) and nearly all a GPU's. Written at once, they end before the call returns or raises: no
    # image of the call is written after it, no temp file is left, none of an input whose image failed is in place.
    import threading
    import time

    from bicyclegan.engine.errors import OutputError
    module = importlib.import_module("bicyclegan.engine.sample")  # (the package exports the function)
    monkeypatch.setattr(module, "WRITERS", 4, raising=False)  # (cpu_count's, at most 8: 1 on a one-core machine)
    real, lock, busy, most, ended = module.AtomicWrites.add, threading.Lock(), [0], [0], []

    def slow(group, path, write):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        try:
            time.sleep(0.05)  # (an fsync on a slow disk)
            if Path(path).name == failing:
                raise OutputError(f"cannot write sample image {path}: No space left on device")
            return real(group, path, write)
        finally:
            with lock:
                busy[0] -= 1
                ended.append(time.monotonic())
    monkeypatch.setattr(module.AtomicWrites, "add", slow)
    out = tmp_path / "s"
    call = lambda: sample(tiny(demo_root), out=out, num=3, n_samples=4, device="cpu", progress=False)  # noqa: E731
    if failing:
        with pytest.raises(OutputError, match="No space left"):
            call()
    else:
        call()
    returned = time.monotonic()
    assert most[0] > 1  # several of an input's 7 images at once
    assert ended and max(ended) <= returned and busy[0] == 0
    files = sorted(p.name for p in (out / "images").iterdir())
    assert not [f for f in files if f.endswith(".tmp")]
    if failing:  # the first input's 7, none of the second's (AtomicWrites: all or none), nor the third's
        assert files == sorted(f"00000_{c}.png" for c in ("input", "ground_truth", "encoded", "random_z1",
                                                          "random_z2", "random_z3", "random_z4"))
    else:
        assert len(files) == 21
        monkeypatch.setattr(module.AtomicWrites, "add", real)
        monkeypatch.setattr(module, "WRITERS", 1, raising=False)
        want = sample(tiny(demo_root), out=tmp_path / "one", num=3, n_samples=4, device="cpu", progress=False)
        for f in files:  # the files written one at a time
            assert (out / "images" / f).read_bytes() == (want / "images" / f).read_bytes(), f


def test_sample_makes_the_next_input_while_an_inputs_images_are_written_and_none_further(demo_root, tmp_path,
                                                                                         monkeypatch):
    # A GPU idled through each input's writes: the next input is made while an input's images are written, and no
    # further (one input's pictures in flight): input i is in place before any file of input i + 1 is begun and
    # before input i + 2 is made. Stopped meanwhile, the call raises the failure of the input in flight (raised
    # before the next input was made, it was lost behind the stop), none of whose images is in place.
    import threading
    import time

    from bicyclegan.engine.errors import OutputError
    module = importlib.import_module("bicyclegan.engine.sample")  # (the package exports the function)
    real_columns, real_add, real_commit = module.sample_columns, module.AtomicWrites.add, module.AtomicWrites.commit
    events, lock, failing, second = [], threading.Lock(), [None], threading.Event()

    def columns(*args, **kw):
        with lock:
            made = sum(e == "made" for e in events)
            events.append("made")
        if made == 1:
            second.set()
        if made == 2 and failing[0]:
            raise KeyboardInterrupt
        return real_columns(*args, **kw)

    def add(group, path, write):
        with lock:
            events.append(("begun", int(Path(path).name[:5])))
        time.sleep(0.05)  # (a slow disk)
        if Path(path).name.startswith("00000_"):
            second.wait(timeout=5)  # (the second input made meanwhile; one at a time, it never was)
        if Path(path).name == failing[0]:
            raise OutputError(f"cannot write sample image {path}: No space left on device")
        return real_add(group, path, write)

    def commit(group, each=map):
        placed = real_commit(group, each)
        with lock:
            events.append(("placed", int(placed[0].name[:5])))
        return placed
    monkeypatch.setattr(module, "sample_columns", columns)
    monkeypatch.setattr(module.AtomicWrites, "add", add)
    monkeypatch.setattr(module.AtomicWrites, "commit", commit)
    sample(tiny(demo_root), out=tmp_path / "s", num=3, n_samples=1, device="cpu", progress=False)
    made, placed = 0, set()
    for e in events:
        if e == "made":
            assert set(range(made - 1)) <= placed, events  # (made - 2 and before: in place)
            made += 1
        elif e[0] == "begun":
            assert set(range(e[1])) <= placed, events
        else:
            placed.add(e[1])
    assert made == 3 and placed == set(range(3))
    assert events.index("made", events.index("made") + 1) < events.index(("placed", 0)), events  # made meanwhile

    events.clear()
    failing[0] = "00001_random_z1.png"
    with pytest.raises(BaseException) as e:
        sample(tiny(demo_root), out=tmp_path / "f", num=3, n_samples=1, device="cpu", progress=False)
    assert isinstance(e.value, OutputError) and "No space left" in str(e.value), repr(e.value)
    assert sorted(p.name for p in (tmp_path / "f" / "images").iterdir()) == [
        f"00000_{c}.png" for c in ("encoded", "ground_truth", "input", "random_z1")]


def test_a_planted_list_of_written_images_removes_nothing_but_images_and_nothing_through_a_link(tmp_path):
    # A results folder that came with someone's run folder: its .images.json named thesis.txt, its images/ a link to
    # the user's documents, and the next sample removed the thesis there. Only images, GIFs and videos a list names
    # go, and none through a linked folder.
    from bicyclegan.engine.images import prune_outputs, written_list
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("thesis.txt", "photo.png"):
        (docs / name).write_text("mine")
    results = tmp_path / "run" / "results" / "test"
    results.mkdir(parents=True)
    (results / "images").symlink_to(docs, target_is_directory=True)
    written_list(results / "images").write_text('["thesis.txt", "photo.png"]')
    prune_outputs(results / "images", [])
    assert sorted(p.name for p in docs.iterdir()) == ["photo.png", "thesis.txt"]
    own = tmp_path / "own" / "images"
    own.mkdir(parents=True)
    for name in ("notes.txt", "00000_input.png", "00000.gif", "00000.mp4", "kept.png"):
        (own / name).write_text("x")
    written_list(own).write_text('["notes.txt", "00000_input.png", "00000.gif", "00000.mp4", "kept.png"]')
    prune_outputs(own, ["images/kept.png"])
    assert sorted(p.name for p in own.iterdir()) == ["kept.png", "notes.txt"]


@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_the_images_folder_is_listed_once_a_call_not_at_each_file(demo_root, tmp_path, monkeypatch, command):
    # Each file written listed the folder for the temp files of killed writes: a call of n inputs read 4n (sample)
    # or 3n listings of up to as many names (10,000 files written into one folder: 81 s, listed once 38 s).
    images = tmp_path / "r" / "images"
    images.mkdir(parents=True)
    killed = images / ".00001_input.png.kill0.tmp"  # an earlier call's write, killed: still removed
    killed.write_bytes(b"x")
    listed, scandir = [], os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": (listed.append(Path(path)), scandir(path))[1])
    kw = dict(out=tmp_path / "r", num=3, device="cpu", progress=False)
    if command == "sample":
        sample(tiny(demo_root), n_samples=1, **kw)
    else:
        interpolate(tiny(demo_root), segments=1, frames=1, mp4=False, **kw)
    # (counted before the listing below: Path.iterdir is os.scandir's from Python 3.13)
    assert listed.count(images) == 1 and not killed.exists()
    # 3 inputs: input, ground truth, encoded and 1 random output each; or input, strip and GIF
    assert len([p for p in images.iterdir() if p.suffix in (".png", ".gif")]) == (12 if command == "sample" else 9)


@pytest.mark.parametrize("ratio, tile", [(2.0, (128, 64)), (0.5, (32, 64))])
def test_the_grid_shows_the_images_stretched_as_they_are_written(demo_root, tmp_path, ratio, tile):
    # --aspect_ratio stretched the files in images/ and left grid.png's tiles square.
    out = sample(tiny(demo_root), out=tmp_path / "r", n_samples=1, num=1, aspect_ratio=ratio, device="cpu",
                 progress=False)
    grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
    w, h = tile  # 32 px stretched to 64 x 32, then enlarged twice to be 64 px tall; or to 32 x 64
    assert grid.shape[1] == 4 * (w + 2) + 2  # input, ground truth, encoded, random z1, 2 px apart
    top = grid.shape[0] - 2 - h  # one row of tiles, under the titles
    for k, name in enumerate(["input", "ground_truth", "encoded", "random_z1"]):
        written = Image.open(out / "images" / f"00000_{name}.png").convert("RGB")
        assert written.size == ((64, 32) if ratio > 1 else (32, 64))
        want = np.asarray(written.resize((w, h), Image.NEAREST))
        np.testing.assert_array_equal(grid[top:top + h, 2 + k * (w + 2):2 + k * (w + 2) + w], want, err_msg=name)


def test_sample_refuses_the_options_given_that_change_nothing_and_only_those(demo_root, tmp_path, capsys):
    """--n_samples for a model without z, --sync with --n_samples 0, --no_encode without an encoder were
    taken and changed no file. Their defaults are refused nowhere."""
    from bicyclegan.engine.cli import main
    nz0 = save_checkpoint(tiny(demo_root, variant="pix2pix", nz=0), tmp_path / "nz0.pt")
    noise = save_checkpoint(tiny(demo_root, variant="pix2pix"), tmp_path / "noise.pt")  # z, no encoder
    bicycle = save_checkpoint(tiny(demo_root), tmp_path / "bicycle.pt")
    plain = tmp_path / "plain"  # inputs alone: no B, no encoded output
    plain.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(plain / "0.png")
    out = tmp_path / "out"
    run = ["--out", str(out), "--device", "cpu", "--num", "1"]
    z_nothing = "variant pix2pix has no latent code (nz=0): one output per input, no z drawn"
    no_encoded = "encode=False (--no_encode) leaves out the encoded output G(A, E(B)), and "
    no_output = "no output of the model would be made, only the inputs' files; give n_samples of 1 or more"
    for given, said in (
            ([nz0, "--n_samples", "3"], f"n_samples=3: {z_nothing}, so it changes nothing; leave it out"),
            ([nz0, "--sync", "--seed", "1"], f"sync=True, seed=1: {z_nothing}, so they change nothing; leave them out"),
            ([bicycle, "--n_samples", "0", "--sync"], "sync=True: n_samples=0 draws no z, so it changes nothing; "
                                                      "leave it out"),
            ([bicycle, "--n_samples", "0", "--spread_z", "--seed", "0"],
             "spread=True (--spread_z), seed=0: n_samples=0 draws no z, so they change nothing; leave them out"),
            ([nz0, "--spread_z"], f"spread=True (--spread_z): {z_nothing}, so it changes nothing; leave it out"),
            ([noise, "--no_encode"], f"{no_encoded}this model (variant pix2pix) has no trained encoder: there is "
                                     f"none to leave out; leave it out"),
            ([bicycle, "--dataroot", plain, "--no_encode"], f"{no_encoded}{plain} holds inputs alone (no B images to "
                                                            f"encode): there is none to leave out; leave it out"),
            # no output of the model at all: the call wrote the inputs and ground truths alone, and exited 0
            ([noise, "--n_samples", "0"], f"n_samples=0 draws no z, and this model (variant pix2pix) has no trained "
                                          f"encoder: {no_output}"),
            ([bicycle, "--n_samples", "0", "--no_encode"], f"n_samples=0 draws no z, and encode=False (--no_encode) "
                                                           f"leaves out the encoded one: {no_output}"),
            ([bicycle, "--dataroot", plain, "--n_samples", "0"], f"n_samples=0 draws no z, and {plain} holds inputs "
                                                                 f"alone (no B images to encode): {no_output}")):
        assert main(["sample", *map(str, given), *run]) == 2, given
        assert capsys.readouterr().err.strip() == f"bicyclegan sample: ConfigError: {said}"
    assert not out.exists()  # refused before anything was made
    # Not given, and given where they change the files: taken.
    for given, columns in (([nz0], ["output"]), ([bicycle, "--n_samples", "0"], ["encoded"]),
                           ([noise, "--n_samples", "1", "--sync", "--seed", "2"], ["random_z1"]),
                           ([bicycle, "--no_encode", "--n_samples", "1"], ["random_z1"])):
        assert main(["sample", *map(str, given), *run]) == 0, given
        assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
            f"00000_{c}.png" for c in ["ground_truth", "input", *columns]), given


@pytest.mark.parametrize("command", ["train", "sample", "interpolate", "export"])
def test_a_name_longer_than_the_file_system_takes_is_one_line(command, demo_root, tmp_path, capsys):
    # --out of 300 characters: OSError ENAMETOOLONG from the first stat of the folder, a traceback (exit 1)
    from bicyclegan.engine.cli import main
    long = tmp_path / ("x" * 300)
    ckpt = str(save_checkpoint(tiny(demo_root), tmp_path / "m.pt"))
    argv = {"train": ["--dataroot", str(demo_root), "--out", str(long), "--max_steps", "1"],
            "sample": [ckpt, "--out", str(long)], "interpolate": [ckpt, "--out", str(long)],
            "export": [ckpt, "--out", f"{long}.onnx"]}[command]
    assert main([command, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bicyclegan {command}: ConfigError: {long}") and "File name too long" in err, err
    assert err.count("\n") == 1 and sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_evaluate_counts_the_inputs_it_has_measured(demo_root, tmp_path, capsys):
    # 5,000 inputs took minutes without a word; 3 here, 2 a batch: a line a batch, ended where it says all 3
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "m.pt")
    evaluate(ckpt, num=3, n_samples=2, batch_size=2, device="cpu")
    assert capsys.readouterr().err == ""  # (the Python call, as a training run's evaluations: quiet)
    assert main(["evaluate", str(ckpt), "--num", "3", "--n_samples", "2", "--batch_size", "2", "--device", "cpu",
                 "--json", str(tmp_path / "e.json")]) == 0
    assert capsys.readouterr().err == "evaluated 2/3\nevaluated 3/3\n"


def test_evaluate_refuses_n_samples_above_one_for_a_model_without_z(demo_root, tmp_path, capsys):
    """A model without z (nz=0) makes one output per input: evaluate took --n_samples 20 (its default) and its
    result said n_samples 1, the protocol 20; --n_samples 5 changed nothing. Refused above 1 as sample refuses
    it, the number taken (1) recorded alike whether given or not (--reuse takes either); a model with z takes it."""
    from bicyclegan.engine.cli import main
    from bicyclegan.engine.evaluate import Evaluation
    from bicyclegan.engine.sweep import evaluate_checkpoints
    nz0 = save_checkpoint(tiny(demo_root, variant="pix2pix", nz=0), tmp_path / "nz0.pt")
    said = ("n_samples={}: variant pix2pix has no latent code (nz=0): one output per input, no z drawn, so it "
            "changes nothing; leave it out")
    run = ["--device", "cpu", "--num", "2", "--metrics", "l1", "--phase", "val"]
    for n in ("2", "20"):
        assert main(["evaluate", str(nz0), "--n_samples", n, "--json", str(tmp_path / "no.json"), *run]) == 2
        assert capsys.readouterr().err.strip() == f"bicyclegan evaluate: ConfigError: {said.format(n)}"
    assert not (tmp_path / "no.json").exists()
    for given in ([], ["--n_samples", "1"]):
        json_path = tmp_path / f"eval{len(given)}.json"
        assert main(["evaluate", str(nz0), *given, "--json", str(json_path), *run]) == 0, given
        r = json.loads(json_path.read_text())
        assert (r["n_samples"], r["protocol"]["n_samples"]) == (1, 1), given
    # the library's functions alike
    with pytest.raises(ConfigError, match="^" + re.escape(said.format(3)) + "$"):
        evaluate(nz0, phase="val", n_samples=3, num=2, device="cpu", metrics="l1")
    ev = Evaluation(nz0, phase="val", num=2, device="cpu", metrics="l1")
    with pytest.raises(ConfigError, match=r"^n_samples=2: variant pix2pix has no latent code"):
        ev.run(2)
    assert ev.run()["n_samples"] == ev.run(1)["n_samples"] == 1
    # --epoch all: refused before any checkpoint is measured (no eval.json, no sweep page)
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    save_checkpoint(tiny(demo_root, variant="pix2pix", nz=0), ckpts / "latest.pt")
    with pytest.raises(ConfigError, match=r"^n_samples=4: variant pix2pix has no latent code"):
        evaluate_checkpoints(tmp_path / "run", phase="val", n_samples=4, num=2, device="cpu", metrics="l1", log=None)
    assert not (tmp_path / "run" / "results").exists()
    rows, _ = evaluate_checkpoints(tmp_path / "run", phase="val", num=2, device="cpu", metrics="l1", log=None)
    assert rows[0]["n_samples"] == 1
    saved = json.loads((tmp_path / "run" / "results" / "val" / "eval.json").read_text())
    assert saved["protocol"]["n_samples"] == 1
    # a model with z takes any number
    assert evaluate(tiny(demo_root), phase="val", n_samples=3, num=2, device="cpu", metrics="l1")["n_samples"] == 3


def test_n_samples_for_a_model_without_z_is_refused_before_any_evaluation_is_built(demo_root, tmp_path, monkeypatch,
                                                                                    capsys):
    """evaluate refused --n_samples 5 for a model without z only once its Evaluation was built: the model and the
    metric networks loaded (LPIPS, InceptionV3: seconds, maybe a download) for a refusal that the checkpoint's
    stored config alone decides. Now none is built, and the refusal is the one it was; evaluate --epoch all and
    compare, alike. A file whose config cannot be read so is refused by the full read, in its words."""
    from bicyclegan.engine.cli import main
    built = []

    def no_evaluation(*args, **kwargs):
        built.append(args)
        raise AssertionError("an Evaluation was built before the refusal")
    # (the package's `evaluate` is the function: the modules by name.) All imported before any is patched: sweep
    # and compare take evaluate's Evaluation as they are imported, so one imported after the patch kept the stub
    # past undo() (its "original" was the stub), and later tests in the process (test_litter's compare) failed.
    modules = [importlib.import_module(f"bicyclegan.engine.{name}") for name in ("evaluate", "sweep", "compare")]
    for module in modules:
        monkeypatch.setattr(module, "Evaluation", no_evaluation)
    nz0 = save_checkpoint(tiny(demo_root, variant="pix2pix", nz=0), tmp_path / "nz0.pt")
    said = ("n_samples=5: variant pix2pix has no latent code (nz=0): one output per input, no z drawn, so it "
            "changes nothing; leave it out")
    run = ["--n_samples", "5", "--device", "cpu", "--num", "2", "--metrics", "l1,lpips,fid", "--phase", "val"]
    assert main(["evaluate", str(nz0), *run]) == 2
    assert capsys.readouterr().err.strip() == f"bicyclegan evaluate: ConfigError: {said}"
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    save_checkpoint(tiny(demo_root, variant="pix2pix", nz=0), ckpts / "latest.pt")
    assert main(["evaluate", str(tmp_path / "run"), "--epoch", "all", *run]) == 2
    assert capsys.readouterr().err.strip() == f"bicyclegan evaluate: ConfigError: {said}"
    assert main(["compare", str(nz0), str(ckpts / "latest.pt"), "--out", str(tmp_path / "c"), *run]) == 2
    assert capsys.readouterr().err.strip() == (
        "bicyclegan compare: ConfigError: n_samples=5: none of the models has a latent code (nz=0: nz0, run): one "
        "output per input, no z drawn, so it changes nothing; leave it out")
    assert built == [] and not (tmp_path / "run" / "results").exists() and not (tmp_path / "c").exists()
    monkeypatch.undo()  # (the full read is the Evaluation's)
    torch.save({"G": {}}, tmp_path / "G.pth")
    assert main(["evaluate", str(tmp_path / "G.pth"), *run]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bicyclegan evaluate: CheckpointError: {tmp_path / 'G.pth'} is not a bicyclegan checkpoint (no format "
        "marker); for the reference's *_net_G.pth files use import-official")


def test_seeds_beyond_torchs_range_are_refused_by_name(demo_root, tmp_path, capsys):
    """torch.Generator takes seeds up to 2^64 - 1; a larger one was a ValueError traceback (Overflow
    when unpacking long long) in sample, interpolate, evaluate and compare."""
    from bicyclegan.engine.cli import main
    for run in (sample, interpolate):
        with pytest.raises(ConfigError, match=r"^seed=18446744073709551616 must be an integer >= 0 and <= "
                                              r"18446744073709551615$"):
            run(tiny(demo_root), out=tmp_path / "r", seed=2**64, progress=False)
    assert not (tmp_path / "r").exists()
    sample(tiny(demo_root), out=tmp_path / "r", seed=2**64 - 1, num=1, n_samples=1, progress=False)  # the largest
    with pytest.raises(ConfigError, match=r"^seed=18446744073709551616 must be an integer >= 0 and <= "):
        evaluate(tiny(demo_root), seed=2**64, num=1, n_samples=2, device="cpu")  # the Python function too
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "m.pt")
    for command in ("sample", "interpolate", "evaluate"):
        with pytest.raises(SystemExit) as e:
            main([command, str(ckpt), "--seed", str(2**64)])
        assert e.value.code == 2 and "--seed: must be <= 18446744073709551615, got 18446744073709551616" in \
            capsys.readouterr().err


def test_evaluate_refuses_by_name_an_input_the_generator_cannot_take(tmp_path, demo_root):
    # preprocess none keeps a 40 x 48 (W x H) file's size; the tiny U-Net (5 levels) needs multiples of 32.
    # It was G's ValueError, a traceback, in evaluate and compare (as in interpolate and serve).
    folder = tmp_path / "plain"
    folder.mkdir()
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(folder / "b odd.png")
    model = tiny(demo_root)
    model.cfg.data.preprocess = "none"
    with pytest.raises(ConfigError, match=r"b odd\.png is 40x48 after preprocess=none, not a multiple of 32"):
        evaluate(model, folder, num=1, n_samples=2, device="cpu", metrics="l1")


def commands(parser, name=""):
    """{"sample": its parser, ..., "download dataset": ...}: every command, those below another too."""
    below = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {f"{name} {n}".strip(): p for c in below for n, p in c.items()} | \
        {k: v for c in below for n, p in c.items() for k, v in commands(p, f"{name} {n}".strip()).items()}


COMMANDS = commands(build_parser())


def test_download_s_folders_are_defaults_its_help_names():
    # `download dataset --help` said "--dir: folder to put it in", not that it is datasets/ (pretrained/ for a
    # model) without it: the default lived in the command's body, where the test below cannot see it
    parse = build_parser().parse_args
    assert parse(["download", "dataset", "facades"]).dir == "datasets"
    assert parse(["download", "model", "facades"]).dir == "pretrained"


def test_help_texts_say_what_the_commands_do():
    # Claims of --help that the commands contradicted (each checked against the command by a reviewer)
    def help_of(command, option):
        return " ".join(COMMANDS[command]._option_string_actions[option].help.split())
    assert "demo data" not in help_of("import-official", "--dataroot")  # (train's: import stores none)
    assert "need --dataroot" in help_of("import-official", "--dataroot")
    assert "latest.pt where it is further on" in help_of("evaluate", "--epoch")  # (else it is left out)
    assert "LPIPS (alex v0.0, as the paper) and FID with --metrics" in COMMANDS["evaluate"].description
    assert "184" in help_of("make-demo", "--shade") and "at least 16" in help_of("make-demo", "--size")
    assert "0.01 to 100" in help_of("interpolate", "--fps")
    for command, option in (("sample", "--out"), ("evaluate", "--json"), ("interpolate", "--out")):
        assert "_best" in help_of(command, option), command


def test_the_references_options_are_answered_with_what_to_give_here(capsys):
    # A script ported from the reference (--print_freq, --gpu_ids, --name) met argparse's bare "unrecognized
    # arguments", under the top parser's usage, not train's
    with pytest.raises(SystemExit) as e:
        main(["train", "--out", "r", "--print_freq", "100", "--gpu_ids=0", "--name", "x", "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: bicyclegan train ")
    assert err.split("bicyclegan train: error: ", 1)[1].splitlines() == [
        "unrecognized arguments: --print_freq 100 --gpu_ids=0 --name x --bogus",
        "  --print_freq (the reference's): here --log_every (in iterations; the reference's counts images: "
        "divide it by --batch_size)",
        "  --gpu_ids (the reference's): here --device cuda:N (-1: --device cpu); several GPUs: torchrun "
        "--nproc_per_node N -m bicyclegan.engine.cli COMMAND ...",
        "  --name (the reference's): here the run folder: train --out DIR (the reference's "
        "<checkpoints_dir>/<name>); sample, evaluate and the rest take DIR, or a checkpoint, as their first argument"]


def test_the_reference_option_table_names_options_that_exist_for_ones_that_do_not():
    from bicyclegan.engine.cli import COMMAND_REFERENCE_OPTIONS, REFERENCE_OPTIONS
    train, sample = COMMANDS["train"]._option_string_actions, COMMANDS["sample"]._option_string_actions
    for theirs, ours in REFERENCE_OPTIONS.items():
        assert theirs not in train, theirs  # (an option of ours is never refused: its line could not be said)
        for named in set(re.findall(r"--[\w-]+", ours)) - {"--nproc_per_node"}:  # (torchrun's) every option a
            assert named in train or named in sample, (theirs, named)       # line points to is one of ours
        assert ours.startswith(("here --", "here the run folder", "not needed: ", "not offered: ")), theirs
    for (command, theirs), ours in COMMAND_REFERENCE_OPTIONS.items():  # a command's own: the options it takes
        taken = COMMANDS[command]._option_string_actions
        assert theirs not in taken and set(re.findall(r"--[a-z_]+", ours)) - {theirs} <= set(taken), (command, theirs)
        assert ours.startswith(("here --", "not needed: ", "not offered: ")), theirs


def test_the_references_test_and_video_options_are_answered_as_each_command_takes_them(capsys):
    # interpolate --n_samples (video_edges2shoes.sh's) was "an option of train, sample, evaluate and compare, not
    # of interpolate" (here --segments); sample --num_threads "here --num_workers", which sample refuses;
    # evaluate --results_dir "here --out", which evaluate refuses (its file is --json).
    def said(*argv):
        with pytest.raises(SystemExit):
            main(list(argv))
        return capsys.readouterr().err.split(": error: ", 1)[1].splitlines()[1:]
    assert said("interpolate", "m.pt", "--n_samples", "20", "--num_frames", "4", "--border", "2") == [
        "  --n_samples (the reference's): here --segments (video.py's --n_samples: the path's segments, through one "
        "more code)",
        "  --num_frames (the reference's): here --frames (frames per segment)",
        "  --border (the reference's): not offered: the strips keep 2 px of white between frames"]
    assert said("sample", "m.pt", "--num_threads", "1", "--model", "bicycle_gan", "--which_epoch", "latest") == [
        "  --num_threads (the reference's): here --num_workers (--num_workers is an option of train and "
        "import-official; sample has none)",
        "  --model (the reference's): not needed: the checkpoint says its variant",
        "  --which_epoch (the reference's): here --epoch (latest, the reference's default: no --epoch)"]
    assert said("evaluate", "m.pt", "--results_dir", "r") == [
        "  --results_dir (the reference's): here --json FILE (eval.json's path; by default in <run>/results/)"]
    assert said("train", "--model", "bicycle_gan") == [  # train's own: as it was
        "  --model (the reference's): here --variant (bicycle_gan: --variant bicycle); --variant pix2pix is "
        "pix2pix+noise, with z"]


def test_a_reference_option_abbreviates_ours_of_the_same_meaning():
    # compare --name (the reference's run name) was argparse's abbreviation of --names until every reference option
    # was kept from abbreviating (for train --model, not --model_cls): refused with the run folders' hint
    args = build_parser().parse_args(["compare", "a.pt", "b.pt", "--name", "x,y"])
    assert (args.command, args.models, args.names) == ("compare", ["a.pt", "b.pt"], "x,y")
    assert build_parser().parse_args(["compare", "a.pt", "b.pt", "--name=x,y"]).names == "x,y"


def test_an_option_of_another_command_is_named_with_the_commands_that_take_it(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sample", "m.pt", "--nz", "8", "--lr", "1", "--results_dir", "r", "--bogus"])
    assert e.value.code == 2
    assert capsys.readouterr().err.split("bicyclegan sample: error: ", 1)[1].splitlines() == [
        "unrecognized arguments: --nz 8 --lr 1 --results_dir r --bogus",
        "  --nz: an option of train and import-official, not of sample; the model's settings come from its "
        "checkpoint",
        "  --lr: an option of train, not of sample",
        "  --results_dir (the reference's): here --out"]
    with pytest.raises(SystemExit) as e:  # a download's kind, with its own usage (download's said nothing of it)
        main(["download", "model", "edges2shoes", "--testset", "--bogus"])
    assert e.value.code == 2
    assert capsys.readouterr().err.split("bicyclegan download model: error: ", 1)[1].splitlines() == [
        "unrecognized arguments: --testset --bogus",
        "  --testset: an option of download dataset, not of download model"]


@pytest.mark.parametrize("argv, said", [
    (["--lr=0.1", "train"], "--lr comes before the command: options go after it, as in `bicyclegan train --lr ...` "
                            "(--lr is an option of train)"),
    (["--nz", "8", "sample", "m.pt"], "--nz comes before the command: options go after it, as in `bicyclegan train "
                                      "--nz ...` (--nz is an option of train and import-official)"),
    (["--bogus", "train"], "unrecognized option --bogus: no command has it (`bicyclegan COMMAND --help` lists a "
                           "command's options, after its name)"),
    # the command typed, where it takes the option (every one was shown as train's)
    (["--out", "export", "sample", "m.pt"],  # (an option's value is no command)
     "--out comes before the command: options go after it, as in `bicyclegan sample --out ...` (--out is an option "
     "of train, sample, compare, interpolate, import-official and export)"),
    # download's own options (no command had them)
    (["--mirror", "m", "download", "model", "x"], "--mirror comes before the command: options go after it, as in "
     "`bicyclegan download model --mirror ...` (--mirror is an option of download dataset and download model)")])
def test_an_option_before_the_command_is_said_to_go_after_it(argv, said, capsys):
    # `bicyclegan --nz 8 sample` was "invalid choice: '8'", `--lr=0.1 train` train's "unrecognized arguments: --lr"
    # (an option train has)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == f"bicyclegan: error: {said}"
    with pytest.raises(SystemExit) as e:  # options after `--` (a checkpoint named -run): said to go before it
        main(["sample", "--", "-run", "--n_samples", "1", "--num", "2"])
    assert e.value.code == 2 and capsys.readouterr().err.split("bicyclegan sample: error: ", 1)[1].splitlines() == [
        "unrecognized arguments: --n_samples 1 --num 2",
        "  --n_samples: an option of sample, read as an argument after `--`: give the options before `--`",
        "  --num: an option of sample, read as an argument after `--`: give the options before `--`"]
    with pytest.raises(SystemExit) as e:  # the top parser's own options are still its
        main(["--vers"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("bicyclegan ")


@pytest.mark.parametrize("argv", [["train", "--out", ""], ["sample", ""], ["sample", "m.pt", "--phase", " "],
                                  ["serve", "m.pt", "--host", ""], ["compare", "a", ""],
                                  ["download", "dataset", "facades", "--mirror", ""],
                                  ["download", "model", "edges2shoes", "--mirror", ""]])
def test_an_empty_value_is_refused_by_the_options_name(argv, capsys, tmp_path, monkeypatch):
    # train --out '' wrote a run among the current folder's files, sample --out '' its gallery there, --phase ''
    # was the default split, serve --host '' printed http://:port/, an empty --mirror was the original host
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    name = {"train": "--out", "serve": "--host", "download": "--mirror", "compare": "models"}.get(
        argv[0], "--phase" if "--phase" in argv else "checkpoint")
    # (its own usage, not download's; download model's said `download dataset`)
    command = " ".join(argv[:2]) if argv[0] == "download" else argv[0]
    assert e.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
        f"bicyclegan {command}: error: argument {name}: an empty value names nothing; give one"
        + (", or leave the option out" if name.startswith("--") else ""))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, name, what", [
    (["train", "--lr", "x"], "--lr", "a number"), (["train", "--niter", "1.5"], "--niter", "an integer"),
    (["sample", "m.pt", "--num", "x"], "--num/--num_test", "an integer"),
    (["sample", "m.pt", "--aspect_ratio", "x"], "--aspect_ratio", "a number"),
    (["interpolate", "m.pt", "--fps", "x"], "--fps", "a number"), (["make-demo", "d", "--shade", "x"], "--shade",
                                                                    "an integer")])
def test_a_value_that_is_no_number_is_refused_in_one_wording(argv, name, what, capsys):
    # train's config options said "argument --lr: --lr expects float", --fps and --shade argparse's "invalid float
    # value", the others "expects a number": one option, three wordings, one of them naming the option twice
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
        f"bicyclegan {argv[0]}: error: argument {name}: expects {what}, got {argv[-1]!r}")


def test_the_python_api_refuses_an_empty_out_or_dataroot_too(batchnorm_model, demo_root, tmp_path, monkeypatch):
    # sample(m, root, out="") wrote its gallery into the current folder, as did interpolate and compare; sample(m, "")
    # read the model's own data ("this model's config names none; pass --dataroot" where it named none);
    # make_demo_dataset("") wrote train/, val/ and test/ there
    from bicyclegan.engine import compare, interpolate
    from bicyclegan.pipelines import make_demo_dataset
    monkeypatch.chdir(tmp_path)
    calls = [lambda: sample(batchnorm_model, demo_root, out="", num=1), lambda: sample(batchnorm_model, " ", out="o"),
             lambda: interpolate(batchnorm_model, demo_root, out=""),
             lambda: compare([batchnorm_model, batchnorm_model], demo_root, out="")]
    for call, name in zip(calls, ("out", "dataroot", "out", "out")):
        with pytest.raises(ConfigError, match=f"{name}=' ?' names no folder or file; give one"):
            call()
    with pytest.raises(ValueError, match="root='' names no folder; give one"):
        make_demo_dataset("")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_help_explains_every_option_and_names_its_default(command):
    # `sample --help` said "--num: at most this many inputs", `interpolate --help` "--num: inputs", neither how
    # many without it (50; 5), nor --n_samples', --seed's, --frames' or --fps' (the README's, read elsewhere);
    # evaluate's --num and --n_samples said the paper's counts, not that they were the defaults, and serve's
    # --port, export's --opset and make-demo's --size and --seed said nothing of theirs
    assert COMMANDS[command].description  # (import-official's --help began with its options)
    for action in COMMANDS[command]._actions:
        # (make-demo's OUT, --size, --width, --seed and the --direction of sample, interpolate and serve had none;
        # download's dataset|model have theirs each; download dataset's and model's --dir said no default)
        assert action.help or isinstance(action, argparse._SubParsersAction), action.dest
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            continue  # (no default, a flag, --help)
        said = {str(action.default), f"{action.default:g}" if isinstance(action.default, float) else ""} - {""}
        assert any(f"default{colon} {s}" in (action.help or "") for s in said for colon in ("", ":")), \
            (action.dest, action.help)


def test_an_evaluation_builds_its_loader_once_and_measures_as_a_loader_of_its_own(demo_root, tmp_path, monkeypatch):
    """The Evaluation built a batch-1 loader for the split's sizes and run() another: the split listed and
    checked twice for one evaluation. One now, kept for the first run; a later run (a training's next
    evaluation) makes its own, and measures the same."""
    ev_module = importlib.import_module("bicyclegan.engine.evaluate")  # (the package exports the function by that name)
    built, real = [], ev_module.build_loader

    def counted(*args, **kw):
        loader = real(*args, **kw)  # (a refused one is not counted: a split of several sizes, asked a batch of 2)
        built.append(kw["batch_size"])
        return loader
    monkeypatch.setattr(ev_module, "build_loader", counted)
    mixed = tmp_path / "mixed" / "val"
    mixed.mkdir(parents=True)
    for i, side in enumerate((32, 64, 32)):  # preprocess none keeps each size: an input at a time
        Image.open(demo_root / "val" / f"{i:05d}.png").resize((2 * side, side)).save(mixed / f"{i}.png")
    model = tiny(demo_root)
    for root, batch in ((demo_root, 2), (tmp_path / "mixed", 1)):
        built.clear()
        ev = ev_module.Evaluation(model, root, phase="val", num=3, device="cpu", batch_size=2, metrics="l1")
        first = ev.run(2, seed=1)
        assert built == [batch], root
        assert ev.run(2, seed=1) == first and built == [batch, batch], root


def test_an_evaluation_for_another_model_made_before_the_first_run_reads_a_loader_of_its_own(demo_root):
    """Evaluation.of() before the first run(): the copy does not share the loader kept for that run, which the
    run closes when it ends (shared, the copy's run read a closed loader, a ValueError). It measures its model
    as an Evaluation of its own does."""
    from bicyclegan.engine.evaluate import Evaluation
    options = dict(phase="val", num=3, device="cpu", batch_size=2, metrics="l1")
    ev = Evaluation(tiny(demo_root), demo_root, **options)
    other_model = tiny(demo_root)
    with torch.no_grad():  # (another model of the same options: its own weights)
        for p in other_model.G.parameters():
            p.mul_(0.5)
    other = ev.of(other_model)
    first = ev.run(2, seed=1)
    assert other.run(2, seed=1) == Evaluation(other_model, demo_root, **options).run(2, seed=1) != first


def test_a_max_pixels_over_pils_limit_is_taken_by_the_commands_and_said_in_python(demo_root, tmp_path, monkeypatch):
    # PIL refuses to decode over its own limit (89 M pixels; over twice it, an error): train --max_pixels 1e8 was
    # a ValueError traceback, the advice "raise that too" unfollowable from the command line, and a model trained
    # so could not be sampled. Here PIL's limit is scaled to the 64 x 32 files (2,048 pixels, over twice 1,000).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    run = tmp_path / "r"
    args = ["--netG", "unet", "--crop_size", "32", "--load_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4",
            "--netE", "resnet_128", "--netD", "basic_128_multi", "--netD2", "basic_128_multi", "--impl", "ref",
            "--batch_size", "2", "--max_steps", "1", "--no-progress", "--num_workers", "1", "--backend", "torch"]
    assert main(["train", "--dataroot", str(demo_root), "--out", str(run), *args, "--max_pixels", "5000"]) == 0
    assert main(["sample", str(run), "--out", str(tmp_path / "s"), "--num", "2", "--n_samples", "1"]) == 0
    assert len(list((tmp_path / "s" / "images").glob("*.png"))) == 2 * 4  # input, ground truth, encoded, one z
    assert Image.MAX_IMAGE_PIXELS == 1000  # the process's own limit again after each command
    with pytest.raises(ConfigError, match=r"^max_pixels=5,000 is over PIL's own limit \(PIL\.Image\.MAX_IMAGE_PIXELS "
                                          r"= 1,000\), under which files are decoded: in Python, raise that too "):
        sample(run / "checkpoints" / "latest.pt", out=tmp_path / "p", num=2)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # raised, as the message says
    sample(run / "checkpoints" / "latest.pt", out=tmp_path / "p", num=2, progress=False)


@pytest.mark.parametrize("env, said", [
    ({"RANK": "1"}, "RANK=1 in the environment, of WORLD_SIZE=1 (not set): ranks are 0 to 0"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 in the environment without RANK"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0' in the environment: an integer >= 1 was expected"),
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' in the environment: an integer >= 1 was expected"),
    ({"RANK": "-1"}, "RANK='-1' in the environment: an integer >= 0 was expected"),
    ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5 in the environment, of WORLD_SIZE=2: ranks are 0 to 1"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' in the environment"),
])
@pytest.mark.parametrize("command", [["sample", "no.pt"], ["evaluate", "no.pt"], ["train", "--dry-run"]])
def test_a_launchs_variables_that_cannot_be_are_one_line(monkeypatch, capsys, tmp_path, env, said, command):
    # read with a bare int(): RANK=1 alone was a StopIteration or a TypeError, WORLD_SIZE=0 a ZeroDivisionError,
    # RANK=5 of 2 waited forever for ranks that never came
    monkeypatch.chdir(tmp_path)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bicyclegan {command[0]}: ConfigError: {said}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_launch_without_the_address_to_meet_at_is_one_line(monkeypatch):
    from bicyclegan.engine.runtime import init_distributed
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ConfigError, match="WORLD_SIZE=2 in the environment without MASTER_ADDR and MASTER_PORT"):
        init_distributed("cpu")


def test_a_demo_run_says_that_it_measures_its_table_before_the_seconds_it_takes(tmp_path, capsys, monkeypatch):
    # after "report: ..." the demo's table took seconds to minutes without a word: the run looked hung
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "r", "--ngf", "4", "--nef", "4", "--ndf", "4", "--max_steps", "1", "--impl", "ref",
                 "--eval_every", "0", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "measuring the demo's table on the test split (10 z per input, then 100 z for the palette shares)..." in err
    assert "coverage" in out


def test_the_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    import bicyclegan.engine
    assert bicyclegan.engine.__version__ == version("bicyclegan")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"bicyclegan {version('bicyclegan')}\n"


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_the_inference_functions_take_a_model_of_another_dtype(batchnorm_model, demo_root, tmp_path, dtype):
    # A bf16 or float64 model was "Input type (float) and bias type (...) should be the same" in sample,
    # evaluate, interpolate, compare and sample_columns (generate alone cast its input)
    import copy
    model = copy.deepcopy(batchnorm_model).to(dtype)
    A = pair(demo_root, 0)[0]
    z = torch.randn(2, NZ)
    got, _ = sample_columns(model, A, z=z)
    want, _ = sample_columns(batchnorm_model, A, z=z)
    assert [c.dtype for c in got] == [torch.float32] * 3  # (the columns in A's dtype)
    tol = 1e-5 if dtype == torch.float64 else 0.1
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=tol)
    sample(model, out=tmp_path / "s", num=2, n_samples=2, progress=False)
    evaluate(model, num=2, n_samples=2)
    interpolate(model, out=tmp_path / "i", num=1, frames=2, segments=1)
    with pytest.raises(ValueError, match=r"sample_columns: A must be a float tensor N x 3 x H x W in \[-1, 1\], "
                                         r"got \(3, 32, 32\)"):
        sample_columns(model, A[0])
    with pytest.raises(ValueError, match=r"sample_columns: z must be n x 8 float codes .*, got \(8,\)"):
        sample_columns(model, A, z=torch.randn(NZ))


def test_devices_are_named_as_the_commands_take_them_and_a_models_own_is_kept(batchnorm_model, demo_root, tmp_path):
    # load_checkpoint(path, "auto") was torch's "Expected one of cpu, cuda, ..."; a device given with a model
    # object was ignored without a word (device="cuda" sampled on the CPU)
    from bicyclegan.engine import load_checkpoint
    from bicyclegan.engine.runtime import open_model
    path = save_checkpoint(batchnorm_model, tmp_path / "m.pt")
    assert load_checkpoint(path, "auto").device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # (a checkpoint of the kernels asks whether they run on the device named: "auto" too)
    cfg = make_config("reference", dataroot=str(demo_root), **{**TINY, "impl": "triton"})
    kernels = save_checkpoint(BicycleGAN(cfg), tmp_path / "k.pt")
    assert load_checkpoint(kernels, "auto").cfg.model.impl in ("triton", "auto")
    with pytest.raises(ConfigError, match="device='gpu' is not a device; use auto, cpu, cuda or cuda:N"):
        load_checkpoint(path, "gpu")
    with pytest.raises(ConfigError, match="device='gpu' is not a device"):
        BicycleGAN(batchnorm_model.cfg, device="gpu")
    # (sample --device mps took it to torch's "not linked with support for mps devices", a traceback; meta to "Cannot
    # copy out of meta tensor")
    for other in ("mps", "meta"):
        with pytest.raises(ConfigError, match=rf"device='{other}': this package runs on the CPU or a CUDA GPU \(no "
                                              rf"{other}\); use auto, cpu, cuda or cuda:N"):
            load_checkpoint(path, other)
    assert main(["sample", str(path), "--dataroot", str(demo_root), "--device", "mps", "--out", str(tmp_path / "o")]
                ) == 2
    assert open_model(batchnorm_model, "cpu") is batchnorm_model and open_model(batchnorm_model) is batchnorm_model
    elsewhere = BicycleGAN(batchnorm_model.cfg, training=False).to("meta")
    with pytest.raises(ConfigError, match=r"device='cpu' given with a model on meta: move the model first"):
        open_model(elsewhere, "cpu")
