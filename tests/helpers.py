"""Small shared builders for tests: tiny, seeded, fast."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.data.base import DataMeta, SequenceData


@dataclass
class TinySplits:
    """Duck-typed stand-in for tunelab.data.Splits."""

    train: SequenceData
    val: SequenceData
    test: SequenceData
    meta: DataMeta


def tiny_classification(n: int, seed: int, t: int = 16, channels: int = 3, classes: int = 3) -> SequenceData:
    """Variable-length sequences whose first channel carries the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    lengths = torch.randint(4, t + 1, (n,), generator=g)
    x = torch.randn(n, t, channels, generator=g) * 0.5
    x[:, :, 0] += y[:, None].float() - 1
    x = x * (torch.arange(t)[None, :, None] < lengths[:, None, None])
    meta = DataMeta("tiny", channels, t, n_classes=classes, class_names=tuple(map(str, range(classes))))
    return SequenceData(x, lengths, y, meta)


def tiny_splits(n: int = 96, seed: int = 0, **kw: int) -> TinySplits:
    parts = [tiny_classification(n if i == 0 else n // 3, seed + i, **kw) for i in range(3)]
    return TinySplits(*parts, meta=parts[0].meta)


@pytest.fixture(autouse=True)
def no_study_reference(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Studies fit no MiniRocket reference and build no ensemble at their end (most study tests do
    not check them, and they cost a fit and a pass over the data per study) except in tests marked
    ``reference``; a conftest imports this fixture to switch it on for its folder."""
    if request.node.get_closest_marker("reference") is None:
        from tunelab import ensemble
        from tunelab.baselines import reference

        monkeypatch.setattr(reference, "ENABLED", False)
        monkeypatch.setattr(ensemble, "ENABLED", False)


ROOT = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    """The environment of a tunelab subprocess: this checkout, one thread."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def cli_cmd(*args: str) -> list[str]:
    """The command line of ``tunelab ARGS`` (``python -m tunelab``, this interpreter)."""
    return [sys.executable, "-m", "tunelab", *args]


def run_cli(*args: str, cwd: Path, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a subprocess (every test that runs the CLI out of process uses this)."""
    return subprocess.run(
        cli_cmd(*args), cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout
    )


# small widths and depths so registry-wide matrices run in seconds on two CPU cores
SIZE_FIELDS = {"hidden_dim": 16, "d_model": 16, "ff_dim": 32, "channels": 16, "conv_channels": 16, "base_channels": 8}
DEPTH_FIELDS = {"num_layers": 2, "num_blocks": 3, "conv_layers": 2, "depth": 2}


def tiny_model_values(name: str, sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """A registered family's defaults, shrunk (``sizes`` caps the width fields), dropout off: the
    tiny settings every registry-driven test starts from, so a new family is covered unchanged."""
    from tunelab.registry import MODELS

    caps = {**SIZE_FIELDS, **(sizes or {})}
    values: dict[str, Any] = {}
    for field, info in MODELS.get(name).config.model_fields.items():  # type: ignore[union-attr]
        default = info.default
        if field in caps and isinstance(default, int):
            values[field] = min(default, caps[field])
        elif field in DEPTH_FIELDS and isinstance(default, int):
            values[field] = min(default, DEPTH_FIELDS[field])
        elif "dropout" in field and isinstance(default, float):
            values[field] = 0.0
    return values


def builtin_families() -> list[str]:
    """The families tunelab ships (every one of them, with no list to keep up to date); plugin
    families that other tests register (examples/plugins) bring their own data and tests."""
    import tunelab.models  # noqa: F401  (registers the built-in families)
    from tunelab.registry import MODELS

    return [n for n in MODELS.names() if MODELS.get(n).fn.__module__.startswith("tunelab.")]


@pytest.fixture
def strict_fp32():  # type: ignore[no-untyped-def]
    """Full fp32 on both paths.  PyTorch leaves ``torch.backends.cudnn.allow_tf32`` on by default, so
    on Ampere and later cuDNN's GRU/LSTM (the solo reference) multiplies in TF32 (10-bit mantissa)
    while the stacked recurrence's matmuls stay fp32 (``matmul.allow_tf32`` is off by default):
    that, not the stacked backward, was the 3.9e-4 difference on an H200.  The test checks fp32."""
    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(flags[2])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
