"""`serve`: a local web page to explore a trained model: choose or upload an input, draw random
codes z, move a slider per z dimension, encode a reference image B to get its code, see several
outputs side by side and interpolate between two codes.

The page (static/explorer.html, plain HTML and JavaScript) talks to a small FastAPI app over JSON.
FastAPI + uvicorn (~3.5 MB of wheels, the `serve` extra) were chosen over gradio (~80 MB, 52
wheels, a hub client and usage analytics) for a page this size. Inference reuses the engine's
pieces: runtime.open_model, images.sample_columns (the sampling generator in eval mode) and, for
dataset inputs and uploads alike, the pipelines' preprocessing as the model's DataConfig says.

Uploads are checked before anything is decoded: the body's size (Content-Length, then while
reading), the type from the file's own header (PNG, JPEG, BMP, PPM: what the loaders read) and the
pixel count from that header; then the pipelines check and prepare the file as for `sample`.
The server binds to 127.0.0.1 unless told otherwise.
"""
# No `from __future__ import annotations` here: FastAPI reads the routes' parameter types, and the
# Request class they name is imported inside make_app (FastAPI is an optional extra).
import asyncio
import base64
import collections
import dataclasses
import errno
import io
import ipaddress
import itertools
import json
import logging
import math
import secrets
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import torch
from PIL import Image

from bicyclegan.pipelines import DatasetError
from bicyclegan.pipelines.errors import plural

from .config import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, check_int
from .errors import ConfigError
from .images import nonfinite_said, sample_columns, to_uint8
from .model import INTERP_MODES, interp_z, spread_z
from .runtime import (
    build_loader,
    check_input_size,
    check_tuning_table,
    halves_found,
    inference_data,
    input_label,
    open_model,
    with_data_settings,
)

PAGE = Path(__file__).parent / "static" / "explorer.html"
INSTALL_HINT = "pip install 'bicyclegan[serve]'"
# Every input offered is held in memory, A and B as float tensors (1.6 MB at 256 px): --num 100000 took 3 GB at
# 32 px and would have taken 157 GB at 256 px, with no word before it ran out; the page's list is for choosing.
MAX_NUM = 1000
UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "PPM": ".ppm"}
MAX_UPLOADS = 32      # uploaded images kept (the oldest go first)
# What one client may hold: a body has BODY_SECONDS to arrive, and a second more for each BODY_RATE bytes that came
# (40 uploads sent but for their last byte held 10 MB each, for good), DECODES uploads are decoded at a time (40 at
# once were 40 decodes of up to 130 MB each), and beyond CONNECTIONS at a time the server answers 503 (held
# connections had used every file descriptor).
BODY_SECONDS = 60
BODY_RATE = 16_000
DECODES = 2
CONNECTIONS = 64
MAX_OUTPUTS = 16      # codes per request: outputs side by side, or interpolation steps
FLOAT32_MAX = torch.finfo(torch.float32).max  # a code's numbers beyond it are refused
# Pixels of one forward through G: a request's outputs are made in batches of at most this many input pixels
# (16 codes of a 256 px input: one batch). Under preprocess none an upload keeps its size, and 16 codes of a
# 2048 x 2048 photo in one batch held 11.6 GB for two minutes (one at a time: a sixteenth).
FORWARD_PIXELS = 16 * 256 * 256


