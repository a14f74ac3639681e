"""The average pooling op (kernels/avg_pool.py, avg_pool_triton.py) against hand-computed answers
and torch's F.avg_pool2d: values and gradients, every geometry the kernels take, both memory
formats, strided inputs and gradients, the samples split over grid launches, a gradient penalty
through it, and its use in the multi-scale discriminator."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bicyclegan.kernels import AvgPool2d, _triton_common, avg_pool2d, avg_pool_triton
from bicyclegan.kernels._impl import interpreting

CL = torch.channels_last
needs_kernels = pytest.mark.skipif(not (interpreting() or torch.cuda.is_available()),
                                   reason="runs the kernels in Triton's interpreter or on a GPU")

# The reference's downsampling of a 4 x 4 plane holding 1..16 (3 x 3 windows, stride 2, padding 1):
# the windows cover rows/cols {0,1}, {1,2,3} -> sizes 4, 6, 6, 9 when the padding is not counted.
PLANE = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
MEANS = torch.tensor([[[[(1 + 2 + 5 + 6) / 4, (2 + 3 + 4 + 6 + 7 + 8) / 6],
                        [(5 + 6 + 9 + 10 + 13 + 14) / 6, (6 + 7 + 8 + 10 + 11 + 12 + 14 + 15 + 16) / 9]]]])
# d(sum of outputs) / dx: each element gets 1 / size of every window holding it.
_q, _s, _n = 1 / 4, 1 / 6, 1 / 9
ONES_GRAD = torch.tensor([[_q, _q + _s, _s, _s],
                          [_q + _s, _q + _s + _s + _n, _s + _n, _s + _n],
                          [_s, _s + _n, _n, _n],
                          [_s, _s + _n, _n, _n]]).reshape(1, 1, 4, 4)


@needs_kernels
@pytest.mark.parametrize("count_include_pad, expected", [(False, MEANS), (True, MEANS * torch.tensor(
    [[4.0, 6.0], [6.0, 9.0]]) / 9)])
def test_known_answer(count_include_pad, expected):
    x = PLANE.clone().requires_grad_()
    y = avg_pool2d(x, 3, 2, 1, count_include_pad=count_include_pad, impl="triton")
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, ONES_GRAD if not count_include_pad else torch.tensor(
        [[1, 2, 1, 1], [2, 4, 2, 2], [1, 2, 1, 1], [1, 2, 1, 1]], dtype=torch.float32).reshape(1, 1, 4, 4) / 9,
        rtol=1e-6, atol=0)


# (kernel, stride, padding, count_include_pad, divisor_override)
GEOMETRIES = [
    (3, 2, 1, False, None),            # the discriminators' downsampling
    (3, 2, 1, True, None),
    (2, 2, 0, True, None),             # non-overlapping
    (3, 1, 1, False, None),            # stride 1: every element in up to 9 windows
    ((4, 3), (3, 1), (2, 1), False, None),
    ((1, 5), (2, 3), (0, 2), True, None),
    (3, 3, 0, True, 7),                # divisor_override
    ((2, 4), 1, (1, 2), False, 5),
]


def _pair_run(x, geometry, dtype, fmt, impl="triton"):
    k, s, p, cip, div = geometry
    x = x.to(dtype).contiguous(memory_format=fmt)
    ours, ref = x.clone().requires_grad_(), x.float().requires_grad_()
    y = avg_pool2d(ours, k, s, p, count_include_pad=cip, divisor_override=div, impl=impl)
    y_ref = F.avg_pool2d(ref, k, s, p, False, cip, div)
    g = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(3)).to(x.device)
    y.backward(g.to(dtype))
    y_ref.backward(g.to(dtype).float())
    return y, y_ref, ours.grad, ref.grad


@needs_kernels
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_matches_torch(geometry, fmt, dtype, monkeypatch):
    # 16-element programs: several per sample, the last one masked
    monkeypatch.setattr(avg_pool_triton, "BLOCK", 16)
    monkeypatch.setattr(_triton_common, "POISON", True)  # an element the kernels skip shows up as NaN
    x = torch.randn(2, 3, 9, 10, generator=torch.Generator().manual_seed(1))
    y, y_ref, dx, dx_ref = _pair_run(x, geometry, dtype, fmt)
    # fp32 sums either way; a 16-bit result is the fp32 one rounded (1 ulp: 2^-8 relative for bf16)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=2 ** -7, atol=1e-6)
    torch.testing.assert_close(y.float(), y_ref, **tol)
    torch.testing.assert_close(dx.float(), dx_ref, **tol)
    assert y.dtype == dx.dtype == dtype
    # the memory format of torch's results (x's, where x has more than one channel)
    assert y.is_contiguous(memory_format=fmt) and dx.is_contiguous(memory_format=fmt)


@needs_kernels
def test_strided_input_and_gradient():
    """A channel slice of a wider tensor in, an expanded (zero-stride) gradient back: read where they lie."""
    base = torch.randn(2, 5, 8, 7)
    x = base[:, 1:4].requires_grad_()  # (not contiguous)
    ref = x.detach().clone().requires_grad_()
    y = avg_pool2d(x, 3, 2, 1, count_include_pad=False, impl="triton")
    y_ref = F.avg_pool2d(ref, 3, 2, 1, count_include_pad=False)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn(1, 3, 1, 1).expand(y.shape)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, ref.grad)


@needs_kernels
def test_samples_split_over_launches(monkeypatch):
    """More samples than grid axis 1 takes (65535 on a GPU): launched in groups, none left out."""
    monkeypatch.setattr(avg_pool_triton, "MAX_GRID_N", 2)
    monkeypatch.setattr(_triton_common, "POISON", True)
    y, y_ref, dx, dx_ref = _pair_run(torch.randn(5, 2, 6, 6), GEOMETRIES[0], torch.float32, torch.contiguous_format)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(dx, dx_ref)


@needs_kernels
def test_unbatched_empty_and_ceil_mode():
    x = torch.randn(3, 7, 6)
    torch.testing.assert_close(avg_pool2d(x, 3, 2, 1, impl="triton"), F.avg_pool2d(x, 3, 2, 1))
    empty = torch.randn(0, 3, 8, 8)
    assert avg_pool2d(empty, 3, 2, 1, impl="triton").shape == (0, 3, 4, 4)
    # ceil_mode: torch's own pooling under auto (the kernels take floor mode); impl='triton' says it cannot (it ran
    # torch's without a word, where a float64 x was refused)
    x = torch.randn(1, 2, 7, 7)
    torch.testing.assert_close(avg_pool2d(x, 2, 2, 0, True), F.avg_pool2d(x, 2, 2, 0, True))
    with pytest.raises(ValueError, match=r"^avg_pool2d: impl='triton' pools in floor mode only, got ceil_mode=True"):
        avg_pool2d(x, 2, 2, 0, True, impl="triton")
    with pytest.raises(ValueError, match="ceil_mode=True"):
        AvgPool2d(2, ceil_mode=True, impl="triton")(x)


@needs_kernels
def test_gradient_penalty_through_it():
    """R1 on a discriminator that pools its input first: the penalty's gradients w.r.t. the conv's
    weight (second order, through the pooling's backward) match torch's."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x0 = torch.randn(2, 3, 8, 8)
    grads = {}
    for impl in ("triton", "ref"):
        conv.zero_grad()
        x = x0.clone().requires_grad_()
        d = conv(avg_pool2d(x, 3, 2, 1, count_include_pad=False, impl=impl)).pow(2).sum()
        (gx,) = torch.autograd.grad(d, x, create_graph=True)
        gx.pow(2).sum().backward()
        grads[impl] = (gx.detach(), conv.weight.grad.clone(), conv.bias.grad.clone())
    for ours, ref in zip(grads["triton"], grads["ref"]):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert grads["ref"][1].abs().sum() > 0  # (the second-order term is there to be missed)


def test_arguments_are_checked():
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(ValueError, match="padding .* at most half of kernel_size"):
        avg_pool2d(x, 3, 2, 2)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        avg_pool2d(x, 3, (2, 0))
    with pytest.raises(ValueError, match="divisor_override must be a nonzero int"):
        avg_pool2d(x, 3, divisor_override=0)
    with pytest.raises(ValueError, match="too small for kernel_size"):
        avg_pool2d(torch.randn(1, 2, 2, 8), 3)
    with pytest.raises(ValueError, match="4-D N x C x H x W"):
        avg_pool2d(torch.randn(8, 8), 3)
    with pytest.raises(ValueError, match="impl must be one of"):
        AvgPool2d(3, impl="cuda")


@pytest.mark.parametrize("impl", [pytest.param("triton", marks=needs_kernels), "ref"])
def test_sizes_in_every_form_torch_takes(impl):
    """kernel_size, stride and padding as F.avg_pool2d and nn.AvgPool2d take them: a 1-element
    sequence stands for both sides, a numpy int for an int. Both paths refused them ("kernel_size
    must be an int >= 1 or a pair of them, got (3,)"), so a model's nn.AvgPool2d([3], [2], [1])
    could not be swapped for this one; a float is still refused, naming the argument."""
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    expected = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    grad = torch.randn_like(expected)
    (gx_expected,) = torch.autograd.grad(expected, x, grad)
    for k, s, p in (([3], (2,), [1]), (np.int64(3), np.int64(2), np.int64(1)), ((3, 3), [2], (np.int64(1),))):
        for y in (avg_pool2d(x, k, s, p, count_include_pad=False, impl=impl),
                  AvgPool2d(k, s, p, count_include_pad=False, impl=impl)(x)):
            torch.testing.assert_close(y, expected)
            torch.testing.assert_close(torch.autograd.grad(y, x, grad)[0], gx_expected)
    with pytest.raises(ValueError, match=r"avg_pool2d: stride must be an int >= 1 or a pair of them, got 2\.0"):
        avg_pool2d(x, 3, 2.0, impl=impl)



@pytest.mark.parametrize("impl", [pytest.param("triton", marks=needs_kernels), "ref"])
def test_divisor_override_in_every_int_form_torch_takes(impl):
    """divisor_override as F.avg_pool2d and nn.AvgPool2d take it: a numpy int or a 0-d integer tensor
    too. Both paths refused them ("divisor_override must be a nonzero int or None, got 3"), so a
    model's nn.AvgPool2d(2, divisor_override=np.int64(3)) could not be swapped for this one; a float
    and a bool are still refused, naming the argument."""
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    expected = F.avg_pool2d(x, 2, divisor_override=3)
    grad = torch.randn_like(expected)
    (gx_expected,) = torch.autograd.grad(expected, x, grad)
    for div in (np.int64(3), torch.tensor(3)):
        for y in (avg_pool2d(x, 2, divisor_override=div, impl=impl), AvgPool2d(2, divisor_override=div, impl=impl)(x)):
            torch.testing.assert_close(y, expected)
            torch.testing.assert_close(torch.autograd.grad(y, x, grad)[0], gx_expected)
    for div in (3.0, True, torch.tensor(3.0)):
        with pytest.raises(ValueError, match="avg_pool2d: divisor_override must be a nonzero int or None"):
            avg_pool2d(x, 2, divisor_override=div, impl=impl)

def test_module_is_a_drop_in_avg_pool():
    m = AvgPool2d(3, 2, 1, count_include_pad=False, impl="ref")
    assert isinstance(m, nn.AvgPool2d) and not m.state_dict()
    assert repr(m) == "AvgPool2d(kernel_size=3, stride=2, padding=1, impl=ref)" and not m.count_include_pad
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(m(x), nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x))


