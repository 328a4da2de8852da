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
    x_start: Tensor | None = None,
) -> Tensor:
    """Simulate from ``X_0 = 0`` over ``grid`` ``(K+1,)``; returns ``X_1`` ``(M, D)``.

    ``x_start`` ``(M, D)``: the state at ``grid[0]`` instead of the base's ``X_0 = 0`` (a grid
    that starts after 0 restarts the process there).

    Every step, with ``dnu = nu(t_{k+1}) - nu(t_k)`` (= ``int sigma^2 dt`` over the step, i.e.
    ``sigma_t^2 dt`` to first order, but exact for the noise variance even on coarse steps where
    the geometric schedule's sigma changes a lot):
    ``x <- project_state(x + dnu f(t_k, x) + sqrt(dnu) project_vector(eps))``.
    ``control=None`` simulates the base process (zero control).
    """
    x = space.initial_state(dtype) if x_start is None else x_start.to(dtype)
    nu = schedule.nu(grid.to(torch.float64))
    for k in range(grid.shape[0] - 1):
        t = float(grid[k])
        dnu = float(nu[k + 1] - nu[k])
        step = math.sqrt(max(dnu, 0.0)) * space.noise(generator, dtype)
        if control is not None:
            t_sys = torch.full((space.num_systems,), t, dtype=dtype, device=x.device)
            step = step + dnu * space.project_vector(control(t_sys, x))
        x = space.project_state(x + step)
    return x
