"""evaluate --epoch all: every checkpoint of a run against an independent `evaluate` of it, the
checkpoints it picks and their order, the metric networks loaded once, a diverged checkpoint among
good ones, the best of each measure over known values, the page and the refusals."""
import importlib
import json
import math
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import tiny_cfg

from bicyclegan.engine import CheckpointError, OutputError
from bicyclegan.engine import report as report_mod
from bicyclegan.engine.checkpoint import load_checkpoint, save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.evaluate import Evaluation, best_rows, evaluate, format_table, json_safe
from bicyclegan.engine.sweep import evaluate_checkpoints, format_sweep, render_sweep, run_checkpoints, sweep
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import make_demo_dataset

ev_module = importlib.import_module("bicyclegan.engine.evaluate")
OPTS = ["--num", "4", "--n_samples", "3", "--device", "cpu", "--seed", "5"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=3, n_val=5, size=32, seed=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """10 steps of 4 an epoch, a checkpoint kept each epoch: epoch_1.pt (step 4), epoch_2.pt (8), latest.pt (10)."""
    out = tmp_path_factory.mktemp("sweep") / "run"
    Trainer(tiny_cfg(out, data, niter=2, niter_decay=1, max_steps=10, save_epoch_freq=1, sample_every=100,
                     save_every=100), progress=False).train()
    return out


def copy_run(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("results"))
    return dst


def test_one_sample_per_input_keeps_the_diversity_column_and_says_why_it_is_empty(run, tmp_path, capsys):
    # evaluate --epoch all --n_samples 1 dropped the diversity column, unsaid; evaluate and compare say '-' and why.
    run = copy_run(run, tmp_path)
    opts = [o if o != "3" else "1" for o in OPTS]  # --n_samples 1
    assert main(["evaluate", str(run), "--epoch", "all", *opts]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("checkpoint  "):].splitlines()
    assert lines[0].split() == ["checkpoint", "epoch", "step", "diversity_l1", "encoded_l1", "coverage", "validity",
                                "encoded_palette_match"]
    assert [line.split()[3] for line in lines[1:4]] == ["-", "-", "-"]
    why = "diversity needs --n_samples 2 or more, and a model with z (nz above 0)"
    page = (run / "results" / "val_sweep" / "index.html").read_text()
    assert why in page and why in out
    # a chart of each measure some checkpoint has a value of, none of diversity (nothing to draw)
    titles = re.findall(r'<svg[^>]*class="chart".*?class="t">([^<]*)<', page, re.S)
    assert titles and not [t for t in titles if "diversity" in t], titles


def test_each_row_and_eval_json_equals_evaluate_of_that_checkpoint(run, data, tmp_path, capsys):
    run = copy_run(run, tmp_path)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0
    out, err = capsys.readouterr()
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert [(r["checkpoint"], r["epoch"], r["step"]) for r in rows] == [
        ("epoch_1.pt", 1, 4), ("epoch_2.pt", 2, 8), ("latest.pt", 2, 10)]
    ckpts = run / "checkpoints"
    for r, f in zip(rows, ("epoch_1.pt", "epoch_2.pt", "latest.pt")):
        want = evaluate(ckpts / f, phase="val", num=4, n_samples=3, seed=5, device="cpu")
        assert {k: v for k, v in r.items() if k not in ("checkpoint", "run", "epoch", "step")} == want
        assert set(want) >= {"diversity_l1", "encoded_l1", "coverage", "validity"}
    # the weights moved between checkpoints: one model measured thrice would pass the loop above too
    assert len({r["encoded_l1"] for r in rows}) == 3
    # each eval.json is the file `evaluate --epoch N` (latest.pt: without --epoch) writes
    for r, epoch, folder in zip(rows, (["--epoch", "1"], ["--epoch", "2"], []), ("val_epoch_1", "val_epoch_2", "val")):
        swept = (run / "results" / folder / "eval.json").read_text()
        # the protocol it was measured with: the file's own digest and the options given (the rest evaluate's defaults;
        # the metrics, layout and skip_bad as taken: the demo data's metrics and layout, the run's skip_bad)
        digest = torch.load(ckpts / r["checkpoint"], map_location="cpu", weights_only=True)["digest"]
        protocol = {"digest": digest, "dataroot": str(data.resolve()), "phase": "val", "n_samples": 3, "seed": 5,
                    "device": "cpu", "num": 4, "metrics": ["l1", "palette"], "lpips_version": "0.0",
                    "lpips_pairs": "consecutive", "lpips_backbone": None, "lpips_linear": None, "fid_weights": None,
                    "layout": "aligned", "skip_bad": False}
        assert r.pop("run") == str(run.resolve())  # (eval.json: its checkpoint's path says which run)
        swept = json.loads(swept)  # (and the split's and weights files' state: its own test, of protocol() alone)
        files = swept["protocol"].pop("files")
        assert re.fullmatch("[0-9a-f]{64}", files)
        assert swept == {**r, "checkpoint": str((ckpts / r["checkpoint"]).resolve()), "protocol": protocol}
        assert main(["evaluate", str(run), *epoch, *OPTS]) == 0
        alone = json.loads((run / "results" / folder / "eval.json").read_text())
        assert alone.pop("protocol") == {**protocol, "files": files}
        assert alone == {k: v for k, v in swept.items() if k not in ("epoch", "step", "protocol")}
    # the terminal: one line per checkpoint as it is measured (stderr), the table, the best of each measure
    assert re.search(r"^\[2/3\] epoch_2.pt \(epoch 2, step 8\): .*val_epoch_2/eval.json$", err, re.M)
    best = min(rows, key=lambda r: r["encoded_l1"])
    pick = "no --epoch" if best["checkpoint"] == "latest.pt" else f"--epoch {best['epoch']}"
    assert (f"best encoded reconstruction L1: {best['encoded_l1']:.4f} at epoch {best['epoch']}, step {best['step']} "
            f"({best['checkpoint']}: {pick})") in out


def test_checkpoints_in_training_order_latest_only_when_further_on(run, tmp_path):
    run = copy_run(run, tmp_path)
    ckpts = run / "checkpoints"
    for n in (10, 3):  # epoch 10 sorts after 2 and 3 by number, not before them as text
        shutil.copy(ckpts / "epoch_2.pt", ckpts / f"epoch_{n}.pt")
    (ckpts / "epoch_x.pt").write_bytes(b"not one of the run's epochs")
    (ckpts / "best.pt").write_bytes(b"a copy of one evaluation's weights: not swept")
    names = [p.name for p, _, _ in run_checkpoints(run)]
    assert names == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "epoch_10.pt", "latest.pt"]
    assert [p.name for p, _, _ in run_checkpoints(ckpts / "epoch_1.pt")] == names  # a file of the run: its run
    # latest.pt at the step of the last epoch_N.pt holds its weights: measured once
    shutil.copy(ckpts / "latest.pt", ckpts / "epoch_12.pt")
    assert [p.name for p, _, _ in run_checkpoints(run)][-2:] == ["epoch_10.pt", "epoch_12.pt"]
    (ckpts / "latest.pt").unlink()
    assert [p.name for p, _, _ in run_checkpoints(run)][-1] == "epoch_12.pt"


class Features(torch.nn.Module):  # a stand-in for FID's InceptionV3: [0, 1] images -> N x D
    def __init__(self, seen=None):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))
        self.seen = seen if seen is not None else []  # the images of each forward

    def forward(self, x):
        self.seen.append(len(x))
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1) * self.scale


def test_metric_networks_load_once_and_every_checkpoint_shares_the_inputs(run, data, monkeypatch):
    loads, seen = [], []

    def load(path=None, device="cpu"):
        loads.append(path)
        return Features(seen)
    monkeypatch.setattr(ev_module, "load_inception", load)
    rows = [row for _, row, _ in sweep(run, phase="val", num=4, n_samples=2, device="cpu", metrics="l1,fid")]
    assert len(loads) == 1 and len(rows) == 3
    # each checkpoint's 8 outputs, the 4 real B once for all three (their features were computed for each)
    assert sum(seen) == 3 * 8 + 4
    for r, f in zip(rows, ("epoch_1.pt", "epoch_2.pt", "latest.pt")):
        want = evaluate(run / "checkpoints" / f, phase="val", num=4, n_samples=2, device="cpu", metrics="l1,fid")
        assert r["fid"] == want["fid"] and r["fid_images"] == {"generated": 8, "real": 4}