@needs_kernels
def test_discriminators_downsample_with_the_kernel(monkeypatch):
    """The multi-scale D pools through the op under impl='triton' (one launch per coarser scale),
    with the same outputs and gradients as under impl='ref'."""
    from bicyclegan.engine import ModelConfig, build_discriminator
    cfg = ModelConfig(crop_size=48, ngf=4, nef=4, ndf=4, netG="unet", netE="resnet_128", netD="basic_128_multi",
                      netD2="basic_128_multi", num_Ds=3)
    calls = []
    real = avg_pool_triton.OP.run_forward
    monkeypatch.setattr(avg_pool_triton.OP, "run_forward", lambda *a: calls.append(a[0].shape) or real(*a))
    torch.manual_seed(0)
    nets = {impl: build_discriminator(dataclasses.replace(cfg, impl=impl)) for impl in ("triton", "ref")}
    nets["ref"].load_state_dict(nets["triton"].state_dict())
    x0 = torch.randn(2, 3, 48, 48)
    outs, grads = {}, {}
    for impl, net in nets.items():
        x = x0.clone().requires_grad_()
        outs[impl] = net(x)
        sum(o.pow(2).sum() for o in outs[impl]).backward()
        grads[impl] = x.grad
    assert calls == [(2, 3, 48, 48), (2, 3, 24, 24)]
    for o, r in zip(outs["triton"], outs["ref"]):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads["triton"], grads["ref"], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL], ids=["nchw", "cl"])
def test_gpu_matches_torch(dtype, fmt):
    """The discriminators' shape (batch 16, 256 px images) and the other geometries, on the GPU."""
    x = torch.randn(16, 3, 256, 256, device="cuda")
    for geometry in GEOMETRIES:
        y, y_ref, dx, dx_ref = _pair_run(x, geometry, dtype, fmt)
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2 ** -7, atol=1e-5)
        torch.testing.assert_close(y.float(), y_ref, **tol)
        torch.testing.assert_close(dx.float(), dx_ref, **tol)
