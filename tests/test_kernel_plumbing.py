"""The kernels' shared plumbing on its own: the activation names and their plain PyTorch forms, and
TwoFacedOp (the eager Function + custom op pair every kernel op is built from), exercised with a toy
op in plain PyTorch so that a failure here points at the helper, not at a kernel.
"""
import importlib
import inspect
import math
import os
import pkgutil
import subprocess
import sys
import threading
import types
import typing
import warnings
from typing import Optional

import pytest
import torch

import bicyclegan.kernels as kernels
from bicyclegan.kernels import ACTS, IMPLS, apply_act
from bicyclegan.kernels._twoface import TwoFacedOp


def test_names_are_exported_once():
    assert ACTS == ("none", "relu", "leaky_relu", "elu") and IMPLS == ("auto", "triton", "ref")
    from bicyclegan.kernels import norm_act, zinject
    assert norm_act.ACTS is ACTS and zinject.ACTS is ACTS and norm_act.apply_act is apply_act
    assert {"ACTS", "IMPLS", "apply_act"} <= set(kernels.__all__)


def test_apply_act_known_values():
    y = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    expected = {"none": [-2.0, -0.5, 0.0, 1.5], "relu": [0.0, 0.0, 0.0, 1.5],
                "leaky_relu": [-0.2, -0.05, 0.0, 1.5],
                "elu": [math.exp(-2) - 1, math.exp(-0.5) - 1, 0.0, 1.5]}
    for act in ACTS:
        torch.testing.assert_close(apply_act(y.clone(), act, 0.1), torch.tensor(expected[act]), msg=act)
    inplace = y.clone()
    assert apply_act(inplace, "elu", 0.0, inplace=True) is inplace
    with pytest.raises(ValueError, match="act must be one of"):
        apply_act(y, "gelu", 0.0)