class RequestError(Exception):
    """A request the page (or a client) got wrong: answered with this HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Item:
    """An image the page can use: A feeds G, B (ground truth or an uploaded reference) feeds E."""
    id: str
    name: str
    A: torch.Tensor | None
    B: torch.Tensor | None


def png_uri(img: torch.Tensor) -> str:
    """One C x H x W image in [-1, 1] as a data: URI."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img[None])[0]).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Explorer:
    """What the page works with: the model, its inputs (the dataset's and uploads) and the requests,
    one inference at a time. Methods take and return plain values and raise RequestError."""

    def __init__(self, model, dataroot=None, *, phase: str | None = None, num: int = 32, device: str = "auto",
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, max_upload_pixels: int = MAX_UPLOAD_PIXELS,
                 layout: str | None = None, skip_bad: bool | None = None, direction: str | None = None,
                 load_size: int | None = None, crop_size: int | None = None, preprocess: str | None = None):
        """direction, load_size, crop_size, preprocess: override how the model prepares inputs and
        uploads (default: its stored data settings), as in sample."""
        check_int("max_upload_bytes", max_upload_bytes, 1)
        check_int("max_upload_pixels", max_upload_pixels, 1)
        check_int("num", num, 0)
        if num > MAX_NUM:
            raise ConfigError(f"num={num} (serve's --num): at most {MAX_NUM} dataset inputs are offered, each held in "
                              f"memory (1.6 MB at 256 px); upload others from the page")
        self.model = open_model(model, device).eval()
        check_tuning_table(self.model.cfg.model.impl, self.model.device)
        # cfg.data: the data settings inputs and uploads are prepared with; net_in: their crop
        self.cfg, self.net_in = with_data_settings(self.model.cfg, direction=direction, load_size=load_size,
                                                   crop_size=crop_size, preprocess=preprocess)
        self.nz = self.cfg.model.nz
        self.max_upload_bytes, self.max_upload_pixels = max_upload_bytes, max_upload_pixels
        self.lock = threading.Lock()  # the model's: one generation or encoding at a time
        # The inputs', apart: /api/info and uploads waited for every queued generation (the page could not load
        # while another client kept the model busy)
        self.items_lock = threading.Lock()
        self.stopping = False  # serve is stopping: a generation ends after its current batch
        self.items: dict[str, Item] = {}
        self.uploads: collections.OrderedDict[str, int] = collections.OrderedDict()  # id -> its values
        self._upload_ids = itertools.count(1)
        self.root = self._load_dataset(dataroot, phase, num, layout, skip_bad) if num else None

    # -- inputs ----------------------------------------------------------------------------------
    def _load_dataset(self, dataroot, phase: str, num: int, layout, skip_bad):
        """The first `num` inputs of root/phase, prepared as `sample` prepares them. Without
        --dataroot, a model whose training data has moved away starts with uploads only."""
        try:
            root, phase, layout, data = inference_data(self.cfg, dataroot, phase, layout, skip_bad, num)
        except DatasetError:
            if dataroot is not None:
                raise
            print(f"serve: the model's data folder {self.cfg.data.dataroot} is not here: upload inputs, "
                  "or pass --dataroot", file=sys.stderr)
            return None
        with build_loader(self.net_in, data, root, phase, device=self.model.device, batch_size=1,
                          shuffle=False, augment=False, layout=layout) as loader:
            for i, batch in enumerate(itertools.islice(loader, num)):
                check_input_size(batch["A"], batch["paths"][0], self.net_in, data.preprocess,
                                 halves_found(layout, loader))
                self.items[f"d{i}"] = Item(f"d{i}", input_label(batch["paths"][0], root, phase), batch["A"][0],
                                           batch["B"][0] if "B" in batch else None)
        return root

    def info(self) -> dict:
        return {"variant": self.cfg.variant, "nz": self.nz, "size": list(self.net_in.size),
                "encoder": self.model.E is not None, "dataroot": str(self.root) if self.root else None,
                "max_outputs": MAX_OUTPUTS, "max_upload_bytes": self.max_upload_bytes,
                "max_upload_pixels": self.max_upload_pixels, "interp_modes": list(INTERP_MODES),
                # a copy taken under the lock: an upload meanwhile (another request's thread) changed
                # the dict during the iteration (RuntimeError, an HTTP 500)
                "items": [self._describe(it) for it in self._snapshot()]}

    def _snapshot(self) -> list[Item]:
        with self.items_lock:
            return list(self.items.values())

    @staticmethod
    def _describe(it: Item) -> dict:
        return {"id": it.id, "name": it.name, "has_A": it.A is not None, "has_B": it.B is not None}

    def item(self, item_id, field: str = "image") -> Item:
        if not isinstance(item_id, str):  # left out of the body, or not an id: was 404 "no image None"
            raise RequestError(400, f"{field} must be an image's id, as /api/info lists them (got {item_id!r})")
        with self.items_lock:  # (an upload meanwhile may drop it between a look and a read)
            it = self.items.get(item_id)
        if it is None:
            shown = repr(item_id) if len(item_id) <= 80 else f"{item_id[:40]!r}... ({len(item_id)} characters)"
            raise RequestError(404, f"no image {shown} (uploads beyond the last {MAX_UPLOADS} are dropped)")
        return it

    def image_png(self, item_id: str, which: str) -> bytes:
        """The prepared A or B of an item (what the networks see) as PNG bytes."""
        if which not in ("A", "B"):
            raise RequestError(404, f"no image part {which!r}; use A or B")
        t = getattr(self.item(item_id), which)
        if t is None:
            raise RequestError(404, f"{item_id} has no {which}")
        buf = io.BytesIO()
        Image.fromarray(to_uint8(t[None])[0]).save(buf, format="PNG")
        return buf.getvalue()

    def check_upload(self, data: bytes) -> str:
        """The file's format, from its own header, if it may be decoded: type and pixel count
        checked before any pixel is decoded."""
        if len(data) > self.max_upload_bytes:
            raise RequestError(413, f"upload of {len(data)} bytes exceeds the limit of {self.max_upload_bytes}")
        if not data:
            raise RequestError(400, "empty upload")
        try:
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                fmt, (w, h) = img.format, img.size
        except Image.DecompressionBombError as e:  # (its own message names PIL's limit, not this one)
            raise RequestError(413, f"image too large: its header declares more pixels than PIL decodes; the "
                                    f"limit is {self.max_upload_pixels} pixels (--max_upload_pixels)") from e
        except Exception as e:  # PIL raises several types for what it cannot identify
            raise RequestError(415, f"not an image PIL can identify ({type(e).__name__}); upload "
                                    f"{', '.join(UPLOAD_FORMATS)}") from e
        if fmt == "MPO":  # a camera's JPEG with more pictures after it (depth, preview): the first is the photo
            fmt = "JPEG"
        if fmt not in UPLOAD_FORMATS:
            raise RequestError(415, f"{fmt} images are not accepted; upload {', '.join(UPLOAD_FORMATS)}")
        if w * h > self.max_upload_pixels:
            raise RequestError(413, f"image of {w}x{h} = {w * h} pixels exceeds the limit of "
                                    f"{self.max_upload_pixels} pixels (--max_upload_pixels)")
        return fmt

    def _prepare(self, data: bytes, fmt: str, role: str) -> torch.Tensor:
        """One uploaded image prepared by the pipelines as the model's DataConfig says (centre
        crop, no flip), with the channels of A or of B."""
        m = self.net_in
        model_cfg = m if role == "A" else dataclasses.replace(m, input_nc=m.output_nc)
        data_cfg = dataclasses.replace(self.cfg.data, backend="torch", num_workers=0, skip_bad=False,
                                       max_dataset_size=None)
        with tempfile.TemporaryDirectory(prefix="bicyclegan-upload-") as tmp:
            folder = Path(tmp) / "A"  # a folder of A images only: the pipelines' single layout
            folder.mkdir()
            (folder / f"upload{UPLOAD_FORMATS[fmt]}").write_bytes(data)
            try:
                with build_loader(model_cfg, data_cfg, tmp, "test", device=self.model.device,
                                  batch_size=1, shuffle=False, augment=False) as loader:
                    x = next(iter(loader))["A"][0]
            except DatasetError as e:
                # The pipelines' message names the temporary folder and the training option that
                # skips bad files; the page's user needs the one line about their file.
                lines = [ln.strip() for ln in str(e).replace(str(folder / f"upload{UPLOAD_FORMATS[fmt]}"), "the upload")
                         .splitlines()]
                raise RequestError(400, next((ln for ln in lines if ln.startswith("the upload")), lines[0])) from e
        depth = 2 ** m.unet_depth
        if x.shape[-2] % depth or x.shape[-1] % depth:
            raise RequestError(400, f"the upload becomes {x.shape[-1]}x{x.shape[-2]} (W x H) under "
                                    f"preprocess={data_cfg.preprocess}; this generator needs sides that "
                                    f"are multiples of {depth}: resize the image first, or start serve with "
                                    f"--preprocess resize_and_crop")
        return x

    def add_upload(self, data: bytes, role: str = "A", name: str = "upload") -> dict:
        """Check, prepare and keep an uploaded image as an input (role A) or a reference to encode (B)."""
        if role not in ("A", "B"):
            raise RequestError(400, f"role={role!r}: use A (an input) or B (a reference to encode)")
        if role == "B" and self.model.E is None:
            raise RequestError(400, f"this model (variant {self.cfg.variant}) has no trained encoder: nothing to "
                                    f"encode a reference with")
        fmt = self.check_upload(data)
        x = self._prepare(data, fmt, role)
        item_id = f"u{next(self._upload_ids)}"
        name = (name or "upload")[:80]
        item = Item(item_id, name, x if role == "A" else None, x if role == "B" else None)
        with self.items_lock:
            self.items[item_id] = item
            self.uploads[item_id] = x.numel()
            # The last MAX_UPLOADS, and as many of them as four uploads of the largest size take (under preprocess
            # none an upload keeps its size: 32 photos of 16 Mpx held 6 GB), the newest kept whatever its size.
            while len(self.uploads) > 1 and (len(self.uploads) > MAX_UPLOADS
                                             or sum(self.uploads.values()) > 4 * 3 * self.max_upload_pixels):
                self.items.pop(self.uploads.popitem(last=False)[0], None)
        return self._describe(item)  # (looked up again, it may have gone: 32 other uploads meanwhile)

    # -- codes and outputs -----------------------------------------------------------------------
    def _code(self, value, field: str) -> torch.Tensor:
        if (not isinstance(value, list) or len(value) != self.nz
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise RequestError(400, f"{field} must be a list of {self.nz} numbers (nz = {self.nz})")
        for v in value:
            # NaN and Infinity (Python's JSON reads them), and what float32 cannot hold: 1e308, an integer beyond
            # float range (which JSON allows), once all said "not a finite number"
            if isinstance(v, float) and not math.isfinite(v):
                raise RequestError(400, f"{field} holds {v!r}, not a finite number")
            if abs(v) > FLOAT32_MAX:
                shown = f"{v:.3g}" if isinstance(v, float) else f"an integer of {len(str(abs(v)))} digits"
                raise RequestError(400, f"{field} holds {shown}, beyond float32's range (about +-3.4e38)")
        return torch.tensor(value, dtype=torch.float32)

    def _codes(self, value, field: str = "z") -> torch.Tensor:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_OUTPUTS:
            raise RequestError(400, f"{field} must be a list of 1 to {MAX_OUTPUTS} codes")
        return torch.stack([self._code(v, f"{field}[{i}]") for i, v in enumerate(value)])

    def random_codes(self, n, seed=None) -> dict:
        """n codes from N(0, I), spread over the prior together (spread_z), reproducible from the seed."""
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_OUTPUTS:
            raise RequestError(400, f"n must be an integer from 1 to {MAX_OUTPUTS}")
        if seed is None:
            seed = secrets.randbits(31)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise RequestError(400, "seed must be an integer from 0 to 2^63 - 1")
        z = spread_z(n, self.nz, seed)
        return {"seed": seed, "z": z.tolist()}

    def _outputs(self, A: torch.Tensor, z: torch.Tensor | None) -> list[str]:
        """G(A, z_i) for each code, through the engine's sample_columns, in batches of FORWARD_PIXELS."""
        n = 1 if z is None else z.shape[0]
        rows = max(1, FORWARD_PIXELS // (A.shape[-2] * A.shape[-1]))
        outputs = []
        with self.lock:
            for i in range(0, n, rows):
                if self.stopping:
                    raise RequestError(503, "the server is stopping")
                k = min(rows, n - i)
                zs = None if z is None else z[i:i + k, None, :].to(self.model.device)  # one column, a code per row
                cols, names = sample_columns(self.model, A[None].expand(k, -1, -1, -1), None, zs, encode=False)
                if nonfinite_said(cols, names):  # (shown black, as sample wrote them)
                    raise RequestError(500, "the model's outputs are not finite (it overflowed): nothing to show")
                outputs += [png_uri(x) for x in cols[-1]]
        return outputs

    def _input(self, item_id) -> torch.Tensor:
        it = self.item(item_id, "input")
        if it.A is None:
            raise RequestError(400, f"{item_id} ({it.name}) was uploaded as a reference B, not as an input")
        return it.A

    def generate(self, input_id, z) -> dict:
        """One output per code for the input (pix2pix, nz = 0: its one output; z is ignored)."""
        A = self._input(input_id)
        return {"images": self._outputs(A, self._codes(z) if self.nz else None)}

    def encode(self, item_id) -> dict:
        """The code of an image B: mu of E(B)."""
        if self.model.E is None:
            raise RequestError(400, f"this model (variant {self.cfg.variant}) has no trained encoder")
        if item_id == "":  # the page's list of references is empty: a dataset without B, nothing uploaded
            raise RequestError(400, "no reference B chosen: upload one (or serve a dataset with B images)")
        it = self.item(item_id)
        if it.B is None:
            raise RequestError(400, f"{item_id} ({it.name}) has no B image to encode")
        with self.lock:
            mu = self.model.encode(it.B[None])[0]
        if not torch.isfinite(mu).all():  # (a bare 500: JSON has no inf)
            raise RequestError(500, "the encoder's code is not finite (the model overflowed)")
        return {"z": mu.float().cpu().tolist()}

    def interpolate(self, input_id, z0, z1, steps, mode=INTERP_MODES[0]) -> dict:
        """Outputs along the path from z0 to z1 (both ends included), and the codes on it."""
        if not self.nz:
            raise RequestError(400, "this model has no code z to interpolate (nz = 0)")
        if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= MAX_OUTPUTS:
            raise RequestError(400, f"steps must be an integer from 2 to {MAX_OUTPUTS}")
        if mode not in INTERP_MODES:
            raise RequestError(400, f"mode must be one of {', '.join(INTERP_MODES)}")
        A = self._input(input_id)
        zs = interp_z(self._code(z0, "z0"), self._code(z1, "z1"), steps, mode)
        return {"z": zs.tolist(), "images": self._outputs(A, zs)}


# -- the web app -------------------------------------------------------------------------------------
def _need_web():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"serve needs FastAPI and uvicorn ({e.name} is missing): {INSTALL_HINT}") from e


LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_JSON_BYTES = 1 << 20  # 16 codes of a few thousand numbers each fit many times over


def _split(url: str):
    """urlsplit's parts, or None for what is no URL (a Host or Origin of "[::1", a bracket unclosed, was an HTTP
    500 and a traceback per request)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _host_name(netloc: str) -> str:
    """The host of a Host header or an origin's netloc, without the port or a fully qualified name's last dot
    ("[::1]:7860" -> "::1", "box.example.:7860" -> "box.example")."""
    return ((parts.hostname or "") if (parts := _split(f"//{netloc}")) else "").rstrip(".")


async def read_capped(request, limit: int, what: str) -> bytes:
    """The body, refused (413) past `limit` bytes: by its declared length before reading, and as it
    comes (a body sent without a length)."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise RequestError(413, f"{what} of {declared} bytes exceeds the limit of {limit}")
    data = bytearray()
    start = asyncio.get_running_loop().time()
    chunks = request.stream().__aiter__()
    try:
        while True:
            # BODY_SECONDS, and a second more for each BODY_RATE bytes come: a steady upload at a slow link's
            # rate goes on (one deadline for the whole body cut a 10 MB upload at 91 KB/s short)
            left = start + BODY_SECONDS + len(data) / BODY_RATE - asyncio.get_running_loop().time()
            try:
                data += await asyncio.wait_for(chunks.__anext__(), max(left, 0))
            except StopAsyncIteration:
                break
            if len(data) > limit:
                raise RequestError(413, f"{what} exceeds the limit of {limit} bytes")
    except ClientDisconnect:  # a tab closed mid-upload: nobody to answer (it printed a traceback)
        raise RequestError(400, f"the client went away before its {what} was sent") from None
    except asyncio.TimeoutError:
        raise RequestError(408, f"{what} did not arrive within {BODY_SECONDS} s and a second for each "
                                f"{BODY_RATE // 1000} KB") from None
    return bytes(data)


def make_app(explorer: Explorer, local_only: bool = False, host: str | None = None, network: bool = False,
             allow_hosts=()):
    """The FastAPI app: the page at /, the JSON API under /api/. A request whose Origin is another
    site is refused (any page the user visits could otherwise post to the API: uploads, compute);
    local_only: requests must also name this machine in their Host header (a site whose name points
    to 127.0.0.1 would otherwise be same-origin with the page: DNS rebinding): one of LOCAL_NAMES, this machine's
    host name, or `host`, the address served (127.0.0.2 was refused at the address serve printed). network (served on
    another address, --host 0.0.0.0): a Host header must be an address or one of this machine's names (its
    host name, fully qualified or not), which a rebinding site's name is not (the check was off there, and a page
    in a browser of this network could use the server through a name of its own). allow_hosts: other names a Host
    may be (a DNS alias, a proxy's name: --allow_host)."""
    _need_web()
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="BicycleGAN explorer", docs_url=None, redoc_url=None, openapi_url=None)
    names = {*LOCAL_NAMES, *([_host_name(f"[{host}]" if ":" in host else host)] if host else []),
             *(_host_name(n) for n in allow_hosts)}
    # This machine's own name, on loopback too (http://<host name>:port/ where /etc/hosts makes it 127.0.0.1's was
    # refused as "not this machine's name"). Served to the network also as mDNS (<host name>.local) and DNS (its
    # fully qualified name) give it: on loopback not those, which the network answers (a hostile LAN's mDNS, a
    # search domain's DNS) and a rebinding site could then point at 127.0.0.1
    own = socket.gethostname().lower()
    names.add(own)
    if network:
        names |= {f"{own}.local", socket.getfqdn().lower().rstrip(".")}
    page = PAGE.read_text(encoding="utf-8")

    def refused_host(netloc: str) -> str | None:
        """Why a Host header is refused, or None."""
        name = _host_name(netloc)
        if local_only and name not in names:
            return (f"Host {netloc!r} is not a name of this machine (localhost, {socket.gethostname()}, its "
                    f"addresses): refused, as a site's own name for this server would be; serve --allow_host {name} "
                    f"takes it")
        if network and name not in names and not _is_address(name):
            return (f"Host {netloc!r} is neither an address nor this machine's name ({socket.gethostname()}): "
                    f"refused, as a site's own name for this server would be; serve --allow_host {name} takes it")
        return None

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.middleware("http")
    async def same_site(request: Request, call_next):
        host = request.headers.get("host", "")
        if why := refused_host(host):
            return JSONResponse({"error": why}, status_code=421)
        origin = request.headers.get("origin")
        if origin is not None and request.method != "GET" and getattr(_split(origin), "netloc", None) != host:
            return JSONResponse({"error": f"a request from {origin} (another site) is refused"}, status_code=403)
        response = await call_next(request)
        # Not shown inside another site's page (whose clicks it would take), nor read as another type than its own
        response.headers.update({"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                                 "X-Content-Type-Options": "nosniff"})
        return response

    # A request waits for the model here, not in a thread of the pool the page's own requests (/, its images) are
    # answered from: 41 generations queued on the model had every thread, and the page could not load.
    model_turn, decoding = asyncio.Semaphore(1), asyncio.Semaphore(DECODES)

    async def with_model(fn, *args):
        async with model_turn:
            return await run_in_threadpool(fn, *args)

    async def body(request: Request) -> dict:
        raw = await read_capped(request, MAX_JSON_BYTES, "a request body")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:  # nesting deeper than the parser's stack is not JSON here
            raise RequestError(400, "the request body must be JSON") from e
        if not isinstance(data, dict):
            raise RequestError(400, "the request body must be a JSON object")
        return data

    # (HEAD too: curl -I and uptime checks were answered 405)
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def index():
        return page

    @app.api_route("/api/info", methods=["GET", "HEAD"])
    async def info():  # (a list: no thread needed, and none may be free)
        return explorer.info()

    @app.api_route("/api/image/{item_id}/{which}", methods=["GET", "HEAD"])
    def image(item_id: str, which: str):
        return Response(explorer.image_png(item_id, which), media_type="image/png")

    @app.post("/api/upload")
    async def upload(request: Request, role: str = "A", name: str = "upload"):
        data = await read_capped(request, explorer.max_upload_bytes, "upload")
        async with decoding:
            return await run_in_threadpool(explorer.add_upload, data, role, name)

    @app.post("/api/random")
    async def random(request: Request):
        d = await body(request)
        return explorer.random_codes(d.get("n", 1), d.get("seed"))

    @app.post("/api/generate")
    async def generate(request: Request):
        d = await body(request)
        return await with_model(explorer.generate, d.get("input"), d.get("z"))

    @app.post("/api/encode")
    async def encode(request: Request):
        d = await body(request)
        return await with_model(explorer.encode, d.get("image"))

    @app.post("/api/interpolate")
    async def interpolate(request: Request):
        d = await body(request)
        return await with_model(explorer.interpolate, d.get("input"), d.get("z0"), d.get("z1"),
                                d.get("steps", 7), d.get("mode", INTERP_MODES[0]))

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or a one-line ConfigError."""
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ConfigError(f"--port {port!r} must be from 0 to 65535 (0: any free port)")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name such as localhost
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as e:
        sock.close()
        # (a port another process holds may be free later, a server's earlier run ending: transient)
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port "
                          f"(0 picks a free one) or --host", transient=e.errno == errno.EADDRINUSE) from e
    return sock


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(model, dataroot=None, *, host: str = "127.0.0.1", port: int = 7860, phase: str | None = None,
          num: int = 32, device: str = "auto", max_upload_bytes: int = MAX_UPLOAD_BYTES,
          max_upload_pixels: int = MAX_UPLOAD_PIXELS, layout: str | None = None,
          skip_bad: bool | None = None, allow_hosts=(), **data_settings) -> None:
    """Serve the explorer page for `model` (a BicycleGAN or a checkpoint path) until interrupted,
    with the first `num` inputs of dataroot/phase (default: the data the model was trained on)
    and uploads. Binds to host:port (port 0: a free one); only this machine can reach the default. allow_hosts:
    names a request may call the server by besides this machine's own and its addresses (make_app).
    data_settings: direction, load_size, crop_size, preprocess, as Explorer takes them."""
    _need_web()
    import uvicorn
    sock = bind(host, port)  # first: a port in use was said after the model and its inputs had loaded
    try:
        explorer = Explorer(model, dataroot, phase=phase, num=num, device=device, max_upload_bytes=max_upload_bytes,
                            max_upload_pixels=max_upload_pixels, layout=layout, skip_bad=skip_bad, **data_settings)
    except BaseException:
        sock.close()
        raise
    app = make_app(explorer, local_only=is_loopback(host), host=host, network=not is_loopback(host),
                   allow_hosts=tuple(allow_hosts))
    shown = f"[{host}]" if ":" in host else host
    print(f"explorer for {explorer.cfg.variant} (nz = {explorer.nz}, {plural(len(explorer.items), 'input')}) at "
          f"http://{shown}:{sock.getsockname()[1]}/  (Ctrl+C stops it)", file=sys.stderr)
    if not is_loopback(host):
        print(f"serve: listening on {host}: anyone who can reach this machine can use the model and upload "
              "images", file=sys.stderr)
    # uvicorn stops gracefully on SIGTERM (timeout, systemd, docker stop send it), then raises it again to the
    # handler it found: the default one ended the process there, without its exit-time clean-up (a
    # /tmp/pymp-* folder of the dataset's loader left each time). Here that handler exits as SystemExit does,
    # with the shell's code for a death by SIGTERM (a SIGINT is a KeyboardInterrupt, as always).
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    server = _server_class(explorer)(uvicorn.Config(app, log_level="warning", limit_concurrency=CONNECTIONS))
    try:
        if _loop_running():
            _run_beside(server, sock)
        else:
            server.run(sockets=[sock])
    finally:
        sock.close()  # (a failed start kept the port taken until the process ended: the next serve "in use")
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _loop_running() -> bool:
    import asyncio
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_beside(server, sock) -> None:
    """The server in a thread of its own, with its own event loop, this one waiting: in a notebook, whose kernel
    runs an event loop in this thread, uvicorn's run failed ("Cannot run the event loop while another loop is
    running"). An interrupt (the notebook's stop button: a KeyboardInterrupt here) stops it as a Ctrl+C does, the
    requests in progress ended first, and is raised on once it has stopped."""
    failed, ended = [], threading.Event()

    def run():
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # (raised here, as where it runs in this thread)
            failed.append(e)
        finally:
            ended.set()
    thread = threading.Thread(target=run, name="bicyclegan serve", daemon=True)
    # Python's own SIGINT handler while it waits: asyncio.run's (a script's loop) only cancelled its task, which
    # this wait never gives back to (the first Ctrl+C did nothing). Put in before the server starts: a Ctrl+C
    # as soon as it answered, before this thread took the handler, was lost the same way.
    previous = None
    if threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGINT)):
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (an ignored SIGINT stays ignored)
    try:
        thread.start()
        # (an Event, not Thread.join: a KeyboardInterrupt inside join's lock left is_alive() False, the server on)
        while not ended.wait(0.2):
            pass
    except BaseException:  # a Ctrl+C; serve's SIGTERM (SystemExit) too, which left the server running
        if thread.ident is not None:  # (started; one stopped before it ran returns at once: should_exit is set)
            server.handle_exit(signal.SIGINT, None)
            ended.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if failed:
        raise failed[0]


def _server_class(explorer: Explorer):
    import uvicorn
    # A script's background job (`bicyclegan serve ... &`) starts with SIGINT ignored, so that the script's Ctrl-C
    # leaves it alone, as the other commands do; uvicorn takes SIGINT whatever it was, and stopped the server
    # (exit 0). Read here, in the main thread, before uvicorn puts its handler in.
    int_ignored = (threading.current_thread() is threading.main_thread()
                   and signal.getsignal(signal.SIGINT) is signal.SIG_IGN)

    class Server(uvicorn.Server):
        """uvicorn's, which waits for the requests in progress before it stops: a generation on a large upload
        (minutes) went on silently to its end, the server looking hung (uvicorn's line for it is info-level), and
        a second Ctrl+C printed uvicorn's tracebacks of the cancelled requests, the process still waiting for
        the generation's thread. A signal now says it stops and ends a generation after its current batch."""

        def handle_exit(self, sig, frame):
            if sig == signal.SIGINT and int_ignored and frame is not None:  # (a signal's; _run_beside calls it too)
                return
            if not self.should_exit:
                explorer.stopping = True
                print("serve: stopping (a generation in progress ends after its current batch)", file=sys.stderr,
                      flush=True)
            else:  # forced: the cancelled requests' tracebacks are uvicorn's news, not the user's
                logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
            super().handle_exit(sig, frame)
    return Server


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
