"""What a careless user or an attacker can do to the engine: unsafe or damaged checkpoints,
diverging runs, bad option values, unwritable destinations, interrupted saves, changed data.
Each case must end in the project's own one-line error (exit 2 from the CLI) with nothing good lost."""
import contextlib
import copy
import dataclasses
import errno
import hashlib
import importlib
import json
import math
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import BROKEN_PNG, TINY, break_at_step, tiny_cfg

from bicyclegan.engine import (
    BicycleGAN,
    CheckpointError,
    ConfigError,
    DataConfig,
    DivergenceError,
    ModelConfig,
    OutputError,
    TrainConfig,
    build_generator,
    evaluate,
    export_generator,
    io,
    make_config,
)
from bicyclegan.engine.checkpoint import (
    FORMAT,
    check_compatible,
    check_same_networks,
    check_weights_fit,
    config_of,
    digest,
    find_checkpoint,
    load_checkpoint,
    newest_beside,
    peek_checkpoint,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_state,
)
from bicyclegan.engine.cli import main
from bicyclegan.engine.official import load_official_into
from bicyclegan.engine.runtime import results_dir
from bicyclegan.engine.trainer import LOCK_FILE, Trainer
from bicyclegan.pipelines import DatasetError, atomic, make_demo_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=4, size=32, seed=0)


def cfg(out, root, **kw):
    return tiny_cfg(out, root, **{"sample_every": 100, "save_every": 2, **kw})


def tiny_model():
    return BicycleGAN(TrainConfig(model=ModelConfig(**TINY)))


# -- checkpoints never run code -------------------------------------------------------------------
class Payload:
    """Unpickling this calls os.system: a file holding it must be refused before that happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "config": {}, "x": Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="could run code"):
        read_checkpoint(evil)
    torch.save({"w": Payload(marker)}, tmp_path / "evil_G.pth")
    with pytest.raises(CheckpointError, match="could run code"):
        load_official_into(tiny_model().G, tmp_path / "evil_G.pth")
    for argv in (["sample", str(evil), "--out", str(tmp_path / "s")], ["evaluate", str(evil)],
                 ["export", "--checkpoint", str(evil), "--out", str(tmp_path / "g.pt2")]):
        assert main(argv) == 2
    assert not marker.exists()


def test_resume_from_a_payload_is_refused(tmp_path, data, capsys):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"format": FORMAT, "x": Payload(marker)}, run / "checkpoints" / "latest.pt")
    argv = ["train", "--dataroot", str(data), "--out", str(run), "--resume", "--no-progress",
            *[f"--{k}={v}" for k, v in TINY.items()], "--load_size", "32", "--batch_size", "4"]
    assert main(argv) == 2
    assert "could run code" in capsys.readouterr().err and not marker.exists()


# -- integrity ------------------------------------------------------------------------------------
def _flip_byte_in_largest_tensor(path):
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        pos = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))


def test_flipped_bytes_in_tensor_data_are_detected(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(tiny_model(), path, step=3)
    assert read_checkpoint(path)["step"] == 3
    _flip_byte_in_largest_tensor(path)
    torch.load(path, weights_only=True)  # torch itself does not notice ...
    with pytest.raises(CheckpointError, match="damaged"):  # ... the digest does
        load_checkpoint(path)


@pytest.mark.parametrize("drop", ["config", "digest", "nets"])
def test_a_checkpoint_missing_a_part_is_named(tmp_path, drop):
    path = tmp_path / "ck.pt"
    save_checkpoint(tiny_model(), path)
    state = torch.load(path, weights_only=True)
    del state[drop]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=f"incomplete: '{drop}'"):
        read_checkpoint(path)


def test_garbage_and_truncated_files_are_unreadable(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a torch file, so no checkpoint"):
        read_checkpoint(tmp_path / "g.pt")
    save_checkpoint(tiny_model(), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(tmp_path / "t.pt")


# -- the checkpoint format, part by part ----------------------------------------------------------
def refused(make, error, message):
    with pytest.raises(error) as e:
        make()
    assert str(e.value) == message


def test_the_digest_is_sha256_of_a_fixed_encoding():
    """Pinned: every checkpoint ever written is checked against it. Tensors by dtype, shape and
    bytes; dicts by length, then keys in repr order; lists and tuples by length; the rest by repr."""
    state = {"step": 3, "format": "f", "digest": "not hashed", "nets": {"w": torch.tensor([1, -2], dtype=torch.int16)},
             "rng": [1.5, "a", (2,)]}
    encoded = (b"D4" + b"V'format'V'f'" + b"V'nets'D1V'w'Ttorch.int16(2,)\x01\x00\xfe\xff"
               + b"V'rng'L3V1.5V'a'L1V2" + b"V'step'V3")
    assert digest(state) == hashlib.sha256(encoded).hexdigest()


def _tamper(state, change):
    G = state["nets"]["G"]
    k = next(k for k, v in G.items() if v.dim() > 1)
    if change == "tensor value":
        G[k] = G[k].clone()
        G[k].view(-1)[0] += 1
    elif change == "tensor dtype":
        G[k] = G[k].double()
    elif change == "tensor shape":
        G[k] = G[k].reshape(-1)
    elif change == "renamed key":
        G["renamed"] = G.pop(k)
    elif change == "item of a list":
        state["optimizers"]["G"]["param_groups"][0]["params"][5] += 1
    elif change == "string":
        state["config"]["variant"] = "cvae"
    elif change == "int for float":
        state["config"]["lambda_L1"] = 10
    elif change == "number":
        state["step"] += 1
    elif change == "added entry":
        state["note"] = ""


@pytest.mark.parametrize("change", ["nothing", "tensor value", "tensor dtype", "tensor shape", "renamed key",
                                    "item of a list", "string", "int for float", "number", "added entry"])
def test_any_change_to_a_written_checkpoint_is_detected(tmp_path, change):
    path = tmp_path / "ck.pt"
    save_checkpoint(tiny_model(), path, step=3)
    state = torch.load(path, weights_only=True)
    _tamper(state, change)
    torch.save(state, path)  # the digest stays the one written with the original
    if change == "nothing":
        assert read_checkpoint(path)["step"] == 3
    else:
        refused(lambda: read_checkpoint(path), CheckpointError,
                f"{path} is damaged: its contents do not match the digest written with it (changed or corrupted "
                f"bytes); use another checkpoint")


@pytest.mark.parametrize("content", [{"model.0.weight": torch.zeros(2)}, [1, 2], torch.zeros(2)])
def test_files_that_are_not_bicyclegan_checkpoints_are_named(tmp_path, content):
    torch.save(content, tmp_path / "G.pth")
    refused(lambda: read_checkpoint(tmp_path / "G.pth"), CheckpointError,
            f"{tmp_path / 'G.pth'} is not a bicyclegan checkpoint (no format marker); for the reference's "
            f"*_net_G.pth files use import-official")


@pytest.mark.parametrize("fmt", ["bicyclegan-checkpoint-v3", 2])
def test_other_formats_are_named(tmp_path, fmt):
    path = tmp_path / "ck.pt"
    torch.save({"format": fmt, "nets": {}}, path)
    refused(lambda: read_checkpoint(path), CheckpointError,
            f"{path} has format {fmt!r}; this version reads bicyclegan-checkpoint-v2")


@pytest.mark.parametrize("numpy_state", [False, True])
def test_a_checkpoint_of_the_older_format_is_said_as_such(tmp_path, numpy_state):
    # v1 files kept numpy's random state as arrays, which the weights-only loader refuses: they were said to
    # "hold objects other than tensors ..., which could run code", and a resume advised deleting the run
    path = tmp_path / "ck.pt"
    torch.save({"format": "bicyclegan-checkpoint-v1", "nets": {},
                **({"rng": {"numpy": np.random.get_state()}} if numpy_state else {})}, path)
    refused(lambda: read_checkpoint(path), CheckpointError,
            f"{path} is a checkpoint of an older bicyclegan format (bicyclegan-checkpoint-v1, written before "
            f"2026-11-30), which this version does not read: use it with the version that wrote it, or start a new "
            f"run")


def older_run(tmp_path, numpy_state=True):
    """A run folder as a version before 2026-11-30 left it: its config's flat fields, a v1 checkpoint."""
    run = tmp_path / "old"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataroot": "data", "backend": "torch", "ngf": 8, "niter": 1}))
    torch.save({"format": "bicyclegan-checkpoint-v1", "nets": {}, "step": 3,
                **({"rng": {"numpy": np.random.get_state()}} if numpy_state else {})},
               run / "checkpoints" / "latest.pt")
    return run


@pytest.mark.parametrize("numpy_state", [False, True])
def test_a_checkpoint_of_the_older_format_is_kept_from_every_output(tmp_path, capsys, numpy_state):
    # is_checkpoint took a v1 file for something else: evaluate --json, export --out and import-official --out
    # replaced the file whose refusal says to keep it for the version that wrote it
    from bicyclegan.engine.checkpoint import is_checkpoint, peek_checkpoint
    old = older_run(tmp_path, numpy_state) / "checkpoints" / "latest.pt"
    kept = old.read_bytes()
    assert is_checkpoint(old)
    refused(lambda: peek_checkpoint(old, "step"), CheckpointError,  # (evaluate --epoch all said "cannot be read")
            f"{old} is a checkpoint of an older bicyclegan format (bicyclegan-checkpoint-v1, written before "
            f"2026-11-30), which this version does not read: use it with the version that wrote it, or start a new "
            f"run")
    ckpt = save_checkpoint(tiny_model(), tmp_path / "m.pt")
    assert main(["evaluate", str(ckpt), "--num", "1", "--json", str(old)]) == 2
    assert main(["export", str(ckpt), "--out", str(old), "--format", "pt2"]) == 2
    assert capsys.readouterr().err.count("is a bicyclegan checkpoint") == 2
    torch.save(build_generator(ModelConfig(**TINY)).state_dict(), tmp_path / "G.pth")
    assert main(["import-official", "--G", str(tmp_path / "G.pth"), *[f"--{k}={v}" for k, v in TINY.items()],
                 "--out", str(old)]) == 2
    assert (f"--out {old} is a checkpoint of an older bicyclegan format, which the import would replace; give "
            f"another file to write, e.g. {old.with_name('imported.pt')} (or remove it first, if it is an earlier "
            f"import of these files)") in capsys.readouterr().err
    assert old.read_bytes() == kept


