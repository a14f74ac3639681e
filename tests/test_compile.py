"""The kernels under torch.compile: registered custom ops, so a network that uses them compiles into
one graph (fullgraph=True fails on any graph break) and gives the eager outputs and gradients.

On a CPU-only machine the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1);
"aot_eager" traces through the fake implementations and runs the real ops, which is where a wrong
fake shape, stride or dtype shows. Inductor needs a C++ compiler here and compiles slowly, so it
gets one small network; on a GPU it compiles the generator.
"""
import shutil

import pytest
import torch
import torch._functorch.config
import torch._inductor.config
import torch.nn as nn

from bicyclegan.kernels import (
    AvgPool2d,
    InstanceNormAct2d,
    ZConcatConv2d,
    avg_pool_triton,
    norm_act_triton,
    z_concat_act,
    zinject_triton,
)
from bicyclegan.kernels._impl import interpreting

CL = torch.channels_last
needs_triton = pytest.mark.skipif(not (interpreting() or torch.cuda.is_available()),
                                  reason="needs the Triton interpreter or a GPU")
pytestmark = needs_triton


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    # Compile afresh: torch's on-disk caches (shared by every checkout on a machine) key a graph by
    # its custom ops' names, not by their Python implementations, so a graph compiled against
    # another version of our ops (another backward signature, say) would be reused and fail.
    # (config.patch, not monkeypatch: torch's config modules do not survive setattr/undo.)
    # (torch 2.4 has no autograd cache.)
    cache = "enable_autograd_cache"
    autograd_cache = {cache: False} if hasattr(torch._functorch.config, cache) else {}
    with torch._inductor.config.patch(fx_graph_cache=False), torch._functorch.config.patch(**autograd_cache):
        torch._dynamo.reset()
        yield
        torch._dynamo.reset()


class ZNet(nn.Module):
    """conv -> fused norm+act -> z injection -> norm+act: every op once, as other GAN code would."""

    def __init__(self, mode, affine, nz=3, impl="triton"):
        super().__init__()
        self.impl = impl
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = InstanceNormAct2d(4, affine=affine, impl=impl)
        self.zconv = ZConcatConv2d(4, nz, 5, impl=impl, mode=mode)
        self.norm2 = InstanceNormAct2d(5, act="relu", affine=not affine, impl=impl)

    def forward(self, x, z):
        h = self.zconv(self.norm(self.conv(x)), z)
        return self.norm2(h), z_concat_act(h, z, "leaky_relu", 0.2, impl=self.impl)


def _eager_and_compiled(net, inputs, backend, dtype=None):
    """Outputs and every gradient (parameters and inputs) of net and of torch.compile(net)."""
    results = []
    for fn in (net, torch.compile(net, backend=backend, fullgraph=True)):
        net.zero_grad(set_to_none=True)
        args = [t.detach().clone(memory_format=torch.preserve_format).requires_grad_() for t in inputs]
        with torch.autocast("cuda" if args[0].is_cuda else "cpu", dtype=dtype or torch.bfloat16,
                            enabled=dtype is not None):
            outs = fn(*args)
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.manual_seed(1)
        sum((o.float() * torch.randn(o.shape, device=o.device)).sum() for o in outs).backward()
        grads = {k: p.grad for k, p in net.named_parameters()}
        grads.update({f"input{i}": a.grad for i, a in enumerate(args)})
        results.append((outs, grads))
    return results


def _close(got, want, tol, what):
    # The absolute tolerance scales with the tensor's largest value: weight gradients run into the
    # hundreds, and a compiler that rounds a bf16 intermediate once more (inductor fusing a bias add)
    # moves them by a fraction of a percent of that, not by a fixed amount.
    atol = tol * max(1.0, want.float().abs().max().item()) if want.numel() else tol
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=atol, msg=lambda m: f"{what}: {m}")


