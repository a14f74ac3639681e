"""bicyclegan.kernels: Triton ops for GAN layers, with pure-PyTorch references and drop-in modules.

Usable alone by other GAN code: imports nothing from bicyclegan.engine or bicyclegan.pipelines.
ACTS (activation names, acts.py) and IMPLS (impl switch values, _names.py) are defined once and exported here.
"""
import importlib
from typing import TYPE_CHECKING

# Each name's submodule, imported on the name's first use (PEP 562): the engine's config and errors take IMPLS and
# the tuning tables' errors from _names.py without importing torch (the `bicyclegan` command's --help, refusals).
_FROM = {"_impl": ["fallbacks", "get_fallback_mode", "resolve_impl", "set_fallback_mode", "triton_available"],
         "_names": ["IMPLS"], "acts": ["ACTS", "apply_act"],
         "avg_pool": ["AvgPool2d", "avg_pool2d"], "fuse": ["fuse_norm_act"],
         "norm_act": ["InstanceNormAct2d", "instance_norm_act", "instance_norm_act_ref"],
         "zinject": ["ZConcatConv2d", "tile_z", "z_concat_act", "z_concat_act_ref", "z_concat_conv",
                     "z_concat_conv_ref"]}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

if TYPE_CHECKING:  # (the names as type checkers and editors read them: _FROM's, tested)
    from ._impl import fallbacks, get_fallback_mode, resolve_impl, set_fallback_mode, triton_available
    from ._names import IMPLS
    from .acts import ACTS, apply_act
    from .avg_pool import AvgPool2d, avg_pool2d
    from .fuse import fuse_norm_act
    from .norm_act import InstanceNormAct2d, instance_norm_act, instance_norm_act_ref
    from .zinject import ZConcatConv2d, tile_z, z_concat_act, z_concat_act_ref, z_concat_conv, z_concat_conv_ref


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
        globals()[name] = value  # (once: later uses find it here)
        return value
    if not name.startswith("__"):  # a submodule by its name, as when this file imported them all (kernels._impl)
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":  # (one it imports: its own error)
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = [
    "ACTS", "IMPLS", "apply_act", "AvgPool2d", "avg_pool2d",
    "InstanceNormAct2d", "fuse_norm_act", "instance_norm_act", "instance_norm_act_ref",
    "ZConcatConv2d", "tile_z", "z_concat_act", "z_concat_act_ref", "z_concat_conv", "z_concat_conv_ref",
    "fallbacks", "get_fallback_mode", "register_ops", "resolve_impl", "set_fallback_mode", "triton_available",
]


def register_ops() -> list[str]:
    """Register the kernels' torch.library custom ops (bicyclegan::instance_norm_act, ::avg_pool2d,
    ::z_concat_act, ::z_concat_conv and their _backward ops) and return their names. A kernel's first Triton
    call registers its own (importing this package does not: Triton is an optional extra, imported when
    first needed), so a torch.jit.trace'd module holding them loads in a new process only after this
    ("Unknown builtin op: bicyclegan::instance_norm_act"). Needs Triton."""
    from ._impl import triton_available
    if not triton_available():
        raise ImportError("bicyclegan.kernels.register_ops needs Triton (pip install triton)")
    from .avg_pool_triton import OP as POOL
    from .norm_act_triton import OP as NORM
    from .zinject_triton import ZCAT, ZCONV
    return [name for op in (NORM, POOL, ZCAT, ZCONV) for name in (op._name, op._name + "_backward")]
