"""`compare`: several models measured side by side with one protocol, as the paper's Fig. 6 sets
pix2pix+noise, cAE-GAN, cVAE-GAN, cLR-GAN and BicycleGAN beside each other.

Each model is evaluated as `evaluate` evaluates it (its options, its defaults) on the same inputs
with the same z draw (one seeded num x n_samples x nz draw: models of one nz get the same codes),
the metric networks loaded once for all. The models must read the same inputs: one data folder (the
one given, else each one's training data), prepared the same way (image size, channels, direction,
load size, preprocess; --num of them, whatever a run's --max_dataset_size was); anything else is
refused before any work, naming the models and what differs. So is a model whose weights are not
finite: knowing it takes a load, not a measurement, and a comparison with a hole where a named model
should be is not what was asked for. A model whose outputs turn out not to be finite (which only
measuring shows) gets a row saying so, and the others are still measured and written: their work is
not thrown away.

Written into `out` (default results/compare): compare.json (a row per model: name, checkpoint,
variant, step, then evaluate's result; non-finite floats as null), compare.png (for each of the
first `show` inputs: the input and its ground truth (a plain folder of inputs has none), then a row
per model of its first `show_samples` outputs, the measured ones) and index.html (the table with the
best of each measure in bold, realism against diversity as in Fig. 6, and the picture). Each model's measures are
kept as evaluate keeps them (out/.compare.json.partial/<its weights' digest>/: kept_key) until those files are
written: a stopped comparison run again, its models in any order, takes the models measured and goes on inside the
one it stopped in.
"""
from __future__ import annotations

import contextlib
import copy
import html
import math
import os
import re
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, ImageDraw

from bicyclegan.pipelines.errors import plural
from bicyclegan.pipelines.spec import RESIZING

from .checkpoint import digest, find_checkpoint, run_folder
from .config import check_int, check_named
from .errors import ConfigError, DivergenceError, OutputError
from .evaluate import (
    PAPER_INPUTS,
    PAPER_SAMPLES,
    Evaluation,
    best_rows,
    draw_codes,
    drop_kept,
    json_safe,
    kept_measures,
    kept_note,
)
from .images import PAD, drawable, fit_label, label_style, refuse_others_results, sample_columns, to_uint8
from .io import check_writable, held_folder, save_image, write_json, write_text
from .report import (
    DIVERSITY,
    EVAL_NAMES,
    _number,
    _value,
    aligned,
    blank_notes,
    data_folder,
    html_page,
    measure_cells,
    measure_value,
    measured_with,
    read_from,
    row_measures,
    svg_scatter,
)
from .runtime import (
    Dist,
    SaidOnce,
    build_loader,
    check_model_source,
    data_root_for,
    made_alike,
    open_model,
    weights_digest,
)

DEFAULT_OUT = Path("results") / "compare"
# The columns of a row that say which model it is; evaluate's result follows.
IDENTITY = ("name", "checkpoint", "variant", "step")


def default_name(model) -> str:
    """A model's name in the table: the run's for a run folder or its checkpoints/latest.pt,
    <run>/<stem> for the run's other checkpoints (epoch_5.pt, best.pt), else the file's stem."""
    path = Path(model).resolve()
    if path.is_dir():
        return run_folder(path).name  # (RUN/checkpoints: the run's, not "checkpoints")
    if path.parent.name == "checkpoints":
        run = path.parent.parent.name
        return run if path.stem == "latest" else f"{run}/{path.stem}"
    return path.stem


def model_names(models: list, names=None) -> list[str]:
    """names ("a,b" or a sequence), one per model, each given once; None: default_name of each (a
    model object: its variant), a repeated one made unique with -2, -3 (two runs both called run)."""
    if names is not None:
        given = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
        if len(given) != len(models) or not all(given):
            got = f"got {len(given)}" + (f", {given.count('')} of them empty" if "" in given else "")
            raise ConfigError(f"names={names!r}: expected {len(models)} non-empty comma-separated names, one per "
                              f"model, {got}")
        if dup := sorted({n for n in given if given.count(n) > 1}):
            raise ConfigError(f"names={names!r}: {', '.join(dup)} given twice; each model needs a name of its own")
        return given
    out = []
    for m in models:
        stem = default_name(m) if isinstance(m, (str, os.PathLike)) else m.cfg.variant
        name, k = stem, 1
        while name in out:
            k += 1
            name = f"{stem}-{k}"
        out.append(name)
    return out


