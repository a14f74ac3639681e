"""compare: several models on one protocol. Each row against an independent `evaluate` of its model,
the metric networks loaded once, the picture's pixels against G_k(A, z) computed here from the
files and the protocol's z draw, the page (bold best, Fig. 6's chart), names, and the refusals
before any work."""
import html
import importlib
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_cfg

from bicyclegan.engine import BicycleGAN, ConfigError, DivergenceError, OutputError, compare
from bicyclegan.engine.checkpoint import load_checkpoint, save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.compare import best_of, compare_image, format_compare, model_names, render_compare
from bicyclegan.engine.evaluate import Evaluation, evaluate, format_table
from bicyclegan.engine.metrics.lpips import LPIPS
from bicyclegan.engine.report import blanks, svg_scatter
from bicyclegan.engine.sweep import format_sweep
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import make_demo_dataset

ev_module = importlib.import_module("bicyclegan.engine.evaluate")
OPTS = ["--num", "5", "--n_samples", "4", "--device", "cpu", "--seed", "3"]
EVAL = dict(phase="val", num=5, n_samples=4, device="cpu", seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=3, n_val=6, size=32, seed=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data):
    """Two tiny runs of 6 steps, BicycleGAN and pix2pix+noise (nz 8 both)."""
    top = tmp_path_factory.mktemp("runs")
    for variant in ("bicycle", "pix2pix"):
        Trainer(tiny_cfg(top / variant, data, variant=variant, max_steps=6, sample_every=100, save_every=100),
                progress=False).train()
    return top


@pytest.fixture(scope="module")
def loud(runs, tmp_path_factory):
    """The runs' checkpoints with noise added to G's weights: after 6 steps a tiny G draws grey whatever z
    is; these draw images that differ with z and between models (a swapped row or code would show)."""
    folder = tmp_path_factory.mktemp("loud")
    out = []
    for seed, variant in enumerate(("bicycle", "pix2pix"), 1):
        m = load_checkpoint(runs / variant / "checkpoints" / "latest.pt", device="cpu", training=True)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for net in {id(m.G): m.G, id(m.sampler): m.sampler}.values():
                for p in net.parameters():
                    p.add_(torch.randn(p.shape, generator=g) * 0.3)
        out.append(save_checkpoint(m, folder / f"{variant}_loud.pt", step=6))
    return out


def stand_in_networks(monkeypatch, loads):
    """LPIPS and InceptionV3 without their weights files (absent here): seeded random networks, the same
    at every load, each load counted."""
    class Features(torch.nn.Module):  # [0, 1] images -> N x D, as FID's InceptionV3
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0))  # where the features are made: its device

        def forward(self, x):
            return torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3))], 1) * self.scale

    def lpips(version="0.0", backbone=None, linear=None, device="cpu"):
        loads.append("lpips")
        torch.manual_seed(0)
        m = LPIPS(version)
        for w in m.lins:
            w.data.fill_(1.0)
        return m

    monkeypatch.setattr(ev_module, "load_lpips", lpips)
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": loads.append("fid") or Features())


def test_each_row_equals_an_independent_evaluate_of_its_model(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs / "bicycle"), str(runs / "pix2pix" / "checkpoints" / "latest.pt"), *OPTS,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "compare.json").read_text())
    assert [r["name"] for r in rows] == ["bicycle", "pix2pix"]  # a run folder's name; latest.pt: its run's
    for r, variant in zip(rows, ("bicycle", "pix2pix")):
        ckpt = runs / variant / "checkpoints" / "latest.pt"
        assert list(r)[:4] == ["name", "checkpoint", "variant", "step"]
        assert (r["checkpoint"], r["variant"], r["step"]) == (str(ckpt.resolve()), variant, 6)
        want = evaluate(ckpt, **EVAL)
        assert {k: v for k, v in r.items() if k not in ("name", "checkpoint", "step")} == want
    assert set(rows[0]) >= {"diversity_l1", "encoded_l1", "coverage"} and "encoded_l1" not in rows[1]
    assert rows[0]["diversity_l1"] != rows[1]["diversity_l1"]  # two models, not one measured twice
    # the table: a line per model, a column per measure; then the paths
    head = next(line for line in printed.splitlines() if line.startswith("name"))
    assert head.split() == ["name", "diversity_l1", "encoded_l1", "coverage", "validity", "encoded_palette_match"]
    assert re.search(rf"^pix2pix +{rows[1]['diversity_l1']:.4g} +- +", printed, re.M)
    assert printed.rstrip().endswith(f"results: {out / 'compare.json'}\npicture: {out / 'compare.png'}\n"
                                     f"page: {out / 'index.html'}")
    assert (out / "compare.png").is_file() and (out / "index.html").is_file()



