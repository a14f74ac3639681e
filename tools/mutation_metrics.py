"""Hand-written mutants of the paper's metrics: LPIPS diversity, FID, the demo's palette classifier
and coverage, and how `evaluate` feeds them (results and survivors: docs/mutation-engine.md, "The
metrics: LPIPS, FID and palette coverage"). Each is a mistake that would silently publish a wrong
number: a normalisation, a constant, an axis, a pair, a covariance, a sign, a resize, a threshold.

The runner is tools/mutation_loop.py's (one textual replacement per mutant, the selected tests in
a fresh `pytest -x`, the file restored from git; it refuses to start with uncommitted changes in
the files it mutates):

    .venv/bin/python tools/mutation_metrics.py            # every mutant (about 8 min on 2 cores)
    .venv/bin/python tools/mutation_metrics.py FD06 PC13  # some of them

One JSON line per mutant goes to build/mutation-metrics/results.jsonl. Exit status 1 when a
mutant survived (the equivalent ones aside) or could not be judged.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_loop import run  # noqa: E402

L, F, P, E = "engine/metrics/lpips.py", "engine/metrics/fid.py", "engine/metrics/palette.py", "engine/evaluate.py"
MT = ["tests/test_metrics.py", "tests/test_metrics_reference.py"]
PL = ["tests/test_demo.py", "tests/test_metrics.py"]
EV = MT
# Survivors that no test can kill (docs/mutation-engine.md says why): not counted against the run.
EQUIVALENT = {"FD15", "PC06", "PC09", "PC17"}
# Left out of every run: tests of other commands and of the demo data's generation.
SKIP = ("not export and not serve_ and not interpolate_ and not download and not deterministic and not layout"
        " and not stale and not shade and not rejects_bad and not shape_size and not resume and not train")

# (id, file, original text, mutant text, tests)
MUTANTS = [
    # LPIPS (Zhang et al. 2018, AlexNet-lin)
    ('LP01', L, '_SHIFT = (-0.030, -0.088, -0.188)',
     '_SHIFT = (-0.030, -0.088, 0.188)', MT),
    ('LP02', L, '_SCALE = (0.458, 0.448, 0.450)',
     '_SCALE = (0.448, 0.458, 0.450)', MT),
    ('LP03', L, 'x = (x - self.shift) / self.scale',
     'x = (x + self.shift) / self.scale', MT),
    ('LP04', L, 'if self.version == "0.1":',
     'if self.version == "0.0":', MT),
    ('LP05', L, 'f / (f.square().sum(1, keepdim=True).sqrt() + _EPS)',
     'f / (f.square().sum(1, keepdim=True) + _EPS)', MT),
    ('LP06', L, 'f / (f.square().sum(1, keepdim=True).sqrt() + _EPS)',
     'f / (f.square().sum((2, 3), keepdim=True).sqrt() + _EPS)', MT),
    ('LP07', L, 'return [f / (f.square().sum(1, keepdim=True).sqrt() + _EPS) for f in feats]',
     'return list(feats)', MT),
    ('LP08', L, '_EPS = 1e-10',
     '_EPS = 1e-3', MT),
    ('LP09', L, 'F.conv2d((a - b).square(), w).mean((2, 3))',
     '(a - b).square().sum(1, keepdim=True).mean((2, 3))', MT),
    ('LP10', L, 'F.conv2d((a - b).square(), w).mean((2, 3))',
     'F.conv2d((a - b).square(), w).sum((2, 3))', MT),
    ('LP11', L, 'for a, b, w in zip(f0, f1, self.lins)',
     'for a, b, w in zip(f0[:4], f1[:4], self.lins)', MT),
    ('LP12', L, 'F.conv2d((a - b).square(), w)',
     'F.conv2d((a - b).abs(), w)', MT),
    ('LP13', L, '_TAPS = (1, 4, 7, 9, 11)',
     '_TAPS = (0, 3, 6, 8, 10)', MT),
    ('LP14', L, 'return list(itertools.combinations(range(n), 2))',
     'return list(itertools.combinations_with_replacement(range(n), 2))', MT),
    ('LP15', L, 'return [(i, i + 1) for i in range(n - 1)]',
     'return [(i, (i + 1) % n) for i in range(n)]', MT),
    ('LP16', L, 'else _package_linear(version)',
     'else _package_linear("0.1")', MT),
    ('LP17', L, 'nn.MaxPool2d(3, 2),\n            nn.Conv2d(64, 192',
     'nn.AvgPool2d(3, 2),\n            nn.Conv2d(64, 192', MT),
    # FID (Heusel et al. 2017, as pytorch-fid computes it)
    ('FD01', F, 'mode="bilinear", align_corners=False)',
     'mode="nearest")', MT),
    ('FD02', F, 'mode="bilinear", align_corners=False)',
     'mode="bilinear", align_corners=True)', MT),
    ('FD03', F, '        x = 2 * x - 1\n',
     '', MT),
    ('FD04', F, 'count_include_pad=False',
     'count_include_pad=True', MT),
    ('FD05', F, 'self.Mixed_7c = InceptionE(2048, max_pool=True)',
     'self.Mixed_7c = InceptionE(2048, max_pool=False)', MT),
    ('FD06', F, '        return x.mean((2, 3))\n',
     '        return x.amax((2, 3))\n', MT),
    ('FD07', F, 'x = part.to(dev).float() / 255',
     'x = part.to(dev).float() / 127.5 - 1', MT),
    ('FD08', F, 'return mean, cov / (len(f) - 1)',
     'return mean, cov / len(f)', MT),
    ('FD09', F, '- 2 * tr_covmean)\n\n\ndef fid_from_features',
     '+ 2 * tr_covmean)\n\n\ndef fid_from_features', MT),
    ('FD10', F, 'return (v * np.sqrt(np.clip(w, 0, None))) @ v.T',
     'return (v * np.sqrt(np.clip(w, 0, None))) @ v', MT),
    ('FD11', F, 'return float(diff @ diff + np.trace(s1) + np.trace(s2)',
     'return float(diff @ diff + np.trace(s1) + np.trace(s1)', MT),
    ('FD12', F, 'return float(diff @ diff + np.trace(s1)',
     'return float(np.sqrt(diff @ diff) + np.trace(s1)', MT),
    ('FD13', F, 'tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()',
     'tr_covmean = np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None).sum()', MT),
    ('FD14', F, 'compute_uv=False).sum() / np.sqrt(na * nb)',
     'compute_uv=False).sum() / np.sqrt(len(a) * len(b))', MT),
    ('FD15', F, 'if min(len(a), len(b)) > a.shape[1]:',
     'if max(len(a), len(b)) > a.shape[1]:', MT),
    ('FD16', F, 'xa, xb = a - a.mean(0), b - b.mean(0)',
     'xa, xb = a - a.mean(0), b', MT),
    ('FD17', F, '(xa * xa).sum() / na',
     '(xa * xa).sum() / len(a)', MT),
    # the demo's palette classifier and coverage
    ('PC01', P, 'return (t + 1) / 2  # [-1, 1] -> [0, 1]',
     'return t  # [-1, 1] -> [0, 1]', PL),
    ('PC02', P, '<= (1.5 * max_dist) ** 2',
     '<= (1.5 * max_dist)', PL),
    ('PC03', P, 'valid = (ok & (score <= max_dist)',
     'valid = (ok & (score <= 1.5 * max_dist)', PL),
    ('PC04', P, '             & (purity(in_mask, pal[k, 1]) >= min_purity)\n',
     '', PL),
    ('PC05', P, '& ((bg_col - in_col).norm(dim=1) >= min_contrast))',
     ')', PL),
    ('PC06', P, 'k = torch.argmin((d_bg.square() + d_in.square()).nan_to_num',
     'k = torch.argmin((d_bg.square()).nan_to_num', PL),
    ('PC07', P, 'score = torch.maximum(d_bg[rows, k], d_in[rows, k])',
     'score = torch.minimum(d_bg[rows, k], d_in[rows, k])', PL),
    ('PC08', P, 'return torch.nanmedian(flat.masked_fill(~m, float("nan")), dim=2).values',
     'return torch.nanmean(flat.masked_fill(~m, float("nan")), dim=2)', PL),
    ('PC09', P, 'outline = a.mean(1) < outline_level',
     'outline = a.amin(1) < outline_level', PL),
    ('PC10', P, 'for r in range(band, -1, -1):',
     'for r in range(band, 0, -1):', PL),
    ('PC11', P, '"coverage": float(np.mean(distinct)) / n_palettes',
     '"coverage": float(np.mean(distinct)) / DEFAULT_N_PALETTES', PL),
    ('PC12', P, 'distinct = [len(set(p.tolist()) - {-1})',
     'distinct = [len(set(p.tolist()))', PL),
    ('PC13', P, '"validity": float(len(valid)) / len(idx)',
     '"validity": float(len(valid)) / len(groups)', PL),
    ('PC14', P, '"histogram": torch.bincount(valid, minlength=n_palettes)',
     '"histogram": torch.bincount(idx.clamp(min=0), minlength=n_palettes)', PL),
    ('PC15', P, 'pal = torch.from_numpy(PALETTES[:n_palettes]',
     'pal = torch.from_numpy(PALETTES[:]', PL),
    ('PC17', P, 'inside = ~background & ~outline',
     'inside = ~background', PL),
    ('PC18', P, "                & ~ok)\n",
     "                )\n", PL),
    ('PC16', P, '(purity(bg_mask, pal[k, 0]) >= min_purity)',
     '(purity(bg_mask, pal[k, 0]) >= 0.5)', PL),
    # evaluate: what the metrics are fed and how they are averaged
    ('EV01', E, 'f = lp.features(_quantised(row).float() / 127.5 - 1)',
     'f = lp.features(_quantised(row).float() / 255)', EV),
    ('EV02', E, 'q = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)',
     'q = ((x.float().clamp(-1, 1) + 1) * 127.5).to(torch.uint8)', EV),
    ('EV03', E, 'result["diversity_lpips"] = d.mean().item() if len(d) else None',
     'result["diversity_lpips"] = d.sum().item() / seen if len(d) else None', EV),
    ('EV04', E, '[t[pairs[:, 1]] for t in f]',
     '[t[pairs[:, 0]] for t in f]', EV),
    ('EV05', E, 'got["fake"].append(inception_features(inception, _quantised(samples.flatten(0, 1))))',
     'got["fake"].append(inception_features(inception, _quantised(samples[:, 0])))', EV),
    ('EV06', E, 'got["div"].append((samples[:, 1:] - samples[:, :-1]).abs().mean(dim=(1, 2, 3, 4))',
     'got["div"].append((samples[:, 1:] - samples[:, :-1]).abs().mean(dim=(2, 3, 4)).sum(1)', EV),
    ('EV07', E, 'idx, _ = classify_palettes(A, samples.flatten(0, 1).cpu(), a_index=of_input, n_palettes=K)',
     'idx, _ = classify_palettes(A, samples.flatten(0, 1).cpu(), a_index=of_input)', EV),
    ('EV08', E, 'result["encoded_palette_match"] = float(joined("palette_enc").float().mean())',
     'result["encoded_palette_match"] = float(joined("palette_enc").float().sum())', EV),
    ('EV09', E, '"std": d.std(correction=0).item() if len(d) else 0.0}',
     '"std": d.std().item() if len(d) > 1 else 0.0}', EV),
    ('EV10', E, 'pairs = torch.tensor(sample_pairs(samples.shape[1], self.lpips_pairs)',
     'pairs = torch.tensor(sample_pairs(samples.shape[1] - 1, self.lpips_pairs)', EV),
    ('EV11', E, "f'{100 * c / total:.0f}'",
     "f'{100 * c / max(counts):.0f}'", EV),
]

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], MUTANTS, EQUIVALENT, SKIP, "mutation-metrics"))
