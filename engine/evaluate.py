"""`evaluate`: measures of a trained model on a validation or test split.

The protocol is the paper's (Zhu et al. 2017, Fig. 6, as its authors' README describes it): the
first `num` = 100 inputs of the split in file-name order (the validation split, val/, when there is
one), `n_samples` = 20 outputs per input with z ~ N(0, I), and diversity as the mean LPIPS
distance (AlexNet, version 0.0) between consecutive samples of one input: 19 pairs per input,
1,900 in all. The codes come from one generator seeded with `seed`: input i gets z[i] of a
num x n_samples x nz draw, whatever the batch size. LPIPS and FID see the outputs rounded to 8
bits, as saved images (the authors' tensor2im truncates: half a level lower on average).

Metrics (any of them, `metrics=`):
- l1: diversity as the mean L1 between consecutive samples ([-1, 1] units) and the L1 of the
  encoded reconstruction G(A, E(B)) against B;
- palette (the built-in demo data: a palettes.json beside the images): for each output, which of
  the K palettes it shows (coverage, validity; see metrics/palette.py) and whether the encoded
  output keeps B's palette;
- lpips: the paper's diversity (metrics/lpips.py); version 0.1 and all pairs are options;
- fid: FID between all generated images and the real B images of the same inputs (metrics/fid.py;
  MSGAN and later work report it for realism).
Default: l1, and palette on the demo data.

`Evaluation` is one made ready (options checked, metric networks loaded) and run as often as needed:
a training run with --eval_every keeps one and runs it on its live model; under torchrun every rank
measures its share of the inputs.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as tdist

from bicyclegan.pipelines import DatasetError
from bicyclegan.pipelines.atomic import TempFiles, short_name, special_file
from bicyclegan.pipelines.errors import SeveralSizesError, plural
from bicyclegan.pipelines.files import find_layout
from bicyclegan.pipelines.sharding import shard_range

from .checkpoint import DATA_RESUMABLE_CHANGES, MODEL_RESUMABLE_CHANGES, is_checkpoint
from .config import BEST, MAX_SEED, check_bool, check_int, parse_metrics
from .errors import ConfigError, DivergenceError, OutputError, WeightsError
from .images import nonfinite_said, sample_columns
from .io import atomic_write, count_line, end_count_line, file_sha256, read_torch_file, signals_held
from .metrics import classify_palettes, coverage_of
from .metrics.fid import checked_inception_file, fid_from_features, inception_features, load_inception
from .metrics.lpips import PAIRS, VERSIONS, checked_alexnet, checked_linear, load_lpips, sample_pairs
from .report import NO_DIVERSITY, NO_ENCODED, NO_ENCODED_EITHER, _number, data_folder, has_split, read_from
from .runtime import (
    Dist,
    build_loader,
    check_input_size,
    halves_found,
    inference_data,
    input_state,
    inputs_folder,
    made_alike,
    made_from,
    open_model,
)

PAPER_INPUTS, PAPER_SAMPLES = 100, 20  # the paper's diversity protocol: 100 inputs x 20 samples
# AlexNet's strides and pools leave nothing of a smaller image for its last layers (16 px fails).
LPIPS_MIN_SIDE = 32
_GO, _STOP, _FAILED = 0, 1, 2  # a rank's state at a batch of run(): the ranks act on the largest
# Seconds of measuring between two saves of the measures made (run(keep=...)): the most a kill -9 loses (a stop
# saves them as it ends run()); each save writes only the batches measured since the last.
SAVE_EVERY = 60.0
# The kept measures' layout (_Kept's files): 2 keeps the palettes of the outputs, where 1 kept the images
KEPT_FORMAT = 2


def _palette_info(f: Path) -> dict:
    """The demo data's palettes.json `f`. One that cannot be read is a DatasetError naming it (a traceback, and
    under torchrun a rank gone without a word)."""
    try:
        info = json.loads(f.read_text())
        if not isinstance(info, dict) or type(info.get("n_palettes")) is not int:
            raise ValueError("no n_palettes in it")
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DatasetError(f"cannot read the demo data's palettes {f} ({reason}): make-demo writes the data again, "
                           f"or measure without the palette metric (--metrics l1)") from None
    return info


def _quantised(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 as a saved image holds it (images.to_uint8's rounding), grayscale as RGB."""
    q = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return q.expand(-1, 3, -1, -1) if q.shape[1] == 1 else q


def improves(key: str, value, best) -> bool:
    """Whether `value` of the measure `key` (one of BEST) beats `best` (None: nothing to beat yet); a
    missing or non-finite value never does, and a tie keeps the earlier."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return best is None or (value < best if BEST[key][1] == "lower" else value > best)


def json_safe(result: dict) -> dict:
    """evaluate's result as its JSON files hold it (eval.json, eval_log.jsonl, sweep.json, compare.json):
    JSON has no NaN, so a measure that is not finite is null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}


def earlier_results(path) -> bool:
    """Whether the file at `path` is one a new results file may replace: empty (`--json "$(mktemp)"`), or JSON that
    evaluate (eval.json: a dict naming its data and split), a sweep or compare (a list of rows each naming its
    checkpoint) wrote."""
    path = Path(path)
    try:
        if (size := path.stat().st_size) == 0:
            return True
        if size > 64 << 20:  # (a sweep of 2,000 checkpoints writes 2 MiB: not read whole)
            return False
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if isinstance(found, dict):
        return {"dataroot", "phase", "metrics"} <= set(found)
    return isinstance(found, list) and bool(found) and all(isinstance(r, dict) and "checkpoint" in r for r in found)


def refuse_checkpoint_json(path, name: str, keyword: str | None = None) -> None:
    """Refuse a --json file that is a checkpoint: `evaluate CKPT --json CKPT` wrote the results over the
    checkpoint it had just measured; or a device or a pipe (`--json /dev/null` as root replaced the device);
    or any other existing file but earlier results (`--json RUN/config.json` replaced the run's config,
    `--json RUN/log.jsonl` its training log, without a word).
    name: the results file's own name, for the example; keyword: the Python function's for --json, where it
    has one (a Python caller has no --json)."""
    said = f" ({keyword} in Python)" if keyword else ""
    if is_checkpoint(path):
        raise OutputError(f"--json {path}{said} is a bicyclegan checkpoint, which the results would replace; give "
                          f"another file to write, e.g. {Path(path).with_name(name)}")
    if kind := special_file(path):  # (before the work; the writer refuses it too, after)
        stream = kind.startswith("a process's open file")  # (/dev/stdout: "e.g. /dev/eval.json" said nothing)
        raise OutputError(f"--json {path}{said} is {kind}" + ("" if stream else ", which the results would replace")
                          + f"; give a file's path, e.g. {name if stream else Path(path).with_name(name)} "
                          f"(--json - writes them to standard output)")
    if Path(path).is_file() and not earlier_results(path):
        other = Path(path).with_name(name)
        other = other if other != Path(path) else Path(path).with_name(f"{other.stem}_new{other.suffix}")
        raise OutputError(f"--json {path}{said} exists and holds no earlier results of evaluate, a sweep or compare "
                          f"(a run's config.json or log.jsonl, a file of yours), which the results would replace; "
                          f"give another file to write, e.g. {other}")


