"""Data parallelism under torch.distributed (gloo on CPU, two processes): gradients are averaged,
so every rank ends an iteration with the same weights although each saw different data."""
import copy
import importlib.util
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi", impl="ref")


def _cfg():
    return TrainConfig(model=ModelConfig(**TINY), batch_size=4)


def _data(seed):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(4, 3, 32, 32, generator=g) * 2 - 1}


def _worker(rank, world, port, out_dir, sync):
    torch.set_num_threads(1)
    if sync:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial weights
    model = BicycleGAN(_cfg())
    torch.manual_seed(10 + rank)  # each rank its own z
    model.train_step(_data(100 + rank))  # and its own data
    torch.save({n: net.state_dict() for n, net in model.networks().items()}, os.path.join(out_dir, f"{rank}.pt"))
    if sync:
        dist.destroy_process_group()


# A launch of this suite's takes seconds, its longest (the ranks fixture's) about a minute and a half on a loaded
# machine. A hang (a rank waiting in a collective the other never joins) would wait for gloo's 30 minutes.
SPAWN_TIMEOUT_S = 600


def spawn_ranks(fn, args, nprocs=2, timeout=SPAWN_TIMEOUT_S):
    """torch.multiprocessing.spawn(fn, args, nprocs), its processes without TRITON_INTERPRET (which the tests
    set for the kernels' own tests): a process on the CPU trains on the reference path, as a user's does,
    where the interpreted kernels made a two-rank training of a few steps take a minute, not seconds. A launch
    still running after `timeout` seconds is killed, and raises TimeoutError."""
    said = os.environ.pop("TRITON_INTERPRET", None)  # (a spawned process starts with the environment of now)
    try:
        try:
            _spawn(fn, args, nprocs, timeout)
        except mp.ProcessRaisedException as e:
            # Gloo's pairwise connections at the group's start (connectFullMesh) now and then fail on a
            # loaded machine ("Connection closed by peer" before any of the test's work): once more,
            # for that failure alone.
            if "connectFullMesh" not in str(e):
                raise
            _spawn(fn, args, nprocs, timeout)
    finally:
        if said is not None:
            os.environ["TRITON_INTERPRET"] = said


def _spawn(fn, args, nprocs, timeout):
    launch = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    end = time.monotonic() + timeout
    while not launch.join(timeout=max(end - time.monotonic(), 0.1)):  # (True: all ended; raises on a failure)
        if time.monotonic() >= end:
            for p in launch.processes:
                p.kill()
                p.join()
            raise TimeoutError(f"{fn.__name__}'s {nprocs} processes still ran after {timeout} s: killed")


def _sleeping(rank, seconds):
    time.sleep(seconds)


def test_a_launch_that_hangs_is_killed_at_its_timeout():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="_sleeping's 2 processes still ran after 3 s: killed"):
        spawn_ranks(_sleeping, (600,), timeout=3)
    assert time.monotonic() - start < 60


def _ephemeral_ports() -> range:
    """The ports the system hands out itself (a bind to port 0, the local end of every outgoing connection)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # (Linux's default)
    return range(low, high + 1)


def _port_block() -> range:
    """The ports this test process hands out: below the system's own (where nothing takes one unasked), a block
    for each pytest-xdist worker (gw0, gw1, ...), so that two workers never hand out the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker.startswith("gw") else 0
    ephemeral = _ephemeral_ports()
    low, high = (10000, ephemeral.start) if ephemeral.start >= 12000 else (ephemeral.stop, 65536)
    size = max(high - low, 0) // max(workers, 1)
    return range(low + index * size, low + (index + 1) * size)


# The fewest ports a block of _port_block's is used with (a suite run hands out a few hundred): below, the system's
MIN_BLOCK = 100

# Where this process begins in its block (taken modulo its size), drawn as it starts: every process began at the
# block's first port, so two test sessions on one machine (two pytest runs, each xdist worker gw0 of its own) handed
# out the same ports in the same order, and one's store failed to listen on the port the other had picked, free
# then, before either listened. (The system's randomness: a test's random.seed does not make two processes alike.)
_next_port = [random.SystemRandom().randrange(1 << 16)]


def _free_ports(n):
    """n different free ports, none of them handed out before by this process. A port the system picked (bind
    to port 0) was free when picked but not when a launch later listened on it: any process's outgoing
    connection meanwhile (gloo's between ranks, the other worker's tests') may take a port of the system's own
    range as its local end, and rank 0's store failed to listen (EADDRINUSE, an exit 1 of rank 0 in a CI run,
    four commands into a launch of twelve). So they come from _port_block, in turn, each checked free."""
    block, ports = _port_block(), []
    if len(block) < MIN_BLOCK:  # (a system whose own range leaves no room: its picks, held open together)
        socks = [socket.socket() for _ in range(n)]
        try:
            for s in socks:
                s.bind(("127.0.0.1", 0))
            return [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
    for _ in range(len(block)):
        port = block[_next_port[0] % len(block)]
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # (another program's)
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"fewer than {n} free ports in {block.start}-{block.stop - 1}")


def _free_port():
    return _free_ports(1)[0]


def test_the_ports_handed_out_are_free_distinct_and_none_the_system_hands_out_itself():
    if len(_port_block()) < MIN_BLOCK:
        pytest.skip("the system hands out nearly every port itself: no block of this process's")
    block = _port_block()
    taken = block[_next_port[0] % len(block)]  # the next one in turn: another program listens on it
    with socket.socket() as s:
        s.bind(("127.0.0.1", taken))
        s.listen()
        ports = [*_free_ports(3), _free_port()]
    assert taken not in ports and len(set(ports)) == 4, (taken, ports)
    assert all(port in block and port not in _ephemeral_ports() for port in ports), (ports, block)


def test_each_test_process_begins_at_a_place_of_its_own_in_its_block():
    if len(_port_block()) < MIN_BLOCK:
        pytest.skip("the system hands out nearly every port itself: no block of this process's")
    # Three test processes' first ports (this file run as a module of its own, as each process imports it): each
    # begun at its block's first port, two sessions on one machine handed out the same ports in the same order.
    firsts = []
    for i in range(3):
        spec = importlib.util.spec_from_file_location(f"_ports_of_process_{i}", __file__)
        fresh = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fresh)
        firsts.append(fresh._free_port())
    assert len(set(firsts)) > 1, firsts


def test_each_test_worker_hands_out_ports_of_its_own(monkeypatch):
    blocks = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
        blocks.append(set(_port_block()))
    if any(len(b) < MIN_BLOCK for b in blocks):
        pytest.skip("the system hands out nearly every port itself: no block for 3 workers")
    assert not (blocks[0] & blocks[1] or blocks[1] & blocks[2] or blocks[0] & blocks[2])
    assert not set().union(*blocks) & set(_ephemeral_ports())


