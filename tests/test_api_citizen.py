"""The Python API inside someone else's program (a notebook, a training script): what a call changes of the
process (random generators, torch's switches, signal handlers, log filters) is put back when it returns or
raises. The caller's next draws after a call equal those it would have had without the call. Its switches
take True or False alone: "no" was true."""
import dataclasses
import inspect
import json
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

import bicyclegan.engine as api
from bicyclegan.engine import (
    BicycleGAN,
    DataConfig,
    ModelConfig,
    TrainConfig,
    Trainer,
    download_dataset,
    download_model,
    evaluate,
    evaluate_checkpoints,
    export_generator,
    interpolate,
    load_checkpoint,
    sample,
    sample_columns,
    serve,
    train,
)
from bicyclegan.engine.checkpoint import digest, read_checkpoint, rng_state, save_checkpoint
from bicyclegan.engine.config import check_bool
from bicyclegan.engine.errors import ConfigError, WeightsError
from bicyclegan.engine.networks import build_discriminator, build_encoder, build_generator
from bicyclegan.engine.runtime import device_settings
from bicyclegan.pipelines import make_demo_dataset
from bicyclegan.pipelines.errors import DatasetError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=8, n_test=2, size=32, seed=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A finished run of 2 steps whose checkpoint holds numpy's and Python's states, as an older version's did,
    not the ones the tests seed (a resume puts the checkpoint's in place while it trains)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train(tiny_cfg(out, data, max_steps=2, niter=1, niter_decay=3), progress=False)
    path = out / "checkpoints" / "latest.pt"
    state = read_checkpoint(path)
    np.random.seed(99)
    random.seed(99)
    state["rng"] = rng_state(torch.device("cpu"), host=True)
    state["digest"] = digest(state)
    torch.save(state, path)
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


def failing_trainer(out, data, **options):
    """A Trainer whose third step raises: a run stopped by an error in the middle of its loop."""
    t = Trainer(tiny_cfg(out, data, max_steps=4, **options), progress=False)
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


# -- switches: True or False alone -------------------------------------------------------------------------
def switches(tmp, data, run):
    """(function, argument) -> a call of the function with that argument given as `v`, the others as they work."""
    def cfg():
        return tiny_cfg(tmp / "r", data, max_steps=1)
    return {
        ("train", "progress"): lambda v: train(cfg(), progress=v),
        ("train", "evaluate"): lambda v: train(cfg(), evaluate=v),
        ("train", "tensorboard"): lambda v: train(cfg(), tensorboard=v),
        ("train", "resume"): lambda v: train(cfg(), resume=v),
        ("Trainer", "progress"): lambda v: Trainer(cfg(), progress=v),
        ("Trainer", "tensorboard"): lambda v: Trainer(cfg(), tensorboard=v),
        ("Trainer", "resume"): lambda v: Trainer(cfg(), resume=v),
        ("sample", "sync"): lambda v: sample(run, out=tmp / "s", sync=v),
        ("sample", "encode"): lambda v: sample(run, out=tmp / "s", encode=v),
        ("sample", "spread"): lambda v: sample(run, out=tmp / "s", spread=v),
        ("sample", "progress"): lambda v: sample(run, out=tmp / "s", progress=v),
        ("sample", "skip_bad"): lambda v: sample(run, out=tmp / "s", skip_bad=v),
        ("evaluate", "progress"): lambda v: evaluate(run, progress=v),
        ("evaluate", "skip_bad"): lambda v: evaluate(run, skip_bad=v),
        ("interpolate", "mp4"): lambda v: interpolate(run, out=tmp / "i", mp4=v),
        ("interpolate", "progress"): lambda v: interpolate(run, out=tmp / "i", progress=v),
        ("interpolate", "skip_bad"): lambda v: interpolate(run, out=tmp / "i", skip_bad=v),
        ("evaluate_checkpoints", "reuse"): lambda v: evaluate_checkpoints(run, reuse=v),
        ("export_generator", "verify"): lambda v: export_generator(run, tmp / "g.pt2", verify=v),
        ("load_checkpoint", "training"): lambda v: load_checkpoint(run, training=v),
        ("BicycleGAN", "training"): lambda v: BicycleGAN(cfg(), training=v),
        ("BicycleGAN", "nonfinite", "optimizers"): lambda v: BicycleGAN(cfg()).nonfinite(optimizers=v),
        ("sample_columns", "encode"): lambda v: sample_columns(load_checkpoint(run), torch.zeros(1, 3, 32, 32),
                                                               encode=v),
        ("serve", "skip_bad"): lambda v: serve(run, skip_bad=v, port=0),
        ("download_dataset", "testset"): lambda v: download_dataset("facades", tmp / "d", testset=v),
        ("download_dataset", "progress"): lambda v: download_dataset("facades", tmp / "d", progress=v),
        ("download_model", "progress"): lambda v: download_model("edges2shoes", tmp / "m", progress=v),
    }


# Switches of the public API left as they are, and why.
NOT_CHECKED = {
    ("BicycleGAN", "load_training_state", "strict"): "torch's load_state_dict(strict=) takes any truth value",
    ("Trainer", "validate", "owed_only"): "the training loop's own call",
}


def public_switches():
    """(function or class, argument) of every parameter of bicyclegan.engine's exports annotated bool (methods
    of the classes: (class, method, argument)); a config's fields are test_config's."""
    found = set()
    for name in api.__all__:
        obj = getattr(api, name)
        # (an error's transient= is the engine's own, set where it raises it, not a caller's switch)
        if inspect.isclass(obj) and (dataclasses.is_dataclass(obj) or issubclass(obj, BaseException)):
            continue
        members = ([("__init__", obj.__init__)] + [(m, f) for m, f in vars(obj).items()
                                                    if inspect.isfunction(f) and not m.startswith("_")]
                   if inspect.isclass(obj) else [(None, obj)] if callable(obj) else [])
        for method, fn in members:
            for p in inspect.signature(fn).parameters.values():
                if "bool" in str(p.annotation):
                    found.add((name, p.name) if method in (None, "__init__") else (name, method, p.name))
    return found


def test_every_switch_of_the_api_is_in_the_table(tmp_path):
    assert public_switches() == set(switches(tmp_path, None, None)) | set(NOT_CHECKED)


@pytest.mark.parametrize("key", sorted(switches(None, None, None)), ids="-".join)
@pytest.mark.parametrize("bad", ["no", 0])
def test_a_switch_given_no_bool_is_refused_naming_it_and_the_value(tmp_path, data, run, key, bad):
    """A string such as "no" (true) or 0 (false, where True is meant as 1 is) is a ConfigError naming the
    argument and the value, before any work (no run, no download, no server)."""
    if key[-1] == "resume" and isinstance(bad, str):
        bad = 1.0  # (a string is a checkpoint's path)
    with pytest.raises(ConfigError) as e:
        switches(tmp_path, data, run)[key](bad)
    assert f"{key[-1]}={bad!r} must be true or false" in str(e.value)  # (a method's: (class, method, argument))
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("make,name", [(cls, f.name) for cls in (ModelConfig, DataConfig, TrainConfig)
                                       for f in dataclasses.fields(cls) if f.type in ("bool", bool)])
def test_a_configs_switch_takes_numpys_bools_as_plain_bools(make, name):
    """A numpy bool (a mask's element) is a bool, kept as Python's (config.json, checkpoints)."""
    assert getattr(make(**{name: np.bool_(False)}), name) is False


def test_check_bool_takes_bools_numpys_and_none_where_optional():
    assert check_bool("x", np.bool_(False)) is False and check_bool("x", True) is True
    assert check_bool("x", None, optional=True) is None
    for bad, optional in (("yes", False), (None, False), (1.0, True), ("", True)):
        with pytest.raises(ConfigError, match=f"x={bad!r} must be true or false"):
            check_bool("x", bad, optional)


# -- loaders: closed, not left to the garbage collector ------------------------------------------------------
def workers():
    import multiprocessing
    return multiprocessing.active_children()


def cpu_loader(root, num_workers):
    from bicyclegan.pipelines import make_loader
    return make_loader(root, batch_size=2, load_size=32, crop_size=32, num_workers=num_workers, backend="torch")


def test_close_ends_the_loaders_workers_at_once_and_iterating_after_is_an_error(data):
    with cpu_loader(data, 2) as loader:
        it = iter(loader)
        next(it)  # a pass left half-way keeps the workers' iterator referenced
        assert len(workers()) == 2
        loader.close()
        assert workers() == [] and loader.closed
        loader.close()  # idempotent
        with pytest.raises(ValueError, match="this torch loader is closed .*make another with make_loader"):
            next(it)
        with pytest.raises(ValueError, match="closed"):
            iter(loader)
    with pytest.raises(RuntimeError, match="boom"):
        with cpu_loader(data, 1) as loader:
            next(iter(loader))
            raise RuntimeError("boom")
    assert loader.closed and workers() == []


def test_a_training_that_raises_leaves_no_loader_worker_behind(tmp_path, data):
    with pytest.raises(RuntimeError, match="boom"):
        failing_trainer(tmp_path / "r", data, num_workers=1)
    assert workers() == []


@pytest.fixture(scope="module")
def run_1_worker(tmp_path_factory, data):
    """A finished run whose data options give the loaders the inference commands make a worker process."""
    out = tmp_path_factory.mktemp("runs") / "run1"
    train(tiny_cfg(out, data, max_steps=2, niter=1, niter_decay=3, num_workers=1), progress=False)
    return out


def inference_calls(tmp, data, run):
    """name -> (the call, and the module attribute that, made to raise the error given, stops it mid-way with its
    loader open, a pass begun and the worker holding prefetched batches: a write, a measure, an input's check)."""
    import importlib
    mod = importlib.import_module  # (bicyclegan.engine.sample is the function: the package exports it)
    ev = mod("bicyclegan.engine.evaluate").Evaluation
    return {
        "sample": (lambda: sample(run, out=tmp / "s", num=2, n_samples=1, progress=False),
                   mod("bicyclegan.engine.sample").AtomicWrites, "add", OSError("disk full")),
        "evaluate": (lambda: evaluate(run, n_samples=2, batch_size=1), ev, "_measure", RuntimeError("boom")),
        "evaluate, Ctrl-C": (lambda: evaluate(run, n_samples=2, batch_size=1), ev, "_measure", KeyboardInterrupt()),
        "interpolate": (lambda: interpolate(run, out=tmp / "i", num=2, mp4=False, progress=False),
                        mod("bicyclegan.engine.interpolate"), "check_input_size", RuntimeError("boom")),
        "train's evaluation": (lambda: train(tiny_cfg(tmp / "r", data, max_steps=2, num_workers=1, eval_every=1,
                                                      eval_num=2), progress=False),
                               ev, "_measure", RuntimeError("boom")),
    }


@pytest.mark.parametrize("name, fails", [  # (Ctrl-C returning is evaluate's own case)
    pytest.param(n, f, id=f"{n}-{'raising mid-way' if f else 'returning'}")
    for n in ("sample", "evaluate", "evaluate, Ctrl-C", "interpolate", "train's evaluation") for f in (False, True)
    if f or "Ctrl-C" not in n])
def test_an_inference_call_leaves_no_loader_worker_behind(tmp_path, data, run_1_worker, monkeypatch, name, fails):
    """sample, evaluate, interpolate and a training's evaluations close the loaders they make when they return
    and when they raise, while the caller still holds the error (its traceback holds the call's frames, which
    held the loaders: their worker process and its queue's thread lived on until the garbage collector came)."""
    threads = [t.name for t in threading.enumerate()]
    call, module, attribute, error = inference_calls(tmp_path, data, run_1_worker)[name]
    if fails:
        def fail(*args, **kwargs):
            raise error
        monkeypatch.setattr(module, attribute, fail)
        with pytest.raises(type(error)) as raised:
            call()
        assert raised.value is error
    else:
        call()
    assert workers() == []
    assert new_threads(threads) == []


@pytest.mark.parametrize("refused_by", ["its inputs", "its metric networks"])
def test_an_evaluation_refused_after_making_its_loader_closes_it(tmp_path, run_1_worker, monkeypatch, refused_by):
    """An Evaluation makes its loader first (the split listed and checked once, the loader kept for the first
    run), then checks the inputs against the metrics and loads the metric networks: refused by either, it left
    the loader open (DALI's pipeline: its threads and GPU memory) for as long as the caller held the error."""
    import importlib
    evaluation = importlib.import_module("bicyclegan.engine.evaluate")  # (the package exports the function)
    made, build = [], evaluation.build_loader
    monkeypatch.setattr(evaluation, "build_loader", lambda *a, **k: made.append(build(*a, **k)) or made[-1])
    if refused_by == "its inputs":  # FID of a split of one input
        one = make_demo_dataset(tmp_path / "one", n_train=4, n_test=1, size=32, seed=0)
        with pytest.raises(DatasetError, match="gives 1 input to evaluate: FID compares two sets"):
            evaluation.Evaluation(run_1_worker, one, metrics="fid", fid_weights=tmp_path / "never.pt")
    else:
        with pytest.raises(WeightsError, match="never.pt does not exist"):
            evaluation.Evaluation(run_1_worker, metrics="fid", fid_weights=tmp_path / "never.pt")
    assert len(made) == 1 and made[0].closed


def new_threads(before, wait: float = 5.0) -> list:
    """The names of the threads not in `before` once they have had up to `wait` s to end: a closed queue's
    feeder thread (multiprocessing's) ends on its own, just after the close returns."""
    import time
    deadline = time.monotonic() + wait
    while (new := sorted({t.name for t in threading.enumerate()} - set(before))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return new


# -- the CLI's advice, as a Python caller spells it ----------------------------------------------------------
@pytest.mark.parametrize("call", ["sample", "evaluate", "interpolate", "load_checkpoint"])
def test_a_run_without_latest_pt_says_which_file_a_python_caller_passes(tmp_path, data, call):
    """sample, evaluate and interpolate have no epoch argument: "--epoch N" alone left a Python caller with no
    way to follow it; the message names the epoch's file, which they take (and which the command takes too)."""
    run = tmp_path / "run"
    train(tiny_cfg(run, data, max_steps=2, niter=1, niter_decay=1, save_epoch_freq=1), progress=False)
    (run / "checkpoints" / "latest.pt").unlink()
    assert (run / "checkpoints" / "epoch_1.pt").is_file()  # (the file the advice leads to, which works:)
    calls = {"sample": lambda src: sample(src, out=tmp_path / "s", num=1, n_samples=1, progress=False),
             "evaluate": lambda src: evaluate(src, n_samples=2, num=1, metrics="l1"),
             "interpolate": lambda src: interpolate(src, out=tmp_path / "i", num=1, mp4=False, progress=False),
             "load_checkpoint": load_checkpoint}
    with pytest.raises(api.CheckpointError) as e:
        calls[call](run)
    assert f"give its file, {run / 'checkpoints' / 'epoch_N.pt'} (in Python: epoch=N to train, the file elsewhere)" \
        in str(e.value)
    calls[call](run / "checkpoints" / "epoch_1.pt")


def test_a_run_logging_to_tensorboard_without_its_package_says_train_s_keyword_too(tmp_path, data, monkeypatch):
    """A continued run logs on to the TensorBoard log it has: without the package, the advice was the flag
    --no-tensorboard alone, which train() does not take."""
    import bicyclegan.engine.trainer as trainer_module
    run = tmp_path / "run"
    train(tiny_cfg(run, data, max_steps=1), progress=False)
    (run / "tensorboard").mkdir()  # (as a run trained with tensorboard=True leaves it)

    def no_package(*args, **kwargs):
        raise ConfigError("--tensorboard needs the tensorboard package")
    monkeypatch.setattr(trainer_module, "tensorboard_writer", no_package)  # (checked before the log is opened)
    with pytest.raises(ConfigError) as e:
        train(tiny_cfg(run, data, max_steps=2), resume=True, progress=False)
    assert str(e.value).endswith("; or resume with --no-tensorboard (tensorboard=False in Python)")
    train(tiny_cfg(run, data, max_steps=2), resume=True, progress=False, tensorboard=False)  # (which does)


def test_evaluate_checkpoints_refusals_of_its_json_name_json_path(run, tmp_path):
    """evaluate_checkpoints takes --json as json_path: its refusals said "--json" alone."""
    ckpt = run / "checkpoints" / "latest.pt"
    (tmp_path / "a_file").write_text("")
    for json_path, said in ((tmp_path, f"--json {tmp_path} (json_path in Python) is a folder"),
                            (ckpt, f"--json {ckpt} (json_path in Python) is a bicyclegan checkpoint"),
                            (tmp_path / "a_file" / "s.json", "cannot write --json (json_path in Python) into "
                                                             f"{tmp_path / 'a_file'}: it is a file")):
        with pytest.raises(api.OutputError) as e:
            evaluate_checkpoints(run, json_path=json_path, log=None)
        assert str(e.value).startswith(said)


def test_ranks_that_read_a_changing_checkpoint_name_the_epochs_file_too(tmp_path, monkeypatch):
    """Under torchrun, ranks that read latest.pt as a training replaced it were told "--epoch N" alone, which
    Python's sample, evaluate and interpolate (reached by made_alike) cannot take: the epoch's file is named too.
    The process group is faked: its gathers give every rank's reading as another rank read other weights."""
    from types import SimpleNamespace

    import torch.distributed as tdist

    from bicyclegan.engine.runtime import Dist, made_alike
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    monkeypatch.setattr(tdist, "is_initialized", lambda: True)

    def gather(out, mine):  # rank 1 read step 8's weights, where this rank read step 4's (None: no error)
        out[:] = [mine, None if mine is None else ("other digest", 8)]
    monkeypatch.setattr(tdist, "all_gather_object", gather)
    made = SimpleNamespace(model=SimpleNamespace(source={"path": str(latest), "digest": "digest", "step": 4}))
    with pytest.raises(api.CheckpointError) as e:
        made_alike(Dist(0, 2), lambda: made)
    assert str(e.value) == (f"{latest} changed while the 2 processes read it (steps 4, 8): a training still writing "
                            f"it? Use a checkpoint it no longer writes (--epoch N or give its file, "
                            f"{tmp_path / 'run' / 'checkpoints' / 'epoch_N.pt'})")


def test_every_error_type_a_user_can_meet_is_exported():
    # WeightsError (a metric network's weights missing) was raised to API users but not importable from
    # bicyclegan.engine, where every other error type is.
    import bicyclegan.engine.errors as errors
    made_here = {n for n, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)
                 and obj.__module__ == errors.__name__}
    assert "WeightsError" in made_here and made_here <= set(api.__all__)


class WithPerceptual(BicycleGAN):
    """A follow-up's model: one loss term more for G (a stand-in for a perceptual loss)."""

    def generator_losses(self, A, B):
        L, out = super().generator_losses(A, B)
        L["perc"] = 0.5 * (out["fake_enc"] - out["B1"]).abs().mean()
        return L, out


def test_a_subclass_trains_with_its_own_loss_term_and_on_log_gets_every_row(data, tmp_path, capsys):
    # The trainer built a BicycleGAN whatever the caller's class; a tracker had no hook but log.jsonl
    out, rows = tmp_path / "r", []
    cfg = tiny_cfg(out, data, max_steps=3, niter=3, niter_decay=3)
    train(cfg, progress=False, evaluate=False, model_cls=WithPerceptual, on_log=rows.append)
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows == logged and [r["step"] for r in rows] == [1, 2, 3]
    assert all(isinstance(r["perc"], float) and r["perc"] > 0 for r in rows)  # its term trained and logged
    assert read_checkpoint(out / "checkpoints" / "latest.pt")["model_class"].endswith(".WithPerceptual")
    capsys.readouterr()
    train(tiny_cfg(out, data, max_steps=4, niter=3, niter_decay=3), resume=True, progress=False, evaluate=False)
    assert "note: the run trained a test_api_citizen.WithPerceptual and resumes with a " \
           "bicyclegan.engine.model.BicycleGAN (model_cls in Python, --model_cls on the command line, which refuses " \
           "this resume): from here the objective is the latter's" in capsys.readouterr().err  # its term dropped: said
    with pytest.raises(TypeError, match="model_cls must be BicycleGAN or a subclass of it, got <class 'int'>"):
        Trainer(cfg, model_cls=int)


def test_an_on_log_that_fails_is_said_once_and_the_training_goes_on(data, tmp_path, capsys):
    def flaky(row):
        raise ConnectionError("tracker unreachable")
    out = tmp_path / "r"
    train(tiny_cfg(out, data, max_steps=3, niter=3, niter_decay=3), evaluate=False, on_log=flaky)
    err = capsys.readouterr().err
    assert "note: on_log raised ConnectionError: tracker unreachable (at step 1; the training goes on, log.jsonl " \
           "has every row; said once)" in err and err.count("on_log raised") == 1, err  # (not at steps 2 and 3)
    assert len((out / "log.jsonl").read_text().splitlines()) == 3


def test_extra_entries_cannot_replace_the_checkpoints_own(data, tmp_path):
    # extra={"config": ...} (a natural name for one's experiment's settings) replaced the model's config: the file
    # saved without a word and its loader refused it, the model's config lost
    model = BicycleGAN(tiny_cfg(tmp_path / "r", data), device="cpu")
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=r"extra=\{'config', 'step': \.\.\.\}: the checkpoint's own entries \(it "
                                         r"holds arithmetic, config, .*\); give yours other names"):
        save_checkpoint(model, path, step=7, extra={"step": 123, "config": {"lambda_perc": 1.0}})
    # the engine's entries which readers interpret: {"imported": True} made `sample` a TypeError traceback
    for theirs in ("imported", "model_class", "world", "ema"):
        with pytest.raises(ValueError, match=rf"extra=\{{'{theirs}': \.\.\.\}}: the checkpoint's own entry"):
            save_checkpoint(model, path, extra={theirs: True})
    assert not path.exists()
    save_checkpoint(model, path, step=7, extra={"mine": {"lambda_perc": 1.0}})
    assert read_checkpoint(path)["mine"] == {"lambda_perc": 1.0} and read_checkpoint(path)["step"] == 7


def test_the_builders_name_the_config_they_take_and_a_config_subclass_is_refused_for_its_fields(data, tmp_path):
    cfg = tiny_cfg(tmp_path / "r", data)
    for build in (build_generator, build_encoder, build_discriminator):
        with pytest.raises(TypeError, match=rf"^{build.__name__} takes a ModelConfig \(a TrainConfig's is its "
                                            rf"\.model\), got TrainConfig$"):
            build(cfg)  # ('TrainConfig' object has no attribute 'nz')
        build(cfg.model)

    @dataclasses.dataclass
    class MyCfg(TrainConfig):
        lambda_perc: float = 0.5
    mine = MyCfg(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}, lambda_perc=2.0)
    # ("unknown TrainConfig fields: lambda_perc"; kept, the run's checkpoints were unreadable by every command)
    with pytest.raises(ConfigError, match=r"^BicycleGAN: MyCfg's own fields \(lambda_perc\) would not be kept"):
        BicycleGAN(mine, device="cpu")
