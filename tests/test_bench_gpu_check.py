"""bench/gpu_check.sh --dry-run: the one GPU call, rehearsed on the CPU, so that the call itself
cannot fail on a typo, a missing file or a renamed option. Every step must run and pass, every file
the call would bring back must be written and well-formed, and bench/track.py must ingest them."""
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import track  # noqa: E402

from bicyclegan.pipelines.loader import dali_available  # noqa: E402

HAS_TUNER = importlib.util.find_spec("bicyclegan.kernels.tune") is not None
# device_options: the dry run's alone (the device's training options parsed, whose run here has the CPU's)
MAIN_STEPS = ["install", "imports", "nvidia-smi", "tune", "gpu_tests", "ladder", "device_options", "train_graph",
              "train_graph_resume", "kernels", "profile", "loader"]
# Settings of the calling session the call must not see: the benchmarks' and the project's, and
# pytest-xdist's (`make test`), under which the call's own pytest-benchmark would time nothing.
OWN_ENV = ("BENCH_", "BICYCLEGAN_", "PYTEST_XDIST_")
LADDER = ["eager_fp32_torch", "graph_bf16_triton_cl", "graph_bf16_torch", "eager_bf16_torch", "eager_bf16_triton",
          "eager_bf16_triton_cl", "graph_bf16_triton"]


def dry_run(out, *args, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV)}
    env.update(OUT=str(out), PY=sys.executable, **env_extra)
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=6 * 500)
    suffix = "".join(f"_{a}" for a in args)  # each call's own log and step list
    log = out / f"check{suffix}.log"
    tail = log.read_text()[-4000:] if log.exists() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:] + tail
    steps = [json.loads(line) for line in (out / f"steps{suffix}.jsonl").read_text().splitlines()]
    failed = [s for s in steps if s["rc"] != 0]
    assert not failed, f"{failed}\n{log.read_text()[-6000:]}"
    return steps


def benchmarks(path):
    data = json.loads(path.read_text())
    assert data["machine_info"]["bicyclegan"]["dry_run"] is True
    return data


