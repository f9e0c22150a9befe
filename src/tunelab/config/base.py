"""What every config section shares: strict models and the ``shape`` field marker.

Fields tagged ``shape`` decide tensor shapes (they form a trial pack's key); every other
field is a *value* parameter that may differ between members of one pack.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ModelConfig", "StrictModel", "shape"]


def shape(default: Any, description: str, **kw: Any) -> Any:
    """A field that changes tensor shapes (part of the pack key)."""
    return Field(default, description=description, json_schema_extra={"shape": True}, **kw)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ModelConfig(StrictModel):
    """Base of every model family's config; ``name`` picks the family from the registry."""

    name: str
