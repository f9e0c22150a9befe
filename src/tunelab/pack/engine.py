"""The training step of a pack, eager or captured in CUDA graphs.

One step: gather the shared batch on the device, run all K members (one stacked forward and
backward), clip each member's gradient, and update every member with its own hyperparameters.
Nothing in a step waits for the device: batch order is uploaded once per pass over the data,
sequence lengths are read from a host copy, and losses and gradient norms accumulate on the
device until the epoch ends.

With ``graphs=True`` on CUDA, the whole step (forward, backward, clipping, optimizer) is captured
in one CUDA graph per length bucket (batch lengths rounded up to a multiple of ``bucket_step``;
padding is masked, so a bucket changes no result) and replayed; a batch of another size (the
last, partial one) runs eagerly.  Capturing warms up on a side stream and then restores the
weights and optimizer state, so it does not change training.  Models whose forward waits on the
host (packed sequences) cannot be captured; they fall back to eager steps with a warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.config import ExperimentConfig
from tunelab.data.base import DataMeta, SequenceData
from tunelab.data.batching import batch_indices, make_batch
from tunelab.models import build_model
from tunelab.pack.layers import PackedRNN
from tunelab.pack.losses import PackedLoss, member_metrics
from tunelab.pack.model import PackedModel, pack_models
from tunelab.pack.optim import PackedOptimizer, PackedSchedule, clip_per_member
from tunelab.train.device import seed_everything
from tunelab.train.optim import head_param_ids

__all__ = ["PackEngine"]

log = logging.getLogger(__name__)


def autocast(device: torch.device, amp: bool) -> Any:
    """bf16 autocast on CUDA when ``amp``; nothing otherwise."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


_COMPILED: dict[Any, Any] = {}


def _compiled(steps: Any) -> Any:
    """``torch.compile``d versions of a cell's per-step functions, made once per process (dynamo
    caches by shape)."""
    if steps not in _COMPILED:
        _COMPILED[steps] = tuple(torch.compile(fn, dynamic=False, fullgraph=True) for fn in steps)
    return _COMPILED[steps]


