# Set-up and the two main jobs. Each target creates .venv on first use (torch, triton, DALI, the
# project in editable mode), so on a fresh machine `make demo` and `make test` are all it takes.
PY ?= python3
VENV ?= .venv
# The CPU build of torch 2.13.0 (on this project's machines it is served from local disk). On a GPU
# machine use e.g. `make TORCH=torch demo` to get the CUDA build.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

$(VENV)/.installed: setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,dali]"
	touch $@

.PHONY: install demo test bench bench-compare bench-plot
install: $(VENV)/.installed

# Train BicycleGAN on the built-in demo data (~10 min on 2 CPU cores): sample grids + coverage table.
demo: $(VENV)/.installed
	$(BIN)/bicyclegan train --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The test suite (CPU; Triton kernels run in the interpreter). CI runs exactly this.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# Throughput tracking (bench/track.py). `make bench`: the tracked CPU figures (training iteration
# and loader, each against its baselines in the same process; ~20 s of CPU time), saved by
# pytest-benchmark in bench/history/<machine key>/ and compared there with the previous run
# (absolute times). BICYCLEGAN_REFERENCE=<junyanz/BicycleGAN checkout> adds the authors' code.
# GPU machines run bench/gpu_check.sh instead (its header says how its files reach the history).
bench: $(VENV)/.installed
	key=$$($(BIN)/python bench/track.py key) && $(BIN)/python -m pytest -q -p no:cacheprovider \
	  bench/bench_cpu_step.py bench/bench_loader.py --benchmark-autosave \
	  --benchmark-storage=file://bench/history/$$key --benchmark-compare

# The newest run of this machine against its previous one: ratios (baseline / ours, same run),
# failing when a gated ratio fell by more than the threshold (`ARGS=--all` for every machine).
bench-compare: $(VENV)/.installed
	$(BIN)/python bench/track.py compare $(ARGS)

# The history plots (bench/results/history_<machine key>.png) and the README's performance table.
bench-plot: $(VENV)/.installed
	$(BIN)/python bench/track.py plot
	$(BIN)/python bench/track.py readme
