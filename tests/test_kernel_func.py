"""torch.func transforms (grad, vjp, jacrev, vmap and their compositions, functional_call) over the
Triton path of every kernel op, against the same transform over impl='ref': outputs and gradients.

The ops' autograd.Function face has the setup_context form and a vmap rule (_twoface.py); before,
each of these transforms refused the Triton path ('it must override the setup_context
staticmethod'). Under a transform a backward always builds a graph (torch.func.grad asks for
create_graph), so the gradients are the reference's recompute there; the forward and the vmapped
launches are the kernels'. Forward-mode AD (jvp, jacfwd, hessian) is refused with a message.
"""
import pytest
import torch
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap

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

pytestmark = [pytest.mark.skipif(not interpreting(), reason="runs the kernels in Triton's interpreter"),
              # torch's per-slice fallback for an op without a vmap rule warns, asking users to report it
              # to PyTorch (jacrev vmaps the backward op before it had its rule; torch 2.4's custom ops take
              # none, and there the fallback runs)
              *([pytest.mark.filterwarnings("error:There is a performance drop")]
                if hasattr(norm_act_triton.OP.backward_op, "register_vmap") else [])]


def _pair(make):
    """The same layer twice, impl='triton' and impl='ref', with the same weights."""
    torch.manual_seed(0)
    layers = {impl: make(impl) for impl in ("triton", "ref")}
    layers["ref"].load_state_dict(layers["triton"].state_dict())
    return layers


def _norm(impl, affine, act):
    layer = InstanceNormAct2d(3, affine=affine, act=act, impl=impl)
    if affine:
        with torch.no_grad():
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
    return layer


LAYERS = {
    "norm_lrelu": lambda impl: _norm(impl, False, "leaky_relu"),  # the variant that saves y, not x
    "norm_relu_affine": lambda impl: _norm(impl, True, "relu"),
    "zconv": lambda impl: ZConcatConv2d(3, 2, 4, kernel_size=3, stride=1, padding=1, impl=impl),
    "avg_pool": lambda impl: AvgPool2d(3, 2, 1, count_include_pad=False, impl=impl),
    "zconv_fused": lambda impl: ZConcatConv2d(3, 2, 4, kernel_size=3, stride=2, padding=1, impl=impl,
                                              mode="fused_concat"),
}
X = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
Z = torch.randn(2, 2, generator=torch.Generator().manual_seed(2))
XB = torch.randn(3, 2, 3, 5, 5, generator=torch.Generator().manual_seed(3))  # 3 vmapped slices of X's shape
ZB = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(4))


def _call(layer, x, z):
    return layer(x) if isinstance(layer, (InstanceNormAct2d, AvgPool2d)) else layer(x, z)


def _params(layer):
    return {k: v.detach() for k, v in layer.named_parameters()}


