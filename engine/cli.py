"""The `bicyclegan` command: a thin layer over the Python API (bicyclegan.engine).

Train options are generated from the config dataclasses, so --help always lists every field with
its default and the comment written beside it in config.py. Errors a user can cause (the
project's own types) print one line and exit 2, or 75 where a later try of the same command may pass (a transient
one: another process's folder, the network); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import errno
import functools
import importlib
import inspect
import json
import os
import re
import shlex
import signal
import sys
import threading
import typing
import warnings
from pathlib import Path

from bicyclegan.pipelines import DIRECTIONS, LAYOUTS, PREPROCESS

from .config import MAX_SEED, DataConfig, ModelConfig, TrainConfig, refuse_unused_sizes, split_fields
from .errors import USER_ERRORS, CheckpointError, ConfigError, OutputError, RankLostError
from .presets import (
    PRESETS,
    TEST_SCRIPTS,
    default_preset,
    describe_preset,
    make_config,
    pretrained_config,
    suggest_preset,
)


@functools.cache  # (train's and import-official's parsers both add ModelConfig's and DataConfig's: each read once)
def _field_help(cls) -> dict[str, str]:
    """The `# comment` written after each field in the dataclass source."""
    src = inspect.getsource(cls)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+): [^#\n]*#(.*)$", src, re.M)}


def _add_fields(parser, cls, shown: dict | None = None):
    """One flag per dataclass field; Optional fields accept 'none'; bools get --x/--no-x.
    shown: {field: text} in place of "default: <the dataclass's default>" in its help."""
    hints = typing.get_type_hints(cls)
    helps = _field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("model", "data"):
            continue
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        help_txt = f"{helps.get(f.name, '')} ({(shown or {}).get(f.name, f'default: {default}')})"
        if tp is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None,
                                help=help_txt)
            continue
        args = typing.get_args(tp)
        base = next((a for a in args if a is not type(None)), tp) if args else tp

        def conv(text, base=base, optional=type(None) in args):
            if optional and text.lower() == "none":
                return None
            return _number(text, base) if base in (int, float) else base(text)
        parser.add_argument(f"--{f.name}", type=conv, default=None, metavar=base.__name__.upper(),
                            help=help_txt, action=_StoreField)


class _StoreField(argparse.Action):
    """Stores the value and, for a 'none' given, notes the name: None is also every flag's default, and
    _given dropped the given one with the absent ones (a preset's or a resumed run's value stayed)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        nones = set(getattr(namespace, "_nones_given", ()))
        nones.discard(self.dest)
        setattr(namespace, "_nones_given", nones | ({self.dest} if values is None else set()))


def _number(text: str, kind: type = float):
    """An option's int or float, its refusal worded alike everywhere (argparse names the option before it)."""
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expects {what}, got {text!r}") from None


def _at_least(low: int, high: int | None = None):
    def conv(text):
        v = _number(text, int)
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {v}")
        return v
    return conv


def _real_above_zero(text):
    v = _number(text)
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


# torch.Generator's seeds: a larger --seed was a ValueError traceback (Overflow when unpacking long long)
_SEED = _at_least(0, MAX_SEED)


def _epoch_or(*words: str):
    """--epoch of the inference commands: N (checkpoints/epoch_N.pt) or one of `words` (best:
    checkpoints/best.pt; all: every checkpoint, evaluate's sweep)."""
    def parse(text: str):
        if text in words:
            return text
        try:
            return _at_least(1)(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expects an epoch (an integer >= 1) or {' or '.join(words)}, "
                                             f"got {text!r}") from None
    return parse


