"""Mutation testing of bicyclegan.pipelines with cosmic-ray (docs/mutation-pipelines.md).

Usage (from the repository root, after `make install`):
    .venv/bin/python tools/mutation_pipelines.py [--modules spec cpu_loader files dali_graph]
        [--workdir build/mutation] [--count-only | --report-only]

cosmic-ray rewrites a source file on disk for each mutant and runs a test command, so each module
runs in its own copy of the working tree (tracked and untracked, non-ignored files) under --workdir:
an interrupted run never leaves a mutant in the checkout. The copy is importable as `bicyclegan.*`
through a `bicyclegan/` folder of symlinks put first on PYTHONPATH (ahead of the editable install),
and bytecode caching is off, so every test run compiles the mutated source afresh.

Importing torch takes seconds on the 2-core machine, longer than most test selections, so the test
command is a small client of a fork server (started here, one per module): the server imports the
third-party packages once and forks a child per mutant that imports bicyclegan afresh (the mutated
file) and runs pytest.main; the child's exit status is cosmic-ray's verdict as from a plain run.

Operators: every mutant cosmic-ray generates except the long tail of binary and comparison
operator swaps; each operator keeps its nearest alternatives (+ -> -, < -> <= and >=, == -> !=...),
as mutmut does. Each module runs only the tests that exercise it, with -x (the first failure kills).
Per module, the report (killed / total, and each survivor with its line) is written to
<workdir>/<module>/report.txt and printed.
"""
import argparse
import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-W", "ignore"]

# module -> (file, tests, functions to mutate (None: all), functions left out and why, sample)
# files.py runs its file checks and decoding only (the pairing and folder functions and the PNG
# tables are left out), and one mutant in SAMPLE of those: all of them take hours on 2 busy cores.
SAMPLE = 3
MODULES = {
    "spec": ("pipelines/spec.py",
             "tests/test_preprocessing_spec.py tests/test_preprocessing.py tests/test_pipelines_formats.py "
             "tests/test_pipelines_errors.py -k 'not pixel_formats and not dali'", None, {}, 1),
    "cpu_loader": ("pipelines/cpu_loader.py",
                   "tests/test_preprocessing.py tests/test_pipelines.py tests/test_pipelines_errors.py "
                   "-k 'torch or not dali'", None,
                   {"prefetch_to": "CUDA only (side-stream copies): its tests are marked gpu"}, 1),
    "files": ("pipelines/files.py",
              "tests/test_pipelines_errors.py tests/test_pipelines_formats.py tests/test_preprocessing_spec.py "
              "tests/test_loader_fuzz.py -k 'torch or not dali'",
              ("to_rgb", "_png_chunks", "_png_rows", "_png_problem", "_inflate", "_jpeg_problem", "_size",
               "inspect_file", "_problem"), {}, SAMPLE),
    "dali_graph": ("pipelines/dali_loader.py",
                   "tests/test_preprocessing.py tests/test_pipelines.py tests/test_pipelines_formats.py "
                   "-k '(dali or exif or agree) and not arguments and not corrupt and not limit'",
                   ("_float", "_pos", "__call__", "_decode", "_half", "_finish", "_build"), {}, 1),
}
# The alternatives kept per operator (cosmic-ray replaces each binary operator by each of 12 others).
NEAREST = {
    "Add": ("Sub", "Mul"), "Sub": ("Add",), "Mul": ("Add", "FloorDiv", "Div"), "Div": ("Mul", "FloorDiv"),
    "FloorDiv": ("Div", "Mul"), "Mod": ("FloorDiv",), "Pow": ("Mul",), "BitAnd": ("BitOr",),
    "BitOr": ("BitAnd",), "LShift": ("RShift",), "RShift": ("LShift",),
    "Lt": ("LtE", "GtE"), "LtE": ("Lt", "Gt"), "Gt": ("GtE", "LtE"), "GtE": ("Gt", "Lt"),
    "Eq": ("NotEq",), "NotEq": ("Eq",), "Is": ("IsNot",), "IsNot": ("Is",), "In": ("NotIn",),
    "NotIn": ("In",),
}


def kept_operator(name):
    op = name.split("/", 1)[1]
    if op.startswith(("ReplaceBinaryOperator_", "ReplaceComparisonOperator_")):
        _, old, new = op.split("_")
        return new in NEAREST.get(old, ())
    return True


def function_lines(path, names):
    """{line: function name} for the top-level functions and methods called `names` (all if None)."""
    lines = {}
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (names is None or node.name in names):
            lines.update({n: node.name for n in range(node.lineno, node.end_lineno + 1)})
    return lines


def copy_tree(dest):
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "bicyclegan").mkdir()
    for part in ("engine", "kernels", "pipelines"):
        (dest / "bicyclegan" / part).symlink_to(f"../{part}")


