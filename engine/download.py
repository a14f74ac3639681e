"""`download`: the reference's datasets and the authors' pretrained models, from the addresses the
reference's own scripts use (datasets/download_dataset.sh, download_testset.sh,
download_mini_dataset.sh and pretrained_models/download_model.sh).

A file streams into a hidden partial file beside its destination (.<file>.part, its origin in
.<file>.part.json), with a progress bar on a terminal. A cut connection is resumed with an HTTP
Range request, and a partial file that a failed run leaves is resumed by the next run, from the
same address and (If-Range) the same file only. What arrived is checked before anything is put in
place: its size and SHA-256 against RECORDED (where nothing is recorded yet they are printed and
kept beside the result), every member of an archive read to its end (the gzip and zip checksums),
every member's path kept inside the target folder, the folders a dataset must have, and weights
loaded weights-only with every shape checked. An archive is extracted into a hidden folder that is
renamed into place, and a model is written through io.atomic_write, so a destination is either
complete or absent.

Downloads of the same file into one folder at once (an array job's jobs) take turns: the first holds a lock
beside the partial file (flock on .<file>.part.lock), the others wait for it and find its result in place.

A mirror (mirror=, --mirror or the BICYCLEGAN_MIRROR variable) replaces the scheme and host of
every address and keeps its path: for mirrors, caches and tests.
"""
from __future__ import annotations

import errno
import gzip
import http.client
import json
import os
import shlex
import shutil
import socket
import ssl
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from bicyclegan.pipelines import IMG_EXTENSIONS
from bicyclegan.pipelines.atomic import locked_file, usual_folder_mode, writer_gone, writer_tag

from .config import check_bool
from .errors import CheckpointError, ConfigError, DownloadError, OutputError
from .io import check_writable, file_sha256, missing_top, redrawn, remove_made
from .presets import pretrained_config

# -- what can be downloaded, from where (the reference's scripts) -----------------------------------
_PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"      # download_dataset.sh
_BICYCLE = "http://efrosgans.eecs.berkeley.edu/BicycleGAN"            # download_testset.sh, download_model.sh
_MINI = "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets"  # download_mini_dataset.sh

DATASETS = {name: f"{_PIX2PIX}/{name}.tar.gz"
            for name in ("cityscapes", "edges2handbags", "edges2shoes", "facades", "maps", "night2day")}
# The reference's own smoke test trains on mini_pix2pix; the other files at that address (mini,
# mini_colorization) are unpaired sets that BicycleGAN cannot train on.
DATASETS["mini_pix2pix"] = f"{_MINI}/mini_pix2pix.zip"
TESTSETS = {name: f"{_BICYCLE}/testset/{name}.tar.gz"
            for name in ("edges2handbags", "edges2shoes", "facades", "maps", "night2day")}
# download_model.sh's addresses, double slash included.
MODELS = {name: {net: f"{_BICYCLE}//models/{name}_net_{net}.pth" for net in ("G", "E")}
          for name in ("edges2shoes", "edges2handbags", "night2day", "maps", "facades")}

# (size in bytes, SHA-256) of each file, by its address above, once fetched from the original host.
# The host was unreachable where this version was written, so nothing is recorded yet: a file
# without an entry is accepted on its structure (a complete archive holding train/, val/ or test/
# images; weights with the expected shapes) and its size and digest are printed and kept in
# <dataset>/.download.json or the checkpoint, to be recorded here.
RECORDED: dict[str, tuple[int, str]] = {}

MIRROR_ENV = "BICYCLEGAN_MIRROR"
SPLITS = ("train", "val", "test")
MARKER = ".download.json"  # in a downloaded dataset folder: what it came from
CHUNK = 1 << 20
TIMEOUT = 60       # seconds without data after which a connection counts as cut
RETRIES = 4        # attempts in a row that receive nothing before giving up
BACKOFF = 2.0      # seconds before the first retry; doubled each time


