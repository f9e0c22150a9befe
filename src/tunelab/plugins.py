"""Import user code (a .py file or a module name) that registers models and datasets."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tunelab.errors import UserError

__all__ = ["load_plugin"]

_loaded: dict[str, ModuleType] = {}


def load_plugin(spec: str) -> ModuleType:
    """Import ``spec`` once: a path to a .py file, or an importable module name."""
    if spec in _loaded:
        return _loaded[spec]
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise UserError(f"--plugin {spec}: file not found; pass a .py file or an importable module name")
        name = f"tunelab_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path.resolve())
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise UserError(
                f"--plugin {spec}: cannot import it ({exc}); pass a .py file or an installed module"
            ) from None
    _loaded[spec] = module
    return module
