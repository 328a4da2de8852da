"""Lazy package exports: a package names its public API in ``__all__`` without importing heavy
modules (torch, RDKit, FastAPI) until a name is first used (PEP 562 module ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package`` whose public ``name`` lives in module ``exports[name]``.

    Module names starting with ``.`` are relative to ``package``. The first access imports the
    module and caches the value in the package namespace.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(package + module if module.startswith(".") else module), name)
        namespace[name] = value
        return value

    return sorted(exports), __getattr__