def _in_turn(rank, world, ports, out_dir, cases):
    """worker(rank, world, port, out_dir/name, *args) for each (name, worker, *args) of cases in turn, in this
    rank's process, each on a port of its own (each worker starts its own group; a list of ports for one that
    starts several) and in the environment the process began with (a worker's variables undone after it): one
    pair of processes for several tests, whose start-up took most of each test's time. A group an error exit
    left open is ended as the process's exit would end it (see _exit_worker); the seconds each case took on this
    rank: name/{rank}.took. A case both ranks finished (their .took files) is not run again: spawn_ranks's second
    launch, after gloo failed to connect a later case's processes, goes on from that case."""
    environ = dict(os.environ)
    for port, (name, worker, *args) in zip(ports, cases):
        here = os.path.join(out_dir, name)
        if all(os.path.exists(os.path.join(here, f"{r}.took")) for r in range(world)):
            continue
        os.makedirs(here, exist_ok=True)
        start = time.monotonic()
        worker(rank, world, port, here, *args)
        if dist.is_initialized():
            dist.destroy_process_group()
        with open(os.path.join(here, f"{rank}.took"), "w") as f:
            f.write(str(time.monotonic() - start))
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The folder of every two-process case of this file, run in turn by one pair of spawned processes
    (_in_turn), each in <name>/: the processes' start-up took most of each case's time, in a pair of its own.
    "close" first (the bug it tests needs the process's first optimiser), "exit" last (it runs the process's
    exit functions). "in_use": its r/ locked by another training, running, all along; "start": rank 0 waits in
    a collective until rank 1, done with its bug, ends its group (as its process's exit would)."""
    import fcntl

    from tiny import tiny_cfg

    from bicyclegan.engine.trainer import Trainer
    from bicyclegan.pipelines import make_demo_dataset
    where = tmp_path_factory.mktemp("ranks")
    tiny = ["--device", "cpu", "--no-progress", "--crop_size", "32"]
    full_disk = ["train", "--device", "cpu", "--no-progress", "--no-eval", "--crop_size", "32", "--ngf", "4", "--nef",
                 "4", "--ndf", "4", "--batch_size", "4", "--max_steps", "4", "--log_every", "2", "--sample_every", "2",
                 "--save_every", "2", "--num_workers", "0"]
    data_error = ["train", "--device", "cpu", "--no-progress", "--no-eval", "--crop_size", "32", "--ngf", "4", "--nef",
                  "4", "--ndf", "4", "--batch_size", "4", "--max_steps", "4", "--save_every", "2", "--log_every", "2",
                  "--num_workers", "0"]
    make_demo_dataset(where / "going_back" / "data", n_train=16, n_test=4, size=32, seed=0)
    resume_data = make_demo_dataset(where / "resume" / "data", n_train=8, n_test=2, size=32, seed=0)
    # the run the refused resumes name, one process's
    Trainer(tiny_cfg(where / "resume" / "run", resume_data, max_steps=2, save_every=2), progress=False).train()
    cases = [("close", _close_worker),
             ("sync", _worker, True), ("mean", _mean_worker), ("bn", _bn_worker),
             ("sync_bn", _sync_model_worker, [True, False]), ("own", _group_worker, True),
             ("caller", _group_worker, False),
             ("in_use", _cli_rank, ["train", "--out", str(where / "in_use" / "r"), *tiny, "--ngf", "4", "--nef", "4",
                                    "--ndf", "4", "--batch_size", "4", "--max_steps", "2"]),
             ("bug", _bug_rank, ["train", "--out", str(where / "bug" / "r"), *tiny]),
             *((f"full_disk/{name}", _full_disk_rank, full_disk, name) for name in FULL_DISK),
             *((f"data_error/{broken}", _data_error_rank, data_error, broken) for broken in (1, 0)),
             ("going_back", _going_back_ranks, _going_back_args(where / "going_back")),
             ("resume", _resume_rank, {case: argv for case, (argv, _) in _refused_resumes(where / "resume").items()}),
             ("start", _start_bug_rank, ["train", "--out", str(where / "start" / "r"), *tiny, "--no-eval", "--ngf",
                                         "4", "--nef", "4", "--ndf", "4", "--num_workers", "0"]),
             ("exit", _exit_worker)]
    several = {"going_back": 3, "exit": 3}  # the cases that start several groups: a port each
    free = iter(_free_ports(sum(several.get(name, 1) for name, *_ in cases)))
    ports = [[next(free) for _ in range(several[name])] if name in several else next(free) for name, *_ in cases]
    (where / "in_use" / "r").mkdir(parents=True)
    fd = os.open(where / "in_use" / "r" / ".lock", os.O_RDWR | os.O_CREAT)  # another training's, running
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        spawn_ranks(_in_turn, (2, ports, str(where), cases))
    finally:
        os.close(fd)
    return where


@pytest.mark.slow
def test_ranks_stay_in_sync(ranks, tmp_path):
    r0, r1 = (torch.load(ranks / "sync" / f"{r}.pt") for r in (0, 1))
    for net in r0:
        for k in r0[net]:
            torch.testing.assert_close(r0[net][k], r1[net][k], rtol=0, atol=0, msg=f"{net}.{k}")
    # Without the all-reduce, rank 0 alone would have moved elsewhere: the averaging did happen.
    (tmp_path / "solo").mkdir()
    _worker(0, 1, 0, str(tmp_path / "solo"), sync=False)
    solo = torch.load(tmp_path / "solo" / "0.pt")
    assert any(not torch.equal(solo["G"][k], r0["G"][k]) for k in solo["G"])


def _torchrun_env():
    """The environment of a torchrun launch: TMPDIR a folder of its own, as torchrun leaves a
    torchelastic_* folder in it at every launch, and a short one: the loader workers' sockets go in
    it, and under tmp_path (deeper under pytest-xdist) their paths passed the 107 bytes a socket's
    may have. The caller removes it."""
    return {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {
        "OMP_NUM_THREADS": "1", "TMPDIR": tempfile.mkdtemp(prefix="bg-", dir="/tmp")}


def _torchrun(tmp_path, *args):
    """`bicyclegan train` under torchrun: two CPU processes (gloo), in tmp_path."""
    # the CPU, gloo, also on a machine with one GPU
    done = torchrun_cli(tmp_path, "train", "--out", "runs/r", "--no-eval", "--device", "cpu", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr  # results on stdout, progress on stderr


CLI = ("-m", "bicyclegan.engine.cli")


def torchrun_command(*argv, nproc: int = 2, program=CLI) -> list[str]:
    """The command line of `bicyclegan ARGV` under torchrun, `nproc` processes (a free port of its own);
    `program`: what torchrun runs with ARGV, another script's path."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
            str(_free_port()), *program, *map(str, argv)]


def gloo_failed_to_connect(said: str) -> bool:
    """Whether a launch that printed `said` failed where gloo makes its pairwise connections at the group's
    start (connectFullMesh), which on a loaded machine now and then fails before any of the test's work: the
    torchrun tests launch once more for that failure alone, as spawn_ranks starts its processes once more."""
    return "connectFullMesh" in said


def torchrun_cli(cwd, *argv, nproc: int = 2, timeout: float = 300, program=CLI,
                 retry: bool = True) -> subprocess.CompletedProcess:
    """`bicyclegan ARGV` under torchrun, `nproc` processes, in cwd: its exit code and what it printed
    (launched once more where gloo failed to connect the processes, gloo_failed_to_connect, unless not `retry`)."""
    env = _torchrun_env()
    try:
        done = subprocess.run(torchrun_command(*argv, nproc=nproc, program=program), cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if retry and done.returncode != 0 and gloo_failed_to_connect(done.stdout + done.stderr):
            done = subprocess.run(torchrun_command(*argv, nproc=nproc, program=program), cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        return done
    finally:
        shutil.rmtree(env["TMPDIR"], ignore_errors=True)


def torchrun_in_turn(cwd, commands, nproc: int = 2, timeout: float = 300, retry: bool = True):
    """torchrun_cli of several commands (each a `bicyclegan` argv) in turn in one launch (torchrun_in_turn.py, a
    group on a port of its own each), in cwd: the launch, what each command printed (its part of the launch's
    stdout, then of its stderr) and each command's exit code on each rank. What a rank writes without a flush
    (to a pipe, stdout is written in blocks) may show in a later command's part: count what only one command
    prints in the whole launch's output."""
    cases = [[port, list(map(str, argv))] for port, argv in zip(_free_ports(len(commands)), commands)]
    done = torchrun_cli(cwd, json.dumps(cases), nproc=nproc, timeout=timeout, retry=retry,
                        program=[os.path.join(os.path.dirname(__file__), "torchrun_in_turn.py")])
    out, err = (re.split(r"^== command \d+\n", text, flags=re.M)[1:] for text in (done.stdout, done.stderr))
    ranks = [json.loads((Path(cwd) / f"in_turn.{r}.json").read_text()) for r in range(nproc)
             if (Path(cwd) / f"in_turn.{r}.json").exists()]
    return done, [o + e for o, e in zip(out, err)], [list(codes) for codes in zip(*ranks)]


def torchrun_in_turn_afresh(base, build, timeout: float = 300):
    """torchrun_in_turn, in base/1, of the commands build(folder) returns (having made what they need there), and
    where gloo failed to connect the processes, once more in base/2: not in the same folder, where a training
    would meet the run the first launch left. (The folder, the launch, what each command printed, exit codes.)"""
    for attempt in (1, 2):
        folder = base / str(attempt)
        folder.mkdir(parents=True)
        done, said, codes = torchrun_in_turn(folder, build(folder), timeout=timeout, retry=False)
        if attempt == 2 or not (done.returncode != 0 and gloo_failed_to_connect(done.stdout + done.stderr)):
            return folder, done, said, codes


def test_torchrun_cli_launches_once_more_where_gloo_failed_to_connect_alone(monkeypatch, tmp_path):
    """The retry itself, with made-up launches: gloo's failed connections once, twice, and another failure."""
    mesh = ("torch.distributed.DistBackendError: Gloo connectFullMesh failed with [../third_party/gloo/gloo/"
            "transport/tcp/pair.cc:144] Connection closed by peer [127.0.0.1]:40161")
    for said, launches, code in [([mesh, ""], 2, 0), ([mesh, mesh], 2, 1), (["ConfigError: no such file", ""], 1, 1)]:
        made = []

        def run(cmd, **kw):
            made.append(cmd)
            text = said[len(made) - 1]
            return subprocess.CompletedProcess(cmd, 1 if text else 0, "", text)
        monkeypatch.setattr(subprocess, "run", run)
        done = torchrun_cli(tmp_path, "train", "--out", "r")
        assert (len(made), done.returncode) == (launches, code), said
        assert all(cmd[-3:] == ["train", "--out", "r"] for cmd in made)


@pytest.mark.slow
def test_torchrun_trains_shards_and_resumes_from_the_run_folder_alone(tmp_path):
    tiny = ["--crop_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--batch_size", "4",
            "--log_every", "2", "--save_every", "4", "--sample_every", "4"]
    train = ["train", "--out", "runs/r", "--no-eval", "--device", "cpu"]
    # Stopped at step 5, between two log lines (every 2): each rank's open interval (step 5) rides
    # in the checkpoint and the resumed line at 6 averages it with step 6, as a straight run's does.
    # In the same launch (torchrun_in_turn), after it: the straight run to step 8, in straight/. The resume
    # launches on its own: a fresh process, where only the run folder can tell it where the run was.
    here, done, said, codes = torchrun_in_turn_afresh(tmp_path, lambda folder: [
        [*train, *tiny, "--max_steps", "5"], ["train", "--out", "straight/runs/r", "--no-eval", "--device", "cpu",
                                              *tiny, "--max_steps", "8"]])
    assert codes == [[0, 0], [0, 0]], (done.stdout + done.stderr)[-3000:]
    out = said[0]
    run = here / "runs" / "r"
    # rank 0 reports; rank 1 trains in silence (its stdout, unflushed, may show in the next command's part)
    assert out.count("run folder:") == 1 and (done.stdout + done.stderr).count("run folder:") == 2
    assert "data: 512 samples, 64 batches an epoch on each rank; torch loader, 1 worker\n" in out
    started = json.loads((run / "config.json").read_text())
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    # each rank takes half of the 512 demo pairs: 256 / 4 batches an epoch, not 512 / 4
    assert ckpt["step"] == 5 and ckpt["steps_per_epoch"] == 64
    assert [own["count"] for own in (ckpt["log_interval"], *ckpt["rank_log_interval"])] == [1, 1]
    # resuming needs only the run folder (and what changes): the run's own config is the default
    _torchrun(here, "--resume", "--max_steps", "8")
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    assert ckpt["step"] == 8
    assert json.loads((run / "config.json").read_text()) == {**started, "max_steps": 8}
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 5, 6, 8]  # 5: the stopped run's last step
    # Exactly where an uninterrupted run ends: each rank's generators were kept (rank 1 used to
    # reseed on resuming, and its z draws, so the weights, went elsewhere).
    straight = torch.load(here / "straight" / "runs" / "r" / "checkpoints" / "latest.pt", weights_only=False)
    assert len(ckpt["rank_rng"]) == 1
    assert [own["count"] for own in (ckpt["log_interval"], *ckpt["rank_log_interval"])] == [0, 0]
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    straight_log = [json.loads(line) for line in (here / "straight/runs/r/log.jsonl").read_text().splitlines()]
    assert len(straight_log[0]) >= 8, straight_log[0]  # step, epoch, lr, img_per_s and the losses
    assert [row["step"] for row in straight_log] == [2, 4, 6, 8]
    for want in straight_log:
        (got,) = (row for row in logged if row["step"] == want["step"])
        assert got | {"img_per_s": 0} == pytest.approx(want | {"img_per_s": 0}, rel=1e-6, abs=1e-7)
    for net, weights in straight["nets"].items():
        for k, w in weights.items():
            assert torch.equal(ckpt["nets"][net][k], w), f"{net}.{k}"


_SIGNAL_IN_THE_FINAL_SAVE = """import os, signal, sys
from bicyclegan.engine.cli import main
from bicyclegan.engine.trainer import Trainer
save = Trainer.save

def save_signalled(self, *args, **kwargs):  # rank 1 alone receives a SIGTERM during the run's last save
    if os.environ["RANK"] == "1" and self.step == self.total_steps:
        os.kill(os.getpid(), signal.SIGTERM)
    return save(self, *args, **kwargs)
Trainer.save = save_signalled
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_under_torchrun_a_signal_to_one_rank_after_the_last_log_interval_ends_every_rank_alike(tmp_path):
    """A SIGTERM reaching one rank after the ranks last agreed (during the final save): the run is complete and
    the signal goes on to its handler, as in one process. That rank alone ended of it, before the group's end,
    and the other, waiting for it there, stopped with RankLostError (exit 2) on a complete run. Every rank now
    ends of the signal, and the checkpoint of the last step is there."""
    script = tmp_path / "signalled.py"
    script.write_text(_SIGNAL_IN_THE_FINAL_SAVE)
    done = torchrun_cli(tmp_path, "train", "--out", "runs/r", "--no-eval", "--eval_every", "0", "--device", "cpu",
                        "--no-progress", "--crop_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4", "--batch_size",
                        "4", "--max_steps", "4", "--log_every", "2", "--save_every", "4", "--sample_every", "4",
                        "--num_workers", "0", program=[str(script)])
    said = done.stdout + done.stderr
    assert "RankLostError" not in said, said[-3000:]
    # torchrun's summary: each rank's exit, -15 (ended by SIGTERM)
    ended = re.findall(r"rank\s*: (\d) \(local_rank: \d\)\s*exitcode\s*: (-?\d+)", said)
    assert sorted(ended) == [("0", "-15"), ("1", "-15")], said[-3000:]
    ckpt = torch.load(tmp_path / "runs" / "r" / "checkpoints" / "latest.pt", weights_only=False)
    assert ckpt["step"] == 4


@pytest.mark.parametrize("device, backend, current", [
    ("auto", "nccl", 1), ("cuda", "nccl", 1), ("cuda:0", "nccl", 1),
    ("cpu", "gloo", None),  # a GPU host training on the CPU: NCCL cannot reduce CPU gradients
])
def test_torchrun_backend_and_current_device_follow_the_training_device(monkeypatch, device, backend, current):
    """On a (pretended) host with GPUs, as rank 1 of 2: NCCL and this rank's GPU as the current
    device when training on GPUs; gloo and no GPU touched when training on the CPU."""
    from bicyclegan.engine import runtime
    calls = {}
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runtime.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(runtime.torch.cuda, "set_device", lambda i: calls.setdefault("current", i))
    monkeypatch.setattr(runtime.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(runtime.dist, "init_process_group", lambda b, **kw: calls.setdefault("backend", b))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # (torchrun's; the group's start is a stand-in)
    monkeypatch.setenv("MASTER_PORT", "29500")
    trains_on = torch.device("cuda", 1) if backend == "nccl" else torch.device("cpu")
    d = runtime.init_distributed(device)
    d.close()  # (its filter of the data's log off again: this process runs other tests)
    assert d == runtime.Dist(1, 2, 1, trains_on, owns_group=True)
    assert (calls.get("backend"), calls.get("current")) == (backend, current)


@pytest.mark.parametrize("local_rank, said", [("1", False), ("0", True)])
def test_the_data_warnings_every_process_gives_alike_are_said_by_local_rank_0(monkeypatch, caplog, local_rank, said):
    """Under torchrun each rank said the files the checks left out (and the loader workers that fit): a line
    per process for the same list. A process that is not its machine's local rank 0 drops those (pipelines'
    ALIKE), not its own (a file of its batches replaced), until close()."""
    import logging

    from bicyclegan.engine import runtime
    from bicyclegan.pipelines.files import ALIKE
    monkeypatch.setattr(runtime.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(runtime.dist, "init_process_group", lambda b, **kw: None)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")  # the second machine's second process, or (local rank 0) its first
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    log = logging.getLogger("bicyclegan.pipelines")
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        d = runtime.init_distributed("cpu")
        log.warning("skipped 1 bad file(s) in val", extra=ALIKE)
        log.warning("skipped x.png: the next good sample takes its place")
        d.close()
        log.warning("after close", extra=ALIKE)
    assert [r.getMessage() for r in caplog.records] == (["skipped 1 bad file(s) in val"] if said else []) + [
        "skipped x.png: the next good sample takes its place", "after close"]


def test_a_local_rank_that_cannot_be_beside_the_callers_own_group_is_one_line(monkeypatch):
    """A group the caller started counts its own rank and size; LOCAL_RANK, read beside it, is checked as a launch's
    (a bare int() was a ValueError's traceback)."""
    from bicyclegan.engine import runtime
    monkeypatch.setattr(runtime.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(runtime.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(runtime.dist, "get_world_size", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(runtime.ConfigError, match=r"^LOCAL_RANK='x' in the environment: an integer >= 0 was expected"):
        runtime.init_distributed("cpu")
    # unset or empty: the rank's place among the machine's GPUs (rank 3 of 4 beside 2 GPUs: 1), as before
    monkeypatch.setattr(runtime.dist, "get_rank", lambda: 3)
    monkeypatch.setattr(runtime.dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runtime.torch.cuda, "device_count", lambda: 2)
    try:
        for value in ("", None):
            monkeypatch.delenv("LOCAL_RANK") if value is None else monkeypatch.setenv("LOCAL_RANK", value)
            assert runtime.init_distributed("cpu").local_rank == 1
    finally:
        runtime._DATA_LOG.removeFilter(runtime._said_by_local_rank_0)  # (a local rank but 0's, put in by each call)


def test_under_torchrun_a_named_gpu_is_this_ranks_gpu(monkeypatch):
    """A run begun with device=cuda:0 and resumed under torchrun keeps that option: each rank must
    still take its own GPU (two ranks on one GPU make NCCL fail)."""
    from bicyclegan.engine import runtime
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runtime.torch.cuda, "device_count", lambda: 4)
    for name in ("cuda:0", "cuda", "cuda:3", "auto"):
        assert runtime.pick_device(name, local_rank=2, world=4) == torch.device("cuda", 2), name
    assert runtime.pick_device("cuda:3", local_rank=2, world=1) == torch.device("cuda", 3)  # one process
    assert runtime.pick_device("cpu", local_rank=2, world=4) == torch.device("cpu")
    monkeypatch.setattr(runtime.torch.cuda, "device_count", lambda: 2)
    with pytest.raises(runtime.ConfigError, match=r"only 2 GPU\(s\) are visible$"):
        runtime.pick_device("cuda:3", local_rank=0, world=1)
    with pytest.raises(runtime.ConfigError, match=r"this process is to train on cuda:2 \(its LOCAL_RANK\) and "
                                                  r"it has 2 GPU\(s\) visible: one GPU per process; use "
                                                  r"--nproc_per_node 2"):
        runtime.pick_device("cuda:0", local_rank=2, world=4)
    # Under torchrun every process of the machine refuses alike, those whose GPU is there too (they would
    # wait for the others in the group's start), so that its local rank 0 says it for all of them.
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    for name in ("auto", "cuda", "cuda:1"):
        with pytest.raises(runtime.ConfigError, match=r"^torchrun started 4 processes on this machine and it has 2 "
                                                      r"GPU\(s\) visible: one GPU per process; use --nproc_per_node 2, "
                                                      r"or device=cpu$"):
            runtime.pick_device(name, local_rank=0, world=4)
    assert runtime.pick_device("cpu", local_rank=3, world=4) == torch.device("cpu")


def _group_worker(rank, world, port, out_dir, own):
    """own: the environment says torchrun (init_distributed starts the group and close() ends it);
    else the caller starts the group itself, with no RANK/WORLD_SIZE in the environment, and trains."""
    from bicyclegan.engine import runtime
    from bicyclegan.engine.trainer import train
    torch.set_num_threads(1)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k, None)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if own:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
        d = runtime.init_distributed("cpu")
        seen = {"rank": d.rank, "world": d.world, "owns": d.owns_group, "open": dist.is_initialized()}
        d.close()
        seen["open_after_close"] = dist.is_initialized()
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        cfg = TrainConfig(model=ModelConfig(**TINY), batch_size=4, max_steps=2, log_every=1, sample_every=2,
                          save_every=2, out=os.path.join(out_dir, "run"), device="cpu")
        d = runtime.init_distributed("cpu")
        seen = {"rank": d.rank, "world": d.world, "owns": d.owns_group}
        train(cfg, progress=False, evaluate=False)
        seen["open_after_train"] = dist.is_initialized()
        dist.destroy_process_group()
    json.dump(seen, open(os.path.join(out_dir, f"{rank}.json"), "w"))


@pytest.mark.slow
def test_a_process_group_started_by_the_caller_is_used_and_left_open(ranks):
    """Launched by something other than torchrun (no RANK/WORLD_SIZE): the group's own rank and size
    count, so the data is sharded and rank 0 alone writes; the caller's group outlives train()."""
    seen = [json.loads((ranks / "caller" / f"{r}.json").read_text()) for r in (0, 1)]
    assert seen == [{"rank": r, "world": 2, "owns": False, "open_after_train": True} for r in (0, 1)]
    run = ranks / "caller" / "run"
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    assert ckpt["step"] == 2 and ckpt["steps_per_epoch"] == 64  # 512 demo pairs / 2 ranks / batch 4
    assert [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()] == [1, 2]


def test_the_group_init_distributed_started_is_ended_by_close(ranks):
    seen = [json.loads((ranks / "own" / f"{r}.json").read_text()) for r in (0, 1)]
    assert seen == [{"rank": r, "world": 2, "owns": True, "open": True, "open_after_close": False} for r in (0, 1)]


def _exit_worker(rank, world, ports, out_dir):
    """init_distributed's group left open, as an error exit leaves it (no close()): the exit functions,
    which run before the interpreter finalises, end it. Once close() ran, they leave a group started
    later (the caller's own) alone. Each group has its own port: on a reused one, a rank done with
    a group could reach the other rank's store of that group, closing, instead of the next one's."""
    import atexit

    from bicyclegan.engine import runtime
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[0]), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    d = runtime.init_distributed("cpu")
    with pytest.raises(runtime.ConfigError):  # a refusal on rank 0, raised on every rank
        d.main_decides(lambda: (_ for _ in ()).throw(runtime.ConfigError("refused")))
    atexit._run_exitfuncs()
    seen = {"open_after_exit": dist.is_initialized()}
    os.environ["MASTER_PORT"] = str(ports[1])
    d = runtime.init_distributed("cpu")
    d.close()
    os.environ["MASTER_PORT"] = str(ports[2])
    dist.init_process_group("gloo", rank=rank, world_size=world)  # the caller's own, after ours
    atexit._run_exitfuncs()
    seen["callers_open_after_exit"] = dist.is_initialized()
    dist.destroy_process_group()
    json.dump(seen, open(os.path.join(out_dir, f"{rank}.json"), "w"))


def test_a_group_left_open_by_an_error_exit_ends_before_the_interpreter_finalises(ranks):
    """A refusal's exit skipped close(): gloo's worker thread, still dropping the broadcast's tensors,
    then took the GIL of a finalising interpreter, and the rank aborted now and then (SIGABRT,
    "terminate called without an active exception")."""
    seen = [json.loads((ranks / "exit" / f"{r}.json").read_text()) for r in (0, 1)]
    assert seen == [{"open_after_exit": False, "callers_open_after_exit": True}] * 2


def _gloo_threads():
    """This process's threads that a gloo process group runs (Linux: their names in /proc)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{tid}/comm").read().strip())
        except OSError:  # (a thread that ended meanwhile)
            pass
    return sorted(n for n in names if "gloo" in n)


def _close_worker(rank, world, port, out_dir):
    from bicyclegan.engine import runtime
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    d = runtime.init_distributed("cpu")
    model = BicycleGAN(_cfg())  # its Adam optimisers, the process's first: they import torch._dynamo
    model.train_step(_data(rank))  # (the gradients' all-reduce)
    del model
    running = _gloo_threads()
    d.close()
    # A thread joined may stay listed in /proc for a moment after (its task not yet released, under load);
    # a group left alive keeps its threads for good.
    end = time.monotonic() + 10
    while (after := _gloo_threads()) and time.monotonic() < end:
        time.sleep(0.05)
    json.dump({"running": running, "after_close": after}, open(os.path.join(out_dir, f"{rank}.json"), "w"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads thread names from /proc (Linux)")
def test_closing_the_group_ends_its_threads_before_the_interpreter_finalises(ranks):
    """torch.distributed.nn, imported by torch._dynamo when the first optimiser was made, took the group
    up then as its functions' default argument: destroy_process_group left it alive, its threads ran
    on into the interpreter's finalisation, and a rank aborted there now and then (SIGABRT,
    "terminate called without an active exception"; a flaky CI failure of test_validation)."""
    for r in (0, 1):
        seen = json.loads((ranks / "close" / f"{r}.json").read_text())
        assert "pt_gloo_runloop" in seen["running"], seen  # (the names looked for: the group's threads)
        assert seen["after_close"] == [], seen


def _mean_worker(rank, world, port, out_dir):
    from bicyclegan.engine.trainer import mean_over_ranks
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    # 3 steps' sums on each rank; rank 1's D diverged
    sums = {"G_L1": torch.tensor(3.0 + 3 * rank), "D": torch.tensor(float("inf") if rank else 0.3)}
    json.dump(mean_over_ranks(sums, 3, world)[0], open(os.path.join(out_dir, f"{rank}.json"), "w"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_logged_losses_are_means_over_every_rank(ranks):
    """Every rank logs the same global means, and so sees the same divergence (where one rank alone
    raising would leave the other waiting in its next all-reduce)."""
    r0, r1 = (json.loads((ranks / "mean" / f"{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1
    assert r0["G_L1"] == pytest.approx((3.0 + 6.0) / 6) and r0["D"] == float("inf")
    assert list(r0) == ["G_L1", "D"]


def test_logged_losses_in_one_process():
    from bicyclegan.engine.trainer import mean_over_ranks
    assert mean_over_ranks({"a": torch.tensor(2.0), "b": torch.tensor(-1.0)}, 4) == ({"a": 0.5, "b": -0.25}, None)


# -- sync_bn: BatchNorm statistics of the global batch -------------------------------------------------
def _bn_case(momentum):
    """A BatchNorm2d of 3 channels in float64 with non-trivial weights and running statistics, a
    batch of 6 and an upstream gradient for it; the ranks take halves of the batch."""
    g = torch.Generator().manual_seed(7)
    bn = torch.nn.BatchNorm2d(3, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(3, generator=g, dtype=torch.float64) + 0.5)
        bn.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
        bn.running_mean.copy_(torch.randn(3, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(3, generator=g, dtype=torch.float64) + 0.5)
    x = torch.randn(6, 3, 5, 4, generator=g, dtype=torch.float64) * 3 + 2  # mean far from 0: cancellation
    return bn, x, torch.randn(6, 3, 5, 4, generator=g, dtype=torch.float64)


def _bn_worker(rank, world, port, out_dir):
    from bicyclegan.engine.networks import sync_batchnorm
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    got = {}
    for momentum in (0.1, None):
        bn, x, dy = _bn_case(momentum)
        half = slice(rank * 3, rank * 3 + 3)
        plain = bn(x[half]).detach()  # each rank's own statistics: what sync_bn=False gives
        bn = sync_batchnorm(torch.nn.Sequential(_bn_case(momentum)[0]))[0]
        xr = x[half].clone().requires_grad_()
        y = bn(xr)
        y.backward(dy[half])
        bn.eval()
        got[momentum] = {"y": y.detach(), "dx": xr.grad, "dw": bn.weight.grad, "db": bn.bias.grad,
                         "mean": bn.running_mean, "var": bn.running_var, "count": bn.num_batches_tracked,
                         "plain": plain, "eval": bn(x[half]).detach(), "type": type(bn).__name__}
    # Under autocast: a bf16 input (a conv's output there), fp32 weights; statistics in fp32
    bn = sync_batchnorm(torch.nn.Sequential(_bn_case(0.1)[0].float()))[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = bn(_bn_case(0.1)[1][half].bfloat16())
    got["bf16"] = {"y": y.detach(), "mean": bn.running_mean, "var": bn.running_var}
    # Batches of 2 and 4 (a caller's own loader need not drop the last batch): still the whole batch's
    bn, x, dy = _bn_case(0.1)
    part = slice(0, 2) if rank == 0 else slice(2, 6)
    bn = sync_batchnorm(torch.nn.Sequential(bn))[0]
    xr = x[part].clone().requires_grad_()
    y = bn(xr)
    y.backward(dy[part])
    got["uneven"] = {"y": y.detach(), "dx": xr.grad, "mean": bn.running_mean, "var": bn.running_var}
    torch.save(got, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_sync_batchnorm_over_two_ranks_is_batchnorm_of_the_whole_batch(ranks):
    """Each of two gloo ranks holds half a batch: output, input gradient, weight and bias gradients
    (summed over the ranks, as the averaged gradients are then taken) and the running statistics are
    those of one nn.BatchNorm2d on the whole batch, in training and cumulative (momentum None) mode."""
    got = [torch.load(ranks / "bn" / f"{r}.pt") for r in (0, 1)]
    for momentum in (0.1, None):
        bn, x, dy = _bn_case(momentum)
        x.requires_grad_()
        y = bn(x)
        y.backward(dy)
        bn.eval()
        r0, r1 = got[0][momentum], got[1][momentum]
        assert r0["type"] == "SyncBatchNorm2d"

        def close(got, want, what):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=f"{what}, momentum {momentum}")
        close(torch.cat([r0["y"], r1["y"]]), y.detach(), "output")
        close(torch.cat([r0["dx"], r1["dx"]]), x.grad, "input gradient")
        close(r0["dw"] + r1["dw"], bn.weight.grad, "weight gradient")
        close(r0["db"] + r1["db"], bn.bias.grad, "bias gradient")
        for r in (r0, r1):  # the same global statistics on both ranks
            close(r["mean"], bn.running_mean, "running_mean")
            close(r["var"], bn.running_var, "running_var")
            assert r["count"] == bn.num_batches_tracked == 1
        # eval mode normalises with the running statistics, no collective
        close(torch.cat([r0["eval"], r1["eval"]]), bn(x).detach(), "eval output")
        # without the sync each rank normalises by its own half: not the whole batch's output
        assert not torch.allclose(torch.cat([r0["plain"], r1["plain"]]), y.detach(), atol=1e-3)
    bn, x, _ = _bn_case(0.1)
    y = bn(x.bfloat16().double())  # the whole batch as the ranks had it, in float64
    r0, r1 = got[0]["bf16"], got[1]["bf16"]
    assert r0["y"].dtype == torch.bfloat16
    torch.testing.assert_close(torch.cat([r0["y"], r1["y"]]).double(), y.detach(), rtol=1e-2, atol=1e-2)
    for r in (r0, r1):  # bf16 sums would be off by about 1e-3 here
        torch.testing.assert_close(r["mean"].double(), bn.running_mean, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(r["var"].double(), bn.running_var, rtol=1e-6, atol=1e-6)
    bn, x, dy = _bn_case(0.1)
    x.requires_grad_()
    y = bn(x)
    y.backward(dy)
    r0, r1 = got[0]["uneven"], got[1]["uneven"]
    assert (len(r0["y"]), len(r1["y"])) == (2, 4)
    torch.testing.assert_close(torch.cat([r0["y"], r1["y"]]), y.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.cat([r0["dx"], r1["dx"]]), x.grad, rtol=1e-12, atol=1e-12)
    for r in (r0, r1):
        torch.testing.assert_close(r["mean"], bn.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r["var"], bn.running_var, rtol=1e-12, atol=1e-12)


def test_sync_batchnorm_in_one_process_is_batchnorm():
    from bicyclegan.engine.networks import SyncBatchNorm2d, sync_batchnorm
    bn, x, dy = _bn_case(0.1)
    net = sync_batchnorm(torch.nn.Sequential(_bn_case(0.1)[0]))[0]  # no process group: plain BatchNorm
    assert isinstance(net, SyncBatchNorm2d) and list(net.state_dict()) == list(bn.state_dict())
    torch.testing.assert_close(net(x), bn(x), rtol=0, atol=0)
    torch.testing.assert_close(net.state_dict(), bn.state_dict(), rtol=0, atol=0)
    # eps is no state_dict entry: the replacement takes it from the module it replaces
    bn, x, _ = _bn_case(0.1)
    bn.eps = 4.0  # of the order of the variance (9): another output than at 1e-5
    net = sync_batchnorm(torch.nn.Sequential(copy.deepcopy(bn)))[0]
    torch.testing.assert_close(net(x), bn(x), rtol=0, atol=0)


def test_main_decides_runs_the_work_on_rank_0_alone():
    """Rank 0's checks and writes (the run folder's lock, the demo data, config.json) run there only; its
    error is raised there. A Dist made by hand has no process group: nothing is broadcast."""
    from bicyclegan.engine.runtime import Dist
    ran = []
    Dist(rank=1, world=2).main_decides(lambda: ran.append(1))
    Dist(rank=0, world=2).main_decides(lambda: ran.append(0))
    assert ran == [0]
    with pytest.raises(ValueError, match="^rank 0's own$"):
        Dist(rank=0, world=2).main_decides(lambda: (_ for _ in ()).throw(ValueError("rank 0's own")))


def _sync_model_worker(rank, world, port, out_dir, sync_bns, steps=3):
    """A cAE-GAN with BatchNorm (no random draws, every loss a mean over the batch) trained in float64
    for a few steps on rank `rank`'s half of each global batch (the whole batch in one process), once
    for each of sync_bns (in one group: one pair of processes for both), into out_dir/<sync_bn>/."""
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    for sync_bn in sync_bns:
        torch.manual_seed(0)
        cfg = TrainConfig(model=ModelConfig(**TINY, norm="batch"), variant="cae", batch_size=4 // world,
                          sync_bn=sync_bn)
        model = BicycleGAN(cfg).double()
        for step in range(steps):
            batch = {k: v.double() for k, v in _data(100 + step).items()}  # a global batch of 4
            model.train_step({k: v[rank * 4 // world:(rank + 1) * 4 // world] for k, v in batch.items()})
        os.makedirs(os.path.join(out_dir, str(sync_bn)), exist_ok=True)
        torch.save({n: net.state_dict() for n, net in model.networks().items()},
                   os.path.join(out_dir, str(sync_bn), f"{rank}.pt"))
    if world > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sync_bn_trains_two_ranks_as_one_process_at_twice_the_batch(ranks, tmp_path):
    """Two ranks at batch 2 with sync_bn end with the weights of one process at batch 4 (both halves);
    without it, each rank's BatchNorm sees half the batch and the weights go elsewhere."""
    _sync_model_worker(0, 1, 0, str(tmp_path / "one"), [True])
    one = torch.load(tmp_path / "one" / "True" / "0.pt")
    for sync_bn in (True, False):
        two = torch.load(ranks / "sync_bn" / str(sync_bn) / "0.pt")
        # atol: a conv bias before a BatchNorm has no gradient but rounding (~1e-17), which Adam scales by
        # lr / eps to ~1e-11, differently in the two runs; every other difference is a step of order lr.
        differs = [f"{net}.{k}" for net in one for k in one[net]
                   if not torch.allclose(two[net][k].double(), one[net][k].double(), rtol=1e-9, atol=1e-9)]
        if sync_bn:
            assert not differs, differs
        else:
            assert any(k.startswith("G.") for k in differs)


