"""z injection: the Triton paths (fused act+tile+concat, concatenation-free conv) against the
plain concatenate-then-conv reference, forward and every gradient, on small odd shapes.

On a CPU-only machine the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1).
"""
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from bicyclegan.kernels import (
    InstanceNormAct2d,
    ZConcatConv2d,
    _triton_common,
    tile_z,
    z_concat_act,
    z_concat_act_ref,
    z_concat_conv,
    z_concat_conv_ref,
)

TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float64: 1e-10}
CL = torch.channels_last
CUDA = "cuda"


def _close(actual, expected, dtype, what):
    """assert_close with a per-dtype tolerance scaled by the expected tensor's magnitude."""
    tol = TOL[dtype]
    scale = max(1.0, expected.detach().abs().max().item())
    torch.testing.assert_close(actual.float(), expected.float(), rtol=tol, atol=tol * scale,
                               msg=lambda m: f"{what}: {m}")


@pytest.fixture
def poisoned(monkeypatch):
    """Fresh kernel outputs start as NaN, so an element a kernel forgets to write shows up."""
    monkeypatch.setattr(_triton_common, "POISON", True)


@pytest.fixture
def no_tf32(monkeypatch):
    # fp32 comparisons on a GPU: TF32 convs would differ from each other by ~1e-3
    # (only cuDNN's flag: monkeypatching torch.backends.cuda.matmul.allow_tf32 fails on teardown
    # in recent torch builds; these tests involve convolutions, not matmuls)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _inputs(N, C, H, W, nz, dtype, fmt=torch.contiguous_format, device="cpu"):
    x = torch.randn(N, C, H, W, device=device).to(dtype).contiguous(memory_format=fmt)
    z = torch.randn(N, nz, device=device).to(dtype)
    return x, z


def _run_layer(layer, x, z, grad):
    x, z = x.detach().clone().requires_grad_(), z.detach().clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    y = layer(x, z)
    y.backward(grad)
    return y, {"x": x.grad, "z": z.grad, "weight": layer.weight.grad, "bias": layer.bias.grad}


def _compare_layers(N, C, H, W, nz, out, act, dtype, fmt=torch.contiguous_format, device="cpu",
                    mode="concat_free", **conv):
    x, z = _inputs(N, C, H, W, nz, dtype, fmt, device)
    # (the layers in x's layout, as in a network converted with .to(memory_format=...))
    ref = ZConcatConv2d(C, nz, out, act=act, impl="ref", **conv).to(device, dtype, memory_format=fmt)
    fast = ZConcatConv2d(C, nz, out, act=act, impl="triton", mode=mode, **conv).to(device, dtype, memory_format=fmt)
    fast.load_state_dict(ref.state_dict())
    y_ref = ref(x, z)
    grad = torch.randn_like(y_ref)
    y_ref, g_ref = _run_layer(ref, x, z, grad)
    y, g = _run_layer(fast, x, z, grad)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype and y.stride() == y_ref.stride()
    _close(y, y_ref, dtype, "output")
    for name in g_ref:
        assert g[name].dtype == g_ref[name].dtype, name
        _close(g[name], g_ref[name], dtype, f"grad {name}")
    return y


# ---------------------------------------------------------------------------------------------
# concatenation-free conv (ZConcatConv2d with impl="triton")
# ---------------------------------------------------------------------------------------------

SHAPES = [  # N, C, H, W, nz, out, act
    (3, 3, 6, 10, 8, 5, "leaky_relu"),   # H != W
    (1, 1, 2, 2, 1, 4, "leaky_relu"),    # 2x2 -> 1x1 bottleneck: both border taps in the padding
    (1, 5, 2, 4, 3, 2, "relu"),          # 1 x 2 output
    (3, 2, 5, 7, 2, 3, "none"),          # odd H and W
    (2, 4, 9, 3, 5, 1, "leaky_relu"),    # one output channel
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("N,C,H,W,nz,out,act", SHAPES)
def test_concat_free_matches_reference(N, C, H, W, nz, out, act, dtype, poisoned):
    _compare_layers(N, C, H, W, nz, out, act, dtype)


@pytest.mark.parametrize("N,C,H,W,nz,out,act", SHAPES[:2] + SHAPES[3:4])
def test_concat_free_channels_last(N, C, H, W, nz, out, act, poisoned):
    y = _compare_layers(N, C, H, W, nz, out, act, torch.float32, CL)
    if C > 1 and y.shape[2] * y.shape[3] > 1:
        assert y.is_contiguous(memory_format=CL)


@pytest.mark.parametrize("kernel_size,stride,padding", [
    (3, 1, 1), (3, 2, 0), (5, 3, 2), (2, 1, 3), (1, 1, 0), ((3, 4), (1, 2), (2, 0))])
def test_concat_free_general_conv(kernel_size, stride, padding, poisoned):
    # includes padding wider than the kernel (rows whose taps all land in the padding)
    _compare_layers(2, 3, 5, 6, 2, 3, "leaky_relu", torch.float32, kernel_size=kernel_size,
                    stride=stride, padding=padding)


def test_concat_free_gradcheck_float64():
    x, z = _inputs(2, 2, 3, 4, 2, torch.float64)
    w = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, z, w, b)]
    for impl in ("ref", "triton"):
        assert torch.autograd.gradcheck(
            lambda *a, impl=impl: z_concat_conv(*a, stride=2, padding=1, impl=impl), args, fast_mode=True)


@pytest.mark.parametrize("kernel_size,stride,padding,act", [
    (4, 2, 1, "none"), (4, 2, 1, "leaky_relu"), (3, 1, 1, "relu"), (5, 3, 2, "elu"), (2, 1, 3, "leaky_relu"),
    ((3, 4), (1, 2), (2, 0), "none")])
