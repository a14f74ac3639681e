"""Choosing between a Triton kernel and its pure-PyTorch reference (the `impl` switch).

"auto" picks Triton for CUDA tensors (or anywhere under TRITON_INTERPRET=1, which is how CI runs
the kernels on CPU) in the dtypes the kernels take, and the reference elsewhere. Every such fallback goes through
`fallback`, which records it (`fallbacks()`) and, as the mode says (`set_fallback_mode`, $BICYCLEGAN_KERNELS),
warns once per reason or raises: a user timing a model can tell it ran the kernels.
"""
import functools
import operator
import os
import sys
import threading
import warnings

import torch

from ._names import IMPLS

# The dtypes the kernels take (the z injection's also float64 under impl='triton', for gradcheck).
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

_TRITON_OK = None  # probed on first use: importing triton takes a while and CPU-only users need not pay it


class NotScriptable:
    """torch.jit.script of a model holding one of these layers says so by name (it failed deep in an error message's
    f-string, "cannot statically infer the expected size of a list")."""

    def __prepare_scriptable__(self):
        raise RuntimeError(f"{type(self).__name__}: torch.jit.script cannot compile this layer (its kernels are "
                           f"Triton and Python); torch.export and torch.compile take it (torch.jit.trace too, "
                           f"deprecated)")


def triton_available() -> bool:
    # A module global rather than functools.lru_cache, which torch.compile traces through with a warning.
    global _TRITON_OK
    if _TRITON_OK is None:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
            _TRITON_OK = True
        except Exception:  # a broken install is as good as none: fall back, with a warning
            _TRITON_OK = False
    return _TRITON_OK


# A constant for torch.compile: traced through, the probe left a guard on _TRITON_OK being unset in
# the first network compiled before any op call had set it, and that network's next call compiled
# it again (the encoder's, in the training step: one inductor compile of seven wasted). This is the
# mark torch.compiler.assume_constant_result sets (torch 2.0 to 2.13); calling it would import
# torch._dynamo, and triton with it, whenever this module is imported.
triton_available._dynamo_marked_constant = True


# Where TRITON_INTERPRET asks for the interpreter but triton was imported without it (tune.py's --dry-run says it too).
LATE_INTERPRETER = "set TRITON_INTERPRET=1 before triton is imported"


def _interpreter_asked() -> bool:
    """Whether TRITON_INTERPRET asks for Triton's interpreter, as the installed triton reads it (its knobs: 1,
    true, on...; "1" alone before it had them, triton 3.0). Unset, "" or "0" say no without importing triton."""
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0") or not triton_available():
        return False
    import triton
    runtime = getattr(getattr(triton, "knobs", None), "runtime", None)
    return bool(runtime.interpret) if runtime is not None else os.environ["TRITON_INTERPRET"] == "1"


def _built_interpreted():
    """Whether the imported triton built its language for the interpreter (None: not imported, or unknown).
    Triton fixes that at its import, by TRITON_INTERPRET then: its @jit helpers (tl.sum's combine function)
    became InterpretedFunction or JITFunction, and knobs read the variable anew at each call."""
    helper = getattr(sys.modules.get("triton.language.standard"), "_sum_combine", None)
    if helper is None:
        return None
    from triton.runtime.interpreter import InterpretedFunction
    return isinstance(helper, InterpretedFunction)


def interpreting() -> bool:
    """Whether the kernels run in Triton's interpreter here: TRITON_INTERPRET asks for it, and triton (imported
    here if it was not) was built for it. Set after triton's import, the variable sent CPU tensors to kernels
    whose helpers were compiled ones ("Cannot call @triton.jit'd outside of the scope of a kernel"): auto
    takes the reference there, and impl='triton' says when to set it (interpreter_too_late)."""
    return _interpreter_asked() and _built_interpreted() is not False


def interpreter_too_late() -> bool:
    """TRITON_INTERPRET asks for the interpreter, but triton was imported (compiled) before it was set."""
    return _interpreter_asked() and _built_interpreted() is False


# The same mark, for the same reason and one more: torch 2.4's compiler could not trace the environment's
# read (torch.export of a layer failed, "const method call bytes.decode").
interpreting._dynamo_marked_constant = True


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


# Fallbacks of impl="auto" to the reference. As torch.set_deterministic_debug_mode ("default" / "warn" / "error")
# for its nondeterministic ops: "allow" records them, "warn" also warns once per op and reason, "strict" raises.
FALLBACK_MODES = ("allow", "warn", "strict")
FALLBACK_ENV = "BICYCLEGAN_KERNELS"
_fallback_mode = None  # $BICYCLEGAN_KERNELS, read at the first fallback (the kernels' own path never reads it)
_FALLBACKS = {}  # (op, reason) -> calls
# Threads call the ops at once (nn.DataParallel's replicas, a server's requests): `d[k] = d.get(k, 0) + 1` unlocked lost
# counts (8 threads of 20,000 calls recorded 62,365), and a clear() after the copy lost those between the two.
_FALLBACKS_LOCK = threading.Lock()


