"""The training loop end to end on tiny demo data: run folder, resume, checkpoints, CLI."""
import copy
import importlib
import json
import re

import pytest
import torch
from test_model import WEIGHTS, reference_iteration
from tiny import TINY, tiny_cfg

from bicyclegan.engine import CheckpointError, DataConfig, ModelConfig, TrainConfig
from bicyclegan.engine.checkpoint import load_checkpoint, read_checkpoint
from bicyclegan.engine.cli import build_parser, main, resolve_config
from bicyclegan.engine.trainer import Trainer, _evaluations_kept, _keep_log_to, lr_factor
from bicyclegan.pipelines import make_demo_dataset


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=4, size=32, seed=0)




def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_run_folder_contents(tmp_path, demo_root):
    trainer = Trainer(tiny_cfg(tmp_path / "run", demo_root), progress=False)
    # The grid's n codes are spread over the prior: one per n-th of N(0, 1) in every coordinate.
    u, n = torch.special.ndtr(trainer.sample_z.double()), 2
    assert trainer.sample_z.shape == (n, 8)
    assert all(sorted((u[:, d] * n).floor().long().tolist()) == list(range(n)) for d in range(8))
    run = trainer.train()
    assert json.loads((run / "config.json").read_text())["variant"] == "bicycle"
    log = read_log(run)
    assert [r["step"] for r in log] == list(range(1, 9))  # 2 epochs x 4 steps
    assert {"G_L1", "kl", "z_L1", "D", "D2", "lr", "img_per_s"} <= set(log[0])
    assert log[-1]["lr"] < log[0]["lr"]  # the linear decay reached the second epoch
    assert (run / "samples" / "latest.png").is_file() and (run / "samples" / "step_0000003.png").is_file()
    state = read_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == 8 and set(state["nets"]) == {"G", "E", "D", "D2"}
    model = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert model.generate(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_a_run_made_again_writes_the_same_checkpoint(tmp_path, demo_root):
    # numpy's and Python's generators (the process's, never seeded, drawn from by nothing of a run) were saved
    # in every checkpoint: the same run made again wrote another file, of another digest (evaluate --reuse keys
    # its figures on it)
    import random
    import shutil

    import numpy as np
    digests = []
    for seed in (1, 2):
        np.random.seed(seed)  # (the process's generators differ between the two)
        random.seed(seed)
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=2), progress=False).train()
        digests.append(read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["digest"])
    assert digests[0] == digests[1]


def test_a_resume_keeps_the_log_lines_up_to_its_checkpoint(tmp_path):
    # Read a line at a time (a resume held a long run's whole log, and its lines again), kept as they were.
    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"step": s, "G_L1": s / 3}) + "\n" for s in range(1, 6)]
    log.write_text("".join(lines[:3]) + "\n" + "".join(lines[3:]) + '{"step": 6, "G_')  # a blank and a cut line
    assert _keep_log_to(log, 3, "training log") is True and log.read_text() == "".join(lines[:3])
    assert _keep_log_to(log, 3, "training log") is False and log.read_text() == "".join(lines[:3])
    log.write_text("".join(lines) + '{"step": 6, "G_')
    assert _keep_log_to(log, 9, "training log") is True and log.read_text() == "".join(lines)  # the cut line only
    log.write_text("".join(lines).rstrip("\n"))  # the last line whole, its newline not yet written
    assert _keep_log_to(log, 5, "training log") is False and log.read_text() == "".join(lines)


