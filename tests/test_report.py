"""report.html (inline SVG curves, embedded grids, evaluation) and TensorBoard logging of a run.

Expected values come from the files the tests write themselves (log rows, grid PNGs, eval.json) or
from the run's own log.jsonl and grids, read back independently of the report code; TensorBoard's
event files are read with TensorBoard's own EventAccumulator.
"""
import base64
import html
import io
import json
import math
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import TINY
from tiny import tiny_cfg as shared_tiny_cfg

from bicyclegan.engine import ConfigError, write_report
from bicyclegan.engine import report as report_mod
from bicyclegan.engine.report import (
    CHART_H,
    CHART_W,
    MAX_BUCKETS,
    MAX_GRIDS,
    PAD_B,
    PAD_L,
    PAD_R,
    PAD_T,
    Envelope,
    LogCurves,
    spread,
    svg_chart,
    ticks,
)
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import make_demo_dataset

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=8, n_test=4, size=32, seed=0)


def tiny_cfg(out, root, **kw):
    return shared_tiny_cfg(out, root, **{"sample_every": 2, "save_every": 2, **kw})


def polyline(svg: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)  # also proves the chart is well-formed XML
    pts = root.find(f"{SVG}polyline").get("points").split()
    return [tuple(map(float, p.split(","))) for p in pts]


def embedded_images(page: str) -> list[tuple[str, bytes]]:
    """(caption, PNG bytes) of each grid figure in a report."""
    found = re.findall(r"<img src='data:image/png;base64,([^']+)' alt='samples at step (\d+)'>", page)
    return [(step, base64.b64decode(data)) for data, step in found]


# -- the pieces ----------------------------------------------------------------------------------------
def test_chart_maps_steps_and_values_onto_the_plot_box():
    svg = svg_chart("G_L1", [10, 20, 30], [4.0, 2.0, 3.0])
    left, right, top, bottom = PAD_L, CHART_W - PAD_R, PAD_T, CHART_H - PAD_B
    # first step at the left edge, last at the right; max value at the top, min at the bottom
    got = [c for point in polyline(svg) for c in point]
    assert got == pytest.approx([left, top, (left + right) / 2, bottom, right, (top + bottom) / 2], abs=0.06)
    assert "G_L1" in svg and ">3<" in svg  # the title carries the latest value


def test_chart_leaves_out_what_it_cannot_draw():
    assert "no finite values" in svg_chart("D", [], [])
    assert len(polyline(svg_chart("flat", [1, 2], [5.0, 5.0]))) == 2  # a constant is drawn, not divided by 0
    # All zero (a coverage of 0 early on): an axis from 0 to 1, the curve at its foot; it had ticks down to -1
    zero = ET.fromstring(svg_chart("coverage", [1, 2], [0.0, 0.0]))
    labels = [float(t.text) for t in zero.iter(f"{SVG}text") if t.get("class") == "yl"]
    assert min(labels) == 0 and max(labels) == 1
    bottom = CHART_H - PAD_B
    assert [y for _, y in polyline(svg_chart("coverage", [1, 2], [0.0, 0.0]))] == pytest.approx([bottom] * 2)


def test_a_long_log_is_drawn_as_an_envelope_of_bounded_size_keeping_spikes_and_the_latest_value(tmp_path):
    # 400 means of consecutive runs: a 20,000-row log's spike of 50 became 0.5 + 50 / 50, the noise
    # band between 0 and 1 a flat 0.5, and LogCurves kept every row (114 MiB for 300,000 rows).
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "y": float(s % 2)} for s in range(1, 20_001)]
    rows[12_344]["y"] = 50.0  # step 12,345
    rows[-1]["y"] = 0.25
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = LogCurves().update(log)
    xs, ys = curves.curve("y")
    assert len(xs) <= 2 * MAX_BUCKETS + 1 and len(curves.curves["y"].buckets) <= MAX_BUCKETS
    assert xs == sorted(xs)
    assert set(ys) == {0.0, 1.0, 50.0, 0.25}  # the band's edges, the spike and the latest: no mean
    assert (12_345, 50.0) in zip(xs, ys) and (xs[-1], ys[-1]) == (20_000, 0.25)
    pts = polyline(curves.chart("y"))
    assert len(pts) == len(xs) and min(y for _, y in pts) == pytest.approx(PAD_T, abs=0.06)  # the spike on top
    assert ">0.25</tspan>" in curves.chart("y")
    # drawn directly, a long series is bounded the same way
    assert polyline(svg_chart("y", [r["step"] for r in rows], [r["y"] for r in rows])) == pts
    # read incrementally, 50 rows at a time at the end, the same curve as read at once
    log.write_text("".join(json.dumps(r) + "\n" for r in rows[:-50]))
    again = LogCurves().update(log)
    with open(log, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows[-50:]))
    assert again.update(log).curve("y") == (xs, ys)


def test_the_log_is_read_in_pieces_as_it_would_be_read_whole(tmp_path, monkeypatch):
    # A command's first report read a long run's whole log.jsonl at once (a million lines: 1.1 GB held).
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "y": s / 7, "note": "é" * (s % 5)} for s in range(1, 400)]
    rows[100]["y"] = None  # a value that was not finite
    log.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + '{"step": 400, "y"')
    monkeypatch.setattr(report_mod, "LOG_CHUNK", 37)  # lines cut anywhere, in an "é" too
    pieces = LogCurves().update(log)
    assert pieces.offset == log.stat().st_size - len('{"step": 400, "y"')  # the line cut short waits
    assert pieces.curve("y") == ([r["step"] for r in rows if r["y"] is not None],
                                 [r["y"] for r in rows if r["y"] is not None])
    assert pieces.last == rows[-1] and pieces.steps == (1, 399)
    with open(log, "a") as f:
        f.write(': 1.5}\n')
    assert pieces.update(log).last == {"step": 400, "y": 1.5} and pieces.steps == (1, 400)