def resolve_url(address: str, mirror: str | None = None) -> str:
    """The address to fetch: `address` itself, or with the scheme and host of `mirror` (default: the
    BICYCLEGAN_MIRROR variable). A mirror's own path is put in front of the address's path."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return address
    try:
        m = urlsplit(mirror)
        m.port  # (its parse: http://[::1 was urlsplit's ValueError, a port of 99999 "connection refused")
        usable = m.scheme in ("http", "https") and m.hostname and not (m.query or m.fragment)
    except ValueError:
        usable = False
    if not usable:
        raise ConfigError(f"mirror {mirror!r} (--mirror or {MIRROR_ENV}) must be an http:// or https:// "
                          f"address such as http://mirror.example.org or http://127.0.0.1:8000/cache")
    if not (m.path.isascii() and m.path.isprintable()) or " " in m.path:
        # No request can carry them: a space was refused at every try, then exit 75 (a retry loop's "later"), and a
        # letter beyond ASCII was http.client's UnicodeEncodeError, a traceback.
        raise ConfigError(f"mirror {mirror!r} (--mirror or {MIRROR_ENV}) has a space, a control character or a "
                          f"character beyond ASCII in its path: write them percent-encoded, as %20 for a space")
    a = urlsplit(address)
    return urlunsplit((m.scheme, m.netloc, m.path.rstrip("/") + a.path, a.query, ""))


# -- transfer ----------------------------------------------------------------------------------------
class _Bar:
    """One line on a terminal: bytes so far, percentage, rate and time left; silent elsewhere."""

    def __init__(self, label: str, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.label, self.on = label, enabled and self.stream.isatty()
        self.shown, self.width = 0.0, 0  # (when and how wide the line was last written)

    def start(self, done: int, total: int | None) -> None:
        self.t0, self.done0, self.total = time.monotonic(), done, total
        self.update(done, force=True)

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.on or (now - self.shown < 0.2 and not force):
            return
        self.shown = now
        rate = (done - self.done0) / max(now - self.t0, 1e-6)
        mib = 2 ** 20
        bar = ""
        if self.total:
            frac = min(done / self.total, 1.0)
            left = (self.total - done) / rate if rate > 0 else 0
            bar = f" [{'#' * int(20 * frac):.<20}]"
            text = (f"{self.label}{bar} {done / mib:.1f}/{self.total / mib:.1f} MiB "
                    f"{100 * frac:3.0f}% {rate / mib:.1f} MiB/s {int(left) // 60}m{int(left) % 60:02d}s left")
        else:
            text = f"{self.label} {done / mib:.1f} MiB {rate / mib:.1f} MiB/s"
        # (as the training's line: one wider than the terminal stacked a row at each update)
        text, self.width = redrawn(text, bar, self.stream, self.width)
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\n")
            self.stream.flush()


class _Restart(Exception):
    """The server did not continue where the partial file ends: fetch the file from its start."""


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header such as "bytes 100-199/200" or "bytes */200"."""
    try:
        span, total = value.split(" ", 1)[1].split("/")
        return (None if span == "*" else int(span.split("-")[0])), (None if total == "*" else int(total))
    except (AttributeError, IndexError, ValueError):
        return None, None


def _origin(part: Path) -> Path:
    """Beside a partial file: where its bytes came from (address, validator, size), so that a resumed
    transfer only continues the same file."""
    return part.with_name(part.name + ".json")


def _drop(part: Path) -> None:
    part.unlink(missing_ok=True)
    _origin(part).unlink(missing_ok=True)