def set_fallback_mode(mode: str) -> str:
    """What a fallback of impl='auto' to the PyTorch reference does from now on: "allow" (the default) records it
    (fallbacks()), "warn" also warns once per op and reason, "strict" raises a RuntimeError saying why (a create_graph
    backward, which no kernel computes, warns instead). Overrides $BICYCLEGAN_KERNELS, a bad value of it too; returns
    the mode it replaced ("allow" for such a value, as the variable unset)."""
    global _fallback_mode
    if mode not in FALLBACK_MODES:
        raise ValueError(f"set_fallback_mode: mode must be one of {FALLBACK_MODES}, got {mode!r}")
    try:
        previous = get_fallback_mode()
    except ValueError:  # (the variable's bad value: overridden here, so not this call's error)
        previous = "allow"
    _fallback_mode = mode
    return previous


def get_fallback_mode() -> str:
    """The fallback mode: set_fallback_mode's, else $BICYCLEGAN_KERNELS's (unset or empty: "allow")."""
    global _fallback_mode
    if _fallback_mode is None:
        mode = os.environ.get(FALLBACK_ENV, "") or "allow"
        if mode not in FALLBACK_MODES:
            raise ValueError(f"${FALLBACK_ENV} must be one of {FALLBACK_MODES} (or unset), got {mode!r}")
        _fallback_mode = mode
    return _fallback_mode


def fallbacks(clear: bool = False) -> dict:
    """{(op, reason): calls} of every fallback to the PyTorch reference since the process started (or the last
    clear=True): impl='auto' where the kernels cannot run, and the create_graph backwards. Eager calls each count;
    a torch.compile'd or exported graph counts its tracings (once, again at a recompile and where dynamo traces a
    frame again after a graph break), a CUDA graph its capture."""
    with _FALLBACKS_LOCK:
        seen = dict(_FALLBACKS)
        if clear:
            _FALLBACKS.clear()
    return seen


def fallback(op: str, reason: str, refusable: bool = True, warn: bool = False) -> None:
    """Note that `op` runs the PyTorch reference instead of its kernels, for `reason` (a short phrase, one of a few
    per op: the warnings and the record are kept per reason). Called only off the kernels' path. refusable=False:
    no kernel computes it (strict mode warns); warn: warn once in "allow" mode too."""
    with _FALLBACKS_LOCK:
        _FALLBACKS[op, reason] = _FALLBACKS.get((op, reason), 0) + 1
    mode = get_fallback_mode()
    if mode == "strict" and refusable:
        raise RuntimeError(f"{op}: impl='auto' would run the PyTorch reference instead of the Triton kernels: "
                           f"{reason}; the fallback mode is 'strict' (${FALLBACK_ENV}=strict or "
                           f"bicyclegan.kernels.set_fallback_mode('strict')), which refuses it (impl='ref' asks for "
                           f"the reference)")
    if mode != "allow" or warn:
        _warn_once(f"{op}: runs the PyTorch reference instead of the Triton kernels: {reason}"
                   f"{'' if refusable else ' (no kernel computes it, so strict mode only warns)'}")


# Run, not traced, by torch.compile (the mark of triton_available above): at tracing, once per graph, so a compiled
# graph neither records every call nor guards on the record (traced, the record's count was a global dict's value
# that each call changed: a recompile each call).
fallback._dynamo_marked_constant = True


def runs_triton(device) -> bool:
    """Whether the kernels can run on `device` here: triton importable, and a CUDA device (or any
    under TRITON_INTERPRET=1). The one rule for the ops, the trainer's refusal and inference loading."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type  # per op call
    # (the device first: on a CPU without the interpreter triton's import, ~0.3 s, is never needed)
    return (kind == "cuda" or interpreting()) and triton_available()


def resolve_impl(impl: str, x: torch.Tensor, op: str) -> str:
    """Return "triton" or "ref" for running `op` on tensor `x`; auto's fallbacks to "ref" go through `fallback`."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    runnable = runs_triton(x.device)
    if impl == "ref":
        return "ref"
    if impl == "triton":
        if not runnable and x.device.type != "cuda" and interpreter_too_late():
            raise RuntimeError(f"{op}: impl='triton' on a {x.device.type} tensor runs Triton's interpreter: "
                               f"{LATE_INTERPRETER} (it was imported before TRITON_INTERPRET was set)")
        if not runnable:
            raise RuntimeError(
                f"{op}: impl='triton' needs triton installed and a CUDA tensor (or TRITON_INTERPRET=1); "
                f"got a {x.device.type} tensor, triton {'present' if triton_available() else 'missing'}")
        return "triton"
    # auto: the kernels' dtypes only (float64 too: they compute statistics in fp32, and on a GPU a float argument
    # such as LeakyReLU's slope is fp32; impl="triton" may still ask for them where an op takes it).
    if runnable and x.dtype in KERNEL_DTYPES and x.device.type != "meta":
        return "triton"
    # (A "meta" tensor, shapes only, as a model built on meta to size it passes, computes nothing: not a fallback.
    # The interpreter runs kernels on host memory, and failed there; "triton" still takes one where the launches
    # are stubbed, as tests of the launch grids do.)
    if x.device.type != "meta":
        fallback(op, _why_not(x, runnable), warn=x.is_cuda and not runnable)  # (a broken install: said anyway)
    return "ref"


