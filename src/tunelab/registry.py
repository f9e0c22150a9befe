"""One small registry class, used by models, datasets and losses (timm's pattern)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from tunelab.errors import UserError

__all__ = ["DATASETS", "MODELS", "Entry", "Registry", "closest"]

F = TypeVar("F", bound=Callable[..., Any])


def closest(word: str, choices: list[str]) -> str:
    """Return ' (did you mean X?)' for the nearest choice, or ''."""
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Entry(Generic[F]):
    """A registered callable with its optional typed config class."""

    def __init__(self, name: str, fn: F, config: type | None, doc: str) -> None:
        self.name, self.fn, self.config, self.doc = name, fn, config, doc


class Registry(Generic[F]):
    """Names → callables, filled by a decorator: ``@models.register("gru", config=GRUConfig)``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, *, config: type | None = None) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            doc = (fn.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, fn, config, doc[0] if doc else "")
            return fn

        return deco

    def get(self, name: str) -> Entry[F]:
        try:
            return self._entries[name]
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


# The project's registries.  Implementations register themselves on import
# (tunelab.models, tunelab.data.builtin); config.py only needs the names.
MODELS: Registry[Callable[..., Any]] = Registry("model")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
