"""`interpolate`: walks through latent space, as the reference's video.py. For each input, the
outputs G(A, z) along a path through z are written as a PNG strip, an animated GIF and, where
imageio-ffmpeg is installed (`pip install bicyclegan[video]`), an MP4; index.html shows them all.

The path visits codes z_0, ..., z_k in order:
- random: k + 1 draws from N(0, I) with `seed`, the same for every input (as video.py);
- encoded: mu of E(B) for reference images, the ground-truth B of the split's inputs numbered
  `refs` (default: the first k + 1), so every input morphs through the same styles.
Each of the k segments contributes `frames` frames at t = 0, 1/frames, ... (its end is the next
segment's start; the last code closes the path): k * frames + 1 frames. Interpolation is spherical
(slerp, video.py's choice: intermediate codes keep the norm a Gaussian code has) or linear; the
formulas are video.py's (util.interp_z), including slerp's fall-back to linear for parallel codes.
"""
from __future__ import annotations

import importlib.util
import io
import operator
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from bicyclegan.pipelines import DatasetError
from bicyclegan.pipelines.errors import plural
from bicyclegan.pipelines.sharding import shard_range

from .config import MAX_SEED, check_bool, check_int, check_named
from .errors import ConfigError, DivergenceError
from .images import (
    PAD,
    OutputNames,
    claim_outputs,
    drop_gallery,
    prune_outputs,
    refuse_others_results,
    to_uint8,
    write_gallery,
    write_shares,
)
from .io import TempFiles, atomic_write, check_writable, held_folder, save_image, write_json
from .model import INTERP_MODES, interp_z
from .runtime import (
    Dist,
    build_loader,
    check_apart,
    check_input_size,
    gallery_title,
    halves_found,
    inference_data,
    input_label,
    inputs_folder,
    made_alike,
    open_model,
    results_dir,
    results_name,
    with_data_settings,
)

PATHS = ("random", "encoded")
VIEW_PX = 128  # tiny images are enlarged (nearest, by a whole factor) to at least this size in the written files
# Every frame of an input is held at once and laid side by side in its strip: --frames 100000 (a typo) computed
# for minutes toward a strip millions of pixels wide. 1,000 frames: over 2 min of GIF at the default 8 fps.
MAX_FRAMES = 1000


def path_codes(codes: torch.Tensor, frames: int, mode: str = "slerp") -> torch.Tensor:
    """The codes of every frame along codes[0] -> codes[1] -> ... : frames per segment, each
    segment's end left to the next one, then the last code ((k * frames + 1) x nz)."""
    if frames < 1 or len(codes) < 2:
        raise ConfigError(f"a path needs >= 2 codes and >= 1 frame per segment, got {len(codes)} and {frames}")
    steps = [interp_z(codes[i], codes[i + 1], frames + 1, mode)[:-1] for i in range(len(codes) - 1)]
    return torch.cat([*steps, codes[-1:]])


def _enlarge(img: np.ndarray) -> Image.Image:
    h, w = img.shape[:2]
    s = -(-VIEW_PX // min(h, w))  # the whole factor that reaches VIEW_PX: 48 px -> 144, 100 -> 200
    pil = Image.fromarray(img)
    return pil.resize((w * s, h * s), Image.NEAREST) if s > 1 else pil


def _side_by_side(tiles: list[np.ndarray]) -> Image.Image:
    ims = [_enlarge(t) for t in tiles]
    w, h = ims[0].size
    canvas = Image.new("RGB", (len(ims) * (w + PAD) - PAD, h), (255, 255, 255))
    for i, im in enumerate(ims):
        canvas.paste(im, (i * (w + PAD), 0))
    return canvas


# A GIF's frame delay is in hundredths of a second, and browsers play a delay under 2 (above 50 fps)
# at 10 fps: --fps 100 came out at a tenth of its speed. The GIF stops at 50 fps; the MP4 keeps --fps.
GIF_MIN_DELAY_CS = 2
GIF_MAX_FPS = 100 / GIF_MIN_DELAY_CS


def gif_delay_cs(fps: float) -> int:
    """A GIF frame's delay for fps, in the hundredths of a second a GIF holds (8 fps: 12, so 8.33 fps)."""
    return max(GIF_MIN_DELAY_CS, round(100 / fps))


def _gif_bytes(frames: list[Image.Image], fps: float) -> bytes:
    buf = io.BytesIO()
    # A palette of each frame's own by fast octree: Pillow's default conversion (median cut, dithered) was a
    # quarter of interpolate's time (289 ms a GIF of 21 frames of 258 x 128 px, against 40 ms), for ~1 grey level
    # of mean error (0.54 -> 1.25) and half the file size.
    frames = [f.quantize(method=Image.Quantize.FASTOCTREE) for f in frames]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=10 * gif_delay_cs(fps), loop=0)
    return buf.getvalue()


