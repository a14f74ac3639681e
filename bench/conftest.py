"""Benchmark set-up: Triton in the interpreter where there is no GPU (dry runs), and the machine key
(device, torch and Triton versions; see benchutil) in every pytest-benchmark JSON's machine_info."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported

import benchutil  # noqa: E402


def pytest_collection_modifyitems(items):
    # The torch.compile baselines compile afresh, seconds a case: after every other case of the session, whichever
    # file holds them, so that gpu_check.sh's time limit cuts compile rows, never ours or an eager gate (in file
    # order, the norm's compile cases came before every pooling case). A stable sort: the rest keeps its order.
    items.sort(key=lambda item: getattr(item, "callspec", None) is not None
               and item.callspec.params.get("variant") == "compile")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["bicyclegan"] = benchutil.machine()


@pytest.hookimpl(wrapper=True)
def pytest_benchmark_generate_json(config, benchmarks, include_data, machine_info, commit_info):
    # A case interrupted before its first round (gpu_check.sh's SIGINT at a step's time limit) has
    # no timings, and pytest-benchmark would fail on it while writing the JSON, losing every finished
    # case: drop it (from the session's own list, so the summary table skips it too).
    benchmarks[:] = [bench for bench in benchmarks if bench]
    return (yield)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    # A figure's rows are separate tests: only the whole run tells whether each was graph-captured,
    # so the one timing method of each figure is chosen here, before the JSON is written.
    benchutil.settle_timing([bench["extra_info"] for bench in output_json["benchmarks"]])
