"""Evaluations during training (--eval_every) and the best checkpoint (--keep_best): each logged
figure against an independent `evaluate` of that step's weights, training untouched by them (to the
bit), best.pt over known sequences of values, resume, refusals, the report and two ranks."""
import importlib
import json
import math
import os
import re
import shutil
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipelines import needs_dali
from tiny import break_at_step, tiny_cfg

from bicyclegan.engine import BicycleGAN, ConfigError, DivergenceError, OutputError, TrainingStopped
from bicyclegan.engine.checkpoint import peek_checkpoint, read_checkpoint, save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.errors import WeightsError
from bicyclegan.engine.evaluate import Evaluation, evaluate
from bicyclegan.engine.runtime import Dist
from bicyclegan.engine.trainer import Trainer, check_start
from bicyclegan.pipelines import DatasetError, make_demo_dataset

ev_module = importlib.import_module("bicyclegan.engine.evaluate")  # the module, not the function


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 16 training pairs (4 batches an epoch), 5 held-out ones in val/: the split the grids and evaluations read
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=3, n_val=5, size=32, seed=0)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class Features(torch.nn.Module):
    """A small stand-in for FID's InceptionV3 ([0, 1] images -> N x D), as in test_metrics."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.linspace(-1, 1, self.conv.weight.numel()).reshape(self.conv.weight.shape))

    def forward(self, x):
        return torch.cat([x.mean((2, 3)), torch.relu(self.conv(x)).mean((2, 3))], 1)


def test_each_evaluation_logged_equals_evaluate_on_the_checkpoint_of_its_step(tmp_path, data, monkeypatch):
    # The steps each evaluation ran at are saved on the side as checkpoints; evaluate() of each (the
    # command's path: loaded from the file, its moving average of G) must give the logged line.
    net = Features()
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": net)
    saved = {}
    real = Trainer.validate

    def validate(self, *a, **k):
        saved[self.step] = save_checkpoint(self.model, tmp_path / "at" / f"{self.step}.pt", step=self.step)
        real(self, *a, **k)
    monkeypatch.setattr(Trainer, "validate", validate)
    cfg = tiny_cfg(tmp_path / "run", data, max_steps=7, eval_every=3, eval_metrics="l1,palette,fid", eval_num=4,
                   eval_samples=3, ema=0.5, sample_every=100, save_every=100)
    Trainer(cfg, progress=False).train()
    lines = read_lines(tmp_path / "run" / "eval_log.jsonl")
    assert [r["step"] for r in lines] == [3, 6, 7] == sorted(saved)  # every 3 steps and at the end
    assert [r["epoch"] for r in lines] == [0, 1, 1]
    for r in lines:
        want = evaluate(saved[r["step"]], data, phase="val", num=4, n_samples=3, seed=0, device="cpu",
                        metrics="l1,palette,fid")
        assert want.pop("variant") == "bicycle" and want.pop("dataroot") == str(data) and want.pop("phase") == "val"
        got = {k: v for k, v in r.items() if k not in ("step", "epoch", "split")}
        assert got == want and r["split"] == "val"
        assert set(want) >= {"diversity_l1", "encoded_l1", "coverage", "validity", "fid", "histogram"}
    # the weights moved between evaluations, so the lines differ: the same line thrice would pass above too
    assert len({r["encoded_l1"] for r in lines}) == 3


def test_a_run_on_images_of_several_sizes_evaluates_them_one_at_a_time(tmp_path):
    # preprocess none keeps each image's size: such a run trains at batch_size 1, and its evaluations, whose
    # batches of 16 need one size too, were refused with advice to use batch_size=1, which it had.
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 3)):
        for i in range(n):
            side = 64 if i % 2 else 32  # aligned pairs: A | B side by side
            (tmp_path / "mixed" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((side, 2 * side, 3)) * 255).astype(np.uint8)).save(
                tmp_path / "mixed" / split / f"{i}.png")
    cfg = tiny_cfg(tmp_path / "run", tmp_path / "mixed", variant="cvae", batch_size=1, max_steps=2, eval_every=2,
                   eval_num=3, eval_samples=2, eval_metrics="l1", sample_every=100, save_every=2)
    Trainer(cfg, progress=False).train()
    [line] = read_lines(tmp_path / "run" / "eval_log.jsonl")
    # evaluate of the step's checkpoint at batch 1 (evaluate --batch_size 1), the independent measure
    want = evaluate(tmp_path / "run" / "checkpoints" / "latest.pt", tmp_path / "mixed", phase="val", num=3,
                    n_samples=2, seed=0, device="cpu", metrics="l1", batch_size=1)
    assert (line["step"], line["n_inputs"], line["encoded_l1"], line["diversity_l1"]) == \
        (2, 3, want["encoded_l1"], want["diversity_l1"])
    # evaluate itself takes such a split at its default batch of 16 (it was refused too), the same figures
    assert evaluate(tmp_path / "run" / "checkpoints" / "latest.pt", tmp_path / "mixed", phase="val", num=3,
                    n_samples=2, seed=0, device="cpu", metrics="l1") == want


def _weights_and_log(run):
    state = read_checkpoint(run / "checkpoints" / "latest.pt")
    return state["nets"], state["optimizers"], state["ema"], state["rng"]["torch"], read_lines(run / "log.jsonl")


def test_training_with_evaluations_ends_with_the_same_weights_and_losses_to_the_bit(tmp_path, data):
    kw = dict(max_steps=6, ema=0.5, use_dropout=True, sample_every=4, save_every=100)
    without = Trainer(tiny_cfg(tmp_path / "without", data, **kw), progress=False).train()
    evaluated = Trainer(tiny_cfg(tmp_path / "with", data, eval_every=2, eval_samples=3, keep_best="encoded_l1", **kw),
                        progress=False).train()
    assert [r["step"] for r in read_lines(evaluated / "eval_log.jsonl")] == [2, 4, 6]
    assert (evaluated / "checkpoints" / "best.pt").is_file()
    a, b = _weights_and_log(without), _weights_and_log(evaluated)
    assert [{k: v for k, v in r.items() if k != "img_per_s"} for r in a[4]] == \
           [{k: v for k, v in r.items() if k != "img_per_s"} for r in b[4]]
    for net in a[0]:
        for k in a[0][net]:
            assert torch.equal(a[0][net][k], b[0][net][k]), (net, k)
    for k in a[2]:
        assert torch.equal(a[2][k], b[2][k]), k
    assert torch.equal(a[3], b[3])  # the z stream, where the run left it
    for name in a[1]:
        for sa, sb in zip(a[1][name]["state"].values(), b[1][name]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_an_evaluation_leaves_the_random_generators_and_the_networks_modes_as_they_were(tmp_path, data):
    t = Trainer(tiny_cfg(tmp_path / "run", data, eval_every=2, eval_samples=3, use_dropout=True), progress=False)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    modes = {name: m.training for name, m in t.model.named_modules()}
    t.validate()
    assert torch.equal(torch.get_rng_state(), rng)
    assert {name: m.training for name, m in t.model.named_modules()} == modes and all(modes.values())
    # the report says so at once, not at the next sample interval
    assert "1 evaluation, of val/: the first 5 inputs x 3 random z" in (tmp_path / "run" / "report.html").read_text()


def test_an_evaluation_of_diverged_weights_or_outputs_stops_the_run_naming_the_last_checkpoint(tmp_path, data,
                                                                                                monkeypatch):
    t = Trainer(tiny_cfg(tmp_path / "run", data, max_steps=8, eval_every=4, save_every=3, sample_every=100),
                progress=False)
    real = t.model.train_step

    def step(batch):  # weights gone non-finite at step 4, found by its evaluation (the log interval: 5)
        losses = real(batch)
        if t.step + 1 == 4:
            with torch.no_grad():
                next(t.model.G.parameters()).view(-1)[0] = float("nan")
        return losses
    monkeypatch.setattr(t.model, "train_step", step)
    monkeypatch.setattr(t.cfg, "log_every", 5)
    with pytest.raises(DivergenceError, match=r"^training diverged at step 4 \(epoch 1\): non-finite weights in G.*"
                                              r"the last good checkpoint is \S*latest.pt \(step 3\)"):
        t.train()
    t = Trainer(tiny_cfg(tmp_path / "r2", data, max_steps=8, eval_every=2, save_every=100, sample_every=100),
                progress=False)
    monkeypatch.setattr(Evaluation, "run", lambda self, n, s, stop=None: (_ for _ in ()).throw(
        DivergenceError("the model's outputs are not finite: it cannot be evaluated")))
    with pytest.raises(DivergenceError, match=r"^training diverged at step 2 \(epoch 1\): the model's outputs are "
                                              r"not finite: it cannot be evaluated; no checkpoint was written"):
        t.train()


def _scripted(monkeypatch, trainer_values):
    """Evaluation.run returning known figures: trainer_values() -> {step: {measure: value}} of the
    Trainer whose step is read (the evaluations' own work is tested above)."""
    def run(self, n_samples, seed, stop=None):
        trainer, values = trainer_values()
        return {"variant": "bicycle", "dataroot": "d", "phase": self.phase, "n_inputs": self.n_inputs,
                "n_samples": n_samples, "seed": seed, "metrics": list(self.chosen), **values[trainer.step]}
    monkeypatch.setattr(Evaluation, "run", run)


def _train(cfg, values, monkeypatch, **kw):
    box = {}
    _scripted(monkeypatch, lambda: (box["t"], values))
    box["t"] = t = Trainer(cfg, progress=False, **kw)
    t.train()
    return t


def _best(run):
    state = read_checkpoint(run / "checkpoints" / "best.pt")
    return state["step"], state["best"]


@pytest.mark.parametrize("measure, values, best_steps", [
    # higher is better; a tie keeps the earlier
    ("coverage", [0.2, 0.5, 0.4, 0.5, 0.7, float("nan")], [1, 2, 5]),
    # lower is better; a missing figure (None) never wins
    ("fid", [30.0, None, 20.0, 25.0, 20.0, 10.0], [1, 3, 6]),
    ("encoded_l1", [0.3, 0.31, 0.29, 0.29, 0.5, 0.1], [1, 3, 6]),
])
def test_best_pt_holds_the_best_evaluation_so_far(tmp_path, data, monkeypatch, measure, values, best_steps):
    by_step = {s: {measure: v} for s, v in zip(range(1, 7), values)}
    written = []
    real_save = Trainer.save

    def save(self, path=None, epoch=None, best=None):
        if best is not None:
            written.append((self.step, path.name, dict(best)))
        return real_save(self, path, epoch, best)
    monkeypatch.setattr(Trainer, "save", save)
    cfg = tiny_cfg(tmp_path / "run", data, max_steps=6, eval_every=1, keep_best=measure, sample_every=100,
                   eval_metrics="l1,palette,fid" if measure == "fid" else None)
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": Features())
    run = _train(cfg, by_step, monkeypatch).run_dir
    assert written == [(s, "best.pt", {"measure": measure, "value": values[s - 1], "step": s}) for s in best_steps]
    assert _best(run) == (best_steps[-1], {"measure": measure, "value": values[best_steps[-1] - 1],
                                           "step": best_steps[-1]})
    lines = read_lines(run / "eval_log.jsonl")
    assert [r["step"] for r in lines if r.get("best") == measure] == best_steps
    assert [r[measure] for r in lines] == [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    # best.pt is a whole checkpoint of its step: the model as latest.pt would have held it then
    assert read_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == (best_steps[-1] - 1) // 4


def _resumable(tmp_path, data, monkeypatch, first):
    """A run of 6 steps evaluated every 2 (figures `first` at steps 2, 4, 6) that kept epoch_1.pt (step 4),
    and the options to resume it from there."""
    kw = dict(eval_every=2, keep_best="coverage", sample_every=100, save_every=100, save_epoch_freq=1)
    _train(tiny_cfg(tmp_path / "run", data, max_steps=6, **kw), dict(zip((2, 4, 6), first)), monkeypatch)
    return tmp_path / "run", kw


def test_a_resume_drops_later_evaluations_and_a_later_best_pt(tmp_path, data, monkeypatch):
    run, kw = _resumable(tmp_path, data, monkeypatch, [{"coverage": 0.5}, {"coverage": 0.3}, {"coverage": 0.9}])
    assert _best(run)[0] == 6
    # From epoch 1 (step 4): the evaluation of step 6 is dropped, and best.pt of step 6 with it (its weights
    # were of steps this run trains again); so step 6's 0.45 is the best there is, beaten by 0.6 at step 8.
    t = Trainer(tiny_cfg(run, data, max_steps=8, **kw), epoch=1, progress=False)
    assert not (run / "checkpoints" / "best.pt").exists() and t.best is None
    assert peek_checkpoint(run / "checkpoints" / "abandoned_after_step_4" / "best.pt", "step") == (6,)  # kept aside
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2, 4]
    values = {6: {"coverage": 0.45}, 8: {"coverage": 0.6}}
    _scripted(monkeypatch, lambda: (t, values))
    t.train()
    lines = read_lines(run / "eval_log.jsonl")
    assert [(r["step"], r["coverage"], r.get("best")) for r in lines] == [
        (2, 0.5, "coverage"), (4, 0.3, None), (6, 0.45, "coverage"), (8, 0.6, "coverage")]
    assert _best(run) == (8, {"measure": "coverage", "value": 0.6, "step": 8}) and t.best == _best(run)[1]


def test_going_back_to_the_step_of_a_best_evaluation_keeps_it_best(tmp_path, data, monkeypatch):
    # Best at step 4 (the step resumed from), then at step 6: going back to step 4 set step 6's best.pt
    # aside, and step 6's next evaluation, worse than step 4's, became best.pt while the log still marked
    # step 4's line. Step 4's weights are the checkpoint resumed from: best.pt is written again from it.
    run, kw = _resumable(tmp_path, data, monkeypatch, [{"coverage": 0.3}, {"coverage": 0.5}, {"coverage": 0.9}])
    resumed = read_checkpoint(run / "checkpoints" / "epoch_1.pt")
    t = Trainer(tiny_cfg(run, data, max_steps=8, **kw), epoch=1, progress=False)
    assert peek_checkpoint(run / "checkpoints" / "abandoned_after_step_4" / "best.pt", "step") == (6,)
    assert _best(run) == (4, {"measure": "coverage", "value": 0.5, "step": 4}) and t.best == _best(run)[1]
    best = read_checkpoint(run / "checkpoints" / "best.pt")  # (read_checkpoint checks its digest)
    for name, sd in resumed["nets"].items():
        for k, v in sd.items():
            assert torch.equal(best["nets"][name][k], v), (name, k)
    values = {6: {"coverage": 0.45}, 8: {"coverage": 0.6}}
    _scripted(monkeypatch, lambda: (t, values))
    t.train()
    assert [(r["step"], r.get("best")) for r in read_lines(run / "eval_log.jsonl")] == [
        (2, "coverage"), (4, "coverage"), (6, None), (8, "coverage")]
    assert _best(run) == (8, {"measure": "coverage", "value": 0.6, "step": 8})


def test_the_report_rings_no_best_once_a_resume_removed_best_pt(tmp_path, data, monkeypatch):
    run, kw = _resumable(tmp_path, data, monkeypatch, [{"coverage": 0.5}, {"coverage": 0.3}, {"coverage": 0.9}])
    assert "at step 6, kept as checkpoints/best.pt" in (run / "report.html").read_text()
    t = Trainer(tiny_cfg(run, data, max_steps=8, **kw), epoch=1, progress=False)  # removes best.pt of step 6
    t.write_report()
    page = (run / "report.html").read_text()
    # step 2's line was best.pt's once, and that file is gone: nothing is ringed, nor said kept
    assert "best.pt" not in page and 'class="b"' not in page
    assert [r.get("best") for r in read_lines(run / "eval_log.jsonl")] == ["coverage", None]  # the log keeps it


def test_a_resume_keeps_an_earlier_best_pt_and_its_value(tmp_path, data, monkeypatch):
    # best.pt of step 4, the step resumed from (epoch_1.pt): the run has those weights, it stays
    run, kw = _resumable(tmp_path, data, monkeypatch, [{"coverage": 0.3}, {"coverage": 0.5}, {"coverage": 0.2}])
    before = (run / "checkpoints" / "best.pt").read_bytes()
    t = Trainer(tiny_cfg(run, data, max_steps=8, **kw), epoch=1, progress=False)
    assert t.best == {"measure": "coverage", "value": 0.5, "step": 4}  # from best.pt
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2, 4]
    values = {6: {"coverage": 0.45}, 8: {"coverage": 0.5}}  # neither beats step 4's 0.5
    _scripted(monkeypatch, lambda: (t, values))
    t.train()
    assert (run / "checkpoints" / "best.pt").read_bytes() == before


