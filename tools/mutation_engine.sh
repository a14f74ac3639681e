#!/usr/bin/env bash
# Mutation testing of the engine with cosmic-ray (results and survivors: docs/mutation-engine.md).
#   objective:   engine/losses.py whole, and the training step of engine/model.py (_frozen_call,
#                _generator_losses, _discriminator_losses, train_step);
#   reliability: engine/checkpoint.py whole, and the functions of engine/io.py, engine/config.py
#                and engine/presets.py (not their module-level constants and dataclass defaults).
# Line ranges of functions are found with ast at each run, so edits elsewhere do not matter.
#
#   tools/mutation_engine.sh [TARGET...]    targets: losses model checkpoint io config presets,
#                                           objective (losses model), reliability (the other four),
#                                           all (default); from any folder
#   RESUME=1 tools/mutation_engine.sh model         (go on with an interrupted session)
#
# cosmic-ray writes each mutant into the source file itself and runs the tests: do not use this
# worktree for anything else while it runs. It refuses to start with uncommitted changes in the
# files of its targets and restores them from git when it ends, however it ends. Sessions and
# reports go to build/mutation-engine/.
#
# The objective's mutants each run pytest in a fresh interpreter (35-40 s, most of it importing
# torch). The reliability targets use the fork server of tools/mutation_pipelines.py instead: it
# imports torch once and forks a child per mutant that imports bicyclegan afresh (the mutated
# file) and runs pytest.main; and they keep, as that runner does, each binary and comparison
# operator's nearest alternatives only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=build/mutation-engine
targets=()
for t in "${@:-all}"; do
    case $t in
        losses|model|checkpoint|io|config|presets) targets+=("$t") ;;
        objective) targets+=(losses model) ;;
        reliability) targets+=(checkpoint io config presets) ;;
        all) targets+=(losses model checkpoint io config presets) ;;
        *) echo "usage: $0 [losses|model|checkpoint|io|config|presets|objective|reliability|all]..." >&2; exit 2 ;;
    esac
done
wants() { [[ " ${targets[*]} " == *" $1 "* ]]; }
FILES=()
for t in losses model checkpoint io config presets; do wants "$t" && FILES+=("engine/$t.py"); done

if ! git diff --quiet HEAD -- "${FILES[@]}"; then
    echo "$0: ${FILES[*]} have uncommitted changes; commit or stash them first (mutants are written there)" >&2
    exit 1
fi
server=
cleanup() {
    [[ -z $server ]] || kill "$server" 2>/dev/null || true
    git checkout -q HEAD -- "${FILES[@]}"
}
trap cleanup EXIT
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

toml() {  # name module timeout test-command: the session's settings both kinds of run share
    cat > "$OUT/$1.toml" <<TOML
[cosmic-ray]
module-path = "$2"
timeout = $3
excluded-modules = []
test-command = "$4"

[cosmic-ray.distributor]
name = "local"
TOML
}

session() {  # name select-command...: a new session unless RESUMEd, mutants chosen, the pending ones run
    local name=$1
    shift
    if [[ ${RESUME:-0} != 1 || ! -f $OUT/$name.sqlite ]]; then
        rm -f "$OUT/$name.sqlite"
        "$BIN/cosmic-ray" init "$OUT/$name.toml" "$OUT/$name.sqlite"
        "$@"
        "$BIN/cosmic-ray" baseline "$OUT/$name.toml"
    fi
    "$BIN/cosmic-ray" exec "$OUT/$name.toml" "$OUT/$name.sqlite"  # runs the mutants still pending
}

run() {  # name module test-command function...
    local name=$1 module=$2 tests=$3
    shift 3
    toml "$name" "$module" 600.0 "$tests"
    cat >> "$OUT/$name.toml" <<TOML

[cosmic-ray.filters.line-filter]
lines = { "$module" = [$(spans "$module" "$@")] }

# Bitwise, shift, modulo and floor-division stand-ins for float arithmetic: on float tensors they
# raise at once, so they would only lengthen the run (see docs/mutation-engine.md).
[cosmic-ray.filters.operators-filter]
exclude-operators = ["core/ReplaceBinaryOperator_.*_(BitOr|BitAnd|BitXor|LShift|RShift|FloorDiv|Mod)$"]
TOML
    session "$name" filter_session "$name"
    "$BIN/cr-report" --show-pending "$OUT/$name.sqlite" > "$OUT/$name.report.txt" || true
    tail -n 4 "$OUT/$name.report.txt"
}

