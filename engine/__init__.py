"""bicyclegan.engine: configs, networks, objective, trainer, sampling, metrics and the CLI."""
from .config import ConfigError, ModelConfig, TrainConfig
from .model import BicycleGAN
from .networks import build_discriminator, build_encoder, build_generator, init_weights

__all__ = ["ConfigError", "ModelConfig", "TrainConfig", "BicycleGAN", "build_generator",
           "build_encoder", "build_discriminator", "init_weights"]
