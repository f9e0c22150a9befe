"""The one parser of dotted overrides (``train.lr=3e-4``), from flags or a mapping."""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from tunelab.config.families import ALIASES, Family, resolve_family
from tunelab.errors import UserError
from tunelab.registry import MODELS

__all__ = ["apply_overrides", "parse_value", "split_override"]


def parse_value(text: str) -> Any:
    """Parse an override value: numbers (also 3e-4), booleans, null, lists, or a plain string."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
        if math.isfinite(value) or text.lower() in ("inf", "-inf"):
            return value
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def split_override(item: str) -> tuple[str, Any]:
    """``'train.lr=3e-4'`` → ``('train.lr', 0.0003)``; a malformed item is a one-line UserError."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override '{item}' must look like section.key=value, e.g. train.lr=3e-4")
    return key.strip(), parse_value(value.strip())


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted overrides (``train.lr=3e-4``) applied."""
    items = overrides.items() if isinstance(overrides, dict) else [split_override(o) for o in overrides]
    out = json.loads(json.dumps(data))
    for key, value in items:
        node = out
        *head, last = key.split(".")
        for part in head:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {} if nxt is None else nxt
            if not isinstance(nxt, dict):
                raise UserError(f"override '{key}': '{part}' is not a section")
            node = nxt
        node[last] = value
        if key == "model.name":  # a new family starts from its own defaults, keeping shared keys
            family = alias(value) if isinstance(value, str) and value not in MODELS else None
            if family is not None:  # an alias names a family and the model.* values it fixes
                node[last] = family.name
                for fixed_key, fixed in family.fixed.items():
                    node[fixed_key.removeprefix("model.")] = fixed
            _prune_model_keys(out)
    return out


def alias(name: str) -> Family | None:
    """The family a seed alias names (``bigru`` → gru, bidirectional), or None for a name that is no alias."""
    return resolve_family(name) if name in ALIASES else None


def _prune_model_keys(data: dict[str, Any]) -> None:
    model = data.get("model")
    if isinstance(model, dict) and model.get("name") in MODELS:
        valid = MODELS.get(model["name"]).config.model_fields  # type: ignore[union-attr]
        data["model"] = {k: v for k, v in model.items() if k in valid}
