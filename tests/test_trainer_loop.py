"""The training loop's bookkeeping against answers worked out here, not by the trainer: the rate each
step trains with (the reference's linear rule), the logged means and speeds (a stand-in training
step returns made-up losses and takes made-up times), the steps that sample and save, a resume at
its edges, each rank's own z stream and the start-up refusals at their boundaries. Most runs use
the stand-in step, so a dozen iterations take a fraction of a second (from the mutation pass of
docs/mutation-engine.md)."""
import hashlib
import json
import shutil
import types

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_cfg

from bicyclegan.engine import CheckpointError, ConfigError, DivergenceError
from bicyclegan.engine import trainer as trainer_module
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.model import BicycleGAN
from bicyclegan.engine.runtime import Dist
from bicyclegan.engine.trainer import Trainer
from bicyclegan.pipelines import DatasetError, make_demo_dataset

STEPS_PER_EPOCH = 4  # 16 training pairs, batch 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=4, size=32, seed=0)


@pytest.fixture
def clock(monkeypatch):
    """The trainer's clock, moved only by the stand-in step (see stand_in)."""
    now = types.SimpleNamespace(t=1000.0)
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(monotonic=lambda: now.t))
    return now


def stand_in(trainer, clock=None, seconds=lambda k: 0.0):
    """Replace the training step: step k (counted from 1) takes seconds(k) on `clock` and returns the
    losses G_L1 = k and D = 2k. Returns the list of what each step saw: its number and every
    optimiser's learning rate."""
    seen = []

    def step(batch):
        k = trainer.step + 1
        seen.append((k, [float(g["lr"]) for o in trainer.model.optimizers.values() for g in o.param_groups]))
        if clock is not None:
            clock.t += seconds(k)
        return {"G_L1": torch.tensor(float(k)), "D": torch.tensor(2.0 * k)}
    trainer.model.train_step = step
    return seen


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_every_step_trains_at_the_reference_linear_rate(tmp_path, data):
    # niter != niter_decay, so that the two cannot stand in for each other; 3 epochs of 4 steps.
    lr, niter, niter_decay = 1e-3, 1, 2
    trainer = Trainer(tiny_cfg(tmp_path / "r", data, lr=lr, niter=niter, niter_decay=niter_decay,
                               sample_every=100, save_every=100), progress=False)
    seen = stand_in(trainer)
    run = trainer.train()

    def want(step):  # the reference's "linear" policy, per epoch
        epoch = (step - 1) // STEPS_PER_EPOCH
        return lr * (1 - max(0, epoch + 1 - niter) / float(niter_decay + 1))
    assert [k for k, _ in seen] == list(range(1, 13))
    for k, lrs in seen:  # what the optimisers hold, not only what is logged
        assert len(lrs) == 4 and lrs == pytest.approx([want(k)] * 4, rel=1e-12), k
    rows = read_log(run)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert [r["lr"] for r in rows] == pytest.approx([want(r["step"]) for r in rows], rel=1e-12)
    assert [r["epoch"] for r in rows] == [(r["step"] - 1) // STEPS_PER_EPOCH for r in rows]


def test_log_lines_hold_the_intervals_means_and_images_per_second_across_a_resume(tmp_path, data, clock):
    # Step k takes 0.1 k s and reports G_L1 = k, D = 2k. log_every 3; stopped at step 5, resumed to 8.
    run = tmp_path / "r"
    kw = dict(log_every=3, sample_every=100, save_every=100)
    first = Trainer(tiny_cfg(run, data, max_steps=5, **kw), progress=False)
    stand_in(first, clock, lambda k: 0.1 * k)
    first.train()
    second = Trainer(tiny_cfg(run, data, max_steps=8, **kw), resume=True, progress=False)
    stand_in(second, clock, lambda k: 0.1 * k)
    second.train()

    def line(steps, since):  # the mean over `steps`, images/s over the steps since the last line (batch 4)
        mean = sum(steps) / len(steps)
        return {"G_L1": mean, "D": 2 * mean, "img_per_s": round(4 * len(since) / sum(0.1 * k for k in since), 2)}
    want = {3: line([1, 2, 3], [1, 2, 3]),
            5: line([4, 5], [4, 5]),        # the first run's last step, off the log grid
            6: line([4, 5, 6], [6]),        # the interval carried through the checkpoint; time since resuming
            8: line([7, 8], [7, 8])}
    rows = read_log(run)
    assert [r["step"] for r in rows] == sorted(want)
    for r in rows:
        got = {k: r[k] for k in ("G_L1", "D", "img_per_s")}
        assert got == pytest.approx(want[r["step"]], rel=1e-6), r["step"]
        assert r["epoch"] == (r["step"] - 1) // STEPS_PER_EPOCH


def test_images_per_second_leave_out_the_time_of_grids_evaluations_and_saves(tmp_path, data, clock, monkeypatch):
    # Each step takes 0.1 s; a grid, an evaluation and a save each take 5 s, at step 2: the interval's images/s
    # read 4 x 4 / 15.4 (the training at a tenth of its speed, a sawtooth in the report), for 4 x 4 / 0.4.
    t = Trainer(tiny_cfg(tmp_path / "r", data, max_steps=8, log_every=4, sample_every=2, save_every=2, eval_every=2,
                         eval_num=1, eval_samples=1), progress=False)
    stand_in(t, clock, lambda k: 0.1)
    for name in ("sample", "validate", "save"):
        real = getattr(t, name)
        monkeypatch.setattr(t, name, lambda *a, real=real, **k: (setattr(clock, "t", clock.t + 5.0), real(*a, **k))[1])
    t.train()
    assert [r["img_per_s"] for r in read_log(tmp_path / "r")] == [pytest.approx(4 * 4 / 0.4)] * 2


def test_samples_and_checkpoints_come_at_their_steps(tmp_path, data, monkeypatch):
    # 3 epochs of 4 steps (niter 2 + niter_decay 1); stopped at 9, then resumed to the end (12).
    saves, grids = [], []
    real_save, real_grid = trainer_module.save_checkpoint, trainer_module.save_grid

    def save(model, path, **kw):
        saves.append((path.name, kw["step"], kw["epoch"]))
        return real_save(model, path, **kw)

    def grid(model, A, B, z, path, *more):
        assert [p.name for p in more] == ["latest.png"]  # (drawn once, written twice)
        grids.append(path.name)
        return real_grid(model, A, B, z, path, *more)
    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    monkeypatch.setattr(trainer_module, "save_grid", grid)
    kw = dict(niter=2, niter_decay=1, log_every=100, save_every=3, sample_every=4, save_epoch_freq=2)
    run = tmp_path / "r"
    t = Trainer(tiny_cfg(run, data, max_steps=9, **kw), progress=False)
    stand_in(t)
    t.train()
    # latest.pt every 3 steps and at the end (the epoch the step trained in), once where the end is a
    # step of the 3 (it was written twice, the time of two saves in a stop's seconds); epoch_2.pt after
    # two epochs (stored as the start of the next), none after one; a grid every 4 steps and at the end.
    assert saves == [("latest.pt", 3, 0), ("latest.pt", 6, 1), ("epoch_2.pt", 8, 2), ("latest.pt", 9, 2)]
    assert grids == ["step_0000004.png", "step_0000008.png", "step_0000009.png"]
    assert [r["step"] for r in read_log(run)] == [9]  # the run's last step, off the log grid
    saves.clear(), grids.clear()
    t = Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)
    stand_in(t)
    t.train()
    assert saves == [("latest.pt", 12, 2)]
    assert grids == ["step_0000012.png"]  # on the sample grid: drawn once, not again at the end
    assert sorted(p.name for p in (run / "samples").glob("step_*.png")) == [
        "step_0000004.png", "step_0000008.png", "step_0000009.png", "step_0000012.png"]


