"""`bicyclegan train --model_cls MODULE:CLASS`: a researcher's subclass of BicycleGAN trained, stopped and resumed
from the command line, which trained a plain BicycleGAN (a subclass's run resumed with the command its stop
printed went on without its loss terms, a note alone saying so)."""
import json
import shlex
import sys
import traceback

import pytest

from bicyclegan.engine import BicycleGAN, read_checkpoint
from bicyclegan.engine import train as train_in_python
from bicyclegan.engine.cli import build_parser, main, resolve_config
from bicyclegan.pipelines.demo import make_demo_dataset

TINY_ARGS = ["--crop_size", "32", "--load_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--netG", "unet",
             "--netE", "resnet_128", "--netD", "basic_128_multi", "--netD2", "basic_128_multi", "--impl", "ref",
             "--batch_size", "4", "--niter", "100", "--niter_decay", "100", "--device", "cpu", "--num_workers", "0",
             "--log_every", "1", "--no-progress", "--no-eval"]

MODULE = '''
import os
import signal

from bicyclegan.engine import BicycleGAN


class Marked(BicycleGAN):
    """One loss term more for G, logged as "marked": the run trained this class."""

    def generator_losses(self, A, B):
        L, out = super().generator_losses(A, B)
        L["marked"] = 0.5 * (out["fake_enc"] - out["B1"]).abs().mean()
        return L, out


class Stopping(Marked):
    """Sends itself SIGTERM after its first step, once (the file "stopped" says it did)."""

    def train_step(self, batch):
        out = super().train_step(batch)
        if not os.path.exists("stopped"):
            open("stopped", "w").close()
            signal.raise_signal(signal.SIGTERM)
        return out


class Interrupted(Marked):
    """A Ctrl-C after the run's first checkpoint, outside the stop the run makes of one."""

    def train_step(self, batch):
        if os.path.exists("r/checkpoints/latest.pt"):
            raise KeyboardInterrupt
        return super().train_step(batch)


class Breaking(Marked):
    """Breaks the data's images once the run has its first checkpoint (a dataset rewritten while it trains)."""

    def train_step(self, batch):
        if os.path.exists("r/checkpoints/latest.pt"):
            for f in os.scandir("data/train"):
                with open(f.path, "wb") as out:
                    out.write(b"broken")
        return super().train_step(batch)


def a_function():
    pass


class NotGAN:
    pass
'''


