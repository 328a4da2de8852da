"""Time grids t_0 < ... < t_K = 1 for Euler-Maruyama integration (t_0 = 0 unless ``start`` is given)."""

from __future__ import annotations

import torch
from torch import Tensor

from adjoint_sampling.core.errors import ConfigError

__all__ = ["time_grid", "GRID_KINDS"]

GRID_KINDS = ("uniform", "end_refined", "start_refined")


def time_grid(
    num_steps: int,
    kind: str = "uniform",
    power: float = 2.0,
    dtype: torch.dtype = torch.float64,
    start: float = 0.0,
) -> Tensor:
    """Return ``(K+1,)`` increasing times from ``start`` to 1, ``K = num_steps``.

    With ``s_k = k / K``: ``uniform``: ``s_k``; ``end_refined``: ``1 - (1 - s_k)^power`` (power > 1
    puts more steps near t = 1, where the geometric schedule's noise is small and the control
    sharp); ``start_refined``: ``s_k^power`` (more steps near the start, where the drift of a flow's
    memoryless SDE is singular, ``sde.base_drift``). The times are then mapped affinely from
    [0, 1] to [start, 1] (``start`` in [0, 1); 0 leaves them as they are).
    """
    if num_steps < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    if not (0.0 <= start < 1.0):
        raise ConfigError(f"time grid start must be in [0, 1), got {start}")
    s = torch.linspace(0.0, 1.0, num_steps + 1, dtype=dtype)
    if kind == "uniform":
        grid = s
    elif kind in ("end_refined", "start_refined"):
        if power < 1.0:
            raise ConfigError(f"{kind} grid needs power >= 1, got {power}")
        grid = 1.0 - (1.0 - s) ** power if kind == "end_refined" else s**power
    else:
        raise ConfigError(f"unknown time grid {kind!r}; choose one of {GRID_KINDS}")
    if start > 0.0:
        grid = start + (1.0 - start) * grid
    grid[0], grid[-1] = start, 1.0
    return grid