def _validator(headers) -> str | None:
    """What If-Range may carry: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")


def _attempt(url: str, part: Path, bar: _Bar) -> int | None:
    """One request for what `part` lacks, appended to it; returns the file's total size (None when
    the server does not say). A connection that ends early raises IncompleteRead or an OSError.
    A partial file is continued only from the address it came from, and (If-Range) only while the
    server's file is the one it began: else the server sends the whole file and it starts afresh
    (a partial file from another mirror or an older file was spliced onto the new one)."""
    have = part.stat().st_size if part.exists() else 0
    try:
        origin = json.loads(_origin(part).read_text()) if have else None
    except (OSError, ValueError):
        origin = None
    if have and (not isinstance(origin, dict) or origin.get("url") != url):
        _drop(part)
        have, origin = 0, None
    headers = {"User-Agent": "bicyclegan", **({"Range": f"bytes={have}-"} if have else {})}
    if have and origin.get("validator"):
        headers["If-Range"] = origin["validator"]
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing after byte `have`: the partial file may be complete
            _, total = _content_range(e.headers.get("Content-Range"))
            e.close()
            if total == have:
                return total
            raise _Restart from e
        raise
    with r:
        if have and r.status == 200:  # the whole file: the range ignored, or (If-Range) the file changed
            have = 0
        length = r.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if have:
            start, size = _content_range(r.headers.get("Content-Range"))
            if r.status != 206 or start != have or (origin.get("size") and size != origin["size"]):
                raise _Restart  # not the rest of the file it began
        else:
            try:  # (the disk's failure, not the network's: not retried, nor to be tried again later)
                part.parent.mkdir(parents=True, exist_ok=True)  # (check_writable made none: made at the first write)
                _origin(part).write_text(json.dumps({"url": url, "validator": _validator(r.headers), "size": total}))
            except OSError as e:
                raise OutputError(f"cannot write {_origin(part)}: {e.strerror or e}") from None
        bar.start(have, total)
        done = have
        with open(part, "ab" if have else "wb") as f:
            # read1: what has arrived, up to a chunk (read() waits for a whole one, and a stall lost
            # what had come of it: a link that stalls once a MiB never finished)
            while chunk := r.read1(CHUNK):  # a network error propagates from here
                try:
                    f.write(chunk)
                except OSError as e:  # from here: the disk
                    raise OutputError(f"cannot write {part}: {e.strerror or e}{_kept(part)}") from None
                done += len(chunk)
                bar.update(done)
    if total is not None and done < total:
        raise http.client.IncompleteRead(b"", total - done)
    return total


# OpenSSL's reasons for a TLS handshake that cannot succeed with this server (unlike a cut or damaged record):
# a plain-http server's answer read as a TLS record, or no protocol version in common
TLS_MISMATCH = frozenset({"WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION",
                          "NO_PROTOCOLS_AVAILABLE"})


def _unreachable(e: BaseException) -> bool:
    """No point in retrying: the host is unknown or refuses connections."""
    reason = getattr(e, "reason", e)
    return isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or getattr(reason, "errno", None) in (
        errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)


def _fetch(url: str, part: Path, label: str, progress: bool, by_hand: str) -> int | None:
    """Stream `url` into `part`, resuming what is already there, until the whole file is in.
    Returns the size the server announced (None if it did not). by_hand: how to do without the
    network, said when it cannot be reached."""
    bar, failures = _Bar(label, progress), 0
    try:
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                return _attempt(url, part, bar)
            except OutputError:
                raise
            except _Restart:
                _drop(part)
                failures += 1
                if failures > RETRIES:
                    raise DownloadError(f"{url}: the server does not resume transfers where they stopped; "
                                        f"try again later or use a mirror (--mirror or {MIRROR_ENV})",
                                        transient=True) from None
            except urllib.error.HTTPError as e:
                e.close()
                # the server's trouble or its "not now" (5xx, 408 Request Timeout, 429 Too Many Requests), which a
                # later try may get past; any other answer (404, 403...) is the address's, at every try
                later = e.code >= 500 or e.code in (408, 429)
                if not later or failures >= RETRIES:
                    if not later:
                        _drop(part)
                    hint = ("check the name, or the mirror's copy of this path" if e.code in (403, 404, 410)
                            else f"try again later or use a mirror (--mirror or {MIRROR_ENV})")
                    raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; {hint}{_kept(part)}",
                                        transient=later) from None
                failures += 1
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                # (the network's: the disk's failures are OutputErrors, raised above)
                if isinstance(reason := getattr(e, "reason", e), ssl.SSLCertVerificationError):
                    # The same certificate at every try: retried and exit 75, a script's retry loop never ended.
                    # (Only this SSLError: the others are a connection cut mid-handshake, SSLEOFError, or a
                    # damaged record, which a later try may get past, as a cut.)
                    raise DownloadError(f"cannot download {url}: {reason}; the server's certificate could not be "
                                        f"verified: check the system's CA certificates (SSL_CERT_FILE names a "
                                        f"bundle), use an http:// mirror (--mirror URL or {MIRROR_ENV}) or "
                                        f"{by_hand}{_kept(part)}") from None
                if getattr(reason, "reason", None) in TLS_MISMATCH:
                    # As lasting: an https:// address whose server speaks plain http (or no TLS version this
                    # Python has) answers every try the same, and exit 75 kept a retry loop going for ever.
                    raise DownloadError(f"cannot download {url}: {reason}; the server does not speak TLS at this "
                                        f"address as this Python does (a plain http server? then use http:// "
                                        f"in --mirror or {MIRROR_ENV}) or {by_hand}{_kept(part)}") from None
                grew = (part.stat().st_size if part.exists() else 0) > before
                failures = 0 if grew else failures + 1
                if _unreachable(e) or failures > RETRIES:
                    reason = getattr(e, "reason", None) or e
                    raise DownloadError(f"cannot download {url}: {reason}; check the network connection, "
                                        f"use a mirror (--mirror URL or {MIRROR_ENV}) or {by_hand}{_kept(part)}",
                                        transient=True) from None
            if failures:
                time.sleep(BACKOFF * 2 ** (failures - 1))
    finally:
        bar.close()
        if not part.exists() or part.stat().st_size == 0:
            _drop(part)


def _kept(part: Path) -> str:
    if part.exists() and part.stat().st_size:
        return f"; run the same command again to resume ({part.stat().st_size / 2**20:.1f} MiB kept in {part})"
    return ""


def _download(address: str, url: str, part: Path, progress: bool, by_hand: str) -> dict:
    """Fetch `url` (the recorded `address` or its mirror) into `part` and check its size and digest.
    Returns {"address", "url", "size", "sha256"}; a file that does not match is deleted."""
    announced = _fetch(url, part, part.name[1:].removesuffix(".part"), progress, by_hand)
    try:
        size, digest = part.stat().st_size, file_sha256(part)
    except FileNotFoundError:  # (a traceback)
        raise DownloadError(f"{part} went away as this download ended: another download of the same file into "
                            f"{part.parent} at once? Run one at a time", transient=True) from None
    want = RECORDED.get(address)
    problem = (f"{size} bytes with SHA-256 {digest}, expected {want[0]} bytes with {want[1]}"
               if want and (size, digest) != tuple(want) else
               f"{size} bytes where the server announced {announced}" if announced not in (None, size) else None)
    if problem:
        _drop(part)
        raise DownloadError(f"{url}: got {problem} (damaged in transfer, another file at that address, or another "
                            f"download writing the same partial file at once); "
                            f"run the command again to download it afresh, or check the mirror")
    if want is None:
        print(f"note: no size or digest is recorded for {address} in this version; what arrived: {size} bytes, "
              f"SHA-256 {digest}", file=sys.stderr)
    return {"address": address, "url": url, "size": size, "sha256": digest}


def _one_at_a_time(lock: Path, what: str):
    """Another download of `what` into the same folder at once waits for this one (locked_file on `lock`), saying so
    once, and then finds the result in place: they shared the partial file, each writing it and deleting it under
    the others, and all failed. Where no lock can be taken a note says so and the download goes on alone."""
    def busy(holder):
        print(f"waiting for another download of {what} into {lock.parent}{f' ({holder})' if holder else ''}",
              file=sys.stderr)

    def unguarded(error):
        print(f"note: cannot lock {lock} ({error.strerror or error}): another download of {what} into {lock.parent} "
              f"at once would spoil this one; run one at a time", file=sys.stderr)
    return locked_file(lock, f"pid {os.getpid()} on {socket.gethostname()}", busy, unguarded)


# -- datasets ----------------------------------------------------------------------------------------
def _member_path(into: Path, name: str, url: str) -> Path:
    """Where an archive member goes below `into`; a member that would land outside it is refused."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DownloadError(f"{url}: archive member {name!r} would land outside the target folder: refused "
                            f"(a damaged or malicious archive); nothing was kept")
    return into.joinpath(*p.parts)


