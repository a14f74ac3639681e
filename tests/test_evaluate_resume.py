"""`evaluate` run again after a stop (Ctrl-C, SIGTERM, kill -9, a preempted job) goes on where it stopped: the
measures of the batches an earlier call of the same recipe (weights, inputs, options) made are kept beside the results
file (.eval.json.partial) and not made again, and eval.json is then byte for byte the one of a straight call. Any
change of the recipe measures every input again; a kept file that cannot be read, or an input changed since, measures
it and what follows again, said in a line. Each call's work is counted by its calls of sample_columns (inputs
generated); the results are compared with those of a straight call into another file."""
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bicyclegan.engine import BicycleGAN, evaluate, make_config
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.pipelines import make_demo_dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_metrics import random_alexnet_file, random_linear_file  # noqa: E402

EVALUATING = importlib.import_module("bicyclegan.engine.evaluate")  # (the package's `evaluate` is the function)
FID = importlib.import_module("bicyclegan.engine.metrics.fid")
LPIPS = importlib.import_module("bicyclegan.engine.metrics.lpips")
TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch",
            init_gain=1.0)
N, BATCH = 6, 2  # inputs; inputs a batch


def tiny(root, seed=3):
    torch.manual_seed(seed)
    return BicycleGAN(make_config("reference", dataroot=str(root), **TINY), device="cpu", training=False)


@pytest.fixture
def setup(tmp_path):
    """(demo data of N val inputs, a checkpoint of tiny random networks reading it)."""
    root = make_demo_dataset(tmp_path / "demo", n_train=2, n_test=0, n_val=N, size=32)
    return root, save_checkpoint(tiny(root), tmp_path / "m.pt")


@pytest.fixture
def made(monkeypatch):
    """The inputs generated since the last call of it."""
    inputs = []
    real = EVALUATING.sample_columns
    monkeypatch.setattr(EVALUATING, "sample_columns", lambda model, A, *a, **kw: (inputs.append(len(A)),
                                                                                   real(model, A, *a, **kw))[1])

    def count():
        n = sum(inputs)
        inputs.clear()
        return n
    return count


def command(ckpt, root, out, *options):
    return ["evaluate", str(ckpt), "--dataroot", str(root), "--num", str(N), "--n_samples", "3", "--batch_size",
            str(BATCH), "--device", "cpu", "--json", str(out), *map(str, options)]


def stop_after(after: int):
    """A count of the inputs measured that stops the call with a Ctrl-C once `after` are (run()'s count_line: after a
    batch's measures are all made)."""
    def count(label, done, total, step=1):
        if done >= after:
            raise KeyboardInterrupt
    return count


def stopped(argv, after: int, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "count_line", stop_after(after))
        assert main(argv) == 130