def test_resuming_a_finished_run_trains_nothing_and_keeps_its_log(tmp_path, data):
    run = tmp_path / "r"
    t = Trainer(tiny_cfg(run, data, max_steps=4, sample_every=100, save_every=100), progress=False)
    stand_in(t)
    t.train()
    log = (run / "log.jsonl").read_text()
    again = Trainer(tiny_cfg(run, data, max_steps=4, sample_every=100, save_every=100), resume=True, progress=False)
    seen = stand_in(again)
    assert again.train() == run and seen == []
    assert (run / "log.jsonl").read_text() == log


def test_a_resumed_run_that_diverges_names_the_checkpoint_it_resumed_from(tmp_path, data):
    run = tmp_path / "r"
    Trainer(tiny_cfg(run, data, max_steps=2, sample_every=100), progress=False).train()
    t = Trainer(tiny_cfg(run, data, max_steps=4, sample_every=100, save_every=100), resume=True, progress=False)
    with torch.no_grad():
        next(t.model.G.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(DivergenceError, match=r"at step 3 .*the last good checkpoint is .*latest\.pt \(step 2\)"):
        t.train()


def test_resume_on_a_larger_dataset_is_refused(tmp_path, data):
    Trainer(tiny_cfg(tmp_path / "r", data, max_steps=2, sample_every=100), progress=False).train()
    large = make_demo_dataset(tmp_path / "large", n_train=24, n_test=2, size=32, seed=0)
    with pytest.raises(CheckpointError, match="4 batches per epoch, the data now gives 6"):
        Trainer(tiny_cfg(tmp_path / "r", large, max_steps=4), resume=True, progress=False)



def test_resume_on_a_dataset_of_another_size_but_as_many_batches_is_refused(tmp_path, data):
    # 16 pairs and 18 both give 4 batches of 4 an epoch: the resume went on, with every epoch's order a
    # permutation of 18 pairs where the run had drawn from 16, and README promised another size refused.
    Trainer(tiny_cfg(tmp_path / "r", data, max_steps=2, sample_every=100), progress=False).train()
    other = make_demo_dataset(tmp_path / "other", n_train=18, n_test=2, size=32, seed=0)
    with pytest.raises(CheckpointError, match=r"written by a run of 16 training samples, the data now holds 18 \("
                       + str(other) + r"\): resuming replays the epoch's order, which needs the same images; .*"
                       r"--init_from"):
        Trainer(tiny_cfg(tmp_path / "r", other, max_steps=4), resume=True, progress=False)
    moved = tmp_path / "moved"  # the same data elsewhere resumes (--dataroot may change)
    data_copy = shutil.copytree(data, moved)
    Trainer(tiny_cfg(tmp_path / "r", data_copy, max_steps=4, sample_every=100), resume=True, progress=False).train()


def test_resume_on_other_files_of_as_many_samples_is_refused_and_a_copy_elsewhere_resumes(tmp_path, data):
    # Another dataset of as many pairs (--dataroot changed at the resume): the run went on, every epoch's order
    # a permutation of other images. The reference's datasets name their files alike (1_AB.jpg, ...), as the demo's
    # do: their sizes tell them apart; a file renamed does by its name.
    run = tmp_path / "r"
    Trainer(tiny_cfg(run, data, max_steps=2, sample_every=100), progress=False).train()
    other = make_demo_dataset(tmp_path / "other", n_train=16, n_test=2, size=32, seed=1)
    assert sorted(p.name for p in (other / "train").iterdir()) == sorted(p.name for p in (data / "train").iterdir())
    renamed = shutil.copytree(data, tmp_path / "renamed")
    first = sorted((renamed / "train").iterdir())[0]
    first.rename(first.with_name("zz" + first.name))
    said = (r"latest\.pt was written by a run on other training files: the names or sizes of the 16 samples in "
            r"\S+ \(relative to it\) are not the run's; resuming replays the epoch's order, which needs the same "
            r"images \(a copy of the dataset elsewhere is fine\); to train on this data, start a new run from its "
            r"weights with --init_from$")
    for root in (other, renamed):
        with pytest.raises(CheckpointError, match=said):
            Trainer(tiny_cfg(run, root, max_steps=4), resume=True, progress=False)
        with pytest.raises(CheckpointError, match=said):  # (--dry-run's checks)
            trainer_module.check_start(tiny_cfg(run, root, max_steps=4), resume=True)
    # A copy elsewhere resumes: the names are taken relative to the data folder
    copy = shutil.copytree(data, tmp_path / "elsewhere" / "copy")
    Trainer(tiny_cfg(run, copy, max_steps=4, sample_every=100), resume=True, progress=False).train()
    # The digest is of the names and sizes in the loader's order, computed here independently
    digest = hashlib.sha256()
    for path in sorted((copy / "train").glob("*.png")):  # (palettes.json beside them: the demo's answers)
        digest.update(f"train/{path.name}\0{path.stat().st_size}\0".encode())
    assert torch.load(run / "checkpoints" / "latest.pt", weights_only=False)["samples_digest"] == digest.hexdigest()


def test_a_resume_with_another_config_is_refused_before_the_data_is_read(tmp_path, data, monkeypatch):
    # The checkpoint was compared after the loader had listed and checked every file (minutes on a large
    # dataset met for the first time), and after the files --skip_bad leaves out were listed.
    Trainer(tiny_cfg(tmp_path / "r", data, max_steps=2, sample_every=100), progress=False).train()

    def build_loader(*args, **kw):
        raise AssertionError("the data was listed and checked")
    monkeypatch.setattr(trainer_module, "build_loader", build_loader)
    with pytest.raises(CheckpointError, match=r"written with another config; differences: lr: checkpoint 0.0002 vs "
                       r"now 0.001 \(a resumed run continues"):
        Trainer(tiny_cfg(tmp_path / "r", data, max_steps=4, lr=0.001), resume=True, progress=False)

def test_an_image_width_the_unet_cannot_take_is_refused_too(tmp_path):
    # 32 high (a multiple of 32) but 40 wide: the width alone is off.
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "train").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 80, 3), dtype=np.uint8)).save(tmp_path / "d" / "train" / f"{i}.png")
    with pytest.raises(ConfigError, match=r"makes the training images 40x32 \(W x H"):
        Trainer(tiny_cfg(tmp_path / "r", tmp_path / "d"), progress=False)