# -- refusals reach every rank ---------------------------------------------------------------------
def _cli_rank(rank, world, port, out_dir, args):
    """One rank of `bicyclegan train` as torchrun starts it: its exit code and what it printed."""
    import contextlib
    import io

    from bicyclegan.engine.cli import main
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(args)
    json.dump({"rc": rc, "stderr": err.getvalue()}, open(os.path.join(out_dir, f"{rank}.json"), "w"))


@pytest.mark.slow
def test_a_run_folder_in_use_refuses_every_rank_with_one_line(ranks):
    """Rank 0 alone holds the run folder: its refusal reached no other rank, which waited in the next
    collective until torchrun killed it (a traceback each, or a timeout on NCCL). Every rank now
    exits at once, 75 (the refusal's broadcast keeps it transient: try again later), and rank 0 alone prints
    the line."""
    from bicyclegan.engine import runtime
    case = ranks / "in_use"
    out = case / "r"
    r0, r1 = (json.loads((case / f"{r}.json").read_text()) for r in (0, 1))
    assert r0 == {"rc": 75, "stderr": f"bicyclegan train: CheckpointError: {out} is in use by another training, "
                                     f"still running: wait for it to end (then continue the run with --resume), "
                                     f"or choose another --out\n"}
    assert r1 == {"rc": 75, "stderr": ""}
    # the command on each rank (the processes' start-up not counted); the collectives' timeout is 30 minutes
    assert max(float((case / f"{r}.took").read_text()) for r in (0, 1)) < 60
    assert not runtime.demo_data_root(out, (32, 32), 0).exists()  # refused before any work


