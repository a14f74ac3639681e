"""`interpolate`: the paths through z (the reference's formulas), the frames written (strip, GIF,
MP4, gallery) and the errors, on a tiny random-weight model."""
import importlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from bicyclegan.engine import BicycleGAN, ConfigError, interpolate, make_config
from bicyclegan.engine.checkpoint import save_checkpoint
from bicyclegan.engine.cli import main
from bicyclegan.engine.images import to_uint8
from bicyclegan.engine.interpolate import _gif_bytes, mp4_available, path_codes
from bicyclegan.engine.model import interp_z
from bicyclegan.engine.runtime import Dist
from bicyclegan.pipelines import DatasetError, make_demo_dataset

TINY = dict(netG="unet", crop_size=32, ngf=4, nef=4, ndf=4, netE="resnet_128", netD="basic_128_multi",
            netD2="basic_128_multi", impl="ref", load_size=32, preprocess="none", num_workers=0, backend="torch")
SCALE = 4  # 32 px tiles are written at 128 px


def reference_interp_z(z0, z1, n, mode):
    """The reference's util.interp_z, written out with numpy."""
    ratios = [k / (n - 1) for k in range(n)]
    if mode == "slerp":
        omega = np.arccos(np.dot(z0 / (np.linalg.norm(z0) + 1e-10), z1 / (np.linalg.norm(z1) + 1e-10)))
        if abs(np.sin(omega)) >= 1e-10:
            return np.stack([np.sin((1 - r) * omega) / np.sin(omega) * z0 + np.sin(r * omega) / np.sin(omega) * z1
                             for r in ratios])
    return np.stack([(1 - r) * z0 + r * z1 for r in ratios])


@pytest.mark.parametrize("mode", ["slerp", "linear"])
def test_interp_z_is_the_references(mode):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(8, generator=g), torch.randn(8, generator=g)
    want = reference_interp_z(z0.double().numpy(), z1.double().numpy(), 6, mode)
    np.testing.assert_allclose(interp_z(z0, z1, 6, mode).double().numpy(), want, rtol=1e-6, atol=1e-6)


def test_interp_z_known_answers():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = interp_z(e1, e2, 3, "slerp")[1]
    torch.testing.assert_close(mid, torch.tensor([1.0, 1.0]) / math.sqrt(2))  # on the unit circle
    torch.testing.assert_close(interp_z(e1, e2, 3, "linear")[1], torch.tensor([0.5, 0.5]))
    # parallel codes: slerp is undefined and falls back to linear, as the reference does
    torch.testing.assert_close(interp_z(e1, 3 * e1, 3, "slerp"), torch.tensor([[1.0, 0], [2.0, 0], [3.0, 0]]))


def test_path_codes_visit_every_code_once():
    codes = torch.randn(4, 8)
    zs = path_codes(codes, 5)
    assert len(zs) == 3 * 5 + 1
    torch.testing.assert_close(zs[::5], codes)  # segment i starts at code i; the last frame is the last code
    assert len({tuple(z.tolist()) for z in zs}) == len(zs)  # no frame twice at the joins
    with pytest.raises(ConfigError, match=">= 2 codes"):
        path_codes(codes[:1], 5)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=4, n_test=0, n_val=4, size=32)


def tiny(root, **kw):
    torch.manual_seed(3)
    return BicycleGAN(make_config("reference", dataroot=str(root), **{**TINY, **kw}), device="cpu", training=False)


def val_batch(root, model):
    from bicyclegan.engine.runtime import build_loader
    cfg = model.cfg
    return next(iter(build_loader(cfg.model, cfg.data, root, "val", device="cpu", batch_size=8, shuffle=False,
                                  augment=False)))


def tiles(strip: Image.Image, n: int) -> list[np.ndarray]:
    """The n tiles of a strip (128 px each, 2 px apart), back at 32 px."""
    a = np.asarray(strip)
    return [a[::SCALE, i * (32 * SCALE + 2): i * (32 * SCALE + 2) + 32 * SCALE: SCALE] for i in range(n)]


