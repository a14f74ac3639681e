"""Triton kernels for fused InstanceNorm + activation (forward and backward), their launchers and the op.

Every kernel works on a tile of BLOCK_C channels x BLOCK_HW plane positions of one sample. The plane
element (n, c, hw) lives at n * stride_n + c * stride_c + hw * stride_hw, which covers NCHW
(stride_hw = 1) and channels_last (stride_c = 1, stride_hw = C) with the same code: Triton
specialises the stride that equals 1, so loads are coalesced along whichever axis is contiguous.
The backward kernels read dy through its own three strides: autograd often hands over a dy that is
not dense in the saved tensor's layout (a channel slice of a torch.cat's gradient, an expanded
gradient with zero strides), and reading it where it lies saves a copy of an activation-sized tensor.

Three paths, chosen by `_config`:
- single pass: the whole plane fits in one tile; it is loaded once and kept in registers;
- looped: one program per (n, channel tile) loops over the plane, merging per-chunk (mean, M2)
  with Chan's formula (numerically as good as two-pass), then loops again to write;
- split: when (n, channel tile) programs are too few to fill the GPU, each plane is cut into SPLIT
  ranges handled by separate programs; a first kernel writes per-range partial statistics to a
  small fp32 workspace and a second merges them (in a fixed order: deterministic) and writes.
Statistics and accumulation are fp32 whatever the input dtype.
"""
from typing import Optional

import torch
import triton
import triton.language as tl

from . import _configs
from ._impl import CL, memory_format
from ._triton_common import FP_FUSION, cdiv, empty, fits_int32, flat_hw, next_pow2, pos_stride, sm_count
from ._triton_common import act as _act
from ._triton_common import act_grad as _act_grad
from ._twoface import TwoFacedOp, transformed
from .acts import ACT_IDS
from .norm_act import _check, instance_norm_act_ref

# Largest tile, in elements, the heuristic lets one program hold in registers.
MAX_TILE = 4096
# Largest NCHW plane the tuner also tries in one tile (the single pass: x, or dy and the saved
# tensor, read once instead of twice). At 16384 (the networks' 128 x 128 planes) compiled for sm_90
# without spills: 92-117 registers a thread on 16 warps, 39-58 on 32 (tools/compile_check.py).
WHOLE_TILE = 16384


