"""Euler-Maruyama integration of the controlled SDE ``dX = sigma_t^2 f(t, X) dt + sigma_t dW``.

``f`` is the network output (the scaled control, control ``u = sigma_t f``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from adjoint_sampling.schedules import NoiseSchedule
from adjoint_sampling.spaces import StateSpace

__all__ = ["integrate", "ControlFn"]

ControlFn = Callable[[Tensor, Tensor], Tensor]
"""``control(t (B,), x (M, D)) -> f (M, D)``."""


@torch.no_grad()
def integrate(
    control: ControlFn | None,
    space: StateSpace,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Simulate from ``X_0 = 0`` over ``grid`` ``(K+1,)``; returns ``X_1`` ``(M, D)``.

    Every step: ``x <- project_state(x + sigma_t^2 f dt + sigma_t sqrt(dt) project_vector(eps))``.
    ``control=None`` simulates the base process (zero control).
    """
    x = space.initial_state(dtype)
    for k in range(grid.shape[0] - 1):
        t = float(grid[k])
        dt = float(grid[k + 1] - grid[k])
        sigma = float(schedule.sigma(torch.tensor(t, dtype=torch.float64)))
        step = sigma * math.sqrt(dt) * space.noise(generator, dtype)
        if control is not None:
            t_sys = torch.full((space.num_systems,), t, dtype=dtype, device=x.device)
            step = step + sigma * sigma * dt * space.project_vector(control(t_sys, x))
        x = space.project_state(x + step)
    return x