def envelope_by_numpy(xs: np.ndarray, ys: np.ndarray) -> list[tuple[int, float]]:
    """An envelope's points from the whole series at once: buckets of the smallest power-of-two
    width that leaves at most MAX_BUCKETS of them, each its first lowest and first highest point in
    step order, then the latest."""
    width = 1
    while len(np.unique(xs // width)) > MAX_BUCKETS:
        width *= 2
    want = []
    for k in np.unique(xs // width):
        i = np.flatnonzero(xs // width == k)
        lo, hi = i[np.argmin(ys[i])], i[np.argmax(ys[i])]
        want += [(int(xs[j]), float(ys[j])) for j in sorted({lo, hi})]
    if (int(xs[-1]), float(ys[-1])) not in want[-2:]:  # the latest, unless it is its bucket's lowest or highest
        want.append((int(xs[-1]), float(ys[-1])))
    return want


def test_the_envelope_holds_each_buckets_lowest_and_highest_value_in_step_order():
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.integers(1, 6, 5000))
    ys = np.round(rng.normal(size=5000), 1)  # ties: the first lowest or highest is kept
    # and a series whose last point merged its bucket into the one before: steps 2 to 514 fill 257
    # buckets of 2 steps at 514, so buckets become 4 wide and the last holds 512, 513 and 514
    ends_merging = np.arange(2, 515)
    for xs, ys in ((xs, ys), (ends_merging, np.where(ends_merging < 514, ends_merging % 2, 0.5))):
        assert list(zip(*Envelope.of(xs.tolist(), ys.tolist()).points())) == envelope_by_numpy(xs, ys)
    assert Envelope.of(ends_merging.tolist(), ends_merging.tolist()).width == 4
    # a short series is every point as it is, up to MAX_BUCKETS steps; one step more halves it
    assert Envelope.of([3, 5, 9], [1.0, 0.5, 2.0]).points() == ([3, 5, 9], [1.0, 0.5, 2.0])
    steps = list(range(MAX_BUCKETS))
    whole = Envelope.of(steps, [float(s % 3) for s in steps])
    assert whole.width == 1 and whole.points() == (steps, [float(s % 3) for s in steps])
    assert Envelope.of(steps + [MAX_BUCKETS], [0.0] * (MAX_BUCKETS + 1)).width == 2


@pytest.mark.parametrize("lo, hi, want", [(0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
                                          (0.013, 0.061, [0.02, 0.03, 0.04, 0.05, 0.06]),
                                          (-3, 7, [-2, 0, 2, 4, 6]), (5, 5, [5])])
def test_ticks_are_round_values_inside_the_range(lo, hi, want):
    assert ticks(lo, hi) == pytest.approx(want)


def test_log_is_read_incrementally_skipping_a_line_cut_short_and_nulls(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "G_L1": 2.0, "lr": 1}\n{"step": 2, "G_L1": null, "diverged": true}\n{"step": 3, "G_')
    curves = LogCurves().update(log)
    assert curves.curve("G_L1") == ([1], [2.0]) and curves.losses() == ["G_L1"] and curves.diverged
    assert curves.last["step"] == 2
    # The curve ends at the last finite value; the title says the latest one was not finite.
    assert curves.not_finite == {"G_L1": 2} and ">not finite at step 2</tspan>" in curves.chart("G_L1")
    assert ">2</tspan>" not in curves.chart("G_L1") and ">1</tspan>" in curves.chart("lr")
    with open(log, "a") as f:  # the line being written is finished, and another added
        f.write('L1": 4.0}\n{"step": 4, "G_L1": 5.0}\n')
    assert curves.update(log).curve("G_L1") == ([1, 3, 4], [2.0, 4.0, 5.0])
    assert curves.not_finite == {} and ">5</tspan>" in curves.chart("G_L1")
    log.write_text('{"step": 1, "G_L1": 7.0}\n')  # truncated by a resume: read again from the start
    assert curves.update(log).curve("G_L1") == ([1], [7.0]) and not curves.diverged
    for step in (2, 3, 4):  # lines added one update at a time: each read once, from where the last ended
        with open(log, "a") as f:
            f.write(json.dumps({"step": step, "G_L1": float(step)}) + "\n")
        assert curves.update(log).curve("G_L1") == (list(range(1, step + 1)), [7.0, *map(float, range(2, step + 1))])


def read_state(curves: LogCurves) -> tuple:
    """All that the page draws or says of a LogCurves (its charts are drawn from these alone)."""
    return (list(curves.columns), {k: curves.curve(k) for k in curves.columns}, curves.last, curves.steps,
            curves.diverged_at, curves.not_finite)


@pytest.mark.parametrize("rewrite", ["replaced", "in place"])
def test_a_log_rewritten_and_grown_past_what_was_read_is_read_again_from_its_start(tmp_path, rewrite):
    # A resume cuts log.jsonl into a new file and appends to it: a LogCurves kept across that (write_report's cache)
    # went on from its old offset once the new log had grown past it, mid-line, keeping the abandoned steps' values.
    log = tmp_path / "log.jsonl"
    first = [{"step": s, "epoch": 0, "G_L1": 10.0 + s} for s in range(1, 11)]
    log.write_text("".join(json.dumps(r) + "\n" for r in first))
    curves = LogCurves().update(log)
    # the lines again from step 5, as long as those they replace: one ends where the last line read ended
    again = (first[:4] + [{"step": s, "epoch": 0, "G_L1": 30.0 + s} for s in range(5, 11)]
             + [{"step": s, "epoch": 0, "G_L1": 30.0 + s, "kl": s / 8} for s in range(11, 16)])
    text = "".join(json.dumps(r) + "\n" for r in again)
    if rewrite == "replaced":  # as the resume's atomic_write
        (tmp_path / "new").write_text(text)
        (tmp_path / "new").replace(log)
    else:  # the same file cut and written again
        with open(log, "r+") as f:
            f.truncate(0)
            f.write(text)
    assert log.stat().st_size > curves.offset
    curves.update(log)
    assert curves.curve("G_L1") == ([r["step"] for r in again], [r["G_L1"] for r in again])
    assert curves.curve("kl") == (list(range(11, 16)), [s / 8 for s in range(11, 16)])
    assert curves.last == again[-1] and curves.steps == (1, 15)
    assert read_state(curves) == read_state(LogCurves().update(log))


def test_a_log_read_as_it_grows_cut_anywhere_is_read_as_it_is_whole(tmp_path, monkeypatch):
    # Each update reads the bytes added since the last: cut at any byte (in a line, in an "é", in a line of another
    # version's or no trainer's), in chunks of a few bytes, the curves are those of one reading of the whole log.
    monkeypatch.setattr(report_mod, "LOG_CHUNK", 23)
    monkeypatch.setattr(report_mod, "MAX_TAIL", 16)  # (lines longer than the bytes checked of the last one)
    parsed = []  # the bytes given to be parsed: each line's once, never read again from the start
    add = LogCurves._add
    monkeypatch.setattr(LogCurves, "_add", lambda self, text: parsed.append(len(text)) or add(self, text))
    rows = [{"step": 1, "epoch": 0, "lr": 2e-4, "G_L1": 3.0, "note": "é"},
            {"step": 2, "G_L1": 2.5, "D_A": 0.7},  # an earlier version's: no epoch, another loss's name
            {"step": 3, "epoch": 0, "lr": 2e-4, "G_L1": None, "diverged": True},
            {"step": 4, "epoch": "x", "G_L1": 9.0},  # no trainer's: left out
            {"step": 5, "epoch": 1, "lr": 1e-4, "G_L1": 1.5, "kl": 0}]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    data = b"\n".join(lines[:2] + [b"", b"[1, 2]", b"\xff{not json", *lines[2:]]) + b"\n" + b'{"step": 6, "G_L1"'
    log = tmp_path / "log.jsonl"
    log.write_bytes(data)
    whole = LogCurves().update(log)
    # (known answers: the rows' finite values, the last row of a whole step and epoch, the step that diverged)
    assert whole.curve("G_L1") == ([1, 2, 5], [3.0, 2.5, 1.5]) and whole.curve("kl") == ([5], [0.0])
    assert whole.last == rows[-1] and whole.steps == (1, 5) and whole.diverged_at == 3
    want = read_state(whole)
    for cut in range(len(data) + 1):
        log.write_bytes(data[:cut])
        parsed.clear()
        curves = LogCurves().update(log)
        log.write_bytes(data)
        assert read_state(curves.update(log)) == want, cut
        assert sum(parsed) == data.rindex(b"\n") + 1, cut
    for cuts in ((5, 60, 61), (90, 91, 150), (0, 140, len(data) - 3)):  # three updates, and a fourth of nothing
        curves = LogCurves()
        for cut in cuts:
            log.write_bytes(data[:cut])
            curves.update(log)
        log.write_bytes(data)
        assert read_state(curves.update(log)) == read_state(curves.update(log)) == want, cuts


def test_a_log_line_whose_epoch_is_no_number_is_skipped_not_the_page(tmp_path):
    # A line no trainer wrote ("epoch": "x"): the page's "x" + 1 was a TypeError after sample had written its results.
    run, _ = fake_run(tmp_path)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 21, "epoch": "x", "G_L1": 9.0}\n')
    assert "class='meta'>step 20 (epoch 1) · " in write_report(run).read_text()


def test_a_number_past_a_floats_range_is_left_out_not_the_page(tmp_path):
    # JSON's ints have no bound: a line no trainer wrote with a 400-digit step or value (log.jsonl, eval_log.jsonl,
    # eval.json) made the page an OverflowError, after sample or evaluate had written its results.
    run, _ = fake_run(tmp_path)
    huge = 10 ** 400
    with open(run / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": huge, "epoch": 0, "G_L1": 1.0}) + "\n")
        f.write(json.dumps({"step": 21, "epoch": 0, "G_L1": huge, "D": 0.25}) + "\n")
    (run / "eval_log.jsonl").write_text(json.dumps({"step": huge, "l1": 3.0}) + "\n"
                                        + json.dumps({"step": 20, "l1": 0.5, "fid": huge}) + "\n")
    (run / "eval.json").write_text(json.dumps({"coverage": 0.5, "fid": huge}))
    page = write_report(run).read_text()
    assert "class='meta'>step 21 (epoch 1) · " in page
    curves = LogCurves().update(run / "log.jsonl")
    assert curves.steps == (1, 21) and curves.curve("D")[0][-1] == 21
    assert curves.curve("G_L1") == (list(range(1, 21)), [5.0 - s / 10 for s in range(1, 21)])  # (fake_run's rows)
    assert "aria-label=\"l1: 0.5, steps 20 to 20" in page and "aria-label=\"FID" not in page


# -- the page ------------------------------------------------------------------------------------------
def fake_run(tmp_path, n_grids=3, width=40):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    rows = [{"step": s, "epoch": 0, "lr": 2e-4, "img_per_s": 10.0 + s, "G_L1": 5.0 - s / 10, "D": 0.5}
            for s in range(1, 21)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    grids = {}
    for k in range(n_grids):
        step = (k + 1) * 100
        img = Image.new("RGB", (width, 20), (k * 7 % 256, 50, 200))
        img.save(run / "samples" / f"step_{step:07d}.png")
        grids[step] = np.asarray(img)
    Image.new("RGB", (width, 20)).save(run / "samples" / "latest.png")  # not a step: never embedded
    (run / "eval.json").write_text(json.dumps({"variant": "bicycle", "coverage": 0.6021, "histogram": [3, 4]}))
    (run / "config.json").write_text(json.dumps({"variant": "bicycle", "model": {"ngf": 4}}))
    return run, grids


def test_report_holds_curves_grids_and_evaluation_and_nothing_external(tmp_path):
    run, grids = fake_run(tmp_path)
    page = write_report(run).read_text()
    for loss in ("G_L1", "D"):
        assert f">{loss} <tspan" in page
    assert "learning rate" in page and "images/s" in page
    imgs = embedded_images(page)
    assert [int(s) for s, _ in imgs] == [300, 200, 100]  # the latest first, then newest to oldest
    for step, data in imgs:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), grids[int(step)])
    assert "<th title='coverage'>palette coverage</th><td>0.6021</td>" in page and "<td>3 4</td>" in page
    assert "step 20" in page and "variant bicycle" in page
    # self-contained: every src is a data: URI and nothing is fetched from elsewhere
    assert all(src.startswith("data:") for src in re.findall(r"src='([^']*)'", page))
    assert "<script" not in page and "<link" not in page and "url(" not in page
    # a phone lays it out at its own width, not at 980 px shrunk to 40 % (5 px text)
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page


def test_an_fp16_runs_skipped_steps_are_charted_as_a_count_not_as_a_loss(tmp_path):
    # log.jsonl's amp_skipped (--amp fp16: the steps the GradScaler skipped) was drawn among the losses, on a log axis
    run, _ = fake_run(tmp_path)
    rows = [{"step": s, "epoch": 0, "lr": 2e-4, "img_per_s": 10.0, "G_L1": 1.0, "amp_skipped": s % 3}
            for s in range(1, 21)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = write_report(run).read_text()
    losses = page[page.index("<h2>Losses</h2>"):page.index("<h2>Learning rate and speed</h2>")]
    assert ">G_L1 <tspan" in losses and "amp_skipped" not in losses and "fp16 steps skipped" not in losses
    assert ">fp16 steps skipped (non-finite gradients) <tspan" in page[page.index("<h2>Learning rate and speed"):]
    assert report_mod.scalar_tag("amp_skipped") == "train/amp_skipped" and report_mod.scalar_tag("G_L1") == "loss/G_L1"
    assert "fp16 steps skipped" not in write_report(fake_run(tmp_path / "b")[0]).read_text()  # (no fp16: no chart)


def test_report_embeds_a_bounded_spread_of_grids_the_latest_first_at_its_own_size(tmp_path):
    width = report_mod.MAX_GRID_WIDTH + 200
    run, grids = fake_run(tmp_path, n_grids=30, width=width)
    page = write_report(run).read_text()
    imgs = embedded_images(page)
    steps = [int(s) for s, _ in imgs]
    # every 8th of 30 (a power-of-two stride), and the latest; the latest first (it was at the
    # bottom, below the grids a reader opens the page for least), then newest to oldest
    assert steps == [3000, 2500, 1700, 900, 100]
    assert len(steps) <= MAX_GRIDS
    # The latest pixel for pixel as the trainer drew it: scaled to 1024 px, a 256 px run's grid had
    # its column titles at 36 %. The earlier ones scaled down to the width, their captions saying so.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(imgs[0][1])).convert("RGB")), grids[3000])
    assert [Image.open(io.BytesIO(data)).size for _, data in imgs[1:]] == [(report_mod.MAX_GRID_WIDTH, 17)] * 4
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions[0] == "step 3000 (latest)"
    assert captions[-1] == "step 100 · shown at 83 %, <a href='samples/step_0000100.png'>full size</a>"  # 1024 / 1224


def test_a_latest_grid_wider_than_a_256px_runs_is_embedded_scaled_down(tmp_path):
    # A 512 px run's grid (11 columns of 514 px: 5,656 px) was embedded at its own size, 4 times the
    # bytes of a 256 px run's; here one row of random pixels (PNG's worst case, bytes in proportion
    # to pixels). Scaled to 2,900 px: (2900 / 5656)^2 = 26 % of the pixels, 35 % of the bytes in base64.
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "config.json").write_text("{}")  # (a run folder: what a training writes first)
    grid = run / "samples" / "step_0000500.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (100, 5656, 3), dtype=np.uint8)).save(grid, compress_level=1)
    page = write_report(run).read_text()
    (step, data), = embedded_images(page)
    assert Image.open(io.BytesIO(data)).size == (2900, 51) == (report_mod.MAX_LATEST_WIDTH, round(100 * 2900 / 5656))
    assert len(page) < 0.45 * grid.stat().st_size
    assert re.findall(r"<figcaption>(.*?)</figcaption>", page) == [
        "step 500 (latest) · shown at 51 %, <a href='samples/step_0000500.png'>full size</a>"]


def test_each_grid_links_to_its_png(tmp_path):
    # Opened from the run folder (or served), a grid shown smaller opens at full size: every link is
    # relative to report.html and names the PNG of the step it shows.
    run, grids = fake_run(tmp_path, n_grids=30, width=report_mod.MAX_GRID_WIDTH + 200)
    page = write_report(run).read_text()
    figures = re.findall(r"<figure><figcaption>.*?</figcaption><a href='([^']+)'><img [^>]* "
                         r"alt='samples at step (\d+)'></a></figure>", page)
    assert [int(s) for _, s in figures] == [3000, 2500, 1700, 900, 100]
    for href, step in figures:
        assert not href.startswith(("/", "file:")) and (run / href).is_file()
        assert np.array_equal(np.asarray(Image.open(run / href).convert("RGB")), grids[int(step)])
    # the caption's "full size" links are the same files
    assert re.findall(r"<a href='([^']+)'>full size</a>", page) == [h for h, _ in figures[1:]]


def test_a_256px_runs_report_weighs_about_two_of_its_grids(tmp_path):
    # A 256 px run's grid: 11 columns of 258 px (input, ground truth, encoded, 8 z) = 2,840 px, here
    # a row of random pixels (PNG's worst case: no compression, bytes in proportion to pixels). The
    # latest embedded at full size and the others at 1,024 px wide (13 % of the pixels each; 5 of them
    # for 20 grids), the page holds the pixels of 1.65 grids, base64 (4/3) included under 2.3 grids'
    # bytes; every grid at full size would be 6 grids' worth (8 bytes for every grid file written).
    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "config.json").write_text("{}")  # (a run folder: what a training writes first)
    for k in range(1, 21):
        Image.fromarray(rng.integers(0, 256, (258 + 14, 2840, 3), dtype=np.uint8)).save(
            run / "samples" / f"step_{k * 500:07d}.png", compress_level=1)
    grid_bytes = (run / "samples" / "step_0010000.png").stat().st_size
    page = write_report(run).read_bytes()
    assert len(embedded_images(page.decode())) == 6  # every 4th of 20, and the latest
    assert len(page) < 2.3 * grid_bytes


def test_grid_choice_is_stable_as_the_run_grows():
    previous = []
    for n in range(1, 200):
        chosen = spread(list(range(n)), MAX_GRIDS)
        assert chosen[0] == 0 and chosen[-1] == n - 1 and len(chosen) <= MAX_GRIDS
        assert len(chosen) > MAX_GRIDS // 2 or n <= MAX_GRIDS // 2
        # all but the newest were chosen before: each rewrite has at most one new grid to encode
        assert set(chosen[:-1]) <= set(previous)
        previous = chosen
    # As many as fit: the smallest power-of-two stride whose choice (the last item added) is at most
    # MAX_GRIDS long. Of 15, every 2nd is 8 items; of 16, every 2nd would be 9, so every 4th.
    assert MAX_GRIDS == 8
    assert spread(list(range(15)), 8) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert spread(list(range(16)), 8) == [0, 4, 8, 12, 15]


def test_files_removed_while_the_page_is_written_are_left_out_not_fatal(tmp_path, monkeypatch):
    # sample starting in results/test drops its grid.png between the report's is_file() and stat(): the training
    # rewriting its page died of the FileNotFoundError (a reader never stops a training); a grid a resume in another
    # process deleted likewise
    from pathlib import Path

    from bicyclegan.engine import report as report_mod
    run, _ = fake_run(tmp_path)
    (run / "results" / "test").mkdir(parents=True)
    (run / "results" / "test" / "index.html").write_text("x")
    (run / "results" / "test" / "grid.png").write_bytes(b"x")
    real_stat, real_uri = Path.stat, report_mod.grid_data_uri

    def racing_stat(self, *a, **k):
        if self.name == "grid.png":
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_stat(self, *a, **k)

    def gone_grid(path, *a, **k):
        if path.name == "step_0000200.png":
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_uri(path, *a, **k)
    real_is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: self.name == "grid.png" or real_is_file(self))  # (still there)
    monkeypatch.setattr(Path, "stat", racing_stat)  # (gone a moment later)
    monkeypatch.setattr(report_mod, "grid_data_uri", gone_grid)
    page = write_report(run).read_text()
    assert "results/test/index.html" in page and "samples at step 200'" not in page and "samples at step 100'" in page


@pytest.mark.parametrize("cached", [False, True])
def test_a_grid_removed_after_the_listing_is_left_out_with_the_trainers_cache_too(tmp_path, monkeypatch, cached):
    # With the trainer's cache, the grids kept encoded were worked out by stat()ing each listed grid again: one
    # removed since the listing (a resume in another process going back) was a FileNotFoundError, the training's end
    from bicyclegan.engine import report as report_mod
    run, _ = fake_run(tmp_path)
    real = report_mod.run_grids
    monkeypatch.setattr(report_mod, "run_grids", lambda r: real(r) + [r / "samples" / "step_0000400.png"])
    page = write_report(run, cache={} if cached else None).read_text()
    assert [int(s) for s, _ in embedded_images(page)] == [300, 200, 100] and "step 400" not in page


def test_a_line_of_eval_log_not_utf8_is_left_out_as_a_line_cut_short(tmp_path):
    # A byte that is not UTF-8 in eval_log.jsonl (a disk's or a copy's) made the page a UnicodeDecodeError, where
    # log.jsonl's such line is left out (its page not written, a resume reading the log stopped)
    run, _ = fake_run(tmp_path)
    (run / "eval_log.jsonl").write_bytes(b'{"step": 4, "encoded_l1": 0.5}\n\xff\n{"step": 6, "enc\n'
                                         b'{"step": 8, "encoded_l1": 0.4}\n')
    assert [r["step"] for r in report_mod.read_eval_log(run / "eval_log.jsonl")] == [4, 8]
    page = write_report(run).read_text()
    section = page[page.index("<h2>Validation</h2>"):page.index("<h2>Sample grids</h2>")]
    assert "encoded reconstruction L1" in section


def png_declaring(width: int, height: int) -> bytes:
    """A PNG's signature and header declaring width x height RGB, then its end: no pixel data to decode."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("pil_guard", [True, False])
def test_a_grid_declaring_more_pixels_than_a_page_draws_is_linked_not_decoded(tmp_path, monkeypatch, pil_guard):
    # A 219 KB grid declaring 15,000 x 15,000 in a run folder someone gave you took 1.6 GB to rewrite its report (the
    # commands turn PIL's own guard off; from Python, PIL's guard made the page a DecompressionBombError).
    from bicyclegan.engine import report as report_mod
    if not pil_guard:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    run, _ = fake_run(tmp_path)
    (run / "samples" / "step_0000400.png").write_bytes(png_declaring(15_000, 15_000))  # (its pixels: none to read)
    page = write_report(run).read_text()
    assert [int(s) for s, _ in embedded_images(page)] == [300, 200, 100]
    assert ("step 400 (latest) · not shown here: more than 178,956,970 pixels, <a href='samples/step_0000400.png'>"
            "the file</a>") in page
    # a run's own grid at 1,024 px with 8 samples (8 rows, 11 columns) is drawn
    assert 8 * 1024 * 11 * 1024 <= report_mod.MAX_GRID_PIXELS
    # the verdict kept with the others' (the file read and its header looked at once a run, not at every page)
    cache, reads = {}, []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real_read(self))
    for _ in range(2):
        write_report(run, cache=cache)
    assert reads.count("step_0000400.png") == 1


def cut_short_png(width: int) -> bytes:
    """A grid `width` px wide whose file stops in its pixel data (a copy cut off): its header reads, its pixels not."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, width, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()[:len(buf.getvalue()) // 2]


@pytest.mark.parametrize("content,reason", [
    (b"", "no image format recognised"),
    (b"garbage", "no image format recognised"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1234\n", "no image format recognised"),
    (cut_short_png(40), "image file is truncated"),  # (as wide as shown: it was embedded as it was, broken)
    (cut_short_png(report_mod.MAX_LATEST_WIDTH + 8), "image file is truncated")],  # (scaled down: decoded)
    ids=["empty", "garbage", "git-LFS pointer", "cut short", "cut short, scaled down"])
@pytest.mark.parametrize("cached", [False, True])
def test_an_unreadable_grid_is_named_in_the_page_not_fatal(tmp_path, content, reason, cached):
    # An empty samples/step_N.png (a sync tool's), garbage or a git-LFS pointer made the page an UnidentifiedImageError:
    # the training rewriting it died at its next report, a resume exited 1 with a traceback
    run, _ = fake_run(tmp_path)
    (run / "samples" / "step_0000400.png").write_bytes(content)
    cache = {} if cached else None
    page = write_report(run, cache=cache).read_text()
    assert [int(s) for s, _ in embedded_images(page)] == [300, 200, 100]
    assert (f"step 400 (latest) · not shown here: step_0000400.png cannot be read as an image ({reason}"
            in html.unescape(page))
    assert "<a href='samples/step_0000400.png'>the file</a>" in page and "pixels, <a href" not in page
    if cached:  # (the next page, from the verdict kept as a grid's)
        assert "step_0000400.png cannot be read as an image" in write_report(run, cache=cache).read_text()


def test_evaluate_and_sample_rewrite_the_page_of_a_run_with_an_unreadable_grid(tmp_path, capsys):
    # Their rewrite of the run's page ended in "note: the run's report.html was not rewritten (cannot identify image
    # file <_io.BytesIO object at 0x...>)": the page not rewritten, the note naming no file
    from bicyclegan.engine.cli import _refresh_report
    run, _ = fake_run(tmp_path)
    (run / "samples" / "step_0000400.png").write_bytes(b"")
    said = _refresh_report(run / "checkpoints" / "latest.pt")
    assert said == f"\nreport: {(run / 'report.html').resolve()}" and capsys.readouterr().err == ""
    assert "step_0000400.png cannot be read as an image" in (run / "report.html").read_text()


def test_a_resumed_run_says_its_own_length_from_its_start(tmp_path, demo_root):
    # The trainer wrote the page at sample intervals only: a page sample or evaluate rewrote before the resumed run's
    # first grid kept the earlier run's length ("step 265 of 100000" in a run of 400)
    from tiny import tiny_cfg

    from bicyclegan.engine.trainer import Trainer
    run = tmp_path / "r"
    Trainer(tiny_cfg(run, demo_root, max_steps=2, sample_every=100), progress=False).train()
    assert "step 2 of 2 " in (run / "report.html").read_text()
    t = Trainer(tiny_cfg(run, demo_root, max_steps=4, sample_every=100), resume=True, progress=False)
    seen, real = [], t.model.train_step
    t.model.train_step = lambda batch: (seen.append((run / "report.html").read_text()), real(batch))[1]
    t.train()
    assert "step 2 of 4 " in seen[0]


def test_a_training_with_an_unreadable_grid_goes_on_and_resumes(tmp_path, demo_root):
    # An empty samples/step_N.png appearing as a run trained (a sync tool's) killed it at its next report, the steps
    # since its last checkpoint lost; the resume of such a run exited 1 with a traceback as it started
    from tiny import tiny_cfg

    from bicyclegan.engine.trainer import Trainer
    run = tmp_path / "r"
    t = Trainer(tiny_cfg(run, demo_root, niter=2, niter_decay=2, max_steps=6, sample_every=2, save_every=100),
                progress=False)
    real = t.model.train_step

    def train_step(batch):
        if t.step == 3:  # (after the grid of step 2, before those of steps 4 and 6)
            (run / "samples" / "step_0000001.png").write_bytes(b"")
        return real(batch)
    t.model.train_step = train_step
    t.train()
    page = (run / "report.html").read_text()
    assert t.step == 6 and "step 6 of 6 " in page and "step_0000001.png cannot be read as an image" in page
    t = Trainer(tiny_cfg(run, demo_root, niter=2, niter_decay=2, max_steps=8, sample_every=2, save_every=100),
                resume=True, progress=False)
    t.train()
    page = (run / "report.html").read_text()
    assert t.step == 8 and "step 8 of 8 " in page and "step_0000001.png cannot be read as an image" in page


def test_the_live_status_is_where_the_report_says_the_run_is(tmp_path):
    # The trainer rewrites the page at its sample steps, which need not be logged ones: the log's
    # last line (step 20 of fake_run) is older than the step the trainer gives.
    run, _ = fake_run(tmp_path)
    # Epochs shown from 1 (the status and log.jsonl count from 0), as the progress line and epoch_N.pt:
    # index 2 is the third epoch, whose end writes epoch_3.pt.
    page = write_report(run, status={"step": 23, "total_steps": 40, "epoch": 2, "epochs": 4, "grid_split": "val"})
    assert "class='meta'>step 23 of 40 (epoch 3 of 4) · " in page.read_text()
    # Rewritten by another command (sample, evaluate: no trainer): the step and epoch from the log, the run's length
    # and the grids' split as the trainer's page recorded them (the page said "step 20 (epoch 1)", "the same inputs in
    # every grid"); without such a page, from the log alone.
    again = write_report(run).read_text()
    assert "class='meta'>step 20 of 40 (epoch 1 of 4) · " in again and "the same inputs of val/ in every grid" in again
    page.unlink()
    again = write_report(run).read_text()
    assert "class='meta'>step 20 (epoch 1) · " in again and "the same inputs in every grid" in again


def test_report_of_a_run_without_anything_yet(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # (what a training writes first)
    page = write_report(tmp_path).read_text()
    assert "No losses logged yet" in page and "No sample grid yet" in page and "Not evaluated yet" in page



def test_report_of_no_run_folder_is_refused_by_name(tmp_path):
    # A mistyped run folder was made, with an empty report in it; a checkpoint given for its run
    # was an OutputError about <file>/report.html ("File exists").
    with pytest.raises(ConfigError, match=rf"run folder {re.escape(str(tmp_path / 'rnus'))} does not exist"):
        write_report(tmp_path / "rnus")
    assert not (tmp_path / "rnus").exists()
    ckpt = tmp_path / "latest.pt"
    ckpt.write_bytes(b"x")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(ckpt))} is a file, not a run folder"):
        write_report(ckpt)
    # A folder that is no run's (a dataset's, a results folder) got a report.html of nothing written into it.
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "0.png").write_bytes(b"x")
    with pytest.raises(ConfigError) as e:
        write_report(data)
    assert str(e.value) == (f"{data} is not a run folder: it holds no config.json or log.jsonl (the --out of a "
                            f"training holds them from its start)")
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == ["train", "train/0.png"]
    for marker in ("log.jsonl", "config.json"):  # either makes it a run's (a run of an older version: a log alone)
        run = tmp_path / f"run_{marker}"
        run.mkdir()
        (run / marker).write_text("{}\n" if marker == "config.json" else "")
        assert write_report(run) == run / "report.html" and (run / "report.html").is_file()


def test_a_run_folder_named_checkpoints_gets_its_own_report_refreshed(tmp_path):
    # evaluate --epoch all takes a run folder or its checkpoints/: a run trained with --out checkpoints was taken
    # for the checkpoints/ folder of a run in its parent (none there: its report not rewritten).
    for name in ("checkpoints", "run"):
        run = tmp_path / name
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.json").write_text("{}\n")
        (run / "log.jsonl").write_text("")
        for given in (run, run / "checkpoints"):
            assert report_mod.refresh_report(given) == (run / "report.html").resolve()
    assert not (tmp_path / "report.html").exists()

def test_grid_encoding_is_cached_between_rewrites(tmp_path, monkeypatch):
    run, _ = fake_run(tmp_path, n_grids=2)
    cache = {}
    write_report(run, cache=cache)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(report_mod.Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    encoded = []
    real_encode = report_mod.base64.b64encode
    monkeypatch.setattr(report_mod.base64, "b64encode", lambda data: encoded.append(data) or real_encode(data))
    Image.new("RGB", (40, 20)).save(run / "samples" / "step_0000300.png")
    write_report(run, cache=cache)
    # Encoded again: only the new grid (at its own size, opened to read its width from the header)
    # and the latest before it, from now on shown as the earlier grids are.
    assert len(opened) == 2 and len(encoded) == 2
    assert (run / "samples" / "step_0000300.png").read_bytes() in encoded



def test_the_grid_cache_holds_only_the_grids_shown_however_long_the_run(tmp_path):
    # The trainer keeps one cache for the whole run: it held every grid ever encoded, one more per
    # sample interval (1,000 grids of a 32 px run: 172 MB of the trainer's memory).
    run, _ = fake_run(tmp_path, n_grids=1)
    cache = {}
    for k in range(2, 60):
        Image.new("RGB", (40, 20), (k, 50, 200)).save(run / "samples" / f"step_{k * 100:07d}.png")
        page = write_report(run, cache=cache).read_text()
        uris = [key for key in cache if key != "log"]
        shown = embedded_images(page)
        # one entry per grid shown: the latest before this one, kept at full size, is dropped too
        assert len(uris) == len(shown) <= MAX_GRIDS
        assert {str(run / "samples" / f"step_{int(s):07d}.png") for s, _ in shown} == {key[0] for key in uris}


# -- the trainer ---------------------------------------------------------------------------------------
def test_trainer_rewrites_the_report_at_each_sample_interval(tmp_path, demo_root, monkeypatch):
    seen = []  # the grid steps on disk each time the report is written
    real = report_mod.write_report

    def spy(run_dir, **kw):
        seen.append(sorted(p.name for p in (run_dir / "samples").glob("step_*.png")))
        return real(run_dir, **kw)

    monkeypatch.setattr("bicyclegan.engine.trainer.write_report", spy)
    run = Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=4), progress=False).train()
    assert seen[0] == ["step_0000002.png"] and seen[1] == ["step_0000002.png", "step_0000004.png"]
    page = (run / "report.html").read_text()
    assert [int(s) for s, _ in embedded_images(page)] == [4, 2]
    log_keys = set(json.loads((run / "log.jsonl").read_text().splitlines()[0])) - set(report_mod.NOT_LOSSES)
    assert log_keys == {"G_GAN", "G_L1", "kl", "G_GAN2", "z_L1", "D", "D2"}
    for k in log_keys:
        assert f">{k} <tspan" in page
    assert not (run / "tensorboard").exists()


