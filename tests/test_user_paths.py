"""What users trip over between commands (found by audits of a first-time user's and a researcher's
paths): the learning-rate schedule's end, start-up errors that used to leave a half-made run folder,
plain folders of images read by every inference command as inputs only, per-model result paths,
export's opset and run folders, diversity from one sample per input; and in training runs, what a
resume leaves behind, image sizes the U-Net cannot take, non-square crops, a change of loader, a run
folder another training is writing, a run's checkpoint continued elsewhere, a finished run resumed; a
new run from any checkpoint's weights (--init_from); a plain folder's results beside the splits', the
epoch the progress line names, --no-progress, and a text file or a dataset given as the model."""
import dataclasses
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import TINY, tiny_cfg

from bicyclegan.engine import (
    BicycleGAN,
    CheckpointError,
    ConfigError,
    OutputError,
    evaluate,
    interpolate,
    load_checkpoint,
    read_checkpoint,
    sample,
    save_checkpoint,
)
from bicyclegan.engine.checkpoint import write_state
from bicyclegan.engine.cli import main
from bicyclegan.engine.config import ModelConfig
from bicyclegan.engine.export import export_generator
from bicyclegan.engine.runtime import _warn_once, inference_data, results_dir
from bicyclegan.engine.trainer import Trainer, check_start
from bicyclegan.pipelines import DatasetError, make_demo_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=4, size=32, seed=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("runs") / "r"
    Trainer(tiny_cfg(out, data, max_steps=2, save_every=2, sample_every=100), progress=False).train()
    return out


@pytest.fixture
def plain(tmp_path):
    """A folder of single 32 x 32 images: no split folder, no A/, no ground truth."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_max_steps_past_the_schedule_is_refused_before_anything_is_written(tmp_path, data):
    # 16 images, batch 4: 4 iterations an epoch; niter 1 + niter_decay 1 = 8 iterations, after which
    # the reference's rule gave negative rates (gradient ascent, seen blowing the KL up to 2e10).
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match=r"max_steps=9 runs past the learning-rate schedule: niter 1 \+ "
                                          r"niter_decay 1 epochs are 8 iterations of this data \(4 an epoch\)"):
        Trainer(tiny_cfg(out, data, max_steps=9), progress=False)
    assert not (out / "config.json").exists() and not (out / "log.jsonl").exists()
    Trainer(tiny_cfg(out, data, max_steps=8, sample_every=100, save_every=100), progress=False).train()
    lrs = [json.loads(line)["lr"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert min(lrs) > 0 and lrs[-1] == pytest.approx(2e-4 / 2)  # the last epoch: 1 - 1/2


def test_cuda_graph_on_a_cpu_is_refused_before_the_run_folder_is_made(tmp_path, data, capsys):
    out = tmp_path / "g"
    assert main(["train", "--dataroot", str(data), "--out", str(out), "--device", "cpu", "--cuda_graph",
                 "--num_workers", "0", "--max_steps", "1"]) == 2
    assert "cuda_graph=True captures the step on a CUDA device; this run trains on cpu" in capsys.readouterr().err
    assert not (out / "config.json").exists() and not (out / "log.jsonl").exists()


@pytest.mark.parametrize("name", ["input_nc", "output_nc"])
def test_channels_other_than_1_or_3_are_refused_by_the_config(name):
    with pytest.raises(ConfigError, match=f"{name}=2 must be 1 \\(grayscale\\) or 3 \\(RGB\\)"):
        ModelConfig(**{name: 2})


def test_interrupt_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, data, monkeypatch, capsys):
    out = tmp_path / "i"

    def interrupted(self):
        (out / "log.jsonl").write_text("")
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "train", interrupted)
    args = ["train", "--dataroot", str(data), "--out", str(out), "--num_workers", "0", "--max_steps", "4"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert f"interrupted before the run's first checkpoint: nothing to resume (delete {out} to start" in err
    assert "--resume" not in err
    assert main(args) == 2  # the folder is refused, and the message says why and what to do
    assert "stopped before its first checkpoint (log.jsonl, no checkpoint): nothing to resume; delete the " \
           "folder" in capsys.readouterr().err


def test_interrupt_with_epoch_checkpoints_only_says_to_continue_from_the_latest_epoch(tmp_path, data, monkeypatch,
                                                                                     capsys):
    # Interrupted after epoch 2's checkpoint but before any latest.pt (--save_epoch_freq below
    # --save_every): the message said there was nothing to resume and to delete the folder.
    out = tmp_path / "e"

    def interrupted(self):
        (out / "log.jsonl").write_text("")
        for epoch in (1, 2):
            (out / "checkpoints" / f"epoch_{epoch}.pt").write_bytes(b"")  # the names are what is read
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "train", interrupted)
    (out / "checkpoints").mkdir(parents=True)
    args = ["train", "--dataroot", str(data), "--out", str(out), "--num_workers", "0", "--max_steps", "4"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert f"interrupted; the run kept per-epoch checkpoints only: bicyclegan train --out {out} --epoch 2" in err
    assert "nothing to resume" not in err


def test_an_interrupt_under_torchrun_is_said_once_with_the_launch_that_resumes(tmp_path, monkeypatch, capsys):
    # Ctrl-C reaches every rank: each printed the line, with the one-process command (which the run's checkpoint
    # refuses), and before the run's folder existed it said to delete it.
    from bicyclegan.engine import cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_train", interrupted)
    out = tmp_path / "r"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    said = {}
    for rank, made in (("1", False), ("0", False), ("0", True), ("1", True)):
        monkeypatch.setenv("RANK", rank)
        if made:
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            (out / "checkpoints" / "latest.pt").write_bytes(b"")  # (its name is what is read)
        assert cli.main(["train", "--out", str(out)]) == 130
        said[rank, made] = capsys.readouterr().err
    assert said["1", False] == said["1", True] == ""
    assert said["0", False] == "interrupted before the run's first checkpoint: nothing to resume\n"
    assert said["0", True] == (f"interrupted; the latest checkpoint is intact: torchrun --nproc_per_node 2 -m "
                               f"bicyclegan.engine.cli train --out {out} --resume\n")
    monkeypatch.setattr(cli, "cmd_evaluate", interrupted)  # (evaluate's "interrupted" came once per rank too)
    for rank, want in (("1", ""), ("0", "interrupted; the measures made so far are kept: the same command goes on "
                                        "from them\n")):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(["evaluate", str(out)]) == 130
        assert capsys.readouterr().err == want, rank


def test_every_inference_command_reads_a_plain_folder_as_inputs_only(run, plain, tmp_path):
    # evaluate, interpolate and serve cut each image into halves and compared with the right one.
    # (a model trained elsewhere: its own flat training folder is read as pairs, as it trained on them)
    cfg_root, phase, layout, _ = inference_data(tiny_cfg(run, tmp_path / "elsewhere"), plain)
    assert (cfg_root, phase, layout) == (plain, "test", "single")
    ckpt = run / "checkpoints" / "latest.pt"
    r = evaluate(ckpt, plain, n_samples=2, num=3)
    assert r["n_inputs"] == 3 and "encoded_l1" not in r
    out = sample(ckpt, plain, out=tmp_path / "s", n_samples=1, num=3, progress=False)
    assert not list((out / "images").glob("*ground_truth*")) and not list((out / "images").glob("*encoded*"))
    page = (out / "index.html").read_text()
    assert "<h1>bicycle on plain · latest.pt, step " in page  # not "plain/test": no such split
    # each picture said in words (a screen reader read its file's name): its input's and its column's
    assert re.findall(r"<img src='images/0_input.png' alt='([^']*)'", page) == ["0.png: input"]
    assert all(" alt='" in tag for tag in re.findall(r"<img [^>]*>", page))
    out = interpolate(ckpt, plain, out=tmp_path / "i", num=1, segments=1, frames=1, mp4=False, progress=False)
    page = (out / "index.html").read_text()
    assert re.search(r"<h1>bicycle on plain · latest\.pt, step \d+: ", page)
    assert all(" alt='0.png: " in tag for tag in re.findall(r"<img [^>]*>", page))
    strip = Image.open(out / "images" / "0_strip.png").convert("RGB")
    side = strip.size[1]  # tiny images are enlarged
    shown = np.asarray(strip.crop((0, 0, side, side)).resize((32, 32), Image.BILINEAR), dtype=float)
    whole = np.asarray(Image.open(plain / "0.png"), dtype=float)
    left_half = np.asarray(Image.open(plain / "0.png").crop((0, 0, 16, 32)).resize((32, 32)), dtype=float)
    assert np.abs(shown - whole).mean() < np.abs(shown - left_half).mean() / 2  # the whole input first
    # A layout given is kept (--layout on every inference command); a split folder is not single.
    assert inference_data(tiny_cfg(run, plain), None, layout="aligned")[2] == "aligned"
    assert inference_data(tiny_cfg(run, plain), plain.parent, phase="plain")[2] is None


def test_plain_images_in_a_split_folder_are_refused_with_layout_single_as_the_way(run, plain, tmp_path, capsys):
    # Square inputs in a split folder (ds/val) are read as A|B pairs, a split folder's default: each 32 x 32 file's
    # 16 x 32 left half was refused with "use a preprocess that crops", which reads them on as pairs, halved.
    # --layout single reads each whole; pairs of a wrong size (48 x 48 halves of 96 x 48 files) keep the advice.
    pytest.importorskip("fastapi")
    from bicyclegan.engine.serve import Explorer
    ckpt, root, pairs = run / "checkpoints" / "latest.pt", tmp_path / "ds", tmp_path / "pairs"
    shutil.copytree(plain, root / "val")
    rng = np.random.default_rng(0)
    (pairs / "val").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).save(pairs / "val" / "0.png")
    calls = {"sample": lambda r, **kw: sample(ckpt, r, phase="val", out=tmp_path / "s", n_samples=1, num=1,
                                              progress=False, **kw),
             "evaluate": lambda r, **kw: evaluate(ckpt, r, phase="val", n_samples=1, num=1, **kw),
             "interpolate": lambda r, **kw: interpolate(ckpt, r, phase="val", out=tmp_path / "i", num=1, segments=1,
                                                        frames=1, mp4=False, progress=False, **kw),
             "serve": lambda r, **kw: Explorer(ckpt, r, phase="val", num=1, device="cpu", **kw)}
    half = re.escape(f"{root / 'val' / '0.png'} is 16x32 after preprocess=none, not a multiple of 32")
    for name, call in calls.items():
        with pytest.raises(ConfigError, match=half) as e:
            call(root)
        assert "give --layout single" in str(e.value) and "preprocess that crops" not in str(e.value), name
        # the layout given (the user says they are pairs), and genuine pairs of the wrong size: the advice to crop
        with pytest.raises(ConfigError, match=half) as e:
            call(root, layout="aligned")
        assert "--layout single" not in str(e.value) and "preprocess that crops" in str(e.value), name
        with pytest.raises(ConfigError, match=r"0\.png is 48x48 after preprocess=none") as e:
            call(pairs)
        assert "--layout single" not in str(e.value) and "preprocess that crops" in str(e.value), name
    assert sample(ckpt, root, phase="val", layout="single", out=tmp_path / "s1", n_samples=1, num=1, progress=False)
    assert main(["sample", str(run), "--dataroot", str(root), "--phase", "val", "--out", str(tmp_path / "s2"),
                 "--num", "1", "--n_samples", "1", "--device", "cpu"]) == 2
    assert "give --layout single" in capsys.readouterr().err


def test_serve_offers_a_plain_folder_without_ground_truth(run, plain):
    pytest.importorskip("fastapi")
    from bicyclegan.engine.serve import Explorer
    explorer = Explorer(run / "checkpoints" / "latest.pt", plain, num=3, device="cpu")
    assert len(explorer.items) == 3 and all(item.B is None for item in explorer.items.values())


def test_a_split_given_as_the_folder_of_inputs_is_warned_of(run, data, plain, tmp_path, caplog):
    # --dataroot data/val for --dataroot data --phase val was a plain folder of inputs, unsaid: G took each
    # whole A|B file (B in it) and evaluate measured nothing against no B, exit 0. Said once, not refused
    # (wide photos are inputs too); the demo's files are 64 x 32 pairs of the model's 32 x 32.
    _warn_once.cache_clear()
    root = tmp_path / "ds"
    shutil.copytree(data / "test", root / "val")
    (root / "train").mkdir()

    def warned(*args, **kw):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            inference_data(*args, **kw)
        return [r.getMessage() for r in caplog.records if "plain folder of inputs" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        assert main(["sample", str(run), "--dataroot", str(root / "val"), "--out", str(tmp_path / "s"),
                     "--num", "1", "--n_samples", "1", "--device", "cpu"]) == 0
    said = [r.getMessage() for r in caplog.records if "plain folder of inputs" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{root / 'val'} is read as a plain folder of inputs")
    assert "is 64 x 32" in said[0] and f"--dataroot {root} --phase val" in said[0]
    assert "--layout aligned" in said[0] and "--layout single" in said[0]
    cfg = load_checkpoint(run / "checkpoints" / "latest.pt").cfg
    wide = tmp_path / "wide"  # pairs outside a dataset's splits: only --layout aligned reads them as pairs
    shutil.copytree(data / "test", wide)
    _warn_once.cache_clear()
    assert len(said := warned(cfg, wide)) == 1 and "--phase" not in said[0] and "--layout aligned" in said[0]
    _warn_once.cache_clear()
    assert warned(cfg, root / "val", layout="single") == []  # read so on purpose
    assert warned(cfg, plain) == []  # square single images
    assert warned(cfg, root, phase="val") == []  # the split read as one
    # A model of 32 x 64 inputs: the 64 x 32 files are not its pairs, but a split of its own dataset still is one
    cfg.model = dataclasses.replace(cfg.model, crop_width=64)
    assert warned(cfg, root / "val") == []
    said = warned(cfg, data / "test")
    assert len(said) == 1 and f"it is a split of {data.resolve()}, the model's training data" in said[0]


def test_a_model_trained_on_a_flat_folder_of_pairs_samples_its_pairs(data, tmp_path, caplog):
    # A run trained on a folder of A|B files directly in it (no splits), sampled without --dataroot: its own
    # folder, found without a split or A/, was read as a plain folder of inputs, G fed each whole pair (B in it).
    flat = tmp_path / "flat"
    shutil.copytree(data / "train", flat)
    run = tmp_path / "run"
    Trainer(tiny_cfg(run, flat, max_steps=1, save_every=1, sample_every=100), progress=False).train()
    cfg = load_checkpoint(run / "checkpoints" / "latest.pt").cfg
    _warn_once.cache_clear()
    assert inference_data(cfg)[2] == "aligned"
    assert inference_data(cfg, flat.parent / "flat")[2] == "aligned"  # the same folder, given
    assert inference_data(cfg, flat, layout="single")[2] == "single"  # (as forced)
    out = tmp_path / "s"
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        assert main(["sample", str(run), "--out", str(out), "--num", "1", "--n_samples", "1", "--device", "cpu"]) == 0
    assert not [r for r in caplog.records if "plain folder of inputs" in r.getMessage()]
    # the pair's halves: its input is A alone (32 x 32, not the 64 x 32 file squeezed), its ground truth is there
    files = sorted(p.name for p in (out / "images").iterdir())
    truth = [f for f in files if "ground" in f]
    assert len(truth) == 1, files
    name = sorted(p.name for p in flat.iterdir())[0]
    pair = np.asarray(Image.open(flat / name).convert("RGB"))
    got = np.asarray(Image.open(out / "images" / truth[0]).convert("RGB"))
    assert got.shape == (32, 32, 3) and np.abs(got.astype(int) - pair[:, 32:].astype(int)).max() <= 2


def test_results_of_two_models_never_share_a_folder(tmp_path):
    assert results_dir(tmp_path / "pretrained" / "shoes.pt", "val") == results_dir("x/shoes.pt", "val")
    assert results_dir("pretrained/shoes.pt", "val") != results_dir("pretrained/bags.pt", "val")
    run = tmp_path / "run"
    assert results_dir(run / "checkpoints" / "latest.pt", "val") == run / "results" / "val"
    assert results_dir(run / "checkpoints" / "epoch_2.pt", "val") == run / "results" / "val_epoch_2"
    # a checkpoint named ...pt (its stem '..') wrote to ./val, beside results/, over the user's files there
    assert results_dir(tmp_path / "...pt", "val") == Path("results") / "...pt" / "val"
    assert results_dir(tmp_path / "..pt", "val") == Path("results") / "..pt" / "val"


def test_a_runs_checkpoints_folder_is_taken_as_the_run_by_every_command(run, tmp_path, capsys):
    # `evaluate RUN/checkpoints --epoch all` took the folder a user looks into to see the epochs as the run, and
    # `sample RUN/checkpoints` (evaluate, interpolate, export, compare, train --init_from) refused it as "not a run
    # folder"
    from bicyclegan.engine.checkpoint import find_checkpoint
    from bicyclegan.engine.compare import default_name
    run = Path(shutil.copytree(run, tmp_path / "r"))
    ckpts, latest = run / "checkpoints", run / "checkpoints" / "latest.pt"
    assert find_checkpoint(ckpts) == latest and default_name(ckpts) == "r"
    assert results_dir(ckpts, "test") == run / "results" / "test"
    assert main(["sample", str(ckpts), "--num", "1", "--n_samples", "1", "--device", "cpu"]) == 0
    assert main(["evaluate", str(ckpts), "--num", "2", "--n_samples", "2", "--metrics", "l1", "--device", "cpu"]) == 0
    assert (run / "results" / "test" / "index.html").is_file() and (run / "results" / "test" / "eval.json").is_file()
    assert not (ckpts / "results").exists() and not Path("results").exists()
    capsys.readouterr()
    assert main(["train", "--init_from", str(ckpts), "--out", str(tmp_path / "new"), "--max_steps", "3",
                 "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["init_from"] == str(latest)
    assert main(["export", str(ckpts), "--out", str(tmp_path / "g.pt2")]) == 0


def test_evaluate_writes_per_model_and_per_epoch_and_names_the_checkpoint(run, data, tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.chdir(tmp_path)
    loose = tmp_path / "mine.pt"
    loose.write_bytes((run / "checkpoints" / "latest.pt").read_bytes())
    common = ["--dataroot", str(data), "--n_samples", "2", "--num", "2", "--metrics", "l1"]
    assert main(["evaluate", str(loose), *common]) == 0
    written = tmp_path / "results" / "mine" / "test" / "eval.json"
    assert json.loads(written.read_text())["checkpoint"] == str(loose.resolve())
    assert main(["evaluate", str(run), *common]) == 0
    assert json.loads((run / "results" / "test" / "eval.json").read_text())["checkpoint"] == \
        str((run / "checkpoints" / "latest.pt").resolve())
    (tmp_path / "folder").mkdir()
    capsys.readouterr()
    assert main(["evaluate", str(run), *common, "--json", str(tmp_path / "folder")]) == 2
    assert "is a folder; give the file to write" in capsys.readouterr().err


def test_diversity_from_one_sample_per_input_is_undefined_not_zero(run, data, capsys):
    r = evaluate(run / "checkpoints" / "latest.pt", data, n_samples=1, num=2, metrics="l1")
    assert r["diversity_l1"] is None
    from bicyclegan.engine.evaluate import format_table
    assert "no pair to compare" in format_table(r)


def test_sample_with_no_random_z(run, data, tmp_path):
    out = sample(run / "checkpoints" / "latest.pt", data, out=tmp_path / "s", n_samples=0, num=1, progress=False)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names and not [n for n in names if "random" in n]


def test_export_takes_a_run_folder_and_refuses_an_opset_it_cannot_write(run, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    r = export_generator(run, tmp_path / "g.pt2")
    assert r["path"] == str(tmp_path / "g.pt2")
    from bicyclegan.engine.errors import ExportError
    with pytest.raises(ExportError, match="could not write opset 5 .*the file would have been opset 18"):
        export_generator(run, tmp_path / "g.onnx", opset=5, verify=False)
    assert not (tmp_path / "g.onnx").exists() and not list(tmp_path.glob(".g.onnx*"))


def test_counts_in_a_log_are_lines_not_carriage_returns():
    import io

    from bicyclegan.engine.io import count_line, end_count_line

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    log, term = io.StringIO(), Terminal()
    for i in range(1, 21):
        count_line("sampled", i, 20, log)
        count_line("sampled", i, 20, term)
    end_count_line(log)
    end_count_line(term)
    assert log.getvalue() == "".join(f"sampled {i}/20\n" for i in range(2, 21, 2))
    assert term.getvalue() == "".join(f"\rsampled {i}/20" for i in range(1, 21)) + "\n"


def test_counts_that_grow_by_a_batch_still_say_each_tenth_in_a_log():
    # evaluate counts its inputs a batch (16) at a time: a count that passed a tenth without landing on a
    # multiple of it wrote nothing, so a log of 5,000 inputs got 2,000, 4,000 and 5,000 alone.
    import io

    from bicyclegan.engine.io import count_line
    log = io.StringIO()
    for done in range(16, 101, 16):
        count_line("evaluated", done, 100, log, step=16)
    count_line("evaluated", 100, 100, log, step=4)
    assert log.getvalue().split("\n") == [f"evaluated {n}/100" for n in (16, 32, 48, 64, 80, 96, 100)] + [""]


def test_refs_with_a_random_path_and_a_file_as_dataroot_are_named(run, data, tmp_path):
    ckpt = run / "checkpoints" / "latest.pt"
    with pytest.raises(ConfigError, match=r"refs=\[0, 2\] picks reference images for path=encoded"):
        interpolate(ckpt, data, out=tmp_path / "i", path="random", refs=[0, 2], mp4=False, progress=False)
    one = next((data / "test").glob("*.png"))
    from bicyclegan.pipelines import DatasetError
    with pytest.raises(DatasetError, match=f"--dataroot {one} is a file; give the dataset's folder"):
        sample(ckpt, one, out=tmp_path / "s", progress=False)


# -- training runs (from an audit of a researcher's runs) ------------------------------------------------------
def test_resuming_removes_grids_of_the_discarded_steps_and_refuses_a_lower_max_steps(tmp_path, data):
    out = tmp_path / "r"
    Trainer(tiny_cfg(out, data, max_steps=4, save_every=2, sample_every=1), progress=False).train()
    ckpt = out / "checkpoints" / "latest.pt"
    import shutil
    shutil.copy(ckpt, tmp_path / "at4.pt")
    Trainer(tiny_cfg(out, data, max_steps=6, save_every=100, sample_every=1), resume=True, progress=False).train()
    shutil.copy(tmp_path / "at4.pt", ckpt)  # as if killed at step 6 before saving it
    with pytest.raises(ConfigError, match=r"max_steps=3 is below the step the checkpoint reached \(4\): nothing"):
        Trainer(tiny_cfg(out, data, max_steps=3), resume=True, progress=False)
    grids = sorted(p.name for p in (out / "samples").glob("step_*.png"))
    assert grids == [f"step_{s:07d}.png" for s in range(1, 7)]  # refused: the folder as it was
    Trainer(tiny_cfg(out, data, max_steps=4), resume=True, progress=False)
    grids = sorted(p.name for p in (out / "samples").glob("step_*.png"))
    assert grids == [f"step_{s:07d}.png" for s in range(1, 5)]  # 5 and 6 were the discarded steps'


def test_a_refused_resume_leaves_the_run_folder_as_it_was(tmp_path, data):
    # What a resume drops past its checkpoint was dropped before the checks of the steps the checkpoint
    # leaves: a mistyped --max_steps with --epoch 1 replaced the run's latest.pt (step 6) by epoch 1's
    # (step 4) and cut the log there, and then refused to train.
    out = tmp_path / "r"  # 16 samples in batches of 4: epoch_1.pt at step 4
    Trainer(tiny_cfg(out, data, max_steps=6, save_every=100, sample_every=1, save_epoch_freq=1), progress=False).train()
    files = [out / "checkpoints" / "latest.pt", out / "log.jsonl", *(out / "samples").glob("step_*.png")]
    before = {f: f.read_bytes() for f in files}
    assert read_checkpoint(out / "checkpoints" / "latest.pt")["step"] == 6 and len(files) == 2 + 6
    with pytest.raises(ConfigError, match=r"max_steps=3 is below the step the checkpoint reached \(4\): nothing"):
        Trainer(tiny_cfg(out, data, max_steps=3), resume=True, epoch=1, progress=False)
    assert {f: f.read_bytes() for f in files if f.exists()} == before


def test_a_resume_with_a_lower_max_steps_is_refused_before_the_data_is_read(tmp_path, run, data, monkeypatch):
    """A max_steps below the checkpoint's step was refused by the Trainer only once its loader had listed and checked
    every training file (minutes on a large dataset), where the dry run refused it at once: both now refuse it from
    the checkpoint's header, before any loader is made, with the same line."""
    import shutil

    from bicyclegan.engine import trainer as trainer_module
    out = tmp_path / "r"
    shutil.copytree(run, out)  # (step 2)

    def no_loader(*a, **k):
        raise AssertionError("a loader was made")
    monkeypatch.setattr(trainer_module, "build_loader", no_loader)
    said = r"^max_steps=1 is below the step the checkpoint reached \(2\): nothing to train; give a larger --max_steps$"
    with pytest.raises(ConfigError, match=said):
        Trainer(tiny_cfg(out, data, max_steps=1), resume=True, progress=False)
    with pytest.raises(ConfigError, match=said):
        check_start(tiny_cfg(out, data, max_steps=1), resume=True)


