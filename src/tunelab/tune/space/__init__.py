"""Search space → ``trial.suggest_*`` → a NEW concrete ExperimentConfig (never mutated).

A :class:`SearchSpace` is the resolved, picklable plan of what one study samples: the base
experiment (as a plain mapping), the parameters in dependency order, the values fixed by earlier
phases, and the candidate model families.  Sampling follows Optuna's define-by-run style: a
conditional parameter is asked for only when its conditions hold, so an inactive parameter never
appears in a trial's params.  The same space exports statically (``tunelab space --show``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.config import ExperimentConfig, apply_overrides, validate_config
from tunelab.config.defaults import default_space
from tunelab.config.families import Family, resolve_family
from tunelab.config.study import ParamSpec, StudyConfig
from tunelab.errors import UserError
from tunelab.registry import MODELS, closest

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

__all__ = [
    "FAMILY_PARAM",
    "InvalidSample",
    "ParamRow",
    "SearchSpace",
    "build_space",
    "distribution",
    "grid_size",
]

FAMILY_PARAM = "model.name"
_INACTIVE = object()


class InvalidSample(Exception):
    """The sampled values do not make a valid config (the trial fails; the study goes on)."""


@dataclass(frozen=True)
class ParamRow:
    """One line of the static export."""

    key: str
    type: str
    range: str
    when: str
    families: str
    size: int | None  # number of values if discrete


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):  # True is not 1 here
        return a is b
    return bool(a == b)


def _getpath(obj: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(obj, dict):
            if part not in obj:
                return _INACTIVE
            obj = obj[part]
        elif hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            return _INACTIVE
    return obj


@dataclass
class SearchSpace:
    """What a study samples.  ``params`` are in dependency order; ``fixed`` values (earlier
    phases' best) and ``families`` (labels) complete each trial's config."""

    base: dict[str, Any]
    params: dict[str, ParamSpec]
    fixed: dict[str, Any] = field(default_factory=dict)
    families: list[str] | None = None  # >1 label: model.name is searched
    grid: dict[str, list[Any]] | None = None
    grid_name: str | None = None
    _family_bases: dict[str, ExperimentConfig | None] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ families

    @property
    def searches_family(self) -> bool:
        return bool(self.families) and len(self.families) > 1 and FAMILY_PARAM not in self.fixed  # type: ignore[arg-type]

    def family(self, label: str | None = None) -> Family:
        """The family of a trial (``label`` from its params) or of the whole space."""
        if label is None:
            label = self.fixed.get(FAMILY_PARAM) or (
                self.families[0] if self.families else self.base.get("model", {}).get("name", "gru")
            )
        return resolve_family(str(label))

    def _family_base(self, fam: Family) -> ExperimentConfig | None:
        """The base config with the family's (and fixed) values: what unsampled keys read as."""
        if fam.label not in self._family_bases:
            try:
                self._family_bases[fam.label] = self.to_config(
                    {FAMILY_PARAM: fam.label} if self.searches_family else {}
                )
            except InvalidSample:
                self._family_bases[fam.label] = None
        return self._family_bases[fam.label]

    # ------------------------------------------------------------------ activity

    def _value(self, key: str, assigned: dict[str, Any], fam: Family) -> Any:
        if key in assigned:
            return assigned[key]
        if key in self.fixed:
            return self.fixed[key]
        if key in fam.fixed:
            return fam.fixed[key]
        if key in self.params:  # a searched parameter that was not sampled is inactive
            return _INACTIVE
        base = self._family_base(fam)
        return _INACTIVE if base is None else _getpath(base, key)

    def is_active(self, key: str, assigned: dict[str, Any], fam: Family) -> bool:
        """Whether ``key`` is sampled given the values so far (conditions, family fields, fixed)."""
        if key in self.fixed or key in fam.fixed:
            return False
        if key.startswith("model.") and not self._family_has(fam, key):
            return False
        spec = self.params[key]
        if not _family_allows(spec, fam):
            return False
        for dep, options in _conditions(spec):
            value = self._value(dep, assigned, fam)
            if value is _INACTIVE or not any(_eq(value, o) for o in options):
                return False
        return True

    @staticmethod
    def _family_has(fam: Family, key: str) -> bool:
        if fam.name not in MODELS or MODELS.get(fam.name).config is None:
            return True
        return key.split(".")[1] in MODELS.get(fam.name).config.model_fields  # type: ignore[union-attr]

    # ------------------------------------------------------------------ sampling

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask ``trial`` for every active parameter; returns the sampled values."""
        assigned: dict[str, Any] = {}
        if self.searches_family:
            assigned[FAMILY_PARAM] = trial.suggest_categorical(FAMILY_PARAM, self.families)  # type: ignore[arg-type]
        fam = self.family(assigned.get(FAMILY_PARAM))
        for key, spec in self.params.items():
            if self.is_active(key, assigned, fam):
                assigned[key] = _suggest(trial, key, spec)
        return assigned

    def sample(self, trial: optuna.Trial) -> tuple[ExperimentConfig, dict[str, Any]]:
        """A new concrete config for ``trial`` and the values sampled for it."""
        params = self.suggest(trial)
        return self.to_config(params), params

    def to_config(self, params: dict[str, Any]) -> ExperimentConfig:
        """Base + family + fixed + ``params`` → a validated ExperimentConfig (base untouched)."""
        try:
            return validate_config(self._mapping(params), "sampled config")
        except UserError as exc:
            raise InvalidSample(str(exc)) from None

    def _mapping(self, params: dict[str, Any]) -> dict[str, Any]:
        fam = self.family(params.get(FAMILY_PARAM))
        overrides: dict[str, Any] = fam.overrides()  # model.name first: a new family starts from its defaults
        for key, value in {**self.fixed, **params}.items():
            if key == FAMILY_PARAM or (key.startswith("model.") and not self._family_has(fam, key)):
                continue
            overrides[key] = value
        return apply_overrides(self.base, overrides)

    def check_values(self, source: str) -> None:
        """Refuse a value the space can sample that its field never accepts: a choice, or an end
        of a range, outside the field's own bounds (or an unknown dataset).  One line now instead
        of failed trials later.  A value that only clashes with another field (a cross-field
        check, e.g. heads that do not divide the width) is left to the trial that samples both."""
        for key, spec in self.params.items():
            if spec.type == "categorical":
                values, open_ends = list(spec.choices or []), False
            else:
                values = list(spec.ends())
                open_ends = spec.type == "float" and spec.step is None  # never sampled exactly at an end
            labels: list[str | None] = list(self.applicable(key)) if key.startswith("model.") else [None]
            for label in labels:
                for value in values:
                    problem = self._field_problem(key, value, label, open_ends)
                    if problem is not None:
                        what = "choice" if spec.type == "categorical" else "range end"
                        raise UserError(
                            f"{source}: space: {key}: the {what} {value!r} is never valid ({problem}); change it"
                        )

    def _field_problem(self, key: str, value: Any, label: str | None, open_ends: bool) -> str | None:
        from pydantic import ValidationError

        if key == "data.name":
            from tunelab.registry import DATASETS

            try:
                DATASETS.get(str(value))
            except UserError as exc:
                return str(exc).split(";")[0]
            return None
        params = {key: value} | ({FAMILY_PARAM: label} if label is not None and self.searches_family else {})
        try:
            ExperimentConfig.model_validate(self._mapping(params))
        except ValidationError as err:
            for e in err.errors():
                loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
                cross_field = e["type"] in ("value_error", "assertion_error")
                if loc == key and not cross_field and not (open_ends and e["type"] in ("less_than", "greater_than")):
                    return str(e["msg"])
        return None

    def best_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """What a later phase needs: the fixed values plus this trial's sampled ones."""
        return {**self.fixed, **params}

    # ------------------------------------------------------------------ static export

    def grid_search_space(self) -> dict[str, list[Any]]:
        """Every parameter's values, for Optuna's GridSampler (discrete, unconditional spaces)."""
        if self.grid is not None:
            space = dict(self.grid)
        else:
            space = {}
            for key, spec in self.params.items():
                if spec.when:
                    raise UserError(
                        f"the grid sampler cannot search the conditional parameter '{key}'; define a named grid (grids:) and use --grid"
                    )
                values = spec.values()
                if values is None:
                    raise UserError(
                        f"the grid sampler needs discrete values for '{key}' ({spec.describe()}); give it choices or a step"
                    )
                space[key] = values
        if self.searches_family:
            space = {FAMILY_PARAM: list(self.families or []), **space}
        return space

    def applicable(self, key: str) -> list[str]:
        """The family labels for which ``key`` can be sampled (has the field, not fixed)."""
        labels = self.families if self.searches_family else [self.family().label]
        out = []
        for label in labels or []:
            fam = resolve_family(label)
            if key in self.fixed or key in fam.fixed:
                continue
            if key.startswith("model.") and not self._family_has(fam, key):
                continue
            if not self._can_hold(key, fam, set()):
                continue  # its conditions never hold for this family (e.g. heads without attention)
            out.append(label)
        return out

    def _can_hold(self, key: str, fam: Family, seen: set[str]) -> bool:
        """Whether some trial of ``fam`` can meet ``key``'s conditions: a searched condition may take
        any of its values, anything else has the one value the family's base config gives it."""
        if key in seen:
            return True
        spec = self.params[key]
        if not _family_allows(spec, fam):
            return False
        for dep, options in _conditions(spec):
            if dep in self.params and dep not in self.fixed and dep not in fam.fixed:
                dep_spec = self.params[dep]
                if dep.startswith("model.") and not self._family_has(fam, dep):
                    return False
                if not self._can_hold(dep, fam, seen | {key}):
                    return False
                values = dep_spec.values()
                if values is not None and not any(_eq(v, o) for v in values for o in options):
                    return False
                continue
            value = self._value(dep, {}, fam)
            if value is _INACTIVE or not any(_eq(value, o) for o in options):
                return False
        config = MODELS.get(fam.name).config if key.startswith("model.") and fam.name in MODELS else None
        switches = getattr(config, "used_when", {}).get(key.split(".", 1)[1], ())
        return not switches or any(self._may_be_on(f"model.{s}", fam, seen | {key}) for s in switches)

    def _may_be_on(self, key: str, fam: Family, seen: set[str]) -> bool:
        """Whether the model switch ``key`` is on in some trial of ``fam``."""
        if key in self.params and key not in self.fixed and key not in fam.fixed and self._can_hold(key, fam, seen):
            values = self.params[key].values()
            return values is None or any(_eq(v, True) for v in values)
        return _eq(self._value(key, {}, fam), True)

    def n_searched(self) -> int:
        """Parameters some trial can sample (the family choice included): the tune header's count."""
        return int(self.searches_family) + sum(1 for key in self.params if self.applicable(key))

    def size(self) -> int | None:
        """Distinct configurations if every parameter is discrete (conditions ignored: an upper
        bound), summed over the searched families; None for a continuous space."""
        if self.grid is not None:
            return grid_size(self.grid) * (len(self.families or []) if self.searches_family else 1)
        labels = self.families if self.searches_family else [self.family().label]
        total = 0
        for label in labels or []:
            n = 1
            for key, spec in self.params.items():
                if label not in self.applicable(key):
                    continue
                values = spec.values()
                if values is None:
                    return None
                n *= len(values)
            total += n
        return total

    def rows(self) -> list[ParamRow]:
        """The static export: one row per parameter (``tunelab space --show``)."""
        rows = []
        if self.searches_family:
            fams = list(self.families or [])
            rows.append(ParamRow(FAMILY_PARAM, "categorical", "{" + ", ".join(fams) + "}", "", "", len(fams)))
        labels = self.families if self.searches_family else [self.family().label]
        for key, spec in self.params.items():
            has = self.applicable(key)
            if not has:
                continue  # no family in play samples it
            when = ", ".join(
                f"{k} in {v}" if isinstance(v, list) else f"{k} == {v}" for k, v in (spec.when or {}).items()
            )
            values = spec.values()
            rows.append(
                ParamRow(
                    key,
                    str(spec.type),
                    spec.describe(),
                    when,
                    ", ".join(has) if len(labels or []) > 1 else "",
                    None if values is None else len(values),
                )
            )
        return rows


def _suggest(trial: optuna.Trial, key: str, spec: ParamSpec) -> Any:
    if spec.type == "categorical":
        return trial.suggest_categorical(key, spec.choices)  # type: ignore[arg-type]
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return trial.suggest_int(key, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
    return trial.suggest_float(key, float(spec.low), float(spec.high), step=spec.step, log=spec.log)


def distribution(spec: ParamSpec) -> Any:
    """The Optuna distribution ``spec`` samples from (to check a resumed study's history)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec.type == "categorical":
        return CategoricalDistribution(spec.choices or [])
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
    return FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def grid_size(grid: dict[str, list[Any]]) -> int:
    """Combinations of a named grid (seed 002: quick 8, full 864)."""
    return math.prod(len(v) for v in grid.values())


def _ordered(params: dict[str, ParamSpec], where: str) -> dict[str, ParamSpec]:
    """Parameters in file order, moved after the parameters their ``when`` depends on."""
    out: dict[str, ParamSpec] = {}
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in out:
            return
        if key in visiting:
            raise UserError(
                f"{where}: the conditions of '{key}' form a cycle; a parameter cannot depend on itself through others"
            )
        visiting.add(key)
        for dep in params[key].when or {}:
            if dep in params:
                visit(dep)
        visiting.discard(key)
        out[key] = params[key]

    for key in params:
        visit(key)
    return out


def build_space(
    cfg: StudyConfig,
    *,
    phase: str | None = None,
    grid: str | None = None,
    fixed: dict[str, Any] | None = None,
    locked: set[str] | frozenset[str] = frozenset(),
    source: str = "study",
) -> SearchSpace:
    """Resolve what a study samples: the space, a phase's sub-space or a named grid, minus
    ``locked`` keys (set on the command line) and the ``fixed`` values of earlier phases."""
    families = cfg.families
    names = cfg.family_names()
    space = cfg.space if cfg.space is not None else default_space(names)
    fixed = dict(fixed or {})
    grid_values: dict[str, list[Any]] | None = None
    if grid is not None:
        if phase is not None:
            raise UserError("use either --grid or --phase, not both")
        if grid not in cfg.grids:
            raise UserError(
                f"{source}: unknown grid '{grid}'{closest(grid, list(cfg.grids))}; grids defined: {', '.join(cfg.grids) or 'none (add a grids: section)'}"
            )
        grid_values = {k: list(v) for k, v in cfg.grids[grid].items() if k not in locked}
        dropped = [k for k in cfg.grids[grid] if k in locked]
        if dropped:  # the command line wins, and says so (seed 002: --epochs over train.max_epochs)
            log.warning(
                "grid '%s': %s set on the command line, so not searched: %d combinations instead of %d",
                grid,
                ", ".join(f"{k} (grid values {cfg.grids[grid][k]})" for k in dropped),
                grid_size(grid_values),
                grid_size(cfg.grids[grid]),
            )
        params = {k: ParamSpec(type="categorical", choices=v) for k, v in grid_values.items()}
    elif phase is not None:
        if phase not in cfg.phases:
            raise UserError(
                f"{source}: unknown phase '{phase}'{closest(phase, list(cfg.phases))}; phases defined: {', '.join(cfg.phases) or 'none (add a phases: section)'}"
            )
        chosen = cfg.phases[phase]
        if isinstance(chosen, list):  # names from the space; "all" = every one; model.name = the families
            keys = [k for item in chosen for k in (list(space) if item == "all" else [item])]
            params = {k: space[k] for k in dict.fromkeys(keys) if k != FAMILY_PARAM}
            if FAMILY_PARAM in chosen:
                params[FAMILY_PARAM] = ParamSpec(type="categorical", choices=list(families or []))
        else:
            params = dict(space) if chosen == "all" else dict(chosen)
        if FAMILY_PARAM not in params and families and len(families) > 1:
            families = None  # a phase that does not list model.name keeps one family (fixed or base)
    else:
        params = dict(space)
    params = {k: v for k, v in params.items() if k not in locked}
    if FAMILY_PARAM in params:  # `model.name: [gru, lstm]` in a space means: search these families
        families = [str(c) for c in params.pop(FAMILY_PARAM).choices or []]
        for label in families:
            resolve_family(label)
    fixed = {k: v for k, v in fixed.items() if k not in params and k not in locked}
    if FAMILY_PARAM in fixed and families and fixed[FAMILY_PARAM] not in families:
        fixed.pop(FAMILY_PARAM)
    if FAMILY_PARAM in locked:
        families = None
    base = cfg.base.model_dump(
        mode="json", exclude_unset=True
    )  # only what the study set: the rest is filled per data (tunelab.budget)
    labels = families or [str(fixed.get(FAMILY_PARAM) or cfg.base.model.name)]
    unused = [
        k
        for k in params
        if k.startswith("model.") and not any(SearchSpace._family_has(resolve_family(lab), k) for lab in labels)
    ]
    if unused:
        log.info("not searched (no family in %s has them): %s", ", ".join(labels), ", ".join(unused))
    return SearchSpace(base, _ordered(params, source), fixed, list(families) if families else None, grid_values, grid)


def _family_allows(spec: ParamSpec, fam: Family) -> bool:
    """Whether ``spec``'s condition on the family (if it has one) admits ``fam``."""
    allowed = (spec.when or {}).get(FAMILY_PARAM)
    if allowed is None:
        return True
    return any(_eq(fam.label, o) or _eq(fam.name, o) for o in (allowed if isinstance(allowed, list) else [allowed]))


def _conditions(spec: ParamSpec) -> list[tuple[str, list[Any]]]:
    """``spec``'s conditions on other parameters: (parameter, allowed values)."""
    return [
        (dep, allowed if isinstance(allowed, list) else [allowed])
        for dep, allowed in (spec.when or {}).items()
        if dep != FAMILY_PARAM
    ]
