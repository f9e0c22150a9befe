"""A bidirectional GRU's training step on a CPU: packed sequences vs forward-only passes, and
denormal floats flushed or not.

The default portfolio's recurrent start is a bidirectional GRU (2 layers of 128).  On a CPU,
PyTorch's packed-sequence backward grows faster than the sequence length, and gradients that
vanish over a long recurrence reach denormal floats, on which a CPU's matmuls crawl.  This times
one optimizer step (forward, backward, AdamW) of that model for each combination:

* ``packed``: the layers run over ``pack_padded_sequence`` (how tunelab ran them before);
* ``passes``: :func:`tunelab.models.layers.bidirectional_rnn` (each direction a forward-only pass,
  the backward one over each row's valid steps reversed);
* ``flush``: ``torch.set_flush_denormal(True)`` (the engine sets it on a CPU).

    python benchmarks/rnn_cpu.py [--lengths 100,500] [--batch 128] [--append]

Equal lengths (UCR's univariate sets) and lengths drawn from [T/2, T] (variable-length data).
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import torch
from results_md import publish
from torch import Tensor, nn

import tunelab.models.gru as gru_module
from tunelab.config import load_config
from tunelab.data.base import DataMeta
from tunelab.models import build_model
from tunelab.models.layers import bidirectional_rnn


def packed(rnn: nn.Module, h: Tensor, lengths: Tensor) -> Tensor:
    """The layer over packed sequences (tunelab before the forward-only passes)."""
    seqs = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return nn.utils.rnn.pad_packed_sequence(rnn(seqs)[0], batch_first=True, total_length=h.shape[1])[0]


def step_seconds(layer: Any, flush: bool, batch: int, t: int, variable: bool, repeats: int) -> float:
    torch.set_flush_denormal(flush)
    gru_module.bidirectional_rnn = layer  # type: ignore[attr-defined]
    torch.manual_seed(0)
    over = ["model.name=gru", "model.hidden_dim=128", "model.num_layers=2", "model.bidirectional=true"]
    model = build_model(load_config(None, over).model, DataMeta("bench", 1, t, n_classes=2, class_names=("a", "b")))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    lengths = torch.randint(t // 2, t + 1, (batch,)) if variable else torch.full((batch,), t)
    lengths[0] = t
    x = torch.randn(batch, t, 1) * (torch.arange(t)[None, :, None] < lengths[:, None, None])
    y = torch.randint(0, 2, (batch,))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        nn.functional.cross_entropy(model(x, lengths), y).backward()
        opt.step()
        opt.zero_grad()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="100,500")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args()
    variants = [("packed", packed, False), ("packed", packed, True), ("passes", bidirectional_rnn, False)]
    variants.append(("passes", bidirectional_rnn, True))
    rows = []
    try:
        for t in (int(v) for v in args.lengths.split(",")):
            for variable in (False, True):
                times = [step_seconds(f, flush, args.batch, t, variable, args.repeats) for _, f, flush in variants]
                rows.append((t, variable, times))
                print(t, "variable" if variable else "equal", [f"{s:.2f}" for s in times], flush=True)
    finally:
        gru_module.bidirectional_rnn = bidirectional_rnn  # type: ignore[attr-defined]
    heads = [f"{name}{' + flush' if flush else ''}" for name, _, flush in variants]
    text = (
        f"## A bidirectional GRU's training step on a CPU ({time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()},"
        f" {torch.get_num_threads()} threads, torch {torch.__version__})\n\n"
        f"`python benchmarks/rnn_cpu.py --lengths {args.lengths} --batch {args.batch}`: seconds per optimizer step"
        f" (best of {args.repeats}) of the portfolio's GRU start (2 bidirectional layers of 128), batch {args.batch},"
        " one channel; lengths equal, or drawn from [T/2, T].\n\n"
        "| steps | lengths | " + " | ".join(heads) + " | speed-up |\n|---|---|" + "---:|" * (len(heads) + 1) + "\n"
    )
    for t, variable, times in rows:
        cells = " | ".join(f"{s:.2f}" for s in times)
        text += f"| {t} | {'variable' if variable else 'equal'} | {cells} | {times[0] / times[-1]:.1f}x |\n"
    publish(text, args.append)


if __name__ == "__main__":
    main()