def test_reference_path_computes_no_input_gradient_for_an_x_that_needs_none(kernel_size, stride, padding, act):
    """G's first conv on an encoded code: A needs no gradient, z does. A conv's input gradient is all or
    nothing, so the conv of the concatenation computed A's channels' with z's, to drop them: the
    reference path asks none of its conv, and its values and gradients are the concatenation's
    (z_concat_conv_ref) to float64 rounding, second derivatives included."""
    x, z = _inputs(2, 3, 7, 6, 4, torch.float64)
    z.requires_grad_()
    layer = ZConcatConv2d(3, 4, 5, kernel_size, stride, padding, act=act, impl="ref").double()
    params = [z, layer.weight, layer.bias]

    class Masks(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.convolution_backward.default:
                seen.append(tuple(args[-1]))  # output_mask: (input, weight, bias)
            return func(*args, **(kwargs or {}))
    seen = []
    y = layer(x, z)
    grad = torch.randn_like(y)
    with Masks():
        got = torch.autograd.grad(y, params, grad)
    assert seen and not any(mask[0] for mask in seen), seen
    want = z_concat_conv_ref(x, z, layer.weight, layer.bias, stride, padding, act)
    _close(y, want, torch.float64, "output")
    for name, g, w in zip(("z", "weight", "bias"), got, torch.autograd.grad(want, params, grad)):
        _close(g, w, torch.float64, f"grad {name}")
    if act == "elu":  # the one with a second derivative of its own
        assert torch.autograd.gradgradcheck(
            lambda *a: z_concat_conv(x, *a, stride, padding, act, impl="ref"), params, fast_mode=True)


def test_reference_path_per_sample_gradients_of_z_alone():
    """torch.func.vmap(grad) over z with one x: z's term is a batch of samples where the conv of x is one."""
    from torch.func import grad, vmap
    x, _ = _inputs(1, 3, 8, 6, 2, torch.float64)
    w, b = torch.randn(4, 5, 4, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    zs = torch.randn(5, 1, 2, dtype=torch.float64)
    got = vmap(grad(lambda z: z_concat_conv(x, z, w, b, impl="ref").square().sum()))(zs)
    want = vmap(grad(lambda z: z_concat_conv_ref(x, z, w, b).square().sum()))(zs)
    _close(got, want, torch.float64, "per-sample grad z")


@pytest.mark.parametrize("trainable", [("z",), ("x",), ("bias",), ("weight", "z")])
def test_concat_free_partial_requires_grad(trainable, poisoned):
    # only some inputs need gradients (e.g. a frozen G in the encoder's update)
    x, z = _inputs(2, 3, 6, 4, 2, torch.float32)
    grads = []
    for impl in ("triton", "ref"):
        torch.manual_seed(1)
        layer = ZConcatConv2d(3, 2, 4, impl=impl)
        inputs = {"x": x.clone(), "z": z.clone(), "weight": layer.weight, "bias": layer.bias}
        for k, t in inputs.items():
            t.requires_grad_(k in trainable)
        layer(inputs["x"], inputs["z"]).square().sum().backward()
        grads.append({k: t.grad for k, t in inputs.items()})
    for k in grads[1]:
        assert (grads[0][k] is None) == (k not in trainable), k
        if k in trainable:
            _close(grads[0][k], grads[1][k], torch.float32, f"grad {k}")


def test_no_grad_forward():
    layer = ZConcatConv2d(3, 2, 4, impl="triton")
    ref = ZConcatConv2d(3, 2, 4, impl="ref")
    ref.load_state_dict(layer.state_dict())
    x, z = _inputs(2, 3, 6, 4, 2, torch.float32)
    with torch.no_grad():
        _close(layer(x, z), ref(x, z), torch.float32, "no_grad output")


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_autocast_bf16(mode):
    # fp32 activations and parameters, bf16 conv, as in mixed-precision training (here on CPU)
    x, z = _inputs(2, 3, 6, 10, 4, torch.float32)
    ref = ZConcatConv2d(3, 4, 5, impl="ref")
    fast = ZConcatConv2d(3, 4, 5, impl="triton", mode=mode)
    fast.load_state_dict(ref.state_dict())
    grad = torch.randn(2, 5, 3, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_ref, g_ref = _run_layer(ref, x, z, grad)
        y, g = _run_layer(fast, x, z, grad)
        # z in another float dtype than x is fine under autocast (as for torch.cat)
        ZConcatConv2d(3, 4, 5, impl="triton")(x.bfloat16(), z)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    _close(y, y_ref, torch.bfloat16, "output")
    for name in g_ref:
        assert g[name].dtype == torch.float32
        _close(g[name], g_ref[name], torch.bfloat16, f"grad {name}")


def test_concat_free_allocates_nothing_of_the_concatenated_size():
    N, C, H, W, nz = 2, 3, 6, 10, 5
    layer = ZConcatConv2d(C, nz, 4, impl="triton")
    x, z = _inputs(N, C, H, W, nz, torch.float32)
    x.requires_grad_()
    z.requires_grad_()

    class Shapes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    self.seen.append(tuple(t.shape))
            return out

    with Shapes() as mode:
        layer(x, z).sum().backward()
    assert mode.seen and not [s for s in mode.seen if len(s) == 4 and s[:2] == (N, C + nz)], mode.seen
    # the reference does build it, so the probe works
    with Shapes() as mode:
        ZConcatConv2d(C, nz, 4, impl="ref")(x, z).sum().backward()
    assert (N, C + nz, H, W) in mode.seen


def test_state_dict_is_one_conv_weight():
    layer = ZConcatConv2d(3, 8, 16, impl="triton", mode="fused_concat")
    conv = nn.Conv2d(3 + 8, 16, 4, 2, 1)
    assert {k: v.shape for k, v in layer.state_dict().items()} == \
           {k: v.shape for k, v in conv.state_dict().items()}
    layer.load_state_dict(conv.state_dict())
    x, z = _inputs(2, 3, 4, 6, 8, torch.float32)
    ref = conv(F.leaky_relu(torch.cat([x, z[:, :, None, None].expand(-1, -1, 4, 6)], 1), 0.2))
    _close(layer(x, z), ref, torch.float32, "vs nn.Conv2d")
    layer.mode = "concat_free"
    _close(layer(x, z), ref, torch.float32, "vs nn.Conv2d")


def test_module_takes_device_and_dtype_as_nn_conv2d():
    layer = ZConcatConv2d(3, 2, 4, device="meta", dtype=torch.float64)
    assert (layer.weight.device.type, layer.weight.dtype, layer.bias.dtype) == ("meta", torch.float64, torch.float64)


# ---------------------------------------------------------------------------------------------
# fused act + tile + concatenate
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize("N,C,H,W,nz,act", [
    (3, 3, 6, 10, 8, "leaky_relu"), (1, 1, 2, 2, 1, "relu"), (2, 5, 3, 5, 3, "none")])
def test_fused_concat_matches_reference(N, C, H, W, nz, act, fmt, dtype, poisoned):
    x, z = _inputs(N, C, H, W, nz, dtype, fmt)
    outs = {}
    for impl in ("ref", "triton"):
        xs, zs = x.clone().requires_grad_(), z.clone().requires_grad_()
        y = z_concat_act(xs, zs, act, impl=impl)
        if impl == "ref":
            grad = torch.randn_like(y)
        y.backward(grad)
        outs[impl] = (y, xs.grad, zs.grad)
    (y, dx, dz), (y_ref, dx_ref, dz_ref) = outs["triton"], outs["ref"]
    assert y.dtype == dtype and y.shape == (N, C + nz, H, W)
    assert y.stride() == y_ref.stride()  # torch.cat's layout: NCHW, whatever x's
    # elementwise: exact in fp32; in bf16 torch's CPU leaky_relu may round differently (1 ulp)
    ulp = 0 if dtype == torch.float32 else 2.0 ** -7
    torch.testing.assert_close(y, y_ref, rtol=ulp, atol=0)
    torch.testing.assert_close(dx, dx_ref, rtol=ulp, atol=0)
    _close(dz, dz_ref, dtype, "dz")


def test_fused_concat_gradcheck_float64():
    x, z = _inputs(2, 2, 3, 5, 3, torch.float64)
    args = (x.requires_grad_(), z.requires_grad_())
    for impl in ("ref", "triton"):
        assert torch.autograd.gradcheck(lambda a, b, impl=impl: z_concat_act(a, b, impl=impl), args,
                                        fast_mode=True)


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_elu_matches_reference(mode, poisoned):
    # ELU shares the kernels' activation code with the norm: cheap to offer, so it is tested here too.
    _compare_layers(2, 3, 5, 4, 2, 3, "elu", torch.float32, mode=mode)
    _compare_layers(2, 3, 5, 4, 2, 3, "elu", torch.float32, CL, mode=mode)


def test_elu_gradcheck_float64():
    x, z = _inputs(2, 2, 3, 4, 2, torch.float64)
    w = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, z, w)]
    assert torch.autograd.gradcheck(lambda x, z, w: z_concat_conv(x, z, w, act="elu", impl="triton"), args,
                                    fast_mode=True)
    assert torch.autograd.gradcheck(lambda x, z: z_concat_act(x, z, "elu", impl="triton"), args[:2], fast_mode=True)


def test_fused_concat_noncontiguous_grad(poisoned):
    # y.sum().backward() hands an expanded (stride-0) gradient to the kernel
    x, z = _inputs(2, 3, 4, 5, 2, torch.float32, CL)
    xs, zs = x.clone().requires_grad_(), z.clone().requires_grad_()
    z_concat_act(xs, zs, impl="triton").sum().backward()
    xr, zr = x.clone().requires_grad_(), z.clone().requires_grad_()
    z_concat_act_ref(xr, zr).sum().backward()
    _close(xs.grad, xr.grad, torch.float32, "dx")
    _close(zs.grad, zr.grad, torch.float32, "dz")


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["act", "conv", "module"])
@pytest.mark.parametrize("z_shape,z_dtype,error", [
    ((2, 3), torch.float64, TypeError),     # wrong dtype
    ((2, 3), torch.int64, TypeError),       # not floating point
    ((3, 3), torch.float32, ValueError),    # batch mismatch
    ((2, 4), torch.float32, ValueError),    # wrong nz
    ((2, 3, 1), torch.float32, ValueError),  # not N x nz
])
def test_bad_z_names_both_shapes(op, z_shape, z_dtype, error):
    x = torch.randn(2, 5, 4, 6)
    z = torch.zeros(z_shape, dtype=z_dtype)
    if op == "act":
        if z_shape == (2, 4):
            pytest.skip("any nz is valid for the concat op alone")
        call = lambda: z_concat_act(x, z, impl="triton")  # noqa: E731
    elif op == "conv":
        call = lambda: z_concat_conv(x, z, torch.randn(7, 8, 4, 4), impl="triton")  # noqa: E731
    else:
        call = lambda: ZConcatConv2d(5, 3, 7, impl="triton")(x, z)  # noqa: E731
    with pytest.raises(error) as info:
        call()
    assert str((2, 5, 4, 6)) in str(info.value) and str(z_shape) in str(info.value)