def test_random_path_frames_strip_gif_mp4_and_gallery(tmp_path, demo_root):
    model = tiny(demo_root)
    out = interpolate(model, out=tmp_path / "o", num=2, segments=2, frames=3, seed=5, fps=10, progress=False)
    n = 2 * 3 + 1
    batch = val_batch(demo_root, model)
    stems = [p.split("/")[-1][:-4] for p in batch["paths"][:2]]
    codes = torch.randn(3, 8, generator=torch.Generator().manual_seed(5))
    meta = json.loads((out / "path.json").read_text())
    torch.testing.assert_close(torch.tensor(meta["codes"]), codes)
    assert meta["path"] == "random" and meta["mode"] == "slerp" and meta["frames_per_segment"] == 3
    zs = path_codes(codes, 3, "slerp")
    for i, stem in enumerate(stems):
        with torch.no_grad():
            want = to_uint8(model.sampler.eval()(batch["A"][i:i + 1].expand(n, -1, -1, -1), zs))
        strip = Image.open(out / "images" / f"{stem}_strip.png")
        assert strip.size == ((n + 1) * (32 * SCALE + 2) - 2, 32 * SCALE)
        got = tiles(strip, n + 1)
        assert np.array_equal(got[0], to_uint8(batch["A"][i:i + 1])[0])  # the input first
        for j in range(n):
            assert np.array_equal(got[j + 1], want[j]), (stem, j)
        gif = Image.open(out / "images" / f"{stem}.gif")
        assert gif.size == (2 * 32 * SCALE + 2, 32 * SCALE) and gif.info["duration"] == 100 and gif.info["loop"] == 0
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == n
    page = (out / "index.html").read_text()
    assert page.count("<tr>") == 2 and f"images/{stems[0]}.gif" in page and "slerp through 3 random codes" in page
    # Every picture the page shows is there. The strip ((n + 1) x 130 px: 2,858 px for 21 frames) is on
    # a line of its own, scrolling within the window: as a cell of the input's row it pushed the GIF,
    # the MP4 and its own caption thousands of pixels off the screen.
    srcs = re.findall(r"src='([^']+)'", page)
    assert srcs and all((out / src).is_file() for src in srcs)
    for line in page.splitlines():
        if line.startswith("<tr>"):
            assert "_strip.png" not in line
    for stem in stems:
        assert (f"<tr class='wide'><td class='wide' colspan='{3 + mp4_available()}'><div class='scroll'>"
                f"<img src='images/{stem}_strip.png' alt='{stem}.png: the input, then the {n} frames along the path, "
                f"left to right' loading='lazy'></div>the input, then the {n} frames") in page
    if mp4_available():
        import imageio_ffmpeg
        reader = imageio_ffmpeg.read_frames(str(out / "images" / f"{stems[0]}.mp4"))
        info = next(reader)
        assert info["size"] == (2 * 32 * SCALE + 2, 32 * SCALE) and info["fps"] == 10
        assert sum(1 for _ in reader) == n
        assert f"<video src='images/{stems[0]}.mp4'" in page


def test_encoded_path_goes_through_the_reference_images_codes(tmp_path, demo_root):
    model = tiny(demo_root)
    out = interpolate(model, out=tmp_path / "o", num=1, path="encoded", refs=[2, 0, 3], frames=2, mode="linear",
                      mp4=False, progress=False)
    batch = val_batch(demo_root, model)
    with torch.no_grad():
        mu = model.eval().encode(batch["B"][[2, 0, 3]])
        at_codes = to_uint8(model.sampler(batch["A"][:1].expand(3, -1, -1, -1), mu))
    stem = batch["paths"][0].split("/")[-1][:-4]
    got = tiles(Image.open(out / "images" / f"{stem}_strip.png"), 1 + 5)
    for k in range(3):  # frames 0, 2, 4 are the codes themselves
        assert np.array_equal(got[1 + 2 * k], at_codes[k])
    meta = json.loads((out / "path.json").read_text())
    assert meta["refs"] == [batch["paths"][r].split("/")[-1] for r in (2, 0, 3)] and meta["seed"] is None
    assert not list((out / "images").glob("*.mp4"))


