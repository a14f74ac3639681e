"""Choose the kernels' launch configurations on the device they run on.

    python -m bicyclegan.kernels.tune --out FILE.json [--quick] [--dry-run] [--jobs N] [--budget-s S]
                                      [--sites pool,norm_act.bwd,...]
    python -m bicyclegan.kernels.tune --out TABLE.json --merge NEW.json   # NEW's entries into TABLE

For every launch the reference networks make at 256 x 256 px (in training steps of batch 2 and 16, each
network at the batch sizes it runs at there: network_batches; every InstanceNorm +
activation plane of G unet_256, E resnet_256 and D basic_256_multi, with the activation each layer
there has, which with what its backward saved is the kernel variant timed; the z injection of G
with where_add=all, the fused concatenation in the activation of its level; the multi-scale D's
average pooling; forward and backward; fp32 and bf16; NCHW and channels_last), each launch site's few
candidate configurations (kernel files' `candidates` functions, the heuristic's first) are checked
against a plain PyTorch computation of what that launch must produce and, if right, timed on the
GPU (CUDA-graph replays of back-to-back launches: the kernels' own time). The winners go to
FILE.json: device name, torch and Triton versions, and per launch key the config, its time and the
heuristic's. The kernels read such a table from kernels/tuning/<device>.json or from
$BICYCLEGAN_KERNEL_TUNING (see _configs.py).

The candidates are timed interleaved (the same number of launches a sample for all), and the best
replaces the heuristic only if, timed again head to head with it, it is faster by more than NOISE and
more than the samples' spread. Compiling the candidates is
most of the cost on a fresh machine, so --jobs worker processes compile them first (Triton's disk
cache hands the binaries to the timing process). The sweep stops after --budget-s seconds and
writes what it has (the table is rewritten after every key, so even a killed run leaves one).
--dry-run runs every path on the CPU in Triton's interpreter on tiny shapes, timing each candidate
once with the host clock (meaningless numbers), so a test can run it before any GPU call.
"""
import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

NOISE = 0.02
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# The activation the z-term cases compute Q with (their kernels take none: see _configs.VARIANTS),
# the LeakyReLU slope and the norm's eps; the norm's and the fused concatenation's activations come
# with each plane and z conv.
ACT, SLOPE, EPS = "leaky_relu", 0.2, 1e-5
TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


# ---------------------------------------------------------------------------------------------
# What the reference networks launch

# The reference's networks as its train.py builds them by default: edges2shoes' 256 x 256 images, the
# widths, z's width, two discriminators, RGB inputs, G's decoder activation (its nl).
SIZE, NGF, NEF, NDF, NZ, NUM_DS, INPUT_NC, DECODER_ACT = 256, 64, 64, 64, 8, 2, 3, "relu"


