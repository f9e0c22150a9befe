"""The live per-epoch table of `tunelab train`: learning rates by name, rows that fit 80 columns."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

import tunelab.cli.train as cli  # the train command module draws the table


def _rows(monkeypatch: pytest.MonkeyPatch, width: int, metrics: dict[str, float]) -> list[str]:
    out = Console(width=width, file=io.StringIO(), record=True)
    monkeypatch.setattr(cli, "console", out)
    table = cli.ConsoleTable()
    table.on_fit_start(None)
    for epoch in (1, 2):
        table.on_epoch_end(None, SimpleNamespace(epoch=epoch, metrics=metrics, improved=epoch == 1))
    return out.export_text().splitlines()


METRICS = {"train_loss": 0.91, "val_loss": 0.8, "val_acc": 0.7, "val_f1": 0.69, "grad_norm": 1.5, "seconds": 0.25}


def test_the_body_learning_rate_is_shown_as_lr_and_a_different_head_rate_beside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same = _rows(monkeypatch, 200, {**METRICS, "lr/body": 1e-3, "lr/head": 1e-3})
    assert same[0].split() == ["epoch", "train_loss", "val_loss", "val_acc", "val_f1", "lr", "grad_norm", "seconds"]
    assert "0.001" in same[1].split()
    scaled = _rows(monkeypatch, 200, {**METRICS, "lr/body": 1e-3, "lr/head": 1e-2})
    assert scaled[0].split()[5:7] == ["lr", "lr_head"] and scaled[1].split()[5:7] == ["0.001", "0.01"]


def test_rows_fit_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _rows(monkeypatch, 80, {**METRICS, "lr/body": 1e-3, "lr/head": 1e-2})
    assert len(rows) == 3 and all(len(r) <= 80 for r in rows)  # a header and one line per epoch, no wrapping
    assert {"epoch", "val_loss", "val_f1", "lr"} <= set(rows[0].split()) and "grad_norm" not in rows[0]
