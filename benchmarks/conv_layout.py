"""Would channels-first convs make InceptionTime and ResNet faster?  Same weights, two layouts.

tunelab's conv families run on ``[B, T, C]`` (the data's layout): each masked conv transposes its
input to ``[B, C, T]``, pads it, convolves and transposes back, and a profile of InceptionTime's
evaluation puts those copies at about a quarter of its CPU time.  This script runs each model as
it is and again through a channels-first forward written here from the same modules (``[B, C, T]``
from the input to the pooling, native conv padding, the asymmetric step of an even kernel taken
by slicing one output off, BatchNorm over dims 0 and 2), checks that both give the same outputs,
and times a training step (forward, cross-entropy, backward) and an evaluation pass of each.

::

    python benchmarks/conv_layout.py [--batch 64] [--length 300] [--channels 1] [--repeats 5] [--append]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import date

import torch
import torch.nn.functional as F
from results_md import publish
from torch import Tensor, nn

from tunelab.data.base import DataMeta
from tunelab.models.base import length_mask
from tunelab.models.inception import InceptionTime, InceptionTimeConfig
from tunelab.models.layers import MaskedBatchNorm1d, MaskedConv1d
from tunelab.models.resnet import ResNet, ResNetConfig


def _conv(m: MaskedConv1d, h: Tensor) -> Tensor:
    """``m`` on ``h [B, C, T]`` (zero at padded steps): native padding of the larger side, and the
    extra leading output of an even kernel sliced off."""
    left, right = m.pad
    out = F.conv1d(h, m.conv.weight, m.conv.bias, 1, right, m.conv.dilation)
    return out[..., right - left :] if right > left else out


def _norm(m: MaskedBatchNorm1d, h: Tensor, mask: Tensor) -> Tensor:
    """Masked BatchNorm over ``[B, C, T]`` (``mask [B, 1, T]``), without running-statistic updates."""
    if m.training:
        n = mask.sum()
        mean = (h * mask).sum((0, 2)) / n
        var = (((h - mean[:, None]) * mask) ** 2).sum((0, 2)) / n
    else:
        mean, var = m.running_mean, m.running_var
    scale = m.weight * torch.rsqrt(var + m.eps)
    return h * scale[:, None] + (m.bias - mean * scale)[:, None]


def _pool(h: Tensor, mask: Tensor) -> Tensor:
    z = h.masked_fill(mask == 0, float("-inf"))
    return F.max_pool1d(z, 3, 1, 1).masked_fill(mask == 0, 0.0)


def inception_cf(model: InceptionTime, x: Tensor, lengths: Tensor) -> Tensor:
    mask = length_mask(lengths, x.shape[1]).unsqueeze(1).to(x.dtype)
    h = res = x.transpose(1, 2) * mask
    for i, m in enumerate(model.modules_):
        z = _conv(m.bottleneck, h) if m.bottleneck is not None else h
        branches = [_conv(c, z) for c in m.convs] + [_conv(m.pool_conv, _pool(h, mask))]
        h = torch.relu(_norm(m.norm, torch.cat(branches, 1), mask)) * mask
        if i % 3 == 2 and i // 3 < len(model.shortcuts):
            s = model.shortcuts[i // 3]
            h = res = torch.relu(h + _norm(s.norm, _conv(s.conv, res), mask)) * mask
    return model.head((h * mask).sum(2) / mask.sum(2))


def resnet_cf(model: ResNet, x: Tensor, lengths: Tensor) -> Tensor:
    mask = length_mask(lengths, x.shape[1]).unsqueeze(1).to(x.dtype)
    h = x.transpose(1, 2) * mask
    for block in model.blocks:
        z = h
        for cn in block.convs:
            z = _norm(cn.norm, _conv(cn.conv, z), mask)
            z = (torch.relu(z) if isinstance(cn.act, nn.ReLU) else z) * mask
        s = _conv(block.short_conv, h) if block.short_conv is not None else h
        h = torch.relu(z + _norm(block.short_norm, s, mask)) * mask
    return model.head((h * mask).sum(2) / mask.sum(2))


def seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def measure(
    model: nn.Module, cf: Callable[..., Tensor], batch: tuple[Tensor, Tensor, Tensor], repeats: int
) -> dict[tuple[str, str], float]:
    """Seconds per training step and per evaluation pass, in each layout: the better of two
    alternated rounds, so that a noisy neighbour hits both."""
    x, lengths, y = batch
    layouts: dict[str, Callable[[], Tensor]] = {
        "btc": lambda: model(x, lengths),
        "bct": lambda: cf(model, x, lengths),
    }

    def train(fwd: Callable[[], Tensor]) -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(fwd(), y).backward()

    def evaluate(fwd: Callable[[], Tensor]) -> None:
        model.eval()
        with torch.no_grad():
            fwd()

    times: dict[tuple[str, str], float] = {}
    for _ in range(2):
        for label, fwd in layouts.items():
            for what, run in (("train", train), ("eval", evaluate)):
                t = seconds(lambda r=run, f=fwd: r(f), repeats)  # type: ignore[misc]
                times[label, what] = min(t, times.get((label, what), t))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=300)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    a = p.parse_args()
    torch.manual_seed(0)
    meta = DataMeta(name="layout", channels=a.channels, max_len=a.length, n_classes=5, n_outputs=5)
    x = torch.randn(a.batch, a.length, a.channels)
    lengths = torch.randint(a.length // 2, a.length + 1, (a.batch,))
    lengths[0] = a.length
    y = torch.randint(0, 5, (a.batch,))
    rows = []
    families: list[tuple[str, nn.Module, Callable[..., Tensor]]] = [
        ("inception_time", InceptionTime(InceptionTimeConfig(), meta), inception_cf),
        ("resnet", ResNet(ResNetConfig(), meta), resnet_cf),
    ]
    for name, model, cf in families:
        model.eval()
        with torch.no_grad():
            diff = (model(x, lengths) - cf(model, x, lengths)).abs().max().item()
        best = measure(model, cf, (x, lengths, y), a.repeats)
        rows.append(
            f"| {name} | {best['btc', 'train'] * 1e3:.0f} | {best['bct', 'train'] * 1e3:.0f} "
            f"| {best['btc', 'train'] / best['bct', 'train']:.2f}x | {best['btc', 'eval'] * 1e3:.0f} "
            f"| {best['bct', 'eval'] * 1e3:.0f} | {best['btc', 'eval'] / best['bct', 'eval']:.2f}x | {diff:.1e} |"
        )
    head = (
        f"### Conv layout: [B, T, C] as built vs channels-first, {date.today()}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads (torch {torch.__version__})\n\n"
        f"`python benchmarks/conv_layout.py --batch {a.batch} --length {a.length} --channels {a.channels} "
        f"--repeats {a.repeats}`: milliseconds per training step / evaluation pass of {a.batch} series, the better of two "
        "alternated rounds; speed-up = as built / channels-first; diff = max |output difference| in eval.\n\n"
        "| model | train [B,T,C] | train [B,C,T] | speed-up | eval [B,T,C] | eval [B,C,T] | speed-up | diff |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    table = head + "\n".join(rows) + "\n"
    publish(table, a.append)


if __name__ == "__main__":
    main()