@pytest.mark.parametrize("impl", ["triton", "ref"])
@pytest.mark.parametrize("op", ["act", "conv", "module"])
def test_a_code_of_n_x_nz_x_1_x_1_is_taken_as_n_x_nz(op, impl):
    """A code as a conv head gives it (N x nz x 1 x 1) was refused ("expected z of shape (N, 3)"): taken as its
    N x nz, the values, dx and dz (in the code's own shape) those of the flat code, by an independent
    computation: torch.cat of x and the code expanded over the plane."""
    torch.manual_seed(0)
    x0, z0 = _inputs(2, 5, 4, 6, 3, torch.float32)
    w, b = torch.randn(7, 8, 4, 4), torch.randn(7)
    x, z4 = x0.clone().requires_grad_(), z0[:, :, None, None].clone().requires_grad_()
    xr, zr = x0.clone().requires_grad_(), z0[:, :, None, None].clone().requires_grad_()
    cat = F.leaky_relu(torch.cat([xr, zr.expand(-1, -1, 4, 6)], 1), 0.2)
    if op == "act":
        y, want = z_concat_act(x, z4, impl=impl), cat
    elif op == "conv":
        y, want = z_concat_conv(x, z4, w, b, impl=impl), F.conv2d(cat, w, b, 2, 1)
    else:
        layer = ZConcatConv2d(5, 3, 7, impl=impl)
        with torch.no_grad():
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        y, want = layer(x, z4), F.conv2d(cat, w, b, 2, 1)
    g = torch.randn_like(want)
    y.backward(g)
    want.backward(g)
    _close(y, want, torch.float32, "y")
    _close(x.grad, xr.grad, torch.float32, "dx")
    assert z4.grad.shape == (2, 3, 1, 1)
    _close(z4.grad, zr.grad, torch.float32, "dz")
    with pytest.raises(ValueError, match=r"got x \(2, 5, 4, 6\) and z \(3, 3, 1, 1\)"):  # the shape as given
        z_concat_act(x, torch.zeros(3, 3, 1, 1), impl=impl)
    # the exported references too (tile_z)
    torch.testing.assert_close(z_concat_conv_ref(x0, z0[:, :, None, None], w, b), z_concat_conv_ref(x0, z0, w, b))


def test_bad_arguments():
    x, z = _inputs(2, 3, 4, 4, 2, torch.float32)
    w = torch.randn(4, 5, 4, 4)
    with pytest.raises(ValueError, match="stride"):
        z_concat_conv(x, z, w, stride=0, impl="triton")
    with pytest.raises(ValueError, match="padding"):
        z_concat_conv(x, z, w, padding="same", impl="triton")
    with pytest.raises(ValueError, match="act"):
        z_concat_conv(x, z, w, act="tanh", impl="triton")
    with pytest.raises(ValueError, match="mode"):
        ZConcatConv2d(3, 2, 4, mode="concat")
    with pytest.raises(TypeError, match="weight"):
        z_concat_conv(x, z, w.double(), impl="triton")
    for impl in ("triton", "ref"):
        with pytest.raises(TypeError, match="z_concat_conv: slope must be a finite real number.*, got '0.2'"):
            z_concat_conv(x, z, w, slope="0.2", impl=impl)
        with pytest.raises(TypeError, match="z_concat_act: slope must be a finite real number.*, got None"):
            z_concat_act(x, z, slope=None, impl=impl)
        with pytest.raises(ValueError, match="x must be a 4-D N x C x H x W tensor, got list"):
            z_concat_act([1.0], z, impl=impl)
    with pytest.raises(TypeError, match="ZConcatConv2d: slope"):
        ZConcatConv2d(3, 2, 4, slope="0.2")


def test_tile_z_names_a_bad_z_or_like():
    """tile_z, public, checked nothing: a 1-D z or a 3-D like failed in indexing (IndexError)."""
    z, like = torch.randn(2, 3), torch.randn(2, 4, 5, 6)
    assert tile_z(z[:, :, None, None], like).shape == (2, 3, 5, 6)
    with pytest.raises(ValueError, match=re.escape("tile_z: z must be N x nz (or N x nz x 1 x 1), got (3,)")):
        tile_z(torch.randn(3), like)
    with pytest.raises(ValueError, match=re.escape("tile_z: z must be N x nz (or N x nz x 1 x 1), got (2, 3, 2, 1)")):
        tile_z(torch.randn(2, 3, 2, 1), like)
    with pytest.raises(ValueError, match=re.escape("tile_z: like must be a 4-D N x C x H x W tensor (z is tiled "
                                                   "over its H x W), got (4, 5, 6)")):
        tile_z(z, like[0])
    with pytest.raises(ValueError, match="tile_z: like must be a 4-D .*, got list"):
        tile_z(z, [5, 6])


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_z_checks_name_the_function_called(impl):
    """The shared checks of x and z began "z injection:", where every other message names the function."""
    x, z = _inputs(2, 3, 4, 4, 2, torch.float32)
    w = torch.randn(4, 5, 3, 3)
    bad = {"x must be a 4-D": (x[0], z),
           "z must be N x nz .* with the batch of x": (x, z[:1]), "z is on meta": (x, z.to("meta")),
           "z dtype torch.float64 differs": (x, z.double()),
           "x and z must be floating point": (x.long(), z.long())}
    for words, (xb, zb) in bad.items():
        for who, call in (("z_concat_act", lambda: z_concat_act(xb, zb, impl=impl)),
                          ("z_concat_conv", lambda: z_concat_conv(xb, zb, w, impl=impl))):
            with pytest.raises((ValueError, TypeError), match=f"^{who}: {words}"):
                call()


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_the_layers_z_checks_name_the_layer(impl):
    """ZConcatConv2d checked z's width itself and left its batch, device and dtype to z_concat_conv, whose
    refusal named that function, one the user never called."""
    x, z = _inputs(2, 3, 4, 4, 2, torch.float32)
    layer = ZConcatConv2d(3, 2, 4, 3, impl=impl)
    bad = {r"z must be N x nz \(or N x nz x 1 x 1\) with the batch of x; got x \(2, 3, 4, 4\) and z \(1, 2, 1, 1\)":
           z[:1, :, None, None], "z is on meta": z.to("meta"), "z dtype torch.float64 differs": z.double()}
    for words, zb in bad.items():
        with pytest.raises((ValueError, TypeError), match=f"^ZConcatConv2d: {words}"):
            layer(x, zb)


def test_bias_shape_dtype_and_device_checked():
    """A bias of the wrong length was read past its end by the kernel (out-of-bounds on a GPU)."""
    x, z = _inputs(2, 3, 5, 5, 2, torch.float32)
    w = torch.randn(4, 5, 4, 4)
    for impl in ("triton", "ref"):
        for bad in (torch.arange(10.0)[:3], torch.zeros(4, 1), torch.zeros(5)):
            got = re.escape(str(tuple(bad.shape)))
            with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*got " + got):
                z_concat_conv(x, z, w, bad, impl=impl)
        with pytest.raises(TypeError, match="bias must be floating point"):
            z_concat_conv(x, z, w, torch.zeros(4, dtype=torch.long), impl=impl)
        with pytest.raises(ValueError, match="bias is on meta but x is on cpu"):
            z_concat_conv(x, z, w, torch.zeros(4, device="meta"), impl=impl)


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_integer_inputs_refused(impl):
    x, z = torch.ones(2, 3, 4, 4, dtype=torch.long), torch.ones(2, 2, dtype=torch.long)
    with pytest.raises(TypeError, match="must be floating point, got torch.int64"):
        z_concat_act(x, z, impl=impl)
    with pytest.raises(TypeError, match="must be floating point"):
        z_concat_conv(x, z, torch.ones(4, 5, 3, 3, dtype=torch.long), impl=impl)


