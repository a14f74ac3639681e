"""InstanceNorm + LeakyReLU(0.2) on the GPU at the norm shapes of the 256 px BicycleGAN networks:
ours (InstanceNormAct2d, Triton) vs eager nn.InstanceNorm2d + nn.LeakyReLU vs torch.compile of
that pair; forward (no grad) and forward + backward (dx); bf16 and fp32; NCHW and channels_last;
batch 2 and 16. Also measures x.clone() on the same tensor, so each result carries its effective
bandwidth as a percentage of the device's copy bandwidth.

Timing (benchutil.measure): after warm-up (which includes Triton's and torch.compile's compilation)
INNER back-to-back calls of each case's step are captured in one CUDA graph and CUDA events time
one replay of it a round, a GPU sleep queued first so that the replay's launch is not timed
(per-call time = elapsed / INNER): the device's work, not Python's launches, which at these sizes
took most of an eager call. The eager calls are timed too (extra_info["eager_call_ms"]). Where any
row of a figure cannot be captured, every row of it is quoted from its eager calls
(extra_info["timing"], "capture_errors"; benchutil.settle_timing). The median over rounds is the
number to quote (extra_info["ms"]; "median_ms" is the row's own, before that choice).
pytest-benchmark's own statistics time the same synchronised rounds on the host clock.
Effective bytes: forward reads x and writes y (2 tensors); forward +
backward adds reading dy and the saved tensor and writing dx (5 tensors in all).

Each case is a row of a tracked figure (benchutil): ours against eager (the gate) and compile;
bf16 NCHW forward + backward at the largest batch is a headline figure. Four more cases time forward
+ backward with dy a channel slice of a twice-as-wide gradient, as the U-Net decoder's norms get it
(their output is the first half of a torch.cat): ours (which reads dy in place) against eager, at the
first shape, the largest batch, bf16, both layouts; the dense-dy fwd_bwd case of the same shape is
the figure to compare with.

Skips without CUDA, unless BENCH_DRY_RUN=1 (a CPU dry run: one tiny shape, Triton in the
interpreter, torch.compile with the aot_eager backend). Runs:
  pytest bench/bench_norm_act.py --benchmark-json=$OUT/norm_act.json   (add -k "not compile" to skip
      torch.compile, which is most of the run time: every case compiles afresh)
  BENCH_OUT=summary.json python bench/bench_norm_act.py                 (no pytest-benchmark needed)
With BENCH_OUT set, the pytest run also writes the same JSON summary there. BENCH_ROUNDS,
BENCH_WARMUP and BENCH_INNER override the round counts; BENCH_NORM_ACT_QUICK=1 keeps two shapes
and runs the torch.compile baseline at batch 16 only.
"""
import itertools
import json
import os
import sys

import benchutil
import pytest
import torch
import torch.nn as nn
from benchutil import DEVICE, DRY

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
INNER = int(os.environ.get("BENCH_INNER", "10"))
QUICK = os.environ.get("BENCH_NORM_ACT_QUICK", "0") == "1"

# (C, H, W) after the normalised convs: G's U-Net encoder/decoder levels (64 @ 128^2 is the
# decoder's last normed level, 512 @ 2^2 its innermost), E's first residual block, D's layers.
SHAPES = [(64, 128, 128), (128, 64, 64), (256, 32, 32), (512, 16, 16), (512, 4, 4)]
if QUICK:
    SHAPES = [(64, 128, 128), (512, 16, 16)]
BATCHES = [2, 16]
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
MODES = {"fwd": 2, "fwd_bwd": 5}  # mode -> activation-sized tensors read or written
SLICED = "fwd_bwd_sliced_dy"  # fwd_bwd with dy a channel slice (5 tensors too)
if DRY:  # the code paths, not the kernels (tests/ checks those): one small case per mode and format
    SHAPES, BATCHES, DTYPES = [(8, 8, 8)], [2], {"bf16": torch.bfloat16}
SLICED_CASE = (SHAPES[0], BATCHES[-1], "bf16")  # shape, batch, dtype of the sliced-dy cases
VARIANTS = ["ours", "eager", "compile"]
SLOPE = 0.2

pytestmark = pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)
RESULTS = []


def _env():
    return {**benchutil.machine(), "rounds": ROUNDS, "warmup": WARMUP, "inner": INNER}


def _measure(step, benchmark=None):
    return benchutil.measure(step, INNER, ROUNDS, WARMUP, benchmark)


def _input(batch, shape, dtype, fmt):
    return torch.randn(batch, *shape, device=DEVICE).to(dtype).contiguous(memory_format=FORMATS[fmt])


def _layer(variant, channels):
    if variant == "ours":
        from bicyclegan.kernels import InstanceNormAct2d
        return InstanceNormAct2d(channels, act="leaky_relu", slope=SLOPE, impl="triton").to(DEVICE)
    layer = nn.Sequential(nn.InstanceNorm2d(channels), nn.LeakyReLU(SLOPE, inplace=True)).to(DEVICE)
    if variant == "compile":
        torch._dynamo.reset()  # a fresh, static-shape compile for every case
        layer = torch.compile(layer, dynamic=False, backend="aot_eager" if DRY else "inductor")
    return layer


def _step(layer, x, mode):
    if mode == "fwd":
        def step():
            with torch.no_grad():
                layer(x)
        return step
    x = x.detach().requires_grad_()
    if mode == SLICED:  # the first C channels of a 2C-channel gradient, in x's layout
        N, C, H, W = x.shape
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        dy = torch.randn(N, 2 * C, H, W, device=x.device, dtype=x.dtype).contiguous(memory_format=fmt)[:, :C]
    else:
        dy = torch.randn_like(x)

    def step():
        torch.autograd.grad(layer(x), x, dy)
    return step


