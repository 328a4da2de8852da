"""Noise schedules sigma_t of the base process dX = sigma_t dW on t in [0, 1].

``nu(t) = int_0^t sigma_s^2 ds`` is the accumulated variance; the base process started at
``X_0 = 0`` has time-t marginal ``N(0, nu_t I)`` and the bridge ``X_t | X_1`` is
``N((nu_t / nu_1) X_1, nu_t (nu_1 - nu_t) / nu_1 I)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.errors import ConfigError

__all__ = ["NoiseSchedule", "GeometricSchedule", "LinearSchedule", "build_schedule", "SCHEDULES"]


class NoiseSchedule(ABC):
    """A diffusion coefficient ``sigma(t)`` and its accumulated variance ``nu(t)``."""

    kind: str = "abstract"

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Diffusion coefficient at times ``t`` (any shape), same shape as ``t``."""

    @abstractmethod
    def nu(self, t: Tensor) -> Tensor:
        """Accumulated variance ``int_0^t sigma_s^2 ds`` at times ``t`` (any shape)."""

    @property
    def nu1(self) -> float:
        """``nu(1)``: variance of the base process at time 1."""
        return float(self.nu(torch.tensor(1.0, dtype=torch.float64)))

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments (so ``build_schedule(kind, **params)`` rebuilds it)."""

    def bridge_mean_coef_and_var(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(nu_t / nu_1, nu_t (nu_1 - nu_t) / nu_1)`` of the base bridge at times ``t``."""
        nu_t = self.nu(t)
        nu1 = self.nu1
        return nu_t / nu1, nu_t * (nu1 - nu_t) / nu1


class GeometricSchedule(NoiseSchedule):
    """``sigma_t = s_min r^(1-t) sqrt(2 ln r)``, ``r = s_max / s_min``.

    Its integral is ``nu_t = s_max^2 (1 - r^(-2t))`` (checked: d/dt of it is sigma_t^2), so
    ``nu_1 = s_max^2 - s_min^2``.
    """

    kind = "geometric"

    def __init__(self, sigma_min: float, sigma_max: float) -> None:
        if not (0.0 < sigma_min < sigma_max):
            raise ConfigError(f"geometric schedule needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_r = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp((1.0 - t) * self._log_r) * math.sqrt(2.0 * self._log_r)

    def nu(self, t: Tensor) -> Tensor:
        return self.sigma_max**2 * (1.0 - torch.exp(-2.0 * t * self._log_r))

    def params(self) -> dict[str, Any]:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class LinearSchedule(NoiseSchedule):
    """``sigma_t = sigma_start + (sigma_end - sigma_start) t`` (constant if both are equal).

    ``nu_t = a^2 t + a b t^2 + b^2 t^3 / 3`` with ``a = sigma_start``, ``b = sigma_end - sigma_start``.
    """

    kind = "linear"

    def __init__(self, sigma_start: float, sigma_end: float) -> None:
        if sigma_start < 0 or sigma_end < 0 or sigma_start + sigma_end <= 0:
            raise ConfigError(f"linear schedule needs non-negative sigmas, not both 0, got {sigma_start}, {sigma_end}")
        self.sigma_start = float(sigma_start)
        self.sigma_end = float(sigma_end)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_start + (self.sigma_end - self.sigma_start) * t

    def nu(self, t: Tensor) -> Tensor:
        a, b = self.sigma_start, self.sigma_end - self.sigma_start
        return a * a * t + a * b * t**2 + b * b * t**3 / 3.0

    def params(self) -> dict[str, Any]:
        return {"sigma_start": self.sigma_start, "sigma_end": self.sigma_end}


SCHEDULES: dict[str, type[NoiseSchedule]] = {"geometric": GeometricSchedule, "linear": LinearSchedule}


def build_schedule(kind: str, **params: Any) -> NoiseSchedule:
    """Build a schedule by name (``"geometric"`` or ``"linear"``); bad names/params raise ConfigError."""
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule {kind!r}; choose one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[kind](**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {kind!r} schedule: {exc}") from exc
