"""`evaluate RUN --epoch all`: every checkpoint a run kept, measured with one protocol.

A run with --save_epoch_freq N keeps checkpoints/epoch_N.pt (the dataset presets do, every 5 to 25
epochs, as the reference does), and which of them to sample from is a question of measures over
training. The sweep evaluates each checkpoint on the same inputs with the same z (evaluate's
protocol and options, one seed), the run's latest.pt too where it is further on, and writes:
- each one's eval.json where `evaluate RUN --epoch N` writes it (results/<split>_epoch_N/);
- results/<split>_sweep/sweep.json, the rows in training order;
- results/<split>_sweep/index.html, one chart per measure over the steps, the best of each measure
  a run may keep its best checkpoint by (fid, encoded_l1, coverage: evaluate.BEST) ringed, and a
  table.
A checkpoint whose weights are not finite (a run that diverged) gets a row saying so; the others are
still measured. The metric networks load once."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Callable, Iterator

from .checkpoint import LATEST, config_of, epoch_name, peek_checkpoint, saved_epochs
from .config import check_int
from .errors import CheckpointError, DivergenceError, OutputError
from .evaluate import PAPER_SAMPLES, Evaluation, best_rows, json_safe
from .io import check_writable, write_json, write_text
from .report import EVAL_NAMES, STYLE, _number, _value, measure_cells, row_measures, svg_chart
from .runtime import inference_data, results_dir, results_name

# The columns of a row that say which checkpoint it is; the measures follow.
WHICH = ("checkpoint", "epoch", "step")


def run_checkpoints(path) -> list[tuple[Path, int, int]]:
    """(file, epoch, step) of each checkpoint of the run at `path` (its folder or a file in its
    checkpoints/) in training order: its epoch_N.pt files, then latest.pt where it is further on
    (where it is not, it holds the last epoch_N.pt's weights). best.pt, a copy of one evaluation's
    weights, is not one of them."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (--epoch all: give the run folder, train's --out)")
    # RUN/checkpoints itself: the folder a user looks into to see the epochs (a run folder never is one)
    folder = path if path.is_dir() and path.name == "checkpoints" else path / "checkpoints" if path.is_dir() \
        else path.parent
    if folder.name != "checkpoints" or not folder.is_dir():
        raise CheckpointError(f"--epoch all evaluates every checkpoint of a run: {path} is neither a run folder "
                              f"nor a file in one's checkpoints/ folder")
    found = []
    for e in saved_epochs(folder):
        step, epoch = peek_checkpoint(folder / epoch_name(e), "step", "epoch")
        found.append((folder / epoch_name(e), epoch, step))
    if (folder / LATEST).is_file():
        step, epoch = peek_checkpoint(folder / LATEST, "step", "epoch")
        if not found or step > found[-1][2]:
            found.append((folder / LATEST, epoch, step))
    if not found:
        raise CheckpointError(f"{folder} holds no checkpoint to evaluate (the run stopped before its first)")
    return found


def sweep(run, *, n_samples: int = PAPER_SAMPLES, seed: int = 0, **options) -> Iterator[tuple[Path, dict]]:
    """(file, row) for each checkpoint of `run` (run_checkpoints, or that list itself), measured as they
    come: row is the checkpoint's name, epoch and step, then evaluate's result with these options
    (evaluate's), or "error" where the weights or outputs are not finite or the file is damaged."""
    check_int("n_samples", n_samples, 1)
    ev = None
    for path, epoch, step in run if isinstance(run, list) else run_checkpoints(run):
        row = {"checkpoint": path.name, "epoch": epoch, "step": step}
        try:
            ev = Evaluation(path, **options) if ev is None else ev.of(path)
            row.update(json_safe(ev.run(n_samples, seed)))
        # A damaged file shows only when it is read whole (its digest), maybe hours in: a row, as a
        # diverged one, so that the others' measures and the page are still written.
        except (DivergenceError, CheckpointError) as e:
            row["error"] = str(e)
        yield path, row


