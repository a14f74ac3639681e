"""The `bicyclegan` command: a thin layer over the Python API (bicyclegan.engine).

Train options are generated from the config dataclasses, so --help always lists every field with
its default and the comment written beside it in config.py. Errors a user can cause (the
project's own types) print one line and exit 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path

from .config import DataConfig, ModelConfig, TrainConfig
from .errors import USER_ERRORS, ConfigError
from .presets import PRESETS, make_config


def _field_help(cls) -> dict[str, str]:
    """The `# comment` written after each field in the dataclass source."""
    src = inspect.getsource(cls)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s+(\w+): [^#\n]*#(.*)$", src, re.M)}


def _add_fields(parser, cls):
    """One flag per dataclass field; Optional fields accept 'none'; bools get --x/--no-x."""
    hints = typing.get_type_hints(cls)
    helps = _field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("model", "data"):
            continue
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        help_txt = f"{helps.get(f.name, '')} (default: {default})"
        if tp is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None,
                                help=help_txt)
            continue
        args = typing.get_args(tp)
        base = next((a for a in args if a is not type(None)), tp) if args else tp

        def conv(text, base=base, optional=type(None) in args, name=f.name):
            if optional and text.lower() == "none":
                return None
            try:
                return base(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"--{name} expects {base.__name__}, got {text!r}")
        parser.add_argument(f"--{f.name}", type=conv, default=None, metavar=base.__name__.upper(),
                            help=help_txt)


def _at_least(low: int):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}")
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return conv


def _index_list(text: str) -> list[int]:
    """ "0,3,5" -> [0, 3, 5] (non-negative integers)."""
    return [_at_least(0)(part) for part in text.split(",") if part.strip()]


def _given(args, *classes) -> dict:
    """The options of these config classes that were given on the command line."""
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


# -- train -----------------------------------------------------------------------------------------
def build_train_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model (no --dataroot: the built-in demo data)",
                       description="Train BicycleGAN or one of the paper's variants. Without "
                       "--dataroot it trains on the built-in demo data with the 'demo' preset.")
    p.add_argument("--preset", choices=["auto", *PRESETS], default="auto",
                   help="defaults to start from; auto (default) = demo without --dataroot, reference with it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation on demo data")
    _add_fields(p.add_argument_group("training options"), TrainConfig)
    _add_fields(p.add_argument_group("data options"), DataConfig)
    _add_fields(p.add_argument_group("model options"), ModelConfig)
    return p


def resolve_config(args) -> TrainConfig:
    """Preset defaults, then every option given on the command line."""
    return make_config(None if args.preset == "auto" else args.preset,
                       **_given(args, TrainConfig, DataConfig, ModelConfig))


def cmd_train(args) -> int:
    cfg = resolve_config(args)
    if args.dry_run:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from .evaluate import format_table
    from .trainer import Trainer
    trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress)
    run = trainer.train()
    if trainer.main:
        print(f"run folder: {run}\nsample grid: {run / 'samples' / 'latest.png'}")
        if trainer.is_demo and not args.no_eval:
            print(format_table(trainer.evaluate()))
    return 0


# -- inference -------------------------------------------------------------------------------------
def cmd_sample(args) -> int:
    from .sample import sample
    out = sample(args.checkpoint, args.dataroot, out=args.out, phase=args.phase, n_samples=args.n_samples,
                 num=args.num, sync=args.sync, encode=not args.no_encode, seed=args.seed, device=args.device)
    print(f"results: {out}\ngallery: {out / 'index.html'}\ngrid: {out / 'grid.png'}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate, format_table
    from .io import check_writable, write_json
    results = Path(args.checkpoint).resolve().parent.parent / "results"  # as `sample`: <run>/results/<phase>
    check_writable(Path(args.json).parent if args.json else results, "--json")  # before the evaluation
    r = evaluate(args.checkpoint, args.dataroot, phase=args.phase, n_samples=args.n_samples, num=args.num,
                 seed=args.seed, device=args.device, batch_size=args.batch_size, metrics=args.metrics,
                 lpips_version=args.lpips_version, lpips_pairs=args.lpips_pairs,
                 lpips_backbone=args.lpips_backbone, lpips_linear=args.lpips_linear, fid_weights=args.fid_weights)
    print(format_table(r))
    path = write_json(args.json or results / r["phase"] / "eval.json", r, what="evaluation results")
    print(f"results: {path}")
    return 0


def cmd_interpolate(args) -> int:
    from .interpolate import interpolate
    out = interpolate(args.checkpoint, args.dataroot, out=args.out, phase=args.phase, num=args.num,
                      segments=args.segments, frames=args.frames, mode=args.mode, path=args.path, refs=args.refs,
                      seed=args.seed, fps=args.fps, mp4=args.mp4, device=args.device)
    print(f"results: {out}\ngallery: {out / 'index.html'}")
    return 0


def cmd_import_official(args) -> int:
    from .checkpoint import save_checkpoint
    from .official import import_official
    model_cfg = ModelConfig(**_given(args, ModelConfig))
    data = _given(args, DataConfig)
    data_cfg = DataConfig(**{"load_size": max(model_cfg.size), "no_flip": True, **data})
    model = import_official(model_cfg, G=args.G, E=args.E, D=args.D, D2=args.D2, variant=args.variant,
                            data=data_cfg)
    save_checkpoint(model, args.out)
    print(f"wrote {args.out} (networks {', '.join(model.networks())}; untrained ones are freshly "
          f"initialised); sample with: bicyclegan sample {args.out} --dataroot DATA")
    return 0


def cmd_export(args) -> int:
    from .export import export_generator
    r = export_generator(args.checkpoint, args.out, fmt=args.format, batch=args.batch, height=args.height,
                         width=args.width, opset=args.opset, verify=not args.no_verify)
    check = ("not verified (--no-verify)" if r["verified_with"] is None else
             f"checked with {r['verified_with']}" if r["max_abs_diff"] is None else
             f"max abs difference from PyTorch {r['max_abs_diff']:.2g} ({r['verified_with']})")
    print(f"wrote {r['path']} ({r['format']}, batch {r['batch']}) and {r['sidecar']} (how to feed it); {check}")
    return 0


def cmd_make_demo(args) -> int:
    from bicyclegan.pipelines import make_demo_dataset

    from .io import check_writable
    check_writable(args.out, "the demo data")
    try:
        root = make_demo_dataset(args.out, size=(args.size, args.width or args.size), seed=args.seed,
                                 n_train=args.n_train, n_test=args.n_test)
    except ValueError as e:  # the generator's own argument checks
        raise ConfigError(str(e)) from e
    print(f"demo data written to {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bicyclegan", description="BicycleGAN: multimodal image-to-image translation")
    sub = parser.add_subparsers(dest="command", required=True)
    build_train_parser(sub).set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="outputs for a folder of inputs: images, a grid and an HTML gallery")
    p.add_argument("checkpoint", help="a checkpoint written by train (…/checkpoints/latest.pt)")
    p.add_argument("--dataroot", help="dataset folder (default: the data the model was trained on)")
    p.add_argument("--phase", default="test")
    p.add_argument("--out", help="results folder (default: <run>/results/<phase>)")
    p.add_argument("--n_samples", type=_at_least(0), default=5, help="random-z outputs per input")
    p.add_argument("--num", type=_at_least(1), default=50, help="at most this many inputs")
    p.add_argument("--sync", action="store_true", help="use the same z list for every input")
    p.add_argument("--no_encode", action="store_true", help="no encoded column G(A, E(B))")
    p.add_argument("--seed", type=_at_least(0), default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="diversity (LPIPS as the paper, L1), FID; mode coverage on demo data",
                       description="Measure a model with the paper's protocol: the first --num inputs of the "
                       "split, --n_samples random z each; diversity = mean distance between consecutive samples "
                       "of one input. Defaults are the paper's (100 x 20, LPIPS alex v0.0).")
    p.add_argument("checkpoint")
    p.add_argument("--dataroot", help="dataset folder (default: the data the model was trained on)")
    p.add_argument("--phase", default=None, help="split to evaluate (default: val when there is one, else test)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated: l1, palette (demo data), lpips, fid (default: l1, plus palette on demo data)")
    p.add_argument("--n_samples", type=_at_least(1), default=20, help="random z per input (the paper: 20)")
    p.add_argument("--num", type=_at_least(1), default=100, help="at most this many inputs (the paper: 100)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="seed of the z draws")
    p.add_argument("--batch_size", type=_at_least(1), default=16, help="inputs generated at once")
    p.add_argument("--lpips_version", choices=["0.0", "0.1"], default="0.0",
                   help="LPIPS linear layers: 0.0 as the paper (default), 0.1 the lpips package's default")
    p.add_argument("--lpips_pairs", choices=["consecutive", "all"], default="consecutive",
                   help="pairs of an input's samples: consecutive (the paper: n-1 per input) or all")
    p.add_argument("--lpips_backbone", help="AlexNet weights file (default: alexnet-owt-7be5be79.pth in "
                   "torch.hub's checkpoints folder)")
    p.add_argument("--lpips_linear", help="LPIPS linear-layer weights (default: from the installed lpips package)")
    p.add_argument("--fid_weights", help="InceptionV3 weights file (default: pt_inception-2015-12-05-6726825d.pth "
                   "in torch.hub's checkpoints folder)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="where to write the results (default: <run>/results/<phase>/eval.json, "
                   "<run> being the checkpoint's folder's parent)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("interpolate", help="walks through z per input: PNG strip, GIF, MP4 and an HTML gallery",
                       description="As the reference's video.py: for each input, G(A, z) along a path through "
                       "segments + 1 codes (random, or mu of E(B) of reference images), frames per segment, "
                       "slerp or linear.")
    p.add_argument("checkpoint")
    p.add_argument("--dataroot", help="dataset folder (default: the data the model was trained on)")
    p.add_argument("--phase", default=None, help="split (default: val when there is one, else test)")
    p.add_argument("--out", help="results folder (default: <run>/results/interpolate_<phase>)")
    p.add_argument("--num", type=_at_least(1), default=5, help="inputs")
    p.add_argument("--path", choices=["random", "encoded"], default="random",
                   help="codes to visit: random draws (shared by all inputs) or E(B) of reference images")
    p.add_argument("--refs", type=_index_list, help="encoded path: comma-separated input numbers whose B images "
                   "give the codes (default: the first segments + 1)")
    p.add_argument("--segments", type=_at_least(1), default=5, help="random path: segments (codes - 1)")
    p.add_argument("--frames", type=_at_least(1), default=4, help="frames per segment")
    p.add_argument("--mode", choices=["slerp", "linear"], default="slerp", help="interpolation (video.py: slerp)")
    p.add_argument("--seed", type=_at_least(0), default=50, help="seed of the random codes (video.py: 50)")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second of the GIF and MP4")
    p.add_argument("--mp4", action=argparse.BooleanOptionalAction, default=None,
                   help="write MP4 videos (default: when imageio-ffmpeg is installed)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("import-official", help="turn the reference's *_net_G/E/D/D2.pth files into a checkpoint")
    for net in ("G", "E", "D", "D2"):
        p.add_argument(f"--{net}", required=net == "G", help=f"the reference's {{epoch}}_net_{net}.pth")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--variant", default="bicycle", help="the variant the weights were trained as")
    _add_fields(p.add_argument_group("model options (as the reference was trained)"), ModelConfig)
    _add_fields(p.add_argument_group("data options (how to prepare inputs for this model; default: "
                                      "load at the crop size, no flip)"), DataConfig)
    p.set_defaults(func=cmd_import_official)

    p = sub.add_parser("export", help="write the generator as ONNX or a torch.export .pt2 file, for deployment",
                       description="Export G(A, z) -> B of a checkpoint (eval mode, plain PyTorch layers, "
                       "CPU float32) with a JSON sidecar <out>.json describing inputs, outputs and z.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by train or import-official")
    p.add_argument("--out", required=True, help="file to write: *.onnx or *.pt2")
    p.add_argument("--format", choices=["onnx", "pt2"], help="default: from the suffix of --out")
    p.add_argument("--batch", type=int, default=None, help="fixed batch size (default: a dynamic batch axis)")
    p.add_argument("--height", type=_at_least(1), default=None, help="image height (default: the model's crop size)")
    p.add_argument("--width", type=_at_least(1), default=None, help="image width (default: the model's crop width)")
    p.add_argument("--opset", type=_at_least(1), default=18, help="ONNX opset version")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written file against the PyTorch generator")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("make-demo", help="write the built-in demo dataset (aligned A|B files)")
    p.add_argument("out")
    p.add_argument("--size", type=_at_least(16), default=32)
    p.add_argument("--width", type=_at_least(16), default=None)
    p.add_argument("--seed", type=_at_least(0), default=0)
    p.add_argument("--n_train", type=_at_least(0), default=2000)
    p.add_argument("--n_test", type=_at_least(0), default=100)
    p.set_defaults(func=cmd_make_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"bicyclegan {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the latest checkpoint is intact (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