def test_a_run_of_an_older_version_is_said_as_such_and_kept(tmp_path, capsys):
    # Its resume said "unknown TrainConfig fields: ... give the run's options again together with --preset", which
    # led to "... or delete it first"; a new run there "pass --resume to continue it", which cannot
    run = older_run(tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    said = (f"{run} is a run of an older bicyclegan version (its checkpoints, e.g. latest.pt, are of a format "
            f"written before 2026-11-30), which this version neither continues nor starts from: use it with the "
            f"version that wrote it")
    for args in (["--resume"], ["--resume", "auto"], [], ["--resume", "--preset", "reference", "--ngf", "8"]):
        assert main(["train", "--out", str(run), *args, "--no-progress"]) == 2, args
        assert said + ", or start a new run in another --out" in capsys.readouterr().err, args
    # a new run from its weights: in another --out already
    assert main(["train", "--init_from", str(run), "--out", str(tmp_path / "new"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert said in err and "another --out" not in err and not (tmp_path / "new").exists()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_run_of_epoch_checkpoints_only_is_told_by_its_first_that_opens(tmp_path, monkeypatch):
    # Every start opened every epoch file of such a run (2,000 files: 48 s of a dry run) to say it was no older one
    from bicyclegan.engine import checkpoint as checkpoint_module
    folder = tmp_path / "r" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "epoch_9.pt").write_bytes(b"damaged")
    for n in range(1, 6):
        save_checkpoint(tiny_model(), folder / f"epoch_{n}.pt")
    opened, real = [], checkpoint_module.peek_checkpoint
    monkeypatch.setattr(checkpoint_module, "peek_checkpoint", lambda path, *k: opened.append(path.name) or real(path))
    assert checkpoint_module.older_run(tmp_path / "r") is None
    assert opened == ["epoch_9.pt", "epoch_5.pt"]  # (latest.pt is not there; the newest, damaged, told nothing)
    # an older run whose latest.pt is damaged: told by its epoch files (it was "pass --resume to continue it")
    old = older_run(tmp_path / "o") / "checkpoints"
    shutil.copy(old / "latest.pt", old / "epoch_1.pt")
    (old / "latest.pt").write_bytes(b"truncated")
    assert "is a run of an older bicyclegan version (its checkpoints, e.g. epoch_1.pt" in str(
        checkpoint_module.older_run(old.parent))


def test_a_runs_own_checkpoints_decide_its_format_not_a_file_copied_in(tmp_path, data, capsys):
    # An older-format file copied into a current run's checkpoints/ made the whole run "of an older version": its
    # resume was refused. Resumed from that file (named as an epoch's), the refusal said to delete the run.
    run = tmp_path / "r"
    Trainer(tiny_cfg(run, data, max_steps=2, save_every=2, sample_every=100), progress=False).train()
    old = older_run(tmp_path) / "checkpoints" / "latest.pt"
    shutil.copy(old, run / "checkpoints" / "from_old_version.pt")
    assert main(["train", "--out", str(run), "--resume", "--max_steps", "3", "--dry-run"]) == 0
    shutil.copy(old, run / "checkpoints" / "epoch_1.pt")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epoch", "1", "--max_steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "epoch_1.pt is a checkpoint of an older bicyclegan format" in err and "delete" not in err
    assert (run / "checkpoints" / "latest.pt").is_file()


@pytest.mark.parametrize("key,value,typ", [("digest", None, "str"), ("config", [], "dict"), ("step", 3.0, "int"),
                                           ("epoch", "1", "int"), ("nets", [], "dict")])
def test_a_part_of_the_wrong_type_is_named(tmp_path, key, value, typ):
    path = tmp_path / "ck.pt"
    save_checkpoint(tiny_model(), path)
    state = torch.load(path, weights_only=True)
    state[key] = value
    torch.save(state, path)
    refused(lambda: read_checkpoint(path), CheckpointError,
            f"{path} is incomplete: '{key}' is missing or not a {typ}")


def test_a_checkpoint_holds_step_epoch_config_and_extras(tmp_path):
    model = tiny_model()
    save_checkpoint(model, tmp_path / "a.pt")
    state = read_checkpoint(tmp_path / "a.pt")
    assert (state["format"], state["step"], state["epoch"]) == ("bicyclegan-checkpoint-v2", 0, 0)
    assert state["config"]["model"]["ngf"] == 4 and state["config"]["variant"] == "bicycle"
    assert set(state["nets"]) == set(state["optimizers"]) == {"G", "E", "D", "D2"}
    save_checkpoint(model, tmp_path / "b.pt", step=7, epoch=2, own={"steps_per_epoch": 4})
    state = read_checkpoint(tmp_path / "b.pt")
    assert (state["step"], state["epoch"], state["steps_per_epoch"]) == (7, 2, 4)
    with pytest.raises(TypeError):  # step and epoch by name only: they are easily swapped
        save_checkpoint(model, tmp_path / "c.pt", 7)


def test_inference_loads_g_and_e_and_training_everything(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1)  # not what a fresh model of this config would hold
    save_checkpoint(model, tmp_path / "ck.pt")
    inference, training = load_checkpoint(tmp_path / "ck.pt"), load_checkpoint(tmp_path / "ck.pt", training=True)
    assert set(inference.networks()) == {"G", "E"} and inference.optimizers == {}
    assert set(training.networks()) == {"G", "E", "D", "D2"} and set(training.optimizers) == {"G", "E", "D", "D2"}
    for name, net in model.networks().items():
        for loaded in (training, inference) if name in ("G", "E") else (training,):
            for a, b in zip(net.state_dict().values(), loaded.networks()[name].state_dict().values()):
                assert torch.equal(a, b), name


def test_a_model_loaded_for_inference_is_in_eval_mode(tmp_path):
    # model.generate() from Python (the README's API) ran dropout and moved BatchNorm's running
    # statistics: two calls with one z drew two outputs, and the model itself changed.
    cfg = TrainConfig(model=ModelConfig(**{**TINY, "use_dropout": True, "norm": "batch"}))
    save_checkpoint(BicycleGAN(cfg), tmp_path / "ck.pt")
    model = load_checkpoint(tmp_path / "ck.pt")
    assert not any(m.training for m in model.modules())
    A, z = torch.rand(2, 3, TINY["crop_size"], TINY["crop_size"]) * 2 - 1, torch.randn(2, model.cfg.model.nz)
    before = copy.deepcopy(model.G.state_dict())
    assert torch.equal(model.generate(A, z), model.generate(A, z))
    assert all(torch.equal(v, model.G.state_dict()[k]) for k, v in before.items())
    assert load_checkpoint(tmp_path / "ck.pt", training=True).training  # resuming trains on


def test_only_impl_and_channels_last_may_be_overridden_at_load(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "ck.pt")
    model = load_checkpoint(tmp_path / "ck.pt", impl="auto", channels_last=True)
    assert (model.cfg.model.impl, model.cfg.model.channels_last, model.cfg.model.ngf) == ("auto", True, 4)
    refused(lambda: load_checkpoint(tmp_path / "ck.pt", impl="ref", ngf=8), ConfigError,
            "load_checkpoint: ngf changes the networks; only channels_last, impl may be overridden")


def test_a_model_trained_with_triton_kernels_samples_where_they_cannot_run(tmp_path, monkeypatch):
    # --impl triton on a GPU, then sample/evaluate on a CPU machine: every forward raised there.
    save_checkpoint(BicycleGAN(TrainConfig(model=ModelConfig(**{**TINY, "impl": "triton"}))), tmp_path / "ck.pt")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # a plain CPU machine, not the tests' interpreter
    model = load_checkpoint(tmp_path / "ck.pt")
    assert model.cfg.model.impl == "auto"
    assert model.generate(torch.zeros(1, 3, TINY["crop_size"], TINY["crop_size"])).shape[0] == 1
    # Asked for by name, or for training (whose runner refuses it with advice), it stays.
    assert load_checkpoint(tmp_path / "ck.pt", impl="triton").cfg.model.impl == "triton"
    assert load_checkpoint(tmp_path / "ck.pt", training=True).cfg.model.impl == "triton"
    # Where the kernels can run (here: Triton's interpreter) it stays too.
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from bicyclegan.kernels._impl import triton_available
    if triton_available():
        assert load_checkpoint(tmp_path / "ck.pt").cfg.model.impl == "triton"


def test_load_checkpoint_takes_a_run_folder_as_the_commands_do(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "run" / "checkpoints" / "latest.pt", step=7)
    assert load_checkpoint(tmp_path / "run").cfg.model.ngf == TINY["ngf"]
    # read_checkpoint too (it said "checkpoint .../run does not exist" of the folder that was there)
    assert read_checkpoint(tmp_path / "run")["step"] == 7 and read_checkpoint(str(tmp_path / "run"))["step"] == 7
    (tmp_path / "data").mkdir()
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'data'} is not a run folder"):
        read_checkpoint(tmp_path / "data")
    # and the results go where the command puts them: into the run, not ./results/run
    assert results_dir(tmp_path / "run", "test") == (tmp_path / "run" / "results" / "test").resolve()


def tampered(model, path, **entries):
    """A checkpoint of `model` whose `entries` replace its own (written whole, its digest made anew)."""
    save_checkpoint(model, path)
    return write_state({**read_checkpoint(path), **entries}, path)


def test_weights_that_do_not_fit_their_own_config_are_named(tmp_path, monkeypatch):
    model = tiny_model()
    state = model.training_state()
    wide = BicycleGAN(TrainConfig(model=ModelConfig(**{**TINY, "ngf": 8})), training=False).G.state_dict()
    # (G's first conv: ngf outputs from A's 3 channels and z's 8, 4 x 4)
    cases = [({"nets": {**state["nets"], "G": wide}}, False, "G.model.down.weight is (8, 11, 4, 4) where its config "
              "builds (4, 11, 4, 4)"),
             ({"nets": {k: v for k, v in state["nets"].items() if k != "E"}}, False, "checkpoint lacks networks ['E']"),
             ({"nets": {**state["nets"], "D2": {}}}, True, "D2.scales.0.0.weight is missing where its config builds "
              "(4, 3, 4, 4)"),  # (D2's first conv: ndf outputs from B's 3 channels)
             ({"optimizers": {**state["optimizers"], "D": {"state": {}}}}, True, "'param_groups'")]
    for i, (extra, training, why) in enumerate(cases):
        path = tmp_path / f"{i}.pt"
        tampered(model, path, **extra)
        refused(lambda: load_checkpoint(path, training=training), CheckpointError,
                f"{path}: its weights do not fit its own config: {why}")
    # Before anything is built: a 3 KB file whose config says ngf 1024 and which holds no weights took 18 GB
    state = read_checkpoint(path)
    state["config"]["model"].update(ngf=1024, nef=1024)
    huge = tmp_path / "huge.pt"
    tampered(model, huge, nets={}, config=state["config"])
    monkeypatch.setattr(BicycleGAN, "__init__", lambda *a, **k: pytest.fail("a model was built"))
    for training, nets in ((False, "['E', 'G']"), (True, "['D', 'D2', 'E', 'G']")):
        refused(lambda: load_checkpoint(huge, training=training), CheckpointError,
                f"{huge}: its weights do not fit its own config: checkpoint lacks networks {nets}")
    # export, which builds G alone: the same check first (G was built whole, then a KeyError's traceback)
    export_mod = importlib.import_module("bicyclegan.engine.export")
    monkeypatch.setattr(export_mod, "build_generator", lambda *a: pytest.fail("G was built"))
    refused(lambda: export_mod.export_generator(huge, tmp_path / "g.pt2"), CheckpointError,
            f"{huge}: its weights do not fit its own config: checkpoint lacks networks ['G']")
    # Weights of the right shapes stored expanded (stride 0, a value each): 31 KB of them built a 267 M-parameter
    # model (the digest's read made each whole first)
    state = read_checkpoint(tmp_path / "3.pt")  # (its networks whole)
    state["nets"]["E"]["fc.weight"] = torch.zeros(()).expand(state["nets"]["E"]["fc.weight"].shape)
    expanded = write_state(state, tmp_path / "expanded.pt")
    refused(lambda: read_checkpoint(expanded), CheckpointError, f"{expanded} is damaged: its tensor nets.E.fc.weight "
            f"holds fewer values than its shape (stored expanded, as no checkpoint of ours is); use another checkpoint")
    with pytest.raises(CheckpointError, match=r"its tensor E.fc.weight holds fewer values than its shape"):
        check_weights_fit(state, config_of(state, expanded), False, expanded)


def test_a_resume_checks_its_checkpoints_weights_before_the_model_is_built(tmp_path, data, monkeypatch):
    # A run folder someone gave you, its config and checkpoint saying ngf 1024 and holding no weights, was built
    # whole (18 GB) before the resume read that it held none.
    run = tmp_path / "run"
    Trainer(cfg(run, data, max_steps=2), progress=False).train()
    state = read_checkpoint(run / "checkpoints" / "latest.pt")
    state["nets"] = {}
    write_state(state, run / "checkpoints" / "latest.pt")
    trainer_mod = importlib.import_module("bicyclegan.engine.trainer")
    monkeypatch.setattr(trainer_mod.BicycleGAN, "__init__", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(CheckpointError, match=r"latest.pt: its weights do not fit its own config: checkpoint lacks "
                                              r"networks \['G'\]"):
        Trainer(cfg(run, data, max_steps=4), resume=True, progress=False)


@pytest.mark.parametrize("config,why", [
    ({"lr": -1.0}, "lr=-1.0 must be a finite number > 0 and < 1"),
    ({"model": {1: 8}}, "sequence item 0: expected str instance, int found"),  # a key that is no field name
])
def test_a_stored_config_this_version_cannot_use_is_named(tmp_path, config, why):
    model = tiny_model()
    path = tmp_path / "ck.pt"
    tampered(model, path, config={**model.cfg.to_dict(), **config})
    refused(lambda: load_checkpoint(path), CheckpointError,
            f"{path}: its stored config is not valid for this version: {why}")


def test_resuming_may_change_run_options_but_not_objective_data_or_networks(tmp_path):
    saved = tiny_cfg(tmp_path / "a", tmp_path / "data").to_dict()
    check_compatible(saved, tiny_cfg(
        tmp_path / "b", tmp_path / "other", niter=5, niter_decay=7, max_steps=9, log_every=2, sample_every=4,
        save_every=6, save_epoch_freq=1, device="cpu", n_samples=3, cuda_graph=True, compile="default",
        num_workers=2, backend="auto", skip_bad=True, max_pixels=10 ** 6, impl="auto", channels_last=True,
        eval_every=3, eval_metrics="l1", eval_num=4, eval_samples=2, keep_best="encoded_l1", lpips_backbone="a.pth",
        lpips_linear="b.pth", fid_weights="c.pth"), "ck.pt")
    refused(lambda: check_compatible(saved, tiny_cfg(tmp_path / "a", tmp_path / "data", lr=1e-3, load_size=40, ngf=8,
                                                     niter=3), "ck.pt"), CheckpointError,
            "checkpoint ck.pt was written with another config; differences: lr: checkpoint 0.0002 vs now 0.001; "
            "data.load_size: checkpoint 32 vs now 40; model.ngf: checkpoint 4 vs now 8 (a resumed run continues "
            "the same training: only backend, channels_last, compile, cuda_graph, dataroot, device, eval_every, "
            "eval_metrics, eval_num, eval_samples, fid_weights, impl, keep_best, keep_grids, log_every, "
            "lpips_backbone, lpips_linear, max_pixels, max_steps, n_samples, niter, niter_decay, num_workers, out, "
            "sample_every, save_epoch_freq, save_every, skip_bad may change; "
            "for others, start a new run from its weights with --init_from)")
    older = {k: v for k, v in saved.items() if k != "data"}  # a part missing: read as its defaults (from_dict)
    with pytest.raises(CheckpointError, match=r"differences: data\.load_size: checkpoint 286 vs now 32; "
                                              r"data\.preprocess: checkpoint 'resize_and_crop' vs now 'none' \("):
        check_compatible(older, tiny_cfg(tmp_path / "a", tmp_path / "data"), "ck.pt")


def test_resuming_keeps_sync_bn_as_the_run_had_it(tmp_path):
    """sync_bn changes what the networks are normalised with (under torchrun), so a resumed run keeps it,
    as it keeps amp; a checkpoint from before the option had it off."""
    saved = tiny_cfg(tmp_path / "a", tmp_path / "data", norm="batch").to_dict()
    with pytest.raises(CheckpointError, match=r"^checkpoint ck\.pt was written with another config; differences: "
                                              r"sync_bn: checkpoint False vs now True \(a resumed run"):
        check_compatible(saved, tiny_cfg(tmp_path / "a", tmp_path / "data", norm="batch", sync_bn=True), "ck.pt")
    older = {k: v for k, v in saved.items() if k != "sync_bn"}
    check_compatible(older, tiny_cfg(tmp_path / "a", tmp_path / "data", norm="batch"), "ck.pt")
    with pytest.raises(CheckpointError, match="sync_bn: checkpoint False vs now True"):
        check_compatible(older, tiny_cfg(tmp_path / "a", tmp_path / "data", norm="batch", sync_bn=True), "ck.pt")


def test_fine_tuning_may_change_sizes_dropout_and_init_but_not_the_networks():
    saved = make_config("reference", **TINY).to_dict()  # U-Net depth 5 (32 px)
    for same in (dict(crop_size=64, num_downs=5), dict(crop_width=64, num_downs=5), dict(num_downs=5),
                 dict(use_dropout=True, init_type="normal", init_gain=0.5, impl="auto", channels_last=True),
                 dict(lr=0.5, load_size=64, preprocess="crop", lambda_L1=0.0)):
        check_same_networks(saved, make_config("reference", **{**TINY, **same}), "ck.pt")
    refused(lambda: check_same_networks(saved, make_config("reference", **{**TINY, "ngf": 8, "crop_size": 64},
                                                           variant="cvae"), "ck.pt"), CheckpointError,
            "ck.pt holds other networks than this run's: ngf: checkpoint 4 vs now 8; U-Net depth: checkpoint 5 vs "
            "now 6; variant: checkpoint 'bicycle' vs now 'cvae' (start from it with its model options: --ngf 4 "
            "--num_downs 5 --variant bicycle, the same make_config fields in Python, or leave out the options that "
            "set these; --fresh_D trains new discriminators of this run's options and variant)")
    # a switch is given as its option spells it
    with pytest.raises(CheckpointError, match=r"conditional_D: checkpoint True vs now False \(start from it with "
                       r"its model options: --conditional_D, the same"):
        check_same_networks({**saved, "model": {**saved["model"], "conditional_D": True}},
                            make_config("reference", **TINY), "ck.pt")
    with pytest.raises(CheckpointError, match=r"\(start from it with its model options: --no-conditional_D, "):
        check_same_networks(saved, make_config("reference", **TINY, conditional_D=True), "ck.pt")
    # With new discriminators the variant may change (cVAE-GAN's G and E, then BicycleGAN: an ablation's next step)
    for variant in ("cvae", "clr", "pix2pix"):
        check_same_networks(saved, make_config("reference", **TINY, variant=variant), "ck.pt",
                            discriminators_free=True)
    refused(lambda: check_same_networks({**saved, "lr": 0}, make_config("reference", **TINY), "ck.pt"),
            CheckpointError, "ck.pt: its stored config is not valid for this version: lr=0 must be a finite number "
            "> 0 and < 1")


def test_find_checkpoint_takes_a_file_a_run_folder_or_an_epoch(tmp_path):
    run = tmp_path / "run"
    ck = run / "checkpoints"
    ck.mkdir(parents=True)
    for name in ("latest.pt", "epoch_2.pt", "epoch_10.pt", "epoch_x.pt", "epoch_.pt", "epoch_3.pth"):
        (ck / name).touch()
    assert find_checkpoint(run) == ck / "latest.pt" and find_checkpoint(str(ck / "latest.pt")) == ck / "latest.pt"
    assert find_checkpoint(run, 10) == ck / "epoch_10.pt" and find_checkpoint(ck / "latest.pt", 2) == ck / "epoch_2.pt"
    for epoch in (0, 3):
        refused(lambda: find_checkpoint(run, epoch), CheckpointError,
                f"no checkpoint for epoch {epoch} in {ck}: epochs saved there: 2, 10")
    refused(lambda: find_checkpoint(ck / "other.pt"), CheckpointError, f"checkpoint {ck / 'other.pt'} does not exist")
    (tmp_path / "new" / "checkpoints").mkdir(parents=True)
    refused(lambda: find_checkpoint(tmp_path / "new"), CheckpointError,
            f"run folder {tmp_path / 'new'} holds no checkpoints/latest.pt: the run stopped before its first "
            f"checkpoint")
    (ck / "latest.pt").unlink()
    refused(lambda: find_checkpoint(run), CheckpointError,
            f"run folder {run} holds no checkpoints/latest.pt: the run kept per-epoch checkpoints only (epochs 2, "
            f"10): pick one with --epoch N or give its file, {ck / 'epoch_N.pt'} (in Python: epoch=N to train, "
            f"the file elsewhere)")
    # A dataset (any folder but a run) where the model goes: "checkpoint data2/checkpoints/latest.pt does
    # not exist" left the user to guess that a run folder was expected.
    (tmp_path / "data2" / "train").mkdir(parents=True)
    for epoch in (None, 1):
        refused(lambda: find_checkpoint(tmp_path / "data2", epoch), CheckpointError,
                f"{tmp_path / 'data2'} is not a run folder (it has no checkpoints/ folder): give a folder that train "
                f"wrote (its --out) or a checkpoint file (RUN/checkpoints/latest.pt, NAME.pt); a dataset goes in "
                f"--dataroot")
    refused(lambda: find_checkpoint(tmp_path / "new", 1), CheckpointError,
            f"no checkpoint for epoch 1 in {tmp_path / 'new' / 'checkpoints'}: the run kept no per-epoch "
            f"checkpoints (train with --save_epoch_freq N)")
    # A run that keeps one every 5 epochs (--preset edges2shoes) stopped before the fifth: it was told to train
    # with --save_epoch_freq N, which it did.
    (tmp_path / "new" / "config.json").write_text(json.dumps({"save_epoch_freq": 5, "niter": 30}))
    refused(lambda: find_checkpoint(tmp_path / "new", 10), CheckpointError,
            f"no checkpoint for epoch 10 in {tmp_path / 'new' / 'checkpoints'}: the run keeps one every 5 epochs "
            f"(--save_epoch_freq 5) and has not finished epoch 5")


def _draws():
    return torch.rand(3).tolist(), np.random.randn(3).tolist(), np.random.rand(2).tolist(), random.gauss(0, 1)


def test_rng_states_come_back_from_a_weights_only_file(tmp_path):
    np.random.randn()  # leaves a cached second Gaussian in numpy's generator, as
    random.gauss(0, 1)  # in Python's: the restored state must hold both
    torch.save(rng_state(torch.device("cpu"), host=True), tmp_path / "rng.pt")
    first = _draws()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), torch.device("cpu"))
    assert _draws() == first


def test_the_training_gpus_generator_comes_back_on_the_gpu_the_run_resumes_on(monkeypatch):
    # Saved on a host of 2 GPUs by a run on cuda:1, resumed on a host of one (cuda:0, a one-GPU job): every
    # GPU's state was saved and put back by index, so cuda:1's had no GPU to go to (IndexError, a
    # traceback) and the GPU trained on got cuda:0's, never drawn from (the z draws started again).
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": f"state of {torch.device(device)}")
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["state of cuda:0", "state of cuda:1"])
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda s, device="cuda": restored.append((s, torch.device(device))))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda states: restored.extend((s, torch.device("cuda", i)) for i, s in enumerate(states)))
    state = rng_state(torch.device("cuda", 1))
    set_rng_state(state, torch.device("cuda", 0))
    assert restored == [("state of cuda:1", torch.device("cuda", 0))]
    restored.clear()
    # A run on the CPU (of a GPU host too) draws nothing on a GPU: nothing kept, nothing put back.
    assert set(rng_state(torch.device("cpu"))) == {"torch"}
    assert set(rng_state(torch.device("cpu"), host=True)) == {"torch", "numpy", "python"}
    set_rng_state(state, torch.device("cpu"))
    assert restored == []
    # A checkpoint of an earlier version holds every GPU's: the one of the GPU's index, where there is one.
    old = {**state, "cuda": ["state of cuda:0", "state of cuda:1"]}
    set_rng_state(old, torch.device("cuda", 1))
    set_rng_state(old, torch.device("cuda", 2))
    assert restored == [("state of cuda:1", torch.device("cuda", 1))]


