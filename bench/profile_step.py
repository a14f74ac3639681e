"""torch.profiler tables of the training iteration, for planning optimisation without a GPU: the top
kernels by device time in the eager fp32 step (PyTorch layers; what the reference runs), in the
CUDA-graph bf16 step with our Triton kernels (what we run) and in that same step without the graph,
at the reference defaults, after warm-up, over a few steps. The last is there because a graph replay
may reach the profiler as one launch (cudaGraphLaunch) whose kernels it does not list (whether it
does depends on the CUDA and Kineto versions): the eager step launches the same kernels one by one,
so its table splits the device time between them; only the launch gaps it adds are not the graph's.

Writes one JSON: {"machine", "batch", "steps", "sort_by", "tables": {rung: text},
"top": {rung: [{"name", "calls", "self_device_us", "self_cpu_us"}, ...]}, "notes": {rung: text}}
(times summed over the steps), rewritten after each rung so a later failure keeps the earlier
tables; each table starts with its rung's note. The stand-in rung comes last, the one to lose if
the step's time runs out. With BENCH_DRY_RUN=1 (bench/gpu_check.sh --dry-run) it profiles the dry
run's small CPU networks.

Usage: python bench/profile_step.py --out profile.json [--batch 16] [--steps 3] [--rows 30]
"""
import argparse
import json
import sys
import traceback

import benchutil
import torch
from bench_train_step import build
from benchutil import DEVICE, sync
from torch.profiler import ProfilerActivity, profile

from bicyclegan.pipelines.atomic import atomic_write
from bicyclegan.pipelines.errors import plural

RUNGS = ["eager_fp32_torch", "graph_bf16_triton", "eager_bf16_triton"]
NOTES = {
    "eager_fp32_torch": "the reference's step: PyTorch layers, fp32, no graph",
    "graph_bf16_triton": "ours: bf16, Triton kernels, CUDA graph (a replay may show as one cudaGraphLaunch "
                         "without its kernels: see eager_bf16_triton)",
    "eager_bf16_triton": "ours without the CUDA graph: the graphed step's kernels, launched one by one",
}


def _self_device_us(event):
    # self_device_time_total in recent torch; self_cuda_time_total before it was renamed
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)


def profile_rung(rung, batch, steps, rows):
    torch.manual_seed(0)
    model, step, data = build(rung, batch)
    for _ in range(3):  # warm-up: Triton compilation, cuDNN's algorithm search, allocator
        step(data)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(data)
        sync()
    events = prof.key_averages()
    sort_by = "self_device_time_total" if DEVICE == "cuda" else "self_cpu_time_total"
    key = _self_device_us if DEVICE == "cuda" else (lambda e: e.self_cpu_time_total)
    top = sorted(events, key=key, reverse=True)[:rows]
    return sort_by, events.table(sort_by=sort_by, row_limit=rows), [
        {"name": e.key, "calls": e.count, "self_device_us": _self_device_us(e), "self_cpu_us": e.self_cpu_time_total}
        for e in top]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--batch", type=int, default=2 if benchutil.DRY else 16)
    p.add_argument("--steps", type=int, default=1 if benchutil.DRY else 3)
    p.add_argument("--rows", type=int, default=30)
    args = p.parse_args(argv)
    if args.batch < 2 or args.batch % 2 or args.steps < 1 or args.rows < 1:
        p.error(f"--batch {args.batch} must be even and >= 2 (bicycle halves it), --steps and --rows >= 1")
    result = {"machine": benchutil.machine(), "batch": args.batch, "steps": args.steps, "tables": {}, "top": {},
              "notes": {rung: NOTES[rung] for rung in RUNGS}}
    failed = False
    for rung in RUNGS:
        try:
            result["sort_by"], table, result["top"][rung] = profile_rung(rung, args.batch, args.steps, args.rows)
            result["tables"][rung] = f"({NOTES[rung]})\n{table}"
            print(f"== {rung}, batch {args.batch}, {plural(args.steps, 'step')}\n{result['tables'][rung]}")
        except Exception:
            failed = True
            result["tables"][rung] = f"FAILED\n{traceback.format_exc()}"
            print(f"profile_step: {rung} failed\n{traceback.format_exc()}", file=sys.stderr)
        # (through a temp file renamed over it: the step is the one most likely cut at its time limit, and a file
        # cut mid-write lost the earlier rungs' tables)
        atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=1).encode()), what="profile")
        benchutil.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
