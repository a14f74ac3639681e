"""Config validation by known answers: every rule of ModelConfig, DataConfig and TrainConfig at its
boundary (the last value accepted, the first refused) with its exact message; the size rules against
the networks themselves; from_dict, split_fields and make_config's presets.

Expected values are written out by hand (or measured on the networks), never computed with the
config code; tools/mutation_engine.sh runs these first against the mutants of config.py and presets.py.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bicyclegan.engine import BicycleGAN, ConfigError, DataConfig, ModelConfig, TrainConfig, make_config
from bicyclegan.engine.config import d_geometry, e_geometry, split_fields
from bicyclegan.engine.networks import Encoder, MultiscaleDiscriminator, build_discriminator, build_encoder
from bicyclegan.kernels import InstanceNormAct2d

# A small valid model: U-Net depth from the size, the 128 px encoder and discriminators.
SMALL = dict(netG="unet", crop_size=32, netE="resnet_128", netD="basic_128_multi", netD2="basic_128_multi")


def model(**kw):
    return ModelConfig(**{**SMALL, **kw})


def train(**kw):
    return TrainConfig(model=model(), data=DataConfig(load_size=32), **kw)


def checked(**kw):
    """model(**kw) with its discriminators' and encoder's fit to the size checked (a training of variant bicycle,
    which builds them all, checks it; the builders check the network they build)."""
    cfg = model(**kw)
    cfg.check_networks()
    return cfg


def refused(make, message):
    with pytest.raises(ConfigError) as e:
        make()
    assert str(e.value) == message


# -- integers: the lowest value passes, one below is refused, with what would work -----------------
@pytest.mark.parametrize("make,name,low,optional", [
    *[(model, n, 1, False) for n in ("input_nc", "output_nc", "ngf", "nef", "num_Ds")],
    (lambda **kw: model(num_Ds=1, **kw), "ndf", 1, False),  # one scale: ndf 1 builds (see below for more)
    (model, "nz", 0, False), (model, "num_downs", 2, True),
    (DataConfig, "load_size", 1, False), (DataConfig, "num_workers", 0, True),
    (DataConfig, "max_dataset_size", 1, True), (DataConfig, "max_pixels", 1, False),
    *[(train, n, 1, False) for n in ("log_every", "sample_every", "save_every")],
    *[(train, n, 0, False) for n in ("niter", "n_samples", "seed", "save_epoch_freq")],
    (train, "max_steps", 1, True),
])
def test_integer_fields_take_their_lowest_value_and_refuse_one_below(make, name, low, optional):
    assert getattr(make(**{name: low}), name) == low
    what = {0: "an integer >= 0", 1: "a positive integer", 2: "an integer >= 2"}[low] + (" or None" if optional else "")
    refused(lambda: make(**{name: low - 1}), f"{name}={low - 1} must be {what}")
    if optional:
        assert getattr(make(**{name: None}), name) is None
    else:
        refused(lambda: make(**{name: None}), f"{name}=None must be {what}")


def test_sizes_and_batch_sizes_are_whole_positive_numbers():
    refused(lambda: model(crop_size=0), "crop_size=0 must be a positive integer")
    refused(lambda: model(crop_width=0), "crop_width=0 must be a positive integer or None")
    assert model(crop_width=64).size == (32, 64) and model().size == (32, 32)
    assert TrainConfig(variant="cvae", batch_size=1).batch_size == 1
    refused(lambda: TrainConfig(variant="cvae", batch_size=0), "batch_size=0 must be a positive integer")


@pytest.mark.parametrize("value", [True, False, 2.0, "8"])
def test_integer_fields_refuse_booleans_floats_and_strings(value):
    refused(lambda: model(ngf=value), f"ngf={value!r} must be a positive integer")
    refused(lambda: DataConfig(num_workers=value), f"num_workers={value!r} must be an integer >= 0 or None")


def test_numpy_scalars_are_taken_as_pythons_and_a_functions_numpy_int_is_said_so(tmp_path):
    # make_config(seed=np.int64(3)) (a loop over np.arange) was "seed=np.int64(3) must be an integer >= 0"
    cfg = make_config("demo", seed=np.int64(3), max_steps=np.int32(30), lr=np.float64(1e-4), ngf=np.int64(8),
                      no_flip=np.bool_(True), num_workers=np.int16(0))
    values = (cfg.seed, cfg.max_steps, cfg.lr, cfg.model.ngf, cfg.data.no_flip, cfg.data.num_workers)
    assert values == (3, 30, 1e-4, 8, True, 0) and [type(v) for v in values] == [int, int, float, int, bool, int]
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).seed == 3  # (config.json holds it)
    refused(lambda: model(ngf=np.int64(0)), "ngf=0 must be a positive integer")
    from bicyclegan.engine import sample
    with pytest.raises(ConfigError, match=r"seed=np.int64\(3\) must be an integer >= 0 and <= \d+ "
                       r"\(a Python int: int\(seed\)\)$"):
        sample(tmp_path / "no.pt", seed=np.int64(3))


# -- real numbers: finite, inside their interval, open or closed as each field needs -----------------
@pytest.mark.parametrize("name", ["lambda_L1", "lambda_GAN", "lambda_GAN2", "lambda_z", "lambda_kl", "lambda_ms"])
def test_loss_weights_may_be_zero_but_not_negative(name):
    assert getattr(train(**{name: 0.0}), name) == 0.0
    assert getattr(train(**{name: 3}), name) == 3  # an int is a number too
    refused(lambda: train(**{name: -1e-9}), f"{name}=-1e-09 must be a finite number >= 0")


@pytest.mark.parametrize("name", ["beta1", "beta2", "ema"])
def test_betas_and_ema_lie_in_zero_to_one_open_at_one(name):
    for ok in (0.0, 0.5, 0.999):
        assert getattr(train(**{name: ok}), name) == ok
    for bad in (1.0, 1.5, -0.1):
        refused(lambda: train(**{name: bad}), f"{name}={bad!r} must be a finite number >= 0 and < 1")


def test_learning_rate_and_init_gain_must_be_above_zero():
    assert train(lr=1e-12).lr == 1e-12 and model(init_gain=1e-12).init_gain == 1e-12
    refused(lambda: train(lr=0.0), "lr=0.0 must be a finite number > 0 and < 1")
    # (1.71e38 passed and Adam's step, lr / (1 - beta1), overflowed float32: a traceback, the run folder left)
    for big in (1.0, 1.71e38, 1e300):
        refused(lambda: train(lr=big), f"lr={big!r} must be a finite number > 0 and < 1")
    assert train(lr=0.5).lr == 0.5
    refused(lambda: model(init_gain=0), "init_gain=0 must be a finite number > 0")
    refused(lambda: model(init_gain=-0.02), "init_gain=-0.02 must be a finite number > 0")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "0.1", None])
def test_real_fields_refuse_non_finite_and_non_numbers(value):
    refused(lambda: train(lr=value), f"lr={value!r} must be a finite number > 0 and < 1")
    refused(lambda: train(beta2=value), f"beta2={value!r} must be a finite number >= 0 and < 1")


# -- booleans and choices ---------------------------------------------------------------------------
@pytest.mark.parametrize("make,name", [(model, "use_dropout"), (model, "conditional_D"), (model, "use_same_D"),
                                       (model, "channels_last"), (DataConfig, "no_flip"),
                                       (DataConfig, "skip_bad"), (train, "cuda_graph")])
def test_switches_are_true_or_false_only(make, name):
    assert getattr(make(**{name: True}), name) is True
    for bad in (1, 0, "yes", None):
        refused(lambda: make(**{name: bad}), f"{name}={bad!r} must be true or false")


@pytest.mark.parametrize("make,name,allowed", [
    (model, "netE", "resnet_256, resnet_128, conv_256, conv_128"),
    (model, "netD", "basic_256_multi, basic_128_multi, basic_256, basic_128"),
    (model, "netD2", "basic_256_multi, basic_128_multi, basic_256, basic_128"),
    (model, "where_add", "input, all"), (model, "norm", "instance, batch, none"), (model, "nl", "relu, lrelu, elu"),
    (model, "upsample", "basic, bilinear"), (model, "init_type", "xavier, normal, kaiming, orthogonal"),
    (model, "impl", "auto, triton, ref"),
    (DataConfig, "preprocess", "resize_and_crop, crop, scale_width, scale_width_and_crop, none"),
    (DataConfig, "direction", "AtoB, BtoA"), (DataConfig, "backend", "auto, dali, torch"),
    (train, "variant", "bicycle, cvae, clr, cae, pix2pix"), (train, "gan_mode", "lsgan, vanilla"),
    (train, "amp", "off, bf16, fp16"), (train, "compile", "off, default, max-autotune, aot_eager"),
])
def test_choices_take_each_listed_value_and_name_them_all_when_refusing(make, name, allowed):
    for value in allowed.split(", "):
        if value in ("conv_256", "basic_256_multi"):
            continue  # too deep for SMALL's 32 px (their sizes: test_the_..._check_accepts_exactly_...)
        assert getattr(make(**{name: value}), name) == value
    refused(lambda: make(**{name: "x"}), f"{name}='x' is not valid; choose one of {allowed}")


def test_generator_names_and_their_depths():
    assert ModelConfig(netG="unet_256").unet_depth == 8 and ModelConfig(netG="unet_128").unet_depth == 7
    assert model(num_downs=3).unet_depth == 3 and ModelConfig(netG="unet_256", num_downs=3).unet_depth == 3
    refused(lambda: model(netG="unet_64"), "netG='unet_64' is not valid; choose one of unet_256, unet_128, unet")


# -- the U-Net's size rules ---------------------------------------------------------------------------
@pytest.mark.parametrize("h,w,depth", [(32, 32, 5), (96, 64, 5), (32, 48, 4), (48, 32, 4), (36, 36, 2), (36, 40, 2),
                                       (256, 128, 7)])
def test_netG_unet_halves_as_long_as_both_sides_are_even(h, w, depth):
    assert model(crop_size=h, crop_width=w).unet_depth == depth


@pytest.mark.parametrize("h,w,times,fix", [(34, 34, 1, "32x32"), (36, 34, 1, "36x32"), (34, 36, 1, "32x36"),
                                           (33, 32, 0, "32x32"), (32, 33, 0, "32x32"), (50, 30, 1, "48x28")])
def test_a_size_that_halves_fewer_than_two_times_is_refused(h, w, times, fix):
    # netG=unet derives num_downs from the size: the message named num_downs, an option the user never gave, and
    # not the size to give
    refused(lambda: model(netG="unet", crop_size=h, crop_width=w),
            f"crop size {h}x{w} halves only {times} time{'s' if times != 1 else ''}: netG=unet takes its depth from "
            f"the size, and needs sides that are multiples of 4 or more (2 levels); use a size such as {fix}")
    assert model(netG="unet", crop_size=int(fix.split("x")[0]), crop_width=int(fix.split("x")[1])).unet_depth >= 2
    refused(lambda: model(netG="unet", crop_size=h, crop_width=w, num_downs=2),  # given, and named
            f"crop size {h}x{w} is not a multiple of 2^num_downs = 4 (netG=unet, num_downs=2); use a size such as "
            f"{max(4, h // 4 * 4)}x{max(4, w // 4 * 4)}")  # (not "num_downs <= 1", which no size takes)


@pytest.mark.parametrize("netG,h,w,m,depth,fix,most", [
    ("unet_256", 128, 128, 256, 8, "256x256", 7), ("unet_256", 256, 100, 256, 8, "256x256", 2),
    ("unet_256", 100, 256, 256, 8, "256x256", 2), ("unet_256", 600, 300, 256, 8, "512x256", 2),
    ("unet_128", 192, 128, 128, 7, "128x128", 6),
])
def test_a_size_the_unet_cannot_halve_names_a_size_that_works(netG, h, w, m, depth, fix, most):
    refused(lambda: ModelConfig(netG=netG, crop_size=h, crop_width=w),
            f"crop size {h}x{w} is not a multiple of 2^num_downs = {m} (netG={netG}, num_downs={depth}); use a "
            f"size such as {fix}, or set num_downs <= {most} (netG=unet derives it from the size)")
    assert ModelConfig(netG=netG, crop_size=h, crop_width=w, num_downs=most).unet_depth == most


def test_explicit_num_downs_is_checked_against_the_size():
    assert model(crop_size=48, num_downs=4).unet_depth == 4
    refused(lambda: model(crop_size=40, num_downs=4),
            "crop size 40x40 is not a multiple of 2^num_downs = 16 (netG=unet, num_downs=4); use a size such as "
            "32x32, or set num_downs <= 3 (netG=unet derives it from the size)")


# -- discriminator and encoder sizes, measured on the networks ----------------------------------------
def _runs(net, side):
    """Whether `net` takes a side x side image with more than one element in every normed plane."""
    planes = []
    hooks = [m.register_forward_pre_hook(lambda _, a: planes.append(a[0].shape[-2:].numel()))
             for m in net.modules() if isinstance(m, InstanceNormAct2d)]
    try:
        with torch.no_grad():
            net.train()(torch.zeros(1, 3, side, side))
    except (RuntimeError, ValueError):  # a kernel larger than its (padded) input, a pool of nothing
        return False
    finally:
        for h in hooks:
            h.remove()
    return min(planes) > 1


def _verdict(kw, side, prefix):
    try:
        ModelConfig(netG="unet", num_downs=2, crop_size=side, **kw).check_networks()
    except ConfigError as e:
        if str(e).startswith(prefix):
            return False
    return True


D_CASES = [("basic_128", 1), ("basic_256", 1), ("basic_128", 3)] + [
    (n, k) for n in ("basic_128_multi", "basic_256_multi") for k in (1, 2, 3, 4)]


@pytest.mark.parametrize("netD,num_Ds", D_CASES)
@pytest.mark.parametrize("which", ["netD", "netD2"])
def test_the_discriminator_check_accepts_exactly_the_sizes_its_network_takes(which, netD, num_Ds):
    D = MultiscaleDiscriminator(3, 8, netD, num_Ds, "instance", "ref")
    other = "netD2" if which == "netD" else "netD"  # basic_128 takes 12 px and up: start above it
    kw = {which: netD, other: "basic_128", "num_Ds": num_Ds, "netE": "resnet_128"}
    sides = range(4 if which == "netD" else 12, 100, 4)
    assert [s for s in sides if _verdict(kw, s, f"{which}=")] == [s for s in sides if _runs(D, s)]


@pytest.mark.parametrize("netE,low", [("resnet_128", 16), ("resnet_256", 32), ("conv_128", 32), ("conv_256", 64)])
def test_the_encoder_check_accepts_exactly_the_sizes_its_network_takes(netE, low):
    E = Encoder(ModelConfig(netE=netE, nef=2, impl="ref"))
    kw = {"netE": netE, "netD": "basic_128", "netD2": "basic_128"}
    sides = range(12, 88, 4)
    accepted = [s for s in sides if _verdict(kw, s, "netE=")]
    assert accepted == [s for s in sides if _runs(E, s)] and accepted[0] == low
    side = low - 4
    refused(lambda: ModelConfig(netG="unet", num_downs=2, crop_size=side, crop_width=low, **kw).check_networks(),
            f"netE={netE} downsamples 2^{4 if netE.endswith('128') else 5}x: too much for {side}x{low} images; "
            f"use resnet_128/conv_128 or images of at least {low} px")


def test_a_discriminator_too_deep_for_the_size_says_what_fits():
    refused(lambda: checked(netD2="basic_256_multi"),
            "netD2=basic_256_multi with num_Ds=2 is too deep for 32x32 images (its coarsest scale would shrink "
            "to nothing); use basic_128_multi, fewer num_Ds or images of at least 48 px")
    # num_Ds is both discriminators'; basic_128_multi is not offered where it is too deep itself
    refused(lambda: checked(netD="basic_128_multi", num_Ds=3, crop_width=64),
            "netD=basic_128_multi and netD2=basic_128_multi with num_Ds=3 are too deep for 32x64 images (their "
            "coarsest scale would shrink to nothing); use fewer num_Ds or images of at least 48 px")
    refused(lambda: checked(netD="basic_256", crop_size=16),
            "netD=basic_256 and netD2=basic_128_multi with num_Ds=2 are too deep for 16x16 images (their coarsest "
            "scale would shrink to nothing); use fewer num_Ds or images of at least 24 px")
    # both at once: the reference's default discriminators at 32 px (one named, then the other, took two tries)
    refused(lambda: checked(netD="basic_256_multi", netD2="basic_256_multi"),
            "netD=basic_256_multi and netD2=basic_256_multi with num_Ds=2 are too deep for 32x32 images (their "
            "coarsest scale would shrink to nothing); use basic_128_multi, fewer num_Ds or images of at least 48 px")


@pytest.mark.parametrize("variant", ["pix2pix", "cae", "cvae", "clr"])
def test_a_variant_is_checked_for_the_networks_it_builds_alone(variant):
    """Only bicycle has D2, and pix2pix no E: at 32 px the default netD2 (basic_256_multi, 48 px and up) was refused
    for every variant, and the fix named (--netD2 basic_128_multi) refused by them as changing nothing; at 16 px
    pix2pix was refused for the default netE too."""
    small = dict(netG="unet", crop_size=32, netD="basic_128_multi")  # netD2, netE: the defaults
    cfg = TrainConfig(model=ModelConfig(**small), data=DataConfig(load_size=32), variant=variant)
    assert (cfg.model.netD2, cfg.model.netE) == ("basic_256_multi", "resnet_256")
    net = BicycleGAN(cfg, device="cpu")  # D2 and (pix2pix) E not built, D and G are
    assert net.D2 is None and net.D is not None and (net.E is None) == (variant == "pix2pix")
    tiny = dict(small, crop_size=16, num_Ds=1)  # (basic_128_multi's two scales are too deep for 16 px)
    make = lambda: TrainConfig(model=ModelConfig(**tiny), data=DataConfig(load_size=16), variant=variant)  # noqa: E731
    if variant == "pix2pix":
        assert make().model.netE == "resnet_256"
    else:  # resnet_256 takes 32 px and up
        refused(make, "netE=resnet_256 downsamples 2^5x: too much for 16x16 images; use resnet_128/conv_128 or "
                      "images of at least 32 px")
    refused(lambda: TrainConfig(model=ModelConfig(**small), data=DataConfig(load_size=32), variant="bicycle"),
            "netD2=basic_256_multi with num_Ds=2 is too deep for 32x32 images (its coarsest scale would shrink to "
            "nothing); use basic_128_multi, fewer num_Ds or images of at least 48 px")


def test_the_builders_check_the_network_they_build():
    cfg = ModelConfig(netG="unet", crop_size=16, netD="basic_128")  # (the default D2 and E: too deep for 16 px)
    refused(lambda: build_encoder(cfg), "netE=resnet_256 downsamples 2^5x: too much for 16x16 images; use "
                                        "resnet_128/conv_128 or images of at least 32 px")
    # (basic_128_multi, with two scales, is too deep for 16 px itself: not offered; a single-scale D has no num_Ds)
    deep = "is too deep for 16x16 images (its coarsest scale would shrink to nothing); use"
    refused(lambda: build_discriminator(cfg, cfg.netD2),
            f"netD2=basic_256_multi with num_Ds=2 {deep} fewer num_Ds or images of at least 48 px")
    refused(lambda: build_discriminator(cfg, "basic_256"), f"netD=basic_256 with num_Ds=2 {deep} images of at least "
                                                           f"24 px")


def test_a_single_scale_is_not_told_to_use_fewer_scales():
    # num_Ds=1: "fewer num_Ds" was offered, fewer than one scale
    refused(lambda: checked(netD="basic_256_multi", num_Ds=1, crop_size=16),
            "netD=basic_256_multi with num_Ds=1 is too deep for 16x16 images (its coarsest scale would shrink to "
            "nothing); use basic_128_multi or images of at least 24 px")


@pytest.mark.parametrize("ndf,num_Ds,filters", [(1, 1, [1]), (2, 2, [2, 1]), (3, 3, [3, 2, 1]), (5, 4, [5, 2, 1, 1])])
def test_every_discriminator_scale_keeps_a_filter(ndf, num_Ds, filters):
    """Scale i has round(ndf / 2^i) filters, rounded half to even as the reference's int(round(...)):
    the values are worked out by hand, and the network is built to show they are what it has."""
    D = MultiscaleDiscriminator(3, ndf, "basic_128_multi", num_Ds, "instance", "ref")
    assert [s[0].out_channels for s in D.scales] == filters
    assert model(ndf=ndf, num_Ds=num_Ds, crop_size=128).ndf == ndf


def test_a_discriminator_scale_without_filters_is_refused_naming_ndf_and_num_Ds():
    """ndf 1 at two scales built a scale of round(1/2) = 0 filters and failed in the initialisation
    with a ZeroDivisionError; ndf 2 at three scales likewise (round(2/4) = round(0.5) = 0)."""
    refused(lambda: checked(ndf=1),
            "ndf=1 with num_Ds=2 leaves the discriminators' scale 2 (netD=basic_128_multi, "
            "netD2=basic_128_multi) round(1 / 2) = 0 filters; use ndf >= 2 or num_Ds <= 1")
    refused(lambda: checked(ndf=2, num_Ds=3, netD="basic_128", crop_size=128),
            "ndf=2 with num_Ds=3 leaves the discriminators' scale 3 (netD2=basic_128_multi) "
            "round(2 / 4) = 0 filters; use ndf >= 3 or num_Ds <= 2")
    refused(lambda: checked(ndf=4, num_Ds=4, crop_size=128),
            "ndf=4 with num_Ds=4 leaves the discriminators' scale 4 (netD=basic_128_multi, "
            "netD2=basic_128_multi) round(4 / 8) = 0 filters; use ndf >= 5 or num_Ds <= 3")
    # single-scale discriminators take no num_Ds: ndf 1 builds
    assert model(ndf=1, netD="basic_128", netD2="basic_128").ndf == 1


@pytest.mark.parametrize("name,num_Ds,geometry", [
    ("basic_256_multi", 2, (3, 2)), ("basic_256_multi", 3, (3, 3)), ("basic_128_multi", 4, (2, 4)),
    ("basic_256", 3, (3, 1)), ("basic_128", 2, (2, 1))])
def test_discriminator_geometry(name, num_Ds, geometry):
    assert d_geometry(name, num_Ds) == geometry


def test_encoder_geometry():
    assert [e_geometry(n) for n in ("resnet_256", "resnet_128", "conv_256", "conv_128")] == [
        ("resnet", 5), ("resnet", 4), ("conv", 5), ("conv", 4)]


# -- data settings ------------------------------------------------------------------------------------
def test_dataroot_becomes_a_string_and_none_stays_none():
    assert DataConfig(dataroot=Path("data") / "facades").dataroot == str(Path("data") / "facades")
    assert DataConfig().dataroot is None and DataConfig(dataroot="x").dataroot == "x"


@pytest.mark.parametrize("name", ["init_from", "lpips_backbone", "lpips_linear", "fid_weights"])
def test_path_fields_take_a_path_as_a_string_and_refuse_anything_else(name):
    assert getattr(TrainConfig(**{name: Path("w") / "a.pth"}), name) == "w/a.pth"  # config.json holds strings
    assert getattr(TrainConfig(**{name: None}), name) is None
    with pytest.raises(ConfigError, match=rf"^{name}=3: expected a path \(a str or a Path\)$"):
        TrainConfig(**{name: 3})


def test_the_load_size_must_reach_the_crop_when_resizing_then_cropping():
    m = model(crop_size=64, crop_width=128, num_downs=2)
    assert TrainConfig(model=m, data=DataConfig(load_size=128)).data.load_size == 128
    refused(lambda: TrainConfig(model=m, data=DataConfig(load_size=127)),
            "load_size=127 is smaller than the crop 64x128; use load_size >= 128")
    refused(lambda: DataConfig(load_size=127).check_fits(m),
            "load_size=127 is smaller than the crop 64x128; use load_size >= 128")
    for preprocess in ("crop", "scale_width", "scale_width_and_crop", "none"):  # they never shrink below the crop
        DataConfig(load_size=16, preprocess=preprocess).check_fits(m)


# -- training options that depend on each other ------------------------------------------------------
def test_seeds_stay_below_two_to_the_31():
    assert train(seed=2 ** 31 - 1).seed == 2 ** 31 - 1
    refused(lambda: train(seed=2 ** 31), "seed=2147483648 must be below 2^31")


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:7"])
def test_devices_that_are_accepted(device):
    assert train(device=device).device == device


@pytest.mark.parametrize("device", ["gpu:0", "cud", "CPU", "", 0, None])
def test_devices_that_are_refused(device):
    refused(lambda: train(device=device), f"device={device!r} is not valid; use auto, cpu, cuda or cuda:N")


def test_cuda_graphs_refuse_fp16_only():
    assert train(cuda_graph=True, amp="bf16").cuda_graph and train(cuda_graph=True).cuda_graph
    assert train(amp="fp16").amp == "fp16"
    refused(lambda: train(cuda_graph=True, amp="fp16"), "cuda_graph=True needs amp=bf16 or off: fp16's "
                                                        "GradScaler makes host-side decisions every step")


def test_sync_bn_is_for_batchnorm_only():
    assert TrainConfig(model=model(norm="batch"), data=DataConfig(load_size=32), sync_bn=True).sync_bn is True
    assert train().sync_bn is False  # off by default, as the reference (its replicas keep their own statistics)
    for norm in ("instance", "none"):
        refused(lambda: TrainConfig(model=model(norm=norm), data=DataConfig(load_size=32), sync_bn=True),
                f"sync_bn=True synchronises BatchNorm statistics over torchrun's ranks, and norm={norm} has none; "
                f"use norm=batch or leave --sync_bn out")
    refused(lambda: TrainConfig(model=model(norm="batch"), data=DataConfig(load_size=32), sync_bn=1),
            "sync_bn=1 must be true or false")


def test_a_run_needs_a_schedule_of_at_least_one_epoch():
    # No epoch in the schedule means a learning rate of 0 from the start, with or without max_steps.
    nothing = ("niter + niter_decay is 0: the learning-rate schedule has no epoch to train (niter epochs at lr, "
               "then niter_decay epochs decaying to 0)")
    refused(lambda: train(niter=0, niter_decay=0), nothing)
    refused(lambda: train(niter=0, niter_decay=0, max_steps=1), nothing)
    assert train(niter=0, niter_decay=1).niter_decay == 1 and train(niter=1, niter_decay=0).niter == 1
    assert train(niter=1, niter_decay=1).niter == 1 and train(niter=2, niter_decay=2).niter == 2


@pytest.mark.parametrize("batch,hint", [(1, "use 2"), (3, "use 4 or 2"), (5, "use 6 or 4")])  # 1: "use 2 or 2"
def test_bicycle_needs_an_even_batch(batch, hint):
    refused(lambda: train(batch_size=batch), f"batch_size={batch} must be even for variant=bicycle: the first "
                                             f"half is encoded (cVAE-GAN), the second lends its real B to D2; {hint}")
    for variant in ("cvae", "clr", "cae", "pix2pix"):
        assert train(variant=variant, batch_size=batch).batch_size == batch
    assert train(batch_size=batch + 1).batch_size == batch + 1


EARLIER = (" (for a run an earlier version trained so: --init_from it with the option mended, as a resume keeps the "
           "run's options)")


def test_a_shared_discriminator_needs_the_encoded_branchs_gan_loss():
    # D is built for lambda_GAN > 0 only: with use_same_D the random-z branch had no D and trained
    # without any GAN loss, silently. Refused where a training starts: a config an earlier version trained so
    # loads (its G and E sample; refused in the config itself, nothing of such a run could be used).
    from bicyclegan.engine.runtime import check_runnable
    same = model(use_same_D=True)
    cfg = TrainConfig(model=same, data=DataConfig(load_size=32), lambda_GAN=0.0)
    refused(lambda: check_runnable(cfg, torch.device("cpu")),
            "use_same_D=True shares D between the branches, but lambda_GAN=0 builds no D: the random-z branch's "
            "GAN loss (lambda_GAN2=1.0) would be dropped; set lambda_GAN > 0 or use_same_D=False" + EARLIER)
    assert TrainConfig.from_dict(cfg.to_dict()).lambda_GAN == 0
    for kw in (dict(lambda_GAN=0.0, lambda_GAN2=0.0), dict(lambda_GAN=0.5)):
        check_runnable(TrainConfig(model=same, data=DataConfig(load_size=32), **kw), torch.device("cpu"))
    check_runnable(TrainConfig(model=model(), data=DataConfig(load_size=32), lambda_GAN=0.0),  # D2 alone, its own
                   torch.device("cpu"))
    from bicyclegan.engine.cli import main
    assert main(["train", "--dry-run", "--use_same_D", "--lambda_GAN", "0"]) == 2


def test_only_pix2pix_goes_without_a_latent_code():
    zero = ModelConfig(**{**SMALL, "nz": 0})
    assert TrainConfig(model=zero, data=DataConfig(load_size=32), variant="pix2pix").model.nz == 0
    for variant in ("bicycle", "cvae", "clr", "cae"):
        refused(lambda: TrainConfig(model=zero, data=DataConfig(load_size=32), variant=variant),
                f"nz=0 leaves no latent code for variant={variant}; use nz > 0 (reference: 8) or variant=pix2pix")
        assert TrainConfig(model=model(nz=1), data=DataConfig(load_size=32), variant=variant).model.nz == 1


def test_the_mode_seeking_loss_needs_a_latent_code():
    """lambda_ms divides by mean|z1 - z2|: with nz=0 a mean over no values (NaN), and the first step
    filled G with NaN."""
    zero = ModelConfig(**{**SMALL, "nz": 0})
    refused(lambda: TrainConfig(model=zero, data=DataConfig(load_size=32), variant="pix2pix", lambda_ms=0.5),
            "lambda_ms=0.5 rewards outputs that differ with z, and nz=0 has none; use nz > 0 or lambda_ms=0")
    assert TrainConfig(model=zero, data=DataConfig(load_size=32), variant="pix2pix", lambda_ms=0.0).lambda_ms == 0
    assert TrainConfig(model=model(nz=1), data=DataConfig(load_size=32), variant="pix2pix", lambda_ms=0.5).model.nz == 1


@pytest.mark.parametrize("variant,terms", [
    ("bicycle", ["lambda_L1", "lambda_GAN", "lambda_GAN2", "lambda_z", "lambda_kl", "lambda_ms"]),
    ("cvae", ["lambda_L1", "lambda_GAN", "lambda_kl", "lambda_ms"]),
    ("cae", ["lambda_L1", "lambda_GAN", "lambda_ms"]),
    ("clr", ["lambda_GAN", "lambda_z", "lambda_ms"]),
    ("pix2pix", ["lambda_L1", "lambda_GAN", "lambda_ms"]),
])
def test_a_variant_whose_terms_all_weigh_zero_is_refused(variant, terms):
    """cLR-GAN with lambda_GAN=0 and lambda_z=0 had no term at all: train_step's backward of a sum of
    nothing was an AttributeError ('int' object has no attribute 'backward'); the others trained on
    a loss of 0. Each term alone is enough; the weights of terms the variant does not have are not."""
    from bicyclegan.engine.runtime import check_runnable
    zeros = dict.fromkeys(terms, 0.0)
    others = {n: 1.0 for n in ("lambda_L1", "lambda_GAN", "lambda_GAN2", "lambda_z", "lambda_kl") if n not in terms}
    cfg = train(variant=variant, **zeros, **others)  # (a config an earlier version trained so: it loads)
    refused(lambda: check_runnable(cfg, torch.device("cpu")),
            f"variant={variant} with {', '.join(f'{n}=0.0' for n in terms)} has no loss term to train with; "
            f"give one of them a weight > 0" + EARLIER)
    for n in terms:
        one = train(variant=variant, **{**zeros, n: 0.5})
        if not (variant == "clr" and n != "lambda_z"):  # (clr without lambda_z: refused for E, the test below)
            check_runnable(one, torch.device("cpu"))


def test_clr_without_the_latent_regression_is_refused():
    # cLR-GAN trains E by |E(G(A, z)) - z| alone: with lambda_z=0 it stayed as initialised, and evaluate and compare
    # reported its encoded outputs' measures as the model's
    # Refused where a training starts (train, its dry run, Trainer); a stored config of an earlier version's such run
    # still loads, to sample from (its random z need no E)
    from bicyclegan.engine.runtime import check_runnable
    refused(lambda: check_runnable(train(variant="clr", lambda_z=0.0), torch.device("cpu")),
            "variant=clr trains its encoder E by the latent regression alone: lambda_z=0 leaves E untrained, its "
            "encoded outputs a random network's; give lambda_z > 0, or use variant=pix2pix for a model without E"
            + EARLIER)
    assert TrainConfig.from_dict(train(variant="clr", lambda_z=0.0).to_dict()).lambda_z == 0
    check_runnable(train(variant="clr", lambda_z=0.1), torch.device("cpu"))
    check_runnable(train(variant="bicycle", lambda_z=0.0), torch.device("cpu"))
    from bicyclegan.engine.cli import main
    assert main(["train", "--dry-run", "--variant", "clr", "--lambda_z", "0"]) == 2


def test_which_variants_use_the_encoder():
    assert {v: train(variant=v).uses_encoder for v in ("bicycle", "cvae", "clr", "cae", "pix2pix")} == {
        "bicycle": True, "cvae": True, "clr": True, "cae": True, "pix2pix": False}


# -- dicts: config.json, checkpoints and the command line ---------------------------------------------
def test_a_load_size_whose_images_pass_max_pixels_is_refused():
    # --load_size 100000 was a MemoryError in a loader worker (30 GB a picture), and train --dry-run passed it
    refused(lambda: DataConfig(load_size=100_000), "load_size=100000 resizes images to 10,000,000,000 pixels (a "
            "square one), over the 50,000,000 the loaders take of a picture; use load_size <= 7071, or raise "
            "max_pixels")
    assert DataConfig(load_size=7071).load_size == 7071 and DataConfig(load_size=100_000, preprocess="crop")
    assert DataConfig(load_size=100_000, max_pixels=10 ** 10).load_size == 100_000
    refused(lambda: DataConfig(load_size=8000, preprocess="scale_width"), "load_size=8000 resizes images to "
            "64,000,000 pixels (a square one), over the 50,000,000 the loaders take of a picture; use load_size <= "
            "7071, or raise max_pixels")
    assert DataConfig(max_pixels=1).load_size == 286  # (a lower limit for the files alone: the resize keeps its own)
    from bicyclegan.pipelines import make_loader  # the pipelines' own entry, as the configs
    with pytest.raises(ValueError, match="load_size=60000 resizes images to 3,600,000,000 pixels"):
        make_loader("nowhere", batch_size=1, load_size=60000, crop_size=32, backend="torch", num_workers=0)


@pytest.mark.parametrize("name", ["out", "dataroot", "init_from", "lpips_backbone"])
def test_an_empty_path_is_refused(name):
    # out="" trained into the current folder among its files; dataroot="" read the current folder as the data
    refused(lambda: make_config("demo", **{name: " " if name == "dataroot" else ""}),
            f"{name}={' ' if name == 'dataroot' else ''!r} names no folder or file; give one")


def test_parts_given_as_dicts_are_built_and_checked():
    cfg = TrainConfig(model=dict(SMALL), data={"load_size": 32})
    assert cfg.model == ModelConfig(**SMALL) and cfg.data == DataConfig(load_size=32)
    refused(lambda: TrainConfig(model={**SMALL, "ngf": 0}, data={"load_size": 32}), "ngf=0 must be a positive integer")


def test_from_dict_reads_what_to_dict_wrote():
    cfg = TrainConfig(model=model(ngf=8, crop_width=64), data=DataConfig(load_size=64, dataroot="d"),
                      variant="cvae", lr=1e-3, max_steps=7)
    d = cfg.to_dict()
    assert d["model"]["ngf"] == 8 and d["data"]["dataroot"] == "d" and d["lr"] == 1e-3
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.from_dict(d) is not cfg and d["model"]["ngf"] == 8  # the dict is left as it was
    assert TrainConfig.from_dict({}) == TrainConfig()
    assert TrainConfig.from_dict({"variant": "cae"}).variant == "cae"


def test_from_dict_names_what_does_not_fit():
    refused(lambda: TrainConfig.from_dict([("lr", 1)]), "a TrainConfig needs a dict of fields, got list")
    refused(lambda: TrainConfig.from_dict({"model": "unet"}), "'model' must be a dict of ModelConfig fields, got str")
    refused(lambda: TrainConfig.from_dict({"data": None}), "'data' must be a dict of DataConfig fields, got NoneType")
    refused(lambda: TrainConfig.from_dict({"model": {"ngf": 8, "zz": 1, "aa": 2}}),
            "unknown ModelConfig fields: aa, zz")
    refused(lambda: TrainConfig.from_dict({"data": {"flip": True}}), "unknown DataConfig fields: flip")
    refused(lambda: TrainConfig.from_dict({"learning_rate": 1}), "unknown TrainConfig fields: learning_rate")
    refused(lambda: TrainConfig.from_dict({"lr": -1.0}), "lr=-1.0 must be a finite number > 0 and < 1")
    # The parts given to the constructor as dicts say the same (a TypeError from ModelConfig before).
    refused(lambda: TrainConfig(model={"ngff": 3}), "unknown ModelConfig fields: ngff")
    refused(lambda: TrainConfig(data={"flip": True}), "unknown DataConfig fields: flip")
    assert TrainConfig(model={"ngf": 3}).model.ngf == 3


def test_split_fields_routes_each_option_to_its_config():
    assert split_fields({"ngf": 8, "load_size": 64, "lr": 0.1, "no_flip": True, "crop_width": None}) == {
        "train": {"lr": 0.1}, "model": {"ngf": 8, "crop_width": None}, "data": {"load_size": 64, "no_flip": True}}
    assert split_fields({}) == {"train": {}, "model": {}, "data": {}}
    for name in ("learning_rate", "model", "data"):
        refused(lambda: split_fields({"ngf": 8, name: {}}), f"unknown option {name!r}")


# -- make_config: presets and options ------------------------------------------------------------------
def test_the_default_preset_is_the_demo_without_data_and_the_reference_with_it():
    demo, ref = make_config(), make_config(dataroot="d")
    assert (demo.model.crop_size, demo.model.ngf, demo.data.load_size, demo.batch_size) == (32, 16, 32, 112)
    assert (ref.model.crop_size, ref.model.ngf, ref.data.load_size, ref.batch_size) == (256, 64, 286, 2)
    assert ref.data.dataroot == "d" and make_config(None, dataroot="d") == ref
    refused(lambda: make_config("shoes"), "preset='shoes' is not valid; choose one of demo, reference, "
                                          "edges2shoes, edges2handbags, night2day, maps, facades")


def test_options_win_over_the_preset_and_reach_their_config():
    cfg = make_config("edges2shoes", ngf=16, load_size=300, niter=3, direction="BtoA")
    assert (cfg.model.ngf, cfg.model.input_nc, cfg.data.load_size, cfg.data.direction) == (16, 1, 300, "BtoA")
    assert (cfg.niter, cfg.niter_decay, cfg.save_epoch_freq) == (3, 30, 5)
    refused(lambda: make_config("demo", learning_rate=1), "unknown option 'learning_rate'")


def test_the_demo_loads_at_the_size_it_is_asked_to_crop():
    assert make_config("demo", crop_size=64).data.load_size == 64
    assert make_config("demo", crop_width=64).data.load_size == 64  # crop 32x64
    assert make_config("demo", crop_size=64, crop_width=128, num_downs=2).data.load_size == 128
    assert make_config("demo", crop_size=128, crop_width=64, num_downs=2).data.load_size == 128
    assert make_config("demo", crop_size=64, load_size=80).data.load_size == 80  # said explicitly: kept
    assert make_config("demo", ngf=8).data.load_size == 32
    assert make_config("reference", netG="unet_128", crop_size=128).data.load_size == 286  # only the demo carries it
    refused(lambda: make_config("demo", crop_size=(32, 64)), "crop_size=(32, 64) must be a positive integer")
    refused(lambda: make_config("demo", crop_width="64"), "crop_width='64' must be a positive integer or None")


STRICT = ("the kernels' fallback mode is 'strict' ($BICYCLEGAN_KERNELS=strict or set_fallback_mode('strict')), which "
          "refuses impl=auto's PyTorch reference, and the layers would run it on {}: {}; ask for the reference "
          "(train's --impl ref, impl='ref' in Python: ModelConfig's, load_checkpoint's), or leave strict mode")


def test_the_kernels_fallback_mode_is_read_before_a_run_starts(tmp_path, monkeypatch):
    """BICYCLEGAN_KERNELS=strict where the layers run impl="auto" on a device the kernels cannot run on, and a bad
    value: raised at the first layer's forward, a traceback, a training's folder written (which then refused the
    rerun: 'stopped before its first checkpoint'). Refused now, by the variable, before anything is written."""
    from bicyclegan.engine.cli import main
    from bicyclegan.engine.runtime import check_runnable
    from bicyclegan.kernels import _impl
    monkeypatch.chdir(tmp_path)  # (the demo data is made here)
    monkeypatch.setattr(_impl, "runs_triton", lambda device: False)  # (a CPU without the interpreter, CUDA no triton)
    for mode in ("strict", "stirct"):
        monkeypatch.setattr(_impl, "_fallback_mode", None)  # (read from the environment at the next use)
        monkeypatch.setenv("BICYCLEGAN_KERNELS", mode)
        said = (STRICT.format("cpu", "the kernels run on a CUDA device, or on the CPU under TRITON_INTERPRET=1, "
                                     "slowly") if mode == "strict" else
                "$BICYCLEGAN_KERNELS must be one of ('allow', 'warn', 'strict') (or unset), got 'stirct'")
        refused(lambda: check_runnable(train(), torch.device("cpu")), said)
        refused(lambda: BicycleGAN(train(), device="cpu", training=False), said)  # (sample, serve... load so)
        assert main(["train", "--out", "run", "--max_steps", "1", "--crop_size", "32", "--ngf", "4", "--nef", "4",
                     "--ndf", "4", "--batch_size", "2", "--device", "cpu"]) == 2
        assert not (tmp_path / "run").exists()
    monkeypatch.setattr(_impl, "_fallback_mode", "strict")
    from bicyclegan.engine.runtime import check_fallback_mode
    refused(lambda: check_fallback_mode("auto", torch.device("cuda")),
            STRICT.format("cuda", "triton is not importable (pip install 'bicyclegan[triton]')"))
    check_fallback_mode("ref", torch.device("cpu"))  # asked for: no fallback
    check_runnable(TrainConfig(model=model(impl="ref"), data=DataConfig(load_size=32)), torch.device("cpu"))
    check_runnable(train(), torch.device("cuda"))  # an eager CUDA step: its layers are impl='ref' (layer_impl)
    monkeypatch.setattr(_impl, "_fallback_mode", "warn")
    check_fallback_mode("auto", torch.device("cpu"))  # warned of at the fallback, not refused
    monkeypatch.setattr(_impl, "_fallback_mode", "strict")
    monkeypatch.setattr(_impl, "runs_triton", lambda device: True)
    check_fallback_mode("auto", torch.device("cuda"))  # the kernels run there: no fallback
