"""bicyclegan.engine: the Python API, as complete as the `bicyclegan` command.

    from bicyclegan.engine import make_config, train, sample, evaluate, load_checkpoint
    cfg = make_config("demo", out="runs/demo")   # a preset plus options, by their CLI names
    run = train(cfg)                              # -> the run folder
    model = load_checkpoint(run / "checkpoints" / "latest.pt")
    sample(model, out="results")                  # images, grid.png, index.html
    print(evaluate(model))                        # a dict of measures
"""
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