def _tiling(x):
    try:
        from bicyclegan.kernels.norm_act_triton import _config, _layout
        x, fmt, _ = _layout(x)
        cfg = _config(x, fmt == torch.channels_last, variant="leaky_relu")  # the forward's
        return {k: cfg[k] for k in ("BLOCK_C", "BLOCK_HW", "split", "num_warps", "single")}
    except Exception as e:  # informational only
        return {"error": repr(e)}


def run_case(variant, mode, shape, batch, dtype, fmt, benchmark=None):
    """Time one case; returns (and records) its summary row."""
    torch.manual_seed(0)
    x = _input(batch, shape, DTYPES[dtype], fmt)
    layer = _layer(variant, shape[0])
    step = _step(layer, x, mode)
    calls = benchutil.check_runs_triton(step, f"norm_act {mode} {[batch, *shape]} {dtype} {fmt}") \
        if variant == "ours" else None
    info = _measure(step, benchmark)
    # the copy timed as this row is quoted (replays or calls), where it could be
    copies = benchutil.copy_rates(x, ("norm_act", batch, shape, dtype, fmt), INNER, ROUNDS, WARMUP)
    figure = f"norm_act_{mode}_{'x'.join(map(str, [batch, *shape]))}_{dtype}_{fmt}"
    row = benchutil.bandwidth(dict(
        _env(), figure=figure, row=variant, variant=variant, mode=mode, shape=[batch, *shape], dtype=dtype,
        memory_format=fmt, act="leaky_relu", slope=SLOPE, affine=False, **info,
        effective_bytes=MODES.get(mode, 5) * x.numel() * x.element_size(), copy_gbps_by_timing=copies))
    if variant == "ours":
        row["tiling"], row["triton_calls"] = _tiling(x), calls
    RESULTS.append(row)
    return row


def _write_summary(path):
    with open(path, "w") as f:
        json.dump({"env": _env() if benchutil.RUNNABLE else {}, "results": benchutil.settle_timing(RESULTS)},
                  f, indent=1)


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    if os.environ.get("BENCH_OUT") and RESULTS:
        _write_summary(os.environ["BENCH_OUT"])


@pytest.fixture(autouse=True)
def _clean():
    yield
    benchutil.empty_cache()


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("variant", ["ours", "eager"])
def test_norm_act_sliced_dy(benchmark, variant, fmt):
    """Before test_norm_act: its torch.compile cases are the ones a time limit should cut."""
    shape, batch, dtype = SLICED_CASE
    row = run_case(variant, SLICED, shape, batch, dtype, fmt, benchmark)
    benchmark.extra_info.update(row)
    if variant == "ours":
        benchmark.extra_info.update(gate="eager", headline=False, what=(
            f"InstanceNorm+LeakyReLU fwd+bwd, dy a channel slice, {[batch, *shape]}, {dtype} {fmt}"))


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant", VARIANTS)
def test_norm_act(benchmark, variant, mode, shape, batch, dtype, fmt):
    if QUICK and variant == "compile" and batch != BATCHES[-1]:  # each compile case costs seconds of compilation
        pytest.skip("BENCH_NORM_ACT_QUICK: the torch.compile baseline runs at the largest batch only")
    try:
        row = run_case(variant, mode, shape, batch, dtype, fmt, benchmark)
    except Exception as e:
        if variant != "compile":
            raise
        pytest.skip(f"torch.compile baseline unavailable here: {e!r}"[:500])
    benchmark.extra_info.update(row)  # figure, row and ms among them
    headline = mode == "fwd_bwd" and dtype == "bf16" and fmt == "nchw" and batch == BATCHES[-1]
    if variant == "ours":
        benchmark.extra_info.update(gate="eager", headline=headline, what=(
            f"InstanceNorm+LeakyReLU {mode.replace('_', '+')}, {[batch, *shape]}, {dtype} {fmt}"))


def main():
    out = os.environ.get("BENCH_OUT")
    if not benchutil.RUNNABLE:
        print("bench_norm_act: no CUDA device; nothing measured")
        if out:
            _write_summary(out)
        return 0
    sliced = [(variant, SLICED, SLICED_CASE[0], SLICED_CASE[1], SLICED_CASE[2], fmt)
              for variant in ("ours", "eager") for fmt in FORMATS]
    for variant, mode, shape, batch, dtype, fmt in sliced + list(itertools.product(
            VARIANTS, MODES, SHAPES, BATCHES, DTYPES, FORMATS)):
        try:
            row = run_case(variant, mode, shape, batch, dtype, fmt)
            print(f"{variant:8s} {mode:8s} {str(row['shape']):22s} {dtype:5s} {fmt:14s} "
                  f"{row['median_ms'] * 1e3:9.1f} us {row['gbps']:8.1f} GB/s {row['pct_of_copy']:6.1f}% of copy "
                  f"({row['timing']})")
        except Exception as e:
            RESULTS.append({"variant": variant, "mode": mode, "shape": [batch, *shape], "dtype": dtype,
                            "memory_format": fmt, "error": repr(e)[:500]})
            print(f"{variant} {mode} {[batch, *shape]} {dtype} {fmt}: FAILED {e!r}", file=sys.stderr)
        benchutil.empty_cache()
    if out:
        _write_summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
