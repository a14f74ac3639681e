"""Typed configs with the reference's option names and defaults.

ModelConfig shapes the networks; DataConfig says how images are found and preprocessed (training
and inference alike); TrainConfig holds the objective, optimisation and run options plus one of
each. All validate at construction: a config that cannot work fails with a ConfigError naming the
field, the value and what would work. The option lists come from the package that implements
them (pipelines: preprocess modes, directions, backends; kernels: impls, activations).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from bicyclegan.kernels import IMPLS
from bicyclegan.pipelines import BACKENDS, DIRECTIONS, MAX_PIXELS, PREPROCESS
from bicyclegan.pipelines.spec import CROPPING, RESIZING

from .errors import ConfigError

# The metrics evaluate measures (evaluate's and the evaluations' options during training name them)
METRICS = ("l1", "palette", "lpips", "fid")
# The measures a run may keep its best checkpoint by (train --keep_best): result key -> (the metric that
# gives it, which way is better). Not diversity (noise is diverse) nor palette validity (a model that
# draws one palette for every z is valid).
BEST = {"fid": ("fid", "lower"), "encoded_l1": ("l1", "lower"), "coverage": ("palette", "higher")}


def parse_metrics(metrics, demo: bool) -> tuple[str, ...]:
    """The metrics asked for ("l1,lpips" or a sequence); None: l1, plus palette on the demo data."""
    if metrics is None:
        return ("l1", "palette") if demo else ("l1",)
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise ConfigError(f"metrics={metrics!r}: expected a comma-separated list of {', '.join(METRICS)}")
    return tuple(dict.fromkeys(names))


NET_G = ("unet_256", "unet_128", "unet")
NET_E = ("resnet_256", "resnet_128", "conv_256", "conv_128")
NET_D = ("basic_256_multi", "basic_128_multi", "basic_256", "basic_128")
NL = ("relu", "lrelu", "elu")
VARIANTS = ("bicycle", "cvae", "clr", "cae", "pix2pix")
COMPILE_MODES = ("off", "default", "max-autotune", "aot_eager")
# The weights of each variant's loss terms (engine/model.py); the others are ignored by that variant.
VARIANT_TERMS = {
    "bicycle": ("lambda_L1", "lambda_GAN", "lambda_GAN2", "lambda_z", "lambda_kl", "lambda_ms"),
    "cvae": ("lambda_L1", "lambda_GAN", "lambda_kl", "lambda_ms"),
    "cae": ("lambda_L1", "lambda_GAN", "lambda_ms"),
    "clr": ("lambda_GAN", "lambda_z", "lambda_ms"),
    "pix2pix": ("lambda_L1", "lambda_GAN", "lambda_ms"),
}
# Default U-Net depth of each named generator; "unet" derives it from the crop size.
UNET_DEPTH = {"unet_256": 8, "unet_128": 7}


# -- validation helpers ----------------------------------------------------------------------------
def check_named(name: str, path) -> None:
    """Refuse an empty path: out="" trained (or sampled) into the current folder, among the files there, and
    dataroot="" read the current folder as the data, or the model's own."""
    if isinstance(path, str) and not path.strip():
        raise ConfigError(f"{name}={path!r} names no folder or file; give one")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(map(str, allowed))}")


MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed takes
# serve's limits on an upload, here for the command's parser (serve.py imports torch)
MAX_UPLOAD_BYTES = 10 * 2**20
MAX_UPLOAD_PIXELS = 16_000_000


def check_int(name, value, low, optional=False, high=None):
    """An int (not a bool) >= low (and <= high), or a ConfigError naming it: the one count check of the package."""
    if optional and value is None:
        return
    if (not isinstance(value, int) or isinstance(value, bool) or value < low
            or (high is not None and value > high)):
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        what += "" if high is None else f" and <= {high}"
        # (the configs take numpy's scalars as Python's, _plain; a function's argument is said so: "must be an
        # integer" of np.int64(3) was not true)
        numpy = (f" (a Python int: int({name}))" if isinstance(value, np.integer) and value >= low
                 and (high is None or value <= high) else "")
        raise ConfigError(f"{name}={value!r} must be {what}{' or None' if optional else ''}{numpy}")


