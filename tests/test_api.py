"""The public API: every function's docstring example runs as written, on tiny data."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tunelab
from tunelab import api


def _example(fn: Any) -> str:
    """The code block after 'Example::' in ``fn``'s docstring."""
    doc = inspect.getdoc(fn) or ""
    assert "Example::" in doc, f"{fn.__name__} has no runnable example"
    block = doc.split("Example::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def test_the_package_exports_the_api_functions_not_the_subpackages() -> None:
    import tunelab.train  # noqa: F401  (a later import of the subpackage must not rebind the name)
    import tunelab.tune  # noqa: F401

    assert tunelab.train is api.train and tunelab.tune is api.tune and tunelab.analyze is api.analyze


@pytest.mark.slow  # three short trainings and a study of two trials: about a minute on two loaded cores
def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(_example(api.train), scope)  # noqa: S102  (the documented example, run as written)
    assert 0.0 <= scope["result"].metrics["test_acc"] <= 1.0
    exec(_example(api.tune), scope)  # noqa: S102
    found = scope["result"]
    assert found.best_params["model.hidden_dim"] in (8, 16)
    assert (tmp_path / "runs" / found.study_name / "best_model.pt").is_file()
    exec(_example(api.analyze), scope)  # noqa: S102
    assert len(scope["report"].top) >= 1, "the analysis lists the study's best trials"


def test_train_takes_a_config_file_and_keyword_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("data: {name: synthetic_gestures, options: {n: 60}}\nmodel: {name: gru, hidden_dim: 8}\n")
    result = tunelab.train(cfg, overrides=["train.max_epochs=1"], device="cpu", run_dir=tmp_path / "run")
    assert result.epochs == 1
    assert (tmp_path / "run" / "config.json").is_file()


def test_a_bad_override_is_one_line_naming_the_key() -> None:
    with pytest.raises(tunelab.UserError, match="train.lrr"):
        tunelab.train(train__lrr=1.0)