def test_a_resume_that_changes_what_is_measured_is_refused(tmp_path, data, monkeypatch):
    run, kw = _resumable(tmp_path, data, monkeypatch, [{"coverage": 0.3}, {"coverage": 0.5}, {"coverage": 0.2}])
    with pytest.raises(ConfigError, match=r"evaluations so far \(.*eval_log.jsonl, up to step 4\) measured "
                                          r"n_samples 10; this run's would measure n_samples 5 .*move "
                                          r"eval_log.jsonl and checkpoints/best.pt away"):
        Trainer(tiny_cfg(run, data, max_steps=8, **{**kw, "eval_samples": 5}), epoch=1, progress=False)
    with pytest.raises(ConfigError, match=r"measured n_inputs 5; this run's would measure n_inputs 3"):
        Trainer(tiny_cfg(run, data, max_steps=8, **{**kw, "eval_num": 3}), epoch=1, progress=False)
    with pytest.raises(ConfigError, match=r"keep_best=encoded_l1, and the run's checkpoints/best.pt \(step 4\) was "
                                          r"kept by coverage: resume with --keep_best coverage"):
        Trainer(tiny_cfg(run, data, max_steps=8, **{**kw, "keep_best": "encoded_l1"}), epoch=1, progress=False)
    # A run that has not evaluated yet may choose how: eval_every turned on, another eval_num.
    monkeypatch.undo()
    plain = tmp_path / "plain"
    Trainer(tiny_cfg(plain, data, max_steps=2, sample_every=100), progress=False).train()
    t = Trainer(tiny_cfg(plain, data, max_steps=4, eval_every=2, eval_num=3, sample_every=100), resume=True,
                progress=False)
    t.train()
    assert [(r["step"], r["n_inputs"]) for r in read_lines(plain / "eval_log.jsonl")] == [(4, 3)]