def test_a_resume_with_a_schedule_shorter_than_the_steps_trained_names_the_schedule(tmp_path, data):
    out = tmp_path / "r"  # 16 samples in batches of 4: 4 iterations an epoch, 2 epochs
    Trainer(tiny_cfg(out, data, niter=1, niter_decay=1, save_every=100, sample_every=100), progress=False).train()
    # 1 + 0 epochs are 4 iterations, and the checkpoint is at 8; no max_steps was given to name.
    with pytest.raises(ConfigError, match=r"^niter 1 \+ niter_decay 0 epochs are 4 iterations of this data, below the "
                       r"step the checkpoint reached \(8\): nothing to train; give a longer schedule \(--niter_decay"):
        Trainer(tiny_cfg(out, data, niter=1, niter_decay=0), resume=True, progress=False)


def test_none_given_for_an_optional_option_replaces_the_runs_or_the_presets_value(tmp_path, data, capsys):
    out = tmp_path / "r"  # a trial of 2 iterations, then the whole schedule: 2 epochs of 4 iterations
    Trainer(tiny_cfg(out, data, max_steps=2, save_every=2, sample_every=100), progress=False).train()
    assert main(["train", "--out", str(out), "--resume", "--max_steps", "none", "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["max_steps"] is None
    assert [json.loads(ln)["step"] for ln in (out / "log.jsonl").read_text().splitlines()] == list(range(1, 9))
    capsys.readouterr()
    # The demo preset's num_workers=1 gives way to none (per device and cores), as the help says.
    assert main(["train", "--out", str(tmp_path / "d"), "--num_workers", "none", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["num_workers"] is None
    assert main(["train", "--out", str(tmp_path / "d"), "--num_workers", "none", "--num_workers", "2",
                 "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["num_workers"] == 2


def test_tensorboard_of_a_run_resumed_from_an_epoch_hides_the_steps_logged_again(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    out = tmp_path / "r"  # 4 steps an epoch
    Trainer(tiny_cfg(out, data, max_steps=6, save_epoch_freq=1), progress=False, tensorboard=True).train()
    Trainer(tiny_cfg(out, data, max_steps=6, save_epoch_freq=1), epoch=1, progress=False, tensorboard=True).train()
    events = [e for f in sorted((out / "tensorboard").glob("events.*")) for e in EventFileLoader(str(f)).Load()]
    starts = [e.step for e in events if e.HasField("session_log") and e.session_log.status == 1]
    assert starts == [5]  # --epoch alone resumes too: steps 5 and 6 are logged again, the first hidden


def test_image_sizes_the_unet_cannot_take_are_refused_before_the_run_folder(tmp_path):
    # 40 x 40 halves under preprocess none: the tiny U-Net (5 levels) needs multiples of 32.
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "train").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)).save(tmp_path / "d" / "train" / f"{i}.png")
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match=r"preprocess=none makes the training images 40x40 \(W x H; e\.g\. "
                                          r".*0\.png\), and this U-Net \(num_downs 5\) takes sides that are "
                                          r"multiples of 32"):
        Trainer(tiny_cfg(out, tmp_path / "d"), progress=False)
    assert not (out / "config.json").exists() and not (out / "log.jsonl").exists()


def test_held_out_images_the_unet_cannot_take_are_refused_before_the_run_folder(tmp_path, capsys):
    # 32 px training halves and 48 px val/ halves under preprocess none: the training images passed the checks,
    # and the first sample grid was G's ValueError, a traceback (exit 1) after the steps up to it, none saved.
    rng = np.random.default_rng(0)
    for split, size, n in (("train", 32, 4), ("val", 48, 2)):
        (tmp_path / "d" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)).save(
                tmp_path / "d" / split / f"{i}.png")
    out = tmp_path / "r"
    want = (r"preprocess=none makes the sample grids' inputs from .*val 48x48 \(W x H; e\.g\. .*0\.png\), and this "
            r"U-Net \(num_downs 5\) takes sides that are multiples of 32")
    tiny = [a for k, v in TINY.items() for a in (f"--{k}", str(v))]
    assert main(["train", "--dataroot", str(tmp_path / "d"), "--out", str(out), "--dry-run", *tiny,
                 "--preprocess", "none", "--backend", "torch", "--num_workers", "0", "--batch_size", "2"]) == 2
    assert re.search(want, capsys.readouterr().err)
    with pytest.raises(ConfigError, match=want):
        Trainer(tiny_cfg(out, tmp_path / "d", sample_every=1), progress=False)
    assert not out.exists()


def test_images_of_one_size_the_unet_cannot_take_are_refused_with_the_options_that_take_them(tmp_path):
    # 48 x 40 halves (W x H) under preprocess none: the message said "other load/crop sizes", while --crop_size
    # alone does not change a fixed-depth U-Net; a U-Net derived from the images' own size takes them (40 and 48
    # halve 3 times evenly: 5 x 6 at the bottom).
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "train").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 96, 3), dtype=np.uint8)).save(tmp_path / "d" / "train" / f"{i}.png")
    with pytest.raises(ConfigError, match=r"; or, at the images' own size, --netG unet --crop_size 40 --crop_width 48 "
                                          r"\(a U-Net of 3 levels\)$"):
        Trainer(tiny_cfg(tmp_path / "r", tmp_path / "d"), progress=False)
    Trainer(tiny_cfg(tmp_path / "r2", tmp_path / "d", netG="unet", crop_size=40, crop_width=48, max_steps=1),
            progress=False).train()
    assert (tmp_path / "r2" / "checkpoints" / "latest.pt").is_file()


def test_a_non_square_crop_is_cut_from_a_resize_of_its_own_aspect(tmp_path):
    from bicyclegan.engine.config import DataConfig
    from bicyclegan.engine.runtime import build_loader, load_hw
    wide = ModelConfig(netG="unet", crop_size=32, crop_width=64, ngf=4, nef=4, ndf=4, netE="resnet_128",
                       netD="basic_128_multi", netD2="basic_128_multi")
    assert load_hw(DataConfig(load_size=72), wide.size) == (36, 72)
    assert load_hw(DataConfig(load_size=72), (64, 64)) == 72  # square: as the reference
    assert load_hw(DataConfig(load_size=72, preprocess="scale_width"), wide.size) == 72
    # A 64 x 32 (W x H) half whose rows are numbered: a 64 x 32 crop of a 64 x 32 resize keeps them all.
    rows = np.repeat(np.arange(32, dtype=np.uint8)[:, None] * 8, 128, 1)
    (tmp_path / "d" / "train").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.stack([rows] * 3, -1)).save(tmp_path / "d" / "train" / f"{i}.png")
    loader = build_loader(wide, DataConfig(load_size=64, no_flip=True), tmp_path / "d", "train", device="cpu",
                          batch_size=2)
    A = next(iter(loader))["A"]
    assert A.shape == (2, 3, 32, 64)
    top, bottom = float(A[0, 0, 0].mean()), float(A[0, 0, -1].mean())
    assert top < -0.95 and bottom > 0.9  # the first and the last rows, not a stretched middle band


def test_resuming_on_the_other_backend_says_the_resize_differs(tmp_path, data, capsys):
    pytest.importorskip("nvidia.dali")
    out = tmp_path / "r"
    Trainer(tiny_cfg(out, data, max_steps=2, save_every=2), progress=False).train()
    capsys.readouterr()
    Trainer(tiny_cfg(out, data, max_steps=4, backend="dali"), resume=True, progress=False)
    assert "trained with the torch loader and resumes with the dali one: from here its resized images differ" in \
        capsys.readouterr().err