# A dataset archive holds JPEGs, which do not compress: extracted, it is about its own size. Far more
# is a decompression bomb (a 627 KB archive of one 512 MiB file of zeros was written out whole).
BOMB_RATIO, BOMB_SLACK = 10, 64 << 20
# What each member costs besides its bytes, a folder or an empty file too: a block of the disk and an inode. Counted
# by their bytes alone, 236 KB of 50,000 empty folders was taken (197 MB of disk and 50,000 inodes, 835 times).
MEMBER_COST = 4096


class _Budget:
    def __init__(self, archive: Path, url: str):
        self.left = BOMB_RATIO * archive.stat().st_size + BOMB_SLACK
        self.url = url

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise DownloadError(f"{self.url}: the archive expands to more than {BOMB_RATIO} times its "
                                f"size (a dataset of images is about its own size): refused as a "
                                f"decompression bomb; nothing was kept")

    def folder(self, dest: Path) -> None:
        self.take(MEMBER_COST)
        dest.mkdir(parents=True, exist_ok=True)

    def write(self, src, dest: Path) -> None:
        """A member's bytes into dest, from a _Counted stream (which takes them from the budget as they are read)."""
        self.take(MEMBER_COST)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            while block := src.read(CHUNK):
                out.write(block)


class _Counted:
    """A decompressed stream whose every byte is taken from the budget as it is read: a zip's member, or a .tar.gz
    whole, tar's headers too, whose long names (a GNU or PAX header declares its size) tarfile reads whole before
    any member is seen (a 292 KB archive declaring a 300 MB name took 1.1 GB), and the gzip stream past its end."""

    def __init__(self, raw, budget: _Budget):
        self.raw, self.budget = raw, budget

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(CHUNK if n is None or n < 0 else min(n, CHUNK))
        self.budget.take(len(data))
        return data


