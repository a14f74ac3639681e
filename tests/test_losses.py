"""Known answers for each loss term of the objective, worked out by hand on small tensors.

Every expected value below is written as the arithmetic that gives it (from the reference's
GANLoss, L1Loss and KL formulas, or MSGAN's mode-seeking term), never computed by the code
under test.
"""
import math

import pytest
import torch

from bicyclegan.engine.losses import gan_loss, kl_loss, l1, mode_seeking


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# GAN loss: lsgan = mean squared distance to the label 1 (real) / 0 (fake); vanilla = BCE with
# logits, averaged; one term per discriminator scale, summed
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preds,real,expected", [
    ([t([0.5])], True, 0.25),                        # (0.5 - 1)^2
    ([t([0.5])], False, 0.25),                       # (0.5 - 0)^2
    ([t([0.0, 3.0])], True, (1 + 4) / 2),            # ((0-1)^2 + (3-1)^2) / 2: a mean, target 1.0
    ([t([0.0, 3.0])], False, (0 + 9) / 2),
    ([t([0.5]), t([0.0, 2.0])], True, 0.25 + (1 + 1) / 2),   # scales summed, each its own mean
    ([t([-1.0, 0.0]), t([2.0])], False, (1 + 0) / 2 + 4),
])
def test_lsgan_known_answers(preds, real, expected):
    assert gan_loss(preds, real, "lsgan").item() == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("preds,real,expected", [
    ([t([0.0])], True, math.log(2)),                 # -log sigmoid(0)
    ([t([0.0])], False, math.log(2)),                # -log (1 - sigmoid(0))
    ([t([math.log(3)])], True, math.log(4 / 3)),     # sigmoid(ln 3) = 3/4
    ([t([math.log(3)])], False, math.log(4)),        # 1 - 3/4 = 1/4
    ([t([0.0, math.log(3)])], True, (math.log(2) + math.log(4 / 3)) / 2),
    ([t([0.0]), t([math.log(3)])], False, math.log(2) + math.log(4)),
])
def test_vanilla_known_answers(preds, real, expected):
    assert gan_loss(preds, real, "vanilla").item() == pytest.approx(expected, abs=1e-15)


def test_gan_loss_is_a_mean_over_every_element_of_a_patch_map():
    # N x 1 x H x W patch maps, as D returns them: 2 x 1 x 2 x 2 of 0.5 -> still 0.25, not 8 * 0.25
    p = torch.full((2, 1, 2, 2), 0.5, dtype=torch.float64)
    assert gan_loss([p], True, "lsgan").item() == pytest.approx(0.25, abs=1e-15)
    q = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    q[1, 0, 1, 1] = 2.0                              # one patch at 2: (7 * 1 + 1) / 8 for real
    assert gan_loss([q], True, "lsgan").item() == pytest.approx(1.0, abs=1e-15)
    assert gan_loss([q], False, "lsgan").item() == pytest.approx(4 / 8, abs=1e-15)