def test_inference_commands_can_leave_out_a_bad_file(run, tmp_path, capsys):
    """One truncated file in the split stopped sample/evaluate/interpolate, with no way around it."""
    rng = np.random.default_rng(1)
    (tmp_path / "d" / "test").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(tmp_path / "d" / "test" / f"{i}.png")
    good = (tmp_path / "d" / "test" / "2.png").read_bytes()
    (tmp_path / "d" / "test" / "2.png").write_bytes(good[: len(good) // 2])
    common = ["evaluate", str(run), "--dataroot", str(tmp_path / "d"), "--n_samples", "2", "--metrics", "l1",
              "--json", str(tmp_path / "e.json")]
    assert main(common) == 2
    assert "(--skip_bad, or skip_bad=True in Python, leaves them out)" in capsys.readouterr().err
    assert main([*common, "--skip_bad"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["n_inputs"] == 2
    out = sample(run / "checkpoints" / "latest.pt", tmp_path / "d", out=tmp_path / "s", n_samples=1,
                 progress=False, skip_bad=True)
    assert len(list((out / "images").glob("*_input.png"))) == 2


def test_a_model_trained_with_skip_bad_is_evaluated_strictly_with_no_skip_bad(data, tmp_path, capsys):
    # --skip_bad's default follows the model's run, and there was no way to turn it off: a run trained
    # with skip_bad could only be evaluated leaving bad files out.
    out = tmp_path / "r"
    Trainer(tiny_cfg(out, data, max_steps=2, save_every=2, sample_every=100, skip_bad=True), progress=False).train()
    (tmp_path / "d" / "test").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(tmp_path / "d" / "test" / f"{i}.png")
    (tmp_path / "d" / "test" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    common = ["evaluate", str(out), "--dataroot", str(tmp_path / "d"), "--n_samples", "2", "--metrics", "l1",
              "--json", str(tmp_path / "e.json")]
    capsys.readouterr()
    assert main(common) == 0  # as the run did: left out
    assert json.loads((tmp_path / "e.json").read_text())["n_inputs"] == 2
    assert main([*common, "--no-skip_bad"]) == 2
    assert "1 bad file(s) in" in capsys.readouterr().err


def test_a_checkpoint_of_another_number_of_processes_is_named(tmp_path, data, monkeypatch):
    out = tmp_path / "r"
    Trainer(tiny_cfg(out, data, max_steps=2, save_every=2), progress=False).train()
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert state["world"] == 1
    import bicyclegan.engine.trainer as trainer_module
    from bicyclegan.engine import CheckpointError
    from bicyclegan.engine.runtime import Dist
    two = Dist(rank=0, world=2, device=torch.device("cpu"))  # rank 0 of 2, as far as the check goes
    monkeypatch.setattr(trainer_module, "init_distributed", lambda device: two)
    with pytest.raises(CheckpointError, match=r"written by a run of 1 process\(es\), this one has 2: .*"
                                              r"\(one process: bicyclegan train, without torchrun\); with another "
                                              r"number, start a new run from its weights: --init_from "):
        Trainer(tiny_cfg(out, data, max_steps=4), resume=True, progress=False)



# -- evaluation, interpolation and serve (from an audit of the paper's protocol and deployment) -------------------
def test_lpips_with_one_output_per_input_is_undefined_and_small_images_are_named(run, data, monkeypatch):
    import importlib
    evaluate_module = importlib.import_module("bicyclegan.engine.evaluate")  # the module, not the function

    class Distance:  # LPIPS stand-in: the pairs, not the network, are what this test is about
        def features(self, x):
            return [x]

        def distance(self, a, b):
            return (a[0] - b[0]).abs().mean(dim=(1, 2, 3))
    monkeypatch.setattr(evaluate_module, "load_lpips", lambda *a, **k: Distance())
    monkeypatch.setattr(evaluate_module, "LPIPS_MIN_SIDE", 8)
    r = evaluate(run / "checkpoints" / "latest.pt", data, n_samples=1, num=2, metrics="lpips")
    assert r["diversity_lpips"] is None and r["lpips"]["n_pairs"] == 0  # was: torch.cat of nothing
    monkeypatch.setattr(evaluate_module, "LPIPS_MIN_SIDE", 33)
    with pytest.raises(ConfigError, match=r"LPIPS's AlexNet needs images of at least 33 px a side; these are "
                                          r"32x32"):
        evaluate(run / "checkpoints" / "latest.pt", data, n_samples=2, num=2, metrics="lpips")


@pytest.mark.parametrize("call,kw,why", [
    (sample, {"num": 0}, "num=0 must be a positive integer"),  # was "no inputs found"
    (sample, {"num": "2"}, "num='2' must be a positive integer"),
    (sample, {"n_samples": -1}, "n_samples=-1 must be an integer >= 0"),
    (evaluate, {"num": -1}, "num=-1 must be a positive integer"),  # was "no images to evaluate"
    (evaluate, {"n_samples": 0}, "n_samples=0 must be a positive integer"),
    (sample, {"num": True}, "num=True must be a positive integer"),  # a bool is no count
    (evaluate, {"n_samples": True}, "n_samples=True must be a positive integer"),
    # the command's --batch_size is at least 1; from Python 0 was a ZeroDivisionError, -1 "no images to
    # evaluate" and "4" a TypeError, after the model and the data were loaded
    (evaluate, {"batch_size": 0}, "batch_size=0 must be a positive integer"),
    (evaluate, {"batch_size": -1}, "batch_size=-1 must be a positive integer"),
    (evaluate, {"batch_size": "4"}, "batch_size='4' must be a positive integer"),
    # bool("no") was True: the files that fail the checks skipped, where the caller asked for them refused
    (evaluate, {"skip_bad": "no"}, "skip_bad='no' must be true or false"),
    (sample, {"skip_bad": "no"}, "skip_bad='no' must be true or false"),
])
def test_sample_and_evaluate_refuse_counts_the_command_refuses(run, data, tmp_path, call, kw, why):
    extra = {"out": tmp_path / "s"} if call is sample else {}
    with pytest.raises(ConfigError, match=re.escape(why)):
        call(run / "checkpoints" / "latest.pt", data, **extra, **kw)


@pytest.mark.parametrize("given", [{"a": 1}, None, 3])
def test_a_model_that_is_neither_a_model_nor_a_path_is_refused_naming_the_argument(run, tmp_path, given):
    """A dict, None or a config was pathlib's "expected str, bytes or os.PathLike object, not dict" (compare's an
    AttributeError on .cfg), naming no argument; export_generator named it already."""
    from bicyclegan.engine import compare, evaluate_checkpoints
    kind = type(given).__name__
    model = f"model must be a BicycleGAN or a checkpoint's path \\(a file or a run folder\\), got {kind}$"
    path = f"a checkpoint is given by its path \\(a file or a run folder\\), got {kind}$"
    for call, want in ((lambda: sample(given, out=tmp_path / "s"), "^" + model),
                       (lambda: evaluate(given), "^" + model),
                       (lambda: interpolate(given, out=tmp_path / "i"), "^" + model),
                       (lambda: compare([run, given], out=tmp_path / "c", log=None), r"^models\[1\] " + model[6:]),
                       (lambda: load_checkpoint(given), "^" + path),
                       (lambda: read_checkpoint(given), "^" + path),
                       (lambda: evaluate_checkpoints(given, log=None),
                        rf"^run must be a run folder's path \(or of a file in its checkpoints/\), got {kind}$")):
        with pytest.raises(TypeError, match=want):
            call()
    assert not list(tmp_path.iterdir())


def test_interpolate_refused_for_its_refs_makes_no_folder(run, data, tmp_path):
    with pytest.raises(ConfigError, match=r"refs=\[0, 9\]: .* has 4 inputs"):
        interpolate(run / "checkpoints" / "latest.pt", data, out=tmp_path / "i", path="encoded", refs=[0, 9],
                    num=1, mp4=False, progress=False)
    assert not (tmp_path / "i").exists()


def test_serve_answers_an_integer_beyond_float_range_with_400(run):
    pytest.importorskip("fastapi")
    from bicyclegan.engine.serve import Explorer, RequestError
    explorer = Explorer(run / "checkpoints" / "latest.pt", num=1, device="cpu")
    with pytest.raises(RequestError, match=r"z\[0\] holds an integer of 401 digits, beyond float32.s range") as info:
        explorer._code([10 ** 400] + [0] * (explorer.nz - 1), "z[0]")
    assert info.value.status == 400


def test_inputs_of_one_name_keep_their_own_outputs_and_a_smaller_rerun_leaves_no_stale_files(run, tmp_path):
    # Nested folders (a/1.png, b/1.png) and one name in two formats wrote their outputs over each
    # other; a '#' in a file name cut the gallery's URL short; re-sampling fewer inputs into the
    # same folder left the first run's images beside the new gallery.
    folder, rng = tmp_path / "in", np.random.default_rng(1)
    pics = {}
    for rel in ("1.png", "1.jpg", "a/1.png", "b/1.jpg", "x#1.png"):  # 1.jpg and 1.png were "ambiguous"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        pics[rel] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pics[rel]).save(folder / rel, quality=100)
    out = sample(run / "checkpoints" / "latest.pt", folder, out=tmp_path / "s", n_samples=1, progress=False)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(f"{s}_{c}.png" for s in ("1", "1-2", "1-3", "1-4", "x#1") for c in ("input", "random_z1"))
    inputs = {np.asarray(Image.open(out / "images" / f"{s}_input.png")).tobytes() for s in ("1", "1-2", "1-3", "1-4")}
    assert len(inputs) == 4  # four different pictures, none overwritten
    page = (out / "index.html").read_text()
    assert "src='images/x%231_input.png'" in page and "#1_input" not in page
    sample(run / "checkpoints" / "latest.pt", folder, out=out, n_samples=1, num=1, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["1_input.png", "1_random_z1.png"]
    out = interpolate(run / "checkpoints" / "latest.pt", folder, out=tmp_path / "i", num=2, frames=2, mp4=False,
                      progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{s}{c}" for s in ("1", "1-2") for c in ("_input.png", "_strip.png", ".gif"))
    interpolate(run / "checkpoints" / "latest.pt", folder, out=out, num=1, frames=2, mp4=False, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["1.gif", "1_input.png", "1_strip.png"]


def test_output_names_are_apart_as_case_blind_file_systems_tell_them_apart():
    # Cat.png and cat.jpg wrote Cat_input.png and cat_input.png: one file on macOS's and Windows' file systems, the
    # second input's images over the first's; so did names alike but for Unicode's form (é composed or not)
    from bicyclegan.engine.images import OutputNames
    names = OutputNames()
    assert [names(p) for p in ("Cat.png", "cat.jpg", "CAT.bmp", "caf\u00e9.png", "cafe\u0301.png", "dog.png")] == [
        "Cat", "cat-2", "CAT-3", "caf\u00e9", "cafe\u0301-2", "dog"]


def test_an_input_whose_name_is_not_utf8_gets_its_gallery(run, tmp_path):
    # b'caf\xe9.png' (Latin-1, as older systems and archives name files): Python reads it as 'caf\udce9.png',
    # which neither quote() nor the page's UTF-8 could encode, so sample wrote its images and no index.html
    # (a traceback). The picture's address keeps the name's own bytes; its label shows a replacement mark.
    folder = tmp_path / "in"
    folder.mkdir()
    pic = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pic).save(os.path.join(os.fsencode(folder), b"caf\xe9.png"), format="PNG")
    ckpt = run / "checkpoints" / "latest.pt"
    for out in (sample(ckpt, folder, out=tmp_path / "s", n_samples=1, progress=False),
                interpolate(ckpt, folder, out=tmp_path / "i", num=2, segments=1, frames=1, mp4=False,
                            progress=False)):
        page = (out / "index.html").read_bytes().decode("utf-8")  # (valid UTF-8 throughout)
        assert "<th>caf\ufffd.png</th>" in page
        src = re.search(r"<img src='(images/caf[^']*_input\.png)'", page).group(1)
        assert src == "images/caf%E9_input.png"
        got = np.asarray(Image.open(os.path.join(os.fsencode(out), urllib.parse.unquote_to_bytes(src))))
        k = got.shape[0] // pic.shape[0]  # (interpolate shows it enlarged, each pixel k x k)
        assert np.array_equal(got[::k, ::k], pic)  # the address finds the input's own picture


def test_galleries_and_the_page_name_each_input_by_its_file(run, tmp_path):
    # A gallery row was titled by its output files' stem: "1-2" for the second input of stem 1 (1.png
    # after 1.jpg), while the file 1-2.png was the row "1-2-2", and a/1.png was "1-3". Each row now
    # names its input's file below the folder read, and shows that file.
    folder, rng = tmp_path / "in", np.random.default_rng(3)
    pics = {}
    for rel in ("1.jpg", "1.png", "1-2.png", "a/1.png"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        pics[rel] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pics[rel]).save(folder / rel, quality=100)
    ckpt = run / "checkpoints" / "latest.pt"

    def rows(page):
        return re.findall(r"<tr><th>([^<]*)</th><td><img src='images/([^']*)'", page)
    out = sample(ckpt, folder, out=tmp_path / "s", n_samples=1, progress=False)
    shown = rows((out / "index.html").read_text())
    assert sorted(label for label, _ in shown) == sorted(pics)
    for label, src in shown:
        got = np.asarray(Image.open(out / "images" / src).convert("RGB"), dtype=int)
        want = np.asarray(Image.open(folder / label).convert("RGB"), dtype=int)  # (the JPEG as decoded)
        assert np.abs(got - want).max() <= 1, label
    out = interpolate(ckpt, folder, out=tmp_path / "i", num=4, segments=1, frames=1, mp4=False, progress=False)
    assert sorted(label for label, _ in rows((out / "index.html").read_text())) == sorted(pics)
    pytest.importorskip("fastapi")
    from bicyclegan.engine.serve import Explorer
    explorer = Explorer(ckpt, folder, num=4, device="cpu")
    assert sorted(item["name"] for item in explorer.info()["items"]) == sorted(pics)


def test_a_results_folder_loses_none_of_the_files_it_held_before(run, tmp_path):
    # Every PNG, GIF and MP4 in <out>/images that the call did not write was deleted: the user's own
    # pictures there (and, before such an --out was refused, the inputs themselves: --dataroot
    # work/images --out work).
    ckpt, rng = run / "checkpoints" / "latest.pt", np.random.default_rng(2)
    (tmp_path / "work" / "images").mkdir(parents=True)
    (tmp_path / "in").mkdir()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "in" / "a.png")
    mine = {}
    for name in ("a.png", "b.png", "c.gif"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "work" / "images" / name)
        mine[name] = (tmp_path / "work" / "images" / name).read_bytes()
    for run_it in (lambda: sample(ckpt, tmp_path / "in", out=tmp_path / "work", n_samples=1, progress=False),
                   lambda: interpolate(ckpt, tmp_path / "in", out=tmp_path / "work", num=1, frames=1, segments=1,
                                       mp4=False, progress=False)):
        run_it()
        for name, data in mine.items():
            assert (tmp_path / "work" / "images" / name).read_bytes() == data, name
    # what sample wrote and interpolate did not (a_random_z1.png) is still pruned as an earlier call's output
    assert not (tmp_path / "work" / "images" / "a_random_z1.png").exists()
    assert (tmp_path / "work" / "images" / "a_strip.png").is_file()


def test_results_are_never_written_into_another_split_of_the_dataset(run, data, tmp_path):
    # sample of val/ (or test/) with --out in the dataset's train/ put grid.png and images/ among the training pairs:
    # the next training read grid.png as a pair (under preprocess none refused it, of another size).
    root = tmp_path / "d"
    shutil.copytree(data, root)
    shutil.copytree(data / "test", root / "val")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for run_it in (sample, lambda *a, **k: interpolate(*a, mp4=False, **k)):
        for out, split in ((root / "train", "train"), (root / "train" / "res", "train"), (root / "val" / "r", "val")):
            with pytest.raises(OutputError, match=f"^results folder {re.escape(str(out))} lies inside "
                                                  f"{re.escape(str((root / split).resolve()))}, a split of the "
                                                  f"dataset {re.escape(str(root))}"):
                run_it(run, root, phase="test", out=out, num=1, progress=False)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing made
    assert (sample(run, root, phase="test", out=root / "results", num=1, n_samples=1, progress=False)
            / "grid.png").is_file()  # beside the splits


def test_results_are_never_written_among_the_inputs(run, tmp_path, monkeypatch, capsys):
    # sample --dataroot . put its default ./results/... inside the folder it reads (with its subfolders):
    # the next call read the outputs as inputs and failed on grid.png; --out work with the inputs in
    # work/images wrote the outputs among them.
    ckpt = save_checkpoint(load_checkpoint(run / "checkpoints" / "latest.pt"), tmp_path / "m.pt")  # outside a run
    photos = tmp_path / "photos"
    (photos / "images").mkdir(parents=True)
    for p in (photos / "a.png", photos / "images" / "b.png"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(p)
    for run_it in (sample, lambda *a, **k: interpolate(*a, mp4=False, **k)):
        for folder, out in ((photos, photos / "results" / "x"), (photos / "images", photos), (photos, photos)):
            with pytest.raises(OutputError, match=f"^results folder {re.escape(str(out))} would put its images/ "
                                                  f"among the inputs \\({re.escape(str(folder))}, read with its "
                                                  f"subfolders\\); choose --out outside it$"):
                run_it(ckpt, folder, out=out, num=1, progress=False)
    assert sorted(p.name for p in photos.rglob("*")) == ["a.png", "b.png", "images"]  # nothing made
    (tmp_path / "o").mkdir()  # a file named images where the images/ folder goes: "File exists" said of an image
    (tmp_path / "o" / "images").write_text("mine")
    for run_it in (sample, lambda *a, **k: interpolate(*a, mp4=False, **k)):
        with pytest.raises(OutputError, match=f"^results folder {re.escape(str(tmp_path / 'o'))} holds a file, "
                                              f"{re.escape(str(tmp_path / 'o' / 'images'))}, where the results' "
                                              f"images/ folder goes; move it away or choose another --out$"):
            run_it(ckpt, photos, out=tmp_path / "o", num=1, progress=False)
    assert os.listdir(tmp_path / "o") == ["images"] and (tmp_path / "o" / "images").read_text() == "mine"
    monkeypatch.chdir(photos)
    assert main(["sample", str(ckpt), "--dataroot", ".", "--num", "1"]) == 2
    assert "would put its images/ among the inputs" in capsys.readouterr().err
    out = sample(ckpt, photos / "images", out=photos / "results", num=1, n_samples=1, progress=False)  # beside them
    assert (out / "images" / "b_input.png").is_file()
    # given as ".", the folder is still called by its name in the gallery's title (it was "bicycle on ")
    out = sample(ckpt, ".", out=tmp_path / "elsewhere", num=1, n_samples=1, progress=False)
    model = load_checkpoint(ckpt)  # (and the checkpoint read, with its step)
    assert (f"<title>{model.cfg.variant} on photos · {ckpt.name}, step {model.source['step']}</title>"
            in (out / "index.html").read_text())


def test_full_resolution_training_at_batch_1_on_images_of_several_sizes(tmp_path):
    # preprocess none keeps each image's size: batch 1 trains on them, but the sample grid's loader
    # asked for batches of 4 and refused the mixed sizes.
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "train").mkdir(parents=True)
    for i, side in enumerate((32, 64, 32, 64, 32)):
        Image.fromarray(rng.integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)).save(
            tmp_path / "d" / "train" / f"{i}.png")
    out = tmp_path / "r"
    trainer = Trainer(tiny_cfg(out, tmp_path / "d", batch_size=1, variant="cvae", max_steps=3, sample_every=3),
                      progress=False)
    A, B, _ = trainer._fixed_samples()
    assert A.shape == B.shape == (3, 3, 32, 32)  # the inputs of the first one's size: 0, 2 and 4
    trainer.train()
    assert Image.open(out / "samples" / "step_0000003.png").height > 3 * 32


def test_inference_on_the_first_inputs_checks_only_them(run, tmp_path, monkeypatch):
    # sample --num 1 checked the whole split first (9 s for 20,000 tiny files) and one bad file
    # anywhere in it stopped the call.
    from bicyclegan.pipelines import files
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "test").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(tmp_path / "d" / "test" / f"{i}.png")
    (tmp_path / "d" / "test" / "zzz.png").write_bytes(b"")
    checked = []
    real = files.inspect_file
    monkeypatch.setattr(files, "inspect_file", lambda path, *a, **k: checked.append(path) or real(path, *a, **k))
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", "off")
    ckpt = run / "checkpoints" / "latest.pt"
    out = sample(ckpt, tmp_path / "d", out=tmp_path / "s", num=2, n_samples=1, progress=False)
    assert sorted(p.name for p in (out / "images").glob("*_input.png")) == ["0_input.png", "1_input.png"]
    assert sorted(map(str, checked)) == [str(tmp_path / "d" / "test" / f"{i}.png") for i in range(2)]
    assert evaluate(ckpt, tmp_path / "d", num=3, n_samples=2, metrics="l1")["n_inputs"] == 3
    interpolate(ckpt, tmp_path / "d", out=tmp_path / "i", num=1, path="encoded", refs=[0, 2], frames=2,
                mp4=False, progress=False)
    with pytest.raises(DatasetError, match="zzz.png: zero-byte file"):  # all five
        sample(ckpt, tmp_path / "d", out=tmp_path / "s", num=5, n_samples=1, progress=False)


def test_kernels_or_a_loader_this_machine_cannot_run_are_refused_before_the_run_folder(tmp_path, data, monkeypatch):
    # Both failed at the first step or batch, after config.json was written, and the folder then
    # refused the rerun ("stopped before its first checkpoint").
    from bicyclegan.engine import runtime
    from bicyclegan.kernels import _impl
    from bicyclegan.pipelines import loader as loader_module
    monkeypatch.setattr(_impl, "interpreting", lambda: False)
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match=r"impl=triton runs the Triton kernels on a CUDA device \(or on the CPU "
                                          r"under TRITON_INTERPRET=1, slowly\), and this run trains on cpu; "
                                          r"use --impl auto or ref"):
        Trainer(tiny_cfg(out, data, impl="triton"), progress=False)
    monkeypatch.setattr(runtime, "dali_available", lambda: False)
    with pytest.raises(ConfigError, match=r"backend=dali needs NVIDIA DALI: pip install 'bicyclegan\[dali\]'"):
        Trainer(tiny_cfg(out, data, backend="dali"), progress=False)
    assert not out.exists()
    # A model trained with DALI is read for inference where there is none with the torch loader.
    assert inference_data(tiny_cfg(out, data, backend="dali"))[3].backend == "auto"
    monkeypatch.setattr(runtime, "dali_available", lambda: True)
    assert inference_data(tiny_cfg(out, data, backend="dali"))[3].backend == "dali"
    # No nvidia package at all: find_spec("nvidia.dali") raised instead of answering.
    def no_nvidia(name, *a):
        raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
    monkeypatch.setattr(loader_module.importlib.util, "find_spec", no_nvidia)
    assert loader_module.dali_available() is False


def test_help_shows_the_defaults_that_apply(capsys):
    # train --help showed the reference's defaults only, while a plain `train` runs the demo preset
    # (batch 112, not 2); import-official's group title and its options said two different things.
    def help_of(*cmd):
        with pytest.raises(SystemExit):
            main([*cmd, "--help"])
        return " ".join(capsys.readouterr().out.split())
    from bicyclegan.engine.presets import make_config
    demo, ref = make_config("demo"), make_config("reference")
    text = help_of("train")
    for name, part in (("batch_size", ""), ("lr", ""), ("ngf", "model"), ("crop_size", "model"),
                       ("load_size", "data"), ("ema", "")):
        d, r = (getattr(getattr(c, part) if part else c, name) for c in (demo, ref))
        assert d != r and f"(default: {r}; demo preset: {d})" in text, name
    assert re.search(r"--nz INT [^(]*\(default: 8\)", text)  # fields the demo leaves alone say nothing more
    text = help_of("import-official")
    assert "(default: the crop size)" in text and "no random horizontal flips (default: True)" in text


def test_the_command_says_its_version(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"bicyclegan {version('bicyclegan')}"


def test_every_rank_stops_on_non_finite_weights_before_the_checkpoint_gather(tmp_path, data, monkeypatch):
    # Only rank 0 refused to write: the others went on into the next step's all-reduce and waited.
    from bicyclegan.engine import DivergenceError
    from bicyclegan.engine import trainer as trainer_module
    t = Trainer(tiny_cfg(tmp_path / "r", data, max_steps=2), progress=False)
    t.world, t.main = 2, False  # any rank but 0, of two
    monkeypatch.setattr(trainer_module.dist, "all_gather_object",
                        lambda *a: pytest.fail("gathered with non-finite weights"))
    with torch.no_grad():
        next(t.model.G.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(DivergenceError, match=r"non-finite weights in G \(1 values\)"):
        t.save()


@pytest.mark.gpu
def test_cuda_graph_with_images_of_several_sizes_is_refused_by_name(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "train").mkdir(parents=True)
    for i, side in enumerate((32, 64, 32, 64)):
        Image.fromarray(rng.integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)).save(
            tmp_path / "d" / "train" / f"{i}.png")
    with pytest.raises(ConfigError, match=r"cuda_graph=True replays one captured shape, and preprocess=none "
                                          r"keeps the images' 2 sizes"):
        Trainer(tiny_cfg(tmp_path / "r", tmp_path / "d", batch_size=1, variant="cvae", cuda_graph=True,
                         device="cuda"), progress=False)


def test_first_only_lists_the_first_inputs_within_the_runs_own_limit():
    """What inference commands and the training grids read: only the first num inputs are listed (so
    only they are checked), never more than the run's own max_dataset_size, and every file under
    skip_bad (so that num good ones are found)."""
    from bicyclegan.engine import DataConfig
    from bicyclegan.engine.runtime import first_only
    assert first_only(DataConfig(), 64).max_dataset_size == 64
    assert first_only(DataConfig(max_dataset_size=10), 64).max_dataset_size == 10  # a subset: not beyond it
    assert first_only(DataConfig(max_dataset_size=100), 64).max_dataset_size == 64
    assert first_only(DataConfig(skip_bad=True), 64).max_dataset_size is None
    assert first_only(DataConfig(), None).max_dataset_size is None


def test_an_inference_reads_num_inputs_whatever_the_runs_max_dataset_size(tmp_path):
    # A run trained with --max_dataset_size 48 was evaluated on 48 inputs of the test split whatever --num (the
    # paper's 100), unsaid: the training's limit is its training set's (the reference's test.py has its own).
    from bicyclegan.engine import DataConfig, TrainConfig
    from bicyclegan.engine.runtime import inference_data
    root = make_demo_dataset(tmp_path / "d", n_train=4, n_test=6, size=32)
    cfg = TrainConfig(data=DataConfig(dataroot=str(root), max_dataset_size=2))
    assert inference_data(cfg, num=5)[3].max_dataset_size == 5
    assert inference_data(cfg)[3].max_dataset_size is None  # (serve: every input)


def test_a_second_training_into_a_run_folder_in_use_is_refused_and_a_refused_start_leaves_no_folder(tmp_path, data):
    # Two trainings into one --out (the command run twice, in two shells) both trained, each writing
    # its log lines and checkpoints over the other's. The lock is the folder's, so a second resume of
    # the same run is refused as well.
    out = tmp_path / "r"
    first = Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False)
    refused = []

    def save_and_start_another(*a, **kw):  # while the first trains
        for resume in (False, True):
            with pytest.raises(CheckpointError, match=f"^{re.escape(str(out))} is in use by another training, still "
                                                      "running: wait for it to end"):
                Trainer(tiny_cfg(out, data, max_steps=4, sample_every=100), resume=resume, progress=False)
            refused.append(resume)
        return Trainer.save(first, *a, **kw)
    first.save = save_and_start_another
    first.train()  # the lock ends with the training: the run continues as usual
    assert refused[:2] == [False, True]
    Trainer(tiny_cfg(out, data, max_steps=4, sample_every=100), resume=True, progress=False).train()
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    # A start refused makes no folder (each refusal used to leave an empty --out behind); one that was there stays.
    with pytest.raises(DatasetError, match="does not exist"):
        Trainer(tiny_cfg(tmp_path / "new", tmp_path / "missing"), progress=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(DatasetError, match="does not exist"):
        Trainer(tiny_cfg(tmp_path / "mine", tmp_path / "missing"), progress=False)
    assert (tmp_path / "mine").is_dir()


def test_a_trainer_made_again_for_a_folder_takes_over_from_one_that_never_trained(tmp_path, data):
    # A notebook cell `t = Trainer(cfg)` run twice: the first Trainer, still held by t, kept the folder,
    # and the second was refused as "in use by another training, still running".
    out = tmp_path / "r"
    first = Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False)
    second = Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False)
    with pytest.raises(CheckpointError, match=f"^this Trainer gave {re.escape(str(out))} to a later Trainer made "
                                              "for the same folder before it trained: train that one$"):
        first.train()
    second.train()
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]


def test_a_forked_child_does_not_keep_the_run_folders_lock(tmp_path, data):
    # kill -9 of a training unlocks nothing, and its loader workers (forked, the lock's descriptor copied)
    # kept the folder locked until they noticed their parent gone: a --resume at once was refused as "in use
    # by another training, still running". A child's copy points elsewhere; the parent's lock holds as before.
    import fcntl
    import os
    import time
    out = tmp_path / "r"
    t = Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False)
    fd = t._lock.peek()[2][0]
    ready, told = os.pipe()
    child = os.fork()
    if child == 0:  # a loader worker, alive past its parent's end
        os.write(told, b"up")  # (past the fork's handlers)
        time.sleep(30)
        os._exit(0)
    os.close(told)
    try:
        assert os.read(ready, 2) == b"up"
        probe = os.open(out / ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # the parent's lock holds
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            t._lock.detach()  # the training killed: its descriptor closed, nothing unlocked
            os.close(fd)
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the child held a copy
        finally:
            os.close(probe)
    finally:
        os.close(ready)
        os.kill(child, 9)
        os.waitpid(child, 0)


def test_the_lock_is_a_file_in_the_run_folder_and_a_refused_start_removes_it_again(tmp_path, data):
    # A folder cannot be opened for writing, which an exclusive lock over NFS needs: the lock is on
    # RUN/.lock, which is what another host's training holds (here: a descriptor of this test's).
    import fcntl
    import os
    out = tmp_path / "r"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CheckpointError, match="is in use by another training"):
            Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False)
        assert (out / ".lock").is_file()  # the other training's: left alone
    finally:
        os.close(fd)
    # A start refused after taking the lock leaves the folder as it found it: without the file it made.
    (tmp_path / "mine").mkdir()
    with pytest.raises(DatasetError, match="does not exist"):
        Trainer(tiny_cfg(tmp_path / "mine", tmp_path / "missing"), progress=False)
    assert list((tmp_path / "mine").iterdir()) == []


