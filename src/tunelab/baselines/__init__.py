"""Non-deep reference models, fitted on the same splits as a config, to tell whether deep tuning paid off."""

from __future__ import annotations

from tunelab.baselines.minirocket import ReferenceResult, fit_minirocket, minirocket_available, reference_row

__all__ = ["ReferenceResult", "fit_minirocket", "minirocket_available", "reference_row"]
