"""Hand-written mutants of the commands that measure several models or checkpoints at once:
`evaluate RUN --epoch all` (engine/sweep.py), `compare` (engine/compare.py), the helpers of
engine/evaluate.py they share (best_rows, improves, json_safe, draw_codes, Evaluation.of,
Evaluation(networks_from=)), the table and chart helpers of engine/report.py (row_measures,
measure_cells, svg_scatter, blanks, data_folder), the exit status of `evaluate --epoch all`, and the
refusals of options that change nothing (engine/cli.py). Results and survivors: docs/mutation-engine.md,
"The sweep and compare" and "Why each '-', the shared sample and interpolate, the launcher watched".

Run with tools/mutation_loop.py's runner (how it mutates, restores and reports: its docstring):

    .venv/bin/python tools/mutation_compare.py            # every mutant (about 13 min on 2 cores)
    .venv/bin/python tools/mutation_compare.py SW01 CM03  # some of them; build/mutation-compare/results.jsonl
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_loop import run  # noqa: E402

SW, CM, E, R, CLI = "engine/sweep.py", "engine/compare.py", "engine/evaluate.py", "engine/report.py", "engine/cli.py"
CK = "engine/checkpoint.py"
ST = ["tests/test_sweep.py"]
CT = ["tests/test_compare.py"]
BOTH = ST + CT  # the helpers both commands use
BLANKS = ["tests/test_compare.py::test_each_dash_gets_the_reason_of_its_row_and_column"]
DASHES = ["tests/test_report.py::test_every_dash_in_the_evaluation_table_says_why"]
REL = "tests/test_reliability.py::test_"
TRAIN_OPTS = [REL + "train_refuses_evaluation_options_that_change_nothing",
              REL + "evaluation_options_taken_where_they_count_and_kept_by_a_resumed_run"]
METRIC_OPTS = ["tests/test_compare.py::test_an_lpips_or_fid_option_without_its_metric_is_refused"]
# Survivors that no test can kill (docs/mutation-engine.md says why): not counted against the run.
EQUIVALENT = {"EH12", "BL09", "BL12"}
# Every test of the two files runs (about 15 s in all).
SKIP = "not download"

# (id, file, original text, mutant text, tests)
MUTANTS = [
    # evaluate --epoch all: which checkpoints, in which order
    ('SW01', SW, 'if not found or latest[2] > found[-1][2]:',
     'if not found or latest[2] >= found[-1][2]:', ST),
    ('SW02', SW, 'folder = run_folder(path) / "checkpoints" if',
     'folder = path / "checkpoints" if', ST),
    ('SW03', SW, 'for e in saved_epochs(folder)]',
     'for e in sorted(saved_epochs(folder), key=str)]', ST),
    # the measuring loop
    ('SW04', SW, 'if ev is None else ev.of(path)',
     'if ev is None else ev', ST),
    ('SW05', SW, 'except (DivergenceError, CheckpointError) as e:',
     'except DivergenceError as e:', ST),
    ('SW06', SW, 'row.update(json_safe(ev.run(n_samples, seed, keep=keep(path) if keep is not None else None)))',
     'row.update(ev.run(n_samples, seed, keep=keep(path) if keep is not None else None))', ST),
    ('SW07', SW, 'row.update(json_safe(ev.run(n_samples, seed, keep=',
     'row.update(json_safe(ev.run(n_samples, 0, keep=', ST),
    # what it writes, and the checks before any work
    ('SW08', SW, '        check_writable(Path(json_path).parent, "--json (json_path in Python)")\n',
     '        pass\n', ST),
    ('SW09', SW, 'links[path.name] = Path(os.path.relpath(saved, out)).as_posix()',
     'links[path.name] = saved.as_posix()', ST),
    ('SW10', SW, 'write_json(json_path or out / "sweep.json", rows, what="sweep results")',
     'write_json(out / "sweep.json", rows, what="sweep results")', ST),
    ('SW11', SW, 'write_json(json_path or out / "sweep.json", rows, what="sweep results")',
     'Path(json_path or out / "sweep.json").write_text(__import__("json").dumps(rows, indent=2) + "\\n")', ST),
    # the table and the page
    ('SW12', SW, 'x_range=x_range,\n                                mark=mark)',
     'x_range=None,\n                                mark=mark)', ST),
    ('SW13', SW, 'mark = (b["step"], b[k],',
     'mark = (b["epoch"], b[k],', ST),
    # compare: names, the refusals before any work
    ('CM01', CM, '        while name in out:\n',
     '        if name in out:\n', CT),
    ('CM02', CM, '"input channels": cfg.model.input_nc,',
     '', CT),
    ('CM03', CM, '"preprocess": cfg.data.preprocess}',
     '}', CT),
    # (CM04, the run's max_dataset_size among the inputs' settings: gone with it, session 37)
    ('CM05', CM, '        if bad := model.nonfinite():\n',
     '        if bad := {}:\n', CT),
    ('CM06', CM, 'dist.main_decides(lambda: check_writable(out, "compare results"))',
     'pass', CT),
    # compare: measuring, the picture
    ('CM07', CM, 'networks_from=evs[0] if evs else None',
     'networks_from=None', CT),
    ('CM08', CM, 'if "error" not in row]',
     ']', CT),
    ('CM09', CM, '        picture.unlink(missing_ok=True)  # an earlier',
     '        pass  # an earlier', CT),
    ('CM10', CM, 'write_json(out / "compare.json", rows, what="comparison results")',
     '(out / "compare.json").write_text(__import__("json").dumps(rows, indent=2) + "\\n")', CT),
    ('CM11', CM, 'shown = (len(A), max(len(cols) for _, cols in outputs))',
     'shown = (show, show_samples)', CT),
    ('CM12', CM, 'if len(A) == min(show, ev.n_inputs) or',
     'if len(A) == show or', CT),
    ('CM13', CM, 'z[:len(A), :show_samples] if nz else None',
     'z[:len(A), -show_samples:] if nz else None', CT),
    ('CM14', CM, 'z = draw_codes(n_inputs, n_samples, nz, seed)',
     'z = draw_codes(len(A), n_samples, nz, seed)', CT),
    # compare: the page
    ('CM15', CM, '                if left else "")',
     '                if not left else "")', CT),
    ('CM16', CM, 'drawn = max((r["n_samples"] for r in done if "n_samples" in r), default=None)',
     'drawn = first.get("n_samples")', CT),
    # evaluate.py's helpers
    ('EH01', E, 'if not isinstance(value, (int, float)) or not math.isfinite(value):',
     'if not isinstance(value, (int, float)):', BOTH),
    ('EH02', E, '(value < best if BEST[key][1] == "lower" else value > best)',
     '(value <= best if BEST[key][1] == "lower" else value > best)', BOTH),
    ('EH03', E, '(value < best if BEST[key][1] == "lower" else value > best)',
     '(value < best if BEST[key][1] == "higher" else value > best)', BOTH),
    ('EH04', E, 'None if isinstance(v, float) and not math.isfinite(v) else v',
     'None if isinstance(v, float) and math.isnan(v) else v', BOTH),
    ('EH05', E, 'torch.randn(n_inputs, row, generator=torch.Generator().manual_seed(seed))',
     'torch.randn(n_inputs, row, generator=torch.Generator().manual_seed(0))', BOTH),
    ('EH06', E, 'return z[:, :per].reshape(n_inputs, n_samples, nz)',
     'return z[:, :per].reshape(n_samples, n_inputs, nz).transpose(0, 1)', BOTH),
    ('EH07', E, 'if where_differ and len({r[key] for r in rows if _number(r.get(key))}) < 2:',
     'if where_differ and len({r.get(key) for r in rows}) < 2:', BOTH),
    ('EH08', E, 'out[key][key] if key in out else None',
     'None', BOTH),
    ('EH09', E, '        if reading(model.cfg) != reading(self.model.cfg):\n',
     '        if False:\n', BOTH),
    ('EH10', E, 'for k, v in d[part].items() if k not in may}',
     'for k, v in d[part].items()}', BOTH),
    ('EH11', E, 'for part, may in (("model", MODEL_RESUMABLE_CHANGES), ("data", DATA_RESUMABLE_CHANGES))]',
     'for part, may in (("model", MODEL_RESUMABLE_CHANGES),)]', BOTH),
    ('EH12', E, '        other._check_finite()\n',
     '', BOTH),
    ('EH13', E, 'other = copy.copy(self)',
     'other = self', BOTH),
    ('EH14', E, 'same = ("lpips_version", "lpips_backbone",',
     'same = ("lpips_backbone",', BOTH),
    # report.py: the table's measures and cells, the scatter chart
    ('RH01', R, 'skip = {*identity, *EVAL_SETTINGS}',
     'skip = {*identity}', BOTH),
    ('RH02', R, "if \"error\" in row:\n        return f\"<td colspan='{max(len(keys), 1)}'>{html.escape(row['error'])}",
     "if \"error\" in row:\n        return f\"<td colspan='{max(len(keys), 1)}'>{row['error']}", BOTH),
    ('RH03', R, 'return lo - (hi - lo) / 10, hi + (hi - lo) / 10',
     'return lo, hi', BOTH),
    ('RH04', R, 'return (not any(left < r and a < left + w and abs(base - b) < 12 for a, r, b in placed)',
     'return (not any(abs(base - b) < 12 for a, r, b in placed)', BOTH),
    ('RH05', R, 'for k in range(2 * (len(placed) + len(points)) + 1)]',
     'for k in range(len(placed) + 1)]', BOTH),
    ('RH06', R, "f'{html.escape(shown)}</text>')",
     "f'{shown}</text>')", BOTH),
    # --reuse: each eval.json's protocol, and what is taken from it
    ('RU01', SW, 'return {"digest": digest, "dataroot"',
     'return {"digest": None, "dataroot"', ST),
    ('RU02', SW, 'opts = {k: options.get(k, _DEFAULTS[k]) for k in PROTOCOL}',
     'opts = {k: _DEFAULTS[k] for k in PROTOCOL}', ST),
    ('RU03', SW, '    if saved != want:',
     '    if saved is None:', ST),
    ('RU04', SW, '        if reuse:\n            of = protocols(', '        if True:\n            of = protocols(', ST),
    ('RU05', SW, '"protocol": of(digest)}', '"protocol": of(peek_checkpoint(path, "digest")[0])}', ST),
    ('RU06', SW, 'row.update(epoch=ev.model.source["epoch"], step=ev.model.source["step"])',
     'pass', ST),
    ('RU07', CLI, 'r["protocol"] = protocol(ev.model.source["digest"],',
     'r["protocol"] = protocol("", ', ST),
    ('RU08', SW, '"seed": seed, "device": pick_device(device).type, **opts,',
     '"device": pick_device(device).type, **opts,', ST),
    # the run's report lists the results of its checkpoints
    ('RP01', CK, 'return folder.parent if folder.name == "checkpoints" and not (folder / "checkpoints").is_dir() else',
     'return folder if folder.name == "checkpoints" and not (folder / "checkpoints").is_dir() else', ST),
    ('RP02', R, 'if (d / "eval.json").is_file():',
     'if False:', ST),
    ('RP03', R, 'PAGE_KINDS = {"path.json": "interpolation",',
     'PAGE_KINDS = {"path.json": "samples",', ST),
    ('RP04', R, 'return max(found)[1]', 'return min(found)[1]',
     ["tests/test_report.py::test_a_results_pages_label_comes_from_the_files_its_command_wrote"]),
    # compare: the file and step a model was read from; a plain folder's refusal before any work
    ('CS01', CM, 'loaded.append((name, path or (Path(src["path"]) if src else None), model, src.get("step")))',
     'loaded.append((name, path, model, src.get("step")))', CT),
    ('CS02', E, 'if not self.has_B and (need := [m for m in chosen if m in ("fid", "palette")]):',
     'if False and (need := [m for m in chosen if m in ("fid", "palette")]):', CT),
    ('EH15', E, 'return Evaluation(model, **self._options, networks_from=self, dist=self.dist)',
     'return Evaluation(model, **self._options, dist=self.dist)', ST),
    # the commands' exit status
    ('CL01', CLI, 'if all("error" in r for r in rows):  # a script',
     'if any("error" in r for r in rows):  # a script', ST),
    # why each '-' of the tables says it is there (report.blanks), the columns kept, the data folder read
    ('BL01', R, '        if "error" in r:\n            continue\n        for k in keys:',
     '        for k in keys:', BLANKS),
    ('BL02', R, 'reason = (NO_DIVERSITY if k in DIVERSITY and k in r',
     'reason = (NO_DIVERSITY if k in DIVERSITY', BLANKS),
    ('BL03', R, 'NO_ENCODED_EITHER) if k in ENCODED and k not in r',
     'NO_ENCODED_EITHER) if k in ENCODED', BLANKS),
    ('BL04', R, 'else NOT_FINITE if k in r else NOT_IN)',
     'else NOT_IN if k in r else NOT_FINITE)', BLANKS),
    ('BL05', R, 'cols[k] = names[name(r)] = None',
     'cols[k] = None', BLANKS),
    ('BL06', R, "{', '.join(map(column, cols))} -: ",
     "{', '.join(cols)} -: ", CT),
    ('BL07', R, 'if _number(r.get(k)) or (k in r and r[k] is not None):',
     'if _number(r.get(k)):', DASHES),
    ('BL08', R, '(undefined and v is None)',
     '(v is None)', BOTH),
    ('BL09', R, 'for r in rows if "error" not in r for k, v in r.items()',
     'for r in rows for k, v in r.items()', BOTH),
    ('BL10', R, "{'default' if x is None else _value(x)}",
     "{_value(x)}", DASHES),
    ('BL11', R, 'for cols, _, reason in blanks([evaluation], list(evaluation), str))]',
     'for cols, _, reason in [])]', DASHES),
    ('BL12', R, '    if root is None or Path(root).is_absolute():\n        return root\n',
     '', ST),
    ('BL13', R, 'return said["dataroot"] if isinstance(said, dict) and isinstance(said.get("dataroot"), str) else root',
     'return root', ST),
    ('BL14', R, 'few = min(n.values()) < 2048',
     'few = min(n.values()) <= 2048', BOTH),
    # a best named only where the checkpoints differ in it; each sweep row names its run; --reuse's dataroot
    ('BD01', E, 'if where_differ and len({r[key] for r in rows if _number(r.get(key))}) < 2:',
     'if where_differ and len({r[key] for r in rows if _number(r.get(key))}) < 1:', BOTH),
    ('BD02', SW, '    for key, r in best_rows(rows, where_differ=True).items():',
     '    for key, r in best_rows(rows).items():', ST),
    ('BD03', SW, '    best = best_rows(rows, where_differ=True)',
     '    best = best_rows(rows)', ST),
    ('BD04', SW, '"run": str(folder.resolve())',
     '"run": str(folder)', ST),
    ('BD05', SW, 'row.update(dataroot=want["dataroot"], dataroot_given=row["dataroot"])',
     'pass', ST),
    # options given where they change nothing: train's evaluation options, evaluate's and compare's metric options
    ('CO01', CLI, 'if evaluation and not cfg.eval_every:',
     'if evaluation:', TRAIN_OPTS),
    ('CO02', CLI, 'is not None]) and metric not in asked:',
     'is not None]) and metric in asked:', TRAIN_OPTS),
    ('CO03', CLI, 'METRIC_FILES = {"lpips": ("lpips_backbone", "lpips_linear"), "fid": ("fid_weights",)}',
     'METRIC_FILES = {"lpips": ("lpips_backbone", "lpips_linear"), "fid": ()}', TRAIN_OPTS),
    ('CO04', CLI, "*(asked or ['l1'])",
     "*asked", TRAIN_OPTS),
    ('CO05', CLI, "leave {'it' if one else 'them'}",
     "leave {'them'}", TRAIN_OPTS),
    ('CO06', CLI, "{'is an option' if one else 'are options'}",
     "{'are options'}", TRAIN_OPTS),
    ('CO07', CLI, 'evaluation = [f"--{k}" for k in ("eval_metrics", "eval_num", "eval_samples",',
     'evaluation = [f"--{k}" for k in ("eval_metrics", "eval_samples",', TRAIN_OPTS),
    ('CO08', CLI, '        if options and metric not in asked:',
     '        if options:', METRIC_OPTS),
    ('CO09', CLI, 'if getattr(args, k) != default]',
     'if getattr(args, k) is not None]', METRIC_OPTS),
    ('CO10', CLI, '(("lpips_version", "0.0"), ("lpips_pairs", "consecutive"))',
     '(("lpips_version", "0.0"),)', METRIC_OPTS),
    ('CO11', CLI, '    _check_metric_options(args)\n    d = init_distributed(args.device)\n    rows, out = compare(',
     '    d = init_distributed(args.device)\n    rows, out = compare(', METRIC_OPTS),
]

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], MUTANTS, EQUIVALENT, SKIP, "mutation-compare"))