# A toy op: (x * scale + shift, and x * scale kept for backward); backward d/dx = scale.
def _forward(x: torch.Tensor, shift: Optional[torch.Tensor], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    return x * scale + (0 if shift is None else shift), x * scale


def _save(inputs, outputs):
    x, shift, scale = inputs
    return (x, shift), (scale,)


def _backward(grad: torch.Tensor, x: torch.Tensor, shift: Optional[torch.Tensor], scale: float, need_x: bool,
              need_shift: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return grad * scale if need_x else grad.new_empty(0), grad.clone() if need_shift else grad.new_empty(0)


def _forward_fake(x, shift, scale):
    return torch.empty_like(x), torch.empty_like(x)


def _backward_fake(grad, x, shift, scale, need_x, need_shift):
    return (torch.empty_like(grad) if need_x else grad.new_empty(0),
            torch.empty_like(grad) if need_shift else grad.new_empty(0))


# For a backward with create_graph=True: x * scale^2 + shift, so that a test can tell which ran.
def _recompute(tensors, args, inputs):
    x, shift = tensors
    return (x, shift), x * args[0] ** 2 + (0 if shift is None else shift)


TOY = TwoFacedOp("bicyclegan_test::scale_shift", _forward, _backward, _save, _forward_fake, _backward_fake,
                 differentiable=("x", "shift"))
TOY2 = TwoFacedOp("bicyclegan_test::scale_shift2", _forward, _backward, _save, _forward_fake, _backward_fake,
                  differentiable=("x", "shift"), recompute=_recompute)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x  # returns its input: the custom-op face must hand back a copy


def _identity_backward(grad: torch.Tensor, need_x: bool) -> torch.Tensor:
    return grad.clone()


IDENTITY = TwoFacedOp("bicyclegan_test::identity", _identity, _identity_backward, lambda inputs, outputs: ((), ()),
                      lambda x: torch.empty_like(x), lambda grad, need_x: torch.empty_like(grad),
                      differentiable=("x",))


def test_eager_face_gradients_and_needs():
    x = torch.randn(3, 4, requires_grad=True)
    shift = torch.randn(3, 4, requires_grad=True)
    y = TOY(x, shift, 2.5)
    assert type(y.grad_fn).__name__ == "ScaleShiftFunctionBackward"  # the Function, not the custom op
    torch.testing.assert_close(y, x.detach() * 2.5 + shift.detach())
    g = torch.randn(3, 4)
    y.backward(g)
    torch.testing.assert_close(x.grad, g * 2.5)
    torch.testing.assert_close(shift.grad, g)
    frozen = torch.randn(3, 4)  # no gradient asked for: None, not an empty tensor
    TOY(x, frozen, 1.0).sum().backward()
    assert frozen.grad is None


def test_second_order_without_recompute_raises_at_create_graph():
    # A gradient penalty's gradient w.r.t. a weight before the op would silently lack the terms
    # through it (once_differentiable raised only on routes that reach its error node): an op
    # with no recompute refuses the create_graph backward itself, whichever route comes next.
    x = torch.randn(3, requires_grad=True)
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scale_shift: the Triton kernels' gradients are first order.*impl='ref'"):
        torch.autograd.grad(TOY(x * w, None, 2.0).pow(2).sum(), x, create_graph=True)
    # A plain backward, and one that keeps the graph without building a new one, are unaffected.
    y = TOY(x * w, None, 2.0).pow(2).sum()
    (gx,) = torch.autograd.grad(y, x, retain_graph=True)
    torch.testing.assert_close(gx, 2 * (2.0 * x * w) * 2.0 * w)
    y.backward()
    torch.testing.assert_close(w.grad, 2 * (2.0 * x * w) * 2.0 * x)


@pytest.mark.parametrize("face", ["function", "custom_op"])
def test_create_graph_backward_differentiates_the_recompute(face):
    """With grad mode on (create_graph=True) the gradients are the recompute's, with a graph back
    to the inputs, to what made them and to the incoming gradient; without, the kernels' backward
    runs (the toy's recompute is scaled differently, so the two are told apart). The custom op's
    registered autograd does the same in eager code."""
    op = TOY2 if face == "function" else (lambda *a: TOY2.forward_op(*a)[0])
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    shift = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = op(x * w, shift, 2.0)
    assert type(y.grad_fn).__name__ == ("ScaleShift2FunctionBackward" if face == "function"
                                        else "GeneratedBackwardFor_bicyclegan_test_scale_shift2_defaultBackward")
    (first,) = torch.autograd.grad(y.pow(2).sum(), x, retain_graph=True)  # the kernels': scale 2
    torch.testing.assert_close(first, 2 * (2.0 * x * w + shift) * 2.0 * w)
    # create_graph: d/dx of sum(y^2) as the recompute says (dy/dx = 4 w), itself differentiable.
    (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
    torch.testing.assert_close(gx, 2 * (2.0 * x * w + shift) * 4.0 * w)
    gw, gshift = torch.autograd.grad(gx.sum(), [w, shift])
    torch.testing.assert_close(gw, 2 * 2.0 * w * 4.0 * x + 2 * (2.0 * x * w + shift) * 4.0)
    torch.testing.assert_close(gshift, 2 * 4.0 * w)
    # Only what needs a gradient is asked of the recompute (x alone here: shift is a constant).
    (gx,) = torch.autograd.grad(op(x, shift.detach(), 2.0).sum(), x, create_graph=True)
    torch.testing.assert_close(gx, torch.full_like(x, 4.0))


def test_custom_op_face():
    x = torch.randn(3, 4, requires_grad=True)
    shift = torch.randn(3, 4, requires_grad=True)
    torch.library.opcheck(TOY.forward_op, (x, shift, 2.5))
    torch.library.opcheck(IDENTITY.forward_op, (x,))
    compiled = torch.compile(lambda a, b: TOY(a, b, 2.5) * 2, backend="aot_eager", fullgraph=True)
    g = torch.randn(3, 4)
    compiled(x, shift).backward(g)
    torch.testing.assert_close(x.grad, g * 5.0)
    torch.testing.assert_close(shift.grad, g * 2)
    out = IDENTITY.forward_op(x.detach())
    assert out.data_ptr() != x.data_ptr() and torch.equal(out, x.detach())
    ident = torch.compile(lambda a: IDENTITY(a) * 3, backend="aot_eager", fullgraph=True)
    x.grad = None
    ident(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 3.0))


def test_signature_mismatch_is_refused():
    with pytest.raises(TypeError, match="backward end with"):
        TwoFacedOp("bicyclegan_test::bad", _forward, _backward, _save, _forward_fake, _backward_fake,
                   differentiable=("x",))


@pytest.mark.skipif(not kernels._impl.interpreting(), reason="runs the kernels in Triton's interpreter")
def test_auto_runs_the_kernels_in_every_kernel_dtype():
    """impl="auto" sends fp32, bf16 and fp16 to the kernels (only float64 to the reference)."""
    from bicyclegan.kernels._impl import resolve_impl
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.randn(1, 2, 3, 3).to(dtype).requires_grad_()
        assert resolve_impl("auto", x, "op") == "triton", dtype
        assert type(kernels.instance_norm_act(x).grad_fn).__name__ == "InstanceNormActFunctionBackward", dtype
        z = torch.randn(1, 2).to(dtype)
        assert type(kernels.z_concat_act(x, z).grad_fn).__name__ == "ZConcatActFunctionBackward", dtype
    assert resolve_impl("auto", torch.randn(1, dtype=torch.float64), "op") == "ref"


def test_meta_tensors_take_the_reference_under_the_interpreter():
    """The interpreter runs the kernels on the host's memory: a "meta" tensor (shapes only, as a model
    built on meta to size it passes) went to Triton under TRITON_INTERPRET=1 and failed there ("Cannot
    copy out of meta tensor"). impl="auto" now gives every op torch's meta shapes."""
    from bicyclegan.kernels._impl import interpreting, resolve_impl
    assert interpreting()  # as CI runs the kernels (conftest)
    x, z = torch.randn(2, 3, 8, 8, device="meta"), torch.randn(2, 2, device="meta")
    assert resolve_impl("auto", x, "op") == "ref" and resolve_impl("auto", torch.randn(2, 3), "op") == "triton"
    assert kernels.instance_norm_act(x).shape == (2, 3, 8, 8)
    assert kernels.avg_pool2d(x, 3, 2, 1).shape == (2, 3, 4, 4)
    assert kernels.z_concat_conv(x, z, torch.randn(4, 5, 4, 4, device="meta")).shape == (2, 4, 4, 4)


# TRITON_INTERPRET set after triton's import: triton had built its @jit helpers compiled, and the ops sent
# CPU tensors to the interpreter, which died in them ("Cannot call @triton.jit'd outside of the scope of a
# kernel"); tune --dry-run, which checked for this, went on where the variable was set by then.
SET_LATE = """import os, sys, torch, triton
from bicyclegan.kernels import instance_norm_act, tune, z_concat_conv
from bicyclegan.kernels._impl import resolve_impl
os.environ["TRITON_INTERPRET"] = "1"
x = torch.randn(2, 3, 6, 6)
assert resolve_impl("auto", x, "op") == "ref"
instance_norm_act(x)
z_concat_conv(x, torch.randn(2, 2), torch.randn(4, 5, 4, 4))
try:
    instance_norm_act(x, impl="triton")
except RuntimeError as e:
    print(e)
tune.main(["--dry-run", "--out", sys.argv[1]])
"""

# Set before, to a value Triton takes for 1 (its knobs: true, on, yes): the kernels run in its interpreter, but
# auto took the reference and impl='triton' was refused ("needs ... TRITON_INTERPRET=1").
SET_TRUE = """import torch
from bicyclegan.kernels import instance_norm_act
from bicyclegan.kernels._impl import resolve_impl
x = torch.randn(2, 3, 6, 6, requires_grad=True)
print(resolve_impl("auto", x, "op"), type(instance_norm_act(x, impl="triton").grad_fn).__name__)
"""


def _python(code, *args, interpret=None):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # (conftest sets it)
    env |= {"TRITON_INTERPRET": interpret} if interpret is not None else {}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not kernels._impl.triton_available(), reason="needs Triton")
def test_the_interpreter_is_what_triton_was_imported_with(tmp_path):
    proc = _python(SET_LATE, str(tmp_path / "t.json"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stdout.strip() == ("instance_norm_act: impl='triton' on a cpu tensor runs Triton's interpreter: set "
                                   "TRITON_INTERPRET=1 before triton is imported (it was imported before "
                                   "TRITON_INTERPRET was set)"), proc.stdout
    assert proc.stderr.strip().endswith("error: --dry-run: set TRITON_INTERPRET=1 before triton is imported (or run "
                                        "it as a command)"), proc.stderr[-3000:]
    import triton
    if hasattr(triton, "knobs"):  # (before its knobs, as in triton 3.0, Triton took "1" alone)
        proc = _python(SET_TRUE, interpret="true")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.split() == ["triton", "InstanceNormActFunctionBackward"]


# The parameter types torch 2.4's torch.library.custom_op infers a schema from (its infer_schema's table,
# as its error lists them): PEP 585's list[int] is not among them (nor in torch 2.5's), and setup.py takes
# torch from 2.4 on.
_T, _O, _S, _L, _U = torch.Tensor, typing.Optional, typing.Sequence, typing.List, typing.Union
_SCALARS = (int, float, bool)
TORCH_2_4_PARAMETER_TYPES = {
    _T, _O[_T], _S[_T], _L[_T], _S[_O[_T]], _L[_O[_T]], str, _O[str], _U[int, float, bool],
    _U[int, float, bool, None], _S[_U[int, float, bool]], _L[_U[int, float, bool]], torch.dtype, _O[torch.dtype],
    torch.device, _O[torch.device],
    *(t for s in _SCALARS for t in (s, _O[s], _S[s], _L[s], _O[_S[s]], _O[_L[s]]))}


def _kernel_ops():
    """Every TwoFacedOp of the kernels' modules, by its registered name: an op added later is checked too."""
    found = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"bicyclegan.kernels.{info.name}")
        found.update({v._name: v for v in vars(module).values() if isinstance(v, TwoFacedOp)})
    return found


KERNEL_OPS = _kernel_ops()


def test_the_kernel_ops_are_all_found():
    assert {"bicyclegan::avg_pool2d", "bicyclegan::instance_norm_act", "bicyclegan::z_concat_act",
            "bicyclegan::z_concat_conv"} <= set(KERNEL_OPS)


@pytest.mark.parametrize("name", sorted(KERNEL_OPS))
def test_the_kernel_ops_parameters_are_types_torch_2_4_makes_a_schema_of(name):
    op = KERNEL_OPS[name]
    for face in (op.run_forward, op.run_backward):
        impl = face.__wrapped__  # (the kernel's own function, whose annotations custom_op reads)
        for param in inspect.signature(impl).parameters.values():
            assert param.annotation in TORCH_2_4_PARAMETER_TYPES, (name, impl.__name__, param.name, param.annotation)


def test_an_op_is_made_where_custom_ops_have_no_register_vmap(monkeypatch):
    """torch 2.4's custom ops have no register_vmap: the op is made without the backward's vmap rule (torch's
    own fallback then takes a vmap of it), where the kernels' modules failed to import."""
    class WithoutVmap:  # a custom op as torch 2.4 makes one (torch's own modules keep theirs)
        def __init__(self, op):
            self.op = op

        def __getattr__(self, name):
            if name == "register_vmap":
                raise AttributeError(name)
            return getattr(self.op, name)

        def __call__(self, *args):
            return self.op(*args)

    make = torch.library.custom_op
    monkeypatch.setattr(torch.library, "custom_op", lambda *args, **kwargs: WithoutVmap(make(*args, **kwargs)))
    op = TwoFacedOp("bicyclegan_test::scale_shift_no_vmap", _forward, _backward, _save, _forward_fake, _backward_fake,
                    differentiable=("x", "shift"))
    x = torch.randn(3, 4, requires_grad=True)
    y = op.forward_op(x, None, 2.0)[0]
    (gx,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(gx, torch.full_like(x, 2.0))


# ---------------------------------------------------------------------------------------------
# Fallbacks of impl="auto" to the reference: recorded, warned of or refused (set_fallback_mode, $BICYCLEGAN_KERNELS)
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def fallback_mode():
    """set_fallback_mode for one test: the record and the once-only warnings' memory start empty; the mode is put
    back after it."""
    from bicyclegan.kernels import _impl
    saved = _impl._fallback_mode
    kernels.fallbacks(clear=True)
    _impl._warn_once.cache_clear()
    yield kernels.set_fallback_mode
    _impl._fallback_mode = saved
    kernels.fallbacks(clear=True)


def _f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)


F64 = "x is torch.float64 (the kernels take torch.float32, torch.bfloat16, torch.float16)"
# Every place impl="auto" takes the reference where the kernels run (here: the interpreter), with its reason.
AUTO_FALLBACKS = {
    "norm float64": (lambda: kernels.instance_norm_act(_f64(2, 3, 4, 4)), "instance_norm_act", F64),
    "norm running statistics": (lambda: kernels.InstanceNormAct2d(3, track_running_stats=True)(torch.randn(2, 3, 4, 4)),
                                "instance_norm_act", "track_running_stats=True (the kernels compute instance "
                                                     "statistics only)"),
    "z_concat_act float64": (lambda: kernels.z_concat_act(_f64(2, 3, 4, 4), _f64(2, 2)), "z_concat_act", F64),
    "z_concat_conv float64": (lambda: kernels.z_concat_conv(_f64(2, 3, 4, 4), _f64(2, 2), _f64(4, 5, 3, 3)),
                              "z_concat_conv", F64),
    "ZConcatConv2d float64": (lambda: kernels.ZConcatConv2d(3, 2, 4, dtype=torch.float64)(_f64(2, 3, 4, 4), _f64(2, 2)),
                              "z_concat_conv", F64),
    "pool float64": (lambda: kernels.avg_pool2d(_f64(2, 3, 4, 4), 2), "avg_pool2d", F64),
    "pool ceil_mode": (lambda: kernels.AvgPool2d(3, 2, 1, ceil_mode=True)(torch.randn(2, 3, 6, 6)), "avg_pool2d",
                       "ceil_mode=True (the kernels pool in floor mode)"),
}
# impl="auto" calls that run the kernels, or that compute nothing a kernel would (no fallback to report).
NOT_FALLBACKS = {
    "norm": lambda: kernels.instance_norm_act(torch.randn(2, 3, 4, 4)),
    "norm bf16": lambda: kernels.InstanceNormAct2d(3)(torch.randn(2, 3, 4, 4).bfloat16()),
    "norm of an empty batch": lambda: kernels.instance_norm_act(torch.randn(0, 3, 4, 4)),
    "norm on meta": lambda: kernels.instance_norm_act(torch.randn(2, 3, 4, 4, device="meta")),
    "z conv": lambda: kernels.ZConcatConv2d(3, 2, 4)(torch.randn(2, 3, 4, 4), torch.randn(2, 2)),
    "z conv of no z channel": lambda: kernels.z_concat_conv(torch.randn(2, 3, 4, 4), torch.randn(2, 0),
                                                            torch.randn(4, 3, 3, 3)),
    "pool": lambda: kernels.avg_pool2d(torch.randn(2, 3, 4, 4), 2),
    "impl='ref'": lambda: kernels.instance_norm_act(_f64(2, 3, 4, 4), impl="ref"),
}


@pytest.mark.skipif(not kernels._impl.interpreting(), reason="runs the kernels in Triton's interpreter")
def test_every_fallback_of_auto_is_recorded_warned_of_or_refused(fallback_mode):
    """impl="auto" took the reference without a word where the kernels could not run its input (float64, a
    norm with running statistics, ceil_mode pooling): a user timing a model could not tell. Each is now recorded
    (fallbacks()), warned of once per op and reason ("warn"), or refused with the reason ("strict")."""
    assert kernels.get_fallback_mode() == "allow"  # (the default: conftest sets no BICYCLEGAN_KERNELS)
    for what, (call, op, reason) in AUTO_FALLBACKS.items():
        call(), call()
        assert kernels.fallbacks(clear=True) == {(op, reason): 2}, what
    for what, call in NOT_FALLBACKS.items():
        call()
        assert kernels.fallbacks() == {}, what
    assert fallback_mode("warn") == "allow"
    for what, (call, op, reason) in AUTO_FALLBACKS.items():
        kernels._impl._warn_once.cache_clear()
        with pytest.warns(RuntimeWarning) as seen:
            call(), call()
        said = [str(w.message) for w in seen if "PyTorch reference" in str(w.message)]
        assert said == [f"{op}: runs the PyTorch reference instead of the Triton kernels: {reason}"], what
    assert fallback_mode("strict") == "warn"
    for what, (call, op, reason) in AUTO_FALLBACKS.items():
        with pytest.raises(RuntimeError) as e:
            call()
        assert str(e.value) == (f"{op}: impl='auto' would run the PyTorch reference instead of the Triton kernels: "
                                f"{reason}; the fallback mode is 'strict' ($BICYCLEGAN_KERNELS=strict or "
                                f"bicyclegan.kernels.set_fallback_mode('strict')), which refuses it (impl='ref' asks "
                                f"for the reference)"), what
    for what, call in NOT_FALLBACKS.items():
        call()
    with pytest.raises(ValueError, match=r"set_fallback_mode: mode must be one of \('allow', 'warn', 'strict'\), "
                                         r"got 'error'"):
        fallback_mode("error")


def test_set_fallback_mode_overrides_a_bad_environment_value(fallback_mode, monkeypatch):
    from bicyclegan.kernels import _impl
    monkeypatch.setenv("BICYCLEGAN_KERNELS", "stirct")
    _impl._fallback_mode = None  # (as in a new process: the variable not read yet)
    with pytest.raises(ValueError, match=r"\$BICYCLEGAN_KERNELS must be one of .* got 'stirct'"):
        kernels.get_fallback_mode()
    assert fallback_mode("warn") == "allow"
    assert kernels.get_fallback_mode() == "warn"


@pytest.mark.skipif(not kernels._impl.interpreting(), reason="runs the kernels in Triton's interpreter")
def test_a_create_graph_backward_is_recorded_and_not_refused(fallback_mode):
    """A gradient penalty's backward differentiates the reference (no kernel computes second order): recorded and,
    in strict mode, warned of, not refused, or no penalty could run with the kernels at all."""
    fallback_mode("strict")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), kernels.InstanceNormAct2d(4, act="relu"),
                              kernels.AvgPool2d(2), torch.nn.Conv2d(4, 1, 2))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    net(x).sum().backward()  # (first order: the kernels, nothing recorded)
    assert kernels.fallbacks() == {}
    reason = ("a backward with create_graph=True (a gradient penalty, double backward, torch.func's grad) "
              "differentiates the reference, recomputed")
    with pytest.warns(RuntimeWarning) as seen:
        for _ in range(2):
            grad, = torch.autograd.grad(net(x).sum(), x, create_graph=True)
            grad.square().sum().backward()
    assert kernels.fallbacks() == {("instance_norm_act", reason): 2, ("avg_pool2d", reason): 2}
    assert sorted(str(w.message) for w in seen if "PyTorch reference" in str(w.message)) == [
        f"{op}: runs the PyTorch reference instead of the Triton kernels: {reason} (no kernel computes it, so "
        f"strict mode only warns)" for op in ("avg_pool2d", "instance_norm_act")]


