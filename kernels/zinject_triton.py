"""Triton paths for z injection: the fused act+tile+concatenate op and the concatenation-free conv.

Fused concat: one pass writes act(x) and act(z) tiled over H x W into the conv's input buffer (in
the layout zinject.concat_format picks for the conv; NCHW, torch.cat's, for z_concat_act); its
backward is one pass over the gradient giving dx and the per-block partial sums of the z channels,
which a small reduction turns into dz.

Concatenation-free: because tile(z) is constant over the plane,
    conv(act(cat(x, tile z)), W) = conv(act(x), W[:, :C]) + z_term,
    z_term[n, o, i, j] = sum_{kh, kw valid at (i, j)} Q[n, o, kh, kw],
    Q[n, o, kh, kw]    = sum_c act(z[n, c]) * W[o, C + c, kh, kw],
where tap (kh, kw) is valid at output (i, j) when it lands inside the image (not in the zero
padding). Validity is separable, row(i, kh) * col(j, kw), which the two plane kernels exploit:
the forward sums the taps kh per output row first (R[n, o, i, kw], a small tensor) and adds
z_term = sum_kw col(j, kw) R[n, o, i, kw] (and the bias, in fp32) to the conv output in place; the backward reduces
grad_out in one pass into dQ[n, o, kh, kw] = sum of grad_out over the outputs where tap (kh, kw)
is valid, plus the plain sum for the bias. Two small kernels do the rest of the z side: Q from z and
the weight, and from dQ: dW_z[o, c] = sum_n act(z[n, c]) dQ[n, o], dz[n, c] = act'(z[n, c]) *
sum_o <W_z[o, c], dQ[n, o]>, and dbias. The x side is cuDNN's conv on act(x) with W[:, :C]. No
tensor of the concatenated size is ever allocated.
"""
# typing.List, not list[int], in the custom ops' annotations: torch 2.4 and 2.5 infer a schema from the
# former alone ("unsupported type list[int]").
from typing import List, Optional

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from . import _configs
from ._impl import CL, NCHW, dense_strides, memory_format, shape_of
from ._triton_common import FP_FUSION, cdiv, fits_int32, in_sample_span, next_pow2, sm_count
from ._triton_common import act as _act
from ._triton_common import act_grad as _act_grad
from ._triton_common import empty as _empty
from ._triton_common import flat_hw as _flat_hw
from ._triton_common import pos_stride as _pos_stride
from ._triton_common import up as _up
from ._twoface import TwoFacedOp
from .acts import ACT_IDS as _ACT_IDS
from .zinject import _check_shapes, _check_weight, concat_format, z_concat_act_ref

