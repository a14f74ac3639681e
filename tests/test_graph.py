"""The CUDA-graph training step (engine/graph.py): refusals on CPU, behaviour on a GPU."""
import json

import pytest
import torch

from bicyclegan.engine import BicycleGAN, ConfigError, ModelConfig, TrainConfig
from bicyclegan.engine.graph import GraphedTrainStep, warm_up

TINY = dict(netG="unet", crop_size=32, ngf=8, nef=8, ndf=8, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi")


def cfg(**kw):
    return TrainConfig(model=ModelConfig(**TINY, impl=kw.pop("impl", "auto")), batch_size=4,
                       cuda_graph=True, **kw)


def data(device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(4, 3, 32, 32, generator=g) * 2 - 1).to(device) for k in ("A", "B")}


def test_refuses_cpu_and_fp16():
    with pytest.raises(RuntimeError, match="CUDA device"):
        GraphedTrainStep(BicycleGAN(cfg(impl="ref")), data())
    with pytest.raises(ConfigError, match="cuda_graph"):
        cfg(amp="fp16")


def test_plain_optimisers_are_refused_with_what_makes_them_capturable(monkeypatch):
    """BicycleGAN makes its Adams capturable only when built on the GPU with cuda_graph=True; a model
    built on the CPU and moved with .to() keeps plain ones, and was told to set cuda_graph=True,
    which it had. (On the CPU, with the model's device reported as a GPU: the check before any CUDA call.)"""
    plain = BicycleGAN(TrainConfig(model=ModelConfig(**TINY, impl="ref"), batch_size=4))
    moved = BicycleGAN(cfg(impl="ref"))  # cuda_graph=True, built on the CPU
    monkeypatch.setattr(BicycleGAN, "device", property(lambda self: torch.device("cuda", 0)))
    with pytest.raises(RuntimeError, match=r"cuda_graph needs capturable optimisers: build BicycleGAN with "
                                           r"cfg.cuda_graph=True$"):
        GraphedTrainStep(plain, data())
    with pytest.raises(RuntimeError, match=r"cuda_graph needs capturable optimisers, which BicycleGAN makes on "
                                           r"the GPU only: build it there \(BicycleGAN\(cfg, device='cuda'\)\), "
                                           r"not on the CPU and then moved with \.to\(\)"):
        GraphedTrainStep(moved, data())