def _bug_rank(rank, world, port, out_dir, args):
    """_cli_rank with a bug (not a user error) in rank 0's check of the run folder (undone after, for the
    process's next case)."""
    from bicyclegan.engine.trainer import Trainer

    def broken(self):
        raise ZeroDivisionError("a bug")
    check, Trainer._check_run_folder = Trainer._check_run_folder, broken
    try:
        _cli_rank(rank, world, port, out_dir, args)
    except ZeroDivisionError:  # rank 0: the traceback Python prints for a bug, once
        json.dump({"raised": True}, open(os.path.join(out_dir, f"{rank}.json"), "w"))
    finally:
        Trainer._check_run_folder = check


@pytest.mark.slow
def test_a_bug_on_rank_0_is_its_traceback_alone(ranks):
    """Rank 0's bug reaches the other ranks as 'rank 0 stopped: ...', which they raised on: a second
    traceback of the same error from every other rank. They exit 1 in silence now."""
    assert json.loads((ranks / "bug" / "0.json").read_text()) == {"raised": True}
    assert json.loads((ranks / "bug" / "1.json").read_text()) == {"rc": 1, "stderr": ""}


@pytest.mark.slow
def test_under_torchrun_a_refusal_is_one_line_and_no_rank_crashes(launched):
    """(The run folder in use: in_use/r, locked by another training, running, all along the launch.)"""
    _, everything, commands = launched
    _, rcs = commands["in_use"]
    assert any(rcs), rcs
    assert everything.count("is in use by another training, still running") == 1, everything
    # rank 1 exits 75, in silence (in the whole launch: its lines may show in another command's part)
    assert "[rank1]" not in everything and "Connection closed by peer" not in everything, everything