# -- writing and reading files (engine/io.py) --------------------------------------------------------
def _raise(err):
    def write(f):
        f.write(b"partial")
        raise err
    return write


def test_io_a_failed_write_names_the_file_the_reason_and_the_free_space(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(1, 1, int(5.6 * 2 ** 20)))
    path = tmp_path / "out.bin"
    refused(lambda: io.atomic_write(path, _raise(OSError(28, "No space left on device"))), OutputError,
            f"cannot write file {path}: No space left on device (6 MiB free in {tmp_path})")
    io.atomic_write(path, lambda f: f.write(b"old"))
    refused(lambda: io.atomic_write(path, _raise(RuntimeError("file write failed\ndetails")), what="checkpoint",
                                    error=CheckpointError), CheckpointError,
            f"cannot write checkpoint {path}: file write failed (6 MiB free in {tmp_path}); the previous one is intact")
    refused(lambda: io.atomic_write(path, _raise(RuntimeError())), OutputError,
            f"cannot write file {path}: RuntimeError (6 MiB free in {tmp_path}); the previous one is intact")
    # torch's zip writer on a full disk (or quota): its words alone, and MiB of room measured once the cut file
    # was removed, said no cause
    full = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1612672 vs 1612564")
    refused(lambda: io.atomic_write(path, _raise(full), what="checkpoint", error=CheckpointError), CheckpointError,
            f"cannot write checkpoint {path}: [enforce fail at inline_container.cc:672] . unexpected pos 1612672 vs "
            f"1612564: its write stopped short, as on a full disk or quota (6 MiB free in {tmp_path} once the cut "
            f"file was removed); the previous one is intact")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_a_failed_write_names_the_file_also_when_the_error_asked_for_is_oserror(tmp_path, monkeypatch):
    # pipelines' writer with error=OSError (the check cache's): a full disk during the write came out
    # as the bare "[Errno 28] No space left on device", without the file its docstring promises.
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(1, 1, 3 * 2 ** 20))
    path = tmp_path / "cache.json"
    refused(lambda: atomic.atomic_write(path, _raise(OSError(28, "No space left on device")), what="cache"), OSError,
            f"cannot write cache {path}: No space left on device (3 MiB free in {tmp_path})")
    assert os.listdir(tmp_path) == []


def test_io_other_errors_pass_through_unchanged(tmp_path):
    path = tmp_path / "out.bin"
    for err in (ValueError("a bug"), OutputError("already said")):
        with pytest.raises(type(err)) as e:
            io.atomic_write(path, _raise(err))
        assert e.value is err
    assert os.listdir(tmp_path) == []


def test_io_a_folder_removed_during_the_write_is_reported(tmp_path):
    folder = tmp_path / "run"
    refused(lambda: io.atomic_write(folder / "x.bin", lambda f: shutil.rmtree(folder)), OutputError,
            f"cannot write file {folder / 'x.bin'}: No such file or directory")


def test_io_writes_create_folders_and_get_the_usual_permissions(tmp_path):
    path = io.atomic_write(tmp_path / "a" / "b" / "x.bin", lambda f: f.write(b"x"))
    assert path == tmp_path / "a" / "b" / "x.bin" and path.read_bytes() == b"x"
    with open(tmp_path / "plain", "wb"):  # what the process's umask gives a new file
        pass
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    # A file replaced keeps its own (a run's files kept private were the umask's again after the next save)
    for mode, kept in ((0o600, 0o600), (0o640, 0o640), (0o444, 0o644), (0o4755, 0o755)):  # (never unwritable by
        os.chmod(path, mode)                                                               # its writer, nor setuid)
        io.atomic_write(path, lambda f: f.write(b"y"))
        assert stat.S_IMODE(path.stat().st_mode) == kept and path.read_bytes() == b"y", oct(mode)
    # another user's file: its replacement is the writer's, so the usual permissions (a copy of 0600 locked the
    # file's user out of it)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chmod(path, 0o600)
        os.chown(path, 65534, 65534)
        io.atomic_write(path, lambda f: f.write(b"z"))
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    # The check makes nothing (a command refused after it left an empty folder): the writers do.
    assert io.check_writable(tmp_path / "c" / "d", "results") == tmp_path / "c" / "d"
    assert not (tmp_path / "c").exists()


def test_io_destinations_under_a_file_are_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    refused(lambda: io.atomic_write(tmp_path / "f" / "sub" / "x.bin", lambda f: None), OutputError,
            f"cannot write file {tmp_path / 'f' / 'sub' / 'x.bin'}: Not a directory")
    refused(lambda: io.check_writable(tmp_path / "f" / "sub", "results"), OutputError,
            f"cannot write results into {tmp_path / 'f' / 'sub'}: Not a directory; choose another folder")
    # The folder itself a file (download --dir FILE): it said "File exists (... MiB free in FILE)".
    refused(lambda: io.check_writable(tmp_path / "f", "results"), OutputError,
            f"cannot write results into {tmp_path / 'f'}: it is a file, not a folder; choose another folder")


def test_io_text_json_and_png_are_written_as_asked(tmp_path):
    io.write_json(tmp_path / "a.json", {"a": [1], "b": "é"})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1\n  ],\n  "b": "\\u00e9"\n}\n'
    io.write_text(tmp_path / "t.txt", "é\n")
    assert (tmp_path / "t.txt").read_bytes() == b"\xc3\xa9\n"
    io.save_image(Image.new("RGB", (2, 1), (255, 0, 0)), tmp_path / "x.jpg")  # PNG whatever the suffix
    assert (tmp_path / "x.jpg").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": [1], "b": "é"}


def test_io_torch_files_that_cannot_be_read_say_why(tmp_path, monkeypatch):
    def read(path):
        return io.read_torch_file(path, what="weights", error=CheckpointError)
    refused(lambda: read(tmp_path / "none.pt"), CheckpointError, f"weights {tmp_path / 'none.pt'} does not exist")
    refused(lambda: read(tmp_path), CheckpointError, f"weights {tmp_path} is a folder, not a file")
    os.mkfifo(tmp_path / "pipe.pt")  # (said not to exist; opened, it would wait for a writer)
    refused(lambda: read(tmp_path / "pipe.pt"), CheckpointError, f"weights {tmp_path / 'pipe.pt'} is a named pipe, "
            f"not a file")
    (tmp_path / "pipe.pt").unlink()
    (tmp_path / "g.pt").write_bytes(b"\x80\x02not a torch file")  # a pickle's start, then not one
    refused(lambda: read(tmp_path / "g.pt"), CheckpointError,
            f"weights {tmp_path / 'g.pt'} cannot be read: unreadable as a torch file (foreign or damaged)")
    # No torch file at all, a text file given as a checkpoint: it said "(KeyError: 101)" (the unpickler
    # reading 'e' as an opcode). A zip archive's and an old pickle's start still go to torch.load.
    (tmp_path / "notes.txt").write_text("hello world, a text file\n")
    refused(lambda: io.read_torch_file(tmp_path / "notes.txt", what="checkpoint", error=CheckpointError),
            CheckpointError, f"checkpoint {tmp_path / 'notes.txt'} is not a torch file, so no checkpoint: it "
            f"begins b'hello world, a t' (torch.save's files are zip archives)")
    (tmp_path / "e.pt").write_bytes(b"")
    refused(lambda: read(tmp_path / "e.pt"), CheckpointError,
            f"weights {tmp_path / 'e.pt'} cannot be read: unreadable or truncated (EOFError: )")

    def fails(*a, **k):
        raise RuntimeError("PytorchStreamReader failed reading zip archive\nmore")
    monkeypatch.setattr(torch, "load", fails)
    refused(lambda: read(tmp_path / "g.pt"), CheckpointError,
            f"weights {tmp_path / 'g.pt'} cannot be read: unreadable or truncated (RuntimeError: PytorchStreamReader "
            f"failed reading zip archive)")


# -- divergence -----------------------------------------------------------------------------------
def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, data):
    trainer = Trainer(cfg(tmp_path / "run", data, max_steps=8), progress=False)
    step = trainer.model.train_step

    def poisoned(batch):  # the 5th step leaves G with a NaN weight (as an exploding update would)
        out = step(batch)
        if trainer.step == 4:
            with torch.no_grad():
                next(trainer.model.G.parameters()).view(-1)[0] = math.nan
        return out
    trainer.model.train_step = poisoned
    with pytest.raises(DivergenceError, match=r"step 5 .*non-finite weights in G.*last good checkpoint .*step 4"):
        trainer.train()
    state = read_checkpoint(trainer.ckpt_path)
    assert state["step"] == 4
    assert all(torch.isfinite(t).all() for t in state["nets"]["G"].values())


def _losses_with(trainer, at_step, term):
    """trainer's G losses, with term(losses) at its step `at_step` (1-based) and on."""
    real = trainer.model.generator_losses

    def losses(A, B):
        L, out = real(A, B)
        if trainer.step + 1 >= at_step:
            term(L, trainer.model)
        return L, out
    trainer.model.generator_losses = losses


def _nan_l1_once(L, model):
    L["G_L1"] = L["G_L1"] * math.nan if not hasattr(model, "_poisoned") else L["G_L1"]
    model._poisoned = True


