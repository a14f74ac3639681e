"""Generator export for deployment: ONNX (torch.onnx's torch.export-based exporter) or a torch.export
program (.pt2), with a JSON sidecar that says how to feed it, and a check of the written artefact
against the PyTorch generator.

The exported graph is G(A, z) -> B in eval mode, as `bicyclegan sample` runs it: plain PyTorch
layers (impl="ref": the Triton kernels are training/GPU speed-ups no exporter can translate), NCHW,
float32, on the CPU. With the default generator (InstanceNorm without running statistics, no
dropout) eval and train mode compute the same function; with use_dropout the dropout is off, with
norm=batch the running statistics are used.

ONNX goes through the dynamo exporter (needs onnx + onnxscript). The legacy TorchScript exporter
(dynamo=False, still present in torch 2.13) is not used: it mistranslates the in-place activation of
the skip half of each U-Net concatenation (outputs off by ~0.02 on a tiny G; checked).
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from bicyclegan.pipelines.atomic import special_file, stale_temps, temp_beside

from .config import DataConfig, ModelConfig, check_bool
from .errors import CheckpointError, DivergenceError, ExportError, OutputError
from .io import Stopped, check_writable, make_folder, remove_made, write_json
from .networks import build_generator

FORMATS = {".onnx": "onnx", ".pt2": "pt2"}
INSTALL_HINT = "pip install 'bicyclegan[export]'"
# The largest batch a dynamic-batch artefact promises to accept; torch.export needs a bound.
MAX_BATCH = 4096


def format_for(path, fmt: str | None = None) -> str:
    """`fmt` if given, else the format named by the file suffix (.onnx / .pt2)."""
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise ExportError(f"format {fmt!r} is not supported; choose onnx or pt2")
        named = FORMATS.get(Path(path).suffix.lower())
        if named is not None and named != fmt:  # (a pt2 archive named g.onnx, which ONNX tools then failed on)
            raise ExportError(f"{str(path)!r} names a {named} file but the format asked for is {fmt}; name it "
                              f"*.{fmt}, or leave the format to the suffix")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        named = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ExportError(f"cannot tell the export format from {str(path)!r} ({named}); "
                          f"name the file *.onnx or *.pt2, or give the format (onnx or pt2; CLI: --format)")
    return FORMATS[suffix]


def _generator_for_export(checkpoint_or_model) -> tuple[torch.nn.Module, ModelConfig, DataConfig, dict]:
    """A fresh CPU float32 eval-mode G with plain PyTorch layers and the source's sampling weights
    (the moving average of G when the run kept one), its ModelConfig, the run's DataConfig (how
    `sample` prepares inputs) and facts for the sidecar."""
    from .checkpoint import check_weights_fit, config_of, encoder_trained, find_checkpoint, read_checkpoint
    from .model import BicycleGAN
    if isinstance(checkpoint_or_model, BicycleGAN):
        model_cfg, data = checkpoint_or_model.cfg.model, checkpoint_or_model.cfg.data
        # A compiled G (nn.Module.compile, in place) keeps the plain networks' state_dict keys.
        weights = {k: v.detach().to("cpu", torch.float32) for k, v in checkpoint_or_model.sampler.state_dict().items()}
        source = {"checkpoint": None, "step": None, "variant": checkpoint_or_model.cfg.variant,
                  "encoder": checkpoint_or_model.E is not None}
        ema = checkpoint_or_model.G_ema is not None
    elif isinstance(checkpoint_or_model, (str, os.PathLike)):
        checkpoint_or_model = find_checkpoint(checkpoint_or_model)  # a run folder: its latest.pt
        state = read_checkpoint(checkpoint_or_model)
        run_cfg = config_of(state, checkpoint_or_model)
        model_cfg, data = run_cfg.model, run_cfg.data
        ema = "ema" in state
        weights = state["ema"] if ema else state["nets"].get("G")
        # Before G is built, as load_checkpoint checks (a file of a few KB whose config said ngf 256 built G whole,
        # then failed on a KeyError or a traceback of missing keys)
        check_weights_fit({"nets": {"G": weights}}, run_cfg, False, checkpoint_or_model, names=["G"])
        source = {"checkpoint": str(checkpoint_or_model), "step": state.get("step"), "variant": run_cfg.variant,
                  "encoder": encoder_trained(state, run_cfg)}
    else:
        raise TypeError(f"export_generator takes a checkpoint path or a BicycleGAN, got "
                        f"{type(checkpoint_or_model).__name__}")
    source["weights"] = "moving average of G" if ema else "G"
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise DivergenceError(f"the generator holds non-finite weights ({', '.join(bad[:3])}...): not exported")
    # impl and channels_last change speed, not weights: the graph gets the layers every exporter knows.
    cfg = dataclasses.replace(model_cfg, impl="ref", channels_last=False)
    with torch.random.fork_rng(devices=[]):  # initial weights, replaced below: the caller's generator untouched
        G = build_generator(cfg)
    try:
        G.load_state_dict(weights)
    except RuntimeError as e:  # (keys beyond what the config builds: a traceback)
        raise CheckpointError(f"{source['checkpoint'] or 'the model'}: its weights do not fit its own config: "
                              f"{str(e).splitlines()[0]}") from e
    return G.eval(), cfg, data, source


def _example_inputs(cfg: ModelConfig, n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(n, cfg.input_nc, h, w, generator=g) * 2 - 1
    return (A, torch.randn(n, cfg.nz, generator=g)) if cfg.nz else (A,)


def _export_onnx(G, inputs, names, dynamic_shapes, out: Path, opset: int) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs the onnx and onnxscript packages ({e.name} is missing): "
                          f"{INSTALL_HINT}, or export to .pt2") from e
    # torch 2.4 (setup.py's floor) has the exporter without these: "export() got an unexpected keyword argument
    # 'dynamic_shapes'", said as the export's failure
    taken = inspect.signature(torch.onnx.export).parameters
    if missing := [p for p in ("dynamo", "dynamic_shapes", "external_data") if p not in taken]:
        raise ExportError(f"this torch ({torch.__version__}) has an ONNX exporter without {', '.join(missing)}, which "
                          f"this export needs: upgrade torch (2.13 is tested), or export to .pt2")
    # The exporter logs a warning per torchvision op it cannot register and prints its progress:
    # noise for a user who exports a U-Net; real failures still raise. Below opset 18 it warns that
    # it converts, and onnxscript logs a failed conversion with its traceback: the check below says
    # it in one line (the traceback came before the command's one-line error).
    logs = [logging.getLogger(name) for name in ("torch.onnx._internal.exporter._registration",
                                                 "torch.onnx._internal.exporter._compat",
                                                 "onnxscript.version_converter")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(LeafSpec|axis name).*")
            torch.onnx.export(G, inputs, out, input_names=list(names), output_names=["B"],
                              opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes,
                              # one self-contained file: the reference-size G is ~220 MB, far
                              # under protobuf's 2 GB limit
                              external_data=False, verbose=False)
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)
    # The exporter writes its own opset and converts to the one asked for; where onnx's version
    # converter cannot, it logs the failure and keeps its own: a file that is not what was asked.
    import onnx
    got = next((o.version for o in onnx.load(str(out), load_external_data=False).opset_import
                if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise ExportError(f"torch's ONNX exporter could not write opset {opset} (onnx's version converter "
                          f"failed; the file would have been opset {got}): pick another --opset, e.g. 18")


def single_threaded(ort):
    """Session options with no thread pools: a check of one small graph gains nothing from them,
    and pool threads left in the process can deadlock DataLoader workers it forks later."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    # Errors alone: its warnings (one that it could not keep a telemetry id in an unwritable home) came in colour
    # codes, into logs too, about nothing of the export's
    opts.log_severity_level = 3
    return opts


