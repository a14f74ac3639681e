"""The training loop waits for the device only at log intervals (README "Model and objective").

On a GPU a host sync stalls the CPU until the queued kernels finish, so the next step's launches
no longer overlap the device's work. The CPU tests count the calls that would sync there (a value
read back, a result whose shape depends on values) over whole training steps and the loop around
them: none between two log intervals, and at each interval exactly the two it documents (the
losses' means, mean_over_ranks; the weights' finiteness, BicycleGAN.nonfinite). The gpu tests run
steps under torch.cuda.set_sync_debug_mode("error"), which also catches what the count cannot see:
syncs inside torch's own functions and blocking copies.
"""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_cfg
from torch.overrides import TorchFunctionMode

from bicyclegan.engine import graph, runtime
from bicyclegan.engine import trainer as trainer_module
from bicyclegan.engine.graph import GraphedTrainStep
from bicyclegan.pipelines import make_demo_dataset

# Reading a value on the host (printing and formatting a tensor read it too)...
READS = {"item", "tolist", "cpu", "numpy", "__array__", "__bool__", "__float__", "__int__", "__index__",
         "__complex__", "__format__", "__repr__", "__str__", "is_nonzero", "equal", "allclose"}
# ...or an output whose size depends on the values, which the host must learn to allocate it.
SHAPED = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount"}
INDEXING = {"__getitem__", "__setitem__", "index_put", "index_put_"}
# Callers whose reads are of host tensors on a GPU run too: CPU Adam keeps its step count on the host
# (on CUDA the model's Adam is fused, or capturable when graphed: the count stays on the device),
# the DataLoader draws its seeds and collates in host memory, and the Triton interpreter runs a
# kernel by copying its tensors to the host (a GPU launch reads nothing back).
HOST_SIDE = ("torch/optim/", "torch/utils/data/", "triton/")
PASS_THROUGH = ("torch/_tensor.py", "torch/overrides.py")  # Tensor methods written in Python


def _is_mask(index) -> bool:
    items = index if isinstance(index, (tuple, list)) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _syncs(func, args) -> bool:
    name = getattr(func, "__name__", "")
    if name in READS or name in SHAPED:
        return True
    if name == "where" and len(args) == 1:  # torch.where(cond): nonzero
        return True
    return name in INDEXING and len(args) > 1 and _is_mask(args[1])


class HostSyncs(TorchFunctionMode):
    """Records the sync-shaped torch calls made while `phase` is set, as (phase, interval, name, where):
    phase "log" during a log interval's work, "steps" from its end to the next one; interval: how many
    log intervals had begun."""

    def __init__(self):
        super().__init__()
        self.phase, self.interval, self.calls = None, 0, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.phase is not None and _syncs(func, args):
            frame = sys._getframe(1)
            while frame and frame.f_code.co_filename.endswith(PASS_THROUGH):
                frame = frame.f_back
            if not any(part in frame.f_code.co_filename for part in HOST_SIDE):
                self.calls.append((self.phase, self.interval, func.__name__, self._where(frame)))
        return func(*args, **(kwargs or {}))

    @staticmethod
    def _where(frame) -> str:
        """The innermost frame outside torch: the project's (or a test's) function that asked."""
        while frame and any(part in frame.f_code.co_filename for part in ("/torch/", "/triton/")):
            frame = frame.f_back
        return f"{Path(frame.f_code.co_filename).name} {frame.f_code.co_name}" if frame else "?"


def watch(monkeypatch) -> HostSyncs:
    """A HostSyncs whose phase follows the training loop: "log" from the start of a log interval's
    mean_over_ranks to the end of its _log, "steps" from then to the next interval; None before the
    first interval and after the run's last (the final checkpoint and grid)."""
    mode = HostSyncs()
    mean, log = trainer_module.mean_over_ranks, trainer_module.Trainer._log

    def mean_over_ranks(*args, **kwargs):
        mode.phase, mode.interval = "log", mode.interval + 1
        return mean(*args, **kwargs)

    def _log(self, *args, **kwargs):
        log(self, *args, **kwargs)
        mode.phase = "steps" if self.step < self.total_steps else None

    monkeypatch.setattr(trainer_module, "mean_over_ranks", mean_over_ranks)
    monkeypatch.setattr(trainer_module.Trainer, "_log", _log)
    return mode


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=16, n_test=4, size=32, seed=0)


class _HostGraph:
    """A stand-in for the captured graph on the CPU: a replay runs the eager step on the captured
    inputs and writes its losses into the captured outputs, as a replay does."""

    def __init__(self, step):
        self.step = step

    def replay(self):
        for k, v in self.step.model.train_step(self.step.static).items():
            self.step.losses[k].copy_(v)


class HostCapture(GraphedTrainStep):
    """GraphedTrainStep with its CUDA capture replaced (_HostGraph); __call__ is the real one."""

    def __init__(self, model, example_batch):
        self.model = model
        self.static = {k: example_batch[k].clone() for k in ("A", "B")}
        self.losses = model.train_step(self.static)
        self.graph = _HostGraph(self)