def _real(name, value, low, high=math.inf, low_open=False):
    """A finite number in [low, high) ((low, high) with low_open)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value < high
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high == math.inf else f" and < {high:g}"
        raise ConfigError(f"{name}={value!r} must be a finite number {lo}{hi}")


def check_bool(name, value, optional=False):
    """value as a bool, or a ConfigError naming it: a switch of the Python API given "no" (or 0, or a path) was
    taken as true or false by its truth value. numpy's bools are bools (a mask's element); optional: None
    too (the default by context)."""
    if optional and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name}={value!r} must be true or false{' (or None)' if optional else ''}")
    return bool(value)


def _plain(obj):
    """numpy's scalars given to a config (a seed from np.arange, a size from an array's shape) as Python's: they
    were refused as "must be an integer", and config.json and checkpoints hold Python values."""
    for f in dataclasses.fields(obj):
        if isinstance(value := getattr(obj, f.name), np.generic):
            setattr(obj, f.name, value.item())


def _bools(obj):
    for f in dataclasses.fields(obj):
        if f.type in ("bool", bool):  # (a plain bool kept: config.json, checkpoints)
            setattr(obj, f.name, check_bool(f.name, getattr(obj, f.name)))


# -- network geometry (the one place it is derived from the names) ---------------------------------
def d_geometry(netD: str, num_Ds: int) -> tuple[int, int]:
    """(conv layers, scales) of a PatchGAN name: basic_256* has 3 layers, basic_128* 2; *_multi
    has num_Ds scales."""
    return (3 if netD.startswith("basic_256") else 2), (num_Ds if netD.endswith("_multi") else 1)


def e_geometry(netE: str) -> tuple[str, int]:
    """(kind, depth) of an encoder name: resnet blocks (incl. the stem) or strided conv layers."""
    kind, res = netE.split("_")
    return kind, 5 if res == "256" else 4


@dataclass
class ModelConfig:
    """Network architecture (field names follow the reference's options)."""
    input_nc: int = 3          # channels of A (1 = grayscale)
    output_nc: int = 3         # channels of B
    nz: int = 8                # latent code length
    ngf: int = 64              # generator filters in the outermost layer
    nef: int = 64              # encoder filters in the first layer
    ndf: int = 64              # discriminator filters in the first layer
    netG: str = "unet_256"     # unet_256 | unet_128 | unet (depth from crop size)
    netE: str = "resnet_256"   # resnet_256 | resnet_128 | conv_256 | conv_128
    netD: str = "basic_256_multi"  # D of the encoded branch: basic_{256,128}[_multi]
    netD2: str = "basic_256_multi"  # discriminator of the random-z branch (bicycle only)
    num_Ds: int = 2            # scales of the multi-scale PatchGAN
    where_add: str = "all"     # inject z at the input only, or at every encoder block
    norm: str = "instance"     # instance | batch | none
    nl: str = "relu"           # decoder non-linearity: relu | lrelu | elu
    upsample: str = "basic"    # basic (ConvTranspose) | bilinear
    use_dropout: bool = False  # dropout 0.5 in the deep decoder levels of G
    conditional_D: bool = False  # D sees cat(A, B) instead of B
    use_same_D: bool = False  # one discriminator for both branches (D2 is D)
    init_type: str = "xavier"  # xavier | normal | kaiming | orthogonal
    init_gain: float = 0.02  # scale of the initialisation
    crop_size: int = 256       # training image height (and width unless crop_width is set)
    crop_width: Optional[int] = None  # training image width; None = square
    num_downs: Optional[int] = None  # U-Net depth; None = from netG (unet_256: 8, unet_128: 7) or size
    impl: str = "auto"         # layers: auto | triton | ref (auto: our Triton kernels in a CUDA graph or compiled step)
    channels_last: bool = False  # channels_last memory format for all networks (GPU)

    def __post_init__(self):
        _plain(self)
        for name in ("input_nc", "output_nc", "ngf", "nef", "ndf", "num_Ds", "crop_size"):
            check_int(name, getattr(self, name), 1)
        for name in ("input_nc", "output_nc"):
            if getattr(self, name) not in (1, 3):
                raise ConfigError(f"{name}={getattr(self, name)} must be 1 (grayscale) or 3 (RGB): the images "
                                  f"are read as one or the other")
        check_int("nz", self.nz, 0)
        check_int("crop_width", self.crop_width, 1, optional=True)
        check_int("num_downs", self.num_downs, 2, optional=True)
        _real("init_gain", self.init_gain, 0, low_open=True)
        _bools(self)
        _choice("netG", self.netG, NET_G)
        _choice("netE", self.netE, NET_E)
        _choice("netD", self.netD, NET_D)
        _choice("netD2", self.netD2, NET_D)
        _choice("where_add", self.where_add, ("input", "all"))
        _choice("norm", self.norm, ("instance", "batch", "none"))
        _choice("nl", self.nl, NL)
        _choice("upsample", self.upsample, ("basic", "bilinear"))
        _choice("init_type", self.init_type, ("xavier", "normal", "kaiming", "orthogonal"))
        _choice("impl", self.impl, IMPLS)
        h, w = self.size
        depth = self.unet_depth
        if depth < 2:
            if self.num_downs is None and self.netG == "unet":  # (its depth the size's: said as the size's)
                fix = f"{max(4, h // 4 * 4)}x{max(4, w // 4 * 4)}"
                raise ConfigError(f"crop size {h}x{w} halves only {depth} time{'s' if depth != 1 else ''}: netG=unet "
                                  f"takes its depth from the size, and needs sides that are multiples of 4 or more "
                                  f"(2 levels); use a size such as {fix}")
            raise ConfigError(f"num_downs={depth} must be >= 2 (crop size {h}x{w} halves only {depth} times)")
        m = 2 ** depth
        if h % m or w % m:
            fix = f"{(h // m or 1) * m}x{(w // m or 1) * m}"
            most = pow2_depth(h, w)  # (below 2, no num_downs takes this size: not offered)
            raise ConfigError(
                f"crop size {h}x{w} is not a multiple of 2^num_downs = {m} (netG={self.netG}, "
                f"num_downs={depth}); use a size such as {fix}"
                + (f", or set num_downs <= {most} (netG=unet derives it from the size)" if most >= 2 else ""))

    def check_networks(self, nets=("D", "D2", "E")) -> None:
        """The discriminators' and the encoder's fit to the image size, for the networks a model builds (`nets`,
        TrainConfig.trained_networks: the training checks them, and the builders the one they build). Checked in
        the config, a variant without D2 or E (pix2pix, cae, cvae, clr) was refused below 48 px for their depths,
        and the fix it named (--netD2 basic_128_multi) then refused as changing nothing."""
        h, w = self.size
        ds = [k for k, net in (("netD", "D"), ("netD2", "D2")) if net in nets]
        # Scale i of a multi-scale D has round(ndf / 2^i) filters (the reference's rounding, half to even);
        # a scale left none failed in the initialisation with a ZeroDivisionError.
        multi = [k for k in ds if d_geometry(getattr(self, k), self.num_Ds)[1] > 1]
        empty = next((i for i in range(self.num_Ds) if round(self.ndf / 2 ** i) < 1), None)
        if multi and empty is not None:
            last = 2 ** (self.num_Ds - 1)
            fits = next(n for n in range(self.ndf + 1, 2 * last + 1) if round(n / last) >= 1)
            raise ConfigError(
                f"ndf={self.ndf} with num_Ds={self.num_Ds} leaves the discriminators' scale {empty + 1} "
                f"({', '.join(f'{k}={getattr(self, k)}' for k in multi)}) round({self.ndf} / {2 ** empty}) = 0 "
                f"filters; use ndf >= {fits} or num_Ds <= {empty}")
        # InstanceNorm needs more than one element per plane: check the deepest normed layers. Both
        # discriminators at once (naming one, then after its fix the other, took two tries).
        def least_side(net):  # the smallest image side `net` takes, or None when min(h, w) will do
            n_layers, scales = d_geometry(net, self.num_Ds)
            side = min(h, w)
            for _ in range(scales - 1):
                side = (side + 1) // 2
            return None if (side >> n_layers) >= 3 else 3 << n_layers << (scales - 1)
        deep = {k: least for k in ds if (least := least_side(getattr(self, k))) is not None}
        if deep:
            one = len(deep) == 1
            fixes = [] if least_side("basic_128_multi") else ["basic_128_multi"]  # (not one too deep itself)
            if self.num_Ds > 1 and any(getattr(self, k).endswith("_multi") for k in deep):  # (not fewer than 1)
                fixes.append("fewer num_Ds")
            fixes.append(f"images of at least {max(deep.values())} px")
            raise ConfigError(
                f"{' and '.join(f'{k}={getattr(self, k)}' for k in deep)} with num_Ds={self.num_Ds} "
                f"{'is' if one else 'are'} too deep for {h}x{w} images ({'its' if one else 'their'} coarsest "
                f"scale would shrink to nothing); use {', '.join(fixes[:-1])}{' or ' if len(fixes) > 1 else ''}"
                f"{fixes[-1]}")
        if "E" in nets:
            kind, depth_e = e_geometry(self.netE)
            e_min = (1 if kind == "resnet" else 2) << depth_e
            if min(h, w) < e_min:
                raise ConfigError(f"netE={self.netE} downsamples 2^{depth_e}x: too much for {h}x{w} "
                                  f"images; use resnet_128/conv_128 or images of at least {e_min} px")

    @property
    def size(self) -> tuple[int, int]:
        return (self.crop_size, self.crop_width or self.crop_size)

    @property
    def unet_depth(self) -> int:
        if self.num_downs is not None:
            return self.num_downs
        if self.netG in UNET_DEPTH:
            return UNET_DEPTH[self.netG]
        # As deep as the size allows: halve while both sides stay even, down to a 1-pixel side.
        return pow2_depth(*self.size)


def pow2_depth(h, w):
    d = 0
    while h % 2 == 0 and w % 2 == 0:
        h, w, d = h // 2, w // 2, d + 1
    return d


@dataclass
class DataConfig:
    """Where the images are and how each is turned into a network input (training and inference)."""
    dataroot: Optional[str] = None   # dataset folder; None: the built-in demo data
    load_size: int = 286  # images are resized to this before cropping
    preprocess: str = "resize_and_crop"  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
    direction: str = "AtoB"  # AtoB | BtoA (swap the halves of each image)
    no_flip: bool = False  # no random horizontal flips
    num_workers: Optional[int] = None  # loader worker processes / DALI threads; None: per device and cores
    backend: str = "auto"      # data loader: auto | dali | torch
    skip_bad: bool = False     # leave out unreadable or unusable images (logged) instead of stopping
    max_dataset_size: Optional[int] = None  # use only the first this-many images by full path (a folder's together)
    max_pixels: int = MAX_PIXELS  # refuse (or with skip_bad skip) files larger than this (W x H, from the header)

    def __post_init__(self):
        _plain(self)
        check_int("load_size", self.load_size, 1)
        check_int("num_workers", self.num_workers, 0, optional=True)
        check_int("max_dataset_size", self.max_dataset_size, 1, optional=True)
        check_int("max_pixels", self.max_pixels, 1)
        _bools(self)
        _choice("preprocess", self.preprocess, PREPROCESS)
        _choice("direction", self.direction, DIRECTIONS)
        _choice("backend", self.backend, BACKENDS)
        if self.dataroot is not None and not isinstance(self.dataroot, str):
            self.dataroot = str(self.dataroot)
        check_named("dataroot", self.dataroot)
        # (here: loader.py imports torch, which the `bicyclegan` command's --help and refusals never need)
        from bicyclegan.pipelines.loader import check_load_size
        try:  # (the loaders' own check, before any loader: a dry run passed what the run's loader worker died of)
            check_load_size(self.load_size, self.preprocess, self.max_pixels)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def check_fits(self, model: ModelConfig) -> None:
        """Raise ConfigError if images prepared this way cannot feed networks of `model`."""
        if self.load_size < max(model.size) and self.preprocess == "resize_and_crop":
            raise ConfigError(f"load_size={self.load_size} is smaller than the crop "
                              f"{model.size[0]}x{model.size[1]}; use load_size >= {max(model.size)}")


# The size options each preprocess mode uses: under another mode a size is taken and changes nothing
# (every file comes out as without it).
SIZES_USED = {"load_size": (RESIZING, "resize to"), "crop_size": (CROPPING, "crop to")}


def refuse_unused_sizes(preprocess: str, sizes: dict, whose: str) -> None:
    """Refuse a size given (sizes: {"load_size" or "crop_size": value, None where not given}) that
    `preprocess` does not use; whose: where that preprocess came from ("as given", the model's...).
    The one rule of train's --load_size and of sample's, interpolate's and serve's sizes."""
    for name, value in sizes.items():
        modes, verb = SIZES_USED[name]
        if value is not None and preprocess not in modes:
            raise ConfigError(f"{name}={value} changes nothing under preprocess={preprocess} ({whose}): only "
                              f"{', '.join(modes)} {verb} it; give one of them as preprocess, or leave {name} out")


@dataclass
class TrainConfig:
    """Objective, optimisation and run options; `model` holds the architecture, `data` the images."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    variant: str = "bicycle"   # bicycle | cvae (cVAE-GAN) | clr (cLR-GAN) | cae (cAE-GAN) | pix2pix (+noise)
    gan_mode: str = "lsgan"    # lsgan (MSE) | vanilla (BCE with logits)
    lambda_L1: float = 10.0  # weight of |G(A, E(B)) - B|
    lambda_GAN: float = 1.0  # weight of the GAN loss of D (bicycle: its encoded branch; the other variants: their one)
    lambda_GAN2: float = 1.0  # weight of the GAN loss of D2 (random-z branch)
    lambda_z: float = 0.5  # weight of the latent regression |E(G(A, z)) - z|
    lambda_kl: float = 0.01  # weight of the KL term (a sum over batch and nz)
    lambda_ms: float = 0.0     # mode-seeking loss (MSGAN); 0 = off, as in the reference
    lr: float = 2e-4  # initial Adam learning rate of every network
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    batch_size: int = 2  # images per iteration (per rank); even for bicycle
    niter: int = 100           # epochs at the initial learning rate
    niter_decay: int = 100     # epochs of linear decay towards zero (the last at lr / (niter_decay + 1))
    max_steps: Optional[int] = None  # stop after this many iterations (None: niter + niter_decay epochs)
    ema: float = 0.0           # decay of a moving average of G's weights used for samples (e.g. 0.999); 0 = off
    amp: str = "off"           # off | bf16 | fp16
    cuda_graph: bool = False   # capture the whole training step in a CUDA graph (CUDA; amp off or bf16)
    sync_bn: bool = False      # norm=batch under torchrun: BatchNorm statistics of the global batch, not each rank's
    compile: str = "off"       # torch.compile every network: off | default | max-autotune | aot_eager (debug)
    seed: int = 0  # seeds weights, data order, z draws and the demo data
    device: str = "auto"       # auto (a CUDA GPU where there is one, else the CPU) | cpu | cuda | cuda:N
    out: str = "runs/bicyclegan"  # run folder: config, log, samples, checkpoints
    log_every: int = 50        # iterations between loss logs (the only host syncs)
    sample_every: int = 500    # iterations between sample grids
    keep_grids: int = 0        # at most this many samples/step_N.png kept (first, latest, spread between); 0 = all
    save_every: int = 1000     # iterations between checkpoints
    save_epoch_freq: int = 0   # also keep checkpoints/epoch_<N>.pt every this many epochs (reference: 5); 0 = off
    n_samples: int = 5         # random-z columns in sample grids
    eval_every: int = 0        # iterations between evaluations of the grids' held-out split (eval_log.jsonl); 0 = off
    eval_metrics: Optional[str] = None  # as evaluate's --metrics (l1, palette, lpips, fid); none: evaluate's default
    eval_num: int = 100        # inputs per evaluation: the split's first (evaluate's --num; the paper's 100)
    eval_samples: int = 10     # random z per input per evaluation (evaluate's --n_samples; the paper's 20; nz=0: 1)
    lpips_backbone: Optional[str] = None  # the evaluations' AlexNet weights file, as evaluate's; none: torch.hub's
    lpips_linear: Optional[str] = None  # the evaluations' LPIPS linear layers file, as evaluate's; none: lpips's
    fid_weights: Optional[str] = None  # the evaluations' InceptionV3 weights file, as evaluate's; none: torch.hub's
    keep_best: Optional[str] = None  # keep checkpoints/best.pt by fid, encoded_l1 (lower is better), coverage (higher)
    init_from: Optional[str] = None  # start a new run from the weights of this checkpoint or run folder (fine-tuning)
    fresh_D: bool = False      # with init_from: new discriminators (this run's D options) instead of the checkpoint's

    def __post_init__(self):
        _plain(self)
        # Parts given as dicts: unknown names are the ConfigError from_dict gives (a TypeError before).
        if isinstance(self.model, dict):
            _known(ModelConfig, self.model)
            self.model = ModelConfig(**self.model)
        if isinstance(self.data, dict):
            _known(DataConfig, self.data)
            self.data = DataConfig(**self.data)
        _choice("variant", self.variant, VARIANTS)
        _choice("gan_mode", self.gan_mode, ("lsgan", "vanilla"))
        _choice("amp", self.amp, ("off", "bf16", "fp16"))
        _choice("compile", self.compile, COMPILE_MODES)
        for name in ("lambda_L1", "lambda_GAN", "lambda_GAN2", "lambda_z", "lambda_kl", "lambda_ms"):
            _real(name, getattr(self, name), 0)
        # (Adam moves each weight by about lr a step, the reference 0.0002: 1 and above only diverges, and past
        # float32's range, lr / (1 - beta1), Adam's first step, was a traceback, not a divergence)
        _real("lr", self.lr, 0, 1, low_open=True)
        _real("beta1", self.beta1, 0, 1)
        _real("beta2", self.beta2, 0, 1)
        _real("ema", self.ema, 0, 1)
        for name in ("batch_size", "log_every", "sample_every", "save_every", "eval_num", "eval_samples"):
            check_int(name, getattr(self, name), 1)
        for name in ("niter", "niter_decay", "n_samples", "seed", "save_epoch_freq", "eval_every", "keep_grids"):
            check_int(name, getattr(self, name), 0)
        check_int("max_steps", self.max_steps, 1, optional=True)
        for name in ("init_from", "lpips_backbone", "lpips_linear", "fid_weights"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                if not isinstance(v, os.PathLike):
                    raise ConfigError(f"{name}={v!r}: expected a path (a str or a Path)")
                setattr(self, name, os.fspath(v))  # config.json holds strings
            check_named(name, getattr(self, name))
        check_named("out", self.out)
        if self.seed >= 2 ** 31:  # seeds are combined with ranks and steps into 64-bit generator seeds
            raise ConfigError(f"seed={self.seed} must be below 2^31")
        _bools(self)
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda")
                                                    or self.device.startswith("cuda:")):
            raise ConfigError(f"device={self.device!r} is not valid; use auto, cpu, cuda or cuda:N")
        if self.cuda_graph and self.amp == "fp16":
            raise ConfigError("cuda_graph=True needs amp=bf16 or off: fp16's GradScaler makes host-side "
                              "decisions every step")
        if self.sync_bn and self.model.norm != "batch":
            raise ConfigError(f"sync_bn=True synchronises BatchNorm statistics over torchrun's ranks, and "
                              f"norm={self.model.norm} has none; use norm=batch or leave --sync_bn out")
        if self.niter + self.niter_decay == 0:
            raise ConfigError("niter + niter_decay is 0: the learning-rate schedule has no epoch to train "
                              "(niter epochs at lr, then niter_decay epochs decaying to 0)")
        if self.variant == "bicycle" and self.batch_size % 2:
            lower = f" or {self.batch_size - 1}" if self.batch_size > 1 else ""  # 1 said "use 2 or 2"
            raise ConfigError(f"batch_size={self.batch_size} must be even for variant=bicycle: the first "
                              f"half is encoded (cVAE-GAN), the second lends its real B to D2; "
                              f"use {self.batch_size + 1}{lower}")
        if self.model.nz == 0 and self.variant != "pix2pix":
            raise ConfigError(f"nz=0 leaves no latent code for variant={self.variant}; use nz > 0 "
                              f"(reference: 8) or variant=pix2pix")
        if self.model.nz == 0 and self.lambda_ms > 0:  # its ratio divides by mean|z1 - z2|: NaN weights
            raise ConfigError(f"lambda_ms={self.lambda_ms} rewards outputs that differ with z, and nz=0 has none; "
                              f"use nz > 0 or lambda_ms=0")
        self.model.check_networks(self.trained_networks)
        self.data.check_fits(self.model)
        self._check_evaluation()

    def check_trainable(self) -> None:
        """What a training refuses to start with, which a stored config may hold (a checkpoint an earlier version
        trained so still samples, evaluates and exports; in __post_init__ such a run could not be loaded at all):
        cLR-GAN without the latent regression, E's only training signal (its encoded outputs and measures were a
        random network's: load_checkpoint leaves such an E out); use_same_D with lambda_GAN 0 (no D is built, the
        random-z branch's GAN loss dropped); no loss term at all. An earlier version's run of these is gone on
        from with --init_from and the mended option, as a resume keeps the run's options."""
        earlier = (" (for a run an earlier version trained so: --init_from it with the option mended, as a resume "
                   "keeps the run's options)")
        terms = VARIANT_TERMS[self.variant]
        if not any(getattr(self, n) > 0 for n in terms):  # cLR-GAN had no loss at all to backward
            raise ConfigError(f"variant={self.variant} with {', '.join(f'{n}={getattr(self, n)}' for n in terms)} "
                              f"has no loss term to train with; give one of them a weight > 0" + earlier)
        if self.variant == "clr" and self.lambda_z == 0:
            raise ConfigError("variant=clr trains its encoder E by the latent regression alone: lambda_z=0 leaves E "
                              "untrained, its encoded outputs a random network's; give lambda_z > 0, or use "
                              "variant=pix2pix for a model without E" + earlier)
        if self.variant == "bicycle" and self.model.use_same_D and self.lambda_GAN == 0 and self.lambda_GAN2 > 0:
            # D is built for lambda_GAN > 0 only; the reference fails here with a missing netD.
            raise ConfigError(f"use_same_D=True shares D between the branches, but lambda_GAN=0 builds no D: "
                              f"the random-z branch's GAN loss (lambda_GAN2={self.lambda_GAN2}) would be dropped; "
                              f"set lambda_GAN > 0 or use_same_D=False" + earlier)

    def _check_evaluation(self) -> None:
        """eval_metrics (kept as "l1,fid") and keep_best: a measure evaluate makes, among the metrics asked
        for, of a model that has it. Whether the data has what the metrics need is the trainer's check."""
        if self.eval_metrics is None and self.keep_best is None:
            return
        if self.eval_metrics is not None:
            try:
                if not isinstance(self.eval_metrics, (str, list, tuple)):
                    raise ConfigError
                self.eval_metrics = ",".join(parse_metrics(self.eval_metrics, demo=False))
            except ConfigError:
                raise ConfigError(f"eval_metrics={self.eval_metrics!r}: expected a comma-separated list of "
                                  f"{', '.join(METRICS)}") from None
            if "fid" in self.eval_metrics.split(",") and self.eval_num < 2:
                raise ConfigError(f"eval_num={self.eval_num}: FID compares two sets of images, so eval_metrics fid "
                                  f"needs eval_num >= 2")
        if self.keep_best is None:
            return
        _choice("keep_best", self.keep_best, tuple(BEST))
        if not self.eval_every:
            raise ConfigError(f"keep_best={self.keep_best} keeps the checkpoint of the best evaluation during "
                              f"training, and eval_every=0 makes none; set eval_every (--eval_every N)")
        metric = BEST[self.keep_best][0]
        # None: evaluate's default, l1, with palette on the demo data (which the trainer checks)
        asked = self.eval_metrics.split(",") if self.eval_metrics else ["l1", "palette"]
        if metric not in asked:
            given = self.eval_metrics.split(",") if self.eval_metrics else ["l1"]
            raise ConfigError(f"keep_best={self.keep_best} is measured by the metric {metric}, which "
                              f"eval_metrics={self.eval_metrics or 'none (l1; with palette on the demo data)'} "
                              f"leaves out; add it (--eval_metrics {','.join([*given, metric])})")
        if self.keep_best == "encoded_l1" and not self.uses_encoder:
            raise ConfigError(f"keep_best=encoded_l1 measures the encoded output G(A, E(B)), and variant="
                              f"{self.variant} has no encoder; choose fid or coverage")

    @property
    def uses_encoder(self) -> bool:
        return self.variant in ("bicycle", "cvae", "cae", "clr")

    @property
    def trained_networks(self) -> tuple[str, ...]:
        """The networks a training of this config has (BicycleGAN.networks()): G; E where a branch encodes;
        D where its GAN term counts; D2 for bicycle's random-z branch unless D serves both (use_same_D)."""
        own_d2 = self.variant == "bicycle" and self.lambda_GAN2 > 0 and not self.model.use_same_D
        has = {"G": True, "E": self.uses_encoder, "D": self.lambda_GAN > 0, "D2": own_d2}
        return tuple(name for name, built in has.items() if built)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def given(cls, cfg, who: str) -> "TrainConfig":
        """A TrainConfig, or its dict (config.json's content) checked into one, for the functions that
        take a config: anything else is a TypeError naming `who` (it was an AttributeError on .device)."""
        if isinstance(cfg, cls):
            return cfg
        if isinstance(cfg, dict):
            return cls.from_dict(cfg)
        raise TypeError(f"{who}: cfg must be a TrainConfig (make_config(...)) or its dict, got {type(cfg).__name__}")

    @classmethod
    def own_copy(cls, cfg, who: str) -> "TrainConfig":
        """given(cfg, who), as a copy of its own: what the caller changes afterwards changes nothing of the
        holder's (a model's objective, a dry run's init_from), and each field is checked again."""
        cfg = cls.given(cfg, who)
        if own := sorted({f.name for f in dataclasses.fields(cfg)} - {f.name for f in dataclasses.fields(cls)}):
            # (said as "unknown TrainConfig fields", of a class the caller never named)
            raise ConfigError(f"{who}: {type(cfg).__name__}'s own fields ({', '.join(own)}) would not be kept: "
                              f"checkpoints hold a TrainConfig, which every command reads back; keep your own "
                              f"settings on your model (a subclass of BicycleGAN, given as model_cls)")
        return cls.from_dict(cfg.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"a TrainConfig needs a dict of fields, got {type(d).__name__}")
        d = dict(d)
        parts = {}
        for name, part in (("model", ModelConfig), ("data", DataConfig)):
            sub = d.pop(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"'{name}' must be a dict of {part.__name__} fields, got {type(sub).__name__}")
            _known(part, sub)
            parts[name] = part(**sub)
        _known(cls, d)
        return cls(**parts, **d)


def _known(cls, d: dict) -> None:
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")


CONFIG_CLASSES = {"train": TrainConfig, "model": ModelConfig, "data": DataConfig}


def split_fields(flat: dict) -> dict[str, dict]:
    """Route flat option names (as on the command line) to the config that owns each."""
    owner = {f.name: part for part, cls in CONFIG_CLASSES.items() for f in dataclasses.fields(cls)
             if f.name not in ("model", "data")}
    out = {part: {} for part in CONFIG_CLASSES}
    for k, v in flat.items():
        if k not in owner:
            raise ConfigError(f"unknown option {k!r}")
        out[owner[k]][k] = v
    return out
