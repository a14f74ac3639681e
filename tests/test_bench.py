"""bench/: the throughput history (bench/track.py), the benchmarks' shared helpers (bench/benchutil.py)
and the CPU training-step baseline. Expected values are worked out by hand from the inputs."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import benchutil  # noqa: E402
import track  # noqa: E402


def bench(figure, row, ms, **info):
    return {"name": f"test_{figure}_{row}", "extra_info": {"figure": figure, "row": row, "ms": ms, **info}}


def run_json(benchmarks, when, commit="c0ffee0", device="Test GPU"):
    machine = {"device": device, "torch": "2.0", "triton": "3.0", "dry_run": False,
               "key": benchutil.machine_key({"device": device, "torch": "2.0", "triton": "3.0"})}
    return {"machine_info": {"system": "Linux", "python_implementation": "CPython", "python_version": "3.12.3",
                             "cpu": {"bits": 64}, "bicyclegan": machine},
            "commit_info": {"id": commit, "dirty": False}, "datetime": when, "benchmarks": benchmarks}


def write_history(history, runs, key="k"):
    """The runs as one machine's history (their machine key the folder's, as make bench files them)."""
    folder = history / key / "Linux-CPython-3.12-64bit"
    folder.mkdir(parents=True)
    for i, data in enumerate(runs, 1):
        data = json.loads(json.dumps(data))
        data["machine_info"]["bicyclegan"]["key"] = key
        (folder / f"{i:04d}_{data['commit_info']['id']}_x.json").write_text(json.dumps(data))


def step_run(ours, eager, compile_ms, when, commit="c0ffee0"):
    """A GPU-style run: one benchmark per row; gated against eager."""
    return run_json([bench("step", "ours", ours, gate="eager", headline=True, what="one step"),
                     bench("step", "eager", eager), bench("step", "compile", compile_ms)], when, commit)


# -- reading figures --------------------------------------------------------------------------------
def test_figures_read_rows_from_separate_benchmarks_and_from_a_race():
    data = {"benchmarks": [
        bench("gpu", "ours", 10.0, gate="eager", headline=True, what="w"),
        bench("gpu", "eager", 30.0),
        bench("cpu", "ours", 4.0, rows_ms={"reference_order": 5.0, "authors": 6.0}, gate="reference_order"),
        {"name": "untagged", "extra_info": {"gbps": 4000}},
    ]}
    figs = track.figures(data)
    assert set(figs) == {"gpu", "cpu"}
    assert figs["gpu"] == {"rows": {"ours": 10.0, "eager": 30.0}, "gate": "eager", "headline": True, "what": "w",
                           "tolerance": None, "timing": None}
    assert figs["cpu"]["rows"] == {"ours": 4.0, "reference_order": 5.0, "authors": 6.0}
    assert track.ratios(figs["gpu"]) == {"eager": 3.0}
    assert track.ratios(figs["cpu"]) == {"reference_order": 1.25, "authors": 1.5}
    assert track.ratios({"rows": {"eager": 3.0}}) == {}  # no ours row: nothing to compare with


# -- compare: the gate ---------------------------------------------------------------------------------
def test_compare_fails_when_the_gated_ratio_falls_beyond_the_threshold(tmp_path):
    runs = [step_run(10, 20, 15, "2026-01-01T00:00"), step_run(10, 16, 15, "2026-01-02T00:00")]
    lines, regressions = track.compare([track.load_run(p) for p in _paths(tmp_path, runs)], threshold=0.15)
    assert len(regressions) == 1  # 2.0x -> 1.6x is -20%
    assert "ours vs eager 1.600x, was 2.000x (-20.0%" in regressions[0]
    assert any("REGRESSION" in line and "eager" in line for line in lines)


def test_compare_passes_within_the_threshold_and_ignores_ungated_rows_and_absolute_times(tmp_path):
    # -10% on the gated ratio; the compile ratio halves (ungated); every time doubles (load): all pass
    runs = [step_run(10, 20, 15, "2026-01-01T00:00"), step_run(20, 36, 15, "2026-01-02T00:00")]
    lines, regressions = track.compare([track.load_run(p) for p in _paths(tmp_path, runs)], threshold=0.15)
    assert regressions == []
    assert any("1.800x" in line and "previous 2.000x" in line and "-10.0%" in line and "[gate: may fall 15%]" in line
               for line in lines)
    assert any("0.750x" in line and "previous 1.500x" in line and "[gate" not in line for line in lines)


def test_compare_uses_the_figures_own_tolerance_unless_a_threshold_is_given(tmp_path):
    prev, new = step_run(10, 20, 15, "2026-01-01T00:00"), step_run(10, 15, 15, "2026-01-02T00:00")  # -25%
    for run in (prev, new):
        run["benchmarks"][0]["extra_info"]["tolerance"] = 0.3
    runs = [track.load_run(p) for p in _paths(tmp_path, [prev, new])]
    assert track.compare(runs)[1] == []
    assert len(track.compare(runs, threshold=0.2)[1]) == 1
    del new["benchmarks"][0]["extra_info"]["tolerance"]  # the default, 15%
    assert len(track.compare([track.load_run(p) for p in _paths(tmp_path, [prev, new])])[1]) == 1


def test_compare_takes_the_previous_run_that_has_the_row(tmp_path):
    middle = run_json([bench("step", "ours", 10, gate="eager")], "2026-01-02T00:00")  # no eager row
    runs = [step_run(10, 20, 15, "2026-01-01T00:00"), middle, step_run(10, 19, 15, "2026-01-03T00:00")]
    lines, regressions = track.compare([track.load_run(p) for p in _paths(tmp_path, runs)])
    assert regressions == []
    assert any("1.900x" in line and "previous 2.000x" in line for line in lines)


def test_compare_judges_a_rerun_against_the_commit_before_not_against_itself(tmp_path):
    """A slower change measured twice: the second run was compared with the first, as slow, and passed.
    The baseline is the newest committed run of another commit (of any commit for uncommitted edits)."""
    def run(eager, when, commit, dirty=False):
        data = step_run(10, eager, 15, when, commit)
        data["commit_info"]["dirty"] = dirty
        return data
    before = run(20, "2026-01-01T00:00", "aaaaaaa")  # 2.0x
    edits = [run(15, "2026-01-02T00:00", "aaaaaaa", dirty=True), run(15, "2026-01-03T00:00", "aaaaaaa", dirty=True)]
    commit = [run(15, "2026-01-04T00:00", "bbbbbbb"), run(15, "2026-01-05T00:00", "bbbbbbb")]
    for n in (2, 3, 4, 5):  # every run of the slower code (1.5x, -25%) against `before`
        lines, regressions = track.compare([track.load_run(p) for p in _paths(tmp_path, [before, *edits, *commit][:n])])
        assert len(regressions) == 1 and "was 2.000x" in regressions[0], (n, lines)
    # runs of one commit alone (the noise measurement): each against the one before
    lines, regressions = track.compare([track.load_run(p) for p in _paths(tmp_path, [before, run(19, "x", "aaaaaaa")])])
    assert regressions == [] and any("previous 2.000x" in line for line in lines)


def test_compare_command_exit_codes_and_bad_input(tmp_path, capsys):
    history = tmp_path / "history"
    write_history(history, [step_run(10, 20, 15, "2026-01-01T00:00"), step_run(10, 10, 15, "2026-01-02T00:00")])
    assert track.main(["--history", str(history), "compare", "--machine", "k"]) == 1
    assert "REGRESSION k: step: ours vs eager 1.000x, was 2.000x" in capsys.readouterr().out
    assert track.main(["--history", str(history), "compare", "--machine", "k", "--threshold", "0.6"]) == 0
    assert track.main(["--history", str(history), "compare", "--machine", "nope"]) == 2
    assert f"{history / 'nope'}: no runs of this machine" in capsys.readouterr().err
    assert track.main(["--history", str(history), "compare", "--all", "--threshold", "15"]) == 2
    assert "--threshold 15.0: expected a fraction" in capsys.readouterr().err
    assert track.main(["--history", str(history), "compare", "--all", "--machine", "nope"]) == 2  # (nope ignored)
    assert "--all compares every machine, --machine one: give one of them" in capsys.readouterr().err
    (history / "k" / "Linux-CPython-3.12-64bit" / "0003_bad.json").write_text("{not json")
    assert track.main(["--history", str(history), "compare", "--machine", "k"]) == 2
    assert "0003_bad.json: not a readable pytest-benchmark JSON" in capsys.readouterr().err



def test_compare_all_passes_over_a_machine_folder_without_runs(tmp_path, capsys):
    # pytest-benchmark makes bench/history/<key>/ as `make bench` starts: one stopped before its run was saved left
    # an empty folder, at which --all stopped (exit 2, "pass --all"), k's regression never said
    history = tmp_path / "history"
    write_history(history, [step_run(10, 20, 15, "2026-01-01T00:00"), step_run(10, 10, 15, "2026-01-02T00:00")])
    (history / "a-new-machine" / "Linux-CPython-3.12-64bit").mkdir(parents=True)
    assert track.main(["--history", str(history), "compare", "--all"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION k: step: ours vs eager 1.000x, was 2.000x" in out and "a-new-machine" not in out
    shutil.rmtree(history / "k")  # (only folders without runs: as an empty history)
    assert track.main(["--history", str(history), "compare", "--all"]) == 2
    assert f"{history}: no machine's runs in it" in capsys.readouterr().err
    assert track.main(["--history", str(history), "compare", "--machine", "a-new-machine"]) == 2  # (asked for)
    assert f"{history / 'a-new-machine'}: no runs of this machine" in capsys.readouterr().err

def _paths(tmp_path, runs):
    paths = []
    for i, data in enumerate(runs):
        paths.append(tmp_path / f"{i:04d}_run.json")
        paths[-1].write_text(json.dumps(data))
    return paths


# -- README table and plot ---------------------------------------------------------------------------
def test_readme_table_from_the_newest_run_of_each_figure(tmp_path):
    history, results = tmp_path / "history", tmp_path / "results"
    write_history(history, [step_run(10, 20, 15, "2026-01-01T00:00", "aaaaaaa1"),
                             step_run(8, 20, 12, "2026-01-02T00:00", "bbbbbbb2")], key="gpu-key")
    write_history(history, [step_run(1, 2, 3, "2026-01-01T00:00")], key="dryrun_cpu")  # never tabled
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{track.TABLE_BEGIN}\nold table\n{track.TABLE_END}\nafter\n")
    track.write_readme(readme, track.table(history, results, root=tmp_path))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    rows = [line for line in text.splitlines() if line.startswith("| one step")]
    assert len(rows) == 1  # the dry run's machine is left out
    # newest run: ours 8 ms; eager 20 ms -> 2.50x (gate), compile 12 ms -> 1.50x
    assert "| 8 ms | compile 12 ms (**1.50x**), eager (gate) 20 ms (**2.50x**) | Test GPU" in rows[0]
    assert "(results/history_gpu-key.png)" in rows[0] and "bbbbbbb" in rows[0]
    readme.write_text("no markers\n")
    with pytest.raises(track.TrackError, match="README.md: expected one"):
        track.write_readme(readme, "x")
    with pytest.raises(track.TrackError, match="missing.md: cannot read it"):  # was a FileNotFoundError traceback
        track.write_readme(tmp_path / "missing.md", "x")


def test_readme_command_links_plots_outside_the_readmes_folder(tmp_path, capsys):
    """`readme --readme COPY` with --history/--results elsewhere (a scratch copy): the link is relative
    to the README it is written in (was: a ValueError traceback from Path.relative_to)."""
    history, results = tmp_path / "scratch" / "history", tmp_path / "scratch" / "results"
    write_history(history, [step_run(10, 20, 15, "2026-01-01T00:00")], key="gpu-key")
    readme = tmp_path / "docs" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"{track.TABLE_BEGIN}\n{track.TABLE_END}\n")
    assert track.main(["--history", str(history), "--results", str(results), "readme", "--readme", str(readme)]) == 0
    assert "([history](../scratch/results/history_gpu-key.png))" in readme.read_text()


def test_plot_writes_a_png_per_machine(tmp_path):
    pytest.importorskip("matplotlib")
    history, results = tmp_path / "history", tmp_path / "results"
    write_history(history, [step_run(10, 20, 15, "2026-01-01T00:00"), step_run(9, 20, 15, "2026-01-02T00:00")])
    assert track.main(["--history", str(history), "--results", str(results), "plot"]) == 0
    png = results / "history_k.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_keeps_the_machine_key_clear_of_the_panels_titles(tmp_path, monkeypatch):
    """Seven rows of panels, as a GPU check's headline figures make: the key (the suptitle) was drawn
    over the first row's titles."""
    plt = pytest.importorskip("matplotlib.pyplot")
    figs, close = [], plt.close
    monkeypatch.setattr(plt, "close", figs.append)  # keep the figure to measure it
    runs = [run_json([bench(f"fig{i}", "ours", 10, gate="eager", headline=True, what="w") for i in range(7)]
                     + [bench(f"fig{i}", "eager", 20) for i in range(7)], "2026-01-01T00:00")]
    track.plot([track.load_run(p) for p in _paths(tmp_path, runs)], "NVIDIA-H200_torch-2.11.0_triton-3.6.0",
               tmp_path / "plot.png")
    fig, = figs
    renderer = fig.canvas.get_renderer()
    key = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes[:2]:  # the first row
        assert not key.overlaps(ax.title.get_window_extent(renderer)), ax.get_title()
    close(fig)