def test_a_finished_training_lets_go_of_its_folder_while_its_loader_workers_live(tmp_path, data):
    # The workers are forked after the lock was taken and hold copies of its descriptor: closing the
    # trainer's own copy left the folder locked for as long as the trainer (and its workers) lived.
    out = tmp_path / "r"
    first = Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100, num_workers=2), progress=False)
    first.train()
    assert first.loader.num_workers == 2
    Trainer(tiny_cfg(out, data, max_steps=4, sample_every=100), resume=True, progress=False).train()
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_a_training_that_fails_before_its_first_step_lets_go_of_its_folder(tmp_path, data, monkeypatch):
    # config.json is written before the loop: a failure there left the folder locked for as long as the
    # trainer lived (in a notebook, as long as the traceback that holds it).
    from bicyclegan.engine import OutputError
    from bicyclegan.engine import trainer as trainer_module

    def unwritable(path, *a, **kw):
        raise OutputError(f"cannot write {path}")

    out = tmp_path / "r"
    first = Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False)
    with monkeypatch.context() as m:
        m.setattr(trainer_module, "write_json", unwritable)
        with pytest.raises(OutputError, match="config.json"):
            first.train()
    Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False).train()
    assert (out / "checkpoints" / "latest.pt").is_file()


def test_a_checkpoint_of_a_run_continued_into_a_new_folder_keeps_the_runs_options(tmp_path, data, capsys):
    # --resume <run>/checkpoints/latest.pt --out NEW took the demo preset (no --dataroot given), so it
    # was refused for a dozen differences the user never chose.
    old = tmp_path / "old"
    Trainer(tiny_cfg(old, data, max_steps=2, save_every=2, sample_every=100), progress=False).train()
    new = tmp_path / "new"
    assert main(["train", "--resume", str(old / "checkpoints" / "latest.pt"), "--out", str(new), "--max_steps", "4",
                 "--no-progress"]) == 0
    assert [json.loads(line)["step"] for line in (new / "log.jsonl").read_text().splitlines()] == [3, 4]
    expected = {**json.loads((old / "config.json").read_text()), "out": str(new), "max_steps": 4}
    assert json.loads((new / "config.json").read_text()) == expected
    capsys.readouterr()
    # Without --out it goes to the default folder, never back into its own run (whose later log it would cut).
    assert main(["train", "--resume", str(old / "checkpoints" / "latest.pt"), "--dry-run"]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["out"] == "runs/bicyclegan"
    # and says so, with how to continue the run itself (a second run began there unsaid)
    latest = old / "checkpoints" / "latest.pt"
    assert said.err.startswith(f"note: a new run folder, runs/bicyclegan, continues {latest} (without --out; its own "
                               f"run, {old}, continues from it with `bicyclegan train --out {old} --resume`)\ndata: ")
    # an epoch's checkpoint: continued from it with --epoch N (--resume alone goes on from latest.pt); one a resume
    # set aside: continued in a new --out alone (its run went back past it)
    for name, how in (("epoch_1.pt", " its own run, {old}, continues from it with `bicyclegan train --out {old} "
                                     "--epoch 1`"), ("abandoned_after_step_3/epoch_2.pt", None)):
        ckpt = old / "checkpoints" / name
        ckpt.parent.mkdir(exist_ok=True)
        shutil.copy(old / "checkpoints" / "latest.pt", ckpt)
        assert main(["train", "--resume", str(ckpt), "--dry-run"]) == 0
        assert capsys.readouterr().err.startswith(f"note: a new run folder, runs/bicyclegan, continues {ckpt} "
                                                  "(without --out" + (";" + how.format(old=old) if how else "")
                                                  + ")\ndata: ")
    # the run folder itself (its latest.pt), and a checkpoint named from inside checkpoints/ (no note at all)
    assert main(["train", "--resume", str(old), "--dry-run"]) == 0
    assert f"its own run, {old}, continues from it with `bicyclegan train --out {old} --resume`" in \
        capsys.readouterr().err
    with pytest.MonkeyPatch.context() as m:
        m.chdir(old / "checkpoints")
        assert main(["train", "--resume", "epoch_1.pt", "--dry-run"]) == 0
    assert f"its own run, {old}, continues from it with `bicyclegan train --out {old} --epoch 1`" in \
        capsys.readouterr().err
    assert main(["train", "--resume", str(old / "checkpoints" / "latest.pt"), "--out", str(new), "--dry-run"]) == 2
    assert "note" not in capsys.readouterr().err  # (--out given: nothing to say; new holds a run now, refused)


def test_a_checkpoint_set_aside_by_a_resume_going_back_continues_into_a_new_folder(tmp_path, data, capsys):
    # The note of a resume that goes back says to go on from a checkpoint it moved aside with --resume FILE
    # --out NEW; read as a checkpoint outside a run, that took the demo preset's options and was refused for a
    # dozen differences never chosen (lr, batch_size, ngf...).
    old = tmp_path / "old"
    Trainer(tiny_cfg(old, data, max_steps=12, niter=2, save_every=100, save_epoch_freq=1, sample_every=100),
            progress=False).train()
    assert main(["train", "--out", str(old), "--epoch", "1", "--max_steps", "5", "--no-progress"]) == 0
    aside = old / "checkpoints" / "abandoned_after_step_4" / "epoch_2.pt"  # (step 8)
    assert f"moved to {aside.parent}" in capsys.readouterr().err
    new = tmp_path / "new"
    assert main(["train", "--resume", str(aside), "--out", str(new), "--max_steps", "12", "--no-progress"]) == 0
    assert [json.loads(line)["step"] for line in (new / "log.jsonl").read_text().splitlines()] == [9, 10, 11, 12]
    expected = {**json.loads((old / "config.json").read_text()), "out": str(new), "max_steps": 12}
    assert json.loads((new / "config.json").read_text()) == expected


def test_a_checkpoint_continued_again_into_the_folder_of_its_first_continuation_is_refused(tmp_path, data, capsys):
    # The same command twice: the second resumed step 2 into the run the first made (steps 3-4), dropping
    # its log and grids and replacing its latest.pt on the next save.
    old, new = tmp_path / "old", tmp_path / "new"
    Trainer(tiny_cfg(old, data, max_steps=2, save_every=2, sample_every=1), progress=False).train()
    command = ["train", "--resume", str(old / "checkpoints" / "latest.pt"), "--out", str(new), "--max_steps", "4",
               "--no-progress"]
    assert main(command) == 0
    before = {p.relative_to(new): p.read_bytes() for p in new.rglob("*") if p.is_file() and p.name != ".lock"}
    assert sorted(p.name for p in (new / "samples").glob("step_*")) == ["step_0000003.png", "step_0000004.png"]
    capsys.readouterr()
    assert main(command) == 2
    assert (f"{new} already holds a run (latest.pt), and {old / 'checkpoints' / 'latest.pt'} is not one of its "
            f"checkpoints") in capsys.readouterr().err
    assert {p.relative_to(new): p.read_bytes() for p in new.rglob("*") if p.is_file() and p.name != ".lock"} == before
    # Its own checkpoints continue it, by path too; the source run is continued as ever.
    assert main(["train", "--resume", str(new / "checkpoints" / "latest.pt"), "--out", str(new), "--max_steps", "6",
                 "--no-progress"]) == 0
    assert [json.loads(line)["step"] for line in (new / "log.jsonl").read_text().splitlines()] == [3, 4, 5, 6]
    assert main(["train", "--out", str(old), "--resume", "--max_steps", "3", "--no-progress"]) == 0


def test_resuming_says_from_which_step_and_that_a_finished_run_has_nothing_to_train(tmp_path, data, capsys):
    out = tmp_path / "r"
    Trainer(tiny_cfg(out, data, max_steps=2, save_every=2, sample_every=100), progress=False).train()
    again = Trainer(tiny_cfg(out, data, max_steps=2), resume=True)
    again.progress.stream, again.progress.tty = io.StringIO(), False
    again.train()
    assert f"2 iterations of batch 4 -> {out}, from step 2 ({out / 'checkpoints' / 'latest.pt'})" in \
        again.progress.stream.getvalue()
    # (the whole schedule: niter 1 + niter_decay 1 epochs of 16 / 4 batches)
    assert (f"note: {out} has already trained its 2 iterations: nothing to train; to train on, resume it with a "
            f"larger --max_steps, or --max_steps none for the whole schedule (8 iterations)") in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--max_steps", "4", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "nothing to train" not in err
    # the iterations left too ("4 iterations ..., from step 2" read as four more)
    assert f"4 iterations of batch 4 -> {out}, from step 2 ({out / 'checkpoints' / 'latest.pt'}), 2 to go" in err
    run2 = tmp_path / "r2"  # a run that ends with its schedule (no max_steps) trains longer by epochs
    Trainer(tiny_cfg(run2, data, max_steps=None, sample_every=100), progress=False).train()
    assert main(["train", "--out", str(run2), "--resume", "--no-progress"]) == 0
    assert "to train on, resume it with more epochs (--niter_decay, --niter" in capsys.readouterr().err


# -- a first day's rough edges: plain folders' results, epoch counts, --no-progress ----------------------
def test_a_plain_folders_results_are_named_after_it_not_the_test_split(run, data, plain, tmp_path):
    # sample on a folder of inputs wrote to <run>/results/test, where the test split's results go.
    # (a folder other than the run's training data: its place's digest after its name, as another dataset's)
    ckpt = run / "checkpoints" / "latest.pt"
    kw = dict(n_samples=1, num=1, progress=False)
    assert sample(ckpt, plain, **kw) == run / "results" / f"plain_{_place(plain)}"
    assert sample(ckpt, plain, sync=True, **kw) == run / "results" / f"plain_{_place(plain)}_sync"
    assert sample(ckpt, data, **kw) == run / "results" / "test"  # a split keeps its name
    assert interpolate(ckpt, plain, num=1, segments=1, frames=1, mp4=False, progress=False) == \
        run / "results" / f"interpolate_plain_{_place(plain)}"
    assert main(["evaluate", str(run), "--dataroot", str(plain), "--n_samples", "2", "--num", "1",
                 "--metrics", "l1"]) == 0
    assert json.loads((run / "results" / f"plain_{_place(plain)}" / "eval.json").read_text())["n_inputs"] == 1
    # A folder of inputs named like a split (photos/test) would land in the split's folder again.
    photos = tmp_path / "photos" / "test"
    photos.mkdir(parents=True)
    (photos / "a.png").write_bytes((plain / "0.png").read_bytes())
    assert sample(ckpt, photos, **kw) == run / "results" / f"photos_test_{_place(photos)}"
    # or like a split's results folder: sample of a folder test_sweep replaced the sweep's page
    sweep = tmp_path / "mine" / "test_sweep"
    sweep.mkdir(parents=True)
    (sweep / "a.png").write_bytes((plain / "0.png").read_bytes())
    assert sample(ckpt, sweep, **kw) == run / "results" / f"mine_test_sweep_{_place(sweep)}"
    # (a model that records no data of its own, an import's: the folder's name alone, as the reference's)
    from bicyclegan.engine.runtime import results_name
    for name, want in (("interpolate_test", "x_interpolate_test"), ("interpolate_photos", "x_interpolate_photos"),
                       ("val_epoch_12", "x_val_epoch_12"), ("test_sync_best", "x_test_sync_best"),
                       ("test_images", "test_images"), ("testing", "testing"), ("photos_sweep", "photos_sweep")):
        (tmp_path / "x" / name).mkdir(parents=True)
        assert results_name(tmp_path / "x" / name, "test") == want, name
    (tmp_path / "interpolate" / "test").mkdir(parents=True)  # (prefixed: interpolate_test, interpolate's own again)
    assert results_name(tmp_path / "interpolate" / "test", "val") == "inputs_interpolate_test"


def _place(folder) -> str:
    """The 8 hex digits after another dataset's name in its results folder's: its absolute path's SHA-256."""
    return hashlib.sha256(os.fsencode(Path(folder).resolve())).hexdigest()[:8]


def test_another_datasets_results_never_replace_the_runs_own(run, data, tmp_path):
    # `evaluate RUN --dataroot OTHER`, OTHER with a test/ split as the run's data has, wrote RUN/results/test/eval.json
    # over the run's own evaluation of its test split, without a word; a sweep, sample and interpolate replaced theirs
    # alike. Another dataset's results are named after it and its place: two folders of one name (v1/data, v2/data,
    # named as the run's own data too) are kept apart, and the run's report lists each.
    from bicyclegan.engine.report import result_pages
    from bicyclegan.engine.runtime import results_name
    run = shutil.copytree(run, tmp_path / "r", ignore=shutil.ignore_patterns("results"))
    ckpt = run / "checkpoints" / "latest.pt"
    ev, kw = ["--n_samples", "2", "--num", "2", "--metrics", "l1"], dict(n_samples=1, num=1, progress=False)
    assert main(["evaluate", str(run), *ev]) == 0
    assert sample(ckpt, data, **kw) == run / "results" / "test"  # (the run's own data given: its own folder)
    own = {p: p.read_bytes() for p in (run / "results" / "test").rglob("*") if p.is_file()}
    others = [shutil.copytree(data, tmp_path / v / data.name) for v in ("v1", "v2")]
    for other in others:
        assert main(["evaluate", str(run), "--dataroot", str(other), *ev]) == 0
        theirs = run / "results" / f"{data.name}_test_{_place(other)}"
        assert json.loads((theirs / "eval.json").read_text())["dataroot"] == str(other.resolve())
    other = others[0]
    assert sample(ckpt, other, **kw) == run / "results" / f"{data.name}_test_{_place(other)}"
    assert interpolate(ckpt, other, num=1, segments=1, frames=1, mp4=False, progress=False) == \
        run / "results" / f"interpolate_{data.name}_test_{_place(other)}"
    assert main(["evaluate", str(run), "--epoch", "all", "--dataroot", str(other), *ev]) == 0
    assert (run / "results" / f"{data.name}_test_{_place(other)}_sweep" / "sweep.json").is_file()
    assert {p: p.read_bytes() for p in (run / "results" / "test").rglob("*") if p.is_file()} == own
    # (one named like interpolate's results, interpolate_shoes/test: not taken for them, as a plain folder's)
    (tmp_path / "interpolate_shoes" / "test").mkdir(parents=True)
    assert results_name(tmp_path / "interpolate_shoes", "test", data) == \
        f"inputs_interpolate_shoes_test_{_place(tmp_path / 'interpolate_shoes')}"
    assert {name for name, _ in result_pages(run)} == {
        "test", *(f"{data.name}_test_{_place(o)}" for o in others), f"{data.name}_test_{_place(other)}_sweep",
        f"interpolate_{data.name}_test_{_place(other)}"}


def test_a_dataset_reached_through_a_link_is_recorded_by_the_link(tmp_path, data):
    # Recorded as the link's target: re-pointing the link (data -> data_v2, the reason to have one) left the run's
    # config naming the old folder, and sample, evaluate and a resume failed on it
    v1, v2, link = tmp_path / "data_v1", tmp_path / "data_v2", tmp_path / "data"
    shutil.copytree(data, v1)
    link.symlink_to(v1.name)
    run = tmp_path / "r"
    Trainer(tiny_cfg(run, link, max_steps=1, save_every=1, sample_every=100), progress=False).train()
    assert json.loads((run / "config.json").read_text())["data"]["dataroot"] == str(link)
    # up (..) through a link: its target's parent, not the link's folder (which lexical abspath gives)
    from bicyclegan.engine.io import absolute
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "hop").symlink_to(tmp_path / "deep" / "x")
    assert absolute(tmp_path / "hop" / ".." / "data") == str(tmp_path / "deep" / "data")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(tmp_path)
        assert absolute("data") == str(link) and absolute(Path("hop") / "..") == str(tmp_path / "deep")
        m.chdir(tmp_path / "deep")  # up through no link: the link after it kept (resolving it all undid the mend)
        assert absolute(Path("..") / "data") == str(link)
        assert absolute(Path("x") / ".." / ".." / "data") == str(link)
    v1.rename(v2)
    link.unlink()
    link.symlink_to(v2.name)
    out = sample(run, n_samples=1, num=1, progress=False)
    assert (out / "index.html").is_file()


