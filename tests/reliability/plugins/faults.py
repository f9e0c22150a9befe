"""Test-only plugin (``--plugin tests/reliability/plugins/faults.py``): makes faults reproducible.

* ``TUNELAB_TEST_SLOW_WRITES=<seconds>``: every atomic artifact write writes half of its bytes to
  the temporary file, sleeps, then writes the rest, so a kill can land while a file is half-written.
* model ``oom_gru``: a GRU whose forward raises ``torch.cuda.OutOfMemoryError`` on CPU when its
  config's ``hidden_dim`` is 13, after allocating a large tensor (as a real OOM would hold memory).
"""

from __future__ import annotations

import io
import os
import time
import weakref
from typing import IO, Any, Literal

import torch

import tunelab.results.io as rio
import tunelab.results.study as rstudy
from tunelab.models.gru import GRUConfig, build_gru
from tunelab.registry import MODELS

_DELAY = float(os.environ.get("TUNELAB_TEST_SLOW_WRITES", "0") or 0)
_original = rio.atomic_write

if _DELAY > 0 and not getattr(rio.atomic_write, "_slow", False):

    def slow_atomic_write(path: Any, write: Any) -> Any:
        def halves(fh: IO[bytes]) -> None:
            buf = io.BytesIO()
            write(buf)
            data = buf.getvalue()
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(_DELAY)  # killed here: a half-written temporary file
            fh.write(data[len(data) // 2 :])

        return _original(path, halves)

    slow_atomic_write._slow = True  # type: ignore[attr-defined]
    rio.atomic_write = slow_atomic_write
    rstudy.atomic_write = slow_atomic_write  # type: ignore[attr-defined]


class OomGRUConfig(GRUConfig):
    name: Literal["oom_gru"] = "oom_gru"  # type: ignore[assignment]


#: weak references to the blocks failing forwards held: the test checks they were all freed
HOGS: list[weakref.ref[torch.Tensor]] = []


class _Oom(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, fail: bool) -> None:
        super().__init__()
        self.inner, self.fail = inner, fail

    def forward(self, **batch: Any) -> torch.Tensor:
        if self.fail:
            hog = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB held by the failing frame
            HOGS.append(weakref.ref(hog))
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {hog.numel() * 4} bytes")
        return self.inner(**batch)


@MODELS.register("oom_gru", config=OomGRUConfig)
def build_oom_gru(cfg: OomGRUConfig, meta: Any) -> torch.nn.Module:
    return _Oom(build_gru(GRUConfig(**cfg.model_dump(exclude={"name"})), meta), cfg.hidden_dim == 13)
