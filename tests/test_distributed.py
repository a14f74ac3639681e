"""Data parallelism under torch.distributed (gloo on CPU, two processes): gradients are averaged,
so every rank ends an iteration with the same weights although each saw different data."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bicyclegan.engine import BicycleGAN, ModelConfig, TrainConfig

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi", impl="ref")


def _cfg():
    return TrainConfig(model=ModelConfig(**TINY), batch_size=4)


def _data(seed):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(4, 3, 32, 32, generator=g) * 2 - 1}


def _worker(rank, world, port, out_dir, sync):
    torch.set_num_threads(1)
    if sync:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial weights
    model = BicycleGAN(_cfg())
    torch.manual_seed(10 + rank)  # each rank its own z
    model.train_step(_data(100 + rank))  # and its own data
    torch.save({n: net.state_dict() for n, net in model.networks().items()}, os.path.join(out_dir, f"{rank}.pt"))
    if sync:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ranks_stay_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), True), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    for net in r0:
        for k in r0[net]:
            torch.testing.assert_close(r0[net][k], r1[net][k], rtol=0, atol=0, msg=f"{net}.{k}")
    # Without the all-reduce, rank 0 alone would have moved elsewhere: the averaging did happen.
    (tmp_path / "solo").mkdir()
    _worker(0, 1, 0, str(tmp_path / "solo"), sync=False)
    solo = torch.load(tmp_path / "solo" / "0.pt")
    assert any(not torch.equal(solo["G"][k], r0["G"][k]) for k in solo["G"])