def test_tensorboard_logs_what_log_jsonl_and_the_grids_hold(tmp_path, demo_root):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tensorboard.plugins.hparams import plugin_data_pb2
    run = Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=4, ngf=6), progress=False,
                  tensorboard=True).train()
    ea = ea_mod.EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    for key in ("G_L1", "D2", "lr", "img_per_s"):
        tag = ("train/" if key in ("lr", "img_per_s") else "loss/") + key
        got = [(e.step, e.value) for e in ea.Scalars(tag)]
        assert got == [(r["step"], pytest.approx(r[key], rel=1e-6)) for r in rows]
    # The losses, the rate and the speed, nothing else (step and epoch are the axis, not curves).
    assert set(ea.Tags()["scalars"]) == {f"loss/{k}" for k in ("G_GAN", "G_L1", "kl", "G_GAN2", "z_L1", "D", "D2")} | {
        "train/lr", "train/img_per_s"}
    images = ea.Images("samples")
    assert [e.step for e in images] == [2, 4]
    for e in images:
        got = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB"))
        want = np.asarray(Image.open(run / "samples" / f"step_{e.step:07d}.png").convert("RGB"))
        assert np.array_equal(got, want)
    start = plugin_data_pb2.HParamsPluginData.FromString(
        ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.ngf"].number_value == 6
    assert start.hparams["variant"].string_value == "bicycle"
    assert start.hparams["max_steps"].number_value == 4


def test_tensorboard_on_resume_hides_the_steps_logged_again(tmp_path, demo_root):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "latest.pt"
    Trainer(tiny_cfg(out, demo_root, max_steps=2), progress=False, tensorboard=True).train()
    at_step_2 = ckpt.read_bytes()
    Trainer(tiny_cfg(out, demo_root, max_steps=3), resume=True, progress=False, tensorboard=True).train()
    ckpt.write_bytes(at_step_2)  # as if the process had died after logging step 3, before saving it
    Trainer(tiny_cfg(out, demo_root, max_steps=4), resume=True, progress=False, tensorboard=True).train()
    events = [e for f in sorted((out / "tensorboard").glob("events.*"))
              for e in EventFileLoader(str(f)).Load()]
    # the last process marks a restart at step 3: TensorBoard hides what was logged from there before
    starts = [e.step for e in events if e.HasField("session_log") and e.session_log.status == 1]
    assert starts == [3, 3]  # the two resumes, each from the step after its checkpoint
    logged = [e.step for e in events if any(v.tag == "loss/G_L1" for v in e.summary.value)]
    assert logged == [1, 2, 3, 3, 4]  # step 3 twice on disk; the restart marker hides the first
    assert LogCurves().update(out / "log.jsonl").curve("G_L1")[0] == [1, 2, 3, 4]



def test_a_run_resumed_as_its_stop_line_says_logs_on_to_its_tensorboard(tmp_path, demo_root, capsys):
    # "resume with bicyclegan train --out X --resume", as a stopped run says, left --tensorboard out: the rest
    # of the run went unlogged without a word. A continued run now logs where it did; --no-tensorboard stops it.
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from bicyclegan.engine.cli import main
    out = tmp_path / "run"
    Trainer(tiny_cfg(out, demo_root, max_steps=2), progress=False, tensorboard=True).train()
    assert main(["train", "--out", str(out), "--resume", "--max_steps", "3", "--no-progress"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--max_steps", "4", "--no-progress", "--no-tensorboard"]) == 0

    def logged():
        events = [e for f in sorted((out / "tensorboard").glob("events.*")) for e in EventFileLoader(str(f)).Load()]
        return [e.step for e in events if any(v.tag == "loss/G_L1" for v in e.summary.value)]
    assert logged() == [1, 2, 3]
    Trainer(tiny_cfg(tmp_path / "new", demo_root, max_steps=1), progress=False).train()  # a new run: off
    assert not (tmp_path / "new" / "tensorboard").exists()

@pytest.mark.parametrize("evaluate", [True, False])
def test_a_demo_runs_final_evaluation_is_logged_in_the_runs_event_file(tmp_path, demo_root, monkeypatch, evaluate):
    # train() closed the writer before the final evaluation logged to it, and torch's SummaryWriter opened
    # a second event file for it. Without the evaluation (--no-eval) the writer is closed once dropped.
    import gc
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from bicyclegan.engine import trainer as trainer_module
    closed = []

    class Demo(Trainer):  # as on the demo data, whose runs end with their evaluation (a smaller split here)
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.is_demo = True
            real = self.tb.writer.close
            self.tb.writer.close = lambda: (closed.append(True), real())
    monkeypatch.setattr(trainer_module, "Trainer", Demo)
    run = trainer_module.train(tiny_cfg(tmp_path / "run", demo_root, max_steps=2, eval_every=2, eval_num=2,
                                        eval_samples=2),
                               progress=False, tensorboard=True, evaluate=evaluate)
    gc.collect()  # (the trainer is gone)
    assert closed == [True]
    (events,) = (run / "tensorboard").glob("events.*")
    ea = ea_mod.EventAccumulator(str(events))
    ea.Reload()
    assert [e.step for e in ea.Scalars("loss/G_L1")] == [1, 2]
    # The --eval_every evaluation (2 inputs x 2 z) alone on eval/; the final table (its own protocol) on final/:
    # both on eval/ were two points at step 2, of different protocols.
    (row,) = [json.loads(line) for line in (run / "eval_log.jsonl").read_text().splitlines()]
    assert [(e.step, e.value) for e in ea.Scalars("eval/coverage")] == [(2, pytest.approx(row["coverage"]))]
    if evaluate:
        result = json.loads((run / "eval.json").read_text())
        assert result["n_samples"] != row["n_samples"]
        assert [(e.step, e.value) for e in ea.Scalars("final/coverage")] == [(2, pytest.approx(result["coverage"]))]
    else:
        assert not (run / "eval.json").exists() and "final/coverage" not in ea.Tags()["scalars"]


def test_a_trainer_opens_its_event_file_as_it_trains_not_as_it_is_made(tmp_path, demo_root, monkeypatch):
    # A Trainer made with tensorboard=True opened its SummaryWriter as it was made: one never trained held an open
    # event file and the writer's thread until collected, and one whose start failed after that (a Ctrl-C as it
    # ended) kept them while its error was held, and its run folder, which a failed start removes, for the file.
    pytest.importorskip("tensorboard")
    import threading

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread

    from bicyclegan.engine import trainer as trainer_module

    def writers():
        return sum(isinstance(t, _AsyncWriterThread) and t.is_alive() for t in threading.enumerate())
    before = writers()
    run = tmp_path / "run"
    t = Trainer(tiny_cfg(run, demo_root, max_steps=2), progress=False, tensorboard=True)
    assert not list(run.glob("tensorboard/events.*")) and writers() == before
    t.train()
    events = [e for f in run.glob("tensorboard/events.*") for e in EventFileLoader(str(f)).Load()]
    assert [e.step for e in events if any(v.tag == "loss/G_L1" for v in e.summary.value)] == [1, 2]
    assert writers() == before  # (closed as the training ended)

    def interrupted(*args, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer_module, "Progress", interrupted)  # (the start's last step)
    with pytest.raises(KeyboardInterrupt) as held:
        Trainer(tiny_cfg(tmp_path / "refused", demo_root, max_steps=2), progress=False, tensorboard=True)
    assert held.value is not None and writers() == before
    assert not (tmp_path / "refused").exists()


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path, demo_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"--tensorboard needs the tensorboard package: pip install"):
        Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=2), progress=False, tensorboard=True)


