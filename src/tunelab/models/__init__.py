"""Model families.  Each module registers its builders with ``tunelab.registry.MODELS``."""

from __future__ import annotations

from torch import nn

from tunelab.config import ModelConfig
from tunelab.data.base import DataMeta
from tunelab.models import (  # noqa: F401  (each module registers its families)
    bilstm_enhanced,
    conv_gru,
    fcn,
    gru,  # gru, lstm
    inception,
    resnet,
    tcn,
    transformer,
    unet1d,
)
from tunelab.models.base import check_task
from tunelab.registry import MODELS

__all__ = ["build_model", "count_parameters"]


def build_model(cfg: ModelConfig, meta: DataMeta) -> nn.Module:
    """Build the model of ``cfg.name`` for data described by ``meta``."""
    check_task(cfg, meta)
    return MODELS.get(cfg.name).fn(cfg, meta)  # type: ignore[no-any-return]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
