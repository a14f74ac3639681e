"""Stopping a training by signal: the first SIGINT, SIGTERM or SIGHUP ends the iteration in progress
(under torchrun: the ranks go on to the next log interval, where they agree), writes
checkpoints/latest.pt and the report, and stops with TrainingStopped (SIGTERM, SIGHUP) or a
KeyboardInterrupt caused by one (SIGINT); main() returns 143 / 129 / 130 with one line, and the command
then dies of the signal.
In-process runs send the signals from a stand-in step at known steps; subprocess runs send real
ones to the command, its loader workers included (the terminal's Ctrl-C reaches the whole process
group), to a torchrun launch, and close the command's terminal."""
import contextlib
import copy
import errno
import gc
import json
import logging
import multiprocessing
import os
import pickle
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from test_distributed import (
    _free_port,
    _torchrun_env,
    gloo_failed_to_connect,
    spawn_ranks,
    torchrun_cli,
    torchrun_command,
)
from tiny import tiny_cfg

from bicyclegan.engine import CheckpointError, Trainer, TrainingStopped, stopped_by
from bicyclegan.engine import trainer as trainer_module
from bicyclegan.engine.checkpoint import read_checkpoint
from bicyclegan.engine.runtime import Dist
from bicyclegan.engine.trainer import mean_over_ranks, train_launch
from bicyclegan.pipelines import make_demo_dataset
from bicyclegan.pipelines.atomic import temp_files

TERM, INT, HUP = signal.SIGTERM, signal.SIGINT, signal.SIGHUP


@pytest.fixture(autouse=True)
def _sigterm_fails_the_test():
    """A SIGTERM or SIGHUP that reaches the test process's own handler (no handler of the trainer took it:
    a regression) fails the test, where their default would end pytest."""
    def unexpected(signum, frame):
        raise AssertionError(f"a {signal.Signals(signum).name} reached the process's own handler")
    previous = {sig: signal.signal(sig, unexpected) for sig in (TERM, HUP)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _sigint_as_in_a_terminal():
    """pytest-xdist's workers (`make test`) ignore SIGINT, as a background job does, and a process
    started from one inherits that: the trainer then leaves SIGINT ignored, as it should. The tests
    are of a terminal's process, where Ctrl-C raises KeyboardInterrupt and a child starts with
    SIGINT's default (a Python handler, unlike SIG_IGN, does not outlive exec)."""
    previous = signal.signal(INT, signal.default_int_handler)
    yield
    signal.signal(INT, previous)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=4, size=32, seed=0)


def stand_in(trainer, at=None, send=()):
    """Replace the training step: step k (from 1) returns the losses G_L1 = k, D = 2k, and step `at`
    sends each signal of `send` to this process, one after the other, in its middle."""
    def step(batch):
        k = trainer.step + 1
        if k == at:
            for sig in send:
                os.kill(os.getpid(), sig)
        return {"G_L1": torch.tensor(float(k)), "D": torch.tensor(2.0 * k)}
    trainer.model.train_step = step


RUN = dict(max_steps=10, niter=2, niter_decay=1, sample_every=100, save_every=100)  # 4 steps an epoch


def trainer(run, data, at=None, send=(), **kw):
    t = Trainer(tiny_cfg(run, data, **{**RUN, **kw}), progress=False)
    stand_in(t, at, send)
    return t


def logged(run):
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def handlers():
    return signal.getsignal(INT), signal.getsignal(TERM), signal.getsignal(HUP)


# -- one process --------------------------------------------------------------------------------------
def test_sigterm_ends_the_iteration_in_progress_saves_and_raises_training_stopped(tmp_path, data):
    run = tmp_path / "r"
    before = handlers()
    with pytest.raises(TrainingStopped) as stop:
        trainer(run, data, at=3, send=[TERM], log_every=4).train()
    e, ckpt = stop.value, run / "checkpoints" / "latest.pt"
    assert (e.signal, e.step, e.epoch, e.checkpoint) == (TERM, 3, 0, ckpt)
    assert str(e) == (f"stopped by SIGTERM at step 3 (epoch 1): checkpoint written to {ckpt} (resume=True resumes "
                      f"it in Python); resume with "
                      f"bicyclegan train --out {run} --resume")
    state = read_checkpoint(ckpt)  # whole, its digest checked
    assert state["step"] == 3
    # No log line yet (every 4 steps): the interval's sums ride in the checkpoint, 1+2+3 and 2+4+6.
    assert state["log_interval"]["count"] == 3
    assert {k: float(v) for k, v in state["log_interval"]["sums"].items()} == {"G_L1": 6.0, "D": 12.0}
    assert logged(run) == []
    assert "step 3 of 10 (epoch 1 of 3)" in (run / "report.html").read_text()  # only the stop wrote it
    assert handlers() == before
    # The resumed run's first line averages steps 1-4, as an uninterrupted run's does.
    resumed = Trainer(tiny_cfg(run, data, **{**RUN, "max_steps": 4, "log_every": 4}), resume=True, progress=False)
    stand_in(resumed)
    resumed.train()
    (line,) = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert (line["step"], line["G_L1"], line["D"]) == (4, 2.5, 5.0)


def test_sigint_raises_a_keyboard_interrupt_caused_by_the_stop(tmp_path, data):
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt) as stop:
        trainer(run, data, at=2, send=[INT]).train()
    e = stopped_by(stop.value)
    assert isinstance(stop.value.__cause__, TrainingStopped) and e is stop.value.__cause__
    assert (e.signal, e.step) == (INT, 2) and str(stop.value) == str(e)
    assert str(e).startswith("stopped by SIGINT at step 2 (epoch 1): ")
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2 and logged(run) == [1, 2]
    assert stopped_by(KeyboardInterrupt()) is None and stopped_by(ValueError()) is None


def test_a_hang_up_stops_as_a_sigterm_does(tmp_path, data):
    # The terminal closed (an ssh connection dropped, without nohup or tmux): SIGHUP's default ended the
    # run at once, the steps since its last checkpoint lost (15 of them in a demo run's first seconds).
    run = tmp_path / "r"
    with pytest.raises(TrainingStopped) as stop:
        trainer(run, data, at=3, send=[HUP, TERM], log_every=4).train()  # (the second changes nothing)
    assert (stop.value.signal, stop.value.step) == (HUP, 3)
    assert str(stop.value).startswith("stopped by SIGHUP at step 3 (epoch 1): checkpoint written to ")
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 3


def test_training_stopped_crosses_a_process_boundary():
    # Pickled as a process pool, or a SLURM launcher's result file, returns an exception: it was
    # unpickled by calling TrainingStopped(message), a TypeError that hid the stop.
    e = TrainingStopped(TERM, 3, 0, Path("r/checkpoints/latest.pt"), Path("r"))
    for back in (pickle.loads(pickle.dumps(e)), copy.copy(e)):
        assert type(back) is TrainingStopped and (back.signal, back.step, back.epoch, back.checkpoint) == \
            (TERM, 3, 0, Path("r/checkpoints/latest.pt"))
        assert str(back) == ("stopped by SIGTERM at step 3 (epoch 1): checkpoint written to r/checkpoints/latest.pt "
                             "(resume=True resumes it in Python); resume with bicyclegan train --out r --resume")



def test_the_resume_command_a_stop_suggests_pastes_as_is_for_a_folder_with_a_space():
    # "--out my runs/x --resume" pasted into a shell was --out my, then a stray argument runs/x.
    e = TrainingStopped(TERM, 3, 0, Path("my runs/x/checkpoints/latest.pt"), Path("my runs/x"))
    suggested = str(e).split("resume with ", 1)[1]
    assert shlex.split(suggested) == ["bicyclegan", "train", "--out", "my runs/x", "--resume"]

