"""Registry of controllers: ``@register_controller(name)`` and ``build_controller(name, hparams)``.

Every registered controller stores its constructor kwargs in ``self.hparams`` so a checkpoint can
rebuild it without the training config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from adjoint_sampling.core.errors import ConfigError
from adjoint_sampling.core.registry import Registry

__all__ = ["register_controller", "build_controller", "available_controllers", "CONTROLLERS"]

CONTROLLERS: Registry[type[nn.Module]] = Registry(
    "controller",
    ["adjoint_sampling.models.egnn", "adjoint_sampling.models.torsional", "adjoint_sampling.models.molecular_egnn"],
)
"""Controller classes by name; a new controller module adds one line to ``CONTROLLERS.modules``."""

T = TypeVar("T", bound=type[nn.Module])


def register_controller(name: str) -> Callable[[T], T]:
    """Class decorator registering a controller under ``name`` (a duplicate name is an error)."""

    def decorate(cls: T) -> T:
        CONTROLLERS.register(name)(cls)
        cls.controller_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def available_controllers() -> list[str]:
    return CONTROLLERS.names()


def build_controller(name: str, hparams: dict[str, Any]) -> nn.Module:
    """Instantiate the controller ``name`` with keyword ``hparams`` (ConfigError if unknown/bad)."""
    cls = CONTROLLERS.get(name)
    try:
        model = cls(**hparams)
    except TypeError as exc:
        raise ConfigError(f"bad hyper-parameters for controller {name!r}: {exc}") from exc
    if not isinstance(getattr(model, "hparams", None), dict):
        raise ConfigError(f"controller {name!r} does not keep its constructor kwargs in self.hparams")
    return model
