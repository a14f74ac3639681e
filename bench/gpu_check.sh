#!/usr/bin/env bash
# The one call on a lent GPU machine: everything comes back under $OUT in at most 8 files.
#
#   OUT=... bash bench/gpu_check.sh                  the check, in this order: versions, launch-config
#                                                    tuning, the gpu-marked tests, the training-step
#                                                    ladder (batch 2 and 16, peak memory per rung), a
#                                                    short graphed training run and its resume, kernel
#                                                    benchmarks with their baselines + the copy
#                                                    roofline (torch.compile's last), profiler tables,
#                                                    loaders and whether the CPU loader keeps up with
#                                                    the graphed step (run with timeout_s=600)
#   OUT=... bash bench/gpu_check.sh compile          a second call: the torch.compile rungs of the
#                                                    ladder at batch 16 against the CUDA-graph rung,
#                                                    then the gpu tests that compile with inductor
#                                                    (launches: the committed table, no tuning)
#   OUT=... bash bench/gpu_check.sh dali             a later call, once the DALI wheels are on the
#                                                    machine in pieces (bench/dali_carry.py): joins
#                                                    and installs them, runs the DALI tests, the DALI
#                                                    loader against the torch one, whether it feeds
#                                                    the graphed step, and a short training run on it
#   OUT=... bash bench/gpu_check.sh rerun            a second call after fixes, in about 5 minutes (at
#                                                    most GPU_CHECK_BUDGET, default 420 here: run it with
#                                                    timeout_s=480): every gpu-marked test, the launches
#                                                    of what changed since the committed table tuned (the
#                                                    pooling and norm kernels; the rest as committed), the
#                                                    ladder's baseline and CUDA-graph rungs at batch 2 and
#                                                    16, the pooling and z-injection benchmarks; no
#                                                    torch.compile (the compile call's). On the H200 (device
#                                                    kind nvidia-h200): the committed table is its
#   OUT=/tmp/x bash bench/gpu_check.sh --dry-run [compile|dali|rerun]
#                                                    on a CPU: every step, tiny shapes, one round,
#                                                    every file written, nothing worth quoting
#                                                    (tests/test_bench_gpu_check.py runs it in CI)
# Then, on the machine the call was made from:
#   python bench/track.py ingest <returned folder>   -> bench/results/<device>_*, a history entry,
#                                                       the plot and the README table
#   make bench-compare                               (or: python bench/track.py compare --all)
#
# Files: check.log (every step's output), steps.jsonl (one line per step: rc, seconds, limit),
# tuning.json (if the tuner exists), kernels.json, train_step.json, profile.json, loader.json
# (compile: check_compile.log, steps_compile.jsonl, train_step_compile.json;
# rerun: check_rerun.log, steps_rerun.jsonl, tuning_rerun.json, kernels_rerun.json, avg_pool_rerun.json,
# train_step_rerun.json;
# dali: check_dali.log, steps_dali.jsonl, loader_dali.json). Each step has a time limit, and all of
# them together at most GPU_CHECK_BUDGET seconds (default 500; a rerun's 420): a hung step is interrupted and later
# steps get what is left, so the call ends within about 8 minutes whatever happens (a dry run: six
# times the limits and the budget, see SLACK below). SIGINT, not
# SIGTERM: pytest then still ends its session and pytest-benchmark writes the JSON of every case
# that finished.
set -uo pipefail
DRY=0
MODE=main
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    compile|dali|rerun)
      # (the last one named ran, without a word: a call's device time spent on the call not meant)
      if [ $MODE != main ]; then
        echo "gpu_check: two calls named, '$MODE' and '$arg': give one of compile, dali, rerun"; exit 2
      fi
      MODE=$arg ;;
    *) echo "gpu_check: unknown argument '$arg' (expected --dry-run and/or one of compile, dali, rerun)"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
PY=${PY:-python3}
# A call without a GPU timed nothing worth keeping, in about 8 minutes, after re-pointing the environment's
# editable install at this checkout (pip install -e .), and its CPU figures were ingested as a GPU check's.
if [ $DRY = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False, or no torch for $PY): run it on the GPU machine, or with --dry-run to rehearse it on a CPU"
  exit 2
