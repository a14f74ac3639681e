"""The commands in the shell around them: a reader that goes away, SIGTERM and SIGHUP outside a training, a folder
a group shares, ~ the shell did not expand, file names that are not UTF-8, a terminal without control sequences."""
import io
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny import TINY, tiny_cfg

from bicyclegan.engine import BicycleGAN, cli, export, make_config, runtime
from bicyclegan.engine import download as dl
from bicyclegan.engine import report as report_module
from bicyclegan.engine.io import Stopped, fit_line, signals_held, write_text
from bicyclegan.engine.trainer import LOCK_FILE, Trainer
from bicyclegan.pipelines import atomic, files, make_demo_dataset, make_loader


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=8, n_test=2, size=32, seed=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("runs") / "r"
    Trainer(tiny_cfg(out, data, max_steps=2, sample_every=100), progress=False).train()
    return out


def dead_tag() -> str:
    """A writer tag of this machine whose process is gone (a pid past any the kernel gives)."""
    return f"{2 ** 31 - 2}-{atomic.writer_tag().split('-')[1]}-abc123"


class _Gone(io.StringIO):
    """stdout whose reader went away (`| true`): every write is a broken pipe."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["sample", "--n_samples", "1"], ["evaluate", "--metrics", "l1", "--n_samples", "2"]])
def test_a_reader_gone_before_the_results_line_still_has_the_report_rewritten(run, data, tmp_path, monkeypatch,
                                                                            capsys, argv):
    # `sample ... | true`: the results line met the closed pipe first, and the run's report.html, rewritten after
    # it, never listed them (exit 141); with `| head -1` the rewrite's own line failed and said "not rewritten".
    rewritten = []
    real = report_module.refresh_report
    monkeypatch.setattr(report_module, "refresh_report", lambda ckpt: rewritten.append(ckpt) or real(ckpt))
    monkeypatch.setattr(sys, "stdout", _Gone())
    monkeypatch.setattr("bicyclegan.engine.io.to_devnull", lambda stream: None)
    code = cli.main([argv[0], str(run / "checkpoints" / "latest.pt"), "--dataroot", str(data), "--num", "2",
                     "--out" if argv[0] == "sample" else "--json", str(tmp_path / "out"), *argv[1:]])
    assert code == 128 + signal.SIGPIPE
    assert rewritten == [run / "checkpoints" / "latest.pt"]
    assert "not rewritten" not in capsys.readouterr().err


SIGNALLED = """
import os, signal, sys, time
import PIL.Image
from bicyclegan.engine import cli
signal.signal(signal.SIGHUP, signal.SIG_IGN) if {nohup} else None
saves, real = [], PIL.Image.Image.save
def save(self, fp, *a, **k):  # the third image: its temp file made, its write begun
    saves.append(fp)
    if len(saves) == 3:
        os.kill(os.getpid(), {sig})
        time.sleep(0.5)  # (the images are written by threads: the main thread takes the signal meanwhile)
    return real(self, fp, *a, **k)
PIL.Image.Image.save = save
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig, nohup", [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGHUP, True)])
def test_a_sigterm_or_hang_up_during_sample_leaves_no_half_written_file_and_says_so(run, data, tmp_path, sig, nohup):
    # The signal's default death left sample's image half-written under its temporary name (.x.png.<pid>...tmp,
    # 1032 of 1475 files made), said nothing, and wrote no gallery; a Ctrl-C always unwound. nohup's SIGHUP:
    # ignored still.
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", SIGNALLED.format(sig=int(sig), nohup=nohup), "sample",
                           str(run / "checkpoints" / "latest.pt"), "--dataroot", str(data), "--out", str(out),
                           "--n_samples", "3", "--num", "2"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    left = sorted(p.name for p in (out / "images").iterdir())
    if nohup:
        assert done.returncode == 0, done.stderr
        assert (out / "index.html").is_file()
    else:
        assert done.returncode == 128 + sig, done.stderr
        assert done.stderr.strip().splitlines()[-1] == (f"stopped by {sig.name}: the images written so far are "
                                                        f"whole: the same command goes on from them")
        # the images begun before it (an input's are written at once: those being written end whole), not the
        # second input's 6 nor a gallery
        assert 3 <= len(left) <= 6 and not (out / "index.html").exists(), left
    assert not [n for n in left if n.startswith(".")], left
    for name in left:
        Image.open(out / "images" / name).load()  # whole