@pytest.fixture
def here(tmp_path, monkeypatch):
    """tmp_path as the current folder, with mymod.py (MODULE), broken.py (importing a module that is not there)
    and demo data; the current folder the command puts on sys.path, and the modules it imports, are gone after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "mymod.py").write_text(MODULE)
    (tmp_path / "broken.py").write_text("import no_such_dependency_xyz\n")
    make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)
    yield tmp_path
    for name in ("mymod", "broken"):
        sys.modules.pop(name, None)


def train(*args):
    return main(["train", *args])


def logged(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_a_subclass_trains_and_resumes_only_with_its_model_cls(here, capsys):
    assert train("--dataroot", "data", *TINY_ARGS, "--out", "r", "--max_steps", "2", "--model_cls",
                 "mymod:Marked") == 0
    assert all(row["marked"] > 0 for row in logged(here / "r"))  # its own term trained and logged
    state = read_checkpoint(here / "r" / "checkpoints" / "latest.pt")
    assert (state["model_class"], state["model_spec"]) == ("mymod.Marked", "mymod:Marked")
    capsys.readouterr()
    # Resumed without it (the command a stop printed), with another class, or dry: refused, naming the option
    refused = ("bicyclegan train: ConfigError: r/checkpoints/latest.pt continues a run that trained a mymod.Marked, "
               "and this command trains a {}: pass --model_cls mymod:Marked to continue it (a checkpoint's class is "
               "not imported from it: that would run code), or start a new run from its weights: --init_from "
               "r/checkpoints/latest.pt --out NEW\n")
    for given, trains in (([], "bicyclegan.engine.model.BicycleGAN"), (["--dry-run"], "bicyclegan.engine.model."
                          "BicycleGAN"), (["--model_cls", "mymod:Stopping"], "mymod.Stopping"),
                          (["--model_cls", "bicyclegan.engine:BicycleGAN"], "bicyclegan.engine.model.BicycleGAN")):
        assert train("--out", "r", "--resume", "--max_steps", "3", *given) == 2, given
        assert capsys.readouterr().err == refused.format(trains), given
    assert train("--out", "r", "--resume", "--max_steps", "3", "--model_cls", "mymod:Marked", "--dry-run") == 0
    assert "model class: mymod:Marked (mymod.Marked)\n" in capsys.readouterr().err  # (the config does not say it)
    assert train("--out", "r", "--resume", "--max_steps", "3", "--model_cls", "mymod:Marked", "--no-progress") == 0
    assert [row["step"] for row in logged(here / "r")] == [1, 2, 3] and logged(here / "r")[-1]["marked"] > 0
    # A new run from its weights takes any class (weights alone)
    assert train("--init_from", "r", "--out", "new", "--max_steps", "1", "--dry-run") == 0


def test_the_command_a_stop_prints_resumes_the_same_model(here, capsys):
    assert train("--dataroot", "data", *TINY_ARGS, "--out", "r", "--max_steps", "3", "--model_cls",
                 "mymod:Stopping") == 128 + 15
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == ("stopped by SIGTERM at step 1 (epoch 1): checkpoint written to r/checkpoints/latest.pt "
                    "(resume=True resumes it in Python); resume with bicyclegan train --model_cls mymod:Stopping "
                    "--out r --resume")
    command = shlex.split(last.split("resume with ")[1])
    assert command[:2] == ["bicyclegan", "train"]
    assert main([*command[1:], "--max_steps", "3", "--no-progress"]) == 0  # pasted as printed
    assert [row["step"] for row in logged(here / "r")] == [1, 2, 3] and logged(here / "r")[-1]["marked"] > 0


def test_the_interrupted_line_resumes_the_same_model(here, capsys):
    assert train("--dataroot", "data", *TINY_ARGS, "--out", "r", "--max_steps", "3", "--save_every", "1",
                 "--model_cls", "mymod:Interrupted") == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "interrupted; the latest checkpoint is intact: bicyclegan train --model_cls mymod:Interrupted --out r "
        "--resume")


def test_the_resume_a_data_error_advises_trains_the_same_model(here, capsys):
    assert train("--dataroot", "data", *TINY_ARGS, "--out", "r", "--max_steps", "6", "--save_every", "1",
                 "--model_cls", "mymod:Breaking") == 2
    err = capsys.readouterr().err
    assert "resume it with --resume --model_cls mymod:Breaking (a resumed run" in err
    # and the new run from its weights it advises too (without the option it trained a plain BicycleGAN)
    assert err.rstrip().endswith("a new run from its weights: --init_from r/checkpoints/latest.pt --model_cls "
                                 "mymod:Breaking --skip_bad --out NEW"), err


def trained_in_python(model_cls, run="r"):
    """A run of model_cls's, one step, by the Python API (as a script or a notebook trains it)."""
    args = build_parser().parse_args(["train", "--dataroot", "data", *TINY_ARGS, "--out", run, "--max_steps", "1"])
    train_in_python(resolve_config(args), progress=False, evaluate=False, model_cls=model_cls)
    state = read_checkpoint(f"{run}/checkpoints/latest.pt")
    return state["model_class"], state["model_spec"]


