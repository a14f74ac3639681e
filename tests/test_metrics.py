"""LPIPS, FID and the paper's evaluation protocol, on small random-weight networks (no pretrained
weights, no torchvision): each checked against an independent computation or a known answer.
The comparison with the lpips package and pytorch-fid themselves is tests/test_metrics_reference.py."""
import gc
import importlib
import itertools
import json
import re
import shutil
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bicyclegan.engine import BicycleGAN, ConfigError, make_config
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.errors import WeightsError
from bicyclegan.engine.evaluate import draw_codes, evaluate, format_table
from bicyclegan.engine.metrics import fid as fidmod
from bicyclegan.engine.metrics import lpips as lpmod
from bicyclegan.pipelines import DatasetError, make_demo_dataset

# torchvision's alexnet().features: (index, out, in, kernel) of each conv; the rest are ReLU/MaxPool.
ALEX_CONVS = [(0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3)]
# The lpips package's version-0.1 input scaling, [-1, 1] images.
SHIFT, SCALE = [-0.030, -0.088, -0.188], [0.458, 0.448, 0.450]


def random_alexnet_file(path, seed=0):
    """A torchvision-format AlexNet weights file (features.* and classifier.*), random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, o, c, k in ALEX_CONVS:
        sd[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * (2 / (c * k * k)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(o, generator=g) * 0.1
    sd["classifier.1.weight"] = torch.randn(10, 9216, generator=g)  # ignored by LPIPS
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return sd


def random_linear_file(path, seed=1):
    g = torch.Generator().manual_seed(seed)
    sd = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(lpmod.CHANNELS)}
    torch.save(sd, path)
    return sd


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch.hub folder of our own: the default weights locations point into it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def lpips_files(tmp_path, hub):
    alex = random_alexnet_file(hub / lpmod.ALEXNET_FILE)
    lin = random_linear_file(tmp_path / "lin.pth")
    return alex, lin, tmp_path / "lin.pth"


def lpips_by_definition(x0, x1, alex, lin, version):
    """Zhang et al.'s LPIPS written out: AlexNet's five ReLU outputs, unit-normalised over channels,
    squared differences weighted per channel, averaged over space, summed over layers."""
    def taps(x):
        if version == "0.1":
            x = (x - torch.tensor(SHIFT)[None, :, None, None]) / torch.tensor(SCALE)[None, :, None, None]
        w = lambda i: (alex[f"features.{i}.weight"], alex[f"features.{i}.bias"])  # noqa: E731
        h1 = F.relu(F.conv2d(x, *w(0), stride=4, padding=2))
        h2 = F.relu(F.conv2d(F.max_pool2d(h1, 3, 2), *w(3), padding=2))
        h3 = F.relu(F.conv2d(F.max_pool2d(h2, 3, 2), *w(6), padding=1))
        h4 = F.relu(F.conv2d(h3, *w(8), padding=1))
        h5 = F.relu(F.conv2d(h4, *w(10), padding=1))
        return [h1, h2, h3, h4, h5]
    total = 0
    for k, (a, b) in enumerate(zip(taps(x0), taps(x1))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = lin[f"lin{k}.model.1.weight"].reshape(1, -1, 1, 1)
        total = total + ((a - b) ** 2 * w).sum(1).mean((1, 2))
    return total


# -- LPIPS -----------------------------------------------------------------------------------------
def test_alexnet_has_torchvisions_layout():
    sd = lpmod.AlexNetFeatures().state_dict()
    want = {}
    for i, o, c, k in ALEX_CONVS:
        want[f"features.{i}.weight"], want[f"features.{i}.bias"] = (o, c, k, k), (o,)
    assert {k: tuple(v.shape) for k, v in sd.items()} == want


@pytest.mark.parametrize("version", ["0.0", "0.1"])
def test_lpips_equals_its_definition(lpips_files, version):
    alex, lin, lin_path = lpips_files
    m = lpmod.load_lpips(version, linear=lin_path)
    x0, x1 = torch.rand(3, 3, 64, 48) * 2 - 1, torch.rand(3, 3, 64, 48) * 2 - 1
    torch.testing.assert_close(m(x0, x1), lpips_by_definition(x0, x1, alex, lin, version), rtol=1e-5, atol=1e-7)
    assert torch.equal(m(x0, x0), torch.zeros(3))
    torch.testing.assert_close(m(x0, x1), m(x1, x0))
    # distances from features computed once equal the pairwise forward (what the protocol uses)
    f = m.features(torch.cat([x0, x1]))
    torch.testing.assert_close(m.distance([t[:3] for t in f], [t[3:] for t in f]), m(x0, x1))


def test_lpips_versions_differ_only_by_input_scaling(lpips_files):
    _, _, lin_path = lpips_files
    x0, x1 = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    v0, v1 = lpmod.load_lpips("0.0", linear=lin_path), lpmod.load_lpips("0.1", linear=lin_path)
    s = lambda x: (x - torch.tensor(SHIFT)[None, :, None, None]) / torch.tensor(SCALE)[None, :, None, None]  # noqa
    torch.testing.assert_close(v1(x0, x1), v0(s(x0), s(x1)))


def test_lpips_weights_come_from_the_hub_cache_or_a_path(tmp_path, hub, monkeypatch):
    with pytest.raises(WeightsError) as e:
        lpmod.load_lpips()
    msg = str(e.value)
    assert lpmod.ALEXNET_FILE in msg and str(hub) in msg and lpmod.ALEXNET_URL in msg and "\n" not in msg
    with pytest.raises(WeightsError, match=f"{tmp_path} is a folder, not a weights file; give the file"):
        lpmod.load_lpips(backbone=tmp_path)
    with pytest.raises(WeightsError, match="/dev/null is not a regular file .*; give the file"):  # ("does not exist")
        lpmod.load_lpips(backbone="/dev/null")
    random_alexnet_file(hub / lpmod.ALEXNET_FILE)
    monkeypatch.setattr(lpmod, "_package_linear", lambda version: None)  # as without the lpips package
    with pytest.raises(WeightsError, match=r"pip install --no-deps lpips.*weights/v0\.0/alex\.pth.*lpips_linear"):
        lpmod.load_lpips()
    lin = random_linear_file(tmp_path / "lin.pth")
    m = lpmod.load_lpips(linear=tmp_path / "lin.pth")
    assert torch.equal(m.lins[2], lin["lin2.model.1.weight"])
    bad = tmp_path / "bad.pth"
    torch.save({**lin, "lin3.model.1.weight": torch.ones(1, 3, 1, 1)}, bad)
    with pytest.raises(WeightsError, match=r"lin3\.model\.1\.weight has shape \(1, 3, 1, 1\), expected"):
        lpmod.load_lpips(linear=bad)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="junk.pth is not a torch file, so no AlexNet weights"):
        lpmod.load_lpips(backbone=tmp_path / "junk.pth", linear=tmp_path / "lin.pth")


def test_lpips_finds_the_linear_layers_inside_the_lpips_package(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "lpips"
    (pkg / "weights" / "v0.1").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert lpmod._package_linear("0.1") == pkg / "weights" / "v0.1" / "alex.pth"


def test_lpips_reads_the_linear_layers_of_its_own_version_from_the_package(tmp_path, hub, monkeypatch):
    # v0.0 (the paper's) and v0.1 ship different weights in the package: each version takes its own
    pkg = tmp_path / "site" / "lpips"
    (pkg / "__init__.py").parent.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    lins = {}
    for seed, version in enumerate(lpmod.VERSIONS):
        (pkg / "weights" / f"v{version}").mkdir(parents=True)
        lins[version] = random_linear_file(pkg / "weights" / f"v{version}" / "alex.pth", seed=10 + seed)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    random_alexnet_file(hub / lpmod.ALEXNET_FILE)
    for version in lpmod.VERSIONS:
        m = lpmod.load_lpips(version)
        for i, w in enumerate(m.lins):
            assert torch.equal(w, lins[version][f"lin{i}.model.1.weight"]), (version, i)


def test_sample_pairs():
    assert lpmod.sample_pairs(20) == [(i, i + 1) for i in range(19)]  # the paper: 19 per input
    assert lpmod.sample_pairs(20, "all") == list(itertools.combinations(range(20), 2))
    assert len(lpmod.sample_pairs(20, "all")) == 190 and lpmod.sample_pairs(1) == []
    with pytest.raises(ValueError, match="consecutive"):
        lpmod.sample_pairs(3, "random")


# -- FID -------------------------------------------------------------------------------------------
def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    # diagonal covariances: a sum over dimensions of (m1 - m2)^2 + (s1 - s2)^2 in standard deviations
    m1, m2, v1, v2 = rng.normal(size=5), rng.normal(size=5), rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    want = ((m1 - m2) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert fidmod.frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(want, rel=1e-10)
    # 2 x 2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M = S1 S2 (non-negative eigenvalues)
    a, b = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    s1, s2 = a @ a.T + 0.1 * np.eye(2), b @ b.T + 0.1 * np.eye(2)
    M = s1 @ s2
    want = np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.trace(M) + 2 * np.sqrt(np.linalg.det(M)))
    assert fidmod.frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(want, rel=1e-10)
    # full rank, 6-D: against the eigenvalues of the non-symmetric product
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T, b @ b.T
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    want = 6.0 + np.trace(s1) + np.trace(s2) - 2 * tr  # ||1 - 0||^2 = 6
    assert fidmod.frechet_distance(np.ones(6), s1, np.zeros(6), s2) == pytest.approx(want, rel=1e-9)
    assert abs(fidmod.frechet_distance(np.ones(6), s1, np.ones(6), s1)) < 1e-9 * np.trace(s1)
    with pytest.raises(ValueError, match="differ"):
        fidmod.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_fid_of_features_uses_the_unbiased_covariance():
    a = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    b = np.array([[1.0, 0.0], [1.0, 2.0]])
    mu_a, cov_a = a.mean(0), np.array([[4.0, 3.0], [3.0, 3.0]])  # sums of products / (n - 1), by hand
    mu_b, cov_b = b.mean(0), np.array([[0.0, 0.0], [0.0, 2.0]])
    assert fidmod.fid_from_features(a, b) == pytest.approx(fidmod.frechet_distance(mu_a, cov_a, mu_b, cov_b), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        fidmod.fid_from_features(a[:1], b)


@pytest.mark.parametrize("n_a, n_b", [(5, 40), (40, 3), (40, 50)])
def test_fid_from_few_features_equals_the_covariance_formula(n_a, n_b):
    # fewer vectors than dimensions in a set: the N_a x N_b singular-value route; else covariances
    rng = np.random.default_rng(n_a)
    a, b = rng.normal(size=(n_a, 16)) + 0.5, rng.normal(size=(n_b, 16)) * 1.5
    want = fidmod.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    # (the covariance route takes square roots of a singular S_a's ~1e-16 eigenvalues: ~1e-8 of noise)
    assert fidmod.fid_from_features(a, b) == pytest.approx(want, rel=1e-7)


def test_fid_of_rank_deficient_features_against_an_independent_computation():
    """Sets of fewer vectors than dimensions (covariances of rank <= n - 1), here also in a 5-dimensional subspace:
    against float64 covariances and the eigenvalues of the non-symmetric S_a S_b (pytorch-fid's quantity, written
    here), and a set against itself is 0 to rounding (the covariance route takes square roots of ~1e-16
    eigenvalues: ~1e-6 of tr S of noise on 2048 dimensions)."""
    rng = np.random.default_rng(3)
    low = rng.normal(size=(30, 5)) @ rng.normal(size=(5, 64))
    other = rng.normal(size=(20, 64)) * 0.7 + 0.2
    sa, sb = np.cov(low, rowvar=False), np.cov(other, rowvar=False)
    tr = np.sqrt(np.linalg.eigvals(sa @ sb).real.clip(0)).sum()
    d = low.mean(0) - other.mean(0)
    assert fidmod.fid_from_features(low, other) == pytest.approx(d @ d + np.trace(sa) + np.trace(sb) - 2 * tr, rel=1e-6)
    assert abs(fidmod.fid_from_features(low, low)) < 1e-10 * np.trace(sa)


def test_fid_statistics_never_hold_the_features_whole_in_float64():
    # The features converted whole to float64, and numpy.cov's centred copy of them, took FID's peak to 4.5 times
    # the float32 features' bytes (20,000 generated images: 697 MB for 156 MB); a chunk at a time, 224 MB at any count.
    rng = np.random.default_rng(0)
    a = (rng.random((41_000, 64)) * 3 + 1).astype(np.float32)  # (10 MB: ten of gaussian's chunks and a part)
    b = rng.random((300, 64)).astype(np.float32)  # (more vectors than dimensions in both: the covariance route)
    tracemalloc.start()
    try:
        mean, cov = fidmod.gaussian(a)
        fid = fidmod.fid_from_features(a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < a.nbytes  # a whole float64 copy alone is twice that
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert np.allclose(mean, a64.mean(0), rtol=1e-13, atol=0)
    assert np.allclose(cov, np.cov(a64, rowvar=False), rtol=1e-11, atol=1e-14)
    want = fidmod.frechet_distance(a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False))
    assert fid == pytest.approx(want, rel=1e-9)


def inception_file(path, seed=0, drop_counters=True):
    """pytorch-fid's file layout (torchvision Inception3 with a 1008-way fc) with random weights
    scaled so activations stay of order 1; like the real file, no BatchNorm batch counters."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in fidmod.InceptionV3().state_dict().items():
        if k.endswith("num_batches_tracked") and drop_counters:
            continue
        if k.endswith("conv.weight"):
            v = torch.randn(v.shape, generator=g) * (2 / v[0].numel()) ** 0.5
        elif k.endswith("running_var"):
            v = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith(("running_mean", "bn.bias")):
            v = torch.randn(v.shape, generator=g) * 0.1
        sd[k] = v
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)


