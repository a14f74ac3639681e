"""The multi-scale discriminators' downsampling on the GPU: 3 x 3 average pooling, stride 2,
padding 1 not counted, of the 3-channel images (batch 16 and 2, 256 px, and the 128 px of a
third scale), forward + backward (dx) and forward alone, bf16 and fp32, NCHW and channels_last:
ours (kernels.avg_pool2d, Triton) vs torch's F.avg_pool2d (the gate) vs torch.compile of it.

Why: in the profile of the graphed bf16 step on an H200, torch's avg_pool2d backward took 82 us a
call at 16 x 3 x 256 x 256, 7.8 % of the step's GPU time. Timing as bench_norm_act.py
(benchutil.measure: CUDA-graph replays, eager calls beside them); each row carries its effective
bandwidth against x.clone()'s. Effective bytes: forward reads x and writes y (x / 4): 1.25 x;
forward + backward also reads dy and writes dx: 2.5 x.

Skips without CUDA, unless BENCH_DRY_RUN=1 (a CPU dry run: one tiny case, Triton in the
interpreter, torch.compile with the aot_eager backend). Run:
  pytest bench/bench_avg_pool.py --benchmark-json=$OUT/avg_pool.json
(BENCH_ROUNDS, BENCH_WARMUP, BENCH_INNER override the round counts.)
"""
import os

import benchutil
import pytest
import torch
import torch.nn.functional as F
from benchutil import DEVICE, DRY

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
INNER = int(os.environ.get("BENCH_INNER", "10"))
CASES = [(16, 256), (2, 256), (16, 128)]  # (batch, side) of the 3-channel images pooled
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
MODES = {"fwd": 1.25, "fwd_bwd": 2.5}  # mode -> bytes moved, in x's sizes
if DRY:
    CASES, DTYPES = [(2, 16)], {"bf16": torch.bfloat16}
GEOMETRY = dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)

pytestmark = pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)


def _pool(variant):
    if variant == "ours":
        from bicyclegan.kernels import avg_pool2d
        return lambda x: avg_pool2d(x, **GEOMETRY, impl="triton")
    if variant == "eager":
        return lambda x: F.avg_pool2d(x, **GEOMETRY)
    torch._dynamo.reset()  # a fresh, static-shape compile for every case
    return torch.compile(lambda x: F.avg_pool2d(x, **GEOMETRY), dynamic=False,
                         backend="aot_eager" if DRY else "inductor")


def _step(pool, x, mode):
    if mode == "fwd":
        def step():
            with torch.no_grad():
                pool(x)
        return step
    x = x.detach().requires_grad_()
    dy = torch.randn_like(pool(x.detach()))

    def step():
        torch.autograd.grad(pool(x), x, dy)
    return step


@pytest.fixture(autouse=True)
def _clean():
    yield
    benchutil.empty_cache()


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x3x{c[1]}x{c[1]}")
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant", ["ours", "eager", "compile"])
def test_avg_pool(benchmark, variant, mode, case, dtype, fmt):
    batch, side = case
    torch.manual_seed(0)
    x = torch.randn(batch, 3, side, side, device=DEVICE).to(DTYPES[dtype]).contiguous(memory_format=FORMATS[fmt])
    try:
        step = _step(_pool(variant), x, mode)
        calls = benchutil.check_runs_triton(step, f"avg_pool {mode} {tuple(x.shape)} {dtype} {fmt}") \
            if variant == "ours" else None
        info = benchutil.measure(step, INNER, ROUNDS, WARMUP, benchmark)
    except Exception as e:
        if variant != "compile":
            raise
        pytest.skip(f"torch.compile baseline unavailable here: {e!r}"[:500])
    copies = benchutil.copy_rates(x, ("avg_pool", case, dtype, fmt), INNER, ROUNDS, WARMUP)
    figure = f"avg_pool_{mode}_{batch}x3x{side}x{side}_{dtype}_{fmt}"
    benchmark.extra_info.update(**benchutil.machine(), rounds=ROUNDS, warmup=WARMUP, inner=INNER, **info,
                                figure=figure, row=variant, variant=variant, mode=mode,
                                shape=list(x.shape), dtype=dtype, memory_format=fmt,
                                effective_bytes=MODES[mode] * x.numel() * x.element_size(), copy_gbps_by_timing=copies)
    benchutil.bandwidth(benchmark.extra_info)
    if variant == "ours":
        benchmark.extra_info.update(triton_calls=calls, gate="eager", headline=False, what=(
            f"avg pool 3x3/2 (D downsampling) {mode.replace('_', '+')}, {list(x.shape)}, {dtype} {fmt}"))
