"""What a training run reports about itself while it trains: report.html in the run folder and,
optionally, TensorBoard event files.

report.html is one self-contained file, readable offline: loss curves drawn here as inline SVG,
the sample grids over time embedded as data URIs (the latest first, at its own size up to
MAX_LATEST_WIDTH, then the earlier ones newest first, scaled down when wide, each linking to its PNG
in samples/), the evaluations during training (eval_log.jsonl: a chart per measure, the best marked),
the evaluation results and the config.
The trainer rewrites it at every sample interval and evaluation (rank 0 only), so it stays cheap:
each log line is parsed once, each curve keeps a min/max envelope of at most MAX_BUCKETS buckets
(memory and drawing independent of the log's length), at most MAX_GRIDS grids are embedded and
each grid's encoding is cached between rewrites. write_report(run) also works on a finished run.

TensorBoardLog writes the same scalars, the sample grids and the config (as hparams) through
torch.utils.tensorboard; it is only imported when asked for, so a run without it pays nothing.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import sys
import time
import weakref
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from bicyclegan.pipelines.errors import plural

from .errors import ConfigError
from .io import write_text

MAX_BUCKETS = 256     # per curve: a step range per bucket, kept as its min and max (about 1 px of a chart)
MAX_GRIDS = 8         # sample grids embedded, spread over the run, the latest always
MAX_GRID_WIDTH = 1024  # grids before the latest are embedded scaled down to this
# A grid whose header says more pixels is linked, not decoded: PIL's own limit, where no command turned it off (a 219
# KB file in a run folder someone gave you, declaring 15,000 x 15,000, took 1.6 GB to draw its report; a run's own
# grid is 92 M pixels at 1,024 px with 8 samples, and the page shows it scaled down to MAX_LATEST_WIDTH anyway)
MAX_GRID_PIXELS = 2 * 89_478_485
MAX_LATEST_WIDTH = 2900  # the latest is embedded at its own size up to this: a 256 px run's with 8 samples (2,840 px)
LOG_CHUNK = 1 << 24   # log.jsonl is read this many bytes at a time
MAX_TAIL = 4096       # bytes of the last line read that an update checks are still in place
# JSON's ints have no bound: past a float's range math.isfinite, float() and "{:.0f}" raised OverflowError for one
FLOAT_MAX = sys.float_info.max
LOG_SPAN = 100        # a loss whose values span this factor or more is charted on a log axis
CHART_W, CHART_H = 300, 180
PAD_L, PAD_R, PAD_T, PAD_B = 56, 10, 24, 30  # room for labels such as 0.000205; below: step ticks, then "step"
NOT_CHARTED = ("step", "epoch", "diverged")  # log.jsonl's columns that are no curve: the x axis, its epoch, a flag
NOT_LOSSES = ("step", "epoch", "lr", "img_per_s", "diverged", "amp_skipped")  # (amp_skipped: --amp fp16's count)
INSTALL_HINT = "pip install 'bicyclegan[tensorboard]'"


# -- the log ---------------------------------------------------------------------------------------
class LogCurves:
    """log.jsonl as one (steps, values) curve per column, read incrementally: each update parses
    only the lines added since the last one (a log rewritten since, as a resume cuts it, is read again
    from its start). A line cut short (by a kill, or still being written) is left out; missing and
    non-finite values (null) leave gaps."""

    def __init__(self):
        self.offset = 0  # the bytes read: the lines up to it parsed, a line cut short after it not yet
        self.tail = b""  # the last line read (its last MAX_TAIL bytes), to tell a rewritten log by
        self.curves: dict[str, Envelope] = {}  # column -> its finite values, bounded
        self.last: dict = {}
        self.diverged = False
        self.diverged_at: int | None = None  # the step of the first line that says so
        self.steps: tuple[int, int] | None = None  # the first and last step logged: every chart's x range
        self.not_finite: dict[str, int] = {}  # column -> step, where its latest value was not finite
        self.columns: dict[str, None] = {}  # every numeric or null column, in log order (finite or not)

    def update(self, path) -> "LogCurves":
        path = Path(path)
        if not path.is_file():
            return self
        with open(path, "rb") as f:
            if self.offset:
                # Read again from the start where the line read last no longer ends where it did: the log was
                # rewritten (a resume cuts it into a new file, whose lines may since have grown past the offset).
                f.seek(self.offset - len(self.tail))
                if f.read(len(self.tail)) != self.tail:
                    self.__init__()
                    f.seek(0)
            # In pieces: a long run's log read whole by a command's first report (a million lines) held 1.1 GB.
            rest = b""
            while chunk := f.read(LOG_CHUNK):
                text = rest + chunk
                end = text.rfind(b"\n") + 1
                rest = text[end:]
                if end:
                    self.offset += end
                    self.tail = text[max(text.rfind(b"\n", 0, end - 1) + 1, end - MAX_TAIL):end]
                    self._add(text[:end])
        return self

    def _add(self, text: bytes):
        # (Hot: a command's first report of a long run parses every line, 500,000 of them. Hence the names bound
        # once, the dict.get before an Envelope is made: setdefault made one per value, 4.5 million, kept none.)
        columns, curves, not_finite, big = self.columns, self.curves, self.not_finite, FLOAT_MAX
        for line in text.decode("utf-8", "replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            # (an epoch other than a whole number, as a step: a line no trainer wrote, whose "x" + 1 stopped the
            # page, and with it the sample or evaluate call that rewrote it)
            if not isinstance(row, dict) or not _whole(row.get("step")) or type(row.get("epoch", 0)) is not int:
                continue
            self.last = row
            step = row["step"]
            self.steps = (self.steps or (step, step))[0], step
            if row.get("diverged") and not self.diverged:
                self.diverged, self.diverged_at = True, step
            for k, v in row.items():
                if type(v) is not float and type(v) is not int and v is not None or k in NOT_CHARTED:
                    continue
                if k not in columns:
                    columns[k] = None
                if v is None:  # how the trainer writes a non-finite value
                    not_finite[k] = step
                elif -big <= v <= big:  # (finite: _number's test)
                    if (env := curves.get(k)) is None:
                        env = curves[k] = Envelope()
                    env.add(step, float(v))
                    if not_finite:
                        not_finite.pop(k, None)

    def losses(self) -> list[str]:
        """The loss columns logged so far, a column whose values were all non-finite included (a run
        that diverged before its first finite log line was reported as "No losses logged yet")."""
        return [k for k in self.columns if k not in NOT_LOSSES]

    def curve(self, key: str) -> tuple[list, list]:
        """The points drawn for a column: every logged one while they are few, an envelope after."""
        return self.curves[key].points() if key in self.curves else ([], [])

    def chart(self, key: str, title: str | None = None) -> str:
        """svg_chart of one column; its title says so when the latest value was not finite (the curve
        itself ends at the last finite one). Losses get a log axis when they span decades (learning
        rate and images/s never: a linear decay to zero would look like a cliff). Every chart spans
        the steps of the whole log, so a curve that stopped early (a loss gone NaN) ends short of the
        others' last step instead of being stretched to the same width, and a diverged run's charts
        mark the step it diverged at."""
        step = self.not_finite.get(key)
        return svg_chart(title or key, *self.curve(key), scale="linear" if key in NOT_LOSSES else "auto",
                         latest=None if step is None else f"not finite at step {step}",
                         x_range=self.steps, diverged_at=self.diverged_at)


class Envelope:
    """A curve kept in at most MAX_BUCKETS buckets of whole steps, each holding its lowest and highest
    value (with their steps) and its latest: as many as a chart has pixel columns, so a log of any
    length costs the same memory and drawing time, and unlike averaging, a spike and the value
    range at each step stay visible and the latest value stays exact. Buckets are `width` steps
    wide, aligned at multiples of it; when there are too many, width doubles and neighbours merge,
    so adding a point stays O(1) amortised. While width is 1 every logged point is kept as it is."""

    def __init__(self):
        self.width = 1
        self.buckets: dict[int, list] = {}  # step // width -> [lo_x, lo_y, hi_x, hi_y, last_x, last_y]

    @classmethod
    def of(cls, xs, ys) -> "Envelope":
        env = cls()
        for x, y in zip(xs, ys):
            env.add(x, y)
        return env

    def add(self, x, y: float) -> None:
        k = x // self.width
        b = self.buckets.get(k)
        if b is None:
            self.buckets[k] = [x, y, x, y, x, y]
            if len(self.buckets) > MAX_BUCKETS:
                self._coarsen()
            return
        if y < b[1]:
            b[0], b[1] = x, y
        if y > b[3]:
            b[2], b[3] = x, y
        b[4], b[5] = x, y

    def _coarsen(self) -> None:
        self.width *= 2
        merged: dict[int, list] = {}
        for k in sorted(self.buckets):  # step order: the later bucket's latest wins
            b, m = self.buckets[k], merged.get(k // 2)
            if m is None:
                merged[k // 2] = b
                continue
            if b[1] < m[1]:
                m[0], m[1] = b[0], b[1]
            if b[3] > m[3]:
                m[2], m[3] = b[2], b[3]
            m[4], m[5] = b[4], b[5]
        self.buckets = merged

    def points(self) -> tuple[list, list]:
        """Each bucket's lowest and highest point in step order, then the latest: at most
        2 * MAX_BUCKETS + 1 points, a zigzag that fills the band the values span."""
        pts = []
        for k in sorted(self.buckets):
            lo_x, lo_y, hi_x, hi_y, *_ = self.buckets[k]
            pts += sorted({(lo_x, lo_y), (hi_x, hi_y)})
        if pts:
            last = tuple(self.buckets[max(self.buckets)][4:])
            if last not in pts[-2:]:
                pts.append(last)
        return [x for x, _ in pts], [y for _, y in pts]


# -- SVG charts ------------------------------------------------------------------------------------
def ticks(lo: float, hi: float, n: int = 4, whole: bool = False) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) inside [lo, hi], about n of them; whole:
    at least 1 apart (steps: a run of one logged step had ticks at 0.5 and 1.5)."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    if whole:
        step = max(step, 1)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _num(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if v != 0 else "0"  # (-0.0 too: "-0" read as a value below zero)


def tick_labels(ts: list[float]) -> list[str]:
    """Labels that tell the ticks apart: the fewest significant digits (3 or more) that do (3 gave
    images/s of 2410 to 2413 five labels of 2.41e+03, and a flat loss four of 7.55)."""
    for digits in range(3, 13):
        labels = [_num(t, digits) for t in ts]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def step_label(t: float) -> str:
    """A step on the x axis: 950, 12k, 1.2M (not 1.2e+06)."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if abs(t) >= 10 * div if unit == "k" else abs(t) >= div:
            return f"{t / div:g}{unit}"
    return f"{t:g}"


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis over [10^lo, 10^hi]: the powers of ten inside (at most about 5, every
    k-th decade when more), with 2 and 5 times them when fewer than 3 powers fall inside."""
    decades = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
    if len(decades) > 6:
        decades = decades[::math.ceil(len(decades) / 5)]
    out = [10.0 ** d for d in decades]
    if len(out) < 3:
        out += [m * 10.0 ** d for d in range(math.floor(lo), math.ceil(hi) + 1) for m in (2, 5)
                if lo - 1e-9 <= math.log10(m) + d <= hi + 1e-9]
    return sorted(out)


def _svg_open(width: int, height: int, said: str, cls: str = "chart") -> str:
    # role img with its words: a screen reader read out the loose tick numbers ("1.999 1.998 ... step")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(said)}">')


def svg_chart(title: str, xs: list[float], ys: list[float], *, width: int = CHART_W,
              height: int = CHART_H, latest: str | None = None, scale: str = "linear",
              x_range: tuple[float, float] | None = None, diverged_at: float | None = None,
              mark: tuple[float, float, str] | None = None) -> str:
    """A line chart as an inline <svg>: the curve, round-valued grid lines with labels, and the title
    with the latest value (or `latest`, said instead). The plot area spans [PAD_L, width - PAD_R] x
    [PAD_T, height - PAD_B]. scale "auto": a log y axis when every value shown is > 0 and they span
    LOG_SPAN or more (max / min), as a KL term rising from 1e-7 to 0.3 was a flat line at zero for
    its first third on a linear one; the title then says "log scale". A flat series is drawn in
    the middle of an axis one unit of its leading digit either way (0.0003: 0.0002 to 0.0004), not
    of +-5 % (seven ticks 0.000005 apart); one all zero at the foot of an axis from 0 to 1. x_range:
    steps the x axis spans at least (the whole run's); diverged_at: a step marked with a vertical line,
    "diverged"; mark: (step, value, what) of a point drawn as a ring, `what` its tooltip (the best
    evaluation)."""
    if not xs:  # one line of text, not a blank chart-sized box
        said = f"{title}: {latest or 'no finite values yet'}"
        return (f'{_svg_open(width, 24, said)}<text x="{PAD_L}" y="16" class="t">{html.escape(title)}: '
                f'{html.escape(latest or "no finite values yet")}</text></svg>')
    latest = latest or _num(ys[-1])
    if len(xs) > 2 * MAX_BUCKETS + 1:  # a long series given directly: drawn as LogCurves draws one
        xs, ys = Envelope.of(xs, ys).points()
    log_y = scale == "auto" and min(ys) > 0 and max(ys) >= LOG_SPAN * min(ys)
    if log_y:
        ys = [math.log10(y) for y in ys]
    x0, x1 = min(xs + list(x_range or ())), max(xs + list(x_range or ()))
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0 and not y0:  # all zero: 0 to 1 (a coverage of 0 had ticks down to -1, a value it cannot take)
        y1 = 1.0
    elif y1 == y0:
        pad = 10.0 ** math.floor(math.log10(abs(y0)))
        y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - PAD_L - PAD_R, height - PAD_T - PAD_B

    def px(x):
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y):
        return PAD_T + (y1 - y) / (y1 - y0) * ph

    said = (f"{title}: {latest}, steps {min(xs):.0f} to {max(xs):.0f}, from "
            f"{_num(10 ** min(ys) if log_y else min(ys))} to {_num(10 ** max(ys) if log_y else max(ys))}"
            + (f"; diverged at step {diverged_at}" if diverged_at is not None else "")
            + (f"; {mark[2]}" if mark is not None else ""))
    parts = [_svg_open(width, height, said), f'<text x="{PAD_L}" y="15" class="t">{html.escape(title)} '
                   f'<tspan class="v">{html.escape(latest)}</tspan>'
                   + ('<tspan class="s"> (log scale)</tspan>' if log_y else "") + '</text>',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" class="box"/>']
    ys_ticks = log_ticks(y0, y1) if log_y else ticks(y0, y1)
    for t, label in zip(ys_ticks, tick_labels(ys_ticks)):
        y = py(math.log10(t) if log_y else t)
        parts.append(f'<line x1="{PAD_L}" x2="{PAD_L + pw}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>'
                     f'<text x="{PAD_L - 4}" y="{y + 3:.1f}" class="yl">{label}</text>')
    for t in ticks(x0, x1, 3, whole=True):
        parts.append(f'<text x="{px(t):.1f}" y="{height - PAD_B + 12}" class="xl">{step_label(t)}</text>')
    parts.append(f'<text x="{PAD_L + pw / 2:.1f}" y="{height - 3}" class="xt">step</text>')  # the x axis' title
    if diverged_at is not None and x0 <= diverged_at <= x1:
        x = px(diverged_at)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_T}" y2="{PAD_T + ph}" class="d">'
                     f'<title>diverged at step {diverged_at}</title></line>'
                     f'<text x="{x - 2:.1f}" y="{PAD_T + 10}" class="dl">diverged</text>')
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    parts.append(f'<polyline points="{points}" class="c"/>')
    if len(xs) == 1:  # a line through one point draws nothing: the chart was an empty box
        parts.append(f'<circle cx="{px(xs[0]):.1f}" cy="{py(ys[0]):.1f}" r="2.5" class="p"/>')
    if mark is not None:
        x, y, what = mark
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(math.log10(y) if log_y else y):.1f}" r="4.5" class="b">'
                     f'<title>{html.escape(what)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


# -- sample grids ----------------------------------------------------------------------------------
def grid_step(path: Path) -> int | None:
    """The step in a grid's name (samples/step_0001000.png -> 1000); None for another file that
    matches step_*.png (a copy made in a file manager, "step_0001000 (copy).png")."""
    m = re.fullmatch(r"step_(\d+)", Path(path).stem)
    return int(m.group(1)) if m else None


def run_grids(run: Path) -> list[Path]:
    """The run's sample grids (samples/step_N.png) in step order, other files left out."""
    return sorted((p for p in Path(run).glob("samples/step_*.png") if grid_step(p) is not None), key=grid_step)


def spread(items: list, k: int) -> list:
    """At most k items spread over the list, the first and the last included: every stride-th item
    with the stride a power of two, so as the list grows the choice changes only when the stride
    doubles (keeping a subset of the earlier choice) and each rewrite encodes one new grid."""
    if len(items) <= k:
        return list(items)
    if k == 1:
        return [items[-1]]
    stride = 1
    while (len(items) - 2) // stride + 1 > k - 1:
        stride *= 2
    return items[:-1][::stride] + [items[-1]]


def grids_to_keep(steps: list[int], k: int) -> list[int]:
    """The steps (sorted) of the grids to keep when at most k may stay (k >= 1): the first and the last, and between
    them those at multiples of u * 2^j, u the greatest common divisor of the steps between, j the least that fits
    (so between about k / 2 and k stay, spread over the run). As the run grows j only rises, so what a choice from
    all of a run's grids keeps is among what the choices before it kept: a grid removed is never wanted again (a
    choice by position, the report's `spread`, applied to what an earlier one left, thinned the run's start again
    and again). From the steps, not the run's sample_every: one changed on resume (grids every 500, then every 700)
    counted the earlier grids off its grid, 3 of 11 kept where 10 could stay."""
    if len(steps) <= k:
        return list(steps)
    if k == 1:
        return [steps[-1]]
    unit = math.gcd(*steps[1:-1])
    while True:
        kept = [s for i, s in enumerate(steps) if i in (0, len(steps) - 1) or s % unit == 0]
        if len(kept) <= k or unit > steps[-1]:  # (past the last step the two ends alone are left)
            return kept
        unit *= 2


def grid_key(path: Path, max_width: int | None) -> tuple:
    """A grid's entry in the report's cache: the file, its modification time and how it is shown."""
    return str(path), path.stat().st_mtime_ns, max_width


def grid_data_uri(path: Path, cache: dict | None = None, max_width: int | None = MAX_GRID_WIDTH
                  ) -> tuple[str, float] | tuple[None, str]:
    """The grid as a data: URI (PNG) and the factor it is shown at: scaled down to max_width when
    wider (None: the file as it is); cached by file, modification time and max_width, as a run's
    grids never change once written. (None, why) for a grid not shown: one of more than MAX_GRID_PIXELS
    (not decoded), a file that is no image or is cut short (an empty one, a git-LFS pointer)."""
    key = grid_key(path, max_width)
    if cache is not None and key in cache:
        return cache[key]
    why = f"more than {MAX_GRID_PIXELS:,} pixels"
    try:
        data = path.read_bytes()
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_GRID_PIXELS:  # (its header read alone)
            img.close()
            img = None
        else:
            img.load()  # (a file cut short fails here, not in _shown's scaling)
    except FileNotFoundError:
        raise  # (removed since the listing: write_report leaves it out)
    except Image.DecompressionBombError:  # (PIL's own guard, on where no command turned it off)
        img = None
    except (OSError, SyntaxError, ValueError, TypeError) as e:
        # (what PIL raised for PNG, JPEG, GIF, BMP, TIFF and WEBP files cut short or corrupted: the page and the
        # training rewriting it died of it; its message for no image names a BytesIO, not the file)
        img = None
        why = (f"{path.name} cannot be read as an image ("
               f"{'no image format recognised' if isinstance(e, Image.UnidentifiedImageError) else e})")
    if img is None:
        shown = None, why
    else:
        with img:
            shown = _shown(img, data, max_width)
    if cache is not None:
        cache[key] = shown
    return shown


def _shown(img: Image.Image, data: bytes, max_width: int | None) -> tuple[str, float]:
    """The grid `img` (its file's bytes `data`) as embedded: scaled down to max_width where wider."""
    scale = 1.0
    if max_width is not None and img.width > max_width:
        scale = max_width / img.width
        buf = io.BytesIO()
        img.convert("RGB").resize((max_width, max(1, round(img.height * scale))), Image.BOX).save(
            buf, format="PNG", compress_level=1)
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), scale