def test_one_sample_per_input_keeps_the_diversity_column_and_says_why_it_is_empty(runs, tmp_path, capsys):
    """--n_samples 1 leaves no pair to measure diversity on: evaluate says '-' and why; compare dropped
    the column, a table without diversity and no word of it."""
    out = tmp_path / "cmp"
    opts = [o if o != "4" else "1" for o in OPTS]  # --n_samples 1
    assert main(["compare", str(runs / "bicycle"), str(runs / "pix2pix"), *opts, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    head = next(line for line in printed.splitlines() if line.startswith("name"))
    assert head.split() == ["name", "diversity_l1", "encoded_l1", "coverage", "validity", "encoded_palette_match"]
    assert re.search(r"^bicycle +- +\d", printed, re.M) and re.search(r"^pix2pix +- +- +", printed, re.M)
    why = "diversity needs --n_samples 2 or more, and a model with z (nz above 0)"
    page = (out / "index.html").read_text()
    assert why in printed and why in page and "<svg" not in page  # no chart: no model has a diversity to place
    assert main(["evaluate", str(runs / "bicycle"), *opts, "--phase", "val", "--json", str(tmp_path / "e.json")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("diversity (L1"))
    assert why in line  # evaluate says the same


def dashes_and_notes(table: str, name_col: str = "name") -> tuple[set, dict]:
    """{(row name, column)} of each '-' cell of a terminal table of evaluations, and its notes "COLS -: NAMES:
    reason" as {(name, column): reason}."""
    lines = table.splitlines()
    head = next(line.split() for line in lines if line.startswith(name_col + " "))
    dashes, notes = set(), {}
    for line in lines:
        if m := re.match(r"^([\w ,]+) -: ([^:]+): (.+)$", line):
            cols, names, reason = m.groups()
            notes.update({(n, c): reason for n in names.split(", ") for c in cols.split(", ")})
        elif len(cells := line.split()) == len(head) and cells != head:
            dashes |= {(cells[0], c) for c, v in zip(head, cells) if v == "-"}
    return dashes, notes


def test_every_dash_says_why_naming_the_model(runs, tmp_path, capsys):
    """pix2pix+noise has no encoder: its encoded L1 and palette match said '-' with no word of why, where a
    diversity of one output per input said why."""
    out = tmp_path / "cmp"
    opts = [o if o != "4" else "1" for o in OPTS]  # --n_samples 1: diversity '-' too
    assert main(["compare", str(runs / "bicycle"), str(runs / "pix2pix"), *opts, "--out", str(out)]) == 0
    dashes, notes = dashes_and_notes(capsys.readouterr().out)
    assert dashes == {("bicycle", "diversity_l1"), ("pix2pix", "diversity_l1"), ("pix2pix", "encoded_l1"),
                      ("pix2pix", "encoded_palette_match")}
    assert set(notes) == dashes  # each '-' explained, and nothing else claimed
    assert notes["pix2pix", "encoded_l1"].startswith("no encoder E (pix2pix+noise")
    assert "needs --n_samples 2 or more" in notes["bicycle", "diversity_l1"]
    page = html.unescape((out / "index.html").read_text())
    assert ("encoded reconstruction L1, encoded keeps B's palette -: pix2pix: no encoder E (pix2pix+noise" in page
            and "diversity (L1 between samples) -: bicycle, pix2pix: one output per input" in page)


def test_names_beside_the_picture_rows_are_packed_and_cut_so_that_they_stay_apart():
    # Cut at the lines a row has room for, word by word, "BicycleGAN demo ngf8 200 steps seed 0 run A" and "... run B"
    # were both "BicycleGAN / demo / ngf8 / 200 / steps", no ellipsis: two rows of one name
    from bicyclegan.engine.compare import name_lines
    from bicyclegan.engine.images import label_style
    font, _, _ = label_style(64)
    width = 100
    a, b = (f"BicycleGAN demo ngf8 200 steps seed 0 run {x}" for x in "AB")
    for keep in (1, 2):
        la, lb = name_lines(a, width, font, keep), name_lines(b, width, font, keep)
        assert len(la) <= keep and la != lb and all(font.getlength(line) <= width for line in la + lb), (keep, la)
        assert la[-1].startswith("\u2026") and la[-1].endswith("run A")  # the cut said, the name's end kept
    # run names have no spaces: broken after their _ / - . (a word was cut keeping its start, the end lost)
    c, d = (f"edges2shoes_bicycle_nz8_lr0.0002_seed1/epoch_{e}" for e in (5, 15))
    for keep in (1, 2):
        lc, ld = name_lines(c, width, font, keep), name_lines(d, width, font, keep)
        assert lc != ld and lc[-1].endswith("epoch_5") and ld[-1].endswith("epoch_15"), (keep, lc, ld)
        assert all(font.getlength(line) <= width for line in lc + ld)
    assert "".join(name_lines(c, width, font, 9)) == c  # (broken within the word: no space added)
    assert name_lines("pix2pix with noise", width, font, 3) == ["pix2pix with noise"]  # whole where it fits
    whole = name_lines(a, width, font, 9)  # words packed, several to a line where they fit, the name whole
    assert " ".join(whole) == a and len(whole) < len(a.split()) and name_lines(a, width, font, len(whole)) == whole


def test_a_measure_no_model_has_a_finite_value_of_keeps_its_column_and_says_why():
    # FID null (not finite) for every model: the column went missing from the table and the page, unsaid.
    said = {"dataroot": "/d", "phase": "val", "n_inputs": 5, "n_samples": 4, "seed": 0}
    rows = [{"name": n, "checkpoint": None, "variant": "bicycle", "step": s, **said, "encoded_l1": e, "fid": None}
            for n, s, e in (("a", 5, 0.5), ("b", None, 0.25))]
    dashes, notes = dashes_and_notes(format_compare(rows))
    assert dashes == {("a", "fid"), ("b", "fid")} and set(notes) == dashes
    assert notes["a", "fid"] == "not finite (null in the JSON)"
    page = html.unescape(render_compare(rows, None, 4, 6))
    assert "<th title='fid'>FID (generated vs real B)</th>" in page
    assert "FID (generated vs real B) -: a, b: not finite (null in the JSON)." in page
    # b's step '-' on the page (a model given loaded, not from a file) says why too
    assert "<td>b</td><td>bicycle</td><td>-</td>" in re.sub(r"<td title='[^']*'>", "<td>", page)
    assert "step -: b: a model given as it is in memory, not read from a checkpoint file" in page
    assert "None" not in page  # (a model given in memory: its name's tooltip said "None", its file's)



def test_each_dash_gets_the_reason_of_its_row_and_column():
    """blanks over rows of every case, the reasons worked out by hand: a null diversity (one output per input), an
    encoded measure the row lacks (rows without encoded_missing, as an older evaluate wrote them: no encoder E or no
    B images), another null, encoded too (not finite), a measure a row of an older evaluate lacks (not in its
    results); a failed row says its error instead; a value shown is no '-'."""
    rows = [{"name": "a", "diversity_l1": 0.5, "encoded_l1": 0.25, "fid": 3.0},
            {"name": "b", "diversity_l1": None, "fid": None},
            {"name": "c"},
            {"name": "d", "error": "diverged"},
            {"name": "e", "diversity_l1": 0.5, "encoded_l1": None, "fid": 3.0}]
    got = [(cols, names, reason.split(" (")[0].split(":")[0])
           for cols, names, reason in blanks(rows, ["diversity_l1", "encoded_l1", "fid"], lambda r: r["name"])]
    assert got == [(["diversity_l1"], ["b"], "one output per input"),
                   (["encoded_l1"], ["b", "c"], "no encoded output G(A, E(B)) to measure"),
                   (["fid", "encoded_l1"], ["b", "e"], "not finite"),
                   (["diversity_l1", "fid"], ["c"], "not in its results")]


def test_each_encoded_dash_says_its_rows_recorded_reason():
    # The notes said "no encoder E" for every row without encoded L1, a model with E on inputs without B images
    # too: each row's eval.json says which (encoded_missing); an older row without it reads as either.
    said = {"dataroot": "/d", "phase": "val", "n_inputs": 5, "n_samples": 4, "seed": 0}
    rows = [{"name": n, "checkpoint": f"{n}.pt", "variant": v, "step": 5, **said, "diversity_l1": 0.5, **extra}
            for n, v, extra in (("has", "bicycle", {"encoded_l1": 0.25}),
                                ("noE", "pix2pix", {"encoded_missing": "no encoder E"}),
                                ("noB", "bicycle", {"encoded_missing": "no B images"}),
                                ("old", "bicycle", {}))]
    want = {"noE": "no encoder E (pix2pix+noise, or a checkpoint imported without --E)",
            "noB": "no B images in the split (inputs alone)",
            "old": "no encoded output G(A, E(B)) to measure: the model has no encoder E (pix2pix+noise, or a "
                   "checkpoint imported without --E), or the split no B images"}
    dashes, notes = dashes_and_notes(format_compare(rows))
    assert dashes == set(notes) == {(n, "encoded_l1") for n in want}
    assert all(notes[n, "encoded_l1"].startswith(why) for n, why in want.items())
    page = html.unescape(render_compare(rows, None, 4, 6))
    assert all(f"encoded reconstruction L1 -: {n}: {why}" in page for n, why in want.items())
    # the sweep's table shares the notes (a row per checkpoint, named by its file)
    sweep_rows = [{"checkpoint": r["checkpoint"], "epoch": 1, "step": 5,
                   **{k: v for k, v in r.items() if k not in ("name", "checkpoint", "step")}} for r in rows]
    dashes, notes = dashes_and_notes(format_sweep(sweep_rows), "checkpoint")
    assert all(notes[f"{n}.pt", "encoded_l1"].startswith(why) for n, why in want.items())


def test_encoded_measures_no_model_has_keep_their_columns_and_say_why():
    # Inputs without B images (a plain folder) give no model an encoded output: the encoded columns went missing
    # from compare's and the sweep's tables and pages without a word, where evaluate's table says '-' and why.
    said = {"dataroot": "/d", "phase": "val", "n_inputs": 5, "n_samples": 4, "seed": 0, "metrics": ["l1", "palette"]}
    rows = [{"name": n, "checkpoint": f"{n}.pt", "variant": v, "step": 5, **said, "encoded_missing": why,
             "diversity_l1": 0.5, "coverage": 0.5, "validity": 0.5}
            for n, v, why in (("a", "bicycle", "no B images"), ("b", "pix2pix", "no encoder E"))]
    dashes, notes = dashes_and_notes(format_compare(rows))
    assert dashes == set(notes) == {(n, k) for n in "ab" for k in ("encoded_l1", "encoded_palette_match")}
    assert notes["a", "encoded_l1"].startswith("no B images in the split (inputs alone)")
    assert notes["b", "encoded_l1"].startswith("no encoder E")
    page = html.unescape(render_compare(rows, None, 4, 6))
    assert "encoded reconstruction L1, encoded keeps B's palette -: a: no B images in the split (inputs alone)" in page
    sweep_rows = [{"checkpoint": r["checkpoint"], "epoch": 1, "step": 5,
                   **{k: v for k, v in r.items() if k not in ("name", "checkpoint", "step")}} for r in rows]
    dashes, notes = dashes_and_notes(format_sweep(sweep_rows), "checkpoint")
    assert dashes == set(notes) == {(f"{n}.pt", k) for n in "ab" for k in ("encoded_l1", "encoded_palette_match")}
    # the metrics not asked for add no column (l1 alone: no palette match)
    rows = [{**r, "metrics": ["l1"]} for r in rows]
    dashes, _ = dashes_and_notes(format_compare([{k: v for k, v in r.items() if k not in ("coverage", "validity")}
                                                 for r in rows]))
    assert dashes == {(n, "encoded_l1") for n in "ab"}


def test_compare_json_records_the_data_folder_absolute(runs, data, tmp_path, monkeypatch):
    # --dataroot as typed (relative to the folder compare ran in) was what compare.json held: read from another
    # folder, a row's table said "the images of data" of a dataset with a val/ split
    monkeypatch.chdir(data.parent)
    rows, out = compare([runs / "bicycle", runs / "pix2pix"], dataroot=data.name, out=tmp_path / "c", log=None, **EVAL)
    assert json.loads((out / "compare.json").read_text()) == rows
    assert [(r["dataroot"], r["dataroot_given"]) for r in rows] == [(str(data.resolve()), data.name)] * 2
    monkeypatch.chdir(tmp_path)
    assert format_table(rows[0]).splitlines()[1].endswith("5 x 4 (val)")
    assert f"2 models, each on val/ of {data.resolve()}: the first 5 inputs" in render_compare(rows, None, 4, 6)


def test_an_out_holding_another_commands_results_is_refused_and_left_as_it_was(runs, tmp_path, capsys):
    # `compare ... --out RUN/results/test` replaced the gallery sample wrote there (its index.html; its images left
    # unshown), and sample or interpolate into a comparison's folder or a sweep's replaced that page in turn
    bike, p2p = str(runs / "bicycle"), str(runs / "pix2pix")
    gallery, cmp, sweep, site = (tmp_path / name for name in ("test", "cmp", "sweep", "site"))
    assert main(["sample", bike, "--num", "2", "--n_samples", "1", "--device", "cpu", "--out", str(gallery)]) == 0
    assert main(["compare", bike, p2p, *OPTS, "--out", str(cmp)]) == 0
    assert main(["compare", bike, p2p, *OPTS, "--out", str(cmp)]) == 0  # an earlier comparison's: replaced
    sweep.mkdir()
    (sweep / "sweep.json").write_text("[]")
    (sweep / "index.html").write_text("<p>the sweep's page</p>")
    site.mkdir()
    (site / "index.html").write_text("<p>my page</p>")
    capsys.readouterr()

    def files():
        return {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def refused(command, *args, folder, said):
        before = files()
        assert main([command, *args, "--device", "cpu", "--out", str(folder)]) == 2
        assert capsys.readouterr().err == (f"bicyclegan {command}: OutputError: --out {folder} holds {said}, whose "
                                           f"page {command}'s index.html would replace; give {command} a folder of its "
                                           f"own (--out; out in Python)\n")
        assert files() == before
    compare_args = [bike, p2p, *OPTS[:-4], *OPTS[-2:]]  # (OPTS without its --device)
    refused("compare", *compare_args, folder=gallery, said=f"sample's results ({gallery / 'grid.png'})")
    refused("compare", *compare_args, folder=sweep, said=f"evaluate --epoch all's results ({sweep / 'sweep.json'})")
    refused("compare", *compare_args, folder=site, said=f"an index.html that no compare wrote ({site / 'index.html'})")
    for command, args in (("sample", ["--num", "1"]), ("interpolate", ["--num", "1", "--frames", "1", "--no-mp4"])):
        refused(command, bike, *args, folder=cmp, said=f"compare's results ({cmp / 'compare.json'})")
        refused(command, bike, *args, folder=sweep, said=f"evaluate --epoch all's results ({sweep / 'sweep.json'})")
        refused(command, bike, *args, folder=site,
                said=f"an index.html that no sample or interpolate wrote ({site / 'index.html'})")
    # sample and interpolate still take each other's folder (each drops the other's gallery files)
    assert main(["interpolate", bike, "--num", "1", "--frames", "1", "--no-mp4", "--device", "cpu", "--out",
                 str(gallery)]) == 0
    assert (gallery / "path.json").is_file() and not (gallery / "grid.png").exists()


def test_an_lpips_or_fid_option_without_its_metric_is_refused(runs, tmp_path, capsys):
    # --lpips_linear (or --fid_weights) without lpips (fid) in --metrics was taken and changed nothing: the table
    # without LPIPS was the only sign that the metric had not been asked for
    run = runs / "bicycle"
    cases = [(["evaluate", str(run), "--lpips_linear", "lin.pth", "--lpips_pairs", "all"],
              "--lpips_linear, --lpips_pairs are options of the lpips metric, and the default metrics (l1, plus "
              "palette on demo data) do not include it: add lpips to --metrics (e.g. --metrics l1,lpips), or leave "
              "them out"),
             (["compare", str(run), str(runs / "pix2pix"), "--out", str(tmp_path / "c"), "--metrics", "l1,lpips",
               "--fid_weights", "f.pth"],
              "--fid_weights is an option of the fid metric, and --metrics l1,lpips does not include it"),
             (["evaluate", str(run), "--epoch", "all", "--lpips_version", "0.1"], "--lpips_version is an option")]
    for args, said in cases:
        assert main([*args, *OPTS]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"bicyclegan {args[0]}: ConfigError: {said}") and err.count("\n") == 1, err
    assert not (run / "results").exists() and not (tmp_path / "c").exists()
    # the options left at their defaults, or given with their metric: no refusal (here: no weights files to read)
    assert main(["evaluate", str(run), "--lpips_version", "0.0", "--json", str(tmp_path / "e.json"), *OPTS]) == 0
    assert main(["evaluate", str(run), "--metrics", "fid", "--fid_weights", str(tmp_path / "none.pth"), *OPTS]) == 2
    assert "none.pth does not exist" in capsys.readouterr().err


def test_models_given_loaded_name_the_file_and_step_they_were_read_from(loud, tmp_path):
    """A model loaded from a checkpoint knows its file (BicycleGAN.source): its row says it, as a path's
    does; a model built in memory has neither."""
    fresh = BicycleGAN(load_checkpoint(loud[1], device="cpu").cfg, device="cpu", training=False)
    rows, _ = compare([load_checkpoint(loud[0], device="cpu"), fresh], out=tmp_path / "c", log=None, **EVAL)
    assert (rows[0]["checkpoint"], rows[0]["step"]) == (str(Path(loud[0]).resolve()), 6)
    assert (rows[1]["checkpoint"], rows[1]["step"]) == (None, None)


def test_a_loaded_models_weights_are_hashed_once(loud, tmp_path, monkeypatch):
    """A model given loaded is known by its tensors' digest (weights_digest: it may have trained since its file was
    read), a pass over all of them: compare names its kept measures' folder by it and their recipe records it, from
    one pass (there were two per model)."""
    checkpoint = importlib.import_module("bicyclegan.engine.checkpoint")
    models = [load_checkpoint(loud[0], device="cpu"), BicycleGAN(load_checkpoint(loud[1], device="cpu").cfg,
                                                                  device="cpu", training=False)]
    real, hashed = checkpoint.digest, []

    def counting(state):
        if set(state) == {"G", "E"}:  # (a model's tensors; a checkpoint file's state has more)
            hashed.append(next(iter(state["G"].values())).data_ptr())
        return real(state)
    monkeypatch.setattr(checkpoint, "digest", counting)
    rows, _ = compare(models, out=tmp_path / "c", log=None, **EVAL)
    assert "error" not in rows[0] and "error" not in rows[1]
    firsts = [next(iter(m.sampler.state_dict().values())).data_ptr() for m in models]
    assert sorted(hashed) == sorted(firsts), (hashed, firsts)

def test_metric_networks_load_once_for_all_models(runs, loud, tmp_path, monkeypatch):
    loads = []
    stand_in_networks(monkeypatch, loads)
    models = [runs / "bicycle", runs / "pix2pix", loud[0]]
    rows, out = compare(models, out=tmp_path / "c", metrics="l1,lpips,fid", log=None, **EVAL)
    assert loads == ["lpips", "fid"]
    for r, m in zip(rows, models):
        want = evaluate(m, metrics="l1,lpips,fid", **EVAL)
        assert {k: v for k, v in r.items() if k not in ("name", "checkpoint", "step")} == want
    assert len({r["fid"] for r in rows}) == 3 and len({r["diversity_lpips"] for r in rows}) == 3
    # the page: FID against LPIPS diversity, one labelled point per model; the lowest FID in bold
    page = (out / "index.html").read_text()
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in svg.iter(f"{ns}text")]
    assert "FID (generated vs real B) (lower is better)" in texts
    assert "diversity (LPIPS between samples) (more: more diverse)" in texts
    assert sorted(t for t in texts if t in ("bicycle", "pix2pix", "bicycle_loud")) == ["bicycle", "bicycle_loud",
                                                                                         "pix2pix"]
    circles = {c.find(f"{ns}title").text.split(":")[0]: (float(c.get("cx")), float(c.get("cy")))
               for c in svg.iter(f"{ns}circle")}
    by_x = sorted(rows, key=lambda r: r["diversity_lpips"])
    assert sorted(circles, key=lambda n: circles[n][0]) == [r["name"] for r in by_x]
    by_y = sorted(rows, key=lambda r: -r["fid"])  # higher values higher up: smaller y
    assert sorted(circles, key=lambda n: circles[n][1]) == [r["name"] for r in by_y]
    best = min(rows, key=lambda r: r["fid"])
    assert re.search(rf"<td title='[^']*'>{best['name']}</td>.*?<td><b>{best['fid']:.4g}</b>"
                     r"<span class='vh'> \(best\)</span></td>", page)
    # bold where models differ: FID, encoded L1 (the two bicycle models), coverage unless all tie
    assert page.count("<b>") == page.count(" (best)</span>") == sum(
        len({r[k] for r in rows if r.get(k) is not None}) > 1 for k in ("fid", "encoded_l1", "coverage"))


def _tile(img: np.ndarray, xy, size=64, scale=2) -> np.ndarray:
    x, y = xy
    return img[y:y + size:scale, x:x + size:scale].astype(int)


def spy_drawn(monkeypatch) -> list:
    """The texts compare.png is drawn with, as drawn: the headings (fit_label's) and the rows' names (name_lines',
    whose fit_label of each word is not heard)."""
    cmp_module, drawn = importlib.import_module("bicyclegan.engine.compare"), []
    fit, names, inside = cmp_module.fit_label, cmp_module.name_lines, []

    def name_lines(text, *a):
        drawn.append(text)
        inside.append(1)
        try:
            return names(text, *a)
        finally:
            inside.pop()

    def fit_label(text, *a):
        if not inside:
            drawn.append(text)
        return fit(text, *a)
    monkeypatch.setattr(cmp_module, "name_lines", name_lines)
    monkeypatch.setattr(cmp_module, "fit_label", fit_label)
    return drawn


def test_picture_rows_are_each_model_on_the_same_inputs_and_codes(data, loud, tmp_path, monkeypatch):
    # a third model without z (pix2pix, nz 0; untrained): its one output
    drawn = spy_drawn(monkeypatch)
    flat = BicycleGAN(tiny_cfg(tmp_path / "flat", data, variant="pix2pix", nz=0))
    torch.manual_seed(5)
    with torch.no_grad():
        for p in flat.sampler.parameters():
            p.add_(torch.randn(p.shape) * 0.3)
    flat_ckpt = save_checkpoint(flat, tmp_path / "flat.pt")
    models = [*loud, flat_ckpt]
    rows, out = compare(models, out=tmp_path / "c", show=2, show_samples=3, log=None, **EVAL)
    assert [r["name"] for r in rows] == ["bicycle_loud", "pix2pix_loud", "flat"]
    # the model without z's one output is said so where its row is named (it sits under the heading "z1")
    assert drawn == ["input", "ground truth", "z1", "z2", "z3", "bicycle_loud", "pix2pix_loud", "flat (no z)"]
    pic = np.asarray(Image.open(out / "compare.png").convert("RGB"))
    # where the tiles are (the layout depends on shapes and names only)
    _, boxes = compare_image(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32),
                             [(n, [torch.zeros(2, 3, 32, 32)] * k) for n, k in zip(
                                 ["bicycle_loud", "pix2pix_loud", "flat (no z)"], (3, 3, 1))])
    assert pic.shape[:2] == Image.open(out / "compare.png").size[::-1]
    files = sorted((data / "val").glob("*.png"))[:2]
    AB = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])  # 2 x 32 x 64 x 3, A|B
    A = torch.from_numpy(AB[:, :, :32]).permute(0, 3, 1, 2).float() / 127.5 - 1
    z = torch.randn(5, 4, 8, generator=torch.Generator().manual_seed(3))[:2, :3]  # the protocol's draw, 5 x 4 x nz
    for i in range(2):
        assert (_tile(pic, boxes[(i, "input")]) == AB[i, :, :32]).all()
        assert (_tile(pic, boxes[(i, "ground truth")]) == AB[i, :, 32:]).all()
    seen = []
    for k, path in enumerate(models):
        G = load_checkpoint(path, device="cpu").sampler.eval()
        with torch.no_grad():
            outs = [G(A, z[:, j]) for j in range(3)] if k < 2 else [G(A, None)]
        assert not any((i, k, len(outs)) in boxes for i in range(2))  # no more outputs than these
        for j, o in enumerate(outs):
            want = ((o.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
            for i in range(2):
                got = _tile(pic, boxes[(i, k, j)])
                assert np.abs(got - want[i]).max() <= 1, (k, j, i)
                seen.append(want[i])
    # the rows differ from each other (a swapped model or code would fail above)
    assert min(np.abs(a - b).mean() for n, a in enumerate(seen) for b in seen[n + 1:]) > 5


def test_one_model_given_twice_is_measured_once_and_said_so(runs, tmp_path, capsys):
    # The second took the first's kept measures (one folder: kept_key) and said they were "already measured by an
    # earlier call", of a folder this call had made.
    run = runs / "bicycle"
    assert main(["compare", str(run), str(run / "checkpoints" / "latest.pt"), *OPTS, "--out", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "earlier call" not in err, err
    assert "[1/2] bicycle: measured\n" in err and "[2/2] bicycle-2: the same weights and config as bicycle: its " \
        "measures\n" in err, err
    rows = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [r.pop("name") for r in rows] == ["bicycle", "bicycle-2"] and rows[0] == rows[1]
    assert rows[0]["diversity_l1"] == evaluate(run / "checkpoints" / "latest.pt", **EVAL)["diversity_l1"]


def test_names_default_unique_and_given(runs, tmp_path):
    run = runs / "bicycle"
    assert model_names([run, run / "checkpoints" / "latest.pt", run / "checkpoints" / "epoch_2.pt",
                        tmp_path / "x" / "shoes.pt", tmp_path / "y" / "shoes.pt"]) == [
        "bicycle", "bicycle-2", "bicycle/epoch_2", "shoes", "shoes-2"]
    assert model_names([run, run, run]) == ["bicycle", "bicycle-2", "bicycle-3"]  # not bicycle-2 twice
    assert model_names([run, run], "a, b") == ["a", "b"]
    for bad, said in (("a", "expected 2 non-empty comma-separated names, one per model, got 1"),
                      ("a,", "expected 2 non-empty comma-separated names, one per model, got 2, 1 of them empty"),
                      ("a,a", "a given twice")):
        with pytest.raises(ConfigError, match=said):
            model_names([run, run], bad)


def test_a_model_whose_outputs_are_not_finite_gets_a_row_and_the_others_are_written(runs, loud, tmp_path,
                                                                                      monkeypatch):
    real = Evaluation.run

    def run(self, *a, **k):
        if self.model.cfg.variant == "pix2pix":
            raise DivergenceError("the model's outputs are not finite: it cannot be evaluated")
        return real(self, *a, **k)
    monkeypatch.setattr(Evaluation, "run", run)
    rows, out = compare([runs / "bicycle", runs / "pix2pix", loud[0]], out=tmp_path / "c", show=1, log=None, **EVAL)
    assert rows[1] == {"name": "pix2pix", "checkpoint": str((runs / "pix2pix" / "checkpoints" / "latest.pt").resolve()),
                       "variant": "pix2pix", "step": 6,
                       "error": "the model's outputs are not finite: it cannot be evaluated"}
    assert "encoded_l1" in rows[0] and "encoded_l1" in rows[2]
    assert json.loads((out / "compare.json").read_text()) == rows
    _, boxes = compare_image(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32),
                             [(n, [torch.zeros(1, 3, 32, 32)] * 4) for n in ("bicycle", "bicycle_loud")])
    assert Image.open(out / "compare.png").size == (max(x for x, _ in boxes.values()) + 64 + 2,
                                                    max(y for _, y in boxes.values()) + 64 + 2)  # two model rows
    page = (out / "index.html").read_text()
    assert "the model&#x27;s outputs are not finite" in page
    # the picture's caption names the model it has no row for (it said "a row per model", a row short)
    caption = re.search(r"<figcaption>(For each of the first 1 input:[^<]*)</figcaption>", page).group(1)
    assert caption.endswith(" No row for pix2pix: see the table.")
    # a name is markup nowhere on the page, the caption's too (a run folder named so ran its script there)
    name = "x<img src=x onerror=alert(1)>"
    page = render_compare([{"name": "a", "variant": "bicycle", "step": 1, "diversity_l1": 0.5},
                           {"name": name, "variant": "pix2pix", "step": 1, "error": "boom"}], "compare.png", 1, 2)
    assert "<img src=x" not in page and f"No row for {html.escape(name)}: see the table." in page


def _diverged(src, dst):
    bad = load_checkpoint(src, device="cpu", training=True)
    with torch.no_grad():
        next(bad.G.parameters()).view(-1)[0] = float("nan")
    bad.nonfinite = lambda optimizers=False: {}  # save_checkpoint's own refusal, passed
    return save_checkpoint(bad, dst, step=6)


def test_refusals_before_any_work(data, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Evaluation, "run", lambda *a, **k: pytest.fail("measured before the refusal"))
    bike, p2p = str(runs / "bicycle"), str(runs / "pix2pix")
    other = shutil.copytree(data, tmp_path / "other")  # the same images in another folder
    elsewhere = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "o", other)), tmp_path / "elsewhere.pt")
    bigger = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "b", data, crop_size=64, load_size=64)),
                             tmp_path / "bigger.pt")
    gray = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "g", data, output_nc=1)), tmp_path / "gray.pt")
    btoa = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "d", data, direction="BtoA")), tmp_path / "btoa.pt")
    gray_in = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "gi", data, input_nc=1)), tmp_path / "gray_in.pt")
    resized = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "r", data, preprocess="resize_and_crop")),
                              tmp_path / "resized.pt")
    resized48 = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "r48", data, preprocess="resize_and_crop",
                                                    load_size=48)), tmp_path / "resized48.pt")
    # --preprocess none never reads load_size: a run's leftover value is not another input (it was refused)
    loaded48 = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "l48", data, load_size=48)), tmp_path / "loaded48.pt")
    # a run trained on its data's first 3 images: its --max_dataset_size is its training set's, not the split's
    capped = save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / "m", data, max_dataset_size=3)), tmp_path / "capped.pt")
    diverged = _diverged(runs / "pix2pix" / "checkpoints" / "latest.pt", tmp_path / "diverged.pt")
    (tmp_path / "afile").write_text("x")
    cases = [
        ([bike], "compare needs two models or more, got 1"),
        ([bike, p2p, "--names", "a"], "names='a': expected 2 non-empty comma-separated names"),
        ([bike, p2p, "--names", "a,a"], "names='a,a': a given twice"),
        ([bike, p2p, "--out", str(tmp_path / "afile")], f"--out {tmp_path / 'afile'} is a file"),
        ([bike, str(tmp_path / "nothere.pt")], f"checkpoint {tmp_path / 'nothere.pt'} does not exist"),
        ([bike, str(elsewhere)], f"bicycle and elsewhere differ in data folder ({data.resolve()} vs "
                                 f"{other.resolve()}): the models compared must read the same inputs (pass --dataroot"),
        ([bike, str(bigger)], "bicycle and bigger differ in image size (32x32 vs 64x64): the "
                              "models compared must read the same inputs\n"),
        ([str(resized), str(resized48)], "resized and resized48 differ in load_size (32 vs 48): the "
                                         "models compared must read the same inputs\n"),
        ([bike, str(gray)], "bicycle and gray differ in output channels (3 vs 1)"),
        ([bike, str(btoa)], "bicycle and btoa differ in direction (AtoB vs BtoA)"),
        ([bike, str(gray_in)], "bicycle and gray_in differ in input channels (3 vs 1)"),
        ([bike, str(resized)], "bicycle and resized differ in preprocess (none vs resize_and_crop)"),
        ([bike, p2p, "--out", str(tmp_path / "afile" / "sub")],
         f"cannot write compare results into {tmp_path / 'afile' / 'sub'}"),
        ([bike, str(diverged)], f"DivergenceError: diverged ({diverged}) holds non-finite weights in G (1 values); "
                                "compare a checkpoint from before its training diverged"),
        ([bike, p2p, "--show", "0"], None),  # argparse's own refusal (exit 2, usage)
    ]
    for args, said in cases:
        out = tmp_path / "never"
        code = None
        try:
            code = main(["compare", *args, *OPTS] + ([] if "--out" in args else ["--out", str(out)]))
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err
        assert code == 2, args
        if said:
            assert err.count("\n") == 1 and said in err, (args, err)
        assert not out.exists(), args
    # the same images, named by --dataroot for both: no refusal
    monkeypatch.undo()
    rows, _ = compare([bike, elsewhere], dataroot=other, out=tmp_path / "ok", log=None, **EVAL)
    assert [r["dataroot"] for r in rows] == [str(other)] * 2
    rows, _ = compare([bike, capped], out=tmp_path / "ok3", log=None, **EVAL)
    rows, _ = compare([bike, loaded48], out=tmp_path / "ok4", log=None, **EVAL)
    assert len(rows) == 2
    assert [r["n_inputs"] for r in rows] == [EVAL["num"]] * 2 and EVAL["num"] > 3  # (it read 3, and was refused)