def returnable(out):
    """What the device tool brings back: at most 8 files, plain names, no deeper than $OUT/a/b/file."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files
    for p in files:
        rel = p.relative_to(out)
        assert len(rel.parts) <= 3 and all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for part in rel.parts), rel
    return sorted(p.name for p in files)


def test_dry_run_reaches_every_step_and_writes_every_file(tmp_path):
    out = tmp_path / "out"
    # As on a machine without /dev/shm: the loader bench must run with the workers that fit (none).
    steps = dry_run(out, GPU_CHECK_SHM=str(tmp_path / "no-shm"))
    assert [s["step"] for s in steps] == MAIN_STEPS
    assert steps[0]["limit"] == 6 * 90  # a dry run's steps get six times the device's limits
    tune = steps[MAIN_STEPS.index("tune")]
    expected = {"check.log", "steps.jsonl", "kernels.json", "train_step.json", "profile.json", "loader.json"}
    if HAS_TUNER:
        expected.add("tuning.json")
        json.loads((out / "tuning.json").read_text())
    else:
        assert tune["note"].startswith("not present on this branch")
    assert set(returnable(out)) == expected
    # The device's options of the training run resolved, and its resume's through the config.json that run
    # writes: the resume step resolves its options there, which a dry run's step left unread
    options = (out / "check.log").read_text().split("=== device_options", 1)[1].split("=== train_graph", 1)[0]
    assert re.search(r"^device_options: the resume resolved through \S+/config\.json: max_steps 50$", options, re.M)
    # the training run and its resume: 40 steps (a checkpoint at 30 and at the end), then 10 more
    log = (out / "check.log").read_text().split("=== train_graph: ", 1)[1].splitlines()[1:]
    assert [json.loads(line)["step"] for line in log if line.startswith("{")] == [10, 20, 30, 40, 50]
    # The gpu tests but the one that compiles with inductor (the compile call's): the 120 s step
    # cannot hold its tens of seconds of compiling beside the kernel tests'.
    gpu_tests = (out / "check.log").read_text().split("=== gpu_tests", 1)[1].split("=== ladder", 1)[0]
    assert "tests/test_graph.py::test_graphed_steps_equal_eager_steps" in gpu_tests
    for path in ("eager_bf16", "graphed_bf16"):  # the training loop's syncs, under the sync debug mode
        assert f"tests/test_host_sync.py::test_no_host_sync_between_log_intervals_on_the_gpu[{path}]" in gpu_tests
    assert "test_generator_compiles_to_one_graph" not in gpu_tests

    kernels = benchmarks(out / "kernels.json")
    names = {b["name"].split("[")[0] for b in kernels["benchmarks"]}
    assert names == {"test_copy_bandwidth", "test_norm_act", "test_norm_act_sliced_dy", "test_generator_fwd_bwd",
                     "test_all_over_input_cost", "test_layer_fwd_bwd", "test_avg_pool"}
    figs = track.figures(kernels)
    # ours, eager PyTorch and torch.compile in each norm case (ours and eager with a sliced dy); ref,
    # fused_concat and concat_free for z injection
    norm = {n: set(f["rows"]) for n, f in figs.items() if n.startswith("norm_act")}
    sliced = {n for n in norm if "sliced_dy" in n}
    assert len(sliced) == 2 and all(norm[n] == {"ours", "eager"} for n in sliced)
    assert all(rows == {"ours", "eager", "compile"} for n, rows in norm.items() if n not in sliced)
    assert set(figs["zinject_G_fwd_bwd_b2"]["rows"]) == {"ours", "ref", "fused_concat"}
    pool = {n: set(f["rows"]) for n, f in figs.items() if n.startswith("avg_pool")}
    assert len(pool) == 4 and all(rows == {"ours", "eager", "compile"} for rows in pool.values())
    # no CUDA graphs on the CPU: every kernel row is timed by its calls, and says so
    rows = [b["extra_info"] for b in kernels["benchmarks"] if "figure" in b["extra_info"]]
    assert len(rows) > 20 and all(i["timing"] == "eager_call" and i["ms"] == i["eager_call_ms"] for i in rows)

    ladder = benchmarks(out / "train_step.json")
    fig = track.figures(ladder)["train_step_b2"]
    assert set(fig["rows"]) == {"ours", *LADDER[:-1]} and fig["gate"] == "eager_fp32_torch"
    assert all("peak_memory_mib" in b["extra_info"] for b in ladder["benchmarks"])

    profile = json.loads((out / "profile.json").read_text())
    # the graphed step also without its graph, whose replays the profiler may not break into kernels
    assert list(profile["tables"]) == ["eager_fp32_torch", "graph_bf16_triton", "eager_bf16_triton"]
    assert all(profile["top"][rung] and "aten::" in profile["tables"][rung] for rung in profile["tables"])
    assert all(profile["tables"][rung].startswith(f"({profile['notes'][rung]})\n") for rung in profile["tables"])

    loader = track.figures(benchmarks(out / "loader.json"))
    assert "ours" in loader["cpu_loader_256px"]["rows"]
    feeds = loader["loader_feeds_step_b2"]
    assert set(feeds["rows"]) == {"ours", "resident", "loader_only", "two_workers"} and feeds["gate"] == "resident"
    assert "it runs with BENCH_LOADER_WORKERS=0" in (out / "check.log").read_text()
    # the capped count, in both figures: the CPU loader's said the uncapped default (2 workers here)
    infos = {b["name"]: b["extra_info"] for b in benchmarks(out / "loader.json")["benchmarks"]}
    assert infos["test_loader_cpu"]["workers"] == infos["test_loader_feeds_the_step"]["workers"] == 0
    assert ", 0 workers:" in loader["cpu_loader_256px"]["what"]

    # The returned folder goes through ingest (into tmp: a dry run never enters the real history).
    history, results = tmp_path / "history", tmp_path / "results"
    entry = track.ingest(out, history, results, commit="0" * 40, allow_dry_run=True)
    assert entry.parent.parent.name.startswith("dryrun_")
    run = track.load_run(entry)
    assert {"train_step_b2", "cpu_loader_256px", "zinject_layer_b2"} <= set(run["figures"])
    assert any(p.name.endswith("_profile.txt") for p in results.iterdir())
    with pytest.raises(track.TrackError, match="output of a dry run") as refused:
        track.ingest(out, history, results, commit="0" * 40)
    # the way to rehearse it, as the command line takes it (--history after `ingest` is refused)
    assert f"python bench/track.py --history DIR --results DIR ingest {out} (" in str(refused.value)


def test_a_time_limit_cuts_the_kernel_benchmarks_compile_cases_only():
    """The kernels step's cases in the order they run: every torch.compile case (seconds of compiling each) after
    every other, whichever file holds it; the files' order kept otherwise. In file order the norm's compile cases
    ran before every pooling case, so the step's limit cut the pooling's eager gate and kept compile rows."""
    script = (ROOT / "bench/gpu_check.sh").read_text()
    files = re.search(r"bench kernels \d+ kernels\.json \\\n\s*(.*)", script).group(1).split()
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV)}
    env.update(BENCH_DRY_RUN="1", BENCH_NORM_ACT_QUICK="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "--collect-only", *files], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    is_compile = ["[compile-" in i for i in ids]
    first = is_compile.index(True)
    assert all(is_compile[first:]) and first < len(ids) - 4, ids
    # the compile cases of both kernels, and the rest in the files' own order (the copy roofline first)
    assert {i.split("::")[0] for i in ids[first:]} == {"bench/bench_norm_act.py", "bench/bench_avg_pool.py"}
    order = list(dict.fromkeys(i.split("::")[0] for i in ids[:first]))
    assert order == files and order[0] == "bench/bench_copy.py", order
    assert "--maxfail=" not in script  # one systematic failure hid every later gpu test


@pytest.mark.slow
def test_dry_run_of_the_rerun_call(tmp_path):
    """The second call after fixes: every gpu test, the launches of the pooling and norm kernels
    tuned (the committed table serves the others), the ladder's baseline and graph rungs, the
    pooling and z-injection benchmarks; no compile rungs (the compile call's)."""
    out = tmp_path / "out"
    steps = dry_run(out, "rerun")
    assert [s["step"] for s in steps] == ["install", "imports", "nvidia-smi", "gpu_tests", "tune", "ladder",
                                          "avg_pool", "zinject"]
    # every step's limit within the budget: a call that ends by its own budget, under the device call's timeout
    assert steps[0]["limit"] == 6 * 90 and sum(s["seconds"] for s in steps) <= 6 * 420
    assert sum(s["limit"] for s in steps[3:]) <= 6 * (420 + 30)
    assert set(returnable(out)) == {"check_rerun.log", "steps_rerun.jsonl", "kernels_rerun.json", "tuning_rerun.json",
                                    "avg_pool_rerun.json", "train_step_rerun.json"}
    tuned = json.loads((out / "tuning_rerun.json").read_text())
    assert tuned["sites"] == ["norm_act.bwd", "norm_act.fwd", "pool.bwd", "pool.fwd"] and tuned["quick"]
    assert tuned["failed"] == {} and tuned["skipped"] == []
    assert {t.split("|")[0] for t in tuned["entries"]} == {"norm_act.fwd", "norm_act.bwd", "pool.fwd", "pool.bwd"}
    pool = track.figures(benchmarks(out / "avg_pool_rerun.json"))
    assert len(pool) == 4 and all(set(f["rows"]) == {"ours", "eager"} for f in pool.values())
    log = (out / "check_rerun.log").read_text()
    gpu_tests = log.split("=== gpu_tests", 1)[1].split("=== ladder", 1)[0]
    assert "tests/test_zinject.py::test_gpu_autocast_and_cuda_graph" in gpu_tests
    assert "tests/test_avg_pool.py::test_gpu_matches_torch" in gpu_tests
    assert "test_generator_compiles_to_one_graph" not in gpu_tests
    ladder = [b["extra_info"]["rung"] for b in benchmarks(out / "train_step_rerun.json")["benchmarks"]]
    # "graph" alone would take compile_graph too
    assert ladder == ["eager_fp32_torch", "graph_bf16_triton", "graph_bf16_triton_cl", "graph_bf16_torch"]
    assert {"zinject_G_fwd_bwd_b2", "zinject_layer_b2"} <= set(track.figures(benchmarks(out / "kernels_rerun.json")))


@pytest.mark.slow
def test_dry_run_of_the_compile_call(tmp_path):
    out = tmp_path / "out"
    steps = dry_run(out, "compile")
    assert [s["step"] for s in steps] == ["install", "imports", "nvidia-smi", "ladder_compile", "compile_tests"]
    # no tuning: the budget is inductor's, the launches the committed table's
    assert set(returnable(out)) == {"check_compile.log", "steps_compile.jsonl", "train_step_compile.json"}
    # the gpu test that compiles with inductor, kept out of the main call (collected only in a dry run)
    log = (out / "check_compile.log").read_text()
    assert "tests/test_compile.py::test_generator_compiles_to_one_graph[cuda-" in log
    fig = track.figures(benchmarks(out / "train_step_compile.json"))["train_step_b2"]
    assert set(fig["rows"]) == {"ours", "compile_bf16_triton", "compile_graph_bf16_triton"}


@pytest.mark.slow
@pytest.mark.skipif(not dali_available(), reason="DALI is not installed")
def test_dry_run_of_the_dali_call(tmp_path):
    """The pieces a session carried (here: a small wheel in three pieces) are joined and installed,
    then the DALI tests (collected), the DALI loader benchmarks and a short DALI-fed run."""
    import test_dali_carry
    pieces = tmp_path / "pieces"
    sys.path.insert(0, str(ROOT / "bench"))
    import dali_carry
    dali_carry.prepare([test_dali_carry.tiny_wheel(tmp_path / "w", size=30_000)], pieces, piece_mib=0.01)
    assert len(list(pieces.glob("[0-9]*"))) == 3
    out = tmp_path / "out"
    steps = dry_run(out, "dali", DALI_CARRY_DIR=str(pieces))
    assert [s["step"] for s in steps] == ["install", "imports", "nvidia-smi", "dali_install", "dali_import",
                                          "dali_tests", "loader_dali", "device_options", "train_dali"]
    assert set(returnable(out)) == {"check_dali.log", "steps_dali.jsonl", "loader_dali.json"}
    log = (out / "check_dali.log").read_text()
    assert "installed 1 wheels into" in log and "DALI " in log
    assert re.search(r"test_pipelines\.py::\S*dali", log)  # the DALI tests were collected
    assert '"step": 4' in log  # the DALI-fed run's log lines
    figures = track.figures(benchmarks(out / "loader_dali.json"))
    feeds = figures["dali_feeds_step_b2"]
    assert set(feeds["rows"]) == {"ours", "resident", "loader_only"} and feeds["gate"] == "resident"
    # the DALI loader against the torch one (on the CPU here; the call's skipped it in a dry run)
    loaders = figures["cuda_loader_256px"]
    assert set(loaders["rows"]) == {"ours", "torch_pinned"} and loaders["gate"] == "torch_pinned"


def test_the_dali_call_stops_when_pieces_are_missing(tmp_path):
    import test_dali_carry
    sys.path.insert(0, str(ROOT / "bench"))
    import dali_carry
    pieces = tmp_path / "pieces"
    dali_carry.prepare([test_dali_carry.tiny_wheel(tmp_path / "w", size=30_000)], pieces, piece_mib=0.01)
    for f in (pieces / "2").iterdir():
        f.unlink()
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV)}
    env.update(OUT=str(out), PY=sys.executable, DALI_CARRY_DIR=str(pieces))
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "dali"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    assert f"pieces 2 of 3 are missing (carry {pieces}/2;" in proc.stdout
    steps = [json.loads(line)["step"] for line in (out / "steps_dali.jsonl").read_text().splitlines()]
    assert steps[-1] == "dali_install"


