"""Reading torch files safely and writing results safely.

Every torch file the engine reads (checkpoints, the reference's weights, metric networks' weights)
is loaded weights-only: only tensors and plain values, never code. Every file the engine writes
(checkpoints, images, JSON, HTML, exports) goes to a temporary file in the same folder, is flushed
to disk and renamed over the target, so a kill or a full disk never leaves a half-written file
where a complete one was. Failures become one line naming the file (disk full, read-only folder)
instead of a traceback.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import torch

from bicyclegan.pipelines.atomic import TempFiles, write_reason
from bicyclegan.pipelines.atomic import atomic_write as _atomic_write

from .errors import OutputError


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, what: str = "file",
                 error: type[Exception] = OutputError, temps: TempFiles | None = None) -> Path:
    """bicyclegan.pipelines.atomic.atomic_write, failing with OutputError unless told otherwise."""
    return _atomic_write(path, write, what=what, error=error, temps=temps)


def write_text(path, text: str, *, what: str = "file") -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), what=what)


def write_json(path, obj, *, what: str = "JSON file") -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n", what=what)


def save_image(img, path, *, what: str = "image", temps: TempFiles | None = None) -> Path:
    """A PIL image as PNG (format from nothing else: the temp name has no useful suffix). temps: as
    atomic_write's."""
    return atomic_write(path, lambda f: img.save(f, format="PNG"), what=what, temps=temps)


def check_writable(folder: str | os.PathLike, what: str) -> Path:
    """Fail now, before long work, if results cannot be written into `folder` (created if missing)."""
    folder = Path(folder)
    if folder.is_file():  # mkdir's "File exists" read as if the folder were there
        raise OutputError(f"cannot write {what} into {folder}: it is a file, not a folder; choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OutputError(f"cannot write {what} into {folder}: {write_reason(e, folder)}; choose another folder") from e
    return folder


def read_torch_file(path, *, what: str, error: type[Exception]):
    """The contents of a torch file, loaded weights-only (anything that could run code is refused);
    a missing, foreign, unsafe or damaged file raises `error` naming it and saying which it is."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(16)
    # torch.save writes a zip archive, before PyTorch 1.6 a pickle (protocol 2: b"\x80\x02"); anything
    # else (a text file, an image) reached the unpickler, which said "KeyError: 101".
    if head and not head.startswith((b"PK\x03\x04", b"\x80")):
        raise error(f"{what} {path} is not a torch file, so no {what}: it begins {head!r} (torch.save's "
                    f"files are zip archives)")
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