def mp4_available() -> bool:
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def _mp4_bytes(frames: list[Image.Image], fps: float) -> bytes:
    """H.264 in MP4 through imageio-ffmpeg (its ffmpeg writes a file; the bytes are then written
    atomically like every other result). yuv420p needs even sizes: frames are padded with white."""
    import imageio_ffmpeg
    w, h = frames[0].size
    W, H = w + w % 2, h + h % 2
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"
        writer = imageio_ffmpeg.write_frames(str(path), (W, H), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)
        for f in frames:
            canvas = Image.new("RGB", (W, H), (255, 255, 255))
            canvas.paste(f, (0, 0))
            writer.send(np.ascontiguousarray(np.asarray(canvas)).tobytes())
        writer.close()
        return path.read_bytes()


def _checked_arguments(model, out, mode, path, refs, seed, segments, num, frames, fps, mp4, progress):
    """interpolate's arguments checked, before any file is read: (mp4, progress, refs, segments, seed) with
    their defaults filled in (refs a list)."""
    check_named("out", out)  # ("" wrote the gallery into the current folder, among its files)
    mp4, progress = check_bool("mp4", mp4, optional=True), check_bool("progress", progress)  # (skip_bad: DataConfig's)
    if mode not in INTERP_MODES:
        raise ConfigError(f"mode={mode!r}: expected one of {', '.join(INTERP_MODES)}")
    if path not in PATHS:
        raise ConfigError(f"path={path!r}: expected one of {', '.join(PATHS)}")
    refs = None if refs is None else _input_numbers(refs)
    if refs is not None and path != "encoded":
        raise ConfigError(f"refs={list(refs)} picks reference images for path=encoded; path={path} draws its "
                          f"codes from the seed (--seed)")
    # Given where they make no code, they were taken and changed nothing: the path.json of a call with
    # --seed 3 said seed null, one with --segments 9 and two refs had one segment.
    if seed is not None and path == "encoded":
        raise ConfigError(f"seed={seed} draws the codes of path=random; path=encoded takes them from E(B) of the "
                          f"reference images (refs): leave seed out")
    if segments is not None and refs is not None:
        raise ConfigError(f"segments={segments} counts the codes of path=random, and of path=encoded without refs "
                          f"(its first segments + 1 inputs); refs={list(refs)} picks the codes, {len(refs)} of them: "
                          f"leave segments out")
    segments, seed = 5 if segments is None else segments, 50 if seed is None else seed
    for name, value in (("num", num), ("segments", segments), ("frames", frames)):
        check_int(name, value, 1)
    n_codes = segments + 1 if refs is None else len(refs)
    if (n_frames := (n_codes - 1) * frames + 1) > MAX_FRAMES:
        raise ConfigError(f"{n_codes - 1} segments x frames={frames} + 1 = {n_frames} frames per input: at most "
                          f"{MAX_FRAMES} (each input's strip and animation hold every frame); fewer frames or "
                          f"segments")
    check_int("seed", seed, 0, high=MAX_SEED)  # a larger one was torch's ValueError (Overflow when unpacking)
    # A GIF holds each frame's time in hundredths of a second, up to 655 s: nan, inf or 1e-9 were
    # tracebacks after the first files were written.
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0.01 <= fps <= 100):
        raise ConfigError(f"fps must be a number from 0.01 to 100 (frames per second), got {fps!r}")
    if mp4 and not mp4_available():
        raise ConfigError("MP4 output needs imageio-ffmpeg: pip install 'bicyclegan[video]' "
                          "(or --no-mp4; mp4=False in Python)")
    mp4 = mp4_available() if mp4 is None else mp4
    if out is None and not isinstance(model, (str, Path)):
        raise TypeError("interpolate: give `out` when passing a model object")
    return mp4, progress, refs, segments, seed


