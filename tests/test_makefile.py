"""`make demo` picks the CUDA build of torch and says so where nvidia-smi lists a GPU, the CPU build
where it does not (checked with make's dry run and a stand-in nvidia-smi: no GPU needed)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dry_run(tmp_path, smi_output: str | None) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi_output is not None:  # else nvidia-smi is a command that fails, as on a machine without a driver
        script = f"#!/bin/sh\nprintf '%s\\n' '{smi_output}'\n"
    else:
        script = "#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n"
    (bin_dir / "nvidia-smi").write_text(script)
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["make", "-n", "demo", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_uses_the_cuda_build_where_nvidia_smi_lists_a_gpu(tmp_path):
    out = dry_run(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-0a1b2c3d)")
    assert 'pip install -q "torch===2.13.0"' in out  # "===": a local +cpu wheel cannot satisfy it
    assert "GPU found by nvidia-smi: the CUDA build of torch" in out
    assert ".installed-cuda" in out and "if [ cuda = cuda ]" in out  # the check that torch can use it runs


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("smi", [None, "No devices were found"])
def test_make_demo_uses_the_cpu_build_without_a_gpu(tmp_path, smi):
    out = dry_run(tmp_path, smi)
    assert 'pip install -q "torch==2.13.0"' in out
    assert "no GPU found by nvidia-smi: the CPU build of torch" in out
    assert ".installed-cpu" in out and "if [ cpu = cuda ]" in out


def test_the_slowest_files_are_handed_out_first(request):
    """`make test` keeps the collection order (--no-loadscope-reorder), which conftest starts with its
    list of the slowest files: each name must be a test file (a renamed one would silently go last),
    and the items must come in that order, each file's own order kept."""
    import conftest
    assert "--no-loadscope-reorder" in (ROOT / "Makefile").read_text()
    assert all((ROOT / "tests" / name).is_file() for name in conftest.SLOW_FILES)

    class Item:
        def __init__(self, name, i):
            self.path, self.i, self.keywords = Path(name), i, {}

    names = ["test_a.py", "test_readme.py", "test_a.py", "test_distributed.py", "test_readme.py"]
    items = [Item(n, i) for i, n in enumerate(names)]
    conftest.pytest_collection_modifyitems(request.config, items)
    assert [(it.path.name, it.i) for it in items] == [("test_distributed.py", 3), ("test_readme.py", 1),
                                                      ("test_readme.py", 4), ("test_a.py", 0), ("test_a.py", 2)]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_floor_installs_the_oldest_torch_setup_py_takes_and_runs_test_files_that_exist():
    floor = re.search(r'"torch>=(\d+\.\d+)"', (ROOT / "setup.py").read_text())
    assert floor, "setup.py names no torch>=X.Y"
    out = subprocess.run(["make", "-n", "test-floor"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pins = re.findall(r"torch==(\d+\.\d+)\.\d+", out.stdout)
    assert pins == [floor.group(1)], out.stdout  # the floor's own release, whatever setup.py says it is
    # (the pytest line: under `make test` make -n adds "Entering/Leaving directory" lines around it)
    (tests,) = [line.split() for line in out.stdout.splitlines() if " -m pytest " in line]
    files = [t for t in tests if t.startswith("tests/")]
    assert files and all((ROOT / f).is_file() for f in files), files