def test_an_fp16_step_the_scaler_skipped_is_left_out_of_the_log_and_the_checkpoint(tmp_path, data):
    # A NaN loss at step 5 under fp16: the GradScaler skipped the step (no weight changed), but its NaN went into
    # the interval's sums, which the checkpoint of step 6 kept: the run stopped at its log, every resume again.
    trainer = Trainer(cfg(tmp_path / "run", data, amp="fp16", max_steps=6, log_every=4, save_every=100),
                      progress=False)
    _losses_with(trainer, 5, _nan_l1_once)
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 6] and rows[1]["amp_skipped"] >= 1 and "diverged" not in rows[1]
    assert math.isfinite(rows[1]["G_L1"])
    interval = read_checkpoint(trainer.ckpt_path)["log_interval"]
    assert interval["count"] == 2 and all(math.isfinite(v) for v in interval["sums"].values())
    assert int(interval["skipped"][0]) >= 1  # the steps left out, which the resumed run's first line leaves out too
    Trainer(cfg(tmp_path / "run", data, amp="fp16", max_steps=8, log_every=4, save_every=100), resume=True,
            progress=False).train()
    # The logged means are those of the steps kept, over their count (independently: each step's losses as
    # train_step returned them, and whether the scaler skipped it)
    trainer = Trainer(cfg(tmp_path / "again", data, amp="fp16", max_steps=8, log_every=8, save_every=100),
                      progress=False)
    _losses_with(trainer, 5, _nan_l1_once)
    steps, real = [], trainer.model.train_step

    def step(batch):
        out = real(batch)
        steps.append((float(out["G_L1"]), bool(trainer.model.amp_skipped.amax() > 0)))
        return out
    trainer.model.train_step = step
    trainer.train()
    row = json.loads((tmp_path / "again" / "log.jsonl").read_text().splitlines()[-1])
    kept = [v for v, skipped in steps if not skipped]
    assert len(steps) == 8 and 0 < len(kept) < 8 and row["amp_skipped"] == 8 - len(kept)
    assert row["G_L1"] == pytest.approx(sum(kept) / len(kept), rel=1e-5)


def test_an_fp16_nan_loss_the_scaler_did_not_skip_still_stops_the_run(tmp_path, data):
    trainer = Trainer(cfg(tmp_path / "run", data, amp="fp16", max_steps=4, log_every=4), progress=False)
    # a logged term alone: its gradient is nothing, the scaler finds the gradients finite and steps
    _losses_with(trainer, 3, lambda L, model: L.update(extra=torch.tensor(math.nan)))
    with pytest.raises(DivergenceError, match=r"at step 4 .*non-finite extra = nan"):
        trainer.train()


def test_fp16_gradients_non_finite_at_every_step_stop_the_run_naming_the_network(tmp_path, data):
    # From step 3 a term of value 0 whose gradient is NaN (sqrt at 0) in G's first weight: the scaler skipped
    # every step, its scale halving down to 1e-32, G never trained, and the run exited as if complete.
    def nan_gradient(L, model):
        p = next(model.G.parameters())
        L["extra"] = torch.sqrt(((p - p.detach()) ** 2).sum())
    trainer = Trainer(cfg(tmp_path / "run", data, amp="fp16", max_steps=40, log_every=20, save_every=100,
                          niter=5, niter_decay=5),
                      progress=False)
    _losses_with(trainer, 3, nan_gradient)
    with pytest.raises(DivergenceError, match=r"at step 20 .*fp16 loss scale fell to \S+ \(below 1\).* at 20 of "
                                              r"this interval's 20 steps \(of G at 20.*: G no longer trains"):
        trainer.train()
    (row,) = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert row["amp_skipped"] == 20 and row["diverged"] is True


def test_a_save_refuses_non_finite_loss_sums_and_names_the_loss_weight(tmp_path, data):
    # A NaN loss at step 3 with finite weights, the log every 5 steps, saves every 2: the save of step 4 kept the
    # NaN, and every run resumed from it stopped at step 5; the advice (a lower --lr) was one a resume refuses.
    trainer = Trainer(cfg(tmp_path / "run", data, max_steps=8, log_every=5, lambda_L1=1e5), progress=False)
    step = trainer.model.train_step

    def poisoned(batch):
        out = step(batch)
        return {**out, "G_L1": out["G_L1"] * math.nan} if trainer.step == 2 else out
    trainer.model.train_step = poisoned
    ckpt = trainer.ckpt_path
    with pytest.raises(DivergenceError) as e:
        trainer.train()
    assert str(e.value) == (f"training diverged at step 4 (epoch 1): non-finite G_L1 = nan in the losses of the log "
                            f"interval so far; --lambda_L1 100000 (G_L1's weight) is over 1000 times its default 10; "
                            f"the last good checkpoint is {ckpt} (step 2); go on from it in a new run from its weights "
                            f"(a resume keeps the run's options): --init_from {ckpt} --lr 2e-05 --out NEW, or "
                            f"--init_from {ckpt} --lambda_L1 10 --out NEW")
    assert read_checkpoint(ckpt)["step"] == 2


def test_inf_adam_moments_stop_the_run_at_a_save(tmp_path, data):
    # --lambda_L1 1e25: G's gradients past 1.8e19 square to inf in Adam's second moments, the weights and losses
    # finite: those weights' updates were 0 for good, every checkpoint kept the inf state, and the run exited 0.
    trainer = Trainer(cfg(tmp_path / "run", data, max_steps=4, log_every=4, save_every=1, lambda_L1=1e25),
                      progress=False)
    with pytest.raises(DivergenceError, match=r"at step 1 .*non-finite optimizer state of G \(\d+ values\).*"
                                              r"--lambda_L1 1e\+25 \(G_L1's weight\)"):
        trainer.train()
    assert not trainer.ckpt_path.exists()
    # A checkpoint an earlier version saved with that state (unchecked): the resume trained a save interval of
    # frozen weights, then named that file "the last good checkpoint". Refused at once; its weights start a new run.
    run = tmp_path / "old"
    Trainer(cfg(run, data, max_steps=2, save_every=2), progress=False).train()
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    moments = next(iter(state["optimizers"]["G"]["state"].values()))
    moments["exp_avg_sq"].view(-1)[:3] = math.inf
    state["digest"] = digest(state)  # (as the earlier version wrote it: whole, its state unchecked)
    torch.save(state, run / "checkpoints" / "latest.pt")
    before = (run / "log.jsonl").read_text()
    ckpt = run / "checkpoints" / "latest.pt"
    with pytest.raises(DivergenceError, match=f"^{re.escape(str(ckpt))} holds non-finite optimizer state of G "
                                              r"\(3 values\) .*a resume from it would not train; go on in a new run "
                                              f"from its weights: --init_from {re.escape(str(ckpt))} --out NEW$"):
        Trainer(cfg(run, data, max_steps=4, save_every=2), resume=True, progress=False)
    assert (run / "log.jsonl").read_text() == before
    new = tmp_path / "new"
    Trainer(cfg(new, data, max_steps=1, init_from=str(ckpt)), progress=False).train()
    assert (new / "checkpoints" / "latest.pt").exists()


def test_a_dry_run_refuses_a_checkpoint_of_non_finite_values_as_the_run_does(tmp_path, data):
    """A checkpoint an earlier version saved with non-finite weights or Adam moments (unchecked) is refused by the
    resume once its model holds it; train --dry-run, which builds no model, passed it (exit 0, "the run would start")
    and the run then refused it. It now counts them in the checkpoint's contents: the run's line, its counts."""
    from bicyclegan.engine.trainer import check_start
    run = tmp_path / "old"
    Trainer(cfg(run, data, max_steps=2, save_every=2), progress=False).train()
    ckpt = run / "checkpoints" / "latest.pt"
    state = torch.load(ckpt, weights_only=True)
    next(iter(state["optimizers"]["G"]["state"].values()))["exp_avg_sq"].view(-1)[:3] = math.inf
    next(t for t in state["nets"]["G"].values() if t.is_floating_point()).view(-1)[:2] = math.nan
    state["digest"] = digest(state)  # (as the earlier version wrote it: whole, its state unchecked)
    torch.save(state, ckpt)
    said = (f"{ckpt} holds non-finite weights in G (2 values); non-finite optimizer state of G (3 values) (Adam's "
            f"second moments: ")
    with pytest.raises(DivergenceError) as ran:
        Trainer(cfg(run, data, max_steps=4), resume=True, progress=False)
    with pytest.raises(DivergenceError) as dry:
        check_start(cfg(run, data, max_steps=4), resume=True)
    assert str(ran.value).startswith(said) and str(dry.value) == str(ran.value)


def test_a_huge_learning_rate_ends_with_exit_2_and_no_nan_checkpoint(tmp_path, data, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataroot", str(data), "--out", str(run), "--no-progress", "--lr", "0.9",
            "--max_steps", "20", "--log_every", "1", "--save_every", "1", "--num_workers", "0",
            "--preprocess", "none", "--batch_size", "4",
            *[f"--{k}={v}" for k, v in TINY.items()]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "diverged at step" in err and "--lr" in err
    if (run / "checkpoints" / "latest.pt").exists():
        nets = read_checkpoint(run / "checkpoints" / "latest.pt")["nets"]
        assert all(torch.isfinite(t).all() for sd in nets.values() for t in sd.values() if t.is_floating_point())
    log = (run / "log.jsonl").read_text()
    assert '"diverged": true' in log and "NaN" not in log  # still valid JSON
    # (a divergence a save found right after its step's line is a line of its own, of no steps: no speed, where it
    # said 0 images/s and the page's chart fell to 0)
    assert all(row.get("img_per_s", 1) > 0 for row in map(json.loads, log.splitlines()))


def test_nonfinite_models_are_refused_by_save_evaluate_and_export(tmp_path, data):
    model = tiny_model()
    good = tmp_path / "good.pt"
    save_checkpoint(model, good)
    before = good.read_bytes()
    with torch.no_grad():
        next(model.G.parameters()).view(-1)[0] = math.inf
    with pytest.raises(DivergenceError, match="non-finite weights in G"):
        save_checkpoint(model, good)
    assert good.read_bytes() == before
    with pytest.raises(DivergenceError):
        evaluate(model, data)
    with pytest.raises(DivergenceError):
        export_generator(model, tmp_path / "g.pt2")
    assert not (tmp_path / "g.pt2").exists()


@pytest.mark.parametrize("net, said", [("E", "encoded"), ("G", "encoded and 2 more")])
def test_a_model_whose_outputs_overflow_is_refused_by_sample_and_evaluate_not_drawn_black(tmp_path, data, net, said):
    # Finite weights whose outputs are not (a model that overflowed): sample wrote black images with exit 0, and
    # evaluate measured an encoder's black outputs as a palette match of 0 beside an encoded L1 of NaN
    from bicyclegan.engine import sample
    model = tiny_model()
    with torch.no_grad():
        for p in getattr(model, net).parameters():
            p.mul_(1e30 if p.dim() > 1 else 1)
    assert not model.nonfinite()
    with pytest.raises(DivergenceError, match=rf"outputs are not finite \({said}\): it cannot be evaluated"):
        evaluate(model, data, num=2, n_samples=2, metrics=["l1", "palette"] if net == "E" else None)
    with pytest.raises(DivergenceError, match=rf"outputs are not finite \({said} of \S+00000.png\): nothing to sample"):
        sample(model, data, out=tmp_path / "s", num=2, n_samples=2, progress=False)
    assert not list((tmp_path / "s").rglob("*.png"))


def test_a_sample_grid_that_cannot_be_written_names_the_step_and_the_checkpoint_to_resume(tmp_path, monkeypatch):
    # samples/ made read-only mid-run: "cannot write sample grid .../step_0000004.png: Permission denied (...)" and
    # nothing of where the run stopped or what it can resume from, as a checkpoint's or the log's failure says.
    import importlib
    trainer_module = importlib.import_module("bicyclegan.engine.trainer")
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    real = trainer_module.save_grid

    def read_only(model, A, B, z, path, *more):
        if path.name == "step_0000003.png":
            raise OutputError(f"cannot write sample grid {path}: Permission denied")
        return real(model, A, B, z, path, *more)
    monkeypatch.setattr(trainer_module, "save_grid", read_only)
    t = Trainer(cfg(tmp_path / "run", root, max_steps=4, num_workers=0, sample_every=3), progress=False)
    with pytest.raises(OutputError) as info:
        t.train()
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert str(info.value) == (f"cannot write sample grid {tmp_path / 'run' / 'samples' / 'step_0000003.png'}: "
                               f"Permission denied (at step 3); the last good checkpoint is {path} (step 2): resume "
                               f"it with --resume")


@pytest.mark.parametrize("kept", ["latest.pt", "epoch_1.pt"])
def test_data_broken_mid_run_names_the_step_and_the_checkpoint_to_resume(tmp_path, kept):
    # A dataset rewritten while a run trains: the decode error named the file alone, not where the run
    # stopped nor what it can resume from. The checkpoint of step 2, the step it stopped after, is latest.pt
    # (save_every 2), or epoch_1.pt alone (save_epoch_freq 1), which a plain --resume does not read.
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    saving = {"save_every": 2} if kept == "latest.pt" else {"save_every": 100, "save_epoch_freq": 1}
    t = Trainer(cfg(tmp_path / "run", root, max_steps=4, num_workers=0, **saving), progress=False)
    break_at_step(t, 1, *(root / "train").iterdir())  # every training file broken as step 2 trains
    with pytest.raises(DatasetError) as info:
        t.train()
    text = str(info.value)
    assert text.startswith("training stopped at step 3 (epoch 2) on its data: ")  # 2 batches an epoch
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [kept]  # (step 2's: not written again)
    assert "cannot decode" in text and str(root / "train") in text
    path = tmp_path / "run" / "checkpoints" / kept
    resume = "--resume" if kept == "latest.pt" else f"--resume {path} (resume={str(path)!r} in Python)"
    assert text.endswith(f"the last good checkpoint is {path} (step 2): put the files back as they were and resume "
                         f"it with {resume} (a resumed run trains on the same files), or leave such files out in a "
                         f"new run from its weights: --init_from {path} --skip_bad --out NEW")


@pytest.mark.parametrize("broken_after", [2, 1], ids=["mid-epoch", "at-an-epoch-start"])
def test_data_broken_mid_run_saves_the_step_before_it_and_a_resume_goes_on_exactly(tmp_path, broken_after):
    # The steps since the last checkpoint were lost (up to --save_every of them): the run stopped naming an older
    # checkpoint, though the failing batch had trained nothing. 2 batches an epoch: the files broken as step 2 trains
    # fail step 3 (epoch 2's first batch), broken as step 3 trains (its batch read already) fail step 4.
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    files = sorted((root / "train").iterdir())
    kept = {f: f.read_bytes() for f in files}
    t = Trainer(cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100), progress=False)
    break_at_step(t, broken_after, *files)
    with pytest.raises(DatasetError) as info:
        t.train()
    done = broken_after + 1
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert read_checkpoint(path)["step"] == done
    assert str(info.value).startswith(f"training stopped at step {done + 1} (epoch 2) on its data: ")
    assert f"\nthe last good checkpoint is {path} (step {done}): put the files back as they were" in str(info.value)
    for f, data in kept.items():  # put back, as said: the resumed run's next batch is the one that failed
        f.write_bytes(data)
    Trainer(cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100), resume=True, progress=False).train()
    Trainer(cfg(tmp_path / "whole", root, niter=2, max_steps=6, save_every=100), progress=False).train()
    again, whole = (read_checkpoint(tmp_path / run / "checkpoints" / "latest.pt") for run in ("run", "whole"))
    assert again["step"] == whole["step"] == 6
    for net in whole["nets"]:
        assert all(torch.equal(again["nets"][net][k], v) for k, v in whole["nets"][net].items()), net