def _input_numbers(refs) -> list[int]:
    """refs as a list of input numbers (0 the first): a sequence of integers or, as --refs takes them, "0,4,7".
    (The string was read character by character: "0,2" a ValueError of int(','); refs=[0, 1.7] read input 1.)"""
    given = refs
    if isinstance(refs, str):
        refs = [part.strip() for part in refs.split(",") if part.strip()]
        refs = [int(part) if part.lstrip("-").isdigit() else part for part in refs]
    refs = list(refs)  # (counted before it is read: a generator would be spent)
    try:  # (operator.index: an integer of any kind, numpy's and a tensor's too, never 1.7 or a bool)
        numbers = [operator.index(r) for r in refs if not isinstance(r, (bool, np.bool_))]
    except TypeError:
        numbers = []
    if len(numbers) < len(refs) or any(n < 0 for n in numbers):
        raise ConfigError(f"refs={given!r}: expected input numbers, 0 for the first input of the split (e.g. "
                          f"[0, 4, 7] or '0,4,7')")
    return numbers


def _check_references(layout: str, listed: list, chosen: list[int], refs, folder) -> None:
    """path=encoded's reference images, the inputs numbered `chosen` (refs: as given, None: chosen from
    segments), against the `listed` inputs of `folder` (read in `layout`)."""
    # (a folder of inputs alone has no B at all: said first, not as too few inputs for the refs)
    if layout == "single":
        raise DatasetError(f"{folder} has no B images (a folder of inputs alone): path=encoded needs them "
                           f"(use path=random)")
    if refs is None and len(listed) < len(chosen):  # (refs the user never gave: said as segments')
        fewer = (f"segments={len(listed) - 1} or fewer, or refs" if len(listed) > 1
                 else "a split of 2 or more, or path=random")
        raise ConfigError(f"path=encoded without refs takes the B images of the first segments + 1 = {len(chosen)} "
                          f"inputs as its codes; {folder} has {plural(len(listed), 'input')}: give {fewer}")
    if max(chosen) >= len(listed) or min(chosen) < 0:
        raise ConfigError(f"refs={chosen}: {folder} has {plural(len(listed), 'input')} (numbered from 0)")


def _write_inputs(run, zs: torch.Tensor, *, fps: float, mp4: bool, dist: Dist, progress: bool) -> list | None:
    """Each input's outputs along the codes `zs`, made and written (its strip, GIF and MP4) by the rank whose
    share it is (write_shares); rank 0 gets the gallery's rows of every rank, the others None."""
    model, cfg, read, out = run.model, run.cfg, run.read, run.out
    G = model.sampler

    def make(i):
        if i not in read:  # (broken since the checks: left out)
            return None
        A = read[i]["A"].to(model.device)
        x = model._input(G, "A", A, cfg.model.input_nc)  # (in the networks' dtype: a bf16 model's too)
        outs = torch.cat([G(x.expand(len(chunk), -1, -1, -1), chunk.to(x.device)) for chunk in zs.split(16)])
        if not torch.isfinite(outs).all():
            raise DivergenceError("the model's outputs are not finite: nothing to interpolate")
        return A, outs

    images = out / "images"
    temps = TempFiles(images)  # listed once for all the files, not at each

    def write(i, made):
        (stem, label), (A, outs) = (run.stems[i], run.labels[i]), made
        a, frames_u8 = to_uint8(A)[0], to_uint8(outs)
        files = [("input", save_image(_enlarge(a), images / f"{stem}_input.png", what="input image",
                                      temps=temps))]
        strip = save_image(_side_by_side([a, *frames_u8]), images / f"{stem}_strip.png", what="strip", temps=temps)
        anim = [_side_by_side([a, f]) for f in frames_u8]
        gif = _gif_bytes(anim, fps)
        files.append(("animation (GIF)", atomic_write(images / f"{stem}.gif", lambda f, b=gif: f.write(b),
                                                      what="GIF", temps=temps)))
        if mp4:
            video = _mp4_bytes(anim, fps)
            files.append(("video (MP4)", atomic_write(images / f"{stem}.mp4", lambda f, b=video: f.write(b),
                                                      what="MP4", temps=temps)))
        return {"name": label, "images": [(c, str(p.relative_to(out))) for c, p in files],
                "wide": [(f"the input, then the {len(zs)} frames along the path, left to right",
                          str(strip.relative_to(out)))]}
    # (before this call's first file, as in sample)
    def first():  # (rank 0's, before any file is written)
        drop_gallery(out)
        claim_outputs(images, [s + end for s in run.stems for end in ("_input.png", "_strip.png", ".gif", ".mp4")])
    return write_shares(dist, run.total, make, write, first=first,
                        label="interpolated" if progress else None)