def test_a_run_of_a_scripts_class_resumes_with_that_class_moved_into_a_module(here, capsys):
    # A class of a script (__main__) or of a function (<locals>) no --model_cls could name, and a resume from the
    # command line was refused whatever it was given, its advice (--model_cls MODULE:CLASS) not to be followed
    scripts = type("Marked", (BicycleGAN,), {"__module__": "__main__"})

    class Marked(BicycleGAN):  # (a function's: test_...<locals>.Marked)
        pass

    assert trained_in_python(scripts) == ("__main__.Marked", "__main__:Marked")
    assert trained_in_python(Marked, "f")[1].endswith(":test_a_run_of_a_scripts_class_resumes_with_that_class_"
                                                      "moved_into_a_module.<locals>.Marked")
    capsys.readouterr()
    refused = ("bicyclegan train: ConfigError: {run}/checkpoints/latest.pt continues a run that trained a {trained}, "
               "and this command trains a {trains}: its class was defined in {where}, where no --model_cls finds "
               "it: move Marked into a module and pass --model_cls MODULE:Marked, or resume it in Python "
               "(resume=True, model_cls=Marked), to continue it (a checkpoint's class is not imported from it: that "
               "would run code), or start a new run from its weights: --init_from {run}/checkpoints/latest.pt "
               "--out NEW\n")
    for run, trained, where in (("r", "__main__.Marked", "a script (__main__)"),
                                ("f", f"{Marked.__module__}.{Marked.__qualname__}", "a function")):
        for given, trains in (([], "bicyclegan.engine.model.BicycleGAN"), (["--model_cls", "mymod:Stopping"],
                                                                            "mymod.Stopping")):
            assert train("--out", run, "--resume", "--max_steps", "2", "--dry-run", *given) == 2, given
            assert capsys.readouterr().err == refused.format(run=run, trained=trained, trains=trains, where=where)
        assert train("--out", run, "--resume", "--max_steps", "2", "--model_cls", "mymod:Marked", "--dry-run") == 0
        assert capsys.readouterr().err.endswith("\nmodel class: mymod:Marked (mymod.Marked)\n")  # (after the data's)
    assert train("--out", "r", "--resume", "--max_steps", "2", "--model_cls", "mymod:Marked", "--no-progress") == 0
    assert [row["step"] for row in logged(here / "r")] == [1, 2] and logged(here / "r")[-1]["marked"] > 0


FORMAT = ("expected MODULE:CLASS, a module's dotted name (not a file's path: run from its folder, or add that to "
          "PYTHONPATH) and a class in it, e.g. mymodels:MyModel")
BAD = [("mymod", FORMAT), ("mymod.py:Marked", FORMAT), ("sub/mymod:Marked", FORMAT),
       ("no_such_module_xyz:Marked", "no module no_such_module_xyz in the current folder ({here}) or the installed "
                                     "packages"),
       ("mymod.sub:Marked", "no module mymod.sub in the current folder ({here}) or the installed packages"),
       ("mymod:Nope", "module mymod ({here}/mymod.py) has no Nope"),
       ("mymod:a_function", "a_function in module mymod ({here}/mymod.py) is a function, not a class"),
       ("mymod:NotGAN", "NotGAN in module mymod ({here}/mymod.py) is not a subclass of BicycleGAN (from "
                        "bicyclegan.engine import BicycleGAN)")]


@pytest.mark.parametrize("spec, said", BAD, ids=[spec for spec, _ in BAD])
def test_a_model_cls_that_is_not_a_subclass_there_is_one_line(here, capsys, spec, said):
    for dry in ([], ["--dry-run"]):
        assert train("--dataroot", "data", *TINY_ARGS, "--out", "r", "--model_cls", spec, *dry) == 2
        assert capsys.readouterr().err == f"bicyclegan train: ConfigError: --model_cls {spec}: " \
                                          f"{said.format(here=here)}\n"
    assert not (here / "r").exists()


def test_an_import_failing_inside_the_users_module_is_its_own_traceback(here):
    with pytest.raises(ModuleNotFoundError, match="No module named 'no_such_dependency_xyz'") as e:
        train("--dry-run", "--model_cls", "broken:Marked")
    assert str(here / "broken.py") in {frame.filename for frame in traceback.extract_tb(e.value.__traceback__)}


def test_the_world_size_refusal_advises_a_new_run_of_the_checkpoints_class(tmp_path):
    """A run of 2 processes resumed with 1 is told to start a new run from its weights: of the class it trained
    (init_from takes any: without --model_cls the advice trained a plain BicycleGAN), from a path the shell reads
    as one word."""
    from bicyclegan.engine.config import TrainConfig
    from bicyclegan.engine.errors import CheckpointError
    from bicyclegan.engine.trainer import _check_resumed
    cfg = TrainConfig(out=str(tmp_path / "run"))
    path = tmp_path / "my run" / "latest.pt"
    state = {"step": 5, "config": cfg.to_dict(), "world": 2, "model_spec": "mymod:Breaking"}
    with pytest.raises(CheckpointError) as e:
        _check_resumed(state, cfg, path, tmp_path / "run", world=1)
    assert f"--init_from '{path}' --model_cls mymod:Breaking --out NEW" in str(e.value)
