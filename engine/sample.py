"""`sample`: outputs of a trained model for a folder of inputs, as PNG files, one overview grid and
an HTML gallery: the reference's test.py with its options (n_samples, num_test, sync, no_encode,
aspect_ratio, and the data settings: direction, load size, crop size, preprocess), plus inputs
without ground truth (a plain folder of images), full-resolution inference and a deterministic
centre crop."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image

from bicyclegan.pipelines import DatasetError
from bicyclegan.pipelines.atomic import AtomicWrites
from bicyclegan.pipelines.files import core_share
from bicyclegan.pipelines.sharding import shard_range

from .config import MAX_SEED, check_bool, check_int, check_named
from .errors import ConfigError, DivergenceError, OutputError
from .images import (
    SAMPLE_RECORD,
    OutputNames,
    claim_outputs,
    column_names,
    drop_gallery,
    nonfinite_said,
    prune_outputs,
    refuse_others_results,
    sample_columns,
    stretch,
    tile_grid,
    to_uint8,
    write_gallery,
    write_shares,
)
from .io import TempFiles, check_writable, held_folder, save_image, write_json
from .model import spread_z
from .runtime import (
    Dist,
    build_loader,
    check_apart,
    check_input_size,
    gallery_title,
    halves_found,
    inference_data,
    input_label,
    input_state,
    inputs_folder,
    made_alike,
    made_from,
    open_model,
    results_dir,
    results_name,
    with_data_settings,
)

GRID_ROWS = 8  # inputs shown in the overview grid
# Threads writing one input's images at once: PNG encoding and file writes wait outside the GIL, and one at a time,
# each with its fsync, they were 60 % of a CPU sample's time (200 inputs x 23 images, 32 px), nearly all a GPU's. Of the
# cores this process may use (a job's cpuset, not the machine's 128) shared with torchrun's other ranks on the machine,
# as the loader's workers are: 8 ranks of a 16-core machine wrote with 8 threads each.
WRITERS = min(8, core_share())
# Threads that fsync an input's images together (AtomicWrites.commit): they wait on the disk, not on a core, and the
# file system's journal ends the waits of those at once in one commit. The writes alone of sample's 200 inputs x 23
# images (ext4 on a virtual disk): 3.8 s with 2 threads that each wrote, fsynced and renamed a file, 3.6 s with 2
# fsyncing an input's files together, 3.0 s with 8 or 23, 2.1 s without any fsync (medians of 7).
SYNCERS = 8


MAX_STRETCH = 16  # aspect_ratio's bound either way


def default_out(checkpoint, name: str, sync: bool = False) -> Path:
    """<run>/results/<name> (see results_dir; name: the split's, or a plain folder's, results_name);
    "_sync" is appended for sync, as the reference does."""
    return results_dir(checkpoint, name + ("_sync" if sync else ""))


def _refuse_unused(given: dict, model, layout: str, folder) -> None:
    """Options given (not None in `given`) that would change no file are refused, as interpolate refuses its
    seed with path=encoded: the call went on and wrote what it writes without them."""
    # The command's flag beside the argument where they differ (the others are spelt alike, --sync...): a user
    # of `sample --spread_z` was told of spread=True, a name they never typed.
    flags = {"spread": " (--spread_z)"}

    def refuse(names, because):
        if names := [f"{n}={given[n]}{flags.get(n, '')}" for n in names if given[n] is not None]:
            one = len(names) == 1
            raise ConfigError(f"{', '.join(names)}: {because}, so {'it changes' if one else 'they change'} nothing; "
                              f"leave {'it' if one else 'them'} out")
    z_options = ("sync", "spread", "seed")
    if not model.cfg.model.nz:
        refuse(("n_samples", *z_options), f"variant {model.cfg.variant} has no latent code (nz=0): one output per "
                                          f"input, no z drawn")
    if given["n_samples"] == 0:
        refuse(z_options, "n_samples=0 draws no z")
    if given["encode"] is False and (model.E is None or layout == "single"):
        why = (f"this model (variant {model.cfg.variant}) has no trained encoder" if model.E is None else
               f"{folder} holds inputs alone (no B images to encode)")
        raise ConfigError(f"encode=False (--no_encode) leaves out the encoded output G(A, E(B)), and {why}: there "
                          f"is none to leave out; leave it out")
    # The encoded output is then the only one: without it the call wrote the inputs' files alone, and exited 0.
    if given["n_samples"] == 0 and (given["encode"] is False or model.E is None or layout == "single"):
        why = ("encode=False (--no_encode) leaves out the encoded one" if given["encode"] is False else
               f"this model (variant {model.cfg.variant}) has no trained encoder" if model.E is None else
               f"{folder} holds inputs alone (no B images to encode)")
        raise ConfigError(f"n_samples=0 draws no z, and {why}: no output of the model would be made, only the "
                          f"inputs' files; give n_samples of 1 or more")


def _checked_arguments(model, out, num, n_samples, seed, sync, spread, encode, progress, aspect_ratio):
    """sample's arguments checked, before any file is read: (given, n_samples, seed, sync, spread, encode,
    progress) with their defaults filled in; given: the options _refuse_unused judges, as the caller gave them."""
    # Within 16 either way: 1e9 was an OverflowError in the resize, 1000 a grid.png of a billion pixels that PIL then
    # would not open (the reference's own scripts use 1.4 at most).
    if not (isinstance(aspect_ratio, (int, float)) and not isinstance(aspect_ratio, bool)
            and 1 / MAX_STRETCH <= aspect_ratio <= MAX_STRETCH):
        raise ConfigError(f"aspect_ratio={aspect_ratio!r} must be a number from 1/{MAX_STRETCH} to {MAX_STRETCH} "
                          f"(the width:height stretch of the saved images)")
    sync, spread, progress = check_bool("sync", sync), check_bool("spread", spread), check_bool("progress", progress)
    encode = check_bool("encode", encode, optional=True)  # (skip_bad: DataConfig's)
    check_named("out", out)  # ("" wrote the gallery into the current folder, among its files)
    if out is None and not isinstance(model, (str, Path)):
        raise TypeError("sample: give `out` when passing a model object")
    # The command's bounds (--num >= 1, --n_samples >= 0): num 0 or -1 was "no inputs found" in a
    # folder that has them, a negative n_samples a RuntimeError about a tensor's shape.
    check_int("num", num, 1)
    given = {"n_samples": n_samples, "seed": seed, "sync": sync or None, "spread": spread or None,
             "encode": False if encode is False else None}  # (None: not given, or given as the default)
    n_samples, seed, encode = 5 if n_samples is None else n_samples, 0 if seed is None else seed, encode is not False
    check_int("n_samples", n_samples, 0)
    check_int("seed", seed, 0, high=MAX_SEED)  # a larger one was torch's ValueError (Overflow when unpacking)
    return given, n_samples, seed, sync, spread, encode, progress


def _write_grid_and_gallery(out: Path, done: list, model, root, phase: str) -> None:
    """Rank 0's files once every share is written (done: write_shares' values): grid.png of the first inputs
    (of the first one's size), images/ pruned to this call's, index.html."""
    rows = [row for row, _ in done]
    if not rows:
        raise DatasetError(f"{inputs_folder(root, phase)}: no inputs found")
    grid = None
    for pics, names in (shown for _, shown in done if shown):  # the first inputs, of the first one's size
        if grid is None or grid[0][0].size == pics[0].size:
            grid = [[p] for p in pics] if grid is None else [col + [p] for col, p in zip(grid, pics)]
    save_image(tile_grid(grid, names), out / "grid.png", what="sample grid")
    prune_outputs(out / "images", [rel for row in rows for _, rel in row["images"]])
    write_gallery(out, rows, gallery_title(model, root, phase))


def _recipe(model, opened: bool, cfg, crop_size, loader, skip_bad: bool, **options) -> dict:
    """What a call's images are made from but its inputs, as SAMPLE_RECORD records it: runtime.made_from's (the code,
    the versions, the device's kind, the weights, the config with this call's data settings, the loader's layout and
    backend; Pillow also encodes the PNG files) with crop_size, skip_bad and the options. An input's images are also
    those of any call of another --num: its codes and file names depend on the inputs before it."""
    return made_from(model, opened, cfg, loader, crop_size=crop_size, skip_bad=skip_bad,
                     **{**options, "aspect_ratio": float(options["aspect_ratio"])})


def _earlier_record(out: Path) -> dict | None:
    """The SAMPLE_RECORD an earlier call left in `out`; None where there is none or it cannot be read (written by
    rename, it is whole, unless damaged since: nothing then is taken as written under it)."""
    try:
        saved = json.loads((out / SAMPLE_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def _same_inputs(earlier: dict | None, record: dict) -> list[bool]:
    """Which of record's inputs an earlier record's images are of: none where anything but the inputs differs, else
    those of the same contents among the first ones of the same names (input i's codes are the i-th, and its file
    names, -2, depend on the names before it)."""
    new = record["inputs"]
    old = earlier.get("inputs") if earlier is not None and {k: v for k, v in earlier.items() if k != "inputs"} == {
        k: v for k, v in record.items() if k != "inputs"} else None
    same = []
    for a, b in zip(old if isinstance(old, list) else [], new):
        if not (isinstance(a, list) and a[0::2] == b[0::2]):
            break
        same.append(a[1::2] == b[1::2])
    return same + [False] * (len(new) - len(same))


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # a PNG's last chunk, IEND (empty, and its CRC)


def _whole_png(path: Path) -> bool:
    """Whether `path` is a PNG file that ends as one does: atomic_write leaves an image whole or absent, but a copy of
    the folder stopped part-way (cp, scp) leaves one cut short, which a later call took as written (and grid.png's
    reading of it raised)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:  # (none there, a folder, or shorter than the chunk)
        return False


def _read_picture(path: Path) -> Image.Image:
    """An image file of an earlier call, as its tile of grid.png (the same pixels as when it was written)."""
    with Image.open(path) as img:
        return img.convert("RGB")


def _pixels(cols: list) -> list:
    """Each column's first row as the uint8 pixels its file holds (to_uint8), those of one shape converted together:
    one conversion (one copy from a GPU) an input, where one an image was 1.3 s of a CPU sample's main thread
    (200 inputs x 23 images of 32 px: 0.05 s together, against 0.27 s alone)."""
    pixels = [None] * len(cols)
    alike = {}
    for k, c in enumerate(cols):
        alike.setdefault((tuple(c.shape[1:]), c.dtype, c.device), []).append(k)
    for ks in alike.values():
        for k, px in zip(ks, to_uint8(torch.cat([cols[k][:1] for k in ks]))):
            pixels[k] = px
    return pixels


def _remove(folder: Path, names: set) -> None:
    """Remove the files of `folder` named in `names` (one listing of it): one that cannot be removed (an images/ of
    another user's) is an OutputError naming it, as the write of the first image said it before."""
    if folder.is_dir():
        for name in set(os.listdir(folder)) & names:
            try:
                (folder / name).unlink(missing_ok=True)
            except OSError as e:
                raise OutputError(f"cannot remove {folder / name}, an earlier call's image: {e.strerror or e}; "
                                  f"choose another folder (--out)") from e


@torch.no_grad()
def sample(model, dataroot=None, *, out=None, phase: str | None = None, n_samples: int | None = None, num: int = 50,
           sync: bool = False, encode: bool | None = None, seed: int | None = None, spread: bool = False,
           device: str = "auto", progress: bool = True, aspect_ratio: float = 1.0, layout: str | None = None,
           direction: str | None = None, load_size: int | None = None, crop_size: int | None = None,
           preprocess: str | None = None, skip_bad: bool | None = None, dist: Dist = Dist()) -> Path:
    """Write, for up to `num` inputs of dataroot/phase (default: the data the model was trained on),
    the input, the ground truth (when there is one), the encoded output G(A, mu of E(B)) (unless
    encode=False) and n_samples outputs with z ~ N(0, I) drawn independently, as the reference's
    test.py draws them (spread: one input's z spread over the prior together, spread_z, for pictures
    that show more of the modes; sync: the same z list for every input),
    as images/<name>_<column>.png, grid.png (the first inputs) and index.html (a row per input, named by
    its file below the folder read), into `out` (<name>:
    the input's stem, -2, -3 for a second and third of one stem; of the files calls wrote in images/,
    listed in .images.json, this call's alone are kept; no other file there is touched). The inputs whose images
    an earlier call of the same recipe wrote whole (stopped or not: SAMPLE_RECORD, .sample.json, records the weights,
    the inputs' contents, the options and the seed) are not made again: the folder ends as one uninterrupted call
    leaves it.

    model: a BicycleGAN or a checkpoint path (out then defaults to default_out()).
    phase: default val/ when the data has one, else test/. A folder without that split and without
    an A/ folder is a plain folder of inputs (layout "single"); layout forces one of the pipelines'
    layouts. direction, load_size, crop_size, preprocess: override how the model prepares inputs
    (preprocess="none": full resolution, where each side is a multiple of 2^(U-Net depth)).
    aspect_ratio: the saved images and grid.png are stretched to this width:height ratio times the original's.
    n_samples (default 5), seed (default 0), sync, spread and encode=False are refused where they would change
    no file: the z options for a model without a latent code (nz=0), sync, spread and seed with n_samples=0,
    encode=False for a model without an encoder or inputs without B (no encoded output to leave out); and
    n_samples=0 where there is no encoded output either (no output of the model at all).
    dist: the ranks that share the inputs under torchrun (every rank calls sample alike): rank r writes the
    images of the r-th contiguous share, rank 0 the grid and the gallery once every share is written; the
    files are those of one process, whatever the number of ranks.
    Returns the results folder."""
    given, n_samples, seed, sync, spread, encode, progress = _checked_arguments(
        model, out, num, n_samples, seed, sync, spread, encode, progress, aspect_ratio)
    checkpoint = model

    # The loader prepare makes is closed once the inputs are read, or however the call ends before (an error,
    # Ctrl-C in a notebook's cell): left to the garbage collector, its workers outlived a call that raised for
    # as long as the caller held the traceback.
    with contextlib.ExitStack() as owned:
        def prepare():  # on every rank alike (made_alike: one rank's refusal is every rank's)
            m = open_model(checkpoint, device)
            if bad := m.nonfinite():
                raise DivergenceError(f"the model holds {m.describe_nonfinite(bad)}: nothing to sample")
            cfg, net_in = with_data_settings(m.cfg, direction=direction, load_size=load_size, crop_size=crop_size,
                                             preprocess=preprocess)
            root, ph, lay, data = inference_data(cfg, dataroot, phase, layout, skip_bad, num)
            loader = owned.enter_context(build_loader(net_in, data, root, ph, device=m.device, batch_size=1,
                                                      shuffle=False, augment=False, layout=lay))
            _refuse_unused(given, m, loader.layout, inputs_folder(root, ph))
            # After the checks of the options and the data (as interpolate: nothing made for a refused call).
            o = out if out is not None else default_out(checkpoint, results_name(root, ph, cfg.data.dataroot), sync)
            o = check_writable(refuse_others_results(check_apart(o, root, ph), "sample"), "sample results")
            return SimpleNamespace(model=m, cfg=cfg, net_in=net_in, root=root, phase=ph, data=data, loader=loader,
                                   out=o, halved=halves_found(lay, loader))
        run = made_alike(dist, prepare)
        model, cfg, root, phase, loader, out = run.model, run.cfg, run.root, run.phase, run.loader, run.out
        owned.enter_context(held_folder(out, "sample", dist))
        total = min(num, len(loader))
        share = range(*shard_range(total, dist.rank, dist.world))
        g = torch.Generator().manual_seed(seed)

        def draw():  # one input's codes, each N(0, I)
            if spread:  # stratified together; consecutive codes lie further apart than independent ones
                return spread_z(n_samples, cfg.model.nz, int(torch.randint(2**62, (1,), generator=g)))
            return torch.randn(n_samples, cfg.model.nz, generator=g)

        # One process's draws (the sync list first, then a list per input, in the inputs' order) and names, made
        # on every rank: input i gets the same codes and file names whichever rank writes it.
        z_sync = draw()
        codes = [z_sync] * share.stop if sync else [draw() for _ in range(share.stop)]
        names_of = OutputNames()
        stems = [names_of(s.path) for s in loader.samples[:total]]
        # The columns' names, every input's alike: the files a call may write (claim_outputs), known before any
        # input is made (those an earlier call wrote are not made again)
        columns = column_names(model, loader.layout != "single", n_samples, encode=encode)

        def files_of(i):  # input i's (column, file relative to out)
            return [(name, f"images/{stems[i]}_{name.replace(' ', '_')}.png") for name in columns]

        record = []  # (rank 0's: this call's, written before its first image)

        def written_before():
            recipe = _recipe(model, checkpoint is not model, cfg, crop_size, loader, run.data.skip_bad,
                             n_samples=n_samples, seed=seed, sync=sync, spread=spread, encode=encode,
                             aspect_ratio=aspect_ratio)  # (checkpoint is not model: the call opened the file)
            record.append({**recipe, "inputs": [input_state(s, inputs_folder(root, phase))
                                                for s in loader.samples[:total]]})
            same = _same_inputs(_earlier_record(out), record[0])
            return [same[i] and all(_whole_png(out / rel) for _, rel in files_of(i)) for i in range(total)]
        # Rank 0's look, every rank's: which inputs' images an earlier call of this recipe wrote whole (each image
        # is written whole or not at all: atomic_write)
        kept = dist.main_says(written_before)
        if progress and dist.main and any(kept):
            print(f"{sum(kept)} of {total} inputs already sampled into {out} by an earlier call of the same weights, "
                  f"inputs and options: sampling the other {total - sum(kept)} (to sample them all again, remove "
                  f"{out / SAMPLE_RECORD})", file=sys.stderr, flush=True)
        at, batches = None, iter(())  # the input the loader's pass reads next, and that pass

        def make(i):
            nonlocal at, batches
            if kept[i]:  # (its codes drawn above all the same: the others' are those of a call that made it)
                return loader.samples[i].path, None, columns
            if at != i:  # the share's first input to make, or the first after inputs written before
                loader.set_epoch(0, i)  # a pass from it, the inputs before it left unread
                batches = iter(loader)
            batch, at = next(batches), i + 1
            path = batch["paths"][0]
            # skip_bad: a file broken since the checks has the next good one in its place, which is written in its own
            # place (by its own share's rank); the broken one is left out (the loader's warning names it)
            if path != loader.samples[i].path:
                return None
            A = batch["A"].to(model.device)
            check_input_size(A, path, run.net_in, run.data.preprocess, run.halved)
            B = batch["B"].to(model.device) if "B" in batch else None
            made = path, *sample_columns(model, A, B, codes[i], encode=encode)
            if bad := nonfinite_said(*made[1:]):  # (written as black images, exit 0)
                raise DivergenceError(f"the model's outputs are not finite ({bad} of {path}): nothing to sample")
            return made

        temps = TempFiles(out / "images")  # listed once for all the images, not at each
        writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="sample-write")
        syncers = ThreadPoolExecutor(SYNCERS, thread_name_prefix="sample-fsync")
        # One input's images are written and put in place (put_in_place) while the next input is made: a GPU idled
        # through each input's writes. One at a time (write() lands the one before it first): memory holds one
        # input's pictures in flight, and each input is in place before the next one's first file is begun.
        placer = ThreadPoolExecutor(1, thread_name_prefix="sample-place")
        # However the call ends (an error, Ctrl-C) no image is written after it: those queued are dropped, and
        # those being written finish (an input's images left uncommitted, their temp files are removed: AtomicWrites)
        for pool in (writers, syncers, placer):  # (shut down in the reverse order: the placer's work uses the others)
            owned.callback(pool.shutdown, wait=True, cancel_futures=True)
        flight = []  # the input whose images are being put in place: (its AtomicWrites, put_in_place's future)

        def land():
            """Wait until the input in flight is in place, raising its failure. A stop of this wait (Ctrl-C, SIGTERM)
            leaves it in flight, to land as the call ends (owned's land, then the pools' shutdown wait for it), as at a
            stop while the next input is made: it discarded the input, whose images were begun (none in place, or all
            where their fsyncs had begun), so that a stop kept the input or not by the timing."""
            if flight:
                group, placed = flight.pop()
                try:
                    placed.result()
                except BaseException:
                    if not placed.done():  # the wait stopped (Ctrl-C, SIGTERM): the input in flight is let land as
                        flight.append((group, placed))  # at a stop while the next input is made (owned's land)
                        raise
                    group.discard()  # (put_in_place's adds still running remove their temp files: none in place)
                    raise
        # A call that stops while the next input is made (an error, Ctrl-C) ends with the input in flight in place,
        # as an input was before the next one was begun: the inputs the count line said were sampled are written.
        owned.callback(land)

        def save(group, rel, pixels):
            pic = stretch(Image.fromarray(pixels), aspect_ratio)
            group.add(out / rel, lambda f: pic.save(f, format="PNG"))
            return pic

        def put_in_place(group, files, pixels, shown):  # (the placer's)
            with group:  # in place together once all are on the disk, or none (a failure, Ctrl-C: AtomicWrites)
                jobs = [writers.submit(save, group, rel, px) for (_, rel), px in zip(files, pixels)]
                wait(jobs)  # every one ended before the first failure is raised: none written after land() raised
                pics = [job.result() for job in jobs]
                group.commit(syncers.map)
            shown.extend(pics)

        def write(i, made):
            path, cols, names = made
            files, pics = files_of(i), []
            land()  # (the input before: in place, or its failure raised before this one's first file)
            if cols is not None:  # (None: written before, its pictures read back for the grid alone)
                group = AtomicWrites(what="sample image", error=OutputError, temps=temps)
                # (pics: the grid's, filled once they are saved; write_shares returns after land())
                flight.append((group, placer.submit(put_in_place, group, files, _pixels(cols),
                                                    pics if i < GRID_ROWS else [])))
            elif i < GRID_ROWS:
                pics = [_read_picture(out / rel) for _, rel in files]
            row = {"name": input_label(path, root, phase), "images": files}
            return row, (pics, names) if i < GRID_ROWS else None  # (the grid's pictures, which rank 0 draws)

        def first():  # (rank 0's, before any file is written)
            drop_gallery(out)  # (the earlier record with it: if this call stops, nothing is taken as written under it)
            # No file under a name this call writes is taken for its own after a later stop (an earlier recipe's
            # image), and no temp file of an image kept is left (its write killed: it is not written again)
            _remove(out / "images", {Path(rel).name for i in range(total) if not kept[i] for _, rel in files_of(i)})
            for rel in (rel for i in range(total) if kept[i] for _, rel in files_of(i)):
                temps.remove_stale(out / rel)
            write_json(out / SAMPLE_RECORD, record[0], what="record of the sampled images")
            claim_outputs(out / "images", [rel for i in range(total) for _, rel in files_of(i)])
        done = write_shares(dist, total, make, write, first=first, land=land,
                            label="sampled" if progress else None)

    dist.main_decides(lambda: _write_grid_and_gallery(out, done, model, root, phase))
    return out
