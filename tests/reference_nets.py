"""The reference's saved networks, described from its source and nothing of ours.

Written from a reading of junyanz/BicycleGAN (models/networks.py: define_G/E/D, G_Unet_add_all with
UnetBlock_with_z, G_Unet_add_input with UnetBlock, upsampleLayer, E_ResNet with BasicBlock,
E_NLayers, D_NLayersMulti, D_NLayers, get_norm_layer; models/base_model.py: save_networks,
load_networks; options/base_options.py: the defaults). For a configuration, `layout` lists what
the reference's G, E or D registers, in registration order (= the order of its state_dict and of
the saved file): (name as the reference spells it, shape, role). A role says what a tensor does in
words of the architecture, e.g. ("down", 3, "conv", "weight") is the weight of U-Net level 3's
downsampling conv (level 0 the outermost), so a test can map it to our module without going
through either side's order. `forward_G`, `forward_E` and `forward_D` follow the reference's
forward methods with the tensors looked up by role, in eval mode.

What the source says and this encodes:
- state_dicts are saved without DataParallel's "module." (save_networks saves net.module);
- an nn.Sequential numbers every module, parameterless ones (ReLU, Upsample, padding, Tanh,
  Dropout, pooling) and InstanceNorm2d(affine=False) included, and norm="none" leaves the norm
  layers out, which shifts the numbers after them;
- G_Unet_add_all's blocks register down, submodule, up; G_Unet_add_input's one Sequential holds
  down + [submodule] + up (+ Dropout). With nz=0 define_G builds G_Unet_add_input;
- upsample="bilinear" is [Upsample, ReflectionPad2d(1), Conv2d 3x3], "basic" a ConvTranspose2d
  4x4 s2 (weight: in, out, k, k);
- E_ResNet registers fc and fcVar (each an nn.Sequential of one Linear) before conv, E_NLayers
  after it; the encoder is always built with vaeLike=True (bicycle_gan_model.py);
- D_NLayersMulti names its scales model_0, model_1, ... (one scale: model) and keeps every conv
  bias; D_NLayers drops the bias of the inner convs under BatchNorm;
- files from PyTorch < 0.4 (legacy=True) hold running_mean and running_var of every
  InstanceNorm2d and no BatchNorm num_batches_tracked (which came with 0.4.1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Ref:
    """The reference's options that shape its networks; defaults as in options/base_options.py."""
    input_nc: int = 3
    output_nc: int = 3
    nz: int = 8
    ngf: int = 64
    nef: int = 64
    ndf: int = 64
    netG: str = "unet_256"
    netE: str = "resnet_256"
    netD: str = "basic_256_multi"
    netD2: str = "basic_256_multi"
    num_Ds: int = 2
    where_add: str = "all"
    norm: str = "instance"
    nl: str = "relu"
    upsample: str = "basic"
    use_dropout: bool = False
    conditional_D: bool = False
    legacy: bool = False  # written by PyTorch < 0.4

    @property
    def num_downs(self) -> int:
        return {"unet_128": 7, "unet_256": 8}[self.netG]

    @property
    def size(self) -> int:
        """The image size the networks are built for (unet_256: 256)."""
        return 2 ** self.num_downs


# -- building blocks: a layer is a function prefix -> entries; None is a module without tensors ------
def _conv(cin, cout, k, role, bias=True, transposed=False):
    def entries(prefix):
        out = [(f"{prefix}.weight", (cin, cout, k, k) if transposed else (cout, cin, k, k), (*role, "weight"))]
        return out + ([(f"{prefix}.bias", (cout,), (*role, "bias"))] if bias else [])
    return entries


def _linear(cin, cout, role):
    return lambda prefix: [(f"{prefix}.weight", (cout, cin), (*role, "weight")),
                           (f"{prefix}.bias", (cout,), (*role, "bias"))]


def _norm(o: Ref, c, role) -> list:
    """The norm layer as a list of zero or one layers (norm="none" has no layer at all)."""
    if o.norm == "none":
        return []
    if o.norm == "batch":
        names = [("weight", (c,)), ("bias", (c,)), ("running_mean", (c,)), ("running_var", (c,))]
        names += [] if o.legacy else [("num_batches_tracked", ())]
    else:  # InstanceNorm2d(affine=False): tensors only in files of PyTorch < 0.4
        names = [("running_mean", (c,)), ("running_var", (c,))] if o.legacy else []
    return [lambda prefix: [(f"{prefix}.{n}", s, (*role, n)) for n, s in names]]