@pytest.mark.parametrize("padding,kernel_size,stride", [("same", 3, 1), ("same", (3, 5), 1), ("valid", 3, 2)])
def test_padding_strings_as_nn_conv2d(padding, kernel_size, stride, poisoned):
    """nn.Conv2d's 'same' and 'valid', on both paths, against nn.Conv2d itself on the concatenation."""
    x, z = _inputs(2, 3, 7, 6, 2, torch.float32)
    conv = nn.Conv2d(5, 4, kernel_size, stride, padding)
    expected = conv(F.leaky_relu(torch.cat([x, z[:, :, None, None].expand(-1, -1, 7, 6)], 1), 0.2))
    for impl in ("triton", "ref"):
        layer = ZConcatConv2d(3, 2, 4, kernel_size, stride, padding, impl=impl)
        layer.load_state_dict(conv.state_dict())
        _close(layer(x, z), expected, torch.float32, f"{impl} module")
        _close(z_concat_conv(x, z, conv.weight, conv.bias, stride, padding, impl=impl), expected,
               torch.float32, f"{impl} functional")


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_stride_and_padding_in_every_form_f_conv2d_takes(impl, poisoned):
    """stride and padding as F.conv2d (and nn.Conv2d, whose attributes a ported layer copies) take
    them: a numpy int, a 1-element sequence. The Triton path refused them ("'numpy.int64' object is
    not iterable", "must be an int >= 1 or a pair of them, got (2,)"), and so did the reference path
    where only z needs a gradient (G's first conv on an encoded code), while the same call with x
    needing one ran; a float was a TypeError from inside the argument parsing. Now all are taken, and
    a float is refused naming the argument."""
    x, z = _inputs(2, 3, 6, 5, 2, torch.float32)
    w, b = torch.randn(4, 5, 3, 3), torch.randn(4)
    expected = F.conv2d(F.leaky_relu(torch.cat([x, z[:, :, None, None].expand(-1, -1, 6, 5)], 1), 0.2), w, b, 2, 1)
    for stride, padding in ((np.int64(2), np.int64(1)), ((2,), [1]), ([2, 2], (np.int64(1),))):
        for x_grad in (True, False):
            xx, zz = x.clone().requires_grad_(x_grad), z.clone().requires_grad_()
            y = z_concat_conv(xx, zz, w, b, stride, padding, impl=impl)
            _close(y, expected, torch.float32, f"stride {stride!r}, padding {padding!r}, x_grad {x_grad}")
    with pytest.raises(ValueError, match=r"z_concat_conv: stride must be an int >= 1 or a pair of them, got 2\.0"):
        z_concat_conv(x, z, w, b, 2.0, 1, impl=impl)
    with pytest.raises(ValueError, match=r"z_concat_conv: padding must be an int >= 0 .*, got \(1, 1, 1\)"):
        z_concat_conv(x, z, w, b, 2, (1, 1, 1), impl=impl)


def test_layer_sizes_in_numpy_ints_and_a_bad_x():
    """ZConcatConv2d built from a model's numbers (numpy ints, as read from a config array) with
    padding "same": the padding's conversion read kernel_size and stride as ints or sequences only
    ("'numpy.int64' object is not iterable"). And x that is not a tensor is the layer's own error,
    not an AttributeError from inside the shape check."""
    layer = ZConcatConv2d(3, 2, 4, kernel_size=np.int64(3), stride=np.int64(1), padding="same", impl="ref")
    assert layer.padding == (1, 1)
    x, z = torch.randn(2, 3, 6, 5), torch.randn(2, 2)
    expected = F.conv2d(F.leaky_relu(torch.cat([x, z[:, :, None, None].expand(-1, -1, 6, 5)], 1), 0.2),
                        layer.weight, layer.bias, 1, 1)
    torch.testing.assert_close(layer(x, z), expected)
    with pytest.raises(ValueError, match=r"ZConcatConv2d: expected x, a tensor of N x 3 x H x W, got list"):
        layer([1, 2], z)
    with pytest.raises(ValueError, match=r"ZConcatConv2d: stride must be an int >= 1 or a pair of them, got 1\.0"):
        ZConcatConv2d(3, 2, 4, kernel_size=3, stride=1.0, padding="same")


def test_padding_strings_the_kernels_cannot_do():
    with pytest.raises(ValueError, match="padding 'same' needs stride 1 and odd kernel sides"):
        ZConcatConv2d(3, 2, 4, kernel_size=4, stride=1, padding="same")
    with pytest.raises(ValueError, match="padding 'same' needs stride 1"):
        ZConcatConv2d(3, 2, 4, kernel_size=3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be 'valid', 'same', an int or a pair of ints, got 'full'"):
        ZConcatConv2d(3, 2, 4, padding="full")
    with pytest.raises(ValueError, match="ZConcatConv2d: impl must be one of"):
        ZConcatConv2d(3, 2, 4, impl="cuda")


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_negative_slope(impl, poisoned):
    """LeakyReLU with a negative slope: torch refuses the in-place version's backward."""
    x, z = _inputs(2, 3, 4, 5, 2, torch.float32)
    x.requires_grad_()
    y = z_concat_act(x, z, "leaky_relu", -0.1, impl=impl)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(y[:, :3], torch.where(x > 0, x, -0.1 * x).detach())
    torch.testing.assert_close(x.grad, torch.where(x > 0, 1.0, -0.1))


# ---------------------------------------------------------------------------------------------
# generator integration
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where_add,size,channels_last,only_zinject", [
    ("all", (32, 64), False, True), ("input", (32, 32), True, True), ("all", (32, 32), False, False)])
def test_generator_triton_matches_ref(where_add, size, channels_last, only_zinject):
    engine = pytest.importorskip("bicyclegan.engine")
    cfg = dict(netG="unet", ngf=4, nz=3, where_add=where_add, crop_size=size[0], crop_width=size[1],
               netE="resnet_128", netD="basic_128", netD2="basic_128", num_Ds=1)
    ref = engine.build_generator(engine.ModelConfig(impl="ref", **cfg))
    fast = engine.build_generator(engine.ModelConfig(impl="triton", **cfg))
    fast.load_state_dict(ref.state_dict())
    if only_zinject:  # isolate the z-injection kernels: every other layer runs its reference
        for m in fast.modules():
            if hasattr(m, "impl") and not isinstance(m, ZConcatConv2d):
                m.impl = "ref"
    assert sum(isinstance(m, ZConcatConv2d) and m.nz > 0 for m in fast.modules()) == \
        (ref.depth if where_add == "all" else 1)
    A = torch.randn(2, 3, *size)
    z = torch.randn(2, 3)
    if channels_last:
        A = A.contiguous(memory_format=CL)
        ref, fast = ref.to(memory_format=CL), fast.to(memory_format=CL)
    grad = torch.randn(2, 3, *size)
    outs = []
    for net in (ref, fast):
        zs = z.clone().requires_grad_()
        y = net(A, zs)
        y.backward(grad)
        outs.append((y, zs.grad, {k: p.grad for k, p in net.named_parameters()}))
    (y, dz, gp), (y_ref, dz_ref, gp_ref) = outs[1], outs[0]
    _close(y, y_ref, torch.float32, "G output")
    _close(dz, dz_ref, torch.float32, "G dz")
    # Biases followed by InstanceNorm get a zero gradient up to rounding noise, so every
    # parameter is compared at the scale of the largest gradient.
    scale = max(g.abs().max().item() for g in gp_ref.values())
    for k in gp_ref:
        torch.testing.assert_close(gp[k], gp_ref[k], rtol=1e-4, atol=1e-4 * scale, msg=lambda m, k=k: f"{k}: {m}")


# ---------------------------------------------------------------------------------------------
# on a GPU (compiled kernels)
# ---------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("N,C,H,W,nz,out,act", [
    (2, 64, 64, 96, 8, 128, "leaky_relu"), (3, 5, 2, 2, 3, 7, "leaky_relu"), (1, 3, 33, 17, 8, 64, "none")])
@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_gpu_matches_reference(N, C, H, W, nz, out, act, dtype, fmt, mode, no_tf32):
    _compare_layers(N, C, H, W, nz, out, act, dtype, fmt, device=CUDA, mode=mode)