def test_real_features_are_read_anew_for_a_file_changed_since(run, data, monkeypatch):
    seen = []
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": Features(seen))
    ev = Evaluation(run / "checkpoints" / "epoch_1.pt", phase="val", num=4, device="cpu", metrics="l1,fid",
                    batch_size=4)
    first = ev.run(n_samples=2)
    assert seen == [8, 4]
    assert ev.run(n_samples=2)["fid"] == first["fid"] and seen == [8, 4, 8]  # the 4 real B kept
    f = [p for p in sorted((data / "val").iterdir()) if p.suffix != ".json"][1]
    st = f.stat()
    try:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # (its contents as they were: the same figure)
        assert ev.run(n_samples=2)["fid"] == first["fid"] and seen == [8, 4, 8, 8, 4]
    finally:
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_real_features_are_read_anew_for_a_file_rewritten_keeping_its_size_and_mtime(run, data, monkeypatch):
    # cp -p over the file (in place: its inode, its size and its mtime kept): the kept features were the old image's
    from PIL import Image
    seen = []
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": Features(seen))
    ev = Evaluation(run / "checkpoints" / "epoch_1.pt", phase="val", num=4, device="cpu", metrics="l1,fid",
                    batch_size=4)
    first = ev.run(n_samples=2)
    f = [p for p in sorted((data / "val").iterdir()) if p.suffix != ".json"][1]
    st, old = f.stat(), f.read_bytes()
    try:
        with Image.open(f) as im:
            size = im.size
        Image.fromarray(np.full((size[1], size[0], 3), 255, np.uint8)).save(f)  # (a plain PNG: smaller, padded)
        assert f.stat().st_size < st.st_size
        f.write_bytes(f.read_bytes().ljust(st.st_size, b"\0"))  # (bytes past IEND: no decoder reads them)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (f.stat().st_size, f.stat().st_mtime_ns, f.stat().st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
        again = ev.run(n_samples=2)
        assert seen == [8, 4, 8, 4] and again["fid"] != first["fid"]
    finally:
        f.write_bytes(old)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_real_features_of_b_read_from_a_are_read_anew_when_that_file_changes(run, tmp_path, monkeypatch):
    # A/ and B/ folders read BtoA: the real B comes from A/, and the features were kept by B/'s file, so an edited
    # A/ image kept its old features (the same Evaluation's FID said 1.001 where a fresh one said 1.748)
    from PIL import Image
    seen = []
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": Features(seen))
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / "val" / side).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "val" / side / f"{i}.png")
    model = load_checkpoint(run / "checkpoints" / "epoch_1.pt", device="cpu")
    model.cfg.data.direction = "BtoA"
    kw = dict(dataroot=tmp_path, phase="val", num=4, device="cpu", metrics="l1,fid", batch_size=4)
    ev = Evaluation(model, **kw)
    first = ev.run(n_samples=2)
    changed = tmp_path / "val" / "A" / "0.png"
    Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(changed)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # (a clock too coarse to tell the two writes)
    again = ev.run(n_samples=2)
    assert again["fid"] == Evaluation(model, **kw).run(n_samples=2)["fid"] != first["fid"]
    assert seen == [8, 4, 8, 4, 8, 4]  # the changed batch's real B read again, as a fresh evaluation reads them


def test_evaluation_of_a_model_with_other_data_options_is_made_anew(run, monkeypatch):
    loads = []
    monkeypatch.setattr(ev_module, "load_inception",
                        lambda path=None, device="cpu": loads.append(1) or torch.nn.Linear(1, 1))
    ev = Evaluation(run / "checkpoints" / "epoch_1.pt", phase="val", num=4, device="cpu", metrics="l1,fid")
    same = ev.of(run / "checkpoints" / "epoch_2.pt")
    assert same.inception is ev.inception and len(loads) == 1 and same.model is not ev.model
    other = load_checkpoint(run / "checkpoints" / "latest.pt", device="cpu")
    other.cfg.data.direction = "BtoA"  # reads the split's other halves as inputs
    fresh = ev.of(other)
    assert fresh.model is other and (fresh.data.direction, ev.data.direction) == ("BtoA", "AtoB")
    assert len(loads) == 1 and fresh.inception is ev.inception  # a model of its own, the metric networks shared


def test_a_diverged_checkpoint_gets_a_row_saying_so_and_the_others_are_measured(run, tmp_path, capsys):
    """(train writes no such checkpoint, but another program or an older version may have.)"""
    run = copy_run(run, tmp_path)
    bad = load_checkpoint(run / "checkpoints" / "epoch_2.pt", device="cpu", training=True)
    with torch.no_grad():
        next(bad.G.parameters()).view(-1)[0] = float("nan")
    bad.nonfinite = lambda optimizers=False: {}  # save_checkpoint's own refusal, passed
    save_checkpoint(bad, run / "checkpoints" / "epoch_2.pt", step=8, epoch=2)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0
    out = capsys.readouterr().out
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert [r["checkpoint"] for r in rows] == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    assert rows[1] == {"checkpoint": "epoch_2.pt", "run": str(run.resolve()), "epoch": 2, "step": 8,
                       "error": "the model holds non-finite weights in G (1 values); evaluate a checkpoint from "
                       "before training diverged"}
    assert "encoded_l1" in rows[0] and "encoded_l1" in rows[2]
    assert not (run / "results" / "val_epoch_2").exists()
    assert re.search(r"^epoch_2.pt +2 +8 +the model holds non-finite weights", out, re.M)
    page = (run / "results" / "val_sweep" / "index.html").read_text()
    assert "the model holds non-finite weights" in page


@pytest.mark.parametrize("key,values,best", [
    ("encoded_l1", [0.5, 0.3, 0.3, 0.4], 1),          # lower is better; a tie keeps the earlier
    ("fid", [float("nan"), 80.0, None, 79.5], 3),     # NaN and None never win
    ("coverage", [0.2, 0.7, 0.7, 0.6], 1),            # higher is better
    ("coverage", [None, float("inf"), None, None], None),
])
def test_best_of_each_measure_over_known_values(key, values, best):
    rows = [{"checkpoint": f"epoch_{i + 1}.pt", "epoch": i + 1, "step": 4 * (i + 1), key: v}
            for i, v in enumerate(values)]
    rows.insert(2, {"checkpoint": "epoch_9.pt", "epoch": 9, "step": 9, "error": "diverged"})
    got = best_rows(rows)
    if best is None:
        assert key not in got
        return
    assert got[key] is rows[best if best < 2 else best + 1]
    assert f"at epoch {best + 1}, step {4 * (best + 1)} (epoch_{best + 1}.pt: --epoch {best + 1})" in format_sweep(rows)


def test_a_measure_every_checkpoint_has_alike_names_no_best():
    # A tiny run's palette coverage of 0 at every checkpoint: "best palette coverage: 0.0000 at epoch 1 (--epoch
    # 1)" picked the first of a tie, nothing beaten, bold and ringed on the page (compare names none there)
    rows = [{"checkpoint": f, "epoch": e, "step": s, "encoded_l1": l1, "coverage": 0.0}
            for f, e, s, l1 in (("epoch_1.pt", 1, 4, 0.5), ("epoch_2.pt", 2, 8, 0.25), ("latest.pt", 2, 10, 0.375))]
    best = [line for line in format_sweep(rows).splitlines() if line.startswith("best ")]
    assert best == ["best encoded reconstruction L1: 0.2500 at epoch 2, step 8 (epoch_2.pt: --epoch 2)"]
    page = render_sweep("run", rows)
    assert re.findall(r"<b>(.*?)</b>", page) == ["0.25"] and page.count("class=\"b\"") == 1  # one bold, one ring


def test_the_page_says_how_lpips_and_fid_were_measured():
    # (the page showed their figures alone; v0.1's are about 2.4 times v0.0's, a FID from few images is biased)
    rows = [{"checkpoint": f, "epoch": e, "step": s, "dataroot": "/d", "phase": "val", "n_inputs": 4, "n_samples": 3,
             "seed": 5, "diversity_lpips": 0.5, "lpips": {"net": "alex", "version": "0.0", "pairs": "consecutive"},
             "fid": 10.0 * e, "fid_images": {"generated": 2400, "real": 2400}}
            for f, e, s in (("epoch_1.pt", 1, 4), ("latest.pt", 2, 8))]
    said = re.search(r"<p class='meta'>(.*?)</p>", render_sweep("run", rows)).group(1)
    assert said.endswith("the same for each. LPIPS: alex v0.0, consecutive pairs. FID: 2400 generated vs 2400 real "
                         "images.")
    assert format_sweep(rows).endswith("\nLPIPS: alex v0.0, consecutive pairs. FID: 2400 generated vs 2400 real "
                                       "images.")  # the terminal's table says it too


def test_the_page_charts_each_measure_rings_the_best_and_links_each_eval_json(run, tmp_path, capsys):
    run = copy_run(run, tmp_path)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1"]) == 0
    folder = run / "results" / "val_sweep"
    page = (folder / "index.html").read_text()
    rows = json.loads((folder / "sweep.json").read_text())
    svgs = [ET.fromstring(s) for s in re.findall(r"<svg.*?</svg>", page, re.S)]
    ns = "{http://www.w3.org/2000/svg}"
    titles = ["".join(s.find(f"{ns}text").itertext()) for s in svgs]
    assert [t.split(" ")[0] for t in titles] == ["diversity", "encoded"]  # the two measures of l1
    rings = [c for s in svgs for c in s.iter(f"{ns}circle") if c.get("class") == "b"]
    best = min(rows, key=lambda r: r["encoded_l1"])
    assert len(rings) == 1 and f"at epoch {best['epoch']} ({best['checkpoint']})" in rings[0].find(f"{ns}title").text
    polyline = svgs[1].find(f"{ns}polyline").get("points").split()
    assert len(polyline) == 3
    links = re.findall(r"<a href='([^']+)'>([^<]+)</a>", page)
    assert [name for _, name in links] == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    # relative to the page: the links still work in a copy of the run or a browser's file:// view
    assert [href for href, _ in links] == ["../val_epoch_1/eval.json", "../val_epoch_2/eval.json", "../val/eval.json"]
    for href, name in links:
        target = json.loads((folder / href).read_text())
        assert Path(target["checkpoint"]).name == name
    assert f"<td><b>{best['encoded_l1']:.4g}</b><span class='vh'> (best)</span></td>" in page