def test_each_rank_draws_its_own_z(tmp_path, data, monkeypatch):
    # Rank 0 and rank 1 of two (no process group is needed before the first step): the generators
    # each leaves for the training steps must differ, or both ranks draw the same z every step.
    draws = []
    for rank in (0, 1):
        monkeypatch.setattr(trainer_module, "init_distributed",
                            lambda device, rank=rank: Dist(rank=rank, world=2, device=torch.device("cpu")))
        Trainer(tiny_cfg(tmp_path / f"r{rank}", data), progress=False)
        draws.append(torch.randn(8))
    assert not torch.equal(*draws)


def test_fine_tuning_keeps_imported_discriminators(tmp_path, data):
    # An import that holds trained discriminators (imported lists D and D2): a fine-tune starts from
    # them, as from G and E; only discriminators the import left untrained are the run's own.
    cfg = tiny_cfg(tmp_path / "unused", data)
    model = BicycleGAN(cfg)
    with torch.no_grad():
        for p in (*model.D.parameters(), *model.D2.parameters()):
            p.add_(0.5)
    ckpt = save_checkpoint(model, tmp_path / "imported.pt", own={"imported": ["G", "E", "D", "D2"]})
    t = Trainer(tiny_cfg(tmp_path / "ft", data), resume=ckpt, progress=False)
    for name in ("G", "E", "D", "D2"):
        want, got = getattr(model, name).state_dict(), getattr(t.model, name).state_dict()
        for k in want:
            assert torch.equal(got[k], want[k]), (name, k)


def test_resume_from_a_run_folder_continues_from_its_latest_checkpoint(tmp_path, data):
    """resume=RUN (the command's --resume RUN) was "checkpoint RUN does not exist" of the folder that was there,
    where init_from, load_checkpoint and every command take a run folder for its checkpoints/latest.pt."""
    run = tmp_path / "r"
    t = Trainer(tiny_cfg(run, data, max_steps=3, save_every=100, sample_every=100), progress=False)
    stand_in(t)
    t.train()
    for i, resume in enumerate((run, str(run))):
        t = Trainer(tiny_cfg(tmp_path / f"on{i}", data, max_steps=5), resume=resume, progress=False)
        assert (t.step, t.resume_path) == (3, run / "checkpoints" / "latest.pt")
    with pytest.raises(CheckpointError, match=f"^{data} is not a run folder"):
        Trainer(tiny_cfg(tmp_path / "on2", data), resume=data, progress=False)


