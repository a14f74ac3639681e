"""bicyclegan.engine: configs, networks, objective, trainer, sampling, metrics and the CLI."""
