"""What users look at besides the charts: the titles drawn into sample grids, measured in the grid's
pixels, and the head every HTML page the project writes shares (galleries, report, explorer).

The browser checks of the same pages (layout at a phone's width and a desktop's) are in
test_serve_browser.py, with the other tests that need Chromium."""
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from bicyclegan.engine import write_report
from bicyclegan.engine.images import grid_image, write_gallery
from bicyclegan.engine.serve import PAGE

NAMES = ["input", "ground truth", "encoded", "random z1", "random z10", "output"]
TILE = (0, 128, 255)  # a tile of (-1, 0, 1) in [-1, 1]; the titles' ink is grey (r = g = b): never this


def tiles(n, size):
    return torch.tensor([-1.0, 0.0, 1.0])[None, :, None, None].expand(n, 3, size, size)


def tile_spans(img) -> tuple[list[tuple[int, int]], int]:
    """The tiles' column ranges [start, end) and the first row of tiles, found from their colour
    (the canvas is white, the titles black on it)."""
    tile = (np.asarray(img) == TILE).all(axis=2)
    top = int(np.argmax(tile.any(axis=1)))
    cols = np.flatnonzero(tile[top])
    breaks = np.flatnonzero(np.diff(cols) > 1)
    starts, ends = np.r_[cols[0], cols[breaks + 1]], np.r_[cols[breaks], cols[-1]] + 1
    return list(zip(starts.tolist(), ends.tolist())), top


@pytest.mark.parametrize("size", [16, 24, 32, 33, 40, 47, 48, 64, 128, 256, 512])
def test_every_grid_title_fits_its_tile_with_room_before_the_next(size):
    # The demo's 64 px tiles: "ground truth" ended 6 px before "encoded" began, twice the ink gap
    # between its own words (3 px): it read as one phrase; 40 px tiles: "ground t" ran into the next.
    # Columns of text want a gutter of at least one em (the font's size, 10 px) between them.
    cols = [tiles(2, size)] * len(NAMES)
    em = ImageFont.load_default().size
    for j, name in enumerate(NAMES):  # one title at a time: its ink is then its own
        img = grid_image(cols, [name if k == j else "" for k in range(len(NAMES))])
        spans, top = tile_spans(img)
        assert len(spans) == len(NAMES)
        band = np.asarray(img.convert("L"))[:top]
        ys, xs = np.nonzero(band < 160)
        assert len(xs), (size, name)  # drawn at all
        start, end = spans[j]
        assert xs.min() >= start, (size, name)
        if j + 1 < len(spans):  # the next title starts where the next tile does
            assert spans[j + 1][0] - xs.max() - 1 >= em, (size, name, xs.max(), spans[j + 1][0])
        assert xs.max() < end, (size, name)  # within its own tile, the last one included
        assert ys.max() < top - 1, (size, name)  # not cut by the tile below: a blank row between


def test_a_title_that_fits_is_drawn_whole_on_one_line():
    font = ImageFont.load_default()
    img = grid_image([tiles(1, 256)] * 2, ["ground truth", ""])
    _, top = tile_spans(img)
    band = np.asarray(img.convert("L"))[:top]
    ys, xs = np.nonzero(band < 160)
    left, top, right, bottom = font.getbbox("ground truth")  # the font's own measure of the whole title
    assert xs.max() - xs.min() + 1 == pytest.approx(right - left, abs=1) and ys.max() < bottom + 1


@pytest.mark.parametrize("size", [32, 33, 40, 47, 63])
def test_a_title_too_wide_for_small_tiles_shows_all_of_its_words(size):
    # "ground truth" does not fit a 64 px tile with a gutter: both words must still show in full
    # (ink as much as the font draws for each word alone), not one of them hidden under the tiles.
    # 33-47 px images were drawn at their own size, and "ground" cut to "grou\u2026".
    font = ImageFont.load_default()
    img = grid_image([tiles(1, size)] * 3, ["", "ground truth", ""])
    _, top = tile_spans(img)
    ink = int((np.asarray(img.convert("L"))[:top] < 160).sum())
    want = sum(int((np.asarray(font.getmask(word)) > 95).sum()) for word in ("ground", "truth"))
    assert ink == pytest.approx(want, rel=0.02)


