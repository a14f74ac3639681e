"""Whole-step CUDA graph: BicycleGAN.train_step captured once, then replayed for every batch.

At the reference's batch size a step is hundreds of small kernels, so launch overhead dominates on a
modern GPU; replaying a graph removes it. train_step is written for this (static shapes, z drawn
on the device, no host syncs, no requires_grad toggling); Adam is built capturable with a device
learning rate (BicycleGAN does so when cfg.cuda_graph is set). Warm-up iterations run on a side
stream and are then undone, so capturing changes no weight.
"""
from __future__ import annotations

import copy

import torch

from .model import BicycleGAN


class GraphedTrainStep:
    def __init__(self, model: BicycleGAN, example_batch: dict, warmup: int = 3):
        if model.device.type != "cuda":
            raise RuntimeError(f"cuda_graph needs the model on a CUDA device, it is on {model.device}")
        if model.cfg.amp == "fp16":
            raise RuntimeError("cuda_graph needs amp=bf16 or off (fp16's GradScaler syncs with the host)")
        if not all(o.defaults.get("capturable") for o in model.optimizers.values()):
            raise RuntimeError("cuda_graph needs capturable optimisers: build BicycleGAN with cfg.cuda_graph=True")
        self.model = model
        # The graph reads its inputs from these buffers; every batch is copied into them.
        self.static = {k: example_batch[k].to(model.device).clone() for k in ("A", "B")}
        snapshot = copy.deepcopy(model.training_state())
        rng = torch.cuda.get_rng_state(model.device)
        side = torch.cuda.Stream(model.device)
        side.wait_stream(torch.cuda.current_stream(model.device))
        with torch.cuda.stream(side):  # compile kernels, settle allocations and optimiser state
            for _ in range(warmup):
                model.train_step(self.static)
        torch.cuda.current_stream(model.device).wait_stream(side)
        model.load_training_state(snapshot)
        torch.cuda.set_rng_state(rng, model.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.losses = model.train_step(self.static)

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        for k, buf in self.static.items():
            if batch[k].shape != buf.shape:
                raise ValueError(f"cuda_graph: batch {k} has shape {tuple(batch[k].shape)}, the captured "
                                 f"step takes {tuple(buf.shape)} (use drop_last)")
            buf.copy_(batch[k], non_blocking=True)
        self.graph.replay()
        return {k: v.clone() for k, v in self.losses.items()}