def test_training_without_tensorboard_never_imports_it(tmp_path, demo_root):
    code = (
        "import sys\n"
        "from bicyclegan.engine import make_config\n"
        "from bicyclegan.engine.trainer import Trainer\n"
        f"cfg = make_config('reference', **{TINY!r}, batch_size=4, load_size=32, preprocess='none', "
        f"num_workers=0, backend='torch', max_steps=2, sample_every=2, dataroot={str(demo_root)!r}, "
        f"out={str(tmp_path / 'run')!r})\n"
        "Trainer(cfg, progress=False).train()\n"
        "assert not [m for m in sys.modules if 'tensorboard' in m], [m for m in sys.modules if 'tensorboard' in m]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert (tmp_path / "run" / "report.html").is_file()


def test_cli_train_passes_tensorboard(tmp_path, demo_root, monkeypatch):
    from bicyclegan.engine import cli
    got = {}

    class FakeTrainer:
        def __init__(self, cfg, resume, progress, tensorboard, **kwargs):
            got["tensorboard"] = tensorboard
            raise ConfigError("stop here")

    monkeypatch.setattr("bicyclegan.engine.trainer.Trainer", FakeTrainer)
    assert cli.main(["train", "--dataroot", str(demo_root), "--out", str(tmp_path / "r"), "--tensorboard"]) == 2
    assert got == {"tensorboard": True}


def test_a_diverged_run_says_so_and_stray_grid_files_or_a_cut_log_line_break_nothing(tmp_path, demo_root):
    # The report stayed at the last sample interval of a run that had died; a copy of a grid named
    # "step_0000002 (copy).png" stopped training at its next sample and stopped resuming; a log line
    # cut short by a full disk stopped resuming.
    import torch
    from tiny import tiny_cfg

    from bicyclegan.engine import DivergenceError
    from bicyclegan.engine.report import run_grids
    from bicyclegan.engine.trainer import Trainer
    run = tmp_path / "r"
    Trainer(tiny_cfg(run, demo_root, max_steps=2, sample_every=2, save_every=2), progress=False).train()
    (run / "samples" / "step_0000002 (copy).png").write_bytes((run / "samples" / "step_0000002.png").read_bytes())
    assert [p.name for p in run_grids(run)] == ["step_0000002.png"]
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 3, "epoch": 0, "lr": 0.0002, "img_p')
    t = Trainer(tiny_cfg(run, demo_root, max_steps=4, sample_every=2, save_every=2), resume=True, progress=False)
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    with torch.no_grad():
        next(t.model.G.parameters()).fill_(float("nan"))
    with pytest.raises(DivergenceError):
        t.train()
    page = (run / "report.html").read_text()
    assert "Training diverged" in page and "Rows: the same inputs of test/ in every grid" in page
    assert "G_L1 <tspan class=\"v\">not finite at step 3</tspan>" in page  # not the last finite value


@pytest.mark.parametrize("found_by", ["grid", "evaluation", "save"])
def test_a_divergence_found_between_log_intervals_is_logged_and_reported(tmp_path, demo_root, found_by):
    # Weights gone non-finite at step 3, the log interval every 4: the grid of step 3 (an all-black NaN grid was
    # written and shown as the latest), its evaluation or its save found it and raised, leaving log.jsonl and
    # report.html at the last interval (or none at all): a run folder that looked alive, the steps unlogged.
    import torch

    from bicyclegan.engine import DivergenceError
    every = {"grid": "sample_every", "evaluation": "eval_every", "save": "save_every"}[found_by]
    kw = {"sample_every": 100, "save_every": 100, **{every: 3}}
    t = Trainer(tiny_cfg(tmp_path / "r", demo_root, max_steps=4, log_every=4, **kw), progress=False,
                tensorboard=found_by == "save" and _has_tensorboard())

    def step(batch):  # G_L1 = k, D = 2k; G's weights non-finite from step 3
        k = t.step + 1
        if k == 3:
            with torch.no_grad():
                next(t.model.G.parameters()).view(-1)[0] = float("nan")
        return {"G_L1": torch.tensor(float(k)), "D": torch.tensor(2.0 * k)}
    t.model.train_step = step
    with pytest.raises(DivergenceError, match=r"^training diverged at step 3 \(epoch 2\): .*non-finite weights in G"
                                              r".*; no checkpoint was written before it; delete \S+ and start the "
                                              r"run again with a lower --lr$"):  # (not "or --amp off": it is off)
        t.train()
    t.cfg.amp = "bf16"
    assert str(t._diverged("x")).endswith(" with a lower --lr (or --amp off)")
    run = tmp_path / "r"
    (row,) = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert row["step"] == 3 and row["diverged"] is True and (row["G_L1"], row["D"]) == (2.0, 4.0)  # (1+2+3) / 3
    page = (run / "report.html").read_text()
    assert "<b>Training diverged</b> at step 3" in page
    assert not list((run / "samples").glob("step_*.png")) and not (run / "checkpoints" / "latest.pt").exists()
    if t.tb:
        ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
        ea = ea_mod.EventAccumulator(str(run / "tensorboard"))
        ea.Reload()
        assert [(e.step, e.value) for e in ea.Scalars("loss/G_L1")] == [(3, 2.0)]


def _has_tensorboard():
    try:
        import tensorboard  # noqa: F401
        return True
    except ImportError:
        return False


def test_a_non_finite_loss_reaches_tensorboard_as_such(tmp_path, demo_root):
    # TensorBoard's curves ended at the last finite value (a None, JSON's stand-in, was left out): the divergence
    # had no sign there, where TensorBoard draws NaN and inf.
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    import torch

    from bicyclegan.engine import DivergenceError
    t = Trainer(tiny_cfg(tmp_path / "r", demo_root, max_steps=4, log_every=1, sample_every=100, save_every=100),
                progress=False, tensorboard=True)
    t.model.train_step = lambda batch: {"G_L1": torch.tensor(float("inf") if t.step == 1 else 1.0),
                                        "D": torch.tensor(float("nan") if t.step == 1 else 1.0)}
    with pytest.raises(DivergenceError, match="at step 2 .*non-finite G_L1 = inf, D = nan"):
        t.train()
    ea = ea_mod.EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    ea.Reload()
    g, d = ([(e.step, e.value) for e in ea.Scalars(tag)] for tag in ("loss/G_L1", "loss/D"))
    assert g[0] == (1, 1.0) and g[1][0] == 2 and g[1][1] == math.inf
    assert d[0] == (1, 1.0) and d[1][0] == 2 and math.isnan(d[1][1])


def test_a_run_that_raises_closes_its_event_file(tmp_path, demo_root):
    # A diverged run left its TensorBoard writer open (its thread alive, its file open) until the Trainer was
    # collected: in a Python caller's process that tries configurations, one thread and file per failed run.
    import threading
    import time

    import torch

    from bicyclegan.engine import DivergenceError
    pytest.importorskip("tensorboard")
    before = {th.ident for th in threading.enumerate()}
    t = Trainer(tiny_cfg(tmp_path / "r", demo_root, max_steps=4, log_every=1, sample_every=100, save_every=100),
                progress=False, tensorboard=True)
    training = []

    def diverged(batch):
        training.append({th.ident for th in threading.enumerate()} - before)
        return {"G_L1": torch.tensor(float("nan"))}
    t.model.train_step = diverged
    with pytest.raises(DivergenceError):
        t.train()
    assert training[0]  # (the writer's thread, opened as the training began: what the check below sees)
    deadline = time.monotonic() + 5  # (held by `t`: only a close ends the thread)
    while (alive := {th.ident for th in threading.enumerate()} - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive


def test_axis_labels_tell_their_ticks_apart_and_steps_stay_whole():
    # 3 significant digits labelled a steady images/s five times "2.41e+03" and a flat loss four
    # times "7.55"; a run of one logged step had x ticks at 0.5 and 1.5; a long run's read 1.2e+06.
    from bicyclegan.engine.report import step_label, svg_chart, tick_labels, ticks
    assert tick_labels(ticks(2410.3, 2412.8)) == ["2410.5", "2411", "2411.5", "2412", "2412.5"]
    assert tick_labels(ticks(7.5501, 7.5509)) == ["7.5502", "7.5504", "7.5506", "7.5508"]
    assert tick_labels([0.0, 0.5, 1.0]) == ["0", "0.5", "1"]
    assert ticks(0, 2, 3, whole=True) == [0, 1, 2]
    assert [step_label(t) for t in (950, 5000, 12000, 1_200_000)] == ["950", "5000", "12k", "1.2M"]
    chart = svg_chart("images/s", [50, 100, 150], [2410.3, 2412.8, 2411.5])
    labels = re.findall(r'class="yl">([^<]*)<', chart)
    assert len(labels) == len(set(labels)) > 1 and not any("e+" in label for label in labels)
    assert re.findall(r'class="xl">([^<]*)<', svg_chart("loss", [1], [0.5])) == ["0", "1", "2"]


def test_tensorboard_evaluation_curves_are_measures_not_settings(tmp_path):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from bicyclegan.engine.report import TensorBoardLog
    tb = TensorBoardLog(tmp_path / "tb", {"variant": "bicycle"})
    tb.log_eval({"coverage": 0.9, "validity": 0.8, "n_inputs": 64, "n_samples": 10, "seed": 0, "n_outputs": 640,
                 "n_palettes": 4, "shares_n_samples": 100, "phase": "test", "histogram": [1, 2]}, step=7)
    tb.close()
    ea = ea_mod.EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    assert sorted(ea.Tags()["scalars"]) == ["eval/coverage", "eval/validity"]
    assert [(e.step, round(e.value, 6)) for e in ea.Scalars("eval/coverage")] == [(7, 0.9)]


def test_a_tensorboard_log_never_written_to_closes_without_opening_an_event_file(tmp_path):
    # A training whose start fails before its event file is opened (config.json unwritable) closes its log as it ends:
    # a TypeError of the close replaced the start's own error, or an event file was opened only to be closed (MQ41).
    pytest.importorskip("tensorboard")
    from bicyclegan.engine.report import TensorBoardLog
    tb = TensorBoardLog(tmp_path / "tb", {"variant": "bicycle"})
    tb.close()
    tb.close()
    assert not (tmp_path / "tb").exists()


def test_grids_show_val_before_test_before_train(tmp_path):
    # The reference's datasets have train/ and val/: the grids showed training images.
    from tiny import tiny_cfg

    from bicyclegan.engine.trainer import Trainer
    from bicyclegan.pipelines import make_demo_dataset
    root = make_demo_dataset(tmp_path / "d", n_train=8, n_test=2, n_val=3, size=32)
    t = Trainer(tiny_cfg(tmp_path / "r", root, max_steps=1), progress=False)
    assert t.grid_split == "val" and t.sample_A.shape[0] == 3
    val = make_demo_dataset(tmp_path / "v", n_train=8, n_test=0, n_val=0, size=32)
    t = Trainer(tiny_cfg(tmp_path / "r2", val, max_steps=1, variant="cvae", batch_size=1), progress=False)
    assert t.grid_split == "train" and t.sample_A.shape[0] == 4  # 4 x the batch, at most 8


def test_grid_rows_check_only_the_inputs_they_read(tmp_path, monkeypatch):
    # Without val/ or test/ the grids come from train/, which was then listed and checked whole a
    # second time at every start, to read at most GRID_CANDIDATES inputs (100,000 files: 7.9 s).
    import bicyclegan.pipelines.loader as loader_mod
    from bicyclegan.engine import trainer as trainer_mod
    root = make_demo_dataset(tmp_path / "d", n_train=12, n_test=0, n_val=0, size=32)
    checked = []
    real = loader_mod.find_samples

    def spy(*a, **kw):
        index = real(*a, **kw)
        checked.append(len(index.samples))
        return index
    monkeypatch.setattr(loader_mod, "find_samples", spy)
    monkeypatch.setattr(trainer_mod, "GRID_CANDIDATES", 5, raising=False)
    t = Trainer(tiny_cfg(tmp_path / "r", root, max_steps=1, batch_size=1, variant="cvae"), progress=False)
    assert t.grid_split == "train" and checked == [12, 5]  # the training loader, then the grid's


@pytest.mark.parametrize("variant, nz, cols, n_samples", [
    ("bicycle", 8, "input, ground truth, encoded G(A, E(B)), the same random codes z throughout", 5),
    ("clr", 8, "input, ground truth, encoded G(A, E(B)), the same random codes z throughout", 5),
    ("cae", 8, "input, ground truth, encoded G(A, E(B)), the same random codes z throughout", 5),
    ("pix2pix", 8, "input, ground truth, the same random codes z throughout", 5),
    ("pix2pix", 0, "input, ground truth, the output", 5),
    ("bicycle", 8, "input, ground truth, encoded G(A, E(B))", 0),  # (train --n_samples 0: no random z column)
    ("pix2pix", 0, "input, ground truth, the output", 0),
])
def test_the_grid_caption_names_the_variants_columns(variant, nz, cols, n_samples):
    from bicyclegan.engine.report import _grid_caption
    got = _grid_caption({"variant": variant, "model": {"nz": nz}, "n_samples": n_samples}, {"grid_split": "val"})
    assert got == f"Rows: the same inputs of val/ in every grid; columns: {cols}."


def test_non_finite_weights_with_finite_losses_mark_the_log_line_and_the_report(tmp_path, demo_root, monkeypatch):
    from tiny import tiny_cfg

    from bicyclegan.engine import DivergenceError
    from bicyclegan.engine.trainer import Trainer
    t = Trainer(tiny_cfg(tmp_path / "r", demo_root, max_steps=3, sample_every=100), progress=False)
    monkeypatch.setattr(t.model, "nonfinite", lambda: {"G": 3})
    with pytest.raises(DivergenceError, match=r"non-finite weights in G \(3 values\)"):
        t.train()
    rows = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["diverged"] is True and rows[-1]["G_L1"] is not None  # the losses were finite
    assert "Training diverged" in (tmp_path / "r" / "report.html").read_text()


def test_a_run_whose_first_logged_losses_were_not_finite_lists_them(tmp_path):
    # A run that diverged at its first log line (every loss null) was reported as "No losses logged
    # yet" beside "Training diverged": the losses were logged, as not finite.
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text(json.dumps({"step": 5, "epoch": 0, "lr": 1e4, "img_per_s": 21.9, "G_L1": None,
                                               "D": None, "diverged": True}) + "\n")
    page = write_report(run).read_text()
    assert "No losses logged yet" not in page and "Training diverged" in page
    for loss in ("G_L1", "D"):
        assert f">{loss}: not finite at step 5</text>" in page


def test_a_curve_of_one_logged_point_is_drawn():
    # A run stopped before its second log line (3 steps, --log_every 5) showed every chart as an
    # empty box: a polyline through one point draws nothing.
    root = ET.fromstring(svg_chart("G_L1", [3], [7.5]))
    dot = root.find(f"{SVG}circle")
    assert dot is not None and float(dot.get("r")) > 0
    (x, y), = polyline(svg_chart("G_L1", [3], [7.5]))
    assert (float(dot.get("cx")), float(dot.get("cy"))) == pytest.approx((x, y))
    assert ET.fromstring(svg_chart("G_L1", [3, 4], [7.5, 7.0])).find(f"{SVG}circle") is None


def test_the_x_axis_says_it_counts_steps():
    # The x tick labels (20, 40, 60) did not say what they counted.
    root = ET.fromstring(svg_chart("G_L1", [20, 40, 60], [7.5, 7.0, 6.0]))
    titles = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "xt"]
    assert titles == ["step"]


def test_a_loss_spanning_decades_is_charted_on_a_log_axis():
    # kl rose from 1e-7 to 0.3: on a linear axis its first third was a flat line at zero.
    from bicyclegan.engine.report import log_ticks
    xs, ys = [10, 20, 30, 40], [1e-7, 1e-5, 1e-3, 0.3]
    svg = svg_chart("kl", xs, ys, scale="auto")
    assert "(log scale)" in svg
    pts = polyline(svg)
    bottom, top = CHART_H - PAD_B, PAD_T
    # evenly spaced decades are evenly spaced on the axis: 1e-7 at the bottom, 0.3 at the top
    assert pts[0][1] == pytest.approx(bottom, abs=0.06) and pts[-1][1] == pytest.approx(top, abs=0.06)
    assert pts[0][1] - pts[1][1] == pytest.approx(pts[1][1] - pts[2][1], abs=0.2)
    labels = re.findall(r'class="yl">([^<]*)<', svg)
    assert labels == ["1e-07", "1e-05", "0.001", "0.1"]  # every second of 7 decades
    assert log_ticks(-7, math.log10(0.3)) == pytest.approx([1e-7, 1e-5, 1e-3, 1e-1])
    assert log_ticks(math.log10(0.015), math.log10(1.8)) == pytest.approx([0.02, 0.05, 0.1, 0.2, 0.5, 1])
    # a loss within one decade, a value <= 0, or a column that is no loss stay linear
    for ys_ in ([7.5, 7.0, 5.0, 6.0], [0.0, 1e-5, 1e-3, 0.3]):
        assert "(log scale)" not in svg_chart("x", xs, ys_, scale="auto")
    assert "(log scale)" not in svg_chart("lr", xs, ys)
    log = LogCurves()
    log.curves = {"kl": Envelope.of(xs, ys), "lr": Envelope.of(xs, ys)}
    assert "(log scale)" in log.chart("kl") and "(log scale)" not in log.chart("lr")


def test_labels_at_the_charts_right_edge_are_not_cut_off():
    # An inline <svg> clips what it draws beyond its box: the step label of a run ending at step 3000
    # sits at the plot's right edge, PAD_R = 10 px from the svg's, and showed as "300".
    chart = svg_chart("G_L1", [1000, 2000, 3000], [3.0, 2.0, 1.0])
    last = re.findall(r'<text x="([\d.]+)" y="[\d.]+" class="xl">([^<]*)<', chart)[-1]
    assert last[1] == "3000" and float(last[0]) == pytest.approx(CHART_W - PAD_R)
    assert re.search(r"\.chart\{[^}]*overflow:visible", report_mod.STYLE)


def test_long_paths_wrap_or_scroll_within_a_phones_width():
    # eval.json's dataroot and checkpoint paths made the evaluation table (and config.json's lines
    # the <pre>) wider than a phone: the page was 488 px wide on a 412 px screen.
    assert re.search(r"(^|\s)td\{[^}]*overflow-wrap:anywhere", report_mod.STYLE)
    assert re.search(r"(^|\s)pre\{[^}]*overflow-x:auto", report_mod.STYLE)


def test_a_measure_that_was_not_taken_reads_as_a_dash_not_python_none(tmp_path):
    # evaluate --n_samples 1 writes diversity_l1: null (no pair to compare); the table showed "None".
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # (a run folder: what a training writes first)
    (run / "eval.json").write_text(json.dumps({"variant": "pix2pix", "diversity_l1": None, "coverage": 0.5}))
    page = write_report(run).read_text()
    assert "<th title='diversity_l1'>diversity (L1 between samples)</th><td>-</td>" in page and "None" not in page


def test_every_dash_in_the_evaluation_table_says_why(tmp_path):
    # The '-' of a diversity of one output per input said nothing on the page (evaluate's table says why), and
    # eval.json's protocol showed its options left at their defaults as "layout -, skip_bad -".
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # (a run folder: what a training writes first)
    (run / "eval.json").write_text(json.dumps({"variant": "bicycle", "diversity_l1": None, "fid": None,
                                               "protocol": {"seed": 0, "layout": None, "skip_bad": None}}))
    page = html.unescape(write_report(run).read_text())
    assert "diversity (L1 between samples) -: one output per input (--n_samples 1" in page
    assert "FID (generated vs real B) -: not finite (null in the JSON)." in page
    assert "seed 0, layout default, skip_bad default" in page and page.count("<td>-</td>") == 2


def y_ticks(svg: str) -> list[tuple[str, float]]:
    """(label, y) of each y-axis tick of a chart, read from its SVG."""
    return [(t.text, float(t.get("y")) - 3) for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "yl"]


@pytest.mark.parametrize("lr", [2e-4, 3e-4])  # the reference's and the demo's learning rates
def test_a_constant_learning_rate_gets_a_few_round_ticks_around_its_value(lr):
    # A flat series was drawn on +-5 % of its value: seven ticks 0.000005 apart for the demo's 0.0003
    # (0.000285 ... 0.000315), figures a reader has to compare digit by digit to tell apart.
    chart = svg_chart("learning rate", [1, 50, 100], [lr] * 3)
    ticks_ = y_ticks(chart)
    labels = [label for label, _ in ticks_]
    assert 3 <= len(labels) <= 5 and len(set(labels)) == len(labels), labels
    assert all(len(label.replace("0.", "").lstrip("0")) <= 2 for label in labels), labels  # 2 digits at most
    assert f"{lr:g}" in labels  # the value itself is a tick, and the line lies on it
    at = dict(ticks_)[f"{lr:g}"]
    assert all(y == pytest.approx(at, abs=0.1) for _, y in polyline(chart))
    assert float(labels[0]) < lr < float(labels[-1]) or float(labels[-1]) < lr < float(labels[0])


EVAL_KEYS = ["variant", "dataroot", "phase", "n_inputs", "n_samples", "seed", "metrics", "diversity_l1",
             "encoded_l1", "diversity_lpips", "lpips", "fid", "fid_images", "coverage", "validity", "histogram",
             "n_outputs", "n_palettes", "encoded_palette_match", "shares_n_samples", "shares_histogram"]


def test_the_evaluation_table_names_each_measure_as_the_terminal_does_keeping_the_key(tmp_path):
    # The table showed eval.json's keys (diversity_l1, encoded_l1, n_palettes ...), and lpips's
    # settings as a Python dict.
    from bicyclegan.engine.evaluate import format_table
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")  # (a run folder: what a training writes first)
    result = {"variant": "bicycle", "dataroot": "/d", "phase": "test", "n_inputs": 4, "n_samples": 2, "seed": 0,
              "metrics": ["l1", "lpips", "fid", "palette"], "diversity_l1": 0.25, "encoded_l1": 0.5,
              "diversity_lpips": 0.125, "lpips": {"net": "alex", "version": "0.1", "pairs": "all", "n_pairs": 4,
                                                  "std": 0.0}, "fid": 12.5, "fid_images": {"generated": 8, "real": 4},
              "coverage": 0.5, "validity": 0.75, "histogram": [1, 2, 3, 0], "n_outputs": 8, "n_palettes": 4,
              "encoded_palette_match": 1.0, "shares_n_samples": 100, "shares_histogram": [25, 25, 25, 25]}
    assert sorted(result) == sorted(EVAL_KEYS)
    (run / "eval.json").write_text(json.dumps(result))
    page = write_report(run).read_text()
    rows = dict(re.findall(r"<tr><th title='([^']*)'>([^<]*)</th>", page))
    assert sorted(rows) == sorted(EVAL_KEYS)  # every key kept, as the tooltip
    terminal = format_table(result)
    for key in ("coverage", "validity", "diversity_l1", "encoded_l1", "encoded_palette_match", "histogram"):
        assert terminal.count(html.unescape(rows[key])) >= 1, (key, rows[key])  # the terminal's own words
    assert all("_" not in name and name != key for key, name in rows.items() if key not in ("variant", "seed",
                                                                                          "metrics", "validity")), rows
    assert "{" not in page.split("<h2>Evaluation</h2>")[1].split("<h2>")[0]  # no dict printed as Python


def test_a_diverged_runs_charts_share_its_steps_and_mark_where_it_broke(tmp_path):
    # A loss gone NaN at the last logged step ended its chart a log interval early, stretched to the
    # full width like the others: its x axis ran to 8 where the others ran to 10, and nothing marked
    # the step the run broke at.
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "lr": 2e-4, "G_L1": 1.0 + s, "D": 0.5 - s / 100} for s in range(2, 11, 2)]
    rows[-1].update(G_L1=None, diverged=True)
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curves = LogCurves().update(log)
    charts = {k: ET.fromstring(curves.chart(k)) for k in ("G_L1", "D", "lr")}
    left, right = PAD_L, CHART_W - PAD_R
    for key, svg in charts.items():
        xl = {t.text: float(t.get("x")) for t in svg.iter(f"{SVG}text") if t.get("class") == "xl"}
        assert xl["10"] == pytest.approx(right), key  # every chart runs to the run's last step
        # and the mark stands at step 10, the divergence, in every chart
        marks = [float(ln.get("x1")) for ln in svg.iter(f"{SVG}line") if ln.get("x1") == ln.get("x2")]
        assert marks == [pytest.approx(right)], key
        assert any(t.text == "diverged" for t in svg.iter(f"{SVG}text")), key
    # G_L1's curve ends at step 8, short of the right edge: 8 of the axis' 2 .. 10
    g = polyline(curves.chart("G_L1"))
    assert g[-1][0] == pytest.approx(left + (8 - 2) / (10 - 2) * (right - left), abs=0.1)
    assert polyline(curves.chart("D"))[-1][0] == pytest.approx(right, abs=0.1)
    assert "Training diverged</b> at step 10" in report_mod.render_report("r", curves, [], None, None)
    # The evaluations' charts mark it too ("every chart marking the step": they did not)
    evals = [{"step": s, "split": "val", "n_inputs": 4, "n_samples": 1, "seed": 0, "encoded_l1": 0.5 - s / 100}
             for s in (4, 8)]
    page = report_mod.render_report("r", curves, [], None, {"eval_every": 4, "model": {"nz": 0}}, validation=evals)
    section = page[page.index("<h2>Validation</h2>"):page.index("<h2>Sample grids</h2>")]
    (svg,) = [ET.fromstring(s) for s in re.findall(r"<svg.*?</svg>", section)]
    marks = [float(ln.get("x1")) for ln in svg.iter(f"{SVG}line") if ln.get("x1") == ln.get("x2")]
    assert marks == [pytest.approx(right)] and any(t.text == "diverged" for t in svg.iter(f"{SVG}text"))
    # a model without z (nz 0) has one output per input: "x 1 random z" said a code it has not
    assert "the first 4 inputs x its one output (seed 0)" in section


