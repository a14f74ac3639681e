"""What a careless user or an attacker can do to the engine: unsafe or damaged checkpoints,
diverging runs, bad option values, unwritable destinations, interrupted saves, changed data.
Each case must end in the project's own one-line error (exit 2 from the CLI) with nothing good lost."""
import math
import os
import zipfile

import pytest
import torch
from tiny import TINY, tiny_cfg

from bicyclegan.engine import (
    BicycleGAN,
    CheckpointError,
    ConfigError,
    DataConfig,
    DivergenceError,
    ModelConfig,
    OutputError,
    TrainConfig,
    evaluate,
    export_generator,
    make_config,
)
from bicyclegan.engine.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.official import load_official_into
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import make_demo_dataset


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
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(tmp_path / "g.pt")
    save_checkpoint(tiny_model(), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(tmp_path / "t.pt")


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


def test_a_huge_learning_rate_ends_with_exit_2_and_no_nan_checkpoint(tmp_path, data, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataroot", str(data), "--out", str(run), "--no-progress", "--lr", "1e6",
            "--max_steps", "20", "--log_every", "1", "--save_every", "1", "--num_workers", "0",
            "--preprocess", "none", "--load_size", "32", "--batch_size", "4",
            *[f"--{k}={v}" for k, v in TINY.items()]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "diverged at step" in err and "--lr" in err
    if (run / "checkpoints" / "latest.pt").exists():
        nets = read_checkpoint(run / "checkpoints" / "latest.pt")["nets"]
        assert all(torch.isfinite(t).all() for sd in nets.values() for t in sd.values() if t.is_floating_point())
    log = (run / "log.jsonl").read_text()
    assert '"diverged": true' in log and "NaN" not in log  # still valid JSON


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


def test_skip_bad_is_a_cli_option(capsys):
    assert main(["train", "--dry-run", "--skip_bad"]) == 0
    assert '"skip_bad": true' in capsys.readouterr().out


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    import bicyclegan.engine.cli as cli
    monkeypatch.setattr(cli, "resolve_config", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--dry-run"])


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


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    path = tmp_path / "checkpoints" / "latest.pt"
    path.parent.mkdir()
    for i in range(3):
        (path.parent / f".latest.pt.kill{i}.tmp").write_bytes(b"x" * 100)
    (path.parent / "other.tmp").write_bytes(b"keep")
    save_checkpoint(tiny_model(), path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt", "other.tmp"]


# -- run folders and resume -----------------------------------------------------------------------
def test_a_run_that_never_saved_is_not_continued_silently(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(CheckpointError, match="already holds a run"):
        Trainer(cfg(run, data), progress=False)
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        Trainer(cfg(run, data), resume=True, progress=False)


def test_resume_on_a_smaller_dataset_is_refused(tmp_path, data):
    Trainer(cfg(tmp_path / "run", data, max_steps=3), progress=False).train()
    small = make_demo_dataset(tmp_path / "small", n_train=8, n_test=2, size=32, seed=0)
    with pytest.raises(CheckpointError, match="4 batches per epoch, the data now gives 2"):
        Trainer(cfg(tmp_path / "run", small, max_steps=6), resume=True, progress=False)


def test_inference_needs_only_the_model_and_its_data_settings(tmp_path):
    """A 512 px model imports with its own data settings (the old default load size 286 refused it)."""
    from bicyclegan.engine import import_official
    mcfg = ModelConfig(**{**TINY, "crop_size": 512})
    with torch.device("meta"):
        G = BicycleGAN(TrainConfig(model=mcfg, data=DataConfig(load_size=512)), training=False).G
    torch.save({k: torch.zeros(v.shape) for k, v in G.state_dict().items()}, tmp_path / "G.pth")
    model = import_official(mcfg, G=tmp_path / "G.pth")
    assert model.cfg.data.load_size == 512 and model.cfg.data.no_flip