fi
# The device machine sets OUT. Without it, a new folder of this call's own: a fixed /tmp/gpu_check, which anyone on
# the machine may have made first, had its log written through a link placed there.
if [ -z "${OUT:-}" ]; then
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
  echo "gpu_check: OUT not set; the results go to $OUT"
fi
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
# (500: the main call's steps, at the H200's times, come to about 490 s in the order below; its last, the loader,
# is the one a slower machine loses)
BUDGET=${GPU_CHECK_BUDGET:-$([ $MODE = rerun ] && echo 420 || echo 500)}
# Each call's own log and step list (check.log, check_compile.log, check_dali.log...): the calls'
# files go to one results folder, where the later must not overwrite the earlier.
SUFFIX=${MODE#main}
SUFFIX=${SUFFIX:+_$SUFFIX}
LOG=$OUT/check$SUFFIX.log
STEPS=$OUT/steps$SUFFIX.jsonl
: > "$LOG"
: > "$STEPS"
export PYTHONUNBUFFERED=1
if [ $DRY = 1 ]; then
  export BENCH_DRY_RUN=1 TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES="" BENCH_ROUNDS=1 BENCH_WARMUP=0 BENCH_INNER=1
  export BENCH_BATCHES=2
fi
status=0
# A dry run times nothing: its steps, and the budget, get six times the device's limits, so that a
# machine loaded by other work does not fail a step that ran in a fifth of its limit on a quiet one
# (train_graph: 9 s of 45 quiet; 138 s with the machine's load at 5-11, past three times 45).
SLACK=1
[ $DRY = 1 ] && SLACK=6
BUDGET=$((BUDGET * SLACK))
# The call's scratch folders (the import shim, the carried DALI, the training runs), gone when it ends: each run
# of the suite's dry runs left two in /tmp (4 MB)
SCRATCH=$(mktemp -d) || exit 2
trap 'rm -rf "$SCRATCH"' EXIT
# Its pytest runs in their files' order (the ladder's rungs are read in it), pytest-randomly installed or not
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:+$PYTEST_ADDOPTS }-p no:randomly"

record() {  # record NAME RC SECONDS LIMIT NOTE
  printf '{"step": "%s", "rc": %d, "seconds": %d, "limit": %d, "note": "%s"}\n' "$1" "$2" "$3" "$4" "$5" >> "$STEPS"
  echo "gpu_check: $1: rc $2 in $3 s (limit $4 s) $5"
}

step() {  # step NAME LIMIT COMMAND...: run it within min(LIMIT, what is left of the budget)
  local name=$1 limit=$(($2 * SLACK)) left=$((BUDGET - SECONDS)) t0=$SECONDS rc note=""
  shift 2
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "=== $name: skipped, the time budget ($BUDGET s) is spent" >> "$LOG"
    record "$name" 125 0 0 "skipped: time budget spent"
    status=1
    return
  fi
  echo "=== $name (limit $limit s): $*" >> "$LOG"
  timeout -s INT -k 10 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then note="timed out"; fi
  record "$name" $rc $((SECONDS - t0)) "$limit" "$note"
  [ $rc = 0 ] || status=1
}

device_options() {  # device_options TRAIN_OPTIONS... [-- RESUME_OPTIONS...]: (a dry run's) the device's training
  # options, whose run here has the CPU's, parsed and resolved into a config as `train` does: a renamed or refused one
  # failed on the GPU first. With RESUME_OPTIONS, also the resume's (TRAIN_OPTIONS RESUME_OPTIONS, as its step gives
  # them), which `train --resume` resolves through the run's config.json: here the device run's config, written
  # into a scratch run folder (--out) as the trainer writes it.
  local run
  run=$(mktemp -d "$SCRATCH/XXXXXX")
  step device_options 30 "$PY" -c 'import sys
from bicyclegan.engine.cli import build_parser, resolve_config
from bicyclegan.engine.io import write_json
run, args = sys.argv[1], sys.argv[2:]
cut = args.index("--") if "--" in args else len(args)
def resolve(*options):
    return resolve_config(build_parser().parse_args(["train", *options, "--out", run]))
cfg = resolve(*args[:cut])
if cut < len(args):
    write_json(f"{run}/config.json", cfg.to_dict(), what="run config")
    cfg = resolve(*args[:cut], *args[cut + 1:])
    print(f"device_options: the resume resolved through {run}/config.json: max_steps {cfg.max_steps}")' "$run" "$@"
}
last_ok() {  # did the last recorded step end with rc 0?
  [ "$(tail -1 "$STEPS" | grep -c '"rc": 0,')" = 1 ]
}