def _why_not(x, runnable):
    """Why auto does not run the kernels on x, in a few words of a few kinds (the record is kept per reason)."""
    where = x.device.type
    if runnable:
        return f"x is {x.dtype} (the kernels take {', '.join(str(d) for d in KERNEL_DTYPES)})"
    if where == "cuda":
        return "triton is not importable"
    if interpreter_too_late():
        return f"a {where} tensor, and TRITON_INTERPRET was set after triton's import ({LATE_INTERPRETER})"
    return (f"a {where} tensor (the kernels run on CUDA tensors, or on CPU ones in Triton's interpreter: "
            f"TRITON_INTERPRET=1 before triton is imported)")


NCHW, CL = torch.contiguous_format, torch.channels_last


def shape_of(t):
    """t.shape, its sizes as ints under torch.jit.trace too: there t.shape holds traced 0-d tensors, and every
    Python bool made of them (a check, a layout) warned (TracerWarning) that the trace keeps the branch taken.
    Read through aten's sym_size the tracer records nothing: each such choice is the example's, as it was. A
    check made so runs on the example only; the custom ops, which a trace keeps, repeat the checks of sizes on
    every run (TwoFacedOp's check)."""
    if not torch.jit.is_tracing():
        return t.shape
    return torch.Size([torch.ops.aten.sym_size.int(t, d) for d in range(t.dim())])


def numel_of(t):
    """t.numel(), as shape_of reads it under torch.jit.trace (torch.Size.numel's product of a torch.export's
    symbolic sizes is no size-oblivious test, as Tensor.numel's is: a dynamic batch failed to export)."""
    return shape_of(t).numel() if torch.jit.is_tracing() else t.numel()


def memory_format(t):
    """The memory format torch gives a tensor it computes from t: Tensor.suggest_memory_format (C++,
    not exposed), which pooling, batch_norm and conv follow. channels_last when t is 4-D and its
    strides, taken in the order C, W, H, N, each reach at least the span of those before it: a
    channels_last tensor, and a channel, batch or W slice of one. NCHW otherwise, and where torch
    calls it ambiguous: a channel stride of 0, an empty dimension, N's stride equal to C's (N x 1
    x 1 x 1, or N x 1 x 1 x W sliced along W). Cheap (host ints), called at every op call."""
    if t.dim() != 4:
        return NCHW
    sizes, strides = shape_of(t), t.stride()  # (once: 0.8 us a call for a channels_last t, 1.9 per-dimension)
    if strides[1] == 0:
        return NCHW
    least = 0
    for d in (1, 3, 2, 0):
        size, stride = sizes[d], strides[d]
        if size == 0 or stride < least or (d == 0 and least == strides[1]):
            return NCHW
        least = stride * size if size > 1 else stride
    return CL


def dense_strides(shape, fmt):
    """The strides torch.empty(shape, memory_format=fmt) gives a non-empty N x C x H x W tensor."""
    N, C, H, W = shape
    return (H * W * C, 1, W * C, C) if fmt == CL else (C * H * W, H * W, W, 1)


def in_format(t, fmt):
    """Non-empty t itself if it has dense_strides(t.shape, fmt), else a copy that has them. Those of
    its size-1 dimensions count: they change what memory_format (torch's conv, pooling) makes of it."""
    return t if t.stride() == dense_strides(shape_of(t), fmt) else t.clone(memory_format=fmt)


def int_pair(who, name, v, least):
    """A size argument (kernel_size, stride, padding) as a pair of ints >= least, from each form torch's
    conv and pooling functions take: an int (numpy's and a 0-d integer tensor too: operator.index) or
    a sequence of one (both sides) or two of them. Anything else is refused naming the argument."""
    items = list(v) if isinstance(v, (tuple, list)) else [v]
    try:
        if any(isinstance(e, bool) for e in items):
            raise TypeError
        items = [operator.index(e) for e in items]
    except TypeError:  # a float, a string, a nested sequence: refused below
        items = []
    items = items * 2 if len(items) == 1 else items
    if len(items) != 2 or min(items) < least:
        raise ValueError(f"{who}: {name} must be an int >= {least} or a pair of them, got {v!r}")
    return tuple(items)
