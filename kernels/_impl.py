"""Choosing between a Triton kernel and its pure-PyTorch reference (the `impl` switch).

"auto" picks Triton for CUDA tensors (or anywhere under TRITON_INTERPRET=1, which is how CI runs
the kernels on CPU) and the reference elsewhere. A fallback that costs speed warns once.
"""
import functools
import operator
import os
import warnings

import torch

IMPLS = ("auto", "triton", "ref")


_TRITON_OK = None  # probed on first use: importing triton takes a while and CPU-only users need not pay it


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


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def runs_triton(device) -> bool:
    """Whether the kernels can run on `device` here: triton importable, and a CUDA device (or any
    under TRITON_INTERPRET=1). The one rule for the ops, the trainer's refusal and inference loading."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type  # per op call
    return triton_available() and (kind == "cuda" or interpreting())


def resolve_impl(impl: str, x: torch.Tensor, op: str) -> str:
    """Return "triton" or "ref" for running `op` on tensor `x`."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl must be one of {IMPLS}, got {impl!r}")
    runnable = runs_triton(x.device)
    # float64 under auto: the reference (the kernels compute statistics in fp32, and on a GPU a
    # float argument such as LeakyReLU's slope is fp32); impl="triton" may still ask for them.
    if impl == "ref" or (impl == "auto" and x.dtype == torch.float64):
        return "ref"
    if impl == "triton":
        if not runnable:
            raise RuntimeError(
                f"{op}: impl='triton' needs triton installed and a CUDA tensor (or TRITON_INTERPRET=1); "
                f"got a {x.device.type} tensor, triton {'present' if triton_available() else 'missing'}")
        return "triton"
    # (Not a "meta" tensor, shapes only, as a model built on meta to size it passes: the interpreter
    # runs kernels on host memory, and failed there; "triton" still takes one where the launches are
    # stubbed, as tests of the launch grids do.)
    if runnable and x.device.type != "meta":
        return "triton"
    if x.is_cuda:
        _warn_once(f"{op}: triton is not importable, using the slower PyTorch reference on CUDA")
    return "ref"


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
