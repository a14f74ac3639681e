"""`bicyclegan serve`: the JSON API behind the explorer page, through FastAPI's TestClient.

Expected images are computed here from the image files themselves (PIL, the demo's A|B halves,
pixel / 127.5 - 1) and the networks of an independently loaded checkpoint; expected codes from a
numpy transcription of the reference's util.interp_z.
"""
import base64
import importlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from bicyclegan.engine import BicycleGAN, ConfigError, load_checkpoint, make_config, save_checkpoint
from bicyclegan.engine.cli import build_parser, main
from bicyclegan.engine.serve import Explorer, RequestError, bind, make_app
from bicyclegan.pipelines import DatasetError, make_demo_dataset

serve_mod = importlib.import_module("bicyclegan.engine.serve")  # the name `serve` is the function

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")  # what Starlette's TestClient drives
from fastapi.testclient import TestClient  # noqa: E402

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi", impl="ref")


def tiny_checkpoint(path, root, **kw):
    cfg = make_config("reference", **{**TINY, "batch_size": 2, "load_size": 32, "preprocess": "none",
                                      "num_workers": 0, "backend": "torch", "dataroot": str(root), **kw})
    model = BicycleGAN(cfg)
    if model.G_ema is not None:  # make the moving average differ from G, so using the wrong one shows
        with torch.no_grad():
            for p in model.G_ema.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return save_checkpoint(model, path)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=4, n_test=3, size=32, seed=0)


@pytest.fixture(scope="module")
def ckpt(demo_root, tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ema.pt", demo_root, ema=0.9)


@pytest.fixture(scope="module")
def explorer(ckpt):
    return Explorer(ckpt, device="cpu")


@pytest.fixture()
def client(explorer):
    return TestClient(make_app(explorer))


# -- independent computations -----------------------------------------------------------------------
def halves(path):
    """(A, B) of an aligned demo file as 1 x 3 x H x W tensors in [-1, 1]."""
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1
    w = arr.shape[1] // 2
    t = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None] for a in (arr[:, :w], arr[:, w:])]
    return t[0], t[1]


def assert_same_code(got, want):
    """E's mean, to float32's rounding of it: relative to its size (the tiny checkpoint's codes are ~1e-4, so an
    absolute 1e-6 passed E(0.5 B) for E(B))."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def pixels(x):
    """N x C x H x W in [-1, 1] -> N x H x W x C uint8, as a PNG of it holds."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def decode(uri):
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def expected_outputs(ckpt, A, z):
    model = load_checkpoint(ckpt)
    with torch.no_grad():
        return pixels(model.G_ema.eval()(A.repeat(len(z), 1, 1, 1), torch.tensor(z, dtype=torch.float32)))


def assert_same_images(uris, want):
    got = np.stack([decode(u) for u in uris])
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want).max() <= 1  # float rounding at a .5 boundary at most