def test_encoded_path_through_references_of_two_sizes(tmp_path, demo_root):
    # Under preprocess none the references keep their own sizes: they were joined into one batch for
    # the encoder, a RuntimeError (torch.cat) traceback. Expected: each file's halves, read here.
    folder, rng = tmp_path / "data" / "val", np.random.default_rng(6)
    folder.mkdir(parents=True)
    pics = [rng.integers(0, 256, (h, 2 * h, 3), dtype=np.uint8) for h in (32, 64)]
    for i, pic in enumerate(pics):
        Image.fromarray(pic).save(folder / f"{i}.png")
    model = tiny(demo_root)
    out = interpolate(model, folder.parent, out=tmp_path / "o", num=1, path="encoded", refs=[1, 0], frames=1,
                      mp4=False, progress=False)
    half = [torch.from_numpy(p.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1)[None] for p in pics]
    A, Bs = half[0][..., :32], [half[1][..., 64:], half[0][..., 32:]]
    with torch.no_grad():
        want = [to_uint8(model.sampler.eval()(A, model.encode(B)))[0] for B in Bs]
    got = tiles(Image.open(out / "images" / "0_strip.png"), 3)
    assert np.abs(got[1].astype(int) - want[0]).max() <= 1 and np.abs(got[2].astype(int) - want[1]).max() <= 1


def test_interpolate_errors(tmp_path, demo_root, monkeypatch):
    with pytest.raises(ConfigError, match="nothing to interpolate"):
        interpolate(tiny(demo_root, variant="pix2pix", nz=0), out=tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="needs a trained encoder"):
        interpolate(tiny(demo_root, variant="pix2pix"), out=tmp_path / "a", path="encoded", progress=False)
    with pytest.raises(ConfigError, match=r"refs=\[0, 9\]: .* has 4 inputs"):
        interpolate(tiny(demo_root), out=tmp_path / "a", path="encoded", refs=[0, 9], progress=False)
    # refs as --refs takes them ("0,2" was read character by character: int(',') a ValueError), and input numbers
    # alone (1.7 was read as input 1, a negative one counted from the end)
    for bad in ([0, 1.7], [0, -1], [True, 0], "0,x", ["0", "1"]):
        with pytest.raises(ConfigError, match=f"^refs={re.escape(repr(bad))}: expected input numbers, 0 for the first"):
            interpolate(tiny(demo_root), out=tmp_path / "a", path="encoded", refs=bad, progress=False)
    assert not (tmp_path / "a").exists()
    out = interpolate(tiny(demo_root), out=tmp_path / "r", num=1, path="encoded", refs=" 2, 0", frames=1,
                      progress=False, mp4=False)
    assert json.loads((out / "path.json").read_text())["refs"] == ["00002.png", "00000.png"]
    out = interpolate(tiny(demo_root), out=tmp_path / "t", num=1, path="encoded", refs=torch.tensor([2, 0]),
                      frames=1, progress=False, mp4=False)  # (a tensor of input numbers, as before)
    assert json.loads((out / "path.json").read_text())["refs"] == ["00002.png", "00000.png"]
    # A folder of inputs alone has no B to encode: said as such (it was "refs=[0, ..., 5]: plain/val has
    # 1 inputs", naming a folder that is not there).
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(plain / "a.png")
    with pytest.raises(DatasetError, match=f"^{re.escape(str(plain))} has no B images"):
        interpolate(tiny(demo_root), plain, out=tmp_path / "a", path="encoded", progress=False)
    with pytest.raises(ConfigError, match="mode='cubic'"):
        interpolate(tiny(demo_root), out=tmp_path / "a", mode="cubic", progress=False)
    for fps in (float("nan"), float("inf"), 1e-9, 0, -1, 1000):  # tracebacks after files were written
        with pytest.raises(ConfigError, match=r"fps must be a number from 0\.01 to 100"):
            interpolate(tiny(demo_root), out=tmp_path / "f", fps=fps, progress=False)
    assert not (tmp_path / "f").exists()
    module = importlib.import_module("bicyclegan.engine.interpolate")  # not the function of that name
    monkeypatch.setattr(module, "mp4_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'bicyclegan\[video\]'"):
        interpolate(tiny(demo_root), out=tmp_path / "a", mp4=True, progress=False)
    out = interpolate(tiny(demo_root), out=tmp_path / "b", num=1, segments=1, frames=1, progress=False)
    assert not list(out.glob("images/*.mp4")) and list(out.glob("images/*.gif"))  # mp4=None: only when installed


