"""What each registered dataset holds (for ``tunelab datasets``): size, channels, lengths, task."""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.data.base import SequenceData
from tunelab.errors import UserError
from tunelab.registry import DATASETS

__all__ = ["DatasetInfo", "describe", "describe_datasets"]


@dataclass(frozen=True)
class DatasetInfo:
    """The shape of one dataset as loaded with its default options."""

    name: str
    doc: str
    task: str
    n: int
    channels: int
    min_len: int
    max_len: int
    classes: int
    outputs: int
    split: str  # "270/370" (official train/test) or "" (split by data.test_fraction)
    note: str = ""


def describe(data: SequenceData, name: str, doc: str = "") -> DatasetInfo:
    """Summarise a loaded dataset."""
    split = ""
    if data.split is not None:
        n_test = int((data.split == 1).sum())
        split = f"{len(data) - n_test}/{n_test}"
    return DatasetInfo(
        name=name,
        doc=doc,
        task=data.meta.task,
        n=len(data),
        channels=data.meta.channels,
        min_len=int(data.lengths.min()),
        max_len=int(data.lengths.max()),
        classes=data.meta.n_classes,
        outputs=data.meta.out_dim,
        split=split,
    )


def describe_datasets(names: list[str] | None = None) -> list[DatasetInfo]:
    """Describe the registered datasets (all, or ``names``), each loaded with its default options."""
    infos = []
    for name in names or DATASETS.names():
        entry = DATASETS.get(name)  # an unknown name raises the UserError with suggestions
        try:
            infos.append(describe(entry.fn(), name, entry.doc))
        except (UserError, TypeError) as exc:  # a plugin dataset that needs options
            infos.append(DatasetInfo(name, entry.doc, "?", 0, 0, 0, 0, 0, 0, "", note=str(exc)))
    return infos