def evaluate_checkpoints(run, dataroot=None, *, json_path=None, log: Callable[[str], None] | None = print,
                         **options) -> tuple[list[dict], Path]:
    """Evaluate every checkpoint of `run` (its folder, or a file in its checkpoints/) with evaluate's
    options (n_samples, num, seed, metrics, phase...), and write each one's eval.json where `evaluate
    --epoch N` writes it, then <run>/results/<phase>_sweep/sweep.json (or json_path) and index.html.
    log: called with a line as each checkpoint is measured (None: quiet). Returns (the rows, in
    training order, as sweep.json holds them; the path of index.html)."""
    found = run_checkpoints(run)
    if json_path and Path(json_path).is_dir():
        raise OutputError(f"--json {json_path} is a folder; give the file to write, e.g. "
                          f"{Path(json_path) / 'sweep.json'}")
    folder = found[0][0].parent.parent
    # Before the work, where its results go: the split's name from the first checkpoint's config (the
    # rows may all be errors, which name none), and the folders checked writable (--json's too).
    cfg = config_of({"config": peek_checkpoint(found[0][0], "config")[0]}, found[0][0])
    root, phase, _, _ = inference_data(cfg, dataroot, options.get("phase"), options.get("layout"))
    out = check_writable(results_dir(folder, f"{results_name(root, phase)}_sweep"), "the sweep's results")
    if json_path:
        check_writable(Path(json_path).parent, "--json")
    say = log or (lambda line: None)
    say(f"evaluating {len(found)} checkpoint{'s' if len(found) != 1 else ''} of {folder}: "
        + ", ".join(p.name for p, _, _ in found))
    rows, links = [], {}
    for i, (path, row) in enumerate(sweep(found, dataroot=dataroot, **options), 1):
        rows.append(row)
        if "error" in row:
            say(f"[{i}/{len(found)}] {path.name}: {row['error']}")
            continue
        name = results_name(Path(row["dataroot"]), row["phase"])  # a plain folder's own, as evaluate's
        saved = write_json(results_dir(path, name) / "eval.json", {**row, "checkpoint": str(path.resolve())},
                           what="evaluation results")
        links[path.name] = Path(os.path.relpath(saved, out)).as_posix()
        say(f"[{i}/{len(found)}] {path.name} (epoch {row['epoch']}, step {row['step']}): {saved}")
    write_json(json_path or out / "sweep.json", rows, what="sweep results")
    return rows, write_text(out / "index.html", render_sweep(folder.name, rows, links), what="sweep page")


def measures(rows: list[dict]) -> list[str]:
    return row_measures(rows, WHICH)


def _cell(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def format_sweep(rows: list[dict]) -> str:
    """The rows as an aligned table for the terminal (one line per checkpoint), then the best of
    each measure in BEST and the option that picks that checkpoint."""
    keys = measures(rows)
    head = [*WHICH, *keys]
    table = [head] + [[_cell(r.get(k)) for k in WHICH] + ([r["error"]] if "error" in r else
                                                          [_cell(r.get(k)) for k in keys]) for r in rows]
    # An error row's text spans the measure columns: it neither sets their widths nor is cut off
    # where there are none.
    widths = [max(len(line[i]) for line in table if len(line) == len(head)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < len(line) - 1 else c for i, (c, w) in enumerate(zip(line, widths + [0])))
             for line in table]
    for key, r in best_rows(rows).items():
        pick = "no --epoch" if r["checkpoint"] == LATEST else f"--epoch {r['epoch']}"
        lines.append(f"best {EVAL_NAMES.get(key, key)}: {_cell(r[key])} at epoch {r['epoch']}, step {r['step']} "
                     f"({r['checkpoint']}: {pick})")
    return "\n".join(lines)


def render_sweep(run_name: str, rows: list[dict], links: dict[str, str] | None = None) -> str:
    """index.html: the protocol, one chart per measure over the steps (the best of each BEST measure
    ringed), then the table, each checkpoint's name a link to its eval.json (links: name -> href)."""
    done = [r for r in rows if "error" not in r]
    first = done[0] if done else {}
    best = best_rows(rows)
    said = (f"{len(rows)} checkpoint{'s' if len(rows) != 1 else ''} of {run_name}, each on {first.get('phase')}/: "
            f"the first {first.get('n_inputs')} inputs x {first.get('n_samples')} random z (seed {first.get('seed')}), "
            "the same for each." if done else f"{len(rows)} checkpoints of {run_name}; none could be measured.")
    x_range = (min(r["step"] for r in rows), max(r["step"] for r in rows))
    charts = []
    for k in measures(rows):
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
                 f"<td>{r['epoch']}</td>", f"<td>{r['step']}</td>"]
        body.append("<tr>" + "".join(cells) + measure_cells(r, keys, best) + "</tr>")
    title = f"{run_name}: every checkpoint evaluated"
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(said)}</p>"
            + (f"<div class='charts'>{''.join(charts)}</div>" if charts else "")
            + f"<h2>Checkpoints</h2><table><tr>{header}</tr>{''.join(body)}</table>"
            + ("<p class='meta'>Bold, and ringed on its chart: the best of a measure a run can keep its best "
               "checkpoint by.</p>" if best else "") + "</body></html>\n")