filter_session() {  # name: cosmic-ray's own line and operator filters, as the TOML says
    "$BIN/cr-filter-lines" --config "$OUT/$1.toml" "$OUT/$1.sqlite"
    "$BIN/cr-filter-operators" "$OUT/$1.sqlite" "$OUT/$1.toml"
}

if wants losses; then
    run losses engine/losses.py "$PYTEST tests/test_losses.py $STEP_TESTS"
fi
if wants model; then
    run model engine/model.py "$PYTEST $STEP_TESTS" _frozen_call _generator_losses _discriminator_losses train_step
fi

# -- the reliability targets: fork server, nearest operators, the tests of each module -------------
SOCK=$PWD/$OUT/server.sock
FORKED="$PY tools/mutation_pipelines.py --client $SOCK -x -q -p no:cacheprovider -W ignore"
# Each module's tests, the fast unit tests first (-x stops at the first failure).
CHECKPOINT_TESTS="tests/test_reliability.py tests/test_trainer.py tests/test_workflow.py -k 'not io_ and not cli_rejects and not out_of_range and not internal_error and not skip_bad'"
IO_TESTS="tests/test_reliability.py tests/test_trainer.py -k 'io_ or write or disk or temp or unwritable or payload or garbage or corrupt or truncated or flipped or missing_a_part or damaged or not_bicyclegan'"
CONFIG_TESTS="tests/test_config.py tests/test_reliability.py tests/test_trainer.py tests/test_workflow.py -k 'test_config or out_of_range or cli_ or preset or test_script or stored_config or resuming or fine_tuning'"
PRESETS_TESTS="tests/test_config.py tests/test_trainer.py tests/test_workflow.py -k 'preset or options_win or demo_loads or test_script or cli_presets'"

start_server() {
    [[ -z $server ]] || return 0
    rm -f "$SOCK"
    PYTHONDONTWRITEBYTECODE=1 "$PY" tools/mutation_pipelines.py --serve "$SOCK" --timeout 300 &
    server=$!
    while [[ ! -S $SOCK ]]; do sleep 0.2; done
}

select_mutants() {  # session file [function...]: skip other operators, annotations, lines outside the functions
    "$PY" - "$@" <<'PY'
import ast
import sys

sys.path.insert(0, "tools")
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult
from mutation_pipelines import function_lines, kept_operator

session, path, *names = sys.argv[1:]
inside = function_lines(path, names or None)  # every function of the file when none is named
# `str | None` -> `str & None` in an annotation: never evaluated (from __future__ import annotations).
tree = ast.parse(open(path).read())
notes = [n.returns for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
notes += [n.annotation for n in ast.walk(tree) if isinstance(n, (ast.arg, ast.AnnAssign))]
spans = [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in notes if a is not None]
with use_db(session, WorkDB.Mode.open) as db:
    for item in list(db.pending_work_items):
        (m,) = item.mutations
        reason = ("operator not in the kept set" if not kept_operator(m.operator_name) else
                  "in a type annotation" if any(s <= tuple(m.start_pos) < e for s, e in spans) else
                  None if m.start_pos[0] in inside else "outside the functions under test")
        if reason:
            db.set_result(item.job_id, WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED))
PY
}

run_forked() {  # name module tests [function...]
    local name=$1 module=$2 tests=$3
    shift 3
    toml "$name" "$module" 300.0 "$FORKED $tests"
    start_server
    session "$name" select_mutants "$OUT/$name.sqlite" "$module" "$@"
    "$PY" -c "import sys; sys.path.insert(0, 'tools'); from pathlib import Path; from mutation_pipelines import report
print(report('$OUT/$name.sqlite', Path('.'), '$module', '$name'))" | tee "$OUT/$name.report.txt" | head -n 1
}

if wants checkpoint; then run_forked checkpoint engine/checkpoint.py "$CHECKPOINT_TESTS"; fi
if wants io; then run_forked io engine/io.py "$IO_TESTS"; fi
if wants config; then run_forked config engine/config.py "$CONFIG_TESTS"; fi
if wants presets; then run_forked presets engine/presets.py "$PRESETS_TESTS"; fi
