"""Loss terms of the BicycleGAN objective and its variants, as the reference defines them: its
GANLoss (lsgan | vanilla, one term per discriminator scale, summed), L1Loss (a mean) and KL (a sum),
plus MSGAN's mode-seeking term. Known answers for each are in tests/test_losses.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Losses are reduced in at least float32, whatever the autocast dtype of their inputs."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def gan_loss(preds: list[torch.Tensor], real: bool, mode: str) -> torch.Tensor:
    """Summed over discriminator scales. lsgan: MSE to 1/0; vanilla: BCE with logits."""
    total = 0.0
    for p in preds:
        p = _wide(p)
        target = torch.ones_like(p) if real else torch.zeros_like(p)
        if mode == "lsgan":
            total = total + F.mse_loss(p, target)
        else:
            total = total + F.binary_cross_entropy_with_logits(p, target)
    return total


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-0.5 * SUM over batch and nz of (1 + logvar - mu^2 - exp(logvar)): a sum, as the reference."""
    mu, logvar = _wide(mu), _wide(logvar)
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean |a - b| over every element (nn.L1Loss)."""
    return (_wide(a) - _wide(b)).abs().mean()


def mode_seeking(fake1, fake2, z1, z2, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term: 1 / (mean|G(A,z1) - G(A,z2)| / mean|z1 - z2| + eps); small when outputs differ."""
    ratio = l1(fake1, fake2) / l1(z1, z2)
    return 1.0 / (ratio + eps)