def kept(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """LPIPS's networks of random weights, in a torch.hub folder of the test's own; FID's InceptionV3 a fixed
    projection of the images (its 2048 features of a 32 px image took 0.5 s on a CPU: what is kept is the same)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    random_alexnet_file(hub / LPIPS.ALEXNET_FILE)
    random_linear_file(tmp_path / "lin.pth")
    (hub / FID.INCEPTION_FILE).write_bytes(b"x")  # (found where the default is: not loaded)
    w = torch.randn(32 * 32 * 3, 2048, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    monkeypatch.setattr(EVALUATING, "load_inception", lambda *a, **kw: "inception")
    monkeypatch.setattr(EVALUATING, "inception_features", lambda net, x: (x.double().flatten(1) / 255) @ w)
    return tmp_path / "lin.pth"


@pytest.mark.parametrize("after, options", [
    (4, ()),  # the demo's palette and l1
    (4, ("--seed", 5, "--batch_size", 4, "--num", 5)),  # the last batch short of one
    (N, ()),  # stopped as the last batch was measured: nothing made again
    (2, ("--metrics", "lpips,fid,l1", "--lpips_pairs", "all")),  # FID's features, LPIPS's distances
])
def test_a_stopped_evaluation_run_again_measures_the_other_inputs_alone_and_writes_a_straight_calls_json(
        setup, tmp_path, made, capsys, monkeypatch, weights, after, options):
    root, ckpt = setup
    if "lpips,fid,l1" in options:
        options += ("--lpips_linear", weights)
    num = 5 if "--num" in options else N
    assert main(command(ckpt, root, tmp_path / "straight.json", *options)) == 0
    made()
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out, *options), after, monkeypatch)
    assert made() == after and not out.exists() and kept(out).is_dir()
    assert capsys.readouterr().err.endswith("interrupted; the measures made so far are kept: the same command goes "
                                            "on from them\n")
    assert main(command(ckpt, root, out, *options)) == 0
    assert made() == num - after
    assert out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    if after < num:
        assert (f"{after} of {num} inputs already measured by an earlier call of the same weights, inputs and options: "
                f"measuring the other {num - after} (to measure them all again, remove {kept(out)})"
                ) in capsys.readouterr().err
    assert not kept(out).exists()  # (the results written: of no more use)


def test_an_evaluation_of_another_dataset_is_written_apart_and_goes_on_from_its_own_kept_measures(
        setup, tmp_path, made, monkeypatch):
    # evaluate CKPT --dataroot OTHER (a copy of the model's data elsewhere, of the same name and splits) wrote over
    # the model's own evaluation (results/m/val/eval.json); its own folder now, where a stopped call run again still
    # finds the measures it kept
    root, ckpt = setup
    other = shutil.copytree(root, tmp_path / "elsewhere" / root.name)
    monkeypatch.chdir(tmp_path)  # (m.pt is no run's: its results go to ./results/m/)
    argv = ["evaluate", str(ckpt), "--num", str(N), "--n_samples", "3", "--batch_size", str(BATCH), "--device", "cpu"]
    assert main(argv) == 0
    own = tmp_path / "results" / "m" / "val" / "eval.json"
    before = own.read_bytes()
    stopped([*argv, "--dataroot", str(other)], 4, monkeypatch)
    made()
    assert main([*argv, "--dataroot", str(other)]) == 0
    assert made() == N - 4 and own.read_bytes() == before
    [theirs] = set((tmp_path / "results" / "m").glob("*/eval.json")) - {own}
    assert json.loads(theirs.read_text())["dataroot"] == str(other.resolve())
    assert not list(theirs.parent.glob(".*.partial"))


def test_a_straight_evaluation_leaves_nothing_beside_its_results(setup, tmp_path):
    root, ckpt = setup
    assert main(command(ckpt, root, tmp_path / "out" / "e.json")) == 0
    assert os.listdir(tmp_path / "out") == ["e.json"]


@pytest.mark.parametrize("save_fails", [False, True])
def test_a_stop_by_sigterm_keeps_the_measures_too(setup, tmp_path, made, monkeypatch, capsys, save_fails):
    # (the command's handler raises io.Stopped where the signal comes: as a preempted job's) Where their save failed,
    # the stop's line says what is lost, as a Ctrl-C's (EK24)
    root, ckpt = setup
    out = tmp_path / "r.json"
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "count_line", lambda label, done, total, step=1: done >= 2 and os.kill(
            os.getpid(), signal.SIGTERM))
        if save_fails:
            m.setattr(EVALUATING, "atomic_write", lambda path, write, **kw: (_ for _ in ()).throw(
                EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")))
        assert main(command(ckpt, root, out)) == 128 + signal.SIGTERM
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("stopped by SIGTERM: " + ("no measures are kept (their save failed: cannot write " if
                                                     save_fails else "the measures made so far are kept")), last
    made()
    assert main(command(ckpt, root, out)) == 0 and made() == (N if save_fails else N - 2)


def test_the_python_api_goes_on_from_the_folder_it_is_given(setup, tmp_path, made, monkeypatch):
    root, ckpt = setup
    kw = dict(num=N, n_samples=3, batch_size=BATCH, device="cpu", keep=tmp_path / "kept")
    straight = evaluate(ckpt, root, num=N, n_samples=3, batch_size=BATCH, device="cpu")
    made()
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(EVALUATING, "count_line", stop_after(2))
        evaluate(ckpt, root, progress=True, **kw)
    assert made() == 2
    assert evaluate(ckpt, root, **kw) == straight and made() == N - 2
    assert not (tmp_path / "kept").exists()


def _other_weights(root, ckpt):
    save_checkpoint(tiny(root, seed=4), ckpt)  # the same path, new weights (a run trained further)


CHANGES = {  # name: the options of the call after the stop, or a change made to the files; the recipe's key said
    "weights": (_other_weights, "weights"),
    "seed": (("--seed", 4), "seed"),
    "n_samples": (("--n_samples", 2), "n_samples"),
    "batch_size": (("--batch_size", 3), "batch_size"),
    "num": (("--num", 5), "num"),
    "metrics": (("--metrics", "l1"), "metrics, n_palettes"),  # (palette left out: its palettes with it)
    "skip_bad": (("--skip_bad",), "data"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_call_of_another_recipe_measures_every_input_again(setup, tmp_path, made, capsys, monkeypatch, change):
    root, ckpt = setup
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out), 4, monkeypatch)
    how, key = CHANGES[change]
    options = how if isinstance(how, tuple) else (how(root, ckpt), ())[1]
    assert main(command(ckpt, root, tmp_path / "straight.json", *options)) == 0
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out, *options)) == 0
    n = 5 if change == "num" else N
    assert made() == n and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    assert (f"note: the measures kept in {kept(out)} are of another {key} (an earlier call's): measuring every "
            f"input again") in capsys.readouterr().err


@pytest.mark.parametrize("changed, again", [(0, N), (3, N - 2)])
def test_an_input_changed_since_is_measured_again_with_the_inputs_after_it(setup, tmp_path, made, capsys, monkeypatch,
                                                                           changed, again):
    # Each save is a file of its own (SAVE_EVERY 0: one at every batch): those before the changed input's are kept.
    root, ckpt = setup
    out = tmp_path / "r.json"
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    stopped(command(ckpt, root, out), 4, monkeypatch)
    assert sorted(os.listdir(kept(out))) == ["0-of-1.000000.pt", "0-of-1.000001.pt"]
    f = sorted((root / "val").glob("*.png"))[changed]
    img = np.asarray(Image.open(f))
    Image.fromarray(255 - img).save(f)
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out)) == 0
    assert made() == again and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    assert (f"note: input {f} changed since its measures were kept in {kept(out)}: it and the inputs after it are "
            f"measured again") in capsys.readouterr().err


def _cut(f: Path):
    f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])


def _not_measures(f: Path):
    torch.save({"format": EVALUATING.KEPT_FORMAT, "batches": "x"}, f)


def _a_tensor(f: Path):
    torch.save(torch.zeros(2), f)  # (another program's file of that name)


def _got_a_list(f: Path):
    c = torch.load(f, weights_only=True)
    torch.save({**c, "got": list(c["got"])}, f)


def _recipe_not_json(f: Path):
    c = torch.load(f, weights_only=True)
    torch.save({**c, "recipe": "not JSON"}, f)


def _recipe_a_list(f: Path):
    c = torch.load(f, weights_only=True)
    torch.save({**c, "recipe": "[1]"}, f)  # (JSON, but no recipe: take compares its keys)


def _batches_tensors(f: Path):
    c = torch.load(f, weights_only=True)
    torch.save({**c, "batches": [torch.tensor(b) for b in c["batches"]]}, f)


def _format_1(f: Path):
    c = torch.load(f, weights_only=True)
    torch.save({**c, "format": 1}, f)  # (an earlier version's: the palette metric's images kept)


def _text(f: Path):
    f.write_text("not a torch file")


@pytest.mark.parametrize("damage, said", [(_cut, "cannot be read: unreadable or truncated"),
                                          (_not_measures, "are not such measures (damaged or renamed since)"),
                                          (_a_tensor, "are not such measures (damaged or renamed since)"),
                                          (_got_a_list, "are not such measures (damaged or renamed since)"),
                                          (_recipe_not_json, "are not such measures (damaged or renamed since)"),
                                          (_recipe_a_list, "are not such measures (damaged or renamed since)"),
                                          (_batches_tensors, "are not such measures (damaged or renamed since)"),
                                          (_format_1, "are of another version's layout (format 1, this version's 2)"),
                                          (_text, "is not a torch file")])
def test_kept_measures_damaged_since_are_measured_again_said_in_a_line(setup, tmp_path, made, capsys, monkeypatch,
                                                                        damage, said):
    root, ckpt = setup
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out), 4, monkeypatch)
    f = kept(out) / "0-of-1.000000.pt"
    damage(f)
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out)) == 0
    assert made() == N and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    err = capsys.readouterr().err
    assert f"note: kept measures {f} " in err and said in err
    assert "its inputs and those after them are measured again" in err


def test_a_kill_mid_save_leaves_the_measures_saved_before_and_no_temp_file(setup, tmp_path, made):
    # kill -9 while the second batch's measures are written (SAVE_EVERY 0: a save at each batch): what is left is
    # the first batch's file, whole, and the temporary file of the second, never a part of it under its own name.
    # The call run again takes the first batch, measures the others, and removes the temporary file.
    root, ckpt = setup
    out = tmp_path / "r.json"
    code = f"""
import importlib, os, signal, sys
from bicyclegan.engine.cli import main
m = importlib.import_module("bicyclegan.engine.evaluate")
m.SAVE_EVERY = 0.0
real = m.atomic_write
def dying(path, write, **kw):
    if not path.name.endswith(".000001.pt"):
        return real(path, write, **kw)
    def half(f):
        f.write(b"PK\\x03\\x04 half a file")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, half, **kw)