def test_titles_over_tiles_wider_than_256_px_grow_with_them():
    # A 512 px run's grid is shown at half size in the report: 10 px titles were 5 px there.
    def ink_box(size):
        img = grid_image([tiles(1, size)] * 2, ["ground truth", ""])
        _, top = tile_spans(img)
        ys, xs = np.nonzero(np.asarray(img.convert("L"))[:top] < 160)
        return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1

    (w256, h256), (w512, h512), (w1024, _) = ink_box(256), ink_box(512), ink_box(1024)
    assert w256 == pytest.approx(ImageFont.load_default().getlength("ground truth"), abs=2)  # 10 px as before
    assert w512 / w256 == pytest.approx(2, rel=0.1) and h512 / h256 == pytest.approx(2, rel=0.15)
    assert w1024 / w256 == pytest.approx(4, rel=0.1)
    # in proportion, not by whole factors: 15 px over 384 px tiles
    assert ink_box(384)[0] == pytest.approx(ImageFont.load_default(size=15).getlength("ground truth"), abs=2)


def test_a_title_too_wide_for_a_wide_tile_wraps_and_keeps_its_gap_in_its_own_size():
    # Over 512 px tiles titles are 20 px on 24 px lines, leaving 16 px (8 px scaled) and the 2 px pad
    # before the next tile. Fitted at 10 px, this title would be one line and run 180 px into the next tile.
    font = ImageFont.load_default(size=20)
    words = ["ground" * 6, "truth" * 6]
    assert ImageFont.load_default().getlength(" ".join(words)) < 512 - 16 < font.getlength(" ".join(words))
    img = grid_image([tiles(1, 512)] * 2, [" ".join(words), ""])
    spans, top = tile_spans(img)
    band = np.asarray(img.convert("L"))[:top] < 160
    rows = np.flatnonzero(band.any(axis=1))
    lines = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # runs of inked rows
    assert len(lines) == 2 and all(r.max() < 24 * (k + 1) for k, r in enumerate(lines))  # one word a line
    for word, r in zip(words, lines):
        xs = np.flatnonzero(band[r].any(axis=0))
        alone = Image.new("L", (600, 30), 255)  # the word drawn by PIL alone, measured as the grid is
        ImageDraw.Draw(alone).text((0, 0), word, fill=0, font=font)
        want = np.flatnonzero((np.asarray(alone) < 160).any(axis=0))
        assert xs.max() - xs.min() == want.max() - want.min()
    # a word too long for the tile is cut to leave the gap: 16 px and the pad before the next tile
    img = grid_image([tiles(1, 512)] * 2, ["x" * 80, ""])
    spans, top = tile_spans(img)
    xs = np.flatnonzero((np.asarray(img.convert("L"))[:top] < 160).any(axis=0))
    assert spans[1][0] - xs.max() - 1 >= 16 + 2


class Head(HTMLParser):
    def __init__(self):
        super().__init__()
        self.viewports = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and a.get("name") == "viewport":
            self.viewports.append(a.get("content"))


def pages(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")  # (a run folder: what a training writes first)
    yield "gallery", write_gallery(tmp_path / "g", [{"name": "x", "images": [("input", "x.png")]}], "t").read_text()
    yield "report", write_report(tmp_path / "run").read_text()
    yield "explorer", PAGE.read_text()


def test_every_page_is_laid_out_at_a_phones_width(tmp_path):
    # sample's and interpolate's galleries had no viewport tag: a phone drew them at 980 px shrunk to 42 %
    for what, page in pages(tmp_path):
        head = Head()
        head.feed(page)
        assert head.viewports == ["width=device-width, initial-scale=1"], what


def test_a_gallery_fetches_its_pictures_as_they_near_the_window(tmp_path):
    # sample's gallery of 2,000 inputs x 23 pictures kept Chromium busy 143 s fetching all 46,000 before the page
    # answered (tests/test_serve_browser.py measures the behaviour where Chromium is installed)
    rows = [{"name": "x", "images": [("input", "x.png"), ("anim", "x.gif"), ("video", "x.mp4")],
             "wide": [("strip", "s.png")]}]
    page = write_gallery(tmp_path / "g", rows, "t").read_text()
    tags = re.findall(r"<img [^>]*>", page)
    assert len(tags) == 3 and all(" loading='lazy'" in t for t in tags), tags
