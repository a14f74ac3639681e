"""Fused InstanceNorm + activation: functional op and drop-in module.

The pure-PyTorch reference lives here too: it is the CPU path, the test oracle and the benchmark
baseline. The Triton kernels and the op's autograd faces are in norm_act_triton.py (imported only
when the Triton path runs); fuse.py swaps InstanceNorm2d + activation pairs for this layer.
"""
import math
import numbers

import torch
import torch.nn as nn

from ._impl import IMPLS, resolve_impl
from .acts import ACTS, apply_act, check_act  # noqa: F401 (ACTS: the choices, named beside each op)

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check_eps(who, eps):
    # As for slope: a string passed the Triton path (float()) and failed deep in the reference; a
    # negative eps gives NaN on flat planes.
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < math.inf:
        raise ValueError(f"{who}: eps must be a finite real number >= 0, got {eps!r}")


def _check(x, act, slope, eps, weight, bias):
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"instance_norm_act: x must be a 4-D N x C x H x W tensor, got shape "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"instance_norm_act: x must be float32, bfloat16 or float16, got {x.dtype}")
    check_act("instance_norm_act", act, slope)
    _check_eps("instance_norm_act", eps)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.shape[0] != x.shape[1]:
            raise ValueError(f"instance_norm_act: {name} must have shape ({x.shape[1]},) to match x's "
                             f"channels, got {tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"instance_norm_act: {name} must be a floating-point tensor, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"instance_norm_act: {name} is on {t.device} but x is on {x.device}")


def _empty_norm(x, weight, bias):
    """The norm of an empty x (a batch of 0 samples, an empty plane): empty, and weight and bias get
    a gradient summed over no element, zero, as nn.InstanceNorm2d gives them for an empty plane.
    torch.instance_norm refuses an empty batch or C = 0 with weight or bias (IndexError from a
    select, torch 2.13; nn.InstanceNorm2d(affine=True) shares it) though nothing is undefined there."""
    y = x.clone()  # a new tensor, as instance_norm's: the activation may overwrite it
    if weight is not None:
        y = y * weight[:, None, None]
    if bias is not None:
        y = y + bias[:, None, None]
    return y.to(x.dtype)


def instance_norm_act_ref(x, act="leaky_relu", slope=0.2, eps=1e-5, weight=None, bias=None):
    """nn.InstanceNorm2d followed by the activation, in plain PyTorch (the oracle)."""
    if x.numel() == 0:
        return apply_act(_empty_norm(x, weight, bias), act, slope, inplace=True)
    # torch.instance_norm is what F.instance_norm calls, minus its refusal of 1 x 1 planes in
    # training: there x - mean = 0 and the result act(bias) is well defined (the kernels agree).
    # A batch of one sample is its own batch_norm, which instance_norm calls on a view of it: called
    # directly, since through those views a dense channels_last gradient gets wrong dx, dweight and
    # dbias on the CPU (torch 2.13; as nn.InstanceNorm2d does). Eager only: a graph traced at batch
    # 1 (torch.jit.trace) must stay an instance norm for the batch sizes it is run at later, and
    # compiled or exported graphs keep the instance_norm they had.
    one = x.shape[0] == 1 and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
    norm = torch.batch_norm if one else torch.instance_norm
    y = norm(x, weight, bias, None, None, True, 0.0, eps, torch.backends.cudnn.enabled)
    # instance_norm's output is a fresh tensor, so the activation may overwrite it.
    return apply_act(y, act, slope, inplace=True)


def instance_norm_act(x, act="leaky_relu", slope=0.2, eps=1e-5, weight=None, bias=None, impl="auto"):
    """InstanceNorm over each (n, c) plane of x, then act in none|relu|leaky_relu|elu (ELU alpha 1).

    The Triton path keeps statistics in fp32 whatever x's dtype, returns y in x's memory format
    (NCHW or channels_last) and supports first-order gradients only (a backward with
    create_graph=True raises: use impl='ref' under a gradient penalty). With no weight/bias and
    LeakyReLU(slope > 0) it saves y rather than x for backward, as the reference's in-place
    activations do for LeakyReLU and ELU: modifying y in place before backward then raises
    autograd's usual in-place error (an unfused nn.LeakyReLU keeps its input instead). An empty x
    (a batch of 0 samples) gives an empty y, an empty dx and zero gradients for weight and bias.
    """
    _check(x, act, slope, eps, weight, bias)
    if resolve_impl(impl, x, "instance_norm_act") == "triton":
        if x.dtype not in TRITON_DTYPES:
            raise TypeError(f"instance_norm_act: impl='triton' takes x in {TRITON_DTYPES}, got {x.dtype} "
                            f"(use impl='ref' or 'auto')")
        # An empty x (a batch of 0 samples: a filtered sub-batch) has nothing to launch: the reference.
        if x.numel():
            from .norm_act_triton import instance_norm_act_triton
            return instance_norm_act_triton(x, act, slope, eps, weight, bias)
    return instance_norm_act_ref(x, act, slope, eps, weight, bias)


class InstanceNormAct2d(nn.Module):
    """nn.InstanceNorm2d + ReLU/LeakyReLU/ELU in one layer; state_dict-compatible with nn.InstanceNorm2d."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 act="leaky_relu", slope=0.2, impl="auto", device=None, dtype=None):
        super().__init__()
        if track_running_stats:
            raise ValueError("InstanceNormAct2d: track_running_stats=True is not supported "
                             "(instance statistics are always used, as in pix2pix/BicycleGAN)")
        check_act("InstanceNormAct2d", act, slope)
        _check_eps("InstanceNormAct2d", eps)  # at construction, as slope (was: at the first forward)
        if impl not in IMPLS:
            raise ValueError(f"InstanceNormAct2d: impl must be one of {IMPLS}, got {impl!r}")
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        # What nn.InstanceNorm2d(track_running_stats=False) has, for code that inspects norm layers
        # (None buffers are not in the state_dict, so the keys stay those of nn.InstanceNorm2d).
        self.track_running_stats = False
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, None)
        self.act, self.slope, self.impl = act, slope, impl
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        """Weight 1, bias 0, as nn.InstanceNorm2d's: init code that calls it on norm layers reaches these."""
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x):
        if x.dim() == 4 and x.shape[1] != self.num_features:
            raise ValueError(f"InstanceNormAct2d: expected {self.num_features} channels, "
                             f"got input of shape {tuple(x.shape)}")
        return instance_norm_act(x, self.act, self.slope, self.eps, self.weight, self.bias, self.impl)

    def extra_repr(self):
        s = f"{self.num_features}, eps={self.eps}, affine={self.affine}, act={self.act}"
        if self.act == "leaky_relu":
            s += f", slope={self.slope}"
        return s + f", impl={self.impl}"
