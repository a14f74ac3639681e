"""What the engine's config and errors name of the kernels, without importing torch (the `bicyclegan` command's
--help and refusals import neither): the `impl` switch's values and the tuning tables' errors."""

IMPLS = ("auto", "triton", "ref")


class TuningTableError(ValueError):
    """A launch-tuning table (kernels/_configs.py) that cannot be used: missing, unreadable, not a table of
    this format; the message names the file. Here, not beside the tables' code, which imports Triton: a
    command names it among the errors it says in one line without importing Triton (or torch)."""


class MissingTuningTable(TuningTableError, FileNotFoundError):
    """No file at the table's path (a FileNotFoundError too)."""