def _epoch_checkpoints_only(tmp_path, data):
    """A run folder as a run killed after epoch 1's checkpoint but before any latest.pt leaves it
    (save_every 100): 6 steps with save_epoch_freq 1, then latest.pt deleted. -> (folder, options)"""
    run = tmp_path / "r"
    kw = dict(max_steps=6, save_every=100, sample_every=100, save_epoch_freq=1)
    t = Trainer(tiny_cfg(run, data, **kw), progress=False)
    stand_in(t)
    t.train()
    (run / "checkpoints" / "latest.pt").unlink()
    return run, kw


def test_a_run_with_per_epoch_checkpoints_only_is_continued_from_its_latest_epoch(tmp_path, data):
    # Killed after epoch 1's checkpoint but before any latest.pt (save_every 100): the messages sent
    # the user to start again in a new folder ("stopped before its first checkpoint") though
    # epoch_1.pt was there to resume from.
    run, kw = _epoch_checkpoints_only(tmp_path, data)
    with pytest.raises(CheckpointError, match=r"already holds a run \(log\.jsonl\); pass --epoch 1 \(resume=True, "
                                              r"epoch=1 in Python\) to continue"):
        Trainer(tiny_cfg(run, data, **kw), progress=False)
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*latest\.pt \(the run kept per-epoch "
                                              r"checkpoints only: continue it with --epoch 1\)"):
        Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)
    assert Trainer(tiny_cfg(run, data, **kw), epoch=1, progress=False).step == STEPS_PER_EPOCH


def test_divergence_names_the_epoch_checkpoint_when_there_is_no_latest(tmp_path, data):
    # A run with epoch checkpoints only (as above), continued with --epoch 1 as its message says, then
    # diverging before a latest.pt: the message named checkpoints/latest.pt (step 4), not there.
    run, kw = _epoch_checkpoints_only(tmp_path, data)
    t = Trainer(tiny_cfg(run, data, **{**kw, "max_steps": 8}), epoch=1, progress=False)
    with torch.no_grad():
        next(t.model.G.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(DivergenceError, match=r"at step 5 .*the last good checkpoint is \S*epoch_1\.pt \(step 4\)"):
        t.train()
    # No checkpoint of the diverged weights: latest.pt is epoch_1.pt's copy, made as the run went on from it.
    assert (run / "checkpoints" / "latest.pt").read_bytes() == (run / "checkpoints" / "epoch_1.pt").read_bytes()


def test_divergence_after_an_epoch_checkpoint_names_it(tmp_path, data):
    # epoch_1.pt written at step 4, no latest.pt yet (save_every 100), a non-finite loss at step 6:
    # the message said no checkpoint had been written.
    run = tmp_path / "r"
    t = Trainer(tiny_cfg(run, data, max_steps=8, log_every=1, save_every=100, sample_every=100, save_epoch_freq=1),
                progress=False)
    stand_in(t)
    real = t.model.train_step

    def step(batch):
        losses = real(batch)
        return {**losses, "G_L1": torch.tensor(float("nan"))} if t.step + 1 == 6 else losses
    t.model.train_step = step
    with pytest.raises(DivergenceError, match=r"at step 6 .*the last good checkpoint is \S*epoch_1\.pt \(step 4\)"):
        t.train()


def _step_of(path):
    return torch.load(path, weights_only=True)["step"]


def test_a_run_ending_on_an_epoch_checkpoint_writes_latest_pt_too(tmp_path, data, monkeypatch):
    # 2 epochs of 4 steps, epoch_2.pt at step 8, the end; save_every 3 has no step 8: latest.pt is owed
    # there, once (an epoch's checkpoint at the last step is no latest.pt, which --resume reads).
    saves, real_save = [], trainer_module.save_checkpoint

    def save(model, path, **kw):
        saves.append((path.name, kw["step"]))
        return real_save(model, path, **kw)
    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    run = tmp_path / "r"
    kw = dict(niter=2, niter_decay=1, log_every=100, save_every=3, sample_every=100, save_epoch_freq=2)
    t = Trainer(tiny_cfg(run, data, max_steps=8, **kw), progress=False)
    stand_in(t)
    t.train()
    assert saves == [("latest.pt", 3), ("latest.pt", 6), ("epoch_2.pt", 8), ("latest.pt", 8)]
    assert _step_of(run / "checkpoints" / "latest.pt") == 8


@pytest.mark.parametrize("how", ["epoch", "path"])
def test_going_back_to_an_earlier_checkpoint_makes_it_the_runs_latest(tmp_path, data, how):
    # 3 epochs (12 steps), epoch_1.pt at step 4; then the run goes back to it (--epoch 1, or --resume
    # RUN/checkpoints/epoch_1.pt) and is killed at step 6, before its first save. Its log was cut back to
    # step 4 at the start, but latest.pt stayed at step 12 until the next save: a plain --resume then
    # went on from step 12 with a log of steps 1-5, the 5th of the killed run and 6-12 gone.
    run = tmp_path / "r"
    kw = dict(niter=2, niter_decay=1, log_every=1, save_every=100, sample_every=100, save_epoch_freq=1)
    t = Trainer(tiny_cfg(run, data, **kw), progress=False)
    stand_in(t)
    t.train()
    assert _step_of(run / "checkpoints" / "latest.pt") == 12
    back = dict(epoch=1, resume=True) if how == "epoch" else dict(resume=run / "checkpoints" / "epoch_1.pt")
    t = Trainer(tiny_cfg(run, data, **kw), progress=False, **back)
    assert t.step == 4 and _step_of(run / "checkpoints" / "latest.pt") == 4  # before any iteration
    stand_in(t)
    real = t.model.train_step

    def killed(batch):
        if t.step + 1 == 6:
            raise RuntimeError("killed")
        return real(batch)
    t.model.train_step = killed
    with pytest.raises(RuntimeError, match="killed"):
        t.train()
    again = Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)
    assert again.step == 4
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4]
    # The later checkpoints of the abandoned continuation were moved aside when it went back (not
    # left for --epoch 2 to continue, nor overwritten: latest.pt of step 12 is there too).
    aside = run / "checkpoints" / "abandoned_after_step_4"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["abandoned_after_step_4", "epoch_1.pt",
                                                                        "latest.pt"]
    assert {p.name: _step_of(p) for p in aside.iterdir()} == {"epoch_2.pt": 8, "epoch_3.pt": 12, "latest.pt": 12}


