"""Compile every Triton launch of bicyclegan.kernels for a GPU that this machine does not have.

    python tools/compile_check.py [--arch 90] [--sms 132] [--parts tuner,ops,step] [--json FILE]

Why: tests run the kernels on the CPU in Triton's interpreter, which accepts code that the GPU
compiler refuses and cannot show what only the compiled binary shows (registers, spills, shared
memory). This runs the real launchers with a stand-in driver that compiles each launch for
sm_<arch> with Triton's compiler and the ptxas shipped in its wheel, instead of running it:

- tuner: every candidate configuration `python -m bicyclegan.kernels.tune` tries at the reference
  networks' shapes (batch 2 and 16, fp32 and bf16, NCHW and channels_last; the norm in each kernel
  variant, activation and saved tensor, the networks launch at that shape, the fused concatenation
  in the activation of its level): every launch a tuning table can select;
- ops: the public ops over every activation, affine or not, fp32 / bf16 / fp16, both memory
  formats, the single-pass, looped and split norm plans, forward and backward (the norm's also
  with dy a channel slice, read through its own strides);
- step: BicycleGAN training steps with impl=triton (small widths): fp32 and bf16 autocast, both
  memory formats, z at the input and at every block, relu / lrelu / elu decoders.

The launch heuristics assume --sms SMs (132: H100 SXM, H200), as they would on the device. Nothing
runs, so every kernel output is garbage: only which launches happen matters. Exit 1 when a launch
does not compile, a binary spills registers (more than STACK_OK bytes of stack or local memory), or
it would not fit an SM (shared memory over the architecture's per-block limit, or registers x
threads over the 64K register file).
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # compiled, not interpreted: before triton is imported

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

# Largest dynamic shared memory one block may use (cudaDevAttrMaxSharedMemoryPerBlockOptin), bytes.
SMEM_PER_BLOCK = {80: 166912, 86: 101376, 89: 101376, 90: 232448, 100: 232448, 120: 101376}
REGISTER_FILE = 65536  # 32-bit registers per SM on every architecture listed above
# A few bytes of stack come from ptxas's register allocator under the options Triton passes it
# (seen: 8 to 16 bytes at 64 to 168 registers, far below the cap); a spilled tile is hundreds.
STACK_OK = 64
PARTS = ("tuner", "ops", "step")


class StandInDriver:
    """What Triton asks of the active driver to compile a launch, answered for a GPU that is not here."""

    def __init__(self, arch):
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def is_active(self):
        return True


class Recorder:
    """Patched into JITFunction.run: compiles the launch (warmup=True: no launch) and keeps the binary."""

    def __init__(self):
        self.part = None
        self.binaries = {}  # hash -> CompiledKernel
        self.parts_of = collections.defaultdict(set)  # hash -> parts that launched it
        self.launches = collections.Counter()  # part -> launches
        self.failures = []

    def install(self):
        original = JITFunction.run
        recorder = self

        def run(jit, *args, grid, warmup, **kwargs):
            recorder.launches[recorder.part] += 1
            try:
                kernel = original(jit, *args, grid=grid, warmup=True, **kwargs)
            except Exception as e:  # keep going: the launcher goes on as if the kernel had run
                consts = {k: v for k, v in kwargs.items() if k.isupper() or k == "num_warps"}
                last = (str(e).strip().splitlines() or [""])[-1][:300]  # a compile error's message ends it
                recorder.failures.append({"part": recorder.part, "kernel": jit.fn.__name__, "constexprs": consts,
                                          "error": f"{type(e).__name__}: {last}"})
                return None
            if hasattr(kernel, "result"):  # an asynchronous compile's future
                kernel = kernel.result()
            recorder.binaries[kernel.hash] = kernel
            recorder.parts_of[kernel.hash].add(recorder.part)
            return kernel

        JITFunction.run = run


def _tool(name):
    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    if not path.is_file():
        raise SystemExit(f"compile_check: {path} not found: this Triton wheel carries no NVIDIA tools")
    return str(path)


def resources(kernel, cuobjdump):
    """{regs, stack, local, shared, num_warps} of one binary, from cuobjdump's resource usage."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        text = subprocess.run([cuobjdump, "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    usage = dict((k, int(v)) for k, v in re.findall(r"\b(REG|STACK|LOCAL|SHARED):(\d+)", text))
    if "REG" not in usage:
        raise RuntimeError(f"compile_check: no resource usage for {kernel.name} in cuobjdump's output:\n{text}")
    # Triton's shared memory is dynamic, requested at launch (metadata.shared): that is what the
    # per-block limit applies to. (cuobjdump's SHARED is the 1 KB the system reserves per block.)
    return {"regs": usage["REG"], "stack": usage.get("STACK", 0), "local": usage.get("LOCAL", 0),
            "shared": int(kernel.metadata.shared),
            "num_warps": int(kernel.metadata.num_warps)}


