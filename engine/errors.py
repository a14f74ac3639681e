"""The errors a user can cause. The CLI prints them as one line and exits 2, or 75 (sysexits.h's EX_TEMPFAIL: try
again later) for one marked transient, which the same command may get past unchanged later (a folder another process
is writing, a network failure); any other exception is a bug and keeps its traceback.

DatasetError (bad or missing data) belongs to bicyclegan.pipelines, which imports nothing from the
engine, so it is not a subclass of BicycleGANError; nor is the kernels' TuningTableError (a launch-tuning
table that cannot be used), for the same reason: USER_ERRORS names all three.
"""
from bicyclegan.kernels._names import TuningTableError
from bicyclegan.pipelines import DatasetError


class BicycleGANError(Exception):
    """Base of the engine's own user-facing errors: the message says what is wrong and what works. transient=True:
    the same call may succeed later unchanged (a script's retry loop tells it from a lasting refusal by the CLI's
    exit status, 75)."""

    def __init__(self, *args, transient: bool = False):
        super().__init__(*args)
        self.transient = transient  # (an attribute: kept where the error is pickled, a torchrun broadcast)


class ConfigError(BicycleGANError, ValueError):
    """A configuration field or command-line option has a value that cannot work."""


class CheckpointError(BicycleGANError, RuntimeError):
    """A checkpoint cannot be written, read or trusted, or does not fit the run."""


class OutputError(BicycleGANError, OSError):
    """A result (image, JSON, export) cannot be written where it was asked to go."""


class ExportError(BicycleGANError, RuntimeError):
    """The generator cannot be exported, or the written artefact does not match it."""


class DownloadError(BicycleGANError, OSError):
    """A download failed or what arrived is not what was expected (the message names the address)."""


class DivergenceError(BicycleGANError, RuntimeError):
    """Training produced non-finite losses or weights; the last good checkpoint is kept."""


class RankLostError(BicycleGANError, RuntimeError):
    """Under torchrun, another process of the launch ended during a collective this one waited in (that
    process prints its own error): where this one stopped, and what is intact."""


class WeightsError(BicycleGANError, FileNotFoundError):
    """A metric's pretrained network (LPIPS, FID) is missing or is not the expected file."""


USER_ERRORS = (BicycleGANError, DatasetError, TuningTableError)
