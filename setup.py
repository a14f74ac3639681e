"""One distribution, "bicyclegan": engine/, kernels/ and pipelines/ become bicyclegan.<part>.

There is deliberately no bicyclegan/__init__.py: bicyclegan is an implicit namespace package,
which works for editable and normal installs alike (see DESIGN.md).
"""
from setuptools import setup

PARTS = ["engine", "kernels", "pipelines"]
EXPORT = ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.20"]

setup(
    name="bicyclegan",
    version="0.1.0",
    description="BicycleGAN (multimodal image-to-image translation) with Triton kernels and DALI loading",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[f"bicyclegan.{p}" for p in PARTS],
    package_dir={f"bicyclegan.{p}": p for p in PARTS},
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "pillow>=9.0",
        # strict JPEG checks at index time (libjpeg-turbo warnings as errors); ~1 MB wheel
        "simplejpeg>=1.6",
    ],
    extras_require={
        # Triton ships inside the CUDA builds of torch; the CPU build needs it for the interpreter.
        "triton": ["triton>=3.0"],
        # DALI is large (hundreds of MB): opt in.
        "dali": ["nvidia-dali-cuda130>=1.40"],
        # `bicyclegan export`: onnx + onnxscript drive torch.onnx's exporter, onnxruntime checks the
        # written file against PyTorch (~38 MB of wheels; tested with 1.23.2 / 0.7.2 / 1.32.0).
        # .pt2 export needs none of them.
        "export": EXPORT,
        "dev": ["pytest>=7", "pytest-benchmark>=4", "ruff", "triton>=3.0", *EXPORT],
    },
    entry_points={"console_scripts": ["bicyclegan=bicyclegan.engine.cli:main"]},
)