def test_bad_argument_is_refused_before_anything_runs(tmp_path):
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dryrun"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OUT": str(tmp_path / "out")})
    assert proc.returncode == 2
    assert "unknown argument '--dryrun' (expected --dry-run and/or one of compile, dali, rerun)" in proc.stdout
    assert not (tmp_path / "out").exists()
    # Two calls named: the last ran (here the compile call, for a rerun asked first), without a word
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PY": "/bin/false"}  # (/bin/false: a run stops at once)
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "rerun", "compile"], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "two calls named, 'rerun' and 'compile'" in proc.stdout, proc.stdout[-2000:]
    assert not (tmp_path / "out").exists()


def test_without_out_a_folder_of_its_own_is_made_not_one_another_user_placed(tmp_path):
    # OUT unset was a fixed /tmp/gpu_check: a link placed in it by anyone on the machine had the log written through
    placed = tmp_path / "gpu_check"
    placed.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (placed / "check.log").symlink_to(victim)
    env = {k: v for k, v in os.environ.items() if k != "OUT" and not k.startswith(OWN_ENV)}
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "TMPDIR": str(tmp_path), "PY": "/bin/false"}, timeout=120)
    assert victim.read_text() == "precious"
    made = [p for p in tmp_path.iterdir() if p.name.startswith("gpu_check.")]
    assert len(made) == 1 and (made[0] / "check.log").is_file() and (made[0] / "check.log").stat().st_size
    assert f"gpu_check: OUT not set; the results go to {made[0]}" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_the_check_itself_is_refused_at_once_without_a_gpu(tmp_path):
    # Run without --dry-run on a CPU it spent about 8 minutes, re-pointed the environment's editable install at
    # the checkout (pip install -e .) first, and wrote CPU figures that ingest took for a GPU check's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV)}
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "rerun"], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "OUT": str(tmp_path / "out"), "PY": sys.executable}, timeout=120)
    assert proc.returncode == 2 and proc.stdout.startswith("gpu_check: no CUDA GPU here"), proc.stdout + proc.stderr
    assert "--dry-run" in proc.stdout and not (tmp_path / "out").exists()


