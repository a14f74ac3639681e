"""A refused command leaves nothing it made: io.check_writable judges a destination without creating it
(it made the default results/<checkpoint stem>/ folder, which a command refused right after, for a bad
checkpoint or an option the model has no use for, left behind empty), and what a failed start did make
(train's run folder and its parents, export's folder) goes again. A destination that cannot be written
is still refused up front, before any long work."""
import importlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from bicyclegan.engine import BicycleGAN, Trainer, io, make_config
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.errors import OutputError
from bicyclegan.pipelines import DatasetError, make_demo_dataset

sys.path.insert(0, str(Path(__file__).parent))
from tiny import TINY, tiny_cfg  # noqa: E402

# the modules that call check_writable by the name they imported (cli.py imports it from io as it runs)
CALLERS = ("sample", "interpolate", "compare", "export", "trainer", "sweep", "download", "io")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Demo data, a bicycle checkpoint, one without z and a run folder holding a checkpoint."""
    base = tmp_path_factory.mktemp("litter")
    root = make_demo_dataset(base / "data", n_train=2, n_test=0, n_val=2, size=32)
    cfg = dict(dataroot=str(root), **{**TINY, "load_size": 32, "preprocess": "none", "num_workers": 0,
                                      "backend": "torch"})
    bicycle = save_checkpoint(BicycleGAN(make_config("reference", **cfg), device="cpu", training=False),
                              base / "bicycle.pt")
    nz0 = save_checkpoint(BicycleGAN(make_config("reference", **cfg, variant="pix2pix", nz=0), device="cpu",
                                     training=False), base / "nz0.pt")
    (base / "run" / "checkpoints").mkdir(parents=True)
    save_checkpoint(BicycleGAN(make_config("reference", **cfg), device="cpu", training=False),
                    base / "run" / "checkpoints" / "latest.pt")
    return base, root, bicycle, nz0


def tree(*folders):
    return {p for f in folders for p in Path(f).rglob("*")}


@pytest.fixture
def where(made, tmp_path, monkeypatch):
    """The files and folders of the shared fixtures and of a fresh current folder: none may be added."""
    monkeypatch.chdir(tmp_path)
    before = tree(made[0], tmp_path)
    yield tmp_path
    assert sorted(map(str, tree(made[0], tmp_path) - before)) == []


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def commands(base, root, bicycle, out):
    """Each command that checks its destination with check_writable, writing under `out` where it takes one."""
    dev = ["--device", "cpu", "--num", "1"]
    return {
        "sample": ["sample", bicycle, *dev],  # (results/bicycle/...: the current folder's)
        "interpolate": ["interpolate", bicycle, *dev],
        "evaluate": ["evaluate", bicycle, *dev, "--metrics", "palette"],
        "evaluate --json": ["evaluate", bicycle, *dev, "--metrics", "palette", "--json", out / "e.json"],
        "evaluate --epoch all": ["evaluate", base / "run", "--epoch", "all", *dev, "--metrics", "palette"],
        "compare": ["compare", bicycle, bicycle, "--out", out, *dev, "--metrics", "palette"],
        "export": ["export", bicycle, "--out", out / "g.pt2", "--format", "pt2"],
        "train": ["train", "--preset", "reference", "--out", out, "--dataroot", root, "--device", "cpu",
                  *[f"--{k}={v}" for k, v in TINY.items()], "--load_size", "32", "--num_workers", "0"],
        "make-demo": ["make-demo", out],
        "download dataset": ["download", "dataset", "facades", "--dir", out, "--mirror", closed_port()],
        "download model": ["download", "model", "facades", "--dir", out, "--mirror", closed_port()],
    }


NAMES = list(commands(Path(), Path(), Path(), Path()))


@pytest.mark.parametrize("name", NAMES)
def test_a_refusal_right_after_the_check_leaves_no_folder(name, made, where, monkeypatch, capsys):
    """Whatever refuses after the check (here a stand-in raised as it returns), nothing was made."""
    real = io.check_writable

    def then_refuse(folder, what, *advice):
        real(folder, what, *advice)
        raise OutputError(f"refused after the check of {folder}")
    for module in CALLERS:
        # (by the module: bicyclegan.engine.sample by name is the function the package exports)
        monkeypatch.setattr(importlib.import_module(f"bicyclegan.engine.{module}"), "check_writable", then_refuse)
    out = where / "new" / "out"
    assert main([*map(str, commands(*made[:3], out)[name])]) == 2
    assert "refused after the check of" in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_a_file_in_the_way_is_refused_up_front(name, made, where, capsys):
    # a file where the results folder or one above it goes: --out, or the default results/ (a run's results/)
    file = made[0] / "run" / "results" if name == "evaluate --epoch all" else where / "results"
    file.write_text("mine")
    assert main([*map(str, commands(*made[:3], file / "out")[name])]) == 2
    err = capsys.readouterr().err.strip()
    advice = ("a sweep writes into the run folder" if name == "evaluate --epoch all" else  # (--json cannot move it)
              "choose another folder")
    assert "OutputError: cannot write" in err and f"Not a directory; {advice}" in err, err
    assert file.read_text() == "mine"
    file.unlink()  # (the fixture's check: nothing else was added)


def test_refusals_after_the_check_leave_no_results_folder(made, where, capsys, monkeypatch):
    """The suite's own leftovers: results/G and results/nz0 in the folder it ran in."""
    base, root, bicycle, nz0 = made
    torch.save({"G": {}}, where / "G.pth")
    assert main(["evaluate", str(where / "G.pth"), "--device", "cpu"]) == 2
    assert "is not a bicyclegan checkpoint" in capsys.readouterr().err
    assert main(["evaluate", str(nz0), "--n_samples", "3", "--device", "cpu"]) == 2
    assert "n_samples=3" in capsys.readouterr().err
    (where / "G.pth").unlink()
    # export: a failed export removes the folders made for it (and writes no file)
    monkeypatch.setattr(torch.export, "export", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no")))
    assert main(["export", str(bicycle), "--out", str(where / "a" / "b" / "g.pt2"), "--format", "pt2"]) == 2
    assert "exporting the generator" in capsys.readouterr().err
    # the sweep: --json under a file refused after its results folder (run/results/...) was checked
    (where / "f").write_text("x")
    assert main(["evaluate", str(base / "run"), "--epoch", "all", "--json", str(where / "f" / "sub" / "s.json"),
                 "--device", "cpu"]) == 2
    assert "Not a directory" in capsys.readouterr().err
    (where / "f").unlink()
    # make-demo's own argument checks come after the check of its folder
    assert main(["make-demo", str(where / "d" / "e"), "--shade", "300"]) == 2
    assert "shade must be an integer grey level" in capsys.readouterr().err


def test_a_refused_training_start_removes_the_run_folder_and_the_parents_it_made(made, where):
    base, root, _, _ = made
    (where / "kept").mkdir()
    for out in (where / "a" / "b" / "run", where / "kept" / "run"):
        # 2 training images and a batch of 4: refused by the loader, after the run folder was made and locked
        with pytest.raises(DatasetError, match="fill no batch"):
            Trainer(tiny_cfg(out, root, batch_size=4), progress=False)
    assert (where / "kept").is_dir()
    (where / "kept").rmdir()


def test_check_writable_makes_nothing_and_probes_the_deepest_existing_folder(tmp_path, monkeypatch):
    probed = []
    real = tempfile.TemporaryFile

    def probe(*a, dir=None, **k):
        probed.append(Path(dir))
        return real(*a, dir=dir, **k)
    monkeypatch.setattr(tempfile, "TemporaryFile", probe)
    (tmp_path / "a").mkdir()
    assert io.check_writable(tmp_path / "a" / "b" / "c", "results") == tmp_path / "a" / "b" / "c"
    assert probed == [tmp_path / "a"] and [p.name for p in tmp_path.rglob("*")] == ["a"]
    monkeypatch.chdir(tmp_path / "a")
    assert io.check_writable(Path("x") / "y", "results") == Path("x") / "y"  # relative: from the current folder
    assert probed[-1] == tmp_path / "a" and not (tmp_path / "a" / "x").exists()
    (tmp_path / "link").symlink_to(tmp_path / "gone")  # a dangling link where a folder goes: mkdir would fail later
    with pytest.raises(OutputError) as e:  # ("Not a directory" alone read as a file in the way)
        io.check_writable(tmp_path / "link" / "out", "results")
    assert str(e.value) == (f"cannot write results into {tmp_path / 'link' / 'out'}: {tmp_path / 'link'} links to "
                            f"{tmp_path / 'gone'}, which does not exist; choose another folder")
    (tmp_path / "link").unlink()
    (tmp_path / "loop").symlink_to("loop2")  # a loop of links: a traceback from --out's resolve()
    (tmp_path / "loop2").symlink_to("loop")
    with pytest.raises(OutputError) as e:
        io.check_writable(tmp_path / "loop" / "out", "results")
    assert str(e.value) == (f"cannot write results into {tmp_path / 'loop' / 'out'}: {tmp_path / 'loop'} links to "
                            f"loop2, which links back (a loop); choose another folder")
    from bicyclegan.engine.runtime import check_apart
    with pytest.raises(OutputError, match=r"^--out .*loop: its symbolic links loop \("):
        check_apart(tmp_path / "loop", tmp_path / "a", "val")
    (tmp_path / "loop").unlink()
    (tmp_path / "loop2").unlink()

    # a folder that cannot be written (root writes anywhere: the refusal of the probe stands in for it)
    def read_only(*a, dir=None, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(OutputError) as e:
        io.check_writable(tmp_path / "a" / "n", "results")
    assert str(e.value) == f"cannot write results into {tmp_path / 'a' / 'n'}: Permission denied; choose another folder"


@pytest.mark.slow  # (three pytest runs: 20 s)
def test_the_suite_fails_naming_what_its_tests_left_in_the_folder_it_runs_in(tmp_path):
    """tests/conftest.py's check, on a suite of its own run from tmp_path: what a test adds to the top level or
    anywhere in results/ is named and fails the run, in one process and under pytest-xdist (whose workers
    share the folder); what was there before and Python's own __pycache__ (a module of the top level
    imported) are not counted."""
    (tmp_path / "tests").mkdir()
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "results" / "old").mkdir(parents=True)
    (tmp_path / "helper.py").write_text("")
    (tmp_path / "tests" / "test_clean.py").write_text(
        "import sys\nfrom pathlib import Path\n\n\ndef test_clean():\n"
        "    sys.path.insert(0, str(Path.cwd()))\n    import helper  # noqa: F401\n")
    (tmp_path / "tests" / "test_litters.py").write_text(
        "from pathlib import Path\n\n\ndef test_litters():\n"
        "    Path('results/old/G').mkdir()\n    Path('left.txt').write_text('x')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    said = f"tests left 2 new files or folders in {tmp_path} (write into tmp_path instead): left.txt, results/old/G"

    def pytest_run(*args):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "tests"],
                              cwd=tmp_path, capture_output=True, text=True, env=env)
    for xdist in ([], ["-n", "2"]):
        r = pytest_run(*xdist)
        assert r.returncode == 1 and said in r.stdout and "2 passed" in r.stdout, r.stdout + r.stderr
        assert (tmp_path / "__pycache__").is_dir()
        (tmp_path / "left.txt").unlink()
        (tmp_path / "results" / "old" / "G").rmdir()
        shutil.rmtree(tmp_path / "__pycache__")  # (made during the run: new again in the next)
    (tmp_path / "tests" / "test_litters.py").unlink()
    r = pytest_run("-n", "2")
    assert r.returncode == 0 and "tests left" not in r.stdout, r.stdout + r.stderr
