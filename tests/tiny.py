"""The tiny model and run settings engine tests share: 32 px, 4 filters, the PyTorch layers (the
Triton kernels have tests of their own), one worker-less loader; a few steps take a second."""
from bicyclegan.engine import make_config

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128",
            netD="basic_128_multi", netD2="basic_128_multi", impl="ref")


def tiny_cfg(out, root, **kw):
    """A TrainConfig of the tiny model training on the data at `root` into `out`; kw overrides."""
    base = dict(batch_size=4, load_size=32, preprocess="none", num_workers=0, backend="torch",
                niter=1, niter_decay=1, log_every=1, sample_every=3, save_every=3, n_samples=2,
                dataroot=str(root), out=str(out))
    return make_config("reference", **{**TINY, **base, **kw})


BROKEN_PNG = b"\x89PNG\r\n\x1a\n broken"  # a PNG's signature and no image: unreadable


def break_at_step(trainer, step: int, *files) -> None:
    """Overwrite `files` with BROKEN_PNG as `trainer` begins the training step after its step `step` (its
    files checked long before): a dataset rewritten while the run trains."""
    real = trainer.model.train_step

    def train_step(batch):
        if trainer.step == step:
            for f in files:
                f.write_bytes(BROKEN_PNG)
        return real(batch)
    trainer.model.train_step = train_step
