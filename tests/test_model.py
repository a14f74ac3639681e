"""Faithfulness of the model and objective to the reference (REFERENCE.md), on CPU."""
import copy

import pytest
import torch
import torch.nn.functional as F

from bicyclegan.engine import BicycleGAN, ConfigError, ModelConfig, TrainConfig
from bicyclegan.engine.losses import gan_loss, kl_loss
from bicyclegan.engine.networks import UnetBlock, build_discriminator, build_encoder, build_generator

SMALL = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
             netD="basic_128_multi", netD2="basic_128_multi", impl="ref")


def small_cfg(variant="bicycle", batch_size=4, model=None, **kw):
    m = ModelConfig(**{**SMALL, **(model or {})})
    return TrainConfig(model=m, variant=variant, batch_size=batch_size, **kw)


def batch(cfg, n=None, dtype=torch.float32):
    h, w = cfg.model.size
    n = n or cfg.batch_size
    return {"A": torch.rand(n, cfg.model.input_nc, h, w, dtype=dtype) * 2 - 1,
            "B": torch.rand(n, cfg.model.output_nc, h, w, dtype=dtype) * 2 - 1}


# ---------------------------------------------------------------------------------------------
# Parameter counts of the official networks (REFERENCE.md table)
# ---------------------------------------------------------------------------------------------
def count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("build,fields,expected", [
    (build_generator, dict(), 54_794_627),
    (build_generator, dict(where_add="input"), 54_417_795),
    (build_generator, dict(netG="unet_128", crop_size=128), 42_145_155),
    (build_encoder, dict(netE="resnet_256"), 2_590_032),
    (build_encoder, dict(netE="conv_256"), 2_760_656),
    (build_encoder, dict(netE="resnet_128"), 1_344_080),
    (build_encoder, dict(netE="conv_128"), 1_711_824),
    (build_discriminator, dict(netD="basic_256_multi", num_Ds=2), 3_458_978),
    (build_discriminator, dict(netD="basic_128_multi", num_Ds=2), 830_626),
])
def test_parameter_counts(build, fields, expected):
    with torch.device("meta"):  # counts only: no memory, no init time
        net = build(ModelConfig(impl="ref", **fields))
    assert count(net) == expected


# ---------------------------------------------------------------------------------------------
# The generator equals a literal transcription of the reference U-Net structure
# ---------------------------------------------------------------------------------------------
def reference_unet(block: UnetBlock, x, z, nl):
    """UnetBlock_with_z as the reference writes it: cat z, LeakyReLU on the concatenation (none
    at the outermost), conv, norm; skip = block input before activation; the parent applies its
    up non-linearity to cat(up, skip)."""
    act = F.relu if nl == "relu" else (lambda t: F.leaky_relu(t, 0.2))
    xz = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1) if block.down.nz else x
    conv = lambda t: F.conv2d(t, block.down.weight, block.down.bias, 2, 1)  # noqa: E731
    upconv = lambda t: F.conv_transpose2d(t, block.up.weight, block.up.bias, 2, 1)  # noqa: E731
    if block.outermost:
        h = conv(xz)
        return torch.tanh(upconv(act(reference_unet(block.submodule, h, z, nl))))
    h = conv(F.leaky_relu(xz, 0.2))
    if block.innermost:
        y = F.instance_norm(upconv(act(h)))
    else:
        h = F.instance_norm(h)
        y = F.instance_norm(upconv(act(reference_unet(block.submodule, h, z, nl))))
    return torch.cat([y, x], 1)


