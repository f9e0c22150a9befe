"""The package layout holds: packages import only their own package or lower layers (function-local
imports included), and no module or function in src/ outgrows a screenful budget."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tunelab"

#: A module may import its own package and any package of a lower layer (docs/architecture.md).
LAYERS: dict[str, int] = {
    "errors": 0,
    "registry": 1,
    "config": 2,
    "storage": 2,
    "data": 3,
    "models": 4,
    "plugins": 4,
    "results": 5,
    "train": 6,
    "baselines": 7,
    "pack": 7,
    "track": 7,
    "budget": 7,
    "analysis": 8,
    "ensemble": 9,  # reads studies (analysis) and trains nothing new
    "tune": 10,  # a classification study ends with its ensemble
    "experiments": 11,
    "export": 11,
    "pull": 11,  # builds a study directory from its storage and artifact store
    "api": 12,  # the public API: tunelab.train, tunelab.tune, tunelab.analyze
    "__init__": 13,  # re-exports the public API
    "cli": 14,
    "__main__": 15,
}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every tunelab import in ``path``, at any depth (function-local too)."""
    module = _name(path)
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
            elif node.module:
                found.append((node.lineno, node.module))
    return [(line, target) for line, target in found if target == "tunelab" or target.startswith("tunelab.")]


def test_every_package_has_a_layer() -> None:
    missing = sorted({_package(_name(p)) for p in _modules()} - set(LAYERS))
    assert not missing, f"give these packages a layer in LAYERS (and docs/architecture.md): {missing}"


def test_packages_import_only_downward() -> None:
    bad = []
    for path in _modules():
        src = _package(_name(path))
        for line, target in _imports(path):
            dst = _package(target)
            if dst != src and LAYERS.get(dst, 99) >= LAYERS.get(src, -1):
                rel = path.relative_to(SRC.parent)
                bad.append(
                    f"{rel}:{line} imports {target} ({src}, layer {LAYERS.get(src)} -> {dst}, layer {LAYERS.get(dst)})"
                )
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_module_over_the_line_budget() -> None:
    long = [
        f"{p.relative_to(SRC)}: {n}" for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_the_line_budget() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                where = f"{path.relative_to(SRC).as_posix()}::{node.name}"
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{where}: {n} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("module", ["tunelab.config", "tunelab.registry", "tunelab.storage"])
def test_the_config_layer_loads_no_training_code(module: str) -> None:
    """Importing the schema must not import torch-heavy packages above it (checked statically)."""
    pkg = SRC / module.split(".")[1]
    paths = sorted(pkg.rglob("*.py")) if pkg.is_dir() else [pkg.with_suffix(".py")]
    above = [t for p in paths for _, t in _imports(p) if LAYERS.get(_package(t), 0) > LAYERS[module.split(".")[1]]]
    assert not above, above
