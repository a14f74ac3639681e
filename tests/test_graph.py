"""The CUDA-graph training step (engine/graph.py): refusals on CPU, behaviour on a GPU."""
import pytest
import torch

from bicyclegan.engine import BicycleGAN, ConfigError, ModelConfig, TrainConfig
from bicyclegan.engine.graph import GraphedTrainStep

TINY = dict(netG="unet", crop_size=32, ngf=8, nef=8, ndf=8, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi")


def cfg(**kw):
    return TrainConfig(model=ModelConfig(**TINY, impl=kw.pop("impl", "auto")), batch_size=4, load_size=32,
                       cuda_graph=True, **kw)


def data(device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(4, 3, 32, 32, generator=g) * 2 - 1).to(device) for k in ("A", "B")}


def test_refuses_cpu_and_fp16():
    with pytest.raises(RuntimeError, match="CUDA device"):
        GraphedTrainStep(BicycleGAN(cfg(impl="ref")), data())
    with pytest.raises(ConfigError, match="cuda_graph"):
        cfg(amp="fp16")


def _run(seed, steps, amp="off"):
    torch.manual_seed(seed)
    model = BicycleGAN(cfg(amp=amp), device="cuda")
    before = [p.detach().clone() for p in model.G.parameters()]
    batch = data("cuda")
    step = GraphedTrainStep(model, batch)
    after_capture = [p.detach().clone() for p in model.G.parameters()]
    losses = [step(batch) for _ in range(steps)]
    torch.cuda.synchronize()
    return model, before, after_capture, losses


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_graphed_training_learns_and_is_deterministic(amp):
    model, before, after_capture, losses = _run(0, 40, amp)
    for a, b in zip(before, after_capture):  # warm-up iterations were undone
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for step in losses for v in step.values())
    assert set(losses[0]) == {"G_GAN", "G_GAN2", "G_L1", "kl", "z_L1", "D", "D2"}
    assert losses[-1]["G_L1"] < losses[0]["G_L1"]  # replays really update the weights
    _, _, _, again = _run(0, 40, amp)
    torch.testing.assert_close(losses[-1]["G_L1"], again[-1]["G_L1"])


@pytest.mark.gpu
def test_graphed_lr_follows_the_schedule():
    model, _, _, _ = _run(0, 1)
    group = model.optimizers["G"].param_groups[0]
    assert isinstance(group["lr"], torch.Tensor) and group["lr"].is_cuda