def test_a_resume_keeps_another_tools_lines_and_drops_the_later_steps_around_them(tmp_path):
    # Cut after its last line of a step up to the checkpoint's, read from its end, the log was cut after a line
    # of no step (another tool's, kept as of step 0) where it came last: the abandoned steps' lines before it
    # stayed, and the resumed run logged those steps again (1, 2, 3, 4, 5, 6, note, 5, 6, ...).
    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"step": s, "G_L1": s / 3}) + "\n" for s in range(1, 7)]
    note = json.dumps({"note": "tagged by a tracker"}) + "\n"
    log.write_text("".join(lines[:2]) + note + "".join(lines[2:5]) + note + lines[5] + '{"step": 7, "G_')
    assert _keep_log_to(log, 4, "training log") is True
    assert log.read_text() == "".join(lines[:2]) + note + "".join(lines[2:4]) + note  # as a line-by-line filter
    inode = log.stat().st_ino
    assert _keep_log_to(log, 4, "training log") is False and log.stat().st_ino == inode  # nothing to drop: as it is
    log.write_text("".join(lines[:4]) + note.rstrip("\n"))  # its last line whole, its newline not yet written
    assert _keep_log_to(log, 4, "training log") is False and log.read_text() == "".join(lines[:4]) + note


def test_a_resume_after_a_kill_parses_each_log_line_once_for_its_report(tmp_path, demo_root, monkeypatch):
    # A run killed past its checkpoint left log lines the resume drops; the page it then wrote again parsed the log
    # whole, and the trainer's first rewrite parsed it whole once more (a long log: seconds of every resume).
    from bicyclegan.engine.report import LogCurves
    run = tmp_path / "run"
    Trainer(tiny_cfg(run, demo_root, max_steps=4, save_every=2, sample_every=2), progress=False).train()
    with open(run / "log.jsonl", "a") as f:  # the lines of steps 5 and 6, written before the kill
        f.writelines(json.dumps({"step": s, "epoch": 1, "lr": 0.0002, "G_L1": 1.0}) + "\n" for s in (5, 6))
    parsed = []
    real = LogCurves._add
    monkeypatch.setattr(LogCurves, "_add", lambda self, text: parsed.append(len(text)) or real(self, text))
    Trainer(tiny_cfg(run, demo_root, max_steps=8, save_every=2, sample_every=2), resume=True, progress=False).train()
    assert [row["step"] for row in read_log(run)] == list(range(1, 9))
    assert sum(parsed) == (run / "log.jsonl").stat().st_size  # every line kept or written parsed once


def test_a_resume_reads_the_log_from_its_end_to_its_checkpoint_s_line(tmp_path, monkeypatch):
    # A resume read a long run's whole log, line by line, and wrote it again, where it drops a few lines at its end
    # or none (500,000 lines: 8 s).
    import bicyclegan.engine.trainer as trainer
    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"step": s, "G_L1": s / 3, "pad": "x" * 300}) + "\n" for s in range(1, 20001)]
    log.write_text("".join(lines))
    read = []
    real = trainer._log_step
    monkeypatch.setattr(trainer, "_log_step", lambda line: read.append(line) or real(line))
    inode = log.stat().st_ino
    assert _keep_log_to(log, 20000, "training log") is False
    assert log.stat().st_ino == inode and len(read) <= 2  # not written again; the last line and the blank after it
    read.clear()
    assert _keep_log_to(log, 19990, "training log") is True and log.read_text() == "".join(lines[:19990])
    assert len(read) <= 12
    marked = json.dumps({"step": 19990, "diverged": True}) + "\n"  # (a divergence's line: one more of its step)
    with open(log, "a") as f:
        f.write(marked + '{"step": 19991, "G_')  # then a line cut short
    assert _keep_log_to(log, 19990, "training log") is True and log.read_text() == "".join(lines[:19990]) + marked
    log.write_bytes("".join(lines[:3]).encode() + b"\xff\n")  # a byte not UTF-8: a line to drop, not an error
    assert _keep_log_to(log, 5, "training log") is True and log.read_text() == "".join(lines[:3])
    log.write_text("\n")  # a blank line alone: no line kept
    assert _keep_log_to(log, 5, "training log") is True and log.read_text() == ""
    log.write_text("".join(lines[:3]) + "\n" + '{"step": 4, "G_')
    data = log.read_bytes()
    with open(log, "rb") as f:  # read back in blocks of any size: each line whole, at its offset, the last first
        for block in (1, 7, 1 << 20):
            found = list(trainer._lines_from_end(f, block))
            assert [(at, data[at:at + len(line)]) for at, line in found] == found
            assert b"\n".join(line for _, line in reversed(found)) == data


