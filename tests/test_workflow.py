"""The authors' workflow: the per-dataset presets and test settings against the reference's scripts,
downloading a pretrained model (from a local server) and sampling, evaluating and fine-tuning it,
the test-time options of sample, and per-epoch checkpoints."""
import dataclasses
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from reference_nets import Ref
from test_download import FileServer, tar_gz
from test_official import write_reference_file
from torch.quasirandom import SobolEngine

from bicyclegan.engine import (
    CheckpointError,
    ConfigError,
    DownloadError,
    ModelConfig,
    OutputError,
    build_encoder,
    build_generator,
    evaluate,
    load_checkpoint,
    make_config,
    read_checkpoint,
    sample,
)
from bicyclegan.engine import download as dl
from bicyclegan.engine.checkpoint import auto_resume, save_checkpoint, saved_epochs
from bicyclegan.engine.cli import main
from bicyclegan.engine.official import load_official_into
from bicyclegan.engine.presets import pretrained_config
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import DatasetError, make_demo_dataset

# -- the reference's scripts, transcribed --------------------------------------------------------------
# scripts/train_edges2shoes.sh, train_facades.sh and train.sh's cases (every one: bicycle_gan, nz 8,
# crop 256, --use_dropout; edges2shoes sets NO_FLIP='--no_flip').
TRAIN_SCRIPTS = {
    "edges2shoes": dict(input_nc=1, load_size=256, direction="AtoB", no_flip=True, niter=30, niter_decay=30,
                        save_epoch_freq=5),
    "edges2handbags": dict(input_nc=1, load_size=256, direction="AtoB", no_flip=False, niter=15, niter_decay=15,
                           save_epoch_freq=5),
    "night2day": dict(input_nc=3, load_size=286, direction="AtoB", no_flip=False, niter=50, niter_decay=50,
                      save_epoch_freq=10),
    "maps": dict(input_nc=3, load_size=600, direction="BtoA", no_flip=False, niter=200, niter_decay=200,
                 save_epoch_freq=25),
    "facades": dict(input_nc=3, load_size=256, direction="BtoA", no_flip=False, niter=200, niter_decay=200,
                    save_epoch_freq=25),
}
# scripts/test_<name>.sh: direction, load size, crop size, input channels (all: --center_crop --no_flip).
TEST_SCRIPT_VALUES = {
    "edges2shoes": ("AtoB", 256, 256, 1), "edges2handbags": ("AtoB", 256, 256, 1),
    "night2day": ("AtoB", 286, 256, 3), "maps": ("BtoA", 512, 512, 3), "facades": ("BtoA", 286, 256, 3),
}


def flat(cfg) -> dict:
    d = cfg.to_dict()
    return {**d.pop("model"), **d.pop("data"), **d}


@pytest.mark.parametrize("name", sorted(TRAIN_SCRIPTS))
def test_dataset_presets_set_what_the_training_scripts_set(name):
    got = flat(make_config(name))
    for k, v in {**TRAIN_SCRIPTS[name], "nz": 8, "crop_size": 256, "use_dropout": True, "variant": "bicycle",
                 "batch_size": 2, "lr": 2e-4, "preprocess": "resize_and_crop"}.items():
        assert got[k] == v, (name, k)


@pytest.mark.parametrize("name", sorted(TEST_SCRIPT_VALUES))
def test_pretrained_models_run_with_their_test_script_settings(name):
    cfg = flat(pretrained_config(name))
    direction, load, crop, nc = TEST_SCRIPT_VALUES[name]
    assert (cfg["direction"], cfg["load_size"], cfg["crop_size"], cfg["input_nc"]) == (direction, load, crop, nc)
    assert cfg["no_flip"] and cfg["preprocess"] == "resize_and_crop"
    # The networks are the reference's defaults (its test scripts set no model option).
    assert {k: cfg[k] for k in ("netG", "netE", "where_add", "nz", "ngf", "nef", "upsample", "norm", "nl")} == dict(
        netG="unet_256", netE="resnet_256", where_add="all", nz=8, ngf=64, nef=64, upsample="basic",
        norm="instance", nl="relu")


