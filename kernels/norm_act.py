"""Fused InstanceNorm + activation: functional op and drop-in module.

The pure-PyTorch reference lives here too: it is the CPU path, the test oracle and the benchmark
baseline. The Triton kernels and the op's autograd faces are in norm_act_triton.py (imported only
when the Triton path runs); fuse.py swaps InstanceNorm2d + activation pairs for this layer.
"""
import math
import numbers
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._impl import (
    IMPLS,
    KERNEL_DTYPES,
    NotScriptable,
    fallback,
    in_format,
    memory_format,
    numel_of,
    resolve_impl,
    shape_of,
)
from .acts import ACTS, apply_act, check_act  # noqa: F401 (ACTS: the choices, named beside each op)

TRITON_DTYPES = KERNEL_DTYPES


def _in_place() -> bool:
    """Whether the norm's output, fresh, takes its activation in place (saving a tensor in eager code): not under
    torch.compile, which reuses buffers itself, and whose inductor (torch 2.13) failed to recompile for a second
    shape an in-place activation of instance_norm's output feeding a conv (nn.InstanceNorm2d + nn.ReLU(True) alike)."""
    return not torch.compiler.is_compiling()


def _check_eps(who, eps):
    # As for slope: a string passed the Triton path (float()) and failed deep in the reference; a
    # negative eps gives NaN on flat planes.
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < math.inf:
        raise ValueError(f"{who}: eps must be a finite real number >= 0, got {eps!r}")


