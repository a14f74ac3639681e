"""LPIPS (Zhang et al. 2018), the perceptual distance the BicycleGAN paper measures diversity with,
in plain torch: the same numbers as the lpips package's `LPIPS(net="alex", version=...)`, without
torchvision (which does not import beside the CPU build of torch).

d(x0, x1) = sum over AlexNet's five ReLU outputs l of the spatial mean of w_l . (f0 - f1)^2, where
f are the features divided by their L2 norm over channels and w_l the learned, non-negative
per-channel weights (the package's 1x1 "lin" convolutions).

Versions: 0.0 is the one the paper's numbers were computed with (the authors' README: "we used
version 0.0 rather than default 0.1"); it feeds the [-1, 1] images to AlexNet as they are, while
0.1 first shifts and scales them as AlexNet was trained, and its weights were refit, which makes
distances about 2.4x larger. The diversity protocol itself (which samples are compared) lives in
evaluate.py; `sample_pairs` names the pairs.

Weights are never part of this repository:
- AlexNet's convolutions: torchvision's file alexnet-owt-7be5be79.pth, found where torch.hub keeps
  downloads (torch.hub.get_dir()/checkpoints/, as torchvision itself saves it) or at a given path.
  `AlexNetFeatures` has torchvision's `alexnet().features` layout, so that file loads as it is.
- The linear layers: weights/v<version>/alex.pth inside the installed lpips package (located, not
  imported: it imports torchvision), or a given path.
"""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WeightsError
from .weights import full_precision, read_weights, take, weights_file, weights_path

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
VERSIONS = ("0.0", "0.1")
PAIRS = ("consecutive", "all")
CHANNELS = (64, 192, 384, 256, 256)  # AlexNet's five tapped ReLU outputs
_TAPS = (1, 4, 7, 9, 11)             # their indices in `features`
# Version 0.1's input scaling (ImageNet's mean and std, expressed for [-1, 1] images).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10                         # the package's guard in the channel normalisation


class AlexNetFeatures(nn.Module):
    """AlexNet's convolutional part (torchvision's `features`, same indices); forward returns the
    outputs of its five ReLUs."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, 2),  # not used by LPIPS; kept so the indices match the weights file
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features[: _TAPS[-1] + 1]):
            x = layer(x)
            if i in _TAPS:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    """LPIPS with AlexNet. Images are N x 3 x H x W in [-1, 1] (as the package's forward with
    normalize=False); any size AlexNet accepts (at least 32 px). Holds no gradient."""

    def __init__(self, version: str = "0.0"):
        super().__init__()
        if version not in VERSIONS:
            raise ValueError(f"LPIPS version must be one of {VERSIONS}, got {version!r}")
        self.version = version
        self.net = AlexNetFeatures()
        self.lins = nn.ParameterList(nn.Parameter(torch.zeros(1, c, 1, 1)) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(_SCALE)[None, :, None, None])
        self.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's features, divided by their L2 norm over channels; computed once per image,
        they serve every pair the image is in."""
        if self.version == "0.1":
            x = (x - self.shift) / self.scale
        with full_precision(x):
            feats = self.net(x)
        return [f / (f.square().sum(1, keepdim=True).sqrt() + _EPS) for f in feats]

    def distance(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """Per-image distances (N) between two lists of `features` (broadcasting over N)."""
        return sum(F.conv2d((a - b).square(), w).mean((2, 3)) for a, b, w in zip(f0, f1, self.lins))[:, 0]

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(x0), self.features(x1))


def sample_pairs(n: int, mode: str = "consecutive") -> list[tuple[int, int]]:
    """The pairs of an input's n samples that diversity averages over: consecutive ones, (0, 1),
    (1, 2), ... (n-1 pairs; the paper's protocol), or all n(n-1)/2 of them."""
    if mode == "consecutive":
        return [(i, i + 1) for i in range(n - 1)]
    if mode == "all":
        return list(itertools.combinations(range(n), 2))
    raise ValueError(f"LPIPS pairs must be one of {PAIRS}, got {mode!r}")


def _package_linear(version: str) -> Path | None:
    spec = importlib.util.find_spec("lpips")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / f"v{version}" / "alex.pth"


def lpips_files(version: str = "0.0", backbone=None, linear=None) -> tuple[Path, Path | None]:
    """The AlexNet and linear-layer files load_lpips reads for these options, unchecked (None: no lpips package)."""
    return weights_path(backbone, ALEXNET_FILE), Path(linear) if linear is not None else _package_linear(version)


def checked_alexnet(backbone=None) -> Path:
    """The AlexNet file load_lpips reads, there, else a WeightsError saying where to get it."""
    return weights_file(backbone, ALEXNET_FILE, ALEXNET_URL, "lpips_backbone", "LPIPS needs AlexNet's weights")


def checked_linear(version: str = "0.0", linear=None) -> Path:
    """The linear-layer file load_lpips reads, there, else a WeightsError saying where to get it."""
    lin = lpips_files(version, linear=linear)[1]
    if lin is None or not lin.is_file():
        # --no-deps: the package's own requirement (torchvision, whose newest pins the newest torch) replaced the
        # environment's torch (2.13 CPU -> 2.14 CUDA, 3.7 GB) for two weights files it only holds
        raise WeightsError(
            f"LPIPS v{version} needs its linear-layer weights: "
            + (f"{lin} does not exist; " if lin is not None else "")
            + f"`pip install --no-deps lpips` (they ship inside it as lpips/weights/v{version}/alex.pth) "
            "or give the file with --lpips_linear PATH (Python: lpips_linear=)")
    return lin


def load_lpips(version: str = "0.0", *, backbone=None, linear=None, device="cpu") -> LPIPS:
    """LPIPS (AlexNet) with its weights: `backbone` (torchvision's AlexNet file; default
    torch.hub's checkpoints folder) and `linear` (the lpips package's weights/v<version>/alex.pth;
    default: from the installed package). A missing or wrong file is a WeightsError saying which
    file to put where."""
    with torch.random.fork_rng(devices=[]):  # initial weights, replaced below: the caller's generator untouched
        model = LPIPS(version)
    bb, lin = checked_alexnet(backbone), checked_linear(version, linear)
    want = {f"features.{k}": v.shape for k, v in model.net.features.state_dict().items()}
    feats = take(read_weights(bb, "AlexNet weights"), want, bb, "AlexNet weights")
    model.net.features.load_state_dict({k[len("features."):]: v for k, v in feats.items()})
    want = {f"lin{i}.model.1.weight": w.shape for i, w in enumerate(model.lins)}
    lins = take(read_weights(lin, "LPIPS linear weights"), want, lin, "LPIPS linear weights")
    for w, k in zip(model.lins, want):
        w.copy_(lins[k])
    return model.to(device)
