"""The wheel a normal (non-editable) install gets: every module and data file of the three parts,
and the package importing from it alone. Editable installs map whole folders, so nothing else here
would notice a subpackage setup.py leaves out (engine/metrics was: `import bicyclegan.engine` failed
after `pip install .`)."""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("engine", "kernels", "pipelines")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # From a copy of what the build reads: a build/ folder left in the checkout would lend its files.
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src)
    for part in PARTS:
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(out), str(src)], capture_output=True, text=True)
    if run.returncode and "No module named pip" in run.stderr:
        pytest.skip("pip is not installed here")
    assert run.returncode == 0, run.stderr
    (whl,) = out.glob("bicyclegan-*.whl")
    return whl


def test_the_wheel_holds_every_module_and_page_of_the_parts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"bicyclegan/{p.relative_to(REPO).as_posix()}" for part in PARTS for p in (REPO / part).rglob("*")
            if p.suffix in (".py", ".html") and "__pycache__" not in p.parts}
    assert want and want <= names, sorted(want - names)
    assert not any(n.startswith(("bicyclegan/tests", "bicyclegan/bench", "tests/")) for n in names)
    # The command is cli.run, which ends a stopped command by its signal (main() returns the code to a caller)
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry).decode().split("[console_scripts]")[1].split()
    assert scripts[:3] == ["bicyclegan", "=", "bicyclegan.engine.cli:run"], scripts


def test_the_package_imports_and_runs_from_the_wheel_alone(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    # -S: no site-packages .pth files, so the editable install of this checkout is out of the way;
    # the dependencies come from the running environment's site-packages, after the wheel's files.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), sysconfig.get_paths()["purelib"],
                                                          sysconfig.get_paths()["platlib"]])}
    code = ("import bicyclegan.engine as e, bicyclegan.kernels, bicyclegan.pipelines, bicyclegan.engine.metrics;"
            "print(e.__file__)")
    run = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(tmp_path / "site")), run.stdout
    run = subprocess.run([sys.executable, "-S", "-m", "bicyclegan.engine.cli", "evaluate", "--help"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "--metrics" in run.stdout, run.stderr
