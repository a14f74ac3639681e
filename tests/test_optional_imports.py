"""The package and its CLI start without importing any optional extra (tensorboard, serve, video,
export, bench, DALI, Triton): a plain `pip install bicyclegan` must work, and start-up stays fast."""
import subprocess
import sys

OPTIONAL = ("fastapi", "uvicorn", "tensorboard", "imageio_ffmpeg", "onnx", "onnxruntime", "onnxscript",
            "matplotlib", "selenium", "nvidia.dali", "triton", "httpx2")


def test_import_and_cli_parser_import_no_optional_package():
    code = ("import sys; import bicyclegan.engine, bicyclegan.kernels, bicyclegan.pipelines; "
            "from bicyclegan.engine.cli import build_parser; build_parser(); "
            f"print([m for m in {OPTIONAL!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