def test_training_on_a_dataset_folder_names_its_preset(tmp_path, capsys):
    for name in ("edges2shoes", "day2night", "my_shoes"):  # (the dry run checks the data as the run does)
        make_demo_dataset(tmp_path / name, n_train=2, n_test=1, size=32, seed=0)
    assert main(["train", "--dataroot", str(tmp_path / "edges2shoes"), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "--preset edges2shoes sets what its training script sets (input_nc=1" in out.err
    assert json.loads(out.out)["model"]["input_nc"] == 3  # a note, not a silent change
    assert main(["train", "--dataroot", str(tmp_path / "day2night"), "--dry-run"]) == 0
    assert "--preset night2day" in capsys.readouterr().err
    assert main(["train", "--preset", "edges2shoes", "--dataroot", str(tmp_path / "edges2shoes"), "--dry-run"]) == 0
    out = capsys.readouterr()
    lines = out.err.splitlines()  # no note: the dry run's data and split lines alone
    assert len(lines) == 2 and lines[0].startswith("data: 2 samples, ") and lines[1].startswith("held-out split: ")
    assert json.loads(out.out)["model"]["input_nc"] == 1
    assert main(["train", "--dataroot", str(tmp_path / "my_shoes"), "--dry-run"]) == 0
    assert "note" not in capsys.readouterr().err
    # A run resumed from its folder trains on with its own config: no preset note for it (this one stopped
    # before its first checkpoint, which the dry run, as the run, refuses to resume).
    run = tmp_path / "runs" / "ft"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(make_config("reference", dataroot=str(tmp_path / "edges2shoes"),
                                                            out=str(run)).to_dict()))
    assert main(["train", "--out", str(run), "--resume", "--dry-run"]) == 2
    assert capsys.readouterr().err == (f"bicyclegan train: CheckpointError: --resume: no checkpoint at "
                                       f"{run / 'checkpoints' / 'latest.pt'} (the run there stopped before its first "
                                       f"checkpoint: start it again in a new --out)\n")


# -- download model, then sample, evaluate and fine-tune it ---------------------------------------------
SMALL = dict(ngf=8, nef=8, ndf=8, impl="ref")  # the reference's networks, narrower, so tests stay quick
TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref")


def reference_file(net, path, head_first=False):
    """A state_dict saved as the reference does: its own key names below the same top-level modules
    (model; conv, fc, fcVar), legacy serialisation; its E_ResNet registers fc and fcVar before conv."""
    items = list(net.state_dict().items())
    if head_first:
        items = [kv for kv in items if kv[0].startswith("fc")] + [kv for kv in items if not kv[0].startswith("fc")]
    torch.save({f"{k.split('.')[0]}.{i}.{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(items)}, path,
               _use_new_zipfile_serialization=False)


def aligned_file(path, seed, size=32):
    """An A|B file: A a drawing, B a photo (random colours)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)).save(path)


def small_pretrained_config(name):
    cfg = pretrained_config(name)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **SMALL))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The edges2shoes test set and pretrained model, downloaded from a local server that holds them
    in the reference's format; returns (checkpoint, dataset folder, original G, original E)."""
    tmp = tmp_path_factory.mktemp("pretrained")
    cfg = make_config("edges2shoes", **SMALL).model
    torch.manual_seed(1)
    G, E = build_generator(cfg).eval(), build_encoder(cfg).eval()
    # the reference's names and order (scripts/test_edges2shoes.sh: input_nc 1, the default networks)
    ref = Ref(input_nc=1, ngf=SMALL["ngf"], nef=SMALL["nef"], ndf=SMALL["ndf"])
    write_reference_file(G, ref, "G", cfg, tmp / "G.pth")
    write_reference_file(E, ref, "E", cfg, tmp / "E.pth")
    src = tmp / "src"
    src.mkdir()
    for i in range(2):
        aligned_file(src / f"{i + 1}.jpg", i)
    server = FileServer()
    server.files["/BicycleGAN//models/edges2shoes_net_G.pth"] = (tmp / "G.pth").read_bytes()
    server.files["/BicycleGAN//models/edges2shoes_net_E.pth"] = (tmp / "E.pth").read_bytes()
    server.files["/BicycleGAN/testset/edges2shoes.tar.gz"] = tar_gz(
        {f"edges2shoes/val/{p.name}": p.read_bytes() for p in sorted(src.iterdir())})
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(dl.MIRROR_ENV, server.url)
            mp.setattr(dl, "pretrained_config", small_pretrained_config)
            data = dl.download_dataset("edges2shoes", tmp / "datasets", testset=True, progress=False)
            ckpt = dl.download_model("edges2shoes", tmp / "pretrained", progress=False)
            assert server.requests[-2:] == [("/BicycleGAN//models/edges2shoes_net_G.pth", None),
                                            ("/BicycleGAN//models/edges2shoes_net_E.pth", None)]
    finally:
        server.close()
    return ckpt, data, G, E


def test_download_model_leaves_a_checkpoint_with_the_test_settings(pretrained):
    ckpt, _, G, E = pretrained
    assert ckpt.name == "edges2shoes.pt" and sorted(p.name for p in ckpt.parent.iterdir()) == ["edges2shoes.pt"]
    state = read_checkpoint(ckpt)
    data, model = state["config"]["data"], state["config"]["model"]
    assert (data["direction"], data["load_size"], data["preprocess"], data["no_flip"]) == (
        "AtoB", 256, "resize_and_crop", True)
    assert (model["input_nc"], model["crop_size"], model["where_add"], model["nz"]) == (1, 256, "all", 8)
    assert state["source"]["G"]["address"] == dl.MODELS["edges2shoes"]["G"] and state["step"] == 0
    m = load_checkpoint(ckpt)
    for ours, orig in ((m.G, G), (m.E, E)):
        for a, b in zip(ours.state_dict().values(), orig.state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_download_model_returns_only_that_models_checkpoint_as_already_there(pretrained, tmp_path, monkeypatch,
                                                                             capsys):
    # Whatever lay at pretrained/<name>.pt was returned as "already there": an empty file (a download killed by
    # something else), a training's checkpoint saved under that name, another model's download.
    ckpt, *_ = pretrained
    monkeypatch.setenv(dl.MIRROR_ENV, "http://127.0.0.1:9")  # (a fetch attempted fails at once: none is made)
    here = tmp_path / "pretrained"
    here.mkdir()
    shutil.copy(ckpt, here / "edges2shoes.pt")
    assert dl.download_model("edges2shoes", here, progress=False) == here / "edges2shoes.pt"
    assert capsys.readouterr().err == f"{here / 'edges2shoes.pt'} is already there\n"
    m = load_checkpoint(ckpt)
    save_checkpoint(m, here / "by_hand.pt", own={"imported": ["G", "E"]})  # import-official's, as the advice says
    (here / "by_hand.pt").rename(here / "night2day.pt")
    assert dl.download_model("night2day", here, progress=False) == here / "night2day.pt"
    shutil.copy(ckpt, here / "maps.pt")  # another model's download
    with pytest.raises(OutputError, match=rf"^{re.escape(str(here / 'maps.pt'))} already exists and is not the maps "
                                          r"model's checkpoint \(downloaded from .*edges2shoes_net_E\.pth, "
                                          r".*edges2shoes_net_G\.pth\); remove it or choose another --dir$"):
        dl.download_model("maps", here, progress=False)
    out = here / "facades.pt"
    for put, why in ((lambda: save_checkpoint(m, out, step=3), "no import of official weights"),  # a training's
                     (lambda: out.write_bytes(b""), "cannot be read"), (out.mkdir, "a folder"),
                     (lambda: out.symlink_to(here / "gone.pt"), "not a file")):
        put()
        said = rf"is not the facades model's checkpoint \({why}.*\); remove it or choose another --dir$"
        with pytest.raises(OutputError, match=rf"^{re.escape(str(out))} already exists and {said}") as e:
            dl.download_model("facades", here, progress=False)
        assert "move it away" not in str(e.value)  # (the reader's advice for a run's file: one advice, this one)
        assert os.path.lexists(out)  # left as it was
        out.rmdir() if out.is_dir() and not out.is_symlink() else out.unlink()
    assert sorted(p.name for p in here.iterdir()) == ["edges2shoes.pt", "maps.pt", "night2day.pt"]


def sample_codes(g, n, nz=8, spread=False):
    """The z `sample` draws for one input: n independent N(0, I) codes from g (the reference's randn);
    spread: a scrambled Sobol set (its seed from g) through the normal inverse CDF."""
    if not spread:
        return torch.randn(n, nz, generator=g)
    u = SobolEngine(nz, scramble=True, seed=int(torch.randint(2**62, (1,), generator=g)))
    return torch.special.ndtri(u.draw(n, dtype=torch.float64)).float()


def test_sample_a_downloaded_model_as_the_reference_test_script(pretrained, tmp_path, monkeypatch):
    ckpt, data, G, E = pretrained
    monkeypatch.chdir(tmp_path)
    assert main(["sample", str(ckpt), "--dataroot", str(data), "--n_samples", "2", "--num_test", "1",
                 "--device", "cpu"]) == 0
    res = tmp_path / "results" / "edges2shoes" / "val"  # the reference's ./results/<name>/val
    assert (res / "index.html").read_text().count("<tr>") == 1 and (res / "grid.png").is_file()
    # Recompute the first input's outputs with the original networks, preparing the image as the test
    # script does: left half -> grayscale -> bicubic 256 x 256 (load = crop: the centre crop is all).
    ab = Image.open(data / "val" / "1.jpg").convert("RGB")
    a = ab.crop((0, 0, 32, 32)).convert("L").resize((256, 256), Image.BICUBIC)
    b = ab.crop((32, 0, 64, 32)).resize((256, 256), Image.BICUBIC)
    A = torch.from_numpy(np.asarray(a, dtype=np.float32))[None, None] / 127.5 - 1
    B = torch.from_numpy(np.asarray(b, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    sample_codes(g, 2)  # the sync list is drawn first
    z = sample_codes(g, 2)
    with torch.no_grad():
        want = {"random_z1": G(A, z[:1]), "random_z2": G(A, z[1:]), "encoded": G(A, E(B)[0])}
    for name, out in want.items():
        got = np.asarray(Image.open(res / "images" / f"1_{name}.png"), dtype=np.int16)
        ref = ((out[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.int16).permute(1, 2, 0).numpy()
        assert np.abs(got - ref).max() <= 1, name


def test_evaluate_a_downloaded_model(pretrained):
    ckpt, data, _, _ = pretrained
    r = evaluate(ckpt, data, phase="val", n_samples=2, num=2, device="cpu")
    assert r["n_inputs"] == 2 and r["diversity_l1"] > 0 and "encoded_l1" in r


def test_fine_tune_a_downloaded_model_with_train_resume(pretrained, tmp_path):
    ckpt, _, G, _ = pretrained
    root = tmp_path / "edges2shoes"
    (root / "train").mkdir(parents=True)
    for i in range(2):
        aligned_file(root / "train" / f"{i}.png", 10 + i)
    run = dict(dataroot=str(root), num_workers=0, backend="torch", max_steps=1, log_every=1, sample_every=100,
               save_every=100, n_samples=1, **SMALL)
    # The run keeps its own options (the training preset's), from the downloaded weights.
    trainer = Trainer(make_config("edges2shoes", out=str(tmp_path / "ft"), **run), resume=ckpt, progress=False)
    assert trainer.step == 0
    for a, b in zip(trainer.model.G.state_dict().values(), G.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    trainer.train()
    assert [r["step"] for r in map(json.loads, (tmp_path / "ft" / "log.jsonl").read_text().splitlines())] == [1]
    with pytest.raises(CheckpointError, match="input_nc: checkpoint 1 vs now 3"):
        Trainer(make_config("reference", out=str(tmp_path / "ft3"), **run), resume=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="already holds a run"):
        Trainer(make_config("edges2shoes", out=str(tmp_path / "ft"), **run), resume=ckpt, progress=False)
    # The downloaded model has G and E only: its discriminators were never trained, so a fine-tune may
    # choose its own (refused before, though they are fresh either way); G and E still come along.
    other_d = Trainer(make_config("edges2shoes", out=str(tmp_path / "ftd"), **{**run, "ndf": 4}, num_Ds=1,
                                  conditional_D=True), resume=ckpt, progress=False)
    assert other_d.model.D.state_dict().keys() != trainer.model.D.state_dict().keys() or \
        any(a.shape != b.shape for a, b in zip(other_d.model.D.state_dict().values(),
                                                trainer.model.D.state_dict().values()))
    for a, b in zip(other_d.model.G.state_dict().values(), G.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other_d.train()
    from bicyclegan.engine.checkpoint import check_same_networks, read_checkpoint
    saved = read_checkpoint(ckpt)
    assert saved["imported"] == ["G", "E"]
    with pytest.raises(CheckpointError, match="ndf: checkpoint 8 vs now 4"):  # trained discriminators stay
        check_same_networks(saved["config"], make_config("edges2shoes", **{**run, "ndf": 4}), ckpt)


class Unsafe:
    """A pickled instance names this class: a weights-only load refuses it."""


def test_download_model_refuses_wrong_or_unsafe_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "pretrained_config", small_pretrained_config)
    cfg = small_pretrained_config("maps").model
    reference_file(build_generator(dataclasses.replace(cfg, ngf=4)), tmp_path / "G.pth")  # another width
    reference_file(build_encoder(cfg), tmp_path / "E.pth", head_first=True)
    torch.save({"w": torch.zeros(1), "x": Unsafe()}, tmp_path / "unsafe.pth")
    server = FileServer()
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)
    try:
        server.files["/BicycleGAN//models/maps_net_E.pth"] = (tmp_path / "E.pth").read_bytes()
        for g, words in (("G.pth", "has shape"), ("unsafe.pth", "could run code")):
            server.files["/BicycleGAN//models/maps_net_G.pth"] = (tmp_path / g).read_bytes()
            with pytest.raises(DownloadError, match=r"not the maps weights this version expects: (weights file )?"
                                                    rf"http://127\.0\.0\.1:\d+/BicycleGAN//models/maps_net_G\.pth.*{words}"):
                dl.download_model("maps", tmp_path / "pretrained", progress=False)
            assert not (tmp_path / "pretrained").exists()  # no partial file, no checkpoint, not its folder either
    finally:
        server.close()


def test_import_official_with_the_settings_of_an_authors_model(tmp_path, monkeypatch):
    cfg = small_pretrained_config("maps").model
    ref = Ref(ngf=SMALL["ngf"], nef=SMALL["nef"], ndf=SMALL["ndf"])  # scripts/test_maps.sh: the default networks
    write_reference_file(build_generator(cfg), ref, "G", cfg, tmp_path / "G.pth")
    write_reference_file(build_encoder(cfg), ref, "E", cfg, tmp_path / "E.pth")
    out = tmp_path / "maps.pt"
    monkeypatch.chdir(tmp_path)
    assert main(["import-official", "--preset", "maps", "--G", "G.pth", "--E", "E.pth", "--out", str(out),
                 "--dataroot", "maps_data", *[f"--{k}={v}" for k, v in SMALL.items()]]) == 0
    got = flat(load_checkpoint(out).cfg)
    direction, load, crop, nc = TEST_SCRIPT_VALUES["maps"]
    assert (got["direction"], got["load_size"], got["crop_size"], got["input_nc"], got["no_flip"]) == (
        direction, load, crop, nc, True)
    # the data folder absolute, as train stores it: as typed, the file read from another folder found none
    assert got["dataroot"] == str(tmp_path / "maps_data")


def test_import_official_without_an_encoder_file_has_no_encoded_outputs(tmp_path, demo_root, capsys):
    # The freshly initialised E was used: sample wrote "encoded" images and evaluate an "encoded
    # reconstruction L1" of a random network. Training from the checkpoint trains an E.
    from bicyclegan.engine import evaluate, sample
    cfg = ModelConfig(**TINY)
    reference_file(build_generator(cfg), tmp_path / "G.pth")
    out = tmp_path / "noE.pt"
    assert main(["import-official", "--G", str(tmp_path / "G.pth"), "--out", str(out),
                 *[f"--{k}={v}" for k, v in TINY.items()]]) == 0
    text = capsys.readouterr()
    assert "G from the files, E, D, D2 freshly initialised" in text.out and "no trained encoder" in text.err
    assert load_checkpoint(out).E is None and load_checkpoint(out, training=True).E is not None
    res = sample(out, demo_root, out=tmp_path / "s", phase="test", num=1, n_samples=1, progress=False)
    assert sorted(p.name.split("_", 1)[1] for p in (res / "images").iterdir()) == [
        "ground_truth.png", "input.png", "random_z1.png"]
    assert "encoded_l1" not in evaluate(out, demo_root, phase="test", num=2, n_samples=2, metrics="l1")
    reference_file(build_encoder(cfg), tmp_path / "E.pth", head_first=True)
    main(["import-official", "--G", str(tmp_path / "G.pth"), "--E", str(tmp_path / "E.pth"), "--out",
          str(tmp_path / "withE.pt"), *[f"--{k}={v}" for k, v in TINY.items()]])
    assert load_checkpoint(tmp_path / "withE.pt").E is not None


def test_weights_saved_by_old_pytorch_drop_their_instance_norm_statistics(tmp_path):
    G = build_generator(ModelConfig(**TINY))
    items = []
    for i, (k, v) in enumerate(G.state_dict().items()):
        items.append((f"model.{i}.{k.rsplit('.', 1)[1]}", v))
        if k.endswith("bias"):  # PyTorch < 0.4 kept statistics in every InstanceNorm layer
            items += [(f"model.{i}.norm.running_mean", torch.zeros(4)), (f"model.{i}.norm.running_var", torch.ones(4))]
    torch.save(dict(items), tmp_path / "G.pth", _use_new_zipfile_serialization=False)
    other = build_generator(ModelConfig(**TINY))
    load_official_into(other, tmp_path / "G.pth")
    for a, b in zip(other.state_dict().values(), G.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# -- sample's test-time options and per-epoch checkpoints on a tiny model -------------------------------
@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=8, n_test=3, n_val=2, size=32)


def tiny_cfg(out, root, **kw):
    return make_config("reference", **{**TINY, **dict(
        batch_size=4, load_size=32, preprocess="none", num_workers=0, backend="torch", niter=1, niter_decay=3,
        log_every=1, sample_every=100, save_every=100, n_samples=2, dataroot=str(root), out=str(out)), **kw})


@pytest.fixture(scope="module")
def epoch_run(tmp_path_factory, demo_root):
    """4 epochs of 2 steps, a checkpoint kept every 2 epochs."""
    return Trainer(tiny_cfg(tmp_path_factory.mktemp("run") / "run", demo_root, save_epoch_freq=2),
                   progress=False).train()


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_only_files_named_as_the_run_names_them_are_its_epochs(tmp_path):
    # epoch_05.pt (a copy renamed by hand) was listed as epoch 5 and then opened as epoch_5.pt, which is not
    # there: `evaluate --epoch all` stopped naming a file that does not exist. "epoch_²" passed isdigit and
    # failed int().
    for name in ("epoch_3.pt", "epoch_12.pt", "epoch_05.pt", "epoch_\u00b2.pt", "epoch_1.pt.bak", "epoch_x.pt",
                 "epoch_.pt", "epoch_-1.pt", "epoch_7.PT"):
        (tmp_path / name).write_bytes(b"")
    assert saved_epochs(tmp_path) == [3, 12]


def test_per_epoch_checkpoints_and_resuming_from_one(epoch_run, demo_root, tmp_path):
    folder = epoch_run / "checkpoints"
    assert saved_epochs(folder) == [2, 4]
    state = read_checkpoint(folder / "epoch_2.pt")
    assert (state["step"], state["epoch"]) == (4, 2)
    # Resuming from epoch 2 (a copy of the run) reproduces epochs 3 and 4 of the uninterrupted run.
    copy = tmp_path / "copy"
    shutil.copytree(epoch_run, copy)
    Trainer(tiny_cfg(copy, demo_root, save_epoch_freq=2), epoch=2, progress=False).train()
    full, again = read_log(epoch_run), read_log(copy)
    assert [r["step"] for r in again] == list(range(1, 9))
    for a, b in zip(full[4:], again[4:], strict=True):
        for k in ("G_L1", "kl", "z_L1", "D", "D2", "lr"):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-7), (a["step"], k)
    with pytest.raises(CheckpointError, match="no checkpoint for epoch 3 .*epochs saved there: 2, 4"):
        Trainer(tiny_cfg(copy, demo_root), epoch=3, progress=False)


def test_resume_auto_starts_the_run_once_and_continues_it_on_every_later_start(demo_root, tmp_path, capsys,
                                                                             monkeypatch):
    # One command for a job a scheduler starts again (torchrun --max-restarts, a SLURM requeue): --resume was
    # refused on the first start (no checkpoint), a plain start on every later one (a run there).
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    options = {**TINY, **dict(batch_size=4, preprocess="none", num_workers=0, backend="torch",
                              niter=1, niter_decay=1, log_every=1, n_samples=2, dataroot=demo_root, out=run)}
    command = ["train", "--resume", "auto", "--no-progress",
               *[a for k, v in options.items() for a in (f"--{k}", str(v))]]
    assert main(command) == 0
    assert "continuing" not in capsys.readouterr().err
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4]
    first = read_checkpoint(run / "checkpoints" / "latest.pt")
    assert main(command + ["--niter_decay", "2"]) == 0  # (a later start, trained longer)
    assert f"--resume auto: continuing the run in {run} from latest.pt" in capsys.readouterr().err
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4, 5, 6]
    assert main(command + ["--niter_decay", "3", "--dry-run"]) == 0  # (it continues nothing)
    assert f"--resume auto: would continue the run in {run} from latest.pt" in capsys.readouterr().err
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 6 != first["step"]
    # A job fine-tuning a run's weights: --init_from (and --fresh_D) the first time, its own checkpoint after
    tuned = tmp_path / "tuned"
    tune = ["train", "--resume", "auto", "--no-progress", "--init_from", str(run), "--fresh_D", "--out", str(tuned)]
    assert main(tune + ["--max_steps", "4"]) == 0 and main(tune + ["--max_steps", "6"]) == 0
    assert f"continuing the run in {tuned}" in capsys.readouterr().err
    assert [r["step"] for r in read_log(tuned)] == list(range(1, 7))
    assert read_checkpoint(tuned / "checkpoints" / "latest.pt")["config"]["init_from"].endswith("latest.pt")
    # --epoch picks a checkpoint, auto the newest; a file named auto was a checkpoint's path before
    assert main(["train", "--out", str(run), "--resume", "auto", "--epoch", "1"]) == 2
    assert "--epoch 1 (epoch=1) picks one of the run's checkpoints" in capsys.readouterr().err
    (tmp_path / "auto").write_bytes(b"")
    assert main(["train", "--out", str(run), "--resume", "auto"]) == 2
    assert "a file named 'auto' is in this folder too: name it ./auto" in capsys.readouterr().err


def test_resume_auto_picks_the_newest_checkpoint_and_takes_init_from_once(epoch_run, demo_root, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(epoch_run, copy)
    assert auto_resume(copy) == (True, None)  # latest.pt: the newest
    (copy / "checkpoints" / "latest.pt").unlink()
    assert auto_resume(copy) == (True, 4)  # a run keeping per-epoch checkpoints alone: its newest
    assert auto_resume(tmp_path / "none") == (False, None)
    # In Python too; a new run's init_from lends its weights the first time, the run's own checkpoint after.
    new = tmp_path / "new"
    cfg = tiny_cfg(new, demo_root, init_from=str(copy / "checkpoints" / "epoch_2.pt"), niter_decay=1)
    Trainer(cfg, resume="auto", progress=False).train()
    assert read_checkpoint(new / "checkpoints" / "latest.pt")["config"]["init_from"].endswith("epoch_2.pt")
    Trainer(tiny_cfg(new, demo_root, init_from=cfg.init_from, niter_decay=2), resume="auto", progress=False).train()
    assert [r["step"] for r in read_log(new)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ConfigError, match="picks its newest itself"):
        Trainer(cfg, resume="auto", epoch=2, progress=False)


def test_sample_and_train_choose_an_epoch_on_the_command_line(epoch_run, capsys):
    assert main(["sample", str(epoch_run), "--epoch", "2", "--num", "1", "--n_samples", "1", "--device", "cpu"]) == 0
    assert (epoch_run / "results" / "val_epoch_2" / "index.html").is_file()
    assert main(["sample", str(epoch_run), "--epoch", "5", "--device", "cpu"]) == 2
    assert "epochs saved there: 2, 4" in capsys.readouterr().err
    assert main(["train", "--out", str(epoch_run), "--resume", "x.pt", "--epoch", "2"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_sample_sync_and_z_draws(epoch_run, tmp_path):
    ckpt = epoch_run / "checkpoints" / "latest.pt"
    model = load_checkpoint(ckpt).eval()
    for sync, spread in ((True, False), (False, False), (False, True)):
        out = sample(ckpt, out=tmp_path / f"{sync}{spread}", phase="test", n_samples=2, num=2, sync=sync,
                     spread=spread, device="cpu", progress=False)
        g = torch.Generator().manual_seed(0)
        z_sync = sample_codes(g, 2, spread=spread)
        for name in ("00000", "00001"):
            z = z_sync if sync else sample_codes(g, 2, spread=spread)
            A = torch.from_numpy(np.asarray(Image.open(out / "images" / f"{name}_input.png"), dtype=np.float32))
            A = A.permute(2, 0, 1)[None] / 127.5 - 1  # the input column is the input, exactly
            with torch.no_grad():
                want = ((model.G(A, z[1:2]).clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()
            got = np.asarray(Image.open(out / "images" / f"{name}_random_z2.png"), dtype=np.float32)
            assert np.abs(got - want).max() <= 1, (sync, name)


def test_sample_default_phase_direction_and_aspect_ratio(epoch_run, demo_root, tmp_path):
    ckpt = epoch_run / "checkpoints" / "latest.pt"
    out = sample(ckpt, n_samples=1, device="cpu", progress=False)
    assert out == epoch_run / "results" / "val"  # val/ exists: the reference's default split
    assert (out / "index.html").read_text().count("<tr>") == 2
    out = sample(ckpt, out=tmp_path / "r", phase="test", num=1, n_samples=1, direction="BtoA", aspect_ratio=2.0,
                 device="cpu", progress=False)
    ab = Image.open(demo_root / "test" / "00000.png").convert("RGB")
    right, left = ab.crop((32, 0, 64, 32)), ab.crop((0, 0, 32, 32))
    # BtoA: the right half is the input; each saved image is stretched to twice its width (bicubic).
    for col, half in (("input", right), ("ground_truth", left)):
        saved = Image.open(out / "images" / f"00000_{col}.png")
        assert saved.size == (64, 32)
        assert np.array_equal(np.asarray(saved), np.asarray(half.resize((64, 32), Image.BICUBIC)))
    out = sample(ckpt, out=tmp_path / "tall", phase="test", num=1, n_samples=1, aspect_ratio=0.5, device="cpu",
                 progress=False)
    assert Image.open(out / "images" / "00000_random_z1.png").size == (32, 64)
    # 16 either way at most: 1e9 was an OverflowError in the resize, 1000 a grid of a billion pixels
    for bad in (0.0, 1e9, 1000, 1 / 17, float("nan"), True):
        with pytest.raises(ConfigError, match=r"aspect_ratio=.* must be a number from 1/16 to 16"):
            sample(ckpt, out=tmp_path / "x", aspect_ratio=bad, device="cpu")
    out = sample(ckpt, out=tmp_path / "wide", phase="test", num=1, n_samples=1, aspect_ratio=16, device="cpu",
                 progress=False)
    assert Image.open(out / "images" / "00000_random_z1.png").size == (512, 32)


def test_sample_a_plain_folder_at_full_resolution(epoch_run, tmp_path):
    ckpt = epoch_run / "checkpoints" / "latest.pt"
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(folder / "wide.png")
    # The U-Net of a 32 px "unet" model is 5 levels deep: 64 x 96 runs whole with preprocess none.
    out = sample(ckpt, folder, out=tmp_path / "r", n_samples=1, preprocess="none", device="cpu", progress=False)
    files = sorted(p.name for p in (out / "images").iterdir())
    assert files == ["wide_input.png", "wide_random_z1.png"]  # no ground truth, no encoded column
    assert Image.open(out / "images" / "wide_random_z1.png").size == (96, 64)
    assert np.array_equal(np.asarray(Image.open(out / "images" / "wide_input.png")),
                          np.asarray(Image.open(folder / "wide.png")))
    out = sample(ckpt, folder, out=tmp_path / "r2", n_samples=1, preprocess="resize_and_crop", device="cpu",
                 progress=False)
    assert Image.open(out / "images" / "wide_input.png").size == (32, 32)
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / "odd.png")
    with pytest.raises(ConfigError, match=r"odd\.png is 48x48 after preprocess=none, not a multiple of 32"):
        sample(ckpt, folder, out=tmp_path / "r3", n_samples=1, preprocess="none", device="cpu", progress=False)
    # A crop size the generator's depth cannot take is refused up front.
    with pytest.raises(ConfigError, match=r"crop_size=48: this model's U-Net \(5 levels\) takes sides that are "
                                          r"multiples of 32, such as 64"):
        sample(ckpt, folder, out=tmp_path / "r4", crop_size=48, load_size=48, preprocess="resize_and_crop",
               device="cpu", progress=False)
    with pytest.raises(DatasetError, match="missing folder"):
        sample(ckpt, folder.parent, phase="nowhere", out=tmp_path / "r5", device="cpu", progress=False)
    assert not (tmp_path / "r4").exists() and not (tmp_path / "r5").exists()  # nothing made for a refused call
    assert load_checkpoint(ckpt).cfg.data.preprocess == "none"  # overrides change nothing stored


def test_weights_saved_through_dataparallel_or_before_batchnorm_counted_steps_import(tmp_path):
    # "module." prefixes (nn.DataParallel) broke the E's head-first reordering, which goes by name;
    # BatchNorm files from PyTorch < 0.4.1 have no num_batches_tracked (84 tensors where ours has 97).
    cfg = ModelConfig(**{**TINY, "norm": "batch"})
    E, G = build_encoder(cfg), build_generator(cfg)
    for net in (E, G):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
    reference_file(E, tmp_path / "E.pth", head_first=True)
    sd = torch.load(tmp_path / "E.pth", weights_only=True)
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "E_dp.pth")
    old = {k: v for k, v in G.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({f"model.{i}.{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(old.items())}, tmp_path / "G_old.pth")
    e2, g2 = build_encoder(cfg), build_generator(cfg)
    load_official_into(e2, tmp_path / "E_dp.pth")
    load_official_into(g2, tmp_path / "G_old.pth")
    for a, b in ((E, e2), (G, g2)):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            if not k.endswith("num_batches_tracked"):
                assert torch.equal(v, w), k
