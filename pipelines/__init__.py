"""bicyclegan.pipelines: paired A|B image loading (DALI on the GPU, a CPU loader) and demo data.

Imports nothing from bicyclegan.engine or bicyclegan.kernels.
"""