@pytest.mark.parametrize("where_add", ["all", "input"])
@pytest.mark.parametrize("nl", ["relu", "lrelu"])
@pytest.mark.parametrize("size", [(32, 32), (32, 64)])
def test_generator_matches_reference_structure(where_add, nl, size):
    cfg = ModelConfig(**{**SMALL, "crop_size": size[0], "crop_width": size[1]}, where_add=where_add, nl=nl)
    G = build_generator(cfg).double()
    A = torch.randn(2, 3, *size, dtype=torch.float64)
    z = torch.randn(2, cfg.nz, dtype=torch.float64)
    torch.testing.assert_close(G(A, z), reference_unet(G.model, A, z, nl), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# train_step equals the reference's iteration, transcribed step by step
# ---------------------------------------------------------------------------------------------
def reference_iteration(model: BicycleGAN, data):
    """bicycle_gan_model.py's optimize_parameters, literally: separate backward calls, requires_grad
    toggling, E then G step, then D, then D2."""
    cfg, G, E, D, D2 = model.cfg, model.G, model.E, model.D, model.D2
    opt = model.optimizers
    gan = lambda preds, real: gan_loss(preds, real, cfg.gan_mode)  # noqa: E731
    cond = (lambda a, b: torch.cat([a, b], 1)) if cfg.model.conditional_D else (lambda a, b: b)  # noqa: E731
    k = cfg.batch_size // 2
    A, B = data["A"], data["B"]
    A1, B1, A2, B2 = A[:k], B[:k], A[k:], B[k:]
    # forward()
    mu, logvar = E(B1)
    std = logvar.mul(0.5).exp_()
    eps = torch.randn(std.shape)
    z_enc = eps.mul(std).add_(mu)
    z_rand = torch.randn(k, cfg.model.nz)
    fake_enc = G(A1, z_enc)
    fake_rand = G(A1, z_rand)
    mu2, _ = E(fake_rand)
    # update_G_and_E()
    for p in list(D.parameters()) + list(D2.parameters()):
        p.requires_grad_(False)
    opt["E"].zero_grad()
    opt["G"].zero_grad()
    loss_G_GAN = gan(D(cond(A1, fake_enc)), True) * cfg.lambda_GAN
    loss_G_GAN2 = gan(D2(cond(A1, fake_rand)), True) * cfg.lambda_GAN2
    loss_kl = torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * (-0.5 * cfg.lambda_kl)
    loss_L1 = (fake_enc - B1).abs().mean() * cfg.lambda_L1
    (loss_G_GAN + loss_G_GAN2 + loss_L1 + loss_kl).backward(retain_graph=True)
    for p in E.parameters():
        p.requires_grad_(False)
    loss_z = (mu2 - z_rand).abs().mean() * cfg.lambda_z
    loss_z.backward()
    for p in E.parameters():
        p.requires_grad_(True)
    opt["E"].step()
    opt["G"].step()
    grads = {f"{n}.{k}": p.grad.clone() for n, net in (("G", G), ("E", E)) for k, p in net.named_parameters()}
    # update_D()
    for p in list(D.parameters()) + list(D2.parameters()):
        p.requires_grad_(True)
    opt["D"].zero_grad()
    loss_D = gan(D(cond(A1, fake_enc.detach())), False) + gan(D(cond(A1, B1)), True)
    loss_D.backward()
    opt["D"].step()
    opt["D2"].zero_grad()
    loss_D2 = gan(D2(cond(A1, fake_rand.detach())), False) + gan(D2(cond(A2, B2)), True)
    loss_D2.backward()
    opt["D2"].step()
    grads.update({f"{n}.{k}": p.grad.clone() for n, net in (("D", D), ("D2", D2)) for k, p in net.named_parameters()})
    losses = dict(G_GAN=loss_G_GAN, G_GAN2=loss_G_GAN2, kl=loss_kl, G_L1=loss_L1, z_L1=loss_z, D=loss_D, D2=loss_D2)
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize("options", [
    dict(),
    dict(model=dict(conditional_D=True, nl="lrelu")),
    dict(gan_mode="vanilla", model=dict(where_add="input", upsample="bilinear")),
])
def test_train_step_equals_reference_order(options):
    torch.set_default_dtype(torch.float64)
    try:
        cfg = small_cfg(**options)
        torch.manual_seed(1)
        ours = BicycleGAN(cfg)
        ref = copy.deepcopy(ours)
        ref.optimizers = {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
                          for n, net in ref.networks().items()}
        data = batch(cfg, dtype=torch.float64)
        torch.manual_seed(2)
        got = ours.train_step(data)
        torch.manual_seed(2)
        want, want_grads = reference_iteration(ref, data)
    finally:
        torch.set_default_dtype(torch.float32)
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12, msg=k)
    for n, net in ours.networks().items():
        for k, p in net.named_parameters():
            torch.testing.assert_close(p.grad, want_grads[f"{n}.{k}"], rtol=1e-9, atol=1e-13, msg=f"grad {n}.{k}")
        for (k, p), q in zip(net.named_parameters(), ref.networks()[n].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12, msg=f"param {n}.{k}")


def _grads_after_generator_phase(cfg, data, seed=3):
    torch.manual_seed(0)
    model = BicycleGAN(cfg)
    torch.manual_seed(seed)
    L, _ = model._generator_losses(data["A"], data["B"])
    sum(L.values()).backward()
    return model, {n: {k: (None if p.grad is None else p.grad.clone()) for k, p in net.named_parameters()}
                   for n, net in model.networks().items()}


def test_z_loss_changes_no_encoder_gradient():
    data = batch(small_cfg())
    _, with_z = _grads_after_generator_phase(small_cfg(lambda_z=0.5), data)
    _, without_z = _grads_after_generator_phase(small_cfg(lambda_z=0.0), data)
    for k in with_z["E"]:
        torch.testing.assert_close(with_z["E"][k], without_z["E"][k], rtol=0, atol=0)
    assert any(not torch.equal(with_z["G"][k], without_z["G"][k]) for k in with_z["G"])


def test_discriminators_get_no_gradient_from_generator_phase():
    model, grads = _grads_after_generator_phase(small_cfg(), batch(small_cfg()))
    assert model.D is not None and model.D2 is not None
    assert all(g is None for n in ("D", "D2") for g in grads[n].values())