@pytest.mark.gpu
def test_gpu_autocast_and_cuda_graph(no_tf32):
    x, z = _inputs(2, 64, 32, 32, 8, torch.float32, CL, device=CUDA)
    ref = ZConcatConv2d(64, 8, 128, impl="ref").to(CUDA)
    fast = ZConcatConv2d(64, 8, 128, impl="triton").to(CUDA)
    fast.load_state_dict(ref.state_dict())
    grad = torch.randn(2, 128, 16, 16, device=CUDA)
    with torch.autocast(CUDA, dtype=torch.bfloat16):
        y_ref, g_ref = _run_layer(ref, x, z, grad)
        y, g = _run_layer(fast, x, z, grad)
    _close(y, y_ref, torch.bfloat16, "output")
    for name in g_ref:
        _close(g[name], g_ref[name], torch.bfloat16, f"grad {name}")
    # y's graph keeps the weights' AccumulateGrad nodes alive, made on the legacy stream: a captured backward
    # reusing them makes that stream wait on the capture, which CUDA refuses ("operation would make the legacy stream
    # depend on a capturing blocking stream", in backward: the H200 rerun, with torch's warning that an AccumulateGrad
    # node of an earlier iteration was kept alive by tensors such as the loss). The trainer keeps no such tensor.
    del y, y_ref
    # graph-safe: no host syncs, no allocations the caching allocator cannot replay
    xs, zs = x.clone().requires_grad_(), z.clone().requires_grad_()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fast(xs, zs).backward(grad)
    torch.cuda.current_stream().wait_stream(stream)
    # As the trainer captures (engine/graph.py): gradients set to None first, so that the captured
    # backward makes them in the graph's pool rather than adding into ones made on the side stream,
    # and thread_local errors.
    xs.grad = zs.grad = None
    fast.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        y_graph = fast(xs, zs)
        y_graph.backward(grad)
    graph.replay()
    torch.cuda.synchronize()
    _close(y_graph, fast(x, z).detach(), torch.float32, "graphed output")


def test_float64_under_auto_takes_the_reference(monkeypatch):
    # docs: float64 always takes the reference; the z ops ran their kernels in float64, whose slope
    # argument is float32 on a GPU (1.5e-8 relative on negative inputs).
    import bicyclegan.kernels.zinject_triton as zt
    for name in ("z_concat_act_triton", "z_concat_conv_triton"):
        monkeypatch.setattr(zt, name, lambda *a, **k: pytest.fail("the Triton path ran in float64 under auto"))
    x, z = _inputs(2, 2, 3, 4, 2, torch.float64)
    w = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(z_concat_conv(x, z, w), z_concat_conv_ref(x, z, w), rtol=0, atol=0)
    torch.testing.assert_close(z_concat_act(x, z), z_concat_act_ref(x, z), rtol=0, atol=0)


def test_a_sample_over_int32_offsets_is_refused_before_any_launch():
    from bicyclegan.kernels.zinject_triton import z_concat_act_triton, z_concat_conv_triton
    x = torch.zeros(1, 1, 1, 1).expand(2, 2048, 1024, 1024)  # 2**31 elements a sample, no memory
    z = torch.zeros(2, 8)
    with pytest.raises(ValueError, match=r"z_concat_act: one sample holds 2155872256 elements .* under 2\*\*31"):
        z_concat_act_triton(x, z)
    with pytest.raises(ValueError, match=r"z_concat_conv: one sample holds 2155872256 elements"):
        z_concat_conv_triton(x, z, torch.zeros(4, 2056, 4, 4), None)
    small = torch.zeros(1, 1, 1, 1).expand(1, 1, 2**14, 2**14)  # 2**29 in, 8 x 2**28 = 2**31 out
    with pytest.raises(ValueError, match=r"z_concat_conv: one sample holds 2147483648 elements"):
        z_concat_conv_triton(small, torch.zeros(1, 1), torch.zeros(8, 2, 3, 3), None, stride=1, padding=1)


@pytest.mark.parametrize("rows, OH, want", [(124, 128, 64), (4, 128, 4), (200, 128, 128), (3, 10, 3), (6, 10, 5),
                                            (0, 7, 1)])
