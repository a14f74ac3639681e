"""The activations every op of this package offers, stated once: names, kernel ids, plain PyTorch.

The names follow the reference's `nl` option (relu | lrelu | elu) spelled as torch.nn.functional
does; "none" is the identity. ELU has alpha = 1 (the reference's nn.ELU(alpha=1.0)); LeakyReLU
takes its negative slope from the caller.
"""
import torch.nn.functional as F

ACTS = ("none", "relu", "leaky_relu", "elu")
# The ACT constexpr of the Triton kernels (see _triton_common.act).
ACT_IDS = {name: i for i, name in enumerate(ACTS)}


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