def test_one_path_or_model_given_from_python_is_one_model(runs, tmp_path):
    """compare("runs/x") listed the path's characters: "checkpoint r does not exist"."""
    run = runs / "bicycle"
    for one in (str(run), run, load_checkpoint(run)):
        with pytest.raises(ConfigError, match="^compare needs two models or more, got 1$"):
            compare(one, out=tmp_path / "c", log=None)
    assert not (tmp_path / "c").exists()


def test_n_samples_is_refused_where_no_model_has_z_and_taken_where_one_has(data, runs, tmp_path, capsys,
                                                                          monkeypatch):
    """Models without z (nz=0) make one output per input: compare took --n_samples for them alone and changed
    nothing (each row said n_samples 1). Refused as evaluate refuses it, naming the models; beside a model with
    z it is that model's number, the others make their one output."""
    flat = [save_checkpoint(BicycleGAN(tiny_cfg(tmp_path / n, data, variant="pix2pix", nz=0)), tmp_path / f"{n}.pt")
            for n in ("flat", "flat2")]
    out = tmp_path / "c"
    assert main(["compare", *map(str, flat), *OPTS, "--out", str(out)]) == 2  # (OPTS: --n_samples 4)
    assert capsys.readouterr().err.strip() == (
        "bicyclegan compare: ConfigError: n_samples=4: none of the models has a latent code (nz=0: flat, flat2): "
        "one output per input, no z drawn, so it changes nothing; leave it out")
    assert not out.exists()
    drawn = spy_drawn(monkeypatch)
    rows, _ = compare(flat, out=out, log=None, **{**EVAL, "n_samples": None})
    assert [r["n_samples"] for r in rows] == [1, 1]
    # the page said "x 1 random z (seed 0)" of models that draw none
    page = (out / "index.html").read_text()
    assert "x its one output (no model has z), the same inputs for each." in page and "random z" not in page
    assert drawn[:3] == ["input", "ground truth", "output"]  # no code drawn: not "z1"
    rows, _ = compare([runs / "bicycle", flat[0]], out=tmp_path / "mixed", log=None, **EVAL)
    assert [r["n_samples"] for r in rows] == [4, 1]
    page = (tmp_path / "mixed" / "index.html").read_text()
    assert f"x 4 random z (seed {EVAL['seed']}) (a model without z: its one output)," in page