def _run_onnx(path: Path, names, inputs, shown: Path | None = None) -> tuple[torch.Tensor | None, str]:
    """The artefact's output via onnxruntime, or (None, how it was checked) without onnxruntime. shown: the file's
    name as the caller knows it (path is the temporary file checked before it replaces that one)."""
    import onnx
    onnx.checker.check_model(str(path), full_check=True)
    try:
        import onnxruntime as ort
    except ImportError:
        warnings.warn(f"onnxruntime is not installed: {shown or path} passed onnx.checker but its outputs were not "
                      f"compared with PyTorch ({INSTALL_HINT})", RuntimeWarning, stacklevel=3)
        return None, f"onnx.checker only (onnxruntime not installed: {INSTALL_HINT})"
    sess = ort.InferenceSession(str(path), single_threaded(ort), providers=["CPUExecutionProvider"])
    out = sess.run(["B"], {n: x.numpy() for n, x in zip(names, inputs)})[0]
    return torch.from_numpy(out), f"onnxruntime {ort.__version__}"


def _run_pt2(path: Path, inputs) -> tuple[torch.Tensor, str]:
    with warnings.catch_warnings():  # (torch 2.4's loader warns of weights_only=False, for the file just written)
        warnings.filterwarnings("ignore", message=".*weights_only=False.*", category=FutureWarning)
        program = torch.export.load(path)
    return program.module()(*inputs), f"torch.export.load (torch {torch.__version__})"