def test_inception_matches_the_canonical_file_and_loads_from_the_hub_cache(hub, tmp_path):
    sd = fidmod.InceptionV3().state_dict()
    # pytorch-fid's network (torchvision's Inception3 layout) holds 566 tensors and 23,885,392
    # values, of which fc is 2 tensors (1008 x 2048 + 1008) and 94 BatchNorm counters.
    assert len(sd) == 566 - 2
    assert sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked")) == 23885392 - 2065392
    with pytest.raises(WeightsError) as e:
        fidmod.load_inception()
    assert fidmod.INCEPTION_FILE in str(e.value) and str(hub) in str(e.value) and "fid_weights" in str(e.value)
    inception_file(hub / fidmod.INCEPTION_FILE)
    net = fidmod.load_inception()
    f = fidmod.inception_features(net, torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8))
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and 0.01 < f.abs().mean() < 100


def bilinear_half_pixel(x, size):
    """Bilinear resize written out (align_corners=False: pixel centres at i + 0.5, edges clamped),
    the resize pytorch-fid applies before InceptionV3; numpy, one axis at a time."""
    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        i0 = np.floor(src).astype(int)
        i1, t = np.minimum(i0 + 1, n_in - 1), src - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1 - t)
        np.add.at(m, (np.arange(n_out), i1), t)
        return m
    h, w = x.shape[-2:]
    return np.einsum("ih,nchw,jw->ncij", axis(h, size), x, axis(w, size))