def test_plot_draws_the_runs_of_the_newest_runs_settings_alone(tmp_path, monkeypatch):
    """A run of other settings (its figure's `what`: width 8 among width 32 runs) was drawn on the same line, as
    compare never judges it."""
    plt = pytest.importorskip("matplotlib.pyplot")
    figs, close = [], plt.close
    monkeypatch.setattr(plt, "close", figs.append)
    runs = [run_json([bench("step", "ours", ours, gate="eager", headline=True, what=what),
                      bench("step", "eager", eager)], when)
            for ours, eager, what, when in ((10, 20, "width 32", "2026-01-01"), (1, 50, "width 8", "2026-01-02"),
                                            (10, 30, "width 32", "2026-01-03"))]
    track.plot([track.load_run(p) for p in _paths(tmp_path, runs)], "k", tmp_path / "plot.png")
    fig, = figs
    ax_ratio, ax_ms = fig.axes
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax_ratio.get_lines()}
    assert lines["vs eager (gate)"] == ([0, 2], [2.0, 3.0])  # 20 / 10, 30 / 10: the width-8 run's 50x left out
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax_ms.get_lines()}
    assert lines["ours"] == ([0, 2], [10.0, 10.0]) and lines["eager"] == ([0, 2], [20.0, 30.0])
    close(fig)