def kept_key(weights: str, cfg) -> str:
    """The folder of a model's kept measures (in compare's kept_measures): the digest of its weights (`weights`: its
    weights_digest, of the checkpoint file where it was opened, checked as it was read) and config `cfg`. Its place on
    the command line named it, and a stopped compare run again with its models in another order (one added in front)
    measured them again, each one's recipe refusing the other's measures. One model given twice (or a copy of its run)
    shares the folder: the same recipe, the same measures."""
    return digest({"weights": weights, "config": cfg.to_dict()})


def _input_settings(cfg, root: Path) -> dict:
    """What decides the inputs a model reads and the images it makes (all must agree to compare); how many: --num,
    for every model alike (a run's --max_dataset_size is its training set's: runtime.inference_data)."""
    h, w = cfg.model.size
    settings = {"data folder": str(root.resolve()), "image size": f"{w}x{h}", "input channels": cfg.model.input_nc,
                "output channels": cfg.model.output_nc, "direction": cfg.data.direction,
                "preprocess": cfg.data.preprocess}
    if cfg.data.preprocess in RESIZING:  # (the other modes never read it: two runs' leftover values are one input)
        settings["load_size"] = cfg.data.load_size
    return settings


def check_same_inputs(loaded: list[tuple[str, object]], dataroot=None) -> None:
    """ConfigError naming the models and the setting when two of (name, model) would read different
    inputs or make images of another size or channels; the first model is the one others are held to."""
    (first, m0), *rest = loaded
    want = _input_settings(m0.cfg, data_root_for(m0.cfg, dataroot))
    for name, model in rest:
        have = _input_settings(model.cfg, data_root_for(model.cfg, dataroot))
        if diff := [k for k in want if want[k] != have[k]]:
            hint = " (pass --dataroot to read one folder for all)" if "data folder" in diff else ""
            what = ", ".join(f"{k} ({want[k]} vs {have[k]})" for k in diff)
            raise ConfigError(f"{first} and {name} differ in {what}: the models compared must read the same "
                              f"inputs{hint}")