def test_a_file_that_fails_to_load_but_is_as_checked_is_resumed_past_with_skip_bad(tmp_path, monkeypatch):
    # A file whose name and size are the run's and that passes the checks again, but fails as a batch reads it (as
    # DALI's decoder fails on files PIL passes, or a read that failed once): the advice was to put the files back (as
    # they are) or a new run from the weights (steps, optimisers and schedule restarting), where `--resume --skip_bad`
    # takes the run on and finishes it.
    cpu_loader = importlib.import_module("bicyclegan.pipelines.cpu_loader")
    real, failing = cpu_loader.load_rgb, []

    def load_rgb(path):
        if failing and failing[0] in (None, path):  # the first file read once armed, and from then on
            failing[0] = path
            raise OSError("broken data stream when reading image file")
        return real(path)
    monkeypatch.setattr(cpu_loader, "load_rgb", load_rgb)
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    run = cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100)
    t = Trainer(run, progress=False)
    real_step = t.model.train_step
    t.model.train_step = lambda batch: (failing.append(None) if t.step == 2 else None, real_step(batch))[1]
    with pytest.raises(DatasetError) as info:
        t.train()
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert str(info.value).startswith(f"training stopped at step 4 (epoch 2) on its data: {failing[0]}: cannot "
                                      f"decode (OSError: broken data stream when reading image file)\n")
    assert str(info.value).endswith(f"\nthe last good checkpoint is {path} (step 3): resume it with --resume "
                                    f"--skip_bad (cfg.data.skip_bad=True in Python) to go on without such files "
                                    f"(they have the names and sizes the run checked, and pass the checks again: "
                                    f"the resume takes them, and replaces one that fails to decode by the next good "
                                    f"sample)")
    resumed = Trainer(cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100, skip_bad=True), resume=True,
                      progress=False)
    resumed.train()  # as said: the run finished, without the file
    assert read_checkpoint(path)["step"] == 6 and [p for p, _ in resumed.loader.skipped] == [failing[0]]


@pytest.mark.parametrize("size", ["other", "same"])
def test_a_file_changed_mid_run_is_not_said_to_resume_with_skip_bad(tmp_path, size):
    # Its size changed, or the same size and no image: a resume's checks leave it out with --skip_bad, and the run's
    # samples differ from its checkpoint's, which the resume refuses. Put back, or a new run from the weights.
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    t = Trainer(cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100), progress=False)
    real, broken = t.model.train_step, []

    def train_step(batch):
        if t.step == 2:  # a file of step 4's batch, epoch 2's other half (2 batches an epoch)
            broken.append(min({str(f) for f in (root / "train").iterdir()} - set(batch["paths"])))
            Path(broken[0]).write_bytes(BROKEN_PNG if size == "other" else b"\0" * os.path.getsize(broken[0]))
        return real(batch)
    t.model.train_step = train_step
    with pytest.raises(DatasetError) as info:
        t.train()
    assert str(info.value).startswith(f"training stopped at step 4 (epoch 2) on its data: {broken[0]}: cannot decode")
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert str(info.value).endswith(f"\nthe last good checkpoint is {path} (step 3): put the files back as they were "
                                    f"and resume it with --resume (a resumed run trains on the same files), or leave "
                                    f"such files out in a new run from its weights: --init_from {path} --skip_bad "
                                    f"--out NEW")
    with pytest.raises(CheckpointError, match="batches per epoch"):  # (what the other advice would have met)
        Trainer(cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100, skip_bad=True), resume=True,
                progress=False)


def test_data_broken_mid_run_where_its_save_fails_too_says_the_data_error_and_keeps_the_checkpoint(tmp_path,
                                                                                                   replace_fails):
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    t = Trainer(cfg(tmp_path / "run", root, niter=2, max_steps=6, save_every=100, save_epoch_freq=1), progress=False)
    break_at_step(t, 2, *(root / "train").iterdir())  # step 4 fails, after epoch_1.pt (step 2)
    replace_fails("latest.pt")  # (a full disk: the save of step 3 fails)
    with pytest.raises(DatasetError) as info:
        t.train()
    ckpts = tmp_path / "run" / "checkpoints"
    text = str(info.value)
    assert text.startswith("training stopped at step 4 (epoch 2) on its data: ") and "cannot decode" in text
    assert f"\nstep 3 could not be saved (cannot write checkpoint {ckpts / 'latest.pt'}: " in text
    assert f"); the last good checkpoint is {ckpts / 'epoch_1.pt'} (step 2): put the files back" in text
    assert [n for n in os.listdir(ckpts) if not n.startswith(".")] == ["epoch_1.pt"]
    assert read_checkpoint(ckpts / "epoch_1.pt")["step"] == 2


# -- option values --------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("lr", math.inf), ("lr", math.nan), ("lr", 0.0), ("lr", -1e-3), ("beta1", 1.0), ("beta1", -0.1),
    ("beta2", 2.0), ("lambda_kl", math.nan), ("lambda_L1", -1.0), ("lambda_z", math.inf),
    ("max_steps", 0), ("max_steps", -5), ("seed", -1), ("seed", 2 ** 40), ("batch_size", 0), ("ema", 1.0),
    ("ema", -0.5), ("log_every", 0), ("niter", -1), ("init_gain", -1.0), ("init_gain", 0.0),
    ("init_gain", math.nan), ("nz", -1), ("ngf", 0), ("crop_size", 0), ("load_size", 0), ("num_workers", -1),
    ("max_dataset_size", 0), ("no_flip", "yes"), ("use_dropout", 1), ("batch_size", 2.5), ("device", "gpu"),
])
def test_out_of_range_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        make_config("demo", **{field: value})


@pytest.mark.parametrize("flag,value", [("--lr", "inf"), ("--lambda_kl", "nan"), ("--max_steps", "0"),
                                        ("--seed", "-1"), ("--beta1", "2"), ("--init_gain", "-1")])
