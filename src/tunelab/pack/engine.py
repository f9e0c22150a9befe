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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
from tunelab.train.engine import Engine
from tunelab.train.optim import head_param_ids
from tunelab.train.result import autocast

__all__ = ["PackEngine"]

log = logging.getLogger(__name__)


_COMPILED: dict[Any, Any] = {}


def _compiled(steps: Any) -> Any:
    """``torch.compile``d versions of a cell's per-step functions, made once per process (dynamo
    caches by shape)."""
    if steps not in _COMPILED:
        _COMPILED[steps] = tuple(torch.compile(fn, dynamic=False, fullgraph=True) for fn in steps)
    return _COMPILED[steps]


class PackEngine(Engine):
    """The :class:`~tunelab.train.engine.Engine` of K stacked members: model, optimizer, loss and
    schedules of one pack, the same batch order and epoch sums (K-vectors).

    Options (CUDA only): ``tf32`` lets matmuls and convolutions use TF32; ``compile`` fuses the
    recurrent gate arithmetic with ``torch.compile``; ``graphs`` captures each step in a CUDA
    graph (see the module docstring).
    """

    model: PackedModel
    loss_fn: PackedLoss

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
        self.tf32 = tf32 and device.type == "cuda"
        self._compile = compile and device.type == "cuda"
        self.graphs = graphs and device.type == "cuda" and not train.extras
        self.bucket_step = bucket_step
        self._graphs: dict[int, Any] = {}
        self._static: dict[int, dict[str, Tensor]] = {}
        self._pool: Any = None
        self.graph_error: str | None = None
        super().__init__(cfgs, meta, train, device)

    def _build(self) -> None:
        """Each member's model from its own seed (the weights its solo run starts from), stacked."""
        models = []
        for cfg in self.cfgs:
            seed_everything(cfg.seed)
            models.append(build_model(cfg.model, self.meta))
        self.solo_models = models
        self.model = pack_models(models).to(self.device)
        tcs = [c.train for c in self.cfgs]
        self.optimizer = PackedOptimizer(list(self.model.parameters()), head_param_ids(self.model), tcs, self.device)
        self.loss_fn = PackedLoss([c.loss for c in self.cfgs], self.meta, self.train.y.cpu()).to(self.device)
        self.schedule = PackedSchedule(tcs, self.steps_per_epoch)
        if self._compile:
            # one compiled variant per (pack size, batch) shape and precision; packs of many sizes
            # in one process (a tuning run, the benchmark) need more than dynamo's default 8
            dynamo = torch._dynamo.config
            limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
            setattr(dynamo, limit, max(getattr(dynamo, limit), 64))
            for m in self.model.modules():
                if isinstance(m, PackedRNN):
                    m.fns = _compiled(m.plain)

    @property
    def k(self) -> int:
        return self.model.k

    def member_model(self, slot: int) -> nn.Module:
        """Member ``slot``'s own single model (its initial weights until it finishes)."""
        return self.solo_models[slot].to(self.device)

    def weights(self) -> dict[str, Tensor]:
        return self.model.body.state_dict()

    def keep_best(self, slots: Sequence[int]) -> None:
        if slots:
            idx = torch.tensor(list(slots), device=self.device)
            for name, v in self.weights().items():
                self.best[name].index_copy_(0, idx, v.detach()[idx])

    def best_state(self, slot: int) -> dict[str, Tensor]:
        return {name: v[slot].clone() for name, v in self.best.items()}

    def on_epoch_end(self, slot: int, val_loss: float) -> None:
        self.schedule.on_epoch_end(slot, val_loss)

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

    def _lrs(self) -> Tensor:
        return self.schedule.lrs(self.step_count, self.device) * self.live

    def _step(self) -> int:
        if self.graphs and self.tc.grad_accum == 1 and len(self.augs) == 1:
            idx, dev_idx = self._next_batch()
            if len(idx) == self.tc.batch_size:
                return self._graph_step(idx, dev_idx)
            return self._eager_step([(idx, dev_idx)])
        return super()._step()

    def _update(self, lrs: Tensor | None = None) -> None:
        """Clip each member to its own norm, step each with its own learning rates (``lrs``: a
        captured step's static copy; else this step's)."""
        norms = clip_per_member(self.optimizer.params, self.optimizer.clip)
        self.norm_sum += norms
        self.clipped += (norms > self.optimizer.clip).float()
        self.optimizer.step(self._lrs() if lrs is None else lrs)

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

    def epoch_metrics(self, val: SequenceData) -> list[dict[str, float]]:
        """Each member's epoch metrics (train loss, validation metrics, learning rates, gradient
        norm, clipped share), read from the device in one transfer."""
        val_m = self.evaluate(val)
        names = list(val_m)
        steps = self.steps_per_epoch
        sums = (self.loss_sum / steps, self.norm_sum / steps, self.clipped / steps)
        table = torch.stack([*sums, *(val_m[n].float() for n in names)]).T.tolist()
        lrs = self.schedule.host_lrs(self.step_count - 1)
        out = []
        for s, row in enumerate(table):
            metrics = {"train_loss": row[0]} | {f"val_{n}": v for n, v in zip(names, row[3:], strict=True)}
            metrics |= {"lr/body": lrs[s][0], "lr/head": lrs[s][1], "grad_norm": row[1], "clip_frac": row[2]}
            if self.model.head is None:
                metrics.pop("lr/head")
            out.append(metrics)
        return out

    def select_(self, slots: Sequence[int]) -> None:
        """Keep only the members in ``slots`` (compaction); captured graphs are dropped."""
        idx = torch.tensor(list(slots), dtype=torch.long, device=self.device)
        self.model.select_(idx)
        self.optimizer.select_(idx)
        self.loss_fn.select_(idx)
        self.schedule.select(slots)
        self.live = self.live[idx]
        self.best = {name: v[idx].contiguous() for name, v in self.best.items()}
        if len(self.augs) > 1:
            self.augs = [self.augs[i] for i in slots]
        self.loss_sum = torch.zeros(self.k, device=self.device)
        self.norm_sum = torch.zeros(self.k, device=self.device)
        self.clipped = torch.zeros(self.k, device=self.device)
        self._graphs, self._static = {}, {}
