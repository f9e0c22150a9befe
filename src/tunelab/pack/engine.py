"""The training step of a pack, eager or captured in CUDA graphs.

One step: gather the shared batch on the device, run all K members (one stacked forward and
backward), clip each member's gradient, and update every member with its own hyperparameters.
Nothing in a step waits for the device: batch order is uploaded once per pass over the data,
sequence lengths are read from a host copy, and losses and gradient norms accumulate on the
device until the epoch ends.

With ``graphs=True`` on CUDA, the whole stacked step (forward, backward, per-member clipping,
the vectorised optimizer with each member's learning rates as a static input) is captured and
replayed per length bucket, by the same code as one trial's step
(:class:`~tunelab.train.engine.Engine`, "CUDA graphs").
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
from tunelab.pack.model import NotPackable, PackedModel, pack_models
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
        super().__init__(cfgs, meta, train, device, graphs=graphs, bucket_step=bucket_step)

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

    @property
    def _recurrent(self) -> bool:
        return any(isinstance(m, PackedRNN) for m in self.model.modules())

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
        return {name: v[slot] for name, v in self.best.items()}  # views: Member.keep copies them once

    def final_outputs(
        self, models: Sequence[nn.Module], val: SequenceData, test: SequenceData
    ) -> list[tuple[Tensor, Tensor]] | None:
        """Members that stop together (the study's deadline stops a whole pack at once) are run
        as one stack of their kept models: one stacked pass over val and test instead of one
        pass per member.  A single member runs alone (None), and so does each member when the stack
        cannot run (out of memory beside the live pack): this is a shortcut, never a failure.
        Recurrent members on a GPU run alone too: cuDNN's fused GRU/LSTM runs one member's pass in
        a few kernels a batch, the stacked recurrence (uncompiled here: a new pack size would
        recompile) launches several per time step, so the stack pays only for many members."""
        if len(models) < 2 or (self.device.type == "cuda" and self._recurrent):
            return None
        try:
            packed = pack_models(models).to(self.device)
            val_out, test_out = (self._predict(packed, d) for d in (val, test))
        except (RuntimeError, NotPackable) as exc:
            log.warning("the finished members' stacked evaluation failed (%s); each is evaluated alone", exc)
            return None
        return [(val_out[j], test_out[j]) for j in range(len(models))]

    def on_epoch_end(self, slot: int, val_loss: float, steps_left: int | None = None) -> None:
        self.schedule.on_epoch_end(slot, val_loss, self.step_count, steps_left)

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

    def _update(self, lrs: Tensor | None = None) -> None:
        """Clip each member to its own norm, step each with its own learning rates (``lrs``: a
        captured step's static copy; else this step's)."""
        norms = clip_per_member(self.optimizer.params, self.optimizer.clip)
        self.norm_sum += norms
        self.clipped += (norms > self.optimizer.clip).float()
        self.optimizer.step(self._lrs() if lrs is None else lrs)

    def _capturable(self) -> bool:
        return True  # the vectorised optimizer reads every learning rate from the device

    def _static_lrs(self) -> Tensor:
        return torch.zeros_like(self._lrs())

    def _load_lrs(self, static: Tensor) -> None:
        static.copy_(self._lrs())

    def _state_tensors(self) -> list[Tensor]:
        opt = [v for s in self.optimizer.state for v in s.values()]
        sums = [self.loss_sum, self.norm_sum, self.clipped, self.optimizer.steps]
        return [p.data for p in self.optimizer.params] + opt + sums + list(self.model.buffers())

    # ------------------------------------------------------------------ evaluation

    def predict(self, data: SequenceData, batch_size: int = 256) -> Tensor:
        """Every member's outputs for every row of ``data``: ``[K, N, ...]`` (float32)."""
        return self._predict(self.model, data, batch_size)

    @torch.no_grad()
    def _predict(self, model: PackedModel, data: SequenceData, batch_size: int = 256) -> Tensor:
        model.eval()
        outs = []
        for idx in batch_indices(len(data), batch_size, shuffle=False):
            inputs, _ = make_batch(data, idx)
            with self._precision(), autocast(self.device, self.amp):
                out = model(**inputs).float()
            if out.dim() == 4:  # seq2seq: pad back to the split's full length
                out = nn.functional.pad(out, (0, 0, 0, data.x.shape[1] - out.shape[2]))
            outs.append(out)
        return torch.cat(outs, 1) if outs else torch.empty(model.k, 0, device=self.device)

    @torch.no_grad()
    def evaluate(self, data: SequenceData) -> dict[str, Tensor]:
        """Loss and task metrics of every member on ``data``: K-vectors, names without prefix."""
        out = self.predict(data)
        metrics = {"loss": self.loss_fn(out, data.y, data.lengths)}
        return metrics | member_metrics(out, data.y, data.lengths, data.meta, data.x, data.y_scale)

    def epoch_metrics(self, val: SequenceData) -> list[dict[str, float]]:
        """Each member's epoch metrics (train loss, validation metrics, learning rates, gradient
        norm, clipped share), read from the device in one transfer."""
        val_m = self.evaluate(val)
        names = list(val_m)
        steps = max(1, self.epoch_steps)
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
        # the dropped graphs free their memory pool with them: a capture into a pool none of whose
        # graphs is alive can fail PyTorch's pool accounting, so the next capture starts a new one
        self._graphs, self._static, self._pool = {}, {}, None