def test_networks_from_refuses_an_evaluation_of_other_metrics(runs, monkeypatch):
    stand_in_networks(monkeypatch, loads := [])
    ev = Evaluation(runs / "bicycle", phase="val", num=4, device="cpu", metrics="l1,fid")
    shared = Evaluation(runs / "pix2pix", phase="val", num=4, device="cpu", metrics="l1,fid", networks_from=ev)
    assert shared.inception is ev.inception and loads == ["fid"]
    with pytest.raises(ValueError, match="networks_from"):
        Evaluation(runs / "pix2pix", phase="val", num=4, device="cpu", metrics="l1,lpips", networks_from=ev)
    v00 = Evaluation(runs / "bicycle", phase="val", num=4, device="cpu", metrics="l1,lpips")
    with pytest.raises(ValueError, match="networks_from"):  # its LPIPS would be the other version's
        Evaluation(runs / "pix2pix", phase="val", num=4, device="cpu", metrics="l1,lpips", lpips_version="0.1",
                   networks_from=v00)


def test_scatter_places_points_by_value():
    svg = ET.fromstring(svg_scatter("t", [(0.0, 10.0, "a"), (1.0, 20.0, "b"), (0.5, 15.0, "c")], x_title="x",
                                    y_title="y", width=300, height=200))
    wide = ET.fromstring(svg_scatter("t", [(0.0, 10.0, "a"), (1.0, 20.0, "model b"), (0.5, 15.0, "c")],
                                     x_title="x", y_title="y", width=300, height=200))
    ns = "{http://www.w3.org/2000/svg}"
    pts = {c.find(f"{ns}title").text.split(":")[0]: (float(c.get("cx")), float(c.get("cy")))
           for c in svg.iter(f"{ns}circle")}
    # the plot: x from 56 to 284, y from 40 to 166, each axis the values' range and a tenth more either way
    assert pts["a"] == pytest.approx((56 + 228 / 12, 40 + 126 * 11 / 12), abs=0.06)
    assert pts["b"] == pytest.approx((56 + 228 * 11 / 12, 40 + 126 / 12), abs=0.06)
    assert pts["c"] == pytest.approx((56 + 228 / 2, 40 + 126 / 2), abs=0.06)
    labels = {t.text: t.get("text-anchor") for t in svg.iter(f"{ns}text") if t.text in "abc"}
    assert labels == {"a": "start", "c": "start", "b": "start"}  # right of the points, within the plot
    labels = {t.text: t.get("text-anchor") for t in wide.iter(f"{ns}text") if t.text in ("a", "model b", "c")}
    assert labels == {"a": "start", "c": "start", "model b": "end"}  # no room right of b: to its left


