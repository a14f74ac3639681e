"""What the benchmarks share: the device they run on, a round timer, the machine key that names their
history, and the tags that make a pytest-benchmark result a tracked figure.

A *figure* is one comparison made inside one run: "ours" and its baselines (eager PyTorch,
torch.compile, the authors' code, ...) timed in the same process. Each benchmark that belongs to
one records in its extra_info:
  figure    the figure's id, e.g. "cpu_step_128px_b2"
  row       this benchmark's row in it: "ours", "eager", "compile", "authors", ...
  ms        the row's time in milliseconds (the number to quote: CUDA events where there are some)
  timing    the GPU kernel benchmarks' (measure()): "graph_replay" or "eager_call", the same for every
            row of a figure (settle_timing, run by bench/conftest.py on the JSON written)
  rows_ms   {row: ms} of other rows timed in the same test (see race)
  gate      on the ours row: the baseline row the regression gate of bench/track.py watches
  tolerance on the ours row, optional: how far (relative) the gated ratio may fall from the
            previous run's before bench/track.py compare fails (default track.THRESHOLD)
  headline  on the ours row: shown in the README table and the history plot
  what      on the ours row: what the figure measures, in words
bench/track.py reads these tags; it knows nothing else about the benchmarks. A GPU benchmark's
ours row first checks that its step calls our Triton kernels (check_runs_triton).

BENCH_DRY_RUN=1 (bench/gpu_check.sh --dry-run) runs the GPU benchmarks on the CPU at tiny sizes, one
round, with the Triton kernels in the interpreter: every line runs, nothing is worth quoting.
"""
import collections
import contextlib
import functools
import os
import platform
import re
import statistics
import time

import torch

DRY = os.environ.get("BENCH_DRY_RUN") == "1"
DEVICE = "cpu" if DRY or not torch.cuda.is_available() else "cuda"
# GPU benchmarks run on a GPU, or on the CPU in a dry run.
RUNNABLE = DEVICE == "cuda" or DRY
SKIP_REASON = "needs a CUDA GPU (or BENCH_DRY_RUN=1 for a dry run on the CPU)"
if DRY:
    # Nothing in a dry run is timed for real; one thread avoids OpenMP's slow hand-offs on a
    # loaded machine (seen: steps over 10x slower with 2 threads among 4 other busy processes).
    torch.set_num_threads(1)


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def machine() -> dict:
    """The device, torch and Triton versions a result depends on."""
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    if DEVICE == "cuda":
        device = torch.cuda.get_device_name()
    else:
        device = f"{cpu_name()} {os.cpu_count()}-core"
    info = {"device": device, "torch": torch.__version__, "triton": triton_version,
            "cuda": torch.version.cuda, "dry_run": DRY}
    if DEVICE == "cuda":  # torch's defaults: cuDNN's fp32 convolutions in TF32, matmuls in full fp32 ("highest"):
        # the "fp32" rungs' convolutions are TF32 ones unless these say otherwise
        info.update(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_precision=torch.get_float32_matmul_precision())
    info["key"] = machine_key(info)
    return info  # cached: callers copy it before changing it


def machine_key(info: dict) -> str:
    """The history folder of a machine: device, torch and Triton (dry runs apart)."""
    key = f"{info['device']}_torch-{info['torch']}_triton-{info['triton']}"
    return ("dryrun_" if info.get("dry_run") else "") + re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-")


def device_name() -> str:
    return machine()["device"]


def reset_peak_memory():
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib():
    """Peak device memory allocated since the last reset (None on the CPU)."""
    return torch.cuda.max_memory_allocated() / 2 ** 20 if DEVICE == "cuda" else None


def step_memory(graph=None):
    """The memory figures of a training step's rung ({"peak_memory_mib": None} on the CPU), after its timed
    rounds: peak_memory_mib, the figure compared across rungs, is what a step needs at its peak. For an eager
    step, the peak allocated over its steps (state, gradients and the activations). A graphed step's replays
    allocate nothing, and the activations its capture freed stay in the graph's private pool, reserved rather
    than allocated: the replays' peak alone leaves them out (a graph looked its activations cheaper than eager).
    Its figure is that peak plus the pool's unallocated bytes (graph_memory: from torch.cuda.memory_snapshot)."""
    peak = peak_memory_mib()
    if graph is None or peak is None:
        return {"peak_memory_mib": peak}
    return graph_memory(peak, torch.cuda.memory_snapshot(), graph.pool())