def _assert_same(results, tol):
    (outs, grads), (c_outs, c_grads) = results
    for i, (o, c) in enumerate(zip(outs, c_outs)):
        assert (c.dtype, c.stride()) == (o.dtype, o.stride()), f"output {i}: {c.dtype}{c.stride()} vs eager"
        _close(c, o, tol, f"output {i}")
    assert c_grads.keys() == grads.keys()
    for k, g in grads.items():
        assert (c_grads[k] is None) == (g is None), k
        if g is not None:
            assert c_grads[k].dtype == g.dtype, k
            _close(c_grads[k], g, tol, f"grad {k}")


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("mode,affine", [("concat_free", False), ("fused_concat", True)])
def test_layers_compile_to_one_graph(mode, affine, fmt):
    net = ZNet(mode, affine).to(memory_format=fmt)
    x = torch.randn(2, 3, 6, 5).contiguous(memory_format=fmt)
    z = torch.randn(2, 3)
    _assert_same(_eager_and_compiled(net, (x, z), "aot_eager"), 1e-5)


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_layers_compile_with_dynamic_shapes(impl):
    """torch.compile(dynamic=True), as for images of varying sizes: the layers' slope and eps are
    symbolic floats there, which the slope check's math.isfinite could not trace (fullgraph failed
    on InstanceNormAct2d and ZConcatConv2d, either impl). One graph serves two sizes, as eager."""
    net = ZNet("concat_free", True, impl=impl)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True, dynamic=True)
    for n, h, w in ((2, 6, 5), (3, 8, 7)):
        x, z = torch.randn(n, 3, h, w), torch.randn(n, 3)
        results = []
        for fn in (net, compiled):
            xg = x.clone().requires_grad_()
            outs = fn(xg, z)
            sum(o.square().sum() for o in outs).backward()
            results.append((*outs, xg.grad))
        for got, want in zip(*reversed(results)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "ref"])
def test_a_network_compiled_before_triton_was_probed_is_not_compiled_again(impl, monkeypatch):
    """Whether triton imports is probed at the first op call and kept in a module global. A network
    compiled before that probe guarded on the global being unset, so its next call recompiled it
    (one more inductor compile of a network, the encoder's in the training step, cold on a GPU). The
    probe is a constant for the compiler: one graph for both calls."""
    from torch._dynamo.utils import counters

    from bicyclegan.kernels import _impl
    monkeypatch.setattr(_impl, "_TRITON_OK", None)
    counters.clear()
    net = ZNet("concat_free", False, impl=impl)
    compiled = torch.compile(net, backend="eager")
    x, z = torch.randn(2, 3, 6, 5), torch.randn(2, 3)
    for _ in range(2):
        compiled(x, z)
    assert _impl._TRITON_OK is True
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def test_a_fallback_in_a_compiled_graph_is_noted_at_its_tracing():
    """A fallback of impl='auto' to the reference (here ceil_mode pooling, float64 norms) inside a compiled graph:
    recorded, warned of or refused at the tracing, once per graph, not compiled into it (traced, the record's count
    was a value each call changed), and the graph is not compiled again."""
    from torch._dynamo.utils import counters

    from bicyclegan.kernels import _impl, fallbacks, set_fallback_mode
    saved = _impl._fallback_mode
    net = nn.Sequential(InstanceNormAct2d(3), AvgPool2d(3, 2, 1, ceil_mode=True))
    try:
        fallbacks(clear=True)
        counters.clear()
        compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
        for x in [torch.randn(2, 3, 8, 8, requires_grad=True)] * 3:
            compiled(x).sum().backward()
        assert fallbacks(clear=True) == {("avg_pool2d", "ceil_mode=True (the kernels pool in floor mode)"): 1}
        assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
        set_fallback_mode("strict")
        torch._dynamo.reset()
        with pytest.raises(RuntimeError, match=r"avg_pool2d: impl='auto' would run the PyTorch reference instead "
                                               r"of the Triton kernels: ceil_mode=True \(the kernels pool in floor "
                                               r"mode\)"):
            torch.compile(net, fullgraph=True, backend="aot_eager")(x)
    finally:
        _impl._fallback_mode = saved
        fallbacks(clear=True)