# Each: (layer, impl) -> a tensor or a tuple / dict of them, the same transform for both impls.
TRANSFORMS = {
    "grad_x": lambda m: grad(lambda x, z: _call(m, x, z).pow(3).sum(), argnums=(0, 1))(X, Z),
    "grad_params": lambda m: grad(lambda p: functional_call(m, p, (X,) if isinstance(m, InstanceNormAct2d)
                                                            else (X, Z)).pow(3).sum())(_params(m)),
    "vjp": lambda m: vjp(lambda x: _call(m, x, Z), X)[1](_call(m, X, Z).detach().cos()),
    # X's 4 x 4 corner: jacrev runs the backward op once per output element (the per-slice vmap rule),
    # in the interpreter 0.1-0.3 s each; still two samples, and the pooling's three window sizes
    "jacrev": lambda m: jacrev(lambda x: _call(m, x, Z))(X[:, :, :4, :4].contiguous()),
    # the backward op vmapped over a dimension other than the first (its vmap rule takes each slice there)
    "vmap_dim1_of_vjp": lambda m: vmap(vjp(lambda x: _call(m, x, Z), X)[1], in_dims=1)(
        torch.stack([_call(m, X, Z).detach().cos() * (i + 1) for i in range(3)], 1)),
    "vmap": lambda m: vmap(lambda x, z: _call(m, x, z))(XB, ZB),
    "vmap_dim1": lambda m: vmap(lambda x, z: _call(m, x, z), in_dims=(1, 1))(XB.transpose(0, 1), ZB.transpose(0, 1)),
    "vmap_x_only": lambda m: vmap(lambda x: _call(m, x, Z))(XB),
    "per_sample_grad": lambda m: vmap(grad(lambda p, x, z: functional_call(
        m, p, (x[None],) if isinstance(m, InstanceNormAct2d) else (x[None], z[None])).pow(3).sum()),
        in_dims=(None, 0, 0))(_params(m), X, Z),
    "grad_of_grad": lambda m: grad(lambda x: grad(lambda x: _call(m, x, Z).pow(3).sum())(x).pow(2).sum())(X),
    "grad_of_vmap": lambda m: grad(lambda x: vmap(lambda x, z: _call(m, x, z))(x, ZB).pow(3).sum())(XB),
    # Not torch.func: autograd's own batch of gradients at once (legacy vmap over the backward); the kernels read a
    # batched tensor's storage, which it has none of ("Cannot access storage of BatchedTensorImpl")
    "grads_batched": lambda m: torch.autograd.grad(
        _call(m, xr := X.clone().requires_grad_(), Z), xr,
        torch.stack([_call(m, X, Z).detach().cos() * (i + 1) for i in range(3)]), is_grads_batched=True),
    "jacobian_vectorized": lambda m: torch.autograd.functional.jacobian(
        lambda x: _call(m, x, Z), X[:, :, :4, :4].contiguous(), vectorize=True),
    "ensemble": lambda m: vmap(lambda p: functional_call(m, p, (X,) if isinstance(m, InstanceNormAct2d)
                                                         else (X, Z)))(
        {k: torch.stack([v * (i + 1) for i in range(3)]) for k, v in _params(m).items()}),
}


OVER_PARAMETERS = ("grad_params", "per_sample_grad", "ensemble")  # meaningless for a layer without any


@pytest.mark.parametrize("layer, transform", [
    (layer, transform) for layer in LAYERS for transform in TRANSFORMS
    if transform not in OVER_PARAMETERS or list(LAYERS[layer]("ref").parameters())])
def test_transform_matches_the_reference(layer, transform):
    layers = _pair(LAYERS[layer])
    got, expected = (torch.utils._pytree.tree_leaves(TRANSFORMS[transform](layers[impl])) for impl in ("triton", "ref"))
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        scale = max(1.0, e.abs().max().item())
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("op, layer, slices", [(norm_act_triton.OP, "norm_relu_affine", False),
                                               (zinject_triton.ZCONV, "zconv", False),
                                               (zinject_triton.ZCONV, "zconv", True),
                                               (zinject_triton.ZCAT, "zconv_fused", False),
                                               (avg_pool_triton.OP, "avg_pool", False)])
def test_vmap_runs_the_kernels_once_or_slice_by_slice(monkeypatch, op, layer, slices):
    """vmap folds the vmapped dimension into one launch (the norm into channels, z injection into the
    batch), except for a vmapped conv weight (an ensemble), which runs slice by slice."""
    calls = []
    real = op.run_forward
    monkeypatch.setattr(op, "run_forward", lambda *a: calls.append(a[0].shape) or real(*a))
    m = LAYERS[layer]("triton")
    if slices:
        TRANSFORMS["ensemble"](m)
        assert calls == [X.shape] * 3
    else:
        TRANSFORMS["vmap"](m)
        assert len(calls) == 1


def test_vmap_of_the_functional_op():
    got = vmap(lambda x, z: z_concat_act(x, z, "elu", impl="triton"), in_dims=(0, None))(XB, Z)
    expected = vmap(lambda x, z: z_concat_act(x, z, "elu", impl="ref"), in_dims=(0, None))(XB, Z)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("layer", ["norm_lrelu", "zconv", "zconv_fused", "avg_pool"])