def test_labels_in_the_picture_keep_letters_the_font_lacks_readable():
    # Pillow's own font has no é, ñ or CJK: a run named "a b&<'é" had a box for its last letter on compare.png
    from PIL import ImageFont

    from bicyclegan.engine.images import LABEL_FONT, drawable, fit_label
    if bytes(LABEL_FONT.getmask("é")) != bytes(LABEL_FONT.getmask("\U0010ffff")):
        pytest.skip("this Pillow's own font draws é")
    assert drawable("a b&<'é") == "a b&<'e" and drawable("Ñandú 日本 x±1") == "Nandu ?? x±1"
    assert fit_label("café 日本", 500) == ["cafe ??"]
    big = ImageFont.load_default(size=20)  # (the larger titles over wide tiles: the same font)
    assert bytes(big.getmask(drawable("é", big))) == bytes(big.getmask("e"))


def test_scatter_of_all_zero_values_spans_0_to_1():
    # two models of validity 0 (and no diversity: pix2pix): the axes were -1 to 1, values no share takes
    svg = ET.fromstring(svg_scatter("t", [(0.0, 0.0, "a"), (0.0, 0.0, "b")], x_title="x", y_title="y"))
    ns = "{http://www.w3.org/2000/svg}"
    for cls in ("yl", "xl"):
        labels = [t.text for t in svg.iter(f"{ns}text") if t.get("class") == cls]
        assert labels[0] in ("0", "1") and {"0", "1"} <= set(labels) and not any(x.startswith("-") for x in labels)


def test_best_is_bold_only_where_a_model_beat_another():
    rows = [{"name": "a", "checkpoint": None, "variant": "bicycle", "step": 1, "fid": 10.0, "coverage": 0.5,
             "encoded_l1": 0.25},
            {"name": "b", "checkpoint": None, "variant": "pix2pix", "step": 1, "fid": 9.0, "coverage": 0.5},
            {"name": "c", "checkpoint": None, "variant": "cvae", "step": 1, "fid": None, "coverage": 0.5}]
    assert {k: r["name"] for k, r in best_of(rows).items()} == {"fid": "b"}  # coverage: a tie; encoded L1: alone
    page = render_compare(rows, None, 4, 6)
    assert re.findall(r"<b>(.*?)</b>", page) == ["9"]


def test_lpips_diversity_is_shown_with_its_standard_error_as_evaluate_prints_it():
    # The table and page gave 0.6625 and 0.6727 as they were: within one standard error of each other (evaluate's
    # "0.6625 ± 0.0151"), nothing said it.
    lp = {"net": "alex", "version": "0.0", "pairs": "consecutive", "n_pairs": 76, "std": 0.13, "stderr": 0.0151}
    base = {"checkpoint": None, "variant": "bicycle", "step": 1}
    rows = [{**base, "name": "cvae", "diversity_lpips": 0.66254, "lpips": lp},
            {**base, "name": "bicycle", "diversity_lpips": 0.6727, "lpips": {**lp, "stderr": 0.0149}}]
    table = format_compare(rows)
    assert "0.6625 ± 0.0151" in table and "0.6727 ± 0.0149" in table
    page = render_compare(rows, None, 4, 6)
    assert "<td>0.6625 ± 0.0151</td>" in page and "± the standard error of its mean over the pairs" in page
    old = [{**r, "lpips": {k: v for k, v in lp.items() if k != "stderr"}} for r in rows]  # an older file's rows
    assert "<td>0.6625</td>" in render_compare(old, None, 4, 6) and "±" not in format_compare(old)


def test_fids_from_different_numbers_of_images_are_not_ranked_and_the_counts_are_said():
    """A model without z makes one output per input, the others --n_samples: its FID, from fewer images, is
    biased upward (evaluate's table says so), and was set in the table beside theirs with the lower one bold."""
    base = {"checkpoint": None, "variant": "pix2pix", "step": 1, "encoded_l1": None}
    rows = [{**base, "name": "flat", "fid": 90.0, "fid_images": {"generated": 5, "real": 5}, "coverage": 0.25},
            {**base, "name": "bicycle", "fid": 60.0, "fid_images": {"generated": 20, "real": 5}, "coverage": 0.5},
            {**base, "name": "broken", "error": "the model's outputs are not finite"}]
    assert {k: r["name"] for k, r in best_of(rows).items()} == {"coverage": "bicycle"}
    said = "FID from different numbers of images, generated vs real (flat: 5 vs 5, bicycle: 20 vs 5)"
    # (then why encoded L1 says '-': a null column was left out, unsaid)
    assert format_compare(rows).endswith(f"\n{said}: these do not compare\n"
                                         "encoded_l1 -: flat, bicycle: not finite (null in the JSON)")
    page = render_compare(rows, None, 4, 6)
    assert re.findall(r"<b>(.*?)</b>", page) == ["0.5"] and f"{said}: fewer images bias FID upward" in page
    # the same counts: ranked, nothing said
    rows[0]["fid_images"] = rows[1]["fid_images"]
    assert best_of(rows)["fid"]["name"] == "bicycle"
    assert "FID from different" not in format_compare(rows) + render_compare(rows, None, 4, 6)


def test_the_page_says_how_lpips_and_fid_were_measured():
    # The page showed LPIPS and FID figures alone: v0.1's are about 2.4 times v0.0's (the paper's), and a FID from
    # fewer than 2048 images is biased upward; evaluate's table says both, the page neither
    base = {"checkpoint": None, "variant": "bicycle", "step": 1, "dataroot": "/d", "phase": "val", "n_inputs": 5,
            "n_samples": 4, "seed": 0, "lpips": {"net": "alex", "version": "0.1", "pairs": "all", "n_pairs": 30}}
    rows = [{**base, "name": n, "diversity_lpips": d, "fid": f, "fid_images": {"generated": 20, "real": 5}}
            for n, d, f in (("a", 0.25, 40.0), ("b", 0.5, 30.0))]
    said = re.search(r"<p class='meta'>(.*?)</p>", render_compare(rows, None, 4, 6)).group(1)
    assert said.endswith("(models of one nz get the same z). LPIPS: alex v0.1, all pairs. FID: 20 generated vs 5 "
                         "real images; under 2048: biased upward, compare only at equal counts.")
    assert format_compare(rows).splitlines()[3:] == [  # the terminal's table says it too, under the rows
        "LPIPS: alex v0.1, all pairs. FID: 20 generated vs 5 real images; under 2048: biased upward, compare only at "
        "equal counts."]
    rows[1]["fid_images"] = {"generated": 5, "real": 5}  # counts that differ: listed per model, not the first's
    said = re.search(r"<p class='meta'>(.*?)</p>", render_compare(rows, None, 4, 6)).group(1)
    assert said.endswith("LPIPS: alex v0.1, all pairs.")
    for r in rows:  # 2048 real images, the least without the caveat (fewer: biased upward)
        r["fid_images"] = {"generated": 8192, "real": 2048}
    assert format_compare(rows).splitlines()[3:] == ["LPIPS: alex v0.1, all pairs. FID: 8192 generated vs 2048 real "
                                                     "images."]


def test_scatter_labels_cover_no_other_point_and_stay_in_the_plot_where_they_fit():
    # Two long names: the label of the point right of the middle was drawn to its left across its neighbour's dot
    # (which then read as its), and the neighbour's, moved a line down, ran past the plot's right frame
    from bicyclegan.engine.report import LABEL_CHAR_W
    a, b = "demo ngf8 200 steps run A", "demo ngf8 200 steps run B"
    pts = [(0.39, 0.50, a), (0.17, 0.505, b), (0.60, 0.2, "p")]
    svg = ET.fromstring(svg_scatter("t", pts, x_title="x", y_title="y"))
    ns = "{http://www.w3.org/2000/svg}"
    dots = [(float(c.get("cx")), float(c.get("cy"))) for c in svg.iter(f"{ns}circle")]
    box = svg.find(f"{ns}rect")
    frame = float(box.get("x")), float(box.get("x")) + float(box.get("width"))
    for t in svg.iter(f"{ns}text"):
        if t.text not in (a, b, "p"):
            continue
        w, x, y = LABEL_CHAR_W * len(t.text), float(t.get("x")), float(t.get("y"))
        left = x if t.get("text-anchor") == "start" else x - w
        own = dots[[p[2] for p in pts].index(t.text)]
        assert not any(left - 4 < cx < left + w + 4 and y - 12 < cy < y + 4 for cx, cy in dots if (cx, cy) != own), \
            t.text  # no other dot under the label
        assert frame[0] <= left and left + w <= frame[1], t.text  # within the plot (each fits on one side)
    # a label longer than the room on either side is cut (its point's tooltip whole); crowded points near the
    # plot's bottom get slots above, not below it on the ticks
    long = "edges2shoes_bicycle_nz8_lr0.0002_seed1/epoch_" * 3
    for pts in ([(30.1, 0.21, long + "5"), (25.3, 0.19, long + "10"), (20.2, 0.17, long + "15")],
                [(1, 1, f"m{k}") for k in range(4)] + [(2, 2, "far")]):
        svg = ET.fromstring(svg_scatter("t", pts, x_title="x", y_title="y"))
        box = svg.find(f"{ns}rect")
        x0, y0 = float(box.get("x")), float(box.get("y"))
        x1, y1 = x0 + float(box.get("width")), y0 + float(box.get("height"))
        labels = [t for t in svg.iter(f"{ns}text") if t.get("class") == "pl"]
        assert len(labels) == len(pts)
        for t in labels:
            w, x, y = LABEL_CHAR_W * len(t.text), float(t.get("x")), float(t.get("y"))
            left = x if t.get("text-anchor") == "start" else x - w
            assert x0 <= left and left + w <= x1 + 0.01 and y0 + 10 <= y <= y1 - 2, (t.text, left, y)
        titles = [c.find(f"{ns}title").text for c in svg.iter(f"{ns}circle")]
        assert [t.split(": ")[0] for t in titles] == [p[2] for p in pts]  # the tooltips whole
    # more labels at one point near the right edge than the plot's height holds: the rest go above and below it,
    # still on the side with room (to its left), not past the right frame
    pts = [(0.1, 0.5, "far")] + [(1.0, 0.5, f"model {k:02d}") for k in range(30)]
    svg = ET.fromstring(svg_scatter("t", pts, x_title="x", y_title="y"))
    box = svg.find(f"{ns}rect")
    x0, x1 = float(box.get("x")), float(box.get("x")) + float(box.get("width"))
    for t in svg.iter(f"{ns}text"):
        if t.get("class") == "pl":
            w, x = LABEL_CHAR_W * len(t.text), float(t.get("x"))
            left = x if t.get("text-anchor") == "start" else x - w
            assert x0 <= left and left + w <= x1 + 0.01, t.text