def test_a_stop_under_torchrun_says_the_torchrun_launch_that_resumes_it(monkeypatch):
    # "resume with bicyclegan train --out r --resume" was said to a run of 2 processes: one process, which
    # the run's checkpoint refuses (written by a run of 2 process(es), this one has 1).
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    e = TrainingStopped(TERM, 3, 0, Path("r/checkpoints/latest.pt"), Path("r"), train_launch(2))
    assert str(e).endswith("; resume with torchrun --nproc_per_node 2 -m bicyclegan.engine.cli train --out r --resume")
    assert str(pickle.loads(pickle.dumps(e))) == str(e)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # two machines of 4
    assert train_launch(8) == ("torchrun --nnodes 2 --nproc_per_node 4 (and this launch's rendezvous options) "
                               "-m bicyclegan.engine.cli train")
    assert train_launch(1) == "bicyclegan train"


def test_the_readmes_stop_line_is_the_one_printed():
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    said = re.search(r"ends by the signal \(the shell's status (\d+); SIGTERM: (\d+), SIGHUP: (\d+); [^)]*\) with one "
                     r"line, `(stopped by [^`]+)`", readme)
    assert said and (int(said[1]), int(said[2]), int(said[3])) == (128 + INT, 128 + TERM, 128 + HUP)
    # N, E: numbers; ...: the checkpoint; X: the run folder
    pattern = "".join(r"\d+" if part in ("N", "E") else r"\S+" if part in ("...", "X") else re.escape(part)
                      for part in re.split(r"(\b[NEX]\b|\.\.\.)", said[4]))
    e = TrainingStopped(TERM, 12, 1, Path("runs/mine/checkpoints/latest.pt"), Path("runs/mine"))
    assert re.fullmatch(pattern, str(e)), (pattern, str(e))


def test_a_second_sigterm_changes_nothing(tmp_path, data):
    # SLURM signals every process of a job step, and torchrun its ranks too: a rank gets two.
    with pytest.raises(TrainingStopped) as stop:
        trainer(tmp_path / "r", data, at=3, send=[TERM, TERM]).train()
    assert stop.value.step == 3


@pytest.mark.parametrize("first", [INT, TERM])
def test_a_second_sigint_aborts_at_once(tmp_path, data, first):
    run, before = tmp_path / "r", handlers()
    t = trainer(run, data, at=3, send=[first, INT], save_every=2)
    with pytest.raises(KeyboardInterrupt) as stop:
        t.train()
    assert stopped_by(stop.value) is None  # today's Ctrl-C: the CLI says the latest checkpoint is intact
    assert handlers() == before  # restored on this way out too
    assert t.step == 2  # raised inside step 3, which never finished
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2


class _ClosedPipe:
    """A stream whose reader goes away after `lines` writes (`train ... | head -n 3`)."""

    def __init__(self, lines):
        self.lines, self.written = lines, []

    def write(self, text):
        if len(self.written) >= self.lines:
            raise BrokenPipeError(32, "Broken pipe")
        self.written.append(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def test_a_closed_output_stops_the_run_as_a_sigterm_does_its_checkpoint_written(tmp_path, data):
    # `train ... | head -n 3`: the progress line's write raised BrokenPipeError out of the training step; the
    # command ended with status 1 and not a word, the steps since the last checkpoint lost.
    run = tmp_path / "r"
    t = trainer(run, data, log_every=1, save_every=100)
    t.progress.enabled, t.progress.stream = True, _ClosedPipe(lines=4)  # two notes, steps 1 and 2
    with pytest.raises(TrainingStopped) as stop:
        t.train()
    assert (stop.value.signal, stop.value.step) == (TERM, 3)  # the write of step 3's line broke
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 3 and logged(run) == [1, 2, 3]
    assert len(t.progress.stream.written) == 4 and not t.progress.enabled and not t.progress.notes


class _HungUpTerminal(_ClosedPipe):
    """A terminal closed after `lines` writes: writing to it fails with EIO, as a tty does after its hang-up."""

    def write(self, text):
        if len(self.written) >= self.lines:
            raise OSError(errno.EIO, "Input/output error")
        self.written.append(text)

    def isatty(self):
        return True


def test_a_closed_terminal_stops_the_run_as_a_sigterm_does_its_checkpoint_written(tmp_path, data):
    # After a hang-up the progress line's write raised OSError (EIO) out of the training step: the run ended with
    # a traceback to no one, the steps since the last checkpoint lost (where SIGHUP came with the terminal's
    # closing, it is the stop's signal; where the process ignored it, nohup-less but detached, this stops it).
    run = tmp_path / "r"
    t = trainer(run, data, log_every=1, save_every=100)
    t.progress.enabled, t.progress.stream = True, _HungUpTerminal(lines=4)
    t.progress.tty = True
    with pytest.raises(TrainingStopped) as stop:
        t.train()
    assert (stop.value.signal, stop.value.step) == (TERM, 3)
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 3 and logged(run) == [1, 2, 3]
    assert not t.progress.enabled and not t.progress.notes
    other = _HungUpTerminal(lines=0)
    other.write = lambda text: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
    t = trainer(tmp_path / "s", data, log_every=1, save_every=100)
    t.progress.enabled, t.progress.stream = True, other
    with pytest.raises(OSError, match="No space"):  # another error of the stream is not a closed output
        t.train()


def test_a_command_whose_output_closes_ends_quietly_with_sigpipes_status(tmp_path, monkeypatch, capsys):
    # Where a command printed (the run folder's lines at the end, a table), the BrokenPipeError was a traceback.
    from bicyclegan.engine import cli, io

    def prints(args):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(cli, "cmd_make_demo", prints)
    pointed = []
    monkeypatch.setattr(io, "to_devnull", pointed.append)
    assert cli.main(["make-demo", str(tmp_path / "d")]) == 128 + signal.SIGPIPE
    assert pointed == [sys.stdout, sys.stderr] and capsys.readouterr().err == ""


def test_a_signal_during_start_up_stops_after_the_first_iteration(tmp_path, data):
    # Sent while the loader starts its epoch, before any batch: one iteration, then the stop, so the
    # run always leaves a checkpoint to resume from (and a resumed run's is at its next step).
    for run, start in ((tmp_path / "new", 0), (tmp_path / "new", 1)):
        t = trainer(run, data) if start == 0 else Trainer(tiny_cfg(run, data, **RUN), resume=True, progress=False)
        stand_in(t)
        set_epoch = t.loader.set_epoch

        def starting(*args):
            os.kill(os.getpid(), TERM)
            return set_epoch(*args)
        t.loader.set_epoch = starting
        with pytest.raises(TrainingStopped) as stop:
            t.train()
        assert stop.value.step == start + 1
        assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == start + 1


def signal_in_saves(monkeypatch, sig):
    """Each checkpoint's save sends `sig` to this process as it starts."""
    save = trainer_module.save_checkpoint

    def signalled(model, path, **kw):
        os.kill(os.getpid(), sig)
        return save(model, path, **kw)
    monkeypatch.setattr(trainer_module, "save_checkpoint", signalled)


def test_a_signal_during_a_save_lets_the_save_finish(tmp_path, data, monkeypatch):
    run = tmp_path / "r"
    signal_in_saves(monkeypatch, TERM)
    with pytest.raises(TrainingStopped) as stop:
        trainer(run, data, save_every=2).train()
    assert stop.value.step == 2 and read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 2


@pytest.mark.parametrize("sigints", [1, 2])
def test_a_second_sigint_during_a_save_stops_once_the_checkpoint_is_written(tmp_path, data, monkeypatch, sigints):
    """A second Ctrl-C in the middle of the stop's checkpoint write: raised there, torch's writer (C++) took the
    KeyboardInterrupt as its own error (the process aborted, or stopped saying the checkpoint could not be
    written). It is raised once the write is done: that checkpoint is whole and the latest. A third Ctrl-C
    (a write that hangs) leaves at once, the checkpoint before intact."""
    run = tmp_path / "r"
    t = trainer(run, data, at=3, send=[TERM], save_every=2)
    ckpt = run / "checkpoints" / "latest.pt"
    real_save, cut = torch.save, []

    def interrupted(obj, f, *a, **k):
        if obj["step"] == 3:  # the stop's save, half written
            f.write(b"partial")
            cut.append(ckpt.read_bytes())
            for _ in range(sigints):
                os.kill(os.getpid(), INT)
            f.seek(0)
            f.truncate()
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt) as stop:
        t.train()
    assert stopped_by(stop.value) is None and cut and temp_files(ckpt) == []
    if sigints == 1:
        assert read_checkpoint(ckpt)["step"] == 3  # written whole, then the interrupt
    else:
        assert ckpt.read_bytes() == cut[0] and read_checkpoint(ckpt)["step"] == 2