def test_the_record_is_kept_until_cleared_and_given_as_a_copy(fallback_mode):
    """fallbacks() reads the record and keeps it (a caller's second look sees the same counts), as a dict of its
    own: emptied by its caller, the record is not; fallbacks(clear=True) gives the counts and starts it again."""
    for reason in ("a reason", "a reason", "another"):
        kernels._impl.fallback("op", reason)
    counts = {("op", "a reason"): 2, ("op", "another"): 1}
    seen = kernels.fallbacks()
    assert seen == counts
    seen.clear()
    assert kernels.fallbacks() == counts
    assert kernels.fallbacks(clear=True) == counts and kernels.fallbacks() == {}


def test_a_fallback_said_anyway_warns_once_in_allow_mode(fallback_mode, monkeypatch):
    """warn=True (auto on a CUDA tensor where triton cannot be imported: a broken install) warns in "allow" mode
    too, once per op and reason; the others are recorded without a word."""
    fallback_mode("allow")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(2):
            kernels._impl.fallback("op", "quiet")
            kernels._impl.fallback("op", "said", warn=True)
    assert [str(w.message) for w in seen] == ["op: runs the PyTorch reference instead of the Triton kernels: said"]
    assert kernels.fallbacks() == {("op", "quiet"): 2, ("op", "said"): 2}
    # auto on a CUDA tensor with triton not importable (a stand-in for the tensor: resolve_impl reads its device,
    # dtype and is_cuda alone): said, where a CPU tensor's fallback is recorded alone
    cuda = types.SimpleNamespace(device=torch.device("cuda"), dtype=torch.float32, is_cuda=True)
    monkeypatch.setattr(kernels._impl, "_TRITON_OK", False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert kernels._impl.resolve_impl("auto", cuda, "norm") == "ref"
        assert kernels._impl.resolve_impl("auto", torch.zeros(1), "pool") == "ref"
    assert [str(w.message) for w in seen] == [
        "norm: runs the PyTorch reference instead of the Triton kernels: triton is not importable"]
    with pytest.raises(TypeError):
        fallback_mode()  # (no mode: no default)


FALLBACK_ENV = """import warnings, torch
from bicyclegan.kernels import fallbacks, get_fallback_mode, instance_norm_act
x = torch.randn(2, 3, 4, 4)
try:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        instance_norm_act(x), instance_norm_act(x)
    print(get_fallback_mode(), list(fallbacks().values()), "|".join(str(w.message) for w in seen))
except (RuntimeError, ValueError) as e:
    print(type(e).__name__, e)
"""


@pytest.mark.parametrize("mode", ["", "warn", "strict", "Strict"])
def test_the_fallback_mode_from_the_environment_and_a_cpu_without_the_interpreter(mode, monkeypatch):
    """$BICYCLEGAN_KERNELS sets the mode; on a CPU without Triton's interpreter, auto's reference is the fallback
    that says so (a bad value is refused by the variable's name)."""
    monkeypatch.setenv("BICYCLEGAN_KERNELS", mode)
    proc = _python(FALLBACK_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reason = ("a cpu tensor (the kernels run on CUDA tensors, or on CPU ones in Triton's interpreter: "
              "TRITON_INTERPRET=1 before triton is imported)")
    said = {"": "allow [2] \n",
            "warn": f"warn [2] instance_norm_act: runs the PyTorch reference instead of the Triton kernels: {reason}\n",
            "strict": f"RuntimeError instance_norm_act: impl='auto' would run the PyTorch reference instead of the "
                      f"Triton kernels: {reason}; the fallback mode is 'strict'",
            "Strict": "ValueError $BICYCLEGAN_KERNELS must be one of ('allow', 'warn', 'strict') (or unset), got "
                      "'Strict'"}[mode]
    assert proc.stdout.startswith(said), proc.stdout


def test_the_record_counts_every_fallback_of_threads_calling_at_once(fallback_mode):
    """Threads run the ops at once (nn.DataParallel's replicas, a server's requests): the record's unlocked
    read-increment-write lost counts when a thread switch fell between the read and the write (here most of them), and
    a clear=True's copy and clear lost those made between the two (or counted twice one whose increment they split).
    Clears go on for as long as the callers run (200 of them ended before most calls), in a few rounds (a round
    with an unlocked clear lost counts in 4 of 5 runs)."""
    interval = sys.getswitchinterval()
    calls, threads = 5000, 8
    counted = []

    def call():
        for _ in range(calls):
            kernels._impl.fallback("op", "a reason")

    def clear(callers, cleared):
        while any(t.is_alive() for t in callers):
            cleared.append(kernels.fallbacks(clear=True).get(("op", "a reason"), 0))

    sys.setswitchinterval(1e-6)  # (a thread switch at almost every bytecode)
    try:
        for _ in range(5):
            kernels.fallbacks(clear=True)
            callers, cleared = [threading.Thread(target=call) for _ in range(threads)], []
            for t in callers:
                t.start()
            clearing = threading.Thread(target=clear, args=(callers, cleared))
            clearing.start()
            for t in [*callers, clearing]:
                t.join()
            counted.append(sum(cleared) + kernels.fallbacks().get(("op", "a reason"), 0))
    finally:
        sys.setswitchinterval(interval)
    assert counted == [calls * threads] * 5