def test_scatter_labels_many_models_at_one_point():
    # twelve models of one value (coverage and validity take few values): a label each, none on another
    svg = ET.fromstring(svg_scatter("t", [(0.5, 1.0, f"m{i}") for i in range(12)], x_title="x", y_title="y"))
    ns = "{http://www.w3.org/2000/svg}"
    ys = [float(t.get("y")) for t in svg.iter(f"{ns}text") if (t.text or "").startswith("m")]
    assert len(ys) == 12 and min(abs(a - b) for n, a in enumerate(ys) for b in ys[n + 1:]) >= 12
    # values a few pixels apart, so that labels sit between the 12 px slots and one can block two of them
    pts = [(0.5, 1.0 + 0.004 * (i % 7) + 0.001 * i, f"m{i}") for i in range(30)]
    svg = ET.fromstring(svg_scatter("t", pts, x_title="x", y_title="y"))
    boxes = [(float(t.get("y")), t.get("text-anchor")) for t in svg.iter(f"{ns}text") if (t.text or "").startswith("m")]
    assert len(boxes) == 30
    for side in ("start", "end"):  # labels on one side of their points share a column: none may overlap
        ys = sorted(y for y, s in boxes if s == side)
        assert all(b - a >= 12 for a, b in zip(ys, ys[1:]))


def test_page_says_the_samples_drawn_when_the_first_model_has_no_z():
    base = {"checkpoint": None, "step": 1, "dataroot": "d", "phase": "val", "n_inputs": 5, "seed": 3}
    rows = [{**base, "name": "flat", "variant": "pix2pix", "n_samples": 1},  # nz 0: one output per input
            {**base, "name": "bike", "variant": "bicycle", "n_samples": 4}]
    assert "the first 5 inputs x 4 random z (seed 3) (a model without z: its one output), the same" in \
        render_compare(rows, None, 4, 6)
    assert "the first 5 inputs x 4 random z (seed 3), the same" in render_compare(rows[1:], None, 4, 6)


def test_a_plain_folder_of_inputs_has_no_ground_truth_column(data, loud, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in sorted((data / "val").glob("*.png"))[:3]:  # the A halves alone
        Image.open(f).crop((0, 0, 32, 32)).save(plain / f.name)
    rows, out = compare(loud, dataroot=plain, out=tmp_path / "c", show=2, show_samples=2, log=None, **EVAL)
    assert [r["n_inputs"] for r in rows] == [3, 3]
    _, boxes = compare_image(torch.zeros(2, 3, 32, 32), None, [(n, [torch.zeros(2, 3, 32, 32)] * 2)
                                                                for n in ("bicycle_loud", "pix2pix_loud")])
    assert not any("ground truth" in k for k in boxes)
    assert boxes[(0, 0, 0)][0] == boxes[(0, "input")][0] + 64 + 2  # the outputs right beside the input
    assert Image.open(out / "compare.png").size[0] == max(x for x, _ in boxes.values()) + 64 + 2
    page = (out / "index.html").read_text()
    assert "ground truth" not in page
    assert "For each of the first 2 inputs: the input, then a row per model of its first 2 measured outputs" in page
    # it has no val/ (the split EVAL names): the page said "each on val/ of .../plain", evaluate's table "(val)"
    assert f"2 models, each on the images of {plain}: the first 3 inputs" in page and "val/" not in page
    assert format_table(rows[0]).splitlines()[1].endswith(f"3 x 4 (the images of {plain})")



def test_fid_on_a_plain_folder_is_refused_before_any_output_folder_or_metric_network(data, loud, tmp_path, monkeypatch,
                                                                                     capsys):
    """FID and palettes compare outputs with B, which a plain folder of inputs has not: the refusal came
    after the first batch was generated, compare's results folder made by then and left empty."""
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in sorted((data / "val").glob("*.png"))[:3]:
        Image.open(f).crop((0, 0, 32, 32)).save(plain / f.name)
    monkeypatch.setattr(ev_module, "load_inception", lambda *a, **k: pytest.fail("metric network loaded"))
    out = tmp_path / "c"
    args = ["--dataroot", str(plain), "--metrics", "l1,fid", "--num", "3", "--n_samples", "2", "--device", "cpu"]
    assert main(["compare", *map(str, loud), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(plain) in err and "no B images" in err and "metrics fid" in err
    assert not out.exists()
    assert main(["evaluate", str(loud[0]), *args]) == 2
    assert "metrics fid compare outputs with B" in capsys.readouterr().err

def test_none_measured_is_an_error_for_the_shell_and_names_no_picture(runs, tmp_path, monkeypatch, capsys):
    def run(self, *a, **k):
        raise DivergenceError("the model's outputs are not finite: it cannot be evaluated")
    monkeypatch.setattr(Evaluation, "run", run)
    out = tmp_path / "c"
    out.mkdir()
    (out / "compare.png").write_bytes(b"an earlier comparison's picture, of other models")
    assert main(["compare", str(runs / "bicycle"), str(runs / "pix2pix"), *OPTS, "--out", str(out)]) == 2
    printed, err = capsys.readouterr()
    assert err.count("bicyclegan compare: ") == 1  # (the progress lines on stderr, then the one error)
    assert err.splitlines()[-1].endswith("none of the 2 models could be measured (the table says why)")
    assert "picture:" not in printed and not (out / "compare.png").exists()
    assert f"results: {out / 'compare.json'}\npage: {out / 'index.html'}" in printed
    assert [r["error"] for r in json.loads((out / "compare.json").read_text())] == [
        "the model's outputs are not finite: it cannot be evaluated"] * 2


def test_a_write_that_fails_keeps_the_previous_compare_json_and_says_which_file(runs, tmp_path, monkeypatch,
                                                                                 replace_fails):
    """compare.json is written atomically: a disk failing as it is written leaves the previous one whole."""
    out = tmp_path / "c"
    out.mkdir()
    (out / "compare.json").write_text('["the previous comparison"]')

    def run(self, *a, **k):  # nothing to measure: compare writes its files at once
        raise DivergenceError("the model's outputs are not finite: it cannot be evaluated")
    monkeypatch.setattr(Evaluation, "run", run)
    replace_fails("compare.json")
    with pytest.raises(OutputError, match=r"cannot write comparison results .*compare.json: Input/output error.*"
                                          r"the previous one is intact"):
        compare([runs / "bicycle", runs / "pix2pix"], out=out, log=None, **EVAL)
    assert (out / "compare.json").read_text() == '["the previous comparison"]'


@pytest.mark.parametrize("skip_bad", [False, True])
def test_the_picture_and_page_show_the_inputs_and_outputs_there_are(loud, tmp_path, skip_bad):
    """--show and --show_samples past what was measured: the picture holds the 2 inputs measured (--num 2)
    and the 4 outputs each (--n_samples 4), and the page says so, not 4 and 6. With --skip_bad the
    split is read whole (to find 2 good files), so the picture's reader must stop at 2 itself."""
    rows, out = compare(loud, out=tmp_path / "c", show=4, show_samples=6, log=None, skip_bad=skip_bad,
                        **{**EVAL, "num": 2})
    assert [r["n_inputs"] for r in rows] == [2, 2]
    page = (out / "index.html").read_text()
    assert ("For each of the first 2 inputs: the input and its ground truth, then a row per model of its first 4 "
            "measured outputs") in page
    # 2 inputs of 2 model rows, columns: input, ground truth, z1..z4; 32 px tiles shown at 64 px
    _, boxes = compare_image(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32),
                             [(n, [torch.zeros(2, 3, 32, 32)] * 4) for n in ("bicycle_loud", "pix2pix_loud")])
    assert Image.open(out / "compare.png").size == (max(x for x, _ in boxes.values()) + 64 + 2,
                                                    max(y for _, y in boxes.values()) + 64 + 2)


def test_a_split_of_several_image_sizes_is_compared_and_pictured_with_the_first_ones_of_one_size(loud, tmp_path):
    """preprocess none keeps each file's size: evaluate measures such a split an input at a time, but the
    picture's reader asked for a batch of --show inputs and its refusal of the mixed sizes, after every
    model was measured, left no compare.json. The picture shows the first inputs up to the first of another
    size (their codes are those of the first inputs), each row as evaluate measures it."""
    rng = np.random.default_rng(0)
    (tmp_path / "mixed" / "val").mkdir(parents=True)
    for i, side in enumerate((32, 32, 64, 32)):  # aligned pairs: A | B side by side
        Image.fromarray(rng.integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)).save(
            tmp_path / "mixed" / "val" / f"{i}.png")
    opts = dict(phase="val", num=4, n_samples=3, device="cpu", seed=3, metrics="l1")
    rows, out = compare(loud, tmp_path / "mixed", out=tmp_path / "c", show=4, show_samples=2, log=None, **opts)
    for row, ckpt in zip(rows, loud):
        assert {k: v for k, v in row.items() if k not in ("name", "checkpoint", "step")} == \
            evaluate(ckpt, tmp_path / "mixed", **opts)
    assert "For each of the first 2 inputs:" in (out / "index.html").read_text()
    _, boxes = compare_image(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32),
                             [(n, [torch.zeros(2, 3, 32, 32)] * 2) for n in ("bicycle_loud", "pix2pix_loud")])
    assert Image.open(out / "compare.png").size == (max(x for x, _ in boxes.values()) + 64 + 2,
                                                    max(y for _, y in boxes.values()) + 64 + 2)


def test_the_charts_name_the_models_they_cannot_place():
    base = {"checkpoint": None, "variant": "bicycle", "step": 1}
    rows = [{**base, "name": "a", "diversity_lpips": 0.2, "fid": 50.0},
            {**base, "name": "b", "diversity_lpips": 0.3, "fid": 40.0},
            {**base, "name": "c", "diversity_lpips": 0.1, "fid": None}]  # FID not finite: null in the row
    page = render_compare(rows, None, 4, 6)
    assert "<figcaption>Not on the chart (no value of both): c</figcaption>" in page
    assert "Not on the chart" not in render_compare(rows[:2], None, 4, 6)


