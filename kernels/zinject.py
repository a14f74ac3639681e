"""z injection: act(cat(x, tile(z))) feeding a conv, as in BicycleGAN's U-Net encoder blocks.

`z_concat_act` is the activation + tile + concatenate step; `ZConcatConv2d` is the whole
"concatenate z, activate, convolve" layer with one conv weight over the x and z channels (the
reference's layout, so state_dicts match nn.Conv2d(in_channels + nz, ...)).
The pure-PyTorch references live here; the Triton paths are in zinject_triton.py.
"""
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._impl import CL, IMPLS, NCHW, NotScriptable, in_format, int_pair, memory_format, resolve_impl, shape_of
from .acts import ACTS, apply_act, check_act  # noqa: F401 (ACTS: the choices, named beside each op)

MODES = ("concat_free", "fused_concat")


def as_codes(z):
    """z as N x nz: an N x nz x 1 x 1 code (a conv head's, or one kept for tiling with expand) flattened (a view),
    anything else as it is."""
    if isinstance(z, torch.Tensor) and z.dim() == 4 and shape_of(z)[2:] == (1, 1):
        return z.flatten(1)
    return z


def _check(who, x, z):
    """z as N x nz (as_codes), after the checks of x and z, which name the shapes as given and `who`, the
    function called."""
    given, z = z, as_codes(z)
    _check_shapes(who, x, z, given)
    if z.device != x.device:
        raise ValueError(f"{who}: z is on {z.device} but x on {x.device} "
                         f"(x {tuple(shape_of(x))}, z {tuple(shape_of(given))})")
    # Under autocast mixed float dtypes are normal (x from a bf16 layer, z fp32), as for torch.cat.
    same = z.dtype == x.dtype or (z.is_floating_point() and x.is_floating_point()
                                  and torch.is_autocast_enabled(x.device.type))
    if not same:
        raise TypeError(f"{who}: z dtype {z.dtype} differs from x dtype {x.dtype} "
                        f"(x {tuple(shape_of(x))}, z {tuple(shape_of(given))})")
    if not x.is_floating_point():
        raise TypeError(f"{who}: x and z must be floating point, got {x.dtype} "
                        f"(x {tuple(shape_of(x))}, z {tuple(shape_of(given))})")
    return z