m.atomic_write = dying
sys.exit(main({command(ckpt, root, out)!r}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = sorted(os.listdir(kept(out)))
    assert len(left) == 2 and left[0].startswith(".0-of-1.000001.pt.") and left[1] == "0-of-1.000000.pt", left
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    made()
    assert main(command(ckpt, root, out)) == 0
    assert made() == N - BATCH and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    assert not kept(out).exists()


def test_measures_kept_by_another_number_of_processes_are_not_taken(setup, tmp_path, made, monkeypatch):
    # Each rank's share and batches are its own: a file of rank 0 of 2 (here renamed from one process's) is not
    # taken by one process, and is removed.
    root, ckpt = setup
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out), 4, monkeypatch)
    (kept(out) / "0-of-1.000000.pt").rename(kept(out) / "0-of-2.000000.pt")
    made()
    assert main(command(ckpt, root, out)) == 0 and made() == N
    assert not kept(out).exists()


def test_a_kept_file_records_the_recipe_and_its_inputs(setup, tmp_path, monkeypatch):
    # What a kept file holds beside the measures: the recipe (the weights' digest, the options, the versions) and its
    # inputs' names and SHA-256
    root, ckpt = setup
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out), 2, monkeypatch)
    c = torch.load(kept(out) / "0-of-1.000000.pt", weights_only=True)
    recipe = json.loads(c["recipe"])
    assert recipe["weights"] == torch.load(ckpt, weights_only=True)["digest"]
    assert (recipe["n_samples"], recipe["seed"], recipe["batch_size"], recipe["num"]) == (3, 0, BATCH, N)
    assert c["batches"] == [0, 1] and c["measured"] == [0, 1] and [i for i, _ in c["inputs"]] == [0, 1]
    assert c["inputs"][0][1][0] == "00000.png" and len(c["inputs"][0][1][1]) == 64


def _ranks_worker(rank, world, port, root, ckpt, folder, out_dir):
    """One rank's evaluations: straight, stopped after its first batch (run's stop: every rank's at once), run
    again; what each returned and how many inputs each generated, into out_dir/<rank>.json."""
    import torch.distributed as dist

    from bicyclegan.engine.runtime import Dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    inputs = []
    real = EVALUATING.sample_columns
    EVALUATING.sample_columns = lambda model, A, *a, **kw: (inputs.append(len(A)), real(model, A, *a, **kw))[1]
    kw = dict(num=5, batch_size=BATCH, device="cpu", dist=Dist(rank=rank, world=world))
    asked = []
    said = {"straight": EVALUATING.Evaluation(ckpt, root, **kw).run(3, 0)}
    said["n_straight"], inputs[:] = sum(inputs), []
    said["stopped"] = EVALUATING.Evaluation(ckpt, root, **kw).run(3, 0, keep=folder,
                                                                   stop=lambda: len(asked.append(1) or asked) > 1)
    said["n_stopped"], inputs[:] = sum(inputs), []
    dist.barrier()  # (every rank's kept)
    said["kept"] = sorted(os.listdir(folder))
    said["resumed"] = EVALUATING.Evaluation(ckpt, root, **kw).run(3, 0, keep=folder)
    said["n_resumed"] = sum(inputs)
    Path(out_dir, f"{rank}.json").write_text(json.dumps(said))
    dist.destroy_process_group()


@pytest.mark.slow
def test_under_torchrun_each_rank_goes_on_from_its_own_share(setup, tmp_path):
    # 5 inputs in 2 shares, 2 and 3 (batches of 2: rank 0's one, rank 1's two); stopped after each rank's first
    # batch, run again: rank 1 measures its last input alone, and the result is the straight launch's.
    from test_distributed import _free_ports, spawn_ranks
    root, ckpt = setup
    spawn_ranks(_ranks_worker, (2, _free_ports(1)[0], str(root), str(ckpt), str(tmp_path / "kept"), str(tmp_path)))
    said = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert [s["n_straight"] for s in said] == [2, 3] and [s["n_stopped"] for s in said] == [2, 2]
    assert said[0]["kept"] == said[1]["kept"] == ["0-of-2.000000.pt", "1-of-2.000000.pt"]
    assert [s["stopped"] for s in said] == [None, None] and [s["n_resumed"] for s in said] == [0, 1]
    assert said[0]["resumed"] == said[1]["resumed"] == said[0]["straight"]


def _lost_worker(rank, world, port, root, ckpt, out_dir):
    """One rank's evaluations where rank 1's saves of its kept measures all fail (a full disk of its own) and rank 0's
    are written, a save due at every batch: one stopped by a Ctrl-C at each rank's third batch (its own, as a signal
    comes: no collective reached), one run to its result; what rank 0 said of the measures lost, into
    out_dir/<rank>.json."""
    import torch.distributed as dist

    from bicyclegan.engine.runtime import Dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    EVALUATING.SAVE_EVERY = 0
    if rank == 1:
        def full(path, write, **kw):
            raise EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")
        EVALUATING.atomic_write = full
    calls, real = [], EVALUATING.sample_columns

    def generate(model, A, *a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model, A, *a, **kw)
    EVALUATING.sample_columns = generate
    kw = dict(num=N, batch_size=1, device="cpu", dist=Dist(rank=rank, world=world))
    said = {}
    ev = EVALUATING.Evaluation(ckpt, root, **kw)
    try:
        ev.run(3, 0, keep=Path(out_dir, "stopped"))
    except KeyboardInterrupt as e:
        said["stopped"] = getattr(e, "measures_lost", None)
    calls.append(1)  # (no stop again)
    ev = EVALUATING.Evaluation(ckpt, root, **kw)
    ev.run(3, 0, keep=Path(out_dir, "result"))
    said["result"] = ev.kept_lost
    Path(out_dir, f"{rank}.json").write_text(json.dumps(said))
    dist.destroy_process_group()


@pytest.mark.slow
def test_under_torchrun_rank_0_says_another_ranks_measures_lost(setup, tmp_path):
    # Each rank saves its own share's measures: a save failed on rank 1 alone (its disk full) was left out of the line
    # rank 0 prints, which said them kept. Rank 0 now says rank 1's too: at a stop, as the last round told it (the
    # rounds carry each rank's state: a stop has no collective, a rank may be gone), and at a result each rank's words.
    from test_distributed import _free_ports, spawn_ranks
    root, ckpt = setup
    spawn_ranks(_lost_worker, (2, _free_ports(1)[0], str(root), str(ckpt), str(tmp_path)))
    said = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert said[0]["stopped"] == ("rank 1: no measures are kept (its save failed): the same command measures its "
                                  "inputs again"), said
    assert said[0]["result"] == (f"rank 1: no measures are kept (their save failed: cannot write evaluation's kept "
                                 f"measures {tmp_path / 'result' / '1-of-2.000000.pt'}: No space left on device): the "
                                 f"same command measures every input again"), said
    assert said[1]["stopped"].startswith("no measures are kept (their save failed: cannot write "), said  # (its own)
    assert sorted(os.listdir(tmp_path / "stopped")) == ["0-of-2.000000.pt", "0-of-2.000001.pt"]  # (rank 0's)


