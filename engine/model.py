"""BicycleGAN and the variants the paper compares, with a graph-safe training step.

One iteration (docs/method.md): a G+E phase (one backward) then a D phase
(one backward for D and D2). Where the reference toggles requires_grad to keep the z loss off E's
parameters and the G-phase GAN losses off D's, we call E and D with detached parameters
(torch.func.functional_call): the same gradients, no toggling and no wasted weight gradients, so
the step has static shapes and no host syncs and can be captured in a CUDA graph. D's outputs on
each fake serve both phases (_InputGradOnly): D is forwarded on a fake once, not twice.

Random draws, in order: eps for the encoded z (k x nz), z_random (k x nz), G's dropout masks (encoded
call, then random call), and with lambda_ms > 0 a second random z, then the masks of its G calls
(cvae/cae: the detached encoded code's, then the second code's). Variants:
  bicycle  cVAE-GAN + cLR-GAN on halves of the batch (A1, B1 encoded; B2 lends D2 a real image)
  cvae     E(B) -> z (reparameterised) -> G(A, z) ~ B with L1 + KL + GAN
  cae      as cvae with z = mu and no KL (the paper's cAE-GAN)
  clr      z ~ N(0, I) -> G(A, z) -> E ~ z, GAN on G(A, z), no image L1; E is trained by the z loss
  pix2pix  z ~ N(0, I) -> G(A, z) with L1 + GAN (pix2pix+noise; no encoder)
Single-discriminator variants use D weighted by lambda_GAN.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses

import torch
import torch.distributed as dist
import torch.nn as nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.func import functional_call

from .config import TrainConfig, check_bool
from .errors import ConfigError
from .io import interrupt_after
from .losses import gan_loss, kl_loss, l1, mode_seeking
from .networks import build_discriminator, build_encoder, build_generator, sync_batchnorm

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

OPTIMIZER = " optimizer"  # (nonfinite()'s name of a network's optimiser state)


def layer_impl(cfg: TrainConfig, device=None, training: bool = True) -> str:
    """The impl the networks are built with: cfg.model.impl, except that "auto" on a CUDA device is
    "ref" (torch's layers) unless the training step is captured in a CUDA graph (cuda_graph) or
    compiled (compile); inference (training=False) is neither.

    Why: in eager CUDA code every op pays the host's launch path, and at BicycleGAN's sizes that path,
    not the GPU, sets the pace. Our kernels' (an autograd Function, then Triton's launcher) costs
    more host time a call than cuDNN's and ATen's: on an H200 the eager bf16 step at 256 px took
    108.6 ms with them against 50.0 ms without (batch 2; 116.2 against 57.8 at batch 16), while
    its GPU work, graphed, is 10 to 19 ms. A graph replays the launches at no host cost and a
    compiled step fuses around the ops, so there the kernels stay. "triton" and "ref" are kept as
    given; a CPU device keeps "auto" (the reference, or the interpreter under TRITON_INTERPRET=1)."""
    impl = cfg.model.impl
    if impl != "auto" or device is None or torch.device(device).type != "cuda":
        return impl
    return "auto" if training and (cfg.cuda_graph or cfg.compile != "off") else "ref"


def spread_z(n: int, nz: int, seed: int) -> torch.Tensor:
    """n codes for a picture of samples: a scrambled Sobol set through the normal inverse CDF.

    Each code alone is a draw from N(0, I), like torch.randn; together they are stratified, so n = 8
    codes put one value in each eighth of every coordinate's prior. A trained encoder keeps a mode
    choice on one or two coordinates (the demo's palette on one), so a row of 8 plain random codes
    often repeats a mode and misses another (measured on five demo models: 3.2-3.5 of 4 palettes per
    row from plain draws, 3.7-4.0 from these)."""
    if nz == 0 or n == 0:
        return torch.zeros(n, nz)
    u = torch.quasirandom.SobolEngine(nz, scramble=True, seed=seed).draw(n, dtype=torch.float64)
    # A scrambled point can round to 0 or 1 in float64; clamp so ndtri stays finite.
    return torch.special.ndtri(u.clamp(1e-12, 1 - 1e-12)).float()


INTERP_MODES = ("slerp", "linear")  # the first is the default


def interp_z(z0: torch.Tensor, z1: torch.Tensor, n: int, mode: str = "slerp") -> torch.Tensor:
    """n codes from z0 to z1, both ends included (n >= 2), as n x nz, as the reference's util.interp_z:
    straight (linear) or along the great circle between their directions (slerp; linear when parallel).
    The interpolate command's paths and the explorer page's alike."""
    t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    a, b = z0.double()[None], z1.double()[None]
    if mode == "slerp":
        cos = torch.dot(z0.double() / (z0.double().norm() + 1e-10), z1.double() / (z1.double().norm() + 1e-10))
        omega = torch.arccos(cos.clamp(-1, 1))
        if abs(torch.sin(omega)) >= 1e-10:
            s = torch.sin(omega)
            return (torch.sin((1 - t) * omega) / s * a + torch.sin(t * omega) / s * b).to(z0.dtype)
    elif mode != "linear":
        raise ConfigError(f"mode={mode!r}: expected one of {', '.join(INTERP_MODES)}")
    return ((1 - t) * a + t * b).to(z0.dtype)


def _frozen_call(module: nn.Module, *args):
    """module(*args) with detached parameters: gradients reach the inputs, never the weights."""
    params = {n: p.detach() for n, p in module.named_parameters()}
    return functional_call(module, params, args)


class _InputGradOnly(torch.autograd.Function):
    """D's outputs on a fake, tied to the fake: gradients reach the fake, never D's weights.

    The outputs were computed with D's live weights from `leaf`, a detached copy of the fake that
    requires grad; the backward asks that graph for leaf's gradient alone, so no weight gradient is
    computed (as with _frozen_call), and keeps it for the D phase, whose loss on the same outputs
    reaches D's weights only. D's weights do not change between the phases (G and E step first),
    so the reference's second forward of D on the fake computed these outputs again."""

    @staticmethod
    def forward(ctx, x, kept):
        # kept = (leaf, outputs) as one non-tensor argument: outputs passed as tensors would be
        # inputs of this node, and the G phase's backward would free their graph on its way.
        ctx.leaf, ctx.preds = kept
        return tuple(p.clone() for p in ctx.preds)

    @staticmethod
    def backward(ctx, *grads):
        (gx,) = torch.autograd.grad(ctx.preds, ctx.leaf, grads, retain_graph=True)
        return gx, None


class BicycleGAN(nn.Module):
    """Holds G, E, D, D2 (absent ones are None) and their Adam optimisers."""

    def __init__(self, cfg: TrainConfig, device: torch.device | str | None = None, training: bool = True):
        """training=False builds what inference needs (G, its moving average, E): no
        discriminators, optimisers or compilation."""
        super().__init__()
        training = check_bool("training", training)
        if device is not None:  # "auto" and the commands' other names, their errors the project's own
            from .runtime import pick_device
            device = pick_device(device)
        # A copy, checked again: the caller's config, changed after this (cfg.variant = "pix2pix" for the next
        # model of a notebook), changed this model's objective under networks built for another one.
        self.cfg = cfg = TrainConfig.own_copy(cfg, "BicycleGAN")
        if training:  # (BicycleGAN(cfg).train_step is the README's one iteration: refused as train refuses it)
            self.check_trainable(cfg)
        m, v = cfg.model, cfg.variant
        # What the layers run (layer_impl); cfg keeps what was asked for, so a checkpoint's config
        # resumes or samples elsewhere (with a CUDA graph, on the CPU) with that place's choice.
        self.impl = layer_impl(cfg, device, training)
        if device is not None:  # (None: built on the CPU, to be moved)
            from .runtime import check_fallback_mode
            check_fallback_mode(self.impl, device)
        m = dataclasses.replace(m, impl=self.impl) if self.impl != m.impl else m
        self.enc_branch = v in ("bicycle", "cvae", "cae")
        self.rand_branch = v in ("bicycle", "clr", "pix2pix")
        self.G = build_generator(m)
        nets = cfg.trained_networks  # (the trainer checks a checkpoint's against them before any is built)
        self.E = build_encoder(m) if "E" in nets else None
        self.D = build_discriminator(m, m.netD) if training and "D" in nets else None
        self.D2 = build_discriminator(m, m.netD2) if training and "D2" in nets else None
        if training and cfg.sync_bn:
            for net in self.networks().values():
                sync_batchnorm(net)
        # The moving average of G's weights (cfg.ema > 0) samples better than G itself; it is a
        # plain attribute, not a submodule, so networks(), parameters() and train() leave it out. Its
        # weights are in state_dict() all the same (_save_to_state_dict), with its count.
        self.__dict__["G_ema"] = copy.deepcopy(self.G).requires_grad_(False).eval() if cfg.ema > 0 else None
        self._ema_pairs = None
        # Updates of the average so far, on the device so the captured step can count (see _update_ema).
        self.register_buffer("ema_steps", torch.zeros(()), persistent=cfg.ema > 0)
        if device is not None:
            self.to(device)
        if m.channels_last:
            self.to(memory_format=torch.channels_last)
        self.optimizers, self.scaler = {}, None
        self.amp_skipped = None  # (train_step's, under fp16)
        # The checkpoint file the weights were read from ({"path", "digest", "step", "epoch"}: load_checkpoint),
        # None for a model built here: what a measurement of the weights names, whatever the file holds by then.
        self.source = None
        if not training:
            return
        if cfg.compile != "off":
            # In place (nn.Module.compile), so state_dict keys stay those of the plain networks. Our
            # Triton kernels are custom ops, opaque to the compiler: it fuses what lies between them.
            # Inductor's own CUDA graphs are off: cuda_graph captures the whole step instead.
            kw = ({"backend": "aot_eager"} if cfg.compile == "aot_eager" else
                  {"mode": "max-autotune-no-cudagraphs" if cfg.compile == "max-autotune" else "default"})
            for net in self.networks().values():
                net.compile(**kw)
        dev = self.device
        fused = dev.type == "cuda"
        # A captured step replays its kernels with the arguments of the capture: Adam must keep its
        # step count and learning rate in device tensors (capturable) so they can change.
        graphed = cfg.cuda_graph and fused
        with interrupt_after():  # (the first optimizer imports torch._dynamo: a Ctrl-C in it spoilt the import)
            self.optimizers = {
                name: torch.optim.Adam(net.parameters(), lr=torch.tensor(cfg.lr, device=dev) if graphed else cfg.lr,
                                       betas=(cfg.beta1, cfg.beta2), fused=fused, capturable=graphed)
                for name, net in self.networks().items()}
        self.scaler = torch.amp.GradScaler(dev.type, enabled=cfg.amp == "fp16")

    @staticmethod
    def check_trainable(cfg: TrainConfig) -> None:
        """cfg.check_trainable, its refusal saying what the config still makes."""
        try:
            cfg.check_trainable()
        except ConfigError as e:
            raise ConfigError(f"{e}. A model for inference, which this config still makes: training=False "
                              f"(load_checkpoint's default)") from None

    def _apply(self, fn, *args, **kwargs):
        # .to(), .cuda(), .half() ... reach the moving average too, though it is no submodule.
        super()._apply(fn, *args, **kwargs)
        if self.__dict__.get("G_ema") is not None:
            self.G_ema._apply(fn, *args, **kwargs)
        self._ema_pairs = None
        return self

    # The average's weights under "G_ema.": without them a state_dict() round trip (torch.save, load_state_dict)
    # kept G, and generate() sampled with the new model's initial average, random weights.
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.G_ema is not None:
            self.G_ema.state_dict(destination=destination, prefix=prefix + "G_ema.", keep_vars=keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if self.G_ema is not None:
            ema = prefix + "G_ema."
            own = {k[len(ema):]: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(ema)]}
            result = self.G_ema.load_state_dict(own, strict=False)
            missing_keys += [ema + k for k in result.missing_keys]
            unexpected_keys += [ema + k for k in result.unexpected_keys]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # -- helpers -------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {n: getattr(self, n) for n in ("G", "E", "D", "D2") if getattr(self, n) is not None}

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def _autocast(self):
        if self.cfg.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.cfg.amp])

    def _d_input(self, A, B):
        return torch.cat([A, B], 1) if self.cfg.model.conditional_D else B

    def _d_on_fake(self, D, A1, fake, key, out):
        """D's outputs on a fake for G's GAN term, gradients reaching the fake alone. Where a forward
        of D changes nothing in it (no running statistics) and D runs uncompiled, the outputs are
        kept in out[key] for D's own loss on that fake in the D phase (_InputGradOnly): one forward
        of D on each fake, not two. A compiled D's backward computes every gradient at once, weights'
        included, so it keeps the detached-weights call and the D phase's second forward."""
        x = self._d_input(A1, fake)
        if self.cfg.compile != "off" or any(True for _ in D.buffers()):
            return _frozen_call(D, x)
        leaf = x.detach().requires_grad_()
        out[key] = D(leaf)
        return list(_InputGradOnly.apply(x, (leaf, out[key])))

    ONE_G_CALL_MAX = 4  # codes per branch up to which G runs once on both (measured: 1 gains, 56 does not)

    def _one_g_call(self, n: int) -> bool:
        """Whether the bicycle step may run G once on cat(A1, A1) with both codes: only where that is the same
        function of each sample (no batch norm, whose statistics would be of both calls' images; no running
        statistics, updated once instead of twice; no dropout: one mask draw instead of the reference's two; G's
        layers looked at, not the config: a subclass may build its own) and where it pays (a small batch)."""
        return n <= self.ONE_G_CALL_MAX and not any(
            isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd))
            or getattr(m, "running_mean", None) is not None for m in self.G.modules())

    def _rand_D(self):
        """The discriminator of the random-z branch: D2 in bicycle (D with use_same_D), else D."""
        return self.D2 if self.D2 is not None else self.D

    def _average_grads(self, names) -> None:
        """Data parallelism under torchrun: average the gradients of these networks over ranks
        (one flat all-reduce per phase; a no-op in a single process)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        grads = [p.grad for n in names for p in self.networks()[n].parameters() if p.grad is not None]
        if not grads:
            return
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        for g, avg in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(avg)

    def z_random(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.nz, device=self.device)

    def set_lr(self, lr: float) -> None:
        """Set every optimiser's learning rate; a capturable Adam's device tensor is filled in place,
        so a captured CUDA graph sees the new value."""
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr

    @staticmethod
    def describe_nonfinite(bad: dict[str, int]) -> str:
        """nonfinite()'s counts in words: "non-finite weights in G (3 values), D (1 values)"; the optimisers'
        "non-finite optimizer state of G (5 values: ...)"."""
        def counts(names):
            return ", ".join(f"{n.removesuffix(OPTIMIZER)} ({bad[n]} values)" for n in names)
        weights = [n for n in bad if not n.endswith(OPTIMIZER)]
        state = [n for n in bad if n.endswith(OPTIMIZER)]
        said = [f"non-finite weights in {counts(weights)}"] if weights else []
        if state:  # (the rule in nonfinite's docstring)
            said.append(f"non-finite optimizer state of {counts(state)} (Adam's second moments: a gradient past "
                        f"~1.8e19 squared overflows float32, its update is then 0 and those weights train no more)")
        return "; ".join(said)

    def nonfinite(self, optimizers: bool = False) -> dict[str, int]:
        """Count of NaN/inf values per network (weights and buffers, the moving average included);
        empty when all are finite. optimizers: each optimiser's state too (Adam's moments, as "G optimizer"):
        a gradient's square past float32's range made them inf with finite weights and losses, the update 0
        and the weights frozen for good. One host sync: call it at log intervals (and saves), not every step."""
        nets = {**self.networks(), **({"G_ema": self.G_ema} if self.G_ema is not None else {})}
        groups = {name: [*net.parameters(), *net.buffers()] for name, net in nets.items()}
        if check_bool("optimizers", optimizers):
            groups.update({name + OPTIMIZER: [t for st in opt.state.values() for t in st.values()
                                              if isinstance(t, torch.Tensor)] for name, opt in self.optimizers.items()})
        names, counts = [], []
        for name, tensors in groups.items():
            if tensors := [t for t in tensors if t.is_floating_point()]:
                names.append(name)
                counts.append(torch.stack([(~torch.isfinite(t)).sum() for t in tensors]).sum())
        # Every network's count read back at once: an int() per network was a sync each.
        return {n: c for n, c in zip(names, torch.stack(counts).tolist() if counts else []) if c}

    @property
    def sampler(self) -> nn.Module:
        """The generator to sample with: the moving average of G's weights when kept, else G."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def _update_ema(self) -> None:
        # On the device, without host syncs: part of the (graph-capturable) training step.
        if self._ema_pairs is None:  # (re)built after .to(), which replaces buffers
            ema, live = self.G_ema.state_dict(), self.G.state_dict()
            floats = [k for k, t in ema.items() if t.is_floating_point()]
            self._ema_pairs = ([ema[k] for k in floats], [live[k] for k in floats],
                               [(ema[k], live[k]) for k in ema if k not in floats])
        ema_f, live_f, others = self._ema_pairs
        # The average reaches back at most about half the steps so far (weight 2 / (t + 1), the first
        # update copies G), then settles at 1 - ema. A plain 1 - ema from the start keeps the random
        # initial weights in it (0.999 ** t: two thirds at step 400 and a tenth at the demo's last step
        # 2,240), so early samples were noise. The weight stays a device tensor: no host sync.
        self.ema_steps.add_(1)
        w = (2.0 / (self.ema_steps + 1)).clamp_(min=1.0 - self.cfg.ema)
        step = torch._foreach_sub(live_f, ema_f)
        torch._foreach_mul_(step, w)
        torch._foreach_add_(ema_f, step)
        for e, v in others:  # e.g. BatchNorm's batch counter
            e.copy_(v)

    # -- inference -----------------------------------------------------------------------------
    @staticmethod
    def _input(net: nn.Module, name: str, x, channels: int) -> torch.Tensor:
        """x where `net`'s weights are, in their dtype (as train_step moves its batch), once it is a float
        tensor N x channels x H x W: another form was a torch error some layers down (channels, dtype)."""
        if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point() and x.shape[1] == channels):
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a float tensor N x {channels} x H x W in [-1, 1], got {got}")
        weight = next(net.parameters())
        return x.to(weight.device, weight.dtype)

    @torch.no_grad()
    def encode(self, B: torch.Tensor) -> torch.Tensor:
        """The deterministic code of B (N x output_nc x H x W in [-1, 1]): mu of E(B), N x nz on the
        model's device."""
        if self.E is None:
            raise ConfigError(f"this model (variant {self.cfg.variant}) has no trained encoder")
        return self.E(self._input(self.E, "encode: B", B, self.cfg.model.output_nc))[0]

    @torch.no_grad()
    def generate(self, A: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """B for each A (N x input_nc x H x W in [-1, 1]) and z (N x nz; drawn from N(0, I) when not
        given), with the sampling generator; on the model's device, in its dtype. In the module's mode, as any
        torch module: model.eval() first for outputs without dropout (the dataset presets' G has it) and with
        batch norm's running statistics (sample_columns and the commands do so themselves)."""
        G = self.sampler
        A = self._input(G, "generate: A", A, self.cfg.model.input_nc)
        if z is None:
            z = self.z_random(A.shape[0])
        elif not isinstance(z, torch.Tensor):
            raise ValueError(f"generate: z must be a tensor N x {self.cfg.model.nz}, got {type(z).__name__}")
        return G(A, z.to(A.device))

    # -- training ------------------------------------------------------------------------------
    def generator_losses(self, A, B):
        """({term: loss} of G and E, what train_step backpropagates into them and logs, each name a log.jsonl
        column; {"A1", "B1", "A2", "B2", and the fakes}: what discriminator_losses reads). A subclass adds its own
        terms here (a perceptual loss), its model trained with Trainer(cfg, model_cls=...)."""
        cfg = self.cfg
        if cfg.variant == "bicycle":
            k = A.shape[0] // 2
            A1, B1, A2, B2 = A[:k], B[:k], A[k:], B[k:]
        else:
            A1, B1, A2, B2 = A, B, A, B
        n, L, out = A1.shape[0], {}, {"A1": A1, "B1": B1, "A2": A2, "B2": B2}
        # The reference's order of random draws: eps, z_random, then G's dropout masks (encoded
        # call first), so a seed gives the same z and masks as there.
        if self.enc_branch:
            mu, logvar = self.E(B1)
            if cfg.variant == "cae":
                z_enc = mu
            else:
                # The noise in float32 under autocast too (mu is bf16 there: quantised noise).
                z_enc = mu + torch.randn(mu.shape, device=mu.device) * torch.exp(0.5 * logvar)
        if self.rand_branch:
            z_rand = self.z_random(n)
        fake_rand = fake2 = z2 = None
        if self.enc_branch:
            if self.rand_branch and self._one_g_call(n):
                # One G call on both codes: per-sample the same function (instance norm, no dropout), and at a
                # small batch the convolutions' per-call weight work (oneDNN's reorders, the weight
                # gradient's reductions) is paid once, not twice. The mode-seeking term's code too, drawn
                # here as it would be below (no mask drawn between, no dropout): a call of n images beside
                # one of 2n made a compiled G's batch size dynamic.
                codes = [z_enc, z_rand.to(z_enc.dtype)]
                if cfg.lambda_ms > 0:
                    z2 = self.z_random(n)
                    codes.append(z2.to(z_enc.dtype))
                fake_enc, fake_rand, *fake2 = self.G(torch.cat([A1] * len(codes)), torch.cat(codes)).split(n)
                fake2 = fake2[0] if fake2 else None
            else:
                fake_enc = self.G(A1, z_enc)
            out.update(fake_enc=fake_enc, z_enc=z_enc)
            if self.D is not None:
                L["G_GAN"] = cfg.lambda_GAN * gan_loss(
                    self._d_on_fake(self.D, A1, fake_enc, "D_fake_enc", out), True, cfg.gan_mode)
            L["G_L1"] = cfg.lambda_L1 * l1(fake_enc, B1)
            if cfg.variant != "cae" and cfg.lambda_kl > 0:
                L["kl"] = cfg.lambda_kl * kl_loss(mu, logvar)
        if self.rand_branch:
            if fake_rand is None:
                fake_rand = self.G(A1, z_rand)
            out.update(fake_rand=fake_rand, z_rand=z_rand)
            D, weight = self._rand_D(), (cfg.lambda_GAN2 if cfg.variant == "bicycle" else cfg.lambda_GAN)
            if D is not None and weight > 0:
                name = "G_GAN2" if cfg.variant == "bicycle" else "G_GAN"
                L[name] = weight * gan_loss(
                    self._d_on_fake(D, A1, fake_rand, "D_fake_rand", out), True, cfg.gan_mode)
            if cfg.variant == "pix2pix":
                L["G_L1"] = cfg.lambda_L1 * l1(fake_rand, B1)
            if cfg.variant in ("bicycle", "clr") and cfg.lambda_z > 0:
                # bicycle: the z loss trains G only (E frozen); clr: it is E's only training signal.
                mu2 = (_frozen_call(self.E, fake_rand) if cfg.variant == "bicycle" else self.E(fake_rand))[0]
                L["z_L1"] = cfg.lambda_z * l1(mu2, z_rand)
        if cfg.lambda_ms > 0:
            # MSGAN's term regularises G alone (its outputs for two codes should differ as the codes
            # do). cvae/cae have no random branch: the encoded code stands in, detached, through a G
            # call of its own. Through fake_enc and z_enc E's weights learnt to pull their codes
            # towards the random second one (a tiny cAE-GAN's first step: 3e4 times the other terms').
            if z2 is None:
                z2 = self.z_random(n)
            if self.rand_branch:
                fake, z = out["fake_rand"], out["z_rand"]
            else:
                z = out["z_enc"].detach()
                fake = self.G(A1, z)
            if fake2 is None:  # (after fake's call: the reference's order of dropout masks)
                fake2 = self.G(A1, z2)
            L["ms"] = cfg.lambda_ms * mode_seeking(fake, fake2, z, z2)
        return L, out

    def discriminator_losses(self, out):
        """{term: loss} of D and D2 from generator_losses' `out` (their fakes, detached from G's graph here)."""
        cfg, L = self.cfg, {}
        A1, B1, A2, B2 = out["A1"], out["B1"], out["A2"], out["B2"]

        def d_loss(D, branch, A_real, B_real):
            # D's outputs on the fake from the G phase where kept (_d_on_fake), else a forward here
            fake = out.get(f"D_{branch}") or D(self._d_input(A1, out[branch].detach()))
            return (gan_loss(fake, False, cfg.gan_mode)
                    + gan_loss(D(self._d_input(A_real, B_real)), True, cfg.gan_mode))

        if self.enc_branch and self.D is not None:
            L["D"] = d_loss(self.D, "fake_enc", A1, B1)
        if self.rand_branch and self._rand_D() is not None:
            if cfg.variant == "bicycle":
                # use_same_D: D learns from the random branch whatever lambda_GAN2, which weighs
                # only G's term there (the reference's update_D)
                if cfg.lambda_GAN2 > 0 or cfg.model.use_same_D:
                    L["D2"] = d_loss(self._rand_D(), "fake_rand", A2, B2)
            else:
                L["D"] = d_loss(self.D, "fake_rand", A1, B1)
        return L

    def _check_batch(self, batch) -> None:
        """Shapes only (no sync): a batch of the wrong form was a bare KeyError 'A' or a conv's
        complaint about channels, several layers down."""
        m = self.cfg.model
        want = f"a dict of 'A' (N x {m.input_nc} x H x W) and 'B' (N x {m.output_nc} x H x W) float tensors"
        if not isinstance(batch, dict) or "A" not in batch or "B" not in batch:
            got = sorted(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(f"train_step: the batch must be {want}; got {got}")
        A, B = batch["A"], batch["B"]
        tensors = all(isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point() for t in (A, B))
        if not tensors or (A.shape[1], B.shape[1]) != (m.input_nc, m.output_nc) or \
                A.shape[0] != B.shape[0] or A.shape[2:] != B.shape[2:]:
            shapes = [f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
                      for t in (A, B)]
            raise ValueError(f"train_step: the batch must be {want}; got A {shapes[0]}, B {shapes[1]}")
        side = 2 ** getattr(self.G, "depth", 0)  # (U-Net levels: G's own check saw half the batch, the bicycle split's)
        if A.shape[2] % side or A.shape[3] % side:
            raise ValueError(f"train_step: this G takes images whose H and W are multiples of {side}, got A "
                             f"{tuple(A.shape)}")

    @torch.enable_grad()  # (inside a caller's no_grad block, the backward found no graph: a torch error)
    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One full iteration: G/E update, then D and D2, in training mode (the model is left in it). Returns
        detached loss tensors (no sync). The batch goes to the model's device and dtype."""
        if not self.optimizers:  # it ran the G phase, then failed on the missing scaler: an AttributeError
            raise ConfigError("train_step: this model was built for inference (training=False, load_checkpoint's "
                              "default): it has no discriminators or optimisers; build it with BicycleGAN(cfg) or "
                              "load_checkpoint(path, training=True)")
        self._check_batch(batch)
        if not self.training:  # (a model.eval() for a preview trained on with dropout off and batch norm frozen)
            self.train()
        dtype = next(self.G.parameters()).dtype  # (a float64 batch of a float32 model was a conv's dtype error)
        A = batch["A"].to(self.device, dtype, non_blocking=True)
        B = batch["B"].to(self.device, dtype, non_blocking=True)
        if self.cfg.variant == "bicycle" and A.shape[0] % 2:
            raise ValueError(f"train_step: variant bicycle needs an even batch, got {A.shape[0]}")
        if self.cfg.model.channels_last:
            A, B = A.contiguous(memory_format=torch.channels_last), B.contiguous(memory_format=torch.channels_last)
        opts, scaler = self.optimizers, self.scaler
        gen_nets = [n for n in ("G", "E") if n in opts]
        dis_nets = [n for n in ("D", "D2") if n in opts]

        with self._autocast():
            LG, out = self.generator_losses(A, B)
        for n in gen_nets:
            opts[n].zero_grad(set_to_none=True)
        scaler.scale(sum(LG.values())).backward()
        self._average_grads(gen_nets)
        for n in ("E", "G"):  # the reference steps E, then G
            if n in opts:
                scaler.step(opts[n])

        LD = {}
        if dis_nets:
            with self._autocast():
                LD = self.discriminator_losses(out)
            for n in dis_nets:
                opts[n].zero_grad(set_to_none=True)
            # inputs: the fakes' copies that D's kept outputs grew from (_d_on_fake) need no gradient
            scaler.scale(sum(LD.values())).backward(
                inputs=[p for n in dis_nets for p in opts[n].param_groups[0]["params"]])
            self._average_grads(dis_nets)
            for n in dis_nets:
                scaler.step(opts[n])
        if scaler.is_enabled():
            # 1 for each optimiser (self.optimizers' order) whose step the GradScaler skipped (non-finite fp16
            # gradients: its weights untouched), for the trainer's log: device tensors, no sync. Read before
            # update(), which forgets them (and adds the others into the first in place).
            self.amp_skipped = torch.stack([sum(scaler._per_optimizer_states[id(o)]["found_inf_per_device"].values())
                                            for o in opts.values()])
        scaler.update()
        if self.G_ema is not None:
            self._update_ema()
        return {k: v.detach() for k, v in {**LG, **LD}.items()}

    # -- state ---------------------------------------------------------------------------------
    def training_state(self) -> dict:
        """Networks, optimisers, AMP scaler and moving average: what a resumed run needs of the model."""
        state = {"nets": {n: net.state_dict() for n, net in self.networks().items()},
                 "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
                 "scaler": self.scaler.state_dict() if self.scaler is not None else {}}
        if self.G_ema is not None:
            state["ema"] = self.G_ema.state_dict()
            state["ema_steps"] = int(self.ema_steps.item())
        return state

    def load_training_state(self, state: dict, strict: bool = True) -> None:
        """Load what training_state() wrote. strict: the checkpoint must hold exactly this model's
        networks; otherwise networks this model lacks (D for inference) are skipped. Either way the
        optimisers and the AMP scaler take the states the checkpoint holds of them, and one it lacks
        (a start from weights only, whose optimizers are {}) is left fresh."""
        nets = self.networks()
        if strict and set(state["nets"]) != set(nets):
            raise ValueError(f"checkpoint holds networks {sorted(state['nets'])}, this model has "
                             f"{sorted(nets)}")
        missing = set(nets) - set(state["nets"])
        if missing:
            raise ValueError(f"checkpoint lacks networks {sorted(missing)}")
        for n, net in nets.items():
            net.load_state_dict(state["nets"][n])
        if self.G_ema is not None:
            # A checkpoint without an average (trained with ema=0) starts one from G.
            self.G_ema.load_state_dict(state.get("ema") or state["nets"]["G"])
            # An average saved before its updates were counted is taken as settled; one started from G
            # ramps up afresh.
            self.ema_steps.fill_(state.get("ema_steps", 10**9 if state.get("ema") else 0))
        for n, opt in self.optimizers.items():
            if n in state.get("optimizers", {}):
                self._load_optimizer(opt, state["optimizers"][n])
        if state.get("scaler") and self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])

    @staticmethod
    def _load_optimizer(opt: torch.optim.Optimizer, sd: dict) -> None:
        # load_state_dict replaces each param_group whole, lr and flags included; this model's own
        # choices (fused, capturable, and the device lr tensor a CUDA graph reads) must survive a
        # checkpoint written by another kind of run (CPU, plain CUDA, graphed). Only the lr's value
        # comes from the checkpoint (the trainer sets it from the schedule anyway).
        own = [{k: g[k] for k in ("lr", "fused", "capturable", "foreach") if k in g} for g in opt.param_groups]
        sd = {**sd, "param_groups": [{**g, **{k: v for k, v in o.items() if k != "lr"}}
                                     for g, o in zip(sd["param_groups"], own)]}
        opt.load_state_dict(sd)
        for g, o, saved in zip(opt.param_groups, own, sd["param_groups"]):
            if isinstance(o["lr"], torch.Tensor):
                o["lr"].fill_(float(saved["lr"]))
                g["lr"] = o["lr"]
            else:
                g["lr"] = float(saved["lr"])
        # Moments keep the memory layout they were saved in (load_state_dict's .to() preserves it): a
        # run resumed with channels_last changed pairs NCHW moments with NHWC parameters, which fused
        # Adam refuses on CUDA and computes wrongly on the CPU. Each takes its parameter's layout.
        for group in opt.param_groups:
            for p in group["params"]:
                for k, v in opt.state.get(p, {}).items():
                    if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                        opt.state[p][k] = torch.empty_like(p, dtype=v.dtype).copy_(v)