@triton.jit
def _load_affine(w_ptr, b_ptr, c, c_mask, HAS_W: tl.constexpr, HAS_B: tl.constexpr):
    if HAS_W:
        w = tl.load(w_ptr + c, mask=c_mask, other=1.0).to(tl.float32)
    else:
        w = tl.full(c.shape, 1.0, tl.float32)
    if HAS_B:
        b = tl.load(b_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    else:
        b = tl.zeros(c.shape, tl.float32)
    return w, b


@triton.jit
def _div(a, b):
    # IEEE division for the statistics: '/' compiles to an approximate one on a GPU (2 ulp), and a
    # constant plane's mean must be that constant exactly, so that x - mean is 0 there (seen on an
    # H200: 315 / 63 != 5 put 1.5e-4 into a dead channel's output after rstd = 1 / sqrt(eps), and
    # flipped ReLU's derivative). Per channel, not per element: the cost does not show.
    return tl.div_rn(a, b)


@triton.jit
def _rstd(var, eps):
    # 1 / sqrt(var + eps), but 0 where that is 1 / 0 (a constant plane with eps=0): torch's own rule
    # (its InvStd), under which such a plane becomes the bias, where 1 / 0 made it NaN; a NaN stays NaN.
    # (The inner where keeps the division off 0: the interpreter warns at it.)
    v = var + eps
    return tl.where(v == 0.0, 0.0, _div(1.0, tl.sqrt_rn(tl.where(v == 0.0, 1.0, v))))


@triton.jit
def _refined(x, mask, mean, n):
    # The mean corrected by the mean of x - mean (the corrected two-pass algorithm). The sum's rounding
    # leaves a constant plane's mean an ulp or two off that constant where the count is no power of two
    # (0.1 over 8 x 8 or 7 x 9 values), and the variance ~1e-17, not 0: with eps=0, rstd ~3e8 made the
    # plane +-1, not act(bias). x - mean is exact there (the two are within a factor of 2), as is the sum
    # of those equal differences and its division by the count: the corrected mean is the constant.
    return mean + _div(tl.sum(tl.where(mask, x - mean[:, None], 0.0), axis=1), n)


@triton.jit
def _range_stats(x_ptr, base, c_mask, hw_lo, hw_hi, stride_hw, BLOCK_HW: tl.constexpr):
    """(mean, M2) per channel of x over plane positions [hw_lo, hw_hi), chunk by chunk."""
    mean = tl.zeros(base.shape, tl.float32)
    m2 = tl.zeros(base.shape, tl.float32)
    count = 0.0
    for start in range(hw_lo, hw_hi, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = c_mask[:, None] & (hw < hw_hi)[None, :]
        x = tl.load(x_ptr + base[:, None] + hw[None, :] * stride_hw, mask=mask, other=0.0).to(tl.float32)
        n_b = tl.minimum(hw_hi - start, BLOCK_HW).to(tl.float32)
        mean_b = _refined(x, mask, _div(tl.sum(x, axis=1), n_b), n_b)
        d = tl.where(mask, x - mean_b[:, None], 0.0)
        m2_b = tl.sum(d * d, axis=1)
        total = count + n_b
        delta = mean_b - mean
        mean += delta * _div(n_b, total)
        # delta * (delta * ...), not delta * delta * ...: at the first chunk count is 0 and delta the
        # chunk's mean, whose square overflows fp32 past 1.8e19 (0 * inf = NaN for the whole plane).
        m2 += m2_b + delta * (delta * _div(count * n_b, total))
        count = total
    return mean, m2


@triton.jit
def _range_apply(x_ptr, y_ptr, base, c_mask, hw_lo, hw_hi, stride_hw, mean, rstd, w, b, slope,
                 ACT: tl.constexpr, BLOCK_HW: tl.constexpr):
    for start in range(hw_lo, hw_hi, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = c_mask[:, None] & (hw < hw_hi)[None, :]
        offs = base[:, None] + hw[None, :] * stride_hw
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        z = (x - mean[:, None]) * (rstd * w)[:, None] + b[:, None]
        tl.store(y_ptr + offs, _act(z, ACT, slope).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _tile_base(C, stride_n, stride_c, BLOCK_C: tl.constexpr):
    # (sample, channel tile) as one program index on grid axis 0, channel tiles fastest: axis 1 takes
    # at most 65535 programs on a GPU, fewer than the 1-channel tiles of 65536 channels or more (the
    # interpreter has no such limit). Axis 2 is the split path's plane ranges.
    n_ct = tl.cdiv(C, BLOCK_C)
    pid_n = tl.program_id(0) // n_ct
    c = (tl.program_id(0) % n_ct) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    return pid_n, c, c_mask, _base(pid_n, c, stride_n, stride_c)


@triton.jit
def _base(pid_n, c, stride_n, stride_c):
    # int64: the sample's and channel's offset may pass 2**31; offsets within a plane stay int32.
    return pid_n.to(tl.int64) * stride_n + c.to(tl.int64) * stride_c


@triton.jit
def _fwd_kernel(x_ptr, y_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, C, HW, stride_n, stride_c, stride_hw,
                eps, slope, HAS_W: tl.constexpr, HAS_B: tl.constexpr, ACT: tl.constexpr,
                BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SINGLE: tl.constexpr):
    """One program per (n, channel tile): the whole plane, single pass or looped."""
    pid_n, c, c_mask, base = _tile_base(C, stride_n, stride_c, BLOCK_C)
    w, b = _load_affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B)
    if SINGLE:
        hw = tl.arange(0, BLOCK_HW)
        mask = c_mask[:, None] & (hw < HW)[None, :]
        offs = base[:, None] + hw[None, :] * stride_hw
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean = _refined(x, mask, _div(tl.sum(x, axis=1), HW * 1.0), HW * 1.0)
        d = tl.where(mask, x - mean[:, None], 0.0)
        rstd = _rstd(_div(tl.sum(d * d, axis=1), HW * 1.0), eps)
        z = d * (rstd * w)[:, None] + b[:, None]
        tl.store(y_ptr + offs, _act(z, ACT, slope).to(y_ptr.dtype.element_ty), mask=mask)
    else:
        mean, m2 = _range_stats(x_ptr, base, c_mask, 0, HW, stride_hw, BLOCK_HW)
        rstd = _rstd(_div(m2, HW * 1.0), eps)
        _range_apply(x_ptr, y_ptr, base, c_mask, 0, HW, stride_hw, mean, rstd, w, b, slope, ACT, BLOCK_HW)
    tl.store(mean_ptr + pid_n * C + c, mean, mask=c_mask)
    tl.store(rstd_ptr + pid_n * C + c, rstd, mask=c_mask)


@triton.jit
def _fwd_partial_kernel(x_ptr, pmean_ptr, pm2_ptr, C, HW, CHUNK, stride_n, stride_c, stride_hw,
                        BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Split path, step 1: (mean, M2) of one plane range into workspace [N, SPLIT, C]."""
    pid_n, c, c_mask, base = _tile_base(C, stride_n, stride_c, BLOCK_C)
    pid_s = tl.program_id(2)
    hw_lo = pid_s * CHUNK
    mean, m2 = _range_stats(x_ptr, base, c_mask, hw_lo, tl.minimum(hw_lo + CHUNK, HW), stride_hw, BLOCK_HW)
    ws = (pid_n * tl.num_programs(2) + pid_s) * C + c
    tl.store(pmean_ptr + ws, mean, mask=c_mask)
    tl.store(pm2_ptr + ws, m2, mask=c_mask)


@triton.jit
def _fwd_apply_kernel(x_ptr, y_ptr, w_ptr, b_ptr, pmean_ptr, pm2_ptr, mean_ptr, rstd_ptr, C, HW, CHUNK,
                      stride_n, stride_c, stride_hw, eps, slope, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                      ACT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Split path, step 2: merge the SPLIT partial statistics, then normalise one plane range."""
    pid_n, c, c_mask, base = _tile_base(C, stride_n, stride_c, BLOCK_C)
    pid_s = tl.program_id(2)
    split = tl.num_programs(2)
    mean = tl.zeros([BLOCK_C], tl.float32)
    m2 = tl.zeros([BLOCK_C], tl.float32)
    count = 0.0
    for s in range(0, split):
        ws = (pid_n * split + s) * C + c
        mean_b = tl.load(pmean_ptr + ws, mask=c_mask, other=0.0)
        m2_b = tl.load(pm2_ptr + ws, mask=c_mask, other=0.0)
        n_b = tl.minimum(HW - s * CHUNK, CHUNK).to(tl.float32)
        total = count + n_b
        delta = mean_b - mean
        mean += delta * _div(n_b, total)
        m2 += m2_b + delta * (delta * _div(count * n_b, total))  # (order: see _range_stats)
        count = total
    rstd = _rstd(_div(m2, HW * 1.0), eps)
    w, b = _load_affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B)
    hw_lo = pid_s * CHUNK
    _range_apply(x_ptr, y_ptr, base, c_mask, hw_lo, tl.minimum(hw_lo + CHUNK, HW), stride_hw,
                 mean, rstd, w, b, slope, ACT, BLOCK_HW)
    if pid_s == 0:
        tl.store(mean_ptr + pid_n * C + c, mean, mask=c_mask)
        tl.store(rstd_ptr + pid_n * C + c, rstd, mask=c_mask)


@triton.jit
def _load_grad(dy_ptr, s_ptr, dy_offs, offs, mask, mean, rstd, w, b, slope, ACT: tl.constexpr,
               FROM_Y: tl.constexpr):
    """(dz, xhat) for one tile: dz is the gradient at the activation's input z = xhat * w + b.

    The saved tensor s is x, or (FROM_Y: no affine, LeakyReLU with slope > 0) the output y, from
    which xhat = z is recovered by inverting the activation (y < 0 exactly where z < 0). dy_offs
    are the tile's offsets in dy, offs in s (and dx).
    """
    dy = tl.load(dy_ptr + dy_offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if FROM_Y:
        xhat = tl.where(s < 0, s / slope, s)
        z = xhat
    else:
        xhat = (s - mean[:, None]) * rstd[:, None]
        z = xhat * w[:, None] + b[:, None]
    dz = tl.where(mask, _act_grad(dy, z, ACT, slope), 0.0)
    return dz, tl.where(mask, xhat, 0.0)


@triton.jit
def _range_grad_sums(dy_ptr, s_ptr, dy_base, base, c_mask, hw_lo, hw_hi, dy_stride_hw, stride_hw, mean, rstd,
                     w, b, slope, ACT: tl.constexpr, FROM_Y: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Per channel: sum of dz and sum of dz * xhat over plane positions [hw_lo, hw_hi)."""
    acc_dz = tl.zeros([base.shape[0], BLOCK_HW], tl.float32)
    acc_dzx = tl.zeros([base.shape[0], BLOCK_HW], tl.float32)
    for start in range(hw_lo, hw_hi, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = c_mask[:, None] & (hw < hw_hi)[None, :]
        dz, xhat = _load_grad(dy_ptr, s_ptr, dy_base[:, None] + hw[None, :] * dy_stride_hw,
                              base[:, None] + hw[None, :] * stride_hw, mask, mean, rstd, w, b, slope, ACT, FROM_Y)
        acc_dz += dz
        acc_dzx += dz * xhat
    return tl.sum(acc_dz, axis=1), tl.sum(acc_dzx, axis=1)


@triton.jit
def _range_grad_apply(dy_ptr, s_ptr, dx_ptr, dy_base, base, c_mask, hw_lo, hw_hi, dy_stride_hw, stride_hw, mean,
                      rstd, w, b, mean_dz, mean_dzx, slope, ACT: tl.constexpr, FROM_Y: tl.constexpr,
                      BLOCK_HW: tl.constexpr):
    for start in range(hw_lo, hw_hi, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = c_mask[:, None] & (hw < hw_hi)[None, :]
        offs = base[:, None] + hw[None, :] * stride_hw
        dz, xhat = _load_grad(dy_ptr, s_ptr, dy_base[:, None] + hw[None, :] * dy_stride_hw, offs, mask,
                              mean, rstd, w, b, slope, ACT, FROM_Y)
        dx = (rstd * w)[:, None] * (dz - mean_dz[:, None] - xhat * mean_dzx[:, None])
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(dy_ptr, s_ptr, dx_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, sdz_ptr, sdzx_ptr, C, HW,
                stride_n, stride_c, stride_hw, dy_stride_n, dy_stride_c, dy_stride_hw, slope,
                HAS_W: tl.constexpr, HAS_B: tl.constexpr, ACT: tl.constexpr, FROM_Y: tl.constexpr,
                BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, SINGLE: tl.constexpr):
    """One program per (n, channel tile): dx for the whole plane, and the per-plane sums of dz and
    dz * xhat (which give dbias and dweight once summed over n)."""
    pid_n, c, c_mask, base = _tile_base(C, stride_n, stride_c, BLOCK_C)
    dy_base = _base(pid_n, c, dy_stride_n, dy_stride_c)
    w, b = _load_affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B)
    mean = tl.load(mean_ptr + pid_n * C + c, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + pid_n * C + c, mask=c_mask, other=0.0)
    if SINGLE:
        hw = tl.arange(0, BLOCK_HW)
        mask = c_mask[:, None] & (hw < HW)[None, :]
        offs = base[:, None] + hw[None, :] * stride_hw
        dz, xhat = _load_grad(dy_ptr, s_ptr, dy_base[:, None] + hw[None, :] * dy_stride_hw, offs, mask,
                              mean, rstd, w, b, slope, ACT, FROM_Y)
        sum_dz = tl.sum(dz, axis=1)
        sum_dzx = tl.sum(dz * xhat, axis=1)
        dx = (rstd * w)[:, None] * (dz - (sum_dz / HW)[:, None] - xhat * (sum_dzx / HW)[:, None])
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    else:
        sum_dz, sum_dzx = _range_grad_sums(dy_ptr, s_ptr, dy_base, base, c_mask, 0, HW, dy_stride_hw, stride_hw,
                                           mean, rstd, w, b, slope, ACT, FROM_Y, BLOCK_HW)
        _range_grad_apply(dy_ptr, s_ptr, dx_ptr, dy_base, base, c_mask, 0, HW, dy_stride_hw, stride_hw, mean,
                          rstd, w, b, sum_dz / HW, sum_dzx / HW, slope, ACT, FROM_Y, BLOCK_HW)
    tl.store(sdz_ptr + pid_n * C + c, sum_dz, mask=c_mask)
    tl.store(sdzx_ptr + pid_n * C + c, sum_dzx, mask=c_mask)


@triton.jit
def _bwd_partial_kernel(dy_ptr, s_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, sdz_ptr, sdzx_ptr, C, HW, CHUNK,
                        stride_n, stride_c, stride_hw, dy_stride_n, dy_stride_c, dy_stride_hw, slope,
                        HAS_W: tl.constexpr, HAS_B: tl.constexpr, ACT: tl.constexpr, FROM_Y: tl.constexpr,
                        BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Split path, step 1: sums of dz and dz * xhat over one plane range into [N, SPLIT, C]."""
    pid_n, c, c_mask, base = _tile_base(C, stride_n, stride_c, BLOCK_C)
    dy_base = _base(pid_n, c, dy_stride_n, dy_stride_c)
    pid_s = tl.program_id(2)
    w, b = _load_affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B)
    mean = tl.load(mean_ptr + pid_n * C + c, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + pid_n * C + c, mask=c_mask, other=0.0)
    hw_lo = pid_s * CHUNK
    sum_dz, sum_dzx = _range_grad_sums(dy_ptr, s_ptr, dy_base, base, c_mask, hw_lo, tl.minimum(hw_lo + CHUNK, HW),
                                       dy_stride_hw, stride_hw, mean, rstd, w, b, slope, ACT, FROM_Y, BLOCK_HW)
    ws = (pid_n * tl.num_programs(2) + pid_s) * C + c
    tl.store(sdz_ptr + ws, sum_dz, mask=c_mask)
    tl.store(sdzx_ptr + ws, sum_dzx, mask=c_mask)


@triton.jit
def _bwd_apply_kernel(dy_ptr, s_ptr, dx_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, sdz_ptr, sdzx_ptr, C, HW,
                      CHUNK, stride_n, stride_c, stride_hw, dy_stride_n, dy_stride_c, dy_stride_hw, slope,
                      HAS_W: tl.constexpr, HAS_B: tl.constexpr, ACT: tl.constexpr, FROM_Y: tl.constexpr,
                      BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Split path, step 2: add up the SPLIT partial sums (fixed order), then dx for one plane range."""
    pid_n, c, c_mask, base = _tile_base(C, stride_n, stride_c, BLOCK_C)
    dy_base = _base(pid_n, c, dy_stride_n, dy_stride_c)
    pid_s = tl.program_id(2)
    split = tl.num_programs(2)
    sum_dz = tl.zeros([BLOCK_C], tl.float32)
    sum_dzx = tl.zeros([BLOCK_C], tl.float32)
    for s in range(0, split):
        ws = (pid_n * split + s) * C + c
        sum_dz += tl.load(sdz_ptr + ws, mask=c_mask, other=0.0)
        sum_dzx += tl.load(sdzx_ptr + ws, mask=c_mask, other=0.0)
    w, b = _load_affine(w_ptr, b_ptr, c, c_mask, HAS_W, HAS_B)
    mean = tl.load(mean_ptr + pid_n * C + c, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + pid_n * C + c, mask=c_mask, other=0.0)
    hw_lo = pid_s * CHUNK
    _range_grad_apply(dy_ptr, s_ptr, dx_ptr, dy_base, base, c_mask, hw_lo, tl.minimum(hw_lo + CHUNK, HW),
                      dy_stride_hw, stride_hw, mean, rstd, w, b, sum_dz / HW, sum_dzx / HW, slope, ACT, FROM_Y,
                      BLOCK_HW)


# ---------------------------------------------------------------------------------------------
# Launchers


def _layout(x):
    """(x dense in the memory format torch gives x's results, copied into it if it is not (a channel
    slice, a W slice); that format, which y and dx take; (stride_n, stride_c, stride_hw))."""
    N, C, H, W = x.shape
    fmt = memory_format(x)
    # Canonical strides, not x.stride(): a size-1 dim of a dense tensor may carry any stride.
    strides = (H * W * C, 1, C) if fmt == CL else (C * H * W, H * W, 1)
    return x.contiguous(memory_format=fmt), fmt, strides


def _empty_as(t, fake=False):
    """An output of dense t's shape, dtype and memory format (torch.empty's strides for it, which
    the kernels' canonical strides address: t non-empty and dense in memory_format(t))."""
    return (torch.empty if fake else empty)(t.shape, dtype=t.dtype, device=t.device, memory_format=memory_format(t))


def _empty_y(x):
    """The y of an empty x, real and fake alike: x's strides, which eager code's y has (the reference's clone of
    x keeps an empty x's strides, whatever they are), not _empty_as's, NCHW's for a channels_last x too (torch
    calls every empty tensor NCHW). Given, not preserved: clone's and empty_like's fake faces give an empty x
    other strides than their real ones (torch 2.13)."""
    return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)


def _grad_layout(dy, fmt, strides):
    """(dy, its (stride_n, stride_c, stride_hw)) for the backward kernels, which read dy where it lies
    when its H and W axes merge into one plane index (a channel or batch slice in either layout, zero
    strides from expand, the other memory format) and its in-plane offsets fit int32; any other dy is
    copied into the saved tensor's layout `fmt` (whose strides are `strides`)."""
    H, W = dy.shape[2:]
    if flat_hw(dy) and (H * W - 1) * pos_stride(dy) < 2 ** 31:
        return dy, (dy.stride(0), dy.stride(1), pos_stride(dy))
    return dy.contiguous(memory_format=fmt), strides


def _heuristic(x, channels_last, hw_cap=MAX_TILE, split=None):
    """Knobs from the shape alone. hw_cap caps the plane positions one tile holds; split forces the
    number of plane ranges (both are test hooks: they force the looped and split paths)."""
    N, C, H, W = x.shape
    HW = H * W
    if channels_last:
        # Channels are contiguous: take ~128 bytes of them per plane position.
        BLOCK_C = min(next_pow2(C), max(1, 128 // x.element_size()))
        BLOCK_HW = min(next_pow2(HW), hw_cap, max(1, MAX_TILE // BLOCK_C))
    else:
        BLOCK_HW = min(next_pow2(HW), hw_cap, MAX_TILE)
        # Small planes: group channels so a program still has ~1K elements of work.
        BLOCK_C = min(next_pow2(C), max(1, 1024 // BLOCK_HW))
    if split is None:
        split = 1
        tiles, ranges = N * cdiv(C, BLOCK_C), cdiv(HW, BLOCK_HW)
        target = 2 * sm_count(x.device)
        if ranges > 1 and tiles < target:
            split = min(cdiv(target, tiles), ranges)
    num_warps = max(1, min(8, BLOCK_C * BLOCK_HW // 256))
    return dict(BLOCK_C=BLOCK_C, BLOCK_HW=BLOCK_HW, split=split, num_warps=num_warps)


def _complete(x, knobs):
    """The launch from the knobs: split clamped to the plane ranges there are, each range a whole
    number of tiles (chunk positions), single pass when one tile holds the plane."""
    N, C, H, W = x.shape
    HW = H * W
    ranges = cdiv(HW, knobs["BLOCK_HW"])
    split = max(1, min(knobs["split"], ranges, 65535))  # (grid axis 2's limit on a GPU)
    chunk = cdiv(cdiv(HW, split), knobs["BLOCK_HW"]) * knobs["BLOCK_HW"]
    return dict(knobs, split=cdiv(HW, chunk), chunk=chunk, single=ranges == 1,
                grid=(N * cdiv(C, knobs["BLOCK_C"]), 1))  # (see _tile_base)


def _config(x, channels_last, block_hw=None, split=None, site="norm_act.fwd", variant=None):
    """The launch for x at `site` (norm_act.fwd or norm_act.bwd) of the kernel `variant`
    (_configs.norm_variant's): the tuned table's entry if there is one, else the heuristic. block_hw
    and split (test hooks) bypass the table."""
    N, C, H, W = x.shape
    fits_int32("instance_norm_act", C * H * W, x)
    if block_hw or split:
        knobs = _heuristic(x, channels_last, next_pow2(block_hw) if block_hw else MAX_TILE, split)
    else:
        knobs = _configs.choose(site, x.shape, x.dtype, channels_last, x.device,
                                lambda: _heuristic(x, channels_last), variant)
    return _complete(x, knobs)


def candidates(x, channels_last, quick=False):
    """Knob sets the tuner tries for x (either direction): the heuristic's first, then variations
    of it (warps; a smaller tile, alone and with more programs per plane; split; a larger tile),
    each distinct once completed for x; and for an NCHW plane the heuristic loops over, up to
    WHOLE_TILE positions, the single pass over the whole plane on 16 warps (second: in the quick
    set too) and 32."""
    h = _heuristic(x, channels_last)
    bc, bhw, split, warps = h["BLOCK_C"], h["BLOCK_HW"], h["split"], h["num_warps"]
    HW = x.shape[2] * x.shape[3]
    # The axis that is not contiguous gives way when the tile shrinks or grows.
    smaller = dict(h, BLOCK_HW=bhw // 2) if (channels_last or bc == 1) and bhw > 1 else dict(h, BLOCK_C=max(1, bc // 2))
    larger = dict(h, BLOCK_HW=bhw * 2, num_warps=min(16, warps * 2)) if bhw < next_pow2(HW) else None
    # (Not channels_last: a plane's positions are C apart there, and a tile of one channel would
    # read a sector for each element.)
    whole = (dict(BLOCK_C=1, BLOCK_HW=next_pow2(HW), split=1) if not channels_last and bhw < next_pow2(HW) <= WHOLE_TILE
             else None)
    variants = [h] + ([dict(whole, num_warps=16)] if whole else []) + [
        dict(h, num_warps=min(16, warps * 2)), smaller, dict(smaller, split=split * 2),
        dict(h, split=split * 2), dict(h, num_warps=max(1, warps // 2)), dict(h, split=1), larger,
        dict(whole, num_warps=32) if whole else None]
    if quick:
        variants = variants[:4]
    out, seen = [], set()
    for v in variants:
        if v is None:
            continue
        done = _complete(x, v)
        knobs = {k: done[k] for k in h}
        sig = tuple(knobs.values())
        if sig not in seen:
            seen.add(sig)
            out.append(knobs)
    return out


def _empty_stats(x, *shape):
    return empty(shape, dtype=torch.float32, device=x.device)


def _dummy(x):
    # Stand-in pointer for an absent weight/bias; the kernel never reads it (HAS_W/HAS_B false).
    return x


def _forward(x, weight, bias, act, slope, eps, strides, cfg):
    N, C, H, W = x.shape
    HW = H * W
    y = _empty_as(x)
    mean, rstd = _empty_stats(x, N, C), _empty_stats(x, N, C)
    common = dict(HAS_W=weight is not None, HAS_B=bias is not None, ACT=ACT_IDS[act],
                  BLOCK_C=cfg["BLOCK_C"], BLOCK_HW=cfg["BLOCK_HW"], num_warps=cfg["num_warps"],
                  enable_fp_fusion=FP_FUSION)
    # The kernels read weight[c] and bias[c] at ptr + c: a strided view (a column of a C x 2 tensor) is copied.
    w = weight.contiguous() if weight is not None else _dummy(x)
    b = bias.contiguous() if bias is not None else _dummy(x)
    if cfg["split"] == 1:
        _fwd_kernel[cfg["grid"]](x, y, w, b, mean, rstd, C, HW, *strides, eps, slope,
                                 SINGLE=cfg["single"], **common)
    else:
        grid = cfg["grid"] + (cfg["split"],)
        pmean, pm2 = _empty_stats(x, N, cfg["split"], C), _empty_stats(x, N, cfg["split"], C)
        _fwd_partial_kernel[grid](x, pmean, pm2, C, HW, cfg["chunk"], *strides, BLOCK_C=cfg["BLOCK_C"],
                                  BLOCK_HW=cfg["BLOCK_HW"], num_warps=cfg["num_warps"], enable_fp_fusion=FP_FUSION)
        _fwd_apply_kernel[grid](x, y, w, b, pmean, pm2, mean, rstd, C, HW, cfg["chunk"], *strides, eps,
                                slope, **common)
    return y, mean, rstd


def _backward(dy, saved, weight, bias, mean, rstd, act, slope, from_y, strides, cfg, dy_strides=None):
    """dy_strides: dy's (stride_n, stride_c, stride_hw), saved's strides when None (dy dense like saved)."""
    N, C, H, W = saved.shape
    HW = H * W
    dy_strides = strides if dy_strides is None else dy_strides
    dx = _empty_as(saved)
    sdz, sdzx = _empty_stats(dy, N, cfg["split"], C), _empty_stats(dy, N, cfg["split"], C)
    common = dict(HAS_W=weight is not None, HAS_B=bias is not None, ACT=ACT_IDS[act], FROM_Y=from_y,
                  BLOCK_C=cfg["BLOCK_C"], BLOCK_HW=cfg["BLOCK_HW"], num_warps=cfg["num_warps"],
                  enable_fp_fusion=FP_FUSION)
    w = weight.contiguous() if weight is not None else _dummy(dy)
    b = bias.contiguous() if bias is not None else _dummy(dy)
    if cfg["split"] == 1:
        _bwd_kernel[cfg["grid"]](dy, saved, dx, w, b, mean, rstd, sdz, sdzx, C, HW, *strides, *dy_strides, slope,
                                 SINGLE=cfg["single"], **common)
    else:
        grid = cfg["grid"] + (cfg["split"],)
        _bwd_partial_kernel[grid](dy, saved, w, b, mean, rstd, sdz, sdzx, C, HW, cfg["chunk"], *strides,
                                  *dy_strides, slope, **common)
        _bwd_apply_kernel[grid](dy, saved, dx, w, b, mean, rstd, sdz, sdzx, C, HW, cfg["chunk"], *strides,
                                *dy_strides, slope, **common)
    return dx, sdz, sdzx


# ---------------------------------------------------------------------------------------------
# The op (both faces: see _twoface.py). block_hw and split are the test hooks of
# instance_norm_act_triton, 0 meaning "choose".

def _fwd_impl(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], act: str,
              slope: float, eps: float, block_hw: int, split: int,
              keep_x: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mean, rstd), the statistics per (n, c) in fp32. keep_x: save x for backward even where y
    would do (see _save)."""
    if not x.numel():
        # Eager code runs the reference on an empty x (instance_norm_act); a traced graph keeps this op for
        # any x: an empty plane divided by zero in the launch (H * W = 0). Nothing to compute: y empty, in
        # _empty_y's strides. The statistics, which backward does not read here, zeros (not left unwritten: the
        # op's outputs are the same on every run).
        stats = torch.zeros(x.shape[:2], dtype=torch.float32, device=x.device)
        return _empty_y(x), stats, stats.clone()
    x, fmt, strides = _layout(x)
    variant = _configs.norm_variant("norm_act.fwd", act, False, weight is not None, bias is not None)
    cfg = _config(x, fmt == torch.channels_last, block_hw, split, "norm_act.fwd", variant)
    return _forward(x, weight, bias, act, slope, eps, strides, cfg)


def saves_y(weight, bias, act, slope):
    """Whether backward works from the output y rather than the input x: when the activation can be
    undone exactly enough (no affine, LeakyReLU with slope > 0; y is usually kept alive by the next
    layer anyway)."""
    return weight is None and bias is None and act == "leaky_relu" and slope > 0


def _save(inputs, outputs):
    """Per-instance mean and rstd (fp32) and one activation-sized tensor: y or x (see saves_y; x
    when keep_x, which a backward with create_graph=True needs: the layer's gradient is
    differentiated again through x, and y does not give x back with its graph)."""
    x, weight, bias, act, slope, _eps, block_hw, split, keep_x = inputs
    y, mean, rstd = outputs
    from_y = saves_y(weight, bias, act, slope) and not keep_x
    return (y if from_y else x, weight, bias, mean, rstd), (act, slope, from_y, block_hw, split)


def _recompute(tensors, args, inputs):
    """(x, weight, bias) and the reference's output from them, for a create_graph backward."""
    saved, weight, bias = tensors[:3]
    act, slope, from_y = args[:3]
    if from_y:
        # Raised inside the penalty's torch.autograd.grad: x's shape is what tells the user which layer.
        raise RuntimeError(
            f"instance_norm_act: a backward with create_graph=True (a gradient penalty: R1, WGAN-GP; double "
            f"backward) needs the layer's input x, and this LeakyReLU norm without affine parameters (x of shape "
            f"{tuple(saved.shape)}) kept only its output y: the Triton path's default, which impl='auto' takes on "
            f"CUDA tensors (the reference, which it takes on the CPU, keeps x). Pass double_backward=True: "
            f"InstanceNormAct2d(..., double_backward=True), fuse_norm_act(model, double_backward=True), "
            f"instance_norm_act(..., double_backward=True), or on a built model set m.double_backward = True for "
            f"each InstanceNormAct2d m in model.modules() (one more activation-sized tensor kept per such layer, as "
            f"nn.InstanceNorm2d + nn.LeakyReLU keep); or impl='ref'")
    return (saved, weight, bias), instance_norm_act_ref(saved, act, slope, inputs[5], weight, bias)


def _bwd_impl(dy: torch.Tensor, saved: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
              mean: torch.Tensor, rstd: torch.Tensor, act: str, slope: float, from_y: bool, block_hw: int,
              split: int, need_x: bool, need_weight: bool,
              need_bias: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dweight, dbias); dweight/dbias empty where not asked for (or absent)."""
    saved, fmt, strides = _layout(saved)
    if not saved.numel():  # (see _fwd_impl) dx empty; dweight and dbias sums over no element, zero
        def zero(t, need):
            return torch.zeros_like(t) if need and t is not None else dy.new_empty(0)
        return _empty_as(saved), zero(weight, need_weight), zero(bias, need_bias)
    variant = _configs.norm_variant("norm_act.bwd", act, from_y, weight is not None, bias is not None)
    cfg = _config(saved, fmt == torch.channels_last, block_hw, split, "norm_act.bwd", variant)
    dy, dy_strides = _grad_layout(dy, fmt, strides)
    dx, sdz, sdzx = _backward(dy, saved, weight, bias, mean, rstd, act, slope, from_y, strides, cfg, dy_strides)
    return (dx,
            sdzx.sum((0, 1)).to(weight.dtype) if need_weight and weight is not None else dy.new_empty(0),
            sdz.sum((0, 1)).to(bias.dtype) if need_bias and bias is not None else dy.new_empty(0))


def _fwd_fake(x, weight, bias, act, slope, eps, block_hw, split, keep_x):
    stats = x.new_empty(x.shape[:2], dtype=torch.float32)
    y = _empty_y(x) if x.numel() == 0 else _empty_as(_layout(x)[0], fake=True)
    return y, stats, torch.empty_like(stats)


def _bwd_fake(dy, saved, weight, bias, mean, rstd, act, slope, from_y, block_hw, split, need_x, need_weight,
              need_bias):
    return (_empty_as(_layout(saved)[0], fake=True),
            torch.empty_like(weight) if need_weight and weight is not None else dy.new_empty(0),
            torch.empty_like(bias) if need_bias and bias is not None else dy.new_empty(0))


def _vmap(info, in_dims, inputs, apply):
    """torch.func.vmap: the vmapped dimension B folded into the channels, one launch (each (sample,
    channel) plane is normalised on its own, so B x C channels are B norms of C): x as N x (B * C) x
    H x W, weight and bias as B * C (repeated where they are not vmapped)."""
    x, weight, bias, *rest = inputs
    B = info.batch_size
    x = x.movedim(in_dims[0], 1) if in_dims[0] is not None else x.unsqueeze(1).expand(-1, B, -1, -1, -1)
    N, _, C, H, W = x.shape

    def per_channel(t, d):
        return None if t is None else (t.movedim(d, 0) if d is not None else t.expand(B, C)).reshape(B * C)

    y, mean, rstd = apply(x.reshape(N, B * C, H, W), per_channel(weight, in_dims[1]), per_channel(bias, in_dims[2]),
                          *rest)
    return (y.unflatten(1, (B, C)), mean.unflatten(1, (B, C)), rstd.unflatten(1, (B, C))), (1, 1, 1)


OP = TwoFacedOp("bicyclegan::instance_norm_act", _fwd_impl, _bwd_impl, _save, _fwd_fake, _bwd_fake,
                differentiable=("x", "weight", "bias"), recompute=_recompute, vmap=_vmap,
                check=lambda x, weight, bias, act, slope, eps, *_: _check(x, act, slope, eps, weight, bias))


def instance_norm_act_triton(x, act="leaky_relu", slope=0.2, eps=1e-5, weight=None, bias=None, *,
                             block_hw=None, split=None, double_backward=False):
    """Triton path of instance_norm_act (arguments checked by the caller). block_hw and split
    override the tiling (for tests: force the looped and split paths on small planes)."""
    # Under a torch.func transform every backward builds a graph (create_graph), which needs x: keep it.
    return OP(x, weight, bias, act, float(slope), float(eps), int(block_hw or 0), int(split or 0),
              bool(double_backward) or transformed())
