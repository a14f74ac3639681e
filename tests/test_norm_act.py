"""Fused InstanceNorm + activation: the Triton kernels (single-pass, looped and split paths, forward
and backward) against the PyTorch reference; the drop-in module; fuse_norm_act; input checks.

On a CPU-only machine the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1);
the "cuda" variants are marked gpu and run the compiled kernels on a GPU machine.
"""
import copy
import inspect
import math

import pytest
import torch
import torch.nn as nn

from bicyclegan.kernels import InstanceNormAct2d, fuse_norm_act, instance_norm_act, instance_norm_act_ref
from bicyclegan.kernels._impl import interpreting

TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}
CL = torch.channels_last
NCHW = torch.contiguous_format
ACTS = ("none", "relu", "leaky_relu", "elu")
DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(not interpreting(), reason="Triton interpreter is off")),
    pytest.param("cuda", marks=pytest.mark.gpu),
]


@pytest.fixture(autouse=True)
def poisoned(monkeypatch):
    """Every buffer a kernel should fill starts as NaN, so a skipped element fails the comparison."""
    from bicyclegan.kernels import _triton_common
    monkeypatch.setattr(_triton_common, "POISON", True)


@pytest.fixture
def no_tf32(monkeypatch):
    # The fuse test's convs on a GPU: TF32 would make the two networks differ by ~1e-3.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _close(actual, expected, dtype, what, equal_nan=False):
    tol = TOL[dtype]
    finite = expected[expected.isfinite()]
    scale = max(1.0, finite.abs().max().item()) if finite.numel() else 1.0
    torch.testing.assert_close(actual.float(), expected.float(), rtol=tol, atol=tol * scale, equal_nan=equal_nan,
                               msg=lambda m: f"{what}: {m}")


def _triton(**tiling):
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    return lambda x, act, slope, w, b: instance_norm_act_triton(x, act, slope, 1e-5, w, b, **tiling)


def _ref(x, act, slope, w, b):
    return instance_norm_act_ref(x, act, slope, 1e-5, w, b)


def _run(fn, x, act, slope, w, b, grad, dtype=None):
    """Output and (dx, dweight, dbias) of fn; dtype casts the inputs first (the fp32 oracle)."""
    cast = (lambda t: t.detach().to(dtype)) if dtype else (lambda t: t.detach())
    x = cast(x).clone(memory_format=torch.preserve_format).requires_grad_()
    w = cast(w).clone().requires_grad_() if w is not None else None
    b = cast(b).clone().requires_grad_() if b is not None else None
    y = fn(x, act, slope, w, b)
    y.backward(cast(grad))
    return y, {"dx": x.grad, "dweight": w.grad if w is not None else None, "dbias": b.grad if b is not None else None}


def _inputs(shape, dtype, fmt, affine, device, offset=3.0):
    N, C, H, W = shape
    # A non-zero mean, so that a variance formula prone to cancellation would show.
    x = (torch.randn(shape, device=device) * 2 + offset).to(dtype).contiguous(memory_format=fmt)
    w = torch.randn(C, device=device) if affine else None
    b = torch.randn(C, device=device) if affine else None
    grad = torch.randn(shape, device=device).to(dtype)  # NCHW even for channels_last y: backward converts
    return x, w, b, grad


def _check_against_ref(shape, act, affine, fmt, dtype, device, slope=0.2, **tiling):
    x, w, b, grad = _inputs(shape, dtype, fmt, affine, device)
    y, grads = _run(_triton(**tiling), x, act, slope, w, b, grad)
    y_ref, grads_ref = _run(_ref, x, act, slope, w, b, grad, dtype=torch.float32)
    assert y.dtype == dtype and y.shape == x.shape
    assert y.is_contiguous(memory_format=fmt), "output must keep the input's memory format"
    assert grads["dx"].dtype == dtype and grads["dx"].is_contiguous(memory_format=fmt)
    _close(y, y_ref, dtype, "y")
    for name, g in grads.items():
        if grads_ref[name] is None:
            assert g is None, name
        else:
            _close(g, grads_ref[name], dtype, name)