def test_refusals_name_the_path(run, tmp_path, capsys):
    lone = tmp_path / "pretrained" / "model.pt"
    lone.parent.mkdir()
    shutil.copy(run / "checkpoints" / "latest.pt", lone)
    with pytest.raises(CheckpointError, match=r"model.pt is neither a run folder nor a file in one's checkpoints/"):
        run_checkpoints(lone)
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"empty/checkpoints holds no checkpoint to evaluate"):
        run_checkpoints(tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"nowhere does not exist"):
        run_checkpoints(tmp_path / "nowhere")
    assert main(["evaluate", str(lone), "--epoch", "all"]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # all is evaluate's alone
        main(["sample", str(run), "--epoch", "all"])
    assert "expects an epoch (an integer >= 1) or best, got 'all'" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--epoch", "all", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("epoch", [[], ["--epoch", "all"]])
def test_a_json_that_is_a_checkpoint_is_refused_and_left_as_it_was(run, tmp_path, capsys, epoch):
    # `evaluate CKPT --json CKPT` wrote the results over the checkpoint it had just measured.
    run = copy_run(run, tmp_path)
    ckpt = run / "checkpoints" / "latest.pt"
    before = ckpt.read_bytes()
    assert main(["evaluate", str(run), *epoch, *OPTS, "--json", str(ckpt)]) == 2
    name, keyword = ("sweep.json", " (json_path in Python)") if epoch else ("eval.json", "")  # (evaluate() has none)
    assert capsys.readouterr().err == (f"bicyclegan evaluate: OutputError: --json {ckpt}{keyword} is a bicyclegan "
                                       f"checkpoint, "
                                       f"which the results would replace; give another file to write, e.g. "
                                       f"{ckpt.with_name(name)}\n")
    assert ckpt.read_bytes() == before and not (run / "results").exists()


def test_a_json_that_is_one_of_the_sweeps_own_eval_json_files_is_refused_before_any_work(run, tmp_path, capsys):
    # `--epoch all --json RUN/results/val/eval.json` (latest.pt's, where `evaluate RUN` writes) passed as earlier
    # results: the sweep wrote that checkpoint's eval.json, then sweep.json over it; its page's link and a later
    # --reuse then read the sweep's rows as that checkpoint's results.
    run = copy_run(run, tmp_path)
    for mine in (run / "results" / "val" / "eval.json", run / "results" / "val_epoch_1" / "eval.json"):
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_text("")  # (empty: a file --json may replace, were it not the sweep's own)
        assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--json", str(mine)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"bicyclegan evaluate: OutputError: --json {mine} (json_path in Python) is ") and \
            "eval.json" in err and "sweep.json" in err, err
        assert mine.read_text() == "" and not (run / "results" / "val_sweep").exists()


@pytest.mark.parametrize("epoch", [[], ["--epoch", "all"]])
def test_a_json_that_is_another_file_is_refused_and_an_earlier_results_file_replaced(run, tmp_path, capsys, epoch):
    # `evaluate RUN --json RUN/config.json` wrote the results over the run's config (sample, evaluate and resume then
    # failed), `--json RUN/log.jsonl` over its training log, without a word: only checkpoints were refused.
    run = copy_run(run, tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    name, keyword = ("sweep.json", " (json_path in Python)") if epoch else ("eval.json", "")
    for mine in (run / "config.json", run / "log.jsonl", notes):
        before = mine.read_bytes()
        assert main(["evaluate", str(run), *epoch, *OPTS, "--json", str(mine)]) == 2
        assert capsys.readouterr().err == (
            f"bicyclegan evaluate: OutputError: --json {mine}{keyword} exists and holds no earlier results of "
            f"evaluate, a sweep or compare (a run's config.json or log.jsonl, a file of yours), which the results "
            f"would replace; give another file to write, e.g. {mine.with_name(name)}\n")
        assert mine.read_bytes() == before and not (run / "results").exists()
    with pytest.raises(OutputError, match=r"config.json \(json_path in Python\) exists and holds no earlier results"):
        evaluate_checkpoints(run, json_path=run / "config.json", num=4, n_samples=3, device="cpu", log=None)
    # a file of that name suggested is not the one refused
    (tmp_path / name).write_text("{}")
    assert main(["evaluate", str(run), *epoch, *OPTS, "--json", str(tmp_path / name)]) == 2
    assert capsys.readouterr().err.endswith(f"e.g. {tmp_path / name.replace('.json', '_new.json')}\n")
    # an empty file (mktemp's) and earlier results, of either kind, are replaced
    out = tmp_path / "out.json"
    for earlier in ("", json.dumps({"dataroot": "d", "phase": "val", "metrics": ["l1"], "l1": 0.5}),
                    json.dumps([{"checkpoint": "epoch_1.pt", "l1": 0.5}])):
        out.write_text(earlier)
        assert main(["evaluate", str(run), *epoch, *OPTS, "--json", str(out)]) == 0, capsys.readouterr().err
        assert isinstance(json.loads(out.read_text()), list if epoch else dict)


def test_a_measure_that_is_not_finite_is_null_in_the_files(run, tmp_path, monkeypatch, capsys):
    """JSON has no NaN: a strict reader refused sweep.json's NaN."""
    run = copy_run(run, tmp_path)
    real = Evaluation.run
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: {**real(self, *a, **k), "encoded_l1": float("nan")})
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--n_samples", "1"]) == 0

    def refuse(c):
        raise ValueError(c)
    for f in (run / "results" / "val_sweep" / "sweep.json", run / "results" / "val_epoch_1" / "eval.json"):
        rows = json.loads(f.read_text(), parse_constant=refuse)
        for r in rows if isinstance(rows, list) else [rows]:
            assert r["encoded_l1"] is None and r["diversity_l1"] is None  # one sample per input: no pair
            assert not any(isinstance(v, float) and math.isnan(v) for v in r.values())
    # the table and the page keep a column of nulls and say why each '-' is there, naming the checkpoints (a
    # column without a finite value went missing, and encoded L1's '-' said nothing)
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("checkpoint  "))
    assert head.split()[3:5] == ["diversity_l1", "encoded_l1"]
    names = "epoch_1.pt, epoch_2.pt, latest.pt"
    notes = [f"diversity_l1 -: {names}: one output per input", f"encoded_l1 -: {names}: not finite (null in the JSON)"]
    assert all(any(line.startswith(n) for line in out.splitlines()) for n in notes)
    page = (run / "results" / "val_sweep" / "index.html").read_text()
    assert "<th title='encoded_l1'>" in page and f"encoded reconstruction L1 -: {names}: not finite" in page
    # evaluate of one checkpoint writes its eval.json the same way (it wrote NaN)
    assert main(["evaluate", str(run), *OPTS, "--n_samples", "1", "--json", str(run / "results" / "one.json")]) == 0
    assert json.loads((run / "results" / "one.json").read_text(), parse_constant=refuse)["encoded_l1"] is None


def test_the_terminal_table_keeps_its_columns_with_an_error_row_and_shows_every_error():
    """An error row's text spans the measure columns: it widened the first to its own length (90
    characters of padding on every other row), and with no measure at all it was left out."""
    rows = [{"checkpoint": "epoch_1.pt", "epoch": 1, "step": 4, "encoded_l1": 0.5, "coverage": 0.25},
            {"checkpoint": "epoch_2.pt", "epoch": 2, "step": 8, "error": "a long reason why this one was not measured"},
            {"checkpoint": "latest.pt", "epoch": 2, "step": 10, "encoded_l1": 0.125, "coverage": None}]
    assert format_sweep(rows).splitlines()[:4] == [
        "checkpoint  epoch  step  encoded_l1  coverage",
        "epoch_1.pt  1      4     0.5000      0.2500",
        "epoch_2.pt  2      8     a long reason why this one was not measured",
        "latest.pt   2      10    0.1250      -"]
    # the best of a measure at latest.pt: picked by giving no --epoch (it said "(latest.pt: (the latest))")
    assert "best encoded reconstruction L1: 0.1250 at epoch 2, step 10 (latest.pt: no --epoch)" in format_sweep(rows)
    assert format_sweep([rows[1]]).splitlines() == [
        "checkpoint  epoch  step", "epoch_2.pt  2      8     a long reason why this one was not measured"]