FULL_DISK = {"latest.pt": "CheckpointError: training stopped at step 2: cannot write checkpoint",
             "latest.png": "OutputError: cannot write sample grid",
             "log.jsonl": "OutputError: cannot write the training log"}


def _full_disk_rank(rank, world, port, out_dir, args, name):
    """_cli_rank of a run in out_dir/r where rank 0's disk is full for one file of the run folder: the checkpoint's
    or a grid's rename fails, or the training log's append (undone after, for the process's next case)."""
    from pathlib import Path

    from bicyclegan.engine import trainer
    if rank == 0:  # spawn_ranks's second launch starts the run afresh (the others wait for rank 0's group)
        shutil.rmtree(os.path.join(out_dir, "r"), ignore_errors=True)
    replace = os.replace
    if rank == 0 and name == "log.jsonl":
        class Full:
            def write(self, text):
                raise OSError(28, "No space left on device")

            def flush(self):
                pass

            def close(self):
                pass
        trainer.open = lambda *a, **k: Full()
    elif rank == 0:
        def failing(src, dst, **kw):
            if Path(dst).name == name:
                raise OSError(28, "No space left on device")
            return replace(src, dst, **kw)
        os.replace = failing
    try:
        _cli_rank(rank, world, port, out_dir, [*args, "--out", os.path.join(out_dir, "r")])
    finally:
        os.replace = replace
        vars(trainer).pop("open", None)


def _data_error_rank(rank, world, port, out_dir, args, broken):
    """_cli_rank of a run in out_dir/r where rank `broken`'s training loader meets a file broken since the checks
    at its third batch (rank 0's others, the sample grids', are read before the training); undone after, for the
    next case."""
    from bicyclegan.pipelines import DatasetError
    from bicyclegan.pipelines.cpu_loader import TorchLoader
    if rank == 0:  # (as in _full_disk_rank)
        shutil.rmtree(os.path.join(out_dir, "r"), ignore_errors=True)
    batches = TorchLoader.__iter__
    if rank == broken:
        def breaking(self):
            for i, batch in enumerate(batches(self)):
                if i == 2 and self.shuffle:
                    raise DatasetError("x.png changed since the checks")
                yield batch
        TorchLoader.__iter__ = breaking
    try:
        _cli_rank(rank, world, port, out_dir, [*args, "--out", os.path.join(out_dir, "r")])
    finally:
        TorchLoader.__iter__ = batches


@pytest.mark.slow
def test_a_data_error_on_one_rank_mid_training_is_one_line_from_each_rank(ranks):
    """Rank 1's data error ended it (its one line, exit 2) in the middle of the step, while rank 0 waited in
    that step's gradient all-reduce: gloo failed rank 0 there ("Connection closed by peer"), which it
    printed as a bug's traceback. Rank 0 now says in one line where it stopped, that another rank ended
    (which prints its own error) and which checkpoint is intact."""
    case = ranks / "data_error" / "1"
    r0, r1 = (json.loads((case / f"{r}.json").read_text()) for r in (0, 1))
    assert r1["rc"] == 2 and r1["stderr"].startswith("bicyclegan train: DatasetError: training stopped at step 3 ")
    assert "x.png changed since the checks" in r1["stderr"]
    assert r0["rc"] == 2, r0
    line, then = r0["stderr"].splitlines()[-2:]
    assert re.fullmatch(r"bicyclegan train: RankLostError: training stopped after step 2 \(epoch 1\): another of "
                        r"the 2 processes ended during it, and prints its own error \(rank 0 saw: (Connection "
                        r"closed by peer \[127.0.0.1\]:\d+|Read error \[127.0.0.1\]:\d+: Connection reset by peer)\)",
                        line), line  # (what gloo said, in short: either, by when the peer's socket closed)
    assert "Traceback" not in r0["stderr"]
    ckpt = case / "r" / "checkpoints" / "latest.pt"
    assert then == f"the last good checkpoint is {ckpt} (step 2): resume it with --resume"
    assert ckpt.exists()


