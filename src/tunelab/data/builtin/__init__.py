"""Built-in datasets; importing this package registers them in ``tunelab.registry.DATASETS``."""

from __future__ import annotations

from tunelab.data.builtin.japanese_vowels import load_japanese_vowels
from tunelab.data.builtin.synthetic import synthetic_denoise, synthetic_gestures, synthetic_regression

__all__ = ["load_japanese_vowels", "synthetic_denoise", "synthetic_gestures", "synthetic_regression"]
