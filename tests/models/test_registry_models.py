"""Every registered model family, built-in or plugin: shapes, learning, masking, config round trip.

The matrix is ``MODELS.names()`` at collection time, after the shipped plugin examples are
imported, so a new family (or plugin) is covered with no change here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from tests.helpers import strict_fp32, tiny_model_values  # noqa: F401  (strict_fp32: a fixture)
from torch import Tensor

import tunelab  # noqa: F401  (fills the registries)
from tunelab.config import ExperimentConfig, ModelConfig, apply_overrides, save_config, validate_config
from tunelab.data.base import DataMeta, Task
from tunelab.models import build_model
from tunelab.models.base import supported_tasks
from tunelab.plugins import load_plugin
from tunelab.registry import DATASETS, MODELS

PLUGINS = sorted((Path(__file__).parents[2] / "examples" / "plugins").glob("*.py"))
for _plugin in PLUGINS:
    load_plugin(str(_plugin))

FAMILIES = MODELS.names()
LENGTHS = [13, 1, 5, 9, 13, 2, 7, 11]


def _tasks(name: str) -> list[Task]:
    tasks = supported_tasks(MODELS.get(name).config)  # type: ignore[arg-type]
    return [t for t in ("classification", "seq2seq") if t in tasks]


CASES = [(name, task) for name in FAMILIES for task in _tasks(name)]
PRIMARY = [(name, _tasks(name)[0]) for name in FAMILIES]


def tiny_config(name: str, **extra: Any) -> ModelConfig:
    """The family's defaults, shrunk; dropout off so tiny-batch tests are deterministic."""
    cls = MODELS.get(name).config
    values = tiny_model_values(name)
    return cls(**{**values, **extra})  # type: ignore[misc]


def tiny_data(name: str, task: Task) -> tuple[DataMeta, dict[str, Tensor], Tensor]:
    """A batch of 8 (inputs, target) for family ``name``: its example dataset, or random sequences."""
    example = getattr(MODELS.get(name).config, "example_dataset", None)
    if example is not None:
        data = DATASETS.get(example).fn()
        n = min(8, len(data))
        inputs = {"x": data.x[:n], "lengths": data.lengths[:n], **{k: v[:n] for k, v in data.extras.items()}}
        return data.meta, inputs, data.y[:n]
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), max(LENGTHS), 3, generator=g) * (
        torch.arange(max(LENGTHS))[None, :, None] < lengths[:, None, None]
    )
    if task == "seq2seq":
        meta = DataMeta("tiny", channels=3, max_len=max(LENGTHS), task="seq2seq", n_outputs=3)
        y = torch.randn(x.shape, generator=g) * (x != 0)
    else:
        meta = DataMeta("tiny", channels=3, max_len=max(LENGTHS), n_classes=4)
        y = torch.arange(len(LENGTHS)) % 4
    return meta, {"x": x, "lengths": lengths}, y


