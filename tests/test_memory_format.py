"""Memory format parity of the drop-in ops with torch: for every kind of input (NCHW, channels_last,
a channel, batch or W slice of each, batch 1, one channel, 1 x 1 planes, expanded, unbatched), each op's
output (and input gradient) has the strides torch's own op gives it, so code downstream (a conv
choosing its algorithm from suggest_memory_format, an assertion on the layout) sees what it would see
with torch's layer; values and gradients are checked beside it. The expected strides and values are
torch's, computed in the test: F.avg_pool2d for the pooling, torch.cat + conv2d for the z injection,
F.group_norm with one group a channel for the norm's values, and the layout torch's pooling gives any
result of x's shape for its layout, the norm's one deliberate difference from torch.instance_norm
(stated below). The z injection's gradients: the weight's and bias's in their parameter's layout (no copy
for autograd to make), dz dense, dx dense in x's own layout under the kernels (_check_z_concat_conv).
"""
import itertools
import random

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from bicyclegan.kernels import (
    InstanceNormAct2d,
    _triton_common,
    avg_pool2d,
    instance_norm_act,
    z_concat_act,
    z_concat_conv,
)
from bicyclegan.kernels._impl import interpreting, memory_format

CL, NCHW = torch.channels_last, torch.contiguous_format
pytestmark = pytest.mark.skipif(not (interpreting() or torch.cuda.is_available()),
                                reason="runs the kernels in Triton's interpreter or on a GPU")