def test_forward_mode_is_refused_naming_impl_ref(layer):
    m = LAYERS[layer]("triton")
    with pytest.raises(NotImplementedError, match="forward-mode AD .* build the layers with impl='ref'"):
        jvp(lambda x: _call(m, x, Z), (X,), (X.cos(),))
    ref = LAYERS[layer]("ref")
    jvp(lambda x: _call(ref, x, Z), (X,), (X.cos(),))  # which takes it
    # and autograd's own forward mode, outside torch.func (torch's "You must implement the jvp function")
    import torch.autograd.forward_ad as fwAD
    for impl, layer_ in (("triton", m), ("ref", ref)):
        with fwAD.dual_level():
            if impl == "triton":
                with pytest.raises(NotImplementedError, match="forward-mode AD .* build the layers with impl='ref'"):
                    _call(layer_, fwAD.make_dual(X, X.cos()), Z)
            else:
                assert fwAD.unpack_dual(_call(layer_, fwAD.make_dual(X, X.cos()), Z)).tangent is not None


@pytest.mark.parametrize("layer", LAYERS)
def test_torchscript_is_refused_by_the_layers_name(layer):
    # It failed inside an error message's f-string ("cannot statically infer the expected size of a list")
    for model in (LAYERS[layer]("triton"), torch.nn.Sequential(torch.nn.Identity(), LAYERS[layer]("ref"))):
        with pytest.raises(RuntimeError, match=f"^{type(LAYERS[layer]('ref')).__name__}: torch.jit.script cannot "
                                               f"compile this layer .* torch.export and torch.compile take it "
                                               r"\(torch.jit.trace too, deprecated\)$"):
            torch.jit.script(model)


@pytest.mark.parametrize("layer", ["norm_lrelu", "zconv", "zconv_fused", "avg_pool"])
def test_jacrev_of_jacrev_is_refused_naming_what_works(layer):
    """jacrev(jacrev(f)): the inner jacrev calls vjp's function after vjp has returned, where the backward
    is the kernels' first-order op, and the outer transform would differentiate it: refused with a message
    naming what does work (was: torch's 'must override the setup_context staticmethod', from deep inside).
    What it names, jacrev(grad(f)), gives the reference's Hessian."""
    m, ref = LAYERS[layer]("triton"), LAYERS[layer]("ref")
    ref.load_state_dict(m.state_dict())
    x = X[:, :, :3, :3].contiguous()

    def f(layer):
        return lambda x: _call(layer, x, Z).pow(3).sum()
    with pytest.raises(NotImplementedError, match=r"jacrev\(jacrev\(f\)\).*jacrev\(grad\(f\)\).*impl='ref'"):
        jacrev(jacrev(f(m)))(x)
    expected = jacrev(jacrev(f(ref)))(x)  # which the reference takes
    got = jacrev(grad(f(m)))(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, expected.abs().max().item()))


def test_an_export_with_the_layers_reference_holds_no_kernel_op_and_computes_the_same():
    """docs/kernels.md: a graph exported where the kernels run holds their bicyclegan:: ops (a .pt2 that then fails
    on a CPU host, or without Triton); the layers' impl set to "ref" exports plain aten ops, the same values."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = ZConcatConv2d(3, 2, 4)
            self.norm = InstanceNormAct2d(4)
            self.pool = AvgPool2d(3, 2, 1, count_include_pad=False)

        def forward(self, x, z):
            return self.pool(self.norm(self.conv(x, z)))
    torch.manual_seed(0)
    net, x, z = Net(), torch.randn(2, 3, 8, 8), torch.randn(2, 2)
    ops = {}
    for impl in ("auto", "ref"):
        for m in net.modules():
            if hasattr(m, "impl"):
                m.impl = impl
        exported = torch.export.export(net, (x, z))
        ops[impl] = sorted(str(n.target) for n in exported.graph.nodes if "bicyclegan" in str(n.target))
        torch.testing.assert_close(exported.module()(x, z), net(x, z), rtol=1e-5, atol=1e-5)
    assert ops["auto"] == ["bicyclegan.avg_pool2d.default", "bicyclegan.instance_norm_act.default",
                           "bicyclegan.z_concat_conv.default"] and ops["ref"] == []