def _extract(archive: Path, into: Path, url: str) -> None:
    """Extract every member of a .tar.gz or .zip below `into`. Reading each member to its end (and a
    .tar.gz to the end of its gzip stream) checks the archive's checksums, so a damaged or truncated
    archive fails here; links are refused, and so is an archive that expands far beyond its size."""
    budget = _Budget(archive, url)

    def refuse(name):
        raise DownloadError(f"{url}: archive member {name!r} is a link or a device file, which a dataset "
                            f"does not need: refused; nothing was kept")
    try:
        if url.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                members = [(info, _member_path(into, info.filename, url)) for info in z.infolist()]
                for info, dest in members:
                    kind = (info.external_attr >> 16) & 0o170000  # the Unix file type, where one is kept
                    if kind and kind not in (0o100000, 0o040000):  # not a plain file or a folder
                        refuse(info.filename)
                    if info.is_dir():
                        budget.folder(dest)
                    else:
                        with z.open(info) as src:
                            budget.write(_Counted(src, budget), dest)
        else:
            # As a stream (r|): read once, in order, through the budget
            with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=(stream := _Counted(gz, budget)),
                                                               mode="r|") as t:
                for m in t:
                    dest = _member_path(into, m.name, url)
                    if m.isdir():
                        budget.folder(dest)
                    elif m.isfile():
                        with t.extractfile(m) as src:
                            budget.write(src, dest)  # (its bytes counted as the stream read them)
                    else:
                        refuse(m.name)
                # tar stops at its end-of-archive blocks: the gzip stream's checksum comes after them
                while stream.read(CHUNK):
                    pass
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as e:
        raise DownloadError(f"{url}: the archive is damaged or incomplete ({type(e).__name__}: {e}); nothing was "
                            f"kept; run the command again to download it afresh, or check the mirror") from None
    except DownloadError:
        raise
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
        # A file and a folder of one name (x, then x/y.jpg), in a folder of this call's own: the archive's doing, not
        # the disk's ("cannot extract ... File exists" named a temporary folder already gone, and kept the file).
        raise DownloadError(f"{url}: the archive is damaged: it holds a file and a folder of one name "
                            f"({os.path.relpath(e.filename, into) if e.filename else e}); nothing was kept; "
                            f"check the mirror") from None
    except OSError as e:  # writing failed (disk full, permissions)
        if e.errno == errno.ENAMETOOLONG and e.filename and _name_too_long(into, os.path.relpath(e.filename, into)):
            # (the archive's doing, not the folder's: a long --dir keeps the download for another try, as before)
            raise DownloadError(f"{url}: an archive member's name is longer than this file system takes "
                                f"({e.strerror}); nothing was kept; check the mirror") from None
        raise OutputError(f"cannot extract {url} into {into}: {e.strerror or e}") from None


