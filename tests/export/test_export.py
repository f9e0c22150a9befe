"""Exported models agree with PyTorch on batches of other sizes and lengths than the export example."""

from __future__ import annotations

import json

import pytest
import torch

import tunelab  # noqa: F401  (fills the model registry)
from tests.helpers import builtin_families, tiny_model_values, tiny_splits
from tunelab.config import load_config, validate_config
from tunelab.data.base import DataMeta
from tunelab.errors import UserError
from tunelab.export import export_model, export_run, probe_batch
from tunelab.models import build_model
from tunelab.models.base import supported_tasks
from tunelab.registry import MODELS

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

META = DataMeta("tiny", 3, 16, n_classes=4, class_names=("a", "b", "c", "d"))
#: sharper tiny shapes for some families (each family starts from its registry defaults, shrunk)
SETTINGS = {
    "gru": {"hidden_dim": 8, "num_layers": 2, "bidirectional": True},
    "lstm": {"hidden_dim": 8, "num_layers": 1, "pooling": "attention"},
    "transformer": {"d_model": 8, "num_heads": 2, "ff_dim": 16},
    "resnet": {"base_filters": 4, "res_blocks": 2},
    "inception_time": {"nb_filters": 4, "num_modules": 3, "longest_kernel": 8},
}
#: every registered family that classifies (the export checks are on a classification head)
FAMILIES = [f for f in builtin_families() if "classification" in supported_tasks(MODELS.get(f).config)]  # type: ignore[arg-type]


def _model(family: str, meta: DataMeta = META) -> torch.nn.Module:
    values = {
        **tiny_model_values(family, sizes={"hidden_dim": 8, "channels": 8, "conv_channels": 8, "width": 8}),
        **SETTINGS.get(family, {}),
    }
    cfg = validate_config({"model": {"name": family, **values}})
    torch.manual_seed(0)
    return build_model(cfg.model, meta).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_matches_pytorch_on_variable_length_input(family: str, tmp_path) -> None:
    model = _model(family)
    result = export_model(model, 3, tmp_path / "m.onnx", "onnx", family=family)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    # a batch size and length the export never saw, rows of very different lengths
    x, lengths = probe_batch(3, 5, 23, seed=9)
    assert len(set(lengths.tolist())) == 5
    got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        want = model(x, lengths).numpy()
    assert got.shape == want.shape == (5, 4)
    assert abs(got - want).max() < 1e-4
    names = [i.name for i in session.get_inputs()]
    assert names == ["x", "lengths"]
    assert isinstance(session.get_inputs()[0].shape[0], str) and isinstance(session.get_inputs()[0].shape[1], str)


@pytest.mark.parametrize("family", ["gru", "tcn"])
def test_torchscript_matches_pytorch(family: str, tmp_path) -> None:
    model = _model(family)
    result = export_model(model, 3, tmp_path / "m.pt", "torchscript", family=family)
    loaded = torch.jit.load(str(result.path))
    x, lengths = probe_batch(3, 4, 19, seed=5)
    with torch.no_grad():
        assert torch.allclose(loaded(x, lengths), model(x, lengths), atol=1e-5)


def test_seq2seq_export_keeps_the_time_axis(tmp_path) -> None:
    meta = DataMeta("den", 2, 16, task="seq2seq", n_outputs=2)
    model = _model("tcn", meta)
    result = export_model(model, 2, tmp_path / "m.onnx", "onnx", family="tcn", seq2seq=True)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x, lengths = probe_batch(2, 3, 17, seed=4)
    got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        assert abs(got - model(x, lengths).numpy()).max() < 1e-4
    assert got.shape == (3, 17, 2)


def test_export_run_writes_model_and_sidecar(tmp_path) -> None:
    from tunelab.train import fit

    cfg = load_config(None, ["model.hidden_dim=8", "model.num_layers=1", "train.max_epochs=1", "train.batch_size=32"])
    splits = tiny_splits(n=48)
    fit(cfg, data=splits, run_dir=tmp_path / "run")
    result = export_run(tmp_path / "run", "onnx", data=splits)
    assert result.path == tmp_path / "run" / "model.onnx" and result.path.is_file()
    side = json.loads((tmp_path / "run" / "model.onnx.json").read_text())
    assert side["family"] == "gru" and side["classes"] == ["0", "1", "2"] and side["max_abs_diff"] < 1e-4


def test_bad_format_and_missing_run_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="--format"):
        export_model(_model("tcn"), 3, tmp_path / "m", "tflite", family="tcn")
    with pytest.raises(UserError, match="best_model.pt"):
        export_run(tmp_path, "onnx")


def test_a_mismatching_export_names_the_family_and_the_other_format(tmp_path, monkeypatch) -> None:
    import tunelab.export as ex

    monkeypatch.setattr(ex, "_run_onnx", lambda data, x, lengths: torch.zeros(x.shape[0], 4) + 7)
    with pytest.raises(UserError, match=r"model.name=gru.*--format torchscript"):
        export_model(_model("gru"), 3, tmp_path / "m.onnx", "onnx", family="gru")
    assert not (tmp_path / "m.onnx").exists()


def _exported(tmp_path, data: list[str]):  # type: ignore[no-untyped-def]
    """A tiny TCN trained one epoch on ``data`` and exported by the CLI to ONNX: (cfg, result, session)."""
    from typer.testing import CliRunner

    from tunelab.cli import app
    from tunelab.train import fit

    tcn = ["model.name=tcn", "model.channels=8", "model.num_blocks=1", "train.max_epochs=1", "device=cpu"]
    cfg = load_config(None, [*data, *tcn])
    result = fit(cfg, run_dir=tmp_path / "run")
    res = CliRunner().invoke(
        app, ["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    )
    assert res.exit_code == 0, res.output
    return cfg, result, ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])


def test_cli_export_puts_the_normalisation_inside_the_graph(tmp_path) -> None:
    from tunelab.data import prepare

    data = ["data.name=synthetic_gestures", "data.options={n: 48, classes: 3, min_len: 5, max_len: 12}"]
    cfg, result, session = _exported(tmp_path, data)
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["normalization_inside"] is True and len(side["normalization"]["mean"]) == 3
    # raw data in, the trained model's outputs on the normalised data out
    splits = prepare(cfg.data, cfg.seed)
    raw = prepare(cfg.data.model_copy(update={"normalize": False}), cfg.seed).test
    got = session.run(None, {"x": raw.x.numpy(), "lengths": raw.lengths.numpy()})[0]
    with torch.no_grad():
        want = result.model.cpu().eval()(splits.test.x, splits.test.lengths).numpy()
    assert abs(got - want).max() < 1e-4


def test_a_regression_export_returns_the_targets_own_units(tmp_path) -> None:
    from tunelab.data import prepare

    cfg, result, session = _exported(
        tmp_path, ["data.name=synthetic_regression", "data.options={n: 48, min_len: 6, max_len: 12}"]
    )
    splits = prepare(cfg.data, cfg.seed)
    assert splits.target_std is not None and splits.target_mean is not None
    raw = prepare(cfg.data.model_copy(update={"normalize": False}), cfg.seed).test
    got = torch.from_numpy(session.run(None, {"x": raw.x.numpy(), "lengths": raw.lengths.numpy()})[0])
    # raw inputs in, predictions in the targets' units out: their error on raw targets is the run's test_mse
    assert float((got - raw.y).square().mean()) == pytest.approx(result.metrics["test_mse"], rel=1e-3)