def graph_memory(replay_peak_mib, segments, pool):
    """{peak_memory_mib, replay_peak_allocated_mib, graph_pool_mib} of a graphed step, from the replays' peak
    allocated memory (MiB) and the allocator's segments (torch.cuda.memory_snapshot()): graph_pool_mib is the
    graph's private pool (its segments, `pool` = graph.pool(): the captured step's activations and what it
    keeps, gradients and losses, held for the graph's life); peak_memory_mib adds its unallocated part, the
    activations, to the replays' peak (which counts the allocated part: state, gradients)."""
    mine = [seg for seg in segments if tuple(seg["segment_pool_id"]) == tuple(pool)]
    pool_mib = sum(seg["total_size"] for seg in mine) / 2 ** 20
    free_mib = pool_mib - sum(seg["allocated_size"] for seg in mine) / 2 ** 20
    return {"peak_memory_mib": replay_peak_mib + free_mib, "replay_peak_allocated_mib": replay_peak_mib,
            "graph_pool_mib": pool_mib}


def empty_cache():
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def round_timer(step, inner=1):
    """(run, times): run() calls step `inner` times and appends the milliseconds per call to times;
    CUDA events on a GPU (device time, no host overhead in between), the host clock on the CPU."""
    times = []
    if DEVICE == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run():
            start.record()
            for _ in range(inner):
                step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / inner)
    else:
        def run():
            t0 = time.perf_counter()
            for _ in range(inner):
                step()
            times.append((time.perf_counter() - t0) * 1e3 / inner)
    return run, times


# On a GPU the kernel benchmarks time CUDA graph replays: a step of a few small kernels called from
# Python is host-bound (H200: eager InstanceNorm+LeakyReLU fwd+bwd 316 us per call, the same kernels
# 4-6 us inside a graphed training step), so timing the calls compared launch paths, not kernels.
GRAPHS = DEVICE == "cuda"