def _seq(layers):
    """An nn.Sequential of `layers`: the i-th one's tensors under "<prefix>.i"."""
    return lambda prefix: [e for i, layer in enumerate(layers) if layer is not None for e in layer(f"{prefix}.{i}")]


def _upsample(o: Ref, cin, cout, role) -> list:
    if o.upsample == "basic":
        return [_conv(cin, cout, 4, role, transposed=True)]
    return [None, None, _conv(cin, cout, 3, role)]  # Upsample, ReflectionPad2d(1), Conv2d


# -- G ------------------------------------------------------------------------------------------------
def _unet_levels(o: Ref):
    """(input_nc, outer_nc, inner_nc, use_dropout) of every UnetBlock, outermost first, as the
    G_Unet_add_* constructors stack them (from the innermost outwards). Both have num_downs - 5
    blocks of 8*ngf with dropout (add_all: one, then num_downs - 6 more)."""
    g8 = o.ngf * 8
    inner = [(g8, g8, g8, False)] + [(g8, g8, g8, o.use_dropout)] * (o.num_downs - 5)
    inner += [(o.ngf * 4, o.ngf * 4, g8, False), (o.ngf * 2, o.ngf * 2, o.ngf * 4, False),
              (o.ngf, o.ngf, o.ngf * 2, False), (o.input_nc, o.output_nc, o.ngf, False)]
    return inner[::-1]


def _g_block(o: Ref, levels, lvl, add_all):
    cin, outer, inner, dropout = levels[lvl]
    outermost, innermost = lvl == 0, lvl == len(levels) - 1
    if add_all or outermost:
        cin += o.nz
    conv = _conv(cin, inner, 4, ("down", lvl, "conv"))
    down = [conv] if outermost else [None, conv] + ([] if innermost else _norm(o, inner, ("down", lvl, "norm")))
    up = [None] + _upsample(o, inner if innermost else 2 * inner, outer, ("up", lvl, "conv"))
    up += [None] if outermost else _norm(o, outer, ("up", lvl, "norm"))  # Tanh
    up += [None] if dropout else []
    sub = None if innermost else _g_block(o, levels, lvl + 1, add_all)
    if add_all:  # UnetBlock_with_z: self.down, self.submodule, self.up
        return lambda p: _seq(down)(f"{p}.down") + (sub(f"{p}.submodule") if sub else []) + _seq(up)(f"{p}.up")
    # UnetBlock: self.model = Sequential(down + [submodule] + up [+ Dropout])
    return lambda p: _seq(down + ([] if innermost else [sub]) + up)(f"{p}.model")


def _layout_G(o: Ref):
    add_all = o.where_add == "all" and o.nz > 0
    levels = _unet_levels(o)
    block = _g_block(o, levels, 0, add_all)
    # G_Unet_add_*.model is the outermost block; UnetBlock's own Sequential is its .model too.
    return block("model") if add_all else [(k.removeprefix("model."), s, r) for k, s, r in block("model.model")]


# -- E ------------------------------------------------------------------------------------------------
def _layout_E(o: Ref):
    kind, res = o.netE.split("_")
    nef = o.nef
    if kind == "resnet":
        n_blocks = 5 if res == "256" else 4
        layers = [_conv(o.output_nc, nef, 4, ("E", 0, "conv"))]
        for n in range(1, n_blocks):
            cin, cout = nef * min(4, n), nef * min(4, n + 1)
            conv = _seq(_norm(o, cin, ("E", n, "norm1")) + [None, _conv(cin, cin, 3, ("E", n, "conv1"))]
                        + _norm(o, cin, ("E", n, "norm2"))
                        + [None, _seq([_conv(cin, cout, 3, ("E", n, "conv2")), None])])  # convMeanpool
            shortcut = _seq([None, _conv(cin, cout, 1, ("E", n, "shortcut"))])  # meanpoolConv
            layers.append(lambda p, conv=conv, shortcut=shortcut: conv(f"{p}.conv") + shortcut(f"{p}.shortcut"))
        layers += [None, None]  # LeakyReLU, AvgPool2d(8)
        head = [_linear(cout, o.nz, ("fc",))], [_linear(cout, o.nz, ("fcVar",))]
        return _seq(head[0])("fc") + _seq(head[1])("fcVar") + _seq(layers)("conv")
    n_layers = 5 if res == "256" else 4
    layers = [_conv(o.output_nc, nef, 4, ("E", 0, "conv")), None]
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 4)
        layers += [_conv(nef * prev, nef * mult, 4, ("E", n, "conv"))] + _norm(o, nef * mult, ("E", n, "norm")) + [None]
    layers.append(None)  # AvgPool2d(8)
    head = _linear(nef * mult, o.nz, ("fc",)), _linear(nef * mult, o.nz, ("fcVar",))
    return _seq(layers)("conv") + _seq([head[0]])("fc") + _seq([head[1]])("fcVar")