def _name_too_long(into: Path, member: str) -> bool:
    """Whether a part of the member's own name is longer than the file system below `into` takes."""
    try:
        limit = os.pathconf(into, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # (no pathconf: Windows)
        limit = 255
    return any(len(os.fsencode(part)) > limit for part in PurePosixPath(member).parts)


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in IMG_EXTENSIONS for p in folder.rglob("*"))


def _dataset_root(tmp: Path, url: str) -> tuple[Path, list[str]]:
    """The dataset folder inside an extracted archive (its one top folder, or the archive's root)
    and the splits it holds; an archive without train/, val/ or test/ images is refused."""
    entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in SPLITS else tmp
    splits = [s for s in SPLITS if _has_images(root / s)]
    if not splits:
        found = ", ".join(sorted(p.name for p in root.iterdir())[:8]) or "nothing"
        raise DownloadError(f"{url}: the archive holds no train/, val/ or test/ folder of images (found: {found}); "
                            f"it is not one of the reference's datasets; nothing was kept")
    return root, splits


def _marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def download_dataset(name: str, dir="datasets", *, testset: bool = False, mirror: str | None = None,
                     progress: bool = True) -> Path:
    """Download and extract the reference's dataset `name` into dir/name (as its scripts do into
    ./datasets/name); testset=True: only its test images (download_testset.sh). Returns the folder.

    A folder that is already there from the same download is returned as it is."""
    testset, progress = check_bool("testset", testset), check_bool("progress", progress)
    table = TESTSETS if testset else DATASETS
    if name not in table:
        what = "test sets" if testset else "datasets"
        raise ConfigError(f"no {'test set' if testset else 'dataset'} named {name!r}; the reference's {what} "
                          f"are {', '.join(table)}")
    address, dir = table[name], Path(dir)
    target = dir / name
    if _downloaded(target, address, testset):
        return target
    url = resolve_url(address, mirror)
    check_writable(dir, "the dataset")
    made = missing_top(dir)  # (made at the first byte; a failure leaves none of them empty)
    # A dataset and its test set share a file name (edges2shoes.tar.gz): their partial files must not.
    part = dir / f".{'testset_' if testset else ''}{PurePosixPath(urlsplit(address).path).name}.part"
    try:
        with _one_at_a_time(part.with_name(part.name + ".lock"), f"{'the test set of ' if testset else ''}{name}"):
            if _downloaded(target, address, testset):  # by the download waited for
                return target
            source = _download(address, url, part, progress, f"fetch {url} elsewhere and extract it "
                               f"so that {target} holds its train/, val/ or test/ folder")
            for stale in dir.glob(f".{name}.*.extract"):  # left by a run killed while extracting
                # ...not another's still extracting (two jobs downloading one dataset at once): its folder was deleted
                # under it, renamed into place with a third of train/ and marked downloaded
                if writer_gone(stale.name[len(name) + 2:-len(".extract")]):  # (its writer in its name: writer_tag)
                    shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{writer_tag()}-", suffix=".extract", dir=dir))
            try:
                _extract(part, tmp, url)
                root, splits = _dataset_root(tmp, url)
                usual_folder_mode(root)
                (root / MARKER).write_text(json.dumps({"name": name, "testset": testset, "splits": splits, **source},
                                                      indent=2) + "\n")
                if target.exists():
                    raise OutputError(f"{target} appeared while downloading; remove it or choose another --dir")
                root.rename(target)
            except DownloadError:
                _drop(part)  # a damaged or refused archive is not worth resuming
                raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            _drop(part)  # (under the lock: a download after this one may be writing it anew once it is let go)
    except BaseException:
        remove_made(dir, made)  # (the empty ones: a partial file kept to resume keeps its folder)
        raise
    return target


def _downloaded(target: Path, address: str, testset: bool) -> bool:
    """Whether `target` is there from the download of `address` (said so); another folder there is refused."""
    if not target.exists():
        return False
    done = _marker(target) or {}
    if done.get("address") == address or (testset and done.get("address") == DATASETS.get(target.name)):
        print(f"{target} is already there (from {done['address']})", file=sys.stderr)
        return True
    origin = f"from {done['address']}" if done else "not downloaded by bicyclegan"
    # (the reference's tar extracts the full dataset over its test set: here a folder holds one download)
    over = (" (the full dataset brings val/ again, with train/: the test set's folder is not extended)"
            if done.get("address") == TESTSETS.get(target.name) else "")
    raise OutputError(f"{target} already exists ({origin}){over}; remove it or choose another --dir")


