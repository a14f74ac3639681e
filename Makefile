# Set-up and the two main jobs. Each target creates .venv on first use (torch, triton, DALI, the
# project in editable mode), so on a fresh machine `make demo` and `make test` are all it takes.
PY ?= python3
VENV ?= .venv
# torch 2.13.0: the CPU build by default (on this project's machines it is served from local disk).
# Where nvidia-smi lists a GPU, the CUDA build instead: PyPI's Linux wheel, asked for with "===" so
# that a local "+cpu" wheel cannot satisfy it. `make TORCH=... demo` chooses another build.
GPU := $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo yes)
ifeq ($(GPU),yes)
TORCH ?= torch===2.13.0
BUILD := cuda
else
TORCH ?= torch==2.13.0
BUILD := cpu
endif
BIN := $(VENV)/bin
# One stamp per build: a venv made on a CPU machine is redone with the CUDA build where a GPU appears.
STAMP := $(VENV)/.installed-$(BUILD)

$(STAMP): setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,dali]"
	@if [ $(BUILD) = cuda ]; then $(BIN)/python -c "import sys, torch; torch.cuda.is_available() or \
	  sys.exit('nvidia-smi lists a GPU but torch ' + torch.__version__ + ' cannot use it: install a CUDA build with make TORCH=...')"; fi
	touch $@

.PHONY: install demo test test-floor bench bench-compare bench-plot
install: $(STAMP)

# Train BicycleGAN on the built-in demo data (7 to 16 min on 2 CPU cores, by their load; a
# GPU, where nvidia-smi lists one, is used and named): sample grids + the palette coverage table.
demo: $(STAMP)
	@echo "make demo: $(if $(GPU),GPU found by nvidia-smi: the CUDA build of torch,no GPU found by nvidia-smi: the CPU build of torch)"
	$(BIN)/bicyclegan train --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The test suite (CPU; Triton kernels run in the interpreter). CI runs exactly this: in
# TEST_WORKERS processes (pytest-xdist; 0: in this one), each file's tests in one of them
# (--dist loadfile), so that a module's shared set-up (a training run, an export) is made once; the
# files in collection order, which tests/conftest.py starts with the slowest (--no-loadscope-reorder).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The kernels' tests, and the model's, trainer's and export's that run them, on the oldest torch setup.py takes (torch 2.4.1 and its Triton 3.0), in a venv of
# their own (.venv-floor, ~5 GB: PyPI's CUDA build, which runs on the CPU; the core packages alone).
# numpy < 2: under numpy 2, Triton 3.0's and 3.1's interpreter compute wrong values (a mean of 0).
FLOOR_TORCH ?= torch==2.4.1
FLOOR_TESTS ?= tests/test_kernel_plumbing.py tests/test_norm_act.py tests/test_avg_pool.py tests/test_zinject.py \
	tests/test_kernel_func.py tests/test_compile.py tests/test_model.py tests/test_memory_format.py \
	tests/test_graph.py tests/test_trainer.py tests/test_stop.py tests/test_export.py tests/test_kernel_tune.py
test-floor:
	$(PY) -m venv .venv-floor
	.venv-floor/bin/pip install -q "$(FLOOR_TORCH)" "numpy<2" "pytest>=7" pytest-xdist pytest-benchmark
	.venv-floor/bin/pip install -q -e .
	.venv-floor/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider $(FLOOR_TESTS)

# Throughput tracking (bench/track.py). `make bench`: the tracked CPU figures (training iteration
# and loader, each against its baselines in the same process; ~20 s of CPU time), saved by
# pytest-benchmark in bench/history/<machine key>/; `make bench-compare` compares them (pytest-benchmark's
# own comparison took the last saved run, of whatever settings: a 128 px step against a 256 px one).
# BICYCLEGAN_REFERENCE=<junyanz/BicycleGAN checkout> adds the authors' code. Both with no GPU visible
# (CUDA_VISIBLE_DEVICES=): on a GPU machine too, the CPU's figures under the CPU's key, without the GPU
# benchmarks; GPU machines run bench/gpu_check.sh for those (its header says how its files reach the history).
bench: $(STAMP)
	export CUDA_VISIBLE_DEVICES= && key=$$($(BIN)/python bench/track.py key) && \
	  $(BIN)/python -m pytest -q -p no:cacheprovider bench/bench_cpu_step.py bench/bench_loader.py \
	  --benchmark-autosave --benchmark-storage=file://bench/history/$$key

# The newest run of this machine (its CPU's, as `make bench` files them) against the newest committed run of
# another commit (of any commit for a run with uncommitted changes) of the same settings: ratios (baseline /
# ours, same run) and absolute times, failing when a gated ratio fell by more than the threshold
# (`ARGS=--all` for every machine).
bench-compare: $(STAMP)
	CUDA_VISIBLE_DEVICES= $(BIN)/python bench/track.py compare $(ARGS)

# The history plots (bench/results/history_<machine key>.png) and the README's performance table.
bench-plot: $(STAMP)
	$(BIN)/python bench/track.py plot
	$(BIN)/python bench/track.py readme
