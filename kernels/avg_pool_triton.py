"""Triton kernels for 2-D average pooling (forward and backward), their launchers and the op.

Why a kernel for so plain a layer: the multi-scale discriminators average-pool the images before
each coarser scale (3 x 3, stride 2, padding 1, padding not counted), and in the profile of the
graphed training step on an H200 torch's avg_pool2d backward took 82 us a call on a
16 x 3 x 256 x 256 bf16 gradient, 7.8 % of the step's GPU time, for a pass that moves ~6 MB.

One program takes BLOCK elements of one sample, in the memory order of the tensor it writes (NCHW
or channels_last), so that its stores are contiguous. The forward sums each output's window (KH x
KW masked loads); the backward gathers, for each input element, the gradients of the at most
ceil(KH / SH) x ceil(KW / SW) windows that hold it, each divided by its window's divisor: no
atomics, each element written once, deterministic. Sums are fp32 whatever the dtype.
"""
# typing.List, not list[int], in the custom ops' annotations: torch 2.4 and 2.5 infer a schema from the
# former alone ("unsupported type list[int]").
from typing import List

import torch
import triton
import triton.language as tl

from . import _configs
from ._triton_common import FP_FUSION, cdiv, empty, fits_int32, in_sample_span
from ._twoface import TwoFacedOp, transformed
from .avg_pool import _check

# The heuristic's launch (a tuned table's entry wins: pool.fwd / pool.bwd in _configs): 1024
# elements a program on 8 warps, 4 a thread. Compiled for sm_90 (tools/compile_check.py) the
# backward took 80 registers a thread and the forward 64; with 4 warps, 152 and 139 (3 blocks of 4
# warps an SM, a quarter of the warps a memory-bound kernel wants in flight).
BLOCK = 1024
NUM_WARPS = 8
MAX_GRID_N = 65535  # programs along grid axis 1 (the sample) on a GPU


@triton.jit
def _split(i, C, HH, WW, CL: tl.constexpr):
    """(c, row, col) of in-sample flat index i over C x HH x WW, in NCHW or channels_last order."""
    if CL:
        c = i % C
        t = i // C
        col = t % WW
        row = t // WW
    else:
        col = i % WW
        t = i // WW
        row = t % HH
        c = t // HH
    return c, row, col


@triton.jit
def _divisor(oh, ow, H, W, div_override, KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr,
             SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr, COUNT_PAD: tl.constexpr,
             OVERRIDE: tl.constexpr):
    """What torch divides window (oh, ow)'s sum by: divisor_override, else the window's size within
    the padded input (count_include_pad) or within the input itself."""
    if OVERRIDE:
        d = tl.zeros(oh.shape, tl.float32) + div_override
    else:
        hs = oh * SH - PH
        ws = ow * SW - PW
        he = tl.minimum(hs + KH, H + PH)
        we = tl.minimum(ws + KW, W + PW)
        if COUNT_PAD:
            d = ((he - hs) * (we - ws)).to(tl.float32)
        else:
            d = ((tl.minimum(he, H) - tl.maximum(hs, 0)) * (tl.minimum(we, W) - tl.maximum(ws, 0))).to(tl.float32)
    return d