def png_bytes(arr, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def interp_z_reference(z0, z1, num_frames, mode):
    """The reference's util.interp_z, transcribed."""
    z0, z1 = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    ratios = [n / float(num_frames - 1) for n in range(num_frames)]
    if mode == "slerp":
        omega = np.arccos(np.dot(z0 / (np.linalg.norm(z0) + 1e-10), z1 / (np.linalg.norm(z1) + 1e-10)))
        so = np.sin(omega)
        if abs(so) >= 1e-10:
            return np.stack([np.sin((1 - r) * omega) / so * z0 + np.sin(r * omega) / so * z1 for r in ratios])
    return np.stack([(1 - r) * z0 + r * z1 for r in ratios])


# -- the page and the inputs -----------------------------------------------------------------------
def test_page_is_served_and_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "BicycleGAN explorer" in r.text
    assert "http://" not in r.text and "https://" not in r.text  # no CDN: works offline
    # a phone lays it out at its own width: without this, at 980 px shrunk to 40 % (5 px text, tiny sliders)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in r.text


def test_info_lists_the_dataset_inputs(client, demo_root):
    info = client.get("/api/info").json()
    assert info["nz"] == 8 and info["encoder"] and info["size"] == [32, 32]
    files = sorted(p.name for p in (demo_root / "test").glob("*.png"))
    assert [it["name"] for it in info["items"]] == files
    assert all(it["has_A"] and it["has_B"] for it in info["items"])


def test_dataset_inputs_are_prepared_as_the_models_data_config_says(demo_root, tmp_path):
    A, B = halves(demo_root / "test" / "00001.png")
    for direction, want in (("AtoB", A), ("BtoA", B)):
        ex = Explorer(tiny_checkpoint(tmp_path / f"{direction}.pt", demo_root, direction=direction), device="cpu")
        png = np.asarray(Image.open(io.BytesIO(ex.image_png("d1", "A"))).convert("RGB"))
        assert np.array_equal(png, pixels(want)[0])


# -- codes and outputs -------------------------------------------------------------------------------
def test_generate_gives_the_sampling_generators_output_per_code(client, ckpt, demo_root):
    A, _ = halves(demo_root / "test" / "00002.png")
    z = [[0.0] * 8, [1.5, -1, 0, 0, 2, 0, 0, -0.5], [0.0] * 8]
    r = client.post("/api/generate", json={"input": "d2", "z": z})
    assert r.status_code == 200
    imgs = r.json()["images"]
    assert_same_images(imgs, expected_outputs(ckpt, A, z))
    assert imgs[0] == imgs[2] and imgs[0] != imgs[1]


def test_a_requests_outputs_are_made_in_batches_of_bounded_size(ckpt, demo_root, monkeypatch):
    # Under preprocess none an upload keeps its size, and 16 codes of a 2048 px photo went through G in one
    # batch (11.6 GB held for two minutes): batches of FORWARD_PIXELS input pixels, the outputs the same.
    explorer = Explorer(ckpt, device="cpu", num=3)
    batches = []
    real = explorer.model.G_ema.forward
    monkeypatch.setattr(explorer.model.G_ema, "forward", lambda A, z: batches.append(len(A)) or real(A, z))
    monkeypatch.setattr(serve_mod, "FORWARD_PIXELS", 2 * 32 * 32)
    A, _ = halves(demo_root / "test" / "00001.png")
    z = [[0.3 * i - 1] * 8 for i in range(5)]
    assert_same_images(explorer.generate("d1", z)["images"], expected_outputs(ckpt, A, z))
    assert batches == [2, 2, 1]
    explorer.stopping = True  # serve stops: the request in progress ends after its batch
    with pytest.raises(RequestError, match="the server is stopping"):
        explorer.generate("d1", z)


def test_random_codes_are_reproducible_from_their_seed(client):
    a = client.post("/api/random", json={"n": 16, "seed": 5}).json()
    b = client.post("/api/random", json={"n": 16, "seed": 5}).json()
    c = client.post("/api/random", json={"n": 16}).json()
    assert a == b and a["seed"] == 5 and isinstance(c["seed"], int)
    z = np.array(a["z"])
    assert z.shape == (16, 8) and not np.array_equal(z, np.array(c["z"]))
    assert abs(z.mean()) < 0.35 and 0.7 < z.std() < 1.3  # 128 draws of N(0, 1)


def test_encode_returns_the_encoders_mean_of_b(client, ckpt, demo_root):
    _, B = halves(demo_root / "test" / "00000.png")
    with torch.no_grad():
        want = load_checkpoint(ckpt).E.eval()(B)[0][0].numpy()
    got = client.post("/api/encode", json={"image": "d0"}).json()["z"]
    assert_same_code(got, want)


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolation_follows_the_references_path(client, ckpt, demo_root, mode):
    z0, z1 = [1.0, 0, 0, 0, 0, 0, 0, 2], [0, 1.0, 0, 0, -1, 0, 0, 0]
    r = client.post("/api/interpolate", json={"input": "d0", "z0": z0, "z1": z1, "steps": 5, "mode": mode}).json()
    want = interp_z_reference(z0, z1, 5, mode)
    assert np.allclose(r["z"], want, atol=1e-6)
    A, _ = halves(demo_root / "test" / "00000.png")
    assert_same_images(r["images"], expected_outputs(ckpt, A, want.astype(np.float32).tolist()))


def test_slerp_of_parallel_codes_is_linear_and_slerp_is_the_default_as_the_commands(client):
    z = [1.0, 2.0, 0, 0, 0, 0, 0, 0]
    r = client.post("/api/interpolate", json={"input": "d0", "z0": z, "z1": [2 * v for v in z], "steps": 3}).json()
    assert np.allclose(r["z"], [z, [1.5 * v for v in z], [2 * v for v in z]], atol=1e-6)
    z0, z1 = [1.0, 0, 0, 0, 0, 0, 0, 2], [0, 1.0, 0, 0, -1, 0, 0, 0]  # not parallel: slerp's path, no mode given
    r = client.post("/api/interpolate", json={"input": "d0", "z0": z0, "z1": z1, "steps": 5}).json()
    assert np.allclose(r["z"], interp_z_reference(z0, z1, 5, "slerp"), atol=1e-6)
    assert client.get("/api/info").json()["interp_modes"][0] == "slerp"  # the page's first choice


@pytest.mark.parametrize("body, status, words", [
    ({"input": "d0", "z": [[0.0] * 7]}, 400, "z[0] must be a list of 8 numbers"),
    ({"input": "d0", "z": [[0.0] * 8] * 17}, 400, "1 to 16 codes"),
    ({"input": "d0", "z": []}, 400, "1 to 16 codes"),
    ({"input": "d0", "z": [["a"] * 8]}, 400, "8 numbers"),
    ({"input": "nope", "z": [[0.0] * 8]}, 404, "no image 'nope'"),
    # a long id is not echoed back whole (100 kB of it was)
    ({"input": "x" * 100_000, "z": [[0.0] * 8]}, 404, f"no image {'x' * 40!r}... (100000 characters) (uploads"),
    # left out or not a string: the client's mistake, said as such (was 404 "no image None")
    ({"z": [[0.0] * 8]}, 400, "input must be an image's id, as /api/info lists them (got None)"),
    ({"input": 3, "z": [[0.0] * 8]}, 400, "input must be an image's id"),
])
def test_bad_generate_requests_say_what_is_wrong(client, body, status, words):
    r = client.post("/api/generate", json=body)
    assert r.status_code == status and words in r.json()["error"]


def test_encode_and_interpolate_without_an_image_id_say_so(client):
    r = client.post("/api/encode", json={})
    assert r.status_code == 400 and "image must be an image's id" in r.json()["error"]
    r = client.post("/api/encode", json={"image": ""})  # the page's list of references empty (was "no image ''")
    assert r.status_code == 400 and r.json()["error"].startswith("no reference B chosen: upload one")
    r = client.post("/api/interpolate", json={"z0": [0] * 8, "z1": [1] * 8, "steps": 2})
    assert r.status_code == 400 and "input must be an image's id" in r.json()["error"]


def test_non_json_and_non_finite_bodies_are_refused(client):
    r = client.post("/api/generate", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    for z, said in (("NaN", "z[0] holds nan, not a finite number"),
                    ("-Infinity", "z[0] holds -inf, not a finite number"),
                    # finite numbers float32 cannot hold (1e308 was "not a finite number")
                    ("1e308", "z[0] holds 1e+308, beyond float32's range (about +-3.4e38)"),
                    ("-1" + "0" * 400, "z[0] holds an integer of 401 digits, beyond float32's range (about +-3.4e38)")):
        r = client.post("/api/generate", content=b'{"input": "d0", "z": [[0.5, %s, 0, 0, 0, 0, 0, 0]]}' % z.encode())
        assert r.status_code == 400 and r.json()["error"] == said, (z, r.json())
    r = client.post("/api/generate", json={"input": "d0", "z": [[3e38, -3e38, 0, 0, 0, 0, 0, 0]]})
    assert r.status_code == 200, r.text  # (within float32's range)
    assert client.post("/api/random", json={"n": 0}).status_code == 400
    assert client.post("/api/interpolate", json={"input": "d0", "z0": [0] * 8, "z1": [0] * 8,
                                                 "steps": 1}).status_code == 400
    assert client.post("/api/interpolate", json={"input": "d0", "z0": [0] * 8, "z1": [0] * 8,
                                                 "mode": "cubic"}).status_code == 400


@pytest.mark.parametrize("net", ["E", "G"])
def test_a_model_whose_outputs_overflow_is_answered_so_not_shown_black(ckpt, net):
    # generate showed black images (200) and encode was a bare 500 (JSON holds no inf), where sample and evaluate
    # refuse such a model
    ex = Explorer(ckpt, device="cpu")
    with torch.no_grad():
        for p in getattr(ex.model, "G_ema" if net == "G" and ex.model.G_ema is not None else net).parameters():
            p.mul_(1e30 if p.dim() > 1 else 1)
    client = TestClient(make_app(ex))
    r = client.post("/api/encode", json={"image": "d0"})
    if net == "E":
        assert r.status_code == 500 and r.json()["error"] == "the encoder's code is not finite (the model overflowed)"
    else:
        assert r.status_code == 200  # (E is sound)
    r = client.post("/api/generate", json={"input": "d0", "z": [[0.5] * 8]})
    if net == "G":
        assert r.status_code == 500 and r.json()["error"] == ("the model's outputs are not finite (it overflowed): "
                                                              "nothing to show")
    else:
        assert r.status_code == 200  # (a code given: E unused)


def test_a_tuning_table_that_cannot_be_used_is_refused_as_serve_starts(ckpt, demo_root, tmp_path, monkeypatch):
    # It started, and every request was a 500 with the table's traceback in the server's log
    from bicyclegan.kernels import _configs
    kernels = tiny_checkpoint(tmp_path / "auto.pt", demo_root, impl="auto")  # (the kernels, in the interpreter)
    (tmp_path / "bad.json").write_text("nope")
    monkeypatch.setenv(_configs.ENV, str(tmp_path / "bad.json"))
    with pytest.raises(_configs.TuningTableError, match="bad.json: not JSON"):
        Explorer(kernels, device="cpu", num=0)
    assert Explorer(ckpt, device="cpu", num=0).model.cfg.model.impl == "ref"  # (not the kernels': not read)


def test_a_model_without_encoder_says_so(demo_root, tmp_path):
    ex = Explorer(tiny_checkpoint(tmp_path / "p2p.pt", demo_root, variant="pix2pix"), device="cpu")
    with pytest.raises(RequestError, match=r"this model \(variant pix2pix\) has no trained encoder"):
        ex.encode("d0")
    assert ex.info()["encoder"] is False
    assert len(ex.generate("d0", [[0.0] * 8, [1.0] * 8])["images"]) == 2


# -- uploads -----------------------------------------------------------------------------------------
def test_uploaded_input_is_prepared_and_used(client, ckpt):
    arr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for fmt in ("PNG", "BMP"):
        r = client.post("/api/upload?role=A&name=mine.png", content=png_bytes(arr, fmt))
        assert r.status_code == 200, r.text
        up = r.json()
        assert up["name"] == "mine.png" and up["has_A"] and not up["has_B"]
        z = [[0.5] * 8]
        got = client.post("/api/generate", json={"input": up["id"], "z": z}).json()["images"]
        A = torch.from_numpy(arr.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1)[None]
        assert_same_images(got, expected_outputs(ckpt, A, z))
        assert any(it["id"] == up["id"] for it in client.get("/api/info").json()["items"])


def test_a_cameras_mpo_jpeg_is_taken_as_its_first_picture(client, ckpt):
    # Phones save JPEGs with a second picture after the first (MPO, as PIL names them): "MPO images are not
    # accepted; upload PNG, JPEG, BMP, PPM" for a .jpg straight from the camera.
    arr = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "MPO", save_all=True, append_images=[Image.new("RGB", (32, 32))], quality=95)
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    r = client.post("/api/upload?role=A&name=photo.jpg", content=buf.getvalue())
    assert r.status_code == 200, r.text
    z = [[0.5] * 8]
    got = client.post("/api/generate", json={"input": r.json()["id"], "z": z}).json()["images"]
    first = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))  # (the JPEG as decoded)
    A = torch.from_numpy(first.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1)[None]
    assert_same_images(got, expected_outputs(ckpt, A, z))


