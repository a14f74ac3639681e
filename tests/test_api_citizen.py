"""The Python API inside someone else's program (a notebook, a training script): what a call changes of the
process (random generators, torch's switches, signal handlers, log filters) is put back when it returns or
raises. The caller's next draws after a call equal those it would have had without the call."""
import logging
import os
import random
import signal
import threading
import warnings

import numpy as np
import pytest
import torch
from tiny import tiny_cfg

from bicyclegan.engine import (
    Trainer,
    evaluate,
    export_generator,
    interpolate,
    load_checkpoint,
    sample,
    train,
)
from bicyclegan.engine.errors import ConfigError
from bicyclegan.engine.runtime import device_settings
from bicyclegan.pipelines import make_demo_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=8, n_test=2, size=32, seed=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A finished run of 2 steps whose checkpoint's numpy and Python states are not the ones the tests seed
    (a resume puts the checkpoint's in place while it trains)."""
    np.random.seed(99)
    random.seed(99)
    out = tmp_path_factory.mktemp("runs") / "run"
    train(tiny_cfg(out, data, max_steps=2, niter=1, niter_decay=3), progress=False)
    return out


def draws():
    """The caller's next draws from each generator a run touches."""
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)]


def seed_caller():
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)


def process_state():
    """What a call could leave changed in the process besides the generators."""
    data_log = logging.getLogger("bicyclegan.pipelines")
    return {"signals": (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)),
            "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
                      torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32),
            "threads": (torch.get_num_threads(), torch.get_float32_matmul_precision(),
                        torch.are_deterministic_algorithms_enabled(), torch.is_grad_enabled()),
            "data_log": (data_log.level, list(data_log.filters), list(data_log.handlers)),
            "root_log": (logging.root.level, list(logging.root.handlers)),
            "warnings": list(warnings.filters),
            "environ": {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"},  # (torch's own)
            "python_threads": sorted(t.name for t in threading.enumerate())}


def failing_trainer(out, data):
    """A Trainer whose third step raises: a run stopped by an error in the middle of its loop."""
    t = Trainer(tiny_cfg(out, data, max_steps=4), progress=False)
    real = t.model.train_step

    def step(batch):
        if t.step == 2:
            raise RuntimeError("boom")
        return real(batch)
    t.model.train_step = step
    t.train()


CALLS = {
    "train": lambda tmp, data, run: train(tiny_cfg(tmp / "r", data, max_steps=2), progress=False),
    "train resumed": lambda tmp, data, run: train(tiny_cfg(run, data, max_steps=3, niter=1, niter_decay=3),
                                                  resume=True, progress=False),
    "train refused after seeding": lambda tmp, data, run: train(
        tiny_cfg(run, data, max_steps=99), resume=True, progress=False),  # past the schedule: refused at _check_length
    "train raising mid-run": lambda tmp, data, run: failing_trainer(tmp / "r", data),
    "Trainer made, not trained": lambda tmp, data, run: Trainer(tiny_cfg(tmp / "r", data, max_steps=2),
                                                                progress=False),
    "load_checkpoint": lambda tmp, data, run: load_checkpoint(run),
    "sample": lambda tmp, data, run: sample(run, out=tmp / "s", num=1, n_samples=2),
    "evaluate": lambda tmp, data, run: evaluate(run, n_samples=2),
    "interpolate": lambda tmp, data, run: interpolate(run, out=tmp / "i", num=1),
    "export_generator": lambda tmp, data, run: export_generator(run, tmp / "g.pt2", verify=False),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_call_leaves_the_callers_generators_and_process_settings_as_they_were(tmp_path, data, run, name):
    """Each generator's next draws equal those without the call (a run's seeding, a resume's states from its
    checkpoint, initial weights a checkpoint's replace), also where the call raises; and nothing else the
    call changes of the process stays changed."""
    seed_caller()
    expected = draws()
    before = process_state()
    seed_caller()
    try:
        CALLS[name](tmp_path, data, run)
    except (ConfigError, RuntimeError) as e:
        assert "raising" in name or "refused" in name, e
    else:
        assert "raising" not in name and "refused" not in name
    assert draws() == expected
    assert process_state() == before


def test_the_runs_draws_are_its_seeds_whatever_the_callers(tmp_path, data):
    """A run's weights depend on its seed alone: not on the caller's generators when the Trainer was made,
    nor on the caller's draws between making it and training it."""
    weights = []
    for k, caller_seed in enumerate((1, 2)):
        torch.manual_seed(caller_seed)
        t = Trainer(tiny_cfg(tmp_path / f"r{k}", data, max_steps=2), progress=False)
        torch.rand(100)  # the caller's own work in between
        t.train()
        weights.append([p.detach().clone() for p in t.model.G.parameters()])
    for a, b in zip(*weights):
        assert torch.equal(a, b)


def test_device_settings_are_the_runs_inside_and_the_callers_after(monkeypatch):
    """On a (pretended) GPU: cuDNN's benchmark and the current device are the run's inside the block, the
    caller's after it, also when it raises."""
    current = [0]

    def set_device(d):
        current[0] = d if isinstance(d, int) else d.index
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    with pytest.raises(ValueError):
        with device_settings(torch.device("cuda", 1)):
            assert torch.backends.cudnn.benchmark is True and current[0] == 1
            raise ValueError
    assert torch.backends.cudnn.benchmark is False and current[0] == 0
    with device_settings(torch.device("cpu")):  # the CPU: nothing to set
        assert torch.backends.cudnn.benchmark is False and current[0] == 0


@pytest.mark.gpu
def test_training_on_a_gpu_leaves_its_generator_and_settings_as_they_were(tmp_path, data):
    torch.backends.cudnn.benchmark = False
    torch.cuda.manual_seed_all(1234)
    expected = torch.rand(4, device="cuda").tolist()
    torch.cuda.manual_seed_all(1234)
    current = torch.cuda.current_device()
    train(tiny_cfg(tmp_path / "r", data, max_steps=2, device="cuda"), progress=False)
    assert torch.rand(4, device="cuda").tolist() == expected
    assert torch.backends.cudnn.benchmark is False and torch.cuda.current_device() == current


def test_a_run_seeds_the_cpus_generator_and_its_gpus_alone(monkeypatch):
    """On a (pretended) host of two GPUs: a run on cuda:1 seeds cuda:1's generator, a run on "cuda" the current
    GPU's; the other GPU's stream is the caller's (torch.manual_seed reseeds every GPU's)."""
    from bicyclegan.engine.checkpoint import seed_rng
    gpus = (torch.Generator().manual_seed(100), torch.Generator().manual_seed(101))  # CPU stand-ins
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "default_generators", gpus)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cpu = torch.get_rng_state()
    try:
        seed_rng(5, torch.device("cuda", 1))
        assert [g.initial_seed() for g in gpus] == [100, 5] and torch.initial_seed() == 5
        seed_rng(6, torch.device("cuda"))
        assert [g.initial_seed() for g in gpus] == [6, 5] and torch.initial_seed() == 6
    finally:
        torch.set_rng_state(cpu)
