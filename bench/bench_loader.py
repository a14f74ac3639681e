"""Paired-image loading throughput at the reference's 256 px setting (load 286, crop 256, flip),
training mode (shuffle, random crop and flip, drop_last), on a generated set of 64 JPEG A|B files
of 512x256 (16 in a dry run).

  CPU: the torch loader (DataLoader + PIL; ours, the CPU default) against the DALI pipeline on CPU
       operators, where DALI is installed (the tracked CPU figure of `make bench`);
  GPU: DALI with "mixed" (GPU) decoding (ours, the GPU default) against the torch loader with
       pinned copies to the device (BENCH_DRY_RUN=1 runs it on the CPU).

  GPU, does the CPU loader keep up with training: the graphed bf16 training step of the ladder
       (bench_train_step.py) at its largest batch, fed by the torch loader (the default worker count,
       pinned, copied ahead on a side stream), against the same step on a resident batch, fed by 2
       workers (the engine's default before), and the loader alone, over 1,024 pairs. A ratio
       "resident" of 1.0 means the loader costs nothing; below 1 it falls short by that much.
       BENCH_DRY_RUN=1 runs it on the CPU at 32 px.

One round = one epoch (64 pairs), after a warm-up epoch (workers, pipeline build); the two loaders
alternate round by round (benchutil.race). A "pair" is one file decoded into A and B; extra_info
records pairs/s of each loader from its median round. Run: pytest bench/bench_loader.py
--benchmark-json=out.json (BENCH_ROUNDS overrides the rounds, default 7).
"""
import io
import os
import statistics
import time

import benchutil
import numpy as np
import pytest
import torch
from benchutil import DEVICE, DRY, race
from PIL import Image

from bicyclegan.pipelines import make_loader
from bicyclegan.pipelines.loader import dali_available, default_workers

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
# A dry run (BENCH_DRY_RUN=1): 16 files, two batches an epoch (its times mean nothing; generating and decoding 64
# took 3 of its 10 s of CPU)
FILES, BATCH = 16 if DRY else 64, 8
# At most this many torch loader workers where /dev/shm cannot hold the default counts' batches
# (bench/gpu_check.sh sets it; a batch without room there is lost, and the loader waits 10 minutes for it).
SHM_CAP = os.environ.get("BENCH_LOADER_WORKERS")


def torch_workers(default):
    return default if SHM_CAP is None else min(default, int(SHM_CAP))


WORKERS = default_workers("torch", "cpu")  # make_loader's own default on the CPU: min(4, cores)
TORCH_WORKERS = torch_workers(WORKERS)  # the torch loader's (BENCH_LOADER_WORKERS caps it; DALI's threads stay WORKERS)
HAS_DALI = dali_available()