def test_nothing_measured_says_so_with_exit_2_and_writes_the_rows_where_a_sweep_of_that_split_goes(
        run, tmp_path, capsys, monkeypatch):
    run = copy_run(run, tmp_path)

    def diverged(self):
        raise ev_module.DivergenceError("the model holds non-finite weights in G (1 values)")
    monkeypatch.setattr(Evaluation, "_check_finite", diverged)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 2
    out, err = capsys.readouterr()
    assert re.search(r"^latest.pt +2 +10 +the model holds non-finite weights in G", out, re.M)
    # (the progress lines on stderr, then the one error)
    assert err.count("bicyclegan evaluate: ") == 1 and "none of the 3 checkpoints could be measured" in err
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())  # not results/sweep/
    assert [r["checkpoint"] for r in rows] == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    assert all("error" in r for r in rows)
    assert (run / "results" / "val_sweep" / "index.html").is_file() and not (run / "results" / "sweep").exists()
    for e in (1, 2):  # one checkpoint: it "could be measured", said the line
        (run / "checkpoints" / f"epoch_{e}.pt").unlink()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.endswith("the checkpoint could not be measured (the table says why)")


def test_an_unwritable_json_is_refused_before_any_checkpoint_is_measured(run, tmp_path, capsys):
    run = copy_run(run, tmp_path)
    (tmp_path / "a_file").write_text("")
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--json", str(tmp_path / "a_file" / "s.json")]) == 2
    assert "a_file" in capsys.readouterr().err
    assert not (run / "results").exists() or not any((run / "results").rglob("eval.json"))
    # a relative --json is the working directory's
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1", "--json", "s.json"]) == 0
    finally:
        monkeypatch.undo()
    assert [r["checkpoint"] for r in json.loads((tmp_path / "s.json").read_text())] == [
        "epoch_1.pt", "epoch_2.pt", "latest.pt"]
    # a run whose results cannot be written (shared read-only; here results is a file): --json cannot take them
    # elsewhere, so the refusal says how to sweep it ("choose another folder" named no option that could)
    shutil.rmtree(run / "results")
    (run / "results").write_text("")
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as m:  # (the run named `.`: "cp -r . ~/''")
        m.chdir(run)
        assert main(["evaluate", ".", "--epoch", "all", *OPTS, "--json", str(tmp_path / "t.json")]) == 2
    assert capsys.readouterr().err.endswith(f"; a sweep writes into the run folder (each checkpoint's eval.json, the "
                                            f"page): make its results/ writable, or sweep a copy of the run (cp -r "
                                            f"{run} ~/{run.name})\n")


def test_a_damaged_checkpoint_among_good_ones_gets_a_row_and_the_others_are_measured(run, tmp_path, capsys):
    """Damage shows only when a checkpoint is read whole (its digest), maybe hours into a sweep: it
    stopped the sweep there, and sweep.json and the page of the checkpoints measured were never written."""
    run = copy_run(run, tmp_path)
    f = run / "checkpoints" / "epoch_2.pt"
    state = torch.load(f, weights_only=True)
    with torch.no_grad():
        next(iter(state["nets"]["G"].values())).view(-1)[0] += 1  # the digest written with it no longer matches
    torch.save(state, f)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1"]) == 0
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert [r["checkpoint"] for r in rows] == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    assert "is damaged" in rows[1]["error"] and "encoded_l1" in rows[0] and "encoded_l1" in rows[2]
    assert re.search(r"^\[2/3\] epoch_2.pt: .*epoch_2.pt is damaged", capsys.readouterr().err, re.M)


def test_checkpoints_written_after_a_resume_with_other_resumable_options_share_the_evaluation(run, tmp_path,
                                                                                              monkeypatch):
    """--num_workers, --impl... may change on resume (checkpoint.check_compatible): the later
    checkpoints were evaluated anew, the metric networks loaded again for each."""
    run = copy_run(run, tmp_path)
    for name in ("epoch_2.pt", "latest.pt"):
        m = load_checkpoint(run / "checkpoints" / name, device="cpu", training=True)
        step, epoch = 8 if name == "epoch_2.pt" else 10, 2
        m.cfg.data.num_workers, m.cfg.model.channels_last = 1, True
        m.cfg.data.dataroot = str(tmp_path / "moved")  # resumed on a copy of the data elsewhere (not here now)
        save_checkpoint(m, run / "checkpoints" / name, step=step, epoch=epoch)
    loads = []
    monkeypatch.setattr(ev_module, "load_inception",
                        lambda path=None, device="cpu": loads.append(1) or torch.nn.Linear(1, 1))
    ev = Evaluation(run / "checkpoints" / "epoch_1.pt", phase="val", num=4, device="cpu", metrics="l1,fid")
    later = ev.of(run / "checkpoints" / "latest.pt")
    assert len(loads) == 1 and later.inception is ev.inception and later.model.cfg.data.num_workers == 1
    assert later.root == ev.root and later.n_inputs == 4  # the first checkpoint's inputs, as for every one


def test_the_checkpoints_folder_itself_stands_for_its_run(run):
    ckpts = run / "checkpoints"
    assert run_checkpoints(ckpts) == run_checkpoints(run)


def test_a_run_folder_named_checkpoints_is_swept_as_a_run(run, tmp_path, capsys):
    # (train --out checkpoints): taken for a run's checkpoints/ folder, it "held no checkpoint to evaluate"
    named = tmp_path / "checkpoints"
    shutil.copytree(run, named, ignore=shutil.ignore_patterns("results"))
    want = [(named / "checkpoints" / f, e, s) for f, e, s in (("epoch_1.pt", 1, 4), ("epoch_2.pt", 2, 8),
                                                              ("latest.pt", 2, 10))]
    assert run_checkpoints(named) == run_checkpoints(named / "checkpoints") == want
    assert main(["evaluate", str(named), "--epoch", "all", *OPTS, "--metrics", "l1"]) == 0
    assert len(json.loads((named / "results" / "val_sweep" / "sweep.json").read_text())) == 3
    assert f"report: {named.resolve() / 'report.html'}" in capsys.readouterr().out


def test_a_checkpoint_that_cannot_be_read_is_refused_before_any_work(run, tmp_path, capsys):
    run = copy_run(run, tmp_path)
    (run / "checkpoints" / "epoch_3.pt").write_bytes(b"cut short")
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epoch_3.pt cannot be read" in err and "move it away" in err
    assert not (run / "results").exists()


def test_the_data_folder_is_recorded_absolute_and_read_from_anywhere(run, data, tmp_path, capsys, monkeypatch):
    """--dataroot as typed (data, relative to the folder evaluate ran in) was what eval.json and sweep.json
    held: read from another folder, the page said "the images of data" of a dataset with a val/ split."""
    run, here, elsewhere = copy_run(run, tmp_path), data.resolve(), tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(data.parent)
    assert main(["evaluate", str(run), "--epoch", "all", "--dataroot", data.name, *OPTS]) == 0
    sweep_json, evals = run / "results" / "val_sweep" / "sweep.json", sorted(run.glob("results/val*/eval.json"))
    rows = json.loads(sweep_json.read_text())
    assert len(evals) == 3 and [(r["dataroot"], r["dataroot_given"]) for r in rows] == [(str(here), data.name)] * 3
    assert all(json.loads(f.read_text())["dataroot"] == str(here) for f in evals)
    assert "(val)" in format_table(json.loads(evals[0].read_text())).splitlines()[1]  # the words as typed
    monkeypatch.chdir(elsewhere)
    assert f"each on val/ of {here}: the first 4 inputs" in render_sweep("run", rows)
    assert format_table(json.loads(evals[0].read_text())).splitlines()[1].endswith("(val)")
    # eval.json files of before, holding the folder as typed: read as their protocol (absolute) names it, and a
    # sweep that reuses them, run from elsewhere, writes it absolute
    for f in evals:
        old = {k: v for k, v in json.loads(f.read_text()).items() if k != "dataroot_given"}
        f.write_text(json.dumps({**old, "dataroot": data.name}))
    assert format_table(json.loads(evals[0].read_text())).splitlines()[1].endswith("(val)")
    assert main(["evaluate", str(run), "--epoch", "all", "--dataroot", str(here), *OPTS, "--reuse"]) == 0
    assert "(3 measured before, reused)" in capsys.readouterr().err
    assert [r["dataroot"] for r in json.loads(sweep_json.read_text())] == [str(here)] * 3
    assert f"each on val/ of {here}: the first" in (sweep_json.parent / "index.html").read_text()
    # older still, without a protocol: relative to the current folder, as it was always read
    bare = {"variant": "bicycle", "dataroot": data.name, "phase": "val", "n_inputs": 4, "n_samples": 3}
    assert format_table(bare).splitlines()[1].endswith("(the images of data)")  # (no data/ here)
    monkeypatch.chdir(data.parent)
    assert format_table(bare).splitlines()[1].endswith("(val)")