def _check(x, act, slope, eps, weight, bias):
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"instance_norm_act: x must be a 4-D N x C x H x W tensor, got shape "
                         f"{tuple(shape_of(x)) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"instance_norm_act: x must be floating point (the kernels take float32, bfloat16 or "
                        f"float16; float64 runs the reference), got {x.dtype}")
    check_act("instance_norm_act", act, slope)
    _check_eps("instance_norm_act", eps)
    channels = shape_of(x)[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or shape_of(t)[0] != channels:
            raise ValueError(f"instance_norm_act: {name} must have shape ({channels},) to match x's "
                             f"channels, got {tuple(shape_of(t)) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"instance_norm_act: {name} must be a floating-point tensor, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"instance_norm_act: {name} is on {t.device} but x is on {x.device}")
    # torch's norms' rule (CPU and CUDA, torch 2.13): the parameters in x's dtype, or in float32 beside a bf16 or
    # fp16 x (autocast's mix). The kernels read any dtype, so impl='auto' ran a float32 x with a bf16 weight on
    # CUDA and refused it on the CPU ("mixed dtype (CPU)"), and a bf16 x with a float64 one the other way round.
    given = {name: t.dtype for name, t in (("weight", weight), ("bias", bias)) if t is not None}
    half = x.dtype in (torch.bfloat16, torch.float16)
    if len(set(given.values())) > 1 or set(given.values()) - {x.dtype, torch.float32 if half else x.dtype}:
        got = ", ".join(f"{name} {dtype}" for name, dtype in given.items())
        raise TypeError(f"instance_norm_act: weight and bias must be of x's dtype {x.dtype}"
                        f"{' (or both float32)' if half else ''}, got {got}")


def _empty_norm(x, weight, bias):
    """The norm of an empty x (a batch of 0 samples, an empty plane): empty, and weight and bias get
    a gradient summed over no element, zero, as nn.InstanceNorm2d gives them for an empty plane.
    torch.instance_norm refuses an empty batch or C = 0 with weight or bias (IndexError from a
    select, torch 2.13; nn.InstanceNorm2d(affine=True) shares it) though nothing is undefined there.
    y has x's strides, as the clone gives them, with weight or bias too (the Triton op's empty y, which a
    traced graph returns, has them: norm_act_triton._empty_y)."""
    y = x.clone()  # a new tensor, as instance_norm's: the activation may overwrite it
    if weight is not None:
        y = y * weight[:, None, None]
    if bias is not None:
        y = y + bias[:, None, None]
    y = y.to(x.dtype)
    # torch's elementwise ops give an empty result strides of their own (not a channels_last x's, some of them).
    # A view of no element in x's (not in-place: under torch.func.vmap over weight alone that would fail).
    return y if y.stride() == x.stride() else y.as_strided(x.shape, x.stride())


def _instance_norm_call(x):
    """torch.instance_norm, or for a batch of one sample torch.batch_norm (same arguments): a sample is its
    own batch_norm, which instance_norm calls on a view of it; called directly, since through those views
    a dense channels_last gradient gets wrong dx, dweight and dbias on the CPU (torch 2.13; as
    nn.InstanceNorm2d does). Eager only: a graph traced at batch 1 (torch.jit.trace) must stay an
    instance norm for the batch sizes it is run at later, and compiled or exported graphs keep the
    instance_norm they had."""
    one = not torch.jit.is_tracing() and not torch.compiler.is_compiling() and x.shape[0] == 1
    return torch.batch_norm if one else torch.instance_norm


def _instance_norm(x, *args):
    """_instance_norm_call(x)(x, *args), y in the layout torch gives x's results (_impl.memory_format),
    as the Triton path's y: copied where torch's norm gave another. torch.instance_norm normalises
    x.contiguous() and returns NCHW whatever x's layout (pytorch/pytorch#72341, open), where pooling,
    group_norm and conv keep a channels_last x's; in a channels_last network the next conv would
    convert y back. At batch 1, x is made dense in that layout first: torch.batch_norm's CPU backward
    misreads an NCHW gradient for an x dense as channels_last whose batch stride makes torch call it
    NCHW (an unbatched channels_last C x H x W, unsqueezed: dx off by O(1), torch 2.13).
    A bf16 or fp16 x on the CPU is normalised in float32 (_instance_norm_fp32)."""
    if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
        return _instance_norm_fp32(x, *args)
    fmt, norm = memory_format(x), _instance_norm_call(x)
    return in_format(norm(x.contiguous(memory_format=fmt) if norm is torch.batch_norm else x, *args), fmt)


def _instance_norm_fp32(x, weight, bias, running_mean, running_var, *rest):
    """_instance_norm of x, weight, bias and the running statistics in float32, y cast back to x's dtype
    (gradients flow through the casts). torch's CPU norm keeps the statistics of a bf16 or fp16 x in that
    dtype: y of 1 + 0.01 randn off by 0.2 in bf16, dx by ~1000 (torch 2.13), where the Triton path and
    torch's CUDA kernels (and cuDNN) accumulate in fp32, so only the CPU needs the copies. Running statistics
    kept in half precision (a layer .to(bf16)) are updated in float32 copies and copied back: the buffers
    keep their dtype."""
    up = [None if t is None else t.float() for t in (weight, bias, running_mean, running_var)]
    y = _instance_norm(x.float(), *up, *rest)
    for buffer, copy in zip((running_mean, running_var), up[2:]):
        if copy is not buffer:  # (float() of a float32 buffer is the buffer itself, updated in place)
            buffer.copy_(copy)
    return y.to(x.dtype)


def instance_norm_act_ref(x, act="leaky_relu", slope=0.2, eps=1e-5, weight=None, bias=None):
    """nn.InstanceNorm2d followed by the activation, in plain PyTorch (the oracle)."""
    if numel_of(x) == 0:
        return apply_act(_empty_norm(x, weight, bias), act, slope, inplace=_in_place())
    # torch.instance_norm is what F.instance_norm calls, minus its refusal of 1 x 1 planes in
    # training: there x - mean = 0 and the result act(bias) is well defined (the kernels agree).
    if (weight is None) != (bias is None):
        # One of the two: cuDNN's backward fails on the missing one ("tensor does not have a device",
        # torch 2.11 on CUDA); the identity in its place changes no value and no gradient.
        given = weight if weight is not None else bias
        weight = torch.ones_like(given) if weight is None else weight
        bias = torch.zeros_like(given) if bias is None else bias
    y = _instance_norm(x, weight, bias, None, None, True, 0.0, eps, torch.backends.cudnn.enabled)
    # instance_norm's output is a fresh tensor, so the activation may overwrite it.
    return apply_act(y, act, slope, inplace=_in_place())


def instance_norm_act(x, act="leaky_relu", slope=0.2, eps=1e-5, weight=None, bias=None, impl="auto",
                      double_backward=False):
    """InstanceNorm over each (n, c) plane of x, then act in none|relu|leaky_relu|elu (ELU alpha 1).

    The Triton path keeps statistics in fp32 whatever x's dtype and returns y in x's memory format
    (NCHW or channels_last). With no weight/bias and LeakyReLU(slope > 0) it saves y rather than x
    for backward, as the reference's in-place activations do for LeakyReLU and ELU: modifying y in
    place before backward then raises autograd's usual in-place error (an unfused nn.LeakyReLU
    keeps its input instead). An empty x (a batch of 0 samples) gives an empty y, an empty dx and
    zero gradients for weight and bias.

    Twice differentiable (a gradient penalty: R1, WGAN-GP): a backward with create_graph=True
    returns the gradients of the reference, which carry a graph; other backwards run the kernels.
    That backward needs x, so the LeakyReLU case without weight/bias, which saves y only, refuses
    it unless double_backward=True, which saves x instead (one more activation-sized tensor: the
    next layer keeps y anyway). Every other case saves x already, and double_backward changes nothing.
    """
    _check(x, act, slope, eps, weight, bias)
    if resolve_impl(impl, x, "instance_norm_act") == "triton":
        if x.dtype not in TRITON_DTYPES:
            raise TypeError(f"instance_norm_act: impl='triton' takes x in {TRITON_DTYPES}, got {x.dtype} "
                            f"(use impl='ref' or 'auto')")
        # An empty x (a batch of 0 samples: a filtered sub-batch) has nothing to launch: the reference.
        if numel_of(x):
            from .norm_act_triton import instance_norm_act_triton
            return instance_norm_act_triton(x, act, slope, eps, weight, bias, double_backward=double_backward)
    return instance_norm_act_ref(x, act, slope, eps, weight, bias)


class InstanceNormAct2d(NotScriptable, nn.InstanceNorm2d):
    """nn.InstanceNorm2d followed by an activation (none, ReLU, LeakyReLU, ELU) in one layer.

    A subclass of nn.InstanceNorm2d, as timm's BatchNormAct2d is an nn.BatchNorm2d, so that code
    which finds norm layers with isinstance (weight initialisation, freezing, counting) finds it. It
    shares what nn.InstanceNorm2d's users rely on: the constructor's arguments in their order (act,
    slope and impl come after them, by keyword), the parameters, buffers and state_dict keys (and
    its loading of old files with running statistics), reset_parameters and reset_running_stats,
    unbatched C x H x W input, the channel check (an error with affine parameters, a warning
    without), the repr's fields, and with track_running_stats=True the running statistics, updated
    in training mode and used in eval mode. The kernels compute instance statistics only, so such a
    layer runs torch's instance_norm and the activation in plain PyTorch (and refuses impl='triton').

    double_backward=True (a plain attribute, so it can be set on a built network, e.g. after
    fuse_norm_act) lets the LeakyReLU layer without affine parameters take a gradient penalty
    under the Triton path, at the cost of saving x as well as the y its next layer keeps (see
    instance_norm_act); every other layer takes one as it is.

    What a subclass cannot share: its output is act(norm(x)). Code that swaps the norm layers it
    finds by isinstance for another norm (nn.GroupNorm, nn.BatchNorm2d) drops the activation with
    the layer; such code should test `type(m) is nn.InstanceNorm2d` (as fuse_norm_act does) or carry
    `m.act` and `m.slope` over.
    """
    double_backward = False  # (a layer pickled whole before it was taken has none: it computes as it did)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None, *, act="leaky_relu", slope=0.2, impl="auto", double_backward=False,
                 **kwargs):
        # kwargs: what else this torch's nn.InstanceNorm2d takes (bias=False: a weight alone).
        check_act("InstanceNormAct2d", act, slope)
        _check_eps("InstanceNormAct2d", eps)  # at construction, as slope (was: at the first forward)
        if impl not in IMPLS:
            raise ValueError(f"InstanceNormAct2d: impl must be one of {IMPLS}, got {impl!r}")
        _check_running_stats(track_running_stats, impl)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, **kwargs)
        self.act, self.slope, self.impl, self.double_backward = act, slope, impl, double_backward

    def forward(self, x):
        # nn.InstanceNorm2d's checks, in its order, with messages that name this layer.
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            raise ValueError(f"InstanceNormAct2d: expected a 4-D N x C x H x W input or an unbatched 3-D C x H x W "
                             f"one, got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        # Under torch.jit.trace the example's sizes (_impl.shape_of): a traced graph's op repeats the channel check,
        # as the weight's; the 1 x 1 refusal and the warning hold for the example only (nn.InstanceNorm2d's alike).
        shape = shape_of(x)
        if shape[-3] != self.num_features:
            if self.affine:
                raise ValueError(f"InstanceNormAct2d: expected {self.num_features} channels, "
                                 f"got input of shape {tuple(shape)}")
            # Without affine parameters num_features is not used, and nn.InstanceNorm2d only warns.
            warnings.warn(f"InstanceNormAct2d: input of shape {tuple(shape)} does not have num_features = "
                          f"{self.num_features} channels (not used, since affine=False)", stacklevel=2)
        if (self.training or not self.track_running_stats) and shape[-1] * shape[-2] == 1:
            # (the statistics of one value: the output was zeros, where nn.InstanceNorm2d refuses)
            raise ValueError(f"InstanceNormAct2d: expected more than 1 spatial element when training, got input "
                             f"size {shape}")
        if x.dim() == 3:
            return self._norm_act(x.unsqueeze(0)).squeeze(0)
        return self._norm_act(x)

    def _norm_act(self, x):
        if self.track_running_stats:
            _check_running_stats(True, self.impl)  # impl may have been switched since construction
            if resolve_impl(self.impl, x, "instance_norm_act") == "triton":  # (auto: the kernels could run x)
                fallback("instance_norm_act", "track_running_stats=True (the kernels compute instance statistics "
                                              "only)")
            # nn.InstanceNorm2d's own call: instance statistics (and the running ones updated) in
            # training mode, the running statistics in eval mode.
            stats, params = (self.running_mean, self.running_var), (self.weight, self.bias)
            rest = (self.training, 0.0 if self.momentum is None else self.momentum, self.eps)
            if self.training and shape_of(x)[2] * shape_of(x)[3] == 1:
                y = F.instance_norm(x, *stats, *params, *rest)  # for its refusal of a 1 x 1 plane in training
            else:  # (at batch 1 batch_norm on the sample itself: the same statistics and running-statistics update)
                y = _instance_norm(x, *params, *stats, *rest, torch.backends.cudnn.enabled)
            return apply_act(y, self.act, self.slope, inplace=_in_place())  # y is fresh: may be overwritten
        return instance_norm_act(x, self.act, self.slope, self.eps, self.weight, self.bias, self.impl,
                                 self.double_backward)

    def extra_repr(self):
        s = f"{super().extra_repr()}, act={self.act}"
        if self.act == "leaky_relu":
            s += f", slope={self.slope}"
        s += f", impl={self.impl}"
        return s + (", double_backward=True" if self.double_backward else "")


def _check_running_stats(track_running_stats, impl):
    if track_running_stats and impl == "triton":
        raise ValueError("InstanceNormAct2d: impl='triton' computes instance statistics only; with "
                         "track_running_stats=True the layer runs torch's instance_norm (impl 'auto' or 'ref')")
