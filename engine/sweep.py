"""`evaluate RUN --epoch all`: every checkpoint a run kept, measured with one protocol.

A run with --save_epoch_freq N keeps checkpoints/epoch_N.pt (the dataset presets do, every 5 to 25
epochs, as the reference does), and which of them to sample from is a question of measures over
training. The sweep evaluates each checkpoint on the same inputs with the same z (evaluate's
protocol and options, one seed), the run's latest.pt too where it is further on, and writes:
- each one's eval.json where `evaluate RUN --epoch N` writes it (results/<split>_epoch_N/);
- results/<split>_sweep/sweep.json, the rows in training order (each naming the run folder, absolute);
- results/<split>_sweep/index.html, one chart per measure over the steps, the best of each measure
  a run may keep its best checkpoint by (fid, encoded_l1, coverage: config.BEST) ringed where the
  checkpoints differ in it, and a table.
A checkpoint whose weights are not finite (a run that diverged) gets a row saying so; the others are
still measured. The metric networks load once.

Each eval.json holds the protocol it was measured with ("protocol": the checkpoint file's digest and
every option the figures depend on). With reuse (`--reuse`), a checkpoint whose eval.json holds the
protocol of this sweep is not measured again: run after more epochs were saved, the sweep measures
the new checkpoints alone (and latest.pt, which changed), not the whole run again."""
from __future__ import annotations

import hashlib
import html
import inspect
import json
import os
import shlex
from pathlib import Path
from typing import Callable, Iterator

from bicyclegan.pipelines import DatasetError
from bicyclegan.pipelines.errors import plural
from bicyclegan.pipelines.files import find_layout

from .checkpoint import (
    LATEST,
    epoch_name,
    epochs_done,
    peek_checkpoint,
    peek_config,
    read_checkpoint,
    run_folder,
    saved_epochs,
)
from .config import check_bool, check_int
from .errors import CheckpointError, DivergenceError, OutputError
from .evaluate import (
    PAPER_SAMPLES,
    Evaluation,
    best_rows,
    chosen_metrics,
    drop_kept,
    holds_kept,
    json_safe,
    kept_measures,
    kept_note,
    refuse_checkpoint_json,
    samples_per_input,
)
from .images import refuse_others_results
from .io import check_writable, write_json, write_text
from .metrics.fid import inception_file
from .metrics.lpips import lpips_files
from .report import (
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
    svg_chart,
)
from .runtime import Dist, SaidOnce, inference_data, made_alike, pick_device, results_dir, results_name

# The columns of a row that say which checkpoint it is; the measures follow.
WHICH = ("checkpoint", "epoch", "step")
# How the page's title ends (every version's), by which an earlier sweep's page is told from another's.
TITLE = ": every checkpoint evaluated"


def run_checkpoints(path) -> list[tuple[Path, int, int]]:
    """(file, epoch, step) of each checkpoint of the run at `path` (its folder or a file in its
    checkpoints/) in training order: its epoch_N.pt files, then latest.pt where it is further on
    (where it is not, it holds the last epoch_N.pt's weights). best.pt, a copy of one evaluation's
    weights, is not one of them."""
    return [found[:3] for found in _listing(path)]


def _listing(path) -> list[tuple[Path, int, int, str | None]]:
    """run_checkpoints' list with each file's recorded digest, read in the same look at the file (a --reuse
    sweep of 2,000 checkpoints opened each twice: 106 s before its first line)."""
    if not isinstance(path, (str, os.PathLike)):  # (a model object was pathlib's TypeError)
        raise TypeError(f"run must be a run folder's path (or of a file in its checkpoints/), got "
                        f"{type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (--epoch all: give the run folder, train's --out)")
    # RUN/checkpoints itself too: the folder a user looks into to see the epochs
    folder = run_folder(path) / "checkpoints" if path.is_dir() else path.parent
    if folder.name != "checkpoints" or not folder.is_dir():
        raise CheckpointError(f"--epoch all evaluates every checkpoint of a run: {path} is neither a run folder "
                              f"nor a file in one's checkpoints/ folder")
    found = [(folder / epoch_name(e), *_position(folder / epoch_name(e))) for e in saved_epochs(folder)]
    if (folder / LATEST).is_file():
        latest = (folder / LATEST, *_position(folder / LATEST))
        if not found or latest[2] > found[-1][2]:
            found.append(latest)
    if not found:
        raise CheckpointError(f"{folder} holds no checkpoint to evaluate (the run stopped before its first)")
    return found