# -- ingest -------------------------------------------------------------------------------------------
def test_ingest_merges_a_check_into_one_history_entry(tmp_path):
    src = tmp_path / "out"
    src.mkdir()
    (src / "kernels.json").write_text(json.dumps(run_json(
        [bench("na", "ours", 1.0, gate="eager"), bench("na", "eager", 2.0)], "2026-03-04T05:06:07", "unversioned")))
    (src / "train_step.json").write_text(json.dumps(run_json(
        [bench("step", "ours", 5.0, gate="eager"), bench("step", "eager", 20.0)], "2026-03-04T05:09:00",
        "unversioned")))
    (src / "profile.json").write_text(json.dumps({"tables": {"eager_fp32_torch": "TABLE-TEXT"}}))
    (src / "check.log").write_text("log\n")
    history, results = tmp_path / "history", tmp_path / "results"
    entry = track.ingest(src, history, results, commit="1234567abc")
    key = "Test-GPU_torch-2.0_triton-3.0"
    assert entry == history / key / "Linux-CPython-3.12-64bit" / "0001_1234567abc_20260304_050900.json"
    run = track.load_run(entry)
    assert run["commit"] == "1234567abc"
    assert {n: track.ratios(f) for n, f in run["figures"].items()} == {"na": {"eager": 2.0}, "step": {"eager": 4.0}}
    assert sorted(p.name for p in results.iterdir()) == [
        "Test-GPU_check.log", "Test-GPU_kernels.json", "Test-GPU_profile.json", "Test-GPU_profile.txt",
        "Test-GPU_train_step.json"]
    assert "TABLE-TEXT" in (results / "Test-GPU_profile.txt").read_text()
    with pytest.raises(track.TrackError, match=f"ingested already, as {entry}"):  # (it was a second entry)
        track.ingest(src, history, results, commit="1234567abc")
    (src / "loader.json").write_text('{"benchmarks": [')  # cut off mid-write
    with pytest.raises(track.TrackError, match="loader.json: not valid JSON"):
        track.ingest(src, history, results, commit="x")
    # a damaged file of ours (no machine key, no device) and a folder named as a JSON: tracebacks
    (src / "loader.json").write_text('{"benchmarks": [], "machine_info": {"bicyclegan": {"device": "Test-GPU"}}}')
    with pytest.raises(track.TrackError, match="loader.json: machine_info has no 'bicyclegan' key with the machine's"):
        track.ingest(src, history, results, commit="x")
    machine = {"system": "Linux", "python_implementation": "CPython", "python_version": "3.12.1",
               "bicyclegan": {"key": "Test-GPU_torch-2.0_triton-3.0", "device": "Test-GPU"}}
    for bad, said in (({"benchmarks": None}, "loader.json: its 'benchmarks' is no list"),
                      ({"benchmarks": [], "machine_info": {"bicyclegan": {"key": "k", "device": "D"}}},
                       "loader.json: machine_info lacks pytest-benchmark's system"),
                      ({"benchmarks": [], "machine_info": {**machine, "bicyclegan": {"key": "../../escaped",
                                                                                     "device": "D"}}},
                       "loader.json: machine key '../../escaped' is no file name"),
                      ({"benchmarks": [], "machine_info": {**machine, "system": "../../escaped"}},
                       "loader.json: machine '../../escaped-CPython-3.12-64bit' is no file name"),
                      # the newest file's commit (datetime 9999: the merged entry's), a cpu and an extra_info of
                      # the wrong kind (tracebacks)
                      ({"benchmarks": [{"extra_info": "x"}], "datetime": "9999",
                        "machine_info": {**machine, "cpu": "x"}, "commit_info": {"id": "../../escaped"}},
                       "loader.json: commit '../../escaped' is no file name")):
        (src / "loader.json").write_text(json.dumps(bad))
        with pytest.raises(track.TrackError, match=re.escape(said)):
            track.ingest(src, history, results, commit="x")
    assert not list(tmp_path.rglob("escaped*"))
    (src / "loader.json").unlink()
    (src / "loader.json").mkdir()
    with pytest.raises(track.TrackError, match="loader.json: cannot be read .Is a directory."):
        track.ingest(src, history, results, commit="x")
    with pytest.raises(track.TrackError, match="not a folder"):
        track.ingest(tmp_path / "missing", history, results, commit="x")


def test_ingest_outside_a_git_checkout_asks_for_the_commit(tmp_path, monkeypatch, capsys):
    # (a source tree without .git, or no git: a CalledProcessError traceback, nothing said of --commit)
    src = tmp_path / "out"
    src.mkdir()
    (src / "train_step.json").write_text(json.dumps(step_run(5, 20, 10, "2026-03-04T05:09:00", "unversioned")))
    (tmp_path / "tree").mkdir()
    monkeypatch.setattr(track, "ROOT", tmp_path / "tree")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # (wherever tmp_path lies)
    argv = ["--history", str(tmp_path / "h"), "--results", str(tmp_path / "r"), "ingest", str(src)]
    assert track.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench/track.py ingest: {tmp_path / 'tree'}: cannot read its commit with git") and \
        "give --commit, the commit the GPU check ran" in err, err
    assert not (tmp_path / "h").exists() and not (tmp_path / "r").exists()
    assert track.main([*argv, "--commit", "abc1234"]) == 0
    assert "0001_abc1234_20260304_050900.json" in capsys.readouterr().out

