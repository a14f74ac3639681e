"""The device's copy bandwidth: y.copy_(x) of a 1 GiB fp32 tensor (far beyond L2), timed with CUDA
events around graph replays as the kernel benchmarks time theirs (benchutil.measure; at this size a
call is device-bound anyway: eager_call_ms agrees), median over rounds, counting bytes read plus
bytes written. It is the roofline of the
memory-bound kernels (InstanceNorm + activation, z injection): bench_norm_act.py reports each
case's effective bandwidth, which this bounds. extra_info["gbps"] is the number to quote.

Skips without CUDA, unless BENCH_DRY_RUN=1 (a 256 KiB copy on the CPU).
Run: pytest bench/bench_copy.py --benchmark-json=out.json (BENCH_ROUNDS, BENCH_WARMUP, BENCH_INNER)
"""
import os

import benchutil
import pytest
import torch
from benchutil import DEVICE, DRY

pytestmark = pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
INNER = int(os.environ.get("BENCH_INNER", "10"))
NUMEL = 2 ** 16 if DRY else 2 ** 28


def test_copy_bandwidth(benchmark):
    x = torch.randn(NUMEL, device=DEVICE)  # random, not zeros: as the kernels' inputs
    y = torch.empty_like(x)
    timed = benchutil.measure(lambda: y.copy_(x), INNER, ROUNDS, WARMUP, benchmark)
    assert torch.equal(y, x)
    ms, nbytes = timed["ms"], 2 * x.numel() * x.element_size()
    benchmark.extra_info.update(benchutil.machine(), **timed, what="device copy bandwidth (read + write)",
                                bytes=nbytes, median_ms=ms, gbps=nbytes / ms / 1e6,
                                max_gbps=nbytes / timed["min_ms"] / 1e6)
