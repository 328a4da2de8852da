"""Noise schedules sigma_t of the base process dX = sigma_t dW on t in [0, 1].

``nu(t) = int_0^t sigma_s^2 ds`` is the accumulated variance; the base process started at
``X_0 = 0`` has time-t marginal ``N(0, nu_t I)`` and the bridge ``X_t | X_1`` is
``N((nu_t / nu_1) X_1, nu_t (nu_1 - nu_t) / nu_1 I)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError

__all__ = ["NoiseSchedule", "GeometricSchedule", "LinearSchedule", "MemorylessSchedule", "build_schedule", "SCHEDULES"]


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

    def time_of_nu(self, nu: Tensor) -> Tensor:
        """Inverse of :meth:`nu`: the times in [0, 1] whose accumulated variance is ``nu`` (any shape).

        Bisection in float64 (``nu`` is increasing), accurate to about 1e-12; ``nu`` outside
        ``[0, nu_1]`` maps to 0 or 1. Returns float64.
        """
        target = nu.to(torch.float64)
        lo, hi = torch.zeros_like(target), torch.ones_like(target)
        for _ in range(45):
            mid = 0.5 * (lo + hi)
            below = self.nu(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def sample_times(self, n: int, noise_fraction: float, generator: torch.Generator | None,
                     dtype: torch.dtype = torch.float64, window: Sequence[float] | None = None,
                     window_fraction: float = 0.0) -> Tensor:
        """``n`` loss times: uniform on [0, 1], except a ``noise_fraction`` share drawn with density
        ``sigma(t)^2 / nu_1`` (where the base process adds its noise) and a ``window_fraction`` share
        drawn uniformly on ``window = (a, b)`` (a part of the time axis that needs more of the loss).
        Both fractions 0 draw exactly ``torch.rand(n)``. Returns ``(n,)``."""
        t = torch.rand(n, generator=generator, dtype=dtype)
        if noise_fraction > 0.0:
            pick = torch.rand(n, generator=generator, dtype=torch.float64) < noise_fraction
            by_noise = self.time_of_nu(torch.rand(n, generator=generator, dtype=torch.float64) * self.nu1)
            t = torch.where(pick, by_noise.to(dtype), t)
        if window_fraction > 0.0 and window is not None:
            lo, hi = window
            pick = torch.rand(n, generator=generator, dtype=torch.float64) < window_fraction
            in_window = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
            t = torch.where(pick, in_window.to(dtype), t)
        return t

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


class MemorylessSchedule(NoiseSchedule):
    """The memoryless schedule of the linear interpolant ``X_t = (1 - t) X_0 + t X_1`` (Adjoint
    Matching, DESIGN.md section 8): ``sigma(t) = sqrt(2 eta_t)``, ``eta_t = (1 - t) / t``.

    With it the SDE that has a flow's marginals makes ``X_0`` and ``X_1`` independent. The drift
    ``2 v - x / t`` (``sde.base_drift``) and ``sigma`` are singular at 0, so the process starts at
    ``t_start > 0``: ``sigma(t) = sqrt(2 (1 - t) / t)`` on ``[t_start, 1]`` and 0 before it, and
    ``nu(t) = int_{t_start}^t sigma^2 = 2 ln(t / t_start) - 2 (t - t_start)`` (0 before
    ``t_start``), so ``nu_1 = -2 ln(t_start) - 2 (1 - t_start)``. Integrate on a grid that starts
    at ``t_start`` (``time_grid(..., start=t_start)``).
    """

    kind = "memoryless"

    def __init__(self, t_start: float = 1e-3) -> None:
        if not (0.0 < t_start < 1.0):
            raise ConfigError(f"memoryless schedule needs 0 < t_start < 1, got {t_start}")
        self.t_start = float(t_start)

    def sigma(self, t: Tensor) -> Tensor:
        tc = t.clamp(min=self.t_start)
        return torch.where(t >= self.t_start, (2.0 * (1.0 - tc) / tc).clamp(min=0.0).sqrt(), torch.zeros_like(tc))

    def nu(self, t: Tensor) -> Tensor:
        tc = t.clamp(min=self.t_start)
        return 2.0 * torch.log(tc / self.t_start) - 2.0 * (tc - self.t_start)

    def params(self) -> dict[str, Any]:
        return {"t_start": self.t_start}


SCHEDULES: dict[str, type[NoiseSchedule]] = {
    "geometric": GeometricSchedule,
    "linear": LinearSchedule,
    "memoryless": MemorylessSchedule,
}


def build_schedule(kind: str, **params: Any) -> NoiseSchedule:
    """Build a schedule by name (a key of ``SCHEDULES``); bad names/params raise ConfigError."""
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule {kind!r}; choose one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[kind](**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {kind!r} schedule: {exc}") from exc