def _photos(n, h=256, w=512):
    """n photo-like A|B JPEGs (bytes): smooth colour fields plus noise, so JPEG has work to do."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        f = rng.uniform(0.01, 0.05, 3)
        img = np.stack([np.sin(x * f[c] + i) * 90 + 128 for c in range(3)], -1)
        img += rng.normal(0, 12, img.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _write(root, photos, n):
    (root / "train").mkdir()
    for i in range(n):
        (root / f"train/{i:04d}.jpg").write_bytes(photos[i % len(photos)])
    return root


@pytest.fixture(scope="module")
def jpeg_pairs(tmp_path_factory):
    """FILES different 512 x 256 A|B JPEGs."""
    return _write(tmp_path_factory.mktemp("pairs"), _photos(FILES), FILES)


def _epoch(root, backend, device):
    loader = make_loader(root, batch_size=BATCH, load_size=286, crop_size=256, backend=backend, device=device,
                         num_workers=TORCH_WORKERS if backend == "torch" else WORKERS, seed=0)

    def epoch():
        n = sum(b["A"].shape[0] for b in loader)
        if device == "cuda":
            torch.cuda.synchronize()
        assert n == FILES, f"{backend} on {device} loaded {n} of {FILES} pairs"
    return epoch


def _record(benchmark, rows, figure, gate, what, tolerance=None):
    ms = race(benchmark, rows, rounds=1 if DRY else ROUNDS)
    benchmark.extra_info.update(
        figure=figure, gate=gate, headline=True, what=what, tolerance=tolerance, workers=TORCH_WORKERS,
        batch_size=BATCH, pairs=FILES,
        size="512x256 JPEG -> 2 x 3x256x256", pairs_per_s={k: round(FILES / v * 1e3, 1) for k, v in ms.items()},
        cpu_count=os.cpu_count(), torch=torch.__version__)


def test_loader_cpu(benchmark, jpeg_pairs):
    rows = {"ours": _epoch(jpeg_pairs, "torch", "cpu")}
    if HAS_DALI:
        rows["dali_cpu"] = _epoch(jpeg_pairs, "dali", "cpu")
    # tolerance: over 5 runs on the shared 2-core machine the ratio fell by up to 22% between
    # consecutive runs (docs/performance.md, "Noise"): two loaders' worker processes among everyone else's
    _record(benchmark, rows, "cpu_loader_256px", "dali_cpu",
            f"loader epoch, {FILES} JPEG pairs 256 px, batch {BATCH}, {TORCH_WORKERS} workers: torch/PIL vs DALI CPU",
            tolerance=0.3)


@pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)
@pytest.mark.skipif(not HAS_DALI, reason="DALI is not installed")
def test_loader_cuda(benchmark, jpeg_pairs):
    # (a dry run's on the CPU: DALI's CPU operators, the torch loader unpinned)
    rows = {"ours": _epoch(jpeg_pairs, "dali", DEVICE), "torch_pinned": _epoch(jpeg_pairs, "torch", DEVICE)}
    _record(benchmark, rows, "cuda_loader_256px", "torch_pinned",
            f"loader epoch to the GPU, {FILES} JPEG pairs 256 px, batch {BATCH}: DALI mixed decoding vs torch/PIL")


def _feeds_the_step(benchmark, tmp_path, backend):
    """The graphed step fed by `backend`'s loader (its default workers or threads) against the step on
    a resident batch, and the loader alone; for the torch loader also with 2 workers."""
    import bench_train_step as ladder
    batch, size = max(ladder.BATCHES), ladder.SIZE
    # 1,024 pairs (16 distinct files repeated: the decoding work is the same): an epoch boundary (the
    # workers' refill) falls in few rounds, and the median round leaves it out, as in a long run.
    files, per_round, rounds = (16 * batch, 2, 1) if DRY else (1024, 16, max(ROUNDS, 5))
    root = _write(tmp_path, _photos(16, size, 2 * size), files)
    torch.manual_seed(0)
    _, step, resident = ladder.build(ladder.OURS, batch)

    def endless(workers):
        loader = make_loader(root, batch_size=batch, load_size=size + size // 8, crop_size=size,
                             backend=backend, device=DEVICE, seed=0, num_workers=workers)
        while True:
            yield from loader
    workers = default_workers(backend, DEVICE)
    if backend == "torch" and SHM_CAP is not None:
        workers = torch_workers(workers)
        stream = endless(workers)
    else:
        stream = endless(None)  # the default (None)
    rows = [("resident", lambda: step(resident)), ("loader_only", lambda: next(stream))]
    if backend == "torch":
        two = endless(min(2, workers))  # the engine's default until the worker count followed the cores
        rows.append(("two_workers", lambda: step(next(two))))
    rows.append(("ours", lambda: step(next(stream))))
    # In turn, not interleaved (one iterator per loader: its queue must reach its steady state): each
    # row first runs its warm-up, which for the loader rows also uses up what the workers queued
    # (2 batches per worker) while something else ran.
    warmup = 1 if DRY else 2 * workers + 8
    ms = {}
    for row, fn in rows:
        times = []

        def run(fn=fn, times=times):
            benchutil.sync()
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()
            benchutil.sync()
            times.append((time.perf_counter() - t0) * 1e3 / per_round)
        for _ in range(warmup):
            fn()
        if row == "ours":
            benchmark.pedantic(run, rounds=rounds, iterations=1)
        else:
            for _ in range(rounds):
                run()
        ms[row] = statistics.median(times)
    figure = "loader" if backend == "torch" else backend
    benchutil.tag(benchmark, f"{figure}_feeds_step_b{batch}", "ours", ms["ours"],
                  rows_ms={k: v for k, v in ms.items() if k != "ours"})
    what = {"torch": f"the torch loader ({workers} workers) vs on a resident batch, with 2 workers; the loader alone",
            "dali": f"the DALI loader ({workers} threads, {'mixed' if DEVICE == 'cuda' else 'CPU'} decoding) vs "
                    f"on a resident batch; the loader alone"}[backend]
    benchmark.extra_info.update(
        gate="resident", headline=True, workers=workers, cpu_count=os.cpu_count(), pairs=files,
        batch_size=batch, rounds=rounds, per_round=per_round, backend=backend,
        pairs_per_s={k: round(batch / v * 1e3, 1) for k, v in ms.items()},
        what=f"training iteration ({ladder.OURS}, {size} px, batch {batch}) fed by {what}")


@pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)
def test_loader_feeds_the_step(benchmark, tmp_path):
    _feeds_the_step(benchmark, tmp_path, "torch")


@pytest.mark.skipif(not benchutil.RUNNABLE, reason=benchutil.SKIP_REASON)
@pytest.mark.skipif(not HAS_DALI, reason="DALI is not installed")
def test_dali_feeds_the_step(benchmark, tmp_path):
    _feeds_the_step(benchmark, tmp_path, "dali")