# -- D ------------------------------------------------------------------------------------------------
def d_geometry(netD: str, num_Ds: int):
    """(n_layers, scales, multi) as define_D picks the class and n_layers from the name."""
    multi = netD.endswith("_multi")
    return (3 if netD.startswith("basic_256") else 2), (num_Ds if multi else 1), multi


def _layout_D(o: Ref, netD: str, name: str):
    n_layers, scales, multi = d_geometry(netD, o.num_Ds)
    cin = o.output_nc + (o.input_nc if o.conditional_D else 0)
    bias = multi or o.norm != "batch"  # D_NLayers: no bias before a BatchNorm
    out = []
    for i in range(scales):
        ndf = int(round(o.ndf / 2 ** i))
        layers = [_conv(cin, ndf, 4, (name, i, 0, "conv")), None]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            layers += [_conv(ndf * prev, ndf * mult, 4, (name, i, n, "conv"), bias)]
            layers += _norm(o, ndf * mult, (name, i, n, "norm")) + [None]
        layers.append(_conv(ndf * mult, 1, 4, (name, i, n_layers + 1, "conv")))
        out += _seq(layers)(f"model_{i}" if scales > 1 else "model")
    return out


def layout(o: Ref, net: str):
    """[(reference name, shape, role)] of the reference's net "G", "E", "D" or "D2", in its order."""
    if o.norm == "none" and net in ("D", "D2"):
        raise ValueError("the reference cannot build a D with norm=none (it calls the missing norm layer)")
    if net == "G":
        return _layout_G(o)
    if net == "E":
        return _layout_E(o)
    return _layout_D(o, o.netD if net == "D" else o.netD2, net)


# -- files ----------------------------------------------------------------------------------------------
def coded_values(entries):
    """Tensor i of the layout filled with i + a ramp in [0, 0.5): which tensor a value came from is
    its integer part. Step counts (integer scalars) hold i."""
    out = {}
    for i, (name, shape, role) in enumerate(entries):
        if role[-1] == "num_batches_tracked":
            out[name] = torch.tensor(i)
        else:
            n = math.prod(shape)
            out[name] = (i + 0.5 * torch.arange(n, dtype=torch.float64) / max(n, 1)).reshape(shape)
    return out


