"""bicyclegan.kernels: Triton ops for GAN layers, with pure-PyTorch references and drop-in modules.

Usable alone by other GAN code: imports nothing from bicyclegan.engine or bicyclegan.pipelines.
ACTS (activation names) and IMPLS (impl switch values) are stated here once for every user.
"""
from ._impl import IMPLS, resolve_impl, triton_available
from .acts import ACTS, apply_act
from .avg_pool import AvgPool2d, avg_pool2d
from .fuse import fuse_norm_act
from .norm_act import InstanceNormAct2d, instance_norm_act, instance_norm_act_ref
from .zinject import ZConcatConv2d, tile_z, z_concat_act, z_concat_act_ref, z_concat_conv, z_concat_conv_ref

__all__ = [
    "ACTS", "IMPLS", "apply_act", "AvgPool2d", "avg_pool2d",
    "InstanceNormAct2d", "fuse_norm_act", "instance_norm_act", "instance_norm_act_ref",
    "ZConcatConv2d", "tile_z", "z_concat_act", "z_concat_act_ref", "z_concat_conv", "z_concat_conv_ref",
    "resolve_impl", "triton_available",
]
