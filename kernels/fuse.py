"""fuse_norm_act: swap nn.InstanceNorm2d + nn.ReLU/nn.LeakyReLU/nn.ELU pairs for one InstanceNormAct2d.

Works on any model built from nn.Sequential blocks (pix2pix / BicycleGAN style): the pair must be
adjacent in the same nn.Sequential. The norm's slot takes the fused layer and the activation's slot
becomes nn.Identity, so indices and state_dict keys do not move.
"""
import torch.nn as nn

from ._impl import IMPLS
from .norm_act import InstanceNormAct2d


def _fused(norm, act, impl, double_backward):
    if isinstance(act, nn.LeakyReLU):
        kind, slope = "leaky_relu", float(act.negative_slope)
    elif isinstance(act, nn.ELU):
        kind, slope = "elu", 0.0
    else:
        kind, slope = "relu", 0.0
    fused = InstanceNormAct2d(norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=norm.affine,
                              act=kind, slope=slope, impl=impl, double_backward=double_backward)
    if norm.affine:
        # The same Parameter objects, so optimisers built before fusing keep updating them.
        fused.weight, fused.bias = norm.weight, norm.bias
    fused.train(norm.training)
    return fused


def _fusable(norm, act):
    # The kernels' ELU has alpha 1 (the reference's nn.ELU(alpha=1.0)); another alpha stays unfused.
    # type, not isinstance: an InstanceNormAct2d is an nn.InstanceNorm2d with its activation already.
    return (type(norm) is nn.InstanceNorm2d and not norm.track_running_stats
            and (type(act) in (nn.ReLU, nn.LeakyReLU) or (type(act) is nn.ELU and act.alpha == 1.0)))


def _hooked(m):
    # A hook on either layer would silently stop firing once the pair is one layer (the state_dict
    # and load_state_dict ones too: a norm's key-renaming pre-hook was dropped by the fusion).
    return any(getattr(m, h, None) for h in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                              "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
                                              "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"))


def _plain_sequential(m):
    # A subclass with its own forward may use its children otherwise than in a chain (taps, skips).
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def fuse_norm_act(module, impl="auto", double_backward=False):
    """Fuse every nn.InstanceNorm2d directly followed by nn.ReLU, nn.LeakyReLU or nn.ELU(alpha=1) inside an
    nn.Sequential of `module` (module itself included) into one InstanceNormAct2d.

    Modifies `module` in place and returns it. Outputs and gradients are those of the original.
    Left alone: InstanceNorm2d with track_running_stats=True, a pair where either layer has hooks,
    and nn.Sequential subclasses with their own forward. The norm's slot now holds the activation
    too (a slice seq[:i + 1] ends after it); and like an in-place activation, the fused layer may keep
    its output for backward (LeakyReLU, ELU), so modifying that output in place raises autograd's
    in-place error where an unfused nn.LeakyReLU would not. double_backward: the fused layers' own
    (InstanceNormAct2d), for a network under a gradient penalty (R1, WGAN-GP): the LeakyReLU norms without
    affine parameters then keep their input, which a create_graph backward through the kernels needs.
    """
    # Checked here, not only by the fused layers: with nothing to fuse a misspelt impl went unnoticed.
    if impl not in IMPLS:
        raise ValueError(f"fuse_norm_act: impl must be one of {IMPLS}, got {impl!r}")
    if not isinstance(double_backward, bool):
        raise TypeError(f"fuse_norm_act: double_backward must be True or False, got {double_backward!r}")
    for seq in [m for m in module.modules() if _plain_sequential(m)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            norm, act = seq._modules[first], seq._modules[second]
            if _fusable(norm, act) and not _hooked(norm) and not _hooked(act):
                seq._modules[first] = _fused(norm, act, impl, double_backward)
                seq._modules[second] = nn.Identity()
    return module