def test_cli_rejects_bad_values_in_one_line(flag, value, capsys):
    assert main(["train", "--dry-run", flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bicyclegan train: ConfigError: ") and flag[2:] in err and "\n" not in err


@pytest.mark.parametrize("args, message", [
    (["--preset", "reference", "--eval_num", "5"],
     r"--eval_num is an option of the evaluations during training, and eval_every=0 makes none: add --eval_every N "
     r"\(iterations between evaluations\), or leave it out$"),
    (["--eval_every", "0", "--eval_metrics", "fid", "--eval_samples", "3"],
     "--eval_metrics, --eval_samples are options of the evaluations during training, and eval_every=0"),
    (["--eval_every", "5", "--fid_weights", "i.pth"], r"--fid_weights is an option of the fid metric, and "
                                                      r"eval_metrics=none \(l1; with palette on the demo data\) "
                                                      r"leaves it out: add it \(--eval_metrics l1,fid\)"),
    (["--eval_every", "5", "--eval_metrics", "l1,palette", "--lpips_backbone", "a.pth", "--lpips_linear", "b.pth"],
     r"--lpips_backbone, --lpips_linear are options of the lpips metric, and eval_metrics=l1,palette leaves it "
     r"out: add it \(--eval_metrics l1,palette,lpips\), or leave them out"),
])
def test_train_refuses_evaluation_options_that_change_nothing(args, message, capsys):
    """They were taken, and the run went on without the evaluations (or the weights) they asked for."""
    assert main(["train", "--dry-run", *args]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_evaluation_options_taken_where_they_count_and_kept_by_a_resumed_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dry-run", "--preset", "demo", "--eval_samples", "3"]) == 0  # (demo: eval_every 400)
    cfg = make_config("demo", out=str(run), eval_every=5, eval_metrics="l1,fid", fid_weights="i.pth")
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    # (the run's config is what resuming starts from; the dry run reads its checkpoint as the run would)
    save_checkpoint(BicycleGAN(cfg), run / "checkpoints" / "latest.pt", step=1)
    capsys.readouterr()
    # the run's own fid_weights, not given here: resuming with its evaluations turned off is no refusal
    assert main(["train", "--dry-run", "--out", str(run), "--resume", "--eval_every", "0"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["eval_every"] == 0 and resumed["fid_weights"] == "i.pth"


@pytest.mark.parametrize("given, said", [
    (["--variant", "cvae", "--lambda_z", "3", "--lambda_GAN2", "5", "--netD2", "basic_256"],
     "--lambda_GAN2, --netD2 change nothing: only variant bicycle has a second discriminator D2 (on its random-z "
     "branch); cvae's one is --netD, weighted by --lambda_GAN; --lambda_z changes nothing: only variants bicycle and "
     "clr have the latent regression |E(G(A, z)) - z|, not cvae; leave them out"),
    (["--variant", "cae", "--lambda_kl", "0.1"], "--lambda_kl changes nothing: only variants bicycle and cvae have the "
     "KL term, not cae (cae encodes z = mu, without it); leave it out"),
    (["--variant", "clr", "--lambda_L1", "5"], "--lambda_L1 changes nothing: variant clr has no image L1 (the paper's "
     "cLR-GAN: G's image term is the GAN's alone); leave it out"),
    (["--variant", "pix2pix", "--nef", "16", "--use_same_D"], "--use_same_D changes nothing: only variant bicycle "
     "has two discriminators to share; --nef changes nothing: variant pix2pix has no encoder; leave them out"),
    (["--use_same_D", "--netD2", "basic_128"], "--netD2 changes nothing: use_same_D makes D serve both branches: no "
     "D2 is built; leave it out"),
    (["--use_dropout"], "--use_dropout changes nothing: G's dropout goes on its levels between the 5th and the bottom "
     "one, as in the reference, and this U-Net of 5 levels (32x32) has none (64 px: one); leave it out"),
    (["--lambda_GAN2", "0", "--netD2", "basic_128"], "--netD2 changes nothing: lambda_GAN2=0 leaves out the random-z "
     "branch's GAN term: no D2 is built; leave it out"),
    (["--num_Ds", "1", "--netD", "basic_128", "--netD2", "basic_128"], "--num_Ds changes nothing: it counts the "
     "scales of a multi-scale discriminator (*_multi), and netD=basic_128 and netD2=basic_128 have one each; leave "
     "it out"),
    (["--variant", "cvae", "--num_Ds", "1", "--netD", "basic_128"], "--num_Ds changes nothing: it counts the "
     "scales of a multi-scale discriminator (*_multi), and netD=basic_128 has one; leave it out"),
    # no D (lambda_GAN=0), no discriminator at all: --netD, --conditional_D, --gan_mode... were recorded, never had
    (["--lambda_GAN", "0", "--netD", "basic_128"], "--netD changes nothing: lambda_GAN=0 leaves out the encoded "
     "branch's GAN term: no D is built; leave it out"),
    (["--lambda_GAN", "0", "--lambda_GAN2", "0", "--conditional_D", "--gan_mode", "vanilla", "--ndf", "4",
      "--use_same_D"], "--ndf, --conditional_D, --gan_mode change nothing: lambda_GAN=0 and lambda_GAN2=0: no "
     "discriminator is built; --use_same_D changes nothing: lambda_GAN=0 and lambda_GAN2=0: no discriminator is built "
     "to share; leave them out"),
    (["--variant", "clr", "--lambda_GAN", "0", "--num_Ds", "1"], "--num_Ds changes nothing: lambda_GAN=0: no "
     "discriminator is built; leave it out"),
])
def test_an_objective_option_the_variant_has_no_use_for_is_refused(tmp_path, capsys, given, said):
    # A researcher's ablation: train --variant cvae --lambda_z 3 trained on, config.json recording a term the run
    # never had. Refused, as other options that change nothing are, before the run folder.
    run = tmp_path / "run"
    # (--impl ref --eval_every 0: were it taken, a step of seconds, not the demo's Triton under the interpreter)
    assert main(["train", "--out", str(run), *given, "--max_steps", "1", "--no-eval", "--no-progress", "--impl", "ref",
                 "--eval_every", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"bicyclegan train: ConfigError: {said}"
    assert not run.exists()


@pytest.mark.parametrize("given", [
    ["--variant", "cvae", "--lambda_kl", "0.1", "--lambda_GAN", "2", "--no-use_same_D"],  # (a switch given off)
    ["--variant", "clr", "--lambda_z", "1"], ["--variant", "bicycle", "--lambda_GAN2", "0", "--netD", "basic_128"],
    ["--num_Ds", "1", "--netD", "basic_128", "--netD2", "basic_128_multi"], ["--use_dropout", "--crop_size", "64"],
    ["--lambda_GAN", "0", "--ndf", "8", "--gan_mode", "vanilla", "--netD2", "basic_128"]])  # (D2 still is)
def test_the_options_the_variant_uses_are_taken(capsys, given):
    assert main(["train", "--dry-run", *given]) == 0, capsys.readouterr().err


def test_train_refuses_eval_samples_given_for_a_model_without_z_before_the_run_folder(tmp_path, capsys):
    """The evaluations of a model without z (nz=0) make one output per input whatever eval_samples says:
    `train --variant pix2pix --nz 0 --eval_samples 20` was taken, and changed nothing. Refused given above 1 as
    evaluate refuses --n_samples, before the run folder is written; the default (10), 1, and a run whose stored
    config holds 10 with nz 0, resumed, are no refusal."""
    run, flat = tmp_path / "run", ["--variant", "pix2pix", "--nz", "0"]
    # (--max_steps 1 --no-eval: were it taken, a short run, not the demo's)
    assert main(["train", *flat, "--eval_samples", "20", "--out", str(run), "--max_steps", "1", "--no-eval",
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bicyclegan train: ConfigError: --eval_samples 20: variant pix2pix has no latent code (nz=0): its "
        "evaluations make one output per input, no z drawn, so it changes nothing; leave it out")
    assert not run.exists()
    for given in ([], ["--eval_samples", "1"]):  # (demo preset: eval_every 400)
        assert main(["train", "--dry-run", *flat, *given]) == 0, given
    cfg = make_config("demo", out=str(run), variant="pix2pix", nz=0)
    assert (cfg.eval_samples, cfg.model.nz) == (10, 0) and cfg.eval_every
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    # (the run's config is what resuming starts from; the dry run reads its checkpoint as the run would)
    save_checkpoint(BicycleGAN(cfg), run / "checkpoints" / "latest.pt", step=1)
    capsys.readouterr()
    assert main(["train", "--dry-run", "--out", str(run), "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["eval_samples"] == 10
    assert main(["train", "--dry-run", "--out", str(run), "--resume", "--eval_samples", "5"]) == 2
    assert "ConfigError: --eval_samples 5: variant pix2pix has no latent code" in capsys.readouterr().err


def test_skip_bad_is_a_cli_option(capsys):
    assert main(["train", "--dry-run", "--skip_bad"]) == 0
    assert '"skip_bad": true' in capsys.readouterr().out


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    import bicyclegan.engine.cli as cli
    monkeypatch.setattr(cli, "resolve_config", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--dry-run"])


def test_ctrl_c_says_how_to_resume(monkeypatch, capsys, tmp_path):
    import bicyclegan.engine.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "resolve_config", interrupted)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "checkpoints" / "latest.pt").write_bytes(b"")  # (its presence is all that counts)
    assert main(["train", "--out", "runs/x", "--lr", "1e-3"]) == 130
    assert capsys.readouterr().err.strip().endswith("intact: bicyclegan train --out runs/x --resume")


# -- destinations and interrupted saves -----------------------------------------------------------
def test_unwritable_destinations_fail_before_work(tmp_path, data, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    bad = str(blocker / "sub")
    model = tiny_model()
    ckpt = tmp_path / "m.pt"
    model.cfg.data.dataroot = str(data)
    save_checkpoint(model, ckpt)
    for argv in (["make-demo", bad], ["sample", str(ckpt), "--out", bad],
                 ["evaluate", str(ckpt), "--json", bad + "/e.json"],
                 ["export", "--checkpoint", str(ckpt), "--out", bad + "/g.pt2"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "OutputError" in err and "a_file" in err and err.count("\n") == 1, err
    with pytest.raises(OutputError, match="run folder"):
        Trainer(cfg(bad, data), progress=False)


@pytest.mark.parametrize("sub", ["checkpoints", "samples"])
def test_a_run_folder_whose_checkpoints_or_grids_cannot_be_written_is_refused_before_work(tmp_path, data, sub,
                                                                                         monkeypatch):
    # checkpoints/ read-only: the run trained to its first save and stopped there, the steps since lost;
    # samples/: a resume from an earlier epoch set its later checkpoints aside (no latest.pt left), then
    # stopped with a traceback at the first grid it could not delete. Refused first, the folder untouched.
    out = tmp_path / "run"
    Trainer(cfg(out, data, niter=2, niter_decay=2, save_epoch_freq=1, save_every=4, sample_every=2),
            progress=False).train()
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != LOCK_FILE)
    real = tempfile.TemporaryFile

    def probe(*a, dir=None, **k):  # root writes anywhere: the probe's refusal stands in for a read-only folder
        if dir is not None and Path(dir) == out / sub:
            raise PermissionError(13, "Permission denied")
        return real(*a, dir=dir, **k)
    monkeypatch.setattr(tempfile, "TemporaryFile", probe)
    what = {"checkpoints": "the run's checkpoints", "samples": "the run's sample grids"}[sub]
    for kw in (dict(resume=True), dict(resume=True, epoch=1)):
        with pytest.raises(OutputError) as e:
            Trainer(cfg(out, data, niter=2, niter_decay=3, save_epoch_freq=1, save_every=4, sample_every=2),
                    progress=False, **kw).train()
        said = str(e.value)
        assert said.startswith(f"cannot write {what} into {out / sub}: Permission denied"), said
        assert said.endswith("; make it writable to continue the run there"), said
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != LOCK_FILE) == before


def test_a_device_or_a_pipe_given_as_a_file_to_write_is_refused_and_left_as_it_was(tmp_path, data, capsys):
    # The writers rename a temp file over their destination: `evaluate --json /dev/null` (or `export --out`)
    # run as root, as in a container, replaced the system's /dev/null with a regular file, into which every
    # later `> /dev/null` of the machine then wrote (found so, here, after an exploratory run).
    import stat as st
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match=f"cannot write results {pipe}: it is a named pipe, not a file; give a file's"):
        atomic.atomic_write(pipe, lambda f: f.write(b"{}"), what="results")
    model = tiny_model()
    model.cfg.data.dataroot = str(data)
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    for argv in (["evaluate", str(ckpt), "--num", "2", "--n_samples", "2", "--json", str(pipe)],
                 ["export", str(ckpt), "--out", str(pipe), "--format", "pt2"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "named pipe" in err and err.count("\n") == 1, err
    assert st.S_ISFIFO(os.lstat(pipe).st_mode)  # still the pipe
    from bicyclegan.kernels import tune
    with pytest.raises(ValueError, match="is no file"):
        tune._check_out(pipe)
    if hasattr(os, "mknod") and os.geteuid() == 0:  # a character device, as /dev/null is
        dev = tmp_path / "null"
        os.mknod(dev, 0o666 | st.S_IFCHR, os.makedev(1, 3))
        with pytest.raises(OSError, match="it is a character device, not a file"):
            atomic.atomic_write(dev, lambda f: f.write(b"{}"))
        assert st.S_ISCHR(os.lstat(dev).st_mode)


def test_a_full_disk_reported_by_torch_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(tiny_model(), path)
    before = path.read_bytes()

    def torch_full_disk(obj, f, *a, **k):  # what torch's zip writer raises when the disk is full
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                           "file data/3: file write failed")
    monkeypatch.setattr(torch, "save", torch_full_disk)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*file write failed .*MiB free.*intact"):
        save_checkpoint(tiny_model(), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.pt"]



def test_a_damaged_latest_checkpoint_names_the_runs_others_to_resume_from(tmp_path, data, monkeypatch):
    # "checkpoint .../latest.pt cannot be read: unreadable or truncated (...)" and nothing more, where the run's
    # epoch_2.pt resumed it.
    out = tmp_path / "run"
    def run(**kw):
        return cfg(out, data, niter=2, niter_decay=2, save_epoch_freq=1, save_every=100, **kw)  # 4 steps an epoch
    Trainer(run(max_steps=10), progress=False).train()
    latest = out / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as e:
        Trainer(run(max_steps=12), resume=True, progress=False)
    assert str(e.value).startswith(f"checkpoint {latest} cannot be read: ")
    # (and what a Python caller writes for it)
    assert str(e.value).endswith("; resume from another of the run's checkpoints instead: --resume --epoch 2 "
                                 "(epoch=2 in Python; the others: epoch_1.pt)")
    assert Trainer(run(max_steps=12), resume=True, epoch=2, progress=False).step == 8  # which does
    # Many kept: the newest that opens and five more named, the rest counted, not opened (400 files took 25 s, and
    # their names one line); a damaged one is skipped
    for n in range(3, 10):
        shutil.copy(out / "checkpoints" / "epoch_1.pt", out / "checkpoints" / f"epoch_{n}.pt")
    (out / "checkpoints" / "epoch_8.pt").write_bytes(b"damaged")
    shutil.copy(out / "checkpoints" / "epoch_1.pt", out / "checkpoints" / "best.pt")  # named next to the newest
    latest.write_bytes(b"damaged")
    opened = []
    trainer_module = importlib.import_module("bicyclegan.engine.trainer")
    real_peek = trainer_module.peek_checkpoint
    monkeypatch.setattr(trainer_module, "peek_checkpoint",
                        lambda path, *keys: opened.append(Path(path).name) or real_peek(path, *keys))
    with pytest.raises(CheckpointError) as e:
        Trainer(run(max_steps=12), resume=True, progress=False)
    monkeypatch.undo()
    assert str(e.value).endswith("; resume from another of the run's checkpoints instead: --resume --epoch 9 "
                                 "(epoch=9 in Python; the others: best.pt, epoch_7.pt, epoch_6.pt, epoch_5.pt, "
                                 "epoch_4.pt and 3 more, not opened to see whether they open)")
    assert [n for n in opened if n.startswith(("epoch", "best"))] == [
        "epoch_9.pt", "best.pt", *(f"epoch_{n}.pt" for n in (8, 7, 6, 5, 4))]
    for n in range(3, 10):
        (out / "checkpoints" / f"epoch_{n}.pt").unlink()
    (out / "checkpoints" / "best.pt").unlink()
    (out / "checkpoints" / "epoch_1.pt").unlink()
    for name in ("epoch_2.pt", "latest.pt"):  # (the resume from epoch_2.pt made it latest.pt too)
        (out / "checkpoints" / name).write_bytes(b"damaged")
    for epoch in (None, 2):  # none other to resume from
        with pytest.raises(CheckpointError, match=r"; the run kept no other checkpoint to resume from: start it "
                                                  r"again in a new --out, or delete .+ first \(--save_epoch_freq N "
                                                  r"also keeps one every N epochs\)$"):
            Trainer(run(max_steps=12), resume=True, epoch=epoch, progress=False)


def test_a_checkpoint_past_a_file_size_limit_says_the_limit(tmp_path):
    # ulimit -f (a batch system's, say) stopped torch's writer short: "[enforce fail at inline_container.cc:672] .
    # unexpected pos 1019200 vs 1019088 (76135 MiB free in ...)", a disk of room and no cause said.
    resource = pytest.importorskip("resource")
    path = tmp_path / "ck.pt"
    save_checkpoint(tiny_model(), path)
    before = path.read_bytes()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    assert len(before) > 256 * 1024  # (about 400 KB)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, limits[1]))  # (Python ignores SIGXFSZ)
    try:
        with pytest.raises(CheckpointError) as e:
            save_checkpoint(tiny_model(), path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert str(e.value).startswith(f"cannot write checkpoint {path}: ")
    assert "; ulimit -f limits files to 256 KiB); the previous one is intact" in str(e.value)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.pt"]


def test_a_checkpoint_the_disk_cannot_take_stops_the_run_naming_the_step_and_the_one_to_resume(tmp_path, data,
                                                                                            monkeypatch):
    # "cannot write checkpoint .../latest.pt: No space left on device (...); the previous one is intact": of which
    # step, and what to do, went unsaid (the training log's full disk says both).
    t = Trainer(cfg(tmp_path / "run", data, max_steps=4, save_every=2, log_every=2), progress=False)
    replace = os.replace

    def full_at_step_4(src, dst, **kw):
        if str(dst).endswith("latest.pt") and t.step == 4:
            raise OSError(28, "No space left on device")
        return replace(src, dst, **kw)
    monkeypatch.setattr(os, "replace", full_at_step_4)
    with pytest.raises(CheckpointError) as e:
        t.train()
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    first, then = str(e.value).splitlines()
    assert first.startswith(f"training stopped at step 4: cannot write checkpoint {ckpt}: No space left on device (")
    assert then == f"the last good checkpoint is {ckpt} (step 2): resume it with --resume"
    assert read_checkpoint(ckpt)["step"] == 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_the_training_log_is_one_line_naming_it(tmp_path, data):
    # log.jsonl is appended to, not written atomically: a full disk there was a bare OSError.
    t = Trainer(cfg(tmp_path / "run", data, max_steps=4, save_every=2, log_every=3), progress=False)
    os.symlink("/dev/full", tmp_path / "run" / "log.jsonl")  # every write: ENOSPC
    with pytest.raises(OutputError, match=r"cannot write the training log .*log.jsonl at step 3: No space "
                                          r"left on device.*last good checkpoint is .*latest.pt \(step 2\)"):
        t.train()


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    path = tmp_path / "checkpoints" / "latest.pt"
    path.parent.mkdir()
    for i in range(3):
        (path.parent / f".latest.pt.kill{i}.tmp").write_bytes(b"x" * 100)
    (path.parent / "other.tmp").write_bytes(b"keep")
    save_checkpoint(tiny_model(), path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt", "other.tmp"]


def test_a_write_removes_its_own_names_temp_files_only(tmp_path):
    # The temp files were found with a glob of the name: one holding [1] (a file name as cameras and
    # downloads make them) read it as a pattern and missed its own, and x's glob took x.png's temps too.
    for name in (".img[1].png.kill0.tmp", ".img1.png.kill0.tmp", ".x.png.kill0.tmp", ".x.kill0.tmp", ".x.kill1.tmp"):
        (tmp_path / name).write_bytes(b"x")

    def left():
        return sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    atomic.atomic_write(tmp_path / "img[1].png", lambda f: f.write(b"new"))
    assert left() == [".img1.png.kill0.tmp", ".x.kill0.tmp", ".x.kill1.tmp", ".x.png.kill0.tmp"]
    atomic.atomic_write(tmp_path / "x", lambda f: f.write(b"new"))
    assert left() == [".img1.png.kill0.tmp", ".x.png.kill0.tmp"]



WRITER = """
import sys, time
from pathlib import Path
from bicyclegan.pipelines.atomic import atomic_write
target, go = Path(sys.argv[1]), Path(sys.argv[2])

def write(f):
    f.write(b"second")
    print("writing", flush=True)  # (its temp file is there now)
    while not go.exists():
        time.sleep(0.01)
atomic_write(target, write)
"""


def test_a_write_in_progress_in_another_process_keeps_its_temp_file(tmp_path):
    """Two processes writing one file at once (two `sample` calls into one folder, torchrun's ranks): the
    first write removed the other's temp file as a killed write's, and the other's rename failed."""
    target, go = tmp_path / "x.png", tmp_path / "go"
    other = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(go)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "writing\n", other.stderr.read()
        atomic.atomic_write(target, lambda f: f.write(b"first"))
        assert target.read_bytes() == b"first"
    finally:
        go.touch()
        _, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert target.read_bytes() == b"second" and atomic.temp_files(target) == []


@pytest.mark.parametrize("name", ["x" * 241 + ".png", "é" * 120 + "x.png"], ids=["245 bytes", "245 bytes utf-8"])
def test_a_name_near_the_file_systems_limit_is_written_and_its_killed_writes_temp_is_found(tmp_path, name):
    # The temp file's name adds ~45 bytes to the file's: a legal 245-byte name's write was "File name too long"
    # (export: a traceback; evaluate --json: blamed on the name given).
    target = tmp_path / name
    assert len(os.fsencode(name)) == 245
    atomic.atomic_write(target, lambda f: f.write(b"one"))
    assert target.read_bytes() == b"one" and os.listdir(tmp_path) == [name]
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    fd, temp = atomic.temp_beside(target)  # as a killed write left it: named for a process now gone
    os.close(fd)
    killed = Path(temp).with_name(Path(temp).name.replace(f".{os.getpid()}-", f".{gone.pid}-"))
    os.rename(temp, killed)
    assert len(os.fsencode(killed.name)) <= 255 and atomic.temp_files(target) == [killed]
    atomic.atomic_write(target, lambda f: f.write(b"two"))  # removes the killed write's temp file
    assert target.read_bytes() == b"two" and os.listdir(tmp_path) == [name]
    other = tmp_path / ("x" * 240 + "y.png")  # the first name's first 180 bytes: another file, whose temps are not its
    atomic.atomic_write(other, lambda f: f.write(b"other"))
    assert atomic.temp_files(target) == [] and sorted(os.listdir(tmp_path)) == sorted([name, other.name])


def test_only_temp_files_no_live_writer_can_own_are_stale(tmp_path, monkeypatch):
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = atomic._HOST
        other_host = f"{(int(host, 16) + 1) % 2**32:08x}"
        temps = {f".x.png.{gone.pid}-{host}-abc_1.tmp": True,  # its process has ended: killed
                 f".x.png.{live.pid}-{host}-abc_2.tmp": False,  # its process still runs: in progress
                 f".x.png.{os.getpid()}-{host}-abc_3.tmp": False,  # this process's
                 f".x.png.{gone.pid}-{other_host}-abc_4.tmp": False,  # another machine's: not to be judged here
                 ".x.png.abc_5.tmp": True}  # a name of a version before writers were named: a killed write's
        for name in temps:
            (tmp_path / name).write_bytes(b"x")
        assert {p.name: atomic.is_stale(p) for p in atomic.temp_files(tmp_path / "x.png")} == temps
        atomic.atomic_write(tmp_path / "x.png", lambda f: f.write(b"new"))
        assert sorted(p.name for p in atomic.temp_files(tmp_path / "x.png")) == sorted(n for n, s in temps.items()
                                                                                       if not s)
    finally:
        live.kill()
        live.wait()
    # the write's own temp file names it: this process, this machine
    seen = []
    atomic.atomic_write(tmp_path / "y.png", lambda f: seen.extend(atomic.temp_files(tmp_path / "y.png")))
    assert len(seen) == 1 and seen[0].name.startswith(f".y.png.{os.getpid()}-{host}-"), seen

    def another_users(pid, signal):  # (what os.kill says of another user's process, to all but root)
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "kill", another_users)
    assert not atomic.is_stale(tmp_path / f".x.png.{gone.pid}-{host}-abc_6.tmp")


def test_remove_stale_removes_every_killed_writes_temp_and_takes_one_gone_since_the_listing(tmp_path):
    # A folder listed once (TempFiles: sample's images/) holds three temp files of killed writes to x.png; one is
    # removed after the listing (another call into the folder): every other one goes, and the one gone is no
    # FileNotFoundError (the removal asked for is done).
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    names = [f".x.png.{gone.pid}-{atomic._HOST}-abc_{i}.tmp" for i in range(3)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    temps = atomic.TempFiles(tmp_path)
    (tmp_path / names[1]).unlink()
    temps.remove_stale(tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def _disk_calls(monkeypatch) -> list:
    """os.fsync's and os.replace's calls from then on, each as it returned (an fsync) or began (a rename):
    ("fsync", inode, of a folder), ("rename", the temp's inode, the name it is given)."""
    import threading
    calls, lock, fsync, replace = [], threading.Lock(), os.fsync, os.replace

    def fsynced(fd):
        fsync(fd)
        st = os.fstat(fd)
        with lock:
            calls.append(("fsync", st.st_ino, stat.S_ISDIR(st.st_mode)))

    def renamed(src, dst, **kw):
        with lock:
            calls.append(("rename", os.stat(src).st_ino, Path(dst).name))
        return replace(src, dst, **kw)
    monkeypatch.setattr(os, "fsync", fsynced)
    monkeypatch.setattr(os, "replace", renamed)
    return calls


def test_atomic_writes_renames_no_file_before_every_fsync_returned_and_then_fsyncs_the_folder(tmp_path, monkeypatch):
    # A file renamed before its data is on the disk can be, after a power cut, a cut or empty file under its own
    # name: a resumed sample took such an image as written. The folder's fsync comes after the renames it keeps.
    from concurrent.futures import ThreadPoolExecutor
    calls = _disk_calls(monkeypatch)
    names = [f"{k}.png" for k in range(6)]
    (tmp_path / "3.png").write_bytes(b"old")
    with ThreadPoolExecutor(3) as pool, atomic.AtomicWrites() as group:
        list(pool.map(lambda n: group.add(tmp_path / n, lambda f: f.write(n.encode() * 1000)), names))
        assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".tmp")) == ["3.png"]  # none renamed yet
        assert sorted(group.commit(pool.map)) == [tmp_path / n for n in names]
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == {n: n.encode() * 1000 for n in names}
    renames = [i for i, c in enumerate(calls) if c[0] == "rename"]
    assert sorted(calls[i][2] for i in renames) == names
    fsynced = {c[1] for c in calls[:renames[0]] if c[0] == "fsync" and not c[2]}
    assert {calls[i][1] for i in renames} == fsynced  # every file's fsync returned before the first rename
    assert calls[-1] == ("fsync", tmp_path.stat().st_ino, True) and len(calls) == 2 * len(names) + 1


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts this process's descriptors in /proc")
def test_atomic_writes_hold_no_descriptor_per_file_until_the_commit(tmp_path):
    # Each temp file was held open from its add() to the commit: one input's images took a descriptor each, and
    # sample --n_samples 1100 failed at the usual limit of 1,024 ("Too many open files", exit 2, nothing written).
    def open_files():
        return len(os.listdir("/proc/self/fd"))
    before = open_files()
    with atomic.AtomicWrites() as group:
        for k in range(40):
            group.add(tmp_path / f"{k}.png", lambda f, k=k: f.write(b"%d" % k))
        assert open_files() <= before
        assert len(group.commit()) == 40
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == {f"{k}.png": b"%d" % k for k in range(40)}
    assert open_files() <= before


def test_atomic_writes_left_uncommitted_leave_nothing_also_of_a_write_still_running(tmp_path):
    # A failure or Ctrl-C in the caller (the with block's end) while the pool's threads still write: no file is
    # renamed, and no temp file is left, also of a write that ended after (those after it are not begun).
    with pytest.raises(KeyboardInterrupt):
        with atomic.AtomicWrites() as group:
            group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []

    def stopped_meanwhile(f):
        f.write(b"b")
        group.discard()  # (the caller's with block ends while this is written)
    group = atomic.AtomicWrites()
    group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
    group.add(tmp_path / "b.png", stopped_meanwhile)
    group.add(tmp_path / "c.png", lambda f: f.write(b"c"))
    assert group.commit() == [] and os.listdir(tmp_path) == []


def test_atomic_writes_failures_name_the_file_and_rename_none_after_it(tmp_path, monkeypatch, replace_fails):
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(1, 1, 3 * 2 ** 20))
    # a write that fails: its error, the others written not renamed
    with pytest.raises(OutputError, match=rf"^cannot write image {re.escape(str(tmp_path / 'b.png'))}: No space left "
                                          rf"on device \(3 MiB free in "):
        with atomic.AtomicWrites(what="image", error=OutputError) as group:
            group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
            group.add(tmp_path / "b.png", _raise(OSError(28, "No space left on device")))
    assert os.listdir(tmp_path) == []
    # an fsync that fails (a disk's I/O error): none renamed
    fsync = os.fsync

    def failing(fd):
        if os.fstat(fd).st_size == 1:
            raise OSError(5, "Input/output error")
        return fsync(fd)
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OutputError, match=rf"^cannot write image {re.escape(str(tmp_path / 'b.png'))}: Input/output "):
        with atomic.AtomicWrites(what="image", error=OutputError) as group:
            group.add(tmp_path / "a.png", lambda f: f.write(b"aa"))
            group.add(tmp_path / "b.png", lambda f: f.write(b"b"))
            group.commit()
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(os, "fsync", fsync)
    # a rename that fails: those before it in place (whole), no temp file left
    replace_fails("b.png")
    with pytest.raises(OutputError, match=rf"^cannot write image {re.escape(str(tmp_path / 'b.png'))}: Input/output "):
        with atomic.AtomicWrites(what="image", error=OutputError) as group:
            for name in ("a.png", "b.png", "c.png"):
                group.add(tmp_path / name, lambda f, n=name: f.write(n.encode()))
            group.commit()
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == {"a.png": b"a.png"}


def test_atomic_writes_a_failed_fsync_waits_for_the_others_before_closing_their_files(tmp_path, monkeypatch):
    # The first file's fsync fails at once, the second's is slow: commit raises the failure only once the slow one
    # returned, its file still open under it (closed and removed under a running fsync, it could fsync a descriptor
    # reused meanwhile by another file).
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    fsync, ended = os.fsync, []

    def fsynced(fd):
        if os.fstat(fd).st_size == 1:
            raise OSError(5, "Input/output error")
        time.sleep(0.3)
        os.fstat(fd)  # (EBADF had the file been closed meanwhile)
        fsync(fd)
        ended.append(threading.current_thread().name)
    monkeypatch.setattr(os, "fsync", fsynced)
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(OutputError, match=rf"^cannot write image {re.escape(str(tmp_path / 'a.png'))}: Input/"):
            with atomic.AtomicWrites(what="image", error=OutputError) as group:
                group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
                group.add(tmp_path / "b.png", lambda f: f.write(b"bb"))
                group.commit(pool.map)
        assert len(ended) == 1  # (before the pool's end waited for it)
    assert os.listdir(tmp_path) == []


def test_atomic_writes_a_ctrl_c_after_the_last_rename_is_raised_as_such(tmp_path):
    # A Ctrl-C that lands as the renames' loop ends (each file renamed): the KeyboardInterrupt, which the commands
    # answer as a stop, not an IndexError of the file it would have named. (Raised there by a trace function.)
    import linecache

    def tracer(frame, event, arg):
        if frame.f_code is not atomic.AtomicWrites.commit.__code__:
            return None

        def local(frame, event, arg):
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            if event == "line" and line == "for _, path, tmp in staged:" and frame.f_locals.get("done") == 2:
                raise KeyboardInterrupt
            return local
        return local
    with atomic.AtomicWrites() as group:
        group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
        group.add(tmp_path / "b.png", lambda f: f.write(b"b"))
        sys.settrace(tracer)
        try:
            with pytest.raises(KeyboardInterrupt):
                group.commit()
        finally:
            sys.settrace(None)
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == {"a.png": b"a", "b.png": b"b"}

def test_atomic_writes_add_after_the_group_closed_makes_nothing(tmp_path):
    # An image's write that begins once the caller's with block ended (a failure, Ctrl-C: the writers' queue
    # still running) or once the group was committed (it would never be renamed) makes nothing: no PNG encoded for
    # nothing, not even the folder it was for.
    called = []
    with atomic.AtomicWrites() as group:
        pass
    group.add(tmp_path / "new" / "a.png", lambda f: called.append(f.write(b"a")))
    assert called == [] and os.listdir(tmp_path) == []
    with atomic.AtomicWrites() as group:
        group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
        assert group.commit() == [tmp_path / "a.png"]
        group.add(tmp_path / "new" / "b.png", lambda f: called.append(f.write(b"b")))
        assert called == [] and os.listdir(tmp_path) == ["a.png"]


def test_atomic_writes_fsync_their_folders_once_each_and_name_the_folder_whose_fsync_failed(tmp_path, monkeypatch):
    # The renames are durable once their folders are fsynced: each folder once, whatever holds how many of the files;
    # a file system without a folder's fsync (EINVAL, ENOTSUP) writes as one with it; one whose folder's fsync fails
    # (EIO) has the files whole in place, the error naming the folder.
    calls = _disk_calls(monkeypatch)
    (tmp_path / "x").mkdir()
    with atomic.AtomicWrites() as group:
        for rel in ("a.png", "x/b.png", "c.png", "x/d.png"):
            group.add(tmp_path / rel, lambda f, r=rel: f.write(r.encode()))
        group.commit()
    folders = [c[1] for c in calls if c[0] == "fsync" and c[2]]
    assert sorted(folders) == sorted([tmp_path.stat().st_ino, (tmp_path / "x").stat().st_ino])
    fsync = os.fsync
    for err in (errno.EINVAL, errno.ENOTSUP, errno.EIO):
        def refusing(fd, err=err):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(err, os.strerror(err))
            return fsync(fd)
        monkeypatch.setattr(os, "fsync", refusing)
        with contextlib.ExitStack() as raised:
            if err == errno.EIO:
                raised.enter_context(pytest.raises(OutputError, match=rf"^cannot write image files into "
                                                                       rf"{re.escape(str(tmp_path))}: Input/output "))
            with atomic.AtomicWrites(what="image", error=OutputError) as group:
                group.add(tmp_path / "e.png", lambda f, e=err: f.write(str(e).encode()))
                assert group.commit() == [tmp_path / "e.png"]
        assert (tmp_path / "e.png").read_bytes() == str(err).encode()
    assert sorted(os.listdir(tmp_path)) == ["a.png", "c.png", "e.png", "x"]


def test_atomic_writes_write_through_a_link_and_return_the_names_given(tmp_path, monkeypatch):
    # As atomic_write: the link's target gets the contents, the link stays, its name is what commit returns.
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "real.png").write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(tmp_path / "t" / "real.png")
    with atomic.AtomicWrites(temps=atomic.TempFiles(tmp_path)) as group:
        group.add(tmp_path / "link.png", lambda f: f.write(b"new"))
        group.add(tmp_path / "plain.png", lambda f: f.write(b"plain"))
        assert group.commit() == [tmp_path / "link.png", tmp_path / "plain.png"]
    assert (tmp_path / "link.png").is_symlink() and (tmp_path / "t" / "real.png").read_bytes() == b"new"
    assert os.listdir(tmp_path / "t") == ["real.png"] and (tmp_path / "plain.png").read_bytes() == b"plain"
    # a failed fsync names the file written, the link's target, as atomic_write's failures do
    def failing(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match=rf"^cannot write file {re.escape(str(tmp_path / 't' / 'real.png'))}: Input/"):
        with atomic.AtomicWrites() as group:
            group.add(tmp_path / "link.png", lambda f: f.write(b"newer"))
            group.commit()
    assert (tmp_path / "t" / "real.png").read_bytes() == b"new" and os.listdir(tmp_path / "t") == ["real.png"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the open descriptors listed by Linux's /proc")
def test_atomic_writes_leave_no_file_open(tmp_path):
    # Every temp file is closed by the group before its rename or removal (Windows renames no open file), and the
    # folder's descriptor of its fsync too: a sample of 40,000 images ran out of descriptors otherwise.
    import gc
    import warnings
    gc.collect()
    before = sorted(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", ResourceWarning)
        with atomic.AtomicWrites() as group:
            group.add(tmp_path / "a.png", lambda f: f.write(b"a"))
            group.commit()
        with atomic.AtomicWrites() as group:
            group.add(tmp_path / "b.png", lambda f: f.write(b"b"))
        group = atomic.AtomicWrites()
        group.add(tmp_path / "c.png", lambda f: group.discard())
        gc.collect()
    assert [str(w.message) for w in warned if w.category is ResourceWarning] == []
    assert sorted(os.listdir("/proc/self/fd")) == before and os.listdir(tmp_path) == ["a.png"]


def test_atomic_writes_a_folder_removed_before_the_commit_is_named(tmp_path):
    # The folder removed between the writes and their commit (another program's cleanup): the error names the file.
    name = re.escape(str(tmp_path / "x" / "a.png"))
    with pytest.raises(OutputError, match=rf"^cannot write image {name}: No such ") as raised:
        with atomic.AtomicWrites(what="image", error=OutputError) as group:
            group.add(tmp_path / "x" / "a.png", lambda f: f.write(b"a"))
            shutil.rmtree(tmp_path / "x")
            group.commit()
    assert os.listdir(tmp_path) == [] and isinstance(raised.value.__cause__, FileNotFoundError)  # (--debug shows it)


def test_atomic_writes_refuse_a_link_to_a_processs_stream(tmp_path):
    # The name given is judged, not the link's target: out.png -> /dev/stdout resolves to the file or pipe the
    # stream is on, which a rename would have replaced or missed.
    (tmp_path / "out.png").symlink_to("/dev/stdout")
    with pytest.raises(OutputError, match="it is a process's open file"):
        with atomic.AtomicWrites(what="image", error=OutputError) as group:
            group.add(tmp_path / "out.png", lambda f: f.write(b"x"))
    assert os.listdir(tmp_path) == ["out.png"] and os.readlink(tmp_path / "out.png") == "/dev/stdout"


def test_file_sha256_is_the_digest_of_the_whole_file(tmp_path):
    # Read a MiB at a time: a file of several blocks and a short last one, and an empty one (SHA-256's known
    # digest of no bytes). Two files that differ after their first MiB alone have other digests.
    data = bytes(range(256)) * (5 * 4096 + 3)  # 5 MiB and 768 bytes
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(data[:-1] + b"x")
    (tmp_path / "empty").write_bytes(b"")
    assert io.file_sha256(tmp_path / "a") == hashlib.sha256(data).hexdigest()
    assert io.file_sha256(tmp_path / "b") == hashlib.sha256(data[:-1] + b"x").hexdigest() != io.file_sha256(
        tmp_path / "a")
    assert io.file_sha256(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# -- run folders and resume -----------------------------------------------------------------------
def test_a_run_that_never_saved_is_not_continued_silently(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(CheckpointError, match="already holds a run"):
        Trainer(cfg(run, data), progress=False)
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        Trainer(cfg(run, data), resume=True, progress=False)


class Killed(BaseException):
    """A kill -9 in a test: nothing of the run's handles it (no checkpoint, no report), as a SIGKILL."""


def killed_at(trainer, monkeypatch, name: str, step: int) -> None:
    """Make `trainer` stop as a kill does at its write of checkpoints/`name` at `step`, the write's temporary file
    left behind empty (a kill's, its writer gone)."""
    from bicyclegan.engine import trainer as trainer_module
    real = trainer_module.save_checkpoint

    def save_checkpoint(model, path, **kw):
        if Path(path).name == name and trainer.step == step:
            (Path(path).parent / f".{name}.abc.tmp").write_bytes(b"")
            raise Killed
        return real(model, path, **kw)
    monkeypatch.setattr(trainer_module, "save_checkpoint", save_checkpoint)


def test_a_kill_while_an_epochs_checkpoint_is_written_loses_it_not(tmp_path, data, monkeypatch):
    # latest.pt of the epoch's last step is written first, then epoch_N.pt: killed during the latter, the resume
    # from latest.pt went on to the next epoch, and the epoch's save never came again (its temp file stayed too).
    def run(out, **kw):  # 4 steps an epoch, latest.pt every 2
        return cfg(out, data, niter=2, niter_decay=2, save_epoch_freq=1, **kw)
    Trainer(run(tmp_path / "whole"), progress=False).train()
    for total in (16, 8):  # killed mid-run, and at the run's end (whose resume has nothing to train)
        out = tmp_path / f"run{total}"
        t = Trainer(run(out, max_steps=total), progress=False)
        killed_at(t, monkeypatch, "epoch_2.pt", 8)
        with pytest.raises(Killed):
            t.train()
        monkeypatch.undo()
        assert sorted(os.listdir(out / "checkpoints")) == [".epoch_2.pt.abc.tmp", "epoch_1.pt", "latest.pt"]
        assert peek_checkpoint(out / "checkpoints" / "latest.pt", "step")[0] == 8
        Trainer(run(out, max_steps=total), resume=True, progress=False).train()
        names = sorted(os.listdir(out / "checkpoints"))
        assert names == [f"epoch_{n}.pt" for n in range(1, total // 4 + 1)] + ["latest.pt"], names
        again, whole = read_checkpoint(out / "checkpoints" / "epoch_2.pt"), read_checkpoint(
            tmp_path / "whole" / "checkpoints" / "epoch_2.pt")
        assert (again["step"], again["epoch"]) == (whole["step"], whole["epoch"]) == (8, 2)
        for net in whole["nets"]:  # the uninterrupted run's epoch 2
            assert all(torch.equal(again["nets"][net][k], v) for k, v in whole["nets"][net].items())


@pytest.mark.parametrize("resume", [True, "auto"])
def test_a_resume_continues_from_a_checkpoint_newer_than_latest(tmp_path, data, monkeypatch, capsys, resume):
    # Killed after epoch_2.pt (step 8) and before the next latest.pt (step 9, save_every 3): the resume went back to
    # latest.pt of step 6, retrained steps 7 and 8 and moved epoch_2.pt aside as another continuation's.
    out = tmp_path / "run"
    run = cfg(out, data, niter=2, niter_decay=2, save_epoch_freq=1, save_every=3)  # 4 steps an epoch
    t = Trainer(run, progress=False)
    killed_at(t, monkeypatch, "latest.pt", 9)
    with pytest.raises(Killed):
        t.train()
    monkeypatch.undo()
    folder = out / "checkpoints"
    assert peek_checkpoint(folder / "latest.pt", "step")[0] == 6
    capsys.readouterr()
    t = Trainer(cfg(out, data, niter=2, niter_decay=2, save_epoch_freq=1, save_every=3), resume=resume,
                progress=False)
    assert (t.step, t.resume_path) == (8, folder / "epoch_2.pt")
    assert "moved" not in capsys.readouterr().err
    t.train()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "epoch_4.pt", "latest.pt"]
    # best.pt of a later step than latest.pt's (an evaluation's better weights, killed before the next save)
    shutil.copy(folder / "epoch_3.pt", folder / "latest.pt")
    assert newest_beside(folder / "latest.pt") == folder / "epoch_4.pt"
    os.replace(folder / "epoch_4.pt", folder / "best.pt")
    assert newest_beside(folder / "latest.pt") == folder / "best.pt"
    shutil.copy(folder / "best.pt", folder / "latest.pt")  # a tie: latest.pt
    assert newest_beside(folder / "latest.pt") == folder / "latest.pt"


def test_resume_auto_starts_again_a_run_of_its_config_that_never_saved(tmp_path, data, capsys):
    # A job killed before its first checkpoint (an OOM kill, a preemption) and requeued with --resume auto was
    # refused on every restart: "already holds a run that stopped before its first checkpoint ... delete the folder".
    out = tmp_path / "run"

    def run(where=out, **kw):
        return cfg(where, data, max_steps=4, save_every=100, sample_every=2, load_size=286,  # (the CLI's)
                   eval_every=2, eval_metrics="l1", eval_num=4, eval_samples=2, **kw)
    Trainer(run(tmp_path / "whole"), progress=False).train()
    t = Trainer(run(), progress=False)
    real = t.model.train_step

    def train_step(batch):
        if t.step == 3:
            raise Killed
        return real(batch)
    t.model.train_step = train_step
    with pytest.raises(Killed):
        t.train()
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert not (out / "checkpoints" / "latest.pt").exists()
    copy = shutil.copytree(out, tmp_path / "copy")
    capsys.readouterr()
    args = ["train", "--out", str(out), "--resume", "auto", "--dataroot", str(data), "--max_steps", "4",
            "--save_every", "100", "--sample_every", "2", *(f"--{k}={v}" for k, v in TINY.items()),
            "--batch_size", "4", "--preprocess", "none", "--num_workers", "0", "--niter", "1",
            "--niter_decay", "1", "--log_every", "1", "--n_samples", "2", "--no-progress", "--eval_every", "2",
            "--eval_metrics", "l1", "--eval_num", "4", "--eval_samples", "3"]  # (may change, as on a resume)
    assert main(args) == 0
    assert ("note: " + f"{out} holds a run of this config that stopped before its first checkpoint: --resume auto "
            f"starts it again, its log, evaluations and grids replaced") in capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # once each, not 1, 2, 3, 1, 2, 3, 4
    assert [r["step"] for r in map(json.loads, (out / "eval_log.jsonl").read_text().splitlines())] == [2, 4]
    assert [r["G_L1"] for r in rows] == [r["G_L1"] for r in whole]
    assert sorted(os.listdir(out / "samples")) == sorted(os.listdir(tmp_path / "whole" / "samples"))
    moved = shutil.copytree(data, tmp_path / "data2")
    for other in (dict(lambda_L1=5.0), dict(init_from=str(tmp_path / "whole")), dict(dataroot=str(moved))):
        with pytest.raises(CheckpointError, match=r"stopped before its first checkpoint .+ \(--resume auto starts it "
                                                  r"again with the config it started with alone: "):
            Trainer(run(copy, **other), resume="auto", progress=False)
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        Trainer(run(copy), resume=True, progress=False)  # (a plain --resume: nothing to resume)
    # an evaluation's best.pt there (kept weights, which a new start would mix with its own): refused as before
    (copy / "checkpoints").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "whole" / "checkpoints" / "latest.pt", copy / "checkpoints" / "best.pt")
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        Trainer(run(copy), resume="auto", progress=False)


def test_resume_on_a_smaller_dataset_is_refused(tmp_path, data):
    Trainer(cfg(tmp_path / "run", data, max_steps=3), progress=False).train()
    small = make_demo_dataset(tmp_path / "small", n_train=8, n_test=2, size=32, seed=0)
    with pytest.raises(CheckpointError, match="4 batches per epoch, the data now gives 2"):
        Trainer(cfg(tmp_path / "run", small, max_steps=6), resume=True, progress=False)


def test_training_on_a_folder_a_without_b_is_one_line_naming_it(tmp_path, capsys):
    # train/A/ with its partners in train/b/ (a typo, or a case-sensitive disk) was detected as inputs
    # alone (layout "single", as sample reads them): the first step failed with KeyError: 'B'.
    rng = np.random.default_rng(0)
    for folder in ("A", "b"):
        (tmp_path / "data/train" / folder).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / f"data/train/{folder}/{i}.png")
    argv = ["train", "--dataroot", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--max_steps", "1",
            "--batch_size", "2", "--load_size", "32", "--num_workers", "0", "--backend", "torch"]
    for name, value in TINY.items():
        argv += [f"--{name}", str(value)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"DatasetError: {tmp_path / 'data/train/A'} has no B folder beside it: " \
        "training needs pairs" in err, err


def test_inference_needs_only_the_model_and_its_data_settings(tmp_path):
    """A 512 px model imports with its own data settings (the old default load size 286 refused it)."""
    from bicyclegan.engine import import_official
    mcfg = ModelConfig(**{**TINY, "crop_size": 512})
    with torch.device("meta"):
        G = BicycleGAN(TrainConfig(model=mcfg, data=DataConfig(load_size=512)), training=False).G
    torch.save({k: torch.zeros(v.shape) for k, v in G.state_dict().items()}, tmp_path / "G.pth")
    model = import_official(mcfg, G=tmp_path / "G.pth")
    assert model.cfg.data.load_size == 512 and model.cfg.data.no_flip


def test_a_peek_at_a_file_that_is_no_torch_file_says_so(tmp_path):
    # evaluate --epoch all on a garbage epoch_2.pt said torch's advice for memory-mapped loading ("please torch.save
    # your checkpoint with _use_new_zipfile_serialization=True"), where sample said what the file is.
    from bicyclegan.engine.checkpoint import peek_checkpoint
    (bad := tmp_path / "epoch_2.pt").write_bytes(b"garbage\n")
    with pytest.raises(CheckpointError, match=r"epoch_2.pt cannot be read \(not a torch file: it begins "
                                              r"b'garbage\\n'\); move it away$"):
        peek_checkpoint(bad, "step")
    (cut := tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 and no more")
    with pytest.raises(CheckpointError, match=r"cut.pt cannot be read \([A-Za-z]+Error: "):
        peek_checkpoint(cut, "step")


def test_a_write_to_a_symbolic_link_goes_to_its_target_and_the_link_stays(tmp_path):
    # `evaluate --json link.json`, link.json -> shared/real.json: the rename replaced the link with a file of its
    # own, and real.json kept its old contents.
    (tmp_path / "shared").mkdir()
    real, link = tmp_path / "shared" / "real.json", tmp_path / "link.json"
    real.write_text("{}")
    link.symlink_to(real)
    assert atomic.atomic_write(link, lambda f: f.write(b"new"), temps=atomic.TempFiles(tmp_path)) == link
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path / "shared")) == ["real.json"]  # (its temp file was made there, and is gone)
    (tmp_path / "gone.json").symlink_to(tmp_path / "shared" / "made.json")  # a dangling link: its target is made
    atomic.atomic_write(tmp_path / "gone.json", lambda f: f.write(b"made"))
    assert (tmp_path / "shared" / "made.json").read_bytes() == b"made" and (tmp_path / "gone.json").is_symlink()
    (tmp_path / "null.json").symlink_to(os.devnull)  # a link to a device: refused as the device is
    with pytest.raises(OSError, match="it is a character device, not a file"):
        atomic.atomic_write(tmp_path / "null.json", lambda f: f.write(b"x"))
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)


@pytest.mark.parametrize("kw", [dict(use_same_D=True, lambda_GAN=0.0), dict(variant="clr", lambda_z=0.0),
                                dict(variant="cvae", lambda_L1=0.0, lambda_GAN=0.0, lambda_kl=0.0)])
def test_a_run_an_earlier_version_trained_with_options_now_refused_still_samples(tmp_path, capsys, kw):
    # These were refused in the config itself: every command (sample, evaluate, export, serve, --init_from with
    # the option mended) failed on the stored config, the trained G out of reach. Now a training refuses them.
    cfg = make_config("reference", **TINY, load_size=32, preprocess="none", **kw)
    # (a model to train is refused, as train refuses: BicycleGAN(cfg).train_step is the README's one iteration)
    with pytest.raises(ConfigError, match="earlier version trained so.*A model for inference, which this config still "
                                          r"makes: training=False \(load_checkpoint's default\)"):
        BicycleGAN(cfg)
    ckpt = save_checkpoint(BicycleGAN(cfg, training=False), tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="earlier version trained so"):
        load_checkpoint(ckpt, device="cpu", training=True)
    model = load_checkpoint(ckpt, device="cpu")
    assert model.generate(torch.zeros(1, 3, 32, 32), torch.zeros(1, 8)).shape == (1, 3, 32, 32)
    # cLR-GAN's E had no training signal without lambda_z: left out, as an import's missing E (no "encoded")
    assert (model.E is None) == (kw.get("variant") == "clr")
    started = dataclasses.replace(cfg, init_from=str(tmp_path / "bicycle.pt"))  # E came trained from elsewhere
    started = save_checkpoint(BicycleGAN(started, training=False), tmp_path / "s.pt")
    assert load_checkpoint(started, device="cpu").E is not None
    assert main(["train", "--init_from", str(ckpt), "--out", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "(for a run an earlier version trained so: --init_from it with the option mended, as a resume keeps the " \
           "run's options)" in capsys.readouterr().err