def test_kl_is_a_sum_over_batch_and_nz():
    mu, logvar = torch.randn(3, 8), torch.randn(3, 8)
    expected = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum()
    torch.testing.assert_close(kl_loss(mu, logvar), expected)
    torch.testing.assert_close(kl_loss(torch.cat([mu, mu]), torch.cat([logvar, logvar])), 2 * expected)


# ---------------------------------------------------------------------------------------------
# Every variant and option builds and steps; odd and rectangular sizes
# ---------------------------------------------------------------------------------------------
EXPECTED_LOSSES = {
    "bicycle": {"G_GAN", "G_GAN2", "G_L1", "kl", "z_L1", "D", "D2"},
    "cvae": {"G_GAN", "G_L1", "kl", "D"},
    "cae": {"G_GAN", "G_L1", "D"},
    "clr": {"G_GAN", "z_L1", "D"},
    "pix2pix": {"G_GAN", "G_L1", "D"},
}


@pytest.mark.parametrize("variant", list(EXPECTED_LOSSES))
def test_variants_step_and_report_their_losses(variant):
    cfg = small_cfg(variant)
    model = BicycleGAN(cfg)
    before = {n: [p.clone() for p in net.parameters()] for n, net in model.networks().items()}
    losses = model.train_step(batch(cfg))
    assert set(losses) == EXPECTED_LOSSES[variant]
    assert all(torch.isfinite(v) for v in losses.values())
    assert (model.E is None) == (variant == "pix2pix")
    assert (model.D2 is None) == (variant != "bicycle")
    for n, net in model.networks().items():  # every network was updated
        assert any(not torch.equal(a, b) for a, b in zip(before[n], net.parameters())), n


@pytest.mark.parametrize("model_opts,train_opts", [
    (dict(norm="batch"), {}),
    (dict(norm="none", nl="lrelu"), {}),
    (dict(upsample="bilinear", use_dropout=True, num_downs=5), {}),
    (dict(use_same_D=True, conditional_D=True), {}),
    (dict(where_add="input", netE="conv_128", netD="basic_128", netD2="basic_128"), {"gan_mode": "vanilla"}),
    (dict(crop_size=48, crop_width=80), {}),            # rectangular, depth derived (4: 3x5 bottleneck)
    (dict(crop_size=32, crop_width=96, num_downs=5), {}),
    (dict(input_nc=1, output_nc=1, nz=3), {"lambda_ms": 1.0}),
    (dict(channels_last=True), {}),
])
def test_options_build_and_step(model_opts, train_opts):
    cfg = small_cfg(model=model_opts, **train_opts)
    model = BicycleGAN(cfg)
    losses = model.train_step(batch(cfg))
    assert all(torch.isfinite(v) for v in losses.values())
    if train_opts.get("lambda_ms"):
        assert "ms" in losses
    h, w = cfg.model.size
    out = model.generate(batch(cfg, 3)["A"])
    assert out.shape == (3, cfg.model.output_nc, h, w) and out.abs().max() <= 1


def test_batch_one_inference_and_odd_batch_variants():
    cfg = small_cfg("cvae", batch_size=3)
    model = BicycleGAN(cfg)
    model.train_step(batch(cfg))
    assert model.generate(batch(cfg, 1)["A"]).shape[0] == 1


# ---------------------------------------------------------------------------------------------
# Bad configurations fail at construction, naming the field
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,words", [
    (lambda: small_cfg(batch_size=3), ["batch_size=3", "even"]),
    (lambda: small_cfg("cvae", model=dict(nz=0)), ["nz=0", "variant=cvae"]),
    (lambda: ModelConfig(crop_size=100), ["100x100", "multiple of 2^num_downs"]),
    (lambda: ModelConfig(crop_size=48, crop_width=80, num_downs=5), ["48x80"]),
    (lambda: ModelConfig(netG="resnet_9blocks"), ["netG='resnet_9blocks'", "unet_256"]),
    (lambda: ModelConfig(netE="vgg"), ["netE='vgg'"]),
    (lambda: ModelConfig(netD="patch"), ["netD='patch'"]),
    (lambda: ModelConfig(norm="layer"), ["norm='layer'"]),
    (lambda: ModelConfig(crop_size=32, netG="unet"), ["netD=basic_256_multi", "32x32"]),
    (lambda: small_cfg(variant="vae"), ["variant='vae'", "bicycle"]),
    (lambda: small_cfg(lambda_L1=-1.0), ["lambda_L1"]),
])
def test_bad_configs_fail_clearly(make, words):
    with pytest.raises(ConfigError) as e:
        make()
    for w in words:
        assert w in str(e.value)


def test_generator_rejects_bad_inputs():
    cfg = small_cfg()
    G = build_generator(cfg.model)
    with pytest.raises(ValueError, match="multiples of 32"):
        G(torch.randn(1, 3, 40, 32), torch.randn(1, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(1, 8\)"):
        G(torch.randn(1, 3, 32, 32), torch.randn(1, 5))
