"""`sample` and `interpolate` under torchrun: the processes share the inputs, and every file written (each
input's PNGs, GIF and MP4, grid.png, path.json, index.html, .images.json) is byte for byte what one process
writes for the same arguments, whatever the number of processes: a rank of fewer inputs, one of none (more
processes than inputs), z spread or independent, a path of random or encoded codes. One rank's error ends
every rank, printed once (the commands that still refuse torchrun: test_distributed)."""
import hashlib
import importlib

import numpy as np
import pytest
import torch
from PIL import Image
from test_distributed import torchrun_cli, torchrun_in_turn

from bicyclegan.engine import BicycleGAN, make_config, sample
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.interpolate import mp4_available
from bicyclegan.pipelines import make_demo_dataset

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch",
            init_gain=1.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(demo data of 5 val inputs, a checkpoint of tiny random networks reading it)."""
    where = tmp_path_factory.mktemp("sample_torchrun")
    root = make_demo_dataset(where / "data", n_train=2, n_test=0, n_val=5, size=32)
    torch.manual_seed(3)
    model = BicycleGAN(make_config("reference", dataroot=str(root), **TINY), device="cpu", training=False)
    return root, save_checkpoint(model, where / "m.pt")


def files(folder):
    """Every file below `folder` (relative name -> its bytes' digest)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


CASES = [  # (command, processes, inputs, options, files per input)
    ("sample", 2, 5, ["--n_samples", "3", "--seed", "4"], 6),  # 2 + 3 inputs; input, ground truth, encoded, 3 random z
    # 1 + 1 + none: more processes than inputs
    ("sample", 3, 2, ["--spread_z", "--aspect_ratio", "1.5", "--seed", "4"], 8),
    # the codes of the path: E(B) of two inputs (rank 0's, broadcast), or random; input, strip, GIF (and MP4)
    ("interpolate", 2, 3, ["--path", "encoded", "--refs", "2,0", "--frames", "2"], 3 + mp4_available()),
    ("interpolate", 3, 2, ["--segments", "2", "--frames", "1", "--mode", "linear", "--no-mp4", "--seed", "4"], 3),
]


def _argv(setup, case):
    command, _, num, options, _ = CASES[case]
    root, ckpt = setup
    return [command, ckpt, "--dataroot", root, "--phase", "val", "--num_test", str(num), "--device", "cpu", *options]


@pytest.fixture(scope="module")
def launches(setup, tmp_path_factory):
    """Call with a number of processes: one torchrun launch of that many runs the CASES of that many in turn
    (torchrun_in_turn), case i into <folder>/<i>/; (its folder, the launch, what each case printed: case -> text).
    One launch for two cases: its start-up took most of a case's time."""
    made = {}

    def launch(nproc):
        if nproc not in made:
            where = tmp_path_factory.mktemp(f"torchrun_{nproc}")
            cases = [i for i, case in enumerate(CASES) if case[1] == nproc]
            done, said, codes = torchrun_in_turn(where, [[*_argv(setup, i), "--out", where / str(i)] for i in cases],
                                                 nproc=nproc)
            made[nproc] = where, done, dict(zip(cases, said)), dict(zip(cases, codes)), len(cases)
        return made[nproc]
    return launch


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_under_torchrun_the_processes_share_the_inputs_and_write_one_processs_files(setup, launches, tmp_path, case):
    command, nproc, num, _, per_input = CASES[case]
    assert main([*map(str, _argv(setup, case)), "--out", str(tmp_path / "one")]) == 0
    one = files(tmp_path / "one")
    # each input's files, the gallery, the list of written images, and sample's grid or interpolate's path
    # (and sample's record of what its images are made from)
    kept = {"sample": {"grid.png", ".sample.json"}, "interpolate": {"path.json"}}[command]
    assert len(one) == num * per_input + 2 + len(kept) and {*kept, "index.html", ".images.json"} <= set(one)
    where, done, said_by, codes, launched = launches(nproc)
    everything = done.stdout + done.stderr
    assert done.returncode == 0 and codes[case] == [0] * nproc, everything[-3000:]
    assert files(where / str(case)) == one
    said = said_by[case]
    # rank 0 alone prints: the progress (of every rank's inputs) and the results' lines (counted in all of the
    # launch's output too: another rank's line may come after rank 0's start of the next command)
    done_line = {"sample": "sampled", "interpolate": "interpolated"}[command]
    assert said.count(f"{done_line} {num}/{num}") == 1 and said.count("results: ") == 1, said
    assert said.count("gallery: ") == 1 and "Traceback" not in said, said
    assert everything.count(f"{done_line} {num}/{num}") == 1 and "Traceback" not in everything, everything
    assert everything.count("results: ") == everything.count("gallery: ") == launched, everything


@pytest.mark.slow
def test_under_torchrun_an_error_on_one_rank_ends_every_rank_printed_once(setup, tmp_path):
    """The last input, rank 1's (2 + 3 inputs), is 40 px a side, which the generator cannot take (multiples
    of 32): rank 1 prints its refusal, rank 0 (done with its share, waiting) ends with it in silence, and
    no gallery or grid is written."""
    root, ckpt = setup
    data = tmp_path / "data"
    (data / "val").mkdir(parents=True)
    for f in sorted((root / "val").glob("*.png")):
        (data / "val" / f.name).write_bytes(f.read_bytes())
    Image.fromarray(np.full((40, 80, 3), 128, np.uint8)).save(data / "val" / "00004.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").write_text("an earlier call's gallery")
    (tmp_path / "out" / "grid.png").write_bytes(b"its grid")  # (what makes it sample's: refuse_others_results)
    done = torchrun_cli(tmp_path, "sample", ckpt, "--dataroot", data, "--phase", "val", "--num_test", "5",
                        "--device", "cpu", "--out", tmp_path / "out")
    said = done.stdout + done.stderr
    line = (f"bicyclegan sample: ConfigError: {data / 'val' / '00004.png'} is 40x40 after preprocess=none, not a "
            f"multiple of 32")
    assert done.returncode != 0 and said.count(line) == 1, said[-3000:]
    assert "engine/" not in said and "RankLostError" not in said, said  # no rank's traceback (torchrun prints its own)
    written = files(tmp_path / "out")
    assert not {"index.html", "grid.png"} & set(written)  # (the earlier gallery went with the first new file)
    assert "images/00000_input.png" in written  # rank 0's share was written before rank 1's refusal


def test_a_file_broken_since_the_checks_is_left_out_and_the_others_keep_their_places(setup, tmp_path, monkeypatch):
    """With skip_bad the loader puts the next good input in a broken one's place: one process wrote that input
    twice (a second row, its files as 00002-2_*) and a rank would write it in another's place. Each input is
    written once, in its own place, with its own codes: the files of a call without the broken one."""
    sampling = importlib.import_module("bicyclegan.engine.sample")  # (the package's `sample` is the function)
    root, ckpt = setup
    data = tmp_path / "data"
    (data / "val").mkdir(parents=True)
    for f in sorted((root / "val").glob("*.png")):
        (data / "val" / f.name).write_bytes(f.read_bytes())
    whole = files(sample(ckpt, data, out=tmp_path / "whole", phase="val", num=4, seed=4, progress=False))
    build = sampling.build_loader

    def breaking(*args, **kwargs):  # the file breaks once the loader has checked it
        loader = build(*args, **kwargs)
        (data / "val" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        return loader
    monkeypatch.setattr(sampling, "build_loader", breaking)
    got = files(sample(ckpt, data, out=tmp_path / "broken", phase="val", num=4, seed=4, progress=False,
                       skip_bad=True))
    images = {k: v for k, v in whole.items() if k.startswith("images/")}
    assert {k: v for k, v in got.items() if k.startswith("images/")} == {
        k: v for k, v in images.items() if not k.startswith("images/00001_")}
    assert len(images) == 4 * 8
    gallery = (tmp_path / "broken" / "index.html").read_text()
    assert gallery.count("<tr>") == 3 and "00001" not in gallery


@pytest.mark.slow
def test_under_torchrun_a_stopped_sample_goes_on_where_it_stopped(setup, tmp_path):
    """One process's call stopped after 3 of 5 inputs, then the same under torchrun: rank 0's share (2) was
    written, rank 1's first input too; rank 1 makes its other two alone (the files written before are the same
    files still), and the folder is one straight process's."""
    root, ckpt = setup
    argv = _argv(setup, 0)  # 5 inputs, 3 random z, seed 4
    assert main([*map(str, argv), "--out", str(tmp_path / "one")]) == 0
    images = importlib.import_module("bicyclegan.engine.images")
    real = images.count_line

    def stop(label, done, total):
        if done == 3:
            raise KeyboardInterrupt
    images.count_line = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            sample(ckpt, root, out=tmp_path / "r", phase="val", num=5, n_samples=3, seed=4, device="cpu")
    finally:
        images.count_line = real
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "r" / "images").iterdir()}
    assert sorted({name[:5] for name in before}) == ["00000", "00001", "00002"]
    done = torchrun_cli(tmp_path, *argv, "--out", tmp_path / "r")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert said.count(f"3 of 5 inputs already sampled into {tmp_path / 'r'}") == 1, said[-3000:]
    assert files(tmp_path / "r") == files(tmp_path / "one")
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "r" / "images").iterdir()}
    assert {name: after[name] for name in before} == before  # not written again