def test_zterm_rows_are_spread_evenly_over_as_many_programs(rows, OH, want):
    from bicyclegan.kernels.zinject_triton import _even_rows
    got = _even_rows(rows, OH)
    assert got == want
    assert -(-OH // got) == -(-OH // max(1, min(rows, OH)))  # no more programs than before


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
def test_concat_free_zterm_plans_a_gpu_would_use(fmt, monkeypatch, poisoned):
    """In the interpreter the heuristics give one program the whole plane (ROWS = OH, one column
    block). A GPU's plans cut it: several column blocks, several row chunks whose partial sums are
    added up, and a last chunk reaching past OH (5 rows in programs of 2). Forced through the
    launch-configuration lookup, they must give the reference's outputs and gradients."""
    from bicyclegan.kernels import _configs
    forced = dict(BLOCK_J=2, BLOCK_O=2, ROWS=2, num_warps=1)
    real = _configs.choose
    monkeypatch.setattr(_configs, "choose",
                        lambda site, *a: dict(forced) if site.startswith("zterm") else real(site, *a))
    # 10 x 10 -> 5 x 5 outputs: columns 0-1, 2-3 and 4 (a block the last one alone), rows 0-1, 2-3, 4 (and 5).
    _compare_layers(2, 3, 10, 10, 2, 5, "leaky_relu", torch.float32, fmt)


def test_concat_free_more_output_channels_than_one_block(poisoned):
    """The z-side gradient kernel takes the output channels in blocks of 1024 / (KH * KW) rounded
    to a power of two (32 for a 5 x 5 kernel): 40 of them need two blocks, whose partial dz add up."""
    _compare_layers(2, 2, 5, 5, 3, 40, "leaky_relu", torch.float32, kernel_size=5, stride=1, padding=2)


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_activation_derivative_at_exact_zeros(mode, poisoned):
    """x after a ReLU holds exact zeros, and z may: there the derivative is that of the negative
    side (0 for ReLU, the slope for LeakyReLU), as in torch. The random inputs of the other tests
    never hit 0."""
    x, z = _inputs(2, 3, 6, 4, 3, torch.float32)
    x, z = F.relu(x), z * (torch.arange(3) != 1)  # about half of x and one z channel at 0
    for act in ("relu", "leaky_relu"):
        ref = ZConcatConv2d(3, 3, 4, act=act, impl="ref")
        fast = ZConcatConv2d(3, 3, 4, act=act, impl="triton", mode=mode)
        fast.load_state_dict(ref.state_dict())
        grad = torch.randn_like(ref(x, z))
        (y_ref, g_ref), (y, g) = _run_layer(ref, x, z, grad), _run_layer(fast, x, z, grad)
        _close(y, y_ref, torch.float32, f"{act} output")
        for name in g_ref:
            _close(g[name], g_ref[name], torch.float32, f"{act} grad {name}")


def test_autocast_without_activation(poisoned):
    """act "none" (the U-Net's outermost block) under autocast: the x side must still reach the
    conv in the autocast dtype, although no activation pass runs over it."""
    x, z = _inputs(2, 3, 6, 10, 4, torch.float32)
    ref = ZConcatConv2d(3, 4, 5, act="none", impl="ref")
    grad = torch.randn(2, 5, 3, 5)
    for mode in ("concat_free", "fused_concat"):
        fast = ZConcatConv2d(3, 4, 5, act="none", impl="triton", mode=mode)
        fast.load_state_dict(ref.state_dict())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y_ref, g_ref = _run_layer(ref, x, z, grad)
            y, g = _run_layer(fast, x, z, grad)
        assert y.dtype == y_ref.dtype == torch.bfloat16, mode
        _close(y, y_ref, torch.bfloat16, f"{mode} output")
        for name in g_ref:
            _close(g[name], g_ref[name], torch.bfloat16, f"{mode} grad {name}")


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
def test_fused_concat_gradient_whose_plane_does_not_flatten(fmt, poisoned):
    """A gradient narrowed along W (what torch.cat's backward hands over, say): its positions are
    not h * W + w apart, so the kernel must get a dense copy."""
    for W in (5, 1):  # W = 1: the plane is a column, its positions stride(2) apart whatever stride(3) is
        x, z = _inputs(2, 3, 4, W, 2, torch.float32, fmt)
        g = torch.randn(2, 5, 4, 8).contiguous(memory_format=fmt)[..., 1:1 + W]
        outs = []
        for impl in ("triton", "ref"):
            xs, zs = x.clone().requires_grad_(), z.clone().requires_grad_()
            z_concat_act(xs, zs, "leaky_relu", impl=impl).backward(g)
            outs.append((xs.grad, zs.grad))
        _close(outs[0][0], outs[1][0], torch.float32, f"W {W} dx")
        _close(outs[0][1], outs[1][1], torch.float32, f"W {W} dz")


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
def test_fused_concat_plans_a_gpu_would_use(fmt, monkeypatch, poisoned):
    """In the interpreter one tile holds a whole small plane; a GPU's tiles cut it into several
    position and channel blocks, each z-channel block writing its own partial sums of dz."""
    from bicyclegan.kernels import _configs
    real = _configs.choose
    forced = dict(BLOCK_P=4, BLOCK_C=2, num_warps=1)
    monkeypatch.setattr(_configs, "choose",
                        lambda site, *a: dict(forced) if site.startswith("zcat") else real(site, *a))
    x, z = _inputs(3, 3, 5, 3, 3, torch.float32, fmt)  # 15 positions: 4 blocks; 6 channels: 3 blocks
    grad = torch.randn(3, 6, 5, 3)
    outs = []
    for impl in ("triton", "ref"):
        xs, zs = x.clone().requires_grad_(), z.clone().requires_grad_()
        y = z_concat_act(xs, zs, "leaky_relu", impl=impl)
        y.backward(grad)
        outs.append((y, xs.grad, zs.grad))
    for name, got, want in zip(("y", "dx", "dz"), outs[0], outs[1]):
        _close(got, want, torch.float32, name)


def test_module_mode_picks_the_path():
    """ZConcatConv2d(mode=...) runs the path it names (the outputs alone cannot tell: both are
    right): the concatenation-free op, or the fused concatenation followed by a plain conv."""
    x, z = _inputs(2, 3, 6, 4, 2, torch.float32)
    x.requires_grad_()
    layer = ZConcatConv2d(3, 2, 4, impl="triton")
    names = {}
    for mode in ("concat_free", "fused_concat"):
        layer.mode = mode  # a plain attribute: switching a built network in place works
        y = layer(x, z)
        names[mode] = [type(f).__name__ for f in (y.grad_fn, y.grad_fn.next_functions[0][0])]
    assert names["concat_free"] == ["ZConcatConvFunctionBackward", "AccumulateGrad"]
    assert names["fused_concat"] == ["ConvolutionBackward0", "ZConcatActFunctionBackward"]


def _by_torch_fp64(x, z, weight, bias, stride, padding, slope=0.2):
    """conv2d(leaky_relu(cat(x, tile z))) in float64, written with plain torch ops."""
    x, z = x.double(), z.double()
    cat = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
    return F.conv2d(F.leaky_relu(cat, slope), weight.double(), None if bias is None else bias.double(), stride, padding)


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_strided_bias_and_weight(mode, poisoned):
    """A bias (and weight) that are views with strides other than the dense ones, e.g. a column of
    a CO x 2 tensor: the z term's kernel read bias[o] at bias + o, another channel's value."""
    x, z = _inputs(2, 3, 6, 5, 2, torch.float32)
    wb = torch.randn(4, 5, 4, 4, 2)
    bb = torch.randn(4, 2)
    grad = torch.randn(2, 4, 3, 2)
    leaves = [t.clone().requires_grad_() for t in (x, z, wb, bb)]
    xs, zs, ws, bs = leaves
    y = z_concat_conv(xs, zs, ws[..., 1], bs[:, 1], impl="triton", mode=mode)
    y.backward(grad)
    want = [t.double().requires_grad_() for t in (x, z, wb, bb)]
    expected = _by_torch_fp64(want[0], want[1], want[2][..., 1], want[3][:, 1], 2, 1)
    expected.backward(grad.double())
    _close(y, expected.detach(), torch.float32, "output")
    for name, got, exp in zip(("x", "z", "weight", "bias"), leaves, want):
        _close(got.grad, exp.grad, torch.float32, f"grad {name}")


@pytest.mark.parametrize("slope", [0.2, 0.05])
@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_functional_with_no_z_channels(mode, slope, poisoned):
    """z of N x 0 (nz = 0, as ZConcatConv2d allows) through the functional op: the bias gradient
    came from the z side's last kernel, launched once per z channel, i.e. never (uninitialised
    memory, NaN under the poison) while the output and the other gradients were right. A slope other
    than the default's: the path without a z side takes the one given."""
    x = torch.randn(2, 3, 6, 5)
    z = torch.randn(2, 0)
    w, b = torch.randn(4, 3, 4, 4), torch.randn(4)
    grad = torch.randn(2, 4, 3, 2)
    leaves = [t.clone().requires_grad_() for t in (x, z, w, b)]
    y = z_concat_conv(*leaves, impl="triton", mode=mode, slope=slope)
    y.backward(grad)
    want = [t.double().requires_grad_() for t in (x, z, w, b)]
    expected = _by_torch_fp64(*want, 2, 1, slope)
    expected.backward(grad.double())
    _close(y, expected.detach(), torch.float32, "output")
    assert leaves[1].grad is None or leaves[1].grad.shape == (2, 0)  # z holds nothing to differentiate
    for name, got, exp in zip(("x", "weight", "bias"), leaves[:1] + leaves[2:], want[:1] + want[2:]):
        _close(got.grad, exp.grad, torch.float32, f"grad {name}")


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_x_with_no_channels(mode, poisoned):
    """x of N x 0 x H x W (ZConcatConv2d(0, nz, ...): a conv of the tiled code alone on x's plane),
    which the reference takes: the concatenation-free path convolved x's 0 channels, for which
    F.conv2d returns N x 0 x OH x OW (torch 2.13), and failed adding z's term into that ("shape
    '[0, 3, 3]' is invalid")."""
    x, z = torch.randn(2, 0, 6, 5), torch.randn(2, 2)
    w, b = torch.randn(4, 2, 4, 4), torch.randn(4)
    grad = torch.randn(2, 4, 3, 2)
    leaves = [t.clone().requires_grad_() for t in (x, z, w, b)]
    y = z_concat_conv(*leaves, impl="triton", mode=mode)
    y.backward(grad)
    want = [t.double().requires_grad_() for t in (x, z, w, b)]
    expected = _by_torch_fp64(*want, 2, 1)
    expected.backward(grad.double())
    _close(y, expected.detach(), torch.float32, "output")
    assert leaves[0].grad.shape == x.shape
    for name, got, exp in zip(("z", "weight", "bias"), leaves[1:], want[1:]):
        _close(got.grad, exp.grad, torch.float32, f"grad {name}")


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_empty_batch(mode, poisoned):
    """A batch of 0 samples, which nn.Conv2d takes (a filtered sub-batch): an empty output and zero
    gradients for the weight and bias. The concatenation-free backward divided by the batch size
    when planning its launch (ZeroDivisionError)."""
    layer = ZConcatConv2d(3, 2, 4, kernel_size=3, stride=1, padding=1, impl="triton", mode=mode)
    x, z = torch.randn(0, 3, 5, 4, requires_grad=True), torch.randn(0, 2, requires_grad=True)
    y = layer(x, z)
    assert y.shape == (0, 4, 5, 4)
    y.sum().backward()
    assert x.grad.shape == x.shape and z.grad.shape == z.shape
    assert torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))
    assert torch.equal(layer.bias.grad, torch.zeros_like(layer.bias))