def test_a_signal_after_the_last_check_goes_to_the_handler_it_replaced(tmp_path, data, monkeypatch):
    # Sent during the final save (10 steps, save_every 100: the one save): the run is complete, it
    # returns, and the signal then reaches the handler there was (here a recorder; SIGTERM's default
    # would end the process), rather than being lost.
    got = []
    signal_in_saves(monkeypatch, TERM)
    previous = signal.signal(TERM, lambda signum, frame: got.append(signum))
    try:
        run = trainer(tmp_path / "r", data).train()
    finally:
        signal.signal(TERM, previous)
    assert got == [TERM] and read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 10


def test_a_ctrl_c_after_the_last_check_says_the_run_is_complete(tmp_path, data, monkeypatch):
    # SIGINT's own handler raised an empty KeyboardInterrupt: a notebook showed nothing of the complete run
    signal_in_saves(monkeypatch, INT)
    with pytest.raises(KeyboardInterrupt) as stop:
        trainer(tmp_path / "r", data).train()
    assert str(stop.value) == f"interrupted after the last iteration: the run is complete ({tmp_path / 'r'}, step 10)"
    assert stopped_by(stop.value) is None
    assert read_checkpoint(tmp_path / "r" / "checkpoints" / "latest.pt")["step"] == 10


def test_request_stop_stops_a_training_in_another_thread_with_its_checkpoint(tmp_path, data):
    """A training in a notebook's thread: no signal reaches it (Python handles them in the main thread alone), and
    only a restart of the kernel ended it, the steps since its last checkpoint lost."""
    t = trainer(tmp_path / "r", data, max_steps=100_000, niter=50_000, niter_decay=50_000, log_every=1)
    ended = []
    thread = threading.Thread(target=lambda: ended.append(_raised(t.train)))
    thread.start()
    _wait_for_log(tmp_path / "r", thread_proc(thread), 2)
    t.request_stop()
    thread.join(60)
    (e,) = ended
    assert isinstance(e, TrainingStopped) and e.signal == TERM, e
    assert read_checkpoint(tmp_path / "r" / "checkpoints" / "latest.pt")["step"] == e.step >= 2
    early = trainer(tmp_path / "s", data)  # asked before it trains: after its first iteration
    early.request_stop()
    with pytest.raises(TrainingStopped) as stop:
        early.train()
    assert stop.value.step == 1


def test_a_stop_asked_of_a_run_with_nothing_left_to_train_passes_no_signal_on(tmp_path, data):
    # The request, recorded as a SIGTERM, was raised as one after the (nothing left to train) run: it killed the
    # process (a notebook's kernel), which no signal had reached
    Trainer(tiny_cfg(tmp_path / "r", data, **RUN), progress=False).train()
    got = []
    previous = signal.signal(TERM, lambda signum, frame: got.append(signum))  # (in place of the default: death)
    try:
        done = Trainer(tiny_cfg(tmp_path / "r", data, **RUN), resume=True, progress=False)
        done.request_stop()
        assert done.train() == tmp_path / "r"
    finally:
        signal.signal(TERM, previous)
    assert got == []


def _raised(call):
    try:
        call()
    except BaseException as e:
        return e


def thread_proc(thread):
    """A thread as _wait_for_log's process: poll() None while it runs."""
    return type("P", (), {"poll": lambda self: None if thread.is_alive() else 0, "communicate": lambda self: ""})()


def test_a_stopped_train_lets_go_of_the_training_in_the_traceback_a_notebook_keeps(tmp_path, data, monkeypatch):
    # IPython keeps the last traceback: its frames held the Trainer, the model, its optimizers and the last batch
    # until the next error (179 MB of a model of the reference's widths; a GPU's memory)
    made = []
    real_init = Trainer.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        made.extend([weakref.ref(self), weakref.ref(self.model)])
        stand_in(self, at=2, send=[TERM])
    monkeypatch.setattr(Trainer, "__init__", init)
    with pytest.raises(TrainingStopped) as stop:
        trainer_module.train(tiny_cfg(tmp_path / "r", data, **RUN), progress=False, evaluate=False)
    kept = stop.value  # (with its traceback, as a notebook keeps it)
    gc.collect()
    assert kept.__traceback__ is not None and len(made) == 2 and [ref() for ref in made] == [None, None]


def record_handlers(t, during):
    """t's steps append the SIGINT and SIGTERM handlers they run under to `during`."""
    step = t.model.train_step

    def recording(batch):
        during.append(handlers())
        return step(batch)
    t.model.train_step = recording


def test_handlers_are_installed_while_training_only_and_restored_on_every_exit(tmp_path, data):
    before, during = handlers(), []
    t = trainer(tmp_path / "a", data, max_steps=2)
    record_handlers(t, during)
    t.train()
    assert handlers() == before and len(during) == 2
    assert all(h == (t._stop._handle,) * 3 and h[0] != before[0] for h in during)

    def failing(batch):
        raise RuntimeError("a bug in the step")
    t = trainer(tmp_path / "b", data)
    t.model.train_step = failing
    with pytest.raises(RuntimeError, match="a bug in the step"):
        t.train()
    assert handlers() == before


def test_a_trainer_trains_once_and_a_new_one_continues_the_run(tmp_path, data):
    # A stopped Trainer (a notebook's Ctrl-C) had let go of the run folder: trained again, it trained
    # without holding it, beside any other training started into the folder meanwhile.
    run = tmp_path / "r"
    for stopped in (True, False):
        t = Trainer(tiny_cfg(run, data, **RUN), resume=not stopped, progress=False)
        stand_in(t, at=3 if stopped else None, send=[TERM])
        with pytest.raises(TrainingStopped) if stopped else contextlib.nullcontext():
            t.train()
        step = 3 if stopped else 10
        with pytest.raises(CheckpointError, match=re.escape(
                f"this Trainer has trained already ({run}, to step {step}) and let go of the folder: to train on, "
                f"make a new Trainer (resume=True continues from the run's checkpoint)")):
            t.train()
        assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == step  # nothing written


def test_trained_from_another_thread_the_process_keeps_its_handling(tmp_path, data):
    # Python runs signal handlers in the main thread alone (and refuses to set them elsewhere): a
    # training thread of a notebook installs none and trains as before.
    before, during, done = handlers(), [], []
    t = trainer(tmp_path / "r", data, max_steps=3)
    record_handlers(t, during)
    thread = threading.Thread(target=lambda: done.append(t.train()))
    thread.start()
    thread.join(60)
    assert done == [tmp_path / "r"] and during == [before] * 3 and handlers() == before


@pytest.mark.parametrize("sig", [INT, TERM, HUP])
def test_a_signal_the_process_ignores_stays_ignored(tmp_path, data, sig):
    # A script's background job (`bicyclegan train ... &`) starts with SIGINT ignored, so that the
    # script's Ctrl-C leaves it alone; Python keeps that, and so does the training (`nohup` ignores SIGHUP).
    previous = signal.signal(sig, signal.SIG_IGN)
    try:
        t = trainer(tmp_path / "r", data, at=3, send=[sig], max_steps=5)
        assert t.train() == tmp_path / "r"
        assert t.step == 5 and signal.getsignal(sig) is signal.SIG_IGN
    finally:
        signal.signal(sig, previous)


