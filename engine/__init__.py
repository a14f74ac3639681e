"""bicyclegan.engine: the Python API, as complete as the `bicyclegan` command.

    from bicyclegan.engine import make_config, train, sample, evaluate, load_checkpoint
    cfg = make_config("demo", out="runs/demo")   # a preset plus options, by their CLI names
    run = train(cfg)                              # -> the run folder
    model = load_checkpoint(run / "checkpoints" / "latest.pt")
    sample(model, out="results")                  # images, grid.png, index.html
    print(evaluate(model))                        # a dict of measures
"""
import importlib
import sys
import types
from typing import TYPE_CHECKING

# Each name's submodule, imported on the name's first use (PEP 562): `import bicyclegan.engine`, and the
# `bicyclegan` command's --help and refusals with it, import no torch (~2 s of every command before it printed).
_FROM = {
    "checkpoint": ["find_checkpoint", "load_checkpoint", "read_checkpoint", "save_checkpoint"],
    "compare": ["compare"],
    "config": ["DataConfig", "ModelConfig", "TrainConfig"],
    "download": ["download_dataset", "download_model"],
    "errors": ["USER_ERRORS", "BicycleGANError", "CheckpointError", "ConfigError", "DivergenceError", "DownloadError",
               "ExportError", "OutputError", "RankLostError", "WeightsError"],
    "evaluate": ["evaluate"],
    "export": ["export_generator"],
    "images": ["sample_columns"],
    "interpolate": ["interpolate"],
    "model": ["BicycleGAN"],
    "networks": ["build_discriminator", "build_encoder", "build_generator", "init_weights"],
    "official": ["import_official"],
    "presets": ["PRESETS", "make_config"],
    "report": ["write_report"],
    "sample": ["sample"],
    "serve": ["serve"],
    "sweep": ["evaluate_checkpoints"],
    "trainer": ["Trainer", "TrainingStopped", "stopped_by", "train"],
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

if TYPE_CHECKING:  # (the names as type checkers and editors read them: _FROM's, tested)
    from .checkpoint import find_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
    from .compare import compare
    from .config import DataConfig, ModelConfig, TrainConfig
    from .download import download_dataset, download_model
    from .errors import (
        USER_ERRORS,
        BicycleGANError,
        CheckpointError,
        ConfigError,
        DivergenceError,
        DownloadError,
        ExportError,
        OutputError,
        RankLostError,
        WeightsError,
    )
    from .evaluate import evaluate
    from .export import export_generator
    from .images import sample_columns
    from .interpolate import interpolate
    from .model import BicycleGAN
    from .networks import build_discriminator, build_encoder, build_generator, init_weights
    from .official import import_official
    from .presets import PRESETS, make_config
    from .report import write_report
    from .sample import sample
    from .serve import serve
    from .sweep import evaluate_checkpoints
    from .trainer import Trainer, TrainingStopped, stopped_by, train


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


class _Package(types.ModuleType):
    """The import system sets a submodule as its package's attribute when it loads it: cli.py's `from .sample import
    sample` made bicyclegan.engine.sample the module, not the function (compare, evaluate, interpolate, serve alike)."""

    def __setattr__(self, name, value):
        if not (name in _MODULE_OF and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("bicyclegan")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


__version__ = _version()

__all__ = [
    "__version__", "BicycleGAN", "BicycleGANError", "CheckpointError", "ConfigError", "DataConfig", "DivergenceError",
    "DownloadError", "ExportError", "ModelConfig", "OutputError", "PRESETS", "RankLostError", "TrainConfig", "Trainer",
    "TrainingStopped", "USER_ERRORS", "WeightsError", "build_discriminator", "build_encoder", "build_generator",
    "compare", "download_dataset", "download_model", "evaluate", "evaluate_checkpoints", "export_generator",
    "find_checkpoint", "import_official", "init_weights", "interpolate", "load_checkpoint", "make_config",
    "read_checkpoint", "sample", "sample_columns", "save_checkpoint", "serve", "stopped_by", "train", "write_report",
]