stop_unless_ok() {  # stop_unless_ok WHAT: end the call (exit 3) if the last step failed: the rest needs it
  last_ok && return
  tail -30 "$LOG"
  echo "gpu_check: $1; stopping"
  exit 3
}

bench() {  # bench NAME LIMIT JSON PYTEST-ARGS...: a pytest-benchmark run writing $OUT/JSON
  local name=$1 limit=$2 json=$3
  shift 3
  step "$name" "$limit" "$PY" -m pytest -q -p no:cacheprovider --benchmark-json="$OUT/$json" "$@"
}

# The project in editable mode (the image has torch, Triton and pytest-benchmark; nothing can be
# downloaded there, hence --no-deps --no-build-isolation). A dry run only resolves it.
install=("$PY" -m pip install -q --no-deps --no-build-isolation -e .)
[ $DRY = 1 ] && install+=(--dry-run)
step install 90 "${install[@]}"
if ! "$PY" -c "import bicyclegan.engine, bicyclegan.kernels, bicyclegan.pipelines" >> "$LOG" 2>&1; then
  # Installed or not, it does not import: pip failed (no setuptools, say), or an older pip took the
  # legacy `setup.py develop` path, which puts the checkout on sys.path as it is, without the
  # bicyclegan.<part> names. The same modules through PYTHONPATH instead: a folder whose
  # bicyclegan/<part> link to this checkout's folders (nothing needs the installed metadata).
  shim=$(mktemp -d "$SCRATCH/XXXXXX")
  mkdir -p "$shim/bicyclegan"
  for part in engine kernels pipelines; do ln -s "$PWD/$part" "$shim/bicyclegan/$part"; done
  export PYTHONPATH=$shim${PYTHONPATH:+:$PYTHONPATH}
  record install_fallback 0 0 0 "bicyclegan did not import after the install step: PYTHONPATH=$shim"
fi
step imports 60 "$PY" bench/benchutil.py  # imports the project and pytest-benchmark, prints the versions
stop_unless_ok "the project or pytest-benchmark does not import"
if command -v nvidia-smi > /dev/null; then
  step nvidia-smi 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
else
  record nvidia-smi 0 0 0 "not available"
fi
{ echo "=== /dev/shm (the loader workers hand their batches over through it)"; df -h /dev/shm; } >> "$LOG" 2>&1

# Kernel launch configurations chosen on this device, used by every later step. Only in the main
# call: the later ones take the table committed from it (kernels/tuning/<device>.json), a rerun
# tuning only what changed since, so that the compile call's budget goes to inductor's cold
# compiles (cut off at 117 s once) and the DALI call's step rates compare with the same step on a
# resident batch, tuned or not.
if [ $MODE = main ]; then
  if "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('bicyclegan.kernels.tune') is None)" 2>/dev/null
  then
    # The sweep's own budget ends it (and writes its table whole) before the step's limit would: the H200's
    # step took 40 s for a budget of 35 (imports, the last case). 35 s tuned 323 launches then and skipped 144
    # cases, fp32 NCHW all but one (the cases run bf16 first, what the ladder and training launch). Now 496
    # cases, 724 distinct compiles where the old ones had 1152 (counted on a CPU; the H200 compiled 1418): no
    # N = 16, a size Triton specialises. At that call's rates (63 compiles, 26 launches timed a second) about
    # 35 s; the timing now samples the candidates interleaved and re-times a winner against the heuristic
    # (about twice the timing): some 50 s. The budget gives 45, the fp32 NCHW tail the first cut: the budget is
    # looked at between cases, and imports and the last case come on top (40 s for 35 on the H200), so 50 of the
    # step's 60 left a SIGINT at the limit within reach (the table is whole after every key, but the step failed).
    tune=("$PY" -m bicyclegan.kernels.tune --out "$OUT/tuning$SUFFIX.json" --quick --budget-s $((45 * SLACK)))
    [ $DRY = 1 ] && tune+=(--dry-run)
    step tune 60 "${tune[@]}"
    if [ -s "$OUT/tuning$SUFFIX.json" ]; then export BICYCLEGAN_KERNEL_TUNING=$OUT/tuning$SUFFIX.json; fi
  else
    record tune 0 0 0 "not present on this branch: bicyclegan.kernels.tune"
  fi