@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_empty_batch_every_entry_point(impl, poisoned):
    """A batch of 0 samples through every face (z_concat_act, z_concat_conv in both modes,
    ZConcatConv2d in both modes), in both layouts, against torch.cat + nn.functional.conv2d on the
    same empty batch: outputs of the reference's shape and dtype, empty dx and dz, zero dweight and
    dbias (the reference's sums over no sample)."""
    w, b = torch.randn(4, 5, 3, 3), torch.randn(4)

    def plain(x, z, weight=None, bias=None):
        cat = F.leaky_relu(torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1), 0.2)
        return cat if weight is None else F.conv2d(cat, weight, bias, 1, 1)

    for fmt in (torch.contiguous_format, CL):
        x, z = torch.randn(0, 3, 5, 4).contiguous(memory_format=fmt), torch.randn(0, 2)
        # (name, the face on (x, z, weight, bias) leaves, whether it is a conv)
        faces = [("z_concat_act", lambda x, z, w, b: z_concat_act(x, z, impl=impl), False)]
        for mode in ("concat_free", "fused_concat"):
            faces.append((f"z_concat_conv {mode}", lambda x, z, w, b, mode=mode: z_concat_conv(
                x, z, w, b, stride=1, padding=1, impl=impl, mode=mode), True))
            faces.append((f"ZConcatConv2d {mode}", lambda x, z, w, b, mode=mode: torch.func.functional_call(
                ZConcatConv2d(3, 2, 4, kernel_size=3, stride=1, padding=1, impl=impl, mode=mode),
                {"weight": w, "bias": b}, (x, z)), True))
        for name, face, conv in faces:
            what = f"{name} {fmt}"
            leaves = [t.clone().requires_grad_() for t in (x, z, w, b)]
            want = [t.clone().requires_grad_() for t in (x, z, w, b)]
            y = face(*leaves)
            expected = plain(*want) if conv else plain(*want[:2])
            assert y.shape == expected.shape and y.dtype == expected.dtype, what
            y.backward(torch.ones_like(y))
            expected.backward(torch.ones_like(expected))
            for leaf, ref in zip(leaves if conv else leaves[:2], want):
                assert leaf.grad is not None and torch.equal(leaf.grad, ref.grad), what


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
def test_inputs_made_under_inference_mode(mode, poisoned):
    """x and z made under torch.inference_mode (a batch prepared for sampling), then used to train
    the layer: the reference concatenates them into a new tensor, which autograd may save, while the
    concatenation-free path saved x itself, which it refuses ('Inference tensors cannot be saved for
    backward'). Outputs and parameter gradients of the reference."""
    with torch.inference_mode():
        x, z = torch.randn(2, 3, 6, 5), torch.randn(2, 2)
    ref = ZConcatConv2d(3, 2, 4, impl="ref")
    fast = ZConcatConv2d(3, 2, 4, impl="triton", mode=mode)
    fast.load_state_dict(ref.state_dict())
    grad = torch.randn(2, 4, 3, 2)
    for layer in (ref, fast):
        layer(x, z).backward(grad)
    _close(fast(x, z), ref(x, z), torch.float32, "output")
    for name in ("weight", "bias"):
        _close(getattr(fast, name).grad, getattr(ref, name).grad, torch.float32, f"grad {name}")


# ---------------------------------------------------------------------------------------------
# Gradient penalties: a backward with create_graph=True through the kernels (see kernels/_twoface.py)

ACTS = ("none", "relu", "leaky_relu", "elu")


@pytest.mark.parametrize("act", ACTS)
def test_gradgradcheck_float64(act):
    """Second derivatives through the Triton faces (the create_graph backward raised 'first order')."""
    x, z = _inputs(2, 2, 3, 4, 2, torch.float64)
    w = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    args = [t.requires_grad_() for t in (x, z, w, b)]
    assert torch.autograd.gradgradcheck(
        lambda *a: z_concat_conv(*a, stride=2, padding=1, act=act, impl="triton"), args, fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda a, b: z_concat_act(a, b, act, impl="triton"), args[:2],
                                        fast_mode=True)


def _z_critic(impl, act, mode="concat_free", fmt=torch.contiguous_format):
    """A conditional critic of the kernels' layers: z injection, fused norm + activation, conv."""
    torch.manual_seed(0)
    inject = ZConcatConv2d(3, 2, 4, act=act, impl=impl, mode=mode)
    norm = InstanceNormAct2d(4, affine=True, act=act, impl=impl)
    with torch.no_grad():  # away from the initial 1 and 0
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    head = nn.Conv2d(4, 1, 3)
    return nn.ModuleList([inject, norm, head]).to(memory_format=fmt)


def _z_critic_out(net, x, z):
    return net[2](net[1](net[0](x, z))).flatten(1).mean(1)


@pytest.mark.parametrize("mode", ["concat_free", "fused_concat"])
@pytest.mark.parametrize("act", ACTS)
def test_r1_penalty_through_z_injection_equals_ref(act, mode, poisoned):
    """An R1 penalty |d D(x, z) / d(x, z)|^2: its gradients w.r.t. x, z and every parameter through
    the Triton layers equal the reference's (fp32), in both layouts."""
    for fmt in (torch.contiguous_format, CL):
        x, z = _inputs(2, 3, 8, 8, 2, torch.float32, fmt)
        grads = []
        for impl in ("triton", "ref"):
            net = _z_critic(impl, act, mode, fmt)
            xi, zi = x.clone().requires_grad_(), z.clone().requires_grad_()
            gx, gz = torch.autograd.grad(_z_critic_out(net, xi, zi).sum(), [xi, zi], create_graph=True)
            penalty = gx.pow(2).sum() + gz.pow(2).sum()
            grads.append(torch.autograd.grad(penalty, [xi, zi, *net.parameters()], allow_unused=True,
                                             materialize_grads=True))
        assert grads[1][0].abs().sum() > 0 and grads[1][2].abs().sum() > 0  # x's and the z conv weight's
        for i, (got, want) in enumerate(zip(*grads)):
            _close(got, want, torch.float32, f"{act} {mode} {fmt} penalty gradient {i}")


def _wgan_gp_grads(impl, real, fake, z, alpha):
    """One WGAN-GP critic step: D(fake) - D(real) + 10 (|grad D(interpolate)| - 1)^2; the gradients
    of every parameter."""
    torch.manual_seed(0)
    net = nn.ModuleList([ZConcatConv2d(3, 2, 8, impl=impl), InstanceNormAct2d(8, impl=impl, double_backward=True),
                         ZConcatConv2d(8, 2, 8, impl=impl, mode="fused_concat"),
                         InstanceNormAct2d(8, affine=True, act="relu", impl=impl), nn.Conv2d(8, 1, 3)])

    def critic(x):
        return net[4](net[3](net[2](net[1](net[0](x, z)), z))).flatten(1).mean(1)

    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_()
    (g,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    penalty = (g.flatten(1).norm(dim=1) - 1).pow(2).mean()
    loss = critic(fake).mean() - critic(real).mean() + 10 * penalty
    loss.backward()
    return [p.grad for p in net.parameters()]


def test_wgan_gp_step_equals_ref(poisoned):
    """A WGAN-GP critic made of the kernels' layers (z injection in both modes, LeakyReLU norms
    without affine parameters kept twice differentiable, an affine ReLU norm) gets the parameter
    gradients of the same critic with impl='ref'."""
    torch.manual_seed(1)
    real, fake = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    z, alpha = torch.randn(2, 2), torch.rand(2, 1, 1, 1)
    got, want = (_wgan_gp_grads(impl, real, fake, z, alpha) for impl in ("triton", "ref"))
    # (the z convs' biases get zero: a norm follows each)
    assert len(got) == len(want) == 8 and all(w.abs().sum() > 0 for w in want[::2])  # the weights
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, torch.float32, f"WGAN-GP parameter gradient {i}")