# ---------------------------------------------------------------------------------------------
# What gets launched

def drive_tuner(log, quick):
    from bicyclegan.kernels import tune
    cpu = torch.device("cpu")
    specs = tune.cases(quick=False)
    seen = set()
    for i, spec in enumerate(specs):
        case = tune.Case(spec, cpu, quick=False)
        for knobs in case.candidates:
            sig = case.signature(knobs)
            if sig not in seen:  # the same binary again: Triton's cache, nothing new to learn
                seen.add(sig)
                case.run(knobs)
        if (i + 1) % 50 == 0 or i + 1 == len(specs):
            log(f"  tuner: {i + 1}/{len(specs)} cases")


def drive_ops(log, quick):
    from bicyclegan.kernels import ACTS, instance_norm_act, z_concat_act, z_concat_conv
    # single pass (the plane fits a tile), looped (enough programs without splitting the plane),
    # split (few programs: the plane is cut into ranges); odd sizes for masked tiles.
    norm_shapes = [(2, 8, 16, 16), (16, 64, 128, 128), (2, 3, 256, 256), (3, 5, 7, 9)]
    z_shapes = [(2, 8, 16, 16, 8, 16), (16, 64, 64, 64, 8, 128), (3, 5, 7, 9, 3, 6)]  # N, C, H, W, nz, CO
    n = 0
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for cl in (False, True):
            fmt = torch.channels_last if cl else torch.contiguous_format
            for act in ACTS:
                for shape in norm_shapes:
                    for affine in (False, True):
                        x = torch.empty(shape, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
                        wb = [torch.empty(shape[1], dtype=dtype, requires_grad=True) if affine else None
                              for _ in range(2)]
                        y = instance_norm_act(x, act, 0.2, 1e-5, *wb, impl="triton")
                        y.backward(torch.empty_like(y))
                        n += 1
                    # dy read through its own strides: a channel slice of a torch.cat's gradient (the U-Net's)
                    N, C, H, W = shape
                    y = instance_norm_act(x, act, 0.2, 1e-5, impl="triton")
                    y.backward(torch.empty(N, C + 3, H, W, dtype=dtype).contiguous(memory_format=fmt)[:, 1:C + 1])
                for N, C, H, W, nz, CO in z_shapes:
                    x = torch.empty(N, C, H, W, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
                    z = torch.empty(N, nz, dtype=dtype, requires_grad=True)
                    y = z_concat_act(x, z, act, 0.2, impl="triton")
                    y.backward(torch.empty_like(y))
                    for bias in (False, True):
                        w = torch.empty(CO, C + nz, 4, 4, dtype=dtype, requires_grad=True)
                        b = torch.empty(CO, dtype=dtype, requires_grad=True) if bias else None
                        y = z_concat_conv(x, z, w, b, 2, 1, act, 0.2, impl="triton")
                        y.backward(torch.empty_like(y))
                    n += 1
        log(f"  ops: {dtype} done ({n} op calls so far)")


def drive_step(log, quick):
    from bicyclegan.engine import make_config
    from bicyclegan.engine.model import BicycleGAN
    from bicyclegan.pipelines.errors import plural
    n = 0
    for amp in ("off", "bf16"):
        for cl in (False, True) if not quick else (amp == "bf16",):
            variants = (("all", "relu"), ("input", "relu"), ("all", "lrelu"), ("all", "elu"))
            for where_add, nl in variants[:1] if quick else variants:
                cfg = make_config("reference", netG="unet", crop_size=64, load_size=64, ngf=8, nef=8, ndf=8,
                                  netE="resnet_128", netD="basic_128_multi", netD2="basic_128_multi",
                                  impl="triton", amp=amp, channels_last=cl, where_add=where_add, nl=nl,
                                  use_dropout=nl == "elu")
                torch.manual_seed(0)
                model = BicycleGAN(cfg, device="cpu")
                batch = {"A": torch.rand(4, 3, 64, 64) * 2 - 1, "B": torch.rand(4, 3, 64, 64) * 2 - 1}
                model.train_step(batch)
                with torch.no_grad():  # inference: encode and generate
                    model.generate(batch["A"], model.encode(batch["B"]))
                n += 1
        log(f"  step: amp {amp} done ({plural(n, 'step')} so far)")


DRIVERS = {"tuner": drive_tuner, "ops": drive_ops, "step": drive_step}


def setup(arch, sms):
    """The stand-in driver for sm_<arch>, the Triton path for CPU tensors, heuristics planning for
    `sms` SMs; returns the Recorder that now receives every launch."""
    from bicyclegan.kernels import _impl, _triton_common
    _impl.interpreting = lambda: True  # the Triton path for CPU tensors (which never run)
    _triton_common.SM_COUNT = sms
    driver.set_active(StandInDriver(arch))
    rec = Recorder()
    rec.install()
    return rec


def inspect(rec, arch):
    """(one row of resources per binary, the problems: spills, or too large to launch)."""
    cuobjdump = _tool("cuobjdump")
    limit_smem = SMEM_PER_BLOCK[arch]
    rows, problems = [], []
    for h, kernel in rec.binaries.items():
        r = resources(kernel, cuobjdump)
        r.update(kernel=kernel.name, hash=h, parts=sorted(rec.parts_of[h]))
        rows.append(r)
        why = []
        if r["local"] > STACK_OK or r["stack"] > STACK_OK:
            why.append(f"spills ({r['local']} bytes local, {r['stack']} stack)")
        if r["shared"] > limit_smem:
            why.append(f"{r['shared']} bytes of shared memory (limit {limit_smem})")
        if r["regs"] * r["num_warps"] * 32 > REGISTER_FILE:
            why.append(f"{r['regs']} registers x {r['num_warps'] * 32} threads > {REGISTER_FILE}")
        if why:
            problems.append(f"{kernel.name} ({', '.join(r['parts'])}, {r['num_warps']} warps): {'; '.join(why)}")
    return rows, problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", type=int, default=90, choices=sorted(SMEM_PER_BLOCK),
                   help="compute capability x 10 to compile for (default 90: H100, H200)")
    p.add_argument("--sms", type=int, default=132, help="SMs the launch heuristics assume (default 132)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--quick", action="store_true",
                   help="step part: fp32 and bf16 in one configuration each (what a test can afford)")
    p.add_argument("--json", type=Path, help="write every binary's resources and every failure here")
    args = p.parse_args(argv)
    parts = [s for s in args.parts.split(",") if s]
    unknown = [s for s in parts if s not in PARTS]
    if unknown or not parts:
        p.error(f"--parts: expected some of {', '.join(PARTS)}, got {args.parts!r}")

    rec = setup(args.arch, args.sms)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"compile_check: sm_{args.arch}, {args.sms} SMs, torch {torch.__version__}, triton {triton.__version__}")
    for part in parts:
        t0 = time.perf_counter()
        rec.part = part
        DRIVERS[part](log, args.quick)
        log(f"{part}: {rec.launches[part]} launches, {sum(part in s for s in rec.parts_of.values())} distinct "
            f"binaries, {time.perf_counter() - t0:.0f} s")
    rows, problems = inspect(rec, args.arch)

    by_kernel = collections.defaultdict(list)
    for r in rows:
        by_kernel[r["kernel"]].append(r)
    log(f"\n{'kernel':<24} {'binaries':>8} {'regs (max)':>10} {'shared B (max)':>14} {'stack B (max)':>13} "
        f"{'warps':>11}")
    for name in sorted(by_kernel):
        rs = by_kernel[name]
        warps = sorted({r["num_warps"] for r in rs})
        log(f"{name:<24} {len(rs):>8} {max(r['regs'] for r in rs):>10} {max(r['shared'] for r in rs):>14} "
            f"{max(max(r['stack'], r['local']) for r in rs):>13} {','.join(map(str, warps)):>11}")
    log(f"\n{len(rows)} binaries for sm_{args.arch} from {sum(rec.launches.values())} launches; "
        f"{len(rec.failures)} launches failed to compile; {len(problems)} binaries spill more than {STACK_OK} bytes "
        f"or do not fit")
    for f in rec.failures[:20]:
        log(f"  FAILED {f['part']}: {f['kernel']} {f['constexprs']}: {f['error']}")
    for s in problems[:20]:
        log(f"  PROBLEM {s}")
    if args.json:
        args.json.write_text(json.dumps({
            "arch": args.arch, "sms": args.sms, "torch": torch.__version__, "triton": triton.__version__,
            "launches": dict(rec.launches), "binaries": sorted(rows, key=lambda r: (r["kernel"], r["hash"])),
            "failures": rec.failures, "problems": problems}, indent=1))
    return 1 if rec.failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
