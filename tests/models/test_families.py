"""Behaviour specific to single families: causality, empty rows, U-Net lengths, seed 000 variants."""

from __future__ import annotations

import pytest
import torch

from tunelab.config import apply_overrides, validate_config
from tunelab.data.base import DataMeta
from tunelab.errors import UserError
from tunelab.models import build_model, count_parameters
from tunelab.models.base import AttentionPool
from tunelab.models.bilstm_enhanced import BiLSTMEnhancedConfig, variant
from tunelab.models.tcn import TCNConfig
from tunelab.models.transformer import TransformerConfig
from tunelab.models.unet1d import UNet1DConfig

CLS = DataMeta("tiny", channels=3, max_len=10, n_classes=4)
S2S = DataMeta("tiny", channels=3, max_len=10, task="seq2seq", n_outputs=3)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
def test_transformer_fully_masked_row_is_finite(positional: str) -> None:
    model = build_model(TransformerConfig(d_model=16, num_heads=4, ff_dim=16, positional=positional), CLS).eval()
    out = model(torch.randn(3, 6, 3), torch.tensor([6, 0, 2]))
    assert torch.isfinite(out).all()


def test_attention_pool_empty_row_is_finite() -> None:
    pooled = AttentionPool(8, num_heads=2)(torch.randn(2, 5, 8), torch.tensor([[True] * 5, [False] * 5]))
    assert torch.isfinite(pooled).all()


def test_transformer_learned_positions_beyond_max_len() -> None:
    """Padding past the table (data longer than meta.max_len) reuses its last row instead of failing."""
    model = build_model(TransformerConfig(d_model=16, num_heads=2, ff_dim=16, positional="learned"), CLS).eval()
    x = torch.randn(2, 25, 3)
    assert model(x, torch.tensor([25, 4])).shape == (2, 4)


def test_transformer_heads_must_divide_width() -> None:
    with pytest.raises(UserError, match="num_heads"):
        validate_config(apply_overrides({}, {"model.name": "transformer", "model.d_model": 30, "model.num_heads": 4}))


@pytest.mark.parametrize("causal", [True, False])
def test_tcn_causal_outputs_ignore_the_future(causal: bool) -> None:
    model = build_model(TCNConfig(channels=8, num_blocks=2, causal=causal), S2S).eval()
    x = torch.randn(1, 10, 3)
    changed = x.clone()
    changed[:, 6:] += 1.0
    lengths = torch.tensor([10])
    same = torch.allclose(model(x, lengths)[:, :6], model(changed, lengths)[:, :6])
    assert same is causal