def _randn(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def _cl(t):
    return t.contiguous(memory_format=CL)


# Each builds a fresh 4-D input: the layouts a layer is handed (torch.cat's channel slices, a batch
# split, a strided view) and the ambiguous ones (one channel, 1 x 1 planes: contiguous both ways).
KINDS = {
    "nchw": lambda: _randn(2, 4, 5, 6),
    "cl": lambda: _cl(_randn(2, 4, 5, 6)),
    "nchw_channel_slice": lambda: _randn(2, 6, 5, 6)[:, 1:5],
    "cl_channel_slice": lambda: _cl(_randn(2, 6, 5, 6))[:, 1:5],
    "cl_one_channel_slice": lambda: _cl(_randn(2, 6, 5, 6))[:, 2:3],
    "batch1_nchw": lambda: _randn(1, 4, 5, 6),
    "batch1_cl": lambda: _cl(_randn(1, 4, 5, 6)),
    "batch1_cl_channel_slice": lambda: _cl(_randn(1, 6, 5, 6))[:, 1:5],
    "c1_nchw": lambda: _randn(2, 1, 5, 6),
    "c1_cl_strides": lambda: _randn(2, 5, 6, 1).permute(0, 3, 1, 2),
    "hw1_nchw": lambda: _randn(2, 4, 1, 1),
    "hw1_cl_strides": lambda: _randn(2, 1, 1, 4).permute(0, 3, 1, 2),
    "hw1_cl_channel_slice": lambda: _randn(2, 1, 1, 6).permute(0, 3, 1, 2)[:, 1:5],
    "nchw_w_slice": lambda: _randn(2, 4, 5, 12)[..., ::2],
    "cl_w_slice": lambda: _cl(_randn(2, 4, 5, 12))[..., ::2],
    "cl_batch_slice": lambda: _cl(_randn(4, 4, 5, 6))[::2],
    "expanded_w": lambda: _randn(2, 4, 5, 1).expand(2, 4, 5, 6),
    "nhcw": lambda: _randn(2, 5, 4, 6).transpose(1, 2),
    "size1_odd_strides": lambda: _randn(2, 3, 4, 1).permute(0, 1, 3, 2),
}
UNBATCHED = {"unbatched_" + k: (lambda k=k: KINDS[k]()[0]) for k in ("nchw", "cl", "cl_channel_slice")}


def _leaf(x):
    return x.detach().requires_grad_()  # a view of x's storage with x's strides


def _same_layout(got, want, what):
    """Equal strides (size-1 dimensions included: they change torch's suggested format), so equal
    is_contiguous in both formats."""
    assert got.stride() == want.stride(), f"{what}: strides {got.stride()}, torch's {want.stride()}"
    for fmt in (NCHW, CL):
        assert got.is_contiguous(memory_format=fmt) == want.is_contiguous(memory_format=fmt), (what, fmt)


def _close(got, want, what, atol=1e-5):
    torch.testing.assert_close(got, want, rtol=1e-5, atol=atol, msg=lambda m: f"{what}: {m}")


def _grads(y, leaves, seed=5):
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(y, leaves, g)


def test_memory_format_is_the_one_torch_gives_results():
    """The helper against torch's pooling, whose result takes Tensor.suggest_memory_format: random
    strided 4-D tensors (permuted dimensions, gaps, zero and overlapping strides, size-1 dimensions),
    and 3-D ones, which torch keeps NCHW."""
    rng = random.Random(0)
    storage = torch.randn(4096)
    for _ in range(3000):
        shape = [rng.choice((1, 1, 2, 3, 4)) for _ in range(4)]
        order, strides, span = rng.sample(range(4), 4), [0] * 4, 1
        for d in order:
            strides[d] = rng.choice((span, span, span * 2, 0, 1))
            span = max(span, strides[d] * shape[d])
        x = storage.as_strided(shape, strides)
        want = F.avg_pool2d(x, 1).stride()
        assert torch.empty(shape, memory_format=memory_format(x)).stride() == want, (shape, strides)
    assert memory_format(_cl(_randn(2, 4, 5, 6))[0]) == NCHW
    # A tensor torch.empty makes in a format reports that format (or one of the same strides): the
    # norm allocates its outputs from it.
    for shape in itertools.product((1, 2, 3), repeat=4):
        for fmt in (NCHW, CL):
            made = torch.empty(shape, memory_format=fmt)
            assert torch.empty(shape, memory_format=memory_format(made)).stride() == made.stride()


@pytest.mark.parametrize("impl", ["triton", "ref"])
@pytest.mark.parametrize("kind", [*KINDS, *UNBATCHED])
def test_avg_pool2d_layout_as_torch(kind, impl, monkeypatch):
    monkeypatch.setattr(_triton_common, "POISON", True)  # an element left unwritten shows as NaN
    x = {**KINDS, **UNBATCHED}[kind]()
    k = (min(2, x.shape[-2]), min(2, x.shape[-1]))
    ours, theirs = _leaf(x), _leaf(x)
    y, want = avg_pool2d(ours, k, 1, impl=impl), F.avg_pool2d(theirs, k, 1)
    (dx,), (dx_want,) = _grads(y, [ours]), _grads(want, [theirs])
    _same_layout(y, want, "y")
    _same_layout(dx, dx_want, "dx")
    _close(y, want, "y")
    _close(dx, dx_want, "dx")


def _norm_by_torch(x, act, weight, bias):
    """torch's instance norm + act (leaky_relu or relu): F.group_norm with a group a channel where the
    plane has more than one element (group_norm refuses a 1 x 1 one: there y = act(bias), whatever x)."""
    if x.shape[2] * x.shape[3] > 1:
        y = F.group_norm(x, x.shape[1], weight, bias, 1e-5)
    else:
        y = x * 0 + (0 if bias is None else bias[:, None, None]) + (0 if weight is None else weight[:, None, None] * 0)
    return F.leaky_relu(y, 0.2) if act == "leaky_relu" else F.relu(y)


def _torch_layouts(x):
    """(y, dx) as torch's pooling gives them for a result of x's shape: the layout of any result
    computed from x (Tensor.suggest_memory_format)."""
    leaf = _leaf(x)
    y = F.avg_pool2d(leaf, 1)
    return y, torch.autograd.grad(y, leaf, torch.ones(y.shape))[0]


@pytest.mark.parametrize("impl", ["triton", "ref"])
@pytest.mark.parametrize("kind", KINDS)
def test_instance_norm_act_layout_as_torch(kind, impl, monkeypatch):
    """y in the layout torch gives x's results (as F.group_norm keeps it, but for some one-channel
    strides); under Triton dx too (the reference's dx is torch.instance_norm's). Deliberately not
    torch.instance_norm's own layout: it normalises x.contiguous() and returns NCHW whatever x's
    (pytorch/pytorch#72341, open), so that in a channels_last network the next conv would convert
    every norm's output back."""
    monkeypatch.setattr(_triton_common, "POISON", True)  # an element left unwritten shows as NaN
    x = KINDS[kind]()
    C = x.shape[1]
    y_layout, dx_layout = _torch_layouts(x)
    for act, affine in (("leaky_relu", False), ("relu", True)):  # saves y (from_y) / x, with weight and bias
        params = (torch.rand(C) + 0.5, torch.randn(C)) if affine else (None, None)
        ours = [_leaf(x)] + [_leaf(p) for p in params if p is not None]
        theirs = [_leaf(x)] + [_leaf(p) for p in params if p is not None]
        y = instance_norm_act(ours[0], act, 0.2, 1e-5, *(ours[1:] or params), impl=impl)
        want = _norm_by_torch(theirs[0], act, *(theirs[1:] or params))
        _same_layout(y, y_layout, f"{act} y")
        got_grads, want_grads = _grads(y, ours), _grads(want, theirs)
        if impl == "triton":
            _same_layout(got_grads[0], dx_layout, f"{act} dx")
        # (A 1 x 1 plane is normalised to 0 up to x's rounding times 1 / sqrt(eps) in torch's reference.)
        atol = 1e-5 if x.shape[2] * x.shape[3] > 1 else 1e-4
        _close(y, want, f"{act} y", atol)
        for name, g, w in zip(("dx", "dweight", "dbias"), got_grads, want_grads):
            _close(g, w, f"{act} {name}", atol)


@pytest.mark.parametrize("impl, running_stats", [("triton", False), ("ref", False), ("ref", True)],
                         ids=["triton", "ref", "ref_running_stats"])
@pytest.mark.parametrize("kind", ["cl", "cl_channel_slice", "batch1_cl", "c1_cl_strides", "nchw_w_slice",
                                  *UNBATCHED])
def test_instance_norm_module_layout_as_torch(kind, impl, running_stats):
    """The module's paths: unbatched input (torch keeps a 3-D result NCHW) and the running statistics
    (torch's instance_norm, then the layout put right). Without an activation the gradient reaches the
    norm as given: an unbatched channels_last input, unsqueezed, is dense as channels_last with a
    batch stride that makes torch call it NCHW, for which torch.batch_norm's CPU backward (the
    reference's batch-1 call) got dx wrong from an NCHW gradient."""
    x = {**KINDS, **UNBATCHED}[kind]()
    for act in ("none", "leaky_relu"):
        layer = InstanceNormAct2d(x.shape[-3], affine=True, track_running_stats=running_stats, act=act, impl=impl)
        torch_layer = torch.nn.InstanceNorm2d(x.shape[-3], affine=True, track_running_stats=running_stats)
        ours, theirs = _leaf(x), _leaf(x)
        y, want = layer(ours), F.leaky_relu(torch_layer(theirs), 0.2 if act == "leaky_relu" else 1.0)
        _same_layout(y, _torch_layouts(x)[0], f"{act} y")
        _close(y, want, f"{act} y")
        _close(_grads(y, [ours])[0], _grads(want, [theirs])[0], f"{act} dx")


def _zinject_by_torch(x, z, weight, bias, act):
    """torch's layer: conv2d(act(cat(x, z tiled))), act leaky_relu or none, padding half the kernel."""
    cat = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
    return F.conv2d(F.leaky_relu(cat, 0.2) if act == "leaky_relu" else cat, weight, bias, 1, weight.shape[2] // 2)


PATHS = ["ref", "ref_z_only", "concat_free", "fused_concat"]


def _strides(t):
    """t's strides with those of its size-1 dimensions left out: they address nothing, so any value is the
    same layout (autograd's layout contract for a parameter's gradient ignores them too)."""
    return tuple(st if n > 1 else None for n, st in zip(t.shape, t.stride()))


def _check_z_concat_conv(kind, weight_fmt, path, k, monkeypatch):
    """z_concat_conv against _zinject_by_torch on the same inputs: values, gradients, the result's strides
    (k x k kernels) and the gradients' layouts (_strides). The reference (torch.cat + conv2d itself) gives
    torch's; the others dweight and dbias in their parameter's own, as torch's conv gives them (another
    costs autograd a copy into it), dz dense, as z (torch's is a view of the concatenation's gradient
    where the plane is 1 x 1), dx dense in x's own layout (torch's is a channel slice of the
    concatenation's gradient, in the conv's layout: the weight's), which the layer before wants, as a
    conv's backward gives its input's."""
    monkeypatch.setattr(_triton_common, "POISON", True)
    x = KINDS[kind]()
    N, C = x.shape[:2]
    z, bias = _randn(N, 3), _randn(5)
    weight = _randn(5, C + 3, k, k).contiguous(memory_format=weight_fmt)
    impl, mode = ("triton", path) if path in ("concat_free", "fused_concat") else ("ref", "concat_free")
    dense_x = torch.empty(x.shape, memory_format=memory_format(x))
    for act in ("leaky_relu", "none"):
        theirs = [_leaf(t) for t in (x, z, weight, bias)]
        ours = [x if path == "ref_z_only" else _leaf(x)] + [_leaf(t) for t in (z, weight, bias)]
        y = z_concat_conv(*ours, 1, k // 2, act, 0.2, impl=impl, mode=mode)
        want = _zinject_by_torch(*theirs, act)
        if path == "ref_z_only" and weight_fmt == CL and y.shape[2] * y.shape[3] == 1:
            # Known: there the conv's channels_last 1 x 1 result plus z's term takes NCHW strides for
            # its size-1 H and W (contiguous both ways, as torch's, but suggest_memory_format differs).
            assert y.is_contiguous() and y.is_contiguous(memory_format=CL)
        else:
            _same_layout(y, want, f"{act} y")
        _close(y, want, f"{act} y", 1e-4)
        leaves = [t for t in ours if t.requires_grad]
        got, expected = _grads(y, leaves), _grads(want, theirs[4 - len(leaves):])
        for name, g, w in zip(("dx", "dz", "dweight", "dbias")[4 - len(leaves):], got, expected):
            _close(g, w, f"{act} {name}", 1e-4)
            layout = w if path == "ref" else {"dx": dense_x, "dz": z, "dweight": weight, "dbias": bias}[name]
            assert _strides(g) == _strides(layout), \
                f"{act} {name}: strides {g.stride()}, wanted those of {layout.stride()}, torch's {w.stride()}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("weight_fmt", [NCHW, CL], ids=["w_nchw", "w_cl"])
@pytest.mark.parametrize("kind", KINDS)
def test_z_concat_conv_layout_as_torch(kind, weight_fmt, path, monkeypatch):
    """conv2d(act(cat(x, tile z))) as torch computes it: torch.cat is NCHW whatever x's layout, so the
    conv's result is channels_last exactly when the weight is (ref_z_only: x needs no gradient, z
    does, the reference's conv of x plus z's term). Without an activation the conv takes x as it is
    where its layout is the one wanted. The gradients' layouts too (_check_z_concat_conv)."""
    _check_z_concat_conv(kind, weight_fmt, path, 3, monkeypatch)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("weight_fmt", [NCHW, CL], ids=["w_nchw", "w_cl"])
@pytest.mark.parametrize("kind", ["c1_nchw", "c1_cl_strides", "nchw", "cl"])
def test_z_concat_conv_1x1_layout_as_torch(kind, weight_fmt, path, monkeypatch):
    """The same with a 1 x 1 kernel, whose channels_last weight (out x in x 1 x 1) has the strides of an NCHW
    one but for its channel dimension's: a 1-channel x (contiguous in both formats) beside it. The gradients'
    layouts too (_check_z_concat_conv)."""
    _check_z_concat_conv(kind, weight_fmt, path, 1, monkeypatch)


@pytest.mark.parametrize("impl", ["triton", "ref"])
@pytest.mark.parametrize("kind", KINDS)
def test_z_concat_act_layout_as_torch(kind, impl, monkeypatch):
    """act(cat(x, tile z)): NCHW whatever x's layout, as torch.cat gives it."""
    monkeypatch.setattr(_triton_common, "POISON", True)
    x = KINDS[kind]()
    z = _randn(x.shape[0], 3)
    ours, theirs = [_leaf(x), _leaf(z)], [_leaf(x), _leaf(z)]
    y = z_concat_act(*ours, "leaky_relu", 0.2, impl=impl)
    want = F.leaky_relu(torch.cat([theirs[0], theirs[1][:, :, None, None].expand(-1, -1, *x.shape[2:])], 1), 0.2)
    _same_layout(y, want, "y")
    _close(y, want, "y")
    for name, g, w in zip(("dx", "dz"), _grads(y, ours), _grads(want, theirs)):
        _close(g, w, name)


@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("N", [2, 1])
def test_no_activation_is_copied_on_the_common_paths(fmt, N, in_launch):
    """Dense NCHW or channels_last in, forward and backward of each op with the kernels: no clone or
    copy of an activation-sized tensor (x, y, their gradients, the concatenation) outside the
    kernels' launches (the interpreter's own copies there are not the op's). The layout rule costs
    host arithmetic only."""
    copies = []

    class Copies(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ in ("clone", "copy_", "_to_copy") and not in_launch:
                copies.append(tuple(out.shape))
            return out

    x = _randn(N, 4, 9, 10).contiguous(memory_format=fmt)
    z, bias, ones = _randn(N, 3), _randn(5), torch.ones(4)
    weight = _randn(5, 7, 4, 4).contiguous(memory_format=fmt)
    ops = {"avg_pool2d": lambda t: avg_pool2d(t, 3, 2, 1, count_include_pad=False, impl="triton"),
           "norm_from_y": lambda t: instance_norm_act(t, "leaky_relu", impl="triton"),
           "norm_affine": lambda t: instance_norm_act(t, "relu", weight=ones, bias=ones, impl="triton"),
           "z_concat_conv": lambda t: z_concat_conv(t, z, weight, bias, impl="triton"),
           "z_concat_conv_fused": lambda t: z_concat_conv(t, z, weight, bias, impl="triton", mode="fused_concat"),
           "z_concat_act": lambda t: z_concat_act(t, z, impl="triton")}
    for name, op in ops.items():
        leaf = _leaf(x)
        copies.clear()
        with Copies():
            y = op(leaf)
        grad = torch.randn(y.shape).contiguous(memory_format=fmt)
        with Copies():
            y.backward(grad)
        activations = {x.shape, y.shape, (N, 7, 9, 10)}
        assert not [c for c in copies if c in activations], (name, copies)


@pytest.mark.parametrize("fmt", [NCHW, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("path", ["ref_z_only", "concat_free", "fused_concat"])
def test_parameter_gradients_need_no_copy_into_their_layout(path, fmt, in_launch):
    """Dense NCHW or channels_last throughout, backward into .grad: the weight's and the bias's gradients
    come in their parameter's layout, so autograd's AccumulateGrad keeps them as they are; any other it
    copies into that layout (new_empty_strided + copy_ of the parameter's size, as DDP's bucket views
    warn of). ref_z_only: x needs no gradient, z does (the reference's conv of x plus z's term)."""
    copies = []

    class Copies(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__ in ("clone", "copy_", "_to_copy", "new_empty_strided") and not in_launch:
                copies.append(tuple(out.shape))
            return out

    x = _randn(2, 4, 9, 10).contiguous(memory_format=fmt)
    z, bias = _leaf(_randn(2, 3)), _leaf(_randn(5))
    weight = _leaf(_randn(5, 7, 4, 4).contiguous(memory_format=fmt))
    impl, mode = ("ref", "concat_free") if path == "ref_z_only" else ("triton", path)
    y = z_concat_conv(x if path == "ref_z_only" else _leaf(x), z, weight, bias, impl=impl, mode=mode)
    with Copies():
        y.backward(torch.randn(y.shape).contiguous(memory_format=fmt))
    assert weight.grad.stride() == weight.stride() and bias.grad.stride() == bias.stride()
    assert not [c for c in copies if c in (tuple(weight.shape), tuple(bias.shape))], copies