def test_going_back_shows_the_kept_steps_not_the_abandoned_ones(tmp_path, data):
    # Back to epoch 1 (step 4) of a finished run of 12 steps: report.html still said "step 12 of 12", charted the
    # abandoned steps and embedded their grids (the PNGs deleted), samples/latest.png was step 12's to the byte,
    # and a demo run's eval.json of the final weights was shown as the run's evaluation, until the next grid, or
    # for good had the resumed run died first.
    run = tmp_path / "r"
    kw = dict(niter=2, niter_decay=1, log_every=1, save_every=100, sample_every=2, save_epoch_freq=1)
    t = Trainer(tiny_cfg(run, data, **kw), progress=False)
    stand_in(t)
    step = t.model.train_step

    def moving(batch):  # each step moves G's output, so that each grid differs
        with torch.no_grad():
            next(t.model.G.parameters()).add_(0.5)
        return step(batch)
    t.model.train_step = moving
    t.train()
    grids = [(run / "samples" / f"step_{k:07d}.png").read_bytes() for k in (4, 12)]
    assert grids[0] != grids[1] and (run / "samples" / "latest.png").read_bytes() == grids[1]
    (run / "eval.json").write_text('{"coverage": 0.5}')  # (as a demo run's end writes it)
    Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)  # from latest.pt: nothing past it
    assert (run / "eval.json").exists() and "step 12 of 12" in (run / "report.html").read_text()
    Trainer(tiny_cfg(run, data, **kw), progress=False, resume=True, epoch=1)  # before any iteration:
    assert (run / "samples" / "latest.png").read_bytes() == grids[0]
    assert not (run / "eval.json").exists()
    page = (run / "report.html").read_text()
    # (the run's length as its page recorded it: the resumed run's, which train() writes again as it starts)
    assert "step 4 of 12 (epoch 1 of 3)" in page and "step_0000006.png" not in page and "step_0000004.png" in page
    assert ">G_L1 <tspan class=\"v\">4</tspan>" in page  # the kept log's last value, step 4's (G_L1 = k)