@torch.no_grad()
def compare(models, dataroot=None, *, names=None, out=None, show: int = 4, show_samples: int = 6,
            n_samples: int | None = None, num: int = PAPER_INPUTS, seed: int = 0, device: str = "auto",
            log: Callable[[str], None] | None = print, dist: Dist = Dist(), **options) -> tuple[list[dict], Path]:
    """Evaluate each of `models` (checkpoint paths, run folders or BicycleGAN objects; two or more) with
    evaluate's options (phase, metrics, batch_size, lpips_*, fid_weights, layout, skip_bad; evaluate's
    defaults) on the same inputs with the same z, and write compare.json, compare.png and index.html
    into `out` (default: results/compare in the current folder); see the module docstring.
    n_samples: random z per input of the models with a latent code (default 20, the paper's); a model without
    one (nz=0) makes one output per input, and n_samples above 1 is refused where no model has one.
    names: a name per model ("a,b" or a list; default: default_name, made unique). show: inputs in
    the picture; show_samples: outputs per model and input there (at most n_samples: the measured
    ones). log: called with a line as each model is measured (None: quiet). dist: the ranks that share
    each model's inputs under torchrun (evaluate's; rank 0 logs, draws and writes).
    Returns (the rows, as compare.json holds them; the folder written), on every rank."""
    # One path or model is one model (list() of a path was its characters: "checkpoint r does not exist")
    one = isinstance(models, (str, os.PathLike, torch.nn.Module))
    models, given = [models] if one else list(models), names
    check_named("out", out)  # ("" wrote the page into the current folder, among its files)
    out = Path(out) if out is not None else DEFAULT_OUT
    say = log if log is not None and dist.main else (lambda line: None)
    names, loaded, keys, hashed = [], [], [], []

    def load():  # the options, then every model loaded and checked before any is measured: a refusal costs none
        if len(models) < 2:
            raise ConfigError(f"compare needs two models or more, got {len(models)}")
        for i, m in enumerate(models):
            check_model_source(m, f"models[{i}]")
        check_int("show", show, 1)
        check_int("show_samples", show_samples, 1)
        if n_samples is not None:
            check_int("n_samples", n_samples, 1)
        names.extend(model_names(models, given))
        if out.is_file():
            raise OutputError(f"--out {out} is a file; give the folder to write compare.json, compare.png and "
                              f"index.html into")
        refuse_others_results(out, "compare", ("compare",))
        for m, name in zip(models, names):
            path = find_checkpoint(m) if isinstance(m, (str, os.PathLike)) else None
            model = open_model(path or m, device)
            if bad := model.nonfinite():
                raise DivergenceError(f"{name} ({path or 'the model given'}) holds "
                                      f"{model.describe_nonfinite(bad)}; compare a checkpoint from before its "
                                      f"training diverged (RUN/checkpoints/epoch_N.pt)")
            # the file as it was read (a training may replace latest.pt), also for a model given loaded
            src = model.source or {}
            loaded.append((name, path or (Path(src["path"]) if src else None), model, src.get("step")))
            # (once: a model given loaded is hashed by its tensors, for its folder and its measures' recipe alike)
            hashed.append(weights_digest(model, model is not m))
            keys.append(kept_key(hashed[-1], model.cfg))
        if n_samples is not None and n_samples > 1 and not any(m.cfg.model.nz for _, _, m, _ in loaded):
            # (a model with z among them takes it: those without make their one output, as evaluate's)
            raise ConfigError(f"n_samples={n_samples}: none of the models has a latent code (nz=0: "
                              f"{', '.join(names)}): one output per input, no z drawn, so it changes nothing; "
                              f"leave it out")
    dist.each_decides(load)  # (under torchrun: one rank's refusal is every rank's)
    n_samples = PAPER_SAMPLES if n_samples is None else n_samples  # (the models with z; evaluate's default)
    with SaidOnce(), contextlib.ExitStack() as owned:  # (the split's skipped files said once, not for each model's)
        dist.each_decides(lambda: check_same_inputs([(name, model) for name, _, model, _ in loaded], dataroot))
        evs = []
        for _, _, model, _ in loaded:  # the first loads the metric networks, the others share them
            evs.append(made_alike(dist, lambda: Evaluation(model, dataroot, num=num, device=device, dist=dist,
                                                           networks_from=evs[0] if evs else None, **options)))
        dist.main_decides(lambda: check_writable(out, "compare results"))
        owned.enter_context(held_folder(out, "compare", dist))  # (before the measures: a second compare refused)
        kept = kept_measures(out / "compare.json")  # (a folder of each model's kept measures: kept_key)
        rows, lost = [], []  # (what is kept of the models whose measures' save failed: a full disk)
        done = {}  # kept_key -> (name, measures) of the models measured so far in this call
        for i, (ev, key, weights, (name, path, model, step)) in enumerate(zip(evs, keys, hashed, loaded), 1):
            row = {"name": name, "checkpoint": str(path.resolve()) if path else None, "variant": model.cfg.variant,
                   "step": step}
            try:
                # a model without z: its one output per input (Evaluation.run refuses it n_samples above 1). Its
                # measures are kept as evaluate's until the files are written: a stopped compare run again goes on
                # from the models measured and inside the one it stopped in
                if key in done:  # (one model given twice: its kept measures were said "of an earlier call")
                    row.update(copy.deepcopy(done[key][1]))
                    say(f"[{i}/{len(loaded)}] {name}: the same weights and config as {done[key][0]}: its measures")
                else:
                    done[key] = name, json_safe(ev.run(n_samples if model.cfg.model.nz else 1, seed, keep=kept / key,
                                                       weights=weights))
                    row.update(copy.deepcopy(done[key][1]))
                    say(f"[{i}/{len(loaded)}] {name}: measured")
            except DivergenceError as e:
                row["error"] = str(e)
                say(f"[{i}/{len(loaded)}] {name}: {e}")
            except BaseException as e:  # (a stop's line says what is kept: not "kept" of measures whose save failed)
                if lost or ev.kept_lost:
                    e.measures_lost = "; ".join([*lost, f"of {name}, {ev.kept_lost}" if ev.kept_lost else
                                                 "the others' measures are kept: the same command goes on from them"])
                if isinstance(e, Exception) and kept.exists():  # (another error: said with it, as evaluate's)
                    say(getattr(e, "measures_lost", None) or kept_note(kept))
                raise
            if ev.kept_lost:
                lost.append(f"of {name}, {ev.kept_lost}")
            rows.append(row)
        good = [(name, model) for row, (name, _, model, _) in zip(rows, loaded) if "error" not in row]
        picture = out / "compare.png"

        def draw():  # rank 0's (the picture's few outputs: not worth sharing)
            shown, truth = (0, 0), False
            if good:
                A, B = first_inputs(evs[0], show)
                # a model without z: its one output under "z1" read as a code's (no z was drawn)
                outputs = [(name if model.cfg.model.nz else f"{name} (no z)",
                            model_outputs(model, A, evs[0].n_inputs, n_samples, seed, show_samples))
                           for name, model in good]
                coded = any(model.cfg.model.nz for _, model in good)
                save_image(compare_image(A, B, outputs, coded=coded)[0], picture, what="comparison picture")
                truth = B is not None
                shown = (len(A), max(len(cols) for _, cols in outputs))  # the split's and n_samples' bounds applied
            else:
                picture.unlink(missing_ok=True)  # an earlier comparison's, of other models
            write_json(out / "compare.json", rows, what="comparison results")
            write_text(out / "index.html", render_compare(rows, picture.name if good else None, *shown, truth=truth,
                                                          coded=any(model.cfg.model.nz for _, model in good)),
                       what="comparison page")
        try:
            dist.main_decides(draw)
        except BaseException as e:  # (a full disk, a stop): the measures of every model, kept as each run ended
            if lost:
                e.measures_lost = "; ".join(lost)
            if isinstance(e, Exception):  # (a stop's line is the command's)
                say(e.measures_lost if lost else kept_note(kept))
            raise
        # (the results written: the measures kept are of no more use). One drop_kept, a collective, a model on every
        # rank, as many on each whatever its keys: a model given twice is dropped twice (the second finds nothing)
        for key in keys:
            drop_kept(kept / key, dist)
        if dist.main:  # (and those of an earlier comparison of other models, or by place: an older version's)
            with contextlib.suppress(OSError):
                for f in kept.iterdir():
                    if f.is_dir() and not f.is_symlink():
                        drop_kept(f)
                kept.rmdir()
    return rows, out