def _check_shapes(who, x, z, given=None):
    """_check's of x's and z's shapes (z as N x nz, `given` as the caller gave it), which the ops repeat (see
    TwoFacedOp's check; not the dtypes: the ops run where autocast is off, on what it cast)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{who}: x must be a 4-D N x C x H x W tensor, got "
                         f"{tuple(shape_of(x)) if isinstance(x, torch.Tensor) else type(x).__name__}")
    xs = shape_of(x)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or shape_of(z)[0] != xs[0]:
        given = z if given is None else given
        got = tuple(shape_of(given)) if isinstance(given, torch.Tensor) else type(given).__name__
        raise ValueError(f"{who}: z must be N x nz (or N x nz x 1 x 1) with the batch of x; got x "
                         f"{tuple(xs)} and z {got}")


def tile_z(z, like):
    """z (N, nz, or N x nz x 1 x 1) as an N x nz x H x W view that matches `like` in H and W (no copy).
    like's batch and channels are not read (tune.py tiles over an empty 0 x 0 x H x W)."""
    # Public: a 1-D z or a 3-D like failed in indexing (IndexError) without a word of which argument.
    codes = as_codes(z)
    if not isinstance(codes, torch.Tensor) or codes.dim() != 2:
        got = tuple(shape_of(z)) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"tile_z: z must be N x nz (or N x nz x 1 x 1), got {got}")
    if not isinstance(like, torch.Tensor) or like.dim() != 4:
        got = tuple(shape_of(like)) if isinstance(like, torch.Tensor) else type(like).__name__
        raise ValueError(f"tile_z: like must be a 4-D N x C x H x W tensor (z is tiled over its H x W), got {got}")
    return codes[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


def concat_format(x, weight):
    """The memory format in which the Triton paths hand act(x) (or the concatenation) to the conv, so
    that its output takes the format torch's gives the reference: torch.cat(x, tile z) is NCHW
    whatever x's layout (cat takes the format every input suggests, and the tiled z, of stride 0
    across the plane, suggests NCHW), and conv2d returns channels_last when its input or its weight
    suggests it, so conv(cat, weight) is channels_last exactly when the weight is. Channels_last where
    x and the weight both are (the channels_last networks: no conversion), else NCHW (x channels_last
    beside an NCHW weight is copied into NCHW, as the reference's cat copies it)."""
    return CL if memory_format(x) == CL and memory_format(weight) == CL else NCHW


def z_concat_act_ref(x, z, act="leaky_relu", slope=0.2):
    return apply_act(torch.cat([x, tile_z(z, x)], 1), act, slope, inplace=True)


def z_concat_act(x, z, act="leaky_relu", slope=0.2, impl="auto"):
    """act(cat(x, z tiled over x's H x W)) along channels (Triton: one pass). NCHW whatever x's layout,
    as torch.cat gives it (see concat_format). z: N x nz, or N x nz x 1 x 1."""
    z = _check("z_concat_act", x, z)
    check_act("z_concat_act", act, slope)
    if resolve_impl(impl, x, "z_concat_act") == "triton":
        from .zinject_triton import z_concat_act_triton
        return z_concat_act_triton(x, z, act, slope)
    return z_concat_act_ref(x, z, act, slope)


def conv_padding(padding, kernel_size, stride, who="z_concat_conv", dilation=1):
    """nn.Conv2d's padding strings as the (symmetric) padding the kernels take: "valid" is 0; "same"
    is dilation * (k - 1) / 2 per side at stride 1, so that product must be even (odd kernel sides at
    dilation 1; nn.Conv2d pads an odd one unevenly, which these kernels do not do). Anything else is
    returned as it is."""
    if not isinstance(padding, str):
        return padding
    ks, st = int_pair(who, "kernel_size", kernel_size, 1), int_pair(who, "stride", stride, 1)
    dil = int_pair(who, "dilation", dilation, 1)
    spans = [d * (k - 1) for d, k in zip(dil, ks)]  # (the taps' reach)
    if padding == "valid":
        return 0
    if padding == "same" and all(s == 1 for s in st) and all(n % 2 == 0 for n in spans):
        return tuple(n // 2 for n in spans)
    if padding == "same":
        raise ValueError(f"{who}: padding 'same' needs stride 1 and odd kernel sides (got kernel_size "
                         f"{kernel_size}, stride {stride}{'' if dil == (1, 1) else f', dilation {dilation}'}: "
                         f"dilation x (side - 1) must be even); give the padding as an int or a pair instead")
    raise ValueError(f"{who}: padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")


def _groups(who, groups):
    """nn.Conv2d's groups as an int >= 1 (numpy's and a 0-d integer tensor too), refused by name otherwise."""
    try:
        if isinstance(groups, bool):
            raise TypeError
        n = operator.index(groups)
    except TypeError:
        n = 0
    if n < 1:
        raise ValueError(f"{who}: groups must be an int >= 1, got {groups!r}")
    return n


def z_concat_conv_ref(x, z, weight, bias=None, stride=2, padding=1, act="leaky_relu", slope=0.2, dilation=1,
                      groups=1):
    """conv2d(act(cat(x, tile z))): the reference, which materialises the concatenation."""
    return F.conv2d(z_concat_act_ref(x, z, act, slope), weight, bias, stride, padding, dilation, groups)


def _tiled_conv(az, wz, stride, padding, H, W):
    """conv2d(az tiled over H x W, wz, stride, padding) without the tiling: tap (k, l) of output (y, x)
    adds wz[:, :, k, l] . az where it reads inside the input (row y * stride + k - padding), so the
    output sums the taps of its inside rows and columns: about 1 / (nz x kernel height) of the products."""
    def inside(n, k, s, p):  # (output positions, taps): 1 where the tap reads inside 0..n-1
        out = torch.arange((n + 2 * p - k) // s + 1, device=az.device)
        rows = out[:, None] * s + torch.arange(k, device=az.device) - p
        return ((rows >= 0) & (rows < n)).to(az.dtype)
    (sh, sw), (ph, pw) = stride, padding  # (pairs: z_concat_conv's int_pair)
    q = torch.einsum("nc,ockl->nokl", az, wz)
    return torch.einsum("nokl,yk,xl->noyx", q, inside(H, wz.shape[2], sh, ph), inside(W, wz.shape[3], sw, pw))


def _z_concat_conv_split(x, z, weight, bias, stride, padding, act, slope):
    """z_concat_conv_ref's function as the conv of act(x) plus z's term, for an x that needs no gradient
    while z does (a network's input image beside a code to learn): the conv of the concatenation would
    compute the input gradient of all of it (a conv's is all or nothing), x's channels included, only
    to keep z's. Equal to the reference to rounding, in values and gradients of every order."""
    wx, wz = _split_channels(weight, x.shape[1])
    x = in_format(x, concat_format(x, weight))  # (so that the conv's output has the reference's layout)
    y = F.conv2d(apply_act(x, act, slope), wx, bias, stride, padding)
    # Out of place: under torch.func.vmap over z alone, y is one sample and z's term a batch of them.
    return y + _tiled_conv(apply_act(z, act, slope), wz, stride, padding, *x.shape[2:])


def _split_channels(weight, C):
    """(weight[:, :C], weight[:, C:]) as views whose gradients autograd joins in the weight's own layout,
    so that the parameter's gradient needs no copy into it: split along the channels in the weight's
    memory order (a channels_last weight's channels innermost), whose backward is one torch.cat, row-major
    in that order (cat's result is row-major where an input is: the conv's part is). Two slices' backward wrote
    each part into zeros of NCHW and added them: NCHW for a channels_last weight, which autograd's
    AccumulateGrad then copied into the weight's layout."""
    sizes = [C, weight.shape[1] - C]
    if memory_format(weight) == NCHW:
        return weight.split(sizes, 1)
    return [part.permute(0, 3, 1, 2) for part in weight.permute(0, 2, 3, 1).split(sizes, 3)]


def _check_weight(x, z, weight, bias, groups):
    """The checks of z_concat_conv's weight and bias against x and z (N x nz), which the op repeats (see
    TwoFacedOp's check): a traced graph's weight is fixed, and x's or z's channels could miss it."""
    ws = shape_of(weight) if isinstance(weight, torch.Tensor) else getattr(weight, "shape", ())
    xs, zs = shape_of(x), shape_of(z)
    if not isinstance(weight, torch.Tensor) or len(ws) != 4 or ws[1] * groups != xs[1] + zs[1] or ws[0] % groups:
        per = "" if groups == 1 else f" / groups ({groups}), out divisible by groups,"
        raise ValueError(f"z_concat_conv: weight {tuple(ws)} must be out x (in + nz){per} "
                         f"x kh x kw for x {tuple(xs)} and z {tuple(zs)}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or shape_of(bias) != ws[:1]):
        got = tuple(shape_of(bias)) if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ValueError(f"z_concat_conv: bias must have shape ({ws[0]},), the weight's output "
                         f"channels; got {got}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and not t.is_floating_point():
            raise TypeError(f"z_concat_conv: {name} must be floating point, got {t.dtype}")
        if t is not None and t.device != x.device:
            raise ValueError(f"z_concat_conv: {name} is on {t.device} but x is on {x.device}")


def z_concat_conv(x, z, weight, bias=None, stride=2, padding=1, act="leaky_relu", slope=0.2,
                  impl="auto", mode="concat_free", *, dilation=1, groups=1):
    """conv2d(act(cat(x, tile z)), weight, bias, stride, padding, dilation, groups), weight over the x
    channels then the z channels (out x (in + nz) / groups x kh x kw, as F.conv2d's).

    With Triton, mode "concat_free" never builds the concatenation (conv over x's channels plus a
    z term computed from the weight's z slice); "fused_concat" builds it in one fused pass. The
    z term's kernels take adjacent taps and one group: with dilation or groups other than 1 the
    concatenation is built (the fused pass) whatever the mode, and torch's conv takes both.
    padding: an int, a pair, or nn.Conv2d's "valid" / "same" (stride 1, odd kernel sides at dilation 1). The
    concatenation-free path keeps x itself for backward (the reference keeps the concatenation), so
    modifying x in place before backward raises autograd's in-place error. z: N x nz, or N x nz x 1 x 1.
    """
    return _z_concat_conv("z_concat_conv", x, z, weight, bias, stride, padding, act, slope, impl, mode, dilation,
                          groups)


def _z_concat_conv(who, x, z, weight, bias, stride, padding, act, slope, impl, mode, dilation, groups):
    """z_concat_conv, its refusals naming `who`, the function or layer called (ZConcatConv2d's named
    z_concat_conv, which the user never called; checked in the layer too, they ran twice a call)."""
    z = _check(who, x, z)
    check_act(who, act, slope)
    if mode not in MODES:
        raise ValueError(f"{who}: mode must be one of {MODES}, got {mode!r}")
    groups = _groups(who, groups)
    _check_weight(x, z, weight, bias, groups)
    # Both paths take the pairs: the kernels and the reference's z-term split read their two entries.
    stride = int_pair(who, "stride", stride, 1)
    dilation = int_pair(who, "dilation", dilation, 1)
    padding = int_pair(who, "padding", conv_padding(padding, tuple(shape_of(weight)[2:]), stride, who, dilation), 0)
    use = resolve_impl(impl, x, "z_concat_conv")
    if dilation != (1, 1) or groups != 1:
        # The z term's kernels (and the reference's split below) take adjacent taps and one group: the
        # concatenation instead, written by the fused kernel where Triton runs, and torch's conv of it.
        if use == "ref" or shape_of(z)[1] == 0:
            return z_concat_conv_ref(x, z, weight, bias, stride, padding, act, slope, dilation, groups)
        from .zinject_triton import _compute_dtype, z_concat_act_triton
        y = z_concat_act_triton(x, z, act, slope, _compute_dtype(x), concat_format(x, weight))
        return F.conv2d(y, weight, bias, stride, padding, dilation, groups)
    if use == "ref":
        if z.requires_grad and not x.requires_grad and torch.is_grad_enabled():
            return _z_concat_conv_split(x, z, weight, bias, stride, padding, act, slope)
        return z_concat_conv_ref(x, z, weight, bias, stride, padding, act, slope)
    if shape_of(z)[1] == 0:
        # No z channel, nothing to inject (the z side's last kernel, which also gives dbias, runs
        # once per z channel): act + conv, as ZConcatConv2d(nz=0) does.
        x = in_format(x, concat_format(x, weight))  # (so that the conv's output has the reference's layout)
        return F.conv2d(apply_act(x, act, slope), weight, bias, stride, padding)
    from .zinject_triton import _compute_dtype, z_concat_act_triton, z_concat_conv_triton
    # No x channel (the tiled code alone): the concatenation-free path would convolve x's 0
    # channels, for which F.conv2d returns N x 0 x OH x OW (torch 2.13), not zeros of the conv's
    # shape, and z's term could not be added to it. The concatenation is z's tiling alone here.
    if mode == "fused_concat" or shape_of(x)[1] == 0:
        # Written straight in the conv's autocast dtype, as the conv would cast it anyway.
        y = z_concat_act_triton(x, z, act, slope, _compute_dtype(x), concat_format(x, weight))
        return F.conv2d(y, weight, bias, stride, padding)
    return z_concat_conv_triton(x, z, weight, bias, stride, padding, act, slope)


class ZConcatConv2d(NotScriptable, nn.Module):
    """conv(act(cat(x, tile(z)))) with weight laid out as nn.Conv2d(in_channels + nz, out_channels).

    act is applied to the concatenation (the reference's LeakyReLU-before-conv); "none" for the
    U-Net's outermost block. nz=0 makes it a plain act + conv that takes and ignores any z (with
    where_add=input, the U-Net hands its code to every level). `mode` picks the Triton path
    (see z_concat_conv); it is a plain attribute, so a built network can be switched in place.
    dilation and groups (keywords) are nn.Conv2d's, over the concatenation's in_channels + nz channels (z's
    the last nz: in the last group or groups, which may hold x's too); other than 1 they build the
    concatenation whatever the mode (see z_concat_conv).
    """
    dilation, groups = 1, 1  # (a layer pickled whole before they were taken has neither: it computes as it did)

    def __init__(self, in_channels, nz, out_channels, kernel_size=4, stride=2, padding=1,
                 act="leaky_relu", slope=0.2, bias=True, impl="auto", mode="concat_free", device=None, dtype=None,
                 *, dilation=1, groups=1):
        super().__init__()
        check_act("ZConcatConv2d", act, slope)
        if mode not in MODES:
            raise ValueError(f"ZConcatConv2d: mode must be one of {MODES}, got {mode!r}")
        if impl not in IMPLS:
            raise ValueError(f"ZConcatConv2d: impl must be one of {IMPLS}, got {impl!r}")
        dil = int_pair("ZConcatConv2d", "dilation", dilation, 1)
        if (in_channels + nz) % _groups("ZConcatConv2d", groups) or out_channels % groups:
            raise ValueError(f"ZConcatConv2d: groups ({groups}) must divide in_channels + nz ({in_channels} + {nz}) "
                             f"and out_channels ({out_channels})")
        padding = conv_padding(padding, kernel_size, stride, "ZConcatConv2d", dilation)
        self.in_channels, self.nz, self.out_channels = in_channels, nz, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        # Plain ints (numpy's np.int64(2) failed the repr's test against (1, 1): an array's truth value)
        self.dilation, self.groups = dil if isinstance(dilation, (tuple, list)) else dil[0], operator.index(groups)
        self.act, self.slope, self.impl, self.mode = act, slope, impl, mode
        # device/dtype as nn.Conv2d (and InstanceNormAct2d) take them: built in place, e.g. on "meta".
        conv = nn.Conv2d(in_channels + nz, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias,
                         device=device, dtype=dtype)
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x, z=None):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or shape_of(x)[1] != self.in_channels:
            got = tuple(shape_of(x)) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"ZConcatConv2d: expected x, a tensor of N x {self.in_channels} x H x W, got {got}")
        if self.nz == 0:  # z, if given, is not used: a U-Net passes its code through every level
            return F.conv2d(apply_act(x, self.act, self.slope), self.weight, self.bias,
                            self.stride, self.padding, self.dilation, self.groups)
        codes = as_codes(z)
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or shape_of(codes)[1] != self.nz:
            got = tuple(shape_of(z)) if isinstance(z, torch.Tensor) else None if z is None else type(z).__name__
            raise ValueError(f"ZConcatConv2d: expected z of shape (N, {self.nz}) or (N, {self.nz}, 1, 1), got "
                             f"{got} (x {tuple(shape_of(x))})")
        return _z_concat_conv("ZConcatConv2d", x, z, self.weight, self.bias, self.stride, self.padding, self.act,
                              self.slope, self.impl, self.mode, self.dilation, self.groups)

    def extra_repr(self):
        rare = "".join(f", {k}={v}" for k, v in (("dilation", self.dilation), ("groups", self.groups))
                       if v not in (1, (1, 1)))  # (as nn.Conv2d's repr: shown where not the default)
        rare += ", bias=False" if self.bias is None else ""
        # The slope as InstanceNormAct2d shows it: two LeakyReLU layers of different slopes printed alike.
        act = f"{self.act}, slope={self.slope}" if self.act == "leaky_relu" else self.act
        return (f"{self.in_channels}+z{self.nz} -> {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}{rare}, act={act}, impl={self.impl}, "
                f"mode={self.mode}")