def test_uploaded_reference_is_encoded(client, ckpt):
    arr = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    up = client.post("/api/upload?role=B", content=png_bytes(arr)).json()
    assert up["has_B"] and not up["has_A"]
    B = torch.from_numpy(arr.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1)[None]
    with torch.no_grad():
        want = load_checkpoint(ckpt).E.eval()(B)[0][0].numpy()
    assert_same_code(client.post("/api/encode", json={"image": up["id"]}).json()["z"], want)
    r = client.post("/api/generate", json={"input": up["id"], "z": [[0.0] * 8]})
    assert r.status_code == 400 and "reference B" in r.json()["error"]


def png_declaring(w, h, payload=b"\x00" * 64):
    """A small PNG file whose header declares w x h pixels and whose data cannot be decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", payload) + chunk(b"IEND", b""))


def test_uploads_are_checked_before_decoding(explorer, monkeypatch):
    client = TestClient(make_app(explorer))
    monkeypatch.setattr(explorer, "max_upload_pixels", 10_000)
    r = client.post("/api/upload", content=png_declaring(5000, 4000))
    # refused for its declared size: had it been decoded, its garbage data would have failed instead
    assert r.status_code == 413 and "5000x4000 = 20000000 pixels exceeds the limit of 10000" in r.json()["error"]
    r = client.post("/api/upload", content=png_declaring(20_000, 20_000))  # PIL's own bomb limit, at open
    assert r.status_code == 413 and "the limit is 10000 pixels" in r.json()["error"]
    monkeypatch.setattr(explorer, "max_upload_pixels", 16_000_000)
    r = client.post("/api/upload", content=png_declaring(64, 64))
    assert r.status_code == 400  # this one passes the header checks; the pipelines refuse its data
    # One line about the file: no temporary folder, no training option.
    assert r.json()["error"].startswith("the upload: ") and "bicyclegan-upload" not in r.json()["error"]
    assert "skip_bad" not in r.json()["error"] and "\n" not in r.json()["error"]

    monkeypatch.setattr(explorer, "max_upload_bytes", 1000)
    noise = png_bytes(np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert len(noise) > 1000
    r = client.post("/api/upload", content=noise)
    assert r.status_code == 413 and "limit of 1000" in r.json()["error"]
    r = client.post("/api/upload", content=iter([noise[:600], noise[600:]]))  # streamed, no length given
    assert r.status_code == 413 and "limit of 1000" in r.json()["error"]


@pytest.mark.parametrize("data, status, words", [
    (b"hello, not an image", 415, "not an image"),
    (b"", 400, "empty upload"),
    (png_bytes(np.zeros((32, 32, 3), np.uint8), "GIF"), 415, "GIF images are not accepted"),
    (png_bytes(np.zeros((40, 40, 3), np.uint8)), 400, "multiples of 32"),
])
def test_bad_uploads_say_what_is_wrong(client, data, status, words):
    r = client.post("/api/upload", content=data)
    assert r.status_code == status and words in r.json()["error"]
    assert client.post("/api/upload?role=C", content=png_bytes(np.zeros((32, 32, 3), np.uint8))).status_code == 400


def test_only_the_latest_uploads_are_kept(explorer, monkeypatch):
    monkeypatch.setattr(serve_mod, "MAX_UPLOADS", 2)
    data = png_bytes(np.zeros((32, 32, 3), np.uint8))
    ids = [explorer.add_upload(data)["id"] for _ in range(3)]
    with pytest.raises(RequestError, match="no image"):
        explorer.item(ids[0])
    assert explorer.item(ids[2]).A is not None and "d0" in explorer.items  # dataset inputs stay


def test_uploads_kept_hold_at_most_four_of_the_largest_size(ckpt):
    # 32 uploads of 16 Mpx kept under preprocess none held 6 GB: the oldest go while the kept ones' values pass
    # four uploads of --max_upload_pixels (RGB), the newest kept whatever its size.
    explorer = Explorer(ckpt, device="cpu", num=0, max_upload_pixels=32 * 32)
    ids = [explorer.add_upload(png_bytes(np.full((32, 32, 3), i, np.uint8)))["id"] for i in range(6)]
    assert list(explorer.items) == ids[2:]


def test_the_input_list_can_be_asked_for_while_uploads_come_in(explorer, monkeypatch):
    """/api/info and /api/upload run in FastAPI's thread pool at once: info iterated the inputs while an
    upload changed them (RuntimeError, an HTTP 500), and add_upload looked its new item up again after
    releasing the lock (a KeyError once MAX_UPLOADS newer ones had come in)."""
    import threading
    monkeypatch.setattr(serve_mod, "MAX_UPLOADS", 2)  # every upload now also drops one
    data, errors, done = png_bytes(np.zeros((32, 32, 3), np.uint8)), [], threading.Event()

    def ask():
        while not done.is_set():
            try:
                explorer.info()
            except Exception as e:  # noqa: BLE001 (any error is the failure)
                errors.append(e)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within a few uploads
    askers = [threading.Thread(target=ask) for _ in range(2)]
    try:
        for t in askers:
            t.start()
        described = [explorer.add_upload(data) for _ in range(40)]
    finally:
        done.set()
        for t in askers:
            t.join()
        sys.setswitchinterval(interval)
    assert errors == [] and [d["id"] for d in described[-2:]] == [d["id"] for d in explorer.info()["items"][-2:]]
    monkeypatch.setattr(serve_mod, "MAX_UPLOADS", 0)  # as if newer uploads had pushed it out at once
    assert explorer.add_upload(data)["has_A"] is True


# -- the command -------------------------------------------------------------------------------------
def test_cli_defaults_to_this_machine_only():
    args = build_parser().parse_args(["serve", "ck.pt"])
    assert args.host == "127.0.0.1" and args.port == 7860
    assert args.max_upload_mb * 2**20 == serve_mod.MAX_UPLOAD_BYTES


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing.pt" in err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stopped_server_ends_by_the_signal_and_leaves_no_temp_folder(ckpt, demo_root, tmp_path, sig):
    # uvicorn stops on SIGTERM, then raises it again: the default handler ended the process without its
    # exit-time clean-up, a /tmp/pymp-* folder (the dataset loader's) left by every `timeout`/`docker stop`.
    # The command still dies of the signal (a shell's status 128 + n), after that clean-up.
    proc = _serve_process(ckpt, demo_root, tmp_path, int_ignored=False)
    try:
        line = proc.stderr.readline()
        assert "explorer for" in line, line + proc.stderr.read()
        time.sleep(0.5)  # (uvicorn's handlers in place)
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == -sig, err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == [], (err, list(tmp_path.iterdir()))


def _serve_process(ckpt, demo_root, tmp_path, int_ignored):
    """`bicyclegan serve` in a process of its own, SIGINT ignored there (a script's background job) or at its
    default (a terminal's; set here, not inherited: a test before may have left this process ignoring it)."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bicyclegan.engine.cli", "serve", str(ckpt), "--dataroot",
                             str(demo_root), "--port", "0", "--device", "cpu"], env=env, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(
                                signal.SIGINT, signal.SIG_IGN if int_ignored else signal.SIG_DFL))