def test_checkpoints_from_before_the_data_moved_read_it_where_the_run_says_it_is_now(tmp_path, data):
    # A run resumed with --dataroot after its data moved: latest.pt and config.json name the new folder, its
    # epoch_1.pt the old one, and `sample RUN --epoch 1` (and the sweep over every checkpoint) failed on it
    old, new, run = tmp_path / "disk1", tmp_path / "disk2", tmp_path / "r"
    shutil.copytree(data, old)
    Trainer(tiny_cfg(run, old, max_steps=4, save_epoch_freq=1, save_every=100, sample_every=100),
            progress=False).train()
    old.rename(new)
    Trainer(tiny_cfg(run, new, max_steps=5, save_epoch_freq=1, save_every=100, sample_every=100), resume=True,
            progress=False).train()
    epoch_1 = run / "checkpoints" / "epoch_1.pt"
    assert read_checkpoint(epoch_1)["config"]["data"]["dataroot"] == str(old)  # (as written before the move)
    assert (sample(epoch_1, n_samples=1, num=1, progress=False) / "index.html").is_file()
    assert main(["evaluate", str(run), "--epoch", "all", "--metrics", "l1", "--num", "2", "--n_samples", "2"]) == 0
    # one set aside by a resume that went back (still the run's), and one named from inside checkpoints/
    aside = run / "checkpoints" / "abandoned_after_step_4" / "epoch_2.pt"
    aside.parent.mkdir()
    shutil.copy(epoch_1, aside)
    assert (sample(aside, n_samples=1, num=1, progress=False, out=tmp_path / "a") / "index.html").is_file()
    with pytest.MonkeyPatch.context() as m:
        m.chdir(run / "checkpoints")
        assert (sample("epoch_1.pt", n_samples=1, num=1, progress=False, out=tmp_path / "b") / "index.html").is_file()
    # outside a run folder, or where the run's config names no folder that is there, the stored one is said gone
    shutil.copy(epoch_1, tmp_path / "loose.pt")
    with pytest.raises(DatasetError, match=f"dataset folder {old} does not exist"):
        sample(tmp_path / "loose.pt", n_samples=1, num=1, progress=False)


def test_a_demo_run_copied_without_its_data_says_how_to_make_it_again(tmp_path):
    # "pass --dataroot" named no folder the user had: the demo data beside the run was made by train, unasked
    import shlex

    from bicyclegan.engine.runtime import DATA_VERSION, data_root_for
    root = tmp_path / "a b" / f"demo_data_v{DATA_VERSION}_32x32_seed3"
    cfg = tiny_cfg(tmp_path / "a b" / "run", root, seed=3)
    again = f"bicyclegan make-demo {shlex.quote(str(root))} --size 32 --seed 3"
    with pytest.raises(DatasetError, match=re.escape(f"the run's demo data, which `{again}` makes again (or pass")):
        data_root_for(cfg)
    assert main(shlex.split(again)[1:]) == 0
    assert data_root_for(cfg) == root


def test_inputs_of_the_longest_names_get_outputs_and_a_list_of_names_that_cannot_be_stops_nothing(run, plain,
                                                                                                  tmp_path):
    # A stem of 239 bytes and more with _ground_truth.png is over the 255 a file name holds: sample and interpolate
    # stopped mid-write with a traceback, and the names they had listed in .images.json stopped every later call
    ckpt = run / "checkpoints" / "latest.pt"
    long_a, long_b = "M" * 250 + ".png", "é" * 120 + "x.png"  # 254 bytes each; the second's cut is mid-letter
    for name in (long_a, long_b, "M" * 250 + ".jpg", "M" * 249 + "N.png"):
        os.link(plain / "0.png", plain / name)
    out = sample(ckpt, plain, n_samples=1, num=7, progress=False, out=tmp_path / "s")
    made = sorted(p.name for p in (out / "images").iterdir())
    stems = {n.rsplit("_", 2)[0] if "random" in n else n.rsplit("_", 1)[0] for n in made}
    assert len(stems) == 7 and all(len(n.encode()) <= 255 for n in made), made
    # a long stem's first 191 bytes and its digest (M...N apart from M... by it), a second input of one stem -2
    cut = [s for s in stems if len(s) > 100]
    assert sorted(len(s.encode()) for s in cut) == [199, 200, 200, 202], cut
    assert len({s.split("~")[1][:8] for s in cut}) == 3, cut
    assert any(n.startswith("é" * 95 + "~") for n in stems)
    page = (out / "index.html").read_text()
    assert html.escape(long_a) in page and html.escape(long_b) in page  # the labels, whole
    interpolate(ckpt, plain, num=7, segments=1, frames=1, mp4=False, progress=False, out=tmp_path / "i")
    # a list left by an earlier version's failed call: names no file can have
    listed = out / ".images.json"
    listed.write_text(json.dumps([*json.loads(listed.read_text()), "N" * 300 + "_input.png"]))
    assert sample(ckpt, plain, n_samples=1, num=7, progress=False, out=tmp_path / "s") == out