def first_inputs(ev: Evaluation, show: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first `show` inputs (A, and B where the split has it) of an evaluation's split, as it reads them;
    of a split of several image sizes (preprocess none, scale_width), the first ones of the first one's size."""
    model = ev.model
    # One input at a time: a batch of several needs one size, and the loader refused a split of several
    # after every model had been measured (the Evaluation measures such a split an input at a time)
    A, B = [], []
    with build_loader(model.cfg.model, ev.data, ev.root, ev.phase, device=model.device,
                      batch_size=1, shuffle=False, augment=False, layout=ev.layout) as loader:
        for batch in loader:
            if len(A) == min(show, ev.n_inputs) or (A and batch["A"].shape != A[0].shape):
                break  # (the picture's codes are those of the first len(A) inputs: it stops at another size)
            A.append(batch["A"])
            B.append(batch.get("B"))
    if not A:
        raise AssertionError("an Evaluation's split has inputs")  # Evaluation refused an empty one
    return torch.cat(A).to(model.device), None if B[0] is None else torch.cat(B).to(model.device)


def model_outputs(model, A: torch.Tensor, n_inputs: int, n_samples: int, seed: int, show_samples: int) -> list:
    """model's outputs for A (the split's first inputs) with the codes Evaluation.run gives them: the
    first show_samples of each input's n_samples, from its one n_inputs x n_samples x nz draw; a model
    without z: its one output."""
    nz = model.cfg.model.nz
    z = draw_codes(n_inputs, n_samples, nz, seed)
    cols, titles = sample_columns(model, A, None, z[:len(A), :show_samples] if nz else None)
    return [c for c, t in zip(cols, titles) if t.startswith("random") or t == "output"]


def name_lines(name: str, width: int, font, keep: int) -> list[str]:
    """A model's name beside its row of compare.png: its words packed into lines of `width` px (a word wider than
    that broken after its _ / - . and cut as fit_label cuts it where still too wide: run names have no spaces), at
    most `keep` lines; one longer ends in an ellipsis and the name's last pieces, which tell apart names of one
    beginning (cut at `keep` lines, "... run A" and "... run B", or "..._epoch_5" and "..._epoch_15", read alike)."""
    def fits(text):
        return font.getlength(text) <= width
    pieces = []  # (text, what joins it to the piece before: " " between words, "" within one)
    for word in drawable(name, font).split():
        parts = [word] if fits(word) else re.findall(r"[^_/.\-]+[_/.\-]*|[_/.\-]+", word)
        pieces += [(line, " " if k == 0 else "") for k, part in enumerate(parts)
                   for line in fit_label(part, width, font)]
    lines = []
    for text, join in pieces:
        if lines and fits(lines[-1] + join + text):
            lines[-1] += join + text
        else:
            lines.append(text)
    if len(lines) <= keep:
        return lines
    tail = ""  # the last pieces that fit after an ellipsis, each with what joined it to the piece before
    for text, join in reversed(pieces):
        if not fits("\u2026" + text + tail):
            break
        tail = join + text + tail
    tail = tail.lstrip()
    return lines[:keep - 1] + ["\u2026" + tail if tail else fit_label("\u2026" + pieces[-1][0], width, font)[0]]


def compare_image(A: torch.Tensor, B: torch.Tensor | None, outputs: list[tuple[str, list]],
                  sep: int = 9, coded: bool = True) -> tuple[Image.Image, dict]:
    """For each input i: A[i] and B[i] (the columns "input", "ground truth"), and a row per (name,
    columns) of `outputs`, titled with the name, of columns[j][i] under "z{j+1}" ("output" where no model
    compared has a code: coded False). Tiles under 64 px are
    enlarged as grid_image enlarges them; titles fit as its titles do. Returns the picture and where
    each tile is: (i, "input"), (i, "ground truth") and (i, k, j) (model k's output j) -> (x, y)."""
    a, b = to_uint8(A), None if B is None else to_uint8(B)
    outs = [[to_uint8(c) for c in cols] for _, cols in outputs]
    n, h, w, _ = a.shape
    scale = max(1, -(-64 // max(h, 1)))
    ch, cw = h * scale, w * scale
    font, line_h, gap = label_style(cw)
    first = ["input"] if b is None else ["input", "ground truth"]  # a plain folder of inputs has no B
    cols = [f"z{j + 1}" for j in range(max(map(len, outs)))] if coded else ["output"]
    heads = [fit_label(t, cw - gap, font) for t in [*first, *cols]]
    name_w = min(max(math.ceil(font.getlength(name)) for name, _ in outputs), 2 * cw) + gap
    labels = [name_lines(name, name_w - gap, font, max(1, ch // line_h)) for name, _ in outputs]
    title_h = line_h * max(map(len, heads))
    block_h = len(outputs) * (ch + PAD)
    W = PAD + name_w + len(heads) * (cw + PAD)
    H = title_h + PAD + n * block_h + (n - 1) * sep
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    def x_of(c):
        return PAD + name_w + c * (cw + PAD)

    for c, lines in enumerate(heads):
        for k, line in enumerate(lines):
            draw.text((x_of(c), k * line_h), line, fill=(0, 0, 0), font=font)
    boxes = {}

    def paste(img, key, c, y):
        tile = Image.fromarray(img)
        canvas.paste(tile.resize((cw, ch), Image.NEAREST) if scale > 1 else tile, (x_of(c), y))
        # a frame in the padding: a white input drawing had no edge on the white canvas
        draw.rectangle([x_of(c) - 1, y - 1, x_of(c) + cw, y + ch], outline=(210, 210, 210))
        boxes[key] = (x_of(c), y)

    for i in range(n):
        y0 = title_h + PAD + i * (block_h + sep)
        if i:  # a rule between one input's rows and the next's
            draw.line([(PAD, y0 - sep // 2 - 1), (W - PAD, y0 - sep // 2 - 1)], fill=(200, 200, 200))
        paste(a[i], (i, "input"), 0, y0)
        if b is not None:
            paste(b[i], (i, "ground truth"), 1, y0)
        for k, (lines, cols) in enumerate(zip(labels, outs)):
            y = y0 + k * (ch + PAD)
            top = y + (ch - line_h * len(lines)) // 2
            for m, line in enumerate(lines):
                draw.text((PAD, top + m * line_h), line, fill=(0, 0, 0), font=font)
            for j, col in enumerate(cols):
                paste(col[i], (i, k, j), len(first) + j, y)
    return canvas, boxes


def measures(rows: list[dict]) -> list[str]:
    return row_measures(rows, IDENTITY, undefined=True)


def fid_counts(rows: list[dict]) -> dict[str, str]:
    """name -> "generated vs real" images of each model's FID, where they differ between models (a model without
    z makes one output per input, the others --n_samples): such FIDs do not compare, as fewer images bias FID
    upward; {} where they are alike."""
    counts = {r["name"]: f"{r['fid_images']['generated']} vs {r['fid_images']['real']}" for r in rows
              if _number(r.get("fid")) and isinstance(r.get("fid_images"), dict)}
    return counts if len(set(counts.values())) > 1 else {}


def best_of(rows: list[dict]) -> dict[str, dict]:
    """The best model of each measure of config.BEST where models differ (best_rows); not FID where the models'
    come from different numbers of images (fid_counts)."""
    best = best_rows(rows, where_differ=True)
    if fid_counts(rows):
        best.pop("fid", None)
    return best


def format_compare(rows: list[dict]) -> str:
    """The rows as an aligned table for the terminal: a line per model, a column per measure; under it, FID's
    numbers of images where they differ between models (fid_counts)."""
    keys = measures(rows)
    lines = aligned([["name", *keys]] + [[r["name"], r["error"]] if "error" in r else
                                         [r["name"], *(measure_value(r, k) for k in keys)] for r in rows])
    done = [r for r in rows if "error" not in r]
    if done and (how := measured_with(done[0], fid=not fid_counts(rows))):  # (as the page says it)
        lines.append(how)
    if counts := fid_counts(rows):
        lines.append("FID from different numbers of images, generated vs real ("
                     + ", ".join(f"{name}: {n}" for name, n in counts.items()) + "): these do not compare")
    lines += blank_notes(rows, keys, lambda r: r["name"])
    return "\n".join(lines)


# Fig. 6's axes: diversity (x), realism (y). On the demo data validity is the realism of an output
# (a clean palette image) and coverage how many of the four palettes a model reaches.
REALISM = {"fid": "lower", "validity": "higher", "coverage": "higher"}
SHORT = {"fid": "FID", "validity": "validity", "coverage": "palette coverage", "diversity_lpips": "LPIPS diversity",
         "diversity_l1": "L1 diversity"}  # chart titles (the axes have the whole names)


def charts(rows: list[dict]) -> list[str]:
    """The Fig. 6 charts: realism (FID when measured, else validity and coverage) against diversity
    (LPIPS when measured, else L1), one labelled point per model; a model without both values is named
    under the chart instead."""
    have = set(row_measures(rows, IDENTITY))  # (a diversity no model has a value of places no point)
    x = next((k for k in DIVERSITY if k in have), None)
    ys = ["fid"] if "fid" in have else [k for k in ("validity", "coverage") if k in have]
    if x is None or not ys:
        return []
    parts = []
    for y in ys:
        pts = [(r[x], r[y], r["name"]) for r in rows if _number(r.get(x)) and _number(r.get(y))]
        left = [r["name"] for r in rows if not (_number(r.get(x)) and _number(r.get(y)))]
        chart = svg_scatter(f"{SHORT[y]} against {SHORT[x]}", pts,
                            x_title=f"{EVAL_NAMES[x]} (more: more diverse)",
                            y_title=f"{EVAL_NAMES[y]} ({REALISM[y]} is better)")
        note = (f"<figcaption>Not on the chart (no value of both): {html.escape(', '.join(left))}</figcaption>"
                if left else "")
        parts.append(f"<figure>{chart}{note}</figure>")
    return parts


def render_compare(rows: list[dict], picture: str | None, show: int, show_samples: int, *, truth: bool = True,
                   coded: bool = True) -> str:
    """index.html: the protocol, the table (the best of each BEST measure in bold), the charts and the picture
    (`show` inputs, up to `show_samples` outputs per model; truth: with the ground truth, which a plain folder
    of inputs has not; coded: whether any model measured has z)."""
    done = [r for r in rows if "error" not in r]
    first = done[0] if done else {}
    # a model without z has one output per input: the draw is the most any model made
    drawn = max((r["n_samples"] for r in done if "n_samples" in r), default=None)
    # (a model without z made one output where the others made more: drawn above 1 tells it from --n_samples 1)
    flat = " (a model without z: its one output)" if any(r.get("n_samples") == 1 for r in done) and drawn != 1 else ""
    codes = (f"x {drawn} random z (seed {first.get('seed')}){flat}, the same inputs and codes for each (models of one "
             "nz get the same z)") if coded else "x its one output (no model has z), the same inputs for each"
    said = f"{len(rows)} models; none could be measured."
    if done:
        said = (f"{len(rows)} models, each on {read_from(data_folder(first), first.get('phase'))}: the first "
                f"{plural(first.get('n_inputs'), 'input')} {codes}. "
                # (FID's counts where they are alike: where they differ, the page lists them for each model)
                + measured_with(first, fid=not fid_counts(rows))).rstrip()
    keys = measures(rows)
    best = best_of(rows)
    counts = ", ".join(f"{name}: {n}" for name, n in fid_counts(rows).items())
    # why a cell says '-': a measure (blank_notes), or the step of a model given loaded, not read from a file
    notes = blank_notes(rows, keys, lambda r: r["name"], lambda k: EVAL_NAMES.get(k, k))
    if unread := [r["name"] for r in rows if r.get("step") is None]:
        notes.append(f"step -: {', '.join(unread)}: a model given as it is in memory, not read from a checkpoint file")
    header = "".join(f"<th title='{html.escape(k)}'>{html.escape(EVAL_NAMES.get(k, k))}</th>"
                     for k in ("name", "variant", "step", *keys))
    body = []
    for r in rows:
        # (the file as the name's tooltip; a model given in memory has none: its tooltip said "None")
        tip = f" title='{html.escape(r['checkpoint'])}'" if r.get("checkpoint") else ""
        cells = [f"<td{tip}>{html.escape(r['name'])}</td>",
                 f"<td>{html.escape(r['variant'])}</td>", f"<td>{_value(r['step'])}</td>"]
        body.append("<tr>" + "".join(cells) + measure_cells(r, keys, best) + "</tr>")
    figs = charts(rows)
    pic = ""
    if picture:
        beside = " and its ground truth" if truth else ""
        pic = (f"<h2>Outputs</h2><figure><figcaption>For each of the first {plural(show, 'input')}: the input{beside}, "
               f"then a row per model of its first {plural(show_samples, 'measured output')}, z1, z2, ... "
               "the same codes for models of one nz (a model without z: its one output)."
               # (a model whose outputs were not finite has no row: the picture's rows were fewer than the models)
               + (f" No row for {html.escape(', '.join(r['name'] for r in rows if 'error' in r))}: see the table."
                  if len(done) < len(rows) else "")
               + f"</figcaption><img src='{html.escape(picture)}' alt='the models side by side'></figure>")
    title = "Models compared: " + ", ".join(r["name"] for r in rows)
    return html_page(
        title,
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(said)}</p>"
        f"<div class='across'><table><tr>{header}</tr>{''.join(body)}</table></div>"
        + ("<p class='meta'>Bold: the best of each measure models are ranked by (FID, encoded reconstruction "
           "L1, palette coverage), where models differ.</p>" if best else "")
        + (f"<p class='meta'>FID from different numbers of images, generated vs real ({html.escape(counts)}): "
           "fewer images bias FID upward, so these do not compare (none in bold).</p>" if counts else "")
        + "".join(f"<p class='meta'>{html.escape(note)}.</p>" for note in notes)
        + (f"<h2>Diversity and realism (the paper's Fig. 6)</h2><div class='charts'>{''.join(figs)}</div>"
           if figs else "")
        + pic)