def test_a_resume_reads_the_evaluation_log_as_its_report_does(tmp_path):
    # A line without a whole step (edited, or another tool's) was kept as of step 0, and the resume stopped on its
    # missing "step" (KeyError); the report leaves such lines out.
    rows = [{"step": 2, "coverage": 0.5}, {"coverage": 0.7}, {"step": 2.0, "coverage": 0.6}, [3],
            {"step": 5, "coverage": 0.8}]
    (tmp_path / "eval_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "cov')
    assert _evaluations_kept(tmp_path, 3, None, 4) == ([{"step": 2, "coverage": 0.5}], None)
    assert _evaluations_kept(tmp_path, 0, None, 4)[0] == [rows[0], rows[4]]


# the random crops (36 -> 32 px) and flips drawn, their draws resumed with the run
AUGMENTED = dict(load_size=36, preprocess="resize_and_crop", no_flip=False)


@pytest.mark.parametrize("num_workers, augment", [(0, {}), (2, {}), (2, AUGMENTED)], ids=["0", "2", "2-augmented"])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, demo_root, num_workers, augment):
    # 4 batches an epoch: resumed mid-epoch 0 (step 3), trained on through epoch 1's start.
    full = Trainer(tiny_cfg(tmp_path / "full", demo_root, max_steps=6, num_workers=num_workers, **augment),
                   progress=False).train()
    half = tmp_path / "half"
    Trainer(tiny_cfg(half, demo_root, max_steps=3, num_workers=num_workers, **augment), progress=False).train()
    Trainer(tiny_cfg(half, demo_root, max_steps=6, num_workers=num_workers, **augment), resume=True,
            progress=False).train()
    a, b = read_log(full), read_log(half)
    assert [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b):
        for k in ("G_L1", "G_GAN", "G_GAN2", "kl", "z_L1", "D", "D2", "lr"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-7), (ra["step"], k)
    wa = read_checkpoint(full / "checkpoints" / "latest.pt")["nets"]["G"]
    wb = read_checkpoint(half / "checkpoints" / "latest.pt")["nets"]["G"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-7)


def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(tmp_path, demo_root):
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=3), progress=False).train()
    with pytest.raises(CheckpointError, match="--resume"):
        Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=3), progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(tiny_cfg(tmp_path / "empty", demo_root), resume=True, progress=False)


def test_a_resume_lets_go_of_the_checkpoints_contents_once_loaded(tmp_path, demo_root, monkeypatch):
    """The checkpoint resumed from, read before the data since the start checks it first, was held (a gigabyte for the
    reference model, with Adam's moments) through rank 0's set-up of the grids and evaluations after it was loaded,
    where fit, which read it, had let it go: one of its tensors, watched, is gone by then."""
    import gc
    import weakref

    from bicyclegan.engine import trainer as trainer_module
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=2, save_every=2), progress=False).train()
    watched, alive = [], []
    check, fixed = trainer_module._check_starting_point, Trainer._fixed_samples

    def starting_point(*a, **k):
        state, step = check(*a, **k)
        watched.append(weakref.ref(state["nets"]["G"][next(iter(state["nets"]["G"]))]))
        return state, step

    def fixed_samples(self):
        gc.collect()
        alive.append(watched[0]() is not None)
        return fixed(self)
    monkeypatch.setattr(trainer_module, "_check_starting_point", starting_point)
    monkeypatch.setattr(Trainer, "_fixed_samples", fixed_samples)
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=4), resume=True, progress=False)
    assert alive == [False]