def test_reuse_measures_only_the_checkpoints_whose_file_or_protocol_changed(run, data, tmp_path, capsys, monkeypatch):
    run = copy_run(run, tmp_path)
    ckpts, sweep_json = run / "checkpoints", run / "results" / "val_sweep" / "sweep.json"
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0
    first = json.loads(sweep_json.read_text())
    again, run_ = [], Evaluation.run
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: again.append(1) or run_(self, *a, **k))
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0  # without --reuse: all measured again
    assert len(again) == 3 and json.loads(sweep_json.read_text()) == first
    calls = []
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: calls.append(1) or pytest.fail("measured again"))
    loads, walks = [], []
    monkeypatch.setattr(Evaluation, "__init__", lambda *a, **k: loads.append(1) or pytest.fail("metric nets loaded"))
    sweep_mod = importlib.import_module("bicyclegan.engine.sweep")
    state = sweep_mod._files_state
    monkeypatch.setattr(sweep_mod, "_files_state", lambda *a: walks.append(1) or state(*a))
    peeked, peek = [], sweep_mod.peek_checkpoint
    monkeypatch.setattr(sweep_mod, "peek_checkpoint", lambda path, *keys: peeked.append(Path(path).name)
                        or peek(path, *keys))
    capsys.readouterr()
    # nothing changed: every row is the one measured before, nothing built, nothing measured, the split walked once
    # (for each checkpoint: 62 % of a 30-checkpoint sweep of a 4,000-image split), each file opened once (its
    # position and its digest in one look: twice made a sweep of 2,000 checkpoints wait 106 s)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse"]) == 0
    assert json.loads(sweep_json.read_text()) == first and not calls and not loads and len(walks) == 1
    assert sorted(peeked) == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    err = capsys.readouterr().err  # (the progress lines: stderr, as sample's and evaluate's counts)
    assert "evaluating 0 checkpoints" in err and "(3 measured before, reused)" in err
    assert re.search(r"^\[2/3\] epoch_2.pt \(epoch 2, step 8\): .*val_epoch_2/eval.json \(measured before\)$", err,
                     re.M)
    monkeypatch.undo()

    # latest.pt replaced by further training (other weights, a later step): it alone is measured
    m = load_checkpoint(ckpts / "latest.pt", device="cpu", training=True)
    with torch.no_grad():
        for p in m.G.parameters():
            p.mul_(0.9)
    save_checkpoint(m, ckpts / "latest.pt", step=11, epoch=3)
    measured = []
    run_ = Evaluation.run
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: measured.append(self.model) or run_(self, *a, **k))
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse"]) == 0
    rows = json.loads(sweep_json.read_text())
    assert len(measured) == 1 and rows[:2] == first[:2]
    want = evaluate(ckpts / "latest.pt", phase="val", num=4, n_samples=3, seed=5, device="cpu")
    assert (rows[2]["step"], rows[2]["epoch"]) == (11, 3)
    assert {k: v for k, v in rows[2].items() if k not in ("checkpoint", "run", "epoch", "step")} == want
    assert rows[2]["encoded_l1"] != first[2]["encoded_l1"]

    # another z draw is another protocol: all measured again, as without --reuse
    measured.clear()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS[:-1], "6", "--reuse"]) == 0
    assert len(measured) == 3 and all(r["seed"] == 6 for r in json.loads(sweep_json.read_text()))
    assert "of an older version" not in capsys.readouterr().err  # (another protocol of this version's is not that)
    # An older version's results (a protocol without the files' state; none at all before protocols): measured
    # again, as they cannot be compared, and said (they were measured again without a word)
    for n, eval_json in enumerate(sorted(run.glob("results/val_epoch_*/eval.json"))):
        row = json.loads(eval_json.read_text())
        if n:
            row.pop("protocol")
        else:
            row["protocol"].pop("files")
        eval_json.write_text(json.dumps(row))
    measured.clear()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS[:-1], "6", "--reuse"]) == 0
    assert len(measured) == 2 and "(2 results of an older version, which recorded less of how it was measured: " \
        "measured again)" in capsys.readouterr().err


def test_a_sweep_stopped_part_way_says_that_reuse_goes_on_from_the_checkpoints_it_measured(run, tmp_path, capsys,
                                                                                          monkeypatch):
    # Its Ctrl-C said "interrupted" alone (an FID sweep's hours: the measured checkpoints' eval.json is kept)
    run = copy_run(run, tmp_path)
    calls, run_ = [], Evaluation.run

    def second_stops(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_(self, *a, **k)
    monkeypatch.setattr(Evaluation, "run", second_stops)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        "interrupted; each checkpoint measured so far has its eval.json, the one it stopped in its measures so far: "
        "the same command with --reuse goes on from them")
    monkeypatch.undo()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse"]) == 0
    assert "(1 measured before, reused)" in capsys.readouterr().err


def test_reuse_reads_a_checkpoint_changed_since_its_measurement_and_keeps_no_result_of_a_damaged_one(
        run, tmp_path, capsys, monkeypatch):
    # --reuse compares the digest the file carries, which damage written over it leaves as it was: a damaged
    # epoch_2.pt, which a plain sweep reports, kept its old result under --reuse. A file changed since its
    # eval.json is read whole (its digest checked) first: damaged, it is measured (its error row); intact but
    # touched (copied again), its result is kept.
    run = copy_run(run, tmp_path)
    sweep_json = run / "results" / "val_sweep" / "sweep.json"
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1"]) == 0
    first = json.loads(sweep_json.read_text())
    one, two = run / "checkpoints" / "epoch_1.pt", run / "checkpoints" / "epoch_2.pt"
    data = bytearray(two.read_bytes())
    for k in range(len(data) // 2, len(data) // 2 + 64):  # bytes of a tensor, in place: the size stays
        data[k] ^= 0xFF
    two.write_bytes(bytes(data))
    later = max(p.stat().st_mtime_ns for p in (run / "results").rglob("eval.json")) + 10**9
    os.utime(one, ns=(later, later))  # touched, not changed
    os.utime(two, ns=(later, later))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1", "--reuse"]) == 0
    rows = json.loads(sweep_json.read_text())
    assert rows[0] == first[0] and rows[2] == first[2]  # kept (epoch_1.pt read and found intact)
    assert "is damaged" in rows[1]["error"] and "encoded_l1" not in rows[1]
    assert "(2 measured before, reused)" in capsys.readouterr().err


@pytest.mark.parametrize("change", ["none", "metrics", "num", "no protocol", "not json", "other file"])
def test_reuse_takes_an_eval_json_only_with_the_same_protocol(run, tmp_path, monkeypatch, change):
    """`evaluate --epoch 1` writes the protocol too, so a sweep with --reuse takes its result; one measured
    with other options, one written before eval.json held a protocol, or one that cannot be read is not."""
    run = copy_run(run, tmp_path)
    assert main(["evaluate", str(run), "--epoch", "1", *OPTS]) == 0
    f = run / "results" / "val_epoch_1" / "eval.json"
    alone = json.loads(f.read_text())
    if change == "metrics":
        assert main(["evaluate", str(run), "--epoch", "1", *OPTS, "--metrics", "l1"]) == 0
    elif change == "num":
        assert main(["evaluate", str(run), "--epoch", "1", *OPTS[:1], "3", *OPTS[2:]]) == 0
    elif change == "no protocol":
        f.write_text(json.dumps({k: v for k, v in alone.items() if k != "protocol"}))
    elif change == "not json":
        f.write_text("{cut sh")
    elif change == "other file":  # another checkpoint (another digest) now sits where epoch_1.pt was
        shutil.copy(run / "checkpoints" / "epoch_2.pt", run / "checkpoints" / "epoch_1.pt")
    measured = []
    run_ = Evaluation.run
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: measured.append(1) or run_(self, *a, **k))
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse"]) == 0
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert len(measured) == (2 if change == "none" else 3)
    if change == "none":
        assert rows[0] == {**{k: v for k, v in alone.items() if k != "protocol"}, "checkpoint": "epoch_1.pt",
                           "run": str(run.resolve()), "epoch": 1, "step": 4}
    # whichever way, the row and the file now hold epoch_1.pt's measures with this protocol
    want = evaluate(run / "checkpoints" / "epoch_1.pt", phase="val", num=4, n_samples=3, seed=5, device="cpu")
    assert {k: v for k, v in rows[0].items() if k not in ("checkpoint", "run", "epoch", "step")} == want
    assert json.loads(f.read_text())["protocol"]["num"] == 4


# Each at the run's default: the demo data's metrics, its layout, the run's skip_bad (its config.json: false)
AT_DEFAULT = {"metrics": ["--metrics", "palette,l1"], "layout": ["--layout", "aligned"], "skip_bad": ["--no-skip_bad"]}


@pytest.mark.parametrize("epoch, given", [("all", [k]) for k in AT_DEFAULT] + [("1", list(AT_DEFAULT))],
                         ids=[*AT_DEFAULT, "all three, evaluate --epoch 1"])
@pytest.mark.parametrize("when", ["measured", "reused"])
def test_an_option_given_at_its_default_is_the_protocol_of_one_left_out(run, tmp_path, monkeypatch, epoch, given,
                                                                        when):
    """The protocol recorded the options as given: a sweep with --reuse and --metrics l1,palette on the demo data
    (its default metrics) measured again every checkpoint measured without it, and the other way round; so did
    --no-skip_bad for a run without skip_bad, and --layout aligned on aligned data. The results of a sweep and of
    `evaluate --epoch 1` alike."""
    run = copy_run(run, tmp_path)
    assert json.loads((run / "config.json").read_text())["data"]["skip_bad"] is False
    options = [o for k in given for o in AT_DEFAULT[k]]
    assert main(["evaluate", str(run), "--epoch", epoch, *OPTS, *(options if when == "measured" else [])]) == 0
    measured = []
    run_ = Evaluation.run
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: measured.append(self.model.source["digest"]) or
                        run_(self, *a, **k))
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse",
                 *(options if when == "reused" else [])]) == 0
    assert len(measured) == (0 if epoch == "all" else 2)  # (evaluate --epoch 1 wrote epoch_1.pt's alone)