def _two_checkpoints(root, tmp_path) -> Path:
    """A run folder of two checkpoints (epoch_1.pt at step 10, latest.pt at 20) of tiny models of other weights."""
    run = tmp_path / "run"
    for seed, name, step in ((3, "epoch_1.pt", 10), (4, "latest.pt", 20)):
        save_checkpoint(tiny(root, seed), run / "checkpoints" / name, step=step, epoch=step // 10)
    return run


def _sweep_argv(run, root) -> list[str]:
    return ["evaluate", str(run), "--epoch", "all", "--dataroot", str(root), "--num", str(N), "--n_samples", "3",
            "--batch_size", str(BATCH), "--device", "cpu", "--reuse"]


def test_a_stopped_sweep_goes_on_inside_the_checkpoint_it_stopped_in(setup, tmp_path, capsys):
    # evaluate --epoch all: each checkpoint's measures are kept beside its eval.json; stopped inside the second
    # checkpoint (after its second batch), the sweep run again with --reuse keeps the first's eval.json and measures
    # the second's last batch alone. Every file is then a straight sweep's.
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    argv = _sweep_argv(run, root)
    assert main(argv) == 0
    results = run / "results"
    straight = {str(p.relative_to(results)): p.read_bytes() for p in results.rglob("*.json")}
    for p in results.rglob("*.json"):
        p.unlink()
    inputs, real = [], EVALUATING.sample_columns

    def generate(model, A, *a, **kw):
        if len(inputs) == N // BATCH + 2:  # the second checkpoint's third batch
            raise KeyboardInterrupt
        inputs.append(len(A))
        return real(model, A, *a, **kw)
    EVALUATING.sample_columns = generate
    try:
        assert main(argv) == 130
        err = capsys.readouterr().err
        assert err.endswith(
            "interrupted; each checkpoint measured so far has its eval.json, the one it stopped in its measures so "
            "far: the same command goes on from them\n")
        assert "kept in" not in err, err  # (the stop's line is the command's alone: MQ31)
        assert sorted(os.listdir(results / "val_epoch_1")) == ["eval.json"]
        assert os.listdir(results / "val" / ".eval.json.partial") == ["0-of-1.000000.pt"]
        inputs.clear()
        inputs.extend([0] * 100)  # (no stop again)
        assert main(argv) == 0
    finally:
        EVALUATING.sample_columns = real
    assert sum(inputs) == N - 2 * BATCH
    # said, as evaluate's: the stop's line promised it, and the sweep run again went on from them without a word
    assert (f"{2 * BATCH} of {N} inputs already measured by an earlier call of the same weights, inputs and "
            f"options: measuring the other {N - 2 * BATCH}") in capsys.readouterr().err
    assert {str(p.relative_to(results)): p.read_bytes() for p in results.rglob("*.json")} == straight
    assert not (results / "val" / ".eval.json.partial").exists()


@pytest.mark.parametrize("change", ["kept file damaged", "input changed"])
def test_a_sweep_run_again_says_why_it_measures_its_kept_measures_again_as_evaluate_does(setup, tmp_path, made,
                                                                                       monkeypatch, capsys, change):
    # Stopped inside its second checkpoint, then that checkpoint's kept file cut, or the split's first input changed:
    # the sweep run again measures them again and says why, in a single evaluate's words (its run() is quiet: they
    # were measured again without a word)
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    folder = run / "results" / "val" / ".eval.json.partial"
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "sample_columns", _failing_at(N // BATCH + 3, KeyboardInterrupt))
        assert main(_sweep_argv(run, root)) == 130
    [f] = folder.iterdir()
    if change == "kept file damaged":
        _cut(f)
        said = [f"note: kept measures {f} cannot be read", "its inputs and those after them are measured again"]
    else:
        img = sorted((root / "val").glob("*.png"))[0]
        Image.fromarray(255 - np.asarray(Image.open(img))).save(img)
        said = [f"note: input {img} changed since its measures were kept in {folder}: it and the inputs after it are "
                f"measured again"]
    made()
    capsys.readouterr()
    assert main(_sweep_argv(run, root)) == 0
    err = capsys.readouterr().err
    assert all(line in err for line in said), err
    # (latest.pt's inputs all measured again; epoch_1.pt's eval.json reused, but where its split changed)
    assert made() == (N if change == "kept file damaged" else 2 * N)


def test_a_save_that_fails_mid_run_is_a_note_and_the_evaluation_goes_on(setup, tmp_path, made, capsys, monkeypatch):
    # A full disk (or an unwritable folder) where the measures are kept: the evaluation, whose measures are in memory,
    # goes on without keeping more (one line), and writes the straight call's results.
    root, ckpt = setup
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    out = tmp_path / "r.json"
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    tried = []

    def full(path, write, **kw):
        tried.append(path)
        raise EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")
    monkeypatch.setattr(EVALUATING, "atomic_write", full)
    capsys.readouterr()
    assert main(command(ckpt, root, out)) == 0
    assert out.read_bytes() == (tmp_path / "straight.json").read_bytes() and len(tried) == 1
    err = capsys.readouterr().err
    assert err.count("note: the measures are no longer kept (cannot write evaluation's kept measures") == 1, err
    assert not kept(out).exists()


@pytest.mark.parametrize("how", ["folder", "unreadable"])
def test_a_kept_file_that_cannot_be_read_or_removed_is_a_note(setup, tmp_path, made, capsys, monkeypatch, how):
    # A kept file in the way: a folder of its name, or one this user cannot read (another's, on a shared disk):
    # its inputs and those after it are measured again, said in a line; the results are the straight call's.
    root, ckpt = setup
    out = tmp_path / "r.json"
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    stopped(command(ckpt, root, out), 4, monkeypatch)
    f = kept(out) / "0-of-1.000001.pt"
    if how == "folder":
        f.unlink()
        (f / "x").mkdir(parents=True)
    else:
        real = EVALUATING.read_torch_file

        def denied(path, **kw):
            if Path(path) == f:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, **kw)
        monkeypatch.setattr(EVALUATING, "read_torch_file", denied)
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out)) == 0
    assert made() == N - BATCH and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    err = capsys.readouterr().err
    assert f"note: kept measures {f} " in err and "its inputs and those after them are measured again" in err, err


@pytest.fixture
def painter(monkeypatch):
    """The tiny model's outputs replaced by colours the palette metric finds (its random weights' are all invalid):
    each output the B of another input of its batch (a palette of the demo's, on another's shapes: valid or not by
    how they overlap), the encoded column an odd row's the B before it; every input's columns, in the order made."""
    made_cols, real = [], EVALUATING.sample_columns

    def paint(model, A, B=None, z=None, **kw):
        cols, names = real(model, A, B, z, **kw)
        for k, name in enumerate(names):
            if name.startswith("random"):
                cols[k] = B.roll(k, 0)
            elif name == "encoded":
                cols[k] = torch.where((torch.arange(len(B)) % 2 == 1)[:, None, None, None], B.roll(1, 0), B)
        made_cols.append((A.clone(), [c.clone() for c in cols], names))
        return cols, names
    monkeypatch.setattr(EVALUATING, "sample_columns", paint)
    return made_cols


