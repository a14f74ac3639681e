"""The training-iteration ladder on a GPU, every rung in one run at the reference defaults
(256 px, unet_256 / resnet_256 / basic_256_multi x2): eager fp32 with PyTorch layers (the
baseline), + bf16 autocast, + our Triton kernels, + channels_last, + whole-step CUDA graph, and
torch.compile of every network (our kernels inside as custom ops) with and without the graph.
The compile rungs spend their first (warm-up) steps compiling: select them with -k compile.
Timed with CUDA events around each iteration after warm-up; the median is extra_info["ms"]. Each rung records the
device memory its step needs at its peak, peak_memory_mib (model, optimiser state and activations; not cuDNN's
algorithm search): an eager rung's peak allocated over its steps, a graph rung's replays' peak plus the activations its
graph's private pool keeps (benchutil.step_memory; docs/performance.md, "Memory of a training step", says what each
memory field means).

Tracked figures (benchutil): train_step_b<batch>, ours = the CUDA-graph rung, gated against eager
fp32; every other rung is a row of it, the compile rungs included when they run.

Skips without CUDA, unless BENCH_DRY_RUN=1 (a CPU dry run: 32 px networks of width 4, one round,
every rung with the PyTorch layers and without a CUDA graph, torch.compile with the aot_eager
backend: the ladder's code runs, the kernels are tests/'s business).
Run: pytest bench/bench_train_step.py --benchmark-json=out.json (BENCH_ROUNDS, BENCH_BATCHES)
"""
import os
import statistics

import benchutil
import pytest
import torch
from benchutil import DEVICE, DRY

from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig
from bicyclegan.engine.graph import GraphedTrainStep

pytestmark = pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
BATCHES = [int(b) for b in os.environ.get("BENCH_BATCHES", "2,16").split(",")]
RUNGS = {  # name: (amp, impl, channels_last, graph, compile)
    # the baseline and ours first: a step limit that cuts the ladder short cuts the rungs between
    "eager_fp32_torch": ("off", "ref", False, False, "off"),
    "graph_bf16_triton": ("bf16", "triton", False, True, "off"),
    # channels_last inside the graph: the H200 profile gave cuDNN's NCHW/NHWC transposes 25 % of the
    # NCHW graphed step's GPU time; in eager, channels_last lost to its host overhead, which the graph removes
    "graph_bf16_triton_cl": ("bf16", "triton", True, True, "off"),
    # the graph with torch's layers: what our kernels add inside the graph, where launches cost nothing
    # (in eager, bf16 with them took 108.6 ms against 50.0 without, batch 2 on the H200: host-bound)
    "graph_bf16_torch": ("bf16", "ref", False, True, "off"),
    "eager_bf16_torch": ("bf16", "ref", False, False, "off"),
    "eager_bf16_triton": ("bf16", "triton", False, False, "off"),
    "eager_bf16_triton_cl": ("bf16", "triton", True, False, "off"),
    "compile_bf16_triton": ("bf16", "triton", False, False, "default"),
    "compile_graph_bf16_triton": ("bf16", "triton", False, True, "default"),
}
OURS, GATE = "graph_bf16_triton", "eager_fp32_torch"
SIZE = 32 if DRY else 256
# The reference defaults; a dry run's small networks at 32 px.
MODEL = (dict(netG="unet", netE="resnet_128", netD="basic_128_multi", netD2="basic_128_multi", crop_size=SIZE,
              ngf=4, nef=4, ndf=4) if DRY else {})


def build(rung, batch):
    """(model, step function, batch) for one rung: the function runs one training iteration. Warmed
    up first: WARMUP eager iterations run cuDNN's algorithm search (whose trial workspaces would
    otherwise be the peak memory) and Triton's and inductor's compiles; the peak-memory counter
    starts after them. A graph rung's construction (warm-up and capture) then has a peak of its own, which
    test_train_step records apart (graph_build_peak_mib): its warm-up clones every state tensor, weights and
    both Adam moments (~0.7 GiB at the reference's sizes) for a moment."""
    torch.backends.cudnn.benchmark = True  # as the trainer sets it (static shapes), for every rung
    amp, impl, cl, graph, compile_mode = RUNGS[rung]
    if DRY:  # no CUDA graph on the CPU, inductor takes minutes there and so would Triton's interpreter
        impl, graph, compile_mode = "ref", False, "aot_eager" if compile_mode != "off" else "off"
    cfg = TrainConfig(model=ModelConfig(impl=impl, channels_last=cl, **MODEL), batch_size=batch, amp=amp,
                      cuda_graph=graph, compile=compile_mode)
    model = BicycleGAN(cfg, device=DEVICE)
    data = {k: torch.rand(batch, 3, SIZE, SIZE, device=DEVICE) * 2 - 1 for k in ("A", "B")}
    if impl == "triton" and compile_mode == "off":  # (a compiled step's first call compiles: not checked)
        benchutil.check_runs_triton(lambda: model.train_step(data), f"training step, rung {rung}")
    for _ in range(0 if DRY else WARMUP):
        model.train_step(data)
    benchutil.reset_peak_memory()
    return model, (GraphedTrainStep(model, data) if graph else model.train_step), data


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("rung", list(RUNGS))
def test_train_step(benchmark, rung, batch):
    torch.manual_seed(0)
    model, step, data = build(rung, batch)

    run, times = benchutil.round_timer(lambda: step(data))  # CUDA events on a GPU
    cfg = model.cfg  # as built: a dry run changes some rungs' settings
    graph = cfg.cuda_graph and DEVICE == "cuda"
    # The construction's peak (the warm-up's state copies, a moment) apart: quoted as the step's, it made the graph
    # look ~0.7 GiB dearer than eager. The step's own is step_memory's, after the replays.
    build_peak = benchutil.peak_memory_mib() if graph else None
    benchutil.reset_peak_memory()
    benchmark.extra_info.update(rung=rung, batch=batch, amp=cfg.amp, impl=cfg.model.impl,
                                channels_last=cfg.model.channels_last, cuda_graph=graph,
                                compile=cfg.compile, device=benchutil.device_name(), torch=torch.__version__,
                                size=f"{SIZE}x{SIZE}", dry_run=DRY)
    for _ in range(2 if graph else 0):  # the first replays upload the graph
        run()
    times.clear()
    benchmark.pedantic(run, rounds=1 if DRY else ROUNDS)
    benchutil.tag(benchmark, f"train_step_b{batch}", "ours" if rung == OURS else rung, statistics.median(times),
                  **benchutil.step_memory(step.graph if graph else None), graph_build_peak_mib=build_peak)
    if rung == OURS:
        benchmark.extra_info.update(gate=GATE, headline=True, what=(
            f"training iteration, {SIZE} px, batch {batch}: CUDA graph + bf16 + Triton kernels"))