def test_the_progress_line_counts_epochs_as_the_epoch_checkpoints_do(tmp_path, data):
    # The line said "epoch 0" through the first epoch, whose end writes epoch_1.pt (--epoch 1 reads it).
    out = tmp_path / "r"  # 16 images, batch 4: two epochs of 4 iterations
    trainer = Trainer(tiny_cfg(out, data, max_steps=None, save_epoch_freq=1, sample_every=100, save_every=100))
    trainer.progress.stream, trainer.progress.tty = io.StringIO(), False
    trainer.train()
    shown = {int(m.group(2)): m.group(1) for m in re.finditer(r"^(epoch \S+) \[[#.]+\] (\d+)/8 ",
                                                              trainer.progress.stream.getvalue(), re.M)}
    assert shown == {1: "epoch 1/2", 2: "epoch 1/2", 3: "epoch 1/2", 4: "epoch 1/2",
                     5: "epoch 2/2", 6: "epoch 2/2", 7: "epoch 2/2", 8: "epoch 2/2"}
    assert torch.load(out / "checkpoints" / "epoch_1.pt", weights_only=True)["step"] == 4  # the 1st epoch's end
    # log.jsonl keeps its field (the epoch's index from 0: tools read it); the report shows the count
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [0] * 4 + [1] * 4
    assert "step 8 of 8 (epoch 2 of 2)" in (out / "report.html").read_text()


def test_the_progress_line_on_a_terminal_fits_its_width_and_shows_small_losses(monkeypatch):
    # 140 columns at 7 losses, never shortened: a terminal of 100 wrapped it, and each update stacked a row; the KL
    # term (near 1e-7 at first) read "kl 0.000" at three decimals.
    from bicyclegan.engine.trainer import Progress
    losses = {"G_GAN": 1.403, "G_L1": 7.5736, "kl": 6.716e-06, "G_GAN2": 1.452, "z_L1": 0.436, "D": 0.819, "D2": 0.871}
    shown = {}
    for columns, tty in ((100, True), (300, True), (100, False)):
        monkeypatch.setenv("COLUMNS", str(columns))  # (shutil.get_terminal_size reads it first)
        p = Progress(4000, stream=io.StringIO())
        p.tty = tty
        p.update(15, 0, 44.6, losses)
        shown[columns, tty] = p.stream.getvalue()
    narrow, wide, piped = shown[100, True], shown[300, True], shown[100, False]
    assert narrow.startswith("\r") and narrow.endswith("\x1b[K") and len(narrow[1:-3]) == 99  # the last column free
    assert narrow[1:-3] == wide[1:-3].replace(" [....................]", "")[:96] + "..."  # the bar first, then the end
    assert wide[1:-3].endswith("| G_GAN 1.403 G_L1 7.574 kl 6.716e-06 G_GAN2 1.452 z_L1 0.436 D 0.819 D2 0.871")
    assert piped == wide[1:-3] + "\n"  # not a terminal: the whole line, as log lines
    # TERM=dumb (no control sequences: "^[[K" was shown at each update): a shorter line padded over the last
    monkeypatch.setenv("TERM", "dumb")
    p = Progress(4000, stream=io.StringIO())
    p.tty = True
    p.update(15, 0, 44.6, losses)
    p.update(16, 0, 44.6, {"G_GAN": 1.0})
    p.note("data: 16 samples")
    first, second = p.stream.getvalue()[1:].split("\r")[:2]
    assert "\x1b" not in p.stream.getvalue() and len(second) == len(first) == 99 and second.rstrip().endswith("G_GAN 1")
    assert p.stream.getvalue().endswith("\r" + " " * len(second.rstrip()) + "\rdata: 16 samples\n")


