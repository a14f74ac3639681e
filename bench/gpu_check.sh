#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/GPU.md): versions, the gpu-marked tests, then the
# GPU benchmarks with their baselines in the same process; everything lands under $OUT (at most
# 8 files come back, so logs are bundled). Every step has a timeout; together at most 550 s (+10 s grace each), so
# run it with timeout_s=600 and OUT set: bash bench/gpu_check.sh
# `bash bench/gpu_check.sh compile` (a second call, about 4 min) times the torch.compile rungs of the
# training-step ladder at batch 16 against the CUDA-graph rung, in the same process.
set -uo pipefail
OUT=${OUT:-bench/results/local}
mkdir -p "$OUT"
if [ "${1:-}" = compile ]; then
  pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || true
  BENCH_ROUNDS=10 BENCH_BATCHES=16 timeout -s INT -k 10 240 python -u -m pytest bench/bench_train_step.py -q \
    -k "compile or graph_bf16_triton" --benchmark-json="$OUT/train_step_compile.json" > "$OUT/compile.log" 2>&1
  status=$?
  tail -30 "$OUT/compile.log"
  exit $status
fi
export BENCH_ROUNDS=${BENCH_ROUNDS:-20} BENCH_NORM_ACT_QUICK=${BENCH_NORM_ACT_QUICK:-1}
pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1
if ! python -c "import bicyclegan.engine, bicyclegan.kernels, pytest_benchmark" >> "$OUT/install.log" 2>&1; then
  cat "$OUT/install.log"; echo "gpu_check: the project or pytest-benchmark does not import; stopping"; exit 3
fi
# SIGINT, not SIGTERM, on timeout: pytest then still finishes the session and pytest-benchmark
# writes the JSON of every case that ran. -u: logs are not lost in a buffer.
T() { local s=$1; shift; timeout -s INT -k 10 "$s" python -u "$@"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
status=0
T 190 -m pytest -m gpu --maxfail=10 -q tests > "$OUT/gpu_tests.log" 2>&1 || status=1
tail -3 "$OUT/gpu_tests.log"
T 110 -m pytest bench/bench_norm_act.py -q \
  --benchmark-json="$OUT/norm_act.json" > "$OUT/bench.log" 2>&1 || status=1
T 100 -m pytest bench/bench_zinject.py -q --benchmark-json="$OUT/zinject.json" >> "$OUT/bench.log" 2>&1 || status=1
BENCH_ROUNDS=10 T 110 -m pytest bench/bench_train_step.py -q -k "not compile" \
  --benchmark-json="$OUT/train_step.json" >> "$OUT/bench.log" 2>&1 || status=1
T 40 -m pytest bench/bench_loader.py -q --benchmark-json="$OUT/loader.json" >> "$OUT/bench.log" 2>&1 || status=1
tail -40 "$OUT/bench.log"
exit $status
