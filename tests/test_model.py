"""Faithfulness of the model and objective to the reference, on CPU: parameter counts, the
generator and the whole training step against transcriptions of the reference written here."""
import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

import bicyclegan.kernels.zinject as zinject
from bicyclegan.engine import BicycleGAN, ConfigError, ModelConfig, TrainConfig
from bicyclegan.engine.model import _frozen_call
from bicyclegan.engine.networks import UnetBlock, _upconv, build_discriminator, build_encoder, build_generator

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
# Parameter counts of the official networks (the reference's networks at its default options)
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
# Initialisation: the reference's init_weights, stated here as the statistics its torch.nn.init
# calls give (torch's fans: dim 1 times the kernel's area is fan_in, also for a ConvTranspose2d)
# ---------------------------------------------------------------------------------------------
def _fans(w):
    area = math.prod(w.shape[2:])
    return w.shape[1] * area, w.shape[0] * area


@pytest.mark.parametrize("init_type,gain", [("xavier", 0.02), ("normal", 0.02), ("kaiming", 0.02), ("orthogonal", 0.5)])
def test_initialisation_is_the_references(init_type, gain):
    """Every conv (transposed, z-injecting) and linear weight by init_type and gain, their biases 0,
    BatchNorm weights N(1, gain) and biases 0: what the reference's init_weights applies to the
    modules whose class name holds Conv, Linear or BatchNorm2d."""
    torch.manual_seed(0)
    m = ModelConfig(**{**SMALL, "crop_size": 64, "ngf": 8, "nef": 8, "ndf": 8, "norm": "batch",
                       "init_type": init_type, "init_gain": gain})
    nets = {"G": build_generator(m), "E": build_encoder(m), "D": build_discriminator(m, m.netD)}
    kinds = set()
    for name, net in nets.items():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                w = mod.weight.detach()
                assert abs(w.mean().item() - 1) < 6 * gain / math.sqrt(w.numel()), f"{name} BatchNorm weight"
                assert torch.equal(mod.bias, torch.zeros_like(mod.bias)), f"{name} BatchNorm bias"
                kinds.add("BatchNorm2d")
                continue
            w = getattr(mod, "weight", None)
            if not isinstance(w, torch.Tensor) or w.dim() < 2 or list(mod.children()):
                continue
            kinds.add(type(mod).__name__)
            assert mod.bias is None or not mod.bias.any(), f"{name} {type(mod).__name__} bias"
            w = w.detach().flatten(1)
            if init_type == "orthogonal":  # rows (or columns, if fewer) orthonormal, times gain
                gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
                torch.testing.assert_close(gram, gain ** 2 * torch.eye(len(gram)), rtol=0, atol=1e-4)
                continue
            fan_in, fan_out = _fans(getattr(mod, "weight"))
            want = {"xavier": gain * math.sqrt(2 / (fan_in + fan_out)), "normal": gain,
                    "kaiming": math.sqrt(2 / fan_in)}[init_type]
            spread = 6 / math.sqrt(2 * w.numel())  # the sample std's relative error, six times over
            assert abs(w.std().item() / want - 1) < spread, f"{name} {type(mod).__name__} {tuple(w.shape)}"
            assert abs(w.mean().item()) < 6 * want / math.sqrt(w.numel()), f"{name} {type(mod).__name__}"
    assert {"Conv2d", "ConvTranspose2d", "Linear", "BatchNorm2d"} <= kinds, kinds


# ---------------------------------------------------------------------------------------------
# The reference's loss terms, written here from its formulas (networks.GANLoss, nn.L1Loss, the KL
# line of bicycle_gan_model.py): the transcriptions below never call the project's losses
# ---------------------------------------------------------------------------------------------
def ref_gan(preds, real, mode):
    """GANLoss: one term per scale, summed; lsgan = MSELoss to the label 1.0 / 0.0, vanilla =
    BCEWithLogitsLoss, whose closed forms are softplus(-p) (label 1) and softplus(p) (label 0)."""
    label = 1.0 if real else 0.0
    if mode == "lsgan":
        return sum(((p - label) ** 2).mean() for p in preds)
    return sum(F.softplus(-p if real else p).mean() for p in preds)


def ref_l1(a, b):
    return (a - b).abs().mean()


def ref_kl(mu, logvar):
    return torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * -0.5


# ---------------------------------------------------------------------------------------------
# The generator equals a literal transcription of the reference U-Net
# ---------------------------------------------------------------------------------------------
NL = {"relu": F.relu, "lrelu": lambda t: F.leaky_relu(t, 0.2), "elu": F.elu}


def reference_unet(block: UnetBlock, x, z, cfg: ModelConfig, level=0):
    """G_Unet_add_all / G_Unet_add_input with UnetBlock_with_z / UnetBlock, as functions of our
    block's weights. Down: cat z (where_add=all: every level; input: the top one), LeakyReLU(0.2)
    (none at the top), conv, InstanceNorm (not at the top or bottom). The down LeakyReLU is
    nn.LeakyReLU(0.2, inplace=True): where z was concatenated it overwrites the copy cat(x, z), but
    without z it overwrites x itself before UnetBlock's torch.cat([self.model(x), x], 1), so the skip
    is then lrelu(x). Up: the parent's nl on cat(up, skip), upconv, InstanceNorm, and Dropout(0.5)
    on the 8*ngf levels between the 4*ngf one and the bottom; the top ends with tanh."""
    depth = cfg.unet_depth
    outermost, innermost = level == 0, level == depth - 1
    nl = NL[cfg.nl]
    with_z = cfg.nz > 0 and (cfg.where_add == "all" or outermost)
    inp = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1) if with_z else x
    if not outermost:
        inp = F.leaky_relu(inp, 0.2)
        if not with_z:
            x = inp  # the in-place LeakyReLU reached the skip
    h = F.conv2d(inp, block.down.weight, block.down.bias, 2, 1)

    def upconv(t):
        if cfg.upsample == "basic":
            return F.conv_transpose2d(t, block.up.weight, block.up.bias, 2, 1)
        t = F.pad(F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False), (1, 1, 1, 1), "reflect")
        return F.conv2d(t, block.up[2].weight, block.up[2].bias)

    if outermost:
        return torch.tanh(upconv(nl(reference_unet(block.submodule, h, z, cfg, 1))))
    if innermost:
        y = F.instance_norm(upconv(nl(h)))
    else:
        inner = reference_unet(block.submodule, F.instance_norm(h), z, cfg, level + 1)
        y = F.instance_norm(upconv(nl(inner)))
        if cfg.use_dropout and level >= 4:
            y = F.dropout(y, 0.5, training=True)
    return torch.cat([y, x], 1)


def _value_and_grads(fn, net, A, z, w):
    A, z = A.clone().requires_grad_(), z.clone().requires_grad_()
    torch.manual_seed(7)  # the same dropout masks for both
    y = fn(A, z)
    return y, torch.autograd.grad((y * w).sum(), [A, z, *net.parameters()], materialize_grads=True)


