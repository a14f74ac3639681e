"""Launch configurations: a tuned table where there is one for this device, else the heuristics.

Each launcher has a few knobs (tile sizes, warps, how many programs share a plane) and a heuristic
that picks them from the shape. `python -m bicyclegan.kernels.tune` times candidates on a GPU and
writes the winners to a JSON table; `choose` returns a table's entry for the exact launch (site,
shape, dtype, layout and, for the norm and the fused concatenation, the kernel variant: see
VARIANTS) and falls back to the heuristic for everything else. Tables come from
kernels/tuning/<device name>.json (committed, picked by the CUDA device's name) and from the file
named by BICYCLEGAN_KERNEL_TUNING (its entries win). A table made on another device or with
another torch or Triton minor version is ignored, with one warning; one of an older format is
refused (re-run the tuner).

Every knob value gives correct results (the kernels mask their tiles); a table only changes speed.
"""
import json
import os
import re
from pathlib import Path

import torch
import triton

from ._impl import _warn_once
from ._names import MissingTuningTable, TuningTableError
from .acts import ACTS

ENV = "BICYCLEGAN_KERNEL_TUNING"
TABLE_DIR = Path(__file__).with_name("tuning")
# 2: norm_act.* keys name the variant (format 1 tables timed LeakyReLU from y and served every variant);
# 3: so do zcat.* keys, the activation (format 2 tables timed LeakyReLU and served every activation).
FORMAT = 3
# What an older format's keys leave out, for the error that refuses its tables.
_UNNAMED = {1: "norm_act and zcat entries do not name the activation (nor the norm's saved tensor)",
            2: "zcat entries do not name the activation"}
INTERPRETER = "triton-interpreter"  # the "device" of CPU tensors (kernels run in Triton's interpreter)

# Launch sites and their knobs. Keys' shapes: norm_act.* (N, C, H, W); zcat.* (N, C, H, W, nz) of
# x and z; zterm.* (N, CO, OH, OW, KH, KW, SH, SW, PH, PW): conv output and conv geometry; pool.*
# (N, C, H, W, KH, KW, SH, SW, PH, PW): the pooled input and the window's geometry.
SITES = {
    "norm_act.fwd": ("BLOCK_C", "BLOCK_HW", "split", "num_warps"),
    "norm_act.bwd": ("BLOCK_C", "BLOCK_HW", "split", "num_warps"),
    "zcat.fwd": ("BLOCK_P", "BLOCK_C", "num_warps"),
    "zcat.bwd": ("BLOCK_P", "BLOCK_C", "num_warps"),
    "zterm.add": ("BLOCK_J", "BLOCK_O", "ROWS", "num_warps"),
    "zterm.grad": ("BLOCK_J", "BLOCK_O", "ROWS", "num_warps"),
    "pool.fwd": ("BLOCK_I", "num_warps"),
    "pool.bwd": ("BLOCK_I", "num_warps"),
}
# The z-injection kernels take tiles of at least 2 along each axis.
MIN_BLOCK = {site: 2 if site.startswith("z") else 1 for site in SITES}


def norm_variant(site, act, from_y=False, weight=False, bias=False):
    """What else picks the compiled kernel of a norm_act.* launch (a constexpr each, so another
    binary with other register use and another best configuration): the activation, for the
    backward what the forward saved (from_y: the output y, else the input x), and whether there is
    a weight and a bias. E.g. 'leaky_relu,from_y', 'relu', 'none,from_x,affine'."""
    parts = [act]
    if site == "norm_act.bwd":
        parts.append("from_y" if from_y else "from_x")
    if weight or bias:
        parts.append("affine" if weight and bias else "weight" if weight else "bias")
    return ",".join(parts)


# Every variant a launch can have, for the sites whose key names one: the norm's (y is saved only for
# LeakyReLU without affine parameters) and the fused concatenation's, its activation (the ACT
# constexpr of both its kernels). zterm.* keys have none: their two kernels take no activation (it
# is applied by the fixed-size _act_cast / _zq / _zfinal kernels), so every act launches one binary;
# pool.* keys neither (avg_pool_triton._knobs says why).
VARIANTS = {site: {norm_variant(site, act, y, w, b) for act in ACTS for w in (False, True) for b in (False, True)
                   for y in ((False, True) if act == "leaky_relu" and not (w or b) else (False,))}
            for site in ("norm_act.fwd", "norm_act.bwd")}
VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd", "zcat.bwd")})

_tables = {}  # (device type, index) -> {key: knobs}


def device_name(device):
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else INTERPRETER


def table_path(name):
    """Where the committed table for the device called `name` lives."""
    return TABLE_DIR / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".json")


def key(site, shape, dtype, channels_last, variant=None):
    """A launch's key; variant: norm_variant's for the norm_act.* sites, the activation for zcat.*,
    None for zterm.*."""
    if variant not in VARIANTS.get(site, {None}):
        raise ValueError(f"{site}: variant must be one of {sorted(VARIANTS[site])}, got {variant!r}" if site in VARIANTS
                         else f"{site}: a launch key takes no variant, got {variant!r}")
    return site, tuple(int(s) for s in shape), dtype, bool(channels_last), variant


def key_text(k):
    site, shape, dtype, channels_last, variant = k
    fields = [site, "x".join(map(str, shape)), str(dtype).removeprefix("torch."), "cl" if channels_last else "nchw"]
    return "|".join(fields + ([] if variant is None else [variant]))