def select(session, path, functions, left_out, sample):
    """Mark as skipped the mutants of other operators, of functions outside the scope, and all but
    one in `sample` of the rest (in source order, so the same ones each time)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    inside = function_lines(path, functions) if functions is not None else None
    outside = function_lines(path, tuple(left_out))
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            (m,) = item.mutations
            line = m.start_pos[0]
            reason = None
            if not kept_operator(m.operator_name):
                reason = "operator not in the kept set"
            elif inside is not None and line not in inside:
                reason = "outside the functions under test"
            elif line in outside:
                reason = left_out[outside[line]]
            if reason:
                db.set_result(item.job_id, WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED))
        kept = sorted(db.pending_work_items, key=lambda item: (item.mutations[0].start_pos,
                                                                item.mutations[0].operator_name,
                                                                item.mutations[0].occurrence))
        for k, item in enumerate(kept):
            if k % sample:
                db.set_result(item.job_id, WorkResult(output="not in the sample",
                                                      worker_outcome=WorkerOutcome.SKIPPED))


def report(session, repo, path, name):
    """killed / total and the survivors, with their lines as the run saw them (in its copy)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    source = (repo / path).read_text().splitlines()
    killed, survived, other = 0, [], []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            (m,) = item.mutations
            mutant = [d[1:].strip() for d in (result.diff or "").splitlines() if d.startswith("+ ")]
            where = f"{path}:{m.start_pos[0]}  {m.operator_name.split('/')[1]}  " \
                    f"| {source[m.start_pos[0] - 1].strip()}  ->  {' / '.join(mutant)}"
            if result.worker_outcome != WorkerOutcome.NORMAL:
                other.append(f"{result.worker_outcome.value}: {where}")
            elif result.test_outcome == TestOutcome.SURVIVED:
                survived.append(where)
            else:
                killed += 1
        pending = sum(1 for _ in db.pending_work_items)
    total = killed + len(survived)
    lines = [f"{name}: {killed} / {total} killed ({100 * killed / max(total, 1):.1f} %), "
             f"{len(other)} not run to the end (timeout/crash), {pending} pending", "survivors:"]
    lines += [f"  {s}" for s in sorted(survived, key=lambda s: int(s.split(":")[1].split()[0]))]
    lines += [f"  {s}" for s in other]
    return "\n".join(lines)


def serve(address, timeout):
    """Fork server: one child per request runs pytest.main(args) in the request's folder."""
    import numpy  # noqa: F401
    import nvidia.dali.fn  # noqa: F401  (imported once here; bicyclegan itself never is)
    import PIL.Image  # noqa: F401
    import pytest  # noqa: F401
    import simplejpeg  # noqa: F401
    import torch  # noqa: F401

    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    server.listen()
    while True:
        conn, _ = server.accept()
        request = json.loads(conn.makefile().readline())
        pid = os.fork()
        if pid == 0:
            server.close()
            signal.alarm(int(timeout))
            os.chdir(request["cwd"])
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1), os.dup2(null, 2)
            import pytest
            os._exit(int(pytest.main(request["args"])))
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        conn.sendall(f"{code}\n".encode())
        conn.close()


def client(address, args):
    """The test command cosmic-ray runs: pytest's exit status, computed by the fork server."""
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(address)
    conn.sendall((json.dumps({"cwd": os.getcwd(), "args": args}) + "\n").encode())
    code = int(conn.makefile().readline())
    sys.exit(code if code >= 0 else 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    # (in the checkout's build/, not a fixed /tmp folder that anyone on the machine may have made first: its config
    # names the test command run)
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutation")
    parser.add_argument("--count-only", action="store_true", help="set up and count the mutants, run none")
    parser.add_argument("--report-only", action="store_true", help="print the reports of finished runs")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant's test run")
    parser.add_argument("--serve", help=argparse.SUPPRESS)   # internal: the fork server's socket
    if sys.argv[1:2] == ["--client"]:  # internal: the test command; the rest is pytest's
        return client(sys.argv[2], sys.argv[3:])
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.timeout)
    for name in args.modules:
        if args.report_only:
            workdir = args.workdir / name
            print(report(workdir / "session.sqlite", workdir / "repo", MODULES[name][0], name))
        else:
            run_module(name, args.workdir / name, args.timeout, args.count_only)


def run_module(name, workdir, timeout, count_only):
    from cosmic_ray.work_db import WorkDB, use_db

    path, tests, functions, left_out, sample = MODULES[name]
    repo, config, session = workdir / "repo", workdir / "config.toml", workdir / "session.sqlite"
    workdir.mkdir(parents=True, exist_ok=True)
    copy_tree(repo)
    address = str(workdir / "server.sock")
    command = f"{sys.executable} {Path(__file__).resolve()} --client {address} {' '.join(PYTEST_ARGS)} {tests}"
    config.write_text(f'[cosmic-ray]\nmodule-path = "{path}"\ntimeout = {timeout}\nexcluded-modules = []\n'
                      f'test-command = "{command}"\n\n[cosmic-ray.distributor]\nname = "local"\n')
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1", "BICYCLEGAN_FUZZ_CASES": "120"}
    bin_dir = Path(sys.executable).parent
    session.unlink(missing_ok=True)
    subprocess.run([bin_dir / "cosmic-ray", "init", config, session], cwd=repo, env=env, check=True)
    select(session, repo / path, functions, left_out, sample)
    with use_db(str(session), WorkDB.Mode.open) as db:
        print(f"{name}: {sum(1 for _ in db.pending_work_items)} mutants to run", flush=True)
    if count_only:
        return
    Path(address).unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", address, "--timeout", str(timeout)],
                              cwd=repo, env=env)
    try:
        while not Path(address).exists():
            time.sleep(0.2)
        subprocess.run([bin_dir / "cosmic-ray", "exec", config, session], cwd=repo, env=env, check=True)
    finally:
        server.terminate()
        server.wait()
    text = report(session, repo, path, name)
    (workdir / "report.txt").write_text(text + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
