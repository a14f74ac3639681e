"""Measures of a trained model's outputs: palette coverage on the demo data (known modes), and
diversity and reconstruction distances on any data."""
from .palette import classify_palette, classify_palettes, palette_coverage

__all__ = ["classify_palette", "classify_palettes", "palette_coverage"]