def _position(path: Path) -> tuple[int, int, str | None]:
    """(epochs done, step, recorded digest) of a checkpoint, read without its tensors (nor checking its digest:
    the table's rows and page show these before any check, and a file's text there was the page's markup)."""
    step, epoch, per, digest = peek_checkpoint(path, "step", "epoch", "steps_per_epoch", "digest")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (step, epoch, per or 0)):
        raise CheckpointError(f"{path} is damaged: its step, epoch or steps per epoch is not a whole number "
                              f"({step!r}, {epoch!r}, {per!r}); move it away")
    return epochs_done(step, epoch, per), step, digest


# The options a checkpoint's figures depend on; batch size (which inputs are generated together) and the
# device's index do not change them. Defaults: Evaluation's; metrics, layout and skip_bad as an evaluation
# resolves them (protocol_options), so that an option left out and one given as its default are one protocol.
PROTOCOL = ("num", "metrics", "lpips_version", "lpips_pairs", "lpips_backbone", "lpips_linear", "fid_weights",
            "layout", "skip_bad")
_DEFAULTS = {k: inspect.signature(Evaluation).parameters[k].default for k in PROTOCOL}


def protocol(digest: str, root, phase: str, /, *, n_samples: int = PAPER_SAMPLES, seed: int = 0, device="auto",
             **options) -> dict:
    """What decides a checkpoint's measures, as its eval.json records it: the file's digest (of the
    contents measured: BicycleGAN.source's, or peek_checkpoint's to ask whether a file changed), the split
    (root, phase: as inference_data resolves them), the z draw, the device's kind (cpu, cuda: their
    arithmetic differs in the last digits) and the PROTOCOL options (evaluate's; weights files by
    their full path)."""
    opts = {k: options.get(k, _DEFAULTS[k]) for k in PROTOCOL}
    for k in ("lpips_backbone", "lpips_linear", "fid_weights"):
        opts[k] = None if opts[k] is None else str(Path(opts[k]).resolve())
    m = opts["metrics"]
    # As a set: "lpips,fid" and "fid, lpips" measure the same (each metric alone), so --reuse takes either.
    opts["metrics"] = m if m is None else sorted({x.strip() for x in (m.split(",") if isinstance(m, str) else m)
                                                  if x.strip()})
    return {"digest": digest, "dataroot": str(Path(root).resolve()),
            "phase": phase, "n_samples": n_samples, "seed": seed, "device": pick_device(device).type, **opts,
            "files": _files_state(Path(root), phase, opts)}


def protocol_options(cfg, root, phase: str, options: dict) -> dict:
    """`options` with metrics, layout and skip_bad as an evaluation of a model (its cfg) on root/phase takes
    them: the metrics chosen (l1, plus palette on the demo data), the layout detected, skip_bad as the run had it
    where not given. Recorded as given, --reuse measured again a sweep given --metrics l1,palette on the demo data
    (its default) or --no-skip_bad for a run without it."""
    _, _, layout, data = inference_data(cfg, root, phase, options.get("layout"), options.get("skip_bad"))
    try:
        layout = find_layout(root, phase, layout)[0]
    except DatasetError:  # (the evaluation says what is wrong with the folder)
        pass
    return {**options, "metrics": chosen_metrics(options.get("metrics"), cfg, root, phase), "layout": layout,
            "skip_bad": data.skip_bad}


def protocols(root, phase: str, /, **options):
    """protocol(digest, root, phase, **options) of each digest of one sweep, the split's state (_files_state: a
    walk of the split and a stat of each file) read once: a --reuse sweep of 30 checkpoints of a 4,000-image split
    spent 62 % of its time walking it 30 times."""
    base = protocol("", root, phase, **options)
    return lambda digest: {**base, "digest": digest}


