"""Generator export: .pt2 and ONNX round trips, the sidecar, the CLI and its errors."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bicyclegan.engine import BicycleGAN, DataConfig, ModelConfig, TrainConfig, build_generator, sample
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.export import ExportError, export_generator, single_threaded

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi", impl="ref")


def tiny_model(variant="bicycle", **kw) -> BicycleGAN:
    return BicycleGAN(TrainConfig(model=ModelConfig(**{**TINY, **kw}), variant=variant))


def inputs(n, nz=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, torch.randn(n, nz, generator=g)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_model()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "latest.pt"
    save_checkpoint(model, path, step=7)
    return path


@torch.no_grad()
def test_pt2_round_trip_with_dynamic_batch(model, tmp_path):
    r = export_generator(model, tmp_path / "g.pt2")
    assert r["format"] == "pt2" and r["batch"] == "dynamic" and r["max_abs_diff"] <= 1e-5
    prog = torch.export.load(tmp_path / "g.pt2").module()
    G = model.G.eval()
    for n in (1, 5):
        A, z = inputs(n)
        torch.testing.assert_close(prog(A, z), G(A, z), rtol=0, atol=1e-5)


@torch.no_grad()
def test_an_export_writes_a_temp_file_of_its_own_and_the_model_with_the_usual_permissions(model, tmp_path,
                                                                                         monkeypatch):
    # The temp name was .g.pt2.<pid>.tmp.pt2: a second export to the same file in this process (a thread) or
    # on another machine with the same pid wrote into the first's file and removed it; and the model
    # renamed from a mkstemp file would keep its 0600
    import os

    from bicyclegan.pipelines.atomic import writer_tag
    other = tmp_path / f".g.pt2.{writer_tag()}-zz9.tmp.pt2"  # (this process's: a thread's export, still writing)
    other.write_bytes(b"another export, still writing")
    import bicyclegan.engine.export as ex
    made, real = [], ex.temp_beside

    def temp_beside(*args):
        made.append(real(*args))
        return made[-1]
    monkeypatch.setattr(ex, "temp_beside", temp_beside)
    export_generator(model, tmp_path / "g.pt2", verify=False)
    # named for its writer (pid, host and letters of its own), so that a later export tells a killed one's file
    assert len(made) == 1 and Path(made[0][1]).name.startswith(f".g.pt2.{writer_tag()}-"), made
    assert other.read_bytes() == b"another export, still writing"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["g.pt2", "g.pt2.json", other.name])
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "g.pt2").stat().st_mode & 0o777 == 0o666 & ~umask


@torch.no_grad()
def test_fixed_batch(model, tmp_path):
    export_generator(model, tmp_path / "g.pt2", batch=2)
    prog = torch.export.load(tmp_path / "g.pt2").module()
    assert prog(*inputs(2)).shape == (2, 3, 32, 32)
    with pytest.raises(Exception):
        prog(*inputs(3))
    assert json.loads((tmp_path / "g.pt2.json").read_text())["inputs"][0]["shape"] == [2, 3, 32, 32]


@torch.no_grad()
def test_onnx_round_trip_through_onnxruntime(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    r = export_generator(model, tmp_path / "g.onnx")
    assert r["format"] == "onnx" and r["max_abs_diff"] <= 1e-4 and "onnxruntime" in r["verified_with"]
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), single_threaded(ort), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1:]) for i in sess.get_inputs()] == [("A", [3, 32, 32]), ("z", [8])]
    assert [o.name for o in sess.get_outputs()] == ["B"]
    assert isinstance(sess.get_inputs()[0].shape[0], str)  # a symbolic (dynamic) batch axis
    G = model.G.eval()
    for n in (2, 5):
        A, z = inputs(n, seed=n)
        B = torch.from_numpy(sess.run(["B"], {"A": A.numpy(), "z": z.numpy()})[0])
        torch.testing.assert_close(B, G(A, z), rtol=0, atol=1e-4)


@torch.no_grad()
def test_onnx_under_another_suffix_is_binary_onnx(model, tmp_path):
    # --format onnx --out g.json: the temp file kept .json, from which onnx chose its JSON text form, wrote
    # that under the name and could not read it back (a traceback; with --no-verify a file no runtime loads).
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    for name in ("g.json", "g.textproto"):
        r = export_generator(model, tmp_path / name, fmt="onnx")
        assert r["max_abs_diff"] <= 1e-4 and (tmp_path / name).read_bytes()[:1] != b"{"
        sess = ort.InferenceSession(str(tmp_path / name), single_threaded(ort), providers=["CPUExecutionProvider"])
        A, z = inputs(2, seed=3)
        B = torch.from_numpy(sess.run(["B"], {"A": A.numpy(), "z": z.numpy()})[0])
        torch.testing.assert_close(B, model.G.eval()(A, z), rtol=0, atol=1e-4)
    # exported again under that name: an earlier export's file (its sidecar names it), replaced as any
    export_generator(model, tmp_path / "g.json", fmt="onnx", batch=1, verify=False)
    assert json.loads((tmp_path / "g.json.json").read_text())["inputs"][0]["shape"][0] == 1


def test_sidecar_says_how_to_feed_the_model(checkpoint, tmp_path):
    export_generator(checkpoint, tmp_path / "g.pt2", verify=False)
    meta = json.loads((tmp_path / "g.pt2.json").read_text())
    assert meta["file"] == "g.pt2" and meta["format"] == "pt2" and meta["dynamic_batch"]
    A, z = meta["inputs"]
    assert (A["name"], A["shape"], A["range"], A["layout"]) == ("A", ["batch", 3, 32, 32], [-1.0, 1.0], "NCHW")
    assert (z["name"], z["shape"], z["distribution"]) == ("z", ["batch", 8], "standard normal")
    (B,) = meta["outputs"]
    assert (B["name"], B["shape"], B["range"]) == ("B", ["batch", 3, 32, 32], [-1.0, 1.0])
    assert meta["nz"] == 8 and meta["z_distribution"].startswith("standard normal")
    assert meta["model_config"] == {**ModelConfig(**TINY).__dict__, "impl": "ref", "channels_last": False}
    assert meta["source"] == {"checkpoint": str(checkpoint), "step": 7, "weights": "G"}
    assert meta["mode"] == "eval" and meta["max_abs_diff"] is None and meta["verified_with"] is None


def as_the_sidecar_says(path, prep) -> torch.Tensor:
    """C x H x W input for an image file, made with PIL and numpy from the sidecar's fields alone
    (not with the loaders' code), for the resize kinds the test uses."""
    img = Image.open(path).convert("RGB")
    w2 = img.width // 2
    img = img.crop((w2, 0, img.width, img.height) if prep["input_half"] == "right" else (0, 0, w2, img.height))
    if prep["channels"] == "L":
        img = img.convert("L")
    r = prep["resize"]
    size = {"fixed": lambda: tuple(r.get("size", ())),
            "width": lambda: (r.get("width", 0) * img.height // img.width, r.get("width")),
            "multiple_of_4": lambda: tuple(int(round(s / 4)) * 4 for s in (img.height, img.width))}[r["kind"]]()
    if size != (img.height, img.width):
        img = img.resize(size[::-1], Image.BICUBIC)
    a = np.asarray(img)
    if prep["crop"] is not None:
        assert prep["crop"]["kind"] == "centre"
        (ch, cw), (h, w) = prep["crop"]["size"], a.shape[:2]
        a = a[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
    assert not prep["flip"] and prep["scale"] == "(pixel - 127.5) / 127.5"
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return (torch.from_numpy(a.copy()).float() - 127.5) / 127.5


def pixels(x: torch.Tensor) -> np.ndarray:
    """C x H x W in [-1, 1] -> H x W x 3 uint8 as the outputs' description says (grey repeated, as sample saves it)."""
    p = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return p.expand(3, -1, -1).permute(1, 2, 0).numpy()


# (data settings, model settings, size of one half W x H, the sidecar's preprocessing facts, worked out by hand)
SETTINGS = {
    "BtoA scale_width_and_crop": (
        dict(direction="BtoA", preprocess="scale_width_and_crop", load_size=48), {}, (60, 50),
        dict(direction="BtoA", input_half="right", input_folder="B", preprocess="scale_width_and_crop",
             load_size=48, resize={"kind": "width", "width": 48}, crop={"kind": "centre", "size": [32, 32]},
             channels="RGB", input_size=[32, 32], trained_crop_size=[32, 32])),
    "AtoB resize_and_crop, grey, 32 x 64": (
        dict(direction="AtoB", preprocess="resize_and_crop", load_size=72), dict(input_nc=1, crop_width=64),
        (80, 30),
        dict(direction="AtoB", input_half="left", input_folder="A", preprocess="resize_and_crop", load_size=72,
             resize={"kind": "fixed", "size": [36, 72]}, crop={"kind": "centre", "size": [32, 64]},
             channels="L", input_size=[32, 64], trained_crop_size=[32, 64])),
    "BtoA none": (  # 34 x 30 halves round (half to even) to 32 x 32
        dict(direction="BtoA", preprocess="none", load_size=32), {}, (34, 30),
        dict(direction="BtoA", input_half="right", input_folder="B", preprocess="none", load_size=32,
             resize={"kind": "multiple_of_4"}, crop=None, channels="RGB", input_size=[32, 32],
             trained_crop_size=[32, 32])),
}


@pytest.mark.parametrize("setting", SETTINGS)
@torch.no_grad()
def test_the_sidecar_says_how_sample_prepares_inputs(setting, tmp_path):
    data_kw, model_kw, (hw, hh), expected = SETTINGS[setting]
    torch.manual_seed(0)
    data = DataConfig(**data_kw, backend="torch", num_workers=0)
    model = BicycleGAN(TrainConfig(model=ModelConfig(**{**TINY, **model_kw}), data=data))
    ckpt = save_checkpoint(model, tmp_path / "run" / "checkpoints" / "latest.pt", step=3)
    root = tmp_path / "pairs"
    (root / "val").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):  # A|B pairs of noise: the halves differ
        Image.fromarray(rng.integers(0, 256, (hh, 2 * hw, 3), dtype=np.uint8)).save(root / "val" / f"{i}.png")
    export_generator(ckpt, tmp_path / "g.pt2", verify=False)
    meta = json.loads((tmp_path / "g.pt2.json").read_text())
    prep = meta["preprocessing"]
    assert {k: prep[k] for k in expected} == expected
    assert prep["resample"].startswith("bicubic") and prep["flip"] is False
    assert prep["description"].startswith("how `bicyclegan sample` prepares")
    # sample, with one code shared by every input (sync): the seed's first draw
    out = sample(ckpt, root, out=tmp_path / "s", n_samples=1, sync=True, encode=False, seed=5, progress=False,
                 device="cpu")
    z = torch.randn(1, meta["nz"], generator=torch.Generator().manual_seed(5))
    G = torch.export.load(tmp_path / "g.pt2").module()
    for i in range(2):
        A = as_the_sidecar_says(root / "val" / f"{i}.png", prep)[None]
        assert list(A.shape[1:]) == meta["inputs"][0]["shape"][1:]
        np.testing.assert_array_equal(pixels(A[0]), np.asarray(Image.open(out / "images" / f"{i}_input.png")))
        np.testing.assert_array_equal(pixels(G(A, z)[0]),
                                      np.asarray(Image.open(out / "images" / f"{i}_random_z1.png")))


@torch.no_grad()
def test_eval_equals_train_for_the_default_generator():
    G = build_generator(ModelConfig(**TINY))
    A, z = inputs(3)
    torch.testing.assert_close(G.train()(A, z), G.eval()(A, z), rtol=0, atol=0)


@torch.no_grad()
def test_triton_and_channels_last_models_export_with_plain_layers(tmp_path):
    pytest.importorskip("triton")
    model = tiny_model(impl="triton", channels_last=True)
    r = export_generator(model, tmp_path / "g.pt2")
    assert r["max_abs_diff"] <= 1e-5
    assert json.loads((tmp_path / "g.pt2.json").read_text())["model_config"]["impl"] == "ref"
    prog = torch.export.load(tmp_path / "g.pt2").module()
    targets = {str(n.target) for n in torch.export.load(tmp_path / "g.pt2").graph.nodes}
    assert not any("bicyclegan" in t for t in targets)  # no custom (Triton) op left in the graph
    A, z = inputs(2)
    # the model's own Triton G (in the interpreter here) agrees with the exported plain graph
    torch.testing.assert_close(prog(A, z), model.G.eval()(A, z), rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_generator_without_z(tmp_path):
    model = tiny_model("pix2pix", nz=0)
    export_generator(model, tmp_path / "g.pt2")
    A, _ = inputs(2)
    torch.testing.assert_close(torch.export.load(tmp_path / "g.pt2").module()(A), model.G.eval()(A))
    meta = json.loads((tmp_path / "g.pt2.json").read_text())
    assert [i["name"] for i in meta["inputs"]] == ["A"] and meta["z_distribution"] is None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_onnx_sessions_start_no_threads(model, tmp_path):
    # A session's pool threads outlive their use and have deadlocked DataLoader workers forked
    # later in the same process (seen once in CI): the export check and the tests open none.
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    export_generator(model, tmp_path / "g.onnx", verify=False)
    before = len(list(Path("/proc/self/task").iterdir()))
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), single_threaded(ort), providers=["CPUExecutionProvider"])
    sess.run(["B"], {"A": inputs(2)[0].numpy(), "z": inputs(2)[1].numpy()})
    assert len(list(Path("/proc/self/task").iterdir())) == before


def test_cli_end_to_end(checkpoint, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    for name, given in (("g.onnx", ["--checkpoint", str(checkpoint)]), ("g.pt2", [str(checkpoint)])):
        assert main(["export", *given, "--out", str(tmp_path / name)]) == 0  # as an option or positional
        out = capsys.readouterr().out
        assert f"wrote {tmp_path / name}" in out and "max abs difference" in out
        assert (tmp_path / name).is_file() and (tmp_path / f"{name}.json").is_file()
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g.bin"),
                 "--format", "pt2", "--batch", "1", "--no-verify"]) == 0
    assert "not verified" in capsys.readouterr().out
    assert json.loads((tmp_path / "g.bin.json").read_text())["format"] == "pt2"


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "{tmp}/missing.pt", "--out", "{tmp}/g.onnx"], "checkpoint {tmp}/missing.pt does not exist"),
    (["--checkpoint", "{ckpt}", "--out", "{tmp}/g.bin"], "from '{tmp}/g.bin' (suffix '.bin'); name the file *.onnx"),
    (["--checkpoint", "{ckpt}", "--out", "{tmp}/g"], "from '{tmp}/g' (no suffix); name the file *.onnx"),  # ('none')
    (["--checkpoint", "{ckpt}", "--out", "{tmp}/g.pt2", "--height", "40"], "multiples of 2^num_downs = 32"),
    (["{tmp}/missing.pt", "--out", "{tmp}/g.pt2"], "checkpoint {tmp}/missing.pt does not exist"),  # positional
    (["--out", "{tmp}/g.pt2"], "ConfigError: give one checkpoint, e.g. bicyclegan export runs/x/checkpoints/latest.pt"),
    (["{ckpt}", "--checkpoint", "{tmp}/other.pt", "--out", "{tmp}/g.pt2"], "ConfigError: give one checkpoint"),
    # a pt2 archive named g.onnx (ONNX tools then failed on it), and an opset the pt2 export took and ignored
    (["{ckpt}", "--out", "{tmp}/g.onnx", "--format", "pt2"],
     "'{tmp}/g.onnx' names a onnx file but the format asked for is pt2; name it *.pt2, or leave the format"),
    (["{ckpt}", "--out", "{tmp}/g.pt2", "--opset", "17"], "opset=17 is an ONNX export's; the pt2 export has none"),
])
def test_cli_errors_name_the_problem(checkpoint, tmp_path, capsys, argv, message):
    fill = dict(tmp=tmp_path, ckpt=checkpoint)
    assert main(["export", *(a.format(**fill) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bicyclegan export: ") and message.format(**fill) in err
    assert not list(tmp_path.iterdir())


def test_a_batch_below_one_is_refused_by_the_option(checkpoint, tmp_path, capsys):
    # It was export_generator's "batch=0 must be a positive integer, or None for a dynamic batch": a
    # Python word to a command-line user, whose dynamic batch is no --batch at all.
    with pytest.raises(SystemExit) as stop:
        main(["export", str(checkpoint), "--out", str(tmp_path / "g.pt2"), "--batch", "0"])
    assert stop.value.code == 2
    assert "bicyclegan export: error: argument --batch: must be >= 1, got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("side, none", [("height", "the model's crop size"), ("width", "the model's crop size"),
                                        ("batch", "a dynamic batch")])
@pytest.mark.parametrize("value", [0, -32, 32.0, True])
def test_a_side_that_is_no_positive_integer_is_refused_by_name(checkpoint, tmp_path, side, none, value):
    # 0 was taken for the model's size (a file written), -32 a torch error of a negative dimension, 32.0 a TypeError;
    # batch=True a TypeError inside torch.rand.
    with pytest.raises(ExportError, match=f"^{side}={value!r} must be a positive integer, or None for {none}$"):
        export_generator(checkpoint, tmp_path / "g.pt2", **{side: value})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, given", [("models", ["--format", "pt2"]), ("g.onnx", [])])
def test_an_out_that_is_a_folder_is_refused_before_the_export(checkpoint, tmp_path, capsys, name, given):
    # It was an IsADirectoryError traceback from the final rename, after the export and its check.
    (tmp_path / name).mkdir()
    assert main(["export", str(checkpoint), "--out", str(tmp_path / name), *given]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bicyclegan export: OutputError: {tmp_path / name} is a folder; give the file to write")
    assert [p.name for p in tmp_path.iterdir()] == [name] and not list((tmp_path / name).iterdir())


def test_an_out_that_is_a_checkpoint_is_refused_and_left_as_it_was(checkpoint, tmp_path, capsys):
    # `--out latest.pt --format pt2` replaced the checkpoint (here the one it read) with the exported program.
    ckpt = tmp_path / "latest.pt"
    ckpt.write_bytes(checkpoint.read_bytes())
    assert main(["export", str(ckpt), "--out", str(ckpt), "--format", "pt2"]) == 2
    assert capsys.readouterr().err.startswith(f"bicyclegan export: OutputError: {ckpt} is a bicyclegan checkpoint, "
                                              f"which the export would replace; give another file to write")
    assert ckpt.read_bytes() == checkpoint.read_bytes() and sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]
    # an import-official checkpoint (its "imported" list) is one too
    from bicyclegan.engine import load_checkpoint, save_checkpoint
    imported = save_checkpoint(load_checkpoint(ckpt, training=True), tmp_path / "imported.pt",
                               own={"imported": ["G"]})
    before = imported.read_bytes()
    assert main(["export", str(ckpt), "--out", str(imported), "--format", "pt2"]) == 2
    assert f"OutputError: {imported} is a bicyclegan checkpoint" in capsys.readouterr().err
    assert imported.read_bytes() == before
    imported.unlink()
    # an earlier export of that name is replaced, as before
    assert main(["export", str(ckpt), "--out", str(tmp_path / "g.pt"), "--format", "pt2", "--no-verify"]) == 0
    assert main(["export", str(ckpt), "--out", str(tmp_path / "g.pt"), "--format", "pt2", "--no-verify"]) == 0


def test_an_opset_the_converter_cannot_reach_is_one_line(checkpoint, tmp_path):
    # onnx's converter has no adapter down to opset 7 for Shape; onnxscript logged that failure with its
    # traceback, and torch warned of the conversion, before the command's own one-line error. (A process of
    # its own: pytest's log capture would hide what logging prints.)
    pytest.importorskip("onnxscript")
    done = subprocess.run([sys.executable, "-m", "bicyclegan.engine.cli", "export", str(checkpoint), "--out",
                           str(tmp_path / "g.onnx"), "--opset", "7"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["bicyclegan export: ExportError: torch's ONNX exporter could not write opset 7 "
                                "(onnx's version converter failed; the file would have been opset 18): pick "
                                "another --opset, e.g. 18"]
    assert not list(tmp_path.iterdir())


def test_an_onnx_exporter_without_what_the_export_needs_is_said_so(model, tmp_path, monkeypatch):
    # torch 2.4's torch.onnx.export has no dynamic_shapes: "export() got an unexpected keyword argument", as a failure
    pytest.importorskip("onnxscript")

    def old_export(model, args, f, export_params=True, verbose=False, input_names=None, output_names=None,
                   opset_version=None, dynamo=False):
        raise AssertionError("not to be called")
    monkeypatch.setattr(torch.onnx, "export", old_export)
    with pytest.raises(ExportError, match=r"has an ONNX exporter without dynamic_shapes, external_data, which this "
                                          r"export needs: upgrade torch \(2\.13 is tested\), or export to \.pt2"):
        export_generator(model, tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_missing_onnx_packages_say_what_to_install(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` fail
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g.onnx")]) == 2
    err = capsys.readouterr().err
    missing = "onnx" if importlib.util.find_spec("onnx") is None else "onnxscript"  # onnx is checked first
    assert f"{missing} is missing" in err and "pip install 'bicyclegan[export]'" in err


def test_onnx_without_onnxruntime_is_checked_and_says_so(model, checkpoint, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxscript")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    # (the warning named the temporary file checked, not the file written)
    with pytest.warns(RuntimeWarning, match=f"onnxruntime is not installed: {tmp_path / 'g.onnx'} passed onnx.checker "
                                            f"but its outputs were not compared"):
        r = export_generator(model, tmp_path / "g.onnx", batch=1)
    assert r["max_abs_diff"] is None and r["verified_with"] == (
        "onnx.checker only (onnxruntime not installed: pip install 'bicyclegan[export]')")
    # The command says it in its one line, without the warning (and its source line)
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", str(checkpoint), "--out", str(tmp_path / "h.onnx"), "--batch", "1"]) == 0
    assert not [w for w in caught if "onnxruntime" in str(w.message)]
    assert "checked with onnx.checker only (onnxruntime not installed: pip install" in capsys.readouterr().out


def test_a_wrong_artefact_fails_verification(model, tmp_path, monkeypatch):
    from bicyclegan.engine import export
    real = export._run_pt2
    monkeypatch.setattr(export, "_run_pt2", lambda path, x: (real(path, x)[0] + 1e-3, "tampered"))
    with pytest.raises(ExportError, match="max abs difference 0.001 > 0.0001"):
        export_generator(model, tmp_path / "g.pt2")


def test_a_pt2_export_the_disk_cannot_take_is_one_line_not_an_abort(checkpoint, tmp_path):
    # A full disk under the .pt2 (here `ulimit -f`, as the disk's): torch's zip writer raised ("unexpected pos"),
    # threw again as it was destroyed, and the process aborted, exit 134 and a C++ stack after the one line.
    out = tmp_path / "g.pt2"
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
            "from bicyclegan.engine.cli import main\n"
            f"sys.exit(main(['export', {str(checkpoint)!r}, '--out', {str(out)!r}, '--no-verify']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    # (the last line: an older torch's export warns of setuptools' pkg_resources first)
    assert done.stderr.splitlines()[-1] == (f"bicyclegan export: ExportError: exporting the generator to {out} (pt2) "
                                            f"failed: OSError: [Errno 27] File too large"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "terminate called" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing left: no temp file, no folder


@torch.no_grad()
def test_an_export_replaces_no_run_file_and_a_failed_sidecar_keeps_the_earlier_pair(model, tmp_path, monkeypatch):
    # `--out RUN/config --format pt2` wrote its sidecar over the run's config.json (sample, evaluate and resume then
    # failed), `--out RUN/config.json` the model over it; a sidecar that could not be written left the new model
    # beside the earlier export's sidecar.
    from bicyclegan.engine import OutputError
    from bicyclegan.engine import export as export_mod
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"variant": "bicycle"}')
    for out, fmt in ((run / "config", "pt2"), (run / "config.json", "onnx"), (run / "config.json", "pt2")):
        with pytest.raises(OutputError, match=r"config\.json exists and is not an earlier export's file"):
            export_generator(model, out, fmt=fmt, verify=False)
    assert (run / "config.json").read_text() == '{"variant": "bicycle"}' and sorted(os_names(run)) == ["config.json"]
    export_generator(model, run / "g.pt2", verify=False)
    export_generator(model, run / "g.pt2", batch=1, verify=False)  # an earlier export's sidecar is replaced
    assert not json.loads((run / "g.pt2.json").read_text())["dynamic_batch"]
    earlier = {p: p.read_bytes() for p in (run / "g.pt2", run / "g.pt2.json")}

    def full(*a, **k):
        raise OutputError("cannot write export sidecar: no space left on device")
    monkeypatch.setattr(export_mod, "write_json", full)
    with pytest.raises(OutputError, match="no space left"):
        export_generator(model, run / "g.pt2", verify=False)
    assert {p: p.read_bytes() for p in earlier} == earlier and sorted(os_names(run)) == [
        "config.json", "g.pt2", "g.pt2.json"]


@torch.no_grad()
def test_an_export_replaces_no_model_of_another_source_and_takes_an_empty_file(model, tmp_path, capsys):
    # `--out model.onnx` replaced a model of the user's that no export wrote (only JSON, JSONL and HTML files were
    # refused); an empty file (`--out "$(mktemp --suffix .pt2)"`) holds nothing to lose
    from bicyclegan.engine import OutputError
    for name in ("mine.pt2", "g.pt2"):
        mine = tmp_path / name
        mine.write_bytes(b"a model of my own")
        other = tmp_path / ("g.pt2" if name == "mine.pt2" else "g_new.pt2")
        with pytest.raises(OutputError) as e:
            export_generator(model, mine, verify=False)
        assert str(e.value) == (f"{mine} exists and is not an earlier export's file (a run's config.json, results, a "
                                f"model no export wrote), which the export would replace; give another file to write "
                                f"(CLI: --out), e.g. {other}")
        assert mine.read_bytes() == b"a model of my own" and set(os_names(tmp_path)) <= {"g.pt2", "mine.pt2"}
    (tmp_path / "g.pt2").unlink()
    (tmp_path / "empty.pt2").touch()
    export_generator(model, tmp_path / "empty.pt2", verify=False)
    export_generator(model, tmp_path / "empty.pt2", batch=1, verify=False)  # now an earlier export: replaced
    assert json.loads((tmp_path / "empty.pt2.json").read_text())["file"] == "empty.pt2"


def os_names(folder):
    return [p.name for p in folder.iterdir()]


def test_a_size_beyond_what_the_preprocess_loads_is_refused(tmp_path):
    # load_size 36 and resize_and_crop: the sidecar said "resize to 36 x 36, centre crop 64 x 64" (PIL pads such a
    # crop with black); at the crop size, and at sizes within the load, it is written
    cfg = TrainConfig(model=ModelConfig(**TINY), data=DataConfig(load_size=36, preprocess="resize_and_crop"))
    m = BicycleGAN(cfg)
    for h, w in ((64, 64), (32, 64)):
        with pytest.raises(ExportError, match=rf"height x width {h}x{w} is larger than the images preprocess "
                                              r"resize_and_crop makes \(load_size 36: "):
            export_generator(m, tmp_path / "g.pt2", height=h, width=w, verify=False)
    assert not (tmp_path / "g.pt2").exists()
    export_generator(m, tmp_path / "g.pt2", verify=False)
    assert json.loads((tmp_path / "g.pt2.json").read_text())["preprocessing"]["crop"] == {
        "kind": "centre", "size": [32, 32]}


def test_the_sidecar_says_the_variant_the_batch_bound_and_how_sample_draws_z(tmp_path):
    pix = tiny_model("pix2pix")
    meta = json.loads(Path(export_generator(pix, tmp_path / "p.pt2", verify=False)["sidecar"]).read_text())
    z = meta["inputs"][1]["description"]
    assert meta["variant"] == "pix2pix" and meta["max_batch"] == 4096 and "encoder" not in z  # pix2pix has no E
    assert "once for its --sync list, then once per input in order" in z
    meta = json.loads(Path(export_generator(tiny_model(), tmp_path / "b.pt2", batch=2, verify=False)["sidecar"])
                      .read_text())
    assert meta["variant"] == "bicycle" and "max_batch" not in meta and "by the model's encoder E" in \
        meta["inputs"][1]["description"]
    # a checkpoint imported without the authors' E (import-official --G alone) has no encoder to offer: the sidecar
    # said "or the mu of a reference image B by the model's encoder E" of it, file or loaded model
    from bicyclegan.engine import load_checkpoint
    no_e = save_checkpoint(tiny_model(), tmp_path / "noE.pt", own={"imported": ["G"]})
    for source in (no_e, load_checkpoint(no_e)):
        meta = json.loads(Path(export_generator(source, tmp_path / "n.pt2", verify=False)["sidecar"]).read_text())
        assert meta["variant"] == "bicycle" and "encoder" not in meta["inputs"][1]["description"], source
    flat = tiny_model("pix2pix", nz=0)
    meta = json.loads(Path(export_generator(flat, tmp_path / "f.pt2", verify=False)["sidecar"]).read_text())
    assert meta["model"] == "BicycleGAN generator G(A) -> B (nz 0: no z)" and len(meta["inputs"]) == 1
