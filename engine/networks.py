"""The networks: U-Net generator G(A, z), encoder E(B) -> (mu, logvar), multi-scale PatchGAN D.

Parameter-for-parameter the reference's networks (counts are asserted in tests, and outputs
against transcriptions of the reference's modules), restructured where the maths allows so the
kernels of bicyclegan.kernels apply:
- every encoder block's "concatenate z, LeakyReLU, conv" is one ZConcatConv2d;
- norm + activation pairs are one InstanceNormAct2d. In the decoder the reference applies the
  activation to cat(up, skip) in the parent block; activating each half in the child instead is
  the same function (dropout, a positive scaling, commutes with ReLU/LeakyReLU), and lets the
  decoder's InstanceNorm fuse with it. ELU does not commute with dropout: with both, the ELU
  follows the dropout, as in the reference.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from bicyclegan.kernels import InstanceNormAct2d, ZConcatConv2d, apply_act, avg_pool2d
from bicyclegan.kernels._impl import memory_format

from .config import ModelConfig, TrainConfig

LRELU = 0.2


def _act_name(nl: str) -> str:
    return {"relu": "relu", "lrelu": "leaky_relu", "elu": "elu"}[nl]


class Act(nn.Module):
    """ReLU / LeakyReLU(slope) / ELU / identity by name; `inplace` only where the input is dead after."""

    def __init__(self, act: str, inplace: bool = False, slope: float = LRELU):
        super().__init__()
        self.act, self.inplace, self.slope = act, inplace, slope

    def forward(self, x):
        return apply_act(x, self.act, self.slope, self.inplace)

    def extra_repr(self):
        slope = f", slope={self.slope}" if self.act == "leaky_relu" else ""
        return f"{self.act}{slope}{', inplace' if self.inplace else ''}"


def norm_act(norm: str, channels: int, act: str, impl: str) -> nn.Module:
    """The norm layer followed by `act` ("none" for no activation), fused where we have a kernel."""
    if norm == "instance":
        return InstanceNormAct2d(channels, act=act, slope=LRELU, impl=impl)
    if norm == "batch":
        return nn.Sequential(nn.BatchNorm2d(channels), Act(act, inplace=True))
    return Act(act, inplace=False)


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) as an autograd op: the gradient of a sum over ranks is the sum of every rank's
    gradient, so the backward is an all_reduce too (one per forward). No host sync: capturable."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the global batch under torch.distributed:
    each rank's per-channel sum, sum of squares and count (fp32, also under autocast) are summed over
    ranks in one all-reduce of 3*C values (and one in the backward), so ranks' batches may differ.
    Eval mode, and a single process, are nn.BatchNorm2d's own; the state_dict is nn.BatchNorm2d's, so
    checkpoints load anywhere. torch's SyncBatchNorm runs on CUDA only; this one also on gloo (CPU),
    where it is tested."""

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        acc = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 inputs: statistics in fp32
        # Sums of x - running_mean (the same on every rank): less cancellation in sum(x^2) - n*mean^2
        # once the running mean has settled near the batch means.
        tracked = self.running_mean is not None
        shift = self.running_mean.to(acc, copy=True) if tracked else x.new_zeros(x.shape[1], dtype=acc)
        xs = x.to(acc) - shift[:, None, None]
        # Each rank's count goes with its sums: a rank's batch may differ (a loader keeping its last
        # batch), and world_size * this rank's count would then be the wrong n on every rank.
        count = xs.new_full((x.shape[1],), x.numel() // x.shape[1])
        sums = _SumOverRanks.apply(torch.stack([xs.sum((0, 2, 3)), xs.square().sum((0, 2, 3)), count]))
        n = sums[2]  # values per channel in the global batch
        d_mean = sums[0] / n  # the global mean minus the shift
        var = (sums[1] / n - d_mean.square()).clamp_min(0)  # biased: what normalises
        y = (xs - d_mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            y = y * self.weight[:, None, None] + self.bias[:, None, None]
        if tracked:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                # nn.BatchNorm2d's update (momentum None: the cumulative average), its variance unbiased
                w = (1.0 / self.num_batches_tracked).to(acc) if self.momentum is None else self.momentum
                self.running_mean.lerp_((shift + d_mean).to(self.running_mean.dtype), w)
                self.running_var.lerp_((var * (n / (n - 1).clamp_min(1))).to(self.running_var.dtype), w)
        return y.to(x.dtype)


def sync_batchnorm(net: nn.Module) -> nn.Module:
    """`net` with every nn.BatchNorm2d replaced (in place) by a SyncBatchNorm2d holding its weights."""
    for name, child in net.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            sync.load_state_dict(child.state_dict(), assign=True)  # its tensors: device and dtype kept
            setattr(net, name, sync)
        else:
            sync_batchnorm(child)
    return net


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------
def _upconv(in_nc: int, out_nc: int, upsample: str) -> nn.Module:
    if upsample == "basic":
        return nn.ConvTranspose2d(in_nc, out_nc, kernel_size=4, stride=2, padding=1)
    return BilinearUpConv(nn.Upsample(scale_factor=2, mode="bilinear"), nn.ReflectionPad2d(1),
                          nn.Conv2d(in_nc, out_nc, kernel_size=3))


class BilinearUpConv(nn.Sequential):
    """The reference's bilinear upconv: Upsample(x2, bilinear), ReflectionPad2d(1), Conv2d 3x3, as its
    children (the reference's state_dict keys). A plane one pixel wide (the U-Net's innermost level,
    1 x 1 for a square image) has nothing to interpolate across: it is upsampled along its height
    alone and repeated across, the same values and gradients. Why: torch.compile's CPU code generator
    (inductor, torch 2.13) fails on the backward of the upsampling and padding of such a plane (an
    AssertionError in its vectorised store), so `--compile default --upsample bilinear` stopped every
    U-Net on the CPU at its first step."""

    def forward(self, x):
        if x.shape[-1] != 1:
            if x.device.type == "cpu" and memory_format(x) != torch.channels_last:
                # On the CPU the upsampling's backward, the padding and the 3x3 conv run about twice as fast in
                # channels_last (NCHW: the upsampling copies its input, oneDNN reorders around the conv): the demo's
                # training step ran 1.27-1.32x as fast (bench/bench_cpu_step.py, cpu_demo_step). NCHW out again.
                return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
            return super().forward(x)
        h = x.shape[-2]
        # (size, not scale_factor: the same source rows, as size / input size is the same 2)
        y = F.interpolate(x, size=(2 * h, 1), mode="bilinear") if h > 1 else x
        y = F.pad(y.expand(-1, -1, 2 * h, 2), (1, 1, 1, 1), mode="reflect")
        # In the layout the upsampling gives (channels_last for a channels_last x, but NCHW for a 1 x 1
        # one, which torch calls ambiguous), so that the conv's output is in the layout it had.
        return self[2](y.contiguous(memory_format=memory_format(x)))


class UnetBlock(nn.Module):
    """One U-Net level. down: [act on cat(x, z)] conv4x4s2 [norm]; then the inner levels; up:
    upconv, then norm + act (outermost: Tanh). Non-outermost blocks return cat(act(up), skip):
    the parent's up-path input, already activated (see the module docstring)."""

    def __init__(self, input_nc, outer_nc, inner_nc, nz, submodule=None, outermost=False,
                 innermost=False, norm="instance", nl="relu", use_dropout=False, upsample="basic",
                 impl="auto"):
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        self.act = _act_name(nl)
        self.down = ZConcatConv2d(input_nc, nz, inner_nc, 4, 2, 1,
                                  act="none" if outermost else "leaky_relu", slope=LRELU, impl=impl)
        middle = not (outermost or innermost)
        self.down_norm = norm_act(norm, inner_nc, "none", impl) if middle and norm != "none" else None
        self.submodule = submodule
        # The innermost block's up path starts from its own down output, not a concatenation.
        self.inner_act = Act(self.act, inplace=True) if innermost else None
        self.up = _upconv(inner_nc if innermost else inner_nc * 2, outer_nc, upsample)
        self.dropout = nn.Dropout(0.5) if use_dropout and middle else None
        late = self.act == "elu" and self.dropout is not None  # ELU after the dropout
        if outermost:
            self.up_norm = None
        else:
            self.up_norm = norm_act(norm, outer_nc, "none" if late else self.act, impl)
        self.late_act = Act(self.act, inplace=True) if late else None
        # The skip half. Where no z is concatenated to x (where_add=input, or nz=0) the reference's
        # in-place LeakyReLU(0.2) of the down path overwrites x itself before torch.cat([model(x), x]),
        # so its parent's nl sees lrelu(x): relu(lrelu(x)) = relu(x); lrelu(lrelu(x)) is a LeakyReLU
        # of slope 0.04; elu(lrelu(x)) needs both. With z, that LeakyReLU runs on cat(x, z), a copy.
        pre = nz == 0 and not outermost
        self.skip_lrelu = pre and self.act == "elu"
        self.skip_act = Act(self.act, inplace=True, slope=LRELU ** 2 if pre else LRELU)

    def forward(self, x, z):
        h = self.down(x, z)
        if self.down_norm is not None:
            h = self.down_norm(h)
        h = self.inner_act(h) if self.innermost else self.submodule(h, z)
        y = self.up(h)
        if self.outermost:
            return torch.tanh(y)
        y = self.up_norm(y)
        if self.dropout is not None:
            y = self.dropout(y)
        if self.late_act is not None:
            y = self.late_act(y)
        # lrelu(x) out of place: x is saved for the backward of self.down.
        out = torch.cat([y, F.leaky_relu(x, LRELU) if self.skip_lrelu else x], 1)
        # The skip half is activated in place inside the fresh concatenation: no extra buffer for act(x).
        self.skip_act(out[:, y.shape[1]:])
        return out


class UnetGenerator(nn.Module):
    """G(A, z) -> B. where_add="all" concatenates z at every encoder block, "input" at the first."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.nz, self.where_add = cfg.nz, cfg.where_add
        self.depth = depth = cfg.unet_depth
        ngf = cfg.ngf
        ch = [ngf * min(2 ** i, 8) for i in range(depth)]  # inner channels of level i
        block = None
        for i in reversed(range(depth)):
            nz_i = cfg.nz if (cfg.where_add == "all" or i == 0) else 0
            block = UnetBlock(
                input_nc=cfg.input_nc if i == 0 else ch[i - 1],
                outer_nc=cfg.output_nc if i == 0 else ch[i - 1],
                inner_nc=ch[i], nz=nz_i, submodule=block, outermost=i == 0,
                innermost=i == depth - 1, norm=cfg.norm, nl=cfg.nl,
                # as the reference: dropout on the 8*ngf levels between the 4*ngf one and the bottom
                use_dropout=cfg.use_dropout and 4 <= i < depth - 1,
                upsample=cfg.upsample, impl=cfg.impl)
        self.model = block

    def forward(self, A, z=None):
        m = 2 ** self.depth
        if A.dim() != 4 or A.shape[2] % m or A.shape[3] % m:
            raise ValueError(f"G: input must be N x C x H x W with H and W multiples of {m}, "
                             f"got {tuple(A.shape)}")
        if self.nz:
            if z is None or z.shape != (A.shape[0], self.nz):
                raise ValueError(f"G: z must have shape ({A.shape[0]}, {self.nz}), got "
                                 f"{None if z is None else tuple(z.shape)}")
            z = z.to(A.dtype)
        return self.model(A, z)


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """norm, LReLU, conv3x3, norm, LReLU, conv3x3, avgpool2; shortcut avgpool2 + conv1x1.

    With norm="none" the reference's first LeakyReLU (in place) runs on the block's input itself,
    and its shortcut reads that input after the conv path: the shortcut sees lrelu(x)."""

    def __init__(self, in_nc, out_nc, norm, impl):
        super().__init__()
        self.shortcut_lrelu = norm == "none"
        self.conv = nn.Sequential(
            norm_act(norm, in_nc, "leaky_relu", impl), nn.Conv2d(in_nc, in_nc, 3, 1, 1),
            norm_act(norm, in_nc, "leaky_relu", impl), nn.Conv2d(in_nc, out_nc, 3, 1, 1),
            nn.AvgPool2d(2))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_nc, out_nc, 1))

    def forward(self, x):
        return self.conv(x) + self.shortcut(F.leaky_relu(x, LRELU) if self.shortcut_lrelu else x)


class Encoder(nn.Module):
    """E(B) -> (mu, logvar). resnet_*: conv + residual blocks; conv_*: strided convs. A global
    average pool replaces the reference's AvgPool2d(8): equal at the reference sizes, and any
    input size works."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        nef, norm, impl = cfg.nef, cfg.norm, cfg.impl
        kind, res = cfg.netE.split("_")
        if kind == "resnet":
            n_blocks = 5 if res == "256" else 4
            layers = [nn.Conv2d(cfg.output_nc, nef, 4, 2, 1)]
            for n in range(1, n_blocks):
                layers.append(ResBlock(nef * min(4, n), nef * min(4, n + 1), norm, impl))
            layers.append(Act("leaky_relu", inplace=True))
            out_nc = nef * min(4, n_blocks)
        else:
            n_layers = 5 if res == "256" else 4
            layers = [nn.Conv2d(cfg.output_nc, nef, 4, 2, 1), Act("leaky_relu", inplace=True)]
            for n in range(1, n_layers):
                layers += [nn.Conv2d(nef * min(2 ** (n - 1), 4), nef * min(2 ** n, 4), 4, 2, 1),
                           norm_act(norm, nef * min(2 ** n, 4), "leaky_relu", impl)]
            out_nc = nef * min(2 ** (n_layers - 1), 4)
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(out_nc, cfg.nz)
        self.fcVar = nn.Linear(out_nc, cfg.nz)

    def forward(self, B):
        h = self.conv(B).mean(dim=(2, 3))
        return self.fc(h), self.fcVar(h)


# ----------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------
def patchgan(input_nc, ndf, n_layers, norm, impl, bias=True) -> nn.Sequential:
    """PatchGAN: 4x4 convs, stride 2 then the last two stride 1, LeakyReLU(0.2), norm inside."""
    layers = [nn.Conv2d(input_nc, ndf, 4, 2, 1), Act("leaky_relu", inplace=True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=bias),
                   norm_act(norm, ndf * mult, "leaky_relu", impl)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
    return nn.Sequential(*layers)


class MultiscaleDiscriminator(nn.Module):
    """num_Ds PatchGANs; scale i sees the input average-pooled i times and has ndf / 2^i filters.
    forward returns a list of patch maps, one per scale."""

    def __init__(self, input_nc, ndf, netD, num_Ds, norm, impl):
        super().__init__()
        n_layers = 3 if netD.startswith("basic_256") else 2
        multi = netD.endswith("_multi")
        num = num_Ds if multi else 1
        # The reference's single-scale D drops the conv bias before a BatchNorm; the multi one keeps it.
        bias = multi or norm != "batch"
        self.scales = nn.ModuleList(
            patchgan(input_nc, int(round(ndf / 2 ** i)), n_layers, norm, impl, bias) for i in range(num))
        self.impl = impl

    def forward(self, x):
        out = []
        for i, d in enumerate(self.scales):
            if i:  # the reference's AvgPool2d(3, 2, 1, count_include_pad=False); the kernels' under impl
                x = avg_pool2d(x, 3, 2, 1, count_include_pad=False, impl=self.impl)
            out.append(d(x))
        return out


# ----------------------------------------------------------------------------------------------
# Builders and initialisation
# ----------------------------------------------------------------------------------------------
def init_weights(net: nn.Module, init_type="xavier", gain=0.02) -> nn.Module:
    """The reference's init: conv/linear weights by init_type, biases 0, BatchNorm weight N(1, gain)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, ZConcatConv2d)):
            w = m.weight.data
            if init_type == "normal":
                nn.init.normal_(w, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(w, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(w, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(w, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias.data)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.zeros_(m.bias.data)
    return net


def _model_config(cfg, builder: str) -> ModelConfig:
    """The builders take a ModelConfig: a TrainConfig or a dict was an AttributeError ("... has no attribute 'nz'")."""
    if not isinstance(cfg, ModelConfig):
        part = " (a TrainConfig's is its .model)" if isinstance(cfg, TrainConfig) else ""
        raise TypeError(f"{builder} takes a ModelConfig{part}, got {type(cfg).__name__}")
    return cfg


def build_generator(cfg: ModelConfig) -> UnetGenerator:
    cfg = _model_config(cfg, "build_generator")
    return init_weights(UnetGenerator(cfg), cfg.init_type, cfg.init_gain)


def build_encoder(cfg: ModelConfig) -> Encoder:
    cfg = _model_config(cfg, "build_encoder")
    cfg.check_networks(("E",))  # (the config checks the networks a training builds: this one, here)
    return init_weights(Encoder(cfg), cfg.init_type, cfg.init_gain)


def build_discriminator(cfg: ModelConfig, netD: str | None = None) -> MultiscaleDiscriminator:
    cfg = _model_config(cfg, "build_discriminator")
    return init_weights(_discriminator(cfg, netD), cfg.init_type, cfg.init_gain)


def _discriminator(cfg: ModelConfig, netD: str | None = None) -> MultiscaleDiscriminator:
    # (its fit to the size, said under the name of the field that holds it)
    if netD in (None, cfg.netD):
        cfg.check_networks(("D",))
    elif netD == cfg.netD2:
        cfg.check_networks(("D2",))
    else:
        dataclasses.replace(cfg, netD=netD).check_networks(("D",))
    input_nc = cfg.output_nc + (cfg.input_nc if cfg.conditional_D else 0)
    return MultiscaleDiscriminator(input_nc, cfg.ndf, netD or cfg.netD, cfg.num_Ds, cfg.norm, cfg.impl)


def built_shapes(cfg: ModelConfig, names) -> dict[str, dict[str, torch.Size]]:
    """The shape of each entry of the state_dict of the networks `names` (of G, E, D, D2) as cfg builds them, on the
    meta device and not initialised: nothing allocated (what a checkpoint's weights are checked against before its
    model is built; torch's init functions on the meta device took seconds to import)."""
    make = {"G": lambda: UnetGenerator(cfg), "E": lambda: Encoder(cfg), "D": lambda: _discriminator(cfg, cfg.netD),
            "D2": lambda: _discriminator(cfg, cfg.netD2)}
    with torch.device("meta"):
        return {n: {k: v.shape for k, v in make[n]().state_dict().items()} for n in names}