def _files(folder):
    """{path below folder: bytes} of every file under it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_going_back_sets_the_later_checkpoints_aside_and_refuses_them_by_epoch(tmp_path, data, capsys):
    # 3 epochs of 4 steps, a checkpoint each; then back to epoch 1. Left where they were, epoch_2.pt and
    # epoch_3.pt of the abandoned continuation were taken for this run's until it wrote them again:
    # --resume --epoch 3 went on along the abandoned one, evaluate --epoch all measured both mixed.
    from bicyclegan.engine.checkpoint import find_checkpoint
    run, ckpts = tmp_path / "r", tmp_path / "r" / "checkpoints"
    kw = dict(niter=2, niter_decay=1, log_every=1, save_every=100, sample_every=100, save_epoch_freq=1)
    stand_in(t := Trainer(tiny_cfg(run, data, **kw), progress=False))
    t.train()
    before = _files(ckpts)
    capsys.readouterr()
    t = Trainer(tiny_cfg(run, data, **kw), resume=True, epoch=1, progress=False)
    aside = ckpts / "abandoned_after_step_4"
    # nothing lost: the three later files, byte for byte, in a folder named after the step gone back to
    assert _files(aside) == {k: before[k] for k in ("epoch_2.pt", "epoch_3.pt", "latest.pt")}
    assert sorted(p.name for p in ckpts.glob("*.pt")) == ["epoch_1.pt", "latest.pt"]
    assert (ckpts / "epoch_1.pt").read_bytes() == before["epoch_1.pt"]
    said = capsys.readouterr().err
    assert said == (f"note: epoch_1.pt is at step 4; the checkpoints written past it (epoch_2.pt, epoch_3.pt, "
                    f"latest.pt) are moved to {aside}, so that those in {ckpts} are this run's (train on from "
                    f"one of them with --resume FILE --out NEW; resume=FILE, a new out in Python)\n")
    # an epoch of the abandoned continuation, asked for by number, is refused and said where it is
    for ask in (lambda: Trainer(tiny_cfg(run, data, **kw), resume=True, epoch=3, progress=False),
                lambda: find_checkpoint(run, 3)):
        with pytest.raises(CheckpointError, match=rf"no checkpoint for epoch 3 in {ckpts}: epochs saved there: 1; "
                                                  rf"{aside / 'epoch_3.pt'} belongs to a continuation the run "
                                                  rf"abandoned .*--resume FILE --out NEW; resume=FILE, a new out "
                                                  rf"in Python\)$"):
            ask()
    # the run goes on and writes its own later epochs; the abandoned ones stay as they were
    t = Trainer(tiny_cfg(run, data, **kw), resume=True, epoch=1, progress=False)  # (the one above never trained)
    # an error before its first save says to resume from the file it resumed from, as a Python caller gives it too
    assert t._intact().endswith(f"resume it with --resume {ckpts / 'epoch_1.pt'} "
                                f"(resume={str(ckpts / 'epoch_1.pt')!r} in Python)")
    assert not (ckpts / "abandoned_after_step_4_2").exists()  # nothing past step 4 to move this time
    stand_in(t)
    t.train()
    assert [_step_of(ckpts / f"epoch_{e}.pt") for e in (1, 2, 3)] == [4, 8, 12]
    assert _files(aside) == {k: before[k] for k in ("epoch_2.pt", "epoch_3.pt", "latest.pt")}
    # gone back to step 4 again: a second folder, the first kept
    Trainer(tiny_cfg(run, data, **kw), resume=True, epoch=1, progress=False)
    assert sorted(p.name for p in (ckpts / "abandoned_after_step_4_2").iterdir()) == [
        "epoch_2.pt", "epoch_3.pt", "latest.pt"]
    assert _files(aside) == {k: before[k] for k in ("epoch_2.pt", "epoch_3.pt", "latest.pt")}


def test_going_back_keeps_an_unreadable_latest_pt_aside(tmp_path, data):
    # latest.pt damaged (its step unknown): the resume from epoch_3.pt kept it, not replaced it with a copy
    run, ckpts = tmp_path / "r", tmp_path / "r" / "checkpoints"
    kw = dict(niter=2, niter_decay=1, log_every=1, save_every=100, sample_every=100, save_epoch_freq=1)
    stand_in(t := Trainer(tiny_cfg(run, data, **kw), progress=False))
    t.train()
    (ckpts / "latest.pt").write_bytes(b"not a checkpoint")
    Trainer(tiny_cfg(run, data, **kw), resume=True, epoch=3, progress=False)
    assert (ckpts / "abandoned_after_step_12" / "latest.pt").read_bytes() == b"not a checkpoint"
    assert (ckpts / "latest.pt").read_bytes() == (ckpts / "epoch_3.pt").read_bytes()


def test_a_resume_from_the_latest_checkpoint_moves_nothing(tmp_path, data, capsys):
    # Stopped at step 6 (epoch_1.pt at 4, latest.pt at 6): a plain resume goes on from the newest.
    run, ckpts = tmp_path / "r", tmp_path / "r" / "checkpoints"
    kw = dict(niter=2, niter_decay=1, log_every=1, save_every=100, sample_every=100, save_epoch_freq=1)
    stand_in(t := Trainer(tiny_cfg(run, data, max_steps=6, **kw), progress=False))
    t.train()
    before = _files(ckpts)
    capsys.readouterr()
    t = Trainer(tiny_cfg(run, data, **kw), resume=True, progress=False)
    assert t.step == 6 and _files(ckpts) == before and capsys.readouterr().err == ""
    stand_in(t)
    t.train()
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "latest.pt"]
    assert (ckpts / "epoch_1.pt").read_bytes() == before["epoch_1.pt"]


# -- a refused start changes nothing: the checks of a start come before its first write to the run folder --
def _tree(folder):
    """{path below folder: (its bytes, None for a folder; its modification time)}: what a refused start leaves."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def gone_back(tmp_path_factory, data):
    """A run of 3 epochs of 4 steps (a checkpoint each, grids at 3, 6, 9, 12), an evaluation line per epoch and a
    TensorBoard folder: a resume from epoch_1.pt (step 4) sets aside epoch_2.pt, epoch_3.pt and latest.pt, drops
    the grids and log lines past step 4 and copies epoch_1.pt to latest.pt, unless its start is refused."""
    run = tmp_path_factory.mktemp("gone_back") / "r"
    stand_in(t := Trainer(tiny_cfg(run, data, **GONE_BACK), progress=False))
    t.train()
    rows = [{"step": s, "epoch": s // 4 - 1, "split": "test", "metrics": ["l1"], "n_inputs": 4, "n_samples": 1,
             "seed": 0} for s in (4, 8, 12)]
    (run / "eval_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "tensorboard").mkdir()
    return run


GONE_BACK = dict(niter=2, niter_decay=1, log_every=1, save_every=100, sample_every=3, save_epoch_freq=1)


def _no_palettes(data, tmp_path):
    """A copy of the demo data without test/palettes.json: a held-out split of the user's (no palette metric)."""
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "test" / "palettes.json").unlink()
    return copy


