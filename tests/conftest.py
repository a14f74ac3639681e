"""Test set-up: run Triton kernels in the interpreter on machines without a GPU.

TRITON_INTERPRET must be set before triton is first imported, so it is set here, at collection.
Engine tests pass impl="ref" explicitly where kernel speed would only slow them down.
"""
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    # Imported now, under that setting: Triton builds its language library as interpreted or compiled
    # at its first import, so a test that turns the interpreter off (to run as a plain CPU machine
    # does) and happened to import Triton first left every later kernel test failing ("Cannot call
    # @triton.jit'd outside of the scope of a kernel").
    try:
        import triton.language  # noqa: F401
    except ImportError:  # a core-only environment: the kernel tests skip
        pass

HAS_CUDA = torch.cuda.is_available()

# One CPU thread for torch in each test process and in the commands and ranks the tests start (they
# inherit OMP_NUM_THREADS), unless the caller chose a number. The tests' tensors are tiny, and
# `make test` runs as many pytest workers as the machine has cores: with torch's default of a thread
# per core, the workers' threads spun waiting on each other, a tiny training step taking 1.5-3 s
# instead of 0.08 s on 2 busy cores.
if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# The files that take longest on the project's 2-core machine (seconds of one worker, summed over
# their tests, under load), longest first. `make test` hands whole files to its pytest-xdist workers
# in collection order (--no-loadscope-reorder; xdist's own order is by number of tests, which sent
# these few-but-slow files last, one worker finishing minutes after the other): the longest first,
# then the many short ones fill in. Only the order depends on this list, never a result.
# Longest-processing-time first: the files' CPU seconds, each run alone (test_bench_gpu_check ~190, test_stop
# 125 and ~55 asleep, test_norm_act 92, test_kernel_tune 87, test_distributed 85 and ~20 asleep, test_compile 82,
# test_export 72, test_validation 61, test_user_paths 55, test_avg_pool 52, test_kernel_func 46), then a whole
# run's per-file times (junit XML) for the rest: under a changing load those came out 1.2 to 6 times the CPU's.
SLOW_FILES = ("test_bench_gpu_check.py", "test_stop.py", "test_distributed.py", "test_norm_act.py",
              "test_kernel_tune.py", "test_compile.py", "test_export.py", "test_validation.py", "test_user_paths.py",
              "test_avg_pool.py", "test_sweep.py", "test_kernel_func.py", "test_zinject.py", "test_check_cache.py",
              "test_bench.py", "test_readme.py", "test_memory_format.py", "test_api_citizen.py",
              "test_pipelines_errors.py", "test_reliability.py")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable: each file's order kept


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _check_cache(tmp_path_factory):
    """The file checks' cache of the tests (and of the commands they run) in a folder of their own,
    not in the user's ~/.cache."""
    os.environ["BICYCLEGAN_CHECK_CACHE"] = str(tmp_path_factory.mktemp("check-cache"))


@pytest.fixture
def replace_fails(monkeypatch):
    """Call with a file name: from then on os.replace onto a file of that name fails with EIO, as a full
    or failing disk makes the last step of an atomic write fail (the others still go through)."""
    from pathlib import Path
    replace = os.replace

    def arm(name: str) -> None:
        def failing(src, dst, **kw):
            if Path(dst).name == name:
                raise OSError(5, "Input/output error")
            return replace(src, dst, **kw)
        monkeypatch.setattr(os, "replace", failing)
    return arm


@pytest.fixture
def in_launch(monkeypatch):
    """A list that is non-empty while Triton's interpreter runs a kernel launch: tests that count the
    ops' own copies leave out the interpreter's (it copies every argument's storage back and forth)."""
    # (GridExecutor runs a launch in every Triton from 3.0 on: InterpretedFunction.run, its caller
    # since, is an instance attribute in Triton 3.0 and 3.1.)
    from triton.runtime.interpreter import GridExecutor
    depth, run = [], GridExecutor.__call__

    def launch(*args, **kwargs):
        depth.append(1)
        try:
            return run(*args, **kwargs)
        finally:
            depth.pop()
    monkeypatch.setattr(GridExecutor, "__call__", launch)
    return depth


# -- nothing left in the checkout ------------------------------------------------------------------
# A test that leaves a file or folder in the folder pytest runs in fails the session, naming it: commands
# write into the current folder by default (results/<checkpoint stem>/), and a refused one left empty
# results/G, results/nz0, ... behind unnoticed. Listed once in the controller (under pytest-xdist its
# workers share the folder, and the check runs once all of them are done): the top level, and results/
# and runs/ all the way down, where the commands' defaults write; what was there before is not counted.
LISTED = ("results", "runs")
UNLISTED = {".pytest_cache", "__pycache__", ".benchmarks"}  # pytest's and its plugins' own
_BEFORE = pytest.StashKey[set]()


def _checkout_listing(root) -> set:
    from pathlib import Path
    root = Path(root)
    paths = set(root.iterdir())
    for sub in LISTED:
        paths.update((root / sub).rglob("*"))
    return {p.relative_to(root) for p in paths if not UNLISTED.intersection(p.relative_to(root).parts)}


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # (the controller, or a run without xdist)
        session.config.stash[_BEFORE] = _checkout_listing(session.config.invocation_params.dir)


@pytest.hookimpl(tryfirst=True)  # before the terminal's summary, which then reports it
def pytest_sessionfinish(session):
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    left = sorted(map(str, _checkout_listing(session.config.invocation_params.dir) - before))
    if left:
        said = (f"tests left {len(left)} new files or folders in {session.config.invocation_params.dir} "
                f"(write into tmp_path instead): {', '.join(left)}")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")  # (the progress line ends without one)
            reporter.write_sep("=", said, red=True)
        else:
            print(said, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