def test_resume_refuses_another_config(tmp_path, demo_root):
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=3), progress=False).train()
    cfg = tiny_cfg(tmp_path / "run", demo_root, max_steps=6)
    cfg.model.ngf = 8
    with pytest.raises(CheckpointError, match="model.ngf"):
        Trainer(cfg, resume=True, progress=False)


def test_a_resume_that_changes_how_the_step_computes_says_so(tmp_path, demo_root, capsys, monkeypatch):
    # --channels_last on a resume was taken without a word, and the losses parted from step 21 (a resume is
    # otherwise exact to the bit)
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=2), progress=False).train()
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=3), resume=True, progress=False).train()
    assert "note: the run resumes with" not in capsys.readouterr().err
    real_version = torch.__version__
    Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=4, channels_last=True, device="cpu"), resume=True,
            progress=False).train()
    # (device "cpu" for the run's "auto" on this CPU: the same device, said as changed when the words were compared)
    assert ("note: the run resumes with channels_last True (was False): the same training, "
            "whose arithmetic may round otherwise") in capsys.readouterr().err
    # Another torch, or other CPU threads (their reductions split otherwise): the options alike, the losses parted
    # from step 6 without a word
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "__version__", "9.9.0")
    torch.set_num_threads(threads + 1)
    try:
        Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=5, channels_last=True, device="cpu"), resume=True,
                progress=False).train()
    finally:
        torch.set_num_threads(threads)
    assert (f"note: the run resumes with torch 9.9.0 (was {real_version}), CPU threads {threads + 1} (was "
            f"{threads}): the same training") in capsys.readouterr().err


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, demo_root, monkeypatch):
    run = Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=3), progress=False).train()
    ckpt = run / "checkpoints" / "latest.pt"
    before = ckpt.read_bytes()
    trainer = Trainer(tiny_cfg(run, demo_root, max_steps=6), resume=True, progress=False)

    def no_space(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match="No space left"):
        trainer.save()
    assert ckpt.read_bytes() == before
    assert not [p for p in ckpt.parent.iterdir() if p.name != "latest.pt"]  # no temp file left


def test_corrupt_checkpoint_is_reported(tmp_path):
    bad = tmp_path / "latest.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a torch file, so no checkpoint"):
        read_checkpoint(bad)