def test_the_palette_metric_keeps_each_outputs_palette_not_its_image(setup, tmp_path, painter, monkeypatch):
    # The palettes are classified as each batch is made, and those kept (an index an output, a bool an input), not the
    # images (1.1 MB an input at 64 px and 20 z); the figures are those of the images classified all at once.
    from bicyclegan.engine.metrics import classify_palettes, palette_coverage
    root, ckpt = setup
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    r = json.loads((tmp_path / "straight.json").read_text())
    A = torch.cat([a for a, _, _ in painter])
    outs = torch.cat([torch.stack([c for c, n in zip(cols, names) if n.startswith("random")], 1)
                      for _, cols, names in painter])
    B, enc = (torch.cat([cols[names.index(n)] for _, cols, names in painter]) for n in ("ground truth", "encoded"))
    want = palette_coverage(A, list(outs))
    assert 0 < want["validity"] < 1 and want["coverage"] > 0  # (figures a mistake would change)
    assert {k: r[k] for k in want} == want
    match = (classify_palettes(A, enc)[0] == classify_palettes(A, B)[0]).float().mean()
    assert 0 < match < 1 and r["encoded_palette_match"] == float(match)
    painter.clear()
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out), 4, monkeypatch)
    f = kept(out) / "0-of-1.000000.pt"
    c = torch.load(f, weights_only=True)
    assert sum(t.numel() * t.element_size() for t in c["got"].values() if t is not None) <= 4 * 3 * 8 + 4 + 4 * 16
    assert main(command(ckpt, root, out)) == 0
    assert out.read_bytes() == (tmp_path / "straight.json").read_bytes()


def test_measures_kept_on_a_processor_of_other_vector_instructions_are_not_taken(setup, tmp_path, made, capsys,
                                                                                monkeypatch):
    # A preempted job run again on a cluster node of another kind: AVX2's kernels sum in lanes of another width than
    # AVX-512's, and a mix of the two nodes' measures is neither's straight call.
    root, ckpt = setup
    out = tmp_path / "r.json"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    stopped(command(ckpt, root, out), 4, monkeypatch)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out)) == 0 and made() == N
    assert (f"note: the measures kept in {kept(out)} are of another processor (an earlier call's): measuring every "
            f"input again") in capsys.readouterr().err


def test_the_recipe_records_dalis_version_where_dali_reads_the_inputs(setup, monkeypatch):
    # DALI decodes and resizes the inputs where it is the loader (a GPU's "auto"): its version, as Pillow's, changes
    # their pixels.
    import types

    from bicyclegan.engine.runtime import made_from
    root, ckpt = setup
    model = tiny(root)
    dali = types.ModuleType("nvidia.dali")
    monkeypatch.setitem(sys.modules, "nvidia", types.ModuleType("nvidia"))
    monkeypatch.setitem(sys.modules, "nvidia.dali", dali)
    sys.modules["nvidia"].dali = dali
    recipes = []
    for version in ("1.40.0", "1.41.0"):
        dali.__version__ = version
        recipes.append(made_from(model, False, model.cfg, types.SimpleNamespace(layout="aligned", backend="dali")))
    assert [r["dali"] for r in recipes] == ["1.40.0", "1.41.0"]
    assert "dali" not in made_from(model, False, model.cfg, types.SimpleNamespace(layout="aligned", backend="torch"))


def test_a_metric_networks_file_replaced_keeping_its_size_and_time_measures_every_input_again(
        setup, tmp_path, made, capsys, monkeypatch, weights):
    # LPIPS's linear layers of other weights copied over the file with its time kept (cp -p, rsync -a, a tar's
    # extraction): the same size (the same shapes), another distance for every pair.
    root, ckpt = setup
    out, options = tmp_path / "r.json", ("--metrics", "lpips,l1", "--lpips_linear", weights)
    stopped(command(ckpt, root, out, *options), 4, monkeypatch)
    st = weights.stat()
    random_linear_file(weights, seed=2)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size
    assert main(command(ckpt, root, tmp_path / "straight.json", *options)) == 0
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out, *options)) == 0
    assert made() == N and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    assert (f"note: the measures kept in {kept(out)} are of another metric_weights (an earlier call's): measuring "
            f"every input again") in capsys.readouterr().err