def draw_codes(n_inputs: int, n_samples: int, nz: int, seed: int) -> torch.Tensor:
    """The codes of an evaluation: input i gets row i of one draw from `seed`, whatever the batch size and
    the number of inputs (compare's picture shows the same ones). torch's CPU randn turns uniforms into normals
    16 at a time and redraws the last 16 of a length that is no multiple of 16: each input's row is padded to
    one, or --num 50 and --num 100 gave the 50th input other codes (n_samples 3, nz 8: up to 2.95 apart).
    Rows of a multiple of 16 already (the paper's 20 x 8) are the plain n_inputs x n_samples x nz draw's."""
    per = n_samples * nz
    row = -(-per // 16) * 16
    z = torch.randn(n_inputs, row, generator=torch.Generator().manual_seed(seed))
    return z[:, :per].reshape(n_inputs, n_samples, nz)


def samples_per_input(n_samples: int | None, cfg) -> int:
    """The random z per input of an evaluation of a model of config `cfg`: n_samples, or where it is None
    (not given) the paper's 20, and 1 for a model without a latent code (nz=0). Such a model draws one output
    per input whatever the number: one above 1 is refused, as sample refuses its z options (its result said
    n_samples 1 under the 20 given, and nothing else changed)."""
    if n_samples is not None:
        check_int("n_samples", n_samples, 1)
    if not cfg.model.nz:
        if n_samples is not None and n_samples > 1:
            raise ConfigError(f"n_samples={n_samples}: variant {cfg.variant} has no latent code (nz=0): one output "
                              f"per input, no z drawn, so it changes nothing; leave it out")
        return 1
    return PAPER_SAMPLES if n_samples is None else n_samples


def best_rows(rows: list[dict], *, where_differ: bool = False) -> dict[str, dict]:
    """measure -> the row (of evaluations: a run's checkpoints, models compared) with its best value,
    for the measures of BEST; a tie keeps the earlier row, as train --keep_best does. where_differ:
    none for a measure every row has the same value of (or one row alone has one): nothing was beaten."""
    out = {}
    for key in BEST:
        if where_differ and len({r[key] for r in rows if _number(r.get(key))}) < 2:
            continue
        for r in rows:
            if improves(key, r.get(key), out[key][key] if key in out else None):
                out[key] = r
    return out


def evaluate(model, dataroot=None, *, phase: str | None = None, n_samples: int | None = None,
             num: int = PAPER_INPUTS, seed: int = 0, device: str = "auto", batch_size: int = 16,
             metrics=None, lpips_version: str = "0.0", lpips_pairs: str = "consecutive",
             lpips_backbone=None, lpips_linear=None, fid_weights=None, layout: str | None = None,
             skip_bad: bool | None = None, progress: bool = False, keep=None, dist: Dist = Dist()) -> dict:
    """Evaluate `model` (a BicycleGAN or a checkpoint path) on up to `num` inputs of dataroot/phase
    (default: the data it was trained on; phase: val when there is one, else test) with n_samples
    random z each (default 20; a model without a latent code, nz=0: one output per input, and more refused:
    samples_per_input). metrics: see the module docstring. lpips_backbone / lpips_linear / fid_weights:
    weights files (default: torch.hub's checkpoints folder and the installed lpips package). layout:
    as make_loader's (default: detected; a plain folder of images is read as inputs only). skip_bad:
    leave out bad files (default: as the run did). progress: count the inputs measured on stderr (as the
    command does). keep: a folder to keep the measures in as they are made (Evaluation.run's), from which a call
    stopped and made again goes on, removed once the result is made. dist: the ranks that share the inputs under
    torchrun (every rank calls evaluate alike and gets the result; init_distributed's)."""
    # n_samples 0 or less was a RuntimeError about a tensor's shape: refused before the metric networks load
    # (run() checks it again, for Evaluation's callers)
    if n_samples is not None:
        check_int("n_samples", n_samples, 1)
    progress = check_bool("progress", progress)  # (skip_bad: DataConfig's)
    result = made_alike(dist, lambda: Evaluation(
        model, dataroot, phase=phase, num=num, device=device, batch_size=batch_size, metrics=metrics,
        lpips_version=lpips_version, lpips_pairs=lpips_pairs, lpips_backbone=lpips_backbone,
        lpips_linear=lpips_linear, fid_weights=fid_weights, layout=layout, skip_bad=skip_bad,
        dist=dist)).run(n_samples, seed, progress=progress, keep=keep)
    if keep is not None:
        drop_kept(keep, dist)
    return result


def chosen_metrics(metrics, cfg, root, phase: str) -> tuple[str, ...]:
    """parse_metrics of `metrics` for a model (its cfg) read on root/phase: by default palette too on the demo
    data (its palettes.json), for a model that draws colour (the palettes are colours)."""
    return parse_metrics(metrics, (Path(root) / phase / "palettes.json").is_file() and cfg.model.output_nc == 3)


class Evaluation:
    """An evaluation made ready: the model, the split and the metrics chosen, every option checked and
    the metric networks loaded, before any image is generated (a missing weights file fails at once).
    run() measures the model's weights as they are at the call: `evaluate` runs one once, a training
    run (--eval_every) keeps one and runs it at each evaluation, on the same inputs with the same z.
    Arguments: as evaluate's; networks_from: an Evaluation of the same metric options whose metric networks
    this one uses instead of loading its own; dist: the ranks that share each run() under torchrun (every
    rank makes its Evaluation and calls run() at the same points: a training run's --eval_every); keep_loader:
    the first run() reads the loader made here (the split listed and checked once); False where that run comes
    much later (a training's: its files checked again by then, each run's loader made afresh)."""

    def __init__(self, model, dataroot=None, *, phase: str | None = None, num: int = PAPER_INPUTS,
                 device: str = "auto", batch_size: int = 16, metrics=None, lpips_version: str = "0.0",
                 lpips_pairs: str = "consecutive", lpips_backbone=None, lpips_linear=None, fid_weights=None,
                 layout: str | None = None, skip_bad: bool | None = None, networks_from: "Evaluation | None" = None,
                 dist: Dist = Dist(), keep_loader: bool = True):
        check_int("num", num, 1)  # (num 0 was "no images to evaluate" in a folder that has them)
        check_int("batch_size", batch_size, 1)
        self.dist, self.batch_size, self._first_loader = dist, batch_size, None
        self.kept_lost = ""  # (what is kept where a save of run()'s measures failed: _Kept's)
        self._real = {}  # FID's features of the real B, by their file (_real_features); shared with of()'s copies
        self._options = dict(dataroot=dataroot, phase=phase, num=num, device=device, batch_size=batch_size,
                             metrics=metrics, lpips_version=lpips_version, lpips_pairs=lpips_pairs,
                             lpips_backbone=lpips_backbone, lpips_linear=lpips_linear, fid_weights=fid_weights,
                             layout=layout, skip_bad=skip_bad)
        self.model = open_model(model, device)
        self._opened = self.model is not model  # (read from its file here: known by that file's digest)
        self._check_finite()
        cfg = self.model.cfg
        self.root, self.phase, self.layout, self.data = inference_data(cfg, dataroot, phase, layout, skip_bad, num)
        self.chosen = chosen = chosen_metrics(metrics, cfg, self.root, self.phase)
        # The palettes are colours: a model drawing one channel has none to classify
        rgb = cfg.model.output_nc == 3
        palettes = self.root / self.phase / "palettes.json"  # (the demo data's)
        self.info = _palette_info(palettes) if "palette" in chosen and palettes.is_file() else None  # (where used)
        if "palette" in chosen and self.info is None:
            find_layout(self.root, self.phase, layout)  # (a split make-demo was killed writing: said as that)
            raise ConfigError(f"metrics=palette needs the demo data (a palettes.json in {self.root / self.phase})")
        if "palette" in chosen and not rgb:
            raise ConfigError(f"metrics=palette classifies colour outputs; this model draws {cfg.model.output_nc}-"
                              f"channel images (output_nc): use metrics l1, lpips or fid")
        if lpips_version not in VERSIONS:
            raise ConfigError(f"lpips_version={lpips_version!r}: expected one of {', '.join(VERSIONS)}")
        if lpips_pairs not in PAIRS:
            raise ConfigError(f"lpips_pairs={lpips_pairs!r}: expected one of {', '.join(PAIRS)}")
        if "fid" in chosen and num < 2:
            raise ConfigError(f"FID compares two sets of images: num must be >= 2, got {num}")
        self.lpips_version, self.lpips_pairs = lpips_version, lpips_pairs
        # Built once, at the batch size asked, and kept for the first run() (a batch-1 loader made here for
        # its sizes and another in run() checked and listed the split twice per evaluation)
        try:
            loader = self._loader()
        except SeveralSizesError:
            # preprocess none / scale_width keep the files' sizes, and a batch needs one: an input at a time
            # (the batch size changes no measure; a split of several sizes was refused, with advice to use
            # batch_size=1, which train --eval_every has no option for)
            self.batch_size = 1
            loader = self._loader()
        self._first_loader = loader if keep_loader else None
        if not keep_loader:
            loader.close()  # at once: its checks' findings (layout, sizes, count) are all that is wanted of it
        try:
            self._fit_inputs(loader, num)
            self._load_networks(networks_from)
        except BaseException:
            loader.close()  # a refused evaluation keeps no loader (DALI's: its pipeline's threads and memory)
            raise

    def _fit_inputs(self, loader, num: int) -> None:
        """The inputs' checks against the metrics chosen (their B, sizes and count: the loader's findings), and
        the count measured."""
        chosen, where = self.chosen, inputs_folder(self.root, self.phase)
        # Inputs alone have no B: known now, not after the first batch was generated (compare had made its
        # results folder by then, left empty). The loader's layout, not only a layout given: a split of an
        # A/ folder without B/ beside it is detected as inputs alone when the loader is made.
        self.has_B = loader.layout != "single"
        self.halved = halves_found(self.layout, loader)
        if not self.has_B and (need := [m for m in chosen if m in ("fid", "palette")]):
            raise DatasetError(f"{where} is read as inputs alone (single layout: no B images): metrics "
                               f"{', '.join(need)} compare outputs with B; use l1 or lpips")
        if len(loader.output_sizes) > 1:
            if "palette" in chosen:  # (it classifies all the outputs as one batch: a RuntimeError of sizes)
                (h0, w0), (h1, w1) = list(loader.output_sizes)[:2]
                raise ConfigError(f"metrics palette (a default on the demo data) classifies the outputs of a split "
                                  f"of one image size; {self.root / self.phase} has several ({w0}x{h0}, {w1}x{h1}, "
                                  f"W x H, with preprocess={self.data.preprocess}): use metrics l1, lpips or fid")
        if "lpips" in chosen and (small := [(h, w) for h, w in loader.output_sizes if min(h, w) < LPIPS_MIN_SIDE]):
            raise ConfigError(f"metrics=lpips: LPIPS's AlexNet needs images of at least {LPIPS_MIN_SIDE} px a side; "
                              f"these are {small[0][1]}x{small[0][0]} (W x H): use metrics l1 for them")
        self.n_inputs = min(num, loader.num_samples)
        if "fid" in chosen and self.n_inputs < 2:  # (num >= 2 was checked; a split of one input failed on FID's
            # ValueError about feature shapes after every output was generated)
            raise DatasetError(f"{where} gives 1 input to evaluate: FID compares two sets of images, so metrics fid "
                               f"needs 2 inputs or more; use l1 or lpips")

    def _load_networks(self, networks_from) -> None:
        # The metric networks load before any image is generated: a missing weights file fails at once.
        # networks_from: another evaluation of the same metric options, whose networks serve this one too
        # (compare: several models measured with the networks loaded once).
        dev, chosen, o = self.model.device, self.chosen, self._options
        if (theirs := networks_from) is not None:
            same = ("lpips_version", "lpips_backbone", "lpips_linear", "fid_weights")
            if (chosen, dev, [o[k] for k in same]) != (theirs.chosen, theirs.model.device,
                                                       [theirs._options[k] for k in same]):
                raise ValueError("networks_from: an evaluation of other metrics, metric weights or device")
            self.lp, self.inception = theirs.lp, theirs.inception
        else:
            try:
                self.lp = load_lpips(o["lpips_version"], backbone=o["lpips_backbone"], linear=o["lpips_linear"],
                                     device=dev) if "lpips" in chosen else None
                self.inception = load_inception(o["fid_weights"], device=dev) if "fid" in chosen else None
            except WeightsError as e:
                # Each loader says its first missing file: a machine without them (an offline cluster) took a try
                # per file to learn the three. The others missing too, in the same line.
                said = []
                for check in self._weights_files():
                    try:
                        check()
                    except WeightsError as missing:
                        said.append(str(missing))
                if len(said) > 1:
                    raise WeightsError(f"{len(said)} weights files are missing: " + "; and ".join(said)) from e
                raise

    def _weights_files(self) -> list:
        """The weights files the chosen metrics read, each as a callable: its loader's check, which returns the
        file's path or raises the WeightsError that says it is missing."""
        o = self._options
        checks = (("lpips", lambda: checked_alexnet(o["lpips_backbone"])),
                  ("lpips", lambda: checked_linear(o["lpips_version"], o["lpips_linear"])),
                  ("fid", lambda: checked_inception_file(o["fid_weights"])))
        return [check for metric, check in checks if metric in self.chosen]

    def of(self, model) -> "Evaluation":
        """This evaluation for another model (a BicycleGAN or a checkpoint path: another of the run's
        checkpoints), on the same inputs with the same options, its metric networks shared, not loaded
        again. A model whose model or data options differ (which the split's reading depends on) gets an
        evaluation of its own, as evaluate(model, ...) would make (the metric networks shared still);
        not one whose differ in what a resumed run may change (checkpoint.check_compatible: the data's
        folder, workers, backend; impl): this evaluation's inputs are read for it, the same for every
        checkpoint of the run."""
        def reading(cfg) -> list[dict]:  # the options the split's reading depends on
            d = cfg.to_dict()
            return [{k: v for k, v in d[part].items() if k not in may}
                    for part, may in (("model", MODEL_RESUMABLE_CHANGES), ("data", DATA_RESUMABLE_CHANGES))]
        given, model = model, open_model(model, self.model.device)
        if reading(model.cfg) != reading(self.model.cfg):
            return Evaluation(model, **self._options, networks_from=self, dist=self.dist)
        other = copy.copy(self)
        other.model, other._first_loader = model, None  # (this one's first run's)
        other._opened = model is not given
        other._check_finite()
        return other

    def _check_finite(self) -> None:
        if bad := self.model.nonfinite():
            raise DivergenceError(f"the model holds {self.model.describe_nonfinite(bad)}; evaluate a checkpoint "
                                  f"from before training diverged")

    def _loader(self):
        """The split's loader (run() reads this rank's share of it: _from_input): the one __init__ made, for
        the first run; later runs make their own (a training's evaluations): a loader kept after its run would
        keep its worker processes for as long as this object lives."""
        if (first := self._first_loader) is not None:
            self._first_loader = None
            return first
        # Not the loader's own cut among the ranks: that one checks the files together (a collective, which
        # a rank failing before it left the others in), and with skip_bad it cuts the whole split, not num.
        return build_loader(self.model.cfg.model, self.data, self.root, self.phase, device=self.model.device,
                            batch_size=self.batch_size, shuffle=False, augment=False, layout=self.layout)

    @torch.no_grad()
    def run(self, n_samples: int | None = None, seed: int = 0, stop=None, progress: bool = False,
            keep=None, weights: str | None = None) -> dict | None:
        """The measures of the model's current weights (n_samples random z per input, drawn from `seed`; None:
        samples_per_input's default, more than 1 refused for a model without a latent code).
        stop: a callable asked before each batch; once it is true, run() gives up and returns None (a
        training run's evaluation when a preemption's signal comes: its seconds go to the checkpoint).
        progress: rank 0 counts the inputs measured on stderr ("evaluated 320/5000"; 5,000 inputs of 64 px
        with 2 z took 34 s on 2 CPU cores without a word).
        keep: a folder (the command's: kept_measures) where the measures are kept as they are made (_Kept), every
        SAVE_EVERY seconds and as run() ends (a result, a stop, an error): a call of the same recipe (the weights,
        inputs and options) run again goes on from them, and its result is the straight call's; those it cannot take
        (damaged, of an input changed since, of another recipe) are said on stderr whatever progress, as those taken
        are (compare's and a sweep's run() is quiet). Left for the caller
        to remove once the result is written (drop_kept); removed here where the model's outputs are not finite
        (that error is the result, met again by the same call). An exception run() ends by carries `measures_lost`
        where a save failed (a full disk): what is kept, for the line that says it (the command's stop line); else
        `measures_kept` where measures of this recipe are kept (taken from an earlier call or saved by this one): their
        folder, which the same call run again goes on from. weights: the model's weights_digest where the caller has
        it already (compare's, its kept folder's name), for the kept measures' recipe: a model object's is a pass over
        all its tensors.
        Made with a Dist of several ranks, every rank calls it: each measures its own contiguous share of
        the inputs (with their own z: the figures are those of one process), rank 0 combines the shares,
        and every rank returns the result; a stop or an error on one rank is every rank's (each keeps its own
        share's measures)."""
        n_samples = samples_per_input(n_samples, self.model.cfg)
        check_int("seed", seed, 0, high=MAX_SEED)  # a larger one was torch's ValueError (Overflow when unpacking)
        self._check_finite()
        self.kept_lost = ""  # (this run's)
        share, rounds = self._share()
        z_all = draw_codes(self.n_inputs, n_samples, self.model.cfg.model.nz, seed)[share.start:share.stop]
        got = {"div": [], "rec": [], "lpips": [], "fake": [], "real": [], "palette": [], "palette_enc": []}
        batches, index, read, measured, n_out, has_enc = None, {}, 0, set(), n_samples, False
        counted = progress and self.dist.main  # (every rank's share, as the ranks go in step)
        sizes, shown = [len(range(*shard_range(self.n_inputs, k, self.dist.world))) for k in range(self.dist.world)], 0
        saver = _Kept(keep, self, share, dict(n_samples=n_samples, seed=seed), progress, weights) if (
            keep is not None and len(share)) else None
        kept, mine_kept = [0] * self.dist.world, 0  # each rank's inputs measured by an earlier call (keep), its own
        # The same number of rounds on every rank, each agreed twice: on going on (before any collective of
        # the round's work: the loader's checks), then on how the work went.
        # The loader made in the first round is closed after the last, or however run() ends before (a stop, an
        # error, Ctrl-C): left to the garbage collector, its workers outlived a call that raised for as long
        # as the caller held the traceback.
        with contextlib.ExitStack() as owned:
            ended = None  # the exception run() ends by (a stop's, a Ctrl-C's too); None: a result or stop()'s None
            try:
                for r in range(rounds):
                    if self.dist.agree(_STOP if stop is not None and stop() else _GO) == _STOP:
                        return None
                    error, batch, fresh = None, None, []
                    try:
                        if saver is not None and saver.due():
                            saver.save_quietly(got, n_out, has_enc)
                        if batches is None:  # in here: its refusal is every rank's; none for an empty share
                            loader = owned.enter_context(self._loader()) if len(share) else None
                            # each input's place in the split (the files the checks took): its codes' row
                            index = {s.path: i for i, s in enumerate(loader.samples)} if loader else {}
                            if saver is not None and (earlier := saver.take(loader, got, measured)):
                                read, n_out, has_enc = earlier  # (a straight call's batches from the next on)
                                mine_kept = min(read, len(share))
                                batches = saver.batches_from(loader, saver.done[0])
                            else:
                                batches = _from_input(loader, share.start) if loader else iter(())
                        batch = next(batches, None) if read < len(share) else None
                        if batch is not None:
                            # With skip_bad, a file that broke after the checks has the next good sample in its
                            # place (the loader's warning names it): an input already measured, or another rank's,
                            # or one measured in its own place later. Each input is measured once, by its share's
                            # rank, with its own codes, whatever place it comes in; the broken one is left out.
                            rows = []
                            for j, path in enumerate(batch["paths"][:len(share) - read]):
                                if (i := index.get(path, -1)) in share and i not in measured:
                                    measured.add(i)
                                    rows.append(j)
                            read += len(batch["paths"])
                            if rows:
                                take = {k: batch[k][rows] if k in ("A", "B") else v for k, v in batch.items()}
                                take["paths"] = [batch["paths"][j] for j in rows]
                                take["samples"] = [loader.samples[index[p]] for p in take["paths"]]  # (their files)
                                z = z_all[[index[p] - share.start for p in take["paths"]]]
                                n_out, has_enc = self._measure(take, z, got)
                                fresh = [index[p] for p in take["paths"]]
                    except Exception as e:  # every rank raises it, below
                        error = e
                    # (with each rank's saves of its kept measures: failed or not, told to rank 0 for a stop's line,
                    # where no rank may wait on another, which may be gone)
                    agreed, saves = self.dist.agree_each(_FAILED if error is not None else _GO,
                                                         saver.failed_code() if saver is not None else 0)
                    if saver is not None:
                        saver.elsewhere = saves
                    if agreed == _FAILED:
                        self.dist.raise_any(error)
                    if saver is not None:
                        saver.batch_done(batch is not None, read, fresh, got)
                    if r == 0 and keep is not None:  # what each rank took, for the count (rank 0's)
                        kept = self._kept_counts(mine_kept, keep)
                        shown = sum(kept)
                    if counted and (done := sum(min(k + (r + 1) * self.batch_size, n)
                                                for k, n in zip(kept, sizes))) > shown:
                        count_line("evaluated", done, self.n_inputs, step=done - shown)
                        shown = done
            except BaseException as e:
                ended = e
                if counted:
                    end_count_line()  # (on a terminal the lines that follow began on the count's)
                raise
            finally:
                if isinstance(ended, DivergenceError) and keep is not None:
                    # Outputs not finite (every rank's error: raise_any) are the call's result, which the same call
                    # meets again: its measures are of no use, and a later evaluation into the same place (the run's
                    # next latest.pt) told of them as "of another weights". Every rank, one of no share too: a
                    # collective.
                    drop_kept(keep, self.dist)
                elif saver is not None:
                    saver.end(ended, got, n_out, has_enc)
        if counted:
            end_count_line()
        mine = {"seen": len(measured), "n_out": n_out, "has_enc": has_enc,
                "lost": saver.lost() if saver is not None and saver.failed else "",  # (this rank's own words)
                **{k: torch.cat(v) if v else None for k, v in got.items()}}
        got.clear()  # (each list is one tensor in `mine` now: not held twice, FID's features 8 KB an image)
        shares = [mine]
        if self.dist.grouped:  # (the payload is small but for FID's features)
            shares = [None] * self.dist.world if self.dist.main else None
            tdist.gather_object(mine, shares, dst=0)
            if self.dist.main:  # (each rank's words of its saves, as its run ended: all of them, here)
                self.kept_lost = _lost_by_rank([s["lost"] for s in shares])
        # (its error, e.g. FID's on degenerate features, is every rank's)
        return self.dist.main_says(lambda: self._result(shares, seed))

    def _kept_counts(self, mine: int, keep) -> list[int]:
        """Each rank's inputs measured by an earlier call (run's keep: `mine` is this rank's), every rank's;
        rank 0 says how many, whatever `progress` (a sweep's and compare's, run again after the stop's line
        promised it, went on from them without a word)."""
        counts = [mine]
        if self.dist.grouped:
            counts = [None] * self.dist.world
            tdist.all_gather_object(counts, mine)
        if self.dist.main and (k := sum(counts)):
            print(f"{k} of {self.n_inputs} inputs already measured by an earlier call of the same weights, inputs "
                  f"and options: measuring the other {self.n_inputs - k} (to measure them all again, remove {keep})",
                  file=sys.stderr, flush=True)
        return counts

    def _share(self) -> tuple[range, int]:
        """This rank's inputs (of the first n_inputs) and the number of batches every rank goes through:
        that of the largest share, and one more where a share may begin inside a batch (_from_input)."""
        lo, hi = shard_range(self.n_inputs, self.dist.rank, self.dist.world)
        rounds = math.ceil(math.ceil(self.n_inputs / self.dist.world) / self.batch_size)
        return range(lo, hi), rounds + (self.dist.world > 1)

    def _measure(self, batch, z, got) -> tuple[int, bool]:
        """The outputs of a batch's inputs (z: their codes, a row each) and their measures, appended to
        `got` (per input, in the batch's order); returns the outputs per input, and whether there is an
        encoded column."""
        model, cfg, chosen, lp, inception = self.model, self.model.cfg, self.chosen, self.lp, self.inception
        # preprocess none keeps the files' sizes: one the generator cannot take was its traceback
        check_input_size(batch["A"], batch["paths"][0], cfg.model, self.data.preprocess, self.halved)
        A = batch["A"].to(model.device)
        B = batch.get("B")
        B = None if B is None else B.to(model.device)
        cols, names = sample_columns(model, A, B, z if cfg.model.nz else None)
        if bad := nonfinite_said(cols, names):  # (the encoded column too: its measures were of black images)
            raise DivergenceError(f"the model's outputs are not finite ({bad}): it cannot be evaluated")
        samples = torch.stack([c for c, n in zip(cols, names) if n.startswith("random") or n == "output"], 1)
        if samples.shape[1] > 1:
            got["div"].append((samples[:, 1:] - samples[:, :-1]).abs().mean(dim=(1, 2, 3, 4)).double().cpu())
        pairs = torch.tensor(sample_pairs(samples.shape[1], self.lpips_pairs), dtype=torch.long).reshape(-1, 2)
        if lp is not None and len(pairs):
            for row in samples:  # one input's samples at a time: each image's features serve all its pairs
                f = lp.features(_quantised(row).float() / 127.5 - 1)
                got["lpips"].append(lp.distance([t[pairs[:, 0]] for t in f], [t[pairs[:, 1]] for t in f]).cpu())
        if inception is not None:
            got["fake"].append(inception_features(inception, _quantised(samples.flatten(0, 1))))
            got["real"].append(self._real_features(B, batch["samples"]))
        has_enc = "encoded" in names
        if has_enc:
            enc = cols[names.index("encoded")]
            got["rec"].append((enc - B).abs().mean(dim=(1, 2, 3)).double().cpu())
        if "palette" in chosen:
            # Classified as they are made, the images' palettes kept alone (the images took 1.1 MB an input of 64 px
            # at 20 z: 5.5 GB of memory at 5,000 inputs, and as much written into the kept measures). Each batch's
            # rows as a straight call's: the same rows in the same chunks, the same classification, bit for bit.
            K, n = self.info["n_palettes"], samples.shape[1]
            A, B = A.cpu(), B.cpu()
            of_input = torch.arange(len(A)).repeat_interleave(n)  # (each output's input: its regions computed once)
            idx, _ = classify_palettes(A, samples.flatten(0, 1).cpu(), a_index=of_input, n_palettes=K)
            got["palette"].append(idx.view(len(A), n))
            if has_enc:
                want, _ = classify_palettes(A, B, n_palettes=K)
                mine, _ = classify_palettes(A, enc.cpu(), n_palettes=K)
                got["palette_enc"].append(mine == want)
        return samples.shape[1], has_enc

    def _real_features(self, B: torch.Tensor, samples: list) -> torch.Tensor:
        """FID's features of a batch's real B, kept by the file B is read from (its path, size and change time,
        which every write and utime moves: cp -p over it in place keeps its mtime): the same images for
        each of a sweep's checkpoints, a comparison's models (of()'s copies share them) and a training's
        evaluations, whose FID computed them every time (a third of FID's work at 2 samples an input). A file
        changed since is read anew (one changed while its batch was read, between the read and this look, is not:
        a race no reader closes)."""
        keys = []
        for s in samples:
            try:  # both files of a pair: with --direction BtoA the real B is read from A/
                keys.append(tuple((f, (st := os.stat(f)).st_size, st.st_ctime_ns)
                                  for f in (s.path, s.b_path) if f is not None))
            except OSError:
                keys.append(None)
        if all(k is not None and k in self._real for k in keys):
            return torch.stack([self._real[k] for k in keys])
        feats = inception_features(self.inception, _quantised(B))
        for k, f in zip(keys, feats):
            if k is not None:  # a row of its own (a view would keep the batch's whole matrix)
                self._real[k] = f.clone()
        return feats

    def _result(self, shares: list[dict], seed: int) -> dict:
        """The measures of every rank's share (in rank order: the inputs' order)."""
        cfg, chosen, root, phase = self.model.cfg, self.chosen, self.root, self.phase

        def joined(key):
            parts = [s[key] for s in shares if s[key] is not None]
            return (parts[0] if len(parts) == 1 else torch.cat(parts)) if parts else None  # (one rank's: no copy)
        seen = sum(s["seen"] for s in shares)
        if not seen:
            raise DatasetError(f"{root}/{phase}: no images to evaluate")
        first = next(s for s in shares if s["seen"])  # (a rank may have no share: fewer inputs than ranks)
        n_out, has_enc = first["n_out"], first["has_enc"]
        # The folder absolute (resolved, as the protocol's): a relative one, read later from another folder (a
        # report, a sweep's page), named another folder or none; as typed beside it where that differs, for the
        # terminal's table (the words the user gave).
        where = {"dataroot": str(Path(root).resolve())}
        if str(root) != where["dataroot"]:
            where["dataroot_given"] = str(root)
        result = {"variant": cfg.variant, **where, "phase": phase, "n_inputs": seen, "n_samples": n_out, "seed": seed,
                  "metrics": list(chosen)}
        if not has_enc and ("l1" in chosen or "palette" in chosen):
            # Why the encoded measures are missing, for the table: the model's lack or the split's (a model
            # without E on inputs alone: its lack, whatever the split)
            result["encoded_missing"] = "no encoder E" if self.model.E is None else "no B images"
        if "l1" in chosen:
            # One output per input (n_samples 1, or a model without z) has no pair: undefined, not 0.
            result["diversity_l1"] = joined("div").sum().item() / seen if n_out > 1 else None
            if has_enc:
                result["encoded_l1"] = joined("rec").sum().item() / seen
        if self.lp is not None:
            d = joined("lpips")
            d = d.double() if d is not None else torch.zeros(0, dtype=torch.float64)
            result["diversity_lpips"] = d.mean().item() if len(d) else None
            result["lpips"] = {"net": "alex", "version": self.lpips_version, "pairs": self.lpips_pairs,
                               "n_pairs": len(d), "std": d.std(correction=0).item() if len(d) else 0.0}
            # the standard error of the mean, as the LPIPS authors' script prints it (np.std / sqrt(pairs), numpy's
            # std dividing by the pairs' count, not one less): the paper's "±"; the pairs' std alone, which was all
            # there was, reads ~40x wider at 1,900 pairs
            result["lpips"]["stderr"] = result["lpips"]["std"] / math.sqrt(len(d)) if len(d) else 0.0
        if self.inception is not None:
            fake, real = joined("fake"), joined("real")
            result["fid"] = fid_from_features(fake.numpy(), real.numpy())
            result["fid_images"] = {"generated": len(fake), "real": len(real)}
        if "palette" in chosen:
            result.update(coverage_of(list(joined("palette")), self.info["n_palettes"]))
            if has_enc:
                result["encoded_palette_match"] = float(joined("palette_enc").float().mean())
        return result


def kept_measures(results) -> Path:
    """Where the command `evaluate` keeps the measures of the inputs measured so far (run's keep), for the same
    command run again after a stop to go on from them: a hidden folder beside its results file (.eval.json.partial
    beside eval.json), removed once the results are written. A name near the file systems' limit of 255 bytes is cut
    as atomic_write's temp files' (its first 180 bytes and a checksum of the whole): its folder's 9 more bytes
    were "File name too long", a traceback of a call whose results file could be written."""
    results = Path(results)
    return results.with_name(f".{short_name(results.name)}.partial")


def drop_kept(folder, dist: Dist = Dist()) -> None:
    """Remove the measures run(keep=folder) kept (its result given: they are of no more use), and the folder where
    nothing else is in it. Every rank removes its own files (a folder of each machine's), then rank 0 any left; one
    that cannot be removed is left (run() takes it only where its recipe and inputs are the call's)."""
    folder = Path(folder)

    def remove(mine: bool):
        with contextlib.suppress(OSError):
            for f in folder.iterdir():
                if (owner := _Kept.owner(f.name)) and (not mine or owner == (dist.rank, dist.world)):
                    f.unlink(missing_ok=True)
            if not mine:
                folder.rmdir()
    remove(True)
    dist.agree(_GO)  # (every rank's gone before rank 0 removes the folder)
    if dist.main:
        remove(False)


def holds_kept(folder) -> bool:
    """Whether `folder` holds measures run(keep=folder) kept (an empty one, its files not taken and removed, or one of a
    killed save's temp file alone, holds none)."""
    try:
        with os.scandir(folder) as found:
            return any(not f.name.startswith(".") and _Kept.owner(f.name) for f in found)
    except OSError:
        return False


def kept_note(folder) -> str:
    """What is said of measures kept in `folder` after an error (the command's and compare's lines)."""
    return f"the measures are kept in {folder}: the same command goes on from them"


class _Kept:
    """This rank's measures kept in `folder` as run() goes (keep=): every SAVE_EVERY seconds, and as run() ends
    (a result, a stop, an error: end), a file of the batches measured since the last save,
    <rank>-of-<world>.<first batch>.pt, written by rename (whole or absent: a kill -9 too). Each file holds the
    recipe (made_from: the weights, the options that change a measure, the versions), the names and contents of the
    inputs of its batches and their measures (all that _result reads: FID's features, the demo's outputs' palettes).
    A call run again takes this rank's files from its first batch on while their recipe is its own and their inputs
    are as they were, and measures from the next batch on: the loader's batch of that number, so each batch holds the
    inputs of a straight call's (an input's outputs may differ in their last bits in another batch) and the result
    is the straight call's, bit for bit."""

    def __init__(self, folder, ev: "Evaluation", share: range, options: dict, say: bool, digest: str | None = None):
        self.folder, self.ev, self.share, self.options, self.say = Path(folder), ev, share, options, say
        self.digest = digest  # (of the weights, where the caller made it: run's weights)
        self.prefix = f"{ev.dist.rank}-of-{ev.dist.world}."
        self.loader, self.recipe = None, None
        # (batches read, inputs read, each list's length in got) at the last save or take, and after the last
        # batch measured: a save writes what lies between
        self.saved = self.done = None
        self.inputs, self.last = [], time.monotonic()  # the inputs measured since the last save; its time
        self.failed = ""  # (a save failed, and why: no more are tried)
        self.elsewhere = []  # each rank's failed_code, as the last round agreed them (run's)

    @staticmethod
    def owner(name: str) -> tuple[int, int] | None:
        """(rank, world) of a file of kept measures, or of a temp file of its save (.<name>.<writer>.tmp), by its
        name; None for any other file."""
        if name.startswith(".") and name.endswith(".tmp"):
            name = name[1:]
        rank, sep, rest = name.partition("-of-")
        world, dot, rest = rest.partition(".")
        ok = rank.isdigit() and sep and world.isdigit() and dot and rest[:6].isdigit() and rest[6:9] == ".pt"
        return (int(rank), int(world)) if ok else None

    def _recipe(self) -> str:
        ev = self.ev
        # the metric networks' files by their place and contents
        weights = [[str(path := file().resolve()), _weights_sha256(path)] for file in ev._weights_files()]
        # The data settings but the folder (the inputs are recorded by name and contents), the workers and the first
        # files listed (num: the inputs measured, beside the options)
        data = {k: v for k, v in ev.data.__dict__.items() if k not in ("dataroot", "num_workers", "max_dataset_size")}
        return json.dumps(made_from(ev.model, ev._opened, ev.model.cfg, self.loader, weights=self.digest, data=data,
                                    **self.options, num=ev.n_inputs, batch_size=ev.batch_size, world=ev.dist.world,
                                    metrics=list(ev.chosen), lpips_version=ev.lpips_version,
                                    lpips_pairs=ev.lpips_pairs, metric_weights=weights,
                                    # (the palettes each batch's outputs are classified among: palettes.json's)
                                    n_palettes=ev.info and ev.info["n_palettes"]), sort_keys=True)

    def _state(self, i: int) -> list:
        return input_state(self.loader.samples[i], inputs_folder(self.ev.root, self.ev.phase))

    def _note(self, line: str, everyone: bool = True, quiet_too: bool = False) -> None:
        """A line on stderr where run() was asked to say how it goes (progress), or quiet_too: take()'s lines of kept
        measures not taken, said whatever progress, as _kept_counts says those taken (compare and a sweep, whose run()
        is quiet, measured a damaged file's or a changed input's inputs again without a word)."""
        if (self.say or quiet_too) and (everyone or self.ev.dist.main):
            print(f"note: {line}", file=sys.stderr, flush=True)

    def _read(self, name: str, got: dict) -> dict:
        """A file of this rank's, checked to be such measures (an OutputError naming it where it is not)."""
        f = self.folder / name
        try:
            c = read_torch_file(f, what="kept measures", error=OutputError)
        except OSError as e:  # (another user's file on a shared disk: a PermissionError of open())
            raise OutputError(f"kept measures {f} cannot be read ({e.strerror or e})") from None
        if isinstance(c, dict) and c.get("format") != KEPT_FORMAT and isinstance(c.get("format"), int):
            raise OutputError(f"kept measures {f} are of another version's layout (format {c['format']}, this "
                              f"version's {KEPT_FORMAT})")
        try:
            if not isinstance(c, dict):  # (another program's file of that name: a tensor's c["batches"] an IndexError)
                raise ValueError
            first, end = c["batches"]
            if not (type(first) is int and type(end) is int and c["format"] == KEPT_FORMAT
                    and name == f"{self.prefix}{first:06d}.pt" and end > first
                    and isinstance(c["recipe"], str) and isinstance(json.loads(c["recipe"]), dict)  # (take reads it)
                    and isinstance(c["got"], dict) and set(c["got"]) <= set(got) and isinstance(c["has_enc"], bool)
                    and all(t is None or isinstance(t, torch.Tensor) for t in c["got"].values())
                    and all(type(i) is int and i in self.share for i in c["measured"])
                    and all(type(i) is int and 0 <= i < len(self.loader.samples) and isinstance(state, list)
                            for i, state in c["inputs"]) and type(c["n_out"]) is int and type(c["read"]) is int):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise OutputError(f"kept measures {f} are not such measures (damaged or renamed since)") from None
        return c

    def take(self, loader, got: dict, measured: set) -> tuple[int, int, bool] | None:
        """The measures this rank's files hold from its first batch on, appended to got and measured (as run()'s
        batches append theirs); returns (inputs read, outputs per input, encoded column), or None where none is
        taken. This rank's files not taken and the temp files of killed saves are removed (by rank 0
        also those of another number of ranks): the folder then holds the measures the result is made of."""
        self.loader = loader
        try:
            names = sorted(f.name for f in os.scandir(self.folder) if f.name.startswith(self.prefix)
                           and f.name.endswith(".pt"))
        except (FileNotFoundError, NotADirectoryError):  # (none kept; a file of that name: another's, left alone)
            names = []
        except OSError as e:  # (an unreadable folder: as none, its files never taken)
            self._note(f"the measures kept in {self.folder} cannot be read ({e.strerror or e}): measuring every "
                       f"input", quiet_too=True)
            names = []
        taken, at = [], 0
        for name in names:
            try:
                c = self._read(name, got)
            except OutputError as e:
                self._note(f"{e}: its inputs and those after them are measured again", quiet_too=True)
                break
            if c["batches"][0] != at:  # (a file of later batches, those before it not kept)
                break
            self.recipe = self.recipe or self._recipe()
            if c["recipe"] != self.recipe:
                old, new = json.loads(c["recipe"]), json.loads(self.recipe)
                what = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
                self._note(f"the measures kept in {self.folder} are of another {', '.join(what) or 'recipe'} (an "
                           f"earlier call's): measuring every input again", everyone=False, quiet_too=True)
                break
            if (changed := next((i for i, state in c["inputs"] if self._state(i) != state), None)) is not None:
                self._note(f"input {loader.samples[changed].path} changed since its measures were kept in "
                           f"{self.folder}: it and the inputs after it are measured again", quiet_too=True)
                break
            taken.append(c)
            at = c["batches"][1]
        for name in names[len(taken):]:  # (this rank's next saves would not replace them all)
            with contextlib.suppress(OSError):  # (one that cannot be removed is never taken: its batches are not)
                (self.folder / name).unlink(missing_ok=True)
        self._tidy()
        for c in taken:
            for key, t in c["got"].items():
                if t is not None:
                    got[key].append(t)
            measured.update(c["measured"])
        read = taken[-1]["read"] if taken else 0
        self.saved = self.done = (at, read, {k: len(v) for k, v in got.items()})
        # (each file's outputs per input and encoded column are run()'s after its batches, as a straight call's)
        return (read, taken[-1]["n_out"], taken[-1]["has_enc"]) if taken else None

    def _tidy(self) -> None:
        """Remove the temp files of killed saves (their writers gone: is_stale), and on rank 0 the files of another
        number of ranks."""
        temps = TempFiles(self.folder)
        for name in [n for n in temps.by_name if self.owner(n)]:
            with contextlib.suppress(OSError):
                temps.remove_stale(self.folder / name)
        if self.ev.dist.main:
            with contextlib.suppress(OSError):  # (none; one left is never taken by this number of ranks)
                for f in self.folder.iterdir():
                    if not f.name.startswith(".") and (owner := self.owner(f.name)) and owner[1] != self.ev.dist.world:
                        f.unlink(missing_ok=True)

    def batches_from(self, loader, batches: int):
        """The loader's batches from this rank's batch number `batches` on (its share's first batch is the loader's
        that holds its first input: _from_input)."""
        loader.set_epoch(0, self.share.start // self.ev.batch_size + batches)
        return iter(loader)

    def batch_done(self, read_one: bool, read: int, inputs: list, got: dict) -> None:
        """A round's measures all in got (read_one: it read a batch): what the next save writes up to."""
        self.done = (self.done[0] + read_one, read, {k: len(v) for k, v in got.items()})
        self.inputs += inputs

    def due(self) -> bool:
        return time.monotonic() - self.last >= SAVE_EVERY

    def save(self, got: dict, n_out: int, has_enc: bool) -> None:
        """The batches measured since the last save into a file of their own (none: nothing is written)."""
        if self.done is None or self.done[0] == self.saved[0]:
            return
        (first, read0, was), (end, read, now) = self.saved, self.done
        self.recipe = self.recipe or self._recipe()
        share = self.share
        inputs = sorted(set(range(share.start + read0, min(share.stop, share.start + read))) | set(self.inputs))
        c = {"format": KEPT_FORMAT, "recipe": self.recipe, "batches": [first, end], "read": read,
             "measured": list(self.inputs), "inputs": [[i, self._state(i)] for i in inputs], "n_out": n_out,
             "has_enc": has_enc,
             "got": {k: torch.cat(v[was[k]:now[k]]) if now[k] > was[k] else None for k, v in got.items()}}
        with signals_held():  # (a SIGTERM inside torch's writer: raised after it)
            atomic_write(self.folder / f"{self.prefix}{first:06d}.pt", lambda f: torch.save(c, f),
                         what="evaluation's kept measures")
        self.saved, self.inputs, self.last = self.done, [], time.monotonic()

    def end(self, error: BaseException | None, got: dict, n_out: int, has_enc: bool) -> None:
        """As run() ends, by `error` (None: a result, or a stop()'s None; not outputs that are not finite, whose
        measures run() removes): the batches measured since the last save are saved, at a stop or an error for the
        call run again, at a result too for a caller keeping them past it (compare, until its files are written, goes
        on after a stop from every model measured). Where a save failed, what is kept is said in the evaluation's
        kept_lost and the error's measures_lost (for the stop's line); another error is said with what is kept, as a
        stop's line says it."""
        self.save_quietly(got, n_out, has_enc)
        lost = self.lost() if self.failed else ""
        if self.ev.dist.main and self.elsewhere:  # (rank 0's words say the others' too: what the last round told)
            lost = _lost_by_rank([lost] + [_LOST_ELSEWHERE.get(code, "") for code in self.elsewhere[1:]])
        if lost:
            self.ev.kept_lost = lost
        if error is None:
            return
        if lost:
            error.measures_lost = lost
            if isinstance(error, Exception):
                self._note(error.measures_lost)
        elif self.saved and self.saved[0]:
            # Where measures of this recipe are (taken or saved), for a caller whose run() is quiet to say it: a
            # sweep's. Not any file in the folder: another recipe's (the take removes them; an error before it leaves
            # them unread) are measured again, not gone on from.
            error.measures_kept = self.folder
            if isinstance(error, Exception):  # (a stop's line is the command's)
                # (rank 0's: under torchrun the same line of the same folder came from every rank)
                self._note(f"the measures made so far are kept in {self.folder}: the same command goes on from "
                           f"them", everyone=False)

    def failed_code(self) -> int:
        """Whether this rank's saves failed, as a number the ranks agree on (_LOST_ELSEWHERE's)."""
        return 0 if not self.failed else 1 if self.saved and self.saved[0] else 2

    def lost(self) -> str:
        """What this rank keeps where a save failed (the saves before it, or a take's files, whole): its words."""
        if self.saved and self.saved[0]:
            return (f"the measures made since the last save of them are lost ({self.failed}): the same command goes on "
                    f"from those saved before")
        return f"no measures are kept (their save failed: {self.failed}): the same command measures every input again"

    def save_quietly(self, got: dict, n_out: int, has_enc: bool) -> None:
        """save(), where a failure is a note and ends the saves (a full disk, a folder that cannot be written): the
        measures are in memory, and an evaluation of hours is not ended by a copy of them (run() ending without a
        result: the stop's or the evaluation's error is the one said). The files saved before stay whole."""
        if self.failed:
            return
        try:
            self.save(got, n_out, has_enc)
        except Exception as e:
            self.failed = str(e) or type(e).__name__
            self._note(f"the measures are no longer kept ({e})")


# Another rank's failed_code in rank 0's words (its own lost(): its reason is in that rank's lines).
_LOST_ELSEWHERE = {1: "the measures made since the last save of them are lost (its save failed): the same command "
                      "goes on from those saved before",
                   2: "no measures are kept (its save failed): the same command measures its inputs again"}


def _lost_by_rank(words: list[str]) -> str:
    """What is kept where saves failed, from each rank's words (in rank order; "" where none failed): rank 0's alone
    as they are (one process's words), else each named by its rank."""
    said = [(r, w) for r, w in enumerate(words) if w]
    if [r for r, _ in said] == [0]:
        return said[0][1]
    return "; ".join(f"rank {r}: {w}" for r, w in said)


_WEIGHTS_SHA256 = {}  # a metric network's file -> its SHA-256, by its place, size, times and inode


def _weights_sha256(path: Path) -> str:
    """The SHA-256 of a metric network's weights file, as a kept measures' recipe records it: a file replaced keeping
    its size and time (cp -p, rsync -a, a tar's extraction) is another, as the inputs' (their size and time alone took
    the measures of other weights). Read once a process while its size, times and inode are the same (0.35 s for
    AlexNet's and InceptionV3's 340 MB, for each checkpoint of a sweep); the change time, which no copy sets, tells a
    file replaced since."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _WEIGHTS_SHA256:
        _WEIGHTS_SHA256[key] = file_sha256(path)
    return _WEIGHTS_SHA256[key]


def _from_input(loader, start: int):
    """The loader's batches from input `start` on (a rank's share): the inputs before it are read and
    dropped (a few for the evaluations' num, against the n_samples outputs each input gets)."""
    for batch in loader:
        n = len(batch["A"])
        if start >= n:
            start -= n
            continue
        yield {k: v[start:] if k in ("A", "B", "paths") else v for k, v in batch.items()} if start else batch
        start = 0


def _histogram(counts) -> str:
    """Counts of valid outputs per palette, and each one's share of them ("30 10 (75 / 25 %)")."""
    total, text = sum(counts), " ".join(map(str, counts))
    if not total:
        return f"{text}  (no valid outputs)"
    return f"{text}  ({' / '.join(f'{100 * c / total:.0f}' for c in counts)} %)"


def format_table(r: dict) -> str:
    """The results as aligned "name  value" lines, for the terminal."""
    root = data_folder(r)
    split = r["phase"] if has_split(root, r["phase"]) else read_from(root, r["phase"], r.get("dataroot_given"))
    # an encoded line's '-': the model's lack or the split's, as the result records it (an older file: either)
    no_encoded = f"-  ({NO_ENCODED.get(r.get('encoded_missing'), NO_ENCODED_EITHER)})"
    rows = [("variant", r["variant"]), ("inputs x samples", f"{r['n_inputs']} x {r['n_samples']} ({split})")]
    if "coverage" in r:
        K = r["n_palettes"]
        rows += [("palette coverage",
                  f"{r['coverage']:.3f}  ({r['coverage'] * K:.2f} of {plural(K, 'palette')} per input)"),
                 ("validity", f"{r['validity']:.3f}"),
                 ("palette histogram", _histogram(r["histogram"]))]
        if "shares_histogram" in r:
            rows.append((f"  with {r['shares_n_samples']} z per input", _histogram(r["shares_histogram"])))
        if "encoded_palette_match" in r or "encoded_missing" in r:  # (palette reads B: only E can be missing)
            rows.append(("encoded keeps B's palette", f"{r['encoded_palette_match']:.3f}"
                         if "encoded_palette_match" in r else no_encoded))
    undefined = f"-  ({NO_DIVERSITY})"
    if "diversity_lpips" in r:
        lp = r["lpips"]
        stderr, said = ((f" ± {lp['stderr']:.4f}", "± the standard error of the mean; a pair's ")
                        if "stderr" in lp else ("", ""))  # (an older result has none)
        rows.append(("diversity (LPIPS between samples)", undefined if r["diversity_lpips"] is None else
                     f"{r['diversity_lpips']:.4f}{stderr}  (alex v{lp['version']}, "
                     f"{plural(lp['n_pairs'], lp['pairs'] + ' pair')}, "
                     f"{said}std {lp['std']:.4f})"))
    if "diversity_l1" in r:
        rows.append(("diversity (L1 between samples)",
                     undefined if r["diversity_l1"] is None else f"{r['diversity_l1']:.4f}"))
    if "encoded_l1" in r:
        rows.append(("encoded reconstruction L1", f"{r['encoded_l1']:.4f}"))
    elif "l1" in r.get("metrics", ()):
        rows.append(("encoded reconstruction L1", no_encoded))
    if "fid" in r:
        n = r["fid_images"]
        # Below the features' dimension the covariances are rank-deficient and FID's bias grows as the
        # count falls: such figures compare only with others from the same number of images.
        few = "; under 2048: biased upward, compare only at equal counts" if min(n.values()) < 2048 else ""
        rows.append(("FID (generated vs real B)", f"{r['fid']:.2f}  ({n['generated']} vs {n['real']} images{few})"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