def _call_with_an_unimportable_install(folder, pip_rc):
    """Starts the dry run whose pip answers pip_rc and leaves the project unimportable (see the test below), in
    folder: the process and its OUT."""
    import site
    python = folder / "python"
    # pip answers pip_rc without doing anything; Python runs without site (-S), its packages on
    # PYTHONPATH: torch and the rest import, but not the project, whose editable install is a .pth hook.
    # The tuner, the step after the imports, only imports its module and waits for the budget to end it
    # (its sweep burnt ~15 s of CPU until then, which nothing checked).
    tuner = "import time, bicyclegan.kernels.tune as t; print('tuner from', t.__file__); time.sleep(600)"
    # (quoted: a checkout or venv path with a space was "export: bad variable name")
    packages, exe = shlex.quote(":".join(site.getsitepackages())), shlex.quote(sys.executable)
    python.write_text(f'#!/bin/sh\n[ "$1" = -m ] && [ "$2" = pip ] && {{ echo "pip (test) exits {pip_rc}" >&2; '
                      f'exit {pip_rc}; }}\n'
                      f'export PYTHONPATH={packages}${{PYTHONPATH:+:$PYTHONPATH}}\n'
                      f'[ "$1" = -m ] && [ "$2" = bicyclegan.kernels.tune ] && exec {exe} -S -c "{tuner}"\n'
                      f'exec {exe} -S "$@"\n')
    python.chmod(0o755)
    out = folder / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_ENV)}
    env.pop("PYTHONPATH", None)
    # A budget that the first steps use up: the later ones are cut short or skipped, as designed. (x6 in a dry run:
    # 48 s; 24 s were spent before the tuner started on a machine loaded at 10 on 2 cores: three imports of torch)
    env.update(OUT=str(out), PY=str(python), GPU_CHECK_BUDGET="8")
    with open(folder / "said.txt", "w") as said:
        return subprocess.Popen(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, stdout=said,
                                stderr=subprocess.STDOUT), out


