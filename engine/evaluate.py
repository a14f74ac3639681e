"""`evaluate`: measures of a trained model on a test split.

On the built-in demo data (a palettes.json beside the images) the modes are known: for each test
input and n random z, which of the K palettes each output shows (coverage, validity; see
metrics/palette.py) and whether the encoded output G(A, E(B)) keeps B's palette. On any data:
diversity (mean L1 between consecutive random-z outputs of one input, [-1, 1] units) and the L1
of the encoded reconstruction.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from bicyclegan.pipelines import DatasetError

from .errors import DivergenceError
from .images import sample_columns
from .metrics import classify_palettes, palette_coverage
from .runtime import build_loader, data_root_for, open_model


def _palette_info(root: Path, phase: str):
    f = root / phase / "palettes.json"
    return json.loads(f.read_text()) if f.is_file() else None


@torch.no_grad()
def evaluate(model, dataroot=None, *, phase: str = "test", n_samples: int = 10, num: int = 100,
             seed: int = 0, device: str = "auto", batch_size: int = 16) -> dict:
    """Evaluate `model` (a BicycleGAN or a checkpoint path) on up to `num` inputs of dataroot/phase
    (default: the data it was trained on) with n_samples random z each (drawn from `seed`)."""
    model = open_model(model, device)
    if bad := model.nonfinite():
        raise DivergenceError(f"the model holds non-finite weights ({bad}); evaluate a checkpoint from before "
                              f"training diverged")
    cfg = model.cfg
    root = data_root_for(cfg, dataroot)
    info = _palette_info(root, phase)
    loader = build_loader(cfg.model, cfg.data, root, phase, device=model.device, batch_size=batch_size,
                          shuffle=False, augment=False)
    g = torch.Generator().manual_seed(seed)
    As, outs, Bs, encs = [], [], [], []
    div_sum, rec_sum, seen = 0.0, 0.0, 0
    for batch in loader:
        if seen >= num:
            break
        A = batch["A"][: num - seen].to(model.device)
        B = batch.get("B")
        B = None if B is None else B[: A.shape[0]].to(model.device)
        z = torch.randn(A.shape[0], n_samples, cfg.model.nz, generator=g).to(model.device)
        cols, names = sample_columns(model, A, B, z if cfg.model.nz else None)
        samples = torch.stack([c for c, n in zip(cols, names) if n.startswith("random") or n == "output"], 1)
        if not torch.isfinite(samples).all():
            raise DivergenceError("the model's outputs are not finite: it cannot be evaluated")
        if samples.shape[1] > 1:
            div_sum += (samples[:, 1:] - samples[:, :-1]).abs().mean(dim=(1, 2, 3, 4)).sum().item()
        if B is not None:
            Bs.append(B.cpu())
            if "encoded" in names:
                enc = cols[names.index("encoded")]
                rec_sum += (enc - B).abs().mean(dim=(1, 2, 3)).sum().item()
                encs.append(enc.cpu())
        As.append(A.cpu())
        outs.append(samples.cpu())
        seen += A.shape[0]
    if not seen:
        raise DatasetError(f"{root}/{phase}: no images to evaluate")
    n_out = outs[0].shape[1]
    result = {"variant": cfg.variant, "dataroot": str(root), "phase": phase, "n_inputs": seen,
              "n_samples": n_out, "seed": seed,
              "diversity_l1": div_sum / seen if n_out > 1 else 0.0}
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
    """The results as aligned "name  value" lines, for the terminal."""
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