def _index_list(text: str) -> list[int]:
    """ "0,3,5" -> [0, 3, 5]: input numbers, 0 the first. None counts from the end: -1 would need the split's
    length, which the commands find without reading past the inputs they use."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = [-1]
    if any(n < 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"expects input numbers separated by commas, 0 for the first input of the "
                                         f"split (e.g. 0,4,7; none counted from the end), got {text!r}")
    return numbers


def _given(args, *classes) -> dict:
    """The options of these config classes that were given on the command line."""
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    nones = getattr(args, "_nones_given", set())
    return {k: v for k, v in vars(args).items() if k in names and (v is not None or k in nones)}


# -- train -----------------------------------------------------------------------------------------
def build_train_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model (no --dataroot: the built-in demo data)",
                       description="Train BicycleGAN or one of the paper's variants. Without "
                       "--dataroot it trains on the built-in demo data with the 'demo' preset.")
    p.add_argument("--preset", choices=["auto", *PRESETS], default="auto",
                   help="defaults to start from (default auto: demo without --dataroot, reference with it)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="continue the run in --out from its latest checkpoint; with CKPT, from that checkpoint "
                   "(a step-0 one, as download model and import-official write, starts a new run from its "
                   "weights, as --init_from does for any checkpoint); --resume auto: continue the run if it has a "
                   "checkpoint, else start it, with --init_from's weights where given (one command for a job a "
                   "scheduler starts again: torchrun --max-restarts, a SLURM requeue)")
    p.add_argument("--epoch", type=_epoch_or("best"), default=None, metavar="N|best",
                   help="resume from the run's checkpoint of this epoch (checkpoints/epoch_N.pt, --save_epoch_freq), "
                   "or with best the checkpoint of its best evaluation (checkpoints/best.pt: --keep_best); with "
                   "--init_from RUN, start from that run's")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and exit, after the checks the run makes before its first step "
                   "(device, data and its files, run folder and its lock, the checkpoint it resumes or starts from, "
                   "the evaluations' options), and on stderr the run's data line and held-out split: nothing written")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (the lines saying what the run trains, on what, stay)")
    p.add_argument("--no-eval", action="store_true",
                   help="skip the final evaluation on demo data (the ones every --eval_every iterations, "
                   "which the demo preset makes: --eval_every 0)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="also log losses, learning rate, images/s, sample grids and the config to "
                        "<out>/tensorboard (needs the tensorboard package: pip install 'bicyclegan[tensorboard]'); "
                        "a resumed run logs on where it did without it (--no-tensorboard: not)")
    p.add_argument("--model_cls", metavar="MODULE:CLASS",
                   help="train this subclass of BicycleGAN (its own loss terms: README \"Extending it\"), MODULE "
                   "imported from the current folder or the installed packages, e.g. mymodels:MyModel; its run "
                   "resumes only with it (the class its checkpoints record is never imported from them)")
    # The defaults are the reference's; without --dataroot the demo preset's apply where it sets one.
    for title, cls, part in (("training", TrainConfig, "train"), ("data", DataConfig, "data"),
                             ("model", ModelConfig, "model")):
        demo = PRESETS["demo"][part]
        _add_fields(p.add_argument_group(f"{title} options"), cls, {
            f.name: f"default: {f.default}; demo preset: {demo[f.name]}" for f in dataclasses.fields(cls)
            if f.name in demo and demo[f.name] != f.default})
    return p


def _run_of(path) -> Path | None:
    """The run folder of a checkpoint named on the command line: a run folder itself, or the run of
    <run>/checkpoints/X.pt or of <run>/checkpoints/abandoned_after_step_<N>/X.pt (a resume going back set
    it aside, and says to go on from it with --resume FILE --out NEW: read as outside a run, it took the demo
    preset's options and was refused for differences never chosen); None for a checkpoint outside a run."""
    from .checkpoint import run_folder, run_of_checkpoint
    path = Path(os.path.abspath(path))
    return run_folder(path) if path.is_dir() else run_of_checkpoint(path)


def _resumed_run(args, out) -> Path | None:
    """The run folder whose own options a run starts from (without --preset): --out's for --resume
    without a path or --epoch; for --resume <run>/checkpoints/X.pt, that run's, whatever --out is (it
    was the demo preset's, so a run's checkpoint continued into a new --out was refused for a dozen
    differences the user never chose); for --init_from, the source run's (its networks are the ones
    the new run must have)."""
    if args.preset != "auto":
        return None
    if args.init_from is not None:
        return _run_of(args.init_from)
    if args.resume is True or args.epoch is not None:
        return Path(out)
    return _run_of(args.resume) if isinstance(args.resume, str) else None


def resolve_config(args) -> TrainConfig:
    """Preset defaults, then every option given on the command line. Resuming a run (--resume
    without a path, --epoch, or --resume with one of a run's checkpoints) without --preset starts
    from the run's own config.json instead, so `train --out RUN --resume` needs none of the options
    the run was started with."""
    given = _given(args, TrainConfig, DataConfig, ModelConfig)
    if args.init_from is not None:
        if args.resume:
            raise ConfigError("--init_from starts a new run from a checkpoint's weights, --resume continues a run "
                              "(or starts from a downloaded model's): give one")
        from .checkpoint import find_checkpoint
        # the file itself, so that config.json says which (a run folder's latest.pt moves on)
        given["init_from"] = str(find_checkpoint(args.init_from, args.epoch))
    elif args.fresh_D and (args.resume is True or args.epoch is not None):
        raise ConfigError("--fresh_D is for a run that starts from a checkpoint's weights (--init_from); a resumed "
                          "run keeps its discriminators")
    run = _resumed_run(args, given.get("out", TrainConfig.out))
    # --out stays the command's (its default too): a checkpoint continued without --out must not go back into its
    # own run, where resuming drops what was logged after it. A new run from a run's weights chooses its own
    # discriminators (the source's fresh_D told how it began).
    options = {"out": TrainConfig.out, **({"fresh_D": False} if args.init_from else {}), **given}
    if run is not None:
        from .runtime import run_config
        try:
            cfg = run_config(run, options)
        except ConfigError as e:
            # An option a resume may not change made the run's config invalid (--variant bicycle over a 32 px
            # pix2pix run: "netD2=basic_256_multi ... too deep"): that it cannot change is the news, not the check.
            if args.init_from is None and (diffs := _unresumable_given(run, given)):
                raise ConfigError(f"a resumed run continues the same training, and this command changes "
                                  f"{'; '.join(diffs)} of {run / 'config.json'}; for such a change, start a new "
                                  f"run from its weights with --init_from") from e
            raise
        if cfg is not None:
            return _check_given(given, cfg, f"as in {run / 'config.json'}")
    source = given.get("init_from") or (args.resume if isinstance(args.resume, str) else None)
    if source is None and run is not None:
        # A run folder without its config.json (lost, or checkpoints/ alone copied): its checkpoint stores the config
        # (the preset's was refused for a dozen differences the user never chose)
        from .checkpoint import find_checkpoint
        try:
            source = find_checkpoint(run, args.epoch)
        except CheckpointError:
            pass  # (the run's start says why)
    if args.preset == "auto" and source is not None:
        from .runtime import checkpoint_config
        # a checkpoint outside a run (or in a folder without config.json): the options stored in it
        if (cfg := checkpoint_config(source, options)) is not None:
            return _check_given(given, cfg, f"as stored in {source}")
    preset = default_preset(given.get("dataroot")) if args.preset == "auto" else args.preset
    return _check_given(given, make_config(preset, **given), f"the {preset} preset's")


def _unresumable_given(run: Path, given: dict) -> list[str]:
    """The options `given` that a resume may not change and that differ from the run's config.json, each as
    "--name X (the run's: Y)"; none where that file cannot be read (run_config says why)."""
    from .checkpoint import DATA_RESUMABLE_CHANGES, MODEL_RESUMABLE_CHANGES, RESUMABLE_CHANGES
    try:
        saved = json.loads((run / "config.json").read_text())
        parts = {"train": saved, "model": saved["model"], "data": saved["data"]}
    except (OSError, ValueError, TypeError, KeyError):
        return []
    allowed = {"train": RESUMABLE_CHANGES, "model": MODEL_RESUMABLE_CHANGES, "data": DATA_RESUMABLE_CHANGES}
    return [f"--{k} {v} (the run's: {parts[part].get(k)})" for part, fields in split_fields(given).items()
            for k, v in fields.items() if k not in allowed[part] and isinstance(parts[part], dict)
            and k in parts[part] and parts[part][k] != v]


def _check_given(given: dict, cfg: TrainConfig, whose: str) -> TrainConfig:
    """Refuse options given on this command line that change nothing in `cfg` (whose: where its preprocess
    came from, when not given): a --load_size its preprocess does not use, as sample refuses it (crop_size is
    used under every preprocess in training: it sizes the networks, e.g. the depth of netG unet), and the
    evaluations' options without evaluations. Only options given: a preset's or a resumed run's are not."""
    refuse_unused_sizes(cfg.data.preprocess, {"load_size": given.get("load_size")},
                        "as given" if "preprocess" in given else whose)
    _check_objective_options(given, cfg)
    return _check_evaluation_options(given, cfg)


def _unused_by_objective(cfg: TrainConfig) -> dict[str, str]:
    """The options of the objective and its networks that `cfg`'s variant has no use for: name -> why."""
    v, m = cfg.variant, cfg.model
    why = {}
    if v != "bicycle":
        for name in ("lambda_GAN2", "netD2"):
            why[name] = (f"only variant bicycle has a second discriminator D2 (on its random-z branch); {v}'s one "
                         f"is --netD, weighted by --lambda_GAN")
        why["use_same_D"] = "only variant bicycle has two discriminators to share"
    elif m.use_same_D:
        why["netD2"] = "use_same_D makes D serve both branches: no D2 is built"
    elif cfg.lambda_GAN2 == 0:
        why["netD2"] = "lambda_GAN2=0 leaves out the random-z branch's GAN term: no D2 is built"
    if v not in ("bicycle", "clr"):
        why["lambda_z"] = f"only variants bicycle and clr have the latent regression |E(G(A, z)) - z|, not {v}"
    if v not in ("bicycle", "cvae"):
        why["lambda_kl"] = (f"only variants bicycle and cvae have the KL term, not {v}"
                            + (" (cae encodes z = mu, without it)" if v == "cae" else ""))
    if v == "clr":
        why["lambda_L1"] = "variant clr has no image L1 (the paper's cLR-GAN: G's image term is the GAN's alone)"
    if v == "pix2pix":
        for name in ("netE", "nef"):
            why[name] = "variant pix2pix has no encoder"
    if m.unet_depth < 6:  # (networks.py: dropout on the levels 4 <= i < depth - 1, as the reference)
        h, w = m.size
        why["use_dropout"] = (f"G's dropout goes on its levels between the 5th and the bottom one, as in the "
                              f"reference, and this U-Net of {m.unet_depth} levels ({h}x{w}) has none (64 px: one)")
    used_d = [d for d, net in (("D", m.netD), ("D2", m.netD2)) if d in cfg.trained_networks]
    # (a run with lambda_GAN=0 built no D, and recorded --netD, --conditional_D or --gan_mode it never had)
    if "D" not in used_d and not (v == "bicycle" and m.use_same_D):
        why["netD"] = (f"lambda_GAN=0 leaves out {'the encoded branch' if v == 'bicycle' else v}'s GAN term: no D is "
                       f"built")
    if not used_d:
        gone = "lambda_GAN=0" + (" and lambda_GAN2=0" if v == "bicycle" else "")
        for name in ("ndf", "conditional_D", "gan_mode", "num_Ds"):
            why[name] = f"{gone}: no discriminator is built"
        if v == "bicycle":
            why["use_same_D"] = f"{gone}: no discriminator is built to share"
    if used_d and not any((m.netD if d == "D" else m.netD2).endswith("_multi") for d in used_d):
        nets = " and ".join(f"{'netD' if d == 'D' else 'netD2'}={m.netD if d == 'D' else m.netD2}" for d in used_d)
        why["num_Ds"] = (f"it counts the scales of a multi-scale discriminator (*_multi), and {nets} "
                         + ("has one" if len(used_d) == 1 else "have one each"))
    return why


def _check_objective_options(given: dict, cfg: TrainConfig) -> None:
    """An option of the objective given where the variant has no use for it is refused: a run of cvae with
    --lambda_z 3 trained on, config.json recording a term it never had (an ablation's sweep then compared runs
    by settings they did not have). A switch given off (--no-use_same_D) asks for nothing: taken."""
    unused = _unused_by_objective(cfg)
    if bad := [k for k in unused if k in given and given[k] is not False]:
        by_reason = {}
        for k in bad:
            by_reason.setdefault(unused[k], []).append(f"--{k}")
        raise ConfigError("; ".join(f"{', '.join(names)} change{'s' if len(names) == 1 else ''} nothing: {reason}"
                                    for reason, names in by_reason.items())
                          + "; leave " + ("it" if len(bad) == 1 else "them") + " out")


# The files of each metric's networks (evaluate's options, and train's for its evaluations)
METRIC_FILES = {"lpips": ("lpips_backbone", "lpips_linear"), "fid": ("fid_weights",)}


def _changes_nothing(options: list[str], of: str, because: str, fix: str) -> ConfigError:
    """The refusal of options given where they change nothing (the command would go on, saying nothing)."""
    one = len(options) == 1
    return ConfigError(f"{', '.join(options)} {'is an option' if one else 'are options'} of {of}, and {because}: "
                       f"{fix}, or leave {'it' if one else 'them'} out")


def _check_evaluation_options(given: dict, cfg: TrainConfig) -> TrainConfig:
    """An option of the evaluations during training given where it changes nothing is refused, as evaluate
    refuses its metric options without their metric: the run would have gone on without the evaluations
    asked for, or with other weights than the ones given, and said nothing. Only options given on this
    command line: a resumed run's config.json keeps those its first command took (e.g. resumed with
    --eval_every 0, which turns its evaluations off)."""
    evaluation = [f"--{k}" for k in ("eval_metrics", "eval_num", "eval_samples", *METRIC_FILES["lpips"],
                                     *METRIC_FILES["fid"]) if given.get(k) is not None]
    if evaluation and not cfg.eval_every:
        raise _changes_nothing(evaluation, "the evaluations during training", "eval_every=0 makes none",
                               "add --eval_every N (iterations between evaluations)")
    # (as evaluate refuses --n_samples: the evaluations of a model without z make one output per input, whatever
    # eval_samples says; its default, or a resumed run's config, refuses nothing)
    if (n := given.get("eval_samples")) is not None and n > 1 and not cfg.model.nz:
        raise ConfigError(f"--eval_samples {n}: variant {cfg.variant} has no latent code (nz=0): its evaluations "
                          f"make one output per input, no z drawn, so it changes nothing; leave it out")
    asked = cfg.eval_metrics.split(",") if cfg.eval_metrics else []
    said = cfg.eval_metrics or "none (l1; with palette on the demo data)"
    for metric, names in METRIC_FILES.items():
        if (options := [f"--{k}" for k in names if given.get(k) is not None]) and metric not in asked:
            raise _changes_nothing(options, f"the {metric} metric", f"eval_metrics={said} leaves it out",
                                   f"add it (--eval_metrics {','.join([*(asked or ['l1']), metric])})")
    return cfg


def _auto_resume(args) -> None:
    """--resume auto, decided before the options are read: --resume (from the run's newest checkpoint, its
    config.json's options) where --out holds a run that saved, else a new run, --init_from (and its --epoch)
    as given; a run that started without saving is started again where its config is this one's, else refused as
    for a new run (delete it to start again): the run decides, told "auto" (_resume_told)."""
    from .checkpoint import AUTO, LATEST, auto_resume, epoch_name, newest_beside
    if args.resume != AUTO:
        return
    out = args.out if args.out is not None else TrainConfig.out
    resume, epoch = auto_resume(out, None if args.init_from else args.epoch)
    if not resume:  # (the run, told AUTO, may start again a run of its config that never saved: _check_run_folder)
        args.resume, args.auto_start = False, True
        return
    # A run's weights started it: its checkpoint records where from, and a resumed run keeps its discriminators.
    args.resume, args.epoch, args.init_from, args.fresh_D = True, epoch, None, None
    if not _said_on_this_machine():
        print(f"--resume auto: {'would continue' if args.dry_run else 'continuing'} the run in {out} from "
              f"{epoch_name(epoch) if epoch is not None else newest_beside(Path(out) / 'checkpoints' / LATEST).name}",
              file=sys.stderr)


def _resume_told(args):
    """The run's resume: args.resume, or "auto" where --resume auto found nothing to resume (_auto_resume)."""
    from .checkpoint import AUTO
    return AUTO if getattr(args, "auto_start", False) else args.resume


def _model_class(spec: str | None) -> type:
    """The class --model_cls MODULE:CLASS names (BicycleGAN without it), MODULE imported with the current folder
    first on sys.path, as `python -m` puts it (the console script's sys.path has its own bin folder instead). What
    is not there, or not a subclass, is one line; an error the module raises as it runs, an import of its own
    failing included, is left as its traceback, as `python -c "import MODULE"` shows it: a bug in the user's code,
    whose line and chain of imports a one-line message would drop."""
    from .model import BicycleGAN
    if spec is None:
        return BicycleGAN
    module, _, name = spec.partition(":")
    if not all(part.isidentifier() for part in (*module.split("."), *name.split("."))) or module.endswith(".py"):
        raise ConfigError(f"--model_cls {spec}: expected MODULE:CLASS, a module's dotted name (not a file's path: run "
                          f"from its folder, or add that to PYTHONPATH) and a class in it, e.g. mymodels:MyModel")
    here = os.getcwd()
    if here not in (os.path.abspath(p) for p in sys.path):  # (abspath: "" and "." are the current folder)
        sys.path.insert(0, here)
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise  # (one that the module imports: its own error)
        raise ConfigError(f"--model_cls {spec}: no module {e.name} in the current folder ({here}) or the installed "
                          f"packages") from None
    where = f"module {module} ({getattr(found, '__file__', None) or 'a namespace package'})"
    try:
        cls = functools.reduce(getattr, name.split("."), found)  # (a nested class: Outer.Inner)
    except AttributeError:
        raise ConfigError(f"--model_cls {spec}: {where} has no {name}") from None
    if not isinstance(cls, type):
        raise ConfigError(f"--model_cls {spec}: {name} in {where} is a {type(cls).__name__}, not a class")
    if not issubclass(cls, BicycleGAN):
        raise ConfigError(f"--model_cls {spec}: {name} in {where} is not a subclass of BicycleGAN (from "
                          f"bicyclegan.engine import BicycleGAN)")
    return cls


def _check_resumed_class(args, cfg: TrainConfig, model_cls: type) -> None:
    """Refuse to continue a run whose checkpoint records another model class than the one this command trains
    (BicycleGAN without --model_cls): a subclass's run resumed with the command its stop printed trained on as
    a BicycleGAN, its own loss terms dropped, a note alone saying so. The class is never imported from the
    checkpoint, which is data: importing a module it names would run code from it."""
    from .checkpoint import LATEST, peek_checkpoint
    from .model import BicycleGAN
    from .trainer import class_name, model_option, resumed_file
    try:
        path = resumed_file(Path(cfg.out) / "checkpoints" / LATEST, args.resume,
                            None if args.init_from else args.epoch)
        step, trained, spec = peek_checkpoint(path, "step", "model_class", "model_spec") if path else (0, None, None)
    except (CheckpointError, ConfigError):
        return  # (the run refuses these in its words and order: which of its other checkpoints to resume from)
    trained = trained or class_name(BicycleGAN)  # (the checkpoints before model_class: a BicycleGAN's)
    if not step or trained == class_name(model_cls):  # (a step-0 one lends its weights to a new run, of any class)
        return
    # A class of a script (__main__) or of a function ('<locals>') no --model_cls can name: the same class moved
    # into a module is known by its name (a function's: its last part)
    module, _, qualname = spec.partition(":") if spec else trained.partition(".")
    local = "<locals>" in qualname
    scripts = local or module == "__main__"
    name = qualname.rpartition(".")[2] if local else qualname
    if scripts and args.model_cls is not None and name == (
            model_cls.__qualname__.rpartition(".")[2] if local else model_cls.__qualname__):
        return
    how = ("leave --model_cls out" if trained == class_name(BicycleGAN) else
           f"its class was defined in {'a function' if local else 'a script (__main__)'}, where no --model_cls "
           f"finds it: move {name} into a module and pass --model_cls MODULE:{name}, or resume it in Python "
           f"(resume=True, model_cls={name})," if scripts else
           f"pass{model_option(spec)}" if spec else f"pass --model_cls MODULE:CLASS of {trained}")
    raise ConfigError(f"{path} continues a run that trained a {trained}, and this command trains a "
                      f"{class_name(model_cls)}: {how} to continue it (a checkpoint's class is not imported from "
                      f"it: that would run code), or start a new run from its weights: --init_from {path} --out NEW")


def _note_preset(args, cfg: TrainConfig) -> None:
    """A new run on data named like one of the reference's datasets, without --preset: the preset that sets what
    its training script sets."""
    resuming_run = _resumed_run(args, cfg.out) is not None  # the run's own config, preset and all
    hint = suggest_preset(cfg.data.dataroot) if args.preset == "auto" and not resuming_run else None
    if hint and not _said_on_this_machine():  # (alike on every process of a launch: local rank 0's to say)
        print(f"note: {cfg.data.dataroot} is named like the reference's {hint} dataset; --preset {hint} sets "
              f"what its training script sets ({describe_preset(hint)}); without it the reference's defaults "
              f"apply", file=sys.stderr)


def _note_new_run_folder(args, cfg: TrainConfig) -> None:
    """A run's checkpoint continued without --out goes to the default folder (its own run's later log would be
    cut): it began a second run there unsaid, where a user meant to continue the first. Said with the command that
    continues the run from that checkpoint (none for one a resume set aside: a new --out's)."""
    own = _run_of(args.resume) if isinstance(args.resume, str) and args.out is None else None
    if own is None or Path(cfg.out).resolve() == own.resolve() or _said_on_this_machine():
        return
    from .checkpoint import LATEST, epoch_of
    from .trainer import model_option
    ckpt = Path(os.path.abspath(args.resume))
    how = ("--resume" if ckpt.is_dir() else  # (a run folder: its latest.pt)
           None if ckpt.parent.name != "checkpoints" else "--resume" if ckpt.name == LATEST else
           f"--epoch {n}" if (n := epoch_of(ckpt.name)) is not None else
           f"--resume {shlex.quote(str(ckpt))}")
    print(f"note: a new run folder, {cfg.out}, continues {args.resume} (without --out" + (
        f"; its own run, {own}, continues from it with `bicyclegan train{model_option(args.model_cls)} --out "
        f"{shlex.quote(str(own))} {how}`"
        if how else "") + ")", file=sys.stderr)


def _dry_run(args, cfg: TrainConfig, model_cls: type) -> int:
    """train --dry-run: what the run would refuse before its first step (the same checks, reading only): a dry run
    printed configs the run then refused (another architecture, unreadable images, a device not there...)."""
    from .trainer import check_start
    # Under torchrun every rank checks its own share, as it would train it (no group: nothing waits on a
    # rank), and rank 0 alone prints the run's one config: each rank printed it, two JSON documents on stdout.
    # Its notes on the data on stderr, as a run's (they were a run's alone: its count of batches an epoch, which
    # split its grids and evaluations read).
    main = _rank0()
    cfg = check_start(cfg, resume=_resume_told(args), epoch=None if args.init_from else args.epoch,
                      world=_launch_world(), say=(lambda line: print(line, file=sys.stderr)) if main else None)
    if main:
        print(json.dumps(cfg.to_dict(), indent=2))
        if args.model_cls:  # (not the config's: the class the run trains, which the config above does not say)
            from .trainer import class_name
            print(f"model class: {args.model_cls} ({class_name(model_cls)})", file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    model_cls = _model_class(args.model_cls)
    _auto_resume(args)
    cfg = resolve_config(args)
    _check_resumed_class(args, cfg, model_cls)
    _note_preset(args, cfg)
    _note_new_run_folder(args, cfg)
    if args.dry_run:
        return _dry_run(args, cfg, model_cls)
    from .evaluate import format_table
    from .trainer import Trainer, end_group, stopped_by
    trainer = Trainer(cfg, resume=_resume_told(args), epoch=None if args.init_from else args.epoch,
                      progress=not args.no_progress, tensorboard=args.tensorboard, model_cls=model_cls)
    try:
        run = trainer.train()
    except BaseException as e:
        if (stopped := stopped_by(e)) is None:  # a second Ctrl-C among them: main() says what is intact
            raise
        end_group(trainer)
        if trainer.main:  # every rank stopped at the same step; one line
            from .io import say
            say(sys.stderr, f"{stopped}\n")  # (to a terminal closed by the hang-up that stopped it: said to no one)
        return 128 + stopped.signal  # the shell's code for a death by the signal, which requeue scripts test
    end_group(trainer)  # the evaluation below is rank 0's alone: no collective
    if trainer.main:
        print(f"run folder: {run}\nsample grid: {run / 'samples' / 'latest.png'}\nreport: {run / 'report.html'}")
        if trainer.is_demo and not args.no_eval:
            print(format_table(trainer.evaluate()))  # (its line first: "measuring the demo's table ...")
    return 0


# -- inference -------------------------------------------------------------------------------------
def _add_model_source(p, what: str = "split to read", every: str | None = None) -> None:
    """The options every inference command shares: which model, which data, which device. every: what
    --epoch all does, for a command that takes it."""
    p.add_argument("checkpoint", help="a checkpoint (…/checkpoints/latest.pt, pretrained/NAME.pt) or a run folder")
    p.add_argument("--epoch", type=_epoch_or("best", "all") if every else _epoch_or("best"), default=None,
                   metavar="N|best|all" if every else "N|best",
                   help="the run's checkpoint of this epoch (checkpoints/epoch_N.pt) instead, or with best the "
                   "checkpoint of its best evaluation (checkpoints/best.pt: train --keep_best)"
                   + (f"; with all {every}" if every else ""))
    _add_data_source(p, what)


def _add_data_source(p, what: str) -> None:
    """Which data an inference command reads, and on which device (_add_model_source's, and compare's)."""
    p.add_argument("--dataroot", help="dataset folder (default: the data the model was trained on)")
    p.add_argument("--phase", default=None, help=f"{what} (default: val when there is one, as the reference's "
                   "test scripts, else test)")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default auto: a CUDA GPU when there is one, "
                   "else the CPU)")
    p.add_argument("--layout", choices=LAYOUTS, default=None,
                   help="how the data is laid out (default: detected; a folder without the split's folder "
                   "and without A/ is a plain folder of inputs, single, unless the model trained on it: aligned)")
    # --no-skip_bad too: a model trained with skip_bad could not be evaluated strictly (the default follows it)
    p.add_argument("--skip_bad", action=argparse.BooleanOptionalAction, default=None,
                   help="leave out unreadable or unusable images (logged) instead of stopping; --no-skip_bad stops "
                   "at them (default: as the model's run did)")


def _add_evaluation_options(p) -> None:
    """evaluate's protocol and metric options (evaluate's and compare's)."""
    p.add_argument("--metrics", default=None,
                   help="comma-separated: l1, palette (demo data), lpips, fid (default: l1, plus palette on demo data)")
    # (default None, as sample's: refused given above 1 where it changes nothing, a model without z)
    p.add_argument("--n_samples", type=_at_least(1), default=None,
                   help="random z per input (default 20, the paper's; a model without a latent code, nz=0, makes one "
                   "output per input and refuses more)")
    # --num_test: the reference's name, and one torchrun lets through (its parser takes --num for --numa-binding)
    p.add_argument("--num", "--num_test", dest="num", type=_at_least(1), default=100,
                   help="at most this many inputs (default 100, the paper's)")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the z draws (default 0)")
    p.add_argument("--batch_size", type=_at_least(1), default=16, help="inputs generated at once (default 16)")
    p.add_argument("--lpips_version", choices=["0.0", "0.1"], default="0.0",
                   help="LPIPS linear layers: 0.0 as the paper, 0.1 the lpips package's default (default 0.0)")
    p.add_argument("--lpips_pairs", choices=["consecutive", "all"], default="consecutive",
                   help="pairs of an input's samples: consecutive (the paper: n-1 per input) or all (default "
                   "consecutive)")
    p.add_argument("--lpips_backbone", help="AlexNet weights file (default: alexnet-owt-7be5be79.pth in "
                   "torch.hub's checkpoints folder)")
    p.add_argument("--lpips_linear", help="LPIPS linear-layer weights (default: from the installed lpips package)")
    p.add_argument("--fid_weights", help="InceptionV3 weights file (default: pt_inception-2015-12-05-6726825d.pth "
                   "in torch.hub's checkpoints folder)")


def _checkpoint(args) -> Path:
    from .checkpoint import find_checkpoint
    return find_checkpoint(args.checkpoint, args.epoch)


def _refresh_report(checkpoint) -> str:
    """The run's report.html lists what was just written (a checkpoint of a run folder): rewritten before any
    line is printed (`| true` ended the command at its first line, the report not rewritten); its line ("" where
    there is no run), to print after the results'."""
    from .report import refresh_report
    try:
        page = refresh_report(checkpoint)
    except (OSError, *USER_ERRORS) as e:  # the results are written: a report not rewritten is no failure
        print(f"note: the run's report.html was not rewritten ({e})", file=sys.stderr)
        return ""
    return f"\nreport: {page}" if page is not None else ""


def cmd_sample(args) -> int:
    """Under torchrun the processes share the inputs (each writes its share's images, rank 0 the grid, the
    gallery and the lines below): the files of one process."""
    from .runtime import init_distributed
    from .sample import sample
    checkpoint = _checkpoint(args)
    d = init_distributed(args.device)
    out = sample(checkpoint, args.dataroot, out=args.out, n_samples=args.n_samples, num=args.num, sync=args.sync,
                 seed=args.seed, spread=args.spread_z,
                 encode=False if args.no_encode else None,  # (only given: refused where there is no encoded output)
                 device=str(d.device), aspect_ratio=args.aspect_ratio, dist=d, **_data_settings(args))
    if d.main:
        report = _refresh_report(checkpoint)
        print(f"results: {out}\ngallery: {out / 'index.html'}\ngrid: {out / 'grid.png'}{report}")
    d.close()
    return 0


def _check_metric_options(args) -> None:
    """An LPIPS or FID option given without its metric among --metrics is refused: it changed nothing, and the
    table without LPIPS (or FID) was the only sign that the metric had not been asked for."""
    asked = {m.strip() for m in (args.metrics or "").split(",")}
    said = (f"--metrics {args.metrics} does" if args.metrics else
            "the default metrics (l1, plus palette on demo data) do")
    settings = {"lpips": (("lpips_version", "0.0"), ("lpips_pairs", "consecutive")), "fid": ()}  # (not None)
    for metric, files in METRIC_FILES.items():
        options = [f"--{k}" for k in files if getattr(args, k) is not None]
        options += [f"--{k}" for k, default in settings[metric] if getattr(args, k) != default]
        if options and metric not in asked:
            raise _changes_nothing(options, f"the {metric} metric", f"{said} not include it",
                                   f"add {metric} to --metrics (e.g. --metrics l1,{metric})")


def _evaluation_options(args, device: str) -> dict:
    """evaluate's and compare's options of their Evaluations, on `device` (under torchrun: this rank's GPU)."""
    return dict(phase=args.phase, n_samples=args.n_samples, num=args.num, seed=args.seed, device=device,
                batch_size=args.batch_size, metrics=args.metrics, lpips_version=args.lpips_version,
                lpips_pairs=args.lpips_pairs, lpips_backbone=args.lpips_backbone, lpips_linear=args.lpips_linear,
                fid_weights=args.fid_weights, layout=args.layout, skip_bad=args.skip_bad)


def cmd_evaluate(args) -> int:
    """Under torchrun the processes share the inputs (each measures its part with its own z, as one process
    would; rank 0 combines the measures, prints and writes): a single process otherwise."""
    from .checkpoint import peek_config
    from .evaluate import (
        Evaluation,
        drop_kept,
        format_table,
        json_safe,
        kept_measures,
        kept_note,
        refuse_checkpoint_json,
        samples_per_input,
    )
    from .io import check_writable, write_json
    from .runtime import init_distributed, made_alike, results_dir, results_name
    from .sweep import protocol, protocol_options
    if args.reuse and args.epoch != "all":
        raise ConfigError("--reuse keeps the results of checkpoints measured before with the same protocol: it "
                          "goes with --epoch all (one checkpoint: run evaluate or not)")
    # --json -: the results file where it goes by default (the run's report lists it), its JSON on stdout for a
    # script's pipe (`| jq`), the table and the lines on stderr (--json /dev/stdout is refused: a rename reaches
    # no stream)
    args.stdout_json = args.json == "-"
    if args.stdout_json:
        args.json = None
    if args.json and args.epoch != "all":  # (evaluate_checkpoints checks its own)
        if Path(args.json).is_dir():
            raise OutputError(f"--json {args.json} is a folder; give the file to write, e.g. "
                              f"{Path(args.json) / 'eval.json'}")
        refuse_checkpoint_json(args.json, "eval.json")
    _check_metric_options(args)
    checkpoint = None if args.epoch == "all" else _checkpoint(args)
    d = init_distributed(args.device)
    options = _evaluation_options(args, str(d.device))
    if args.epoch == "all":
        _sweep(args, d, options)
        d.close()
        return 0
    # Before the evaluation: the folder that will hold <phase>/eval.json (as `sample`'s results).
    # ("cannot write --json into <run>/results" where no --json was given: said as the results')
    d.main_decides(lambda: check_writable(Path(args.json).parent if args.json else
                                          results_dir(checkpoint, "eval").parent,
                                          "--json" if args.json else "the evaluation's results (--json: elsewhere)"))
    n_samples, seed = options.pop("n_samples"), options.pop("seed")
    if n_samples is not None:
        # --n_samples refused for a model without z from its stored config, before the model and the metric
        # networks (LPIPS, InceptionV3: seconds, maybe a download) are loaded; a file that cannot be read so
        # is left to the full read below, which says why in its own words
        def refuse():
            try:
                cfg = peek_config(checkpoint)
            except CheckpointError:
                return
            samples_per_input(n_samples, cfg)
        d.main_decides(refuse)
    ev = made_alike(d, lambda: Evaluation(checkpoint, args.dataroot, dist=d, **options))
    # the number taken (1 for a model without z), as the protocol records it; more refused for such a model
    n_samples = samples_per_input(n_samples, ev.model.cfg)
    # (as sample's results: the split's, or a plain folder's or another dataset's own name)
    name = results_name(Path(ev.root).resolve(), ev.phase, ev.model.cfg.data.dataroot)
    path = Path(args.json) if args.json else results_dir(checkpoint, name) / "eval.json"
    # (5,000 inputs take minutes: said as they go, and kept beside the results file for a stopped call run again)
    kept = kept_measures(path)
    r = ev.run(n_samples, seed, progress=True, keep=kept)
    r["checkpoint"] = str(checkpoint.resolve())  # which model, should the file be copied away
    # how it was measured: `evaluate RUN --epoch all --reuse` takes this result where its protocol is the same
    # (the file's digest: of the weights measured, should the file change)
    r["protocol"] = protocol(ev.model.source["digest"], r["dataroot"], r["phase"], n_samples=n_samples, seed=seed,
                             **protocol_options(ev.model.cfg, r["dataroot"], r["phase"], options))

    def write():  # the file first: `evaluate ... | true` (a reader gone at once) ended the command before it
        write_json(path, json_safe(r), what="evaluation results")
        report = _refresh_report(checkpoint)
        _say_results(args, f"{format_table(r)}\nresults: {path}{report}", path)
    try:
        d.main_decides(write)
    except Exception:  # (a full disk, a folder gone): the measures, all kept as run() ended, are not lost
        if d.main:
            _progress(f"note: {ev.kept_lost or kept_note(kept)}")
        raise
    drop_kept(kept, d)
    d.close()
    return 0


def _progress(line: str) -> None:
    """A line of how the work goes, on stderr as sample's and evaluate's counts: on stdout, `compare ... | head -1`
    ended the command at its second line, before any result was written. stdout keeps the results."""
    print(line, file=sys.stderr, flush=True)


def _say_results(args, lines: str, path: Path) -> None:
    """evaluate's table and lines on stdout, or with --json - on stderr and the results file's JSON on stdout."""
    print(lines, file=sys.stderr if args.stdout_json else sys.stdout)
    if args.stdout_json:
        print(path.read_text(encoding="utf-8"), end="", flush=True)


def _sweep(args, d, options) -> None:
    """evaluate --epoch all (engine/sweep.py): a line per checkpoint as it is measured, then the table."""
    from .errors import DivergenceError
    from .sweep import evaluate_checkpoints, format_sweep
    rows, page = evaluate_checkpoints(args.checkpoint, args.dataroot, json_path=args.json, reuse=args.reuse,
                                      log=_progress, dist=d, **options)
    if d.main:
        report = _refresh_report(args.checkpoint)
        path = Path(args.json or page.parent / "sweep.json")
        _say_results(args, f"{format_sweep(rows)}\nresults: {path}\npage: {page}{report}", path)
    if all("error" in r for r in rows):  # a script's `&&` must not take a table of refusals for measures
        # (one checkpoint: "the checkpoint could be measured" said the opposite of what happened)
        raise d.alike(DivergenceError((f"none of the {len(rows)} checkpoints could be measured" if len(rows) != 1 else
                                       "the checkpoint could not be measured") + " (the table says why)"))


def cmd_compare(args) -> int:
    """Under torchrun the processes share each model's inputs, as evaluate's."""
    from .compare import compare, format_compare
    from .errors import DivergenceError
    from .runtime import init_distributed
    _check_metric_options(args)
    d = init_distributed(args.device)
    rows, out = compare(args.models, args.dataroot, names=args.names, out=args.out, show=args.show,
                        show_samples=args.show_samples, log=_progress, dist=d,
                        **_evaluation_options(args, str(d.device)))
    measured = [r for r in rows if "error" not in r]
    if d.main:
        print(format_compare(rows))
        print(f"results: {out / 'compare.json'}" + (f"\npicture: {out / 'compare.png'}" if measured else "")
              + f"\npage: {out / 'index.html'}")
    if not measured:  # as evaluate --epoch all: a script's `&&` must not take a table of refusals for measures
        raise d.alike(DivergenceError(f"none of the {len(rows)} models could be measured (the table says why)"))
    d.close()
    return 0


def cmd_interpolate(args) -> int:
    """Under torchrun the processes share the inputs, as sample's."""
    from .interpolate import GIF_MAX_FPS, interpolate
    from .runtime import init_distributed
    checkpoint = _checkpoint(args)
    d = init_distributed(args.device)
    out = interpolate(checkpoint, args.dataroot, out=args.out, num=args.num, segments=args.segments,
                      frames=args.frames, mode=args.mode, path=args.path, refs=args.refs, seed=args.seed, fps=args.fps,
                      mp4=args.mp4, device=str(d.device), dist=d, **_data_settings(args))
    if d.main:
        report = _refresh_report(checkpoint)
        print(f"results: {out}\ngallery: {out / 'index.html'}{report}")
        if args.fps > GIF_MAX_FPS:  # (the GIF's cap, said: path.json's fps is the MP4's)
            mp4 = f"; the MP4s at {args.fps:g}" if any((out / "images").glob("*.mp4")) else ""
            print(f"note: the GIFs play at {GIF_MAX_FPS:g} fps, as browsers play faster ones at 10 fps"
                  f"{mp4} (path.json: fps, gif_fps)")
    d.close()
    return 0


def cmd_download(args) -> int:
    from .download import download_dataset, download_model
    if args.kind == "model":
        path = download_model(args.name, args.dir, mirror=args.mirror, progress=not args.quiet)
        print(f"checkpoint: {path}\nsample with: bicyclegan sample {shlex.quote(str(path))} --dataroot "
              f"{shlex.quote(f'datasets/{args.name}')}")
    else:
        path = download_dataset(args.name, args.dir, testset=args.testset, mirror=args.mirror,
                                progress=not args.quiet)
        print(f"dataset: {path}")
    return 0


def build_download_parser(sub) -> None:
    from .download import DATASETS, MODELS, TESTSETS
    p = sub.add_parser("download", help="the reference's datasets and the authors' pretrained models",
                       description="Download from the addresses the reference's scripts use: resumable, "
                       "checked (archive integrity, the splits' images, weights' shapes; size and digest where "
                       "this version records them: none yet, they are printed) and moved into place whole. "
                       "A mirror (--mirror URL or BICYCLEGAN_MIRROR) replaces the scheme and host of every address.")
    kinds = p.add_subparsers(dest="kind", required=True)
    what = "a dataset into DIR/NAME (default datasets/NAME)"
    d = kinds.add_parser("dataset", help=what, description=f"Download {what}.")
    d.add_argument("name", choices=sorted(DATASETS), metavar="NAME", help=f"one of {', '.join(sorted(DATASETS))}")
    d.add_argument("--testset", action="store_true",
                   help=f"only the test images the authors' models are shown with ({', '.join(sorted(TESTSETS))})")
    what = "an authors' model as a ready checkpoint DIR/NAME.pt (default pretrained/)"
    m = kinds.add_parser("model", help=what, description=f"Download {what}: its G and E weights, imported as "
                         "import-official --preset NAME imports them.")
    m.add_argument("name", choices=sorted(MODELS), metavar="NAME", help=f"one of {', '.join(sorted(MODELS))}")
    for q, where, what in ((d, "datasets", "NAME/"), (m, "pretrained", "NAME.pt")):
        q.add_argument("--dir", default=where, help=f"folder to put {what} in (default {where})")
        q.add_argument("--mirror", help="http(s)://host[:port][/prefix] to fetch from instead (default: "
                       "$BICYCLEGAN_MIRROR, else the original host)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
        q.set_defaults(func=cmd_download)


def _check_import_out(out: str) -> None:
    """The import replaces --out where it is an earlier import's checkpoint alone: a checkpoint train wrote (an
    import's has its "imported" list, or, before it had one, neither a step nor "steps_per_epoch") holds a run's
    trained weights (`--out runs/x/checkpoints/latest.pt`), and any other file is what the user keeps there (the
    weights file read, `--G g.pth --out g.pth`; a run's config.json)."""
    from .checkpoint import OlderFormatError, is_checkpoint, old_import, peek_checkpoint
    instead = f"give another file to write, e.g. {Path(out).with_name('imported.pt')}"
    keys = ("imported", "step", "steps_per_epoch")
    try:
        found = dict(zip(keys, peek_checkpoint(out, *keys))) if is_checkpoint(out) else None
    except OlderFormatError:  # an import or a training, which its contents do not say without being read
        raise OutputError(f"--out {out} is a checkpoint of an older bicyclegan format, which the import would "
                          f"replace; {instead} (or remove it first, if it is an earlier import of these files)"
                          ) from None
    if found is None and Path(out).is_file():
        raise OutputError(f"--out {out} is a file but no bicyclegan checkpoint (a weights file, results, a run's "
                          f"config.json), which the import would replace; {instead}")
    if found is not None and found["imported"] is None and not old_import(found):
        raise OutputError(f"--out {out} is a checkpoint that train wrote (step {found['step']}), which the import "
                          f"would replace; {instead}")


def cmd_import_official(args) -> int:
    from .checkpoint import save_checkpoint
    from .official import import_official
    _check_import_out(args.out)
    from .io import absolute
    data = _given(args, DataConfig)
    if data.get("dataroot") is not None:  # absolute, as train stores it: the file is read from other folders
        data["dataroot"] = absolute(data["dataroot"])  # (its links kept, as train's)
    if args.preset:  # the authors' model: its options and its test script's data settings
        base = pretrained_config(args.preset)
        model_cfg = dataclasses.replace(base.model, **_given(args, ModelConfig))
        data_cfg = dataclasses.replace(base.data, **data)
    else:
        model_cfg = ModelConfig(**_given(args, ModelConfig))
        data_cfg = DataConfig(**{"load_size": max(model_cfg.size), "no_flip": True, **data})
    # train's rule: a --load_size its preprocess does not use was stored in the checkpoint, where it means nothing
    refuse_unused_sizes(data_cfg.preprocess, {"load_size": data.get("load_size")}, "as given" if "preprocess" in data
                        else f"the {args.preset} preset's" if args.preset else "the default")
    model = import_official(model_cfg, G=args.G, E=args.E, D=args.D, D2=args.D2, variant=args.variant,
                            data=data_cfg)
    save_checkpoint(model, args.out, own={"imported": model.imported})
    fresh = [n for n in model.networks() if n not in model.imported]
    print(f"wrote {args.out}: {', '.join(model.imported)} from the files"
          + (f", {', '.join(fresh)} freshly initialised (for fine-tuning)" if fresh else "")
          + f"; sample with: bicyclegan sample {shlex.quote(str(args.out))}"
          + ("" if data_cfg.dataroot else " --dataroot DATA"))  # (a --dataroot given is stored: sample reads it)
    if "E" in fresh:
        print("note: no --E: the checkpoint has no trained encoder, so sample, evaluate and serve leave out "
              "the encoded output (as the reference's --no_encode)", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .export import export_generator
    given = {c for c in (args.checkpoint, args.checkpoint_option) if c is not None}
    if len(given) != 1:
        raise ConfigError("give one checkpoint, e.g. bicyclegan export runs/x/checkpoints/latest.pt --out "
                          "g.onnx" + (f" (got {' and '.join(sorted(given))})" if given else ""))
    with warnings.catch_warnings():  # (its line below says so: the warning printed a temporary file and source line)
        warnings.filterwarnings("ignore", message="onnxruntime is not installed", category=RuntimeWarning)
        r = export_generator(given.pop(), args.out, fmt=args.format, batch=args.batch, height=args.height,
                             width=args.width, opset=args.opset, verify=not args.no_verify)
    check = ("not verified (--no-verify)" if r["verified_with"] is None else
             f"checked with {r['verified_with']}" if r["max_abs_diff"] is None else
             f"max abs difference from PyTorch {r['max_abs_diff']:.2g} ({r['verified_with']})")
    print(f"wrote {r['path']} ({r['format']}, batch {r['batch']}) and {r['sidecar']} (how to feed it); {check}")
    return 0


def cmd_serve(args) -> int:
    from .serve import serve
    serve(_checkpoint(args), args.dataroot, host=args.host, port=args.port, num=args.num, device=args.device,
          max_upload_bytes=args.max_upload_mb * 2**20, max_upload_pixels=args.max_upload_pixels,
          allow_hosts=args.allow_host or (), **_data_settings(args))
    return 0


def cmd_make_demo(args) -> int:
    from bicyclegan.pipelines import DatasetError, make_demo_dataset

    from .io import check_writable
    if args.n_train == args.n_test == 0:  # ("demo data written to OUT", and no OUT)
        raise ConfigError("--n_train 0 and --n_test 0: nothing to write; give a number of pairs to either")
    check_writable(args.out, "the demo data")
    try:
        root = make_demo_dataset(args.out, size=(args.size, args.width or args.size), seed=args.seed,
                                 n_train=args.n_train, n_test=args.n_test, shade=args.shade)
    except DatasetError:  # a folder of other data: said as what it is
        raise
    except ValueError as e:  # the generator's own argument checks
        raise ConfigError(str(e)) from e
    print(f"demo data written to {root}")
    return 0


# the commands that share their work among torchrun's processes
DISTRIBUTED = ("train", "evaluate", "compare", "sample", "interpolate")
# why a command other than those refuses torchrun, where the reason is not the writes of its files
ONE_PROCESS = {"serve": "each process would serve its own page at the same address"}


def _launch_world() -> int:
    """WORLD_SIZE (1 where it cannot be: _run_command refuses that first, and the refusal's handler asks here)."""
    if not os.environ.get("WORLD_SIZE"):  # (launch_env's 1, without runtime's import of torch: an argparse refusal)
        return 1
    from .runtime import launch_env
    try:
        return launch_env()[1]
    except ConfigError:
        return 1


def _under_torchrun() -> bool:
    return _launch_world() > 1  # (checked by _run_command first: a value that cannot be is its one line)


def _rank0() -> bool:
    """Whether this process says what the launch did: the only one, or torchrun's rank 0 (not each rank)."""
    return not _under_torchrun() or os.environ.get("RANK") == "0"


def _said_on_this_machine() -> bool:
    """Under torchrun, before the processes are a group: whether another process of this machine prints
    this refusal. Every process of a launch parses the same command line and, on one machine, reads the
    same files, so each refuses alike, and a line per process buried the one: local rank 0 says it for
    its machine. (In a group, the ranks' agreement decides who prints: main_decides, raise_any.)"""
    tdist = sys.modules.get("torch.distributed")
    grouped = tdist is not None and tdist.is_available() and tdist.is_initialized()
    return _under_torchrun() and os.environ.get("LOCAL_RANK", "0") != "0" and not grouped


# The reference's options (its options/*.py, the older spellings too) that this command line spells
# otherwise or does without, and what to give instead: a script ported from the reference gets a line per
# option, not argparse's bare "unrecognized arguments". The reference's *_freq options count images
# (total_iters += batch_size), --log_every and the rest count iterations.
_BY_IMAGES = "in iterations; the reference's counts images: divide it by --batch_size"
_NO_DISPLAY = ("not needed: there is no visdom or HTML display while training; <out>/report.html and the grids in "
               "<out>/samples/ (--sample_every) show the run, --tensorboard logs it too")
_OUT = ("here the run folder: train --out DIR (the reference's <checkpoints_dir>/<name>); sample, evaluate and "
        "the rest take DIR, or a checkpoint, as their first argument")
_LR = ("not offered: the learning rate follows the reference's default policy (lambda), constant for --niter "
       "epochs, then linear to 0 over --niter_decay")
_NEEDLESS = "not needed: the resolved config is <out>/config.json (train --dry-run prints it)"
REFERENCE_OPTIONS = {
    "--print_freq": f"here --log_every ({_BY_IMAGES})",
    "--display_freq": f"here --sample_every ({_BY_IMAGES}): a grid in <out>/samples/ and <out>/report.html",
    "--update_html_freq": f"here --sample_every ({_BY_IMAGES}), at which <out>/report.html is rewritten",
    "--save_latest_freq": f"here --save_every ({_BY_IMAGES})",
    "--continue_train": "here --resume (the run in --out goes on from checkpoints/latest.pt)",
    "--epoch_count": "not needed: --resume goes on at its checkpoint's epoch",
    "--which_epoch": "here --epoch (latest, the reference's default: no --epoch)",
    "--name": _OUT, "--checkpoints_dir": _OUT,
    "--results_dir": "here --out",
    "--how_many": "here --num",
    "--gpu_ids": "here --device cuda:N (-1: --device cpu); several GPUs: torchrun --nproc_per_node N -m "
                 "bicyclegan.engine.cli COMMAND ...",
    "--num_threads": "here --num_workers", "--nThreads": "here --num_workers",
    "--model": "here --variant (bicycle_gan: --variant bicycle); --variant pix2pix is pix2pix+noise, with z",
    "--dataset_mode": "not needed: the layout (A|B files, or A/ and B/ folders) is detected",
    "--phase": "not needed: train reads <dataroot>/train (sample and evaluate take --phase)",
    "--center_crop": "not needed: sample and evaluate crop the centre, train at random",
    "--eval": "not needed: sample, evaluate and interpolate run the networks in eval mode",
    "--serial_batches": "not offered: the training order is shuffled, by --seed",
    "--lr_policy": _LR, "--lr_decay_iters": _LR,
    "--suffix": _NEEDLESS, "--verbose": _NEEDLESS,
    "--no_html": _NO_DISPLAY, "--display_id": _NO_DISPLAY, "--display_port": _NO_DISPLAY,
    "--display_server": _NO_DISPLAY, "--display_env": _NO_DISPLAY, "--display_ncols": _NO_DISPLAY,
    "--display_winsize": _NO_DISPLAY,
    "--batchSize": "here --batch_size", "--loadSize": "here --load_size", "--fineSize": "here --crop_size",
    "--which_direction": "here --direction", "--resize_or_crop": "here --preprocess",
    "--which_model_netG": "here --netG", "--which_model_netE": "here --netE", "--which_model_netD": "here --netD",
    "--which_model_netD2": "here --netD2"}
# Where a command of ours reads a reference option otherwise than train (video.py's for interpolate; test.py's
# for the commands after training): (command, option) -> what to give there, before REFERENCE_OPTIONS' line.
_INFERENCE = ("sample", "evaluate", "interpolate", "compare", "serve", "export")
COMMAND_REFERENCE_OPTIONS = {
    ("interpolate", "--n_samples"): "here --segments (video.py's --n_samples: the path's segments, through one more "
                                    "code)",
    ("interpolate", "--num_frames"): "here --frames (frames per segment)",
    ("interpolate", "--align_mode"): "not offered: each input has its own PNG strip, GIF and MP4 (video.py lays "
                                     "every input in one video)",
    ("interpolate", "--border"): "not offered: the strips keep 2 px of white between frames",
    ("evaluate", "--results_dir"): "here --json FILE (eval.json's path; by default in <run>/results/)",
    **{(c, "--model"): "not needed: the checkpoint says its variant" for c in _INFERENCE},
    **{(c, "--serial_batches"): "not needed: the inputs are read in path order" for c in _INFERENCE},
    **{(c, "--dataset_mode"): "here --layout (detected by default: aligned A|B files, ab_folders A/ and B/, "
                              "single: inputs alone)" for c in ("sample", "evaluate", "interpolate", "compare")},
}


# The reference's options that are the start of one of ours of another meaning: train --model (the reference's
# --variant) was read as --model_cls; train --eval (its networks' eval mode) as --eval_every or the like.
_NOT_ABBREVIATIONS = {"--model", "--eval"}


def _and(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def _unrecognized(extras: list[str], command: str | None, commands: dict) -> str:
    """argparse's refusal of `extras` by `command`, with a line for each option that is the reference's
    (REFERENCE_OPTIONS) or another command's (a network setting given to sample, which reads the model's
    from its checkpoint)."""
    said = [f"unrecognized arguments: {' '.join(extras)}"]
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    def who(option):
        return _and([c for c, p in commands.items() if c != command and option in p._option_string_actions])
    ours = commands[command]._option_string_actions if command in commands else {}
    for name in dict.fromkeys(t.split("=", 1)[0] for t in extras if t.startswith("--")):
        hint = COMMAND_REFERENCE_OPTIONS.get((command, name), REFERENCE_OPTIONS.get(name))
        if name in ours:  # (the command's own: refused only after `--`, which makes every word an argument)
            said.append(f"  {name}: an option of {command}, read as an argument after `--`: give the options "
                        "before `--`")
        elif hint is not None:
            # "here --num_workers" to sample, which has none (the checkpoint's data settings have it): said so
            if (here := re.match(r"here (--\w+)", hint)) and ours and here[1] not in ours:
                hint += f" ({here[1]} is an option of {who(here[1])}; {command} has none)"
            said.append(f"  {name} (the reference's): {hint}")
        elif takers := who(name):
            why = ("; the model's settings come from its checkpoint" if command != "train" and
                   name[2:] in model_fields else "")
            said.append(f"  {name}: an option of {takers}, not of {command}{why}")
    return "\n".join(said)


def _subcommands(parser):
    """The action holding the commands below a parser (the top one's; download's: dataset, model), else None."""
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _every_command(commands: dict, above: str = "") -> dict:
    """Each command's parser by its name as typed, download's two as "download dataset" and "download model"."""
    every = {}
    for name, parser in commands.items():
        below = _subcommands(parser)
        every.update(_every_command(below.choices, f"{above}{name} ") if below else {f"{above}{name}": parser})
    return every


def _chosen(parser, parsed) -> tuple[str, argparse.ArgumentParser]:
    """The command on the command line and its parser, a download's kind included: download's own parser refused a
    download model's options with its usage, and an empty --mirror with download dataset's."""
    names = []
    while below := _subcommands(parser):
        names.append(getattr(parsed, below.dest))
        parser = below.choices[names[-1]]
    return " ".join(names), parser


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What starts with '-' and a digit (or '-.' and one) is a value: no option of ours is spelt so. argparse's
        # own test takes numbers alone for values (-5, -.5), so `--refs -1,2` and `--lr -1e-3` were "expected
        # one argument", not the option's own refusal of the value. Subparsers are of this class (parser_class).
        self._negative_number_matcher = re.compile(r"^-\.?\d")
        self.commands = {}  # the top parser's commands (build_parser), by name as typed: _every_command

    def parse_args(self, args=None, namespace=None):
        # As argparse's, but the refusal of unknown options is the command's (its usage, not the top
        # parser's) and says what the reference's options are here.
        words = sys.argv[1:] if args is None else list(args)
        name = words[0].split("=", 1)[0] if self.commands and words else ""
        if name.startswith("--") and name != "--" and not any(o.startswith(name) for o in ("--help", "--version")):
            # An option before the command's name (`bicyclegan --nz 8 train`) was argparse's "invalid choice:
            # '8'" or "train: unrecognized arguments": options are the command's and come after it.
            takers = [c for c, p in self.commands.items() if name in p._option_string_actions]
            # (the command typed after it, where it takes the option: `--out res sample` was shown as train's; an
            # option's value is no command: `--out export sample` is sample's)
            valued = {o for p in self.commands.values() for o, a in p._option_string_actions.items() if a.nargs != 0}
            given = [w for i, w in enumerate(words) if not (i and words[i - 1] in valued)]
            typed = next((t for i in range(len(given)) for t in takers if given[i:i + len(t.split())] == t.split()),
                         takers[0] if takers else None)
            self.error(f"{name} comes before the command: options go after it, as in `bicyclegan {typed} "
                       f"{name} ...` ({name} is an option of {_and(takers)})" if takers else
                       f"unrecognized option {name}: no command has it (`bicyclegan COMMAND --help` lists a "
                       "command's options, after its name)")
        parsed, extras = self.parse_known_args(args, namespace)
        command, parser = _chosen(self, parsed)
        if extras:
            parser.error(_unrecognized(extras, command, self.commands))
        # An empty value (--out '', a variable that was not set) named the current folder to some options (train
        # --out '' wrote its run among the files there) and nothing to others (--phase '' was the default split).
        for action in parser._actions:
            values = getattr(parsed, action.dest, None)
            if any(isinstance(v, str) and not v.strip() for v in (values if isinstance(values, list) else [values])):
                name = "/".join(action.option_strings) or action.dest
                parser.error(f"argument {name}: an empty value names nothing; give one"
                             + (", or leave the option out" if action.option_strings else ""))
        return parsed

    def _get_option_tuples(self, option_string):
        # The options an abbreviation may stand for: none for the reference's options that abbreviate one of ours of
        # another meaning, answered as the reference's instead (_unrecognized). Others still abbreviate (compare
        # --name, the reference's run name, is --names).
        if option_string.split("=", 1)[0] in _NOT_ABBREVIATIONS:
            return []
        return super()._get_option_tuples(option_string)

    def error(self, message):
        if _said_on_this_machine():
            sys.exit(2)
        super().error(message)


def _add_data_settings(p) -> None:
    """sample's, interpolate's and serve's options over the model's stored data settings."""
    g = p.add_argument_group("data settings (default: the ones stored in the checkpoint)")
    g.add_argument("--direction", choices=DIRECTIONS, default=None,
                   help="AtoB: the left half (or A/) is the input; BtoA: the right half (or B/)")
    g.add_argument("--load_size", type=_at_least(1), default=None, help="resize to this before cropping")
    g.add_argument("--crop_size", type=_at_least(1), default=None, help="centre crop of this size (the network input)")
    g.add_argument("--preprocess", choices=PREPROCESS, default=None,
                   help="none: full resolution (sides must be multiples of 2^U-Net depth); resize_and_crop takes "
                   "images of any size")


def _data_settings(args) -> dict:
    """sample's, interpolate's and serve's options of the split they read and how (_add_data_source's but --dataroot
    and --device, and _add_data_settings')."""
    return dict(phase=args.phase, layout=args.layout, skip_bad=args.skip_bad, direction=args.direction,
                load_size=args.load_size, crop_size=args.crop_size, preprocess=args.preprocess)


# Where an inference command's results of data other than the model's own go (runtime.results_name): the run's own
# evaluation of its test split was replaced by that of another dataset's test split.
_OTHER_DATA = ("a folder other than the data the model records (a run's: its training data): its name before <phase> "
               "and 8 hex digits of its path after (facades_test_1a2b3c4d; a plain folder: photos_1a2b3c4d)")


def build_parser() -> argparse.ArgumentParser:
    from bicyclegan.pipelines.demo import DEFAULT_SHADE

    from .config import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS
    parser = _Parser(prog="bicyclegan", description="BicycleGAN: multimodal image-to-image translation")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"bicyclegan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    build_train_parser(sub).set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="outputs for a folder of inputs: images, a grid and an HTML gallery",
                       description="The reference's test.py: for each input, the ground truth, the encoded "
                       "output and n_samples random-z outputs, as PNGs, grid.png and index.html.")
    _add_model_source(p)
    p.add_argument("--out", help="results folder (default: <run>/results/<phase>, or results/<NAME>/<phase> for "
                   "a checkpoint NAME.pt outside a run; a plain folder of inputs: its name in place of <phase>; "
                   f"{_OTHER_DATA}; _sync appended for --sync, then _epoch_N for --epoch N, _best for --epoch best)")
    # (default None, as --seed's: sample refuses them given where they change nothing, and only given)
    p.add_argument("--n_samples", type=_at_least(0), default=None,
                   help="random-z outputs per input (default 5; refused for a model without a latent code, nz=0)")
    p.add_argument("--num", "--num_test", dest="num", type=_at_least(1), default=50,
                   help="at most this many inputs (default 50)")
    p.add_argument("--sync", action="store_true", help="use the same z list for every input (not with --n_samples 0)")
    p.add_argument("--no_encode", action="store_true", help="no encoded column G(A, E(B)) (refused where there is "
                   "none: a model without an encoder, inputs without B)")
    p.add_argument("--spread_z", action="store_true",
                   help="draw one input's z spread over the prior together (stratified: more modes in a picture) "
                   "instead of independently as the reference; not for diversity measured on consecutive files")
    p.add_argument("--aspect_ratio", type=_real_above_zero, default=1.0,
                   help="stretch the saved images and grid.png to this width:height ratio of the original's "
                   "(default 1; from 1/16 to 16)")
    _add_data_settings(p)
    p.add_argument("--seed", type=_SEED, default=None, help="seed of the z draws (default 0)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="diversity (LPIPS as the paper, L1), FID; mode coverage on demo data",
                       description="Measure a model with the paper's protocol: the first --num inputs of the "
                       "split, --n_samples random z each; diversity = mean distance between consecutive samples "
                       "of one input. Defaults are the paper's (100 x 20); LPIPS (alex v0.0, as the paper) and FID "
                       "with --metrics.")
    _add_model_source(p, "split to evaluate", every="each of the run's checkpoints (its epoch_N.pt files, then "
                      "latest.pt where it is further on), with the same z: a table, each one's eval.json, and "
                      "<run>/results/<phase>_sweep/ (sweep.json, index.html: a chart per measure)")
    _add_evaluation_options(p)
    p.add_argument("--json", help="where to write the results (default: <run>/results/<phase>/eval.json for "
                   "<run>/checkpoints/latest.pt, <phase>_epoch_N for epoch_N.pt (_best for best.pt), "
                   "results/<NAME>/<phase>/eval.json for a checkpoint NAME.pt outside a run; a plain folder of "
                   f"inputs: its name in place of <phase>; {_OTHER_DATA}; --epoch all: the sweep's sweep.json); - : "
                   "there, and its JSON on stdout, the table on stderr")
    p.add_argument("--reuse", action="store_true",
                   help="with --epoch all: keep the results of checkpoints measured before with the same protocol "
                   "(the same file, split, z, metrics and options: their eval.json says), measure the others")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="several models side by side on one protocol: a table, Fig. 6's chart "
                       "(diversity against realism), their outputs for the same inputs and z, a page",
                       description="Evaluate each model as evaluate does (its options and defaults) on the same "
                       "inputs with the same z draw, the metric networks loaded once; write compare.json, "
                       "compare.png and index.html. The models must read the same data, at one image size.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="two or more checkpoints (…/checkpoints/latest.pt, pretrained/NAME.pt) or run folders")
    p.add_argument("--names", help="comma-separated, one per model, all different (default: each run folder's name, "
                   "<run>/<stem> for a run's other checkpoints, else the checkpoint file's stem; one that repeats "
                   "gets -2, -3)")
    p.add_argument("--out", help="folder to write into (default: results/compare in the current folder)")
    p.add_argument("--show", type=_at_least(1), default=4, help="inputs in the picture (default 4)")
    p.add_argument("--show_samples", type=_at_least(1), default=6,
                   help="outputs per model and input in the picture, the first measured ones (default 6; at most "
                   "--n_samples)")
    _add_data_source(p, "split to evaluate")
    _add_evaluation_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("interpolate", help="walks through z per input: PNG strip, GIF, MP4 and an HTML gallery",
                       description="As the reference's video.py: for each input, G(A, z) along a path through "
                       "segments + 1 codes (random, or mu of E(B) of reference images), frames per segment, "
                       "slerp or linear.")
    _add_model_source(p)
    p.add_argument("--out", help="results folder (default: <run>/results/interpolate_<phase>, or "
                   "results/<NAME>/interpolate_<phase> for a checkpoint NAME.pt outside a run; a plain folder of "
                   f"inputs: its name in place of <phase>; {_OTHER_DATA}; _epoch_N appended for --epoch N, _best for "
                   "--epoch best)")
    # --num_test: as sample's, a spelling torchrun lets through (its parser takes --num for --numa-binding)
    p.add_argument("--num", "--num_test", dest="num", type=_at_least(1), default=5,
                   help="the first NUM inputs (default 5)")
    p.add_argument("--path", choices=["random", "encoded"], default="random",
                   help="codes to visit (default random): random draws (shared by all inputs) or E(B) of "
                   "reference images")
    p.add_argument("--refs", type=_index_list, help="encoded path: comma-separated input numbers whose B images "
                   "give the codes (default: the first segments + 1)")
    p.add_argument("--segments", type=_at_least(1), help="segments of the path, its codes - 1 (default 5): random "
                   "draws, or without --refs the first segments + 1 inputs of --path encoded")
    p.add_argument("--frames", type=_at_least(1), default=4,
                   help="frames per segment (default 4; segments x frames + 1: at most 1,000)")
    p.add_argument("--mode", choices=["slerp", "linear"], default="slerp",
                   help="interpolation (default slerp, as video.py)")
    p.add_argument("--seed", type=_SEED, help="seed of --path random's codes (default 50, as video.py)")
    p.add_argument("--fps", type=_number, default=8.0,
                   help="frames per second of the GIF and MP4 (default 8; 0.01 to 100, and browsers play a GIF at "
                   "most at 50)")
    p.add_argument("--mp4", action=argparse.BooleanOptionalAction, default=None,
                   help="write MP4 videos (default: when imageio-ffmpeg is installed)")
    _add_data_settings(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("import-official", help="turn the reference's *_net_G/E/D/D2.pth files into a checkpoint",
                       description="Turn weights saved by the reference's code ({epoch}_net_G.pth, and _E, _D, "
                       "_D2 where saved) into one checkpoint that sample, evaluate, interpolate, serve, export and "
                       "train --init_from take. Every tensor's shape is checked against the networks the model "
                       "options build: give them as the weights were trained (--preset for the authors' models).")
    for net in ("G", "E", "D", "D2"):
        p.add_argument(f"--{net}", required=net == "G", help=f"the reference's {{epoch}}_net_{net}.pth")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--variant", default="bicycle", help="the variant the weights were trained as (default bicycle)")
    p.add_argument("--preset", choices=sorted(TEST_SCRIPTS), default=None,
                   help="the authors' pretrained model these files are: its options and its test script's data "
                   "settings (what download model stores); options given below win")
    _add_fields(p.add_argument_group("model options (as the reference was trained)"), ModelConfig)
    data_options = p.add_argument_group("data options (how to prepare inputs for this model)")
    _add_fields(data_options, DataConfig, {"load_size": "default: the crop size", "no_flip": "default: True"})
    for action in data_options._group_actions:  # (train's "None: the built-in demo data" is train's alone)
        if action.dest == "dataroot":
            action.help = ("the dataset the later commands read by default (default: none, and sample, evaluate and "
                           "the rest then need --dataroot)")
    p.set_defaults(func=cmd_import_official)

    p = sub.add_parser("export", help="write the generator as ONNX or a torch.export .pt2 file, for deployment",
                       description="Export G(A, z) -> B of a checkpoint (eval mode, plain PyTorch layers, "
                       "CPU float32) with a JSON sidecar <out>.json describing inputs, outputs and z.")
    # Positional as in every other command (`export CKPT --out g.onnx` was a usage error), --checkpoint as before.
    p.add_argument("checkpoint", nargs="?", help="a checkpoint written by train or import-official, or a run folder")
    p.add_argument("--checkpoint", dest="checkpoint_option", metavar="CHECKPOINT", help="the same, as an option")
    p.add_argument("--out", required=True, help="file to write: *.onnx or *.pt2")
    p.add_argument("--format", choices=["onnx", "pt2"], help="default: from the suffix of --out")
    p.add_argument("--batch", type=_at_least(1), default=None, help="fixed batch size (default: a dynamic batch axis)")
    p.add_argument("--height", type=_at_least(1), default=None, help="image height (default: the model's crop size)")
    p.add_argument("--width", type=_at_least(1), default=None, help="image width (default: the model's crop width)")
    p.add_argument("--opset", type=_at_least(1), default=None, help="ONNX opset version (default 18)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written file against the PyTorch generator")
    p.set_defaults(func=cmd_export)

    build_download_parser(sub)
    p = sub.add_parser("serve", help="a local web page to explore a model: random z, a slider per z "
                       "dimension, encoded references, interpolation, uploads",
                       description="Serve a page for exploring a trained model in the browser (FastAPI + "
                       "uvicorn: pip install 'bicyclegan[serve]'). Bound to 127.0.0.1 unless --host says otherwise.")
    _add_model_source(p, "split whose inputs are offered")
    p.add_argument("--num", type=_at_least(0), default=32,
                   help="dataset inputs offered (default 32, at most 1000: each is held in memory; 0: uploads only)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--allow_host", action="append", default=None, metavar="NAME",
                   help="a name the page may be reached by besides this machine's own and its addresses (a DNS "
                   "alias, a proxy's); repeatable. Other names are refused: a site's own name for the server "
                   "(DNS rebinding)")
    p.add_argument("--port", type=_at_least(0), default=7860, help="port (default 7860; 0: any free port)")
    p.add_argument("--max_upload_mb", type=_at_least(1), default=MAX_UPLOAD_BYTES // 2**20,
                   help=f"largest upload accepted, in MiB (default {MAX_UPLOAD_BYTES // 2**20})")
    p.add_argument("--max_upload_pixels", type=_at_least(1), default=MAX_UPLOAD_PIXELS,
                   help="largest upload accepted, in pixels, read from the image header before decoding (default "
                   f"{MAX_UPLOAD_PIXELS})")
    _add_data_settings(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("make-demo", help="write the built-in demo dataset (aligned A|B files)",
                       description="Write the demo data as a dataset folder: OUT/train and OUT/test of aligned "
                       "A|B PNG files (A: shapes in outline, B: the same shapes filled in one of four palettes) "
                       "and their palettes.json, for train --dataroot OUT.")
    p.add_argument("out", metavar="OUT", help="the dataset folder to write")
    p.add_argument("--size", type=_at_least(16), default=32,
                   help="image height, and width unless --width is given (default 32; at least 16)")
    p.add_argument("--width", type=_at_least(16), default=None, help="image width (default: --size; at least 16)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="seed of the shapes and palettes (default 0)")
    # The counts a demo run makes for itself (pipelines.make_demo_dataset's defaults).
    p.add_argument("--n_train", type=_at_least(0), default=512, help="training pairs (default 512)")
    p.add_argument("--n_test", type=_at_least(0), default=64, help="test pairs (default 64)")
    p.add_argument("--shade", type=functools.partial(_number, kind=int), default=DEFAULT_SHADE,
                   help=f"grey level inside A's shapes, from 184 (above the outlines' grey, which the palette metric "
                   f"must tell apart) to 255, which draws bare outlines (default {DEFAULT_SHADE})")
    p.set_defaults(func=cmd_make_demo)
    parser.commands = _every_command(sub.choices)
    return parser


# The options that name files or folders (the parsers' destinations), of every command
PATH_OPTIONS = {"out", "dataroot", "checkpoint", "checkpoint_option", "models", "json", "init_from", "resume",
                "G", "E", "D", "D2", "dir", "lpips_backbone", "lpips_linear", "fid_weights"}


def _expand_home(args) -> None:
    """An option's value that starts with ~/ (or is ~), as the shell would have read it at a word's start: it does
    not after `=` (--out=~/runs) nor in quotes, and the command made a folder named ~ in the current one (which
    `rm -rf ~` then takes for the home folder) or said that ~/data does not exist."""
    def home(value):
        homeward = isinstance(value, str) and (value == "~" or value.startswith("~/"))
        return os.path.expanduser(value) if homeward else value

    for key in PATH_OPTIONS & vars(args).keys():  # (not --names, --allow_host: names, not paths)
        value = getattr(args, key)
        setattr(args, key, [home(v) for v in value] if isinstance(value, list) else home(value))


def main(argv=None) -> int:
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            # Its descriptor closed (`2>&-`): Python leaves it None, and the first progress line's write was an
            # AttributeError (exit 1, not a word, nothing written). As a reader gone: nowhere to say anything.
            setattr(sys, name, open(os.devnull, "w"))
    parser = build_parser()
    args = parser.parse_args(argv)
    _expand_home(args)
    # PIL refuses to decode over its own limit (89 M pixels): a larger --max_pixels was a traceback, and the advice
    # to raise it unfollowable here. Every image a command decodes has its size checked from its header first
    # (against max_pixels; serve's uploads against --max_upload_pixels): PIL's guard is off while one runs.
    from PIL import Image
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return _run(args)
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit


def _raise_stopped(signum, frame):
    from .io import Stopped, held_stop
    if not held_stop(signum):  # (inside a checkpoint's write: raised at its end)
        raise Stopped(signum)


def _unwind_on_stop(command) -> dict:
    """The handlers io.Stopped needs, where the signals have their default action (nohup's ignored SIGHUP stays
    ignored; a program calling main() keeps its own) and in the main thread (the only one signal.signal works in):
    the handlers replaced, to restore."""
    if command in ("train", "serve") or threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))
            if s is not None and signal.getsignal(s) is signal.SIG_DFL}


def _run(args) -> int:
    replaced = _unwind_on_stop(args.command)
    try:
        return _run_command(args)
    finally:
        for s, handler in replaced.items():
            signal.signal(s, handler)


def _run_command(args) -> int:
    from .io import Stopped, say
    try:
        try:
            from .runtime import launch_env
            launch_env()  # (a launch's variables that cannot be: one line, before any command reads them)
            if _under_torchrun() and args.command not in DISTRIBUTED:
                why = ONE_PROCESS.get(args.command, "each process would do the whole work and write the same files "
                                                    "over each other's")
                raise ConfigError(f"{args.command} runs in one process (under torchrun {why}): launch it without "
                                  f"torchrun ({_and(list(DISTRIBUTED))} share their work among torchrun's processes)")
            return args.func(args)
        except Exception as e:
            if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:
                # (an --out or a checkpoint's path with a name of 300 characters: a traceback from its first stat)
                raise ConfigError(f"{e.filename}: {e.strerror} (the file system takes names of up to 255 bytes, on "
                                  f"most); give shorter names") from e
            from .runtime import lost_rank
            if not getattr(e, "from_rank0", False) and (saw := lost_rank(e)):  # (train's says at which step)
                # Under torchrun another rank ended (its own error, which it prints) while this one waited for
                # it in a collective: a traceback here would only bury that rank's line.
                raise RankLostError(f"another process of this launch ended while this one waited for it, and "
                                    f"prints its own error (this one saw: {saw})") from e
            raise
    except BrokenPipeError:
        # The output's reader went away (`| head`) where a command printed: nothing more is said (a traceback
        # at exit otherwise), and the shell's code for a death by SIGPIPE. (A training's progress line stops
        # the run as a SIGTERM does instead, checkpoint written: Progress.)
        from .io import to_devnull
        to_devnull(sys.stdout)
        to_devnull(sys.stderr)
        return 128 + signal.SIGPIPE
    except USER_ERRORS as e:
        # under torchrun rank 0's refusal is printed by rank 0 alone, and one before the group by each machine's
        if not getattr(e, "from_rank0", False) and not _said_on_this_machine():
            print(f"bicyclegan {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        # 75: sysexits.h's EX_TEMPFAIL, try again later (a folder another process writes, the network), which a
        # script's retry loop tells from a refusal that the same command meets again (every rank's alike: the
        # refusal's broadcast keeps its marker)
        return 75 if getattr(e, "transient", False) else 2
    except Exception as e:
        if getattr(e, "from_rank0", False):  # a bug of rank 0's (main_decides): its traceback is printed there
            return 1
        raise
    except Stopped as e:  # (as a Ctrl-C: under torchrun rank 0 says it)
        if _rank0():
            kept = _kept(args, e) or "the files written so far are whole: none is left half-written"
            # (a terminal closed: its hang-up, then this line's write an OSError, exit 1)
            say(sys.stderr, f"stopped by {signal.Signals(e.args[0]).name}: {kept}\n")
        return 128 + e.args[0]
    except KeyboardInterrupt as e:
        # Under torchrun (Ctrl-C reaches every rank) rank 0 says it, a training's with the launch that resumes the
        # run: each rank printed it, with the one-process command, which the run's checkpoint refuses.
        if "torch" not in sys.modules:
            # (a Ctrl-C while torch imported, the command's first seconds: nothing begun, and what tells a run's resume
            # would import torch again, which a half-imported one fails, an AttributeError's traceback)
            if os.environ.get("RANK", "0") == "0":
                print("interrupted", file=sys.stderr)
            return 130
        if not _rank0():
            return 130
        kept = _kept(args, e)
        print(_train_interrupted(args, _launch_world()) if args.command == "train" else
              "interrupted" + (f"; {kept}" if kept else ""), file=sys.stderr)
        return 130


def _kept(args, stop: BaseException | None = None) -> str | None:
    """What a stopped command keeps that the same command goes on from, said with its stop or Ctrl-C (a download's
    Ctrl-C said "interrupted" alone, where its SIGTERM said that the partial file is kept; a sweep's said nothing of
    --reuse, which keeps the checkpoints it measured: an FID sweep's hours). An evaluation's measures whose save
    failed (a full disk) are said as they are (the `stop`'s measures_lost: Evaluation.run's): "kept" was said of
    measures that were not."""
    lost = getattr(stop, "measures_lost", None)
    if args.command == "evaluate" and args.epoch == "all":
        reuse, had = "the same command" + ("" if args.reuse else " with --reuse"), "each checkpoint measured so far has"
        if lost:
            return f"{had} its eval.json, which {reuse} keeps; of the one it stopped in, {lost}"
        return f"{had} its eval.json, the one it stopped in its measures so far: {reuse} goes on from them"
    if lost and args.command in ("evaluate", "compare"):
        return lost
    return {"download": "the partial download is kept: the same command continues it",
            "compare": "the measures of the models measured so far are kept: the same command goes on from them",
            "evaluate": "the measures made so far are kept: the same command goes on from them",
            "sample": "the images written so far are whole: the same command goes on from them"}.get(args.command)


def _train_interrupted(args, world: int) -> str:
    """A training's line for a Ctrl-C: the command that resumes its run (under torchrun, its launch)."""
    from .checkpoint import continue_option
    from .trainer import train_launch
    out = args.out or TrainConfig.out
    how = continue_option(Path(out) / "checkpoints")
    said = shlex.quote(str(out))  # a command to paste: a folder with a space is one argument
    launch = train_launch(world, args.model_cls)  # (the model the run trains: a resume without it is refused)
    if how == "--resume":
        return f"interrupted; the latest checkpoint is intact: {launch} --out {said} --resume"
    if how:  # --save_epoch_freq's checkpoints, before a latest.pt
        return f"interrupted; the run kept per-epoch checkpoints only: {launch} --out {said} {how}"
    if Path(out).exists():
        return f"interrupted before the run's first checkpoint: nothing to resume (delete {out} to start again there)"
    return "interrupted before the run's first checkpoint: nothing to resume"  # (stopped before it made its folder)

def run() -> None:
    """The `bicyclegan` command itself (its console script, `python -m bicyclegan.engine.cli`, torchrun's `-m`):
    main(), and then a command that a signal stopped, once it has unwound and said so, ends by that signal, as a
    program stopped by one should. A shell script running it in a loop (`for v in ...; do bicyclegan train ...;
    done`) stops at a Ctrl-C only when its command died of SIGINT: an exit status, 130 included, tells bash that
    the program took the key and chose to go on, and the loop went on to its next training (a Ctrl-C per
    iteration, each starting a run). torchrun's summary names the signal too. The shell's status is the same
    (128 + n); main() itself returns that code, so that a program calling it is not killed."""
    try:
        code = main()
    except SystemExit as e:  # (serve's SIGTERM; argparse's --help and refusals pass through as they are)
        code = e.code
    if isinstance(code, int) and code - 128 in _STOPS:
        _end_by(code - 128)
    sys.exit(code)  # (where the signal did not kill, as in a container's PID 1, which ignores its own: the status)


_STOPS = {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE") if hasattr(signal, name)}


def _end_by(signum: int) -> None:
    """Dies of the signal, its default action restored, after what an exit would have done first (the streams
    flushed, the atexit functions: loader workers ended, log files closed), as Python does itself after an
    uncaught KeyboardInterrupt."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # (a reader gone, a stream closed: nothing more to say)
            pass
    atexit._run_exitfuncs()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


if __name__ == "__main__":
    run()