@pytest.mark.parametrize("fields", [
    dict(where_add=w, nl=nl, upsample=up) for w in ("all", "input") for nl in ("relu", "lrelu", "elu")
    for up in ("basic", "bilinear")] + [
    dict(where_add="input", nl="lrelu", crop_width=64),        # rectangular
    dict(where_add="all", nl="elu", crop_width=64, upsample="bilinear"),
    dict(nz=0, nl="lrelu"),                                    # no z: the reference's add_input U-Net
    # dropout needs a level at 8*ngf between the 4*ngf one and the bottom: 64 px, depth 6
    dict(where_add="input", nl="elu", crop_size=64, use_dropout=True),
    dict(where_add="all", nl="elu", crop_size=64, use_dropout=True, upsample="bilinear"),
])
def test_generator_matches_reference_structure(fields):
    torch.set_default_dtype(torch.float64)
    try:
        cfg = ModelConfig(**{**SMALL, **fields})
        G = build_generator(cfg)
        with torch.no_grad():  # non-zero biases, so that a dropped or misplaced bias shows
            for p in G.parameters():
                if p.dim() == 1:
                    p.normal_(0, 0.1)
        h, w = cfg.size
        A, z, up = torch.randn(2, 3, h, w), torch.randn(2, cfg.nz), torch.randn(2, 3, h, w)
        got, got_grads = _value_and_grads(G, G, A, z, up)
        want, want_grads = _value_and_grads(lambda a, zz: reference_unet(G.model, a, zz, cfg), G, A, z, up)
    finally:
        torch.set_default_dtype(torch.float32)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # A bias before an InstanceNorm has a zero gradient up to rounding: tolerances scale with the largest.
    atol = 1e-12 * max(r.abs().max().item() for r in want_grads if r.numel())
    names = ["A", "z"] + [k for k, _ in G.named_parameters()]
    for name, g, r in zip(names, got_grads, want_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=atol, msg=lambda m: f"grad of {name}: {m}")


# ---------------------------------------------------------------------------------------------
# train_step equals the reference's iteration, transcribed step by step
# ---------------------------------------------------------------------------------------------
def _requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def reference_iteration(model: BicycleGAN, data):
    """bicycle_gan_model.py's optimize_parameters, literally: forward() draws eps, then z_random,
    runs G on the encoded then the random z and E on the random output; update_G_and_E() freezes
    D and D2 (requires_grad), backward of GAN + GAN2 + L1 + KL, then with E frozen the backward of
    the z loss, steps E then G; update_D() backward and step of D, then of D2 (use_same_D: D takes
    both D losses before its step). The paper's other variants follow the same steps with their own
    terms (cvae/cae: the encoded branch alone, cae with z = mu and no KL; clr: the random branch
    alone, E trained by the z loss; pix2pix: the random branch with L1 and no E), single-D ones
    weighted by lambda_GAN; lambda_ms adds MSGAN's 1 / (mean|G(A,z1) - G(A,z2)| / mean|z1 - z2| + 1e-5)
    to the G loss, z1 the random code (cvae/cae: the encoded one, detached, through a G call of its
    own, so E gets nothing from it) and z2 a second random one."""
    cfg, v = model.cfg, model.cfg.variant
    G, E, D, opt = model.G, model.E, model.D, model.optimizers
    D2 = D if cfg.model.use_same_D else model.D2
    gan = lambda preds, real: ref_gan(preds, real, cfg.gan_mode)  # noqa: E731
    cond = (lambda a, b: torch.cat([a, b], 1)) if cfg.model.conditional_D else (lambda a, b: b)  # noqa: E731
    A, B = data["A"], data["B"]
    k = len(A) // 2 if v == "bicycle" else len(A)
    A1, B1, A2, B2 = (A[:k], B[:k], A[k:], B[k:]) if v == "bicycle" else (A, B, A, B)
    enc, rand = v in ("bicycle", "cvae", "cae"), v in ("bicycle", "clr", "pix2pix")
    z_loss = v in ("bicycle", "clr") and cfg.lambda_z > 0
    # forward()
    if enc:
        mu, logvar = E(B1)
        if v == "cae":
            z_enc = mu
        else:
            std = logvar.mul(0.5).exp_()
            eps = torch.randn(std.shape)
            z_enc = eps.mul(std).add_(mu)
    if rand:
        z_rand = torch.randn(k, cfg.model.nz)
    fake_enc = G(A1, z_enc) if enc else None
    fake_rand = G(A1, z_rand) if rand else None
    mu2 = E(fake_rand)[0] if z_loss else None
    if cfg.lambda_ms > 0:  # MSGAN's term trains G only: cvae/cae give it the encoded code detached
        z2 = torch.randn(k, cfg.model.nz)
        if rand:
            fake, z = fake_rand, z_rand
        else:
            z = z_enc.detach()
            fake = G(A1, z)
        fake2 = G(A1, z2)
    # update_G_and_E()
    discs = [d for d in (D, D2) if d is not None]
    _requires_grad(discs, False)
    for n in ("E", "G"):
        if n in opt:
            opt[n].zero_grad()
    losses = {}
    if enc:
        if cfg.lambda_GAN > 0:
            losses["G_GAN"] = gan(D(cond(A1, fake_enc)), True) * cfg.lambda_GAN
        losses["G_L1"] = ref_l1(fake_enc, B1) * cfg.lambda_L1
        if v != "cae" and cfg.lambda_kl > 0:
            losses["kl"] = ref_kl(mu, logvar) * cfg.lambda_kl
    if rand:
        if v == "bicycle":
            if cfg.lambda_GAN2 > 0:
                losses["G_GAN2"] = gan(D2(cond(A1, fake_rand)), True) * cfg.lambda_GAN2
        elif cfg.lambda_GAN > 0:
            losses["G_GAN"] = gan(D(cond(A1, fake_rand)), True) * cfg.lambda_GAN
        if v == "pix2pix":
            losses["G_L1"] = ref_l1(fake_rand, B1) * cfg.lambda_L1
    if cfg.lambda_ms > 0:
        losses["ms"] = cfg.lambda_ms / (ref_l1(fake, fake2) / ref_l1(z, z2) + 1e-5)
    sum(losses.values()).backward(retain_graph=True)
    if z_loss:
        if v == "bicycle":
            _requires_grad([E], False)
        losses["z_L1"] = ref_l1(mu2, z_rand) * cfg.lambda_z
        losses["z_L1"].backward()
        _requires_grad([E], True)
    for n in ("E", "G"):
        if n in opt:
            opt[n].step()
    grads = {f"{n}.{k}": None if p.grad is None else p.grad.clone()  # cae/clr: no gradient reaches fcVar
             for n, net in model.networks().items() if n in ("G", "E") for k, p in net.named_parameters()}
    # update_D()
    _requires_grad(discs, True)

    def backward_D(net, fake, A_real, B_real):
        loss = gan(net(cond(A1, fake.detach())), False) + gan(net(cond(A_real, B_real)), True)
        loss.backward()
        return loss

    if D is not None:
        opt["D"].zero_grad()
        losses["D"] = backward_D(D, fake_enc if enc else fake_rand, A1, B1)
        if v == "bicycle" and cfg.model.use_same_D:  # whatever lambda_GAN2, which weighs G's term only
            losses["D2"] = backward_D(D, fake_rand, A2, B2)
        opt["D"].step()
    if model.D2 is not None:
        opt["D2"].zero_grad()
        losses["D2"] = backward_D(D2, fake_rand, A2, B2)
        opt["D2"].step()
    grads.update({f"{n}.{k}": p.grad.clone() for n, net in model.networks().items() if n in ("D", "D2")
                  for k, p in net.named_parameters()})
    return {k: v.detach() for k, v in losses.items()}, grads


