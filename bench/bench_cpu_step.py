"""One training iteration (variant bicycle, batch 2) in eager PyTorch on the CPU: ours against
  reference_order  the reference's iteration written out in plain PyTorch on the same networks
                   (separate backward calls, requires_grad toggling, E then G, then D, then D2),
  authors          junyanz/BicycleGAN itself, where BICYCLEGAN_REFERENCE points at a checkout of it
                   (models/ is all that is imported; the project does not ship it).
All rows run in one process, interleaved round by round (benchutil.race), after a warm-up round.

The default, 128 px (unet_128 / resnet_128 / basic_128_multi x2, ngf = nef = ndf = 32), is the
tracked CPU figure of `make bench` (a round is a fraction of a second on 2 cores);
BENCH_STEP_SIZE=256 runs the reference defaults (unet_256 / resnet_256 / basic_256_multi x2, width 64).
BENCH_STEP_WIDTH sets ngf = nef = ndf, BENCH_THREADS torch's threads (default 1), BENCH_ROUNDS the
rounds (default 7).

test_cpu_demo_step times `make demo`'s own iteration (the demo preset, batch 112) as the trainer runs
it, against the same with NCHW upconvolutions (nchw_upconv) and with the whole model channels-last
(channels_last_model).
Run: pytest bench/bench_cpu_step.py --benchmark-json=out.json
"""
import os
import sys
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from benchutil import race

from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig

REF = os.environ.get("BICYCLEGAN_REFERENCE")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
SIZE = int(os.environ.get("BENCH_STEP_SIZE", "128"))
WIDTH = int(os.environ.get("BENCH_STEP_WIDTH", "32" if SIZE == 128 else "64"))  # ngf = nef = ndf
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
NETS = {128: ("unet_128", "resnet_128", "basic_128_multi"), 256: ("unet_256", "resnet_256", "basic_256_multi")}
if SIZE not in NETS:
    raise ValueError(f"BENCH_STEP_SIZE={SIZE}: the reference's networks exist for 128 or 256 px")
NET_G, NET_E, NET_D = NETS[SIZE]
BATCH = 2


def _data():
    g = torch.Generator().manual_seed(0)
    return {k: torch.rand(BATCH, 3, SIZE, SIZE, generator=g) * 2 - 1 for k in ("A", "B")}


def _ours():
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(impl="ref", netG=NET_G, netE=NET_E, netD=NET_D, netD2=NET_D,
                                        crop_size=SIZE, ngf=WIDTH, nef=WIDTH, ndf=WIDTH), batch_size=BATCH)
    return BicycleGAN(cfg, device="cpu")


def _lsgan(preds, real):
    return sum(F.mse_loss(p, torch.full_like(p, float(real))) for p in preds)


def reference_order_step(model, data):
    """The reference's optimize_parameters (bicycle, lsgan, unconditional D) in plain PyTorch."""
    cfg, G, E, D, D2, opt = model.cfg, model.G, model.E, model.D, model.D2, model.optimizers
    k = BATCH // 2
    A1, B1, B2 = data["A"][:k], data["B"][:k], data["B"][k:]
    mu, logvar = E(B1)
    z_enc = torch.randn_like(mu).mul(logvar.mul(0.5).exp()).add(mu)
    z_rand = torch.randn(k, cfg.model.nz)
    fake_enc, fake_rand = G(A1, z_enc), G(A1, z_rand)
    mu2 = E(fake_rand)[0]
    for p in [*D.parameters(), *D2.parameters()]:
        p.requires_grad_(False)
    opt["E"].zero_grad()
    opt["G"].zero_grad()
    loss = (_lsgan(D(fake_enc), True) * cfg.lambda_GAN + _lsgan(D2(fake_rand), True) * cfg.lambda_GAN2
            + (fake_enc - B1).abs().mean() * cfg.lambda_L1
            + torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * (-0.5 * cfg.lambda_kl))
    loss.backward(retain_graph=True)
    for p in E.parameters():
        p.requires_grad_(False)
    ((mu2 - z_rand).abs().mean() * cfg.lambda_z).backward()
    for p in [*E.parameters(), *D.parameters(), *D2.parameters()]:
        p.requires_grad_(True)
    opt["E"].step()
    opt["G"].step()
    for net, real, fake in ((D, B1, fake_enc), (D2, B2, fake_rand)):
        name = "D" if net is D else "D2"
        opt[name].zero_grad()
        (_lsgan(net(fake.detach()), False) + _lsgan(net(real), True)).backward()
        opt[name].step()


