"""Pictures of a model's outputs: the columns every view shows (input, ground truth, encoded, one
per random z), tensors to uint8, sample grids and an HTML gallery. Used by the trainer's sample
grids, `sample`, `evaluate`, `interpolate`, `compare` and the explorer page."""
from __future__ import annotations

import errno
import hashlib
import html
import json
import os
import unicodedata
from pathlib import Path
from urllib.parse import quote

import numpy as np
import torch
import torch.distributed as tdist
from PIL import Image, ImageDraw, ImageFont

from bicyclegan.pipelines.sharding import shard_range

from .config import check_bool
from .errors import OutputError
from .io import count_line, end_count_line, save_image, write_json, write_text
from .report import html_page


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> N x H x W x 3 uint8 (grayscale repeated to RGB)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x[:, :3].permute(0, 2, 3, 1).numpy()


GEN_BATCH = 16  # images per forward of G in sample_columns, where one column's rows are fewer


@torch.no_grad()
def nonfinite_said(cols, names) -> str | None:
    """Which of sample_columns' generated columns (all but the input and the ground truth) hold a value that is
    not finite (a model that overflowed: black images, measured as if real), as said in an error; else None."""
    bad = [n for c, n in zip(cols, names) if n not in ("input", "ground truth") and not torch.isfinite(c).all()]
    return None if not bad else bad[0] + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")