def test_the_handlers_are_the_commands_alone_and_given_back(run, data, tmp_path):
    # main() called from a program: its own handling of SIGTERM stays, and after a command the signals' own.
    seen = []
    before = signal.signal(signal.SIGTERM, lambda *a: seen.append(a))
    try:
        assert cli.main(["sample", str(run / "checkpoints" / "latest.pt"), "--dataroot", str(data),
                         "--out", str(tmp_path / "o"), "--num", "1", "--n_samples", "1"]) == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert len(seen) == 1
    finally:
        signal.signal(signal.SIGTERM, before)
    assert cli._unwind_on_stop("train") == {} and cli._unwind_on_stop("serve") == {}
    replaced = cli._unwind_on_stop("sample")
    try:
        assert set(replaced) == {signal.SIGTERM, signal.SIGHUP}
        assert signal.getsignal(signal.SIGTERM) is cli._raise_stopped
    finally:
        for s, handler in replaced.items():
            signal.signal(s, handler)


def tiny_model(tmp_path):
    torch.manual_seed(0)
    return BicycleGAN(make_config("reference", dataroot=str(tmp_path), **TINY), device="cpu", training=False)


@pytest.mark.parametrize("context, raised", [(KeyboardInterrupt, KeyboardInterrupt), (Stopped, Stopped),
                                             (GeneratorExit, export.ExportError)])