def test_reuse_takes_an_older_versions_result_of_options_left_out_as_it_resolves_them(run, tmp_path, monkeypatch,
                                                                                     capsys):
    # The versions before recorded an option left out as None: such a result is still taken where the option
    # given is what it resolves to (the demo data's metrics), and measured again where it is not.
    from bicyclegan.engine.sweep import protocol
    run = copy_run(run, tmp_path)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0
    files = sorted(run.glob("results/val_epoch_*/eval.json"))
    for f in files:  # each protocol as the version before wrote it: the options as given, none of these three
        row = json.loads(f.read_text())
        p = row["protocol"]
        row["protocol"] = protocol(p["digest"], p["dataroot"], p["phase"], n_samples=p["n_samples"], seed=p["seed"],
                                   device="cpu", num=p["num"])
        assert [row["protocol"][k] for k in AT_DEFAULT] == [None, None, None]
        f.write_text(json.dumps(row))
    measured = []
    run_ = Evaluation.run
    monkeypatch.setattr(Evaluation, "run", lambda self, *a, **k: measured.append(1) or run_(self, *a, **k))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse", *AT_DEFAULT["metrics"],
                 *AT_DEFAULT["skip_bad"]]) == 0
    assert not measured and "(3 measured before, reused)" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse", "--metrics", "l1"]) == 0
    assert len(measured) == 3


def test_a_protocol_names_the_metrics_as_a_set(tmp_path):
    # Each metric is measured alone, so their order or a repeat changes no figure: --reuse measured again.
    from bicyclegan.engine.sweep import protocol
    one = protocol("d", tmp_path, "val", metrics="lpips,l1", device="cpu")
    assert one["metrics"] == ["l1", "lpips"]
    assert protocol("d", tmp_path, "val", metrics=[" l1", "lpips ", "l1"], device="cpu") == one
    assert protocol("d", tmp_path, "val", metrics="l1", device="cpu") != one


def test_a_protocol_changes_with_the_splits_files_and_the_metric_weights_files(tmp_path, monkeypatch):
    # Options named the data and the weights alone: an image edited in place, another TORCH_HOME or a weights
    # file replaced at its path kept the figures measured before under --reuse (and its best checkpoint).
    from bicyclegan.engine.sweep import protocol
    split = tmp_path / "data" / "val"
    split.mkdir(parents=True)
    (split / "1.png").write_bytes(b"one")
    (split / "2.png").write_bytes(b"two")
    (tmp_path / "data" / "train").mkdir()  # another split: not read
    linear = tmp_path / "lin.pth"
    linear.write_bytes(b"w")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub1"))

    def now(metrics):
        return protocol("d", tmp_path / "data", "val", metrics=metrics, lpips_linear=linear, device="cpu")
    l1, lp = now("l1"), now("lpips")
    assert now("l1") == l1 and now("lpips") == lp  # (nothing changed: the same)
    (tmp_path / "data" / "train" / "3.png").write_bytes(b"x")
    assert now("l1") == l1
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub2"))  # another AlexNet file: lpips's figures, not l1's
    assert now("l1") == l1 and now("lpips") != lp
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub1"))
    os.utime(linear, ns=(1, 1))  # the linear weights replaced at their path
    assert now("l1") == l1 and now("lpips") != lp
    lp = now("lpips")
    (split / "2.png").write_bytes(b"TWO")  # an image edited in place (another time; here the same size too)
    os.utime(split / "2.png", ns=(5, 5))
    assert now("l1") != l1 and now("lpips") != lp


def test_reuse_goes_with_epoch_all(run, capsys):
    assert main(["evaluate", str(run), *OPTS, "--reuse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reuse" in err and "--epoch all" in err


def test_a_latest_pt_replaced_during_the_sweep_is_labelled_and_recorded_as_the_file_measured(run, tmp_path,
                                                                                              monkeypatch):
    """A training still running replaces latest.pt while the sweep measures the checkpoints before it: the
    row said the step listed at the start, beside the newer weights' measures."""
    run = copy_run(run, tmp_path)
    ckpts = run / "checkpoints"
    newer = load_checkpoint(ckpts / "latest.pt", device="cpu", training=True)
    with torch.no_grad():
        for p in newer.G.parameters():
            p.mul_(0.9)
    run_ = Evaluation.run

    def run_and_train_on(self, *a, **k):
        if self.model.source["step"] == 4:  # while epoch_1.pt is measured, the training saves step 11
            save_checkpoint(newer, ckpts / "latest.pt", step=11, epoch=3)
        return run_(self, *a, **k)
    monkeypatch.setattr(Evaluation, "run", run_and_train_on)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert [(r["checkpoint"], r["epoch"], r["step"]) for r in rows][-1] == ("latest.pt", 3, 11)
    want = evaluate(ckpts / "latest.pt", phase="val", num=4, n_samples=3, seed=5, device="cpu")
    assert {k: v for k, v in rows[-1].items() if k not in ("checkpoint", "run", "epoch", "step")} == want
    saved = json.loads((run / "results" / "val" / "eval.json").read_text())
    assert saved["protocol"]["digest"] == torch.load(ckpts / "latest.pt", weights_only=True)["digest"]
    monkeypatch.setattr(Evaluation, "run", lambda *a, **k: pytest.fail("measured again"))
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse"]) == 0
    # replaced while it is itself measured: eval.json records the file read (step 11), so a sweep
    # after it measures the newer file (step 12), not takes step 11's figures for it
    monkeypatch.undo()
    read = load_checkpoint(ckpts / "latest.pt", device="cpu", training=True)
    run_ = Evaluation.run
    measured = []

    def replaced_meanwhile(self, *a, **k):
        measured.append(self.model.source["step"])
        if self.model.source["step"] == 11:
            save_checkpoint(read, ckpts / "latest.pt", step=12, epoch=3)
        return run_(self, *a, **k)
    monkeypatch.setattr(Evaluation, "run", replaced_meanwhile)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 0
    assert json.loads((run / "results" / "val" / "eval.json").read_text())["step"] == 11
    measured.clear()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--reuse"]) == 0
    assert measured == [12]


def test_the_runs_report_lists_what_the_inference_commands_wrote_for_its_checkpoints(run, tmp_path, capsys,
                                                                                      monkeypatch):
    """report.html is where a run is looked at: it links the galleries, evaluations and sweep pages that
    sample, evaluate, evaluate --epoch all and interpolate wrote into results/, each command rewriting it."""
    run = copy_run(run, tmp_path)
    small = ["--num", "2", "--device", "cpu"]
    assert main(["evaluate", str(run / "checkpoints"), "--epoch", "all", "--n_samples", "2", *small]) == 0
    assert "results/val_sweep/index.html" in (run / "report.html").read_text()  # RUN/checkpoints names its run
    assert main(["sample", str(run), "--n_samples", "2", *small]) == 0
    assert main(["interpolate", str(run), "--epoch", "1", "--segments", "1", "--frames", "2", "--no-mp4",
                 *small]) == 0
    assert f"report: {run.resolve() / 'report.html'}" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    section = page[page.index("Results of its checkpoints"):]
    hrefs = re.findall(r"<a href='([^']+)'>([^<]+)</a>", section)
    want = {("results/val/index.html", "samples"), ("results/val/eval.json", "evaluation (eval.json)"),
            ("results/val_epoch_1/eval.json", "evaluation (eval.json)"),
            ("results/val_sweep/index.html", "every checkpoint evaluated"),
            ("results/interpolate_val_epoch_1/index.html", "interpolation")}
    assert want <= set(hrefs)
    assert all((run / h).is_file() for h, _ in hrefs)  # each opens from the run folder, where report.html is
    # a checkpoint outside a run has no report to rewrite; one that cannot be rewritten is a note, not a failure
    alone = shutil.copy(run / "checkpoints" / "epoch_1.pt", tmp_path / "alone.pt")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(alone), "--n_samples", "2", *small]) == 0
    assert "report:" not in capsys.readouterr().out

    def refuse(run_dir, **k):
        raise OutputError(f"cannot write {run_dir}/report.html")
    monkeypatch.setattr(report_mod, "write_report", refuse)
    assert main(["evaluate", str(run), "--n_samples", "2", *small]) == 0
    assert "note: the run's report.html was not rewritten (cannot write" in capsys.readouterr().err


def test_json_safe_nulls_every_value_json_cannot_hold_and_keeps_the_rest():
    """JSON has no Infinity either: an infinite measure (a FID that overflowed) was written as Infinity."""
    got = json_safe({"fid": float("inf"), "a": float("-inf"), "b": float("nan"), "c": 0.5, "n": 3, "s": "val",
                     "none": None, "lpips": {"n_pairs": 2}})
    assert got == {"fid": None, "a": None, "b": None, "c": 0.5, "n": 3, "s": "val", "none": None,
                   "lpips": {"n_pairs": 2}}
    json.loads(json.dumps(got, allow_nan=False))