def random_values(entries, seed=0):
    """Values a trained network could hold: weights scaled by 1/sqrt(fan-in), biases and norm
    affines around their use, running variances positive; float64."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape, role in entries:
        kind = role[-1]
        if kind == "num_batches_tracked":
            out[name] = torch.tensor(100)
            continue
        t = torch.randn(shape, generator=g, dtype=torch.float64)
        if kind == "weight" and len(shape) > 1:
            t = t / math.sqrt(math.prod(shape[1:]))
        elif kind == "weight":  # BatchNorm scale
            t = 1 + 0.3 * t
        elif kind == "running_var":
            t = 0.5 + t.abs()
        else:  # biases, BatchNorm shift, running means
            t = 0.3 * t
        out[name] = t
    return out


# -- forwards (eval mode), following the reference's forward methods -------------------------------------
def _tensors(entries, values):
    return {role: values[name] for name, _, role in entries}


class _Ops:
    def __init__(self, o: Ref, t):
        self.o, self.t = o, t

    def conv(self, x, role, stride, padding):
        return F.conv2d(x, self.t[(*role, "weight")], self.t.get((*role, "bias")), stride, padding)

    def norm(self, x, role):
        """get_norm_layer's layer in eval mode: InstanceNorm2d uses the input's statistics (the
        reference drops the legacy running ones), BatchNorm2d its running ones."""
        if self.o.norm == "instance":
            return F.instance_norm(x, eps=1e-5)
        if self.o.norm == "batch":
            t = self.t
            return F.batch_norm(x, t[(*role, "running_mean")], t[(*role, "running_var")], t[(*role, "weight")],
                                t[(*role, "bias")], training=False, eps=1e-5)
        return x


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def forward_G(o: Ref, entries, values, A, z):
    """G_Unet_add_all / G_Unet_add_input: UnetBlock_with_z.forward / UnetBlock.forward."""
    ops, depth = _Ops(o, _tensors(entries, values)), o.num_downs
    add_all = o.where_add == "all" and o.nz > 0
    nl = {"relu": F.relu, "lrelu": lrelu, "elu": F.elu}[o.nl]

    def upconv(x, lvl):
        role = ("up", lvl, "conv")
        if o.upsample == "basic":
            return F.conv_transpose2d(x, ops.t[(*role, "weight")], ops.t[(*role, "bias")], 2, 1)
        x = F.pad(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), (1, 1, 1, 1), "reflect")
        return ops.conv(x, role, 1, 0)

    def block(lvl, x):
        outermost, innermost = lvl == 0, lvl == depth - 1
        with_z = o.nz > 0 and (add_all or outermost)
        h = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1) if with_z else x
        if not outermost:
            h = lrelu(h)  # nn.LeakyReLU(0.2, inplace=True)
            if not with_z:
                x = h  # in place on the block's input itself, which is also the skip: cat([model(x), x])
        h = ops.conv(h, ("down", lvl, "conv"), 2, 1)
        if outermost:
            return torch.tanh(upconv(nl(block(1, h)), 0))
        if not innermost:
            h = block(lvl + 1, ops.norm(h, ("down", lvl, "norm")))
        y = ops.norm(upconv(nl(h), lvl), ("up", lvl, "norm"))  # Dropout: identity in eval mode
        return torch.cat([y, x], 1)

    return block(0, A)


def forward_E(o: Ref, entries, values, B):
    """E_ResNet / E_NLayers (vaeLike): (fc, fcVar) of the pooled features."""
    ops = _Ops(o, _tensors(entries, values))
    kind, res = o.netE.split("_")
    h = ops.conv(B, ("E", 0, "conv"), 2, 1)
    if kind == "resnet":
        for n in range(1, 5 if res == "256" else 4):
            a = lrelu(ops.norm(h, ("E", n, "norm1")))
            if o.norm == "none":
                h = a  # BasicBlock's first LeakyReLU(inplace) runs on x itself; shortcut(x) follows conv(x)
            a = lrelu(ops.norm(ops.conv(a, ("E", n, "conv1"), 1, 1), ("E", n, "norm2")))
            a = F.avg_pool2d(ops.conv(a, ("E", n, "conv2"), 1, 1), 2)
            h = a + ops.conv(F.avg_pool2d(h, 2), ("E", n, "shortcut"), 1, 0)
        h = lrelu(h)
    else:
        h = lrelu(h)
        for n in range(1, 5 if res == "256" else 4):
            h = lrelu(ops.norm(ops.conv(h, ("E", n, "conv"), 2, 1), ("E", n, "norm")))
    flat = F.avg_pool2d(h, 8).flatten(1)
    t = ops.t
    return (F.linear(flat, t[("fc", "weight")], t[("fc", "bias")]),
            F.linear(flat, t[("fcVar", "weight")], t[("fcVar", "bias")]))


def forward_D(o: Ref, entries, values, x, name="D"):
    """D_NLayersMulti / D_NLayers: one patch map per scale (a list, for one scale too)."""
    ops = _Ops(o, _tensors(entries, values))
    n_layers, scales, _ = d_geometry(o.netD if name == "D" else o.netD2, o.num_Ds)
    out = []
    for i in range(scales):
        if i:
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        h = lrelu(ops.conv(x, (name, i, 0, "conv"), 2, 1))
        for n in range(1, n_layers + 1):
            h = lrelu(ops.norm(ops.conv(h, (name, i, n, "conv"), 2 if n < n_layers else 1, 1), (name, i, n, "norm")))
        out.append(ops.conv(h, (name, i, n_layers + 1, "conv"), 1, 1))
    return out
