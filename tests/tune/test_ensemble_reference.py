"""The MiniRocket study reference (study_results.json, console, report.html) and `tunelab ensemble`:
an ensemble's probabilities are the mean of its members' calibrated ones; evaluate accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.tune.conftest import TINY_CLI
from tunelab.cli import app

TINY = TINY_CLI


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from tunelab import ensemble
    from tunelab.baselines import reference

    tmp = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reference, "ENABLED", True)
        mp.setattr(ensemble, "ENABLED", True)
        args = ["tune", "--model", "gru", "--trials", "3", "--epochs", "1", *TINY, "--save-dir", str(tmp)]
        out = CliRunner().invoke(app, [*args, "--study-name", "s"])
    assert out.exit_code == 0, out.output
    return tmp / "s", out.output


@pytest.mark.reference
def test_the_reference_is_in_the_results_the_summary_and_the_report(study: tuple[Path, str]) -> None:
    sdir, output = study
    ref = json.loads((sdir / "study_results.json").read_text())["reference"]
    assert ref["name"] == "MiniRocket" and {"val_acc", "val_f1", "test_acc", "test_f1", "seconds"} <= set(ref)
    assert "best tuned model vs MiniRocket: " in output and " points test_acc" in output
    # announced in the header, fitted before the first trial (a minute on large data on a CPU)
    assert output.index("fitting the MiniRocket reference on the study's split first") < output.index("Trial 0 ")
    html = (sdir / "report.html").read_text()
    assert html.index("best tuned model vs MiniRocket") < html.index("id='summary'")  # at the top


@pytest.mark.reference
def test_a_classification_study_ends_with_its_ensemble_beside_the_best_trial_and_minirocket(
    study: tuple[Path, str],
) -> None:
    sdir, output = study
    assert "Ensemble of the 3 best trials and MiniRocket: test_acc=" in output
    assert "ensemble of 3 + MiniRocket vs MiniRocket: " in output
    manifest = json.loads((sdir / "ensemble" / "ensemble.json").read_text())
    assert manifest["format"] == "tunelab-ensemble-1" and manifest["with_reference"] is True
    assert [m.get("name") for m in manifest["members"]][-1] == "MiniRocket" and len(manifest["members"]) == 4
    assert [m["weight"] for m in manifest["members"]] == pytest.approx([1 / 6] * 3 + [0.5])  # half each family
    assert "ensemble of 3 + MiniRocket vs MiniRocket" in (sdir / "report.html").read_text()


@pytest.mark.reference
def test_ensemble_zero_ends_a_study_without_one(tmp_path: Path) -> None:
    args = ["tune", "--model", "gru", "--trials", "2", "--epochs", "1", *TINY, "--no-report", "--no-reference"]
    out = CliRunner().invoke(app, [*args, "--ensemble", "0", "--save-dir", str(tmp_path), "--study-name", "z"])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "z" / "study_results.json").read_text())["ensemble"] is None
    assert not (tmp_path / "z" / "ensemble").exists() and "Ensemble of" not in out.output


@pytest.mark.reference
def test_the_studys_ensemble_leaves_minirocket_out_when_asked_or_without_a_reference(tmp_path: Path) -> None:
    args = ["tune", "--model", "gru", "--trials", "2", "--epochs", "1", *TINY, "--no-report"]
    runs = {
        "one": ["--ensemble", "1"],  # the best trial and MiniRocket
        "deep": ["--ensemble", "2", "--no-ensemble-reference"],
        "noref": ["--ensemble", "2", "--no-reference"],
    }
    for name, extra in runs.items():
        out = CliRunner().invoke(app, [*args, *extra, "--save-dir", str(tmp_path), "--study-name", name])
        assert out.exit_code == 0, out.output
    members = {n: json.loads((tmp_path / n / "study_results.json").read_text())["ensemble"]["members"] for n in runs}
    assert len(members["one"]) == 2 and members["one"][-1] == "MiniRocket"
    assert len(members["deep"]) == 2 and "MiniRocket" not in members["deep"]
    assert len(members["noref"]) == 2 and "MiniRocket" not in members["noref"]
    manifest = json.loads((tmp_path / "deep" / "ensemble" / "ensemble.json").read_text())
    assert manifest["with_reference"] is False and [m["weight"] for m in manifest["members"]] == [0.5, 0.5]
    # `tunelab ensemble` with neither flag rebuilds as the study did: MiniRocket when it has a reference
    for name, joins in (("noref", False), ("deep", True)):
        out = CliRunner().invoke(app, ["ensemble", str(tmp_path / name), "--top-k", "2"])
        assert out.exit_code == 0, out.output
        rebuilt = json.loads((tmp_path / name / "ensemble" / "ensemble.json").read_text())
        assert rebuilt["with_reference"] is joins and ("MiniRocket weighing 0.5" in out.output) is joins


@pytest.mark.reference
def test_a_regression_study_is_compared_with_minirocket_on_test_mse(tmp_path: Path) -> None:
    from tunelab.baselines import reference

    data = [
        "--dataset",
        "synthetic_regression",
        "data.options.n=48",
        "data.options.min_len=6",
        "data.options.max_len=12",
    ]
    args = ["tune", "--model", "gru", "--trials", "2", "--epochs", "1", *data, "model.hidden_dim=8", "--device", "cpu"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reference, "ENABLED", True)
        out = CliRunner().invoke(app, [*args, "--save-dir", str(tmp_path), "--study-name", "r"])
    assert out.exit_code == 0, out.output
    results = json.loads((tmp_path / "r" / "study_results.json").read_text())
    ref, best = results["reference"], results["best_trial"]["metrics"]
    assert ref["name"] == "MiniRocket" and {"val_mse", "val_mae", "test_mse", "test_mae"} <= set(ref)
    assert "test_acc" not in ref and results["ensemble"] is None  # no class probabilities to average
    assert not (tmp_path / "r" / reference.DECISIONS_FILE).exists()  # kept for a classification ensemble only
    (line,) = [ln for ln in out.output.splitlines() if "best tuned model vs MiniRocket: " in ln]
    # the wording (x% lower / higher, or k-times) is checked in tests/baselines
    assert " test_mse (" in line and f"({best['test_mse']:.4g} vs {ref['test_mse']:.4g};" in line
    html = (tmp_path / "r" / "report.html").read_text()
    assert html.index("best tuned model vs MiniRocket") < html.index("id='summary'")


def test_no_reference_flag_skips_it(tmp_path: Path) -> None:
    args = ["tune", "--model", "gru", "--trials", "1", "--epochs", "1", *TINY, "--no-report", "--no-reference"]
    out = CliRunner().invoke(app, [*args, "--save-dir", str(tmp_path), "--study-name", "n"])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "n" / "study_results.json").read_text())["reference"] is None
    assert "vs MiniRocket" not in out.output


@pytest.mark.reference
def test_an_ensemble_averages_its_members_calibrated_probabilities(study: tuple[Path, str]) -> None:
    from tunelab.config import validate_config
    from tunelab.data import prepare
    from tunelab.ensemble import load_ensemble_model, mean_probabilities
    from tunelab.results.io import load_checkpoint
    from tunelab.train.checkpoint import load_model
    from tunelab.train.trainer import predict

    sdir, _ = study
    out = CliRunner().invoke(app, ["ensemble", str(sdir), "--top-k", "2", "--without-reference"])
    assert out.exit_code == 0, out.output
    assert "best single (trial" in out.output and "ensemble of 2" in out.output and "MiniRocket:" in out.output
    manifest = json.loads((sdir / "ensemble" / "ensemble.json").read_text())
    members = manifest["members"]
    assert len(members) == 2 and all((sdir / "ensemble" / m["checkpoint"]).is_file() for m in members)

    folder = sdir / "ensemble"
    cfg = validate_config(load_checkpoint(folder / members[0]["checkpoint"])[1], "member")
    splits = prepare(cfg.data, cfg.seed)
    logits = [predict(load_model(folder / m["checkpoint"], splits.meta)[0], splits.test) for m in members]
    temps = [m["temperature"] for m in members]
    by_hand = torch.stack([torch.softmax(z / t, -1) for z, t in zip(logits, temps, strict=True)]).mean(0)
    assert torch.allclose(mean_probabilities(logits, temps), by_hand)
    model, families, _ = load_ensemble_model(folder, splits.meta)
    with torch.no_grad():
        got = model(splits.test.x, splits.test.lengths).exp()
    assert families == ["gru", "gru"] and torch.allclose(got, by_hand, atol=1e-5)
    assert manifest["metrics"]["test_acc"] == pytest.approx(float((by_hand.argmax(-1) == splits.test.y).float().mean()))

    ev = CliRunner().invoke(app, ["evaluate", str(folder), "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["test_acc"] == pytest.approx(manifest["metrics"]["test_acc"])
    assert json.loads((sdir / "study_results.json").read_text())["ensemble"]["members"] == [m["trial"] for m in members]


@pytest.mark.reference
def test_an_ensemble_with_the_reference_refits_it_the_same_to_evaluate(study: tuple[Path, str]) -> None:
    sdir, _ = study
    out = CliRunner().invoke(app, ["ensemble", str(sdir), "--top-k", "1", "--with-reference"])
    assert out.exit_code == 0, out.output
    manifest = json.loads((sdir / "ensemble" / "ensemble.json").read_text())
    assert [(m["trial"] is None, m.get("name")) for m in manifest["members"]][-1] == (True, "MiniRocket")
    assert [m["weight"] for m in manifest["members"]] == [0.5, 0.5]  # two families, an equal say
    ev = CliRunner().invoke(app, ["evaluate", str(sdir / "ensemble"), "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["test_acc"] == pytest.approx(manifest["metrics"]["test_acc"])


def test_weighted_probabilities_are_the_weighted_mean_and_minirocket_weighs_its_share() -> None:
    from tunelab.ensemble import mean_probabilities, member_weights

    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(7, 3, generator=gen) for _ in range(3)]
    temps = [1.0, 2.0, 0.5]
    probs = [torch.softmax(z / t, -1) for z, t in zip(logits, temps, strict=True)]
    assert member_weights(2, 0.5) == [0.25, 0.25, 0.5] and member_weights(4, None) == [0.25] * 4
    got = mean_probabilities(logits, temps, member_weights(2, 0.5))
    assert torch.allclose(got, 0.25 * probs[0] + 0.25 * probs[1] + 0.5 * probs[2])
    assert torch.allclose(got.sum(-1), torch.ones(7))
    assert torch.allclose(mean_probabilities(logits, temps, [2.0, 2.0, 2.0]), mean_probabilities(logits, temps))


@pytest.mark.reference
def test_the_reference_weight_is_saved_and_evaluate_uses_it(study: tuple[Path, str]) -> None:
    sdir, _ = study
    out = CliRunner().invoke(app, ["ensemble", str(sdir), "-k", "2", "--with-reference", "--reference-weight", "0.25"])
    assert out.exit_code == 0, out.output
    assert "MiniRocket weighing 0.25" in out.output
    manifest = json.loads((sdir / "ensemble" / "ensemble.json").read_text())
    assert [m["weight"] for m in manifest["members"]] == [0.375, 0.375, 0.25]
    ev = CliRunner().invoke(app, ["evaluate", str(sdir / "ensemble"), "--json"])
    assert json.loads(ev.output)["test_loss"] == pytest.approx(manifest["metrics"]["test_loss"], rel=1e-5)
    bad = CliRunner().invoke(app, ["ensemble", str(sdir), "--with-reference", "--reference-weight", "1.5"])
    assert "--reference-weight 1.5: use a share between 0 and 1" in str(bad.exception)  # main() prints it, exit 2


@pytest.mark.reference
def test_the_ensemble_reads_the_outputs_a_trial_kept_and_predicts_when_the_rows_differ(
    study: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's checkpoint keeps its final val/test logits; the ensemble uses them on the same rows
    (no model is run) and predicts when the rows differ."""
    import dataclasses

    from tunelab import ensemble
    from tunelab.results.io import load_checkpoint
    from tunelab.train import trainer
    from tunelab.train.checkpoint import load_model

    sdir, _ = study
    results = json.loads((sdir / "study_results.json").read_text())
    done = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    ckpts = [sdir / t["user_attrs"]["run_dir"] / "best_model.pt" for t in done[:2]]
    kept = load_checkpoint(ckpts[0])[2]["outputs"]
    assert {"val", "test", "val_digest", "test_digest"} <= set(kept)
    predict = trainer.predict

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a member was run again")

    monkeypatch.setattr(trainer, "predict", refuse)
    splits, outputs, _, _ = ensemble._member_logits(ckpts, "cpu")  # the kept outputs: nothing runs
    model = load_model(ckpts[0], splits.meta)[0]
    assert torch.allclose(outputs[0]["test"], predict(model, splits.test), atol=1e-5)
    fewer = dataclasses.replace(splits, test=splits.test.subset(torch.arange(len(splits.test) - 1)))
    with pytest.raises(AssertionError, match="a member was run again"):
        ensemble._member_logits(ckpts, "cpu", fewer)