def test_a_ctrl_c_inside_the_exporter_is_a_ctrl_c_not_a_failed_export(tmp_path, monkeypatch, context, raised):
    # Interrupted in one of torch's lazy imports, the exporter raised an AttributeError ("module 'torch._dynamo'
    # has no attribute 'exc'") with the KeyboardInterrupt as its context: said as "exporting ... failed", exit 2.
    # Only a Ctrl-C or a stop: a generator's GeneratorExit there is the exporter's own failure.
    def interrupted(*args, **kwargs):
        try:
            raise context(signal.SIGTERM) if context is Stopped else context
        except context:
            raise AttributeError("module 'torch._dynamo' has no attribute 'exc'") from None

    monkeypatch.setattr(export, "_export_onnx", interrupted)
    with pytest.raises(raised):
        export.export_generator(tiny_model(tmp_path), tmp_path / "g.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_export_removes_what_a_killed_export_left(tmp_path, monkeypatch):
    # Its temporary file ends in the format's suffix (.g.onnx.<writer>.tmp.onnx), which atomic_write's cleanup does
    # not list: a killed export's stayed for good, through later exports to the same file.
    dead, alive = tmp_path / f".g.onnx.{dead_tag()}.tmp.onnx", tmp_path / f".g.onnx.{atomic.writer_tag()}-x1.tmp.onnx"
    other = tmp_path / f".h.onnx.{dead_tag()}.tmp.onnx"
    for p in (dead, alive, other):
        p.write_bytes(b"part")
    monkeypatch.setattr(export, "_export_onnx", lambda G, inputs, names, shapes, path, opset: path.write_bytes(b"x"))
    export.export_generator(tiny_model(tmp_path), tmp_path / "g.onnx", verify=False)
    assert (tmp_path / "g.onnx").read_bytes() == b"x"
    assert not dead.exists() and alive.exists() and other.exists()  # a live writer's, another file's: kept


def test_stale_temps_are_those_of_gone_writers_of_that_name_and_suffix(tmp_path):
    target = tmp_path / "d.v2"
    names = {f".d.v2.{dead_tag()}.tmp": True, f".d.v2.{atomic.writer_tag()}-q9.tmp": False,
             f".d.v2.{dead_tag()}.tmp.onnx": False, f".e.v2.{dead_tag()}.tmp": False,
             f".d.v2.x.{dead_tag()}.tmp": False,
             f".d.v2.{dead_tag().replace(atomic.writer_tag().split('-')[1], '0badc0de')}.tmp": False}  # another host's
    for name in names:
        (tmp_path / name).mkdir()
    assert atomic.stale_temps(target, ".tmp") == sorted(tmp_path / n for n, stale in names.items() if stale)
    assert atomic.stale_temps(tmp_path / "missing" / "x", ".tmp") == []


def fake_demo(folder, size, seed):
    (Path(folder) / "test").mkdir(parents=True)
    (Path(folder) / "test" / "palettes.json").write_text("{}")


def test_the_demo_data_keeps_a_group_folders_setgid_and_clears_a_killed_runs_part(tmp_path, monkeypatch):
    # chmod after mkdtemp cleared the setgid bit: the data's folders were the maker's group, and another member's
    # run died on a PermissionError; a run killed while making it (its SIGTERM during start-up) left the part-made
    # folder for good.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    part = shared / f".demo_data.{dead_tag()}.tmp"
    (part / "train").mkdir(parents=True)
    monkeypatch.setattr(runtime, "make_demo_dataset", fake_demo)
    root = shared / "demo_data"
    runtime._make_demo_data(root, tiny_cfg(tmp_path / "r", root))
    assert (root / "test" / "palettes.json").is_file()
    assert root.stat().st_mode & stat.S_ISGID
    assert sorted(p.name for p in shared.iterdir()) == ["demo_data"]


def test_a_downloaded_dataset_keeps_a_group_folders_setgid(tmp_path, monkeypatch):
    from test_download import FACADES, FileServer, dataset, tar_gz
    server = FileServer()
    try:
        server.files[FACADES] = tar_gz(dataset("facades"))
        shared = tmp_path / "datasets"
        shared.mkdir()
        os.chmod(shared, 0o2775)
        root = dl.download_dataset("facades", shared, mirror=server.url, progress=False)
    finally:
        server.close()
    assert root.stat().st_mode & stat.S_ISGID


def test_the_run_folders_lock_file_takes_the_umask_and_a_read_only_one_still_locks(tmp_path, data, monkeypatch):
    # Made 0644 whatever the umask: in a group's run folder (umask 002) another member's resume was a
    # PermissionError traceback. A lock file they cannot write (another's, 0644) is locked read-only: flock needs
    # no write access.
    old = os.umask(0o002)
    try:
        t = Trainer(tiny_cfg(tmp_path / "r", data, max_steps=1), progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r" / LOCK_FILE).stat().st_mode) == 0o664
    t._release()
    real = os.open

    def not_writable(path, flags, *mode):
        if str(path).endswith(LOCK_FILE) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *mode)

    monkeypatch.setattr(os, "open", not_writable)
    t = Trainer(tiny_cfg(tmp_path / "r", data, max_steps=1), progress=False)
    assert t._lock is not None and t._lock.alive
    t._release()


def test_a_folder_whose_name_is_not_utf8_is_checked_cached_and_reported(tmp_path, monkeypatch):
    # Latin-1 bytes from an old archive (os.fsdecode: lone surrogates): the check cache's key was a
    # UnicodeEncodeError traceback in every command that reads data, and a training's report.html another.
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "_SETTLE_NS", 0)  # (files just written are cached once they settle)
    folder = tmp_path / os.fsdecode(b"lat\xe9n")
    make_demo_dataset(folder, n_train=2, n_test=1, size=32, seed=0)
    assert len(make_loader(folder, phase="train", batch_size=1, load_size=32, crop_size=32, preprocess="none",
                           backend="torch", num_workers=0)) == 2
    assert len(list((tmp_path / "cache").iterdir())) == 1
    page = write_text(tmp_path / "page.html", f"<p>{folder}</p>")
    assert os.fsencode(str(folder)) in page.read_bytes()


def test_the_cache_that_cannot_be_saved_is_said_once(tmp_path, monkeypatch, caplog):
    # An unwritable home (user nobody, HOME=/nonexistent): every loader said it, a training three times.
    make_demo_dataset(tmp_path / "d", n_train=2, n_test=1, size=32, seed=0)
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(tmp_path / "a_file" / "cache"))
    monkeypatch.setattr(files, "_SETTLE_NS", 0)
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        for phase in ("train", "test", "train"):
            make_loader(tmp_path / "d", phase=phase, batch_size=1, load_size=32, crop_size=32, preprocess="none",
                        backend="torch", num_workers=0)
    said = [r.getMessage() for r in caplog.records if "could not save the file checks' cache" in r.getMessage()]
    assert len(said) == 1 and "BICYCLEGAN_CHECK_CACHE" in said[0]


