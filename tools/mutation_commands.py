"""Hand-written mutants of the inference commands: sample, evaluate (the command, not metrics/),
interpolate, export, the columns they share (images.sample_columns) and how they open a model and
its data (runtime, checkpoint.load_checkpoint, the CLI's --epoch). Results and survivors:
docs/mutation-engine.md, "The inference commands".

The runner is tools/mutation_loop.py's (one replacement per mutant, written into the source, the
selected tests run with `pytest -x` in a fresh interpreter, the file restored from git; it refuses to
start with uncommitted changes in the files it mutates):

    .venv/bin/python tools/mutation_commands.py            # every mutant (about 20 min on 2 cores)
    .venv/bin/python tools/mutation_commands.py S01 X03    # some of them

One JSON line per mutant goes to build/mutation-commands/results.jsonl; exit status 1 when a mutant
survived (the equivalent ones aside), no longer matches, or ended pytest otherwise than passed or
failed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_loop import run  # noqa: E402  (the one runner both lists use)

S, E, IP, X = "engine/sample.py", "engine/evaluate.py", "engine/interpolate.py", "engine/export.py"
C, L, K, CLI = "engine/images.py", "engine/runtime.py", "engine/checkpoint.py", "engine/cli.py"
SMP = ["tests/test_workflow.py", "tests/test_commands.py"]
EVL = ["tests/test_metrics.py", "tests/test_commands.py"]
INT = ["tests/test_interpolate.py", "tests/test_commands.py"]
EXP = ["tests/test_export.py", "tests/test_commands.py"]
PG = ["tests/test_pages.py"]  # the grids' titles and enlargement, measured in their pixels
ENC = ["tests/test_metrics.py::test_the_table_says_why_an_encoded_line_is_blank_the_models_lack_or_the_splits",
       "tests/test_metrics.py::test_no_encoded_output_is_recorded_only_where_an_encoded_measure_was_asked"]
ALL = ["tests/test_workflow.py", "tests/test_commands.py", "tests/test_interpolate.py", "tests/test_export.py",
       "tests/test_metrics.py"]
# Survivors that no test can kill (docs/mutation-engine.md says why): not counted against the run.
EQUIVALENT = {"C05"}
# Left out of every run: tests of training, resuming, downloads and the browser.
SKIP = "(not train or sample) and not resum and not download and not torchrun and not tensorboard"

# (id, file, original text, mutant text, tests)
MUTANTS = [
    # sample
    ('S01', S, 'codes = [z_sync] * share.stop if sync else [draw() for _ in range(share.stop)]',
     'codes = [draw() for _ in range(share.stop)] if sync else [z_sync] * share.stop', SMP),
    ('S02', S, 'g = torch.Generator().manual_seed(seed)',
     'g = torch.Generator().manual_seed(0)', SMP),
    ('S03', S, 'return torch.randn(n_samples, cfg.model.nz, generator=g)',
     'return torch.randn(n_samples, cfg.model.nz)', SMP),
    ('S04', S, 'sample_columns(model, A, B, codes[i], encode=encode)',
     'sample_columns(model, A, B, codes[i], encode=True)', SMP),
    ('S06', S, 'B = batch["B"].to(model.device) if "B" in batch else None',
     'B = None', SMP),
    ('S07', S, 'if i < GRID_ROWS else None',
     'if i <= GRID_ROWS else None', SMP),
    ('S08', S, '[rel for row in rows for _, rel in row["images"]]',
     '[rel for row in rows[1:] for _, rel in row["images"]]', SMP),
    ('S09', S, 'else default_out(checkpoint, results_name(root, ph, cfg.data.dataroot), sync)',
     'else default_out(checkpoint, results_name(root, ph, cfg.data.dataroot))', SMP),
    ('S10', S, 'spread_z(n_samples, cfg.model.nz, int(torch.randint(2**62, (1,), generator=g)))',
     'spread_z(n_samples, cfg.model.nz, seed)', SMP),
    # the columns every command shows
    ('C01', C, 'cols.append(out(G(A_in, model.encode(B))))',
     'cols.append(out(G(A_in, model.encode(A))))', ALL),
    ('C02', C, '    was_training = model.training\n    model.eval()\n    try:',
     '    was_training = model.training\n    try:', ALL),
    ('C03', C, '    G = model.sampler\n    # A as the networks take it',
     '    G = model.G\n    # A as the networks take it', ALL),
    ('C04', C, 'else z[:, None].expand(-1, N, -1)',
     'else z[:1, None].expand(n, N, -1)', ALL),
    # evaluate
    ('E01', E, 'generator=torch.Generator().manual_seed(seed))',
     'generator=torch.Generator().manual_seed(0))', EVL),
    ('E02', E, 'z = z_all[[index[p] - share.start for p in take["paths"]]]',
     'z = z_all[:len(rows)]', EVL),
    ('E03', E, '(samples[:, 1:] - samples[:, :-1])',
     '(samples[:, 1:] - samples[:, :1])', EVL),
    ('E04', E, 'got["rec"].append((enc - B).abs()',
     'got["rec"].append((enc - A).abs()', EVL),
    ('E06', E, 'n_inputs = min(num, loader.num_samples)',
     'n_inputs = min(num - 1, loader.num_samples)', EVL),
    ('E08', E, 'got["real"].append(self._real_features(B, batch["samples"]))',
     'got["real"].append(self._real_features(A, batch["samples"]))', EVL),
    ('E10', E, 'if n.startswith("random") or n == "output"], 1)',
     'if n != "input"], 1)', EVL),
    ('E11', E, 'mine, _ = classify_palettes(A, enc.cpu()',
     'mine, _ = classify_palettes(A, B', EVL),
    ('E12', E, 'sample_columns(model, A, B, z if cfg.model.nz else None)',
     'sample_columns(model, A, B, None)', EVL),
    # interpolate
    ('I01', "engine/model.py", 'torch.sin((1 - t) * omega) / s * a + torch.sin(t * omega) / s * b',
     'torch.sin((1 - t) * omega) / s * b + torch.sin(t * omega) / s * a', INT),
    ('I02', IP, 'interp_z(codes[i], codes[i + 1], frames + 1, mode)',
     'interp_z(codes[i], codes[i + 1], frames + 1, "linear")', INT),
    ('I03', IP, 'frames + 1, mode)[:-1] for i',
     'frames + 1, mode)[1:] for i', INT),
    ('I04', IP, 'return torch.cat([*steps, codes[-1:]])',
     'return torch.cat(steps)', INT),
    ('I07', IP, 'model.encode(read[r]["B"].to(model.device)) for r in refs',
     'model.encode(read[r]["A"].to(model.device)) for r in refs', INT),
    ('I08', IP, '        was_training = model.training\n        model.eval()\n',
     '        was_training = model.training\n', INT),
    ('I09', IP, '    G = model.sampler\n',
     '    G = model.G\n', INT),
    ('I10', IP, 'chosen = list(range(segments + 1)) if refs is None',
     'chosen = list(range(segments)) if refs is None', INT),
    ('I12', IP, 'for _, p in row["images"] + row["wide"]])',
     'for _, p in row["images"]])', INT),
    # export
    ('X01', X, 'weights = state["ema"] if ema else state["nets"].get("G")',
     'weights = state["nets"].get("G")', EXP),
    ('X02', X, 'for k, v in checkpoint_or_model.sampler.state_dict().items()}',
     'for k, v in checkpoint_or_model.G.state_dict().items()}', EXP),
    ('X03', X, 'return G.eval(), cfg, data, source',
     'return G, cfg, data, source', EXP),
    # the grids' titles and enlargement
    ('C05', C, 'if tile_w <= LABEL_TILE:',
     'if tile_w < LABEL_TILE:', PG),
    ('C06', C, 'k = tile_w / LABEL_TILE',
     'k = tile_w // LABEL_TILE', PG),
    ('C07', C, 'round(LABEL_LINE * k)',
     'LABEL_LINE', PG),
    ('C08', C, 'round(LABEL_GAP * k)',
     'LABEL_GAP', PG),
    ('C09', C, 'load_default(size=round(10 * k))',
     'load_default(size=round(8 * k))', PG),
    ('C10', C, 'scale = max(1, -(-64 // max(h, 1)))',
     'scale = max(1, 64 // max(h, 1))', PG),
    ('C11', C, 'cw - gap, font)',
     'cw - gap)', PG),
    ('C12', C, 'draw.text((x0, k * line_h)',
     'draw.text((x0, k * LABEL_LINE)', PG),
    ('C13', C, 'title_h = line_h * max(',
     'title_h = LABEL_LINE * max(', PG),
    ('X04', X, 'diffs.append((got - G(*x)).abs().max().item())',
     'diffs.append((got - got).abs().max().item())', EXP),
    # opening a model and its data
    ('L01', K, '    if not training and not encoder_trained(state, cfg):',
     '    if training and not encoder_trained(state, cfg):', ALL),
    ('L03', CLI, 'return find_checkpoint(args.checkpoint, args.epoch)',
     'return find_checkpoint(args.checkpoint)', ALL),
    ('L04', L, '(name if ckpt.stem == "latest" else f"{name}_{ckpt.stem}")',
     'name', ALL),
    ('L05', L, 'root = dataroot or cfg.data.dataroot',
     'root = cfg.data.dataroot or dataroot', ALL),
    ('L06', L, 'return "val" if (Path(root) / "val").is_dir() else "test"',
     'return "test"', ALL),
    # evaluate's table: why an encoded line is '-' (no encoder E, or no B images), as the result records it
    ('EM01', E, 'if not has_enc and ("l1" in chosen or "palette" in chosen):',
     'if not has_enc:', ENC),
    ('EM02', E, '"no encoder E" if self.model.E is None else "no B images"',
     '"no B images" if self.model.E is None else "no encoder E"', ENC),
    ('EM03', E, "NO_ENCODED.get(r.get('encoded_missing'), NO_ENCODED_EITHER)",
     "NO_ENCODED_EITHER", ENC),
    ('EM04', E, 'elif "l1" in r.get("metrics", ()):',
     'elif False:', ENC),
    ('EM05', E, 'if "encoded_palette_match" in r or "encoded_missing" in r:',
     'if "encoded_palette_match" in r:', ENC),
]

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], MUTANTS, EQUIVALENT, SKIP, "mutation-commands"))
