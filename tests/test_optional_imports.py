"""The package and its CLI start without importing any optional extra (tensorboard, serve, video,
export, bench, DALI, Triton): a plain `pip install bicyclegan` must work, and start-up stays fast."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

OPTIONAL = ("fastapi", "uvicorn", "tensorboard", "imageio_ffmpeg", "onnx", "onnxruntime", "onnxscript",
            "matplotlib", "selenium", "nvidia.dali", "triton", "httpx2")


def test_import_and_cli_parser_import_no_optional_package():
    code = ("import sys; import bicyclegan.engine, bicyclegan.kernels, bicyclegan.pipelines; "
            "from bicyclegan.engine.cli import build_parser; build_parser(); "
            f"print([m for m in {OPTIONAL!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["train", "--bogus"]])
def test_help_and_a_refused_command_line_import_no_torch(argv):
    # The command's module imported torch (bicyclegan.engine's __init__ every submodule): ~2 s before any word
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "bicyclegan.engine.cli", *argv],
                          capture_output=True, text=True)
    assert proc.returncode == (2 if "--bogus" in argv else 0), proc.stderr[-3000:]
    assert "--max_steps" in proc.stdout + proc.stderr if "train" in argv else "make-demo" in proc.stdout
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "bicyclegan.engine.config" in imported and "torch" not in imported


def test_the_packages_names_are_their_objects_whichever_submodule_was_imported_first():
    # The packages import a name's submodule at its first use (PEP 562); importing a submodule makes it an attribute
    # of its package, and engine's compare, evaluate, interpolate, sample and serve are also the functions' names.
    code = ("import types, bicyclegan.engine.compare, bicyclegan.engine.evaluate, bicyclegan.engine.interpolate, "
            "bicyclegan.engine.sample, bicyclegan.engine.serve, bicyclegan.kernels, bicyclegan.pipelines\n"
            "from bicyclegan.engine import sample\n"
            "for m in (bicyclegan.engine, bicyclegan.kernels, bicyclegan.pipelines):\n"
            "    assert set(m.__all__) <= set(dir(m)) and not hasattr(m, 'no_such_name'), m\n"
            "    print(m.__name__, [n for n in m.__all__ if isinstance(getattr(m, n), types.ModuleType)])\n"
            "print(type(sample).__name__, sample.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["bicyclegan.engine []", "bicyclegan.kernels []", "bicyclegan.pipelines []",
                                "function bicyclegan.engine.sample"]



def test_a_packages_submodule_is_its_attribute_without_an_import_of_its_own():
    # The eager packages had every submodule imported: `bicyclegan.kernels._impl` after `import bicyclegan.kernels`
    # was an AttributeError once the packages became lazy (a test file alone failed to collect)
    code = ("import bicyclegan.engine, bicyclegan.kernels, bicyclegan.pipelines\n"
            "print(bicyclegan.kernels._impl.__name__, bicyclegan.engine.trainer.__name__, "
            "bicyclegan.pipelines.cpu_loader.__name__, type(bicyclegan.engine.sample).__name__)\n"
            "for m in (bicyclegan.engine, bicyclegan.kernels, bicyclegan.pipelines):\n"
            "    try:\n"
            "        m.no_such_part\n"
            "    except AttributeError as e:\n"
            "        print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "bicyclegan.kernels._impl bicyclegan.engine.trainer bicyclegan.pipelines.cpu_loader function",
        *(f"module 'bicyclegan.{p}' has no attribute 'no_such_part'" for p in ("engine", "kernels", "pipelines"))]


@pytest.mark.parametrize("package", ["engine", "kernels", "pipelines"])
def test_the_names_type_checkers_read_are_the_ones_the_package_gives(package):
    # (the lazy names are invisible to editors and type checkers but for the TYPE_CHECKING imports, kept by hand)
    import importlib
    module = importlib.import_module(f"bicyclegan.{package}")
    tree = ast.parse(Path(module.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    imported = {(i.module, a.name) for i in block.body for a in i.names}
    assert imported == {(m, name) for m, names in module._FROM.items() for name in names}
    assert {name for _, name in imported} | {"__version__", "register_ops"} >= set(module.__all__)

def test_a_cpu_forward_without_the_interpreter_imports_no_triton(tmp_path):
    # runs_triton asked for triton's import (~0.3 s of every CPU command) before it looked at the device
    code = ("import os, sys, torch; os.environ.pop('TRITON_INTERPRET', None); "
            "from bicyclegan.engine import BicycleGAN, make_config; "
            "m = BicycleGAN(make_config('demo', ngf=4, nef=4, ndf=4), training=False); "
            "m.generate(torch.zeros(1, 3, 64, 64)); print('triton' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "False"


def test_the_package_imports_and_trains_without_what_only_unix_has(tmp_path):
    # Windows has no fcntl and no signal.SIGHUP: `import fcntl` and StopSignals' SIGHUP, read at import, stopped every
    # command there, --version too. Emulated: without them a run trains (its folder unlocked, as on a file system
    # without locks) and stops as usual.
    code = ("import signal, sys; sys.modules['fcntl'] = None; del signal.SIGHUP; "
            "from bicyclegan.engine.cli import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", code, "train", "--out", str(tmp_path / "r"), "--max_steps", "2",
                          "--ngf", "4", "--nef", "4", "--ndf", "4", "--impl", "ref", "--no-eval", "--no-progress",
                          "--eval_every", "0", "--device", "cpu"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r" / "checkpoints" / "latest.pt").is_file() and not (tmp_path / "r" / ".lock").exists()


def _imported(path):
    """Every module name a file imports, at any depth (function-level imports included), with
    relative imports spelled from the package root (bicyclegan.<part>...)."""
    part = path.parent.name
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.append(node.module)
            else:  # level 1: this part; level 2: the package root
                base = ["bicyclegan", part][: 3 - node.level]
                names.append(".".join(base + ([node.module] if node.module else [])))
    return names


@pytest.mark.parametrize("part", ["kernels", "pipelines"])
def test_kernels_and_pipelines_import_nothing_of_the_other_parts(part):
    """kernels/ and pipelines/ are usable alone (their docstrings promise it): no import of the engine
    or of each other, not even inside a function (the check cache's save imported engine.io)."""
    others = {"engine", "kernels", "pipelines"} - {part}
    root = Path(__file__).resolve().parents[1] / part
    bad = [(p.name, name) for p in sorted(root.glob("*.py")) for name in _imported(p)
           if name and name.split(".")[:2] in (["bicyclegan", o] for o in others)]
    assert not bad, bad
