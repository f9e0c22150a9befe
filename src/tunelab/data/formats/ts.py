"""The UEA/UCR ``.ts`` text format (sktime/aeon "ts" files).

Layout: ``#`` comment lines; header tags ``@problemName``, ``@timeStamps``, ``@missing``,
``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel true <labels>``
(or ``false``) or ``@targetLabel true`` (regression); then ``@data`` and one case per line:
channels separated by ``:``, values by ``,``, the label last; ``?`` (or NaN) marks a missing
value.  Variable-length cases simply have more or fewer values.  Timestamped files
(``@timeStamps true``) are not supported.

Our own small parser rather than aeon's: it has no optional dependency, keeps variable lengths,
and names the line of a malformed case.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunelab.data.assemble import assemble
from tunelab.data.base import SequenceData
from tunelab.errors import UserError

__all__ = ["TsFile", "load_ts", "read_ts"]

log = logging.getLogger(__name__)

BOOL_TAGS = ("timestamps", "missing", "univariate", "equallength")
KNOWN_TAGS = (*BOOL_TAGS, "problemname", "dimensions", "dimension", "serieslength", "classlabel", "targetlabel", "data")


@dataclass
class TsFile:
    """The parsed content of one ``.ts`` file."""

    path: Path
    problem: str
    seqs: list[np.ndarray]
    labels: list[str]
    lines: list[int]  # the file line of each case, for messages
    task: str  # classification | regression
    class_values: list[str] | None = None
    header: dict[str, str] = field(default_factory=dict)


def _bool(tag: str, rest: list[str], where: str) -> bool:
    if len(rest) != 1 or rest[0].lower() not in ("true", "false"):
        raise UserError(f"{where}: @{tag} needs true or false (got {' '.join(rest) or 'nothing'}); fix the header")
    return rest[0].lower() == "true"


def read_ts(path: str | Path) -> TsFile:
    """Parse a ``.ts`` file; every malformed header or case raises a UserError naming its line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"{p}: cannot read it ({exc.strerror}); check the path and permissions") from None
    header: dict[str, str] = {}
    class_values: list[str] | None = None
    task: str | None = None
    dims: int | None = None
    data_line = 0
    all_lines = text.splitlines()
    for lineno, raw in enumerate(all_lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{p}:{lineno}"
        if not line.startswith("@"):
            raise UserError(f"{where}: data before the @data tag; put @data on its own line before the first case")
        tag, *rest = line[1:].split()
        tag = tag.lower()
        if tag not in KNOWN_TAGS:
            log.warning("%s: unknown header tag @%s ignored", where, tag)
            continue
        if tag == "data":
            if rest:
                raise UserError(f"{where}: @data takes no value; put the first case on the next line")
            data_line = lineno
            break
        header[tag] = " ".join(rest)
        if tag in BOOL_TAGS:
            if _bool(tag, rest, where) and tag == "timestamps":
                raise UserError(f"{where}: timestamped .ts files are not supported; export the data without timestamps")
        elif tag in ("dimensions", "dimension", "serieslength"):
            if len(rest) != 1 or not rest[0].isdigit() or int(rest[0]) < 1:
                raise UserError(
                    f"{where}: @{tag} needs a positive integer (got {' '.join(rest) or 'nothing'}); fix the header"
                )
            if tag != "serieslength":
                dims = int(rest[0])
        elif tag == "classlabel":
            if _bool(tag, rest[:1], where):
                if len(rest) < 2:
                    raise UserError(
                        f"{where}: @classLabel true must list the class labels, e.g. '@classLabel true a b c'"
                    )
                class_values, task = rest[1:], "classification"
        elif tag == "targetlabel" and _bool(tag, rest, where):
            task = "regression"
    if not data_line:
        raise UserError(f"{p}: no @data line; a .ts file needs its header tags, then @data, then one case per line")
    if task is None:
        raise UserError(
            f"{p}: the header declares no labels; add '@classLabel true <labels>' (or '@targetLabel true') and a label per case"
        )
    seqs, labels, lines = [], [], []
    for lineno in range(data_line + 1, len(all_lines) + 1):
        line = all_lines[lineno - 1].strip()
        if not line or line.startswith("#"):
            continue
        seq, label = _parse_case(line, f"{p}:{lineno}", dims)
        seqs.append(seq)
        labels.append(label)
        lines.append(lineno)
    if not seqs:
        raise UserError(f"{p}: no cases after @data; add one case per line")
    return TsFile(p, header.get("problemname", p.stem), seqs, labels, lines, task, class_values, header)


def _parse_case(line: str, where: str, dims: int | None) -> tuple[np.ndarray, str]:
    *channels, label = line.split(":")
    if not channels:
        raise UserError(f"{where}: the case has no ':' before its label; write channels as 'v1,v2,...:v1,v2,...:label'")
    if dims is not None and len(channels) != dims:
        raise UserError(
            f"{where}: the case has {len(channels)} channels but @dimensions says {dims}; fix the case or the header"
        )
    label = label.strip()
    if not label or "," in label:
        raise UserError(f"{where}: the case has no label after its last ':'; add the label at the end of the line")
    values = []
    for c, chunk in enumerate(channels):
        try:
            values.append(
                [np.nan if v.strip() in ("?", "") or v.strip().lower() == "nan" else float(v) for v in chunk.split(",")]
            )
        except ValueError:
            bad = next(v for v in chunk.split(",") if not _is_float(v))
            raise UserError(
                f"{where}: channel {c} has the value {bad.strip()!r}, not a number; use numbers and '?' for missing"
            ) from None
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        raise UserError(
            f"{where}: the channels of this case have different lengths ({min(lengths)}..{max(lengths)} values); "
            "every channel of a case needs the same length (pad with '?')"
        )
    return np.asarray(values, dtype=np.float64).T, label


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return v.strip() in ("?", "") or v.strip().lower() == "nan"
    return True


def load_ts(path: str | Path, *, missing: str = "error", name: str | None = None) -> SequenceData:
    """Load one ``.ts`` file (no official split)."""
    ts = read_ts(path)
    return _assemble([ts], name or ts.problem, missing)


def load_ts_pair(train: Path, test: Path, *, missing: str = "error", name: str | None = None) -> SequenceData:
    """Load ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` as one dataset with their official split."""
    a, b = read_ts(train), read_ts(test)
    if a.task != b.task:
        raise UserError(f"{test}: declares {b.task} labels but {train.name} declares {a.task}; make the headers agree")
    dims = {s.shape[1] for s in a.seqs + b.seqs}
    if len(dims) > 1:
        raise UserError(
            f"{test}: has {b.seqs[0].shape[1]} channels but {train.name} has {a.seqs[0].shape[1]}; the two files must match"
        )
    return _assemble([a, b], name or a.problem, missing)


def _assemble(files: list[TsFile], name: str, missing: str) -> SequenceData:
    seqs = [s for f in files for s in f.seqs]
    labels = [v for f in files for v in f.labels]
    split = np.concatenate([np.full(len(f.seqs), k) for k, f in enumerate(files)]) if len(files) > 1 else None
    declared = None
    if files[0].class_values is not None:
        declared = list(dict.fromkeys(v for f in files for v in (f.class_values or [])))
    source = str(files[0].path) if len(files) == 1 else f"{files[0].path} + {files[1].path.name}"
    try:
        data = assemble(
            seqs, labels, source=source, name=name, task=files[0].task, split=split, missing=missing, what="case"
        )
    except UserError as exc:
        raise UserError(_with_line(str(exc), files)) from None
    if declared is not None:
        _check_declared(files, declared)
    return data


def _check_declared(files: list[TsFile], declared: list[str]) -> None:
    known = set(declared)
    for f in files:
        for label, lineno in zip(f.labels, f.lines, strict=True):
            if label not in known:
                raise UserError(
                    f"{f.path}:{lineno}: label {label!r} is not declared in @classLabel ({' '.join(declared)}); fix one of them"
                )


def _with_line(message: str, files: list[TsFile]) -> str:
    """Point a message about 'case i' at its file and line."""
    match = re.search(r"\bcase (\d+)\b", message)
    if not match:
        return message
    i = int(match.group(1))
    for f in files:
        if i < len(f.seqs):
            rest = message.split(": ", 1)[1] if ": " in message else message
            return f"{f.path}:{f.lines[i]}: " + rest.replace(match.group(0), "this case", 1)
        i -= len(f.seqs)
    return message