class PackEngine:
    """Model, optimizer, loss, schedules, batch order and per-member accumulators of one pack.

    ``train_epoch()`` runs one epoch of optimizer steps and returns the samples each member saw;
    ``loss_sum``, ``norm_sum`` and ``clipped`` (K-vectors on the device) hold the epoch's sums.
    Options (CUDA only): ``tf32`` lets matmuls and convolutions use TF32; ``compile`` fuses the
    recurrent gate arithmetic with ``torch.compile``; ``graphs`` captures each step in a CUDA
    graph (see the module docstring).
    """

    def __init__(
        self,
        cfgs: Sequence[ExperimentConfig],
        meta: DataMeta,
        train: SequenceData,
        device: torch.device,
        *,
        tf32: bool = False,
        compile: bool = False,
        graphs: bool = False,
        bucket_step: int = 16,
    ) -> None:
        self.cfgs = list(cfgs)
        self.meta, self.train, self.device = meta, train, device
        first = cfgs[0]
        self.tc = first.train
        self.bucket = first.data.bucket
        self.amp = first.train.amp
        models = []
        for cfg in cfgs:
            seed_everything(cfg.seed)  # each member starts from the weights its solo run would have
            models.append(build_model(cfg.model, meta))
        self.solo_models = models
        self.model: PackedModel = pack_models(models).to(device)
        head_ids = head_param_ids(self.model)
        self.optimizer = PackedOptimizer(list(self.model.parameters()), head_ids, [c.train for c in cfgs], device)
        self.loss_fn = PackedLoss([c.loss for c in cfgs], meta, train.y.cpu()).to(device)
        micro = math.ceil(len(train) / self.tc.batch_size)
        self.steps_per_epoch = self.tc.steps_per_epoch or max(1, micro // self.tc.grad_accum)
        self.schedule = PackedSchedule([c.train for c in cfgs], self.steps_per_epoch)
        self.gen = torch.Generator().manual_seed(first.seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(first.seed + 1)
        augs = [c.data.augment for c in cfgs]
        self.augs = augs if any(a != augs[0] for a in augs) else augs[:1]
        self.live = torch.ones(len(cfgs), dtype=torch.bool, device=device)
        self.step_count = 0
        self.tf32 = tf32 and device.type == "cuda"
        if compile and device.type == "cuda":
            # one compiled variant per (pack size, batch) shape and precision; packs of many sizes
            # in one process (a tuning run, the benchmark) need more than dynamo's default 8
            dynamo = torch._dynamo.config
            limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
            setattr(dynamo, limit, max(getattr(dynamo, limit), 64))
            for m in self.model.modules():
                if isinstance(m, PackedRNN):
                    m.fns = _compiled(m.plain)
        self.graphs = graphs and device.type == "cuda" and not train.extras
        self.bucket_step = bucket_step
        self._graphs: dict[int, Any] = {}
        self._static: dict[int, dict[str, Tensor]] = {}
        self._pool: Any = None
        self.graph_error: str | None = None
        self._cpu_lengths = train.lengths.cpu()
        self._order: list[tuple[Tensor, Tensor]] = []
        self.loss_sum = torch.zeros(self.k, device=device)
        self.norm_sum = torch.zeros(self.k, device=device)
        self.clipped = torch.zeros(self.k, device=device)

    @property
    def k(self) -> int:
        return self.model.k

    def reset_sums(self) -> None:
        """Zero the epoch sums in place (captured graphs add into these very tensors)."""
        for t in (self.loss_sum, self.norm_sum, self.clipped):
            t.zero_()

    # ------------------------------------------------------------------ batches

    def _next_batch(self) -> tuple[Tensor, Tensor]:
        """(host indices, device indices) of the next batch, in ``fit``'s order."""
        if not self._order:  # a fresh shuffled pass whenever the previous one is used up (as fit)
            batches = batch_indices(
                len(self.train),
                self.tc.batch_size,
                shuffle=True,
                generator=self.gen,
                lengths=self.train.host_lengths,
                bucket=self.bucket,
            )
            on_device = torch.cat(batches).to(self.device).split([len(b) for b in batches])  # one upload per pass
            self._order = list(zip(batches, on_device, strict=True))[::-1]
        return self._order.pop()

    def _batch(self, idx: Tensor, dev_idx: Tensor, t: int) -> tuple[dict[str, Tensor], Tensor]:
        """Rows ``idx`` trimmed to ``t`` steps, augmented (per member when augmentations differ)."""
        from tunelab.data.augment import augment

        data = self.train
        lengths = data.lengths[dev_idx]
        x = data.x[dev_idx, :t]
        inputs = {"x": x, "lengths": lengths} | {k: v[dev_idx] for k, v in data.extras.items()}
        y = data.y[dev_idx]
        if data.meta.task == "seq2seq":
            y = y[:, :t]
        if len(self.augs) == 1:
            inputs["x"] = augment(x, lengths, self.augs[0], self.aug_gen)
        else:  # members augment differently: one input per member, [K, B, T, C]
            inputs["x"] = torch.stack([augment(x, lengths, a, self.aug_gen) for a in self.augs])
        return inputs, y

    def _t_max(self, idx: Tensor) -> int:
        return int(self._cpu_lengths[idx].max())

    # ------------------------------------------------------------------ steps

    @contextmanager
    def _precision(self) -> Iterator[None]:
        """TF32 on or off for this pack's work (the same in training and evaluation, so compiled
        kernels, which are specialised on it, are not rebuilt)."""
        flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.tf32
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags

    def train_epoch(self, steps: int | None = None) -> int:
        """One epoch of optimizer steps (or ``steps`` of them); returns the samples each member
        trained on."""
        self.model.train()
        self.reset_sums()
        seen = 0
        with self._precision():
            for _ in range(steps if steps is not None else self.steps_per_epoch):
                seen += self._step()
        return seen

    def _lrs(self) -> Tensor:
        return self.schedule.lrs(self.step_count, self.device) * self.live

    def _step(self) -> int:
        if self.graphs and self.tc.grad_accum == 1 and len(self.augs) == 1:
            idx, dev_idx = self._next_batch()
            if len(idx) == self.tc.batch_size:
                return self._graph_step(idx, dev_idx)
            return self._eager_step([(idx, dev_idx)])
        return self._eager_step([self._next_batch() for _ in range(self.tc.grad_accum)])

    def _forward_backward(self, inputs: dict[str, Tensor], y: Tensor, scale: float) -> None:
        with autocast(self.device, self.amp):
            out = self.model(**inputs)
        losses = self.loss_fn(out, y, inputs["lengths"])
        (losses.sum() * scale).backward()
        self.loss_sum += losses.detach() * scale

    def _update(self, lrs: Tensor) -> None:
        norms = clip_per_member(self.optimizer.params, self.optimizer.clip)
        self.norm_sum += norms
        self.clipped += (norms > self.optimizer.clip).float()
        self.optimizer.step(lrs)

    def _eager_step(self, batches: list[tuple[Tensor, Tensor]]) -> int:
        seen = 0
        for idx, dev_idx in batches:
            inputs, y = self._batch(idx, dev_idx, self._t_max(idx))
            self._forward_backward(inputs, y, 1.0 / len(batches))
            seen += len(idx)
        self._update(self._lrs())
        self.optimizer.zero_grad()
        self.step_count += 1
        return seen

    def _bucket(self, t: int) -> int:
        return min(self.train.x.shape[1], -(-t // self.bucket_step) * self.bucket_step)

    def _graph_step(self, idx: Tensor, dev_idx: Tensor) -> int:
        t = self._bucket(self._t_max(idx))
        if t not in self._graphs and not self._capture(t, idx, dev_idx):
            return self._eager_step([(idx, dev_idx)])
        st = self._static[t]
        inputs, y = self._batch(idx, dev_idx, t)
        st["x"].copy_(inputs["x"])
        st["lengths"].copy_(inputs["lengths"])
        st["y"].copy_(y)
        st["lrs"].copy_(self._lrs())
        self._graphs[t].replay()
        self.step_count += 1
        return len(idx)

    def _graph_body(self, st: dict[str, Tensor]) -> None:
        self._forward_backward({"x": st["x"], "lengths": st["lengths"]}, st["y"], 1.0)
        self._update(st["lrs"])

    def _capture(self, t: int, idx: Tensor, dev_idx: Tensor) -> bool:
        """Capture the step for bucket ``t``; False (and eager from now on) if it cannot be."""
        inputs, y = self._batch(idx, dev_idx, t)
        st = {
            "x": inputs["x"].clone(),
            "lengths": inputs["lengths"].clone(),
            "y": y.clone(),
            "lrs": torch.zeros_like(self._lrs()),
        }
        params = self.optimizer.params
        saved = [p.detach().clone() for p in params] + [v.clone() for s in self.optimizer.state for v in s.values()]
        saved_sums = [t_.clone() for t_ in (self.loss_sum, self.norm_sum, self.clipped, self.optimizer.steps)]
        # warm-up and capture run the step; BatchNorm's running statistics must not count those runs
        saved_sums += [b.clone() for b in self.model.buffers()]
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        try:
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up: cuBLAS handles, compiled kernels, allocator
                    self._graph_body(st)
                    self.optimizer.zero_grad()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self._restore(saved, saved_sums)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._graph_body(st)
            self.optimizer.zero_grad()  # the graph keeps its own gradient buffers
            self._restore(saved, saved_sums)
        except RuntimeError as exc:  # e.g. a forward that waits on the host (packed sequences)
            torch.cuda.synchronize(self.device)
            self.optimizer.zero_grad()
            self._restore(saved, saved_sums)
            self.graph_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log.warning("CUDA graph capture failed (%s); this pack trains eagerly", self.graph_error)
            self.graphs = False
            return False
        self._graphs[t] = graph
        self._static[t] = st
        return True

    @torch.no_grad()
    def _restore(self, saved: list[Tensor], sums: list[Tensor]) -> None:
        tensors = [p.data for p in self.optimizer.params] + [v for s in self.optimizer.state for v in s.values()]
        for dst, src in zip(tensors, saved, strict=True):
            dst.copy_(src)
        state = (self.loss_sum, self.norm_sum, self.clipped, self.optimizer.steps, *self.model.buffers())
        for dst, src in zip(state, sums, strict=True):
            dst.copy_(src)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def predict(self, data: SequenceData, batch_size: int = 256) -> Tensor:
        """Every member's outputs for every row of ``data``: ``[K, N, ...]`` (float32)."""
        self.model.eval()
        outs = []
        for idx in batch_indices(len(data), batch_size, shuffle=False):
            inputs, _ = make_batch(data, idx)
            with self._precision(), autocast(self.device, self.amp):
                out = self.model(**inputs).float()
            if out.dim() == 4:  # seq2seq: pad back to the split's full length
                out = nn.functional.pad(out, (0, 0, 0, data.x.shape[1] - out.shape[2]))
            outs.append(out)
        return torch.cat(outs, 1)

    @torch.no_grad()
    def evaluate(self, data: SequenceData) -> dict[str, Tensor]:
        """Loss and task metrics of every member on ``data``: K-vectors, names without prefix."""
        out = self.predict(data)
        metrics = {"loss": self.loss_fn(out, data.y, data.lengths)}
        return metrics | member_metrics(out, data.y, data.lengths, data.meta, data.x)

    def select_(self, slots: Sequence[int]) -> None:
        """Keep only the members in ``slots`` (compaction); captured graphs are dropped."""
        idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        self.model.select_(idx)
        self.optimizer.select_(idx)
        self.loss_fn.select_(idx)
        self.schedule.select(slots)
        self.live = self.live[idx]
        if len(self.augs) > 1:
            self.augs = [self.augs[i] for i in slots]
        self.loss_sum = torch.zeros(self.k, device=self.device)
        self.norm_sum = torch.zeros(self.k, device=self.device)
        self.clipped = torch.zeros(self.k, device=self.device)
        self._graphs, self._static = {}, {}