@triton.jit
def _pool_fwd_kernel(x_ptr, y_ptr, C, H, W, OH, OW, sxn, sxc, sxh, sxw, syn, syc, syh, syw, div_override,
                KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr,
                PW: tl.constexpr, COUNT_PAD: tl.constexpr, OVERRIDE: tl.constexpr, CL: tl.constexpr,
                BLOCK: tl.constexpr):
    n = tl.program_id(1).to(tl.int64)
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < C * OH * OW
    c, oh, ow = _split(i, C, OH, OW, CL)
    xb = x_ptr + n * sxn + c * sxc
    hs = oh * SH - PH
    ws = ow * SW - PW
    acc = tl.zeros((BLOCK,), tl.float32)
    for kh in tl.static_range(KH):
        h = hs + kh
        row_ok = mask & (h >= 0) & (h < H)
        for kw in tl.static_range(KW):
            w = ws + kw
            ok = row_ok & (w >= 0) & (w < W)
            acc += tl.load(xb + h * sxh + w * sxw, mask=ok, other=0.0).to(tl.float32)
    d = _divisor(oh, ow, H, W, div_override, KH, KW, SH, SW, PH, PW, COUNT_PAD, OVERRIDE)
    acc = acc / tl.where(mask, d, 1.0)  # (a lane past the end has no window: 0 / 0 otherwise)
    tl.store(y_ptr + n * syn + c * syc + oh * syh + ow * syw, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _pool_bwd_kernel(dy_ptr, dx_ptr, C, H, W, OH, OW, sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, div_override,
                KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr,
                PW: tl.constexpr, COUNT_PAD: tl.constexpr, OVERRIDE: tl.constexpr, CL: tl.constexpr,
                BLOCK: tl.constexpr):
    n = tl.program_id(1).to(tl.int64)
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < C * H * W
    c, h, w = _split(i, C, H, W, CL)
    db = dy_ptr + n * sdn + c * sdc
    acc = tl.zeros((BLOCK,), tl.float32)
    # The windows holding row h start at oh * SH - PH <= h < oh * SH - PH + KH: oh = (h + PH) // SH
    # and the ceil(KH / SH) - 1 before it (h + PH >= 0, so // is a floor).
    for dh in tl.static_range((KH + SH - 1) // SH):
        oh = (h + PH) // SH - dh
        row_ok = mask & (oh >= 0) & (oh < OH) & (h < oh * SH - PH + KH)
        for dw in tl.static_range((KW + SW - 1) // SW):
            ow = (w + PW) // SW - dw
            ok = row_ok & (ow >= 0) & (ow < OW) & (w < ow * SW - PW + KW)
            g = tl.load(db + oh * sdh + ow * sdw, mask=ok, other=0.0).to(tl.float32)
            d = _divisor(oh, ow, H, W, div_override, KH, KW, SH, SW, PH, PW, COUNT_PAD, OVERRIDE)
            # (a window outside the output has a divisor of 0 or less: not divided by)
            acc += tl.where(ok, g / tl.where(ok, d, 1.0), 0.0)
    tl.store(dx_ptr + n * sxn + c * sxc + h * sxh + w * sxw, acc.to(dx_ptr.dtype.element_ty), mask=mask)


def _fmt(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


def _heuristic():
    return {"BLOCK_I": BLOCK, "num_warps": NUM_WARPS}


def candidates(quick=False):
    """Knob sets the tuner tries (either direction), the heuristic's first: elements a program
    and warps, at 4 and 8 elements a thread. (Not 8 a thread on 16 warps: compiled for sm_90 by
    Triton 3.6 the forward's 3 x 3 channels_last window hit ptxas's cap of 128 registers there and
    spilled 64 bytes.)"""
    variants = [_heuristic(), {"BLOCK_I": 1024, "num_warps": 4}, {"BLOCK_I": 512, "num_warps": 4},
                {"BLOCK_I": 2048, "num_warps": 8}, {"BLOCK_I": 2048, "num_warps": 16},
                {"BLOCK_I": 256, "num_warps": 2}]
    return variants[:4] if quick else variants


def key_shape(x_shape, geometry):
    """A pool.* launch's key shape: x's N, C, H, W and the window's geometry (kh, kw, sh, sw, ph, pw)."""
    return (*x_shape, *geometry)


def _knobs(site, x, geometry, channels_last):
    # (No variant in the key: count_include_pad and divisor_override change a few scalar operations
    # a window, not the memory traffic that sets the best launch.)
    return _configs.choose(site, key_shape(x.shape, geometry), x.dtype, channels_last, x.device, _heuristic)


def _launch(kernel, src, dst, sizes, geometry, count_include_pad, divisor, channels_last, knobs):
    """kernel from src to dst, each program BLOCK_I elements of dst (sizes: the input's C, H, W and
    the output's OH, OW), samples [n0, n0 + 65535) at a time (grid axis 1)."""
    kh, kw, sh, sw, ph, pw = geometry
    per_sample = dst.shape[1] * dst.shape[2] * dst.shape[3]
    block = knobs["BLOCK_I"]
    for n0 in range(0, src.shape[0], MAX_GRID_N):
        s, d = src[n0:n0 + MAX_GRID_N], dst[n0:n0 + MAX_GRID_N]
        kernel[(cdiv(per_sample, block), s.shape[0])](
            s, d, *sizes, *s.stride(), *d.stride(), float(divisor or 0),
            KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, COUNT_PAD=bool(count_include_pad),
            OVERRIDE=bool(divisor), CL=channels_last, BLOCK=block, num_warps=knobs["num_warps"],
            enable_fp_fusion=FP_FUSION)


def _out_size(H, W, geometry):
    kh, kw, sh, sw, ph, pw = geometry
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def forward(x, geometry, count_include_pad, divisor, channels_last, knobs=None):
    """y = the pooling of x (knobs: the launch's, else the table's or the heuristic's)."""
    N, C, H, W = x.shape
    OH, OW = _out_size(H, W, geometry)
    if in_sample_span(x) >= 2 ** 31:  # (the kernels' in-sample offsets are int32)
        x = x.contiguous(memory_format=_fmt(channels_last))
    y = empty((N, C, OH, OW), dtype=x.dtype, device=x.device, memory_format=_fmt(channels_last))
    if y.numel():
        knobs = knobs or _knobs("pool.fwd", x, geometry, channels_last)
        _launch(_pool_fwd_kernel, x, y, (C, H, W, OH, OW), geometry, count_include_pad, divisor, channels_last,
                knobs)
    return y


def backward(dy, shape, dtype, geometry, count_include_pad, divisor, channels_last, knobs=None):
    """dx (of `shape` and `dtype`, on dy's device) from the output's gradient dy."""
    dx = empty(shape, dtype=dtype, device=dy.device, memory_format=_fmt(channels_last))
    if dx.numel():
        if in_sample_span(dy) >= 2 ** 31:  # (a slice of a wider gradient, say)
            dy = dy.contiguous(memory_format=_fmt(channels_last))
        knobs = knobs or _knobs("pool.bwd", dx, geometry, channels_last)
        _launch(_pool_bwd_kernel, dy, dx, (*shape[1:], *dy.shape[2:]), geometry, count_include_pad, divisor,
                channels_last, knobs)
    return dx


def _fwd_impl(x: torch.Tensor, geometry: List[int], count_include_pad: bool, divisor: int,
              channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, an empty tensor of x's dtype and device: backward's and recompute's note of them)."""
    out = _out_size(x.shape[2], x.shape[3], geometry)
    fits_int32("avg_pool2d", x.shape[1] * max(x.shape[2] * x.shape[3], out[0] * out[1]), x)
    return forward(x, geometry, count_include_pad, divisor, channels_last), x.new_empty(0)


def _save(inputs, outputs):
    # Not x: the op is linear, its backward needs x's shape only (as torch's avg_pool2d saves).
    x, geometry, count_include_pad, divisor, channels_last = inputs
    return (outputs[1],), (list(x.shape), geometry, count_include_pad, divisor, channels_last)


def _bwd_impl(dy: torch.Tensor, like: torch.Tensor, shape: List[int], geometry: List[int], count_include_pad: bool,
              divisor: int, channels_last: bool, need_x: bool) -> torch.Tensor:
    return backward(dy, shape, like.dtype, geometry, count_include_pad, divisor, channels_last)


def _fwd_fake(x, geometry, count_include_pad, divisor, channels_last):
    N, C, H, W = x.shape
    y = torch.empty((N, C, *_out_size(H, W, geometry)), dtype=x.dtype, device=x.device,
                    memory_format=_fmt(channels_last))
    return y, x.new_empty(0)


def _bwd_fake(dy, like, shape, geometry, count_include_pad, divisor, channels_last, need_x):
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=_fmt(channels_last))


def _recompute(tensors, args, inputs):
    """For a create_graph backward: the op is linear, so its input gradient depends on the incoming
    gradient alone, and the reference pooling of any x of the right shape (zeros) gives it, with
    the graph back to that gradient (see _twoface)."""
    (like,), (shape, geometry, count_include_pad, divisor, _cl) = tensors, args
    x = torch.zeros(shape, dtype=like.dtype, device=like.device, requires_grad=True)
    kh, kw, sh, sw, ph, pw = geometry
    return (x,), torch.nn.functional.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), False, count_include_pad,
                                                divisor or None)


def _vmap(info, in_dims, inputs, apply):
    """torch.func.vmap: the vmapped dimension folded into the channels (every plane is pooled on
    its own), one launch."""
    x, *rest = inputs
    x = x.movedim(in_dims[0], 1)
    N, B, C, H, W = x.shape
    y, like = apply(x.reshape(N, B * C, H, W), *rest)
    return (y.unflatten(1, (B, C)), like), (1, None)


def _check_op(x, geometry, count_include_pad, divisor, channels_last):
    _check("avg_pool2d", x, geometry[:2], geometry[2:4], geometry[4:], divisor or None)


OP = TwoFacedOp("bicyclegan::avg_pool2d", _fwd_impl, _bwd_impl, _save, _fwd_fake, _bwd_fake,
                differentiable=("x",), recompute=_recompute, vmap=_vmap, check=_check_op)


def avg_pool2d_triton(x, kernel_size, stride, padding, count_include_pad, divisor_override, fmt):
    """Triton path of avg_pool2d (arguments checked, made pairs, by the caller; floor mode). fmt: the
    memory format of y and dx, torch's for the caller's x (_impl.memory_format; an unbatched x's,
    NCHW, is not its unsqueezed view's)."""
    # (Under torch.func transforms NCHW: vmap cannot ask a tensor for its memory format.)
    cl = not transformed() and fmt == torch.channels_last
    geometry = [*kernel_size, *stride, *padding]
    return OP(x, geometry, bool(count_include_pad), int(divisor_override or 0), cl)
