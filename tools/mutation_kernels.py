"""Hand-written mutants of the kernels' launch choices that the first pass (docs/mutation-kernels.md,
whose 66 mutants were run by hand and are listed there) did not have: the fused concatenation's
tuning keys naming its activation (table format 3), in kernels/_configs.py, the launcher and the
tuner's cases.

The runner is tools/mutation_loop.py's (one replacement per mutant, written into the source, the
selected tests run with `pytest -x` in a fresh interpreter, in Triton's interpreter; the file
restored from git; it refuses to start with uncommitted changes in the files it mutates):

    .venv/bin/python tools/mutation_kernels.py            # every mutant (a few minutes on 2 cores)
    .venv/bin/python tools/mutation_kernels.py G07 Z36    # some of them

One JSON line per mutant goes to build/mutation-kernels/results.jsonl; exit status 1 when a mutant
survived (the equivalent ones aside), no longer matches, or ended pytest otherwise than passed or
failed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_loop import run  # noqa: E402  (the one runner every list uses)

CF, ZT, TU = "kernels/_configs.py", "kernels/zinject_triton.py", "kernels/tune.py"
TUNE = ["tests/test_kernel_tune.py"]
# Survivors that no test can kill (docs/mutation-kernels.md says why): not counted against the run.
EQUIVALENT: set[str] = set()
SKIP = ""

# (id, file, original text, mutant text, tests); ids go on from docs/mutation-kernels.md's table
MUTANTS = [
    ('G07', CF, 'VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd", "zcat.bwd")})\n',
     '', TUNE),
    ('G08', CF, 'VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd", "zcat.bwd")})',
     'VARIANTS.update({site: set(ACTS) for site in ("zcat.fwd",)})', TUNE),
    ('G09', CF, 'FORMAT = 3',
     'FORMAT = 2', TUNE),
    ('G10', CF, '_UNNAMED[old]',
     '_UNNAMED[1]', TUNE),
    ('Z36', ZT, 'lambda: _zcat_heuristic(H * W, C + nz, channels_last), act)',
     'lambda: _zcat_heuristic(H * W, C + nz, channels_last), "leaky_relu")', TUNE),
    ('K04', TU, '"none" if i == 0 else "leaky_relu"))',
     '"leaky_relu"))', TUNE),
    ('K05', TU, 'channels_last, c[5]) for c in zconvs]',
     'channels_last, "leaky_relu") for c in zconvs]', TUNE),
]

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], MUTANTS, EQUIVALENT, SKIP, "mutation-kernels"))