def test_each_chart_spans_every_checkpoints_step_and_rings_its_best_point():
    """A measure missing at the last checkpoint (an error row) is charted over the whole run, as the
    others, and the ring sits on the best checkpoint's point (its step, not its epoch)."""
    rows = [{"checkpoint": "epoch_1.pt", "epoch": 1, "step": 4, "encoded_l1": 0.5},
            {"checkpoint": "epoch_2.pt", "epoch": 2, "step": 8, "encoded_l1": 0.25},
            {"checkpoint": "epoch_3.pt", "epoch": 3, "step": 10, "encoded_l1": 0.375},
            {"checkpoint": "latest.pt", "epoch": 4, "step": 12, "error": "diverged"}]
    page = render_sweep("run", rows)
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))
    ns = "{http://www.w3.org/2000/svg}"
    box = next(r for r in svg.iter(f"{ns}rect") if r.get("class") == "box")
    left, width = float(box.get("x")), float(box.get("width"))
    top, height = float(box.get("y")), float(box.get("height"))
    pts = [tuple(map(float, p.split(","))) for p in svg.find(f"{ns}polyline").get("points").split()]
    # steps 4, 8, 10 on an axis from step 4 to step 12: 0, 1/2 and 3/4 of the plot's width
    assert [x for x, _ in pts] == pytest.approx([left, left + width / 2, left + width * 3 / 4], abs=0.06)
    # values 0.5, 0.25, 0.375: the highest at the top, the lowest at the bottom, the third midway
    assert [y for _, y in pts] == pytest.approx([top, top + height, top + height / 2], abs=0.06)
    ring = next(c for c in svg.iter(f"{ns}circle") if c.get("class") == "b")
    assert (float(ring.get("cx")), float(ring.get("cy"))) == pytest.approx(pts[1], abs=0.06)
    assert "at epoch 2 (epoch_2.pt)" in ring.find(f"{ns}title").text


def test_a_write_that_fails_keeps_the_previous_sweep_json_and_says_which_file(run, tmp_path, capsys, monkeypatch,
                                                                                replace_fails):
    """sweep.json is written atomically: a disk failing as it is written leaves the previous one whole."""
    run = copy_run(run, tmp_path)
    folder = run / "results" / "val_sweep"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text('["the previous sweep"]')

    def diverged(self):  # nothing to measure: the sweep writes sweep.json and its page at once
        raise ev_module.DivergenceError("the model holds non-finite weights in G (1 values)")
    monkeypatch.setattr(Evaluation, "_check_finite", diverged)
    replace_fails("sweep.json")
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS]) == 2
    err = capsys.readouterr().err
    assert err.count("bicyclegan evaluate: ") == 1
    assert f"cannot write sweep results {folder / 'sweep.json'}: Input/output error" in err
    assert "the previous one is intact" in err
    assert (folder / "sweep.json").read_text() == '["the previous sweep"]'


def test_a_finished_runs_latest_pt_counts_the_epochs_it_trained(data, tmp_path):
    """3 epochs of 4 steps, epoch_2.pt kept: latest.pt (step 12) holds 3 epochs' training, and was listed
    as epoch 2, as epoch_2.pt (step 8) is: it is stored in the epoch the run ended in."""
    out = tmp_path / "run"
    Trainer(tiny_cfg(out, data, niter=2, niter_decay=1, max_steps=None, save_epoch_freq=2, sample_every=100,
                     save_every=100), progress=False).train()
    assert [(p.name, e, s) for p, e, s in run_checkpoints(out)] == [("epoch_2.pt", 2, 8), ("latest.pt", 3, 12)]
    assert load_checkpoint(out / "checkpoints" / "latest.pt", device="cpu").source["epoch"] == 3


# -- under torchrun ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_under_torchrun_the_processes_share_the_inputs_and_rank_0_alone_prints_and_writes(run, data, tmp_path):
    """evaluate under torchrun: each of the 2 processes measures its share of every checkpoint's inputs (5
    inputs: 2 + 3), rank 0 prints and writes once, and the figures are one process's (sums in another order:
    equal to rounding). Before, every process measured them all and printed and wrote the same files."""
    from test_distributed import torchrun_cli
    run = copy_run(run, tmp_path)
    # --num_test: torchrun's parser takes --num for its --numa-binding
    opts = ["--num_test", "5", "--n_samples", "3", "--device", "cpu", "--seed", "5"]
    done = torchrun_cli(tmp_path, "evaluate", run, "--epoch", "all", *opts)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert said.count("evaluating 3 checkpoints of") == 1 and said.count("[3/3] latest.pt") == 1, said
    assert said.count("best encoded reconstruction L1") == 1 and said.count("page: ") == 1, said
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert [r["checkpoint"] for r in rows] == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    for r in rows:
        want = evaluate(run / "checkpoints" / r["checkpoint"], phase="val", num=5, n_samples=3, seed=5, device="cpu")
        assert r["n_inputs"] == 5 and r["histogram"] == want["histogram"]
        assert {k: v for k, v in r.items() if k not in ("checkpoint", "run", "epoch", "step")} == {
            k: pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for k, v in want.items()}
    # one checkpoint: the same figures, the table and the results line once
    swept = json.loads((run / "results" / "val_epoch_2" / "eval.json").read_text())
    (run / "results" / "val_epoch_2" / "eval.json").unlink()
    done = torchrun_cli(tmp_path, "evaluate", run, "--epoch", "2", *opts)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert said.count("results: ") == 1 and said.count("encoded reconstruction") == 1, said
    alone = json.loads((run / "results" / "val_epoch_2" / "eval.json").read_text())
    assert alone == {k: v for k, v in swept.items() if k not in ("epoch", "step")}


def _two_files_rank(rank, world, port, out_dir, files):
    """One rank of test_ranks_that_read_two_different_checkpoints_...: rank r evaluates files[r]."""
    import os

    import torch.distributed as dist

    from bicyclegan.engine.runtime import Dist, made_alike
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    me, got = Dist(rank, world), {}
    for case in ("same", "different"):
        path = files[0] if case == "same" else files[rank]
        try:
            made_alike(me, lambda: Evaluation(path, phase="val", num=2, device="cpu", dist=me))
            got[case] = "made"
        except CheckpointError as e:
            got[case] = (str(e), getattr(e, "from_rank0", False))
    try:  # a refusal on rank 1 alone (its file missing): every rank's, not rank 0 waiting in run()
        made_alike(me, lambda: Evaluation(files[0] if rank == 0 else Path(out_dir) / "gone.pt", device="cpu", dist=me))
    except CheckpointError as e:
        got["missing"] = (type(e).__name__, getattr(e, "from_rank0", False))
    (Path(out_dir) / f"{rank}.json").write_text(json.dumps(got))
    dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_that_read_different_weights_or_fail_to_read_refuse_together(run, tmp_path):
    """latest.pt replaced by a training still running between the ranks' reads: they would have measured two
    models as one. One rank's file missing: every rank refuses, none waits for it in the evaluation."""
    from test_distributed import _free_port, spawn_ranks
    files = [str(run / "checkpoints" / "epoch_1.pt"), str(run / "checkpoints" / "epoch_2.pt")]
    spawn_ranks(_two_files_rank, (2, _free_port(), str(tmp_path), files))
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["same"] == r1["same"] == "made"
    text, copy = r0["different"]
    assert "changed while the 2 processes read it (steps 4, 8)" in text and not copy
    assert r1["different"] == [text.replace(files[0], files[1]), True]  # printed once, by rank 0
    assert r0["missing"] == ["CheckpointError", True] and r1["missing"] == ["CheckpointError", False]