@pytest.mark.parametrize("t", [1, 7, 13, 16])
def test_unet_any_length_seq2seq(t: int) -> None:
    model = build_model(UNet1DConfig(depth=3, base_channels=4), S2S).eval()
    lengths = torch.tensor([t, max(1, t // 2)])
    out = model(torch.randn(2, t, 3), lengths)
    assert out.shape == (2, t, 3)
    assert (out[1, int(lengths[1]) :] == 0).all()  # padded steps are exactly zero


def test_unet_residual_output_is_identity_plus_correction() -> None:
    """With the head zeroed, a residual U-Net returns its input: denoising starts from 'no change'."""
    model = build_model(UNet1DConfig(depth=2, base_channels=4), S2S).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    x = torch.randn(2, 9, 3)
    torch.testing.assert_close(model(x, torch.tensor([9, 9])), x)


def test_bilstm_standard_is_a_plain_bilstm() -> None:
    cfg = validate_config(apply_overrides({}, variant("standard"))).model
    assert isinstance(cfg, BiLSTMEnhancedConfig)
    standard = build_model(cfg, CLS)
    enhanced = build_model(validate_config(apply_overrides({}, variant("enhanced"))).model, CLS)
    assert {name.split(".")[0] for name, _ in standard.named_parameters()} == {"lstms", "head"}
    assert {"proj", "conv", "gates", "norms", "cross", "attn_pool"} <= {
        n.split(".")[0] for n, _ in enhanced.named_parameters()
    }
    assert count_parameters(standard) < count_parameters(enhanced)


def test_bilstm_input_dropouts_drop_whole_steps_and_channels() -> None:
    torch.manual_seed(0)
    model = build_model(BiLSTMEnhancedConfig(hidden_dim=8, temporal_dropout=0.5, feature_dropout=0.0), CLS).train()
    dropped = model._input_dropout(torch.ones(4, 50, 3))
    per_step = (dropped == 0).all(-1)
    assert per_step.any() and ((dropped == 0).any(-1) == per_step).all()  # a step is dropped whole or kept whole
    model = build_model(BiLSTMEnhancedConfig(hidden_dim=8, temporal_dropout=0.0, feature_dropout=0.5), CLS).train()
    dropped = model._input_dropout(torch.ones(4, 50, 3))
    per_channel = (dropped == 0).all(1)
    assert per_channel.any() and ((dropped == 0).any(1) == per_channel).all()


def test_unsupported_task_is_a_user_error() -> None:
    with pytest.raises(UserError, match="bilstm_enhanced does not support seq2seq"):
        build_model(BiLSTMEnhancedConfig(), S2S)


@pytest.mark.parametrize("name", ["gru", "lstm"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_over_padding_equals_each_sequence_alone(name: str, pooling: str, bidirectional: bool) -> None:
    # the recurrence runs over the padded batch (no packing): each sequence's output must equal
    # what the model gives it alone, trimmed to its own length
    torch.manual_seed(0)
    over = [
        f"model.name={name}",
        "model.num_layers=2",
        f"model.pooling={pooling}",
        f"model.bidirectional={bidirectional}",
    ]
    cfg = validate_config(apply_overrides({}, over))
    model = build_model(cfg.model, CLS).eval()
    x, lengths = torch.randn(5, 10, 3), torch.tensor([10, 3, 7, 1, 5])
    x = x * (torch.arange(10)[None, :, None] < lengths[:, None, None])
    batched = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", [torch.nn.GRU, torch.nn.LSTM])
def test_a_bidirectional_layer_off_the_gpu_equals_packed_sequences_and_their_gradients(kind: type) -> None:
    """On a CPU both directions run as forward-only passes (the backward one over each row's valid
    steps reversed): the outputs and every gradient are those of packed sequences."""
    from tunelab.models.layers import bidirectional_rnn

    torch.manual_seed(0)
    rnn = kind(3, 6, batch_first=True, bidirectional=True)
    lengths = torch.tensor([10, 3, 7, 1, 10])
    x = torch.randn(5, 10, 3) * (torch.arange(10)[None, :, None] < lengths[:, None, None])
    got = bidirectional_rnn(rnn, x, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    want = torch.nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=10)[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)  # padded steps zero in both
    weights = torch.randn_like(want)
    grads = [torch.autograd.grad((out * weights).sum(), list(rnn.parameters())) for out in (got, want)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "fcn", "width": 4},
        {"name": "resnet", "base_filters": 4, "res_blocks": 2},
        {"name": "inception_time", "nb_filters": 2, "num_modules": 3, "bottleneck": 2, "longest_kernel": 8},
    ],
    ids=lambda o: o["name"],
)
def test_batchnorm_families_ignore_padding_in_training_too(overrides: dict[str, object]) -> None:
    """Training-mode BatchNorm statistics count valid steps only: appended noise padding changes
    neither the outputs nor the running statistics."""
    torch.manual_seed(0)
    model = build_model(validate_config({"model": overrides}).model, CLS).train()
    twin = build_model(validate_config({"model": overrides}).model, CLS).train()
    twin.load_state_dict(model.state_dict())
    x, lengths = torch.randn(5, 10, 3), torch.tensor([10, 7, 3, 1, 9])
    x = x * (torch.arange(10)[None, :, None] < lengths[:, None, None])
    padded = torch.cat([x, torch.randn(5, 6, 3)], dim=1)  # noise beyond every sequence's end
    with torch.no_grad():
        out, out_padded = model(x, lengths), twin(padded, lengths)
    torch.testing.assert_close(out, out_padded, rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_inception_time_paper_defaults() -> None:
    """Depth 6, residual every 3 (two shortcuts), kernels 40/20/10, 4x32 channels into the head."""
    model = build_model(validate_config({"model": {"name": "inception_time"}}).model, CLS)
    assert len(model.modules_) == 6 and len(model.shortcuts) == 2
    assert [c.conv.kernel_size[0] for c in model.modules_[1].convs] == [40, 20, 10]
    assert model.head.in_features == 128
    assert model.modules_[0].bottleneck is not None  # 3 input channels > 1