def test_autocast_bf16_compiles():
    net = ZNet("concat_free", True)
    _assert_same(_eager_and_compiled(net, (torch.randn(2, 3, 6, 5), torch.randn(2, 3)), "aot_eager",
                                     dtype=torch.bfloat16), 1e-5)


@pytest.mark.parametrize("device,backend,dtype,tol", [
    ("cpu", "aot_eager", None, 1e-5),
    # One inductor compile of G forward + backward takes tens of seconds: one case on the GPU, in
    # bench/gpu_check.sh's compile call (its main call's test step has 120 s for everything else).
    pytest.param("cuda", "inductor", torch.bfloat16, 5e-2, marks=[pytest.mark.gpu, pytest.mark.inductor]),
])
def test_generator_compiles_to_one_graph(device, backend, dtype, tol, monkeypatch):
    engine = pytest.importorskip("bicyclegan.engine")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    size = 32 if device == "cpu" else 128
    cfg = engine.ModelConfig(netG="unet", nz=3, where_add="all", crop_size=size, impl="triton",
                             ngf=4 if device == "cpu" else 16, netE="resnet_128", netD="basic_128",
                             netD2="basic_128", num_Ds=1)
    G = engine.build_generator(cfg).to(device)
    inputs = (torch.randn(2, 3, size, size, device=device), torch.randn(2, 3, device=device))
    _assert_same(_eager_and_compiled(G, inputs, backend, dtype), tol)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
@pytest.mark.skipif(torch.__version__ < "2.5", reason="torch 2.4's inductor fails nn.InstanceNorm2d + nn.ReLU here too "
                                                    "(its C++: no max(double, long))")
@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_inductor_compiles_the_reference_layer_for_shapes_that_change(act):
    # The plain PyTorch layer (impl 'ref', what runs without a GPU) applied its activation in place on the norm's
    # output: inductor recompiling for a second shape (dynamic) failed on it ("cannot determine truth value of
    # Relational"), where nn.InstanceNorm2d + nn.ReLU compile.
    net = nn.Sequential(nn.Conv2d(3, 4, 4, 2, 1), InstanceNormAct2d(4, affine=True, act=act, impl="ref"),
                        nn.Conv2d(4, 1, 3))
    compiled = torch.compile(net)
    for n, h in ((2, 12), (3, 16)):
        results = []
        for fn in (net, compiled):
            x = torch.randn(n, 3, h, h, generator=torch.Generator().manual_seed(h)).requires_grad_()
            y = fn(x)
            y.square().sum().backward()
            results.append((y, x.grad))
        for got, want in zip(*reversed(results)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_inductor_compiles_network_with_the_ops():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), InstanceNormAct2d(4, affine=True, impl="triton"), nn.Conv2d(4, 2, 1))
    _assert_same(_eager_and_compiled(net, (torch.randn(2, 3, 7, 6),), "inductor"), 1e-4)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
@pytest.mark.parametrize("hw", [(1, 1), (3, 1)], ids=["1x1", "3x1"])
def test_inductor_compiles_the_bilinear_upconv_of_a_plane_one_pixel_wide(hw):
    # `--compile default --upsample bilinear` stopped every U-Net on the CPU at its first step: inductor's C++
    # code generator failed on the backward of torch's bilinear upsampling and reflection padding of the
    # innermost level's 1 x 1 plane (an AssertionError in its vectorised store, torch 2.13), when it
    # generates code for more than one thread (the suite runs with one: conftest)
    from bicyclegan.engine.networks import _upconv
    net = _upconv(6, 4, "bilinear")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _assert_same(_eager_and_compiled(net, (torch.randn(5, 6, *hw),), "inductor"), 1e-4)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL], ids=["nchw", "cl"])