@pytest.mark.slow
def test_a_rank_that_lost_rank_0_names_the_checkpoint_rank_0_wrote(ranks):
    """Rank 0 alone writes the checkpoints, and only its record of them was kept: rank 1, stopped by rank 0's
    error, said "no checkpoint was written before it: start the run again" of a run that had saved step 2."""
    case = ranks / "data_error" / "0"
    r0, r1 = (json.loads((case / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["rc"] == 2 and "x.png changed since the checks" in r0["stderr"], r0
    assert r1["rc"] == 2 and "RankLostError: training stopped after step 2 " in r1["stderr"], r1
    ckpt = case / "r" / "checkpoints" / "latest.pt"
    assert r1["stderr"].splitlines()[-1] == f"the last good checkpoint is {ckpt} (step 2): resume it with --resume"
    assert torch.load(ckpt, weights_only=False)["step"] == 2


def test_lost_rank_knows_a_collective_that_failed_for_a_rank_that_ended():
    from bicyclegan.engine.runtime import lost_rank
    gloo = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
            "[127.0.0.1]:6368. This is typically caused by a remote worker crashing. Check the logs of the remote "
            "worker before reporting an error. GLHF!")
    assert lost_rank(RuntimeError(gloo)) == "Connection closed by peer [127.0.0.1]:6368"
    assert lost_rank(RuntimeError(gloo.replace("closed", "reset"))) == "Connection reset by peer [127.0.0.1]:6368"
    assert lost_rank(dist.DistBackendError("NCCL communicator was aborted on rank 0.\nmore")) == (
        "NCCL communicator was aborted on rank 0.")
    assert lost_rank(RuntimeError("Connection closed by peer")) is None  # not gloo's transport: a bug's, kept
    assert lost_rank(RuntimeError("[gloo/transport/tcp/pair.cc:1] Timed out")) is None
    assert lost_rank(ValueError(gloo)) is None


@pytest.mark.parametrize("fails_in, said", [(9, "after step 8 (the end of epoch 2)"), (7, "after step 6 (epoch 2)"),
                                             (1, "before its first step")])
def test_a_lost_rank_is_said_with_the_epoch_of_the_step_finished(tmp_path, fails_in, said):
    """A collective that fails in the first step of epoch 3 (4 steps an epoch): the loader has run out and the
    epoch moved on, and the line said "after step 8 (epoch 3)", step 8 being epoch 2's last. Constructed in
    one process: a run that calls itself rank 0 of 2, whose step `fails_in` fails as gloo does."""
    from tiny import tiny_cfg

    from bicyclegan.engine.errors import RankLostError
    from bicyclegan.engine.trainer import Trainer
    from bicyclegan.pipelines import make_demo_dataset
    data = make_demo_dataset(tmp_path / "data", n_train=16, n_test=2, size=32, seed=0)
    t = Trainer(tiny_cfg(tmp_path / "run", data, niter=2, max_steps=12, log_every=100, sample_every=100,
                         save_every=100), progress=False)
    assert t.steps_per_epoch == 4
    real = t.model.train_step

    def train_step(batch):
        if t.step == fails_in - 1:
            raise RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:6368. This "
                               "is typically caused by a remote worker crashing.")
        return real(batch)
    t.model.train_step, t.world = train_step, 2  # (after the set-up: its loader is one process's)
    with pytest.raises(RankLostError) as e:
        t.train()
    assert str(e.value).startswith(f"training stopped {said}: another of the 2 processes ended during it")


@pytest.mark.parametrize("epoch_freq, named", [(0, "latest.pt"), (1, "latest.pt")])
def test_a_rank_lost_while_rank_0_saved_names_the_checkpoint_it_wrote(tmp_path, monkeypatch, epoch_freq, named):
    """Rank 0 wrote latest.pt at step 4, and then main_decides' broadcast of the outcome failed (the other rank
    gone meanwhile): its record was set past main_decides alone, so its line named the checkpoint before (step 2),
    and where that was an epoch's, told the user to resume from it (--resume epoch_1.pt), which sets the newer
    latest.pt aside. Constructed in one process: a run that calls itself rank 0 of 2 once that write is done."""
    from tiny import tiny_cfg

    from bicyclegan.engine import runtime
    from bicyclegan.engine.errors import RankLostError
    from bicyclegan.engine.trainer import Trainer
    from bicyclegan.pipelines import make_demo_dataset
    data = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, size=32, seed=0)  # 2 steps an epoch
    t = Trainer(tiny_cfg(tmp_path / "run", data, niter=4, max_steps=8, log_every=100, sample_every=100,
                         save_every=4 if epoch_freq else 2, save_epoch_freq=epoch_freq), progress=False)
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"
    decides = runtime.Dist.main_decides

    def main_decides(self, work):
        decides(self, work)
        if t.step == 4 and ckpt.exists() and torch.load(ckpt, weights_only=False)["step"] == 4:
            t.world = 2
            raise RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:6368. This "
                               "is typically caused by a remote worker crashing.")
    monkeypatch.setattr(runtime.Dist, "main_decides", main_decides)
    with pytest.raises(RankLostError) as e:
        t.train()
    assert str(e.value).splitlines()[-1] == (f"the last good checkpoint is {tmp_path / 'run' / 'checkpoints' / named}"
                                             f" (step 4): resume it with --resume")


@pytest.mark.parametrize("save_every, breaks_in, said", [
    (2, 3, "\nstep 3 since the last checkpoint could not be saved (the other process may have gone on into step 4, "),
    (100, 2, "\nsteps 1 to 2 since the start could not be saved (the other process may have gone on into step 3, ")])
def test_a_data_error_under_torchrun_says_which_steps_it_could_not_save(tmp_path, save_every, breaks_in, said):
    """One process saves the step before a data error; a rank of several cannot (the others may be in the next step's
    collectives), and its line named the last checkpoint without a word of the steps since, lost. "May": the rank
    cannot tell whether the others went on or met a data error too, as they would here, every training file broken
    (the dataset's disk gone), where the line said of each rank that the others went on. Constructed in one
    process: a run that calls itself rank 0 of 2 from step `breaks_in` on (before it, its saves are one process's),
    its files broken as that step trains (the next batch, read then, fails)."""
    from tiny import BROKEN_PNG, tiny_cfg

    from bicyclegan.engine.trainer import Trainer
    from bicyclegan.pipelines import DatasetError, make_demo_dataset
    data = make_demo_dataset(tmp_path / "data", n_train=16, n_test=2, size=32, seed=0)
    t = Trainer(tiny_cfg(tmp_path / "run", data, max_steps=8, log_every=100, sample_every=100, save_every=save_every),
                progress=False)
    real = t.model.train_step

    def train_step(batch):
        if t.step == breaks_in - 1:
            t.world = 2
            for f in (data / "train").iterdir():
                f.write_bytes(BROKEN_PNG)
        return real(batch)
    t.model.train_step = train_step
    with pytest.raises(DatasetError) as e:
        t.train()
    assert str(e.value).startswith(f"training stopped at step {breaks_in + 1} (epoch 1) on its data: ")
    assert said + "whose collectives this one cannot join without its batch, and a checkpoint needs every " \
        "process); " in str(e.value)
    ckpt = tmp_path / "run" / "checkpoints" / "latest.pt"  # (the one process's save at step 2, or none)
    assert (torch.load(ckpt, weights_only=False)["step"] if ckpt.exists() else None) == (2 if save_every == 2 else None)


def _start_bug_rank(rank, world, port, out_dir, args):
    """_cli_rank with a bug in rank 1's loader set-up, before the ranks' joint check of the files (undone after)."""
    from bicyclegan.engine import trainer
    build = trainer.build_loader
    if rank == 1:
        def broken(*a, **k):
            raise ZeroDivisionError("a bug")
        trainer.build_loader = broken
    try:
        _cli_rank(rank, world, port, out_dir, args)
    except ZeroDivisionError:  # rank 1: the traceback Python prints for a bug
        json.dump({"raised": True}, open(os.path.join(out_dir, f"{rank}.json"), "w"))
    finally:
        trainer.build_loader = build


@pytest.mark.slow
def test_a_rank_lost_at_start_up_is_one_line_on_the_others(ranks):
    """Rank 0 waited for rank 1 in the loader's joint check of the files, and printed gloo's failure as a
    bug's traceback of its own once rank 1 had ended on its bug (its group ended, as by its process's exit)."""
    r0, r1 = (json.loads((ranks / "start" / f"{r}.json").read_text()) for r in (0, 1))
    assert r1 == {"raised": True}
    assert r0["rc"] == 2 and "Traceback" not in r0["stderr"], r0
    # (gloo says the connection closed, or under load that a read found it reset)
    assert re.fullmatch(r"bicyclegan train: RankLostError: another process of this launch ended while this one "
                        r"waited for it, and prints its own error \(this one saw: (Connection closed by peer "
                        r"\[127.0.0.1\]:\d+|Read error \[127.0.0.1\]:\d+: Connection reset by peer)\)",
                        r0["stderr"].splitlines()[-1]), r0


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL_DISK)
def test_a_full_disk_on_rank_0_during_training_stops_every_rank_with_one_line(ranks, name):
    """Rank 0 alone writes the run folder while the ranks train: its failed write (a full disk) was its
    one line and exit 2, while the other ranks went on into the next step's all-reduce, where gloo
    failed them with a traceback ("Connection closed by peer") and NCCL left them waiting until torchrun
    killed them."""
    r0, r1 = (json.loads((ranks / "full_disk" / name / f"{r}.json").read_text()) for r in (0, 1))
    (line,) = (line for line in r0["stderr"].splitlines() if line.startswith("bicyclegan train: "))
    assert r0["rc"] == 2 and line.startswith(f"bicyclegan train: {FULL_DISK[name]}"), r0
    assert "No space left on device" in line
    assert r1 == {"rc": 2, "stderr": ""}


def _going_back_ranks(rank, world, ports, out_dir, args):
    """_cli_rank of a run of `args` (in out_dir/first/), then the refused starts of _refused_starts in one group (each
    one's exit code and stderr in out_dir/refused/<rank>.json; rank 0 lists the run folder's files, bytes and mtimes
    in out_dir/refused/{before,after}.json around them), then the run's resume from epoch 1 (in out_dir/back/), in one
    pair of processes, each on a port of its own; rank 0 copies the run's checkpoints and eval_log.jsonl to
    out_dir/before/ before the resume."""
    import contextlib
    import io

    from bicyclegan.engine import trainer
    from bicyclegan.engine.cli import main
    from bicyclegan.engine.errors import WeightsError
    out = args[args.index("--out") + 1]
    for name in ("first", "back", "refused"):
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    if rank == 0:  # spawn_ranks's second launch starts the run afresh (the others wait for rank 0's group)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(os.path.join(out_dir, "before"), ignore_errors=True)
    _cli_rank(rank, world, ports[0], os.path.join(out_dir, "first"), args)
    if rank == 0:  # (before it joins the next group: rank 1 waits there)
        json.dump(_listing(out), open(os.path.join(out_dir, "refused", "before.json"), "w"))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[1]), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    got, real = {}, trainer._evaluation

    def lacking(*a, **kw):
        raise WeightsError("rank 1 lacks a metric's weights")
    for case, argv in _refused_starts(args, out_dir).items():
        # A file one machine lacks (FID's weights in its torch hub cache), which two processes of one machine
        # cannot have otherwise: rank 1 alone refuses its evaluation, after rank 0 passed its own.
        trainer._evaluation = lacking if rank == 1 and case.startswith("rank_1") else real
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                got[case] = main(argv), err.getvalue()
        finally:
            trainer._evaluation = real
    dist.barrier()  # every rank done with them: the listing after is of everything they did
    dist.destroy_process_group()
    json.dump(got, open(os.path.join(out_dir, "refused", f"{rank}.json"), "w"))
    if rank == 0:
        json.dump(_listing(out), open(os.path.join(out_dir, "refused", "after.json"), "w"))
        shutil.copytree(os.path.join(out, "checkpoints"), os.path.join(out_dir, "before"))
        shutil.copy(os.path.join(out, "eval_log.jsonl"), os.path.join(out_dir, "before"))
    _cli_rank(rank, world, ports[2], os.path.join(out_dir, "back"),
              [*args, "--resume", "--epoch", "1", "--max_steps", "3"])