def sample_columns(model, A, B=None, z=None, *, n_samples: int = 5, encode: bool = True
                   ) -> tuple[list[torch.Tensor], list[str]]:
    """The columns of a sample view as N x C x H x W tensors, and their titles:
    input, [ground truth, [encoded: G(A, mu of E(B))]], then one column per z.

    z: n x nz codes shared by every row, or N x n x nz (one list per row); None: n_samples drawn
    now from N(0, I). encode=False leaves out the encoded column (the reference's --no_encode).
    Runs the sampling generator (the moving average of G when kept) in eval mode."""
    encode = check_bool("encode", encode)
    G = model.sampler
    # A as the networks take it (their device and dtype: a bf16 or float64 model was a torch error about the
    # bias's type), checked as generate checks it (numpy, CHW or uint8 were errors of torch's some layers down);
    # the outputs come back in A's own device and dtype, beside A and B.
    A_in = model._input(G, "sample_columns: A", A, model.cfg.model.input_nc)
    if B is not None:
        # The ground truth of A's rows: B of another count was said as z of the wrong shape (from G, of the
        # encoded column), or with encode=False not at all, as was one of another size or channels.
        N, _, H, W = A.shape
        want = (N, model.cfg.model.output_nc, H, W)
        if not torch.is_tensor(B) or tuple(B.shape) != want:
            got = tuple(B.shape) if torch.is_tensor(B) else type(B).__name__
            raise ValueError(f"sample_columns: B must be the ground truth of A's rows, a tensor of shape {want} "
                             f"(A: {tuple(A.shape)}; output_nc {want[1]}), got {got}")
    nz, N = model.cfg.model.nz, A.shape[0]
    if nz and z is not None and not (torch.is_tensor(z) and z.is_floating_point() and z.shape[-1:] == (nz,)
                                     and (z.dim() == 2 or z.dim() == 3 and z.shape[0] == N)):
        got = f"{tuple(z.shape)} {z.dtype}" if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"sample_columns: z must be n x {nz} float codes shared by the rows, or {N} x n x {nz} "
                         f"(a list per row of A), got {got}")

    def out(x):
        return x.to(A.device, A.dtype)
    was_training = model.training
    model.eval()
    try:
        cols = [A]
        if B is not None:
            cols.append(B)
            if encode and model.E is not None:
                cols.append(out(G(A_in, model.encode(B))))
        if nz:
            if z is None:
                z = model.z_random(n_samples)
            z = z.to(A_in.device, A_in.dtype)
            n_samples = n = z.shape[-2]  # (the codes given: their number)
            zs = z.transpose(0, 1) if z.dim() == 3 else z[:, None].expand(-1, N, -1)  # column i's codes: zs[i]
            # Several columns per forward where the rows are few: sample's one input took a forward per
            # code, 6.5 times the time of one forward of all 5 (32 px, CPU). Rows are independent in
            # eval mode (instance norm, batch norm's running statistics), so only the speed changes.
            k = max(1, GEN_BATCH // N)
            for i in range(0, n, k):
                m = min(k, n - i)
                cols += out(G(A_in.repeat(m, 1, 1, 1), zs[i:i + m].reshape(m * N, -1))).split(N)
        else:  # pix2pix: no code, one output
            cols.append(out(G(A_in, None)))
    finally:
        model.train(was_training)
    return cols, column_names(model, B is not None, n_samples, encode=encode)


def column_names(model, with_B: bool, n_samples: int, *, encode: bool = True) -> list[str]:
    """sample_columns' titles for inputs with or without B and n_samples codes, known before any is made (`sample`
    names the files of inputs written by an earlier call): input, [ground truth, [encoded]], then random z1..n
    (a model without z: output)."""
    names = ["input"]
    if with_B:
        names += ["ground truth", *(["encoded"] if encode and model.E is not None else [])]
    return names + ([f"random z{i + 1}" for i in range(n_samples)] if model.cfg.model.nz else ["output"])


LABEL_FONT = ImageFont.load_default()  # Pillow's own font (10 px): nothing to find on the system
LABEL_LINE = 12       # px per line of a column's title
LABEL_GAP = 8         # px a title leaves free at its tile's right: with the pad, 1 em (10 px) between titles
LABEL_TILE = 256      # tiles wider than this get titles in proportion (20 px over 512 px tiles)


def label_style(tile_w: int):
    """(font, line height, gap) for titles over tiles tile_w px wide: 10 px up to LABEL_TILE, larger in
    proportion beyond, so a 512 px run's grid, shown at half size in the report, keeps 10 px titles
    (drawn at 10 px they were 5 px there)."""
    if tile_w <= LABEL_TILE:
        return LABEL_FONT, LABEL_LINE, LABEL_GAP
    k = tile_w / LABEL_TILE
    return ImageFont.load_default(size=round(10 * k)), round(LABEL_LINE * k), round(LABEL_GAP * k)


def drawable(text: str, font=LABEL_FONT) -> str:
    """text as `font` draws it: Pillow's own font holds ASCII and a few signs, and the rest came out as boxes (a run
    named "café" or in another script, on compare.png): a letter it lacks as its unaccented one (é -> e), else '?'."""
    def mask(ch):
        m = font.getmask(ch)
        return m.size, bytes(m)

    missing = mask("\U0010ffff")  # a code point no font has a glyph for: what the font draws for one it lacks
    out = []
    for ch in text:
        if ch.isascii() or mask(ch) != missing:
            out.append(ch)
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(c.isascii() or mask(c) != missing for c in base) else "?")
    return "".join(out)


def fit_label(name: str, width: int, font=LABEL_FONT) -> list[str]:
    """A column's title as the lines that fit `width` px (drawable's letters): whole when it fits, else one word per
    line ("ground" over "truth" above a 64 px tile), a word still too wide cut with an ellipsis."""
    name = drawable(name, font)

    def fits(text):
        return font.getlength(text) <= width

    if fits(name):
        return [name]
    return [word if fits(word) else next((word[:k] + "\u2026" for k in range(len(word) - 1, 0, -1)
                                          if fits(word[:k] + "\u2026")), word[0])
            for word in name.split()]


def stretch(img: Image.Image, ratio: float) -> Image.Image:
    """Stretch to width:height = ratio x the original's (the reference's --aspect_ratio): wider above 1,
    taller below."""
    w, h = img.size
    if ratio > 1:
        return img.resize((int(w * ratio), h), Image.BICUBIC)
    if ratio < 1:
        return img.resize((w, int(h / ratio)), Image.BICUBIC)
    return img