@pytest.mark.parametrize("send", [[], [TERM]])
def test_train_ends_the_group_after_a_stop_and_skips_the_demos_evaluation(tmp_path, data, monkeypatch, send):
    calls = []

    class Demo(Trainer):  # as on the demo data, whose runs end with their evaluation
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.is_demo = True
            stand_in(self, at=2, send=send)

        def evaluate(self):
            calls.append("evaluate")
    monkeypatch.setattr(trainer_module, "Trainer", Demo)
    monkeypatch.setattr(Dist, "close", lambda self: calls.append("close"))
    cfg = tiny_cfg(tmp_path / "r", data, **{**RUN, "max_steps": 4})
    if not send:
        trainer_module.train(cfg, progress=False)
        assert calls == ["close", "evaluate"]
        return
    with pytest.raises(TrainingStopped):
        trainer_module.train(cfg, progress=False)
    assert calls == ["close"]


# -- several ranks: the log interval's all-reduce carries the signals -------------------------------------
def test_mean_over_ranks_in_one_process_passes_its_signal_on():
    assert mean_over_ranks({"a": torch.tensor(2.0)}, 4, 1, TERM) == ({"a": 0.5}, TERM)


def test_ranks_stop_together_at_the_next_log_interval(tmp_path, data, monkeypatch, capsys):
    """Rank 0 of two, the other rank played by a stand-in all-reduce: it adds the other rank's losses
    (the same) and the signals the other rank received by then."""
    monkeypatch.setattr(trainer_module, "init_distributed", lambda device: Dist(rank=0, world=2))
    monkeypatch.setattr(dist, "all_gather_object", lambda out, obj: out.__setitem__(slice(None), [obj] * len(out)))
    cases = [  # (this rank's signal at step 5, the other rank's by step 8) -> the stop at 8, log_every 4
        ([TERM], None, TERM), ([], INT, INT), ([INT], TERM, TERM), ([], None, None)]
    for i, (mine, other, want) in enumerate(cases):
        def all_reduce(total, other=other, sent=trainer_module.StopSignals.SIGNALS):
            theirs = total.clone()
            theirs[-len(sent):] = 0
            if other is not None and float(total[0]) == (5 + 6 + 7 + 8):  # the interval ending at step 8
                theirs[-len(sent) + sent.index(other)] = 1
            total += theirs
        monkeypatch.setattr(dist, "all_reduce", all_reduce)
        run = tmp_path / f"r{i}"
        t = trainer(run, data, at=5, send=mine, log_every=4, max_steps=12, niter=3, niter_decay=3)
        if want is None:
            t.train()
            assert logged(run) == [4, 8, 12]
            continue
        with pytest.raises((TrainingStopped, KeyboardInterrupt)) as stop:
            t.train()
        assert (stopped_by(stop.value).signal, stopped_by(stop.value).step) == (want, 8)
        assert isinstance(stop.value, KeyboardInterrupt) == (want == INT)
        assert logged(run) == [4, 8] and read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 8
        told = "stopping at step 8, the next log interval (where the 2 processes agree), then saving"
        assert capsys.readouterr().err.count(f"{mine[0].name}: {told}" if mine else told) == len(mine)


@pytest.mark.parametrize("at, stop, told, eval_every", [
    (6, 8, 8, None), (8, 8, None, None), (9, 10, 10, None), (10, 10, None, None),
    (5, 6, 6, 3), (6, 6, None, 6), (7, 8, 8, 6)])  # (the evaluation of step 6 sees step 6's signal)
def test_rank_0_says_at_which_step_the_ranks_will_stop(tmp_path, data, monkeypatch, capsys, at, stop, told,
                                                       eval_every):
    """10 steps (2 an epoch), a log line every 4 and at the end (4, 8, 10); SIGTERM in step `at` (its training
    step, before the all-reduce). Received in an interval's last step, it rides in that step's
    all-reduce: the ranks stop there, and no later step is announced. An evaluation before the next
    log interval (eval_every) is where they agree (its first batch is given up)."""
    monkeypatch.setattr(trainer_module, "init_distributed", lambda device: Dist(rank=0, world=2))
    monkeypatch.setattr(dist, "all_gather_object", lambda out, obj: out.__setitem__(slice(None), [obj] * len(out)))
    monkeypatch.setattr(dist, "all_reduce", lambda total: total.__iadd__(torch.cat([total[:-2], total[-2:] * 0])))
    with pytest.raises(TrainingStopped) as e:
        trainer(tmp_path / "r", data, at=at, send=[TERM], log_every=4, niter=3, niter_decay=3,
                **(dict(eval_every=eval_every, eval_num=2, eval_metrics="l1") if eval_every else {})).train()
    assert e.value.step == stop
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "stopping at step" in ln]
    where = "evaluation" if eval_every and stop % 4 else "log interval"
    assert notes == ([f"SIGTERM: stopping at step {told}, the next {where} (where the 2 processes agree), "
                      "then saving"] if told else [])


def _signals_worker(rank, world, port, out_dir, sent):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    got = [mean_over_ranks({"G_L1": torch.tensor(3.0 + rank)}, 1, world, s[rank]) for s in sent]
    json.dump([(means, stop and stop.name) for means, stop in got], open(os.path.join(out_dir, f"{rank}.json"), "w"))
    # The commands' own ending (Dist.close): a plain destroy_process_group right after mean_over_ranks hung
    # now and then on torch 2.5 (make test-floor), the gloo threads and the ending waiting on each other.
    Dist(rank, world, owns_group=True).close()


@pytest.mark.slow
def test_the_signals_ride_in_the_losses_all_reduce(tmp_path):
    sent = [(None, None), (None, INT), (TERM, None), (INT, TERM), (INT, INT), (HUP, None), (INT, HUP), (HUP, TERM)]
    spawn_ranks(_signals_worker, (2, _free_port(), str(tmp_path), sent))
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1 == [[{"G_L1": 3.5}, stop] for stop in (None, "SIGINT", "SIGTERM", "SIGTERM", "SIGINT", "SIGHUP",
                                                           "SIGHUP", "SIGTERM")]


# -- the command, with real signals ---------------------------------------------------------------------
TINY_ARGS = ["--crop_size", "32", "--load_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--netG", "unet",
             "--netE", "resnet_128", "--netD", "basic_128_multi", "--netD2", "basic_128_multi", "--impl", "ref",
             "--batch_size", "4", "--niter", "100", "--niter_decay", "100", "--save_every", "1000",
             "--sample_every", "1000", "--device", "cpu", "--no-progress", "--no-eval"]


@pytest.fixture(scope="module")
def env():
    """Loader workers' sockets need a short TMPDIR (see _torchrun_env)."""
    e = _torchrun_env()
    yield e
    shutil.rmtree(e["TMPDIR"], ignore_errors=True)


def _wait_for_log(run, proc, lines=1, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if (run / "log.jsonl").exists() and len((run / "log.jsonl").read_text().splitlines()) >= lines:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no log line")


def _train(cwd, env, *args, driver=None):
    cmd = [sys.executable, *(["-c", driver] if driver else ["-m", "bicyclegan.engine.cli"]), "train",
           "--dataroot", str(cwd / "data"), *TINY_ARGS, *args]
    # A session of its own: os.killpg reaches the command and its loader workers, as a terminal's
    # Ctrl-C reaches its foreground group.
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.fixture
def cli_data(tmp_path):
    make_demo_dataset(tmp_path / "data", n_train=32, n_test=4, size=32, seed=0)
    return tmp_path


# A Ctrl-C while the command imports torch (its first seconds), half way: at torch's import of torch.nn
_CTRL_C_IN_TORCH = """import signal, sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch.nn":
            sys.meta_path.remove(self)
            signal.raise_signal(signal.SIGINT)
sys.meta_path.insert(0, CtrlC())
from bicyclegan.engine.cli import run
run()
"""


@pytest.mark.parametrize("command", [["train", "--out", "r"], ["make-demo", "d"]], ids=["train", "make-demo"])
def test_a_ctrl_c_while_torch_imports_ends_the_command_quietly_by_sigint(tmp_path, command):
    # The command's module imported torch, before cli.run: a traceback; in run, train's resume advice imported it
    # again after the half import, an AttributeError's traceback
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_IN_TORCH, *command], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (-INT, "interrupted\n")
    assert not list(tmp_path.iterdir())  # nothing begun