@pytest.mark.slow
def test_a_server_started_with_sigint_ignored_keeps_serving_through_one(ckpt, demo_root, tmp_path):
    # A script's background job (`bicyclegan serve ... &`) starts with SIGINT ignored, so that the script's
    # Ctrl-C leaves it alone, as the other commands leave it: uvicorn took SIGINT whatever it was, and the
    # server stopped (exit 0). SIGTERM still stops it.
    proc = _serve_process(ckpt, demo_root, tmp_path, int_ignored=True)
    try:
        line = proc.stderr.readline()
        assert "explorer for" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        time.sleep(0.5)  # (uvicorn's handlers in place)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()[1]
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, err
    assert "stopping" in err and err.count("stopping") == 1, err  # (the SIGTERM's alone)


def test_bind_picks_a_free_port_and_reports_a_taken_one():
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        sock.close()


def test_a_port_in_use_is_said_before_the_model_and_its_inputs_load(monkeypatch):
    sock = bind("127.0.0.1", 0)
    monkeypatch.setattr(serve_mod, "Explorer", lambda *a, **k: pytest.fail("the model loaded first"))
    try:
        with pytest.raises(ConfigError, match="cannot listen on"):
            serve_mod.serve("no-such.pt", port=sock.getsockname()[1])
    finally:
        sock.close()