fi

# A dry run collects the gpu (and DALI) tests without running them: with --assert=plain, as pytest's rewriting of
# every assert of tests/ (repeated in each call where PYTHONDONTWRITEBYTECODE keeps no cache of it) cost 8 of the
# 14 s of CPU a collection took, and asserts that do not run need no rewriting.
COLLECT=(--collect-only --assert=plain)

# The gpu tests compile a few hundred kernel variants on a fresh machine (~0.4 s of a core each):
# with pytest-xdist, where it is installed, in 8 processes at once (the main call's and a rerun's).
xdist=()
"$PY" -c "import xdist" 2> /dev/null && xdist=(-n 8)

if [ $MODE = dali ]; then
  # The wheels, carried in pieces by earlier calls (bench/dali_carry.py), installed beside the image's
  # packages; DALI_CARRY_DIR: where the pieces are (default .dali in the checkout).
  site=$(mktemp -d "$SCRATCH/XXXXXX")
  step dali_install 120 "$PY" bench/dali_carry.py ${DALI_CARRY_DIR:+--dir "$DALI_CARRY_DIR"} join --target "$site"
  stop_unless_ok "the DALI wheels are not all here"
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  step dali_import 60 "$PY" -c "import nvidia.dali as d, simplejpeg; print('DALI', d.__version__, 'from', d.__file__)"
  stop_unless_ok "DALI does not import"
  # Every DALI test: the GPU ones (mixed decoding) and the CPU-operator ones, under Python 3.12 here.
  dali_tests=("$PY" -m pytest -k dali -q -p no:cacheprovider tests/test_pipelines.py tests/test_pipelines_formats.py
              tests/test_pipelines_errors.py tests/test_loader_fuzz.py tests/test_optional_imports.py)
  [ $DRY = 1 ] && dali_tests+=("${COLLECT[@]}")
  step dali_tests 120 "${dali_tests[@]}"
  BENCH_ROUNDS=${BENCH_ROUNDS:-5} bench loader_dali 120 loader_dali.json bench/bench_loader.py \
    -k "loader_cuda or dali_feeds"
  # The GPU default end to end: a short run on the demo data, DALI feeding the graphed bf16 step.
  rundir=$(mktemp -d "$SCRATCH/XXXXXX")/run
  run=(--out "$rundir" --backend dali --no-eval --no-progress)
  device=(--amp bf16 --cuda_graph --channels_last --batch_size 16 --max_steps 200 --log_every 50)
  if [ $DRY = 1 ]; then
    device_options "${run[@]}" "${device[@]}"
    # impl ref: the interpreter running every kernel of the step took 60 s of the step's 90 (the
    # kernels' dry runs are elsewhere); this step rehearses the DALI-fed run, not the kernels
    run+=(--device cpu --impl ref --crop_size 32 --ngf 4 --nef 4 --ndf 4 --batch_size 4 --max_steps 4 --log_every 2)
  else
    run+=("${device[@]}")
  fi
  step train_dali 90 "$PY" -m bicyclegan.engine.cli train "${run[@]}"
  { echo "=== train_dali: $rundir/log.jsonl"; cat "$rundir/log.jsonl"; } >> "$LOG" 2>&1
