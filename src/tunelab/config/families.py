"""Model families as the tuner sees them: a registered model plus fixed settings.

A *family label* is what a user types (``--model gru,bilstm``): a registered model name, or one
of seed 000's names (``bilstm`` with ``--enhanced/--standard``, ``temporalcnn``).  A label
resolves to the registered model and the ``model.*`` values it fixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunelab.errors import UserError
from tunelab.registry import MODELS, closest

__all__ = ["ALIASES", "SEED000_FAMILIES", "Family", "check_family", "resolve_family"]


@dataclass(frozen=True)
class Family:
    """A label, the registered model it builds, and the ``model.*`` values it fixes."""

    label: str
    name: str
    fixed: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        """Dotted overrides selecting this family (model.name first)."""
        return {"model.name": self.name, **self.fixed}


def _variant(name: str, kind: str) -> dict[str, Any]:
    """The ``model.*`` values a registered model's variant fixes (the model registers them)."""
    return {f"model.{k}": v for k, v in MODELS.get(name).variants[kind].items()}


#: Seed names → (registered model, what they fix).  Resolved lazily (the models may be plugins).
ALIASES: dict[str, tuple[str, str | None]] = {
    "bilstm": ("bilstm_enhanced", None),  # the enhanced model: its switches stay tunable
    "enhanced_bilstm": ("bilstm_enhanced", None),
    "bilstm_standard": ("bilstm_enhanced", "standard"),
    "standard_bilstm": ("bilstm_enhanced", "standard"),
    "temporalcnn": ("tcn", None),
    "temporal_cnn": ("tcn", None),
    "bigru": ("gru", "bidirectional"),
}
#: seed 000's --auto-tune-all: standard BiLSTM, enhanced BiLSTM, transformer, temporal CNN.
SEED000_FAMILIES = ["bilstm_standard", "bilstm_enhanced", "transformer", "tcn"]


def resolve_family(label: str) -> Family:
    """The family a label names; unknown labels raise a UserError with a suggestion."""
    if label in ALIASES:
        name, variant = ALIASES[label]
        if variant == "standard":  # every enhancement fixed off
            return Family(label, name, _variant(name, variant))
        if variant == "bidirectional":
            return Family(label, name, {"model.bidirectional": True})
        return Family(label, name)
    if label in MODELS:
        return Family(label, label)
    choices = MODELS.names() + sorted(ALIASES)
    raise UserError(f"unknown model family '{label}'{closest(label, choices)}; choose from: {', '.join(choices)}")


def check_family(label: str) -> str:
    """Validate a label (ValueError for pydantic validators)."""
    try:
        resolve_family(label)
    except UserError as exc:
        raise ValueError(str(exc)) from None
    return label