@pytest.mark.reference
def test_the_ensemble_reuses_the_references_decisions_and_fits_minirocket_only_without_them(
    study: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study's reference keeps its val/test decision values (reference.pt): the ensemble reads
    them instead of fitting MiniRocket again, with the same result as a refit."""
    import shutil

    from tunelab.baselines import minirocket
    from tunelab.ensemble import build_ensemble

    sdir, _ = study
    kept, refit = tmp_path / "kept", tmp_path / "refit"
    for d in (kept, refit):
        shutil.copytree(sdir, d, ignore=shutil.ignore_patterns("ensemble"))
    assert (kept / "reference.pt").is_file()
    (refit / "reference.pt").unlink()
    real_fit = minirocket.fit_minirocket

    def no_fit(*args: object, **kwargs: object) -> object:
        raise AssertionError("MiniRocket fitted again")

    monkeypatch.setattr(minirocket, "fit_minirocket", no_fit)
    reused = build_ensemble(kept, 2, with_reference=True, device="cpu")
    with pytest.raises(AssertionError, match="fitted again"):  # without the file it must fit
        build_ensemble(refit, 2, with_reference=True, device="cpu")
    monkeypatch.setattr(minirocket, "fit_minirocket", real_fit)
    again = build_ensemble(refit, 2, with_reference=True, device="cpu")
    assert reused.metrics["test_acc"] == again.metrics["test_acc"]
    assert reused.metrics["test_loss"] == pytest.approx(again.metrics["test_loss"], rel=1e-4)
