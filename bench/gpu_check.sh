#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/GPU.md): versions, the gpu-marked tests, then the
# GPU benchmarks with their baselines in the same process; everything lands under $OUT (at most
# 8 files come back, so logs are bundled). Every step has a timeout; together at most 570 s, so
# run it with timeout_s=600 and OUT set: bash bench/gpu_check.sh
# `bash bench/gpu_check.sh compile` (a second call, about 4 min) times the torch.compile rungs of the
# training-step ladder at batch 16 against the CUDA-graph rung, in the same process.
set -uo pipefail
OUT=${OUT:-bench/results/local}
mkdir -p "$OUT"
if [ "${1:-}" = compile ]; then
  pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
  BENCH_ROUNDS=10 BENCH_BATCHES=16 timeout 240 python -m pytest bench/bench_train_step.py -q \
    -k "compile or graph_bf16_triton" --benchmark-json="$OUT/train_step_compile.json" > "$OUT/compile.log" 2>&1
  status=$?
  tail -30 "$OUT/compile.log"
  exit $status
fi
export BENCH_ROUNDS=${BENCH_ROUNDS:-20} BENCH_NORM_ACT_QUICK=${BENCH_NORM_ACT_QUICK:-1}
pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
status=0
timeout 200 python -m pytest -m gpu --maxfail=10 -q tests > "$OUT/gpu_tests.log" 2>&1 || status=1
tail -3 "$OUT/gpu_tests.log"
timeout 120 python -m pytest bench/bench_norm_act.py -q \
  --benchmark-json="$OUT/norm_act.json" > "$OUT/bench.log" 2>&1 || status=1
timeout 100 python -m pytest bench/bench_zinject.py -q --benchmark-json="$OUT/zinject.json" >> "$OUT/bench.log" 2>&1 || status=1
BENCH_ROUNDS=10 timeout 110 python -m pytest bench/bench_train_step.py -q -k "not compile" \
  --benchmark-json="$OUT/train_step.json" >> "$OUT/bench.log" 2>&1 || status=1
timeout 40 python -m pytest bench/bench_loader.py -q --benchmark-json="$OUT/loader.json" >> "$OUT/bench.log" 2>&1 || status=1
tail -40 "$OUT/bench.log"
exit $status
