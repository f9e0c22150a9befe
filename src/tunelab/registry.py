"""One small registry class, one registry per extension axis: models, datasets, samplers, pruners (timm's pattern)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from tunelab.errors import UserError

__all__ = ["DATASETS", "MODELS", "PRUNERS", "SAMPLERS", "Entry", "Registry", "closest"]

F = TypeVar("F", bound=Callable[..., Any])


def closest(word: str, choices: list[str]) -> str:
    """Return ' (did you mean X?)' for the nearest choice, or ''."""
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Entry(Generic[F]):
    """A registered callable with its optional typed config class.

    ``variants`` name sets of fixed dotted values (a model's seed variants); ``defaults`` are
    tunelab's options where they differ from the implementation's (a sampler's or pruner's).
    """

    def __init__(
        self,
        name: str,
        fn: F,
        config: type | None,
        doc: str,
        variants: dict[str, dict[str, Any]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.fn, self.config, self.doc = name, fn, config, doc
        self.variants, self.defaults = variants or {}, defaults or {}


class Registry(Generic[F]):
    """Names → callables, filled by a decorator: ``@models.register("gru", config=GRUConfig)``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}
        self.aliases: dict[str, str] = {}  # other spellings of a name (``sha`` → successive_halving)

    def register(
        self,
        name: str,
        *,
        config: type | None = None,
        aliases: tuple[str, ...] = (),
        variants: dict[str, dict[str, Any]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            doc = (fn.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, fn, config, doc[0] if doc else "", variants, defaults)
            self.aliases.update(dict.fromkeys(aliases, name))
            return fn

        return deco

    def resolve(self, name: str) -> str:
        """The registered name an alias stands for (the name itself otherwise)."""
        return self.aliases.get(name, name)

    def get(self, name: str) -> Entry[F]:
        try:
            return self._entries[self.resolve(name)]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise UserError(
                f"unknown {self.kind} '{name}'{closest(name, list(self._entries))}; choose one of: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[F]]:
        return iter(self._entries[n] for n in self.names())


# The project's registries.  Implementations register themselves on import (tunelab.models,
# tunelab.data.builtin, tunelab.config.search); the config schema only needs the names.
MODELS: Registry[Callable[..., Any]] = Registry("model")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
#: name → a function returning the Optuna sampler class (Optuna is imported only when one is built)
SAMPLERS: Registry[Callable[[], type]] = Registry("sampler")
#: name → a function returning the Optuna pruner class
PRUNERS: Registry[Callable[[], type]] = Registry("pruner")