elif [ $MODE = rerun ]; then
  gpu_tests=("$PY" -m pytest -m "gpu and not inductor" -q -p no:cacheprovider ${xdist[@]+"${xdist[@]}"} tests)
  [ $DRY = 1 ] && gpu_tests+=("${COLLECT[@]}")
  # (196 took 54 s on the H200; 100 s leaves the ladder its 180 within the budget)
  step gpu_tests 100 "${gpu_tests[@]}"
  # What changed since the committed table, tuned here and used by every later step: the pooling
  # kernels (new) and the norm's (a candidate more: the whole plane in one tile). Its entries
  # (tuning_rerun.json) win over the committed table's here, and join it with
  # `python -m bicyclegan.kernels.tune --out kernels/tuning/<device>.json --merge <returned>/tuning_rerun.json`.
  tune=("$PY" -m bicyclegan.kernels.tune --out "$OUT/tuning_rerun.json" --sites pool,norm_act --quick --budget-s $((60 * SLACK)))
  [ $DRY = 1 ] && tune+=(--dry-run)
  step tune 80 "${tune[@]}"
  if [ -s "$OUT/tuning_rerun.json" ]; then export BICYCLEGAN_KERNEL_TUNING=$OUT/tuning_rerun.json; fi
  # the baseline and the graph rungs only (ours NCHW and channels_last, torch's layers), at batch 2 and 16: the
  # first call's eager rungs stand. On the H200 three tests took 62 s (each builds, warms up and captures its step):
  # the 8 here (rung by rung, both batches each) need ~160 s, and come before the kernel benchmarks, measured before.
  BENCH_ROUNDS=${BENCH_ROUNDS:-10} bench ladder 180 train_step_rerun.json bench/bench_train_step.py \
    -k "eager_fp32_torch or (graph_bf16 and not compile)"
  # the discriminators' downsampling, ours against torch's (its compile rows are the main call's)
  BENCH_ROUNDS=${BENCH_ROUNDS:-10} bench avg_pool 30 avg_pool_rerun.json bench/bench_avg_pool.py -k "not compile"
  # (39 s of eager timing on the H200; graph replays now besides: 60 s)
  BENCH_ROUNDS=${BENCH_ROUNDS:-20} bench zinject 60 kernels_rerun.json bench/bench_zinject.py
  # (No torch.compile rungs: inductor compiles the step cold for minutes; they are the compile call's.)
elif [ $MODE = compile ]; then
  BENCH_ROUNDS=${BENCH_ROUNDS:-10} BENCH_BATCHES=${BENCH_BATCHES:-16} bench ladder_compile 300 \
    train_step_compile.json bench/bench_train_step.py -k "compile or (graph_bf16_triton and not triton_cl)"
  # The gpu tests that compile with inductor (tens of seconds each, cold): kept out of the main call,
  # whose 120 s test step would have to hold them beside every kernel test's compiles.
  compile_tests=("$PY" -m pytest -m "gpu and inductor" -q -p no:cacheprovider tests)
  [ $DRY = 1 ] && compile_tests+=("${COLLECT[@]}")
  step compile_tests 120 "${compile_tests[@]}"