def export_generator(checkpoint_or_model, out_path, *, fmt: str | None = None, batch: int | None = None,
                     height: int | None = None, width: int | None = None, opset: int | None = None,
                     verify: bool = True, atol: float = 1e-4) -> dict:
    """Write G of a checkpoint (path) or a BicycleGAN to `out_path` as ONNX or a torch.export .pt2,
    plus `<out_path>.json` describing the inputs and outputs.

    batch: None = dynamic batch axis (any N from 1 to MAX_BATCH), else fixed. height/width: default
    the model's crop size (fixed in the graph; multiples of 2^num_downs). verify: run the written
    file on random inputs (two batch sizes when dynamic) and raise ExportError if it differs from
    the PyTorch generator by more than atol. opset: the ONNX export's (default 18; refused for pt2).
    Returns what was written and the measured difference.
    """
    verify = check_bool("verify", verify)
    out = Path(out_path)
    if out.is_dir():  # os.replace failed on it after the whole export and its check: a traceback
        raise OutputError(f"{out} is a folder; give the file to write (CLI: --out), e.g. "
                          f"{out / ('g.' + (fmt or 'onnx'))}")
    if kind := special_file(out):  # (renamed over: `--out /dev/null` as root replaced the system's /dev/null)
        raise OutputError(f"{out} is {kind}, which the export would replace; give a file's path (CLI: --out)")
    fmt = format_for(out, fmt)
    if opset is not None and fmt != "onnx":  # (it was taken, and changed nothing)
        raise ExportError(f"opset={opset!r} is an ONNX export's; the {fmt} export has none (CLI: drop --opset)")
    opset = 18 if opset is None else opset
    from .checkpoint import is_checkpoint
    if is_checkpoint(out):
        # `--out latest.pt --format pt2` replaced the run's checkpoint (the one it read, even) with the export.
        raise OutputError(f"{out} is a bicyclegan checkpoint, which the export would replace; give another file "
                          f"to write (CLI: --out), e.g. {out.with_name('g.' + fmt)}")
    sidecar = Path(str(out) + ".json")
    for path, what, earlier in ((out, "the export", _earlier_export), (sidecar, "its sidecar", _earlier_sidecar)):
        # `--out RUN/config --format pt2` wrote its sidecar over the run's config.json (sample, evaluate and resume
        # then failed), `--out RUN/config.json` the model itself, `--out model.onnx` a model of the user's that no
        # export wrote. (An earlier export named g.json, binary ONNX beside its g.json.json, is replaced as any; so
        # is an empty file, mktemp's.)
        if path.is_file() and path.stat().st_size and not earlier(path):
            raise OutputError(f"{path} exists and is not an earlier export's file (a run's config.json, results, a "
                              f"model no export wrote), which {what} would replace; give another file to write "
                              f"(CLI: --out), e.g. {_another(out, 'g.' + fmt)}")
    G, cfg, data, source = _generator_for_export(checkpoint_or_model)
    variant, encoder = source.pop("variant"), source.pop("encoder")
    for name, value, none in (("height", height, "the model's crop size"), ("width", width, "the model's crop size"),
                              ("batch", batch, "a dynamic batch")):  # (the command's are >= 1: _at_least)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            # 0 was taken for the model's size, -32 a torch error of a negative dimension, 32.0 (and batch=True,
            # inside torch.rand) a TypeError
            raise ExportError(f"{name}={value!r} must be a positive integer, or None for {none}")
    h, w = height or cfg.size[0], width or cfg.size[1]
    m = 2 ** cfg.unet_depth
    if h % m or w % m:
        raise ExportError(f"height x width {h}x{w} must be multiples of 2^num_downs = {m} for this generator")
    _check_load_fits(data, h, w)
    names = ("A", "z") if cfg.nz else ("A",)
    # A dynamic batch is traced at 2: torch.export specialises sizes 0 and 1 of example inputs.
    inputs = _example_inputs(cfg, batch or 2, h, w, seed=0)
    dynamic_shapes = None
    if batch is None:
        dim = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        dynamic_shapes = {n: {0: dim} for n in names}
    check_writable(out.parent, "the exported model")
    made = make_folder(out.parent)  # (removed again below if the export fails: a refusal leaves no folder)
    # Written and checked under a temporary name, then renamed: a failed or wrong export never
    # replaces a good file. The format's own suffix, as the exporters look at it: onnx wrote ONNX's JSON text
    # to g.json (and could not read it back) and refused g.textproto. A name of its own, as atomic_write's:
    # two exports to one file (threads of one process, machines on a shared disk) each write and check their own.
    for gone in stale_temps(out, f".tmp.{fmt}"):  # a killed export's (atomic_write's cleanup knows .tmp names alone)
        gone.unlink(missing_ok=True)
    fd, name = temp_beside(out, f".tmp.{fmt}")
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            if fmt == "onnx":
                _export_onnx(G, inputs, names, dynamic_shapes, tmp, opset)
            else:
                # Into memory, then to the file: torch's zip writer, writing a full disk (or past `ulimit -f`)
                # itself, raised, then threw again as it was destroyed, and the process aborted (exit 134, a C++
                # stack) after the one line saying why. A plain write's error is an OSError, said as the rest.
                buf = io.BytesIO()
                torch.export.save(torch.export.export(G, inputs, dynamic_shapes=dynamic_shapes), buf)
                tmp.write_bytes(buf.getbuffer())
        except ExportError:
            raise
        except Exception as e:
            cause, seen = e, set()
            while cause is not None and id(cause) not in seen:  # (a chain that loops: once round)
                if isinstance(cause, (KeyboardInterrupt, Stopped)):  # a Ctrl-C or SIGTERM in the exporter's lazy
                    raise cause from e  # imports, which came back as their AttributeError
                seen.add(id(cause))
                cause = cause.__cause__ or cause.__context__
            raise ExportError(f"exporting the generator to {out} ({fmt}) failed: {type(e).__name__}: {e}") from e
        result = {"path": str(out), "format": fmt, "sidecar": str(out) + ".json", "batch": batch or "dynamic",
                  "max_abs_diff": None, "verified_with": None}
        if verify:
            diffs = []
            for k, n in enumerate([batch] if batch else [1, 3]):
                x = _example_inputs(cfg, n, h, w, seed=k + 1)
                with torch.no_grad():
                    got, result["verified_with"] = (_run_onnx(tmp, names, x, out) if fmt == "onnx" else
                                                    _run_pt2(tmp, x))
                    if got is not None:
                        diffs.append((got - G(*x)).abs().max().item())
            if diffs:
                result["max_abs_diff"] = max(diffs)
                if not result["max_abs_diff"] <= atol:  # NaN fails too
                    raise ExportError(f"{out} would not reproduce the generator: max abs difference "
                                      f"{result['max_abs_diff']:.3g} > {atol:g} ({result['verified_with']}); "
                                      f"nothing was written")
        # The sidecar first: one that cannot be written (a folder of its name, a full disk) left the new model beside
        # the earlier export's sidecar, which may say another size, nz or preparation; now both stay the earlier's.
        _write_sidecar(out, fmt, cfg, data, source, variant, encoder, batch, h, w, opset, result)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        if not out.exists():
            remove_made(out.parent, made)
    return result