# ---------------------------------------------------------------------------------------------
# 1a. kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _sample_and_block(HW, BLOCK_P: tl.constexpr):
    # (sample n, block of positions) as one program index on grid axis 0, blocks fastest: axes 1 and
    # 2 take at most 65535 programs on a GPU, fewer than a batch of 65536 samples or more (the
    # interpreter has no such limit).
    n_pb = tl.cdiv(HW, BLOCK_P)
    return (tl.program_id(0) // n_pb).to(tl.int64), tl.program_id(0) % n_pb


@triton.jit
def _zcat_fwd_kernel(x_ptr, z_ptr, y_ptr, C, CT, HW,
                     sxn, sxc, sxp, szn, szc, syn, syc, syp, slope,
                     ACT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # Tile [BLOCK_P positions, BLOCK_C channels] of y = act(cat(x, tile z)); p is h * W + w.
    n, pb = _sample_and_block(HW, BLOCK_P)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pm = p < HW
    is_x = c < C
    xv = _up(tl.load(x_ptr + n * sxn + p[:, None] * sxp + c[None, :] * sxc,
                     mask=pm[:, None] & is_x[None, :], other=0.0))
    zv = _up(tl.load(z_ptr + n * szn + (c - C) * szc, mask=(c >= C) & (c < CT), other=0.0))
    v = _act(tl.where(is_x[None, :], xv, zv[None, :]), ACT, slope)
    tl.store(y_ptr + n * syn + p[:, None] * syp + c[None, :] * syc, v.to(y_ptr.dtype.element_ty),
             mask=pm[:, None] & (c < CT)[None, :])


@triton.jit
def _zcat_bwd_kernel(g_ptr, x_ptr, z_ptr, dx_ptr, part_ptr, C, CT, NZ, HW,
                     sgn, sgc, sgp, sxn, sxc, sxp, szn, szc, slope,
                     ACT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # dx for the x channels of the tile; for its z channels, the sum over the tile's positions
    # (times act'(z)) goes to part[n, block of positions, c - C].
    n, pb = _sample_and_block(HW, BLOCK_P)
    cb = tl.program_id(1)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    pm = p < HW
    g = tl.load(g_ptr + n * sgn + p[:, None] * sgp + c[None, :] * sgc,
                mask=pm[:, None] & (c < CT)[None, :], other=0.0).to(part_ptr.dtype.element_ty)
    xm = pm[:, None] & (c < C)[None, :]
    x_off = n * sxn + p[:, None] * sxp + c[None, :] * sxc
    xv = _up(tl.load(x_ptr + x_off, mask=xm, other=0.0))
    tl.store(dx_ptr + x_off, _act_grad(g, xv, ACT, slope).to(dx_ptr.dtype.element_ty), mask=xm)
    if (cb + 1) * BLOCK_C > C:
        zm = (c >= C) & (c < CT)
        zv = _up(tl.load(z_ptr + n * szn + (c - C) * szc, mask=zm, other=0.0))
        s = _act_grad(tl.sum(g, axis=0), zv, ACT, slope)
        tl.store(part_ptr + tl.program_id(0).to(tl.int64) * NZ + (c - C), s, mask=zm)  # [n, pb, c - C]


@triton.jit
def _act_cast_kernel(x_ptr, y_ptr, numel, slope, ACT: tl.constexpr, BLOCK: tl.constexpr):
    off = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = off < numel
    v = _up(tl.load(x_ptr + off, mask=m, other=0.0))
    tl.store(y_ptr + off, _act(v, ACT, slope).to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _act_grad_kernel(g_ptr, x_ptr, dx_ptr, numel, slope, ACT: tl.constexpr, BLOCK: tl.constexpr):
    off = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = off < numel
    g = _up(tl.load(g_ptr + off, mask=m, other=0.0))
    v = _up(tl.load(x_ptr + off, mask=m, other=0.0))
    tl.store(dx_ptr + off, _act_grad(g, v, ACT, slope).to(dx_ptr.dtype.element_ty), mask=m)


@triton.jit
def _zterm_add_kernel(y_ptr, r_ptr, b_ptr, CO, OH, OW, W, ROWS,
                      syn, syo, syh, syw,
                      KW: tl.constexpr, SW: tl.constexpr, PW: tl.constexpr,
                      HAS_BIAS: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    # y[n, o, i, j] += bias[o] + sum_kw col(j, kw) * R[n, o, i, kw]  (R: _zterm_rows, the taps kh
    # already summed) for ROWS output rows i, one block of columns j and one block of channels o.
    # 2-D tiles only, the taps kw unrolled: a [BLOCK_J, KW, BLOCK_O] product summed over its middle
    # axis gave wrong sums on an H200 (Triton 3.6) once both blocks were 16 or more.
    pid_r = tl.program_id(0)
    n_rch = tl.cdiv(OH, ROWS)
    n = (pid_r // n_rch).to(tl.int64)
    i0 = (pid_r % n_rch) * ROWS
    j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    o = tl.program_id(2) * BLOCK_O + tl.arange(0, BLOCK_O)
    om = o < CO
    ACC = r_ptr.dtype.element_ty
    if HAS_BIAS:
        bias = tl.load(b_ptr + o, mask=om, other=0.0).to(ACC)
    else:
        bias = tl.zeros([BLOCK_O], dtype=ACC)
    tile = y_ptr + n * syn + j[:, None] * syw + o[None, :] * syo
    for r in range(ROWS):
        i = i0 + r
        # rows past OH (the last program's) store nothing: they read row OH - 1's taps meanwhile
        r_row = r_ptr + ((n * CO + o) * OH + tl.minimum(i, OH - 1)) * KW
        zt = tl.zeros([BLOCK_J, BLOCK_O], dtype=ACC) + bias[None, :]
        for kw in tl.static_range(KW):
            iw = j * SW - PW + kw
            col = ((iw >= 0) & (iw < W)).to(ACC)                                   # [BLOCK_J]
            zt += col[:, None] * tl.load(r_row + kw, mask=om, other=0.0)[None, :]
        m = (j < tl.where(i < OH, OW, 0))[:, None] & om[None, :]
        yv = tl.load(tile + i * syh, mask=m, other=0.0).to(ACC)
        tl.store(tile + i * syh, (yv + zt).to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _zterm_grad_kernel(g_ptr, part_ptr, CO, OH, OW, H, W, ROWS,
                       sgn, sgo, sgh, sgw,
                       KH: tl.constexpr, KW: tl.constexpr, KHP: tl.constexpr, KWP: tl.constexpr,
                       SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                       BLOCK_J: tl.constexpr, BLOCK_O: tl.constexpr):
    # part[n, chunk, o, kh * KW + kw] = sum over the chunk's rows of row(i, kh) * col(j, kw) * g,
    # part[n, chunk, o, KH * KW]      = plain sum of g over the chunk (for the bias).
    pid_r = tl.program_id(0)
    n_rch = tl.cdiv(OH, ROWS)
    n = pid_r // n_rch
    i0 = (pid_r % n_rch) * ROWS
    o = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    kh = tl.arange(0, KHP)
    kw = tl.arange(0, KWP)
    om = o < CO
    ACC = part_ptr.dtype.element_ty
    acc = tl.zeros([KHP, KWP, BLOCK_O], dtype=ACC)
    tot = tl.zeros([BLOCK_O], dtype=ACC)
    base = g_ptr + n.to(tl.int64) * sgn + o[None, :] * sgo
    for r in range(ROWS):
        i = i0 + r
        u = tl.zeros([KWP, BLOCK_O], dtype=ACC)
        for j0 in range(0, OW, BLOCK_J):
            j = j0 + tl.arange(0, BLOCK_J)
            m = (j < tl.where(i < OH, OW, 0))[:, None] & om[None, :]
            g = tl.load(base + i * sgh + j[:, None] * sgw, mask=m, other=0.0).to(ACC)
            iw = j[:, None] * SW - PW + kw[None, :]
            col = ((iw >= 0) & (iw < W) & (kw < KW)[None, :]).to(ACC)          # [BLOCK_J, KWP]
            u += tl.sum(col[:, :, None] * g[:, None, :], axis=0)
            tot += tl.sum(g, axis=0)
        ih = i * SH - PH + kh
        row = ((ih >= 0) & (ih < H) & (kh < KH)).to(ACC)
        acc += row[:, None, None] * u[None, :, :]
    out = part_ptr + (pid_r * CO + o) * (KH * KW + 1)
    tl.store(out[None, None, :] + kh[:, None, None] * KW + kw[None, :, None], acc,
             mask=(kh < KH)[:, None, None] & (kw < KW)[None, :, None] & om[None, None, :])
    tl.store(out + KH * KW, tot, mask=om)



@triton.jit
def _zq_kernel(z_ptr, w_ptr, q_ptr, C, NZ, CO, szn, szc, swo, swc, swh, sww, slope,
               KH: tl.constexpr, KW: tl.constexpr, ACT: tl.constexpr, BLOCK: tl.constexpr):
    # q[n, o, kh * KW + kw] = sum_c act(z[n, c]) * w[o, C + c, kh, kw]; the batch on grid axis 0 (axis
    # 1 takes at most 65535 programs on a GPU)
    n = tl.program_id(0)
    idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = idx < CO * KH * KW
    o = idx // (KH * KW)
    t = idx % (KH * KW)
    w_off = o * swo + (t // KW) * swh + (t % KW) * sww
    acc = tl.zeros([BLOCK], dtype=q_ptr.dtype.element_ty)
    for c in range(NZ):
        a = _act(_up(tl.load(z_ptr + n * szn + c * szc)), ACT, slope)
        acc += a * tl.load(w_ptr + w_off + (C + c) * swc, mask=m, other=0.0).to(acc.dtype)
    tl.store(q_ptr + n * (CO * KH * KW) + idx, acc, mask=m)


@triton.jit
def _zfinal_kernel(r_ptr, z_ptr, w_ptr, dw_ptr, db_ptr, dzp_ptr, N, C, NZ, CO,
                   szn, szc, swo, swc, swh, sww, sdo, sdc, sdh, sdw, slope,
                   KH: tl.constexpr, KW: tl.constexpr, KKP: tl.constexpr, ACT: tl.constexpr,
                   NEED_W: tl.constexpr, NEED_B: tl.constexpr, BLOCK_O: tl.constexpr):
    # From r[n, o, t] (t < KH * KW: dQ, t = KH * KW: plain sum of grad_out), for z channel c:
    #   dw[o, C + c, t]  = sum_n act(z[n, c]) * dQ[n, o, t]
    #   dzp[ob, n, c]    = act'(z[n, c]) * sum over this block's o and all t of w[o, C + c, t] * dQ[n, o, t]
    #   db[o]            = sum_n r[n, o, KH * KW]  (by the c == 0 programs)
    ob = tl.program_id(0)
    c = tl.program_id(1)
    o = ob * BLOCK_O + tl.arange(0, BLOCK_O)
    t = tl.arange(0, KKP)
    om = o < CO
    m2 = om[:, None] & (t < KH * KW)[None, :]
    kh = t // KW
    kw = t % KW
    ACC = r_ptr.dtype.element_ty
    w = tl.load(w_ptr + o[:, None] * swo + (C + c) * swc + kh[None, :] * swh + kw[None, :] * sww,
                mask=m2, other=0.0).to(ACC)
    dw = tl.zeros([BLOCK_O, KKP], dtype=ACC)
    db = tl.zeros([BLOCK_O], dtype=ACC)
    r_off = o[:, None] * (KH * KW + 1) + t[None, :]
    for n in range(N):
        rn = tl.load(r_ptr + n * (CO * (KH * KW + 1)) + r_off, mask=m2, other=0.0)
        zv = _up(tl.load(z_ptr + n * szn + c * szc))
        dw += _act(zv, ACT, slope) * rn
        tl.store(dzp_ptr + (ob * N + n) * NZ + c, _act_grad(tl.sum(tl.sum(w * rn, axis=1), axis=0), zv, ACT, slope))
        if NEED_B:
            db += tl.load(r_ptr + n * (CO * (KH * KW + 1)) + o * (KH * KW + 1) + KH * KW, mask=om, other=0.0)
    if NEED_W:
        tl.store(dw_ptr + o[:, None] * sdo + (C + c) * sdc + kh[None, :] * sdh + kw[None, :] * sdw,
                 dw.to(dw_ptr.dtype.element_ty), mask=m2)
    if NEED_B:
        tl.store(db_ptr + o, db.to(db_ptr.dtype.element_ty), mask=o < tl.where(c == 0, CO, 0))


# ---------------------------------------------------------------------------------------------
# 1b. launchers
# ---------------------------------------------------------------------------------------------

def _target_programs(device: torch.device) -> int:
    # 1 in the interpreter (no SMs), which runs programs one after another: the fewer the better
    return 4 * sm_count(device) or 1


def _acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _pow2(n, cap=None):
    p = next_pow2(max(1, n))
    return max(2, p if cap is None else min(p, cap))


def _tile(npos, nch, channels_fastest, budget):
    """Block sizes (positions, channels) for a 2-D tile of about `budget` elements, widest along
    the dimension that is contiguous in memory."""
    if channels_fastest:
        bc = _pow2(nch, min(128, budget // 2))
        return _pow2(npos, budget // bc), bc
    bp = _pow2(npos, min(1024, budget // 2))
    return bp, _pow2(nch, min(128, budget // bp))


def _distinct(knob_sets):
    out = []
    for k in knob_sets:
        if k not in out:
            out.append(k)
    return out


def _zcat_heuristic(npos, nch, channels_last, budget=2048, num_warps=4):
    bp, bc = _tile(npos, nch, channels_last, budget)
    return dict(BLOCK_P=bp, BLOCK_C=bc, num_warps=num_warps)


def _zcat_knobs(site, x, nz, dtype, channels_last, act):
    # act is the ACT constexpr, another binary each: the table's entry for another act is not this launch's.
    N, C, H, W = x.shape
    return _configs.choose(site, (N, C, H, W, nz), dtype, channels_last, x.device,
                           lambda: _zcat_heuristic(H * W, C + nz, channels_last), act)


def zcat_candidates(x, nz, channels_last, quick=False):
    """Knob sets the tuner tries for zcat.fwd / zcat.bwd, the heuristic's first."""
    npos, nch = x.shape[2] * x.shape[3], x.shape[1] + nz
    sets = [_zcat_heuristic(npos, nch, channels_last, b, w) for b, w in ((2048, 4), (2048, 8), (4096, 8), (1024, 4),
                                                                         (1024, 2))]
    return _distinct(sets[:3] if quick else sets)


def _zcat_forward(x, z, act, slope, out_dtype, knobs=None, fmt=None):
    """y = act(cat(x, tile z)) in `fmt` (x's memory format when None); x and y read and written
    through their strides. The launch's layout (the key, the tile) is x's."""
    N, C, H, W = x.shape
    CT = C + z.shape[1]
    cl = memory_format(x) == CL
    y = _empty((N, CT, H, W), dtype=out_dtype, device=x.device, memory_format=fmt or memory_format(x))
    kn = knobs or _zcat_knobs("zcat.fwd", x, z.shape[1], x.dtype, cl, act)
    grid = (N * cdiv(H * W, kn["BLOCK_P"]), cdiv(CT, kn["BLOCK_C"]))  # (see _sample_and_block)
    _zcat_fwd_kernel[grid](x, z, y, C, CT, H * W,
                           x.stride(0), x.stride(1), _pos_stride(x), z.stride(0), z.stride(1),
                           y.stride(0), y.stride(1), _pos_stride(y), slope,
                           ACT=_ACT_IDS[act], BLOCK_P=kn["BLOCK_P"], BLOCK_C=kn["BLOCK_C"], num_warps=kn["num_warps"],
                           enable_fp_fusion=FP_FUSION)
    return y


def _zcat_backward(gy, x, z, act, slope, knobs=None):
    N, C, H, W = x.shape
    nz = z.shape[1]
    if not _flat_hw(gy) or in_sample_span(gy) >= 2 ** 31:  # (the kernel's in-sample offsets are int32)
        gy = gy.contiguous(memory_format=memory_format(x))
    dx = _empty(x.shape, dtype=x.dtype, device=x.device, memory_format=memory_format(x))
    kn = knobs or _zcat_knobs("zcat.bwd", x, nz, gy.dtype, memory_format(gy) == CL, act)
    n_pb = cdiv(H * W, kn["BLOCK_P"])
    grid = (N * n_pb, cdiv(C + nz, kn["BLOCK_C"]))  # (see _sample_and_block)
    part = _empty((N, n_pb, nz), dtype=_acc_dtype(gy.dtype), device=x.device)
    _zcat_bwd_kernel[grid](gy, x, z, dx, part, C, C + nz, nz, H * W,
                           gy.stride(0), gy.stride(1), _pos_stride(gy),
                           x.stride(0), x.stride(1), _pos_stride(x), z.stride(0), z.stride(1), slope,
                           ACT=_ACT_IDS[act], BLOCK_P=kn["BLOCK_P"], BLOCK_C=kn["BLOCK_C"], num_warps=kn["num_warps"],
                           enable_fp_fusion=FP_FUSION)
    return dx, part.sum(1).to(z.dtype)


_FLAT_BLOCK = 1024


def _act_cast(x, act, slope, dtype, fmt):
    """act(x) written in `dtype`, with torch.empty's strides in `fmt` (x dense in fmt: the same order)."""
    if act == "none" and dtype == x.dtype and x.stride() == dense_strides(x.shape, fmt):
        return x
    y = _empty(x.shape, dtype=dtype, device=x.device, memory_format=fmt)
    _act_cast_kernel[(cdiv(x.numel(), _FLAT_BLOCK),)](x, y, x.numel(), slope,
                                                           ACT=_ACT_IDS[act], BLOCK=_FLAT_BLOCK,
                                                           enable_fp_fusion=FP_FUSION)
    return y


def _act_backward(g, x, act, slope):
    """g * act'(x) in x's dtype and memory format (x dense in that format)."""
    fmt = memory_format(x)
    if act == "none":
        # The conv's gradient is in its own layout, the weight's where x's differs: x's, which the layer
        # before wants (a copy there, else), as with an activation. g itself when it already is.
        return g.to(x.dtype, memory_format=fmt)
    g = g.contiguous(memory_format=fmt)
    dx = _empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    _act_grad_kernel[(cdiv(x.numel(), _FLAT_BLOCK),)](g, x, dx, x.numel(), slope,
                                                           ACT=_ACT_IDS[act], BLOCK=_FLAT_BLOCK,
                                                           enable_fp_fusion=FP_FUSION)
    return dx


def _geometry(kernel_size, stride, padding, H, W):
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    return dict(H=H, W=W, KH=KH, KW=KW, KHP=_pow2(KH), KWP=_pow2(KW), SH=SH, SW=SW, PH=PH, PW=PW)


def _zterm_shape(t, geo):
    return tuple(t.shape) + tuple(geo[k] for k in ("KH", "KW", "SH", "SW", "PH", "PW"))


def _zterm_heuristic(site, t, geo, budget_scale=1.0, rows_scale=1.0, num_warps=4):
    """zterm.add: enough output rows per program to make about _target_programs programs;
    zterm.grad: the rows cut into about that many chunks (each writes one partial sum)."""
    N, CO, OH, OW = t.shape
    budget = int(max(64, 4096 // geo["KWP"]) * budget_scale)
    bj, bo = _tile(OW, CO, memory_format(t) == CL, budget)
    jb, ob = cdiv(OW, bj), cdiv(CO, bo)
    if site == "zterm.add":
        rows = N * OH * jb * ob // _target_programs(t.device)
    else:
        rows = cdiv(OH, max(1, min(OH, _target_programs(t.device) // max(1, N * ob))))
    return dict(BLOCK_J=bj, BLOCK_O=bo, ROWS=max(1, min(OH, int(rows * rows_scale))), num_warps=num_warps)


def _zterm_knobs(site, t, geo):
    return _configs.choose(site, _zterm_shape(t, geo), t.dtype, memory_format(t) == CL,
                           t.device, lambda: _zterm_heuristic(site, t, geo))


def zterm_candidates(site, t, geo, quick=False):
    """Knob sets the tuner tries for zterm.add / zterm.grad on conv output (or its gradient) t."""
    sets = [_zterm_heuristic(site, t, geo, *v) for v in (
        (1, 1, 4), (1, 2, 4), (1, 0.5, 4), (2, 1, 8), (1, 1, 8), (0.5, 1, 4), (1, 1, 2))]
    return _distinct(sets[:4] if quick else sets)


def _even_rows(rows, OH):
    """At most `rows` output rows per program, spread evenly: 124 of 128 left a second program 4 rows
    and 120 masked iterations that still compute; 64 and 64 take the same number of programs."""
    rows = max(1, min(rows, OH))
    return cdiv(OH, cdiv(OH, rows))


# Never trimmed: a CUDA graph captured with one of these tensors reads its memory at every replay, so one
# dropped (and its memory reused) would be read as garbage. A few hundred bytes per geometry: inputs of
# ever-changing size (serve --preprocess none) add one per new size.
_ROWS_CACHE = {}


def _zterm_row_taps(OH, geo, device, dtype):
    """[OH, KH]: 1 where output row i's tap kh lands on an input row (i * SH - PH + kh in [0, H)).
    Kept per geometry: the same few tensors every step, made before any CUDA-graph capture."""
    key = (OH, geo["H"], geo["KH"], geo["SH"], geo["PH"], str(device), dtype)
    if key not in _ROWS_CACHE:
        ih = torch.arange(OH, device=device)[:, None] * geo["SH"] - geo["PH"] + torch.arange(geo["KH"], device=device)
        _ROWS_CACHE[key] = ((ih >= 0) & (ih < geo["H"])).to(dtype)
    return _ROWS_CACHE[key]


def _zterm_rows(q, geo, N, CO, OH):
    """R[n, o, i, kw] = sum_kh row(i, kh) * Q[n, o, kh, kw]: the z-term's taps kh summed per output
    row, a small tensor (N x CO x OH x KW, L2-resident) that leaves the add kernel 2-D tiles. A masked sum in
    Q's own layout, not a matmul: an fp32 matmul follows the user's precision setting (allow_tf32,
    set_float32_matmul_precision("high"), common in training scripts) and in TF32 put the z term ~1e-3 off; the
    product with a 0/1 mask is exact and the sum of at most KH terms is fp32's. Its [N*CO, OH, KH, KW] temporary,
    KH times the result, is at most ~8 MB at the reference's sizes (a G call of 16 samples)."""
    rows = _zterm_row_taps(OH, geo, q.device, q.dtype)
    return (rows[None, :, :, None] * q.view(N * CO, 1, geo["KH"], geo["KW"])).sum(2)


def _zterm_add(y, q, bias, geo, knobs=None):
    """y += bias + z_term, in place; q is Q as an N x (CO * KH * KW) matrix in the arithmetic dtype."""
    N, CO, OH, OW = y.shape
    kn = knobs or _zterm_knobs("zterm.add", y, geo)
    rows = _even_rows(kn["ROWS"], OH)
    grid = (N * cdiv(OH, rows), cdiv(OW, kn["BLOCK_J"]), cdiv(CO, kn["BLOCK_O"]))
    r = _zterm_rows(q, geo, N, CO, OH)
    # The kernel reads bias[o] at bias + o: a strided view (a column of a CO x 2 tensor) is copied.
    _zterm_add_kernel[grid](y, r, r if bias is None else bias.contiguous(), CO, OH, OW, geo["W"], rows,
                            y.stride(0), y.stride(1), y.stride(2), y.stride(3),
                            KW=geo["KW"], SW=geo["SW"], PW=geo["PW"],
                            HAS_BIAS=bias is not None, BLOCK_J=kn["BLOCK_J"], BLOCK_O=kn["BLOCK_O"],
                            num_warps=kn["num_warps"], enable_fp_fusion=FP_FUSION)


def _zterm_grad(g, geo, knobs=None):
    """(N, CO, KH * KW + 1), fp32 or fp64: dQ (masked tap sums of g) and, last, the plain sum of g."""
    N, CO, OH, OW = g.shape
    if in_sample_span(g) >= 2 ** 31:  # (the kernel's in-sample offsets are int32)
        g = g.contiguous()
    kk = geo["KH"] * geo["KW"]
    kn = knobs or _zterm_knobs("zterm.grad", g, geo)
    rows = _even_rows(kn["ROWS"], OH)
    chunks = cdiv(OH, rows)
    part = _empty((N * chunks, CO, kk + 1), dtype=_acc_dtype(g.dtype), device=g.device)
    _zterm_grad_kernel[(N * chunks, cdiv(CO, kn["BLOCK_O"]))](
        g, part, CO, OH, OW, geo["H"], geo["W"], rows, g.stride(0), g.stride(1), g.stride(2), g.stride(3),
        **{k: v for k, v in geo.items() if k not in ("H", "W")}, BLOCK_J=kn["BLOCK_J"], BLOCK_O=kn["BLOCK_O"],
        num_warps=kn["num_warps"], enable_fp_fusion=FP_FUSION)
    part = part.view(N, chunks, CO, kk + 1)
    return part[:, 0] if chunks == 1 else part.sum(1)


def _zq(z, weight, C, act, slope, acc_dtype):
    """Q as an N x (CO * KH * KW) matrix: act(z) times the z slice of the weight."""
    N, nz = z.shape
    CO, _, KH, KW = weight.shape
    q = _empty((N, CO * KH * KW), dtype=acc_dtype, device=z.device)
    block = _pow2(CO * KH * KW, 1024)
    _zq_kernel[(N, cdiv(CO * KH * KW, block))](z, weight, q, C, nz, CO, *z.stride(), *weight.stride(),
                                                       slope, KH=KH, KW=KW, ACT=_ACT_IDS[act], BLOCK=block,
                                                       enable_fp_fusion=FP_FUSION)
    return q


def _zfinal(r, z, weight, gwx, act, slope, need_w, b_dtype):
    """(dz, dweight with gwx as its x part, dbias) from _zterm_grad's r; None where not needed."""
    N, nz = z.shape
    CO, C, KH, KW = weight.shape[0], weight.shape[1] - nz, weight.shape[2], weight.shape[3]
    kkp = _pow2(KH * KW)
    bo = _pow2(CO, max(2, 1024 // kkp))
    ob = cdiv(CO, bo)
    dw = _empty(weight.shape, dtype=weight.dtype, device=z.device,
                memory_format=memory_format(weight)) if need_w else None  # the param's layout
    db = _empty((CO,), dtype=b_dtype, device=z.device) if b_dtype is not None else None
    dzp = _empty((ob, N, nz), dtype=r.dtype, device=z.device)
    _zfinal_kernel[(ob, nz)](r, z, weight, r if dw is None else dw, r if db is None else db, dzp,
                             N, C, nz, CO, *z.stride(), *weight.stride(), *(weight if dw is None else dw).stride(),
                             slope, KH=KH, KW=KW, KKP=kkp, ACT=_ACT_IDS[act],
                             NEED_W=need_w, NEED_B=db is not None, BLOCK_O=bo, enable_fp_fusion=FP_FUSION)
    if need_w:
        dw[:, :C].copy_(gwx)
    return (dzp[0] if ob == 1 else dzp.sum(0)).to(z.dtype), dw, db


# ---------------------------------------------------------------------------------------------
# 2. the ops, each with an eager and a compile face (see _twoface.py)
# ---------------------------------------------------------------------------------------------

def _dense(x):
    return x.contiguous(memory_format=memory_format(x))


def _fmt(channels_last):
    return CL if channels_last else NCHW


def _zcat_fwd_impl(x: torch.Tensor, z: torch.Tensor, act: str, slope: float, out_dtype: torch.dtype,
                   channels_last: bool) -> torch.Tensor:
    fits_int32("z_concat_act", (x.shape[1] + z.shape[1]) * x.shape[2] * x.shape[3], x)
    return _zcat_forward(_dense(x), z, act, slope, out_dtype, fmt=_fmt(channels_last))


def _zcat_save(inputs, outputs):
    x, z, act, slope = inputs[:4]
    return (x, z), (act, slope)


def _zcat_bwd_impl(gy: torch.Tensor, x: torch.Tensor, z: torch.Tensor, act: str, slope: float, need_x: bool,
                   need_z: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _zcat_backward(gy, _dense(x), z, act, slope)


def _zcat_fwd_fake(x, z, act, slope, out_dtype, channels_last):
    N, C, H, W = x.shape
    return torch.empty((N, C + z.shape[1], H, W), dtype=out_dtype, device=x.device, memory_format=_fmt(channels_last))


def _zcat_bwd_fake(gy, x, z, act, slope, need_x, need_z):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=memory_format(x)), torch.empty_like(z)


def _zcat_recompute(tensors, args, inputs):
    """(x, z) and the reference's output from them, for a create_graph backward (see _twoface)."""
    x, z = tensors
    return (x, z), z_concat_act_ref(x, z, *args).to(inputs[4])


def _fold_batch(info, in_dims, inputs, n_batched):
    """For torch.func.vmap: the first n_batched inputs (x, z, ...: one sample each along dim 0) with
    the vmapped dimension B folded into the batch (B * N samples; repeated where not vmapped)."""
    def fold(t, d):
        t = t.movedim(d, 0) if d is not None else t.expand(info.batch_size, *t.shape)
        return t.flatten(0, 1)
    return [fold(t, d) for t, d in zip(inputs[:n_batched], in_dims)] + list(inputs[n_batched:])


def _zcat_vmap(info, in_dims, inputs, apply):
    """torch.func.vmap: the samples of every vmapped slice as one batch, one launch."""
    (y,) = apply(*_fold_batch(info, in_dims, inputs, 2))
    return (y.unflatten(0, (info.batch_size, -1)),), (0,)


ZCAT = TwoFacedOp("bicyclegan::z_concat_act", _zcat_fwd_impl, _zcat_bwd_impl, _zcat_save, _zcat_fwd_fake,
                  _zcat_bwd_fake, differentiable=("x", "z"), recompute=_zcat_recompute, vmap=_zcat_vmap,
                  check=lambda x, z, *_: _check_shapes("z_concat_act", x, z))


def _x_weight(weight, C, dtype):
    # The x slice of the weight, dense and in the weight's format: the conv then chooses its
    # output's format from it as from the reference's whole weight (zinject.concat_format).
    return weight[:, :C].to(dtype).contiguous(memory_format=memory_format(weight))


def _zconv_fwd_impl(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                    stride: List[int], padding: List[int], act: str, slope: float,
                    dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(conv output, and what backward needs: act(x) and the x slice of the weight as the conv saw them)."""
    H, W = x.shape[2:]
    out_hw = [(n + 2 * p - k) // s + 1 for n, p, k, s in zip((H, W), padding, weight.shape[2:], stride)]
    fits_int32("z_concat_conv", max((x.shape[1] + z.shape[1]) * H * W, weight.shape[0] * out_hw[0] * out_hw[1]), x)
    with torch.autocast(x.device.type, enabled=False):
        C = x.shape[1]
        fmt = concat_format(x, weight)
        ax = _act_cast(x.contiguous(memory_format=fmt), act, slope, dtype, fmt)
        wx = _x_weight(weight, C, dtype)
        y = F.conv2d(ax, wx, None, stride, padding)
        geo = _geometry(weight.shape[2:], stride, padding, x.shape[2], x.shape[3])
        _zterm_add(y, _zq(z, weight, C, act, slope, _acc_dtype(dtype)), bias, geo)
    return y, ax, wx


def _zconv_save(inputs, outputs):
    x, z, weight, bias, stride, padding, act, slope, _ = inputs
    return (x, outputs[1], outputs[2], z, weight, bias), (stride, padding, act, slope)


def _zconv_bwd_impl(gy: torch.Tensor, x: torch.Tensor, ax: torch.Tensor, wx: torch.Tensor, z: torch.Tensor,
                    weight: torch.Tensor, bias: Optional[torch.Tensor], stride: List[int], padding: List[int],
                    act: str, slope: float, need_x: bool, need_z: bool, need_weight: bool,
                    need_bias: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dz, dweight, dbias); one not asked for comes back empty."""
    need_bias = need_bias and bias is not None
    dx = dz = dw = db = gwx = None
    with torch.autocast(gy.device.type, enabled=False):
        x = _dense(x)
        gy = gy.to(ax.dtype)
        if need_x or need_weight:
            gax, gwx, _ = torch.ops.aten.convolution_backward(
                gy, ax, wx, None, stride, padding, (1, 1), False, (0, 0), 1, (need_x, need_weight, False))
            if need_x:
                dx = _act_backward(gax, x, act, slope)
        if need_z or need_weight or need_bias:
            geo = _geometry(weight.shape[2:], stride, padding, x.shape[2], x.shape[3])
            dz, dw, db = _zfinal(_zterm_grad(gy, geo), z, weight, gwx, act, slope, need_weight,
                                 bias.dtype if need_bias else None)
    return tuple(x.new_empty(0) if g is None else g for g in (dx, dz if need_z else None, dw, db))


def _zconv_fwd_fake(x, z, weight, bias, stride, padding, act, slope, dtype):
    ax = torch.empty(x.shape, dtype=dtype, device=x.device, memory_format=concat_format(x, weight))
    wx = _x_weight(weight, x.shape[1], dtype)
    return F.conv2d(ax, wx, None, stride, padding), ax, torch.empty_like(wx)


def _zconv_bwd_fake(gy, x, ax, wx, z, weight, bias, stride, padding, act, slope, need_x, need_z, need_weight,
                    need_bias):
    return (torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=memory_format(x)) if need_x
            else x.new_empty(0),
            torch.empty_like(z) if need_z else x.new_empty(0),
            torch.empty(weight.shape, dtype=weight.dtype, device=x.device,
                        memory_format=memory_format(weight)) if need_weight else x.new_empty(0),
            bias.new_empty(bias.shape) if need_bias and bias is not None else x.new_empty(0))


def _zconv_recompute(tensors, args, inputs):
    """(x, z, weight, bias) and the reference's output from them in the dtype the forward ran the
    conv in (x's, or autocast's), for a create_graph backward (see _twoface)."""
    x, _ax, _wx, z, weight, bias = tensors
    stride, padding, act, slope = args
    dtype = inputs[8]
    with torch.autocast(x.device.type, enabled=False):
        y = F.conv2d(z_concat_act_ref(x, z, act, slope).to(dtype), weight.to(dtype),
                     None if bias is None else bias.to(dtype), stride, padding)
    return (x, z, weight, bias), y


def _zconv_vmap(info, in_dims, inputs, apply):
    """torch.func.vmap with one weight for every slice: the slices' samples as one batch, one launch.
    A vmapped weight or bias (an ensemble of layers) returns None: the op runs slice by slice."""
    if in_dims[2] is not None or in_dims[3] is not None:
        return None
    y, ax, wx = apply(*_fold_batch(info, in_dims, inputs, 2))
    return (y.unflatten(0, (info.batch_size, -1)), ax.unflatten(0, (info.batch_size, -1)), wx), (0, 0, None)


def _zconv_check(x, z, weight, bias, *_):
    _check_shapes("z_concat_conv", x, z)
    _check_weight(x, z, weight, bias, 1)


ZCONV = TwoFacedOp("bicyclegan::z_concat_conv", _zconv_fwd_impl, _zconv_bwd_impl, _zconv_save, _zconv_fwd_fake,
                   _zconv_bwd_fake, differentiable=("x", "z", "weight", "bias"), recompute=_zconv_recompute,
                   vmap=_zconv_vmap, check=_zconv_check)


# ---------------------------------------------------------------------------------------------
# 3. functional faces (argument checks live in zinject.py, which calls these)
# ---------------------------------------------------------------------------------------------

def _compute_dtype(x):
    dev = x.device.type
    if torch.is_autocast_enabled(dev) and x.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.get_autocast_dtype(dev)
    return None


def z_concat_act_triton(x, z, act="leaky_relu", slope=0.2, out_dtype=None, fmt=NCHW):
    """act(cat(x, tile z)) in one Triton pass, in `fmt` (NCHW: torch.cat's, see zinject.concat_format);
    out_dtype defaults to the promotion of x's and z's dtypes (what torch.cat gives)."""
    if out_dtype is None:
        out_dtype = torch.promote_types(x.dtype, z.dtype)
    return ZCAT(x, z, act, float(slope), out_dtype, fmt == CL)


def _conv_args(weight, stride, padding):
    def pair(v, name, least):
        v = (v, v) if isinstance(v, int) else tuple(v)
        if len(v) != 2 or not all(isinstance(e, int) and e >= least for e in v):
            raise ValueError(f"z_concat_conv: {name} must be an int >= {least} or a pair of them, got {v!r}")
        return v
    if weight.dim() != 4:
        raise ValueError(f"z_concat_conv: weight must be out x (in + nz) x kh x kw, got {tuple(weight.shape)}")
    return pair(stride, "stride", 1), pair(padding, "padding", 0)


def z_concat_conv_triton(x, z, weight, bias, stride=2, padding=1, act="leaky_relu", slope=0.2):
    """conv2d(act(cat(x, tile z)), weight, bias, stride, padding) without the concatenation.

    Any kernel size, stride and zero padding (dilation 1, groups 1). Under autocast the conv runs
    in the autocast dtype (as F.conv2d would) and the z term and bias are added in fp32.
    """
    stride, padding = _conv_args(weight, stride, padding)
    dtype = _compute_dtype(x)
    if dtype is None:
        if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
            raise TypeError(f"z_concat_conv: x {tuple(shape_of(x))} is {x.dtype} but weight {tuple(shape_of(weight))} "
                            f"is {weight.dtype}{'' if bias is None else f' and bias {bias.dtype}'}")
        dtype = x.dtype
    return ZCONV(x, z, weight, bias, list(stride), list(padding), act, float(slope), dtype)