@pytest.mark.parametrize("argv, key, expanded", [
    (["train", "--out=~/runs/t", "--dry-run"], "out", "{home}/runs/t"),
    (["sample", "~/runs/t", "--dataroot", "~"], "dataroot", "{home}"),
    (["compare", "~/a", "b~/c", "~x/d"], "models", ["{home}/a", "b~/c", "~x/d"]),
    (["compare", "a", "b", "--names", "~/mine,theirs"], "names", "~/mine,theirs"),  # names, not paths
    (["serve", "x.pt", "--allow_host", "~"], "allow_host", ["~"]),
])
def test_a_tilde_the_shell_left_is_the_home_folder(tmp_path, monkeypatch, argv, key, expanded):
    # --out=~/runs (no expansion after "=", nor in quotes) made a folder named ~ in the current one.
    monkeypatch.setenv("HOME", str(tmp_path))
    args = cli.build_parser().parse_args(argv)
    cli._expand_home(args)
    value = vars(args)[key]
    want = [w.format(home=tmp_path) for w in expanded] if isinstance(expanded, list) else expanded.format(home=tmp_path)
    assert value == want


def test_train_dry_run_with_a_tilde_writes_nothing_in_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--out=~/runs/t", "--dry-run"]) == 0
    assert f'"out": "{tmp_path / "home" / "runs" / "t"}"' in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == []


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("term", ["xterm", "dumb"])
def test_the_download_line_fits_the_terminal_and_its_term(monkeypatch, term):
    # 78 columns on a 40-column terminal (each update stacked a row), and "^[[K" on a dumb one.
    monkeypatch.setenv("TERM", term)
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((40, 24)))
    tty = _Terminal()
    bar = dl._Bar("facades.tar.gz", True, tty)
    bar.start(0, 10 * 2 ** 20)
    bar.update(5 * 2 ** 20, force=True)
    bar.update(6 * 2 ** 20, force=True)
    lines = tty.getvalue().split("\r")[1:]
    assert len(lines) == 3 and all(len(line.rstrip("\x1b[K")) <= 39 for line in lines), lines
    assert all(("\x1b[K" in line) == (term != "dumb") for line in lines)
    assert "5.0/10.0 MiB" in lines[1] and "#" not in lines[1]  # the bar goes first
    bar.total = None  # (a server that sends no length: a shorter line, over the longer one)
    bar.update(7 * 2 ** 20, force=True)
    last, before = tty.getvalue().split("\r")[-1], lines[-1]
    assert last.startswith("facades.tar.gz 7.0 MiB")
    assert len(last) == len(before) if term == "dumb" else last.endswith("\x1b[K")  # padded over it, or erased


def test_a_status_line_fits_the_terminal_it_is_written_to(monkeypatch):
    # stdout redirected (`path=$(bicyclegan download ...)`) and stderr on a 50-column terminal: the line was cut
    # to stdout's width (shutil's), 75 columns, and wrapped.
    import fcntl
    import struct
    import termios
    main, side = os.openpty()
    try:
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))
        monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((300, 24)))
        with open(side, "w", closefd=False) as stream:
            assert len(fit_line("x" * 200, "", stream)) == 49
        assert len(fit_line("x" * 200, "", io.StringIO())) == 200  # (no terminal of its own: shutil's)
    finally:
        os.close(main)
        os.close(side)


def test_onnxruntime_says_only_its_errors():
    ort = pytest.importorskip("onnxruntime")
    # (its warning that it could not keep a telemetry id in an unwritable home came in colour codes, into logs)
    assert export.single_threaded(ort).log_severity_level == 3