def test_a_sweep_leaves_no_measures_of_a_checkpoint_whose_outputs_diverge(setup, tmp_path, monkeypatch):
    # The second checkpoint's outputs not finite at its second batch: its row is the error, the sweep goes on and
    # ends, and the measures of its first batch (kept as run() ended with the error) are of no more use.
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    calls, real = [], EVALUATING.sample_columns

    def diverging(model, A, *a, **kw):
        calls.append(1)
        cols, names = real(model, A, *a, **kw)
        return ([c * float("nan") for c in cols] if len(calls) == N // BATCH + 2 else cols), names
    monkeypatch.setattr(EVALUATING, "sample_columns", diverging)
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    assert main(["evaluate", str(run), "--epoch", "all", "--dataroot", str(root), "--num", str(N), "--n_samples", "3",
                 "--batch_size", str(BATCH), "--device", "cpu"]) == 0
    rows = json.loads((run / "results" / "val_sweep" / "sweep.json").read_text())
    assert "error" not in rows[0] and "not finite" in rows[1]["error"]
    assert [p.name for p in (run / "results").rglob("*") if p.name.endswith(".partial")] == []


def test_measures_kept_among_another_number_of_palettes_are_not_taken(setup, tmp_path, made, capsys, monkeypatch):
    # The palettes are classified as each batch is made: a palettes.json of another n_palettes since (the images the
    # same) classifies the outputs among other palettes.
    root, ckpt = setup
    out = tmp_path / "r.json"
    stopped(command(ckpt, root, out), 4, monkeypatch)
    palettes = root / "val" / "palettes.json"
    palettes.write_text(json.dumps({**json.loads(palettes.read_text()), "n_palettes": 3}))
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    made()
    capsys.readouterr()
    assert main(command(ckpt, root, out)) == 0
    assert made() == N and out.read_bytes() == (tmp_path / "straight.json").read_bytes()
    assert "are of another n_palettes (an earlier call's)" in capsys.readouterr().err



def test_a_results_file_of_a_name_near_the_limit_keeps_its_measures_too(setup, tmp_path, made, monkeypatch):
    # --json of a 250-byte name: .NAME.partial beside it is 9 bytes over a file system's 255 (where the results file
    # is not): "File name too long", a traceback. Its folder's name is cut as atomic_write's temp files' are.
    root, ckpt = setup
    out = tmp_path / ("e" * 245 + ".json")
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    stopped(command(ckpt, root, out), 4, monkeypatch)
    [folder] = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(os.fsencode(folder.name)) <= 255 and os.listdir(folder) == ["0-of-1.000000.pt"]
    made()
    assert main(command(ckpt, root, out)) == 0 and made() == N - 4
    assert out.read_bytes() == (tmp_path / "straight.json").read_bytes() and not folder.exists()


def diverging_at(batch: int, monkeypatch):
    """The model's outputs not finite from its `batch`-th batch on (0: the first), as a diverged one's."""
    calls, real = [], EVALUATING.sample_columns

    def diverging(model, A, *a, **kw):
        calls.append(1)
        cols, names = real(model, A, *a, **kw)
        return ([c * float("nan") for c in cols] if len(calls) > batch else cols), names
    monkeypatch.setattr(EVALUATING, "sample_columns", diverging)


def test_an_evaluation_whose_outputs_are_not_finite_leaves_no_measures(setup, tmp_path, monkeypatch, capsys):
    # Its error is its result, which the same call meets again (the same weights): the measures of the batches before
    # it (saved at each batch here) are of no use, and a later evaluation (of the run's next latest.pt) told of
    # them as "of another weights", as a sweep leaves none (above).
    root, ckpt = setup
    out = tmp_path / "r.json"
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    diverging_at(2, monkeypatch)
    assert main(command(ckpt, root, out)) == 2
    err = capsys.readouterr().err
    assert "the model's outputs are not finite" in err and "kept" not in err, err  # (EK06: "note: ... are kept in")
    assert not kept(out).exists() and not out.exists()
    with pytest.raises(EVALUATING.DivergenceError):  # (a call that keeps nothing: nothing to remove; EK04)
        evaluate(ckpt, root, num=N, n_samples=3, batch_size=BATCH, device="cpu")
    keep = tmp_path / "kept"
    with pytest.raises(EVALUATING.DivergenceError):
        evaluate(ckpt, root, num=N, n_samples=3, batch_size=BATCH, device="cpu", keep=keep)
    assert not keep.exists()


def _failing_at(at, error=None):
    """sample_columns that raises `error` (an input that cannot be read any more) at its `at`-th call."""
    real, calls = EVALUATING.sample_columns, []
    error = error or EVALUATING.DatasetError

    def failing(model, A, *a, **kw):
        calls.append(1)
        if len(calls) == at:
            raise error("cannot read an input (Input/output error)")
        return real(model, A, *a, **kw)
    return failing


@pytest.mark.parametrize("at", [1, 3])
def test_an_evaluation_ended_by_another_error_keeps_its_measures_says_so_and_goes_on_from_them(
        setup, tmp_path, made, monkeypatch, capsys, at):
    # An input that cannot be read any more (a disk gone), the machine's memory: the same command may well succeed
    # later, and goes on from the measures kept, as a stopped one; the error's line says so. At the first batch
    # nothing is kept, and nothing is said kept (EK14).
    root, ckpt = setup
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    out = tmp_path / "r.json"
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "sample_columns", _failing_at(at))
        capsys.readouterr()
        assert main(command(ckpt, root, out)) == 2
    err = capsys.readouterr().err
    note = f"note: the measures made so far are kept in {kept(out)}: the same command goes on from them\n"
    assert (note in err) == (at > 1) and ("kept" in err) == (at > 1), err
    assert err.endswith("DatasetError: cannot read an input (Input/output error)\n"), err
    made()
    assert main(command(ckpt, root, out)) == 0 and made() == N - (at - 1) * BATCH
    assert out.read_bytes() == (tmp_path / "straight.json").read_bytes() and not kept(out).exists()


def test_another_error_says_once_under_torchrun_that_the_measures_are_kept(setup, tmp_path, monkeypatch, capsys):
    # Every rank keeps its share into the one folder and meets the error (raise_any): each rank said the same line
    # of it, 8 lines under torchrun of 8 (a rank's save that failed says its own: what it lost). Rank 1 of 2 here,
    # alone: its share's second batch fails, its first kept; rank 0 says it (the test above)
    from bicyclegan.engine.runtime import Dist
    root, ckpt = setup
    monkeypatch.setattr(EVALUATING, "sample_columns", _failing_at(2))
    ev = EVALUATING.Evaluation(ckpt, root, num=N, batch_size=BATCH, device="cpu", dist=Dist(rank=1, world=2))
    capsys.readouterr()
    with pytest.raises(EVALUATING.DatasetError):
        ev.run(3, 0, progress=True, keep=tmp_path / "kept")
    assert [f.name for f in (tmp_path / "kept").iterdir()] == ["1-of-2.000000.pt"]  # (its first batch's)
    assert "kept" not in capsys.readouterr().err


@pytest.mark.parametrize("fails_at", [0, 1])
def test_a_stop_after_a_failed_save_does_not_say_the_measures_are_kept(setup, tmp_path, made, monkeypatch, capsys,
                                                                       fails_at):
    # A full disk where the measures are kept: the save of the first batch (fails_at 0) or of the second (1) fails;
    # Ctrl-C after the third. The line says what is kept (nothing; the first batch's), and the call run again
    # measures what it says.
    root, ckpt = setup
    out = tmp_path / "r.json"
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    real, tried = EVALUATING.atomic_write, []

    def full(path, write, **kw):
        tried.append(path)
        if len(tried) > fails_at:
            raise EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")
        return real(path, write, **kw)
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "atomic_write", full)
        stopped(command(ckpt, root, out), 3 * BATCH, monkeypatch)
    err = capsys.readouterr().err
    assert "the measures made so far are kept" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("interrupted; ") and "No space left on device" in last, last
    assert ("no measures are kept" in last) == (fails_at == 0), last
    assert ("the same command goes on from those saved before" in last) == (fails_at == 1), last
    assert err.count(last.removeprefix("interrupted; ")) == 1, err  # (said by the stop's line alone; EK12)
    made()
    assert main(command(ckpt, root, out)) == 0 and made() == N - fails_at * BATCH


def test_what_a_failed_save_lost_is_each_runs_own(setup, tmp_path, monkeypatch):
    # kept_lost (what the evaluate and compare commands say a failed save of the measures lost) is the last run()'s:
    # an Evaluation run again, its saves written, or keeping nothing, lost nothing (EK01)
    root, ckpt = setup
    ev = EVALUATING.Evaluation(ckpt, root, num=N, batch_size=BATCH, device="cpu")

    def full(path, write, **kw):
        raise EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "atomic_write", full)
        ev.run(3, 0, keep=tmp_path / "a")
    assert ev.kept_lost.startswith("no measures are kept (their save failed: cannot write evaluation's kept "), \
        ev.kept_lost
    ev.run(3, 0, keep=tmp_path / "b")
    assert ev.kept_lost == "" and (tmp_path / "b").is_dir()
    with monkeypatch.context() as m:
        m.setattr(EVALUATING, "atomic_write", full)
        ev.run(3, 0, keep=tmp_path / "c")
    assert ev.kept_lost.startswith("no measures are kept")
    ev.run(3, 0)
    assert ev.kept_lost == ""
    with monkeypatch.context() as m:  # (an error of no words: named by its type, and no more saves tried; EK16)
        m.setattr(EVALUATING, "atomic_write", lambda path, write, **kw: (_ for _ in ()).throw(OSError()))
        ev.run(3, 0, keep=tmp_path / "d")
    assert ev.kept_lost == "no measures are kept (their save failed: OSError): the same command measures every input " \
        "again"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("error", [EVALUATING.DatasetError, KeyboardInterrupt])
