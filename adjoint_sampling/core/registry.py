"""Named entries that register themselves with a decorator, in modules imported on first lookup.

Used for controllers (:mod:`adjoint_sampling.models.registry`) and for the problem builders of
training jobs (:mod:`adjoint_sampling.training.jobs`): a new entry is a decorated class or function
in a module listed once, and nothing is imported before it is asked for.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from adjoint_sampling.core.errors import ConfigError

__all__ = ["Registry"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name.

    Args:
        kind: what an entry is, for error messages (``"controller"``).
        modules: modules imported on the first lookup of a name not registered yet, so that their
            decorators run; a module that does not exist (not written yet) is skipped.
    """

    def __init__(self, kind: str, modules: Sequence[str]) -> None:
        self.kind = kind
        self.modules = list(modules)
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under ``name`` (``ValueError`` if taken by another)."""

        def decorate(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return decorate

    def names(self) -> list[str]:
        """Every registered name, after importing the listed modules."""
        self._import_modules()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry ``name``; ``ConfigError`` naming the available ones if there is none."""
        if name not in self._entries:
            self._import_modules()
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {sorted(self._entries)}")
        return self._entries[name]

    def _import_modules(self) -> None:
        for module in self.modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                log.debug("%s module %s not available", self.kind, module)
