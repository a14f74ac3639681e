"""z injection: act(cat(x, tile(z))) feeding a conv, as in BicycleGAN's U-Net encoder blocks.

`z_concat_act` is the activation + tile + concatenate step; `ZConcatConv2d` is the whole
"concatenate z, activate, convolve" layer with one conv weight over the x and z channels (the
reference's layout, so state_dicts match nn.Conv2d(in_channels + nz, ...)).
The pure-PyTorch references live here; the Triton paths are added beside them.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._impl import resolve_impl
from .norm_act import apply_act

ACTS = ("none", "relu", "leaky_relu")


def _check(x, z):
    if x.dim() != 4:
        raise ValueError(f"z injection: x must be N x C x H x W, got shape {tuple(x.shape)}")
    if z.dim() != 2 or z.shape[0] != x.shape[0]:
        raise ValueError(f"z injection: z must be N x nz with the batch of x; got x {tuple(x.shape)} "
                         f"and z {tuple(z.shape)}")
    if z.dtype != x.dtype:
        raise TypeError(f"z injection: z dtype {z.dtype} differs from x dtype {x.dtype} "
                        f"(x {tuple(x.shape)}, z {tuple(z.shape)})")


def tile_z(z, like):
    """z (N, nz) as an N x nz x H x W view that matches `like` in H and W (no copy)."""
    return z[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


def z_concat_act_ref(x, z, act="leaky_relu", slope=0.2):
    return apply_act(torch.cat([x, tile_z(z, x)], 1), act, slope, inplace=True)


def z_concat_act(x, z, act="leaky_relu", slope=0.2, impl="auto"):
    """act(cat(x, z tiled over x's H x W)) along channels."""
    _check(x, z)
    if resolve_impl(impl, x, "z_concat_act") == "triton":
        from .zinject_triton import z_concat_act_triton
        return z_concat_act_triton(x, z, act, slope)
    return z_concat_act_ref(x, z, act, slope)


class ZConcatConv2d(nn.Module):
    """conv(act(cat(x, tile(z)))) with weight laid out as nn.Conv2d(in_channels + nz, out_channels).

    act is applied to the concatenation (the reference's LeakyReLU-before-conv); "none" for the
    U-Net's outermost block. nz=0 makes it a plain act + conv.
    """

    def __init__(self, in_channels, nz, out_channels, kernel_size=4, stride=2, padding=1,
                 act="leaky_relu", slope=0.2, bias=True, impl="auto"):
        super().__init__()
        if act not in ACTS:
            raise ValueError(f"ZConcatConv2d: act must be one of {ACTS}, got {act!r}")
        self.in_channels, self.nz, self.out_channels = in_channels, nz, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.act, self.slope, self.impl = act, slope, impl
        conv = nn.Conv2d(in_channels + nz, out_channels, kernel_size, stride, padding, bias=bias)
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x, z=None):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ZConcatConv2d: expected x with {self.in_channels} channels, got {tuple(x.shape)}")
        if self.nz == 0:
            return F.conv2d(apply_act(x, self.act, self.slope), self.weight, self.bias,
                            self.stride, self.padding)
        if z is None or z.dim() != 2 or z.shape[1] != self.nz:
            raise ValueError(f"ZConcatConv2d: expected z of shape (N, {self.nz}), got "
                             f"{None if z is None else tuple(z.shape)} (x {tuple(x.shape)})")
        _check(x, z)
        if resolve_impl(self.impl, x, "ZConcatConv2d") == "triton":
            from .zinject_triton import z_concat_conv_triton
            return z_concat_conv_triton(x, z, self.weight, self.bias, self.stride, self.padding,
                                        self.act, self.slope)
        return F.conv2d(z_concat_act_ref(x, z, self.act, self.slope), self.weight, self.bias,
                        self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}+z{self.nz} -> {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, act={self.act}, impl={self.impl}")