def test_a_run_of_a_model_without_z_resumes_with_its_own_evaluation_options(tmp_path, data):
    # nz 0: one output per input, whatever eval_samples asks for (each line says n_samples 1)
    kw = dict(variant="pix2pix", nz=0, eval_every=2, eval_num=2, eval_samples=3, sample_every=100, save_every=2)
    Trainer(tiny_cfg(tmp_path / "run", data, max_steps=4, **kw), progress=False).train()
    Trainer(tiny_cfg(tmp_path / "run", data, max_steps=6, **kw), resume=True, progress=False).train()
    assert [(r["step"], r["n_samples"]) for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == \
        [(2, 1), (4, 1), (6, 1)]


def test_a_finished_run_resumed_is_not_evaluated_again(tmp_path, data):
    kw = dict(max_steps=3, eval_every=2, eval_num=2, eval_samples=2, sample_every=100)
    Trainer(tiny_cfg(tmp_path / "run", data, **kw), progress=False).train()
    log = (tmp_path / "run" / "eval_log.jsonl").read_text()
    assert [r["step"] for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == [2, 3]
    Trainer(tiny_cfg(tmp_path / "run", data, **kw), resume=True, progress=False).train()
    assert (tmp_path / "run" / "eval_log.jsonl").read_text() == log


def _signalled_at(t, step):
    """t's training step `step` sends SIGTERM to this process in its middle (a preemption)."""
    real = t.model.train_step

    def train_step(batch):
        if t.step + 1 == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(batch)
    t.model.train_step = train_step


def test_a_stop_during_the_owed_evaluation_at_a_resume_trains_no_step(tmp_path, data, monkeypatch):
    # The resumed run's first act is the owed evaluation; a SIGTERM during it gave that up and then
    # trained one step before stopping, so the evaluation owed for step 4 was made at step 5's weights.
    kw = dict(max_steps=6, eval_every=2, eval_num=3, eval_samples=2, sample_every=100, save_every=100)
    t = Trainer(tiny_cfg(tmp_path / "run", data, **kw), progress=False)
    _signalled_at(t, 4)
    with pytest.raises(TrainingStopped, match="SIGTERM at step 4"):
        t.train()
    run = tmp_path / "run"
    real_columns = ev_module.sample_columns

    def sample_columns(*a, **k):  # the owed evaluation's first batch brings the signal
        os.kill(os.getpid(), signal.SIGTERM)
        return real_columns(*a, **k)
    monkeypatch.setattr(ev_module, "sample_columns", sample_columns)
    t = Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)
    t.evaluation.batch_size = 1  # 3 batches: given up after the first
    with pytest.raises(TrainingStopped, match="SIGTERM at step 4"):
        t.train()
    ckpt = read_checkpoint(run / "checkpoints" / "latest.pt")
    assert (ckpt["step"], ckpt["eval_owed"]) == (4, 4)
    assert max(r["step"] for r in read_lines(run / "log.jsonl")) == 4
    monkeypatch.undo()
    Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False).train()
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2, 4, 6]


def test_a_stop_skipping_the_last_steps_evaluation_is_owed_where_that_step_was_saved_before_it(tmp_path, data):
    # The run's last step (5) is off eval_every's grid, so its evaluation comes after the loop, where save_every's
    # checkpoint of that step was written already: "skipped: the resumed run makes it first" was said, and the
    # checkpoint, not written again, owed nothing: the resumed run never made it.
    kw = dict(max_steps=5, eval_every=2, eval_num=3, eval_samples=2, sample_every=100, save_every=5)
    t = Trainer(tiny_cfg(tmp_path / "run", data, **kw), progress=False)
    _signalled_at(t, 5)
    with pytest.raises(TrainingStopped, match="SIGTERM at step 5"):
        t.train()
    run = tmp_path / "run"
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2, 4]
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["eval_owed"] == 5
    Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False).train()
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2, 4, 5]


@pytest.mark.parametrize("during", [False, True])
def test_a_stop_skips_the_evaluation_and_the_resumed_run_makes_it_first(tmp_path, data, monkeypatch, during):
    # A preempted job has seconds: the evaluation of the step the signal came in (during=False), or the one
    # running when it came (during=True: given up at its next batch), is skipped, latest.pt says so, and
    # the resumed run evaluates that step before its first iteration, so eval_log.jsonl has every step.
    kw = dict(max_steps=6, eval_every=2, eval_num=3, eval_samples=2, sample_every=100, save_every=100)
    t = Trainer(tiny_cfg(tmp_path / "run", data, **kw), progress=False)
    batches, loaders = [], []
    real_loader = Evaluation._loader
    monkeypatch.setattr(Evaluation, "_loader", lambda self, **kw: loaders.append(t.step) or real_loader(self, **kw))
    if during:
        real_columns = ev_module.sample_columns

        def sample_columns(model, A, *a, **k):  # the first batch of step 4's evaluation brings the signal
            batches.append(t.step)
            if t.step == 4 and batches.count(4) == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            return real_columns(model, A, *a, **k)
        monkeypatch.setattr(ev_module, "sample_columns", sample_columns)
        t.evaluation.batch_size = 1  # 3 batches an evaluation
    else:
        _signalled_at(t, 4)
    with pytest.raises(TrainingStopped, match="SIGTERM at step 4"):
        t.train()
    run = tmp_path / "run"
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2]
    assert batches == ([2, 2, 2, 4] if during else [])  # step 4's evaluation stopped after its first batch
    assert loaders == ([2, 4] if during else [2])  # a stop received before: not even its loader is made
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["eval_owed"] == 4
    monkeypatch.undo()
    t = Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)
    t.train()
    lines = read_lines(run / "eval_log.jsonl")
    assert [r["step"] for r in lines] == [2, 4, 6]
    assert "eval_owed" not in read_checkpoint(run / "checkpoints" / "latest.pt")
    Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False).train()  # finished: nothing owed, nothing new
    assert read_lines(run / "eval_log.jsonl") == lines


def test_an_owed_evaluation_made_by_a_resume_killed_before_its_next_save_is_not_made_twice(tmp_path, data):
    kw = dict(max_steps=6, eval_every=2, eval_num=3, eval_samples=2, sample_every=100, save_every=100)
    run, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints" / "latest.pt"
    t = Trainer(tiny_cfg(run, data, **kw), progress=False)
    _signalled_at(t, 4)
    with pytest.raises(TrainingStopped, match="SIGTERM at step 4"):
        t.train()
    shutil.copy(ckpt, tmp_path / "at4.pt")  # owes step 4's evaluation
    Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False).train()
    once = read_lines(run / "eval_log.jsonl")
    shutil.copy(tmp_path / "at4.pt", ckpt)  # as if that resume was killed before saving again
    Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False).train()
    assert [r["step"] for r in read_lines(run / "eval_log.jsonl")] == [2, 4, 6]
    assert read_lines(run / "eval_log.jsonl") == once