def test_a_results_pages_label_comes_from_the_files_its_command_wrote(tmp_path):
    """report.html labelled a results folder's page by the folder's name: sample --out RUN/results/interpolate_x
    was an "interpolation", interpolate into RUN/results/val "samples", a sweep or comparison written under another
    name "samples". The file each command writes beside its page says which (the newest where a command ran into
    another's folder); the name only where none is there."""
    import os
    results = tmp_path / "run" / "results"
    folders = {"interpolate_x": ["grid.png"], "val": ["path.json"], "mine": ["sweep.json"], "cmp": ["compare.json"],
               "val_sweep": [], "interpolate_val": [], "plain": [], "both": ["grid.png", "path.json"],
               "both_again": ["path.json", "grid.png"]}  # (written in this order: the last one newest)
    for name, files in folders.items():
        (results / name).mkdir(parents=True)
        (results / name / "index.html").write_text("<html></html>")
        for k, f in enumerate(files):
            (results / name / f).write_text("[]")
            os.utime(results / name / f, ns=(10**18 + k * 10**9,) * 2)
    (results / "eval_only").mkdir()
    (results / "eval_only" / "eval.json").write_text("{}")
    got = {name: dict((href, what) for what, href in links)
           for name, links in report_mod.result_pages(tmp_path / "run")}
    want = {"interpolate_x": "samples", "val": "interpolation", "mine": "every checkpoint evaluated",
            "cmp": "models compared", "val_sweep": "every checkpoint evaluated", "interpolate_val": "interpolation",
            "plain": "samples", "both": "interpolation", "both_again": "samples"}
    assert {name: links.get(f"results/{name}/index.html") for name, links in got.items()} == {
        **want, "eval_only": None}
    assert got["eval_only"] == {"results/eval_only/eval.json": "evaluation (eval.json)"}