def test_more_frames_than_a_strip_can_hold_are_refused_before_any_work(tmp_path, demo_root):
    # --frames 100000 (a typo for 10) computed for over 5 minutes toward a strip of 500,001 frames, millions of
    # pixels wide; at most 1,000 frames per input, counted from the segments or the references given.
    with pytest.raises(ConfigError, match=r"^5 segments x frames=200 \+ 1 = 1001 frames per input: at most 1000 "):
        interpolate(tiny(demo_root), out=tmp_path / "a", frames=200, progress=False)
    refs = iter(range(12))  # (counted without being spent)
    with pytest.raises(ConfigError, match=r"^11 segments x frames=100 \+ 1 = 1101 frames"):
        interpolate(tiny(demo_root), out=tmp_path / "a", path="encoded", refs=refs, frames=100, progress=False)
    assert not (tmp_path / "a").exists()
    # The most: 1,000 frames (999 segments of one frame)
    out = interpolate(tiny(demo_root), out=tmp_path / "b", num=1, segments=999, frames=1, progress=False,
                      mp4=False)
    assert len(json.loads((out / "path.json").read_text())["codes"]) == 1000


def test_a_seed_or_segments_that_make_no_code_are_refused(tmp_path, demo_root, capsys):
    # --seed 3 with --path encoded, or --segments 9 with --refs 0,1, were taken and changed nothing (path.json
    # said seed null; the path had one segment), as --refs with --path random is refused
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "m.pt")
    run = ["interpolate", str(ckpt), "--out", str(tmp_path / "o"), "--no-mp4", "--device", "cpu", "--frames", "1"]
    assert main([*run, "--path", "encoded", "--refs", "0,1", "--seed", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bicyclegan interpolate: ConfigError: seed=3 draws the codes of path=random; path=encoded takes them from "
        "E(B) of the reference images (refs): leave seed out")
    assert main([*run, "--path", "encoded", "--refs", "0,1", "--segments", "9"]) == 2
    assert "ConfigError: segments=9 counts the codes of path=random, and of path=encoded without refs (its " \
           "first segments + 1 inputs); refs=[0, 1] picks the codes, 2 of them: leave segments out" in \
           capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # where they make the codes they are taken: the random path's seed, the encoded path's first inputs
    assert main([*run, "--seed", "7", "--segments", "2", "--num", "1"]) == 0
    said = json.loads((tmp_path / "o" / "path.json").read_text())
    assert (said["seed"], len(said["codes"])) == (7, 3)
    assert main([*run, "--path", "encoded", "--segments", "2", "--num", "1"]) == 0
    assert json.loads((tmp_path / "o" / "path.json").read_text())["refs"] == ["00000.png", "00001.png", "00002.png"]
    assert main([*run, "--path", "encoded", "--refs", "2,0", "--num", "1"]) == 0  # (--refs alone: no default segments)
    assert json.loads((tmp_path / "o" / "path.json").read_text())["refs"] == ["00002.png", "00000.png"]
    # a seed of 0 is given too (not a missing one)
    with pytest.raises(ConfigError, match=r"^seed=0 draws the codes of path=random"):
        interpolate(tiny(demo_root), out=tmp_path / "z", path="encoded", refs=[0, 1], seed=0, progress=False)
    # neither given: video.py's, 5 segments (6 codes) drawn with seed 50
    assert main([*run, "--num", "1"]) == 0
    said = json.loads((tmp_path / "o" / "path.json").read_text())
    assert said["seed"] == 50 and torch.equal(torch.tensor(said["codes"]),
                                              torch.randn(6, 8, generator=torch.Generator().manual_seed(50)))


def test_an_encoded_path_without_refs_on_too_few_inputs_says_so_in_the_options_given(tmp_path, demo_root):
    # The default references (the first segments + 1 = 6 inputs) on a split of 4 were refused as
    # "refs=[0, 1, 2, 3, 4, 5]: ... has 4 inputs", refs the user never gave
    val = f"{demo_root / 'val'} has 4 inputs"
    with pytest.raises(ConfigError, match=re.escape(
            f"path=encoded without refs takes the B images of the first segments + 1 = 6 inputs as its codes; "
            f"{val}: give segments=3 or fewer, or refs")):
        interpolate(tiny(demo_root), out=tmp_path / "a", path="encoded", progress=False)
    out = interpolate(tiny(demo_root), out=tmp_path / "b", path="encoded", segments=3, num=1, frames=1, mp4=False,
                      progress=False)
    assert json.loads((out / "path.json").read_text())["refs"] == ["00000.png", "00001.png", "00002.png", "00003.png"]
    # refs given may name more codes than the inputs read (there and back: 3 codes from 2 inputs)
    out = interpolate(tiny(demo_root), out=tmp_path / "c", path="encoded", refs=[0, 1, 0], num=1, frames=1,
                      mp4=False, progress=False)
    assert json.loads((out / "path.json").read_text())["refs"] == ["00000.png", "00001.png", "00000.png"]
    # a split of one input has no segments to offer: another split, or the random path
    (tmp_path / "one" / "val").mkdir(parents=True)
    (tmp_path / "one" / "val" / "00000.png").write_bytes((demo_root / "val" / "00000.png").read_bytes())
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'one' / 'val'} has 1 input: give a split of 2 or "
                                                    f"more, or path=random")):
        interpolate(tiny(demo_root), tmp_path / "one", out=tmp_path / "d", path="encoded", progress=False)


