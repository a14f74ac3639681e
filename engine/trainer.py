"""The training loop: data, schedules, logging, sample grids, checkpoints and resume.

A run folder holds config.json (the resolved config), log.jsonl (one JSON line per log interval),
samples/ (PNG grids), checkpoints/latest.pt and, for the demo data, eval.json. Launched under
torchrun, every rank trains on its shard and rank 0 writes the files.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import CheckpointError, check_compatible, read_checkpoint, save_checkpoint, set_rng_state
from .config import TrainConfig
from .model import BicycleGAN
from .sample import save_grid


def lr_factor(epoch: int, niter: int, niter_decay: int) -> float:
    """The reference's "linear" policy: constant for niter epochs, then linearly towards zero."""
    return 1.0 - max(0, epoch + 1 - niter) / float(niter_decay + 1)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but no CUDA GPU is available; use device=cpu or auto")
    return dev


def init_distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group when torchrun launched us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and world > 1:
        # Triton launches, CUDA-graph capture streams and the loader's pinning thread all use the
        # *current* device: left at 0, every rank would launch its kernels on GPU 0.
        torch.cuda.set_device(local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, local_rank


def demo_root(cfg: TrainConfig) -> Path:
    h, w = cfg.model.size
    return Path(cfg.out).parent / f"demo_data_{h}x{w}_seed{cfg.seed}"


def ensure_demo_data(cfg: TrainConfig) -> Path:
    from bicyclegan.pipelines import make_demo_dataset
    root = demo_root(cfg)
    if not (root / "train").is_dir():
        make_demo_dataset(root, size=cfg.model.size, seed=cfg.seed)
    return root


def build_loader(cfg: TrainConfig, root, phase: str, device, rank=0, world=1, batch_size=None,
                 shuffle=None):
    from bicyclegan.pipelines import make_loader
    kw = {} if shuffle is None else {"shuffle": shuffle, "drop_last": shuffle}
    return make_loader(
        root, batch_size=batch_size or cfg.batch_size, load_size=cfg.load_size,
        crop_size=cfg.model.size, phase=phase, direction=cfg.direction,
        flip=not cfg.no_flip, backend=cfg.backend, rank=rank, world_size=world, seed=cfg.seed,
        num_workers=cfg.num_workers, preprocess=cfg.preprocess, input_nc=cfg.model.input_nc,
        output_nc=cfg.model.output_nc, device=device, **kw)


class Progress:
    """One status line: updated in place on a terminal, printed per log interval otherwise."""

    def __init__(self, total: int, enabled: bool = True, stream=sys.stderr):
        self.total, self.enabled, self.stream = total, enabled, stream
        self.tty = stream.isatty()
        self.t0 = time.time()

    def update(self, step: int, epoch: int, img_per_s: float, losses: dict) -> None:
        if not self.enabled:
            return
        frac = step / max(1, self.total)
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        elapsed = time.time() - self.t0
        eta = elapsed / max(frac, 1e-9) * (1 - frac) if frac > 0 else 0
        loss_txt = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
        line = (f"epoch {epoch} [{bar}] {step}/{self.total} {100 * frac:3.0f}% {img_per_s:6.1f} img/s "
                f"eta {int(eta) // 60}m{int(eta) % 60:02d}s | {loss_txt}")
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True):
        self.cfg = cfg
        self.rank, self.world, local_rank = init_distributed()
        self.main = self.rank == 0
        self.device = pick_device(cfg.device, local_rank)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # shapes are static (drop_last): pick conv algorithms once
        self.run_dir = Path(cfg.out)
        self.ckpt_path = self.run_dir / "checkpoints" / "latest.pt"
        if self.ckpt_path.exists() and not resume:
            raise CheckpointError(f"{self.run_dir} already holds a run ({self.ckpt_path}); pass "
                                  f"--resume to continue it or choose another --out")
        if resume and not self.ckpt_path.exists():
            raise CheckpointError(f"--resume: no checkpoint at {self.ckpt_path}")
        self.is_demo = cfg.dataroot is None
        if self.is_demo:
            if self.main:
                ensure_demo_data(cfg)
            if self.world > 1:
                dist.barrier()
        self.data_root = demo_root(cfg) if self.is_demo else Path(cfg.dataroot)

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.model = BicycleGAN(cfg, device=self.device)
        self.loader = build_loader(cfg, self.data_root, "train", self.device, self.rank, self.world)
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.data_root}: fewer training images than one batch of "
                             f"{cfg.batch_size} (per rank, with drop_last)")
        epochs = cfg.niter + cfg.niter_decay
        self.total_steps = cfg.max_steps if cfg.max_steps is not None else epochs * self.steps_per_epoch
        self.step, self.epoch = 0, 0
        self.rng_to_restore = None
        self.graphed = None  # the captured step (cuda_graph), made from the first batch
        if resume:
            state = read_checkpoint(self.ckpt_path)
            check_compatible(state["config"], cfg, self.ckpt_path)
            self.model.load_training_state(state)
            self.step, self.epoch = state["step"], state["epoch"]
            self.rng_to_restore = state["rng"]
            self._truncate_log()
        self.sample_A, self.sample_B, self.sample_z = self._fixed_samples()
        torch.manual_seed(cfg.seed * 1000 + self.rank)  # each rank draws its own z
        self.progress = Progress(self.total_steps, progress and self.main)

    def _truncate_log(self):
        """Drop log lines written after the checkpoint we resume from: they will be written again."""
        path = self.run_dir / "log.jsonl"
        if self.main and path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip()
                    and json.loads(ln).get("step", 0) <= self.step]
            path.write_text("".join(ln + "\n" for ln in keep))

    def _fixed_samples(self):
        """The same inputs and z for every grid of the run, from the test split when there is one."""
        phase = "test" if (self.data_root / "test").is_dir() else "train"
        loader = build_loader(self.cfg, self.data_root, phase, self.device,
                              batch_size=min(8, self.cfg.batch_size * 4), shuffle=False)
        batch = next(iter(loader))
        g = torch.Generator().manual_seed(1234)
        z = torch.randn(self.cfg.n_samples, self.cfg.model.nz, generator=g).to(self.device)
        return batch["A"].to(self.device), batch["B"].to(self.device), z

    def _set_lr(self):
        f = lr_factor(self.epoch, self.cfg.niter, self.cfg.niter_decay)
        for opt in self.model.optimizers.values():
            for group in opt.param_groups:
                if isinstance(group["lr"], torch.Tensor):  # capturable Adam (CUDA graph): in place
                    group["lr"].fill_(self.cfg.lr * f)
                else:
                    group["lr"] = self.cfg.lr * f
        return self.cfg.lr * f

    def _write_config(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg.to_dict()
        cfg["dataroot_resolved"] = str(self.data_root)
        (self.run_dir / "config.json").write_text(json.dumps(cfg, indent=2))

    def save(self):
        if self.main:
            save_checkpoint(self.model, self.ckpt_path, step=self.step, epoch=self.epoch)

    def sample(self):
        if self.main:
            path = save_grid(self.model, self.sample_A, self.sample_B, self.sample_z,
                             self.run_dir / "samples" / f"step_{self.step:07d}.png")
            save_grid(self.model, self.sample_A, self.sample_B, self.sample_z,
                      self.run_dir / "samples" / "latest.png")
            return path

    def train(self) -> Path:
        cfg = self.cfg
        if self.main:
            self._write_config()
        log = open(self.run_dir / "log.jsonl", "a") if self.main else None
        sums, count, t_last, step_last = {}, 0, time.time(), self.step
        if cfg.compile in ("default", "max-autotune"):
            self.progress.note(f"compile={cfg.compile}: the first iterations compile the networks (a minute or more)")
        try:
            while self.step < self.total_steps:
                lr = self._set_lr()
                self.loader.set_epoch(self.epoch)
                it = iter(self.loader)
                skip = self.step - self.epoch * self.steps_per_epoch
                for _ in range(skip):  # resuming mid-epoch: replay the data order
                    next(it)
                if self.rng_to_restore is not None:
                    if self.rank == 0:
                        set_rng_state(self.rng_to_restore)
                    else:
                        # The checkpoint holds rank 0's generators only: restoring them everywhere would
                        # give every rank the same z draws. Other ranks start a stream of their own.
                        torch.manual_seed((self.cfg.seed * 1000 + self.rank) * 1_000_003 + self.step)
                    self.rng_to_restore = None
                for batch in it:
                    if cfg.cuda_graph and self.graphed is None:
                        from .graph import GraphedTrainStep
                        self.graphed = GraphedTrainStep(self.model, batch)
                    losses = self.graphed(batch) if self.graphed else self.model.train_step(batch)
                    self.step += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0) + v
                    count += 1
                    if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                        now = time.time()
                        ips = (self.step - step_last) * cfg.batch_size * self.world / max(now - t_last, 1e-9)
                        avg = {k: float(v) / count for k, v in sums.items()}  # the only host syncs
                        if log:
                            log.write(json.dumps({"step": self.step, "epoch": self.epoch, "lr": lr,
                                                  "img_per_s": round(ips, 2), **avg}) + "\n")
                            log.flush()
                        self.progress.update(self.step, self.epoch, ips, avg)
                        sums, count, t_last, step_last = {}, 0, now, self.step
                    if self.step % cfg.sample_every == 0:
                        self.sample()
                    if self.step % cfg.save_every == 0:
                        self.save()
                    if self.step >= self.total_steps:
                        break
                else:
                    self.epoch += 1
        finally:
            self.progress.close()
            if log:
                log.close()
        self.save()
        self.sample()
        return self.run_dir