def loss_of(out: Tensor, y: Tensor, lengths: Tensor, task: Task) -> Tensor:
    if task == "classification":
        return F.cross_entropy(out, y)
    valid = (torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    return ((out - y[:, : out.shape[1]]) ** 2 * valid).sum() / (valid.sum() * out.shape[-1])


def pad_inputs(inputs: dict[str, Tensor], extra: int, noise: bool = False) -> dict[str, Tensor]:
    """Append ``extra`` padded steps to x (zeros, or noise) and to every per-step extras dim."""
    t = inputs["x"].shape[1]
    out = {}
    for key, value in inputs.items():
        if key == "lengths":
            out[key] = value
            continue
        for dim in range(1, value.dim()):
            if value.shape[dim] == t:
                shape = list(value.shape)
                shape[dim] = extra
                fill = torch.randn(shape, device=value.device) if noise and key == "x" else value.new_zeros(shape)
                value = torch.cat([value, fill], dim=dim)
        out[key] = value
    return out


def row(inputs: dict[str, Tensor], i: int) -> dict[str, Tensor]:
    """Sample ``i`` alone, trimmed to its own length."""
    t, n = inputs["x"].shape[1], int(inputs["lengths"][i])
    out = {}
    for key, value in inputs.items():
        value = value[i : i + 1]
        for dim in range(1, value.dim()):
            if value.shape[dim] == t:
                value = value.narrow(dim, 0, n)
        out[key] = value
    return out


def build(name: str, task: Task) -> tuple[torch.nn.Module, dict[str, Tensor], Tensor]:
    meta, inputs, y = tiny_data(name, task)
    torch.manual_seed(0)
    return build_model(tiny_config(name), meta), inputs, y


@pytest.mark.parametrize(("name", "task"), CASES)
def test_forward_backward_shapes(name: str, task: Task) -> None:
    model, inputs, y = build(name, task)
    out = model(**inputs)
    n = inputs["x"].shape[0]
    if task == "seq2seq":
        assert out.shape == y.shape
    else:
        assert out.shape == (n, model.head.out_features)
    loss_of(out, y, inputs["lengths"], task).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: parameter {pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"


@pytest.mark.parametrize(("name", "task"), PRIMARY)
def test_overfits_tiny_batch(name: str, task: Task) -> None:
    model, inputs, y = build(name, task)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = loss_of(model(**inputs), y, inputs["lengths"], task)
        first = first if first is not None else loss.item()
        if loss.item() < 0.01:
            break
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, f"{name}: loss {first:.3f} -> {loss.item():.3f} after 300 steps"


@pytest.mark.parametrize("noise", [False, True], ids=["zeros", "noise"])
@pytest.mark.parametrize(("name", "task"), CASES)
def test_outputs_ignore_appended_padding(name: str, task: Task, noise: bool) -> None:
    model, inputs, _ = build(name, task)
    model.eval()
    with torch.no_grad():
        base = model(**inputs)
        padded = model(**pad_inputs(inputs, extra=7, noise=noise))
    if task == "seq2seq":
        assert padded.shape[1] == base.shape[1] + 7
        padded = padded[:, : base.shape[1]]
    torch.testing.assert_close(padded, base, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "task"), CASES)
def test_batch_invariance(name: str, task: Task) -> None:
    """A sequence gives the same output alone as in a batch with longer ones."""
    model, inputs, _ = build(name, task)
    model.eval()
    with torch.no_grad():
        batch = model(**inputs)
        for i in range(inputs["x"].shape[0]):
            alone = model(**row(inputs, i))[0]
            expected = batch[i, : alone.shape[0]] if task == "seq2seq" else batch[i]
            torch.testing.assert_close(alone, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_config_validates_and_round_trips(name: str) -> None:
    cls = MODELS.get(name).config
    cfg = validate_config(apply_overrides({}, {"model.name": name}))
    assert type(cfg.model) is cls
    again = validate_config(json.loads(json.dumps(save_config(cfg))))
    assert again == cfg and type(again.model) is cls
    shrunk = ExperimentConfig(model=tiny_config(name))
    assert validate_config(save_config(shrunk)).model == shrunk.model
    for field, info in cls.model_fields.items():  # type: ignore[union-attr]
        assert field == "name" or info.description, f"{name}.{field} needs a description (shown by `tunelab models`)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.usefixtures("strict_fp32")  # the padding check is fp32: no TF32 convolutions or matmuls
@pytest.mark.parametrize(("name", "task"), CASES)
def test_cuda_bf16_autocast_and_padding(name: str, task: Task) -> None:
    """On CUDA: a bf16-autocast step gives finite gradients; fp32 outputs still ignore padding."""
    model, inputs, y = build(name, task)
    model, y = model.cuda(), y.cuda()
    inputs = {k: v.cuda() for k, v in inputs.items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(**inputs)
    loss_of(out.float(), y, inputs["lengths"], task).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        base = model(**inputs)
        padded = model(**pad_inputs(inputs, extra=7))
    torch.testing.assert_close(padded[:, : base.shape[1]] if task == "seq2seq" else padded, base, atol=1e-4, rtol=1e-3)