def _files_state(root: Path, phase: str, opts: dict) -> str:
    """A digest of what else the figures are measured from: the split's files and the metric networks' weights
    files, by path, size and modification time. Options alone named them: an image of the split edited in place,
    or other weights (another TORCH_HOME, a file replaced at its path, the lpips package upgraded) kept the
    figures measured before under --reuse (and its choice of the best checkpoint)."""
    metrics = opts["metrics"] or ()
    weights = []
    if "lpips" in metrics:
        weights += lpips_files(opts["lpips_version"], opts["lpips_backbone"], opts["lpips_linear"])
    if "fid" in metrics:
        weights.append(inception_file(opts["fid_weights"]))
    try:
        folders = find_layout(root, phase, opts["layout"])[1]
    except DatasetError:  # (the evaluation says what is wrong with the folder)
        folders = ()
    # the data's names relative to its folder (given relative or absolute: the same files), the weights' in full
    files = [(Path(d, f), os.path.relpath(Path(d, f), root)) for folder in folders
             for d, _, names in sorted(os.walk(folder)) for f in sorted(names)]
    digest = hashlib.sha256()
    for path, name in [*((w, str(w if w is None else Path(w).resolve())) for w in weights), *files]:
        try:
            st = os.stat(path)
            digest.update(os.fsencode(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0"))
        except (OSError, TypeError, ValueError):  # (not there: None for no lpips package, or gone)
            digest.update(os.fsencode(f"{name}\0-\0"))
    return digest.hexdigest()


def _saved_row(eval_json: Path) -> dict | None:
    """The result an eval.json holds; None where there is none (a file that cannot be read is not a result)."""
    try:
        row = json.loads(eval_json.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def measured_before(row: dict | None, want: dict, left_out: dict | None = None) -> dict | None:
    """The saved row (_saved_row) where it was measured with the protocol `want` (the checkpoint's own
    file, unchanged, and the same options), else None. left_out: metrics, layout and skip_bad as this sweep
    resolves them where left out (protocol_options), for a protocol of an older version, which recorded those
    left out as None."""
    saved = row.get("protocol") if row is not None else None
    if isinstance(saved, dict) and left_out:
        saved = {**saved, **{k: v for k, v in left_out.items() if k in saved and saved[k] is None}}
    if saved != want:
        return None
    row = {k: v for k, v in row.items() if k != "protocol"}
    if isinstance(row.get("dataroot"), str) and not Path(row["dataroot"]).is_absolute():
        # An older eval.json's folder as typed, relative to where evaluate ran: the protocol's (the same as
        # this sweep's) is absolute, as new rows hold it (sweep.json, the page, read from anywhere).
        row.update(dataroot=want["dataroot"], dataroot_given=row["dataroot"])
    return row


def _of_an_older_version(row: dict | None, want: dict) -> bool:
    """Whether a saved row's protocol is an older version's: none at all, or fewer entries than this version's (the
    data files' and the metric weights' state came later), which --reuse cannot compare."""
    return row is not None and "n_inputs" in row and (
        not isinstance(row.get("protocol"), dict) or set(row["protocol"]) < set(want))


def _intact_since(path: Path, eval_json: Path) -> bool:
    """Whether the checkpoint may be taken as the one eval_json measured: the digest --reuse compares is the
    one the file carries, which damage to the file (written over in place) leaves as it was, so a file
    changed since its eval.json is read and its contents checked against it first (a damaged epoch_N.pt,
    which a plain sweep reports, kept its old result under --reuse)."""
    try:
        if path.stat().st_mtime_ns <= eval_json.stat().st_mtime_ns:
            return True
        read_checkpoint(path)
        return True
    except (OSError, CheckpointError):
        return False


def sweep(run, *, n_samples: int | None = None, seed: int = 0, dist: Dist = Dist(), keep=None, lost=None,
          **options) -> Iterator[tuple[Path, dict, str | None]]:
    """(file, row, digest) for each checkpoint of `run` (run_checkpoints, or that list itself), measured as
    they come: row is the checkpoint's name, epoch and step (of the file as it was read), then evaluate's
    result with these options (evaluate's), or "error" where the weights or outputs are not finite or the
    file is damaged; digest: of the contents measured (None for an error). dist: as evaluate's (every
    rank sweeps the same list). keep: a checkpoint's file -> the folder its measures are kept in as they are
    made (Evaluation.run's keep; the caller removes it once the result is written), or None. lost: a dict that gets
    a checkpoint's file -> what is kept of its measures where a save of them failed (Evaluation.kept_lost), for the
    line said where its result cannot be written."""
    if n_samples is not None:  # (None: evaluate's default, samples_per_input)
        check_int("n_samples", n_samples, 1)
    ev = None
    for path, epoch, step in run if isinstance(run, list) else run_checkpoints(run):
        row = {"checkpoint": path.name, "epoch": epoch, "step": step}
        try:
            ev = made_alike(dist, lambda: Evaluation(path, dist=dist, **options) if ev is None else ev.of(path))
            # The file as it was read: a training still running replaces latest.pt, maybe long after
            # the list was made (the checkpoints before it take minutes each).
            row.update(epoch=ev.model.source["epoch"], step=ev.model.source["step"])
            row.update(json_safe(ev.run(n_samples, seed, keep=keep(path) if keep is not None else None)))
            if lost is not None and ev.kept_lost:
                lost[path] = ev.kept_lost
            digest = ev.model.source["digest"]
        # A damaged file shows only when it is read whole (its digest), maybe hours in: a row, as a
        # diverged one, so that the others' measures and the page are still written.
        except (DivergenceError, CheckpointError) as e:
            row["error"], digest = str(e), None
        yield path, row, digest


def evaluate_checkpoints(run, dataroot=None, *, json_path=None, reuse: bool = False,
                         log: Callable[[str], None] | None = print, dist: Dist = Dist(),
                         **options) -> tuple[list[dict], Path]:
    """Evaluate every checkpoint of `run` (its folder, or a file in its checkpoints/) with evaluate's
    options (n_samples, num, seed, metrics, phase...), and write each one's eval.json where `evaluate
    --epoch N` writes it, then <run>/results/<phase>_sweep/sweep.json (or json_path) and index.html.
    reuse: a checkpoint whose eval.json was measured with this protocol (protocol()) keeps it, not
    measured again. log: called with a line as each checkpoint is measured (None: quiet). dist: the ranks
    that share each checkpoint's inputs under torchrun (rank 0 lists the checkpoints, logs and writes).
    Returns (the rows, in training order, as sweep.json holds them; the path of index.html), on every rank."""
    reuse = check_bool("reuse", reuse)

    def plan():
        if json_path and Path(json_path).is_dir():
            raise OutputError(f"--json {json_path} (json_path in Python) is a folder; give the file to write, e.g. "
                              f"{Path(json_path) / 'sweep.json'}")
        if json_path:
            refuse_checkpoint_json(json_path, "sweep.json", "json_path")
        listing = _listing(run)
        found = [c[:3] for c in listing]
        folder = found[0][0].parent.parent
        # Before the work, where its results go: the split's name from the first checkpoint's config (the
        # rows may all be errors, which name none), and the folders checked writable (--json's too).
        cfg = peek_config(found[0][0])
        root, phase, _, _ = inference_data(cfg, dataroot, options.get("phase"), options.get("layout"))
        # n_samples as each checkpoint's evaluation takes it (the run's one nz): refused before any is measured
        # for a model without z, and recorded in the protocol as `evaluate` records it (1 without z)
        n_samples = samples_per_input(options.get("n_samples"), cfg)
        # (the first checkpoint's settings: Evaluation.of reads the split so for each checkpoint of the run)
        taken = {**protocol_options(cfg, root, phase, options), "n_samples": n_samples}
        # Every checkpoint reads the first one's split (Evaluation.of): one results name for all of them.
        name = results_name(root, phase, cfg.data.dataroot)
        if json_path and (hit := next((p for p, _, _ in found if (results_dir(p, name) / "eval.json").resolve()
                                       == Path(json_path).resolve()), None)):
            # (earlier results, replaceable: the sweep wrote that checkpoint's eval.json, then sweep.json over it)
            raise OutputError(f"--json {json_path} (json_path in Python) is where this sweep writes {hit.name}'s "
                              f"eval.json; give another file for sweep.json, e.g. "
                              f"{results_dir(folder, f'{name}_sweep') / 'sweep.json'}")
        # (Each checkpoint's eval.json and the sweep's page are the run's: a run shared read-only is swept in a copy;
        # named whole: `evaluate . --epoch all` said "cp -r . ~/''")
        here = folder.resolve()
        out = check_writable(results_dir(folder, f"{name}_sweep"), "the sweep's results",
                             f"a sweep writes into the run folder (each checkpoint's eval.json, the page): make "
                             f"its results/ writable, or sweep a copy of the run (cp -r {shlex.quote(str(here))} "
                             f"~/{shlex.quote(here.name)})")
        # A gallery `sample --out` wrote there, or the user's own page, is not replaced by the sweep's (there is no
        # --out to send the page elsewhere: moving them is the way)
        refuse_others_results(out, "evaluate --epoch all", ("evaluate --epoch all",), own_title=TITLE, where="",
                              instead=f"move that folder elsewhere (mv {shlex.quote(str(out))} NEW: a sweep writes "
                                      f"its page there, and takes no --out), then sweep again")
        if json_path:
            check_writable(Path(json_path).parent, "--json (json_path in Python)")
        kept, older = {}, 0
        if reuse:
            of = protocols(root, phase, **taken)
            left_out = protocol_options(cfg, root, phase, {})
            left_out["metrics"] = sorted(left_out["metrics"])  # (as protocol() records them)
            for path, epoch, step, digest in listing:
                want = of(digest)
                saved = results_dir(path, name) / "eval.json"
                if (row := measured_before(found_row := _saved_row(saved), want, left_out)) is not None and \
                        _intact_since(path, saved):
                    kept[path] = {**row, "checkpoint": path.name, "epoch": epoch, "step": step}
                else:
                    older += _of_an_older_version(found_row, want)
        return found, folder, root, phase, name, out, kept, n_samples, older, taken
    # Rank 0's reading of the folder, every rank's: a training still running may save a checkpoint between
    # two ranks' listings, and ranks sweeping two lists would wait for each other in different evaluations.
    found, folder, root, phase, name, out, kept, n_samples, older, taken = dist.main_says(plan)
    options = {**options, "n_samples": n_samples}  # (the protocols written say the number taken)
    say = log if log is not None and dist.main else (lambda line: None)
    todo = [c for c in found if c[0] not in kept]
    before = f" ({len(kept)} measured before, reused)" if kept else ""
    if older:  # (silently measured again, an FID sweep's hours on a GPU, where --reuse was asked for)
        before += (f" ({plural(older, 'result')} of an older version, which recorded less of how it was measured: "
                   f"measured again)")
    of = protocols(root, phase, **taken) if todo else None  # (the split as this sweep begins to measure it)
    say(f"evaluating {plural(len(todo), 'checkpoint')} of {folder}: "
        + (", ".join(p.name for p, _, _ in todo) or "none") + before)
    # (the split's skipped files said once, not again for each checkpoint's loaders)
    with SaidOnce():
        rows, links = [], {}
        # (each checkpoint's measures kept beside its eval.json as they are made: a stopped sweep run again goes on
        # inside the checkpoint it stopped in)
        lost = {}
        measured = sweep(todo, dataroot=dataroot, dist=dist, keep=lambda p: kept_measures(results_dir(p, name) /
                                                                                          "eval.json"),
                         lost=lost, **options)
        for i, (path, _, _) in enumerate(found, 1):
            try:
                row, digest = (kept[path], None) if path in kept else next(measured)[1:]
            except BaseException as e:
                _say_kept(e, say)
                raise
            # which run's epoch_N.pt (a row names its file alone): sweep.json written elsewhere (--json) or copied
            # away said none; absolute, as the rows' data folder, to read the same from anywhere
            rows.append({"checkpoint": row["checkpoint"], "run": str(folder.resolve()), **row})
            saved = results_dir(path, name) / "eval.json"
            if "error" in row:
                # (its measures kept as the error ended its run: of no more use, as the error is its result)
                drop_kept(kept_measures(saved), dist)
                say(f"[{i}/{len(found)}] {path.name}: {row['error']}")
                continue
            which = f"[{i}/{len(found)}] {path.name} (epoch {row['epoch']}, step {row['step']})"
            if path in kept:
                say(f"{which}: {saved} (measured before)")
            else:
                record = {**row, "checkpoint": str(path.resolve()),
                          "protocol": of(digest)}
                try:
                    dist.main_decides(lambda: write_json(saved, record, what="evaluation results"))
                except BaseException as e:  # (a full disk, a folder gone): its measures, all kept as its run ended
                    if path in lost:
                        e.measures_lost = lost[path]
                    elif holds_kept(kept_measures(saved)):  # (its result's own: its run took or removed any others)
                        e.measures_kept = kept_measures(saved)
                    _say_kept(e, say)
                    raise
                drop_kept(kept_measures(saved), dist)
                say(f"{which}: {saved}")
            links[path.name] = Path(os.path.relpath(saved, out)).as_posix()
    dist.main_decides(lambda: write_json(json_path or out / "sweep.json", rows, what="sweep results"))
    page = out / "index.html"
    dist.main_decides(lambda: write_text(page, render_sweep(folder.name, rows, links), what="sweep page"))
    return rows, page


def _say_kept(error: BaseException, say: Callable[[str], None]) -> None:
    """After an error that ends a sweep inside a checkpoint (an input unreadable, its eval.json that cannot be
    written), a line of that checkpoint's measures: what is kept where a save failed (the error's measures_lost), or
    where they are kept (its measures_kept, where a single evaluate says it: its run(), quiet in a sweep, said
    neither). None for a stop, whose line is the command's (and says measures_lost), nor where nothing of this
    sweep's recipe is kept: the folder's files of another (an earlier --num, other weights), which the sweep run again
    discards, were said kept where an error came before its run() had looked at them."""
    if isinstance(error, Exception) and (lost := getattr(error, "measures_lost", None)):
        say(lost)
    elif isinstance(error, Exception) and (kept := getattr(error, "measures_kept", None)):
        say(kept_note(kept))


def measures(rows: list[dict]) -> list[str]:
    return row_measures(rows, WHICH, undefined=True)


def _cell(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def format_sweep(rows: list[dict]) -> str:
    """The rows as an aligned table for the terminal (one line per checkpoint), then the best of
    each measure in BEST and the option that picks that checkpoint."""
    keys = measures(rows)
    # (LPIPS with its ±, as the page and the note under the table give it: measure_value)
    lines = aligned([[*WHICH, *keys]] + [[_cell(r.get(k)) for k in WHICH] + (
        [r["error"]] if "error" in r else [measure_value(r, k, _cell) for k in keys]) for r in rows])
    # (where the checkpoints differ: a coverage of 0 at every one named the first "best", nothing beaten)
    for key, r in best_rows(rows, where_differ=True).items():
        pick = "no --epoch" if r["checkpoint"] == LATEST else f"--epoch {r['epoch']}"
        lines.append(f"best {EVAL_NAMES.get(key, key)}: {_cell(r[key])} at epoch {r['epoch']}, step {r['step']} "
                     f"({r['checkpoint']}: {pick})")
    if how := measured_with(next((r for r in rows if "error" not in r), {})):  # (as the page says it)
        lines.append(how)
    lines += blank_notes(rows, keys, lambda r: r["checkpoint"])
    return "\n".join(lines)


def render_sweep(run_name: str, rows: list[dict], links: dict[str, str] | None = None) -> str:
    """index.html: the protocol, one chart per measure over the steps (the best of each BEST measure
    ringed), then the table, each checkpoint's name a link to its eval.json (links: name -> href)."""
    done = [r for r in rows if "error" not in r]
    first = done[0] if done else {}
    best = best_rows(rows, where_differ=True)
    said = (f"{plural(len(rows), 'checkpoint')} of {run_name}, each on "
            f"{read_from(data_folder(first), first.get('phase'))}: "
            f"the first {plural(first.get('n_inputs'), 'input')} x {first.get('n_samples')} random z "
            f"(seed {first.get('seed')}), the same for each. {measured_with(first)}".rstrip() if done else
            f"{plural(len(rows), 'checkpoint')} of {run_name}; none could be measured.")
    x_range = (min(r["step"] for r in rows), max(r["step"] for r in rows))
    charts = []
    for k in row_measures(rows, WHICH):  # (a diversity no checkpoint has a value of draws nothing)
        pts = [(r["step"], float(r[k])) for r in done if _number(r.get(k))]
        b = best.get(k)
        mark = (b["step"], b[k], f"best: {_value(b[k])} at epoch {b['epoch']} ({b['checkpoint']})") if b else None
        charts.append(svg_chart(EVAL_NAMES.get(k, k), [x for x, _ in pts], [y for _, y in pts], x_range=x_range,
                                mark=mark))
    keys = measures(rows)
    header = "".join(f"<th title='{html.escape(k)}'>{html.escape(EVAL_NAMES.get(k, k))}</th>" for k in (*WHICH, *keys))
    body = []
    for r in rows:
        name = html.escape(r["checkpoint"])
        href = (links or {}).get(r["checkpoint"])
        cells = [f"<td><a href='{html.escape(href)}'>{name}</a></td>" if href else f"<td>{name}</td>",
                 f"<td>{html.escape(str(r['epoch']))}</td>", f"<td>{html.escape(str(r['step']))}</td>"]
        body.append("<tr>" + "".join(cells) + measure_cells(r, keys, best) + "</tr>")
    title = f"{run_name}{TITLE}"
    return html_page(
        title,
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(said)}</p>"
        + (f"<div class='charts'>{''.join(charts)}</div>" if charts else "")
        # (in a box of its own that scrolls sideways: on a phone the whole page did)
        + f"<h2>Checkpoints</h2><div class='across'><table><tr>{header}</tr>{''.join(body)}</table></div>"
        + ("<p class='meta'>Bold, and ringed on its chart: the best of a measure a run can keep its best "
           "checkpoint by, where the checkpoints differ in it.</p>" if best else "")
        + "".join(f"<p class='meta'>{html.escape(note)}.</p>"
                  for note in blank_notes(rows, keys, lambda r: r["checkpoint"], lambda k: EVAL_NAMES.get(k, k))))