def test_an_input_the_generator_cannot_take_is_refused_by_name_before_anything_is_written(tmp_path, demo_root):
    # preprocess none keeps a 40 x 48 (W x H) file's size; the tiny U-Net (5 levels) needs multiples of 32.
    # It was G's ValueError, a traceback.
    folder = tmp_path / "plain"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(folder / "b odd.png")
    with pytest.raises(ConfigError, match=r"b odd\.png is 40x48 after preprocess=none, not a multiple of 32"):
        interpolate(tiny(demo_root), folder, out=tmp_path / "o", num=2, progress=False)
    assert not (tmp_path / "o").exists()


def test_the_data_settings_as_sample_takes_them_let_such_an_input_through(tmp_path, demo_root, capsys):
    # The refusal above says to use a preprocess that crops, and interpolate had no --preprocess (nor
    # --load_size, --crop_size, --direction): a folder of photos could not be walked with a model
    # trained at full resolution. The input shown is the file resized (bicubic) to 32 x 32.
    folder = tmp_path / "plain"
    folder.mkdir()
    pic = np.random.default_rng(4).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(pic).save(folder / "b odd.png")
    want = np.asarray(Image.fromarray(pic).resize((32, 32), Image.BICUBIC))
    out = interpolate(tiny(demo_root), folder, out=tmp_path / "o", num=1, segments=1, frames=1, mp4=False,
                      preprocess="resize_and_crop", progress=False)
    assert np.array_equal(tiles(Image.open(out / "images" / "b odd_strip.png"), 1)[0], want)
    with pytest.raises(ConfigError, match="load_size=16 is smaller than the crop 32x32"):
        interpolate(tiny(demo_root), folder, out=tmp_path / "x", preprocess="resize_and_crop", load_size=16,
                    progress=False)
    # a crop the U-Net cannot take: its sides, not "set num_downs <= 4" (a training's option; the weights fix it)
    with pytest.raises(ConfigError, match=r"^crop_size=40: this model's U-Net \(5 levels\) takes sides that are "
                                          r"multiples of 32, such as 32$"):
        interpolate(tiny(demo_root), folder, out=tmp_path / "x", preprocess="crop", crop_size=40, progress=False)
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "run" / "checkpoints" / "latest.pt")
    assert main(["interpolate", str(ckpt), "--dataroot", str(folder), "--out", str(tmp_path / "c"), "--no-mp4",
                 "--segments", "1", "--frames", "1", "--preprocess", "resize_and_crop", "--device", "cpu"]) == 0
    assert np.array_equal(tiles(Image.open(tmp_path / "c" / "images" / "b odd_strip.png"), 1)[0], want)


class Rank1(Dist):
    """Rank 1 of 2 as far as interpolate's reading goes, in one process (no group): the codes rank 0 would
    broadcast it makes itself (a random path's, alike on every rank)."""
    def main_says(self, work):
        return work()


class Rank1Told(Dist):
    """Rank 1 of 2 told the codes of an encoded path (zeros: what it reads is under test), which rank 0 makes."""
    def main_says(self, work):
        return torch.zeros(2, 8)


