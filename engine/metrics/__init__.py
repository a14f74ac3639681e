"""Measures of a trained model's outputs: palette coverage on the demo data (known modes); LPIPS
(the paper's diversity measure) and FID (realism) on any data, with their networks in plain torch."""
from .fid import fid_from_features, frechet_distance, load_inception
from .lpips import load_lpips, sample_pairs
from .palette import classify_palette, classify_palettes, coverage_of, palette_coverage

__all__ = ["classify_palette", "classify_palettes", "coverage_of", "fid_from_features", "frechet_distance",
           "load_inception", "load_lpips", "palette_coverage", "sample_pairs"]
