"""What ``tunelab models`` shows: every family, its tunable fields, its size on a dataset.

Extract-then-render: this module returns plain records; the CLI draws them.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from tunelab.config import ModelConfig
from tunelab.data.base import DataMeta
from tunelab.errors import UserError
from tunelab.models.base import supported_tasks
from tunelab.registry import MODELS

__all__ = ["FamilyInfo", "FieldInfo", "dataset_meta", "describe_families", "field_infos", "type_name"]


@dataclass(frozen=True)
class FieldInfo:
    """One tunable field of a family's config."""

    name: str
    type: str
    default: Any
    kind: Literal["shape", "value"]  # shape fields change tensor shapes (part of a pack's key)
    description: str


@dataclass(frozen=True)
class FamilyInfo:
    """One registered model family and, for a dataset, its parameter count (None if it cannot build)."""

    name: str
    doc: str
    tasks: tuple[str, ...]
    fields: list[FieldInfo] = field(default_factory=list)
    n_params: int | None = None
    note: str = ""  # why no parameter count


def type_name(annotation: Any) -> str:
    """A short readable type: ``int``, ``float | None``, ``last|mean|attention``."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def field_infos(config_cls: type[ModelConfig]) -> list[FieldInfo]:
    """The tunable fields of a family config (all but ``name``), in declaration order."""
    out = []
    for name, info in config_cls.model_fields.items():
        if name == "name":
            continue
        extra = info.json_schema_extra
        kind: Literal["shape", "value"] = "shape" if isinstance(extra, dict) and extra.get("shape") else "value"
        out.append(FieldInfo(name, type_name(info.annotation), info.default, kind, info.description or ""))
    return out


def describe_families(meta: DataMeta | None = None, names: list[str] | None = None) -> list[FamilyInfo]:
    """Every registered family (or those in ``names``), with parameter counts for ``meta``."""
    import torch

    from tunelab.models import build_model, count_parameters

    infos = []
    for entry in MODELS:
        if names and entry.name not in names:
            continue
        cls = entry.config
        assert cls is not None, f"model {entry.name} was registered without a config class"
        n_params, note = None, ""
        if meta is not None:
            try:
                with torch.device("meta"):  # shapes only: no memory, no init cost
                    n_params = count_parameters(build_model(cls(), meta))
            except (UserError, ValueError) as exc:
                note = str(exc)
        infos.append(FamilyInfo(entry.name, entry.doc, supported_tasks(cls), field_infos(cls), n_params, note))
    return infos


def dataset_meta(name: str) -> DataMeta:
    """The metadata of a registered dataset, loaded with its default options (they are small)."""
    from tunelab.config import DataConfig
    from tunelab.data import load_dataset

    return load_dataset(DataConfig.model_validate({"name": name})).meta
