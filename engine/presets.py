"""Named starting points for a config, and building a config from flat option names.

A preset gives defaults for some fields of ModelConfig, DataConfig and TrainConfig; options given
explicitly win. "demo" trains small networks on the built-in 32 px demo data in minutes on a CPU;
"reference" is the reference implementation's defaults (256 px, a 55M-parameter G); one preset per
dataset of the reference (edges2shoes, edges2handbags, night2day, maps, facades) sets what its
training script sets. TEST_SCRIPTS holds how the authors' pretrained models are run at test time.
"""
from __future__ import annotations

from pathlib import Path

from .config import DataConfig, ModelConfig, TrainConfig, split_fields
from .errors import ConfigError

PRESETS: dict[str, dict[str, dict]] = {
    "demo": {
        # Chosen by the search in docs/demo.md ("How the demo's settings were chosen"): small networks, bilinear
        # upsampling (no checkerboards at 32 px), batch 112 (the reference's KL is a sum over the
        # batch: a larger batch balances the palettes drawn by random z), lr 3e-4 (at 2e-4 the codes
        # of two palettes merged on one seed), 280 + 280 epochs of 4 iterations, EMA of G; the palette
        # coverage evaluated with each grid, for the report's Validation chart (0.5 s each: docs/demo.md).
        "model": dict(netG="unet", crop_size=32, ngf=16, nef=16, ndf=16, netE="resnet_128",
                      netD="basic_128_multi", netD2="basic_128_multi", upsample="bilinear"),
        "data": dict(load_size=32, preprocess="none", no_flip=True, num_workers=1),
        "train": dict(batch_size=112, lr=3e-4, niter=280, niter_decay=280, ema=0.999, log_every=25,
                      sample_every=400, save_every=400, n_samples=8, eval_every=400),
    },
    "reference": {"model": {}, "data": {}, "train": {}},
    # The reference's scripts/train_edges2shoes.sh (and its case in scripts/train.sh). It defines
    # NO_FLIP='--no_flip' but never passes it to train.py, so the authors' own runs flipped; the
    # preset follows what the script says it wants (--no-no_flip flips).
    "edges2shoes": {
        "model": dict(input_nc=1, crop_size=256, nz=8, use_dropout=True),
        "data": dict(load_size=256, direction="AtoB", no_flip=True),
        "train": dict(niter=30, niter_decay=30, save_epoch_freq=5),
    },
    # scripts/train.sh, case edges2handbags.
    "edges2handbags": {
        "model": dict(input_nc=1, crop_size=256, nz=8, use_dropout=True),
        "data": dict(load_size=256, direction="AtoB"),
        "train": dict(niter=15, niter_decay=15, save_epoch_freq=5),
    },
    # scripts/train.sh, case day2night (the dataset it downloads is called night2day).
    "night2day": {
        "model": dict(input_nc=3, crop_size=256, nz=8, use_dropout=True),
        "data": dict(load_size=286, direction="AtoB"),
        "train": dict(niter=50, niter_decay=50, save_epoch_freq=10),
    },
    # scripts/train.sh, case maps.
    "maps": {
        "model": dict(input_nc=3, crop_size=256, nz=8, use_dropout=True),
        "data": dict(load_size=600, direction="BtoA"),
        "train": dict(niter=200, niter_decay=200, save_epoch_freq=25),
    },
    # scripts/train_facades.sh (train.sh's case facades differs only in loading at 286).
    "facades": {
        "model": dict(input_nc=3, crop_size=256, nz=8, use_dropout=True),
        "data": dict(load_size=256, direction="BtoA"),
        "train": dict(niter=200, niter_decay=200, save_epoch_freq=25),
    },
}
DATASET_PRESETS = ("edges2shoes", "edges2handbags", "night2day", "maps", "facades")
_FOLDER_NAMES = {"day2night": "night2day"}  # scripts/train.sh's name for night2day

# The reference's scripts/test_<name>.sh: the options its pretrained model runs with (on top of the
# dataset's preset). Every one also passes --center_crop --no_flip: `sample` always prepares inputs
# with a centre crop and no flip, which the reference meant but does not do (it never reads
# --center_crop: its test outputs come from random crops, README's Differences); their sample
# options (--n_samples 10 --num_test 10, --aspect_ratio, --no_encode) are in the README's commands.
TEST_SCRIPTS: dict[str, dict] = {
    "edges2shoes": dict(direction="AtoB", load_size=256, crop_size=256, input_nc=1),
    "edges2handbags": dict(direction="AtoB", load_size=256, crop_size=256, input_nc=1),
    "night2day": dict(direction="AtoB", load_size=286, crop_size=256, input_nc=3),
    "maps": dict(direction="BtoA", load_size=512, crop_size=512, input_nc=3),
    "facades": dict(direction="BtoA", load_size=286, crop_size=256, input_nc=3),
}


def default_preset(dataroot) -> str:
    """The preset used when none is named: the demo without data, the reference's defaults with it."""
    return "reference" if dataroot else "demo"


def suggest_preset(dataroot) -> str | None:
    """The dataset preset for a data folder named like one of the reference's datasets, or None."""
    if not dataroot:
        return None
    name = Path(dataroot).name
    name = _FOLDER_NAMES.get(name, name)
    return name if name in DATASET_PRESETS else None


def describe_preset(name: str) -> str:
    """A preset's options as they would be typed, e.g. "input_nc=1, load_size=256, ..."."""
    return ", ".join(f"{k}={v}" for part in ("model", "data", "train") for k, v in PRESETS[name][part].items())


def pretrained_config(name: str) -> TrainConfig:
    """The config the authors' pretrained model `name` runs with at test time: its dataset's preset
    plus the options of scripts/test_<name>.sh (centre crop, no flip)."""
    if name not in TEST_SCRIPTS:
        raise ConfigError(f"no test settings for {name!r}; the authors' models are {', '.join(TEST_SCRIPTS)}")
    return make_config(name, no_flip=True, **TEST_SCRIPTS[name])


def make_config(preset: str | None = None, **options) -> TrainConfig:
    """A TrainConfig from a preset's defaults and flat options (the command line's names, e.g.
    make_config("demo", lr=1e-3, ngf=16, dataroot="data/x")); each option goes to the config that
    owns it. preset None: "demo" without dataroot, "reference" with it."""
    preset = preset or default_preset(options.get("dataroot"))
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is not valid; choose one of {', '.join(PRESETS)}")
    given = split_fields(options)
    parts = {part: {**PRESETS[preset][part], **given[part]} for part in ("model", "data", "train")}
    if preset == "demo" and "load_size" not in given["data"] and {"crop_size", "crop_width"} & set(given["model"]):
        # the demo loads images at the network's size; a new crop size carries the load size with it
        m = parts["model"]
        sides = (m.get("crop_size", 256), m.get("crop_width") or 0)
        if all(isinstance(s, int) for s in sides):  # else ModelConfig names the bad one (max() raised a TypeError)
            parts["data"]["load_size"] = max(sides)
    return TrainConfig(model=ModelConfig(**parts["model"]), data=DataConfig(**parts["data"]), **parts["train"])