def _weights(path):
    return torch.load(path, weights_only=False)["nets"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [TERM, INT], ids=["TERM", "INT"])
def test_a_signal_to_the_process_group_stops_the_command_with_workers_and_it_resumes_exactly(cli_data, env, sig):
    run = cli_data / "r"
    tmp = Path(tempfile.mkdtemp(dir=env["TMPDIR"]))  # (the process's own, for what it leaves there)
    proc = _train(cli_data, {**env, "TMPDIR": str(tmp)}, "--out", "r", "--max_steps", "400", "--log_every", "1",
                  "--num_workers", "2")
    _wait_for_log(run, proc, 2)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -sig, err  # it died of the signal once stopped (a shell's status: 128 + n)
    # ... after the exit-time clean-up: the loader's multiprocessing folder was left where it died at once
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("pymp-")]
    step = read_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert step >= 2 and logged(run)[-1] == step  # the iteration in progress, no more
    last = err.strip().splitlines()[-1]
    assert last == (f"stopped by {sig.name} at step {step} (epoch {(step - 1) // 8 + 1}): checkpoint written to "
                    f"r/checkpoints/latest.pt (resume=True resumes it in Python); resume with bicyclegan train --out r "
                    f"--resume"), err
    assert "Traceback" not in err and "run folder:" not in out
    # The workers survived the signal and the stop waited for no batch; no process of the group is left.
    assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode == 1
    if sig == INT:
        return
    # Resumed (as the message says) to a few steps on, it ends where an uninterrupted run does.
    end = str(step + 3)
    done = subprocess.run([sys.executable, "-m", "bicyclegan.engine.cli", "train", "--out", "r", "--resume",
                           "--max_steps", end], cwd=cli_data, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    straight = _train(cli_data, env, "--out", "s", "--max_steps", end, "--log_every", "1", "--num_workers", "2")
    assert straight.wait(timeout=120) == 0
    got, want = _weights(run / "checkpoints" / "latest.pt"), _weights(cli_data / "s" / "checkpoints" / "latest.pt")
    for net in want:
        for k in want[net]:
            assert torch.equal(got[net][k], want[net][k]), f"{net}.{k}"
    rows = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert [r["G_L1"] for r in rows] == [json.loads(ln)["G_L1"] for ln in (cli_data / "s" / "log.jsonl").open()]


@pytest.mark.slow
@pytest.mark.parametrize("progress", [True, False])
def test_a_closed_terminal_stops_the_command_with_its_checkpoint_and_it_resumes(cli_data, env, progress):
    # An ssh connection dropped: the kernel hangs up the terminal's session, SIGHUP, whose default ended the
    # run (15 steps lost in a demo run's first seconds); after it, every write to the terminal fails (EIO): the
    # progress line's and the stop's own line, which ended the command with a traceback (status 1).
    run = cli_data / "r"
    cmd = [sys.executable, "-m", "bicyclegan.engine.cli", "train", "--dataroot", str(cli_data / "data"), *TINY_ARGS,
           "--out", "r", "--max_steps", "400", "--log_every", "1"]
    if progress:
        cmd.remove("--no-progress")
    pid, terminal = pty.fork()  # the child: a session of its own, led by it, whose terminal this is
    if pid == 0:
        try:
            os.chdir(cli_data)
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    seen, end = b"", time.time() + 120
    while time.time() < end and len(logged(run) if (run / "log.jsonl").exists() else []) < 2:
        if select.select([terminal], [], [], 0.05)[0]:  # (read, so that a full terminal blocks no write)
            seen += os.read(terminal, 65536)
    os.close(terminal)  # the terminal goes away: its session is hung up
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == HUP, (status, seen.decode(errors="replace"))
    step = read_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert step >= 2 and logged(run)[-1] == step
    done = subprocess.run([sys.executable, "-m", "bicyclegan.engine.cli", "train", "--out", "r", "--resume",
                           "--max_steps", str(step + 1)], cwd=cli_data, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and logged(run)[-1] == step + 1, done.stderr


@pytest.mark.slow
def test_a_ctrl_c_stops_a_shell_loop_of_trainings_not_only_the_training_it_interrupted(cli_data, env):
    """`for v in ...; do bicyclegan train ...; done` (the README's loop over the variants): bash goes on to the next
    command when the one a Ctrl-C interrupted exits with a status, 130 included (the program took the key and chose
    to go on): each Ctrl-C started the next training. Dying of the SIGINT once stopped (checkpoint written) ends
    the script with it."""
    train = shlex.join([sys.executable, "-m", "bicyclegan.engine.cli", "train", "--dataroot", "data", *TINY_ARGS,
                        "--max_steps", "400", "--log_every", "1", "--num_workers", "0"])
    script = f'for out in a b; do {train} --out "$out"; echo "went on after $out: $?"; done'
    proc = subprocess.Popen(["bash", "-c", script], cwd=cli_data, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_log(cli_data / "a", proc)
    os.killpg(proc.pid, INT)  # (a terminal's Ctrl-C: the foreground group, bash and its command)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -INT and "went on" not in out, (out, err)  # bash itself ended by it
    assert not (cli_data / "b").exists()
    step = read_checkpoint(cli_data / "a" / "checkpoints" / "latest.pt")["step"]
    assert err.strip().splitlines()[-1].startswith(f"stopped by SIGINT at step {step} "), err


@pytest.mark.slow
def test_a_second_training_into_a_run_folder_in_use_exits_75_and_a_bad_option_2(cli_data, env):
    """Every refusal exited 2: a script's retry loop (the README's, while the status is 75) could not tell a run
    folder another training holds, which a later try finds free, from a bad option, which it would retry for ever.
    The first's refusal is sysexits.h's EX_TEMPFAIL, 75; a lasting one stays 2."""
    # (the schedule's whole length, 1,600 steps: 400 ran out on a loaded machine before the two refusals were in)
    first = _train(cli_data, env, "--out", "r", "--max_steps", "1600", "--log_every", "1", "--num_workers", "0")
    try:
        _wait_for_log(cli_data / "r", first)
        # Stopped (SIGSTOP) once it trains: it holds the folder's lock all the same, and its steps took a core
        # from the two refusals' start-ups (and from the suite's other tests) all along.
        os.killpg(first.pid, signal.SIGSTOP)
        second = [sys.executable, "-m", "bicyclegan.engine.cli", "train", "--out", "r", "--resume"]
        for options, rc, said in (
                ((), 75, "CheckpointError: r is in use by another training, still running: wait for it to end (then "
                         "continue the run with --resume), or choose another --out"),
                (("--lr", "-1"), 2, "ConfigError: ")):
            done = subprocess.run([*second, *options], cwd=cli_data, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == rc and done.stderr.startswith(f"bicyclegan train: {said}"), done.stderr
            assert len(done.stderr.splitlines()) == 1, done.stderr
        assert first.poll() is None  # (held all along)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (ended already: the assertion above says why)
            os.killpg(first.pid, TERM)
            os.killpg(first.pid, signal.SIGCONT)  # (the SIGTERM waits until then)
        first.communicate(timeout=120)


# Saves take two seconds here: the second Ctrl-C lands in the stop's save for sure.
NO_SIGWAITINFO = """import sys
from bicyclegan.pipelines import cpu_loader
cpu_loader._WAITS_FOR_SIGNALS = False  # as on macOS, which has no signal.sigwaitinfo
from bicyclegan.engine import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [TERM, HUP], ids=["TERM", "HUP"])
def test_without_sigwaitinfo_a_signal_to_the_process_group_still_stops_with_a_checkpoint(cli_data, env, sig):
    # macOS: the workers kept SIGTERM's and SIGHUP's default action, died of the group's signal (a closed terminal),
    # and torch's handler raised mid-step ("DataLoader worker ... is killed by signal: Terminated"): no checkpoint
    run = cli_data / "r"
    proc = _train(cli_data, env, "--out", "r", "--max_steps", "400", "--log_every", "1", "--num_workers", "2",
                  driver=NO_SIGWAITINFO)
    _wait_for_log(run, proc, 2)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    step = read_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"stopped by {sig.name} at step {step}")
    end = time.time() + 15  # (the workers end with the loader, or by torch's watchdog once it is gone)
    while subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).returncode != 1:
        assert time.time() < end, "a loader worker outlived the training"
        time.sleep(0.2)


SLOW_SAVE = """import os, sys, time
from bicyclegan.engine import cli, trainer
save = trainer.save_checkpoint
def slow(*a, **k):
    open(os.environ["SAVE_BEGUN"], "w").close()  # (the next Ctrl-C waits for it: a step takes what the machine gives)
    time.sleep(2)
    return save(*a, **k)
trainer.save_checkpoint = slow
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sigints", [2, 3])
def test_a_second_ctrl_c_during_the_stops_save_ends_the_command_once_it_is_written(cli_data, env, sigints):
    """The second Ctrl-C lands in the stop's save (2 s here): it ends the command once the checkpoint is written
    (raised inside torch's C++ writer it aborted the process, or blamed the disk); a third leaves at once, with
    no checkpoint (the run's first) and no temp file."""
    run = cli_data / "r"
    shutil.rmtree(run, ignore_errors=True)
    begun = cli_data / "save_begun"
    begun.unlink(missing_ok=True)  # (the other case's)
    proc = _train(cli_data, {**env, "SAVE_BEGUN": str(begun)}, "--out", "r", "--max_steps", "400", "--log_every", "1",
                  "--num_workers", "2", driver=SLOW_SAVE)
    _wait_for_log(run, proc)
    os.killpg(proc.pid, INT)
    end = time.time() + 60  # the stop's save begins once the step in progress is done
    while not begun.exists():
        assert time.time() < end and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    for n in range(sigints - 1):
        time.sleep(0.5 * n)  # (the third 0.5 s into the save's 2 s)
        os.killpg(proc.pid, INT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    if sigints == 2:
        assert err.strip().splitlines()[-1] == "interrupted; the latest checkpoint is intact: bicyclegan train " \
                                               "--out r --resume", err
        read_checkpoint(run / "checkpoints" / "latest.pt")  # whole
    else:
        assert err.strip().splitlines()[-1] == ("interrupted before the run's first checkpoint: nothing to resume "
                                                "(delete r to start again there)"), err
        assert not (run / "checkpoints" / "latest.pt").exists()
    assert temp_files(run / "checkpoints" / "latest.pt") == []


def _torchrun_training(cli_data, env, *args):
    """A 2-rank torchrun training of the tiny model in cli_data/r (a session of its own, its output and its
    ranks' in cli_data/out.txt), once its first log line is written: its Popen. Launched once more where gloo
    failed to connect the ranks (gloo_failed_to_connect), as torchrun_cli."""
    cmd = ["train", "--dataroot", cli_data / "data", *TINY_ARGS, "--out", "r", "--max_steps", "400", *args]
    for attempt in (1, 2):
        with open(cli_data / "out.txt", "w") as out:
            proc = subprocess.Popen(torchrun_command(*cmd), cwd=cli_data, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            _wait_for_log(cli_data / "r", proc)
            return proc
        except AssertionError as e:
            if proc.poll() is None:  # no log line in time: torchrun passes its SIGTERM on to the ranks
                proc.terminate()
                proc.wait(timeout=60)
            said = (cli_data / "out.txt").read_text()
            if attempt == 2 or not gloo_failed_to_connect(said):
                raise AssertionError(f"{e}\n{said}") from None


def _ranks(proc, n=2):
    """The pids of torchrun's ranks: its child processes."""
    ranks = sorted(int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                  text=True).stdout.split())
    assert len(ranks) == n, ranks
    return ranks


def _running(pid):
    """Whether process `pid` runs (an orphan that ended may stay a zombie: the system's init need not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("target", ["torchrun", "rank 1"])
def test_under_torchrun_a_sigterm_stops_every_rank_at_one_step(cli_data, target):
    """SIGTERM to torchrun (which sends it on to each rank's process group, loader workers included)
    or to one rank alone: every rank stops at the next log interval with one checkpoint, rank 0
    says so once, and nothing hangs."""
    env = _torchrun_env()
    run = cli_data / "r"
    try:
        proc = _torchrun_training(cli_data, env, "--log_every", "3", "--num_workers", "1")
        os.kill(proc.pid if target == "torchrun" else _ranks(proc)[1], TERM)
        proc.wait(timeout=120)  # torchrun's own code is its own (1 here): the ranks die of the SIGTERM
        out = (cli_data / "out.txt").read_text()
    finally:
        shutil.rmtree(env["TMPDIR"], ignore_errors=True)
    step = read_checkpoint(run / "checkpoints" / "latest.pt")["step"]
    assert step % 3 == 0 and logged(run)[-1] == step
    assert out.count("stopped by SIGTERM") == 1, out
    assert f"stopped by SIGTERM at step {step} (epoch " in out, out
    assert "resume with torchrun --nproc_per_node 2 -m bicyclegan.engine.cli train --out r --resume\n" in out, out
    if target == "rank 1":  # torchrun reports the first rank to end, by itself: died of the stop's signal, as said
        assert "exitcode  : -15 (pid: " in out and "Signal 15 (SIGTERM) received by PID" in out, out
    assert "Traceback" not in out.split("stopped by SIGTERM")[0], out  # no rank failed before the stop


@pytest.mark.slow
def test_under_torchrun_the_ranks_stop_at_one_step_when_torchrun_is_killed(cli_data):
    """torchrun killed with kill -9 (or by the OOM killer) sends its ranks nothing: they trained on, orphaned,
    holding their GPUs and writing into the run folder. Each now sees its parent gone and stops as on a
    SIGTERM: every rank at one step, with its checkpoint, saying why; the run resumes from it."""
    env = _torchrun_env()
    run, ranks = cli_data / "r", []
    try:
        proc = _torchrun_training(cli_data, env, "--log_every", "3", "--num_workers", "1")
        ranks = _ranks(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        end = time.time() + 30  # a stop takes a log interval and a save; 30 s on a loaded machine
        while any(map(_running, ranks)) and time.time() < end:
            time.sleep(0.2)
        left = [pid for pid in ranks if _running(pid)]
        out = (cli_data / "out.txt").read_text()
        assert not left, f"ranks {left} outlived torchrun (pid {proc.pid}) by 30 s:\n{out}"
        step = read_checkpoint(run / "checkpoints" / "latest.pt")["step"]
        assert step % 3 == 0 and logged(run)[-1] == step  # every rank stopped at one log interval
        assert out.count(f"torchrun (pid {proc.pid}), which started this process, is gone: stopping as on a "
                         f"SIGTERM") == 1, out  # one line for the machine
        assert out.count(f"stopped by SIGTERM at step {step} (epoch ") == 1, out
        assert "Traceback" not in out, out
        assert temp_files(run / "checkpoints" / "latest.pt") == []
        done = torchrun_cli(cli_data, "train", "--out", "r", "--resume", "--max_steps", step + 3, "--no-progress")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert read_checkpoint(run / "checkpoints" / "latest.pt")["step"] == step + 3
        assert logged(run) == list(range(3, step + 4, 3))
    finally:  # the ranks are sessions of their own: torchrun's group does not hold them
        for pid in ranks:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(env["TMPDIR"], ignore_errors=True)


# A launcher (torchrun's part) and the processes it starts (ranks'), which watch it as init_distributed does.
# Its argument: a JSON list of [script, environment, output file]; it prints each process's pid, in that order.
LAUNCHER = """import json, subprocess, sys, time
for script, env, out in json.loads(sys.argv[1]):
    print(subprocess.Popen([sys.executable, "-c", script], env=env, stdout=open(out, "w"),
                           stderr=subprocess.STDOUT).pid, flush=True)
time.sleep(120)
"""
WATCHING = """import signal, sys, time
from bicyclegan.engine.runtime import watch_launcher
signal.signal(signal.SIGTERM, lambda *a: (print("SIGTERM received", flush=True), sys.exit(0)))
watch_launcher(poll=0.1)
print("watching", flush=True)
time.sleep(120)
"""
# A process of another local rank than 0 (the machine's line is local rank 0's), whose watch is asked for twice
# (init_distributed again in one process; at another poll, so that a second watcher's SIGTERM would come apart
# from the first, within the 3.5 s the handler waits, not merged with it).
OTHER_RANK = """import os, signal, threading, time
from bicyclegan.engine.runtime import watch_launcher
def stopping(*a):
    print(f"SIGTERM received {time.time()}", flush=True)
    threading.Timer(3.5, os._exit, (0,)).start()
signal.signal(signal.SIGTERM, stopping)
watch_launcher(poll=0.2)
watch_launcher(poll=0.5)
print("watching", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def launcher_killed(tmp_path_factory):
    """One stand-in launcher (a session of its own) of the three processes of the tests below, killed with SIGKILL
    once each watches it: "torchrun" (WATCHING, started by torchrun: TORCHELASTIC_RUN_ID), "not torchrun"
    (WATCHING, no TORCHELASTIC_*) and "other rank" (OTHER_RANK, torchrun's, LOCAL_RANK 1). One launch for the
    three, whose start-up and waits each took most of a test's time. Waits up to 20 s for the two of torchrun to
    end, and 3 s at least (polls of 0.1 s) for the other to end, which it must not. Returns (the launcher's pid,
    the time of the kill, name -> (what the process printed, whether it ran at the end of the wait))."""
    where = tmp_path_factory.mktemp("launcher")
    plain = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC_")}
    children = {"torchrun": (WATCHING, {**plain, "TORCHELASTIC_RUN_ID": "none"}), "not torchrun": (WATCHING, plain),
                "other rank": (OTHER_RANK, {**plain, "TORCHELASTIC_RUN_ID": "none", "LOCAL_RANK": "1"})}
    outs = {name: where / f"{name}.txt" for name in children}
    with open(where / "launcher.txt", "w") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, json.dumps([[s, e, str(outs[n])] for n, (s, e) in children.items()])],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    pids = {}

    def said():
        return {n: p.read_text() if p.exists() else "" for n, p in outs.items()}
    try:
        end = time.time() + 60
        while not all("watching" in text for text in said().values()):
            assert time.time() < end and launcher.poll() is None, said()
            time.sleep(0.1)
        pids = dict(zip(children, map(int, (where / "launcher.txt").read_text().split())))
        assert sorted(_ranks(launcher, 3)) == sorted(pids.values())
        killed = time.time()  # (the launcher ends after this)
        launcher.kill()
        launcher.wait()
        end = killed + 20
        while (_running(pids["torchrun"]) or _running(pids["other rank"])) and time.time() < end:
            time.sleep(0.1)
        time.sleep(max(0.0, killed + 3 - time.time()))
        return launcher.pid, killed, {n: (said()[n], _running(pid)) for n, pid in pids.items()}
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            launcher.kill()


@pytest.mark.slow
@pytest.mark.parametrize("torchrun", [True, False])
def test_a_process_torchrun_started_gets_a_sigterm_once_torchrun_is_gone(launcher_killed, torchrun):
    """What evaluate and compare get too (their SIGTERM is the default's: the process ends, its writes being
    atomic): the SIGTERM, within a second of the launcher's end, with the line that says why. A process not
    started by torchrun (no TORCHELASTIC_RUN_ID) is left as it was."""
    launcher, _, seen = launcher_killed
    said, running = seen["torchrun" if torchrun else "not torchrun"]
    assert running is not torchrun, said
    gone = f"torchrun (pid {launcher}), which started this process, is gone: stopping as on a SIGTERM"
    assert said.split("\n")[1:] == ([gone + " (a training at its next log interval or evaluation, after saving its "
                                      "checkpoint)", "SIGTERM received", ""] if torchrun else [""]), said


@pytest.mark.slow
def test_another_local_rank_stops_silently_five_polls_after_torchrun_and_once(launcher_killed):
    """Local rank 0 alone says why; the others wait 5 polls (here 1 s) so that their stop cannot end the run
    before local rank 0 has said it; a second watch_launcher in one process adds no second SIGTERM."""
    _, killed, seen = launcher_killed
    said, running = seen["other rank"]
    lines = said.splitlines()
    assert not running, said
    # no "torchrun ... is gone" line, one SIGTERM
    assert lines[0] == "watching" and [x.rsplit(" ", 1)[0] for x in lines[1:]] == ["SIGTERM received"], said
    assert float(lines[1].split()[-1]) - killed >= 1.0, said


# -- the torch loader's workers ---------------------------------------------------------------------------
LOADER = """import multiprocessing, os, signal, subprocess, sys, time
from bicyclegan.pipelines import make_loader
SENT = signal.Signals[sys.argv[2]]
loader = make_loader(sys.argv[1], batch_size=4, load_size=32, crop_size=32, backend="torch", num_workers=2,
                     device="cpu")
batches = 0
for batch in loader:
    batches += 1
    if batches == 1:  # the loading process acts on it (as a stopping training); set once the workers run, whose
        signal.signal(SENT, lambda *a: None)  # copy of a handler set before would have taken it as well
    if batches == 2:  # from another process, to the whole group, as a terminal or SLURM sends it
        subprocess.run(["kill", f"-{SENT.name[3:]}", "--", f"-{os.getpgrp()}"], check=True, start_new_session=True)
        time.sleep(1)
workers = multiprocessing.active_children()
alive = [w.is_alive() for w in workers]
os.kill(workers[0].pid, signal.SIGTERM)  # the loading process's own: the worker ends
workers[0].join(10)
print(batches, alive, workers[0].exitcode, workers[1].is_alive())
"""


@pytest.mark.slow
# HUP: a shell passes its terminal's hang-up on to its jobs
@pytest.mark.parametrize("sig", [TERM, INT, HUP], ids=["TERM", "INT", "HUP"])
def test_loader_workers_leave_a_signal_to_the_group_to_the_loading_process(cli_data, env, sig):
    done = subprocess.run([sys.executable, "-c", LOADER, str(cli_data / "data"), sig.name], env=env,
                          capture_output=True,
                          text=True, timeout=120, start_new_session=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "8 [True, True] 0 True"  # every batch of the epoch (32 pairs / 4)


# Each worker, as it starts, sends a SIGTERM to the whole group after torch has set its own handler for
# it and before the loader's init: torch's handler ended a worker on a signal from any process but its
# parent, and the loader broke ("DataLoader worker ... is killed by signal: Terminated").
STARTING = """import os, signal, subprocess, sys
import torch.utils.data._utils.signal_handling as handling
from bicyclegan.pipelines import make_loader
set_handlers = handling._set_worker_signal_handlers
def starting(*args):
    set_handlers(*args)
    subprocess.run(["kill", "-TERM", "--", f"-{os.getpgrp()}"], check=True, start_new_session=True)
handling._set_worker_signal_handlers = starting
signal.signal(signal.SIGTERM, lambda *a: print("loading process: SIGTERM"))
loader = make_loader(sys.argv[1], batch_size=4, load_size=32, crop_size=32, backend="torch", num_workers=2,
                     device="cpu")
print(sum(1 for _ in loader), "batches")
"""


@pytest.mark.slow
def test_loader_workers_leave_the_groups_signal_from_their_start(cli_data, env):
    done = subprocess.run([sys.executable, "-c", STARTING, str(cli_data / "data")], env=env, capture_output=True,
                          text=True, timeout=120, start_new_session=True)
    assert done.returncode == 0, done.stderr
    *signalled, batches = done.stdout.splitlines()
    # Every batch of the epoch; the loading process got the signals (the two may arrive as one: the
    # workers start while it holds them back).
    assert batches == "8 batches" and set(signalled) == {"loading process: SIGTERM"}, done.stdout + done.stderr


KILLED = """import multiprocessing, sys, time
from bicyclegan.pipelines import make_loader
loader = make_loader(sys.argv[1], batch_size=4, load_size=32, crop_size=32, backend="torch", num_workers=2,
                     device="cpu")
next(iter(loader))
print(*(w.pid for w in multiprocessing.active_children()), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_loader_workers_end_when_the_loading_process_is_killed(cli_data, env):
    # SIGKILL (torchrun's 30 s after its signal, the OOM killer) leaves the workers nothing to wait for:
    # torch's watchdog in each sees its parent gone within MP_STATUS_CHECK_INTERVAL (5 s), and the
    # signals' thread must not keep it from ending.
    from torch.utils.data._utils import MP_STATUS_CHECK_INTERVAL
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(cli_data / "data")], env=env, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(_running(pid) for pid in workers)
    finally:
        proc.kill()
        proc.wait()
    end = time.monotonic() + MP_STATUS_CHECK_INTERVAL + 5  # the interval, then the worker's exit
    while any(_running(pid) for pid in workers) and time.monotonic() < end:
        time.sleep(0.1)
    left = [pid for pid in workers if _running(pid)]
    for pid in left:  # not left behind by a failure
        os.kill(pid, signal.SIGKILL)
    assert left == []


# A spawned worker (its code in a file: spawn imports the main module's functions by name) whose interpreter,
# finalising, takes long (a module global's finaliser sleeps), while a daemon thread runs torch's C++ with the
# GIL let go (as the queue's feeder thread hands a batch over): back for the GIL in the finalising interpreter,
# that thread ended through a C++ destructor and the worker aborted (-6, "terminate called without an active
# exception"). The loader's init (_worker_init) makes it end as a forked worker ends; an exit function registered
# after the init still runs, its output flushed.
SPAWNED = """import atexit, multiprocessing, os, sys, threading, time
import torch
from bicyclegan.pipelines import cpu_loader


class SlowFinalising:
    def __del__(self):
        time.sleep(3)  # (the interpreter's finalisation: module globals cleared)


def work(ready):
    cpu_loader._worker_init(os.getppid(), [0], 0)
    atexit.register(print, "later exit function")  # (not flushed: stdout is a pipe)
    global slow
    slow = SlowFinalising()
    a = torch.rand(600, 600)

    def busy():
        ready.set()
        while True:
            torch.mm(a, a)
    threading.Thread(target=busy, daemon=True).start()
    ready.wait()
    print("work done")


if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=work, args=(ready,))
    p.start()
    p.join(60)
    print(p.exitcode)
"""


@pytest.mark.slow
def test_a_spawned_loader_worker_ends_as_a_forked_one_does(tmp_path, env):
    (tmp_path / "spawned.py").write_text(SPAWNED)
    buffered = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}  # (the output's flush: the worker's own)
    done = subprocess.run([sys.executable, str(tmp_path / "spawned.py")], env=buffered, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["work done", "later exit function", "0"], done.stdout + done.stderr
    assert "terminate called" not in done.stderr, done.stderr


# A loader's workers started by spawn (as under torch.multiprocessing.spawn, or macOS): closed with batches in
# flight, which the workers' feeder threads may still be handing over; each worker's exit code.
SPAWN_LOADER = """import multiprocessing, sys
from bicyclegan.pipelines import make_loader
if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    codes = []
    for _ in range(3):
        with make_loader(sys.argv[1], batch_size=1, load_size=32, crop_size=32, backend="torch", num_workers=2,
                         device="cpu", phase="test", shuffle=False) as loader:
            batches = iter(loader)
            next(batches)
            workers = list(loader._loader._iterator._workers)
        codes += [w.exitcode for w in workers]
    print(codes)
"""


@pytest.mark.slow
def test_a_loader_with_spawned_workers_closes_with_batches_in_flight(cli_data, env):
    (cli_data / "spawn_loader.py").write_text(SPAWN_LOADER)
    done = subprocess.run([sys.executable, str(cli_data / "spawn_loader.py"), str(cli_data / "data")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([0] * 6), done.stdout + done.stderr


def _locked_up(marker, loop):
    """torch's worker loop, in which the first worker forked (`marker` made; every worker where marker is None)
    never goes on, as a fork that locked up before any of the worker's Python ran (CPython before 3.12, another
    thread making a Python thread state as the process forked)."""
    def worker_loop(*args, **kwargs):
        if marker is None or _made(marker):
            while True:
                time.sleep(1)
        return loop(*args, **kwargs)
    return worker_loop


def _made(path):
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


@pytest.mark.skipif(multiprocessing.get_start_method(allow_none=True) not in (None, "fork") or sys.platform != "linux",
                    reason="forked workers (Linux's default start method)")
@pytest.mark.parametrize("locks_up", ["once", "always"])
def test_a_loader_worker_locked_up_in_its_fork_is_started_again(cli_data, monkeypatch, caplog, locks_up):
    """The loader waited WORKER_TIMEOUT_S (10 minutes) for the batches of a worker that never started, then failed
    (a torchrun launch of the tests: gloo's thread made a thread state as the rank forked). A worker that has not
    reached its init in WORKER_START_S is killed and the workers started again: the epoch's batches all come, in
    their order; after WORKER_STARTS starts, a line with advice."""
    import torch.utils.data._utils.worker as worker

    from bicyclegan.pipelines import cpu_loader, make_loader
    monkeypatch.setattr(cpu_loader, "WORKER_START_S", 2)
    monkeypatch.setattr(cpu_loader, "WORKER_TIMEOUT_S", 30)  # (without the restart: failed in 30 s, not 10 minutes)
    monkeypatch.setattr(worker, "_worker_loop",
                        _locked_up(str(cli_data / "locked") if locks_up == "once" else None, worker._worker_loop))
    options = dict(batch_size=4, load_size=32, crop_size=32, backend="torch", device="cpu", seed=3)
    with make_loader(cli_data / "data", num_workers=0, **options) as loader:
        expected = [b["paths"] for b in loader]
    before, start = _children(), time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"), \
                make_loader(cli_data / "data", num_workers=2, **options) as loader:
            if locks_up == "once":
                assert [b["paths"] for b in loader] == expected and len(expected) == 8
            else:
                with pytest.raises(cpu_loader.DatasetError) as refused:
                    next(iter(loader))
    finally:
        left = _children() - before
        for pid in left:  # (not left behind by a failure: a worker locked up so ends by SIGKILL alone)
            os.kill(pid, signal.SIGKILL)
    said = [r.getMessage() for r in caplog.records if "did not start" in r.getMessage()]
    if locks_up == "once":
        assert said == ["1 loader worker process did not start in 2 s (a fork that locked up: Python before 3.12, "
                        "other threads running, e.g. a process group's); starting the workers again (1 of 2 retries)"]
        assert time.monotonic() - start < 20
    else:
        assert len(said) == 2 and str(refused.value) == (
            "the loader's worker processes did not start, 3 times in a row (forks that locked up); use --num_workers 0 "
            "(loading in this process), or Python 3.12 or later")
    assert left == set()  # every worker ended, the locked-up ones too


def _children():
    """This process's child processes that run (not zombies), by pid (Linux: /proc)."""
    pids = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (FileNotFoundError, ProcessLookupError):  # (ended meanwhile)
            continue
        if int(ppid) == os.getpid() and state != "Z":
            pids.add(int(entry))
    return pids