def _listing(folder):
    """Every file and folder under `folder`: path -> [mtime in ns, the file's bytes as latin-1 text or None]."""
    found = {}
    for here, _, files in os.walk(folder):
        for path in [here, *(os.path.join(here, f) for f in files)]:
            found[path] = [os.stat(path).st_mtime_ns,
                           open(path, "rb").read().decode("latin-1") if os.path.isfile(path) else None]
    return found


def _refused_starts(args, out_dir):
    """The starts refused by the evaluations' options between going_back's run (`args`) and its resume: case -> its
    command. Resumes, whose first writes (the later checkpoints set aside, the logs cut) must wait for every check,
    and new runs (out_dir/deep/new: both folders made by the start), which must leave no folder."""
    new = [*args, "--out", os.path.join(out_dir, "deep", "new")]
    return {
        # a mistyped measure: best.pt was kept by encoded_l1 (checked by rank 0)
        "keep_best": [*args, "--resume", "--keep_best", "coverage"],
        # evaluations that would not compare with the log's, from an earlier epoch (its later checkpoints to set aside)
        "eval_num": [*args, "--resume", "--epoch", "1", "--eval_num", "3"],
        "rank_1": [*args, "--resume", "--epoch", "1"],
        "new": [*new, "--eval_metrics", "l1,fid", "--fid_weights", os.path.join(out_dir, "nothing.pth")],
        "rank_1_new": new}


def _going_back_args(where):
    """The first run's command of the going-back case, in where/r on the demo data in where/data."""
    return ["train", "--out", str(where / "r"), "--dataroot", str(where / "data"), "--device", "cpu", "--no-progress",
            "--no-eval", "--crop_size", "32", "--load_size", "32", "--ngf", "4", "--nef", "4", "--ndf", "4",
            "--batch_size", "4", "--netG", "unet", "--netE", "resnet_128", "--netD", "basic_128_multi", "--netD2",
            "basic_128_multi", "--num_workers", "0", "--niter", "2", "--niter_decay", "1", "--save_epoch_freq", "1",
            "--sample_every", "100", "--save_every", "100",  # 16 pairs, 2 ranks of batch 4: 2 steps an epoch
            "--eval_every", "2", "--eval_num", "2", "--eval_metrics", "l1,palette", "--keep_best", "encoded_l1"]


