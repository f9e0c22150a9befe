"""The training step of the one loop: one trial (a pack of one), the base of a stacked pack.

:class:`Engine` owns what every trial's training shares: the batch order (from the first
config's seed), augmentation, the optimizer-step count, the epoch's device-side sums (loss,
gradient norm, clipped steps: read once per epoch, never per step) and the best weights so far.
Here it trains one ordinary model with torch's optimizer and ``clip_grad_norm_`` (cuDNN's fused
GRU/LSTM on a GPU); :class:`tunelab.pack.engine.PackEngine` is the same engine with K stacked
members (its own model, optimizer, loss and CUDA-graph capture).  The epoch loop and each
trial's bookkeeping (:mod:`tunelab.train.loop`, :mod:`tunelab.train.member`) are the same for both.

Our own loop (not a framework's) on purpose, for speed: data stays on the device and a batch is
an index slice whose order is uploaded once per pass; nothing in a step waits for the device.
On a CPU the engine flushes denormal floats to zero (``torch.set_flush_denormal``, for the whole
process): their arithmetic is many times slower, and a recurrent model's gradients over long
sequences fall into that range.

CUDA graphs (``graphs=True``, the default; CUDA only): after the first step, the whole step
(forward, backward, clipping, optimizer, for one trial torch's fused capturable Adam/AdamW with the
learning rates as device tensors) is captured in one graph per length bucket (batch lengths
rounded up to a multiple of ``bucket_step``; padding is masked, so a bucket changes no result) and
replayed; a batch of another size (the last, partial one) runs eagerly.  Capturing warms up on a
side stream and then restores the weights, optimizer state, epoch sums and buffers, so it does not
change training.  A step that cannot be captured (a forward that waits on the host, such as packed
sequences, which a model says with ``capturable = False``; SGD, whose learning rate torch cannot
read from the device) trains eagerly; a failed capture says why once, in a warning, and the engine
stays eager.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.config import ExperimentConfig
from tunelab.data.base import DataMeta, SequenceData
from tunelab.data.batching import batch_indices
from tunelab.models import build_model
from tunelab.train.device import seed_everything
from tunelab.train.losses import build_loss
from tunelab.train.optim import LRSchedule, build_optimizer
from tunelab.train.result import autocast, evaluate

__all__ = ["Engine"]

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Tensor]  # (host indices, device indices)


class Engine:
    """One trial's model, optimizer, loss, schedule, batch order and epoch sums.

    ``train_epoch()`` runs one epoch of optimizer steps and returns the samples each member saw;
    ``loss_sum``, ``norm_sum`` and ``clipped`` (K-vectors on the device, K = 1 here) hold the
    epoch's sums; ``epoch_metrics(val)`` reads them with the validation metrics, one dict a member.
    """

    model: nn.Module

    def __init__(
        self,
        cfgs: Sequence[ExperimentConfig],
        meta: DataMeta,
        train: SequenceData,
        device: torch.device,
        *,
        graphs: bool = True,
        bucket_step: int = 16,
    ) -> None:
        self.cfgs = list(cfgs)
        self.meta, self.train, self.device = meta, train, device
        if device.type == "cpu":
            # gradients that vanish over long sequences reach denormal floats, on which a CPU's
            # matmuls crawl: a bidirectional GRU step on 128 x 500 steps took 11.6 s, flushed 2.7 s
            torch.set_flush_denormal(True)
        first = self.cfgs[0]
        self.tc = first.train
        self.graphs = graphs and device.type == "cuda" and not train.extras and self._capturable()
        self.bucket_step = bucket_step
        self._graphs: dict[int, Any] = {}
        self._static: dict[int, dict[str, Tensor]] = {}
        self._pool: Any = None
        self.graph_error: str | None = None
        self.bucket = first.data.bucket
        self.amp = first.train.amp
        micro = math.ceil(len(train) / self.tc.batch_size)
        self.steps_per_epoch = self.tc.steps_per_epoch or max(1, micro // self.tc.grad_accum)
        self.epoch_steps = self.steps_per_epoch  # steps the last epoch ran (fewer when cut at a stop time)
        self._build()
        self.gen = torch.Generator().manual_seed(first.seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(first.seed + 1)
        augs = [c.data.augment for c in self.cfgs]
        self.augs = augs if any(a != augs[0] for a in augs) else augs[:1]
        self.live = torch.ones(self.k, dtype=torch.bool, device=device)
        self.step_count = 0
        self._cpu_lengths = train.host_lengths
        self._order: list[Batch] = []
        self.loss_sum = torch.zeros(self.k, device=device)
        self.norm_sum = torch.zeros(self.k, device=device)
        self.clipped = torch.zeros(self.k, device=device)
        self.best = {n: v.detach().clone() for n, v in self.weights().items()}

    # ------------------------------------------------------------------ the trial's parts

    def _build(self) -> None:
        """The ordinary model (from the config's seed, as every run of it), loss, optimizer, schedule."""
        cfg = self.cfgs[0]
        seed_everything(cfg.seed)  # the model's init does not depend on how data was prepared
        self.model = build_model(cfg.model, self.meta).to(self.device)
        self.graphs = self.graphs and getattr(self.model, "capturable", True)
        self.loss_fn: nn.Module = build_loss(cfg.loss, self.meta, self.train.y.cpu()).to(self.device)
        self.optimizer: Any = build_optimizer(self.model, self.tc, capturable=self.graphs)
        self.schedule: Any = LRSchedule(self.tc, self.steps_per_epoch)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.clip = self.tc.clip_norm if self.tc.clip_norm is not None else math.inf

    def _capturable(self) -> bool:
        """Whether this trial's optimizer can run inside a CUDA graph (torch's SGD reads its
        learning rate on the host)."""
        return self.tc.optimizer != "sgd"

    @property
    def k(self) -> int:
        """Members trained by one step (1 here)."""
        return 1

    def member_model(self, slot: int) -> nn.Module:
        """The ordinary model that member ``slot``'s result holds (here the trained model itself)."""
        return self.model

    def weights(self) -> dict[str, Tensor]:
        """The live weights and buffers, as the best-state copy holds them."""
        return self.model.state_dict()

    def keep_best(self, slots: Sequence[int]) -> None:
        """Copy the live weights of ``slots`` (members whose monitored metric improved) on the
        device, into buffers allocated once."""
        if slots:
            for name, v in self.weights().items():
                self.best[name].copy_(v)

    def best_state(self, slot: int) -> dict[str, Tensor]:
        """Member ``slot``'s best weights as an ordinary single-model state dict: the engine's own
        tensors, to be copied (``load_state_dict``) before the engine trains on."""
        return self.best

    def final_outputs(
        self, models: Sequence[nn.Module], val: SequenceData, test: SequenceData
    ) -> list[tuple[Tensor, Tensor]] | None:
        """The val and test outputs of finished members' models (their best weights), computed
        together; None: each model is evaluated alone (as here: one trial has one model)."""
        return None

    def on_epoch_end(self, slot: int, val_loss: float, steps_left: int | None = None) -> None:
        """The plateau schedule of member ``slot`` sees its validation loss; with ``steps_left``
        (a known stop that near) its learning rate anneals to zero over those steps."""
        self.schedule.on_epoch_end(val_loss, self.step_count, steps_left)

    def select_(self, slots: Sequence[int]) -> None:
        """Keep only the members in ``slots`` (compaction; a pack of one never compacts)."""
        raise NotImplementedError("a single trial has nothing to compact")

    # ------------------------------------------------------------------ batches

    def reset_sums(self) -> None:
        """Zero the epoch sums in place (captured graphs add into these very tensors)."""
        for t in (self.loss_sum, self.norm_sum, self.clipped):
            t.zero_()

    def _next_batch(self) -> Batch:
        """(host indices, device indices) of the next batch."""
        if not self._order:  # a fresh shuffled pass whenever the previous one is used up
            batches = batch_indices(
                len(self.train),
                self.tc.batch_size,
                shuffle=True,
                generator=self.gen,
                lengths=self._cpu_lengths,
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
        """The numeric settings of this engine's work (a pack may switch TF32 on)."""
        yield

    def train_epoch(self, steps: int | None = None, until: float | None = None) -> int:
        """One epoch of optimizer steps (or ``steps`` of them), cut short at clock time ``until``
        (``time.time()``; the first step always runs); returns the samples each member trained on."""
        self.model.train()
        self.reset_sums()
        seen = self.epoch_steps = 0
        with self._precision():
            for n in range(steps if steps is not None else self.steps_per_epoch):
                if n and until is not None and time.time() >= until:  # a host clock read: no device sync
                    break
                seen += self._step()
                self.epoch_steps += 1
        return seen

    def _step(self) -> int:
        if self.graphs and self.tc.grad_accum == 1 and len(self.augs) == 1:
            idx, dev_idx = self._next_batch()
            # the first step runs eagerly: it creates the optimizer state that the graph updates
            if len(idx) == self.tc.batch_size and self.step_count > 0:
                return self._graph_step(idx, dev_idx)
            return self._eager_step([(idx, dev_idx)])
        return self._eager_step([self._next_batch() for _ in range(self.tc.grad_accum)])

    def _forward_backward(self, inputs: dict[str, Tensor], y: Tensor, scale: float) -> None:
        with autocast(self.device, self.amp):
            out = self.model(**inputs)
        losses = self.loss_fn(out, y, inputs["lengths"])  # a scalar here, a K-vector in a pack
        (losses.sum() * scale).backward()
        self.loss_sum += losses.detach() * scale

    def _eager_step(self, batches: list[Batch]) -> int:
        seen = 0
        for idx, dev_idx in batches:
            inputs, y = self._batch(idx, dev_idx, self._t_max(idx))
            self._forward_backward(inputs, y, 1.0 / len(batches))
            seen += len(idx)
        self._update()
        self.optimizer.zero_grad()
        self.step_count += 1
        return seen

    def _update(self, lrs: Tensor | None = None) -> None:
        """Schedule, clip, step.  A captured step (``lrs`` given) finds its learning rates already
        written by :meth:`_load_lrs`, outside the graph."""
        if lrs is None:
            self.schedule.apply(self.optimizer, self.step_count)
        if math.isinf(self.clip):  # no clipping: the norm (a reported metric) without a pass scaling by 1
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        else:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.norm_sum += norm
        self.clipped += (norm > self.clip).float()
        self.optimizer.step()

    # ------------------------------------------------------------------ CUDA graphs

    def _static_lrs(self) -> Tensor:
        """A captured step's learning-rate input (none here: the optimizer's groups hold device
        tensors, which :meth:`_load_lrs` writes before each replay)."""
        return torch.zeros(0, device=self.device)

    def _load_lrs(self, static: Tensor) -> None:
        """This step's learning rates into the captured step's inputs."""
        self.schedule.apply(self.optimizer, self.step_count)

    def _state_tensors(self) -> list[Tensor]:
        """Every tensor a step changes: weights, optimizer state, epoch sums and buffers (a capture
        runs the step three times and must leave no trace)."""
        opt = [v for p in self.params for v in self.optimizer.state[p].values() if isinstance(v, Tensor)]
        sums = [self.loss_sum, self.norm_sum, self.clipped]
        return [p.data for p in self.params] + opt + sums + list(self.model.buffers())

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
        self._load_lrs(st["lrs"])
        self._graphs[t].replay()
        self.step_count += 1
        return len(idx)

    def _graph_body(self, st: dict[str, Tensor]) -> None:
        self._forward_backward({"x": st["x"], "lengths": st["lengths"]}, st["y"], 1.0)
        self._update(st["lrs"])

    def _capture(self, t: int, idx: Tensor, dev_idx: Tensor) -> bool:
        """Capture the step for bucket ``t``; False (and eager from now on) if it cannot be."""
        inputs, y = self._batch(idx, dev_idx, t)
        st = {"x": inputs["x"].clone(), "lengths": inputs["lengths"].clone(), "y": y.clone()}
        st["lrs"] = self._static_lrs()
        self._load_lrs(st["lrs"])
        saved = [v.detach().clone() for v in self._state_tensors()]
        stream, current = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)
        stream.wait_stream(current)
        try:
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up: cuBLAS/cuDNN handles, compiled kernels, allocator
                    self._graph_body(st)
                    self.optimizer.zero_grad()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self._restore(saved)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._graph_body(st)
            self.optimizer.zero_grad()  # the graph keeps its own gradient buffers
            self._restore(saved)
        except RuntimeError as exc:  # e.g. a forward that waits on the host (packed sequences)
            # a capture that fails at its end leaves torch.cuda.graph's side stream current
            torch.cuda.set_stream(current)
            torch.cuda.synchronize(self.device)
            self.optimizer.zero_grad()
            self._restore(saved)
            self.graph_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log.warning("CUDA graph capture failed (%s); this run trains eagerly", self.graph_error)
            self.graphs = False
            return False
        self._graphs[t] = graph
        self._static[t] = st
        return True

    @torch.no_grad()
    def _restore(self, saved: list[Tensor]) -> None:
        for dst, src in zip(self._state_tensors(), saved, strict=True):
            dst.copy_(src)

    # ------------------------------------------------------------------ the epoch's report

    def epoch_metrics(self, val: SequenceData) -> list[dict[str, float]]:
        """Each member's epoch metrics: train loss, validation metrics, learning rate per group,
        gradient norm (mean, before clipping), clipped share, and the model's own scalars."""
        steps = max(1, self.epoch_steps)
        train_loss = float(self.loss_sum) / steps  # one host sync per epoch
        val_metrics, _ = evaluate(self.model, val, self.loss_fn, amp=self.amp)  # type: ignore[arg-type]
        metrics = {"train_loss": train_loss} | {f"val_{k}": v for k, v in val_metrics.items()}
        for g in self.optimizer.param_groups:
            metrics[f"lr/{g['name']}"] = float(g["lr"])  # a device tensor when steps are captured
        metrics["grad_norm"] = float(self.norm_sum) / steps
        metrics["clip_frac"] = float(self.clipped) / steps
        extra_scalars = getattr(self.model, "extra_scalars", None)
        if callable(extra_scalars):
            metrics |= {f"extra/{k}": float(v) for k, v in extra_scalars().items()}
        return [metrics]
