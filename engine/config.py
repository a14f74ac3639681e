"""Typed configs with the reference's option names and defaults (REFERENCE.md "Defaults").

ModelConfig holds what shapes the networks; TrainConfig holds the objective, optimisation and data
options plus a ModelConfig. Both validate at construction: a config that cannot work fails with a
message naming the field, the value and what would work.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

NET_G = ("unet_256", "unet_128", "unet")
NET_E = ("resnet_256", "resnet_128", "conv_256", "conv_128")
NET_D = ("basic_256_multi", "basic_128_multi", "basic_256", "basic_128")
VARIANTS = ("bicycle", "cvae", "clr", "cae", "pix2pix")
# Default U-Net depth of each named generator; "unet" derives it from the crop size.
UNET_DEPTH = {"unet_256": 8, "unet_128": 7}


class ConfigError(ValueError):
    """A configuration field has a value that cannot work."""


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(map(str, allowed))}")


def _positive(name, value, allow_zero=False):
    if not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


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
    impl: str = "auto"         # kernels for every layer: auto | triton | ref
    channels_last: bool = False  # channels_last memory format for all networks (GPU)

    def __post_init__(self):
        for name in ("input_nc", "output_nc", "ngf", "nef", "ndf", "num_Ds", "crop_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name}={v!r} must be a positive integer")
        if not isinstance(self.nz, int) or self.nz < 0:
            raise ConfigError(f"nz={self.nz!r} must be an integer >= 0")
        _choice("netG", self.netG, NET_G)
        _choice("netE", self.netE, NET_E)
        _choice("netD", self.netD, NET_D)
        _choice("netD2", self.netD2, NET_D)
        _choice("where_add", self.where_add, ("input", "all"))
        _choice("norm", self.norm, ("instance", "batch", "none"))
        _choice("nl", self.nl, ("relu", "lrelu", "elu"))
        _choice("upsample", self.upsample, ("basic", "bilinear"))
        _choice("init_type", self.init_type, ("xavier", "normal", "kaiming", "orthogonal"))
        _choice("impl", self.impl, ("auto", "triton", "ref"))
        if self.crop_width is not None and (not isinstance(self.crop_width, int) or self.crop_width <= 0):
            raise ConfigError(f"crop_width={self.crop_width!r} must be a positive integer or None (square)")
        h, w = self.size
        depth = self.unet_depth
        if depth < 2:
            raise ConfigError(f"num_downs={depth} must be >= 2")
        m = 2 ** depth
        if h % m or w % m:
            fix = f"{(h // m or 1) * m}x{(w // m or 1) * m}"
            raise ConfigError(
                f"crop size {h}x{w} is not a multiple of 2^num_downs = {m} (netG={self.netG}, "
                f"num_downs={depth}); use a size such as {fix}, or set num_downs <= "
                f"{_pow2_depth(h, w)} (netG=unet derives it from the size)")
        # InstanceNorm needs more than one element per plane: check the deepest normed layers.
        for name in ("netD", "netD2"):
            net = getattr(self, name)
            n_layers = 3 if net.startswith("basic_256") else 2
            scales = self.num_Ds if net.endswith("_multi") else 1
            side = min(h, w)
            for _ in range(scales - 1):
                side = (side + 1) // 2
            if (side >> n_layers) < 3:
                raise ConfigError(
                    f"{name}={net} with num_Ds={self.num_Ds} is too deep for {h}x{w} images (its "
                    f"coarsest scale would shrink to nothing); use basic_128_multi, fewer num_Ds or "
                    f"images of at least {3 << n_layers << (scales - 1)} px")
        kind, res = self.netE.split("_")
        e_down = (4 if res == "256" else 3) + 1 if kind == "resnet" else (5 if res == "256" else 4)
        e_min = (1 if kind == "resnet" else 2) << e_down
        if min(h, w) < e_min:
            raise ConfigError(f"netE={self.netE} downsamples 2^{e_down}x: too much for {h}x{w} "
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
        return _pow2_depth(*self.size)


def _pow2_depth(h, w):
    d = 0
    while h % 2 == 0 and w % 2 == 0:
        h, w, d = h // 2, w // 2, d + 1
    return d


COMPILE_MODES = ("off", "default", "max-autotune", "aot_eager")


@dataclass
class TrainConfig:
    """Objective, optimisation, data and run options; `model` holds the architecture."""
    model: ModelConfig = field(default_factory=ModelConfig)
    variant: str = "bicycle"   # bicycle | cvae (cVAE-GAN) | clr (cLR-GAN) | cae (cAE-GAN) | pix2pix (+noise)
    gan_mode: str = "lsgan"    # lsgan (MSE) | vanilla (BCE with logits)
    lambda_L1: float = 10.0  # weight of |G(A, E(B)) - B|
    lambda_GAN: float = 1.0  # weight of the GAN loss of D (encoded branch)
    lambda_GAN2: float = 1.0  # weight of the GAN loss of D2 (random-z branch)
    lambda_z: float = 0.5  # weight of the latent regression |E(G(A, z)) - z|
    lambda_kl: float = 0.01  # weight of the KL term (a sum over batch and nz)
    lambda_ms: float = 0.0     # mode-seeking loss (MSGAN); 0 = off, as in the reference
    lr: float = 2e-4  # initial Adam learning rate of every network
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    batch_size: int = 2  # images per iteration (per rank); even for bicycle
    niter: int = 100           # epochs at the initial learning rate
    niter_decay: int = 100     # epochs of linear decay to zero
    max_steps: Optional[int] = None  # stop after this many iterations (None: niter + niter_decay epochs)
    amp: str = "off"           # off | bf16 | fp16
    cuda_graph: bool = False   # capture the whole training step in a CUDA graph (CUDA; amp off or bf16)
    compile: str = "off"       # torch.compile every network: off | default | max-autotune | aot_eager (debug)
    seed: int = 0  # seeds weights, data order, z draws and the demo data
    dataroot: Optional[str] = None   # None: the built-in demo data
    load_size: int = 286  # images are resized to this before cropping
    preprocess: str = "resize_and_crop"  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
    direction: str = "AtoB"  # AtoB | BtoA (swap the halves of each image)
    no_flip: bool = False  # no random horizontal flips
    num_workers: int = 2  # data loading worker processes (CPU loader)
    backend: str = "auto"      # data loader: auto | dali | torch
    device: str = "auto"       # auto | cpu | cuda | cuda:N
    out: str = "runs/bicyclegan"  # run folder: config, log, samples, checkpoints
    log_every: int = 50        # iterations between loss logs (the only host syncs)
    sample_every: int = 500    # iterations between sample grids
    save_every: int = 1000     # iterations between checkpoints
    n_samples: int = 5         # random-z columns in sample grids

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        _choice("variant", self.variant, VARIANTS)
        _choice("gan_mode", self.gan_mode, ("lsgan", "vanilla"))
        _choice("amp", self.amp, ("off", "bf16", "fp16"))
        _choice("direction", self.direction, ("AtoB", "BtoA"))
        _choice("compile", self.compile, COMPILE_MODES)
        _choice("backend", self.backend, ("auto", "dali", "torch"))
        _choice("preprocess", self.preprocess,
                ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"))
        for name in ("lambda_L1", "lambda_GAN", "lambda_GAN2", "lambda_z", "lambda_kl", "lambda_ms"):
            _positive(name, getattr(self, name), allow_zero=True)
        _positive("lr", self.lr)
        for name in ("batch_size", "log_every", "sample_every", "save_every", "load_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{name}={v!r} must be a positive integer")
        for name in ("niter", "niter_decay", "num_workers", "n_samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name}={v!r} must be an integer >= 0")
        if self.cuda_graph and self.amp == "fp16":
            raise ConfigError("cuda_graph=True needs amp=bf16 or off: fp16's GradScaler makes host-side "
                              "decisions every step")
        if self.niter + self.niter_decay == 0 and self.max_steps is None:
            raise ConfigError("niter + niter_decay is 0 and max_steps is unset: nothing to train")
        if self.variant == "bicycle" and self.batch_size % 2:
            raise ConfigError(f"batch_size={self.batch_size} must be even for variant=bicycle: the first "
                              f"half is encoded (cVAE-GAN), the second lends its real B to D2; "
                              f"use {self.batch_size + 1} or {max(2, self.batch_size - 1)}")
        if self.model.nz == 0 and self.variant != "pix2pix":
            raise ConfigError(f"nz=0 leaves no latent code for variant={self.variant}; use nz > 0 "
                              f"(reference: 8) or variant=pix2pix")
        if self.load_size < max(self.model.size) and "crop" in self.preprocess:
            raise ConfigError(f"load_size={self.load_size} is smaller than the crop "
                              f"{self.model.size[0]}x{self.model.size[1]}; use load_size >= "
                              f"{max(self.model.size)}")

    @property
    def uses_encoder(self) -> bool:
        return self.variant in ("bicycle", "cvae", "cae", "clr")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown TrainConfig fields: {sorted(unknown)}")
        model = d.pop("model", {})
        mknown = {f.name for f in dataclasses.fields(ModelConfig)}
        if set(model) - mknown:
            raise ConfigError(f"unknown ModelConfig fields: {sorted(set(model) - mknown)}")
        return cls(model=ModelConfig(**model), **d)
