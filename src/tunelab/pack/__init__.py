"""Trial packs: K trials that share tensor shapes train as one stacked computation.

Parameters carry a leading member dimension K, one batch feeds every member, and each member's
value hyperparameters (learning rate and schedule, weight decay, betas, clipping, dropout rates,
loss parameters) are K-vectors.  ``fit_pack`` returns one ordinary ``RunResult`` per member.
"""

from __future__ import annotations

from tunelab.pack.engine import PackEngine
from tunelab.pack.layers import PackedDropout, PackedLinear, PackedRNN
from tunelab.pack.model import NotPackable, PackedModel, pack_models
from tunelab.pack.optim import PackedOptimizer, PackedSchedule
from tunelab.pack.trainer import fit_pack, pack_group_key, packable

__all__ = [
    "NotPackable",
    "PackEngine",
    "PackedDropout",
    "PackedLinear",
    "PackedModel",
    "PackedOptimizer",
    "PackedRNN",
    "PackedSchedule",
    "fit_pack",
    "pack_group_key",
    "pack_models",
    "packable",
]