def _run(seed, steps, amp="off", learnable=False, **kw):
    torch.manual_seed(seed)
    model = BicycleGAN(cfg(amp=amp, **kw), device="cuda")
    before = [p.detach().clone() for p in model.G.parameters()]
    batch = data("cuda")
    if learnable:
        batch["B"] = -batch["A"]
    step = GraphedTrainStep(model, batch)
    after_capture = [p.detach().clone() for p in model.G.parameters()]
    losses = [step(batch) for _ in range(steps)]
    torch.cuda.synchronize()
    return model, before, after_capture, losses


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_graphed_training_learns_and_is_deterministic(amp, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    model, before, after_capture, losses = _run(0, 40, amp)
    for a, b in zip(before, after_capture):  # warm-up iterations were undone
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(torch.isfinite(v).all() for step in losses for v in step.values())
    assert set(losses[0]) == {"G_GAN", "G_GAN2", "G_L1", "kl", "z_L1", "D", "D2"}
    # replays really update the weights (whether G_L1 falls in 40 steps of the full objective on
    # random pairs is not reliable: the eager step's rose in 1 of 6 seeds on a CPU; see the next test)
    assert any(not torch.equal(p, a) for p, a in zip(model.G.parameters(), after_capture))
    _, _, _, again = _run(0, 40, amp)
    torch.testing.assert_close(losses[-1]["G_L1"], again[-1]["G_L1"])


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_graphed_training_learns(amp):
    """Replays descend: without the GAN terms and with B = -A, |G(A, E(B)) - B| falls steadily (the
    eager step on a CPU: every one of steps 30-39 under 0.973 of the first, in 8 of 8 seeds)."""
    _, _, _, losses = _run(0, 40, amp, learnable=True, lambda_GAN=0.0, lambda_GAN2=0.0)
    first = float(losses[0]["G_L1"])
    assert max(float(step["G_L1"]) for step in losses[30:]) < 0.99 * first, [float(s["G_L1"]) for s in losses]


@pytest.mark.gpu
def test_graphed_lr_follows_the_schedule():
    # A learning rate baked into the graph at capture would keep training at the first epoch's rate:
    # at 0 the replays must leave every weight where it is, and move them again once it is back.
    torch.manual_seed(0)
    model = BicycleGAN(cfg(), device="cuda")
    batch = data("cuda")
    step = GraphedTrainStep(model, batch)
    step(batch)
    group = model.optimizers["G"].param_groups[0]
    assert isinstance(group["lr"], torch.Tensor) and group["lr"].is_cuda
    model.set_lr(0.0)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(3):
        step(batch)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, frozen[n], rtol=0, atol=0, msg=n)
    model.set_lr(2e-4)
    step(batch)
    assert any(not torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n.startswith("G."))


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_warm_up_is_undone_in_place(norm):
    """The capture must find Adam's state allocated (else every replay re-zeroes it) and the
    weights untouched: after warm_up the model steps exactly like a fresh one."""
    def fresh():
        torch.manual_seed(0)
        m = BicycleGAN(TrainConfig(model=ModelConfig(**{**TINY, "norm": norm}, impl="ref"), batch_size=4, ema=0.9))
        return m
    model, twin = fresh(), fresh()
    params = {n: p for n, p in model.named_parameters()}
    torch.manual_seed(5)
    warm_up(model, data(), steps=2)
    assert {n: p for n, p in model.named_parameters()} == params  # the same tensor objects
    state = [t for o in model.optimizers.values() for st in o.state.values() for t in st.values()]
    assert len(state) == 3 * sum(1 for _ in model.parameters())  # step, exp_avg, exp_avg_sq: allocated
    assert all(not t.any() for t in state)  # and as fresh as a new Adam's
    # warm_up also restored the RNG (not seeded again here): the next draws are those of the twin
    losses = [model.train_step(data(seed=s)) for s in (1, 2)]
    torch.manual_seed(5)
    twin_losses = [twin.train_step(data(seed=s)) for s in (1, 2)]
    for a, b in zip(losses, twin_losses):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    for (n, p), q in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    assert model.ema_steps.item() == twin.ema_steps.item() == 2  # the average's count was undone too
    for (n, p), q in zip(model.G_ema.state_dict().items(), twin.G_ema.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"G_ema {n}")
    for (name, o), o2 in zip(model.optimizers.items(), twin.optimizers.values()):
        s1, s2 = o.state_dict()["state"], o2.state_dict()["state"]
        assert s1.keys() == s2.keys(), name
        for i in s1:
            for k in s1[i]:
                torch.testing.assert_close(s1[i][k], s2[i][k], rtol=0, atol=0, msg=f"{name} state {i} {k}")


def test_warm_up_puts_an_fp16_scalers_state_back():
    """warm_up's steps move an fp16 GradScaler's growth tracker (each finite step) or halve its scale (an
    overflow); it undid the weights and Adam's state but left these moved. On the CPU (torch's CPU GradScaler):
    a fresh scaler, and one whose state was set, are as they were after warm_up; a disabled one (amp off) still
    holds nothing."""
    def model(amp="fp16"):
        torch.manual_seed(0)
        return BicycleGAN(TrainConfig(model=ModelConfig(**TINY, impl="ref"), batch_size=4, amp=amp))
    fresh = model()
    assert fresh.scaler.is_enabled()
    want = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
            "_growth_tracker": 0}  # torch's defaults, before any step
    assert fresh.scaler.state_dict() == want
    warm_up(fresh, data(), steps=3)
    assert fresh.scaler.state_dict() == want
    used = model()
    used.train_step(data())  # the scale's tensors made
    set_to = {**want, "scale": 1024.0, "_growth_tracker": 7}
    used.scaler.load_state_dict(set_to)
    warm_up(used, data(), steps=3)
    assert used.scaler.state_dict() == set_to
    # (the steps did move it: without the restore, the state would differ)
    used.train_step(data())
    assert used.scaler.state_dict() != set_to
    off = model("off")
    warm_up(off, data(), steps=1)
    assert not off.scaler.is_enabled() and off.scaler.state_dict() == {}