@pytest.mark.parametrize("mode,affine", [("concat_free", False), ("fused_concat", True)])
def test_layers_trace_with_the_kernels(mode, affine, fmt):
    """torch.jit.trace through the Triton path, as it traces nn.InstanceNorm2d, torch.cat and nn.Conv2d:
    it recorded the launches with every size read as a traced tensor, which a launch took for a
    pointer (an interpreter error; on a GPU, a compile error). Under tracing the ops go through their
    custom ops, which the trace keeps as nodes: run at another batch and size, and saved and loaded,
    it gives the outputs and gradients of the same network with impl='ref'. Without a TracerWarning
    (pytest.ini makes it an error), which the layers' checks of sizes gave at 15 lines."""
    import io
    net = ZNet(mode, affine).to(memory_format=fmt)
    ref = ZNet(mode, affine, impl="ref")
    ref.load_state_dict(net.state_dict())
    traced = torch.jit.trace(net, (torch.randn(2, 3, 6, 5).contiguous(memory_format=fmt), torch.randn(2, 3)))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x, z = torch.randn(3, 3, 8, 7).contiguous(memory_format=fmt), torch.randn(3, 3)
    for got, want in zip(loaded(x, z), ref(x, z)):
        _close(got, want, 1e-5, "loaded trace")
    results = []
    for fn, params in ((traced, net), (ref, ref)):
        params.zero_grad(set_to_none=True)
        args = [t.clone().requires_grad_() for t in (x, z)]
        outs = fn(*args)
        torch.manual_seed(1)
        sum((o * torch.randn(o.shape)).sum() for o in outs).backward()
        grads = {k: p.grad for k, p in params.named_parameters()}
        grads.update({f"input{i}": a.grad for i, a in enumerate(args)})
        results.append((outs, grads))
    (outs, grads), (ref_outs, ref_grads) = results
    for i, (o, r) in enumerate(zip(outs, ref_outs)):
        _close(o, r, 1e-5, f"output {i}")
    assert grads.keys() == ref_grads.keys()
    for k, g in ref_grads.items():
        _close(grads[k], g, 1e-5, f"grad {k}")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("mode,affine", [("concat_free", False), ("fused_concat", True)])
def test_the_reference_layers_trace_at_other_sizes_without_warnings(mode, affine):
    # impl='ref' traces torch's own ops; the layers' checks and layout choices around them read sizes,
    # traced tensors there: a TracerWarning at 14 lines of this network's layers, and at one of AvgPool2d's.
    net = ZNet(mode, affine, impl="ref")
    pool = AvgPool2d(3, 2, 1, impl="ref")
    traced = torch.jit.trace(net, (torch.randn(2, 3, 6, 5), torch.randn(2, 3)))
    traced_pool = torch.jit.trace(pool, torch.randn(2, 3, 8, 8))
    x, z = torch.randn(3, 3, 8, 7), torch.randn(3, 3)
    for got, want in zip(traced(x, z), net(x, z)):
        _close(got, want, 1e-5, "traced reference")
    _close(traced_pool(x), torch.nn.functional.avg_pool2d(x, 3, 2, 1), 1e-6, "traced AvgPool2d")


def _wrong_input(case):
    """(layer, its example, an input its eager forward refuses, the words of that refusal, the words of the traced
    graph's). Before the custom ops checked, the graph ran the kernels on it, reading out of bounds, and returned
    for all but concat_free's z batch (an unrelated reshape error there): z of another batch (fused_concat),
    z one wider, the weight's 3 channels read for 4, an empty 2 x 2 pool."""
    x, z = torch.randn(2, 3, 6, 5), torch.randn(2, 3)
    z_batch = "z must be N x nz (or N x nz x 1 x 1) with the batch of x; got x (3, 4, 6, 5) and z (2, 3)"
    norm_weight = "weight must have shape (4,) to match x's channels, got (3,)"
    small = "input of 2 x 2 is too small for kernel_size (3, 3) with padding (0, 0)"
    return {
        "concat_free-z-batch": (ZNet("concat_free", False), (x, z), (torch.randn(3, 3, 6, 5), z), z_batch, z_batch),
        "fused_concat-z-batch": (ZNet("fused_concat", True), (x, z), (torch.randn(3, 3, 6, 5), z), z_batch, z_batch),
        # (the layers' own checks of in_channels, nz and num_features are Python: the ops' checks stand in)
        "concat_free-z-width": (ZNet("concat_free", False), (x, z), (x, torch.randn(2, 4)),
                                "expected z of shape (N, 3) or (N, 3, 1, 1), got (2, 4)",
                                "weight (5, 7, 4, 4) must be out x (in + nz) x kh x kw for x (2, 4, 6, 5) "
                                "and z (2, 4)"),
        "norm-channels": (InstanceNormAct2d(3, affine=True, impl="triton"), (torch.randn(2, 3, 4, 5),),
                          (torch.randn(2, 4, 4, 5),), "expected 3 channels, got input of shape (2, 4, 4, 5)",
                          norm_weight),
        "pool-too-small": (AvgPool2d(3, 1, impl="triton"), (torch.randn(2, 3, 8, 7),), (torch.randn(2, 3, 2, 2),),
                           small, small),
    }[case]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("case", ["concat_free-z-batch", "fused_concat-z-batch", "concat_free-z-width",
                                  "norm-channels", "pool-too-small"])