# Weights that differ from each other and from 1, so a weight applied twice, left out or swapped
# for another changes the result.
WEIGHTS = dict(lambda_GAN=0.7, lambda_GAN2=1.3, lambda_L1=3.0, lambda_kl=0.05, lambda_z=0.8)


@pytest.mark.parametrize("hw", [(1, 1), (3, 1), (1, 3), (2, 2), (4, 6)], ids=lambda hw: f"{hw[0]}x{hw[1]}")
@pytest.mark.parametrize("fmt", ["nchw", "cl", "cl sliced"])
def test_the_bilinear_upconv_gives_the_references_values_gradients_and_layout(hw, fmt):
    # A plane one pixel wide is upsampled along its height alone and repeated across (BilinearUpConv): the
    # values, gradients and output layout of the reference's Upsample + ReflectionPad2d + conv, in float64 (a CPU
    # input in NCHW goes through channels_last and back: NCHW out)
    up = _upconv(5, 4, "bilinear").double()
    base = torch.randn(3, 10 if fmt == "cl sliced" else 5, *hw, dtype=torch.float64)
    if fmt != "nchw":
        base = base.contiguous(memory_format=torch.channels_last)
    leaves = [base.clone(memory_format=torch.preserve_format).requires_grad_() for _ in range(2)]
    ours, theirs = (leaf[:, ::2] if fmt == "cl sliced" else leaf for leaf in leaves)
    y = up(ours)
    t = F.pad(F.interpolate(theirs, scale_factor=2, mode="bilinear", align_corners=False), (1, 1, 1, 1), "reflect")
    want = F.conv2d(t, up[2].weight, up[2].bias)
    assert y.shape == want.shape == (3, 4, 2 * hw[0], 2 * hw[1]) and y.stride() == want.stride()
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(want)
    y.backward(g)
    want.backward(g)
    torch.testing.assert_close(leaves[0].grad, leaves[1].grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", [
    dict(steps=2),  # the second step starts from zeroed gradients and moved weights
    dict(model=dict(conditional_D=True, nl="lrelu")),
    # BatchNorm: running statistics move in every forward in train mode, E's on fake_rand and D's in
    # the G phase included (the reference's frozen nets still update them)
    dict(steps=2, **WEIGHTS, model=dict(norm="batch")),
    # ... where D runs again on each fake in the D phase (the kept outputs would skip a forward, and its
    # update of the statistics): conditional, each fake beside A1, bicycle's random-z half too
    dict(model=dict(norm="batch", conditional_D=True)),
    dict(gan_mode="vanilla", model=dict(where_add="input", upsample="bilinear")),
    dict(**WEIGHTS, lambda_ms=0.3),
    dict(**WEIGHTS, gan_mode="vanilla", batch_size=6, model=dict(use_same_D=True, where_add="input", nl="lrelu")),
    dict(model=dict(where_add="input", nl="elu", use_dropout=True, crop_size=64)),  # z and masks drawn in order
    dict(variant="cvae", batch_size=3, **WEIGHTS),
    dict(variant="cae", **WEIGHTS, lambda_ms=0.3),
    dict(variant="clr", **WEIGHTS, model=dict(conditional_D=True)),
    dict(variant="pix2pix", **WEIGHTS, gan_mode="vanilla"),
    # a zero weight drops its term (and D2 with lambda_GAN2 = 0, D with lambda_GAN = 0)
    dict(lambda_kl=0.0, lambda_z=0.0, lambda_GAN2=0.0),
    dict(**{**WEIGHTS, "lambda_GAN": 0.0}),
    # use_same_D: D learns from the random branch too, also where G's term there is off (update_D)
    dict(**{**WEIGHTS, "lambda_GAN2": 0.0}, model=dict(use_same_D=True)),
])
def test_train_step_equals_reference_order(options):
    options = dict(options)
    steps = options.pop("steps", 1)
    torch.set_default_dtype(torch.float64)
    try:
        cfg = small_cfg(**options)
        torch.manual_seed(1)
        ours = BicycleGAN(cfg)
        ref = copy.deepcopy(ours)
        ref.optimizers = {n: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
                          for n, net in ref.networks().items()}
        for step in range(steps):
            data = batch(cfg, dtype=torch.float64)
            torch.manual_seed(2 + step)
            got = ours.train_step(data)
            torch.manual_seed(2 + step)
            want, want_grads = reference_iteration(ref, data)
    finally:
        torch.set_default_dtype(torch.float32)
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12, msg=k)
    for n, net in ours.networks().items():
        # A bias before an InstanceNorm has a zero gradient up to rounding, and Adam's first step,
        # lr * g / (|g| + 1e-8), magnifies the rounding of any |g| near 1e-8 to a visible move. So
        # gradients are compared to rounding of the largest, parameters to 1/1000 of a step (lr).
        want_n = [want_grads[f"{n}.{k}"] for k, _ in net.named_parameters()]
        atol = 1e-12 * max(g.abs().max().item() for g in want_n if g is not None)
        for (k, p), g in zip(net.named_parameters(), want_n):
            torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=atol, msg=lambda m: f"grad {n}.{k}: {m}")
        for (k, p), q in zip(net.named_parameters(), ref.networks()[n].parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-3 * cfg.lr, msg=lambda m: f"param {n}.{k}: {m}")
        for (k, b), c in zip(net.named_buffers(), ref.networks()[n].buffers()):
            torch.testing.assert_close(b, c, rtol=1e-9, atol=1e-12, msg=lambda m: f"buffer {n}.{k}: {m}")


def _grads_after_generator_phase(cfg, data, seed=3):
    torch.manual_seed(0)
    model = BicycleGAN(cfg)
    torch.manual_seed(seed)
    L, _ = model.generator_losses(data["A"], data["B"])
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