def test_result_folders_are_listed_in_the_order_of_their_numbers(tmp_path):
    # test_epoch_10 ... test_epoch_19 came before test_epoch_2 (string order); the sweep page's order is numeric
    results = tmp_path / "run" / "results"
    for name in (*(f"test_epoch_{e}" for e in (1, 2, 10, 19, 20)), "set1\u00b2"):  # (² is a digit, no number)
        (results / name).mkdir(parents=True)
        (results / name / "eval.json").write_text("{}")
    assert [name for name, _ in report_mod.result_pages(tmp_path / "run")] == [
        "set1\u00b2", "test_epoch_1", "test_epoch_2", "test_epoch_10", "test_epoch_19", "test_epoch_20"]


def test_every_page_says_its_language_and_charts_say_what_they_show(tmp_path):
    # No page but the explorer declared its language (a screen reader's voice and rules); a chart was an unnamed
    # picture whose tick numbers a screen reader read out one by one ("1.999 1.998 ... step").
    import re

    from bicyclegan.engine.compare import render_compare
    from bicyclegan.engine.images import write_gallery
    from bicyclegan.engine.report import svg_chart, svg_scatter
    from bicyclegan.engine.sweep import render_sweep
    run, _ = fake_run(tmp_path)
    rows = [{"checkpoint": "epoch_1.pt", "epoch": 1, "step": 4, "fid": 9.5}]
    models = [{"name": n, "checkpoint": None, "variant": "bicycle", "step": 5, "dataroot": "/d", "phase": "val",
               "n_inputs": 5, "n_samples": 4, "seed": 0, "fid": f} for n, f in (("a", 1.0), ("b", 2.0))]
    for page in (write_report(run).read_text(), render_sweep("r", rows), render_compare(models, None, 4, 6),
                 write_gallery(tmp_path, [{"name": "x", "images": []}], "g").read_text()):
        assert page.startswith("<!doctype html><html lang='en'>"), page[:80]
    chart = svg_chart("G_L1", [10, 20, 30], [3.0, 1.0, 2.0], mark=(20, 1.0, "best: step 20"))
    assert re.search(r'<svg [^>]*role="img" aria-label="G_L1: 2, steps 10 to 30, from 1 to 3; best: step 20">',
                     chart)
    assert 'aria-label="loss: no finite values yet"' in svg_chart("loss", [], [])
    log_y = svg_chart("KL", [1, 2], [1e-6, 0.5], scale="auto")  # drawn on a log axis, said in its own values
    assert 'aria-label="KL: 0.5, steps 1 to 2, from 1e-06 to 0.5"' in log_y
    scatter = svg_scatter("FID against LPIPS", [(0.1, 50.0, "bicycle"), (0.2, 70.0, "<cae>")], x_title="LPIPS",
                          y_title="FID")
    assert 'role="img" aria-label="FID against LPIPS; LPIPS and FID: bicycle 0.1, 50; &lt;cae&gt; 0.2, 70"' in scatter


def test_the_report_points_to_its_checkpoints_evaluations_instead_of_saying_none(tmp_path):
    # `evaluate` writes into results/<phase>/ by default: the page said "Not evaluated yet" above its link.
    run, _ = fake_run(tmp_path)
    (run / "eval.json").unlink(missing_ok=True)  # (a run of the demo data's has its own)
    assert "Not evaluated yet" in write_report(run).read_text()
    (run / "results" / "test").mkdir(parents=True)
    (run / "results" / "test" / "eval.json").write_text(json.dumps({"fid": 9.5}))
    page = write_report(run).read_text()
    assert "Not evaluated yet" not in page
    assert "its checkpoints' evaluations are under Results of its checkpoints below" in page
    assert "href='results/test/eval.json'" in page