def test_ingest_refuses_a_benchmark_the_history_could_not_read_before_writing_anything(tmp_path, capsys):
    """A benchmark whose 'ms' is None was written into the history, and ingest then failed naming that entry:
    compare, plot and readme refused the history until the entry was deleted by hand."""
    src, history, results = tmp_path / "out", tmp_path / "history", tmp_path / "results"
    src.mkdir()
    (src / "train_step.json").write_text(json.dumps(step_run(5, 20, 10, "2026-03-04T05:09:00")))
    (src / "loader.json").write_text(json.dumps(run_json([bench("load", "ours", None)], "2026-03-04T05:00:00")))
    (src / "check.log").write_text("log\n")
    scratch = ["--history", str(history), "--results", str(results)]
    assert track.main([*scratch, "ingest", str(src), "--commit", "abc"]) == 2
    assert f"{src / 'loader.json'}: a benchmark's extra_info" in capsys.readouterr().err
    assert not history.exists() and not results.exists()  # (no entry, no results replaced)
    (src / "loader.json").unlink()
    assert track.main([*scratch, "ingest", str(src), "--commit", "abc"]) == 0
    assert track.main([*scratch, "compare", "--all"]) == 0


def test_ingest_refuses_a_check_that_measured_nothing_and_names_the_steps_that_failed(tmp_path, capsys):
    """Every bench step failed or cut ('benchmarks': []): an entry of no figure was written and the committed
    results replaced by empty ones, the steps' exit codes (steps*.jsonl) never read."""
    src, history, results = tmp_path / "out", tmp_path / "history", tmp_path / "results"
    src.mkdir()
    for name in ("kernels.json", "train_step.json"):
        (src / name).write_text(json.dumps(run_json([], "2026-03-04T05:09:00")))
    steps = [{"step": "install", "rc": 0, "seconds": 3, "limit": 90, "note": ""},
             {"step": "kernels", "rc": 1, "seconds": 20, "limit": 150, "note": ""},
             {"step": "ladder", "rc": 124, "seconds": 96, "limit": 90, "note": "timed out"}]
    (src / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    (src / "check.log").write_text("log\n")
    scratch = ["--history", str(history), "--results", str(results)]
    assert track.main([*scratch, "ingest", str(src), "--commit", "abc"]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == ["steps.jsonl: step kernels exited 1 after 20 s (limit 150 s)",
                                "steps.jsonl: step ladder exited 124 after 96 s (limit 90 s; timed out)"]
    assert f"{src}: no benchmark figure in kernels.json, train_step.json; nothing was ingested" in err
    assert not history.exists() and not results.exists()
    # one figure measured: ingested, the failed steps said all the same
    (src / "train_step.json").write_text(json.dumps(step_run(5, 20, 10, "2026-03-04T05:09:00")))
    assert track.main([*scratch, "ingest", str(src), "--commit", "abc"]) == 0
    assert "steps.jsonl: step ladder exited 124 after 96 s (limit 90 s; timed out)" in capsys.readouterr().out


def test_ingest_skips_a_cut_json_that_is_no_benchmarks_and_refuses_a_cut_benchmarks_file(tmp_path, capsys):
    """profile.json, rewritten after each rung and the step most likely cut at its limit, cut mid-write made ingest
    refuse the whole folder; a cut pytest-benchmark file is still refused (its figures would be lost)."""
    src, history, results = tmp_path / "out", tmp_path / "history", tmp_path / "results"
    src.mkdir()
    (src / "train_step.json").write_text(json.dumps(step_run(5, 20, 10, "2026-03-04T05:09:00")))
    (src / "profile.json").write_text('{"machine": {"device": "Test GPU"}, "tables": {"eager_fp32_torch": "TAB')
    entry = track.ingest(src, history, results, commit="abc")
    assert set(track.load_run(entry)["figures"]) == {"step"}
    assert f"warning: {src / 'profile.json'}: not valid JSON" in capsys.readouterr().err
    assert sorted(p.name for p in results.iterdir()) == ["Test-GPU_train_step.json"]  # (no cut copy, no table)
    cut = json.dumps(step_run(4, 20, 10, "2026-03-04T06:00:00"), indent=4)
    (src / "train_step_rerun.json").write_text(cut[:40])  # cut inside machine_info, before "benchmarks"
    with pytest.raises(track.TrackError, match="train_step_rerun.json: not valid JSON"):
        track.ingest(src, history, results, commit="abc")


def test_profile_step_keeps_the_earlier_rungs_file_when_a_write_is_cut(tmp_path, monkeypatch):
    """profile.json was rewritten in place after each rung: a write cut short (here: a value JSON cannot hold,
    met halfway through) left a file of half a JSON, the earlier rungs' tables lost with it."""
    import profile_step
    rungs = iter([("self_cpu_time_total", "TABLE-1", [{"name": "conv", "calls": 1}]),
                  ("self_cpu_time_total", "TABLE-2", [{"name": "conv", "calls": object()}])])
    monkeypatch.setattr(profile_step, "profile_rung", lambda *args: next(rungs))
    out = tmp_path / "profile.json"
    with pytest.raises(TypeError):
        profile_step.main(["--out", str(out), "--batch", "2", "--steps", "1"])
    assert "TABLE-1" in json.loads(out.read_text())["tables"]["eager_fp32_torch"]
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]  # (no temp file left)


def test_ingest_takes_each_figure_from_one_file_and_one_machines_files_alone(tmp_path):
    # A rerun call's ours stood beside the first call's baselines as one run's ratios; a CPU run's file beside a
    # GPU's was filed, and tabled, as the GPU's.
    src, history, results = tmp_path / "out", tmp_path / "history", tmp_path / "results"
    src.mkdir()
    (src / "train_step.json").write_text(json.dumps(run_json(
        [bench("step", "ours", 5.0, gate="eager"), bench("step", "eager", 20.0), bench("step", "compile", 8.0),
         bench("na", "ours", 1.0), bench("na", "eager", 3.0)], "2026-03-04T05:00:00", "unversioned")))
    (src / "train_step_rerun.json").write_text(json.dumps(run_json(
        [bench("step", "ours", 4.0, gate="eager"), bench("step", "eager", 12.0)], "2026-03-04T06:00:00",
        "unversioned")))
    (src / "zz_cpu.json").write_text(json.dumps(run_json([bench("cpu", "ours", 1.0)], "2026-03-04T07:00:00",
                                                         device="Some CPU")))
    with pytest.raises(track.TrackError, match=r"files of 2 machines \(Test-GPU.*: train_step.json, Some-CPU.*: "
                                               r"zz_cpu.json\); ingest each machine's apart"):
        track.ingest(src, history, results, commit="1234567")
    assert not history.exists() and not results.exists()  # (nothing copied before the refusal)
    (src / "zz_cpu.json").unlink()
    run = track.load_run(track.ingest(src, history, results, commit="1234567"))
    # step: the rerun's rows alone (its process's); na: the first call's, which the rerun did not measure
    assert run["figures"]["step"]["rows"] == {"ours": 4.0, "eager": 12.0}
    assert run["figures"]["na"]["rows"] == {"ours": 1.0, "eager": 3.0}
    # A later call cut after the figure's baseline row (no ours): the earlier call's whole figure, not one with no ratio
    (src / "zz_cut.json").write_text(json.dumps(run_json([bench("step", "eager", 30.0)], "2026-03-04T08:00:00",
                                                         "unversioned")))
    run = track.load_run(track.ingest(src, tmp_path / "history2", results, commit="1234567"))
    assert run["figures"]["step"]["rows"] == {"ours": 4.0, "eager": 12.0}


def test_a_scratch_history_keeps_to_its_own_results_and_a_dry_run_to_its_own_history(tmp_path, monkeypatch,
                                                                                    capsys):
    # plot and ingest of a scratch --history wrote over the committed plots and GPU files of bench/results; and the
    # dry-run refusal compared the paths unresolved: `--history bench/history --results bench/results` from the
    # checkout's root put a dry run in the real history. (The checkout's folders and README stood in for by
    # the test's: a regression writes there, not into the repository.)
    own = tmp_path / "checkout"
    monkeypatch.setattr(track, "HISTORY", own / "bench" / "history")
    monkeypatch.setattr(track, "RESULTS", own / "bench" / "results")
    monkeypatch.setattr(track, "README", own / "README.md")
    write_history(tmp_path / "scratch", [step_run(10, 20, 15, "2026-01-01T00:00")])
    assert track.main(["--history", str(tmp_path / "scratch"), "plot"]) == 2
    assert "is not bench/history: give --results DIR too" in capsys.readouterr().err
    src = tmp_path / "out"
    src.mkdir()
    data = step_run(5, 20, 10, "2026-03-04T05:09:00")
    data["machine_info"]["bicyclegan"]["dry_run"] = True
    (src / "train_step.json").write_text(json.dumps(data))
    (own / "bench").mkdir(parents=True)
    monkeypatch.chdir(own)
    assert track.main(["--history", "bench/history", "--results", "bench/results", "ingest", str(src)]) == 2
    assert "output of a dry run, kept out of bench/history" in capsys.readouterr().err
    assert list((own / "bench").iterdir()) == []


def test_compare_judges_runs_of_the_same_settings_against_committed_ones_and_says_an_unchecked_gate(tmp_path):
    # (a) a clean rerun of a commit was judged against a run of uncommitted edits of it (the only other run);
    # (b) a run of other settings (the figure's `what`: width 8 against width 32) was the baseline;
    # (c) a gate whose row was not measured (DALI's, without DALI) passed without a word.
    def run(ours, eager, when, what="width 32", dirty=False, rows=True):
        data = run_json([bench("step", "ours", ours, gate="eager", what=what),
                         *([bench("step", "eager", eager)] if rows else [])], when)
        data["commit_info"]["dirty"] = dirty
        return data
    runs = [track.load_run(p) for p in _paths(tmp_path, [
        run(10, 20, "2026-01-01"), run(10, 50, "2026-01-02", dirty=True), run(10, 20, "2026-01-03")])]
    assert track.compare(runs)[1] == []  # (against the dirty run's 5.0x it fell 60 %)
    assert "[c0ffee0 2026-01-01]" in track.compare(runs)[0][1]
    other = tmp_path / "other"
    other.mkdir()
    runs = [track.load_run(p) for p in _paths(other, [run(10, 50, "2026-01-01", what="width 8"),
                                                       run(10, 20, "2026-01-02")])]
    lines, regressions = track.compare(runs)
    assert regressions == [] and "previous" not in lines[1]  # (no run of its settings before it)
    gone = tmp_path / "gone"
    gone.mkdir()
    lines, _ = track.compare([track.load_run(p) for p in _paths(gone, [run(10, 20, "2026-01-01", rows=False)])])
    assert "    gate row eager not measured in this run: its gate is not checked" in lines


def test_compare_judges_a_figure_timed_as_graph_replays_against_replayed_runs_alone(tmp_path):
    """A kernel figure's rows are graph replays, or every row eager calls where one could not be captured
    (benchutil.settle_timing): the same `what`, ratios of another method (here the eager calls' host-bound 1.25x
    against the replays' 2.0x) were judged against each other, a regression the code never made."""
    def run(ours, eager, when, timing):
        return run_json([bench("norm", "ours", ours, gate="eager", what="norm fwd+bwd", timing=timing),
                         bench("norm", "eager", eager, timing=timing)], when)
    replayed, called = run(10, 20, "2026-01-01", "graph_replay"), run(40, 50, "2026-01-02", "eager_call")
    lines, regressions = track.compare([track.load_run(p) for p in _paths(tmp_path, [replayed, called])])
    assert regressions == [] and "previous" not in lines[1], lines  # (1.25x against 2.0x: -37.5 %)
    assert lines[0].endswith("norm fwd+bwd (eager_call)")
    other = tmp_path / "other"
    other.mkdir()
    runs = [replayed, called, run(10, 15, "2026-01-03", "graph_replay")]  # 1.5x: -25 % from the replays' 2.0x
    lines, regressions = track.compare([track.load_run(p) for p in _paths(other, runs)])
    assert len(regressions) == 1 and "was 2.000x" in regressions[0], lines


def test_bad_histories_are_one_line_errors(tmp_path, capsys):
    history = tmp_path / "history"
    history.mkdir()
    for argv in (["compare", "--all"], ["readme", "--readme", str(tmp_path / "R.md")]):  # (empty: passed, or
        assert track.main(["--history", str(history), *argv]) == 2, argv  # replaced the table by an empty one)
        assert "no machine's runs in it" in capsys.readouterr().err
    write_history(history, [step_run(10, 20, 15, "2026-01-01T00:00")])
    foreign = step_run(10, 20, 15, "2026-01-02T00:00")  # another machine's run in k's folder
    (history / "k" / "Linux-CPython-3.12-64bit" / "0002_c0ffee0_x.json").write_text(json.dumps(foreign))
    assert track.main(["--history", str(history), "compare", "--machine", "k"]) == 2
    err = capsys.readouterr().err
    assert "0002_c0ffee0_x.json: a run of machine Test-GPU" in err
    assert f"move it to {history / 'Test-GPU_torch-2.0_triton-3.0'}/" in err  # (it said bench/history/..., not this)
    for broken in ({"benchmarks": None}, {"benchmarks": [bench("s", "ours", "abc")]},
                   {"benchmarks": [], "commit_info": "x"}):
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(track.TrackError, match="broken.json: "):  # (tracebacks from deep inside)
            track.load_run(path)


def test_ingest_of_a_dry_run_says_how_to_rehearse_it(tmp_path, capsys):
    """The refusal said 'give --history and --results', which after `ingest` argparse refuses."""
    src = tmp_path / "out"
    src.mkdir()
    data = step_run(5, 20, 10, "2026-03-04T05:09:00")
    data["machine_info"]["bicyclegan"]["dry_run"] = True
    (src / "train_step.json").write_text(json.dumps(data))
    assert track.main(["ingest", str(src)]) == 2
    hint = capsys.readouterr().err.split("to rehearse the ingest elsewhere: ")[1].split(" (the options")[0]
    assert hint == f"python bench/track.py --history DIR --results DIR ingest {src}"
    words = hint.replace("DIR", str(tmp_path / "elsewhere")).split()[2:]  # the command line it gives runs
    assert track.main(words) == 0 and "history entry: " + str(tmp_path / "elsewhere") in capsys.readouterr().out


def test_ingest_into_another_history_leaves_the_readme_alone(tmp_path, monkeypatch, capsys):
    """Rehearsing an ingest into scratch folders (as its dry-run refusal suggests) rewrote the
    checkout's README from that history: with a dry run's (never tabled), an empty table."""
    readme = tmp_path / "README.md"
    readme.write_text(f"{track.TABLE_BEGIN}\n| the real table |\n{track.TABLE_END}\n")
    monkeypatch.setattr(track, "README", readme)  # the checkout's README, as far as track.py knows
    src = tmp_path / "out"
    src.mkdir()
    (src / "train_step.json").write_text(json.dumps(step_run(5, 20, 10, "2026-03-04T05:09:00")))
    scratch = ["--history", str(tmp_path / "h"), "--results", str(tmp_path / "r")]
    assert track.main([*scratch, "ingest", str(src), "--commit", "abc"]) == 0
    assert "| the real table |" in readme.read_text()
    assert "README not regenerated: --history" in capsys.readouterr().out
    assert track.main([*scratch, "readme"]) == 2
    assert "give --readme FILE" in capsys.readouterr().err and "| the real table |" in readme.read_text()
    assert track.main([*scratch, "readme", "--readme", str(readme)]) == 0  # asked for by name
    assert "| the real table |" not in readme.read_text() and "| one step | 5 ms |" in readme.read_text()


# -- benchutil ----------------------------------------------------------------------------------------
def test_machine_key_names_device_torch_and_triton_in_safe_characters():
    info = {"device": "NVIDIA H200", "torch": "2.11.0+cu130", "triton": "3.6.0"}
    assert benchutil.machine_key(info) == "NVIDIA-H200_torch-2.11.0-cu130_triton-3.6.0"
    assert benchutil.machine_key({**info, "dry_run": True}) == "dryrun_NVIDIA-H200_torch-2.11.0-cu130_triton-3.6.0"


# A GPU machine's python for the Makefile's bench targets: torch sees an RTX 4090 unless CUDA_VISIBLE_DEVICES
# hides it, as CUDA does; `-m pytest` says what the benchmarks would see (device, whether the GPU ones run, the
# key their JSON carries) and its arguments, instead of running them; a script runs as itself.
STAND_IN_PYTHON = """
import os, runpy, sys
import torch
torch.cuda.is_available = lambda: os.environ.get("CUDA_VISIBLE_DEVICES") != ""
torch.cuda.get_device_name = lambda *a: "NVIDIA GeForce RTX 4090"
args = sys.argv[1:]
sys.path.insert(0, "bench")
if args[:2] == ["-m", "pytest"]:
    import benchutil
    print("pytest sees", benchutil.DEVICE, benchutil.RUNNABLE, benchutil.machine()["key"], *args[2:])
else:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bench_on_a_gpu_machine_times_and_files_the_cpus_figures(tmp_path):
    """`make bench` filed its CPU figures under the GPU's name (the key is the GPU's where torch sees one)
    and ran the GPU loader benchmarks among them; it also had pytest-benchmark compare with the last saved
    run, of any settings (a 128 px step against a 256 px one): `make bench-compare` compares by settings."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for build in ("cpu", "cuda"):  # installed, whichever build this machine's nvidia-smi picks
        (venv / f".installed-{build}").touch()
    (tmp_path / "stand_in.py").write_text(STAND_IN_PYTHON)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / 'stand_in.py'))} "
                      f'"$@"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES" and not k.startswith("BENCH_")}

    def make(target):
        proc = subprocess.run(["make", "-s", target, f"VENV={venv}"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        return proc.stdout + proc.stderr

    out = make("bench")
    line = next(line for line in out.splitlines() if line.startswith("pytest sees")).split()
    device, runnable, key, args = line[2], line[3], line[4], line[5:]
    assert (device, runnable) == ("cpu", "False"), out  # the GPU benchmarks skip
    assert "RTX" not in key and f"-{os.cpu_count()}-core_torch-" in key, key  # the CPU's model and cores
    assert f"--benchmark-storage=file://bench/history/{key}" in args  # filed under the key its JSON carries
    assert "--benchmark-compare" not in args
    assert f"{key}: " in make("bench-compare")  # the runs of that key, or that it has none


# Under xdist the fixture goes unused here (the test runs again in a pytest of its own, which uses it): its
# "fixture was not used" warning was the suite's one warning, and says nothing wrong.
@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used:pytest_benchmark.logger.PytestBenchmarkWarning")
def test_race_interleaves_the_rows_round_by_round(benchmark, request):
    if benchmark.disabled:
        # Under pytest-xdist (`make test`) pytest-benchmark runs a function once and times nothing:
        # this test then runs in a pytest of its own, without xdist, where the rounds are real.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                               request.node.nodeid], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
        return
    calls = []
    rows = {"ours": lambda: calls.append("ours"), "base": lambda: calls.append("base"),
            "other": lambda: calls.append("other")}
    ms = benchutil.race(benchmark, rows, rounds=3, warmup=1)
    assert calls == ["ours", "base", "other"] + ["base", "other", "ours"] * 3
    assert set(ms) == {"ours", "base", "other"}
    assert benchmark.extra_info["row"] == "ours" and set(benchmark.extra_info["rows_ms"]) == {"base", "other"}


def _bench_run(tmp_path, test_file):
    """(process, JSON path): pytest-benchmark on tmp_path/test_file with bench/conftest.py's hooks."""
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "--rootdir", str(tmp_path),
         str(tmp_path / test_file), f"--benchmark-json={out}"],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT / "bench"), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120)
    return proc, out


