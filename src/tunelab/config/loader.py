"""The one loader: any file tunelab accepts (a run config, a study file with ``base:``, a saved
run's config.json or a study's study.yaml) → the typed config it holds.

A study file's ``base:`` path is resolved here (against the study file's folder), and "a run
config becomes the base of a study with the default space" happens here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunelab.config.defaults import default_space
from tunelab.config.errors import format_validation_error
from tunelab.config.experiment import ExperimentConfig, validate_config
from tunelab.config.overrides import apply_overrides
from tunelab.config.study import StudyConfig, check_config_key, check_kind, is_study_mapping, study_hint
from tunelab.errors import UserError
from tunelab.registry import MODELS, closest

__all__ = [
    "load_any",
    "load_config",
    "load_mapping",
    "load_run_config",
    "load_study_config",
    "resolve_base",
    "study_from_mapping",
    "study_mapping",
]


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict, with one-line errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found; check the path")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = (
            f" line {where.line + 1}"
            if where is not None
            else (f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "")
        )
        raise UserError(
            f"{p}:{line} is not valid YAML/JSON ({getattr(exc, 'problem', None) or exc}); fix the syntax"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: the top level must be a mapping of sections (data, model, train, ...)")
    return data


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> ExperimentConfig:
    """Load an experiment config from YAML/JSON (or defaults), apply dotted overrides, validate."""
    data = load_mapping(path) if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    return validate_config(data, str(path) if path is not None else "overrides")


def load_run_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """:func:`load_config` for a command that runs one config: a study file or an experiment set
    given by mistake is named as such, with the command that runs it."""
    try:
        return load_config(path, overrides)
    except UserError:
        if path is not None:
            check_kind(load_mapping(path), str(path), "run config")
        raise


def resolve_base(base: Any, root: Path | None) -> Any:
    """A ``base:`` given as a path (relative to the file that names it, at ``root``) → its mapping;
    any other value is returned as it is."""
    if not isinstance(base, str):
        return base
    return load_mapping(Path(base) if Path(base).is_absolute() or root is None else root / base)


def study_mapping(path: str | Path) -> dict[str, Any]:
    """A study file's mapping, named after the file by default; a plain run config becomes the
    base of a study with tunelab's default space (seed 000's ``--config my_custom_config.json``)."""
    p = Path(path)
    data = load_mapping(p)
    check_kind(data, str(p), "study file", "run config")
    data = dict(data) if is_study_mapping(data) else {"base": data}
    data.setdefault("name", p.stem)
    return data


def study_from_mapping(data: Mapping[str, Any], source: str = "study", root: Path | None = None) -> StudyConfig:
    """Validate a mapping into a StudyConfig; ``base`` may be a path relative to ``root``."""
    data = dict(data)
    data["base"] = resolve_base(data.get("base"), root)
    base_data = data.get("base") or {}
    if not isinstance(base_data, dict):
        raise UserError(f"{source}: base must be a mapping (an experiment config) or a path to one")
    base_cfg = validate_config(base_data, f"{source} (base)")  # experiment errors name the base's keys
    try:
        cfg = StudyConfig.model_validate({**data, "base": base_cfg})
    except ValidationError as err:
        msg = format_validation_error(err, source, StudyConfig, data, hint=study_hint, limit=2, show_input=False)
        raise UserError(msg) from None
    _check_references(cfg, source)
    return cfg


def load_study_config(path: str | Path) -> StudyConfig:
    """Load a study file (or a run config, which becomes a study's base)."""
    p = Path(path)
    return study_from_mapping(study_mapping(p), str(p), p.parent)


def load_any(path: str | Path) -> ExperimentConfig | StudyConfig:
    """Whatever typed config a file holds: a study (study file, saved study.yaml) or a run
    (run config, saved config.json/best_config.json)."""
    p = Path(path)
    data = load_mapping(p)
    check_kind(data, str(p), "run config", "study file")
    return load_study_config(p) if is_study_mapping(data) else validate_config(data, str(p))


def _check_references(cfg: StudyConfig, source: str) -> None:
    """Cross-field checks: keys exist, phases name known parameters, conditions are resolvable."""
    space = cfg.space if cfg.space is not None else default_space(cfg.family_names())
    families = MODELS.names()  # a space may serve several families: model.* keys of any family are valid
    for key in cfg.space or {}:
        check_config_key(key, families, f"{source}: space")
    for name, grid in cfg.grids.items():
        for key in grid:
            check_config_key(key, families, f"{source}: grids.{name}")
    for name, phase in cfg.phases.items():
        if isinstance(phase, list):
            for key in phase:
                if key == "model.name" and not cfg.families:
                    raise UserError(
                        f"{source}: phases.{name}: model.name needs the families to search; add families: [gru, lstm, ...]"
                    )
                if key not in space and key not in ("all", "model.name"):
                    raise UserError(
                        f"{source}: phases.{name}: '{key}' is not in space{closest(key, list(space))}; add it to space or give the phase its own sub-space"
                    )
        elif isinstance(phase, dict):
            for key in phase:
                check_config_key(key, families, f"{source}: phases.{name}")
        elif not space:
            raise UserError(f"{source}: phases.{name}: 'all' needs a space section")
    _check_conditions(cfg, space, families, source)


def _check_conditions(cfg: StudyConfig, space: dict[str, Any], families: list[str], source: str) -> None:
    """Every ``when:`` names a searched parameter or a config key, never the parameter itself."""
    spaces = [("space", space)] + [(f"phases.{n}", p) for n, p in cfg.phases.items() if isinstance(p, dict)]
    for where, sp in spaces:
        known = set(space) | set(sp)
        for key, spec in sp.items():
            for dep in spec.when or {}:
                if dep == key:
                    raise UserError(f"{source}: {where}.{key}.when: a parameter cannot depend on itself")
                if dep not in known and dep != "model.name":
                    try:
                        check_config_key(dep, families, f"{source}: {where}.{key}.when")
                    except UserError:
                        raise UserError(
                            f"{source}: {where}.{key}.when: '{dep}' is not a parameter of the space{closest(dep, sorted(known))} "
                            "nor a config key; condition on a searched parameter"
                        ) from None
