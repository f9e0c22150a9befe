"""The one formatter of pydantic validation errors: a line naming the file, the dotted key and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from tunelab.config.base import ModelConfig
from tunelab.registry import MODELS, closest

__all__ = ["format_validation_error"]

#: pydantic's tags for union members and containers: not keys the user wrote
_TAGS = {
    "constrained-str",
    "str",
    "int",
    "float",
    "bool",
    "none",
    "ParamSpec",
    "list[...]",
    "dict[str,...]",
    "list[union[bool,int,float,str,none]]",
    "literal['all']",
}


def _fields_at(cls: type[BaseModel], loc: tuple[Any, ...] | list[Any], data: Any) -> list[str]:
    """Valid keys of the config section at ``loc`` (for 'did you mean')."""
    for part in loc:
        field = cls.model_fields.get(str(part))
        if field is None:
            return []
        data = data.get(part, {}) if isinstance(data, dict) else {}
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, ModelConfig):  # a model section: its family's fields
            name = data.get("name", "gru") if isinstance(data, dict) else "gru"
            ann = MODELS.get(name).config if name in MODELS else ModelConfig
        sub = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not sub:
            return []
        cls = sub[0]
    return list(cls.model_fields)


def format_validation_error(
    err: ValidationError,
    source: str,
    root: type[BaseModel],
    data: Any,
    *,
    hint: Callable[[list[str]], str] | None = None,
    limit: int = 3,
    show_input: bool = True,
) -> str:
    """One line naming the file, the dotted key and the fix, for at most ``limit`` errors.

    ``hint`` maps the location of an unknown key to a ' (did you mean ...)' suffix; by default
    the valid keys of the section under ``root`` are searched.  Dict keys such as a study's
    parameter names are kept verbatim, so 'space.train.lr.low' reads as the user wrote it.
    """
    parts = []
    for e in err.errors()[:limit]:
        loc = [str(p) for p in e["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p in _TAGS))]
        key = ".".join(loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            if hint is not None:
                suffix = hint(loc)
            else:
                valid = _fields_at(root, loc[:-1], data)
                suffix = closest(loc[-1], valid) if valid else ""
            parts.append(f"unknown key '{key}'{suffix}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = repr(e.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."  # a missing key's "input" is its whole section
            shown = show_input and e["type"] != "missing"
            parts.append(f"{key}: {msg}" + (f" (got {got})" if shown else ""))
    more = f" (+{len(err.errors()) - limit} more)" if len(err.errors()) > limit else ""
    return f"{source}: " + "; ".join(parts) + more