def test_an_interrupted_case_does_not_cost_the_json_of_the_finished_ones(tmp_path):
    """gpu_check.sh stops a step with SIGINT: the case then running has no timings yet, and without
    bench/conftest.py's hook pytest-benchmark fails while writing the JSON."""
    (tmp_path / "test_interrupted.py").write_text(textwrap.dedent("""
        def test_finished(benchmark):
            benchmark.pedantic(lambda: None, rounds=2)

        def test_interrupted(benchmark):
            def stop():
                raise KeyboardInterrupt
            benchmark.pedantic(lambda: None, setup=stop, rounds=2)
    """))
    proc, out = _bench_run(tmp_path, "test_interrupted.py")
    assert proc.returncode == 2, proc.stdout + proc.stderr  # interrupted
    names = [b["name"] for b in json.loads(out.read_text())["benchmarks"]]
    assert names == ["test_finished"]


# -- GPU kernel benchmarks: graph replays, or eager calls for a whole figure ----------------------
class FakeGraph:
    """Stands in for a captured CUDA graph on the CPU: a replay counts and does no work."""
    def __init__(self, calls=1):
        self.replays, self.calls = 0, calls

    def replay(self):
        self.replays += 1


def fake_capture(monkeypatch, failing=()):
    """benchutil as on a GPU, its capture faked: steps in `failing` raise, as a capture that fails. A capture
    calls step as often as the graph is to hold it, as a real one records it (the graph's calls)."""
    graphs = {}

    def capture(step, calls=1):
        if step in failing:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        for _ in range(calls):
            step()
        graphs[step] = FakeGraph(calls)
        return graphs[step]
    monkeypatch.setattr(benchutil, "GRAPHS", True)
    monkeypatch.setattr(benchutil, "capture_graph", capture)
    return graphs