@pytest.mark.parametrize("rank", ["0", "1"])
def test_under_torchrun_rank_0_alone_says_the_stop(monkeypatch, capsys, rank):
    # (as a Ctrl-C: torchrun passes the signal to every rank, and a line each buried the one)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", rank)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")

    def stopped(args):
        raise Stopped(signal.SIGTERM)
    monkeypatch.setattr(cli, "cmd_sample", stopped)
    assert cli.main(["sample", "x.pt"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.count("stopped by SIGTERM") == (rank == "0")


def test_a_stop_on_a_terminal_that_hung_up_still_ends_with_the_signals_code(monkeypatch):
    # The hang-up of a closed terminal, then the stop line's own write an OSError (EIO): exit 1 and a traceback.
    class HungUp(io.StringIO):
        def write(self, text):
            raise OSError(5, "Input/output error")

    def stopped(args):
        raise Stopped(signal.SIGHUP)
    monkeypatch.setattr(cli, "cmd_sample", stopped)
    monkeypatch.setattr(sys, "stderr", HungUp())
    monkeypatch.setattr("bicyclegan.engine.io.to_devnull", lambda stream: None)
    assert cli.main(["sample", "x.pt"]) == 128 + signal.SIGHUP


def test_a_stopped_download_says_its_partial_file_is_kept(monkeypatch, capsys):
    def stopped(args):
        raise Stopped(signal.SIGTERM)
    monkeypatch.setattr(cli, "cmd_download", stopped)
    assert cli.main(["download", "dataset", "facades"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == ("stopped by SIGTERM: the partial download is kept: the same command "
                                       "continues it\n")


def test_a_ctrl_c_of_a_download_says_its_partial_file_is_kept_as_its_stop_does(monkeypatch, capsys):
    # A SIGTERM said that the same command continues the download; a Ctrl-C said "interrupted" alone
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_download", interrupted)
    assert cli.main(["download", "dataset", "facades"]) == 130
    assert capsys.readouterr().err == "interrupted; the partial download is kept: the same command continues it\n"


def test_a_stop_during_a_checkpoints_write_waits_for_its_end(tmp_path, monkeypatch):
    # import-official's or download model's checkpoint: the Stopped raised inside torch's C++ writer came back as
    # "cannot write checkpoint ...: unexpected pos ...: its write stopped short, as on a full disk", exit 2.
    from bicyclegan.engine import checkpoint
    real = torch.save

    def save(obj, f):
        os.kill(os.getpid(), signal.SIGTERM)  # (a handler's raise here is torch's writer's callback's)
        return real(obj, f)
    replaced = cli._unwind_on_stop("import-official")
    try:
        monkeypatch.setattr(checkpoint.torch, "save", save)
        with pytest.raises(Stopped):
            checkpoint.write_state({"step": 3, "weights": torch.ones(4)}, tmp_path / "c.pt")
        assert torch.load(tmp_path / "c.pt", weights_only=True)["step"] == 3  # written whole, then stopped
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            held = "still here"
        pytest.fail(held)  # (not reached: raised at the block's end)
    except Stopped:
        pass
    finally:
        for s, handler in replaced.items():
            signal.signal(s, handler)


def test_a_lock_that_cannot_be_taken_read_only_is_said(tmp_path, data, monkeypatch, capsys):
    # NFS locks only descriptors open for writing: the read-only fallback trained unguarded, and said nothing.
    import fcntl
    real_open, real_flock = os.open, fcntl.flock
    read_only = set()

    def not_writable(path, flags, *mode):
        if str(path).endswith(LOCK_FILE) and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        fd = real_open(path, flags, *mode)
        if str(path).endswith(LOCK_FILE):
            read_only.add(fd)
        return fd

    def nfs_flock(fd, how):
        if fd in read_only:
            raise OSError(9, "Bad file descriptor")
        return real_flock(fd, how)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / LOCK_FILE).touch()  # (another member's)
    monkeypatch.setattr(os, "open", not_writable)
    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    t = Trainer(tiny_cfg(tmp_path / "r", data, max_steps=1), progress=False)
    assert t._lock is None
    assert "is not writable here and this file system locks only files open for writing" in capsys.readouterr().err


# The command (cli.run) with a main() that returns what a stop returns: 128 + the signal, or another code.
ENDING = "from bicyclegan.engine import cli\ncli.main = lambda: {code}\ncli.run()"


@pytest.mark.parametrize("code, died", [(143, -signal.SIGTERM), (130, -signal.SIGINT), (141, -signal.SIGPIPE),
                                        (2, 2), (137, 137)])
def test_the_command_dies_of_the_signal_that_stopped_it_and_exits_with_any_other_code(code, died):
    # (137, SIGKILL's code, is no stop of ours: never sent to itself)
    done = subprocess.run([sys.executable, "-c", ENDING.format(code=code)], capture_output=True, text=True)
    assert done.returncode == died, done.stderr


def test_where_its_own_signal_cannot_kill_it_the_command_exits_with_the_stops_code():
    # PID 1 of a container (`docker run` without --init) ignores the default-action signals it sends itself
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", ENDING.format(code=143)],
                              capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if done.returncode and "unshare" in done.stderr:
        pytest.skip(f"no PID namespace here: {done.stderr.strip()}")
    assert done.returncode == 143, done.stderr
