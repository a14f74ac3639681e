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

.PHONY: install demo test bench
install: $(VENV)/.installed

# Train BicycleGAN on the built-in demo data (~10 min on 2 CPU cores): sample grids + coverage table.
demo: $(VENV)/.installed
	$(BIN)/bicyclegan train --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The test suite (CPU; Triton kernels run in the interpreter). CI runs exactly this.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# CPU benchmarks (GPU ones skip without CUDA); GPU machines use bench/gpu_check.sh.
bench: $(VENV)/.installed
	$(BIN)/python -m pytest bench -q
