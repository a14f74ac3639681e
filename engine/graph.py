"""Whole-step CUDA graph: BicycleGAN.train_step captured once, then replayed for every batch.

At the reference's batch size a step is hundreds of small kernels, so launch overhead dominates on a
modern GPU; replaying a graph removes it. train_step is written for this (static shapes, z drawn
on the device, no host syncs, no requires_grad toggling); Adam is built capturable with a device
learning rate (BicycleGAN does so when cfg.cuda_graph is set). Warm-up iterations run on a side
stream and are then undone in place, so capturing changes no weight and the graph finds Adam's
state already allocated.
"""
from __future__ import annotations

import torch

from .model import BicycleGAN


def _state_tensors(model: BicycleGAN):
    """Every tensor a training step updates in place: weights, buffers, moving average (and its count),
    optimiser state."""
    nets = [*model.networks().values(), *([model.G_ema] if model.G_ema is not None else [])]
    tensors = [t for net in nets for t in (*net.parameters(), *net.buffers())] + [model.ema_steps]
    return tensors + [t for opt in model.optimizers.values() for st in opt.state.values()
                      for t in st.values() if isinstance(t, torch.Tensor)]


def warm_up(model: BicycleGAN, batch: dict, steps: int) -> None:
    """Run `steps` training steps, then undo them in place, leaving every tensor where it was.

    The steps create the optimiser state (Adam's moments and step count) and settle the allocator and
    kernel caches. Undoing must not replace any tensor: state that a capture found missing would be
    created inside the graph, and every replay would then re-zero Adam's moments and step count.
    A state tensor that did not exist before warm-up goes back to zero, which is Adam's fresh state.
    An fp16 GradScaler's scale and growth tracker (which update() moves) go back too, though
    GraphedTrainStep refuses fp16 (its scaler syncs with the host): warm_up undoes all it changes,
    whoever calls it.
    """
    before = {id(t): (t, t.detach().clone()) for t in _state_tensors(model)}  # holding t keeps its id unique
    # (not among _state_tensors: a fresh scaler makes its tensors at its first step, and zeroed they would be
    # a scale of 0; load_state_dict fills them in place with the values before. A disabled one holds nothing.)
    scaler = model.scaler if model.scaler is not None and model.scaler.is_enabled() else None
    scaler_state = scaler.state_dict() if scaler is not None else None
    rng = torch.get_rng_state(), (torch.cuda.get_rng_state(model.device) if model.device.type == "cuda" else None)
    for _ in range(steps):
        model.train_step(batch)
    with torch.no_grad():
        for t in _state_tensors(model):
            if id(t) in before:
                t.copy_(before[id(t)][1])
            else:
                t.zero_()
    if scaler is not None:
        scaler.load_state_dict(scaler_state)
    torch.set_rng_state(rng[0])
    if rng[1] is not None:
        torch.cuda.set_rng_state(rng[1], model.device)


class GraphedTrainStep:
    def __init__(self, model: BicycleGAN, example_batch: dict, warmup: int = 3):
        if model.device.type != "cuda":
            raise RuntimeError(f"cuda_graph needs the model on a CUDA device, it is on {model.device}")
        if model.cfg.amp == "fp16":
            raise RuntimeError("cuda_graph needs amp=bf16 or off (fp16's GradScaler syncs with the host)")
        if not all(o.defaults.get("capturable") for o in model.optimizers.values()):
            if not model.cfg.cuda_graph:
                raise RuntimeError("cuda_graph needs capturable optimisers: build BicycleGAN with cfg.cuda_graph=True")
            # Asked for, but made on the CPU (no capturable Adam there) and the model moved since.
            raise RuntimeError("cuda_graph needs capturable optimisers, which BicycleGAN makes on the GPU only: "
                               "build it there (BicycleGAN(cfg, device='cuda')), not on the CPU and then moved "
                               "with .to()")
        self.model = model
        # The graph reads its inputs from these buffers; every batch is copied into them.
        self.static = {k: example_batch[k].to(model.device).clone() for k in ("A", "B")}
        side = torch.cuda.Stream(model.device)
        side.wait_stream(torch.cuda.current_stream(model.device))
        with torch.cuda.stream(side):  # capture must not be the first run: see warm_up
            warm_up(model, self.static, warmup)
        torch.cuda.current_stream(model.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: a loader thread pinning memory or copying meanwhile must not invalidate the
        # capture. The capture stream is the model's device's: torch's default one is made on the
        # current device, which need not be it.
        with torch.cuda.device(model.device), torch.cuda.graph(
                self.graph, stream=torch.cuda.Stream(model.device), capture_error_mode="thread_local"):
            self.losses = model.train_step(self.static)

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        for k, buf in self.static.items():
            if batch[k].shape != buf.shape:
                raise ValueError(f"cuda_graph: batch {k} has shape {tuple(batch[k].shape)}, the captured "
                                 f"step takes {tuple(buf.shape)} (use drop_last)")
            buf.copy_(batch[k], non_blocking=True)
        self.graph.replay()
        return {k: v.clone() for k, v in self.losses.items()}
