"""z injection on the GPU: the full-size generator (unet_256, ngf 64, 256 px) forward + backward
under bf16 autocast, with z injected by the plain reference (torch.cat then conv), the fused
act+tile+concat kernel, or the concatenation-free path; plus what injecting z at every encoder
block (where_add=all) costs over injecting it at the input only (target: under 5%), and the
single layer at the first inner level.

Only the ZConcatConv2d layers change between variants; every other layer runs its reference.
Timing: CUDA events around each step (the medians in extra_info are the numbers to quote), after
warm-up; pytest-benchmark's own statistics time the same synchronised steps on the host clock.
Skips without CUDA. Run: pytest bench/bench_zinject.py --benchmark-json=$OUT/zinject.json
(BENCH_ROUNDS, BENCH_WARMUP override the round counts).
"""
import os
import statistics

import pytest
import torch

from bicyclegan.kernels import ZConcatConv2d

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "5"))
SIZE = 256
VARIANTS = {  # name -> (impl, mode) of every ZConcatConv2d
    "ref": ("ref", "concat_free"),
    "fused_concat": ("triton", "fused_concat"),
    "concat_free": ("triton", "concat_free"),
}
TARGET_OVERHEAD_PCT = 5.0


def _env():
    import triton
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "triton": triton.__version__, "autocast": "bfloat16", "rounds": ROUNDS, "warmup": WARMUP}


def _use(net, variant):
    impl, mode = VARIANTS[variant]
    for m in net.modules():
        if isinstance(m, ZConcatConv2d):
            m.impl, m.mode = impl, mode
    return net


def _generator(where_add, variant):
    from bicyclegan.engine import ModelConfig, build_generator
    with torch.device("cuda"):
        return _use(build_generator(ModelConfig(netG="unet_256", ngf=64, nz=8, where_add=where_add,
                                                impl="ref")), variant)


def _generator_step(G, batch):
    A = torch.rand(batch, 3, SIZE, SIZE, device="cuda") * 2 - 1
    z = torch.randn(batch, 8, device="cuda", requires_grad=True)  # encoded z: needs its gradient
    grad = torch.randn(batch, 3, SIZE, SIZE, device="cuda")

    def step():
        G.zero_grad(set_to_none=True)
        z.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = G(A, z)
        y.backward(grad.to(y.dtype))
    return step


def _timed(step):
    """(synchronised step for pytest-benchmark, list of CUDA-event milliseconds per round)."""
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run():
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return run, times


def _median_ms(step, rounds=ROUNDS, warmup=WARMUP):
    run, times = _timed(step)
    for _ in range(warmup):
        run()
    times.clear()
    for _ in range(rounds):
        run()
    return statistics.median(times)


def _bench(benchmark, step, info):
    run, times = _timed(step)
    for _ in range(WARMUP):  # includes Triton's compilation and cuDNN's algorithm search
        run()
    times.clear()
    torch.cuda.reset_peak_memory_stats()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(_env(), **info, cuda_median_ms=statistics.median(times),
                                cuda_min_ms=min(times),
                                peak_memory_mib=torch.cuda.max_memory_allocated() / 2 ** 20)


@pytest.fixture(autouse=True)
def _clean():
    torch.manual_seed(0)
    yield
    torch.cuda.empty_cache()


@pytest.mark.parametrize("batch", [2, 16])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_generator_fwd_bwd(benchmark, variant, batch):
    G = _generator("all", variant)
    _bench(benchmark, _generator_step(G, batch),
           {"what": "G forward+backward", "variant": variant, "where_add": "all", "batch": batch,
            "input_shape": [batch, 3, SIZE, SIZE], "nz": 8, "ngf": 64, "dtype": "float32 params, bf16 autocast",
            "params": sum(p.numel() for p in G.parameters())})


@pytest.mark.parametrize("batch", [2, 16])
@pytest.mark.parametrize("variant", ["ref", "concat_free"])
def test_all_over_input_cost(benchmark, variant, batch):
    """Extra time of where_add=all over where_add=input, same variant (benchmarked: the `all` G)."""
    G_input = _generator("input", variant)
    t_input = _median_ms(_generator_step(G_input, batch))
    del G_input
    torch.cuda.empty_cache()
    G_all = _generator("all", variant)
    _bench(benchmark, _generator_step(G_all, batch),
           {"what": "G forward+backward, where_add all vs input", "variant": variant, "batch": batch,
            "input_shape": [batch, 3, SIZE, SIZE], "nz": 8, "ngf": 64, "input_median_ms": t_input})
    t_all = benchmark.extra_info["cuda_median_ms"]
    overhead = 100.0 * (t_all / t_input - 1.0)
    benchmark.extra_info.update(overhead_pct=overhead, target_pct=TARGET_OVERHEAD_PCT,
                                meets_target=overhead < TARGET_OVERHEAD_PCT)


@pytest.mark.parametrize("batch", [2, 16])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_layer_fwd_bwd(benchmark, variant, batch):
    """The first inner encoder block's layer: x (batch, 64, 128, 128), nz 8 -> 128 channels."""
    layer = _use(ZConcatConv2d(64, 8, 128, impl="ref").cuda(), variant)
    x = torch.randn(batch, 64, 128, 128, device="cuda", requires_grad=True)
    z = torch.randn(batch, 8, device="cuda", requires_grad=True)
    grad = torch.randn(batch, 128, 64, 64, device="cuda", dtype=torch.bfloat16)

    def step():
        x.grad = z.grad = None
        layer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = layer(x, z)
        y.backward(grad)
    _bench(benchmark, step, {"what": "ZConcatConv2d forward+backward", "variant": variant, "batch": batch,
                             "x_shape": list(x.shape), "nz": 8, "out_channels": 128,
                             "dtype": "float32 in, bf16 autocast"})