# -- models ------------------------------------------------------------------------------------------
def _model_there(out: Path, name: str) -> bool:
    """Whether `out` holds the `name` model, downloaded or imported by hand as the failed download's advice says
    (said, and returned as it is); anything else there is refused: it was returned as "already there" (an empty
    file, a training's checkpoint saved under that name), and the command using it failed later, or trained on it."""
    if not os.path.lexists(out):
        return False
    from .checkpoint import peek_checkpoint  # (here: torch, which the command's parser does without)
    what = f"{out} already exists and is not the {name} model's checkpoint"
    try:
        source, imported = peek_checkpoint(out, "source", "imported") if out.is_file() else (None, None)
    except CheckpointError as e:
        raise OutputError(f"{what} ({str(e).removeprefix(f'{out} ').removesuffix('; move it away')}); remove it "
                          f"or choose another --dir") from None
    if imported is None:
        kind = "a folder" if out.is_dir() else "not a file" if not out.is_file() else "no import of official weights"
        raise OutputError(f"{what} ({kind}); remove it or choose another --dir")
    fetched = (sorted(str(s.get("address")) for s in source.values() if isinstance(s, dict))
               if isinstance(source, dict) else None)
    if fetched is not None and fetched != sorted(MODELS[name].values()):
        raise OutputError(f"{what} (downloaded from {', '.join(map(str, fetched))}); remove it or choose another --dir")
    print(f"{out} is already there", file=sys.stderr)
    return True


def download_model(name: str, dir="pretrained", *, mirror: str | None = None, progress: bool = True) -> Path:
    """Download the authors' pretrained G and E of `name` and import them into dir/name.pt, a
    checkpoint with that model's options and its test script's data settings (direction, input
    channels, load and crop size; centre crop, no flip). Returns the checkpoint's path; one that is
    already there is returned as it is."""
    progress = check_bool("progress", progress)
    if name not in MODELS:
        raise ConfigError(f"no pretrained model named {name!r}; the authors' models are {', '.join(MODELS)}")
    dir = Path(dir)
    out = dir / f"{name}.pt"
    if _model_there(out, name):
        return out
    check_writable(dir, "the pretrained model")
    made = missing_top(dir)  # (made at the first byte; a failure leaves none of them empty)
    sources, parts = {}, {}
    urls = {net: resolve_url(address, mirror) for net, address in MODELS[name].items()}
    files = {net: PurePosixPath(urlsplit(url).path).name for net, url in urls.items()}
    by_hand = (f"fetch {urls['G']} and {urls['E']} elsewhere and import them: bicyclegan import-official "
               f"--preset {name} --G {files['G']} --E {files['E']} --out {shlex.quote(str(out))}")
    try:
        with _one_at_a_time(dir / f".{name}.pt.lock", f"the {name} model"):
            if _model_there(out, name):  # made by the download waited for
                return out
            for net, address in MODELS[name].items():
                parts[net] = dir / f".{name}_net_{net}.pth.part"
                sources[net] = _download(address, urls[net], parts[net], progress, by_hand)
            # (here: checkpoint and official import torch, and the command's parser reads DATASETS, MODELS)
            from .checkpoint import save_checkpoint
            from .official import import_official
            cfg = pretrained_config(name)
            try:
                model = import_official(cfg.model, G=parts["G"], E=parts["E"], variant=cfg.variant, data=cfg.data)
            except CheckpointError as e:
                msg = str(e)
                for net, part in parts.items():
                    msg = msg.replace(str(part), sources[net]["url"])
                    _drop(part)
                raise DownloadError(f"not the {name} weights this version expects: {msg}") from None
            save_checkpoint(model, out, own={"source": sources, "imported": model.imported})
            for part in parts.values():  # (under the lock, as for a dataset)
                _drop(part)
    except BaseException:
        remove_made(dir, made)  # (the empty ones: a partial file kept to resume keeps its folder)
        raise
    return out