def capture_graph(step, calls=1, warmup=3):
    """A torch.cuda.CUDAGraph of `calls` back-to-back calls of step, as PyTorch's docs capture: warm-up on a
    side stream (lazy inits, cuDNN's algorithm search, allocations outside the graph's pool), then the
    capture. Steps set their gradients to None themselves, so the captured backward allocates them in the
    graph's pool; thread_local as engine/graph.py captures. Raises whatever the capture raises."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        for _ in range(calls):
            step()
    graph.replay()  # a graph that cannot replay fails here, not in the timed rounds
    torch.cuda.synchronize()
    return graph


def replay_timer(replay, calls):
    """(run, times): run() times one replay of a graph of `calls` back-to-back calls and appends the
    milliseconds per call to times. On a GPU kernels.tune's clock: a torch.cuda._sleep queued before the
    start event keeps the GPU busy while the host issues the replay, so the time leaves out its launch
    (2-4 us, the whole of a few-us row's replay had it been timed from an idle GPU); the host clock else."""
    from bicyclegan.kernels.tune import clock
    time_run, times = clock(torch.device(DEVICE)), []

    def run():
        times.append(time_run(replay) / calls)
    return run, times


def graph_timer(step, inner=1):
    """(run, times, info): replay_timer of one CUDA graph holding `inner` back-to-back calls of step
    (one graph launch a round, not `inner`: replays of a one-call graph, a launch each, timed the launch
    rate for rows of a few us), with info["timing"] = "graph_replay" and "calls_per_replay"; where there
    are no graphs (the CPU) or the capture fails, the round timer of step itself, "eager_call" (and the
    capture's error in info["capture_error"])."""
    if not GRAPHS:
        return (*round_timer(step, inner), {"timing": "eager_call"})
    try:
        graph = capture_graph(step, calls=inner)
    except Exception as e:  # e.g. torch.compile recompiling, or an op a graph cannot hold
        sync()
        return (*round_timer(step, inner), {"timing": "eager_call", "capture_error": f"{type(e).__name__}: {e}"[:500]})
    return (*replay_timer(graph.replay, inner), {"timing": "graph_replay", "calls_per_replay": inner})


def measure(step, inner=1, rounds=20, warmup=3, benchmark=None):
    """Time one row: medians of `rounds` rounds of graph_timer (pytest-benchmark's pedantic rounds
    when benchmark is given) after `warmup` eager rounds (compilation happens there, outside any
    capture). Where a graph was captured, the eager calls are timed too (eager_call_ms: the host's
    launch overhead stays visible, and settle_timing falls back to it if another row of the
    figure could not be captured). Returns {ms, min_ms, timing, graph_ms, eager_call_ms,
    eager_call_min_ms[, calls_per_replay][, capture_error]}, times per call (a round: one replay of `inner`
    captured calls, or `inner` eager calls); ms is this row's own, settle_timing makes it the figure's."""
    eager, eager_times = round_timer(step, inner)
    for _ in range(warmup):
        eager()
    run, times, info = graph_timer(step, inner)
    if info["timing"] == "graph_replay":
        run()  # one round: the eager rounds warmed everything up but the graph's first replays
    times.clear()
    if benchmark is None:
        for _ in range(rounds):
            run()
    else:
        benchmark.pedantic(run, rounds=rounds, iterations=1)
    info.update(ms=statistics.median(times), min_ms=min(times), graph_ms=None)
    if info["timing"] == "graph_replay":
        eager_times.clear()
        for _ in range(rounds):
            eager()
        info.update(graph_ms=info["ms"], eager_call_ms=statistics.median(eager_times),
                    eager_call_min_ms=min(eager_times))
    else:
        info.update(eager_call_ms=info["ms"], eager_call_min_ms=info["min_ms"])
    return info


_COPIES = {}


def copy_rates(x, key, inner=1, rounds=20, warmup=3):
    """The device's copy rate in GB/s (a clone of x: its bytes read and written), the roofline of a memory-bound
    kernel on x, measured once per key and timed both ways: {"graph_replay": GB/s (where the clone could be
    captured), "eager_call": GB/s}. bandwidth() picks the one timed as the kernel's row finally is."""
    if key not in _COPIES:
        copy = measure(lambda: x.clone(memory_format=torch.preserve_format), inner, rounds, warmup)
        _COPIES[key] = {timing: 2 * x.numel() * x.element_size() / copy[k] / 1e6
                        for timing, k in (("graph_replay", "graph_ms"), ("eager_call", "eager_call_ms")) if copy[k]}
    return _COPIES[key]


def bandwidth(info):
    """Sets a row's median_ms, gbps and pct_of_copy from its ms and timing as they are now (its own, or its
    figure's once settle_timing has run: a row replayed on its own may be quoted from its eager calls), its
    effective_bytes, and the copy's rate timed the same way (copy_gbps_by_timing, from copy_rates; the eager
    one where the copy alone could not be captured). Returns info."""
    copies = info["copy_gbps_by_timing"]
    copy = copies.get(info["timing"]) or copies["eager_call"]
    gbps = info["effective_bytes"] / info["ms"] / 1e6
    info.update(median_ms=info["ms"], gbps=gbps, copy_gbps=copy, pct_of_copy=100.0 * gbps / copy)
    return info


def settle_timing(records):
    """Make every figure's rows timed one way (records: extra_info dicts; those of measure()'s rows,
    with figure and row tags, take part): graph replays where every row of the figure has one
    (graph_ms), else the eager calls for all its rows, so that a ratio never sets a replay against a
    call. Sets ms and timing (the figure's), and capture_errors {row: error} where any row's capture
    failed. A test's own rows_ms must already be timed as its ms (see bench_zinject)."""
    figures = collections.defaultdict(list)
    for info in records:
        if "figure" in info and "row" in info and "eager_call_ms" in info:
            figures[info["figure"]].append(info)
    for infos in figures.values():
        graphed = all(info.get("graph_ms") is not None for info in infos)
        errors = {info["row"]: info["capture_error"] for info in infos if info.get("capture_error")}
        for info in infos:
            info.update(timing="graph_replay" if graphed else "eager_call",
                        ms=info["graph_ms"] if graphed else info["eager_call_ms"])
            if errors:
                info["capture_errors"] = errors
            if "copy_gbps_by_timing" in info:  # its rates follow its time
                bandwidth(info)
    return records


# The Python entry points of the kernels' Triton paths (imported by the ops at call time, so a patched
# module attribute is what they call): a step that reaches none of them ran the reference instead.
TRITON_ENTRY_POINTS = {"norm_act_triton": ("instance_norm_act_triton",), "avg_pool_triton": ("avg_pool2d_triton",),
                       "zinject_triton": ("z_concat_act_triton", "z_concat_conv_triton")}


@contextlib.contextmanager
def triton_calls():
    """Counts the calls of the kernels' Triton entry points inside the block ({name: calls})."""
    import importlib
    calls, patched = collections.Counter(), []
    for module, names in TRITON_ENTRY_POINTS.items():
        mod = importlib.import_module(f"bicyclegan.kernels.{module}")
        for name in names:
            fn = getattr(mod, name)

            def counted(*args, _fn=fn, _name=name, **kwargs):
                calls[_name] += 1
                return _fn(*args, **kwargs)
            setattr(mod, name, counted)
            patched.append((mod, name, fn))
    try:
        yield calls
    finally:
        for mod, name, fn in patched:
            setattr(mod, name, fn)


def check_runs_triton(step, what):
    """Run step once (eager: not under torch.compile or a graph replay) and fail unless it called our
    Triton kernels. An "ours" row that fell back to the PyTorch reference (a changed dispatch rule, an
    impl lost on the way) would otherwise be timed as ours and quoted as a speedup of about 1x.
    Returns {entry point: calls}, for extra_info."""
    with triton_calls() as calls:
        step()
        sync()
    if not calls:
        entry_points = ", ".join(sum(TRITON_ENTRY_POINTS.values(), ()))
        raise AssertionError(f"{what}: ours ran none of the Triton kernels ({entry_points} were not called): it "
                             f"fell back to the PyTorch reference, so its time is not ours")
    return dict(calls)


def tag(benchmark, figure, row, ms, **figure_info):
    """Make this benchmark a row of a tracked figure (see the module docstring)."""
    benchmark.extra_info.update(figure=figure, row=row, ms=ms, **figure_info)


def race(benchmark, rows, ours="ours", rounds=7, warmup=1):
    """Time every row once per round, the rows one after another, ours last; pytest-benchmark
    times the rounds of ours (its statistics), the round timer every row (the medians quoted).

    Interleaving matters on a shared machine: a burst of load from another process then slows
    every row alike instead of one, so the ratios stay put while the absolute times move. Each row
    is a function that runs one synchronised step. Returns {row: median ms} and records the ours
    row (ms, rows_ms) in extra_info; the caller tags figure, gate and what.
    """
    timers = {name: round_timer(fn) for name, fn in rows.items()}
    for _ in range(warmup):
        for fn in rows.values():
            fn()

    def run_others():
        for name, (run, _) in timers.items():
            if name != ours:
                run()

    benchmark.pedantic(timers[ours][0], setup=run_others, rounds=rounds, iterations=1)
    ms = {name: statistics.median(times) for name, (_, times) in timers.items()}
    benchmark.extra_info.update(row=ours, ms=ms[ours], rows_ms={n: v for n, v in ms.items() if n != ours},
                                rounds=rounds, warmup=warmup)
    return ms


if __name__ == "__main__":
    # bench/gpu_check.sh's first check: the project and pytest-benchmark import, and which machine this is.
    import json

    import pytest_benchmark  # noqa: F401

    import bicyclegan.engine  # noqa: F401
    import bicyclegan.kernels
    import bicyclegan.pipelines  # noqa: F401
    print(json.dumps(machine()))
    print("bicyclegan.kernels from", bicyclegan.kernels.__file__)
