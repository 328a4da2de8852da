"""Time grids 0 = t_0 < ... < t_K = 1 for Euler-Maruyama integration."""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError

__all__ = ["time_grid", "GRID_KINDS"]

GRID_KINDS = ("uniform", "end_refined")


def time_grid(num_steps: int, kind: str = "uniform", power: float = 2.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """Return ``(K+1,)`` increasing times from 0 to 1, ``K = num_steps``.

    ``uniform``: ``t_k = k / K``. ``end_refined``: ``t_k = 1 - (1 - k/K)^power`` (power > 1 puts
    more steps near t = 1, where the geometric schedule's noise is small and the control sharp).
    """
    if num_steps < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    s = torch.linspace(0.0, 1.0, num_steps + 1, dtype=dtype)
    if kind == "uniform":
        return s
    if kind == "end_refined":
        if power < 1.0:
            raise ConfigError(f"end_refined grid needs power >= 1, got {power}")
        grid = 1.0 - (1.0 - s) ** power
        grid[-1] = 1.0
        return grid
    raise ConfigError(f"unknown time grid {kind!r}; choose one of {GRID_KINDS}")