@pytest.mark.gpu
def test_graphed_steps_equal_eager_steps(monkeypatch):
    """cae has no random draw in its step, so replays must follow the eager steps; a graph that
    re-created Adam's state on every replay would drift from the second step on. The moving
    average rides along: its weight is read from a device count inside the graph, so a count
    frozen at capture (or a host-side weight) would give a different average."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    batches = [data("cuda", seed=s) for s in range(5)]
    runs = []
    for graphed in (False, True):
        torch.manual_seed(0)
        model = BicycleGAN(cfg(variant="cae", ema=0.9), device="cuda")
        step = GraphedTrainStep(model, batches[0]) if graphed else model.train_step
        losses = [step(b) for b in batches]
        assert model.ema_steps.item() == len(batches)
        runs.append((losses, model.state_dict(), model.G_ema.state_dict()))
    (eager, w_eager, ema_eager), (graph, w_graph, ema_graph) = runs
    for i, (a, b) in enumerate(zip(eager, graph)):
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=lambda m, i=i, k=k: f"step {i} {k}: {m}")
    for k in w_eager:
        torch.testing.assert_close(w_graph[k], w_eager[k], rtol=1e-3, atol=1e-5, msg=k)
    for k in ema_eager:
        torch.testing.assert_close(ema_graph[k], ema_eager[k], rtol=1e-3, atol=1e-5, msg=f"G_ema {k}")


def test_resume_keeps_the_optimisers_own_lr_tensor_and_flags():
    """A checkpoint from a plain run loaded into a graphed one (and back): load_state_dict would
    swap in the saved param_groups whole, losing capturable and the device lr tensor the graph reads."""
    torch.manual_seed(0)
    plain = BicycleGAN(TrainConfig(model=ModelConfig(**TINY, impl="ref"), batch_size=4, lr=1e-3))
    plain.train_step(data())
    state = plain.training_state()
    graphed = BicycleGAN(TrainConfig(model=ModelConfig(**TINY, impl="ref"), batch_size=4))
    for n, opt in graphed.optimizers.items():  # as BicycleGAN builds them with cuda_graph on a GPU
        params = [p for g in opt.param_groups for p in g["params"]]
        graphed.optimizers[n] = torch.optim.Adam(params, lr=torch.tensor(2e-4), capturable=True)
    lr_tensors = {n: o.param_groups[0]["lr"] for n, o in graphed.optimizers.items()}
    graphed.load_training_state(state)
    for n, o in graphed.optimizers.items():
        g = o.param_groups[0]
        assert g["lr"] is lr_tensors[n] and float(g["lr"]) == pytest.approx(1e-3), n
        assert g["capturable"] is True, n
        assert len(o.state) == len(plain.optimizers[n].state), n
    plain.load_training_state(graphed.training_state())  # and back: a float lr, not capturable
    g = plain.optimizers["G"].param_groups[0]
    assert isinstance(g["lr"], float) and g["lr"] == pytest.approx(1e-3) and g["capturable"] is False


def test_a_replay_copies_the_batch_into_the_captured_inputs_and_refuses_another_shape():
    """__call__ without CUDA: a stand-in graph, so that the copy, the shape check and the returned
    losses are checked on any machine."""
    step = GraphedTrainStep.__new__(GraphedTrainStep)  # what __init__ leaves, without the capture
    step.static = {k: torch.zeros(4, 3, 32, 32) for k in ("A", "B")}
    replays = []

    class Graph:
        def replay(self):
            replays.append({k: v.clone() for k, v in step.static.items()})
            step.losses["G_L1"].add_(1)  # a replay writes the losses into the captured outputs
    step.graph, step.losses = Graph(), {"G_L1": torch.zeros(())}
    batch = data(seed=3)
    first = step(batch)
    assert len(replays) == 1 and all(torch.equal(replays[0][k], batch[k]) for k in ("A", "B"))
    second = step(data(seed=4))
    assert first["G_L1"].item() == 1 and second["G_L1"].item() == 2  # each its own step's, not a view
    for bad in ({"A": batch["A"][:2], "B": batch["B"][:2]},  # a smaller last batch
                {"A": batch["A"][..., :16], "B": batch["B"][..., :16]}):  # another image size
        with pytest.raises(ValueError, match=r"cuda_graph: batch A has shape \(\d+, 3, 32, (32|16)\), the captured "
                                             r"step takes \(4, 3, 32, 32\) \(use drop_last\)"):
            step(bad)
    assert len(replays) == 2


def test_the_trainers_graphed_loop_keeps_every_captured_tensor_in_place(tmp_path, monkeypatch):
    """The trainer's cuda_graph branch, which only a GPU runs, on the CPU with a stand-in for the
    capture. A replay reads and writes the tensors the capture saw, at their addresses: weights,
    buffers, the moving average and its count, Adam's state. Whatever runs between replays (a
    checkpoint, a sample grid, an evaluation, the log) must update them in place, never replace one
    (an optimiser loading a copy of its state would: the graph would go on training the old tensors,
    checked by breaking Trainer.save so); each epoch replays the one capture, a resume captures anew."""
    import dataclasses

    from tiny import tiny_cfg

    from bicyclegan.engine import graph, runtime
    from bicyclegan.engine import trainer as trainer_module
    from bicyclegan.engine.graph import _state_tensors
    from bicyclegan.pipelines import make_demo_dataset

    def places(model):
        return [(id(t), t.data_ptr()) for t in _state_tensors(model)]

    class Capture:
        made, replays = [], 0

        def __init__(self, model, example_batch):
            Capture.made.append(self)
            self.model = model
            self.static = {k: example_batch[k].clone() for k in ("A", "B")}
            warm_up(model, self.static, 2)  # what the real one does before capturing
            self.places = places(model)

        def __call__(self, batch):
            assert places(self.model) == self.places, f"replay {Capture.replays}: a captured tensor was replaced"
            for k, buf in self.static.items():
                buf.copy_(batch[k])
            Capture.replays += 1
            return {k: v.clone() for k, v in self.model.train_step(self.static).items()}

    check = runtime.check_runnable  # refuses cuda_graph on the CPU: asked without it
    monkeypatch.setattr(trainer_module, "check_runnable",
                        lambda cfg, device: check(dataclasses.replace(cfg, cuda_graph=False), device))
    monkeypatch.setattr(graph, "GraphedTrainStep", Capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)  # end_group's, after a graphed run
    root = make_demo_dataset(tmp_path / "data", n_train=8, n_test=2, n_val=2, size=32)
    # epochs of 2 steps: a replay crosses each boundary; a checkpoint, a grid and the log every 2, an evaluation at 4
    cfg = tiny_cfg(tmp_path / "run", root, cuda_graph=True, niter=2, niter_decay=2, max_steps=5, log_every=2,
                   sample_every=2, save_every=2, eval_every=4, ema=0.9)
    trainer_module.train(cfg, evaluate=False, progress=False)
    assert len(Capture.made) == 1 and Capture.replays == 5
    trainer_module.train(dataclasses.replace(cfg, max_steps=7), resume=True, evaluate=False, progress=False)
    assert len(Capture.made) == 2 and Capture.replays == 7
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 5, 6, 7]