def test_scatter_labels_are_escaped_and_far_apart_labels_stay_at_their_points():
    """A name given with --names is text: "a<b & c" broke the page's SVG. Labels that cannot touch (one
    left of its point, one right of its, far apart) stay beside their points, without a leader."""
    svg = ET.fromstring(svg_scatter("t", [(0.0, 1.0, "a<b & c"), (1.0, 1.0, "d")], x_title="x", y_title="y"))
    ns = "{http://www.w3.org/2000/svg}"
    circles = {c.find(f"{ns}title").text.split(":")[0]: float(c.get("cy")) for c in svg.iter(f"{ns}circle")}
    labels = {t.text: float(t.get("y")) for t in svg.iter(f"{ns}text") if t.get("class") == "pl"}
    assert set(labels) == {"a<b & c", "d"}
    assert labels == {name: pytest.approx(cy + 4) for name, cy in circles.items()}
    assert not [line for line in svg.iter(f"{ns}line") if line.get("class") == "g2"]


def test_the_picture_shows_the_measured_codes_whatever_the_draws_length(data, loud, tmp_path):
    """The picture's codes are rows of the evaluation's one num x n_samples x nz draw, not a draw of the
    shown inputs alone: torch fills normals 16 at a time, so a 1 x 3 x 8 draw is not the first row of a
    5 x 3 x 8 one (their first 16 values agree, the other 8 do not)."""
    rows, out = compare(loud, out=tmp_path / "c", show=1, show_samples=3, log=None, **{**EVAL, "n_samples": 3})
    pic = np.asarray(Image.open(out / "compare.png").convert("RGB"))
    _, boxes = compare_image(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32),
                             [(n, [torch.zeros(1, 3, 32, 32)] * 3) for n in ("bicycle_loud", "pix2pix_loud")])
    AB = np.asarray(Image.open(sorted((data / "val").glob("*.png"))[0]).convert("RGB"))
    A = torch.from_numpy(AB[None, :, :32].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    z = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(3))[0]  # input 0's row of the protocol's draw
    G = load_checkpoint(loud[0], device="cpu").sampler.eval()
    for j in range(3):
        with torch.no_grad():
            want = ((G(A, z[j:j + 1]).clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()
        assert np.abs(_tile(pic, boxes[(0, 0, j)]) - want).max() <= 1, j


def test_the_files_skip_bad_leaves_out_are_said_once_a_comparison(runs, data, tmp_path, caplog):
    """Each model's evaluation and the picture's inputs make their own loaders, and each said the split's
    skipped files again; said once now."""
    import logging
    root = tmp_path / "data"
    shutil.copytree(data, root)
    (root / "val" / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        rows, _ = compare([runs / "bicycle", runs / "pix2pix"], root, out=tmp_path / "cmp", skip_bad=True,
                          **{**EVAL, "num": 4})
    assert [r["n_inputs"] for r in rows] == [4, 4]
    said = [r.getMessage() for r in caplog.records if "bad file(s) in" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"skipped 1 bad file(s) in {root / 'val'}:\n"), said


@pytest.mark.slow
def test_under_torchrun_the_processes_share_each_models_inputs_and_rank_0_alone_writes(runs, loud, tmp_path):
    """compare under torchrun: each of the 2 processes measures its share of the inputs (5: 2 + 3) of each
    model, rank 0 prints and writes once; the rows are those of one process (to rounding: the sums go in
    another order), the picture is the one process's, pixel for pixel."""
    from test_distributed import torchrun_cli
    models = [str(loud[0]), str(runs / "pix2pix")]
    alone = tmp_path / "alone"
    assert main(["compare", *models, *OPTS, "--out", str(alone)]) == 0
    opts = ["--num_test", *OPTS[1:]]  # torchrun's parser takes --num for its --numa-binding
    done = torchrun_cli(tmp_path, "compare", *models, *opts, "--out", tmp_path / "two")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert said.count("[2/2] pix2pix: measured") == 1 and said.count("results: ") == 1, said
    rows, want = (json.loads((tmp_path / d / "compare.json").read_text()) for d in ("two", "alone"))
    assert [r["n_inputs"] for r in rows] == [5, 5]
    assert rows == [{k: pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for k, v in r.items()} for r in want]
    pictures = [np.asarray(Image.open(tmp_path / d / "compare.png")) for d in ("two", "alone")]
    assert np.array_equal(*pictures)
    # (each rank's kept measures removed once the files are written)
    assert sorted(os.listdir(tmp_path / "two")) == ["compare.json", "compare.png", "index.html"]


def test_a_second_compare_into_a_folder_being_written_is_refused_before_its_measures(runs, tmp_path, monkeypatch):
    # Two compares into one --out at once (the default results/compare, two jobs of a script): both measured, then
    # wrote their files over each other's, each saying it had written them; one's rows were lost
    from bicyclegan.engine.io import held_folder
    out = tmp_path / "c"
    with held_folder(out, "compare"):  # (as another process holding it: flock's locks are the open file's)
        said = (out / ".writing").read_text()
        assert said.startswith(f"compare (pid {os.getpid()} on ")
        measured = []
        monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: measured.append(1) or {})
        with pytest.raises(OutputError) as e:
            compare([runs / "bicycle", runs / "pix2pix"], out=out, log=None, **EVAL)
        assert str(e.value) == (f"{out} is being written by another {said}; give this compare a folder of its own "
                                f"(--out)")
        assert measured == []
    monkeypatch.undo()
    rows, _ = compare([runs / "bicycle", runs / "pix2pix"], out=out, log=None, **EVAL)  # let go: taken
    assert len(rows) == 2 and ".writing" not in os.listdir(out)  # (nothing of the lock left in the results)


def test_a_compare_into_a_folder_being_written_exits_75_and_a_bad_option_2(runs, tmp_path, capsys):
    # Both exited 2: a script's retry loop could not tell the folder another compare writes (free once it ends)
    # from a refusal the same command meets again. 75 is sysexits.h's EX_TEMPFAIL, try again later.
    from bicyclegan.engine.io import held_folder
    out = tmp_path / "c"
    models = [str(runs / "bicycle"), str(runs / "pix2pix")]
    with held_folder(out, "compare"):  # (as another process holding it: flock's locks are the open file's)
        said = (out / ".writing").read_text()
        assert main(["compare", *models, *OPTS, "--out", str(out)]) == 75
        assert capsys.readouterr().err == (f"bicyclegan compare: OutputError: {out} is being written by another "
                                           f"{said}; give this compare a folder of its own (--out)\n")
        assert main(["compare", models[0], str(tmp_path / "none"), *OPTS, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == f"bicyclegan compare: CheckpointError: checkpoint {tmp_path / 'none'} does not exist\n"


def test_a_folder_made_for_a_refused_compare_is_removed_again(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: (_ for _ in ()).throw(OutputError("refused")))
    said = []
    with pytest.raises(OutputError, match="refused"):
        compare([runs / "bicycle", runs / "pix2pix"], out=tmp_path / "new" / "c", log=said.append, **EVAL)
    assert not (tmp_path / "new").exists()
    assert not [line for line in said if "kept" in line], said  # (nothing measured: none said kept; EK30)


def _measuring(m, stop_at: int | None = None, error=KeyboardInterrupt) -> list[int]:
    """evaluate's sample_columns patched through m (a monkeypatch or its context) to list each batch's size as it is
    measured, raising `error` at batch `stop_at`: the list."""
    batches, real = [], ev_module.sample_columns

    def generate(model, A, *a, **kw):
        batches.append(len(A))
        if len(batches) == stop_at:
            raise error
        return real(model, A, *a, **kw)
    m.setattr(ev_module, "sample_columns", generate)
    return batches


@pytest.mark.parametrize("stop", [True, False])
def test_a_stopped_compare_run_again_goes_on_from_the_measures_kept(runs, tmp_path, monkeypatch, capsys, stop):
    # Ctrl-C (stop), or another error (an input unreadable), inside the second model (at its second batch of three):
    # the first model's measures and the second's first batch are kept (as evaluate's), said, and the same command run
    # again measures the second's last two batches alone; its files are a straight compare's, and nothing of the
    # measures is left in --out.
    models = [str(runs / "bicycle"), str(runs / "pix2pix")]
    argv = ["compare", *models, *OPTS, "--batch_size", "2", "--out"]
    assert main([*argv, str(tmp_path / "straight")]) == 0
    batches = _measuring(monkeypatch, 5, KeyboardInterrupt if stop else ev_module.DatasetError(
        "cannot read an input (Input/output error)"))
    out = tmp_path / "c"
    capsys.readouterr()
    assert main([*argv, str(out)]) == (130 if stop else 2)
    err = capsys.readouterr().err
    if stop:
        assert err.endswith("interrupted; the measures of the models measured so far are kept: the same command goes "
                            "on from them\n"), err
        assert "the measures are kept in" not in err, err  # (the stop's line alone says it; EK29)
    else:
        assert err.endswith(f"the measures are kept in {out / '.compare.json.partial'}: the same command goes on from "
                            f"them\nbicyclegan compare: DatasetError: cannot read an input (Input/output error)\n"), err
    batches.clear()
    assert main([*argv, str(out)]) == 0
    assert batches == [2, 1]  # (the second model's inputs 3-4 and 5)
    # said as evaluate says it (the stop's line promised it; the run again went on without a word)
    err = capsys.readouterr().err
    assert ("5 of 5 inputs already measured by an earlier call of the same weights, inputs and options: measuring "
            "the other 0" in err and "2 of 5 inputs already measured" in err), err
    assert (out / "compare.json").read_bytes() == (tmp_path / "straight" / "compare.json").read_bytes()
    assert sorted(os.listdir(out)) == sorted(os.listdir(tmp_path / "straight")) == ["compare.json", "compare.png",
                                                                                    "index.html"]


@pytest.mark.parametrize("change", ["kept file damaged", "input changed"])
def test_a_compare_run_again_says_why_it_measures_kept_measures_again_as_evaluate_does(runs, data, tmp_path,
                                                                                      monkeypatch, capsys, change):
    # Stopped inside pix2pix (its second batch of three), then pix2pix's kept file cut, or the first input changed: the
    # compare run again measures them again and says why, in a single evaluate's words (its run() is quiet: they were
    # measured again without a word)
    root = shutil.copytree(data, tmp_path / "data")  # (an input of its own to change)
    out = tmp_path / "c"
    argv = ["compare", str(runs / "bicycle"), str(runs / "pix2pix"), *OPTS, "--batch_size", "2", "--dataroot",
            str(root), "--out", str(out)]
    with monkeypatch.context() as m:
        _measuring(m, 5)
        assert main(argv) == 130
    kept = {torch.load(f / "0-of-1.000000.pt", weights_only=False)["batches"] == [0, 3]: f
            for f in (out / ".compare.json.partial").iterdir()}  # (bicycle's measured whole)
    if change == "kept file damaged":
        f = kept[False] / "0-of-1.000000.pt"
        f.write_bytes(f.read_bytes()[:100])
        said = [f"note: kept measures {f} cannot be read", "its inputs and those after them are measured again"]
    else:
        img = sorted((root / "val").glob("*.png"))[0]
        Image.fromarray(255 - np.asarray(Image.open(img))).save(img)
        said = [f"note: input {img} changed since its measures were kept in {kept[whole]}: it and the inputs after it "
                f"are measured again" for whole in (True, False)]
    capsys.readouterr()
    batches = _measuring(monkeypatch)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert all(line in err for line in said), err
    assert batches == ([2, 2, 1] if change == "kept file damaged" else [2, 2, 1] * 2)


@pytest.mark.parametrize("order", ["reordered", "another in front", "a copy in front"])
def test_a_stopped_compare_run_again_with_its_models_in_another_order_goes_on_from_each_ones_measures(
        runs, loud, tmp_path, monkeypatch, order):
    # Stopped inside pix2pix (its second batch of three), bicycle measured whole; run again as pix2pix, bicycle, or
    # with another model in front: each model's kept measures are its own wherever it stands on the command line, so
    # of those two pix2pix's last two batches alone are measured (kept by place, both were measured again from the
    # start, each recipe refusing the other's), and compare.json is a straight compare's of that order. A copy of
    # bicycle's run in front takes bicycle's measures: its weights and config, its recipe.
    bicycle, pix2pix = str(runs / "bicycle"), str(runs / "pix2pix")
    shutil.copytree(runs / "bicycle", tmp_path / "copy")
    again = {"reordered": [pix2pix, bicycle], "another in front": [str(loud[0]), bicycle, pix2pix],
             "a copy in front": [str(tmp_path / "copy"), pix2pix, bicycle]}[order]
    argv = ["compare", *OPTS, "--batch_size", "2", "--out"]
    assert main([*argv, str(tmp_path / "straight"), *again]) == 0
    out = tmp_path / "c"
    with monkeypatch.context() as m:
        _measuring(m, 5)
        assert main([*argv, str(out), bicycle, pix2pix]) == 130
    batches = _measuring(monkeypatch)
    assert main([*argv, str(out), *again]) == 0
    # (pix2pix's inputs 3-4 and 5; another model in front: its three batches first, none of its measures kept)
    assert batches == ([2, 2, 1, 2, 1] if order == "another in front" else [2, 1])
    assert (out / "compare.json").read_bytes() == (tmp_path / "straight" / "compare.json").read_bytes()
    assert sorted(os.listdir(out)) == ["compare.json", "compare.png", "index.html"]


def test_measures_kept_by_an_older_version_by_place_are_left_alone_then_removed(runs, tmp_path, monkeypatch):
    # An older version kept each model's measures in a folder of its place (.compare.json.partial/1/): a compare run
    # after it does not take them (they may be another model's), measures every model, and removes them with its own.
    models = [str(runs / "bicycle"), str(runs / "pix2pix")]
    argv = ["compare", *models, *OPTS, "--batch_size", "2", "--out"]
    assert main([*argv, str(tmp_path / "straight")]) == 0
    out = tmp_path / "c"
    with monkeypatch.context() as m:
        _measuring(m, 5)
        assert main([*argv, str(out)]) == 130
    kept = out / ".compare.json.partial"
    for f in kept.iterdir():  # (the files inside are laid out alike: their folders' names alone differ)
        assert not f.name.isdigit()
        whole = torch.load(f / "0-of-1.000000.pt", weights_only=False)["batches"] == [0, 3]  # (bicycle's: measured)
        f.rename(kept / ("1" if whole else "2"))
    assert sorted(os.listdir(kept)) == ["1", "2"]
    batches = _measuring(monkeypatch)
    assert main([*argv, str(out)]) == 0
    assert batches == [2, 2, 1, 2, 2, 1]
    assert (out / "compare.json").read_bytes() == (tmp_path / "straight" / "compare.json").read_bytes()
    assert sorted(os.listdir(out)) == ["compare.json", "compare.png", "index.html"]


def test_models_given_loaded_of_the_same_weights_and_other_configs_keep_their_measures_apart(loud, tmp_path,
                                                                                           monkeypatch):
    # Two models given loaded whose weights are alike and whose configs are not (a decoder's non-linearity has no
    # weights): each one's measures are kept apart (kept_key digests the config beside the weights), so a compare
    # stopped inside the second (its second batch of three) and run again measures the second's last two batches
    # alone; in one folder each one's recipe refused the other's measures, and both were measured again (MQ01).
    from bicyclegan.engine.config import TrainConfig
    first = load_checkpoint(loud[0], device="cpu")
    d = first.cfg.to_dict()
    d["model"]["nl"] = "lrelu"
    second = BicycleGAN(TrainConfig.from_dict(d), device="cpu", training=False)
    second.load_state_dict(first.state_dict())
    out = tmp_path / "c"
    with monkeypatch.context() as m:
        _measuring(m, stop_at=5)
        with pytest.raises(KeyboardInterrupt):
            compare([first, second], out=out, batch_size=2, log=None, **EVAL)
    with monkeypatch.context() as m:
        batches = _measuring(m)
        rows, _ = compare([first, second], out=out, batch_size=2, log=None, **EVAL)
    assert batches == [2, 1]
    assert rows[0]["diversity_l1"] != rows[1]["diversity_l1"]  # (two models indeed: their outputs differ)


@pytest.mark.parametrize("both", [True, False])
def test_a_stop_after_the_measures_save_failed_says_what_is_lost(runs, tmp_path, monkeypatch, capsys, both):
    # A full disk where the measures are kept: the first model's save (as its measures end) fails, then the second's
    # (at the stop): the stop's line says neither model's measures are kept, naming each, not "kept". Where the
    # second's saves are written (space freed meanwhile), the line says the first's lost and the others' kept (EK27).
    models = [str(runs / "bicycle"), str(runs / "pix2pix")]
    _measuring(monkeypatch, 5)
    writes, first = ev_module.atomic_write, []

    def full(path, write, **kw):
        first[:] = first or [Path(path).parent]  # (the first model's folder of measures)
        if not both and Path(path).parent != first[0]:  # (the second model's)
            return writes(path, write, **kw)
        raise OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")
    monkeypatch.setattr(ev_module, "atomic_write", full)
    capsys.readouterr()
    assert main(["compare", *models, *OPTS, "--batch_size", "2", "--out", str(tmp_path / "c")]) == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("interrupted; of bicycle, no measures are kept (their save failed: cannot write "), last
    if both:
        assert "; of pix2pix, no measures are kept (their save failed: " in last and " are kept:" not in last, last
    else:
        assert last.endswith("the same command measures every input again; the others' measures are kept: the "
                             "same command goes on from them"), last


@pytest.mark.parametrize("how", ["full", "saves lost", "stopped"])
def test_files_that_cannot_be_written_keep_every_models_measures_and_say_so(runs, tmp_path, monkeypatch, capsys,
                                                                            replace_fails, how):
    # compare.json's write failing (a full disk) after every model was measured: their measures are kept, said in a
    # line, and the same command run again measures nothing and writes a straight compare's files. Where the saves of
    # the measures failed too, the line says each model's lost, not "kept" (EK33); a stop there says it in the stop's
    # line alone (EK32, EK34); the command run again measures every model again.
    models = [str(runs / "bicycle"), str(runs / "pix2pix")]
    argv = ["compare", *models, *OPTS, "--out"]
    assert main([*argv, str(tmp_path / "straight")]) == 0
    batches = _measuring(monkeypatch)
    out = tmp_path / "c"
    with monkeypatch.context() as m:
        m.setattr(os, "replace", os.replace)  # (undone below: the fixture's patch inside this context)
        replace_fails("compare.json")
        if how != "full":
            m.setattr(ev_module, "atomic_write", lambda path, write, **kw: (_ for _ in ()).throw(
                OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")))
        if how == "stopped":
            replace = os.replace
            m.setattr(os, "replace", lambda src, dst, **kw: (_ for _ in ()).throw(KeyboardInterrupt) if Path(
                dst).name == "compare.json" else replace(src, dst, **kw))
        capsys.readouterr()
        assert main([*argv, str(out)]) == (130 if how == "stopped" else 2)
    err = capsys.readouterr().err
    if how == "full":
        assert f"the measures are kept in {out / '.compare.json.partial'}: the same command goes on from them\n" in err
    else:
        lost = err.splitlines()[-1 if how == "stopped" else -2]
        assert lost.startswith(("interrupted; " if how == "stopped" else "") + "of bicycle, no measures are kept ("
                               "their save failed: cannot write "), err
        assert "; of pix2pix, no measures are kept (their save failed: " in lost and " are kept:" not in lost, lost
        assert "the measures are kept in" not in err and err.count("; of pix2pix, no measures") == 1, err
    batches.clear()
    assert main([*argv, str(out)]) == 0 and (batches == []) == (how == "full")
    assert (out / "compare.json").read_bytes() == (tmp_path / "straight" / "compare.json").read_bytes()
    assert not (out / ".compare.json.partial").exists()


def test_a_compare_of_fewer_models_removes_the_measures_an_earlier_one_kept(runs, loud, tmp_path, monkeypatch):
    # A compare of three models stopped inside the third, then one of the first two into the same --out: it goes on
    # from their measures, and the third's (.compare.json.partial/<its digest>/), of no use to it, go with the folder
    # once its files are written (EK37)
    argv, out = ["compare", *OPTS, "--batch_size", "2", "--out", str(tmp_path / "c")], tmp_path / "c"
    models = [str(runs / "bicycle"), str(runs / "pix2pix")]
    with monkeypatch.context() as m:
        _measuring(m, 8)  # (3 batches a model: the third's second)
        assert main([*argv, *models, str(loud[0])]) == 130
    assert len(os.listdir(out / ".compare.json.partial")) == 3
    batches = _measuring(monkeypatch)
    assert main([*argv, *models]) == 0 and batches == []
    assert sorted(os.listdir(out)) == ["compare.json", "compare.png", "index.html"]