# (shape, tiling): single pass (incl. 1 x 1, C = 1, masked channel tiles), looped (block_hw forced
# below the plane size) and split (several programs per plane, partial statistics merged).
CASES = [
    pytest.param((1, 1, 1, 1), {}, id="1x1x1x1"),
    pytest.param((2, 3, 3, 5), {}, id="single-2x3x3x5"),
    pytest.param((3, 5, 7, 9), {}, id="single-3x5x7x9"),
    pytest.param((1, 5, 7, 9), {"block_hw": 8}, id="looped-1x5x7x9"),
    pytest.param((2, 3, 7, 9), {"block_hw": 8, "split": 3}, id="split-2x3x7x9"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
@pytest.mark.parametrize("shape,tiling", CASES)
@pytest.mark.parametrize("device", DEVICES)
def test_matches_reference(device, shape, tiling, affine, fmt, dtype):
    for act in ACTS:
        _check_against_ref(shape, act, affine, fmt, dtype, device, **tiling)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_and_partial_affine(device):
    for fmt in (NCHW, CL):
        _check_against_ref((2, 3, 5, 7), "leaky_relu", True, fmt, torch.float16, device)
    x, w, _, grad = _inputs((2, 3, 4, 5), torch.float32, NCHW, True, device)
    for wb in ((w, None), (None, w)):
        y, grads = _run(_triton(), x, "relu", 0.0, *wb, grad)
        y_ref, grads_ref = _run(_ref, x, "relu", 0.0, *wb, grad)
        _close(y, y_ref, torch.float32, "y")
        for name in grads:
            if grads_ref[name] is not None:
                _close(grads[name], grads_ref[name], torch.float32, name)


@pytest.mark.parametrize("device", DEVICES)
def test_poison_catches_unwritten_output(device):
    """The poison really shows skipped elements: launch the forward on half the samples."""
    from bicyclegan.kernels import norm_act_triton as nat
    x = torch.randn(2, 3, 4, 5, device=device)
    x, _, strides = nat._layout(x)
    cfg = nat._config(x, False, variant="relu")
    cfg["grid"] = (1,) + cfg["grid"][1:]
    y, mean, _ = nat._forward(x, None, None, "relu", 0.0, 1e-5, strides, cfg)
    assert y[0].isfinite().all() and y[1].isnan().all() and mean[1].isnan().all()


@pytest.mark.parametrize("device", DEVICES)
def test_numerics_large_offset(device):
    """Mean 1000 and std 1: compare with a float64 oracle on the same fp32 values, looped path too."""
    x = (torch.randn(2, 3, 9, 11, device=device, dtype=torch.float64) + 1000).float()
    expected = instance_norm_act_ref(x.double(), "none")
    for tiling in ({}, {"block_hw": 16}, {"block_hw": 16, "split": 2}):
        y = _triton(**tiling)(x, "none", 0.0, None, None)
        torch.testing.assert_close(y.double(), expected, rtol=0, atol=2e-3)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the interpreter's numpy
@pytest.mark.parametrize("device", DEVICES)
def test_constant_plane_whose_mean_squared_overflows(device):
    """A constant plane of 3e19 (its mean squared passes fp32's range) is normalised to 0, so y is
    act(bias), as the single-pass plan gives: the looped and split plans' first merge multiplied
    mean * mean (inf) by a count of 0 and wrote NaN over the whole plane."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 3, 5, 7, device=device)
    x[1, 2] = 3e19
    w, b = torch.rand(3, device=device) + 0.5, torch.randn(3, device=device)
    expected = _by_formula(x, "elu", 0.0, 1e-5, w, b)
    assert expected.isfinite().all()
    for tiling in ({}, {"block_hw": 8}, {"block_hw": 8, "split": 3}):
        y = instance_norm_act_triton(x, "elu", 0.0, 1e-5, w, b, **tiling)
        _close(y, expected, torch.float32, f"y {tiling}")


@pytest.mark.parametrize("device", DEVICES)
def test_non_dense_input_and_auto_impl(device):
    x = torch.randn(2, 3, 10, 7, device=device)[:, :, ::2]
    y = instance_norm_act(x, "leaky_relu", 0.2, impl="auto")
    assert y.is_contiguous()
    _close(y, instance_norm_act_ref(x, "leaky_relu", 0.2), torch.float32, "y")


@pytest.mark.parametrize("device", DEVICES)
def test_saves_output_only_when_invertible(device):
    x = torch.randn(2, 3, 4, 5, device=device, requires_grad=True)
    y = instance_norm_act(x, "leaky_relu", 0.2, impl="triton")
    assert y.grad_fn.saved_tensors[0].data_ptr() == y.data_ptr()
    for act, slope, affine in (("relu", 0.0, False), ("none", 0.0, False), ("leaky_relu", 0.2, True)):
        w = torch.ones(3, device=device) if affine else None
        y = instance_norm_act(x, act, slope, weight=w, bias=w, impl="triton")
        assert y.grad_fn.saved_tensors[0].data_ptr() == x.data_ptr(), (act, affine)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's numpy
@pytest.mark.parametrize("device", DEVICES)
def test_nan_and_inf_propagate(device):
    for bad in (float("nan"), float("inf")):
        for tiling in ({}, {"block_hw": 4, "split": 2}):
            x, _, _, grad = _inputs((2, 3, 3, 5), torch.float32, NCHW, False, device)
            x[0, 1, 2, 3] = bad
            for act in ACTS:
                y, grads = _run(_triton(**tiling), x, act, 0.2, None, None, grad)
                y_ref, grads_ref = _run(_ref, x, act, 0.2, None, None, grad)
                assert y[0, 1].isnan().all() and y[1].isfinite().all()
                _close(y, y_ref, torch.float32, f"y {act} {bad}", equal_nan=True)
                _close(grads["dx"], grads_ref["dx"], torch.float32, f"dx {act} {bad}", equal_nan=True)


@pytest.mark.parametrize("act", ACTS)
def test_reference_gradcheck(act):
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: instance_norm_act_ref(x, act, 0.2, 1e-5, w, b), (x, w, b))


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("device", DEVICES)
def test_module_state_dict_round_trip(device, affine):
    norm = nn.InstanceNorm2d(4, affine=affine).to(device)
    if affine:
        with torch.no_grad():
            norm.weight.normal_()
            norm.bias.normal_()
    fused = InstanceNormAct2d(4, affine=affine, act="leaky_relu", slope=0.1, impl="triton").to(device)
    fused.load_state_dict(norm.state_dict())
    assert list(fused.state_dict()) == list(norm.state_dict())
    nn.InstanceNorm2d(4, affine=affine).to(device).load_state_dict(fused.state_dict())
    x = torch.randn(2, 4, 5, 3, device=device)
    _close(fused(x), nn.functional.leaky_relu(norm(x), 0.1), torch.float32, "y")


@pytest.mark.parametrize("affine", [False, True])
def test_reset_parameters_as_instancenorm2d(affine):
    # init code that calls reset_parameters() on every layer that has it (the fused layer had none)
    fused, norm = InstanceNormAct2d(3, affine=affine), nn.InstanceNorm2d(3, affine=affine)
    for m in (fused, norm):
        for p in m.parameters():
            nn.init.normal_(p)
        m.reset_parameters()
    assert list(fused.state_dict()) == list(norm.state_dict())
    for k, v in norm.state_dict().items():
        assert torch.equal(fused.state_dict()[k], v), k
    assert not affine or torch.equal(fused.weight, torch.ones(3)) and torch.equal(fused.bias, torch.zeros(3))



def test_a_layer_pickled_whole_before_double_backward_computes_as_it_did():
    """torch.save(layer) of a version before double_backward was taken (2026-12-03) holds no such
    attribute: the loaded layer failed in forward ("'InstanceNormAct2d' object has no attribute
    'double_backward'"; state_dicts were never affected). It defaults to False, as the class's."""
    layer = InstanceNormAct2d(3, affine=True, impl="ref")
    x = torch.randn(2, 3, 5, 4)
    want = layer(x)
    state = layer.__getstate__()
    del state["double_backward"]  # (what torch.save(layer) of that version holds)
    old = InstanceNormAct2d.__new__(InstanceNormAct2d)
    old.__setstate__(state)
    torch.testing.assert_close(old(x), want, rtol=0, atol=0)
    assert "double_backward" not in repr(old)

def test_module_repr():
    """nn.InstanceNorm2d's fields, then the activation's and impl."""
    for kw in (dict(affine=True), dict(momentum=None, track_running_stats=True, eps=1e-3)):
        fields = repr(nn.InstanceNorm2d(4, **kw)).removeprefix("InstanceNorm2d(").removesuffix(")")
        assert repr(InstanceNormAct2d(4, **kw)) == f"InstanceNormAct2d({fields}, act=leaky_relu, slope=0.2, impl=auto)"
    assert repr(InstanceNormAct2d(2, act="relu", impl="triton")).endswith(", act=relu, impl=triton)")


def _pix2pix_like():
    return nn.Sequential(
        nn.Conv2d(3, 4, 4, 2, 1),
        nn.InstanceNorm2d(4), nn.LeakyReLU(0.2, True),
        nn.Sequential(nn.Conv2d(4, 5, 3, 1, 1), nn.InstanceNorm2d(5, affine=True), nn.ReLU(True)),
        nn.Sequential(nn.Conv2d(5, 5, 3, 1, 1), nn.InstanceNorm2d(5, track_running_stats=True), nn.ReLU()),
        nn.Conv2d(5, 5, 3, 1, 1), nn.InstanceNorm2d(5), nn.Tanh(),
        nn.ConvTranspose2d(5, 3, 4, 2, 1),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_fuse_norm_act_matches_original(device, no_tf32):
    net = _pix2pix_like().to(device)
    with torch.no_grad():
        net[3][1].weight.normal_()
        net[3][1].bias.normal_()
    fused = fuse_norm_act(copy.deepcopy(net), impl="triton")
    assert isinstance(fused[1], InstanceNormAct2d) and fused[1].act == "leaky_relu" and fused[1].slope == 0.2
    assert isinstance(fused[2], nn.Identity)
    assert isinstance(fused[3][1], InstanceNormAct2d) and fused[3][1].act == "relu" and fused[3][1].affine
    assert type(fused[4][1]) is nn.InstanceNorm2d, "track_running_stats=True must be left alone"
    assert type(fused[6]) is nn.InstanceNorm2d, "InstanceNorm followed by Tanh is not fused"
    assert list(fused.state_dict()) == list(net.state_dict())
    x = torch.randn(2, 3, 14, 10, device=device)
    grad = torch.randn(2, 3, 14, 10, device=device)
    outs = []
    for model in (net, fused):
        xx = x.clone().requires_grad_()
        y = model(xx)
        y.backward(grad)
        outs.append((y, xx.grad, {k: p.grad for k, p in model.named_parameters()}))
    _close(outs[1][0], outs[0][0], torch.float32, "y")
    _close(outs[1][1], outs[0][1], torch.float32, "dx")
    assert outs[1][2].keys() == outs[0][2].keys()
    for k, g in outs[0][2].items():
        _close(outs[1][2][k], g, torch.float32, k)


@pytest.mark.parametrize("device", DEVICES)
def test_fuse_elu(device, no_tf32):
    """nn.ELU() (alpha 1, the reference's `--nl elu`) fuses; another alpha is a different function
    and stays as it is."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.InstanceNorm2d(4, affine=True), nn.ELU(),
                        nn.Conv2d(4, 4, 3, 1, 1), nn.InstanceNorm2d(4), nn.ELU(alpha=0.5)).to(device)
    with torch.no_grad():
        net[1].weight.normal_()
        net[1].bias.normal_()
    fused = fuse_norm_act(copy.deepcopy(net), impl="triton")
    assert isinstance(fused[1], InstanceNormAct2d) and fused[1].act == "elu" and isinstance(fused[2], nn.Identity)
    assert type(fused[4]) is nn.InstanceNorm2d and type(fused[5]) is nn.ELU, "ELU(alpha=0.5) must be left alone"
    x = torch.randn(2, 3, 6, 5, device=device)
    outs = []
    for model in (net, fused):
        xx = x.clone().requires_grad_()
        y = model(xx)
        y.backward(torch.ones_like(y))
        outs.append((y, xx.grad, model[1].weight.grad))
    for what, a, b in zip(("y", "dx", "dweight"), outs[1], outs[0]):
        _close(a, b, torch.float32, what)


def test_elu_reference_known_values():
    """ELU(alpha 1) after the norm, against values worked out by hand: x = (-1, 1) per plane
    normalises to (-1, 1) (eps aside), and ELU(-1) = e^-1 - 1."""
    x = torch.tensor([[[[-1.0, 1.0]]]])
    y = instance_norm_act_ref(x, "elu", eps=0.0)
    torch.testing.assert_close(y, torch.tensor([[[[math.exp(-1) - 1, 1.0]]]]))


def test_fuse_keeps_parameter_objects():
    net = _pix2pix_like()
    weight = net[3][1].weight
    assert fuse_norm_act(net) is net and net[3][1].weight is weight


def _critic(impl, act="leaky_relu", affine=True, **extra):
    """conv -> fused norm + activation -> conv, as a discriminator under a gradient penalty."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), InstanceNormAct2d(4, affine=affine, act=act, impl=impl, **extra),
                        nn.Conv2d(4, 1, 3))
    if affine:  # away from the initial 1 and 0, so that their second-order terms show
        with torch.no_grad():
            net[1].weight.uniform_(0.5, 1.5)
            net[1].bias.uniform_(-0.5, 0.5)
    return net


def _r1_grads(net, x):
    """The gradients of an R1-style penalty |d net(x) / dx|^2 w.r.t. the input and every parameter
    (the last conv's bias gets zero: the penalty does not depend on it)."""
    x = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    return torch.autograd.grad(gx.pow(2).sum(), [x, *net.parameters()], allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_penalty_reference_equals_unfused_layers(device, no_tf32):
    """The reference path gives the penalty gradients of nn.InstanceNorm2d + nn.LeakyReLU: the
    oracle of the kernels' twice-differentiable backward below."""
    x = torch.randn(2, 3, 8, 8, device=device)
    plain = _critic("ref").to(device)
    expected_net = nn.Sequential(plain[0], nn.InstanceNorm2d(4, affine=True), nn.LeakyReLU(0.2), plain[2]).to(device)
    expected_net[1].load_state_dict(plain[1].state_dict())
    for got, want in zip(_r1_grads(plain, x), _r1_grads(expected_net, x)):
        _close(got, want, torch.float32, "penalty gradient")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("act", ACTS)
def test_gradient_penalty_through_the_kernels_equals_ref(device, act, affine, no_tf32):
    """A backward with create_graph=True through the kernels raised ('first order ... impl=ref');
    now its gradients are differentiable, and a penalty's gradients w.r.t. the input and every
    parameter equal the reference's, for each activation, with and without affine parameters,
    in both layouts."""
    # LeakyReLU without affine parameters saves y unless told to keep x (see the refusal test).
    extra = {"double_backward": True} if act == "leaky_relu" and not affine else {}
    for fmt in (NCHW, CL):
        x = torch.randn(2, 3, 8, 8, device=device).to(memory_format=fmt)
        got = _r1_grads(_critic("triton", act, affine, **extra).to(device, memory_format=fmt), x)
        want = _r1_grads(_critic("ref", act, affine).to(device, memory_format=fmt), x)
        assert len(got) == len(want) == 7 - 2 * (not affine)
        assert want[0].abs().sum() > 0 and want[1].abs().sum() > 0  # the input's and the first conv's
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, torch.float32, f"{act} affine={affine} {fmt} penalty gradient {i}")


@pytest.mark.skipif(not interpreting(), reason="Triton interpreter is off")
@pytest.mark.parametrize("act", ACTS)
def test_gradgradcheck_float64(act):
    """Second derivatives through the Triton face, with and without affine parameters. The
    functional refuses float64 for the kernels (their statistics are fp32), so the launcher is
    called directly: the forward's rounding does not enter gradgradcheck, whose gradients and
    their derivatives come from the create_graph backward."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: instance_norm_act_triton(x, act, 0.2, 1e-5, w, b),
                                        (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda x: instance_norm_act_triton(x, act, 0.2, 1e-5, double_backward=True),
                                        (x,), fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_penalty_through_lrelu_without_affine_needs_double_backward(device, no_tf32):
    """The LeakyReLU layer without affine parameters saves its output y (the next layer keeps it):
    a create_graph backward, which needs x, says how to get it; first-order training is as before.
    The refusal comes from inside the penalty's torch.autograd.grad, so it names the layer by x's shape, and
    names every way to pass the flag, a built model's included (it named the constructor and the functional)."""
    x = torch.randn(2, 3, 8, 8, device=device)
    net = _critic("triton", affine=False).to(device)
    with pytest.raises(RuntimeError) as e:
        _r1_grads(net, x)
    assert str(e.value) == (
        "instance_norm_act: a backward with create_graph=True (a gradient penalty: R1, WGAN-GP; double backward) "
        "needs the layer's input x, and this LeakyReLU norm without affine parameters (x of shape (2, 4, 6, 6)) kept "
        "only its output y: the Triton path's default, which impl='auto' takes on CUDA tensors (the reference, which "
        "it takes on the CPU, keeps x). Pass double_backward=True: InstanceNormAct2d(..., double_backward=True), "
        "fuse_norm_act(model, double_backward=True), instance_norm_act(..., double_backward=True), or on a built "
        "model set m.double_backward = True for each InstanceNormAct2d m in model.modules() (one more "
        "activation-sized tensor kept per such layer, as nn.InstanceNorm2d + nn.LeakyReLU keep); or impl='ref'")
    y = net(x.clone().requires_grad_())
    y.sum().backward()
    net[1].double_backward = True  # a plain attribute: set on a built (e.g. fused) network
    assert "double_backward=True" in repr(net[1])
    for g, w in zip(_r1_grads(net, x), _r1_grads(_critic("ref", affine=False).to(device), x)):
        _close(g, w, torch.float32, "penalty gradient")


def test_fuse_norm_act_builds_layers_for_a_gradient_penalty():
    """fuse_norm_act(double_backward=True): a critic of nn.InstanceNorm2d + nn.LeakyReLU, fused, takes an R1
    penalty through the kernels at once (was: the refusal, then the flag set layer by layer), with the
    unfused critic's penalty gradients; without it the fused layers refuse, naming the flag."""
    def critic():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="double_backward=True"):
        _r1_grads(fuse_norm_act(critic(), impl="triton"), x)
    fused = fuse_norm_act(critic(), impl="triton", double_backward=True)
    assert fused[1].double_backward is True and fused[1].impl == "triton"
    for g, w in zip(_r1_grads(fused, x), _r1_grads(critic(), x)):
        _close(g, w, torch.float32, "penalty gradient")
    with pytest.raises(TypeError, match="fuse_norm_act: double_backward must be True or False, got 'yes'"):
        fuse_norm_act(critic(), double_backward="yes")


@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_saves_x_instead_of_y(device):
    """What each case keeps for backward: y for LeakyReLU without affine parameters, x with
    double_backward=True (and always x elsewhere); never both."""
    x = torch.randn(2, 4, 6, 6, device=device, requires_grad=True)

    def saved(**kw):
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            y = instance_norm_act(x, impl="triton", **kw)
        big = [t for t in kept if t.shape == x.shape]
        assert len(big) == 1, kw
        return big[0], y

    t, y = saved()
    assert t.data_ptr() == y.data_ptr()
    t, _ = saved(double_backward=True)
    assert t is x
    t, _ = saved(act="relu")
    assert t is x


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_negative_slope(impl):
    """LeakyReLU(-0.1): torch refuses the in-place version's backward, which the reference used."""
    x = torch.randn(2, 3, 5, 4, requires_grad=True)
    y = instance_norm_act(x, "leaky_relu", -0.1, impl=impl)
    grad = torch.randn_like(y)
    y.backward(grad)
    x2 = x.detach().clone().requires_grad_()
    expected = nn.functional.leaky_relu(nn.functional.instance_norm(x2), -0.1)
    expected.backward(grad)
    _close(y, expected, torch.float32, "y")
    _close(x.grad, x2.grad, torch.float32, "dx")


def test_fuse_leaves_custom_sequentials_and_hooked_layers_alone():
    class Tap(nn.Sequential):  # uses its children otherwise than in a chain
        def forward(self, x):
            outs = []
            for m in self:
                x = m(x)
                outs.append(x)
            return outs[0] + outs[1]

    class Plain(nn.Sequential):  # nn.Sequential's own forward: fused
        pass

    seen = []
    hooked = nn.Sequential(nn.InstanceNorm2d(3), nn.ReLU())
    hooked[1].register_forward_hook(lambda m, i, o: seen.append(o))
    model = nn.Sequential(Tap(nn.InstanceNorm2d(3), nn.ReLU()), hooked, Plain(nn.InstanceNorm2d(3), nn.ReLU()))
    x = torch.randn(2, 3, 6, 6)
    before = model(x)
    fuse_norm_act(model)
    assert type(model[0][0]) is nn.InstanceNorm2d and type(model[1][0]) is nn.InstanceNorm2d
    assert isinstance(model[2][0], InstanceNormAct2d) and isinstance(model[2][1], nn.Identity)
    seen.clear()
    torch.testing.assert_close(model(x), before)
    assert len(seen) == 1, "the hook still fires"



@pytest.mark.parametrize("register", ["register_state_dict_pre_hook", "register_load_state_dict_pre_hook",
                                      "register_load_state_dict_post_hook"])
def test_fuse_leaves_a_norm_with_state_dict_hooks_alone(register):
    """A state_dict or load_state_dict hook on the norm (a library's key renaming for old checkpoints)
    would stop firing with the norm replaced: such a pair is left alone as a forward hook's is. Only
    forward, backward and state_dict (post) hooks were looked at, so these three were dropped silently."""
    calls = []
    model = nn.Sequential(nn.InstanceNorm2d(3, affine=True), nn.ReLU())
    getattr(model[0], register)(lambda *args, **kwargs: calls.append(1))
    fuse_norm_act(model)
    assert type(model[0]) is nn.InstanceNorm2d and type(model[1]) is nn.ReLU
    model.load_state_dict(model.state_dict())
    assert calls, "the hook still fires"

def test_module_looks_like_instance_norm_to_inspecting_code():
    fused = InstanceNormAct2d(4, affine=True)
    norm = nn.InstanceNorm2d(4, affine=True)
    for name in ("track_running_stats", "running_mean", "running_var", "num_batches_tracked"):
        assert getattr(fused, name) == getattr(norm, name), name
    assert list(fused.state_dict()) == list(norm.state_dict()) == ["weight", "bias"]
    with pytest.raises(ValueError, match="InstanceNormAct2d: impl must be one of"):
        InstanceNormAct2d(4, impl="cuda")


def _init_norms(net):
    """Weight initialisation as GAN code writes it: every InstanceNorm2d with parameters, found by isinstance."""
    for m in net.modules():
        if isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def test_module_is_an_instancenorm2d_to_code_that_finds_norms():
    """Initialisation and freezing code that finds norm layers with isinstance reached nn.InstanceNorm2d
    and missed the fused layer (an nn.Module): its weight kept 1 and its parameters trained on."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), InstanceNormAct2d(4, affine=True, act="relu"))
    assert isinstance(net[1], nn.InstanceNorm2d)
    _init_norms(net)
    assert not torch.equal(net[1].weight, torch.ones(4))
    for m in net.modules():
        if isinstance(m, nn.InstanceNorm2d):
            m.requires_grad_(False)
    assert not any(p.requires_grad for p in net[1].parameters())


def test_module_takes_instancenorm2d_constructor_arguments():
    """The same positional arguments as nn.InstanceNorm2d (num_features, eps, momentum, affine,
    track_running_stats, device, dtype) give the same attributes, parameters and buffers; act, slope
    and impl follow by keyword; what else torch's takes (bias=False) passes through."""
    for args in ((3,), (3, 1e-3, 0.3, True), (3, 1e-3, None, True, True, "meta", torch.float64),
                 (3, 1e-5, 0.1, False, True)):
        norm, fused = nn.InstanceNorm2d(*args), InstanceNormAct2d(*args, act="elu", impl="ref")
        for name in ("num_features", "eps", "momentum", "affine", "track_running_stats"):
            assert getattr(fused, name) == getattr(norm, name), (args, name)
        want, got = dict(norm.state_dict(keep_vars=True)), dict(fused.state_dict(keep_vars=True))
        assert list(got) == list(want), args
        for k, v in want.items():
            assert (got[k].dtype, got[k].device, got[k].shape) == (v.dtype, v.device, v.shape), (args, k)
            assert type(got[k]) is type(v) and got[k].requires_grad == v.requires_grad, (args, k)
            if v.device.type != "meta":
                assert torch.equal(got[k], v), (args, k)
    if "bias" in inspect.signature(nn.InstanceNorm2d).parameters:  # (torch 2.13's; 2.11's has none)
        fused, norm = InstanceNormAct2d(3, affine=True, bias=False), nn.InstanceNorm2d(3, affine=True, bias=False)
        assert fused.bias is None and list(fused.state_dict()) == list(norm.state_dict()) == ["weight"]
    with pytest.raises(TypeError):
        InstanceNormAct2d(3, 1e-5, 0.1, False, False, None, None, "relu")  # act is a keyword


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_module_state_dict_as_instancenorm2d_with_running_stats(affine):
    """With track_running_stats=True the keys (running_mean, running_var, num_batches_tracked) and
    loading both ways; without, a file holding running statistics (PyTorch < 0.4) is refused with
    nn.InstanceNorm2d's message, strict or not (the plain module's was 'Unexpected key(s)', strict only)."""
    norm = nn.InstanceNorm2d(3, affine=affine, track_running_stats=True)
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2)
        norm.num_batches_tracked += 5
        for p in norm.parameters():
            p.normal_()
    fused = InstanceNormAct2d(3, affine=affine, track_running_stats=True)
    fused.load_state_dict(norm.state_dict())
    assert list(fused.state_dict()) == list(norm.state_dict())
    for k, v in norm.state_dict().items():
        assert torch.equal(fused.state_dict()[k], v), k
    nn.InstanceNorm2d(3, affine=affine, track_running_stats=True).load_state_dict(fused.state_dict())
    # a file of PyTorch < 0.4: running statistics and no version (a plain dict has no _metadata)
    old = {k: v for k, v in norm.state_dict().items() if k != "num_batches_tracked"}
    for layer in (nn.InstanceNorm2d(3, affine=affine), InstanceNormAct2d(3, affine=affine)):
        for strict in (True, False):
            with pytest.raises(RuntimeError, match="Unexpected running stats buffer.*track_running_stats=False"):
                layer.load_state_dict(old, strict=strict)


def _norm_then_act(norm, act, slope=0.2):
    return nn.Sequential(norm, {"none": nn.Identity(), "relu": nn.ReLU(), "elu": nn.ELU(),
                                "leaky_relu": nn.LeakyReLU(slope)}[act])


def _outputs_and_grads(layer, x, grad):
    xr = x.clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    y = layer(xr)
    y.backward(grad)
    return [y, xr.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("impl", ["auto", "ref"])
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_module_tracks_running_stats_as_instancenorm2d(affine, impl):
    """track_running_stats=True (refused before): in training mode the outputs, gradients and running
    statistics of nn.InstanceNorm2d + the activation step after step, momentum None included; in eval
    mode the running statistics normalise. impl='triton' is refused, whenever it is set."""
    for momentum in (0.1, None):
        for act in ("leaky_relu", "elu"):
            norm = nn.InstanceNorm2d(3, momentum=momentum, affine=affine, track_running_stats=True)
            fused = InstanceNormAct2d(3, momentum=momentum, affine=affine, track_running_stats=True, act=act,
                                      impl=impl)
            fused.load_state_dict(norm.state_dict())
            expected_net = _norm_then_act(norm, act)
            for step in range(3):
                if step == 2:
                    fused.eval()
                    expected_net.eval()
                x = torch.randn(2, 3, 4, 5) * (step + 1) + step
                grad = torch.randn(2, 3, 4, 5)
                for got, want in zip(_outputs_and_grads(fused, x, grad), _outputs_and_grads(expected_net, x, grad)):
                    torch.testing.assert_close(got, want)
                for k, v in norm.state_dict().items():
                    torch.testing.assert_close(fused.state_dict()[k], v, msg=lambda m, k=k: f"{k}: {m}")
    with pytest.raises(ValueError, match="impl='triton' computes instance statistics only"):
        InstanceNormAct2d(3, track_running_stats=True, impl="triton")
    fused = InstanceNormAct2d(3, track_running_stats=True)
    fused.impl = "triton"
    with pytest.raises(ValueError, match="impl='triton' computes instance statistics only"):
        fused(torch.randn(2, 3, 4, 5))


def _norm_float64(x, eps, slope=0.2):
    """(x as a float64 leaf, leaky_relu((x - mean) / sqrt(var + eps))) by hand, over each plane."""
    x = x.detach().double().requires_grad_()
    mean = x.mean((2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean((2, 3), keepdim=True)
    return x, torch.nn.functional.leaky_relu((x - mean) / torch.sqrt(var + eps), slope)


def _within_eps(got, want, dtype, what):
    # One unit of dtype's precision at the largest value: rounding the exact result costs half of one.
    scale = want.abs().max().item()
    torch.testing.assert_close(got.double(), want, rtol=0, atol=torch.finfo(dtype).eps * scale,
                               msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_the_cpu_fallback_normalises_half_precision_in_float32(dtype):
    """The PyTorch path on the CPU (impl="auto" there, and a CPU run under --amp bf16) handed a bf16 or fp16 x
    to torch's norm, which keeps the statistics in that dtype on the CPU: for nearly constant planes y was
    off by up to 0.5 and dx by ~1000 (the Triton path's fp32 statistics: rounding). Now within rounding of
    float64, and with running statistics too, whose buffers keep their dtype."""
    gen = torch.Generator().manual_seed(18)
    for spread in (1e-2, 2e-3):
        for eps in (1e-5, 0.0):
            x = (1 + torch.randn(2, 3, 6, 7, generator=gen) * spread).to(dtype)
            grad = torch.randn(2, 3, 6, 7, generator=gen).to(dtype)
            x64, y64 = _norm_float64(x, eps)
            y64.backward(grad.double())
            xr = x.clone().requires_grad_()
            y = instance_norm_act(xr, "leaky_relu", 0.2, eps, impl="ref")
            y.backward(grad)
            assert y.dtype == xr.grad.dtype == dtype
            _within_eps(y, y64, dtype, f"y spread={spread} eps={eps}")
            _within_eps(xr.grad, x64.grad, dtype, f"dx spread={spread} eps={eps}")
    # Running statistics, at batch 2 (torch.instance_norm) and 1 (torch.batch_norm), the buffers float32 (a
    # layer under autocast) or bf16/fp16 (a layer cast to the dtype).
    for layer_dtype in (torch.float32, dtype):
        for n in (2, 1):
            layer = InstanceNormAct2d(3, track_running_stats=True).to(layer_dtype)
            x = (1 + torch.randn(n, 3, 6, 7, generator=gen) * 1e-2).to(dtype)
            y = layer(x)
            xd = x.double()
            _within_eps(y, _norm_float64(x, 1e-5)[1], dtype, f"y, running statistics in {layer_dtype}, batch {n}")
            assert layer.running_mean.dtype == layer.running_var.dtype == layer_dtype
            expected = (0.1 * xd.mean((2, 3)).mean(0), 0.9 + 0.1 * xd.var((2, 3)).mean(0))
            for got, want in zip((layer.running_mean, layer.running_var), expected):
                _within_eps(got, want, layer_dtype, f"running statistics in {layer_dtype}, batch {n}")


@pytest.mark.parametrize("device", DEVICES)
def test_module_eval_mode_and_unbatched_input_as_instancenorm2d(device):
    """Without running statistics eval mode normalises by the instance's statistics, as in
    training; an unbatched C x H x W input (refused before) is one sample, output and gradients."""
    for affine in (False, True):
        norm = nn.InstanceNorm2d(3, affine=affine).to(device)
        if affine:
            with torch.no_grad():
                norm.weight.normal_()
                norm.bias.normal_()
        fused = InstanceNormAct2d(3, affine=affine, act="relu", impl="triton").to(device)
        fused.load_state_dict(norm.state_dict())
        expected_net = _norm_then_act(norm, "relu")
        for shape in ((2, 3, 4, 5), (3, 4, 5)):
            for mode in (True, False):
                fused.train(mode)
                expected_net.train(mode)
                x, grad = torch.randn(shape, device=device) * 2 + 1, torch.randn(shape, device=device)
                got, want = _outputs_and_grads(fused, x, grad), _outputs_and_grads(expected_net, x, grad)
                assert got[0].shape == want[0].shape == shape
                for name, g, w in zip(("y", "dx", "dweight", "dbias"), got, want):
                    _close(g, w, torch.float32, f"{name} {shape} affine={affine} training={mode}")


def test_module_channel_check_as_instancenorm2d():
    """A num_features that differs from the input's channels: an error with affine parameters, as
    nn.InstanceNorm2d's; without them only a warning, and the instance norm of what came (the fused
    layer refused it, so fuse_norm_act broke a model nn.InstanceNorm2d ran)."""
    x = torch.randn(2, 3, 4, 5)
    with pytest.raises(ValueError):
        nn.InstanceNorm2d(4, affine=True)(x)
    with pytest.raises(ValueError, match="expected 4 channels"):
        InstanceNormAct2d(4, affine=True)(x)
    with pytest.warns(UserWarning):
        expected = nn.functional.leaky_relu(nn.InstanceNorm2d(4)(x), 0.2)
    for impl in ("triton", "ref"):
        with pytest.warns(UserWarning, match="InstanceNormAct2d: input of shape \\(2, 3, 4, 5\\) does not have"):
            y = InstanceNormAct2d(4, impl=impl)(x)
        _close(y, expected, torch.float32, impl)


def test_fuse_refuses_an_unknown_impl_with_nothing_to_fuse():
    """impl is checked whatever the model holds: only the fused layers checked it, so a misspelt impl
    passed silently where nothing was fusable (norms with running statistics, say)."""
    for net in (nn.Sequential(nn.Conv2d(3, 3, 1)),
                nn.Sequential(nn.InstanceNorm2d(3, track_running_stats=True), nn.ReLU())):
        with pytest.raises(ValueError, match="fuse_norm_act: impl must be one of .*got 'trtion'"):
            fuse_norm_act(net, impl="trtion")


def test_fuse_leaves_a_fused_layer_alone():
    """An InstanceNormAct2d is an nn.InstanceNorm2d now, but it holds its activation: one followed by
    an activation is not fused again (the activation would be applied twice, or the first lost)."""
    net = nn.Sequential(InstanceNormAct2d(3, act="relu"), nn.LeakyReLU(0.2))
    fuse_norm_act(net)
    assert type(net[0]) is InstanceNormAct2d and net[0].act == "relu" and type(net[1]) is nn.LeakyReLU


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_bad_input_errors(impl):
    with pytest.raises(ValueError, match="x must be a 4-D"):
        instance_norm_act(torch.randn(3, 4, 5), impl=impl)
    with pytest.raises(TypeError, match=r"x must be floating point \(the kernels take float32, bfloat16 or "
                                        r"float16; float64 runs the reference\), got torch.int32"):
        instance_norm_act(torch.ones(1, 2, 3, 3, dtype=torch.int32), impl=impl)
    with pytest.raises(ValueError, match="weight must have shape \\(2,\\)"):
        instance_norm_act(torch.randn(1, 2, 3, 3), weight=torch.ones(3), impl=impl)
    with pytest.raises(ValueError, match="act must be one of"):
        instance_norm_act(torch.randn(1, 2, 3, 3), act="gelu", impl=impl)
    with pytest.raises(ValueError, match="expected 4 channels"):
        InstanceNormAct2d(4, affine=True, impl=impl)(torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="InstanceNormAct2d: expected a 4-D .* or an unbatched 3-D"):
        InstanceNormAct2d(4, impl=impl)(torch.randn(1, 4, 5, 5, 1))
    # One spatial value, where the instance statistics are taken: refused as nn.InstanceNorm2d refuses it (the
    # output was zeros); with running statistics in eval mode, taken, as there
    for layer, torch_layer in ((InstanceNormAct2d(4, impl=impl), nn.InstanceNorm2d(4)),
                               (InstanceNormAct2d(4, impl=impl).eval(), nn.InstanceNorm2d(4).eval())):
        with pytest.raises(ValueError, match=r"more than 1 spatial element when training, got input size "
                                             r"torch.Size\(\[2, 4, 1, 1\]\)"):
            torch_layer(torch.randn(2, 4, 1, 1))
        with pytest.raises(ValueError, match=r"InstanceNormAct2d: expected more than 1 spatial element when "
                                             r"training, got input size torch.Size\(\[2, 4, 1, 1\]\)"):
            layer(torch.randn(2, 4, 1, 1))
    kept = InstanceNormAct2d(4, track_running_stats=True).eval()  # (torch's instance_norm: impl auto)
    torch.testing.assert_close(kept(torch.randn(2, 4, 1, 1)).shape, torch.Size([2, 4, 1, 1]))
    assert nn.InstanceNorm2d(4, track_running_stats=True).eval()(torch.randn(2, 4, 1, 1)).shape == (2, 4, 1, 1)
    # A string slope ran on the Triton path (float("0.2")) and was a TypeError deep in the reference.
    for slope in ("0.2", None, True, float("nan")):
        with pytest.raises(TypeError, match=f"instance_norm_act: slope must be a finite real number.*{slope!r}"):
            instance_norm_act(torch.randn(1, 2, 3, 3), slope=slope, impl=impl)
        with pytest.raises(TypeError, match="InstanceNormAct2d: slope"):
            InstanceNormAct2d(2, slope=slope)
    for eps in ("1e-5", -1e-5, float("inf"), None, True):
        with pytest.raises(ValueError, match=f"instance_norm_act: eps must be a finite real number >= 0, got {eps!r}"):
            instance_norm_act(torch.randn(1, 2, 3, 3), eps=eps, impl=impl)
        # refused when the layer is built, as a bad slope is, not at its first forward
        with pytest.raises(ValueError, match=f"InstanceNormAct2d: eps must be a finite real number >= 0, got {eps!r}"):
            InstanceNormAct2d(2, eps=eps, impl=impl)
    assert instance_norm_act(torch.randn(1, 2, 3, 3), eps=0.0, impl=impl).shape == (1, 2, 3, 3)  # as nn.InstanceNorm2d
    np = pytest.importorskip("numpy")
    torch.testing.assert_close(instance_norm_act(torch.randn(1, 2, 3, 3), slope=np.float32(0.1), impl=impl).shape,
                               torch.Size([1, 2, 3, 3]))  # any real number


def test_float64_triton_refused_auto_uses_reference():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="impl='triton' takes x in"):
        instance_norm_act(x, impl="triton")
    torch.testing.assert_close(instance_norm_act(x), instance_norm_act_ref(x))


def _by_formula(x, act, slope, eps, w=None, b=None):
    """InstanceNorm + activation written out in float64 from its definition (biased variance, eps
    inside the square root), independent of torch's instance_norm and of the kernels."""
    x = x.double()
    mean = x.mean((2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean((2, 3), keepdim=True)
    z = (x - mean) / torch.sqrt(var + eps)
    if w is not None:
        z = z * w.double()[None, :, None, None]
    if b is not None:
        z = z + b.double()[None, :, None, None]
    if act == "relu":
        return torch.where(z > 0, z, 0.0)
    if act == "leaky_relu":
        return torch.where(z > 0, z, z * slope)
    if act == "elu":
        return torch.where(z > 0, z, torch.exp(z) - 1)
    return z


def _against_formula(fn, x, act, slope, eps, w, b, what, y_atol=0.0):
    xr = x.detach().clone().requires_grad_()
    y = fn(xr)
    grad = torch.randn_like(y)
    y.backward(grad)
    xd = x.detach().double().requires_grad_()
    expected = _by_formula(xd, act, slope, eps, w, b)
    expected.backward(grad.double())
    if y_atol:  # an absolute bound alone, where the oracle's rounding is known to be larger
        err = (y.detach().double() - expected.detach()).abs().max().item()
        assert err <= y_atol, f"{what} y: max abs error {err} > {y_atol}"
    else:
        _close(y, expected.detach(), torch.float32, f"{what} y")
    _close(xr.grad, xd.grad, torch.float32, f"{what} dx")


@pytest.mark.parametrize("device", DEVICES)
def test_eps_where_the_variance_is_small(device):
    """Planes whose variance is below eps (one constant): eps inside the square root decides the
    result, on every plan and through every face (functional, module, fuse_norm_act), with a
    non-default eps too. The other tests' planes have variance ~4, where eps hardly shows. ELU or
    no activation: on the constant plane z is 0, where ReLU's derivative depends on rounding."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = (3 + 1e-3 * torch.randn(2, 3, 7, 9, dtype=torch.float64)).float().to(device)
    x[0, 1] = 5.0
    for eps in (1e-5, 1e-3):
        for tiling in ({}, {"block_hw": 8}, {"block_hw": 8, "split": 3}):
            _against_formula(lambda t: instance_norm_act_triton(t, "elu", 0.0, eps, **tiling),
                             x, "elu", 0.0, eps, None, None, f"eps {eps} {tiling}")
        for impl in ("triton", "ref"):
            # The reference is torch's own: on CUDA (cuDNN) its mean of the constant plane is off by
            # a few ulps of |x|, which rstd = 1 / sqrt(eps) magnifies (7.5e-4 at eps 1e-5 on an H200,
            # torch 2.11): held to 8 ulps of |x| times rstd there, and its dx to the usual tolerance.
            # Ours computes that mean exactly (IEEE division), on the CPU and the GPU alike.
            y_atol = 8 * 5.0 * 2.0 ** -23 / eps ** 0.5 if impl == "ref" and x.is_cuda else 0.0
            _against_formula(lambda t: instance_norm_act(t, "none", 0.0, eps, impl=impl), x, "none", 0.0, eps,
                             None, None, f"eps {eps} {impl}", y_atol)
            module = InstanceNormAct2d(3, eps=eps, act="elu", impl=impl).to(device)
            _against_formula(module, x, "elu", 0.0, eps, None, None, f"module eps {eps} {impl}", y_atol)
    fused = fuse_norm_act(nn.Sequential(nn.InstanceNorm2d(3, eps=1e-3), nn.ELU()), impl="triton")
    _against_formula(fused, x, "elu", 0.0, 1e-3, None, None, "fused eps 1e-3")


@pytest.mark.parametrize("device", DEVICES)
def test_eps_zero_on_a_constant_plane_gives_the_bias_as_torch_does(device):
    """eps=0 (which the layers take, as nn.InstanceNorm2d does) on a constant plane: variance + eps is
    0, and torch's rule (its InvStd) takes the inverse standard deviation as 0 there, so the plane
    becomes act(bias), with dx 0 on it; 1 / sqrt(0) made the kernels' whole plane NaN, forward and
    backward. The other planes as the formula with eps 0; every plan, plain and affine. 0.1 and -0.6 over
    63 values (and the looped plan's last chunk of 7): their sums round, and a mean an ulp off made such a
    plane +-1 (0.75 and 0 sum exactly)."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 3, 7, 9, device=device) * 2 + 3
    x[0, 1] = 0.75
    x[1, 2] = 0.0
    x[0, 2] = 0.1
    x[1, 0] = -0.6
    flat = torch.zeros(2, 3, 1, 1, dtype=torch.bool, device=device)
    flat[0, 1] = flat[1, 2] = flat[0, 2] = flat[1, 0] = True
    w, b = torch.rand(3, device=device) + 0.5, torch.tensor([0.3, -0.4, 0.2], device=device)
    grad = torch.randn(2, 3, 7, 9, device=device)
    for tiling in ({}, {"block_hw": 8}, {"block_hw": 8, "split": 3}):
        for act, slope in (("relu", 0.0), ("leaky_relu", 0.2), ("none", 0.0)):
            for wb in ((None, None), (w, b)):
                what = f"{act} {tiling} affine {wb[0] is not None}"
                y, grads = _run(lambda t, a, s, ww, bb: instance_norm_act_triton(t, a, s, 0.0, ww, bb, **tiling),
                                x, act, slope, *wb, grad)
                assert not y.isnan().any() and not grads["dx"].isnan().any(), what
                bias = (b if wb[1] is not None else torch.zeros(3, device=device))[None, :, None, None]
                known = {"relu": bias.clamp(min=0), "leaky_relu": torch.where(bias > 0, bias, 0.2 * bias),
                         "none": bias}[act].expand_as(y)
                assert torch.equal(y.detach()[flat.expand_as(y)], known[flat.expand_as(y)]), what
                assert (grads["dx"][flat.expand_as(y)] == 0).all(), what
                # the other planes: the formula's values and torch's own layers' gradients, torch's on the CPU: its
                # CUDA statistics merge partial means, a constant plane's variance comes out ~1e-16, not 0, and with
                # eps 0 its rule then divides by that (dx ~1e7 there; the H200 showed it)
                plain = ~flat.expand_as(y)
                expected = _by_formula(x, act, slope, 0.0, *wb)
                _close(y.detach()[plain], expected[plain], torch.float32, f"{what} y")
                layer = nn.InstanceNorm2d(3, eps=0.0, affine=wb[0] is not None)
                if wb[0] is not None:
                    with torch.no_grad():
                        layer.weight.copy_(w.cpu())
                        layer.bias.copy_(b.cpu())
                acts = {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2), "none": nn.Identity()}
                xt = x.cpu().clone().requires_grad_()
                nn.Sequential(layer, acts[act])(xt).backward(grad.cpu())
                _close(grads["dx"].cpu(), xt.grad, torch.float32, f"{what} dx against torch")
                if wb[0] is not None:
                    _close(grads["dweight"].cpu(), layer.weight.grad, torch.float32, f"{what} dweight against torch")
                    _close(grads["dbias"].cpu(), layer.bias.grad, torch.float32, f"{what} dbias against torch")


@pytest.mark.parametrize("device", DEVICES)
def test_split_larger_than_the_whole_tiles_needed(device):
    """split=4 on a 3 x 3 plane in tiles of 2: four ranges of whole tiles would leave the last one
    empty, so the plan takes ranges of 4 positions and only 3 of them."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 3, 3, 3, device=device) * 2 + 3
    for fmt in (NCHW, CL):
        _against_formula(lambda t: instance_norm_act_triton(t, "leaky_relu", 0.2, 1e-5, block_hw=2, split=4),
                         x.contiguous(memory_format=fmt), "leaky_relu", 0.2, 1e-5, None, None, f"split 4 {fmt}")


@pytest.mark.parametrize("device", DEVICES)
def test_leaky_relu_gradients_slope_zero_and_half_affine(device):
    """Backward undoes the activation from y only when it can (no affine, slope > 0): LeakyReLU
    with slope 0 and with a weight or a bias alone must keep x (and give the same gradients)."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 3, 4, 5, device=device) * 2 + 3
    v = torch.randn(3, device=device)
    for w, b in ((None, None), (v, None), (None, v)):
        for slope in (0.0, 0.2):
            _against_formula(lambda t: instance_norm_act_triton(t, "leaky_relu", slope, 1e-5, w, b),
                             x, "leaky_relu", slope, 1e-5, w, b, f"slope {slope} w {w is not None} b {b is not None}")


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(2, 64, 64, 64), (1, 3, 130, 70), (1, 2, 512, 512), (16, 512, 4, 4)])
@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_default_tiling_large_planes(shape, fmt, dtype):
    """The GPU's own choice of tiling (single, looped, split across programs) on real-size planes."""
    _check_against_ref(shape, "leaky_relu", True, fmt, dtype, "cuda")
    _check_against_ref(shape, "relu", False, fmt, dtype, "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_cuda_looped_path(fmt, dtype):
    """One program looping over a whole large plane (split=1), as batch-16 training at 128 x 128
    uses it; the GPU's own tiling would split these few planes instead."""
    _check_against_ref((2, 5, 130, 70), "leaky_relu", True, fmt, dtype, "cuda", split=1)
    _check_against_ref((1, 3, 512, 512), "relu", False, fmt, dtype, "cuda", split=1)


def test_tiling_hooks_force_the_plans_they_name():
    """The tests reach the looped and split paths on small planes through block_hw and split; a
    hook that were ignored would leave them testing the single pass only. 2 x 3 x 7 x 9: 63
    positions, so block_hw=8 means 8 tiles of 8 (one program looping over them); with split=3,
    three programs of 24 positions per plane; block_hw=32, the fewest tiles a loop has: two."""
    from bicyclegan.kernels import norm_act_triton as nat
    x = torch.randn(2, 3, 7, 9) * 2 + 3
    plans = {}
    for hooks in ({}, {"block_hw": 8}, {"block_hw": 8, "split": 3}, {"block_hw": 32}):
        cfg = nat._config(x, False, variant="leaky_relu", **hooks)
        plans[tuple(hooks.items())] = (cfg["single"], cfg["split"], cfg["BLOCK_HW"], cfg["chunk"])
    assert plans[()][:2] == (True, 1) and plans[()][2] >= 63
    assert plans[(("block_hw", 8),)] == (False, 1, 8, 64)
    assert plans[(("block_hw", 8), ("split", 3))] == (False, 3, 8, 24)
    assert plans[(("block_hw", 32),)] == (False, 1, 32, 64)
    _against_formula(lambda t: nat.instance_norm_act_triton(t, "leaky_relu", 0.2, 1e-5, block_hw=32), x,
                     "leaky_relu", 0.2, 1e-5, None, None, "two tiles")


@pytest.mark.parametrize("device", DEVICES)
def test_activation_derivative_where_z_is_zero(device):
    """A constant plane (a dead channel) normalises to exactly 0, where the activation's derivative
    is that of the negative side, as in torch: 0 for ReLU, the slope for LeakyReLU. With rstd =
    1/sqrt(eps) any other choice shows in dx. Every plan; LeakyReLU also from the saved output."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 3, 7, 9, device=device) * 2 + 3
    x[0, 1] = 5.0
    w, b = torch.randn(3, device=device), torch.zeros(3, device=device)
    for tiling in ({}, {"block_hw": 8}, {"block_hw": 8, "split": 3}):
        for act, slope in (("relu", 0.0), ("leaky_relu", 0.2)):
            for wb in ((None, None), (w, b)):
                _against_formula(lambda t: instance_norm_act_triton(t, act, slope, 1e-5, *wb, **tiling), x, act,
                                 slope, 1e-5, *wb, f"{act} {tiling} affine {wb[0] is not None}")


def test_fuse_keeps_the_leaky_slope():
    """nn.LeakyReLU's own slope (its default 0.01 here, not pix2pix's 0.2) goes into the fused layer."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4), nn.LeakyReLU(), nn.Conv2d(4, 2, 3),
                        nn.InstanceNorm2d(2, affine=True), nn.LeakyReLU(0.3))
    fused = fuse_norm_act(copy.deepcopy(net), impl="triton")
    assert (fused[1].slope, fused[4].slope) == (0.01, 0.3)
    x = torch.randn(2, 3, 9, 8)
    _close(fused(x), net(x), torch.float32, "y")


# Gradients as autograd hands them to the op's backward, for a y of shape N x C x H x W in layout
# fmt: each but the last has H and W merging into one plane index, which the kernels read in place.
GRAD_KINDS = ("channel-slice-nchw", "channel-slice-cl", "batch-step", "expand", "other-format")


def _grad_as(kind, shape, fmt, dtype, device):
    N, C, H, W = shape
    g = torch.randn(2 * N, C + 3, H, W + 2, device=device).to(dtype)
    if kind == "channel-slice-nchw":  # the U-Net's decoder: y is the first part of torch.cat([y, skip], 1)
        return g[:N, :, :, :W].contiguous()[:, 1:C + 1]
    if kind == "channel-slice-cl":
        return g[:N, :, :, :W].contiguous(memory_format=CL)[:, 1:C + 1]
    if kind == "batch-step":
        return g[:, :C, :, :W].contiguous(memory_format=fmt)[::2]
    if kind == "expand":  # the gradient of y.mean((2, 3)): zero strides along H and W
        return g[:N, :C, :1, :1].contiguous().expand(N, C, H, W)
    if kind == "other-format":
        return g[:N, :C, :, :W].contiguous(memory_format=NCHW if fmt == CL else CL)
    assert kind == "w-slice"  # H and W do not merge: copied into y's layout first
    return g[:N, :C].contiguous(memory_format=fmt)[..., 1:W + 1]


PLANS = [pytest.param({}, id="single"), pytest.param({"block_hw": 8}, id="looped"),
         pytest.param({"block_hw": 8, "split": 3}, id="split")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("tiling", PLANS)
@pytest.mark.parametrize("kind", GRAD_KINDS + ("w-slice",))
@pytest.mark.parametrize("device", DEVICES)
def test_gradient_in_any_layout_matches_reference(device, kind, tiling, fmt, dtype):
    """dy not dense in y's layout (read through its own strides, or copied where H and W do not
    merge): output and gradients equal the reference's, from y saved (LeakyReLU, no affine) and
    from x saved (ReLU, affine: dweight and dbias too), dx in x's layout."""
    shape = (2, 3, 7, 9)
    for act, affine in (("leaky_relu", False), ("relu", True)):
        x, w, b, _ = _inputs(shape, dtype, fmt, affine, device)
        dy = _grad_as(kind, shape, fmt, dtype, device)
        assert dy.shape == shape and not dy.is_contiguous(memory_format=fmt), kind
        y, grads = _run(_triton(**tiling), x, act, 0.2, w, b, dy)
        y_ref, grads_ref = _run(_ref, x, act, 0.2, w, b, dy, dtype=torch.float32)
        _close(y, y_ref, dtype, "y")
        assert grads["dx"].dtype == dtype and grads["dx"].is_contiguous(memory_format=fmt)
        for name, g in grads.items():
            if grads_ref[name] is not None:
                _close(g, grads_ref[name], dtype, f"{kind} {act} {name}")


@pytest.mark.skipif(not interpreting(), reason="counts in Triton's interpreter")
@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
def test_backward_reads_dy_where_it_lies(monkeypatch, fmt, in_launch):
    """No copy of dy (no clone / copy_ / _to_copy reading it) in the op's backward when H and W
    merge; the launcher gets autograd's dy itself. Where they do not, exactly one copy. (Inside a
    launch the interpreter copies every argument's storage back and forth: not counted.)"""
    from torch.utils._python_dispatch import TorchDispatchMode

    from bicyclegan.kernels import norm_act_triton as nat
    copies, launched = [], []

    class CountCopies(TorchDispatchMode):
        def __init__(self, dy):
            super().__init__()
            self.storage = dy.untyped_storage().data_ptr()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if (name in ("clone", "copy_", "_to_copy") and not in_launch
                    and args[-1].untyped_storage().data_ptr() == self.storage):
                copies.append(name)
            return func(*args, **(kwargs or {}))

    run_backward, backward = nat.OP.run_backward, nat._backward

    def counted(dy, *rest):
        with CountCopies(dy):
            return run_backward(dy, *rest)

    monkeypatch.setattr(nat.OP, "run_backward", counted)
    monkeypatch.setattr(nat, "_backward", lambda dy, *rest: launched.append(dy) or backward(dy, *rest))
    shape = (2, 3, 4, 5)
    for kind in GRAD_KINDS + ("w-slice",):
        for act in ("leaky_relu", "relu"):
            copies.clear(), launched.clear()
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
            dy = _grad_as(kind, shape, fmt, torch.float32, "cpu")
            instance_norm_act(x, act, 0.2, impl="triton").backward(dy)
            assert len(launched) == 1
            if kind == "w-slice":
                assert copies == ["clone"] and launched[0].is_contiguous(memory_format=fmt), (kind, act, copies)
            else:
                assert copies == [], (kind, act, copies)
                assert (launched[0].data_ptr(), launched[0].stride()) == (dy.data_ptr(), dy.stride()), (kind, act)


def test_gradient_whose_plane_offsets_pass_int32_is_copied():
    """The kernels index a plane in int32: a dy read in place must have (H * W - 1) * its plane
    stride under 2**31. A channels_last channel slice of a 2**17-channel gradient (meta tensors:
    shapes and strides, no memory) fits at 128 x 128 and not at 128 x 256, where it is copied."""
    from bicyclegan.kernels.norm_act_triton import _grad_layout
    canonical = (2 * 128 * 256, 1, 2)
    for H, W, in_place in ((128, 128, True), (128, 256, False)):
        dy = torch.empty(1, 2 ** 17, H, W, device="meta").contiguous(memory_format=CL)[:, :2]
        got, strides = _grad_layout(dy, CL, canonical)
        assert (got is dy) == in_place, (H, W)
        assert strides == ((dy.stride(0), 1, 2 ** 17) if in_place else canonical)
        assert got.is_contiguous(memory_format=CL) != in_place


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tiling", [{}, {"block_hw": 8, "split": 3}], ids=["single", "split"])
def test_weight_and_bias_as_strided_views(device, tiling):
    """Affine parameters that are views with a stride other than 1 (the columns of one C x 2 tensor,
    as code that keeps gamma and beta side by side hands them over): the kernels read a[c] at
    a + c, i.e. other channels' values, for the output and every gradient."""
    from bicyclegan.kernels.norm_act_triton import instance_norm_act_triton
    x = torch.randn(2, 5, 7, 9, device=device) * 2 + 3
    grad = torch.randn_like(x)
    params = torch.randn(5, 2, device=device)
    for fmt in (NCHW, CL):
        p = params.clone().requires_grad_()
        xr = x.clone(memory_format=fmt).requires_grad_()
        y = instance_norm_act_triton(xr, "leaky_relu", 0.2, 1e-5, p[:, 0], p[:, 1], **tiling)
        y.backward(grad)
        p64, x64 = params.double().requires_grad_(), x.double().requires_grad_()
        expected = _by_formula(x64, "leaky_relu", 0.2, 1e-5, p64[:, 0], p64[:, 1])
        expected.backward(grad.double())
        _close(y, expected.detach(), torch.float32, f"{fmt} y")
        _close(xr.grad, x64.grad, torch.float32, f"{fmt} dx")
        _close(p.grad, p64.grad, torch.float32, f"{fmt} d(weight, bias)")


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_reference_at_batch_one_with_a_channels_last_gradient(affine, act):
    """The reference (the CPU path, impl="ref") at batch 1 with a dense channels_last gradient, as
    a channels_last conv after the norm hands it over (BicycleGAN's half-batches are of one sample
    at the reference's batch size 2): torch.instance_norm's backward gives wrong dx, dweight and
    dbias there on the CPU (torch 2.13: it views the output of its batch_norm, whose backward then
    misreads that gradient; nn.InstanceNorm2d shares the fault). An activation's backward hands the
    norm a gradient in y's layout, so act "none" (the U-Net's down-path norms) was the one hit.
    Checked against the formula in float64, both layouts of x, and through the module."""
    x = torch.randn(1, 3, 5, 7, dtype=torch.float64) * 2 + 3
    grad = torch.randn(1, 3, 5, 7, dtype=torch.float64).contiguous(memory_format=CL)
    w, b = (torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)) if affine else (None, None)
    module = InstanceNormAct2d(3, affine=affine, act=act, slope=0.2, impl="ref").double()
    if affine:
        module.weight.data.copy_(w)
        module.bias.data.copy_(b)
    for fmt in (NCHW, CL):
        for face in ("functional", "module"):
            leaves = [t.clone().requires_grad_() for t in (x.contiguous(memory_format=fmt), w, b) if t is not None]
            xr = leaves[0]
            params = leaves[1:] if face == "functional" else list(module.parameters())
            for p in params:
                p.grad = None
            if face == "functional":
                y = instance_norm_act(xr, act, 0.2, 1e-5, *(params or (None, None)), impl="ref")
            else:
                y = module(xr)
            y.backward(grad)
            xd = x.clone().requires_grad_()
            wd, bd = (t.clone().requires_grad_() for t in (w, b)) if affine else (None, None)
            _by_formula(xd, act, 0.2, 1e-5, wd, bd).backward(grad)
            got = [xr.grad] + [p.grad for p in params]
            want = [xd.grad] + ([wd.grad, bd.grad] if affine else [])
            for name, g, e in zip(("dx", "dweight", "dbias"), got, want):
                torch.testing.assert_close(g, e, msg=lambda m, n=name: f"{fmt} {face} {n}: {m}")


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_running_stats_at_batch_one_with_a_channels_last_gradient(affine):
    """The layer with track_running_stats=True (torch's instance_norm, its own call) at batch 1
    with a dense channels_last gradient: torch.instance_norm's CPU backward misreads it there, as in
    the test above, and dx (and dweight, dbias) came out wrong by O(1), in training and in eval mode,
    while the same layer without running statistics was right. Checked against the formula in
    float64; the running statistics as nn.InstanceNorm2d's."""
    x = torch.randn(1, 3, 5, 7, dtype=torch.float64) * 2 + 3
    grad = torch.randn(1, 3, 5, 7, dtype=torch.float64).contiguous(memory_format=CL)
    layer = InstanceNormAct2d(3, affine=affine, track_running_stats=True, act="none").double()
    norm = nn.InstanceNorm2d(3, affine=affine, track_running_stats=True).double()
    if affine:
        with torch.no_grad():
            for p in (layer.weight, layer.bias):
                p.uniform_(0.5, 1.5)
    norm.load_state_dict(layer.state_dict())
    for training in (True, False):
        layer.train(training)
        norm.train(training)
        rm, rv = layer.running_mean.clone(), layer.running_var.clone()
        xr = x.clone().requires_grad_()
        for p in layer.parameters():
            p.grad = None
        layer(xr).backward(grad)
        norm(x)  # (its running statistics: its forward is right)
        torch.testing.assert_close(layer.running_mean, norm.running_mean)
        torch.testing.assert_close(layer.running_var, norm.running_var)
        xd = x.clone().requires_grad_()
        wd, bd = (p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias)) if affine else (None, None)
        if training:
            expected = _by_formula(xd, "none", 0.2, layer.eps, wd, bd)
        else:
            expected = (xd - rm[:, None, None]) / torch.sqrt(rv[:, None, None] + layer.eps)
            expected = expected * wd[:, None, None] + bd[:, None, None] if affine else expected
        expected.backward(grad)
        got = [xr.grad] + [p.grad for p in layer.parameters()]
        want = [xd.grad] + ([wd.grad, bd.grad] if affine else [])
        for name, g, e in zip(("dx", "dweight", "dbias"), got, want):
            torch.testing.assert_close(g, e, msg=lambda m, n=name: f"training={training} {n}: {m}")


# Without a TracerWarning (pytest.ini: an error): the layer's checks of its input's shape (a 1x1 image, an empty one,
# the weight's size, its strides) read the example's sizes as ints (_impl.shape_of), and the batch's test is skipped.
def test_reference_traced_at_batch_one_runs_at_other_batches():
    """The reference's batch-1 path (batch_norm over the one sample) is eager only: a model traced
    (torch.jit.trace) at batch 1 and run at batch 3 must still normalise each sample alone, not the
    three together; one exported with a dynamic batch must export (a test of the batch size would
    refuse batch 1 in the exported range) and normalise each sample alone."""
    module = InstanceNormAct2d(3, affine=True, act="none", impl="ref").eval()
    x1, x3 = torch.randn(1, 3, 4, 5), torch.randn(3, 3, 4, 5) * torch.tensor([1.0, 5.0, 0.2])[:, None, None, None]
    expected = _by_formula(x3, "none", 0.0, 1e-5, module.weight.detach(), module.bias.detach()).float()
    traced = torch.jit.trace(module, x1)
    torch.testing.assert_close(traced(x3), expected, atol=1e-5, rtol=1e-5)
    # Exported with a dynamic batch (traced at 2, as torch.export specialises an example's size 1),
    # then run at 1 and 3.
    exported = torch.export.export(module, (x3[:2],), dynamic_shapes=({0: torch.export.Dim("n", min=1, max=8)},))
    torch.testing.assert_close(exported.module()(x3), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(exported.module()(x3[1:2]), expected[1:2], atol=1e-5, rtol=1e-5)


TORCH_ACTS = {"none": nn.Identity(), "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2), "elu": nn.ELU()}


@pytest.mark.parametrize("impl", ["triton", "ref"])
@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 3, 0, 5)], ids=["empty-batch", "empty-plane"])
def test_empty_input_as_instancenorm2d(shape, impl):
    """An empty x, a batch of 0 samples above all (a filtered sub-batch), through the functional
    and the module, in both layouts and in bf16: an empty output of x's shape, dtype and layout,
    and as gradients an empty dx and zero dweight and dbias, as nn.InstanceNorm2d + the activation
    give them (the fused op refused an empty x: 'x is empty'). With affine parameters torch 2.13's
    instance_norm refuses an empty batch (IndexError from a select) while it takes an empty plane:
    there the expected gradients are the sums over no element, zero, that it gives the plane."""
    for act in ACTS:
        for affine in (False, True):
            for fmt, dtype in ((NCHW, torch.float32), (CL, torch.float32), (NCHW, torch.bfloat16)):
                x = torch.randn(shape, dtype=dtype).contiguous(memory_format=fmt)
                norm = nn.InstanceNorm2d(3, affine=affine)
                module = InstanceNormAct2d(3, affine=affine, act=act, slope=0.2, impl=impl)
                for face in ("functional", "module"):
                    what = f"{act} affine={affine} {fmt} {dtype} {face}"
                    xr = x.clone().requires_grad_()
                    params = list(module.parameters())
                    for p in params:
                        p.grad = None
                    if face == "functional":
                        y = instance_norm_act(xr, act, 0.2, 1e-5, *(params or (None, None)), impl=impl)
                    else:
                        y = module(xr)
                    assert y.shape == x.shape and y.dtype == dtype, what
                    assert y.is_contiguous(memory_format=fmt), what
                    y.backward(torch.ones_like(y))
                    assert xr.grad.shape == x.shape and xr.grad.dtype == dtype, what
                    if not affine or shape[0]:
                        xt = x.clone().requires_grad_()
                        expected = TORCH_ACTS[act](norm(xt))
                        assert expected.shape == y.shape and expected.dtype == y.dtype, what
                        expected.backward(torch.ones_like(expected))
                        assert xt.grad.shape == xr.grad.shape, what
                        want = [p.grad for p in norm.parameters()]
                        norm.zero_grad()
                    else:
                        want = [torch.zeros(3), torch.zeros(3)]
                    assert len(params) == len(want), what
                    for p, w in zip(params, want):
                        assert p.grad is not None and torch.equal(p.grad, w), what


@pytest.mark.parametrize("impl", ["triton", "auto"])
def test_a_traced_graph_given_an_empty_x_returns_what_eager_code_does(impl):
    """A graph traced (torch.jit.trace) on a non-empty x keeps the op, which eager code never calls on an empty
    x (it runs the reference): given an empty plane the op divided by zero in its launch (ZeroDivisionError).
    And its y has x's strides, as eager code's y and the op's fake face's: it had NCHW's for a channels_last x
    (torch calls every empty tensor NCHW), which torch.compile's fake face, NCHW's too, did not tell apart."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from bicyclegan.kernels import norm_act_triton
    module = InstanceNormAct2d(3, affine=True, impl=impl)
    traced = torch.jit.trace(module, torch.randn(2, 3, 4, 5))
    for shape in ((2, 3, 0, 5), (0, 3, 4, 5), (2, 3, 4, 0)):
        for fmt in (NCHW, CL):
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
            module.zero_grad()
            y = traced(x)
            assert y.shape == shape and y.dtype == x.dtype, (shape, fmt)
            assert y.stride() == x.stride() == module(x.detach()).stride(), (shape, fmt, y.stride())
            real = [t.detach() for t in (x, module.weight, module.bias)]
            with FakeTensorMode() as mode:
                fx, fw, fb = (mode.from_tensor(t) for t in real)
                fake = norm_act_triton.OP.forward_op(fx, fw, fb, "leaky_relu", 0.2, 1e-5, 0, 0, False)[0]
            assert fake.stride() == x.stride(), (shape, fmt, fake.stride())
            y.backward(torch.ones_like(y))
            assert x.grad.shape == shape, (shape, fmt)
            # sums over no element, as nn.InstanceNorm2d gives an empty plane's
            for p in module.parameters():
                assert torch.equal(p.grad, torch.zeros(3)), (shape, fmt)


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_affine_parameters_of_another_dtype_than_x_as_torch_takes_them(impl):
    """torch's norm takes weight and bias in x's dtype, or float32 beside a bf16 or fp16 x (autocast's mix), and
    refuses the rest (CPU: 'mixed dtype (CPU)'; CUDA's kernels read the parameters in x's accumulation type).
    The kernels read any dtype: impl='auto' took a float32 x with a bf16 weight on CUDA and refused it on the
    CPU. Which mixes torch takes is asked of torch here."""
    x = torch.randn(2, 3, 4, 5)
    combos = [(xd, wd, wd) for xd in (torch.float32, torch.bfloat16)
              for wd in (torch.float32, torch.bfloat16, torch.float16, torch.float64)]
    combos += [(torch.bfloat16, torch.float32, torch.bfloat16), (torch.float32, torch.float32, torch.float64)]
    for xd, wd, bd in combos:
        xc, w, b = x.to(xd), torch.randn(3).to(wd), torch.randn(3).to(bd)
        try:
            want = nn.functional.instance_norm(xc, weight=w, bias=b)
        except RuntimeError:
            want = None
        for weight, bias in ((w, b), (w, None), (None, b)):
            if want is None and (weight is None or bias is None) and wd != bd:
                continue  # (one of a refused pair alone may be of a dtype torch takes)
            what = f"x {xd}, weight {None if weight is None else wd}, bias {None if bias is None else bd}"
            if want is None:
                with pytest.raises(TypeError, match="instance_norm_act: weight and bias must be of x's dtype"):
                    instance_norm_act(xc, "none", weight=weight, bias=bias, impl=impl)
            else:
                y = instance_norm_act(xc, "none", weight=weight, bias=bias, impl=impl)
                assert y.dtype == xd, what
                if weight is not None and bias is not None:
                    _close(y, want, xd, what)