def test_a_port_in_use_exits_75_and_an_address_not_this_machines_2(ckpt, capsys):
    # Both exited 2: a supervisor's retry loop could not tell a port another process holds (free once a server's
    # earlier run ends) from an address it can never listen on. 75: sysexits.h's EX_TEMPFAIL.
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert main(["serve", str(ckpt), "--port", str(port)]) == 75
        assert capsys.readouterr().err.startswith(f"bicyclegan serve: ConfigError: cannot listen on 127.0.0.1:{port}: "
                                                  f"Address already in use;")
    finally:
        sock.close()
    assert main(["serve", str(ckpt), "--host", "192.0.2.1", "--port", "0"]) == 2  # (TEST-NET-1: no one's)
    assert capsys.readouterr().err.startswith("bicyclegan serve: ConfigError: cannot listen on 192.0.2.1:0: ")


def test_serve_without_fastapi_says_what_to_install(monkeypatch, ckpt):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ConfigError, match=r"pip install 'bicyclegan\[serve\]'"):
        serve_mod.serve(ckpt)


def test_dataset_folder_is_optional_without_dataroot(tmp_path, capsys):
    moved = tiny_checkpoint(tmp_path / "moved.pt", tmp_path / "gone")  # trained on data no longer here
    ex = Explorer(moved, device="cpu")
    assert ex.items == {} and "upload inputs, or pass --dataroot" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="does not exist"):
        Explorer(moved, tmp_path / "also-gone", device="cpu")  # a folder named explicitly must exist


def test_a_dataset_input_the_generator_cannot_take_is_refused_at_start(ckpt, tmp_path):
    # preprocess none keeps a 40 x 48 (W x H) file's size; the tiny U-Net (5 levels) needs multiples of 32.
    # It was offered on the page, and every output asked for it was an HTTP 500.
    (tmp_path / "plain").mkdir()
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(tmp_path / "plain" / "odd.png")
    with pytest.raises(ConfigError, match=r"odd\.png is 40x48 after preprocess=none, not a multiple of 32"):
        Explorer(ckpt, tmp_path / "plain", device="cpu")


def test_the_data_settings_as_sample_takes_them_let_such_inputs_and_uploads_through(ckpt, tmp_path, capsys):
    # serve had no --preprocess (nor --load_size, --crop_size, --direction): with a model trained at full
    # resolution, a folder of photos was refused at start and every upload of another size was too
    # ("resize the image first"). Both are now the file resized (bicubic) to 32 x 32.
    (tmp_path / "plain").mkdir()
    rng = np.random.default_rng(5)
    pic, up = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(pic).save(tmp_path / "plain" / "odd.png")
    with pytest.raises(RequestError, match="or start serve with --preprocess resize_and_crop") as info:
        Explorer(ckpt, num=0, device="cpu").add_upload(png_bytes(up))
    assert info.value.status == 400
    client = TestClient(make_app(Explorer(ckpt, tmp_path / "plain", device="cpu", preprocess="resize_and_crop")))
    got = client.get("/api/image/d0/A")
    assert got.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB")),
                          np.asarray(Image.fromarray(pic).resize((32, 32), Image.BICUBIC)))
    r = client.post("/api/upload?role=A", content=png_bytes(up))
    assert r.status_code == 200, r.text
    got = client.get(f"/api/image/{r.json()['id']}/A")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB")),
                          np.asarray(Image.fromarray(up).resize((32, 32), Image.BICUBIC)))
    args = build_parser().parse_args(["serve", "ck.pt", "--preprocess", "resize_and_crop", "--load_size", "40"])
    assert (args.preprocess, args.load_size, args.crop_size, args.direction) == ("resize_and_crop", 40, None, None)
    with pytest.raises(ConfigError, match="load_size=16 is smaller than the crop 32x32"):
        Explorer(ckpt, num=0, device="cpu", preprocess="resize_and_crop", load_size=16)