def test_graph_timer_replays_the_captured_graph_and_falls_back_to_calls_when_the_capture_fails(monkeypatch):
    calls = []
    step = lambda: calls.append(1)  # noqa: E731
    run, times, info = benchutil.graph_timer(step, inner=3)  # the CPU: no graphs, the plain path
    run()
    assert info == {"timing": "eager_call"} and len(calls) == 3 and len(times) == 1

    # One graph of the 3 calls, one replay a round: replays of a one-call graph, a graph launch each, timed the
    # launch rate for rows of a few us
    graphs = fake_capture(monkeypatch)
    run, times, info = benchutil.graph_timer(step, inner=3)
    assert graphs[step].calls == 3 and len(calls) == 6  # the capture recorded 3 calls
    run()
    run()
    assert info == {"timing": "graph_replay", "calls_per_replay": 3}
    assert graphs[step].replays == 2 and len(calls) == 6 and len(times) == 2

    fake_capture(monkeypatch, failing=[step])
    run, times, info = benchutil.graph_timer(step, inner=3)
    run()
    assert info["timing"] == "eager_call" and "operation not permitted" in info["capture_error"]
    assert len(calls) == 9


def test_a_replay_is_timed_by_the_tuners_clock_and_quoted_per_captured_call(monkeypatch):
    """A round's time is one replay's, as kernels.tune's clock gives it (on a GPU a sleep queued before the start
    event hides the replay's launch), divided by the calls the graph holds."""
    from bicyclegan.kernels import tune
    fake_capture(monkeypatch)
    clocked = []

    def clock(device):
        def time_run(batch):
            batch()
            clocked.append(device)
            return 12.0  # ms for the whole replay
        return time_run
    monkeypatch.setattr(tune, "clock", clock)
    step = lambda: None  # noqa: E731
    info = benchutil.measure(step, inner=4, rounds=3, warmup=1)
    assert info["timing"] == "graph_replay" and info["calls_per_replay"] == 4
    assert info["graph_ms"] == info["ms"] == info["min_ms"] == 3.0  # 12 ms / 4 calls
    assert clocked == [torch.device(benchutil.DEVICE)] * 4  # a first round (the graph's upload), then 3 timed


