"""FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to InceptionV3 pool
features of two image sets, as pytorch-fid computes it, in plain torch (no torchvision).

`InceptionV3` is the FID variant of the network (TensorFlow's 2015-12-05 graph: average pools that
leave the padding out of the mean, a max pool in the last block), laid out as torchvision's
Inception3 so that pytorch-fid's weights file pt_inception-2015-12-05-6726825d.pth loads as it is.
Images are resized to 299 x 299 (bilinear) and the 2048 features of the final average pool are
used. Weights come from torch.hub's checkpoints folder (where pytorch-fid saves its download) or a
given path; never from this repository.

`frechet_distance` takes tr(sqrt(S1 S2)) from the eigenvalues of the symmetric S1^1/2 S2 S1^1/2
(the same trace; pytorch-fid calls scipy's sqrtm on the non-symmetric product); `fid_from_features`
needs no 2048 x 2048 matrix at all when a set has fewer images than features (see there).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .weights import full_precision, read_weights, take, weights_file, weights_path

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
DIMS = 2048
_SIZE = 299


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg(x):  # TensorFlow's average pool: padded zeros are not counted
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x),
                          self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d7 = conv(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b7 = x
        for conv in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """The last two blocks; the very last one (max_pool=True) pools with a max instead of a mean."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3),
                          self.branch_pool(pool)], 1)


class InceptionV3(nn.Module):
    """FID's InceptionV3 up to the final average pool: images -> N x 2048 features."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W in [0, 1] (pixel / 255, as pytorch-fid reads files)."""
        x = F.interpolate(x, size=(_SIZE, _SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean((2, 3))


def inception_file(path=None) -> Path:
    """The weights file load_inception reads for `path` (None: torch.hub's cache), unchecked."""
    return weights_path(path, INCEPTION_FILE)


def checked_inception_file(path=None) -> Path:
    """inception_file, there, else a WeightsError saying where to get it."""
    return weights_file(path, INCEPTION_FILE, INCEPTION_URL, "fid_weights", "FID needs InceptionV3's weights")


def load_inception(path=None, *, device="cpu") -> InceptionV3:
    """FID's InceptionV3 with pytorch-fid's weights file: `path`, or torch.hub's checkpoints folder.
    The file's classifier (fc.*) is not used; every other tensor must be there with its shape."""
    with torch.random.fork_rng(devices=[]):  # initial weights, replaced below: the caller's generator untouched
        model = InceptionV3()
    p = checked_inception_file(path)
    # BatchNorm's batch counters are not in files saved before torch 0.4.1; load_state_dict fills them.
    want = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    model.load_state_dict(take(read_weights(p, "InceptionV3 weights"), want, p, "InceptionV3 weights"))
    return model.to(device)


@torch.no_grad()
def inception_features(net: InceptionV3, images: torch.Tensor, chunk: int = 50) -> torch.Tensor:
    """N x 2048 float32 features (on the CPU) of uint8 images N x C x H x W (C = 1 or 3), in chunks
    of `chunk` images so that 299 px activations fit."""
    dev = next(net.parameters()).device
    out = []
    for part in images.split(chunk):
        x = part.to(dev).float() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        with full_precision(x):
            out.append(net(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, DIMS)


CHUNK = 4096  # feature vectors taken to float64 at a time


def gaussian(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, as numpy.cov) of N x D features, in float64, computed CHUNK
    vectors at a time: the features whole in float64, and numpy.cov's centred copy of them, took the
    peak to 4 times the float32 features' bytes and more (100,000 generated images: 0.8 GB of them)."""
    f = np.asarray(features)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors (N x D), got shape {f.shape}")
    parts = range(0, len(f), CHUNK)
    mean = sum(f[i:i + CHUNK].sum(0, dtype=np.float64) for i in parts) / len(f)
    cov = np.zeros((f.shape[1], f.shape[1]))
    for i in parts:
        x = f[i:i + CHUNK].astype(np.float64) - mean
        cov += x.T @ x
    return mean, cov / (len(f) - 1)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)) for covariance matrices S1, S2."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(f"FID: means {mu1.shape}, {mu2.shape} and covariances {s1.shape}, {s2.shape} differ")
    r = _sqrt_psd(s1)
    # S1^1/2 S2 S1^1/2 is similar to S1 S2, so the eigenvalues (and their square roots' sum) agree.
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_features(features_a, features_b) -> float:
    """FID between two sets of Inception features (N_a x D, N_b x D), with unbiased covariances.

    With fewer vectors than dimensions in either set (2,000 generated vs 100 real images of 2048
    features, as in the paper's protocol) the covariances are never formed: with X the centred
    features, S = X^T X / (n - 1), the non-zero eigenvalues of S_a S_b are the squared singular values
    of M = X_a X_b^T / sqrt((n_a - 1)(n_b - 1)), so tr(sqrt(S_a S_b)) is M's nuclear norm (an
    N_a x N_b SVD instead of 2048 x 2048 eigendecompositions; the same value)."""
    a, b = np.asarray(features_a), np.asarray(features_b)  # (float64 a chunk at a time in gaussian)
    for f in (a, b):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"FID needs at least 2 feature vectors (N x D), got shape {f.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"FID: features of {a.shape[1]} and {b.shape[1]} dimensions")
    if min(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*gaussian(a), *gaussian(b))
    a, b = a.astype(np.float64), b.astype(np.float64)
    xa, xb = a - a.mean(0), b - b.mean(0)
    na, nb = len(a) - 1, len(b) - 1
    tr_covmean = np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (xa * xa).sum() / na + (xb * xb).sum() / nb - 2 * tr_covmean)