def reference_shapes():
    """(norm planes, z convs) of the reference's G unet_256 (where_add=all, decoder_act its nl), E
    resnet_256 and D basic_256_multi at SIZE x SIZE, with their default widths (the constants above). norm
    planes: sorted distinct (net, C, H, W, act) of every InstanceNorm + activation, net "G", "E" or "D" (none
    has affine parameters, so LeakyReLU's backward works from y and the others' from x); z convs: (C, H, W,
    nz, CO, act) of every concatenate-z-activate-conv4x4s2 block of G (x's shape, z's width, output channels,
    the activation: none at the outermost level, LeakyReLU at the others)."""
    planes, zconvs = set(), []
    depth = int(math.log2(SIZE))
    ch = [NGF * min(2 ** i, 8) for i in range(depth)]
    for i in range(depth):  # U-Net level i: input at SIZE / 2^i, down conv to ch[i]
        s = SIZE >> i
        zconvs.append((INPUT_NC if i == 0 else ch[i - 1], s, s, NZ, ch[i], "none" if i == 0 else "leaky_relu"))
        if 0 < i < depth - 1:
            planes.add(("G", ch[i], s // 2, s // 2, "none"))   # norm after the down conv (no activation)
        if i > 0:
            planes.add(("G", ch[i - 1], s, s, DECODER_ACT))  # norm + act after the up conv
    for n in range(1, 5):  # E: four residual blocks, each norm + act twice at its input size
        planes.add(("E", NEF * min(4, n), SIZE >> n, SIZE >> n, "leaky_relu"))
    for k in range(NUM_DS):  # D: one PatchGAN per scale, the input average-pooled k times
        width, s = round(NDF / 2 ** k), SIZE >> (k + 1)
        for n in (1, 2, 3):
            s = s // 2 if n < 3 else s - 1  # stride 2, 2, then 1 (4x4 kernel, padding 1)
            planes.add(("D", width * min(2 ** n, 8), s, s, "leaky_relu"))
    return sorted(planes), zconvs


# The multi-scale discriminators' downsampling: AvgPool2d(3, stride 2, padding 1), padding not counted.
POOL = (3, 3, 2, 2, 1, 1)


def reference_pools():
    """(C, H, W) of every input the reference's multi-scale D (basic_256_multi, unconditional)
    average-pools: the image before each coarser scale."""
    return [(INPUT_NC, SIZE >> k, SIZE >> k) for k in range(NUM_DS - 1)]


def site_filter(text):
    """The sites a --sites value names: comma-separated sites (norm_act.bwd) or kernels (pool: both
    of its sites); ValueError naming what exists otherwise."""
    from . import _configs
    names = [t.strip() for t in text.split(",") if t.strip()]
    kernels = sorted({site.split(".")[0] for site in _configs.SITES})
    bad = [n for n in names if n not in _configs.SITES and n not in kernels]
    if bad or not names:
        raise ValueError(f"--sites {text!r}: expected sites ({', '.join(_configs.SITES)}) or kernels "
                         f"({', '.join(kernels)}), comma-separated")
    return {site for site in _configs.SITES if site in names or site.split(".")[0] in names}


# The training batches tuned for: the reference's 2 and the ladder's 16 (bench/bench_train_step.py).
TRAIN_BATCHES = (2, 16)


def network_batches(train_batches=TRAIN_BATCHES):
    """{"G", "E", "D": the batch sizes that network launches at} for these training batches, by the bicycle
    step's rule (engine/model.py generator_losses): a batch splits in half, E and the Ds (their pooling too) run
    on a half, G on both halves' codes at once (a whole batch: the reference's two codes, no mode-seeking term)
    while a half is at most ONE_G_CALL_MAX, else twice on a half."""
    halves = sorted({b // 2 for b in train_batches})
    return {"G": sorted({2 * h if h <= ONE_G_CALL_MAX else h for h in halves}), "E": halves, "D": halves}


# BicycleGAN.ONE_G_CALL_MAX's value: the kernels import nothing of the engine (usable alone by other GAN code);
# test_each_network_is_tuned_at_the_batch_sizes_a_training_step_launches_it_at holds the two together.
ONE_G_CALL_MAX = 4


def tuned_sites(quick=False, sites_wanted=None):
    """The launch sites a sweep tunes: all but the fused concatenation's with quick; sites_wanted: only these
    (a set; site_filter's)."""
    sites = (["norm_act.fwd", "norm_act.bwd", "zterm.add", "zterm.grad", "pool.fwd", "pool.bwd"]
             + ([] if quick else ["zcat.fwd", "zcat.bwd"]))
    return [site for site in sites if sites_wanted is None or site in sites_wanted]


def cases(quick=False, dry_run=False, sites_wanted=None):
    """Case specs (site, shape, dtype name, channels_last, act), most used first; act: the norm's
    or the fused concatenation's activation, the one the networks launch at that shape (None for
    the z term's sites, whose kernels take none). Each network's launches at the batch sizes it runs
    at (network_batches). sites_wanted: only these (a set; site_filter's)."""
    if dry_run:  # tiny: still single-pass, looped and split plans, the networks' three norm variants
        # (LeakyReLU from y, ReLU and none from x), and z convs in both of G's activations, one a
        # 2 x 2 -> 1 x 1 conv
        planes = [("G", 3, 4, 4, "relu"), ("G", 3, 4, 4, "none"), ("D", 2, 33, 32, "leaky_relu")]
        zconvs, batches = [(3, 4, 6, 2, 5, "none"), (4, 2, 2, 2, 3, "leaky_relu")], {"G": (2,), "D": (2,)}
        pools = [(3, 9, 7)]
    else:
        (planes, zconvs), pools, batches = reference_shapes(), reference_pools(), network_batches()
    out = []
    for dtype in ("bfloat16", "float32"):
        for channels_last in (True, False):
            for site in tuned_sites(quick, sites_wanted):
                if site.startswith("norm_act"):  # (net, C, H, W, act), at that network's batches
                    out += [(site, (n, *plane[1:4]), dtype, channels_last, plane[4])
                            for plane in planes for n in batches[plane[0]]]
                elif site.startswith("pool"):  # the pooled input (C, H, W) and the window: D's
                    out += [(site, (n, *pool, *POOL), dtype, channels_last, None)
                            for pool in pools for n in batches["D"]]
                elif site.startswith("zcat"):  # x and z (C, H, W, nz), in the act of the conv's level: G's
                    out += [(site, (n, *c[:4]), dtype, channels_last, c[5]) for c in zconvs for n in batches["G"]]
                else:  # zterm: the whole conv (C, H, W, nz, CO): G's
                    out += [(site, (n, *c[:5]), dtype, channels_last, None) for c in zconvs for n in batches["G"]]
    return list(dict.fromkeys(out))  # (once each: E's and D's planes share shapes)


# ---------------------------------------------------------------------------------------------
# One case: the inputs of one launch, what it must produce, its candidates

def _layout(t, channels_last):
    # torch's own allocation in that format, as a conv's output has it: .contiguous() kept an N x C x 1 x 1
    # tensor's NCHW strides (channels_last too), a key of nchw where the networks' innermost z conv looks up cl.
    return torch.empty_like(t, memory_format=torch.channels_last if channels_last else torch.contiguous_format).copy_(t)


def _mismatch(got, want, dtype):
    """None if got matches want within the dtype's tolerance (scaled by want's magnitude), else why."""
    for g, w in zip(got, want):
        g, w = g.float(), w.float()
        scale = max(1.0, w.abs().max().item())
        err = (g - w).abs()
        bad = err > TOL[dtype] * scale + TOL[dtype] * w.abs()
        if g.shape != w.shape or bad.any() or not g.isfinite().all():
            return f"max abs error {err.max().item():.3g} (tolerance {TOL[dtype]} x {scale:.3g})"
    return None


class Case:
    """run(knobs) launches the site's kernels once; expected holds what run must return.
    plan_only: just the launch key and the candidates (inputs left uninitialised, nothing computed,
    no run): what the compile pass needs to share out the work, without drawing a billion numbers."""

    def __init__(self, spec, device, quick, plan_only=False):
        site, shape, dtype_name, channels_last, self.act = spec
        self.site, self.dtype, self.plan_only = site, DTYPES[dtype_name], plan_only
        # Drawn on the device: the host's generator would take tens of seconds for all the cases.
        g = torch.Generator(device=device).manual_seed(0)
        self.randn = ((lambda *s: torch.empty(*s, device=device)) if plan_only else
                      (lambda *s: torch.randn(*s, generator=g, device=device)))
        getattr(self, "_" + site.split(".")[0])(site, shape, channels_last, device, quick)

    def _norm_act(self, site, shape, channels_last, device, quick):
        from . import _configs
        from . import norm_act_triton as nat
        from .norm_act import instance_norm_act_ref
        act = self.act
        from_y = nat.saves_y(None, None, act, SLOPE)  # no affine: what the networks' norms have
        x32 = self.randn(*shape) * 2 + 3  # a non-zero mean, as after a conv
        x, fmt, strides = nat._layout(_layout(x32.to(self.dtype), channels_last))
        self.key = _configs.key(site, x.shape, x.dtype, fmt == torch.channels_last,
                                _configs.norm_variant(site, act, from_y))
        self.candidates = nat.candidates(x, self.key[3], quick)
        if self.plan_only:
            return
        xr = x.float().requires_grad_()
        y = instance_norm_act_ref(xr, act, SLOPE, EPS)
        if site == "norm_act.fwd":
            self.expected = (y.detach(),)
            self.run = lambda k: nat._forward(x, None, None, act, SLOPE, EPS, strides, nat._complete(x, k))[:1]
            return
        dy = _layout(self.randn(*shape).to(self.dtype), self.key[3])
        y.backward(dy.float())
        self.expected = (xr.grad,)
        var, mean = torch.var_mean(x.float(), dim=(2, 3), unbiased=False)
        rstd = (var + EPS).rsqrt()
        # What the op saves: y for LeakyReLU (FROM_Y, as the networks' D and E layers), else x.
        saved = _layout(y.detach().to(self.dtype), self.key[3]) if from_y else x
        self.run = lambda k: nat._backward(dy, saved, None, None, mean, rstd, act, SLOPE, from_y, strides,
                                           nat._complete(x, k))[:1]

    def _zcat(self, site, shape, channels_last, device, quick):
        from . import _configs
        from . import zinject_triton as zt
        from ._impl import memory_format
        from .zinject import z_concat_act_ref
        N, C, H, W, nz = shape
        x = zt._dense(_layout(self.randn(N, C, H, W).to(self.dtype), channels_last))
        z = self.randn(N, nz).to(self.dtype)
        cl = memory_format(x) == torch.channels_last
        act = self.act
        self.key = _configs.key(site, shape, self.dtype, cl, act)
        self.candidates = zt.zcat_candidates(x, nz, cl, quick)
        if self.plan_only:
            return
        xr, zr = x.float().requires_grad_(), z.float().requires_grad_()
        y = z_concat_act_ref(xr, zr, act, SLOPE)
        if site == "zcat.fwd":
            self.expected = (y.detach(),)
            self.run = lambda k: (zt._zcat_forward(x, z, act, SLOPE, self.dtype, k),)
            return
        gy = _layout(self.randn(N, C + nz, H, W).to(self.dtype), cl)
        y.backward(gy.float())
        self.expected = (xr.grad, zr.grad)
        self.run = lambda k: zt._zcat_backward(gy, x, z, act, SLOPE, k)

    def _zterm(self, site, shape, channels_last, device, quick):
        from . import _configs
        from . import zinject_triton as zt
        from ._impl import memory_format
        from .acts import apply_act
        from .zinject import tile_z
        N, C, H, W, nz, CO = shape
        geo = zt._geometry((4, 4), (2, 2), (1, 1), H, W)
        OH, OW = H // 2, W // 2
        t = zt._dense(_layout(self.randn(N, CO, OH, OW).to(self.dtype), channels_last))
        cl = memory_format(t) == torch.channels_last
        self.key = _configs.key(site, zt._zterm_shape(t, geo), self.dtype, cl)
        self.candidates = zt.zterm_candidates(site, t, geo, quick)
        if self.plan_only:
            return
        if site == "zterm.add":
            # fp32 weights, z and bias with a bf16 conv output: what autocast training hands over.
            weight, bias, z = self.randn(CO, C + nz, 4, 4) * 0.1, self.randn(CO), self.randn(N, nz)
            q = zt._zq(z, weight, C, ACT, SLOPE, torch.float32)
            zterm = F.conv2d(tile_z(apply_act(z, ACT, SLOPE), torch.empty(0, 0, H, W)), weight[:, C:], bias, 2, 1)
            self.expected = (t.float() + zterm,)
            scratch = t.clone()

            def run(k, check=False):
                y = t.clone() if check else scratch  # timing adds into a scratch copy again and again
                zt._zterm_add(y, q, bias, geo, k)
                return (y,)
            self.run, self.check_run = (lambda k: run(k)), (lambda k: run(k, True))
            return
        # Each tap's 0/1 validity at each output position: unfold of an all-ones image.
        valid = F.unfold(torch.ones(1, 1, H, W, device=device), (4, 4), padding=1, stride=2)[0]
        gf = t.float().flatten(2)
        self.expected = (torch.cat([torch.einsum("nol,tl->not", gf, valid), gf.sum(2, keepdim=True)], 2),)
        self.run = lambda k: (zt._zterm_grad(t, geo, k),)

    def _pool(self, site, shape, channels_last, device, quick):
        from . import _configs
        from . import avg_pool_triton as apt
        from ._impl import memory_format
        N, C, H, W, *geometry = shape
        kh, kw, sh, sw, ph, pw = geometry
        x = _layout(self.randn(N, C, H, W).to(self.dtype), channels_last)
        cl = memory_format(x) == torch.channels_last
        self.key = _configs.key(site, apt.key_shape(x.shape, geometry), self.dtype, cl)
        self.candidates = apt.candidates(quick)
        if self.plan_only:
            return
        xr = x.float().requires_grad_()
        y = F.avg_pool2d(xr, (kh, kw), (sh, sw), (ph, pw), False, False)
        if site == "pool.fwd":
            self.expected = (y.detach(),)
            self.run = lambda k: (apt.forward(x, geometry, False, 0, cl, k),)
            return
        dy = _layout(self.randn(*y.shape).to(self.dtype), cl)
        y.backward(dy.float())
        self.expected = (xr.grad,)
        self.run = lambda k: (apt.backward(dy, x.shape, self.dtype, geometry, False, 0, cl, k),)

    def check(self, knobs):
        got = getattr(self, "check_run", self.run)(knobs)
        return _mismatch(got, self.expected, self.dtype)

    def signature(self, knobs):
        """What makes Triton compile another binary, near enough: the site, dtype, layout, kernel
        variant, knobs and how the shape's sizes specialise (1, multiple of 16). Equal signatures
        compile once."""
        sizes = tuple((s == 1, s % 16 == 0) for s in self.key[1])
        return self.site, self.dtype, self.key[3], self.key[4], tuple(sorted(knobs.items())), sizes


# ---------------------------------------------------------------------------------------------
# Timing

SAMPLES = 7  # samples of every candidate, and again of the head-to-head pair
PROBE_REPS, MAX_REPS = 10, 200
# What torch.cuda._sleep spins before each timed replay: ~0.1 ms at an H100's or H200's clock, more than
# the host takes to record the start event and issue the replay.
SLEEP_CYCLES = 200_000


def clock(device):
    """A function returning one run of a batch's time in ms, launch latency left out (bench/benchutil.py
    times the kernel benchmarks' graphs with it too: public for that). On a GPU, a
    torch.cuda._sleep enqueued first keeps the stream busy while the host records the start event and
    issues the replay, so the start event fires with the replay already queued behind it (an idle GPU
    fired it at once, and the sample took in the replay's launch). Timing reps and 2 x reps launches and
    taking the difference would cancel it too, but captures every graph twice and subtracts two noisy
    numbers. Else the host clock (the dry run's)."""
    if device.type != "cuda":
        def host(batch):
            t = time.perf_counter()
            batch()
            return (time.perf_counter() - t) * 1e3
        return host

    def gpu(batch):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SLEEP_CYCLES)
        start.record()  # (on the current stream, as the replay and the sleep)
        batch()
        end.record()
        end.synchronize()  # (elapsed_time needs both events done)
        return start.elapsed_time(end)
    return gpu


def _batch(fn, reps, device):
    """A callable making `reps` back-to-back fn() calls: on a GPU one CUDA-graph replay of them (the
    kernels' own time, as a graphed training step sees it, without Python's launch gaps), else a loop."""
    def loop():
        for _ in range(reps):
            fn()
    if device.type != "cuda":
        return loop
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            loop()
    except Exception as e:
        # A launch that cannot be captured would break the graphed training step too; and timing
        # it with launch gaps would not compare with the others: the candidate is rejected.
        raise RuntimeError(f"CUDA-graph capture failed ({type(e).__name__}: {e})") from e
    graph.replay()  # (the first replay uploads the graph: kept out of the samples)
    return graph.replay


def samplers(fns, device, target_ms=0.5, reps=None):
    """Per fn (one launch each, checked before: compiled and warm) a function taking one sample of its
    time in us a call, or the exception that keeps it from being timed (e.g. a failed CUDA-graph capture).
    A sample is one run of `reps` back-to-back calls, the same reps for every fn (so each has the same
    share of the gaps between launches), by default as many as take about target_ms, sized from a graph
    replay of PROBE_REPS calls of the first fn that captures (one eager call is host-launch bound: it
    gave ~10 reps for any kernel)."""
    time_run, out = clock(device), []
    for fn in fns:
        try:
            if reps is None:
                probe = _batch(fn, PROBE_REPS, device)
                ms = min(time_run(probe) for _ in range(3)) / PROBE_REPS
                reps = max(1, min(MAX_REPS, round(target_ms / max(ms, 1e-6))))
            batch = _batch(fn, reps, device)
        except Exception as e:  # e.g. a capture that fails, or out of memory
            out.append(e)
            continue
        out.append(lambda batch=batch, reps=reps: time_run(batch) * 1e3 / reps)
    return out


def interleaved(n, samples):
    """The order of the samples of n candidates: round after round, each one once (A/B/C, A/B/C, ...),
    so that a drift (clocks, temperature, a neighbour's load) falls on all alike rather than on the
    candidate timed last."""
    return [i for _ in range(samples) for i in range(n)]


def spread(times):
    """How far apart a candidate's samples are: their interquartile range (one outlier does not widen it)."""
    if len(times) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q3 - q1


def choose(sample, n, samples=SAMPLES, again=True):
    """(winner, its us, the heuristic's us) among n candidates, 0 being the heuristic; sample(i): one
    timing of candidate i in us. Every candidate is sampled `samples` times, interleaved; the one of the
    best median, if more than NOISE faster than the heuristic there, is sampled again head to head with
    the heuristic (interleaved) and wins only if its median beats the heuristic's by more than NOISE of
    it and more than the larger spread of the two: the fastest of several noisy medians is biased low.
    again=False (a dry run's): no head-to-head, the best median wins."""
    times = [[] for _ in range(n)]
    for i in interleaved(n, samples):
        times[i].append(sample(i))
    medians = [statistics.median(t) for t in times]
    best = min(range(n), key=medians.__getitem__)  # (a tie: the heuristic, the first)
    if best == 0 or medians[best] >= medians[0] * (1 - NOISE):
        return 0, medians[0], medians[0]
    if not again:
        return best, medians[best], medians[0]
    pair = [[], []]
    for j in interleaved(2, samples):
        pair[j].append(sample((0, best)[j]))
    heuristic_us, best_us = map(statistics.median, pair)
    if heuristic_us - best_us > max(NOISE * heuristic_us, *map(spread, pair)):
        return best, best_us, heuristic_us
    return 0, heuristic_us, heuristic_us


# ---------------------------------------------------------------------------------------------
# The sweep

def _warm(work, device, quick):
    """Worker: run each (spec, knobs) once, so that Triton compiles (and caches) it. A candidate that
    fails here fails again in the timing pass, which reports it."""
    device = torch.device(device)
    by_spec = {}
    for spec, knobs in work:
        by_spec.setdefault(spec, []).append(knobs)
    for spec, knob_sets in by_spec.items():
        case = Case(spec, device, quick)
        for knobs in knob_sets:
            try:
                case.run(knobs)
            except Exception:
                pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(work)


def _precompile(specs, device, quick, jobs, deadline):
    """Compile every distinct candidate once, spread over `jobs` worker processes, until `deadline`
    (time.monotonic()); what is left then compiles in the timing pass. Returns how many were sent."""
    if jobs <= 1:
        return 0
    distinct = {}
    for spec in specs:
        case = Case(spec, device, quick, plan_only=True)
        # The interpreter (a dry run's) compiles nothing, and a worker's failures are the timing pass's to report:
        # there the workers run each case's heuristic only (spawned, each case built, a launch), not every candidate
        # a second time
        for knobs in case.candidates if device.type == "cuda" else case.candidates[:1]:
            distinct.setdefault(case.signature(knobs), (spec, knobs))
    work = list(distinct.values())  # grouped by spec: a worker builds each case's tensors once per piece
    size = max(1, len(work) // (8 * jobs))  # small pieces, so that the deadline cancels the rest
    ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx)
    futures = [pool.submit(_warm, work[i:i + size], str(device), quick) for i in range(0, len(work), size)]
    concurrent.futures.wait(futures, timeout=None if math.isinf(deadline) else max(0.0, deadline - time.monotonic()))
    pool.shutdown(wait=True, cancel_futures=True)
    failed = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    if failed:
        print(f"tune: {len(failed)} compile worker pieces failed, e.g. {failed[0]!r}; continuing", file=sys.stderr)
    return len(work)


def _why(e):
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def tune_case(case, device, dry_run):
    """{config, time_us, heuristic, heuristic_us, tried, rejected} for one case, or {error} when the
    heuristic's own output is wrong or it cannot be timed."""
    from . import _configs
    checked, rejected = [], []
    for knobs in case.candidates:
        try:
            _configs.check_knobs(case.site, knobs)  # (in the try: one invalid candidate is rejected, not the sweep)
            why = case.check(knobs)
        except Exception as e:  # e.g. a candidate that does not compile or fit (out of resources)
            why = _why(e)
        if why:
            rejected.append({"config": knobs, "error": why})
        else:
            checked.append(knobs)
    heuristic = case.candidates[0]
    failed = {"error": "the heuristic's configuration fails its check", "heuristic": heuristic, "rejected": rejected}
    if not checked or checked[0] is not heuristic:
        return failed
    # a dry run times nothing worth sizing: one call a sample, one sample, and no head-to-head (a second look at
    # host-clock times of the interpreter, a quarter of its timed launches; choose's own tests hold that path)
    timers = samplers([lambda k=knobs: case.run(k) for knobs in checked], device, **({"reps": 1} if dry_run else {}))
    rejected += [{"config": k, "error": _why(t)} for k, t in zip(checked, timers) if isinstance(t, Exception)]
    if isinstance(timers[0], Exception):  # (right, but e.g. a CUDA graph cannot capture it: say so)
        return dict(failed, error=f"the heuristic's configuration passes its check but cannot be timed: "
                                  f"{_why(timers[0])}")
    timed = [(k, t) for k, t in zip(checked, timers) if not isinstance(t, Exception)]
    won, best_us, heuristic_us = choose(lambda i: timed[i][1](), len(timed), 1 if dry_run else SAMPLES, not dry_run)
    return {"config": timed[won][0], "time_us": round(best_us, 2), "heuristic": heuristic,
            "heuristic_us": round(heuristic_us, 2), "tried": len(case.candidates), "rejected": rejected}


def _check_out(path):
    # Renamed over, a device is gone: `--out /dev/null` as root replaced the system's /dev/null. Before the sweep.
    if os.path.lexists(path) and not (os.path.isfile(path) or os.path.islink(path)):
        raise ValueError(f"--out {path} is no file (a folder or a device), which the table would replace; give a "
                         f"file's path")


def _write(path, table):
    _check_out(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    os.replace(tmp, path)


def sweep(out, quick=False, dry_run=False, jobs=1, budget_s=math.inf, log=print, sites=None):
    """Run the sweep and write the table to `out` (a Path); returns the table. sites: only these
    launch sites (a set), e.g. a kernel added after the committed table was made."""
    # The checks compare with fp32 convs and matmuls: TF32 would be off by ~1e-3.
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    _check_out(out)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _sweep(out, quick, dry_run, jobs, budget_s, log, sites)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _sweep(out, quick, dry_run, jobs, budget_s, log, sites):
    import triton

    from . import _configs
    device = torch.device("cpu" if dry_run else "cuda")
    began = time.monotonic()
    specs = cases(quick, dry_run, sites)
    table = {"format": _configs.FORMAT, "device": _configs.device_name(device), "torch": torch.__version__,
             "triton": triton.__version__, "quick": quick, "dry_run": dry_run, "noise": NOISE,
             "sites": sorted(tuned_sites(quick, sites)),  # (not those --quick leaves out)
             "timing": "host clock, one sample (meaningless)" if dry_run else
             f"median of {SAMPLES} CUDA-graph replays (interleaved) of ~0.5 ms of back-to-back launches (the same "
             f"count for a launch's candidates), per launch; a winner re-timed head to head with the heuristic",
             "entries": {}, "failed": {}, "skipped": []}
    compiled = _precompile(specs, device, quick, jobs, began + budget_s / 2)
    log(f"tune: {len(specs)} cases on {table['device']}; {compiled} distinct candidates compiled by {jobs} "
        f"processes in {time.monotonic() - began:.1f} s")
    for i, spec in enumerate(specs):
        if time.monotonic() - began > budget_s:
            table["skipped"] = [list(map(str, s)) for s in specs[i:]]
            log(f"tune: budget of {budget_s:.0f} s spent; {len(specs) - i} cases skipped (heuristics stay)")
            break
        try:
            case = Case(spec, device, quick)
        except Exception as e:  # e.g. out of memory: this case keeps its heuristic
            table["failed"]["|".join(map(str, spec))] = {"error": f"{type(e).__name__}: {e}"[:300]}
            continue
        text = _configs.key_text(case.key)
        if text in table["entries"] or text in table["failed"]:
            continue  # another spec with the same launch (e.g. a 1 x 1 plane in either layout)
        result = tune_case(case, device, dry_run)
        table["failed" if "error" in result else "entries"][text] = result
        if "error" in result:
            log(f"tune: {text}: {result['error']}")
        _write(out, table)
    table["seconds"] = round(time.monotonic() - began, 1)
    _write(out, table)
    won = [e for e in table["entries"].values() if e["config"] != e["heuristic"]]
    gain = sum(e["heuristic_us"] - e["time_us"] for e in won)
    log(f"tune: {len(table['entries'])} launches tuned in {table['seconds']} s, {len(won)} away from the "
        f"heuristic (together {gain:.0f} us faster), {len(table['failed'])} failed; table: {out}")
    log(f"tune: use it with {_configs.ENV}={out}, or for every run on this device commit it as "
        f"kernels/tuning/{_configs.table_path(table['device']).name}")
    return table


def merge(table_path, new_path):
    """NEW's sweep into the table at table_path (both as the tuner writes them, made on the same device with
    the same torch and Triton minor versions), written in place atomically. For the sites NEW swept (its
    "sites"): NEW's entries win, a launch NEW failed loses its old entry (the heuristic now fails its check:
    an old config would not be checked either) and joins "failed", and NEW's "skipped" replaces the old one;
    an old entry NEW did not reach (its budget ran out) stays, timed on the kernels and candidates of its
    own sweep. Other sites are left as they were. Returns (added, replaced, dropped, unconfirmed): counts,
    then the keys dropped and those kept unconfirmed. For a sweep of some sites (--sites) joining the
    committed table."""
    from . import _configs
    table, new = _configs.load_table(table_path, ""), _configs.load_table(new_path, "")
    for field in ("device", "torch", "triton"):
        a, b = table.get(field), new.get(field)
        if (a != b) if field == "device" else (_configs._minor(a) != _configs._minor(b)):
            raise ValueError(f"{new_path} was made with {field} {b!r} and {table_path} with {a!r}: the kernels would "
                             f"ignore one of them; tune again where the table was made")
    for path, data in ((table_path, table), (new_path, new)):  # (a damaged one: a TypeError traceback below, or a
        # "sites" string swept as its letters)
        sites, skipped = data.get("sites") or [], data.get("skipped", [])
        if not (isinstance(data.get("failed", {}), dict) and isinstance(sites, list)
                and all(isinstance(s, str) for s in sites) and isinstance(skipped, list)
                and all(isinstance(s, list) and s for s in skipped)):
            raise ValueError(f"{path}: expected 'failed' an object, 'sites' a list of sites and 'skipped' a list of "
                             f"case specs, as python -m bicyclegan.kernels.tune writes them")
    for text, entry in new["entries"].items():  # (what read_table would skip must not get in)
        try:
            _configs.check_knobs(_configs._parse_key(text)[0], entry["config"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{new_path}: entry {text!r} is not a valid launch key and config") from None
    failed, skipped = new.get("failed", {}), new.get("skipped", [])
    # (a table without "sites": the sites its keys name; failed keys and skipped specs start with the site too)
    swept = set(new.get("sites") or [text.split("|")[0] for text in [*new["entries"], *failed]])
    entries = table["entries"]
    added = sum(text not in entries for text in new["entries"])
    dropped = sorted(text for text in failed if text in entries)
    unconfirmed = sorted(text for text in entries if text.split("|")[0] in swept and text not in new["entries"]
                         and text not in failed)
    for text in dropped:
        del entries[text]
    entries.update(new["entries"])
    table["failed"] = {**{text: f for text, f in table.get("failed", {}).items() if text not in new["entries"]},
                       **failed}
    table["skipped"] = [spec for spec in table.get("skipped", []) if spec[0] not in swept] + skipped
    table.setdefault("merged", []).append({"from": Path(new_path).name, "entries": len(new["entries"]),
                                           "failed": len(failed), "skipped": len(skipped), "dropped": dropped,
                                           "torch": new.get("torch"), "triton": new.get("triton")})
    _write(Path(table_path), table)
    return added, len(new["entries"]) - added, dropped, unconfirmed


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bicyclegan.kernels.tune", description=__doc__.split("\n\n")[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="where to write the table (JSON)")
    p.add_argument("--quick", action="store_true", help="fewer candidates; fused-concat sites left out")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny shapes on the CPU in Triton's interpreter, no real timing (checks the code paths)")
    p.add_argument("--jobs", type=int, default=None,
                   help="compile worker processes (default: one per CPU core up to 16; 1 with --dry-run)")
    p.add_argument("--budget-s", type=float, default=None, help="stop sweeping after this many seconds "
                   "(default 120, 60 with --quick, none with --dry-run)")
    p.add_argument("--sites", default=None, help="only these launch sites or kernels, comma-separated (e.g. pool, "
                   "or norm_act.bwd); their entries can join a table made before (default: all)")
    p.add_argument("--merge", type=Path, default=None, metavar="NEW.json",
                   help="no sweep: add NEW.json's entries (a sweep made with --sites, say) to the table --out names")
    args = p.parse_args(argv)
    if args.merge is not None:
        if given := [o for o, v in (("--quick", args.quick), ("--dry-run", args.dry_run), ("--sites", args.sites),
                                    ("--jobs", args.jobs), ("--budget-s", args.budget_s)) if v not in (None, False)]:
            # (dropped without a word: --merge NEW --sites pool merged every site NEW has)
            p.error(f"--merge sweeps nothing, so {', '.join(given)} would do nothing: merge NEW.json as it is, or "
                    f"sweep first (without --merge)")
        try:
            added, replaced, dropped, unconfirmed = merge(args.out, args.merge)
        except (ValueError, FileNotFoundError) as e:
            p.error(str(e))
        print(f"tune: {args.out}: {added} entries added, {replaced} replaced, {len(dropped)} dropped (failed) "
              f"from {args.merge}")
        for text in dropped:
            print(f"  dropped: {text}")
        if unconfirmed:
            print(f"tune: {len(unconfirmed)} entries of the sites {args.merge} swept kept unconfirmed (it did not "
                  f"reach them, e.g. its budget ran out: timed by an earlier sweep)")
        for text in unconfirmed:
            print(f"  kept: {text}")
        return
    # (before --sites, whose names come from a module that imports Triton: --dry-run --sites was always refused)
    from ._impl import LATE_INTERPRETER, interpreter_too_late, triton_available
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"
        if interpreter_too_late():  # (triton imported before, compiled: its helpers fail in the interpreter)
            p.error(f"--dry-run: {LATE_INTERPRETER} (or run it as a command)")
    if not triton_available():  # (a traceback from deep inside the sweep)
        p.error("tuning times the Triton kernels' launches: it needs Triton (pip install triton)")
    try:
        sites = site_filter(args.sites) if args.sites is not None else None
    except ValueError as e:
        p.error(str(e))
    if not tuned_sites(args.quick, sites):  # (a table of nothing, its "sites" naming what it left out)
        p.error(f"--sites {args.sites} with --quick: no launch to tune, --quick leaves out "
                f"{', '.join(sorted(sites))}; drop --quick to tune them")
    if not args.out.parent.is_dir():
        p.error(f"--out {args.out}: folder {args.out.parent} does not exist")
    try:
        _check_out(args.out)  # (exit 2 as the other refusals, not SystemExit's 1)
    except ValueError as e:
        p.error(str(e))
    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA device here: tuning times kernels on a GPU (--dry-run checks the code paths on CPU)")
    jobs = args.jobs if args.jobs is not None else (1 if args.dry_run else min(16, os.cpu_count() or 1))
    budget = args.budget_s if args.budget_s is not None else (
        math.inf if args.dry_run else 60.0 if args.quick else 120.0)
    sweep(args.out, args.quick, args.dry_run, max(1, jobs), budget, sites=sites)


if __name__ == "__main__":
    main()