@pytest.fixture(scope="module")
def unimportable_install_calls(tmp_path_factory):
    """Both cases' dry runs, started together: each waits out its budget (48 s) in its tuner, a minute of one
    pytest worker's time a case when they ran one after the other. pip_rc -> (the process, its OUT)."""
    calls = {pip_rc: _call_with_an_unimportable_install(tmp_path_factory.mktemp(f"pip_rc{pip_rc}"), pip_rc)
             for pip_rc in (1, 0)}
    yield calls
    for proc, _ in calls.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", autouse=True)
def _unimportable_install_calls_started_first(request):
    """Those calls started at the module's first test where their tests are selected: their 48 s of waiting (two
    short processes, then sleeps) then pass while the dry runs above work, instead of idling this file's worker at
    its end."""
    if any("unimportable_install_calls" in getattr(item, "fixturenames", ())
           for item in request.session.items if getattr(item, "module", None) is request.module):
        request.getfixturevalue("unimportable_install_calls")


@pytest.mark.parametrize("pip_rc", [1, 0])
def test_when_the_install_leaves_the_project_unimportable_it_is_imported_through_pythonpath(
        unimportable_install_calls, pip_rc):
    """The device's pip may fail (no setuptools for --no-build-isolation), or succeed through the
    legacy `setup.py develop`, which does not make bicyclegan.<part> importable (seen with pip 23.2);
    the call must then go on with the checkout's modules rather than stop at the imports step."""
    proc, out = unimportable_install_calls[pip_rc]
    proc.wait(timeout=120)
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [(s["step"], s["rc"]) for s in steps[:3]] == [("install", pip_rc), ("install_fallback", 0), ("imports", 0)]
    shim = re.search(r"PYTHONPATH=(.+)$", steps[1]["note"]).group(1)
    log = (out / "check.log").read_text()
    assert f"pip (test) exits {pip_rc}" in log and "No module named 'bicyclegan'" in log
    assert f"bicyclegan.kernels from {shim}/bicyclegan/kernels/__init__.py" in log
    assert f"tuner from {shim}/bicyclegan/kernels/tune.py" in log  # the call went on with the checkout's modules
    assert steps[-1]["note"] == "skipped: time budget spent"
