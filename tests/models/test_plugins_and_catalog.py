"""The shipped plugin examples train through the real trainer; `tunelab models` lists every family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.helpers import TinySplits
from typer.testing import CliRunner

import tunelab  # noqa: F401
from tunelab.cli import app
from tunelab.config import load_config
from tunelab.data.base import SequenceData
from tunelab.errors import UserError
from tunelab.models import build_model
from tunelab.models.catalog import describe_families, field_infos, type_name
from tunelab.plugins import load_plugin
from tunelab.registry import DATASETS, MODELS
from tunelab.train import fit

PLUGINS = Path(__file__).parents[2] / "examples" / "plugins"


def _splits(data: SequenceData) -> TinySplits:
    n = len(data)
    idx = torch.arange(n)
    return TinySplits(
        data.subset(idx[: n // 2]), data.subset(idx[n // 2 : 3 * n // 4]), data.subset(idx[3 * n // 4 :]), data.meta
    )


@pytest.mark.parametrize(
    ("plugin", "dataset", "model"),
    [
        ("graph_attention.py", "graph_motifs", "graph_attention"),
        ("conv_gru_video.py", "moving_blobs", "conv_gru_video"),
    ],
)
def test_plugin_trains_through_fit(plugin: str, dataset: str, model: str) -> None:
    load_plugin(str(PLUGINS / plugin))
    data = DATASETS.get(dataset).fn(n=64)
    cfg = load_config(
        None, [f"model.name={model}", "train.max_epochs=2", "train.batch_size=16", "data.name=" + dataset]
    )
    result = fit(cfg, data=_splits(data))
    assert result.epochs == 2 and result.n_params > 0
    assert 0 <= result.metrics["test_acc"] <= 1
    if model == "conv_gru_video":  # the learned temporal constant is logged every epoch
        alphas = [r.metrics["extra/alpha"] for r in result.history]
        assert len(alphas) == 2 and all(0 < a < 1 for a in alphas)


def test_conv_gru_video_rejects_a_wrong_frame_size() -> None:
    load_plugin(str(PLUGINS / "conv_gru_video.py"))
    meta = DATASETS.get("moving_blobs").fn(n=4, size=6).meta
    cfg = MODELS.get("conv_gru_video").config()  # type: ignore[misc]
    with pytest.raises(UserError, match="set model.frame_size=6"):
        build_model(cfg, meta)


def test_graph_adjacency_matters() -> None:
    """Same node features, different edges: a graph model must see the difference."""
    load_plugin(str(PLUGINS / "graph_attention.py"))
    data = DATASETS.get("graph_motifs").fn(n=6)
    torch.manual_seed(0)
    model = build_model(MODELS.get("graph_attention").config(), data.meta).eval()  # type: ignore[misc]
    a = model(data.x, data.lengths, data.extras["adj"])
    b = model(data.x, data.lengths, torch.zeros_like(data.extras["adj"]))
    assert not torch.allclose(a, b)


def test_field_infos_tag_shape_and_value_fields() -> None:
    infos = {f.name: f for f in field_infos(MODELS.get("transformer").config)}  # type: ignore[arg-type]
    assert "name" not in infos
    assert infos["d_model"].kind == "shape" and infos["dropout"].kind == "value"
    assert infos["positional"].type == "sinusoidal|learned|none" and infos["positional"].default == "sinusoidal"
    assert type_name(int | None) == "int | None"


def test_describe_families_counts_parameters_or_says_why_not() -> None:
    from tunelab.data.base import DataMeta

    seq2seq = DataMeta("noisy", channels=2, max_len=50, task="seq2seq", n_outputs=2)
    by_name = {f.name: f for f in describe_families(seq2seq)}
    assert by_name["unet1d"].n_params and by_name["unet1d"].n_params > 0
    assert by_name["bilstm_enhanced"].n_params is None and "does not support seq2seq" in by_name["bilstm_enhanced"].note


def test_models_command_lists_every_family() -> None:
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = {f["name"]: f for f in json.loads(result.output)}
    assert set(MODELS.names()) <= set(listed)
    gru = listed["gru"]
    assert (
        gru["n_params"] > 0
        and {"name": "hidden_dim", "type": "int", "default": 128, "kind": "shape"}.items()
        <= next(f for f in gru["fields"] if f["name"] == "hidden_dim").items()
    )


def test_models_command_table_and_unknown_name() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["models", "tcn"], env={"COLUMNS": "200"})
    assert (
        result.exit_code == 0
        and "model.kernel_size" in result.output
        and "parameters on japanese_vowels" in result.output
    )
    assert "model.d_model" not in result.output
    bad = runner.invoke(app, ["models", "transfomer"])
    assert isinstance(bad.exception, UserError) and "did you mean 'transformer'" in str(bad.exception)


@pytest.mark.parametrize("stem", ["graph_attention", "conv_gru_video"])
def test_plugin_example_config_validates(stem: str) -> None:
    load_plugin(str(PLUGINS / f"{stem}.py"))
    cfg = load_config(PLUGINS / f"{stem}.yaml")
    assert cfg.model.name == stem and cfg.data.name in DATASETS
    data = DATASETS.get(cfg.data.name).fn(**{**cfg.data.options, "n": 8})
    out = build_model(cfg.model, data.meta)(x=data.x, lengths=data.lengths, **data.extras)
    assert out.shape == (len(data), data.meta.n_classes)


@pytest.mark.parametrize("stem", ["graph_attention", "conv_gru_video"])
def test_plugin_trains_through_the_cli(stem: str, tmp_path: Path) -> None:
    """`tunelab train --plugin X.py --config X.yaml` (shortened): a run directory with a summary."""
    args = ["train", "--plugin", str(PLUGINS / f"{stem}.py"), "--config", str(PLUGINS / f"{stem}.yaml")]
    args += [
        "--save-dir",
        str(tmp_path),
        "--name",
        "run",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "data.options.n=60",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["n_params"] > 0
    if stem == "conv_gru_video":
        lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 2 and all("extra/alpha" in json.loads(line) for line in lines)


def test_aliases_work_in_train_overrides_configs_and_the_models_command() -> None:
    from tunelab.config import validate_config

    cfg = load_config(None, ["model.name=bigru", "model.hidden_dim=8"])
    assert cfg.model.name == "gru" and cfg.model.bidirectional is True and cfg.model.hidden_dim == 8
    assert load_config(None, ["model.name=temporalcnn"]).model.name == "tcn"
    assert validate_config({"model": {"name": "bilstm_standard"}}).model.attention_pooling is False  # type: ignore[attr-defined]
    runner = CliRunner()
    shown = runner.invoke(app, ["models", "bigru"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "model.hidden_dim" in shown.output and "model.bidirectional=True" in shown.output
    listed = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert all(alias in listed.output for alias in ("bigru", "bilstm", "temporalcnn", "standard_bilstm"))
