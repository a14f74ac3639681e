"""One training iteration at the reference defaults (256 px, batch 2, unet_256 / resnet_256 /
basic_256_multi x2) in eager PyTorch on the CPU: ours (impl="ref") against the authors' code.

The authors' repository is not part of this project: point BICYCLEGAN_REFERENCE at a checkout of
junyanz/BicycleGAN (models/ is all that is imported) to measure it in the same run; without it only
our step is timed. Run: pytest bench/bench_cpu_step.py --benchmark-json=out.json
"""
import os
import sys
from types import SimpleNamespace

import pytest
import torch

from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig

REF = os.environ.get("BICYCLEGAN_REFERENCE")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(2, 3, 256, 256, generator=g) * 2 - 1,
            "B": torch.rand(2, 3, 256, 256, generator=g) * 2 - 1}


def _run(benchmark, step, extra):
    step()  # warm-up: allocator and first-call overheads
    benchmark.extra_info.update(extra, threads=torch.get_num_threads(), torch=torch.__version__)
    benchmark.pedantic(step, rounds=ROUNDS, iterations=1)


def test_ours_eager_cpu(benchmark):
    torch.manual_seed(0)
    model = BicycleGAN(TrainConfig(model=ModelConfig(impl="ref")), device="cpu")
    data = _data()
    _run(benchmark, lambda: model.train_step(data), {"impl": "bicyclegan (ref kernels)"})


@pytest.mark.skipif(not REF, reason="set BICYCLEGAN_REFERENCE to a junyanz/BicycleGAN checkout")
def test_reference_eager_cpu(benchmark):
    sys.path.insert(0, REF)
    from models.bicycle_gan_model import BiCycleGANModel
    opt = SimpleNamespace(
        isTrain=True, gpu_ids=[], checkpoints_dir="/tmp", name="bench", preprocess="resize_and_crop",
        batch_size=2, input_nc=3, output_nc=3, nz=8, ngf=64, nef=64, ndf=64, netG="unet_256",
        netE="resnet_256", netD="basic_256_multi", netD2="basic_256_multi", num_Ds=2, norm="instance",
        nl="relu", upsample="basic", where_add="all", use_dropout=False, conditional_D=False,
        use_same_D=False, init_type="xavier", init_gain=0.02, gan_mode="lsgan", lr=2e-4, beta1=0.5,
        lambda_L1=10.0, lambda_GAN=1.0, lambda_GAN2=1.0, lambda_z=0.5, lambda_kl=0.01,
        direction="AtoB", no_encode=False, verbose=False)
    torch.manual_seed(0)
    model = BiCycleGANModel(opt)
    data = _data()
    model.set_input({"A": data["A"], "B": data["B"], "A_paths": [], "B_paths": []})
    _run(benchmark, model.optimize_parameters, {"impl": "junyanz/BicycleGAN"})
