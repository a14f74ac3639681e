"""Paired-image loading throughput at the reference's 256 px setting (load 286, crop 256, flip),
training mode (shuffle, random crop and flip, drop_last), on a generated set of 64 JPEG A|B files
of 512x256: the torch CPU loader (DataLoader + PIL) and the DALI pipeline on CPU operators; on a
GPU also DALI with "mixed" (GPU) decoding and the torch loader with pinned copies to the device.

One round = one epoch (64 pairs), after a warm-up epoch (workers, pipeline build). A "pair" is one
file decoded into A and B; extra_info records pairs/s from the median round, with backend, device,
workers/threads and batch size. Run: pytest bench/bench_loader.py --benchmark-json=out.json
BENCH_ROUNDS overrides the number of rounds (default 3).
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from bicyclegan.pipelines import make_loader

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FILES, BATCH = 64, 8
WORKERS = min(4, os.cpu_count() or 1)
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def jpeg_pairs(tmp_path_factory):
    """64 photo-like A|B JPEGs: smooth colour fields plus noise, so JPEG has work to do."""
    root = tmp_path_factory.mktemp("pairs")
    (root / "train").mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:512].astype(np.float32)
    for i in range(FILES):
        f = rng.uniform(0.01, 0.05, 3)
        img = np.stack([np.sin(x * f[c] + i) * 90 + 128 for c in range(3)], -1)
        img += rng.normal(0, 12, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"train/{i:03d}.jpg", quality=90)
    return root


@pytest.mark.parametrize("backend, device", [
    ("torch", "cpu"),
    ("dali", "cpu"),
    pytest.param("dali", "cuda", marks=gpu),
    pytest.param("torch", "cuda", marks=gpu),
])
def test_loader_throughput(benchmark, jpeg_pairs, backend, device):
    if backend == "dali":
        pytest.importorskip("nvidia.dali", reason="DALI is not installed")
    loader = make_loader(jpeg_pairs, batch_size=BATCH, load_size=286, crop_size=256, backend=backend,
                         device=device, num_workers=WORKERS, seed=0)

    def epoch():
        n = sum(b["A"].shape[0] for b in loader)
        if device == "cuda":
            torch.cuda.synchronize()
        return n

    assert epoch() == FILES  # warm-up
    benchmark.pedantic(epoch, rounds=ROUNDS, iterations=1)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        backend=backend, device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
        workers=WORKERS, batch_size=BATCH, pairs=FILES, size="512x256 JPEG -> 2 x 3x256x256",
        pairs_per_s=round(FILES / median, 1), cpu_count=os.cpu_count(), torch=torch.__version__)