def _another(out: Path, name: str) -> Path:
    """A file beside `out` to suggest in its place: `name`, or where that is `out` itself, name_new."""
    other = out.with_name(name)
    return other if other != out else out.with_name(f"{other.stem}_new{other.suffix}")


def _earlier_sidecar(path: Path) -> dict | None:
    """The export's sidecar `path` holds (what a new export may replace), else None."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and {"model", "format", "inputs", "preprocessing"} <= set(meta) else None


def _earlier_export(path: Path) -> bool:
    """Whether `path` is an earlier export's file: its sidecar beside it names it."""
    meta = _earlier_sidecar(Path(str(path) + ".json"))
    return meta is not None and meta.get("file") == path.name


def _check_load_fits(data: DataConfig, h: int, w: int) -> None:
    """Refuse a graph larger than the images its preparation makes: its centre crop would run off them (the
    sidecar said "resize to 72 x 72, centre crop 128 x 128"; PIL pads such a crop with black, unsaid)."""
    from bicyclegan.pipelines.spec import as_hw

    from .runtime import load_hw
    load = as_hw(load_hw(data, (h, w)), "load_size")
    short = (data.preprocess == "resize_and_crop" and (load[0] < h or load[1] < w)) or (
        data.preprocess == "scale_width_and_crop" and load[1] < w)
    if short:
        raise ExportError(f"height x width {h}x{w} is larger than the images preprocess {data.preprocess} makes "
                          f"(load_size {data.load_size}: {load[0]}x{load[1]}), whose centre crop it would be; export "
                          f"at most that size")


