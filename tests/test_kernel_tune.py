"""Launch configurations: the tuner (python -m bicyclegan.kernels.tune) and the tables the kernels
read. On a CPU-only machine everything runs in Triton's interpreter (conftest sets TRITON_INTERPRET=1);
the tuner's --dry-run is the same sweep on tiny shapes, so the one GPU call cannot fail on a typo.
"""
import json
import os
import re
import subprocess
import sys
import time
import warnings

import pytest
import torch

from bicyclegan.kernels import _configs, instance_norm_act, instance_norm_act_ref, tune
from bicyclegan.kernels._impl import interpreting

pytestmark = pytest.mark.skipif(not interpreting(), reason="runs the kernels in Triton's interpreter")
CL = torch.channels_last
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _no_tables(monkeypatch):
    """Each test starts and ends with no table loaded and none named in the environment."""
    monkeypatch.delenv(_configs.ENV, raising=False)
    _configs.reload()
    yield
    _configs.reload()


def _table(path, entries, device=_configs.INTERPRETER, torch_version=None, triton_version=None):
    import triton
    path.write_text(json.dumps({
        "format": _configs.FORMAT, "device": device, "torch": torch_version or torch.__version__,
        "triton": triton_version or triton.__version__,
        "entries": {text: {"config": cfg} for text, cfg in entries.items()}}))
    return path


def test_dry_run_writes_a_table_the_kernels_accept(tmp_path):
    """The whole sweep, as the GPU call runs it (compile workers included), on tiny shapes."""
    out = tmp_path / "table.json"
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "bicyclegan.kernels.tune", "--out", str(out), "--dry-run",
                           "--jobs", "2"], capture_output=True, text=True, env=env,
                          timeout=1800)  # (a hang's: 289 s were seen on a loaded 2-core machine)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compile worker" not in proc.stderr, proc.stderr[-3000:]
    # The workers ran, each case's heuristic (the interpreter compiles nothing): not every candidate a second time
    sent = re.search(r"; (\d+) distinct candidates compiled by 2 processes", proc.stdout)
    assert sent and 0 < int(sent.group(1)) <= len(tune.cases(dry_run=True)), proc.stdout
    table = json.loads(out.read_text())
    import triton
    assert (table["device"], table["torch"], table["triton"]) == (_configs.INTERPRETER, torch.__version__,
                                                                  triton.__version__)
    assert table["failed"] == {} and table["skipped"] == []
    expected = {_configs.key_text(tune.Case(spec, CPU, False).key) for spec in tune.cases(dry_run=True)}
    assert set(table["entries"]) == expected
    sites = {text.split("|")[0] for text in table["entries"]}
    assert sites == set(_configs.SITES)
    # The norm's variants the networks launch: LeakyReLU from y (E, D), ReLU and none from x (G); the
    # fused concatenation's: none (G's outermost level) and LeakyReLU (the others); z-term keys none.
    variants = {site: {t.split("|")[4] for t in table["entries"] if t.startswith(site)} for site in _configs.VARIANTS}
    assert variants == {"norm_act.fwd": {"leaky_relu", "relu", "none"},
                        "norm_act.bwd": {"leaky_relu,from_y", "relu,from_x", "none,from_x"},
                        "zcat.fwd": {"none", "leaky_relu"}, "zcat.bwd": {"none", "leaky_relu"}}
    assert all(len(t.split("|")) == 4 for t in table["entries"] if t.startswith(("zterm", "pool")))
    for text, entry in table["entries"].items():
        site = text.split("|")[0]
        assert _configs.check_knobs(site, entry["config"]) == entry["config"], text
        assert entry["rejected"] == [] and entry["tried"] >= 2, text
        assert entry["time_us"] > 0 and entry["heuristic_us"] > 0, text
        assert entry["config"] == entry["heuristic"] or entry["time_us"] < entry["heuristic_us"], text
    assert len(_configs.read_table(out, CPU)) == len(expected)


# Triton not installed (an optional extra): `import triton` fails and importlib.util.find_spec("triton") is None,
# as without the package. (A meta-path finder raising ImportError from find_spec also broke torch 2.14's own
# import, which probes find_spec("triton"): a traceback before the code under test ran.)
NO_TRITON = """import sys
sys.modules["triton"] = None
from bicyclegan.kernels import tune
sys.argv = ["tune", "--dry-run", "--out", sys.argv[1]]
tune.main()
"""