def _authors_step(data):
    sys.path.insert(0, REF)
    from models.bicycle_gan_model import BiCycleGANModel
    opt = SimpleNamespace(
        isTrain=True, gpu_ids=[], checkpoints_dir="/tmp", name="bench", preprocess="resize_and_crop",
        batch_size=BATCH, input_nc=3, output_nc=3, nz=8, ngf=WIDTH, nef=WIDTH, ndf=WIDTH, netG=NET_G,
        netE=NET_E, netD=NET_D, netD2=NET_D, num_Ds=2, norm="instance", nl="relu", upsample="basic",
        where_add="all", use_dropout=False, conditional_D=False, use_same_D=False, init_type="xavier",
        init_gain=0.02, gan_mode="lsgan", lr=2e-4, beta1=0.5, lambda_L1=10.0, lambda_GAN=1.0,
        lambda_GAN2=1.0, lambda_z=0.5, lambda_kl=0.01, direction="AtoB", no_encode=False, verbose=False)
    torch.manual_seed(0)
    model = BiCycleGANModel(opt)
    model.set_input({"A": data["A"], "B": data["B"], "A_paths": [], "B_paths": []})
    return model.optimize_parameters


def test_cpu_step(benchmark):
    torch.set_num_threads(THREADS)
    data = _data()
    ours, baseline = _ours(), _ours()
    rows = {"ours": lambda: ours.train_step(data), "reference_order": lambda: reference_order_step(baseline, data)}
    if REF:
        rows["authors"] = _authors_step(data)
    ms = race(benchmark, rows, rounds=ROUNDS)
    benchmark.extra_info.update(
        # tolerance: over 5 runs on the shared 2-core machine the gated ratio moved by up to 10% between
        # consecutive runs (docs/performance.md, "Noise")
        figure=f"cpu_step_{SIZE}px_b{BATCH}", gate="reference_order", headline=True, tolerance=0.15,
        what=f"training iteration, {SIZE} px, batch {BATCH}, width {WIDTH}, {NET_G}/{NET_E}/{NET_D} x2, eager fp32, "
             f"CPU, {THREADS} thread(s)",
        threads=torch.get_num_threads(), torch=torch.__version__, reference=bool(REF))
    print({k: round(v, 1) for k, v in ms.items()})



def test_cpu_demo_step(benchmark):
    """The demo's training iteration (its preset: 32 px, bilinear upsampling, batch 112), ours against the same
    model with its bilinear upconvs run in NCHW as given (networks.BilinearUpConv turns a CPU input to
    channels_last for the upsampling, padding and 3x3 conv, and back), and the whole model in channels_last
    (--channels_last: no conversion per upconv, every other layer in that layout too)."""
    from bicyclegan.engine import make_config
    from bicyclegan.engine.networks import BilinearUpConv
    torch.set_num_threads(THREADS)
    cfg = make_config("demo", impl="ref")

    def model(c=cfg):
        torch.manual_seed(0)
        return BicycleGAN(c, device="cpu")
    ours, nchw, cl = model(), model(), model(make_config("demo", impl="ref", channels_last=True))
    for m in nchw.modules():
        if isinstance(m, BilinearUpConv):
            m.forward = lambda x, m=m: torch.nn.Sequential.forward(m, x)  # the children in the input's layout
    g = torch.Generator().manual_seed(0)
    data = {k: torch.rand(cfg.batch_size, 3, 32, 32, generator=g) * 2 - 1 for k in ("A", "B")}
    rows = {"nchw_upconv": lambda: nchw.train_step(data), "channels_last_model": lambda: cl.train_step(data),
            "ours": lambda: ours.train_step(data)}
    ms = race(benchmark, rows, rounds=ROUNDS)
    benchmark.extra_info.update(
        figure=f"cpu_demo_step_32px_b{cfg.batch_size}", gate="nchw_upconv", tolerance=0.15,
        what=f"the demo's training iteration, 32 px, batch {cfg.batch_size}, bilinear upsampling, eager fp32, CPU, "
             f"{THREADS} thread(s)", threads=torch.get_num_threads(), torch=torch.__version__)
    print({k: round(v, 1) for k, v in ms.items()})