@pytest.fixture
def loose_matmuls():
    """The fp32 matmul precision of many training scripts (TF32 on a GPU; bf16 in oneDNN on CPUs that have it),
    put back after. Through set_float32_matmul_precision: monkeypatching allow_tf32 fails on teardown (no_tf32)."""
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def test_the_zterm_rows_run_no_matmul():
    """What the GPU case below measures, seen on the CPU: the z term's rows are summed without a matmul (whose fp32
    precision follows the user's TF32 setting on a GPU; this CPU's ignores it, so values alone cannot tell)."""
    from bicyclegan.kernels import zinject_triton as zt

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))
    N, CO, H, W, K, S, P = 2, 3, 12, 10, 4, 2, 1
    geo = zt._geometry((K, K), (S, S), (P, P), H, W)
    q = torch.randn(N, CO * K * K)
    with Ops() as ops:
        rows = zt._zterm_rows(q, geo, N, CO, (H + 2 * P - K) // S + 1)
    assert rows.shape == (N * CO, (H + 2 * P - K) // S + 1, K)
    assert not ops.seen & {"mm", "bmm", "matmul", "addmm", "baddbmm"}, ops.seen


@pytest.mark.parametrize("device", ["cpu", pytest.param(CUDA, marks=pytest.mark.gpu)])
@pytest.mark.parametrize("precision", ["high", "medium"])
def test_zterm_add_is_fp32_exact_whatever_the_matmul_precision(device, precision, loose_matmuls, poisoned):
    """The z term summed its taps per row with an fp32 matmul, which set_float32_matmul_precision("high")
    (or allow_tf32) makes TF32 on a GPU: ~1e-3 relative off. It must be fp32's whatever the user set. (This
    CPU's matmuls ignore the setting, so only the gpu run can fail on a matmul; the cpu one guards the rest.)"""
    from bicyclegan.kernels import zinject_triton as zt
    torch.set_float32_matmul_precision(precision)
    N, CO, H, W, K, S, P = 2, 24, 12, 10, 4, 2, 1
    geo = zt._geometry((K, K), (S, S), (P, P), H, W)
    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(N, CO * K * K, generator=gen)  # full fp32 mantissas: TF32 keeps 10 bits of them
    y = torch.zeros(N, CO, OH, OW, device=device)
    zt._zterm_add(y, q.to(device), None, geo)
    # float64: each output position adds Q's taps that land inside the image (unfold of an all-ones image: 0/1)
    valid = F.unfold(torch.ones(1, 1, H, W, dtype=torch.float64), (K, K), padding=P, stride=S)[0]
    want = torch.einsum("nok,kl->nol", q.double().view(N, CO, K * K), valid).view(N, CO, OH, OW)
    torch.testing.assert_close(y.double().cpu(), want, rtol=1e-6, atol=1e-6 * want.abs().max().item())


# nn.Conv2d's dilation and groups, taken by ZConcatConv2d and z_concat_conv (was: "got an unexpected keyword
# argument 'dilation'"), against nn.Conv2d on the concatenation, in values and every gradient.
@pytest.mark.parametrize("impl,mode", [("ref", "concat_free"), ("triton", "concat_free"), ("triton", "fused_concat")])
@pytest.mark.parametrize("kernel_size,padding,dilation,groups", [
    (3, 2, 2, 1), (4, (3, 1), (2, 1), 1), (3, 1, 1, 2), (3, "same", (2, 1), 5), (1, 0, 1, 10)])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
def test_dilation_and_groups_as_nn_conv2d(impl, mode, kernel_size, padding, dilation, groups, fmt, poisoned):
    C, nz, out = 6, 4, 10  # (groups 5 and 10: z's channels shared with x's by one group, and groups of one channel)
    x, z = _inputs(3, C, 9, 7, nz, torch.float32, fmt)
    conv = nn.Conv2d(C + nz, out, kernel_size, 1, padding, dilation, groups).to(memory_format=fmt)
    layer = ZConcatConv2d(C, nz, out, kernel_size, 1, padding, impl=impl, mode=mode, dilation=dilation,
                          groups=groups).to(memory_format=fmt)
    layer.load_state_dict(conv.state_dict())
    for x_grad in (True, False):  # (x without a gradient: the reference's z-term split takes neither)
        xx, zz = x.clone().requires_grad_(x_grad), z.clone().requires_grad_()
        xr, zr = x.clone().requires_grad_(x_grad), z.clone().requires_grad_()
        expected = conv(F.leaky_relu(torch.cat([xr, zr[:, :, None, None].expand(-1, -1, 9, 7)], 1), 0.2))
        layer.zero_grad(), conv.zero_grad()
        y = layer(xx, zz)
        grad = torch.randn_like(expected)
        y.backward(grad), expected.backward(grad)
        assert y.shape == expected.shape and y.stride() == expected.stride()
        _close(y, expected, torch.float32, "output")
        for name, got, want in (("x", xx.grad, xr.grad), ("z", zz.grad, zr.grad), ("weight", layer.weight.grad,
                                conv.weight.grad), ("bias", layer.bias.grad, conv.bias.grad)):
            if want is None:
                assert got is None, name
            else:
                _close(got, want, torch.float32, f"grad {name} (x_grad {x_grad})")
    _close(z_concat_conv(x, z, conv.weight, conv.bias, 1, padding, impl=impl, mode=mode, dilation=dilation,
                         groups=groups), expected, torch.float32, "functional")


def test_a_layer_pickled_whole_before_dilation_and_groups_computes_as_it_did():
    layer = ZConcatConv2d(4, 2, 6, impl="ref")
    x, z = torch.randn(2, 4, 8, 8), torch.randn(2, 2)
    want = layer(x, z)
    state = layer.__getstate__()
    del state["dilation"], state["groups"]  # (what torch.save(layer) of an earlier version holds)
    old = ZConcatConv2d.__new__(ZConcatConv2d)
    old.__setstate__(state)
    torch.testing.assert_close(old(x, z), want, rtol=0, atol=0)
    assert "dilation" not in repr(old)



def test_repr_shows_slope_and_a_missing_bias():
    """A layer's repr says what it computes: LeakyReLU's slope (as InstanceNormAct2d's does) and
    bias=False (as nn.Conv2d's does). Both were left out, so layers of slopes 0.2 and 0.01, with and
    without a bias, printed alike."""
    shown = repr(ZConcatConv2d(4, 2, 6, slope=0.01, bias=False))
    assert shown.endswith("padding=1, bias=False, act=leaky_relu, slope=0.01, impl=auto, mode=concat_free)")
    assert "slope" not in repr(ZConcatConv2d(4, 2, 6, act="relu")) and "bias" not in repr(ZConcatConv2d(4, 2, 6))

def test_dilation_and_groups_in_repr_and_refused_by_name():
    assert "dilation=2, groups=2" in repr(ZConcatConv2d(4, 2, 6, 3, 1, 2, dilation=2, groups=2))
    assert "dilation" not in repr(ZConcatConv2d(4, 2, 6)) and "groups" not in repr(ZConcatConv2d(4, 2, 6))
    with pytest.raises(ValueError, match=r"ZConcatConv2d: groups \(4\) must divide in_channels \+ nz \(4 \+ 2\) "
                                         r"and out_channels \(6\)"):
        ZConcatConv2d(4, 2, 6, groups=4)
    with pytest.raises(ValueError, match=r"ZConcatConv2d: groups must be an int >= 1, got 0"):
        ZConcatConv2d(4, 2, 6, groups=0)
    with pytest.raises(ValueError, match=r"ZConcatConv2d: dilation must be an int >= 1 or a pair of them, got 1\.5"):
        ZConcatConv2d(4, 2, 6, dilation=1.5)
    with pytest.raises(ValueError, match=r"ZConcatConv2d: padding 'same' needs stride 1 and odd kernel sides \(got "
                                         r"kernel_size 2, stride 1, dilation 3: dilation x \(side - 1\) must be "
                                         r"even\)"):
        ZConcatConv2d(4, 2, 6, 2, 1, "same", dilation=3)  # (the taps reach 3: nn.Conv2d pads 1 and 2)
    assert ZConcatConv2d(4, 2, 6, 4, 1, "same", dilation=2).padding == (3, 3)  # (the taps reach 6: even)
    x, z = torch.randn(2, 4, 6, 6), torch.randn(2, 2)
    with pytest.raises(ValueError, match=r"z_concat_conv: weight \(6, 6, 3, 3\) must be out x \(in \+ nz\) / groups "
                                         r"\(2\), out divisible by groups, x kh x kw"):
        z_concat_conv(x, z, torch.randn(6, 6, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"z_concat_conv: groups must be an int >= 1, got True"):
        z_concat_conv(x, z, torch.randn(6, 6, 3, 3), groups=True)


def test_dilation_and_groups_of_numpy_ints_as_nn_conv2d_takes_them():
    """nn.Conv2d takes numpy's ints (as int_pair does): ZConcatConv2d computed with them, and its repr failed
    ("The truth value of an array with more than one element is ambiguous": np.int64(2) == (1, 1) is an array)."""
    np = pytest.importorskip("numpy")
    for dilation, shown in ((np.int64(2), "dilation=2"), ([np.int64(2), 1], "dilation=(2, 1)")):
        layer = ZConcatConv2d(4, 2, 6, 3, 1, 2, impl="ref", dilation=dilation, groups=np.int64(2))
        conv = nn.Conv2d(6, 6, 3, 1, 2, dilation, 2)
        layer.load_state_dict(conv.state_dict())
        x, z = torch.randn(2, 4, 8, 8), torch.randn(2, 2)
        torch.testing.assert_close(layer(x, z), conv(torch.cat([F.leaky_relu(x, 0.2), F.leaky_relu(
            z[:, :, None, None].expand(-1, -1, 8, 8), 0.2)], 1)))
        assert f"padding=2, {shown}, groups=2, act=" in repr(layer)
