"""One distribution, "bicyclegan": engine/, kernels/ and pipelines/ become bicyclegan.<part>.

There is deliberately no bicyclegan/__init__.py: bicyclegan is an implicit namespace package,
which works for editable and normal installs alike (docs/architecture.md; tests/test_packaging.py
builds the wheel and imports from it alone).
"""
from setuptools import find_packages, setup

PARTS = ["engine", "kernels", "pipelines"]
# Each part with its subpackages (engine/metrics/...): an editable install maps whole folders and
# hides a missing one, a wheel holds only the packages listed.
PACKAGES = [f"bicyclegan.{p}{'.' + sub if sub else ''}" for p in PARTS for sub in ["", *find_packages(p)]]
# onnxscript 0.6: torch 2.13's exporter imports its torch_2_11 API (0.5 was "No module named ...torch_2_11")
EXPORT = ["onnx>=1.17", "onnxscript>=0.6", "onnxruntime>=1.20"]
# 2.18: earlier ones call numpy's np.string_, gone in numpy 2 (train --tensorboard stopped at its first log line)
TENSORBOARD = ["tensorboard>=2.18"]
SERVE = ["fastapi>=0.100", "uvicorn>=0.23"]
BENCH = ["matplotlib>=3.7"]
# `bicyclegan interpolate` writes MP4 through imageio-ffmpeg (which ships an ffmpeg binary, ~68 MB
# wheel); PNG strips and GIFs need nothing beyond Pillow.
VIDEO = ["imageio-ffmpeg>=0.5"]
TRITON = "triton>=3.0; sys_platform == 'linux'"

setup(
    name="bicyclegan",
    version="0.1.0",
    description="BicycleGAN (multimodal image-to-image translation) with Triton kernels and DALI loading",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir={f"bicyclegan.{p}": p for p in PARTS},
    # The page of `bicyclegan serve`; launch-configuration tables tuned per GPU
    # (python -m bicyclegan.kernels.tune).
    package_data={"bicyclegan.engine": ["static/*.html"], "bicyclegan.kernels": ["tuning/*.json"]},
    install_requires=[
        "torch>=2.4",  # the oldest checked: `make test-floor` (torch 2.4.1 and its Triton 3.0)
        "numpy>=1.24",
        "pillow>=10.1",  # ImageFont.load_default(size=): grid titles in proportion over big tiles
        # strict JPEG checks at index time (libjpeg-turbo warnings as errors); ~1 MB wheel. 1.7.4: the first built
        # against numpy 2 (earlier ones do not import beside it: every command failed), and it runs with numpy 1 too
        "simplejpeg>=1.7.4",
    ],
    extras_require={
        # Triton ships inside the CUDA builds of torch; the CPU build needs it for the interpreter. Linux only: it
        # has no wheels elsewhere (the extras did not resolve on macOS; the package runs without it).
        "triton": [TRITON],
        # DALI is large (hundreds of MB): opt in. 1.51.2: the first CUDA 13 build on PyPI (tested with 2.4).
        "dali": ["nvidia-dali-cuda130>=1.51.2"],
        # `bicyclegan export`: onnx + onnxscript drive torch.onnx's exporter, onnxruntime checks the
        # written file against PyTorch (~38 MB of wheels; tested with 1.23.2 / 0.7.2 / 1.32.0).
        # .pt2 export needs none of them.
        "export": EXPORT,
        # `bicyclegan train --tensorboard`: torch.utils.tensorboard's SummaryWriter needs it.
        "tensorboard": TENSORBOARD,
        # `bicyclegan serve`: FastAPI + uvicorn, ~3.5 MB of wheels (gradio would be ~80 MB in 52 wheels).
        "serve": SERVE,
        # `make bench-plot` / bench/track.py plot: the throughput history as PNGs.
        "bench": BENCH,
        "video": VIDEO,
        # httpx2 drives the API tests (Starlette's TestClient); selenium the browser test, with the
        # system's chromium and chromium-driver (.ci/run installs them); pytest-xdist runs `make test`
        # in two processes.
        "dev": ["pytest>=7", "pytest-benchmark>=4", "pytest-xdist>=3", "ruff", TRITON, *EXPORT, *TENSORBOARD,
                *SERVE, *BENCH, *VIDEO, "httpx2", "selenium>=4.10"],
    },
    entry_points={"console_scripts": ["bicyclegan=bicyclegan.engine.cli:run"]},
)