def test_inception_resizes_bilinearly_to_299_in_minus_1_1_and_averages_the_last_block(tmp_path):
    # pytorch-fid: F.interpolate(x, (299, 299), bilinear, align_corners=False), then 2 x - 1; the
    # features are the global average pool of Mixed_7c (whose pool branch is a max: FIDInceptionE_2)
    inception_file(tmp_path / "w.pth")  # weights that keep activations of order 1
    net = fidmod.load_inception(tmp_path / "w.pth")
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool
    seen = {}
    net.Conv2d_1a_3x3.register_forward_pre_hook(lambda m, a: seen.update(first=a[0]))
    net.Mixed_7c.register_forward_hook(lambda m, a, out: seen.update(last=out))
    x = torch.rand(1, 3, 20, 31, generator=torch.Generator().manual_seed(0))
    f = net(x)
    want = 2 * bilinear_half_pixel(x.double().numpy(), 299) - 1
    np.testing.assert_allclose(seen["first"].double().numpy(), want, rtol=0, atol=1e-5)
    assert seen["last"].shape == (1, 2048, 8, 8)
    assert seen["last"].std((2, 3)).mean() > 0.01  # not constant over space: a max would differ
    torch.testing.assert_close(f, seen["last"].sum((2, 3)) / 64)


