"""tunelab's default search space, used when a study gives none (``tunelab tune --model gru``).

Shared training knobs, plus each built-in family's own.  ``model.*`` parameters are sampled
only for families whose config has that field, so one space serves a multi-family study.
The ranges are those the seeds searched (seed 000's list; seed 004's sizes).
"""

from __future__ import annotations

from typing import Any

from tunelab.config.study import ParamSpec
from tunelab.registry import MODELS

__all__ = ["COMMON", "FAMILY_SPACES", "default_space"]

COMMON: dict[str, dict[str, Any]] = {
    "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "train.batch_size": {"choices": [16, 32, 64]},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "data.augment.jitter": {"low": 0.0, "high": 0.2},
}

FAMILY_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "gru": {
        "model.hidden_dim": {"choices": [32, 64, 128, 256]},
        "model.num_layers": {"low": 1, "high": 3},
        "model.bidirectional": {"choices": [False, True]},
    },
    "conv_gru": {
        "model.conv_channels": {"choices": [32, 64, 128]},
        "model.kernel_size": {"choices": [3, 5, 7]},
    },
    "bilstm_enhanced": {
        "model.num_heads": {"choices": [2, 4, 8]},
        "model.temporal_dropout": {"low": 0.0, "high": 0.3},
        "model.feature_dropout": {"low": 0.0, "high": 0.3},
        "model.temporal_conv": {"choices": [False, True]},
        "model.conv_kernel": {"choices": [3, 5, 7], "when": {"model.temporal_conv": True}},
        "model.cross_resolution": {"choices": [False, True]},
        "model.gated_residual": {"choices": [False, True]},
    },
    "transformer": {
        "model.d_model": {"choices": [32, 64, 128]},
        "model.num_heads": {"choices": [2, 4, 8]},
        "model.ff_dim": {"choices": [64, 128, 256]},
        "model.positional": {"choices": ["sinusoidal", "learned"]},
    },
    "tcn": {
        "model.channels": {"choices": [32, 64, 128]},
        "model.num_blocks": {"low": 2, "high": 6},
        "model.kernel_size": {"choices": [3, 5, 7]},
        "model.residual": {"choices": [False, True]},
    },
    "unet1d": {
        "model.depth": {"low": 2, "high": 4},
        "model.base_channels": {"choices": [8, 16, 32]},
        "model.kernel_size": {"choices": [3, 5, 7]},
    },
    # the TSC conv families: a few widths/depths around the papers' settings, so packs form
    "fcn": {"model.width": {"choices": [64, 128]}},
    "resnet": {"model.base_filters": {"choices": [32, 64]}},
    "inception_time": {
        "model.nb_filters": {"choices": [16, 32]},
        "model.num_modules": {"choices": [3, 6]},
    },
}
# Families sharing fields with another family reuse its ranges (one distribution per name).
FAMILY_SPACES["lstm"] = FAMILY_SPACES["gru"]
FAMILY_SPACES["bilstm_enhanced"] = {
    "model.hidden_dim": FAMILY_SPACES["gru"]["model.hidden_dim"],
    "model.num_layers": FAMILY_SPACES["gru"]["model.num_layers"],
    **FAMILY_SPACES["bilstm_enhanced"],
}
FAMILY_SPACES["transformer"]["model.num_layers"] = FAMILY_SPACES["gru"]["model.num_layers"]
FAMILY_SPACES["conv_gru"] = {"model.hidden_dim": FAMILY_SPACES["gru"]["model.hidden_dim"], **FAMILY_SPACES["conv_gru"]}


def default_space(families: list[str]) -> dict[str, ParamSpec]:
    """The shared knobs and the spaces of ``families`` (registered names), merged.

    A field that one family defines and another lacks is still listed once; the sampler asks for
    it only when the trial's family has it.  Plugin families get the shared knobs only.
    """
    merged: dict[str, dict[str, Any]] = dict(COMMON)
    for fam in families:
        for key, spec in FAMILY_SPACES.get(fam, {}).items():
            merged.setdefault(key, spec)
    fields: set[str] = set()
    for fam in families:
        if fam in MODELS and MODELS.get(fam).config is not None:
            fields |= set(MODELS.get(fam).config.model_fields)  # type: ignore[union-attr]
    return {
        k: ParamSpec.model_validate(v)
        for k, v in merged.items()
        if not k.startswith("model.") or k.split(".")[1] in fields
    }