def _axis_range(vs: list[float]) -> tuple[float, float]:
    """The span of an axis showing vs: theirs plus a tenth each side (room for a point's ring and label);
    a single value one unit of its leading digit either way, as svg_chart's flat series; all zero as 0 to 1 (and
    the tenth): compare's validity and coverage of 0 had ticks down to -1, a share cannot take."""
    lo, hi = min(vs), max(vs)
    if hi == lo == 0:
        return -0.1, 1.1
    if hi == lo:
        pad = 10.0 ** math.floor(math.log10(abs(lo)))
        return lo - pad, hi + pad
    return lo - (hi - lo) / 10, hi + (hi - lo) / 10


LABEL_CHAR_W = 6.5  # px per character of a point's label (11 px sans-serif), to keep labels apart


def svg_scatter(title: str, points: list[tuple[float, float, str]], *, x_title: str, y_title: str,
                width: int = 460, height: int = 320) -> str:
    """A scatter chart as an inline <svg>: one labelled point per (x, y, label), round-valued grid
    lines on both axes, each axis titled (x below, y above the plot: turned text is hard to read)."""
    pl, pr, pt, pb = PAD_L, 16, PAD_T + 16, PAD_B + 4
    said = f"{title}; {x_title} and {y_title}: " + ("; ".join(f"{n} {_num(x)}, {_num(y)}" for x, y, n in points)
                                                    or "no points")
    parts = [_svg_open(width, height, said, "chart scatter"),
             f'<text x="{pl}" y="15" class="t">{html.escape(title)}</text>',
             f'<text x="{pl}" y="{pt - 6}" class="s yt">{html.escape(y_title)}</text>']
    if not points:
        return "".join(parts) + "</svg>"
    x0, x1 = _axis_range([p[0] for p in points])
    y0, y1 = _axis_range([p[1] for p in points])
    pw, ph = width - pl - pr, height - pt - pb

    def px(x):
        return pl + (x - x0) / (x1 - x0) * pw

    def py(y):
        return pt + (y1 - y) / (y1 - y0) * ph

    parts.append(f'<rect x="{pl}" y="{pt}" width="{pw}" height="{ph}" class="box"/>')
    ys = ticks(y0, y1)
    for t, label in zip(ys, tick_labels(ys)):
        parts.append(f'<line x1="{pl}" x2="{pl + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" class="g"/>'
                     f'<text x="{pl - 4}" y="{py(t) + 3:.1f}" class="yl">{label}</text>')
    xs = ticks(x0, x1)
    for t, label in zip(xs, tick_labels(xs)):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{pt}" y2="{pt + ph}" class="g"/>'
                     f'<text x="{px(t):.1f}" y="{pt + ph + 12}" class="xl">{label}</text>')
    parts.append(f'<text x="{pl + pw / 2:.1f}" y="{height - 4}" class="xt">{html.escape(x_title)}</text>')
    placed = []  # (left, right, baseline) of the labels drawn
    marks = [(px(x), py(y)) for x, y, _ in points]
    for i, (x, y, label) in enumerate(points):
        # A label right of its point where it fits in the plot, else left of it (it ran off the chart), else on the
        # side with more room; moved a line down or up, with a leader, where it would cover another label (two
        # models of close measures) or another point (a long name drawn across its neighbour's dot read as its).
        # A label longer than the room on either side is cut to the larger (its point's tooltip has it whole).
        cx, cy = marks[i]
        room_right, room_left = pl + pw - (cx + 7), cx - 7 - pl
        shown = label
        if LABEL_CHAR_W * len(label) > max(room_right, room_left):
            shown = label[:max(3, int(max(room_right, room_left) / LABEL_CHAR_W) - 1)] + "\u2026"
        w = LABEL_CHAR_W * len(shown)
        sides = (True, False) if w <= room_right or (w > room_left and room_right >= room_left) else (False, True)

        def free(right, base, inside, cx=cx, w=w, i=i):
            left = cx + 7 if right else cx - 7 - w
            return (not any(left < r and a < left + w and abs(base - b) < 12 for a, r, b in placed)
                    and not any(j != i and left - 5 < mx < left + w + 5 and base - 14 < my < base + 6
                                for j, (mx, my) in enumerate(marks))
                    # within the plot (below it the ticks, above it the axis's title), where a slot there is free
                    and (not inside or pl <= left and left + w <= pl + pw and pt + 10 <= base <= pt + ph - 2))
        # a label or a point blocks at most two slots 12 px apart on a side: this many slots hold a free one
        steps = [12 * ((k + 1) // 2) * (-1) ** (k + 1) for k in range(2 * (len(placed) + len(points)) + 1)]
        right, base = next(((side, cy + 4 + d) for inside in (True, False) for side in sides for d in steps
                            if free(side, cy + 4 + d, inside)), (sides[0], cy + 4))
        left = cx + 7 if right else cx - 7 - w
        placed.append((left, left + w, base))
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" class="p"><title>{html.escape(label)}: '
                     f'{_num(x)}, {_num(y)}</title></circle>')
        tx = cx + 7 if right else cx - 7
        if base != cy + 4:
            parts.append(f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{tx:.1f}" y2="{base - 4:.1f}" class="g2"/>')
        parts.append(f'<text x="{tx:.1f}" y="{base:.1f}" class="pl" text-anchor="{"start" if right else "end"}">'
                     f'{html.escape(shown)}</text>')
    return "".join(parts) + "</svg>"


# -- the page --------------------------------------------------------------------------------------
# A grid is shown at its own size (pixelated: sharp where a screen enlarges it), never shrunk to the
# window: shrunk with pixelated scaling its titles lost pixel rows on a phone. Wider than the window,
# it scrolls sideways in its figure, as the galleries' tables do (images.GALLERY_STYLE).
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555} .charts{display:flex;flex-wrap:wrap;gap:10px} .chart{overflow:visible}
.chart:not(.scatter){max-width:100%;height:auto}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
.chart .t{font-size:12px;font-weight:600} .chart .v{font-weight:400;fill:#555}
.chart .s{font-weight:400;font-style:italic;fill:#555}
.chart .box{fill:none;stroke:#bbb} .chart .g{stroke:#eee} .chart .c{fill:none;stroke:#1f77b4;stroke-width:1.5}
.chart .p{fill:#1f77b4} .chart .d{stroke:#d62728;stroke-dasharray:3 2}
.chart .b{fill:none;stroke:#2ca02c;stroke-width:2}
.chart .dl{font-size:10px;text-anchor:end;fill:#d62728} .chart .xt{font-size:10px;text-anchor:middle;fill:#555}
.chart .yl{font-size:10px;text-anchor:end;fill:#555} .chart .pl{font-size:11px} .chart .g2{stroke:#999}
.chart .yt{font-size:10px} .chart .xl{font-size:10px;text-anchor:middle;fill:#555}
figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top;max-width:100%;overflow-x:auto}
figure img{image-rendering:pixelated;border:1px solid #ddd}
figcaption{font-size:12px;color:#555} table{border-collapse:collapse}
td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee;font-size:13px}
table.eval td{overflow-wrap:anywhere} .across{overflow-x:auto;max-width:100%}
pre{font-size:12px;background:#f6f6f6;padding:8px;overflow-x:auto}
"""


def html_page(title: str, body: str, *, style: str = STYLE, head: str = "") -> str:
    """A whole page of the engine's (the report, compare's, the sweep's, the galleries'): title (text, escaped
    here), body and head (more of the head's elements) as HTML."""
    # viewport: a phone lays the page out at its own width (its charts are 300 px), not at 980 px shrunk
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>{head}"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body>{body}</body></html>\n")


# What evaluate writes (engine/evaluate.py, metrics/palette.py, the trainer's 100 z line), as the
# terminal's table (evaluate.format_table) words it; a key not here is shown as it is.
EVAL_NAMES = {
    "variant": "variant", "dataroot": "data", "dataroot_given": "data, as given", "phase": "split",
    "n_inputs": "inputs", "n_samples": "random z per input",
    "seed": "seed", "metrics": "metrics", "n_outputs": "outputs classified", "n_palettes": "palettes (K)",
    "coverage": "palette coverage", "validity": "validity", "histogram": "palette histogram",
    "shares_n_samples": "random z per input, second histogram",
    "shares_histogram": "palette histogram with more z per input",
    "encoded_palette_match": "encoded keeps B's palette", "diversity_l1": "diversity (L1 between samples)",
    "encoded_l1": "encoded reconstruction L1", "diversity_lpips": "diversity (LPIPS between samples)",
    "lpips": "LPIPS settings", "fid": "FID (generated vs real B)", "fid_images": "FID images",
    "encoded_missing": "no encoded output",
}


# How an evaluation was made, not what it measured: no curve of them (report charts, TensorBoard).
EVAL_SETTINGS = ("n_inputs", "n_samples", "seed", "n_outputs", "n_palettes", "shares_n_samples")


def read_eval_log(path) -> list[dict]:
    """eval_log.jsonl's lines (one per evaluation during training), a line cut short or not UTF-8 left out."""
    rows = []
    # (errors="replace", as LogCurves: a byte not UTF-8 spoils its line, not the page)
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if Path(path).is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and _whole(row.get("step")):
            rows.append(row)
    return rows


def _whole(v) -> bool:
    """A step: an int that a chart can place (a float holds it)."""
    return type(v) is int and -FLOAT_MAX <= v <= FLOAT_MAX


def _number(v) -> bool:
    """A number a page can draw and print: finite, and for an int, within a float's range (FLOAT_MAX)."""
    return type(v) in (int, float) and -FLOAT_MAX <= v <= FLOAT_MAX


def _validation(rows: list[dict], config: dict | None, x_range, diverged_at: int | None = None) -> str:
    """The evaluations during training: one chart per measure over the steps (those of the training
    log), the evaluation best.pt was kept from marked on its measure's chart, the step a diverged run
    diverged at on every chart, as the losses' charts."""
    every = (config or {}).get("eval_every")
    if not rows:
        return (f"<p>No evaluation yet (every {plural(every, 'iteration')}: <code>eval_log.jsonl</code>).</p>"
                if every else
                "<p>No evaluation during training (<code>--eval_every N</code> evaluates the held-out split "
                "every N iterations).</p>")
    last, best = rows[-1], next((r for r in reversed(rows) if r.get("best") and r["best"] in r), None)
    charts = []
    for k in row_measures(rows, ("step", "epoch")):
        pts = [(r["step"], float(r[k])) for r in rows if _number(r.get(k))]
        mark = None
        if best is not None and best["best"] == k and _number(best[k]):
            mark = (best["step"], best[k], f"checkpoints/best.pt: {_value(best[k])} at step {best['step']}")
        charts.append(svg_chart(EVAL_NAMES.get(k, k), [x for x, _ in pts], [y for _, y in pts], x_range=x_range,
                                mark=mark, diverged_at=diverged_at))
    # (a model without z, nz 0, has one output per input: "x 1 random z" said a code it has not)
    per_input = ("its one output" if ((config or {}).get("model") or {}).get("nz") == 0
                 else f"{last.get('n_samples')} random z")
    said = (plural(len(rows), "evaluation") + (f", every {plural(every, 'iteration')}" if every else "")
            + f", of {last.get('split')}/: the first {plural(last.get('n_inputs'), 'input')} x {per_input} "
            f"(seed {last.get('seed')}), the same at each (eval_log.jsonl).")
    if best is not None:
        said += (f" Ringed: the best {EVAL_NAMES.get(best['best'], best['best'])}, {_value(best[best['best']])} "
                 f"at step {best['step']}, kept as checkpoints/best.pt.")
    return f"<p class='meta'>{html.escape(said)}</p><div class='charts'>" + "".join(charts) + "</div>"


# Why a diversity is '-' (null in the results): evaluate's table, compare's and evaluate --epoch all's say it alike.
DIVERSITY = ("diversity_lpips", "diversity_l1")
NO_DIVERSITY = ("one output per input (--n_samples 1, or a model without z): no pair to compare; "
                "diversity needs --n_samples 2 or more, and a model with z (nz above 0)")


def has_split(dataroot, phase) -> bool:
    """Whether an evaluation read the split `phase` of dataroot, not a plain folder of inputs (rows that do
    not say which: as if it did)."""
    return dataroot is None or phase is None or (Path(dataroot) / phase).is_dir()


def read_from(dataroot, phase, shown=None) -> str:
    """What an evaluation read, as its table and page say it: "test/ of DATA", or a folder without that split
    (a plain folder of inputs) as "the images of DATA": they said "test/" of a folder that has none. shown:
    the folder as the text names it (default: dataroot; evaluate's table: as the user typed it)."""
    if dataroot is None or phase is None:  # (rows that do not say it: as much as they say)
        return f"{phase}/"
    shown = dataroot if shown is None else shown
    return f"{phase}/ of {shown}" if has_split(dataroot, phase) else f"the images of {shown}"


def measured_with(row: dict, fid: bool = True) -> str:
    """How an evaluation's LPIPS and FID were measured, for a page that shows their figures alone (a comparison's,
    a sweep's): LPIPS v0.1's figures are about 2.4 times v0.0's (the paper's), and a FID from fewer than 2048
    images is biased upward; evaluate's table says both, the pages said neither. fid: with FID's counts."""
    said = []
    if isinstance(lp := row.get("lpips"), dict):
        said.append(f"LPIPS: alex v{lp.get('version')}, {lp.get('pairs')} pairs"
                    + ("; ± the standard error of its mean over the pairs, as evaluate prints it: figures a few of "
                       "these apart or closer are within noise." if _number(lp.get("stderr")) else "."))
    if fid and isinstance(n := row.get("fid_images"), dict) and _number(row.get("fid")):
        few = min(n.values()) < 2048
        said.append(f"FID: {n['generated']} generated vs {n['real']} real images"
                    + ("; under 2048: biased upward, compare only at equal counts." if few else "."))
    return " ".join(said)


def data_folder(row: dict) -> str | None:
    """The folder an evaluation's row (eval.json, compare.json, sweep.json) says it read, for a reader: evaluate
    records it absolute. An older file holds it as typed, maybe relative to the folder evaluate ran in, which
    it does not record: its protocol's (absolute since it was recorded: evaluate's eval.json, the sweep's)
    where it has one, else as written, from the current folder, as readers always took it (not from the run
    folder: evaluate ran where the user was, the dataset beside the runs more often than inside one)."""
    root = row.get("dataroot")
    if root is None or Path(root).is_absolute():
        return root
    said = row.get("protocol")
    return said["dataroot"] if isinstance(said, dict) and isinstance(said.get("dataroot"), str) else root


# Why else a table of evaluations has '-' where a measured row has no value of a column another row has.
ENCODED = ("encoded_l1", "encoded_palette_match")
NO_ENCODER = ("no encoder E (pix2pix+noise, or a checkpoint imported without --E): no encoded output G(A, E(B)) to "
              "measure")
# Why evaluate has no encoded output, as its result records it ("encoded_missing", for its table and the notes of
# compare's and the sweep's: an older file without it gets the reason that covers both).
NO_B = "no B images in the split (inputs alone): no encoded output G(A, E(B)) to measure"
NO_ENCODED = {"no encoder E": NO_ENCODER, "no B images": NO_B}
NO_ENCODED_EITHER = ("no encoded output G(A, E(B)) to measure: the model has no encoder E (pix2pix+noise, or a "
                     "checkpoint imported without --E), or the split no B images")
NOT_FINITE = "not finite (null in the JSON)"  # evaluate.json_safe's null of a NaN or infinite measure
NOT_IN = "not in its results"  # (a row another version of evaluate wrote, reused by --reuse)


def blanks(rows: list[dict], keys: list[str], name) -> list[tuple[list[str], list[str], str]]:
    """Why each '-' of a table of evaluations is there: (its columns of `keys`, the rows' names (name(row)),
    the reason) for each reason, in the order met; a '-' no reason explains was a reader's guess (pix2pix's
    encoded L1 said nothing, beside diversity's stated reason). A row that failed says its error instead."""
    why: dict[str, tuple[dict, dict]] = {}
    for r in rows:
        if "error" in r:
            continue
        for k in keys:
            if _number(r.get(k)) or (k in r and r[k] is not None):  # (a value shown: a number or a setting)
                continue
            # (an encoded measure's: the row's recorded reason, E's lack or the split's; an older file: either)
            reason = (NO_DIVERSITY if k in DIVERSITY and k in r
                      else NO_ENCODED.get(r.get("encoded_missing"), NO_ENCODED_EITHER) if k in ENCODED and k not in r
                      else NOT_FINITE if k in r else NOT_IN)
            cols, names = why.setdefault(reason, ({}, {}))
            cols[k] = names[name(r)] = None
    return [(list(cols), list(names), reason) for reason, (cols, names) in why.items()]


def blank_notes(rows: list[dict], keys: list[str], name, column=str) -> list[str]:
    """blanks' reasons as sentences, "COLUMNS -: NAMES: reason" (column: a key's name in the table)."""
    return [f"{', '.join(map(column, cols))} -: {', '.join(names)}: {reason}"
            for cols, names, reason in blanks(rows, keys, name)]


def row_measures(rows: list[dict], identity, *, undefined: bool = False) -> list[str]:
    """The measures rows of evaluations hold (numbers, not the `identity` columns nor settings), in the
    order they first appear; undefined: also a measure no row has a value of (a diversity of one output per
    input, a FID not finite: null), and an encoded measure asked for that no row has (no B images), whose column
    then says '-' rather than going missing (a table's columns, blanks says why; a chart has nothing to draw)."""
    skip = {*identity, *EVAL_SETTINGS}
    keys = dict.fromkeys(k for r in rows if "error" not in r for k, v in r.items()
                         if k not in skip and (_number(v) or (undefined and v is None)))
    if undefined:  # an encoded measure no row has (no B images: none has an encoded output) went missing, unsaid
        asked = {k for r in rows if "error" not in r and "encoded_missing" in r
                 for k, metric in zip(ENCODED, ("l1", "palette")) if metric in (r.get("metrics") or ())}
        keys.update(dict.fromkeys(k for k in ENCODED if k in asked and k not in keys))
    return list(keys)


def measure_cells(row: dict, keys: list[str], best: dict[str, dict]) -> str:
    """A table row's cells of `keys` (bold where `row` is best[key], and "(best)" for a screen reader, which does
    not read out bold), or its error across them."""
    if "error" in row:
        return f"<td colspan='{max(len(keys), 1)}'>{html.escape(row['error'])}</td>"
    return "".join(f"<td><b>{html.escape(measure_value(row, k))}</b><span class='vh'> (best)</span></td>"
                   if best.get(k) is row
                   else f"<td>{html.escape(measure_value(row, k))}</td>" for k in keys)


def measure_value(row: dict, key: str, plain=None) -> str:
    """A measure as a table shows it (plain: the table's format of a value, default _value's): LPIPS diversity with
    its ± (the standard error of the mean, evaluate's): a comparison's cells without it left two models 0.66 and 0.67
    apart, within one standard error, looking ranked."""
    v, lp = row.get(key), row.get("lpips")
    if key == "diversity_lpips" and _number(v) and isinstance(lp, dict) and _number(lp.get("stderr")):
        return f"{v:.4f} ± {lp['stderr']:.4f}"
    return (plain or _value)(v)


def aligned(table: list[list[str]]) -> list[str]:
    """A terminal table's lines (compare's, the sweep's; table[0]: the header): its columns two spaces apart, each
    as wide as its widest cell, a row's last cell not padded. A row of another length than the header's ends in an
    error's text, which spans the measures' columns and sets none of their widths (it widened the first column to
    its own length on every other row)."""
    widths = {}
    for row in table:
        for i, cell in enumerate(row if len(row) == len(table[0]) else row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    return ["  ".join([*(c.ljust(widths[i]) for i, c in enumerate(row[:-1])), row[-1]]) for row in table]


def _value(v) -> str:
    if v is None:  # a measure with nothing to measure (diversity of one sample per input): '-', as evaluate prints
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return " ".join(_value(x) for x in v)
    if isinstance(v, dict):  # lpips's settings, fid_images' counts: "net alex, version 0.1, ..."
        # (a setting null in eval.json's protocol is an option left at its default: "layout -" said nothing)
        return ", ".join(f"{k} {'default' if x is None else _value(x)}" for k, x in v.items())
    return str(v)


def _grid_caption(config: dict | None, status: dict) -> str:
    """What a grid's rows and columns are, for this run's variant (sample_columns' columns)."""
    model, variant = (config or {}).get("model", {}), (config or {}).get("variant")
    cols = ["input", "ground truth"]
    if variant in ("bicycle", "cvae", "cae", "clr"):
        cols.append("encoded G(A, E(B))")
    if not model.get("nz", 8):
        cols.append("the output")
    elif (config or {}).get("n_samples", 1):  # (train --n_samples 0: no random-z column)
        cols.append("the same random codes z throughout")
    split = f" of {status['grid_split']}/" if status.get("grid_split") else ""
    return f"Rows: the same inputs{split} in every grid; columns: {', '.join(cols)}."


def _grid_figure(step: int, uri: str | None, href: str, scale: float | str, latest: bool = False) -> str:
    """A grid as shown (uri, at `scale` of its size; None: not embedded, `scale` then says why: grid_data_uri),
    linking to its PNG (href, relative to the page)."""
    href = html.escape(href)
    caption = f"step {step}" + (" (latest)" if latest else "")
    if uri is None:
        return (f"<figure><figcaption>{caption} · not shown here: {html.escape(scale)}, "
                f"<a href='{href}'>the file</a></figcaption></figure>")
    if scale < 1:  # floor: a grid a pixel too wide is shown at 99 %, not "100 %"
        caption += f" · shown at {math.floor(scale * 100)} %, <a href='{href}'>full size</a>"
    # the caption above: below a 512 px run's latest grid of 8 rows (2,100 px high as shown) it was out of sight
    return (f"<figure><figcaption>{caption}</figcaption>"
            f"<a href='{href}'><img src='{uri}' alt='samples at step {step}'></a></figure>")


def _evaluation(evaluation: dict | None, results: list | None) -> list[str]:
    """The run's evaluation (eval.json) as a table, its '-'s said why; or where else its evaluations are."""
    if evaluation:
        # the name a reader knows, the key of eval.json as its tooltip
        cells = "".join(f"<tr><th title='{html.escape(str(k))}'>{html.escape(EVAL_NAMES.get(k, str(k)))}</th>"
                        f"<td>{html.escape(_value(v))}</td></tr>" for k, v in evaluation.items())
        return [f"<table class='eval'>{cells}</table>",
                *(f"<p class='meta'>{html.escape(', '.join(EVAL_NAMES.get(k, k) for k in cols))} -: "
                  f"{html.escape(reason)}.</p>" for cols, _, reason in blanks([evaluation], list(evaluation), str))]
    if any(href.endswith("/eval.json") for _, links in results or () for _, href in links):
        # evaluate writes into results/ by default: "not evaluated yet" stood above the links to its evaluations
        return ["<p>No evaluation of the run itself (RUN/eval.json): its checkpoints' evaluations are under "
                "Results of its checkpoints below.</p>"]
    return ["<p>Not evaluated yet (eval.json appears at the end of a run on the demo data, "
            "or with <code>bicyclegan evaluate CKPT --json RUN/eval.json</code>).</p>"]


def render_report(run_name: str, log: LogCurves, grids: list[tuple[int, str | None, str, float | str]],
                  evaluation: dict | None, config: dict | None, status: dict | None = None,
                  validation: list[dict] | None = None, results: list | None = None) -> str:
    """The report's HTML. grids: (step, image URI, link to the PNG, scale shown at; None and why for one not
    shown: grid_data_uri) in step order, shown newest first (the latest grid is what the page is opened for; it
    was at the bottom).
    validation: eval_log.jsonl's rows (read_eval_log); its section is left out for a run that has none
    and does not evaluate. results: result_pages' (the section is left out where there are none)."""
    last = log.last
    status = {**{"step": last.get("step"), "epoch": last.get("epoch")}, **(status or {})}
    where = f"step {status['step']}" if status.get("step") is not None else "no step logged yet"
    if status.get("total_steps"):
        where += f" of {status['total_steps']}"
    if status.get("epoch") is not None:
        # log.jsonl's epoch counts from 0; shown from 1, as the progress line and epoch_N.pt count
        where += f" (epoch {status['epoch'] + 1}" + (f" of {status['epochs']})" if status.get("epochs") else ")")
    variant = (config or {}).get("variant")
    start = (config or {}).get("init_from")  # a run started from a checkpoint's weights (fine-tuning)
    if start:
        start = f"from the weights of {start}" + (" (new discriminators)" if config.get("fresh_D") else "")
    meta = " · ".join(x for x in (where, f"variant {variant}" if variant else "", start or "",
                                  "updated " + time.strftime("%Y-%m-%d %H:%M:%S")) if x)
    schedule = {k: status[k] for k in SCHEDULE if status.get(k) is not None}
    parts = [f"<h1>Training report: {html.escape(run_name)}</h1><p class='meta'>{html.escape(meta)}</p>"]
    if log.diverged:
        parts.append(f"<p><b>Training diverged</b> at step {log.diverged_at}: a logged loss or the weights "
                     "were not finite (see log.jsonl and the run's last message); the charts mark the step.</p>")

    losses = log.losses()
    parts.append("<h2>Losses</h2>")
    parts.append("<div class='charts'>" + "".join(log.chart(k) for k in losses) + "</div>"
                 if losses else "<p>No losses logged yet.</p>")
    parts.append("<h2>Learning rate and speed</h2><div class='charts'>"
                 + log.chart("lr", "learning rate") + log.chart("img_per_s", "images/s")
                 + (log.chart("amp_skipped", "fp16 steps skipped (non-finite gradients)")
                    if "amp_skipped" in log.columns else "") + "</div>")
    if validation or (config or {}).get("eval_every"):
        parts.append("<h2>Validation</h2>" + _validation(validation or [], config, log.steps, log.diverged_at))

    parts.append(f"<h2>Sample grids</h2><p class='meta'>{html.escape(_grid_caption(config, status))}</p>")
    parts += ([_grid_figure(*g, latest=i == 0) for i, g in enumerate(reversed(grids))]
              or ["<p>No sample grid yet.</p>"])

    parts += ["<h2>Evaluation</h2>", *_evaluation(evaluation, results)]
    if results:
        parts.append(_results_section(results))
    if config:
        parts.append("<h2>Config</h2><details><summary>config.json</summary><pre>"
                     + html.escape(json.dumps(config, indent=2)) + "</pre></details>")
    return html_page(f"{run_name}: training report", "\n".join(["", *parts, ""]),
                     head=f"<meta name='{SCHEDULE_META}' content='{html.escape(json.dumps(schedule))}'>"
                     if schedule else "")


# What an inference command's results folder under <run>/results holds, by the file that command writes beside
# its page (images.RESULT_FILES: each gallery command drops the other's): interpolate's path.json, sample's
# grid.png, evaluate --epoch all's sweep.json, compare's compare.json. By the folder's name it was wrong for
# any --out (sample into results/interpolate_x was "interpolation"; a plain folder of inputs names its folder).
PAGE_KINDS = {"path.json": "interpolation", "grid.png": "samples", "sweep.json": "every checkpoint evaluated",
              "compare.json": "models compared"}


def page_kind(folder: Path) -> str:
    """What the index.html of a results folder is: the kind of the newest of PAGE_KINDS' files there (a
    command run into another's folder leaves that one's sweep.json or compare.json: the page is the last
    one's); with none (a sweep whose --json went elsewhere, a page of an older version), by the folder's
    name as runtime.results_name makes it."""
    found = []
    for name, what in PAGE_KINDS.items():
        try:
            if (f := folder / name).is_file():
                found.append((f.stat().st_mtime_ns, what))
        except FileNotFoundError:  # removed between the two looks: a sample starting there drops its grid.png, and
            pass                   # the training rewriting its report died of it (a reader never stops a training)
    if found:
        return max(found)[1]
    return ("every checkpoint evaluated" if folder.name.endswith("_sweep") else
            "interpolation" if folder.name.startswith("interpolate") else "samples")


def _natural(path: Path) -> list:
    return [int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", path.name)]  # (² is a digit)


def result_pages(run: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(folder, [(what, href)]) of each folder of <run>/results holding a page or an evaluation, by name, its
    numbers as numbers (test_epoch_2 before test_epoch_10): what `sample`, `evaluate` (eval.json), `evaluate --epoch
    all` and `interpolate` wrote for the run's checkpoints (a page's what: page_kind, from the folder's files);
    hrefs relative to the run folder."""
    folder = run / "results"
    out = []
    for d in sorted(folder.iterdir(), key=_natural) if folder.is_dir() else []:
        links = []
        if (d / "index.html").is_file():
            links.append((page_kind(d), quote(f"results/{d.name}/index.html")))
        if (d / "eval.json").is_file():
            links.append(("evaluation (eval.json)", quote(f"results/{d.name}/eval.json")))
        if links:
            out.append((d.name, links))
    return out


def _results_section(pages) -> str:
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td>"
                   + " · ".join(f"<a href='{href}'>{html.escape(what)}</a>" for what, href in links) + "</td></tr>"
                   for name, links in pages)
    return ("<h2>Results of its checkpoints</h2><p class='meta'>What sample, evaluate and interpolate wrote into "
            f"results/ (opened from the run folder).</p><table class='eval'>{rows}</table>")


# What only a live trainer knows of its run (the length its data makes, the split its grids show), kept in the page it
# writes for a rewrite by another command (sample, evaluate...), whose page said "step 60", not "step 60 of 60".
SCHEDULE = ("total_steps", "epochs", "grid_split")
SCHEDULE_META = "bicyclegan-schedule"


def _schedule_of(page: Path) -> dict:
    """The trainer's SCHEDULE as its last report.html recorded it; {} for a page without it or no page."""
    try:
        with open(page, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return {}
    m = re.search(f"<meta name='{SCHEDULE_META}' content='([^']*)'>", head)
    try:
        found = json.loads(html.unescape(m.group(1))) if m else {}
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if k in SCHEDULE} if isinstance(found, dict) else {}


def refresh_report(checkpoint) -> Path | None:
    """Rewrite the report of the run whose checkpoint an inference command read (its new results
    listed), where the checkpoint is a run's (RUN/checkpoints/*.pt of a run with a log); else nothing."""
    from .checkpoint import run_folder
    ckpt = Path(checkpoint).resolve()
    if ckpt.is_dir():
        run = run_folder(ckpt)
    else:
        run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    if run is None or not (run / "log.jsonl").is_file():
        return None
    return write_report(run)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def _embedded_grids(run: Path, cache: dict | None) -> list[tuple[int, str | None, str, float | str]]:
    """render_report's grids: the run's, MAX_GRIDS of them spread over it, encoded (grid_data_uri) with `cache`."""
    shown = spread(run_grids(run), MAX_GRIDS)
    # The latest grid at its own size: scaled down to MAX_GRID_WIDTH, a 256 px run's with 8 samples (2,840 px wide)
    # had its column titles at 36 % (4 px letters) and lost its images' detail. Not beyond
    # MAX_LATEST_WIDTH though: a 512 px run's grid (5,656 px) weighed 4 times a 256 px one's, and
    # with --load_size 1024 it would be 16 times. The earlier ones stay scaled down: all at full
    # size, a 256 px run's page of 6 grids weighed 22 MB, not 7.4 MB. Each links to its PNG, which
    # opens where the run folder is (opened or served: samples/ is beside).
    widths = [MAX_GRID_WIDTH] * (len(shown) - 1) + [MAX_LATEST_WIDTH]
    grids, keep = [], set()
    for p, w in zip(shown, widths):
        try:
            uri, scale = grid_data_uri(p, cache, w)
            keep.add(grid_key(p, w))  # (in the try: its stat() again)
        except FileNotFoundError:  # removed since the listing (a resume going back, in another process): not shown
            continue
        grids.append((grid_step(p), uri, quote(p.relative_to(run).as_posix()), scale))
    if cache is not None:
        # Only the grids shown stay encoded, as shown: a grid the spread has passed over never comes
        # back (the choice only thins out), nor does a latest grid at full size once a newer one is,
        # and keeping each one's URI grew the trainer by one grid per sample interval for the whole
        # run (2,000 grids of a 256 px run: gigabytes).
        for key in [k for k in cache if isinstance(k, tuple) and k not in keep]:
            del cache[key]
    return grids


RUN_MARKERS = ("config.json", "log.jsonl")  # what makes a folder a run's, for its report


def write_report(run_dir, *, status: dict | None = None, cache: dict | None = None) -> Path:
    """Write <run_dir>/report.html from the run's log.jsonl, samples/step_*.png, eval_log.jsonl,
    eval.json and config.json. status: {"step", "total_steps", "epoch", "epochs", "grid_split"} from a live trainer
    (default: the step and epoch from the log, the rest as the trainer's last page recorded them). cache: a dict
    kept between calls, so a grid is encoded once as the latest and once as an earlier one, and each log line parsed
    once."""
    run = Path(run_dir)
    if not run.is_dir():  # a mistyped folder would be made, a checkpoint file taken for a folder
        raise ConfigError(f"{run} is a file, not a run folder (the --out of a training)" if run.exists()
                          else f"run folder {run} does not exist (the --out of a training)")
    if status is None and not any((run / name).is_file() for name in RUN_MARKERS):
        # Another folder, the dataset's or a results folder, got a report.html of no run written into it. (A
        # training writes config.json as it starts; a live trainer, which gives its status, writes into its own
        # folder, config.json or not: Trainer.validate() called before train().)
        raise ConfigError(f"{run} is not a run folder: it holds no {' or '.join(RUN_MARKERS)} (the --out of a "
                          f"training holds them from its start)")
    log = cache.setdefault("log", LogCurves()) if cache is not None else LogCurves()
    evaluations = read_eval_log(run / "eval_log.jsonl")
    if not (run / "checkpoints" / "best.pt").is_file():
        # A resume from before the last best.pt removes it: the lines it marked name no file to ring.
        evaluations = [{k: v for k, v in r.items() if k != "best"} for r in evaluations]
    if status is None:
        status = _schedule_of(run / "report.html")
    page = render_report(run.resolve().name, log.update(run / "log.jsonl"), _embedded_grids(run, cache),
                         _read_json(run / "eval.json"), _read_json(run / "config.json"), status, evaluations,
                         result_pages(run))
    return write_text(run / "report.html", page, what="training report")


# -- TensorBoard -----------------------------------------------------------------------------------
def flat_hparams(config: dict, prefix: str = "") -> dict:
    """A nested config as TensorBoard hparams: dotted names, values bool/int/float/str (None -> "none")."""
    out = {}
    for k, v in config.items():
        name = prefix + k
        if isinstance(v, dict):
            out.update(flat_hparams(v, name + "."))
        elif v is None:
            out[name] = "none"
        elif isinstance(v, (bool, int, float, str)):
            out[name] = v
        else:
            out[name] = str(v)
    return out


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a log.jsonl column (one of a curve: not NOT_CHARTED)."""
    return f"train/{key}" if key in NOT_LOSSES else f"loss/{key}"


def tensorboard_writer():
    """torch's SummaryWriter, or the ConfigError that its package is missing (asked by the trainer before its first
    write: a resume refused for it had changed its run folder already)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}") from e
    return SummaryWriter


class TensorBoardLog:
    """Losses, learning rate and images/s per log interval, the sample grids and the config as
    hparams, in <run>/tensorboard (rank 0 only). purge_step: when resuming, hide what an earlier
    process logged from that step on (it is logged again), as log.jsonl is truncated."""

    def __init__(self, log_dir, config: dict, purge_step: int | None = None):
        self.log_dir = Path(log_dir)
        self._purge_step = purge_step
        self._writer = self._close = None
        self.hparams = flat_hparams(config)
        self._hparams_written = False

    def open(self):
        """torch's SummaryWriter, its event file opened (with purge_step's hiding of the steps logged again) at the
        first call, not as the log is made: a Trainer made and never trained, or whose start failed after making its
        log, held an open event file (which kept a refused start's run folder) and a writer thread."""
        if self._writer is None:
            self._writer = tensorboard_writer()(str(self.log_dir), purge_step=self._purge_step)
            # Closed once: by close(), else when dropped (a demo run whose final evaluation, which closes it, was
            # skipped: --no-eval). Every log_* call flushes, so an event file left open loses nothing meanwhile.
            self._close = weakref.finalize(self, _close_writer, self._writer)
        return self._writer

    writer = property(open)

    def log_row(self, row: dict) -> None:
        step = row["step"]
        tags = []
        for k, v in row.items():
            if k in NOT_CHARTED or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            self.writer.add_scalar(scalar_tag(k), v, step)
            tags.append(scalar_tag(k))
        if not self._hparams_written:
            # The hparams dashboard lists each run's config beside the last value of these tags.
            from torch.utils.tensorboard.summary import hparams
            metrics = {t: 0.0 for t in tags if t.startswith("loss/")}
            for summary in hparams(self.hparams, metrics):
                self.writer.file_writer.add_summary(summary, step)
            self._hparams_written = True
        self.writer.flush()

    def log_grid(self, step: int, path) -> None:
        import numpy as np
        with Image.open(path) as img:
            self.writer.add_image("samples", np.asarray(img.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def log_eval(self, result: dict, step: int, tag: str = "eval") -> None:
        """evaluate's measures as <tag>/<name> at `step`: eval/ at each --eval_every, final/ for the end of a
        demo run (its table's own protocol, 64 inputs x 10 z: under eval/ it was a second point at the last
        step, unlike the first when --eval_num or --eval_samples differ)."""
        for k, v in result.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in EVAL_SETTINGS:
                self.writer.add_scalar(f"{tag}/{k}", v, step)
        self.writer.flush()

    def close(self) -> None:
        """Close the event file (once; none where none was opened); a later log_* call opens a new one in the same
        folder."""
        if self._close is not None:
            self._close()


def _close_writer(writer) -> None:
    writer.close()
