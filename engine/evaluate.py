"""Evaluation without pretrained networks.

On the built-in demo data (a palettes.json beside the images) the answer's modes are known: for each
test input and n random z we ask which of the K palettes every output shows, and report
coverage (mean distinct valid palettes per input / K), validity (fraction of outputs showing a
palette at all), and whether the encoded output G(A, E(B)) reproduces B's palette.
On any data: diversity (mean L1 between consecutive random-z outputs, [-1, 1] units) and the L1
of the encoded reconstruction. (LPIPS/FID need downloaded weights; not used here.)
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .model import BicycleGAN
from .trainer import build_loader, pick_device


def _palette_info(root: Path, phase: str):
    f = root / phase / "palettes.json"
    return json.loads(f.read_text()) if f.is_file() else None


@torch.no_grad()
def evaluate(model: BicycleGAN, data_root, cfg: TrainConfig, phase: str = "test", n_samples: int = 10,
             num: int = 100, seed: int = 0) -> dict:
    from bicyclegan.pipelines import classify_palettes, palette_coverage
    data_root = Path(data_root)
    info = _palette_info(data_root, phase)
    was_training = model.training
    model.eval()
    loader = build_loader(cfg, data_root, phase, model.device, batch_size=16, shuffle=False)
    g = torch.Generator().manual_seed(seed)
    As, outs, Bs, encs = [], [], [], []
    div_sum, rec_sum, seen = 0.0, 0.0, 0
    for batch in loader:
        if seen >= num:
            break
        A = batch["A"][: num - seen].to(model.device)
        B = batch.get("B")
        z = torch.randn(n_samples, A.shape[0], cfg.model.nz, generator=g).to(model.device)
        samples = torch.stack([model.G(A, z[k]) for k in range(n_samples)], 1)  # N x n x C x H x W
        if n_samples > 1:
            div_sum += (samples[:, 1:] - samples[:, :-1]).abs().mean(dim=(1, 2, 3, 4)).sum().item()
        if B is not None:
            B = B[: A.shape[0]].to(model.device)
            Bs.append(B.cpu())
            if model.E is not None:
                enc = model.G(A, model.encode(B))
                rec_sum += (enc - B).abs().mean(dim=(1, 2, 3)).sum().item()
                encs.append(enc.cpu())
        As.append(A.cpu())
        outs.append(samples.cpu())
        seen += A.shape[0]
    model.train(was_training)
    if not seen:
        raise ValueError(f"{data_root}/{phase}: no images to evaluate")
    result = {"variant": cfg.variant, "n_inputs": seen, "n_samples": n_samples,
              "diversity_l1": div_sum / seen if n_samples > 1 else 0.0}
    if encs:
        result["encoded_l1"] = rec_sum / seen
    if info is not None:
        K = info["n_palettes"]
        A_all, out_all = torch.cat(As), torch.cat(outs)
        result.update(palette_coverage(A_all, list(out_all), n_palettes=K))
        if encs:
            want, _ = classify_palettes(A_all, torch.cat(Bs), n_palettes=K)
            got, _ = classify_palettes(A_all, torch.cat(encs), n_palettes=K)
            result["encoded_palette_match"] = float((got == want).float().mean())
    return result


def format_table(r: dict) -> str:
    rows = [("variant", r["variant"]), ("inputs x samples", f"{r['n_inputs']} x {r['n_samples']}")]
    if "coverage" in r:
        K = r["n_palettes"]
        rows += [("palette coverage", f"{r['coverage']:.3f}  ({r['coverage'] * K:.2f} of {K} palettes per input)"),
                 ("validity", f"{r['validity']:.3f}"),
                 ("palette histogram", " ".join(map(str, r["histogram"])))]
        if "encoded_palette_match" in r:
            rows.append(("encoded keeps B's palette", f"{r['encoded_palette_match']:.3f}"))
    rows.append(("diversity (L1 between samples)", f"{r['diversity_l1']:.4f}"))
    if "encoded_l1" in r:
        rows.append(("encoded reconstruction L1", f"{r['encoded_l1']:.4f}"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def run_evaluate(args) -> int:
    from .sample_cli import data_root_for
    model = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    root = data_root_for(model, args.dataroot)
    r = evaluate(model, root, model.cfg, args.phase, args.n_samples, args.num, args.seed)
    print(format_table(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0