def test_lr_schedule_matches_the_reference_linear_policy():
    assert [lr_factor(e, 2, 2) for e in range(4)] == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])
    # Past the schedule the reference's formula goes negative (-1/3, -2/3...): held at 0 here.
    assert [lr_factor(e, 2, 2) for e in range(4, 7)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("variant", ["bicycle", "cvae", "cae", "clr", "pix2pix"])
def test_a_trainer_step_is_the_reference_iteration_at_the_schedules_rate(tmp_path, demo_root, variant):
    """A step of the training loop, taken from identical weights, Adam moments and data, equals
    test_model's transcription of the reference's optimize_parameters at the rate of the reference's
    linear policy: the loop adds nothing to the model's step and sets the schedule's rate. The step
    is the first of the second epoch (niter 1, niter_decay 1: LambdaLR's factor 1 - 1 / 2), after
    four steps that gave Adam moments; in float64, so the moves compare to rounding."""
    cfg = tiny_cfg(tmp_path / "run", demo_root, variant=variant, niter=1, niter_decay=1, max_steps=5, **WEIGHTS)
    torch.set_default_dtype(torch.float64)
    try:
        trainer = Trainer(cfg, progress=False)
        assert trainer.steps_per_epoch == 4
        real, seen = trainer.model.train_step, {}

        def train_step(batch):
            batch = {k: batch[k].double() for k in ("A", "B")}
            if trainer.step == trainer.steps_per_epoch:
                seen.update(model=copy.deepcopy(trainer.model), batch=batch, rng=torch.get_rng_state())
            return real(batch)
        trainer.model.train_step = train_step
        trainer.sample = lambda: None  # the grids and evaluation would feed float32 images
        trainer.evaluate = lambda: {}
        trainer.train()
        ref = seen["model"]
        for opt in ref.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (1 - max(0, 1 + 1 - cfg.niter) / (cfg.niter_decay + 1))
        torch.set_rng_state(seen["rng"])
        reference_iteration(ref, seen["batch"])
    finally:
        torch.set_default_dtype(torch.float32)
    assert trainer.step == 5 and set(trainer.model.networks()) == set(ref.networks())
    for n, net in trainer.model.networks().items():
        for (k, p), q in zip(net.named_parameters(), ref.networks()[n].parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-4 * cfg.lr, msg=lambda m: f"{n}.{k}: {m}")


def test_cli_help_lists_every_config_field(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    import dataclasses
    for cls in (TrainConfig, ModelConfig, DataConfig):
        for f in dataclasses.fields(cls):
            if f.name not in ("model", "data"):
                assert f"--{f.name}" in text, f.name


def test_cli_presets_and_overrides(capsys):
    args = build_parser().parse_args(["train", "--ngf", "8", "--variant", "pix2pix", "--no_flip"])
    cfg = resolve_config(args)
    assert cfg.model.ngf == 8 and cfg.variant == "pix2pix" and cfg.data.no_flip and cfg.model.crop_size == 32
    args = build_parser().parse_args(["train", "--dataroot", "x"])
    assert resolve_config(args).model.crop_size == 256  # reference defaults with a dataset
    assert main(["train", "--dry-run", "--lambda_z", "0.25"]) == 0
    assert json.loads(capsys.readouterr().out)["lambda_z"] == 0.25


def test_cli_resume_starts_from_the_runs_own_config(tmp_path, capsys):
    from bicyclegan.engine.runtime import demo_data_root

    def resolved(*argv):
        return resolve_config(build_parser().parse_args(["train", *argv]))
    run = tmp_path / "run"
    run.mkdir()
    started = resolved("--dataroot", "data/shoes", "--ngf", "8", "--lr", "1e-3", "--out", str(run))
    (run / "config.json").write_text(json.dumps(started.to_dict()))
    for how in (["--resume"], ["--epoch", "3"], ["--resume", "--epoch", "3"]):
        cfg = resolved("--out", str(run), *how, "--niter_decay", "7")
        assert cfg.to_dict() == {**started.to_dict(), "niter_decay": 7}, how
    # with --preset the preset's defaults apply, as when the run was started (the old way)
    assert resolved("--out", str(run), "--resume", "--preset", "demo").model.ngf == 16
    # a checkpoint path is another run's (or a download's): the command line decides
    assert resolved("--out", str(run), "--resume", "x.pt").model.ngf == 16
    assert resolved("--out", str(tmp_path / "none"), "--resume").model.ngf == 16  # no config.json: the demo
    # a demo run's data folder (beside the run) is the demo data again: a demo run, evaluated at the end
    demo = resolved("--out", str(run))
    demo.data.dataroot = str(demo_data_root(run, demo.model.size, demo.seed))
    (run / "config.json").write_text(json.dumps(demo.to_dict()))
    assert resolved("--out", str(run), "--resume").data.dataroot is None
    (run / "config.json").write_text("{broken")
    assert main(["train", "--out", str(run), "--resume", "--dry-run"]) == 2
    assert f"cannot read the run's config {run / 'config.json'}" in capsys.readouterr().err


def test_cli_bad_input_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--batch_size", "3", "--dry-run"]) == 2
    assert "batch_size=3" in capsys.readouterr().err
    assert main(["train", "--preset", "demo", "--dataroot", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "missing" in capsys.readouterr().err


def test_sample_and_evaluate_commands(tmp_path, demo_root, capsys):
    run = Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=2), progress=False).train()
    ckpt = str(run / "checkpoints" / "latest.pt")
    assert main(["sample", ckpt, "--num", "3", "--n_samples", "2", "--device", "cpu"]) == 0
    res = run / "results" / "test"
    assert (res / "grid.png").is_file()
    page = (res / "index.html").read_text()
    assert page.count("<tr>") == 3 and "ground truth" in page and "encoded" in page
    assert len(list((res / "images").glob("*.png"))) == 3 * (3 + 2)  # input, truth, encoded, 2 random
    out = tmp_path / "eval.json"
    assert main(["evaluate", ckpt, "--num", "4", "--n_samples", "3", "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n_inputs"] == 4 and r["n_outputs"] == 12 and 0 <= r["coverage"] <= 1 and 0 <= r["validity"] <= 1
    assert "palette coverage" in capsys.readouterr().out


def test_the_runs_evaluation_of_a_model_without_z_is_its_one_output_per_input(tmp_path, demo_root):
    """pix2pix with nz=0 on the demo data: evaluate refuses n_samples above 1 for it (it changes nothing), so the
    end-of-training table asks none; its 100-z shares would be the one output's histogram again, under a
    "with 100 z per input" line that drew no z: left out."""
    trainer = Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=1, variant="pix2pix", nz=0), progress=False)
    trainer.train()
    r = trainer.evaluate()
    assert r["n_samples"] == 1 and r["n_outputs"] == r["n_inputs"]
    assert "shares_n_samples" not in r and "shares_histogram" not in r


def test_the_runs_evaluation_adds_palette_shares_from_100_z_per_input(tmp_path, demo_root, monkeypatch):
    ev = importlib.import_module("bicyclegan.engine.evaluate")  # the package's `evaluate` is the function
    trainer = Trainer(tiny_cfg(tmp_path / "run", demo_root, max_steps=1), progress=False)
    run = trainer.train()
    calls, real = [], ev.evaluate

    def recorded(model, root, **kw):
        calls.append(kw)
        r = real(model, root, **kw)
        return {**r, "histogram": [kw["n_samples"], 0, 1, 2]}  # tell the two calls apart in the result
    monkeypatch.setattr(ev, "evaluate", recorded)
    r = trainer.evaluate()
    assert calls == [dict(n_samples=10), dict(n_samples=100, metrics="palette", seed=1)]
    assert r["n_samples"] == 10 and r["histogram"] == [10, 0, 1, 2]
    assert r["shares_n_samples"] == 100 and r["shares_histogram"] == [100, 0, 1, 2]
    assert json.loads((run / "eval.json").read_text())["shares_histogram"] == [100, 0, 1, 2]
    table = ev.format_table(r).splitlines()
    at = next(i for i, line in enumerate(table) if line.startswith("palette histogram"))
    assert re.fullmatch(r"  with 100 z per input +100 0 1 2  \(97 / 0 / 1 / 2 %\)", table[at + 1])


def test_import_official_matches_by_order_and_checks_shapes(tmp_path, capsys):
    from bicyclegan.engine import build_encoder, build_generator
    from bicyclegan.engine.official import load_official_into
    cfg = ModelConfig(**TINY)
    G = build_generator(cfg)
    # The reference's names differ from ours but the order is the same: rename every key.
    torch.save({f"model.{i}.w": v for i, (k, v) in enumerate(G.state_dict().items())}, tmp_path / "G.pth")
    E = build_encoder(cfg)
    sd = E.state_dict()  # the reference's E_ResNet registers fc/fcVar before conv
    head = {k: v for k, v in sd.items() if k.startswith("fc")}
    torch.save({**head, **{k: v for k, v in sd.items() if not k.startswith("fc")}}, tmp_path / "E.pth")
    out = tmp_path / "imported.pt"
    args = ["import-official", "--G", str(tmp_path / "G.pth"), "--E", str(tmp_path / "E.pth"), "--out", str(out)]
    args += [f"--{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    model = load_checkpoint(out)
    A, z, B = torch.randn(2, 3, 32, 32), torch.randn(2, 8), torch.randn(2, 3, 32, 32)
    G.eval(), E.eval(), model.eval()
    torch.testing.assert_close(model.G(A, z), G(A, z), rtol=0, atol=0)
    torch.testing.assert_close(model.E(B)[0], E(B)[0], rtol=0, atol=0)
    other = build_generator(ModelConfig(**{**TINY, "ngf": 8}))
    with pytest.raises(CheckpointError, match="has shape"):
        load_official_into(other, tmp_path / "G.pth")
    with pytest.raises(CheckpointError, match="holds .* tensors"):
        load_official_into(build_generator(ModelConfig(**{**TINY, "where_add": "input", "num_downs": 4})),
                           tmp_path / "G.pth")


def test_import_official_replaces_an_import_but_not_a_trained_checkpoint(tmp_path, capsys):
    # `--out runs/x/checkpoints/latest.pt` replaced a run's trained weights with the files'; an earlier
    # import (its "imported" list says so) may still be imported again.
    from bicyclegan.engine import BicycleGAN, build_generator, make_config, save_checkpoint
    torch.save(build_generator(ModelConfig(**TINY)).state_dict(), tmp_path / "G.pth")
    args = ["import-official", "--G", str(tmp_path / "G.pth"), *[f"--{k}={v}" for k, v in TINY.items()], "--out"]
    out = tmp_path / "imported.pt"
    assert main([*args, str(out)]) == 0 and main([*args, str(out)]) == 0
    trained = save_checkpoint(BicycleGAN(make_config("reference", **TINY)), tmp_path / "latest.pt", step=7)
    before = trained.read_bytes()
    capsys.readouterr()
    assert main([*args, str(trained)]) == 2
    err = capsys.readouterr().err
    assert f"--out {trained} is a checkpoint that train wrote (step 7), which the import would replace; give " \
           f"another file to write, e.g. {tmp_path / 'imported.pt'}" in err
    assert trained.read_bytes() == before
    # An import of a version before imports recorded their networks (step 0, neither "imported" nor train's
    # "steps_per_epoch"): an import, replaced (it was refused as train's), after which it records that it has no E
    # (its random encoder's outputs passed for the model's)
    old = save_checkpoint(BicycleGAN(make_config("reference", **TINY)), tmp_path / "old.pt")
    from bicyclegan.engine import load_checkpoint
    assert load_checkpoint(old).E is not None
    assert main([*args, str(old)]) == 0
    assert load_checkpoint(old).E is None


def test_a_resumed_runs_log_lines_average_the_steps_an_uninterrupted_runs_do(tmp_path, demo_root):
    # Checkpoints fall inside log intervals (an epoch's end, a run's last step): the first line after
    # resuming averaged only the steps after the checkpoint (G_GAN 1.658 where the run had 1.620).
    import shutil
    kw = dict(log_every=3, save_epoch_freq=1, max_steps=8)  # 4 steps an epoch: checkpoints at 4 and 8
    full = Trainer(tiny_cfg(tmp_path / "full", demo_root, **kw), progress=False).train()
    want = {r["step"]: r for r in read_log(full)}
    assert sorted(want) == [3, 6, 8]
    shutil.copytree(full, tmp_path / "again")
    Trainer(tiny_cfg(tmp_path / "again", demo_root, **kw), resume=True, epoch=1, progress=False).train()
    Trainer(tiny_cfg(tmp_path / "stop", demo_root, **{**kw, "max_steps": 5}), progress=False).train()
    Trainer(tiny_cfg(tmp_path / "stop", demo_root, **kw), resume=True, progress=False).train()
    for run, steps in (("again", [3, 6, 8]), ("stop", [3, 5, 6, 8])):  # 5: the stopped run's last step
        got = {r["step"]: r for r in read_log(tmp_path / run)}
        assert sorted(got) == steps
        for step in (6, 8):
            for k in ("G_L1", "G_GAN", "G_GAN2", "kl", "z_L1", "D", "D2"):
                assert got[step][k] == pytest.approx(want[step][k], rel=1e-6, abs=1e-7), (run, step, k)
