"""Reading torch files safely and writing results safely.

Every torch file the engine reads (checkpoints, the reference's weights, metric networks' weights)
is loaded weights-only: only tensors and plain values, never code. Every file the engine writes
(checkpoints, images, JSON, HTML, exports) goes to a temporary file in the same folder, is flushed
to disk and renamed over the target, so a kill or a full disk never leaves a half-written file
where a complete one was. The two logs are the exception: log.jsonl and eval_log.jsonl are
appended a line at a time, and their readers drop a last line cut by a kill. Failures become
one line naming the file (disk full, read-only folder) instead of a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from bicyclegan.pipelines.atomic import TempFiles, locked_file, special_file, write_reason
from bicyclegan.pipelines.atomic import atomic_write as _atomic_write

from .errors import OutputError


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, what: str = "file",
                 error: type[Exception] = OutputError, temps: TempFiles | None = None) -> Path:
    """bicyclegan.pipelines.atomic.atomic_write, failing with OutputError unless told otherwise."""
    return _atomic_write(path, write, what=what, error=error, temps=temps)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's contents, read a MiB at a time (hashlib.file_digest is Python 3.11's)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fit_line(line: str, optional: str = "", stream=None) -> str:
    """A status line updated in place, within the width of the terminal `stream` writes to (default: stdout's, as
    shutil measures it): one wider wrapped, and each update then stacked a row (140 columns at 7 losses; a
    download's 78 at 40). `optional` (its bar) goes first, then the end."""
    try:  # (the stream's own: stderr on a terminal with stdout redirected, `path=$(bicyclegan download ...)`)
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = shutil.get_terminal_size().columns
    width = columns - 1  # (the last column: some terminals wrap on it)
    if len(line) > width and optional:
        line = line.replace(optional, "", 1)
    return line if len(line) <= width else line[:max(width - 3, 0)] + "..."  # (ASCII: a POSIX locale's terminal)


def erase_code() -> str:
    """What ends a line updated in place: erase to its end, except on a terminal without control sequences
    (TERM=dumb: Emacs' shell, some CI logs), which showed "^[[K" on each update; there the caller pads the line
    with spaces over the last one."""
    return "" if os.environ.get("TERM") == "dumb" else "\x1b[K"


def redrawn(line: str, optional: str, stream, shown: int) -> tuple[str, int]:
    """What writes the status line `line` over the last one, `shown` columns wide, on the terminal `stream`
    writes to (fit_line: `optional` goes first), and how wide it is: erased to its end, or on a terminal without
    control sequences padded over it (the training's progress line, a download's)."""
    line, erase = fit_line(line, optional, stream), erase_code()
    return "\r" + (line + erase if erase else line.ljust(shown)), len(line)


class Stopped(BaseException):
    """A SIGTERM or SIGHUP during a command other than train and serve (which stop in their own way; the handler
    is the command line's), raised where the process is, as a Ctrl-C's KeyboardInterrupt is: every `finally` and
    `except BaseException` on the way out then removes its temporary file or folder, where the signal's default
    death left them (sample's half-written image, interpolate's video, export's .tmp.onnx) and said nothing.
    args[0]: the signal's number."""


_HOLDING = []  # (signals_held's depth, as entries; the signals that came meanwhile go to _HELD)
_HELD = []


@contextlib.contextmanager
def signals_held():
    """A Stopped that would be raised in here (held_stop) waits for the block's end: raised inside torch's C++ file
    writer (a checkpoint's torch.save), it was told as a short write, "as on a full disk", exit 2."""
    _HOLDING.append(True)
    try:
        yield
    finally:
        _HOLDING.pop()
        if not _HOLDING and _HELD:
            signum = _HELD[0]
            _HELD.clear()
            signal.raise_signal(signum)  # its handler, now: a Stopped outside the writer


def held_stop(signum: int) -> bool:
    """Whether a stop signal waits for signals_held's end (kept for it), rather than being raised now."""
    if _HOLDING:
        _HELD.append(signum)
        return True
    return False


def write_text(path, text: str, *, what: str = "file") -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8", "surrogateescape")), what=what)


def write_json(path, obj, *, what: str = "JSON file") -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n", what=what)


def save_image(img, path, *, what: str = "image", temps: TempFiles | None = None) -> Path:
    """A PIL image as PNG (format from nothing else: the temp name has no useful suffix). temps: as
    atomic_write's."""
    return atomic_write(path, lambda f: img.save(f, format="PNG"), what=what, temps=temps)


def say(stream, text: str) -> bool:
    """Write `text` to `stream` and flush it; False, the stream then pointed at /dev/null (later writes, and
    the flush at exit, raise nothing), where its reader is gone: a pipe's (`| head`: EPIPE) or a closed
    terminal's (EIO, once it hung up: an ssh connection dropped). Other errors raise."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except OSError as e:
        if not (isinstance(e, BrokenPipeError) or e.errno == errno.EIO):
            raise
        to_devnull(stream)
        return False


def to_devnull(target) -> None:
    """Point a file descriptor (`target`, or a stream's) at /dev/null, keeping its number: a stream's after a
    BrokenPipeError (the reader of `| head` gone), so that later writes, and the flush at exit, do not raise
    it again; a forked child's copy of a lock's, which then no longer holds the lock."""
    try:
        fd = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(fd, target if isinstance(target, int) else target.fileno())
        finally:
            os.close(fd)
    except (OSError, ValueError, AttributeError):  # no descriptor of its own (a StringIO): nothing to point
        pass


def absolute(path) -> str:
    """`path` made absolute with its links kept (a link re-pointed later is followed then), but for the part up to
    its last `..`, resolved: os.path.abspath takes `link/..` for the folder the link is in, not its target's
    parent (`../data` keeps a link `data`)."""
    parts = Path(path).parts
    if ".." not in parts:
        return os.path.abspath(path)
    up = len(parts) - parts[::-1].index("..")
    return os.path.abspath(os.path.join(Path(*parts[:up]).resolve(), *parts[up:]))


def check_writable(folder: str | os.PathLike, what: str, advice: str = "choose another folder") -> Path:
    """Fail now, before long work, if results cannot be written into `folder`. Creates nothing: a command
    refused after this check (a bad checkpoint, an option the model has no use for) left an empty results
    folder behind. A missing folder is judged by the deepest one on its way that exists, where the writers
    (atomic_write, which makes its parents) will make it; a file on the way is refused here. advice: what
    the refusal ends with."""
    folder = Path(folder)
    if folder.is_file():  # mkdir's "File exists" read as if the folder were there
        raise OutputError(f"cannot write {what} into {folder}: it is a file, not a folder; choose another folder")
    try:
        top = missing_top(folder.absolute())  # (a file on the way: the probe below, in it, is "Not a directory")
        if top is not None and top.is_symlink():  # a dangling link: mkdir would find it "exists"
            # ("Not a directory" alone read as if a file were in the way)
            try:
                to = f"{top} links to {os.readlink(top)}, which "
                to += "links back (a loop)" if _loops(top) else "does not exist"
            except OSError:
                to = f"{top} is a link that cannot be followed"
            raise OutputError(f"cannot write {what} into {folder}: {to}; {advice}")
        with tempfile.TemporaryFile(dir=folder if top is None else top.parent):
            pass
    except OutputError:  # (an OSError too)
        raise
    except OSError as e:
        raise OutputError(f"cannot write {what} into {folder}: {write_reason(e, folder)}; {advice}") from e
    return folder


def _loops(link: Path) -> bool:
    try:
        link.resolve(strict=True)
    except (RuntimeError, OSError) as e:  # (3.11-3.12: RuntimeError "Symlink loop"; 3.13: OSError ELOOP)
        return isinstance(e, RuntimeError) or getattr(e, "errno", None) == errno.ELOOP
    return False


@contextlib.contextmanager
def interrupt_after():
    """A SIGINT (Ctrl-C, a notebook's stop button) inside waits for the block's end, then goes to its handler:
    raised in the middle of a module's first import (the first optimizer imports torch._dynamo, a second of
    imports), it left the module half made, and every later training of that process (a notebook's kernel) failed
    on an AttributeError of torch's until a restart. Main thread only (Python's handlers run there alone); a
    SIGINT ignored or not Python's to handle is left as it is."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    got = []
    signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            signal.raise_signal(signal.SIGINT)  # (the handler of before: Python's raises KeyboardInterrupt)


@contextlib.contextmanager
def held_folder(folder: str | os.PathLike, command: str, dist=None):
    """The results folder of a command held while it works, by rank 0 (locked_file on folder/.writing): a second
    command into the same --out at once (compare's default results/compare in two jobs of a script) is refused,
    where both measured and then wrote their files over each other's, each saying it had written them (one's rows
    lost, its picture beside the other's table). A folder made here and left empty by a failure is removed again."""
    folder, made, held = Path(folder), [], contextlib.ExitStack()

    def refuse(holder):
        raise OutputError(f"{folder} is being written by another {holder or 'command'}; give this {command} a "
                          f"folder of its own (--out)", transient=True)

    def take():
        made.append(make_folder(folder))
        held.enter_context(locked_file(folder / ".writing", f"{command} (pid {os.getpid()} on "
                                                            f"{socket.gethostname()})", refuse))
    if dist is None:
        take()
    else:
        dist.main_decides(take)
    try:
        with held:  # (let go first: the lock file out of the folder)
            yield folder
    except BaseException:
        remove_made(folder, made[0] if made else None)
        raise


def missing_top(folder: str | os.PathLike) -> Path | None:
    """The topmost folder on `folder`'s way (itself included) that is not there, which mkdir -p would make
    (None: it is there), for remove_made: a writer that makes its folders later (a download, at its first
    byte) takes it before."""
    folder = Path(folder)
    return next((f for f in reversed([folder, *folder.parents]) if not f.exists()), None)


def make_folder(folder: str | os.PathLike) -> Path | None:
    """mkdir -p `folder`; returns the topmost folder it made (None: it was there), for remove_made."""
    top = missing_top(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return top


def remove_made(folder: str | os.PathLike, top: Path | None) -> None:
    """Remove `folder` and its parents up to `top` (make_folder's answer), the empty ones only: after a
    refused start, nothing the start made is left (whatever was written into them since stays)."""
    if top is None:
        return
    for f in [Path(folder), *Path(folder).parents]:
        try:
            f.rmdir()
        except OSError:  # not empty (or gone): it and the folders above stay
            return
        if f == top:
            return


def read_torch_file(path, *, what: str, error: type[Exception]):
    """The contents of a torch file, loaded weights-only (anything that could run code is refused);
    a missing, foreign, unsafe or damaged file raises `error` naming it and saying which it is."""
    path = Path(path)
    if not path.is_file():  # (a named pipe given was said not to exist)
        kind = "a folder" if path.is_dir() else special_file(path)
        raise error(f"{what} {path} " + (f"is {kind}, not a file" if kind else "does not exist"))
    with open(path, "rb") as f:
        head = f.read(16)
    # torch.save writes a zip archive, before PyTorch 1.6 a pickle (protocol 2: b"\x80\x02"); anything
    # else (a text file, an image) reached the unpickler, which said "KeyError: 101".
    if head and not head.startswith((b"PK\x03\x04", b"\x80")):
        raise error(f"{what} {path} is not a torch file, so no {what}: it begins {head!r} (torch.save's "
                    f"files are zip archives)")
    import torch  # (here: download.py, which the command's parser reads, imports this module)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # the weights-only unpickler refused an object
            raise error(f"{what} {path} holds objects other than tensors and plain values, which could run "
                        f"code when loaded: refused") from e
        raise error(f"{what} {path} cannot be read: unreadable as a torch file (foreign or damaged)") from e
    except Exception as e:  # a truncated zip, a foreign format
        raise error(f"{what} {path} cannot be read: unreadable or truncated "
                    f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]})") from e


def count_line(label: str, done: int, total: int, stream=None, step: int = 1) -> None:
    """"label done/total" on stderr: rewritten in place on a terminal (end it with end_count_line);
    elsewhere (a log file) a line of its own at each tenth of the way and at the end, so a log gets
    no run-on line of carriage returns. step: how much `done` grew since the last call (a batch's
    inputs): a line where it passed a tenth, not only where it landed on one."""
    stream = stream or sys.stderr
    tenth = max(1, total // 10)
    if stream.isatty():
        print(f"\r{label} {done}/{total}", end="", file=stream, flush=True)
    elif done == total or done // tenth > (done - step) // tenth:
        print(f"{label} {done}/{total}", file=stream, flush=True)


def end_count_line(stream=None) -> None:
    stream = stream or sys.stderr
    if stream.isatty():
        print(file=stream)
