"""Writing a file atomically: a temporary file beside it, flushed to disk and renamed over it.

Here rather than in the engine because the pipelines write too (the file checks' cache) and never
import the engine; bicyclegan.engine.io builds its writers on this, with its own error type.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

try:
    import resource
    resource_infinity = resource.RLIM_INFINITY
except ImportError:  # (Windows)
    resource, resource_infinity = None, -1

_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def write_reason(err: BaseException, folder: Path) -> str:
    """A failed write's cause in one phrase, with the space left in `folder` (a full disk shows as such)."""
    text = getattr(err, "strerror", None) or (str(err).splitlines() or [type(err).__name__])[0]
    # A file size limit (ulimit -f, which a batch system may set) fails a write past it as "File too large",
    # or in torch's zip writer "unexpected pos": with a disk of free space the cause went unsaid.
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else resource_infinity
    limited = "" if limit == resource_infinity else f"; ulimit -f limits files to {limit // 1024} KiB"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return text + (f" ({limited[2:]})" if limited else "")
    # torch's zip writer reports a full disk as a RuntimeError without errno: say what was free.
    return f"{text} ({free / 2**20:.0f} MiB free in {folder}{limited})"


class TempFiles:
    """The temporary files of atomic_write (.<name>.<mkstemp's random letters>.tmp) in one folder, by the
    name they were for, from one listing: a caller that writes many files into a folder (sample's and
    interpolate's images/) lists it once, where a listing per write made n writes O(n^2) (10,000 files
    into one folder: 81 s, against 38 s listed once; sample --num 5000 writes 40,000 images, and a
    listing of 40,000 names takes 40 ms). Temp files made after the listing (another process's writes
    in progress) are not among them, so never removed."""

    def __init__(self, folder: str | os.PathLike):
        self.folder, self.by_name = Path(folder), {}
        try:
            with os.scandir(self.folder) as entries:
                names = [e.name for e in entries if e.name.startswith(".") and e.name.endswith(".tmp")]
        except OSError:  # not made yet: nothing left in it
            names = []
        for temp in names:
            # mkstemp's letters hold no dot: .x.png.abc.tmp is x.png's, never x's
            name, _, letters = temp[1:-4].rpartition(".")
            if name and letters:
                self.by_name.setdefault(name, []).append(temp)

    def of(self, path: str | os.PathLike) -> list[Path]:
        """The temp files of writes to `path` (a file of this folder) that were killed, once: a second
        call for the same path returns none (the first one's caller removes them)."""
        path = Path(path)
        if path.parent != self.folder:
            raise ValueError(f"{path} is not a file of {self.folder}, the folder listed")
        return sorted(self.folder / temp for temp in self.by_name.pop(path.name, []))


def temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporary files left beside `path` by writes that were killed (kill -9 skips all cleanup)."""
    return TempFiles(Path(path).parent).of(path)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, what: str = "file",
                 error: type[Exception] = OSError, temps: TempFiles | None = None) -> Path:
    """Call write(f) on a temp file beside `path`, fsync it and rename it over `path`.

    On any failure the temp file is removed and `path` is untouched; an OSError (or torch's
    RuntimeError for a failed write) becomes `error` with a one-line message naming the file.
    Temp files of earlier, killed writes to the same path are removed first: those in `temps`, a
    listing of the folder made once for many writes, else the folder is listed for this one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (temps if temps is not None else TempFiles(path.parent)).of(path):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results get the usual permissions
    except OSError as e:
        raise error(f"cannot write {what} {path}: {write_reason(e, path.parent)}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        # An `error` raised by write() has said its piece; a plain OSError or RuntimeError has not,
        # even when `error` is one of those (the check cache's OSError).
        if isinstance(e, (OSError, RuntimeError)) and (error in (OSError, RuntimeError) or not isinstance(e, error)):
            raise error(f"cannot write {what} {path}: {write_reason(e, path.parent)}"
                        f"{'; the previous one is intact' if path.exists() else ''}") from e
        raise
    return path