@torch.no_grad()
def interpolate(model, dataroot=None, *, out=None, phase: str | None = None, num: int = 5,
                segments: int | None = None, frames: int = 4, mode: str = "slerp", path: str = "random", refs=None,
                seed: int | None = None,
                fps: float = 8.0, mp4: bool | None = None, device: str = "auto", progress: bool = True,
                layout: str | None = None, skip_bad: bool | None = None, direction: str | None = None,
                load_size: int | None = None, crop_size: int | None = None, preprocess: str | None = None,
                dist: Dist = Dist()) -> Path:
    """Write, for each of the first `num` inputs of dataroot/phase (default: the data the model was
    trained on; phase: val when there is one, else test), the outputs along a path through z over
    segments + 1 codes (see the module docstring), as images/<name>_strip.png (the input, then
    every frame), images/<name>.gif and images/<name>.mp4 (the input beside each frame; mp4: None =
    when imageio-ffmpeg is installed), plus path.json (the codes) and index.html, into `out`
    (default for a checkpoint path: <run>/results/interpolate_<phase>, see results_dir, results_name). layout: as
    make_loader's (default: detected; a plain folder of images is read as inputs only). skip_bad:
    leave out bad files (default: as the run did). direction, load_size, crop_size, preprocess:
    override how the model prepares inputs, as in sample. segments (default 5) and seed (default 50, video.py's):
    given only where they make the codes (a random path; segments also an encoded path without refs). dist: the
    ranks that share the inputs under torchrun, as in sample (rank 0 writes path.json and index.html once every
    share is written: one process's files).
    Returns the folder."""
    mp4, progress, refs, segments, seed = _checked_arguments(model, out, mode, path, refs, seed, segments, num,
                                                             frames, fps, mp4, progress)
    checkpoint = model

    def prepare():  # on every rank alike (made_alike: one rank's refusal is every rank's)
        m = open_model(checkpoint, device)
        cfg, net_in = with_data_settings(m.cfg, direction=direction, load_size=load_size, crop_size=crop_size,
                                         preprocess=preprocess)
        if not cfg.model.nz:
            raise ConfigError(f"variant {cfg.variant} has no latent code (nz=0): there is nothing to interpolate")
        if path == "encoded" and m.E is None:
            raise ConfigError(f"path=encoded needs a trained encoder; this model (variant {cfg.variant}) has none "
                              f"(use path=random)")
        if bad := m.nonfinite():
            raise DivergenceError(f"the model holds {m.describe_nonfinite(bad)}: nothing to interpolate")
        chosen = list(range(segments + 1)) if refs is None else refs
        if path == "encoded" and len(chosen) < 2:
            raise ConfigError(f"path=encoded needs >= 2 reference images, got refs={chosen}")
        need = max(num, max(chosen) + 1) if path == "encoded" else num
        root, ph, lay, data = inference_data(cfg, dataroot, phase, layout, skip_bad, need)
        # (out is given where the model is an object: _checked_arguments refuses it otherwise)
        name = results_name(root, ph, cfg.data.dataroot)
        o = out if out is not None else results_dir(checkpoint, f"interpolate_{name}")
        # Closed once the inputs are read, or however prepare ends before: left to the garbage collector, its
        # workers outlived a call that raised for as long as the caller held the traceback.
        with build_loader(net_in, data, root, ph, device=m.device, batch_size=1,
                          shuffle=False, augment=False, layout=lay) as loader:
            listed = loader.samples[:need]
            if not listed:
                raise DatasetError(f"{inputs_folder(root, ph)}: no inputs found")
            if path == "encoded":
                _check_references(loader.layout, listed, chosen, refs, inputs_folder(root, ph))
            # Every rank reads its share of the inputs (write_shares'), rank 0 the references too (it makes the
            # codes): one pass from the first it needs to the last, each checked here, before anything is written.
            total = min(num, len(listed))
            wanted = {*range(*shard_range(total, dist.rank, dist.world)), *(chosen if path == "encoded" and dist.main
                                                                              else ())}
            read = {}
            if wanted:
                loader.set_epoch(0, min(wanted))
                for i, batch in zip(range(min(wanted), max(wanted) + 1), loader):
                    # skip_bad: a file broken since the checks has the next good one in its place; left out (None)
                    if i in wanted and batch["paths"][0] == listed[i].path:
                        check_input_size(batch["A"], listed[i].path, net_in, data.preprocess,
                                         halves_found(lay, loader))
                        read[i] = batch
        if path == "encoded" and dist.main and (lost := [listed[r].path for r in chosen if r not in read]):
            raise DatasetError(f"the reference image {lost[0]} could not be read")
        names_of = OutputNames()
        stems = [names_of(s.path) for s in listed]  # one process's names, on every rank
        labels = [input_label(s.path, root, ph) for s in listed]
        # After the checks of the inputs (nothing made for a refused call), before any output is computed.
        o = check_writable(refuse_others_results(check_apart(o, root, ph), "interpolate"), "interpolation results")
        return SimpleNamespace(model=m, cfg=cfg, root=root, phase=ph, refs=chosen, read=read, total=total,
                               stems=stems, labels=labels, out=o)
    run = made_alike(dist, prepare)
    model, cfg, root, phase, refs, read, out = run.model, run.cfg, run.root, run.phase, run.refs, run.read, run.out
    with held_folder(out, "interpolate", dist):  # (a second interpolate into the same --out refused)
        was_training = model.training
        model.eval()
        try:
            def path_start():
                if path == "encoded":  # one at a time: under preprocess none the references may differ in size
                    return torch.cat([model.encode(read[r]["B"].to(model.device)) for r in refs]).float().cpu()
                return torch.randn(segments + 1, cfg.model.nz, generator=torch.Generator().manual_seed(seed))
            # rank 0's codes for every rank: encoded on another GPU they might differ from path.json's in the last bits
            codes = dist.main_says(path_start)
            zs = path_codes(codes, frames, mode)
            rows = _write_inputs(run, zs, fps=fps, mp4=mp4, dist=dist, progress=progress)
        finally:
            model.train(was_training)

        def finish():
            prune_outputs(out / "images", [p for row in rows for _, p in row["images"] + row["wide"]])
            write_json(out / "path.json", {"path": path, "mode": mode, "seed": seed if path == "random" else None,
                                           "refs": [run.labels[r] for r in refs] if path == "encoded" else None,
                                           "frames_per_segment": frames, "fps": fps,
                                           "gif_fps": 100 / gif_delay_cs(fps), "codes": codes.tolist()},
                       what="interpolation path")
            how = (f"{mode} through {len(codes)} random codes (seed {seed})" if path == "random" else
                   f"{mode} through the codes of {', '.join(run.labels[r] for r in refs)}")
            write_gallery(out, rows, f"{gallery_title(model, root, phase)}: {how}")
        dist.main_decides(finish)
    return out
