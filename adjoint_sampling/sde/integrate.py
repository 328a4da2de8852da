"""Euler-Maruyama integration of the controlled SDE ``dX = sigma_t^2 f(t, X) dt + sigma_t dW``.


``f`` is the network output (the scaled control, control ``u = sigma_t f``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["integrate", "integrate_with_path_weight", "sample_terminal", "ControlFn"]

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
    return _euler_maruyama(control, space, schedule, grid, generator, dtype, x_start, track_weight=False)[0]


@torch.no_grad()
def integrate_with_path_weight(
    control: ControlFn | None,
    space: StateSpace,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """As :func:`integrate` (same random stream, same ``X_1``), also returning, per system ``(B,)``
    float64, the log density ratio of the simulated discrete path under the base process and under
    the controlled one: ``log dP_base/dP_u = sum_k -sqrt(dnu_k) f_k . eps_k - dnu_k |f_k|^2 / 2``.

    Both are Gaussian chains with the same step variance ``dnu_k`` on the projected space, so the
    ratio is exact for the simulated (discrete) process, not a continuous-time approximation.
    """
    x, log_ratio = _euler_maruyama(control, space, schedule, grid, generator, dtype, None, track_weight=True)
    return x, log_ratio


def _euler_maruyama(
    control: ControlFn | None,
    space: StateSpace,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    x_start: Tensor | None,
    track_weight: bool,
) -> tuple[Tensor, Tensor | None]:
    x = space.initial_state(dtype) if x_start is None else x_start.to(dtype)
    nu = schedule.nu(grid.to(torch.float64))
    log_ratio_rows = torch.zeros(space.num_rows, dtype=torch.float64, device=x.device) if track_weight else None
    for k in range(grid.shape[0] - 1):
        t = float(grid[k])
        dnu = float(nu[k + 1] - nu[k])
        sqrt_dnu = math.sqrt(max(dnu, 0.0))
        eps = space.noise(generator, dtype)
        step = sqrt_dnu * eps
        if control is not None:
            t_sys = torch.full((space.num_systems,), t, dtype=dtype, device=x.device)
            f = space.project_vector(control(t_sys, x))
            step = step + dnu * f
            if log_ratio_rows is not None:
                log_ratio_rows -= (sqrt_dnu * (f * eps).sum(-1) + 0.5 * dnu * (f * f).sum(-1)).double()
        x = space.project_state(x + step)
    if log_ratio_rows is None:
        return x, None
    return x, scatter(log_ratio_rows, space.batch, dim=0, dim_size=space.num_systems, reduce="sum")


def sample_terminal(
    controller: nn.Module | None,
    batch: SystemBatch,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
) -> Tensor:
    """Simulate the controlled SDE for ``batch``; returns ``X_1`` (M, D) (``None``: base process)."""
    control = None if controller is None else (lambda t, x: controller(t, x, batch))
    return integrate(control, batch.space, schedule, grid, generator)
