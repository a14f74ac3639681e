"""The training-iteration ladder on a GPU, every rung in one run at the reference defaults
(256 px, unet_256 / resnet_256 / basic_256_multi x2): eager fp32 with PyTorch layers (the
baseline), + bf16 autocast, + our Triton kernels, + channels_last, + whole-step CUDA graph.
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
RUNGS = {  # name: (amp, impl, channels_last, graph)
    "eager_fp32_torch": ("off", "ref", False, False),
    "eager_bf16_torch": ("bf16", "ref", False, False),
    "eager_bf16_triton": ("bf16", "triton", False, False),
    "eager_bf16_triton_cl": ("bf16", "triton", True, False),
    "graph_bf16_triton": ("bf16", "triton", False, True),
}


@pytest.mark.parametrize("batch", [2, 16])
@pytest.mark.parametrize("rung", list(RUNGS))
def test_train_step(benchmark, rung, batch):
    amp, impl, cl, graph = RUNGS[rung]
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(impl=impl, channels_last=cl), batch_size=batch, amp=amp, cuda_graph=graph)
    model = BicycleGAN(cfg, device="cuda")
    data = {k: torch.rand(batch, 3, 256, 256, device="cuda") * 2 - 1 for k in ("A", "B")}
    step = GraphedTrainStep(model, data) if graph else model.train_step
    def timed():
        step(data)
        torch.cuda.synchronize()  # a whole iteration is milliseconds: host timing with a sync is exact enough

    benchmark.extra_info.update(rung=rung, batch=batch, amp=amp, impl=impl, channels_last=cl, cuda_graph=graph,
                                device=torch.cuda.get_device_name(), torch=torch.__version__, size="256x256")
    benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=3)