@pytest.mark.parametrize("dist, path, refs, want, share", [
    (Dist(rank=0, world=2), "random", None, ["00000", "00001"], ["00000", "00001"]),
    (Rank1(rank=1, world=2), "random", None, ["00002", "00003"], ["00002", "00003"]),
    (Dist(rank=0, world=2), "encoded", [1, 0], ["00000", "00001"], ["00000", "00001"]),  # rank 0 encodes its refs
    (Rank1Told(rank=1, world=2), "encoded", [0, 1], ["00002", "00003"], ["00002", "00003"]),  # ... rank 1 reads none
    # (rank 0 of 3 has input 0 of 4; one pass from the first input it needs to the last)
    (Dist(rank=0, world=3), "encoded", [0, 2], ["00000", "00001", "00002"], ["00000"]),
])
def test_under_torchrun_a_rank_reads_only_the_inputs_it_needs(tmp_path, demo_root, monkeypatch, dist, path, refs,
                                                              want, share):
    # Every rank read all --num inputs into memory before taking its share of them (write_shares'): a rank
    # reads its share of the 4 inputs, rank 0 the references of an encoded path too.
    module = importlib.import_module("bicyclegan.engine.interpolate")  # not the function of that name
    build, read = module.build_loader, []

    class Counting:  # the loader, noting the inputs read
        def __init__(self, loader):
            self.loader = loader

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def __enter__(self):  # (`with` looks these up on the class, not through __getattr__)
            return self

        def __exit__(self, *exc):
            self.loader.close()

        def __iter__(self):
            for batch in self.loader:
                read.append(Path(batch["paths"][0]).stem)
                yield batch
    monkeypatch.setattr(module, "build_loader", lambda *a, **k: Counting(build(*a, **k)))
    out = interpolate(tiny(demo_root), out=tmp_path / "o", num=4, frames=1, path=path, refs=refs,
                      mp4=False, progress=False, dist=dist)
    assert read == want
    assert sorted(p.name for p in (out / "images").glob("*_strip.png")) == [f"{stem}_strip.png" for stem in share]


def _copy_val(demo_root, folder):
    (folder / "val").mkdir(parents=True)
    for f in sorted((demo_root / "val").glob("*.png")):
        (folder / "val" / f.name).write_bytes(f.read_bytes())
    return folder


def _breaking(monkeypatch, victim):
    """The loader of interpolate, with `victim` broken once it has been checked."""
    module = importlib.import_module("bicyclegan.engine.interpolate")  # not the function of that name
    build = module.build_loader

    def breaking(*args, **kwargs):
        loader = build(*args, **kwargs)
        victim.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        return loader
    monkeypatch.setattr(module, "build_loader", breaking)


def _images(out):
    return {p.name: p.read_bytes() for p in (out / "images").iterdir() if p.suffix == ".png"}


def test_a_file_broken_since_the_checks_is_left_out_and_the_others_keep_their_places(tmp_path, demo_root,
                                                                                       monkeypatch):
    # skip_bad puts the next good input in a broken one's place: it must not be written under the broken one's
    # name (nor a second time). The files are those of a call without the broken input; a broken reference image
    # of an encoded path is said as such (unchecked, it would be a KeyError once the codes are made).
    data = _copy_val(demo_root, tmp_path / "data")
    whole = _images(interpolate(tiny(demo_root), data, out=tmp_path / "whole", num=4, frames=1, mp4=False,
                                progress=False))
    assert len(whole) == 2 * 4  # input and strip
    _breaking(monkeypatch, data / "val" / "00001.png")
    got = _images(interpolate(tiny(demo_root), data, out=tmp_path / "broken", num=4, frames=1, mp4=False,
                              progress=False, skip_bad=True))
    assert got == {k: v for k, v in whole.items() if not k.startswith("00001_")}
    _copy_val(demo_root, tmp_path / "data2")
    _breaking(monkeypatch, tmp_path / "data2" / "val" / "00001.png")
    with pytest.raises(DatasetError, match=f"^the reference image {re.escape(str(tmp_path / 'data2' / 'val'))}"
                                           f"/00001.png could not be read$"):
        interpolate(tiny(demo_root), tmp_path / "data2", out=tmp_path / "r", num=1, path="encoded", refs=[0, 1],
                    frames=1, mp4=False, progress=False, skip_bad=True)