def test_a_figure_with_a_row_that_could_not_be_captured_is_timed_from_eager_calls_in_every_row(monkeypatch):
    """The choice is the figure's: a replay is never set against a call in one ratio, and a figure whose
    rows were all captured keeps its replays even when another figure's capture failed."""
    import time
    slow = lambda: time.sleep(0.003)  # noqa: E731  an eager call: 3 ms; a fake replay: next to nothing
    fails = lambda: time.sleep(0.003)  # noqa: E731
    fake_capture(monkeypatch, failing=[fails])
    rows = {("mixed", "ours"): slow, ("mixed", "eager"): fails, ("graphed", "ours"): slow,
            ("graphed", "eager"): slow}
    records = [{"figure": figure, "row": row, **benchutil.measure(step, rounds=3, warmup=1)}
               for (figure, row), step in rows.items()]
    records.append({"figure": "copy", "what": "untagged: left alone", "ms": 1.0})
    assert [r["timing"] for r in records[:4]] == ["graph_replay", "eager_call", "graph_replay", "graph_replay"]
    assert all(r["graph_ms"] < 1 and r["eager_call_ms"] >= 3 for r in records[:4] if r["timing"] == "graph_replay")
    benchutil.settle_timing(records)
    mixed, graphed = records[:2], records[2:4]
    assert all(r["timing"] == "eager_call" and r["ms"] == r["eager_call_ms"] >= 3 for r in mixed)
    assert all(r["capture_errors"] == {"eager": mixed[1]["capture_error"]} for r in mixed)
    assert all(r["timing"] == "graph_replay" and r["ms"] == r["graph_ms"] < 1 and "capture_errors" not in r
               for r in graphed)
    assert records[4] == {"figure": "copy", "what": "untagged: left alone", "ms": 1.0}


def test_a_rows_bandwidth_follows_the_timing_its_figure_settles_on():
    """A row replayed on its own but quoted from its eager call (another row of its figure could not be
    captured) quotes the bandwidth of that call, against the copy's eager rate: not its replay's."""
    copies = {"graph_replay": 4000.0, "eager_call": 800.0}  # GB/s
    rows = [{"figure": "f", "row": "ours", "timing": "graph_replay", "ms": 0.05, "graph_ms": 0.05,
             "eager_call_ms": 0.5, "effective_bytes": 10 ** 8, "copy_gbps_by_timing": copies},
            {"figure": "f", "row": "eager", "timing": "eager_call", "ms": 0.4, "graph_ms": None,
             "eager_call_ms": 0.4, "effective_bytes": 10 ** 8, "copy_gbps_by_timing": copies,
             "capture_error": "RuntimeError: not capturable"}]
    alone = {**rows[0], "figure": "g", "copy_gbps_by_timing": {"eager_call": 800.0}}  # the copy was not captured
    for info in [*rows, alone]:
        benchutil.bandwidth(info)
    assert rows[0]["gbps"] == pytest.approx(2000) and rows[0]["pct_of_copy"] == pytest.approx(50)
    benchutil.settle_timing([*rows, alone])
    ours, eager = rows
    assert ours["median_ms"] == 0.5 and ours["gbps"] == pytest.approx(200)  # 1e8 B in 0.5 ms
    assert ours["copy_gbps"] == 800 and ours["pct_of_copy"] == pytest.approx(25)
    assert eager["gbps"] == pytest.approx(250) and eager["pct_of_copy"] == pytest.approx(31.25)
    assert alone["timing"] == "graph_replay" and alone["gbps"] == pytest.approx(2000)
    assert alone["copy_gbps"] == 800 and alone["pct_of_copy"] == pytest.approx(250)