def test_the_files_skip_bad_leaves_out_are_said_once_a_sweep(run, data, tmp_path, caplog):
    """Each checkpoint's evaluation makes its own loaders, and each said the split's skipped files again (a
    line per checkpoint); said once now, and again where the list changes."""
    import logging
    root = tmp_path / "data"
    shutil.copytree(data, root)
    (root / "val" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        rows, _ = evaluate_checkpoints(copy_run(run, tmp_path), root, skip_bad=True, num=3, n_samples=2,
                                       device="cpu", log=None)
    assert [r["n_inputs"] for r in rows] == [3, 3, 3]  # the three checkpoints measured, the file left out
    said = [r.getMessage() for r in caplog.records if "bad file(s) in" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"skipped 1 bad file(s) in {root / 'val'}:\n"), said


@pytest.mark.parametrize("held", ["sample", "compare", "own page"])
def test_a_sweep_folder_holding_another_commands_results_or_the_users_page_is_refused_before_any_work(
        run, data, tmp_path, capsys, held):
    """The sweep's page goes into RUN/results/<phase>_sweep/ (no --out): a gallery `sample --out` wrote there, or a
    page of the user's own, was replaced by it, lost. Refused, naming the file, before any checkpoint is measured;
    an earlier sweep's page is replaced, its sweep.json written elsewhere (--json) too."""
    run = copy_run(run, tmp_path)
    folder = run / "results" / "val_sweep"
    if held == "sample":
        assert main(["sample", str(run), "--dataroot", str(data), "--phase", "val", "--num", "1", "--n_samples", "1",
                     "--device", "cpu", "--out", str(folder)]) == 0
        named = folder / "grid.png"
    else:
        folder.mkdir(parents=True)
        if held == "compare":
            (folder / "compare.json").write_text("[]")
        named = folder / ("compare.json" if held == "compare" else "index.html")
        (folder / "index.html").write_text("<html><title>my notes</title></html>")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1"]) == 2
    out, err = capsys.readouterr()
    assert str(named) in err and "evaluate --epoch all" in err and "evaluating" not in err, err
    # (the folder as the sweep has it: no --out, and what to do instead of giving one)
    assert f"OutputError: {folder} holds " in err and err.rstrip().endswith(
        f"move that folder elsewhere (mv {folder} NEW: a sweep writes its page there, and takes no --out), then sweep "
        f"again"), err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not list((run / "results").rglob("eval.json"))
    # the sweep's own page, its rows in a --json elsewhere: no sweep.json beside it, and still the sweep's
    shutil.rmtree(folder)
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1", "--json", str(tmp_path / "s.json")
                 ]) == 0
    assert not (folder / "sweep.json").exists()
    assert main(["evaluate", str(run), "--epoch", "all", *OPTS, "--metrics", "l1"]) == 0
    assert (folder / "sweep.json").is_file()


def test_an_earlier_sweeps_page_is_told_by_its_title_alone(tmp_path, monkeypatch):
    # (the check the sweep's folder makes of an index.html with no sweep.json beside it: a page of the user's that
    # quotes the sweep's words outside its <title> is the user's (MQ38), as is a page that cannot be read (MQ39); the
    # refusal names the folder as the sweep has it, no --out, and says what to do (MQ35, MQ36))
    images = importlib.import_module("bicyclegan.engine.images")
    page = tmp_path / "index.html"

    def refuse():
        return images.refuse_others_results(tmp_path, "evaluate --epoch all", ("evaluate --epoch all",),
                                            own_title=": every checkpoint evaluated", where="",
                                            instead="move it elsewhere")
    page.write_text("<html><head><title>run: every checkpoint evaluated</title></head><body></body></html>")
    assert refuse() == tmp_path
    page.write_text("<html><head><title>my notes</title></head><body><h1>run: every checkpoint evaluated</h1></body>"
                    "</html>")
    with pytest.raises(OutputError) as refused:
        refuse()
    assert str(refused.value) == (f"{tmp_path} holds an index.html that no evaluate --epoch all wrote ({page}), whose "
                                  f"page evaluate --epoch all's index.html would replace; move it elsewhere")
    page.write_text("<html><head><title>run: every checkpoint evaluated</title></head><body></body></html>")

    def unreadable(*args, **kw):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(images, "open", unreadable, raising=False)
    with pytest.raises(OutputError, match="an index.html that no evaluate --epoch all wrote"):
        refuse()


def test_sweep_json_records_the_run_it_measured_absolute(run, tmp_path, capsys, monkeypatch):
    """sweep.json named each checkpoint by its file name alone: one written with --json elsewhere (or the run
    folder copied away) did not say which run's epoch_1.pt it measured. Each row names the run folder, absolute
    (a row of a --reuse too); a file of before without it reads as it did."""
    run = copy_run(run, tmp_path)
    monkeypatch.chdir(run.parent)
    out = tmp_path / "elsewhere.json"
    assert main(["evaluate", run.name, "--epoch", "all", *OPTS, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["checkpoint"], r["run"]) for r in rows] == [(n, str(run.resolve()))
                                                            for n in ("epoch_1.pt", "epoch_2.pt", "latest.pt")]
    assert main(["evaluate", run.name, "--epoch", "all", *OPTS, "--json", str(out), "--reuse"]) == 0
    assert "(3 measured before, reused)" in capsys.readouterr().err
    assert json.loads(out.read_text()) == rows
    old = [{k: v for k, v in r.items() if k != "run"} for r in rows]  # the tables show no run column
    assert format_sweep(old) == format_sweep(rows) and render_sweep("run", old) == render_sweep("run", rows)


def test_a_checkpoints_step_that_is_not_a_number_is_refused_and_pages_escape_their_values(tmp_path):
    # A file's step and epoch went into the sweep page's cells as they were: markup in them ran as the page's
    # (<script> from a checkpoint handed over with a run). Refused as damaged; every cell escaped besides.
    from bicyclegan.engine.checkpoint import FORMAT
    from bicyclegan.engine.report import measure_cells
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"format": FORMAT, "step": "<script>alert(1)</script>", "epoch": 0}, folder / "epoch_1.pt")
    with pytest.raises(CheckpointError, match=r"epoch_1\.pt is damaged: its step, epoch or steps per epoch is not a "
                                              r"whole number \('<script>"):
        run_checkpoints(tmp_path / "run")
    torch.save({"format": FORMAT, "step": 4, "epoch": 1, "steps_per_epoch": 2}, folder / "epoch_1.pt")
    assert run_checkpoints(tmp_path / "run") == [(folder / "epoch_1.pt", 2, 4)]
    row = {"checkpoint": "a<b.pt", "epoch": "<i>", "step": 3, "coverage": "<script>", "fid": 1.5}
    assert measure_cells(row, ["coverage", "fid"], {"fid": row}) == ("<td>&lt;script&gt;</td><td><b>1.5</b>"
                                                               "<span class='vh'> (best)</span></td>")
    page = render_sweep("r", [row])
    assert "<script>" not in page and "<i>" not in page and "&lt;i&gt;" in page


def test_the_terminal_table_gives_lpips_with_the_standard_error_its_note_names():
    # The note under the table spoke of a ± the table did not show (the page did)
    lp = {"net": "alex", "version": "0.0", "pairs": "consecutive", "n_pairs": 10, "std": 0.03, "stderr": 0.01}
    rows = [{"checkpoint": f"epoch_{e}.pt", "epoch": e, "step": 2 * e, "diversity_lpips": 0.5 + e / 100, "lpips": lp}
            for e in (1, 2)]
    table = format_sweep(rows)
    assert "0.5100 ± 0.0100" in table and "0.5200 ± 0.0100" in table and "± the standard error" in table


@pytest.mark.parametrize("epoch", [[], ["--epoch", "all"]], ids=["one", "sweep"])
def test_json_dash_puts_the_results_on_stdout_and_the_table_on_stderr(run, tmp_path, capsys, epoch, monkeypatch):
    # `evaluate RUN --json -` wrote a file named "-"; --json /dev/stdout failed after the whole evaluation
    run = copy_run(run, tmp_path)
    monkeypatch.chdir(tmp_path)  # (where a file "-" would be written)
    assert main(["evaluate", str(run), *epoch, *OPTS, "--json", "-"]) == 0
    out, err = capsys.readouterr()
    # (where it goes anyway: the data's val split, evaluate's default phase where there is one)
    written = run / "results" / ("val_sweep/sweep.json" if epoch else "val/eval.json")
    assert json.loads(out) == json.loads(written.read_text())
    assert f"results: {written}\n" in err and "reconstruction L1" in err.split("results:")[0], err  # the table too
    assert not Path("-").exists()


@pytest.mark.parametrize("epoch", [[], ["--epoch", "all"]], ids=["one", "sweep"])
def test_a_stream_or_a_link_to_a_pipe_given_as_the_json_is_refused_before_the_work(run, tmp_path, capsys, epoch,
                                                                                  monkeypatch):
    # The links passed the check before the work (a link, written through): /dev/stdout failed after it ("No such
    # file" under /proc/<pid>/fd/pipe:[...]), a redirect's file was replaced by a rename, the shell's stream left
    run = copy_run(run, tmp_path)
    for module in ("bicyclegan.engine.evaluate", "bicyclegan.engine.sweep"):  # (the first: a function's name too)
        monkeypatch.setattr(importlib.import_module(module), "Evaluation", lambda *a, **k: pytest.fail("measured"))
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to_pipe.json").symlink_to(tmp_path / "pipe")
    name, keyword = ("sweep.json", " (json_path in Python)") if epoch else ("eval.json", "")
    (tmp_path / "to_stdout.json").symlink_to("/dev/stdout")  # (a redirect's file was renamed over through it)
    stream = f"a process's open file (a stream, not a file's path); give a file's path, e.g. {name}"
    for given, said in [("/dev/stdout", stream), (str(tmp_path / "to_stdout.json"), stream),
                        (str(tmp_path / "to_pipe.json"), f"a named pipe, which the results would replace; give a "
                                                         f"file's path, e.g. {tmp_path / name}")]:
        assert main(["evaluate", str(run), *epoch, *OPTS, "--json", given]) == 2
        assert capsys.readouterr().err == (f"bicyclegan evaluate: OutputError: --json {given}{keyword} is {said} "
                                           f"(--json - writes them to standard output)\n")
    assert not (run / "results").exists()
