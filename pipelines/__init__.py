"""bicyclegan.pipelines: paired A|B image loading (DALI on the GPU, a CPU loader) and demo data.

Imports nothing from bicyclegan.engine or bicyclegan.kernels.
"""
from .demo import make_demo_dataset
from .errors import DatasetError
from .loader import make_loader

__all__ = ["DatasetError", "make_demo_dataset", "make_loader"]