PAD = 2  # white pixels between the tiles of a picture (a grid, compare's, an interpolation strip)


def grid_image(cols: list, names: list[str], aspect_ratio: float = 1.0) -> Image.Image:
    """Lay columns side by side under their titles; images under 64 px are enlarged (nearest, a whole
    factor) to at least 64 px, to be seen and to hold their titles (at 33-47 px, left as they were,
    "ground truth" and "encoded" were cut to "grou…" and "enco…"). Each title fits its tile
    (fit_label), on as many lines as the longest one needs, in label_style's size for the tile.
    aspect_ratio: each image stretched first, as `sample` writes its files (grid.png showed them square)."""
    return tile_grid([[stretch(Image.fromarray(tile), aspect_ratio) for tile in to_uint8(c)] for c in cols], names)


def tile_grid(imgs: list[list[Image.Image]], names: list[str]) -> Image.Image:
    """grid_image of its tiles as they are drawn (imgs: a list of PIL images per column, each stretched as its
    file is written), for `sample`, which draws grid.png from the files an earlier call wrote too."""
    n, (w, h) = len(imgs[0]), imgs[0][0].size
    scale = max(1, -(-64 // max(h, 1)))
    ch, cw = h * scale, w * scale
    font, line_h, gap = label_style(cw)
    labels = [fit_label(name.replace("random ", ""), cw - gap, font) for name in names]
    title_h = line_h * max(len(lines) for lines in labels)
    W = len(imgs) * (cw + PAD) + PAD
    H = title_h + n * (ch + PAD) + PAD
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, (col, lines) in enumerate(zip(imgs, labels)):
        x0 = PAD + j * (cw + PAD)
        for k, line in enumerate(lines):
            draw.text((x0, k * line_h), line, fill=(0, 0, 0), font=font)
        for i in range(n):
            tile = col[i]
            if scale > 1:
                tile = tile.resize((cw, ch), Image.NEAREST)
            canvas.paste(tile, (x0, title_h + PAD + i * (ch + PAD)))
    return canvas


def save_grid(model, A, B, z, path, *more) -> Path:
    """The sample grid of A (and B) with the codes z, written to `path` and each of `more` (drawn once: the training's
    step_N.png and latest.png ran G's forwards twice); returns `path`."""
    img = grid_image(*sample_columns(model, A, B, z))
    for p in (path, *more):
        save_image(img, p, what="sample grid")
    return Path(path)


def _media(path: str, alt: str) -> str:
    """An image (PNG, animated GIF) or, for .mp4 files, a looping muted video with its controls (to pause it);
    alt: what it shows, in words (a screen reader read the file's name). What moves (GIF, video) is not shown
    where the reader's system asks for reduced motion (a note instead: GALLERY_STYLE): a gallery of endless
    animations that cannot be paused is hard to read for some, and the strip beside shows every frame still."""
    # A '#', '?' or '%' in a file name would cut the URL short; quoted as the name's bytes, a name that is
    # not UTF-8 (os.fsdecode's surrogates, which quote could not encode) is the file's own name.
    src, alt = html.escape(quote(os.fsencode(path))), html.escape(alt)
    note = "<span class='still'>(not played: your system asks for reduced motion)</span>"
    if path.endswith(".mp4"):
        return (f"<span class='moving'><video src='{src}' aria-label='{alt}' autoplay loop muted playsinline controls>"
                f"</video>{note}</span>")
    # Fetched as they near the window (loading='lazy'): a sample gallery of 2,000 inputs x 23 pictures kept
    # headless Chromium busy 143 s fetching all 46,000 before it answered at all (10,000 inputs: 230,000).
    if path.endswith(".gif"):
        return f"<span class='moving'><img src='{src}' alt='{alt}' loading='lazy'>{note}</span>"
    return f"<img src='{src}' alt='{alt}' loading='lazy'>"


class OutputNames:
    """A file-name stem per input, unique within one results folder: inputs of nested folders
    (a/1.png, b/1.png) or of one name in two formats (1.jpg, 1.png) would overwrite each other's
    outputs; the second gets 1-2, the third 1-3."""

    def __init__(self):
        self.used: set[str] = set()

    # A file name holds at most 255 bytes: a longer input's stem (239 bytes and more with _ground_truth.png) was a
    # traceback mid-call, its outputs half written. Cut to this, with a digest of the whole to keep them apart.
    MAX_STEM_BYTES = 200

    def __call__(self, path) -> str:
        stem, n = self.short(Path(path).stem), 1
        name = stem
        # Apart as macOS's and Windows' file systems tell names apart, ignoring case and Unicode's forms: Cat.png and
        # cat.jpg wrote Cat_input.png and cat_input.png, one file there, the second input's images over the first's.
        while self._key(name) in self.used:
            n += 1
            name = f"{stem}-{n}"
        self.used.add(self._key(name))
        return name

    @classmethod
    def short(cls, stem: str) -> str:
        """stem, or where it is longer than MAX_STEM_BYTES its first characters and a digest of it whole."""
        whole = stem.encode("utf-8", "surrogateescape")  # (a name that is not UTF-8: os.fsdecode's surrogates)
        if len(whole) <= cls.MAX_STEM_BYTES:
            return stem
        head, size = [], 0
        for ch in stem:
            size += len(ch.encode("utf-8", "surrogateescape"))
            if size > cls.MAX_STEM_BYTES - 9:
                break
            head.append(ch)
        return f"{''.join(head)}~{hashlib.sha256(whole).hexdigest()[:8]}"

    @staticmethod
    def _key(name: str) -> str:
        return unicodedata.normalize("NFC", name).casefold()


# The files besides images/ that `sample` (grid.png) and `interpolate` (path.json) write into a results folder.
# Each drops them all, the other command's too: its prune_outputs removes the other's images (one list of
# the images written, .images.json), and a grid.png or path.json left beside the new gallery was the other
# command's, stale, shown as this call's (the printed grid: path, the folder's listing).
# And sample's record of what its images are made from (SAMPLE_RECORD), dropped as a call of either command starts
# writing: an image the other command wrote under one of its names (interpolate's 00000_input.png) is not its own.
SAMPLE_RECORD = ".sample.json"
RESULT_FILES = ("index.html", "grid.png", "path.json", SAMPLE_RECORD)


# Whose results a folder holds, by the files each command writes beside its index.html (report.PAGE_KINDS's, with
# sample's record and the list of images sample and interpolate wrote).
RESULTS_OF = {"grid.png": "sample", SAMPLE_RECORD: "sample", "path.json": "interpolate",
              ".images.json": "sample or interpolate", "sweep.json": "evaluate --epoch all",
              "compare.json": "compare"}


def refuse_others_results(out, command: str, own=("sample", "interpolate"), *, own_title: str | None = None,
                          where: str = "--out ", instead: str | None = None) -> Path:
    """`out`, unless it holds the results of a command other than `own` (sample and interpolate replace each other's:
    drop_gallery), or an index.html none of them wrote (a page of the user's own): `command`'s index.html would
    replace that command's page beside its files (`compare --out RUN/results/test` replaced sample's gallery, its
    images left unshown; `sample --out RUN/results/val_sweep` the sweep's page) or the user's page. own_title: how
    the <title> of `own`'s page ends, which tells it alone of its files (the sweep's, its sweep.json sent elsewhere
    by --json). where, instead: the refusal's name of the folder and what it says to do (a command with no --out)."""
    out = Path(out)
    found = [(out / name, whose) for name, whose in RESULTS_OF.items() if (out / name).is_file()]
    if other := next(((f, whose) for f, whose in found if not any(o in whose for o in own)), None):
        said = f"{other[1]}'s results ({other[0]})"
    elif not found and (page := out / "index.html").is_file() and not (own_title and _titled(page, own_title)):
        said = f"an index.html that no {' or '.join(own)} wrote ({page})"
    else:
        return out
    raise OutputError(f"{where}{out} holds {said}, whose page {command}'s index.html would replace; "
                      + (instead or f"give {command} a folder of its own (--out; out in Python)"))


def _titled(page: Path, ending: str) -> bool:
    """Whether the page's <title> ends with `ending` (as html_page escapes it); a page that cannot be read does not."""
    try:
        with open(page, encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)  # (the title is in the head, ahead of the body)
    except OSError:
        return False
    return f"{html.escape(ending)}</title>" in head


def drop_gallery(out_dir, names=RESULT_FILES) -> None:
    """Remove an earlier call's gallery files (index.html ...) from a results folder, as a call starts
    writing its own images there: stopped part-way (Ctrl-C, an input refused further on), it left
    that gallery showing its new images among the earlier call's as one whole result."""
    for name in names:
        if (Path(out_dir) / name).is_file():
            (Path(out_dir) / name).unlink()


OUTPUT_SUFFIXES = (".png", ".gif", ".mp4")  # what sample and interpolate write into a results folder's images/


def prune_outputs(folder, keep) -> None:
    """Remove the files of folder (a results folder's images/) that an earlier call wrote and this call
    did not: a run into the folder of an earlier, larger one would otherwise leave that run's images
    beside its own (the gallery shows only the new ones). Which files a call wrote is kept beside the
    folder (written_list); no other file is touched: every PNG, GIF and MP4 there went, the user's
    own pictures and, with --out's images/ the input folder, the inputs themselves."""
    keep = sorted({Path(p).name for p in keep})
    folder = Path(folder)
    # Only what a call writes (images, GIFs, videos), and not through a linked folder: a results folder that came
    # with someone's run folder could list a thesis.txt beside an images/ linked to the user's documents.
    earlier = [] if folder.is_symlink() else _written(folder)
    for name in set(earlier) - set(keep):
        try:  # (a name listed by a call that failed to write it, too long to be a file: every later call failed here)
            if name == Path(name).name and Path(name).suffix in OUTPUT_SUFFIXES and (folder / name).is_file():
                (folder / name).unlink(missing_ok=True)
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                raise
    write_json(written_list(folder), keep, what="list of written images")


def claim_outputs(folder, names) -> None:
    """Add `names`, the files a call may write into folder (a results folder's images/), to the list of written
    files before the first is written: a call stopped part-way (Ctrl-C, SIGTERM, a full disk) left its files
    unlisted, and the next call into the folder, removing only what the list named, kept them beside its own
    (442 images of a stopped call beside the next call's 20). prune_outputs then cuts the list to what was
    written."""
    write_json(written_list(folder), sorted({*_written(folder), *(Path(n).name for n in names)}),
               what="list of written images")


def _written(folder) -> list[str]:
    """The names written_list holds for folder: none for a new folder, one of a version that kept no list, or a
    list that cannot be read."""
    try:
        earlier = json.loads(written_list(folder).read_text())
    except (OSError, ValueError):
        return []
    return [n for n in earlier if isinstance(n, str)] if isinstance(earlier, list) else []


def written_list(folder) -> Path:
    """<results>/.images.json for <results>/images: the files the last call wrote there."""
    return Path(folder).with_name(f".{Path(folder).name}.json")


# Pictures are shown at their own size or enlarged (pixelated: tiny images stay sharp), never shrunk:
# shrinking with pixelated scaling drops pixel rows (a grid's titles became unreadable on a phone). What
# is wider than the window scrolls sideways in its own box. The report and the explorer page do the same.
# A row's name wraps within 10em, anywhere (a 40-character name without spaces pushed every picture off a phone's
# screen).
GALLERY_STYLE = ("body{font-family:sans-serif} h1{overflow-wrap:anywhere} td{text-align:center;font-size:12px} "
                 "th{overflow-wrap:anywhere;max-width:10em} "
                 "img,video{image-rendering:pixelated;min-width:96px} td.wide{text-align:left;padding-bottom:1em} "
                 ".scroll{overflow-x:auto;max-width:100%} "
                 # width 0 takes the strip out of the table's width (it spread the row's pictures over
                 # the window); min-width then gives it the table's width to scroll in
                 "td.wide .scroll{width:0;min-width:100%} .still{display:none} "
                 "@media (prefers-reduced-motion:reduce){.moving img,.moving video{display:none} "
                 ".still{display:inline}}")


def write_gallery(out_dir, rows: list[dict], title: str) -> Path:
    """index.html with one row per input: {"name": str, "images": [(caption, path relative to out_dir)]};
    .mp4 paths are shown as videos. A row's optional "wide": [(caption, path)] (an interpolation strip,
    thousands of pixels wide) goes on a line of its own under the row's images, as wide as the table
    and scrolling sideways within it: as a cell of the row it pushed the row's other pictures and its
    own caption thousands of pixels off the screen. A table wider than the window (a phone) scrolls
    sideways in its own box."""
    parts = ["", f"<h1>{html.escape(title)}</h1>", "<div class='scroll'><table>"]
    for row in rows:
        name = row["name"]
        cells = "".join(f"<td>{_media(p, name + ': ' + c)}<br>{html.escape(c)}</td>" for c, p in row["images"])
        parts.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
        for c, p in row.get("wide", ()):
            parts.append(f"<tr class='wide'><td class='wide' colspan='{len(row['images']) + 1}'>"
                         f"<div class='scroll'>{_media(p, name + ': ' + c)}</div>{html.escape(c)}</td></tr>")
    parts += ["</table></div>", ""]
    # An input's name that is not UTF-8 (os.fsdecode's surrogates, which UTF-8 cannot write) is shown with a
    # replacement character for its undecodable bytes; its pictures' addresses keep its own bytes (_media).
    page = html_page(title, "\n".join(parts), style=GALLERY_STYLE)
    page = page.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return write_text(Path(out_dir) / "index.html", page, what="gallery")


def write_shares(dist, total: int, make, write, *, first=None, label: str | None = None, land=None
                 ) -> list | None:
    """The per-input work of `sample` and `interpolate`, shared among the ranks of `dist` (a Dist; one process:
    all of it): rank r takes the r-th contiguous share of the `total` inputs (sharding.shard_range, as evaluate's)
    and, for each input i of it, calls make(i) (the outputs; None: nothing to write) and then write(i, made).
    Every rank goes through as many rounds as the largest share has inputs, and a failure of make or write on one
    rank is every rank's (each_decides) before any rank goes on. first: rank 0's work once every rank has made
    its first input, before any file of the call is written (an earlier call's gallery dropped: a refusal until
    then leaves it whole). label: rank 0 prints count_line(label, the inputs every rank has done, total) (the
    rounds go in step). land: called on every rank after its last write, in a round of its own (a write() that
    leaves its files in flight while the next input is made ends the last of them there, its failure every rank's).
    Returns on rank 0 write()'s values of every rank, in the inputs' order; None elsewhere."""
    lo, hi = shard_range(total, dist.rank, dist.world)
    sizes = [len(range(*shard_range(total, k, dist.world))) for k in range(dist.world)]
    written = []
    for r in range(max(sizes)):
        i, made = lo + r, []

        def make_mine():
            if i < hi:
                made.append(make(i))

        def write_mine():
            if made and made[0] is not None:
                written.append(write(i, made[0]))
        dist.each_decides(make_mine)
        if r == 0 and first is not None:
            dist.main_decides(first)
        dist.each_decides(write_mine)
        if label and dist.main:
            count_line(label, sum(min(r + 1, n) for n in sizes), total)
    if land is not None:
        dist.each_decides(land)
    if label and dist.main:
        end_count_line()
    if not dist.grouped:
        return written
    shares = [None] * dist.world if dist.main else None
    tdist.gather_object(written, shares, dst=0)  # (every rank's files are written by now)
    return [w for share in shares for w in share] if dist.main else None