class TinyFeatures(torch.nn.Module):
    """A small stand-in for InceptionV3 (same interface: [0, 1] images -> N x D), so that the
    protocol tests need not push images through 24M parameters at 299 px on a CPU."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x):
        return torch.cat([x.mean((2, 3)), F.relu(self.conv(x)).mean((2, 3))], 1)


def test_inception_features_chunks_and_grayscale():
    net = TinyFeatures()
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    f = fidmod.inception_features(net, x, chunk=2)
    torch.testing.assert_close(f, net(x.float() / 255))
    torch.testing.assert_close(fidmod.inception_features(net, x[:2, :1]),
                               net(x[:2, :1].expand(-1, 3, -1, -1).float() / 255))


def test_inception_pools_as_tensorflow():
    # Average pools leave the padding out: a constant image stays constant at the borders.
    x = torch.full((1, 2, 5, 5), 3.0)
    assert torch.equal(fidmod._avg(x), x)
    class Drop(torch.nn.Module):
        def forward(self, t):
            return t[:, :0]

    block = fidmod.InceptionE(4, max_pool=True)
    block.branch_pool = torch.nn.Identity()  # expose the pooled input itself
    for name in ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b"):
        setattr(block, name, Drop())
    y = torch.randn(1, 4, 6, 6)
    assert torch.equal(block(y), F.max_pool2d(y, 3, 1, 1))


# -- the protocol (evaluate) -----------------------------------------------------------------------
TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=4, n_test=3, n_val=5, size=32)


@pytest.fixture
def tiny_model(demo_root):
    torch.manual_seed(3)
    return BicycleGAN(make_config("reference", dataroot=str(demo_root), **TINY), device="cpu", training=False)


def quantised(x):
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def load_split(root, phase):
    from bicyclegan.engine.runtime import build_loader
    cfg = make_config("reference", dataroot=str(root), **TINY)
    batches = list(build_loader(cfg.model, cfg.data, root, phase, device="cpu", batch_size=64, shuffle=False,
                                augment=False))
    return batches[0]["A"], batches[0]["B"]


def test_lpips_diversity_follows_the_papers_protocol(tiny_model, demo_root, lpips_files):
    _, _, lin_path = lpips_files
    kw = dict(n_samples=4, num=3, seed=7, device="cpu", metrics="lpips,l1", lpips_linear=lin_path)
    r = evaluate(tiny_model, **kw, batch_size=2)
    assert r["phase"] == "val" and r["n_inputs"] == 3 and r["lpips"]["n_pairs"] == 3 * 3
    assert r["lpips"] == {**r["lpips"], "net": "alex", "version": "0.0", "pairs": "consecutive"}
    # independently: the first 3 validation inputs, z[i] of one 3 x 4 x nz draw, 8-bit outputs,
    # LPIPS between samples (0, 1), (1, 2), (2, 3) of each input
    A, _ = load_split(demo_root, "val")
    z = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(7))
    m = lpmod.load_lpips(linear=lin_path)
    G = tiny_model.sampler.eval()
    with torch.no_grad():
        outs = [[quantised(G(A[i:i + 1], z[i, j:j + 1])) for j in range(4)] for i in range(3)]
        d = [m(outs[i][j], outs[i][j + 1]) for i in range(3) for j in range(3)]
    assert r["diversity_lpips"] == pytest.approx(torch.cat(d).mean().item(), rel=1e-5)
    # the spread the table prints beside it: the standard deviation of the 9 distances as the LPIPS authors'
    # lpips_1dir_allpairs.py takes it (np.std: over n, not n - 1)
    assert r["lpips"]["std"] == pytest.approx(np.std(torch.cat(d).double().numpy(), ddof=0), rel=1e-5)
    # and the paper's "±": the mean's standard error, std / sqrt(pairs)
    assert r["lpips"]["stderr"] == pytest.approx(np.std(torch.cat(d).double().numpy(), ddof=0) / 3, rel=1e-5)
    assert f"{r['diversity_lpips']:.4f} ± {r['lpips']['stderr']:.4f}  (alex v0.0, 9 consecutive pairs, ± the " \
           f"standard error of the mean; a pair's std {r['lpips']['std']:.4f})" in format_table(r)
    # diversity_l1: the mean absolute difference of consecutive raw outputs (one value per pair),
    # averaged over the 3 x 3 pairs
    with torch.no_grad():
        raw = [[G(A[i:i + 1], z[i, j:j + 1]) for j in range(4)] for i in range(3)]
    l1 = [(raw[i][j + 1] - raw[i][j]).abs().mean().item() for i in range(3) for j in range(3)]
    assert r["diversity_l1"] == pytest.approx(sum(l1) / 9, rel=1e-5)
    # the batch size changes nothing: every input keeps its codes
    other = evaluate(tiny_model, **kw, batch_size=3)
    assert other["diversity_lpips"] == r["diversity_lpips"] and other["lpips"] == r["lpips"]
    assert other["diversity_l1"] == pytest.approx(r["diversity_l1"], rel=1e-6)  # summed per batch
    all_pairs = evaluate(tiny_model, **{**kw, "lpips_pairs": "all"})
    assert all_pairs["lpips"]["n_pairs"] == 3 * 6
    assert evaluate(tiny_model, **{**kw, "seed": 8})["diversity_lpips"] != r["diversity_lpips"]


@pytest.mark.parametrize("n_samples, nz", [(3, 8), (1, 8), (20, 8), (5, 3), (2, 0)])
def test_an_inputs_codes_do_not_depend_on_how_many_inputs_are_evaluated(n_samples, nz):
    # torch's CPU randn redraws the last 16 values of a draw whose length is no multiple of 16: one
    # n_inputs x n_samples x nz draw gave the 5th input other codes at --num 5 than at --num 6 (n_samples 3).
    few, more = draw_codes(5, n_samples, nz, 3), draw_codes(6, n_samples, nz, 3)
    assert few.shape == (5, n_samples, nz) and torch.equal(few, more[:5])
    if n_samples * nz % 16 == 0:  # the paper's 20 x 8: the plain draw's codes, as before
        want = torch.randn(6, n_samples, nz, generator=torch.Generator().manual_seed(3))
        assert torch.equal(more, want)
    assert len({tuple(z.flatten().tolist()) for z in more}) == (6 if nz else 1)  # inputs' codes differ


def test_fid_compares_generated_images_with_the_real_b_images(tiny_model, demo_root, monkeypatch):
    net = TinyFeatures()
    ev = importlib.import_module("bicyclegan.engine.evaluate")  # the module, not the function of that name
    monkeypatch.setattr(ev, "load_inception", lambda path=None, device="cpu": net)
    r = evaluate(tiny_model, n_samples=2, num=3, seed=1, device="cpu", metrics="fid", phase="test")
    assert r["fid_images"] == {"generated": 6, "real": 3} and r["metrics"] == ["fid"]
    # independently: all 2 x 3 outputs against the 3 real B images of the same inputs, both 8-bit
    A, B = load_split(demo_root, "test")
    z = torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fake = torch.cat([tiny_model.sampler(A[i:i + 1].expand(2, -1, -1, -1), z[i]) for i in range(3)])
        feats = [net(((x.clamp(-1, 1) + 1) * 127.5).round() / 255).double().numpy() for x in (fake, B)]
    mu = [f.mean(0) for f in feats]
    cov = [(f - m).T @ (f - m) / (len(f) - 1) for f, m in zip(feats, mu)]
    assert r["fid"] == pytest.approx(fidmod.frechet_distance(mu[0], cov[0], mu[1], cov[1]), rel=1e-5)


def test_evaluate_holds_the_fid_features_once_while_fid_is_computed(tiny_model, monkeypatch):
    # The per-batch features stayed listed beside their concatenation, and one rank's concatenation was copied
    # again: three copies of 8 KB a generated image (100,000 of them: 2.4 GB) while FID's statistics were made.
    ev = importlib.import_module("bicyclegan.engine.evaluate")
    monkeypatch.setattr(ev, "load_inception", lambda path=None, device="cpu": TinyFeatures())
    copies = []

    def fid(fake, real):
        given = {fake.__array_interface__["data"][0], real.__array_interface__["data"][0]}
        gc.collect()
        copies.extend(o.shape for o in gc.get_objects() if type(o) is torch.Tensor and o.dim() == 2
                      and o.shape[1] == fake.shape[1] and o.data_ptr() not in given)
        return fidmod.fid_from_features(fake, real)
    monkeypatch.setattr(ev, "fid_from_features", fid)
    r = evaluate(tiny_model, n_samples=2, num=3, seed=1, device="cpu", metrics="fid", phase="test", batch_size=2)
    assert r["fid_images"] == {"generated": 6, "real": 3} and copies == []


def test_fid_on_a_split_of_one_input_is_refused_by_name_before_any_work(tiny_model, demo_root, tmp_path, monkeypatch):
    # num >= 2 was checked, not the inputs the split gives: one image failed on FID's ValueError about feature
    # shapes, a traceback, after every output had been generated
    one = tmp_path / "one"
    (one / "val").mkdir(parents=True)
    shutil.copy(sorted((demo_root / "val").glob("*.png"))[0], one / "val")
    loads = []
    monkeypatch.setattr(importlib.import_module("bicyclegan.engine.evaluate"), "load_inception",
                        lambda path=None, device="cpu": loads.append(1) or TinyFeatures())
    said = (f"{one / 'val'} gives 1 input to evaluate: FID compares two sets of images, so metrics fid needs 2 inputs "
            "or more; use l1 or lpips")
    with pytest.raises(DatasetError, match=f"^{re.escape(said)}$"):
        evaluate(tiny_model, one, metrics="fid", num=5, n_samples=2, device="cpu")
    assert not loads  # refused before the metric networks load, let alone any output


def test_evaluate_options_are_checked_before_any_work(tiny_model, tmp_path, hub):
    with pytest.raises(ConfigError, match="metrics='lpips,ssim'"):
        evaluate(tiny_model, metrics="lpips,ssim", device="cpu")
    with pytest.raises(ConfigError, match="palettes.json"):
        evaluate(tiny_model, metrics="palette", phase="val", device="cpu", dataroot=_no_palettes(tmp_path))
    with pytest.raises(ConfigError, match="lpips_version"):
        evaluate(tiny_model, metrics="lpips", lpips_version="0.2", device="cpu")
    with pytest.raises(ConfigError, match="num must be >= 2"):
        evaluate(tiny_model, metrics="fid", num=1, device="cpu")
    with pytest.raises(WeightsError, match=fidmod.INCEPTION_FILE):
        evaluate(tiny_model, metrics="fid", device="cpu")
    default = evaluate(tiny_model, n_samples=2, num=2, device="cpu", phase="test")
    assert default["metrics"] == ["l1", "palette"] and "coverage" in default and "diversity_lpips" not in default


def test_every_missing_weights_file_is_named_in_one_error(tiny_model, hub, monkeypatch):
    # Each metric's loader said its first missing file: a machine without them (an offline cluster) took a try per
    # file to learn the three. One missing: its own message, as before.
    monkeypatch.setattr(lpmod, "_package_linear", lambda version: None)  # as without the lpips package
    with pytest.raises(WeightsError) as e:
        evaluate(tiny_model, metrics="lpips,fid,l1", num=2, device="cpu", phase="val")
    said = str(e.value)
    assert said.startswith("3 weights files are missing: LPIPS needs AlexNet's weights") and "\n" not in said
    assert all(s in said for s in (lpmod.ALEXNET_URL, "pip install --no-deps lpips", fidmod.INCEPTION_URL)), said
    random_alexnet_file(hub / lpmod.ALEXNET_FILE)
    with pytest.raises(WeightsError, match="^FID needs InceptionV3's weights: "):
        evaluate(tiny_model, metrics="fid,l1", num=2, device="cpu", phase="val")


def _no_palettes(tmp_path):
    root = make_demo_dataset(tmp_path / "plain", n_train=0, n_test=0, n_val=2, size=32)
    (root / "val" / "palettes.json").unlink()
    return root


def test_evaluate_command_writes_eval_json_and_prints_a_table(tiny_model, tmp_path, lpips_files, capsys):
    _, _, lin_path = lpips_files
    ckpt = save_checkpoint(tiny_model, tmp_path / "run" / "checkpoints" / "latest.pt")
    args = ["evaluate", str(ckpt), "--metrics", "lpips,l1", "--num", "2", "--n_samples", "3", "--device", "cpu",
            "--lpips_linear", str(lin_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "diversity (LPIPS between samples)" in out and "4 consecutive pairs" in out
    r = json.loads((tmp_path / "run" / "results" / "val" / "eval.json").read_text())
    assert r["lpips"]["n_pairs"] == 4 and r["phase"] == "val"
    assert main(args + ["--lpips_backbone", str(tmp_path / "none.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bicyclegan evaluate: WeightsError:") and "none.pth" in err and "\n" not in err


@pytest.mark.gpu
def test_metric_networks_run_without_tf32_on_cuda():
    from bicyclegan.engine.metrics.weights import full_precision
    before = torch.backends.cudnn.allow_tf32
    with full_precision(torch.zeros(1, device="cuda")):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before


def test_the_table_gives_each_palettes_share_of_the_valid_outputs():
    r = {"variant": "bicycle", "n_inputs": 2, "n_samples": 3, "phase": "test", "n_palettes": 4,
         "coverage": 0.5, "validity": 0.8, "histogram": [3, 1, 0, 4]}
    assert "palette histogram  3 1 0 4  (38 / 12 / 0 / 50 %)" in format_table(r)
    assert "0 0 0 0  (no valid outputs)" in format_table({**r, "histogram": [0, 0, 0, 0]})
    assert "(2.00 of 4 palettes per input)" in format_table(r)
    # demo data of one palette (make_demo_dataset's n_palettes=1) said "of 1 palettes"
    assert "palette coverage   1.000  (1.00 of 1 palette per input)" in format_table(
        {**r, "n_palettes": 1, "coverage": 1.0, "histogram": [8]})


def test_the_table_says_when_fid_comes_from_fewer_images_than_its_features():
    r = {"variant": "bicycle", "n_inputs": 2, "n_samples": 3, "phase": "test", "fid": 123.456}
    few = format_table({**r, "fid_images": {"generated": 6, "real": 2}})
    assert "123.46  (6 vs 2 images; under 2048: biased upward" in few
    assert format_table({**r, "fid_images": {"generated": 6000, "real": 2048}}).endswith("(6000 vs 2048 images)")


def test_palette_metrics_use_the_datasets_number_of_palettes(tiny_model, tmp_path):
    # a demo set of K = 2 palettes: coverage out of 2, a histogram of 2 (not the default K = 4)
    root = make_demo_dataset(tmp_path / "k2", n_train=0, n_test=0, n_val=2, size=32, n_palettes=2)
    r = evaluate(tiny_model, root, n_samples=2, num=2, device="cpu", metrics="palette")
    assert r["n_palettes"] == 2 and len(r["histogram"]) == 2


@pytest.mark.parametrize("damage", ["unreadable", "not json", "no count"])
def test_a_palettes_file_that_cannot_be_read_is_one_line_naming_it(tiny_model, tmp_path, monkeypatch, damage):
    # a PermissionError (or a JSONDecodeError) was a traceback, and under torchrun a rank gone without a word
    root = make_demo_dataset(tmp_path / "d", n_train=0, n_test=0, n_val=2, size=32)
    f = root / "val" / "palettes.json"
    if damage == "unreadable":
        real = Path.read_text
        monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied")) if self == f else real(self, *a, **k))
    else:
        f.write_text("{" if damage == "not json" else '{"palettes": []}')
    with pytest.raises(DatasetError, match=f"cannot read the demo data's palettes {re.escape(str(f))} "
                                           f"\\((Permission denied|.*|no n_palettes in it)\\): make-demo"):
        evaluate(tiny_model, root, n_samples=2, num=2, device="cpu", metrics="palette")
    assert "coverage" not in evaluate(tiny_model, root, n_samples=2, num=2, device="cpu", metrics="l1")  # (not read)


def test_palettes_of_a_split_of_several_image_sizes_are_refused_by_name_before_any_work(tiny_model, tmp_path):
    # preprocess none keeps each file's size: the outputs of 32 and 64 px inputs, classified as one batch, were
    # a RuntimeError about tensor sizes after every input had been generated; l1 measures such a split
    root = make_demo_dataset(tmp_path / "mixed", n_train=0, n_test=0, n_val=2, size=32)
    big = make_demo_dataset(tmp_path / "big", n_train=0, n_test=0, n_val=1, size=64)
    (big / "val" / "00000.png").rename(root / "val" / "00002.png")
    info = json.loads((root / "val" / "palettes.json").read_text())
    info["files"]["00002.png"] = json.loads((big / "val" / "palettes.json").read_text())["files"]["00000.png"]
    (root / "val" / "palettes.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match=r"^metrics palette \(a default on the demo data\) classifies the outputs of "
                                          rf"a split of one image size; {root / 'val'} has several \(32x32, 64x64, "
                                          r"W x H, with preprocess=none\): use metrics l1, lpips or fid$"):
        evaluate(tiny_model, root, n_samples=2, num=3, device="cpu")
    assert evaluate(tiny_model, root, n_samples=2, num=3, device="cpu", metrics="l1")["n_inputs"] == 3


def test_encoded_palette_match_is_the_share_of_inputs_whose_encoded_output_keeps_bs_palette(tiny_model,
                                                                                            monkeypatch):
    ev = importlib.import_module("bicyclegan.engine.evaluate")
    answers = iter([torch.tensor([0, 1, 2]), torch.tensor([0, 1, -1])])  # B's palettes, then the encoded outputs'
    # (the outputs' palettes, classified with their inputs' a_index, are not the figure's)
    monkeypatch.setattr(ev, "classify_palettes", lambda A, B, n_palettes, a_index=None: (
        torch.zeros(len(B), dtype=torch.long) if a_index is not None else next(answers), None))
    r = evaluate(tiny_model, n_samples=2, num=3, device="cpu", metrics="palette", phase="test")
    assert r["encoded_palette_match"] == pytest.approx(2 / 3)


def test_the_table_says_why_an_encoded_line_is_blank_the_models_lack_or_the_splits(demo_root, tmp_path):
    """Without an encoder E, or on inputs without B images, evaluate's table left the encoded lines out with no
    word of why (compare's and the sweep's tables say why a '-' is there); the result records which."""
    torch.manual_seed(3)
    p2p = BicycleGAN(make_config("reference", dataroot=str(demo_root), variant="pix2pix", **TINY), device="cpu",
                     training=False)
    assert p2p.E is None
    r = evaluate(p2p, demo_root, num=2, n_samples=2, device="cpu")  # l1 and palette, the demo's default
    assert r["encoded_missing"] == "no encoder E" and "encoded_l1" not in r
    lines = dict(line.split("  -  ", 1) for line in format_table(r).splitlines() if "  -  " in line)
    assert {k.strip() for k in lines} == {"encoded keeps B's palette", "encoded reconstruction L1"}
    assert all(v.startswith("(no encoder E (pix2pix+noise") for v in lines.values())
    # the same split as inputs alone (A/ without B/): a model with E has no encoded output either
    a, _ = load_split(demo_root, "val")
    plain = tmp_path / "inputs"
    plain.mkdir()
    for i, img in enumerate(quantised(a[:2])):
        Image.fromarray(((img + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()).save(plain / f"{i}.png")
    torch.manual_seed(3)
    bicycle = BicycleGAN(make_config("reference", dataroot=str(demo_root), **TINY), device="cpu", training=False)
    r = evaluate(bicycle, plain, num=2, n_samples=2, device="cpu", metrics="l1")
    assert r["encoded_missing"] == "no B images" and "encoded_l1" not in r
    line = next(x for x in format_table(r).splitlines() if x.startswith("encoded reconstruction L1"))
    assert line.split("  -  ", 1)[1].startswith("(no B images in the split")
    # an eval.json written before the field: the line says either reason, as it cannot tell
    old = {k: v for k, v in r.items() if k != "encoded_missing"}
    line = next(x for x in format_table(old).splitlines() if x.startswith("encoded reconstruction L1"))
    assert "no encoder E" in line and "no B images" in line
    # a model with E on B images: its figure, no reason
    r = evaluate(bicycle, demo_root, num=2, n_samples=2, device="cpu", metrics="l1")
    assert "encoded_missing" not in r and re.search(rf"^encoded reconstruction L1 +{r['encoded_l1']:.4f}$",
                                                    format_table(r), re.M)


def test_no_encoded_output_is_recorded_only_where_an_encoded_measure_was_asked(demo_root, lpips_files):
    """The encoded outputs count for l1 (encoded L1) and palette (B's palette kept) alone: an evaluation of LPIPS
    diversity alone says nothing of them (eval.json, and the report's table of it), though pix2pix has no E."""
    torch.manual_seed(3)
    p2p = BicycleGAN(make_config("reference", dataroot=str(demo_root), variant="pix2pix", **TINY), device="cpu",
                     training=False)
    r = evaluate(p2p, demo_root, num=2, n_samples=2, device="cpu", metrics="lpips", lpips_linear=lpips_files[2])
    assert "diversity_lpips" in r and "encoded_missing" not in r and "encoded" not in format_table(r)


def test_loading_the_metric_networks_leaves_the_callers_generator_as_it_was(lpips_files, hub):
    """Their initial weights, which the files' replace, come from a fork of torch's generator: the caller's
    next draws after load_lpips or load_inception (evaluate's lpips and fid) are those it would have had."""
    inception_file(hub / fidmod.INCEPTION_FILE)
    torch.manual_seed(7)
    expected = torch.rand(4)
    for load in (lambda: lpmod.load_lpips(linear=lpips_files[2]), fidmod.load_inception):
        torch.manual_seed(7)
        load()
        assert torch.equal(torch.rand(4), expected)


def test_a_closed_stderr_or_stdout_changes_nothing_of_the_work(tiny_model, tmp_path, monkeypatch):
    # `evaluate ... 2>&-`: Python leaves sys.stderr None, and the inputs' count line's write was an AttributeError:
    # exit 1, not a word, no eval.json (sample and train alike).
    ckpt = save_checkpoint(tiny_model, tmp_path / "run" / "checkpoints" / "latest.pt")
    for closed in ("stderr", "stdout"):
        monkeypatch.setattr(sys, closed, None)
        out = tmp_path / f"{closed}.json"
        assert main(["evaluate", str(ckpt), "--metrics", "l1", "--num", "2", "--n_samples", "2", "--device", "cpu",
                     "--json", str(out)]) == 0
        assert json.loads(out.read_text())["n_inputs"] == 2
        monkeypatch.undo()


def test_evaluate_writes_its_results_before_it_prints_them(tiny_model, tmp_path, monkeypatch):
    # `evaluate ... | true`: the table's print met the reader gone, and the command ended (141) before eval.json.
    ckpt = save_checkpoint(tiny_model, tmp_path / "run" / "checkpoints" / "latest.pt")

    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass
    monkeypatch.setattr(sys, "stdout", Gone())
    out = tmp_path / "e.json"
    assert main(["evaluate", str(ckpt), "--metrics", "l1", "--num", "2", "--n_samples", "2", "--device", "cpu",
                 "--json", str(out)]) == 141
    assert json.loads(out.read_text())["n_inputs"] == 2


def test_an_unwritable_results_folder_is_said_as_the_results_with_json_to_go_elsewhere(tiny_model, tmp_path,
                                                                                     monkeypatch, capsys):
    # A read-only run evaluated without --json: "cannot write --json into <run>/results", an option not given.
    ckpt = save_checkpoint(tiny_model, tmp_path / "run" / "checkpoints" / "latest.pt")
    io_module = importlib.import_module("bicyclegan.engine.io")

    def read_only(*a, dir=None, **k):  # (root writes anywhere: the probe's refusal stands in for it)
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(io_module.tempfile, "TemporaryFile", read_only)
    assert main(["evaluate", str(ckpt), "--metrics", "l1", "--num", "2", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (f"bicyclegan evaluate: OutputError: cannot write the evaluation's results "
                                       f"(--json: elsewhere) into {tmp_path / 'run' / 'results'}: Permission denied; "
                                       f"choose another folder\n")