def test_an_error_ends_the_count_line_on_a_terminal_before_what_follows(setup, tmp_path, monkeypatch, error):
    # On a terminal the count is rewritten in place ("\revaluated 2/6"): an error inside the evaluation ends its line,
    # and the note of the measures kept that follows (then the error's line) begins on one of its own (EK03); a stop's
    # line is the command's, which says them kept: no note (EK13)
    root, ckpt = setup
    monkeypatch.setattr(EVALUATING, "sample_columns", _failing_at(2, error))
    monkeypatch.setattr(sys, "stderr", _Terminal())
    keep = tmp_path / "kept"
    with pytest.raises(error):
        evaluate(ckpt, root, num=N, n_samples=3, batch_size=BATCH, device="cpu", keep=keep, progress=True)
    note = f"note: the measures made so far are kept in {keep}: the same command goes on from them\n"
    assert sys.stderr.getvalue().split("\r")[-1] == f"evaluated {BATCH}/{N}\n" + (
        "" if error is KeyboardInterrupt else note)


@pytest.mark.parametrize("b_seed, b_drops", [(0, False), (5, False), (0, True)])
def test_two_evaluations_keeping_into_one_folder_at_once_may_redo_work_but_never_mix_it(setup, tmp_path, made,
                                                                                        monkeypatch, b_seed, b_drops):
    # Two calls keeping their measures in one folder at once (two jobs of one command; b_seed 5: of another recipe),
    # each saving at each batch (SAVE_EVERY 0), one's files replacing the other's of the same first batch: B runs
    # whole before A's third batch (as evaluate(), removing the folder, where b_drops), then A goes on, and is stopped
    # as it would measure its third where B kept its files. Every result, A's, B's and that of the calls run again from
    # what is left, is a straight call's.
    root, ckpt = setup
    opts = dict(num=N, batch_size=BATCH, device="cpu")
    straight = {seed: evaluate(ckpt, root, n_samples=3, seed=seed, **opts) for seed in {0, b_seed}}
    keep = tmp_path / "kept"
    monkeypatch.setattr(EVALUATING, "SAVE_EVERY", 0.0)
    asked, got_b = [], []

    def a_stop():  # asked before each of A's batches
        asked.append(1)
        if len(asked) == 3:
            got_b.append(evaluate(ckpt, root, n_samples=3, seed=b_seed, keep=keep, **opts) if b_drops else
                         EVALUATING.Evaluation(ckpt, root, **opts).run(3, b_seed, keep=keep))
        return len(asked) == 3 and not b_drops
    a = EVALUATING.Evaluation(ckpt, root, **opts).run(3, 0, stop=a_stop, keep=keep)
    assert got_b == [straight[b_seed]] and a == (straight[0] if b_drops else None)
    if b_drops:  # (A's second and third batches': of the first none, as B removed it, so none taken below)
        assert sorted(os.listdir(keep)) == ["0-of-1.000001.pt", "0-of-1.000002.pt"]
    made()
    for seed in sorted({0, b_seed}, reverse=True):
        assert evaluate(ckpt, root, n_samples=3, seed=seed, keep=keep, **opts) == straight[seed]
    assert made() <= 2 * N


@pytest.mark.parametrize("save_fails, error", [(False, OSError), (True, OSError), (False, TypeError)])
def test_results_that_cannot_be_written_keep_every_measure_and_say_so(setup, tmp_path, made, monkeypatch, capsys,
                                                                      save_fails, error):
    # eval.json's write failing (a full disk, a folder gone) after every input was measured: the measures are all kept
    # as the evaluation ended (a save at its end, not only each minute), said in a line, and the same command run
    # again measures nothing and writes the straight call's results. Where their save failed too, the line says what
    # is lost, not "kept" (EK17), and the command run again measures every input. A bug's error (its traceback) says
    # the measures kept too (EK18).
    root, ckpt = setup
    assert main(command(ckpt, root, tmp_path / "straight.json")) == 0
    out = tmp_path / "r.json"
    io = importlib.import_module("bicyclegan.engine.io")
    real = io.write_json

    def full(path, obj, **kw):
        if Path(path) == out:
            raise (EVALUATING.OutputError(f"cannot write evaluation results {path}: No space left on device")
                   if error is OSError else error("a bug"))
        return real(path, obj, **kw)
    with monkeypatch.context() as m:
        m.setattr(io, "write_json", full)
        if save_fails:
            m.setattr(EVALUATING, "atomic_write", lambda path, write, **kw: (_ for _ in ()).throw(
                EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")))
        made()
        capsys.readouterr()
        if error is OSError:
            assert main(command(ckpt, root, out)) == 2
        else:
            with pytest.raises(error, match="a bug"):
                main(command(ckpt, root, out))
    assert made() == N
    err = capsys.readouterr().err.splitlines()
    assert (f"note: the measures are kept in {kept(out)}: the same command goes on from them" in err) != save_fails
    if error is OSError:
        assert (err[-2].startswith("note: no measures are kept (their save failed: cannot write evaluation's kept ")
                and err[-2].endswith(": the same command measures every input again")) == save_fails, err
    assert main(command(ckpt, root, out)) == 0 and made() == (N if save_fails else 0)
    assert out.read_bytes() == (tmp_path / "straight.json").read_bytes() and not kept(out).exists()


def test_a_stopped_sweep_whose_save_failed_says_what_is_lost(setup, tmp_path, monkeypatch, capsys):
    # evaluate --epoch all stopped inside its second checkpoint where no save of its measures could be written: the
    # line keeps the first checkpoint's eval.json and says that the second's measures are not kept.
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    inputs, real = [], EVALUATING.sample_columns

    def generate(model, A, *a, **kw):
        if len(inputs) == N // BATCH + 2:  # the second checkpoint's third batch
            raise KeyboardInterrupt
        inputs.append(len(A))
        return real(model, A, *a, **kw)
    monkeypatch.setattr(EVALUATING, "sample_columns", generate)

    def full(path, write, **kw):
        raise EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")
    monkeypatch.setattr(EVALUATING, "atomic_write", full)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--epoch", "all", "--dataroot", str(root), "--num", str(N), "--n_samples", "3",
                 "--batch_size", str(BATCH), "--device", "cpu", "--reuse"]) == 130
    err = capsys.readouterr().err
    assert err.count("no measures are kept") == 1, err  # (the stop's line says it, the sweep's none: MQ30)
    assert err.endswith(
        "interrupted; each checkpoint measured so far has its eval.json, which the same command keeps; of the one it "
        f"stopped in, no measures are kept (their save failed: cannot write evaluation's kept measures "
        f"{run / 'results' / 'val' / '.eval.json.partial' / '0-of-1.000000.pt'}: No space left on device): the same "
        f"command measures every input again\n")
    assert (run / "results" / "val_epoch_1" / "eval.json").is_file()


