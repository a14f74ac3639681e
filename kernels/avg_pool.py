"""2-D average pooling: functional op and drop-in module, with a Triton path (avg_pool_triton.py).

Same arguments and results as F.avg_pool2d / nn.AvgPool2d (their defaults too). The Triton path
takes floor mode (ceil_mode=False) and float32, bfloat16 or float16; ceil_mode=True and float64
under "auto" run torch's own pooling. The multi-scale discriminators use it to downsample their
input between scales, where torch's backward was slow on a GPU (see avg_pool_triton.py).
"""
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._impl import IMPLS, NotScriptable, fallback, int_pair, memory_format, numel_of, resolve_impl, shape_of
from .norm_act import TRITON_DTYPES


def _check(who, x, kernel_size, stride, padding, divisor_override):
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        raise ValueError(f"{who}: x must be a 4-D N x C x H x W tensor or an unbatched 3-D C x H x W one, got "
                         f"{tuple(shape_of(x)) if isinstance(x, torch.Tensor) else type(x).__name__}")
    k = int_pair(who, "kernel_size", kernel_size, 1)
    # (An empty sequence is torch's None; compared by type and length, since a numpy int == [] is an array.)
    s = k if stride is None or isinstance(stride, (tuple, list)) and not stride else int_pair(who, "stride", stride, 1)
    p = int_pair(who, "padding", padding, 0)
    if any(2 * pe > ke for pe, ke in zip(p, k)):
        raise ValueError(f"{who}: padding {p} must be at most half of kernel_size {k}")
    div = divisor_override
    if div is not None:
        # An int in each form torch takes, as for the sizes (numpy's, a 0-d integer tensor: operator.index);
        # isinstance(int) refused np.int64(2), which nn.AvgPool2d takes.
        try:
            div = 0 if isinstance(div, bool) else operator.index(div)
        except TypeError:
            div = 0
        if div == 0:
            raise ValueError(f"{who}: divisor_override must be a nonzero int or None, got {divisor_override!r}")
    H, W = shape_of(x)[-2:]
    if any((n + 2 * pe - ke) // se + 1 < 1 for n, pe, ke, se in zip((H, W), p, k, s)):
        raise ValueError(f"{who}: input of {H} x {W} is too small for kernel_size {k} with padding {p} "
                         f"(the output would be empty)")
    return k, s, p, div


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, impl="auto"):
    """F.avg_pool2d(x, ...) (same arguments, same defaults), on the Triton kernels where impl picks
    them (see resolve_impl), in floor mode. Twice differentiable on either path."""
    k, s, p, divisor_override = _check("avg_pool2d", x, kernel_size, stride, padding, divisor_override)
    if ceil_mode and impl == "triton":  # (auto runs torch's; impl='triton' ran it too, without a word)
        raise ValueError("avg_pool2d: impl='triton' pools in floor mode only, got ceil_mode=True "
                         "(use impl='ref' or 'auto', which run torch's pooling for it)")
    if resolve_impl(impl, x, "avg_pool2d") == "triton" and numel_of(x):
        if ceil_mode:  # (auto: impl='triton' was refused above)
            fallback("avg_pool2d", "ceil_mode=True (the kernels pool in floor mode)")
        elif x.dtype in TRITON_DTYPES:
            from .avg_pool_triton import avg_pool2d_triton
            y = avg_pool2d_triton(x if x.dim() == 4 else x.unsqueeze(0), k, s, p, count_include_pad,
                                  divisor_override, memory_format(x))
            return y if x.dim() == 4 else y.squeeze(0)
        else:  # (impl='triton': auto took the reference for another dtype in resolve_impl)
            raise TypeError(f"avg_pool2d: impl='triton' takes x in {TRITON_DTYPES}, got {x.dtype} "
                            f"(use impl='ref' or 'auto')")
    return F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)


class AvgPool2d(NotScriptable, nn.AvgPool2d):
    """nn.AvgPool2d (a subclass: same constructor arguments, repr fields and results) running the
    Triton kernels where `impl` picks them (ceil_mode=False); impl comes after the others, by keyword."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, *, impl="auto"):
        if impl not in IMPLS:
            raise ValueError(f"AvgPool2d: impl must be one of {IMPLS}, got {impl!r}")
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        self.impl = impl

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override, impl=self.impl)

    def extra_repr(self):
        return f"{super().extra_repr()}, impl={self.impl}"
