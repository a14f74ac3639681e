"""tools/compile_check.py: the kernels compile for an H100/H200 (sm_90) on a machine without a GPU,
and the check catches a launch that does not compile or spills.

Subprocesses: the check must import Triton without TRITON_INTERPRET, which this test session sets.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "compile_check.py"

triton = pytest.importorskip("triton")
if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump").is_file():
    pytest.skip("this Triton wheel carries no NVIDIA tools (ptxas, cuobjdump)", allow_module_level=True)


def _run(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)


def test_the_training_steps_kernels_compile_for_sm90(tmp_path):
    out = tmp_path / "check.json"
    r = _run([str(TOOL), "--parts", "step", "--quick", "--json", str(out)], tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["arch"] == 90 and data["failures"] == [] and data["problems"] == []
    kernels = {b["kernel"] for b in data["binaries"]}
    # A bf16 step with z at every block launches the norm kernels (one pass and split, forward and
    # backward), the concatenation-free z conv's four kernels and the bf16 activation casts.
    assert {"_fwd_kernel", "_bwd_kernel", "_fwd_partial_kernel", "_fwd_apply_kernel", "_bwd_partial_kernel",
            "_bwd_apply_kernel", "_zq_kernel", "_zterm_add_kernel", "_zterm_grad_kernel", "_zfinal_kernel",
            "_act_cast_kernel", "_act_grad_kernel"} <= kernels
    assert data["launches"]["step"] > len(data["binaries"]) > 50
    for b in data["binaries"]:
        assert 0 < b["regs"] <= 255 and b["num_warps"] in (1, 2, 4, 8, 16), b
    assert "binaries for sm_90" in r.stdout and "0 launches failed to compile" in r.stdout


def test_a_launch_that_does_not_compile_or_spills_is_reported(tmp_path):
    script = tmp_path / "toy.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TOOL.parent)!r})
        import compile_check as cc
        import torch
        import triton
        import triton.language as tl

        rec = cc.setup(90, 132)
        rec.part = "toy"

        @triton.jit
        def good(x_ptr, y_ptr, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            tl.store(y_ptr + offs, tl.load(x_ptr + offs) * 2)

        @triton.jit
        def broken(x_ptr, y_ptr, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            tl.store(y_ptr + offs, tl.load(x_ptr + offs) * not_defined_anywhere)

        @triton.jit
        def spills(x_ptr, y_ptr, BLOCK: tl.constexpr):
            # every value stays live across the reduction: BLOCK / 32 registers a thread with one warp
            offs = tl.arange(0, BLOCK)
            x = tl.load(x_ptr + offs)
            tl.store(y_ptr + offs, x * tl.sum(x, axis=0))

        x = torch.empty(16384)
        good[(1,)](x, x, BLOCK=128)
        broken[(1,)](x, x, BLOCK=128)
        spills[(1,)](x, x, BLOCK=16384, num_warps=1)
        rows, problems = cc.inspect(rec, 90)
        print("FAILED", [f["kernel"] for f in rec.failures])
        print("ROWS", sorted(r["kernel"] for r in rows))
        print("PROBLEMS", problems)
    """))
    r = _run([str(script)], tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.split(" ")[0].isupper())
    assert lines["FAILED"] == "['broken']"
    assert lines["ROWS"] == "['good', 'spills']"
    problems = eval(lines["PROBLEMS"])
    assert len(problems) == 1 and problems[0].startswith("spills (toy, 1 warps): spills"), problems