def test_no_progress_hides_the_bar_not_what_the_run_trains(tmp_path, data, capsys):
    # --no-progress ("no progress bar") also hid "training on ..." and the data line.
    out = tmp_path / "q"
    args = ["train", "--preset", "reference", *[f"--{k}={v}" for k, v in TINY.items()], "--dataroot", str(data),
            "--out", str(out), "--batch_size", "4", "--preprocess", "none", "--backend", "torch",
            "--num_workers", "0", "--niter", "1", "--niter_decay", "1", "--max_steps", "2", "--log_every", "1"]
    assert main([*args, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f": 2 iterations of batch 4 -> {out}\n" in err and "data: 16 samples, 4 batches an epoch" in err
    assert "epoch 1/1" not in err and "img/s" not in err
    assert main([*args, "--out", str(tmp_path / "p")]) == 0
    assert "epoch 1/1 [" in capsys.readouterr().err  # and without it, the bar


def test_training_says_when_impl_auto_runs_torchs_layers(tmp_path, data, capsys, monkeypatch):
    """An impl=auto run whose layers are torch's (layer_impl's answer for an eager CUDA step, made
    here on the CPU) says so, with what brings the kernels back; one whose layers are what it asked
    for says nothing."""
    import bicyclegan.engine.model as model_module

    def train(out, impl):
        return main(["train", "--preset", "reference", *[f"--{k}={v}" for k, v in TINY.items()], "--impl", impl,
                     "--dataroot", str(data), "--out", str(tmp_path / out), "--batch_size", "4",
                     "--preprocess", "none", "--backend", "torch", "--num_workers", "0", "--niter", "1",
                     "--niter_decay", "1", "--max_steps", "1", "--no-progress"])
    assert train("ref", "ref") == 0
    assert "impl auto" not in capsys.readouterr().err
    monkeypatch.setattr(model_module, "layer_impl", lambda cfg, device=None, training=True: "ref")
    assert train("auto", "auto") == 0
    err = capsys.readouterr().err
    assert ("impl auto: torch's layers, since this step runs eagerly on CUDA, where the host's launches set the "
            "pace and the Triton kernels' cost more; they run in a CUDA graph (--cuda_graph) or compiled step, or "
            "with --impl triton\n") in err
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["model"]["impl"] == "auto"


def test_the_data_line_says_how_many_samples_each_epoch_leaves_out(tmp_path, data, capsys):
    # 16 samples at batch 6: 2 whole batches an epoch, 12 samples; the other 4 of each epoch's order went
    # unsaid ("data: 16 samples, 2 batches an epoch").
    def train(batch_size):
        return main(["train", "--preset", "reference", *[f"--{k}={v}" for k, v in TINY.items()], "--dataroot",
                     str(data), "--out", str(tmp_path / str(batch_size)), "--batch_size", str(batch_size),
                     "--preprocess", "none", "--backend", "torch", "--num_workers", "0",
                     "--niter", "1", "--niter_decay", "1", "--max_steps", "1", "--no-progress"])
    assert train(6) == 0
    assert ("data: 16 samples, 2 batches an epoch (4 left out each epoch, the end of its shuffled order: batches "
            "are whole); torch loader, 0 workers\n") in capsys.readouterr().err
    assert train(4) == 0
    assert "data: 16 samples, 4 batches an epoch; torch" in capsys.readouterr().err  # none left: nothing said


def test_counts_of_one_read_as_one(tmp_path, data, capsys, monkeypatch):
    # A one-step run on one thread, 5 samples at batch 4, one evaluation of one input said "1 threads",
    # "1 iterations", "1 batches an epoch", "1 inputs x 2 z" and, on its report, "every 1 iterations".
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    out = tmp_path / "one"
    assert main(["train", "--preset", "reference", *[f"--{k}={v}" for k, v in TINY.items()], "--dataroot", str(data),
                 "--out", str(out), "--batch_size", "4", "--max_dataset_size", "5",
                 "--preprocess", "none", "--backend", "torch", "--num_workers", "1", "--niter", "1",
                 "--niter_decay", "1", "--max_steps", "1", "--eval_every", "1", "--eval_num", "1",
                 "--eval_samples", "2", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"training on cpu (1 thread; no GPU): 1 iteration of batch 4 -> {out}\n" in err and "--amp fp16" not in err
    assert ("data: 5 samples, 1 batch an epoch (1 left out each epoch, the end of its shuffled order: batches are "
            "whole); torch loader, 1 worker\n") in err
    assert "evaluation at step 1 (test/, 1 input x 2 z): " in err
    page = (out / "report.html").read_text()
    assert "1 evaluation, every 1 iteration, of test/: the first 1 input x 2 random z" in page


def test_fp16_on_the_cpu_says_it_is_slower(tmp_path, data, capsys):
    # --amp fp16 on a CPU ran its steps 8 to 30 times as long as --amp off (emulated float16), and nothing said so
    argv = ["train", "--preset", "reference", *[f"--{k}={v}" for k, v in TINY.items()], "--dataroot", str(data),
            "--batch_size", "4", "--preprocess", "none", "--backend", "torch", "--num_workers", "0", "--max_steps", "1",
            "--no-progress", "--device", "cpu"]
    for amp, said in (("fp16", True), ("bf16", False)):
        assert main([*argv, "--amp", amp, "--out", str(tmp_path / amp)]) == 0
        err = capsys.readouterr().err
        assert ("--amp fp16 on the CPU: many times slower than --amp off there" in err) == said, err


def test_a_text_file_or_a_dataset_given_as_the_model_is_named_as_what_it_is(data, tmp_path, capsys):
    # "(KeyError: 101)" for a text file; "checkpoint data/checkpoints/latest.pt does not exist" for a dataset.
    (tmp_path / "notes.txt").write_text("epochs: 10\n")
    assert main(["sample", str(tmp_path / "notes.txt")]) == 2
    assert (f"CheckpointError: checkpoint {tmp_path / 'notes.txt'} is not a torch file, so no checkpoint: it begins "
            f"b'epochs: 10\\n'") in capsys.readouterr().err
    assert main(["evaluate", str(data)]) == 2
    assert f"CheckpointError: {data} is not a run folder (it has no checkpoints/ folder)" in capsys.readouterr().err


# -- train --init_from: a new run from the weights of any checkpoint (fine-tuning, a new schedule) ----------
@pytest.fixture(scope="module")
def source(tmp_path_factory, data):
    """A finished run of two epochs (4 iterations each) with per-epoch checkpoints and a moving average of G."""
    out = tmp_path_factory.mktemp("source") / "src"
    Trainer(tiny_cfg(out, data, max_steps=None, save_epoch_freq=1, ema=0.5, sample_every=100, save_every=100),
            progress=False).train()
    return out


def test_init_from_starts_a_new_run_from_the_weights_of_a_trained_checkpoint(source, data, tmp_path):
    ckpt = source / "checkpoints" / "epoch_1.pt"
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4 and state["optimizers"]["G"]["state"]  # trained: Adam's moments and all
    new = tmp_path / "new"
    # Another learning rate and batch size, which a resume refuses: a run of its own, from those weights.
    trainer = Trainer(tiny_cfg(new, data, ema=0.5, lr=1e-3, batch_size=2, max_steps=2, init_from=ckpt),
                      progress=False)
    assert (trainer.step, trainer.epoch, trainer.saved_step) == (0, 0, None)
    assert all(not opt.state_dict()["state"] for opt in trainer.model.optimizers.values())
    G = trainer.model.G.eval()
    A, z = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 8)
    with torch.no_grad():
        source_G = load_checkpoint(ckpt).G.eval()  # the source's own G, as sample loads it
        assert torch.equal(G(A, z), source_G(A, z))
        torch.manual_seed(0)  # the weights a run of this seed starts from without init_from: not these
        assert not torch.equal(BicycleGAN(tiny_cfg(new, data)).G.eval()(A, z), G(A, z))
    for name in ("E", "D", "D2"):
        for key, value in getattr(trainer.model, name).state_dict().items():
            assert torch.equal(value, state["nets"][name][key]), (name, key)
    # The moving average starts again from the checkpoint's G (its own average followed the old run).
    assert any(not torch.equal(state["ema"][k], state["nets"]["G"][k]) for k in state["ema"])
    for key, value in trainer.model.G_ema.state_dict().items():
        assert torch.equal(value, state["nets"]["G"][key]), key
    assert trainer.model.ema_steps.item() == 0
    trainer.train()
    config = json.loads((new / "config.json").read_text())
    assert (config["init_from"], config["fresh_D"], config["lr"], config["batch_size"]) == \
        (str(ckpt.resolve()), False, 1e-3, 2)
    rows = [json.loads(line) for line in (new / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["epoch"], r["lr"]) for r in rows] == [(1, 0, 1e-3), (2, 0, 1e-3)]
    assert f"from the weights of {ckpt.resolve()}" in (new / "report.html").read_text()
    assert read_checkpoint(new / "checkpoints" / "latest.pt")["config"]["init_from"] == str(ckpt.resolve())
    # The new run resumes as any run; init_from says where it began (from its checkpoint, whatever the
    # resuming config holds), not where it goes on from.
    Trainer(tiny_cfg(new, data, ema=0.5, lr=1e-3, batch_size=2, max_steps=3), resume=True, progress=False).train()
    assert json.loads((new / "config.json").read_text()) == {**config, "max_steps": 3}
    assert main(["train", "--out", str(new), "--resume", "--max_steps", "4", "--no-progress"]) == 0
    assert [json.loads(line)["step"] for line in (new / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert json.loads((new / "config.json").read_text()) == {**config, "max_steps": 4}


def test_train_init_from_a_run_folder_and_epoch_on_the_command_line(source, tmp_path, capsys):
    new = tmp_path / "cli"
    epoch_2 = source / "checkpoints" / "epoch_2.pt"
    assert main(["train", "--init_from", str(source), "--epoch", "2", "--out", str(new), "--max_steps", "1",
                 "--lr", "0.001", "--no-progress"]) == 0
    assert f"-> {new}, from the weights of {epoch_2}\n" in capsys.readouterr().err
    # Without --preset the source run's options (its networks, data, objective), with what was given.
    source_config = json.loads((source / "config.json").read_text())
    assert json.loads((new / "config.json").read_text()) == {
        **source_config, "out": str(new), "max_steps": 1, "lr": 0.001, "init_from": str(epoch_2.resolve())}

    def refused_cli(*args):
        assert main(["train", *args, "--no-progress"]) == 2
        return capsys.readouterr().err
    other = str(tmp_path / "other")
    err = refused_cli("--init_from", str(source), "--out", other, "--ngf", "8")
    assert "holds other networks than this run's: ngf: checkpoint 4 vs now 8 (start from it with its model " \
        "options: --ngf 4, " in err
    err = refused_cli("--init_from", str(source), "--out", other, "--ndf", "8")
    assert "ndf: checkpoint 4 vs now 8" in err and "--fresh_D trains new discriminators" in err
    assert not (tmp_path / "other").exists()  # a refused start leaves no folder
    assert "already holds a run (latest.pt); pass --resume" in \
        refused_cli("--init_from", str(source), "--out", str(new))
    assert "give one" in refused_cli("--init_from", str(source), "--out", str(new), "--resume")
    assert "--fresh_D is for a run that starts from a checkpoint's weights" in \
        refused_cli("--out", str(new), "--resume", "--fresh_D")
    assert f"{tmp_path} is not a run folder" in refused_cli("--init_from", str(tmp_path), "--out", other)


def test_train_takes_epoch_best_as_sample_does(source, tmp_path, capsys):
    # `train --init_from RUN --epoch best` was refused ("expects an integer"), though `sample RUN --epoch best` takes
    # the run's best.pt (train --keep_best)
    run = Path(shutil.copytree(source, tmp_path / "src"))
    best = run / "checkpoints" / "best.pt"
    shutil.copy(run / "checkpoints" / "epoch_1.pt", best)
    capsys.readouterr()
    assert main(["train", "--init_from", str(run), "--epoch", "best", "--out", str(tmp_path / "new"), "--max_steps",
                 "1", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["init_from"] == str(best.resolve())
    # and a resume from it, as --resume RUN/checkpoints/best.pt into its own run
    assert main(["train", "--out", str(run), "--epoch", "best", "--dry-run"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--init_from", str(run), "--epoch", "all", "--out", str(tmp_path / "new")])
    assert "expects an epoch (an integer >= 1) or best, got 'all'" in capsys.readouterr().err


def test_a_checkpoint_outside_a_run_starts_a_run_with_the_options_it_stores(source, tmp_path, capsys):
    # A run's latest.pt copied out of it (or an import-official file): --init_from FILE took the demo preset's
    # options and was refused for every network option the file stores ("ngf: checkpoint 4 vs now 16; ...").
    alone = tmp_path / "alone.pt"
    shutil.copy(source / "checkpoints" / "epoch_2.pt", alone)
    source_config = json.loads((source / "config.json").read_text())
    new = tmp_path / "new"
    assert main(["train", "--init_from", str(alone), "--out", str(new), "--max_steps", "1", "--lr", "0.001",
                 "--no-progress"]) == 0
    assert json.loads((new / "config.json").read_text()) == {
        **source_config, "out": str(new), "max_steps": 1, "lr": 0.001, "init_from": str(alone.resolve())}
    assert main(["train", "--resume", str(alone), "--out", str(tmp_path / "on"), "--niter_decay", "2", "--dry-run",
                 "--no-progress"]) == 0  # continued elsewhere: its own options, as its run's config.json says
    assert main(["train", "--init_from", str(alone), "--out", str(tmp_path / "x"), "--ngf", "8", "--no-progress"]) == 2
    assert "ngf: checkpoint 4 vs now 8 (" in capsys.readouterr().err  # what is given still goes on top


def test_init_from_with_fresh_discriminators_of_other_options(source, data, tmp_path):
    trainer = Trainer(tiny_cfg(tmp_path / "d", data, ndf=8, max_steps=1, init_from=source, fresh_D=True),
                      progress=False)
    state = read_checkpoint(source / "checkpoints" / "latest.pt")
    for key, value in trainer.model.G.state_dict().items():
        assert torch.equal(value, state["nets"]["G"][key]), key
    for name in ("D", "D2"):  # this run's: ndf 8, where the checkpoint's first convolutions have 4 filters
        assert [t.shape[0] for t in getattr(trainer.model, name).state_dict().values()][0] == 8
        assert [t.shape[0] for t in state["nets"][name].values()][0] == 4
    trainer.train()
    assert json.loads((tmp_path / "d" / "config.json").read_text())["fresh_D"] is True
    # A checkpoint without D2 (lambda_GAN2 0) has none to lend a run that trains one: fresh_D gives it one.
    save_checkpoint(BicycleGAN(tiny_cfg(tmp_path, data, lambda_GAN2=0.0)), tmp_path / "no_d2.pt", step=5)
    with pytest.raises(CheckpointError, match=r"no_d2\.pt holds no D2 \(its run trained none\), which this run "
                                              r"trains: pass --fresh_D for new discriminators"):
        Trainer(tiny_cfg(tmp_path / "f", data, init_from=tmp_path / "no_d2.pt"), progress=False)
    assert Trainer(tiny_cfg(tmp_path / "g", data, init_from=tmp_path / "no_d2.pt", fresh_D=True),
                   progress=False).model.D2 is not None
    # and a run without D2 leaves the checkpoint's out
    assert Trainer(tiny_cfg(tmp_path / "h", data, init_from=source, lambda_GAN2=0.0), progress=False).model.D2 is None
    with pytest.raises(ConfigError, match="fresh_D=True gives a run that starts from a checkpoint's weights"):
        Trainer(tiny_cfg(tmp_path / "e", data, fresh_D=True), progress=False)


def test_init_from_another_variant_takes_its_generator_and_encoder_with_fresh_discriminators(source, data,
                                                                                               tmp_path):
    # BicycleGAN from a cVAE-GAN's G and E (or back): refused even with --fresh_D, which builds new discriminators
    # anyway, and the advice ("its dataset's --preset") could not change the variant.
    state = read_checkpoint(source / "checkpoints" / "latest.pt")  # (bicycle's)
    with pytest.raises(CheckpointError, match=r"variant: checkpoint 'bicycle' vs now 'cvae' .*--fresh_D trains new "
                                              r"discriminators of this run's options and variant\)$"):
        Trainer(tiny_cfg(tmp_path / "a", data, variant="cvae", max_steps=1, init_from=source), progress=False)
    for variant in ("cvae", "clr", "pix2pix"):
        t = Trainer(tiny_cfg(tmp_path / variant, data, variant=variant, max_steps=1, init_from=source, fresh_D=True),
                    progress=False)
        for name in ("G", "E") if variant != "pix2pix" else ("G",):
            for key, value in getattr(t.model, name).state_dict().items():
                assert torch.equal(value, state["nets"][name][key]), (variant, name, key)
        t.train()
    # A variant without an encoder lends none: said as such (it said to pass --fresh_D, given already)
    with pytest.raises(CheckpointError, match=r"holds no E \(its run trained none\), which this run trains: variant "
                                              r"pix2pix has no encoder to start bicycle's from; start this run afresh"):
        Trainer(tiny_cfg(tmp_path / "b", data, max_steps=1, init_from=tmp_path / "pix2pix", fresh_D=True),
                progress=False)


def test_init_from_a_run_without_an_encoder_says_so_before_the_encoders_options(data, tmp_path):
    # A pix2pix run records the default nef and netE it never built (the command line refuses them for it): a
    # BicycleGAN from it of other encoder options was told to start "with its model options: --nef 64 --netE
    # resnet_256", which then met "holds no E" in turn.
    p2p = tmp_path / "p2p"
    Trainer(tiny_cfg(p2p, data, variant="pix2pix", nef=64, netE="resnet_256", max_steps=1), progress=False).train()
    with pytest.raises(CheckpointError, match=r"holds no E \(its run trained none\)") as e:
        Trainer(tiny_cfg(tmp_path / "b", data, max_steps=1, init_from=p2p, fresh_D=True), progress=False)
    assert "nef" not in str(e.value) and not (tmp_path / "b").exists()


def test_resume_with_an_option_it_may_not_change_says_so_where_the_change_breaks_the_config(data, tmp_path, capsys):
    # --variant bicycle over a 32 px pix2pix run (its netD2 the default, unused) was refused with "netD2=basic_256_multi
    # ... too deep for 32x32 images": mended, the next try met "a resumed run continues the same training".
    run = tmp_path / "p2p"
    Trainer(tiny_cfg(run, data, variant="pix2pix", netD2="basic_256_multi", max_steps=1), progress=False).train()
    assert main(["train", "--out", str(run), "--resume", "--variant", "bicycle", "--max_steps", "2"]) == 2
    err = capsys.readouterr().err
    assert ("a resumed run continues the same training, and this command changes --variant bicycle (the run's: "
            f"pix2pix) of {run / 'config.json'}; for such a change, start a new run from its weights with --init_from"
            in err), err
    assert main(["train", "--out", str(run), "--resume", "--max_steps", "0"]) == 2  # a resumable option's own check
    assert "max_steps=0 must be a positive integer" in capsys.readouterr().err


def test_resume_of_a_run_folder_without_its_config_takes_the_checkpoints(run, tmp_path, capsys):
    # config.json lost (or checkpoints/ alone copied): --resume took the preset's options and was refused for a dozen
    # differences never chosen ("lr: checkpoint 0.0002 vs now 0.0003; batch_size: checkpoint 4 vs now 112; ...").
    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    (copy / "config.json").unlink()
    assert main(["train", "--out", str(copy), "--resume", "--max_steps", "3", "--no-progress"]) == 0, \
        capsys.readouterr().err
    assert read_checkpoint(copy / "checkpoints" / "latest.pt")["step"] == 3


def test_fresh_discriminators_on_a_resumed_run_are_refused_not_dropped(source, tmp_path, capsys):
    # --resume <run>/checkpoints/X.pt --fresh_D continued the run with its trained D and D2: the
    # checkpoint's fresh_D replaced the one asked for, without a word.
    new = tmp_path / "new"
    assert main(["train", "--resume", str(source / "checkpoints" / "latest.pt"), "--out", str(new), "--fresh_D",
                 "--no-progress"]) == 2
    assert "fresh_D=True gives a new run new discriminators" in capsys.readouterr().err
    assert not new.exists()


def test_init_from_a_demo_run_under_the_demos_tiny_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the tests' tiny networks on the PyTorch layers (the kernels would run in Triton's interpreter here)
    tiny = ["--ngf", "4", "--nef", "4", "--ndf", "4", "--impl", "ref", "--num_workers", "0", "--no-eval",
            "--no-progress"]
    assert main(["train", "--out", "a", "--max_steps", "2", *tiny]) == 0
    assert main(["train", "--init_from", "a", "--out", "b", "--max_steps", "2", "--lr", "0.001", *tiny]) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["init_from"] == str(tmp_path / "a" / "checkpoints" / "latest.pt")
    assert config["model"]["ngf"] == 4 and config["batch_size"] == 112  # the demo's, from run a
    assert [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()] == [2]


def test_an_epoch_of_a_run_folder_that_does_not_exist_says_so(tmp_path, capsys):
    # It said "no checkpoint for epoch 3 in <the parent folder>: the run kept no per-epoch checkpoints".
    (tmp_path / "runs").mkdir()
    typo = tmp_path / "runs" / "shoes-typo"
    assert main(["sample", str(typo), "--epoch", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no checkpoint for epoch 3: {typo} does not exist" in err
    with pytest.raises(CheckpointError, match=f"no checkpoint for epoch 3: {re.escape(str(typo))} does not exist"):
        Trainer(tiny_cfg(typo, None), epoch=3)


@pytest.mark.parametrize("phase", ["train/..", "../data/val", ".", "/tmp"])
def test_a_phase_that_is_not_a_split_of_the_dataset_is_refused(run, data, tmp_path, monkeypatch, capsys, phase):
    # --phase ../data/val read data/val and wrote the results to <run>/results/../data/val, a folder in the run
    # beside its checkpoints; train/.. read the whole dataset, train and val as one split, into <run>/results
    # itself; '.' the same
    monkeypatch.chdir(data.parent)
    for command in ("sample", "interpolate", "evaluate"):
        assert main([command, str(run), "--phase", phase, "--device", "cpu", "--num", "2"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"bicyclegan {command}: ConfigError: phase={phase!r} is not a split of the dataset folder (a folder in "
            f"it: val, test): give the folder to read as dataroot (--dataroot)")
    assert not (run / "data").exists() and not {"index.html", "images", "path.json"} & {
        p.name for p in (run / "results").glob("*")}


def test_train_refuses_a_load_size_its_preprocess_does_not_use_as_sample_does(tmp_path, run, data, capsys):
    """train took --load_size under preprocess crop or none and changed nothing (every image as without it),
    where sample refused it. Refused when given on the command line, whichever gave the preprocess; a preset's
    or a resumed run's load_size is not (the demo preset's 32 under none, the tiny run's)."""
    unused = ("load_size={} changes nothing under preprocess={} ({}): only resize_and_crop, scale_width, "
              "scale_width_and_crop resize to it; give one of them as preprocess, or leave load_size out")
    out = tmp_path / "new"
    cases = [(["--dataroot", str(tmp_path), "--preprocess", "crop", "--load_size", "64"], (64, "crop", "as given")),
             (["--dataroot", str(tmp_path), "--preprocess", "none", "--load_size", "32"], (32, "none", "as given")),
             (["--load_size", "48"], (48, "none", "the demo preset's")),  # (no --dataroot: the demo preset)
             (["--preset", "reference", "--preprocess", "crop", "--load_size", "286"], (286, "crop", "as given")),
             (["--init_from", str(run), "--load_size", "32"], (32, "none", f"as in {run / 'config.json'}"))]
    for options, said in cases:
        for dry in ([], ["--dry-run"]):
            assert main(["train", "--out", str(out), *options, *dry, "--no-progress"]) == 2, options
            assert capsys.readouterr().err == f"bicyclegan train: ConfigError: {unused.format(*said)}\n"
    # the run's own folder resumed with it: the run's preprocess, named as its config.json's
    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
    assert main(["train", "--out", str(run), "--resume", "--load_size", "32", "--no-progress"]) == 2
    assert unused.format(32, "none", f"as in {run / 'config.json'}") in capsys.readouterr().err
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    assert not out.exists()
    # Taken where the preprocess uses it, and not refused where it was not given (the preset's, the run's own)
    # (the dry run checks the data: its 32 px images, a crop of 32)
    tiny = ["--dataroot", str(data), *[f"--{k}={v}" for k, v in TINY.items()]]
    for options, load_size in (([*tiny, "--preprocess", "scale_width", "--load_size", "64"], 64),
                               ([*tiny, "--preprocess", "crop"], 286),
                               (["--preprocess", "none"], 32),
                               ([], 32),
                               (["--init_from", str(run)], 32)):
        assert main(["train", "--out", str(out), *options, "--dry-run"]) == 0, options
        assert json.loads(capsys.readouterr().out)["data"]["load_size"] == load_size
    # crop_size is train's under every preprocess: it sizes the networks (here the depth of netG unet)
    assert main(["train", "--out", str(out), "--preprocess", "none", "--crop_size", "64", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["crop_size"] == 64


def _files(folder):
    """Every file and folder under `folder` with its modification time: what a dry run must leave as it was."""
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def _last_line(capsys):
    return capsys.readouterr().err.strip().splitlines()[-1]


def _refusal(capsys):
    """The refusal the command printed, all its lines (a list of bad files)."""
    err = capsys.readouterr().err
    return err[err.index("bicyclegan train: "):].strip()


def test_a_dry_run_refuses_the_resumes_the_run_refuses_with_its_words(tmp_path, run, data, capsys):
    """train --dry-run --resume printed the config of resumes the run then refused (another architecture,
    a max_steps below the checkpoint's step, a damaged checkpoint...): it runs the run's checks of the folder
    and of the checkpoint now, and refuses with the same line, writing nothing."""
    import shutil
    r = tmp_path / "r"
    shutil.copytree(run, r)
    ckpt = r / "checkpoints" / "latest.pt"
    shutil.copytree(run, tmp_path / "other")
    elsewhere = tmp_path / "other" / "checkpoints" / "latest.pt"  # (a run's: it takes that run's options)
    step0 = r / "checkpoints" / "step0.pt"  # (import-official's and download model's are at step 0)
    state = read_checkpoint(ckpt)
    save_checkpoint(BicycleGAN(tiny_cfg(r, "data")), step0)
    epochs = tmp_path / "epochs"  # a run that kept per-epoch checkpoints only
    shutil.copytree(run, epochs)
    (epochs / "checkpoints" / "latest.pt").rename(epochs / "checkpoints" / "epoch_1.pt")
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    state["step"] += 1  # the digest stays the one written with the original
    torch.save(state, damaged / "checkpoints" / "latest.pt")
    cases = {  # options: the start of the refusal (the rest: the run's own line, compared below)
        ("--out", str(r), "--resume", "--ngf", "8"):
            f"CheckpointError: checkpoint {ckpt} was written with another config; differences: model.ngf: "
            f"checkpoint 4 vs now 8 (a resumed run continues the same training",
        ("--out", str(r), "--resume", "--max_steps", "1"):
            "ConfigError: max_steps=1 is below the step the checkpoint reached (2): nothing to train",
        ("--out", str(r), "--resume", str(elsewhere)):
            f"CheckpointError: {r} already holds a run (latest.pt), and {elsewhere} is not one of its checkpoints",
        ("--resume", str(elsewhere), "--out", str(tmp_path / "new"), "--nz", "4"):  # (its run's options, but nz)
            f"CheckpointError: checkpoint {elsewhere} was written with another config; differences: model.nz: "
            f"checkpoint 8 vs now 4",
        ("--out", str(r), "--resume", str(step0)):  # a new run from its weights, into a folder holding a run
            f"CheckpointError: {r} already holds a run; continue it with --resume (no path), or start from {step0} "
            f"in a new --out",
        ("--out", str(r), "--epoch", "2"): f"CheckpointError: no checkpoint for epoch 2 in {r / 'checkpoints'}",
        ("--out", str(tmp_path / "none"), "--resume"):
            f"CheckpointError: --resume: no checkpoint at {tmp_path / 'none' / 'checkpoints' / 'latest.pt'}",
        # a path that is not there (a typo), into a folder holding a run (said to have stopped before its first
        # checkpoint: start it again in a new --out)
        ("--out", str(r), "--resume", str(tmp_path / "typo.pt")):
            f"CheckpointError: --resume: no checkpoint at {tmp_path / 'typo.pt'} (no such file; --resume with no "
            f"path continues the run in {r})",
        ("--out", str(epochs), "--resume", str(tmp_path / "typo.pt")):  # ("--epoch 1 with no path")
            f"CheckpointError: --resume: no checkpoint at {tmp_path / 'typo.pt'} (no such file; --epoch 1 continues "
            f"the run in {epochs})",
        # the run's own latest.pt named otherwise (through ..): said as --resume alone says it
        ("--out", str(epochs), "--resume", str(epochs / "checkpoints" / ".." / "checkpoints" / "latest.pt")):
            f"CheckpointError: --resume: no checkpoint at {epochs / 'checkpoints' / '..' / 'checkpoints' / 'latest.pt'}"
            f" (the run kept per-epoch checkpoints only: continue it with --epoch 1)",
        ("--out", str(damaged), "--resume"):
            f"CheckpointError: {damaged / 'checkpoints' / 'latest.pt'} is damaged: its contents do not match the "
            f"digest written with it",
        # a step-0 checkpoint lends its weights as --init_from does: its networks must be the run's (for a
        # checkpoint outside a run, the options it stores with those given)
        ("--out", str(tmp_path / "new"), "--resume", str(tmp_path / "step0.pt"), "--ngf", "16",
         "--dataroot", str(data)):
            f"CheckpointError: {tmp_path / 'step0.pt'} holds other networks than this run's: ngf: checkpoint 4 vs "
            f"now 16",
        ("--init_from", str(tmp_path / "other"), "--out", str(tmp_path / "new"), "--nz", "4"):  # and --init_from
            f"CheckpointError: {elsewhere} holds other networks than this run's: nz: checkpoint 8 vs now 4",
    }
    shutil.copy(step0, tmp_path / "step0.pt")
    before = {folder: _files(folder) for folder in (r, damaged)}
    for options, said in cases.items():
        assert main(["train", *options, "--dry-run"]) == 2, options
        dry = _last_line(capsys)
        assert dry.startswith(f"bicyclegan train: {said}"), (options, dry)
        assert {folder: _files(folder) for folder in (r, damaged)} == before, options
        assert not (tmp_path / "none").exists() and not (tmp_path / "new").exists()
        assert main(["train", *options, "--no-progress"]) == 2, options
        assert _last_line(capsys) == dry, options  # the run's own line, word for word
    assert not (tmp_path / "none").exists() and not (tmp_path / "new").exists()


def test_a_dry_run_refuses_what_the_run_refuses_of_its_data_machine_evaluations_and_lock(tmp_path, run, data,
                                                                                          capsys):
    """train --dry-run made the run's checks of its folder and checkpoint alone, and printed the config of runs that
    then refused before their first step: data missing, unreadable, too few for a batch, of sizes the U-Net cannot
    take or too short for max_steps; a device this machine lacks; evaluations that do not compare with the run's
    log or a best.pt kept by another measure; a folder another training holds. Each is refused as the run refuses
    it, word for word, and nothing is written (the check cache included)."""
    import fcntl
    import os
    import shutil
    flat = [f"--{k}={v}" for k, v in TINY.items()] + ["--batch_size", "4", "--preprocess", "none", "--niter", "1",
                                                     "--niter_decay", "1",
                                                     "--num_workers", "0", "--no-eval"]
    bad, big = tmp_path / "bad", tmp_path / "big"
    shutil.copytree(data, bad)
    (bad / "train" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    bad_grids = tmp_path / "bad_grids"  # the held-out split the sample grids are drawn from
    shutil.copytree(data, bad_grids)
    (bad_grids / "test" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    make_demo_dataset(big, n_train=4, n_test=2, size=48, seed=0)  # 48 px: not a multiple of the U-Net's 32
    only_val = tmp_path / "only_val"
    shutil.copytree(data / "test", only_val / "val")
    r = tmp_path / "r"
    shutil.copytree(run, r)
    logged = {"step": 2, "epoch": 1, "split": "test", "metrics": ["l1"], "n_inputs": 4, "n_samples": 1, "seed": 0}
    (r / "eval_log.jsonl").write_text(json.dumps(logged) + "\n")  # evaluations of l1 alone, of 4 inputs
    kept = tmp_path / "kept"
    shutil.copytree(run, kept)
    state = read_checkpoint(kept / "checkpoints" / "latest.pt")
    state["best"] = {"measure": "coverage", "value": 0.5, "step": 2}
    write_state(state, kept / "checkpoints" / "best.pt")  # a best.pt of the run's step, kept by coverage
    # past the step resumed from, which the run drops: evaluations of other metrics, a best.pt kept by coverage
    later = tmp_path / "later"
    shutil.copytree(run, later)
    (later / "eval_log.jsonl").write_text(json.dumps({**logged, "step": 5}) + "\n")
    write_state({**state, "step": 5}, later / "checkpoints" / "best.pt")
    held = tmp_path / "held"
    shutil.copytree(run, held)
    new = tmp_path / "new"
    cases = {  # options: the start of the refusal (the rest: the run's own line, compared below)
        ("--dataroot", str(tmp_path / "no")): f"DatasetError: dataset folder {tmp_path / 'no'} does not exist",
        ("--dataroot", str(only_val)): f"DatasetError: missing folder {only_val / 'train'}: training reads the pairs",
        ("--dataroot", str(bad)): f"DatasetError: 1 bad file(s) in {bad / 'train'}:",
        ("--dataroot", str(data), "--batch_size", "32"): "DatasetError: 16 samples fill no batch of batch_size=32",
        ("--dataroot", str(data), "--max_steps", "9"): "ConfigError: max_steps=9 runs past the learning-rate schedule",
        ("--dataroot", str(big)): "ConfigError: preprocess=none makes the training images 48x48",
        ("--dataroot", str(bad_grids)): f"DatasetError: 1 bad file(s) in {bad_grids / 'test'}:",
        ("--out", str(r), "--resume", "--dataroot", str(big)):
            f"CheckpointError: {r / 'checkpoints' / 'latest.pt'} was written with 4 batches per epoch, the data now "
            f"gives 1",
        ("--dataroot", str(data), "--device", "cpu", "--cuda_graph"):
            "ConfigError: cuda_graph=True captures the step on a CUDA device",
        ("--out", str(r), "--resume", "--eval_every", "1"):
            f"ConfigError: the run's evaluations so far ({r / 'eval_log.jsonl'}, up to step 2) measured metrics ['l1']",
        ("--out", str(kept), "--resume", "--eval_every", "1", "--keep_best", "encoded_l1"):
            "ConfigError: keep_best=encoded_l1, and the run's checkpoints/best.pt (step 2) was kept by coverage",
        ("--out", str(held), "--resume"): f"CheckpointError: {held} is in use by another training, still running",
        # a run folder the run cannot write (a file: the dry run passed it)
        ("--dataroot", str(data), "--out", str(tmp_path / "a_file")):
            f"OutputError: cannot write the run folder into {tmp_path / 'a_file'}: it is a file, not a folder",
    }
    (tmp_path / "a_file").write_text("")
    if not torch.cuda.is_available():
        cases[("--dataroot", str(data), "--device", "cuda")] = "ConfigError: device='cuda' but no CUDA GPU is available"
    folders = (r, kept, later, held, bad, bad_grids, big, data, only_val, Path(os.environ["BICYCLEGAN_CHECK_CACHE"]))
    lock = os.open(held / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (another open file: refused to this process as well)
        for options, said in cases.items():
            options = [*flat, "--out", str(new), *options]  # (the last --out given counts)
            before = {folder: _files(folder) for folder in folders}
            rc = 75 if "in use by another training" in said else 2  # (75: try again later, once it ends)
            assert main(["train", *options, "--dry-run"]) == rc, options
            dry = _refusal(capsys)
            assert dry.startswith(f"bicyclegan train: {said}"), (options, dry)
            assert {folder: _files(folder) for folder in folders} == before, options
            assert not new.exists()
            assert main(["train", *options, "--no-progress"]) == rc, options
            assert _refusal(capsys) == dry, options  # the run's own words
    finally:
        os.close(lock)
    # Unheld, with the run's own options, each dry run passes: a check that refused everything would not
    for options in (("--dataroot", str(data)), ("--out", str(held), "--resume"),
                    ("--out", str(kept), "--resume", "--eval_every", "1", "--keep_best", "coverage"),
                    # (latest.pt named: a plain --resume continues from the later best.pt, newest_beside)
                    ("--out", str(later), "--resume", str(later / "checkpoints" / "latest.pt"), "--eval_every", "1",
                     "--keep_best", "encoded_l1")):
        assert main(["train", *flat, "--out", str(new), *options, "--dry-run"]) == 0, options
        capsys.readouterr()
    assert not new.exists()
    # A Trainer of this process made for the folder and never trained gives a later run its place (a notebook
    # cell run again): the dry run is not refused by the lock it holds
    idle = Trainer(tiny_cfg(held, data, max_steps=4), resume=True, progress=False)
    assert main(["train", *flat, "--out", str(held), "--resume", "--dry-run"]) == 0
    del idle


def test_a_start_with_two_problems_is_refused_for_the_same_one_by_the_dry_run_and_the_run(tmp_path, run, data, capsys):
    """The dry run judged the checkpoint resumed before the data's files, and whether another training holds the run
    folder before what the folder is; the run the other way round: a start with a problem of each was refused by
    the two for different reasons. Both now go through the checks in one order."""
    import fcntl
    import os
    import shutil
    flat = [f"--{k}={v}" for k, v in TINY.items()] + ["--batch_size", "4", "--preprocess", "none", "--niter", "1",
                                                     "--niter_decay", "1", "--num_workers", "0", "--no-eval"]
    bad = tmp_path / "bad"  # a training file broken
    shutil.copytree(data, bad)
    (bad / "train" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    damaged, short = tmp_path / "damaged", tmp_path / "short"
    shutil.copytree(run, damaged)
    shutil.copytree(run, short)
    state = read_checkpoint(damaged / "checkpoints" / "latest.pt")
    state["step"] += 1  # the digest stays the one written with the original
    torch.save(state, damaged / "checkpoints" / "latest.pt")
    held = tmp_path / "held"  # an --out that holds a dataset, and a lock another training holds
    shutil.copytree(data, held)
    cases = {  # options: the start of the refusal, the exit code
        ("--out", str(damaged), "--resume", "--dataroot", str(bad)):
            (f"CheckpointError: {damaged / 'checkpoints' / 'latest.pt'} is damaged: its contents do not match", 2),
        ("--out", str(short), "--resume", "--max_steps", "1", "--dataroot", str(bad)):
            ("ConfigError: max_steps=1 is below the step the checkpoint reached (2): nothing to train", 2),
        ("--out", str(held), "--dataroot", str(data)):
            (f"OutputError: --out {held} holds a dataset (train/, test/), not a run", 2),
    }
    lock = os.open(held / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for options, (said, rc) in cases.items():
            assert main(["train", *flat, *options, "--dry-run"]) == rc, options
            dry = _refusal(capsys)
            assert dry.startswith(f"bicyclegan train: {said}"), (options, dry)
            assert main(["train", *flat, *options, "--no-progress"]) == rc, options
            assert _refusal(capsys) == dry, options
    finally:
        os.close(lock)


def test_a_dry_run_of_a_valid_resume_prints_the_runs_config_and_writes_nothing(tmp_path, run, data, capsys):
    import shutil
    before = _files(run)
    assert main(["train", "--out", str(run), "--resume", "--max_steps", "4", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert _files(run) == before
    assert printed["max_steps"] == 4 and printed["model"]["ngf"] == 4 and printed["out"] == str(run)
    # The config the run then writes: the printed one (its init_from and fresh_D, the checkpoint's)
    r = tmp_path / "r"
    shutil.copytree(run, r)
    assert main(["train", "--out", str(r), "--resume", "--max_steps", "4", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert main(["train", "--out", str(r), "--resume", "--max_steps", "4", "--no-progress"]) == 0
    assert json.loads((r / "config.json").read_text()) == printed
    capsys.readouterr()
    # A step-0 checkpoint starts a new run from its weights: init_from is that file, in the printed config too
    step0 = save_checkpoint(BicycleGAN(tiny_cfg(r, data)), tmp_path / "step0.pt")
    new = tmp_path / "new"
    options = ["--out", str(new), "--resume", str(step0), "--dataroot", str(data), *[f"--{k}={v}" for k, v in
               TINY.items()], "--batch_size", "4", "--preprocess", "none", "--num_workers", "0", "--max_steps", "1"]
    assert main(["train", *options, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert not new.exists()
    assert (printed["init_from"], printed["fresh_D"]) == (str(step0.resolve()), False)
    assert main(["train", *options, "--no-progress", "--no-eval"]) == 0
    written = json.loads((new / "config.json").read_text())
    assert written["data"].pop("dataroot") == str(data.resolve()) and printed["data"].pop("dataroot") == str(data)
    assert written == printed


def test_a_dry_run_says_the_data_line_of_the_run_and_its_held_out_split(tmp_path, data, capsys):
    # It printed the config alone: the count of samples and batches an epoch, and that the grids and evaluations
    # would read the training data for want of a val/ or test/ split, came with the run alone.
    tiny = [*[f"--{k}={v}" for k, v in TINY.items()], "--batch_size", "6", "--preprocess", "none", "--num_workers",
            "0", "--backend", "torch", "--max_steps", "2"]
    no_val = make_demo_dataset(tmp_path / "no_val", n_train=8, n_test=0, size=32, seed=0)
    for root, split in ((data, f"held-out split: {data / 'test'}, for the sample grids and the evaluations"),
                        (no_val, f"the sample grids and the evaluations use the training split: {no_val} has no "
                                 f"val/ or test/ folder; a val/ folder beside train/, of the same layout, gives them "
                                 f"held-out images")):
        n = 16 if root == data else 8
        batches, left = divmod(n, 6)  # (16 samples: 2 batches of 6, 4 left out; 8: 1 batch, 2 left out)
        assert main(["train", "--out", str(tmp_path / "r"), "--dataroot", str(root), *tiny, "--eval_every", "2",
                     "--dry-run"]) == 0
        err = capsys.readouterr().err.splitlines()
        assert err == [f"data: {n} samples, {batches} {'batch' if batches == 1 else 'batches'} an epoch ({left} left "
                       f"out each epoch, the end of its shuffled order: batches are whole); torch loader, 0 workers",
                       split]
    assert not (tmp_path / "r").exists()
    assert main(["train", "--out", str(tmp_path / "r"), "--dataroot", str(no_val), *tiny, "--no-progress"]) == 0
    assert err[0] in capsys.readouterr().err.splitlines()  # the run's own line


def test_an_out_that_holds_a_dataset_or_other_runs_or_a_page_is_refused(tmp_path):
    # `--out runs/$name` with $name empty trained into the runs' parent, beside them; `for d in runs/*/; do ...
    # --resume auto` started a training inside the demo's data kept beside the runs
    data = make_demo_dataset(tmp_path / "runs" / "demo_data", n_train=4, n_test=2, size=32, seed=0)
    (tmp_path / "runs" / "a" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "config.json").write_text("{}")
    there = sorted(os.listdir(data))
    with pytest.raises(OutputError) as e:
        Trainer(tiny_cfg(data, data), resume="auto", progress=False)
    assert str(e.value) == (f"--out {data} holds a dataset (train/, test/), not a run: give the run a folder of its "
                            f"own, e.g. {tmp_path / 'runs' / 'runs' / 'demo_data'}")
    with pytest.raises(OutputError) as e:
        Trainer(tiny_cfg(tmp_path / "runs", data), progress=False)
    assert str(e.value) == (f"--out {tmp_path / 'runs'} holds other runs (a, b), not a run of its own: give the run a "
                            f"folder of its own, e.g. {tmp_path / 'runs' / 'new-run'}")
    assert sorted(os.listdir(tmp_path / "runs")) == ["a", "b", "demo_data"]  # nothing made there (no lock file)
    with pytest.raises(OutputError, match="holds other runs"):  # a dry run's checks are the run's (it said 0)
        check_start(tiny_cfg(tmp_path / "runs", data))
    assert sorted(os.listdir(data)) == there
    Trainer(tiny_cfg(tmp_path / "runs" / "c", data), progress=False)._release()  # a folder of its own: taken
    # a page of the user's own named report.html, with no run beside it: the run's page replaced it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.html").write_text("<p>my notes</p>")
    for start in (lambda: Trainer(tiny_cfg(tmp_path / "mine", data), progress=False),
                  lambda: check_start(tiny_cfg(tmp_path / "mine", data))):
        with pytest.raises(OutputError) as e:
            start()
        assert str(e.value) == (f"--out {tmp_path / 'mine'} holds a report.html of no run there (no config.json, "
                                f"log.jsonl or checkpoints/), which the run's page would replace: give the run a "
                                f"folder of its own, or move the file away")
    assert os.listdir(tmp_path / "mine") == ["report.html"]
    assert (tmp_path / "mine" / "report.html").read_text() == "<p>my notes</p>"


@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_a_second_sample_or_interpolate_into_a_folder_being_written_is_refused(run, data, tmp_path, capsys, command):
    from bicyclegan.engine.io import held_folder
    out = tmp_path / "o"
    with held_folder(out, command):
        said = (out / ".writing").read_text()
        assert main([command, str(run / "checkpoints" / "latest.pt"), "--dataroot", str(data), "--num", "1",
                     "--out", str(out)]) == 75  # (try again later: free once the other ends)
        assert capsys.readouterr().err == (f"bicyclegan {command}: OutputError: {out} is being written by another "
                                           f"{said}; give this {command} a folder of its own (--out)\n")
    assert main([command, str(run / "checkpoints" / "latest.pt"), "--dataroot", str(data), "--num", "1",
                 "--out", str(out)]) == 0
    assert ".writing" not in os.listdir(out)


def test_a_folder_holding_a_run_says_how_to_continue_it_in_python_too(source, data, tmp_path):
    # Python callers were told the command line's "pass --resume" alone
    run = tmp_path / "r"
    shutil.copytree(source, run)
    with pytest.raises(CheckpointError, match=r"already holds a run \(latest.pt\); pass --resume \(resume=True in "
                                              r"Python\) to continue it or choose another --out"):
        Trainer(tiny_cfg(run, data), progress=False)
    (run / "checkpoints" / "latest.pt").unlink()  # per-epoch checkpoints only
    with pytest.raises(CheckpointError, match=r"pass --epoch 2 \(resume=True, epoch=2 in Python\) to continue it"):
        Trainer(tiny_cfg(run, data), progress=False)