def test_the_json_written_holds_each_figures_one_timing(tmp_path):
    """bench/conftest.py settles the figures of the whole run (rows are separate tests) before
    pytest-benchmark writes its JSON."""
    (tmp_path / "test_rows.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("row,graph_ms", [("ours", 0.1), ("eager", None)])
        def test_row(benchmark, row, graph_ms):
            benchmark.pedantic(lambda: None, rounds=1)
            benchmark.extra_info.update(figure="fig", row=row, graph_ms=graph_ms, eager_call_ms=2.0,
                                        ms=graph_ms or 2.0, timing="graph_replay" if graph_ms else "eager_call")
    """))
    proc, out = _bench_run(tmp_path, "test_rows.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    infos = [b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]]
    assert {i["row"]: (i["timing"], i["ms"]) for i in infos} == {"ours": ("eager_call", 2.0),
                                                                  "eager": ("eager_call", 2.0)}


# -- the ladder's memory ----------------------------------------------------------------------------
def test_a_graph_rungs_peak_memory_counts_the_activations_its_graphs_pool_keeps(monkeypatch):
    """A graph's replays allocate nothing, and the activations freed during its capture stay in its private pool,
    reserved, not allocated: the replays' peak alone (the old peak_memory_mib) left them out, so a graph rung
    looked far cheaper than an eager rung, whose peak has them. An eager rung's figure is its allocated peak."""
    MiB = 2 ** 20
    segments = [  # as torch.cuda.memory_snapshot() lists them
        {"segment_pool_id": (0, 0), "total_size": 900 * MiB, "allocated_size": 700 * MiB},  # state: no graph's
        {"segment_pool_id": (1, 7), "total_size": 300 * MiB, "allocated_size": 40 * MiB},  # the graph's: 260 free
        {"segment_pool_id": [1, 7], "total_size": 20 * MiB, "allocated_size": 0},  # (a list is the same pool)
        {"segment_pool_id": (1, 9), "total_size": 500 * MiB, "allocated_size": 0},  # another graph's pool
    ]

    class Graph:
        def pool(self):
            return (1, 7)
    monkeypatch.setattr(benchutil, "peak_memory_mib", lambda: 750.0)  # the replays' peak allocated
    monkeypatch.setattr(torch.cuda, "memory_snapshot", lambda: segments)
    assert benchutil.step_memory(Graph()) == {"peak_memory_mib": 750.0 + 280.0, "replay_peak_allocated_mib": 750.0,
                                              "graph_pool_mib": 320.0}
    assert benchutil.step_memory(None) == {"peak_memory_mib": 750.0}  # an eager rung
    monkeypatch.setattr(benchutil, "peak_memory_mib", lambda: None)  # the CPU: no device memory
    assert benchutil.step_memory(Graph()) == {"peak_memory_mib": None}


# -- an ours row must run our kernels -------------------------------------------------------------
def test_check_runs_triton_counts_the_kernels_entry_points_and_puts_them_back():
    from bicyclegan.kernels import ZConcatConv2d, zinject_triton
    layer = ZConcatConv2d(4, 2, 8, impl="triton")
    x, z = torch.randn(1, 4, 8, 8), torch.randn(1, 2)
    original = zinject_triton.z_concat_conv_triton
    calls = benchutil.check_runs_triton(lambda: layer(x, z).sum().backward(), "layer")
    assert calls == {"z_concat_conv_triton": 1} and zinject_triton.z_concat_conv_triton is original
    layer.impl = "ref"
    with pytest.raises(AssertionError, match="layer: ours ran none of the Triton kernels"):
        benchutil.check_runs_triton(lambda: layer(x, z), "layer")


def test_an_ours_row_that_ran_the_reference_fails_instead_of_being_timed(monkeypatch):
    """bench_norm_act's ours row with the kernels' Triton path forced off, as a changed dispatch rule
    would: the case fails (it was timed as ours, and quoted as a speedup of about 1x)."""
    import bench_norm_act

    from bicyclegan.kernels import norm_act
    for name, value in (("ROUNDS", 1), ("WARMUP", 0), ("INNER", 1)):
        monkeypatch.setattr(bench_norm_act, name, value)
    case = ("fwd_bwd", (8, 8, 8), 2, "fp32", "nchw")
    assert bench_norm_act.run_case("ours", *case)["triton_calls"] == {"instance_norm_act_triton": 1}
    monkeypatch.setattr(norm_act, "resolve_impl", lambda impl, x, op: "ref")  # the fallback, forced
    with pytest.raises(AssertionError, match="ours ran none of the Triton kernels"):
        bench_norm_act.run_case("ours", *case)
    assert bench_norm_act.run_case("eager", *case)["median_ms"] > 0  # the baselines are not checked


# -- the CPU step's baseline --------------------------------------------------------------------------
def test_reference_order_baseline_is_one_training_iteration():
    """bench_cpu_step.py's baseline must do the same work as ours: the same weights after one step."""
    import bench_cpu_step as cpu_step

    from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig

    def small():  # the benchmark's networks at 32 px and width 4, seeded alike
        torch.manual_seed(0)
        return BicycleGAN(TrainConfig(batch_size=cpu_step.BATCH, model=ModelConfig(
            impl="ref", netG="unet", netE="resnet_128", netD="basic_128_multi", netD2="basic_128_multi",
            crop_size=32, ngf=4, nef=4, ndf=4)))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only wait on each other on a busy machine
    torch.set_default_dtype(torch.float64)
    try:
        data = {k: torch.rand(cpu_step.BATCH, 3, 32, 32) * 2 - 1 for k in ("A", "B")}
        ours, baseline = small(), small()
        before = [p.clone() for p in ours.parameters()]
        torch.manual_seed(1)
        ours.train_step(data)
        torch.manual_seed(1)
        cpu_step.reference_order_step(baseline, data)
    finally:
        torch.set_default_dtype(torch.float32)
        torch.set_num_threads(threads)
    # Adam's first step, lr * g / (|g| + 1e-8), turns the rounding of a zero gradient (1e-17, which
    # moves with the order autograd sums in) into a move of 1e-12: weights are compared to 1/1000
    # of a step (lr), as tests/test_model.py does
    for name, net in ours.networks().items():
        for (key, p), q in zip(net.named_parameters(), baseline.networks()[name].parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-3 * ours.cfg.lr, msg=f"{name}.{key}")
    assert all(not torch.equal(p, q) for p, q in zip(ours.parameters(), before))  # the step moved every weight