def test_other_sites_big_or_deep_bodies_and_foreign_host_names_are_refused(explorer):
    # Any page the user visited could post to the API (a cross-origin text/plain upload worked); a
    # site whose name resolves to 127.0.0.1 (DNS rebinding) was served as the page's own; a 300 MB
    # JSON body was read whole (1.3 GB of memory); JSON nested 100,000 deep was a 500.
    from bicyclegan.engine.serve import MAX_JSON_BYTES
    client = TestClient(make_app(explorer))
    ok = client.post("/api/random", json={"n": 2, "seed": 3})
    assert ok.status_code == 200 and len(ok.json()["z"]) == 2
    same = client.post("/api/random", json={"n": 1}, headers={"Origin": "http://testserver"})
    assert same.status_code == 200
    other_port = client.post("/api/random", json={"n": 1}, headers={"Origin": "http://testserver:8888"})
    assert other_port.status_code == 403  # another server on this machine is another site
    r = client.post("/api/upload", content=b"x",
                    headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert r.status_code == 403 and "evil.example" in r.json()["error"]
    r = client.post("/api/random", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400 and r.json()["error"] == "the request body must be JSON"
    r = client.post("/api/generate", content=b'{"z": "' + b"0" * (MAX_JSON_BYTES + 1) + b'"}')
    assert r.status_code == 413
    assert client.post("/api/random", json={"n": 1, "seed": 2**63}).json()["error"] == (
        "seed must be an integer from 0 to 2^63 - 1")
    local = TestClient(make_app(explorer, local_only=True), base_url="http://127.0.0.1:7860")
    assert local.get("/api/info").status_code == 200
    assert TestClient(make_app(explorer, local_only=True), base_url="http://localhost:7860").get("/").status_code == 200
    r = TestClient(make_app(explorer, local_only=True), base_url="http://evil.example:7860").get("/api/info")
    assert r.status_code == 421 and r.json()["error"] == (
        f"Host 'evil.example:7860' is not a name of this machine (localhost, {socket.gethostname()}, its addresses): "
        f"refused, as a site's own name for this server would be; serve --allow_host evil.example takes it")
    # this machine's own name (where it is 127.0.0.1's: /etc/hosts) was "not this machine's name" on loopback
    own = socket.gethostname()
    for name, status in ((own, 200), (own.upper(), 200), (own + ".local", 421)):  # (.local: the network's mDNS)
        r = TestClient(make_app(explorer, local_only=True), base_url=f"http://{name}:7860").get("/api/info")
        assert r.status_code == status, name
    # the loopback address served is this machine too (127.0.0.2 was refused at the address serve printed)
    other = make_app(explorer, local_only=True, host="127.0.0.2")
    assert TestClient(other, base_url="http://127.0.0.2:7860").get("/api/info").status_code == 200
    assert TestClient(other, base_url="http://127.0.0.3:7860").get("/api/info").status_code == 421
    # Served to the network (--host 0.0.0.0): reached by an address or this machine's name, not by another name (the
    # check was off: a rebinding site's name for the server passed, and so did its Origin, the same name)
    lan = make_app(explorer, host="0.0.0.0", network=True, allow_hosts=("Gpu-Box.lab.",))
    own = socket.gethostname()
    for base in ("http://192.168.1.5:7860", "http://[fe80::1]:7860", f"http://{own}:7860", f"http://{own}.:7860",
                 f"http://{own.upper()}.local:7860", "http://localhost:7860", "http://gpu-box.lab:7860"):
        assert TestClient(lan, base_url=base).get("/api/info").status_code == 200, base
    r = TestClient(lan, base_url="http://evil.example:7860").post("/api/random", json={"n": 1},
                                                                   headers={"Origin": "http://evil.example:7860"})
    assert r.status_code == 421 and r.json()["error"].endswith(
        "is neither an address nor this machine's name (" + own + "): refused, as a site's own name for this server "
        "would be; serve --allow_host evil.example takes it")
    # HEAD, as curl -I and uptime checks ask (405 before)
    assert [local.head(p).status_code for p in ("/", "/api/info", "/api/image/d0/A")] == [200, 200, 200]


def asgi_scope(method: str, path: str, headers: list, query: bytes = b"") -> dict:
    """An HTTP request's ASGI scope, from a client on this machine to the server at 127.0.0.1:7860."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 7860)}


def test_an_upload_whose_client_goes_away_is_one_answer_not_a_traceback(explorer):
    import asyncio
    sent, messages = [], iter([{"type": "http.request", "body": b"x" * 100, "more_body": True},
                               {"type": "http.disconnect"}])

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)
    scope = asgi_scope("POST", "/api/upload", [(b"host", b"127.0.0.1:7860"), (b"content-length", b"100000")],
                       b"role=A")
    asyncio.run(make_app(explorer, local_only=True)(scope, receive, send))  # raised ClientDisconnect
    assert sent[0]["status"] == 400 and b"went away" in sent[1]["body"]


def asgi_call(app, method, path, headers, messages):
    """One request straight through the ASGI app: its (status, body, headers); messages: what receive() gives (a
    number: seconds waited before the next), then it waits for good (a client that sends no more)."""
    import asyncio
    sent, messages = [], iter(messages)

    async def receive():
        for m in messages:
            if isinstance(m, float):
                await asyncio.sleep(m)
                continue
            return m
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)
    asyncio.run(asyncio.wait_for(app(asgi_scope(method, path, headers), receive, send), 30))
    return sent[0]["status"], sent[1]["body"], dict(sent[0]["headers"])


def test_what_one_client_holds_is_bounded_in_time_and_the_list_never_waits_for_the_model(explorer, monkeypatch):
    # A body sent but for its last byte held its 10 MB for good (40 of them: 400 MB); the answer is 408 once
    # BODY_SECONDS have passed.
    monkeypatch.setattr(serve_mod, "BODY_SECONDS", 0.3)
    app = make_app(explorer, local_only=True)
    local = [(b"host", b"127.0.0.1:7860")]
    status, body, _ = asgi_call(app, "POST", "/api/upload", local + [(b"content-length", b"1000")],
                                [{"type": "http.request", "body": b"x", "more_body": True}])
    assert status == 408 and json.loads(body)["error"] == ("upload did not arrive within 0.3 s and a second for each "
                                                          "16 KB")
    # a steady body at a slow link's rate goes on past BODY_SECONDS, each piece earning its time (one deadline for the
    # whole body cut a 10 MB upload at 91 KB/s short); the same pieces slower than BODY_RATE are cut
    monkeypatch.setattr(serve_mod, "BODY_RATE", 4000)
    piece = {"type": "http.request", "body": b"x" * 1000, "more_body": True}
    for pause, status_wanted in ((0.15, 415), (0.6, 408)):  # (6.7 KB/s: the bytes are no image; 1.7 KB/s)
        status, body, _ = asgi_call(app, "POST", "/api/upload", local + [(b"content-length", b"6000")],
                                    [piece, pause, piece, pause, piece, pause, piece, pause, piece, pause,
                                     {"type": "http.request", "body": b"x" * 1000}])
        assert status == status_wanted, body
    # A Host or Origin that is no URL's was a 500 with a traceback per request
    status, body, _ = asgi_call(app, "GET", "/api/info", [(b"host", b"[::1")], [])
    assert status == 421 and "Host '[::1' is not a name of this machine" in json.loads(body)["error"]
    status, _, _ = asgi_call(app, "POST", "/api/random", local + [(b"origin", b"http://[::1")],
                             [{"type": "http.request", "body": b"{}"}])
    assert status == 403
    # not framed by another site's page, nor read as another type
    status, _, headers = asgi_call(app, "GET", "/", local, [])
    assert status == 200 and headers[b"x-frame-options"] == b"DENY" and headers[b"x-content-type-options"] == \
        b"nosniff" and headers[b"content-security-policy"] == b"frame-ancestors 'none'"
    # The list of inputs while the model is busy (a generation holds it): it waited for the generation, and 41 queued
    # generations took every thread the page's requests are answered from.
    client, answers = TestClient(app, base_url="http://127.0.0.1:7860"), []
    with explorer.lock:
        asker = threading.Thread(target=lambda: answers.append(client.get("/api/info").status_code), daemon=True)
        asker.start()
        asker.join(20)
        assert answers == [200]
    import uvicorn  # and the server answers 503 beyond CONNECTIONS at once (held ones used every descriptor)
    configs = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: configs.append(self.config))
    serve_mod.serve(explorer.model, port=0, device="cpu", num=0)
    assert configs[0].limit_concurrency == serve_mod.CONNECTIONS


def test_queued_generations_wait_outside_the_thread_pool(explorer):
    # 41 generations queued behind a long one took all of the pool's 40 threads: the page itself (/, an input's
    # image) was not answered until they were done.
    import asyncio

    from starlette.concurrency import run_in_threadpool
    app = make_app(explorer, local_only=True)
    local = [(b"host", b"127.0.0.1:7860")]

    async def main():
        async def call(method, path, body=b""):
            done = asyncio.get_running_loop().create_future()
            sent = []

            async def receive():
                return {"type": "http.request", "body": body}

            async def send(m):
                sent.append(m)
                if m["type"] == "http.response.body" and not m.get("more_body"):
                    done.set_result(sent[0]["status"])
            asyncio.ensure_future(app(asgi_scope(method, path, local), receive, send))
            return done
        await run_in_threadpool(explorer.lock.acquire)  # a generation in progress
        try:
            body = json.dumps({"input": "d0", "z": [[0.0] * explorer.nz]}).encode()
            queued = [await call("POST", "/api/generate", body) for _ in range(45)]
            await asyncio.sleep(0.5)
            page = await call("GET", "/api/image/d0/A")
            assert await asyncio.wait_for(page, 20) == 200
            assert not any(q.done() for q in queued)
        finally:
            explorer.lock.release()
        assert await asyncio.wait_for(asyncio.gather(*queued), 120) == [200] * 45
    asyncio.run(main())


def test_stopping_says_so_and_ends_generations(explorer, capsys):
    import logging

    import uvicorn
    server = serve_mod._server_class(explorer)(uvicorn.Config(make_app(explorer)))
    explorer.stopping = False
    logger = logging.getLogger("uvicorn.error")
    level = logger.level
    try:
        server.handle_exit(signal.SIGINT, None)
        assert explorer.stopping and "serve: stopping" in capsys.readouterr().err
        server.handle_exit(signal.SIGINT, None)  # forced: the cancelled requests' tracebacks not printed
        assert server.force_exit and logger.level == logging.CRITICAL
    finally:
        logger.setLevel(level)
        explorer.stopping = False


def test_serve_answers_on_ipv6_loopback_and_checks_hosts_there_and_reads_only_its_inputs(ckpt, demo_root, tmp_path,
                                                                                        monkeypatch):
    # serve() on a loopback address turns the Host check on; [::1] is this machine too. The explorer
    # checks only the --num inputs it shows (a bad file further on stopped it).
    serve_mod = importlib.import_module("bicyclegan.engine.serve")  # not the function of that name
    made = {}
    real = serve_mod.make_app
    monkeypatch.setattr(serve_mod, "make_app", lambda ex, **kw: made.update(kw) or real(ex, **kw))
    monkeypatch.setattr("uvicorn.Server.run", lambda self, sockets=None: None)
    serve_mod.serve(ckpt, demo_root, port=0, device="cpu", num=1)
    assert made == {"local_only": True, "host": "127.0.0.1", "network": False, "allow_hosts": ()}
    serve_mod.serve(ckpt, demo_root, host="0.0.0.0", port=0, device="cpu", num=1,  # to the network: names checked
                    allow_hosts=["gpu-box.lab"])
    assert made == {"local_only": False, "host": "0.0.0.0", "network": True, "allow_hosts": ("gpu-box.lab",)}
    from bicyclegan.engine.cli import main  # (the command's --allow_host, repeated)
    assert main(["serve", str(ckpt), "--dataroot", str(demo_root), "--port", "0", "--device", "cpu", "--num", "1",
                 "--allow_host", "a.lab", "--allow_host", "b.lab"]) == 0
    assert made["allow_hosts"] == ("a.lab", "b.lab")
    app = real(Explorer(ckpt, device="cpu"), local_only=True)
    assert TestClient(app, base_url="http://[::1]:7860").get("/api/info").status_code == 200
    split = tmp_path / "d" / "test"
    split.mkdir(parents=True)
    for name in ("0.png", "1.png"):
        shutil.copy(demo_root / "test" / "00000.png", split / name)
    (split / "zzz.png").write_bytes(b"")
    assert len(Explorer(ckpt, tmp_path / "d", phase="test", num=2, device="cpu").items) == 2


def test_more_inputs_than_serve_holds_are_refused_before_any_is_read(tmp_path, monkeypatch):
    # Every input offered is held in memory: --num 100000 took 3 GB at 32 px and would have run out of memory at
    # 256 px, with no word before it did.
    serve_mod = importlib.import_module("bicyclegan.engine.serve")  # (the module, not the function of its name)
    ckpt = save_checkpoint(BicycleGAN(make_config("reference", **TINY)), tmp_path / "m.pt")
    monkeypatch.setattr(serve_mod, "build_loader", lambda *a, **k: pytest.fail("inputs read"))
    with pytest.raises(ConfigError) as e:
        Explorer(ckpt, device="cpu", num=1001)
    assert str(e.value) == ("num=1001 (serve's --num): at most 1000 dataset inputs are offered, each held in memory "
                            "(1.6 MB at 256 px); upload others from the page")
    assert Explorer(ckpt, device="cpu", num=0).root is None  # (0: uploads alone)
    assert main(["serve", str(ckpt), "--num", "1001", "--device", "cpu"]) == 2


@pytest.mark.parametrize("runner", ["kernel", "asyncio.run", "kernel, SIGTERM"])
def test_serve_in_a_running_event_loop_serves_and_an_interrupt_stops_it_and_frees_the_port(ckpt, demo_root, runner,
                                                                                            monkeypatch, capsys):
    # A notebook's kernel runs an event loop in the cell's thread: uvicorn's run failed there ("Cannot run the event
    # loop while another loop is running"), and its socket, never closed, kept the port until the kernel restarted.
    # Under asyncio.run (a script's), whose SIGINT handler only cancels its task, the first Ctrl+C did nothing.
    import asyncio
    import urllib.request
    socks, answers = [], []
    real_bind = serve_mod.bind
    monkeypatch.setattr(serve_mod, "bind", lambda host, port: socks.append(real_bind(host, port)) or socks[-1])

    def browser():  # asks the page's API, then presses the notebook's stop button (SIGINT to the kernel)
        end = time.time() + 120
        while not socks and time.time() < end:
            time.sleep(0.05)
        answers.append(socks[0].getsockname()[1])
        while time.time() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{answers[0]}/api/info", timeout=10) as r:
                    answers.append(json.load(r)["variant"])
                break
            except OSError:
                time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM if "SIGTERM" in runner else signal.SIGINT)
        end = time.time() + 30
        while [t for t in threading.enumerate() if t.name == "bicyclegan serve"] and time.time() < end:
            time.sleep(0.1)
        if time.time() >= end:  # not stopped by it: a second Ctrl+C ends the test (asyncio.run's handler raises it)
            answers.append("the server went on")
            if "SIGTERM" not in runner:
                os.kill(os.getpid(), signal.SIGINT)

    async def cell():
        serve_mod.serve(ckpt, demo_root, port=0, device="cpu", num=1)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a terminal's; pytest-xdist ignores it)
    threading.Thread(target=browser, daemon=True).start()
    try:
        # (serve's SIGTERM: a SystemExit, which left the server running under the caller's loop)
        with pytest.raises(SystemExit if "SIGTERM" in runner else KeyboardInterrupt):
            if runner == "asyncio.run":
                asyncio.run(cell())
            else:
                loop = asyncio.new_event_loop()  # (as a kernel's: no SIGINT handler of asyncio.run's)
                try:
                    loop.run_until_complete(cell())
                finally:
                    loop.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert answers[1:] == ["bicycle"]
    # stopped before serve() returned: the server's thread ended, its socket closed by it (closed under it: an
    # "Invalid file descriptor" traceback of uvicorn's at its shutdown), the port free again
    assert not [t for t in threading.enumerate() if t.name == "bicyclegan serve"]
    assert "Traceback" not in capsys.readouterr().err
    bind("127.0.0.1", answers[0]).close()


def test_serve_in_a_script_event_loop_has_its_interrupt_handler_in_before_the_server_answers(ckpt, demo_root,
                                                                                               monkeypatch):
    # The wait took Python's SIGINT handler after starting the server's thread: a server quick to answer, and a
    # Ctrl+C at once, found asyncio.run's handler still in (it only cancels the task): the server went on. The
    # thread is made to run first here, as a loaded machine's scheduler may.
    import asyncio

    import uvicorn
    seen, ran = [], threading.Event()

    def run(self, sockets=None):  # what a Ctrl+C would find, the moment the server could answer
        seen.append(signal.getsignal(signal.SIGINT))
        ran.set()

    class ThreadRunFirst(threading.Thread):
        def start(self):
            super().start()
            if self.name == "bicyclegan serve":
                ran.wait(30)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setattr(serve_mod.threading, "Thread", ThreadRunFirst)

    async def cell():
        serve_mod.serve(ckpt, demo_root, port=0, device="cpu", num=1)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (so that asyncio.run puts in its own)
    try:
        asyncio.run(cell())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.default_int_handler]


def test_a_server_thread_that_cannot_start_is_raised_at_once_not_waited_for(monkeypatch):
    # A thread that cannot start (RuntimeError: can't start new thread, at a process's thread limit) raises in the
    # wait's try: stopping the server and waiting for its end there waited forever, as it never ran.
    real = threading.Thread

    class NoStart(real):
        def start(self):
            if self.name == "bicyclegan serve":
                raise RuntimeError("can't start new thread")
            super().start()

    class Server:
        def run(self, sockets=None):
            pass

        def handle_exit(self, sig, frame):
            pass
    got = []

    def call():  # (in a thread of its own: a wait for ever ends the test, not the suite)
        try:
            serve_mod._run_beside(Server(), None)
        except RuntimeError as e:
            got.append(str(e))
    caller = real(target=call, daemon=True)
    monkeypatch.setattr(serve_mod.threading, "Thread", NoStart)
    caller.start()
    caller.join(10)
    assert got == ["can't start new thread"] and not caller.is_alive()


def test_a_server_that_fails_to_start_frees_its_port(ckpt, demo_root, monkeypatch):
    import uvicorn
    socks = []
    real_bind = serve_mod.bind
    monkeypatch.setattr(serve_mod, "bind", lambda host, port: socks.append(real_bind(host, port)) or socks[-1])

    def fail(self, sockets=None):
        raise OSError("no more file descriptors")
    monkeypatch.setattr(uvicorn.Server, "run", fail)
    with pytest.raises(OSError, match="no more file descriptors"):
        serve_mod.serve(ckpt, demo_root, port=0, device="cpu", num=1)
    assert socks[0].fileno() == -1  # closed
