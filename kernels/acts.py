"""The activations every op of this package offers, stated once: names, kernel ids, plain PyTorch.

The names follow the reference's `nl` option (relu | lrelu | elu) spelled as torch.nn.functional
does; "none" is the identity. ELU has alpha = 1 (the reference's nn.ELU(alpha=1.0)); LeakyReLU
takes its negative slope from the caller.
"""
import math
import numbers

import torch.nn.functional as F

ACTS = ("none", "relu", "leaky_relu", "elu")
# The ACT constexpr of the Triton kernels (see _triton_common.act).
ACT_IDS = {name: i for i, name in enumerate(ACTS)}


def check_act(who, act, slope):
    """The activation arguments every op and module takes, refused with a message naming them: a
    slope given as a string passed the Triton path (float("0.2")) and failed deep in the reference."""
    if act not in ACTS:
        raise ValueError(f"{who}: act must be one of {ACTS}, got {act!r}")
    # -inf < slope < inf rather than math.isfinite, which torch.compile(dynamic=True) cannot trace
    # on a module's slope (a symbolic float there); NaN fails the comparisons too.
    if isinstance(slope, bool) or not isinstance(slope, numbers.Real) or not -math.inf < slope < math.inf:
        raise TypeError(f"{who}: slope must be a finite real number (LeakyReLU's negative slope), got {slope!r}")


def apply_act(y, act, slope, inplace=False):
    """y through the activation `act` (one of ACTS) in plain PyTorch; `slope` is LeakyReLU's."""
    if act == "relu":
        return F.relu(y, inplace=inplace)
    if act == "leaky_relu":
        # torch's in-place LeakyReLU keeps its output for backward, which a negative slope cannot
        # invert (its backward refuses): out of place then.
        return F.leaky_relu(y, slope, inplace=inplace and slope >= 0)
    if act == "elu":
        return F.elu(y, 1.0, inplace=inplace)
    if act == "none":
        return y
    raise ValueError(f"apply_act: act must be one of {ACTS}, got {act!r}")