def _preprocessing(data: DataConfig, cfg: ModelConfig, h: int, w: int) -> dict:
    """How `bicyclegan sample` turns an image file into the graph's input A (pipelines/cpu_loader.py
    at test time: a centre crop, no flip), for a graph of h x w inputs, in the run's data settings."""
    from bicyclegan.pipelines.spec import CROPPING, as_hw

    from .runtime import load_hw
    mode, nc = data.preprocess, cfg.input_nc
    right = data.direction == "BtoA"
    steps = ["decode as 8-bit RGB (alpha dropped, grey replicated, 16-bit samples scaled to 8 bits)",
             f"an A|B pair image: split at width // 2 (before any resize), the {'right' if right else 'left'} "
             f"half is the input (direction {data.direction}); A/ and B/ folders: the file in "
             f"{'B' if right else 'A'}/; a single image (no pair) is the input whole"]
    if nc == 1:
        steps.append("to grayscale with PIL's Image.convert('L') (ITU-R 601-2 luma), before the resize")
    load = as_hw(load_hw(data, (h, w)), "load_size")
    if mode == "resize_and_crop":
        resize = {"kind": "fixed", "size": list(load)}
        steps.append(f"resize (bicubic) to {load[0]} x {load[1]} (H x W)")
    elif mode == "crop":
        resize = {"kind": "none"}
    elif mode == "none":  # the reference's preprocess none
        resize = {"kind": "multiple_of_4"}
        steps.append("resize (bicubic) each side to round(side / 4) * 4 (half to even), unless it already is")
    else:  # scale_width, scale_width_and_crop
        resize = {"kind": "width", "width": load[1]}
        steps.append(f"resize (bicubic) to width {load[1]}, height {load[1]} * h // w (h x w: the image's; "
                     f"unchanged when it already is that size)")
    crop = None
    if mode in CROPPING:
        crop = {"kind": "centre", "size": [h, w]}
        steps.append(f"centre crop {h} x {w} (H x W): top (height - {h}) // 2, left (width - {w}) // 2")
    else:
        steps.append(f"no crop: the graph takes {h} x {w} (H x W) only; for images that come out at another "
                     f"size export at that size (--height/--width)")
    steps.append("no flip")
    steps.append(f"to float32 {'RGB' if nc == 3 else 'grayscale'} values (pixel - 127.5) / 127.5, "
                 f"channels first (C x H x W), images stacked on the batch axis")
    return {
        "description": "how `bicyclegan sample` prepares an input image for this model: " + "; ".join(steps),
        "steps": steps,
        "direction": data.direction,
        "input_half": "right" if right else "left",   # of an A|B pair image (A left, B right)
        "input_folder": "B" if right else "A",         # of A/ and B/ folders
        "preprocess": mode,
        "load_size": data.load_size,
        "resize": resize,
        "resample": "bicubic (PIL's Image.BICUBIC on the 8-bit image)",
        "crop": crop,
        "flip": False,
        "channels": "RGB" if nc == 3 else "L",
        "scale": "(pixel - 127.5) / 127.5",
        "input_size": [h, w],
        "trained_crop_size": list(cfg.size),
    }