@pytest.mark.parametrize("mode,real,p,grad", [
    ("lsgan", True, 0.5, 2 * (0.5 - 1)),             # d/dp (p - 1)^2
    ("lsgan", False, 0.5, 2 * 0.5),
    ("vanilla", True, 0.0, 0.5 - 1),                 # d/dp -log sigmoid(p) = sigmoid(p) - 1
    ("vanilla", False, math.log(3), 0.75),           # d/dp -log(1 - sigmoid(p)) = sigmoid(p)
])
def test_gan_loss_gradients(mode, real, p, grad):
    x = t([p]).requires_grad_()
    gan_loss([x], real, mode).backward()
    assert x.grad.item() == pytest.approx(grad, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# KL(N(mu, exp(logvar)) || N(0, I)) = -0.5 * SUM over batch and nz of (1 + logvar - mu^2 - exp(logvar))
# ---------------------------------------------------------------------------------------------
def test_kl_of_the_prior_is_zero():
    assert kl_loss(torch.zeros(3, 8), torch.zeros(3, 8)).item() == 0.0


def test_kl_known_answer_is_a_sum_with_factor_minus_half():
    mu, logvar = t([1.0, 0.0]), t([0.0, math.log(2)])
    # element 1: 1 + 0 - 1 - 1 = -1; element 2: 1 + ln 2 - 0 - 2 = ln 2 - 1
    one = -0.5 * (-1 + math.log(2) - 1)
    assert kl_loss(mu, logvar).item() == pytest.approx(one, abs=1e-15)
    # a second sample with mu = 2, logvar = 0: 1 + 0 - 4 - 1 = -4, adds 2: summed over the batch
    mu2, logvar2 = t([1.0, 0.0], [2.0, 0.0]), t([0.0, math.log(2)], [0.0, 0.0])
    assert kl_loss(mu2, logvar2).item() == pytest.approx(one + 2.0, abs=1e-15)


def test_kl_gradients():
    mu, logvar = t([1.0, -3.0]).requires_grad_(), t([0.0, math.log(2)]).requires_grad_()
    kl_loss(mu, logvar).backward()
    torch.testing.assert_close(mu.grad, t([1.0, -3.0]))                 # d/dmu = mu
    torch.testing.assert_close(logvar.grad, t([0.0, 0.5]))               # d/dlogvar = (exp(logvar) - 1) / 2


# ---------------------------------------------------------------------------------------------
# L1 (the reference's nn.L1Loss: a mean) and MSGAN's mode-seeking term
# ---------------------------------------------------------------------------------------------
def test_l1_is_a_mean_of_absolute_differences():
    assert l1(t([1.0, 2.0], [3.0, 4.0]), torch.zeros(2, 2, dtype=torch.float64)).item() == 2.5
    assert l1(t([-1.0, 3.0]), t([1.0, 0.0])).item() == 2.5       # (|-2| + |3|) / 2
    a = t([-1.0, 3.0]).requires_grad_()
    l1(a, t([1.0, 0.0])).backward()
    torch.testing.assert_close(a.grad, t([-0.5, 0.5]))


def test_mode_seeking_known_answers():
    f1, f2 = torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    z1, z2 = torch.zeros(1, 4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
    # mean|f1 - f2| / mean|z1 - z2| = 0.5 / 1 -> 1 / (0.5 + 1e-5)
    assert mode_seeking(f1, f2, z1, z2).item() == pytest.approx(1 / (0.5 + 1e-5), abs=1e-12)
    # twice the z distance halves the ratio: 1 / (0.25 + 1e-5)
    assert mode_seeking(f1, f2, z1, 2 * z2).item() == pytest.approx(1 / (0.25 + 1e-5), abs=1e-12)
    # identical outputs: the ratio is 0 and only eps keeps the term finite
    assert mode_seeking(f1, f1, z1, z2).item() == pytest.approx(1e5, rel=1e-12)
    assert mode_seeking(f1, f1, z1, z2, eps=0.5).item() == pytest.approx(2.0, abs=1e-12)


def test_mode_seeking_gradient_pushes_outputs_apart():
    f1 = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    f2 = t([0.5, 0.5]).view(1, 1, 1, 2).requires_grad_()
    z1, z2 = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    mode_seeking(f1, f2, z1, z2).backward()
    # L = 1 / (r + eps), r = mean|f2 - f1| = mean(f2) here; dL/df2_i = -1 / (r + eps)^2 / 2
    torch.testing.assert_close(f2.grad, torch.full_like(f2, -0.5 / (0.5 + 1e-5) ** 2))


# ---------------------------------------------------------------------------------------------
# Half-precision inputs (autocast) are reduced in float32; float32/float64 keep their dtype
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,want", [(torch.bfloat16, torch.float32), (torch.float16, torch.float32),
                                        (torch.float32, torch.float32), (torch.float64, torch.float64)])
def test_losses_reduce_in_at_least_float32(dtype, want):
    p = torch.full((1, 1, 2, 2), 0.5, dtype=dtype)
    assert gan_loss([p], True, "lsgan").dtype == want
    assert gan_loss([p], True, "vanilla").dtype == want
    assert kl_loss(p.view(1, 4), p.view(1, 4)).dtype == want
    assert l1(p, p).dtype == want
    if dtype in (torch.bfloat16, torch.float16):
        # mean(1, 1 + eps) = 1 + eps/2 rounds to 1 in the input's precision, is exact in float32
        eps = torch.finfo(dtype).eps
        x = torch.tensor([1.0, 1.0 + eps], dtype=dtype)
        assert l1(x, torch.zeros_like(x)).item() == 1 + eps / 2
