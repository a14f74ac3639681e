"""The hand-written mutant tables of tools/mutation_*.py still match the sources they mutate.

Each mutant is a textual replacement that must match its file exactly once; a source change that
moves the text makes the (long, not-in-CI) mutation run fail on it. Checked here, where it costs
nothing, so the tables are mended in the change that breaks them.
"""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["mutation_loop", "mutation_commands", "mutation_metrics", "mutation_kernels", "mutation_compare",
           "mutation_fixes"]


def _mutants(name):
    spec = importlib.util.spec_from_file_location(f"_tables_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS, module.EQUIVALENT


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_mutant_matches_its_source_once_and_ids_are_unique(name):
    mutants, equivalent = _mutants(name)
    ids = [m[0] for m in mutants]
    assert len(ids) == len(set(ids)), f"{name}: duplicate ids"
    assert set(equivalent) <= set(ids), f"{name}: equivalent ids not in the table: {set(equivalent) - set(ids)}"
    stale = []
    for mid, rel, original, mutant, tests in mutants:
        n = (ROOT / rel).read_text().count(original)
        if n != 1:
            stale.append(f"{mid} ({rel}): matches {n} times")
        assert original != mutant, mid
        assert all((ROOT / t.split("::")[0]).is_file() for t in tests), mid
    assert not stale, f"tools/{name}.py: " + "; ".join(stale)