def _graphed_on_the_cpu(monkeypatch):
    check = runtime.check_runnable  # refuses cuda_graph on the CPU: asked without it
    monkeypatch.setattr(trainer_module, "check_runnable",
                        lambda cfg, device: check(dataclasses.replace(cfg, cuda_graph=False), device))
    monkeypatch.setattr(graph, "GraphedTrainStep", HostCapture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)  # end_group's, after a graphed run


# The CPU paths: eager fp32 and bf16 (as on a GPU but for the device) and the trainer's graphed branch
# with the real replay call. (Training with the Triton kernels in the interpreter took a minute: their
# launches are checked alone below.)
PATHS = {"eager": dict(amp="off"), "eager_bf16": dict(amp="bf16"), "graphed": dict(amp="off", cuda_graph=True)}


@pytest.mark.parametrize("path", list(PATHS))
def test_no_host_sync_between_log_intervals(tmp_path, data, monkeypatch, path):
    """9 steps, 4 an epoch, logged every 3: the windows 4-6 and 7-9 each cross an epoch's end (its
    learning rate set, the loader started again); the EMA and every loss term of bicycle are on."""
    kw = dict(PATHS[path])
    if kw.pop("cuda_graph", False):
        _graphed_on_the_cpu(monkeypatch)
        kw["cuda_graph"] = True
    cfg = tiny_cfg(tmp_path / "run", data, **{"max_steps": 9, "log_every": 3, "niter": 2, "sample_every": 100,
                                              "save_every": 100, "ema": 0.9, **kw})
    mode = watch(monkeypatch)
    with mode:
        trainer_module.train(cfg, evaluate=False, progress=False)
    assert [c for c in mode.calls if c[0] == "steps"] == []
    # Each interval: the losses' means and the weights' check, one read each.
    intervals = cfg.max_steps // cfg.log_every
    assert mode.interval == intervals
    assert [c[1:] for c in mode.calls] == [
        (i, "tolist", where) for i in range(1, intervals + 1)
        for where in ("trainer.py mean_over_ranks", "model.py nonfinite")]


def test_the_triton_launches_read_nothing_back():
    """The kernels' host side (checks, launch configurations, autograd), forward and backward, as the
    networks call them: the layers of G, E and D with impl="triton", in the interpreter (impl="triton"
    runs the kernels or raises)."""
    from bicyclegan.kernels import InstanceNormAct2d, ZConcatConv2d, z_concat_act
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    z = torch.randn(2, 3, requires_grad=True)
    layers = [lambda: InstanceNormAct2d(4, affine=True, act="leaky_relu", impl="triton")(x),
              lambda: InstanceNormAct2d(4, act="relu", impl="triton")(x),
              lambda: ZConcatConv2d(4, 3, 4, impl="triton")(x, z),
              lambda: z_concat_act(x, z, impl="triton")]
    mode = HostSyncs()
    with mode:
        mode.phase = "steps"
        for layer in layers:
            layer().square().mean().backward()
    assert mode.calls == []


def test_the_count_sees_a_loss_read_in_the_step(tmp_path, data, monkeypatch):
    """The check itself: a `.item()` of a loss in the step (a typical slip) is caught, where it is."""
    from bicyclegan.engine import model as model_module
    step = model_module.BicycleGAN.train_step

    def train_step(self, batch):
        losses = step(self, batch)
        if losses["G_L1"] > 100:  # a __bool__: a read
            print(losses["G_L1"].item())
        return losses
    monkeypatch.setattr(model_module.BicycleGAN, "train_step", train_step)
    mode = watch(monkeypatch)
    with mode:
        trainer_module.train(tiny_cfg(tmp_path / "run", data, max_steps=4, log_every=2, sample_every=100,
                                      save_every=100), evaluate=False, progress=False)
    between = [(name, where) for phase, _, name, where in mode.calls if phase == "steps"]
    assert between == [("__bool__", "test_host_sync.py train_step")] * 2


@pytest.mark.gpu
@pytest.mark.parametrize("path", ["eager_bf16", "graphed_bf16"])
def test_no_host_sync_between_log_intervals_on_the_gpu(tmp_path, data, monkeypatch, path):
    """On CUDA, between log intervals under set_sync_debug_mode("error"): any sync of the steps, the
    prefetching loader or the loop raises. The log intervals (and the run's start: the capture, the
    first batch's checks) run with the mode off."""
    mean, log = trainer_module.mean_over_ranks, trainer_module.Trainer._log

    def mean_over_ranks(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("default")
        return mean(*args, **kwargs)

    def _log(self, *args, **kwargs):
        log(self, *args, **kwargs)
        if self.step < self.total_steps:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(trainer_module, "mean_over_ranks", mean_over_ranks)
    monkeypatch.setattr(trainer_module.Trainer, "_log", _log)
    cfg = tiny_cfg(tmp_path / "run", data, device="cuda", amp="bf16", impl="triton", cuda_graph=path == "graphed_bf16",
                   max_steps=9, log_every=3, niter=2, sample_every=100, save_every=100, ema=0.9)
    try:
        trainer_module.train(cfg, evaluate=False, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 3