def _write_sidecar(out: Path, fmt, cfg: ModelConfig, data: DataConfig, source, variant: str, encoder: bool, batch,
                   h, w, opset, result) -> None:
    n = batch or "batch"
    rng = [-1.0, 1.0]
    inputs = [{"name": "A", "shape": [n, cfg.input_nc, h, w], "dtype": "float32", "range": rng,
               "layout": "NCHW", "description": "input image, RGB (1 channel: grayscale) in [-1, 1]: "
               "(pixel - 127.5) / 127.5, prepared as `preprocessing` says"}]
    if cfg.nz:
        # (sample's draws: the sidecar said "torch.randn ... seeded with --seed", which does not give its images: the
        # --sync list comes first. The encoder's mu: of a model that has a trained one, which this file does not
        # hold; an import-official without --E has none to offer.)
        inputs.append({"name": "z", "shape": [n, cfg.nz], "dtype": "float32", "distribution": "standard normal",
                       "description": "latent code: z ~ N(0, I) for random outputs (bicyclegan sample draws "
                       f"torch.randn(n_samples, {cfg.nz}) from one torch.Generator seeded with --seed: once for its "
                       "--sync list, then once per input in order, a row per output; --spread_z draws others)"
                       + (", or the mu of a reference image B by the model's encoder E (not in this file: the "
                          "Python API's model.encode)" if encoder else "") + "; one z per input image"})
    meta = {
        "model": "BicycleGAN generator G(A, z) -> B" if cfg.nz else "BicycleGAN generator G(A) -> B (nz 0: no z)",
        "variant": variant,
        "format": fmt,
        "file": out.name,
        **({"opset": opset} if fmt == "onnx" else {}),
        "torch": torch.__version__,
        "inputs": inputs,
        "outputs": [{"name": "B", "shape": [n, cfg.output_nc, h, w], "dtype": "float32", "range": rng,
                     "layout": "NCHW", "description": "output image in [-1, 1] (tanh), RGB (1 channel: "
                     "grayscale): pixel = round((clamp(B, -1, 1) + 1) * 127.5)"}],
        "dynamic_batch": batch is None,
        # torch.export needs a bound on a dynamic axis (a larger batch fails its guard: split it); ONNX has none
        **({"max_batch": MAX_BATCH} if batch is None and fmt == "pt2" else {}),
        "nz": cfg.nz,
        "z_distribution": "standard normal N(0, I)" if cfg.nz else None,
        "preprocessing": _preprocessing(data, cfg, h, w),
        "mode": "eval",
        "model_config": dataclasses.asdict(cfg),
        "source": source,
        "verified_with": result["verified_with"],
        "max_abs_diff": result["max_abs_diff"],
    }
    write_json(result["sidecar"], meta, what="export sidecar")
