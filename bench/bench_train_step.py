"""The training-iteration ladder on a GPU, every rung in one run at the reference defaults
(256 px, unet_256 / resnet_256 / basic_256_multi x2): eager fp32 with PyTorch layers (the
baseline), + bf16 autocast, + our Triton kernels, + channels_last, + whole-step CUDA graph, and
torch.compile of every network (our kernels inside as custom ops) with and without the graph.
The compile rungs spend their first (warm-up) steps compiling: select them with -k compile.
Timed around a device synchronise after warm-up; report medians. Skips without CUDA.
Run: pytest bench/bench_train_step.py --benchmark-json=out.json
"""
import os

import pytest
import torch

from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig
from bicyclegan.engine.graph import GraphedTrainStep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
BATCHES = [int(b) for b in os.environ.get("BENCH_BATCHES", "2,16").split(",")]
RUNGS = {  # name: (amp, impl, channels_last, graph, compile)
    "eager_fp32_torch": ("off", "ref", False, False, "off"),
    "eager_bf16_torch": ("bf16", "ref", False, False, "off"),
    "eager_bf16_triton": ("bf16", "triton", False, False, "off"),
    "eager_bf16_triton_cl": ("bf16", "triton", True, False, "off"),
    "graph_bf16_triton": ("bf16", "triton", False, True, "off"),
    "compile_bf16_triton": ("bf16", "triton", False, False, "default"),
    "compile_graph_bf16_triton": ("bf16", "triton", False, True, "default"),
}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("rung", list(RUNGS))
def test_train_step(benchmark, rung, batch):
    amp, impl, cl, graph, compile_mode = RUNGS[rung]
    torch.backends.cudnn.benchmark = True  # as the trainer sets it (static shapes), for every rung
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(impl=impl, channels_last=cl), batch_size=batch, amp=amp, cuda_graph=graph,
                      compile=compile_mode)
    model = BicycleGAN(cfg, device="cuda")
    data = {k: torch.rand(batch, 3, 256, 256, device="cuda") * 2 - 1 for k in ("A", "B")}
    step = GraphedTrainStep(model, data) if graph else model.train_step
    def timed():
        step(data)
        torch.cuda.synchronize()  # a whole iteration is milliseconds: host timing with a sync is exact enough

    benchmark.extra_info.update(rung=rung, batch=batch, amp=amp, impl=impl, channels_last=cl, cuda_graph=graph,
                                compile=compile_mode, device=torch.cuda.get_device_name(), torch=torch.__version__,
                                size="256x256")
    benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=3)
