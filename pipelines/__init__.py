"""bicyclegan.pipelines: paired A|B image loading (DALI on the GPU, a CPU loader) and demo data.

Imports nothing from bicyclegan.engine or bicyclegan.kernels.
"""
from .demo import make_demo_dataset
from .errors import DatasetError
from .files import IMG_EXTENSIONS, MAX_PIXELS
from .loader import make_loader
from .spec import BACKENDS, DIRECTIONS, LAYOUTS, PREPROCESS

__all__ = ["BACKENDS", "DIRECTIONS", "IMG_EXTENSIONS", "LAYOUTS", "MAX_PIXELS", "PREPROCESS", "DatasetError",
           "make_demo_dataset", "make_loader"]
