#!/usr/bin/env bash
# Mutation testing of the objective with cosmic-ray: engine/losses.py whole, and the training step
# of engine/model.py (_frozen_call, _generator_losses, _discriminator_losses, train_step; their line
# ranges are found with ast at each run, so edits elsewhere in the file do not matter).
#
#   tools/mutation_engine.sh [losses|model|all]     (default all; from any folder)
#   RESUME=1 tools/mutation_engine.sh model         (go on with an interrupted session)
#
# cosmic-ray writes each mutant into the source file itself and runs the tests: do not use this
# worktree for anything else while it runs. It refuses to start with uncommitted changes in the two
# files and restores them from git when it ends, however it ends. Sessions and reports go to
# build/mutation-engine/. Results and the survivors explained: docs/mutation-engine.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=build/mutation-engine
FILES=(engine/losses.py engine/model.py)
which=${1:-all}
case $which in losses|model|all) ;; *) echo "usage: $0 [losses|model|all]" >&2; exit 2 ;; esac

if ! git diff --quiet HEAD -- "${FILES[@]}"; then
    echo "$0: ${FILES[*]} have uncommitted changes; commit or stash them first (mutants are written there)" >&2
    exit 1
fi
trap 'git checkout -q HEAD -- "${FILES[@]}"' EXIT
"$PY" -m pip show cosmic-ray >/dev/null 2>&1 || "$PY" -m pip install -q "cosmic-ray==8.7.0"
BIN=$(dirname "$PY")
mkdir -p "$OUT"

# -x: a mutant dies at its first failing test; the fast known-answer tests come first.
PYTEST="$PY -m pytest -x -q -p no:cacheprovider"
STEP_TESTS="tests/test_model.py -k 'reference_order or from_json or odd_batch or z_loss or generator_phase or variants_step or options_build'"

spans() {  # file [function...]: "start-end" line ranges of those functions (all if none named)
    "$PY" - "$@" <<'PY'
import ast
import sys
path, want = sys.argv[1], set(sys.argv[2:])
funcs = [n for n in ast.walk(ast.parse(open(path).read())) if isinstance(n, ast.FunctionDef)]
found = [n for n in funcs if not want or n.name in want]
if want and {n.name for n in found} != want:
    sys.exit(f"{path}: functions {sorted(want - {n.name for n in found})} not found")
print(", ".join(f'"{n.lineno}-{n.end_lineno}"' for n in found))
PY
}

run() {  # name module test-command function...
    local name=$1 module=$2 tests=$3
    shift 3
    cat > "$OUT/$name.toml" <<TOML
[cosmic-ray]
module-path = "$module"
timeout = 600.0
excluded-modules = []
test-command = "$tests"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.line-filter]
lines = { "$module" = [$(spans "$module" "$@")] }

# Bitwise, shift, modulo and floor-division stand-ins for float arithmetic: on float tensors they
# raise at once, so they would only lengthen the run (see docs/mutation-engine.md).
[cosmic-ray.filters.operators-filter]
exclude-operators = ["core/ReplaceBinaryOperator_.*_(BitOr|BitAnd|BitXor|LShift|RShift|FloorDiv|Mod)$"]
TOML
    if [[ ${RESUME:-0} != 1 || ! -f $OUT/$name.sqlite ]]; then
        rm -f "$OUT/$name.sqlite"
        "$BIN/cosmic-ray" init "$OUT/$name.toml" "$OUT/$name.sqlite"
        "$BIN/cr-filter-lines" --config "$OUT/$name.toml" "$OUT/$name.sqlite"
        "$BIN/cr-filter-operators" "$OUT/$name.sqlite" "$OUT/$name.toml"
        "$BIN/cosmic-ray" baseline "$OUT/$name.toml"
    fi
    "$BIN/cosmic-ray" exec "$OUT/$name.toml" "$OUT/$name.sqlite"  # runs the mutants still pending
    "$BIN/cr-report" --show-pending "$OUT/$name.sqlite" > "$OUT/$name.report.txt" || true
    tail -n 4 "$OUT/$name.report.txt"
}

if [[ $which != model ]]; then
    run losses engine/losses.py "$PYTEST tests/test_losses.py $STEP_TESTS"
fi
if [[ $which != losses ]]; then
    run model engine/model.py "$PYTEST $STEP_TESTS" _frozen_call _generator_losses _discriminator_losses train_step
fi