else
  # (Not those that compile with inductor: the compile call runs them.)
  if [ $DRY = 1 ]; then
    step gpu_tests 60 "$PY" -m pytest -m "gpu and not inductor" -q -p no:cacheprovider ${xdist[@]+"${xdist[@]}"} \
      "${COLLECT[@]}" tests
  else
    # (No --maxfail: the first H200 call stopped at 10 failures, and the norm's ~170 cases run first, so one
    # systematic norm failure hid the pooling, graph and host-sync tests behind it; the limit bounds the step.)
    step gpu_tests 120 "$PY" -m pytest -m "gpu and not inductor" -q -p no:cacheprovider \
      ${xdist[@]+"${xdist[@]}"} tests
  fi
  # The ladder next, what the call decides first (docs/performance.md): its baseline and graph rungs come first
  # (RUNGS), 8 tests at 12 s (eager) to 20 s (graph) each on the H200; the eager bf16 rungs after them are the
  # ones this limit cuts. (8 eager rungs took 96 s there, cut at 90, when the ladder came after the kernels.)
  BENCH_ROUNDS=${BENCH_ROUNDS:-10} bench ladder 160 train_step.json bench/bench_train_step.py -k "not compile"
  # The trainer's own graphed run, end to end (the tests graph the step alone): the prefetching
  # torch loader feeding the captured step, an epoch boundary (32 steps of batch 16 on the demo
  # data), a checkpoint and a sample grid between replays, then a resume that captures again.
  rundir=$(mktemp -d "$SCRATCH/XXXXXX")/run
  # --eval_every 0: the demo preset evaluates every 400 steps, evaluations the step limits do not count on
  run=(--out "$rundir" --backend torch --no-eval --no-progress --save_every 30 --log_every 10 --eval_every 0)
  device=(--amp bf16 --cuda_graph --channels_last --batch_size 16)
  if [ $DRY = 1 ]; then
    device_options "${run[@]}" "${device[@]}" --max_steps 50 -- --resume  # (the resume step's options)
    run+=(--device cpu --impl ref --crop_size 32 --ngf 4 --nef 4 --ndf 4 --batch_size 4)
  else
    run+=("${device[@]}")
  fi
  # (on an H200 the first 10 steps took 25 s: Triton compiling every kernel of the step)
  step train_graph 60 "$PY" -m bicyclegan.engine.cli train "${run[@]}" --max_steps 40
  step train_graph_resume 30 "$PY" -m bicyclegan.engine.cli train "${run[@]}" --max_steps 50 --resume
  { echo "=== train_graph: $rundir/log.jsonl"; cat "$rundir/log.jsonl"; } >> "$LOG" 2>&1
  # The copy roofline first, then by the targets they answer: the norm's cases (eager, compile, the roofline), the z
  # injection's (every level against the input only), the pooling's (no target of the issue's). Every torch.compile
  # case after all of them (bench/conftest.py: each compiles afresh, seconds apiece), so a cut at the limit takes
  # those first, then the pooling's. (101 cases took 83 s on the H200; 189 now, 133 of them no compile case: at that
  # rate ~110 s, so the limit will likely cut some.)
  BENCH_ROUNDS=${BENCH_ROUNDS:-20} BENCH_NORM_ACT_QUICK=1 bench kernels 100 kernels.json \
    bench/bench_copy.py bench/bench_norm_act.py bench/bench_zinject.py bench/bench_avg_pool.py
  # The profile before the loader: the H200's loader kept up with the graphed step on 16 cores, and a machine of
  # the same cores is the likelier to repeat that; the profile plans the next optimisation. (40 s on the H200.)
  step profile 45 "$PY" bench/profile_step.py --out "$OUT/profile.json"
  # the CPU loader, and whether it keeps up with the graphed step at batch 16 (fed vs resident batch): last, the
  # step to lose if the budget runs out (35 s on the H200).
  # Its JPEGs go to pytest's temporary folder (TMPDIR, else /tmp: ~100 MB), but the torch loader's
  # workers hand their batches over through /dev/shm (torch's shared memory, shm_open: no other folder
  # will do), PREFETCH batches each: 6 MiB a uint8 batch of 16 at 256 px, 0.2 GiB for the default
  # workers of a 16-core machine and the bench's 2-worker loader beside them. A container's /dev/shm
  # may be 64 MiB, or missing, and a batch out of room is lost (the loader waits 10 minutes for it):
  # then the bench gets the workers that fit by the loader's own rule (cpu_loader.workers_that_fit;
  # BENCH_LOADER_WORKERS, 0: loading in the main process), said in the log. The loader lowers its default count so by itself,
  # but the bench runs two loaders at once, and gives counts of its own.
  # (The training runs above load the demo preset's 32 px images with 1 worker: a few MB.)
  read -r fit want < <("$PY" - "${GPU_CHECK_SHM:-}" 2>> "$LOG" <<'EOF' || echo "0 0"
import sys
from bicyclegan.pipelines.cpu_loader import batch_bytes, shared_memory_free, workers_that_fit
from bicyclegan.pipelines.loader import default_workers
free = shared_memory_free(sys.argv[1] or None)  # GPU_CHECK_SHM: tests point it elsewhere
# None: no such folder, so no shared memory for workers at all (this script runs on Linux)
print(0 if free is None else workers_that_fit(batch_bytes(16, 3 + 3, (256, 256)), free),
      default_workers("torch", "cuda") + 2)
EOF
  )
  if [ "${fit:-0}" -lt "${want:-0}" ]; then
    # the feeds-the-step bench runs the capped loader and a 2-worker one (at most as many) at once
    export BENCH_LOADER_WORKERS=$(( fit >= 4 ? fit - 2 : fit / 2 ))
    echo "gpu_check: /dev/shm has room for the batches of $fit loader workers, not the $want of the loader" \
      "bench: it runs with BENCH_LOADER_WORKERS=$BENCH_LOADER_WORKERS" | tee -a "$LOG"
  fi
  BENCH_ROUNDS=${BENCH_ROUNDS:-5} bench loader 90 loader.json bench/bench_loader.py
fi

echo "--- last lines of check$SUFFIX.log"
tail -25 "$LOG"
echo "--- steps"
cat "$STEPS"
echo "--- files in $OUT"
ls -la "$OUT"
exit $status