def check_knobs(site, knobs):
    """knobs as a dict of ints if they are a valid configuration for `site`, else ValueError."""
    names = SITES[site]
    if not isinstance(knobs, dict) or set(knobs) != set(names):
        raise ValueError(f"{site}: a config needs exactly the knobs {names}, got {knobs!r}")
    for name, v in knobs.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{site}: {name} must be a positive int, got {v!r}")
        pow2 = name.startswith("BLOCK_") or name == "num_warps"
        if pow2 and v & (v - 1):
            raise ValueError(f"{site}: {name} must be a power of two, got {v}")
    if min(v for n, v in knobs.items() if n.startswith("BLOCK_")) < MIN_BLOCK[site] or knobs["num_warps"] > 32:
        raise ValueError(f"{site}: blocks must be >= {MIN_BLOCK[site]} and num_warps <= 32, got {knobs}")
    return dict(knobs)


def _parse_key(text):
    fields = text.split("|")
    if len(fields) not in (4, 5):
        raise ValueError(text)
    site, shape, dtype, layout = fields[:4]
    dt = getattr(torch, dtype, None)
    if site not in SITES or not isinstance(dt, torch.dtype) or layout not in ("cl", "nchw"):
        raise ValueError(text)
    return key(site, [int(s) for s in shape.split("x")], dt, layout == "cl", fields[4] if len(fields) == 5 else None)


def _minor(version):
    return ".".join(str(version).split("+")[0].split(".")[:2])


def load_table(path, found_by=f" (from {ENV} or kernels/tuning/)"):
    """The JSON object of the tuning table at `path`, of this format; MissingTuningTable or TuningTableError
    naming the file otherwise (found_by: where its name came from, for the missing file's error)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MissingTuningTable(f"kernel tuning table {path}: no such file{found_by}") from None
    except OSError as e:  # a folder, no permission: an IsADirectoryError traceback from tune --merge
        raise TuningTableError(f"kernel tuning table {path}: cannot be read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TuningTableError(f"kernel tuning table {path}: not JSON ({e})") from None
    old = data.get("format") if isinstance(data, dict) else None
    if type(old) is int and 1 <= old < FORMAT:
        raise TuningTableError(f"kernel tuning table {path}: format {old}, from an older tuner whose {_UNNAMED[old]} "
                         f"they were timed with (format {FORMAT} keys do); re-run python -m bicyclegan.kernels.tune "
                         f"to make a new table")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
        found = (f"format {data.get('format')!r}" + ("" if isinstance(data.get("entries"), dict) else ", no 'entries'")
                 if isinstance(data, dict) else f"a JSON {type(data).__name__}")
        raise TuningTableError(f"kernel tuning table {path}: expected a JSON object with format {FORMAT} and "
                               f"'entries', as python -m bicyclegan.kernels.tune writes; found {found}")
    return data


def read_table(path, device):
    """{key: knobs} from the table at `path` for `device`; empty (with a warning) when the table was
    made on another device or with another torch/Triton minor version."""
    data = load_table(path)
    name = device_name(device)
    mismatch = [] if data.get("device") == name else [f"made on {data.get('device')!r}, this device is {name!r}"]
    for lib, have in (("torch", torch.__version__), ("triton", triton.__version__)):
        if _minor(data.get(lib)) != _minor(have):
            mismatch.append(f"made with {lib} {data.get(lib)}, this is {have}")
    if mismatch:
        _warn_once(f"kernel tuning table {path} ignored: {'; '.join(mismatch)}")
        return {}
    entries, bad = {}, []
    for text, entry in data["entries"].items():
        try:
            k = _parse_key(text)
            entries[k] = check_knobs(k[0], entry["config"])
        except (ValueError, KeyError, TypeError):
            bad.append(text)
    if bad:
        _warn_once(f"kernel tuning table {path}: {len(bad)} entries ignored (bad key or config), e.g. {bad[0]!r}")
    return entries


def check_env_table():
    """Read the table $BICYCLEGAN_KERNEL_TUNING names, if any, as the first launch will (TuningTableError
    naming it): for a command to refuse it before it writes anything, not at its first launch."""
    if os.environ.get(ENV):
        load_table(os.environ[ENV])


def _load(device):
    paths = [table_path(device_name(device))]
    paths = [p for p in paths if p.is_file()]
    if os.environ.get(ENV):
        paths.append(Path(os.environ[ENV]))
    entries = {}
    for p in paths:
        entries.update(read_table(p, device))
    return entries


def choose(site, shape, dtype, channels_last, device, heuristic, variant=None):
    """The knobs for one launch: the table's entry for it, else heuristic() (a callable). variant:
    as key() takes it (a variant the table does not name gets the heuristic)."""
    slot = (device.type, device.index)
    table = _tables.get(slot)
    if table is None:
        table = _tables[slot] = _load(device)
    if table:  # (no key tuple built without a table: this runs at every launch; the variant
        # string the caller built costs ~0.15 us, measured)
        knobs = table.get(key(site, shape, dtype, channels_last, variant))
        if knobs is not None:
            return dict(knobs)
    return heuristic()


def reload():
    """Forget the loaded tables (after changing BICYCLEGAN_KERNEL_TUNING or a table file)."""
    _tables.clear()