def test_a_dry_run_of_some_sites_runs_as_a_command_and_one_without_triton_says_what_it_needs(tmp_path):
    # --dry-run --sites was always refused ("set TRITON_INTERPRET=1 before triton is imported (or run it as a
    # command)", run as a command): --sites's names come from a module that imports Triton, read first. Without
    # Triton the dry run was a ModuleNotFoundError traceback from inside the sweep.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # (a command starts without it)
    out = tmp_path / "pool.json"
    proc = subprocess.run([sys.executable, "-m", "bicyclegan.kernels.tune", "--out", str(out), "--dry-run", "--quick",
                           "--sites", "pool"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {text.split("|")[0] for text in json.loads(out.read_text())["entries"]} == {"pool.fwd", "pool.bwd"}
    proc = subprocess.run([sys.executable, "-c", NO_TRITON, str(tmp_path / "t.json")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "error: tuning times the Triton kernels' launches: it needs Triton (pip install triton)"), proc.stderr
    assert not (tmp_path / "t.json").exists()


def test_spent_budget_skips_the_rest_and_still_writes_a_table(tmp_path):
    out = tmp_path / "t.json"
    table = tune.sweep(out, dry_run=True, budget_s=0.0, log=lambda *a: None)
    assert table["entries"] == {} and len(table["skipped"]) == len(tune.cases(dry_run=True))
    assert json.loads(out.read_text())["skipped"] == table["skipped"]
    assert _configs.read_table(out, CPU) == {}


def test_a_quick_sweep_of_only_what_quick_leaves_out_is_refused_and_a_quick_table_names_only_its_sites(tmp_path,
                                                                                                       capsys):
    # `--quick --sites zcat` swept 0 cases, exited 0 and wrote a table whose "sites" claimed zcat; a whole
    # --quick table's listed the fused concatenation's sites it leaves out.
    out = tmp_path / "t.json"
    with pytest.raises(SystemExit) as e:
        tune.main(["--out", str(out), "--dry-run", "--quick", "--sites", "zcat"])
    assert e.value.code == 2 and not out.exists()
    assert "--sites zcat with --quick: no launch to tune, --quick leaves out zcat.bwd, zcat.fwd; drop --quick" \
        in capsys.readouterr().err
    table = tune.sweep(out, quick=True, dry_run=True, budget_s=0.0, log=lambda *a: None)
    assert table["sites"] == ["norm_act.bwd", "norm_act.fwd", "pool.bwd", "pool.fwd", "zterm.add", "zterm.grad"]
    assert tune.sweep(out, dry_run=True, budget_s=0.0, log=lambda *a: None)["sites"] == sorted(_configs.SITES)
    assert tune.sweep(out, quick=True, dry_run=True, budget_s=0.0, log=lambda *a: None,
                      sites={"pool.fwd", "zcat.fwd"})["sites"] == ["pool.fwd"]


def test_dry_run_candidates_cover_every_plan():
    """The dry run's norm candidates reach the single-pass, looped and split paths in both layouts."""
    from bicyclegan.kernels import norm_act_triton as nat
    for channels_last in (False, True):
        plans = set()
        for site, shape, dtype, cl, act in tune.cases(dry_run=True):
            if site == "norm_act.fwd" and cl == channels_last:
                x = torch.empty(shape).contiguous(memory_format=CL if cl else torch.contiguous_format)
                for knobs in nat.candidates(x, cl):
                    cfg = nat._complete(x, knobs)
                    plans.add("split" if cfg["split"] > 1 else "single" if cfg["single"] else "looped")
        assert plans == {"single", "looped", "split"}, (channels_last, plans)


def test_plan_only_cases_share_out_the_same_work_without_computing_anything():
    """The compile pass enumerates candidates with plan-only cases (no inputs drawn, no reference):
    the same launch keys and candidates as the cases the timing pass builds, every site, both modes."""
    cpu = torch.device("cpu")
    for quick in (True, False):
        for spec in tune.cases(quick=quick, dry_run=True):
            full, plan = tune.Case(spec, cpu, quick), tune.Case(spec, cpu, quick, plan_only=True)
            assert (plan.key, plan.candidates) == (full.key, full.candidates), spec
            assert not hasattr(plan, "expected") and not hasattr(plan, "run"), spec
            assert full.expected and full.check(full.candidates[0]) is None, spec


def test_reference_shapes_are_what_the_engine_networks_launch():
    """The tuner's shape list against the engine's G, E and D built with the reference defaults
    (unet_256 with z at every level, resnet_256, basic_256_multi), traced on the meta device: every
    norm's plane and activation, none with affine parameters, and every z conv's activation (the
    variants the tuner times)."""
    engine = pytest.importorskip("bicyclegan.engine")
    from bicyclegan.kernels import InstanceNormAct2d, ZConcatConv2d
    cfg = engine.ModelConfig(impl="ref")
    assert (cfg.netG, cfg.netE, cfg.netD, cfg.where_add, cfg.crop_size) == (
        "unet_256", "resnet_256", "basic_256_multi", "all", 256)
    planes, zconvs = set(), []

    def record(name, module, args):
        if isinstance(module, InstanceNormAct2d):
            assert not module.affine and module.slope == tune.SLOPE
            planes.add((name, *args[0].shape[1:], module.act))
        elif module.nz:
            assert module.slope == tune.SLOPE and name == "G"
            zconvs.append(tuple(args[0].shape[1:]) + (module.nz, module.out_channels, module.act))
    with torch.device("meta"):
        nets = engine.build_generator(cfg), engine.build_encoder(cfg), engine.build_discriminator(cfg)
    for name, net in zip("GED", nets):
        for m in net.modules():
            if isinstance(m, (InstanceNormAct2d, ZConcatConv2d)):
                m.register_forward_pre_hook(lambda module, args, name=name: record(name, module, args))
    image = torch.empty(1, 3, 256, 256, device="meta")
    nets[0](image, torch.empty(1, cfg.nz, device="meta"))
    nets[1](image)
    nets[2](image)
    assert tune.reference_shapes() == (sorted(planes), zconvs)
    # The multi-scale D's downsampling: what it pools, with the window the tuner times.
    import bicyclegan.engine.networks as networks
    pools, real = [], networks.avg_pool2d

    def pool(x, *args, **kwargs):
        pools.append((tuple(x.shape[1:]), args, kwargs))
        return real(x, *args, **kwargs)
    networks.avg_pool2d = pool
    try:
        nets[2](image)
    finally:
        networks.avg_pool2d = real
    assert [p[0] for p in pools] == tune.reference_pools()
    kh, kw, sh, sw, ph, pw = tune.POOL
    assert kh == kw and sh == sw and ph == pw
    assert all(p[1:] == ((kh, sh, ph), {"count_include_pad": False, "impl": "ref"}) for p in pools), pools
    # Each z conv's fused concatenation is timed in its own activation only, not in every one.
    specs = tune.cases()
    assert sum(s[0] == "zcat.fwd" for s in specs) == sum(s[0] == "zterm.add" for s in specs)


def test_each_network_is_tuned_at_the_batch_sizes_a_training_step_launches_it_at():
    """The bicycle step splits its batch in half (E and the Ds on a half, G on both codes at once while the
    half is small): the tuner timed every network at the training batches (2, 16), where N = 16 is never
    launched and E's and D's N = 1 never timed. Here each network's batch sizes come from real training steps
    (small networks: the split does not depend on their size) at the batches the tuner is for, its
    shapes from the reference's (checked against the networks above): the cases are those, no more."""
    engine = pytest.importorskip("bicyclegan.engine")
    from bicyclegan.engine.model import BicycleGAN
    small = dict(netG="unet", netE="resnet_128", netD="basic_128_multi", netD2="basic_128_multi", crop_size=32,
                 ngf=4, nef=4, ndf=4, impl="ref")
    seen = {"G": set(), "E": set(), "D": set()}
    for batch in (2, 16):  # the reference's and the ladder's
        torch.manual_seed(0)
        model = BicycleGAN(engine.TrainConfig(model=engine.ModelConfig(**small), batch_size=batch), device="cpu")
        for name, net in (("G", model.G), ("E", model.E), ("D", model.D), ("D", model.D2)):
            net.register_forward_pre_hook(lambda module, args, name=name: seen[name].add(args[0].shape[0]))
        model.train_step({k: torch.rand(batch, 3, 32, 32) * 2 - 1 for k in ("A", "B")})
    assert seen == {"G": {2, 8}, "E": {1, 8}, "D": {1, 8}}, seen
    planes, zconvs = tune.reference_shapes()
    specs = tune.cases()
    for dtype in ("bfloat16", "float32"):
        for cl in (True, False):
            def tuned(site):
                return {(s[1], s[4]) for s in specs if s[:1] == (site,) and s[2:4] == (dtype, cl)}
            for site in ("zterm.add", "zterm.grad"):
                assert tuned(site) == {((n, *c[:5]), None) for c in zconvs for n in seen["G"]}, site
            for site in ("zcat.fwd", "zcat.bwd"):
                assert tuned(site) == {((n, *c[:4]), c[5]) for c in zconvs for n in seen["G"]}, site
            for site in ("pool.fwd", "pool.bwd"):
                assert tuned(site) == {((n, *p, *tune.POOL), None) for p in tune.reference_pools() for n in seen["D"]}
            for site in ("norm_act.fwd", "norm_act.bwd"):
                assert tuned(site) == {((n, *p[1:4]), p[4]) for p in planes for n in seen[p[0]]}, site


def test_the_innermost_z_conv_is_tuned_under_the_key_it_looks_up_in_channels_last(monkeypatch):
    """A channels_last conv's N x C x 1 x 1 output has strides (C, 1, C, C): the z term's kernels look it up as
    cl. The tuner made its case's output with .contiguous(), which keeps NCHW strides there (keyed nchw), and
    dropped the cl case as a duplicate: the networks' innermost z conv always missed the table."""
    from bicyclegan.kernels import ZConcatConv2d
    looked_up, real = [], _configs.choose

    def choose(site, shape, dtype, channels_last, *args, **kwargs):
        if site.startswith("zterm"):  # (their keys name no variant)
            looked_up.append(_configs.key_text(_configs.key(site, shape, dtype, channels_last)))
        return real(site, shape, dtype, channels_last, *args, **kwargs)
    monkeypatch.setattr(_configs, "choose", choose)
    conv = ZConcatConv2d(4, 2, 3, impl="triton").to(memory_format=CL)
    x = torch.randn(2, 4, 2, 2).contiguous(memory_format=CL)  # 2 x 2 -> 1 x 1, as G's innermost level
    y = conv(x, torch.randn(2, 2))
    assert y.shape == (2, 3, 1, 1) and y.stride() == (3, 1, 3, 3)
    add = [k for k in looked_up if k.startswith("zterm.add")]
    case = tune.Case(("zterm.add", (2, 4, 2, 2, 2, 3), "float32", True, None), CPU, False)
    assert add == [_configs.key_text(case.key)] and add[0].endswith("|cl")
    assert case.check(case.candidates[0]) is None


def test_table_entries_are_used(tmp_path, monkeypatch):
    """A table's config (not the heuristic's) drives the launch it names, and results stay right."""
    from bicyclegan.kernels import norm_act_triton as nat
    from bicyclegan.kernels import zinject_triton as zt
    x = (torch.randn(2, 3, 7, 9) + 2).contiguous(memory_format=CL)
    norm = {"BLOCK_C": 2, "BLOCK_HW": 8, "split": 3, "num_warps": 2}  # forces the split path
    assert nat._heuristic(x, True) != norm
    y = torch.empty(2, 5, 3, 4).contiguous(memory_format=CL)
    geo = zt._geometry((4, 4), (2, 2), (1, 1), 6, 8)
    zterm = {"BLOCK_J": 2, "BLOCK_O": 2, "ROWS": 2, "num_warps": 1}
    assert zt._zterm_heuristic("zterm.add", y, geo) != zterm
    entries = {"norm_act.fwd|2x3x7x9|float32|cl|elu": norm,
               _configs.key_text(_configs.key("zterm.add", zt._zterm_shape(y, geo), torch.float32, True)): zterm}
    monkeypatch.setenv(_configs.ENV, str(_table(tmp_path / "t.json", entries)))
    cfg = nat._config(x, True, site="norm_act.fwd", variant="elu")
    assert {k: cfg[k] for k in norm} == norm and cfg["chunk"] == 24
    heuristic = nat._complete(x, nat._heuristic(x, True))
    assert nat._config(x, True, site="norm_act.bwd", variant="elu,from_x") == heuristic, "bwd not in table"
    assert zt._zterm_knobs("zterm.add", y, geo) == zterm
    launched = []
    real = nat._forward
    monkeypatch.setattr(nat, "_forward", lambda *a: launched.append(a[-1]) or real(*a))
    xr = x.clone().requires_grad_()
    out = instance_norm_act(xr, "elu", impl="triton")
    assert launched and launched[0]["split"] == 3
    xe = x.clone().requires_grad_()
    expected = instance_norm_act_ref(xe, "elu")
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(xr.grad, xe.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("made_on", ["device", "torch", "triton"])
def test_table_from_elsewhere_is_ignored_with_one_warning(tmp_path, monkeypatch, made_on):
    from bicyclegan.kernels import norm_act_triton as nat
    x = torch.randn(2, 3, 7, 9)
    norm = {"BLOCK_C": 1, "BLOCK_HW": 4, "split": 1, "num_warps": 1}
    other = {"device": dict(device="NVIDIA H200"), "torch": dict(torch_version="1.13.1"),
             "triton": dict(triton_version="2.0.0")}[made_on]
    path = _table(tmp_path / f"{made_on}.json", {"norm_act.fwd|2x3x7x9|float32|nchw|relu": norm}, **other)
    monkeypatch.setenv(_configs.ENV, str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = nat._config(x, False, variant="relu")
        second = nat._config(x, False, variant="relu")
    assert first == second == nat._complete(x, nat._heuristic(x, False))
    ours = [w for w in caught if str(path) in str(w.message)]
    assert len(ours) == 1 and "ignored" in str(ours[0].message) and made_on in str(ours[0].message).lower()


def test_bad_tables(tmp_path, monkeypatch):
    x = torch.randn(1, 2, 3, 3)
    from bicyclegan.kernels import norm_act_triton as nat
    monkeypatch.setenv(_configs.ENV, str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match="missing.json: no such file"):
        nat._config(x, False, variant="relu")
    _configs.reload()
    (tmp_path / "bad.json").write_text("{not json")
    monkeypatch.setenv(_configs.ENV, str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        nat._config(x, False, variant="relu")
    _configs.reload()
    # One good entry; one that is not a power of two, one with an unknown site, a norm key without its
    # variant (format 1's), one with an unknown activation, a zcat key without its activation
    # (format 2's), a variant for a site that has none: the good one is used.
    good = {"BLOCK_C": 1, "BLOCK_HW": 4, "split": 1, "num_warps": 1}
    zcat = {"BLOCK_P": 2, "BLOCK_C": 2, "num_warps": 1}
    zterm = {"BLOCK_J": 2, "BLOCK_O": 2, "ROWS": 1, "num_warps": 1}
    path = _table(tmp_path / "mixed.json", {"norm_act.fwd|1x2x3x3|float32|nchw|relu": good,
                                            "norm_act.bwd|1x2x3x3|float32|nchw|relu,from_x": dict(good, BLOCK_HW=3),
                                            "conv.fwd|1x2x3x3|float32|nchw": good,
                                            "norm_act.bwd|1x2x3x3|float32|nchw": good,
                                            "norm_act.fwd|1x2x3x3|float32|nchw|gelu": good,
                                            "zcat.fwd|1x2x3x3x2|float32|nchw": zcat,
                                            "zterm.add|1x2x3x3x4x4x2x2x1x1|float32|nchw|relu": zterm})
    monkeypatch.setenv(_configs.ENV, str(path))
    with pytest.warns(RuntimeWarning, match="6 entries ignored"):
        assert nat._config(x, False, variant="relu")["BLOCK_HW"] == 4
    heuristic = nat._complete(x, nat._heuristic(x, False))
    assert nat._config(x, False, site="norm_act.bwd", variant="relu,from_x") == heuristic


def test_check_knobs():
    ok = {"BLOCK_P": 8, "BLOCK_C": 2, "num_warps": 4}
    assert _configs.check_knobs("zcat.fwd", ok) == ok
    for bad, why in ((dict(ok, BLOCK_P=6), "power of two"), (dict(ok, BLOCK_C=1), ">= 2"),
                     (dict(ok, num_warps=0), "positive"), ({"BLOCK_P": 8}, "exactly the knobs"),
                     (dict(ok, num_warps=True), "positive int")):
        with pytest.raises(ValueError, match=why):
            _configs.check_knobs("zcat.fwd", bad)


def test_tuner_rejects_a_wrong_candidate_and_never_times_it(monkeypatch):
    from bicyclegan.kernels import norm_act_triton as nat
    spec = ("norm_act.fwd", (2, 2, 33, 32), "float32", False, "leaky_relu")
    case = tune.Case(spec, CPU, False)
    wrong, broken = case.candidates[2], case.candidates[3]
    real = nat._forward

    def forward(x, w, b, act, slope, eps, strides, cfg):
        if (cfg["BLOCK_HW"], cfg["split"]) == (broken["BLOCK_HW"], broken["split"]):
            raise RuntimeError("out of resources: shared memory\n(details)")  # as a launch that does not fit
        y, mean, rstd = real(x, w, b, act, slope, eps, strides, cfg)
        if (cfg["BLOCK_HW"], cfg["split"]) == (wrong["BLOCK_HW"], wrong["split"]):
            y[0, 0, 0, 0] += 0.01  # one element off, well above fp32's tolerance
        return y, mean, rstd
    monkeypatch.setattr(nat, "_forward", forward)
    timed = []
    monkeypatch.setattr(tune, "samplers", lambda fns, device, **kw: [timed.append(fn) or (lambda: 1.0) for fn in fns])
    result = tune.tune_case(case, CPU, dry_run=True)
    assert [r["config"] for r in result["rejected"]] == [wrong, broken]
    assert "max abs error" in result["rejected"][0]["error"]
    assert result["rejected"][1]["error"] == "RuntimeError: out of resources: shared memory"
    assert len(timed) == len(case.candidates) - 2 and result["config"] == case.candidates[0]
    # A wrong heuristic is a failed case, with no config for the table.
    monkeypatch.setattr(case, "candidates", [wrong] + case.candidates[:2])
    assert "error" in tune.tune_case(case, CPU, dry_run=True) and "config" not in tune.tune_case(case, CPU, True)


def test_an_invalid_candidate_is_rejected_and_the_sweep_goes_on(monkeypatch):
    # check_knobs ran outside tune_case's try: one invalid candidate (a block of 3) ended the whole sweep.
    from bicyclegan.kernels import avg_pool_triton as apt
    bad = {"BLOCK_I": 3, "num_warps": 1}
    real = apt.candidates
    monkeypatch.setattr(apt, "candidates", lambda quick: real(quick)[:2] + [bad])
    case = tune.Case(("pool.fwd", (1, 2, 9, 7, *tune.POOL), "float32", False, None), CPU, False)
    assert case.candidates[2] == bad
    result = tune.tune_case(case, CPU, dry_run=True)
    why = "ValueError: pool.fwd: BLOCK_I must be a power of two, got 3"
    assert result["rejected"] == [{"config": bad, "error": why}]
    assert result["config"] in case.candidates[:2] and result["tried"] == 3


def test_a_heuristic_that_cannot_be_captured_is_reported_as_such(monkeypatch):
    # It was reported as "the heuristic's configuration fails its check", which it passed.
    case = tune.Case(("pool.fwd", (1, 2, 9, 7, *tune.POOL), "float32", False, None), CPU, False)
    real, batches = tune._batch, []

    def batch(fn, reps, device):
        batches.append(fn)
        if len(batches) == 1:  # the heuristic's, the first captured
            raise RuntimeError("CUDA-graph capture failed (RuntimeError: operation not permitted when stream is "
                               "capturing)")
        return real(fn, reps, device)
    monkeypatch.setattr(tune, "_batch", batch)
    result = tune.tune_case(case, CPU, dry_run=True)
    assert result["error"] == ("the heuristic's configuration passes its check but cannot be timed: RuntimeError: "
                               "CUDA-graph capture failed (RuntimeError: operation not permitted when stream is "
                               "capturing)")
    assert result["heuristic"] == case.candidates[0] and "config" not in result


def test_time_us_times_every_candidate_with_the_same_reps_sized_from_a_batch():
    # reps was sized per candidate from one eager call (host-launch bound on a GPU: ~10 for any kernel), so
    # candidates were timed with different reps. Now one reps for all, from a batch of PROBE_REPS calls.
    calls = {"a": 0, "b": 0}

    def sleep_1ms(name):
        calls[name] += 1
        time.sleep(0.001)
    a, b = tune.samplers([lambda: sleep_1ms("a"), lambda: sleep_1ms("b")], CPU, target_ms=5)
    assert calls == {"a": 3 * tune.PROBE_REPS, "b": 0}  # three probe batches of the first: the fastest sizes reps
    calls.update(a=0)
    us_a, us_b = a(), b()
    assert 2 <= calls["a"] == calls["b"] <= 5, calls  # 5 ms of 1 ms calls (sleep overshoots: fewer)
    assert us_a >= 1000 and us_b >= 1000
    calls.update(a=0, b=0)
    (one,) = tune.samplers([lambda: sleep_1ms("a")], CPU, reps=1)  # a dry run's: no probe, one call a sample
    assert one() >= 1000 and calls == {"a": 1, "b": 0}


def _fake_samples(series, order):
    """sample(i) for choose: the next of series[i]'s timings, each call noted in order."""
    left = {i: iter(times) for i, times in series.items()}

    def sample(i):
        order.append(i)
        return next(left[i])
    return sample


def test_a_candidate_wins_only_if_it_beats_the_heuristic_head_to_head_by_more_than_the_spread():
    # The old rule took each candidate's median (all samples of one, then the next) and the smallest if 2 %
    # under the heuristic's: the fastest of several noisy medians is biased low, a noisy candidate won.
    steady, slower = [10.0, 10.1, 9.9, 10.0, 10.05, 9.95, 10.0], [10.5] * 7
    noisy = [9.0, 12.0, 9.2, 11.8, 9.4, 9.6, 12.0]
    assert sorted(noisy)[3] == 9.6 < 10.0 * (1 - 0.02)  # its median: the old rule took it
    order = []
    sample = _fake_samples({0: steady * 2, 1: slower, 2: noisy + [9.1, 12.2, 9.3, 11.9, 9.5, 12.1, 9.6]}, order)
    assert tune.choose(sample, 3) == (0, 10.0, 10.0)  # head to head: 0.4 us faster, its samples 2.6 us apart
    assert order == [0, 1, 2] * 7 + [0, 2] * 7  # interleaved, then the pair interleaved
    # A candidate faster by more than 2 % and its spread, head to head too, wins (with the head-to-head medians).
    order.clear()
    fast = [9.0, 9.05, 8.95, 9.0, 9.1, 8.9, 9.0]
    sample = _fake_samples({0: steady + [10.2] * 7, 1: slower, 2: fast + [9.1] * 7}, order)
    assert tune.choose(sample, 3) == (2, 9.1, 10.2)
    # 1.5 % faster: no head-to-head, the heuristic stays; so does a candidate whose head-to-head gain is 2 %
    # or less, however steady.
    order.clear()
    assert tune.choose(_fake_samples({0: [10.0] * 7, 1: [9.85] * 7}, order), 2) == (0, 10.0, 10.0)
    assert order == [0, 1] * 7
    assert tune.choose(_fake_samples({0: [10.0] * 14, 1: [9.0] * 7 + [9.81] * 7}, []), 2) == (0, 10.0, 10.0)
    assert tune.choose(_fake_samples({0: [10.0] * 14, 1: [9.0] * 7 + [9.79] * 7}, []), 2) == (1, 9.79, 10.0)


def test_a_dry_run_samples_each_candidate_once_with_no_head_to_head(monkeypatch):
    # A dry run re-timed its best candidate head to head with the heuristic: the interpreter's host-clock times
    # again (a quarter of its timed launches), which mean nothing. Every candidate is still checked and timed once.
    order = []
    assert tune.choose(_fake_samples({0: [10.0], 1: [9.0], 2: [9.5]}, order), 3, 1, again=False) == (1, 9.0, 10.0)
    assert order == [0, 1, 2]
    case = tune.Case(("pool.fwd", (1, 2, 9, 7, *tune.POOL), "float32", False, None), CPU, False)
    checked, timed = [], []
    real = case.check
    monkeypatch.setattr(case, "check", lambda knobs: checked.append(knobs) or real(knobs))
    monkeypatch.setattr(tune, "samplers", lambda fns, device, **kw: [
        lambda i=i: timed.append(i) or (10.0 if i == 0 else 5.0) for i in range(len(fns))])
    result = tune.tune_case(case, CPU, dry_run=True)
    assert checked == case.candidates and len(checked) > 2
    assert timed == list(range(len(case.candidates))) and result["config"] == case.candidates[1]
    assert (result["time_us"], result["heuristic_us"]) == (5.0, 10.0)


def test_spread_is_the_interquartile_range():
    assert tune.spread([5.0]) == 0.0
    assert tune.spread([1.0, 2.0, 3.0, 4.0, 5.0]) == 2.0  # quartiles 2 and 4
    assert tune.spread([1.0, 2.0, 3.0, 4.0, 100.0]) == 2.0  # one outlier does not widen it


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tune.main(["--out", str(tmp_path / "nowhere" / "t.json"), "--dry-run"])
    assert "does not exist" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            tune.main(["--out", str(tmp_path / "t.json")])
        assert "no CUDA device" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tune.main(["--out", str(tmp_path / "t.json"), "--dry-run", "--sites", "pool,norm"])
    assert ("--sites 'pool,norm': expected sites (norm_act.fwd, norm_act.bwd, zcat.fwd, zcat.bwd, zterm.add, "
            "zterm.grad, pool.fwd, pool.bwd) or kernels (norm_act, pool, zcat, zterm), comma-separated"
            in capsys.readouterr().err)
    assert not (tmp_path / "t.json").exists()


def test_sites_sweeps_only_those_launches(tmp_path):
    """--sites: a kernel's sites (pool: both) or single sites, and only their launches are tuned (a
    kernel added after the committed table was made is tuned alone, its entries joined to it)."""
    assert tune.site_filter("pool") == {"pool.fwd", "pool.bwd"}
    assert tune.site_filter(" norm_act.bwd, pool.fwd ") == {"norm_act.bwd", "pool.fwd"}
    out = tmp_path / "t.json"
    table = tune.sweep(out, dry_run=True, log=lambda *a: None, sites=tune.site_filter("pool"))
    want = {_configs.key_text(tune.Case(spec, CPU, False).key) for spec in tune.cases(dry_run=True)
            if spec[0].startswith("pool.")}
    assert len(want) == 8 and set(table["entries"]) == want and table["failed"] == {}
    assert table["sites"] == ["pool.bwd", "pool.fwd"]
    assert set(_configs.read_table(out, CPU)) == {_configs._parse_key(t) for t in want}


def test_every_launch_states_fp_contraction(monkeypatch):
    """Each kernel launch passes enable_fp_fusion itself (Triton 3.9 warns that its default turns
    off in 3.10, which would change the kernels' rounding and speed under the same code). Recorded
    at the interpreter's launch entry over every kernel: both norm plans forward and backward, the
    fused concatenation, and the concatenation-free conv with and without an activation."""
    from triton.runtime.interpreter import GridExecutor  # (every launch's from Triton 3.0 on: conftest's in_launch)

    from bicyclegan.kernels import norm_act_triton as nat
    from bicyclegan.kernels import z_concat_act, z_concat_conv
    from bicyclegan.kernels import zinject_triton as zt
    launches = []
    call = GridExecutor.__call__

    def recording(self, *args, **kwargs):
        launches.append((self.fn.__name__, kwargs.get("enable_fp_fusion")))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(GridExecutor, "__call__", recording)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 5, generator=g, requires_grad=True)
    w, b = torch.randn(3, generator=g, requires_grad=True), torch.randn(3, generator=g, requires_grad=True)
    for split in (1, 2):
        nat.instance_norm_act_triton(x, "leaky_relu", 0.2, 1e-5, w, b, block_hw=16, split=split).sum().backward()
    z = torch.randn(2, 2, generator=g, requires_grad=True)
    z_concat_act(x, z, impl="triton").sum().backward()
    weight = torch.randn(4, 5, 4, 4, generator=g, requires_grad=True)
    bias = torch.randn(4, generator=g, requires_grad=True)
    for act in ("none", "relu"):
        z_concat_conv(x, z, weight, bias, act=act, impl="triton").sum().backward()
    names = {name for name, _ in launches}
    kernel_defs = {n for mod in (nat, zt) for n, v in vars(mod).items() if n.endswith("_kernel") and hasattr(v, "run")}
    assert len(kernel_defs) == 14
    assert names == kernel_defs, kernel_defs - names  # every kernel of the package was launched
    assert all(fusion is True for _, fusion in launches), [n for n, f in launches if f is not True]


def test_environment_table_wins_over_the_committed_one(tmp_path, monkeypatch):
    """Both tables are read; for a launch both name, BICYCLEGAN_KERNEL_TUNING's entry is used."""
    x = torch.randn(2, 3, 7, 9)
    committed_dir = tmp_path / "tuning"
    committed_dir.mkdir()
    monkeypatch.setattr(_configs, "TABLE_DIR", committed_dir)
    assert _configs.table_path(_configs.INTERPRETER).parent == committed_dir
    ours = {"BLOCK_C": 1, "BLOCK_HW": 8, "split": 1, "num_warps": 1}
    theirs = {"BLOCK_C": 2, "BLOCK_HW": 16, "split": 1, "num_warps": 2}
    only_committed = {"BLOCK_C": 1, "BLOCK_HW": 4, "split": 2, "num_warps": 1}
    _table(_configs.table_path(_configs.INTERPRETER), {"norm_act.fwd|2x3x7x9|float32|nchw|relu": theirs,
                                                       "norm_act.bwd|2x3x7x9|float32|nchw|relu,from_x": only_committed})
    monkeypatch.setenv(_configs.ENV, str(_table(tmp_path / "env.json",
                                                {"norm_act.fwd|2x3x7x9|float32|nchw|relu": ours})))
    from bicyclegan.kernels import norm_act_triton as nat
    fwd = nat._config(x, False, site="norm_act.fwd", variant="relu")
    bwd = nat._config(x, False, site="norm_act.bwd", variant="relu,from_x")
    assert {k: fwd[k] for k in ours} == ours
    assert {k: bwd[k] for k in only_committed} == only_committed


@pytest.mark.parametrize("lib", ["torch", "triton"])
def test_table_from_another_minor_version_is_ignored(tmp_path, monkeypatch, lib):
    """Same major version, another minor one (e.g. torch 2.12 for 2.13): code generation changes
    between minors, so the table is ignored, with its warning."""
    import triton

    from bicyclegan.kernels import norm_act_triton as nat
    have = (torch.__version__ if lib == "torch" else triton.__version__).split("+")[0].split(".")
    other = f"{have[0]}.{int(have[1]) + 1}.0"
    x = torch.randn(2, 3, 7, 9)
    norm = {"BLOCK_C": 1, "BLOCK_HW": 4, "split": 1, "num_warps": 1}
    path = _table(tmp_path / "t.json", {"norm_act.fwd|2x3x7x9|float32|nchw|relu": norm},
                  **{f"{lib}_version": other})
    monkeypatch.setenv(_configs.ENV, str(path))
    with pytest.warns(RuntimeWarning, match=f"ignored: made with {lib} {other}"):
        assert nat._config(x, False, variant="relu") == nat._complete(x, nat._heuristic(x, False))


def test_an_entry_serves_only_its_variant(tmp_path, monkeypatch):
    """Activation, saved tensor and affine parameters pick different compiled kernels: a table
    entry timed for LeakyReLU from y drives that backward only; ReLU, LeakyReLU with a weight
    (from x), slope 0 (from x) and the forward get the heuristic, through the op as in _config."""
    from bicyclegan.kernels import norm_act_triton as nat
    x = torch.randn(2, 3, 7, 9) * 2 + 3
    tuned = {"BLOCK_C": 2, "BLOCK_HW": 8, "split": 3, "num_warps": 2}
    heuristic = nat._complete(x, nat._heuristic(x, False))
    assert heuristic["split"] == 1
    monkeypatch.setenv(_configs.ENV, str(_table(tmp_path / "t.json",
                                                {"norm_act.bwd|2x3x7x9|float32|nchw|leaky_relu,from_y": tuned})))
    assert nat._config(x, False, site="norm_act.bwd", variant="leaky_relu,from_y")["split"] == 3
    for variant in ("relu,from_x", "leaky_relu,from_x", "leaky_relu,from_x,weight"):
        assert nat._config(x, False, site="norm_act.bwd", variant=variant) == heuristic, variant
    launched = []
    real = nat._backward
    monkeypatch.setattr(nat, "_backward", lambda *a: launched.append(a[10]) or real(*a))
    w = torch.ones(3)
    for act, slope, weight, expected in (("leaky_relu", 0.2, None, 3), ("relu", 0.0, None, 1),
                                         ("leaky_relu", 0.2, w, 1), ("leaky_relu", 0.0, None, 1)):
        launched.clear()
        xr = x.clone().requires_grad_()
        y = instance_norm_act(xr, act, slope, weight=weight, impl="triton")
        grad = torch.randn_like(y)
        y.backward(grad)
        assert [cfg["split"] for cfg in launched] == [expected], (act, slope, weight is not None)
        xe = x.clone().requires_grad_()
        instance_norm_act_ref(xe, act, slope, weight=weight).backward(grad)
        torch.testing.assert_close(xr.grad, xe.grad, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="variant must be one of"):
        nat._config(x, False, site="norm_act.bwd")


@pytest.mark.parametrize("old, unnamed", [(1, "norm_act and zcat entries"), (2, "zcat entries")])
def test_a_table_of_an_old_format_is_refused(tmp_path, monkeypatch, old, unnamed):
    """Format 1 keys named no variant: its entries, timed for LeakyReLU from y, served every
    activation; format 2 keys named the norm's but not the fused concatenation's activation. Such
    a table is refused, with what to do."""
    from bicyclegan.kernels import norm_act_triton as nat
    path = _table(tmp_path / "old.json", {"norm_act.bwd|2x3x7x9|float32|nchw": {
        "BLOCK_C": 1, "BLOCK_HW": 4, "split": 1, "num_warps": 1}})
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, format=old)))
    monkeypatch.setenv(_configs.ENV, str(path))
    with pytest.raises(ValueError, match=rf"old.json: format {old}, from an older tuner whose {unnamed} do not "
                                         r"name the activation.*re-run python -m bicyclegan.kernels.tune"):
        nat._config(torch.randn(2, 3, 7, 9), False, site="norm_act.bwd", variant="leaky_relu,from_y")


class _LaunchRecorder:
    """Stands in for a @triton.jit kernel: records each launch's tile knobs and launches the real one."""

    def __init__(self, kernel, names=("BLOCK_P", "BLOCK_C", "num_warps")):
        self.kernel, self.knobs, self.names = kernel, [], names

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.knobs.append({k: kwargs[k] for k in self.names})
            return self.kernel[grid](*args, **kwargs)
        return launch


def test_a_zcat_entry_serves_only_its_activation(tmp_path, monkeypatch):
    """The fused concatenation's activation is its kernels' ACT constexpr, another binary each: an
    entry timed with LeakyReLU drives the LeakyReLU launches only (forward and backward, through the
    op); none and ReLU at the same shape get the heuristic. Results stay the reference's."""
    from bicyclegan.kernels import z_concat_act, z_concat_act_ref
    from bicyclegan.kernels import zinject_triton as zt
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(3, 3, 5, 3, generator=g), torch.randn(3, 3, generator=g)
    tuned = {"BLOCK_P": 4, "BLOCK_C": 2, "num_warps": 1}  # 4 position and 3 channel blocks
    heuristic = zt._zcat_heuristic(15, 6, False)
    assert heuristic != tuned
    shape = "3x3x5x3x3"
    monkeypatch.setenv(_configs.ENV, str(_table(tmp_path / "t.json", {
        f"zcat.fwd|{shape}|float32|nchw|leaky_relu": tuned, f"zcat.bwd|{shape}|float32|nchw|leaky_relu": tuned})))
    fwd, bwd = _LaunchRecorder(zt._zcat_fwd_kernel), _LaunchRecorder(zt._zcat_bwd_kernel)
    monkeypatch.setattr(zt, "_zcat_fwd_kernel", fwd)
    monkeypatch.setattr(zt, "_zcat_bwd_kernel", bwd)
    grad = torch.randn(3, 6, 5, 3, generator=g)
    for act, expected in (("leaky_relu", tuned), ("none", heuristic), ("relu", heuristic)):
        fwd.knobs.clear()
        bwd.knobs.clear()
        xs, zs = x.clone().requires_grad_(), z.clone().requires_grad_()
        y = z_concat_act(xs, zs, act, impl="triton")
        y.backward(grad)
        assert (fwd.knobs, bwd.knobs) == ([expected], [expected]), act
        xe, ze = x.clone().requires_grad_(), z.clone().requires_grad_()
        ye = z_concat_act_ref(xe, ze, act)
        ye.backward(grad)
        for got, want in ((y, ye), (xs.grad, xe.grad), (zs.grad, ze.grad)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="variant must be one of"):
        _configs.key("zcat.fwd", (3, 3, 5, 3, 3), torch.float32, False)


def test_a_pool_entry_drives_its_launches_and_only_its_shape(tmp_path, monkeypatch):
    """pool.fwd and pool.bwd entries set the pooling launches' elements a program and warps, through
    the op (forward and backward); another shape, or the same shape in channels_last, gets the
    heuristic. Results stay torch's."""
    import torch.nn.functional as F

    from bicyclegan.kernels import avg_pool2d
    from bicyclegan.kernels import avg_pool_triton as apt
    g = torch.Generator().manual_seed(0)
    fwd_knobs, bwd_knobs = {"BLOCK_I": 16, "num_warps": 1}, {"BLOCK_I": 32, "num_warps": 2}
    heuristic = apt._heuristic()
    assert heuristic not in (fwd_knobs, bwd_knobs)
    monkeypatch.setenv(_configs.ENV, str(_table(tmp_path / "t.json", {
        "pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": fwd_knobs,
        "pool.bwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": bwd_knobs})))
    names = ("BLOCK", "num_warps")
    fwd, bwd = _LaunchRecorder(apt._pool_fwd_kernel, names), _LaunchRecorder(apt._pool_bwd_kernel, names)
    monkeypatch.setattr(apt, "_pool_fwd_kernel", fwd)
    monkeypatch.setattr(apt, "_pool_bwd_kernel", bwd)

    def as_launched(knobs):
        return {"BLOCK": knobs["BLOCK_I"], "num_warps": knobs["num_warps"]}
    x9 = torch.randn(2, 3, 9, 7, generator=g)
    for x, want_f, want_b in ((x9, fwd_knobs, bwd_knobs), (torch.randn(2, 3, 8, 7, generator=g), heuristic, heuristic),
                              (x9.contiguous(memory_format=CL), heuristic, heuristic)):
        fwd.knobs.clear()
        bwd.knobs.clear()
        xs, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
        y = avg_pool2d(xs, 3, 2, 1, count_include_pad=False, impl="triton")
        ye = F.avg_pool2d(xe, 3, 2, 1, count_include_pad=False)
        grad = torch.randn(ye.shape, generator=g)
        y.backward(grad)
        ye.backward(grad)
        assert (fwd.knobs, bwd.knobs) == ([as_launched(want_f)], [as_launched(want_b)]), tuple(x.shape)
        torch.testing.assert_close(y, ye, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xs.grad, xe.grad, rtol=1e-5, atol=1e-6)


def test_whole_plane_single_pass_is_a_candidate_for_the_planes_the_heuristic_loops_over():
    """An NCHW plane the heuristic loops over (more than MAX_TILE positions), up to WHOLE_TILE: the
    tuner also tries it in one tile (single pass) on 16 warps (in the quick set too) and 32, and
    the tuner's own check passes it, forward and backward, in each norm variant the networks use.
    Not in channels_last, not over WHOLE_TILE, not where the heuristic is single-pass already."""
    from bicyclegan.kernels import norm_act_triton as nat
    whole = {"BLOCK_C": 1, "BLOCK_HW": 8192, "split": 1}
    x = torch.empty(1, 2, 72, 72)  # 5184 positions: looped by the heuristic (MAX_TILE 4096)
    assert not nat._complete(x, nat._heuristic(x, False))["single"]
    full, quick = nat.candidates(x, False), nat.candidates(x, False, quick=True)
    assert full[1] == quick[1] == dict(whole, num_warps=16) and dict(whole, num_warps=32) in full
    assert nat._complete(x, full[1])["single"] and len(quick) == 4
    assert all(c["BLOCK_HW"] < 8192 for c in nat.candidates(x.contiguous(memory_format=CL), True))
    edge = nat.candidates(torch.empty(1, 2, 128, 128), False)  # the networks' largest planes: WHOLE_TILE
    assert edge[1] == {"BLOCK_C": 1, "BLOCK_HW": nat.WHOLE_TILE, "split": 1, "num_warps": 16}
    big = torch.empty(1, 2, 129, 128)  # over WHOLE_TILE once rounded up to a power of two
    assert all(c["BLOCK_HW"] <= 2 * nat.MAX_TILE for c in nat.candidates(big, False))
    small = torch.empty(1, 2, 64, 64)  # single pass already
    assert all(c["BLOCK_C"] != 1 or c["BLOCK_HW"] <= 4096 for c in nat.candidates(small, False))
    for site in ("norm_act.fwd", "norm_act.bwd"):
        for act in ("leaky_relu", "relu", "none"):
            case = tune.Case((site, (1, 2, 72, 72), "float32", False, act), CPU, False)
            assert case.candidates[1] == dict(whole, num_warps=16)
            assert case.check(case.candidates[1]) is None, (site, act)


def test_merge_adds_a_partial_sweep_to_a_table(tmp_path, capsys):
    """--merge: a sweep of some sites joins a table (its entries win where both name a launch), in
    place; one made on another device or Triton minor version, or with a bad entry, is refused
    and the table left as it was."""
    base = _table(tmp_path / "base.json", {"norm_act.fwd|2x3x7x9|float32|cl|elu": {"BLOCK_C": 2, "BLOCK_HW": 8,
                                                                                     "split": 3, "num_warps": 2},
                                           "pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": {"BLOCK_I": 16,
                                                                                         "num_warps": 1}})
    new = _table(tmp_path / "new.json", {"pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": {"BLOCK_I": 32, "num_warps": 2},
                                         "pool.bwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": {"BLOCK_I": 64, "num_warps": 4}})
    tune.main(["--out", str(base), "--merge", str(new)])
    assert "1 entries added, 1 replaced" in capsys.readouterr().out
    entries = {_configs.key_text(k): v for k, v in _configs.read_table(base, CPU).items()}
    assert entries == {"norm_act.fwd|2x3x7x9|float32|cl|elu": {"BLOCK_C": 2, "BLOCK_HW": 8, "split": 3, "num_warps": 2},
                       "pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": {"BLOCK_I": 32, "num_warps": 2},
                       "pool.bwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": {"BLOCK_I": 64, "num_warps": 4}}
    before = base.read_text()
    for made, why in ((dict(device="NVIDIA H100"), "device 'NVIDIA H100'"),
                      (dict(triton_version="2.0.0"), "triton '2.0.0'")):
        other = _table(tmp_path / "other.json", {"pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw": {"BLOCK_I": 8,
                                                                                            "num_warps": 1}}, **made)
        with pytest.raises(SystemExit):
            tune.main(["--out", str(base), "--merge", str(other)])
        assert f"{other} was made with {why}" in capsys.readouterr().err
    bad = _table(tmp_path / "bad.json", {"pool.fwd|2x3x9x7|float32|nchw": {"BLOCK_I": 3, "num_warps": 1}})
    with pytest.raises(SystemExit):
        tune.main(["--out", str(base), "--merge", str(bad)])
    assert "entry 'pool.fwd|2x3x9x7|float32|nchw' is not a valid launch key and config" in capsys.readouterr().err
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "f9.json").write_text('{"format": 9}')
    for name, said in (("none.json", "none.json: no such file"),
                       ("folder.json", "folder.json: cannot be read (Is a directory)"),  # (a traceback)
                       ("list.json", "writes; found a JSON list"), ("f9.json", "writes; found format 9, no 'entries'")):
        with pytest.raises(SystemExit) as e:
            tune.main(["--out", str(base), "--merge", str(tmp_path / name)])
        assert e.value.code == 2 and said in capsys.readouterr().err, name
    with pytest.raises(SystemExit) as e:  # (exit 1 by SystemExit's text, where every other refusal is 2)
        tune.main(["--out", str(tmp_path / "folder.json"), "--dry-run", "--sites", "pool"])
    assert e.value.code == 2 and "folder.json is no file (a folder or a device)" in capsys.readouterr().err
    assert base.read_text() == before


def test_merge_drops_what_the_new_sweep_failed_and_names_what_it_did_not_reach(tmp_path, capsys):
    # merge only updated the entries: a launch NEW failed (its heuristic now fails its check) kept its old entry
    # and the failure went unrecorded; old entries NEW did not reach, and the old skipped list, stayed unsaid.
    fwd, bwd, pool = ("norm_act.fwd|2x3x4x4|float32|cl|relu", "norm_act.bwd|2x3x4x4|float32|cl|relu,from_x",
                      "pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw")
    fwd2 = fwd.replace("2x3x4x4", "2x3x8x8")
    norm = {"BLOCK_C": 2, "BLOCK_HW": 8, "split": 1, "num_warps": 2}
    base = _table(tmp_path / "base.json", {fwd: norm, fwd2: norm, bwd: norm, pool: {"BLOCK_I": 16, "num_warps": 1}})
    data = json.loads(base.read_text())
    data.update(failed={"norm_act.bwd|2x3x9x9|float32|cl|relu,from_x": {"error": "e"}, "pool.bwd|x": {"error": "e"}},
                skipped=[["norm_act.fwd", "(16, 3, 4, 4)"], ["pool.bwd", "(2, 3, 9, 9)"]])
    base.write_text(json.dumps(data))
    new = _table(tmp_path / "new.json", {"norm_act.bwd|2x3x9x9|float32|cl|relu,from_x": dict(norm, num_warps=4)})
    data = json.loads(new.read_text())
    data.update(sites=["norm_act.bwd", "norm_act.fwd"], failed={fwd: {"error": "the heuristic fails its check"}},
                skipped=[["norm_act.bwd", "(16, 3, 4, 4)"]])
    new.write_text(json.dumps(data))
    tune.main(["--out", str(base), "--merge", str(new)])
    out = capsys.readouterr().out
    assert "1 entries added, 0 replaced, 1 dropped (failed)" in out and f"  dropped: {fwd}\n" in out
    assert "2 entries of the sites" in out and f"  kept: {bwd}\n  kept: {fwd2}\n" in out
    merged = json.loads(base.read_text())
    assert set(merged["entries"]) == {fwd2, bwd, pool, "norm_act.bwd|2x3x9x9|float32|cl|relu,from_x"}
    assert merged["failed"] == {"pool.bwd|x": {"error": "e"}, fwd: {"error": "the heuristic fails its check"}}
    assert merged["skipped"] == [["pool.bwd", "(2, 3, 9, 9)"], ["norm_act.bwd", "(16, 3, 4, 4)"]]


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_training_refuses_a_tuning_table_it_cannot_use_before_it_writes_its_folder(tmp_path, monkeypatch, capsys,
                                                                                     dry_run):
    # Read at the kernels' first launch, a broken $BICYCLEGAN_KERNEL_TUNING table was a traceback after the run
    # folder was written (whose leftovers then refused the rerun), and train --dry-run passed it
    from bicyclegan.engine.cli import main
    (tmp_path / "nj.json").write_text("nope")
    monkeypatch.setenv(_configs.ENV, str(tmp_path / "nj.json"))
    _configs.reload()
    argv = ["train", "--out", str(tmp_path / "run"), "--dataroot", str(tmp_path / "none"), "--device", "cpu",
            "--impl", "triton", "--no-eval", *(["--dry-run"] if dry_run else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"bicyclegan train: TuningTableError: kernel tuning table {tmp_path / 'nj.json'}: not JSON " \
                  f"(Expecting value: line 1 column 1 (char 0))\n", err
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv(_configs.ENV, str(tmp_path / "none.json"))
    assert main([*argv, "--impl", "ref"]) == 2  # the kernels' table unread (the missing data refused)
    assert "TuningTableError" not in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("failed", ["pool.fwd|x"]), ("skipped", {"pool.fwd": 1}),
                                          ("skipped", ["pool.fwd"]), ("sites", "pool.fwd")])
def test_merge_refuses_a_damaged_table_naming_it_and_leaves_the_table_alone(tmp_path, capsys, field, value):
    # A 'failed' list or a 'skipped' of no specs was a TypeError traceback out of merge; a 'sites' string was
    # swept as its letters (no site), so an old entry NEW failed stayed in the table, unsaid.
    pool = "pool.fwd|2x3x9x7x3x3x2x2x1x1|float32|nchw"
    base = _table(tmp_path / "base.json", {pool: {"BLOCK_I": 16, "num_warps": 1}})
    for damaged, other in ((base, _table(tmp_path / "new.json", {})), (_table(tmp_path / "new.json", {}), base)):
        data = json.loads(damaged.read_text())
        data.update({field: value, "failed": {pool: {"error": "e"}}} if field == "sites" else {field: value})
        damaged.write_text(json.dumps(data))
        before = base.read_text()
        with pytest.raises(SystemExit) as e:
            tune.main(["--out", str(base), "--merge", str(tmp_path / "new.json")])
        assert e.value.code == 2 and f"{damaged}: expected 'failed' an object, 'sites' a list of sites" \
            in capsys.readouterr().err
        assert base.read_text() == before
        _table(tmp_path / "base.json", {pool: {"BLOCK_I": 16, "num_warps": 1}})


def test_merge_refuses_the_sweeps_options_it_would_drop(tmp_path, capsys):
    # --merge NEW --sites pool merged every site NEW has, the --sites dropped without a word
    base = _table(tmp_path / "base.json", {})
    new = _table(tmp_path / "new.json", {"norm_act.fwd|2x3x7x9|float32|cl|elu": {"BLOCK_C": 2, "BLOCK_HW": 8,
                                                                                 "split": 3, "num_warps": 2}})
    before = base.read_text()
    for extra, named in ((["--sites", "pool"], "--sites"), (["--quick", "--jobs", "2"], "--quick, --jobs"),
                         (["--dry-run", "--budget-s", "5"], "--dry-run, --budget-s")):
        with pytest.raises(SystemExit) as e:
            tune.main(["--out", str(base), "--merge", str(new), *extra])
        assert e.value.code == 2 and f"--merge sweeps nothing, so {named} would do nothing" in capsys.readouterr().err
        assert base.read_text() == before