@pytest.mark.parametrize("variant", ["cae", "cvae"])
def test_mode_seeking_changes_no_encoder_gradient(variant):
    """MSGAN's term regularises G; in cae/cvae it met E through the encoded code, and E's weights
    learnt to pull their codes towards the random second code (at this cae's first step, 3e4 times
    the gradient of L1 and GAN)."""
    data = batch(small_cfg(variant))
    _, with_ms = _grads_after_generator_phase(small_cfg(variant, lambda_ms=1.0), data)
    _, without_ms = _grads_after_generator_phase(small_cfg(variant, lambda_ms=0.0), data)
    for k, g in with_ms["E"].items():
        torch.testing.assert_close(g, without_ms["E"][k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(with_ms["G"][k], without_ms["G"][k]) for k in with_ms["G"])


def test_discriminators_get_no_gradient_from_generator_phase():
    model, grads = _grads_after_generator_phase(small_cfg(), batch(small_cfg()))
    assert model.D is not None and model.D2 is not None
    assert all(g is None for n in ("D", "D2") for g in grads[n].values())



def test_nonfinite_counts_every_networks_nan_and_inf_values():
    """nonfinite's counts, by hand: a NaN and an inf in one of G's tensors and a -inf in another (3 in G, summed
    over its tensors), a NaN in a running statistic of D's BatchNorm (a buffer: 1), an inf in the moving average
    of G (1); E and D2 stay finite and are not listed. Networks in their order (describe_nonfinite's words)."""
    model = BicycleGAN(small_cfg(ema=0.9, model=dict(norm="batch")))
    assert model.nonfinite() == {}
    with torch.no_grad():
        first, *_, last = model.G.parameters()
        first.view(-1)[:2] = torch.tensor([math.nan, math.inf])
        last.view(-1)[0] = -math.inf
        next(b for b in model.D.buffers() if b.is_floating_point()).view(-1)[0] = math.nan
        next(model.G_ema.parameters()).view(-1)[0] = math.inf
    assert list(model.nonfinite().items()) == [("G", 3), ("D", 1), ("G_ema", 1)]

class _Convs(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts convolutions by phase, network (the owner of the weight) and kind: fwd, or a backward
    computing the input's gradient (in), the weight's (w) or both (inw)."""

    def __init__(self, model):
        super().__init__()
        self.owner = {p.untyped_storage().data_ptr(): n for n, net in model.networks().items()
                      for p in net.parameters()}
        self.phase, self.counts = None, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            key = (self.phase, self.owner[args[1].untyped_storage().data_ptr()], "fwd")
        elif func is torch.ops.aten.convolution_backward.default:
            mask = args[-1]
            key = (self.phase, self.owner[args[2].untyped_storage().data_ptr()],
                   "bwd_" + "in" * mask[0] + "w" * mask[1])
        else:
            key = None
        if key:
            self.counts[key] = self.counts.get(key, 0) + 1
        return func(*args, **(kwargs or {}))


def _expected_convs(variant):
    """By hand, from the reference's networks: unet_256 G has 16 convs (8 down, 8 up), resnet_256 E
    13 (a conv, then 4 blocks of two convs and a shortcut's), basic_256_multi D 10 (2 scales of 5).
    Each call is one batch (bicycle: halves of 1; G's two calls are one, on both halves, at this batch:
    _one_g_call). A first conv whose input needs no gradient
    computes the weight's alone, G's with the encoded z too (z's term is its own, not a conv's input
    gradient over A's channels); frozen networks (D in the G+E phase, E on fake_rand in bicycle)
    the input's alone. D's forward on a fake is made once, in the G+E phase (weights unchanged
    until the D phase), so the D phase's forwards are of the real images only."""
    d_ge = {"fwd": 10, "bwd_in": 10}
    d_d = {"fwd": 10, "bwd_inw": 16, "bwd_w": 4}  # 2 images x 2 scales of first convs: weights only
    e_enc = {"fwd": 13, "bwd_inw": 12, "bwd_w": 1}  # E(B): B needs no gradient
    want = {
        # G once on both codes; its first conv: the weight's gradient alone (z_enc's reaches E outside the conv)
        "bicycle": {("GE", "G"): {"fwd": 16, "bwd_inw": 15, "bwd_w": 1},
                    ("GE", "E"): {"fwd": 26, "bwd_inw": 12, "bwd_w": 1, "bwd_in": 13},
                    ("GE", "D"): d_ge, ("GE", "D2"): d_ge, ("D", "D"): d_d, ("D", "D2"): d_d},
        "cvae": {("GE", "G"): {"fwd": 16, "bwd_inw": 15, "bwd_w": 1}, ("GE", "E"): e_enc},
        "clr": {("GE", "G"): {"fwd": 16, "bwd_inw": 15, "bwd_w": 1},
                ("GE", "E"): {"fwd": 13, "bwd_inw": 13}},  # E(fake_rand) trained by the z loss
        "pix2pix": {("GE", "G"): {"fwd": 16, "bwd_inw": 15, "bwd_w": 1}},
    }
    want["cae"] = want["cvae"]
    if variant != "bicycle":
        want[variant].update({("GE", "D"): d_ge, ("D", "D"): d_d})
    return {(phase, net, kind): n for (phase, net), kinds in want[variant].items() for kind, n in kinds.items()}


@pytest.mark.parametrize("variant", ["bicycle", "cvae", "cae", "clr", "pix2pix"])
def test_step_convolutions_per_network_and_phase(variant, monkeypatch):
    """The compute of a step at the reference's networks (narrow: width changes no count), so that
    no forward or gradient the objective does not need comes back: the reference's step forwards
    D on each fake twice (its second in the D phase) and goes back through E and G's random call
    twice in bicycle (a second backward for the z loss, computing E's weight gradients to drop them)."""
    # impl ref: every conv an aten one with its network's weight (the Triton kernels' z injection
    # convolves a slice of it)
    cfg = TrainConfig(model=ModelConfig(ngf=4, nef=4, ndf=4, impl="ref"), variant=variant, batch_size=2)
    torch.manual_seed(0)
    model = BicycleGAN(cfg)
    convs = _Convs(model)
    for name, phase in (("generator_losses", "GE"), ("discriminator_losses", "D")):
        def losses(*args, _f=getattr(model, name), _phase=phase):
            convs.phase = _phase  # the phase's backward follows its losses
            return _f(*args)
        monkeypatch.setattr(model, name, losses)
    with convs:
        model.train_step(batch(cfg))
    assert convs.counts == _expected_convs(variant)



@pytest.mark.parametrize("batch_size, model, train, calls", [
    (2, {}, {}, [2]), (8, {}, {}, [8]),  # 1 and 4 codes per branch: one call on both
    (10, {}, {}, [5, 5]),  # 5: two calls (the demo's 56 measured no faster in one)
    (2, dict(norm="batch"), {}, [1, 1]),  # one call's statistics would be of both halves
    (2, dict(use_dropout=True, crop_size=64), {}, [1, 1]),  # one mask draw where the reference draws one per call
    # the mode-seeking term's code in the same call (one of 1 beside one of 2 made a compiled G's batch dynamic)
    (2, {}, dict(lambda_ms=0.3), [3]),
    (2, dict(use_dropout=True, crop_size=64), dict(lambda_ms=0.3), [1, 1, 1]),
    (2, {}, dict(variant="cvae", lambda_ms=0.3), [2, 2, 2]),  # (no random branch: its own calls, as before)
])
def test_the_bicycle_step_runs_g_once_on_both_codes_where_that_is_the_same_function(batch_size, model, train, calls):
    cfg = small_cfg(batch_size=batch_size, model=model, **train)
    torch.manual_seed(0)
    net = BicycleGAN(cfg)
    seen = []
    net.G.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    net.train_step(batch(cfg))
    assert seen == calls


def test_g_once_on_both_codes_looks_at_gs_layers_not_the_config():
    """A subclass's G with batch norm, running statistics or dropout of its own, under a config of instance norm
    without them: two calls."""
    cfg = small_cfg(batch_size=2)
    for layer in (torch.nn.BatchNorm2d(3, track_running_stats=False),
                  torch.nn.InstanceNorm2d(3, track_running_stats=True), torch.nn.Dropout(0.1)):
        torch.manual_seed(0)
        net = BicycleGAN(cfg)
        assert net._one_g_call(1)
        net.G.extra = layer
        assert not net._one_g_call(1)

def _step_grads(cfg, data, monkeypatch=None):
    """Every network's gradients as its optimiser's step sees them (a fresh model of seed 0, draws of seed 2)."""
    torch.manual_seed(0)
    model, grads = BicycleGAN(cfg), []
    step = torch.optim.Adam.step

    def recording(opt, *a, **k):
        grads.extend(p.grad.clone() for g in opt.param_groups for p in g["params"] if p.grad is not None)
        return step(opt, *a, **k)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", recording)
        if monkeypatch:
            monkeypatch(mp)
        torch.manual_seed(2)
        model.train_step(data)
    return grads


def test_d_outputs_kept_from_the_g_phase_give_the_gradients_of_a_second_forward_through_the_kernels():
    """D's outputs on a fake serve both phases (its backward runs twice, retained): through the Triton
    kernels (interpreter; D's fused InstanceNorm + LeakyReLU, G's z injection) the gradients of every
    network are those of the reference's two forwards (D called on the fake again in the D phase),
    to float32 rounding. (A gradient whose true value is 0, of a bias before a norm, is rounding
    alone on both sides: the bound is on the absolute difference against the network's scale.)"""
    cfg = small_cfg(batch_size=2, model=dict(impl="triton"))
    data = batch(cfg)
    shared = _step_grads(cfg, data)
    twice = _step_grads(cfg, data, lambda mp: mp.setattr(
        BicycleGAN, "_d_on_fake", lambda self, D, A1, fake, key, out: _frozen_call(D, self._d_input(A1, fake))))
    assert len(shared) == len(twice) == sum(1 for net in BicycleGAN(cfg).networks().values() for _ in net.parameters())
    scale = max(g.abs().max() for g in twice)
    worst = max((a - b).abs().max() for a, b in zip(shared, twice))
    assert worst <= 1e-5 * scale, (worst, scale)


@pytest.mark.parametrize("variant,where_add", [("bicycle", "input"), ("bicycle", "all"), ("cvae", "all")])
def test_z_term_of_the_first_conv_gives_the_gradients_of_the_concatenation(variant, where_add):
    """G's first conv on the encoded z convolves A's channels and adds z's term, so that it computes no
    gradient for A (kernels/zinject.py, _z_concat_conv_split): every network's gradients in a step are
    those of the conv of the concatenation (z_concat_conv_ref), to float64 rounding."""
    torch.set_default_dtype(torch.float64)
    try:
        cfg = small_cfg(variant, batch_size=2, model=dict(where_add=where_add))
        data = batch(cfg, dtype=torch.float64)
        split = _step_grads(cfg, data)
        concat = _step_grads(cfg, data, lambda mp: mp.setattr(zinject, "_z_concat_conv_split",
                                                              zinject.z_concat_conv_ref))
    finally:
        torch.set_default_dtype(torch.float32)
    assert len(split) == len(concat)
    scale = max(g.abs().max() for g in concat)
    assert max((a - b).abs().max() for a, b in zip(split, concat)) <= 1e-12 * scale


def _live_bytes_peaks(work):
    """Run work(mark) under the profiler's memory recording and return, for each mark(name) it made, the
    peak of the CPU allocator's live bytes from that mark to the next (or the end) above the live bytes
    at the mark: every allocation and free of the c10 CPU allocator from the profiler's events, in time
    order. (A free of a block allocated before the profile is not reported, so work builds what it frees.)"""
    from torch.profiler import ProfilerActivity, profile, record_function

    def mark(name):
        with record_function(f"mark:{name}"):
            pass
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        work(mark)
    events = []

    def walk(ev):
        if ev.tag == torch._C._profiler._EventType.Allocation:
            events.append((ev.start_time_ns, ev.extra_fields.alloc_size, None))
        elif ev.name.startswith("mark:"):
            events.append((ev.start_time_ns, 0, ev.name[5:]))
        for child in ev.children:
            walk(child)
    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    live, peaks, current = 0, {}, None
    for _, size, name in sorted(events, key=lambda e: e[0]):  # stable: same-time events keep their order
        live += size
        if name is not None:
            current, start = name, live
            peaks[name] = 0
        elif current is not None:
            peaks[current] = max(peaks[current], live - start)
    return peaks


def test_live_bytes_peaks_sees_known_allocations():
    MB = 2 ** 20

    def work(mark):
        mark("first")
        a = torch.empty(10 * MB, dtype=torch.uint8)
        b = torch.empty(20 * MB, dtype=torch.uint8)
        del a
        c = torch.empty(12 * MB, dtype=torch.uint8)  # live 32 MB: the first range's peak
        del b, c
        mark("second")
        x = torch.ones(MB // 4, requires_grad=True)  # 1 MB
        (x * 2).sum().backward()  # x * 2 (1 MB, freed after the sum), then x.grad (1 MB)
        assert x.grad is not None
    peaks = _live_bytes_peaks(work)
    assert peaks["first"] == 32 * MB
    assert 2 * MB <= peaks["second"] <= 2 * MB + 64  # + the loss and its gradient, scalars


def test_kept_d_outputs_raise_no_peak_of_the_step_memory():
    """D's saved activations on the fakes live from the G+E phase into the D phase when its outputs
    serve both (_d_on_fake), not when D is forwarded again. The step's peak is at the end of the G+E
    forward, where both paths hold them, so it is the same (256 px reference networks, bicycle batch 2:
    1192.4 MB in both, docs/performance.md): a peak above the second forward's is a regression."""
    cfg = small_cfg(batch_size=2, model=dict(crop_size=64, ngf=8, nef=8, ndf=8))

    def peaks(two_forwards):
        def work(mark):
            torch.manual_seed(0)
            model = BicycleGAN(cfg)
            if two_forwards:
                model._d_on_fake = lambda D, A1, fake, key, out: _frozen_call(D, model._d_input(A1, fake))
            for step in ("first", "second"):  # the second: every optimiser's state and gradient exist
                data = batch(cfg)
                mark(step)
                model.train_step(data)
        return _live_bytes_peaks(work)["second"]
    shared, twice = peaks(False), peaks(True)
    assert shared <= twice + 4096, (shared, twice)  # 4 KB: D's few kept output maps


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


def _from_json(cfg):
    """The config as a resumed run reads it back from config.json: its strings are new objects."""
    return TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))


@pytest.mark.parametrize("variant", list(EXPECTED_LOSSES))
def test_a_config_read_from_json_trains_the_same(variant):
    cfg = small_cfg(variant, **WEIGHTS)
    data = batch(cfg)
    results = []
    for c in (cfg, _from_json(cfg)):
        torch.manual_seed(1)
        model = BicycleGAN(c)
        torch.manual_seed(2)
        results.append((model.train_step(data), [p.detach().clone() for p in model.parameters()]))
    (losses, params), (losses_json, params_json) = results
    assert set(losses) == set(losses_json) == EXPECTED_LOSSES[variant]
    for k in losses:
        torch.testing.assert_close(losses_json[k], losses[k], rtol=0, atol=0, msg=k)
    for p, q in zip(params, params_json):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


def test_bicycle_step_rejects_an_odd_batch():
    for cfg in (small_cfg(), _from_json(small_cfg())):
        with pytest.raises(ValueError, match="variant bicycle needs an even batch, got 5$"):
            BicycleGAN(cfg).train_step(batch(cfg, 5))


def test_a_batch_of_the_wrong_form_is_refused_naming_what_is_expected():
    """A missing key was a bare KeyError 'A'; wrong channels a conv's complaint several layers down;
    a dict for the config an AttributeError on .device."""
    cfg = small_cfg()
    model = BicycleGAN(cfg.to_dict())  # a config's dict (config.json's content) is a config
    assert model.cfg == cfg
    good = batch(cfg)
    want = r"the batch must be a dict of 'A' \(N x 3 x H x W\) and 'B' \(N x 3 x H x W\) float tensors; got "
    for bad, got in (({"A": good["A"]}, r"\['A'\]"), ([good["A"], good["B"]], "list"),
                     ({**good, "B": good["B"][:, :1]}, r"A \(4, 3, 32, 32\) torch.float32, B \(4, 1, 32, 32\)"),
                     ({**good, "B": good["B"][:2]}, r"B \(2, 3, 32, 32\)"),
                     ({**good, "B": good["B"][..., :16]}, r"B \(4, 3, 32, 16\)"),
                     ({**good, "A": (good["A"] * 127).to(torch.uint8)}, "torch.uint8"),
                     ({**good, "A": good["A"][0]}, r"A \(3, 32, 32\)")):
        with pytest.raises(ValueError, match="train_step: " + want + ".*" + got):
            model.train_step(bad)
    # a side G cannot take: said of the batch given (G's own check saw the bicycle split's half: (2, 3, 16, 16))
    small = {k: v[..., :16, :16] for k, v in good.items()}
    with pytest.raises(ValueError, match=r"train_step: this G takes images whose H and W are multiples of 32, got A "
                                         r"\(4, 3, 16, 16\)"):
        model.train_step(small)
    with pytest.raises(TypeError, match="BicycleGAN: cfg must be a TrainConfig .* got str"):
        BicycleGAN("demo")
    from bicyclegan.engine import train
    with pytest.raises(TypeError, match="train: cfg must be a TrainConfig .* got str"):
        train("demo")


def test_train_step_of_a_model_built_for_inference_says_how_to_build_one_that_trains(tmp_path):
    """load_checkpoint's model (training=False) ran the G phase, then an AttributeError on its missing scaler."""
    from bicyclegan.engine import load_checkpoint, save_checkpoint
    cfg = small_cfg()
    path = save_checkpoint(BicycleGAN(cfg), tmp_path / "m.pt")
    for model in (BicycleGAN(cfg, training=False), load_checkpoint(path).train()):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ConfigError, match=r"^train_step: this model was built for inference \(training=False, "
                                              r"load_checkpoint's default\).*load_checkpoint\(path, training=True\)$"):
            model.train_step(batch(cfg))
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(load_checkpoint(path, training=True).train_step(batch(cfg))) >= {"G_L1", "D"}


def test_generate_and_encode_refuse_inputs_of_the_wrong_form_by_name():
    """They were torch errors some layers down: a conv's channels, an IndexError of a 3-D B, a numpy array's
    missing .dim, a list's missing .shape."""
    cfg = small_cfg(model=dict(output_nc=1))
    model = BicycleGAN(cfg, training=False)
    A, B = batch(cfg)["A"], batch(cfg)["B"]
    for call, name, want, bad, got in (
            (model.generate, "A", "N x 3 x H x W", A[:, :1], r"\(4, 1, 32, 32\) torch.float32"),
            (model.generate, "A", "N x 3 x H x W", A[0], r"\(3, 32, 32\) torch.float32"),
            (model.generate, "A", "N x 3 x H x W", (A * 127).to(torch.uint8), r"\(4, 3, 32, 32\) torch.uint8"),
            (model.generate, "A", "N x 3 x H x W", A.numpy(), "ndarray"),
            (model.encode, "B", "N x 1 x H x W", A, r"\(4, 3, 32, 32\) torch.float32"),
            (model.encode, "B", "N x 1 x H x W", B[0], r"\(1, 32, 32\) torch.float32"),
            (model.encode, "B", "N x 1 x H x W", B.tolist(), "list")):
        with pytest.raises(ValueError, match=f"^{call.__name__}: {name} must be a float tensor {want} in "
                                             rf"\[-1, 1\], got {got}$"):
            call(bad)
    with pytest.raises(ValueError, match=r"^generate: z must be a tensor N x 8, got list$"):
        model.generate(A, [[0.0] * 8] * 4)
    with pytest.raises(ConfigError, match=r"^this model \(variant pix2pix\) has no trained encoder$"):
        BicycleGAN(small_cfg("pix2pix"), training=False).encode(B)


def test_sample_columns_names_a_ground_truth_that_is_not_of_the_inputs_rows():
    """A B of another count than A was "G: z must have shape (4, 8), got (3, 8)" (a z nobody gave); with
    encode=False, or a B of another size, no error at all: columns of mismatched rows went on to the grid."""
    from bicyclegan.engine import sample_columns
    cfg = small_cfg(model=dict(output_nc=1))
    model = BicycleGAN(cfg, training=False)
    A, B = batch(cfg)["A"], batch(cfg)["B"]  # 4 x 3 x 32 x 32 and 4 x 1 x 32 x 32
    for bad, got in ((B[:3], r"\(3, 1, 32, 32\)"), (B[0], r"\(1, 32, 32\)"), (A, r"\(4, 3, 32, 32\)"),
                     (B.repeat(1, 1, 2, 2), r"\(4, 1, 64, 64\)"), (B.numpy(), "ndarray")):
        for encode in (True, False):
            with pytest.raises(ValueError, match=r"^sample_columns: B must be the ground truth of A's rows, a tensor "
                                                 r"of shape \(4, 1, 32, 32\) \(A: \(4, 3, 32, 32\); output_nc 1\), "
                                                 f"got {got}$"):
                sample_columns(model, A, bad, n_samples=2, encode=encode)
    cols, names = sample_columns(model, A, B, n_samples=2)  # the inputs' own ground truth: taken
    assert names == ["input", "ground truth", "encoded", "random z1", "random z2"] and cols[1] is B


def test_train_step_trains_in_training_mode_after_an_eval_for_a_preview():
    # a model.eval() for a preview between steps trained on with dropout off and batch norm's statistics frozen
    cfg = small_cfg(model={"norm": "batch"})
    torch.manual_seed(0)
    model = BicycleGAN(cfg)
    model.eval()
    before = [m.running_mean.clone() for m in model.G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.train_step(batch(cfg))
    after = [m.running_mean for m in model.G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert model.training and model.G.training and before
    assert all(not torch.equal(a, b) for a, b in zip(after, before))


def test_generate_encode_and_train_step_take_inputs_to_the_models_device_and_dtype():
    """A float64 input of a float32 model (or the reverse) was a conv's "Input type (double) and bias type (float)
    should be the same"; inputs on another device than the model's a device error (here the meta device)."""
    cfg = small_cfg(ema=0.5)
    torch.manual_seed(0)
    model = BicycleGAN(cfg)
    A, B, z = batch(cfg)["A"], batch(cfg)["B"], torch.randn(4, 8)
    want, mu = model.generate(A, z), model.encode(B)
    for dtype in (torch.float64, torch.bfloat16):  # (bfloat16's rounding: the same inputs, rounded)
        ref = (A.to(dtype).float(), z.to(dtype).float(), B.to(dtype).float())
        got = model.generate(A.to(dtype), z.to(dtype))
        assert got.dtype == torch.float32 and torch.equal(got, model.generate(ref[0], ref[1]))
        assert torch.equal(model.encode(B.to(dtype)), model.encode(ref[2]))
    assert torch.equal(want, model.generate(A.double(), z.double()))
    wide = copy.deepcopy(model).double()  # a float64 model takes float32 inputs, its outputs float64
    assert wide.generate(A, z).dtype == wide.encode(B).dtype == torch.float64
    torch.testing.assert_close(wide.generate(A, z), want.double(), rtol=0, atol=1e-5)
    torch.testing.assert_close(wide.encode(B), mu.double(), rtol=0, atol=1e-5)
    meta = copy.deepcopy(model).to("meta")
    assert meta.generate(A).device.type == meta.generate(A, z).device.type == meta.encode(B).device.type == "meta"
    # train_step: a float64 batch of a float32 model trains as the float32 batch (the same values), also inside a
    # caller's no_grad block (its backward found no graph)
    twin = copy.deepcopy(model)
    torch.manual_seed(1)
    losses = model.train_step({"A": A, "B": B})
    torch.manual_seed(1)
    with torch.no_grad():
        twin_losses = twin.train_step({"A": A.double(), "B": B.double()})
    assert all(torch.equal(losses[k], twin_losses[k]) for k in losses)
    assert all(torch.equal(v, twin.state_dict()[k]) for k, v in model.state_dict().items())


def test_a_model_keeps_its_own_config_checked_whatever_becomes_of_the_callers():
    """A notebook's cfg.variant = "pix2pix" for its next model changed the first one's objective too (its losses
    D, G_GAN, G_L1, kl: none of either variant's), and a field set to what cannot work was built without a check."""
    cfg = small_cfg()
    model = BicycleGAN(cfg)
    cfg.variant, cfg.lambda_L1 = "pix2pix", 100.0
    assert (model.cfg.variant, model.cfg.lambda_L1) == ("bicycle", 10.0)
    assert set(model.train_step(batch(cfg))) == {"G_GAN", "G_L1", "kl", "G_GAN2", "z_L1", "D", "D2"}
    assert set(BicycleGAN(cfg).train_step(batch(cfg))) == {"G_GAN", "G_L1", "D"}
    cfg.variant = "bicycl"
    with pytest.raises(ConfigError, match="^variant='bicycl' is not valid; choose one of"):
        BicycleGAN(cfg)


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
    (lambda: TrainConfig(model=ModelConfig(crop_size=32, netG="unet")), ["netD=basic_256_multi", "32x32"]),
    (lambda: build_discriminator(ModelConfig(crop_size=32, netG="unet")), ["netD=basic_256_multi", "32x32"]),
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


# ---------------------------------------------------------------------------------------------
# spread_z: the codes of a sample row


@pytest.mark.parametrize("nz", [1, 8])
def test_spread_z_puts_one_code_in_each_eighth_of_every_coordinate(nz):
    from bicyclegan.engine.model import spread_z
    for seed in range(5):
        z = spread_z(8, nz, seed)
        assert z.shape == (8, nz) and z.dtype == torch.float32
        bins = (torch.special.ndtr(z.double()) * 8).floor().long()  # which eighth of N(0, 1) each value falls in
        for d in range(nz):
            assert sorted(bins[:, d].tolist()) == list(range(8)), (seed, d)
    # Plain draws do not (the test can fail): most seeds repeat an eighth somewhere.
    plain = [(torch.special.ndtr(torch.randn(8, 8, generator=torch.Generator().manual_seed(s))) * 8).floor()
             for s in range(5)]
    assert any(len(set(b[:, 0].tolist())) < 8 for b in plain)


def test_spread_z_codes_are_standard_normal_draws_and_reproducible():
    from bicyclegan.engine.model import spread_z
    first = torch.stack([spread_z(8, 2, s)[0] for s in range(2000)]).double()  # one code per seed
    assert abs(first.mean().item()) < 0.1 and abs(first.var().item() - 1) < 0.1
    u = torch.special.ndtr(first[:, 0]).sort().values  # Kolmogorov-Smirnov distance to uniform
    ks = (u - torch.arange(1, 2001, dtype=torch.float64) / 2000).abs().max().item()
    assert ks < 1.36 / 2000 ** 0.5  # the 5 % critical value
    assert torch.equal(spread_z(8, 3, 7), spread_z(8, 3, 7))
    assert not torch.equal(spread_z(8, 3, 7), spread_z(8, 3, 8))
    assert spread_z(4, 0, 1).shape == (4, 0)


# ---------------------------------------------------------------------------------------------
# The moving average of G


def test_the_moving_average_ramps_up_from_g_and_then_decays_at_ema():
    torch.manual_seed(0)
    # ema 0.5: the ramp (2 / (t + 1) above 1 - ema) ends at step 3, so 8 steps see both regimes
    # (ema 0.9 needed 30 steps for the same: the slowest test of its file).
    cfg = small_cfg(ema=0.5)
    model = BicycleGAN(cfg)
    data = batch(cfg)
    names = [k for k, t in model.G.state_dict().items() if t.is_floating_point()]
    want = None
    for t in range(1, 9):
        model.train_step(data)
        g = {k: model.G.state_dict()[k].double() for k in names}
        # The average's definition: G itself after the first step, then weight max(1 - ema, 2 / (t + 1)).
        w = max(1 - 0.5, 2 / (t + 1))
        want = g if want is None else {k: want[k] + w * (g[k] - want[k]) for k in names}
        if t in (1, 2, 4, 8):
            got = model.G_ema.state_dict()
            assert max((got[k].double() - want[k]).abs().max().item() for k in names) < 1e-6, t
    assert model.ema_steps.item() == 8 and model.training_state()["ema_steps"] == 8


def test_a_resumed_average_keeps_its_count():
    cfg = small_cfg(ema=0.99)
    a = BicycleGAN(cfg)
    for _ in range(3):
        a.train_step(batch(cfg))
    b = BicycleGAN(cfg)
    b.load_training_state(a.training_state())
    assert b.ema_steps.item() == 3
    # and its weights: the average's, not G's (they differ after 3 steps)
    assert any(not torch.equal(a.G_ema.state_dict()[k], v) for k, v in a.G.state_dict().items())
    for k, v in a.G_ema.state_dict().items():
        assert torch.equal(b.G_ema.state_dict()[k], v), k
    state = a.training_state()
    del state["ema_steps"]  # a checkpoint from before the count: its average is taken as settled
    b.load_training_state(state)
    assert b.ema_steps.item() >= 1e8
    del state["ema"]  # no average at all: a fresh one starts from G
    b.load_training_state(state)
    assert b.ema_steps.item() == 0


def test_a_resumed_fp16_run_keeps_its_loss_scale():
    # No resume test trained in fp16: a resume that dropped the scaler's state (every resumed run back at 65536,
    # its steps unlike the uninterrupted run's until the scale settled again) passed them all.
    cfg = small_cfg(amp="fp16")
    a = BicycleGAN(cfg)
    a.train_step(batch(cfg))
    a.scaler.update(1024.0)  # a scale the run found (a fresh scaler starts at 2 ** 16)
    a.train_step(batch(cfg))
    saved = a.scaler.state_dict()
    assert saved["scale"] in (1024.0, 512.0) and saved["_growth_tracker"] in (0, 1)
    b = BicycleGAN(cfg)
    assert b.scaler.is_enabled() and b.scaler.get_scale() == 2.0 ** 16
    b.load_training_state(a.training_state())
    assert b.scaler.state_dict() == saved


def test_a_state_dict_round_trip_keeps_the_moving_average_that_generate_samples_with():
    """torch.save(model.state_dict()) into a new model kept G alone: generate() then sampled with the new
    model's initial average, random weights (outputs 0.07 away on the demo's networks)."""
    import io
    cfg = small_cfg(ema=0.9)
    torch.manual_seed(0)
    a = BicycleGAN(cfg)
    for _ in range(3):
        a.train_step(batch(cfg))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    b = BicycleGAN(cfg)
    b.load_state_dict(torch.load(buf, weights_only=True))
    for k, v in a.G_ema.state_dict().items():
        assert torch.equal(b.G_ema.state_dict()[k], v), k
    assert b.ema_steps.item() == 3  # the count too: the average goes on where it was
    A, z = batch(cfg)["A"], torch.randn(cfg.batch_size, cfg.model.nz)
    assert torch.equal(a.eval().generate(A, z), b.eval().generate(A, z))
    # An average of its own is part of the model: a state_dict without one (ema=0) is missing those keys,
    # and one with it has keys a model without an average does not take.
    plain = BicycleGAN(small_cfg())
    assert not any(k.startswith("G_ema.") or k == "ema_steps" for k in plain.state_dict())
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*G_ema\.model.*ema_steps"):
        b.load_state_dict(plain.state_dict())
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*G_ema\.model"):
        plain.load_state_dict(a.state_dict())


def test_a_run_resumed_with_channels_last_changed_keeps_adams_moments_in_each_parameters_layout():
    # load_state_dict keeps the layout the moments were saved in: NCHW moments beside NHWC weights,
    # which fused Adam refuses on CUDA ("same ... layout") and computes wrongly on the CPU.
    import copy
    cfg = small_cfg()
    plain = BicycleGAN(cfg)
    plain.train_step(batch(cfg))
    state = copy.deepcopy(plain.training_state())
    cl = BicycleGAN(small_cfg(model=dict(channels_last=True)))
    assert any(p.stride() != p.contiguous().stride() for p in cl.G.parameters())  # some weights are NHWC
    cl.load_training_state(state)
    for name, opt in cl.optimizers.items():
        saved = state["optimizers"][name]["state"]
        for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
            for k in ("exp_avg", "exp_avg_sq"):
                v = opt.state[p][k]
                assert v.stride() == p.stride(), (name, i, k)
                assert torch.equal(v, saved[i][k])  # the values are the saved ones
    before = {n: p.detach().clone() for n, p in cl.G.named_parameters()}
    assert all(torch.isfinite(v) for v in cl.train_step(batch(cfg)).values())
    assert any(not torch.equal(before[n], p) for n, p in cl.G.named_parameters())


# ---------------------------------------------------------------------------------------------
# Which layers an impl="auto" model runs (model.layer_impl)
# ---------------------------------------------------------------------------------------------
def _impl_cfg(impl="auto", **kw):
    return TrainConfig(model=ModelConfig(**{**SMALL, "impl": impl}), batch_size=4, **kw)


@pytest.mark.parametrize("impl,device,train_kw,training,expected", [
    ("auto", "cuda", {}, True, "ref"),  # the default GPU run: eager, launch-bound
    ("auto", "cuda:1", {}, True, "ref"),
    ("auto", torch.device("cuda", 0), {"amp": "bf16"}, True, "ref"),
    ("auto", "cuda", {}, False, "ref"),  # inference: sample, evaluate, serve run eagerly
    ("auto", "cuda", {"cuda_graph": True}, True, "auto"),
    ("auto", "cuda", {"cuda_graph": True}, False, "ref"),  # inference replays no graph
    ("auto", "cuda", {"compile": "default"}, True, "auto"),
    ("auto", "cuda", {"compile": "aot_eager"}, True, "auto"),
    ("triton", "cuda", {}, True, "triton"),  # asked for: kept
    ("triton", "cuda", {}, False, "triton"),
    ("ref", "cuda", {"cuda_graph": True}, True, "ref"),
    ("auto", "cpu", {}, True, "auto"),  # the reference there (or the interpreter, as CI runs it)
    ("auto", None, {}, True, "auto"),
])
def test_layer_impl_keeps_the_kernels_where_launches_are_captured_or_compiled(impl, device, train_kw, training,
                                                                                expected):
    from bicyclegan.engine.model import layer_impl
    assert layer_impl(_impl_cfg(impl, **train_kw), device, training) == expected


@pytest.mark.parametrize("chosen", ["ref", "triton"])
def test_every_layer_is_built_with_layer_impls_choice_and_the_config_keeps_auto(monkeypatch, chosen):
    """BicycleGAN builds every layer that takes an impl (norms, z injection at every block, the
    multi-scale D's downsampling) with layer_impl's answer, and its cfg still says what was asked
    for (it is what checkpoints store). The networks are built on the CPU; layer_impl stands in
    for its answer on a GPU."""
    import bicyclegan.engine.model as model_module
    from bicyclegan.engine.networks import MultiscaleDiscriminator
    from bicyclegan.kernels import InstanceNormAct2d, ZConcatConv2d
    asked = []
    monkeypatch.setattr(model_module, "layer_impl", lambda cfg, device, training: asked.append(training) or chosen)
    cfg = TrainConfig(model=ModelConfig(**{**SMALL, "impl": "auto", "where_add": "all"}), batch_size=4)
    m = BicycleGAN(cfg)
    assert asked == [True] and m.impl == chosen and m.cfg.model.impl == "auto"
    kinds = {}
    for net in (m.G, m.E, m.D, m.D2):
        for mod in net.modules():
            if hasattr(mod, "impl"):
                kinds.setdefault(type(mod), set()).add(mod.impl)
    assert kinds == {InstanceNormAct2d: {chosen}, ZConcatConv2d: {chosen}, MultiscaleDiscriminator: {chosen}}


@pytest.mark.gpu
@pytest.mark.parametrize("train_kw,runs_kernels", [({}, False), ({"cuda_graph": True}, True),
                                                   ({"impl": "triton"}, True)])
def test_an_eager_cuda_step_under_auto_runs_torchs_layers(train_kw, runs_kernels):
    """On a GPU: the eager step of an impl="auto" model launches no Triton kernel; built for a CUDA
    graph, or with impl="triton", it does (counted at Triton's launch entry point)."""
    from triton.runtime.jit import JITFunction
    train_kw = dict(train_kw)  # (the parameter's own dict is shared between runs)
    impl = train_kw.pop("impl", "auto")
    m = BicycleGAN(_impl_cfg(impl, **train_kw), device="cuda")
    data = {k: v.cuda() for k, v in batch(m.cfg).items()}
    launches = []
    run = JITFunction.run

    def counted(self, *args, **kwargs):
        launches.append(self.fn.__name__)
        return run(self, *args, **kwargs)

    JITFunction.run = counted
    try:
        m.train_step(data)  # eager in both cases: the graph's capture is GraphedTrainStep's
        torch.cuda.synchronize()
    finally:
        JITFunction.run = run
    assert bool(launches) == runs_kernels, launches[:5]


def test_a_ctrl_c_while_the_optimizers_are_made_waits_for_them(monkeypatch):
    """The first optimizer imports torch._dynamo (a second of imports): a Ctrl-C there (a notebook's stop button)
    left it half imported, and every later training in that kernel failed on torch's AttributeError."""
    import os
    import signal
    made, real = [], torch.optim.Adam

    def adam(*a, **k):
        if not made:  # (where the import would be)
            os.kill(os.getpid(), signal.SIGINT)
        made.append(signal.getsignal(signal.SIGINT))
        return real(*a, **k)
    monkeypatch.setattr(torch.optim, "Adam", adam)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a terminal's; pytest-xdist ignores it)
    try:
        with pytest.raises(KeyboardInterrupt):
            BicycleGAN(small_cfg(), device="cpu")
        assert len(made) == 4 and signal.getsignal(signal.SIGINT) is signal.default_int_handler  # G, E, D, D2 made
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored (a script's background job): left so, none raised
        made.clear()
        assert BicycleGAN(small_cfg(), device="cpu").optimizers and made == [signal.SIG_IGN] * 4
    finally:
        signal.signal(signal.SIGINT, previous)