def test_a_traced_graph_refuses_an_input_that_eager_code_refuses(case):
    """A trace keeps the ops' custom ops and none of the Python around them: the custom ops repeat the
    checks of sizes on every run, and the TorchScript interpreter passes their ValueError on (in a
    RuntimeError that quotes it)."""
    import re
    net, example, wrong, eager_words, traced_words = _wrong_input(case)
    traced = torch.jit.trace(net, example)
    with pytest.raises(ValueError, match=re.escape(eager_words)):
        net(*wrong)
    with pytest.raises(RuntimeError, match=re.escape("ValueError: ") + ".*" + re.escape(traced_words)):
        traced(*wrong)


# torch.library.opcheck: schema, fake (meta) implementation, autograd registration and
# AOT dispatch of every custom op, on real inputs.
def _opcheck_cases():
    x = torch.randn(2, 4, 5, 3)
    xcl = x.contiguous(memory_format=CL)
    z = torch.randn(2, 3)
    w, b = torch.randn(5, 7, 4, 4), torch.randn(5)
    norm, zcat, zconv = norm_act_triton.OP, zinject_triton.ZCAT, zinject_triton.ZCONV
    pool = avg_pool_triton.OP
    yield "avg_pool2d", pool.forward_op, (x, [3, 3, 2, 2, 1, 1], False, 0, False)
    yield "avg_pool2d_cl_override", pool.forward_op, (xcl, [2, 3, 1, 2, 1, 1], True, 5, True)
    yield "norm_act", norm.forward_op, (x, None, None, "leaky_relu", 0.2, 1e-5, 0, 0, False)
    yield "norm_act_affine_cl", norm.forward_op, (xcl, torch.rand(4), torch.randn(4), "relu", 0.0, 1e-5, 0, 0, False)
    yield "norm_act_split", norm.forward_op, (x, None, torch.randn(4), "none", 0.2, 1e-5, 8, 2, False)
    yield "norm_act_keep_x", norm.forward_op, (x, None, None, "leaky_relu", 0.2, 1e-5, 0, 0, True)
    yield "norm_act_elu", norm.forward_op, (xcl, None, None, "elu", 0.0, 1e-5, 0, 0, False)
    # an empty plane, which only a traced graph hands the op (eager code runs the reference): no launch
    yield "norm_act_empty_plane_cl", norm.forward_op, (xcl[:, :, :0], torch.rand(4), torch.randn(4), "relu", 0.0,
                                                       1e-5, 0, 0, False)
    yield "z_concat_act", zcat.forward_op, (xcl, z, "leaky_relu", 0.2, torch.float32, True)
    # torch.cat's format, NCHW, from a channels_last x (the public op's)
    yield "z_concat_act_nchw_of_cl", zcat.forward_op, (xcl, z, "relu", 0.0, torch.float32, False)
    yield "z_concat_conv", zconv.forward_op, (x, z, w, b, [2, 2], [1, 1], "leaky_relu", 0.2, torch.float32)
    # one output channel: the weight's x slice is already dense, and must still not be returned as a view
    yield "z_concat_conv_one_out", zconv.forward_op, (x, z, w[:1].clone(), None, [2, 2], [1, 1], "relu", 0.0,
                                                      torch.float32)
    yield "z_concat_conv_none", zconv.forward_op, (xcl, z, w, None, [1, 1], [2, 1], "none", 0.2, torch.float32)
    # The backward ops alone, also with gradients left out (they come back as empty tensors).
    stats = torch.randn(2, 4).abs() + 0.5
    yield "norm_act_backward", norm.backward_op, (torch.randn(2, 4, 5, 3), x, torch.rand(4), None, stats,
                                                  stats, "relu", 0.0, False, 0, 0, True, True, False)
    yield "norm_act_empty_plane_backward", norm.backward_op, (torch.randn(2, 4, 0, 3), x[:, :, :0], torch.rand(4),
                                                              torch.rand(4), stats, stats, "relu", 0.0, False, 0,
                                                              0, True, True, True)
    yield "z_concat_act_backward", zcat.backward_op, (torch.randn(2, 7, 5, 3), x, z, "relu", 0.0, True, True)
    yield "avg_pool2d_backward", pool.backward_op, (torch.randn(2, 4, 3, 2), x.new_empty(0), [2, 4, 5, 3],
                                                    [3, 3, 2, 2, 1, 1], False, 0, False, True)
    gy = torch.randn(2, 5, 2, 1)
    yield "z_concat_conv_backward", zconv.backward_op, (
        gy, x, torch.randn(2, 4, 5, 3), torch.randn(5, 4, 4, 4), z, w, b, [2, 2], [1, 1], "leaky_relu", 0.2,
        False, True, True, False)


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in _opcheck_cases()])
def test_opcheck(case):
    name, op, args = case
    if name.endswith("backward"):  # first-order only, like the Functions: nothing to differentiate
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
        return
    args = tuple(a.requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    torch.library.opcheck(op, args)


def _r1_grads(fn, params, x, z):
    """The gradients of an R1 penalty |d fn(x, z) / dx|^2 w.r.t. x, z and params."""
    x, z = x.clone().requires_grad_(), z.clone().requires_grad_()
    (gx,) = torch.autograd.grad(sum(o.sum() for o in fn(x, z)), x, create_graph=True)
    return torch.autograd.grad(gx.pow(2).sum(), [x, z, *params], allow_unused=True, materialize_grads=True)


def _penalty_net(impl):
    torch.manual_seed(0)
    net = ZNet("concat_free", affine=False, impl=impl)
    net.norm.double_backward = True  # the LeakyReLU norm without affine parameters (see kernels/norm_act.py)
    return net


def test_gradient_penalty_through_the_custom_ops():
    """Under torch.compile the layers run as custom ops, whose registered backward runs the same
    differentiable recompute under create_graph=True: a graph compiled by dynamo alone ('eager'
    backend) gives the reference's penalty gradients. (aot_autograd refuses double backward
    through any compiled graph, with or without the kernels: see the next test.)"""
    x, z = torch.randn(2, 3, 6, 6), torch.randn(2, 3)
    ref = _penalty_net("ref")
    want = _r1_grads(ref, list(ref.parameters()), x, z)
    net = _penalty_net("triton")
    ops = []
    compiled = torch.compile(net, backend=lambda gm, _inputs: ops.extend(
        str(n.target) for n in gm.graph.nodes if n.op == "call_function") or gm.forward, fullgraph=True)
    got = _r1_grads(compiled, list(net.parameters()), x, z)
    assert {"bicyclegan.instance_norm_act.default", "bicyclegan.z_concat_conv.default",
            "bicyclegan.z_concat_act.default"} <= set(ops), ops
    assert want[0].abs().sum() > 0
    for i, (g, w) in enumerate(zip(got, want)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=lambda m: f"penalty gradient {i}: {m}")


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_double_backward_under_aot_autograd_is_torch_s_refusal(impl):
    """torch.compile with aot_autograd (aot_eager, inductor) refuses double backward through the
    compiled graph itself, whichever path its layers take: a penalty there needs the network
    uncompiled, or compiled by dynamo alone."""
    net = _penalty_net(impl)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    with pytest.raises(RuntimeError, match="aot_autograd does not currently support double backward"):
        _r1_grads(compiled, list(net.parameters()), torch.randn(2, 3, 6, 6), torch.randn(2, 3))


@pytest.mark.parametrize("variant,impl", [("bicycle", "triton"), ("clr", "ref")])
def test_compiled_training_step_equals_eager(variant, impl):
    """TrainConfig.compile: each network compiled in place (state_dict keys unchanged), without a
    graph break, including the calls with detached weights; two steps equal the eager ones."""
    from torch._dynamo.utils import counters
    engine = pytest.importorskip("bicyclegan.engine")
    model_cfg = engine.ModelConfig(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
                                   netD="basic_128", netD2="basic_128", num_Ds=1, impl=impl)
    data = [{k: torch.rand(2, 3, 32, 32) * 2 - 1 for k in "AB"} for _ in range(2)]
    runs = {}
    for mode in ("off", "aot_eager"):
        torch.manual_seed(0)
        model = engine.BicycleGAN(engine.TrainConfig(model=model_cfg, variant=variant, batch_size=2,
                                                     compile=mode))
        counters.clear()
        losses = [model.train_step(b) for b in data]
        assert not counters["graph_break"], dict(counters["graph_break"])
        runs[mode] = losses, {n: net.state_dict() for n, net in model.networks().items()}
    (losses, nets), (c_losses, c_nets) = runs["off"], runs["aot_eager"]
    for step, (a, b) in enumerate(zip(losses, c_losses)):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"step {step} {k}: {m}")
    for n in nets:
        assert list(c_nets[n]) == list(nets[n]), f"{n}: compiling changed the state_dict keys"
        for k in nets[n]:
            torch.testing.assert_close(c_nets[n][k], nets[n][k], rtol=1e-4, atol=1e-6,
                                       msg=lambda m, k=k, n=n: f"{n}.{k}: {m}")