def _bad_grids(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "test" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return copy


def _best_by_coverage(run):
    from bicyclegan.engine.checkpoint import read_checkpoint, write_state
    state = read_checkpoint(run / "checkpoints" / "epoch_1.pt")
    state["best"] = {"measure": "coverage", "value": 0.5, "step": 4}
    write_state(state, run / "checkpoints" / "best.pt")


def _tensorboard_missing(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # (its import raises ImportError)


# name: (options, what the data is, what the run folder gets, the refusal's start (its type, its text))
REFUSED_AFTER_CHECKS = {
    "grids' split": (dict(), _bad_grids, None, (DatasetError, "1 bad file(s) in {data}/test")),
    "keep_best's measure": (dict(eval_every=1, keep_best="coverage"), _no_palettes, None,
                            (ConfigError, "keep_best=coverage is measured by the metric palette, and this run's "
                                          "evaluations measure l1")),
    "the evaluation's options": (dict(eval_every=1, eval_metrics="palette"), _no_palettes, None,
                                 (ConfigError, "the evaluations during training (--eval_every 1): metrics=palette "
                                               "needs the demo data")),
    "the evaluations so far": (dict(eval_every=1), None, None,
                               (ConfigError, "the run's evaluations so far ({run}/eval_log.jsonl, up to step 4) "
                                             "measured metrics ['l1']")),
    "best.pt's measure": (dict(eval_every=1, eval_metrics="l1,palette", keep_best="encoded_l1"), None,
                          _best_by_coverage, (ConfigError, "keep_best=encoded_l1, and the run's checkpoints/best.pt "
                                                           "(step 4) was kept by coverage")),
    "TensorBoard's package": (dict(), None, "tensorboard",
                              (ConfigError, "{run} logs to TensorBoard ({run}/tensorboard), which needs the "
                                            "tensorboard package")),
}


@pytest.mark.parametrize("case", list(REFUSED_AFTER_CHECKS))
def test_a_refused_resume_leaves_the_run_folder_as_it_was(tmp_path, data, gone_back, monkeypatch, capsys, case):
    # Each refusal came after the resume had set aside epoch_2.pt, epoch_3.pt and latest.pt, cut the logs and the
    # grids back to step 4 and replaced latest.pt: "refused" said of a run folder already changed.
    options, data_of, run_gets, (error, said) = REFUSED_AFTER_CHECKS[case]
    run = tmp_path / "r"
    shutil.copytree(gone_back, run)
    data = data_of(data, tmp_path) if data_of else data
    if run_gets == "tensorboard":
        _tensorboard_missing(monkeypatch)
    elif run_gets:
        run_gets(run)
    if case != "the evaluations so far":
        (run / "eval_log.jsonl").unlink()  # (of l1 alone: compared, it would refuse the others first)
    before = _tree(run)
    capsys.readouterr()
    with pytest.raises(error) as refused:
        Trainer(tiny_cfg(run, data, **GONE_BACK, **options), resume=True, epoch=1, progress=False)
    assert str(refused.value).startswith(said.format(run=run, data=data)), str(refused.value)
    assert _tree(run) == before
    assert "are moved to" not in capsys.readouterr().err  # (nothing was moved)


def test_the_resume_refused_above_changes_the_folder_once_it_passes(tmp_path, data, gone_back):
    # The control of the test above: the same resume, unrefused, does each of the writes it checks for.
    run, ckpts = tmp_path / "r", tmp_path / "r" / "checkpoints"
    shutil.copytree(gone_back, run)
    before = _tree(run)
    Trainer(tiny_cfg(run, data, **GONE_BACK), resume=True, epoch=1, progress=False)
    after = _tree(run)
    assert sorted(p.name for p in (ckpts / "abandoned_after_step_4").iterdir()) == ["epoch_2.pt", "epoch_3.pt",
                                                                                    "latest.pt"]
    assert after["checkpoints/latest.pt"][0] == before["checkpoints/epoch_1.pt"][0]
    assert [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert [json.loads(ln)["step"] for ln in (run / "eval_log.jsonl").read_text().splitlines()] == [4]
    assert set(before) - set(after) == {f"samples/step_{s:07d}.png" for s in (6, 9, 12)} | {
        f"checkpoints/{name}" for name in ("epoch_2.pt", "epoch_3.pt")}


def _bad_train(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "train" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return copy


def _of_48_px(data, tmp_path):
    return make_demo_dataset(tmp_path / "data", n_train=4, n_test=2, size=48, seed=0)  # not a multiple of 32


# name: (options, what the data is, the refusal's start (its type, its text)): refusals after the run folder is made
REFUSED_FRESH = {
    "the training data": (dict(), _bad_train, (DatasetError, "1 bad file(s) in {data}/train")),
    "the schedule": (dict(max_steps=9), None, (ConfigError, "max_steps=9 runs past the learning-rate schedule")),
    "the U-Net's sizes": (dict(), _of_48_px, (ConfigError, "preprocess=none makes the training images 48x48")),
    "grids' split": (dict(), _bad_grids, (DatasetError, "1 bad file(s) in {data}/test")),
    "keep_best's measure": (dict(eval_every=1, keep_best="coverage"), _no_palettes,
                            (ConfigError, "keep_best=coverage is measured by the metric palette")),
    "the evaluation's options": (dict(eval_every=1, eval_metrics="palette"), _no_palettes,
                                 (ConfigError, "the evaluations during training (--eval_every 1): metrics=palette")),
    "TensorBoard's package": (dict(tensorboard=True), None, (ConfigError, "--tensorboard needs the tensorboard "
                                                                          "package")),
}


@pytest.mark.parametrize("case", list(REFUSED_FRESH))
def test_a_refused_new_run_leaves_no_run_folder(tmp_path, data, monkeypatch, case):
    # --out of folders that do not exist yet: the start makes them (and its lock file) before these checks, and
    # removes what it made on their refusal, the folders above the run's included.
    options, data_of, (error, said) = REFUSED_FRESH[case]
    data = data_of(data, tmp_path) if data_of else data
    tensorboard = options.pop("tensorboard", None) if "tensorboard" in options else None
    if tensorboard:
        _tensorboard_missing(monkeypatch)
    out = tmp_path / "runs" / "today" / "r"
    with pytest.raises(error) as refused:
        Trainer(tiny_cfg(out, data, **options), progress=False, tensorboard=tensorboard)
    assert str(refused.value).startswith(said.format(data=data)), str(refused.value)
    assert not (tmp_path / "runs").exists()


def test_a_run_stopped_before_its_first_checkpoint_says_to_delete_its_folder(tmp_path, data):
    # "no checkpoint was written before it: start the run again", and the same command again was refused (the
    # folder holds a run that never saved).
    from tiny import BROKEN_PNG
    broken = shutil.copytree(data, tmp_path / "data")
    run = tmp_path / "r"
    t = Trainer(tiny_cfg(run, broken, max_steps=4, save_every=100, sample_every=100), progress=False)
    for f in (broken / "train").glob("*.png"):  # after the checks, before step 1 (a later stop saves its step)
        f.write_bytes(BROKEN_PNG)
    with pytest.raises(DatasetError, match=f"no checkpoint was written before it: delete {run} and start the run "
                                           r"again \(with --skip_bad"):
        t.train()
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        Trainer(tiny_cfg(run, data, max_steps=4), progress=False)
    shutil.rmtree(run)  # as said
    Trainer(tiny_cfg(run, data, max_steps=2, save_every=100, sample_every=100), progress=False).train()


def test_grids_to_keep_by_hand_and_as_a_run_thins_them():
    from bicyclegan.engine.report import grids_to_keep
    steps = list(range(100, 1001, 100))
    # by hand: every 100 (10 grids), every 200 (6 with the first), every 400: 100, 400, 800 and the last
    assert grids_to_keep(steps, 4) == [100, 400, 800, 1000]
    assert grids_to_keep(steps, 10) == steps and grids_to_keep(steps, 1) == [1000]
    assert grids_to_keep([3, 100, 200, 250], 3) == [3, 200, 250]  # off-grid ends (a stop's) kept as ends
    # Thinned after each grid, as the trainer does, the run keeps (at least) what a choice from all of them would:
    # nothing removed is wanted again, and (for these) the kept ones are evenly spread over the whole run.
    for k in (2, 3, 5, 8):
        kept = []
        for n in range(1, 200):
            kept = grids_to_keep(kept + [10 * n], k)
            assert set(grids_to_keep([10 * i for i in range(1, n + 1)], k)) <= set(kept), (k, n)
            assert len(kept) <= k
        # between the first and the last, every multiple of one unit (a power of two intervals), up to the end
        assert kept[0] == 10 and kept[-1] == 1990
        if k > 2:
            unit = kept[1]
            assert unit % 10 == 0 and ((unit // 10) & (unit // 10 - 1)) == 0, (k, kept)
            assert kept[1:-1] == list(range(unit, 1990, unit)), (k, kept)


def grids_kept(run, data, resume=False, **kw):
    """Train (or resume) a stand-in run that keeps at most 3 grids; the names of the step_N.png it leaves."""
    t = Trainer(tiny_cfg(run, data, save_every=5, keep_grids=3, niter=5, **kw), resume=resume, progress=False)
    stand_in(t)
    t.train()
    return sorted(p.name for p in (run / "samples").glob("step_*.png"))


def test_keep_grids_bounds_the_sample_grids_of_a_run_and_its_resume(tmp_path, data):
    # A grid every sample interval, none ever removed: the reference's edges2shoes schedule wrote ~3,000 (6-9 GB).
    run = tmp_path / "r"
    names = grids_kept(run, data, max_steps=10, sample_every=1)
    assert names == ["step_0000001.png", "step_0000008.png", "step_0000010.png"]  # 1, 2, 4, 8 apart: 8 fits
    assert (run / "samples" / "latest.png").read_bytes() == (run / "samples" / "step_0000010.png").read_bytes()
    page = (run / "report.html").read_text()
    assert "step_0000010.png" in page and "step_0000002.png" not in page
    names = grids_kept(run, data, resume=True, max_steps=20, sample_every=1)
    assert names == ["step_0000001.png", "step_0000016.png", "step_0000020.png"]


def test_keep_grids_counts_grids_of_an_interval_changed_on_resume(tmp_path, data):
    # Thinned by the run's sample_every, grids of the interval before a resume were off its grid: after one new grid
    # 8 of 10 allowed ones were gone. By hand: steps 1, 8, 10 kept of every step (interval 1); then every 3 steps:
    # 12 (1 8 10 12: their divisor 2, every 4th: 1 8 12), 15 (1 8 12 15: 4, every 8th: 1 8 15), 18 (1 8 15 18: 1,
    # every 2nd: 1 8 18), the end 19 (1 8 18 19: 2, every 4th: 1 8 19).
    from bicyclegan.engine.report import grids_to_keep
    assert grids_to_keep(list(range(500, 5001, 500)) + [5600], 10) == [500, 1000, 2000, 3000, 4000, 5000, 5600]
    run = tmp_path / "r"
    grids_kept(run, data, max_steps=10, sample_every=1)
    names = grids_kept(run, data, resume=True, max_steps=19, sample_every=3)
    assert names == ["step_0000001.png", "step_0000008.png", "step_0000019.png"]