def test_an_input_between_the_references_that_no_output_shows_is_not_read(tmp_path, demo_root):
    # One input interpolated, codes of inputs 0 and 2: input 1 is in the one pass but neither shown nor encoded,
    # so a file the generator could not take there stops nothing (preprocess none: 40 px wide is no multiple of 32)
    data = _copy_val(demo_root, tmp_path / "data")
    Image.fromarray(np.zeros((32, 80, 3), np.uint8)).save(data / "val" / "00001.png")
    out = interpolate(tiny(demo_root), data, out=tmp_path / "o", num=1, path="encoded", refs=[0, 2], frames=1,
                      mp4=False, progress=False)
    assert json.loads((out / "path.json").read_text())["refs"] == ["00000.png", "00002.png"]


def test_the_count_line_counts_the_inputs_there_are(tmp_path, demo_root, capsys):
    # --num above the split's 4 inputs: 4 interpolated, of 4
    interpolate(tiny(demo_root), out=tmp_path / "o", num=9, frames=1, mp4=False, progress=True)
    assert capsys.readouterr().err.splitlines()[-1] == "interpolated 4/4"


def test_a_size_the_preprocess_does_not_use_is_refused(tmp_path, demo_root, capsys):
    # preprocess none (the tiny model's) keeps each file's size: --load_size 16 or --crop_size 64 were taken and
    # every file came out byte for byte as without them; crop uses no load_size, scale_width no crop_size
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "m.pt")
    cases = [(["sample", "--load_size", "16"], "load_size=16 changes nothing under preprocess=none (as the model "
              "was trained): only resize_and_crop, scale_width, scale_width_and_crop resize to it"),
             (["interpolate", "--crop_size", "64"], "crop_size=64 changes nothing under preprocess=none (as the "
              "model was trained): only resize_and_crop, crop, scale_width_and_crop crop to it"),
             (["sample", "--preprocess", "crop", "--load_size", "64"], "load_size=64 changes nothing under "
              "preprocess=crop (as given)"),
             (["interpolate", "--preprocess", "scale_width", "--load_size", "32", "--crop_size", "32"],
              "crop_size=32 changes nothing under preprocess=scale_width (as given)")]
    for (command, *options), said in cases:
        assert main([command, str(ckpt), "--out", str(tmp_path / "o"), "--device", "cpu", *options]) == 2
        assert f"ConfigError: {said}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # where the preprocess uses them they are taken
    for i, (command, *options) in enumerate((
            ["sample", "--preprocess", "crop", "--crop_size", "32"],
            ["interpolate", "--preprocess", "scale_width", "--load_size", "32", "--no-mp4"],
            ["sample", "--preprocess", "scale_width_and_crop", "--load_size", "32", "--crop_size", "32"])):
        assert main([command, str(ckpt), "--out", str(tmp_path / str(i)), "--device", "cpu", "--num", "1",
                     *options]) == 0


def test_interpolate_command(tmp_path, demo_root, capsys):
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "run" / "checkpoints" / "latest.pt")
    assert main(["interpolate", str(ckpt), "--num", "1", "--segments", "1", "--frames", "2", "--no-mp4",
                 "--device", "cpu"]) == 0
    out = tmp_path / "run" / "results" / "interpolate_val"
    assert f"gallery: {out / 'index.html'}" in capsys.readouterr().out
    assert len(list((out / "images").glob("*_strip.png"))) == 1
    with pytest.raises(SystemExit):
        main(["interpolate", str(ckpt), "--refs", "1,x"])
    assert main(["interpolate", str(ckpt), "--path", "encoded", "--refs", "0,7", "--device", "cpu"]) == 2
    assert "refs=[0, 7]" in capsys.readouterr().err


def test_refs_counted_from_the_end_are_refused_saying_what_is_taken_in_either_spelling(tmp_path, demo_root, capsys):
    # `--refs -1,2` was argparse's "expected one argument" (a '-' and a digit, not a number, taken for an option)
    # where `--refs=-1,2` said "must be >= 0, got -1"; neither said that refs are input numbers from 0.
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "m.pt")
    said = ("bicyclegan interpolate: error: argument --refs: expects input numbers separated by commas, 0 for the "
            "first input of the split (e.g. 0,4,7; none counted from the end), got '-1,2'")
    for refs in (["--refs", "-1,2"], ["--refs=-1,2"]):
        with pytest.raises(SystemExit) as e:
            main(["interpolate", str(ckpt), "--path", "encoded", *refs])
        assert e.value.code == 2 and capsys.readouterr().err.strip().endswith(said), refs
    # A value starting with '-' and a digit is a value whatever the option: compare's names, train's floats.
    parse = importlib.import_module("bicyclegan.engine.cli").build_parser().parse_args
    assert parse(["compare", "a", "b", "--names", "-1,x"]).names == "-1,x"
    assert parse(["train", "--lr", "-1e-3"]).lr == -0.001


