"""Our LPIPS and FID against the canonical implementations on the same image files: the lpips
package (LPIPS) and pytorch-fid (FID).

Both need torchvision, which does not import beside the CPU build of torch this project's CI uses:
these tests skip there and run in an environment such as
    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch torchvision lpips pytorch-fid pytest
    /tmp/tvenv/bin/pip install -e . --no-deps && /tmp/tvenv/bin/python -m pytest tests/test_metrics_reference.py
Pretrained backbones cannot be downloaded everywhere, so each test writes random weights in the
canonical files' layout (torchvision's alexnet() and pytorch-fid's Inception3) into a private
torch.hub folder, where both implementations load them from. LPIPS uses the package's real
linear-layer weights (they ship inside it).
"""
import importlib

import numpy as np
import pytest
import torch
from PIL import Image


def _require(name):
    try:
        return importlib.import_module(name)
    except Exception as e:  # torchvision beside a torch it was not built for raises more than ImportError
        pytest.skip(f"{name} does not import here ({type(e).__name__}); see the module docstring",
                    allow_module_level=True)


torchvision = _require("torchvision")
lpips = _require("lpips")
fid_score = _require("pytorch_fid.fid_score")
pytorch_fid_inception = _require("pytorch_fid.inception")

from bicyclegan.engine import BicycleGAN, make_config  # noqa: E402
from bicyclegan.engine.evaluate import evaluate  # noqa: E402
from bicyclegan.engine.images import to_uint8  # noqa: E402
from bicyclegan.engine.metrics import fid as fidmod  # noqa: E402
from bicyclegan.engine.metrics import lpips as lpmod  # noqa: E402
from bicyclegan.engine.runtime import build_loader  # noqa: E402
from bicyclegan.pipelines import make_demo_dataset  # noqa: E402

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    d = tmp_path / "torch" / "hub" / "checkpoints"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def alexnet_in_hub(hub):
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), hub / lpmod.ALEXNET_FILE)


@pytest.fixture
def inception_in_hub(hub):
    """torchvision's Inception3 as pytorch-fid builds it (1008 classes, no aux head), random weights
    scaled so activations stay of order 1."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, (2 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
                m.running_mean.normal_(0, 0.1)
                m.bias.normal_(0, 0.1)
    torch.save(net.state_dict(), hub / fidmod.INCEPTION_FILE)


def save_png(x, path):
    """One [-1, 1] image (C x H x W) as an 8-bit PNG, as `bicyclegan sample` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(x[None])[0]).save(path)
    return path


def package_image(path):
    """The lpips package's reading of a PNG: lpips.load_image (cv2, BGR -> RGB) then im2tensor; PIL
    gives the same RGB bytes without needing OpenCV."""
    return lpips.im2tensor(np.asarray(Image.open(path).convert("RGB")))


def our_image(path):
    """evaluate()'s reading of 8-bit pixels: u / 127.5 - 1."""
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.mark.parametrize("version", ["0.0", "0.1"])
def test_lpips_equals_the_lpips_package(tmp_path, alexnet_in_hub, version):
    ref = lpips.LPIPS(net="alex", version=version, verbose=False)
    ours = lpmod.load_lpips(version)  # the same hub file, and the linear layers from the installed package
    rng = np.random.default_rng(1)
    files = []
    for i in range(6):  # smooth images (upsampled noise) at 64 and 256 px
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        size = 64 if i < 4 else 256
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(files[-1])
    for a, b in [(0, 1), (2, 3), (1, 2), (4, 5)]:
        x0, x1 = package_image(files[a]), package_image(files[b])
        want = ref(x0, x1).item()
        got = ours(*(our_image(files[k]) for k in (a, b))).item()
        assert abs(got - want) < 1e-5, (version, a, b, got, want)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=4, n_test=0, n_val=6, size=32)


def protocol_outputs(model, root, n_inputs, n_samples, seed):
    """The inputs' B images and the outputs evaluate() measures, made as its docstring says: the
    first inputs of the split in name order, z[i] of one n_inputs x n_samples x nz draw."""
    cfg = model.cfg
    batch = next(iter(build_loader(cfg.model, cfg.data, root, "val", device="cpu", batch_size=64,
                                   shuffle=False, augment=False)))
    A, B = batch["A"][:n_inputs], batch["B"][:n_inputs]
    z = torch.randn(n_inputs, n_samples, cfg.model.nz, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = [model.sampler(A[i:i + 1].expand(n_samples, -1, -1, -1), z[i]) for i in range(n_inputs)]
    return B, out


def test_diversity_equals_the_authors_procedure_on_saved_samples(tmp_path, demo_root, alexnet_in_hub):
    # The authors' README: save each input's samples, run the lpips package (version 0.0) over
    # consecutive pairs of each input's files, average all the distances.
    torch.manual_seed(3)
    model = BicycleGAN(make_config("reference", dataroot=str(demo_root), **TINY), device="cpu", training=False)
    r = evaluate(model, n_samples=5, num=4, seed=11, device="cpu", metrics="lpips")
    _, outs = protocol_outputs(model, demo_root, 4, 5, 11)
    ref = lpips.LPIPS(net="alex", version="0.0", verbose=False)
    dists = []
    for i, samples in enumerate(outs):
        files = [save_png(s, tmp_path / f"input{i}" / f"{j:02d}.png") for j, s in enumerate(samples)]
        with torch.no_grad():
            dists += [ref(package_image(a), package_image(b)).item() for a, b in zip(files, files[1:])]
    assert r["lpips"]["n_pairs"] == len(dists) == 16
    assert abs(r["diversity_lpips"] - np.mean(dists)) < 1e-5


def test_inception_features_equal_pytorch_fids(inception_in_hub):
    ref = pytorch_fid_inception.InceptionV3([3]).eval()
    ours = fidmod.load_inception()
    x = torch.randint(0, 256, (3, 3, 64, 48), dtype=torch.uint8)
    with torch.no_grad():
        want = ref(x.float() / 255)[0].flatten(1)
    got = fidmod.inception_features(ours, x)
    assert want.abs().mean() > 0.01
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.slow
def test_fid_equals_pytorch_fid_on_saved_images(tmp_path, demo_root, inception_in_hub):
    torch.manual_seed(3)
    model = BicycleGAN(make_config("reference", dataroot=str(demo_root), **TINY), device="cpu", training=False)
    r = evaluate(model, n_samples=3, num=6, seed=2, device="cpu", metrics="fid")
    B, outs = protocol_outputs(model, demo_root, 6, 3, 2)
    for i, samples in enumerate(outs):
        for j, s in enumerate(samples):
            save_png(s, tmp_path / "fake" / f"{i}_{j}.png")
    for i, b in enumerate(B):
        save_png(b, tmp_path / "real" / f"{i}.png")
    want = fid_score.calculate_fid_given_paths([str(tmp_path / "fake"), str(tmp_path / "real")], batch_size=50,
                                               device="cpu", dims=2048, num_workers=0)
    assert r["fid_images"] == {"generated": 18, "real": 6}
    assert r["fid"] == pytest.approx(want, rel=1e-5)
