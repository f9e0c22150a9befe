"""Atomic file writes and safe checkpoints.

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed, so a
crash or kill leaves either the old file or the new one, never half of one.  Checkpoints hold a
state_dict and the resolved config as plain data and load with ``weights_only=True``: nothing is
ever unpickled.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from tunelab.errors import UserError

__all__ = [
    "append_jsonl",
    "atomic_write",
    "load_checkpoint",
    "read_json",
    "save_checkpoint",
    "write_json",
    "write_text",
]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` through ``write(fileobj)`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give it the mode open() would, so teammates can read a study
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask, read without changing it where the OS says it (Linux), since setting it
    to read it would race with other threads creating files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def write_json(path: str | Path, data: Any, *, indent: int | None = 2) -> Path:
    """``data`` as JSON; ``indent=None`` for large files (one line, written by json's C encoder,
    which ``indent`` turns off: about 10x faster)."""
    return write_text(path, json.dumps(data, indent=indent, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line.  A line is written with one write() call and flushed, so a kill can
    cut at most the last line, which readers skip."""
    line = json.dumps(record, default=_jsonable) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_checkpoint(
    path: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any], extra: dict[str, Any] | None = None
) -> Path:
    """Save weights + the resolved config (as JSON text) atomically; ``extra``'s tensors (a dict of
    them under ``"outputs"``) are saved as tensors, the rest as JSON."""
    extra = dict(extra or {})
    outputs = extra.pop("outputs", None)
    payload = {
        "format": "tunelab-checkpoint-1",
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config_json": json.dumps(config),
        "extra_json": json.dumps(extra, default=_jsonable),
        **({"outputs": {k: v.detach().cpu() for k, v in outputs.items()}} if outputs else {}),
    }
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Load (state_dict, config dict, extra dict); refuse anything that is not a tunelab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; pass a run directory or a .pt file written by tunelab")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns (several lines) about a foreign file's pickle protocol
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refuses pickled objects: never unpickle them
        # torch's own message advises re-running with weights_only=False: the one thing not to do
        raise UserError(
            f"{path}: not a tunelab checkpoint (refused to load it safely: tunelab loads tensors and plain data only, "
            "never pickled objects); use a best_model.pt or run directory written by tunelab"
        ) from None
    except Exception as exc:  # not a torch file at all: a zip or read error
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path}: not a tunelab checkpoint (unreadable: {first}); use a best_model.pt or run directory written by tunelab"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "tunelab-checkpoint-1":
        raise UserError(
            f"{path}: not a tunelab checkpoint (no tunelab format marker); use a best_model.pt or run directory from tunelab"
        )
    extra = json.loads(payload.get("extra_json", "{}"))
    if isinstance(payload.get("outputs"), dict):
        extra["outputs"] = payload["outputs"]
    return payload["state_dict"], json.loads(payload["config_json"]), extra