LOAD_TRACE = """import sys, torch, bicyclegan.kernels as kernels
names = kernels.register_ops() if sys.argv[2] == "registered" else []
x, want = torch.load(sys.argv[1] + ".io")
got = torch.jit.load(sys.argv[1])(x)
print(sorted(names), float((got - want).abs().max()))
"""


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_saved_trace_with_the_kernels_loads_in_a_new_process_once_their_ops_are_registered(tmp_path):
    # The docs said importing bicyclegan.kernels was enough: its custom ops are registered by their first Triton
    # call, so a new process could not load the trace ("Unknown builtin op: bicyclegan::instance_norm_act").
    import subprocess
    import sys
    net = nn.Sequential(InstanceNormAct2d(2, act="relu", impl="triton"), AvgPool2d(3, 2, 1, impl="triton"))
    ref = nn.Sequential(InstanceNormAct2d(2, act="relu", impl="ref"), AvgPool2d(3, 2, 1, impl="ref"))
    path = tmp_path / "trace.pt"
    torch.jit.trace(net, torch.randn(1, 2, 8, 8)).save(str(path))
    x = torch.randn(3, 2, 10, 6)
    torch.save((x, ref(x)), str(path) + ".io")
    runs = {how: subprocess.run([sys.executable, "-c", LOAD_TRACE, str(path), how], capture_output=True, text=True)
            for how in ("imported", "registered")}
    assert "Unknown builtin op: bicyclegan::instance_norm_act" in runs["imported"].stderr
    names, err = runs["registered"].stdout.rsplit(" ", 1)
    assert runs["registered"].returncode == 0 and float(err) < 1e-5, runs["registered"].stderr
    assert names == str(sorted(f"bicyclegan::{op}{end}" for op in ("instance_norm_act", "avg_pool2d", "z_concat_act",
                                                                     "z_concat_conv") for end in ("", "_backward")))
