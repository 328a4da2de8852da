"""Euler-Maruyama integration of the controlled SDE ``dX = (b(t, X) + sigma_t^2 f(t, X)) dt + sigma_t dW``.

``f`` is the network output (the scaled control, control ``u = sigma_t f``); ``b`` an optional base
drift (``sde.base_drift``; Adjoint Matching), zero for Adjoint Sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from adjoint_sampling.sde.base_drift import DriftFn
from adjoint_sampling.sde.batch import SystemBatch
from adjoint_sampling.sde.schedules import NoiseSchedule
from adjoint_sampling.sde.spaces import StateSpace

__all__ = ["descend", "integrate", "integrate_ode", "integrate_path", "integrate_with_path_weight", "sample_terminal", "ControlFn"]

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
    base_drift: DriftFn | None = None,
    quiet_steps: int = 0,
    start_control: Tensor | None = None,
) -> Tensor:
    """Simulate from ``X_0 = 0`` over ``grid`` ``(K+1,)``; returns ``X_1`` ``(M, D)``.

    ``x_start`` ``(M, D)``: the state at ``grid[0]`` instead of the base's ``X_0 = 0`` (a grid
    that starts after 0 restarts the process there).

    Every step, with ``dnu = nu(t_{k+1}) - nu(t_k)`` (= ``int sigma^2 dt`` over the step, i.e.
    ``sigma_t^2 dt`` to first order, but exact for the noise variance even on coarse steps where
    the geometric schedule's sigma changes a lot) and ``h = t_{k+1} - t_k``:
    ``x <- project_state(x + h b(t_k, x) + dnu f(t_k, x) + sqrt(dnu) project_vector(eps))``.
    ``control=None`` simulates the base process (zero control); ``base_drift=None`` is ``b = 0``
    (the same random stream and result as before base drifts existed).

    ``quiet_steps``: the last that many steps add no noise (drift only: each moves to the mean of
    its Gaussian transition). The noise is still drawn, so the random stream, and the path up to
    those steps, are those of the noisy simulation; 0 is the SDE as it was trained.

    ``start_control`` ``(M, D)``: ``control(grid[0], X_0)`` where the caller knows it already (say,
    systems that share a start state); the first step then does not call ``control``.
    """
    return _euler_maruyama(control, space, schedule, grid, generator, dtype, x_start, track_weight=False,
                           base_drift=base_drift, quiet_steps=quiet_steps, start_control=start_control)[0]


@torch.no_grad()
def integrate_path(
    control: ControlFn | None,
    space: StateSpace,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
    x_start: Tensor | None = None,
    base_drift: DriftFn | None = None,
) -> Tensor:
    """As :func:`integrate` (same random stream, same ``X_1``), returning the whole path: the
    states at every grid time, ``(K+1, M, D)`` (``path[0]`` the start, ``path[-1]`` ``X_1``).

    The path is what the lean adjoint of Adjoint Matching is integrated along
    (``method.adjoint_matching``).
    """
    states: list[Tensor] = []
    _euler_maruyama(control, space, schedule, grid, generator, dtype, x_start, track_weight=False,
                    base_drift=base_drift, record=states)
    return torch.stack(states)


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


@torch.no_grad()
def integrate_ode(velocity: ControlFn, space: StateSpace, grid: Tensor, x_start: Tensor) -> Tensor:
    """Euler steps of the ODE ``dx/dt = velocity(t, x)`` over ``grid`` ``(K+1,)`` from ``x_start``
    ``(M, D)`` (the state at ``grid[0]``); returns the state at ``grid[-1]``. Velocities and states
    are projected onto ``space`` every step; the velocity is never evaluated at ``grid[-1]``."""
    x = x_start
    for k in range(grid.shape[0] - 1):
        t = torch.full((space.num_systems,), float(grid[k]), dtype=x.dtype, device=x.device)
        x = space.project_state(x + float(grid[k + 1] - grid[k]) * space.project_vector(velocity(t, x)))
    return x


def _euler_maruyama(
    control: ControlFn | None,
    space: StateSpace,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    x_start: Tensor | None,
    track_weight: bool,
    base_drift: DriftFn | None = None,
    record: list[Tensor] | None = None,
    quiet_steps: int = 0,
    start_control: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    num_steps = grid.shape[0] - 1
    if not 0 <= quiet_steps <= num_steps:
        raise ValueError(f"quiet_steps must be in [0, {num_steps}] for a grid of {num_steps} steps, got {quiet_steps}")
    if quiet_steps and track_weight:
        raise ValueError("the path weight is defined for the noisy simulation only (quiet_steps 0)")
    x = space.initial_state(dtype) if x_start is None else x_start.to(dtype)
    if start_control is not None and (control is None or start_control.shape != x.shape):
        raise ValueError(f"start_control must be {tuple(x.shape)} and needs a control, "
                         f"got {tuple(start_control.shape)}")
    if record is not None:
        record.append(x)
    nu = schedule.nu(grid.to(torch.float64))
    log_ratio_rows = torch.zeros(space.num_rows, dtype=torch.float64, device=x.device) if track_weight else None
    for k in range(grid.shape[0] - 1):
        t = float(grid[k])
        dnu = float(nu[k + 1] - nu[k])
        sqrt_dnu = math.sqrt(max(dnu, 0.0))
        eps = space.noise(generator, dtype)
        step = torch.zeros_like(eps) if k >= num_steps - quiet_steps else sqrt_dnu * eps
        t_sys = torch.full((space.num_systems,), t, dtype=dtype, device=x.device)
        if base_drift is not None:
            step = step + float(grid[k + 1] - grid[k]) * space.project_vector(base_drift(t_sys, x))
        if control is not None:
            raw = start_control.to(dtype) if k == 0 and start_control is not None else control(t_sys, x)
            f = space.project_vector(raw)
            step = step + dnu * f
            if log_ratio_rows is not None:
                log_ratio_rows -= (sqrt_dnu * (f * eps).sum(-1) + 0.5 * dnu * (f * f).sum(-1)).double()
        x = space.project_state(x + step)
        if record is not None:
            record.append(x)
    if log_ratio_rows is None:
        return x, None
    return x, scatter(log_ratio_rows, space.batch, dim=0, dim_size=space.num_systems, reduce="sum")


@torch.no_grad()
def descend(control: ControlFn, space: StateSpace, x: Tensor, steps: int, step_size: float, t: float = 1.0) -> Tensor:
    """``steps`` noise-free steps ``x <- project_state(x + step_size project_vector(f(t, x)))`` from the
    terminal state ``x`` ``(M, D)``.

    At ``t = 1`` an Adjoint Sampling control approximates the terminal adjoint's direction, minus the
    gradient of ``E / tau`` (plus the nearly flat base density's log-gradient), so these are
    gradient-descent steps on the energy with the learned gradient: they move a draw towards the
    minimum of its basin (``step_size`` in ``nu`` units, like ``dnu`` of an SDE step).
    """
    if steps < 0 or step_size < 0:
        raise ValueError(f"descent needs steps >= 0 and step_size >= 0, got {steps} and {step_size}")
    t_sys = torch.full((space.num_systems,), t, dtype=x.dtype, device=x.device)
    for _ in range(steps):
        x = space.project_state(x + step_size * space.project_vector(control(t_sys, x)))
    return x


def sample_terminal(
    controller: nn.Module | None,
    batch: SystemBatch,
    schedule: NoiseSchedule,
    grid: Tensor,
    generator: torch.Generator | None,
    quiet_steps: int = 0,
    descent_steps: int = 0,
    descent_step: float = 0.0,
    start_control: Tensor | None = None,
) -> Tensor:
    """Simulate the controlled SDE for ``batch``; returns ``X_1`` (M, D) (``None``: base process;
    ``quiet_steps`` and ``start_control``: see :func:`integrate`; ``descent_steps`` of size
    ``descent_step`` after it: see :func:`descend`)."""
    if controller is None:
        return integrate(None, batch.space, schedule, grid, generator, quiet_steps=quiet_steps)
    control = lambda t, x: controller(t, x, batch)
    x1 = integrate(control, batch.space, schedule, grid, generator, quiet_steps=quiet_steps,
                   start_control=start_control)
    return descend(control, batch.space, x1, descent_steps, descent_step) if descent_steps else x1