@pytest.mark.slow
def test_under_torchrun_going_back_sets_the_later_checkpoints_aside_once(ranks):
    """Two ranks resumed from an earlier epoch_N.pt: rank 0 alone moves the abandoned continuation's
    checkpoints aside and says so; rank 1, which never touches the run folder, neither moves nor prints.
    The evaluation log is cut at the step resumed from, and the resumed run evaluates on (--eval_every)."""
    case = ranks / "going_back"
    out = case / "r"
    ckpts = out / "checkpoints"
    assert [json.loads((case / "first" / f"{r}.json").read_text())["rc"] for r in (0, 1)] == [0, 0]
    before = {p.name: p.read_bytes() for p in (case / "before").glob("*.pt")}
    assert sorted(before) == ["best.pt", "epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "latest.pt"]
    # best.pt goes aside with them where its evaluation came past step 2 (which evaluation was best is the run's)
    later = ["epoch_2.pt", "epoch_3.pt", "latest.pt"]
    later += ["best.pt"] if torch.load(case / "before" / "best.pt", weights_only=False)["best"]["step"] > 2 else []
    r0, r1 = (json.loads((case / "back" / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["rc"] == 0 and r0["stderr"].count("are moved to") == 1, r0
    said = f"past it ({', '.join(later)}) are moved to {ckpts / 'abandoned_after_step_2'},"
    assert said in r0["stderr"], r0
    assert r1 == {"rc": 0, "stderr": ""}
    assert sorted(p.name for p in ckpts.iterdir()) == ["abandoned_after_step_2", "best.pt", "epoch_1.pt", "latest.pt"]
    aside = {p.name: p.read_bytes() for p in (ckpts / "abandoned_after_step_2").iterdir()}
    assert aside == {k: before[k] for k in later}
    assert torch.load(ckpts / "latest.pt", weights_only=True)["step"] == 3
    then, now = ((where / "eval_log.jsonl").read_text().splitlines() for where in (case / "before", out))
    assert [json.loads(line)["step"] for line in then] == [2, 4, 6]
    # step 2's line kept as it was, 4 and 6 dropped, and the resumed run's own at its end
    assert now[0] == then[0] and [json.loads(line)["step"] for line in now] == [2, 3]


@pytest.mark.slow
def test_under_torchrun_a_start_refused_by_its_evaluations_changes_nothing(ranks):
    """Resumes and new runs refused by the evaluations' options (rank 0's checks, or rank 1's evaluation alone,
    after rank 0 passed its own) under torchrun: every rank exits 2, the refusal said once, by the rank it
    happened on; the run folder keeps every byte and mtime (no checkpoint set aside, no log cut), and a new run
    leaves no folder (deep/new: both made by the start)."""
    case = ranks / "going_back"
    r0, r1 = (json.loads((case / "refused" / f"{r}.json").read_text()) for r in (0, 1))
    log = case / "r" / "eval_log.jsonl"
    said = {  # case: (the rank that says it, the start of its line)
        "keep_best": (0, "ConfigError: keep_best=coverage, and the run's checkpoints/best.pt (step "),
        "eval_num": (0, f"ConfigError: the run's evaluations so far ({log}, up to step 2) measured n_inputs 2; this "
                        f"run's would measure n_inputs 3 "),
        "rank_1": (1, "WeightsError: rank 1 lacks a metric's weights\n"),
        "new": (0, "WeightsError: the evaluations during training (--eval_every 2): FID needs InceptionV3's weights: "
                   f"{case / 'nothing.pth'} does not exist"),
        "rank_1_new": (1, "WeightsError: rank 1 lacks a metric's weights\n")}
    assert sorted(r0) == sorted(r1) == sorted(said)
    for name, (rank, start) in said.items():
        (rc0, err0), (rc1, err1) = r0[name], r1[name]
        line, silent = (err0, err1) if rank == 0 else (err1, err0)
        assert (rc0, rc1) == (2, 2) and silent == "", (name, r0[name], r1[name])
        assert line.startswith(f"bicyclegan train: {start}") and line.count("\n") == 1, (name, line)
    assert "was kept by encoded_l1: resume with --keep_best encoded_l1" in r0["keep_best"][1]
    before, after = (json.loads((case / "refused" / f"{when}.json").read_text()) for when in ("before", "after"))
    assert str(log) in before and str(case / "r" / "checkpoints" / "epoch_3.pt") in before  # (a listing of the run)
    changed = sorted(path for path in {*before, *after} if before.get(path) != after.get(path))
    assert not changed, changed
    assert not (case / "deep").exists()


def _resume_rank(rank, world, port, out_dir, cases):
    """_cli_rank for several `train` commands in one group (each run's: init_distributed takes it): each
    one's exit code and what it printed."""
    import contextlib
    import io

    from bicyclegan.engine.cli import main
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    got = {}
    for case, args in cases.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            got[case] = main(args), err.getvalue()
    json.dump(got, open(os.path.join(out_dir, f"{rank}.json"), "w"))
    dist.destroy_process_group()


def _refused_resumes(where):
    """The refused resumes of the one process's run in where/run (on where/data) and new runs: case -> (its
    command, the start of its line)."""
    data, run = where / "data", where / "run"
    common = ["--device", "cpu", "--no-progress", "--no-eval"]
    new = ["train", "--out", str(where / "new"), "--dataroot", str(data), "--preset", "demo", "--crop_size", "32",
           "--ngf", "4", "--nef", "4", "--ndf", "4", "--batch_size", "4", "--num_workers", "0", *common]
    return {  # case: (its command, the start of its line)
        "nothing": (["train", "--out", str(where / "empty"), "--resume", *common],
                    "CheckpointError: --resume: no checkpoint at "),  # (rank 0's check of the folder: printed once)
        "epoch": (["train", "--out", str(run), "--epoch", "3", *common],
                  f"CheckpointError: no checkpoint for epoch 3 in {run / 'checkpoints'}: the run kept no per-epoch"),
        "config": (["train", "--out", str(run), "--resume", "--ngf", "8", *common],
                   f"CheckpointError: checkpoint {run / 'checkpoints' / 'latest.pt'} was written with another config; "
                   f"differences: model.ngf: checkpoint 4 vs now 8 "),
        "world": (["train", "--out", str(run), "--resume", *common],
                  f"CheckpointError: {run / 'checkpoints' / 'latest.pt'} was written by a run of 1 process(es), this "
                  f"one has 2: "),
        # Refusals of a new run judged beside them, alike on every rank.
        "graph": ([*new, "--cuda_graph"], "ConfigError: cuda_graph=True captures the step on a CUDA device"),
        "schedule": ([*new, "--niter", "1", "--niter_decay", "0", "--max_steps", "5"],
                     "ConfigError: max_steps=5 runs past the learning-rate schedule"),
    }


@pytest.mark.slow
def test_under_torchrun_a_refused_resume_is_one_line_of_rank_0s(ranks):
    """The checks of what a run starts from (the checkpoint the options name, whether it fits the run, the
    steps it leaves) ran on every rank, and every rank printed the refusal: a line per rank under torchrun."""
    r0, r1 = (json.loads((ranks / "resume" / f"{r}.json").read_text()) for r in (0, 1))
    for case, (_, start) in _refused_resumes(ranks / "resume").items():
        (rc0, err0), (rc1, err1) = r0[case], r1[case]
        assert (rc0, rc1) == (2, 2), (case, r0[case], r1[case])
        assert err0.startswith(f"bicyclegan train: {start}") and err0.count("\n") == 1, (case, err0)
        assert err1 == "", (case, err1)


# a tiny run's options, on 32-px demo data
DRY_RUN = ["--device", "cpu", "--no-eval", "--crop_size", "32", "--load_size", "32", "--netG", "unet", "--ngf", "4",
           "--nef", "4", "--ndf", "4", "--netE", "resnet_128", "--netD", "basic_128_multi", "--netD2",
           "basic_128_multi", "--batch_size", "2"]
# Before the processes are a group (the command line, a missing checkpoint) and in the loader's checks after it,
# every process refused alike: (command, the line it prints once).
REFUSED_ALIKE = [
    (["train", "--out", "r", "--device", "cpu", "--lambda_L1", "-1"],
     "bicyclegan train: ConfigError: lambda_L1=-1.0 must be a finite number >= 0"),
    (["evaluate", "nothing.pt", "--device", "cpu"],
     "bicyclegan evaluate: CheckpointError: checkpoint nothing.pt does not exist"),
    (["train", "--bogus"], "bicyclegan train: error: unrecognized arguments: --bogus"),
    (["train", "--out", "r", "--device", "cpu", "--crop_size", "32", "--no-eval", "--batch_size", "600"],
     "bicyclegan train: DatasetError: 512 samples fill no batch of batch_size=600 on each of 2 ranks"),
    # after the group is made: a refusal of the options, every rank's (each_decides)
    # train --dry-run starts no group under torchrun: every process checks the files alike (launched's data/,
    # one broken training file)
    (["train", "--out", "r", "--dataroot", "data", "--dry-run", *DRY_RUN],
     "bicyclegan train: DatasetError: 1 bad file(s) in data/train:"),
    # and the training itself, its group made, the ranks sharing the files' checks (each printed the whole list)
    (["train", "--out", "r3", "--dataroot", "data2", *DRY_RUN],
     "bicyclegan train: DatasetError: 1 bad file(s) in data2/train:"),
    (["compare", "a.pt", "--device", "cpu"],
     "bicyclegan compare: ConfigError: compare needs two models or more, got 1"),
    # the commands that do not share their work: each process would do it all, saying why
    (["export", "nothing.pt", "--out", "g.onnx"],
     "bicyclegan export: ConfigError: export runs in one process (under torchrun each process would do the "
     "whole work and write the same files over each other's): launch it without torchrun (train, evaluate, "
     "compare, sample and interpolate share their work among torchrun's processes)"),
    (["serve", "nothing.pt"],
     "bicyclegan serve: ConfigError: serve runs in one process (under torchrun each process would serve its "
     "own page at the same address): launch it without torchrun (train, evaluate, compare, sample and "
     "interpolate share their work among torchrun's processes)")]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One torchrun launch for the commands of the tests below, in turn (torchrun_in_turn): its start-up took most
    of each command's time. REFUSED_ALIKE's; a training into a run folder in use ("in_use": in_use/r, locked by
    another training, running, all along); a training with --skip_bad on demo data with a broken file in the
    training and the held-out split ("skip_bad", in data/). (The folder, all the launch printed, name -> (what the
    command printed, its exit code on each rank); a REFUSED_ALIKE command's name is its index.)"""
    import fcntl

    from bicyclegan.pipelines import make_demo_dataset
    locks = []

    def build(folder):
        data = make_demo_dataset(folder / "data", n_train=16, n_test=0, n_val=4, size=32, seed=0)
        for f in (data / "train" / "00003.png", data / "val" / "00001.png"):
            f.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        data2 = make_demo_dataset(folder / "data2", n_train=16, n_test=0, n_val=4, size=32, seed=0)
        (data2 / "train" / "00005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        (folder / "in_use" / "r").mkdir(parents=True)
        locks.append(os.open(folder / "in_use" / "r" / ".lock", os.O_RDWR | os.O_CREAT))
        fcntl.flock(locks[-1], fcntl.LOCK_EX)
        # a dry run's: a folder named as a reference dataset, for the note that names its preset
        make_demo_dataset(folder / "facades", n_train=8, n_test=2, size=32, seed=0)
        return [*(argv for argv, _ in REFUSED_ALIKE),
                ["train", "--out", "in_use/r", "--no-eval", "--device", "cpu", "--crop_size", "32", "--ngf", "4",
                 "--nef", "4", "--ndf", "4", "--batch_size", "4"],
                ["train", "--out", "runs/r", "--no-eval", "--device", "cpu", "--dataroot", data, "--crop_size", "32",
                 "--load_size", "32", "--netG", "unet", "--ngf", "4", "--nef", "4", "--ndf", "4", "--batch_size", "2",
                 "--netD", "basic_128_multi", "--netD2", "basic_128_multi", "--netE", "resnet_128", "--max_steps", "2",
                 "--eval_every", "2", "--eval_num", "3", "--eval_samples", "2", "--skip_bad", "--sample_every", "100",
                 "--no-progress"],
                ["train", "--out", "runs/dry", "--dataroot", "facades", "--dry-run", *DRY_RUN]]
    try:
        folder, done, said, codes = torchrun_in_turn_afresh(tmp_path_factory.mktemp("launched"), build, timeout=600)
    finally:
        for fd in locks:
            os.close(fd)
    everything = done.stdout + done.stderr
    names = [*range(len(REFUSED_ALIKE)), "in_use", "skip_bad", "dry_run"]
    assert len(said) == len(codes) == len(names), everything[-3000:]
    return folder, everything, dict(zip(names, zip(said, codes)))


@pytest.mark.slow
def test_under_torchrun_a_refusal_every_process_meets_alike_is_one_line(launched):
    """Before the processes are a group (the command line, a missing checkpoint) and in the loader's checks
    after it, every process refused alike and printed the same line: one per process under torchrun. Each
    machine's local rank 0 says it now (the others exit 2 in silence)."""
    # A line counted in all of the launch's output too: another process's may come after rank 0's start of the
    # next command.
    _, everything, commands = launched
    for i, (argv, line) in enumerate(REFUSED_ALIKE):
        own, rcs = commands[i]
        assert any(rcs) and own.count(line) == 1 and everything.count(line) == 1, (argv, rcs, own[-3000:])
    assert everything.count("usage: bicyclegan") <= 1, everything[-3000:]


@pytest.mark.slow
def test_under_torchrun_the_files_the_checks_leave_out_are_said_once(launched):
    """--skip_bad under torchrun: each rank said the training split's and the held-out split's lists of
    files left out, the same lists (one per process); the machine's local rank 0 says them now."""
    folder, everything, commands = launched
    own, rcs = commands["skip_bad"]
    assert rcs == [0, 0], own[-3000:]
    data = folder / "data"
    # (counted in all the launch printed: a line of rank 1's may show in another command's part)
    for split in ("train", "val"):
        assert everything.count(f"skipped 1 bad file(s) in {data / split}:") == 1, everything
    assert everything.count("evaluation at step 2") == 1, everything


@pytest.mark.slow
def test_under_torchrun_a_dry_run_prints_the_config_and_the_preset_note_once(launched):
    """train --dry-run under torchrun: every process checks what it would train (no group, so no rank waits on
    another), and each printed the config (a JSON document per process on stdout) and the note on a folder named
    as a reference dataset. Rank 0 prints the config now, each machine's local rank 0 the note (a line before
    the group, as the refusals before it)."""
    folder, everything, commands = launched
    own, rcs = commands["dry_run"]
    assert rcs == [0, 0], own[-3000:]
    # (counted in all the launch printed: rank 1's lines may show in another command's part)
    assert everything.count('"out": "runs/dry"') == 1 and '"out": "runs/dry"' in own, own[-3000:]
    assert everything.count("note: facades is named like the reference's facades dataset") == 1, everything
    assert not (folder / "runs" / "dry").exists()


def test_every_option_of_the_shared_commands_passes_through_torchrun():
    """torchrun's own parser reads every argument, ours included, and stops on one that abbreviates two of its
    options: `evaluate --num 5` under torchrun ended in "ambiguous option: --num could match --numa-binding,
    --numa_binding". Every option of train, evaluate and compare must have a spelling torchrun lets through
    (the README's torchrun lines use it: --num_test for --num)."""
    import argparse

    from torch.distributed.run import get_args_parser

    from bicyclegan.engine.cli import DISTRIBUTED, build_parser
    theirs = [s for a in get_args_parser()._actions for s in a.option_strings if s.startswith("--")]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    blocked = {}
    for command in DISTRIBUTED:
        for action in sub.choices[command]._actions:
            ours = [s for s in action.option_strings if s.startswith("--") and s != "--help"]
            # a spelling torchrun would stop on: the start of two or more of its options
            passes = [s for s in ours if len([t for t in theirs if t.startswith(s) and t != s]) < 2]
            if ours and not passes:
                blocked[f"{command} {'/'.join(ours)}"] = [t for t in theirs if t.startswith(ours[0])]
    assert not blocked, blocked
    assert "--num" in sub.choices["evaluate"]._option_string_actions  # (the check reads the options at all)


@pytest.mark.parametrize("backend, waits", [("gloo", True), ("nccl", False)])
def test_a_gloo_group_is_ended_after_a_moment_without_the_gil(monkeypatch, backend, waits):
    """torch (before pytorch/pytorch#154976) ends a group holding the GIL while it joins the group's threads,
    and a gloo thread still dropping the last collective's tensors needs the GIL: on torch 2.5.1 a rank hung in
    destroy_process_group after mean_over_ranks in 8 runs of 63 (a barrier first: 1 in 18), in none of 60
    after a sleep (which releases the GIL) before it. Not reproducible on the torch CI runs; this pins the
    order: Dist.close sleeps, then ends the group, for gloo only."""
    from bicyclegan.engine import runtime
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda *a: backend)
    monkeypatch.setattr(dist, "destroy_process_group", lambda *a: calls.append("destroy"))
    monkeypatch.setattr(runtime.time, "sleep", lambda s: calls.append(("sleep", s)))
    runtime.Dist(0, 2, owns_group=True).close()
    assert calls == ([("sleep", 0.2)] if waits else []) + ["destroy"]
    calls.clear()
    runtime.Dist(0, 2, owns_group=False).close()  # a caller's own group is left as it is
    assert calls == []
