"""Registry of controllers: ``@register_controller(name)`` and ``build_controller(name, hparams)``.

Every registered controller stores its constructor kwargs in ``self.hparams`` so a checkpoint can
rebuild it without the training config.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from adjoint_sampling.core.errors import ConfigError

__all__ = ["register_controller", "build_controller", "available_controllers", "CONTROLLER_MODULES"]

_REGISTRY: dict[str, type[nn.Module]] = {}

CONTROLLER_MODULES: list[str] = ["adjoint_sampling.models.egnn", "adjoint_sampling.models.torsional", "adjoint_sampling.models.molecular_egnn"]
"""Modules imported (lazily, on first lookup) so that their controllers register themselves.
Add one line here for a new controller module."""

T = TypeVar("T", bound=type[nn.Module])


def register_controller(name: str) -> Callable[[T], T]:
    """Class decorator registering a controller under ``name`` (a duplicate name is an error)."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"controller {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.controller_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def _import_all() -> None:
    for module in CONTROLLER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available_controllers() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def build_controller(name: str, hparams: dict[str, Any]) -> nn.Module:
    """Instantiate the controller ``name`` with keyword ``hparams`` (ConfigError if unknown/bad)."""
    if name not in _REGISTRY:
        _import_all()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown controller {name!r}; available: {sorted(_REGISTRY)}")
    try:
        model = _REGISTRY[name](**hparams)
    except TypeError as exc:
        raise ConfigError(f"bad hyper-parameters for controller {name!r}: {exc}") from exc
    if not isinstance(getattr(model, "hparams", None), dict):
        raise ConfigError(f"controller {name!r} does not keep its constructor kwargs in self.hparams")
    return model