def test_a_stop_at_the_last_step_skips_the_end_evaluation_and_the_finished_run_resumed_makes_it(tmp_path, data):
    kw = dict(max_steps=5, eval_every=2, eval_num=3, eval_samples=2, sample_every=100, save_every=100)
    t = Trainer(tiny_cfg(tmp_path / "run", data, **kw), progress=False)
    _signalled_at(t, 5)
    with pytest.raises(TrainingStopped, match="SIGTERM at step 5"):
        t.train()
    assert [r["step"] for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == [2, 4]
    Trainer(tiny_cfg(tmp_path / "run", data, **kw), resume=True, progress=False).train()
    assert [r["step"] for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == [2, 4, 5]


def test_a_stop_the_ranks_agreed_on_skips_rank_0s_evaluation(tmp_path, data):
    # Under torchrun another rank may have received the signal alone: the stop mean_over_ranks agreed on
    # (validate's stop) skips rank 0's evaluation as its own signal would.
    t = Trainer(tiny_cfg(tmp_path / "run", data, eval_every=2, eval_num=2, eval_samples=2), progress=False)
    t.validate(stop=signal.SIGTERM)
    assert not (tmp_path / "run" / "eval_log.jsonl").exists() and t.eval_owed == 0
    t.validate()
    assert [r["step"] for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == [0] and t.eval_owed is None


def test_an_evaluation_gives_up_before_the_batch_after_a_stop(tmp_path, data, monkeypatch):
    t = Trainer(tiny_cfg(tmp_path / "run", data), progress=False)
    ev = Evaluation(t.model, data, phase="val", num=5, batch_size=2, metrics="l1")  # 3 batches: 2, 2, 1
    asked, seen = [], []
    real_columns = ev_module.sample_columns
    monkeypatch.setattr(ev_module, "sample_columns", lambda model, A, *a, **k: seen.append(len(A)) or
                        real_columns(model, A, *a, **k))
    assert ev.run(2, stop=lambda: asked.append(len(seen)) or len(seen) == 2) is None
    assert asked == [0, 1, 2] and seen == [2, 2]
    assert ev.run(2, stop=lambda: False)["n_inputs"] == 5


def test_evaluation_options_are_checked_at_construction():
    from tiny import TINY

    from bicyclegan.engine import make_config
    for kw, message in [
        (dict(keep_best="diversity_l1", eval_every=5), "keep_best='diversity_l1' is not valid; choose one of fid, "
                                                       "encoded_l1, coverage"),
        (dict(keep_best="fid"), "keep_best=fid keeps the checkpoint of the best evaluation during training, and "
                                "eval_every=0 makes none"),
        (dict(keep_best="fid", eval_every=5), "keep_best=fid is measured by the metric fid, which eval_metrics=none "
                                              r"\(l1; with palette on the demo data\) leaves out; add it "
                                              r"\(--eval_metrics l1,fid\)"),
        (dict(keep_best="fid", eval_every=5, eval_metrics="lpips"), r"add it \(--eval_metrics lpips,fid\)"),
        (dict(keep_best="encoded_l1", eval_every=5, variant="pix2pix", nz=0), "variant=pix2pix has no encoder"),
        (dict(eval_metrics="l1,ssim"), "eval_metrics='l1,ssim': expected a comma-separated list of l1, palette, "
                                       "lpips, fid"),
        (dict(eval_metrics="fid", eval_num=1), "eval_num=1: FID compares two sets of images"),
        (dict(eval_every=-1), "eval_every=-1 must be an integer >= 0"),
        (dict(eval_samples=0), "eval_samples=0 must be a positive integer"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_config("reference", **TINY, **kw)
    cfg = make_config("reference", **TINY, eval_every=5, eval_metrics=" fid, l1,fid", keep_best="fid")
    assert cfg.eval_metrics == "fid,l1"  # as config.json keeps it
    assert make_config("reference", **TINY, eval_every=5, keep_best="encoded_l1").keep_best == "encoded_l1"


def test_what_the_data_cannot_measure_is_refused_before_the_first_step(tmp_path, data, monkeypatch):
    plain = make_demo_dataset(tmp_path / "plain", n_train=16, n_test=0, n_val=2, size=32)
    (plain / "val" / "palettes.json").unlink()  # any dataset: no palettes
    with pytest.raises(ConfigError, match=r"keep_best=coverage is measured by the metric palette, and this run's "
                                          r"evaluations measure l1 .*palette needs the demo data"):
        Trainer(tiny_cfg(tmp_path / "a", plain, eval_every=2, keep_best="coverage"), progress=False)
    with pytest.raises(ConfigError, match=r"^the evaluations during training \(--eval_every 2\): metrics=palette "
                                          r"needs the demo data"):
        Trainer(tiny_cfg(tmp_path / "b", plain, eval_every=2, eval_metrics="palette"), progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # a refused start leaves no folder
    # the demo data's split make-demo was killed writing (its palettes.json removed, its marker there): said as that,
    # not as data without palettes
    (plain / "val" / ".demo-writing").touch()
    with pytest.raises(DatasetError, match=r"val holds \.demo-writing: make-demo was interrupted writing it"):
        Evaluation(BicycleGAN(tiny_cfg(tmp_path / "c", plain)), plain, phase="val", metrics="palette", device="cpu")
    (plain / "val" / ".demo-writing").unlink()
    # Evaluations that measure nothing (eval_log.jsonl's rows all null): no diversity from one output per input,
    # no encoded L1 without E; --dry-run's checks say it too. Either measure alone is enough.
    nothing = r"^eval_every=2: the evaluations would measure nothing \(l1\): no diversity where "
    for kw, why in ((dict(variant="pix2pix", nz=0), r"a model without z \(nz 0\) has one output per input; and no "
                                                    "encoded L1 without an encoder E; add fid"),
                    (dict(variant="pix2pix", eval_samples=1), "eval_samples=1 draws one output per input; and no "
                                                              "encoded L1 without an encoder E; --eval_samples 2 or "
                                                              r"more, add fid \(--eval_metrics l1,fid\)")):
        with pytest.raises(ConfigError, match=nothing + why):
            Trainer(tiny_cfg(tmp_path / "c", plain, eval_every=2, **kw), progress=False)
        with pytest.raises(ConfigError, match=nothing + why):
            check_start(tiny_cfg(tmp_path / "c", plain, eval_every=2, **kw))
    for kw in (dict(variant="bicycle", eval_samples=1), dict(variant="pix2pix", eval_samples=2)):
        check_start(tiny_cfg(tmp_path / "c", plain, eval_every=2, **kw))  # encoded L1, or diversity


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_missing_metric_weights_are_refused_before_the_first_step(tmp_path, data, empty_hub, monkeypatch, capsys):
    steps = []
    monkeypatch.setattr(Trainer, "_train", lambda self: steps.append(self.step))
    with pytest.raises(WeightsError, match=rf"^the evaluations during training \(--eval_every 2\): FID needs "
                                           rf"InceptionV3's weights: {empty_hub}/pt_inception-.* does not exist; .* "
                                           rf"--fid_weights PATH"):
        Trainer(tiny_cfg(tmp_path / "r", data, eval_every=2, eval_metrics="fid"), progress=False)
    args = ["train", "--dataroot", str(data), "--out", str(tmp_path / "r"), "--crop_size", "32", "--load_size", "32",
            "--netG", "unet", "--ngf", "4", "--nef", "4", "--ndf", "4", "--netD", "basic_128_multi", "--netD2",
            "basic_128_multi", "--netE", "resnet_128", "--batch_size", "4", "--num_workers", "0",
            "--eval_every", "2", "--eval_metrics", "l1,lpips"]
    assert main(args) == 2 and steps == []
    err = capsys.readouterr().err
    assert err.startswith("bicyclegan train: WeightsError: the evaluations during training") and err.count("\n") == 1
    assert "alexnet-owt-7be5be79.pth does not exist" in err
    # train's --lpips_backbone, --lpips_linear, --fid_weights, as evaluate's: the file named is the one read
    missing = tmp_path / "mine" / "alexnet.pth"
    assert main([*args, "--lpips_backbone", str(missing)]) == 2 and steps == []
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err and err.count("\n") == 1


def test_metric_weights_options_reach_the_evaluation_and_may_change_on_resume(tmp_path, data, monkeypatch):
    seen = []
    net = Features()
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": seen.append(path) or net)
    kw = dict(eval_every=2, eval_metrics="l1,fid", eval_num=4, eval_samples=2, sample_every=100, save_every=2)
    Trainer(tiny_cfg(tmp_path / "r", data, max_steps=2, fid_weights="/weights/a.pth", **kw), progress=False).train()
    assert seen == ["/weights/a.pth"]
    # the same weights moved elsewhere: the run resumes (the figures compare, the protocol is the same)
    Trainer(tiny_cfg(tmp_path / "r", data, max_steps=4, fid_weights="/moved/a.pth", **kw), resume=True,
            progress=False).train()
    assert seen == ["/weights/a.pth", "/moved/a.pth"]
    assert [r["step"] for r in read_lines(tmp_path / "r" / "eval_log.jsonl")] == [2, 4]


def test_a_full_disk_under_the_evaluation_log_is_one_line_naming_it(tmp_path, data):
    # Step 4 evaluates, then saves: the evaluation comes first, so a run stopped by it resumes from before
    # it (step 2) and evaluates step 4 again, where a checkpoint of step 4 would have skipped it for good.
    t = Trainer(tiny_cfg(tmp_path / "run", data, max_steps=6, eval_every=4, eval_samples=2, save_every=2,
                         sample_every=100), progress=False)
    os.symlink("/dev/full", tmp_path / "run" / "eval_log.jsonl")  # every write: ENOSPC
    with pytest.raises(OutputError, match=r"cannot write the evaluation log .*eval_log.jsonl at step 4: No space "
                                          r"left on device.*last good checkpoint is .*latest.pt \(step 2\)"):
        t.train()


def test_a_held_out_file_broken_mid_run_stops_the_evaluation_of_its_step_and_says_so(tmp_path):
    # It said "training stopped at step 5 (epoch 1) on its data": the training data blamed, and a step never
    # begun. The evaluation of step 4 comes before step 4's checkpoint, which is written then, the evaluation
    # owed (the steps since step 2's checkpoint were lost), and the resumed run makes it first.
    root = make_demo_dataset(tmp_path / "data", n_train=16, n_test=0, n_val=4, size=32, seed=0)
    kw = dict(max_steps=6, eval_every=2, eval_num=3, eval_samples=2, save_every=2, sample_every=100)
    t = Trainer(tiny_cfg(tmp_path / "run", root, **kw), progress=False)
    broken = root / "val" / "00001.png"
    break_at_step(t, 2, broken)  # after step 2's evaluation and checkpoint
    with pytest.raises(DatasetError) as info:
        t.train()
    text = str(info.value)
    assert text.startswith(f"the evaluation at step 4 (--eval_every 2) stopped on the held-out split {root / 'val'} "
                           f"(the training data was not the problem): 1 bad file(s) in {root / 'val'}:\n  {broken}: ")
    assert text.endswith(f"\nthe last good checkpoint is {tmp_path / 'run' / 'checkpoints' / 'latest.pt'} (step 4): "
                         f"resume it with --resume (with --skip_bad to leave such files out of the evaluations too)")
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["eval_owed"] == 4
    # Which it does: the evaluations read the split with the run's skip_bad (the next file in its place).
    Trainer(tiny_cfg(tmp_path / "run", root, skip_bad=True, **kw), resume=True, progress=False).train()
    lines = read_lines(tmp_path / "run" / "eval_log.jsonl")
    assert [(r["step"], r["split"], r["n_inputs"]) for r in lines] == [(2, "val", 3), (4, "val", 3), (6, "val", 3)]


@pytest.mark.parametrize("options", [dict(eval_every=2, keep_best="encoded_l1"), dict(eval_every=2), {}],
                         ids=["keep_best", "eval_every", "neither"])
def test_a_run_evaluating_the_training_split_says_so_at_its_start(tmp_path, data, capsys, options):
    # Without val/ or test/ the evaluations (and best.pt with --keep_best) measured the training data without a word.
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=0, size=32, seed=0)
    kw = dict(max_steps=2, eval_num=2, eval_samples=2, sample_every=100, **options)
    Trainer(tiny_cfg(tmp_path / "run", root, **kw), progress=False).train()
    notes = [line for line in capsys.readouterr().err.splitlines() if "training split" in line]
    if not options:  # (no evaluation: the grids alone, as the dry run says)
        assert notes == []
        return
    best = " (by which --keep_best encoded_l1 picks best.pt)" if "keep_best" in options else ""
    assert notes == [f"the sample grids and the evaluations{best} use the training split: {root} has no val/ or test/ "
                     f"folder; a val/ folder beside train/, of the same layout, gives them held-out images"]
    Trainer(tiny_cfg(tmp_path / "held-out", data, **kw), progress=False).train()  # (val/ there: nothing said)
    assert "training split" not in capsys.readouterr().err


def test_a_training_file_broken_mid_run_in_an_evaluation_of_the_training_split_is_not_called_held_out(tmp_path):
    root = make_demo_dataset(tmp_path / "data", n_train=16, n_test=0, size=32, seed=0)  # no val/, no test/
    t = Trainer(tiny_cfg(tmp_path / "run", root, max_steps=4, eval_every=2, eval_num=3, eval_samples=2,
                         sample_every=100), progress=False)
    broken = root / "train" / "00001.png"
    break_at_step(t, 1, broken)  # step 2's batch read already: the evaluation of step 2 meets it first
    with pytest.raises(DatasetError) as info:
        t.train()
    assert str(info.value).startswith(
        f"the evaluation at step 2 (--eval_every 2) stopped on {root / 'train'}, the training data, which it evaluates "
        f"for want of a val/ or test/ split: 1 bad file(s) in {root / 'train'}:\n  {broken}: ")
    assert str(info.value).endswith(f"\nthe last good checkpoint is {tmp_path / 'run' / 'checkpoints' / 'latest.pt'} "
                                    f"(step 2): resume it with --resume (with --skip_bad to leave such files out of "
                                    f"the evaluations too)")  # (step 2 trained on a batch read before the break)


def test_a_held_out_split_deleted_mid_run_is_said_as_such_and_its_step_kept(tmp_path):
    # "missing folder .../val: ... holds the splits train; choose one (--phase)": train has no --phase, and the
    # steps since the last checkpoint were lost with it.
    import shutil
    root = make_demo_dataset(tmp_path / "data", n_train=16, n_test=0, n_val=4, size=32, seed=0)
    kw = dict(max_steps=6, eval_every=4, eval_num=3, eval_samples=2, save_every=2, sample_every=100)
    t = Trainer(tiny_cfg(tmp_path / "run", root, **kw), progress=False)
    real = t.model.train_step

    def train_step(batch):
        if t.step == 3:
            shutil.move(root / "val", tmp_path / "val_away")
        return real(batch)
    t.model.train_step = train_step
    with pytest.raises(DatasetError) as info:
        t.train()
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert str(info.value) == (f"the evaluation at step 4 (--eval_every 4) found no {root / 'val'}: the held-out split "
                               f"was moved or deleted during the run; put it back and resume it with --resume (the "
                               f"evaluation is made first)")
    assert read_checkpoint(ckpt)["step"] == 4 and read_checkpoint(ckpt)["eval_owed"] == 4
    shutil.move(tmp_path / "val_away", root / "val")
    Trainer(tiny_cfg(tmp_path / "run", root, **kw), resume=True, progress=False).train()
    assert [r["step"] for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == [4, 6]


def test_the_held_out_files_skip_bad_leaves_out_are_said_once_a_run_unless_they_change(tmp_path, caplog):
    # Every loader made for the split said the list again: the grids', the evaluation's at the start and
    # one at every evaluation (5 times in this run of 3 evaluations).
    import logging
    root = make_demo_dataset(tmp_path / "data", n_train=16, n_test=0, n_val=4, size=32, seed=0)
    (root / "val" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        t = Trainer(tiny_cfg(tmp_path / "run", root, max_steps=6, eval_every=2, eval_num=3, eval_samples=2,
                             skip_bad=True, sample_every=100), progress=False)
        break_at_step(t, 2, root / "val" / "00002.png")  # after step 2's evaluation: the list changes once
        t.train()
    said = [r.getMessage().splitlines() for r in caplog.records if f"bad file(s) in {root / 'val'}" in r.getMessage()]
    assert [(lines[0], [ln.split(":")[0].strip() for ln in lines[1:]]) for lines in said] == [
        (f"skipped 1 bad file(s) in {root / 'val'}:", [str(root / "val" / "00001.png")]),
        (f"skipped 2 bad file(s) in {root / 'val'}:", [str(root / "val" / f"0000{i}.png") for i in (1, 2)])]
    assert [r["n_inputs"] for r in read_lines(tmp_path / "run" / "eval_log.jsonl")] == [3, 2, 2]


def test_the_report_charts_each_measure_and_rings_the_best(tmp_path, data, monkeypatch):
    values = {2: {"coverage": 0.25, "fid": 80.0}, 4: {"coverage": 0.75, "fid": 60.0}, 5: {"coverage": 0.5, "fid": 70.0}}
    monkeypatch.setattr(ev_module, "load_inception", lambda path=None, device="cpu": Features())
    cfg = tiny_cfg(tmp_path / "run", data, max_steps=5, eval_every=2, keep_best="coverage", sample_every=100,
                   eval_metrics="palette,fid")
    run = _train(cfg, values, monkeypatch).run_dir
    page = (run / "report.html").read_text()
    section = page[page.index("<h2>Validation</h2>"):page.index("<h2>Sample grids</h2>")]
    assert ("3 evaluations, every 2 iterations, of val/: the first 5 inputs x 10 random z (seed 0), the same at "
            "each (eval_log.jsonl). Ringed: the best palette coverage, 0.75 at step 4, kept as checkpoints/best.pt."
            ) in section
    charts = {ET.fromstring(svg).find("{http://www.w3.org/2000/svg}text").text.strip(): ET.fromstring(svg)
              for svg in re.findall(r"<svg.*?</svg>", section)}
    assert set(charts) == {"palette coverage", "FID (generated vs real B)"}  # the measures, not n_inputs or seed
    svg = "{http://www.w3.org/2000/svg}"
    for title, key in (("palette coverage", "coverage"), ("FID (generated vs real B)", "fid")):
        root = charts[title]
        latest = root.find(f"{svg}text/{svg}tspan").text
        assert latest == f"{values[5][key]:.3g}"
        points = [tuple(map(float, p.split(","))) for p in root.find(f"{svg}polyline").get("points").split()]
        assert len(points) == 3
        rings = root.findall(f"{svg}circle")
        if key == "coverage":  # ringed where the curve has step 4's point
            (ring,) = rings
            assert (float(ring.get("cx")), float(ring.get("cy"))) == points[1]
            assert ring.find(f"{svg}title").text == "checkpoints/best.pt: 0.75 at step 4"
        else:
            assert rings == []


def test_tensorboard_gets_each_evaluations_measures_at_its_step(tmp_path, data, monkeypatch):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    values = {2: {"coverage": 0.25, "validity": 0.5}, 3: {"coverage": 0.75, "validity": 1.0}}
    box = {}
    _scripted(monkeypatch, lambda: (box["t"], values))
    box["t"] = t = Trainer(tiny_cfg(tmp_path / "run", data, max_steps=3, eval_every=2), progress=False,
                           tensorboard=True)
    t.train()
    ea = ea_mod.EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0})
    ea.Reload()
    assert {tag for tag in ea.Tags()["scalars"] if tag.startswith("eval/")} == {"eval/coverage", "eval/validity"}
    for k in ("coverage", "validity"):
        assert [(e.step, e.value) for e in ea.Scalars(f"eval/{k}")] == [(s, values[s][k]) for s in (2, 3)]


def test_a_run_without_evaluations_has_no_validation_section(tmp_path, data):
    run = Trainer(tiny_cfg(tmp_path / "run", data, max_steps=2), progress=False).train()
    assert "Validation" not in (run / "report.html").read_text() and not (run / "eval_log.jsonl").exists()


def test_inference_commands_take_the_best_checkpoint_with_epoch_best(tmp_path, data, monkeypatch, capsys):
    run = tmp_path / "run"
    values = {2: {"coverage": 0.6}, 4: {"coverage": 0.1}}
    _train(tiny_cfg(run, data, max_steps=4, eval_every=2, keep_best="coverage", sample_every=100), values, monkeypatch)
    monkeypatch.undo()
    assert main(["evaluate", str(run), "--epoch", "best", "--num", "2", "--n_samples", "2", "--device", "cpu"]) == 0
    r = json.loads((run / "results" / "val_best" / "eval.json").read_text())
    assert r["checkpoint"] == str((run / "checkpoints" / "best.pt").resolve())
    assert main(["sample", str(run), "--epoch", "best", "--num", "1", "--n_samples", "1", "--device", "cpu"]) == 0
    assert (run / "results" / "val_best" / "grid.png").is_file()
    capsys.readouterr()
    other = tmp_path / "other"
    shutil.copytree(run, other)
    (other / "checkpoints" / "best.pt").unlink()
    assert main(["evaluate", str(other), "--epoch", "best", "--device", "cpu"]) == 2
    assert "no best.pt in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", str(run), "--epoch", "bets"])
    assert "expects an epoch (an integer >= 1) or best, got 'bets'" in capsys.readouterr().err


def test_the_cli_trains_with_evaluations(tmp_path, data, capsys):
    args = ["train", "--dataroot", str(data), "--out", str(tmp_path / "r"), "--crop_size", "32", "--load_size", "32",
            "--netG", "unet", "--ngf", "4", "--nef", "4", "--ndf", "4", "--netD", "basic_128_multi", "--netD2",
            "basic_128_multi", "--netE", "resnet_128", "--batch_size", "4", "--num_workers", "0", "--max_steps", "2",
            "--no-progress", "--eval_every", "1", "--eval_num", "2", "--eval_samples", "2", "--keep_best", "coverage",
            "--impl", "ref"]
    assert main(args) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("evaluation at step")]
    assert len(lines) == 2 and lines[0].startswith("evaluation at step 1 (val/, 2 inputs x 2 z): diversity_l1 ")
    assert "coverage" in lines[0] and lines[0].endswith("; best coverage so far: checkpoints/best.pt")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert {k: config[k] for k in ("eval_every", "eval_metrics", "eval_num", "eval_samples", "keep_best")} == {
        "eval_every": 1, "eval_metrics": None, "eval_num": 2, "eval_samples": 2, "keep_best": "coverage"}


# -- two ranks -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_under_torchrun_each_evaluation_is_made_once_and_both_ranks_finish(tmp_path):
    from test_distributed import _torchrun
    tiny = ["--crop_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--batch_size", "4", "--log_every", "2",
            "--sample_every", "100", "--save_every", "100"]
    out = _torchrun(tmp_path, *tiny, "--max_steps", "5", "--eval_every", "2", "--eval_num", "4", "--eval_samples", "2",
                    "--keep_best", "coverage")
    run = tmp_path / "runs" / "r"
    lines = read_lines(run / "eval_log.jsonl")
    assert [r["step"] for r in lines] == [2, 4, 5]  # once per evaluation, not once per rank
    assert out.count("evaluation at step") == 3 and out.count("run folder:") == 1
    best = read_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best"]["step"] == best["step"] and best["world"] == 2 and len(best["rank_rng"]) == 1
    assert [r["step"] for r in lines if r.get("best")][-1] == best["step"]
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 5
    # The ranks measured 2 inputs each: the line is what one process measures of the step's weights.
    want = evaluate(run / "checkpoints" / "latest.pt", num=4, n_samples=2, seed=0, device="cpu")
    assert want.pop("variant") == "bicycle" and want.pop("dataroot") and want.pop("phase") == lines[-1]["split"]
    assert {k: v for k, v in lines[-1].items() if k not in ("step", "epoch", "split", "best")} == {
        k: pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for k, v in want.items()}


def _rank(rank, world, port, out_dir, args, hub):
    os.environ["TORCH_HOME"] = hub
    from test_distributed import _cli_rank
    _cli_rank(rank, world, port, out_dir, args)


def _case(rank, world, port, out_dir, worker, *args):
    """worker(rank, world, port, out_dir, *args), then the module attributes the workers set (the evaluation's
    functions, the loader's load_rgb) as they were: a case of the `ranks` fixture, in a process of several."""
    from bicyclegan.pipelines import cpu_loader
    functions, load_rgb = dict(vars(ev_module)), cpu_loader.load_rgb
    try:
        worker(rank, world, port, out_dir, *args)
    finally:
        vars(ev_module).update(functions)
        cpu_loader.load_rgb = load_rgb


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, data):
    """The folder of this file's two-process cases, run in turn by one pair of spawned processes (test_distributed's
    _in_turn), each in <name>/: the processes' start-up (torch imported in each) took most of a case's time in a
    pair of its own. "broken" has its own data (a file of it broken on the way), its inputs read before, in
    broken/inputs.pt; "weights" last (its TORCH_HOME, with no weights, goes with it)."""
    from test_distributed import _free_ports, _in_turn, spawn_ranks
    where = tmp_path_factory.mktemp("ranks")
    broken = make_demo_dataset(where / "broken" / "data", n_train=2, n_test=0, n_val=5, size=32, seed=0)
    torch.save(_inputs_of(sorted((broken / "val").glob("*.png"))), where / "broken" / "inputs.pt")
    weights = ["train", "--out", str(where / "weights" / "r"), "--device", "cpu", "--no-progress", "--crop_size",
               "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--batch_size", "4", "--max_steps", "2",
               "--eval_every", "1", "--eval_metrics", "fid"]
    cases = [("shares", _case, _share_rank, str(data)), ("stop", _case, _stop_rank, str(data)),
             ("error", _case, _error_rank, str(data)), ("broken", _case, _broken_share_rank, str(broken)),
             ("weights", _case, _rank, weights, str(where / "torch"))]
    spawn_ranks(_in_turn, (2, _free_ports(len(cases)), str(where), cases))
    return where


@pytest.mark.slow
def test_under_torchrun_missing_metric_weights_stop_every_rank_before_the_first_step(ranks):
    out = ranks / "weights" / "r"
    r0, r1 = (json.loads((ranks / "weights" / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["rc"] == 2 and r0["stderr"].startswith("bicyclegan train: WeightsError: the evaluations during training")
    assert r0["stderr"].count("\n") == 1 and r1 == {"rc": 2, "stderr": ""}
    assert not (out / "log.jsonl").exists() and not (out / "checkpoints").exists()



def _stand_ins(setattr):
    """The metric networks' stand-ins, from fixed seeds (their weights files are not here), set with
    `setattr` (the test's monkeypatch's: the module's own functions come back after it)."""
    from bicyclegan.engine.metrics.lpips import LPIPS
    torch.manual_seed(1)
    lp = LPIPS("0.0")
    setattr(ev_module, "load_lpips", lambda *a, **k: lp)
    setattr(ev_module, "load_inception", lambda *a, **k: Features())


def _share_evaluation(root, dist_info, num, skip_bad, metrics="l1,palette,lpips,fid"):
    """The evaluation the ranks and the single process make alike: the tiny model from seed 0."""
    from bicyclegan.engine import BicycleGAN
    torch.manual_seed(0)
    model = BicycleGAN(tiny_cfg(root / "unused", root))
    return Evaluation(model, root, phase="val", num=num, device="cpu", batch_size=2, skip_bad=skip_bad,
                      metrics=metrics, dist=dist_info)


# 5 inputs as 2 + 3 (batches of 2: a share that starts inside a batch); with skip_bad every file of the
# split read, 3 of them measured (1 + 2); 1 input: rank 0 has none (it made no loader: an empty share
# was refused)
CASES = (("uneven", 5, False, "l1,palette,lpips,fid"), ("skip_bad", 3, True, "l1,palette,lpips,fid"),
         ("one", 1, False, "l1,palette,lpips"))  # (FID needs two inputs)


def _share_rank(rank, world, port, out_dir, root):
    """One rank of test_two_ranks_measure_shares_...: each case's result or error, and the inputs this
    rank generated for (their file names), into out_dir/<rank>.pt."""
    import torch.distributed as dist

    from bicyclegan.engine.runtime import Dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    me, root, out = Dist(rank, world), Path(root), {}
    _stand_ins(setattr)  # (a process of its own)
    generated = []
    real_columns = ev_module.sample_columns

    def sample_columns(model, A, *a, **k):
        generated.append(A.shape[0])
        return real_columns(model, A, *a, **k)
    ev_module.sample_columns = sample_columns
    for case, num, skip_bad, metrics in CASES:
        generated.clear()
        out[case] = (_share_evaluation(root, me, num, skip_bad, metrics).run(3, seed=7), sum(generated))
    ev = _share_evaluation(root, me, 5, False)
    # a stop signal that rank 1 alone received, before its first batch (before the loaders, whose checks
    # are a collective) or its second: every rank gives up
    for when in (1, 2):
        asked = []
        out[f"stop{when}"] = ev.run(3, seed=7, stop=lambda: asked.append(1) or (rank == 1 and len(asked) >= when))
    # an error on rank 1 alone (a file changed since the checks): every rank raises it, no rank waits
    ev_module.sample_columns = real_columns if rank == 0 else _raising
    out["error"] = _error_of(lambda: ev.run(3, seed=7))
    # an error in rank 0's combining of the shares: the other rank, waiting for the result, raises it too
    ev_module.sample_columns = real_columns
    ev_module.fid_from_features = _raising
    out["combine_error"] = _error_of(lambda: ev.run(3, seed=7))
    torch.save(out, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def _error_of(call):
    try:
        call()
    except Exception as e:
        return type(e).__name__, str(e), getattr(e, "from_rank0", False)


def _raising(*a, **k):
    from bicyclegan.pipelines import DatasetError
    raise DatasetError("x.png changed since the checks")


@pytest.mark.slow
def test_two_ranks_measure_shares_of_the_inputs_and_give_one_process_figures(ranks, data, monkeypatch):
    # Every rank generates for its own contiguous share of the inputs (CASES), with their own z, and the
    # figures are those of one process measuring them all.
    r0, r1 = (torch.load(ranks / "shares" / f"{r}.pt", weights_only=False) for r in (0, 1))
    _stand_ins(monkeypatch.setattr)
    for case, num, skip_bad, metrics in CASES:
        want = _share_evaluation(data, Dist(), num, skip_bad, metrics).run(3, seed=7)
        (got0, n0), (got1, n1) = r0[case], r1[case]
        assert (n0, n1) == (num // 2, num - num // 2), case  # each generated for its share alone
        assert got0 == got1  # every rank returns the result
        assert want["n_inputs"] == got0["n_inputs"] == num and want["histogram"] == got0["histogram"]
        assert ("fid" in got0) == ("fid" in metrics)
        assert got0.keys() == want.keys() and got0["lpips"].keys() == want["lpips"].keys()
        for part, ours in ((got0, want), (got0["lpips"], want["lpips"])):
            for k, v in ours.items():  # sums in another order: equal to rounding
                assert part[k] == (pytest.approx(v, rel=1e-6) if isinstance(v, float) else v), (case, k)
    assert r0["stop1"] is r0["stop2"] is r1["stop1"] is r1["stop2"] is None
    assert r1["error"] == ("DatasetError", "x.png changed since the checks", False)  # printed by rank 1
    assert r0["error"] == ("DatasetError", "x.png changed since the checks", True)  # not again by rank 0
    assert r0["combine_error"] == ("DatasetError", "x.png changed since the checks", False)
    assert r1["combine_error"] == ("DatasetError", "x.png changed since the checks", True)


def _stop_rank(rank, world, port, out_dir, root):
    """One rank of test_under_torchrun_a_stop_...: rank 1 alone receives SIGTERM during step 2's
    evaluation, then again during the owed one a resume makes first; then a plain resume."""
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)  # the Trainers' group (each one's own run)
    # 2 steps an epoch on each rank (16 pairs, batches of 4), a log line at every step
    cfg = tiny_cfg(Path(out_dir) / "run", root, max_steps=4, eval_every=2, eval_num=4, eval_samples=2,
                   sample_every=100, save_every=100)
    real_columns, stopped = ev_module.sample_columns, []

    def sample_columns(model, A, *a, **k):  # rank 1's first batch of each evaluation brings the signal
        if rank == 1 and not stopped:
            stopped.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_columns(model, A, *a, **k)
    ev_module.sample_columns = sample_columns
    got = {}
    for case, resume in (("during", False), ("owed", True)):
        stopped.clear()
        t = Trainer(cfg, resume=resume, progress=False)
        t.evaluation.batch_size = 1  # 2 inputs a rank, an input a batch: given up before the second
        got[case] = _error_of(t.train)[1]
        if rank == 0:
            shutil.copy(Path(out_dir) / "run" / "checkpoints" / "latest.pt", Path(out_dir) / f"{case}.pt")
        dist.barrier()
    ev_module.sample_columns = real_columns
    Trainer(cfg, resume=True, progress=False).train()
    torch.save(got, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_under_torchrun_a_stop_during_an_evaluation_stops_at_its_step_as_one_process_does(ranks):
    # Rank 1 alone received the signal; the ranks agreed on it in Evaluation.run. They went on training to
    # the next log interval and saved there: step 3's checkpoint owed step 2's evaluation, which its resume
    # made at step 3's weights, logged as step 3 (and a stop during that owed evaluation trained a step).
    here = ranks / "stop"
    r0, r1 = (torch.load(here / f"{r}.pt", weights_only=False) for r in (0, 1))
    for case in ("during", "owed"):
        assert r0[case] == r1[case] and r0[case].startswith("stopped by SIGTERM at step 2 "), case
        ckpt = read_checkpoint(here / f"{case}.pt")
        assert (ckpt["step"], ckpt["eval_owed"]) == (2, 2), case  # one process's, at the signal's step
    run = here / "run"
    assert max(r["step"] for r in read_lines(run / "log.jsonl")) == 4
    lines = read_lines(run / "eval_log.jsonl")
    assert [r["step"] for r in lines] == [2, 4]
    # The line of step 2 is the evaluation of step 2's weights, as one process measures them.
    want = evaluate(here / "during.pt", num=4, n_samples=2, seed=0, device="cpu")
    assert {k: v for k, v in lines[0].items() if k not in ("step", "epoch", "split")} == {
        k: pytest.approx(v, rel=1e-6) if isinstance(v, float) else v for k, v in want.items()
        if k not in ("variant", "dataroot", "phase")}


def _error_rank(rank, world, port, out_dir, root):
    """One rank of test_under_torchrun_an_error_...: `bicyclegan train` whose step-2 evaluation fails on
    rank 1 alone, with a data error, then with a bug; each run's exit code and what it printed."""
    import contextlib
    import io

    import torch.distributed as dist

    from bicyclegan.pipelines import DatasetError
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)  # (each run's: init_distributed takes it)
    real_columns, got = ev_module.sample_columns, {}
    for case, error in (("data", DatasetError("x.png changed since the checks")), ("bug", ZeroDivisionError("a bug"))):
        def sample_columns(*a, error=error, **k):
            if rank == 1:
                raise error
            return real_columns(*a, **k)
        ev_module.sample_columns = sample_columns
        args = ["train", "--dataroot", root, "--out", os.path.join(out_dir, case), "--device", "cpu", "--no-progress",
                "--crop_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--netG", "unet", "--netD",
                "basic_128_multi", "--netD2", "basic_128_multi", "--netE", "resnet_128", "--impl", "ref",
                "--num_workers", "0", "--max_steps", "2", "--eval_every", "2", "--eval_num", "4", "--eval_samples", "2"]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                rc = main(args)
            except Exception as e:  # a bug: main() lets its traceback through
                rc = type(e).__name__
        got[case] = rc, err.getvalue()
    json.dump(got, open(os.path.join(out_dir, f"{rank}.json"), "w"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_under_torchrun_an_error_of_one_rank_in_an_evaluation_is_printed_once_by_that_rank(ranks, data):
    # Evaluation.run made rank 1's error every rank's, marked as a copy on rank 0; validate's each_decides
    # then told the ranks their errors again, and took the first rank's: rank 0's copy. Neither rank printed
    # anything (the data error's line was lost; the bug's traceback too, both ranks exiting 1 in silence).
    r0, r1 = (json.loads((ranks / "error" / f"{r}.json").read_text()) for r in (0, 1))
    (rc0, err0), (rc1, err1) = r0["data"], r1["data"]
    assert (rc0, rc1) == (2, 2) and "Error" not in err0
    assert err1.startswith("bicyclegan train: DatasetError: the evaluation at step 2 (--eval_every 2) stopped on the "
                           f"held-out split {data / 'val'} (the training data was not the problem): ")
    assert err1.count("\n") == 2
    assert "x.png changed since the checks" in err1
    assert r0["bug"] == [1, r0["bug"][1]] and "Error" not in r0["bug"][1]
    assert r1["bug"][0] == "ZeroDivisionError"  # its traceback printed by rank 1 alone


def _codes(n, n_samples, nz, seed):
    """An evaluation's codes as its docstring says them: input i's row of one draw from `seed`, each row padded to
    a multiple of 16 values (the plain n x n_samples x nz draw where n_samples x nz is one)."""
    per = n_samples * nz
    return torch.randn(n, -(-per // 16) * 16, generator=torch.Generator().manual_seed(seed))[:, :per].reshape(
        n, n_samples, nz)


def _inputs_of(files):
    """Each aligned file's A half as the loader gives it (preprocess none: its pixels in [-1, 1]), C x H x W."""
    out = []
    for f in files:
        with Image.open(f) as img:
            a = np.asarray(img.convert("RGB"), dtype=np.float32)[:, : img.width // 2]
        out.append(torch.from_numpy((a - 127.5) / 127.5).permute(2, 0, 1))
    return torch.stack(out)


def _which(A, inputs):
    """The index (in `inputs`) of each row of A: the file it was read from."""
    d = (A[:, None] - inputs[None]).abs().flatten(2).amax(2)
    assert (d.min(1).values < 1e-5).all()  # every row is one of the files
    return d.argmin(1).tolist()


def _recording(setattr):
    """A stand-in for evaluate's sample_columns recording, for each row generated, its input, codes,
    samples and encoded output."""
    rows, real = [], ev_module.sample_columns

    def sample_columns(model, A, B=None, z=None, **k):
        cols, names = real(model, A, B, z, **k)
        samples = torch.stack([c for c, n in zip(cols, names) if n.startswith("random")], 1)
        rows.extend(zip(A.cpu(), z, samples.cpu(), cols[names.index("encoded")].cpu(), B.cpu()))
        return cols, names
    setattr(ev_module, "sample_columns", sample_columns)
    return rows


def _break(path):
    """One byte of `path`'s compressed data flipped: its header a good PNG's still, its decoding fails."""
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") + 10] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("backend", ["torch", pytest.param("dali", marks=needs_dali)])
@pytest.mark.parametrize("broken", [1, 2, 4])  # the last of a batch, the first of one, the split's last
def test_a_file_broken_during_an_evaluation_with_skip_bad_is_left_out_and_each_input_measured_once(
        tmp_path, monkeypatch, caplog, backend, broken):
    # The next good sample took its place in the batch and was measured twice (there with the broken input's
    # codes, then in its own place with its own), and the broken input counted as measured.
    import logging
    root = make_demo_dataset(tmp_path / "data", n_train=2, n_test=0, n_val=5, size=32, seed=0)
    files = sorted((root / "val").glob("*.png"))
    inputs = _inputs_of(files)
    _stand_ins(monkeypatch.setattr)
    from bicyclegan.engine import BicycleGAN
    torch.manual_seed(0)
    model = BicycleGAN(tiny_cfg(tmp_path / "unused", root, backend=backend))
    ev = Evaluation(model, root, phase="val", num=5, device="cpu", batch_size=2, skip_bad=True,
                    metrics="l1,palette,lpips,fid")
    _break(files[broken])  # the loader the run reads (the Evaluation's, made with it) has checked the files
    rows = _recording(monkeypatch.setattr)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        result = ev.run(3, seed=7)
    assert ev.data.backend == backend
    assert any(str(files[broken]) in r.getMessage() for r in caplog.records)  # the loader's warning names it
    which = _which(torch.stack([r[0] for r in rows]), inputs)
    assert sorted(which) == [i for i in range(5) if i != broken]  # each good input once, the broken one never
    codes = _codes(5, 3, model.cfg.model.nz, 7)
    for i, (_, z, _, _, _) in zip(which, rows):
        assert torch.equal(z, codes[i]), i  # its own codes, whatever place it came in
    # every measure of the 4 inputs measured
    assert result["n_inputs"] == 4 and result["n_outputs"] == 4 * 3
    assert result["lpips"]["n_pairs"] == 4 * 2 and result["fid_images"] == {"generated": 4 * 3, "real": 4}
    diversity = [(s[1:] - s[:-1]).abs().mean().item() for _, _, s, _, _ in rows]
    encoded = [(e - b).abs().mean().item() for _, _, _, e, b in rows]
    assert result["diversity_l1"] == pytest.approx(sum(diversity) / 4, rel=1e-6)
    assert result["encoded_l1"] == pytest.approx(sum(encoded) / 4, rel=1e-6)


def _broken_share_rank(rank, world, port, out_dir, root):
    """One rank of test_two_ranks_measure_each_input_once_...: 5 inputs as 2 + 3, each run's result and
    rows generated (input, codes) into out_dir/<rank>.pt."""
    import torch.distributed as dist

    from bicyclegan.pipelines import cpu_loader
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    root, out = Path(root), {}
    files = sorted((root / "val").glob("*.png"))
    _stand_ins(setattr)
    rows = _recording(setattr)
    ev = _share_evaluation(root, Dist(rank, world), 5, True, "l1,lpips")
    # rank 0's last input breaks after the run's checks: its place goes to rank 1's first input
    real_read = cpu_loader.load_rgb
    cpu_loader.load_rgb = lambda path: _raising() if str(path) == str(files[1]) else real_read(path)
    out["mid_run"] = ev.run(3, seed=7), [r[:2] for r in rows]
    cpu_loader.load_rgb = real_read
    # the split's last file breaks before the run: its checks leave it out, and rank 1's loader ends
    # before its share (of the 5 inputs the evaluation was made with) does
    rows.clear()
    if rank == 0:
        _break(files[4])
    dist.barrier()
    out["checked"] = ev.run(3, seed=7), [r[:2] for r in rows]
    torch.save(out, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_measure_each_input_once_when_a_file_breaks_at_the_end_of_rank_0s_share(ranks):
    # Rank 0's last place, the broken file's, went to the next good sample, rank 1's first input: both ranks
    # measured it (rank 0 with the broken input's codes), and the broken input was counted.
    here = ranks / "broken"
    root, inputs = here / "data", torch.load(here / "inputs.pt")
    r0, r1 = (torch.load(here / f"{r}.pt", weights_only=False) for r in (0, 1))
    codes = _codes(5, 3, tiny_cfg(here, root).model.nz, 7)
    for case, mine0, mine1 in (("mid_run", [0], [2, 3, 4]), ("checked", [0, 1], [2, 3])):
        (got0, rows0), (got1, rows1) = r0[case], r1[case]
        assert got0 == got1 and got0["n_inputs"] == 4, case  # every rank returns the result, of 4 inputs
        assert got0["lpips"]["n_pairs"] == 4 * 2, case
        for rows, mine in ((rows0, mine0), (rows1, mine1)):  # each rank its own inputs, once, with their codes
            assert _which(torch.stack([A for A, _ in rows]), inputs) == mine, case
            assert all(torch.equal(z, codes[i]) for (_, z), i in zip(rows, mine)), case
