"""bicyclegan.pipelines: paired A|B image loading (DALI on the GPU, a CPU loader) and demo data.

Imports nothing from bicyclegan.engine or bicyclegan.kernels.
"""
import importlib
from typing import TYPE_CHECKING

# Each name's submodule, imported on the name's first use (PEP 562): demo and loader import torch, which the
# `bicyclegan` command's --help and refusals need not wait for (as bicyclegan.engine's __init__).
_FROM = {"demo": ["make_demo_dataset"], "errors": ["DatasetError"], "files": ["IMG_EXTENSIONS", "MAX_PIXELS"],
         "loader": ["make_loader"], "spec": ["BACKENDS", "DIRECTIONS", "LAYOUTS", "PREPROCESS"]}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

if TYPE_CHECKING:  # (the names as type checkers and editors read them: _FROM's, tested)
    from .demo import make_demo_dataset
    from .errors import DatasetError
    from .files import IMG_EXTENSIONS, MAX_PIXELS
    from .loader import make_loader
    from .spec import BACKENDS, DIRECTIONS, LAYOUTS, PREPROCESS


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


__all__ = ["BACKENDS", "DIRECTIONS", "IMG_EXTENSIONS", "LAYOUTS", "MAX_PIXELS", "PREPROCESS", "DatasetError",
           "make_demo_dataset", "make_loader"]
