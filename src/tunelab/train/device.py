"""Device choice and seeding."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

__all__ = ["resolve_device", "seed_everything"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda > mps > cpu; an unavailable explicit device falls back to CPU with a warning."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        log.warning("device %s requested but CUDA is not available; using cpu", name)
        return torch.device("cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        log.warning("device mps requested but MPS is not available; using cpu")
        return torch.device("cpu")
    return dev


def seed_everything(seed: int) -> None:
    """One seed drives python, numpy and torch (CPU and CUDA) randomness."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