@pytest.mark.parametrize("fps, delay", [(8, 120), (50, 20), (100, 20), (0.5, 2000)])  # 8: 12.5 cs kept as 12
def test_a_gifs_frames_are_never_faster_than_browsers_play_them(fps, delay):
    # A GIF's delays are hundredths of a second; browsers play one under 2 (above 50 fps) at 10 fps:
    # --fps 100 came out ten times slower than asked. Each frame's delay, read back by Pillow:
    frames = [Image.new("RGB", (4, 4), (v, 0, 0)) for v in (0, 120, 240)]
    gif = Image.open(io.BytesIO(_gif_bytes(frames, fps)))
    delays = []
    for i in range(gif.n_frames):
        gif.seek(i)
        delays.append(gif.info["duration"])
    assert delays == [delay] * 3


@pytest.mark.parametrize("fps", [8, 60])
def test_path_json_gives_the_rate_the_gifs_play_at_and_a_capped_one_is_said(tmp_path, demo_root, capsys, fps):
    # --fps 60 wrote 50 fps GIFs silently, with path.json saying 60; 8 fps is 12 hundredths a frame (8.33 fps)
    ckpt = save_checkpoint(tiny(demo_root), tmp_path / "m.pt")
    assert main(["interpolate", str(ckpt), "--out", str(tmp_path / "o"), "--no-mp4", "--device", "cpu", "--frames",
                 "2", "--segments", "1", "--num", "1", "--fps", str(fps)]) == 0
    said = json.loads((tmp_path / "o" / "path.json").read_text())
    gif = Image.open(next((tmp_path / "o" / "images").glob("*.gif")))
    assert said["fps"] == fps and said["gif_fps"] == pytest.approx(1000 / gif.info["duration"])
    printed = capsys.readouterr().out
    if fps == 60:
        assert said["gif_fps"] == 50 and "note: the GIFs play at 50 fps, as browsers play faster ones at 10 fps " \
            "(path.json: fps, gif_fps)" in printed
    else:
        assert said["gif_fps"] == pytest.approx(100 / 12) and "note:" not in printed


def test_a_gifs_frames_keep_their_pictures_colours():
    # Each frame gets a palette of its own (fast octree, for speed): read back, its pixels are the frame's to a few
    # levels, and frames of other colours keep theirs (one palette for all would have merged them).
    g = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 64)[None, :, None] * np.ones((48, 1, 3))
    frames = [np.clip(ramp * w + g.normal(0, 6, (48, 64, 3)), 0, 255).astype(np.uint8)
              for w in (np.array([1.0, 0.2, 0.0]), np.array([0.0, 0.6, 1.0]), np.array([0.9, 0.9, 0.9]))]
    gif = Image.open(io.BytesIO(_gif_bytes([Image.fromarray(f) for f in frames], 8)))
    for i, want in enumerate(frames):
        gif.seek(i)
        got = np.asarray(gif.convert("RGB")).astype(int)
        # (noisy ramps: 3.1-3.3 levels of mean error, 13 at most; Pillow's default, dithered, 1.6-2.5 and 17)
        assert np.abs(got - want).mean() < 4 and np.abs(got - want).max() <= 24, i


@pytest.mark.parametrize("side, written", [(32, 128), (48, 144), (65, 130), (100, 200), (127, 254), (128, 128),
                                           (200, 200)])
def test_small_images_are_enlarged_to_at_least_view_px(side, written):
    """A whole factor that reaches 128 px (nearest: each pixel a block): a 65-127 px image was written at its
    own size, smaller than a 64 px one's 128."""
    from bicyclegan.engine.interpolate import _enlarge
    img = np.random.default_rng(side).integers(0, 256, (side, side + 3, 3), dtype=np.uint8)
    out = np.asarray(_enlarge(img))
    s = written // side
    assert out.shape == (side * s, (side + 3) * s, 3)
    assert (out == img.repeat(s, 0).repeat(s, 1)).all()
