"""Named starting points for a config, and building a config from flat option names.

A preset gives defaults for some fields of ModelConfig, DataConfig and TrainConfig; options given
explicitly win. "demo" trains small networks on the built-in 32 px demo data in minutes on a CPU;
"reference" is the reference implementation's defaults (256 px, a 55M-parameter G).
"""
from __future__ import annotations

from .config import DataConfig, ModelConfig, TrainConfig, split_fields
from .errors import ConfigError

PRESETS: dict[str, dict[str, dict]] = {
    "demo": {
        "model": dict(netG="unet", crop_size=32, ngf=32, nef=32, ndf=32, netE="resnet_128",
                      netD="basic_128_multi", netD2="basic_128_multi"),
        "data": dict(load_size=32, preprocess="none", no_flip=True, num_workers=1),
        "train": dict(batch_size=8, niter=40, niter_decay=40, log_every=25, sample_every=500,
                      save_every=500),
    },
    "reference": {"model": {}, "data": {}, "train": {}},
}


def default_preset(dataroot) -> str:
    """The preset used when none is named: the demo without data, the reference's defaults with it."""
    return "reference" if dataroot else "demo"


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
        parts["data"]["load_size"] = max(m.get("crop_size", 256), m.get("crop_width") or 0)
    return TrainConfig(model=ModelConfig(**parts["model"]), data=DataConfig(**parts["data"]), **parts["train"])
