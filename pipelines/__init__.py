"""bicyclegan.pipelines: paired A|B image loading (DALI on the GPU, a CPU loader) and demo data.

Imports nothing from bicyclegan.engine or bicyclegan.kernels.
"""
from .demo import classify_palette, classify_palettes, make_demo_dataset, palette_coverage
from .errors import DatasetError
from .loader import make_loader
from .spec import BACKENDS, DIRECTIONS, LAYOUTS, PREPROCESS

__all__ = [
    "BACKENDS",
    "DIRECTIONS",
    "LAYOUTS",
    "PREPROCESS",
    "DatasetError",
    "classify_palette",
    "classify_palettes",
    "make_demo_dataset",
    "make_loader",
    "palette_coverage",
]