@pytest.mark.parametrize("how", ["input", "results", "results, saves lost"])
def test_a_sweep_ended_by_another_error_says_once_where_the_measures_are_kept(setup, tmp_path, made, monkeypatch,
                                                                             capsys, how):
    # evaluate --epoch all ended inside its second checkpoint by an input that cannot be read (its third batch), or by
    # its eval.json that cannot be written (a full disk): a line says where that checkpoint's measures are kept, once,
    # as a single evaluate's does (the sweep's run() is quiet: nothing was said), and the same command goes on from
    # them. Where their save failed too, the line says what is lost instead, and the command measures it all again.
    sweeping = importlib.import_module("bicyclegan.engine.sweep")
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    argv = _sweep_argv(run, root)
    assert main(argv) == 0
    results, folder = run / "results", run / "results" / "val" / ".eval.json.partial"
    straight = {str(p.relative_to(results)): p.read_bytes() for p in results.rglob("*.json")}
    for p in results.rglob("*.json"):
        p.unlink()
    with monkeypatch.context() as m:
        if how == "input":
            m.setattr(EVALUATING, "sample_columns", _failing_at(N // BATCH + 3))  # (the second checkpoint's 3rd)
        else:
            write = sweeping.write_json

            def full(path, obj, **kw):
                if Path(path) == folder.parent / "eval.json":
                    raise EVALUATING.OutputError(f"cannot write evaluation results {path}: No space left on device")
                return write(path, obj, **kw)
            m.setattr(sweeping, "write_json", full)
        if how == "results, saves lost":
            m.setattr(EVALUATING, "atomic_write", lambda path, write, **kw: (_ for _ in ()).throw(
                EVALUATING.OutputError(f"cannot write evaluation's kept measures {path}: No space left on device")))
        made()
        capsys.readouterr()
        assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    note = f"the measures are kept in {folder}: the same command goes on from them"
    assert err.count(note) == (how != "results, saves lost") and sum("kept" in line for line in err) == 1, err
    if how == "results, saves lost":
        assert err[-2] == (f"no measures are kept (their save failed: cannot write evaluation's kept measures "
                           f"{folder / '0-of-1.000000.pt'}: No space left on device): the same command measures "
                           f"every input again"), err
    else:
        assert err[-2] == note, err
    made()
    assert main(argv) == 0
    assert made() == {"input": N - 2 * BATCH, "results": 0, "results, saves lost": N}[how]
    assert {str(p.relative_to(results)): p.read_bytes() for p in results.rglob("*.json")} == straight
    assert not folder.exists()


def test_a_folder_holds_kept_measures_where_a_file_of_them_is_in_it(tmp_path):
    # (what a sweep's line after an error says kept: not an empty folder, nor a killed save's temp file alone)
    folder = tmp_path / ".eval.json.partial"
    assert not EVALUATING.holds_kept(folder)
    folder.mkdir()
    (folder / ".0-of-1.000000.pt.123.tmp").write_bytes(b"x")
    (folder / "notes.txt").write_bytes(b"x")
    assert not EVALUATING.holds_kept(folder)
    (folder / "0-of-1.000000.pt").write_bytes(b"x")
    assert EVALUATING.holds_kept(folder)


def test_the_lost_measures_line_names_each_rank_whose_saves_failed(tmp_path):
    # rank 0's words of lost measures: its own as they are where it alone failed (one process's line), else each
    # rank's named by its rank, rank 0's among them (MQ22); and agree_each without a group: its own state and number,
    # each other rank's 0 (MQ09)
    from bicyclegan.engine.runtime import Dist
    by_rank = EVALUATING._lost_by_rank
    assert by_rank([""]) == by_rank(["", ""]) == ""
    assert by_rank(["lost here"]) == by_rank(["lost here", ""]) == "lost here"
    assert by_rank(["", "lost there"]) == "rank 1: lost there"
    assert by_rank(["lost here", "", "lost there"]) == "rank 0: lost here; rank 2: lost there"
    assert Dist().agree_each(2, 1) == (2, [1])
    assert Dist(rank=1, world=3).agree_each(0, 2) == (0, [0, 2, 0])


def test_a_sweep_ended_before_its_checkpoint_measured_anything_says_nothing_kept(setup, tmp_path, monkeypatch, capsys):
    # An input that cannot be read at the second checkpoint's first batch: nothing of it is measured, and its folder of
    # kept measures holds a killed save's temp file alone (an earlier run's kill -9): no line says the measures are
    # kept there (a folder that is there is not one that keeps any: MQ32)
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    folder = run / "results" / "val" / ".eval.json.partial"
    folder.mkdir(parents=True)
    (folder / ".0-of-1.000000.pt.999999.tmp").write_bytes(b"cut")
    monkeypatch.setattr(EVALUATING, "sample_columns", _failing_at(N // BATCH + 1))
    capsys.readouterr()
    assert main(_sweep_argv(run, root)) == 2
    err = capsys.readouterr().err
    assert "cannot read an input" in err and "kept" not in err, err


@pytest.mark.parametrize("fails", ["loader", "batch"])
def test_a_sweep_ended_by_an_error_never_says_another_recipes_measures_are_kept(setup, tmp_path, made, monkeypatch,
                                                                              capsys, fails):
    # latest.pt's folder of kept measures holds an earlier `evaluate latest.pt --num 5`'s, stopped: another recipe,
    # which the sweep (--num N) discards. An input that cannot be read as latest.pt's loader is made (before its run()
    # looked at that folder): no line says measures are kept there, as the sweep run again measures all of latest.pt
    # (it said "kept in", naming the --num 5 measures). At its second batch instead (the others discarded, its first
    # batch kept): the line names the folder, and the sweep run again goes on from that batch.
    root, _ = setup
    run = _two_checkpoints(root, tmp_path)
    folder = run / "results" / "val" / ".eval.json.partial"
    stopped(["evaluate", str(run / "checkpoints" / "latest.pt"), "--dataroot", str(root), "--num", "5", "--n_samples",
             "3", "--batch_size", str(BATCH), "--device", "cpu"], 4, monkeypatch)
    assert os.listdir(folder) == ["0-of-1.000000.pt"]
    with monkeypatch.context() as m:
        if fails == "loader":
            real, calls = EVALUATING.build_loader, []

            def unreadable(*a, **kw):  # (epoch_1.pt's loader is the first, made with its evaluation)
                calls.append(1)
                if len(calls) == 2:
                    raise EVALUATING.DatasetError("cannot read an input (Input/output error)")
                return real(*a, **kw)
            m.setattr(EVALUATING, "build_loader", unreadable)
        else:
            m.setattr(EVALUATING, "sample_columns", _failing_at(N // BATCH + 2))
        made()
        capsys.readouterr()
        assert main(_sweep_argv(run, root)) == 2
    err = capsys.readouterr().err
    assert "cannot read an input" in err, err
    said = f"the measures are kept in {folder}: the same command goes on from them"
    assert (said in err) == (fails == "batch") and ("kept" in err) == (fails == "batch"), err
    made()
    assert main(_sweep_argv(run, root)) == 0
    assert made() == {"loader": N, "batch": N - BATCH}[fails]  # (epoch_1.pt's eval.json reused: latest.pt's alone)
    assert not folder.exists()
